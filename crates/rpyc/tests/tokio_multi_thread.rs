//! The tokio driver on a multi-thread runtime, where each synchronous request of the peer
//! is served on the driver's own thread (`block_in_place`) while its driver is parked:
//! callbacks from such a call (nested, both ways), a long call beside other connections,
//! many long calls on one connection at once, panics, releases, and a call waiting for
//! another call of the same connection. All over 127.0.0.1, every test bounded.

mod common;

use rpyc::tokio::{Connection, NetRef, Server, ServerHandle};
use rpyc::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};
use tokio::time::timeout;

/// Every test is bounded.
const LIMIT: Duration = Duration::from_secs(20);

#[derive(Default)]
struct Calc {
    running: AtomicUsize,
    most: AtomicUsize,
    /// Set by `open`, awaited by `wait_open`.
    gate: (Mutex<bool>, Condvar),
}

#[rpyc::service(name = "tests.MultiThreadCalc")]
impl Calc {
    fn add(&self, x: i64, y: i64) -> i64 {
        x + y
    }

    /// Calls `f` back: a blocking call on this connection, made from the driver's thread.
    fn apply(&self, f: rpyc::NetRef, x: i64) -> rpyc::Result<i64> {
        f.call((x,))
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

    /// Blocks until `open` is called (at most 10 s).
    fn wait_open(&self) -> bool {
        let (lock, cond) = &self.gate;
        let open = lock.lock().unwrap();
        let (open, _) = cond
            .wait_timeout_while(open, Duration::from_secs(10), |open| !*open)
            .unwrap();
        *open
    }

    fn open(&self) {
        *self.gate.0.lock().unwrap() = true;
        self.gate.1.notify_all();
    }

    fn make_adder(&self, n: i64) -> Value {
        common::int_callback("adder", move |x| Ok(x + n))
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_from_a_call_served_inline() -> rpyc::Result<()> {
    timeout(LIMIT, async {
        let h = server().await;
        let conn = client(&h).await;
        let root = conn.root().await?;
        assert_eq!(root.call_method::<i64>("add", (2, 3)).await?, 5);
        // The server's driver thread calls our closure, served inline by our driver.
        let double = common::int_callback("double", |x| Ok(x * 2));
        assert_eq!(root.call_method::<i64>("apply", (double, 21)).await?, 42);
        // Nested: our closure calls the server again, whose method calls us back again.
        let inner = root.inner().clone();
        let nested = common::int_callback("nested", move |x| {
            let triple = common::int_callback("triple", |x| Ok(x * 3));
            inner.call_method("apply", (triple, x + 1))
        });
        for i in 0..20 {
            let got = root
                .call_method::<i64>("apply", (nested.clone(), i))
                .await?;
            assert_eq!(got, (i + 1) * 3);
        }
        // An object the server made, called from here and released again.
        let adder: NetRef = root.call_method("make_adder", (10,)).await?;
        assert_eq!(adder.call::<i64>((5,)).await?, 15);
        drop(adder);
        let e = root.call_method::<i64>("panics", ()).await.unwrap_err();
        assert!(e.is_remote("RuntimeError"), "{e}");
        assert_eq!(root.call_method::<i64>("add", (1, 1)).await?, 2);
        Ok(())
    })
    .await
    .expect("within the limit")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_call_does_not_stall_other_connections() -> rpyc::Result<()> {
    timeout(LIMIT, async {
        let h = server().await;
        let (slow, quick) = (client(&h).await, client(&h).await);
        let (slow_root, quick_root) = (slow.root().await?, quick.root().await?);
        let start = Instant::now();
        let long = tokio::spawn(async move {
            let r = slow_root.call_method::<i64>("slow_add", (1, 1000)).await;
            (r, start.elapsed())
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        for i in 0..50 {
            assert_eq!(quick_root.call_method::<i64>("add", (i, 1)).await?, i + 1);
        }
        let quick_done = start.elapsed();
        let (r, long_done) = long.await.expect("task");
        assert_eq!(r?, 2);
        assert!(
            quick_done < Duration::from_millis(700) && quick_done < long_done,
            "50 small calls took until {quick_done:?}, the long one until {long_done:?}"
        );
        Ok(())
    })
    .await
    .expect("within the limit")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_calls_on_one_connection_run_at_once() -> rpyc::Result<()> {
    timeout(LIMIT, async {
        let h = server().await;
        let conn = client(&h).await;
        let root = conn.root().await?;
        let start = Instant::now();
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let root = root.clone();
                tokio::spawn(async move { root.call_method::<i64>("slow_add", (i, 300)).await })
            })
            .collect();
        let mut sum = 0;
        for t in tasks {
            sum += t.await.expect("task")?;
        }
        assert_eq!(sum, (1..=20).sum::<i64>());
        // (One after the other they would take 6 s.)
        let most: usize = root.call_method("most_at_once", ()).await?;
        assert!(most > 5, "at most {most} at once");
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "{:?}",
            start.elapsed()
        );
        Ok(())
    })
    .await
    .expect("within the limit")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_may_wait_for_another_call_of_its_connection() -> rpyc::Result<()> {
    timeout(LIMIT, async {
        let h = server().await;
        let conn = client(&h).await;
        let root = conn.root().await?;
        let waiter = {
            let root = root.clone();
            tokio::spawn(async move { root.call_method::<bool>("wait_open", ()).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let start = Instant::now();
        root.call_method::<Value>("open", ()).await?;
        assert!(waiter.await.expect("task")?, "wait_open gave up");
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
        Ok(())
    })
    .await
    .expect("within the limit")
}
