"""Async netrefs: proxies whose every remote operation is awaited (docs/asyncio.md).

``p.a.b(1)`` builds a :class:`RemoteOp` (no network yet); awaiting it sends the requests
(``GETATTR a`` then ``CALLATTR b``: an attribute followed by a call is one request). What
Python forces to be synchronous and answered on the spot (``len``, ``bool``, ``in``,
iteration, ``hash``...) raises ``TypeError`` naming the awaitable helper instead of
blocking the event loop.
"""

from typing import Any, List, SupportsIndex, Tuple

from rpyc.core import consts, extensions
from rpyc.core.netref import BaseNetref

__all__ = ["AsyncNetref", "RemoteOp", "RootOf", "request"]

_getattribute = object.__getattribute__
_setattr = object.__setattr__

# Steps of a RemoteOp.
_ATTR, _CALL, _ITEM = 0, 1, 2


def request(proxy: Any, handler: int, *args: Any) -> Any:
    """Send request ``handler`` about ``proxy`` to its owner: await the result once for the
    answer (cancelling that await gives the request up)."""
    return _getattribute(proxy, "____conn__")._send_request(handler, (proxy,) + args)


def _kw(kwargs: Any) -> Tuple[Any, ...]:
    return tuple(kwargs.items()) if kwargs else ()


def _use(helper: str) -> TypeError:
    return TypeError(
        f"an async netref cannot answer this without waiting for its owner: use "
        f"'await rpyc.aio.{helper}' (see docs/asyncio.md)"
    )


class AsyncNetref(BaseNetref):
    """A proxy of an object owned by the peer of an ``rpyc.aio`` connection."""

    __slots__ = ()

    def __getattribute__(self, name: str) -> Any:
        if name.startswith("____"):
            return _getattribute(self, name)
        if name == "__class__":
            return AsyncNetref
        if name in _LOCAL:
            return _getattribute(self, name)
        return RemoteOp(self, ((_ATTR, name),))

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("____"):
            _setattr(self, name, value)
        else:
            raise _use(f"setattr(proxy, {name!r}, value)")

    def __delattr__(self, name: str) -> None:
        raise _use(f"delattr(proxy, {name!r})")

    def __call__(self, *args: Any, **kwargs: Any) -> "RemoteOp":
        return RemoteOp(self, ((_CALL, args, kwargs),))

    def __getitem__(self, key: Any) -> "RemoteOp":
        return RemoteOp(self, ((_ITEM, key),))

    def __setitem__(self, key: Any, value: Any) -> None:
        raise _use("setitem(proxy, key, value)")

    def __delitem__(self, key: Any) -> None:
        raise _use("delitem(proxy, key)")

    def __repr__(self) -> str:
        name, class_id, instance_id = _getattribute(self, "____id_pack__")
        kind = "class" if instance_id == 0 else "object"
        return f"<async netref of a remote {name} {kind} {class_id:#x}/{instance_id:#x}>"

    __str__ = __repr__

    # Two proxies are equal when they stand for the same remote object (no request).
    def __eq__(self, other: Any) -> bool:
        return isinstance(other, AsyncNetref) and _same(self, other)

    def __ne__(self, other: Any) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return hash(_getattribute(self, "____id_pack__"))

    def __bool__(self) -> bool:
        raise _use("bool(proxy)")

    def __len__(self) -> int:
        raise _use("len(proxy)")

    def __contains__(self, item: Any) -> bool:
        raise _use("contains(proxy, item)")

    def __iter__(self) -> Any:
        raise TypeError("iterate an async netref with 'async for' (or 'await rpyc.aio.list(proxy)')")

    def __aiter__(self) -> "AsyncIterator":
        return AsyncIterator(self)

    async def __aenter__(self) -> Any:
        return await request(self, consts.HANDLE_CALLATTR, "__enter__", (), ())

    async def __aexit__(self, typ: Any, exc: Any, tb: Any) -> Any:
        # The owner receives the exception class only, as the sync proxy sends it.
        return await request(self, consts.HANDLE_CTXEXIT, typ)

    def __await__(self) -> Any:
        # (awaiting a proxy gives the proxy: a RemoteOp chain may end on one)
        yield from ()
        return self

    def __reduce_ex__(self, proto: SupportsIndex) -> Any:
        raise TypeError("an async netref cannot be pickled; use 'await rpyc.aio.obtain(proxy)'")


def _same(a: Any, b: Any) -> bool:
    return bool(
        _getattribute(a, "____conn__") is _getattribute(b, "____conn__")
        and _getattribute(a, "____id_pack__") == _getattribute(b, "____id_pack__")
    )


_LOCAL = frozenset(
    """__repr__ __str__ __eq__ __ne__ __hash__ __bool__ __len__ __contains__ __iter__
    __aiter__ __aenter__ __aexit__ __await__ __call__ __getitem__ __setitem__ __delitem__
    __reduce_ex__ __reduce__ __dir__ __doc__ __init__ __del__ __setattr__ __delattr__
    __getattribute__ __weakref__ __slots__ __module__ __init_subclass__ __subclasshook__
    __format__ __sizeof__ __new__ __lt__ __le__ __gt__ __ge__""".split()
)


def _binary(op_name: str) -> Any:
    def method(self: Any, other: Any) -> "RemoteOp":
        return RemoteOp(self, ((_ATTR, op_name), (_CALL, (other,), None)))

    method.__name__ = op_name
    return method


def _unary(op_name: str) -> Any:
    def method(self: Any) -> "RemoteOp":
        return RemoteOp(self, ((_ATTR, op_name), (_CALL, (), None)))

    method.__name__ = op_name
    return method


# Arithmetic builds awaitables: ``await (p + 1)`` is ``p.__add__(1)`` on the owner.
for _name in """add sub mul matmul truediv floordiv mod pow lshift rshift and xor or divmod
        radd rsub rmul rmatmul rtruediv rfloordiv rmod rpow rlshift rrshift rand rxor ror
        rdivmod""".split():
    setattr(AsyncNetref, f"__{_name}__", _binary(f"__{_name}__"))
for _name in "neg pos abs invert".split():
    setattr(AsyncNetref, f"__{_name}__", _unary(f"__{_name}__"))
del _name


def _comparison(op_name: str) -> Any:
    def method(self: Any, other: Any) -> Any:
        raise _use(f"compare(proxy, other, {op_name!r})")

    method.__name__ = op_name
    return method


for _name in ("__lt__", "__le__", "__gt__", "__ge__"):
    setattr(AsyncNetref, _name, _comparison(_name))
del _name


class RemoteOp:
    """A chain of attribute lookups, calls and subscripts on a proxy, run when awaited.

    Steps after a result that travelled by value (a tuple, a number) run locally on it.
    It can also be iterated with ``async for`` and entered with ``async with`` (the chain
    runs first).
    """

    __slots__ = ("____base__", "____steps__", "____entered__")

    def __init__(self, base: Any, steps: Tuple[Any, ...]) -> None:
        _setattr(self, "____base__", base)
        _setattr(self, "____steps__", steps)

    def __getattr__(self, name: str) -> "RemoteOp":
        if name.startswith("____"):
            raise AttributeError(name)
        return RemoteOp(_getattribute(self, "____base__"), _getattribute(self, "____steps__") + ((_ATTR, name),))

    def __call__(self, *args: Any, **kwargs: Any) -> "RemoteOp":
        steps = _getattribute(self, "____steps__") + ((_CALL, args, kwargs),)
        return RemoteOp(_getattribute(self, "____base__"), steps)

    def __getitem__(self, key: Any) -> "RemoteOp":
        return RemoteOp(_getattribute(self, "____base__"), _getattribute(self, "____steps__") + ((_ITEM, key),))

    def __repr__(self) -> str:
        path = "".join(_describe(s) for s in _getattribute(self, "____steps__"))
        return f"<pending remote operation {path} on {_getattribute(self, '____base__')!r}>"

    def __bool__(self) -> bool:
        raise TypeError("a remote operation is not run until awaited: 'await' it first")

    def __await__(self) -> Any:
        base = _getattribute(self, "____base__")
        steps = _getattribute(self, "____steps__")
        if len(steps) == 2 and steps[0][0] == _ATTR and steps[1][0] == _CALL and type(base) is AsyncNetref:
            # The usual case, ``await proxy.method(args)``: one request, no coroutine.
            args, kwargs = steps[1][1], steps[1][2]
            return request(base, consts.HANDLE_CALLATTR, steps[0][1], args, _kw(kwargs)).__await__()
        return _run(base, steps).__await__()

    def __aiter__(self) -> "AsyncIterator":
        return AsyncIterator(self)

    async def __aenter__(self) -> Any:
        target = await self
        _setattr(self, "____entered__", target)
        if isinstance(target, AsyncNetref):
            return await target.__aenter__()
        return await _local_aenter(target)

    async def __aexit__(self, typ: Any, exc: Any, tb: Any) -> Any:
        target = _getattribute(self, "____entered__")
        if isinstance(target, AsyncNetref):
            return await target.__aexit__(typ, exc, tb)
        return target.__exit__(typ, exc, tb)


async def _local_aenter(target: Any) -> Any:
    return target.__enter__()


def _describe(step: Any) -> str:
    if step[0] == _ATTR:
        return "." + step[1]
    if step[0] == _CALL:
        return "(...)"
    return "[...]"


class RootOf:
    """The base of ``conn.root`` before the root was fetched (fetched when awaited)."""

    __slots__ = ("conn",)

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def __repr__(self) -> str:
        return f"<root of {self.conn!r}>"


async def _run(obj: Any, steps: Tuple[Any, ...]) -> Any:
    if type(obj) is RootOf:
        obj = await obj.conn.fetch_root()
    i, n = 0, len(steps)
    while i < n:
        step = steps[i]
        kind = step[0]
        remote = isinstance(obj, AsyncNetref)
        if kind == _ATTR:
            name = step[1]
            if remote and i + 1 < n and steps[i + 1][0] == _CALL:
                call = steps[i + 1]
                obj = await request(obj, consts.HANDLE_CALLATTR, name, call[1], _kw(call[2]))
                i += 2
                continue
            obj = await request(obj, consts.HANDLE_GETATTR, name) if remote else getattr(obj, name)
        elif kind == _CALL:
            if remote:
                obj = await request(obj, consts.HANDLE_CALL, step[1], _kw(step[2]))
            else:
                obj = obj(*step[1], **(step[2] or {}))
        else:
            key = step[1]
            if remote:
                obj = await request(obj, consts.HANDLE_CALLATTR, "__getitem__", (key,), ())
            else:
                obj = obj[key]
        i += 1
    return obj


class AsyncIterator:
    """``async for`` over a remote iterable: ``iter()`` on the owner, then ``next()`` per
    item (a batch of items per request between rpyc-rs peers, as the sync proxy does)."""

    __slots__ = ("_source", "_iterator", "_buffer", "_done")

    def __init__(self, source: Any) -> None:
        self._source = source
        self._iterator: Any = None
        self._buffer: List[Any] = []
        self._done = False

    def __aiter__(self) -> "AsyncIterator":
        return self

    async def __anext__(self) -> Any:
        if self._buffer:
            return self._buffer.pop()
        if self._iterator is None:
            source = await self._source if isinstance(self._source, RemoteOp) else self._source
            if not isinstance(source, AsyncNetref):
                self._iterator = _LocalIterator(iter(source))
            else:
                self._iterator = await request(source, consts.HANDLE_CALLATTR, "__iter__", (), ())
        it = self._iterator
        if isinstance(it, _LocalIterator):
            return it.next()
        if self._done:
            raise StopAsyncIteration
        conn = _getattribute(it, "____conn__")
        if extensions.FEATURE_ITER_BATCH in conn._peer_features:
            items, done = await request(it, consts.HANDLE_ITER_BATCH, extensions.ITER_BATCH_SIZE)
            self._done = bool(done)
            if not items:
                raise StopAsyncIteration
            self._buffer = list(reversed(items))
            return self._buffer.pop()
        try:
            return await request(it, consts.HANDLE_CALLATTR, "__next__", (), ())
        except StopAsyncIteration:  # (the owner's StopIteration, as a future can carry it)
            self._done = True
            raise


class _LocalIterator:
    __slots__ = ("_it",)

    def __init__(self, it: Any) -> None:
        self._it = it

    def next(self) -> Any:
        try:
            return next(self._it)
        except StopIteration:
            raise StopAsyncIteration from None

