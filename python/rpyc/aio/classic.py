"""Classic mode over ``rpyc.aio``: full remote Python, awaited.

::

    async with rpyc.aio.classic.connect("127.0.0.1", port) as conn:
        pid = await conn.modules.os.getpid()
        two = await conn.eval("1 + 1")
        await conn.execute("x = 42")
        remote_f = await conn.teleport(f)

As with ``rpyc.classic``, both sides are slaves: only connect to peers you trust.
"""

from typing import Any, Callable, Dict, Generator, Optional

from rpyc.core.service import SlaveService
from rpyc.utils.classic import DEFAULT_SERVER_PORT, DEFAULT_SERVER_SSL_PORT

from rpyc.aio import _factory
from rpyc.aio._connection import Connection
from rpyc.aio._netref import RemoteOp

__all__ = ["connect", "ssl_connect", "unix_connect", "connect_socket", "teleport_function"]


class ModuleNamespace:
    """``conn.modules``: ``conn.modules.os`` and ``conn.modules["os.path"]`` are pending
    operations importing the module on the peer (``await`` them, or go on: ``await
    conn.modules.os.getpid()``)."""

    __slots__ = ("_conn",)

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def __getitem__(self, name: str) -> RemoteOp:
        return self._conn.root.getmodule(name)

    def __getattr__(self, name: str) -> RemoteOp:
        if name.startswith("__"):
            raise AttributeError(name)
        return self[name]

    async def contains(self, name: str) -> bool:
        """Whether the peer can import ``name`` (without importing it)."""
        finder = self["importlib.util"]._find_spec_from_path
        return await finder(name) is not None


def _install(conn: Connection) -> Connection:
    root = conn.root
    conn.modules = ModuleNamespace(conn)
    conn.builtins = conn.builtin = conn.modules.builtins
    conn.eval = root.eval
    conn.execute = root.execute
    conn.namespace = root.namespace

    async def teleport(func: Callable[..., Any], globals: Any = None, def_: bool = True) -> Any:
        return await teleport_function(conn, func, globals, def_)

    conn.teleport = teleport
    return conn


async def teleport_function(conn: Any, func: Callable[..., Any], globals: Any = None,
                            def_: bool = True) -> Any:
    """Send ``func`` to the peer as bytecode (see ``rpyc.classic.teleport_function``): a
    proxy of the peer's copy."""
    from rpyc.utils.teleportation import check_peer_bytecode, export_function

    exported = export_function(func)
    remote_sys = await conn.modules.sys
    hexversion = int(await remote_sys.hexversion)
    tag = await conn.eval("__import__('sys').implementation.cache_tag")
    version = ((hexversion >> 24) & 0xFF, (hexversion >> 16) & 0xFF)
    check_peer_bytecode(None if tag is None else str(tag), version,
                        what=repr(getattr(func, "__name__", func)))
    if globals is None:
        globals = await conn.namespace
    importer = conn.modules["rpyc.utils.teleportation"].import_function
    return await importer(exported, globals, def_)


class _Classic:
    """Awaitable and async context manager, like the factories' result, with the classic
    attributes installed on the connection."""

    __slots__ = ("_connecting",)

    def __init__(self, connecting: "_factory._Connecting") -> None:
        self._connecting = connecting

    def __await__(self) -> Generator[Any, None, Connection]:
        return self._made().__await__()

    async def _made(self) -> Connection:
        return _install(await self._connecting)

    async def __aenter__(self) -> Connection:
        return _install(await self._connecting.__aenter__())

    async def __aexit__(self, *exc: Any) -> None:
        await self._connecting.__aexit__(*exc)


def connect(host: str, port: int = DEFAULT_SERVER_PORT, ipv6: bool = False, keepalive: bool = False,
            authenticator: Any = None, config: Optional[Dict[str, Any]] = None) -> _Classic:
    """A classic connection to ``host:port`` (a classic server: ``rpyc_classic``,
    ``rpyc.utils.classic``'s servers, or an ``rpyc.aio.serve(rpyc.SlaveService)``)."""
    return _Classic(_factory.connect(host, port, SlaveService, config or {}, ipv6=ipv6,
                                     keepalive=keepalive, authenticator=authenticator))


def ssl_connect(host: str, port: int = DEFAULT_SERVER_SSL_PORT, keyfile: Optional[str] = None,
                certfile: Optional[str] = None, ca_certs: Optional[str] = None, cert_reqs: Any = None,
                ssl_version: Any = None, ciphers: Optional[str] = None, ipv6: bool = False,
                check_hostname: Optional[bool] = None) -> _Classic:
    """A classic connection over TLS (the arguments of ``rpyc.classic.ssl_connect``)."""
    return _Classic(_factory.ssl_connect(host, port, keyfile, certfile, ca_certs, cert_reqs, ssl_version,
                                         ciphers, SlaveService, ipv6=ipv6, check_hostname=check_hostname))


def unix_connect(path: str, authenticator: Any = None) -> _Classic:
    """A classic connection over the unix socket at ``path``."""
    return _Classic(_factory.unix_connect(path, SlaveService, authenticator=authenticator))


def connect_socket(sock: Any) -> _Classic:
    """A classic connection over a connected socket."""
    return _Classic(_factory.connect_socket(sock, SlaveService))
