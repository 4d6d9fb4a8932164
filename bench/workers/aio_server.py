"""Server of the asyncio benchmarks (bench/aio.py); each kind runs under its own interpreter.

    python aio_server.py --kind aio          # rpyc.aio.serve(AioBenchService)          (our rpyc)
    python aio_server.py --kind threaded     # rpyc.ThreadedServer(SyncBenchService)    (our rpyc)
    python aio_server.py --kind grpc         # grpc.aio server, raw-bytes generic handler (grpcio venv)
    python aio_server.py --kind rpyc_async   # rpyc_async.AsyncioServer(AioBenchService)  (rpyc-async venv)
    python aio_server.py --kind floor        # raw asyncio echo of 16-byte messages     (any interpreter)

Binds 127.0.0.1 on an ephemeral port, prints exactly one line on stdout:

    READY <port> <pid>

then serves until killed, until stdin reaches EOF (the orchestrator died), or until
--max-seconds pass. The asyncio kinds watch stdin and the time on their loop, not on helper
threads: the thread count of an ``aio`` server process is rpyc.aio's own. Every ``add``
returns a + b; the client checks it.
"""
import argparse
import asyncio
import os
import socket
import struct
import sys

from common import HOST, RPYC_CONFIG, max_lifetime, raise_nofile_limit, watch_parent_stdin

# grpc's method /bench.Bench/Add: the request is two little-endian int64 (a, b), the answer
# one (a + b).
GRPC_SERVICE, GRPC_NAME = "bench.Bench", "Add"
GRPC_REQ = struct.Struct("<qq")
GRPC_RESP = struct.Struct("<q")


def _ready(port):
    sys.stdout.write(f"READY {port} {os.getpid()}\n")
    sys.stdout.flush()


def _loop_guards(max_seconds):
    """On the running loop, not on threads of their own (so an asyncio server's thread count is
    its library's): exit when stdin reaches EOF (the orchestrator died) or after max_seconds."""
    loop = asyncio.get_running_loop()
    fd = sys.stdin.fileno()

    def readable():
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            os._exit(0)

    try:
        loop.add_reader(fd, readable)  # (the orchestrator's pipe)
        os.set_blocking(fd, False)
    except (OSError, ValueError):
        pass  # stdin is a file or /dev/null (a manual run): nothing to watch

    def too_long():
        sys.stderr.write(f"server exceeded max lifetime of {max_seconds}s, exiting\n")
        sys.stderr.flush()
        os._exit(3)

    loop.call_later(max_seconds, too_long)


def _nodelay(sock):
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


# --------------------------------------------------------------------------- ours
def serve_aio(args):
    import rpyc
    import rpyc.aio

    class AioBenchService(rpyc.Service):
        async def exposed_add(self, a, b):
            return a + b

        @rpyc.aio.inline
        def exposed_add_inline(self, a, b):
            return a + b

        def exposed_add_thread(self, a, b):  # plain def: runs on the executor
            return a + b

    async def main():
        _loop_guards(args.max_seconds)
        server = await rpyc.aio.serve(AioBenchService, hostname=HOST, port=0,
                                      protocol_config=dict(RPYC_CONFIG))
        _ready(server.port)
        await server.serve_forever()

    asyncio.run(main())


def serve_threaded(args):
    import rpyc

    class SyncBenchService(rpyc.Service):
        def exposed_add(self, a, b):
            return a + b

    server = rpyc.ThreadedServer(SyncBenchService, hostname=HOST, port=0,
                                 protocol_config=dict(RPYC_CONFIG))
    _ready(server.port)
    server.start()


# --------------------------------------------------------------------------- grpc.aio
def serve_grpc(args):
    import grpc
    import grpc.aio

    async def add(request, context):
        a, b = GRPC_REQ.unpack(request)
        return GRPC_RESP.pack(a + b)

    async def main():
        _loop_guards(args.max_seconds)
        server = grpc.aio.server()
        # no protobuf: bytes in, bytes out (no (de)serializers = identity)
        handler = grpc.method_handlers_generic_handler(
            GRPC_SERVICE, {GRPC_NAME: grpc.unary_unary_rpc_method_handler(add)})
        server.add_generic_rpc_handlers((handler,))
        port = server.add_insecure_port(f"{HOST}:0")
        await server.start()
        _ready(port)
        await server.wait_for_termination()

    asyncio.run(main())


# --------------------------------------------------------------------------- rpyc-async
def serve_rpyc_async(args):
    import rpyc_async

    class AioBenchService(rpyc_async.Service):
        def on_connect(self, conn):
            # rpyc-async sets no TCP_NODELAY on its async paths; rpyc.aio and grpc do, and
            # without it its pipelined calls run ~3x slower here (Nagle): give it the same.
            _nodelay(conn._channel.stream.sock)

        async def exposed_add(self, a, b):
            return a + b

    async def main():
        _loop_guards(args.max_seconds)
        server = rpyc_async.AsyncioServer(AioBenchService, hostname=HOST, port=0,
                                          protocol_config=dict(RPYC_CONFIG))
        await server.start()
        _ready(server.port)
        await asyncio.Event().wait()  # (killed by the orchestrator)

    asyncio.run(main())


# --------------------------------------------------------------------------- floor
class _Echo(asyncio.Protocol):
    def connection_made(self, transport):
        _nodelay(transport.get_extra_info("socket"))
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


def serve_floor(args):
    async def main():
        _loop_guards(args.max_seconds)
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_Echo, HOST, 0)
        _ready(server.sockets[0].getsockname()[1])
        await server.serve_forever()

    asyncio.run(main())


KINDS = {"aio": serve_aio, "threaded": serve_threaded, "grpc": serve_grpc,
         "rpyc_async": serve_rpyc_async, "floor": serve_floor}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kind", choices=sorted(KINDS), required=True)
    ap.add_argument("--max-seconds", type=float, default=1800.0)
    args = ap.parse_args()
    raise_nofile_limit()
    if args.kind == "threaded":
        watch_parent_stdin()
        max_lifetime(args.max_seconds)
    KINDS[args.kind](args)


if __name__ == "__main__":
    main()
