//! id_packs of local objects (docs/protocol.md#id_pack): `(name, class_id, instance_id)`,
//! where the ids are the addresses of the object's type and of the object (CPython `id()`s,
//! unique while the object table keeps the object alive).

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyModule, PyString, PyType};
use rpyc_wire::conn::ObjKey;
use rustc_hash::FxHashMap as HashMap;
use std::sync::Mutex;

fn addr(obj: &Bound<'_, PyAny>) -> u64 {
    obj.as_ptr() as usize as u64
}

fn dotted(py: Python<'_>, cls: &Bound<'_, PyAny>) -> PyResult<String> {
    let module = cls.getattr(intern!(py, "__module__"))?;
    let name = cls.getattr(intern!(py, "__name__"))?;
    Ok(format!(
        "{}.{}",
        module.str()?.to_str()?,
        name.str()?.to_str()?
    ))
}

/// Most objects sent by reference are instances of a few classes: their `module.name`
/// (two attribute lookups and a format) is computed once per class. The entry holds the
/// class, so its address cannot be reused by another class while cached; a class renamed
/// after it was first sent keeps its first name. Bounded: cleared when full.
const CLASS_NAME_CACHE_SIZE: usize = 4096;

struct CachedName {
    _class: Py<PyAny>,
    name: Py<PyString>,
}

static CLASS_NAMES: Mutex<Option<HashMap<usize, CachedName>>> = Mutex::new(None);

fn class_name<'py>(py: Python<'py>, cls: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyString>> {
    // The lock is never held while Python code runs (attribute lookups, deallocations):
    // that code may switch threads or come back here.
    let key = cls.as_ptr() as usize;
    let lock = || CLASS_NAMES.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(hit) = lock().as_ref().and_then(|c| c.get(&key)) {
        return Ok(hit.name.bind(py).clone());
    }
    let name = PyString::new(py, &dotted(py, cls)?);
    let entry = CachedName {
        _class: cls.clone().unbind(),
        name: name.clone().unbind(),
    };
    let (evicted, replaced) = {
        let mut guard = lock();
        let cache = guard.get_or_insert_with(HashMap::default);
        let evicted = if cache.len() >= CLASS_NAME_CACHE_SIZE {
            std::mem::take(cache)
        } else {
            HashMap::default()
        };
        let replaced = cache.insert(key, entry);
        (evicted, replaced)
    };
    drop((evicted, replaced)); // outside the lock: dropping may run Python deallocators
    Ok(name)
}

/// `rpyc.lib.get_id_pack` for a local (non-proxy) object.
pub fn id_pack_of<'py>(obj: &Bound<'py, PyAny>) -> PyResult<(Bound<'py, PyString>, ObjKey)> {
    let py = obj.py();
    let otype = obj.get_type();
    if let Ok(m) = obj.cast::<PyModule>() {
        let name = m.getattr(intern!(py, "__name__"))?;
        let in_sys = py
            .import(intern!(py, "sys"))?
            .getattr(intern!(py, "modules"))?
            .contains(&name)?;
        let name_pack = if in_sys {
            name.str()?
        } else {
            PyString::new(
                py,
                &format!(
                    "{}.{}",
                    otype.getattr(intern!(py, "__module__"))?.str()?,
                    name.str()?
                ),
            )
        };
        return Ok((name_pack, (addr(otype.as_any()), addr(obj))));
    }
    if obj.is_instance_of::<PyType>() {
        return Ok((class_name(py, obj)?, (addr(obj), 0)));
    }
    // `__class__` names the class (proxies and mocks may report another); an object whose
    // `__class__` raises is still sendable under its real type.
    let cls = obj
        .getattr(intern!(py, "__class__"))
        .unwrap_or_else(|_| otype.clone().into_any());
    Ok((class_name(py, &cls)?, (addr(otype.as_any()), addr(obj))))
}
