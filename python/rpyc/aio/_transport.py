"""Between an asyncio transport and a connection's engine: the stream the engine writes to,
the protocol that feeds it what arrives, and TLS (a ``rpyc._core.TlsPipe``: rustls without
a socket) when the connection is encrypted."""

import asyncio
import socket
import threading
from typing import Any, Callable, List, Optional

__all__ = ["LoopChannel", "LoopStream", "RpycProtocol", "set_nodelay"]


class LoopStream:
    """What the engine writes frames to: the asyncio transport, through TLS if any.

    Frames written during one turn of the loop leave together at its end (one ``send``
    for the answers to a batch of pipelined requests, or for the requests of a ``gather``).
    Writes from other threads (a proxy collected on a worker thread sends its release) are
    handed to the loop."""

    __slots__ = ("_transport", "_loop", "_thread", "_tls", "_pending", "_flushing", "closed")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop, tls: Any = None) -> None:
        self._transport = transport
        self._loop = loop
        self._thread = threading.get_ident()
        self._tls = tls
        self._pending: List[bytes] = []
        self._flushing = False
        self.closed = False

    def write(self, data: bytes) -> None:
        if self.closed:
            raise EOFError("connection closed")
        if threading.get_ident() != self._thread:
            self._loop.call_soon_threadsafe(self._write_later, data)
            return
        if self._tls is not None:
            self._tls.send(data)
        else:
            self._pending.append(data)
        if not self._flushing:
            self._flushing = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write out what this turn of the loop produced."""
        self._flushing = False
        if self._transport.is_closing():
            self._pending.clear()
            return
        if self._tls is not None:
            out = self._tls.outgoing()
        elif len(self._pending) == 1:
            out = self._pending.pop()
        else:
            out = b"".join(self._pending)
            self._pending.clear()
        if out:
            self._transport.write(out)

    def _write_later(self, data: bytes) -> None:
        if not self.closed and not self._transport.is_closing():
            self.write(data)

    def close(self) -> None:
        # Off the loop's thread this is the engine giving up on a frame processed by a
        # worker: the loop learns it from that work's outcome and drops the connection then.
        if self.closed or threading.get_ident() != self._thread:
            return
        self.closed = True
        if not self._transport.is_closing():
            try:
                if self._tls is not None:
                    self._tls.close()
                self.flush()
            except Exception:
                pass
        self._transport.close()

    def poll(self, timeout: Any) -> bool:
        raise RuntimeError("an rpyc.aio connection is read by its event loop, not by waiting threads")

    read = poll

    def fileno(self) -> int:
        sock = self._transport.get_extra_info("socket")
        return -1 if sock is None else sock.fileno()


class LoopChannel:
    """The channel a connection is built on (what the engine needs of upstream's)."""

    __slots__ = ("stream", "compress")

    def __init__(self, stream: LoopStream) -> None:
        self.stream = stream
        self.compress = True

    def close(self) -> None:
        self.stream.close()

    def fileno(self) -> int:
        return self.stream.fileno()


def _peer_text(transport: Any) -> str:
    peer = transport.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer or "peer")


class RpycProtocol(asyncio.Protocol):
    """Feeds a transport's bytes to its connection, made by ``make(transport, tls_pipe)``
    once the transport (and the TLS handshake, when ``tls(peer)`` makes a pipe) is up.
    ``made`` is the future of that connection."""

    def __init__(self, make: Callable[[Any, Any], Any], tls: Optional[Callable[[str], Any]] = None,
                 handshake_timeout: float = 10.0) -> None:
        self._make = make
        self._tls = tls
        self._handshake_timeout = handshake_timeout
        self._timer: Optional[asyncio.TimerHandle] = None
        self.transport: Any = None
        self.pipe: Any = None
        self.conn: Any = None
        self.made: "asyncio.Future[Any]" = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        if self._tls is None:
            self._start()
            return
        try:
            self.pipe = self._tls(_peer_text(transport))
            transport.write(self.pipe.outgoing())  # (a client's hello)
        except Exception as exc:
            self._failed(exc)
            return
        self._timer = asyncio.get_running_loop().call_later(self._handshake_timeout, self._too_slow)

    def _start(self) -> None:
        try:
            self.conn = self._make(self.transport, self.pipe)
        except BaseException as exc:
            self._failed(exc)
            return
        if not self.made.done():
            self.made.set_result(self.conn)

    def _failed(self, exc: BaseException) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self.transport.abort()
        if not self.made.done():
            self.made.set_exception(exc)

    def _too_slow(self) -> None:
        self._failed(TimeoutError(
            f"TLS handshake with {_peer_text(self.transport)} not completed within "
            f"{self._handshake_timeout:g} s"))

    def data_received(self, data: bytes) -> None:
        pipe = self.pipe
        if pipe is None:
            self.conn._received(data)
            return
        try:
            plain = pipe.receive(data)
            out = pipe.outgoing()
            if out:
                self.transport.write(out)
        except Exception as exc:
            if self.conn is None:
                self._failed(exc)
            else:
                self.conn._fail(exc)
            return
        if self.conn is None:
            if pipe.handshaking:
                return
            if self._timer is not None:
                self._timer.cancel()
            self._start()
            if self.conn is None:
                return
        if plain:
            self.conn._received(plain)
        if pipe.peer_closed:
            self.transport.close()

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        if self._timer is not None:
            self._timer.cancel()
        conn = self.conn
        if conn is not None:
            conn._lost(exc)
        elif not self.made.done():
            self.made.set_exception(exc or EOFError("connection closed"))

    def pause_writing(self) -> None:
        if self.conn is not None:
            self.conn._writing_paused()

    def resume_writing(self) -> None:
        if self.conn is not None:
            self.conn._writing_resumed()


def set_nodelay(transport: Any) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
