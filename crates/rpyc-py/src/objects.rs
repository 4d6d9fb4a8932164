//! The local object table (WIRE.md §5.2): objects the peer holds proxies to, with the
//! number of times each was sent. The peer's `HANDLE_DEL(obj, k)` subtracts `k`.
//!
//! The table is bounded (`max_local_objects`): a peer that keeps obtaining new references and
//! never releases them would otherwise keep every one of those objects alive.

use pyo3::prelude::*;
use rustc_hash::FxHashMap as HashMap;
use std::sync::Mutex;

/// Key of a local object: `(class_id, instance_id)` of its id_pack (CPython `id()`s, unique
/// while the table keeps the object alive).
pub type ObjKey = (u64, u64);

struct Entry<T> {
    obj: T,
    refs: u64,
}

/// Adding a new object would take the table past its limit.
#[derive(Debug, PartialEq, Eq)]
pub struct TableFull {
    pub max: usize,
}

impl TableFull {
    pub fn message(&self) -> String {
        format!(
            "sending another object reference would exceed max_local_objects={} (the peer \
             holds references to {} objects of this connection and has not released them; \
             raise the max_local_objects config key to allow more)",
            self.max, self.max
        )
    }
}

/// Generic over the stored object so that the bookkeeping is testable without Python.
pub struct ObjectTable<T = Py<PyAny>> {
    map: Mutex<HashMap<ObjKey, Entry<T>>>,
}

impl<T> Default for ObjectTable<T> {
    fn default() -> Self {
        ObjectTable {
            map: Mutex::new(HashMap::default()),
        }
    }
}

impl<T> ObjectTable<T> {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<ObjKey, Entry<T>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Record one more send of the object under `key` (`make` gives the object to keep when
    /// the key is new). A new key is refused once the table holds `max` objects; more sends
    /// of an object already in the table are always recorded. Never runs Python code under
    /// the lock (`make` only takes a reference).
    pub fn add(&self, key: ObjKey, max: usize, make: impl FnOnce() -> T) -> Result<(), TableFull> {
        let mut map = self.map();
        if let Some(e) = map.get_mut(&key) {
            e.refs = e.refs.saturating_add(1);
            return Ok(());
        }
        if map.len() >= max {
            return Err(TableFull { max });
        }
        map.insert(
            key,
            Entry {
                obj: make(),
                refs: 1,
            },
        );
        Ok(())
    }

    /// Subtract `count` sends; returns the object if its entry is gone, so that the caller
    /// drops it (possibly running `__del__`) after the lock is released.
    pub fn decref(&self, key: ObjKey, count: u64) -> Option<T> {
        let mut map = self.map();
        let entry = map.get_mut(&key)?;
        if entry.refs <= count {
            map.remove(&key).map(|e| e.obj)
        } else {
            entry.refs -= count;
            None
        }
    }

    pub fn len(&self) -> usize {
        self.map().len()
    }

    pub fn keys(&self) -> Vec<ObjKey> {
        self.map().keys().copied().collect()
    }

    /// Empty the table; the objects are returned so that they die outside the lock.
    pub fn take_all(&self) -> Vec<T> {
        self.map().drain().map(|(_, e)| e.obj).collect()
    }
}

impl ObjectTable<Py<PyAny>> {
    pub fn get(&self, py: Python<'_>, key: ObjKey) -> Option<Py<PyAny>> {
        self.map().get(&key).map(|e| e.obj.clone_ref(py))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_keys_are_refused_at_the_limit_and_accepted_after_a_release() {
        let t: ObjectTable<u32> = ObjectTable::default();
        assert_eq!(t.add((1, 1), 2, || 1), Ok(()));
        assert_eq!(t.add((1, 2), 2, || 2), Ok(()));
        assert_eq!(t.add((1, 3), 2, || 3), Err(TableFull { max: 2 }));
        // another send of a known object is not a new entry
        assert_eq!(t.add((1, 1), 2, || 99), Ok(()));
        assert_eq!(t.len(), 2);
        assert_eq!(t.decref((1, 2), 1), Some(2));
        assert_eq!(t.add((1, 3), 2, || 3), Ok(()));
    }

    #[test]
    fn refs_count_sends_and_decref_releases_at_zero() {
        let t: ObjectTable<u32> = ObjectTable::default();
        for _ in 0..3 {
            t.add((7, 7), 10, || 7).unwrap();
        }
        assert_eq!(t.decref((7, 7), 2), None);
        assert_eq!(t.decref((7, 7), 5), Some(7));
        assert_eq!(t.decref((7, 7), 1), None);
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn full_message_names_the_key_and_value() {
        let msg = TableFull { max: 50 }.message();
        assert!(msg.contains("max_local_objects=50"), "{msg}");
        assert!(
            msg.contains("raise the max_local_objects config key"),
            "{msg}"
        );
    }
}
