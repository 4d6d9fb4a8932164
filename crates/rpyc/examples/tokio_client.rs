//! The tokio client (feature `tokio`) against a Python server: the interop suite's
//! tests/peers/server.py (ours or upstream rpyc 6.0.2; tests/rust/test_rust_tokio.py runs
//! it). Prints `ok NAME` or `FAIL NAME: why` per check; exit status 1 if one failed.
//!
//! ```text
//! python tests/peers/server.py --port 18861 &
//! cargo run -p rpyc --features tokio --example tokio_client -- --port 18861
//! ```
//! `--bind-threads` for a server started in `bind_threads` mode.

use rpyc::tokio::{Connection, NetRef};
use rpyc::{Args, Config, Error, Value};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

type Outcome = Result<(), String>;

fn ensure(ok: bool, what: impl FnOnce() -> String) -> Outcome {
    if ok {
        Ok(())
    } else {
        Err(what())
    }
}

fn e(err: Error) -> String {
    err.to_string()
}

/// What this client exposes: the server's `ask_client` calls `conn.root.whoami()` and
/// `conn.root.add_one(41)` on it.
struct Client;

#[rpyc::service(name = "tokio_client.Client")]
impl Client {
    fn whoami(&self) -> String {
        "rust-tokio".into()
    }

    fn add_one(&self, x: i64) -> i64 {
        x + 1
    }
}

async fn calls(conn: &Connection) -> Outcome {
    let root = conn.root().await.map_err(e)?;
    if let Ok(expect) = std::env::var("RPYC_EXPECT_FEATURES") {
        let got = conn.peer_features().join(",");
        ensure(got == expect, || {
            format!("peer features {got:?}, expected {expect:?}")
        })?;
    }
    let n: i64 = root.call_method("add", (5, 10)).await.map_err(e)?;
    ensure(n == 15, || format!("add(5, 10) = {n}"))?;
    let s: String = root.call_method("add", ("ab", "cd")).await.map_err(e)?;
    ensure(s == "abcd", || format!("add('ab', 'cd') = {s:?}"))?;
    let add: NetRef = root.getattr("add").await.map_err(e)?;
    let n: i64 = add.call((1, 2)).await.map_err(e)?;
    ensure(n == 3, || format!("root.add(1, 2) = {n}"))?;
    let back: Value = root
        .call_method("echo", (Value::tuple([Value::from(1), Value::str("x")]),))
        .await
        .map_err(e)?;
    ensure(
        back == Value::tuple([Value::from(1), Value::str("x")]),
        || format!("echo = {back:?}"),
    )
}

async fn references(conn: &Connection) -> Outcome {
    let root = conn.root().await.map_err(e)?;
    let obj: NetRef = root.call_method("make_obj", (7,)).await.map_err(e)?;
    let v: i64 = obj.getattr("value").await.map_err(e)?;
    ensure(v == 7, || format!("obj.value = {v}"))?;
    let v: i64 = obj.call_method("bump", (3,)).await.map_err(e)?;
    ensure(v == 10, || format!("obj.bump(3) = {v}"))?;
    let r = obj.repr().await.map_err(e)?;
    ensure(r == "Thing(10)", || format!("repr = {r:?}"))?;
    let s = obj.str().await.map_err(e)?;
    ensure(s == "thing:10", || format!("str = {s:?}"))?;
    let n = obj.len().await.map_err(e)?;
    ensure(n == 7, || format!("len = {n}"))?;
    let list: NetRef = root.call_method("get_list", ()).await.map_err(e)?;
    let items: Vec<i64> = list.to_vec().await.map_err(e)?;
    ensure(items == [1, 2, 3], || format!("list = {items:?}"))?;
    let first: i64 = list.getitem(0).await.map_err(e)?;
    ensure(first == 1, || format!("list[0] = {first}"))
}

async fn exceptions(conn: &Connection) -> Outcome {
    let root = conn.root().await.map_err(e)?;
    match root.call_method::<Value>("fail_value", ("boom",)).await {
        Err(err) if err.is_remote("ValueError") => {
            let msg = err.remote().map(|r| r.message()).unwrap_or_default();
            ensure(msg == "boom", || format!("message {msg:?}"))?;
        }
        other => return Err(format!("fail_value: {other:?}")),
    }
    match root.call_method::<Value>("fail_key", ("k",)).await {
        Err(err) if err.is_remote("KeyError") => Ok(()),
        other => Err(format!("fail_key: {other:?}")),
    }
}

async fn callbacks(conn: &Connection) -> Outcome {
    let root = conn.root().await.map_err(e)?;
    // The server runs `fn(x) * 2`, `fn` being this closure, served by our driver.
    let calls = Arc::new(AtomicI64::new(0));
    let counted = calls.clone();
    let plus_one = rpyc::callback(move |args: Args| {
        counted.fetch_add(1, Ordering::SeqCst);
        let mut it = args.bind("plus_one", &["x"])?.into_iter();
        let x: i64 = rpyc::arg("plus_one", "x", it.next().unwrap_or_default())?;
        Ok(Value::from(x + 1))
    });
    let r: i64 = root
        .call_method("call_me", (plus_one, 20))
        .await
        .map_err(e)?;
    ensure(r == 42 && calls.load(Ordering::SeqCst) == 1, || {
        format!("call_me(x + 1, 20) = {r}")
    })?;
    // Nested: the closure calls the server while the server waits for it.
    let inner = root.inner().clone();
    let nested = rpyc::callback(move |args: Args| {
        let mut it = args.bind("nested", &["x"])?.into_iter();
        let x: i64 = rpyc::arg("nested", "x", it.next().unwrap_or_default())?;
        let s: i64 = inner.call_method("add", (x, 100))?;
        Ok(Value::from(s))
    });
    let r: i64 = root.call_method("call_me", (nested, 1)).await.map_err(e)?;
    ensure(r == 202, || format!("call_me(add(x, 100), 1) = {r}"))?;
    // The server calls this client's root.
    let (who, n): (String, i64) = root.call_method("ask_client", ()).await.map_err(e)?;
    ensure(who == "rust-tokio" && n == 42, || {
        format!("ask_client = ({who:?}, {n})")
    })?;
    // An error raised here is raised in the server's code.
    let failing = rpyc::callback(|_| Err(Error::value_error("no, thanks")));
    let r: String = root
        .call_method("call_catch", (failing,))
        .await
        .map_err(e)?;
    ensure(r == "caught:no, thanks", || format!("call_catch = {r:?}"))
}

async fn concurrency(conn: &Arc<Connection>) -> Outcome {
    let root = conn.root().await.map_err(e)?;
    let tasks: Vec<_> = (0..100i64)
        .map(|i| {
            let root = root.clone();
            tokio::spawn(async move { root.call_method::<i64>("add", (i, 1000)).await })
        })
        .collect();
    for (i, t) in tasks.into_iter().enumerate() {
        let n = t.await.map_err(|j| j.to_string())?.map_err(e)?;
        ensure(n == i as i64 + 1000, || format!("task {i}: {n}"))?;
    }
    Ok(())
}

async fn releases(conn: &Connection) -> Outcome {
    let root = conn.root().await.map_err(e)?;
    let before: i64 = root.call_method("table_size", ()).await.map_err(e)?;
    let mut objs = Vec::new();
    for i in 0..20 {
        let o: NetRef = root.call_method("make_obj", (i,)).await.map_err(e)?;
        objs.push(o);
    }
    let during: i64 = root.call_method("table_size", ()).await.map_err(e)?;
    ensure(during >= before + 20, || {
        format!("table {before} -> {during}")
    })?;
    drop(objs);
    // The releases travel ahead of the next request.
    let after: i64 = root.call_method("table_size", ()).await.map_err(e)?;
    ensure(after == before, || {
        format!("table {before} -> {during} -> {after} after drop")
    })
}

async fn timeout(addr: &str, config: &Config) -> Outcome {
    let config = Config {
        sync_request_timeout: Some(Duration::from_millis(300)),
        ..config.clone()
    };
    let conn = Connection::connect_with(addr, config).await.map_err(e)?;
    let root = conn.root().await.map_err(e)?;
    let t0 = Instant::now();
    match root.call_method::<Value>("sleep", (1.5,)).await {
        Err(Error::Timeout(_)) => {}
        other => return Err(format!("sleep(1.5) with a 0.3 s timeout: {other:?}")),
    }
    ensure(t0.elapsed() < Duration::from_millis(1200), || {
        format!("timed out after {:?}", t0.elapsed())
    })?;
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let n: i64 = root.call_method("add", (2, 2)).await.map_err(e)?;
    ensure(n == 4, || "usable after a timeout".into())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let mut port = None;
    let mut bind_threads = false;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--port" => port = args.next(),
            // (a server started with bind_threads: each request is served on the thread of
            // the peer thread that made it, callbacks included)
            "--bind-threads" => bind_threads = true,
            other => {
                eprintln!("usage: tokio_client [--port N] [--bind-threads] (not {other})");
                std::process::exit(2);
            }
        }
    }
    let port = port.unwrap_or_else(|| "18861".into());
    let addr = format!("127.0.0.1:{port}");
    let mut config = Config {
        sync_request_timeout: Some(Duration::from_secs(10)),
        service: Some(Arc::new(Client)),
        ..Config::default()
    };
    config.wire.bind_threads = bind_threads;
    let conn = match Connection::connect_with(addr.as_str(), config.clone()).await {
        Ok(c) => Arc::new(c),
        Err(err) => {
            println!("FAIL connect: {err}");
            std::process::exit(1);
        }
    };
    let results = [
        ("calls", calls(&conn).await),
        ("references", references(&conn).await),
        ("exceptions", exceptions(&conn).await),
        ("callbacks", callbacks(&conn).await),
        ("concurrency", concurrency(&conn).await),
        ("releases", releases(&conn).await),
        ("timeout", timeout(&addr, &config).await),
    ];
    let mut failed = false;
    for (name, r) in results {
        match r {
            Ok(()) => println!("ok {name}"),
            Err(why) => {
                failed = true;
                println!("FAIL {name}: {why}");
            }
        }
    }
    conn.close();
    let why = conn.wait_closed().await;
    println!("closed: {why}");
    std::process::exit(i32::from(failed));
}
