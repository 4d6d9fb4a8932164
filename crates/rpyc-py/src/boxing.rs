//! Boxing (WIRE.md §5): objects inside requests and replies travel as `(label, value)`:
//! by value when brine can encode them, as a tuple of boxes, or by reference through the
//! local object table (ours) or the peer's (its proxies handed back).

use crate::brine::decode::Reader;
use crate::brine::encode::{put_i64, put_str, put_tuple_header, EncodeError, Encoder};
use crate::errors::wire_err;
use crate::objects::{ObjKey, ObjectTable};
use crate::outgoing::Outgoing;
use pyo3::exceptions::{PyKeyError, PyRuntimeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyInt, PyModule, PyString, PyTuple, PyType};
use rpyc_wire::consts::{tag, LABEL_LOCAL_REF, LABEL_REMOTE_REF, LABEL_TUPLE, LABEL_VALUE};
use rpyc_wire::WireError;
use rustc_hash::FxHashMap as HashMap;
use std::cell::RefCell;
use std::sync::Mutex;

/// What boxing and unboxing need to know about the connection.
pub struct BoxCtx<'a, 'py> {
    /// The Python `Connection` object (our subclass of the engine).
    pub conn: &'a Bound<'py, PyAny>,
    pub table: &'a ObjectTable,
    /// `rpyc.core.netref.BaseNetref`.
    pub netref_base: &'a Bound<'py, PyType>,
    pub max_depth: usize,
    /// `max_local_objects`.
    pub max_objects: usize,
    /// Table entries added while boxing this message, undone by `undo` if it is not sent
    /// (the peer never learns of them, so it would never release them).
    pub added: RefCell<Vec<ObjKey>>,
}

impl BoxCtx<'_, '_> {
    /// Append the box of `obj`.
    pub fn put_boxed(
        &self,
        out: &mut Outgoing,
        obj: &Bound<'_, PyAny>,
        depth: usize,
    ) -> PyResult<()> {
        let start = out.buf.len();
        out.buf.push(tag::TUP2);
        put_i64(&mut out.buf, LABEL_VALUE);
        match Encoder::splicing(out, self.max_depth).value(obj, depth + 1) {
            Ok(()) => return Ok(()),
            Err(EncodeError::Failed(e)) => return Err(e),
            Err(EncodeError::NotDumpable) => out.truncate(start),
        }
        if depth >= self.max_depth {
            return Err(PyValueError::new_err(format!(
                "value nested deeper than max_nesting_depth={} (raise the max_nesting_depth config key to send it)",
                self.max_depth
            )));
        }
        let buf = &mut out.buf;
        buf.push(tag::TUP2);
        if let Ok(t) = obj.cast_exact::<PyTuple>() {
            put_i64(buf, LABEL_TUPLE);
            put_tuple_header(buf, t.len());
            for item in t.iter() {
                self.put_boxed(out, &item, depth + 2)?;
            }
            return Ok(());
        }
        if is_netref(obj, self.netref_base) {
            let owner = slot(obj, intern!(obj.py(), "____conn__"))?;
            let id_pack = slot(obj, intern!(obj.py(), "____id_pack__"))?;
            if owner.is(self.conn) {
                put_i64(buf, LABEL_LOCAL_REF);
                return Encoder::new(buf, self.max_depth)
                    .value(&id_pack, depth + 1)
                    .map_err(|e| e.into_pyerr(&id_pack));
            }
            // A proxy of another connection is re-exported as our own object (chaining).
        }
        put_i64(buf, LABEL_REMOTE_REF);
        let (name, key) = id_pack_of(obj)?;
        self.table
            .add(key, self.max_objects, || obj.clone().unbind())
            .map_err(|full| PyRuntimeError::new_err(full.message()))?;
        self.added.borrow_mut().push(key);
        put_id_pack(buf, name.to_str()?, key);
        Ok(())
    }

    /// Take back the table entries added for a message that is not sent after all.
    pub fn undo(&self) {
        let keys = std::mem::take(&mut *self.added.borrow_mut());
        // Objects whose entry goes away die here, after the table's lock was released.
        let released: Vec<Py<PyAny>> = keys
            .into_iter()
            .filter_map(|key| self.table.decref(key, 1))
            .collect();
        drop(released);
    }

    /// Read one box.
    pub fn unbox(&self, r: &mut Reader<'_>, depth: usize) -> PyResult<Py<PyAny>> {
        let py = self.conn.py();
        r.check_depth(depth + 1).map_err(wire_err)?;
        let start = r.pos();
        if r.byte("box").map_err(wire_err)? != tag::TUP2 {
            // Well-formed brine of the wrong shape is the sender's semantic error: consume the
            // item (so the message stays parseable) and report it as upstream does.
            r.rewind(start);
            let item = r.value(py, depth + 1)?;
            return Err(PyValueError::new_err(format!(
                "invalid box {}: expected a (label, value) pair",
                item.bind(py).repr()?
            )));
        }
        let label_start = r.pos();
        let label = match r.expect_small_int("label") {
            Ok(l) => l,
            Err(_) => {
                r.rewind(label_start);
                let label = r.value(py, depth + 1)?;
                r.value(py, depth + 1)?;
                return Err(PyValueError::new_err(format!(
                    "invalid label {}",
                    label.bind(py).repr()?
                )));
            }
        };
        match label {
            LABEL_VALUE => r.value(py, depth + 1),
            LABEL_TUPLE => {
                let n = r.expect_tuple("boxed tuple").map_err(wire_err)?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.unbox(r, depth + 2)?);
                }
                Ok(PyTuple::new(py, items)?.into_any().unbind())
            }
            LABEL_LOCAL_REF => {
                let before = r.pos();
                if let Some(obj) = r.id_pack_key().and_then(|k| self.table.get(py, k)) {
                    return Ok(obj);
                }
                // Unknown object or unusual id_pack: decode it in full to report it.
                r.rewind(before);
                let id_pack = read_id_pack(r, py, depth + 1)?;
                let key = id_pack_key(&id_pack);
                key.and_then(|k| self.table.get(py, k))
                    .ok_or_else(|| PyKeyError::new_err((id_pack.unbind(),)))
            }
            LABEL_REMOTE_REF => {
                let id_pack = read_id_pack(r, py, depth + 1)?;
                Ok(self
                    .conn
                    .call_method1(intern!(py, "_netref_factory"), (id_pack,))?
                    .unbind())
            }
            other => {
                r.value(py, depth + 1)?;
                Err(PyValueError::new_err(format!("invalid label {other}")))
            }
        }
    }
}

/// Whether `obj` is a proxy: its type derives from `BaseNetref` (a plain subtype check; a
/// proxy's `__class__` is the remote class's and must not be asked).
fn is_netref(obj: &Bound<'_, PyAny>, netref_base: &Bound<'_, PyType>) -> bool {
    // SAFETY: both pointers are live type objects.
    unsafe {
        pyo3::ffi::PyType_IsSubtype(
            pyo3::ffi::Py_TYPE(obj.as_ptr()),
            netref_base.as_ptr().cast::<pyo3::ffi::PyTypeObject>(),
        ) != 0
    }
}

/// Read a proxy's own slot, bypassing its `__getattribute__` (Python code that forwards
/// everything else to the peer).
fn slot<'py>(obj: &Bound<'py, PyAny>, name: &Bound<'py, PyString>) -> PyResult<Bound<'py, PyAny>> {
    // SAFETY: live object and name; the call returns a new reference or NULL with an error set.
    unsafe {
        Bound::from_owned_ptr_or_err(
            obj.py(),
            pyo3::ffi::PyObject_GenericGetAttr(obj.as_ptr(), name.as_ptr()),
        )
    }
}

/// Append an id_pack `(name, class_id, instance_id)`.
pub fn put_id_pack(out: &mut Vec<u8>, name: &str, key: ObjKey) {
    out.push(tag::TUP3);
    put_str(out, name);
    put_u64(out, key.0);
    put_u64(out, key.1);
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    match i64::try_from(v) {
        Ok(v) => put_i64(out, v),
        Err(_) => {
            let mut buf = itoa::Buffer::new();
            crate::brine::encode::put_int_text(out, buf.format(v).as_bytes());
        }
    }
}

/// Read an id_pack: a 3-tuple `(str, int, int)`, normalized as upstream does.
fn read_id_pack<'py>(
    r: &mut Reader<'_>,
    py: Python<'py>,
    depth: usize,
) -> PyResult<Bound<'py, PyTuple>> {
    let start = r.pos();
    let v = r.value(py, depth)?.into_bound(py);
    let bad = || {
        wire_err(WireError::BadMessage(format!(
            "id_pack at byte {start} is not a (str, int, int) tuple"
        )))
    };
    let t = v.cast_into::<PyTuple>().map_err(|_| bad())?;
    if t.len() != 3
        || !t.get_item(0)?.is_instance_of::<PyString>()
        || !t.get_item(1)?.is_instance_of::<PyInt>()
        || !t.get_item(2)?.is_instance_of::<PyInt>()
    {
        return Err(bad());
    }
    Ok(t)
}

fn id_pack_key(t: &Bound<'_, PyTuple>) -> Option<ObjKey> {
    let cid = t.get_item(1).ok()?.extract::<u64>().ok()?;
    let iid = t.get_item(2).ok()?.extract::<u64>().ok()?;
    Some((cid, iid))
}

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

/// `rpyc.lib.get_id_pack` for a local (non-proxy) object (WIRE.md §5.1).
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
