//! Writing a value by value (docs/by-value.md), for a peer that negotiated `by_value`:
//! lists, dicts, sets and arrays travel with the by-value tags inside a `LABEL_BY_VALUE`
//! box; whatever by-value cannot carry is written as a reference (or, for `obtain`,
//! refused). Reading is `rpyc_wire`'s one reader with the Python sink in by-value mode.

use super::py_encode::{EncodeError, Encoder};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyFrozenSet, PyList, PyModule, PySet, PyTuple, PyType};
use rpyc_wire::brine::write;
use rpyc_wire::consts::tag;

/// Writes the objects a by-value value holds by reference.
pub trait RefWriter {
    /// Append a reference to `obj` (the `LOCAL_REF`/`REMOTE_REF` tag and its id_pack).
    fn put_ref(&self, out: &mut Vec<u8>, obj: &Bound<'_, PyAny>) -> PyResult<()>;
}

/// `rpyc.core.byvalue`, imported once.
fn module(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
    static MODULE: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
    Ok(MODULE
        .get_or_try_init(py, || py.import("rpyc.core.byvalue").map(Bound::unbind))?
        .bind(py))
}

/// `rpyc.core.byvalue.ByValue`, the class of `rpyc.by_value(obj)`'s marker.
fn marker_type(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    static MARKER: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    Ok(MARKER
        .get_or_try_init(py, || {
            Ok::<_, PyErr>(
                module(py)?
                    .getattr("ByValue")?
                    .cast_into::<PyType>()?
                    .unbind(),
            )
        })?
        .bind(py))
}

/// `(value, strict)` when `obj` is a `rpyc.by_value` marker.
pub fn unwrap_marker<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Option<(Bound<'py, PyAny>, bool)>> {
    if !obj.get_type().is(marker_type(obj.py())?) {
        return Ok(None);
    }
    let value = obj.getattr(pyo3::intern!(obj.py(), "value"))?;
    let strict = obj
        .getattr(pyo3::intern!(obj.py(), "strict"))?
        .is_truthy()?;
    Ok(Some((value, strict)))
}

/// `rpyc.core.byvalue.ByValueError(message)`.
pub fn by_value_error(py: Python<'_>, message: String) -> PyErr {
    match module(py).and_then(|m| m.getattr("ByValueError")?.call1((message.clone(),))) {
        Ok(exc) => PyErr::from_value(exc),
        Err(_) => PyValueError::new_err(message),
    }
}

/// The by-value walk over one value.
pub struct ByValueWriter<'e, 'a> {
    pub enc: Encoder<'a>,
    pub refs: &'e dyn RefWriter,
    /// `obtain`: refuse anything that would travel by reference.
    pub strict: bool,
    /// The largest array data accepted (the frame limit): refused before it is copied.
    pub max_bytes: usize,
    /// An array was written (its frame goes uncompressed).
    pub wrote_array: bool,
}

impl ByValueWriter<'_, '_> {
    /// Write `obj` at `level` (the containers open around it).
    pub fn value(&mut self, obj: &Bound<'_, PyAny>, level: usize) -> PyResult<()> {
        let py = obj.py();
        // The usual leaves first (a record is mostly str, int and float).
        // SAFETY: live object; the checks only read its type.
        let leaf = unsafe {
            let p = obj.as_ptr();
            pyo3::ffi::PyUnicode_CheckExact(p) != 0
                || pyo3::ffi::PyLong_CheckExact(p) != 0
                || pyo3::ffi::PyFloat_CheckExact(p) != 0
                || obj.is_none()
        };
        if leaf {
            return self.plain(obj, level);
        }
        if let Ok(list) = obj.cast_exact::<PyList>() {
            self.open(level, tag::LIST, list.len())?;
            // (A list changed by another thread while it is written: the snapshot keeps
            // the announced count right.)
            let items = list.to_tuple();
            if items.len() != list.len() {
                return Err(PyValueError::new_err(
                    "list changed size while sent by value",
                ));
            }
            for item in items.iter() {
                self.value(&item, level + 1)?;
            }
            return Ok(());
        }
        if let Ok(t) = obj.cast_exact::<PyTuple>() {
            write::container_level(level, self.enc.max_depth).map_err(to_py)?;
            write::tuple_header(self.enc.out, t.len());
            for item in t.iter() {
                self.value(&item, level + 1)?;
            }
            return Ok(());
        }
        if let Ok(d) = obj.cast_exact::<PyDict>() {
            // (A snapshot: writing may run Python code, e.g. for an array, and the count
            // written in the header must stay right.)
            let pairs: Vec<(Bound<'_, PyAny>, Bound<'_, PyAny>)> = d.iter().collect();
            // Keys travel as plain brine values: a proxy as a key would have to be hashed
            // by the receiver (a request in the middle of reading a message).
            if pairs.iter().all(|(k, _)| super::py_encode::dumpable(k)) {
                self.open(level, tag::DICT, 2 * pairs.len())?;
                for (k, v) in &pairs {
                    self.plain(k, level + 1)?;
                    self.value(v, level + 1)?;
                }
                return Ok(());
            }
            return self.reference(obj, "a dict with keys that are not plain values");
        }
        if let Ok(set) = obj.cast_exact::<PySet>() {
            let members: Vec<Bound<'_, PyAny>> = set.iter().collect();
            if members.iter().all(super::py_encode::dumpable) {
                self.open(level, tag::SET, members.len())?;
                for m in &members {
                    self.plain(m, level + 1)?;
                }
                return Ok(());
            }
            return self.reference(obj, "a set with members that are not plain values");
        }
        if obj.cast_exact::<PyFrozenSet>().is_ok() && !super::py_encode::dumpable(obj) {
            return self.reference(obj, "a frozenset with members that are not plain values");
        }
        if let Some((inner, _)) = unwrap_marker(obj)? {
            return self.value(&inner, level);
        }
        match self.enc.value(obj, level) {
            Ok(()) => return Ok(()),
            Err(EncodeError::Failed(e)) => return Err(e),
            Err(EncodeError::NotDumpable) => {}
        }
        // SAFETY: a live object; the call only reads its type's slots.
        if unsafe { pyo3::ffi::PyObject_CheckBuffer(obj.as_ptr()) } != 0 {
            return self.array(obj, level);
        }
        let _ = py;
        self.reference(obj, "an object of this type")
    }

    /// A plain brine value (a dict key, a set member), checked dumpable by the caller.
    fn plain(&mut self, obj: &Bound<'_, PyAny>, level: usize) -> PyResult<()> {
        self.enc.value(obj, level).map_err(|e| e.into_pyerr(obj))
    }

    fn open(&mut self, level: usize, t: u8, len: usize) -> PyResult<()> {
        write::container_level(level, self.enc.max_depth).map_err(to_py)?;
        self.enc.out.push(t);
        write::tuple_header(self.enc.out, len);
        Ok(())
    }

    /// An array or buffer: `ARRAY (dtype, shape, strides, data)`, its parts given by
    /// `rpyc.core.byvalue._array_parts` (which refuses object dtypes and data over
    /// `max_bytes` before copying anything).
    fn array(&mut self, obj: &Bound<'_, PyAny>, level: usize) -> PyResult<()> {
        let py = obj.py();
        let parts = module(py)?
            .getattr("_array_parts")?
            .call1((obj, self.max_bytes))?;
        if parts.is_none() {
            // (A numpy scalar or the like: its plain value.)
            return self.reference(obj, "a buffer of this kind");
        }
        let parts = parts.cast_into::<PyTuple>()?;
        if let Ok(plain) = parts.get_item(0)?.cast_into::<PyBytes>() {
            // `(b"plain", value)`: a numpy scalar's Python value.
            if plain.as_bytes() == b"plain" {
                return self.value(&parts.get_item(1)?, level);
            }
        }
        write::container_level(level, self.enc.max_depth).map_err(to_py)?;
        self.enc.out.push(tag::ARRAY);
        write::tuple_header(self.enc.out, 4);
        let [dtype, shape, strides, data]: [Bound<'_, PyAny>; 4] = [
            parts.get_item(0)?,
            parts.get_item(1)?,
            parts.get_item(2)?,
            parts.get_item(3)?,
        ];
        self.plain(&dtype, level + 1)?;
        self.plain(&shape, level + 1)?;
        self.plain(&strides, level + 1)?;
        let data = data.cast_into::<PyBytes>()?;
        self.enc.bytes(&data);
        self.wrote_array = true;
        Ok(())
    }

    /// `obj` travels as a reference, or (strict) is refused, `what` saying why.
    fn reference(&mut self, obj: &Bound<'_, PyAny>, what: &str) -> PyResult<()> {
        if self.strict {
            let name = obj
                .get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_else(|_| "?".into());
            return Err(by_value_error(
                obj.py(),
                format!(
                    "{name} cannot travel by value ({what}): by value carries tuples, lists, \
                     dicts, sets, frozensets, str, bytes, numbers and plain-dtype arrays"
                ),
            ));
        }
        self.refs.put_ref(self.enc.out, obj)
    }
}

fn to_py(e: rpyc_wire::WireError) -> PyErr {
    PyValueError::new_err(e.to_string())
}
