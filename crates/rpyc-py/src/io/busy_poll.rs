//! Busy-polling a native or TLS socket for a few microseconds before blocking on it (config
//! `busy_poll_us`, as Linux's `net.core.busy_poll` for devices that support it).
//!
//! Why: an RPyC round trip on a quiet machine is mostly wake-up latency. A thread blocked in
//! `recv` is put to sleep and has to be scheduled again when the answer lands; on the virtual
//! machines we measure on that costs 30-45 µs per wake-up (a blocking 16-byte ping-pong takes
//! 60-90 µs, a polling one 8-9 µs), several times what both peers spend working on a small
//! call. A thread that keeps asking the socket for a short while (GIL released) sees
//! the answer as soon as it is there. Waits that outlast the budget cost the budget in CPU,
//! so a socket whose waits keep missing it stops polling for a growing number of reads
//! (long calls, idle connections and busy machines pay almost nothing), and every attempt
//! yields the CPU to any other runnable thread.

use std::io;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Most reads skipped after repeated misses: a socket that keeps missing polls once in this
/// many reads, so it notices when answers become quick again.
const MAX_SKIP: u32 = 64;

pub struct BusyPoll {
    /// In µs (0: never poll); set when the transport is attached to a connection.
    budget_us: AtomicU64,
    /// Reads left to do without polling.
    skip: AtomicU32,
    /// How many reads the next miss skips (doubles per miss, halves per hit).
    backoff: AtomicU32,
}

impl BusyPoll {
    /// Poll for up to `budget` before each blocking read (zero: never).
    pub fn new(budget: Duration) -> Self {
        let poll = BusyPoll {
            budget_us: AtomicU64::new(0),
            skip: AtomicU32::new(0),
            backoff: AtomicU32::new(0),
        };
        poll.set_budget(budget);
        poll
    }

    pub fn set_budget(&self, budget: Duration) {
        // (Non-blocking reads for polling are only wired up on Unix.)
        let us = if cfg!(unix) {
            u64::try_from(budget.as_micros()).unwrap_or(u64::MAX)
        } else {
            0
        };
        self.budget_us.store(us, Ordering::Relaxed);
    }

    /// Call `try_read` (a read that does not block) until it returns anything but
    /// "would block", for at most the budget and at most `limit`. `None`: nothing arrived,
    /// the caller blocks as usual.
    pub fn poll<T>(
        &self,
        limit: Option<Duration>,
        mut try_read: impl FnMut() -> io::Result<T>,
    ) -> Option<io::Result<T>> {
        let own = Duration::from_micros(self.budget_us.load(Ordering::Relaxed));
        let budget = limit.map_or(own, |l| l.min(own));
        if budget.is_zero() || self.skipping() {
            return None;
        }
        let end = Instant::now() + budget;
        loop {
            match try_read() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                other => {
                    self.hit();
                    return Some(other);
                }
            }
            if Instant::now() >= end {
                self.miss();
                return None;
            }
            std::thread::yield_now();
        }
    }

    fn skipping(&self) -> bool {
        // (Only the connection's reader reads, so plain load/store pairs do not race.)
        let skip = self.skip.load(Ordering::Relaxed);
        if skip == 0 {
            return false;
        }
        self.skip.store(skip - 1, Ordering::Relaxed);
        true
    }

    fn hit(&self) {
        let backoff = self.backoff.load(Ordering::Relaxed);
        self.backoff.store(backoff / 2, Ordering::Relaxed);
    }

    fn miss(&self) {
        let backoff = (self.backoff.load(Ordering::Relaxed) * 2 + 1).min(MAX_SKIP);
        self.backoff.store(backoff, Ordering::Relaxed);
        self.skip.store(backoff, Ordering::Relaxed);
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn would_block<T>() -> io::Result<T> {
        Err(io::ErrorKind::WouldBlock.into())
    }

    #[test]
    fn data_that_arrives_within_the_budget_is_returned() {
        let poll = BusyPoll::new(Duration::from_secs(5));
        let attempts = Cell::new(0);
        let got = poll.poll(None, || {
            attempts.set(attempts.get() + 1);
            if attempts.get() < 3 {
                would_block()
            } else {
                Ok(7)
            }
        });
        assert_eq!(got.map(|r| r.ok()), Some(Some(7)));
        assert_eq!(attempts.get(), 3);
    }

    #[test]
    fn errors_other_than_would_block_end_the_poll() {
        let poll = BusyPoll::new(Duration::from_secs(5));
        let got: Option<io::Result<()>> =
            poll.poll(None, || Err(io::ErrorKind::ConnectionReset.into()));
        let kind = got.and_then(|r| r.err()).map(|e| e.kind());
        assert_eq!(kind, Some(io::ErrorKind::ConnectionReset));
    }

    #[test]
    fn a_zero_budget_or_limit_never_polls() {
        let called = Cell::new(false);
        let read = || {
            called.set(true);
            Ok(())
        };
        assert!(BusyPoll::new(Duration::ZERO).poll(None, read).is_none());
        let poll = BusyPoll::new(Duration::from_millis(1));
        assert!(poll.poll(Some(Duration::ZERO), read).is_none());
        assert!(!called.get());
    }

    #[test]
    fn the_poll_stops_at_the_budget() {
        let poll = BusyPoll::new(Duration::from_millis(2));
        let start = Instant::now();
        assert!(poll.poll(None, would_block::<()>).is_none());
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(2), "{took:?}");
        assert!(took < Duration::from_secs(1), "{took:?}");
    }

    #[test]
    fn misses_skip_a_growing_number_of_reads_and_hits_shrink_it() {
        let poll = BusyPoll::new(Duration::from_micros(1));
        let polled = |poll: &BusyPoll| {
            let called = Cell::new(false);
            poll.poll(None, || {
                called.set(true);
                would_block::<()>()
            });
            called.get()
        };
        // Miss 1 skips 1 read, miss 2 skips 3, miss 3 skips 7...
        let mut pattern = Vec::new();
        for _ in 0..12 {
            pattern.push(polled(&poll));
        }
        let expected = [
            true, false, true, false, false, false, true, false, false, false, false, false,
        ];
        assert_eq!(pattern, expected);
        // The skip never grows past MAX_SKIP.
        for _ in 0..1000 {
            polled(&poll);
        }
        assert!(poll.backoff.load(Ordering::Relaxed) <= MAX_SKIP);
        // A hit halves what the next miss skips.
        poll.skip.store(0, Ordering::Relaxed);
        let before = poll.backoff.load(Ordering::Relaxed);
        assert!(poll.poll(None, || Ok(())).is_some());
        assert_eq!(poll.backoff.load(Ordering::Relaxed), before / 2);
    }
}
