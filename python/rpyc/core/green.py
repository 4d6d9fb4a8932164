"""Connections over gevent sockets (docs/gevent.md).

The native engine reads and writes a socket itself, with the GIL released, and a thread that
waits for another thread's progress sleeps on a native lock. Under gevent every greenlet runs
on one OS thread: a native wait there stops them all, and the hub (which runs every other
greenlet, the server's accept loop included) never gets control back.

A connection whose socket is a gevent socket (``gevent.monkey.patch_all()`` patches
``socket.socket``; sockets made with ``gevent.socket`` too) is therefore driven from Python:

- the engine reads through :class:`GreenStream` (the patched socket's ``recv``, gevent's
  ``select``), so a greenlet that waits for bytes lets the others run;
- writes never wait while the engine holds its send gate (a native lock): what the socket
  does not take at once goes to a writer greenlet;
- one greenlet at a time reads the connection, holding a gevent ``RLock`` (reentrant: a
  request served while reading may itself wait for an answer), one frame per hold; the
  others wait for an ``Event`` set whenever a frame was processed, then look at their answer;
- TLS runs through rustls without a socket (``_core.TlsPipe``, as in ``rpyc.aio``), fed from
  the gevent socket (:class:`GreenTlsSocket`).

Nothing here imports gevent unless a gevent socket is in use (gevent is then imported).
"""

import os
import socket
import sys
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Deque, Dict, Optional, Union

from rpyc import _core

_QUICK_ACK = getattr(socket, "TCP_QUICKACK", None)  # (Linux)

# A send that waits for room in the socket sends at most this much at a time, so that
# ``send_stall_timeout`` counts from the last progress.
_PIECE = 256 * 1024


def is_green_socket(sock: Any) -> bool:
    """Whether ``sock`` is a gevent socket (its blocking calls switch greenlets), or TLS over
    one. Never imports gevent: without it loaded there are no gevent sockets."""
    if "gevent" not in sys.modules or sock is None or os.name != "posix":
        return False  # (POSIX only: the writes rely on os.write to a non-blocking socket)
    if isinstance(sock, GreenTlsSocket):
        return True
    return any(c.__module__.startswith("gevent.") for c in type(sock).__mro__)


def is_green_stream(stream: Any) -> bool:
    """Whether a connection over ``stream`` must be driven greenlet-friendly (see module doc)."""
    return "gevent" in sys.modules and is_green_socket(getattr(stream, "sock", None))


def _gevent() -> Any:
    import gevent  # (already imported: a gevent socket exists)
    import gevent.event
    import gevent.lock
    import gevent.monkey
    import gevent.select

    return gevent


class _Writer:
    """Writes to a gevent socket that never switch greenlets: what the socket does not take
    at once is sent, in order, by a writer greenlet (see ``GreenStream.write``)."""

    __slots__ = ("sock", "stall", "error", "_fd", "_pending", "_greenlet", "_gevent")

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.stall: Optional[float] = None
        self.error: Optional[BaseException] = None
        self._fd = sock.fileno()
        # gevent keeps its sockets non-blocking: a write below then never blocks the hub.
        os.set_blocking(self._fd, False)
        self._pending: Deque[Union[bytes, memoryview]] = deque()
        self._greenlet: Any = None
        self._gevent = _gevent()

    def write(self, data: bytes) -> None:
        if self.error is not None:
            raise self.error
        if not data:
            return
        rest: Union[bytes, memoryview] = data
        if not self._pending:
            try:
                sent = os.write(self._fd, data)
            except BlockingIOError:
                sent = 0
            except OSError as exc:
                self.fail(EOFError(f"connection lost: {exc}"))
                raise self.error from exc  # type: ignore[misc]
            if sent == len(data):
                return
            rest = memoryview(data)[sent:]
        self._pending.append(rest)
        if self._greenlet is None:
            self._greenlet = self._gevent.spawn(self._send_pending)

    def _send_pending(self) -> None:
        sock = self.sock
        gevent = self._gevent
        try:
            while self._pending:
                view = memoryview(self._pending[0])
                while view:
                    if self.stall is None:
                        sent = sock.send(view[:_PIECE])
                    else:
                        with gevent.Timeout(self.stall):
                            sent = sock.send(view[:_PIECE])
                    view = view[sent:]
                self._pending.popleft()
        except gevent.Timeout:
            self.fail(_core.SendStalled(
                f"the peer read nothing for send_stall_timeout={self.stall} s; raise the "
                f"send_stall_timeout config key to wait longer; connection closed"))
        except Exception as exc:
            self.fail(EOFError(f"connection lost: {exc}"))
        finally:
            self._greenlet = None

    def flush(self, timeout: float) -> None:
        """Wait (switching greenlets) until everything queued is sent, at most ``timeout``."""
        greenlet = self._greenlet
        if greenlet is not None:
            greenlet.join(timeout)
        if self.error is not None:
            raise self.error

    def fail(self, error: BaseException) -> None:
        """The socket cannot be written any more: remember why (reads and writes raise it)
        and shut it, so that the reading greenlet wakes up."""
        if self.error is None:
            self.error = error
        self._pending.clear()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except Exception:
            pass


class GreenTlsSocket:
    """TLS over a gevent socket: rustls without a socket (``_core.TlsPipe``, as ``rpyc.aio``
    uses), fed from the gevent socket, so that a TLS connection waits like any other under
    gevent. Has the socket methods servers, streams and user code call."""

    def __init__(self, sock: Any, pipe: Any) -> None:
        self._sock = sock
        self._pipe = pipe
        self._plain = bytearray()
        self._writer = _Writer(sock)

    @classmethod
    def handshake(cls, sock: Any, pipe: Any, timeout: float) -> "GreenTlsSocket":
        """Run the handshake (switching greenlets while it waits); ``sock`` is closed if it
        fails."""
        self = cls(sock, pipe)
        gevent = _gevent()
        try:
            peer = "%s:%s" % tuple(sock.getpeername()[:2]) if sock.family != socket.AF_UNIX else "peer"
        except OSError:
            peer = "peer"
        try:
            with gevent.Timeout(timeout, TimeoutError(
                    f"TLS handshake with {peer} failed: not completed within {timeout:g} s")):
                self._writer.write(pipe.outgoing())  # (a client's hello)
                while pipe.handshaking:
                    data = sock.recv(_PIECE)
                    if not data:
                        raise ConnectionError(f"TLS handshake with {peer} failed: the peer closed the connection")
                    self._plain += pipe.receive(data)
                    self._writer.write(pipe.outgoing())
                self._writer.flush(timeout)
        except BaseException:
            try:  # the alert that says why, if rustls made one (e.g. "unknown ca")
                self._writer.write(pipe.outgoing())
                self._writer.flush(1.0)
            except BaseException:
                pass
            sock.close()
            raise
        return self

    def recv(self, bufsize: int) -> bytes:
        while not self._plain:
            if self._writer.error is not None:
                raise self._writer.error
            if self._pipe.peer_closed:
                return b""
            data = self._sock.recv(_PIECE)  # (switches greenlets while it waits)
            if not data:
                return b""
            self._plain += self._pipe.receive(data)
            self._writer.write(self._pipe.outgoing())  # (e.g. a KeyUpdate's answer)
        chunk = bytes(self._plain[:bufsize])
        del self._plain[:bufsize]
        return chunk

    def send_nowait(self, data: bytes) -> None:
        """Encrypt and send ``data`` without switching greenlets (see ``_Writer``)."""
        self._pipe.send(data)
        self._writer.write(self._pipe.outgoing())

    def sendall(self, data: bytes) -> None:
        self.send_nowait(data)

    def send(self, data: bytes) -> int:
        self.send_nowait(data)
        return len(data)

    def pending(self) -> int:
        return len(self._plain)

    def shutdown(self, how: int) -> None:
        try:
            self._pipe.close()  # (close_notify)
            self._writer.write(self._pipe.outgoing())
        except Exception:
            pass
        self._sock.shutdown(how)

    def __getattr__(self, name: str) -> Any:
        # the rest from the socket (fileno, close, getpeername, timeouts...) or the TLS
        # session (getpeercert, version, cipher, server_hostname, server_side)
        if name in ("getpeercert", "version", "cipher", "server_hostname", "server_side"):
            return getattr(self._pipe, name)
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._sock, name)


def tls_client(context: Any, sock: Any, host: str, timeout: float) -> GreenTlsSocket:
    """``tls.wrap_client`` for a gevent socket."""
    return GreenTlsSocket.handshake(sock, context.pipe(host, host), timeout)


def tls_server(context: Any, sock: Any, timeout: float) -> GreenTlsSocket:
    """``TlsContext.wrap`` on the server side, for a gevent socket."""
    return GreenTlsSocket.handshake(sock, context.pipe(None, str(sock.getpeername())), timeout)


class GreenStream:
    """What the engine drives for a connection over a gevent socket (a ``SocketStream``,
    over TCP, a unix socket, or TLS through :class:`GreenTlsSocket`): reads wait in the hub;
    writes never wait with the engine's send gate held."""

    __slots__ = ("stream", "quick_ack", "_fd", "_writer", "_tls", "_gevent", "_peek")

    def __init__(self, stream: Any, stall: Optional[float]) -> None:
        self.stream = stream
        sock = stream.sock
        self._fd = sock.fileno()
        self._tls = sock if isinstance(sock, GreenTlsSocket) else None
        self._writer = self._tls._writer if self._tls is not None else _Writer(sock)
        self._writer.stall = stall
        self._gevent = _gevent()
        # The unpatched select, for a check that never waits: a gevent select costs ~14 µs
        # even when the socket is readable, and a frame asks two or three times.
        self._peek = self._gevent.monkey.get_original("select", "select")
        # Acknowledge every read at once while the peer may send with Nagle's algorithm on
        # (upstream does; off for rpyc-rs peers, see Engine._set_quick_ack): otherwise its
        # second small frame waits for our delayed ACK, up to 40 ms (500 calls creating and
        # releasing proxies on an upstream server: 13.6 s without, 3.0 s with). Not over
        # TLS, where it made the same loop slower (27 s against 15 s).
        self.quick_ack = (self._tls is None and _QUICK_ACK is not None
                          and sock.family in (socket.AF_INET, socket.AF_INET6))

    @property
    def closed(self) -> bool:
        return bool(self.stream.closed)

    def fileno(self) -> int:
        return self.stream.fileno()

    def wait_readable(self, timeout: Optional[float]) -> bool:
        """Wait (switching greenlets) until the socket has bytes or EOF, at most ``timeout``
        seconds (None: forever)."""
        if self._writer.error is not None:
            raise self._writer.error
        if self.stream.closed:
            raise EOFError("stream has been closed")
        if self._tls is not None and self._tls.pending():
            return True
        try:
            readable, _, _ = self._peek([self._fd], [], [], 0)
            if readable or timeout == 0:
                return bool(readable)
            readable, _, _ = self._gevent.select.select([self._fd], [], [], timeout)
        except (OSError, ValueError):
            return True  # (closed meanwhile: reading says so)
        return bool(readable)

    poll = wait_readable

    def read(self, count: int) -> bytes:
        if self._writer.error is not None:
            raise self._writer.error
        data = self.stream.read(count)  # (the gevent socket's recv switches while it waits)
        if self.quick_ack:
            try:
                self.stream.sock.setsockopt(socket.IPPROTO_TCP, _QUICK_ACK, 1)
            except OSError:
                self.quick_ack = False
        return data

    def write(self, data: bytes) -> None:
        """Send ``data`` after what is already queued. Called by the engine with its send
        gate held, so it must not switch greenlets: another greenlet would block the whole
        thread on that gate. What the socket does not take now, a writer greenlet sends."""
        if self._tls is not None:
            self._tls.send_nowait(data)
        else:
            self._writer.write(data)

    def close(self) -> None:
        self.stream.close()


class _Answer:
    """Receives the answer to one request made by a greenlet (the engine's async callback)."""

    __slots__ = ("done", "is_exc", "obj")

    def __init__(self) -> None:
        self.done = False
        self.is_exc = False
        self.obj: Any = None

    def __call__(self, is_exc: bool, obj: Any) -> None:
        self.done = True
        self.is_exc = is_exc
        self.obj = obj

    def waiting(self) -> bool:
        return not self.done


if TYPE_CHECKING:  # the mixin is only ever put in front of a Connection (an Engine)
    _MixinBase = _core.Engine
else:
    _MixinBase = object


class GreenConnection(_MixinBase):
    """Put in front of a ``Connection`` class (see :func:`connection_class`) for connections
    over gevent sockets: requests wait, and serving reads, the greenlet-friendly way."""

    def _engine_start(self, stream: Any, config: Dict[str, Any], native: Any = None,
                      compress: bool = True) -> None:
        # (With bind_threads, every greenlet of this thread is one thread to the peer.)
        gevent = _gevent()
        self._green_reading = gevent.lock.RLock()
        self._green_progress = gevent.event.Event()
        self._green_stream = GreenStream(stream, config.get("send_stall_timeout"))
        super()._engine_start(self._green_stream, config, None, compress)

    def _set_quick_ack(self, on: bool) -> None:
        self._green_stream.quick_ack = self._green_stream.quick_ack and on

    def _green_advance(self) -> None:
        """A frame was processed (or the reader left): wake the greenlets waiting for that."""
        progress = self._green_progress
        self._green_progress = _gevent().event.Event()
        progress.set()

    def _green_dead(self) -> None:
        """Raise why the connection ended (it has)."""
        _core.Engine._serve(self, 0, False, None)  # (a dead engine raises its reason first)
        raise EOFError("connection closed")

    def serve(self, timeout: Any = 1, wait_for_lock: bool = True,
              waiting: Optional[Callable[[], bool]] = None) -> bool:
        """Serve one frame if it arrives within ``timeout`` seconds (see ``Connection.serve``);
        when another greenlet reads, wait for its progress instead (``wait_for_lock``)."""
        reading = self._green_reading
        if not reading.acquire(blocking=False):
            if self._engine_dead:
                self._green_dead()
            if wait_for_lock:
                self._green_progress.wait(timeout)
            return False
        held = True
        try:
            if waiting is not None and not waiting():
                return False
            if self._engine_dead:
                self._green_dead()
            # Wait for the first bytes here, not inside the engine: a greenlet killed or timed
            # out (gevent.Timeout) while it waits must not end the connection, which an error
            # raised under the engine's read does. (No complete frame is ever left buffered.)
            if not self._green_stream.wait_readable(timeout):
                return False
            res = _core.Engine._serve(self, timeout, False, None)
            if type(res) is _core.Work:
                if res.is_request:
                    # Requests are served without the reading role, so that other greenlets
                    # read (and get their answers) while a handler waits.
                    reading.release()
                    held = False
                    self._green_advance()
                self._run_work(res)  # type: ignore[attr-defined]
                return True
            return bool(res)
        finally:
            if held:
                reading.release()
                self._green_advance()

    def _sync_request(self, handler: int, args: Any) -> Any:
        """Send a request and wait (switching greenlets) for its answer."""
        answer = _Answer()
        seq = self._async_request(handler, args, answer)
        timeout = self._config["sync_request_timeout"]  # type: ignore[attr-defined]
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while not answer.done:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError("result expired")
                self.serve(left, True, answer.waiting)
        except BaseException:
            if not answer.done:
                self._forget_request(seq)
            raise
        if answer.is_exc:
            raise answer.obj
        return answer.obj

    def _serve_until_closed(self) -> None:
        while not self._closed:  # type: ignore[attr-defined]
            self.serve(None)


_CLASSES: Dict[type, type] = {}


def connection_class(cls: type) -> type:
    """``cls`` with :class:`GreenConnection` in front (one class per ``cls``, kept)."""
    if issubclass(cls, GreenConnection):
        return cls
    green = _CLASSES.get(cls)
    if green is None:
        green = type(cls.__name__, (GreenConnection, cls), {
            "__module__": cls.__module__,
            "__qualname__": cls.__qualname__,
            "__doc__": cls.__doc__,
        })
        _CLASSES[cls] = green
    return green
