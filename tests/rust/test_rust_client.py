"""The Rust client (crates/rpyc) against Python servers: ours and upstream rpyc 6.0.2.

crates/rpyc/examples/interop_client.rs runs its checks against tests/peers/server.py (the
interop suite's server, started by the shared `peer_server` fixture) and prints one JSON
line per check; the user-facing examples run against examples/add_server.py.
"""

import json
import os
import re
import subprocess
import time

import pytest

from rust_peers import ROOT, run
from procs import stop_group

CHECKS = {
    "default": ["add", "echo_values", "kwargs", "references", "objects", "exceptions",
                "callbacks", "async_callbacks", "awaiting", "generators", "releases", "timeout", "threads"],
    "classic": ["classic"],
    "bind_threads": ["add", "callbacks", "exceptions"],
}


@pytest.mark.timeout(90)
@pytest.mark.parametrize("mode", sorted(CHECKS))
@pytest.mark.parametrize("role", ["ours", "upstream"])
def test_rust_client_against_python_server(role, mode, peer_server, rust_examples):
    server = peer_server(role, mode)
    # our server answers the hello (quiet_del is the one feature both implement), upstream
    # echoes it
    env = dict(os.environ, RPYC_EXPECT_FEATURES="quiet_del" if role == "ours" else "")
    rc, out, err, _ = run([rust_examples["interop_client"], "--port", server.port,
                           "--mode", mode], timeout=60, env=env)
    results = {}
    for line in out.splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        results[obj["check"]] = obj
    problems = ["%s: %s" % (name, r["detail"]) for name, r in results.items() if not r["ok"]]
    missing = [c for c in CHECKS[mode] if c not in results]
    if missing:
        problems.append("checks that printed nothing: %s" % ", ".join(missing))
    assert not problems and rc == 0, "\n".join(problems) + "\n--- stderr ---\n" + err[-3000:]
    assert server.alive()


@pytest.fixture(scope="module", params=["ours", "upstream"])
def add_server(request, interop):
    """examples/add_server.py (the README's service) under our rpyc or upstream's."""
    role = request.param
    python = interop.python(role)
    proc = subprocess.Popen([python, "-u", str(ROOT / "examples" / "add_server.py"), "--port", "0"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=str(ROOT / "tests" / "peers"),
                            env=interop.peer_env(role), start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        line = b""
        while time.monotonic() < deadline and not line:
            line = proc.stdout.readline()
        match = re.search(rb"listening on 127\.0\.0\.1:(\d+)", line)
        if not match:
            pytest.fail("add_server.py (%s) did not start: %r %s"
                        % (role, line, proc.stderr.read1(4000) if proc.poll() is not None else b""))
        yield int(match.group(1))
    finally:
        stop_group(proc)
        proc.stdout.close()
        proc.stderr.close()


@pytest.mark.timeout(60)
def test_examples_against_add_server(add_server, rust_examples):
    addr = "127.0.0.1:%d" % add_server
    rc, out, err, _ = run([rust_examples["client"], addr], timeout=30)
    assert rc == 0, err
    assert "add(5, 10)  = 15" in out
    assert "add(str)    = concat" in out
    assert "add(1.5, 2) = 3.5" in out
    assert "raised TypeError" in out
    rc, out, err, _ = run([rust_examples["callback"], addr], timeout=30)
    assert rc == 0, err
    assert "call_me_back(v + 1, 20) = 42 (1 call)" in out
    assert "call_me_back(add(v, 100), 1) = 202" in out
    assert "failing callback: ValueError" in out


@pytest.mark.timeout(60)
@pytest.mark.parametrize("role", ["ours", "upstream"])
def test_classic_example(role, peer_server, rust_examples):
    server = peer_server(role, "classic")
    rc, out, err, _ = run([rust_examples["classic"], "127.0.0.1:%d" % server.port], timeout=30)
    assert rc == 0, err
    assert re.search(r"server pid      = [1-9]\d*", out), out
    assert "eval('6 * 7')   = 42" in out
    assert "area            = 12.566" in out
    assert "remote list     = [0, 1, 4]" in out
    assert "fetched         = [0, 1, 4]" in out
