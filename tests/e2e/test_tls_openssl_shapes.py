"""TLS with certificates as users make them with the openssl CLI (upstream RPyC's
test_ssl.py recipe, generated at test time by scripts/openssl-recipe-certs.sh): a
self-signed server certificate that is also its CA (`openssl req -x509`, CA:TRUE), X.509 v1
client certificates (`openssl x509 -req`). Python's ssl accepts them, so we must; and the
negative cases prove nothing else got looser: unknown CA, bad signature, expired, host name
mismatch, a v1 certificate signed by a certificate that may not issue. See docs/tls.md."""

import socket
import ssl
import sys
import threading
import warnings
from pathlib import Path

import pytest

import rpyc
from rpyc.utils.authenticators import AuthenticationError, SSLAuthenticator

from .support import LOOPBACK

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tls_certs import have_openssl_cli, make_openssl_pki  # noqa: E402

pytestmark = pytest.mark.skipif(not have_openssl_cli(), reason="needs the openssl command")


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    return make_openssl_pki(tmp_path_factory.mktemp("openssl-recipe"))


class Service(rpyc.Service):
    def on_connect(self, conn):
        self._conn = conn

    def exposed_add(self, a, b):
        return a + b

    def exposed_credentials(self):
        return self._conn._config["credentials"]


def serve(harness, recipe, stem="server", **auth_kwargs):
    auth = SSLAuthenticator(recipe[stem + ".key"], recipe[stem + ".crt"], **auth_kwargs)
    return harness.server(Service, authenticator=auth)


def connect(harness, srv, host="localhost", client=None, **kwargs):
    if client:
        kwargs.update(keyfile=client.replace(".crt", ".key"), certfile=client)
    return harness.track(rpyc.ssl_connect(host, srv.port, **kwargs))


# -- what must work ------------------------------------------------------------------


def test_self_signed_ca_certificate_is_its_own_trust_anchor(harness, recipe):
    """`openssl req -x509`: CA:TRUE, no subjectAltName; the host name matches its CN."""
    srv = serve(harness, recipe)
    conn = connect(harness, srv, ca_certs=recipe["server.crt"])
    assert conn.root.add(2, 3) == 5
    cert = conn._channel.stream.sock.getpeercert()
    assert cert["subject"] == ((("commonName", "localhost"),),)
    assert "subjectAltName" not in cert


def test_upstream_recipe_mutual_tls_with_a_v1_client_certificate(harness, recipe):
    srv = serve(harness, recipe, ca_certs=recipe["client-server.bundle.crt"])
    conn = connect(harness, srv, ca_certs=recipe["server.crt"], client=recipe["client.crt"])
    creds = conn.root.credentials()
    assert creds["version"] == 1
    assert dict(x[0] for x in creds["subject"])["commonName"] == "client"
    assert dict(x[0] for x in creds["issuer"])["commonName"] == "localhost"


def test_v1_client_certificate_with_only_its_ca_as_ca_certs(harness, recipe):
    srv = serve(harness, recipe, ca_certs=recipe["server.crt"])
    conn = connect(harness, srv, ca_certs=recipe["server.crt"], client=recipe["client.crt"])
    assert conn.root.credentials()["version"] == 1


def test_self_signed_v1_server_certificate(harness, recipe):
    srv = serve(harness, recipe, stem="v1-self")
    conn = connect(harness, srv, ca_certs=recipe["v1-self.crt"])
    assert conn.root.add(1, 1) == 2


@pytest.mark.parametrize("versions", [ssl.PROTOCOL_TLS_CLIENT, "1.2"], ids=["tls13", "tls12"])
def test_v1_handshake_signatures_in_both_tls_versions(harness, recipe, versions):
    """A v1 certificate's key signs the handshake: checked without webpki in both versions."""
    srv = serve(harness, recipe, ca_certs=recipe["server.crt"])
    kwargs = {"ssl_version": ssl.PROTOCOL_TLSv1_2} if versions == "1.2" else {}
    conn = connect(harness, srv, ca_certs=recipe["server.crt"],
                   client=recipe["client.crt"], **kwargs)
    assert conn._channel.stream.sock.version() == ("TLSv1.2" if versions == "1.2" else "TLSv1.3")
    assert conn.root.add(4, 4) == 8


# -- what must still be refused: by our client --------------------------------------


def refused(recipe, port, host="localhost", **kwargs):
    with pytest.raises(ssl.SSLCertVerificationError) as info:
        rpyc.ssl_connect(host, port, **kwargs).close()
    return str(info.value)


def test_unknown_ca_is_refused(harness, recipe):
    srv = serve(harness, recipe, stem="stranger")
    message = refused(recipe, srv.port, ca_certs=recipe["server.crt"], check_hostname=False)
    assert "UnknownIssuer" in message and "ca_certs=" in message


def test_self_signed_certificate_with_the_right_name_but_another_key_is_refused(harness, recipe):
    srv = serve(harness, recipe, stem="impostor")
    message = refused(recipe, srv.port, ca_certs=recipe["server.crt"])
    assert "UnknownIssuer" in message


def test_bad_signature_is_refused(harness, recipe):
    """forged-client.crt names server.crt's subject as its issuer; another key signed it."""
    srv = serve(harness, recipe, stem="forged-client")
    message = refused(recipe, srv.port, ca_certs=recipe["server.crt"], check_hostname=False)
    assert "BadSignature" in message


def test_expired_v1_certificate_is_refused(harness, recipe):
    srv = serve(harness, recipe, stem="expired-client")
    message = refused(recipe, srv.port, ca_certs=recipe["server.crt"], check_hostname=False)
    assert "expired" in message


def test_v1_certificate_signed_by_another_ca_is_refused(harness, recipe):
    srv = serve(harness, recipe, stem="stranger-client")
    message = refused(recipe, srv.port, ca_certs=recipe["server.crt"], check_hostname=False)
    assert "UnknownIssuer" in message


def test_host_name_mismatch_is_refused_unless_check_hostname_is_off(harness, recipe):
    srv = serve(harness, recipe, stem="wronghost")
    message = refused(recipe, srv.port, ca_certs=recipe["wronghost.crt"])
    assert "not valid for name" in message and "example.invalid" in message
    conn = connect(harness, srv, ca_certs=recipe["wronghost.crt"], check_hostname=False)
    assert conn.root.add(1, 2) == 3


def test_common_name_is_never_matched_against_an_ip_address(harness, recipe):
    """As OpenSSL: an IP address only matches IP subjectAltNames, and server.crt has none."""
    srv = serve(harness, recipe)
    message = refused(recipe, srv.port, host=LOOPBACK, ca_certs=recipe["server.crt"])
    assert "not valid for name" in message


def test_v1_certificate_host_name_is_checked_by_common_name(harness, recipe):
    srv = serve(harness, recipe, stem="client")  # v1, CN=client
    message = refused(recipe, srv.port, ca_certs=recipe["server.crt"])
    assert "not valid for name" in message and "CN:client" in message


# -- what must still be refused: by our server (OpenSSL's client presents it) ----------


def server_refusal(recipe, client_stem, ca_certs="client-server.bundle.crt"):
    """Our SSLAuthenticator against Python's own ssl client (OpenSSL) presenting
    ``client_stem``: the AuthenticationError's message."""
    auth = SSLAuthenticator(recipe["server.key"], recipe["server.crt"],
                            ca_certs=recipe[ca_certs], handshake_timeout=10)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2  # the refusal arrives during its handshake
    ctx.load_cert_chain(recipe[client_stem + ".crt"], recipe[client_stem + ".key"])
    a, b = socket.socketpair()
    client_error = []

    def client():
        try:
            ctx.wrap_socket(b).close()
        except (ssl.SSLError, OSError) as exc:
            client_error.append(exc)

    t = threading.Thread(target=client, daemon=True)
    t.start()
    try:
        with pytest.raises(AuthenticationError) as info:
            auth(a)
    finally:
        a.close()
        t.join(10)
        b.close()
    return str(info.value), str(client_error[0]) if client_error else ""


def test_server_refuses_a_v1_client_signed_by_a_certificate_that_may_not_issue(recipe):
    """client2 is signed by client.crt (v1, not self-signed: not a CA for OpenSSL either)."""
    message, alert = server_refusal(recipe, "client2")
    assert "UnknownIssuer" in message
    assert "unknown ca" in alert.lower()


@pytest.mark.parametrize("stem,reason,alert", [
    ("stranger-client", "UnknownIssuer", "unknown ca"),
    ("forged-client", "BadSignature", "decrypt error"),
    ("expired-client", "expired", "certificate expired"),
])
def test_server_refuses_bad_v1_client_certificates(recipe, stem, reason, alert):
    message, client_side = server_refusal(recipe, stem)
    assert reason in message
    assert alert in client_side.lower()


def test_server_accepts_the_recipes_client_from_openssl(recipe):
    auth = SSLAuthenticator(recipe["server.key"], recipe["server.crt"],
                            ca_certs=recipe["client-server.bundle.crt"], handshake_timeout=10)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(recipe["server.crt"])  # OpenSSL checks our side the same way
    ctx.load_cert_chain(recipe["client.crt"], recipe["client.key"])
    a, b = socket.socketpair()
    done = []
    t = threading.Thread(target=lambda: done.append(ctx.wrap_socket(b, server_hostname="localhost")),
                         daemon=True)
    t.start()
    try:
        sock, creds = auth(a)
        assert dict(x[0] for x in creds["subject"])["commonName"] == "client"
        sock.close()
    finally:
        t.join(10)
        for s in done:
            s.close()
        a.close()
        b.close()


def test_unverified_client_accepts_a_v1_server_certificate(harness, recipe):
    """No ca_certs (upstream's default): nothing is verified, but the handshake signature of
    the v1 certificate's key still is, which webpki alone cannot read."""
    srv = serve(harness, recipe, stem="v1-self")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rpyc.SecurityWarning)  # (warned once per process)
        conn = connect(harness, srv)
    assert conn.root.add(2, 2) == 4
