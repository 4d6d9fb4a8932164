"""``rpyc_registry``: run a registry server, where RPyC servers announce themselves and
clients discover them (see :mod:`rpyc.utils.registry`).

Usage::

    rpyc_registry                       # UDP on 127.0.0.1, port 18811: this machine only
    rpyc_registry -m TCP -p 18811 -l    # TCP, with service listing enabled
    rpyc_registry --host 0.0.0.0        # every interface: other machines and broadcasts
    rpyc_registry --version

Like every server of this package, the registry listens on the loopback interface unless
``--host`` says otherwise (upstream's listens on every interface). On loopback it cannot
receive UDP broadcasts, so clients must name it (``--registry-host 127.0.0.1``,
``UDPRegistryClient(ip="127.0.0.1")``); ``--host 0.0.0.0`` opens it to the network, where the
broadcast discovery of upstream's default works. The registry does not authenticate anyone:
open it on trusted networks only.

The options are upstream RPyC's (``rpyc_registry.py``), plus ``--host``; this implementation
uses ``argparse`` and does not need plumbum. ``-q`` and ``-l`` are flags here; upstream's
spellings with a value (``-l true``, ``--listing=false``) are accepted too.
"""

import argparse
import ipaddress
import sys
from typing import Any, List, Optional, Sequence

from rpyc.lib import setup_logger
from rpyc.utils.registry import DEFAULT_PRUNING_TIMEOUT, REGISTRY_PORT, TCPRegistryServer, UDPRegistryServer
from rpyc.version import __version__

__all__ = ["RegistryServer", "main"]

_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f", ""}


def _flag_value(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean (true/false), got {text!r}")


# Upstream's -q/--quiet and -l/--listing take a value (plumbum switches); here they are flags
# whose value, when given, is read by _normalize_flags.
_VALUED_FLAGS = {"-q": "--quiet", "--quiet": "--quiet", "-l": "--listing", "--listing": "--listing"}


def _normalize_flags(parser: argparse.ArgumentParser, argv: Sequence[str]) -> List[str]:
    """``argv`` with ``-l true`` / ``--listing=false`` (upstream's spellings) rewritten to the
    bare flag or nothing. The parser has no positional arguments, so a word after one of these
    flags that is not an option can only be its value."""
    out: List[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            out.extend(argv[i - 1:])
            break
        name, eq, text = arg.partition("=")
        if name not in _VALUED_FLAGS:
            out.append(arg)
            continue
        value: Optional[str] = text if eq else None
        if value is None and i < len(argv) and not argv[i].startswith("-"):
            value = argv[i]
            i += 1
        if value is not None:
            try:
                enabled = _flag_value(value)
            except argparse.ArgumentTypeError as exc:
                parser.error(f"argument {name}: {exc}")
        else:
            enabled = True
        if enabled:
            out.append(_VALUED_FLAGS[name])
    return out


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range 0..65535: {value}")
    return value


def _mode(text: str) -> str:
    upper = text.upper()
    if upper not in ("UDP", "TCP"):
        raise argparse.ArgumentTypeError(f"invalid mode {text!r} (choose from UDP, TCP)")
    return upper


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rpyc_registry", description="RPyC registry server.",
        epilog="The registry listens on 127.0.0.1 (::1 with --ipv6) unless --host says otherwise: "
               "--host 0.0.0.0 lets other machines, and UDP broadcasts, reach it. "
               "-q and -l also accept upstream's value spellings (-l true, --listing=false).",
    )
    parser.add_argument("-v", "--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-m", "--mode", type=_mode, default="UDP", metavar="{UDP,TCP}",
                        help="serving mode: UDP (default) or TCP")
    parser.add_argument("-6", "--ipv6", action="store_true", help="use IPv6 instead of IPv4")
    parser.add_argument("-p", "--port", type=_port, default=REGISTRY_PORT,
                        help=f"UDP/TCP port to listen on (default {REGISTRY_PORT})")
    parser.add_argument("--host", default=None,
                        help="address to bind (default 127.0.0.1, or ::1 with --ipv6: this machine "
                             "only); --host 0.0.0.0 (:: with --ipv6) opens it to the network")
    parser.add_argument("--logfile", metavar="FILE", default=None, help="log to this file instead of stderr")
    parser.add_argument("-q", "--quiet", action="store_true", help="only log errors")
    parser.add_argument("-t", "--timeout", dest="pruning_timeout", metavar="SECONDS", type=int,
                        default=DEFAULT_PRUNING_TIMEOUT,
                        help=f"seconds after which a server that did not re-register is dropped "
                             f"(default {DEFAULT_PRUNING_TIMEOUT})")
    parser.add_argument("-l", "--listing", dest="allow_listing", action="store_true",
                        help="allow clients to list the registered services")
    return parser


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The options in ``argv`` (default ``sys.argv[1:]``)."""
    parser = build_parser()
    return parser.parse_args(_normalize_flags(parser, sys.argv[1:] if argv is None else argv))


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return host == "localhost"


class RegistryServer:
    """The ``rpyc_registry`` program."""

    def __init__(self, argv: Optional[Sequence[str]] = None) -> None:
        self.options = parse_args(argv)

    def _host(self) -> str:
        opts = self.options
        return str(opts.host or ("::1" if opts.ipv6 else "127.0.0.1"))

    def make_server(self) -> Any:
        """The registry server the options describe (bound, not started)."""
        opts = self.options
        host = self._host()
        if opts.mode == "UDP":
            return UDPRegistryServer(host=host, port=opts.port, pruning_timeout=opts.pruning_timeout,
                                     allow_listing=opts.allow_listing)
        return TCPRegistryServer(host=host, port=opts.port, pruning_timeout=opts.pruning_timeout,
                                 allow_listing=opts.allow_listing)

    def main(self) -> int:
        server = self.make_server()
        setup_logger(self.options.quiet, self.options.logfile)
        host = self._host()
        if _is_loopback(host):
            server.logger.warning(
                "listening on %s only: other machines, and UDP broadcasts (the default of "
                "UDPRegistryClient and rpyc_classic --register), cannot reach this registry; "
                "--host 0.0.0.0 opens it to the network", host)
        server.start()
        return 0

    @classmethod
    def run(cls, argv: Optional[List[str]] = None) -> None:
        sys.exit(cls(argv).main())


def main(argv: Optional[List[str]] = None) -> None:
    """Console-script entry point."""
    RegistryServer.run(argv)


if __name__ == "__main__":
    main()
