"""rpyc-rs protocol extensions between two rpyc-rs peers (rpyc.core.extensions): the
hello negotiation and batched iteration, which must keep upstream's semantics: items of a
generator are produced only when asked for, errors surface at the same place, and nothing
changes when either side turns the extensions off."""

import pytest

import rpyc
from rpyc.core import consts, extensions

from .support import wait_until


class IterService(rpyc.Service):
    def on_connect(self, conn):
        self.produced = 0
        self.batches = 0

    def exposed_numbers(self, n):
        return list(range(n))

    def exposed_counted(self, n):
        for i in range(n):
            self.produced += 1
            yield i

    def exposed_mapping(self):
        return {"a": 1, "b": 2}

    def exposed_produced(self):
        return self.produced


def count_requests(conn, monkeypatch):
    """The handler ids of the synchronous requests ``conn`` sends from now on."""
    sent = []
    real = conn._sync_request

    def counting(handler, args):
        sent.append(handler)
        return real(handler, args)

    monkeypatch.setattr(conn, "_sync_request", counting)
    return sent


def negotiated(conn):
    return wait_until(lambda: conn.ping() is None and conn._peer_features, timeout=5)


def test_rpyc_rs_peers_agree_on_batched_iteration(harness):
    conn, _ = harness.pair(IterService)
    assert negotiated(conn)
    assert conn._peer_features == extensions.FEATURES
    assert sum(conn.root.numbers(10_000)) == sum(range(10_000))
    assert sorted(conn.root.mapping()) == ["a", "b"]


def test_the_root_class_comes_with_the_hello(harness, monkeypatch):
    conn, _ = harness.pair(IterService)
    assert negotiated(conn)
    assert conn._remote_root is None  # GETROOT not sent yet
    sent = count_requests(conn, monkeypatch)
    assert conn.root.produced() == 0
    assert sent[0] == consts.HANDLE_GETROOT and consts.HANDLE_INSPECT not in sent
    assert "exposed_numbers" in dir(type(conn.root))


@pytest.mark.parametrize("garbage", [
    None, (), ("x",), (("a", 1), ()), (("a", 1, 2), [("m", None)]), (("a", "1", 2), ()),
])
def test_a_malformed_root_description_is_ignored(harness, garbage):
    conn, _ = harness.pair(IterService)
    before = dict(conn._netref_classes_cache)
    extensions._learn_root_class(conn, garbage)
    assert conn._netref_classes_cache == before
    assert conn.root.produced() == 0


def test_odd_method_lists_are_taken_as_after_inspect(harness):
    conn, _ = harness.pair(IterService)
    extensions._learn_root_class(conn, (("odd.Thing", 1, 2), (("m", 5), ["n", None])))
    cls = conn._netref_classes_cache[("odd.Thing", 1)]
    assert hasattr(cls, "m") and hasattr(cls, "n")
    assert conn.root.produced() == 0


def test_without_the_extension_the_root_class_is_inspected(harness, monkeypatch):
    conn, _ = harness.pair(IterService, protocol_config={"rpyc_rs_extensions": False})
    assert conn.ping() is None and not conn._peer_features
    sent = count_requests(conn, monkeypatch)
    assert conn.root.produced() == 0
    assert consts.HANDLE_INSPECT in sent


def test_batched_iteration_takes_few_round_trips(harness, monkeypatch):
    conn, _ = harness.pair(IterService)
    assert negotiated(conn)
    remote = conn.root.numbers(1000)
    sent = count_requests(conn, monkeypatch)
    assert list(remote) == list(range(1000))
    batches = sent.count(consts.HANDLE_ITER_BATCH)
    assert 1000 // extensions.ITER_BATCH_SIZE <= batches <= 1000 // extensions.ITER_BATCH_SIZE + 1


def test_generators_are_not_read_ahead(harness):
    conn, _ = harness.pair(IterService)
    assert negotiated(conn)
    gen = conn.root.counted(100)
    assert next(gen) == 0
    assert conn.root.produced() == 1  # one item asked for, one produced
    assert next(gen) == 1
    assert conn.root.produced() == 2


class Failing:
    """An iterator that yields 0, 1, 2 and then fails."""

    def __init__(self):
        self.i = 0

    def __iter__(self):
        return self

    def __next__(self):
        if self.i == 3:
            raise ValueError("broken at 3")
        self.i += 1
        return self.i - 1


def test_an_error_after_some_items_surfaces_at_its_place(harness, monkeypatch):
    conn, _ = harness.pair(IterService)
    server_conn = type("Owner", (), {"_iter_errors": {}, "_handle_getattr": staticmethod(getattr)})()
    monkeypatch.setattr(extensions, "_READ_AHEAD_TYPES", extensions._READ_AHEAD_TYPES | {Failing})
    it = Failing()
    assert extensions.serve_iter_batch(server_conn, it, 10) == ((0, 1, 2), False)
    with pytest.raises(ValueError, match="broken at 3"):
        extensions.serve_iter_batch(server_conn, it, 10)
    with pytest.raises(StopIteration):
        next(iter(conn.root.numbers(0)))


@pytest.mark.parametrize("side", ["client", "server"])
def test_extensions_can_be_turned_off_on_either_side(harness, side):
    off = {"rpyc_rs_extensions": False}
    if side == "client":
        conn, _ = harness.pair(IterService, client_config=off)
    else:
        conn, _ = harness.pair(IterService, protocol_config=off)
    conn.ping()
    conn.ping()
    assert conn._peer_features == frozenset()
    assert list(conn.root.numbers(300)) == list(range(300))


def test_ping_data_that_is_not_a_hello_is_echoed(harness):
    conn, _ = harness.pair(IterService)
    assert conn.root  # connected
    from rpyc.core import consts as c

    assert conn.sync_request(c.HANDLE_PING, ("rpyc-rs/hello", "x")) == ("rpyc-rs/hello", "x")
