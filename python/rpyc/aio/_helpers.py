"""Awaitable stand-ins for what Python answers synchronously (``len(p)``, ``p[k] = v``...):
an async netref cannot answer those without waiting for its owner. Each works on local
objects too (then it needs no request)."""

import builtins
from typing import Any

from rpyc.core import consts

from rpyc.aio._netref import AsyncNetref, RemoteOp, RootOf, request

__all__ = [
    "len", "repr", "str", "bool", "hash", "dir", "contains", "getattr", "setattr", "delattr",
    "setitem", "delitem", "compare", "iter", "next", "list", "obtain", "block",
]

_MISSING = object()


async def _target(obj: Any) -> Any:
    return await obj if isinstance(obj, RemoteOp) else obj


def _remote(obj: Any) -> builtins.bool:
    return isinstance(obj, AsyncNetref)


async def _callattr(obj: Any, name: builtins.str, *args: Any) -> Any:
    return await request(obj, consts.HANDLE_CALLATTR, name, args, ())


async def len(obj: Any) -> int:  # noqa: A001
    """``len(obj)``."""
    obj = await _target(obj)
    return await _callattr(obj, "__len__") if _remote(obj) else builtins.len(obj)


async def repr(obj: Any) -> builtins.str:  # noqa: A001
    """The owner's ``repr(obj)``."""
    obj = await _target(obj)
    return await request(obj, consts.HANDLE_REPR) if _remote(obj) else builtins.repr(obj)


async def str(obj: Any) -> builtins.str:  # noqa: A001
    """The owner's ``str(obj)``."""
    obj = await _target(obj)
    return await request(obj, consts.HANDLE_STR) if _remote(obj) else builtins.str(obj)


async def bool(obj: Any) -> builtins.bool:  # noqa: A001
    """``bool(obj)`` (``__bool__``, else ``__len__``, else True, as Python decides)."""
    obj = await _target(obj)
    if not _remote(obj):
        return builtins.bool(obj)
    for name in ("__bool__", "__len__"):
        try:
            return builtins.bool(await _callattr(obj, name))
        except AttributeError:
            continue
    return True


async def hash(obj: Any) -> int:  # noqa: A001
    """The owner's ``hash(obj)``."""
    obj = await _target(obj)
    return await request(obj, consts.HANDLE_HASH) if _remote(obj) else builtins.hash(obj)


async def dir(obj: Any) -> "builtins.list[builtins.str]":  # noqa: A001
    """The owner's ``dir(obj)``."""
    obj = await _target(obj)
    return builtins.list(await request(obj, consts.HANDLE_DIR)) if _remote(obj) else builtins.dir(obj)


async def contains(obj: Any, item: Any) -> builtins.bool:
    """``item in obj``."""
    obj = await _target(obj)
    if _remote(obj):
        return builtins.bool(await _callattr(obj, "__contains__", item))
    return item in obj


async def getattr(obj: Any, name: builtins.str, default: Any = _MISSING) -> Any:  # noqa: A001
    """``getattr(obj, name[, default])``."""
    obj = await _target(obj)
    try:
        if _remote(obj):
            return await request(obj, consts.HANDLE_GETATTR, name)
        return builtins.getattr(obj, name)
    except AttributeError:
        if default is _MISSING:
            raise
        return default


async def setattr(obj: Any, name: builtins.str, value: Any) -> None:  # noqa: A001
    """``obj.name = value`` (the owner's config must allow it: ``allow_setattr``)."""
    obj = await _target(obj)
    if _remote(obj):
        await request(obj, consts.HANDLE_SETATTR, name, value)
    else:
        builtins.setattr(obj, name, value)


async def delattr(obj: Any, name: builtins.str) -> None:  # noqa: A001
    """``del obj.name`` (``allow_delattr`` on the owner)."""
    obj = await _target(obj)
    if _remote(obj):
        await request(obj, consts.HANDLE_DELATTR, name)
    else:
        builtins.delattr(obj, name)


async def setitem(obj: Any, key: Any, value: Any) -> None:
    """``obj[key] = value``."""
    obj = await _target(obj)
    if _remote(obj):
        await _callattr(obj, "__setitem__", key, value)
    else:
        obj[key] = value


async def delitem(obj: Any, key: Any) -> None:
    """``del obj[key]``."""
    obj = await _target(obj)
    if _remote(obj):
        await _callattr(obj, "__delitem__", key)
    else:
        del obj[key]


_COMPARISONS = {"__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__"}


async def compare(obj: Any, other: Any, op: builtins.str = "__eq__") -> Any:
    """``obj == other`` (or ``op``: ``"__lt__"``...) as the owner of ``obj`` decides."""
    if op not in _COMPARISONS:
        raise ValueError(f"op must be one of {sorted(_COMPARISONS)}")
    obj = await _target(obj)
    if _remote(obj):
        result = await request(obj, consts.HANDLE_CMP, other, op)
    else:
        result = builtins.getattr(obj, op)(other)
    if result is NotImplemented:  # as Python does when neither side knows
        if op in ("__eq__", "__ne__"):
            return (obj is other) == (op == "__eq__")
        raise TypeError(f"{op} is not supported between {obj!r} and {type(other).__name__!r}")
    return result


async def iter(obj: Any) -> Any:  # noqa: A001
    """``iter(obj)``: a proxy of the owner's iterator (``async for`` over it, or ``next``)."""
    obj = await _target(obj)
    return await _callattr(obj, "__iter__") if _remote(obj) else builtins.iter(obj)


async def next(obj: Any, default: Any = _MISSING) -> Any:  # noqa: A001
    """``next(obj[, default])``; an exhausted iterator raises ``StopAsyncIteration``."""
    obj = await _target(obj)
    try:
        if _remote(obj):
            return await _callattr(obj, "__next__")
        try:
            return builtins.next(obj)
        except StopIteration:
            raise StopAsyncIteration from None
    except StopAsyncIteration:
        if default is _MISSING:
            raise
        return default


async def list(obj: Any) -> "builtins.list[Any]":  # noqa: A001
    """The items of a (remote) iterable, as a local list."""
    return [item async for item in (obj if isinstance(obj, (AsyncNetref, RemoteOp)) else _aiter(obj))]


async def _aiter(obj: Any) -> Any:
    for item in obj:
        yield item


async def obtain(obj: Any) -> Any:
    """A local copy of a remote object (a local object is returned as it is), decided as
    ``rpyc.utils.classic.obtain`` decides: from an rpyc-rs peer, data is copied by value
    without pickle (docs/by-value.md); anything else, and everything from an upstream
    peer, is pickled by its owner and unpickled here, only if this side's config has
    ``allow_pickle`` (the owner's must allow it too)."""
    import pickle

    from rpyc.core.byvalue import ByValueError
    from rpyc.core.netref import refuse_pickle_fallback
    from rpyc.utils.classic import _obtains_by_value, _require_pickle

    obj = await _target(obj)
    if not _remote(obj):
        return obj
    if _obtains_by_value(obj):
        try:
            return await request(obj, consts.HANDLE_OBTAIN)
        except ByValueError as exc:
            refuse_pickle_fallback(obj, "obtain()", exc)  # (raises unless pickle is allowed)
    _require_pickle(object.__getattribute__(obj, "____conn__"), "obtain")
    return pickle.loads(await request(obj, consts.HANDLE_PICKLE, pickle.DEFAULT_PROTOCOL))


def block(operation: Any, timeout: Any = None) -> Any:
    """Run a remote operation (``proxy.method(...)``, ``proxy.attr``...) from a thread that is
    not the event loop's, e.g. a plain ``def`` handler on an executor thread, and wait up to
    ``timeout`` seconds for its result."""
    import asyncio
    import threading

    if not isinstance(operation, RemoteOp):
        raise TypeError("block() runs a remote operation (proxy.method(...), proxy.attr...)")
    base = object.__getattribute__(operation, "____base__")
    conn = base.conn if isinstance(base, RootOf) else object.__getattribute__(base, "____conn__")
    if threading.get_ident() == conn._loop_thread:
        raise RuntimeError("block() on the event loop's thread would stall it: 'await' instead")

    async def run() -> Any:
        return await operation

    return asyncio.run_coroutine_threadsafe(run(), conn._loop).result(timeout)
