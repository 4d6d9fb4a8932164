"""Helpers shared by the end-to-end tests: a harness that starts real servers on loopback
sockets and tracks every server, connection and subprocess so that teardown can close them,
plus small polling utilities. Nothing here waits without a bound."""

import os
import socket
import subprocess
import sys
import threading
import time
import warnings
from typing import Any, Callable, List, Optional, Tuple

import rpyc
from rpyc.utils.server import ThreadedServer

LOOPBACK = "127.0.0.1"
THREAD_GRACE = 5.0  # seconds teardown waits for threads a test left behind


def wait_until(predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.01) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds passed; returns its last
    truth value."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def ipv6_available() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


class Harness:
    """Starts servers (each in a daemon thread of this process, or as a subprocess) and
    connections; :meth:`close` tears everything down, connections first."""

    def __init__(self) -> None:
        self._servers: List[Tuple[Any, Any]] = []
        self._conns: List[Any] = []
        self._procs: List[Tuple[subprocess.Popen, bool]] = []
        self._threads_before = set(threading.enumerate())

    # -- servers ---------------------------------------------------------------------------
    def server(self, service: Any, server_cls: Any = ThreadedServer, **kwargs: Any) -> Any:
        """Start ``server_cls(service, **kwargs)`` with ``_start_in_thread`` (port 0 on
        127.0.0.1 unless told otherwise) and return the server."""
        if "socket_path" not in kwargs:
            kwargs.setdefault("port", 0)
            kwargs.setdefault("hostname", "::1" if kwargs.get("ipv6") else LOOPBACK)
        srv = server_cls(service, **kwargs)
        thread = srv._start_in_thread()
        self._servers.append((srv, thread))
        return srv

    # -- connections -----------------------------------------------------------------------
    def track(self, conn: Any) -> Any:
        self._conns.append(conn)
        return conn

    def connect(self, server_or_port: Any, service: Any = rpyc.VoidService,
                config: Optional[dict] = None, host: str = LOOPBACK) -> Any:
        port = getattr(server_or_port, "port", server_or_port)
        return self.track(rpyc.connect(host, port, service=service, config=config or {}))

    def pair(self, service: Any, client_service: Any = rpyc.VoidService,
             client_config: Optional[dict] = None, **server_kwargs: Any) -> Tuple[Any, Any]:
        """A server for ``service`` and one client connection to it: ``(conn, server)``."""
        srv = self.server(service, **server_kwargs)
        return self.connect(srv, service=client_service, config=client_config), srv

    # -- subprocesses ----------------------------------------------------------------------
    def spawn(self, args: List[str], **kwargs: Any) -> subprocess.Popen:
        """Start a subprocess in a new session; teardown kills its whole process group."""
        kwargs.setdefault("start_new_session", True)
        proc = subprocess.Popen(args, **kwargs)
        self._procs.append((proc, bool(kwargs["start_new_session"])))
        return proc

    def track_process(self, proc: subprocess.Popen) -> subprocess.Popen:
        """Make teardown stop ``proc`` (started elsewhere, e.g. by ``connect_subproc``)."""
        self._procs.append((proc, False))
        return proc

    def python_script(self, path: str, *args: str, **kwargs: Any) -> subprocess.Popen:
        return self.spawn([sys.executable, "-u", path, *args], **kwargs)

    # -- teardown --------------------------------------------------------------------------
    def close(self) -> None:
        for conn in reversed(self._conns):
            try:
                conn.close()
            except Exception:
                pass
        self._conns.clear()
        for srv, thread in reversed(self._servers):
            try:
                srv.close()
            except Exception:
                pass
            thread.join(5)
        self._servers.clear()
        for proc, group in self._procs:
            _stop_process(proc, group)
        self._procs.clear()
        left = self.join_new_threads(THREAD_GRACE)
        if left:
            warnings.warn("threads still running after teardown: %s" % ", ".join(t.name for t in left))

    def join_new_threads(self, timeout: float) -> List[threading.Thread]:
        """Wait (at most ``timeout`` s in all) for the threads started since this harness
        was made, e.g. server threads still running a handler; returns those still alive.
        A daemon thread left inside a handler would otherwise still run while the
        interpreter shuts down."""
        deadline = time.monotonic() + timeout
        alive = []
        for t in threading.enumerate():
            if t in self._threads_before or t is threading.current_thread():
                continue
            t.join(max(0.0, deadline - time.monotonic()))
            if t.is_alive():
                alive.append(t)
        return alive


def _stop_process(proc: subprocess.Popen, group: bool) -> None:
    """Terminate ``proc`` (and its process group when it was started in a session of its
    own: forked children included), then kill what is left."""
    def signal_it(sig: int) -> None:
        try:
            if group:
                os.killpg(proc.pid, sig)
            elif proc.poll() is None:
                os.kill(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    signal_it(15)
    try:
        proc.wait(3)
    except subprocess.TimeoutExpired:
        pass
    signal_it(9)
    try:
        proc.wait(3)
    except subprocess.TimeoutExpired:
        pass
    for f in (proc.stdin, proc.stdout, proc.stderr):
        if f is not None:
            try:
                f.close()
            except Exception:
                pass
