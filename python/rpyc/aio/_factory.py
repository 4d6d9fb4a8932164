"""``rpyc.aio.connect`` and friends: client connections on the running event loop."""

import asyncio
import socket
from typing import Any, Awaitable, Callable, Dict, Generator, Optional

from rpyc.core.service import VoidService
from rpyc.core.stream import _fmt_addr, _set_keepalive, connect_error, resolve_error

from rpyc.aio._connection import Connection
from rpyc.aio._transport import RpycProtocol, set_nodelay

__all__ = ["connect", "unix_connect", "ssl_connect", "connect_socket"]


class _Connecting:
    """What the factories return: awaitable (the connection) and an async context manager
    (closing it on exit)."""

    __slots__ = ("_make", "_conn")

    def __init__(self, make: Callable[[], Awaitable[Connection]]) -> None:
        self._make = make
        self._conn: Optional[Connection] = None

    def __await__(self) -> Generator[Any, None, Connection]:
        return self._make().__await__()

    async def __aenter__(self) -> Connection:
        self._conn = await self._make()
        return self._conn

    async def __aexit__(self, *exc: Any) -> None:
        if self._conn is not None:
            await self._conn.aclose()


def _service_root(service: Any) -> Any:
    return service() if isinstance(service, type) else service


async def _start(loop: asyncio.AbstractEventLoop,
                 open_transport: Callable[[Callable[[], RpycProtocol]], Awaitable[Any]],
                 service: Any, config: Dict[str, Any], executor: Any,
                 tls: Optional[Callable[[str], Any]] = None, handshake_timeout: float = 10.0) -> Connection:
    def make(transport: Any, pipe: Any) -> Connection:
        set_nodelay(transport)
        return Connection(_service_root(service), transport, config, executor, pipe)

    transport, protocol = await open_transport(lambda: RpycProtocol(make, tls, handshake_timeout))
    conn = await protocol.made
    try:
        await conn._start(fetch_root=True)
    except BaseException:
        conn.close()
        raise
    return conn


def connect(host: str, port: int, service: Any = VoidService, config: Dict[str, Any] = {},
            ipv6: bool = False, keepalive: bool = False, authenticator: Any = None,
            executor: Any = None, timeout: float = 3) -> _Connecting:
    """Connect over TCP on the running loop: ``conn = await rpyc.aio.connect(host, port)``
    or ``async with rpyc.aio.connect(host, port) as conn``. ``conn.root`` is ready.
    ``authenticator(sock) -> (sock, credentials)`` runs on ``executor`` (blocking socket)
    before the connection starts; plain ``def`` methods of ``service`` run there too."""

    async def make() -> Connection:
        loop = asyncio.get_running_loop()
        sock = await _open_tcp(loop, host, port, ipv6, keepalive, timeout)
        try:
            conf = config
            if authenticator is not None:
                sock, conf = await _authenticate(loop, sock, authenticator, config, executor)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return await _start(loop, lambda f: loop.create_connection(f, sock=sock), service, conf, executor)

    return _Connecting(make)


def ssl_connect(host: str, port: int, keyfile: Optional[str] = None, certfile: Optional[str] = None,
                ca_certs: Optional[str] = None, cert_reqs: Any = None, ssl_version: Any = None,
                ciphers: Optional[str] = None, service: Any = VoidService, config: Dict[str, Any] = {},
                ipv6: bool = False, keepalive: bool = False, check_hostname: Optional[bool] = None,
                executor: Any = None, timeout: float = 3, handshake_timeout: float = 10.0) -> _Connecting:
    """Connect over TLS (rustls), with the arguments of the blocking ``rpyc.ssl_connect``:
    with ``ca_certs`` the server's chain and host name are verified (``check_hostname=False``
    skips the name); without, a ``rpyc.SecurityWarning`` says nothing is verified;
    ``keyfile``/``certfile`` present a client certificate."""
    from rpyc.core import tls

    context = tls.client_context(keyfile, certfile, ca_certs, cert_reqs, ssl_version, ciphers, check_hostname)
    if not context.verifies:
        tls.warn_unverified(host, port)

    async def make() -> Connection:
        loop = asyncio.get_running_loop()
        sock = await _open_tcp(loop, host, port, ipv6, keepalive, timeout)
        return await _start(loop, lambda f: loop.create_connection(f, sock=sock), service, config, executor,
                            tls=lambda peer: context.pipe(host, peer), handshake_timeout=handshake_timeout)

    return _Connecting(make)


def unix_connect(path: str, service: Any = VoidService, config: Dict[str, Any] = {},
                 authenticator: Any = None, executor: Any = None) -> _Connecting:
    """Connect to a unix socket on the running loop (as :func:`connect`)."""

    async def make() -> Connection:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            try:
                await loop.sock_connect(sock, path)
            except FileNotFoundError:
                raise FileNotFoundError(2, f"no unix socket at {path!r} (is the server running?)") from None
            except ConnectionRefusedError:
                raise ConnectionRefusedError(111, f"connection refused to unix socket {path!r}") from None
            conf = config
            if authenticator is not None:
                sock, conf = await _authenticate(loop, sock, authenticator, config, executor)
                sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return await _start(loop, lambda f: loop.create_unix_connection(f, sock=sock), service, conf, executor)

    return _Connecting(make)


def connect_socket(sock: socket.socket, service: Any = VoidService, config: Dict[str, Any] = {},
                   executor: Any = None) -> _Connecting:
    """A connection over an already connected socket (e.g. one end of ``socket.socketpair()``)."""

    async def make() -> Connection:
        loop = asyncio.get_running_loop()
        sock.setblocking(False)
        return await _start(loop, lambda f: loop.create_connection(f, sock=sock), service, config, executor)

    return _Connecting(make)


async def _open_tcp(loop: asyncio.AbstractEventLoop, host: str, port: int, ipv6: bool, keepalive: Any,
                    timeout: float) -> socket.socket:
    """A connected non-blocking TCP socket; errors name the address."""
    family = socket.AF_INET6 if ipv6 else socket.AF_INET
    try:
        infos = await loop.getaddrinfo(host, port, family=family, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise resolve_error(exc, host, port) from None
    family, socktype, proto, _, sockaddr = infos[0]
    sock = socket.socket(family, socktype, proto)
    try:
        sock.setblocking(False)
        try:
            await asyncio.wait_for(loop.sock_connect(sock, sockaddr), timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(f"timed out connecting to {_fmt_addr(sockaddr)}") from None
        except OSError as exc:
            raise connect_error(exc, host, sockaddr) from None
        if keepalive:
            _set_keepalive(sock, keepalive)
    except BaseException:
        sock.close()
        raise
    return sock


async def _authenticate(loop: asyncio.AbstractEventLoop, sock: socket.socket, authenticator: Any,
                        config: Dict[str, Any], executor: Any) -> Any:
    """Run a (blocking) authenticator on a worker thread; the socket it returns and the
    config with its credentials."""
    sock.setblocking(True)
    new_sock, credentials = await loop.run_in_executor(executor, authenticator, sock)
    if not isinstance(new_sock, socket.socket):
        raise TypeError(
            f"rpyc.aio needs the authenticator to return a plain socket, not "
            f"{type(new_sock).__name__} (for TLS use rpyc.aio.ssl_connect / serve(ssl=...))"
        )
    return new_sock, dict(config, credentials=credentials)
