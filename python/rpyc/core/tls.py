"""TLS for RPyC connections, on rustls (``rpyc._core.TlsContext``): no OpenSSL in the path.

This module turns upstream's ``ssl``-flavoured arguments (``cert_reqs=ssl.CERT_REQUIRED``,
``ssl_version=ssl.PROTOCOL_TLSv1_2``, OpenSSL cipher strings) into the plain options the
native context takes, and holds the policy decisions:

* TLS 1.2 and 1.3 only; asking for an older version is an error naming the fix.
* A client that is given ``ca_certs`` (or asks for verification) checks the certificate
  chain *and* the host name (upstream skips the name check; pass ``check_hostname=False``
  to get its behaviour back).
* A client that verifies nothing still connects, as upstream does, but warns once with
  :class:`SecurityWarning`.
"""

import re
import threading
import warnings
from typing import Any, Dict, List, Optional

from rpyc import _core

__all__ = ["SecurityWarning", "client_context", "server_context", "wrap_client"]

#: Seconds a TLS handshake may take before the connection is dropped.
HANDSHAKE_TIMEOUT = 10.0


class SecurityWarning(UserWarning):
    """A connection was made in a way that leaves it open to attack (e.g. TLS without
    certificate verification). The message names the setting that fixes it."""


# ssl.CERT_NONE / CERT_OPTIONAL / CERT_REQUIRED (plain ints, so `ssl` need not be imported)
_VERIFY_MODES = {0: "none", 1: "optional", 2: "required"}

# ssl.PROTOCOL_* names -> the TLS versions rpyc will negotiate.
_PROTOCOLS = {
    "PROTOCOL_TLS": ["1.2", "1.3"],
    "PROTOCOL_SSLv23": ["1.2", "1.3"],
    "PROTOCOL_TLS_CLIENT": ["1.2", "1.3"],
    "PROTOCOL_TLS_SERVER": ["1.2", "1.3"],
    "PROTOCOL_TLSv1_2": ["1.2"],
}

# The TLS 1.2 suites rustls implements, by their OpenSSL names (what `ciphers=` strings
# use) and IANA names (what rustls calls them). TLS 1.3 suites are not chosen by cipher
# strings (Python's `set_ciphers` leaves them alone as well).
_TLS12_SUITES = {
    "ECDHE-ECDSA-AES256-GCM-SHA384": "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "ECDHE-ECDSA-AES128-GCM-SHA256": "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "ECDHE-ECDSA-CHACHA20-POLY1305": "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "ECDHE-RSA-AES256-GCM-SHA384": "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "ECDHE-RSA-AES128-GCM-SHA256": "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "ECDHE-RSA-CHACHA20-POLY1305": "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
}

# Cipher-string words that select every suite we have (all of ours are strong ones).
_SELECT_ALL = {"ALL", "DEFAULT", "HIGH", "SECURE", "TLSV1.2", "ECDHE", "EECDH", "KECDHE"}

# Component aliases OpenSSL accepts in cipher strings, mapped to name parts of our suites.
_ALIASES = {
    "AESGCM": ("GCM",),
    "AES": ("AES256", "AES128"),
    "AECDSA": ("ECDSA",),
    "ARSA": ("RSA",),
    "SHA256": ("SHA256", "POLY1305"),
}


def _suite_matches(openssl_name: str, word: str) -> bool:
    """Whether an OpenSSL cipher-string word like ``ECDHE+AESGCM`` selects the suite. A word
    with a dash that is not one of our suites names a suite we do not have."""
    if "-" in word:
        return False
    parts = set(openssl_name.split("-"))
    for component in word.upper().split("+"):
        if component in _SELECT_ALL:
            continue
        if not any(needle in parts for needle in _ALIASES.get(component, (component,))):
            return False
    return True


def tls12_suites(ciphers: str) -> List[str]:
    """The rustls TLS 1.2 suites (IANA names) an OpenSSL cipher string selects.

    Explicit suite names and family words (``HIGH``, ``ECDHE+AESGCM``, ``AES256``...) add
    suites; ``!``/``-`` words remove them. Suites rustls does not implement (CBC, plain RSA
    key exchange, DHE) select nothing; if nothing is left the string is refused.
    """
    chosen: Dict[str, None] = {}
    for word in filter(None, re.split(r"[:,\s]+", ciphers)):
        if word.startswith("@") or word.startswith("+"):
            continue  # strength ordering / moving to the end: no effect on the set
        remove = word[0] in "!-"
        word = word.lstrip("!-")
        by_name = [o for o, iana in _TLS12_SUITES.items() if word in (o, iana)]
        matched = by_name or [o for o in _TLS12_SUITES if _suite_matches(o, word)]
        for name in matched:
            if remove:
                chosen.pop(name, None)
            else:
                chosen[name] = None
    if not chosen:
        raise ValueError(
            f"ciphers={ciphers!r} selects no cipher suite rpyc's TLS (rustls) implements; "
            f"use some of: {', '.join(_TLS12_SUITES)} (TLS 1.3 suites are always enabled)"
        )
    return [_TLS12_SUITES[name] for name in chosen]


def tls_versions(ssl_version: Any) -> List[str]:
    """The TLS versions an upstream-style ``ssl_version`` argument allows."""
    if ssl_version is None:
        return ["1.2", "1.3"]
    name = getattr(ssl_version, "name", None)
    if name is None:
        import ssl

        name = ssl._SSLMethod(ssl_version).name  # a plain int constant
    if name not in _PROTOCOLS:
        raise ValueError(
            f"ssl_version={name} is not supported: rpyc speaks TLS 1.2 and 1.3 only; "
            "leave ssl_version out (or use ssl.PROTOCOL_TLS_CLIENT / PROTOCOL_TLSv1_2)"
        )
    return list(_PROTOCOLS[name])


def _verify_mode(cert_reqs: Any) -> str:
    try:
        return _VERIFY_MODES[int(cert_reqs)]
    except (KeyError, TypeError, ValueError):
        raise ValueError(
            f"cert_reqs={cert_reqs!r}: use ssl.CERT_NONE, ssl.CERT_OPTIONAL or ssl.CERT_REQUIRED"
        ) from None


def _options(keyfile: Any, certfile: Any, ca_certs: Any, verify: str, ssl_version: Any,
             ciphers: Optional[str], check_hostname: bool = False) -> Dict[str, Any]:
    return {
        "keyfile": None if keyfile is None else str(keyfile),
        "certfile": None if certfile is None else str(certfile),
        "ca_certs": None if ca_certs is None else str(ca_certs),
        "verify": verify,
        "check_hostname": check_hostname,
        "versions": tls_versions(ssl_version),
        "tls12_cipher_suites": None if ciphers is None else tls12_suites(ciphers),
    }


def client_context(keyfile: Any = None, certfile: Any = None, ca_certs: Any = None,
                   cert_reqs: Any = None, ssl_version: Any = None, ciphers: Optional[str] = None,
                   check_hostname: Optional[bool] = None) -> "_core.TlsContext":
    """A client context from upstream's ``ssl_connect`` arguments.

    Verification is on when ``ca_certs`` is given (or ``cert_reqs`` asks for it; without
    ``ca_certs`` the system trust store is used); the host name is then checked too unless
    ``check_hostname=False``.
    """
    if cert_reqs is None:
        verify = "required" if ca_certs is not None else "none"
    else:
        verify = _verify_mode(cert_reqs)
    verifying = verify != "none"
    if check_hostname is None:
        check_hostname = verifying
    elif check_hostname and not verifying:
        raise ValueError("check_hostname=True needs certificate verification: pass ca_certs=")
    options = _options(keyfile, certfile, ca_certs, verify, ssl_version, ciphers, check_hostname)
    return _core.TlsContext.client(options)


def server_context(keyfile: Any, certfile: Any, ca_certs: Any = None, cert_reqs: Any = None,
                   ssl_version: Any = None, ciphers: Optional[str] = None) -> "_core.TlsContext":
    """A server context from ``SSLAuthenticator``'s arguments: client certificates are
    required when ``ca_certs`` is given, unless ``cert_reqs`` says otherwise."""
    if cert_reqs is None:
        verify = "required" if ca_certs is not None else "none"
    else:
        verify = _verify_mode(cert_reqs)
    return _core.TlsContext.server(_options(keyfile, certfile, ca_certs, verify, ssl_version, ciphers))


_warned_unverified = threading.Event()


def warn_unverified(host: str, port: Any) -> None:
    """Warn (once per process) that a TLS client does not check whom it talks to."""
    if _warned_unverified.is_set():
        return
    _warned_unverified.set()
    warnings.warn(
        f"TLS connection to {host}:{port} does not verify the server's certificate, so "
        "anyone on the network path can impersonate the server; pass ca_certs=<CA file> "
        "(or cert_reqs=ssl.CERT_REQUIRED to use the system trust store)",
        SecurityWarning,
        stacklevel=4,
    )


def wrap_client(context: "_core.TlsContext", sock: Any, host: str,
                timeout: float = HANDSHAKE_TIMEOUT) -> "_core.TlsSocket":
    """Handshake as a client over the connected ``sock``. The TLS socket works on its own
    duplicate of the descriptor; ``sock`` is closed either way."""
    try:
        return context.wrap(sock.fileno(), host, timeout)
    finally:
        sock.close()
