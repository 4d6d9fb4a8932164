"""Connection factories: every way to obtain a ``Connection`` (upstream's
``rpyc.utils.factory``)."""

import os
import random
import socket
import subprocess
import sys
import threading
from typing import Any, Dict, Optional, Sequence

from rpyc.core import extensions
from rpyc.core.channel import Channel
from rpyc.core.protocol import Connection
from rpyc.core.service import MasterService, SlaveService, VoidService  # noqa: F401 (upstream's names)
from rpyc.core.stream import PipeStream, SocketStream, TunneledSocketStream
from rpyc.lib import safe_import, spawn  # noqa: F401
from rpyc.utils.registry import UDPRegistryClient  # noqa: F401 (also loads the registry, as upstream)

__all__ = [
    "connect_channel", "connect_stream", "connect_pipes", "connect_stdpipes", "connect",
    "unix_connect", "ssl_connect", "ssh_connect", "connect_subproc", "connect_thread",
    "connect_multiprocess", "connect_by_service", "discover", "list_services",
    "DiscoveryError", "ForbiddenError",
]


class DiscoveryError(Exception):
    """No server for the requested service was found in the registry."""


class ForbiddenError(Exception):
    """The registry refuses to list its services."""


def connect_channel(channel: Channel, service: Any = VoidService, config: Dict[str, Any] = {}) -> Connection:
    """A connection over an existing ``Channel``. Unless ``rpyc_rs_extensions`` is off in
    ``config``, it offers the peer rpyc-rs's protocol extensions (an rpyc-rs peer accepts,
    an upstream peer never notices; see :mod:`rpyc.core.extensions`)."""
    try:
        conn = service._connect(channel, config)
    except BaseException:
        # (a bad config value, a failing on_connect: the socket is not left to the GC)
        channel.close()
        raise
    if conn._config["rpyc_rs_extensions"]:
        extensions.send_hello(conn)
    return conn


def connect_stream(stream: Any, service: Any = VoidService, config: Dict[str, Any] = {},
                   authenticator: Any = None) -> Connection:
    """A connection over an existing ``Stream``. With ``authenticator`` (a socket stream
    only), ``authenticator(stream.sock) -> (sock, credentials)`` runs first, as a server's
    does; see :mod:`rpyc.utils.authenticators`."""
    if authenticator is not None:
        config = _client_authenticate(stream, authenticator, config)
    return connect_channel(Channel(stream), service=service, config=config)


def _client_authenticate(stream: Any, authenticator: Any, config: Dict[str, Any]) -> Dict[str, Any]:
    """Run a client-side authenticator on the stream's socket (closing the stream if it
    fails); returns the config with the credentials it produced."""
    sock = getattr(stream, "sock", None)
    if sock is None:
        stream.close()
        raise TypeError(f"an authenticator needs a socket stream, not {type(stream).__name__}")
    try:
        new_sock, credentials = authenticator(sock)
    except BaseException:
        stream.close()
        raise
    stream.sock = new_sock
    return dict(config, credentials=credentials)


def connect_pipes(input: Any, output: Any, service: Any = VoidService, config: Dict[str, Any] = {}) -> Connection:
    """A connection over two file objects (read end, write end)."""
    return connect_stream(PipeStream(input, output), service=service, config=config)


def connect_stdpipes(service: Any = VoidService, config: Dict[str, Any] = {}) -> Connection:
    """A connection over this process's stdin/stdout (which are replaced by devnull so that
    stray prints cannot corrupt the stream)."""
    stream = PipeStream.from_std()
    sys.stdin = open(os.devnull, "r")
    sys.stdout = open(os.devnull, "w")
    return connect_stream(stream, service=service, config=config)


def connect(host: str, port: int, service: Any = VoidService, config: Dict[str, Any] = {},
            ipv6: bool = False, keepalive: bool = False, authenticator: Any = None) -> Connection:
    """A TCP connection to ``host:port`` (``authenticator``: see :func:`connect_stream`)."""
    stream = SocketStream.connect(host, port, ipv6=ipv6, keepalive=keepalive)
    return connect_stream(stream, service, config, authenticator=authenticator)


def unix_connect(path: str, service: Any = VoidService, config: Dict[str, Any] = {},
                 authenticator: Any = None) -> Connection:
    """A connection over the unix-domain socket at ``path`` (``authenticator``: see
    :func:`connect_stream`)."""
    return connect_stream(SocketStream.unix_connect(path), service, config, authenticator=authenticator)


def ssl_connect(host: str, port: int, keyfile: Optional[str] = None, certfile: Optional[str] = None,
                ca_certs: Optional[str] = None, cert_reqs: Any = None, ssl_version: Any = None,
                ciphers: Optional[str] = None, service: Any = VoidService,
                config: Dict[str, Any] = {}, ipv6: bool = False, keepalive: bool = False,
                verify_mode: Any = None, check_hostname: Optional[bool] = None) -> Connection:
    """A TLS connection (rustls; TLS 1.2 or 1.3).

    ``keyfile``/``certfile`` are the client certificate (optional). With ``ca_certs`` the
    server's certificate chain and host name are verified (``check_hostname=False`` keeps
    only the chain check, as upstream does); without it nothing is verified and a
    :class:`rpyc.SecurityWarning` says so. ``cert_reqs`` (or ``verify_mode``) overrides the
    verification mode; ``ssl_version`` may narrow the versions to TLS 1.2; ``ciphers`` is an
    OpenSSL cipher string selecting TLS 1.2 suites. TLS failures raise ``ssl.SSLError``
    (``ssl.SSLCertVerificationError`` for certificate problems) naming the cause.
    """
    options = {
        "keyfile": keyfile,
        "certfile": certfile,
        "ca_certs": ca_certs,
        "cert_reqs": cert_reqs if cert_reqs is not None else verify_mode,
        "ssl_version": ssl_version,
        "ciphers": ciphers,
        "check_hostname": check_hostname,
    }
    ssl_kwargs = {key: value for key, value in options.items() if value is not None}
    stream = SocketStream.ssl_connect(host, port, ssl_kwargs, ipv6=ipv6, keepalive=keepalive)
    return connect_stream(stream, service, config)


def connect_subproc(args: Sequence[str], service: Any = VoidService, config: Dict[str, Any] = {}) -> Connection:
    """Start ``args`` as a subprocess and talk to it over its stdin/stdout; the ``Popen`` is
    ``conn.proc``."""
    proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    conn = connect_pipes(proc.stdout, proc.stdin, service=service, config=config)
    conn.proc = proc
    return conn


_ssh_tunnel_lock = threading.Lock()


def ssh_connect(remote_machine: Any, remote_port: int, service: Any = VoidService,
                config: Dict[str, Any] = {}, authenticator: Any = None) -> Connection:
    """A connection to ``remote_port`` on the host behind ``remote_machine`` (a plumbum
    ``SshMachine``), through an SSH tunnel from a free local port. The tunnel is closed with
    the connection's stream.

    The local port is picked before the tunnel binds it, so another process could take it in
    between; the lock only keeps two tunnels of this process from racing for it.
    """
    with _ssh_tunnel_lock:
        local_port = _get_free_port()
        tunnel = remote_machine.tunnel(local_port, remote_port)
        try:
            stream = TunneledSocketStream.connect("localhost", local_port)
        except BaseException:
            tunnel.close()
            raise
        stream.tun = tunnel  # type: ignore[attr-defined]
    return connect_stream(stream, service, config, authenticator=authenticator)


def _get_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _server(listener: socket.socket, remote_service: Any, remote_config: Dict[str, Any],
            args: Optional[Dict[str, Any]] = None) -> None:
    """Serve exactly one connection accepted on ``listener`` (thread/process target)."""
    with listener:
        client = listener.accept()[0]
    conn = connect_stream(SocketStream(client), service=remote_service, config=remote_config)
    if isinstance(args, dict):
        namespace = getattr(conn._local_root, "namespace", None)
        if isinstance(namespace, dict):
            namespace.update(args)
    conn.serve_all()


def _loopback_listener() -> socket.socket:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    return listener


def connect_thread(service: Any = VoidService, config: Dict[str, Any] = {},
                   remote_service: Any = VoidService, remote_config: Dict[str, Any] = {}) -> Connection:
    """Start a server for one connection in a thread of this process and connect to it."""
    listener = _loopback_listener()
    port = listener.getsockname()[1]
    spawn(_server, listener, remote_service, remote_config)
    return connect("127.0.0.1", port, service=service, config=config)


def connect_multiprocess(service: Any = VoidService, config: Dict[str, Any] = {},
                         remote_service: Any = VoidService, remote_config: Dict[str, Any] = {},
                         args: Dict[str, Any] = {}) -> Connection:
    """Like :func:`connect_thread` but the server runs in a ``multiprocessing.Process``;
    ``args`` is merged into the remote service's namespace."""
    from multiprocessing import Process

    listener = _loopback_listener()
    port = listener.getsockname()[1]
    proc = Process(target=_server, args=(listener, remote_service, remote_config, args))
    proc.start()
    listener.close()
    conn = connect("127.0.0.1", port, service=service, config=config)
    conn.proc = proc
    return conn


def discover(service_name: str, host: Optional[str] = None, registrar: Any = None, timeout: float = 2) -> Any:
    """Addresses ``(host, port)`` of servers offering ``service_name`` per the registry."""
    if registrar is None:
        from rpyc.utils.registry import UDPRegistryClient

        registrar = UDPRegistryClient(timeout=timeout)
    addrs = registrar.discover(service_name)
    if not addrs:
        raise DiscoveryError(f"no servers exposing {service_name!r} were found")
    if host:
        ips = {ai[4][0] for ai in socket.getaddrinfo(host, None)}
        addrs = [(h, p) for h, p in addrs if h in ips]
        if not addrs:
            raise DiscoveryError(f"no servers exposing {service_name!r} were found on {host}")
    return addrs


def list_services(registrar: Any = None, filter_host: Optional[str] = None, timeout: float = 2) -> Any:
    """Names of the services the registry knows."""
    if registrar is None:
        from rpyc.utils.registry import UDPRegistryClient

        registrar = UDPRegistryClient(timeout=timeout)
    services = registrar.list(filter_host)
    if services is None:
        raise ForbiddenError("the registry refuses to list its services")
    return services


def connect_by_service(service_name: str, host: Optional[str] = None, registrar: Any = None,
                       timeout: float = 2, service: Any = VoidService,
                       config: Dict[str, Any] = {}, authenticator: Any = None,
                       connect_timeout: float = 1.0) -> Connection:
    """Connect to one of the servers offering ``service_name``, spreading new connections
    across them (docs/scaling.md#balancing).

    The discovered servers are tried in random order (each server equally likely to be
    first), or in the registrar's own order when it has one (``registrar.ordered``, as DNS
    SRV's priorities and weights). A server that refuses, or does not accept within
    ``connect_timeout`` seconds, is skipped for the next one; :class:`DiscoveryError` when
    none accepts. Connections, not calls, are balanced: every call of a connection goes to
    the server it connected to.
    """
    addrs = list(discover(service_name, host, registrar, timeout))
    if not getattr(registrar, "ordered", False):
        random.shuffle(addrs)
    failures = []
    for h, p in addrs:
        try:
            family = socket.AF_INET6 if ":" in str(h) else socket.AF_INET
            stream = SocketStream.connect(h, p, family=family, timeout=connect_timeout, attempts=1)
        except OSError as exc:
            failures.append(f"{h}:{p}: {exc}")
            continue
        return connect_stream(stream, service, config, authenticator=authenticator)
    raise DiscoveryError(f"all {len(addrs)} servers exposing {service_name!r} refused connections "
                         f"(or did not accept within {connect_timeout}s): {'; '.join(failures)}")
