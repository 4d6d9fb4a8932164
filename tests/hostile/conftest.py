"""Fixtures of the hostile-input suite: our server in a subprocess, its log, its memory.

The server (hostile_server.py) runs under the interpreter running pytest, listens on
127.0.0.1 only, logs to a file we read back, and is killed (its whole process group) at
teardown. Every wait is bounded.
"""
import atexit
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from procs import stop_group

HERE = Path(__file__).resolve().parent
SERVER_SCRIPT = HERE / "hostile_server.py"
START_TIMEOUT = 30.0
LOG_WAIT = 3.0          # seconds to wait for an expected log line
PROTOCOL_ERROR = "closing after a protocol error"

_LIVE = set()


def _kill(proc):
    if proc.poll() is None:
        stop_group(proc)


@atexit.register
def _kill_leftovers():
    for proc in list(_LIVE):
        _kill(proc)


class ServerProc:
    """One hostile_server.py process."""

    def __init__(self, logdir, name, bind_threads=False, rlimit_as=None, env=None, config=None, aio=False):
        self.name = name
        self.out_path = Path(logdir) / (name + ".out")
        self.log_path = Path(logdir) / (name + ".log")
        cmd = [sys.executable, "-u", str(SERVER_SCRIPT), "--max-lifetime", "600"]
        if bind_threads:
            cmd.append("--bind-threads")
        if aio:
            cmd.append("--aio")
        if config:
            cmd += ["--config", json.dumps(config)]
        full_env = dict(os.environ)
        full_env.pop("RPYC_BIND_THREADS", None)
        full_env["PYTHONUNBUFFERED"] = "1"
        full_env.update(env or {})

        def preexec():
            if rlimit_as is not None:
                import resource
                resource.setrlimit(resource.RLIMIT_AS, (rlimit_as, rlimit_as))

        with open(self.out_path, "wb") as out, open(self.log_path, "wb") as err:
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=str(HERE),
                env=full_env, start_new_session=True,
                preexec_fn=preexec if rlimit_as is not None else None)
        _LIVE.add(self.proc)
        self.port = None
        self.impl = None
        try:
            self._wait_port()
        except BaseException:
            self.stop()
            raise

    def _wait_port(self):
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            for line in self.out_path.read_text("utf-8", "replace").splitlines():
                if line.startswith("IMPL "):
                    self.impl = line[5:]
                elif line.startswith("PORT "):
                    self.port = int(line.split()[1])
            if self.port is not None:
                return
            if self.proc.poll() is not None:
                raise RuntimeError("hostile server exited with %s before printing its port:\n%s"
                                   % (self.proc.returncode, self.log_tail()))
            if time.monotonic() > deadline:
                raise RuntimeError("hostile server printed no port within %ss:\n%s"
                                   % (START_TIMEOUT, self.log_tail()))
            time.sleep(0.02)

    # -- state ----------------------------------------------------------------------------
    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        _kill(self.proc)

    def status_kib(self, key):
        """A Vm* field of /proc/<pid>/status, in KiB (VmRSS, VmHWM, VmPeak, VmSize)."""
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        raise KeyError(key)

    def big_anon_mappings(self, min_size=128 << 20):
        """Bytes of writable anonymous mappings of at least ``min_size`` bytes: big heap
        allocations (glibc mmaps every allocation over 32 MiB; its arenas are 64 MiB and are
        not counted, nor are thread stacks)."""
        total = 0
        with open("/proc/%d/maps" % self.pid) as f:
            for line in f:
                parts = line.split()
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                if len(parts) == 5 and parts[1].startswith("rw") and hi - lo >= min_size:
                    total += hi - lo
        return total

    # -- log ------------------------------------------------------------------------------
    def log_size(self):
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def log_since(self, offset):
        with open(self.log_path, "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")

    def log_tail(self, limit=3000):
        try:
            text = self.log_path.read_text("utf-8", "replace")
        except OSError:
            return ""
        return text if len(text) <= limit else "...\n" + text[-limit:]

    def wait_log(self, offset, predicate, timeout=LOG_WAIT):
        """The log text written since ``offset`` once ``predicate(text)`` holds, or the text
        at the deadline (the caller asserts)."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.log_since(offset)
            if predicate(text) or time.monotonic() > deadline:
                return text
            time.sleep(0.02)


@pytest.fixture(scope="session")
def hostile_logdir(tmp_path_factory):
    return tmp_path_factory.mktemp("hostile-servers")


class ServerPool:
    def __init__(self, logdir, kind):
        self.kind = kind  # "threaded" or "aio"
        self.logdir = logdir
        self.shared = None
        self.count = 0
        self.all = []

    def start(self, **kwargs):
        if self.kind == "aio":
            if kwargs.get("bind_threads"):
                pytest.skip("rpyc.aio servers refuse bind_threads (one thread serves everything)")
            kwargs["aio"] = True
        self.count += 1
        srv = ServerProc(self.logdir, "%s-server%d" % (self.kind, self.count), **kwargs)
        self.all.append(srv)
        return srv

    def get_shared(self):
        """The default server shared by most tests (restarted if an earlier test killed it;
        that earlier test has failed on its own liveness check)."""
        if self.shared is None or not self.shared.alive():
            self.shared = self.start()
        return self.shared

    def close(self):
        for srv in self.all:
            srv.stop()


@pytest.fixture(scope="session", params=["threaded", "aio"])
def server_pool(request, hostile_logdir):
    """Servers of one kind: every test using ``server`` or ``fresh_server`` runs against our
    ThreadedServer and against an ``rpyc.aio`` server (one event loop for all connections)."""
    pool = ServerPool(hostile_logdir, request.param)
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture
def server(server_pool):
    """The shared default server (bind_threads off)."""
    return server_pool.get_shared()


@pytest.fixture
def fresh_server(server_pool):
    """A server of its own for this test (memory measurements), stopped afterwards."""
    started = []

    def make(**kwargs):
        srv = server_pool.start(**kwargs)
        started.append(srv)
        return srv

    try:
        yield make
    finally:
        for srv in started:
            srv.stop()


@pytest.fixture
def raw_peer():
    """``(conn, peer)``: a client connection to a hand-driven peer socket. The peer scripts
    exact messages, so the client sends no rpyc-rs hello."""
    import socket

    import rpyc

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(10)
    conn = rpyc.connect("127.0.0.1", listener.getsockname()[1],
                        config={"sync_request_timeout": 5, "rpyc_rs_extensions": False})
    peer, _ = listener.accept()
    try:
        yield conn, peer
    finally:
        conn._cleanup()  # (a no-op once closed)
        peer.close()
        listener.close()
