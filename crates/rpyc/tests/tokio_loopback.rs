//! The tokio driver: a tokio client and a tokio server in-process over 127.0.0.1 (and a
//! Unix socket): calls, typed errors, 100 calls in flight from many tasks on one
//! connection, callbacks both ways (nested), releases, timeouts, hostile bytes both ways,
//! and the tokio driver against the blocking one.

mod common;

use rpyc::tokio::{Connection, NetRef, Server, ServerHandle};
use rpyc::{Args, Config, Error, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

/// Every test is bounded.
const LIMIT: Duration = Duration::from_secs(20);

#[derive(Default)]
struct Calc {
    kept: Mutex<Vec<rpyc::NetRef>>,
    running: AtomicUsize,
    most: AtomicUsize,
}

#[rpyc::service(name = "tests.TokioCalc")]
impl Calc {
    fn add(&self, x: i64, y: i64) -> i64 {
        x + y
    }

    fn divide(&self, x: f64, y: f64) -> rpyc::Result<f64> {
        if y == 0.0 {
            return Err(Error::raise("ZeroDivisionError", "division by zero"));
        }
        Ok(x / y)
    }

    /// Calls `f` back (a blocking call on a tokio connection, from the blocking pool).
    fn apply(&self, f: rpyc::NetRef, x: i64) -> rpyc::Result<i64> {
        f.call((x,))
    }

    /// Keeps `f` (the peer's object stays referenced) until `drop_kept`.
    fn keep(&self, f: rpyc::NetRef) {
        self.kept.lock().unwrap().push(f);
    }

    fn drop_kept(&self) -> usize {
        std::mem::take(&mut *self.kept.lock().unwrap()).len()
    }

    fn make_adder(&self, n: i64) -> Value {
        rpyc::callback(move |args: Args| {
            let mut it = args.bind("adder", &["x"])?.into_iter();
            let x: i64 = rpyc::arg("adder", "x", it.next().unwrap_or_default())?;
            Ok(Value::from(x + n))
        })
    }

    /// Sleeps, counting how many calls run at once.
    fn slow_add(&self, x: i64, ms: u64) -> i64 {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(ms));
        self.running.fetch_sub(1, Ordering::SeqCst);
        x + 1
    }

    fn most_at_once(&self) -> usize {
        self.most.load(Ordering::SeqCst)
    }

    fn echo(&self, v: Value) -> Value {
        v
    }

    fn panics(&self) -> i64 {
        panic!("a bug in a service method")
    }
}

async fn server() -> ServerHandle {
    Server::bind("127.0.0.1:0", Calc::default())
        .await
        .and_then(Server::spawn)
        .expect("server starts")
}

async fn client(h: &ServerHandle) -> Connection {
    Connection::connect(h.local_addr().expect("tcp"))
        .await
        .expect("connects")
}

#[tokio::test]
async fn calls_and_errors() -> rpyc::Result<()> {
    timeout(LIMIT, async {
        let h = server().await;
        let conn = client(&h).await;
        let root = conn.root().await?;
        assert_eq!(root.type_name(), "tests.TokioCalc");
        assert_eq!(root.call_method::<i64>("add", (5, 10)).await?, 15);
        let add: NetRef = root.getattr("add").await?;
        assert_eq!(add.call::<i64>((1, 2)).await?, 3);
        assert!(root.repr().await?.contains("tests.TokioCalc"));
        assert!(root.str().await?.contains("tests.TokioCalc"));
        assert!(root.dir().await?.contains(&"add".to_owned()));
        assert_eq!(conn.ping("x").await?, Value::str("x"));
        let back: Value = root
            .call_method("echo", (Value::tuple([Value::from(1), Value::str("a")]),))
            .await?;
        assert_eq!(back, Value::tuple([Value::from(1), Value::str("a")]));
        let e = root
            .call_method::<f64>("divide", (1.0, 0.0))
            .await
            .unwrap_err();
        let remote = e.remote().expect("a remote error");
        assert_eq!(remote.name, "ZeroDivisionError");
        assert_eq!(remote.message(), "division by zero");
        let e = root.call_method::<i64>("add", ("a", 1)).await.unwrap_err();
        assert!(e.is_remote("TypeError"), "{e}");
        let e = root.getattr::<Value>("nope").await.unwrap_err();
        assert!(e.is_remote("AttributeError"), "{e}");
        // The rpyc-rs hello was answered: releases are quiet.
        assert!(conn.peer_features().contains(&"quiet_del"));
        // An object of the server, called from here.
        let adder: NetRef = root.call_method("make_adder", (10,)).await?;
        assert_eq!(adder.call::<i64>((5,)).await?, 15);
        assert_eq!(adder.call_kw::<i64, _, _>((), [("x", 1)]).await?, 11);
        conn.close();
        let why = conn.wait_closed().await;
        assert!(why.contains("closed"), "{why}");
        let e = root.call_method::<i64>("add", (1, 2)).await.unwrap_err();
        assert!(matches!(e, Error::Closed(_)), "{e}");
        Ok(())
    })
    .await
    .expect("within the limit")
}

#[tokio::test]
async fn a_hundred_calls_in_flight_from_many_tasks() -> rpyc::Result<()> {
    timeout(LIMIT, async {
        let h = server().await;
        let conn = Arc::new(client(&h).await);
        let root = conn.root().await?;
        let start = Instant::now();
        let tasks: Vec<_> = (0..100)
            .map(|i| {
                let root = root.clone();
                tokio::spawn(async move { root.call_method::<i64>("slow_add", (i, 50)).await })
            })
            .collect();
        let mut sum = 0;
        for t in tasks {
            sum += t.await.expect("task")?;
        }
        assert_eq!(sum, (1..=100).sum::<i64>());
        // 100 calls of 50 ms each ran concurrently (the blocking pool serves them at once).
        let most: usize = root.call_method("most_at_once", ()).await?;
        assert!(most > 10, "at most {most} at once");
        assert!(
            start.elapsed() < Duration::from_secs(4),
            "{:?}",
            start.elapsed()
        );
        // Plain calls from many tasks, many in flight at once.
        let tasks: Vec<_> = (0..100)
            .map(|i| {
                let root = root.clone();
                tokio::spawn(async move { root.call_method::<i64>("add", (i, i)).await })
            })
            .collect();
        for (i, t) in tasks.into_iter().enumerate() {
            assert_eq!(t.await.expect("task")?, 2 * i as i64);
        }
        Ok(())
    })
    .await
    .expect("within the limit")
}

#[tokio::test]
async fn callbacks_both_ways_and_nested() -> rpyc::Result<()> {
    timeout(LIMIT, async {
        let h = server().await;
        let conn = client(&h).await;
        let root = conn.root().await?;
        // The server calls a closure of ours.
        let double = common::int_callback("double", |x| Ok(x * 2));
        assert_eq!(root.call_method::<i64>("apply", (double, 21)).await?, 42);
        // Nested: our closure, called by the server, calls the server again.
        let inner = root.inner().clone();
        let nested = common::int_callback("nested", move |x| inner.call_method("add", (x, 100)));
        assert_eq!(root.call_method::<i64>("apply", (nested, 1)).await?, 101);
        // An error raised by our closure reaches the server and comes back typed.
        let fails = rpyc::callback(|_| Err::<Value, _>(Error::value_error("no thanks")));
        let e = root
            .call_method::<i64>("apply", (fails, 1))
            .await
            .unwrap_err();
        assert!(e.is_remote("ValueError"), "{e}");
        // One of the server's objects passed back to it is its own again.
        let adder: NetRef = root.call_method("make_adder", (1,)).await?;
        let back: Value = root.call_method("echo", (&adder,)).await?;
        assert!(back
            .as_netref()
            .is_some_and(|r| r.same_object(adder.inner())));
        Ok(())
    })
    .await
    .expect("within the limit")
}

#[tokio::test]
async fn releases_go_through_the_driver() -> rpyc::Result<()> {
    timeout(LIMIT, async {
        let h = server().await;
        let conn = client(&h).await;
        let root = conn.root().await?;
        let f = rpyc::callback(|_| Ok(Value::None));
        root.call_method::<Value>("keep", (f.clone(),)).await?;
        root.call_method::<Value>("keep", (f,)).await?;
        assert_eq!(conn.local_objects(), 1);
        // The server drops its references: its driver sends HANDLE_DEL (once per send).
        assert_eq!(root.call_method::<usize>("drop_kept", ()).await?, 2);
        let deadline = Instant::now() + Duration::from_secs(5);
        while conn.local_objects() != 0 {
            assert!(
                Instant::now() < deadline,
                "still {} objects",
                conn.local_objects()
            );
            conn.ping(()).await?;
        }
        // A reference we drop: released by our driver (the server keeps serving).
        let adder: NetRef = root.call_method("make_adder", (1,)).await?;
        drop(adder);
        assert_eq!(root.call_method::<i64>("add", (1, 1)).await?, 2);
        Ok(())
    })
    .await
    .expect("within the limit")
}

#[tokio::test]
async fn timeouts_leave_the_connection_usable() -> rpyc::Result<()> {
    timeout(LIMIT, async {
        let h = server().await;
        let config = Config {
            sync_request_timeout: Some(Duration::from_millis(100)),
            ..Config::default()
        };
        let conn = Connection::connect_with(h.local_addr().expect("tcp"), config).await?;
        let root = conn.root().await?;
        let start = Instant::now();
        let e = root
            .call_method::<i64>("slow_add", (1, 600))
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Timeout(_)), "{e}");
        assert!(start.elapsed() < Duration::from_millis(500));
        // The late answer is dropped; later calls get their own answers.
        assert_eq!(root.call_method::<i64>("add", (2, 3)).await?, 5);
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(root.call_method::<i64>("add", (3, 3)).await?, 6);
        Ok(())
    })
    .await
    .expect("within the limit")
}

#[tokio::test]
async fn a_server_sending_garbage_fails_the_calls() {
    timeout(LIMIT, async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let peer = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            // a frame header announcing 3 GiB
            let _ = s.write_all(b"\xc0\x00\x00\x00\x00garbage").await;
            let _ = s.read(&mut buf).await;
        });
        let conn = Connection::connect(addr).await.expect("connects");
        let e = conn.root().await.unwrap_err();
        assert!(matches!(e, Error::Closed(_) | Error::Wire(_)), "{e}");
        let why = conn.wait_closed().await;
        assert!(why.contains("protocol error"), "{why}");
        let e = conn.ping(1).await.unwrap_err();
        assert!(matches!(e, Error::Closed(_)), "{e}");
        peer.await.unwrap();
    })
    .await
    .expect("within the limit")
}

#[tokio::test]
async fn hostile_bytes_close_that_connection_only() -> rpyc::Result<()> {
    timeout(LIMIT, async {
        let h = server().await;
        let addr = h.local_addr().expect("tcp");
        for bytes in common::HOSTILE {
            let mut s = tokio::net::TcpStream::connect(addr).await?;
            s.write_all(bytes).await?;
            let mut sink = Vec::new();
            // The server closes the connection: EOF (or a reset), within the limit.
            let read = timeout(Duration::from_secs(5), s.read_to_end(&mut sink)).await;
            assert!(
                read.is_ok(),
                "server kept the connection open after {bytes:?}"
            );
        }
        // The server still serves the others.
        let conn = client(&h).await;
        assert_eq!(
            conn.root().await?.call_method::<i64>("add", (1, 2)).await?,
            3
        );
        Ok(())
    })
    .await
    .expect("within the limit")
}

#[cfg(unix)]
#[tokio::test]
async fn over_a_unix_socket() -> rpyc::Result<()> {
    timeout(LIMIT, async {
        let dir = std::env::temp_dir().join(format!("rpyc-tokio-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("s.sock");
        let _ = std::fs::remove_file(&path);
        let h = Server::bind_unix(&path, Calc::default())?.spawn()?;
        let conn = Connection::connect_unix(&path).await?;
        assert_eq!(
            conn.root().await?.call_method::<i64>("add", (4, 5)).await?,
            9
        );
        assert_eq!(h.connections(), 1);
        h.close();
        let why = conn.wait_closed().await;
        assert!(why.contains("closed"), "{why}");
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_dir(&dir);
        Ok(())
    })
    .await
    .expect("within the limit")
}

#[tokio::test]
async fn tokio_and_blocking_drivers_talk() -> rpyc::Result<()> {
    timeout(LIMIT, async {
        // A blocking client (on a thread) against the tokio server, with a callback.
        let h = server().await;
        let addr = h.local_addr().expect("tcp");
        let got = tokio::task::spawn_blocking(move || -> rpyc::Result<i64> {
            let conn = rpyc::Connection::connect(addr)?;
            let root = conn.root()?;
            let triple = common::int_callback("t", |x| Ok(x * 3));
            root.call_method("apply", (triple, 5))
        })
        .await
        .expect("thread")?;
        assert_eq!(got, 15);
        // The tokio client against the blocking server, with a callback.
        let blocking = rpyc::Server::bind("127.0.0.1:0", Calc::default())?.spawn()?;
        let conn = Connection::connect(blocking.local_addr().expect("tcp")).await?;
        let root = conn.root().await?;
        let neg = common::int_callback("n", |x| Ok(-x));
        assert_eq!(root.call_method::<i64>("apply", (neg, 7)).await?, -7);
        drop(conn);
        tokio::task::spawn_blocking(move || blocking.close())
            .await
            .expect("thread");
        Ok(())
    })
    .await
    .expect("within the limit")
}

#[tokio::test]
async fn a_panicking_method_raises_and_the_connection_goes_on() -> rpyc::Result<()> {
    timeout(LIMIT, async {
        let h = server().await;
        let conn = client(&h).await;
        let root = conn.root().await?;
        let e = root.call_method::<i64>("panics", ()).await.unwrap_err();
        assert!(e.is_remote("RuntimeError"), "{e}");
        assert_eq!(root.call_method::<i64>("add", (1, 1)).await?, 2);
        Ok(())
    })
    .await
    .expect("within the limit")
}

#[tokio::test]
async fn the_requests_served_at_once_are_bounded() -> rpyc::Result<()> {
    timeout(LIMIT, async {
        let h = server().await;
        let conn = client(&h).await;
        let root = conn.root().await?;
        // 300 slow calls in flight: all are answered, at most 128 run at once on the server.
        let tasks: Vec<_> = (0..300)
            .map(|i| {
                let root = root.clone();
                tokio::spawn(async move { root.call_method::<i64>("slow_add", (i, 30)).await })
            })
            .collect();
        for (i, t) in tasks.into_iter().enumerate() {
            assert_eq!(t.await.expect("task")?, i as i64 + 1);
        }
        let most: usize = root.call_method("most_at_once", ()).await?;
        assert!(most <= 128 && most > 10, "{most} at once");
        Ok(())
    })
    .await
    .expect("within the limit")
}
