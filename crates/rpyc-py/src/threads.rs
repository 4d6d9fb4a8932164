//! Per-thread identity and the `bind_threads` bookkeeping (docs/protocol.md#bind_threads).

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU64, Ordering};

static NEXT_TOKEN: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static TOKEN: Cell<u64> = const { Cell::new(0) };
    /// Sender ids of the peer requests this thread is serving, innermost last.
    static SERVING: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

/// A small non-zero number identifying the current thread for the life of the process.
/// It is our "thread id" on the wire (0 means "unbound" there).
pub fn token() -> u64 {
    TOKEN.with(|t| {
        let v = t.get();
        if v != 0 {
            return v;
        }
        let v = NEXT_TOKEN.fetch_add(1, Ordering::Relaxed);
        t.set(v);
        v
    })
}

/// The peer thread whose request this thread is serving now (0 if none): the recipient of
/// any nested request we send, so that the peer's waiting thread handles it.
pub fn current_peer() -> u64 {
    SERVING.with(|s| s.borrow().last().copied().unwrap_or(0))
}

/// Mark the current thread as serving a request from peer thread `peer`.
pub fn enter_serving(peer: u64) {
    SERVING.with(|s| s.borrow_mut().push(peer));
}

/// Undo the innermost `enter_serving`.
pub fn leave_serving() {
    SERVING.with(|s| {
        s.borrow_mut().pop();
    });
}
