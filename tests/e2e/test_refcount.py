"""Object lifetime across the connection: the owner's object table shrinks back when the
peer's proxies die, remote ``__del__`` runs once the last proxy is gone, and objects keep
their identity on a round trip."""

import gc

import rpyc

from .support import wait_until


class Tracked:
    deleted = []

    def __init__(self, name):
        self.name = name

    def __del__(self):
        Tracked.deleted.append(self.name)


class RefService(rpyc.Service):
    """One shared instance: remembers the server-side connection."""

    def __init__(self):
        self.conn = None
        self.stored = None

    def on_connect(self, conn):
        self.conn = conn

    def exposed_make_one(self, i):
        return [i]

    def exposed_make_many(self, n):
        return tuple([i] for i in range(n))

    def exposed_make_tracked(self, name):
        return Tracked(name)

    def exposed_echo(self, obj):
        return obj

    def exposed_store(self, obj):
        self.stored = obj

    def exposed_fetch(self):
        return self.stored

    def exposed_items(self):
        return self.__dict__.setdefault("_items", [1, 2])

    def exposed_is_items(self, obj):
        return obj is self.__dict__.get("_items")


def table_size(svc):
    """Entries in the server connection's object table (upstream's RefCountingColl has no
    len(); its dict is counted instead, so that this suite can also run against it)."""
    table = svc.conn._local_objects
    try:
        return len(table)
    except TypeError:
        return len(table._dict)


def settles_at(conn, svc, expected, timeout=10):
    """Ping (so that pending DEL requests are processed) until the server's table has
    ``expected`` entries."""
    def check():
        gc.collect()
        conn.ping()
        return table_size(svc) == expected
    return wait_until(check, timeout, interval=0.05)


def test_ten_thousand_netrefs_are_released(harness):
    svc = RefService()
    conn, _ = harness.pair(svc)
    root = conn.root
    baseline = table_size(svc)
    batch = root.make_many(10_000)  # 10,000 proxies in one reply
    assert len(batch) == 10_000 and batch[1234][0] == 1234
    assert table_size(svc) >= baseline + 10_000
    del batch
    assert settles_at(conn, svc, baseline), f"table has {table_size(svc)} entries, baseline {baseline}"


def test_netrefs_from_separate_calls_are_released(harness):
    svc = RefService()
    conn, _ = harness.pair(svc)
    root = conn.root
    make_one = root.make_one
    baseline = table_size(svc)
    proxies = [make_one(i) for i in range(2_000)]
    assert table_size(svc) >= baseline + 2_000
    assert proxies[-1][0] == 1999
    del proxies
    assert settles_at(conn, svc, baseline), f"table has {table_size(svc)} entries, baseline {baseline}"


def test_remote_del_runs_when_last_proxy_dies(harness):
    svc = RefService()
    conn, _ = harness.pair(svc)
    root = conn.root
    Tracked.deleted = []
    d1, d2, d3 = root.make_tracked("d1"), root.make_tracked("d2"), root.make_tracked("d3")
    d2_copy = d2

    def deleted():
        gc.collect()
        conn.ping()  # DEL requests sent before it are processed by now
        return sorted(Tracked.deleted)

    del d1, d3
    assert wait_until(lambda: deleted() == ["d1", "d3"], 5)
    del d2
    assert deleted() == ["d1", "d3"]  # d2_copy still refers to it
    del d2_copy
    assert wait_until(lambda: deleted() == ["d1", "d2", "d3"], 5)


def test_local_object_identity_round_trip(harness):
    conn, _ = harness.pair(RefService)
    root = conn.root

    class Local:
        pass

    obj = Local()
    assert root.echo(obj) is obj
    root.store(obj)
    assert root.fetch() is obj
    func = lambda: None  # noqa: E731
    assert root.echo(func) is func
    assert root.echo((obj, 1))[0] is obj  # inside a tuple too


def test_remote_object_identity_round_trip(harness):
    conn, _ = harness.pair(RefService)
    root = conn.root
    items = root.items()
    assert root.items() is items  # the live proxy is reused
    assert root.is_items(items)  # and travels back as the server's own object
    assert root.echo(items) is items


def test_identity_through_an_intermediate_server(harness):
    """client -> A -> B and back: A re-exports the client's object to B (chaining); what
    comes back to the client is the original object."""
    srv_b = harness.server(RefService)

    class Middle(rpyc.Service):
        def on_connect(self, conn):
            self.b = rpyc.connect("127.0.0.1", srv_b.port)

        def on_disconnect(self, conn):
            self.b.close()

        def exposed_via_b(self, obj):
            return self.b.root.echo(obj)

        def exposed_len_via_b(self, obj):
            return self.b.root.echo(obj).__len__()

    conn, _ = harness.pair(Middle)
    obj = [1, 2, 3]
    assert conn.root.via_b(obj) is obj
    assert conn.root.len_via_b(obj) == 3
