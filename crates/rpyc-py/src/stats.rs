//! A connection's counters (`Connection.stats()`, docs/metrics.md): relaxed atomics bumped
//! where the engine already is (a frame sealed or read, a request sent, a request answered),
//! never a lock of their own, and a latency histogram per request handler served.
//!
//! Relaxed ordering is enough: each counter is a tally read by `stats()` at some moment,
//! never used to order other memory. The one exception is `in_flight`, which a draining
//! server reads to decide that a connection is idle (acquire/release, as before).

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

/// Upper bounds of the latency buckets, in nanoseconds: 1-2.5-5 steps from 10 µs to 10 s
/// (Prometheus' usual shape). Fixed, so a served request costs a short scan and one add.
pub const LATENCY_BOUNDS_NS: [u64; 19] = [
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// Histogram slots: handler ids 0..=66 (upstream's 1..=20, rpyc-rs' 64..=66) each have one;
/// every other id (a peer's unknown handler) shares the last.
const HANDLER_SLOTS: usize = 68;
const OTHER_HANDLER: usize = HANDLER_SLOTS - 1;

fn slot_of(handler: i64) -> usize {
    usize::try_from(handler)
        .ok()
        .filter(|&h| h < OTHER_HANDLER)
        .unwrap_or(OTHER_HANDLER)
}

/// One handler's served latencies: per-bucket (not cumulative) counts, the last for
/// requests slower than every bound.
#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; LATENCY_BOUNDS_NS.len() + 1],
    count: AtomicU64,
    sum_ns: AtomicU64,
}

impl Histogram {
    fn record(&self, ns: u64) {
        let i = LATENCY_BOUNDS_NS
            .iter()
            .position(|&b| ns <= b)
            .unwrap_or(LATENCY_BOUNDS_NS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }
}

pub struct Stats {
    /// Requests of the peer handed to Python and not yet answered (see `work::InFlight`).
    pub in_flight: AtomicUsize,
    calls_made: AtomicU64,
    releases_sent: AtomicU64,
    /// Releases (`HANDLE_DEL`) served by the engine itself; those served by Python are in
    /// the `del` histogram.
    releases_served_natively: AtomicU64,
    errors_served: AtomicU64,
    errors_received: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    frames_in: AtomicU64,
    frames_out: AtomicU64,
    compressed_in: AtomicU64,
    compressed_out: AtomicU64,
    /// Allocated on a handler's first served request: most connections use a few handlers,
    /// and a server may hold many connections.
    latency: [OnceLock<Box<Histogram>>; HANDLER_SLOTS],
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            in_flight: AtomicUsize::new(0),
            calls_made: AtomicU64::new(0),
            releases_sent: AtomicU64::new(0),
            releases_served_natively: AtomicU64::new(0),
            errors_served: AtomicU64::new(0),
            errors_received: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            frames_in: AtomicU64::new(0),
            frames_out: AtomicU64::new(0),
            compressed_in: AtomicU64::new(0),
            compressed_out: AtomicU64::new(0),
            latency: std::array::from_fn(|_| OnceLock::new()),
        }
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Stats {
    /// `frames` frames, `bytes` bytes in all, were written (held releases with them).
    pub fn written(&self, frames: usize, bytes: usize) {
        self.frames_out.fetch_add(frames as u64, Ordering::Relaxed);
        self.bytes_out.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// A frame was compressed for sending (counted when sealed: a write that fails ends
    /// the connection anyway).
    pub fn compressed_out(&self) {
        bump(&self.compressed_out);
    }

    /// A frame was received (`len` bytes on the wire).
    pub fn frame_in(&self, len: usize, compressed: bool) {
        bump(&self.frames_in);
        self.bytes_in.fetch_add(len as u64, Ordering::Relaxed);
        if compressed {
            bump(&self.compressed_in);
        }
    }

    /// A request was sent to the peer.
    pub fn request_sent(&self, handler: i64) {
        if handler == rpyc_wire::consts::handler::DEL {
            bump(&self.releases_sent);
        } else {
            bump(&self.calls_made);
        }
    }

    pub fn release_served(&self) {
        bump(&self.releases_served_natively);
    }

    /// A request was answered with an exception.
    pub fn error_served(&self) {
        bump(&self.errors_served);
    }

    /// An exception arrived as the answer to one of our requests.
    pub fn error_received(&self) {
        bump(&self.errors_received);
    }

    /// A request for `handler` was answered `took` after it arrived.
    pub fn served(&self, handler: i64, took: Duration) {
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.latency[slot_of(handler)]
            .get_or_init(Box::default)
            .record(ns)
    }

    /// The counters as a dict (the keys are documented in docs/metrics.md); `latency` maps
    /// handler ids to `{"count", "sum", "buckets": [(upper bound in s, cumulative count)]}`,
    /// the last bound `inf`. `calls_served` leaves releases out (`releases_served`).
    pub fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let latency = PyDict::new(py);
        let mut calls_served = 0u64;
        let mut releases_served = get(&self.releases_served_natively);
        for (slot, hist) in self.latency.iter().enumerate() {
            let Some(hist) = hist.get() else { continue };
            let count = get(&hist.count);
            if slot as i64 == rpyc_wire::consts::handler::DEL {
                releases_served += count;
            } else {
                calls_served += count;
            }
            let buckets = PyList::empty(py);
            let mut cumulative = 0u64;
            for (i, b) in hist.buckets.iter().enumerate() {
                cumulative += get(b);
                let le = LATENCY_BOUNDS_NS
                    .get(i)
                    .map_or(f64::INFINITY, |&ns| ns as f64 / 1e9);
                buckets.append((le, cumulative))?;
            }
            let h = PyDict::new(py);
            h.set_item("count", count)?;
            h.set_item("sum", get(&hist.sum_ns) as f64 / 1e9)?;
            h.set_item("buckets", buckets)?;
            let key = if slot == OTHER_HANDLER {
                -1
            } else {
                slot as i64
            };
            latency.set_item(key, h)?;
        }
        d.set_item("calls_made", get(&self.calls_made))?;
        d.set_item("calls_served", calls_served)?;
        d.set_item("releases_sent", get(&self.releases_sent))?;
        d.set_item("releases_served", releases_served)?;
        d.set_item("errors_served", get(&self.errors_served))?;
        d.set_item("errors_received", get(&self.errors_received))?;
        d.set_item("bytes_in", get(&self.bytes_in))?;
        d.set_item("bytes_out", get(&self.bytes_out))?;
        d.set_item("frames_in", get(&self.frames_in))?;
        d.set_item("frames_out", get(&self.frames_out))?;
        d.set_item("frames_compressed_in", get(&self.compressed_in))?;
        d.set_item("frames_compressed_out", get(&self.compressed_out))?;
        d.set_item("in_flight", self.in_flight.load(Ordering::Acquire))?;
        d.set_item("latency", latency)?;
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_land_in_the_first_bucket_whose_bound_they_do_not_exceed() {
        let h = Histogram::default();
        for ns in [0, 10_000, 10_001, 3_000_000, 20_000_000_000] {
            h.record(ns);
        }
        let counts: Vec<u64> = h
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        assert_eq!(counts[0], 2); // 0 and exactly 10 µs
        assert_eq!(counts[1], 1); // just over 10 µs
        assert_eq!(counts[8], 1); // 3 ms <= 5 ms
        assert_eq!(counts[LATENCY_BOUNDS_NS.len()], 1); // slower than 10 s
        assert_eq!(h.count.load(Ordering::Relaxed), 5);
        assert_eq!(h.sum_ns.load(Ordering::Relaxed), 20_003_020_001);
    }

    #[test]
    fn unknown_handlers_share_one_slot() {
        assert_eq!(slot_of(7), 7);
        assert_eq!(slot_of(66), 66);
        assert_eq!(slot_of(-1), OTHER_HANDLER);
        assert_eq!(slot_of(67), OTHER_HANDLER);
        assert_eq!(slot_of(1 << 40), OTHER_HANDLER);
    }
}
