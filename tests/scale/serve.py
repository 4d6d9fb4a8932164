"""A ThreadedServer for the scaling tests, run as a subprocess: prints ``PORT <n>`` once it
listens, drains on SIGTERM (``--drain``), registers in etcd (``--etcd URL``); a
PreforkServer with ``--workers N``, a ForkingServer with ``--forking``."""

import argparse
import os
import sys
import threading
import time

import rpyc
from rpyc.utils.registry import EtcdRegistryClient
from rpyc.utils.prefork import PreforkServer
from rpyc.utils.server import ForkingServer, ThreadedServer, ThreadPoolServer


class ScaleService(rpyc.Service):
    ALIASES = ["SCALETEST"]

    def exposed_whoami(self):
        return os.getpid()

    def exposed_sleep(self, seconds):
        time.sleep(seconds)
        return "slept"

    def exposed_spin(self, seconds):
        """Pure-Python work (holds the GIL) for ``seconds``; the worker's pid."""
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            pass
        return os.getpid()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--etcd")
    parser.add_argument("--ttl", type=float, default=2)
    parser.add_argument("--drain", type=float, default=0)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--forking", action="store_true")
    parser.add_argument("--max-restart-delay", type=float, default=5.0)
    parser.add_argument("--pool", action="store_true", help="prefork workers are ThreadPoolServers")
    parser.add_argument("--unix", help="a prefork server on this unix socket path")
    args = parser.parse_args()
    registrar = EtcdRegistryClient(args.etcd, ttl=args.ttl) if args.etcd else None
    kwargs = dict(hostname="127.0.0.1", port=0, registrar=registrar, auto_register=registrar is not None)
    if args.workers:
        if args.unix:
            kwargs = dict(socket_path=args.unix)
        server = PreforkServer(ScaleService, workers=args.workers, max_restart_delay=args.max_restart_delay,
                               server_class=ThreadPoolServer if args.pool else ThreadedServer, **kwargs)
    else:
        server = (ForkingServer if args.forking else ThreadedServer)(ScaleService, **kwargs)
    if args.drain:
        server.handle_sigterm(drain=args.drain)
    if not args.workers:
        server._listen()
    print("PORT", server.port, flush=True)
    server.start()
    print("STOPPED", flush=True)


if __name__ == "__main__":
    sys.exit(main())
