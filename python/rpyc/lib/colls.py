"""Small collections used by connections: a weak-value mapping for the proxy cache and the
reference-counted object table (docs/protocol.md#reference-counting-and-handle_del)."""

import threading
import weakref
from typing import Any, Callable, Dict, Hashable, Iterator, KeysView, List, Tuple

__all__ = ["WeakValueDict", "RefCountingColl"]


class WeakValueDict:
    """A lightweight mapping whose values are held through weak references: an entry
    disappears once its value has been garbage-collected. Values must be weak-referenceable."""

    __slots__ = ("_dict",)

    def __init__(self) -> None:
        self._dict: Dict[Hashable, "weakref.ref[Any]"] = {}

    def __repr__(self) -> str:
        return repr(self._dict)

    def __len__(self) -> int:
        return len(self._dict)

    def __iter__(self) -> Iterator[Hashable]:
        return iter(list(self._dict))

    def __contains__(self, key: Hashable) -> bool:
        ref = self._dict.get(key)
        return ref is not None and ref() is not None

    def __getitem__(self, key: Hashable) -> Any:
        value = self._dict[key]()
        if value is None:
            raise KeyError(key)
        return value

    def __setitem__(self, key: Hashable, value: Any) -> None:
        self._dict[key] = weakref.ref(value, self._make_remover(key))

    def __delitem__(self, key: Hashable) -> None:
        del self._dict[key]

    def _make_remover(self, key: Hashable) -> Callable[["weakref.ref[Any]"], None]:
        entries = self._dict

        def remove(ref: "weakref.ref[Any]") -> None:
            # only drop the entry if it still refers to the object that died
            if entries.get(key) is ref:
                entries.pop(key, None)

        return remove

    def get(self, key: Hashable, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def keys(self) -> KeysView[Hashable]:
        return self._dict.keys()

    iterkeys = keys

    def itervalues(self) -> Iterator[Any]:
        for _, value in self.iteritems():
            yield value

    def values(self) -> List[Any]:
        return list(self.itervalues())

    def iteritems(self) -> Iterator[Tuple[Hashable, Any]]:
        for key, ref in list(self._dict.items()):
            value = ref()
            if value is not None:
                yield key, value

    def items(self) -> List[Tuple[Hashable, Any]]:
        return list(self.iteritems())

    def clear(self) -> None:
        self._dict.clear()


class RefCountingColl:
    """Thread-safe table ``key -> object`` with a reference count per entry.

    :meth:`add` counts one more reference (creating the entry the first time); :meth:`decref`
    removes ``count`` references and drops the entry once none are left. Internally the count
    is stored as "references - 1", like upstream, which is what ``repr`` shows.
    """

    __slots__ = ("_lock", "_dict")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._dict: Dict[Hashable, List[Any]] = {}

    def __repr__(self) -> str:
        return repr(self._dict)

    def __len__(self) -> int:
        return len(self._dict)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._dict

    def add(self, key: Hashable, obj: Any) -> None:
        """Record one more reference to ``obj`` under ``key``."""
        with self._lock:
            slot = self._dict.get(key)
            if slot is None:
                self._dict[key] = [obj, 0]
            else:
                slot[1] += 1

    def decref(self, key: Hashable, count: int = 1) -> None:
        """Drop ``count`` references to the entry ``key`` (:class:`KeyError` if absent); the
        entry is removed when its references are exhausted."""
        with self._lock:
            slot = self._dict[key]
            if slot[1] < count:
                del self._dict[key]
            else:
                slot[1] -= count

    def __getitem__(self, key: Hashable) -> Any:
        with self._lock:
            return self._dict[key][0]

    def clear(self) -> None:
        with self._lock:
            self._dict.clear()
