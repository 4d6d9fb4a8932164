//! A Rust server and a Rust client over loopback TCP: calls, keyword arguments, errors,
//! callbacks both ways, releases, timeouts, and hostile bytes.

mod common;

use rpyc::{Args, Config, Connection, Error, NetRef, Server, ServerHandle, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Default)]
struct Calc {
    total: AtomicI64,
}

#[rpyc::service(name = "tests.Calc")]
impl Calc {
    fn add(&self, x: i64, y: i64) -> i64 {
        x + y
    }

    fn accumulate(&self, x: i64) -> i64 {
        self.total.fetch_add(x, Ordering::SeqCst) + x
    }

    fn greet(&self, name: String) -> String {
        format!("hello {name}")
    }

    fn divide(&self, x: f64, y: f64) -> Result<f64, Error> {
        if y == 0.0 {
            return Err(Error::raise("ZeroDivisionError", "division by zero"));
        }
        Ok(x / y)
    }

    fn apply(&self, f: NetRef, x: i64) -> rpyc::Result<i64> {
        f.call((x,))
    }

    fn make_adder(&self, n: i64) -> Value {
        rpyc::callback(move |args: Args| {
            let mut it = args.bind("adder", &["x"])?.into_iter();
            let x: i64 = rpyc::arg("adder", "x", it.next().unwrap_or_default())?;
            Ok(Value::from(x + n))
        })
    }

    fn nothing(&self) {}

    fn sleep_ms(&self, ms: u64) -> u64 {
        std::thread::sleep(Duration::from_millis(ms));
        ms
    }

    fn echo(&self, v: Value) -> Value {
        v
    }

    fn _private(&self) -> i64 {
        0
    }
}

fn server() -> ServerHandle {
    Server::bind("127.0.0.1:0", Calc::default())
        .and_then(Server::spawn)
        .expect("server starts")
}

fn client(h: &ServerHandle) -> Connection {
    Connection::connect(h.local_addr().expect("tcp")).expect("connects")
}

#[test]
fn calls_and_conversions() -> rpyc::Result<()> {
    let h = server();
    let conn = client(&h);
    let root = conn.root()?;
    assert_eq!(root.type_name(), "tests.Calc");
    let sum: i64 = root.call_method("add", (5, 10))?;
    assert_eq!(sum, 15);
    let add: NetRef = root.getattr("add")?;
    assert_eq!(add.call::<i64>((1, 2))?, 3);
    let g: String = root.call_method_kw("greet", (), [("name", "rust")])?;
    assert_eq!(g, "hello rust");
    let v: Value = root.call_method("nothing", ())?;
    assert!(v.is_none());
    let back: Value = root.call_method(
        "echo",
        (Value::tuple([
            Value::from(1),
            Value::str("a"),
            Value::Float(-0.0),
        ]),),
    )?;
    assert_eq!(
        back,
        Value::tuple([Value::from(1), Value::str("a"), Value::Float(-0.0)])
    );
    assert_eq!(conn.ping("x")?, Value::str("x"));
    assert!(root.repr()?.contains("tests.Calc"));
    let names = root.dir()?;
    assert!(names.contains(&"add".to_owned()) && !names.iter().any(|n| n == "_private"));
    Ok(())
}

#[test]
fn errors_are_typed() -> rpyc::Result<()> {
    let h = server();
    let conn = client(&h);
    let root = conn.root()?;
    let e = root.call_method::<f64>("divide", (1.0, 0.0)).unwrap_err();
    let remote = e.remote().expect("a remote error");
    assert_eq!(remote.name, "ZeroDivisionError");
    assert_eq!(remote.message(), "division by zero");
    let e = root.call_method::<i64>("add", ("a", 1)).unwrap_err();
    assert!(e.is_remote("TypeError"), "{e}");
    assert!(e.to_string().contains("add() argument 'x'"), "{e}");
    let e = root.call_method::<i64>("add", (1,)).unwrap_err();
    assert!(
        e.to_string().contains("missing 1 required argument: 'y'"),
        "{e}"
    );
    let e = root.call_method::<i64>("_private", ()).unwrap_err();
    assert!(e.is_remote("AttributeError"), "{e}");
    let e = root.call_method::<String>("add", (1, 2)).unwrap_err();
    assert!(matches!(e, Error::Conversion(_)), "{e}");
    // the connection is still fine
    assert_eq!(root.call_method::<i64>("add", (2, 2))?, 4);
    Ok(())
}

#[test]
fn callbacks_both_ways() -> rpyc::Result<()> {
    let h = server();
    let conn = client(&h);
    let root = conn.root()?;
    // a Rust closure of the client, called by the server while the client waits
    let double = common::int_callback("double", |x| Ok(x * 2));
    assert_eq!(root.call_method::<i64>("apply", (double, 21))?, 42);
    // a closure of the server, called by the client
    let adder: NetRef = root.call_method("make_adder", (10,))?;
    assert_eq!(adder.call::<i64>((5,))?, 15);
    // nested: the server calls back a client closure that calls the server
    let r2 = root.clone();
    let nested = common::int_callback("nested", move |x| r2.call_method("add", (x, 100)));
    assert_eq!(root.call_method::<i64>("apply", (nested, 1))?, 101);
    Ok(())
}

#[test]
fn releases_empty_the_servers_table() -> rpyc::Result<()> {
    let h = server();
    let conn = client(&h);
    let root = conn.root()?;
    for i in 0..50 {
        let adder: NetRef = root.call_method("make_adder", (i,))?;
        assert_eq!(adder.call::<i64>((1,))?, i + 1);
    }
    // the client's own table: the callbacks it passed were released by the server
    let cb = rpyc::callback(|_| Ok(Value::None));
    root.call_method::<Value>("echo", (cb,))?; // comes back as our own object
    conn.flush()?;
    assert!(conn.local_objects() <= 1);
    Ok(())
}

#[test]
fn concurrent_threads_share_one_connection() -> rpyc::Result<()> {
    let h = server();
    let conn = Arc::new(client(&h));
    let root = conn.root()?;
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let root = root.clone();
            std::thread::spawn(move || -> rpyc::Result<()> {
                for i in 0..200 {
                    let r: i64 = root.call_method("add", (t, i))?;
                    assert_eq!(r, t + i);
                }
                Ok(())
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread")?;
    }
    Ok(())
}

#[test]
fn sync_request_timeout() -> rpyc::Result<()> {
    let h = server();
    let config = Config {
        sync_request_timeout: Some(Duration::from_millis(200)),
        ..Config::default()
    };
    let conn = Connection::connect_with(h.local_addr().expect("tcp"), config)?;
    let root = conn.root()?;
    let t0 = Instant::now();
    let e = root.call_method::<u64>("sleep_ms", (1000,)).unwrap_err();
    assert!(matches!(e, Error::Timeout(_)), "{e}");
    assert!(e.to_string().contains("sync_request_timeout"), "{e}");
    assert!(t0.elapsed() < Duration::from_millis(900));
    // the late answer is dropped; the connection goes on
    std::thread::sleep(Duration::from_millis(900));
    assert_eq!(root.call_method::<i64>("add", (1, 1))?, 2);
    Ok(())
}

#[test]
fn hostile_bytes_close_that_connection_only() -> rpyc::Result<()> {
    let h = server();
    let addr = h.local_addr().expect("tcp");
    for bytes in common::HOSTILE {
        let mut s = TcpStream::connect(addr)?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(bytes)?;
        let mut sink = Vec::new();
        // the server closes the connection: EOF (or a reset), within the timeout
        match s.read_to_end(&mut sink) {
            Ok(_) => {}
            Err(e) => assert_ne!(
                e.kind(),
                std::io::ErrorKind::WouldBlock,
                "server kept it open"
            ),
        }
    }
    // a bad box is only that request's error
    let conn = client(&h);
    let root = conn.root()?;
    assert_eq!(root.call_method::<i64>("add", (3, 4))?, 7);
    Ok(())
}

#[test]
fn closing_is_seen_by_netrefs() -> rpyc::Result<()> {
    let h = server();
    let conn = client(&h);
    let root = conn.root()?;
    conn.close();
    let e = root.call_method::<i64>("add", (1, 2)).unwrap_err();
    assert!(matches!(e, Error::Closed(_)), "{e}");
    h.close();
    Ok(())
}

#[cfg(unix)]
#[test]
fn unix_socket() -> rpyc::Result<()> {
    let dir = std::env::temp_dir().join(format!("rpyc-rs-test-{}", std::process::id()));
    let _ = std::fs::remove_file(&dir);
    let h = Server::bind_unix(&dir, Calc::default())?.spawn()?;
    let conn = Connection::connect_unix(&dir)?;
    assert_eq!(conn.root()?.call_method::<i64>("add", (2, 3))?, 5);
    assert_eq!(h.connections(), 1);
    // closing the server closes its connections and returns (the accept loop is woken)
    h.close();
    assert!(conn.root()?.call_method::<i64>("add", (1, 1)).is_err());
    drop(conn);
    let _ = std::fs::remove_file(&dir);
    Ok(())
}

#[test]
fn async_requests() -> rpyc::Result<()> {
    let h = server();
    let conn = client(&h);
    let root = conn.root()?;
    let t0 = Instant::now();
    let pending: Vec<_> = (0..4)
        .map(|_| root.call_method_async("sleep_ms", (200u64,)))
        .collect::<rpyc::Result<_>>()?;
    // the server serves one connection on one thread: in order, 4 x 200 ms
    let sum: u64 = pending
        .into_iter()
        .map(|p| p.wait::<u64>())
        .sum::<rpyc::Result<u64>>()?;
    assert_eq!(sum, 800);
    assert!(t0.elapsed() >= Duration::from_millis(790));
    let add: NetRef = root.getattr("add")?;
    let a = add.call_async((1, 2))?;
    let b = add.call_async((3, 4))?;
    assert_eq!(b.wait::<i64>()?, 7);
    assert!(a.ready());
    assert_eq!(a.wait::<i64>()?, 3);
    let slow = root.call_method_async("sleep_ms", (300u64,))?;
    assert!(matches!(
        slow.wait_timeout::<u64>(Duration::from_millis(50)),
        Err(Error::Timeout(_))
    ));
    // given up: an answer holding a reference is released when it arrives
    drop(root.call_method_async("make_adder", (1,))?);
    assert_eq!(root.call_method::<i64>("add", (1, 1))?, 2);
    Ok(())
}

/// A client that sends no hello: its first request (seq 0) is GETROOT.
fn plain(addr: std::net::SocketAddr) -> rpyc::Result<Connection> {
    let config = Config {
        rpyc_rs_extensions: false,
        ..Config::default()
    };
    Connection::connect_with(addr, config)
}

/// A fake server: reads the first request, answers `reply` and keeps the socket open (an
/// empty `reply`: closes it).
fn hostile_server(reply: &'static [u8]) -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = l.accept() {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            if reply.is_empty() {
                return; // EOF
            }
            let _ = s.write_all(reply);
            std::thread::sleep(Duration::from_secs(3));
        }
    });
    addr
}

#[test]
fn hostile_answers_close_the_client_connection() {
    let cases: [(&str, &'static [u8]); 6] = [
        ("frame over max_frame_size", b"\xc0\x00\x00\x00\x00"),
        (
            "unknown message type",
            b"\x00\x00\x00\x03\x00\x09\x11\x50\x0a",
        ),
        ("corrupt zlib", b"\x00\x00\x00\x04\x01\xff\xff\xff\xff\x0a"),
        ("truncated brine", b"\x00\x00\x00\x03\x00\x02\x11\x50\x0a"),
        ("unknown tag", b"\x00\x00\x00\x03\x00\x02\x07\x07\x0a"),
        ("eof", b""),
    ];
    for (name, reply) in cases {
        let conn = plain(hostile_server(reply)).expect("connects");
        let t0 = Instant::now();
        let e = conn.root().expect_err(name);
        assert!(matches!(e, Error::Closed(_)), "{name}: {e}");
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "{name}: took {:?}",
            t0.elapsed()
        );
        assert!(conn.closed().is_some(), "{name}");
        assert!(matches!(conn.ping(1), Err(Error::Closed(_))), "{name}");
    }
    // an answer of the wrong shape (a bad box) is that request's error only
    let conn = plain(hostile_server(
        b"\x00\x00\x00\x06\x00\x02\x11\x50\x11\x59\x00\x0a",
    ))
    .expect("connects");
    let e = conn.root().expect_err("bad box");
    assert!(e.to_string().contains("invalid label"), "{e}");
    assert!(conn.closed().is_none());
}

#[test]
fn exceptions_of_any_shape_from_the_peer() {
    // EXCEPTION bodies: a StopIteration (1), a bare string, a tuple of the wrong shape
    let replies: [(&'static [u8], &str); 3] = [
        (b"\x00\x00\x00\x04\x00\x03\x11\x50\x51\x0a", "StopIteration"),
        (
            b"\x00\x00\x00\x06\x00\x03\x11\x50\x08\x0a\x78\x0a",
            "Exception",
        ),
        (
            b"\x00\x00\x00\x05\x00\x03\x11\x50\x10\x00\x0a",
            "MalformedRemoteException",
        ),
    ];
    for (reply, name) in replies {
        let conn = plain(hostile_server(reply)).expect("connects");
        let e = conn.root().expect_err(name);
        assert!(e.is_remote(name), "{name}: {e}");
        assert!(conn.closed().is_none());
    }
}

#[test]
fn hello_between_rust_peers() -> rpyc::Result<()> {
    // both sides name quiet_del: releases are not answered, so none of them is in flight
    let h = server();
    let conn = client(&h);
    let root = conn.root()?;
    for i in 0..20 {
        let adder: NetRef = root.call_method("make_adder", (i,))?;
        assert_eq!(adder.call::<i64>((1,))?, i + 1);
    }
    // a client without extensions works the same
    let config = Config {
        rpyc_rs_extensions: false,
        ..Config::default()
    };
    let old = Connection::connect_with(h.local_addr().expect("tcp"), config)?;
    assert_eq!(old.root()?.call_method::<i64>("add", (1, 2))?, 3);
    Ok(())
}

#[test]
fn inbound_memory_budget_waits_then_closes() -> rpyc::Result<()> {
    let mut config = Config::with_service(Calc::default());
    config.wire.max_inbound_memory = 256 * 1024;
    let h = Server::bind_with("127.0.0.1:0", config)?.spawn()?;
    let conn = client(&h);
    let root = conn.root()?;
    // small frames never draw on the budget
    assert_eq!(root.call_method::<i64>("add", (1, 2))?, 3);
    let t0 = Instant::now();
    // incompressible, so that the frame stays over the budget
    let big = common::noise(1 << 20, 0x2545_F491_4F6C_DD1D);
    let e = root
        .call_method::<Value>("echo", (Value::Bytes(big),))
        .unwrap_err();
    assert!(matches!(e, Error::Closed(_)), "{e}");
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(1900) && waited < Duration::from_secs(10),
        "{waited:?}"
    );
    // the server goes on with other clients
    assert_eq!(client(&h).root()?.call_method::<i64>("add", (2, 2))?, 4);
    Ok(())
}

#[test]
fn connect_timeout_and_refused() {
    // nothing listens on port 1: refused at once, with the address and a hint
    let e = Connection::connect("127.0.0.1:1").unwrap_err();
    assert!(
        e.to_string().contains("is an RPyC server listening there?"),
        "{e}"
    );
}

#[test]
fn awaiting_answers() -> rpyc::Result<()> {
    let h = server();
    let conn = client(&h);
    let root = conn.root()?;
    let add: NetRef = root.getattr("add")?;
    let futures: Vec<_> = (0..10)
        .map(|i| add.call_async((i, 1)))
        .collect::<rpyc::Result<_>>()?;
    let results = common::block_on(async {
        let mut out = Vec::new();
        for f in futures {
            out.push(i64::try_from(f.await?)?);
        }
        Ok::<_, Error>(out)
    })?;
    assert_eq!(results, (1..=10).collect::<Vec<_>>());
    // the background reader serves callbacks while the task awaits
    let double = common::int_callback("double", |x| Ok(x * 2));
    let r = common::block_on(root.call_method_async("apply", (double, 21))?)?;
    assert_eq!(r, Value::Int(42));
    // remote exceptions come through the future; sync calls still work alongside
    let e = common::block_on(root.call_method_async("divide", (1.0, 0.0))?).unwrap_err();
    assert!(e.is_remote("ZeroDivisionError"), "{e}");
    assert_eq!(root.call_method::<i64>("add", (2, 3))?, 5);
    // closing wakes whoever awaits
    let slow = root.call_method_async("sleep_ms", (2000u64,))?;
    conn.close();
    assert!(matches!(common::block_on(slow), Err(Error::Closed(_))));
    Ok(())
}

#[test]
fn a_netref_of_another_connection_is_refused() -> rpyc::Result<()> {
    let (h1, h2) = (server(), server());
    let (c1, c2) = (client(&h1), client(&h2));
    let adder: NetRef = c1.root()?.call_method("make_adder", (1,))?;
    let e = c2
        .root()?
        .call_method::<i64>("apply", (&adder, 1))
        .unwrap_err();
    assert!(matches!(e, Error::Conversion(_)), "{e}");
    assert!(
        e.to_string()
            .contains("of another connection cannot be sent"),
        "{e}"
    );
    // nothing was sent: both connections go on
    assert_eq!(adder.call::<i64>((5,))?, 6);
    assert_eq!(c2.root()?.call_method::<i64>("add", (1, 2))?, 3);
    Ok(())
}
