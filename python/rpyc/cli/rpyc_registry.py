"""``rpyc_registry``: run a registry server, where RPyC servers announce themselves and
clients discover them (see :mod:`rpyc.utils.registry`).

Usage::

    rpyc_registry                       # UDP on every interface, port 18811
    rpyc_registry -m TCP -p 18811 -l    # TCP, with service listing enabled
    rpyc_registry --host 127.0.0.1      # only this machine can use it

The UDP registry listens on every interface by default, because it answers broadcasts from
the local network. The registry does not authenticate anyone: run it on trusted networks.

The options are upstream RPyC's (``rpyc_registry.py``), plus ``--host``; this implementation
uses ``argparse`` and does not need plumbum.
"""

import argparse
import sys
from typing import Any, List, Optional, Sequence

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
    from rpyc.utils.registry import DEFAULT_PRUNING_TIMEOUT, REGISTRY_PORT

    parser = argparse.ArgumentParser(prog="rpyc_registry", description="RPyC registry server.")
    parser.add_argument("-m", "--mode", type=_mode, default="UDP", help="serving mode: UDP (default) or TCP")
    parser.add_argument("-6", "--ipv6", action="store_true", help="use IPv6 instead of IPv4")
    parser.add_argument("-p", "--port", type=_port, default=REGISTRY_PORT,
                        help=f"UDP/TCP port to listen on (default {REGISTRY_PORT})")
    parser.add_argument("--host", default=None,
                        help="address to bind (default: every interface, 0.0.0.0 or :: with --ipv6)")
    parser.add_argument("--logfile", default=None, help="log to this file instead of stderr")
    # Upstream declares these two as options taking a value; a bare flag works here too.
    parser.add_argument("-q", "--quiet", type=_flag_value, nargs="?", const=True, default=False,
                        help="only log errors")
    parser.add_argument("-t", "--timeout", dest="pruning_timeout", type=int, default=DEFAULT_PRUNING_TIMEOUT,
                        help=f"seconds after which a server that did not re-register is dropped "
                             f"(default {DEFAULT_PRUNING_TIMEOUT})")
    parser.add_argument("-l", "--listing", dest="allow_listing", type=_flag_value, nargs="?", const=True,
                        default=False, help="allow clients to list the registered services")
    return parser


class RegistryServer:
    """The ``rpyc_registry`` program."""

    def __init__(self, argv: Optional[Sequence[str]] = None) -> None:
        self.options = build_parser().parse_args(argv)

    def make_server(self) -> Any:
        """The registry server the options describe (bound, not started)."""
        from rpyc.utils.registry import TCPRegistryServer, UDPRegistryServer

        opts = self.options
        host = opts.host or ("::" if opts.ipv6 else "0.0.0.0")
        if opts.mode == "UDP":
            return UDPRegistryServer(host=host, port=opts.port, pruning_timeout=opts.pruning_timeout,
                                     allow_listing=opts.allow_listing)
        return TCPRegistryServer(host=host, port=opts.port, pruning_timeout=opts.pruning_timeout,
                                 allow_listing=opts.allow_listing)

    def main(self) -> int:
        from rpyc.lib import setup_logger

        server = self.make_server()
        setup_logger(self.options.quiet, self.options.logfile)
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
