//! A service with `async fn` methods on the tokio server (feature `tokio`): a slow call
//! holds no thread while it waits, so slow calls of many clients overlap, and a method can
//! await a function of its caller.
//!
//! ```text
//! cargo run -p rpyc --features tokio --example async_server -- --port 18863 &
//! python -c "import rpyc; c = rpyc.connect('127.0.0.1', 18863); print(c.root.slow(0.5))"
//! ```
//! Prints `listening on 127.0.0.1:PORT` once it accepts (`--port 0` picks a free port). The
//! runtime has one thread: nothing here may block it.

use rpyc::tokio::{NetRef, Server};
use std::time::Duration;

struct Waiter;

#[rpyc::service(name = "async_server.Waiter")]
impl Waiter {
    /// Waits `secs` (a timer of the runtime, no thread held), then returns them.
    async fn slow(&self, secs: f64) -> rpyc::Result<f64> {
        if !(0.0..=60.0).contains(&secs) {
            return Err(rpyc::Error::value_error("secs must be within 0..=60"));
        }
        tokio::time::sleep(Duration::from_secs_f64(secs)).await;
        Ok(secs)
    }

    /// Awaits `func(value)` (a function of the caller) and doubles what it returns.
    async fn call_back(&self, func: NetRef, value: i64) -> rpyc::Result<i64> {
        let r: i64 = func.call((value,)).await?;
        Ok(r * 2)
    }

    /// A synchronous method: runs on the runtime's blocking pool.
    fn add(&self, x: i64, y: i64) -> i64 {
        x + y
    }
}

fn main() -> rpyc::Result<()> {
    let mut port = "18863".to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--port" => port = args.next().unwrap_or_default(),
            other => {
                eprintln!("usage: async_server [--port N] (unknown argument {other})");
                std::process::exit(2);
            }
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let server = Server::bind(format!("127.0.0.1:{port}"), Waiter).await?;
        if let Some(addr) = server.local_addr() {
            println!("listening on {addr}");
        }
        server.serve_forever().await
    })
}
