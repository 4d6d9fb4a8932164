//! Boxing for Python objects (docs/protocol.md#boxing): objects inside requests and
//! replies travel as `(label, value)`: by value when brine can encode them, as a tuple of
//! boxes, or by reference through the local object table (ours) or the peer's (its proxies
//! handed back). Unboxing is `rpyc_wire`'s one unboxer with a Python [`BoxSink`].

use super::by_value::{unwrap_marker, ByValueWriter, RefWriter};
use super::id_pack::id_pack_of;
use super::py_encode::{EncodeError, Encoder};
use super::py_sink::{PySink, ResolveRef};
use crate::errors::ProtocolError;
use crate::io::outgoing::Outgoing;
use crate::objects::Objects;
use pyo3::exceptions::{PyKeyError, PyRuntimeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyString, PyTuple, PyType};
use rpyc_wire::brine::{write, Cursor};
use rpyc_wire::conn::ObjKey;
use rpyc_wire::consts::{
    tag, LABEL_BY_VALUE, LABEL_LOCAL_REF, LABEL_REMOTE_REF, LABEL_TUPLE, LABEL_VALUE,
};
use rpyc_wire::message::{self, write_box_head, write_id_pack, BadBox, BoxSink, IdNum, IdPackRef};
use std::cell::RefCell;

/// What boxing and unboxing need to know about the connection.
pub struct BoxCtx<'a, 'py> {
    /// The Python `Connection` object (our subclass of the engine).
    pub conn: &'a Bound<'py, PyAny>,
    pub table: &'a Objects,
    /// `rpyc.core.netref.BaseNetref`.
    pub netref_base: &'a Bound<'py, PyType>,
    pub max_depth: usize,
    /// Table entries added while boxing this message, undone by `undo` if it is not sent
    /// (the peer never learns of them, so it would never release them).
    pub added: RefCell<Vec<ObjKey>>,
    /// The peer negotiated `by_value`: the types that always travel by value (config
    /// `by_value_types`). `None`: no by-value data either way.
    pub by_value: Option<&'a Bound<'py, PyTuple>>,
    /// The largest frame either side accepts (by-value arrays beyond it are refused first).
    pub max_frame: usize,
}

/// How an object travels by reference.
enum Ref<'py> {
    /// A proxy of this connection: the peer's own object, named by its id_pack.
    Local(Bound<'py, PyAny>),
    /// Ours, entered in the table.
    Remote,
}

impl<'py> BoxCtx<'_, 'py> {
    /// Append the box of `obj` at `level` (the containers open around it).
    pub fn put_boxed(
        &self,
        out: &mut Outgoing,
        obj: &Bound<'_, PyAny>,
        level: usize,
    ) -> PyResult<()> {
        write::container_level(level, self.max_depth)
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        if let Some(types) = self.by_value {
            if let Some((inner, strict)) = unwrap_marker(obj)? {
                return self.put_by_value(out, &inner, strict, level);
            }
            if !types.is_empty() && types.contains(obj.get_type())? {
                return self.put_by_value(out, obj, false, level);
            }
        } else if let Some((inner, _)) = unwrap_marker(obj)? {
            // A peer without by-value data (upstream): the value as it would travel
            // unmarked (brine if it can, else a reference), never a new frame.
            return self.put_boxed(out, &inner, level);
        }
        let start = out.buf.len();
        write_box_head(&mut out.buf, LABEL_VALUE);
        match Encoder::splicing(out, self.max_depth).value(obj, level + 1) {
            Ok(()) => return Ok(()),
            Err(EncodeError::Failed(e)) => return Err(e),
            Err(EncodeError::NotDumpable) => out.truncate(start),
        }
        if let Ok(t) = obj.cast_exact::<PyTuple>() {
            write::container_level(level + 1, self.max_depth)
                .map_err(|e| PyValueError::new_err(e.to_string()))?;
            write_box_head(&mut out.buf, LABEL_TUPLE);
            write::tuple_header(&mut out.buf, t.len());
            for item in t.iter() {
                self.put_boxed(out, &item, level + 2)?;
            }
            return Ok(());
        }
        // A reference: its id_pack is one level further in.
        write::container_level(level + 1, self.max_depth)
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        let r = self.classify(obj)?;
        let label = match r {
            Ref::Local(_) => LABEL_LOCAL_REF,
            Ref::Remote => LABEL_REMOTE_REF,
        };
        write_box_head(&mut out.buf, label);
        self.write_ref(&mut out.buf, obj, r, level + 1)
    }

    /// A `LABEL_BY_VALUE` box (docs/by-value.md); `strict`: refuse what would travel by
    /// reference (`obtain`).
    fn put_by_value(
        &self,
        out: &mut Outgoing,
        obj: &Bound<'_, PyAny>,
        strict: bool,
        level: usize,
    ) -> PyResult<()> {
        write_box_head(&mut out.buf, LABEL_BY_VALUE);
        let mut writer = ByValueWriter {
            enc: Encoder::splicing(out, self.max_depth),
            refs: self,
            strict,
            max_bytes: self.max_frame,
            wrote_array: false,
        };
        writer.value(obj, level + 1)?;
        if writer.wrote_array {
            out.raw_data = true;
        }
        Ok(())
    }

    fn classify<'py2>(&self, obj: &Bound<'py2, PyAny>) -> PyResult<Ref<'py2>> {
        if is_netref(obj, self.netref_base) {
            let owner = slot(obj, intern!(obj.py(), "____conn__"))?;
            if owner.is(self.conn) {
                return Ok(Ref::Local(slot(obj, intern!(obj.py(), "____id_pack__"))?));
            }
            // A proxy of another connection is re-exported as our own object (chaining).
        }
        Ok(Ref::Remote)
    }

    /// The id_pack of a reference at `level`: the peer's for its own object, ours (entered
    /// in the table) for any other.
    fn write_ref(
        &self,
        buf: &mut Vec<u8>,
        obj: &Bound<'_, PyAny>,
        r: Ref<'_>,
        level: usize,
    ) -> PyResult<()> {
        if let Ref::Local(id_pack) = r {
            return Encoder::new(buf, self.max_depth)
                .value(&id_pack, level)
                .map_err(|e| e.into_pyerr(&id_pack));
        }
        let (name, key) = id_pack_of(obj)?;
        self.table
            .add(key, || obj.clone().unbind())
            .map_err(|full| PyRuntimeError::new_err(full.to_string()))?;
        self.added.borrow_mut().push(key);
        write_id_pack(buf, name.to_str()?, key.0, key.1);
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

    /// Read one box at `level`.
    pub fn unbox(&self, cur: &mut Cursor<'_>, level: usize) -> PyResult<Py<PyAny>> {
        let mut sink = PyUnboxer {
            ctx: self,
            values: PySink::with_refs(self.conn.py(), self),
        };
        message::unbox(cur, level, self.max_depth, &mut sink)
    }
}

/// Unboxes into Python objects: proxies for the peer's objects, our own objects looked up in
/// the table.
struct PyUnboxer<'a, 'b, 'py> {
    ctx: &'a BoxCtx<'b, 'py>,
    values: PySink<'a, 'py>,
}

impl RefWriter for BoxCtx<'_, '_> {
    fn put_ref(&self, out: &mut Vec<u8>, obj: &Bound<'_, PyAny>) -> PyResult<()> {
        let r = self.classify(obj)?;
        out.push(match r {
            Ref::Local(_) => tag::LOCAL_REF,
            Ref::Remote => tag::REMOTE_REF,
        });
        // (The id_pack's own nesting was checked with the container holding the ref.)
        self.write_ref(out, obj, r, 0)
    }
}

impl<'py> ResolveRef<'py> for BoxCtx<'_, 'py> {
    fn resolve(&self, local: bool, id_pack: Bound<'py, PyTuple>) -> PyResult<Py<PyAny>> {
        let py = id_pack.py();
        if local {
            let key = (
                id_pack.get_item(1)?.extract::<u64>().ok(),
                id_pack.get_item(2)?.extract::<u64>().ok(),
            );
            if let (Some(c), Some(i)) = key {
                if let Some(obj) = self.table.get(py, (c, i)) {
                    return Ok(obj);
                }
            }
            return Err(PyKeyError::new_err((id_pack.unbind(),)));
        }
        Ok(self
            .conn
            .call_method1(intern!(py, "_netref_factory"), (id_pack,))?
            .unbind())
    }
}

impl<'py> PyUnboxer<'_, '_, 'py> {
    /// The id_pack as the Python tuple upstream would see.
    fn id_pack_tuple(&self, id: &IdPackRef<'_>) -> PyResult<Bound<'py, PyTuple>> {
        let py = self.values.py();
        let num = |n: &IdNum<'_>| -> PyResult<Py<PyAny>> {
            match *n {
                IdNum::Small(v) => Ok(v.into_pyobject(py)?.into_any().unbind()),
                IdNum::Big(text) => {
                    Ok(py.get_type::<pyo3::types::PyInt>().call1((text,))?.unbind())
                }
            }
        };
        PyTuple::new(
            py,
            [
                super::py_sink::text_to_py(py, id.name)?,
                num(&id.class_id)?,
                num(&id.instance_id)?,
            ],
        )
    }
}

impl<'a, 'py> BoxSink for PyUnboxer<'a, '_, 'py> {
    type Object = Py<PyAny>;
    type Values = PySink<'a, 'py>;

    fn values(&mut self) -> &mut PySink<'a, 'py> {
        &mut self.values
    }

    fn by_value(&mut self, on: bool) -> bool {
        if self.ctx.by_value.is_none() {
            return false;
        }
        self.values.set_by_value(on);
        true
    }

    fn by_value_done(&mut self, v: Py<PyAny>) -> PyResult<Py<PyAny>> {
        match self.values.take_deferred() {
            Some(e) => Err(e),
            None => Ok(v),
        }
    }

    fn plain(&mut self, v: Py<PyAny>) -> Py<PyAny> {
        v
    }

    fn tuple(&mut self, items: Vec<Py<PyAny>>) -> PyResult<Py<PyAny>> {
        Ok(PyTuple::new(self.values.py(), items)?.into_any().unbind())
    }

    fn local_ref(&mut self, id: &IdPackRef<'_>) -> PyResult<Py<PyAny>> {
        let py = self.values.py();
        if let Some(obj) = id.key().and_then(|k| self.ctx.table.get(py, k)) {
            return Ok(obj);
        }
        Err(PyKeyError::new_err((self.id_pack_tuple(id)?.unbind(),)))
    }

    fn remote_ref(&mut self, id: &IdPackRef<'_>) -> PyResult<Py<PyAny>> {
        let py = self.values.py();
        let id_pack = self.id_pack_tuple(id)?;
        Ok(self
            .ctx
            .conn
            .call_method1(intern!(py, "_netref_factory"), (id_pack,))?
            .unbind())
    }

    fn bad_box(&mut self, bad: BadBox<Py<PyAny>>) -> PyErr {
        let py = self.values.py();
        let repr = |v: &Py<PyAny>| {
            v.bind(py)
                .repr()
                .map(|r| r.to_string())
                .unwrap_or_else(|_| "?".to_owned())
        };
        PyValueError::new_err(match bad {
            BadBox::NotAPair(v) => {
                format!("invalid box {}: expected a (label, value) pair", repr(&v))
            }
            BadBox::Label(v) => format!("invalid label {}", repr(&v)),
            BadBox::NotATuple(v) => format!("invalid boxed tuple {}: expected a tuple", repr(&v)),
            BadBox::IdPack(v) => format!("invalid id_pack {}: expected (str, int, int)", repr(&v)),
        })
    }

    fn is_fatal(&self, e: &PyErr) -> bool {
        e.is_instance_of::<ProtocolError>(self.values.py())
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
