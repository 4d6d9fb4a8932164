"""Authenticators, with real sockets: upstream's server-side contract (any callable
``authenticator(sock) -> (sock, credentials)``; credentials in ``conn._config["credentials"]``;
a rejection closes the socket before any RPyC frame is read), the client-side hook
(``authenticator=`` of the client factories, an rpyc-rs extension), and the built-in
:class:`SharedSecretAuthenticator` (mutual HMAC-SHA256 challenge-response)."""

import os
import socket
import struct
import threading
import time

import pytest

import rpyc
from rpyc.core import consts
from rpyc.utils.authenticators import AuthenticationError, SharedSecretAuthenticator
from rpyc.utils.server import ThreadedServer, ThreadPoolServer

from .support import LOOPBACK, wait_until

SECRET = b"correct horse battery staple"
SERVERS = [ThreadedServer, ThreadPoolServer]


class AuthService(rpyc.Service):
    connects = 0

    def on_connect(self, conn):
        type(self).connects += 1
        self._conn = conn

    def exposed_credentials(self):
        return repr(self._conn._config["credentials"])  # a dict would travel by reference

    def exposed_add(self, a, b):
        return a + b


@pytest.fixture(autouse=True)
def _reset_counter():
    AuthService.connects = 0


class Recorder:
    """Wraps an authenticator and records what it returned or raised (the server thread
    swallows rejections, so the tests look here)."""

    def __init__(self, inner):
        self.inner = inner
        self.outcomes = []

    def __call__(self, sock):
        try:
            result = self.inner(sock)
        except BaseException as exc:
            self.outcomes.append(exc)
            raise
        self.outcomes.append(result[1])
        return result


def token_authenticator(sock):
    token = sock.recv(6)
    if token != b"sesame":
        raise AuthenticationError("wrong token %r" % token)
    return sock, {"user": "bob"}


def send_token(sock):
    sock.sendall(b"sesame")
    return sock, "server trusted"


def _raw(port):
    s = socket.create_connection((LOOPBACK, port), timeout=5)
    return s


def _getroot_frame():
    """A well-formed RPyC request (HANDLE_GETROOT, seq 1) as an upstream client sends it."""
    payload = rpyc.core.brine.dump((consts.MSG_REQUEST, 1, (consts.HANDLE_GETROOT, ())))
    return struct.pack("!LB", len(payload), 0) + payload


def _recv_all(sock, timeout=5.0):
    sock.settimeout(timeout)
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return data
            data += chunk
    except ConnectionResetError:
        return data


# -- upstream's server-side contract ---------------------------------------------------------------

@pytest.mark.parametrize("server_cls", SERVERS)
def test_callable_authenticator_credentials_reach_config(harness, server_cls):
    srv = harness.server(AuthService, server_cls, authenticator=token_authenticator)
    conn = harness.track(rpyc.connect(LOOPBACK, srv.port, authenticator=send_token))
    assert conn.root.credentials() == repr({"user": "bob"})
    assert conn._config["credentials"] == "server trusted"


@pytest.mark.parametrize("server_cls", SERVERS)
def test_rejection_closes_before_any_frame_is_read(harness, server_cls):
    rec = Recorder(token_authenticator)
    srv = harness.server(AuthService, server_cls, authenticator=rec)
    with _raw(srv.port) as s:
        s.sendall(b"wrong!" + _getroot_frame())
        assert _recv_all(s) == b""  # closed, and no reply to the request that followed
    assert wait_until(lambda: rec.outcomes)
    assert isinstance(rec.outcomes[0], AuthenticationError)
    assert AuthService.connects == 0  # no Connection was ever built
    conn = harness.track(rpyc.connect(LOOPBACK, srv.port, authenticator=send_token))
    assert conn.root.add(1, 2) == 3  # the server goes on serving


@pytest.mark.parametrize("server_cls", SERVERS)
def test_unauthenticated_rpyc_client_gets_eof(harness, server_cls):
    srv = harness.server(AuthService, server_cls, authenticator=token_authenticator)
    conn = harness.track(rpyc.connect(LOOPBACK, srv.port, config={"sync_request_timeout": 10}))
    with pytest.raises(EOFError):
        conn.root  # the first frame is taken as the token, rejected, the socket closed


@pytest.mark.parametrize("server_cls", SERVERS)
def test_authenticator_crash_is_a_rejection(harness, server_cls):
    def broken(sock):
        raise socket.timeout("stuck client")
    srv = harness.server(AuthService, server_cls, authenticator=broken)
    with _raw(srv.port) as s:
        assert _recv_all(s) == b""
    assert AuthService.connects == 0
    assert srv.active


def test_client_authenticator_failure_closes_the_socket(harness):
    seen = []

    def server_auth(sock):
        seen.append(_recv_all(sock))
        raise AuthenticationError("client went away")
    srv = harness.server(AuthService, authenticator=server_auth)

    def client_auth(sock):
        sock.sendall(b"hello")
        raise AuthenticationError("client changed its mind")
    with pytest.raises(AuthenticationError, match="changed its mind"):
        rpyc.connect(LOOPBACK, srv.port, authenticator=client_auth)
    assert wait_until(lambda: seen) and seen[0] == b"hello"  # EOF right after: closed


# -- SharedSecretAuthenticator ------------------------------------------------------------------------

@pytest.mark.parametrize("server_cls", SERVERS)
def test_shared_secret_right_secret(harness, server_cls):
    rec = Recorder(SharedSecretAuthenticator(SECRET))
    srv = harness.server(AuthService, server_cls, authenticator=rec)
    conn = harness.track(rpyc.connect(LOOPBACK, srv.port,
                                      authenticator=SharedSecretAuthenticator(SECRET, side="client")))
    assert conn.root.add(2, 3) == 5
    assert conn.root.credentials() == repr({"scheme": "hmac-sha256-shared-secret"})
    assert conn._config["credentials"] == {"scheme": "hmac-sha256-shared-secret"}
    assert rec.outcomes == [{"scheme": "hmac-sha256-shared-secret"}]


def test_shared_secret_str_secret_and_unix_socket(harness, tmp_path):
    path = str(tmp_path / "sock")
    srv = harness.server(AuthService, socket_path=path, authenticator=SharedSecretAuthenticator("s3cret"))
    conn = harness.track(rpyc.unix_connect(path, authenticator=SharedSecretAuthenticator(b"s3cret", side="client")))
    assert conn.root.add(1, 1) == 2


def test_shared_secret_classic(harness):
    srv = harness.server(rpyc.SlaveService, authenticator=SharedSecretAuthenticator(SECRET))
    conn = harness.track(rpyc.classic.connect(LOOPBACK, srv.port,
                                              authenticator=SharedSecretAuthenticator(SECRET, side="client")))
    assert conn.modules.os.getpid() == os.getpid()


@pytest.mark.parametrize("server_cls", SERVERS)
def test_shared_secret_wrong_secret_fails_on_both_sides(harness, server_cls):
    rec = Recorder(SharedSecretAuthenticator(SECRET))
    srv = harness.server(AuthService, server_cls, authenticator=rec)
    with pytest.raises(AuthenticationError, match="server does not know the shared secret"):
        rpyc.connect(LOOPBACK, srv.port, authenticator=SharedSecretAuthenticator(b"guess", side="client"))
    assert wait_until(lambda: rec.outcomes)
    assert isinstance(rec.outcomes[0], AuthenticationError)
    assert AuthService.connects == 0


def _handshake_by_hand(port, proof):
    """A client that does not know the secret: a valid hello, then ``proof``."""
    auth = SharedSecretAuthenticator(b"unknown", side="client")
    with _raw(port) as s:
        s.sendall(auth.MAGIC + b"C" + os.urandom(32))
        challenge = b""
        while len(challenge) < 73:
            chunk = s.recv(73 - len(challenge))
            assert chunk
            challenge += chunk
        s.sendall(proof)
        return _recv_all(s)


def test_shared_secret_server_rejects_a_wrong_proof(harness):
    rec = Recorder(SharedSecretAuthenticator(SECRET))
    srv = harness.server(AuthService, authenticator=rec)
    assert _handshake_by_hand(srv.port, os.urandom(32)) == b"\x00"  # told, then closed
    assert wait_until(lambda: rec.outcomes)
    assert "client does not know the shared secret" in str(rec.outcomes[0])
    assert AuthService.connects == 0


def test_shared_secret_reflection_is_refused(harness):
    """Sending the server's own proof back does not pass as the client's (role labels)."""
    rec = Recorder(SharedSecretAuthenticator(SECRET))
    srv = harness.server(AuthService, authenticator=rec)
    auth = SharedSecretAuthenticator(b"x", side="client")
    with _raw(srv.port) as s:
        s.sendall(auth.MAGIC + b"C" + os.urandom(32))
        challenge = b""
        while len(challenge) < 73:
            challenge += s.recv(73 - len(challenge))
        s.sendall(challenge[-32:])
        assert _recv_all(s) == b"\x00"
    assert wait_until(lambda: rec.outcomes) and isinstance(rec.outcomes[0], AuthenticationError)


@pytest.mark.parametrize("garbage", [
    b"GET / HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n",
    os.urandom(64),
    b"RPYCSS1\x00S" + b"\x00" * 40,  # the server's role
])
def test_shared_secret_garbage_peer_rejected_at_once(harness, garbage):
    rec = Recorder(SharedSecretAuthenticator(SECRET, timeout=30))
    srv = harness.server(AuthService, authenticator=rec)
    t0 = time.monotonic()
    with _raw(srv.port) as s:
        s.sendall(garbage)
        assert _recv_all(s) == b""
    assert time.monotonic() - t0 < 5  # not the 30 s timeout
    assert wait_until(lambda: rec.outcomes) and isinstance(rec.outcomes[0], AuthenticationError)


@pytest.mark.parametrize("drip", [False, True], ids=["silent", "one-byte-at-a-time"])
def test_shared_secret_slow_peer_rejected_by_the_deadline(harness, drip):
    rec = Recorder(SharedSecretAuthenticator(SECRET, timeout=0.6))
    srv = harness.server(AuthService, authenticator=rec)
    t0 = time.monotonic()
    with _raw(srv.port) as s:
        if drip:
            try:
                for byte in b"RPYCSS1\x00C" + bytes(32):
                    s.sendall(bytes([byte]))
                    time.sleep(0.1)
            except (BrokenPipeError, ConnectionResetError):
                pass  # cut off by the deadline, as it should be
        assert _recv_all(s) == b""
    assert time.monotonic() - t0 < 4
    assert wait_until(lambda: rec.outcomes)
    assert "timed out" in str(rec.outcomes[0])


def test_shared_secret_plain_rpyc_client_rejected(harness):
    srv = harness.server(AuthService, authenticator=SharedSecretAuthenticator(SECRET, timeout=0.5))
    conn = harness.track(rpyc.connect(LOOPBACK, srv.port, config={"sync_request_timeout": 10}))
    with pytest.raises(EOFError):
        conn.root
    assert AuthService.connects == 0


def test_shared_secret_client_against_plain_server(harness):
    srv = harness.server(AuthService)
    with pytest.raises(AuthenticationError):
        rpyc.connect(LOOPBACK, srv.port, authenticator=SharedSecretAuthenticator(SECRET, side="client"))


def test_shared_secret_client_against_silent_server():
    listener = socket.socket()
    listener.bind((LOOPBACK, 0))
    listener.listen(1)
    accepted = []
    thread = threading.Thread(target=lambda: accepted.append(listener.accept()[0]), daemon=True)
    thread.start()
    try:
        t0 = time.monotonic()
        with pytest.raises(AuthenticationError, match="timed out"):
            rpyc.connect(LOOPBACK, listener.getsockname()[1],
                         authenticator=SharedSecretAuthenticator(SECRET, side="client", timeout=0.5))
        assert time.monotonic() - t0 < 3
    finally:
        thread.join(5)
        for s in accepted:
            s.close()
        listener.close()


def test_shared_secret_arguments():
    with pytest.raises(ValueError):
        SharedSecretAuthenticator(b"")
    with pytest.raises(ValueError):
        SharedSecretAuthenticator(SECRET, side="both")
    assert "correct" not in repr(SharedSecretAuthenticator(SECRET))
