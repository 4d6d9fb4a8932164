//! The connection core's object table, shared by the threads of a connection: our objects
//! the peer holds references to (`rpyc_wire::conn::ObjectTable`), behind a short lock that is
//! never held while Python code runs.

use pyo3::prelude::*;
use rpyc_wire::conn::{ObjKey, ObjectTable};
use rpyc_wire::WireError;
use std::sync::{Mutex, MutexGuard};

pub struct Objects(Mutex<ObjectTable<Py<PyAny>>>);

impl Objects {
    /// A table of at most `max` objects (`max_local_objects`).
    pub fn new(max: usize) -> Self {
        Objects(Mutex::new(ObjectTable::new(max)))
    }

    fn table(&self) -> MutexGuard<'_, ObjectTable<Py<PyAny>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One more send of the object under `key` (`make` only takes a reference: no Python
    /// code runs under the lock).
    pub fn add(&self, key: ObjKey, make: impl FnOnce() -> Py<PyAny>) -> Result<(), WireError> {
        self.table().add(key, make)
    }

    /// Subtract `count` sends; the object whose entry is gone is returned, for the caller to
    /// drop after the lock is released (its `__del__` may run anything).
    pub fn decref(&self, key: ObjKey, count: u64) -> Option<Py<PyAny>> {
        self.table().decref(key, count)
    }

    pub fn get(&self, py: Python<'_>, key: ObjKey) -> Option<Py<PyAny>> {
        self.table().get(key).map(|o| o.clone_ref(py))
    }

    pub fn contains(&self, key: ObjKey) -> bool {
        self.table().contains(key)
    }

    pub fn len(&self) -> usize {
        self.table().len()
    }

    pub fn keys(&self) -> Vec<ObjKey> {
        self.table().keys()
    }

    /// Empty the table; the objects are returned so that they die outside the lock.
    pub fn take_all(&self) -> Vec<Py<PyAny>> {
        self.table().take_all()
    }
}
