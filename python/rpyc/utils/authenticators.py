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

:class:`SSLAuthenticator` wraps the socket in TLS and, when a CA is given, requires and
verifies a client certificate.
"""

from typing import TYPE_CHECKING, Any, Dict, Optional, Tuple

from rpyc.lib import safe_import

if TYPE_CHECKING:
    import ssl
else:
    # a Python built without OpenSSL can still import this module (and thus the servers)
    ssl = safe_import("ssl")

__all__ = ["AuthenticationError", "SSLAuthenticator"]


class AuthenticationError(Exception):
    """Raised by an authenticator to reject a connection attempt."""


class SSLAuthenticator:
    """Server-side TLS authenticator.

    :param keyfile: the server's private key (PEM)
    :param certfile: the server's certificate (PEM)
    :param ca_certs: certificate authorities trusted to sign client certificates; when given,
                     clients must present a certificate (``cert_reqs`` defaults to
                     ``ssl.CERT_REQUIRED``, otherwise to ``ssl.CERT_NONE``)
    :param cert_reqs: explicit ``ssl.CERT_*`` verification mode
    :param ssl_version: an ``ssl.PROTOCOL_*`` constant; by default a context from
                        ``ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)`` is used
    :param ciphers: an OpenSSL cipher list string, or ``None`` for the default

    Calling the authenticator with an accepted socket performs the handshake and returns
    ``(tls_socket, peer_certificate)``, the certificate being what
    ``SSLSocket.getpeercert()`` returns (a dict, or ``None``/empty when the client sent no
    certificate). Handshake failures raise :class:`AuthenticationError`.
    """

    def __init__(
        self,
        keyfile: Any,
        certfile: Any,
        ca_certs: Any = None,
        cert_reqs: Optional[int] = None,
        ssl_version: Optional[int] = None,
        ciphers: Optional[str] = None,
    ) -> None:
        self.keyfile = str(keyfile)
        self.certfile = str(certfile)
        self.ca_certs = str(ca_certs) if ca_certs else None
        self.ciphers = ciphers
        if cert_reqs is None:
            cert_reqs = ssl.CERT_REQUIRED if ca_certs else ssl.CERT_NONE
        self.cert_reqs = cert_reqs
        self.ssl_version = ssl_version

    def _make_context(self) -> "ssl.SSLContext":
        if self.ssl_version is None:
            context = ssl.create_default_context(purpose=ssl.Purpose.CLIENT_AUTH)
        else:
            context = ssl.SSLContext(self.ssl_version)
        context.load_cert_chain(self.certfile, keyfile=self.keyfile)
        if self.ca_certs is not None:
            context.load_verify_locations(self.ca_certs)
        if self.ciphers is not None:
            context.set_ciphers(self.ciphers)
        if self.cert_reqs is not None:
            context.verify_mode = ssl.VerifyMode(self.cert_reqs)
        return context

    def __call__(self, sock: Any) -> Tuple["ssl.SSLSocket", Optional[Dict[str, Any]]]:
        try:
            tls_sock = self._make_context().wrap_socket(sock, server_side=True)
        except ssl.SSLError as exc:
            raise AuthenticationError(str(exc)) from exc
        return tls_sock, tls_sock.getpeercert()
