"""TLS (rustls) between the Rust crate and Python peers, ours and upstream rpyc 6.0.2:
the Rust client against tests/peers/tls_peer.py servers, and tls_peer.py clients against the
Rust server (crates/rpyc/examples/server.rs --tls-cert/--tls-key)."""

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rust_peers import ROOT, RustServer, run
from procs import stop_group

PEERS = ROOT / "tests" / "peers"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    pytest.importorskip("cryptography")
    sys.path.insert(0, str(ROOT / "tests"))
    import tls_certs
    directory = tmp_path_factory.mktemp("pki")
    tls_certs.make_pki(directory)
    return directory


def json_line(out):
    for line in reversed(out.splitlines()):
        try:
            return json.loads(line)
        except ValueError:
            continue
    return None


@pytest.fixture(scope="module", params=["ours", "upstream"])
def tls_server(request, interop, pki):
    """tests/peers/tls_peer.py server (no client certificate asked) under ours or upstream."""
    role = request.param
    proc = subprocess.Popen(
        [interop.python(role), "-u", str(PEERS / "tls_peer.py"), "server",
         "--certfile", str(pki / "server.pem"), "--keyfile", str(pki / "server.key")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(PEERS),
        env=interop.peer_env(role), start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        line = b""
        while time.monotonic() < deadline and not line.startswith(b"PORT"):
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
        if not line.startswith(b"PORT"):
            pytest.fail("tls_peer.py server (%s) did not start: %r" % (role, line))
        port = int(line.split()[1])
        # tls_peer.py prints PORT before ThreadedServer.start() (on a thread) listens
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("tls_peer.py server (%s) does not accept on port %d" % (role, port))
                time.sleep(0.01)
        yield role, port
    finally:
        stop_group(proc)
        for f in (proc.stdin, proc.stdout, proc.stderr):
            f.close()


@pytest.mark.timeout(90)
def test_rust_tls_client(tls_server, pki, rust_examples):
    role, port = tls_server
    client = rust_examples["tls_client"]
    rc, out, err, _ = run([client, "localhost:%d" % port, "--ca", pki / "ca.pem",
                           "--calls", "20"], timeout=60)
    res = json_line(out)
    assert rc == 0 and res and res["ok"], (out, err)
    assert (res["add"], res["echo_ok"], res["callback"]) == (5, True, 42)
    # the server's certificate must chain to the CA given, and carry the name
    rc, out, err, _ = run([client, "127.0.0.1:%d" % port, "--ca", pki / "other-ca.pem"],
                          timeout=30)
    assert rc == 1 and "UnknownIssuer" in out, out
    rc, out, err, _ = run([client, "localhost:%d" % port, "--ca", pki / "ca.pem",
                           "--server-name", "example.invalid"], timeout=30)
    assert rc == 1 and "not valid for name" in out, out


@pytest.fixture(scope="module")
def rust_tls_server(rust_examples, pki):
    srv = RustServer(rust_examples["server"], ["--tls-cert", pki / "server.pem",
                                               "--tls-key", pki / "server.key"])
    try:
        yield srv
    finally:
        srv.stop()


@pytest.mark.timeout(90)
@pytest.mark.parametrize("role", ["ours", "upstream"])
def test_python_tls_client_against_rust_server(role, interop, pki, rust_tls_server):
    rc, out, err, _ = run([interop.python(role), "-u", PEERS / "tls_peer.py", "client",
                           "--port", rust_tls_server.port, "--ca", pki / "ca.pem",
                           "--calls", "20"], timeout=60, env=interop.peer_env(role),
                          cwd=str(PEERS))
    res = json_line(out)
    assert res and res["ok"], (out, err)
    assert (res["add"], res["echo_ok"], res["callback"]) == (5, True, 42)
    # a plain-TCP client gets nowhere, and the server goes on
    rc, out, err, _ = run([interop.python(role), "-c",
                           "import rpyc, sys; c = rpyc.connect('127.0.0.1', %d, "
                           "config={'sync_request_timeout': 3}); c.root" % rust_tls_server.port],
                          timeout=30, env=interop.peer_env(role), cwd=str(PEERS))
    assert rc != 0
    assert rust_tls_server.alive()


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    sys.path.insert(0, str(ROOT / "tests"))
    import tls_certs
    if not tls_certs.have_openssl_cli():
        pytest.skip("needs the openssl command")
    return tls_certs.make_openssl_pki(tmp_path_factory.mktemp("openssl-recipe"))


@pytest.mark.timeout(120)
@pytest.mark.parametrize("role", ["ours", "upstream"])
def test_openssl_recipe_certificates_rust_server_mutual_tls(role, interop, recipe, rust_examples):
    """Upstream's test_ssl.py recipe against the Rust crate (the same verifiers as the Python
    extension, crates/rpyc-tls): the Rust server's certificate is the self-signed CA:TRUE
    server.crt, the Python client presents the v1 client.crt; a v1 client signed by another
    CA is refused."""
    srv = RustServer(rust_examples["server"], [
        "--tls-cert", recipe["server.crt"], "--tls-key", recipe["server.key"],
        "--tls-client-ca", recipe["client-server.bundle.crt"]])
    try:
        def client(stem):
            rc, out, err, _ = run([interop.python(role), "-u", PEERS / "tls_peer.py", "client",
                                   "--port", srv.port, "--ca", recipe["server.crt"],
                                   "--certfile", recipe[stem + ".crt"],
                                   "--keyfile", recipe[stem + ".key"]],
                                  timeout=60, env=interop.peer_env(role), cwd=str(PEERS))
            return json_line(out), err
        res, err = client("client")
        assert res and res["ok"], err
        assert (res["add"], res["echo_ok"], res["callback"]) == (5, True, 42)
        res, err = client("stranger-client")
        assert res and not res["ok"], res
        assert srv.alive()
    finally:
        srv.stop()


@pytest.mark.timeout(120)
def test_openssl_recipe_certificates_rust_client(interop, recipe, rust_examples):
    """The Rust client trusts server.crt (self-signed, CA:TRUE, name in CN only) as the
    upstream server's certificate and presents the v1 client.crt."""
    proc = subprocess.Popen(
        [interop.python("upstream"), "-u", str(PEERS / "tls_peer.py"), "server",
         "--certfile", recipe["server.crt"], "--keyfile", recipe["server.key"],
         "--ca", recipe["client-server.bundle.crt"]],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        cwd=str(PEERS), env=interop.peer_env("upstream"), start_new_session=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith(b"PORT"), line
        port = int(line.split()[1])
        client = rust_examples["tls_client"]
        rc, out, err, _ = run([client, "localhost:%d" % port, "--ca", recipe["server.crt"],
                               "--cert", recipe["client.crt"], "--key", recipe["client.key"]],
                              timeout=60)
        res = json_line(out)
        assert rc == 0 and res and res["ok"], (out, err)
        rc, out, err, _ = run([client, "localhost:%d" % port, "--ca", recipe["stranger.crt"]],
                              timeout=30)
        assert rc == 1 and "UnknownIssuer" in out, out
    finally:
        stop_group(proc)
        for f in (proc.stdin, proc.stdout):
            f.close()
