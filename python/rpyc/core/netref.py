"""Proxies ("netrefs") to objects that live on the other side of a connection
(docs/protocol.md#proxies-netrefs). Attribute access, calls, operators and the rest are forwarded to the
owner; a few names (``LOCAL_ATTRS``) are answered locally.
"""

import builtins
import inspect
import pickle
import sys
import types
from typing import Any, Callable, Dict, Iterable, List, Optional, SupportsIndex, Tuple

from rpyc import _core
from rpyc._core import Work as _Work
from rpyc.core import consts, extensions
from rpyc.core.byvalue import ByValueError
from rpyc.lib import get_id_pack, get_methods  # noqa: F401 (get_id_pack: upstream's name)
from rpyc.lib.compat import maxint  # noqa: F401 (upstream's name)

IdPack = Tuple[str, int, int]

#: names a proxy never forwards as attribute access
DELETED_ATTRS = frozenset(["__array_struct__", "__array_interface__"])
LOCAL_ATTRS = frozenset(
    [
        "____conn__", "____id_pack__", "____refcount__", "____prefetched__", "__class__", "__cmp__", "__del__",
        "__delattr__", "__dir__", "__doc__", "__getattr__", "__getattribute__", "__hash__",
        "__instancecheck__", "__init__", "__metaclass__", "__module__", "__new__",
        "__reduce__", "__reduce_ex__", "__repr__", "__setattr__", "__slots__", "__str__",
        "__weakref__", "__dict__", "__methods__", "__exit__", "__eq__", "__ne__", "__lt__",
        "__gt__", "__le__", "__ge__",
    ]
) | DELETED_ATTRS

#: unused, kept because upstream exports it
builtin_id_pack_cache: Dict[Any, Any] = {}

_getattribute = object.__getattribute__
_setattr = object.__setattr__


def syncreq(proxy: Any, handler: int, *args: Any) -> Any:
    """Send request ``handler`` about ``proxy`` to its owner and return the answer."""
    conn = _getattribute(proxy, "____conn__")
    res = conn._sync_request(handler, (proxy,) + args)
    while type(res) is _Work:  # a request or callback arrived first: run it, keep waiting
        res = conn._finish_work(res)
    return res


def _require_local_pickle(proxy: Any, what: str) -> None:
    """Refuse to unpickle what the owner of ``proxy`` sends unless the local config of its
    connection has ``allow_pickle`` (the peer's own setting does not count: it chooses the
    bytes). Raised before any request is sent."""
    conn = _getattribute(proxy, "____conn__")
    if not conn._config["allow_pickle"]:
        raise ValueError(
            f"{what}: pickling is disabled: it would unpickle data chosen by the peer here; "
            f"set allow_pickle=True in this side's config only if the peer is trusted"
        )


def refuse_pickle_fallback(proxy: Any, what: str, refused: ByValueError) -> None:
    """The peer could not send ``proxy``'s object by value (``refused``): upstream's pickle
    path is the fallback, and only this side's ``allow_pickle`` opens it (CVE-2024-27758).
    Raises a ``ByValueError`` (a ``ValueError``) naming both reasons when it is closed."""
    conn = _getattribute(proxy, "____conn__")
    if conn._config["allow_pickle"]:
        return
    reason = refused.args[0] if refused.args else str(refused)
    raise ByValueError(
        f"{reason}; {what} would need pickle for it, and pickling is disabled: it would "
        f"unpickle data chosen by the peer here; set allow_pickle=True in this side's config "
        f"only if the peer is trusted"
    ) from None


def _local_array(array: Any, dtype: Any = None, copy: Any = None) -> Any:
    """What ``__array__(dtype, copy)`` returns for an array fetched by value (ours alone:
    no copy is ever shared with anyone)."""
    import numpy

    return numpy.asarray(array, dtype=dtype)


def asyncreq(proxy: Any, handler: int, *args: Any) -> Any:
    """Like :func:`syncreq` but return an ``AsyncResult`` at once."""
    conn = _getattribute(proxy, "____conn__")
    return conn.async_request(handler, proxy, *args)


class NetrefMetaclass(type):
    """Metaclass of proxy classes; only ``repr`` differs from ``type``."""

    __slots__ = ()

    def __repr__(self) -> str:
        if self.__module__:
            return f"<netref class '{self.__module__}.{self.__name__}'>"
        return f"<netref class '{self.__name__}'>"


class BaseNetref(metaclass=NetrefMetaclass):
    """Base of every proxy class. Holds the connection, the remote id_pack and the number of
    times the owner sent this reference (returned to it in ``HANDLE_DEL`` on collection)."""

    __slots__ = ["____conn__", "____id_pack__", "__weakref__", "____refcount__", "____prefetched__"]

    def __init__(self, conn: Any, id_pack: IdPack) -> None:
        # (object's __setattr__: these are local slots, no need for our __setattr__'s test)
        _setattr(self, "____conn__", conn)
        _setattr(self, "____id_pack__", id_pack)
        _setattr(self, "____refcount__", 1)
        _setattr(self, "____prefetched__", None)  # items read ahead (extensions, iter_batch)

    def __del__(self) -> None:
        try:
            conn = _getattribute(self, "____conn__")
            conn._release(self, self.____refcount__)  # HANDLE_DEL, maybe held back briefly
        except Exception:
            # The connection may be gone; the owner drops its table on disconnect anyway.
            pass

    def __getattribute__(self, name: str) -> Any:
        if name in LOCAL_ATTRS:
            if name == "__class__":
                cls = _getattribute(self, "__class__")
                if cls is None:
                    cls = syncreq(self, consts.HANDLE_GETATTR, "__class__")
                return cls
            if name == "__doc__":
                return syncreq(self, consts.HANDLE_GETATTR, "__doc__")
            if name in DELETED_ATTRS:
                raise AttributeError(name)
            return _getattribute(self, name)
        if name == "__call__" or name == "__array__":
            return _getattribute(self, name)
        return syncreq(self, consts.HANDLE_GETATTR, name)

    def __delattr__(self, name: str) -> None:
        if name in LOCAL_ATTRS:
            object.__delattr__(self, name)
        else:
            syncreq(self, consts.HANDLE_DELATTR, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in LOCAL_ATTRS:
            _setattr(self, name, value)
        else:
            syncreq(self, consts.HANDLE_SETATTR, name, value)

    def __dir__(self) -> List[str]:
        return list(syncreq(self, consts.HANDLE_DIR))

    def __hash__(self) -> int:
        return syncreq(self, consts.HANDLE_HASH)

    def __cmp__(self, other: Any) -> Any:
        return syncreq(self, consts.HANDLE_CMP, other, "__cmp__")

    def __eq__(self, other: Any) -> Any:
        return syncreq(self, consts.HANDLE_CMP, other, "__eq__")

    def __ne__(self, other: Any) -> Any:
        return syncreq(self, consts.HANDLE_CMP, other, "__ne__")

    def __lt__(self, other: Any) -> Any:
        return syncreq(self, consts.HANDLE_CMP, other, "__lt__")

    def __gt__(self, other: Any) -> Any:
        return syncreq(self, consts.HANDLE_CMP, other, "__gt__")

    def __le__(self, other: Any) -> Any:
        return syncreq(self, consts.HANDLE_CMP, other, "__le__")

    def __ge__(self, other: Any) -> Any:
        return syncreq(self, consts.HANDLE_CMP, other, "__ge__")

    def __repr__(self) -> str:
        return syncreq(self, consts.HANDLE_REPR)

    def __str__(self) -> str:
        return syncreq(self, consts.HANDLE_STR)

    def __exit__(self, exc: Any, typ: Any, tb: Any) -> Any:
        # The owner only receives the exception class (as upstream sends it).
        return syncreq(self, consts.HANDLE_CTXEXIT, exc)

    def __reduce_ex__(self, proto: SupportsIndex) -> Any:
        # Pickling a proxy pickles the remote object by value (the owner must allow it); the
        # result unpickles the peer's bytes here (copy.copy/deepcopy do so at once), so this
        # side's allow_pickle must allow it too (CVE-2024-27758).
        _require_local_pickle(self, "pickling or copying a proxy")
        return pickle.loads, (syncreq(self, consts.HANDLE_PICKLE, proto),)

    def __instancecheck__(self, other: Any) -> bool:
        my_pack = self.____id_pack__
        if isinstance(other, BaseNetref):
            if my_pack[2] != 0:
                raise TypeError("isinstance() arg 2 must be a class, type, or tuple of classes and types")
            other_pack = other.____id_pack__
            if my_pack[1] == other_pack[1]:
                return other_pack[2] != 0
            return bool(syncreq(self, consts.HANDLE_INSTANCECHECK, other_pack))
        if my_pack[2] == 0:
            descriptor = type(self).__dict__.get("__class__")
            if isinstance(descriptor, NetrefClass):
                return isinstance(other, descriptor.instance)
            return False
        raise TypeError("isinstance() arg 2 must be a class, type, or tuple of classes and types")


class NetrefClass:
    """The ``__class__`` of a proxy class: the local class named like the remote one. Instance
    proxies report it; class proxies report its metaclass."""

    __slots__ = ["_class_obj"]

    def __init__(self, class_obj: type) -> None:
        self._class_obj = class_obj

    @property
    def instance(self) -> type:
        return self._class_obj

    @property
    def owner(self) -> type:
        return type(self._class_obj)

    def __get__(self, netref_instance: Any, netref_owner: Any) -> Any:
        if netref_instance is None:
            return self
        if _getattribute(netref_instance, "____id_pack__")[2] == 0:
            return self.owner
        return self.instance


def _make_method(name: str, doc: Optional[str]) -> Any:
    """A proxy-class method forwarding the call of remote method ``name``."""
    method: Callable[..., Any]  # (the variants below differ in signature)
    if name == "__call__":

        def method(_self: Any, *args: Any, **kwargs: Any) -> Any:
            return syncreq(_self, consts.HANDLE_CALL, args, tuple(kwargs.items()) if kwargs else ())

    elif name == "__array__":

        def method(_self: Any, *args: Any, **kwargs: Any) -> Any:
            conn = _getattribute(_self, "____conn__")
            if extensions.FEATURE_BY_VALUE in conn._peer_features:
                # rpyc-rs peer: the array by value in one round trip, no pickle
                # (docs/by-value.md). What cannot travel by value (not data, an object
                # dtype, over the frame limit) takes upstream's pickle path below, which
                # only a local allow_pickle opens.
                try:
                    return _local_array(syncreq(_self, consts.HANDLE_OBTAIN), *args, **kwargs)
                except ByValueError as exc:
                    refuse_pickle_fallback(_self, "__array__ (e.g. numpy.array(proxy))", exc)
            # The local side decides whether it unpickles peer data (CVE-2024-27758).
            _require_local_pickle(_self, "__array__ (e.g. numpy.array(proxy))")
            array = pickle.loads(syncreq(_self, consts.HANDLE_PICKLE, -1))
            return array.__array__(*args, **kwargs)

    elif name == "__next__":

        def method(_self: Any, *args: Any, **kwargs: Any) -> Any:
            conn = _getattribute(_self, "____conn__")
            if args or kwargs or extensions.FEATURE_ITER_BATCH not in conn._peer_features:
                return syncreq(_self, consts.HANDLE_CALLATTR, name, args,
                               tuple(kwargs.items()) if kwargs else ())
            return extensions.next_item(_self, conn, _getattribute, _setattr, syncreq)

    elif name in ("__getslice__", "__setslice__", "__delslice__"):
        attempt = "__" + name[2:5] + "item__"

        def method(_self: Any, start: Any, stop: Any, *args: Any) -> Any:
            if stop == sys.maxsize:
                stop = None
            return syncreq(_self, consts.HANDLE_OLDSLICING, attempt, name, start, stop, args)

    else:

        def method(_self: Any, *args: Any, **kwargs: Any) -> Any:
            return syncreq(_self, consts.HANDLE_CALLATTR, name, args,
                           tuple(kwargs.items()) if kwargs else ())

    method.__name__ = name
    method.__doc__ = doc
    return method


def _builtin_name(cls: type) -> str:
    return "builtins." + cls.__name__


def _resolve_local_class(name_pack: str) -> Optional[type]:
    """The local class a remote ``module.Class`` name stands for (None if no module matches).
    A module found without such an attribute yields the module's type, as upstream does."""
    builtin = _normalized_builtin_types.get(name_pack)
    if builtin is not None:
        return builtin
    end = len(name_pack)
    while end > 0:
        module = sys.modules.get(name_pack[:end])
        if module is not None:
            attr = getattr(module, name_pack[end + 1 :], None)
            if attr is None:
                return type(module)
            return attr if hasattr(attr, "__class__") else None
        end = name_pack.rfind(".", 0, end)
    return None


def class_factory(id_pack: IdPack, methods: Iterable[Tuple[str, Optional[str]]]) -> type:
    """Build the proxy class for a remote class or instance from its INSPECT method list."""
    name_pack: Optional[str] = id_pack[0]  # (the peer's id_pack: may hold None, checked below)
    local_class = _resolve_local_class(name_pack) if name_pack is not None else None
    return _build_class(name_pack, local_class, methods)


def shared_class_factory(id_pack: IdPack, methods: Any) -> type:
    """:func:`class_factory`, reusing the class built for the same description earlier.

    A proxy class holds nothing of its connection, so every connection that meets the same
    remote class (each new connection's root) can share one instead of building its own.
    """
    name_pack: Optional[str] = id_pack[0]  # (the peer's id_pack: may hold None, checked below)
    local_class = _resolve_local_class(name_pack) if name_pack is not None else None
    key = (name_pack, local_class, methods) if plain_description(methods) else None
    try:
        cls = _shared_classes.get(key) if key is not None else None
    except TypeError:  # an unhashable local class
        key = cls = None
    if cls is None:
        cls = _build_class(name_pack, local_class, methods)
        if key is not None:
            if len(_shared_classes) >= _SHARED_CLASSES_SIZE:
                _shared_classes.clear()  # bounded: a peer may describe endless classes
            _shared_classes[key] = cls
    return cls


_SHARED_CLASSES_SIZE = 1024
_shared_classes: Dict[Any, type] = {}


def plain_description(methods: Any) -> bool:
    """Whether an INSPECT answer is a tuple of (str, str-or-None) pairs, safe to hash."""
    if type(methods) is not tuple:
        return False
    for entry in methods:
        if type(entry) is not tuple or len(entry) != 2 or type(entry[0]) is not str:
            return False
        doc = entry[1]
        if doc is not None and type(doc) is not str:
            return False
    return True


# The buffer protocol (PEP 688, Python 3.12+) cannot reach remote memory: a proxied
# __buffer__ would cost a round trip and fail, and numpy asks for it before __array__.
_NEVER_PROXIED = frozenset(["__buffer__", "__release_buffer__"])


def _build_class(name_pack: Any, local_class: Optional[type], methods: Iterable[Tuple[str, Optional[str]]]) -> type:
    namespace: Dict[str, Any] = {"__slots__": ()}
    namespace["__class__"] = NetrefClass(local_class) if local_class is not None else None
    for name, doc in methods:
        name = str(name)
        if name not in LOCAL_ATTRS and name not in _NEVER_PROXIED:
            namespace[name] = _make_method(name, doc)
    return type(name_pack, (BaseNetref,), namespace)


_builtin_types = [
    type, object, bool, complex, dict, float, int, list, slice, str, tuple, set, frozenset,
    BaseException, Exception, type(None), types.BuiltinFunctionType, types.GeneratorType,
    types.MethodType, types.CodeType, types.FrameType, types.TracebackType, types.ModuleType,
    types.FunctionType, type(int.__dict__), type(object.__init__), types.MethodWrapperType,
    type(iter([])), type(iter(())), type(iter(set())), bytes, bytearray, type(iter(range(0))),
    memoryview,
]
_normalized_builtin_types = {_builtin_name(t): t for t in _builtin_types}

#: prebuilt proxy classes for builtin types, keyed by name_pack: no INSPECT round trip
builtin_classes_cache: Dict[str, type] = {}
for _cls in _builtin_types:
    _name = _builtin_name(_cls)
    builtin_classes_cache[_name] = class_factory((_name, 0, 0), get_methods(LOCAL_ATTRS, _cls))
del _cls, _name  # type: ignore[possibly-undefined]  # (the loop ran: the list is not empty)

_core.register_netref_base(BaseNetref)
del builtins, inspect
