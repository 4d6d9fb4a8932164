//! Brine encoding of Python objects: a walk over the objects that writes through
//! `rpyc_wire`'s one writer (`brine::write`). Dispatch is on the *exact* type, as upstream
//! does: subclasses of int/str/tuple are not encodable by value.

use crate::io::outgoing::{Outgoing, Splice, SPLICE_MIN};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyBytes, PyComplex, PyFloat, PyFrozenSet, PyInt, PySlice, PyString, PyTuple,
};
use rpyc_wire::brine::write;
use rpyc_wire::WireError;

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

impl From<WireError> for EncodeError {
    fn from(e: WireError) -> Self {
        EncodeError::Failed(PyValueError::new_err(e.to_string()))
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

/// Encode an arbitrary Python int (fast path for i64, decimal text otherwise).
fn put_pyint(out: &mut Vec<u8>, obj: &Bound<'_, PyAny>) -> Result<(), EncodeError> {
    let mut overflow: std::os::raw::c_int = 0;
    // SAFETY: `obj` is an int; this call reports overflow through the flag instead of
    // raising, so no exception object is created on the bignum path.
    let v = unsafe { pyo3::ffi::PyLong_AsLongLongAndOverflow(obj.as_ptr(), &mut overflow) };
    if overflow == 0 {
        if v == -1 {
            if let Some(err) = PyErr::take(obj.py()) {
                return Err(err.into());
            }
        }
        write::int(out, v);
        return Ok(());
    }
    // Most overflowing ints still fit 128 bits: formatted here, not by CPython's general
    // int-to-text conversion (which costs ten times more). Beyond that, decimal text it is.
    if let Ok(wide) = obj.extract::<i128>() {
        write::int_wide(out, wide);
        return Ok(());
    }
    let text = obj.str()?;
    write::int_text(out, text.to_str()?.as_bytes())?;
    Ok(())
}

/// Writes Python values as brine; `max_depth` bounds container nesting.
pub struct Encoder<'a> {
    pub(super) out: &'a mut Vec<u8>,
    pub(super) max_depth: usize,
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

    /// Encode `obj` by value at `level` (the containers open around it), or report
    /// `NotDumpable` (leaving partial output for the caller to truncate).
    pub fn value(&mut self, obj: &Bound<'_, PyAny>, level: usize) -> Result<(), EncodeError> {
        let py = obj.py();
        if obj.is_none() {
            write::none(self.out);
        } else if obj.cast_exact::<PyInt>().is_ok() {
            put_pyint(self.out, obj)?;
        } else if let Ok(s) = obj.cast_exact::<PyString>() {
            write::str(self.out, s.to_str()?);
        } else if let Ok(b) = obj.cast_exact::<PyBytes>() {
            self.bytes(b);
        } else if let Ok(t) = obj.cast_exact::<PyTuple>() {
            write::container_level(level, self.max_depth)?;
            write::tuple_header(self.out, t.len());
            for item in t.iter() {
                self.value(&item, level + 1)?;
            }
        } else if let Ok(b) = obj.cast_exact::<PyBool>() {
            write::boolean(self.out, b.is_true());
        } else if let Ok(f) = obj.cast_exact::<PyFloat>() {
            write::float(self.out, f.value());
        } else if let Ok(c) = obj.cast_exact::<PyComplex>() {
            write::complex(self.out, c.real(), c.imag());
        } else if let Ok(fs) = obj.cast_exact::<PyFrozenSet>() {
            write::container_level(level, self.max_depth)?;
            write::frozenset_header(self.out, fs.len());
            for item in fs.iter() {
                self.value(&item, level + 1)?;
            }
        } else if obj.cast_exact::<PySlice>().is_ok() {
            write::container_level(level, self.max_depth)?;
            write::slice_header(self.out);
            for part in ["start", "stop", "step"] {
                self.value(&obj.getattr(part)?, level + 1)?;
            }
        } else if obj.is(py.Ellipsis()) {
            write::ellipsis(self.out);
        } else if obj.is(py.NotImplemented()) {
            write::not_implemented(self.out);
        } else {
            return Err(EncodeError::NotDumpable);
        }
        Ok(())
    }

    pub(super) fn bytes(&mut self, b: &Bound<'_, PyBytes>) {
        let data = b.as_bytes();
        match self.splices.as_deref_mut() {
            Some(splices) if data.len() >= SPLICE_MIN => {
                write::bytes_header(self.out, data.len());
                splices.push(Splice::new(self.out.len(), b));
            }
            _ => {
                if data.len() >= crate::io::bigbuf::LARGE {
                    crate::io::bigbuf::reserve(self.out, data.len() + 5);
                }
                write::bytes(self.out, data);
            }
        }
    }
}

/// `brine.dumpable(obj)` (docs/protocol.md#what-is-dumpable): a cheap type walk, no
/// output.
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
