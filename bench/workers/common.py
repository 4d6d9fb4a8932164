"""Helpers shared by the benchmark workers.

The workers run under EITHER interpreter (ours or upstream); they import only the
standard library plus whichever ``rpyc`` that interpreter has installed.  Keep this
file free of third-party imports.
"""
import json
import os
import socket
import sys
import time

RESULT_PREFIX = "BENCH-RESULT "
HOST = "127.0.0.1"
# Generous: a 64 MiB echo through a slow implementation must not trip rpyc's
# default 30 s sync_request_timeout.  Passed as client `config=` and server
# `protocol_config=`.
RPYC_CONFIG = {"sync_request_timeout": 600}

LIST_LEN = 10_000

# The polling floor's budget: what rpyc-rs's default busy_poll_us (50) gives its reads.
POLL_BUDGET_S = 50e-6


def recv_polling(sock, n):
    """``sock.recv(n)``, asking the socket without blocking for up to POLL_BUDGET_S first
    (yielding the CPU between attempts), as rpyc-rs's engine reads with ``busy_poll_us``."""
    end = time.perf_counter() + POLL_BUDGET_S
    while True:
        try:
            return sock.recv(n, socket.MSG_DONTWAIT)
        except BlockingIOError:
            if time.perf_counter() >= end:
                return sock.recv(n)
            os.sched_yield()


def raise_nofile_limit():
    """Raise RLIMIT_NOFILE's soft limit to the hard limit (memory bench holds 1000+ sockets)."""
    try:
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY:
            hard = 65536
        if soft != resource.RLIM_INFINITY and soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except Exception:  # pragma: no cover - best effort
        pass


def read_rss_bytes(pid):
    """VmRSS of ``pid`` in bytes, from /proc/<pid>/status."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                parts = line.split()
                return int(parts[1]) * 1024  # reported in kB
    raise RuntimeError(f"no VmRSS in /proc/{pid}/status")


def process_cpu_s(pid):
    """CPU time ``pid`` has used, in seconds: the sum over its live threads of
    /proc/<pid>/task/<tid>/schedstat (nanosecond resolution, unlike /proc/<pid>/stat's
    clock ticks)."""
    total = 0
    task_dir = f"/proc/{pid}/task"
    for tid in os.listdir(task_dir):
        try:
            with open(f"{task_dir}/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):  # the thread ended meanwhile
            pass
    return total / 1e9


def emit(result):
    """Print the single machine-readable result line (run.py looks for the prefix)."""
    sys.stdout.write(RESULT_PREFIX + json.dumps(result) + "\n")
    sys.stdout.flush()


def watch_parent_stdin():
    """Exit this process as soon as stdin reaches EOF (i.e. run.py died or closed it).

    run.py keeps a pipe to every worker's stdin open; if the orchestrator is killed
    hard (SIGKILL), the pipe closes and the worker goes away instead of lingering.
    """
    import threading

    def _watch():
        try:
            while sys.stdin.buffer.read(65536):
                pass
        except Exception:
            pass
        os._exit(0)

    threading.Thread(target=_watch, name="stdin-watch", daemon=True).start()


def max_lifetime(seconds):
    """Hard upper bound on a worker's life, whatever happens."""
    import threading

    def _die():
        sys.stderr.write(f"worker exceeded max lifetime of {seconds}s, exiting\n")
        sys.stderr.flush()
        os._exit(3)

    t = threading.Timer(seconds, _die)
    t.daemon = True
    t.start()


def recv_block(sock, size):
    """`size` bytes into a new buffer (the least an echo of new bytes can do); None at EOF."""
    block = bytearray(size)
    view = memoryview(block)
    got = 0
    while got < size:
        n = sock.recv_into(view[got:])
        if not n:
            return None
        got += n
    return block


def bench_main(benches, add_arguments):
    """A benchmark client's command line, ``BENCH [--port P] [--warmup W] [--server-pid PID]
    [--max-seconds S]`` and what ``add_arguments(parser)`` adds: runs ``benches[BENCH](args)``,
    bounded by --max-seconds."""
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("bench", choices=sorted(benches))
    ap.add_argument("--port", type=int)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--server-pid", type=int, help="count this process's CPU time too")
    ap.add_argument("--max-seconds", type=float, default=900.0)
    add_arguments(ap)
    args = ap.parse_args()
    max_lifetime(args.max_seconds)
    benches[args.bench](args)
