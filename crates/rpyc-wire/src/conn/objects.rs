//! The local object table (docs/protocol.md#reference-counting-and-handle_del): our objects
//! the peer holds references to, with the number of times each was sent. The peer's
//! `HANDLE_DEL(obj, k)` subtracts `k`.
//!
//! The table is bounded (`max_local_objects`): a peer that keeps obtaining new references and
//! never releases them would otherwise keep every one of those objects alive.

use crate::error::WireError;
use rustc_hash::FxHashMap as HashMap;

/// Key of a local object: `(class_id, instance_id)` of its id_pack (for Python objects,
/// CPython `id()`s, unique while the table keeps the object alive).
pub type ObjKey = (u64, u64);

struct Entry<T> {
    obj: T,
    refs: u64,
}

/// Objects sent by reference, generic over what the driver stores for each.
pub struct ObjectTable<T> {
    map: HashMap<ObjKey, Entry<T>>,
    max: usize,
}

impl<T> ObjectTable<T> {
    /// A table of at most `max` objects (`max_local_objects`).
    pub fn new(max: usize) -> Self {
        ObjectTable {
            map: HashMap::default(),
            max,
        }
    }

    /// Record one more send of the object under `key` (`make` gives the object to keep when
    /// the key is new). A new key is refused once the table holds `max` objects; more sends
    /// of an object already in the table are always recorded.
    pub fn add(&mut self, key: ObjKey, make: impl FnOnce() -> T) -> Result<(), WireError> {
        if let Some(e) = self.map.get_mut(&key) {
            e.refs = e.refs.saturating_add(1);
            return Ok(());
        }
        if self.map.len() >= self.max {
            return Err(WireError::TooManyObjects { max: self.max });
        }
        self.map.insert(
            key,
            Entry {
                obj: make(),
                refs: 1,
            },
        );
        Ok(())
    }

    /// Subtract `count` sends; returns the object if its entry is gone, so that the caller
    /// drops it where it chooses (a Python object's `__del__` may run any code).
    pub fn decref(&mut self, key: ObjKey, count: u64) -> Option<T> {
        let entry = self.map.get_mut(&key)?;
        if entry.refs <= count {
            self.map.remove(&key).map(|e| e.obj)
        } else {
            entry.refs -= count;
            None
        }
    }

    pub fn get(&self, key: ObjKey) -> Option<&T> {
        self.map.get(&key).map(|e| &e.obj)
    }

    pub fn contains(&self, key: ObjKey) -> bool {
        self.map.contains_key(&key)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn keys(&self) -> Vec<ObjKey> {
        self.map.keys().copied().collect()
    }

    /// Empty the table; the objects are returned for the caller to drop.
    pub fn take_all(&mut self) -> Vec<T> {
        self.map.drain().map(|(_, e)| e.obj).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_keys_are_refused_at_the_limit_and_accepted_after_a_release() {
        let mut t: ObjectTable<u32> = ObjectTable::new(2);
        assert_eq!(t.add((1, 1), || 1), Ok(()));
        assert_eq!(t.add((1, 2), || 2), Ok(()));
        assert_eq!(
            t.add((1, 3), || 3),
            Err(WireError::TooManyObjects { max: 2 })
        );
        // another send of a known object is not a new entry
        assert_eq!(t.add((1, 1), || 99), Ok(()));
        assert_eq!(t.len(), 2);
        assert_eq!(t.decref((1, 2), 1), Some(2));
        assert_eq!(t.add((1, 3), || 3), Ok(()));
    }

    #[test]
    fn refs_count_sends_and_decref_releases_at_zero() {
        let mut t: ObjectTable<u32> = ObjectTable::new(10);
        for _ in 0..3 {
            t.add((7, 7), || 7).expect("room");
        }
        assert_eq!(t.decref((7, 7), 2), None);
        assert_eq!(t.decref((7, 7), 5), Some(7));
        assert_eq!(t.decref((7, 7), 1), None);
        assert!(t.is_empty());
    }

    #[test]
    fn full_message_names_the_key_and_value() {
        let msg = WireError::TooManyObjects { max: 50 }.to_string();
        assert!(msg.contains("max_local_objects=50"), "{msg}");
        assert!(
            msg.contains("raise the max_local_objects config key"),
            "{msg}"
        );
    }
}
