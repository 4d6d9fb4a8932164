"""``rpyc_classic``: serve the classic service (full remote control of this Python process).

Usage::

    rpyc_classic                          # threaded server on 127.0.0.1:18812
    rpyc_classic -m forking -p 12345      # one process per connection, port 12345
    rpyc_classic -m oneshot -p 0          # serve one connection on a free port; prints
                                          #   "rpyc-oneshot" then "<host>\\t<port>"
    rpyc_classic -m stdio                 # one connection over stdin/stdout (inetd, ssh,
                                          #   rpyc.classic.connect_subproc)
    rpyc_classic --ssl-keyfile key.pem --ssl-certfile cert.pem [--ssl-cafile ca.pem]
    rpyc_classic --version

Anyone who can connect to a classic server can run any code as the user running it. The
server therefore listens on the loopback interface unless ``--host`` says otherwise, and
warns when it is reachable from other machines; protect such a server with TLS client
certificates (``--ssl-cafile``) or keep it behind an SSH tunnel.

The options are upstream RPyC's (``rpyc_classic.py``); this implementation uses ``argparse``
and does not need plumbum.
"""

import argparse
import ipaddress
import os
import socket
import sys
from typing import Any, List, Optional, Sequence

import rpyc  # noqa: F401  (upstream's module-level names, below, are kept)
from rpyc.core import SlaveService
from rpyc.lib import setup_logger
from rpyc.utils.authenticators import SSLAuthenticator
from rpyc.utils.classic import DEFAULT_SERVER_PORT, DEFAULT_SERVER_SSL_PORT
from rpyc.utils.registry import REGISTRY_PORT, TCPRegistryClient, UDPRegistryClient
from rpyc.utils.server import ForkingServer, OneShotServer, ThreadedServer
from rpyc.version import __version__

__all__ = ["ClassicServer", "main"]

_MODES = ("threaded", "forking", "stdio", "oneshot")


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range 0..65535: {value}")
    return value


def _existing_file(text: str) -> str:
    if not os.path.isfile(text):
        raise argparse.ArgumentTypeError(f"no such file: {text!r}")
    return text


def _choice(*choices: str) -> Any:
    """Case-insensitive choice (as plumbum's ``cli.Set``); returns the canonical spelling."""
    canonical = {c.lower(): c for c in choices}

    def convert(text: str) -> str:
        try:
            return canonical[text.lower()]
        except KeyError:
            raise argparse.ArgumentTypeError(
                f"invalid choice {text!r} (choose from {', '.join(choices)})") from None

    return convert


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rpyc_classic",
        description="Classic RPyC server: gives connecting clients full control of this Python process.",
    )
    parser.add_argument("-v", "--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-m", "--mode", type=_choice(*_MODES), default="threaded",
                        metavar="{" + ",".join(_MODES) + "}",
                        help="serving mode: threaded, forking, oneshot (one connection), or stdio "
                             "(one connection over stdin/stdout, for inetd or ssh); default threaded")
    sock = parser.add_argument_group("socket options")
    sock.add_argument("-p", "--port", type=_port, default=None,
                      help=f"TCP port to listen on (default {DEFAULT_SERVER_PORT}, "
                           f"{DEFAULT_SERVER_SSL_PORT} with SSL; 0 picks a free port)")
    sock.add_argument("--host", default="",
                      help="address to bind; the default is the loopback interface (127.0.0.1, or ::1 "
                           "with --ipv6). Binding anything else lets other machines run code here.")
    sock.add_argument("--ipv6", action="store_true", help="listen on IPv6")
    logging_ = parser.add_argument_group("logging")
    logging_.add_argument("--logfile", metavar="FILE", default=None, help="log to this file instead of stderr")
    logging_.add_argument("-q", "--quiet", action="store_true", help="only log errors")
    ssl_ = parser.add_argument_group("SSL")
    ssl_.add_argument("--ssl-keyfile", metavar="FILE", type=_existing_file, default=None,
                      help="private key of the server certificate (enables TLS; needs --ssl-certfile)")
    ssl_.add_argument("--ssl-certfile", metavar="FILE", type=_existing_file, default=None,
                      help="server certificate (needs --ssl-keyfile)")
    ssl_.add_argument("--ssl-cafile", metavar="FILE", type=_existing_file, default=None,
                      help="CA bundle; when given, clients must present a certificate it signed")
    metrics = parser.add_argument_group("metrics")
    metrics.add_argument("--prometheus-port", metavar="PORT", type=_port, default=None,
                         help="serve the server's statistics to Prometheus at http://HOST:PORT/metrics "
                              "(needs pip install 'rpyc[metrics]'; not with the stdio or forking modes)")
    metrics.add_argument("--prometheus-host", metavar="HOST", default="127.0.0.1",
                         help="address of the Prometheus endpoint (default 127.0.0.1, loopback only)")
    registry = parser.add_argument_group("registry")
    registry.add_argument("--register", dest="auto_register", action="store_true",
                          help="register with a registry server (off by default)")
    registry.add_argument("--registry-type", type=_choice("UDP", "TCP"), default="UDP", metavar="{UDP,TCP}",
                          help="registry transport, UDP (default) or TCP")
    registry.add_argument("--registry-port", metavar="PORT", type=_port, default=REGISTRY_PORT,
                          help=f"registry port (default {REGISTRY_PORT})")
    registry.add_argument("--registry-host", metavar="HOST", default=None,
                          help="registry host; for UDP the default is the broadcast address "
                               "255.255.255.255, for TCP it is required")
    return parser


def _is_loopback_only(host: str, ipv6: bool) -> bool:
    """True when every address ``host`` resolves to is a loopback address."""
    family = socket.AF_INET6 if ipv6 else socket.AF_INET
    try:
        infos = socket.getaddrinfo(host, None, family, socket.SOCK_STREAM)
    except OSError:
        return False
    addresses = {str(info[4][0]) for info in infos}
    try:
        return bool(addresses) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses)
    except ValueError:
        return False


class ClassicServer:
    """The ``rpyc_classic`` program: parse the options, then serve until interrupted."""

    def __init__(self, argv: Optional[Sequence[str]] = None) -> None:
        self.parser = build_parser()
        self.options = self.parser.parse_args(argv)
        opts = self.options
        if bool(opts.ssl_keyfile) != bool(opts.ssl_certfile):
            self.parser.error("--ssl-keyfile and --ssl-certfile go together")
        if opts.ssl_cafile and not opts.ssl_keyfile:
            self.parser.error("--ssl-cafile needs --ssl-keyfile and --ssl-certfile")
        if opts.auto_register and opts.registry_type == "TCP" and not opts.registry_host:
            self.parser.error("with a TCP registry, --registry-host is required")
        if opts.prometheus_port is not None and opts.mode in ("stdio", "forking"):
            # stdio has no server; a forking server's connections live in its children.
            self.parser.error(f"--prometheus-port does not work with --mode {opts.mode}")

    # -- pieces -------------------------------------------------------------------------------

    def _host(self) -> str:
        opts = self.options
        return opts.host or ("::1" if opts.ipv6 else "127.0.0.1")

    def _port(self) -> int:
        if self.options.port is not None:
            return int(self.options.port)
        return DEFAULT_SERVER_SSL_PORT if self.options.ssl_keyfile else DEFAULT_SERVER_PORT

    def _authenticator(self) -> Any:
        opts = self.options
        if not opts.ssl_keyfile:
            return None
        return SSLAuthenticator(opts.ssl_keyfile, opts.ssl_certfile, opts.ssl_cafile)

    def _registrar(self) -> Any:
        opts = self.options
        if not opts.auto_register:
            return None
        if opts.registry_type == "TCP":
            return TCPRegistryClient(ip=opts.registry_host, port=opts.registry_port)
        return UDPRegistryClient(ip=opts.registry_host or "255.255.255.255", port=opts.registry_port)

    def _warn_if_exposed(self, host: str) -> None:
        if _is_loopback_only(host, self.options.ipv6):
            return
        protection = ("clients must present a certificate signed by --ssl-cafile"
                      if self.options.ssl_cafile else
                      "there is NO client authentication (consider --ssl-cafile or an SSH tunnel)")
        sys.stderr.write(
            f"rpyc_classic: WARNING: the classic service is reachable on {host}, not only from this "
            f"machine; whoever connects can run any code as this user; {protection}.\n"
        )
        sys.stderr.flush()

    def _server(self, server_class: type) -> Any:
        host = self._host()
        self._warn_if_exposed(host)
        server = server_class(
            SlaveService, hostname=host, port=self._port(), reuse_addr=True,
            ipv6=self.options.ipv6, authenticator=self._authenticator(),
            registrar=self._registrar(), auto_register=self.options.auto_register,
        )
        self._serve_metrics(server)
        return server

    def _serve_metrics(self, server: Any) -> None:
        opts = self.options
        if opts.prometheus_port is None:
            return
        from rpyc.utils.metrics import serve_prometheus

        try:
            endpoint = serve_prometheus(server, opts.prometheus_port, opts.prometheus_host)
        except ImportError as exc:
            self.parser.exit(2, f"rpyc_classic: --prometheus-port: {exc}\n")
        server.logger.info("Prometheus metrics at http://%s:%d/metrics", endpoint.host, endpoint.port)

    # -- modes --------------------------------------------------------------------------------

    def main(self) -> int:
        setup_logger(self.options.quiet, self.options.logfile)
        mode = self.options.mode
        if mode == "stdio":
            return self._serve_stdio()
        if mode == "oneshot":
            return self._serve_oneshot(OneShotServer)
        server = self._server(ForkingServer if mode == "forking" else ThreadedServer)
        server.start()
        return 0

    def _serve_oneshot(self, server_class: type) -> int:
        server = self._server(server_class)
        server._listen()
        # Machine-readable announcement (parsed by tools and tests): marker, then host TAB port.
        sys.stdout.write("rpyc-oneshot\n")
        sys.stdout.write(f"{server.host}\t{server.port}\n")
        sys.stdout.flush()
        server.start()
        return 0

    def _serve_stdio(self) -> int:
        from rpyc.utils.classic import connect_pipes

        stdin, stdout = sys.stdin, sys.stdout
        # Nothing else may write to the protocol stream: stray prints go to the void.
        sys.stdin = open(os.devnull, "r")
        sys.stdout = open(os.devnull, "w")
        sys.stderr = open(os.devnull, "w")
        conn = connect_pipes(stdin, stdout)
        try:
            conn.serve_all()
        except KeyboardInterrupt:
            pass
        finally:
            conn.close()
        return 0

    @classmethod
    def run(cls, argv: Optional[List[str]] = None) -> None:
        """Parse ``argv`` (default ``sys.argv[1:]``), serve, and exit."""
        sys.exit(cls(argv).main())


def main(argv: Optional[List[str]] = None) -> None:
    """Console-script entry point."""
    ClassicServer.run(argv)


if __name__ == "__main__":
    main()
