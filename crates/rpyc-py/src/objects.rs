//! The local object table (WIRE.md §5.2): objects the peer holds proxies to, with the
//! number of times each was sent. The peer's `HANDLE_DEL(obj, k)` subtracts `k`.

use pyo3::prelude::*;
use std::collections::HashMap;
use std::sync::Mutex;

/// Key of a local object: `(class_id, instance_id)` of its id_pack (CPython `id()`s, unique
/// while the table keeps the object alive).
pub type ObjKey = (u64, u64);

struct Entry {
    obj: Py<PyAny>,
    refs: u64,
}

#[derive(Default)]
pub struct ObjectTable {
    map: Mutex<HashMap<ObjKey, Entry>>,
}

impl ObjectTable {
    /// Record one more send of `obj` under `key`. Never runs Python code under the lock.
    pub fn add(&self, key: ObjKey, obj: &Bound<'_, PyAny>) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(key)
            .and_modify(|e| e.refs += 1)
            .or_insert_with(|| Entry {
                obj: obj.clone().unbind(),
                refs: 1,
            });
    }

    pub fn get(&self, py: Python<'_>, key: ObjKey) -> Option<Py<PyAny>> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&key).map(|e| e.obj.clone_ref(py))
    }

    /// Subtract `count` sends; returns the object if its entry is gone, so that the caller
    /// drops it (possibly running `__del__`) after the lock is released.
    pub fn decref(&self, key: ObjKey, count: u64) -> Option<Py<PyAny>> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let entry = map.get_mut(&key)?;
        if entry.refs <= count {
            map.remove(&key).map(|e| e.obj)
        } else {
            entry.refs -= count;
            None
        }
    }

    pub fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn keys(&self) -> Vec<ObjKey> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.keys().copied().collect()
    }

    /// Empty the table; the objects are returned so that they die outside the lock.
    pub fn take_all(&self) -> Vec<Py<PyAny>> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.drain().map(|(_, e)| e.obj).collect()
    }
}
