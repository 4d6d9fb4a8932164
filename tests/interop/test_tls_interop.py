"""TLS against the real upstream rpyc 6.0.2 (Python ``ssl``/OpenSSL) in both directions:
our rustls client <-> upstream SSLAuthenticator server and upstream's ssl_connect <-> our
rustls server, with and without client certificates, plus the refusals (wrong CA, missing
client certificate). Certificates are generated for the session (tests/tls_certs.py): by
`cryptography`, and by the openssl CLI the way users make them (upstream's test_ssl.py
recipe: a self-signed server certificate that is also the CA, X.509 v1 clients)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tls_certs import have_openssl_cli, make_openssl_pki, make_pki  # noqa: E402

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]

DIRECTIONS = [("ours", "upstream"), ("upstream", "ours"), ("ours", "ours")]


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    if not have_openssl_cli():
        pytest.skip("needs the openssl command")
    return make_openssl_pki(tmp_path_factory.mktemp("openssl-recipe"))


def _stop(proc):
    if proc.stdin:
        proc.stdin.close()  # the peer's cue to stop
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
    proc.stdout.close()


class TlsServer:
    def __init__(self, interop, role, certfile, keyfile, ca=None):
        cmd = [interop.python(role), "-u", str(interop.peers / "tls_peer.py"), "server",
               "--certfile", certfile, "--keyfile", keyfile]
        if ca:
            cmd += ["--ca", ca]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, cwd=str(interop.peers),
                                     env=interop.peer_env(role), start_new_session=True)
        self.port = None
        deadline = time.monotonic() + 30
        while self.port is None and time.monotonic() < deadline:
            line = self.proc.stdout.readline().decode()
            if not line:
                break
            if line.startswith("PORT "):
                self.port = int(line.split()[1])
        if self.port is None:
            _stop(self.proc)
            pytest.fail("the %s TLS server printed no port" % role)


@pytest.fixture
def tls_server(interop, pki):
    started = []

    def start(role, mutual=False, files=None):
        """files: (certfile, keyfile, ca or None) instead of the cryptography-made set."""
        if files is None:
            files = (pki["server.pem"], pki["server.key"], pki["ca.pem"] if mutual else None)
        srv = TlsServer(interop, role, *files)
        started.append(srv)
        return srv

    yield start
    for srv in started:
        _stop(srv.proc)


def run_client(interop, role, port, pki, ca=None, client_cert=None, calls=0):
    return run_client_files(
        interop, role, port, ca=pki[ca + ".pem"] if ca else None,
        cert=(pki[client_cert + ".pem"], pki[client_cert + ".key"]) if client_cert else None,
        calls=calls)


def run_client_files(interop, role, port, ca=None, cert=None, calls=0):
    cmd = [interop.python(role), "-u", str(interop.peers / "tls_peer.py"), "client",
           "--port", str(port), "--calls", str(calls)]
    if ca:
        cmd += ["--ca", ca]
    if cert:
        cmd += ["--certfile", cert[0], "--keyfile", cert[1]]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=str(interop.peers),
                          env=interop.peer_env(role), start_new_session=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines, "the %s TLS client printed no result (status %s)\n%s" % (
        role, proc.returncode, proc.stderr[-3000:])
    return json.loads(lines[-1])


@pytest.mark.parametrize("client,server", DIRECTIONS)
@pytest.mark.parametrize("mutual", [False, True], ids=["server-cert", "mutual"])
def test_tls_calls_across_implementations(interop, tls_server, pki, client, server, mutual):
    srv = tls_server(server, mutual=mutual)
    result = run_client(interop, client, srv.port, pki, ca="ca",
                        client_cert="client" if mutual else None)
    assert result == {"ok": True, "add": 5, "echo_ok": True, "callback": 42,
                      "client_cn": "test client" if mutual else None}, result


@pytest.mark.parametrize("client,server", DIRECTIONS)
def test_unverified_client_still_connects(interop, tls_server, pki, client, server):
    srv = tls_server(server)
    result = run_client(interop, client, srv.port, pki)
    assert result["ok"] and result["add"] == 5, result


@pytest.mark.parametrize("server", ["upstream", "ours"])
def test_our_client_refuses_a_server_signed_by_another_ca(interop, tls_server, pki, server):
    srv = tls_server(server)
    result = run_client(interop, "ours", srv.port, pki, ca="other-ca")
    assert not result["ok"]
    assert result["error"].startswith("SSLCertVerificationError")
    assert "ca_certs=" in result["error"]


@pytest.mark.parametrize("client", ["upstream", "ours"])
@pytest.mark.parametrize("client_cert", [None, "rogue-client"])
def test_our_server_refuses_clients_without_a_trusted_certificate(
        interop, tls_server, pki, client, client_cert):
    srv = tls_server("ours", mutual=True)
    result = run_client(interop, client, srv.port, pki, ca="ca", client_cert=client_cert)
    assert not result["ok"], result
    # and keeps serving a client that has one
    good = run_client(interop, "upstream", srv.port, pki, ca="ca", client_cert="client")
    assert good["ok"], good


def test_our_client_keeps_calling_an_upstream_tls_server(interop, tls_server, pki):
    """Upstream over OpenSSL polls the socket before each frame; when a release and the next
    request arrive together, the request waits inside OpenSSL's buffer, unseen. Our client
    nudges such a peer (a TLS 1.3 KeyUpdate) instead of waiting forever."""
    srv = tls_server("upstream")
    result = run_client(interop, "ours", srv.port, pki, ca="ca", calls=300)
    assert result["ok"], result
    assert result["calls_s"] < 30, result


def _skip_if_upstream_server_refuses_v1(interop, server):
    """Python 3.13's ssl verifies strictly (VERIFY_X509_STRICT) and refuses X.509 v1 client
    certificates: an upstream server running on it cannot take the recipe's client
    certificates at all, from any client."""
    if server != "upstream":
        return
    strict = subprocess.run(
        [interop.upstream_python(), "-c", "import sys; print(sys.version_info >= (3, 13))"],
        capture_output=True, text=True, timeout=60).stdout.strip() == "True"
    if strict:
        pytest.skip("upstream's server runs on Python 3.13+, whose ssl refuses X.509 v1 "
                    "client certificates (VERIFY_X509_STRICT)")


@pytest.mark.parametrize("client,server", DIRECTIONS)
@pytest.mark.parametrize("mutual", [False, True], ids=["server-cert", "mutual"])
def test_openssl_recipe_certificates_across_implementations(
        interop, tls_server, recipe, client, server, mutual):
    """Upstream's own recipe: the server's self-signed CA:TRUE certificate is the client's
    ca_certs, the v1 client certificate is checked against the bundle it is in."""
    if mutual:
        _skip_if_upstream_server_refuses_v1(interop, server)
    srv = tls_server(server, files=(recipe["server.crt"], recipe["server.key"],
                                    recipe["client-server.bundle.crt"] if mutual else None))
    result = run_client_files(interop, client, srv.port, ca=recipe["server.crt"],
                              cert=(recipe["client.crt"], recipe["client.key"]) if mutual else None)
    assert result == {"ok": True, "add": 5, "echo_ok": True, "callback": 42,
                      "client_cn": "client" if mutual else None}, result


@pytest.mark.parametrize("client,server", [("upstream", "ours"), ("ours", "upstream")])
@pytest.mark.parametrize("client_cert", ["client2", "stranger-client", "forged-client",
                                         "expired-client"])
def test_bad_v1_client_certificates_are_refused_by_both(
        interop, tls_server, recipe, client, server, client_cert):
    """What OpenSSL refuses, ours refuses too (and the other way round)."""
    _skip_if_upstream_server_refuses_v1(interop, server)
    srv = tls_server(server, files=(recipe["server.crt"], recipe["server.key"],
                                    recipe["client-server.bundle.crt"]))
    result = run_client_files(interop, client, srv.port, ca=recipe["server.crt"],
                              cert=(recipe[client_cert + ".crt"], recipe[client_cert + ".key"]))
    assert not result["ok"], result
    good = run_client_files(interop, client, srv.port, ca=recipe["server.crt"],
                            cert=(recipe["client.crt"], recipe["client.key"]))
    assert good["ok"], good
