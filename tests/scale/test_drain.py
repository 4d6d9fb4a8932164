"""Graceful drain: ``Server.close(drain=...)`` and SIGTERM, with calls in flight."""

import signal
import socket
import threading
import time

import pytest

import rpyc
from rpyc.utils.registry import EtcdRegistryClient
from rpyc.utils.server import ThreadedServer, ThreadPoolServer


ENTERED = threading.Semaphore(0)  # released by each call when it starts on the server


@pytest.fixture(autouse=True)
def _fresh_entered():
    while ENTERED.acquire(blocking=False):  # (a previous test's leftovers)
        pass


class SlowService(rpyc.Service):
    def exposed_sleep(self, seconds):
        ENTERED.release()
        time.sleep(seconds)
        return "slept"

    def exposed_sleep_then_call(self, seconds, callback):
        ENTERED.release()
        time.sleep(seconds)
        return callback()  # the answer must be read from the connection being drained


class Call:
    """A call of ``conn.root.sleep(seconds)`` in a thread: ``result`` or ``error``."""

    def __init__(self, conn, seconds, callback=None):
        self.result = self.error = None
        self.callback = callback
        # The root first: a drain that began between GETROOT and the call would (rightly)
        # end the then idle connection, which is not what these tests look at.
        conn.root
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


def _serving(server, timeout=5.0):
    """Wait until the call started on the server, and check that its connection counts it
    as being served."""
    assert ENTERED.acquire(timeout=timeout), "the call never reached the server"
    with server._conns_lock:
        busy = sum(getattr(c, "_engine_serving", 0) for c in server._conns.values())
    assert busy == 1


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
    # (the calling thread serves the callback while it waits for its answer)
    call = Call(conn, 1.0, callback=lambda: "called back")
    _serving(server)
    closer, _ = _closer(server, drain=10)
    assert call.wait().result == "called back", call.error
    closer.join(10)
    assert not closer.is_alive()
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


@pytest.mark.parametrize("server_class", [ThreadedServer, ThreadPoolServer])
def test_drain_ends_backlog_connections_cleanly(server_class):
    """Connections the kernel completed but the server never accepted end with a FIN, not
    the reset that closing the listener would send them."""
    server = server_class(SlowService, hostname="127.0.0.1", port=0)
    server._listen()  # listening, but nothing accepts
    waiting = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(3)]
    time.sleep(0.1)
    server.close(drain=5)
    for sock in waiting:
        assert sock.recv(1) == b""  # (a reset raises ConnectionResetError)
        sock.close()


def test_drain_over_tls(tmp_path):
    """Over TLS (SSLAuthenticator: the served socket is a wrapper of the accepted one) the
    call in flight finishes and the idle connection ends."""
    from tls_certs import make_pki

    from rpyc.utils.authenticators import SSLAuthenticator

    pki = make_pki(tmp_path / "pki")
    server = ThreadedServer(SlowService, hostname="127.0.0.1", port=0,
                            authenticator=SSLAuthenticator(pki["server.key"], pki["server.pem"]))
    server._start_in_thread()
    busy = rpyc.ssl_connect("127.0.0.1", server.port, ca_certs=pki["ca.pem"])
    idle = rpyc.ssl_connect("127.0.0.1", server.port, ca_certs=pki["ca.pem"])
    idle.root  # (set up on the server)
    call = Call(busy, 1.0)
    _serving(server)
    closer, timing = _closer(server, drain=10)
    assert call.wait().result == "slept", call.error
    closer.join(10)
    assert not closer.is_alive() and timing["took"] < 5
    with pytest.raises(EOFError):
        idle.root.sleep(0)
    busy.close()
    idle.close()
