//! TLS on the tokio driver: a tokio TLS client and server in-process over 127.0.0.1, with
//! certificates made by the openssl CLI at test time (scripts/openssl-recipe-certs.sh, the
//! recipe of upstream RPyC's test_ssl.py): calls and callbacks, a 1 MiB value, a wrong CA
//! and a wrong host name refused with errors that say so, mutual TLS, both drivers against
//! each other, and a client stalling its handshake delaying nobody. Needs the `openssl`
//! command; without it each test says so and checks nothing.

use rpyc::tokio::{Connection, Server, ServerHandle};
use rpyc::{Args, Bytes, Config, TlsClient, TlsServer, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;
use tokio::time::timeout;

/// Every test is bounded.
const LIMIT: Duration = Duration::from_secs(30);

struct Calc;

#[rpyc::service(name = "tests.TlsCalc")]
impl Calc {
    fn add(&self, x: i64, y: i64) -> i64 {
        x + y
    }

    fn echo(&self, v: Value) -> Value {
        v
    }

    /// Calls `f` back while the caller awaits this call.
    fn apply(&self, f: rpyc::NetRef, x: i64) -> rpyc::Result<i64> {
        f.call((x,))
    }
}

/// The recipe's certificates, made once per test binary (`None`: no openssl command).
fn pki() -> Option<&'static Path> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| {
        if Command::new("openssl").arg("version").output().is_err() {
            eprintln!("tokio_tls: the openssl command is missing; nothing checked");
            return None;
        }
        // (Under target/: remade by every run, never left in the system's temp dir.)
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("tokio-tls-pki");
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/openssl-recipe-certs.sh");
        let made = Command::new("bash")
            .arg(script)
            .arg(&dir)
            .output()
            .expect("bash runs");
        assert!(
            made.status.success(),
            "openssl-recipe-certs.sh failed: {}",
            String::from_utf8_lossy(&made.stderr)
        );
        Some(dir)
    })
    .as_deref()
}

fn server_tls(pki: &Path) -> TlsServer {
    TlsServer {
        cert_file: pki.join("server.crt"),
        key_file: pki.join("server.key"),
        client_ca_file: None,
    }
}

fn client_tls(pki: &Path) -> TlsClient {
    TlsClient {
        ca_file: Some(pki.join("server.crt")),
        ..TlsClient::default()
    }
}

async fn tls_server(tls: &TlsServer) -> ServerHandle {
    Server::bind_tls("127.0.0.1:0", Calc, tls)
        .await
        .expect("bind")
        .spawn()
        .expect("spawn")
}

/// `localhost:PORT`: the name in the server's certificate.
fn addr(h: &ServerHandle) -> String {
    format!("localhost:{}", h.local_addr().expect("tcp").port())
}

fn config() -> Config {
    Config {
        sync_request_timeout: Some(Duration::from_secs(10)),
        ..Config::default()
    }
}

async fn connect(h: &ServerHandle, tls: &TlsClient) -> rpyc::Result<Connection> {
    timeout(LIMIT, Connection::connect_tls(&addr(h), tls, config()))
        .await
        .expect("bounded")
}

#[tokio::test]
async fn calls_callbacks_and_a_large_value_over_tls() -> rpyc::Result<()> {
    let Some(pki) = pki() else { return Ok(()) };
    let h = tls_server(&server_tls(pki)).await;
    let conn = connect(&h, &client_tls(pki)).await?;
    let root = conn.root().await?;
    let r: i64 = root.call_method("add", (2, 3)).await?;
    assert_eq!(r, 5);
    // Frames larger than a TLS record (16 KiB) both ways.
    let payload: Vec<u8> = (0..=255u8).cycle().take(1 << 20).collect();
    let back: Bytes = timeout(
        LIMIT,
        root.call_method("echo", (Value::Bytes(payload.clone()),)),
    )
    .await
    .expect("bounded")?;
    assert_eq!(back.0, payload);
    let plus_one = rpyc::callback(|args: Args| {
        let x: i64 = rpyc::arg(
            "f",
            "x",
            args.positional.into_iter().next().unwrap_or_default(),
        )?;
        Ok(Value::from(x + 1))
    });
    let r: i64 = root.call_method("apply", (plus_one, 41)).await?;
    assert_eq!(r, 42);
    for i in 0..50 {
        let r: i64 = root.call_method("add", (i, 1)).await?;
        assert_eq!(r, i + 1);
    }
    assert_eq!(conn.peer_features(), vec!["quiet_del"]);
    Ok(())
}

#[tokio::test]
async fn a_wrong_ca_or_host_name_is_refused_with_a_clear_error() {
    let Some(pki) = pki() else { return };
    let h = tls_server(&server_tls(pki)).await;
    let stranger = TlsClient {
        ca_file: Some(pki.join("stranger.crt")),
        ..TlsClient::default()
    };
    let e = connect(&h, &stranger).await.expect_err("unknown CA");
    let msg = e.to_string();
    assert!(
        msg.contains("TLS handshake failed") && msg.contains("UnknownIssuer"),
        "{msg}"
    );
    assert!(msg.contains("check the CA"), "{msg}");
    let wrong_name = TlsClient {
        server_name: Some("example.invalid".into()),
        ..client_tls(pki)
    };
    let e = connect(&h, &wrong_name).await.expect_err("wrong name");
    assert!(e.to_string().contains("not valid for name"), "{e}");
    // The server goes on serving the next client.
    let conn = connect(&h, &client_tls(pki)).await.expect("a good client");
    let r: i64 = conn
        .root()
        .await
        .unwrap()
        .call_method("add", (1, 1))
        .await
        .unwrap();
    assert_eq!(r, 2);
}

#[tokio::test]
async fn mutual_tls_requires_a_client_certificate_of_the_ca() -> rpyc::Result<()> {
    let Some(pki) = pki() else { return Ok(()) };
    let h = tls_server(&TlsServer {
        // The recipe's v1 client.crt is signed by server.crt.
        client_ca_file: Some(pki.join("server.crt")),
        ..server_tls(pki)
    })
    .await;
    let with_cert = TlsClient {
        cert_file: Some(pki.join("client.crt")),
        key_file: Some(pki.join("client.key")),
        ..client_tls(pki)
    };
    let conn = connect(&h, &with_cert).await?;
    let r: i64 = conn.root().await?.call_method("add", (20, 22)).await?;
    assert_eq!(r, 42);
    // Without a certificate (TLS 1.3: the server's refusal may come with the first read,
    // after the client's handshake ended), no call succeeds.
    let refused = match connect(&h, &client_tls(pki)).await {
        Err(e) => e.to_string(),
        Ok(c) => match c.root().await {
            Err(e) => e.to_string(),
            Ok(_) => String::new(),
        },
    };
    assert!(
        !refused.is_empty(),
        "a client without a certificate was served"
    );
    let stranger = TlsClient {
        cert_file: Some(pki.join("stranger-client.crt")),
        key_file: Some(pki.join("stranger-client.key")),
        ..client_tls(pki)
    };
    let refused = match connect(&h, &stranger).await {
        Err(_) => true,
        Ok(c) => c.root().await.is_err(),
    };
    assert!(refused, "a client certificate of another CA was accepted");
    Ok(())
}

#[tokio::test]
async fn the_blocking_and_tokio_drivers_speak_tls_to_each_other() -> rpyc::Result<()> {
    let Some(pki) = pki() else { return Ok(()) };
    // A blocking client against the tokio TLS server (on a thread: it blocks).
    let h = tls_server(&server_tls(pki)).await;
    let (a, tls) = (addr(&h), client_tls(pki));
    let r = tokio::task::spawn_blocking(move || -> rpyc::Result<i64> {
        let conn = rpyc::Connection::connect_tls(&a, &tls, config())?;
        conn.root()?.call_method("add", (3, 4))
    })
    .await
    .expect("joined")?;
    assert_eq!(r, 7);
    // A tokio client against the blocking TLS server.
    let blocking = rpyc::Server::bind_tls("127.0.0.1:0", Calc, &server_tls(pki))?.spawn()?;
    let port = blocking.local_addr().expect("tcp").port();
    let conn = timeout(
        LIMIT,
        Connection::connect_tls(&format!("localhost:{port}"), &client_tls(pki), config()),
    )
    .await
    .expect("bounded")?;
    let r: i64 = conn.root().await?.call_method("add", (5, 6)).await?;
    assert_eq!(r, 11);
    drop(conn);
    blocking.close();
    Ok(())
}

#[tokio::test]
async fn a_client_stalling_its_handshake_delays_nobody() -> rpyc::Result<()> {
    let Some(pki) = pki() else { return Ok(()) };
    let h = tls_server(&server_tls(pki)).await;
    // Connected, silent: its handshake waits in its own task.
    let _silent = tokio::net::TcpStream::connect(h.local_addr().expect("tcp")).await?;
    let conn = connect(&h, &client_tls(pki)).await?;
    let r: i64 = conn.root().await?.call_method("add", (1, 2)).await?;
    assert_eq!(r, 3);
    Ok(())
}

#[tokio::test]
async fn a_plain_client_gets_nowhere_and_a_plain_server_is_no_tls_server() {
    let Some(pki) = pki() else { return };
    let h = tls_server(&server_tls(pki)).await;
    let cfg = Config {
        sync_request_timeout: Some(Duration::from_secs(2)),
        ..Config::default()
    };
    let plain = Connection::connect_with(h.local_addr().expect("tcp"), cfg.clone())
        .await
        .expect("tcp connects");
    assert!(plain.root().await.is_err());
    // A TLS client against a plain server: the handshake fails, within the timeout.
    let plain_server = Server::bind("127.0.0.1:0", Calc)
        .await
        .expect("bind")
        .spawn()
        .expect("spawn");
    let port = plain_server.local_addr().expect("tcp").port();
    let e = timeout(
        LIMIT,
        Connection::connect_tls(&format!("localhost:{port}"), &client_tls(pki), cfg),
    )
    .await
    .expect("bounded")
    .expect_err("no TLS there");
    assert!(e.to_string().contains("TLS handshake failed"), "{e}");
}
