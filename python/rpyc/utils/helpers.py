"""Helpers for common RPyC tasks: asynchronous and timed calls on proxies, chunked iteration of
remote iterators, restricted views of objects, a background serving thread, and binding
constructor arguments of a service class."""

import threading
import time
from typing import Any, Callable, Collection, Iterator, Optional

from rpyc.core.consts import HANDLE_BUFFITER, HANDLE_CALL
from rpyc.lib import spawn
from rpyc.lib.colls import WeakValueDict
from rpyc.lib.compat import callable  # noqa: F401 (upstream's names)
from rpyc.core.netref import asyncreq, syncreq  # noqa: F401

__all__ = [
    "async_",
    "timed",
    "buffiter",
    "restricted",
    "BgServingThread",
    "classpartial",
]


def _netref() -> Any:
    # imported on first use: keeps this module importable on its own
    from rpyc.core import netref

    return netref


def _is_proxy(obj: Any) -> bool:
    return hasattr(obj, "____conn__") and hasattr(obj, "____id_pack__")


# ---------------------------------------------------------------------------------------------
# asynchronous and timed calls
# ---------------------------------------------------------------------------------------------


class _Async:
    """Asynchronous calling wrapper of a callable proxy: calling it sends the CALL request
    without waiting and returns an :class:`~rpyc.core.async_.AsyncResult`."""

    __slots__ = ("proxy", "__weakref__")

    def __init__(self, proxy: Any) -> None:
        self.proxy = proxy

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return _netref().asyncreq(self.proxy, HANDLE_CALL, args, tuple(kwargs.items()))

    def __repr__(self) -> str:
        return f"async_({self.proxy!r})"


# id(proxy) and id(wrapper) -> wrapper; the wrapper keeps its proxy alive, so the id cannot be
# reused while the entry exists
_async_proxies_cache = WeakValueDict()


def async_(proxy: Any) -> _Async:
    """Return the asynchronous version of a callable proxy: calling it returns an
    :class:`~rpyc.core.async_.AsyncResult` at once instead of blocking.

    Wrappers are cached weakly per proxy, so keep a reference to the wrapper while you use
    it (``a = async_(p); a(1)`` rather than ``async_(p)(1)`` in a loop). Asynchronous requests
    are not guaranteed to run in the order they were sent.

    :raises TypeError: if ``proxy`` is not a proxy, or is not callable
    """
    key = id(proxy)
    cached = _async_proxies_cache.get(key)
    if cached is not None:
        return cached
    if not _is_proxy(proxy):
        raise TypeError(f"'proxy' must be a Netref: {proxy!r}")
    if not callable(proxy):
        raise TypeError(f"'proxy' must be callable: {proxy!r}")
    wrapper = _Async(proxy)
    _async_proxies_cache[key] = wrapper
    _async_proxies_cache[id(wrapper)] = wrapper
    return wrapper


# ``async`` is a keyword; the old name stays reachable with getattr(helpers, "async")
globals()["async"] = async_


class timed:
    """Timed asynchronous version of a callable proxy: each call returns an
    :class:`~rpyc.core.async_.AsyncResult` that expires after ``timeout`` seconds (reading its
    value then raises :class:`~rpyc.core.async_.AsyncResultTimeout`)."""

    __slots__ = ("__weakref__", "proxy", "timeout")

    def __init__(self, proxy: Any, timeout: Optional[float]) -> None:
        self.proxy = async_(proxy)
        self.timeout = timeout

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        result = self.proxy(*args, **kwargs)
        result.set_expiry(self.timeout)
        return result

    def __repr__(self) -> str:
        return f"timed({self.proxy.proxy!r}, {self.timeout!r})"


# ---------------------------------------------------------------------------------------------
# buffered iteration
# ---------------------------------------------------------------------------------------------


def buffiter(obj: Any, chunk: int = 10, max_chunk: int = 1000, factor: int = 2) -> Iterator[Any]:
    """Iterate over a remote iterable fetching its items in batches (one BUFFITER request per
    batch) instead of one round trip per item. The first batch has ``chunk`` items; each
    following one is ``factor`` times larger, up to ``max_chunk``.

    :raises ValueError: (when iteration starts) if ``factor`` is less than 1
    """
    if factor < 1:
        raise ValueError(f"factor must be >= 1, got {factor!r}")
    syncreq = _netref().syncreq
    iterator = iter(obj)
    count = chunk
    while True:
        batch = syncreq(iterator, HANDLE_BUFFITER, count)
        if not batch:
            return
        count = min(count * factor, max_chunk)
        yield from batch


# ---------------------------------------------------------------------------------------------
# restricted views
# ---------------------------------------------------------------------------------------------


class Restricted:
    """View of an object letting through only some attribute names (see :func:`restricted`).
    Remote access goes through the ``_rpyc_getattr``/``_rpyc_setattr`` hooks, which bypass the
    connection's access policy; local attribute access is filtered the same way."""

    __slots__ = ("_Restricted__obj", "_Restricted__attrs", "_Restricted__wattrs")
    __obj: Any
    __attrs: Collection[str]
    __wattrs: Collection[str]

    def __init__(self, obj: Any, attrs: Collection[str], wattrs: Collection[str]) -> None:
        object.__setattr__(self, "_Restricted__obj", obj)
        object.__setattr__(self, "_Restricted__attrs", attrs)
        object.__setattr__(self, "_Restricted__wattrs", wattrs)

    def _rpyc_getattr(self, name: str) -> Any:
        if name not in self.__attrs:
            raise AttributeError(name)
        return getattr(self.__obj, name)

    def _rpyc_setattr(self, name: str, value: Any) -> None:
        if name not in self.__wattrs:
            raise AttributeError(name)
        setattr(self.__obj, name, value)

    __getattr__ = _rpyc_getattr
    __setattr__ = _rpyc_setattr


def restricted(obj: Any, attrs: Collection[str], wattrs: Optional[Collection[str]] = None) -> Any:
    """Return a view of ``obj`` through which only the names in ``attrs`` can be read and only
    those in ``wattrs`` (by default ``attrs``; pass ``()`` to forbid writes) can be assigned.
    Useful to hand a peer a powerful object (an open file, say) with a limited interface::

        def exposed_open(self, path):
            return rpyc.restricted(open(path), {"read", "close"})
    """
    return Restricted(obj, attrs, attrs if wattrs is None else wattrs)


# ---------------------------------------------------------------------------------------------
# background serving
# ---------------------------------------------------------------------------------------------


class BgServingThread:
    """Serve a connection from a background daemon thread, started on construction.

    The thread repeatedly calls ``conn.serve(serve_interval)`` and sleeps ``sleep_interval``
    seconds (to let other threads take the connection's lock). If serving raises while the
    thread is active, the thread stops and calls ``callback()``, or re-raises the exception
    when there is no callback. :meth:`stop` ends and joins the thread; it cannot be restarted.

    Without ``bind_threads`` there is no guarantee that this thread, rather than another one
    waiting on the connection, handles a given incoming request.
    """

    SERVE_INTERVAL = 0.0
    SLEEP_INTERVAL = 0.1

    def __init__(
        self,
        conn: Any,
        callback: Optional[Callable[[], Any]] = None,
        serve_interval: float = SERVE_INTERVAL,
        sleep_interval: float = SLEEP_INTERVAL,
    ) -> None:
        self._conn = conn
        self._active = True
        self._callback = callback
        self._serve_interval = serve_interval
        self._sleep_interval = sleep_interval
        self._thread = spawn(self._bg_server)

    def __del__(self) -> None:
        if getattr(self, "_active", False):
            self.stop()

    def _bg_server(self) -> None:
        try:
            while self._active:
                self._conn.serve(self._serve_interval)
                time.sleep(self._sleep_interval)
        except Exception:
            if not self._active:
                return  # stopped meanwhile: the error is a consequence of shutting down
            self._active = False
            if self._callback is None:
                raise
            self._callback()

    def stop(self) -> None:
        """Stop the thread and wait for it to end."""
        assert self._active, "the background serving thread is not active"
        self._active = False
        if self._thread is not threading.current_thread():
            self._thread.join()
        self._conn = None


# ---------------------------------------------------------------------------------------------
# service construction
# ---------------------------------------------------------------------------------------------


def classpartial(*args: Any, **kwargs: Any) -> type:
    """``classpartial(cls, *args, **kwargs)``: a subclass of ``cls`` whose instantiation
    (without arguments) returns ``cls(*args, **kwargs)``. Lets a server, which instantiates
    its service class once per connection, build services that need constructor arguments::

        server = ThreadedServer(classpartial(MyService, db_path), port=18861)
    """
    if not args:
        raise TypeError("classpartial() needs the class as its first argument")
    cls, bound_args = args[0], args[1:]

    def __new__(_cls: type) -> Any:
        return cls(*bound_args, **kwargs)

    namespace = {
        "__new__": __new__,
        "__doc__": cls.__doc__,
        "__module__": cls.__module__,
        "__qualname__": getattr(cls, "__qualname__", cls.__name__),
    }
    return type(cls)(cls.__name__, (cls,), namespace)
