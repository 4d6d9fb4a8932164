//! The Rust client's side of `bench/rust_crate.py`: against `bench/workers/server.py`
//! (`add`, `echo`) or the Rust example server.
//!
//! ```text
//! bench_client --port P --bench call|echo|multi [--n N] [--warmup W] [--size-mib S]
//! ```
//! Prints `BENCH-RESULT {"n": .., "total_s": .., "us_per_op": ..}` (the workers' format).
//!
//! `multi` is one of several concurrent clients, as `bench/workers/client.py multi`: connect,
//! `W` warm-up calls of `add(1, 2)`, print `READY`, wait for a `GO` line on stdin, then `N`
//! calls, without busy polling; its result also has `start` and `end`, seconds of the
//! system clock (the same clock in every process, so the orchestrator takes the span of all
//! the clients).

use rpyc::{Bytes, Config, Connection, NetRef, Value};
use std::io::{BufRead, Write};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn main() -> rpyc::Result<()> {
    let (mut port, mut bench, mut n, mut warmup, mut size_mib) = (
        String::new(),
        String::from("call"),
        20_000u64,
        1_000u64,
        64usize,
    );
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let v = args.next().unwrap_or_default();
        match a.as_str() {
            "--port" => port = v,
            "--bench" => bench = v,
            "--n" => n = v.parse().unwrap_or(n),
            "--warmup" => warmup = v.parse().unwrap_or(warmup),
            "--size-mib" => size_mib = v.parse().unwrap_or(size_mib),
            other => {
                eprintln!("unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    let config = Config {
        sync_request_timeout: Some(Duration::from_secs(600)),
        // A load generator among 7 others on a few cores blocks at once: the cores its polls
        // would take are the server's.
        busy_poll: if bench == "multi" {
            Duration::ZERO
        } else {
            Config::default().busy_poll
        },
        ..Config::default()
    };
    let conn = Connection::connect_with(format!("127.0.0.1:{port}").as_str(), config)?;
    let root = conn.root()?;
    // (`span`: extra fields of the result, the multi clients' start and end.)
    let (total, ops, span) = match bench.as_str() {
        "call" => {
            let add: NetRef = root.getattr("add")?;
            assert_eq!(add.call::<i64>((1, 2))?, 3, "add(1, 2)");
            for _ in 0..warmup {
                add.call::<i64>((1, 2))?;
            }
            let t0 = Instant::now();
            for _ in 0..n {
                add.call::<i64>((1, 2))?;
            }
            (t0.elapsed(), n, String::new())
        }
        "echo" => {
            // incompressible: a 1 MiB block of xorshift noise, repeated
            let mut x = 0x9E37_79B9_7F4A_7C15u64;
            let block: Vec<u8> = (0..1 << 20)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let echo: NetRef = root.getattr("echo")?;
            let mut back: Bytes = echo.call((Value::Bytes(block.repeat(size_mib)),))?;
            assert_eq!(back.0.len(), size_mib << 20, "echo length");
            let t0 = Instant::now();
            for _ in 0..n {
                // What came back (the same bytes) is the next argument: no clone of the
                // payload per call, a copy the Python client does not make.
                back = echo.call((Value::from(back),))?;
            }
            (t0.elapsed(), n, String::new())
        }
        "multi" => {
            let add: NetRef = root.getattr("add")?;
            for _ in 0..warmup {
                assert_eq!(add.call::<i64>((1, 2))?, 3, "add(1, 2)");
            }
            println!("READY");
            std::io::stdout().flush()?;
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            if line.trim() != "GO" {
                std::process::exit(2);
            }
            let start = now_s();
            let t0 = Instant::now();
            for _ in 0..n {
                add.call::<i64>((1, 2))?;
            }
            let total = t0.elapsed();
            let span = format!("\"start\": {start}, \"end\": {}, ", now_s());
            (total, n, span)
        }
        other => {
            eprintln!("unknown bench {other}");
            std::process::exit(2);
        }
    };
    println!(
        "BENCH-RESULT {{\"n\": {ops}, {span}\"total_s\": {}, \"us_per_op\": {}}}",
        total.as_secs_f64(),
        total.as_secs_f64() / ops as f64 * 1e6
    );
    conn.close();
    Ok(())
}

/// Seconds since the epoch: a clock every client process shares.
fn now_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}
