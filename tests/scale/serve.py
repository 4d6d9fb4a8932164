"""A ThreadedServer for the scaling tests, run as a subprocess: prints ``PORT <n>`` once it
listens, drains on SIGTERM (``--drain``), registers in etcd (``--etcd URL``)."""

import argparse
import os
import sys
import threading
import time

import rpyc
from rpyc.utils.registry import EtcdRegistryClient
from rpyc.utils.server import ThreadedServer


class ScaleService(rpyc.Service):
    ALIASES = ["SCALETEST"]

    def exposed_whoami(self):
        return os.getpid()

    def exposed_sleep(self, seconds):
        time.sleep(seconds)
        return "slept"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--etcd")
    parser.add_argument("--ttl", type=float, default=2)
    parser.add_argument("--drain", type=float, default=0)
    args = parser.parse_args()
    registrar = EtcdRegistryClient(args.etcd, ttl=args.ttl) if args.etcd else None
    server = ThreadedServer(ScaleService, hostname="127.0.0.1", port=0, registrar=registrar,
                            auto_register=registrar is not None)
    if args.drain:
        server.handle_sigterm(drain=args.drain)
    server._listen()
    print("PORT", server.port, flush=True)
    server.start()
    print("STOPPED", flush=True)


if __name__ == "__main__":
    sys.exit(main())
