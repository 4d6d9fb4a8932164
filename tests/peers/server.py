#!/usr/bin/env python
"""Interop peer: an RPyC ThreadedServer on 127.0.0.1 (ephemeral port).

Runs unchanged under upstream rpyc 6.0.2 or under ours (rpyc-rs): only the public rpyc API
is used (plus ``conn._local_objects`` in ``table_size``, see below).

Protocol with the harness (stdout, line-oriented, flushed):
    IMPL {"version": ..., "file": ..., "native": bool}
    PORT <n>          -- printed once the listener is accepting
Then it serves until stdin reaches EOF (or is closed), SIGTERM/SIGKILL, or --max-lifetime
seconds elapse.  Anything else goes to stderr.

Options:
    --mode default|bind_threads|classic   (classic serves rpyc.SlaveService)
    --max-lifetime SECONDS                (safety net against orphaned servers; default 1800)
    --config JSON                         (merged into the protocol config, e.g. '{"allow_public_attrs": true}')
    --shared-secret S                     (rpyc-rs only: SharedSecretAuthenticator(S, timeout=2))
"""

import argparse
import contextlib
import faulthandler
import gc
import itertools
import json
import os
import select
import sys
import threading
import time
import weakref

from peer_common import canon, digest, impl_info, make_bytes

faulthandler.enable()

import rpyc  # noqa: E402  (the interpreter decides which implementation this is)
from rpyc.utils.server import ThreadedServer  # noqa: E402


class InteropError(Exception):
    """A custom exception: module __main__, so clients cannot import it."""

    def __init__(self, msg, code):
        super().__init__(msg, code)
        self.code = code


class Stats:
    lock = threading.Lock()
    disconnects = 0
    connects = 0


class Thing:
    """Plain object returned by reference."""

    def __init__(self, value=0):
        self.exposed_value = value
        self._reads = 0

    def exposed_bump(self, n=1):
        self.exposed_value += n
        return self.exposed_value

    @property
    def exposed_reads(self):  # re-evaluated on every remote access
        self._reads += 1
        return self._reads

    def not_exposed(self):
        return "secret"

    def __len__(self):
        return 7

    def __repr__(self):
        return "Thing(%r)" % (self.exposed_value,)

    def __str__(self):
        return "thing:%s" % (self.exposed_value,)

    def __eq__(self, other):
        return isinstance(other, Thing) and other.exposed_value == self.exposed_value

    def __hash__(self):
        return hash(("Thing", self.exposed_value))


class Ctx:
    """Class-based context manager that records how __exit__ was called."""

    def __init__(self, log, suppress):
        self.log = log
        self.suppress = suppress

    def __enter__(self):
        self.log.append("enter")
        return "entered"

    def __exit__(self, typ, val, tb):
        self.log.append("exit-ok" if typ is None else "exit-exc")
        return self.suppress


class InteropService(rpyc.Service):
    def on_connect(self, conn):
        self._conn = conn
        self._list = [1, 2, 3]
        self._dict = {"a": 1, "b": 2}
        self._ctx_log = []
        self._live = weakref.WeakValueDictionary()  # Things compare equal: key by counter
        # (next() of a count is atomic: an rpyc.aio server runs these handlers on several
        # executor threads at once, and `self._made += 1` there once gave two objects one
        # key, one live object short of 10,500 in netref_churn)
        self._made = itertools.count(1)
        self._ticks_done = threading.Event()
        with Stats.lock:
            Stats.connects += 1

    def on_disconnect(self, conn):
        with Stats.lock:
            Stats.disconnects += 1

    # --- plain values -------------------------------------------------------------
    def exposed_add(self, a, b):
        return a + b

    def exposed_echo(self, value):
        return value

    def exposed_describe(self, value):
        return canon(value)

    def exposed_describe_many(self, values):
        return tuple(canon(v) for v in values)

    def exposed_kw(self, *args, **kwargs):
        return (args, tuple(sorted(kwargs.items())))

    def exposed_kwonly(self, a, *, b=2, c=3):
        return (a, b, c)

    def exposed_digest(self, data):
        return digest(data)

    def exposed_make_bytes(self, n, salt=0):
        return make_bytes(n, salt)

    def exposed_stats(self):
        with Stats.lock:
            return (Stats.connects, Stats.disconnects)

    def exposed_thread_name(self):
        return threading.current_thread().name

    # --- references ---------------------------------------------------------------
    def exposed_get_list(self):
        return self._list

    def exposed_peek_list(self):
        return tuple(self._list)

    def exposed_get_dict(self):
        return self._dict

    def exposed_peek_dict(self):
        return tuple(sorted(self._dict.items()))

    def exposed_make_obj(self, value=0):
        t = Thing(value)
        self._live[next(self._made)] = t
        return t

    def exposed_make_fn(self, value=0):
        def fn():  # a plain function: prebuilt proxy class on the client, no INSPECT
            return value
        self._live[next(self._made)] = fn
        return fn

    def exposed_live_count(self):
        gc.collect()
        return len(self._live)

    def exposed_table_size(self):
        objs = self._conn._local_objects
        return len(getattr(objs, "_dict", objs))

    def exposed_is_same(self, a, b):
        return a is b

    def exposed_type_name(self, obj):
        # the proxy of a client object reports the client's class through __class__
        return type(obj).__name__

    def exposed_setitem(self, obj, key, value):
        obj[key] = value

    def exposed_getitem(self, obj, key):
        return obj[key]

    def exposed_length(self, obj):
        return len(obj)

    def exposed_pull_objs(self, factory, n):
        objs = [factory() for _ in range(n)]
        distinct = len(set(id(o) for o in objs))
        del objs
        gc.collect()
        return distinct

    # --- exceptions ---------------------------------------------------------------
    def exposed_fail_value(self, msg):
        raise ValueError(msg)

    def exposed_fail_key(self, key):
        return {}[key]

    def exposed_fail_custom(self, msg, code):
        raise InteropError(msg, code)

    def exposed_fail_nondumpable(self):
        raise ValueError([1, 2], "plain", {"k": 3})

    def exposed_fail_chained(self):
        try:
            raise KeyError("inner")
        except KeyError as exc:
            raise RuntimeError("outer") from exc

    def hidden(self):  # not exposed
        return "hidden"

    def _private(self):
        return "private"

    # --- callbacks ----------------------------------------------------------------
    def exposed_call_me(self, fn, x):
        return fn(x) * 2

    def exposed_call_kw(self, fn):
        return fn(1, 2, c=3)

    def exposed_call_n(self, fn, n):
        return [fn(i) for i in range(n)] == [i + 1 for i in range(n)]

    def exposed_ping_pong(self, fn, n):
        if n <= 0:
            return 0
        return fn(n - 1) + 1

    def exposed_call_catch(self, fn):
        try:
            fn()
        except ValueError as exc:
            return "caught:%s" % (exc.args[0],)
        return "not raised"

    def exposed_ask_client(self):
        root = self._conn.root
        return (root.whoami(), root.add_one(41))

    def exposed_map(self, fn, values):
        return tuple(fn(v) for v in values)

    def exposed_start_ticker(self, cb, n, interval, use_async):
        def run():
            try:
                for i in range(n):
                    time.sleep(interval)
                    if use_async:
                        rpyc.async_(cb)(i)
                    else:
                        cb(i)
            except Exception as exc:  # pragma: no cover - reported on stderr
                print("ticker failed: %r" % (exc,), file=sys.stderr, flush=True)
            finally:
                self._ticks_done.set()
        threading.Thread(target=run, daemon=True).start()
        return True

    # --- generators / context managers --------------------------------------------
    def exposed_gen(self, n):
        for i in range(n):
            yield i

    def exposed_gen_objs(self, n):
        for i in range(n):
            yield Thing(i)

    def exposed_gen_fail(self):
        yield 1
        raise ValueError("gen failed")

    def exposed_ctx(self, suppress=False):
        return Ctx(self._ctx_log, suppress)

    def exposed_gen_ctx(self):
        @contextlib.contextmanager
        def cm():
            self._ctx_log.append("gen-enter")
            try:
                yield "gen-entered"
            except BaseException:
                self._ctx_log.append("gen-exc")
                raise
            else:
                self._ctx_log.append("gen-ok")
        return cm()

    def exposed_ctx_log(self):
        return tuple(self._ctx_log)

    # --- time ---------------------------------------------------------------------
    def exposed_sleep(self, seconds):
        time.sleep(seconds)
        return seconds

    def exposed_sleep_add(self, seconds, a, b):
        time.sleep(seconds)
        return a + b

    def exposed_close_soon(self, delay):
        conn = self._conn

        def run():
            time.sleep(delay)
            try:
                conn.close()
            except Exception as exc:  # pragma: no cover
                print("close_soon: %r" % (exc,), file=sys.stderr, flush=True)
        threading.Thread(target=run, daemon=True).start()
        return True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=("default", "bind_threads", "classic"), default="default")
    ap.add_argument("--max-lifetime", type=float, default=1800.0)
    ap.add_argument("--config", default="{}", help="JSON object merged into protocol_config")
    ap.add_argument("--shared-secret", default=None,
                    help="rpyc-rs only: authenticate clients with SharedSecretAuthenticator")
    args = ap.parse_args()

    def out(line):
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    out("IMPL " + json.dumps(impl_info(rpyc)))

    config = json.loads(args.config)
    if args.mode == "bind_threads":
        config["bind_threads"] = True
    service = rpyc.SlaveService if args.mode == "classic" else InteropService
    authenticator = None
    if args.shared_secret is not None:
        from rpyc.utils.authenticators import SharedSecretAuthenticator
        authenticator = SharedSecretAuthenticator(args.shared_secret, timeout=2)
    server = ThreadedServer(service, hostname="127.0.0.1", port=0, protocol_config=config,
                            authenticator=authenticator)
    thread = threading.Thread(target=server.start, name="server-accept", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not getattr(server, "active", False):
        if time.monotonic() > deadline or not thread.is_alive():
            print("server did not become active", file=sys.stderr, flush=True)
            os._exit(2)
        time.sleep(0.01)
    out("PORT %d" % server.port)

    # serve until stdin closes, the accept thread dies, or the lifetime is exhausted
    end = time.monotonic() + args.max_lifetime
    fd = sys.stdin.fileno()
    code = 0
    while True:
        if not thread.is_alive():
            print("server thread exited", file=sys.stderr, flush=True)
            code = 3
            break
        if time.monotonic() > end:
            print("max lifetime reached", file=sys.stderr, flush=True)
            code = 4
            break
        try:
            ready, _, _ = select.select([fd], [], [], 0.5)
        except (OSError, ValueError):
            break
        if ready:
            try:
                if not os.read(fd, 4096):
                    break
            except OSError:
                break
    try:
        server.close()
    except Exception:
        pass
    os._exit(code)


if __name__ == "__main__":
    main()
