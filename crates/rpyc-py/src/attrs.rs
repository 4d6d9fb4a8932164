//! Attribute questions the attribute policy asks on every GETATTR/CALLATTR, answered
//! without raising (and formatting) an `AttributeError` for the usual answer "no".
//!
//! `getattr(cls, name, None)` and `inspect.getattr_static` both build an exception object
//! when the name is missing — several thousand instructions, the largest cost of serving an
//! attribute request. CPython's own MRO lookup (`_PyType_Lookup`, with its method cache)
//! answers the same question without one.

use pyo3::ffi;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyType};

extern "C" {
    // CPython's MRO lookup (Objects/typeobject.c): a borrowed reference or NULL, never an
    // exception. Exported by every CPython 3.x; private only in the sense of unstable.
    fn _PyType_Lookup(ty: *mut ffi::PyTypeObject, name: *mut ffi::PyObject) -> *mut ffi::PyObject;
}

/// Whether `name` is defined on `ty` or a class in its MRO.
fn in_mro(ty: &Bound<'_, PyType>, name: &Bound<'_, PyString>) -> bool {
    // SAFETY: live type and str; the result is borrowed and only compared with NULL.
    unsafe { !_PyType_Lookup(ty.as_type_ptr(), name.as_ptr()).is_null() }
}

/// `getattr(cls, name, None)`, without creating an exception when `name` is missing.
#[pyfunction]
pub fn class_attr<'py>(
    cls: &Bound<'py, PyType>,
    name: &Bound<'py, PyString>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let meta = cls.get_type();
    let meta_hooks = in_mro(&meta, intern!(cls.py(), "__getattr__"));
    if in_mro(cls, name) || in_mro(&meta, name) || meta_hooks {
        // Present (or computed by the metaclass): the real getattr, with its descriptor rules.
        return match cls.getattr(name) {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_instance_of::<pyo3::exceptions::PyAttributeError>(cls.py()) => Ok(None),
            Err(e) => Err(e),
        };
    }
    Ok(None)
}

/// Whether `inspect.getattr_static(obj, name)` would find `name` (no code of `obj` runs):
/// in the instance's `__dict__`, on its class's MRO, or for a class, on its own MRO and its
/// metaclass's.
#[pyfunction]
pub fn has_static_attr(obj: &Bound<'_, PyAny>, name: &Bound<'_, PyString>) -> PyResult<bool> {
    let py = obj.py();
    if let Ok(cls) = obj.cast::<PyType>() {
        return Ok(in_mro(cls, name) || in_mro(&cls.get_type(), name));
    }
    let ty = obj.get_type();
    if in_mro(&ty, name) {
        return Ok(true);
    }
    // SAFETY: reading a field of a live type object.
    if unsafe { (*ty.as_type_ptr()).tp_dictoffset } == 0 {
        return Ok(false); // instances of this type have no __dict__
    }
    // The instance dict as `object.__getattribute__(obj, "__dict__")` sees it; objects
    // without one (slots, builtins) simply do not have the name there.
    // SAFETY: live object and name; a new reference or NULL with an error set.
    let dict = unsafe {
        Bound::from_owned_ptr_or_err(
            py,
            ffi::PyObject_GenericGetAttr(obj.as_ptr(), intern!(py, "__dict__").as_ptr()),
        )
    };
    match dict {
        Ok(d) => match d.cast::<PyDict>() {
            Ok(d) => d.contains(name),
            Err(_) => Ok(false),
        },
        Err(_) => Ok(false),
    }
}
