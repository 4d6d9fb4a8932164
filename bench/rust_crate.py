"""Benchmarks of the Rust crate (crates/rpyc) against Python peers.

    python bench/rust_crate.py [--rounds N] [--quick] [--bin-dir DIR]

1. Rust client -> our Python ThreadedServer (bench/workers/server.py): small call
   (`add(1, 2)` on a bound method) and 64 MiB echo, against our Python client doing the same
   (bench/workers/client.py), and the pure-Rust socket floor (bench/rust-floor). The small
   call's target is the floor plus the Python server's handler cost: the server process's
   CPU time per call while the Rust client calls (read from /proc, see bench/README.md).
2. 8 Python client processes (ours, bench/workers/client.py multi) -> the Rust server
   (crates/rpyc/examples/server.rs) against the same clients -> our Python ThreadedServer:
   calls per second.

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


def multi(port, clients, n, server_pid):
    """8 client processes start together; (calls/s, server CPU us per call)."""
    procs = [popen([sys.executable, WORKERS / "client.py", "multi", "--port", port, "--n", n,
                    "--warmup", 200], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for _ in range(clients)]
    try:
        for p in procs:
            if p.stdout.readline().strip() != "READY":
                raise RuntimeError("multi client not ready")
        cpu0 = cpu_s(server_pid)
        for p in procs:
            p.stdin.write("GO\n")
            p.stdin.flush()
        res = [result(p.stdout.read()) for p in procs]
        cpu = cpu_s(server_pid) - cpu0
    finally:
        for p in procs:
            stop(p)
    wall = max(r["end"] for r in res) - min(r["start"] for r in res)
    total = sum(r["n"] for r in res)
    return total / wall, cpu / total * 1e6


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
    rows = {k: [] for k in ("floor", "handler", "rust_call", "py_call", "rust_echo", "py_echo",
                            "rust_srv_multi", "py_srv_multi", "rust_srv_cpu", "py_srv_cpu")}
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
                rate, cpu = multi(srv.port, 8, multi_n, srv.pid)
                rows["py_srv_multi"].append(rate)
                rows["py_srv_cpu"].append(cpu)
            finally:
                srv.close()
            srv = rust_server()
            try:
                rate, cpu = multi(srv.port, 8, multi_n, srv.pid)
                rows["rust_srv_multi"].append(rate)
                rows["rust_srv_cpu"].append(cpu)
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
    print("%-58s %9.0f /s" % ("8 Python clients -> Rust server, calls", med["rust_srv_multi"]))
    print("%-58s %9.0f /s" % ("8 Python clients -> Python ThreadedServer, calls", med["py_srv_multi"]))
    print("%-58s %9.1f us" % ("  server CPU per call, Rust server", med["rust_srv_cpu"]))
    print("%-58s %9.1f us" % ("  server CPU per call, Python ThreadedServer", med["py_srv_cpu"]))
    print("ratio Rust server / Python server (8 clients): %.2fx calls/s, %.2fx less CPU per call"
          % (med["rust_srv_multi"] / med["py_srv_multi"], med["py_srv_cpu"] / med["rust_srv_cpu"]))
    print(json.dumps({k: [round(x, 2) for x in v] for k, v in rows.items()}))


if __name__ == "__main__":
    main()
