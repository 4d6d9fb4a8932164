//! Serve Rust objects to Python clients.
//!
//! ```text
//! cargo run -p rpyc --example server -- --port 18861 &
//! python examples/add_client.py --port 18861
//! python -c "import rpyc; c = rpyc.connect('127.0.0.1', 18861); print(c.root.add(5, 10))"
//! ```
//! Prints `listening on 127.0.0.1:PORT` once it accepts (`--port 0` picks a free port).
//! `--tls-cert F --tls-key F [--tls-client-ca F]` serves over TLS. `--tokio` serves with the
//! tokio accept loop (feature `tokio`; TCP, TLS and Unix sockets). `--bind-threads` serves TCP
//! with `bind_threads` (for clients that use it too).

use rpyc::{Config, Error, NetRef, Server, Value};
use std::sync::atomic::{AtomicI64, Ordering};

/// The service: every `&self` method is callable from Python as `conn.root.<name>(...)`.
struct Calc;

#[rpyc::service(name = "calc.Calc")]
impl Calc {
    /// `x + y` for numbers, strings and tuples; for anything else, Python's own `+` on the
    /// caller's object (a list proxy of the client, for instance).
    fn add(&self, x: Value, y: Value) -> rpyc::Result<Value> {
        Ok(match (x, y) {
            (Value::Int(a), Value::Int(b)) => match a.checked_add(b) {
                Some(s) => Value::Int(s),
                None => Value::from(i128::from(a) + i128::from(b)),
            },
            (Value::Float(a), Value::Float(b)) => Value::Float(a + b),
            (Value::Int(a), Value::Float(b)) | (Value::Float(b), Value::Int(a)) => {
                Value::Float(a as f64 + b)
            }
            (Value::Str(a), Value::Str(b)) => Value::Str(a + &b),
            (Value::Tuple(mut a), Value::Tuple(b)) => {
                a.extend(b);
                Value::Tuple(a)
            }
            (Value::Remote(a), y) => a.call_method("__add__", (y,))?,
            (x, y) => {
                return Err(Error::type_error(format!(
                    "unsupported operand type(s) for +: '{}' and '{}'",
                    x.type_name(),
                    y.type_name()
                )))
            }
        })
    }

    /// Calls `func(value)` (a function of the caller) and doubles the result.
    fn call_me_back(&self, func: NetRef, value: Value) -> rpyc::Result<Value> {
        let r: Value = func.call((value,))?;
        match r {
            Value::Int(n) => Ok(Value::from(i128::from(n) * 2)),
            Value::Float(f) => Ok(Value::Float(f * 2.0)),
            other => self.add(other.clone(), other),
        }
    }

    fn divide(&self, x: f64, y: f64) -> rpyc::Result<f64> {
        if y == 0.0 {
            return Err(Error::raise("ZeroDivisionError", "float division by zero"));
        }
        Ok(x / y)
    }

    fn echo(&self, value: Value) -> Value {
        value
    }

    /// As `call_me_back` (the name tests/peers/tls_peer.py uses).
    fn call_back(&self, func: NetRef, value: Value) -> rpyc::Result<Value> {
        self.call_me_back(func, value)
    }

    /// Always None: a Rust service does not see the client's certificate.
    fn client_common_name(&self) -> Option<String> {
        None
    }

    fn greet(&self, name: String) -> String {
        format!("hello {name}, from Rust")
    }

    /// A new counter object, held by the caller by reference.
    fn make_counter(&self, start: i64) -> Value {
        Value::local(Counter {
            value: AtomicI64::new(start),
        })
    }
}

struct Counter {
    value: AtomicI64,
}

#[rpyc::service(name = "calc.Counter")]
impl Counter {
    fn increment(&self, by: i64) -> i64 {
        self.value.fetch_add(by, Ordering::SeqCst) + by
    }

    fn value(&self) -> i64 {
        self.value.load(Ordering::SeqCst)
    }
}

fn main() -> rpyc::Result<()> {
    let mut port = "18861".to_owned();
    let mut unix = None;
    let mut tls = rpyc::TlsServer::default();
    let mut tokio = false;
    let mut bind_threads = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--port" => port = args.next().unwrap_or_default(),
            "--unix" => unix = args.next(),
            "--tokio" => tokio = true,
            "--bind-threads" => bind_threads = true,
            "--tls-cert" => tls.cert_file = args.next().unwrap_or_default().into(),
            "--tls-key" => tls.key_file = args.next().unwrap_or_default().into(),
            "--tls-client-ca" => tls.client_ca_file = args.next().map(Into::into),
            other => {
                eprintln!(
                    "usage: server [--port N] [--unix PATH] [--tls-cert F --tls-key F \
                     [--tls-client-ca F]] [--tokio | --bind-threads] (unknown argument \
                     {other})"
                );
                std::process::exit(2);
            }
        }
    }
    if tokio {
        if bind_threads {
            eprintln!("--bind-threads is for the threaded server only");
            std::process::exit(2);
        }
        return serve_tokio(&port, unix.as_deref(), &tls);
    }
    let server = match &unix {
        #[cfg(unix)]
        Some(path) => Server::bind_unix(path, Calc)?,
        _ if !tls.cert_file.as_os_str().is_empty() => {
            Server::bind_tls(format!("127.0.0.1:{port}"), Calc, &tls)?
        }
        // The peers' `bind_threads` (both sides must use it): the threaded TCP server.
        _ if bind_threads => {
            let mut config = Config::with_service(Calc);
            config.wire.bind_threads = true;
            Server::bind_with(format!("127.0.0.1:{port}"), config)?
        }
        _ => Server::bind(format!("127.0.0.1:{port}"), Calc)?,
    };
    match (server.local_addr(), &unix) {
        (Some(addr), _) => println!("listening on {addr}"),
        (None, Some(path)) => println!("listening on {path}"),
        (None, None) => {}
    }
    server.serve_forever()
}

/// The same service on the tokio accept loop.
#[cfg(feature = "tokio")]
fn serve_tokio(port: &str, unix: Option<&str>, tls: &rpyc::TlsServer) -> rpyc::Result<()> {
    use rpyc::tokio::Server;
    // (A multi-thread runtime: the driver serves each request on its own thread.)
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let server = match unix {
            #[cfg(unix)]
            Some(path) => Server::bind_unix(path, Calc)?,
            _ if !tls.cert_file.as_os_str().is_empty() => {
                Server::bind_tls(format!("127.0.0.1:{port}"), Calc, tls).await?
            }
            _ => Server::bind(format!("127.0.0.1:{port}"), Calc).await?,
        };
        match (server.local_addr(), unix) {
            (Some(addr), _) => println!("listening on {addr}"),
            (None, Some(path)) => println!("listening on {path}"),
            (None, None) => {}
        }
        server.serve_forever().await
    })
}

#[cfg(not(feature = "tokio"))]
fn serve_tokio(_: &str, _: Option<&str>, _: &rpyc::TlsServer) -> rpyc::Result<()> {
    eprintln!("--tokio needs the feature tokio (cargo run --features tokio ...)");
    std::process::exit(2)
}
