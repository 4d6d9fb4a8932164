//! The brine writer: every byte brine puts on the wire is written here, byte-exact with
//! upstream's `brine.dump`. The encoders walk their own representation ([`super::encode`]
//! walks [`super::Value`]; `rpyc._core` walks Python objects) and call these.

use super::int::MAX_INT_DIGITS;
use crate::consts::tag;
use crate::error::WireError;

#[inline]
pub fn none(out: &mut Vec<u8>) {
    out.push(tag::NONE);
}

#[inline]
pub fn boolean(out: &mut Vec<u8>, v: bool) {
    out.push(if v { tag::TRUE } else { tag::FALSE });
}

#[inline]
pub fn ellipsis(out: &mut Vec<u8>) {
    out.push(tag::ELLIPSIS);
}

#[inline]
pub fn not_implemented(out: &mut Vec<u8>) {
    out.push(tag::NOT_IMPLEMENTED);
}

/// An integer: the one-byte immediate form for −48…159, decimal text otherwise.
#[inline(always)]
pub fn int(out: &mut Vec<u8>, v: i64) {
    if (tag::IMM_MIN..=tag::IMM_MAX).contains(&v) {
        out.push((v + tag::IMM_BIAS) as u8);
    } else {
        let mut buf = itoa::Buffer::new();
        int_text_unchecked(out, buf.format(v).as_bytes());
    }
}

/// An integer of up to 128 bits (formatted here: no text to validate).
pub fn int_wide(out: &mut Vec<u8>, v: i128) {
    match i64::try_from(v) {
        Ok(v) => int(out, v),
        Err(_) => {
            let mut buf = itoa::Buffer::new();
            int_text_unchecked(out, buf.format(v).as_bytes());
        }
    }
}

/// An integer given as canonical decimal text (what Python's `str(int)` gives). Text with
/// more than 4300 digits is refused: no CPython peer can read it. Text of an integer that
/// has an immediate form gets that form.
pub fn int_text(out: &mut Vec<u8>, text: &[u8]) -> Result<(), WireError> {
    match check_int_text(text)? {
        Some(v) => int(out, v),
        None => int_text_unchecked(out, text),
    }
    Ok(())
}

/// Whether `text` may be written as an integer: canonical decimal of at most 4300 digits.
/// Its value when it fits `i64`.
pub fn check_int_text(text: &[u8]) -> Result<Option<i64>, WireError> {
    let digits = text.len() - usize::from(text.first() == Some(&b'-'));
    if digits > MAX_INT_DIGITS {
        return Err(WireError::Unencodable(format!(
            "integer of {digits} digits exceeds CPython's limit of {MAX_INT_DIGITS}"
        )));
    }
    super::int::canonical_decimal(text).ok_or_else(|| {
        WireError::Unencodable(format!(
            "{:?} is not a canonical decimal integer",
            String::from_utf8_lossy(text)
        ))
    })
}

/// Integer text as it is, unchecked (see [`super::encode`]'s promise).
pub(crate) fn int_text_lenient(out: &mut Vec<u8>, text: &[u8]) {
    match check_int_text(text) {
        Ok(Some(v)) => int(out, v),
        _ => int_text_unchecked(out, text),
    }
}

#[inline]
fn int_text_unchecked(out: &mut Vec<u8>, text: &[u8]) {
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
pub fn float(out: &mut Vec<u8>, v: f64) {
    out.push(tag::FLOAT);
    out.extend_from_slice(&v.to_be_bytes());
}

#[inline]
pub fn complex(out: &mut Vec<u8>, re: f64, im: f64) {
    out.push(tag::COMPLEX);
    out.extend_from_slice(&re.to_be_bytes());
    out.extend_from_slice(&im.to_be_bytes());
}

/// The header of a bytes item of `len` bytes (the bytes follow). A length beyond brine's
/// `u32` field is written as `u32::MAX`: such an item is over 4 GiB, and the frame layer
/// refuses to send it.
#[inline(always)]
pub fn bytes_header(out: &mut Vec<u8>, len: usize) {
    match len {
        0 => out.push(tag::EMPTY_STR),
        1..=4 => out.push(tag::STR1 + (len as u8 - 1)),
        5..=255 => {
            out.push(tag::STR_L1);
            out.push(len as u8);
        }
        _ => {
            out.push(tag::STR_L4);
            out.extend_from_slice(&len_u32(len).to_be_bytes());
        }
    }
}

#[inline]
pub fn bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.reserve(5 + b.len());
    bytes_header(out, b.len());
    out.extend_from_slice(b);
}

/// A `str`: `UNICODE` and its UTF-8 as a bytes item.
#[inline]
pub fn str(out: &mut Vec<u8>, s: &str) {
    out.push(tag::UNICODE);
    bytes(out, s.as_bytes());
}

/// The header of a tuple of `len` members (the members follow).
#[inline(always)]
pub fn tuple_header(out: &mut Vec<u8>, len: usize) {
    match len {
        0 => out.push(tag::EMPTY_TUPLE),
        1..=4 => out.push(tag::TUP1 + (len as u8 - 1)),
        5..=255 => {
            out.push(tag::TUP_L1);
            out.push(len as u8);
        }
        _ => {
            out.push(tag::TUP_L4);
            out.extend_from_slice(&len_u32(len).to_be_bytes());
        }
    }
}

/// The header of a frozenset of `len` members (the members follow).
#[inline]
pub fn frozenset_header(out: &mut Vec<u8>, len: usize) {
    out.push(tag::FSET);
    tuple_header(out, len);
}

/// The header of a slice (start, stop and step follow).
#[inline]
pub fn slice_header(out: &mut Vec<u8>) {
    out.push(tag::SLICE);
    out.push(tag::TUP3);
}

/// Refuse to open a container at `level` (the number of containers around it) when the
/// peer, applying the same `max_depth`, would refuse it: the sender gets a clear error and
/// keeps its connection, where the peer would close it.
#[inline]
pub fn container_level(level: usize, max_depth: usize) -> Result<(), WireError> {
    if level >= max_depth {
        return Err(WireError::OutgoingTooDeep { max: max_depth });
    }
    Ok(())
}

#[inline]
fn len_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
