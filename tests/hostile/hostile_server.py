"""The server under attack: our ThreadedServer (or, with ``--aio``, an ``rpyc.aio`` server:
one event loop for every connection) with a tiny service, on 127.0.0.1.

Run as ``python3 hostile_server.py [--aio] [--bind-threads] [--config JSON]`` (``--config`` adds
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

    def exposed_sleep(self, seconds):
        """Answer after ``seconds`` (a plain def: a thread of its own, or the executor)."""
        import time

        time.sleep(seconds)
        return seconds

    def exposed_stats(self):
        """What the process holds: open descriptors, threads, asyncio tasks, live objects."""
        import asyncio
        import gc

        try:
            tasks = len(asyncio.all_tasks(_LOOP)) if _LOOP is not None else 0
        except RuntimeError:
            tasks = 0
        gc.collect()
        return (len(os.listdir("/proc/self/fd")), threading.active_count(), tasks, len(gc.get_objects()))


_LOOP = None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bind-threads", action="store_true")
    parser.add_argument("--aio", action="store_true", help="serve with rpyc.aio (one event loop)")
    parser.add_argument("--max-lifetime", type=float, default=600.0)
    parser.add_argument("--config", default="{}", help="extra protocol config keys (JSON)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = {"bind_threads": bool(args.bind_threads), "sync_request_timeout": 10}
    config.update(json.loads(args.config))
    timer = threading.Timer(args.max_lifetime, lambda: os._exit(3))
    timer.daemon = True
    timer.start()
    if args.aio:
        serve_aio(config)
        return
    server = ThreadedServer(HostileTargetService, port=0, protocol_config=config)
    server._listen()
    print("IMPL rpyc %s from %s" % (rpyc.__version__, rpyc.__file__), flush=True)
    print("PORT %d" % server.port, flush=True)
    print("PID %d" % os.getpid(), flush=True)
    server.start()


def serve_aio(config):
    import asyncio

    import rpyc.aio

    async def main():
        global _LOOP
        _LOOP = asyncio.get_running_loop()
        server = await rpyc.aio.serve(HostileTargetService, port=0, protocol_config=config)
        print("IMPL rpyc.aio %s from %s" % (rpyc.__version__, rpyc.__file__), flush=True)
        print("PORT %d" % server.port, flush=True)
        print("PID %d" % os.getpid(), flush=True)
        await server.serve_forever()

    asyncio.run(main())


if __name__ == "__main__":
    main()
