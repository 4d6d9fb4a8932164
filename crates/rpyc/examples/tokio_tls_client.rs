//! Call a Python service over TLS from tokio (features `tokio` and `tls`).
//!
//! ```text
//! cargo run -p rpyc --features tokio --example tokio_tls_client -- localhost:PORT --ca ca.pem [--cert client.pem --key client.key] [--server-name NAME] [--calls N]
//! ```
//! Against `tests/peers/tls_peer.py server` (add, echo, call_back, client_common_name); prints
//! one JSON line, as the blocking `tls_client` example does. The runtime is a current-thread
//! one: every await below leaves the one thread free for the driver (and the callback).

use rpyc::tokio::Connection;
use rpyc::{Args, Bytes, Config, TlsClient, Value};
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
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| {
            eprintln!("cannot start a tokio runtime: {e}");
            std::process::exit(2)
        });
    match runtime.block_on(run(&addr, &tls, calls)) {
        Ok(line) => println!("{line}"),
        Err(e) => {
            println!("{{\"ok\": false, \"error\": {:?}}}", e.to_string());
            std::process::exit(1);
        }
    }
}

async fn run(addr: &str, tls: &TlsClient, calls: u32) -> rpyc::Result<String> {
    let config = Config {
        sync_request_timeout: Some(Duration::from_secs(10)),
        ..Config::default()
    };
    let conn = Connection::connect_tls(addr, tls, config).await?;
    let root = conn.root().await?;
    let add: i64 = root.call_method("add", (2, 3)).await?;
    let payload: Vec<u8> = (0..=255u8).cycle().take(1 << 20).collect();
    let back: Bytes = root
        .call_method("echo", (Value::Bytes(payload.clone()),))
        .await?;
    // Called by the server while this task awaits `call_back`.
    let plus_one = rpyc::callback(|args: Args| {
        let v: i64 = rpyc::arg(
            "f",
            "v",
            args.positional.into_iter().next().unwrap_or_default(),
        )?;
        Ok(Value::from(v + 1))
    });
    let callback: i64 = root.call_method("call_back", (plus_one, 20)).await?;
    let cn: Option<String> = root.call_method("client_common_name", ()).await?;
    let t0 = Instant::now();
    for i in 0..calls {
        let n: i64 = root.call_method("add", (i, 1)).await?;
        if n != i64::from(i) + 1 {
            return Err(rpyc::Error::Conversion(format!("add({i}, 1) gave {n}")));
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    conn.close();
    Ok(format!(
        "{{\"ok\": true, \"add\": {add}, \"echo_ok\": {}, \"callback\": {callback}, \"client_cn\": {}, \"calls_s\": {secs:.3}}}",
        back.0 == payload,
        cn.map_or("null".to_owned(), |c| format!("{c:?}"))
    ))
}
