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
import sys
import time
from pathlib import Path

from rust_crate import BIN, Server, cpu_s  # (bench/rust_crate.py: same start, same /proc reading)


def start(binary, tokio):
    return Server([binary, "--port", "0"] + (["--tokio"] if tokio else []), "listening on")


def one_round(binary, tokio, calls):
    import rpyc
    server = start(binary, tokio)
    try:
        conn = rpyc.connect("127.0.0.1", server.port, config={"sync_request_timeout": 60})
        add = conn.root.add
        for _ in range(1000):
            if add(1, 2) != 3:
                raise RuntimeError("add(1, 2) != 3")
        cpu0 = cpu_s(server.pid)
        t0 = time.perf_counter()
        for _ in range(calls):
            add(1, 2)
        wall = time.perf_counter() - t0
        cpu = cpu_s(server.pid) - cpu0
        conn.close()
        return wall / calls * 1e6, cpu / calls * 1e6
    finally:
        server.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--calls", type=int, default=20000)
    ap.add_argument("--server", action="append", type=Path)
    args = ap.parse_args()
    servers = args.server or [BIN["server"]]
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
