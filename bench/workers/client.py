"""Benchmark client; runs under either interpreter.

    python client.py BENCH [--port P] [--n N] [--warmup W] [...]

Runs one named benchmark against a server started by server.py (same interpreter)
and prints one line ``BENCH-RESULT {json}`` on stdout.  Timings are taken with
time.perf_counter() around N operations after W warm-up operations; the per-op
time is total/N.  Every result is checked for correctness so a broken
implementation cannot post a fast time.
"""
import os
import socket
import sys
import time

from common import (HOST, LIST_LEN, RPYC_CONFIG, bench_main, emit, process_cpu_s, raise_nofile_limit, read_rss_bytes,
                    recv_block, recv_polling)

MiB = 1 << 20
perf = time.perf_counter


def _connect(port):
    import rpyc
    return rpyc.connect(HOST, port, config=dict(RPYC_CONFIG))


# --------------------------------------------------------------------------- info
def bench_info(args):
    import platform
    out = {"python": sys.version.split()[0], "executable": sys.executable,
           "implementation": platform.python_implementation()}
    import rpyc
    out["rpyc_version"] = getattr(rpyc, "__version__", None)
    out["rpyc_file"] = getattr(rpyc, "__file__", None)
    try:
        from rpyc.core import brine  # noqa: F401
        out["brine"] = True
    except Exception as exc:  # pragma: no cover
        out["brine"] = f"{type(exc).__name__}: {exc}"
    emit(out)


# --------------------------------------------------------------------------- floor
def _floor_round_trip(sock, msg, recv=socket.socket.recv):
    sock.sendall(msg)
    buf = recv(sock, len(msg))
    while len(buf) < len(msg):
        more = recv(sock, len(msg) - len(buf))
        if not more:
            raise RuntimeError("floor server closed the connection")
        buf += more
    return buf


def bench_floor(args):
    s = socket.create_connection((HOST, args.port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    msg = b"0123456789abcdef"
    n_msg = len(msg)
    send, recv = s.sendall, s.recv

    assert _floor_round_trip(s, msg) == msg
    for _ in range(args.warmup):
        _floor_round_trip(s, msg)
    t0 = perf()
    for _ in range(args.n):  # inlined: a function call per round trip would count too
        send(msg)
        buf = recv(n_msg)
        while len(buf) < n_msg:
            more = recv(n_msg - len(buf))
            if not more:
                raise RuntimeError("floor server closed the connection")
            buf += more
    dt = perf() - t0
    s.close()
    emit({"n": args.n, "total_s": dt, "us_per_op": dt / args.n * 1e6})


def bench_floor_poll(args):
    """The floor with both sides polling before they block, as rpyc-rs reads by default
    (``busy_poll_us``): what a round trip costs from Python without the wake-ups."""
    s = socket.create_connection((HOST, args.port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(b"POLL" + b"." * 12)
    msg = b"0123456789abcdef"
    assert _floor_round_trip(s, msg, recv_polling) == msg
    for _ in range(args.warmup):
        _floor_round_trip(s, msg, recv_polling)
    t0 = perf()
    for _ in range(args.n):
        _floor_round_trip(s, msg, recv_polling)
    dt = perf() - t0
    s.close()
    emit({"n": args.n, "total_s": dt, "us_per_op": dt / args.n * 1e6})


def bench_connect_floor(args):
    """The connect row's floor: TCP connect, 2 round trips of 16 bytes, close, N times."""
    msg = b"0123456789abcdef"

    def once():
        s = socket.create_connection((HOST, args.port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        _floor_round_trip(s, msg)
        _floor_round_trip(s, msg)
        s.close()

    for _ in range(args.warmup):
        once()
    t0 = perf()
    for _ in range(args.n):
        once()
    dt = perf() - t0
    emit({"n": args.n, "total_s": dt, "us_per_op": dt / args.n * 1e6})


def bench_echo_floor(args):
    """The echo rows' floor: the same bulk echo over a raw socket, each side receiving into
    a new buffer (as an echo of bytes must) and sending it as is."""
    size = args.size_mib * MiB
    payload = os.urandom(MiB) * args.size_mib
    s = socket.create_connection((HOST, args.port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(b"BULK%012d" % size)
    total = 0.0
    for rep in range(args.reps + 1):  # the first one warms up
        t0 = perf()
        s.sendall(payload)
        back = recv_block(s, size)
        dt = perf() - t0
        if back is None or back[:4096] != payload[:4096] or back[-4096:] != payload[-4096:]:
            raise RuntimeError("floor echo returned different bytes")
        del back
        if rep:
            total += dt
    s.close()
    per = total / args.reps
    emit({"reps": args.reps, "size": size, "s_per_op": per, "mib_per_s": size / per / MiB})


# --------------------------------------------------------------------------- calls
def bench_call(args):
    """add = conn.root.add once; then add(1, 2) N times."""
    conn = _connect(args.port)
    add = conn.root.add
    if add(1, 2) != 3:
        raise RuntimeError("add(1, 2) != 3")
    for _ in range(args.warmup):
        add(1, 2)
    # CPU of both processes too: a faster call that burns more CPU should show it
    me = os.getpid()
    cpu0 = process_cpu_s(me) + process_cpu_s(args.server_pid)
    t0 = perf()
    for _ in range(args.n):
        add(1, 2)
    dt = perf() - t0
    cpu = process_cpu_s(me) + process_cpu_s(args.server_pid) - cpu0
    conn.close()
    emit({"n": args.n, "total_s": dt, "us_per_op": dt / args.n * 1e6, "cpu_us_per_op": cpu / args.n * 1e6})


def bench_root_add(args):
    """conn.root.add(1, 2): the `.add` attribute lookup is a round trip every time."""
    conn = _connect(args.port)
    if conn.root.add(1, 2) != 3:
        raise RuntimeError("add(1, 2) != 3")
    for _ in range(args.warmup):
        conn.root.add(1, 2)
    t0 = perf()
    for _ in range(args.n):
        conn.root.add(1, 2)
    dt = perf() - t0
    conn.close()
    emit({"n": args.n, "total_s": dt, "us_per_op": dt / args.n * 1e6})


def bench_callback(args):
    """call_me = conn.root.call_me once; call_me(fn, x) makes the server call fn(x) back."""
    conn = _connect(args.port)
    call_me = conn.root.call_me

    def fn(x):
        return x + 1

    if call_me(fn, 41) != 42:
        raise RuntimeError("call_me(fn, 41) != 42")
    for i in range(args.warmup):
        call_me(fn, i)
    t0 = perf()
    for i in range(args.n):
        call_me(fn, i)
    dt = perf() - t0
    conn.close()
    emit({"n": args.n, "total_s": dt, "us_per_op": dt / args.n * 1e6})


# --------------------------------------------------------------------------- echo
def bench_echo(args):
    """echo(payload) of size_mib MiB of incompressible bytes, `reps` times."""
    size = args.size_mib * MiB
    block = os.urandom(MiB)  # incompressible; zlib cannot see across a 1 MiB period
    payload = block * args.size_mib
    conn = _connect(args.port)
    echo = conn.root.echo
    warm = echo(block)  # warm-up: 1 MiB
    if warm != block:
        raise RuntimeError("echo warm-up mismatch")
    del warm
    total = 0.0
    for _ in range(args.reps):
        t0 = perf()
        r = echo(payload)
        total += perf() - t0
        if len(r) != size or r[:4096] != payload[:4096] or r[-4096:] != payload[-4096:]:
            raise RuntimeError("echo returned different bytes")
        del r
    conn.close()
    per = total / args.reps
    emit({"reps": args.reps, "size": size, "total_s": total, "s_per_op": per,
          "mib_per_s": size / per / MiB})


# --------------------------------------------------------------------------- iterate
def bench_iterate(args):
    """for x in conn.root.get_list(): ... over a remote 10,000-int list (netref)."""
    conn = _connect(args.port)
    root = conn.root
    expected = sum(range(LIST_LEN))

    def once():
        s = 0
        n = 0
        for x in root.get_list():
            s += x
            n += 1
        if n != LIST_LEN or s != expected:
            raise RuntimeError(f"iterate: got {n} items summing to {s}")

    once()  # warm-up
    t0 = perf()
    for _ in range(args.reps):
        once()
    dt = perf() - t0
    conn.close()
    per = dt / args.reps
    emit({"reps": args.reps, "items": LIST_LEN, "total_s": dt, "ms_per_op": per * 1e3,
          "us_per_item": per / LIST_LEN * 1e6})


# --------------------------------------------------------------------------- multi
def bench_multi(args):
    """One of K concurrent clients: connect, warm up, print READY, wait for GO, N calls."""
    conn = _connect(args.port)
    add = conn.root.add
    for _ in range(args.warmup):
        if add(1, 2) != 3:
            raise RuntimeError("add(1, 2) != 3")
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    if sys.stdin.readline().strip() != "GO":
        conn.close()
        sys.exit(2)
    start = time.monotonic()
    t0 = perf()
    for _ in range(args.n):
        add(1, 2)
    dt = perf() - t0
    end = time.monotonic()
    conn.close()
    emit({"n": args.n, "start": start, "end": end, "total_s": dt,
          "us_per_op": dt / args.n * 1e6})


# --------------------------------------------------------------------------- connect
def bench_connect(args):
    """rpyc.connect + conn.root (one GETROOT round trip) + conn.close(), N times."""
    import rpyc

    def once():
        c = rpyc.connect(HOST, args.port, config=dict(RPYC_CONFIG))
        c.root
        c.close()

    for _ in range(args.warmup):
        once()
    t0 = perf()
    for _ in range(args.n):
        once()
    dt = perf() - t0
    emit({"n": args.n, "total_s": dt, "us_per_op": dt / args.n * 1e6})


# --------------------------------------------------------------------------- brine
BRINE_ITEMS = 6870  # -> ~1.0 MiB encoded with rpyc 6.0.2's brine


def brine_payload():
    """Deterministic mixed payload: a tuple of tuples of ints/str/bytes/floats (~1 MiB)."""
    items = []
    for i in range(BRINE_ITEMS):
        items.append((
            i,                                   # small / 1-byte / multi-byte int
            i * 7919 - 5_000_000,                # negative and positive ~4-byte ints
            (i * 2654435761) & 0xFFFFFFFFFFFF,   # 48-bit int
            2 ** 70 + i,                         # bignum
            f"item-{i:06d}",                     # short ascii str
            "ünïcødé ✓ %d" % i,                 # non-ascii str
            bytes((i + k) & 0xFF for k in range(i % 48)),  # 0..47 bytes
            i * 0.5,
            -1.0 / (i + 1),
            (i, f"{i:x}", b"\x00" * (i % 5)),  # nested tuple
        ))
    return tuple(items)


def bench_brine(args):
    from rpyc.core import brine
    payload = brine_payload()
    data = brine.dump(payload)
    if brine.load(data) != payload:
        raise RuntimeError("brine.load(brine.dump(x)) != x")
    size = len(data)
    for _ in range(args.warmup):
        brine.load(brine.dump(payload))
    dump, load = brine.dump, brine.load
    t0 = perf()
    for _ in range(args.reps):
        dump(payload)
    t_dump = (perf() - t0) / args.reps
    t0 = perf()
    for _ in range(args.reps):
        load(data)
    t_load = (perf() - t0) / args.reps
    # CPython's own C loader of the same values (marshal), over the brine size: how fast
    # building these Python objects can be at all
    import marshal
    marshalled = marshal.dumps(payload)
    t0 = perf()
    for _ in range(args.reps):
        marshal.loads(marshalled)
    t_marshal = (perf() - t0) / args.reps
    emit({"reps": args.reps, "size": size, "marshal_load_mib_per_s": size / t_marshal / MiB,
          "dump_ms": t_dump * 1e3, "load_ms": t_load * 1e3,
          "dump_mib_per_s": size / t_dump / MiB, "load_mib_per_s": size / t_load / MiB,
          "roundtrip_ms": (t_dump + t_load) * 1e3,
          "roundtrip_mib_per_s": size / (t_dump + t_load) / MiB})


# --------------------------------------------------------------------------- memory
def bench_memory(args):
    """Server RSS growth over N idle connections held open by this process."""
    raise_nofile_limit()
    import rpyc
    pid = args.server_pid

    def open_one():
        c = rpyc.connect(HOST, args.port, config=dict(RPYC_CONFIG))
        c.root  # one round trip: the server has accepted and set up the connection
        return c

    for _ in range(args.warmup):  # warm the server (lazy imports, first thread, ...)
        open_one().close()
    time.sleep(args.settle)
    before = read_rss_bytes(pid)
    conns = []
    t0 = perf()
    try:
        for _ in range(args.n):
            conns.append(open_one())
        open_s = perf() - t0
        time.sleep(args.settle)
        after = read_rss_bytes(pid)
    finally:
        for c in conns:
            try:
                c.close()
            except Exception:
                pass
    delta = after - before
    emit({"n": args.n, "rss_before": before, "rss_after": after, "delta": delta,
          "kib_per_conn": delta / args.n / 1024, "open_s": open_s})


BENCHES = {
    "info": bench_info, "floor": bench_floor, "floor_poll": bench_floor_poll, "echo_floor": bench_echo_floor, "connect_floor": bench_connect_floor, "call": bench_call, "root_add": bench_root_add,
    "callback": bench_callback, "echo": bench_echo, "iterate": bench_iterate,
    "multi": bench_multi, "connect": bench_connect, "brine": bench_brine,
    "memory": bench_memory,
}


def add_arguments(ap):
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--size-mib", type=int, default=16)
    ap.add_argument("--settle", type=float, default=1.0)


def main():
    bench_main(BENCHES, add_arguments)


if __name__ == "__main__":
    main()
