"""TLS on rustls over real loopback sockets: ssl_connect and SSLAuthenticator, verification
(CA, host name, expiry), mutual TLS, version and cipher choices, bulk data and callbacks
through the native TLS transport, and a server that survives clients that fail the
handshake. Certificates are generated per session (tests/tls_certs.py)."""

import os
import socket
import ssl
import struct
import sys
import threading
import time
import warnings
from pathlib import Path

import pytest

import rpyc
from rpyc.core import brine, consts, tls
from rpyc.utils.authenticators import AuthenticationError, SSLAuthenticator

from .support import LOOPBACK, wait_until

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tls_certs import make_pki  # noqa: E402


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


class TlsService(rpyc.Service):
    def on_connect(self, conn):
        self._conn = conn

    def exposed_add(self, a, b):
        return a + b

    def exposed_echo(self, data):
        return data

    def exposed_credentials(self):
        return self._conn._config["credentials"]

    def exposed_call_back(self, fn, value):
        return fn(value) * 2


def tls_server(harness, pki, stem="server", **auth_kwargs):
    auth = SSLAuthenticator(pki[stem + ".key"], pki[stem + ".pem"], **auth_kwargs)
    return harness.server(TlsService, authenticator=auth)


def connect(harness, srv, host="localhost", **kwargs):
    return harness.track(rpyc.ssl_connect(host, srv.port, **kwargs))


def test_verified_connection_uses_the_native_tls_transport(harness, pki):
    srv = tls_server(harness, pki)
    conn = connect(harness, srv, ca_certs=pki["ca.pem"])
    assert conn.root.add(2, 3) == 5
    sock = conn._channel.stream.sock
    assert isinstance(sock, rpyc._core.TlsSocket)
    assert conn._channel.stream.native_transport() is sock
    assert sock.version() in ("TLSv1.2", "TLSv1.3")
    assert sock.getpeercert()["subject"][-1] == (("commonName", "localhost"),)
    assert ("IP Address", "127.0.0.1") in sock.getpeercert()["subjectAltName"]
    assert sock.getpeercert(binary_form=True)[:1] == b"\x30"  # DER SEQUENCE


def test_unverified_client_connects_and_warns_once(harness, pki, monkeypatch):
    monkeypatch.setattr(tls, "_warned_unverified", threading.Event())
    srv = tls_server(harness, pki)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = connect(harness, srv, host=LOOPBACK)
        second = connect(harness, srv, host=LOOPBACK)
    assert first.root.add(1, 1) == second.root.add(1, 1) == 2
    security = [w for w in caught if issubclass(w.category, rpyc.SecurityWarning)]
    assert len(security) == 1
    assert "ca_certs" in str(security[0].message)
    # An unverified peer certificate is not reported as if it were trusted (as in `ssl`).
    assert first._channel.stream.sock.getpeercert() == {}


def test_wrong_ca_is_refused_with_the_fix_named(harness, pki):
    srv = tls_server(harness, pki)
    with pytest.raises(ssl.SSLCertVerificationError, match="ca_certs="):
        rpyc.ssl_connect("localhost", srv.port, ca_certs=pki["other-ca.pem"])


def test_wrong_host_name_is_refused_unless_check_hostname_is_off(harness, pki):
    srv = tls_server(harness, pki, stem="wrong-host")
    with pytest.raises(ssl.SSLCertVerificationError, match="not valid for name"):
        rpyc.ssl_connect("localhost", srv.port, ca_certs=pki["ca.pem"])
    conn = connect(harness, srv, ca_certs=pki["ca.pem"], check_hostname=False)
    assert conn.root.add(1, 2) == 3


def test_host_name_is_checked_for_ip_addresses_too(harness, pki):
    srv = tls_server(harness, pki, stem="wrong-host")
    with pytest.raises(ssl.SSLCertVerificationError):
        rpyc.ssl_connect(LOOPBACK, srv.port, ca_certs=pki["ca.pem"])


def test_expired_certificate_is_refused(harness, pki):
    srv = tls_server(harness, pki, stem="expired")
    with pytest.raises(ssl.SSLCertVerificationError, match="expired"):
        rpyc.ssl_connect("localhost", srv.port, ca_certs=pki["ca.pem"])


def test_mutual_tls_passes_the_client_certificate_as_credentials(harness, pki):
    srv = tls_server(harness, pki, ca_certs=pki["ca.pem"])
    conn = connect(harness, srv, ca_certs=pki["ca.pem"], keyfile=pki["client.key"],
                   certfile=pki["client.pem"])
    creds = conn.root.credentials()
    assert dict(x[0] for x in creds["subject"])["commonName"] == "test client"
    assert dict(x[0] for x in creds["issuer"])["commonName"] == "rpyc-rs test CA"
    assert creds["notAfter"].endswith(" GMT")


@pytest.mark.parametrize("client_cert", [None, "rogue-client"])
def test_mutual_tls_rejects_missing_or_foreign_client_certificates(harness, pki, client_cert):
    srv = tls_server(harness, pki, ca_certs=pki["ca.pem"])
    kwargs = {}
    if client_cert:
        kwargs = dict(keyfile=pki[client_cert + ".key"], certfile=pki[client_cert + ".pem"])
    # TLS 1.3 clients finish their half of the handshake before the server has judged their
    # certificate: the refusal arrives as an alert on the first read.
    with pytest.raises((ssl.SSLError, EOFError), match="alert|closed"):
        conn = rpyc.ssl_connect("localhost", srv.port, ca_certs=pki["ca.pem"], **kwargs)
        try:
            conn.root.add(1, 1)
        finally:
            conn.close()
    # The server is still serving good clients.
    good = connect(harness, srv, ca_certs=pki["ca.pem"], keyfile=pki["client.key"],
                   certfile=pki["client.pem"])
    assert good.root.add(20, 22) == 42


def test_optional_client_certificates(harness, pki):
    srv = tls_server(harness, pki, ca_certs=pki["ca.pem"], cert_reqs=ssl.CERT_OPTIONAL)
    anonymous = connect(harness, srv, ca_certs=pki["ca.pem"])
    assert anonymous.root.credentials() is None
    named = connect(harness, srv, ca_certs=pki["ca.pem"], keyfile=pki["client.key"],
                    certfile=pki["client.pem"])
    assert named.root.credentials()["subject"]


def test_tls12_can_be_pinned_and_ciphers_chosen(harness, pki):
    srv = tls_server(harness, pki)
    conn = connect(harness, srv, ca_certs=pki["ca.pem"], ssl_version=ssl.PROTOCOL_TLSv1_2,
                   ciphers="ECDHE-ECDSA-CHACHA20-POLY1305")
    sock = conn._channel.stream.sock
    assert sock.version() == "TLSv1.2"
    assert sock.cipher()[0] == "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"
    assert conn.root.add(1, 2) == 3


def test_old_protocol_versions_are_refused_before_connecting(pki):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old = ssl.PROTOCOL_TLSv1
    with pytest.raises(ValueError, match="TLS 1.2 and 1.3"):
        rpyc.ssl_connect("localhost", 9, ca_certs=pki["ca.pem"], ssl_version=old)
    with pytest.raises(ValueError, match="TLS 1.2 and 1.3"):
        SSLAuthenticator(pki["server.key"], pki["server.pem"], ssl_version=old)


def test_cipher_strings_select_rustls_suites():
    assert tls.tls12_suites("ECDHE-RSA-AES128-GCM-SHA256") == ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"]
    assert len(tls.tls12_suites("HIGH:!aNULL")) == 6
    assert tls.tls12_suites("ECDHE+AESGCM:!ECDSA") == [
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"]
    with pytest.raises(ValueError, match="selects no cipher suite"):
        tls.tls12_suites("AES256-SHA:DHE-RSA-AES256-GCM-SHA384")


def test_configuration_errors_name_the_argument(pki, tmp_path):
    with pytest.raises(FileNotFoundError, match="certfile"):
        SSLAuthenticator(pki["server.key"], tmp_path / "missing.pem")
    empty = tmp_path / "empty.pem"
    empty.write_text("not a certificate\n")
    with pytest.raises(ValueError, match="ca_certs"):
        rpyc.ssl_connect("localhost", 9, ca_certs=str(empty))
    with pytest.raises(ValueError, match="CERT_"):
        tls.client_context(cert_reqs=7)


def test_bulk_data_both_ways_and_callbacks(harness, pki):
    srv = tls_server(harness, pki)
    conn = connect(harness, srv, ca_certs=pki["ca.pem"])
    payload = bytes(range(256)) * (64 * 1024)  # 16 MiB: many TLS records, chunked writes
    assert conn.root.echo(payload) == payload
    random = os.urandom(6 << 20)  # incompressible: written from the bytes object itself
    assert conn.root.echo((b"x", random, 7)) == (b"x", random, 7)
    assert conn.root.call_back(lambda v: v + 1, 20) == 42


def test_concurrent_calls_share_one_tls_connection(harness, pki):
    srv = tls_server(harness, pki)
    conn = connect(harness, srv, ca_certs=pki["ca.pem"])
    bg = rpyc.BgServingThread(conn)
    errors = []

    def worker(k):
        try:
            for i in range(50):
                assert conn.root.add(k, i) == k + i
                assert len(conn.root.echo(b"z" * 100_000)) == 100_000
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    bg.stop()
    assert not errors


def test_plaintext_and_silent_clients_do_not_stall_the_server(harness, pki):
    auth = SSLAuthenticator(pki["server.key"], pki["server.pem"], handshake_timeout=0.5)
    srv = harness.server(TlsService, authenticator=auth)
    plain = socket.create_connection((LOOPBACK, srv.port))
    plain.sendall(b"\x00" * 64)  # not a TLS ClientHello
    silent = socket.create_connection((LOOPBACK, srv.port))  # says nothing
    try:
        assert wait_until(lambda: plain.recv(4096) == b"", timeout=5)
        silent.settimeout(5)
        assert silent.recv(4096) == b""  # dropped after handshake_timeout
        conn = connect(harness, srv, ca_certs=pki["ca.pem"])
        assert conn.root.add(3, 4) == 7
    finally:
        plain.close()
        silent.close()


def test_authenticator_raises_authentication_error_on_handshake_failure(pki):
    auth = SSLAuthenticator(pki["server.key"], pki["server.pem"], handshake_timeout=1)
    a, b = socket.socketpair()
    try:
        b.sendall(b"GET / HTTP/1.0\r\n\r\n")
        with pytest.raises(AuthenticationError, match="TLS handshake"):
            auth(a)
    finally:
        a.close()
        b.close()


def test_classic_ssl_connect(harness, pki):
    auth = SSLAuthenticator(pki["server.key"], pki["server.pem"])
    srv = harness.server(rpyc.SlaveService, authenticator=auth)
    conn = harness.track(rpyc.classic.ssl_connect("localhost", srv.port, ca_certs=pki["ca.pem"]))
    assert conn.eval("6 * 7") == 42


class BlobService(rpyc.Service):
    def exposed_blob(self, size):
        return os.urandom(size)


def _tls_frame(payload):
    return struct.pack("!LB", len(payload), 0) + payload + b"\n"


def _read_tls_frame(sock):
    buf = b""
    while len(buf) < 5 or len(buf) < 6 + struct.unpack("!L", buf[:4])[0]:
        chunk = sock.recv(65536)
        assert chunk, "closed"
        buf += chunk
    return buf[5:5 + struct.unpack("!L", buf[:4])[0]]


def test_send_stall_timeout_cuts_a_tls_peer_that_stops_reading(harness, pki):
    """send_stall_timeout holds on the native TLS transport too: a client that asks for
    8 MiB and reads nothing for 3 s gets the connection closed (it then drains less than
    8 MiB), and the server goes on."""
    auth = SSLAuthenticator(pki["server.key"], pki["server.pem"])
    srv = harness.server(BlobService, authenticator=auth,
                         protocol_config={"send_stall_timeout": 1})
    ctx = ssl.create_default_context(cafile=pki["ca.pem"])
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
    raw.settimeout(10)
    raw.connect((LOOPBACK, srv.port))
    sock = ctx.wrap_socket(raw, server_hostname="localhost")
    size = 8 << 20
    try:
        sock.sendall(_tls_frame(b"\x01" + brine.dump((0, (consts.HANDLE_GETROOT, (1, ()))))))
        _, (_, root) = brine.load(_read_tls_frame(sock)[1:])
        call = (consts.HANDLE_CALLATTR, (2, ((3, root), (1, "blob"), (1, (size,)), (1, ()))))
        sock.sendall(_tls_frame(b"\x01" + brine.dump((1, call))))
        time.sleep(3)
        received = 0
        while True:
            try:
                chunk = sock.recv(1 << 20)
            except (ssl.SSLError, ConnectionError):
                break
            if not chunk:
                break
            received += len(chunk)
        assert received < size
    finally:
        sock.close()
    conn = connect(harness, srv, ca_certs=pki["ca.pem"])
    assert len(conn.root.blob(100)) == 100
