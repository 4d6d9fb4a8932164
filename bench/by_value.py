#!/usr/bin/env python3
"""Data by value (docs/by-value.md): ours vs upstream rpyc 6.0.2, side by side in one run.

    python bench/by_value.py --upstream-python /path/to/python-with-rpyc-6.0.2-and-numpy
    python bench/by_value.py --quick ...

Each implementation runs in its own interpreter (both are imported as ``rpyc``): for every
round a fresh server and a fresh client process on 127.0.0.1 (ephemeral port), rounds
interleaved ours/upstream. The floors (raw socket echoes, a local brine decode) run in the
client process of each round, so they see the same machine state. Rows:

- ``array s->c``: an 8 MiB float64 array from the server. Ours: ``numpy.asarray(proxy)``
  (``HANDLE_OBTAIN``, by value, no pickle). Upstream: ``rpyc.classic.obtain(proxy)`` with
  ``allow_pickle`` on both sides (the only way upstream has).
- ``array c->s``: the same array to the server, which ends up with a local copy. Ours:
  ``root.take(rpyc.by_value(arr))``. Upstream: ``root.take(arr)``, the server calling
  ``obtain`` on the proxy it receives (pickle back over the connection).
- ``echo floor``: raw TCP echo of the same 8 MiB (and 16 MiB) bytes, in the client's
  interpreter (the target is ≥ 50 % of it).
- ``bytes echo 16 MiB``: ``root.echo(payload)``.
- ``150k dicts``: ``[{"id": i, "name": ..., "score": ...}, ...]`` of 150,000 dicts. Ours: a
  ``@rpyc.returns_by_value`` method. Upstream: iterating the list proxy and copying each
  dict (measured on 3,000 dicts and scaled: 150,000 take minutes), and ``obtain`` (pickle).
  Floor: decoding the same records locally from brine bytes
  (``[dict(p) for p in brine.load(data)]``).
Output: a table (median of the rounds) and JSON (``--json``).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ARRAY_MIB = 8
ECHO_MIB = 16
N_DICTS = 150_000
N_ITER_UPSTREAM = 3_000

SERVER = r"""
import sys
import rpyc
from rpyc.utils.server import OneShotServer
from rpyc.utils.classic import obtain
import numpy

OURS = hasattr(rpyc, "by_value")
returns_by_value = getattr(rpyc, "returns_by_value", lambda f: f)

RECORDS = {}

class Svc(rpyc.Service):
    def exposed_array(self, mib):
        return numpy.arange(mib * 131072, dtype=numpy.float64)

    def exposed_take(self, arr):
        local = arr if isinstance(arr, numpy.ndarray) and not isinstance(arr, rpyc.BaseNetref) else obtain(arr)
        return int(local.nbytes)

    def exposed_echo(self, data):
        return data

    def exposed_records(self, n):
        # (built once: every column then measures sending the same existing list)
        if n not in RECORDS:
            RECORDS[n] = [{"id": i, "name": "item%d" % i, "score": i * 0.5} for i in range(n)]
        return RECORDS[n]

    @returns_by_value
    def exposed_records_by_value(self, n):
        return self.exposed_records(n)

srv = OneShotServer(Svc, port=0, hostname="127.0.0.1",
                    protocol_config={"allow_pickle": True, "allow_public_attrs": True})
print("READY %d" % srv.port, flush=True)
srv.start()
"""

CLIENT = r"""
import json, os, socket, sys, threading, time
import numpy
import rpyc
from rpyc.core import brine
from rpyc.utils.classic import obtain

OURS = hasattr(rpyc, "by_value")
port, array_mib, echo_mib, n_dicts, n_iter = (int(a) for a in sys.argv[1:6])
out = {}

def best(fn, reps):
    times = []
    for _ in range(reps):
        t = time.perf_counter(); fn(); times.append(time.perf_counter() - t)
    return min(times)

# -- floors -------------------------------------------------------------------------------
def raw_echo_floor(size):
    lsock = socket.socket(); lsock.bind(("127.0.0.1", 0)); lsock.listen(1)
    def serve():
        c, _ = lsock.accept()
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            buf = bytearray(size); view = memoryview(buf); got = 0
            while got < size:
                n = c.recv_into(view[got:])
                if not n:
                    c.close(); return
                got += n
            c.sendall(buf)
    t = threading.Thread(target=serve, daemon=True); t.start()
    s = socket.create_connection(("127.0.0.1", lsock.getsockname()[1]))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    payload = os.urandom(size)
    def once():
        s.sendall(payload)
        buf = bytearray(size); view = memoryview(buf); got = 0
        while got < size:
            got += s.recv_into(view[got:])
    once()
    secs = best(once, 3)
    s.close(); t.join(5); lsock.close()
    return secs

out["floor_echo_array"] = raw_echo_floor(array_mib << 20)
out["floor_echo_bytes"] = raw_echo_floor(echo_mib << 20)
records = [{"id": i, "name": "item%d" % i, "score": i * 0.5} for i in range(n_dicts)]
data = brine.dump(tuple(tuple(r.items()) for r in records))
out["floor_dicts"] = best(lambda: [dict(p) for p in brine.load(data)], 3)

# -- rpyc -----------------------------------------------------------------------------------
conn = rpyc.connect("127.0.0.1", port, config={"allow_pickle": True, "allow_public_attrs": True,
                                                "sync_request_timeout": 600})
conn.ping(); conn.ping()
root = conn.root
expected = numpy.arange(array_mib * 131072, dtype=numpy.float64)

proxy = root.array(array_mib)
fetch = (lambda: numpy.asarray(proxy)) if OURS else (lambda: obtain(proxy))
assert (fetch() == expected).all()
out["array_s2c"] = best(fetch, 3)

send = (lambda: root.take(rpyc.by_value(expected))) if OURS else (lambda: root.take(expected))
assert send() == expected.nbytes
out["array_c2s"] = best(send, 3)

payload = (os.urandom(1 << 20)) * echo_mib
assert root.echo(payload) == payload
out["echo_bytes"] = best(lambda: root.echo(payload), 3)

if OURS:
    got = root.records_by_value(n_dicts)
    assert got == records
    out["dicts_by_value"] = best(lambda: root.records_by_value(n_dicts), 3)
else:
    small = root.records(n_iter)
    def iterate():
        return [dict(r) for r in small]
    assert iterate() == records[:n_iter]
    out["dicts_netref_iter"] = best(iterate, 1) * n_dicts / n_iter
    big = root.records(n_dicts)
    assert obtain(big) == records
    out["dicts_obtain"] = best(lambda: obtain(big), 2)
conn.close()
print("RESULT " + json.dumps(out))
"""


def run_round(python, quick):
    env = dict(os.environ)
    srv = subprocess.Popen([python, "-u", "-c", SERVER], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           stdin=subprocess.DEVNULL, env=env)
    try:
        line = srv.stdout.readline().decode()
        if not line.startswith("READY "):
            raise RuntimeError("server did not start: " + srv.stderr.read().decode()[-2000:])
        port = int(line.split()[1])
        n_iter = 1_000 if quick else N_ITER_UPSTREAM
        proc = subprocess.run([python, "-c", CLIENT, str(port), str(ARRAY_MIB), str(ECHO_MIB), str(N_DICTS),
                               str(n_iter)], capture_output=True, text=True, timeout=900, env=env)
        if proc.returncode != 0:
            raise RuntimeError("client failed: " + proc.stderr[-3000:])
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1]
        return json.loads(line[len("RESULT "):])
    finally:
        srv.kill()
        srv.wait(10)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ours-python", default=sys.executable)
    ap.add_argument("--upstream-python", required=True,
                    help="interpreter with rpyc 6.0.2 and numpy")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", default=os.path.join(HERE, "results", "by_value.json"))
    args = ap.parse_args()
    rounds = 1 if args.quick else args.rounds
    res = {"ours": [], "upstream": []}
    for r in range(rounds):
        for impl, py in (("ours", args.ours_python), ("upstream", args.upstream_python)):
            print("round %d/%d: %s..." % (r + 1, rounds, impl), file=sys.stderr, flush=True)
            res[impl].append(run_round(py, args.quick))

    def med(impl, key):
        vals = [x[key] for x in res[impl] if key in x]
        return statistics.median(vals) if vals else None

    mib_a, mib_e = ARRAY_MIB, ECHO_MIB
    rows = []

    def rate(secs, mib):
        return mib / secs

    fa_o, fa_u = med("ours", "floor_echo_array"), med("upstream", "floor_echo_array")
    rows.append(("echo floor %d MiB (raw TCP)" % mib_a, "%.0f MiB/s" % rate(fa_o, mib_a),
                 "%.0f MiB/s" % rate(fa_u, mib_a), ""))
    for key, label in (("array_s2c", "array %d MiB server->client" % mib_a),
                       ("array_c2s", "array %d MiB client->server" % mib_a)):
        o, u = med("ours", key), med("upstream", key)
        rows.append((label, "%.0f MiB/s (%.0f%% of floor)" % (rate(o, mib_a), 100 * fa_o / o),
                     "%.0f MiB/s (%.0f%% of floor)" % (rate(u, mib_a), 100 * fa_u / u),
                     "%.1fx" % (u / o)))
    fe_o, fe_u = med("ours", "floor_echo_bytes"), med("upstream", "floor_echo_bytes")
    rows.append(("echo floor %d MiB (raw TCP)" % mib_e, "%.0f MiB/s" % rate(fe_o, mib_e),
                 "%.0f MiB/s" % rate(fe_u, mib_e), ""))
    o, u = med("ours", "echo_bytes"), med("upstream", "echo_bytes")
    rows.append(("bytes echo %d MiB" % mib_e, "%.0f MiB/s (%.0f%% of floor)" % (rate(o, mib_e), 100 * fe_o / o),
                 "%.0f MiB/s (%.0f%% of floor)" % (rate(u, mib_e), 100 * fe_u / u), "%.1fx" % (u / o)))
    fd = med("ours", "floor_dicts")
    rows.append(("150k dicts: local brine decode (floor)", "%.0f ms" % (fd * 1e3),
                 "%.0f ms" % (med("upstream", "floor_dicts") * 1e3), ""))
    bv = med("ours", "dicts_by_value")
    it, ob = med("upstream", "dicts_netref_iter"), med("upstream", "dicts_obtain")
    rows.append(("150k dicts: ours by value vs upstream netref iteration", "%.0f ms (%.1fx floor)" % (bv * 1e3, bv / fd),
                 "%.1f s (scaled from %d)" % (it, 1_000 if args.quick else N_ITER_UPSTREAM), "%.0fx" % (it / bv)))
    rows.append(("150k dicts: ours by value vs upstream obtain (pickle)", "%.0f ms" % (bv * 1e3),
                 "%.0f ms" % (ob * 1e3), "%.1fx" % (ob / bv)))
    widths = [max(len(str(r[i])) for r in rows + [("row", "ours", "upstream", "speed-up")]) for i in range(4)]
    for r in [("row", "ours", "upstream", "speed-up")] + rows:
        print(" | ".join(str(c).ljust(w) for c, w in zip(r, widths)))
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump({"rounds": res, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
