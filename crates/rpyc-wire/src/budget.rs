//! The inbound memory budget: bytes that peers made us hold before their frames are decoded
//! (receive buffers, inflated payloads), counted across every connection that shares the
//! budget (a process, in the drivers). A frame's own limits (`max_frame_size`,
//! `max_decompressed_size`) bound one frame; this bounds them all at once: 32 connections
//! each inflating a zlib bomb to 256 MiB would otherwise take 8 GiB.
//!
//! Each connection holds up to [`FREE_PER_CONNECTION`] bytes without drawing on the budget,
//! so small frames (every call of a well-behaved client) never wait for it.

use crate::error::WireError;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Bytes each connection may hold without drawing on the budget.
pub const FREE_PER_CONNECTION: usize = 64 * 1024;

/// A count of bytes held, shared by the connections it bounds.
#[derive(Debug, Default)]
pub struct MemoryBudget {
    used: AtomicUsize,
}

impl MemoryBudget {
    pub fn new() -> Arc<MemoryBudget> {
        Arc::new(MemoryBudget::default())
    }

    /// Bytes held now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Take `n` bytes if the total then stays within `limit`.
    fn try_take(&self, n: usize, limit: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n).filter(|&total| total <= limit)
            })
            .is_ok()
    }

    fn give_back(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::AcqRel);
    }
}

/// Bytes one holder took from a budget; given back when it shrinks or is dropped.
#[derive(Debug)]
pub struct Charge {
    budget: Arc<MemoryBudget>,
    bytes: usize,
    /// The `max_inbound_memory` of the connection holding it (for growing and for errors).
    limit: usize,
}

impl Charge {
    /// A charge of nothing yet on `budget`, which it may grow while the budget's total
    /// stays within `limit`.
    pub fn new(budget: &Arc<MemoryBudget>, limit: usize) -> Charge {
        Charge {
            budget: Arc::clone(budget),
            bytes: 0,
            limit,
        }
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Hold exactly `bytes` (taking more from the budget, or giving some back). Fails,
    /// holding what it held, when the budget cannot give what is missing.
    pub fn set(&mut self, bytes: usize) -> Result<(), WireError> {
        if bytes == self.bytes {
            return Ok(()); // (the usual case: small frames hold nothing)
        }
        if bytes < self.bytes {
            self.budget.give_back(self.bytes - bytes);
            self.bytes = bytes;
            return Ok(());
        }
        let more = bytes - self.bytes;
        if !self.budget.try_take(more, self.limit) {
            return Err(WireError::MemoryBudget {
                wanted: more,
                used: self.budget.used(),
                max: self.limit,
            });
        }
        self.bytes = bytes;
        Ok(())
    }

    /// Move what this charge holds into a new charge (this one then holds nothing).
    pub fn split_off(&mut self) -> Charge {
        let bytes = std::mem::take(&mut self.bytes);
        Charge {
            budget: Arc::clone(&self.budget),
            bytes,
            limit: self.limit,
        }
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.give_back(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_share_the_budget_and_give_back_on_drop() {
        let budget = MemoryBudget::new();
        let mut a = Charge::new(&budget, 100);
        let mut b = Charge::new(&budget, 100);
        a.set(60).expect("fits");
        assert!(matches!(
            b.set(50),
            Err(WireError::MemoryBudget {
                wanted: 50,
                used: 60,
                max: 100
            })
        ));
        assert_eq!(b.bytes(), 0);
        b.set(40).expect("fits exactly");
        assert_eq!(budget.used(), 100);
        a.set(10).expect("shrinking always works");
        assert_eq!(budget.used(), 50);
        let moved = a.split_off();
        assert_eq!((a.bytes(), moved.bytes()), (0, 10));
        drop(moved);
        drop(b);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn the_limit_is_the_holders_own() {
        // A connection configured with a larger limit may use what a smaller one may not.
        let budget = MemoryBudget::new();
        let mut small = Charge::new(&budget, 10);
        let mut large = Charge::new(&budget, 1000);
        large.set(500).expect("fits its own limit");
        assert!(small.set(1).is_err());
    }
}
