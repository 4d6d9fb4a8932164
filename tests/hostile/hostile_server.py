"""The server under attack: our ThreadedServer with a tiny service, on 127.0.0.1.

Run as ``python3 hostile_server.py [--bind-threads] [--config JSON]`` (``--config`` adds
protocol config keys, e.g. limits). Prints ``PORT <n>`` on stdout once it
listens; logs (level INFO) go to stderr, which the tests capture into a file to check that a
clear error was logged. Exits by itself after ``--max-lifetime`` seconds (a safety net in case
the test process dies without killing it).
"""
import argparse
import json
import logging
import os
import sys
import threading

import rpyc
from rpyc.utils.server import ThreadedServer


class HostileTargetService(rpyc.Service):
    def on_connect(self, conn):
        self._conn = conn

    def exposed_add(self, x, y):
        return x + y

    def exposed_echo(self, value):
        return value

    def exposed_blob(self, size):
        """``size`` random (incompressible) bytes."""
        return os.urandom(size)

    def exposed_fail(self, size):
        """Raise an exception whose message is ``2 * size`` random hex digits (compressing
        it halves it, no more)."""
        raise ValueError(os.urandom(size).hex())

    def exposed_objects(self, count):
        """``count`` new objects, sent by reference."""
        return tuple(object() for _ in range(count))

    def exposed_table_size(self):
        """How many of our objects this connection's peer holds references to."""
        return len(self._conn._local_objects)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bind-threads", action="store_true")
    parser.add_argument("--max-lifetime", type=float, default=600.0)
    parser.add_argument("--config", default="{}", help="extra protocol config keys (JSON)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = {"bind_threads": bool(args.bind_threads), "sync_request_timeout": 10}
    config.update(json.loads(args.config))
    server = ThreadedServer(HostileTargetService, port=0, protocol_config=config)
    server._listen()
    print("IMPL rpyc %s from %s" % (rpyc.__version__, rpyc.__file__), flush=True)
    print("PORT %d" % server.port, flush=True)
    print("PID %d" % os.getpid(), flush=True)
    timer = threading.Timer(args.max_lifetime, lambda: os._exit(3))
    timer.daemon = True
    timer.start()
    server.start()


if __name__ == "__main__":
    main()
