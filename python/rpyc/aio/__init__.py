"""asyncio-native RPyC (docs/asyncio.md): ``await`` remote calls, ``async def`` services,
one event loop serving every connection.

::

    server = await rpyc.aio.serve(Calc, port=0)
    async with rpyc.aio.connect("127.0.0.1", server.port) as conn:
        print(await conn.root.add(5, 10))

Connections share the protocol engine of the blocking ones (``rpyc._core``): the same
wire format, limits and extensions, so an ``rpyc.aio`` client talks to any RPyC 6 server
and an ``rpyc.aio`` server serves any RPyC 6 client.
"""

from rpyc.aio._connection import Connection, inline
from rpyc.aio._factory import connect, connect_socket, ssl_connect, unix_connect
from rpyc.aio._helpers import (  # noqa: A004 (the builtins' names, on purpose)
    block,
    bool,
    compare,
    contains,
    delattr,
    delitem,
    dir,
    getattr,
    hash,
    iter,
    len,
    list,
    next,
    obtain,
    repr,
    setattr,
    setitem,
    str,
)
from rpyc.aio._netref import AsyncNetref, RemoteOp
from rpyc.aio._server import Server, serve
from rpyc.aio import classic  # noqa: E402 (needs the names above)

__all__ = [
    "AsyncNetref", "Connection", "RemoteOp", "Server", "block", "classic", "bool", "compare", "connect",
    "connect_socket", "contains", "delattr", "delitem", "dir", "getattr", "hash", "inline",
    "iter", "len", "list", "next", "obtain", "repr", "serve", "setattr", "setitem", "ssl_connect", "str",
    "unix_connect",
]
