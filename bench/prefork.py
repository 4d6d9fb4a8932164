#!/usr/bin/env python3
"""PreforkServer benchmark: 8 client processes call a CPU-bound method (about 1 ms of pure
Python per call) on one server, and the aggregate calls/s is compared between

  threaded     our ThreadedServer (one process: one core's worth of Python at a time)
  prefork-1    PreforkServer(workers=1)
  prefork-2    PreforkServer(workers=2)
  upstream     upstream rpyc 6.0.2's ThreadedServer (with --upstream-python)

    python bench/prefork.py                                   # 5 rounds, 8 clients x 200 calls
    python bench/prefork.py --rounds 7 --upstream-python /work/venv-upstream/bin/python

Every round starts a fresh server and fresh client processes on 127.0.0.1 for each server in
turn (interleaved, so machine noise hits all alike). The clients connect, warm up, wait for
one "go", then time their calls; calls/s = all calls / (last client's end - first client's
start). The table shows the median over rounds and ratios of medians. See bench/README.md.
"""
import argparse
import os
import statistics
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional

HERE = os.path.abspath(__file__)


def work(n: int) -> int:
    """The CPU-bound part of a call: a fixed amount of pure-Python work (fixed work, not a
    fixed time: two processes sharing one core must each take longer)."""
    total = 0
    for i in range(n):
        total += i * i
    return total


def serve(kind: str) -> None:
    """Server process: prints ``PORT <n>``, serves until SIGTERM (or stdin closes)."""
    import signal
    import threading

    import rpyc

    class BenchService(rpyc.Service):
        def exposed_work(self, n: int) -> int:
            return work(n)

        def exposed_pid(self) -> int:
            return os.getpid()

    if kind.startswith("prefork-"):
        from rpyc.utils.prefork import PreforkServer

        server: Any = PreforkServer(BenchService, hostname="127.0.0.1", port=0, workers=int(kind[8:]))
        server.handle_sigterm(drain=1)
    else:
        server = rpyc.ThreadedServer(BenchService, hostname="127.0.0.1", port=0)
        signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.close).start())
    print("PORT", server.port, flush=True)
    server.start()


def client(port: int, calls: int, n: int) -> None:
    """Client process: connect, warm up, print READY, wait for a line on stdin, time the
    calls, print ``<start> <end>`` (time.monotonic: one clock for every process)."""
    import rpyc

    conn = rpyc.connect("127.0.0.1", port)
    expected = work(n)
    for _ in range(5):
        assert conn.root.work(n) == expected
    print("READY", conn.root.pid(), flush=True)
    sys.stdin.readline()
    call = conn.root.work
    start = time.monotonic()
    for _ in range(calls):
        call(n)
    end = time.monotonic()
    print(start, end, flush=True)
    conn.close()


def one_round(python: str, kind: str, clients: int, calls: int, n: int) -> Dict[str, Any]:
    env = dict(os.environ)
    if python != sys.executable:  # (upstream: nothing of ours on its path)
        env.pop("PYTHONPATH", None)
        env.pop("PYTHONHOME", None)
    server = subprocess.Popen([python, HERE, "--serve", kind], stdout=subprocess.PIPE, text=True, env=env)
    procs: List[subprocess.Popen] = []
    try:
        line = server.stdout.readline() if server.stdout else ""
        if not line.startswith("PORT "):
            raise RuntimeError(f"{kind} server did not start: {line!r}")
        port = int(line.split()[1])
        time.sleep(0.3)  # (prefork: the workers are forked)
        for _ in range(clients):
            procs.append(subprocess.Popen([sys.executable, HERE, "--client", str(port), str(calls), str(n)],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
        per_pid: Dict[int, int] = {}
        for p in procs:
            ready = p.stdout.readline() if p.stdout else ""
            if not ready.startswith("READY"):
                raise RuntimeError(f"a client failed against {kind}: {ready!r}")
            pid = int(ready.split()[1])
            per_pid[pid] = per_pid.get(pid, 0) + 1
        cpu_before = _cpu_seconds(per_pid)
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        spans = []
        for p in procs:
            out, _ = p.communicate(timeout=600)
            spans.append(tuple(float(x) for x in out.split()))
            if p.returncode:
                raise RuntimeError(f"a client exited with {p.returncode} against {kind}")
        elapsed = max(e for _, e in spans) - min(s for s, _ in spans)
        cores = (_cpu_seconds(per_pid) - cpu_before) / elapsed if cpu_before >= 0 else float("nan")
        split = "+".join(str(n) for n in sorted(per_pid.values(), reverse=True))
        return {"calls_per_s": clients * calls / elapsed, "split": split, "cores": cores}
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--client", nargs=3, type=int, help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--calls", type=int, default=200, help="calls per client per round")
    parser.add_argument("--work-ms", type=float, default=1.0,
                        help="pure-Python work per call, in ms of this machine (calibrated at start)")
    parser.add_argument("--upstream-python", help="an interpreter with upstream rpyc 6.0.2 (adds a column)")
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve)
        return 0
    if args.client:
        client(*args.client)
        return 0

    # Fixed work per call, sized once to --work-ms (the fastest of several timings: the
    # least disturbed by other processes), then the same for every server and round.
    probe = 20000
    n = max(1, round(probe * args.work_ms / 1000 / min(_timed(work, probe) for _ in range(15))))
    per_call = min(_timed(work, n) for _ in range(50))
    print(f"{args.clients} clients x {args.calls} calls, {n} iterations per call "
          f"(~{per_call * 1000:.2f} ms here, one process alone), {os.cpu_count()} CPUs, {args.rounds} rounds, "
          f"load average {_loadavg()}")
    kinds = [("threaded", sys.executable), ("prefork-1", sys.executable), ("prefork-2", sys.executable)]
    if args.upstream_python:
        kinds.append(("upstream", args.upstream_python))
    results: Dict[str, List[float]] = {k: [] for k, _ in kinds}
    cpu_per_call: Dict[str, List[float]] = {k: [] for k, _ in kinds}
    for r in range(args.rounds):
        for kind, python in kinds:
            res = one_round(python, "threaded" if kind == "upstream" else kind, args.clients, args.calls, n)
            results[kind].append(res["calls_per_s"])
            cpu_per_call[kind].append(res["cores"] / res["calls_per_s"] * 1000)
            # (split: connections per server process; a worker holding more is the bottleneck)
            print(f"  round {r + 1} {kind:10s} {res['calls_per_s']:8.0f} calls/s  "
                  f"connections per process {res['split']:5s} server cores used {res['cores']:.2f}", flush=True)
    medians = {k: statistics.median(v) for k, v in results.items()}
    # (CPU ms per call: the server's cost of a call, which contention does not change, where
    # calls/s also depends on the CPU share the machine grants)
    print(f"\n{'server':10s} {'median calls/s':>15s} {'spread':>7s} {'vs threaded':>12s} {'server CPU ms/call':>19s}")
    for kind, _ in kinds:
        values = results[kind]
        spread = (max(values) - min(values)) / medians[kind]
        print(f"{kind:10s} {medians[kind]:15.0f} {spread:6.0%} {medians[kind] / medians['threaded']:11.2f}x "
              f"{statistics.median(cpu_per_call[kind]):19.2f}")
    # (also per round: the two ran one after the other, under more alike conditions)
    paired = statistics.median(a / b for a, b in zip(results["prefork-2"], results["prefork-1"]))
    print(f"\nprefork-2 / prefork-1: {medians['prefork-2'] / medians['prefork-1']:.2f}x (ratio of medians), "
          f"{paired:.2f}x (median of the rounds' ratios)")
    print(f"load average at the end: {_loadavg()} (other processes on the machine take cores too)")
    return 0


def _cpu_seconds(pids: Any) -> float:
    """User + system CPU seconds of the processes ``pids`` so far (Linux /proc; -1 elsewhere).
    Shows whether the server got the cores it could use: on a busy machine a second worker
    may get no more CPU than the first (with autogroup scheduling a session's processes share
    one fair share)."""
    total = 0
    try:
        for pid in pids:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
    except (OSError, ValueError, IndexError):
        return -1.0
    return total / os.sysconf("SC_CLK_TCK")


def _loadavg() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def _timed(fn: Any, *args: Any) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


if __name__ == "__main__":
    sys.exit(main())
