"""Service registry: where servers announce themselves and clients find them (docs/protocol.md#registry-protocol).

A registry server keeps, for each service name, the addresses ``(host, port)`` of the
servers offering it, with the time each last (re-)registered. Servers started with a
registrar and ``auto_register`` register every ``REREGISTER_INTERVAL`` seconds and unregister
when they close; entries older than the pruning timeout are dropped when queried. Clients ask
through :func:`rpyc.discover`, :func:`rpyc.list_services` and :func:`rpyc.connect_by_service`.

The protocol is not the connection protocol: each request is one brine value
``("RPYC", COMMAND, args)`` in one UDP datagram (or written on a fresh TCP connection), and the
answer is one brine value. Commands: ``REGISTER (aliases, port)`` → ``"OK"``,
``UNREGISTER (port,)`` → ``"OK"``, ``QUERY (name,)`` → tuple of ``(host, port)``,
``LIST ((filter_host,),)`` → tuple of names, or ``None`` when listing is disabled. The host
recorded for a server is the source address of its REGISTER request.

Two transports: UDP (the default client broadcasts to ``255.255.255.255`` on the local
network, and the server listens on every interface) and TCP (for networks where broadcasts do
not pass; the client names the registry host). Nothing is authenticated: anyone who can reach
the registry can register or unregister services, so run it only on networks you trust.

Two more registrars use existing engines instead of a registry server
(docs/scaling.md): :class:`EtcdRegistryClient` (servers register under an etcd lease) and
:class:`DNSSRVRegistryClient` (clients read DNS SRV records, as Kubernetes headless
services and Consul publish them).
"""

import logging
import select
import socket
import sys
import threading
import time
from contextlib import closing
from typing import Any, Dict, Optional, Tuple

from rpyc.core import brine

__all__ = [
    "DEFAULT_PRUNING_TIMEOUT", "MAX_DGRAM_SIZE", "REGISTRY_PORT", "REREGISTER_INTERVAL",
    "RegistryServer", "UDPRegistryServer", "TCPRegistryServer",
    "RegistryClient", "UDPRegistryClient", "TCPRegistryClient",
    "RegistryError", "EtcdRegistryClient", "DNSSRVRegistryClient",
]

DEFAULT_PRUNING_TIMEOUT = 4 * 60
MAX_DGRAM_SIZE = 1500
REGISTRY_PORT = 18811
#: seconds between two registrations of an auto-registering server (also
#: ``RegistryClient.REREGISTER_INTERVAL``, which a registrar may override)
REREGISTER_INTERVAL = 60
#: how often ``RegistryServer.start`` checks whether ``close`` was called (seconds)
_POLL_INTERVAL = 0.2
_MAGIC = "RPYC"

Address = Tuple[str, int]


class RegistryError(Exception):
    """A registrar could not do what was asked (its engine is unreachable, refused, or
    cannot do it); the message names the engine and the cause."""


# ------------------------------------------------------------------------------------------
# servers
# ------------------------------------------------------------------------------------------

class RegistryServer:
    """Base registry server over an already bound socket ``listenersock``.

    Subclasses provide the transport (:meth:`_recv`, :meth:`_send`); the commands are the
    ``cmd_<name>`` methods, each called with the requester's host first. ``services`` maps an
    upper-case service name to ``{(host, port): last registration time}``.
    """

    #: seconds the socket waits per receive (upstream's attribute; also bounds one request)
    TIMEOUT = 1.0

    def __init__(self, listenersock: socket.socket, pruning_timeout: Optional[float] = None,
                 logger: Optional[logging.Logger] = None, allow_listing: bool = False) -> None:
        self.sock: Optional[socket.socket] = listenersock
        self.port: int = listenersock.getsockname()[1]
        self.active = False
        self.services: Dict[str, Dict[Address, float]] = {}
        self.pruning_timeout = DEFAULT_PRUNING_TIMEOUT if pruning_timeout is None else pruning_timeout
        self.allow_listing = allow_listing
        self.logger = self._get_logger() if logger is None else logger
        self._lock = threading.RLock()

    def _get_logger(self) -> logging.Logger:
        raise NotImplementedError()

    # -- hooks --------------------------------------------------------------------------------

    def on_service_added(self, name: str, addrinfo: Address) -> None:
        """Called when a server joins the registry under ``name`` (not on re-registration)."""

    def on_service_removed(self, name: str, addrinfo: Address) -> None:
        """Called when a server leaves ``name``: it unregistered or it was pruned."""

    # -- bookkeeping --------------------------------------------------------------------------

    def _add_service(self, name: str, addrinfo: Address) -> None:
        entries = self.services.setdefault(name, {})
        is_new = addrinfo not in entries
        entries[addrinfo] = time.time()
        if is_new:
            try:
                self.on_service_added(name, addrinfo)
            except Exception:
                self.logger.exception("on_service_added(%r, %r) failed", name, addrinfo)

    def _remove_service(self, name: str, addrinfo: Address) -> None:
        entries = self.services.get(name)
        if entries is None or addrinfo not in entries:
            return
        del entries[addrinfo]
        if not entries:
            del self.services[name]
        try:
            self.on_service_removed(name, addrinfo)
        except Exception:
            self.logger.exception("on_service_removed(%r, %r) failed", name, addrinfo)

    # -- commands -----------------------------------------------------------------------------

    def cmd_query(self, host: str, name: str) -> Tuple[Address, ...]:
        """The live servers of ``name``, oldest registration first (stale ones are pruned)."""
        name = str(name).upper()
        entries = self.services.get(name)
        if not entries:
            self.logger.debug("query for %r: no such service", name)
            return ()
        horizon = time.time() - self.pruning_timeout
        alive = []
        for addrinfo, stamp in sorted(entries.items(), key=lambda item: item[1]):
            if stamp < horizon:
                self.logger.debug("pruning stale %s:%s of %r", addrinfo[0], addrinfo[1], name)
                self._remove_service(name, addrinfo)
            else:
                alive.append(addrinfo)
        self.logger.debug("query for %r: %r", name, alive)
        return tuple(alive)

    def cmd_list(self, host: str, filter_host: Any = None) -> Optional[Tuple[str, ...]]:
        """The known service names (those with a server on ``filter_host`` if given), or
        ``None`` when listing is disabled."""
        if not self.allow_listing:
            self.logger.debug("list request refused: listing is disabled")
            return None
        if isinstance(filter_host, tuple):  # the wire nests it: LIST ((filter_host,),)
            filter_host = filter_host[0] if filter_host else None
        if filter_host:
            names = tuple(name for name, entries in self.services.items()
                          if any(addr[0] == filter_host for addr in entries))
        else:
            names = tuple(self.services)
        self.logger.debug("list request: %r", names)
        return names

    def cmd_register(self, host: str, names: Any, port: Any) -> str:
        """Record ``(host, port)`` under each of ``names``."""
        if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
            raise ValueError(f"invalid port {port!r}")
        names = [str(name).upper() for name in names]
        self.logger.debug("registering %s:%s as %s", host, port, ", ".join(names))
        for name in names:
            self._add_service(name, (host, port))
        return "OK"

    def cmd_unregister(self, host: str, port: Any) -> str:
        """Forget ``(host, port)`` under every name."""
        self.logger.debug("unregistering %s:%s", host, port)
        for name in list(self.services):
            self._remove_service(name, (host, port))
        return "OK"

    # -- serving ------------------------------------------------------------------------------

    def _recv(self) -> Tuple[bytes, Any]:
        """Wait for the next request: ``(data, addrinfo)``; ``socket.timeout`` if none came."""
        raise NotImplementedError()

    def _send(self, data: bytes, addrinfo: Any) -> None:
        raise NotImplementedError()

    def _discard(self, addrinfo: Any) -> None:
        """Drop the request of ``addrinfo`` without answering (hook for TCP)."""

    def _handle(self, data: bytes, addrinfo: Any) -> None:
        try:
            magic, command, args = brine.load(data)
        except Exception:
            self.logger.debug("ignoring an undecodable request from %s", addrinfo)
            self._discard(addrinfo)
            return
        if magic != _MAGIC:
            self.logger.warning("invalid magic %r from %s", magic, addrinfo)
            self._discard(addrinfo)
            return
        handler = getattr(self, "cmd_" + command.lower(), None) if isinstance(command, str) else None
        if handler is None or not callable(handler) or not isinstance(args, tuple):
            self.logger.warning("unknown command %r from %s", command, addrinfo)
            self._discard(addrinfo)
            return
        try:
            with self._lock:
                reply = handler(addrinfo[0], *args)
            payload = brine.dump(reply)
        except Exception:
            self.logger.exception("command %r from %s failed", command, addrinfo)
            self._discard(addrinfo)
            return
        self._send(payload, addrinfo)

    def _wait_readable(self) -> bool:
        sock = self.sock
        if sock is None:
            return False
        try:
            readable, _, _ = select.select([sock], [], [], _POLL_INTERVAL)
        except (OSError, ValueError):
            return False
        return bool(readable)

    def _work(self) -> None:
        while self.active:
            if not self._wait_readable():
                continue
            try:
                data, addrinfo = self._recv()
            except (socket.timeout, OSError):
                continue
            self._handle(data, addrinfo)

    def start(self) -> None:
        """Serve requests until :meth:`close` is called (blocks); the socket is closed at the
        end, so a registry server runs once."""
        if self.active:
            raise ValueError("server is already running")
        if self.sock is None:
            raise ValueError("object disposed")
        host, port = self.sock.getsockname()[:2]
        self.logger.debug("registry server started on %s:%s", host, port)
        self.active = True
        try:
            self._work()
        except KeyboardInterrupt:
            self.logger.warning("keyboard interrupt!")
        finally:
            self.active = False
            self.logger.debug("registry server closed")
            sock, self.sock = self.sock, None
            if sock is not None:
                sock.close()

    def close(self) -> None:
        """Make :meth:`start` return (within a fraction of a second)."""
        if not self.active:
            raise ValueError("server is not running")
        self.logger.debug("stopping registry server")
        self.active = False


class UDPRegistryServer(RegistryServer):
    """Registry answering UDP datagrams (including broadcasts) on ``host:port``. The default
    host ``0.0.0.0`` is needed to receive broadcasts; ``127.0.0.1`` keeps it to this
    machine."""

    TIMEOUT = 1.0

    def __init__(self, host: str = "0.0.0.0", port: int = REGISTRY_PORT, pruning_timeout: Optional[float] = None,
                 logger: Optional[logging.Logger] = None, allow_listing: bool = False) -> None:
        family, socktype, proto, _, sockaddr = socket.getaddrinfo(host, port, 0, socket.SOCK_DGRAM)[0]
        sock = socket.socket(family, socktype, proto)
        try:
            sock.bind(sockaddr)
            sock.settimeout(self.TIMEOUT)
        except BaseException:
            sock.close()
            raise
        super().__init__(sock, pruning_timeout=pruning_timeout, logger=logger, allow_listing=allow_listing)

    def _get_logger(self) -> logging.Logger:
        return logging.getLogger(f"REGSRV/UDP/{self.port}")

    def _recv(self) -> Tuple[bytes, Any]:
        assert self.sock is not None
        return self.sock.recvfrom(MAX_DGRAM_SIZE)

    def _send(self, data: bytes, addrinfo: Any) -> None:
        if self.sock is None:
            return
        try:
            self.sock.sendto(data, addrinfo)
        except OSError:
            pass


class TCPRegistryServer(RegistryServer):
    """Registry answering one request per TCP connection on ``host:port``."""

    TIMEOUT = 3.0

    def __init__(self, host: str = "0.0.0.0", port: int = REGISTRY_PORT, pruning_timeout: Optional[float] = None,
                 logger: Optional[logging.Logger] = None, reuse_addr: bool = True,
                 allow_listing: bool = False) -> None:
        family, socktype, proto, _, sockaddr = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]
        sock = socket.socket(family, socktype, proto)
        try:
            if reuse_addr and sys.platform != "win32":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(sockaddr)
            sock.listen(10)
            sock.settimeout(self.TIMEOUT)
        except BaseException:
            sock.close()
            raise
        super().__init__(sock, pruning_timeout=pruning_timeout, logger=logger, allow_listing=allow_listing)
        self._connected_sockets: Dict[Any, socket.socket] = {}

    def _get_logger(self) -> logging.Logger:
        return logging.getLogger(f"REGSRV/TCP/{self.port}")

    def _recv(self) -> Tuple[bytes, Any]:
        assert self.sock is not None
        client, _ = self.sock.accept()
        try:
            client.settimeout(self.TIMEOUT)
            addrinfo = client.getpeername()
            data = self._read_request(client)
        except BaseException:
            client.close()
            raise
        self._connected_sockets[addrinfo] = client
        return data, addrinfo

    @staticmethod
    def _read_request(client: socket.socket) -> bytes:
        # A request is one brine value of at most MAX_DGRAM_SIZE bytes; read until it
        # decodes (it may arrive in pieces), the peer stops sending, or the limit is hit.
        data = b""
        while len(data) < MAX_DGRAM_SIZE:
            chunk = client.recv(MAX_DGRAM_SIZE - len(data))
            if not chunk:
                break
            data += chunk
            try:
                brine.load(data)
            except Exception:
                continue
            break
        return data

    def _send(self, data: bytes, addrinfo: Any) -> None:
        client = self._connected_sockets.pop(addrinfo, None)
        if client is None:
            return
        with closing(client):
            try:
                client.sendall(data)
            except OSError:
                pass

    def _discard(self, addrinfo: Any) -> None:
        client = self._connected_sockets.pop(addrinfo, None)
        if client is not None:
            client.close()


# ------------------------------------------------------------------------------------------
# clients (registrars)
# ------------------------------------------------------------------------------------------

class RegistryClient:
    """Base registry client, a.k.a. *registrar*: what servers use to (un)register and
    clients to discover. ``timeout`` bounds every wait for an answer (seconds)."""

    #: seconds between a server's re-registrations
    REREGISTER_INTERVAL: float = REREGISTER_INTERVAL

    def __init__(self, ip: str, port: int, timeout: float, logger: Optional[logging.Logger] = None) -> None:
        self.ip = ip
        self.port = port
        self.timeout = timeout
        self.logger = self._get_logger() if logger is None else logger

    def _get_logger(self) -> logging.Logger:
        raise NotImplementedError()

    def discover(self, name: str) -> Tuple[Address, ...]:
        """The ``(host, port)`` of the servers offering ``name`` (an empty tuple if none
        answered)."""
        raise NotImplementedError()

    def list(self, filter_host: Optional[str] = None) -> Any:
        """The service names the registry knows (only those on ``filter_host`` if given);
        ``None`` if the registry does not allow listing."""
        raise NotImplementedError()

    def register(self, aliases: Any, port: int, interface: str = "") -> bool:
        """Announce a server listening on ``port`` under ``aliases``; ``interface`` is the
        local address to send from (it becomes the registered host). True if acknowledged."""
        raise NotImplementedError()

    def unregister(self, port: int) -> None:
        """Withdraw the server listening on ``port``."""
        raise NotImplementedError()

    @staticmethod
    def _request(command: str, args: Tuple[Any, ...]) -> bytes:
        return brine.dump((_MAGIC, command, args))

    @staticmethod
    def _decode(data: bytes, default: Any) -> Any:
        try:
            return brine.load(data)
        except Exception:
            return default


class UDPRegistryClient(RegistryClient):
    """Registry client over UDP. With the default ``ip`` (``255.255.255.255``, or any address
    with a ``255`` part) requests are broadcast on the local network and the first answer is
    used; give the registry's address to talk to it alone."""

    def __init__(self, ip: str = "255.255.255.255", port: int = REGISTRY_PORT, timeout: float = 2,
                 bcast: Optional[bool] = None, logger: Optional[logging.Logger] = None,
                 ipv6: bool = False) -> None:
        super().__init__(ip=ip, port=port, timeout=timeout, logger=logger)
        if ipv6:
            self.sock_family = socket.AF_INET6
            self.bcast = False
        else:
            self.sock_family = socket.AF_INET
            self.bcast = ("255" in ip.split(".")) if bcast is None else bool(bcast)

    def _get_logger(self) -> logging.Logger:
        return logging.getLogger("REGCLNT/UDP")

    def _socket(self) -> socket.socket:
        sock = socket.socket(self.sock_family, socket.SOCK_DGRAM)
        if self.bcast:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        return sock

    def _ask(self, payload: bytes, bufsize: int, default: Any) -> Any:
        with closing(self._socket()) as sock:
            sock.settimeout(self.timeout)
            try:
                sock.sendto(payload, (self.ip, self.port))
                data, _ = sock.recvfrom(bufsize)
            except OSError:
                return default
        return self._decode(data, default)

    def discover(self, name: str) -> Tuple[Address, ...]:
        return self._ask(self._request("QUERY", (name,)), MAX_DGRAM_SIZE, ())

    def list(self, filter_host: Optional[str] = None) -> Any:
        return self._ask(self._request("LIST", ((filter_host,),)), MAX_DGRAM_SIZE * 10, ())

    def register(self, aliases: Any, port: int, interface: str = "") -> bool:
        self.logger.info("registering on %s:%s", self.ip, self.port)
        payload = self._request("REGISTER", (tuple(aliases), port))
        with closing(self._socket()) as sock:
            sock.bind((interface, 0))
            try:
                sock.sendto(payload, (self.ip, self.port))
            except OSError as exc:
                self.logger.warning("could not send to the registry: %s", exc)
                return False
            deadline = time.monotonic() + self.timeout
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                sock.settimeout(left)
                try:
                    data, address = sock.recvfrom(MAX_DGRAM_SIZE)
                except OSError:
                    break
                if address[1] != self.port:
                    continue  # not from a registry
                if self._decode(data, None) == "OK":
                    self.logger.info("registry %s:%s acknowledged", address[0], address[1])
                    return True
        self.logger.warning("no registry acknowledged")
        return False

    def unregister(self, port: int) -> None:
        self.logger.info("unregistering from %s:%s", self.ip, self.port)
        with closing(self._socket()) as sock:
            try:
                sock.sendto(self._request("UNREGISTER", (port,)), (self.ip, self.port))
            except OSError as exc:
                self.logger.warning("could not send to the registry: %s", exc)


class TCPRegistryClient(RegistryClient):
    """Registry client over TCP, one connection per request, to the registry at ``ip``."""

    def __init__(self, ip: str, port: int = REGISTRY_PORT, timeout: float = 2,
                 logger: Optional[logging.Logger] = None) -> None:
        super().__init__(ip=ip, port=port, timeout=timeout, logger=logger)

    def _get_logger(self) -> logging.Logger:
        return logging.getLogger("REGCLNT/TCP")

    def _connect(self, interface: str = "") -> socket.socket:
        source = (interface, 0) if interface else None
        return socket.create_connection((self.ip, self.port), timeout=self.timeout, source_address=source)

    def _ask(self, payload: bytes, default: Any, interface: str = "") -> Any:
        try:
            sock = self._connect(interface)
        except OSError as exc:
            self.logger.warning("could not connect to the registry at %s:%s: %s", self.ip, self.port, exc)
            return default
        chunks = []
        with closing(sock):
            try:
                sock.sendall(payload)
                # The registry closes the connection after its answer: read up to that.
                received = 0
                while received < MAX_DGRAM_SIZE * 10:
                    chunk = sock.recv(MAX_DGRAM_SIZE * 10 - received)
                    if not chunk:
                        break
                    chunks.append(chunk)
                    received += len(chunk)
            except OSError:
                if not chunks:
                    return default
        return self._decode(b"".join(chunks), default)

    def discover(self, name: str) -> Tuple[Address, ...]:
        return self._ask(self._request("QUERY", (name,)), ())

    def list(self, filter_host: Optional[str] = None) -> Any:
        return self._ask(self._request("LIST", ((filter_host,),)), ())

    def register(self, aliases: Any, port: int, interface: str = "") -> bool:
        self.logger.info("registering on %s:%s", self.ip, self.port)
        reply = self._ask(self._request("REGISTER", (tuple(aliases), port)), None, interface)
        if reply == "OK":
            self.logger.info("registry %s:%s acknowledged", self.ip, self.port)
            return True
        self.logger.warning("registry %s:%s did not acknowledge", self.ip, self.port)
        return False

    def unregister(self, port: int) -> None:
        self.logger.info("unregistering from %s:%s", self.ip, self.port)
        try:
            sock = self._connect()
        except OSError as exc:
            self.logger.warning("could not connect to the registry at %s:%s: %s", self.ip, self.port, exc)
            return
        with closing(sock):
            try:
                sock.sendall(self._request("UNREGISTER", (port,)))
            except OSError:
                pass


# Registrars on other engines, in their own modules, loaded on first use (``import rpyc``
# need not load http.client, ssl and json for them).
_LAZY = {
    "EtcdRegistryClient": "rpyc.utils.discovery_etcd",
    "DNSSRVRegistryClient": "rpyc.utils.discovery_dns",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
