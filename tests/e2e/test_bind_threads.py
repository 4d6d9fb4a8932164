"""``bind_threads=True`` on both ends: plain calls, nested callbacks (each reply goes to the
thread that waits for it) and several client threads at once."""

import threading

import rpyc

BIND = {"bind_threads": True}


class BoundService(rpyc.Service):
    def on_connect(self, conn):
        self._conn = conn

    def exposed_add(self, a, b):
        return a + b

    def exposed_bounce(self, client_func, n):
        if n <= 0:
            return (threading.get_ident(),)
        return (threading.get_ident(),) + tuple(client_func(n - 1))

    def exposed_ask_client(self, x):
        return self._conn.root.triple(x)


class ClientService(rpyc.Service):
    def exposed_triple(self, x):
        return 3 * x


def bound_pair(harness, client_service=rpyc.VoidService):
    return harness.pair(BoundService, client_service=client_service, client_config=dict(BIND),
                        protocol_config=dict(BIND))


def test_bind_threads_calls(harness):
    conn, _ = bound_pair(harness, ClientService)
    assert conn._config["bind_threads"] is True
    assert conn.root.add(40, 2) == 42
    assert conn.root.ask_client(5) == 15
    conn.ping()


def test_bind_threads_nested_callbacks(harness):
    conn, _ = bound_pair(harness)
    root = conn.root
    client_threads = []

    def client_func(n):
        client_threads.append(threading.get_ident())
        return root.bounce(client_func, n)

    server_threads = root.bounce(client_func, 5)
    assert len(server_threads) == 6
    # with binding, every nested callback runs in the thread that made the outer call
    assert set(client_threads) == {threading.get_ident()}
    assert len(set(server_threads)) == 1


def test_bind_threads_concurrent_client_threads(harness):
    conn, _ = bound_pair(harness)
    root = conn.root
    results, errors = {}, []

    def worker(tid):
        try:
            out = []
            for i in range(20):
                out.append(root.add(tid, i))
                out.append(len(root.bounce(lambda n: root.bounce(lambda m: (), 0), 1)))
            results[tid] = out
        except Exception as exc:
            errors.append(repr(exc))

    threads = [threading.Thread(target=worker, args=(tid,)) for tid in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    for tid in range(4):
        assert results[tid] == [x for i in range(20) for x in (tid + i, 2)]
