"""Graceful drain: ``Server.close(drain=...)`` and SIGTERM, with calls in flight."""

import signal
import socket
import threading
import time

import pytest

import rpyc
from rpyc.utils.registry import EtcdRegistryClient
from rpyc.utils.server import ThreadedServer, ThreadPoolServer


class SlowService(rpyc.Service):
    def exposed_sleep(self, seconds):
        time.sleep(seconds)
        return "slept"

    def exposed_sleep_then_call(self, seconds, callback):
        time.sleep(seconds)
        return callback()  # the answer must be read from the connection being drained


class Call:
    """A call of ``conn.root.sleep(seconds)`` in a thread: ``result`` or ``error``."""

    def __init__(self, conn, seconds, callback=None):
        self.result = self.error = None
        self.callback = callback
        self.thread = threading.Thread(target=self._run, args=(conn, seconds), daemon=True)
        self.thread.start()

    def _run(self, conn, seconds):
        try:
            if self.callback is not None:
                self.result = conn.root.sleep_then_call(seconds, self.callback)
            else:
                self.result = conn.root.sleep(seconds)
        except BaseException as exc:  # noqa: B902 (the test inspects it)
            self.error = exc

    def wait(self, timeout=15):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the call did not end"
        return self


def _serving(server, count=1, timeout=5.0):
    """Wait until the server has ``count`` calls being served (the call reached it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with server._conns_lock:
            busy = sum(getattr(c, "_engine_serving", 0) for c in server._conns.values())
        if busy >= count:
            return
        time.sleep(0.01)
    raise AssertionError("the call never reached the server")


def _closer(server, drain):
    timing = {}

    def run():
        t0 = time.monotonic()
        server.close(drain=drain)
        timing["took"] = time.monotonic() - t0

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, timing


def _refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


@pytest.mark.parametrize("server_class", [ThreadedServer, ThreadPoolServer])
def test_drain_lets_the_call_in_flight_finish(server_class):
    server = server_class(SlowService, hostname="127.0.0.1", port=0)
    server._start_in_thread()
    busy = rpyc.connect("127.0.0.1", server.port)
    idle = socket.create_connection(("127.0.0.1", server.port), timeout=5)  # a silent peer
    call = Call(busy, 1.0)
    _serving(server)
    closer, timing = _closer(server, drain=10)
    time.sleep(0.2)
    assert _refused(server.port), "a draining server still accepts"
    # The idle connection is ended cleanly (FIN: recv returns b"", no reset) while the
    # call is still running.
    assert idle.recv(1) == b""
    idle.close()
    assert call.thread.is_alive()
    assert call.wait().result == "slept" and call.error is None
    closer.join(10)
    assert not closer.is_alive()
    # ... and once the call is answered, its connection is closed too, long before the deadline
    assert 0.6 < timing["took"] < 5
    with pytest.raises(EOFError):
        busy.root.sleep(0)
    busy.close()


def test_drain_waits_for_a_call_that_calls_back():
    """A call that reads from its connection (a callback to the client) after the drain
    began still gets its answer: the connection is not ended while it serves a call."""
    server = ThreadedServer(SlowService, hostname="127.0.0.1", port=0)
    server._start_in_thread()
    conn = rpyc.connect("127.0.0.1", server.port)
    bg = rpyc.BgServingThread(conn)
    call = Call(conn, 1.0, callback=lambda: "called back")
    _serving(server)
    closer, _ = _closer(server, drain=10)
    assert call.wait().result == "called back", call.error
    closer.join(10)
    assert not closer.is_alive()
    bg.stop()
    conn.close()


def test_drain_deadline_closes_a_call_that_runs_too_long():
    server = ThreadedServer(SlowService, hostname="127.0.0.1", port=0)
    server._start_in_thread()
    conn = rpyc.connect("127.0.0.1", server.port)
    call = Call(conn, 5.0)
    _serving(server)
    t0 = time.monotonic()
    server.close(drain=0.5)
    took = time.monotonic() - t0
    assert 0.4 < took < 2
    assert isinstance(call.wait().error, EOFError)
    conn.close()


def test_close_without_drain_is_immediate():
    """Upstream's semantics stay the default: close ends calls in flight at once."""
    server = ThreadedServer(SlowService, hostname="127.0.0.1", port=0)
    server._start_in_thread()
    conn = rpyc.connect("127.0.0.1", server.port)
    call = Call(conn, 3.0)
    _serving(server)
    t0 = time.monotonic()
    server.close()
    assert time.monotonic() - t0 < 1
    assert isinstance(call.wait().error, EOFError)
    conn.close()


def test_drain_unregisters_before_the_calls_end(etcd):
    registrar = EtcdRegistryClient(etcd.url, ttl=5)
    server = ThreadedServer(SlowService, hostname="127.0.0.1", port=0, registrar=registrar, auto_register=True)
    server._start_in_thread()
    client = EtcdRegistryClient(etcd.url)
    deadline = time.monotonic() + 10
    while not client.discover("slow") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.discover("slow") == (("127.0.0.1", server.port),)
    conn = rpyc.connect_by_service("slow", registrar=client)
    call = Call(conn, 1.5)
    _serving(server)
    closer, _ = _closer(server, drain=10)
    time.sleep(0.5)
    assert call.thread.is_alive()
    assert client.discover("slow") == ()  # gone from discovery while the call still runs
    assert call.wait().result == "slept"
    closer.join(10)
    conn.close()


def test_sigterm_drains(procs):
    server = procs.server("--drain", "10")
    conn = rpyc.connect("127.0.0.1", server.port)
    call = Call(conn, 1.5)
    time.sleep(0.3)  # (the call reaches the server)
    server.proc.send_signal(signal.SIGTERM)
    time.sleep(0.8)  # (the handler runs within the accept loop's 0.5 s poll)
    assert _refused(server.port)
    assert call.thread.is_alive()
    assert call.wait().result == "slept"
    assert server.proc.wait(10) == 0
    assert "STOPPED" in server.log.read_text()
    conn.close()
