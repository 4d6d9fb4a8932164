"""Data by value between rpyc-rs peers (docs/by-value.md): ``rpyc.by_value``,
``@rpyc.returns_by_value``, config ``by_value_types``, ``obtain`` without pickle and
``numpy.asarray(proxy)`` in one round trip. The tests without numpy run here too (see
test_by_value_no_numpy.py for a process where numpy cannot be imported)."""

import array
import asyncio
import threading

import pytest

import rpyc
import rpyc.aio
from rpyc.core import consts, extensions
from rpyc.core.netref import BaseNetref
from rpyc.utils.classic import obtain
from rpyc.utils.server import ThreadedServer

from .support import wait_until


class AioServer:
    """An ``rpyc.aio`` server on its own event loop in a thread, with the face the harness
    expects of a server class (``port``, ``_start_in_thread``, ``close``): the by-value
    tests run against it as against a ThreadedServer, and must give the same results."""

    def __init__(self, service, port=0, hostname="127.0.0.1", protocol_config=None):
        self._loop = asyncio.new_event_loop()
        self._args = dict(hostname=hostname, port=port, protocol_config=protocol_config)
        self._service = service
        self._server = None
        self._started = threading.Event()
        self._stopped = None

    def _run(self):
        asyncio.set_event_loop(self._loop)

        async def main():
            self._stopped = asyncio.Event()
            self._server = await rpyc.aio.serve(self._service, **self._args)
            self._started.set()
            await self._stopped.wait()
            self._server.close()
            await asyncio.wait_for(self._server.wait_closed(), 5)

        try:
            self._loop.run_until_complete(main())
        finally:
            self._started.set()
            self._loop.close()

    def _start_in_thread(self):
        thread = threading.Thread(target=self._run, name="aio-server", daemon=True)
        thread.start()
        assert self._started.wait(10) and self._server is not None, "the rpyc.aio server did not start"
        return thread

    @property
    def port(self):
        return self._server.port

    def close(self):
        if not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(self._stopped.set)
            except RuntimeError:  # (the loop closed meanwhile)
                pass


SERVER_KINDS = {"threaded": ThreadedServer, "aio": AioServer}


@pytest.fixture(params=sorted(SERVER_KINDS))
def server_cls(request):
    """Each by-value test runs against both server kinds."""
    return SERVER_KINDS[request.param]


class Thing:
    """Not data: stays a proxy inside a by-value value."""

    def exposed_hello(self):
        return "hi"


class DataService(rpyc.Service):
    def on_connect(self, conn):
        self.received = None

    def exposed_records(self, n):
        return [{"id": i, "name": f"r{i}", "tags": ("a", "b")} for i in range(n)]

    def exposed_records_by_value(self, n):
        return rpyc.by_value(self.exposed_records(n))

    @rpyc.returns_by_value
    def exposed_decorated(self):
        return {"nested": [1, [2, 3], {4, 5}], "t": (1, [2])}

    @rpyc.returns_by_value
    def exposed_mixed(self):
        return {"thing": Thing(), "things": [Thing()], "n": 1}

    def exposed_plain(self):
        return {"a": [1, 2]}

    def exposed_thing(self):
        return Thing()

    def exposed_store(self, value):
        self.received = value
        return type(value).__name__

    def exposed_received(self):
        return self.received

    def exposed_echo_types(self, value):
        return rpyc.by_value((type(value).__name__, value))

    def exposed_array(self, n):
        import numpy

        return numpy.arange(n, dtype=numpy.float64).reshape(-1, 2)

    def exposed_object_array(self):
        import numpy

        return numpy.array([object(), 1], dtype=object)

    def exposed_stdlib_array(self):
        return rpyc.by_value(array.array("i", [1, 2, 3]))

    def exposed_self_ref(self, obj):
        # a proxy of the client's own object inside a by-value value comes back as it
        return rpyc.by_value([obj, {"k": obj}])


def negotiated(conn):
    return wait_until(lambda: conn.ping() is None and extensions.FEATURE_BY_VALUE in conn._peer_features, timeout=5)


@pytest.fixture
def conn(harness, server_cls):
    c, _ = harness.pair(DataService, server_cls=server_cls)
    assert negotiated(c)
    return c


def test_feature_is_negotiated(conn):
    assert extensions.FEATURE_BY_VALUE in extensions.FEATURES
    assert extensions.FEATURE_BY_VALUE in conn._peer_features


def test_unmarked_containers_stay_proxies(conn):
    res = conn.root.plain()
    assert isinstance(res, BaseNetref)


def test_marked_result_is_a_local_copy(conn):
    res = conn.root.records_by_value(3)
    assert type(res) is list and not isinstance(res, BaseNetref)
    assert res == [{"id": i, "name": f"r{i}", "tags": ("a", "b")} for i in range(3)]
    assert type(res[0]) is dict
    res[0]["id"] = 99  # a real local object


def test_decorated_method(conn):
    res = conn.root.decorated()
    assert res == {"nested": [1, [2, 3], {4, 5}], "t": (1, [2])}
    assert type(res["nested"][2]) is set and type(res["t"][1]) is list


def test_decorated_method_called_locally_returns_plain_result():
    assert DataService().exposed_decorated() == {"nested": [1, [2, 3], {4, 5}], "t": (1, [2])}


class AsyncDataService(rpyc.Service):
    """What only an rpyc.aio server runs: coroutine handlers and plain ones called on the
    loop; ``@rpyc.returns_by_value`` applies to each as to the executor's."""

    @rpyc.returns_by_value
    async def exposed_awaited(self):
        await asyncio.sleep(0)
        return [{"a": 1}, {2}]

    @rpyc.aio.inline
    @rpyc.returns_by_value
    def exposed_inline(self):
        return {"b": [3]}

    async def exposed_unmarked(self):
        return [1]


def test_aio_coroutine_and_inline_handlers_return_by_value(harness):
    c, _ = harness.pair(AsyncDataService, server_cls=AioServer)
    assert negotiated(c)
    res = c.root.awaited()
    assert type(res) is list and res == [{"a": 1}, {2}] and type(res[1]) is set
    res = c.root.inline()
    assert type(res) is dict and type(res["b"]) is list
    assert isinstance(c.root.unmarked(), BaseNetref)


def test_what_is_not_data_stays_a_proxy(conn):
    res = conn.root.mixed()
    assert type(res) is dict and res["n"] == 1
    assert isinstance(res["thing"], BaseNetref) and res["thing"].hello() == "hi"
    assert type(res["things"]) is list and res["things"][0].hello() == "hi"


def test_own_objects_come_back_as_themselves(conn):
    mine = Thing()
    res = conn.root.self_ref(mine)
    assert res[0] is mine and res[1]["k"] is mine


def test_argument_by_value(conn):
    assert conn.root.store(rpyc.by_value({"x": [1, 2, {3}]})) == "dict"
    # the server got a real dict; it sends it back by value on request
    assert conn.root.echo_types(rpyc.by_value([1, (2, [3])])) == ("list", [1, (2, [3])])


def test_config_types(harness, server_cls):
    srv = harness.server(DataService, server_cls, protocol_config={"by_value_types": (list, dict)})
    c = harness.connect(srv)
    assert negotiated(c)
    res = c.root.plain()
    assert type(res) is dict and type(res["a"]) is list


def test_config_types_client_side(harness, server_cls):
    srv = harness.server(DataService, server_cls)
    c = harness.connect(srv, config={"by_value_types": (list,)})
    assert negotiated(c)
    assert c.root.store([1, 2]) == "list"
    assert c.root.store({"a": 1}) != "dict"  # not listed: a proxy of the dict


def test_obtain_without_pickle(conn):
    proxy = conn.root.plain()
    assert not conn._config["allow_pickle"]
    copy = obtain(proxy)
    assert copy == {"a": [1, 2]} and type(copy) is dict


def test_obtain_of_non_data_names_the_cause(conn):
    proxy = conn.root.thing()
    with pytest.raises(rpyc.ByValueError, match="Thing cannot travel by value.*allow_pickle"):
        obtain(proxy)
    assert conn.root.plain() is not None  # the connection lives


def test_obtain_of_non_data_uses_pickle_when_allowed(harness, server_cls):
    srv = harness.server(rpyc.ClassicService, server_cls)
    c = harness.track(rpyc.classic.connect("127.0.0.1", srv.port))
    assert negotiated(c)
    remote_dict = c.eval("{'a': [1, 2]}")
    assert obtain(remote_dict) == {"a": [1, 2]}  # by value
    frac = c.modules.fractions.Fraction(1, 3)
    assert obtain(frac) == __import__("fractions").Fraction(1, 3)  # not data: pickle


def test_upstream_behaviour_when_extensions_are_off(harness, server_cls):
    srv = harness.server(DataService, server_cls, protocol_config={"rpyc_rs_extensions": False})
    c = harness.connect(srv)
    assert c.ping() is None
    res = c.root.records_by_value(2)
    assert isinstance(res, BaseNetref)  # falls back to today's behaviour
    assert c.root.echo_types(rpyc.by_value((1, 2))) == ("tuple", (1, 2))  # brine


def test_stdlib_buffer_travels_as_an_array(conn):
    res = conn.root.stdlib_array()
    np = pytest.importorskip("numpy")
    assert isinstance(res, np.ndarray) and res.tolist() == [1, 2, 3]


def test_nesting_limit_applies(harness, server_cls):
    srv = harness.server(DataService, server_cls)
    c = harness.connect(srv, config={})
    assert negotiated(c)
    deep = []
    for _ in range(300):
        deep = [deep]
    with pytest.raises(ValueError, match="nest"):
        c.root.store(rpyc.by_value(deep))
    assert c.root.store(rpyc.by_value([[]])) == "list"


# -- numpy ----------------------------------------------------------------------------------


def test_numpy_asarray_of_a_proxy_is_one_round_trip(conn, monkeypatch):
    np = pytest.importorskip("numpy")
    proxy = conn.root.array(10)
    sent = []
    real = conn._sync_request

    def counting(handler, args):
        sent.append(handler)
        return real(handler, args)

    monkeypatch.setattr(conn, "_sync_request", counting)
    arr = np.asarray(proxy)
    assert sent == [consts.HANDLE_OBTAIN]
    assert isinstance(arr, np.ndarray) and arr.shape == (5, 2) and arr.dtype == np.float64
    assert arr.tolist() == np.arange(10.0).reshape(-1, 2).tolist()
    arr[0, 0] = 7  # writable, ours
    assert np.array(proxy, dtype=np.float32).dtype == np.float32


def test_numpy_array_argument_and_result(conn):
    np = pytest.importorskip("numpy")
    a = np.arange(24, dtype=np.int32).reshape(2, 3, 4)[:, ::2, 1:]  # not contiguous
    assert conn.root.store(rpyc.by_value(a)) == "ndarray"
    back = conn.root.echo_types(rpyc.by_value(a))
    assert back[0] == "ndarray" and (back[1] == a).all() and back[1].dtype == a.dtype


def test_numpy_dtypes(conn):
    np = pytest.importorskip("numpy")
    for a in (np.array([True, False]), np.array([1 + 2j]), np.array(["ab", "c"]),
              np.array([b"x"]), np.array(3.5), np.zeros((0, 3)), np.arange(4, dtype=">i4")):
        kind, back = conn.root.echo_types(rpyc.by_value(a))
        assert kind == "ndarray" and back.dtype == a.dtype and back.shape == a.shape
        assert (back == a).all()


def test_numpy_scalars_arrive_as_numpy_scalars_of_their_dtype(conn):
    np = pytest.importorskip("numpy")
    scalars = [np.float64(1.5), np.float32(-2.25), np.float16(0.5), np.int32(7), np.int8(-3),
               np.uint64(2**64 - 1), np.int64(-(2**63)), np.bool_(True), np.bool_(False),
               np.complex128(1 + 2j), np.complex64(-1j), np.bytes_(b"ab"), np.str_("h\u00e9")]
    for value in scalars:
        kind, back = conn.root.echo_types(rpyc.by_value(value))
        assert kind == type(value).__name__  # a numpy scalar at the server too
        assert type(back) is type(value) and back.dtype == value.dtype and back == value, value
    # inside containers, and apart from a 0-d array (which stays an array)
    kind, back = conn.root.echo_types(rpyc.by_value({"x": [np.int16(3), (np.float64(2.5),)],
                                                     "zero_d": np.array(4.5)}))
    assert type(back["x"][0]) is np.int16 and type(back["x"][1][0]) is np.float64
    assert type(back["zero_d"]) is np.ndarray and back["zero_d"].shape == ()
    # a scalar of a dtype that is not plain data travels as its Python value
    stamp = np.datetime64("2024-01-02T03:04:05", "s")
    assert conn.root.echo_types(rpyc.by_value([stamp]))[1] == [stamp.item()]


def test_object_dtype_is_refused_with_a_clear_error(conn):
    pytest.importorskip("numpy")
    proxy = conn.root.object_array()
    import numpy as np

    with pytest.raises(rpyc.ByValueError, match="Python objects"):
        np.asarray(proxy)
    assert conn.root.plain() is not None


def test_array_over_the_frame_limit_is_refused_before_copying(harness, server_cls):
    np = pytest.importorskip("numpy")
    srv = harness.server(DataService, server_cls, protocol_config={"max_frame_size": 1 << 20})
    c = harness.connect(srv, config={"max_frame_size": 1 << 20})
    assert negotiated(c)
    big = np.zeros(1 << 18)  # 2 MiB
    with pytest.raises(rpyc.ByValueError, match="max_frame_size"):
        c.root.store(rpyc.by_value(big))
    proxy = c.root.array(1 << 18)
    with pytest.raises(rpyc.ByValueError, match="max_frame_size"):
        np.asarray(proxy)
    assert c.root.store(rpyc.by_value(np.zeros(4))) == "ndarray"


def test_2gib_array_fails_with_a_named_error_not_an_allocation(conn):
    np = pytest.importorskip("numpy")
    # a 2 GiB view of 8 bytes: nothing is allocated unless it is copied
    huge = np.lib.stride_tricks.as_strided(np.zeros(1), shape=(1 << 28,), strides=(0,))
    assert huge.nbytes == 2 << 30
    with pytest.raises(rpyc.ByValueError, match="frames are limited"):
        conn.root.store(rpyc.by_value(huge))
    assert conn.root.plain() is not None
