//! Brine encoder walking Python objects (WIRE.md §2.2). Dispatch is on the *exact* type,
//! as upstream does: subclasses of int/str/tuple are not encodable by value.

use crate::outgoing::{Outgoing, Splice, SPLICE_MIN};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyBytes, PyComplex, PyFloat, PyFrozenSet, PyInt, PySlice, PyString, PyTuple,
};
use rpyc_wire::consts::tag;

/// CPython refuses to convert integers longer than this to text; upstream peers too.
const MAX_INT_DIGITS: usize = 4300;

/// Why a value could not be written by value.
pub enum EncodeError {
    /// The object's type is not one brine knows: it must travel by reference.
    NotDumpable,
    /// The type is brine's but the value cannot be written (lone surrogate, huge int...).
    Failed(PyErr),
}

impl From<PyErr> for EncodeError {
    fn from(e: PyErr) -> Self {
        EncodeError::Failed(e)
    }
}

impl EncodeError {
    /// Turn into the exception `brine.dump` raises for this object.
    pub fn into_pyerr(self, obj: &Bound<'_, PyAny>) -> PyErr {
        match self {
            EncodeError::Failed(e) => e,
            EncodeError::NotDumpable => {
                let tname = obj
                    .get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_else(|_| "?".into());
                PyTypeError::new_err(format!("cannot dump {tname} objects with brine"))
            }
        }
    }
}

pub fn put_len_prefixed(
    out: &mut Vec<u8>,
    short_tags: &[u8; 4],
    l1: u8,
    l4: u8,
    empty: u8,
    len: usize,
) {
    match len {
        0 => out.push(empty),
        1..=4 => out.push(short_tags[len - 1]),
        5..=255 => {
            out.push(l1);
            out.push(len as u8);
        }
        _ => {
            out.push(l4);
            out.extend_from_slice(&(len as u32).to_be_bytes());
        }
    }
}

/// Header of a byte string of `len` bytes (the bytes follow).
pub fn put_bytes_header(out: &mut Vec<u8>, len: usize) {
    put_len_prefixed(
        out,
        &[tag::STR1, tag::STR2, tag::STR3, tag::STR4],
        tag::STR_L1,
        tag::STR_L4,
        tag::EMPTY_STR,
        len,
    );
}

pub fn put_bytes(out: &mut Vec<u8>, data: &[u8]) {
    if data.len() >= crate::bigbuf::LARGE {
        crate::bigbuf::reserve(out, data.len() + 5);
    }
    put_bytes_header(out, data.len());
    out.extend_from_slice(data);
}

pub fn put_str(out: &mut Vec<u8>, s: &str) {
    out.push(tag::UNICODE);
    put_bytes(out, s.as_bytes());
}

/// Header of a tuple of `len` items (the items follow).
pub fn put_tuple_header(out: &mut Vec<u8>, len: usize) {
    put_len_prefixed(
        out,
        &[tag::TUP1, tag::TUP2, tag::TUP3, tag::TUP4],
        tag::TUP_L1,
        tag::TUP_L4,
        tag::EMPTY_TUPLE,
        len,
    );
}

pub fn put_i64(out: &mut Vec<u8>, v: i64) {
    if (tag::IMM_MIN..=tag::IMM_MAX).contains(&v) {
        out.push((v + tag::IMM_BIAS) as u8);
    } else {
        let mut buf = itoa::Buffer::new();
        put_int_text(out, buf.format(v).as_bytes());
    }
}

/// An integer given as its canonical decimal text (INT_L1 / INT_L4 by character count).
pub fn put_int_text(out: &mut Vec<u8>, text: &[u8]) {
    if text.len() < 256 {
        out.push(tag::INT_L1);
        out.push(text.len() as u8);
    } else {
        out.push(tag::INT_L4);
        out.extend_from_slice(&(text.len() as u32).to_be_bytes());
    }
    out.extend_from_slice(text);
}

fn put_f64(out: &mut Vec<u8>, v: f64) {
    out.extend_from_slice(&v.to_bits().to_be_bytes());
}

/// Encode an arbitrary Python int (fast path for i64, decimal text otherwise).
pub fn put_pyint(out: &mut Vec<u8>, obj: &Bound<'_, PyAny>) -> PyResult<()> {
    let mut overflow: std::os::raw::c_int = 0;
    // SAFETY: `obj` is an int; this call reports overflow through the flag instead of
    // raising, so no exception object is created on the bignum path.
    let v = unsafe { pyo3::ffi::PyLong_AsLongLongAndOverflow(obj.as_ptr(), &mut overflow) };
    if overflow == 0 {
        if v == -1 {
            if let Some(err) = PyErr::take(obj.py()) {
                return Err(err);
            }
        }
        put_i64(out, v);
        return Ok(());
    }
    // Most overflowing ints still fit 128 bits: formatted here, not by CPython's general
    // int-to-text conversion (which costs ten times more). Beyond that, decimal text it is.
    if let Ok(wide) = obj.extract::<i128>() {
        let mut buf = itoa::Buffer::new();
        put_int_text(out, buf.format(wide).as_bytes());
        return Ok(());
    }
    let text = obj.str()?;
    let text = text.to_str()?;
    let digits = text.trim_start_matches('-').len();
    if digits > MAX_INT_DIGITS {
        return Err(PyValueError::new_err(format!(
            "integer of {digits} digits exceeds the {MAX_INT_DIGITS}-digit limit of brine"
        )));
    }
    put_int_text(out, text.as_bytes());
    Ok(())
}

/// Writes Python values as brine; `max_depth` bounds tuple nesting.
pub struct Encoder<'a> {
    out: &'a mut Vec<u8>,
    max_depth: usize,
    /// Where large `bytes` values go by reference instead of being copied into `out`
    /// (`None`: always copied).
    splices: Option<&'a mut Vec<Splice>>,
}

impl<'a> Encoder<'a> {
    pub fn new(out: &'a mut Vec<u8>, max_depth: usize) -> Self {
        Encoder {
            out,
            max_depth,
            splices: None,
        }
    }

    /// An encoder appending to a message, whose large `bytes` values it splices in.
    pub fn splicing(message: &'a mut Outgoing, max_depth: usize) -> Self {
        Encoder {
            out: &mut message.buf,
            max_depth,
            splices: Some(&mut message.splices),
        }
    }

    /// Encode `obj` by value, or report `NotDumpable` (leaving partial output for the
    /// caller to truncate).
    pub fn value(&mut self, obj: &Bound<'_, PyAny>, depth: usize) -> Result<(), EncodeError> {
        let py = obj.py();
        if obj.is_none() {
            self.out.push(tag::NONE);
        } else if obj.cast_exact::<PyInt>().is_ok() {
            put_pyint(self.out, obj)?;
        } else if let Ok(s) = obj.cast_exact::<PyString>() {
            put_str(self.out, s.to_str()?);
        } else if let Ok(b) = obj.cast_exact::<PyBytes>() {
            match self.splices.as_deref_mut() {
                Some(splices) if b.as_bytes().len() >= SPLICE_MIN => {
                    put_bytes_header(self.out, b.as_bytes().len());
                    splices.push(Splice::new(self.out.len(), b));
                }
                _ => put_bytes(self.out, b.as_bytes()),
            }
        } else if let Ok(t) = obj.cast_exact::<PyTuple>() {
            self.tuple_items(t, depth)?;
        } else if let Ok(b) = obj.cast_exact::<PyBool>() {
            self.out
                .push(if b.is_true() { tag::TRUE } else { tag::FALSE });
        } else if let Ok(f) = obj.cast_exact::<PyFloat>() {
            self.out.push(tag::FLOAT);
            put_f64(self.out, f.value());
        } else if let Ok(c) = obj.cast_exact::<PyComplex>() {
            self.out.push(tag::COMPLEX);
            put_f64(self.out, c.real());
            put_f64(self.out, c.imag());
        } else if let Ok(fs) = obj.cast_exact::<PyFrozenSet>() {
            self.enter(depth)?;
            self.out.push(tag::FSET);
            put_tuple_header(self.out, fs.len());
            for item in fs.iter() {
                self.value(&item, depth + 2)?;
            }
        } else if obj.cast_exact::<PySlice>().is_ok() {
            self.enter(depth)?;
            self.out.push(tag::SLICE);
            put_tuple_header(self.out, 3);
            for part in ["start", "stop", "step"] {
                let v = obj.getattr(part)?;
                self.value(&v, depth + 2)?;
            }
        } else if obj.is(py.Ellipsis()) {
            self.out.push(tag::ELLIPSIS);
        } else if obj.is(py.NotImplemented()) {
            self.out.push(tag::NOT_IMPLEMENTED);
        } else {
            return Err(EncodeError::NotDumpable);
        }
        Ok(())
    }

    fn enter(&self, depth: usize) -> Result<(), EncodeError> {
        if depth >= self.max_depth {
            return Err(EncodeError::Failed(PyValueError::new_err(format!(
                "value nested deeper than max_nesting_depth={} (raise the max_nesting_depth config key to send it)",
                self.max_depth
            ))));
        }
        Ok(())
    }

    fn tuple_items(&mut self, t: &Bound<'_, PyTuple>, depth: usize) -> Result<(), EncodeError> {
        self.enter(depth)?;
        put_tuple_header(self.out, t.len());
        for item in t.iter() {
            self.value(&item, depth + 1)?;
        }
        Ok(())
    }
}

/// `brine.dumpable(obj)` (WIRE.md §2.3): a cheap type walk, no output.
pub fn dumpable(obj: &Bound<'_, PyAny>) -> bool {
    let py = obj.py();
    if obj.is_none()
        || obj.cast_exact::<PyInt>().is_ok()
        || obj.cast_exact::<PyString>().is_ok()
        || obj.cast_exact::<PyBytes>().is_ok()
        || obj.cast_exact::<PyBool>().is_ok()
        || obj.cast_exact::<PyFloat>().is_ok()
        || obj.cast_exact::<PyComplex>().is_ok()
        || obj.is(py.Ellipsis())
        || obj.is(py.NotImplemented())
    {
        return true;
    }
    if let Ok(t) = obj.cast_exact::<PyTuple>() {
        return t.iter().all(|i| dumpable(&i));
    }
    if let Ok(fs) = obj.cast_exact::<PyFrozenSet>() {
        return fs.iter().all(|i| dumpable(&i));
    }
    if obj.cast_exact::<PySlice>().is_ok() {
        return ["start", "stop", "step"]
            .iter()
            .all(|p| obj.getattr(*p).map(|v| dumpable(&v)).unwrap_or(false));
    }
    false
}
