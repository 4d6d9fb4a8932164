#!/usr/bin/env python3
"""asyncio benchmarks: rpyc.aio vs grpc.aio, rpyc-async 1.1.0 and our blocking rpyc.

    python bench/aio.py                  # full run (~6-10 min on 2 busy cores)
    python bench/aio.py --quick          # smoke run (~1.5-3 min)
    python bench/aio.py --only calls --rounds 7
    python bench/aio.py --only idle.aio,clients

Three benchmarks (see bench/README.md, "asyncio benchmarks"):

  calls    one connection, a small call add(1, 2): 100 concurrent calls (calls/s) and one
           awaited call at a time (µs/call) for rpyc.aio, grpc.aio (raw bytes), rpyc-async
           1.1.0 and our blocking client against ThreadedServer, next to a raw asyncio floor
  idle     10,000 idle rpyc.aio connections to one rpyc.aio server (9,000 to a
           ThreadedServer): server threads, RSS per connection, CPU while idle, p50/p99 of a
           small call from one more client
  clients  1,000 rpyc.aio clients calling concurrently: aggregate calls/s against the
           rpyc.aio server and against ThreadedServer (the same client code)

Our rpyc runs in the interpreter running this script (--ours-python); grpcio and rpyc-async
each run in their own venv (bench/.venv-grpc, bench/.venv-rpyc-async, created on demand;
rpyc-async must never share an interpreter with our rpyc). Every measurement starts fresh
server and client processes (bench/workers/aio_server.py, aio_client.py) on 127.0.0.1;
rounds are interleaved; the table shows medians over rounds.
"""
import argparse
import datetime
import json
import os
import platform
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH_DIR)
sys.path.insert(1, os.path.join(BENCH_DIR, "workers"))
from run import (PROCS, BenchError, Impl as Interp, Server as _Server, fmt, handle_signals,  # noqa: E402
                 print_columns, run_program, run_to_end, write_json, _tail)  # (bench/run.py)
from common import process_cpu_s, read_rss_bytes  # noqa: E402 (bench/workers/common.py)
from aio_client import tree_sha256  # noqa: E402 (bench/workers/aio_client.py)

ROOT = os.path.dirname(BENCH_DIR)
WORKERS = os.path.join(BENCH_DIR, "workers")
SERVER_PY = os.path.join(WORKERS, "aio_server.py")
CLIENT_PY = os.path.join(WORKERS, "aio_client.py")

# The other libraries, each in its own venv (git-ignored: .gitignore has `.venv*`).
VENVS = {
    "grpc": dict(dir=".venv-grpc", requirement="grpcio==1.85.1", module="grpc", version="1.85.1"),
    "rpyc_async": dict(dir=".venv-rpyc-async", requirement="rpyc-async==1.1.0", module="rpyc_async",
                       version="1.1.0"),
}

# ============================================================================ measurements
# id -> group, interpreter, server kind, client benchmark, timeout (s) of one measurement.
MEASURES = {
    "calls.aio": dict(group="calls", interp="ours", server="aio", client="calls_aio", timeout=240),
    "calls.grpc": dict(group="calls", interp="grpc", server="grpc", client="calls_grpc", timeout=240),
    "calls.rpyc_async": dict(group="calls", interp="rpyc_async", server="rpyc_async",
                             client="calls_rpyc_async", timeout=240),
    "calls.sync": dict(group="calls", interp="ours", server="threaded", client="calls_sync", timeout=240),
    "calls.floor": dict(group="calls", interp="ours", server="floor", client="floor", timeout=120),
    "idle.aio": dict(group="idle", interp="ours", server="aio", timeout=600),
    "idle.threaded": dict(group="idle", interp="ours", server="threaded", timeout=600),
    "clients.aio": dict(group="clients", interp="ours", server="aio", timeout=300),
    "clients.threaded": dict(group="clients", interp="ours", server="threaded", timeout=300),
}
GROUPS = ("calls", "idle", "clients")
PARAMS = {
    "full": {
        "calls": dict(seq=2000, warmup=200, conc=100, batches=50),
        "floor": dict(seq=5000, warmup=500),
        # holders: client processes sharing the idle connections (fd limit per process)
        "idle": dict(n_aio=10000, n_threaded=9000, holders=2, par=100, probe=5000, probe_warmup=200,
                     settle=2.0),
        "clients": dict(clients=1000, procs=2, par=100, duration=4.0, warmup=2),
    },
}
# --quick: the full run's parameters but these
PARAMS["quick"] = {group: dict(PARAMS["full"][group], **fewer) for group, fewer in {
    "calls": dict(seq=500, warmup=100, batches=20),
    "floor": dict(seq=2000, warmup=200),
    "idle": dict(n_aio=1000, n_threaded=1000, holders=1, probe=2000, probe_warmup=100, settle=1.0),
    "clients": dict(duration=2.0, warmup=1),
}.items()}
# rounds per group (--rounds N: N for all)
DEFAULT_ROUNDS = {"calls": {"full": 7, "quick": 2}, "idle": {"full": 3, "quick": 1},
                  "clients": {"full": 5, "quick": 2}}


# ============================================================================ processes
class Server(_Server):
    """A fresh aio_server.py process of one kind; READY <port> <pid>."""

    script = SERVER_PY


class Talker:
    """A client process that talks line by line (READY, CHECKED, BENCH-RESULT...): its
    stdout lines arrive on a queue, so every wait has a timeout."""

    def __init__(self, interp, argv, tmpdir, tag):
        self.err_path = os.path.join(tmpdir, f"{tag}.err")
        with open(self.err_path, "w") as err:
            self.proc = PROCS.popen([interp.python, CLIENT_PY] + argv, cwd=WORKERS, stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=err, env=interp.env, text=True)
        self.lines = queue.Queue()
        self.seen = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        try:
            for line in self.proc.stdout:
                self.lines.put(line.rstrip("\n"))
        except (OSError, ValueError):
            pass
        self.lines.put(None)

    def expect(self, prefix, deadline, what):
        """The first line starting with `prefix` before `deadline` (time.monotonic())."""
        while True:
            left = deadline - time.monotonic()
            try:
                line = self.lines.get(timeout=max(0.0, left))
            except queue.Empty:
                raise BenchError(f"{what}: no '{prefix.strip()}' line in time:\n{_tail(self.tail())}")
            if line is None:
                self.proc.wait(5)
                raise BenchError(f"{what}: exited (status {self.proc.returncode}) before '{prefix.strip()}':\n"
                                 f"{_tail(self.tail())}")
            self.seen.append(line)
            if line.startswith(prefix):
                return line

    def send(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def tail(self):
        try:
            with open(self.err_path) as f:
                err = f.read()
        except OSError:
            err = ""
        return "\n".join(self.seen[-5:] + [err])

    def close(self):
        PROCS.release(self.proc)


def run_client(interp, bench, args, timeout):
    """Run one aio_client.py benchmark to its end; its BENCH-RESULT, parsed."""
    argv = [interp.python, CLIENT_PY, bench, "--max-seconds", str(timeout + 30)] + [str(a) for a in args]
    return run_program(argv, f"client '{bench}'", timeout, interp.env)


def split(total, k):
    """total in k near-equal whole shares."""
    return [total // k + (1 if i < total % k else 0) for i in range(k)]


def start_talkers(talkers, interp, argv, share_flag, shares, spec, tmpdir, deadline, what):
    """One aio_client.py Talker per share (``argv share_flag share``) into talkers (the caller
    closes them), then each one's READY before deadline: the seconds all that took."""
    t0 = time.monotonic()
    for i, share in enumerate(shares):
        talkers.append(Talker(interp, [str(a) for a in argv] + [share_flag, str(share), "--max-seconds",
                                                                 str(spec["timeout"] + 30)],
                              tmpdir, f"{argv[0]}-{spec['server']}-{i}"))
    for i, t in enumerate(talkers):
        t.expect("READY", deadline, f"{what} {i} ({shares[i]} connections)")
    return time.monotonic() - t0


def threads_of(pid):
    return len(os.listdir(f"/proc/{pid}/task"))


# ============================================================================ the benchmarks
def measure_calls(mid, spec, interp, p, tmpdir):
    pc = p["floor"] if mid == "calls.floor" else p["calls"]
    args = ["--seq", pc["seq"], "--warmup", pc["warmup"]]
    if "conc" in pc and mid != "calls.sync":
        args += ["--conc", pc["conc"], "--batches", pc["batches"]]
    with Server(interp, spec["server"], tmpdir) as srv:
        try:
            res = run_client(interp, spec["client"], ["--port", srv.port, "--server-pid", srv.pid] + args,
                             spec["timeout"])
        except BenchError as e:
            raise srv.failure(e)
        srv.check_alive()
    return res


def measure_idle(mid, spec, interp, p, tmpdir):
    """Idle connections held by separate client processes; the server's threads, RSS and
    CPU; a probe client's latency before (no idle connection) and with them."""
    pi = p["idle"]
    n = pi["n_aio"] if spec["server"] == "aio" else pi["n_threaded"]
    holders_n = max(1, pi["holders"])
    deadline = time.monotonic() + spec["timeout"]
    probe_args = ["--seq", pi["probe"], "--warmup", pi["probe_warmup"]]
    holders = []
    with Server(interp, spec["server"], tmpdir) as srv:
        try:
            # the probe with no idle connection (this also warms the server up)
            probe0 = run_client(interp, "probe", ["--port", srv.port] + probe_args, 120)
            time.sleep(pi["settle"])
            threads0, rss0 = threads_of(srv.pid), read_rss_bytes(srv.pid)
            shares = split(n, holders_n)
            open_s = start_talkers(holders, interp, ["idle_hold", "--port", srv.port, "--par", pi["par"]],
                                   "--n", shares, spec, tmpdir, deadline, "idle holder")
            srv.check_alive("the connects")
            time.sleep(pi["settle"])
            threads1 = threads_of(srv.pid)
            rss1 = read_rss_bytes(srv.pid)
            cpu0, w0 = process_cpu_s(srv.pid), time.monotonic()
            time.sleep(pi["settle"])
            idle_cpu = (process_cpu_s(srv.pid) - cpu0) / (time.monotonic() - w0)
            probe1 = run_client(interp, "probe", ["--port", srv.port] + probe_args, 120)
            threads2 = threads_of(srv.pid)
            rss2 = read_rss_bytes(srv.pid)
            # every held connection still answers: they were real, established connections
            t1 = time.monotonic()
            for h in holders:
                h.send("CHECK")
            for i, h in enumerate(holders):
                ok = int(h.expect("CHECKED", deadline, f"idle holder {i} check").split()[1])
                if ok != shares[i]:
                    raise BenchError(f"idle holder {i}: {ok} of {shares[i]} connections answered")
            check_s = time.monotonic() - t1
            srv.check_alive()
        except BenchError as e:
            raise srv.failure(e)
        finally:
            for h in holders:
                try:
                    h.send("QUIT")
                except (OSError, ValueError):
                    pass
            for h in holders:
                h.close()
    ms = {k: v / 1000 for k, v in probe1.items() if k.endswith("_us")}
    return {"n": n, "holders": holders_n, "open_s": open_s, "check_s": check_s,
            "threads_before": threads0, "threads_idle": threads1, "threads_after_probe": threads2,
            "threads": max(threads1, threads2),
            "rss_before": rss0, "rss_idle": rss1, "rss_after_probe": rss2,
            "kib_per_conn": (rss1 - rss0) / n / 1024, "idle_cpu_pct": idle_cpu * 100,
            "probe_idle0": probe0, "probe": probe1,
            "p50_ms": ms["p50_us"], "p99_ms": ms["p99_us"], "p50_ms_0": probe0["p50_us"] / 1000,
            "p99_ms_0": probe0["p99_us"] / 1000}


def measure_clients(mid, spec, interp, p, tmpdir):
    """K client processes with clients/K rpyc.aio connections each, all started on GO."""
    pc = p["clients"]
    k = max(1, pc["procs"])
    shares = split(pc["clients"], k)
    deadline = time.monotonic() + spec["timeout"]
    procs = []
    with Server(interp, spec["server"], tmpdir) as srv:
        try:
            open_s = start_talkers(procs, interp, ["clients", "--port", srv.port, "--par", pc["par"],
                                                   "--duration", pc["duration"], "--warmup", pc["warmup"]],
                                   "--conns", shares, spec, tmpdir, deadline, "client process")
            cpu0, w0 = process_cpu_s(srv.pid), time.monotonic()
            for c in procs:  # release them as close together as we can
                c.send("GO")
            results = []
            for i, c in enumerate(procs):
                line = c.expect("BENCH-RESULT ", deadline, f"client process {i}")
                results.append(json.loads(line[len("BENCH-RESULT "):]))
            server_cpu_s, w1 = process_cpu_s(srv.pid) - cpu0, time.monotonic()
            srv.check_alive()
        except BenchError as e:
            raise srv.failure(e)
        finally:
            for c in procs:
                c.close()
    wall = max(r["end"] for r in results) - min(r["start"] for r in results)
    total = sum(r["calls"] for r in results)
    return {"clients": sum(r["conns"] for r in results), "procs": k, "open_s": open_s, "wall_s": wall,
            "calls": total, "calls_per_s": total / wall,
            # CPU: the server's busy share of one core, and client+server CPU per call
            "server_cpu_pct": server_cpu_s / (w1 - w0) * 100,
            "server_cpu_us_per_call": server_cpu_s / total * 1e6,
            "cpu_us_per_call": (server_cpu_s + sum(r["cpu_s"] for r in results)) / total * 1e6,
            "p50_ms": statistics.median(r["p50_us"] for r in results) / 1000,
            "p99_ms": max(r["p99_us"] for r in results) / 1000,
            "min_calls_per_conn": min(r["min_calls_per_conn"] for r in results),
            "per_process": results}


def measure(mid, interp, p, tmpdir):
    spec = MEASURES[mid]
    fn = {"calls": measure_calls, "idle": measure_idle, "clients": measure_clients}[spec["group"]]
    return fn(mid, spec, interp, p, tmpdir)


def progress_text(mid, r):
    if mid == "calls.floor":
        return f"{r['seq_us']:.1f} µs/round trip"
    if mid == "calls.sync":
        return f"{r['seq_us']:.1f} µs/call ({r['seq_calls_per_s']:,.0f} calls/s, {r['seq_cpu_us']:.0f} µs CPU/call)"
    if mid.startswith("calls."):
        extra = "".join(f", {name} {r[f'conc_calls_per_s_{name}']:,.0f}" for name in ("add_inline", "add_thread")
                        if f"conc_calls_per_s_{name}" in r)
        return (f"1 at a time {r['seq_us']:.1f} µs/call; {r['conc']} concurrent {r['conc_calls_per_s']:,.0f} calls/s"
                f" ({r['conc_cpu_us']:.0f} µs CPU/call: client {r['conc_cpu_us_add_client']:.0f} + server "
                f"{r['conc_cpu_us_add_server']:.0f}){extra}")
    if mid.startswith("idle."):
        return (f"{r['n']} conns (opened in {r['open_s']:.1f}s, all answered in {r['check_s']:.1f}s): "
                f"threads {r['threads_before']} -> {r['threads_idle']} -> {r['threads_after_probe']}, "
                f"RSS {r['rss_before'] >> 20} -> {r['rss_idle'] >> 20} MiB = {r['kib_per_conn']:.1f} KiB/conn, "
                f"idle CPU {r['idle_cpu_pct']:.1f}%, probe p50/p99 {r['p50_ms']:.3f}/{r['p99_ms']:.3f} ms "
                f"(no idle conns: {r['p50_ms_0']:.3f}/{r['p99_ms_0']:.3f})")
    return (f"{r['calls_per_s']:,.0f} calls/s ({r['clients']} clients, {r['calls']:,} calls in {r['wall_s']:.2f}s; "
            f"per call p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms; server CPU {r['server_cpu_pct']:.0f}%, "
            f"{r['server_cpu_us_per_call']:.0f} µs/call, all {r['cpu_us_per_call']:.0f} µs CPU/call; "
            f"connected in {r['open_s']:.1f}s)")


# ============================================================================ the table
def rows_for(p):
    """(measurement, metric, label, unit, better, ref, target): ref = the rpyc.aio
    (measurement, metric) this row is compared with in the 'rpyc.aio gain' column; target =
    (applies_to 'value' | 'gain', op, value)."""
    c = p["calls"]["conc"]
    ia, it = p["idle"]["n_aio"], p["idle"]["n_threaded"]
    cl = p["clients"]["clients"]
    aio_conc = ("calls.aio", "conc_calls_per_s")
    aio_seq = ("calls.aio", "seq_us")
    aio_cpu = ("calls.aio", "conc_cpu_us")
    return [
        ("header", None, f"1. one connection, add(1, 2): {c} concurrent calls", None, None, None, None),
        ("calls.aio", "conc_calls_per_s", "rpyc.aio -> rpyc.aio (async def add)", "calls/s", "higher", None, None),
        ("calls.aio", "conc_calls_per_s_add_inline", "  same, @rpyc.aio.inline def add", "calls/s", "higher",
         None, None),
        ("calls.aio", "conc_calls_per_s_add_thread", "  same, plain def add (executor thread)", "calls/s",
         "higher", None, None),
        ("calls.grpc", "conc_calls_per_s", "grpc.aio, raw bytes, 1 channel", "calls/s", "higher", aio_conc,
         ("gain", ">=", 10)),
        ("calls.rpyc_async", "conc_calls_per_s", "rpyc-async 1.1.0 (AsyncioServer)", "calls/s", "higher",
         aio_conc, None),
        ("calls.sync", "seq_calls_per_s", "our sync client -> ThreadedServer, 1 at a time", "calls/s", "higher",
         aio_conc, None),
        ("calls.aio", "conc_cpu_us", "CPU per call, client+server: rpyc.aio", "µs/call", "lower", None, None),
        ("calls.grpc", "conc_cpu_us", "  grpc.aio", "µs/call", "lower", aio_cpu, None),
        ("calls.rpyc_async", "conc_cpu_us", "  rpyc-async 1.1.0", "µs/call", "lower", aio_cpu, None),
        ("calls.sync", "seq_cpu_us", "  our sync client, 1 at a time", "µs/call", "lower", aio_cpu, None),
        ("header", None, "   one call at a time (awaited / blocking)", None, None, None, None),
        ("calls.aio", "seq_us", "rpyc.aio -> rpyc.aio", "µs/call", "lower", None, None),
        ("calls.sync", "seq_us", "our sync client -> ThreadedServer", "µs/call", "lower", aio_seq, None),
        ("calls.grpc", "seq_us", "grpc.aio", "µs/call", "lower", aio_seq, None),
        ("calls.rpyc_async", "seq_us", "rpyc-async 1.1.0", "µs/call", "lower", aio_seq, None),
        ("calls.floor", "seq_us", "floor: raw asyncio ping-pong 16 B", "µs/rt", "lower", aio_seq, None),
        ("header", None, f"2. idle connections to one server process", None, None, None, None),
        ("idle.aio", "threads", f"rpyc.aio, {ia:,} idle: server threads", "threads", "lower", None,
         ("value", "<=", 8)),
        ("idle.aio", "kib_per_conn", "  server RSS per idle conn", "KiB/conn", "lower", None, ("value", "<=", 16)),
        ("idle.aio", "idle_cpu_pct", "  server CPU while idle", "% of 1 core", "lower", None, None),
        ("idle.aio", "p50_ms", "  one more client: call p50", "ms", "lower", None, None),
        ("idle.aio", "p99_ms", "  one more client: call p99", "ms", "lower", None, ("value", "<=", 0.5)),
        ("idle.aio", "p99_ms_0", "  (the same p99 with no idle conn)", "ms", "lower", None, None),
        ("idle.threaded", "threads", f"ThreadedServer, {it:,} idle: threads", "threads", "lower",
         ("idle.aio", "threads"), None),
        ("idle.threaded", "kib_per_conn", "  server RSS per idle conn", "KiB/conn", "lower",
         ("idle.aio", "kib_per_conn"), None),
        ("idle.threaded", "idle_cpu_pct", "  server CPU while idle", "% of 1 core", "lower", None, None),
        ("idle.threaded", "p50_ms", "  one more client: call p50", "ms", "lower", ("idle.aio", "p50_ms"), None),
        ("idle.threaded", "p99_ms", "  one more client: call p99", "ms", "lower", ("idle.aio", "p99_ms"), None),
        ("idle.threaded", "p99_ms_0", "  (the same p99 with no idle conn)", "ms", "lower", None, None),
        ("header", None, f"3. {cl:,} clients calling at once (rpyc.aio clients, 1 task each)", None, None, None,
         None),
        ("clients.aio", "calls_per_s", "-> rpyc.aio server", "calls/s", "higher", None, None),
        ("clients.aio", "server_cpu_pct", "  server CPU (busy share)", "% of 1 core", "lower", None, None),
        ("clients.aio", "server_cpu_us_per_call", "  server CPU per call", "µs/call", "lower", None, None),
        ("clients.aio", "cpu_us_per_call", "  CPU per call, clients+server", "µs/call", "lower", None, None),
        ("clients.threaded", "calls_per_s", "-> ThreadedServer", "calls/s", "higher", ("clients.aio", "calls_per_s"),
         None),
        ("clients.threaded", "server_cpu_pct", "  server CPU (busy share)", "% of 1 core", "lower", None, None),
        ("clients.threaded", "server_cpu_us_per_call", "  server CPU per call", "µs/call", "lower",
         ("clients.aio", "server_cpu_us_per_call"), None),
        ("clients.threaded", "cpu_us_per_call", "  CPU per call, clients+server", "µs/call", "lower",
         ("clients.aio", "cpu_us_per_call"), None),
    ]


def _median(results, mid, metric):
    r = results.get(mid)
    if not r:
        return None, None
    vals = [s[metric] for s in r["samples"] if metric in s]
    if not vals:
        return None, None
    med = statistics.median(vals)
    spread = (max(vals) - min(vals)) / med if len(vals) > 1 and med else None
    return med, spread


def summarize(results, p):
    rows = []
    for mid, metric, label, unit, better, ref, target in rows_for(p):
        if mid == "header":
            rows.append({"header": label})
            continue
        if mid not in results:
            continue
        value, spread = _median(results, mid, metric)
        gain = None
        if ref is not None and value:
            rv, _ = _median(results, *ref)
            if rv:
                gain = rv / value if better == "higher" else value / rv
        ok = None
        if target is not None:
            applies, op, val = target
            x = gain if applies == "gain" else value
            if x is not None:
                ok = x <= val if op == "<=" else x >= val
        rows.append({"measure": mid, "metric": metric, "label": label.strip(), "_label": label, "unit": unit,
                     "better": better, "value": value, "spread": spread, "rounds": len(results[mid]["samples"]),
                     "rpyc_aio_gain": gain,
                     "gain_of": None if ref is None else f"{ref[0]}.{ref[1]}",
                     "target": None if target is None else {"applies_to": target[0], "op": target[1],
                                                            "value": target[2]},
                     "target_text": fmt_target(target), "meets_target": ok,
                     "error": results[mid]["error"]})
    # drop headers with nothing under them
    out = []
    for i, r in enumerate(rows):
        if "header" in r and (i + 1 >= len(rows) or "header" in rows[i + 1]):
            continue
        out.append(r)
    return out


def fmt_target(target):
    if target is None:
        return "-"
    applies, op, val = target
    sym = "≤" if op == "<=" else "≥"
    return f"rpyc.aio gain {sym}{val:g}x" if applies == "gain" else f"{sym} {val:g}"


def print_table(rows):
    head = ["benchmark", "unit", "median", "rpyc.aio gain", "target", "ok", "spread"]
    body = []
    for r in rows:
        if "header" in r:
            body.append(r["header"])
            continue
        value = "ERR" if r["value"] is None and r["error"] else fmt(r["value"])
        gain = "-" if r["rpyc_aio_gain"] is None else f"{r['rpyc_aio_gain']:.2f}x"
        ok = {True: "yes", False: "NO", None: "-"}[r["meets_target"]]
        spread = "-" if r["spread"] is None else f"{r['spread'] * 100:.0f}%"
        body.append([r["_label"], r["unit"], value, gain, r["target_text"], ok, spread])
    print_columns(head, body, right={2, 3, 6})


# ============================================================================ interpreters
def ensure_venv(name, log):
    """bench/<dir>/bin/python with VENVS[name] installed (created once, like
    scripts/upstream-venv.sh does for upstream rpyc)."""
    v = VENVS[name]
    venv = os.path.join(BENCH_DIR, v["dir"])
    py = os.path.join(venv, "bin", "python")
    check = f"import {v['module']}, sys; sys.exit({v['module']}.__version__ != {v['version']!r})"
    env = clean_env()
    if os.path.exists(py) and subprocess.run([py, "-c", check], env=env, stdout=subprocess.DEVNULL,
                                             stderr=subprocess.DEVNULL, timeout=60).returncode == 0:
        return py
    log(f"creating {os.path.relpath(venv)} with {v['requirement']} ...")
    for argv in ([sys.executable, "-m", "venv", venv],
                 [py, "-m", "pip", "install", "-q", "--disable-pip-version-check", v["requirement"]]):
        code, out, _ = run_to_end(argv, " ".join(argv[:4]), 600, stderr=subprocess.STDOUT, cwd=BENCH_DIR,
                                  env=env)
        if code != 0:
            raise BenchError(f"{' '.join(argv[:4])} ... failed (exit {code}):\n{_tail(out)}")
    return py


def git_head():
    """The work tree's commit and whether it has changes (the numbers are of what is installed,
    see the installed-vs-tree check), or None without git."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=20).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None
    return {"head": head or None, "dirty": bool(dirty)}


def clean_env():
    """The environment for the other libraries' interpreters: no PYTHONPATH/PYTHONHOME that
    could bring our rpyc in."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}


def expand_only(spec):
    names = []
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        if item in GROUPS:
            names += [m for m in MEASURES if MEASURES[m]["group"] == item]
        elif item in MEASURES:
            names.append(item)
        else:
            raise ValueError(item)
    return [m for m in MEASURES if m in names]  # canonical order


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: 1,000 idle connections, fewer calls and rounds")
    ap.add_argument("--rounds", type=int, help="exactly N rounds for every measurement (default: calls 7, idle 3, "
                    "clients 5; --quick: 2, 1, 2)")
    ap.add_argument("--only", help=f"comma-separated groups ({', '.join(GROUPS)}) and/or measurements "
                    f"({', '.join(MEASURES)})")
    ap.add_argument("--json", default=os.path.join(BENCH_DIR, "results", "aio-latest.json"),
                    help="where to write the results (default bench/results/aio-latest.json)")
    ap.add_argument("--ours-python", default=sys.executable, help="interpreter with OUR rpyc (default: this one)")
    ap.add_argument("--grpc-python", help="interpreter with grpcio (default: bench/.venv-grpc, created on demand)")
    ap.add_argument("--rpyc-async-python",
                    help="interpreter with rpyc-async 1.1.0 and without rpyc (default: bench/.venv-rpyc-async, "
                         "created on demand)")
    args = ap.parse_args()

    mode = "quick" if args.quick else "full"
    if args.rounds is not None and args.rounds < 1:
        ap.error("--rounds must be >= 1")
    try:
        names = expand_only(args.only) if args.only else list(MEASURES)
    except ValueError as e:
        ap.error(f"unknown --only item {e}; choose from {', '.join(GROUPS + tuple(MEASURES))}")
    if not names:
        ap.error("--only selected nothing")
    p = {k: dict(v) for k, v in PARAMS[mode].items()}

    handle_signals()

    def log(msg):
        print(msg, flush=True)

    started = time.monotonic()
    date = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    load_start = os.getloadavg()
    results = {}
    interps = {}
    interrupted = False
    failures = 0
    with tempfile.TemporaryDirectory(prefix="rpyc-aio-bench-") as tmpdir:
        try:
            ours = os.path.abspath(args.ours_python) if os.sep in args.ours_python else args.ours_python
            interps["ours"] = Interp("ours", ours, dict(os.environ))
            wanted = {MEASURES[m]["interp"] for m in names}
            for name, given in (("grpc", args.grpc_python), ("rpyc_async", args.rpyc_async_python)):
                if name not in wanted:
                    continue
                try:
                    py = os.path.abspath(given) if given and os.sep in given else given or ensure_venv(name, log)
                except BenchError as e:
                    log(f"{name}: cannot set up its interpreter: {e}")
                    for m in names:
                        if MEASURES[m]["interp"] == name:
                            results[m] = {"samples": [], "error": f"no {name} interpreter: {e}"}
                            failures += 1
                    continue
                interps[name] = Interp(name, py, clean_env())
            for name, it in interps.items():
                try:
                    it.info = run_client(it, "info", [], 60)
                except BenchError as e:
                    sys.exit(f"{name} interpreter {it.python} cannot run the workers:\n{e}")
                mod = {"ours": "rpyc", "grpc": "grpc", "rpyc_async": "rpyc_async"}[name]
                have = it.info.get(mod)
                log(f"{name:10s} {it.info['executable']}  python {it.info['python']}  "
                    f"{mod} {have and have['version']}  ({have and have['file']})")
                problem = None
                if have is None:
                    problem = f"cannot import {mod}"
                elif name == "ours" and not have.get("aio"):
                    problem = "has no rpyc.aio (pip install . first)"
                elif name == "rpyc_async" and it.info.get("rpyc") is not None:
                    problem = f"can import rpyc too ({it.info['rpyc']['file']}): it must not share an interpreter with it"
                if problem:
                    if name == "ours":
                        sys.exit(f"ours: {it.python} {problem}")
                    log(f"ERROR {name}: {it.python} {problem}")
                    for m in names:
                        if MEASURES[m]["interp"] == name:
                            results[m] = {"samples": [], "error": problem}
                            failures += 1
            tree_aio = os.path.join(ROOT, "python", "rpyc", "aio")
            installed = (interps["ours"].info.get("rpyc") or {}).get("aio_sha256")
            if os.path.isdir(tree_aio) and installed and installed != tree_sha256(tree_aio):
                log(f"WARNING: the installed rpyc.aio differs from {os.path.relpath(tree_aio)} in this work tree: "
                    f"the numbers are not this tree's (pip install . to measure it)")
            if load_start[0] > 0.5 * (os.cpu_count() or 1):
                log(f"WARNING: load average {load_start[0]:.1f} on {os.cpu_count()} CPUs before starting: "
                    f"other work is running, expect noisy numbers (see 'spread')")
            log(f"{date}  mode {mode}, measurements: {', '.join(names)}\n")

            for group in GROUPS:
                members = [m for m in names if MEASURES[m]["group"] == group]
                if not members:
                    continue
                n_rounds = args.rounds or DEFAULT_ROUNDS[group][mode]
                log(f"== {group}  {p[group]}  ({n_rounds} rounds)")
                for m in members:
                    results.setdefault(m, {"samples": [], "error": None})
                for r in range(n_rounds):
                    for m in members:
                        slot = results[m]
                        if slot["error"]:
                            continue
                        t0 = time.monotonic()
                        try:
                            res = measure(m, interps[MEASURES[m]["interp"]], p, tmpdir)
                        except BenchError as e:
                            slot["error"] = str(e)
                            failures += 1
                            log(f"   round {r + 1} {m:17s} ERROR: {e}")
                            continue
                        slot["samples"].append(res)
                        log(f"   round {r + 1} {m:17s} {progress_text(m, res)}   [{time.monotonic() - t0:.1f}s]")
        except KeyboardInterrupt:
            interrupted = True
            log("\ninterrupted: stopping all benchmark processes")
        finally:
            PROCS.kill_all()

    elapsed = time.monotonic() - started
    rows = summarize(results, p)
    print()
    print_table(rows)
    print()
    print("median over rounds; rpyc.aio gain = how many times better the rpyc.aio row of the same block is "
          "than this row (calls/s: rpyc.aio / this; µs, ms, KiB, threads: this / rpyc.aio).")
    print("spread = (max-min)/median over the rounds.")
    for mid in ("clients.aio", "clients.threaded"):
        busy, _ = _median(results, mid, "server_cpu_pct")
        if busy is not None and busy < 80:
            print(f"NOTE: {mid}: the server was busy {busy:.0f}% of one core: the client processes (and whatever "
                  f"else runs here) set the pace; compare the CPU per call rows.")
    print(f"measured {date} (UTC), load average {load_start[0]:.1f} at the start and {os.getloadavg()[0]:.1f} at "
          f"the end on {os.cpu_count()} CPUs; total time {elapsed:.0f}s"
          f"{' (INTERRUPTED: partial results)' if interrupted else ''}")

    meta = {
        "date": date, "git": git_head(), "mode": mode, "quick": args.quick, "rounds": args.rounds, "only": names, "params": p,
        "host": {"platform": platform.platform(), "cpus": os.cpu_count(), "loadavg_start": load_start,
                 "loadavg_end": os.getloadavg()},
        "interpreters": {n: dict(it.info, python_path=it.python) for n, it in interps.items()},
        "elapsed_s": elapsed, "interrupted": interrupted,
    }
    out = {"meta": meta, "rows": [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows],
           "raw": results}
    if args.json:
        write_json(args.json, out)
    if interrupted:
        return 130
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
