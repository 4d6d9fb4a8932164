#!/usr/bin/env python3
"""Side-by-side benchmark: OUR rpyc (Rust core) vs UPSTREAM rpyc 6.0.2.

    python bench/run.py                 # full run (~10 min on 2 cores)
    python bench/run.py --quick         # smoke run (~1-2 min)
    python bench/run.py --only call,floor --rounds 7
    python bench/run.py --ours-python .venv-upstream/bin/python   # control run: both columns upstream
    python bench/run.py --only floor,rust_floor     # Python floor next to the pure-Rust floor

Both packages are called ``rpyc``, so each implementation runs in its own
interpreter: OURS = --ours-python (default: the interpreter running this script),
UPSTREAM = --upstream-python (default: whatever scripts/upstream-venv.sh prints).
Every benchmark starts a fresh server process and a fresh client process
(bench/workers/server.py, bench/workers/client.py) under the implementation's
interpreter, on 127.0.0.1.  Measurements are interleaved per round
(ours, upstream, ours, upstream, ...); the report shows the median over rounds and
the ratio ours/upstream of the medians.  The pure-Rust floor (bench/rust-floor, built
with cargo on demand) is one program for both columns.  See bench/README.md.
"""
import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH_DIR)
WORKERS = os.path.join(BENCH_DIR, "workers")
SERVER_PY = os.path.join(WORKERS, "server.py")
CLIENT_PY = os.path.join(WORKERS, "client.py")
RESULT_PREFIX = "BENCH-RESULT "
IMPLS = ("ours", "upstream")
# A "shared" benchmark measures one program, not an implementation: once per round,
# under this key, and the value is shown in both columns (no ratio).
SHARED = "shared"
RUST_FLOOR_PKG = "rpyc-bench-floor"  # bench/rust-floor, a member of the cargo workspace


# =============================================================================== benchmarks
# Per benchmark: the server kind it needs (None = in-process, no server), the client
# benchmark name, parameters for the full and --quick runs, a per-invocation timeout
# (seconds) and an optional per-mode cap on rounds (for the long ones).
BENCHES = {
    "floor": dict(server="tcp", client="floor", timeout=120,
                  full=dict(n=20000, warmup=2000), quick=dict(n=4000, warmup=400)),
    # the same ping-pong with both sides polling 50 µs before blocking (as rpyc-rs reads)
    "floor_poll": dict(server="tcp", client="floor_poll", timeout=120,
                       full=dict(n=20000, warmup=2000), quick=dict(n=4000, warmup=400)),
    # the same ping-pong from a Rust program (bench/rust-floor), built with cargo on demand
    "rust_floor": dict(server=None, client=None, shared=True, timeout=120,
                       full=dict(n=20000, warmup=2000), quick=dict(n=4000, warmup=400)),
    "call": dict(server="rpyc", client="call", timeout=180,
                 full=dict(n=5000, warmup=500), quick=dict(n=1500, warmup=200)),
    "root_add": dict(server="rpyc", client="root_add", timeout=180,
                     full=dict(n=3000, warmup=300), quick=dict(n=800, warmup=100)),
    "callback": dict(server="rpyc", client="callback", timeout=180,
                     full=dict(n=2000, warmup=200), quick=dict(n=600, warmup=60)),
    "echo16": dict(server="rpyc", client="echo", timeout=300,
                   full=dict(size_mib=16, reps=2), quick=dict(size_mib=16, reps=1)),
    # upstream's SocketStream.write re-slices the remaining buffer per 64 kB chunk
    # (quadratic): one 64 MiB echo takes ~1 min there, hence the round cap.
    # the same 64 MiB echo over a raw socket: what this machine allows at all
    "echo64_floor": dict(server="tcp", client="echo_floor", timeout=300, max_rounds=dict(full=3, quick=1),
                         full=dict(size_mib=64, reps=2), quick=dict(size_mib=64, reps=1)),
    "echo64": dict(server="rpyc", client="echo", timeout=600, max_rounds=dict(full=3, quick=1),
                   full=dict(size_mib=64, reps=1), quick=dict(size_mib=64, reps=1)),
    "iterate": dict(server="rpyc", client="iterate", timeout=300,
                    full=dict(reps=2), quick=dict(reps=1)),
    "multi": dict(server="rpyc", client="multi", timeout=300,
                  full=dict(clients=8, n=2000, warmup=100), quick=dict(clients=4, n=500, warmup=50)),
    # what connect+close costs with no RPyC at all: a thread-per-connection server, a TCP
    # connect, two 16-byte round trips (hello+GETROOT, then CLOSE) and a close
    "connect_floor": dict(server="tcp", client="connect_floor", timeout=300,
                          full=dict(n=200, warmup=10), quick=dict(n=50, warmup=5)),
    "connect": dict(server="rpyc", client="connect", timeout=300,
                    full=dict(n=200, warmup=10), quick=dict(n=50, warmup=5)),
    "brine": dict(server=None, client="brine", timeout=300,
                  full=dict(reps=10, warmup=2), quick=dict(reps=3, warmup=1)),
    "memory": dict(server="rpyc", client="memory", timeout=300, max_rounds=dict(full=3, quick=2),
                   full=dict(n=1000, warmup=5, settle=1.0), quick=dict(n=200, warmup=5, settle=0.5)),
}
DEFAULT_ROUNDS = {"full": 5, "quick": 2}


def rows_for(params):
    """The table rows: (bench, metric key, label, unit, better, target).

    target = (applies_to, op, value): applies_to "ratio" compares ours/upstream of the
    medians, "ours" compares OUR median value itself (used for the ×floor row).
    """
    m = params["multi"]
    mem = params["memory"]
    return [
        ("floor", "us_per_op", "floor: raw TCP ping-pong 16 B", "µs/rt", "lower", None),
        ("floor_poll", "us_per_op", "floor: the same, polling 50 µs first", "µs/rt", "lower", None),
        ("rust_floor", "us_per_op", "floor (pure Rust): TCP ping-pong 16 B", "µs/rt", "lower", None),
        ("call", "us_per_op", "small call add(1,2), cached method", "µs/call", "lower", ("ratio", "<=", 0.25)),
        ("call", "cpu_us_per_op", "  small call CPU, client+server", "µs/call", "lower", None),
        ("call/floor", "x_floor", "  small call ÷ floor (same interp.)", "× floor", "lower", ("ours", "<=", 1.3)),
        ("root_add", "us_per_op", "conn.root.add(1,2) incl. lookup", "µs/call", "lower", ("ratio", "<=", 0.2)),
        ("callback", "us_per_op", "callback call_me(fn,x) -> fn(x)", "µs/call", "lower", ("ratio", "<=", 0.25)),
        ("echo16", "mib_per_s", "echo 16 MiB bytes", "MiB/s", "higher", None),
        ("echo64_floor", "mib_per_s", "floor: raw TCP echo 64 MiB", "MiB/s", "higher", None),
        ("echo64", "mib_per_s", "echo 64 MiB bytes", "MiB/s", "higher", ("ratio", ">=", 20)),
        ("iterate", "ms_per_op", "iterate remote list of 10k ints", "ms/list", "lower", ("ratio", "<=", 0.1)),
        ("multi", "calls_per_s", f"{m['clients']} clients x {m['n']} calls, ThreadedSrv",
         "calls/s", "higher", ("ratio", ">=", 3)),
        ("connect_floor", "us_per_op", "floor: TCP connect + 2 ping-pongs + close", "µs/op", "lower", None),
        ("connect", "us_per_op", "connect + conn.root + close", "µs/op", "lower", ("ratio", "<=", 0.3)),
        ("brine", "dump_mib_per_s", "brine.dump ~1 MiB mixed", "MiB/s", "higher", None),
        ("brine", "load_mib_per_s", "brine.load ~1 MiB mixed", "MiB/s", "higher", None),
        ("brine", "marshal_load_mib_per_s", "  floor: marshal.loads, same values", "MiB/s", "higher", None),
        ("brine", "roundtrip_mib_per_s", "brine dump+load ~1 MiB mixed", "MiB/s", "higher", ("ratio", ">=", 20)),
        ("memory", "kib_per_conn", f"server RSS per idle conn ({mem['n']})", "KiB/conn", "lower", None),
    ]


# =============================================================================== processes
class BenchError(Exception):
    pass


class Procs:
    """Every process we start is registered here and killed on exit, error or Ctrl-C."""

    def __init__(self):
        self._procs = []
        self._lock = threading.Lock()

    def popen(self, argv, **kw):
        kw.setdefault("cwd", WORKERS)
        kw.setdefault("start_new_session", True)  # we, not the tty, decide when they die
        p = subprocess.Popen(argv, **kw)
        with self._lock:
            self._procs.append(p)
        return p

    @staticmethod
    def stop(p, grace=3.0):
        try:
            if p.stdin:
                p.stdin.close()
        except Exception:
            pass
        if p.poll() is None:
            try:
                p.terminate()
                p.wait(grace)
            except subprocess.TimeoutExpired:
                p.kill()
                try:
                    p.wait(grace)
                except subprocess.TimeoutExpired:
                    pass
            except ProcessLookupError:
                pass
        for f in (p.stdout, p.stderr):
            try:
                if f:
                    f.close()
            except Exception:
                pass

    def release(self, p):
        self.stop(p)
        with self._lock:
            if p in self._procs:
                self._procs.remove(p)

    def kill_all(self):
        with self._lock:
            procs, self._procs = self._procs, []
        for p in procs:
            if p.poll() is None:
                try:
                    p.kill()
                except ProcessLookupError:
                    pass
        for p in procs:
            self.stop(p, grace=2.0)


PROCS = Procs()


def _tail(text, n=12):
    lines = (text or "").strip().splitlines()
    return "\n".join("      | " + ln for ln in lines[-n:])


class Impl:
    def __init__(self, name, python, env):
        self.name = name
        self.python = python
        self.env = env
        self.info = {}


class Server:
    """A fresh server process of one kind (``script --kind KIND``) under impl's interpreter;
    it prints READY <port> <pid>."""

    script = SERVER_PY

    def __init__(self, impl, kind, tmpdir):
        self.impl = impl
        self.kind = kind
        self.out_path = os.path.join(tmpdir, f"server-{impl.name}-{kind}.out")
        self.err_path = os.path.join(tmpdir, f"server-{impl.name}-{kind}.err")
        self.proc = None
        self.port = None
        self.pid = None

    def __enter__(self):
        out = open(self.out_path, "w")
        err = open(self.err_path, "w")
        try:
            self.proc = PROCS.popen(
                [self.impl.python, self.script, "--kind", self.kind],
                stdin=subprocess.PIPE, stdout=out, stderr=err, env=self.impl.env)
        finally:
            out.close()
            err.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with open(self.out_path) as f:
                for line in f:
                    if line.startswith("READY "):
                        _, port, pid = line.split()
                        self.port, self.pid = int(port), int(pid)
                        return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.01)
        self.close()
        raise BenchError(f"{self.impl.name} {self.kind} server did not start:\n{_tail(self.stderr())}")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stderr(self):
        try:
            with open(self.err_path) as f:
                return f.read()
        except OSError:
            return ""

    def check_alive(self, what="the benchmark"):
        if not self.alive():
            raise BenchError(f"{self.kind} server exited during {what} (exit {self.proc.returncode}):\n"
                             f"{_tail(self.stderr())}")

    def failure(self, e):
        """The BenchError e, or, if this server died, one that says so (with its stderr)."""
        if self.alive():
            return e
        return BenchError(f"{e}\n    server died (exit {self.proc.returncode}):\n{_tail(self.stderr())}")

    def close(self):
        if self.proc is not None:
            PROCS.release(self.proc)

    def __exit__(self, *exc):
        self.close()


def _parse_result(stdout):
    for line in reversed((stdout or "").splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX):])
    return None


def run_client(impl, bench, args, timeout):
    argv = [impl.python, CLIENT_PY, bench, "--max-seconds", str(timeout + 30)] + args
    return run_program(argv, f"client '{bench}'", timeout, impl.env)


def run_to_end(argv, what, timeout, stderr=subprocess.PIPE, **kw):
    """Run a process to its end (BenchError after `timeout` seconds): (exit status, stdout,
    stderr)."""
    p = PROCS.popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr, text=True, **kw)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        PROCS.release(p)
        raise BenchError(f"{what} timed out after {timeout}s")
    PROCS.release(p)
    return p.returncode, out, err


def run_program(argv, what, timeout, env=None):
    """Run one measuring process to its end; its BENCH-RESULT line, parsed."""
    code, out, err = run_to_end(argv, what, timeout, env=env)
    res = _parse_result(out)
    if code != 0 or res is None:
        raise BenchError(f"{what} failed (exit {code}):\n{_tail(err or out)}")
    return res


def build_rust_floor(timeout=900):
    """Build bench/rust-floor (release, locked deps): (executable, None), or (None, why not)
    when there is no cargo.  A failing build raises BenchError."""
    cargo = shutil.which("cargo")
    if cargo is None:
        return None, "cargo not found"
    argv = [cargo, "build", "--release", "--locked", "-p", RUST_FLOOR_PKG,
            "--message-format=json-render-diagnostics"]
    code, out, err = run_to_end(argv, f"cargo build -p {RUST_FLOOR_PKG}", timeout, cwd=ROOT)
    if code != 0:
        raise BenchError(f"cargo build -p {RUST_FLOOR_PKG} failed (exit {code}):\n{_tail(err)}")
    for line in out.splitlines():
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if (msg.get("reason") == "compiler-artifact" and msg.get("executable")
                and msg.get("target", {}).get("name") == RUST_FLOOR_PKG):
            return msg["executable"], None
    raise BenchError(f"cargo build -p {RUST_FLOOR_PKG} named no executable:\n{_tail(err)}")


def run_multi(impl, port, clients, n, warmup, timeout, tmpdir):
    """K client processes; all connect and warm up, then start together on 'GO'."""
    procs, errs = [], []
    watchdog = None
    try:
        for i in range(clients):
            ep = os.path.join(tmpdir, f"multi-{impl.name}-{i}.err")
            errs.append(ep)
            with open(ep, "w") as ef:
                procs.append(PROCS.popen(
                    [impl.python, CLIENT_PY, "multi", "--port", str(port), "--n", str(n),
                     "--warmup", str(warmup), "--max-seconds", str(timeout + 30)],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=ef,
                    env=impl.env, text=True))
        timed_out = threading.Event()

        def _kill():
            timed_out.set()
            for p in procs:
                if p.poll() is None:
                    p.kill()

        watchdog = threading.Timer(timeout, _kill)
        watchdog.daemon = True
        watchdog.start()

        def _err(i):
            with open(errs[i]) as f:
                return f.read()

        for i, p in enumerate(procs):
            line = p.stdout.readline()
            if line.strip() != "READY":
                raise BenchError(f"multi client {i} not ready{' (timeout)' if timed_out.is_set() else ''}:"
                                 f"\n{_tail(line + _err(i))}")
        for p in procs:  # release them as close together as we can
            p.stdin.write("GO\n")
            p.stdin.flush()
        results = []
        for i, p in enumerate(procs):
            out = p.stdout.read()
            p.wait()
            res = _parse_result(out)
            if p.returncode != 0 or res is None:
                raise BenchError(f"multi client {i} failed (exit {p.returncode})"
                                 f"{' (timeout)' if timed_out.is_set() else ''}:\n{_tail(out + _err(i))}")
            results.append(res)
    finally:
        if watchdog:
            watchdog.cancel()
        for p in procs:
            PROCS.release(p)
    wall = max(r["end"] for r in results) - min(r["start"] for r in results)
    total = sum(r["n"] for r in results)
    return {"clients": clients, "n_per_client": n, "total_calls": total, "wall_s": wall,
            "calls_per_s": total / wall,
            "client_us_per_op": [r["us_per_op"] for r in results]}


def measure(name, spec, params, impl, tmpdir):
    """One measurement of benchmark `name` under `impl` (fresh processes)."""
    timeout = spec["timeout"]
    p = params
    if spec.get("shared"):  # impl is the executable (rust_floor)
        return run_program([impl, "--n", str(p["n"]), "--warmup", str(p["warmup"]),
                            "--max-seconds", str(timeout + 30)], name, timeout)
    if spec["server"] is None:
        return run_client(impl, spec["client"], ["--reps", str(p["reps"]), "--warmup", str(p["warmup"])], timeout)
    with Server(impl, spec["server"], tmpdir) as srv:
        port = ["--port", str(srv.port)]
        try:
            if name == "multi":
                res = run_multi(impl, srv.port, p["clients"], p["n"], p["warmup"], timeout, tmpdir)
            elif name == "call":  # (the client reads the server's CPU time as well)
                res = run_client(impl, "call", port + [
                    "--n", str(p["n"]), "--warmup", str(p["warmup"]), "--server-pid", str(srv.pid)], timeout)
            elif name == "memory":
                res = run_client(impl, "memory", port + [
                    "--n", str(p["n"]), "--warmup", str(p["warmup"]), "--settle", str(p["settle"]),
                    "--server-pid", str(srv.pid)], timeout)
            elif spec["client"] in ("echo", "echo_floor"):
                res = run_client(impl, spec["client"], port + ["--size-mib", str(p["size_mib"]), "--reps", str(p["reps"])],
                                 timeout)
            elif spec["client"] == "iterate":
                res = run_client(impl, "iterate", port + ["--reps", str(p["reps"])], timeout)
            else:
                res = run_client(impl, spec["client"], port + ["--n", str(p["n"]), "--warmup", str(p["warmup"])],
                                 timeout)
        except BenchError as e:
            raise srv.failure(e)
        srv.check_alive()
    return res


# =============================================================================== reporting
def fmt(v):
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def fmt_target(target, better):
    if target is None:
        return "-"
    applies, op, val = target
    sym = "≤" if op == "<=" else "≥"
    if applies == "ours":
        return f"ours {sym}{val:g}×"
    if better == "lower" and val < 1:
        return f"{sym}{val:g} ({1 / val:.3g}x faster)"
    return f"{sym}{val:g}"


def summarize(results, params):
    rows = []
    for bench, key, label, unit, better, target in rows_for(params):
        shared = BENCHES.get(bench, {}).get("shared", False)
        med = {}
        spread = {}
        err = {}
        for impl in IMPLS:
            if bench == "call/floor":
                c = results.get("call", {}).get(impl, {})
                f = results.get("floor", {}).get(impl, {})
                cs = [s["us_per_op"] for s in c.get("samples", [])]
                fs = [s["us_per_op"] for s in f.get("samples", [])]
                med[impl] = statistics.median(cs) / statistics.median(fs) if cs and fs else None
                spread[impl] = None
                continue
            r = results.get(bench, {}).get(SHARED if shared else impl)
            if r is None:
                med[impl] = None
                spread[impl] = None
                continue
            if r.get("skipped"):
                med[impl] = f"n/a: {r['skipped']}"
                spread[impl] = None
                continue
            vals = [s[key] for s in r["samples"]]
            if r.get("error"):
                err[impl] = r["error"]
            med[impl] = statistics.median(vals) if vals else None
            spread[impl] = ((max(vals) - min(vals)) / med[impl]
                            if vals and len(vals) > 1 and med[impl] else None)
        if bench != "call/floor" and bench not in results:
            continue
        if bench == "call/floor" and med["ours"] is None and med["upstream"] is None:
            continue
        ratio = (med["ours"] / med["upstream"]) if not shared and med["ours"] is not None and med["upstream"] \
            else None
        ok = None
        if target is not None:
            applies, op, val = target
            x = ratio if applies == "ratio" else med["ours"]
            if x is not None:
                ok = x <= val if op == "<=" else x >= val
        spreads = [s for s in spread.values() if s is not None]
        rows.append({
            "bench": bench, "metric": key, "label": label.strip(), "unit": unit, "better": better,
            "ours": med["ours"], "upstream": med["upstream"], "ratio": ratio,
            "target": None if target is None else {"applies_to": target[0], "op": target[1], "value": target[2]},
            "target_text": fmt_target(target, better), "meets_target": ok,
            "spread": max(spreads) if spreads else None,
            "errors": err or None, "_label": label,
        })
    return rows


def print_table(rows):
    head = ["benchmark", "unit", "ours (median)", "upstream (median)", "ours/upstream", "target", "ok", "spread"]
    body = []
    for r in rows:
        ours = "ERR" if r["ours"] is None and r["errors"] and "ours" in r["errors"] else fmt(r["ours"])
        ups = "ERR" if r["upstream"] is None and r["errors"] and "upstream" in r["errors"] else fmt(r["upstream"])
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.3f}"
        ok = {True: "yes", False: "NO", None: "-"}[r["meets_target"]]
        spread = "-" if r["spread"] is None else f"{r['spread'] * 100:.0f}%"
        body.append([r["_label"], r["unit"], ours, ups, ratio, r["target_text"], ok, spread])
    print_columns(head, body, right={2, 3, 4, 7})


def print_columns(head, body, right):
    """A table: head, a rule, then body's rows (lists of cells; a str is a line of its own),
    the columns in `right` right-aligned."""
    rows = [head] + [b for b in body if not isinstance(b, str)]
    widths = [max(len(str(x[i])) for x in rows) for i in range(len(head))]

    def line(cells):
        return " | ".join(str(c).rjust(w) if i in right else str(c).ljust(w)
                          for i, (c, w) in enumerate(zip(cells, widths)))

    print(line(head))
    print("-+-".join("-" * w for w in widths))
    for b in body:
        print(b if isinstance(b, str) else line(b))


def plot(rows, path, meta):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"plot: matplotlib is not installed for {sys.executable}; skipping {path}")
        return
    data = []
    for r in rows:
        if r["ratio"] is None or r["bench"] == "call/floor" or r["ratio"] <= 0:
            continue
        speedup = 1 / r["ratio"] if r["better"] == "lower" else r["ratio"]
        goal = None
        if r["target"] and r["target"]["applies_to"] == "ratio":
            v = r["target"]["value"]
            goal = 1 / v if r["better"] == "lower" else v
        data.append((r["label"], speedup, goal))
    if not data:
        print("plot: nothing to plot")
        return
    data.reverse()
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(data) + 1.6))
    ys = range(len(data))
    # floors measure the machine, not an implementation: grey whatever their noise says
    colors = ["tab:grey" if lbl.lstrip().startswith("floor") or 0.95 <= s <= 1.05
              else "tab:green" if s > 1 else "tab:red" for lbl, s, _ in data]
    ax.barh(list(ys), [s for _, s, _ in data], color=colors)
    for y, (_, s, g) in zip(ys, data):
        ax.text(s, y, f" {s:.2f}x", va="center", fontsize=8)
        if g:
            ax.plot([g], [y], marker="|", color="black", markersize=14, mew=2)
    ax.set_yticks(list(ys))
    ax.set_yticklabels([lbl for lbl, _, _ in data], fontsize=8)
    ax.set_xscale("log")
    ax.axvline(1, color="grey", lw=1)
    ax.set_xlabel("speed-up of ours over upstream (>1 = ours better; | = target)")
    ax.set_title(f"rpyc-rs vs rpyc {meta['upstream'].get('rpyc_version')}  "
                 f"({meta['rounds']} rounds{', quick' if meta['quick'] else ''})", fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"plot written to {path}")


def progress_text(name, res):
    if name == "multi":
        return f"{res['calls_per_s']:,.0f} calls/s"
    if name == "brine":
        return (f"dump {res['dump_ms']:.1f} ms, load {res['load_ms']:.1f} ms "
                f"({res['roundtrip_mib_per_s']:.1f} MiB/s, {res['size']} B)")
    if name == "memory":
        return f"{res['kib_per_conn']:.1f} KiB/conn (RSS {res['rss_before'] >> 20} -> {res['rss_after'] >> 20} MiB)"
    if name.startswith("echo"):
        return f"{res['mib_per_s']:.1f} MiB/s ({res['s_per_op']:.2f} s/echo)"
    if name == "iterate":
        return f"{res['ms_per_op']:.1f} ms/list ({res['us_per_item']:.1f} µs/item)"
    return f"{res['us_per_op']:.1f} µs/op"


# =============================================================================== main
def find_upstream_python():
    script = os.path.join(ROOT, "scripts", "upstream-venv.sh")
    try:
        out = subprocess.run(["bash", script], stdout=subprocess.PIPE, text=True, check=True, timeout=600).stdout
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as e:
        sys.exit(f"could not set up the upstream venv with {script}: {e}\n"
                 f"(pass --upstream-python PATH instead)")
    lines = [ln.strip() for ln in out.splitlines() if ln.strip()]
    if not lines:
        sys.exit(f"{script} printed no python path")
    return lines[-1]


def _on_signal(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def handle_signals():
    """Ctrl-C, SIGTERM and SIGHUP raise KeyboardInterrupt (the caller kills its processes)."""
    # explicit: a shell may start us with SIGINT ignored (background job)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)


def write_json(path, out):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
    print(f"results written to {path}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fast smoke run (~1-2 min)")
    ap.add_argument("--rounds", type=int, help="rounds for every benchmark (default 5, --quick 2; without it echo64 "
                         "and memory are capped at 3 rounds, 1-2 with --quick)")
    ap.add_argument("--only", help=f"comma-separated subset of: {', '.join(BENCHES)}")
    ap.add_argument("--json", default=os.path.join(BENCH_DIR, "results", "latest.json"),
                    help="where to write the results (default bench/results/latest.json)")
    ap.add_argument("--plot", help="write a PNG chart here (needs matplotlib in this interpreter)")
    ap.add_argument("--ours-python", default=sys.executable,
                    help="interpreter with OUR rpyc installed (default: this one)")
    ap.add_argument("--upstream-python",
                    help="interpreter with rpyc==6.0.2 (default: output of scripts/upstream-venv.sh)")
    args = ap.parse_args()

    mode = "quick" if args.quick else "full"
    rounds = args.rounds or DEFAULT_ROUNDS[mode]
    if rounds < 1:
        ap.error("--rounds must be >= 1")
    names = list(BENCHES)
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        bad = [n for n in names if n not in BENCHES]
        if bad:
            ap.error(f"unknown benchmark(s) {bad}; choose from {', '.join(BENCHES)}")
        names = [n for n in BENCHES if n in names]  # canonical order
    params = {n: dict(BENCHES[n][mode]) for n in BENCHES}

    handle_signals()

    upstream_python = args.upstream_python or find_upstream_python()
    if os.sep in upstream_python:  # the workers run in bench/workers: a relative path must not break
        upstream_python = os.path.abspath(upstream_python)
    base_env = dict(os.environ)
    # The upstream interpreter must never see our package through PYTHONPATH.
    up_env = {k: v for k, v in base_env.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    impls = {"ours": Impl("ours", os.path.abspath(args.ours_python) if os.sep in args.ours_python
                          else args.ours_python, base_env),
             "upstream": Impl("upstream", upstream_python, up_env)}

    started = time.monotonic()
    results = {}
    rust_floor_meta = {}
    interrupted = False
    failures = 0
    with tempfile.TemporaryDirectory(prefix="rpyc-bench-") as tmpdir:
        try:
            for impl in impls.values():
                try:
                    impl.info = run_client(impl, "info", [], 60)
                except BenchError as e:
                    sys.exit(f"{impl.name} interpreter {impl.python} cannot run the workers:\n{e}")
                print(f"{impl.name:9s} {impl.info['executable']}  python {impl.info['python']}  "
                      f"rpyc {impl.info['rpyc_version']}  ({impl.info['rpyc_file']})")
            if impls["upstream"].info.get("rpyc_version") != "6.0.2":
                print(f"WARNING: upstream interpreter has rpyc {impls['upstream'].info.get('rpyc_version')},"
                      f" not 6.0.2")
            if impls["ours"].info.get("rpyc_file") == impls["upstream"].info.get("rpyc_file"):
                print("NOTE: both columns import the SAME rpyc -> control run, ratios should be ~1.0")
            load = os.getloadavg()[0]
            if load > 0.5 * (os.cpu_count() or 1):
                print(f"WARNING: load average {load:.1f} on {os.cpu_count()} CPUs before starting: "
                      f"other work is running, expect noisy numbers (see 'spread')")
            print(f"mode {mode}, {rounds} rounds, benchmarks: {', '.join(names)}\n", flush=True)

            for name in names:
                spec = BENCHES[name]
                p = params[name]
                n_rounds = rounds if args.rounds else min(rounds, spec.get("max_rounds", {}).get(mode, rounds))
                print(f"== {name}  {p}  ({n_rounds} rounds)", flush=True)
                run_as = {impl: impls[impl] for impl in IMPLS}
                if spec.get("shared"):
                    slot = {"samples": [], "error": None}
                    try:
                        t0 = time.monotonic()
                        exe, why = build_rust_floor()
                    except BenchError as e:
                        exe, slot["error"] = None, str(e)
                        failures += 1
                        print(f"   build ERROR: {e}", flush=True)
                    else:
                        if why:
                            slot["skipped"] = why
                            print(f"   skipped: {why}", flush=True)
                        else:
                            print(f"   built {os.path.relpath(exe, ROOT)}   [{time.monotonic() - t0:.1f}s]",
                                  flush=True)
                    rust_floor_meta.update(executable=exe, skipped=slot.get("skipped"))
                    results[name] = {SHARED: slot}
                    run_as = {SHARED: exe}
                else:
                    results[name] = {impl: {"samples": [], "error": None} for impl in IMPLS}
                for r in range(n_rounds):
                    for iname in run_as:
                        slot = results[name][iname]
                        if slot["error"] or slot.get("skipped"):
                            continue
                        t0 = time.monotonic()
                        try:
                            res = measure(name, spec, p, run_as[iname], tmpdir)
                        except BenchError as e:
                            slot["error"] = str(e)
                            failures += 1
                            print(f"   round {r + 1} {iname:8s} ERROR: {e}", flush=True)
                            continue
                        slot["samples"].append(res)
                        print(f"   round {r + 1} {iname:8s} {progress_text(name, res)}"
                              f"   [{time.monotonic() - t0:.1f}s]", flush=True)
        except KeyboardInterrupt:
            interrupted = True
            print("\ninterrupted: stopping all benchmark processes", flush=True)
        finally:
            PROCS.kill_all()

    elapsed = time.monotonic() - started
    rows = summarize(results, params)
    # brine sanity: both encoders must produce the same number of bytes (wire compatibility)
    notes = []
    bs = results.get("brine", {})
    sizes = {i: bs[i]["samples"][0]["size"] for i in IMPLS if bs.get(i, {}).get("samples")}
    if len(set(sizes.values())) > 1:
        notes.append(f"brine encoded sizes differ: {sizes}")

    print()
    print_table(rows)
    print()
    print("ratio = ours/upstream of the medians (times: lower is better; MiB/s, calls/s: higher is better).")
    print("spread = (max-min)/median over the rounds, worst of the two columns.")
    if rust_floor_meta.get("skipped"):
        notes.append(f"floor (pure Rust) not measured: {rust_floor_meta['skipped']} "
                     f"(it is built from bench/rust-floor with cargo)")
    for n in notes:
        print("NOTE:", n)
    print(f"total time {elapsed:.0f}s{' (INTERRUPTED: partial results)' if interrupted else ''}")

    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "mode": mode, "quick": args.quick, "rounds": rounds, "only": names,
        "params": {n: params[n] for n in names},
        "host": {"platform": platform.platform(), "cpus": os.cpu_count(), "loadavg_end": os.getloadavg()},
        "ours": dict(impls["ours"].info, python_path=impls["ours"].python),
        "upstream": dict(impls["upstream"].info, python_path=impls["upstream"].python),
        "rust_floor": rust_floor_meta or None,
        "elapsed_s": elapsed, "interrupted": interrupted, "notes": notes,
    }
    out = {"meta": meta,
           "rows": [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows],
           "raw": results}
    if args.json:
        write_json(args.json, out)
    if args.plot and rows:
        plot(rows, args.plot, meta)
    if interrupted:
        return 130
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
