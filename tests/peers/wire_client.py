#!/usr/bin/env python
"""Interop peer: one connection to tests/peers/server.py running a workload that would use
every rpyc-rs protocol extension if the peer offered it (see ``rpyc.core.extensions``), for
tests/interop/test_harness.py to record on the wire through a relay.

Runs unchanged under upstream rpyc 6.0.2 or ours. Usage:
    wire_client.py --port N [--host 127.0.0.1] [--mode default|bind_threads]

What it does, on one connection, in this order:
  * a small ping, then ``conn.root`` (GETROOT; INSPECT unless the root's class was sent
    along with the hello answer) and calls through getattr on the root;
  * 10 KiB echoed both ways and a 5000-character ping (compressed frames: > 3000 bytes);
  * iteration of a remote list of 303 items (item by item, or ITER_BATCH);
  * the server iterating a local list of 300 items through a proxy, calling back for each;
  * callbacks (call_me), the server using the client's root (ask_client), a generator;
  * an exception answer each way (a callback raising, a remote call raising);
  * 20 remote objects made, used and dropped (HANDLE_DEL towards the server); the server
    collects its proxies of our callbacks and lists (HANDLE_DEL towards us);
  * a last ping whose data is ``MARKER``, then close. Everything before the marker's request
    (and before its answer, in the other direction) is part of the workload.

Prints one JSON line: {"impl": ..., "ok": bool, "failures": [...], "features": [...]|null}.
Exit status 0 if ok.
"""

import argparse
import gc
import json
import sys

from peer_common import impl_info

import rpyc  # noqa: E402  (the interpreter decides which implementation this is)

MARKER = "wire-check:end-of-workload"


class ClientService(rpyc.Service):
    def exposed_whoami(self):
        return "client"

    def exposed_add_one(self, x):
        return x + 1


def bad_callback():
    raise ValueError("from the client")


def workload(conn, failures):
    def eq(got, want, what):
        if got != want:
            failures.append("%s: got %r, want %r" % (what, got, want))

    conn.ping()
    root = conn.root
    eq(root.add(5, 10), 15, "add")
    eq(getattr(root, "exposed_add")(1, 2), 3, "getattr(root, 'exposed_add')")
    eq(root.get_service_name(), "INTEROP", "get_service_name")
    big = bytes(range(256)) * 40  # 10 KiB, compressible
    eq(root.echo(big), big, "echo of 10 KiB")
    conn.ping("x" * 5000)

    remote = root.get_list()
    root.setitem(remote, slice(3, 3), tuple(range(300)))  # the server extends its list
    eq(list(remote), [1, 2, 3] + list(range(300)), "iterating a remote list of 303 items")
    eq(root.map(lambda v: v + 1, list(range(300))), tuple(range(1, 301)),
       "server iterating our list of 300 items")

    eq(root.call_me(lambda x: x + 1, 20), 42, "call_me")
    eq(root.ask_client(), ("client", 42), "ask_client")
    eq(list(root.gen(5)), [0, 1, 2, 3, 4], "generator")
    try:  # an exception answer each way (vinegar, not boxed)
        root.call_catch(bad_callback)
        root.fail_value("from the server")
    except ValueError:
        pass
    else:
        failures.append("fail_value raised nothing")

    objs = [root.make_obj(i) for i in range(20)]
    eq([o.bump(1) for o in objs], list(range(1, 21)), "bump on 20 remote objects")
    del objs, remote
    gc.collect()
    eq(root.live_count(), 0, "remote objects alive on the server")  # it collects first
    conn.ping(MARKER)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--mode", choices=("default", "bind_threads"), default="default")
    args = ap.parse_args()
    config = {"sync_request_timeout": 10}
    if args.mode == "bind_threads":
        config["bind_threads"] = True
    failures = []
    conn = rpyc.connect(args.host, args.port, service=ClientService, config=config)
    try:
        workload(conn, failures)
    except Exception as exc:
        failures.append("workload raised %s: %s" % (type(exc).__name__, str(exc)[:2000]))
    features = getattr(conn, "_peer_features", None)
    try:
        conn.close()
    except Exception as exc:
        failures.append("close raised %r" % (exc,))
    print(json.dumps({"impl": impl_info(rpyc), "ok": not failures, "failures": failures,
                      "features": None if features is None else sorted(features)}))
    sys.stdout.flush()
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
