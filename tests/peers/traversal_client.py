#!/usr/bin/env python
"""Interop peer: a client that tries to walk from the objects a service returns into the
server's interpreter (``fn.__globals__``, ``obj.__class__``, ``gen.gi_frame``...), as a hostile
peer would, and also uses the same objects the ordinary way.

Runs unchanged under upstream rpyc 6.0.2 or ours. Usage: ``traversal_client.py --port N``.
Prints one JSON object: ``{"impl": ..., "attempts": {label: {"refused": bool, "error": str}},
"ordinary": {label: "ok" | error}}``. Requests go through ``conn.sync_request`` so that names a
proxy answers locally (``__class__``, ``__dict__``) really travel.
"""

import argparse
import json
import sys

from peer_common import impl_info

import rpyc  # noqa: E402
from rpyc.core import consts  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args()
    conn = rpyc.connect(args.host, args.port, config={"sync_request_timeout": 10})
    root = conn.root
    objects = {
        "fn": root.make_fn(5),
        "obj": root.make_obj(3),
        "gen": root.gen(3),
        "list": root.get_list(),
        "builtin": root.map,  # a bound method of the service
    }
    attempts = {}

    def attempt(label, handler, target, *args):
        try:
            value = conn.sync_request(handler, objects[target], *args)
        except AttributeError as exc:
            attempts[label] = {"refused": True, "error": str(exc).split("\n")[0]}
        except Exception as exc:
            attempts[label] = {"refused": False, "error": "%s: %s" % (type(exc).__name__,
                                                                      str(exc).split("\n")[0])}
        else:
            attempts[label] = {"refused": False, "error": None, "value": repr(value)[:80]}

    G = consts.HANDLE_GETATTR
    for target, name in [
        ("fn", "__globals__"), ("fn", "__code__"), ("fn", "__closure__"), ("fn", "__builtins__"),
        ("obj", "__class__"), ("obj", "__dict__"), ("obj", "__getattribute__"),
        ("obj", "__reduce_ex__"), ("list", "__class__"), ("gen", "gi_frame"), ("gen", "gi_code"),
        ("builtin", "__self__"), ("builtin", "__func__"),
    ]:
        attempt("%s.%s" % (target, name), G, target, name)
    attempt("cmp:__getattribute__", consts.HANDLE_CMP, "obj", "__class__", "__getattribute__")
    attempt("callattr:__reduce_ex__", consts.HANDLE_CALLATTR, "obj", "__reduce_ex__", (2,), ())

    ordinary = {}

    def check(label, fn, want):
        try:
            got = fn()
            ordinary[label] = "ok" if got == want else "got %r, want %r" % (got, want)
        except Exception as exc:
            ordinary[label] = "%s: %s" % (type(exc).__name__, str(exc).split("\n")[0])

    obj = root.make_obj(3)
    check("call", lambda: root.add(1, 2), 3)
    check("closure call", lambda: root.make_fn(5)(), 5)
    check("len", lambda: len(obj), 7)
    check("repr", lambda: repr(obj), "Thing(3)")
    check("str", lambda: str(obj), "thing:3")
    check("hash", lambda: hash(obj) == hash(root.make_obj(3)), True)
    check("eq", lambda: obj == root.make_obj(3), True)
    check("method", lambda: obj.bump(2), 5)
    check("iterate", lambda: list(root.gen(3)), [0, 1, 2])
    check("list ops", lambda: (len(root.get_list()), 2 in root.get_list(), root.get_list()[0]),
          (3, True, 1))
    check("isinstance list", lambda: isinstance(root.get_list(), list), True)

    def ctx():
        with root.ctx() as value:
            return value
    check("context manager", ctx, "entered")
    conn.close()
    print(json.dumps({"impl": impl_info(rpyc), "attempts": attempts, "ordinary": ordinary}))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
