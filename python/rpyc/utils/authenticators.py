"""Authenticators: callables run by a server on each accepted socket before the connection is
built.

An authenticator takes the raw socket and returns ``(socket_like, credentials)``: the object
to use from then on (possibly a wrapped socket) and anything describing the peer, which the
server stores in the connection configuration under ``"credentials"``. It rejects the peer
by raising :class:`AuthenticationError`. Any callable with that contract works, e.g.::

    def password_authenticator(sock):
        if sock.recv(8) != b"sesame!!":
            raise AuthenticationError("wrong password")
        return sock, None

    server = ThreadedServer(MyService, port=18861, authenticator=password_authenticator)

Clients (an rpyc-rs extension) accept the same contract through the ``authenticator=``
argument of :func:`rpyc.connect`, :func:`rpyc.unix_connect`, :func:`rpyc.connect_stream`,
``ssh_connect`` and ``connect_by_service`` (and of ``rpyc.classic.connect``,
``unix_connect``, ``ssh_connect``): it is called with the connected socket before any RPyC
data, its socket is used from then on, its credentials describe the server (stored in the
client connection's ``_config["credentials"]``), and an exception it raises closes the
socket and propagates to the caller.

:class:`SharedSecretAuthenticator` checks that the peer knows a shared secret (mutual
HMAC-SHA256 challenge-response; rpyc-rs peers only) and also serves as the client-side hook
(the ``authenticator=`` argument of :func:`rpyc.connect` and the other client factories).
:class:`SSLAuthenticator` wraps the socket in TLS (rustls) and, when a CA is given, requires
and verifies a client certificate.
"""

import hashlib
import hmac
import secrets
import socket
import time
from typing import Any, Dict, Optional, Tuple

from rpyc.core import green
from rpyc.lib import safe_import  # noqa: F401 (upstream's name)

__all__ = ["AuthenticationError", "SSLAuthenticator", "SharedSecretAuthenticator"]


class AuthenticationError(Exception):
    """Raised by an authenticator to reject a connection attempt."""


class SSLAuthenticator:
    """Server-side TLS authenticator (rustls; TLS 1.2 or 1.3).

    :param keyfile: the server's private key (PEM)
    :param certfile: the server's certificate chain (PEM)
    :param ca_certs: certificate authorities trusted to sign client certificates; when given,
                     clients must present a certificate they signed (``cert_reqs`` defaults
                     to ``ssl.CERT_REQUIRED``, otherwise to ``ssl.CERT_NONE``)
    :param cert_reqs: explicit ``ssl.CERT_*`` mode for client certificates
    :param ssl_version: ``None`` (TLS 1.2 and 1.3) or an ``ssl.PROTOCOL_*`` constant; versions
                        before TLS 1.2 are refused
    :param ciphers: an OpenSSL cipher string selecting TLS 1.2 suites, or ``None``
    :param handshake_timeout: seconds a client may take to complete the handshake

    The configuration is loaded (and checked) once, here. Calling the authenticator with an
    accepted socket performs the handshake and returns ``(tls_socket, peer_certificate)``,
    the certificate being what ``ssl.SSLSocket.getpeercert()`` would return (a dict, or
    ``None`` when the client sent none). A failed handshake raises
    :class:`AuthenticationError` and the server drops the connection before any RPyC data.
    """

    def __init__(
        self,
        keyfile: Any,
        certfile: Any,
        ca_certs: Any = None,
        cert_reqs: Optional[int] = None,
        ssl_version: Optional[int] = None,
        ciphers: Optional[str] = None,
        handshake_timeout: float = 10.0,
    ) -> None:
        from rpyc.core import tls

        self.keyfile = str(keyfile)
        self.certfile = str(certfile)
        self.ca_certs = str(ca_certs) if ca_certs else None
        if cert_reqs is None:  # ssl.CERT_REQUIRED with a CA, ssl.CERT_NONE without
            cert_reqs = 2 if ca_certs else 0
        self.cert_reqs = cert_reqs
        self.ssl_version = ssl_version
        self.ciphers = ciphers
        self.handshake_timeout = handshake_timeout
        self._context = tls.server_context(keyfile, certfile, ca_certs, cert_reqs, ssl_version, ciphers)

    def __call__(self, sock: Any) -> Tuple[Any, Optional[Dict[str, Any]]]:
        try:
            tls_sock: Any
            if green.is_green_socket(sock):  # (TLS fed from the gevent socket: docs/gevent.md)
                tls_sock = green.tls_server(self._context, sock, self.handshake_timeout)
            else:
                tls_sock = self._context.wrap(sock.fileno(), None, self.handshake_timeout)
        except OSError as exc:  # ssl.SSLError, timeouts, resets
            raise AuthenticationError(str(exc)) from exc
        return tls_sock, tls_sock.getpeercert()


class SharedSecretAuthenticator:
    """Mutual shared-secret authentication (HMAC-SHA256 challenge-response), rpyc-rs only.

    Both ends hold the same secret and each proves it knows it without revealing it::

        auth = SharedSecretAuthenticator(secret)
        server = ThreadedServer(MyService, authenticator=auth)
        conn = rpyc.connect(host, port, authenticator=SharedSecretAuthenticator(secret, side="client"))

    The exchange, before any RPyC data (``n`` are 32-byte random nonces from ``secrets``,
    ``H`` is HMAC-SHA256 keyed with the secret)::

        client -> server   MAGIC "C" n_c                         (41 bytes)
        server -> client   MAGIC "S" n_s H("server" n_c n_s)     (73 bytes)
        client -> server   H("client" n_c n_s)                   (32 bytes)
        server -> client   0x01 (accepted) or 0x00 (rejected)    (1 byte)

    Proofs are compared with :func:`hmac.compare_digest`; the role labels keep one side's
    proof from being replayed as the other's. Every read has a fixed size and the whole
    exchange a deadline (``timeout`` seconds), so a silent or slow peer cannot hold the
    server; a peer that sends anything else, the wrong proof, or nothing in time is rejected
    with :class:`AuthenticationError` and the socket is left for the caller to close.

    The credentials returned (stored in ``conn._config["credentials"]``) are
    ``{"scheme": "hmac-sha256-shared-secret"}``. The secret protects who may connect; it does
    not encrypt the connection (combine it with TLS or an SSH tunnel on untrusted networks).
    Upstream rpyc has no such exchange: an upstream peer cannot connect to a server using
    this authenticator, nor accept a client using it.

    :param secret: the shared secret (``bytes``, or ``str`` encoded as UTF-8); not empty
    :param side: ``"server"`` (the default, for ``Server(authenticator=...)``) or
                 ``"client"`` (for the ``authenticator=`` argument of the client factories)
    :param timeout: seconds the whole exchange may take
    """

    MAGIC = b"RPYCSS1\x00"
    NONCE_SIZE = 32
    MAC_SIZE = 32
    ACCEPTED = b"\x01"
    REJECTED = b"\x00"
    SCHEME = "hmac-sha256-shared-secret"

    def __init__(self, secret: Any, side: str = "server", timeout: float = 10.0) -> None:
        if isinstance(secret, str):
            secret = secret.encode("utf-8")
        if not isinstance(secret, (bytes, bytearray)) or not secret:
            raise ValueError("the shared secret must be non-empty bytes or str")
        if side not in ("server", "client"):
            raise ValueError("side must be 'server' or 'client'")
        self._secret = bytes(secret)
        self.side = side
        self.timeout = timeout

    def __repr__(self) -> str:  # never shows the secret
        return f"<SharedSecretAuthenticator side={self.side!r}>"

    def _mac(self, label: bytes, client_nonce: bytes, server_nonce: bytes) -> bytes:
        return hmac.new(self._secret, b"rpyc-rs shared secret v1 " + label + client_nonce + server_nonce,
                        hashlib.sha256).digest()

    def __call__(self, sock: Any) -> Tuple[Any, Dict[str, Any]]:
        previous = sock.gettimeout()
        deadline = time.monotonic() + self.timeout
        try:
            if self.side == "server":
                self._server(sock, deadline)
            else:
                self._client(sock, deadline)
        except socket.timeout:
            raise AuthenticationError(
                f"shared-secret handshake timed out after {self.timeout}s") from None
        except OSError as exc:
            raise AuthenticationError(f"shared-secret handshake failed: {exc}") from None
        finally:
            try:
                sock.settimeout(previous)
            except OSError:
                pass
        return sock, {"scheme": self.SCHEME}

    def _recv_exactly(self, sock: Any, count: int, deadline: float, what: str) -> bytes:
        data = b""
        while len(data) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout()
            sock.settimeout(left)
            chunk = sock.recv(count - len(data))
            if not chunk:
                raise AuthenticationError(f"the peer closed the connection during the shared-secret handshake ({what})")
            data += chunk
        return data

    def _hello(self, data: bytes, role: bytes) -> bytes:
        size = len(self.MAGIC)
        if data[:size] != self.MAGIC:
            raise AuthenticationError(
                "the peer did not start an rpyc-rs shared-secret handshake (an upstream rpyc "
                "peer, or one without SharedSecretAuthenticator, cannot speak it)")
        if data[size:size + 1] != role:
            expected = "client" if role == b"C" else "server"
            raise AuthenticationError(
                f"both ends act as the same side: the peer should be the {expected} side "
                f"(SharedSecretAuthenticator(secret, side={expected!r}))")
        return data[size + 1:]

    def _server(self, sock: Any, deadline: float) -> None:
        hello = self._recv_exactly(sock, len(self.MAGIC) + 1 + self.NONCE_SIZE, deadline, "client hello")
        client_nonce = self._hello(hello, b"C")
        server_nonce = secrets.token_bytes(self.NONCE_SIZE)
        sock.sendall(self.MAGIC + b"S" + server_nonce + self._mac(b"server", client_nonce, server_nonce))
        proof = self._recv_exactly(sock, self.MAC_SIZE, deadline, "client proof")
        if not hmac.compare_digest(proof, self._mac(b"client", client_nonce, server_nonce)):
            sock.sendall(self.REJECTED)
            raise AuthenticationError("the client does not know the shared secret")
        sock.sendall(self.ACCEPTED)

    def _client(self, sock: Any, deadline: float) -> None:
        client_nonce = secrets.token_bytes(self.NONCE_SIZE)
        sock.sendall(self.MAGIC + b"C" + client_nonce)
        reply = self._recv_exactly(sock, len(self.MAGIC) + 1 + self.NONCE_SIZE + self.MAC_SIZE,
                                   deadline, "server challenge")
        rest = self._hello(reply, b"S")
        server_nonce, proof = rest[:self.NONCE_SIZE], rest[self.NONCE_SIZE:]
        if not hmac.compare_digest(proof, self._mac(b"server", client_nonce, server_nonce)):
            raise AuthenticationError("the server does not know the shared secret")
        sock.sendall(self._mac(b"client", client_nonce, server_nonce))
        verdict = self._recv_exactly(sock, 1, deadline, "server verdict")
        if verdict != self.ACCEPTED:
            raise AuthenticationError("the server rejected our proof: the shared secrets differ")
