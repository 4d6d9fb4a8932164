"""Security features against real peers (see SECURITY.md).

Traversal refusal: an upstream rpyc 6.0.2 client (and ours) tries to walk from the objects our
server returns into the server's interpreter (``fn.__globals__``, ``obj.__class__``,
``gen.gi_frame``, ``method.__self__``...). Our server refuses each with an AttributeError
naming ``allow_all_attrs``, also when ``allow_public_attrs`` is on, while the same objects keep
working the ordinary way (calls, iteration, operators, context managers, repr/str, hash,
isinstance).

SharedSecretAuthenticator is rpyc-rs only: an upstream client is turned away by our server
(EOF within the authenticator's deadline, not a hang), and our client using it against an
upstream server fails with AuthenticationError within its deadline.
"""

import json
import subprocess
import time

import pytest
from procs import stop_group

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]


def _start_server(interop, role, config, extra=()):
    proc = subprocess.Popen(
        [interop.python(role), "-u", str(interop.peers / "server.py"), "--mode", "default",
         "--max-lifetime", "300", "--config", json.dumps(config), *extra],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        cwd=str(interop.peers), env=interop.peer_env(role), start_new_session=True)
    deadline = time.monotonic() + 30
    port = None
    while port is None and time.monotonic() < deadline:
        line = proc.stdout.readline().decode()
        if not line:
            break
        if line.startswith("PORT "):
            port = int(line.split()[1])
    if port is None:
        stop_group(proc)
        pytest.fail("the %s server printed no port" % role)
    return proc, port


def _run_client(interop, role, port):
    proc = subprocess.run(
        [interop.python(role), "-u", str(interop.peers / "traversal_client.py"), "--port", str(port)],
        capture_output=True, text=True, timeout=60, cwd=str(interop.peers),
        env=interop.peer_env(role), start_new_session=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert interop.impl_problem(role, result["impl"], "the %s client" % role) is None
    return result


@pytest.fixture
def server_with(interop):
    started = []

    def start(role, config, extra=()):
        proc, port = _start_server(interop, role, config, extra)
        started.append(proc)
        return port
    yield start
    for proc in started:
        stop_group(proc)


@pytest.mark.parametrize("config", [{}, {"allow_public_attrs": True}], ids=["default", "public_attrs"])
@pytest.mark.parametrize("client", ["upstream", "ours"])
def test_traversal_refused_by_our_server(interop, server_with, client, config):
    port = server_with("ours", config)
    result = _run_client(interop, client, port)
    bad = {label: a for label, a in result["attempts"].items()
           if not a["refused"] or "allow_all_attrs" not in a["error"]}
    assert not bad, "traversal not refused with a clear error: %s" % json.dumps(bad, indent=1)
    broken = {label: r for label, r in result["ordinary"].items() if r != "ok"}
    assert not broken, "ordinary use broken: %s" % broken


def test_upstream_server_allows_frame_traversal_with_public_attrs(interop, server_with):
    """Control: why the refusal exists. Upstream's policy admits any public name under
    ``allow_public_attrs``, so ``gen.gi_frame`` (and from there ``f_globals``) is reachable."""
    port = server_with("upstream", {"allow_public_attrs": True})
    result = _run_client(interop, "ours", port)
    assert result["attempts"]["gen.gi_frame"]["refused"] is False
    assert result["attempts"]["fn.__globals__"]["refused"] is True  # dunders stay refused


# -- SharedSecretAuthenticator -----------------------------------------------------------------

CLIENT_SCRIPT = """
import json, sys, time
import rpyc
port, mode = int(sys.argv[1]), sys.argv[2]
t0 = time.monotonic()
try:
    if mode == "secret":
        from rpyc.utils.authenticators import SharedSecretAuthenticator
        auth = SharedSecretAuthenticator(b"s3cret", side="client", timeout=2)
        conn = rpyc.connect("127.0.0.1", port, authenticator=auth)
    else:
        conn = rpyc.connect("127.0.0.1", port, config={"sync_request_timeout": 20})
    outcome = "ok: %r" % (conn.root.add(1, 2),)
except Exception as exc:
    outcome = type(exc).__name__
print(json.dumps({"outcome": outcome, "seconds": time.monotonic() - t0}))
"""


def _client_outcome(interop, role, port, mode):
    proc = subprocess.run([interop.python(role), "-c", CLIENT_SCRIPT, str(port), mode],
                          capture_output=True, text=True, timeout=60, cwd=str(interop.peers),
                          env=interop.peer_env(role), start_new_session=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_shared_secret_server_turns_away_an_upstream_client(interop, server_with):
    port = server_with("ours", {}, ["--shared-secret", "s3cret"])
    result = _client_outcome(interop, "upstream", port, "plain")
    assert result["outcome"] == "EOFError", result
    assert result["seconds"] < 10, result  # the 2 s handshake deadline, not the request timeout
    assert _client_outcome(interop, "ours", port, "secret")["outcome"] == "ok: 3"


def test_shared_secret_client_against_an_upstream_server(interop, server_with):
    port = server_with("upstream", {})
    result = _client_outcome(interop, "ours", port, "secret")
    assert result["outcome"] == "AuthenticationError", result
    assert result["seconds"] < 10, result
