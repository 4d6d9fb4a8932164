//! Strict brine decoder producing Python objects (WIRE.md §2.4). Every length is checked
//! against the bytes actually present before anything is allocated, and nesting is bounded.

use crate::errors::wire_err;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyComplex, PyFloat, PyFrozenSet, PyTuple};
use rpyc_wire::brine::int::canonical_decimal;
use rpyc_wire::consts::tag;
use rpyc_wire::WireError;

/// CPython's default limit on int ↔ text conversions (`sys.int_info.default_max_str_digits`).
const MAX_INT_DIGITS: usize = 4300;

/// A cursor over one buffer of brine data.
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    max_depth: usize,
}

type WResult<T> = Result<T, WireError>;

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8], max_depth: usize) -> Self {
        Reader {
            data,
            pos: 0,
            max_depth,
        }
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn at_end(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// Fail unless every byte was consumed (no encoder leaves bytes after a value).
    pub fn finish(&self) -> PyResult<()> {
        if self.at_end() {
            Ok(())
        } else {
            Err(wire_err(WireError::TrailingBytes { offset: self.pos }))
        }
    }

    pub fn byte(&mut self, what: &'static str) -> WResult<u8> {
        let b = *self.data.get(self.pos).ok_or(WireError::Truncated {
            what,
            offset: self.pos,
        })?;
        self.pos += 1;
        Ok(b)
    }

    pub fn take(&mut self, n: usize, what: &'static str) -> WResult<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or(WireError::Truncated {
                what,
                offset: self.pos,
            })?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u32(&mut self, what: &'static str) -> WResult<usize> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }

    fn f64(&mut self) -> WResult<f64> {
        let b = self.take(8, "float")?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(f64::from_bits(u64::from_be_bytes(a)))
    }

    pub fn check_depth(&self, depth: usize) -> WResult<()> {
        if depth > self.max_depth {
            Err(WireError::NestingTooDeep {
                max: self.max_depth,
            })
        } else {
            Ok(())
        }
    }

    /// Read the length of a byte string whose tag was `t`, insisting on the canonical form.
    fn bytes_len(&mut self, t: u8, start: usize) -> WResult<usize> {
        let n = match t {
            tag::EMPTY_STR => 0,
            tag::STR1..=tag::STR4 => (t - tag::STR1 + 1) as usize,
            tag::STR_L1 => self.byte("bytes length")? as usize,
            tag::STR_L4 => self.u32("bytes length")?,
            _ => unreachable_tag(t, start)?,
        };
        let canonical = match t {
            tag::STR_L1 => (5..=255).contains(&n),
            tag::STR_L4 => n >= 256,
            _ => true,
        };
        if !canonical {
            return Err(WireError::NonCanonical {
                what: "a bytes length field longer than needed",
                offset: start,
            });
        }
        Ok(n)
    }

    /// Read the item count of a tuple whose tag was `t` (canonical forms only).
    pub fn tuple_len(&mut self, t: u8, start: usize) -> WResult<usize> {
        let n = match t {
            tag::EMPTY_TUPLE => 0,
            tag::TUP1..=tag::TUP4 => (t - tag::TUP1 + 1) as usize,
            tag::TUP_L1 => self.byte("tuple length")? as usize,
            tag::TUP_L4 => self.u32("tuple length")?,
            _ => unreachable_tag(t, start)?,
        };
        let canonical = match t {
            tag::TUP_L1 => (5..=255).contains(&n),
            tag::TUP_L4 => n >= 256,
            _ => true,
        };
        if !canonical {
            return Err(WireError::NonCanonical {
                what: "a tuple length field longer than needed",
                offset: start,
            });
        }
        // Every item takes at least one byte: a count larger than the rest is a lie.
        if n > self.data.len() - self.pos {
            return Err(WireError::Truncated {
                what: "tuple",
                offset: start,
            });
        }
        Ok(n)
    }

    /// Read a tuple header (any tuple tag) and return its length.
    pub fn expect_tuple(&mut self, what: &'static str) -> WResult<usize> {
        let start = self.pos;
        let t = self.byte(what)?;
        if is_tuple_tag(t) {
            self.tuple_len(t, start)
        } else {
            Err(WireError::BadContainer {
                what,
                offset: start,
            })
        }
    }

    /// Read a byte-string item (any bytes tag) and return its content.
    pub fn expect_bytes(&mut self, what: &'static str) -> WResult<&'a [u8]> {
        let start = self.pos;
        let t = self.byte(what)?;
        if !is_bytes_tag(t) {
            return Err(WireError::BadUnicode { offset: start });
        }
        let n = self.bytes_len(t, start)?;
        self.take(n, what)
    }

    /// Read an integer that must fit in i64 (seq numbers, handler ids, labels).
    pub fn expect_small_int(&mut self, what: &'static str) -> WResult<i64> {
        let start = self.pos;
        let t = self.byte(what)?;
        match t {
            tag::IMM_FIRST..=tag::IMM_LAST => Ok(t as i64 - tag::IMM_BIAS),
            tag::INT_L1 | tag::INT_L4 => {
                let (_, value) = self.int_text(t, start)?;
                value.ok_or(WireError::BadInteger { offset: start })
            }
            _ => Err(WireError::ExpectedInteger {
                what,
                offset: start,
            }),
        }
    }

    /// Read an id_pack `(str, int, int)` whose ints fit in u64 and return them, without
    /// making Python objects: the hot path of a peer naming one of our objects. `None`
    /// (position unchanged) for any other shape; the caller then decodes it in full.
    pub fn id_pack_key(&mut self) -> Option<(u64, u64)> {
        let start = self.pos;
        let key = self.try_id_pack_key();
        if key.is_none() {
            self.pos = start;
        }
        key
    }

    fn try_id_pack_key(&mut self) -> Option<(u64, u64)> {
        if self.byte("id_pack").ok()? != tag::TUP3 || self.byte("id_pack").ok()? != tag::UNICODE {
            return None;
        }
        std::str::from_utf8(self.expect_bytes("id_pack name").ok()?).ok()?;
        Some((self.u64_int()?, self.u64_int()?))
    }

    /// A non-negative integer that fits in u64, validated and parsed in one pass (object
    /// ids are large: they travel as decimal text).
    fn u64_int(&mut self) -> Option<u64> {
        match self.byte("int").ok()? {
            t @ tag::IMM_FIRST..=tag::IMM_LAST => u64::try_from(t as i64 - tag::IMM_BIAS).ok(),
            tag::INT_L1 => {
                let n = self.byte("int length").ok()? as usize;
                let text = self.take(n, "int").ok()?;
                // Canonical: no sign, no leading zero, and too large for the immediate form.
                if matches!(text.first(), None | Some(b'0')) {
                    return None;
                }
                let mut v: u64 = 0;
                for &d in text {
                    if !d.is_ascii_digit() {
                        return None;
                    }
                    v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
                }
                (v > tag::IMM_MAX as u64).then_some(v)
            }
            _ => None,
        }
    }

    /// Move back to `pos` (an earlier position of this reader).
    pub fn rewind(&mut self, pos: usize) {
        self.pos = pos.min(self.pos);
    }

    /// The ASCII text of an INT_L1/INT_L4 item, validated as canonical decimal, with its
    /// value when it fits in i64 (validated and parsed in one pass).
    fn int_text(&mut self, t: u8, start: usize) -> WResult<(&'a [u8], Option<i64>)> {
        let n = if t == tag::INT_L1 {
            self.byte("int length")? as usize
        } else {
            self.u32("int length")?
        };
        let canonical_len = if t == tag::INT_L1 { n < 256 } else { n >= 256 };
        let text = self.take(n, "int")?;
        let bad = WireError::BadInteger { offset: start };
        if !canonical_len {
            return Err(bad);
        }
        let value = canonical_decimal(text).ok_or(bad)?;
        let digits = text.len() - (text[0] == b'-') as usize;
        if digits > MAX_INT_DIGITS {
            return Err(WireError::IntegerTooLong {
                digits,
                offset: start,
            });
        }
        // Values with an immediate form never use the text form.
        if value.is_some_and(|v| (tag::IMM_MIN..=tag::IMM_MAX).contains(&v)) {
            return Err(WireError::BadInteger { offset: start });
        }
        Ok((text, value))
    }

    /// Decode one complete value of any type.
    pub fn value(&mut self, py: Python<'_>, depth: usize) -> PyResult<Py<PyAny>> {
        let start = self.pos;
        let t = self.byte("value").map_err(wire_err)?;
        Ok(match t {
            tag::NONE => py.None(),
            tag::TRUE => true.into_pyobject(py)?.to_owned().into_any().unbind(),
            tag::FALSE => false.into_pyobject(py)?.to_owned().into_any().unbind(),
            tag::ELLIPSIS => py.Ellipsis(),
            tag::NOT_IMPLEMENTED => py.NotImplemented(),
            tag::IMM_FIRST..=tag::IMM_LAST => (t as i64 - tag::IMM_BIAS)
                .into_pyobject(py)?
                .into_any()
                .unbind(),
            tag::EMPTY_STR | tag::STR1..=tag::STR_L4 => {
                let n = self.bytes_len(t, start).map_err(wire_err)?;
                let raw = self.take(n, "bytes").map_err(wire_err)?;
                crate::bigbuf::new_bytes(py, raw)?.into_any().unbind()
            }
            tag::UNICODE => {
                let raw = self.expect_bytes("str").map_err(wire_err)?;
                decode_utf8(py, raw)
                    .ok_or_else(|| wire_err(WireError::BadUnicode { offset: start }))?
            }
            tag::EMPTY_TUPLE | tag::TUP1..=tag::TUP_L4 => {
                self.check_depth(depth + 1).map_err(wire_err)?;
                let n = self.tuple_len(t, start).map_err(wire_err)?;
                self.tuple_body(py, n, depth + 1)?.into_any().unbind()
            }
            tag::INT_L1 | tag::INT_L4 => {
                let (text, value) = self.int_text(t, start).map_err(wire_err)?;
                match value {
                    Some(v) => v.into_pyobject(py)?.into_any().unbind(),
                    None => big_int_from_text(py, text)?,
                }
            }
            tag::FLOAT => PyFloat::new(py, self.f64().map_err(wire_err)?)
                .into_any()
                .unbind(),
            _ => self.rare_value(py, t, start, depth)?,
        })
    }

    /// The tags seldom seen, kept out of `value`: its stack frame is paid once per level of
    /// nesting, on every thread that decodes (and stays resident on each serving thread).
    #[inline(never)]
    fn rare_value(
        &mut self,
        py: Python<'_>,
        t: u8,
        start: usize,
        depth: usize,
    ) -> PyResult<Py<PyAny>> {
        Ok(match t {
            tag::COMPLEX => {
                let re = self.f64().map_err(wire_err)?;
                let im = self.f64().map_err(wire_err)?;
                PyComplex::from_doubles(py, re, im).into_any().unbind()
            }
            tag::FSET => {
                self.check_depth(depth + 1).map_err(wire_err)?;
                let n = self.expect_tuple("frozenset").map_err(wire_err)?;
                let items = self.items(py, n, depth + 1)?;
                PyFrozenSet::new(py, items.iter())?.into_any().unbind()
            }
            tag::SLICE => {
                self.check_depth(depth + 1).map_err(wire_err)?;
                let n = self.expect_tuple("slice").map_err(wire_err)?;
                if n != 3 {
                    return Err(wire_err(WireError::BadContainer {
                        what: "slice",
                        offset: start,
                    }));
                }
                let parts = self.items(py, 3, depth + 1)?;
                new_slice(py, &parts[0], &parts[1], &parts[2])?
            }
            _ => {
                return Err(wire_err(WireError::UnknownTag {
                    tag: t,
                    offset: start,
                }))
            }
        })
    }

    fn items(&mut self, py: Python<'_>, n: usize, depth: usize) -> PyResult<Vec<Py<PyAny>>> {
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            items.push(self.value(py, depth)?);
        }
        Ok(items)
    }

    fn tuple_body<'py>(
        &mut self,
        py: Python<'py>,
        n: usize,
        depth: usize,
    ) -> PyResult<Bound<'py, PyTuple>> {
        // Filled in place: no intermediate Vec (tuples are most of what brine carries).
        // `n` was checked against the bytes left, so the allocation is bounded by the input.
        let len = ffi::Py_ssize_t::try_from(n).map_err(|_| {
            wire_err(WireError::BadContainer {
                what: "tuple length",
                offset: self.pos,
            })
        })?;
        // SAFETY: PyTuple_New returns a new tuple of `len` NULL slots (or NULL with an error
        // set); a tuple dropped half-filled releases only the slots that were set.
        let tuple = unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyTuple_New(len))? };
        // A brine tuple holds only immutable brine values made before it, so it can never be
        // part of a reference cycle: the cycle collector has nothing to find in it. Left
        // tracked, every decoded tuple would be traversed by the young-generation collections
        // the decode itself triggers (CPython would untrack most of them later anyway).
        // SAFETY: a tuple just made by PyTuple_New is tracked and owned here.
        unsafe { ffi::PyObject_GC_UnTrack(tuple.as_ptr().cast()) };
        for i in 0..len {
            let item = self.value(py, depth)?;
            // SAFETY: `i` < `len`, the slot is empty and the tuple is not shared yet; the
            // reference to `item` is handed over.
            unsafe { ffi::PyTuple_SET_ITEM(tuple.as_ptr(), i, item.into_ptr()) };
        }
        // SAFETY: it is a tuple, made above.
        Ok(unsafe { tuple.cast_into_unchecked::<PyTuple>() })
    }
}

fn unreachable_tag(t: u8, offset: usize) -> WResult<usize> {
    Err(WireError::UnknownTag { tag: t, offset })
}

pub fn is_tuple_tag(t: u8) -> bool {
    t == tag::EMPTY_TUPLE || (tag::TUP1..=tag::TUP_L4).contains(&t)
}

fn is_bytes_tag(t: u8) -> bool {
    t == tag::EMPTY_STR || (tag::STR1..=tag::STR_L4).contains(&t)
}

/// A str from UTF-8 bytes; `None` if they are not valid UTF-8 (surrogates included, as
/// Python's strict codec). The str is built directly in its final width: CPython's generic
/// decoder grows a writer for non-ASCII text, which costs more than the whole copy here.
#[inline(never)]
fn decode_utf8(py: Python<'_>, raw: &[u8]) -> Option<Py<PyAny>> {
    if raw.is_ascii() {
        return new_str(py, raw.len(), 127, |dst: *mut u8| {
            // SAFETY: `dst` has room for `raw.len()` one-byte characters.
            unsafe { std::ptr::copy_nonoverlapping(raw.as_ptr(), dst, raw.len()) }
        });
    }
    let text = std::str::from_utf8(raw).ok()?;
    let (count, max) = text
        .chars()
        .fold((0usize, 0u32), |(n, m), c| (n + 1, m.max(c as u32)));
    if max < 0x100 {
        new_str(py, count, max, |dst: *mut u8| fill(text, dst, |c| c as u8))
    } else if max < 0x10000 {
        new_str(py, count, max, |dst: *mut u16| {
            fill(text, dst, |c| c as u16)
        })
    } else {
        new_str(py, count, max, |dst: *mut u32| {
            fill(text, dst, |c| c as u32)
        })
    }
}

/// A new str of `count` characters, all at most `max`, whose storage (one code unit of type
/// `T` per character: the width CPython picks for `max`) `write` fills in full.
fn new_str<T>(
    py: Python<'_>,
    count: usize,
    max: u32,
    write: impl FnOnce(*mut T),
) -> Option<Py<PyAny>> {
    let len = ffi::Py_ssize_t::try_from(count).ok()?;
    // SAFETY: PyUnicode_New returns a new, uninitialised compact str of `len` characters whose
    // code units have the width `max` calls for (that of `T`, chosen by the caller), or NULL
    // with an error set, which is cleared. `write` fills every unit before the str is shared.
    unsafe {
        let ptr = ffi::PyUnicode_New(len, max);
        if ptr.is_null() {
            ffi::PyErr_Clear();
            return None;
        }
        write(ffi::PyUnicode_DATA(ptr).cast::<T>());
        Some(Bound::from_owned_ptr(py, ptr).unbind())
    }
}

/// Write each character of `text` as one code unit at `dst` (which has room for them all).
fn fill<T>(text: &str, dst: *mut T, unit: impl Fn(char) -> T) {
    for (i, c) in text.chars().enumerate() {
        // SAFETY: `i` < the character count the caller allocated for.
        unsafe { dst.add(i).write(unit(c)) };
    }
}

/// An integer beyond i64 from its validated canonical text (at most 4300 digits). Up to
/// 38 digits it is built from its binary value (CPython's decimal parser costs ten times
/// more), read as two halves of at most 19 digits that each fit a u64.
#[inline(never)]
fn big_int_from_text(py: Python<'_>, text: &[u8]) -> PyResult<Py<PyAny>> {
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    if digits.len() <= 38 {
        let split = digits.len().saturating_sub(19);
        let (high, low) = digits.split_at(split);
        // < 10^38 < 2^127: fits an i128 with either sign.
        let magnitude =
            u128::from(decimal_u64(high)) * 10u128.pow(19) + u128::from(decimal_u64(low));
        let value = magnitude as i128;
        let value = if negative { -value } else { value };
        return Ok(value.into_pyobject(py)?.into_any().unbind());
    }
    let mut cstr = Vec::with_capacity(text.len() + 1);
    cstr.extend_from_slice(text);
    cstr.push(0);
    // SAFETY: `cstr` is NUL-terminated and outlives the call; a NULL result sets an error.
    unsafe {
        let ptr = ffi::PyLong_FromString(cstr.as_ptr().cast(), std::ptr::null_mut(), 10);
        Bound::from_owned_ptr_or_err(py, ptr).map(Bound::unbind)
    }
}

/// The value of at most 19 validated ASCII digits (0 for none).
fn decimal_u64(digits: &[u8]) -> u64 {
    digits
        .iter()
        .fold(0u64, |acc, &d| acc * 10 + u64::from(d - b'0'))
}

fn new_slice(py: Python<'_>, a: &Py<PyAny>, b: &Py<PyAny>, c: &Py<PyAny>) -> PyResult<Py<PyAny>> {
    // SAFETY: PySlice_New borrows its three arguments and returns a new reference or NULL.
    unsafe {
        let ptr = ffi::PySlice_New(a.as_ptr(), b.as_ptr(), c.as_ptr());
        Bound::from_owned_ptr_or_err(py, ptr).map(|b| b.unbind())
    }
}
