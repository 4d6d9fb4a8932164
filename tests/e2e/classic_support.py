"""Helpers for the classic-mode end-to-end tests (test_classic_*.py): a tracker that closes
every connection, server and child process a test made, then waits (bounded) for the
threads the test started, so that no serving thread is still inside a handler when the
interpreter exits. Everything listens on 127.0.0.1 only."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any, Callable, List, Tuple

LOOPBACK = "127.0.0.1"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, "bin")


def wait_until(predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


class Tracker:
    def __init__(self) -> None:
        self._threads_before = set(threading.enumerate())
        self._closers: List[Callable[[], None]] = []
        self._procs: List[subprocess.Popen] = []
        self._servers: List[Tuple[Any, Any]] = []

    def conn(self, conn: Any) -> Any:
        self._closers.append(conn.close)
        return conn

    def on_close(self, func: Callable[[], None]) -> None:
        self._closers.append(func)

    def server(self, server: Any) -> Any:
        """Start ``server`` in a thread (``_start_in_thread``); closed and joined at the end."""
        thread = server._start_in_thread()
        self._servers.append((server, thread))
        return server

    def proc(self, proc: subprocess.Popen) -> subprocess.Popen:
        self._procs.append(proc)
        return proc

    def spawn(self, args: List[str], **kwargs: Any) -> subprocess.Popen:
        kwargs.setdefault("start_new_session", True)
        return self.proc(subprocess.Popen(args, **kwargs))

    def python(self, *args: str, **kwargs: Any) -> subprocess.Popen:
        return self.spawn([sys.executable, "-u", *args], **kwargs)

    def close(self) -> None:
        for close in reversed(self._closers):
            try:
                close()
            except Exception:
                pass
        for server, thread in reversed(self._servers):
            try:
                server.close()
            except Exception:
                pass
            thread.join(5)
        for proc in self._procs:
            _stop(proc)
        deadline = time.monotonic() + 5
        for t in threading.enumerate():
            if t in self._threads_before or t is threading.current_thread():
                continue
            t.join(max(0.0, deadline - time.monotonic()))


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except (ProcessLookupError, PermissionError, OSError):
                try:
                    proc.send_signal(sig)
                except OSError:
                    pass
            try:
                proc.wait(3)
                break
            except subprocess.TimeoutExpired:
                continue
    for f in (proc.stdin, proc.stdout, proc.stderr):
        if f is not None:
            try:
                f.close()
            except Exception:
                pass


class Forwarder:
    """What ``SshMachine.tunnel(lport, dport)`` provides: 127.0.0.1:lport forwards to
    127.0.0.1:dport, until ``close()``."""

    def __init__(self, lport, dport):
        self.dport = dport
        self.closed = False
        self.listener = socket.create_server((LOOPBACK, lport))
        self.listener.settimeout(0.2)
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                continue
            upstream = socket.create_connection((LOOPBACK, self.dport))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.closed = True
        self.listener.close()
        self.thread.join(2)


class FakeSshMachine:
    """Stands in for a plumbum ``SshMachine`` where only ``tunnel()`` is needed."""

    def __init__(self):
        self.tunnels = []

    def tunnel(self, lport, dport):
        tun = Forwarder(lport, dport)
        self.tunnels.append(tun)
        return tun
