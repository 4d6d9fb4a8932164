//! The watchdog of requests served inline on a driver's thread (see `serve_inline`): a
//! call still running after one to two milliseconds has its connection's driver started
//! again as a task, so that the peer's next requests are read and served meanwhile.
//!
//! One thread for the process, ticking every millisecond while calls run (and 64 ms more)
//! and asleep otherwise: a call costs two short critical sections, no wakeup.

use super::Shared;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::Duration;

/// How often the watchdog looks at the calls running.
const TICK: Duration = Duration::from_millis(1);
/// How many ticks without a call running the watchdog waits before it sleeps: the calls
/// of a busy connection then find it awake, and pay no wakeup.
const QUIET_TICKS: u32 = 64;

struct Calls {
    /// The calls running: their ticket, the tick they started after, their connection.
    running: Vec<(u64, u64, Weak<Shared>)>,
    next_ticket: u64,
    ticks: u64,
    /// Whether the watchdog thread was started (or failed to start: calls then run to
    /// their end on the driver's thread, which only delays the connection's next
    /// requests).
    started: bool,
    /// Whether the watchdog sleeps until a call starts.
    idle: bool,
}

static CALLS: Mutex<Calls> = Mutex::new(Calls {
    running: Vec::new(),
    next_ticket: 0,
    ticks: 0,
    started: false,
    idle: false,
});
static WAKE: Condvar = Condvar::new();

fn calls() -> MutexGuard<'static, Calls> {
    CALLS.lock().unwrap_or_else(|e| e.into_inner())
}

/// A call being watched.
pub(super) struct Ticket(u64);

/// Watch a call served inline on a driver of `shared`.
pub(super) fn start(shared: &Arc<Shared>) -> Ticket {
    let mut c = calls();
    if !c.started {
        c.started = true;
        let _ = std::thread::Builder::new()
            .name("rpyc-tokio-watch".into())
            .spawn(run);
    }
    let ticket = c.next_ticket;
    c.next_ticket += 1;
    let at = c.ticks;
    c.running.push((ticket, at, Arc::downgrade(shared)));
    if c.idle {
        c.idle = false;
        WAKE.notify_one();
    }
    Ticket(ticket)
}

/// The call ended.
pub(super) fn end(ticket: Ticket) {
    let mut c = calls();
    if let Some(i) = c.running.iter().rposition(|(t, ..)| *t == ticket.0) {
        c.running.swap_remove(i);
    }
}

/// The watchdog thread.
fn run() {
    let mut c = calls();
    let mut quiet = 0;
    loop {
        quiet = if c.running.is_empty() { quiet + 1 } else { 0 };
        if quiet > QUIET_TICKS {
            while c.running.is_empty() {
                c.idle = true;
                c = WAKE.wait(c).unwrap_or_else(|e| e.into_inner());
            }
            quiet = 0;
        }
        drop(c);
        std::thread::sleep(TICK);
        c = calls();
        c.ticks += 1;
        let now = c.ticks;
        // (A call that started after tick `at` has run a millisecond at least by tick
        // `at + 2`.)
        let mut due = Vec::new();
        c.running.retain(|(_, at, shared)| {
            let late = now - at >= 2;
            if late {
                due.push(shared.clone());
            }
            !late
        });
        drop(c);
        for shared in due.iter().filter_map(Weak::upgrade) {
            shared.unpark();
        }
        c = calls();
    }
}
