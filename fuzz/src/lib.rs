//! Shared helpers of the fuzz targets: an allocation meter and value-tree checks.
//!
//! The meter is the process's global allocator, so every Rust allocation of a fuzz target
//! is counted. libFuzzer's own `-malloc_limit_mb` needs a sanitizer's malloc hooks, and the
//! targets run without a sanitizer (see `scripts/fuzz.sh`), so the bounds are checked here.

use rpyc_wire::brine::Value;
use rpyc_wire::WireError;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

struct Meter;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grow(n: usize) {
    let now = CURRENT.fetch_add(n, Relaxed) + n;
    PEAK.fetch_max(now, Relaxed);
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged; the
// counters are plain atomics and never touch the memory.
unsafe impl GlobalAlloc for Meter {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grow(layout.size());
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        grow(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        CURRENT.fetch_sub(layout.size(), Relaxed);
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Counted as if old and new block coexisted (what a moving realloc needs).
        grow(new_size);
        let p = System.realloc(ptr, layout, new_size);
        if p.is_null() {
            CURRENT.fetch_sub(new_size, Relaxed);
        } else {
            CURRENT.fetch_sub(layout.size(), Relaxed);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Meter = Meter;

/// Run `f` and return its result with the peak number of bytes it had allocated at once
/// (above what was live when it started; its result counts, being live at the end).
pub fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = CURRENT.load(Relaxed);
    PEAK.store(base, Relaxed);
    let out = f();
    (out, PEAK.load(Relaxed).saturating_sub(base))
}

/// Bytes the brine decoder may allocate for `input_len` bytes of input: a member slot
/// (a `Value`) per input byte at most (each member takes a byte), the bytes and texts
/// copied out, the frozenset duplicate check's `(hash, index)` per member, and a constant
/// for the container stack. Generous by a factor of ~2: what it catches is allocation
/// driven by an announced length instead of by input actually present.
pub fn brine_alloc_bound(input_len: usize) -> usize {
    let per_byte = 2 * (std::mem::size_of::<Value>() + 1 + 16);
    input_len * per_byte + 64 * 1024
}

/// Depth of container nesting (0 for a scalar), computed without recursion.
pub fn depth(v: &Value) -> usize {
    let mut max = 0;
    let mut todo: Vec<(&Value, usize)> = vec![(v, 0)];
    while let Some((v, d)) = todo.pop() {
        let children: &[Value] = match v {
            Value::Tuple(items) | Value::FrozenSet(items) => items,
            Value::Slice(p) => {
                todo.extend([(&p.0, d + 1), (&p.1, d + 1), (&p.2, d + 1)]);
                max = max.max(d + 1);
                continue;
            }
            _ => continue,
        };
        max = max.max(d + 1);
        todo.extend(children.iter().map(|c| (c, d + 1)));
    }
    max
}

/// The byte offset an error points at, if it names one.
pub fn error_offset(e: &WireError) -> Option<usize> {
    match e {
        WireError::Truncated { offset, .. }
        | WireError::UnknownTag { offset, .. }
        | WireError::BadUnicode { offset }
        | WireError::BadInteger { offset }
        | WireError::IntegerTooLong { offset, .. }
        | WireError::ExpectedInteger { offset, .. }
        | WireError::BadContainer { offset, .. }
        | WireError::TrailingBytes { offset }
        | WireError::BadSetMember { offset, .. }
        | WireError::NonCanonical { offset, .. } => Some(*offset),
        _ => None,
    }
}

/// Whether the error is one the brine decoder may return (decoding never reports frame,
/// compression, encoding or message errors).
pub fn is_brine_error(e: &WireError) -> bool {
    error_offset(e).is_some() || matches!(e, WireError::NestingTooDeep { .. })
}

/// Checks every brine decoding result must pass; `data` is the decoded input.
/// Returns the value when it decoded.
pub fn check_brine(data: &[u8], result: &Result<Value, WireError>, max_depth: usize) {
    match result {
        Ok(v) => {
            // The decoder accepts only canonical encodings, so re-encoding gives the input
            // back byte for byte, and the value is one a CPython peer can read.
            let mut again = Vec::new();
            rpyc_wire::brine::try_encode(v, &mut again).expect("a decoded value is encodable");
            assert_eq!(again, data, "decode -> encode is not the identity");
            assert!(depth(v) <= max_depth, "nesting {} > {max_depth}", depth(v));
        }
        Err(e) => {
            assert!(is_brine_error(e), "unexpected error kind: {e:?}");
            if let Some(off) = error_offset(e) {
                assert!(off <= data.len(), "error offset {off} beyond input: {e:?}");
            }
            assert!(!e.to_string().is_empty());
        }
    }
}
