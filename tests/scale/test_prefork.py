"""PreforkServer (N workers sharing one listening socket) and ForkingServer's drain, over
real sockets, each server in a subprocess (tests/scale/serve.py): worker pids, a killed
worker replaced, drains with a call in flight, every child reaped."""

import os
import signal
import sys
import threading
import time

import pytest

import rpyc

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="reads child processes from /proc (PreforkServer is POSIX)")


def children_of(pid):
    """The pids whose parent is ``pid`` (zombies included: /proc lists them until reaped)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # (the command name, in parentheses, may hold spaces: fields follow its last ')')
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == pid:
            found.append(int(entry))
    return sorted(found)


def gone(pid):
    """True once ``pid`` no longer exists, not even as a zombie."""
    return not os.path.exists(f"/proc/{pid}")


def wait_for(check, what, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def pids_seen(port, clients=8, seconds=0.05):
    """The worker pids that answer ``clients`` connections made at the same time, each
    calling a CPU-bound method (a busy worker is slow to accept: the others take over)."""
    pids = []
    lock = threading.Lock()

    def one():
        conn = rpyc.connect("127.0.0.1", port)
        try:
            pid = conn.root.spin(seconds)
        finally:
            conn.close()
        with lock:
            pids.append(pid)

    threads = [threading.Thread(target=one, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert len(pids) == clients, "a client failed"
    return set(pids)


class InFlight:
    """``conn.root.sleep(seconds)`` in a thread."""

    def __init__(self, conn, seconds):
        conn.root  # (the connection is set up before the drain begins)
        self.result = self.error = None
        self.thread = threading.Thread(target=self._run, args=(conn, seconds), daemon=True)
        self.thread.start()

    def _run(self, conn, seconds):
        try:
            self.result = conn.root.sleep(seconds)
        except BaseException as exc:  # noqa: B902 (the test inspects it)
            self.error = exc

    def wait(self, timeout=15):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the call did not end"
        return self


def test_connections_land_on_different_workers(procs):
    server = procs.server("--workers", "2")
    workers = wait_for(lambda: len(children_of(server.proc.pid)) == 2 and children_of(server.proc.pid),
                       "2 workers")
    seen = set()
    for _ in range(20):  # (bounded: the kernel chooses, but 20 rounds of 8 never all go to one)
        seen |= pids_seen(server.port)
        if len(seen) == 2:
            break
    assert seen == set(workers)
    assert server.proc.pid not in seen  # the supervisor serves nothing
    # ... and runs no thread (nothing holds a lock when it forks a replacement worker)
    assert os.listdir(f"/proc/{server.proc.pid}/task") == [str(server.proc.pid)]


def test_a_killed_worker_is_replaced(procs):
    server = procs.server("--workers", "2")
    workers = wait_for(lambda: len(children_of(server.proc.pid)) == 2 and children_of(server.proc.pid),
                       "2 workers")
    os.kill(workers[0], signal.SIGKILL)
    wait_for(lambda: gone(workers[0]), "the killed worker to be reaped (no zombie)")
    # new connections keep working meanwhile and afterwards
    for _ in range(5):
        conn = rpyc.connect("127.0.0.1", server.port)
        assert conn.root.whoami() != workers[0]
        conn.close()
    replaced = wait_for(lambda: len(children_of(server.proc.pid)) == 2 and children_of(server.proc.pid),
                        "a new worker")
    assert workers[1] in replaced and workers[0] not in replaced
    seen = set()
    for _ in range(20):
        seen |= pids_seen(server.port)
        if len(seen) == 2:
            break
    assert seen == set(replaced)


def test_sigterm_drains_every_worker_and_reaps_them(procs):
    server = procs.server("--workers", "2", "--drain", "10")
    workers = wait_for(lambda: len(children_of(server.proc.pid)) == 2 and children_of(server.proc.pid),
                       "2 workers")
    conns, busy = [], {}
    while len(busy) < 2 and len(conns) < 50:  # a connection on each worker
        conns.append(rpyc.connect("127.0.0.1", server.port))
        busy.setdefault(conns[-1].root.whoami(), conns[-1])
    assert set(busy) == set(workers)
    calls = [InFlight(conn, 1.5) for conn in busy.values()]
    time.sleep(0.3)  # (the calls reach the workers)
    t0 = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)  # the supervisor only
    for call in calls:
        assert call.wait().result == "slept", call.error
    assert server.proc.wait(10) == 0
    took = time.monotonic() - t0
    assert 1.0 < took < 5, took  # (not the 10 s deadline: drained workers exit)
    assert "STOPPED" in server.log.read_text()
    for pid in workers:
        assert gone(pid), f"worker {pid} outlived its supervisor"
    with pytest.raises(EOFError):
        conns[0].root.whoami()
    for conn in conns:
        conn.close()


def test_drain_deadline_stops_a_call_that_runs_too_long(procs):
    server = procs.server("--workers", "1", "--drain", "0.5")
    (worker,) = wait_for(lambda: children_of(server.proc.pid), "a worker")
    conn = rpyc.connect("127.0.0.1", server.port)
    call = InFlight(conn, 30)
    time.sleep(0.3)
    t0 = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    assert isinstance(call.wait().error, EOFError)
    assert server.proc.wait(10) == 0
    # the deadline (0.5 s), then the worker's own close; not the call's 30 s
    assert time.monotonic() - t0 < 5
    assert gone(worker)
    conn.close()


def test_a_worker_signalled_directly_drains_and_is_replaced(procs):
    """systemd and ``kill -TERM -<group>`` signal every process: a worker that gets SIGTERM
    finishes its call and exits, the other worker goes on accepting on the shared socket
    (the drained one closed its copy without shutting the socket down), and the supervisor
    starts a new worker."""
    server = procs.server("--workers", "2", "--drain", "10")
    workers = wait_for(lambda: len(children_of(server.proc.pid)) == 2 and children_of(server.proc.pid),
                       "2 workers")
    conn = None
    for _ in range(50):
        conn = rpyc.connect("127.0.0.1", server.port)
        if conn.root.whoami() == workers[0]:
            break
        conn.close()
    assert conn.root.whoami() == workers[0]
    call = InFlight(conn, 1.5)
    time.sleep(0.3)
    os.kill(workers[0], signal.SIGTERM)
    time.sleep(0.7)  # (the drain has begun: the worker no longer accepts)
    for _ in range(10):
        other = rpyc.connect("127.0.0.1", server.port)
        assert other.root.whoami() != workers[0]
        other.close()
    assert call.wait().result == "slept", call.error
    wait_for(lambda: gone(workers[0]), "the drained worker to exit")
    replaced = wait_for(lambda: len(children_of(server.proc.pid)) == 2 and children_of(server.proc.pid),
                        "a new worker")
    assert workers[1] in replaced and workers[0] not in replaced
    conn.close()


def test_workers_exit_when_the_supervisor_is_killed(procs):
    server = procs.server("--workers", "2", "--drain", "1")
    workers = wait_for(lambda: len(children_of(server.proc.pid)) == 2 and children_of(server.proc.pid),
                       "2 workers")
    server.proc.kill()  # SIGKILL: no drain by the supervisor
    server.proc.wait(5)
    for pid in workers:
        wait_for(lambda: gone(pid), f"orphaned worker {pid} to exit")


def test_forking_server_drains_its_children(procs):
    server = procs.server("--forking", "--drain", "10")
    busy = rpyc.connect("127.0.0.1", server.port)
    idle = rpyc.connect("127.0.0.1", server.port)
    children = {busy.root.whoami(), idle.root.whoami()}
    assert server.proc.pid not in children and len(children) == 2
    call = InFlight(busy, 1.5)
    time.sleep(0.3)
    t0 = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)  # the parent only: it tells its children
    # the idle child closes its connection at once, the busy one after its call
    wait_for(lambda: idle.closed or _eof(idle), "the idle child to close its connection", timeout=5)
    assert call.thread.is_alive()
    assert call.wait().result == "slept", call.error
    assert server.proc.wait(10) == 0
    assert time.monotonic() - t0 < 8
    for pid in children:
        wait_for(lambda: gone(pid), f"child {pid} to exit")
    with pytest.raises(EOFError):
        busy.root.whoami()
    busy.close()
    idle.close()


def test_forking_server_drain_deadline(procs):
    server = procs.server("--forking", "--drain", "0.5")
    conn = rpyc.connect("127.0.0.1", server.port)
    child = conn.root.whoami()
    call = InFlight(conn, 30)
    time.sleep(0.3)
    t0 = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    assert isinstance(call.wait().error, EOFError)
    assert server.proc.wait(10) == 0
    assert time.monotonic() - t0 < 6
    wait_for(lambda: gone(child), "the child to exit")
    conn.close()


def _eof(conn):
    try:
        conn.root.whoami()
    except EOFError:
        return True
    return False


def test_the_supervisor_registers_once_and_unregisters(etcd, procs):
    from rpyc.utils.registry import EtcdRegistryClient

    server = procs.server("--workers", "2", "--etcd", etcd.url, "--drain", "5")
    client = EtcdRegistryClient(etcd.url)
    found = wait_for(lambda: client.discover("SCALETEST"), "the registration")
    assert found == (("127.0.0.1", server.port),)
    conn = rpyc.connect_by_service("SCALETEST", registrar=client)
    assert conn.root.whoami() in children_of(server.proc.pid)
    conn.close()
    # (it renews the registration from its loop, not from a thread)
    assert os.listdir(f"/proc/{server.proc.pid}/task") == [str(server.proc.pid)]
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(10) == 0
    assert client.discover("SCALETEST") == ()  # (the lease was revoked, not left to expire)


def test_without_fork_the_error_says_what_to_do(monkeypatch):
    from rpyc.utils.prefork import PreforkServer

    monkeypatch.delattr(os, "fork")
    with pytest.raises(OSError, match="cannot do; run one ThreadedServer per process"):
        PreforkServer(rpyc.Service, workers=2)


def test_workers_must_be_positive():
    from rpyc.utils.prefork import PreforkServer

    with pytest.raises(ValueError, match="workers must be at least 1"):
        PreforkServer(rpyc.Service, workers=0)


def test_a_worker_that_keeps_dying_is_restarted_later_and_later(procs):
    """Backoff: each quick death of a slot's worker doubles the wait before its restart
    (0.1 s, 0.2 s...), up to max_restart_delay (here 0.3 s)."""
    import re

    server = procs.server("--workers", "1", "--max-restart-delay", "0.3")
    (worker,) = wait_for(lambda: children_of(server.proc.pid), "a worker")
    for _ in range(4):
        os.kill(worker, signal.SIGKILL)
        (worker,) = wait_for(lambda: [p for p in children_of(server.proc.pid) if p != worker], "a new worker")
    delays = re.findall(r"killed by signal 9\) after [0-9.]+s; restarting it in ([0-9.]+)s", server.log.read_text())
    assert delays == ["0.1", "0.2", "0.3", "0.3"]
    conn = rpyc.connect("127.0.0.1", server.port)
    assert conn.root.whoami() == worker
    conn.close()


def test_thread_pool_workers_on_a_unix_socket(procs, tmp_path):
    """Any server class can be a worker (ThreadPoolServer builds its pool and wake-up pipe in
    each worker, after the fork), and a unix socket is shared like a TCP one."""
    path = str(tmp_path / "prefork.sock")
    server = procs.server("--workers", "2", "--pool", "--unix", path, "--drain", "5")
    workers = wait_for(lambda: len(children_of(server.proc.pid)) == 2 and children_of(server.proc.pid),
                       "2 workers")
    seen = set()
    for _ in range(100):
        conn = rpyc.unix_connect(path)
        seen.add(conn.root.whoami())
        conn.close()
        if len(seen) == 2:
            break
    assert seen == set(workers)
    conn = rpyc.unix_connect(path)
    call = InFlight(conn, 1.0)
    time.sleep(0.3)
    t0 = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    assert call.wait().result == "slept", call.error
    assert server.proc.wait(10) == 0
    # the workers exit once drained (their accept notices the close within 0.5 s), long
    # before the 5 s deadline and the kill 2 s after it
    assert time.monotonic() - t0 < 4
    conn.close()


def test_forking_child_signalled_directly_drains(procs):
    """After handle_sigterm, a ForkingServer child that gets SIGTERM itself (a signal to the
    process group) finishes its call, then closes its connection; the parent serves on."""
    server = procs.server("--forking", "--drain", "10")
    conn = rpyc.connect("127.0.0.1", server.port)
    child = conn.root.whoami()
    call = InFlight(conn, 1.0)
    time.sleep(0.3)
    os.kill(child, signal.SIGTERM)
    assert call.wait().result == "slept", call.error
    wait_for(lambda: gone(child), "the child to exit")
    with pytest.raises(EOFError):
        conn.root.whoami()
    conn.close()
    other = rpyc.connect("127.0.0.1", server.port)
    assert other.root.whoami() not in (child, server.proc.pid)
    other.close()


def test_start_warns_when_the_process_already_runs_threads(caplog):
    """A fork copies only the forking thread: starting the supervisor in a process that runs
    other threads is logged (nothing is forked here)."""
    from rpyc.utils.prefork import PreforkServer

    server = PreforkServer(rpyc.Service, workers=1)
    try:
        stop = threading.Event()
        thread = threading.Thread(target=stop.wait, daemon=True)
        thread.start()
        with caplog.at_level("WARNING"):
            server._warn_if_threaded()
        stop.set()
        thread.join(5)
        assert "forks a process that runs" in caplog.text and "before creating threads" in caplog.text
    finally:
        server.close()


def test_close_without_drain_ends_the_calls_at_once(procs):
    """Ctrl-C (SIGINT to the supervisor) closes without drain: the workers close their
    connections at once, calls in flight fail, every worker is reaped."""
    server = procs.server("--workers", "2")
    workers = wait_for(lambda: len(children_of(server.proc.pid)) == 2 and children_of(server.proc.pid),
                       "2 workers")
    conn = rpyc.connect("127.0.0.1", server.port)
    call = InFlight(conn, 30)
    time.sleep(0.3)
    t0 = time.monotonic()
    server.proc.send_signal(signal.SIGINT)
    assert isinstance(call.wait().error, EOFError)
    assert server.proc.wait(10) == 0
    assert time.monotonic() - t0 < 4
    for pid in workers:
        assert gone(pid)
    conn.close()
