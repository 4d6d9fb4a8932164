//! Python equality, for rejecting frozensets with duplicate members.
//!
//! A frozenset that upstream encodes never holds two members that Python considers equal
//! (`1`, `True`, `1.0` and `(1+0j)` are all one member; so are `0.0` and `-0.0`; frozensets
//! are equal whatever their member order). A peer sending such members is not speaking
//! upstream's protocol, so the decoder rejects it.
//!
//! The relation here is *conservative*: it may call two Python-equal values unequal (then
//! a duplicate slips through, harmlessly: a Python frozenset collapses it), but it never
//! calls two Python-unequal values equal (which would reject valid data). In particular:
//! - a value containing a NaN anywhere is unequal to every other value (true in Python for
//!   distinct NaN objects, which is what two members are), so such members are skipped;
//! - an integer and a float are compared only when the float is integral and inside `i64`;
//! - values nested deeper than [`MAX_COMPARE_DEPTH`] are skipped.
//!
//! Duplicates are found by sorting members on a keyed (randomly seeded) hash consistent
//! with the relation, so a hostile peer cannot force quadratic work. A member's hash and
//! the facts that decide whether it is compared ([`Summary`]) are computed once, bottom
//! up, from its children's summaries: the decoder keeps the summaries of everything
//! inside a frozenset, so nested frozensets never hash or walk their subtrees again
//! (which made deep chains of frozensets cost depth² per chain).

use super::Value;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

/// Members nested deeper than this are never compared (bounds recursion).
pub const MAX_COMPARE_DEPTH: usize = 256;

/// What the duplicate check needs to know about a value, computed from its children's
/// summaries in constant time per child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Keyed hash consistent with [`py_eq`] (Python-equal values hash alike).
    hash: u64,
    /// Container nesting: 0 for a scalar, 1 + the deepest member for a container.
    height: usize,
    /// Whether a NaN occurs anywhere inside.
    nan: bool,
}

impl Summary {
    /// Whether the value is never compared: it holds a NaN (unequal to everything) or is
    /// nested too deep to compare without deep recursion.
    fn skip(&self) -> bool {
        self.nan || self.height > MAX_COMPARE_DEPTH
    }
}

/// The summary of `v`, given the summaries of its members in order (all of a tuple's or
/// frozenset's members, a slice's three parts; none for a scalar or an empty container).
pub fn summarize(v: &Value, members: &[Summary], state: &RandomState) -> Summary {
    let mut h = state.build_hasher();
    let own_nan = match v {
        Value::Float(f) => f.is_nan(),
        Value::Complex(re, im) => re.is_nan() || im.is_nan(),
        _ => false,
    };
    let nan = own_nan || members.iter().any(|m| m.nan);
    // A NaN-holding value is never hashed for comparison; skip the work.
    if !nan {
        feed(v, members, &mut h);
    }
    let height = match v {
        Value::Tuple(_) | Value::FrozenSet(_) | Value::Slice(_) => members
            .iter()
            .map(|m| m.height)
            .max()
            .unwrap_or(0)
            .saturating_add(1),
        _ => 0,
    };
    Summary {
        hash: h.finish(),
        height,
        nan,
    }
}

/// The summary of `v` computed recursively (for values the decoder did not summarize; the
/// recursion stops below [`MAX_COMPARE_DEPTH`], marking deeper values as too deep).
pub fn summarize_tree(v: &Value, state: &RandomState) -> Summary {
    summarize_at(v, state, 0)
}

fn summarize_at(v: &Value, state: &RandomState, depth: usize) -> Summary {
    let children: Vec<&Value> = match v {
        Value::Tuple(items) | Value::FrozenSet(items) => items.iter().collect(),
        Value::Slice(p) => vec![&p.0, &p.1, &p.2],
        _ => Vec::new(),
    };
    if depth > MAX_COMPARE_DEPTH && !children.is_empty() {
        return Summary {
            hash: 0,
            height: usize::MAX,
            nan: false,
        };
    }
    let members: Vec<Summary> = children
        .into_iter()
        .map(|c| summarize_at(c, state, depth + 1))
        .collect();
    summarize(v, &members, state)
}

/// Whether two members of `items` are equal in Python's sense (see the module docs).
/// Summarizes the members itself; the decoder uses [`has_duplicates_summarized`].
#[cfg(test)]
pub fn has_duplicates(items: &[Value]) -> bool {
    let state = RandomState::new();
    let sums: Vec<Summary> = items.iter().map(|v| summarize_tree(v, &state)).collect();
    has_duplicates_summarized(items, &sums, &state)
}

/// Whether two members of `items` are equal in Python's sense, given the members'
/// summaries (`sums[i]` summarizes `items[i]`, computed with the same `state`).
pub fn has_duplicates_summarized(items: &[Value], sums: &[Summary], state: &RandomState) -> bool {
    if items.len() < 2 {
        return false;
    }
    let mut keyed: Vec<(u64, usize)> = sums
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.skip())
        .map(|(i, s)| (s.hash, i))
        .collect();
    keyed.sort_unstable();
    keyed.chunk_by(|a, b| a.0 == b.0).any(|run| {
        run.iter().enumerate().any(|(i, &(_, a))| {
            run[i + 1..]
                .iter()
                .any(|&(_, b)| py_eq(&items[a], &items[b], state))
        })
    })
}

/// The integer a numeric value equals exactly, if it is one that fits `i64`.
fn int_key(v: &Value) -> Option<i64> {
    match v {
        Value::Bool(b) => Some(i64::from(*b)),
        Value::Int(i) => Some(*i),
        Value::Float(f) => exact_i64(*f),
        Value::Complex(re, im) if *im == 0.0 => exact_i64(*re),
        _ => None,
    }
}

fn exact_i64(f: f64) -> Option<i64> {
    // 2^63 is exactly representable; fract() is NaN for infinities and NaN.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    if f.fract() == 0.0 && (-LIMIT..LIMIT).contains(&f) {
        Some(f as i64)
    } else {
        None
    }
}

fn is_numeric(v: &Value) -> bool {
    matches!(
        v,
        Value::Bool(_) | Value::Int(_) | Value::BigInt(_) | Value::Float(_) | Value::Complex(..)
    )
}

fn as_complex(v: &Value) -> Option<(f64, f64)> {
    match v {
        Value::Float(f) => Some((*f, 0.0)),
        Value::Complex(re, im) => Some((*re, *im)),
        _ => None,
    }
}

/// The keyed hash of a NaN-free value (recursive; only used on members that passed the
/// depth check, so the recursion is bounded by [`MAX_COMPARE_DEPTH`]).
fn py_hash(v: &Value, state: &RandomState) -> u64 {
    let children: Vec<&Value> = match v {
        Value::Tuple(items) | Value::FrozenSet(items) => items.iter().collect(),
        Value::Slice(p) => vec![&p.0, &p.1, &p.2],
        _ => Vec::new(),
    };
    let members: Vec<Summary> = children
        .into_iter()
        .map(|c| Summary {
            hash: py_hash(c, state),
            height: 0,
            nan: false,
        })
        .collect();
    let mut h = state.build_hasher();
    feed(v, &members, &mut h);
    h.finish()
}

/// Feed the hash of `v`'s own node, its members represented by their summaries' hashes.
fn feed<H: Hasher>(v: &Value, members: &[Summary], h: &mut H) {
    if let Some(i) = int_key(v) {
        h.write_u8(3);
        h.write_i64(i);
        return;
    }
    match v {
        Value::None => h.write_u8(0),
        Value::Ellipsis => h.write_u8(1),
        Value::NotImplemented => h.write_u8(2),
        Value::Float(_) | Value::Complex(..) => {
            let (re, im) = as_complex(v).unwrap_or((0.0, 0.0));
            if im == 0.0 {
                // Equal to the float `re` (never zero here: zero has an int key).
                h.write_u8(4);
                h.write_u64(re.to_bits());
            } else {
                h.write_u8(5);
                h.write_u64(if re == 0.0 { 0 } else { re.to_bits() });
                h.write_u64(im.to_bits());
            }
        }
        Value::BigInt(s) => {
            h.write_u8(6);
            h.write(s.as_bytes());
        }
        Value::Bytes(b) => {
            h.write_u8(7);
            h.write_usize(b.len());
            h.write(b);
        }
        Value::Str(s) => {
            h.write_u8(8);
            h.write_usize(s.len());
            h.write(s.as_bytes());
        }
        Value::Tuple(items) => {
            h.write_u8(9);
            h.write_usize(items.len());
            for m in members {
                h.write_u64(m.hash);
            }
        }
        Value::FrozenSet(items) => {
            h.write_u8(10);
            h.write_usize(items.len());
            // Order-independent: sum of the members' own keyed hashes.
            let sum = members.iter().fold(0u64, |acc, m| acc.wrapping_add(m.hash));
            h.write_u64(sum);
        }
        Value::Slice(_) => {
            h.write_u8(11);
            for m in members {
                h.write_u64(m.hash);
            }
        }
        // Bool and Int always have an int key.
        Value::Bool(_) | Value::Int(_) => {}
    }
}

/// Python `==` restricted to NaN-free values (conservative, see the module docs).
fn py_eq(a: &Value, b: &Value, state: &RandomState) -> bool {
    if is_numeric(a) || is_numeric(b) {
        if !(is_numeric(a) && is_numeric(b)) {
            return false;
        }
        return match (int_key(a), int_key(b)) {
            (Some(x), Some(y)) => x == y,
            (Some(_), None) | (None, Some(_)) => false,
            (None, None) => match (a, b) {
                (Value::BigInt(x), Value::BigInt(y)) => x == y,
                _ => match (as_complex(a), as_complex(b)) {
                    (Some((ar, ai)), Some((br, bi))) => ar == br && ai == bi,
                    _ => false,
                },
            },
        };
    }
    match (a, b) {
        (Value::None, Value::None)
        | (Value::Ellipsis, Value::Ellipsis)
        | (Value::NotImplemented, Value::NotImplemented) => true,
        (Value::Str(x), Value::Str(y)) => x == y,
        (Value::Bytes(x), Value::Bytes(y)) => x == y,
        (Value::Tuple(x), Value::Tuple(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| py_eq(p, q, state))
        }
        (Value::Slice(x), Value::Slice(y)) => {
            py_eq(&x.0, &y.0, state) && py_eq(&x.1, &y.1, state) && py_eq(&x.2, &y.2, state)
        }
        (Value::FrozenSet(x), Value::FrozenSet(y)) => set_eq(x, y, state),
        _ => false,
    }
}

/// Set equality of two duplicate-free member lists.
fn set_eq(x: &[Value], y: &[Value], state: &RandomState) -> bool {
    if x.len() != y.len() {
        return false;
    }
    let mut keyed: Vec<(u64, usize)> = y
        .iter()
        .enumerate()
        .map(|(i, v)| (py_hash(v, state), i))
        .collect();
    keyed.sort_unstable();
    x.iter().all(|m| {
        let h = py_hash(m, state);
        let from = keyed.partition_point(|&(k, _)| k < h);
        keyed[from..]
            .iter()
            .take_while(|&&(k, _)| k == h)
            .any(|&(_, i)| py_eq(m, &y[i], state))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use Value::*;

    fn fs(items: Vec<Value>) -> Value {
        FrozenSet(items)
    }

    #[test]
    fn python_equal_members_are_duplicates() {
        let dup_sets: Vec<Vec<Value>> = vec![
            vec![Int(1), Int(1)],
            vec![Int(1), Bool(true)],
            vec![Int(0), Bool(false)],
            vec![Int(1), Float(1.0)],
            vec![Float(0.0), Float(-0.0)],
            vec![Int(2), Complex(2.0, -0.0)],
            vec![Float(1.5), Complex(1.5, 0.0)],
            vec![Complex(0.0, 1.0), Complex(-0.0, 1.0)],
            vec![Float(f64::INFINITY), Float(f64::INFINITY)],
            vec![
                BigInt("99999999999999999999".into()),
                BigInt("99999999999999999999".into()),
            ],
            vec![Value::str("a"), Value::str("a")],
            vec![
                Tuple(vec![Int(1), Value::str("x")]),
                Tuple(vec![Bool(true), Value::str("x")]),
            ],
            vec![fs(vec![Int(1), Int(2)]), fs(vec![Int(2), Int(1)])],
            vec![None, Int(5), None],
            vec![
                Value::slice(Int(1), None, None),
                Value::slice(Float(1.0), None, None),
            ],
        ];
        for items in dup_sets {
            assert!(has_duplicates(&items), "{items:?}");
        }
    }

    #[test]
    fn python_unequal_members_are_not_duplicates() {
        let ok_sets: Vec<Vec<Value>> = vec![
            vec![Int(1), Int(2)],
            vec![Value::str("a"), Value::bytes(b"a".to_vec())],
            vec![Float(f64::NAN), Float(f64::NAN)],
            vec![Tuple(vec![Float(f64::NAN)]), Tuple(vec![Float(f64::NAN)])],
            vec![Complex(f64::NAN, 0.0), Complex(f64::NAN, 0.0)],
            vec![Int(1), Float(1.5)],
            // 2^53 + 1 is not equal to the float 2^53.
            vec![Int(9_007_199_254_740_993), Float(9_007_199_254_740_992.0)],
            vec![Tuple(vec![]), fs(vec![])],
            vec![fs(vec![Int(1), Int(2)]), fs(vec![Int(1), Int(3)])],
            vec![None, Ellipsis, NotImplemented, Bool(false), Int(-1)],
            vec![Float(f64::INFINITY), Float(f64::NEG_INFINITY)],
            vec![Complex(1.0, 1.0), Complex(1.0, -1.0)],
        ];
        for items in ok_sets {
            assert!(!has_duplicates(&items), "{items:?}");
        }
    }
}
