//! Brine decoder on arbitrary bytes.
//!
//! Checks: no panic, no hang; allocation bounded by the input (never by a length field);
//! a value that decodes re-encodes to exactly the input (the decoder accepts only
//! canonical forms) and stays within the nesting limit; a value followed by trailing bytes
//! is what `decode_prefix` reads; a tighter nesting limit only ever turns results into
//! `NestingTooDeep`. The same bytes read as a by-value value (docs/by-value.md: the
//! by-value tags on, arrays checked): no panic, allocation bounded by the input, and every
//! input the strict reader accepts is accepted there too (by value only adds tags).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rpyc_wire::brine::{Cursor, SkipByValue};
use rpyc_wire::{brine, Limits, WireError};
use rpyc_wire_fuzz::{brine_alloc_bound, check_brine, peak_during};

/// Small enough that the fuzzer reaches it; the default (256) is checked against it.
const SMALL_DEPTH: usize = 8;

fuzz_target!(|data: &[u8]| {
    let small = Limits {
        max_nesting_depth: SMALL_DEPTH,
        ..Limits::default()
    };
    let default = Limits::default();

    let (result, peak) = peak_during(|| brine::decode(data, &default));
    assert!(
        peak <= brine_alloc_bound(data.len()),
        "decoding {} bytes allocated {peak} bytes",
        data.len()
    );
    check_brine(data, &result, default.max_nesting_depth);

    // A smaller nesting limit: the same outcome, or NestingTooDeep.
    let tight = brine::decode(data, &small);
    check_brine(data, &tight, SMALL_DEPTH);
    match (&tight, &result) {
        (Err(WireError::NestingTooDeep { .. }), _) => {}
        (a, b) => assert_eq!(a, b, "result depends on max_nesting_depth"),
    }

    // By-value mode.
    let (by_value, peak) = peak_during(|| {
        let mut cur = Cursor::new(data);
        brine::read(&mut cur, 0, default.max_nesting_depth, &mut SkipByValue)
            .and_then(|_| cur.finish())
    });
    assert!(
        peak <= brine_alloc_bound(data.len()),
        "decoding {} bytes by value allocated {peak} bytes",
        data.len()
    );
    if result.is_ok() {
        assert!(by_value.is_ok(), "by-value mode refused a plain value: {by_value:?}");
    }

    // decode is decode_prefix plus a trailing-bytes check: where decode refuses trailing
    // bytes, decode_prefix reads the value before them (and only that value).
    if let Err(WireError::TrailingBytes { offset }) = result {
        let (v, used) = brine::decode_prefix(data, &default).expect("a value before the tail");
        assert_eq!(used, offset);
        assert_eq!(brine::to_vec(&v), &data[..used]);
    }
});
