"""The asyncio driver of the connection engine (docs/asyncio.md).

The engine (``rpyc._core.Engine``, shared with the blocking connections) keeps the protocol
state; here an ``asyncio.Protocol`` pushes the bytes that arrive into it (``_feed``), runs
the work that complete frames ask for (``_drain``), and writes what the engine sends to the
transport. Nothing in this module waits on a socket: answers resolve futures, requests of
the peer run as tasks (``async def`` handlers), inline (builtins, ``@rpyc.aio.inline``), or
on an executor thread (other plain ``def`` handlers).
"""

import asyncio
import concurrent.futures
import functools
import inspect
import math
import sys
import threading
import types
from typing import Any, Callable, Dict, List, NoReturn, Optional, Set, Tuple

from rpyc import _core
from rpyc.core import byvalue, consts, extensions, netref
from rpyc.core import protocol
from rpyc.core.async_ import AsyncResultTimeout

from rpyc.aio._netref import AsyncNetref, RemoteOp, RootOf
from rpyc.aio._transport import LoopChannel, LoopStream

__all__ = ["Connection", "inline"]

# Why `_drain` stopped.
_NEED_BYTES, _HEAVY, _BUDGET = 0, 1, 2
# How long to wait before offering bytes again when the inbound memory budget is full.
_BUDGET_RETRY = 0.005
_BUDGET_GIVE_UP = 2.0

# Callables run on the loop even though they are not coroutine functions: C code that
# cannot block on anything (list.append, dict.get, len...).
_BUILTIN_CALLABLES = (
    types.BuiltinFunctionType,
    types.BuiltinMethodType,
    types.MethodWrapperType,
    types.WrapperDescriptorType,
    types.MethodDescriptorType,
    types.ClassMethodDescriptorType,
)

_INLINE_MARK = "_rpyc_aio_inline"


_FRAME_WORKERS: Optional[concurrent.futures.ThreadPoolExecutor] = None
_FRAME_WORKERS_LOCK = threading.Lock()


def _frame_workers() -> concurrent.futures.ThreadPoolExecutor:
    """The threads that process heavy frames (inflating, decoding megabytes), apart from the
    executor of plain ``def`` handlers: a peer sending zlib bombs must not delay them."""
    global _FRAME_WORKERS
    with _FRAME_WORKERS_LOCK:
        if _FRAME_WORKERS is None:
            _FRAME_WORKERS = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="rpyc-aio-frames")
        return _FRAME_WORKERS


def inline(func: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a plain ``def`` exposed method as quick and non-blocking: ``rpyc.aio`` servers
    then call it on the event loop instead of an executor thread."""
    setattr(func, _INLINE_MARK, True)
    return func


class _Reply:
    """Receives the answer to one request and resolves its future."""

    __slots__ = ("conn", "future", "seq", "deadline", "__weakref__")

    def __init__(self, conn: "Connection", future: "asyncio.Future[Any]", deadline: float) -> None:
        self.conn = conn
        self.future = future
        self.seq = -1
        self.deadline = deadline  # on the loop's clock; math.inf: no timeout

    def __call__(self, is_exc: bool, obj: Any) -> None:
        self.conn._pending.pop(self.seq, None)
        fut = self.future
        if fut.done():
            return
        if is_exc:
            if obj is StopIteration or isinstance(obj, StopIteration):
                # (a future cannot carry StopIteration: it would end the awaiting coroutine)
                obj = StopAsyncIteration(*(obj.args if isinstance(obj, BaseException) else ()))
            if not isinstance(obj, BaseException) and not (isinstance(obj, type) and issubclass(obj, BaseException)):
                obj = TypeError(f"the peer answered with an exception that is not one: {obj!r}")
            fut.set_exception(obj)
        else:
            fut.set_result(obj)

    def expire(self) -> None:
        """``sync_request_timeout`` passed without an answer."""
        if not self.future.done():
            self.conn._give_up(self.seq)
            self.future.set_exception(AsyncResultTimeout("result expired"))

    def __await__(self) -> Any:
        """Await the answer. A cancelled await gives the request up here, where a done
        callback on the future would cost one more loop callback per request."""
        try:
            return (yield from self.future.__await__())
        except asyncio.CancelledError:
            if self.future.cancelled():
                self.conn._give_up(self.seq)
            raise

    def settled(self, fut: "asyncio.Future[Any]") -> None:
        if fut.cancelled():
            self.conn._give_up(self.seq)

    def fail(self, exc: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(exc)


if sys.version_info >= (3, 12):

    def _new_task(coro: Any, loop: asyncio.AbstractEventLoop) -> "asyncio.Task[Any]":
        return asyncio.Task(coro, loop=loop, eager_start=True)

else:

    def _new_task(coro: Any, loop: asyncio.AbstractEventLoop) -> "asyncio.Task[Any]":
        return loop.create_task(coro)


_CONFIGURED: Any = object()  # (a request's timeout: the connection's sync_request_timeout)

_ASYNC_CALLABLES: Dict[types.CodeType, bool] = {}


def _is_async_callable(func: Any) -> bool:
    """Whether calling ``func`` gives a coroutine to await. Cached per code object (the
    function itself is not kept alive: the peer may release it)."""
    code = getattr(getattr(func, "__func__", func), "__code__", None)
    if code is not None:
        found = _ASYNC_CALLABLES.get(code)
        if found is not None:
            return found
    found = inspect.iscoroutinefunction(func)
    if not found and not isinstance(func, (types.FunctionType, types.MethodType)):
        call = getattr(type(func), "__call__", None)
        found = call is not None and inspect.iscoroutinefunction(call)
    if code is not None:
        if len(_ASYNC_CALLABLES) >= 4096:
            _ASYNC_CALLABLES.clear()  # (bounded: code compiled on the fly)
        _ASYNC_CALLABLES[code] = found
    return found


def _call_result(called: Any, result: Any) -> Any:
    """The answer to a request: ``result``, marked by value when ``called`` (the function a
    CALL or CALLATTR called) is ``@rpyc.returns_by_value``, as the blocking connections
    decide it (``byvalue.wants_by_value``; checked only once something was decorated)."""
    return byvalue.wants_by_value(called, result) if called is not None and byvalue.MARKED else result


class Connection(protocol.Connection):
    """An RPyC connection driven by an asyncio event loop (see ``rpyc.aio.connect`` and
    ``rpyc.aio.serve``). Remote objects are :class:`AsyncNetref` proxies; every operation
    that needs the peer is awaited."""

    def __init__(self, root: Any, transport: asyncio.Transport, config: Dict[str, Any] = {},
                 executor: Any = None, tls: Any = None) -> None:
        if config.get("bind_threads"):
            raise ValueError("bind_threads is not supported by rpyc.aio connections (there is one thread)")
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._transport = transport
        self._executor = executor
        self._pending: Dict[int, _Reply] = {}
        self._serving: Dict[int, "asyncio.Task[Any]"] = {}
        self._tasks: Set["asyncio.Task[Any]"] = set()
        self._held: Optional[List[bytes]] = None  # bytes received but not yet fed (reading paused)
        self._budget_since: Optional[float] = None  # waiting for the budget since
        self._budget_paused = False
        self._heavy_busy = False  # a worker thread is processing a heavy frame
        self._pauses = 0
        self._stall_timer: Optional[asyncio.TimerHandle] = None
        # One timer for every request's timeout, armed for the earliest deadline: a timer
        # per request would cost a heap entry and a handle per call.
        self._deadline_timer: Optional[asyncio.TimerHandle] = None
        self._deadline_at = math.inf
        self._closed_waiter: "asyncio.Future[None]" = self._loop.create_future()
        self._starting: Any = None
        self._plain_inline = False
        super().__init__(root, LoopChannel(LoopStream(transport, self._loop, tls)), config)
        self._plain_inline = self._config.get("aio_plain_calls", "thread") == "inline"

    def _init_service(self) -> None:
        started = self._local_root.on_connect(self)
        if inspect.isawaitable(started):
            self._starting = started

    def __repr__(self) -> str:
        return f"<rpyc.aio.Connection {self._config['connid']!r} object at 0x{id(self):08x}>"

    # -- lifecycle -----------------------------------------------------------------------

    async def _start(self, fetch_root: bool) -> None:
        """Finish setting up: an async ``on_connect``, the extensions' hello, the root."""
        if self._starting is not None:
            starting, self._starting = self._starting, None
            await starting
        if fetch_root:
            if self._config["rpyc_rs_extensions"]:
                extensions.send_hello(self)
            await self.fetch_root()

    @property
    def root(self) -> Any:
        """The peer's root: its proxy once fetched (``rpyc.aio.connect`` fetches it), before
        that a pending operation that fetches it when awaited."""
        if self._remote_root is not None:
            return self._remote_root
        return RemoteOp(RootOf(self), ())

    async def fetch_root(self) -> Any:
        """The peer's root object (one ``GETROOT`` request, then cached)."""
        if self._remote_root is None:
            root = await self._request(consts.HANDLE_GETROOT, ())
            if self._remote_root is None:
                self._remote_root = root
        return self._remote_root

    def close(self) -> None:
        """Tell the peer we close (without waiting for anything), then tear down. ``await
        wait_closed()`` for the end of it; ``await aclose()`` does both."""
        with self._closed_lock:
            if self._closed:
                return
            self._closed = True
        try:
            if not self._engine_dead:
                self._async_request(consts.HANDLE_CLOSE, ())
        except Exception:
            pass
        self._cleanup()

    async def wait_closed(self) -> None:
        await asyncio.shield(self._closed_waiter)

    async def aclose(self) -> None:
        self.close()
        await self.wait_closed()

    async def __aenter__(self) -> "Connection":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    def __enter__(self) -> "Connection":
        raise TypeError("use 'async with' with an rpyc.aio connection")

    def _cleanup(self) -> None:
        if self._cleaned_up:
            return
        pending = list(self._pending.values())
        self._pending.clear()
        for task in list(self._serving.values()):
            task.cancel()
        self._serving.clear()
        if self._stall_timer is not None:
            self._stall_timer.cancel()
        if self._deadline_timer is not None:
            self._deadline_timer.cancel()
            self._deadline_timer = None
        try:
            super()._cleanup()
        finally:
            why = EOFError("connection closed")
            for reply in pending:
                reply.fail(why)
            if not self._closed_waiter.done():
                self._closed_waiter.set_result(None)

    def _handle_close_request(self) -> None:
        with self._closed_lock:
            self._closed = True
        self._cleanup()

    def _lost(self, exc: Optional[BaseException], quietly: bool = False) -> None:
        """The transport is gone (the peer closed, a reset, or we closed it)."""
        if not quietly and not self._closed and self._buffered():
            self._logger().error(
                "%s: connection closed by peer in the middle of a frame (%d bytes of it received)",
                self._config["connid"], self._buffered())
        with self._closed_lock:
            self._closed = True
        self._cleanup()

    def _fail(self, exc: BaseException) -> None:
        """Hostile or broken input (or a stalled peer): log as the blocking server does, and
        drop the connection."""
        connid = self._config["connid"]
        if isinstance(exc, _core.ProtocolError):
            self._logger().error("%s: closing after a protocol error: %s", connid, exc)
        else:
            self._logger().error("%s: %s", connid, exc)
        self._transport.abort()
        self._lost(exc, quietly=True)

    def _notify_disconnect(self) -> None:
        # (an async on_disconnect runs as a task)
        result = self._local_root.on_disconnect(self)
        if inspect.isawaitable(result):
            self._spawn(result)

    def _spawn(self, coro: Any) -> "asyncio.Task[Any]":
        """Run ``coro`` as a task (started at once where Python can: most handlers answer
        without suspending, and then need no extra turn of the loop)."""
        if inspect.iscoroutine(coro):
            task = _new_task(coro, self._loop)
        else:
            task = asyncio.ensure_future(coro)
        if not task.done():
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return task

    # -- bytes in --------------------------------------------------------------------------
    #
    # Reading stops (``_pause_reading``, counted: each reason resumes once) while a heavy
    # frame is processed on a worker thread, while the inbound memory budget has no room,
    # while the transport's write buffer is full (a peer that sends requests but reads no
    # answers is held back by TCP, as the blocking engine holds it back), and until an
    # async ``on_connect`` finished.

    def _received(self, data: bytes) -> None:
        if self._pauses or self._held is not None:
            # (a transport may still deliver after pause_reading: Python < 3.11 does right
            # after connection_made)
            if self._held is None:
                self._held = []
            self._held.append(data)
            return
        try:
            if self._feed(data):
                self._pump()
            else:
                self._held = [data]
                self._wait_for_budget()
        except Exception as exc:
            self._fail(exc)

    def _pump(self) -> None:
        """Run what the complete frames ask for."""
        if self._heavy_busy:
            return
        works, stop = self._drain(0)
        self._drained(works, stop)

    def _drained(self, works: Any, stop: int) -> None:
        if works or stop == _NEED_BYTES:
            self._budget_since = None  # progress: the budget gave room
        self._run_works(works)
        if stop == _HEAVY:
            # Inflating and decoding a big frame would stall every connection of the loop.
            self._heavy_busy = True
            self._pause_reading()
            heavy = self._loop.run_in_executor(_frame_workers(), self._drain, 1)
            heavy.add_done_callback(self._heavy_done)
        elif stop == _BUDGET:
            if self._held is None:
                self._held = []
            self._wait_for_budget()

    def _heavy_done(self, fut: "asyncio.Future[Any]") -> None:
        self._heavy_busy = False
        self._resume_reading()
        try:
            works, stop = fut.result()
            if not self._closed:
                self._drained(works, stop)
        except Exception as exc:
            if not self._closed:
                self._fail(exc)

    def _feed_held(self) -> None:
        """Feed (and process) what arrived while reading was paused."""
        if self._closed or self._pauses or self._heavy_busy or not self._held:
            return
        try:
            held = self._held
            while held and self._feed(held[0]):
                held.pop(0)
            if held:
                self._wait_for_budget()
                return
            self._held = None
            self._pump()
        except Exception as exc:
            self._fail(exc)

    def _wait_for_budget(self) -> None:
        """The process's inbound memory budget has no room now: retry soon, reading paused.
        A connection that makes no progress for ``_BUDGET_GIVE_UP`` seconds is dropped
        (what it holds of the budget goes back to the others), as the blocking engine does."""
        now = self._loop.time()
        if self._budget_since is None:
            self._budget_since = now
        elif now - self._budget_since > _BUDGET_GIVE_UP:
            raise MemoryError(
                f"the process's inbound memory budget stayed full for {_BUDGET_GIVE_UP:g} s "
                f"(config max_inbound_memory): dropping this connection"
            )
        if not self._budget_paused:
            self._budget_paused = True
            self._pause_reading()
        self._loop.call_later(_BUDGET_RETRY, self._retry_budget)

    def _retry_budget(self) -> None:
        if self._closed:
            return
        try:
            held = self._held or []
            while held and self._feed(held[0]):
                held.pop(0)
            if held:
                self._wait_for_budget()
                return
            self._held = None
            self._budget_paused = False
            self._resume_reading()
            self._pump()
        except Exception as exc:
            self._fail(exc)

    def _pause_reading(self) -> None:
        self._pauses += 1
        if self._pauses == 1 and not self._closed:
            self._transport.pause_reading()

    def _resume_reading(self) -> None:
        self._pauses -= 1
        if self._pauses == 0 and not self._closed:
            self._transport.resume_reading()
            if self._held:
                self._loop.call_soon(self._feed_held)

    def _run_works(self, works: Any) -> None:
        for work in works:
            try:
                self._run_work(work)
            except Exception as exc:  # (one failing answer must not stop the others)
                self._logger().exception("%s: %s", self._config["connid"], exc)

    # -- requests from the peer -------------------------------------------------------------

    def _run_work(self, work: Any) -> None:
        if not work.is_request:
            work.callback(work.is_exc, work.obj)
            return
        handler = work.handler
        if handler == consts.HANDLE_CLOSE:
            self._handle_close_request()
            return
        called = None  # the function a CALL or CALLATTR called (@rpyc.returns_by_value)
        try:
            args = work.begin()
            if handler == consts.HANDLE_CALL or handler == consts.HANDLE_CALLATTR:
                called, result = self._start_call(handler, args)
            else:
                func = self._HANDLERS.get(handler)
                if func is None:
                    raise KeyError(handler)
                result = func(self, *args)
        except BaseException as exc:
            self._answer_exception(work, exc)
            return
        if inspect.isawaitable(result) and not isinstance(result, AsyncNetref):
            task = self._spawn(self._finish(work, result, called))
            seq = work.seq
            if seq is not None and not task.done():
                self._serving[seq] = task
        else:
            self._answer(work, _call_result(called, result))

    def _start_call(self, handler: int, args: Tuple[Any, ...]) -> Tuple[Any, Any]:
        """Start a CALL or CALLATTR: ``(the function called, its result)``, the result
        being a coroutine function's coroutine (run as a task), or a plain function's
        result (called inline) or future (called on the executor)."""
        if handler == consts.HANDLE_CALL:
            func, call_args = args[0], args[1]
            kwargs = args[2] if len(args) > 2 else ()
        else:
            obj, name, call_args = args[0], args[1], args[2]
            kwargs = args[3] if len(args) > 3 else ()
            func = self._handle_getattr(obj, name)
        kw = dict(kwargs) if kwargs else {}
        if (_is_async_callable(func) or self._plain_inline or isinstance(func, _BUILTIN_CALLABLES)
                or getattr(func, _INLINE_MARK, False) or (isinstance(func, type) and func.__module__ == "builtins")):
            return func, func(*call_args, **kw)
        return func, self._loop.run_in_executor(self._executor, functools.partial(func, *call_args, **kw))

    async def _finish(self, work: Any, pending: Any, called: Any = None) -> None:
        """Answer ``work`` with what ``pending`` gives (``called``: the function a CALL or
        CALLATTR called, else None)."""
        seq = work.seq
        try:
            result = await pending
            # (a plain def that returned a coroutine; a proxy is an answer, not a step)
            while inspect.isawaitable(result) and not isinstance(result, AsyncNetref):
                result = await result
        except BaseException as exc:
            if self._closed:
                return
            self._answer_exception(work, exc)
            return
        finally:
            if seq is not None:
                self._serving.pop(seq, None)
        self._answer(work, _call_result(called, result))

    def _answer(self, work: Any, result: Any) -> None:
        try:
            self._reply(work, result)
        except EOFError:
            pass
        except Exception as exc:  # e.g. a result too big for max_frame_size
            self._answer_exception(work, exc)

    def _answer_exception(self, work: Any, exc: BaseException) -> None:
        try:
            self._reply_exception(work, exc)
        except EOFError:
            pass

    def _handle_ctxexit(self, obj: Any, exc: Any) -> Any:
        # The requester sends the exception's class; a class of the peer arrives as a proxy,
        # which cannot be raised here: use the local class of that name if there is one.
        if isinstance(exc, AsyncNetref):
            local = netref._resolve_local_class(object.__getattribute__(exc, "____id_pack__")[0])
            exc = local if isinstance(local, type) and issubclass(local, BaseException) else Exception
        return super()._handle_ctxexit(obj, exc)

    def _handle_cancel(self, seq: Any) -> None:
        task = self._serving.get(seq)
        if task is not None:
            task.cancel()

    # -- requests to the peer ---------------------------------------------------------------

    def _request(self, handler: int, args: Tuple[Any, ...], timeout: Any = _CONFIGURED) -> "asyncio.Future[Any]":
        """Send a request: the future of its answer (``sync_request_timeout`` applies
        unless ``timeout`` is given; None: no timeout). Cancelling the future gives the
        request up."""
        reply = self._send_request(handler, args, timeout)
        reply.future.add_done_callback(reply.settled)
        return reply.future

    def _send_request(self, handler: int, args: Tuple[Any, ...], timeout: Any = _CONFIGURED) -> _Reply:
        """Send a request: what to await for its answer (once, by one awaiter)."""
        if timeout is _CONFIGURED:
            timeout = self._config["sync_request_timeout"]
        deadline = math.inf if timeout is None else self._loop.time() + timeout
        fut = self._loop.create_future()
        reply = _Reply(self, fut, deadline)
        seq = self._async_request(handler, args, reply)
        reply.seq = seq
        self._pending[seq] = reply
        if deadline < self._deadline_at:
            self._arm_deadline(deadline)
        return reply

    def _arm_deadline(self, when: float) -> None:
        if self._deadline_timer is not None:
            self._deadline_timer.cancel()
        self._deadline_at = when
        self._deadline_timer = self._loop.call_at(when, self._expire_due)

    def _expire_due(self) -> None:
        """The earliest deadline came: expire what is due, wait for the next one. Runs about
        once per timeout period on a busy connection (the earliest request was usually
        answered long ago), scanning only the requests in flight."""
        self._deadline_timer = None
        self._deadline_at = math.inf
        now = self._loop.time()
        due = [reply for reply in self._pending.values() if reply.deadline <= now]
        for reply in due:
            reply.expire()
        upcoming = min((reply.deadline for reply in self._pending.values()), default=math.inf)
        if upcoming < math.inf and not self._closed:
            self._arm_deadline(upcoming)

    def _give_up(self, seq: int) -> None:
        """Stop awaiting request ``seq``; tell an rpyc-rs peer to cancel its handler."""
        if self._pending.pop(seq, None) is None:
            return
        self._forget_request(seq)
        if extensions.FEATURE_CANCEL in self._peer_features and not self._closed:
            try:
                self._async_request(consts.HANDLE_CANCEL, (seq,))
            except Exception:
                pass

    def _sync(self, handler: int, args: Tuple[Any, ...]) -> Any:
        """Blocking requests exist only for code on other threads (see ``block``)."""
        if threading.get_ident() == self._loop_thread:
            raise RuntimeError(
                "a blocking request on the event loop's thread would stall it: await the "
                "operation instead (see docs/asyncio.md)"
            )
        return asyncio.run_coroutine_threadsafe(_await(self._request(handler, args)), self._loop).result()

    def sync_request(self, handler: int, *args: Any) -> Any:
        return self._sync(handler, args)

    def async_request(self, handler: int, *args: Any, timeout: Any = _CONFIGURED) -> Any:
        """The future of a request's answer (on the loop's thread); ``timeout`` in seconds
        replaces ``sync_request_timeout`` for this request (None: wait for ever)."""
        return self._request(handler, args, timeout)

    def _netref_class(self, id_pack: Tuple[str, int, int]) -> type:
        return AsyncNetref

    # -- writes ---------------------------------------------------------------------------

    def _writing_paused(self) -> None:
        # Answers pile up unread: stop reading requests until the peer reads them, and drop
        # it if it reads nothing for send_stall_timeout.
        self._pause_reading()
        stall = self._config.get("send_stall_timeout")
        if stall is not None:
            self._stall_timer = self._loop.call_later(stall, self._stalled)

    def _writing_resumed(self) -> None:
        self._resume_reading()
        if self._stall_timer is not None:
            self._stall_timer.cancel()
            self._stall_timer = None

    def _stalled(self) -> None:
        self._stall_timer = None
        stall = self._config.get("send_stall_timeout")
        self._fail(_core.SendStalled(
            f"the peer read nothing for send_stall_timeout={stall:g} s; raise the "
            f"send_stall_timeout config key to wait longer; connection closed"))

    # -- serving (the loop does it) --------------------------------------------------------

    def serve(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise RuntimeError("an rpyc.aio connection is served by its event loop")

    serve_all = poll_all = poll = serve


async def _await(fut: Any) -> Any:
    return await fut


Connection._HANDLERS = Connection._request_handlers()
