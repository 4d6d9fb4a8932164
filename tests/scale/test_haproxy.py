"""HAProxy (TCP mode, examples/haproxy/haproxy.cfg.in) in front of 3 RPyC server processes:
the RPyC health check, connections spread across the 3, and a killed server taken out of
rotation without failing new connections."""

import collections
import signal
import socket
import threading
import time

import rpyc

from .engines import free_port


def _wait_states(proxy, want, timeout=10.0):
    deadline = time.monotonic() + timeout
    states = {}
    while time.monotonic() < deadline:
        states = proxy.server_states()
        if all(states.get(name, "").startswith(state) for name, state in want.items()):
            return states
        time.sleep(0.1)
    raise AssertionError(f"haproxy states {states}, wanted {want}")


class NotRpyc:
    """Accepts TCP connections and answers nonsense: a TCP check passes, an RPyC one not."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while self.running:
            try:
                client, _ = self.sock.accept()
            except OSError:
                continue
            with client:
                try:
                    client.sendall(b"HTTP/1.0 200 OK\r\n\r\n")
                except OSError:
                    pass

    def close(self):
        self.running = False
        self.thread.join(2)
        self.sock.close()


def _whoami(port):
    with rpyc.connect("127.0.0.1", port) as conn:
        return conn.root.whoami()


def test_haproxy_spreads_and_survives_a_killed_server(procs):
    servers = [procs.server() for _ in range(3)]
    impostor = NotRpyc()
    try:
        proxy = procs.haproxy([s.port for s in servers] + [impostor.port])
        # the RPyC check: the 3 servers up, the TCP-only impostor down
        _wait_states(proxy, {"rpyc1": "UP", "rpyc2": "UP", "rpyc3": "UP", "rpyc4": "DOWN"})
    finally:
        impostor.close()

    # 30 connections held open: leastconn gives each server 10
    conns = [rpyc.connect("127.0.0.1", proxy.port) for _ in range(30)]
    pids = collections.Counter(conn.root.whoami() for conn in conns)
    for conn in conns:
        conn.close()
    assert sorted(pids) == sorted(s.proc.pid for s in servers), pids
    assert all(count == 10 for count in pids.values()), pids

    # kill one: every new connection still succeeds, on the 2 others, at once (retries
    # with redispatch) and after the health check took it out
    victim = servers[0]
    victim.proc.send_signal(signal.SIGKILL)
    victim.proc.wait(5)
    after = collections.Counter(_whoami(proxy.port) for _ in range(30))
    assert victim.proc.pid not in after and sum(after.values()) == 30, after
    assert set(after) == {servers[1].proc.pid, servers[2].proc.pid}, after
    _wait_states(proxy, {"rpyc1": "DOWN", "rpyc2": "UP", "rpyc3": "UP"})
    assert {_whoami(proxy.port) for _ in range(10)} <= {servers[1].proc.pid, servers[2].proc.pid}


def test_haproxy_config_template_checks_a_plain_port(procs):
    """Nothing listening: the RPyC check marks the server DOWN (it does not pass by default)."""
    proxy = procs.haproxy([free_port()])
    _wait_states(proxy, {"rpyc1": "DOWN"})
