"""The connection: the Python face of the native engine (``rpyc._core.Engine``).

The engine owns framing, sequence numbers, boxing, the object table and the receive loop;
this class adds what must stay Python: the request handlers (they call user code), the
attribute policy, proxy creation and the public ``Connection`` API of upstream RPyC 6.
"""

import itertools
import logging
import os
import pickle
import socket
import sys
import threading
import weakref
# (CPython's own helper, which weakref.py uses; typeshed does not declare it)
from _weakref import _remove_dead_weakref  # type: ignore[attr-defined]
from typing import Any, Callable, Dict, FrozenSet, List, Optional, Tuple

from rpyc import _core
from rpyc._core import Work as _Work
from rpyc.core import brine, byvalue, consts, extensions, netref, vinegar  # noqa: F401 (brine: upstream's name)
from rpyc.core import green
from rpyc.core.async_ import AsyncResult, AsyncResultTimeout  # noqa: F401 (re-exported; patched by tests)
from rpyc.lib import Timeout, get_id_pack, get_methods, hasattr_static, spawn  # noqa: F401
from rpyc.lib.colls import RefCountingColl, WeakValueDict  # noqa: F401 (upstream's names)
from rpyc.lib.compat import acquire_lock, execute, maxint, next, select_error  # noqa: F401

__all__ = ["Connection", "DEFAULT_CONFIG", "PingError", "TRAVERSAL_ATTRS", "UNBOUND_THREAD_ID"]

UNBOUND_THREAD_ID = 0


#: Handler ids as ``stats()`` names them (``HANDLE_CALLATTR`` -> ``"callattr"``); -1 is
#: the engine's slot for handlers this side does not know.
_HANDLER_NAMES: Dict[int, str] = {
    value: name[len("HANDLE_"):].lower() for name, value in vars(consts).items() if name.startswith("HANDLE_")
}
_HANDLER_NAMES[-1] = "unknown"


class PingError(Exception):
    """The echo of ``Connection.ping`` did not match what was sent."""


#: Attribute names that lead from an object to what the service never meant to expose: the
#: class and its hierarchy (``__class__``, ``__bases__``, ``__mro__``, ``__subclasses__``...),
#: a function's globals, code, closure and defaults, a method's instance or function
#: (``len.__self__`` is the builtins module), an object's ``__dict__``, the attribute hooks
#: that bypass the policy (``__getattribute__``, ``__setattr__``...), pickling hooks, and the
#: frames of generators, coroutines and tracebacks (``gen.gi_frame.f_globals``: public names,
#: reachable with ``allow_public_attrs``). Refused on every connection whose config does not
#: set ``allow_all_attrs`` (classic connections set it). The config key ``traversal_attrs``
#: holds the set in force; a service may pass a smaller one (or None) to re-admit names.
TRAVERSAL_ATTRS = frozenset(
    """__class__ __bases__ __base__ __mro__ __subclasses__ mro __dict__ __globals__
    __builtins__ __code__ __closure__ __defaults__ __kwdefaults__ __func__ __self__
    __wrapped__ __objclass__ __self_class__ __thisclass__ __getattribute__ __getattr__
    __setattr__ __delattr__ __reduce__ __reduce_ex__ __getstate__ __setstate__
    __init_subclass__ __subclasshook__ __loader__ __spec__ __import__ __traceback__
    gi_frame gi_code gi_yieldfrom cr_frame cr_code cr_await cr_origin ag_frame ag_code
    ag_await f_globals f_locals f_builtins f_back f_code tb_frame tb_next func_globals
    func_code func_closure im_func im_self im_class""".split()
)

DEFAULT_CONFIG: Dict[str, Any] = dict(
    # attribute access policy (docs/protocol.md#attribute-policy)
    allow_safe_attrs=True,
    allow_exposed_attrs=True,
    allow_public_attrs=False,
    allow_all_attrs=False,
    safe_attrs=set(
        """__abs__ __add__ __and__ __bool__ __cmp__ __contains__ __delitem__ __delslice__
        __div__ __divmod__ __doc__ __enter__ __eq__ __exit__ __float__ __floordiv__
        __format__ __ge__ __getitem__ __getslice__ __gt__ __hash__ __hex__ __iadd__ __iand__
        __idiv__ __ifloordiv__ __ilshift__ __imod__ __imul__ __index__ __int__ __invert__
        __ior__ __ipow__ __irshift__ __isub__ __iter__ __itruediv__ __ixor__ __le__ __len__
        __length_hint__ __long__ __lshift__ __lt__ __mod__ __mul__ __ne__ __neg__ __new__
        __next__ __nonzero__ __oct__ __or__ __pos__ __pow__ __radd__ __rand__ __rdiv__
        __rdivmod__ __repr__ __rfloordiv__ __rlshift__ __rmod__ __rmul__ __ror__ __rpow__
        __rrshift__ __rshift__ __rsub__ __rtruediv__ __rxor__ __setitem__ __setslice__
        __str__ __sub__ __truediv__ __xor__ next""".split()
    ),
    exposed_prefix="exposed_",
    # names leading from an object into the interpreter (see TRAVERSAL_ATTRS): refused unless
    # allow_all_attrs, even when safe_attrs or allow_public_attrs would admit them
    traversal_attrs=TRAVERSAL_ATTRS,
    allow_getattr=True,
    allow_setattr=False,
    allow_delattr=False,
    allow_pickle=False,
    # rpyc-rs: negotiate extensions with rpyc-rs peers (rpyc.core.extensions); upstream
    # peers never see them
    rpyc_rs_extensions=True,
    # rpyc-rs: types whose instances always travel by value to an rpyc-rs peer (exact
    # types, e.g. (list, dict) or (numpy.ndarray,)); see docs/by-value.md
    by_value_types=(),
    # exceptions (docs/protocol.md#exceptions-vinegar)
    include_local_traceback=True,
    include_local_version=True,
    instantiate_custom_exceptions=False,
    import_custom_exceptions=False,
    instantiate_oldstyle_exceptions=False,
    propagate_SystemExit_locally=False,
    propagate_KeyboardInterrupt_locally=True,
    log_exceptions=True,
    # connection
    connid=None,
    credentials=None,
    endpoints=None,
    logger=None,
    sync_request_timeout=30,
    before_closed=None,
    close_catchall=False,
    bind_threads=os.environ.get("RPYC_BIND_THREADS", "false").lower() == "true",
    # rpyc-rs limits and tuning (not in upstream; each error names its key), with the
    # defaults of the Rust core (docs/architecture.md#limits):
    #   max_frame_size, max_decompressed_size, max_nesting_depth: per frame;
    #   max_pending_requests: our requests awaiting answers;
    #   max_local_objects: our objects the peer holds references to;
    #   max_inbound_memory: inbound bytes (buffered, inflated) of all connections of the
    #     process, beyond 128 KiB each;
    #   send_stall_timeout: seconds a peer may read nothing while we send (None: forever);
    #   compression_threshold (None: never), compression_level;
    #   busy_poll_us: µs a read polls a socket before it sleeps (0: never)
    **_core.config_defaults(),
)


_connection_ids = itertools.count(1)
_log = logging.getLogger("rpyc")


class _LocalObjects:
    """Read-only view of the engine's object table (``len``, ``in``, ``keys``)."""

    __slots__ = ("_conn",)

    def __init__(self, conn: "Connection") -> None:
        self._conn = conn

    def __len__(self) -> int:
        return self._conn._local_objects_len()

    def keys(self) -> List[Tuple[int, int]]:
        return self._conn._local_object_keys()

    def __repr__(self) -> str:
        return f"<local objects of {self._conn!r}: {len(self)}>"


_getattribute = object.__getattribute__
_setattr = object.__setattr__


def _proxy_forgetter(cache: Dict[Any, Any]) -> Callable[[Any], None]:
    """The callback that drops a dead proxy's entry (and only a dead one: a new proxy may
    have taken the id_pack meanwhile). It holds the cache, not the connection."""

    def forget(ref: Any, _remove: Callable[[Dict[Any, Any], Any], None] = _remove_dead_weakref) -> None:
        _remove(cache, ref.key)

    return forget


class Connection(_core.Engine):
    """An RPyC connection: serves ``root`` (the local service) to the peer and gives access to
    the peer's root through :attr:`root`."""

    _HANDLERS: Dict[int, Callable[..., Any]]  # (set below the class: _request_handlers())
    # Attributes only some connections get (declared for type checkers; no class attributes):
    # the classic ones (MasterService._install, on rpyc.classic.connect*'s connections) and
    # the child process of connect_subproc / connect_multiprocess.
    modules: Any
    builtins: Any
    builtin: Any
    eval: Callable[..., Any]
    execute: Callable[..., Any]
    namespace: Any
    teleport: Callable[..., Any]
    proc: Any

    def __new__(cls, *args: Any, **kwargs: Any) -> "Connection":
        # Over a gevent socket the connection is driven greenlet-friendly (rpyc.core.green).
        # (Subclasses may take other arguments: the channel is the second, if any.)
        channel = args[1] if len(args) > 1 else kwargs.get("channel")
        if green.is_green_stream(getattr(channel, "stream", None)):
            cls = green.connection_class(cls)
        return super().__new__(cls, *args, **kwargs)

    def __init__(self, root: Any, channel: Any, config: Dict[str, Any] = {}) -> None:
        self._closed = True
        self._cleaned_up = False
        self._config = DEFAULT_CONFIG.copy()
        self._config.update(config)
        if self._config["connid"] is None:
            self._config["connid"] = f"conn{next(_connection_ids)}"
        self._channel = channel
        self._local_root = root
        self._remote_root: Any = None
        # id_pack -> KeyedRef of the live proxy (a plain dict: WeakValueDictionary's Python
        # methods cost more than the rest of receiving a reference)
        self._proxy_cache: Dict[Any, Any] = {}
        self._proxy_gone = _proxy_forgetter(self._proxy_cache)
        self._netref_classes_cache: Dict[Any, type] = {}
        self._last_traceback: Any = None
        # Kept for code that inspects it; the engine has its own receive ownership.
        self._recvlock = threading.RLock()
        self._closed_lock = threading.Lock()
        self._peer_features: FrozenSet[str] = frozenset()  # set by rpyc.core.extensions
        self._iter_errors: Dict[int, Any] = {}
        stream = channel.stream
        offer = getattr(stream, "native_transport", None)
        native = offer() if offer is not None else None
        self._engine_start(stream, self._config, native, bool(channel.compress))
        self._closed = False
        self._init_service()

    def _init_service(self) -> None:
        self._local_root.on_connect(self)

    def __repr__(self) -> str:
        cls = type(self)
        return f"<{cls.__module__}.{cls.__qualname__} {self._config['connid']!r} object at 0x{id(self):08x}>"

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once closed, or once the connection ended (the peer closed it, or it was
        dropped for an I/O or protocol error)."""
        return self._closed or self._engine_dead

    def close(self) -> None:
        """Tell the peer we close (``HANDLE_CLOSE``), then tear down and call the local
        service's ``on_disconnect``."""
        with self._closed_lock:
            if self._closed:
                return
            self._closed = True
        try:
            before = self._config.get("before_closed")
            if before is not None:
                before(self.root)
            try:
                self._sync(consts.HANDLE_CLOSE, ())
            except (EOFError, TimeoutError, _core.ProtocolError):
                # A peer that sends garbage instead of closing is closed on anyway.
                pass
            except RuntimeError:
                # max_pending_requests reached (a peer that does not answer): tell it
                # anyway, without waiting for the end of the connection.
                self._async_request(consts.HANDLE_CLOSE, ())
        except Exception:
            if not self._config["close_catchall"]:
                raise
        finally:
            self._cleanup()

    def _cleanup(self) -> None:
        if self._cleaned_up:
            return
        self._cleaned_up = True
        self._closed = True
        self._engine_close()
        try:
            self._channel.close()
        except Exception:
            pass
        self._proxy_cache.clear()
        self._netref_classes_cache.clear()
        self._iter_errors.clear()
        self._remote_root = None
        self._notify_disconnect()

    def _notify_disconnect(self) -> None:
        self._local_root.on_disconnect(self)

    def _handle_close_request(self) -> None:
        with self._closed_lock:
            self._closed = True
        self._cleanup()

    def fileno(self) -> int:
        return self._channel.fileno()

    # -- serving -------------------------------------------------------------------------

    def serve(self, timeout: Any = 1, wait_for_lock: bool = True,
              waiting: Optional[Callable[[], bool]] = None) -> bool:
        """Serve one incoming frame if one arrives within ``timeout`` seconds (``None``
        waits forever); True if one was served. When another thread is reading, wait for it
        to make progress (``wait_for_lock``); ``waiting()`` returning False means the caller
        no longer needs to wait."""
        res = self._serve(timeout, wait_for_lock, waiting)
        if type(res) is _Work:
            self._run_work(res)
            return True
        return res

    def _run_work(self, work: Any) -> None:
        """Run what the engine handed back: serve a request, or deliver an async answer.
        (User code never runs inside native frames; see ``rpyc._core.Work``.)"""
        if not work.is_request:
            try:
                work.callback(work.is_exc, work.obj)
            finally:
                self._release_reader()  # the engine handed over its reader role with it
            return
        handler = work.handler
        if handler == consts.HANDLE_CLOSE:
            # Upstream never answers CLOSE: the requester sees EOF, which ends its wait.
            self._handle_close_request()
            return
        try:
            args = work.begin()  # raises what unboxing the arguments raised
            func = self._HANDLERS.get(handler)
            if func is None:
                raise KeyError(handler)
            result = func(self, *args)
        except BaseException as exc:
            config = self._config
            if (isinstance(exc, KeyboardInterrupt) and config["propagate_KeyboardInterrupt_locally"]) or (
                isinstance(exc, SystemExit) and config["propagate_SystemExit_locally"]
            ):
                work.leave()
                raise
            self._reply_exception(work, exc)  # (replying ends the work's serving mark)
        else:
            self._reply(work, result)

    def _sync(self, handler: int, args: Tuple[Any, ...]) -> Any:
        """Send a request and wait for its answer, serving what arrives meanwhile."""
        res = self._sync_request(handler, args)
        while type(res) is _Work:
            res = self._finish_work(res)
        return res

    def _finish_work(self, work: Any) -> Any:
        self._run_work(work)
        return self._wait_reply(work.resume)

    def _dispatch(self, data: bytes) -> None:
        """Process one message payload (``msg_type`` byte + brine of ``(seq, body)``,
        decompressed, without a thread prefix) as if it had just been received: a reply
        reaches its waiter, a request is served and answered. Received frames do not pass
        through here (the engine processes them natively); upstream's tests patch it."""
        work = self._engine_dispatch(data)
        if work is not None:
            self._run_work(work)

    def poll(self, timeout: Any = 0) -> bool:
        """Serve one frame if it arrives within ``timeout`` seconds; never blocks on
        another thread that is reading."""
        return self.serve(Timeout(timeout).timeleft(), False)

    def poll_all(self, timeout: Any = 0) -> bool:
        """Serve every frame that arrives within ``timeout`` seconds (frames already
        received are all served, even with ``timeout=0``); True if any was served."""
        served = False
        deadline = Timeout(timeout)
        try:
            while True:
                # Waits for another reading thread's progress rather than spinning.
                if self.serve(deadline.timeleft(), True):
                    served = True
                elif deadline.expired():
                    break
        except EOFError:
            pass
        return served

    def serve_all(self) -> None:
        """Serve requests until the peer disconnects, then close."""
        try:
            self._serve_until_closed()
        except (_core.TruncatedFrame, _core.SendStalled) as exc:
            self._logger().error("%s: %s", self._config["connid"], exc)
        except EOFError:
            pass
        except _core.ProtocolError as exc:
            self._logger().error("%s: closing after a protocol error: %s", self._config["connid"], exc)
        except (OSError, socket.error):
            if not self._closed:
                raise
        finally:
            self.close()

    def _serve_until_closed(self) -> None:
        while not self._closed:
            work = self._serve(None, True, None)  # (serve() inlined: the hot loop)
            if type(work) is _Work:
                self._run_work(work)

    def serve_threaded(self, thread_count: int = 10) -> None:
        """Serve with ``thread_count`` threads until the peer disconnects."""

        def worker() -> None:
            try:
                while not self._closed:
                    self.serve(None)
            except EOFError:
                pass

        threads = [spawn(worker) for _ in range(thread_count)]
        try:
            for t in threads:
                t.join()
        finally:
            self.close()

    def _logger(self) -> logging.Logger:
        return self._config.get("logger") or _log

    # -- requests ------------------------------------------------------------------------

    def sync_request(self, handler: int, *args: Any) -> Any:
        """Send a request and wait (``sync_request_timeout``) for its answer."""
        return self._sync(handler, args)

    def async_request(self, handler: int, *args: Any, timeout: Optional[float] = None) -> Any:
        """Send a request and return an ``AsyncResult`` for its answer."""
        res = AsyncResult(self)
        self._async_request(handler, args, res)
        if timeout is not None:
            res.set_expiry(timeout)
        return res

    @property
    def root(self) -> Any:
        """The peer's root object (its service), fetched once."""
        if self._remote_root is None:
            self._remote_root = self._sync(consts.HANDLE_GETROOT, ())
        return self._remote_root

    def ping(self, data: Any = None, timeout: float = 3) -> None:
        """Round-trip ``data`` through the peer; ``PingError`` if it comes back different."""
        if data is None:
            data = "abcdefghijklmnopqrstuvwxyz" * 20
        res = self.async_request(consts.HANDLE_PING, data, timeout=timeout)
        if res.value != data:
            raise PingError("echo mismatches sent data")

    def stats(self) -> Dict[str, Any]:
        """This connection's counters, a plain dict (every key: docs/metrics.md): calls and
        releases made and served, errors, bytes and frames in and out, compressed frames,
        requests in flight, objects held for the peer (``objects_held``) and proxies held
        of the peer's (``proxies``), and ``latency``: per handler name, the served
        requests' ``count``, ``sum`` (seconds) and cumulative ``buckets`` of
        ``(upper bound in seconds, count)``. Counting is in the engine; this only reads it.
        The counters stay readable after the connection closed."""
        stats: Dict[str, Any] = self._engine_stats()
        stats["latency"] = {_HANDLER_NAMES.get(h, str(h)): v for h, v in stats["latency"].items()}
        stats["proxies"] = len(self._proxy_cache)
        return stats

    @property
    def _local_objects(self) -> _LocalObjects:
        return _LocalObjects(self)

    # -- called by the engine -------------------------------------------------------------

    def _netref_factory(self, id_pack: Tuple[str, int, int]) -> Any:
        """The proxy for a reference the peer sent (reused while alive; counts receipts)."""
        ref = self._proxy_cache.get(id_pack)
        if ref is not None:
            proxy = ref()
            if proxy is not None:
                _setattr(proxy, "____refcount__", _getattribute(proxy, "____refcount__") + 1)
                return proxy
        proxy = self._netref_class(id_pack)(self, id_pack)
        self._proxy_cache[id_pack] = weakref.KeyedRef(proxy, self._proxy_gone, id_pack)
        return proxy

    def _netref_class(self, id_pack: Tuple[str, int, int]) -> type:
        name, class_id, instance_id = id_pack
        # Proxy classes depend only on the remote class: cache per class (instances too,
        # which upstream re-inspects every time).
        key = id_pack if instance_id == 0 else (name, class_id)
        cls = self._netref_classes_cache.get(key)
        if cls is not None:
            return cls
        cls = netref.builtin_classes_cache.get(name)
        if cls is not None:
            return cls
        methods = self._sync(consts.HANDLE_INSPECT, (id_pack,))
        cls = netref.shared_class_factory(id_pack, methods)
        self._netref_classes_cache[key] = cls
        return cls

    def _unpack_exception(self, raw: Any) -> BaseException:
        cfg = self._config
        return vinegar.load(
            raw,
            import_custom_exceptions=cfg["import_custom_exceptions"],
            instantiate_custom_exceptions=cfg["instantiate_custom_exceptions"],
            instantiate_oldstyle_exceptions=cfg["instantiate_oldstyle_exceptions"],
        )

    def _dump_exception(self, exc: BaseException) -> Any:
        typ, tb = type(exc), exc.__traceback__
        self._last_traceback = tb
        logger = self._config["logger"]
        if logger is not None and typ is not StopIteration:
            logger.debug("Exception caught", exc_info=(typ, exc, tb))
        cfg = self._config
        return vinegar.dump(
            typ, exc, tb,
            include_local_traceback=cfg["include_local_traceback"],
            include_local_version=cfg["include_local_version"],
        )

    # -- attribute policy (docs/protocol.md#attribute-policy) -----------------------------

    def _check_attr(self, obj: Any, name: str, perm: str) -> str:
        config = self._config
        if not config[perm]:
            raise AttributeError(f"cannot access {name!r}: config {perm} is off")
        if not config["allow_all_attrs"] and name in (config["traversal_attrs"] or ()):
            raise AttributeError(
                f"cannot access {name!r}: object traversal attributes are refused on service "
                f"connections (config allow_all_attrs=True allows them, as classic connections "
                f"do; or leave {name!r} out of config traversal_attrs)"
            )
        prefix = config["allow_exposed_attrs"] and config["exposed_prefix"]
        plain = (
            config["allow_all_attrs"]
            or (prefix and name.startswith(prefix))
            or (config["allow_safe_attrs"] and name in config["safe_attrs"])
            or (config["allow_public_attrs"] and not name.startswith("_"))
        )
        has_exposed = bool(prefix) and (
            hasattr(obj, prefix + name) or hasattr_static(obj, prefix + name)
        )
        if plain and (not has_exposed or hasattr(obj, name)):
            return name
        if has_exposed:
            return prefix + name
        if plain:
            return name
        raise AttributeError(f"cannot access {name!r}")

    def _access_attr(self, obj: Any, name: Any, args: Tuple[Any, ...], overrider: str,
                     perm: str, default: Callable[..., Any]) -> Any:
        if type(name) is bytes:
            name = name.decode("utf-8")
        elif type(name) is not str:
            raise TypeError("name must be a string")
        accessor = _core.class_attr(type(obj), overrider)  # getattr(..., None) minus the exception
        if accessor is None:
            accessor = default
            name = self._check_attr(obj, name, perm)
        return accessor(obj, name, *args)

    # -- request handlers (docs/protocol.md#handler-table) --------------------------------

    def _handle_ping(self, data: Any) -> Any:
        if self._config["rpyc_rs_extensions"] and extensions.may_be_hello(data):
            answer = extensions.answer_hello(self, data)
            if answer is not None:
                return answer
        return data

    def _handle_iter_batch(self, obj: Any, count: Any) -> Any:
        return extensions.serve_iter_batch(self, obj, count)

    def _handle_cancel(self, seq: Any) -> None:
        # A blocking server cannot interrupt a handler that already runs (rpyc.aio servers
        # cancel its task); the late answer is dropped by the requester.
        pass

    def _handle_getroot(self) -> Any:
        return self._local_root

    def _handle_getattr(self, obj: Any, name: Any) -> Any:
        return self._access_attr(obj, name, (), "_rpyc_getattr", "allow_getattr", getattr)

    def _handle_delattr(self, obj: Any, name: Any) -> None:
        self._access_attr(obj, name, (), "_rpyc_delattr", "allow_delattr", delattr)

    def _handle_setattr(self, obj: Any, name: Any, value: Any) -> None:
        self._access_attr(obj, name, (value,), "_rpyc_setattr", "allow_setattr", setattr)

    def _handle_call(self, obj: Any, args: Any, kwargs: Any = ()) -> Any:
        # (most calls have no keyword arguments: skip building an empty dict)
        res = obj(*args, **dict(kwargs)) if kwargs else obj(*args)
        # (@rpyc.returns_by_value; checked only once something was decorated)
        return byvalue.wants_by_value(obj, res) if byvalue.MARKED else res

    def _handle_callattr(self, obj: Any, name: Any, args: Any, kwargs: Any = ()) -> Any:
        method = self._handle_getattr(obj, name)
        res = method(*args, **dict(kwargs)) if kwargs else method(*args)
        return byvalue.wants_by_value(method, res) if byvalue.MARKED else res

    def _handle_obtain(self, obj: Any) -> Any:
        # rpyc-rs by_value: the object as a copy, or ByValueError if it is not data
        return byvalue.ByValue(obj, strict=True)

    def _handle_repr(self, obj: Any) -> str:
        return repr(obj)

    def _handle_str(self, obj: Any) -> str:
        return str(obj)

    def _handle_cmp(self, obj: Any, other: Any, op: str = "__cmp__") -> Any:
        # The operator is looked up on the type, through the policy, as Python itself does.
        method = self._access_attr(type(obj), op, (), "_rpyc_getattr", "allow_getattr", getattr)
        return method(obj, other)

    def _handle_hash(self, obj: Any) -> int:
        return hash(obj)

    def _handle_dir(self, obj: Any) -> Tuple[str, ...]:
        return tuple(dir(obj))

    def _handle_pickle(self, obj: Any, proto: int) -> bytes:
        if not self._config["allow_pickle"]:
            raise ValueError("pickling is disabled")
        return bytes(pickle.dumps(obj, proto))

    def _handle_del(self, obj: Any, count: int = 1) -> None:
        self._decref_local(obj, count)

    def _handle_inspect(self, id_pack: Any) -> Tuple[Tuple[str, Optional[str]], ...]:
        obj = self._local_object(id_pack)
        if isinstance(obj, netref.BaseNetref):
            # A proxy we re-exported: its owner knows its methods (INSPECT takes a bare id_pack).
            return obj.____conn__._sync(consts.HANDLE_INSPECT, (obj.____id_pack__,))
        return get_methods(netref.LOCAL_ATTRS, obj)

    def _handle_buffiter(self, obj: Any, count: int) -> Tuple[Any, ...]:
        return tuple(itertools.islice(obj, count))

    def _handle_oldslicing(self, obj: Any, attempt: str, fallback: str, start: Any,
                           stop: Any, args: Tuple[Any, ...]) -> Any:
        try:
            getter = self._handle_getattr(obj, attempt)
            return getter(slice(start, stop), *args)
        except Exception:
            getter = self._handle_getattr(obj, fallback)
            return getter(start, sys.maxsize if stop is None else stop, *args)

    def _handle_ctxexit(self, obj: Any, exc: Any) -> Any:
        if exc:
            try:
                raise exc
            except BaseException:
                typ, val, tb = sys.exc_info()
        else:
            typ = val = tb = None
        return self._handle_getattr(obj, "__exit__")(typ, val, tb)

    def _handle_instancecheck(self, obj: Any, other_id_pack: Any) -> bool:
        if isinstance(obj, netref.BaseNetref):
            return bool(netref.syncreq(obj, consts.HANDLE_INSTANCECHECK, other_id_pack))
        # As upstream: only proxy classes we already know (builtins, or remote classes we hold
        # proxies of) can answer; the answer is what isinstance() would say of such a proxy.
        # No throw-away proxy is built (it would send a DEL for a reference never received).
        name, class_id, instance_id = other_id_pack
        cls = netref.builtin_classes_cache.get(name)
        if cls is None:
            cls = self._netref_classes_cache.get((name, class_id, 0))
        if cls is None or not isinstance(obj, type):
            return False
        descriptor = cls.__dict__.get("__class__")
        if isinstance(descriptor, netref.NetrefClass):
            reported = descriptor.instance if instance_id != 0 else descriptor.owner
            if issubclass(reported, obj):
                return True
        return issubclass(cls, obj)

    def _local_object(self, id_pack: Any) -> Any:
        try:
            _, class_id, instance_id = id_pack
            return self._local_object_by_key(int(class_id), int(instance_id))
        except (TypeError, ValueError, OverflowError):
            raise KeyError(id_pack) from None

    @classmethod
    def _request_handlers(cls) -> Dict[int, Callable[..., Any]]:
        return {
            consts.HANDLE_PING: cls._handle_ping,
            consts.HANDLE_GETROOT: cls._handle_getroot,
            consts.HANDLE_GETATTR: cls._handle_getattr,
            consts.HANDLE_DELATTR: cls._handle_delattr,
            consts.HANDLE_SETATTR: cls._handle_setattr,
            consts.HANDLE_CALL: cls._handle_call,
            consts.HANDLE_CALLATTR: cls._handle_callattr,
            consts.HANDLE_REPR: cls._handle_repr,
            consts.HANDLE_STR: cls._handle_str,
            consts.HANDLE_CMP: cls._handle_cmp,
            consts.HANDLE_HASH: cls._handle_hash,
            consts.HANDLE_DIR: cls._handle_dir,
            consts.HANDLE_PICKLE: cls._handle_pickle,
            consts.HANDLE_DEL: cls._handle_del,
            consts.HANDLE_INSPECT: cls._handle_inspect,
            consts.HANDLE_BUFFITER: cls._handle_buffiter,
            consts.HANDLE_OLDSLICING: cls._handle_oldslicing,
            consts.HANDLE_CTXEXIT: cls._handle_ctxexit,
            consts.HANDLE_INSTANCECHECK: cls._handle_instancecheck,
            consts.HANDLE_ITER_BATCH: cls._handle_iter_batch,
            consts.HANDLE_CANCEL: cls._handle_cancel,
            consts.HANDLE_OBTAIN: cls._handle_obtain,
        }


Connection._HANDLERS = Connection._request_handlers()
