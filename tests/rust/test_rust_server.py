"""Python clients, ours and upstream rpyc 6.0.2, against the Rust server
(crates/rpyc/examples/server.rs), and hostile bytes against it."""

import json
import socket
import time
from pathlib import Path

import pytest

from rust_peers import ROOT, RustServer, run

HERE = Path(__file__).resolve().parent
CHECKS = ["calls", "errors", "callbacks", "objects", "threads", "async", "many_connections"]


@pytest.mark.timeout(90)
@pytest.mark.parametrize("role", ["ours", "upstream"])
def test_python_client_against_rust_server(role, interop, rust_server):
    python = interop.python(role)
    rc, out, err, _ = run([python, "-u", HERE / "py_client.py", rust_server.port], timeout=60,
                          env=interop.peer_env(role), cwd=str(ROOT / "tests" / "peers"))
    assert_checks_passed(rc, out, err)
    assert rust_server.alive()


def assert_checks_passed(rc, out, err):
    """Every check of py_client.py printed a passing line, and it exited 0."""
    results = {}
    for line in out.splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        results[obj["check"]] = obj
    problems = ["%s:\n%s" % (n, r["detail"]) for n, r in results.items() if not r["ok"]]
    missing = [c for c in CHECKS if c not in results]
    if missing:
        problems.append("checks that printed nothing: %s" % ", ".join(missing))
    assert not problems and rc == 0, "\n".join(problems) + "\n--- stderr ---\n" + err[-3000:]


@pytest.mark.timeout(90)
@pytest.mark.parametrize("role", ["ours", "upstream"])
def test_bind_threads_clients_against_rust_server(role, interop, rust_examples):
    """Every check again with `bind_threads` on both sides: each message names its threads,
    and the server's callbacks (nested ones too) go to the client thread that waits."""
    srv = RustServer(rust_examples["server"], ["--bind-threads"])
    try:
        rc, out, err, _ = run([interop.python(role), "-u", HERE / "py_client.py", srv.port,
                               "--bind-threads"], timeout=60, env=interop.peer_env(role),
                              cwd=str(ROOT / "tests" / "peers"))
        assert srv.alive()
    finally:
        srv.stop()
    assert_checks_passed(rc, out, err)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("role", ["ours", "upstream"])
def test_readme_client_against_rust_server(role, interop, rust_server):
    rc, out, err, _ = run([interop.python(role), "-u", ROOT / "examples" / "add_client.py",
                           "--port", rust_server.port], timeout=30,
                          env=interop.peer_env(role), cwd=str(ROOT / "tests" / "peers"))
    assert rc == 0, err
    assert out.splitlines() == ["add(5, 10) = 15", "callback   = 42",
                                "remote list: [1, 2, 3] len 3", "async add  = 5"]


HOSTILE = {
    "frame over max_frame_size": b"\xc0\x00\x00\x00\x00",
    "unknown message type": b"\x00\x00\x00\x03\x00\x09\x11\x50\x0a",
    "corrupt zlib": b"\x00\x00\x00\x04\x01\xff\xff\xff\xff\x0a",
    "truncated brine": b"\x00\x00\x00\x04\x00\x01\x11\x50\x11\x0a",
    "unknown tag": b"\x00\x00\x00\x03\x00\x01\x07\x07\x0a",
    "nesting past max_nesting_depth": (
        (len(b"\x01\x11\x50\x11\x53" + b"\x10" * 300 + b"\x00")).to_bytes(4, "big") + b"\x00"
        + b"\x01\x11\x50\x11\x53" + b"\x10" * 300 + b"\x00" + b"\x0a"),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_bytes_close_the_connection(name, rust_server):
    with socket.create_connection(("127.0.0.1", rust_server.port), timeout=5) as s:
        s.sendall(HOSTILE[name])
        deadline = time.monotonic() + 5
        closed = False
        while time.monotonic() < deadline:
            try:
                if s.recv(65536) == b"":
                    closed = True
                    break
            except ConnectionResetError:
                closed = True
                break
        assert closed, "the Rust server kept the connection open after %s" % name
    assert rust_server.alive()


@pytest.mark.timeout(60)
def test_bad_box_is_only_that_requests_error(rust_server):
    # GETATTR(root?, ...) with a box of label 9: answered with an exception, connection kept
    bad = b"\x01\x11\x50\x11\x54\x11\x59\x00"
    with socket.create_connection(("127.0.0.1", rust_server.port), timeout=5) as s:
        s.sendall(len(bad).to_bytes(4, "big") + b"\x00" + bad + b"\x0a")
        data = b""
        while len(data) < 5 or len(data) < 5 + int.from_bytes(data[:4], "big") + 1:
            chunk = s.recv(65536)
            assert chunk, "connection closed instead of an EXCEPTION answer"
            data += chunk
        assert data[5] == 3, data  # MSG_EXCEPTION
        assert b"invalid label" in data
        ping = b"\x01\x11\x51\x11\x51\x11\x51\x10\x08\x0a\x78"  # PING("x"), seq 1
        s.sendall(len(ping).to_bytes(4, "big") + b"\x00" + ping + b"\x0a")
        data = s.recv(65536)
        assert data[5] == 2 and data.endswith(b"x\x0a"), data  # MSG_REPLY
