"""The Rust crate's tokio server against its threaded server, per call (issue 15).

    python bench/rust_tokio_server.py [--rounds N] [--calls N] [--server BIN ...]

Our Python client calls `add(1, 2)` (a bound method fetched once) on
crates/rpyc/examples/server.rs, served threaded and with `--tokio`, in alternated rounds.
Per call: the client's wall time (and its ratio to the threaded server's, per round), and
the server process's CPU time (utime + stime from /proc/<pid>/stat, read before and after
the timed calls; 10 ms ticks). Each `--server` binary (default:
the release build of the example) is measured in both modes, so two builds can be
compared round by round. Medians over rounds; every process on 127.0.0.1, killed at the
end. Build: `cargo build --release -p rpyc --features tokio --example server`.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target") / "release"
TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        # (The command name may hold spaces: the fields count from its closing paren.)
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def start(binary, tokio):
    cmd = [str(binary), "--port", "0"] + (["--tokio"] if tokio else [])
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                         start_new_session=True)
    line = p.stdout.readline()
    if not line.startswith("listening on "):
        p.kill()
        raise RuntimeError(f"{cmd}: {line!r}")
    return p, int(line.rsplit(":", 1)[1])


def one_round(binary, tokio, calls):
    import rpyc
    p, port = start(binary, tokio)
    try:
        conn = rpyc.connect("127.0.0.1", port, config={"sync_request_timeout": 60})
        add = conn.root.add
        for _ in range(1000):
            if add(1, 2) != 3:
                raise RuntimeError("add(1, 2) != 3")
        cpu0 = cpu_s(p.pid)
        t0 = time.perf_counter()
        for _ in range(calls):
            add(1, 2)
        wall = time.perf_counter() - t0
        cpu = cpu_s(p.pid) - cpu0
        conn.close()
        return wall / calls * 1e6, cpu / calls * 1e6
    finally:
        p.kill()
        p.wait(5)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--calls", type=int, default=20000)
    ap.add_argument("--server", action="append", type=Path)
    args = ap.parse_args()
    servers = args.server or [TARGET / "examples" / "server"]
    rows = [(s, tokio) for s in servers for tokio in (False, True)]
    got = {r: ([], []) for r in rows}
    for i in range(args.rounds):
        # (Alternated, and in turned order every other round, against drifting load.)
        for r in rows if i % 2 == 0 else rows[::-1]:
            lat, cpu = one_round(r[0], r[1], args.calls)
            got[r][0].append(lat)
            got[r][1].append(cpu)
    print(f"load: {os.getloadavg()}, {args.rounds} rounds x {args.calls} calls")
    for (s, tokio), (lat, cpu) in got.items():
        name = f"{s} {'--tokio' if tokio else 'threaded'}"
        # (Against the threaded server of the same binary, round by round: the load drifts.)
        ratio = statistics.median(t / b for t, b in zip(lat, got[(s, False)][0]))
        print(f"{name:60} call {statistics.median(lat):6.1f} us (x{ratio:.2f} of threaded)"
              f"  server cpu {statistics.median(cpu):5.1f} us/call"
              f"  [{' '.join(f'{x:.0f}' for x in lat)}]")


if __name__ == "__main__":
    sys.exit(main())
