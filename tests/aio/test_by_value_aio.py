"""``rpyc.aio.obtain`` decides as ``rpyc.utils.classic.obtain`` (docs/by-value.md): data from
an rpyc-rs peer (a ThreadedServer or an rpyc.aio server) is copied by value without pickle;
an object that is not data needs pickle, which only this side's ``allow_pickle`` allows.
(Against an upstream server: tests/interop/test_by_value_interop.py.)"""

import asyncio
import fractions
import threading

import pytest

import rpyc
import rpyc.aio
from rpyc.core import consts, extensions
from rpyc.utils.server import ThreadedServer

from aio_support import run


class Thing:
    """Not data: ``obtain`` needs pickle for it."""

    def exposed_hello(self):
        return "hi"


class DataService(rpyc.Service):
    def exposed_plain(self):
        return {"a": [1, 2, {3}], "t": (1, [2])}

    def exposed_thing(self):
        return Thing()

    def exposed_fraction(self):
        return fractions.Fraction(1, 3)

    def exposed_array(self):
        import numpy

        return numpy.arange(6, dtype=numpy.int16).reshape(2, 3)

    def exposed_more(self):
        return [{"k": "v"}]


PICKLE = {"allow_pickle": True, "allow_public_attrs": True}


class _Threaded:
    """A ThreadedServer in a thread, as an async context manager."""

    def __init__(self, config):
        self.server = ThreadedServer(DataService, port=0, hostname="127.0.0.1", protocol_config=config)
        self.thread = threading.Thread(target=self.server.start, daemon=True)

    async def __aenter__(self):
        self.thread.start()
        return self.server

    async def __aexit__(self, *exc):
        self.server.close()
        await asyncio.get_running_loop().run_in_executor(None, self.thread.join, 5)


def _server(kind, config):
    if kind == "threaded":
        return _Threaded(config)
    return _AioServer(config)


class _AioServer:
    def __init__(self, config):
        self.config = config

    async def __aenter__(self):
        self.server = await rpyc.aio.serve(DataService, hostname="127.0.0.1", port=0, protocol_config=self.config)
        return self.server

    async def __aexit__(self, *exc):
        self.server.close()
        await asyncio.wait_for(self.server.wait_closed(), 5)


async def _negotiated(conn):
    for _ in range(100):
        await conn.root.plain  # (a round trip: the hello's answer arrived before its answer)
        if extensions.FEATURE_BY_VALUE in conn._peer_features:
            return True
        await asyncio.sleep(0.01)
    return False


def _counting(conn):
    """Record the handlers of the requests ``conn`` sends."""
    sent = []
    real = conn._send_request

    def send(handler, args, *rest):
        sent.append(handler)
        return real(handler, args, *rest)

    conn._send_request = send
    return sent


KINDS = pytest.mark.parametrize("kind", ["threaded", "aio"])


@KINDS
def test_obtain_copies_data_without_pickle(kind):
    async def main():
        async with _server(kind, {}) as server:
            async with rpyc.aio.connect("127.0.0.1", server.port) as conn:
                assert await _negotiated(conn)
                assert not conn._config["allow_pickle"]
                proxy = await conn.root.plain()
                assert isinstance(proxy, rpyc.aio.AsyncNetref)
                sent = _counting(conn)
                copy = await rpyc.aio.obtain(proxy)
                assert sent == [consts.HANDLE_OBTAIN]
                assert copy == {"a": [1, 2, {3}], "t": (1, [2])} and type(copy["a"][2]) is set
                # a pending operation is awaited first; a local object is returned as it is
                assert await rpyc.aio.obtain(conn.root.more()) == [{"k": "v"}]
                mine = [1]
                assert await rpyc.aio.obtain(mine) is mine

    run(main)


@KINDS
def test_obtain_of_an_array_without_pickle(kind):
    np = pytest.importorskip("numpy")

    async def main():
        async with _server(kind, {}) as server:
            async with rpyc.aio.connect("127.0.0.1", server.port) as conn:
                assert await _negotiated(conn)
                arr = await rpyc.aio.obtain(conn.root.array())
                assert isinstance(arr, np.ndarray) and arr.dtype == np.int16
                assert arr.tolist() == [[0, 1, 2], [3, 4, 5]]

    run(main)


@KINDS
def test_obtain_of_non_data_names_allow_pickle(kind):
    async def main():
        async with _server(kind, PICKLE) as server:
            async with rpyc.aio.connect("127.0.0.1", server.port) as conn:
                assert await _negotiated(conn)
                with pytest.raises(rpyc.ByValueError, match="Thing cannot travel by value.*allow_pickle"):
                    await rpyc.aio.obtain(conn.root.thing())
                assert await rpyc.aio.obtain(conn.root.plain()) == {"a": [1, 2, {3}], "t": (1, [2])}

    run(main)


@KINDS
def test_obtain_of_non_data_uses_pickle_when_this_side_allows_it(kind):
    async def main():
        async with _server(kind, PICKLE) as server:
            async with rpyc.aio.connect("127.0.0.1", server.port, config=PICKLE) as conn:
                assert await _negotiated(conn)
                sent = _counting(conn)
                assert await rpyc.aio.obtain(conn.root.fraction()) == fractions.Fraction(1, 3)
                # by value first (refused: not data), then pickle
                assert sent[-2:] == [consts.HANDLE_OBTAIN, consts.HANDLE_PICKLE]

    run(main)


def test_obtain_uses_pickle_when_the_extensions_are_off():
    async def main():
        async with _server("aio", dict(PICKLE, rpyc_rs_extensions=False)) as server:
            async with rpyc.aio.connect("127.0.0.1", server.port) as conn:
                await conn.root.plain
                assert extensions.FEATURE_BY_VALUE not in conn._peer_features
                with pytest.raises(ValueError, match="allow_pickle"):
                    await rpyc.aio.obtain(conn.root.plain())
            async with rpyc.aio.connect("127.0.0.1", server.port, config=PICKLE) as conn:
                sent = _counting(conn)
                assert await rpyc.aio.obtain(conn.root.plain()) == {"a": [1, 2, {3}], "t": (1, [2])}
                assert consts.HANDLE_OBTAIN not in sent and consts.HANDLE_PICKLE in sent

    run(main)
