//! Encoding [`Value`]s: a walk over the tree that writes through [`super::write`].
//!
//! Iterative past a fixed depth (an explicit stack instead of recursion), so arbitrarily
//! deep values cannot overflow the call stack.

use super::write;
use super::Value;
use crate::error::WireError;

/// Append the brine encoding of `v` to `out`.
///
/// Infallible by design. What brine cannot carry is written anyway and must be caught
/// elsewhere (or up front with [`try_encode`] / [`encode_checked`]): an item longer than
/// `u32::MAX` bytes or members gets the length `u32::MAX` (such an output is over 4 GiB and
/// the frame layer refuses it), integers over 4300 digits are written although CPython
/// peers cannot read them, and nesting is not limited.
pub fn encode(v: &Value, out: &mut Vec<u8>) {
    encode_shallow(v, out, 0)
}

/// Values nested deeper than this are encoded with an explicit stack instead of recursion.
const RECURSION_LIMIT: usize = 64;

/// Recursive (no allocation) for the usual shallow values; hands deep subtrees to
/// [`encode_deep`].
fn encode_shallow(v: &Value, out: &mut Vec<u8>, depth: usize) {
    if write_leaf(v, out) {
        return;
    }
    if depth >= RECURSION_LIMIT {
        return encode_deep(v, out);
    }
    for_members(v, out, |m, out| encode_shallow(m, out, depth + 1));
}

/// Write a container's header and call `each` on its members in order (nothing for a leaf).
#[inline]
fn for_members(v: &Value, out: &mut Vec<u8>, mut each: impl FnMut(&Value, &mut Vec<u8>)) {
    match v {
        Value::Tuple(items) => {
            write::tuple_header(out, items.len());
            items.iter().for_each(|m| each(m, out));
        }
        Value::FrozenSet(items) => {
            write::frozenset_header(out, items.len());
            items.iter().for_each(|m| each(m, out));
        }
        Value::Slice(parts) => {
            write::slice_header(out);
            each(&parts.0, out);
            each(&parts.1, out);
            each(&parts.2, out);
        }
        _ => {}
    }
}

/// Write a non-container value; returns false (writing nothing) for containers.
#[inline]
fn write_leaf(v: &Value, out: &mut Vec<u8>) -> bool {
    match v {
        Value::None => write::none(out),
        Value::Bool(b) => write::boolean(out, *b),
        Value::Ellipsis => write::ellipsis(out),
        Value::NotImplemented => write::not_implemented(out),
        Value::Int(i) => write::int(out, *i),
        // Malformed text is caught by `try_encode`; written as it is otherwise.
        Value::BigInt(text) => write::int_text_lenient(out, text.as_bytes()),
        Value::Float(f) => write::float(out, *f),
        Value::Complex(re, im) => write::complex(out, *re, *im),
        Value::Bytes(b) => write::bytes(out, b),
        Value::Str(s) => write::str(out, s),
        Value::Tuple(_) | Value::FrozenSet(_) | Value::Slice(_) => return false,
    }
    true
}

/// Iterative encoder (an explicit stack instead of recursion) for deep values.
fn encode_deep(v: &Value, out: &mut Vec<u8>) {
    enum Pending<'a> {
        Items(std::slice::Iter<'a, Value>),
        Slice(&'a (Value, Value, Value), u8),
    }
    let mut stack: Vec<Pending<'_>> = Vec::new();
    let mut cur = v;
    loop {
        if !write_leaf(cur, out) {
            match cur {
                Value::Tuple(items) => {
                    write::tuple_header(out, items.len());
                    stack.push(Pending::Items(items.iter()));
                }
                Value::FrozenSet(items) => {
                    write::frozenset_header(out, items.len());
                    stack.push(Pending::Items(items.iter()));
                }
                Value::Slice(parts) => {
                    write::slice_header(out);
                    stack.push(Pending::Slice(parts, 0));
                }
                _ => {}
            }
        }
        // Find the next value to write.
        cur = loop {
            match stack.last_mut() {
                None => return,
                Some(Pending::Items(it)) => match it.next() {
                    Some(next) => break next,
                    None => {
                        stack.pop();
                    }
                },
                Some(Pending::Slice(parts, i)) => {
                    let next = match i {
                        0 => &parts.0,
                        1 => &parts.1,
                        _ => &parts.2,
                    };
                    *i += 1;
                    if *i == 3 {
                        stack.pop();
                    }
                    break next;
                }
            }
        };
    }
}

/// The brine encoding of `v` as a new vector.
pub fn to_vec(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    encode(v, &mut out);
    out
}

/// Like [`encode`], but first checks that a CPython peer can read the result: no item
/// longer than `u32::MAX`, no integer over 4300 digits, no malformed `BigInt` text.
/// On error nothing is written.
pub fn try_encode(v: &Value, out: &mut Vec<u8>) -> Result<(), WireError> {
    check(v, 0, usize::MAX)?;
    encode(v, out);
    Ok(())
}

/// Like [`try_encode`], for a value at `level` containers deep in a message: also refuses
/// nesting that a peer applying `max_depth` would refuse ([`WireError::OutgoingTooDeep`]).
pub fn encode_checked(
    v: &Value,
    level: usize,
    max_depth: usize,
    out: &mut Vec<u8>,
) -> Result<(), WireError> {
    check(v, level, max_depth)?;
    encode(v, out);
    Ok(())
}

/// Check what [`encode_checked`] promises, walking the tree with an explicit stack.
fn check(v: &Value, level: usize, max_depth: usize) -> Result<(), WireError> {
    if matches!(v, Value::Int(_) | Value::None | Value::Bool(_)) {
        return Ok(()); // (the usual seq: nothing to walk)
    }
    let mut todo: Vec<(&Value, usize)> = vec![(v, level)];
    while let Some((v, level)) = todo.pop() {
        let len = match v {
            Value::BigInt(text) => {
                write::check_int_text(text.as_bytes())?;
                0
            }
            Value::Bytes(b) => b.len(),
            Value::Str(s) => s.len(),
            Value::Tuple(items) | Value::FrozenSet(items) => {
                write::container_level(level, max_depth)?;
                todo.extend(items.iter().map(|m| (m, level + 1)));
                items.len()
            }
            Value::Slice(parts) => {
                write::container_level(level, max_depth)?;
                todo.extend([&parts.0, &parts.1, &parts.2].map(|m| (m, level + 1)));
                0
            }
            _ => 0,
        };
        if u32::try_from(len).is_err() {
            return Err(WireError::Unencodable(format!(
                "a {} of length {len} exceeds brine's u32 length field",
                v.type_name()
            )));
        }
    }
    Ok(())
}
