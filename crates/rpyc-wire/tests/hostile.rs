//! Hostile brine: deep nesting, lying lengths, work amplification.

mod common;

use common::{drop_flat, unhex};
use rpyc_wire::brine::{self, Value};
use rpyc_wire::message::decode_payload;
use rpyc_wire::{Limits, WireError};

fn deep(prefix: &[u8], depth: usize, leaf: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(prefix.len() * depth + leaf.len());
    for _ in 0..depth {
        v.extend_from_slice(prefix);
    }
    v.extend_from_slice(leaf);
    v
}

#[test]
fn hundred_thousand_deep_tuple_does_not_overflow() {
    let data = deep(&[0x10], 100_000, &[0x00]);
    let limits = Limits::default();
    assert_eq!(
        brine::decode(&data, &limits),
        Err(WireError::NestingTooDeep {
            max: limits.max_nesting_depth
        })
    );
    // FSET and SLICE nesting count too.
    let fsets = deep(&[0x1a, 0x10], 100_000, &[0x00]);
    assert!(matches!(
        brine::decode(&fsets, &limits),
        Err(WireError::NestingTooDeep { .. })
    ));
    let slices = deep(&[0x19, 0x12, 0x00, 0x00], 100_000, &[0x00]);
    assert!(matches!(
        brine::decode(&slices, &limits),
        Err(WireError::NestingTooDeep { .. })
    ));

    // With the limit lifted the decoder (and encoder) cope: both are iterative.
    let unlimited = Limits {
        max_nesting_depth: usize::MAX,
        ..Limits::default()
    };
    for data in [&data, &fsets, &slices] {
        let v = brine::decode(data, &unlimited).expect("decodes without a depth limit");
        assert_eq!(&brine::to_vec(&v), data);
        drop_flat(v);
    }
    // Message decoding of the deep input fails cleanly too.
    let payload = [&[0x02, 0x11, 0x50][..], &data].concat();
    assert!(matches!(
        decode_payload(&payload, false, &limits),
        Err(WireError::NestingTooDeep { .. })
    ));
}

#[test]
fn nesting_limit_is_exact() {
    let limits = Limits {
        max_nesting_depth: 3,
        ..Limits::default()
    };
    // Three containers deep is fine, including an empty one at the bottom.
    for ok in ["10101000", "101002", "10101a02", "191210020000"] {
        assert!(brine::decode(&unhex(ok), &limits).is_ok(), "{ok}");
    }
    for bad in ["1010101000", "10101002", "1010101a02", "101010191200000000"] {
        assert_eq!(
            brine::decode(&unhex(bad), &limits),
            Err(WireError::NestingTooDeep { max: 3 }),
            "{bad}"
        );
    }
    let none = Limits {
        max_nesting_depth: 0,
        ..Limits::default()
    };
    assert!(brine::decode(&unhex("51"), &none).is_ok());
    assert!(brine::decode(&unhex("02"), &none).is_err());
}

#[test]
fn lying_lengths_fail_as_truncated() {
    let limits = Limits::default();
    let pad = "50".repeat(10);
    for h in [
        format!("15ffffffff{pad}"),
        format!("0fffffffff{pad}"),
        format!("17ffffffff{pad}"),
        format!("08 0fffffffff{pad}").replace(' ', ""),
        format!("1a15ffffffff{pad}"),
        format!("14ff{pad}"),
        format!("0eff{pad}"),
        // Each of 4 nested tuples announces 3 items: 12 owed items, 10 bytes left.
        format!("1212121250{}", "50".repeat(5)),
    ] {
        match brine::decode(&unhex(&h), &limits) {
            Err(WireError::Truncated { .. }) => {}
            other => panic!("{h}: {other:?}"),
        }
    }
}

#[test]
fn big_frozensets_are_checked_in_n_log_n() {
    let limits = Limits::default();
    let n = 100_000u32;
    // Distinct integers.
    let mut data = vec![0x1a, 0x15];
    data.extend_from_slice(&n.to_be_bytes());
    for i in 0..n {
        brine::encode(&Value::Int(i64::from(i) + 1000), &mut data);
    }
    let v = brine::decode(&data, &limits).expect("distinct members");
    assert!(matches!(&v, Value::FrozenSet(m) if m.len() == n as usize));
    // The same with the last member a duplicate of the first.
    let mut dup = data.clone();
    let last_start = dup.len() - 7; // INT_L1 "100999" is 8 bytes: 16 06 + 6 digits
    dup.truncate(last_start - 1);
    brine::encode(&Value::Int(1000), &mut dup);
    assert!(matches!(
        brine::decode(&dup, &limits),
        Err(WireError::NonCanonical { .. })
    ));
    // Many NaNs (never equal, all hashing alike) do not make the check quadratic.
    let mut nans = vec![0x1a, 0x15];
    nans.extend_from_slice(&n.to_be_bytes());
    for _ in 0..n {
        brine::encode(&Value::Float(f64::NAN), &mut nans);
    }
    assert!(brine::decode(&nans, &limits).is_ok());
}

#[test]
fn deep_frozenset_members_are_not_compared_recursively() {
    let unlimited = Limits {
        max_nesting_depth: usize::MAX,
        ..Limits::default()
    };
    // Two identical 50,000-deep members: beyond the comparison depth they are let through
    // (conservatively) instead of recursing.
    let member = deep(&[0x10], 50_000, &[0x51]);
    let data = [&[0x1a, 0x11][..], &member, &member].concat();
    let v = brine::decode(&data, &unlimited).expect("decodes");
    drop_flat(v);
}

/// `n` frozensets of two members each, nested `depth` deep per chain:
/// `{{{... {0, 1} ...}, 1}, 1}`; with `depth == 1` they are `n` flat sets `{0, 1}`.
/// Same number of sets and members whatever the depth.
fn frozenset_chains(n: usize, depth: usize) -> Vec<u8> {
    let chains = n / depth;
    let mut data = Vec::new();
    brine::write::tuple_header(&mut data, chains);
    for _ in 0..chains {
        // Outermost first: each level is FSET TUP2 <inner> 1; the innermost is {0, 1}.
        data.extend_from_slice(&[0x1a, 0x11].repeat(depth));
        data.push(0x50);
        data.extend_from_slice(&[0x51].repeat(depth));
    }
    data
}

fn best_of_3(data: &[u8]) -> std::time::Duration {
    (0..3)
        .map(|_| {
            let t = std::time::Instant::now();
            let v = brine::decode(data, &Limits::default()).expect("valid");
            let took = t.elapsed();
            drop_flat(v);
            took
        })
        .min()
        .unwrap_or_default()
}

#[test]
fn nested_frozensets_are_checked_in_linear_time() {
    // Each frozenset's duplicate check used to hash and walk its members' whole subtrees,
    // so a chain of d nested frozensets cost d² (a 750 KiB message took 4 s in release).
    // Member summaries are now computed once, bottom up: nesting costs nothing extra.
    let n = 255 * 120;
    let deep = frozenset_chains(n, 255);
    let flat = frozenset_chains(n, 1);
    let (deep_t, flat_t) = (best_of_3(&deep), best_of_3(&flat));
    assert!(
        deep_t < flat_t * 6 + std::time::Duration::from_millis(20),
        "255-deep chains of frozensets took {deep_t:?}, the same sets side by side {flat_t:?}"
    );
}

#[test]
fn duplicates_are_found_through_nested_containers() {
    use Value::{Bool, Float, FrozenSet as Fs, Int, Tuple};
    let x = || Value::str("x");
    let decode = |v: Value| brine::decode(&brine::to_vec(&v), &Limits::default());
    for dup in [
        // {2.0, True} == {1, 2}
        Fs(vec![
            Tuple(vec![Fs(vec![Int(1), Int(2)]), x()]),
            Tuple(vec![Fs(vec![Float(2.0), Bool(true)]), x()]),
        ]),
        Tuple(vec![Fs(vec![
            Fs(vec![Fs(vec![Int(3)]), Int(4)]),
            Fs(vec![Int(4), Fs(vec![Int(3)])]),
        ])]),
    ] {
        assert!(
            matches!(decode(dup.clone()), Err(WireError::NonCanonical { .. })),
            "{dup:?}"
        );
    }
    // A slice anywhere inside a frozenset is unhashable (before Python 3.12; refused on
    // every version so that all decoders agree), whatever else the members hold.
    for unhashable in [
        Fs(vec![
            Value::slice(Fs(vec![Int(1)]), Value::None, Int(1)),
            Value::slice(Fs(vec![Float(1.0)]), Value::None, Bool(true)),
        ]),
        Fs(vec![Tuple(vec![
            Int(1),
            Tuple(vec![Value::slice(Int(1), Int(2), Int(3))]),
        ])]),
    ] {
        assert!(
            matches!(
                decode(unhashable.clone()),
                Err(WireError::BadSetMember { .. })
            ),
            "{unhashable:?}"
        );
    }
    // A frozenset inside a slice is fine.
    let fine = Value::slice(Fs(vec![Int(1)]), Value::None, Value::None);
    assert_eq!(decode(fine.clone()), Ok(fine));
    for ok in [
        Fs(vec![
            Tuple(vec![Fs(vec![Int(1), Int(2)]), x()]),
            Tuple(vec![Fs(vec![Int(1), Int(3)]), x()]),
        ]),
        Fs(vec![
            Tuple(vec![Float(f64::NAN)]),
            Tuple(vec![Float(f64::NAN)]),
        ]),
        Fs(vec![Fs(vec![Int(3)]), Tuple(vec![Int(3)]), Int(3)]),
    ] {
        assert_eq!(decode(ok.clone()).as_ref(), Ok(&ok));
    }
}
