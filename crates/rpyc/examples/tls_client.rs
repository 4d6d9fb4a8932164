//! Call a Python service over TLS (rustls).
//!
//! ```text
//! cargo run -p rpyc --example tls_client -- localhost:PORT --ca ca.pem [--cert client.pem --key client.key] [--calls N]
//! ```
//! Against `tests/peers/tls_peer.py server` (add, echo, call_back, client_common_name); prints
//! one JSON line.

use rpyc::{Args, Bytes, Config, Connection, TlsClient, Value};
use std::time::{Duration, Instant};

fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "localhost:18821".into());
    let mut tls = TlsClient::default();
    let mut calls = 0u32;
    while let Some(a) = args.next() {
        let v = args.next().unwrap_or_default();
        match a.as_str() {
            "--ca" => tls.ca_file = Some(v.into()),
            "--cert" => tls.cert_file = Some(v.into()),
            "--key" => tls.key_file = Some(v.into()),
            "--server-name" => tls.server_name = Some(v),
            "--calls" => calls = v.parse().unwrap_or(0),
            other => {
                eprintln!("unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    match run(&addr, &tls, calls) {
        Ok(line) => println!("{line}"),
        Err(e) => {
            println!("{{\"ok\": false, \"error\": {:?}}}", e.to_string());
            std::process::exit(1);
        }
    }
}

fn run(addr: &str, tls: &TlsClient, calls: u32) -> rpyc::Result<String> {
    let config = Config {
        sync_request_timeout: Some(Duration::from_secs(10)),
        ..Config::default()
    };
    let conn = Connection::connect_tls(addr, tls, config)?;
    let root = conn.root()?;
    let add: i64 = root.call_method("add", (2, 3))?;
    let payload: Vec<u8> = (0..=255u8).cycle().take(1 << 20).collect();
    let back: Bytes = root.call_method("echo", (Value::Bytes(payload.clone()),))?;
    let plus_one = rpyc::callback(|args: Args| {
        let v: i64 = rpyc::arg(
            "f",
            "v",
            args.positional.into_iter().next().unwrap_or_default(),
        )?;
        Ok(Value::from(v + 1))
    });
    let callback: i64 = root.call_method("call_back", (plus_one, 20))?;
    let cn: Option<String> = root.call_method("client_common_name", ())?;
    let t0 = Instant::now();
    for i in 0..calls {
        let n: i64 = root.call_method("add", (i, 1))?;
        assert_eq!(n, i64::from(i) + 1);
    }
    let secs = t0.elapsed().as_secs_f64();
    conn.close();
    Ok(format!(
        "{{\"ok\": true, \"add\": {add}, \"echo_ok\": {}, \"callback\": {callback}, \"client_cn\": {}, \"calls_s\": {secs:.3}}}",
        back.0 == payload,
        cn.map_or("null".to_owned(), |c| format!("{c:?}"))
    ))
}
