"""Assorted helpers shared by the rest of the package: threads, logging, timeouts, socket
back-off, and the two introspection functions the protocol relies on (:func:`get_id_pack` and
:func:`get_methods`)."""

import importlib
import inspect
import logging
import operator
import random
import socket
import sys
import threading
import time
import types
from typing import Any, Callable, Dict, Iterable, Optional, Tuple, TypeVar, Union

from rpyc import _core
from rpyc.lib.compat import maxint  # noqa: F401  (re-exported)

__all__ = [
    "SPAWN_THREAD_PREFIX",
    "maxint",
    "MissingModule",
    "safe_import",
    "setup_logger",
    "hybridmethod",
    "hasattr_static",
    "spawn",
    "spawn_waitready",
    "Timeout",
    "socket_backoff_connect",
    "exp_backoff",
    "get_id_pack",
    "get_methods",
]

SPAWN_THREAD_PREFIX = "RpycSpawnThread"

IdPack = Tuple[str, int, int]
_T = TypeVar("_T")


class MissingModule:
    """Placeholder returned by :func:`safe_import` for a module that cannot be imported.

    It is falsy; reading any attribute raises :class:`ImportError` (dunder names raise
    :class:`AttributeError` instead, so that ``hasattr``/``copy``/``pickle`` probes behave).
    """

    __slots__ = ("__name",)

    def __init__(self, name: str) -> None:
        self.__name = name

    def __getattr__(self, attr: str) -> Any:
        message = f"module {self.__name!r} not found"
        if attr.startswith("__"):
            raise AttributeError(message)
        raise ImportError(message)

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"<MissingModule {self.__name!r}>"


def safe_import(name: str) -> Any:
    """Import and return the module ``name``; if that fails with :class:`ImportError`,
    return a :class:`MissingModule` standing in for it."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return MissingModule(name)


def setup_logger(
    quiet: bool = False, logfile: Optional[str] = None, namespace: Optional[str] = None
) -> logging.Logger:
    """Configure the root logger (``logging.basicConfig``) and return the ``rpyc`` logger
    (``rpyc.<namespace>`` when ``namespace`` is given).

    ``quiet`` only lets errors through; otherwise everything down to DEBUG is shown, with
    the logger and thread names. ``logfile`` sends the output to that file.
    """
    if quiet:
        level = logging.ERROR
        fmt = "%(asctime)s %(levelname)s: %(message)s"
    else:
        level = logging.DEBUG
        fmt = "%(asctime)s %(levelname)s %(name)s[%(threadName)s]: %(message)s"
    options: Dict[str, Any] = {"level": level, "format": fmt, "datefmt": "%b %d %H:%M:%S"}
    if logfile:
        options["filename"] = logfile
    logging.basicConfig(**options)
    return logging.getLogger("rpyc" if namespace is None else f"rpyc.{namespace}")


class hybridmethod:
    """Method decorator: accessed on an instance the function is bound to the instance, accessed
    on the class it is bound to the class (like a classmethod). The attribute cannot be
    overwritten on instances."""

    def __init__(self, func: Callable[..., Any]) -> None:
        self.func = func

    def __get__(self, obj: Any, cls: Optional[type] = None) -> Any:
        return types.MethodType(self.func, cls if obj is None else obj)

    def __set__(self, obj: Any, value: Any) -> None:
        raise AttributeError("Cannot overwrite method")


def hasattr_static(obj: Any, attr: str) -> bool:
    """Whether ``inspect.getattr_static`` finds ``attr`` on ``obj`` (no code is run): in
    its instance ``__dict__`` or its class's MRO (for a class, its own MRO and its
    metaclass's). Answered natively, without raising an exception for a missing name."""
    if type(attr) is not str:
        raise TypeError(f"attribute name must be string, not {type(attr).__name__!r}")
    return _core.has_static_attr(obj, attr)


def spawn(*args: Any, **kwargs: Any) -> threading.Thread:
    """``spawn(func, *args, **kwargs)``: run ``func(*args, **kwargs)`` in a new daemon thread,
    already started, and return the thread. The thread is named after the function's id_pack,
    prefixed with :data:`SPAWN_THREAD_PREFIX`."""
    if not args:
        raise TypeError("spawn() needs the function to run as its first argument")
    func, func_args = args[0], args[1:]
    label = "-".join(str(part) for part in get_id_pack(func))
    thread = threading.Thread(
        name=f"{SPAWN_THREAD_PREFIX}-{label}", target=func, args=func_args, kwargs=kwargs
    )
    thread.daemon = True
    thread.start()
    return thread


def spawn_waitready(init: Callable[[], _T], main: Callable[[], Any]) -> Tuple[threading.Thread, _T]:
    """Start a daemon thread that runs ``init()`` and then ``main()``; return
    ``(thread, result of init())`` as soon as ``init`` has finished. If ``init`` raises, the
    thread ends without running ``main`` and the exception is re-raised here."""
    ready = threading.Event()
    outcome: Dict[str, Any] = {}

    def runner() -> Any:
        try:
            outcome["value"] = init()
        except BaseException as exc:  # handed over to the waiting caller
            outcome["error"] = exc
            return None
        finally:
            ready.set()
        return main()

    thread = spawn(runner)
    ready.wait()
    if "error" in outcome:
        error = outcome.pop("error")
        try:
            raise error
        finally:
            del error
    return thread, outcome.pop("value")


class Timeout:
    """A deadline. ``Timeout(seconds)``; ``None`` or a negative number means "never expires".
    Passing another :class:`Timeout` copies its deadline."""

    finite: bool
    tmax: Optional[float]

    def __init__(self, timeout: Union[None, float, "Timeout"]) -> None:
        if isinstance(timeout, Timeout):
            self.finite = timeout.finite
            self.tmax = timeout.tmax
        elif timeout is not None and timeout >= 0:
            self.finite = True
            self.tmax = time.monotonic() + timeout
        else:
            self.finite = False
            self.tmax = None

    def expired(self) -> bool:
        """Whether the deadline has passed (never, for an infinite timeout)."""
        return self.finite and time.monotonic() >= self.tmax  # type: ignore[operator]

    def timeleft(self) -> Optional[float]:
        """Seconds until the deadline (at least 0), or ``None`` for an infinite timeout."""
        if not self.finite:
            return None
        return max(0.0, self.tmax - time.monotonic())  # type: ignore[operator]

    def sleep(self, interval: float) -> None:
        """Sleep ``interval`` seconds, but not beyond the deadline."""
        left = self.timeleft()
        time.sleep(interval if left is None else min(interval, left))

    def __repr__(self) -> str:
        left = self.timeleft()
        state = "infinite" if left is None else f"{left:.3f}s left"
        return f"<Timeout {state}>"


def exp_backoff(collision: int) -> float:
    """Randomized exponential back-off delay (seconds) after the ``collision``-th failed
    attempt: uniform in ``[0, 2**n - c)`` slot times of 51.2 µs, with ``n = min(collision,
    10)`` and ``c = 1`` once ``n > 3``."""
    n = min(collision, 10)
    upper = 2**n - (1 if n > 3 else 0)
    return random.uniform(0, upper) * 51.2e-6


def socket_backoff_connect(
    family: int, socktype: int, proto: int, addr: Any, timeout: Optional[float], attempts: int
) -> socket.socket:
    """Create a socket and connect it to ``addr``. A connection attempt that times out is
    retried on a fresh socket after an :func:`exp_backoff` delay, up to ``attempts`` attempts
    in all (``attempts < 1`` means a single attempt); the last timeout is raised. The returned
    socket keeps ``timeout`` as its timeout."""
    attempt = 0
    while True:
        attempt += 1
        sock = socket.socket(family, socktype, proto)
        try:
            sock.settimeout(timeout)
            sock.connect(addr)
            return sock
        except socket.timeout:
            sock.close()
            if attempts < 1 or attempt >= attempts:
                raise
        except BaseException:
            sock.close()
            raise
        time.sleep(exp_backoff(attempt))


# ---------------------------------------------------------------------------------------------
# introspection used by the protocol
# ---------------------------------------------------------------------------------------------

_netref_base: Optional[type] = None


def _netref_class() -> Optional[type]:
    """``rpyc.core.netref.BaseNetref`` once that module has been loaded, else ``None``.

    It is looked up rather than imported (the netref module imports this one): as long as the
    netref module is not loaded, no proxy can exist either.
    """
    global _netref_base
    if _netref_base is None:
        module = sys.modules.get("rpyc.core.netref")
        base = getattr(module, "BaseNetref", None)
        if not isinstance(base, type):
            return None
        _netref_base = base
    return _netref_base


def get_id_pack(obj: Any) -> IdPack:
    """Return the id_pack ``(name_pack, class_id, instance_id)`` identifying ``obj`` on the
    wire (docs/protocol.md#id_pack).

    * a proxy: its own ``____id_pack__`` (whatever connection it belongs to);
    * a module: its ``__name__`` if that is a key of ``sys.modules``, else
      ``"<module type's module>.<name>"``; ``id(type(m))``; ``id(m)``;
    * a class: ``"<module>.<name>"``; ``id(cls)``; ``0``;
    * anything else: ``"<module>.<name>"`` of ``obj.__class__``; ``id(type(obj))``; ``id(obj)``.
    """
    base = _netref_class()
    if base is not None and isinstance(obj, base):
        return object.__getattribute__(obj, "____id_pack__")
    # The very computation the engine uses when it sends ``obj`` by reference.
    return _core.local_id_pack(obj)


def _safe_getdoc(value: Any) -> Optional[str]:
    try:
        doc = inspect.getdoc(value)
    except Exception:
        return None
    return doc if isinstance(doc, str) else None


def get_methods(obj_attrs: Iterable[str], obj: Any) -> Tuple[Tuple[str, Optional[str]], ...]:
    """Describe the methods of a local object, for the INSPECT request (docs/protocol.md#inspect-answers).

    The ``__dict__`` of every class in the reversed MRO of ``type(obj)`` is merged (for a class
    object, the metaclass MRO comes first and the class's own MRO after it, so that class
    attributes win). Every merged name that is not in ``obj_attrs`` (the proxy-local names)
    and whose value is a routine is returned as ``(name, cleaned docstring or None)``, in
    merge order (the order in which each name was first seen).

    Results are cached per class while the merged attributes stay the very same objects
    (a class edited afterwards is described afresh); a docstring reassigned on an existing
    function is not noticed.
    """
    excluded = obj_attrs if isinstance(obj_attrs, (set, frozenset, dict)) else set(obj_attrs)
    classes = list(reversed(type(obj).__mro__))
    is_class = isinstance(obj, type)
    if is_class:
        classes.extend(reversed(obj.__mro__))
    merged: Dict[str, Any] = {}
    for klass in classes:
        merged.update(vars(klass))
    key = _methods_cache_key(obj_attrs, obj, is_class)
    if key is not None:
        cached = _methods_cache.get(key)
        if cached is not None and _same_attributes(cached[0], merged):
            return cached[1]
    methods = tuple(
        (name, _safe_getdoc(value))
        for name, value in merged.items()
        if name not in excluded and inspect.isroutine(value)
    )
    if key is not None:
        if len(_methods_cache) >= _METHODS_CACHE_SIZE:
            _methods_cache.clear()  # bounded: classes made on the fly must not pile up
        _methods_cache[key] = ((tuple(merged), tuple(merged.values())), methods)
    return methods


# INSPECT is answered for every new proxy class a peer meets (a service root on every
# connection), and describing a class costs tens of microseconds of inspect.getdoc.
_METHODS_CACHE_SIZE = 512
_methods_cache: Dict[Any, Any] = {}


def _methods_cache_key(obj_attrs: Any, obj: Any, is_class: bool) -> Any:
    if not isinstance(obj_attrs, frozenset):
        return None
    key = (type(obj), obj if is_class else None, obj_attrs)
    try:
        hash(key)
    except TypeError:  # a class whose metaclass makes it unhashable
        return None
    return key


def _same_attributes(snapshot: Tuple[Tuple[str, ...], Tuple[Any, ...]], merged: Dict[str, Any]) -> bool:
    names, values = snapshot
    return len(names) == len(merged) and names == tuple(merged) and all(map(operator.is_, values, merged.values()))