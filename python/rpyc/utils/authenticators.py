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

:class:`SSLAuthenticator` wraps the socket in TLS (rustls) and, when a CA is given, requires
and verifies a client certificate.
"""

from typing import Any, Dict, Optional, Tuple

__all__ = ["AuthenticationError", "SSLAuthenticator"]


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

        self.keyfile = keyfile
        self.certfile = certfile
        self.ca_certs = ca_certs
        self.cert_reqs = cert_reqs
        self.ssl_version = ssl_version
        self.ciphers = ciphers
        self.handshake_timeout = handshake_timeout
        self._context = tls.server_context(keyfile, certfile, ca_certs, cert_reqs, ssl_version, ciphers)

    def __call__(self, sock: Any) -> Tuple[Any, Optional[Dict[str, Any]]]:
        try:
            tls_sock = self._context.wrap(sock.fileno(), None, self.handshake_timeout)
        except OSError as exc:  # ssl.SSLError, timeouts, resets
            raise AuthenticationError(str(exc)) from exc
        return tls_sock, tls_sock.getpeercert()
