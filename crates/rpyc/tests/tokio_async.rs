//! `async fn` service methods and awaited calls on the tokio driver, in-process over
//! 127.0.0.1. The runtimes here have ONE thread and a blocking pool of one thread: a call
//! that blocked the runtime thread would deadlock, and async methods run on the blocking
//! pool would take turns. So: slow async calls from several clients overlap (timing, with
//! generous bounds, and a count of calls running at once), an async method awaits a
//! callback of the client while the client awaits it, `getattr` then call takes the same
//! path, errors and panics reach the caller, and the threaded server runs async methods
//! too (on a small runtime of its own).

use rpyc::tokio::{Connection, NetRef, Server, ServerHandle};
use rpyc::{Args, Config, Error, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::time::timeout;

/// Every test is bounded.
const LIMIT: Duration = Duration::from_secs(30);

#[derive(Default)]
struct Sleeper {
    running: AtomicUsize,
    most: AtomicUsize,
}

#[rpyc::service(name = "tests.Sleeper")]
impl Sleeper {
    /// Sleeps `secs` without holding a thread; counts the calls running at once.
    async fn slow(&self, secs: f64) -> f64 {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs_f64(secs)).await;
        self.running.fetch_sub(1, Ordering::SeqCst);
        secs
    }

    fn most_at_once(&self) -> usize {
        self.most.load(Ordering::SeqCst)
    }

    /// Awaits the caller's function `f` (a callback while the caller awaits this call).
    async fn apply(&self, f: NetRef, x: i64) -> rpyc::Result<i64> {
        let doubled: i64 = f.call((x,)).await?;
        Ok(doubled + 1)
    }

    async fn fails(&self, why: String) -> rpyc::Result<i64> {
        Err(Error::value_error(why))
    }

    async fn panics(&self) -> i64 {
        panic!("a bug in an async service method")
    }

    fn add(&self, x: i64, y: i64) -> i64 {
        x + y
    }

    /// Returns nothing (`None` for the peer).
    async fn touch(&self) {
        self.running.load(Ordering::SeqCst);
    }
}

/// A runtime with one thread and a blocking pool of one thread.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(1)
        .build()
        .expect("runtime")
}

async fn server() -> (ServerHandle, Arc<Sleeper>) {
    let sleeper = Arc::new(Sleeper::default());
    let config = Config {
        service: Some(sleeper.clone()),
        ..Config::default()
    };
    let h = Server::bind_with("127.0.0.1:0", config)
        .await
        .expect("bind")
        .spawn()
        .expect("spawn");
    (h, sleeper)
}

async fn client(h: &ServerHandle) -> Connection {
    let config = Config {
        sync_request_timeout: Some(Duration::from_secs(20)),
        ..Config::default()
    };
    Connection::connect_with(h.local_addr().expect("tcp"), config)
        .await
        .expect("connect")
}

#[test]
fn slow_async_calls_from_several_clients_overlap() {
    runtime().block_on(async {
        let (h, sleeper) = server().await;
        let mut conns = Vec::new();
        for _ in 0..4 {
            conns.push(client(&h).await);
        }
        let mut roots = Vec::new();
        for c in &conns {
            roots.push(c.root().await.expect("root"));
        }
        // 8 calls of 0.5 s: 4 s one after the other, 0.5 s when they overlap.
        let started = Instant::now();
        let calls = roots.iter().flat_map(|r| {
            (0..2).map(move |_| async move { r.call_method::<f64>("slow", (0.5,)).await })
        });
        let results = timeout(LIMIT, futures_join(calls.collect()))
            .await
            .expect("bounded");
        let took = started.elapsed();
        for r in results {
            assert_eq!(r.expect("slow"), 0.5);
        }
        assert!(took < Duration::from_millis(2500), "took {took:?}");
        assert_eq!(sleeper.most.load(Ordering::SeqCst), 8);
        // A synchronous method of the same service still runs (on the blocking pool).
        let most: usize = roots[0]
            .call_method("most_at_once", ())
            .await
            .expect("sync");
        assert_eq!(most, 8);
    });
}

#[test]
fn a_bound_method_read_with_getattr_is_awaited_too() {
    runtime().block_on(async {
        let (h, sleeper) = server().await;
        let conn = client(&h).await;
        let slow: NetRef = conn.root().await.unwrap().getattr("slow").await.unwrap();
        let started = Instant::now();
        let calls = (0..4).map(|_| slow.call::<f64>((0.5,))).collect();
        for r in timeout(LIMIT, futures_join(calls)).await.expect("bounded") {
            assert_eq!(r.expect("slow"), 0.5);
        }
        assert!(started.elapsed() < Duration::from_millis(1800));
        assert_eq!(sleeper.most.load(Ordering::SeqCst), 4);
    });
}

#[test]
fn an_async_method_awaits_a_callback_while_the_client_awaits_it() {
    // Client and server share the one runtime thread: neither side may block it.
    runtime().block_on(async {
        let (h, _) = server().await;
        let conn = client(&h).await;
        let root = conn.root().await.unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let seen = calls.clone();
        let double = rpyc::callback(move |args: Args| {
            seen.fetch_add(1, Ordering::SeqCst);
            let x: i64 = rpyc::arg(
                "double",
                "x",
                args.positional.into_iter().next().unwrap_or_default(),
            )?;
            Ok(Value::from(x * 2))
        });
        let r: i64 = timeout(LIMIT, root.call_method("apply", (double, 20)))
            .await
            .expect("bounded")
            .expect("apply");
        assert_eq!(r, 41);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // The client's awaited getattr/call/repr on a remote object, same thread.
        let add: NetRef = root.getattr("add").await.unwrap();
        assert_eq!(add.call::<i64>((2, 3)).await.unwrap(), 5);
        assert!(add.repr().await.unwrap().contains("add"));
    });
}

#[test]
fn errors_and_panics_of_async_methods_reach_the_caller() {
    runtime().block_on(async {
        let (h, _) = server().await;
        let conn = client(&h).await;
        let root = conn.root().await.unwrap();
        match root.call_method::<i64>("fails", ("no good",)).await {
            Err(e) => {
                assert!(e.is_remote("ValueError"), "{e}");
                assert!(e.to_string().contains("no good"), "{e}");
            }
            other => panic!("expected a ValueError, got {other:?}"),
        }
        match root.call_method::<f64>("slow", ("soon",)).await {
            Err(e) => assert!(e.to_string().contains("slow() argument 'secs'"), "{e}"),
            Ok(v) => panic!("a str was taken for secs: {v}"),
        }
        match root.call_method::<i64>("panics", ()).await {
            Err(e) => assert!(e.to_string().contains("panicked"), "{e}"),
            Ok(v) => panic!("{v}"),
        }
        let r: i64 = root.call_method("add", (1, 2)).await.unwrap();
        assert_eq!(r, 3);
        // Keyword arguments bind by name; a unit result is None.
        let r: f64 = root
            .call_method_kw("slow", (), [("secs", 0.01)])
            .await
            .unwrap();
        assert_eq!(r, 0.01);
        let none: Value = root.call_method("touch", ()).await.unwrap();
        assert_eq!(none, Value::None);
    });
}

#[test]
fn the_threaded_server_runs_async_methods_to_completion() -> rpyc::Result<()> {
    // No runtime here: the methods' tokio timers run on the crate's small runtime.
    let h = rpyc::Server::bind("127.0.0.1:0", Sleeper::default())?.spawn()?;
    let conn = rpyc::Connection::connect(h.local_addr().expect("tcp").to_string())?;
    let root = conn.root()?;
    let started = Instant::now();
    let r: f64 = root.call_method("slow", (0.2,))?;
    assert_eq!(r, 0.2);
    assert!(started.elapsed() >= Duration::from_millis(200));
    match root.call_method::<i64>("fails", ("bad",)) {
        Err(e) => assert!(e.is_remote("ValueError"), "{e}"),
        other => panic!("{other:?}"),
    }
    // A blocking callback from an async method served by the threaded server is refused
    // by the type (it takes rpyc::tokio::NetRef): a plain value gets a clear TypeError.
    match root.call_method::<i64>("apply", (1, 2)) {
        Err(e) => assert!(e.to_string().contains("apply() argument 'f'"), "{e}"),
        Ok(v) => panic!("{v}"),
    }
    Ok(())
}

/// Await every future (no `futures` crate: polled together by one task).
async fn futures_join<F: std::future::Future>(futs: Vec<F>) -> Vec<F::Output> {
    let mut futs: Vec<_> = futs.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = futs.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for (f, o) in futs.iter_mut().zip(out.iter_mut()) {
            if o.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *o = Some(v),
                    std::task::Poll::Pending => done = false,
                }
            }
        }
        if done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    out.into_iter().flatten().collect()
}
