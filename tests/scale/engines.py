"""Throwaway etcd, dnsmasq and HAProxy processes for the scaling tests: on 127.0.0.1 only,
on ports chosen at run time, with their data in a temporary directory, stopped (their whole
process group) at teardown. Each is skipped, with the reason, when its binary is absent
(``scripts/scale-deps.sh`` installs them from Debian)."""

import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from procs import stop_group  # (tests/, on the path through its conftest)

ROOT = Path(__file__).resolve().parent.parent.parent
START_TIMEOUT = 20.0


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def binary(name: str) -> str:
    for candidate in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/bin/{name}"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.skip(f"{name} is not installed (scripts/scale-deps.sh installs it from Debian)")


def wait_until(check, what: str, proc: subprocess.Popen, log: Path, timeout: float = START_TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not start within {timeout}s: {log.read_text()[-2000:]}")


def spawn(args, log: Path) -> subprocess.Popen:
    out = open(log, "wb")
    try:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    finally:
        out.close()


class Etcd:
    """etcd on 127.0.0.1; ``extra`` command-line options; ``tls=(cert, key, ca)`` serves
    https (the health check trusts ``ca``)."""

    def __init__(self, workdir: Path, *extra: str, tls=None) -> None:
        exe = binary("etcd")
        self.client_port, peer_port = free_port(), free_port()
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.client_port}"
        self._context = ssl.create_default_context(cafile=tls[2]) if tls else None
        if tls:
            extra = ("--cert-file", tls[0], "--key-file", tls[1], *extra)
        peer = f"http://127.0.0.1:{peer_port}"
        self.log = workdir / "etcd.log"
        self.proc = spawn([
            exe, "--name", "rpyc-test", "--data-dir", str(workdir / "etcd-data"),
            "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"rpyc-test={peer}", "--log-level", "warn", *extra,
        ], self.log)
        wait_until(self._healthy, "etcd", self.proc, self.log)

    def _healthy(self) -> bool:
        with urllib.request.urlopen(self.url + "/health", timeout=1, context=self._context) as resp:
            return b"true" in resp.read()

    def stop(self) -> None:
        stop_group(self.proc)


class Dnsmasq:
    """An authoritative-for-its-records DNS server on 127.0.0.1:<port> (UDP and TCP)."""

    def __init__(self, workdir: Path, options) -> None:
        exe = binary("dnsmasq")
        self.port = free_port(socket.SOCK_DGRAM)
        self.log = workdir / "dnsmasq.log"
        self.proc = spawn([
            exe, "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
            "--no-poll", "--pid-file=", "--bind-interfaces", "--listen-address=127.0.0.1",
            "--except-interface=nonexistent0", f"--port={self.port}", "--log-facility=-",
            "--user=root", "--group=root", *options,
        ], self.log)
        wait_until(self._answers, "dnsmasq", self.proc, self.log)

    def _answers(self) -> bool:
        # Any answer to a query means it listens (a minimal query for ". A").
        query = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x01"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.3)
            s.sendto(query, ("127.0.0.1", self.port))
            data, _ = s.recvfrom(512)
            return data[:2] == b"\x12\x34"

    def stop(self) -> None:
        stop_group(self.proc)


class HAProxy:
    """HAProxy in TCP mode, from examples/haproxy/haproxy.cfg.in, in front of ``servers``."""

    def __init__(self, workdir: Path, servers, check_interval_ms: int = 200) -> None:
        exe = binary("haproxy")
        self.port = free_port()
        self.stats_socket = workdir / "haproxy.sock"
        template = (ROOT / "examples" / "haproxy" / "haproxy.cfg.in").read_text()
        lines = "\n".join(
            f"    server rpyc{i} 127.0.0.1:{port} check inter {check_interval_ms}ms fall 1 rise 1"
            for i, port in enumerate(servers, 1))
        config = (template.replace("@BIND@", f"127.0.0.1:{self.port}")
                  .replace("@STATS_SOCKET@", str(self.stats_socket))
                  .replace("@SERVERS@", lines))
        cfg = workdir / "haproxy.cfg"
        cfg.write_text(config)
        check = subprocess.run([exe, "-c", "-f", str(cfg)], capture_output=True, text=True, timeout=30)
        if check.returncode != 0:
            raise RuntimeError(f"haproxy rejects the config: {check.stdout}{check.stderr}")
        self.log = workdir / "haproxy.log"
        self.proc = spawn([exe, "-db", "-f", str(cfg)], self.log)
        wait_until(self._listening, "haproxy", self.proc, self.log)

    def _listening(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
            return True

    def server_states(self):
        """``{server name: status}`` from the stats socket (e.g. ``UP``, ``DOWN``)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(2)
            s.connect(str(self.stats_socket))
            s.sendall(b"show stat\n")
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        states = {}
        for line in data.decode().splitlines():
            fields = line.split(",")
            if len(fields) > 17 and fields[0] == "rpyc" and fields[1].startswith("rpyc"):
                states[fields[1]] = fields[17]
        return states

    def stop(self) -> None:
        stop_group(self.proc)


class ServerProcess:
    """tests/scale/serve.py in a subprocess: an rpyc ThreadedServer; ``port`` once it
    listens."""

    def __init__(self, workdir: Path, *args: str) -> None:
        self.log = workdir / f"server-{len(list(workdir.glob('server-*.log')))}.log"
        self.proc = spawn([sys.executable, str(Path(__file__).with_name("serve.py")), *args], self.log)
        deadline = time.monotonic() + START_TIMEOUT
        self.port = None
        while time.monotonic() < deadline and self.port is None:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            for line in self.log.read_text().splitlines():
                if line.startswith("PORT "):
                    self.port = int(line.split()[1])
            time.sleep(0.05)
        if self.port is None:
            raise RuntimeError(f"server did not start: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        stop_group(self.proc)
