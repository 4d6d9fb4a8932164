"""Service discovery on etcd v3: :class:`EtcdRegistryClient`, a registrar beside upstream's
UDP and TCP registry clients (docs/scaling.md#etcd).

A server registers each of its service names as one key, attached to a *lease* of ``ttl``
seconds that the server's background registration thread keeps alive every ``ttl / 3``
seconds. A server that crashes stops renewing, etcd revokes the lease when it expires and
the keys disappear with it: the same outcome as the pruning of upstream's registry, without
a home-made single point of failure (etcd replicates with Raft). With ``user``/``password``,
each endpoint is asked for a token (``/v3/auth/authenticate``) sent in the ``Authorization``
header; a token that etcd refuses (expired, or the member restarted) is replaced once per
request. Layout::

    <prefix><SERVICE NAME>/<host>:<port>  ->  {"host": "<host>", "port": <port>}

Why no client library: the well-known Python etcd v3 client (``etcd3``) has not been
released since 2020 and does not work with current protobuf; the others pull in gRPC or
several dependencies for what is five HTTP calls. etcd serves its v3 API as JSON too (its
gRPC gateway: ``/v3/kv/put``, ``/v3/kv/range``, ``/v3/lease/grant``, ``/v3/lease/keepalive``,
``/v3/lease/revoke``; keys and values in base64, 64-bit integers as strings), stable since
etcd 3.4, which this module speaks with the standard library (``http.client``, ``json``).
Answers are peer input: each is read up to :data:`MAX_RESPONSE` bytes, and an entry that
does not parse is skipped, never trusted.
"""

import base64
import http.client
import json
import logging
import socket
import ssl
import threading
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union
from urllib.parse import urlsplit

from rpyc.utils.registry import Address, RegistryClient, RegistryError

__all__ = ["EtcdRegistryClient", "DEFAULT_ETCD_URL", "DEFAULT_PREFIX", "MAX_RESPONSE"]

DEFAULT_ETCD_URL = "http://127.0.0.1:2379"
DEFAULT_PREFIX = "/rpyc/services/"
#: largest etcd answer read (bytes); a larger one is refused as an error
MAX_RESPONSE = 4 * 1024 * 1024
#: most keys one discovery or listing reads
MAX_KEYS = 10000
# Addresses a server may bind that say "every interface": not an address a client can use.
_ANY_HOSTS = ("", "0.0.0.0", "::")


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def _unb64(text: Any) -> Optional[str]:
    if not isinstance(text, str):
        return None
    try:
        return base64.b64decode(text, validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None


def _prefix_end(prefix: str) -> str:
    """The ``range_end`` that selects every key starting with ``prefix`` (etcd's rule: the
    prefix with its last byte incremented)."""
    raw = bytearray(prefix.encode("utf-8"))
    while raw and raw[-1] == 0xFF:
        raw.pop()
    if not raw:
        return base64.b64encode(b"\0").decode("ascii")  # every key
    raw[-1] += 1
    return base64.b64encode(bytes(raw)).decode("ascii")


class _Unauthenticated(RegistryError):
    """etcd refused a request's token (HTTP 401): none was sent, or it expired."""


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class EtcdRegistryClient(RegistryClient):
    """Registrar on etcd v3 at ``url`` (``http://`` or ``https://``; several endpoints of one
    cluster may be given as a list or comma-separated, tried in order).

    ``ttl``: seconds a crashed server stays discoverable (its lease's time to live; renewed
    every ``ttl / 3`` seconds). ``prefix``: where the keys live. ``advertise_host``: the
    address registered for the server; by default the host it listens on, or, when it
    listens on every interface, the local address of its connection to etcd (as upstream's
    registry records the source address of a registration). ``ssl_context`` is used for
    ``https://`` endpoints; ``ca_file`` is the short form for a private CA
    (``ssl.create_default_context(cafile=ca_file)``). ``user`` and ``password``: etcd's
    authentication (a user with read-write permission on ``prefix``; the password is kept
    out of every message and repr). ``timeout`` bounds each HTTP exchange.

    Failures to register are logged and retried by the server's registration thread;
    failures to discover or list raise :class:`~rpyc.utils.registry.RegistryError` naming
    the endpoint and the cause.
    """

    def __init__(self, url: Union[str, Sequence[str]] = DEFAULT_ETCD_URL, ttl: float = 10,
                 prefix: str = DEFAULT_PREFIX, timeout: float = 2,
                 advertise_host: Optional[str] = None, ssl_context: Optional[ssl.SSLContext] = None,
                 logger: Optional[logging.Logger] = None, user: Optional[str] = None,
                 password: Optional[str] = None, ca_file: Optional[str] = None) -> None:
        urls = [u.strip() for u in url.split(",")] if isinstance(url, str) else [str(u) for u in url]
        self.endpoints: List[Tuple[str, str, int]] = [self._parse_url(u) for u in urls if u]
        if not self.endpoints:
            raise ValueError("EtcdRegistryClient needs at least one etcd URL, e.g. http://127.0.0.1:2379")
        if not ttl >= 2:
            raise ValueError(f"ttl must be at least 2 seconds (etcd's lease granularity), not {ttl!r}")
        if (user is None) != (password is None):
            raise ValueError("etcd authentication needs both user= and password= (or neither)")
        if ca_file is not None:
            if ssl_context is not None:
                raise ValueError("give ssl_context= or ca_file=, not both (ca_file builds a context)")
            ssl_context = ssl.create_default_context(cafile=ca_file)
        scheme, host, port = self.endpoints[0]
        super().__init__(ip=host, port=port, timeout=timeout, logger=logger)
        self.url = ",".join(urls)
        self.ttl = int(ttl)
        self.prefix = prefix if prefix.endswith("/") else prefix + "/"
        self.advertise_host = advertise_host
        self.ssl_context = ssl_context
        # The server's registration thread renews leases this often.
        self.REREGISTER_INTERVAL = max(self.ttl / 3.0, 0.5)
        self.user = user
        self._password = password
        self._lock = threading.Lock()
        #: port -> lease id of a registered server
        self._leases: Dict[int, str] = {}
        #: endpoint -> its auth token (etcd's simple tokens are known only to the member
        #: that issued them)
        self._tokens: Dict[Tuple[str, str, int], str] = {}

    def _get_logger(self) -> logging.Logger:
        return logging.getLogger("REGCLNT/ETCD")

    def __repr__(self) -> str:
        user = f", user={self.user!r}" if self.user is not None else ""
        return f"EtcdRegistryClient(url={self.url!r}, ttl={self.ttl}, prefix={self.prefix!r}{user})"

    @staticmethod
    def _parse_url(url: str) -> Tuple[str, str, int]:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an etcd URL: {url!r} (expected e.g. http://127.0.0.1:2379)")
        return parts.scheme, parts.hostname, parts.port or 2379

    # -- HTTP -----------------------------------------------------------------------------

    def _post_to(self, endpoint: Tuple[str, str, int], path: str, body: Dict[str, Any],
                 token: Optional[str] = None) -> Tuple[Any, str]:
        """POST ``body`` as JSON (with the auth ``token``); the decoded answer and the local
        address used."""
        scheme, host, port = endpoint
        if scheme == "https":
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                host, port, timeout=self.timeout, context=self.ssl_context)
        else:
            conn = http.client.HTTPConnection(host, port, timeout=self.timeout)
        try:
            headers = {"Content-Type": "application/json"}
            if token is not None:
                headers["Authorization"] = token
            conn.request("POST", path, body=json.dumps(body), headers=headers)
            local = conn.sock.getsockname()[0] if conn.sock is not None else ""
            resp = conn.getresponse()
            data = resp.read(MAX_RESPONSE + 1)
        finally:
            conn.close()
        if len(data) > MAX_RESPONSE:
            raise RegistryError(f"etcd at {host}:{port} answered {path} with more than {MAX_RESPONSE} bytes")
        try:
            answer = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise RegistryError(
                f"etcd at {host}:{port} answered {path} with HTTP {resp.status} and no JSON: "
                f"{data[:200]!r} (is this etcd 3.4 or newer, with its v3 JSON gateway?)") from None
        if resp.status != 200 or not isinstance(answer, dict):
            message = answer.get("message") or answer.get("error") if isinstance(answer, dict) else answer
            text = f"etcd at {host}:{port} refused {path}: HTTP {resp.status}: {message}"
            if resp.status == 401:  # (gRPC's Unauthenticated: no token, or one it no longer knows)
                raise _Unauthenticated(text)
            if "user name is empty" in str(message) and self.user is None:
                text += " (authentication is enabled on this etcd: pass user= and password=)"
            raise RegistryError(text)
        return answer, local

    def _post_authorized(self, endpoint: Tuple[str, str, int], path: str, body: Dict[str, Any]) -> Tuple[Any, str]:
        """``_post_to`` with this endpoint's token when authenticating; a token that etcd
        refuses is replaced once."""
        if self.user is None:
            return self._post_to(endpoint, path, body)
        with self._lock:
            token = self._tokens.get(endpoint)
        if token is not None:
            try:
                return self._post_to(endpoint, path, body, token)
            except _Unauthenticated:
                pass  # (expired: authenticate again)
        token = self._authenticate(endpoint)
        try:
            return self._post_to(endpoint, path, body, token)
        except _Unauthenticated as exc:
            raise RegistryError(f"{exc} (with a fresh token of user {self.user!r})") from None

    def _authenticate(self, endpoint: Tuple[str, str, int]) -> str:
        try:
            answer, _ = self._post_to(endpoint, "/v3/auth/authenticate",
                                      {"name": self.user, "password": self._password})
        except RegistryError as exc:
            # (the message is etcd's answer, which never repeats the password)
            raise RegistryError(f"{exc} (authenticating as user {self.user!r}: check user= and password=)") from None
        token = answer.get("token")
        if not isinstance(token, str) or not token or any(c in token for c in "\r\n"):
            raise RegistryError(f"etcd at {endpoint[1]}:{endpoint[2]} authenticated user {self.user!r} "
                                "but sent no usable token (is authentication enabled there?)")
        with self._lock:
            self._tokens[endpoint] = token
        return token

    def _post(self, path: str, body: Dict[str, Any]) -> Tuple[Any, str]:
        """POST to the first endpoint that answers; :class:`RegistryError` if none does."""
        errors = []
        for endpoint in self.endpoints:
            try:
                return self._post_authorized(endpoint, path, body)
            except (OSError, http.client.HTTPException) as exc:
                errors.append(f"{endpoint[1]}:{endpoint[2]}: {exc}")
        raise RegistryError(
            f"cannot reach etcd at {self.url} ({'; '.join(errors)}); is etcd running there "
            f"(e.g. `etcd --listen-client-urls {self.url.split(',')[0]} ...`)?")

    # -- keys -----------------------------------------------------------------------------

    def _service_prefix(self, name: str) -> str:
        return f"{self.prefix}{str(name).upper()}/"

    def _range(self, prefix: str) -> List[Tuple[str, Optional[str]]]:
        answer, _ = self._post("/v3/kv/range", {
            "key": _b64(prefix), "range_end": _prefix_end(prefix), "limit": MAX_KEYS,
        })
        kvs = answer.get("kvs") or []
        entries: List[Tuple[str, Optional[str]]] = []
        if not isinstance(kvs, list):
            return entries
        for kv in kvs[:MAX_KEYS]:
            if not isinstance(kv, dict):
                continue
            key = _unb64(kv.get("key"))
            if key is not None:
                entries.append((key, _unb64(kv.get("value", ""))))
        return entries

    @staticmethod
    def _address_of(value: Optional[str]) -> Optional[Address]:
        try:
            entry = json.loads(value) if value else None
        except ValueError:
            return None
        if not isinstance(entry, dict):
            return None
        host, port = entry.get("host"), entry.get("port")
        if not isinstance(host, str) or not host or isinstance(port, bool) or not isinstance(port, int):
            return None
        if not 0 < port <= 65535:
            return None
        return host, port

    # -- the registrar API --------------------------------------------------------------------

    def discover(self, name: str) -> Tuple[Address, ...]:
        addrs = []
        for _, value in self._range(self._service_prefix(name)):
            addr = self._address_of(value)
            if addr is not None and addr not in addrs:
                addrs.append(addr)
        return tuple(addrs)

    def list(self, filter_host: Optional[str] = None) -> Tuple[str, ...]:
        names: List[str] = []
        for key, value in self._range(self.prefix):
            name = key[len(self.prefix):].split("/", 1)[0]
            if not name or name in names:
                continue
            if filter_host:
                addr = self._address_of(value)
                if addr is None or addr[0] != filter_host:
                    continue
            names.append(name)
        return tuple(names)

    def register(self, aliases: Any, port: int, interface: str = "") -> bool:
        """Put one key per alias under a lease of ``ttl`` seconds, or renew that lease when
        it is still alive. Called again every :attr:`REREGISTER_INTERVAL` seconds by an
        auto-registering server."""
        try:
            with self._lock:
                lease = self._leases.get(port)
            if lease is not None:
                if self._keepalive(lease):
                    return True
                self.logger.warning("the etcd lease of port %s expired: registering again", port)
            lease, local = self._grant()
            host = self.advertise_host or (interface if interface not in _ANY_HOSTS else local)
            value = json.dumps({"host": host, "port": port})
            for alias in aliases:
                key = self._service_prefix(alias) + _host_port(host, port)
                self._post("/v3/kv/put", {"key": _b64(key), "value": _b64(value), "lease": lease})
            with self._lock:
                self._leases[port] = lease
            self.logger.info("registered %s as %s in etcd (lease %s, ttl %ss)",
                             _host_port(host, port), ", ".join(map(str, aliases)), lease, self.ttl)
            return True
        except RegistryError as exc:
            self.logger.warning("could not register in etcd: %s", exc)
            return False

    def _grant(self) -> Tuple[str, str]:
        answer, local = self._post("/v3/lease/grant", {"TTL": self.ttl})
        lease = answer.get("ID")
        if not isinstance(lease, (str, int)) or isinstance(lease, bool) or not str(lease).isdigit():
            raise RegistryError(f"etcd granted no lease: {answer!r}")
        return str(lease), local

    def _keepalive(self, lease: str) -> bool:
        """Renew ``lease``; False when etcd no longer knows it (it expired)."""
        answer, _ = self._post("/v3/lease/keepalive", {"ID": lease})
        result = answer.get("result")
        ttl = result.get("TTL") if isinstance(result, dict) else None
        # An expired lease is answered without a TTL (or with 0).
        try:
            return ttl is not None and int(ttl) > 0
        except (TypeError, ValueError):
            return False

    def unregister(self, port: int) -> None:
        """Revoke the lease of ``port``: its keys vanish at once."""
        with self._lock:
            lease = self._leases.pop(port, None)
        if lease is None:
            return
        try:
            self._post("/v3/lease/revoke", {"ID": lease})
            self.logger.info("unregistered port %s from etcd (lease %s revoked)", port, lease)
        except RegistryError as exc:
            # Not fatal: the lease expires within ttl seconds anyway.
            self.logger.warning("could not revoke the etcd lease of port %s (it expires within %ss): %s",
                                port, self.ttl, exc)
