"""Callbacks in both directions: the server calling functions the client passed, the server
calling the client's own service, nested callbacks several levels deep, and callbacks served
without any background thread (the waiting caller serves them)."""

import threading

import pytest

import rpyc


class CallbackService(rpyc.Service):
    def on_connect(self, conn):
        self._conn = conn

    def exposed_apply(self, func, *args, **kwargs):
        return func(*args, **kwargs)

    def exposed_map(self, func, items):
        return tuple(func(x) for x in items)

    def exposed_ask_client(self, x):
        # call the client's own service (its root) while the client waits for this reply
        return self._conn.root.double(x) + 1

    def exposed_bounce(self, client_func, n):
        """Ping-pong: call the client back with n - 1; the client calls bounce again."""
        if n <= 0:
            return ("server-bottom",)
        return ("server", n) + tuple(client_func(n - 1))

    def exposed_thread_name(self):
        return threading.current_thread().name


class ClientService(rpyc.Service):
    def exposed_double(self, x):
        return 2 * x


def test_server_calls_a_client_function(harness):
    conn, _ = harness.pair(CallbackService)
    seen = []

    def callback(a, b=0):
        seen.append((a, b, threading.current_thread()))
        return a * 10 + b

    assert conn.root.apply(callback, 4, b=2) == 42
    # no background thread: the thread waiting for the reply served the callback
    assert seen == [(4, 2, threading.current_thread())]
    assert conn.root.map(lambda x: x + 1, (1, 2, 3)) == (2, 3, 4)


def test_server_calls_the_client_service(harness):
    conn, _ = harness.pair(CallbackService, client_service=ClientService)
    assert conn.root.ask_client(20) == 41


def test_client_callbacks_see_remote_objects(harness):
    conn, _ = harness.pair(CallbackService)
    # the client function receives a proxy of a server-side object and uses it
    result = conn.root.apply(lambda remote_list: len(remote_list), [1, 2, 3])
    assert result == 3


def test_nested_callbacks_depth(harness):
    conn, _ = harness.pair(CallbackService)
    root = conn.root
    depth = []

    def client_func(n):
        depth.append(n)
        return ("client", n) + tuple(root.bounce(client_func, n))

    out = root.bounce(client_func, 6)
    # client -> server -> client -> server ... six levels of nesting in each direction
    assert depth == [5, 4, 3, 2, 1, 0]
    assert out[:4] == ("server", 6, "client", 5)
    assert out[-1] == "server-bottom"
    assert len(out) == 2 * 6 + 2 * 6 + 1


def test_callback_exception_propagates_back(harness):
    conn, _ = harness.pair(CallbackService)

    def bad():
        raise KeyError("from the client")

    with pytest.raises(KeyError) as info:
        conn.root.apply(bad)
    # raised on the client, relayed through the server and back: two remote tracebacks
    assert "from the client" in str(info.value)
    assert "Remote Traceback (1)" in str(info.value)
    assert conn.root.apply(lambda: "still fine") == "still fine"
