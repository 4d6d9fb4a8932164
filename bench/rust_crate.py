"""Benchmarks of the Rust crate (crates/rpyc) against Python peers.

    python bench/rust_crate.py [--rounds N] [--quick] [--bin-dir DIR]

1. Rust client -> our Python ThreadedServer (bench/workers/server.py): small call
   (`add(1, 2)` on a bound method) and 64 MiB echo, against our Python client doing the same
   (bench/workers/client.py), and the pure-Rust socket floor (bench/rust-floor). The small
   call's target is the floor plus the Python server's handler cost: the server process's
   CPU time per call while the Rust client calls (read from /proc, see bench/README.md).
2. 8 client processes -> the Rust server (crates/rpyc/examples/server.rs) against the same
   clients -> our Python ThreadedServer: calls per second, the server's CPU per call and
   the clients' (all 8 together, from /proc). Twice: with our Python clients
   (bench/workers/client.py multi) and with Rust ones (examples/bench_client.rs --bench
   multi), a cheaper load generator: on few cores the clients' CPU sets the pace, and the
   Rust clients leave more of the machine to the server.

Release builds: `cargo build --release -p rpyc --examples` and `-p rpyc-bench-floor`
(honours CARGO_TARGET_DIR); `--bin-dir DIR` takes `server`, `bench_client` and
`rpyc-bench-floor` from DIR instead, unbuilt (to compare two builds round by round).
Medians over rounds; every process on 127.0.0.1, killed at the end.
"""

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORKERS = ROOT / "bench" / "workers"
PREFIX = "BENCH-RESULT "
TARGET = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target") / "release"
BIN = {"server": TARGET / "examples" / "server",
       "bench_client": TARGET / "examples" / "bench_client",
       "floor": TARGET / "rpyc-bench-floor"}
# Calls the Rust client makes before the timed ones (warm-up, plus the check call).
CALL_WARMUP = 1000
LIVE = []


def popen(cmd, **kw):
    p = subprocess.Popen([str(c) for c in cmd], start_new_session=True, **kw)
    LIVE.append(p)
    return p


def stop(p):
    if p.poll() is None:
        try:
            os.killpg(p.pid, 15)
            p.wait(5)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(p.pid, 9)
            except ProcessLookupError:
                pass
    if p in LIVE:
        LIVE.remove(p)


def result(out):
    for line in out.splitlines():
        if line.startswith(PREFIX):
            return json.loads(line[len(PREFIX):])
    raise RuntimeError("no result in:\n" + out[-2000:])


def run(cmd, timeout=300):
    p = popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
              text=True)
    try:
        out, err = p.communicate(timeout=timeout)
    finally:
        stop(p)
    if p.returncode != 0:
        raise RuntimeError("%s failed: %s" % (cmd[0], err[-2000:]))
    return out


class Server:
    def __init__(self, cmd, ready):
        self.proc = popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith(ready):
            stop(self.proc)
            raise RuntimeError("server did not start: %r" % line)
        self.port = int(line.split()[1]) if ready == "READY" else int(line.rsplit(":", 1)[1])
        self.pid = int(line.split()[2]) if ready == "READY" else self.proc.pid
        # bench/workers/server.py prints READY before ThreadedServer.start() listens
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def close(self):
        stop(self.proc)


def py_server():
    return Server([sys.executable, WORKERS / "server.py", "--kind", "rpyc"], "READY")


def rust_server():
    return Server([BIN["server"], "--port", "0"], "listening on")


def cpu_s(pid):
    """User + system CPU seconds of a process so far."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def multi(port, clients, n, server_pid, kind):
    """`clients` client processes (`kind`: "py", ours in Python, bench/workers/client.py
    multi; "rust", examples/bench_client.rs --bench multi) start together: (calls/s, server
    CPU us per call, clients' CPU us per call)."""
    if kind == "py":
        cmd = [sys.executable, WORKERS / "client.py", "multi"]
    else:
        cmd = [BIN["bench_client"], "--bench", "multi"]
    procs = [popen(cmd + ["--port", port, "--n", n, "--warmup", 200], stdin=subprocess.PIPE,
                   stdout=subprocess.PIPE, text=True)
             for _ in range(clients)]
    res, client_cpu = [None] * clients, [0.0] * clients

    def collect(i, p, cpu0):
        # The client's CPU is read as soon as its result line comes, before it exits (its
        # exit, an interpreter's teardown for Python clients, is not the calls' cost; the
        # few instructions between its last call and the line are counted).
        line = p.stdout.readline()
        client_cpu[i] = cpu_s(p.pid) - cpu0
        res[i] = result(line + p.stdout.read())

    try:
        for p in procs:
            if p.stdout.readline().strip() != "READY":
                raise RuntimeError("multi client not ready")
        cpu0 = cpu_s(server_pid)
        readers = [threading.Thread(target=collect, args=(i, p, cpu_s(p.pid)), daemon=True)
                   for i, p in enumerate(procs)]
        for t in readers:
            t.start()
        for p in procs:
            p.stdin.write("GO\n")
            p.stdin.flush()
        for t in readers:
            t.join(300)
        cpu = cpu_s(server_pid) - cpu0
        if any(r is None for r in res):
            raise RuntimeError("a multi client gave no result")
    finally:
        for p in procs:
            stop(p)
    wall = max(r["end"] for r in res) - min(r["start"] for r in res)
    total = sum(r["n"] for r in res)
    return total / wall, cpu / total * 1e6, sum(client_cpu) / total * 1e6


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--bin-dir", type=Path)
    args = ap.parse_args()
    if args.bin_dir:
        BIN.update({k: args.bin_dir / v.name for k, v in BIN.items()})
    n_call = 5000 if args.quick else 20000
    echo_reps = 1 if args.quick else 3
    multi_n = 1000 if args.quick else 3000
    cargo = shutil.which("cargo")
    if cargo and not args.bin_dir:
        for what in (["-p", "rpyc", "--examples"], ["-p", "rpyc-bench-floor"]):
            subprocess.run([cargo, "build", "-q", "--release"] + what, cwd=str(ROOT),
                           check=True, timeout=1800)
    rows = {k: [] for k in ("floor", "handler", "rust_call", "py_call", "rust_echo", "py_echo")}
    # 8 clients: rows "<what>_<clients>_<server>", clients and server "py" or "rust"
    for c in ("py", "rust"):
        for srv_kind in ("py", "rust"):
            for what in ("rate", "srv_cpu", "cli_cpu"):
                rows["%s_%s_%s" % (what, c, srv_kind)] = []

    def multi_rows(port, pid, srv_kind):
        for c in ("py", "rust"):
            rate, srv_cpu, cli_cpu = multi(port, 8, multi_n, pid, c)
            for what, v in (("rate", rate), ("srv_cpu", srv_cpu), ("cli_cpu", cli_cpu)):
                rows["%s_%s_%s" % (what, c, srv_kind)].append(v)

    try:
        for r in range(args.rounds):
            rows["floor"].append(result(run([BIN["floor"], "--n", n_call]))["us_per_op"])
            srv = py_server()
            try:
                cpu0 = cpu_s(srv.pid)
                rows["rust_call"].append(result(run(
                    [BIN["bench_client"], "--port", srv.port, "--bench", "call",
                     "--n", n_call, "--warmup", CALL_WARMUP]))["us_per_op"])
                # The server's CPU for every call it served (the connection's few other
                # requests are noise at these counts)
                calls = n_call + CALL_WARMUP + 1
                rows["handler"].append((cpu_s(srv.pid) - cpu0) / calls * 1e6)
                rows["py_call"].append(result(run(
                    [sys.executable, WORKERS / "client.py", "call", "--port", srv.port, "--n",
                     n_call, "--server-pid", srv.pid]))["us_per_op"])
                res = result(run([BIN["bench_client"], "--port", srv.port,
                                  "--bench", "echo", "--n", echo_reps, "--size-mib", 64]))
                rows["rust_echo"].append(64 / (res["us_per_op"] / 1e6))
                rows["py_echo"].append(result(run(
                    [sys.executable, WORKERS / "client.py", "echo", "--port", srv.port,
                     "--size-mib", 64, "--reps", echo_reps]))["mib_per_s"])
                multi_rows(srv.port, srv.pid, "py")
            finally:
                srv.close()
            srv = rust_server()
            try:
                multi_rows(srv.port, srv.pid, "rust")
            finally:
                srv.close()
            print("round %d/%d done" % (r + 1, args.rounds), file=sys.stderr, flush=True)
    finally:
        for p in list(LIVE):
            stop(p)
    med = {k: statistics.median(v) for k, v in rows.items()}
    print("%-58s %12s" % ("benchmark (median of %d rounds)" % args.rounds, "value"))
    print("%-58s %9.1f us" % ("pure-Rust socket round trip (rpyc-bench-floor)", med["floor"]))
    print("%-58s %9.1f us" % ("Python ThreadedServer's handler cost (its CPU per call)",
                               med["handler"]))
    target = med["floor"] + med["handler"]
    print("%-58s %9.1f us" % ("  floor + handler cost", target))
    print("%-58s %9.1f us" % ("small call, Rust client -> Python ThreadedServer", med["rust_call"]))
    print("ratio Rust client small call / (floor + handler cost): %.2fx (target <= 1.10x)"
          % (med["rust_call"] / target))
    print("%-58s %9.1f us" % ("small call, our Python client -> Python ThreadedServer", med["py_call"]))
    print("%-58s %9.0f MiB/s" % ("64 MiB echo, Rust client -> Python ThreadedServer", med["rust_echo"]))
    print("%-58s %9.0f MiB/s" % ("64 MiB echo, our Python client -> Python ThreadedServer", med["py_echo"]))
    for c, name in (("py", "8 Python clients (ours)"), ("rust", "8 Rust clients (bench_client)")):
        print("%s -> each server:" % name)
        for srv_kind, sname in (("rust", "Rust server"), ("py", "Python ThreadedServer")):
            key = "%s_%s" % (c, srv_kind)
            print("%-58s %9.0f /s" % ("  -> %s, calls" % sname, med["rate_" + key]))
            print("%-58s %9.1f us" % ("    server CPU per call", med["srv_cpu_" + key]))
            print("%-58s %9.1f us" % ("    clients' CPU per call (all 8)", med["cli_cpu_" + key]))
        print("  ratio Rust server / Python server: %.2fx calls/s (target >= 2x), %.2fx less "
              "server CPU per call" % (med["rate_%s_rust" % c] / med["rate_%s_py" % c],
                                       med["srv_cpu_%s_py" % c] / med["srv_cpu_%s_rust" % c]))
    print(json.dumps({k: [round(x, 2) for x in v] for k, v in rows.items()}))


if __name__ == "__main__":
    main()
