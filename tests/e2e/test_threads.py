"""Threads: ``BgServingThread`` serving callbacks that a server-side thread makes, several
client threads sharing one connection, and many connections to one ``ThreadedServer``."""

import threading
import time

import rpyc


class TickService(rpyc.Service):
    def __init__(self):
        self.threads = []

    def exposed_start_ticking(self, callback, count, interval):
        """Call ``callback(i)`` from a server thread, ``count`` times, ``interval`` s apart
        (the first call too: it comes after this request was answered)."""
        def run():
            for i in range(count):
                time.sleep(interval)
                callback(i)

        t = threading.Thread(target=run, name="ticker", daemon=True)
        self.threads.append(t)
        t.start()

    def exposed_slow_add(self, a, b, delay):
        time.sleep(delay)
        return a + b

    def exposed_echo(self, x):
        return x

    def exposed_wrap(self, x):
        return [x]  # a proxy comes back

    def exposed_identity(self):
        return id(self)


def test_bg_serving_thread_serves_server_callbacks(harness):
    svc = TickService()
    conn, _ = harness.pair(svc)
    ticks = []
    ticked = threading.Event()

    def on_tick(i):
        ticks.append(i)
        if len(ticks) == 10:
            ticked.set()

    bg = rpyc.BgServingThread(conn)
    try:
        conn.root.start_ticking(on_tick, 10, 0.02)
        # the main thread keeps making its own calls meanwhile
        for i in range(5):
            assert conn.root.slow_add(i, 1, 0.03) == i + 1
        assert ticked.wait(10), f"only {len(ticks)} ticks arrived"
    finally:
        bg.stop()
    assert ticks == list(range(10))
    for t in svc.threads:
        t.join(5)


def test_server_thread_callbacks_need_someone_serving(harness):
    svc = TickService()
    conn, _ = harness.pair(svc)
    ticks = []
    conn.root.start_ticking(ticks.append, 3, 0.1)
    time.sleep(0.4)
    assert ticks == []  # the server thread waits: nobody reads the client's socket
    deadline = time.monotonic() + 5
    while len(ticks) < 3 and time.monotonic() < deadline:
        conn.poll_all(0.05)  # serving by hand (no BgServingThread)
    assert ticks == [0, 1, 2]
    for t in svc.threads:
        t.join(5)


def test_many_threads_share_one_connection(harness):
    conn, _ = harness.pair(TickService)
    root = conn.root
    errors = []
    results = {}

    def worker(tid):
        try:
            out = []
            for i in range(40):
                out.append(root.echo((tid, i)))
                wrapped = root.wrap(tid * 1000 + i)
                out.append(wrapped[0])
            results[tid] = out
        except Exception as exc:  # reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=worker, args=(tid,)) for tid in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    for tid in range(8):
        expected = []
        for i in range(40):
            expected += [(tid, i), tid * 1000 + i]
        assert results[tid] == expected


def test_many_connections_to_one_threaded_server(harness):
    srv = harness.server(TickService)
    conns = [harness.connect(srv) for _ in range(20)]
    # one service instance per connection
    assert len({c.root.identity() for c in conns}) == 20
    results = [None] * len(conns)

    def call(k):
        results[k] = conns[k].root.slow_add(k, 100, 0.3)

    threads = [threading.Thread(target=call, args=(k,)) for k in range(len(conns))]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    elapsed = time.monotonic() - t0
    assert results == [k + 100 for k in range(len(conns))]
    assert elapsed < 3.0, f"connections were not served in parallel ({elapsed:.1f}s)"
