"""Client of the asyncio benchmarks (bench/aio.py); each benchmark runs under the interpreter
of what it measures (ours, the grpcio venv, the rpyc-async venv).

    python aio_client.py BENCH --port P [...]

One benchmark per invocation; it prints ``BENCH-RESULT {json}`` on stdout (the long-lived
ones, ``idle_hold`` and ``clients``, talk to the orchestrator over stdin/stdout first).
Every call's result is checked, so a broken implementation cannot post a fast time.
Timings use time.perf_counter() around whole loops, except the latency probe, which
times every call.

"N concurrent calls on one connection" = batches of ``asyncio.gather`` over N calls, one
batch after the other (every batch starts N calls at once and waits for all N).
"""
import asyncio
import os
import socket
import struct
import sys
import time
import traceback

from common import HOST, RPYC_CONFIG, bench_main, emit, process_cpu_s, raise_nofile_limit

perf = time.perf_counter
GRPC_METHOD = "/bench.Bench/Add"  # (as aio_server.py)
GRPC_REQ = struct.Struct("<qq")
GRPC_RESP = struct.Struct("<q")
CONNECT_TIMEOUT = 60.0  # one connection's TCP connect + handshake, seconds


def _percentiles(samples_s):
    """p50/p90/p99/max/mean in µs of a list of durations in seconds."""
    s = sorted(samples_s)
    n = len(s)

    def q(p):
        return s[min(n - 1, int(round(p * (n - 1))))] * 1e6

    return {"n": n, "p50_us": q(0.50), "p90_us": q(0.90), "p99_us": q(0.99), "max_us": s[-1] * 1e6,
            "mean_us": sum(s) / n * 1e6}


class _Cpu:
    """CPU time used from now on by this process and the server process (all their threads:
    grpc's and executors' too), per operation in µs."""

    def __init__(self, server_pid):
        self.server_pid = server_pid
        self.me0 = time.process_time()
        self.srv0 = process_cpu_s(server_pid) if server_pid else 0.0

    def us_per(self, n):
        """Client + server CPU µs per operation; the split is kept in self.client_us/server_us."""
        self.client_us = (time.process_time() - self.me0) / n * 1e6
        self.server_us = (process_cpu_s(self.server_pid) - self.srv0) / n * 1e6 if self.server_pid else 0.0
        return self.client_us + self.server_us


async def _stdin_line():
    """The next line from the orchestrator, without stopping the loop meanwhile."""
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    return line.strip()


def _then_exit(fn):
    """Run fn, then leave at once (os._exit: no teardown of hundreds of connections); exit
    status 1 with the traceback on stderr if it raised."""
    code = 0
    try:
        fn()
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def _aio_connect(port):
    import rpyc.aio
    return await asyncio.wait_for(rpyc.aio.connect(HOST, port, config=dict(RPYC_CONFIG), timeout=CONNECT_TIMEOUT),
                                  CONNECT_TIMEOUT)


# --------------------------------------------------------------------------- info
def tree_sha256(folder):
    """sha256 over the names and contents of the .py files in folder (the orchestrator
    compares the installed rpyc.aio with the work tree's)."""
    import hashlib
    h = hashlib.sha256()
    for name in sorted(os.listdir(folder)):
        if name.endswith(".py"):
            h.update(name.encode() + b"\0")
            with open(os.path.join(folder, name), "rb") as f:
                h.update(f.read() + b"\0")
    return h.hexdigest()


def bench_info(args):
    import importlib
    import platform
    out = {"python": sys.version.split()[0], "executable": sys.executable,
           "implementation": platform.python_implementation()}
    for mod in ("rpyc", "grpc", "rpyc_async"):
        try:
            m = importlib.import_module(mod)
        except ImportError:
            out[mod] = None
            continue
        out[mod] = {"version": getattr(m, "__version__", None), "file": getattr(m, "__file__", None)}
        if mod == "rpyc":
            try:
                aio = importlib.import_module("rpyc.aio")
                out[mod]["aio"] = True
                out[mod]["aio_sha256"] = tree_sha256(os.path.dirname(aio.__file__))
            except ImportError:
                out[mod]["aio"] = False
    emit(out)


# --------------------------------------------------------------------------- one connection
async def _seq_and_conc(call, args, names=("add",)):
    """``call(name, a, b)`` -> awaitable of a + b. One call at a time (µs/call), then
    batches of args.conc concurrent calls (calls/s) for each name."""
    if await call(names[0], 1, 2) != 3:
        raise RuntimeError("add(1, 2) != 3")
    for _ in range(args.warmup):
        await call(names[0], 1, 2)
    cpu = _Cpu(args.server_pid)
    t0 = perf()
    for _ in range(args.seq):
        if await call(names[0], 1, 2) != 3:
            raise RuntimeError("add(1, 2) != 3")
    seq_s = perf() - t0
    out = {"seq_n": args.seq, "seq_us": seq_s / args.seq * 1e6, "seq_calls_per_s": args.seq / seq_s,
           "seq_cpu_us": cpu.us_per(args.seq), "conc": args.conc, "batches": args.batches}
    expected = [2 * i + 1 for i in range(args.conc)]
    for name in names:
        for _ in range(max(1, args.warmup // args.conc)):
            await asyncio.gather(*(call(name, i, i + 1) for i in range(args.conc)))
        cpu = _Cpu(args.server_pid)
        t0 = perf()
        for _ in range(args.batches):
            got = await asyncio.gather(*(call(name, i, i + 1) for i in range(args.conc)))
            if got != expected:
                raise RuntimeError(f"{name}: wrong results from concurrent calls")
        dt = perf() - t0
        out[f"conc_calls_per_s_{name}"] = args.conc * args.batches / dt
        out[f"conc_cpu_us_{name}"] = cpu.us_per(args.conc * args.batches)
        out[f"conc_cpu_us_{name}_client"], out[f"conc_cpu_us_{name}_server"] = cpu.client_us, cpu.server_us
    out["conc_calls_per_s"] = out[f"conc_calls_per_s_{names[0]}"]
    out["conc_cpu_us"] = out[f"conc_cpu_us_{names[0]}"]
    return out


def bench_calls_aio(args):
    """rpyc.aio client -> rpyc.aio server: ``await conn.root.add(a, b)`` (one CALLATTR request
    each), async def handler; then the same with an @inline and a plain def (executor) handler."""
    async def main():
        conn = await _aio_connect(args.port)
        root = conn.root

        def call(name, a, b):
            return getattr(root, name)(a, b)

        out = await _seq_and_conc(call, args, names=("add", "add_inline", "add_thread"))
        await conn.aclose()
        return out

    emit(asyncio.run(main()))


def bench_calls_sync(args):
    """Our blocking client -> ThreadedServer: add = conn.root.add once, add(1, 2) N times."""
    import rpyc
    conn = rpyc.connect(HOST, args.port, config=dict(RPYC_CONFIG))
    add = conn.root.add
    if add(1, 2) != 3:
        raise RuntimeError("add(1, 2) != 3")
    for _ in range(args.warmup):
        add(1, 2)
    cpu = _Cpu(args.server_pid)
    t0 = perf()
    for _ in range(args.seq):
        if add(1, 2) != 3:
            raise RuntimeError("add(1, 2) != 3")
    dt = perf() - t0
    cpu_us = cpu.us_per(args.seq)
    conn.close()
    emit({"seq_n": args.seq, "seq_us": dt / args.seq * 1e6, "seq_calls_per_s": args.seq / dt,
          "seq_cpu_us": cpu_us})


def bench_calls_grpc(args):
    """grpc.aio unary-unary, raw bytes (no protobuf, identity (de)serializers), one channel."""
    import grpc.aio

    async def main():
        async with grpc.aio.insecure_channel(f"{HOST}:{args.port}") as channel:
            await asyncio.wait_for(channel.channel_ready(), CONNECT_TIMEOUT)
            rpc = channel.unary_unary(GRPC_METHOD)
            pack, unpack = GRPC_REQ.pack, GRPC_RESP.unpack

            async def call(name, a, b):
                return unpack(await rpc(pack(a, b)))[0]

            return await _seq_and_conc(call, args)

    emit(asyncio.run(main()))


def bench_calls_rpyc_async(args):
    """rpyc-async 1.1.0: async_connect, then ``await async_call(conn.root, "add", a, b)`` (its
    non-blocking call: one ASYNC_CALLATTR request, as ours sends one CALLATTR)."""
    import rpyc_async
    from rpyc_async.core.netref import async_call

    async def main():
        conn = await asyncio.wait_for(rpyc_async.async_connect(HOST, args.port, config=dict(RPYC_CONFIG)),
                                      CONNECT_TIMEOUT)
        # as the server side does (aio_server.py): rpyc-async sets no TCP_NODELAY itself
        conn._channel.stream.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        root = conn.root

        def call(name, a, b):
            return async_call(root, name, a, b)

        out = await _seq_and_conc(call, args)
        await conn.aclose()
        return out

    emit(asyncio.run(main()))


class _PingPong(asyncio.Protocol):
    def __init__(self):
        self.waiter = None
        self.got = b""

    def connection_made(self, transport):
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data):
        self.got += data
        if len(self.got) >= 16 and self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(self.got)
            self.got = b""

    def connection_lost(self, exc):
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(EOFError("floor server closed the connection"))


def bench_floor(args):
    """Raw asyncio ping-pong, 16 bytes, asyncio.Protocol at both ends (aio_server.py --kind
    floor): the least an awaited round trip costs on a default asyncio loop."""
    async def main():
        loop = asyncio.get_running_loop()
        transport, proto = await loop.create_connection(_PingPong, HOST, args.port)
        msg = b"0123456789abcdef"

        async def once():
            proto.waiter = loop.create_future()
            transport.write(msg)
            if await proto.waiter != msg:
                raise RuntimeError("floor echo returned different bytes")

        for _ in range(args.warmup + 1):
            await once()
        cpu = _Cpu(args.server_pid)
        t0 = perf()
        for _ in range(args.seq):
            await once()
        dt = perf() - t0
        cpu_us = cpu.us_per(args.seq)
        transport.close()
        return {"seq_n": args.seq, "seq_us": dt / args.seq * 1e6, "seq_cpu_us": cpu_us}

    emit(asyncio.run(main()))


# --------------------------------------------------------------------------- idle connections
def bench_idle_hold(args):
    """Open args.n rpyc.aio connections (each has fetched the root: an established RPyC
    connection), ``args.par`` handshakes at a time, and hold them idle. Then obey stdin:
    ``CHECK`` calls add once on every connection (prints ``CHECKED <ok> <seconds>``),
    ``QUIT`` (or EOF) exits at once (the kernel closes the sockets)."""
    raise_nofile_limit()

    async def main():
        conns = []
        sem = asyncio.Semaphore(args.par)

        async def open_one():
            async with sem:
                conns.append(await _aio_connect(args.port))

        t0 = perf()
        await asyncio.gather(*(open_one() for _ in range(args.n)))
        _say(f"READY {perf() - t0:.3f}")
        while True:
            cmd = await _stdin_line()
            if cmd == "CHECK":
                t0 = perf()

                async def check(i, conn):
                    async with sem:
                        return await conn.root.add(i, 1) == i + 1

                ok = sum(await asyncio.gather(*(check(i, c) for i, c in enumerate(conns))))
                _say(f"CHECKED {ok} {perf() - t0:.3f}")
            else:  # QUIT, EOF or anything else
                break

    # closing 10,000 connections one by one is not what we measure: exit, the kernel closes them
    _then_exit(lambda: asyncio.run(main()))


def bench_probe(args):
    """One more rpyc.aio client: ``await conn.root.add(1, 2)`` args.seq times, each timed."""
    async def main():
        conn = await _aio_connect(args.port)
        root = conn.root
        for _ in range(args.warmup):
            if await root.add(1, 2) != 3:
                raise RuntimeError("add(1, 2) != 3")
        lat = []
        for _ in range(args.seq):
            t0 = perf()
            r = await root.add(1, 2)
            lat.append(perf() - t0)
            if r != 3:
                raise RuntimeError("add(1, 2) != 3")
        await conn.aclose()
        return _percentiles(lat)

    emit(asyncio.run(main()))


# --------------------------------------------------------------------------- many clients
def bench_clients(args):
    """args.conns rpyc.aio connections in this process, each driven by its own task doing
    sequential ``await conn.root.add(1, 2)``. Connect all, warm up, print READY, wait for
    GO, then call for args.duration seconds; counts and times (CLOCK_MONOTONIC, comparable
    across processes) go to the orchestrator."""
    raise_nofile_limit()

    async def main():
        sem = asyncio.Semaphore(args.par)
        conns = []

        async def open_one():
            async with sem:
                conn = await _aio_connect(args.port)
                conns.append(conn)
                for _ in range(args.warmup):
                    if await conn.root.add(1, 2) != 3:
                        raise RuntimeError("add(1, 2) != 3")

        t0 = perf()
        await asyncio.gather(*(open_one() for _ in range(args.conns)))
        _say(f"READY {perf() - t0:.3f}")
        if await _stdin_line() != "GO":
            os._exit(2)
        loop = asyncio.get_running_loop()
        cpu0 = time.process_time()
        start = time.monotonic()
        deadline = loop.time() + args.duration
        lat = []  # every call's time, for the latency percentiles

        async def work(conn):
            root = conn.root
            n = 0
            while loop.time() < deadline:
                t = perf()
                r = await root.add(1, 2)
                lat.append(perf() - t)
                if r != 3:
                    raise RuntimeError("add(1, 2) != 3")
                n += 1
            return n

        counts = await asyncio.gather(*(work(c) for c in conns))
        end = time.monotonic()
        return dict(_percentiles(lat), conns=len(conns), calls=sum(counts), start=start, end=end,
                    cpu_s=time.process_time() - cpu0,
                    min_calls_per_conn=min(counts), max_calls_per_conn=max(counts))

    _then_exit(lambda: emit(asyncio.run(main())))


BENCHES = {
    "info": bench_info, "calls_aio": bench_calls_aio, "calls_sync": bench_calls_sync,
    "calls_grpc": bench_calls_grpc, "calls_rpyc_async": bench_calls_rpyc_async, "floor": bench_floor,
    "idle_hold": bench_idle_hold, "probe": bench_probe, "clients": bench_clients,
}


def add_arguments(ap):
    ap.add_argument("--seq", type=int, default=1000, help="sequential calls")
    ap.add_argument("--conc", type=int, default=100, help="calls per concurrent batch")
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--n", type=int, default=1000, help="idle connections to hold")
    ap.add_argument("--par", type=int, default=100, help="handshakes at a time")
    ap.add_argument("--conns", type=int, default=500, help="clients (connections) in this process")
    ap.add_argument("--duration", type=float, default=3.0)


def main():
    bench_main(BENCHES, add_arguments)


if __name__ == "__main__":
    main()
