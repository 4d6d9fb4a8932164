//! Our requests: sequence numbers, and the table of those whose answers are awaited.

use crate::error::WireError;
use rustc_hash::FxHashMap as HashMap;

/// Sequence numbers and the pending table, generic over what a driver keeps per awaited
/// request (a waiting thread's slot, a callback, a future's sender).
pub struct Requests<W> {
    next_seq: u64,
    pending: HashMap<u64, W>,
    max: usize,
}

impl<W> Requests<W> {
    /// At most `max` requests may await answers at once (`max_pending_requests`).
    pub fn new(max: usize) -> Self {
        Requests {
            next_seq: 0,
            pending: HashMap::default(),
            max,
        }
    }

    /// The sequence number of a request whose answer nobody awaits (dropped on arrival).
    pub fn next_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        seq
    }

    /// The sequence number of a request whose answer goes to `waiter`; refused (nothing
    /// recorded) when `max_pending_requests` answers are awaited already.
    pub fn start(&mut self, waiter: W) -> Result<u64, WireError> {
        if self.pending.len() >= self.max {
            return Err(WireError::TooManyPending { max: self.max });
        }
        let seq = self.next_seq();
        self.pending.insert(seq, waiter);
        Ok(seq)
    }

    /// The waiter of `seq`, which no longer awaits anything.
    pub fn take(&mut self, seq: u64) -> Option<W> {
        self.pending.remove(&seq)
    }

    pub fn get(&self, seq: u64) -> Option<&W> {
        self.pending.get(&seq)
    }

    pub fn get_mut(&mut self, seq: u64) -> Option<&mut W> {
        self.pending.get_mut(&seq)
    }

    pub fn is_awaited(&self, seq: u64) -> bool {
        self.pending.contains_key(&seq)
    }

    pub fn awaited(&self) -> usize {
        self.pending.len()
    }

    /// Every waiter (the connection ended: none will get an answer).
    pub fn drain(&mut self) -> Vec<W> {
        self.pending.drain().map(|(_, w)| w).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_count_up_and_the_table_is_bounded() {
        let mut r: Requests<&str> = Requests::new(2);
        assert_eq!(r.next_seq(), 0);
        assert_eq!(r.start("a"), Ok(1));
        assert_eq!(r.start("b"), Ok(2));
        assert_eq!(r.start("c"), Err(WireError::TooManyPending { max: 2 }));
        assert_eq!(r.next_seq(), 3, "a refused request takes no number");
        assert_eq!(r.take(1), Some("a"));
        assert_eq!(r.take(1), None);
        assert_eq!(r.start("d"), Ok(4));
        assert_eq!(r.drain().len(), 2);
        assert_eq!(r.awaited(), 0);
    }
}
