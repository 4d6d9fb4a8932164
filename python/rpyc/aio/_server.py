"""``rpyc.aio.serve``: one event loop serving every connection (no thread per client)."""

import asyncio
import errno
import logging
import socket
import sys
import threading
from typing import Any, Dict, Optional, Set

from rpyc.utils.authenticators import AuthenticationError, SSLAuthenticator
from rpyc.utils.metrics import ServerStats
from rpyc.utils.server import announce_loopback_default

from rpyc.aio._connection import Connection
from rpyc.aio._transport import RpycProtocol, set_nodelay

__all__ = ["Server", "serve"]

_log = logging.getLogger("rpyc.aio")


class Server:
    """A started ``rpyc.aio`` server: ``port`` (``socket_path`` for a unix socket), ``close()``,
    ``await wait_closed()``, ``await serve_forever()``, ``async with``. ``clients`` holds the
    open connections."""

    def __init__(self, service: Any, listener: socket.socket, protocol_config: Dict[str, Any],
                 authenticator: Any, executor: Any, logger: logging.Logger, tls: Any = None) -> None:
        self.service = service
        self.tls = tls
        self.listener = listener
        self.protocol_config = protocol_config
        self.authenticator = authenticator
        self.executor = executor
        self.logger = logger
        self.clients: Set[Connection] = set()
        # stats() may be called from another thread (a Prometheus scrape): a connection
        # moves from clients to the closed totals under this lock, and is counted once.
        self._stats = ServerStats()
        self._stats_lock = threading.Lock()
        self._loop = asyncio.get_running_loop()
        self._server: Optional[asyncio.AbstractServer] = None
        self._accepting: Optional["asyncio.Task[None]"] = None
        self._handshakes: Set["asyncio.Task[None]"] = set()
        self._closed = self._loop.create_future()
        self._gone = asyncio.Event()
        self._gone.set()
        name = listener.getsockname()
        self.unix = listener.family == getattr(socket, "AF_UNIX", None)
        # (a unix socket has no port: 0, and its path in socket_path)
        self.host: str = "" if self.unix else name[0]
        self.port: int = 0 if self.unix else name[1]
        self.socket_path: Optional[str] = name if self.unix else None

    def stats(self) -> Dict[str, Any]:
        """The server's statistics, as ``rpyc.utils.server.Server.stats()`` (docs/metrics.md);
        callable from any thread."""
        with self._stats_lock:
            return self._stats.snapshot(list(self.clients))

    def __repr__(self) -> str:
        where = self.socket_path if self.unix else f"{self.host}:{self.port}"
        return f"<rpyc.aio.Server {where} with {len(self.clients)} clients>"

    async def _start(self) -> None:
        if self.authenticator is None:
            if self.unix:
                self._server = await self._loop.create_unix_server(self._protocol, sock=self.listener)
            else:
                self._server = await self._loop.create_server(self._protocol, sock=self.listener)
        else:
            self.listener.setblocking(False)
            self._accepting = self._loop.create_task(self._accept_loop())

    # -- connections ------------------------------------------------------------------------

    def _protocol(self, credentials: Any = None) -> RpycProtocol:
        if self.tls is None:
            return RpycProtocol(lambda transport, _: self._connection(transport, credentials))
        context = self.tls._context
        protocol = RpycProtocol(self._connection_over_tls, lambda peer: context.pipe(None, peer),
                                self.tls.handshake_timeout)
        protocol.made.add_done_callback(self._handshake_done)
        return protocol

    def _handshake_done(self, made: "asyncio.Future[Any]") -> None:
        exc = None if made.cancelled() else made.exception()
        if exc is not None:
            self.logger.info("TLS client failed to authenticate, rejecting connection: %s", exc)

    def _connection_over_tls(self, transport: Any, pipe: Any) -> Connection:
        return self._connection(transport, pipe.getpeercert(), pipe)

    def _connection(self, transport: Any, credentials: Any, pipe: Any = None) -> Connection:
        set_nodelay(transport)
        config = dict(self.protocol_config, credentials=credentials, logger=self.logger,
                      endpoints=(transport.get_extra_info("sockname"), transport.get_extra_info("peername")))
        root = self.service() if isinstance(self.service, type) else self.service
        conn = Connection(root, transport, config, self.executor, pipe)
        with self._stats_lock:
            self.clients.add(conn)
            self._stats.opened()
        self._gone.clear()
        conn._closed_waiter.add_done_callback(lambda _: self._forget(conn))
        if conn._starting is not None:
            # An async on_connect finishes before the peer's requests are served.
            conn._pause_reading()
            conn._spawn(self._finish_start(conn))
        return conn

    async def _finish_start(self, conn: Connection) -> None:
        try:
            await conn._start(fetch_root=False)
        except Exception:
            self.logger.exception("%s: on_connect failed, closing", conn._config["connid"])
            conn.close()
            return
        conn._resume_reading()

    def _forget(self, conn: Connection) -> None:
        with self._stats_lock:
            if conn in self.clients:
                self.clients.discard(conn)
                self._stats.closed(conn)
        if not self.clients:
            self._gone.set()

    async def _accept_loop(self) -> None:
        while True:
            try:
                sock, _ = await self._loop.sock_accept(self.listener)
            except (OSError, asyncio.CancelledError):
                return
            task = self._loop.create_task(self._authenticate(sock))
            self._handshakes.add(task)
            task.add_done_callback(self._handshakes.discard)

    async def _authenticate(self, sock: socket.socket) -> None:
        peer = _peername(sock)
        try:
            sock.setblocking(True)
            new_sock, credentials = await self._loop.run_in_executor(self.executor, self.authenticator, sock)
            if not isinstance(new_sock, socket.socket):
                raise TypeError(f"rpyc.aio needs a plain socket from the authenticator, not {type(new_sock).__name__}")
        except AuthenticationError as exc:
            self.logger.info("%s failed to authenticate, rejecting connection: %s", peer, exc)
            sock.close()
            return
        except Exception:
            self.logger.exception("%s: the authenticator failed, rejecting connection", peer)
            sock.close()
            return
        new_sock.setblocking(False)
        def factory() -> RpycProtocol:
            return self._protocol(credentials)

        try:
            await self._loop.connect_accepted_socket(factory, sock=new_sock)
        except OSError:
            new_sock.close()

    # -- lifecycle --------------------------------------------------------------------------

    def close(self) -> None:
        """Stop listening and close every client connection."""
        if self._server is not None:
            self._server.close()
        if self._accepting is not None:
            self._accepting.cancel()
        try:
            self.listener.close()
        except OSError:
            pass
        for conn in list(self.clients):
            conn.close()
        if not self._closed.done():
            self._closed.set_result(None)

    async def wait_closed(self) -> None:
        """Wait until closed and every connection ended."""
        await asyncio.shield(self._closed)
        if self._server is not None:
            await self._server.wait_closed()
        await self._gone.wait()

    async def serve_forever(self) -> None:
        """Serve until :meth:`close` (or until cancelled, which closes the server)."""
        try:
            await asyncio.shield(self._closed)
        except asyncio.CancelledError:
            self.close()
            raise

    def is_serving(self) -> bool:
        return not self._closed.done()

    async def __aenter__(self) -> "Server":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.close()
        await self.wait_closed()


def _peername(sock: socket.socket) -> Any:
    try:
        return sock.getpeername()
    except OSError:
        return "?"


async def serve(service: Any, hostname: Optional[str] = None, port: int = 0, *,
                socket_path: Optional[str] = None, ipv6: bool = False,
                protocol_config: Optional[Dict[str, Any]] = None, authenticator: Any = None,
                ssl: Any = None, backlog: int = socket.SOMAXCONN, reuse_addr: bool = True,
                executor: Any = None, logger: Optional[logging.Logger] = None) -> Server:
    """Start serving ``service`` on the running loop (``asyncio.start_server`` style).

    Binds ``127.0.0.1`` (``::1`` with ``ipv6``) unless ``hostname`` says otherwise, or the
    unix socket ``socket_path``. Each connection gets its own instance when ``service`` is
    a class. ``async def`` exposed methods run on the loop; plain ``def`` ones on
    ``executor`` (the loop's default executor when None), except those marked
    ``@rpyc.aio.inline`` or all of them with ``protocol_config={"aio_plain_calls": "inline"}``.
    """
    if authenticator is not None and isinstance(authenticator, SSLAuthenticator):
        # (TLS runs in the loop, on rustls without a socket, not as a blocking authenticator)
        ssl, authenticator = authenticator, None
    if ssl is not None and not isinstance(ssl, SSLAuthenticator):
        raise TypeError(
            f"ssl= takes an rpyc.utils.authenticators.SSLAuthenticator (its keyfile, certfile, "
            f"ca_certs... configure the server's TLS), not {type(ssl).__name__}"
        )
    listener = _listen(hostname, port, socket_path, ipv6, backlog, reuse_addr)
    server = Server(service, listener, dict(protocol_config or {}), authenticator, executor,
                    logger or _log, ssl)
    await server._start()
    if socket_path is None and hostname is None:
        host, port = listener.getsockname()[:2]
        announce_loopback_default("rpyc.aio server", host, port)
    return server


def _listen(hostname: Optional[str], port: int, socket_path: Optional[str], ipv6: bool, backlog: int,
            reuse_addr: bool) -> socket.socket:
    if socket_path is not None:
        if hostname is not None or port != 0 or ipv6:
            raise ValueError("socket_path is mutually exclusive with: hostname, port, ipv6")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(socket_path)
    else:
        family = socket.AF_INET6 if ipv6 else socket.AF_INET
        if hostname is None:
            hostname = "::1" if ipv6 else "127.0.0.1"
        family, socktype, proto, _, sockaddr = socket.getaddrinfo(
            hostname, port, family, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)[0]
        sock = socket.socket(family, socktype, proto)
        if reuse_addr and sys.platform != "win32":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(sockaddr)
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRINUSE:
                raise OSError(exc.errno, f"cannot listen on {hostname}:{port}: address already in use") from None
            raise
    sock.listen(backlog)
    sock.setblocking(False)
    return sock
