//! The decoder never allocates more than its input justifies. Measured with a counting
//! allocator, so this binary holds a single test (parallel tests would disturb the count).
//! The crate itself forbids `unsafe`; a `GlobalAlloc` wrapper in a test cannot avoid it.

mod common;

use common::{noise, unhex};
use rpyc_wire::brine::{self, Value};
use rpyc_wire::budget::MemoryBudget;
use rpyc_wire::conn::{Config, Connection};
use rpyc_wire::consts::handler;
use rpyc_wire::frame::FrameDecoder;
use rpyc_wire::message::Boxed;
use rpyc_wire::Limits;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = CURRENT.fetch_add(layout.size(), SeqCst) + layout.size();
        PEAK.fetch_max(now, SeqCst);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        CURRENT.fetch_sub(layout.size(), SeqCst);
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Peak bytes allocated (above what was live before) while running `f`.
fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = CURRENT.load(SeqCst);
    PEAK.store(base, SeqCst);
    let out = f();
    (out, PEAK.load(SeqCst) - base)
}

#[test]
fn decoder_allocations_are_bounded_by_input() {
    let limits = Limits::default();
    let pad = "50".repeat(10);
    // Lengths claiming 4 GiB with 10 bytes of input: nothing sizeable is allocated.
    for h in [
        format!("15ffffffff{pad}"),
        format!("0fffffffff{pad}"),
        format!("17ffffffff{pad}"),
        format!("1a15ffffffff{pad}"),
    ] {
        let data = unhex(&h);
        let (result, peak) = peak_during(|| brine::decode(&data, &limits));
        assert!(result.is_err(), "{h}");
        assert!(peak < 1024, "{h}: peak allocation {peak} bytes");
    }

    // Nested containers each announcing as many members as bytes remain: total capacity
    // stays proportional to the input (members owed to outer containers count).
    let n = 4096usize;
    let mut data = Vec::new();
    for _ in 0..64 {
        data.push(0x15);
        data.extend_from_slice(&(n as u32).to_be_bytes());
    }
    data.extend(vec![0x50u8; n]);
    let (result, peak) = peak_during(|| brine::decode(&data, &limits));
    assert!(result.is_err());
    let per_byte = peak / data.len();
    assert!(
        per_byte <= 64,
        "peak {peak} bytes for {} input bytes",
        data.len()
    );

    // A frame header announcing 3 GiB: the decoder keeps only what was fed.
    let mut dec = FrameDecoder::new(limits);
    let (result, peak) = peak_during(|| {
        dec.feed(&[0xc0, 0, 0, 0, 0]).expect("room to buffer");
        let _ = dec.feed(&[0u8; 10]);
        dec.next_payload().map(|_| ())
    });
    assert!(result.is_err());
    assert!(peak < 1024, "frame decoder peak {peak}");

    // A request with a large argument: it is encoded where it lies and the sealed frame
    // becomes the outgoing bytes, without copies of either (a clone of the arguments and a
    // copy into the outgoing queue, or a reallocation for the trailer, took 3x the frame).
    let arg = Boxed::Value(Value::Bytes(noise(4 << 20)));
    let mut conn: Connection<()> = Connection::new(Config::default(), &MemoryBudget::new());
    let (out, peak) = peak_during(|| {
        conn.request(handler::PING, std::slice::from_ref(&arg))
            .expect("sent");
        conn.take_outgoing().len()
    });
    assert!(out > 4 << 20);
    // (beyond the frame: the compressor of the trial that finds it incompressible)
    assert!(peak < out + (512 << 10), "peak {peak} bytes to send {out}");
}
