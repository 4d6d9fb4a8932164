//! Brine encoder, byte-exact with upstream `brine.dump` (WIRE.md §2.2).
//!
//! Iterative (an explicit stack instead of recursion), so arbitrarily deep values
//! cannot overflow the call stack.

use super::int::{format_i64, MAX_INT_DIGITS};
use super::Value;
use crate::consts::tag;
use crate::error::WireError;

/// Append the brine encoding of `v` to `out`.
///
/// Infallible by design. Two things brine cannot carry are written anyway and must be
/// caught elsewhere (or up front with [`try_encode`]): an item longer than `u32::MAX`
/// bytes or members gets the length `u32::MAX` (such an output is over 4 GiB and
/// [`crate::frame::encode_frame`] refuses it), and integers over 4300 digits are written
/// although CPython peers cannot read them.
pub fn encode(v: &Value, out: &mut Vec<u8>) {
    encode_shallow(v, out, 0)
}

/// Values nested deeper than this are encoded with an explicit stack instead of recursion.
const RECURSION_LIMIT: usize = 64;

/// Recursive (no allocation) for the usual shallow values; hands deep subtrees to
/// [`encode_deep`] so arbitrarily deep values cannot overflow the call stack.
fn encode_shallow(v: &Value, out: &mut Vec<u8>, depth: usize) {
    if write_leaf(v, out) {
        return;
    }
    if depth >= RECURSION_LIMIT {
        return encode_deep(v, out);
    }
    match v {
        Value::Tuple(items) => {
            write_tuple_header(items.len(), out);
            for m in items {
                encode_shallow(m, out, depth + 1);
            }
        }
        Value::FrozenSet(items) => {
            out.push(tag::FSET);
            write_tuple_header(items.len(), out);
            for m in items {
                encode_shallow(m, out, depth + 1);
            }
        }
        Value::Slice(parts) => {
            out.push(tag::SLICE);
            out.push(tag::TUP3);
            encode_shallow(&parts.0, out, depth + 1);
            encode_shallow(&parts.1, out, depth + 1);
            encode_shallow(&parts.2, out, depth + 1);
        }
        _ => {}
    }
}

/// Write a non-container value; returns false (writing nothing) for containers.
#[inline]
fn write_leaf(v: &Value, out: &mut Vec<u8>) -> bool {
    match v {
        Value::None => out.push(tag::NONE),
        Value::Bool(true) => out.push(tag::TRUE),
        Value::Bool(false) => out.push(tag::FALSE),
        Value::Ellipsis => out.push(tag::ELLIPSIS),
        Value::NotImplemented => out.push(tag::NOT_IMPLEMENTED),
        Value::Int(i) => write_i64(*i, out),
        Value::BigInt(text) => write_big(text, out),
        Value::Float(f) => {
            out.push(tag::FLOAT);
            out.extend_from_slice(&f.to_be_bytes());
        }
        Value::Complex(re, im) => {
            out.push(tag::COMPLEX);
            out.extend_from_slice(&re.to_be_bytes());
            out.extend_from_slice(&im.to_be_bytes());
        }
        Value::Bytes(b) => write_bytes(b, out),
        Value::Str(s) => {
            out.push(tag::UNICODE);
            write_bytes(s.as_bytes(), out);
        }
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
                    write_tuple_header(items.len(), out);
                    stack.push(Pending::Items(items.iter()));
                }
                Value::FrozenSet(items) => {
                    out.push(tag::FSET);
                    write_tuple_header(items.len(), out);
                    stack.push(Pending::Items(items.iter()));
                }
                Value::Slice(parts) => {
                    out.push(tag::SLICE);
                    out.push(tag::TUP3);
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
    check_encodable(v)?;
    encode(v, out);
    Ok(())
}

fn check_encodable(v: &Value) -> Result<(), WireError> {
    let mut todo: Vec<&Value> = vec![v];
    while let Some(v) = todo.pop() {
        let len = match v {
            Value::BigInt(text) => {
                if super::int::parse_canonical(text.as_bytes()).is_none() {
                    let digits = text.trim_start_matches('-').len();
                    return Err(WireError::Unencodable(if digits > MAX_INT_DIGITS {
                        format!("integer of {digits} digits exceeds CPython's limit of {MAX_INT_DIGITS}")
                    } else {
                        format!("BigInt text {text:?} is not a canonical decimal integer")
                    }));
                }
                0
            }
            Value::Bytes(b) => b.len(),
            Value::Str(s) => s.len(),
            Value::Tuple(items) | Value::FrozenSet(items) => {
                todo.extend(items);
                items.len()
            }
            Value::Slice(parts) => {
                todo.extend([&parts.0, &parts.1, &parts.2]);
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

/// Append the encoding of an integer (immediate form or decimal text).
#[inline]
pub fn encode_int(i: i64, out: &mut Vec<u8>) {
    write_i64(i, out)
}

/// Append the encoding of a `bytes` item.
#[inline]
pub fn encode_bytes(b: &[u8], out: &mut Vec<u8>) {
    write_bytes(b, out)
}

/// Append the encoding of a `str` item (`UNICODE` + its UTF-8 as bytes).
#[inline]
pub fn encode_str(s: &str, out: &mut Vec<u8>) {
    out.push(tag::UNICODE);
    write_bytes(s.as_bytes(), out)
}

/// Append the header of an `n`-member tuple; the caller then encodes `n` members.
#[inline]
pub fn encode_tuple_header(n: usize, out: &mut Vec<u8>) {
    write_tuple_header(n, out)
}

#[inline]
fn write_i64(i: i64, out: &mut Vec<u8>) {
    if (tag::IMM_MIN..=tag::IMM_MAX).contains(&i) {
        out.push((i + tag::IMM_BIAS) as u8);
    } else {
        let mut buf = [0u8; 20];
        write_int_text(format_i64(i, &mut buf), out);
    }
}

fn write_big(text: &str, out: &mut Vec<u8>) {
    // A BigInt whose text fits i64 still gets the canonical (possibly immediate) form.
    if text.len() <= 20 {
        if let Some(Value::Int(i)) = super::int::parse_canonical(text.as_bytes()) {
            write_i64(i, out);
            return;
        }
    }
    write_int_text(text.as_bytes(), out);
}

#[inline]
fn write_int_text(text: &[u8], out: &mut Vec<u8>) {
    if text.len() < 256 {
        out.push(tag::INT_L1);
        out.push(text.len() as u8);
    } else {
        out.push(tag::INT_L4);
        out.extend_from_slice(&len_u32(text.len()).to_be_bytes());
    }
    out.extend_from_slice(text);
}

#[inline]
fn write_bytes(b: &[u8], out: &mut Vec<u8>) {
    match b.len() {
        0 => out.push(tag::EMPTY_STR),
        n @ 1..=4 => {
            out.push(tag::STR1 + (n as u8 - 1));
            out.extend_from_slice(b);
        }
        n @ 5..=255 => {
            out.reserve(2 + n);
            out.push(tag::STR_L1);
            out.push(n as u8);
            out.extend_from_slice(b);
        }
        n => {
            out.reserve(5 + n);
            out.push(tag::STR_L4);
            out.extend_from_slice(&len_u32(n).to_be_bytes());
            out.extend_from_slice(b);
        }
    }
}

#[inline]
fn write_tuple_header(n: usize, out: &mut Vec<u8>) {
    match n {
        0 => out.push(tag::EMPTY_TUPLE),
        1..=4 => out.push(tag::TUP1 + (n as u8 - 1)),
        5..=255 => {
            out.push(tag::TUP_L1);
            out.push(n as u8);
        }
        _ => {
            out.push(tag::TUP_L4);
            out.extend_from_slice(&len_u32(n).to_be_bytes());
        }
    }
}

#[inline]
fn len_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
