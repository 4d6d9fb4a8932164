#!/usr/bin/env python
"""Interop peer: a *blocking* RPyC client (upstream rpyc 6.0.2 or ours, whichever this
interpreter has) against an ``rpyc.aio`` server (tests/peers/aio_server.py), for
tests/interop/test_aio_interop.py. Only the public rpyc API is used, plus
``conn._local_objects`` (netref_churn) and ``conn._config`` (classic), as client.py does.

Usage:
    aio_sync_client.py --port N [--host 127.0.0.1] --scenario NAME [--scenario NAME ...]
                       [--timeout SECONDS] [--tag TAG] [--parties N] [--pid PID]

Output (stdout), one JSON object per line, flushed:
    {"impl": {"version": ..., "file": ..., "native": bool}}
    {"scenario": NAME, "ok": bool, "failures": [...], "info": {...}, "seconds": float}
Exit status 0 if every scenario passed, 1 otherwise.
"""

import argparse
import faulthandler
import gc
import os
import threading
import time
import uuid

from peer_checks import (Checks, callback_chain, custom_exception, generators, own_table,
                         print_results_and_exit, run_scenario, settled_own_table,
                         short as _short, tick_recorder)
from peer_checks import context_manager  # noqa: F401  (a scenario, as the ones below)
from peer_common import digest, impl_info, make_bytes

faulthandler.enable()

import rpyc  # noqa: E402  (the interpreter decides which implementation this is)

SYNC_TIMEOUT = 10  # sync_request_timeout of every connection


class ClientService(rpyc.Service):
    def exposed_whoami(self):
        return "client"

    def exposed_add_one(self, x):
        return x + 1


class Run(Checks):
    close_limit = None

    def __init__(self, args):
        super().__init__()
        self.args = args

    def connect(self, **config):
        cfg = {"sync_request_timeout": SYNC_TIMEOUT}
        cfg.update(config)
        conn = rpyc.connect(self.args.host, self.args.port, service=ClientService, config=cfg)
        with self.lock:
            self.conns.append(conn)
        return conn


# =================================================================================
# scenarios
# =================================================================================

def calls(run):
    conn = run.connect()
    root = conn.root
    run.eq(root.add(5, 10), 15, "add (plain def, executor thread)")
    run.eq(root.inline_add(5, 10), 15, "inline_add (@rpyc.aio.inline)")
    run.eq(root.aadd(5, 10), 15, "aadd (async def)")
    got = root.aadd(2, 3)
    run.check(type(got) is int, "an async def handler answered a %s, not the int" % type(got))
    run.eq(root.aadd(a=1, b=2), 3, "aadd with keyword arguments")
    run.eq(root.aadd("a", "b"), "ab", "aadd of strings")
    run.eq(root.aadd(2**70, 1), 2**70 + 1, "aadd of big ints")
    run.eq(root.exposed_aadd(1, 2), 3, "exposed_aadd spelled out")
    run.eq(root.kw(1, 2, x=3, y=4), ((1, 2), (("x", 3), ("y", 4))),
           "kw (async def, *args **kwargs)")
    for value in (None, True, 1.5, -7, b"\x00\xff", "h\u00e9llo \U0001F600", (1, (2, 3)),
                  frozenset([1, 2]), "x" * 5000, bytes(range(256)) * 40):
        run.eq(root.echo(value), value, "echo(%s)" % _short(value, 40))
    run.eq(root.where(), "loop", "async def handlers run on the loop's thread")
    run.eq(root.where_plain(), "worker", "plain def handlers run on an executor thread")
    run.eq(root.get_service_name(), "AIOINTEROP", "get_service_name()")
    res = rpyc.async_(root.aadd)(20, 22)
    res.wait()
    run.eq(res.value, 42, "rpyc.async_(root.aadd) value")
    obj = root.make_obj(5)
    run.eq(obj.bump(2), 7, "method of a remote object")
    run.eq(obj.value, 7, "attribute of a remote object")
    run.eq(len(obj), 7, "len() of a remote object")
    run.eq(repr(obj), "Thing(7)", "repr()")
    run.eq(str(obj), "thing:7", "str()")
    run.raises(AttributeError, "missing attribute", lambda: root.no_such_method)
    conn.ping()
    run.check(not conn.closed, "connection closed")


def callbacks(run):
    conn = run.connect()
    root = conn.root

    def inc(x):
        return x + 1

    run.eq(root.apply(inc, 20), 21, "async handler awaits our callback")
    run.eq(root.call_me(inc, 20), 42, "call_me")
    run.eq(root.apply(lambda x: x * 10, 4), 40, "lambda callback")
    run.eq(root.apply_twice(inc, 1), 3, "two callbacks in turn")
    run.eq(root.apply_many(inc, 30), tuple(range(1, 31)), "30 callbacks in flight at once")
    res = root.call_kw(lambda *a, **k: (a, sorted(k.items())))
    run.eq((tuple(res[0]), [tuple(p) for p in res[1]]), ((1, 2), [("c", 3)]),
           "callback with keyword arguments")
    callback_chain(run, root, inc)
    run.eq(root.block_apply(inc, 4), 15, "plain def handler calling back with rpyc.aio.block")
    run.eq(root.ask_client(), ("client", 42), "async handler used our root")
    run.eq(root.ask_client(), ("client", 42), "async handler used our root, twice")
    run.eq(root.map(str, (1, 2, 3)), ("1", "2", "3"), "server calls our builtin str")
    run.eq(root.map(inc, [1, 2, 3]), (2, 3, 4), "server iterates our list, calls back per item")
    run.eq(root.remote_len([1, 2, 3, 4]), 4, "server: await rpyc.aio.len(our list)")
    run.eq(root.sum_remote(list(range(100))), 4950, "server: async for over our list")
    run.eq(root.aadd(1, 1), 2, "connection usable after callbacks")


def exceptions(run):
    root = run.connect().root
    exc = run.raises(ValueError, "fail_value (async def)", root.fail_value, "boom")
    if exc is not None:
        run.eq(exc.args, ("boom",), "ValueError args")
        text = str(exc)
        run.check("Remote Traceback" in text, "no 'Remote Traceback' in str(exc)")
        tb = getattr(exc, "_remote_tb", None)
        run.check(isinstance(tb, str) and "exposed_fail_value" in tb,
                  "_remote_tb does not name the handler: %s" % _short(tb))
    exc = run.raises(ValueError, "fail_late (raises after an await)", root.fail_late, "later")
    if exc is not None:
        run.eq(exc.args, ("later",), "fail_late args")
    exc = run.raises(KeyError, "fail_key (plain def)", root.fail_key, "missing")
    if exc is not None:
        run.eq(exc.args, ("missing",), "KeyError args")
    exc = run.raises(Exception, "fail_custom", root.fail_custom, "custom msg", 42)
    custom_exception(run, exc, rpyc.GenericException)
    exc = run.raises(RuntimeError, "fail_chained", root.fail_chained)
    if exc is not None:
        run.check("outer" in str(exc), "'outer' missing: %s" % _short(str(exc)))
    run.raises(AttributeError, "not exposed", lambda: root.on_connect)
    run.eq(root.aadd(1, 1), 2, "connection usable after exceptions")


def iteration(run):
    root = run.connect().root
    lst = root.get_list()
    run.eq(list(lst), [1, 2, 3], "list(remote list)")
    run.eq(len(lst), 3, "len(remote list)")
    run.check(2 in lst, "2 in remote list")
    run.eq(lst[1], 2, "remote list[1]")
    run.eq(list(root.get_big_list(1000)), list(range(1000)), "iterating 1000 items")
    run.eq(sum(root.get_big_list(500)), sum(range(500)), "sum over a remote list")
    generators(run, root)
    d = root.get_dict()
    run.eq(sorted(d), ["a", "b"], "iterating a remote dict")
    run.eq((d["a"], d["b"], len(d), "a" in d), (1, 2, 2, True), "remote dict lookups")
    run.eq(list(rpyc.buffiter(root.gen(100))), list(range(100)), "buffiter(remote generator)")
    run.eq(root.aadd(1, 1), 2, "connection usable after iteration")


def sequential(run):
    root = run.connect().root
    root.aadd(0, 0)
    n = 1000
    slowest = 0.0
    t0 = time.monotonic()
    for i in range(n):
        t = time.monotonic()
        if i % 2:
            ok = root.aadd(i, 1) == i + 1
        else:
            ok = root.add(i, 2) == i + 2
        slowest = max(slowest, time.monotonic() - t)
        if not ok:
            run.fail("call %d: wrong result" % i)
            break
    total = time.monotonic() - t0
    run.info["calls"] = n
    run.info["seconds"] = round(total, 3)
    run.info["slowest_ms"] = round(slowest * 1000, 1)
    run.check(total < 30, "%d sequential calls took %.1f s" % (n, total))
    run.check(slowest < 2, "slowest call took %.2f s" % slowest)


def threads(run):
    tag = run.args.tag or uuid.uuid4().hex
    n_conns = 8
    errors = []
    results = {}

    def own_connection(k):
        try:
            root = run.connect().root
            got = [root.aadd(k * 1000 + i, 1) for i in range(100)]
            want = [k * 1000 + i + 1 for i in range(100)]
            cb = root.apply(lambda x: x + k, 100)
            met = root.rendezvous(tag + "-conns", n_conns, 20)
            results[k] = (got == want, cb == 100 + k, met)
        except Exception as exc:
            errors.append("connection %d: %s: %s" % (k, type(exc).__name__, _short(str(exc))))

    workers = [threading.Thread(target=own_connection, args=(k,)) for k in range(n_conns)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    run.check(not any(w.is_alive() for w in workers), "threads with own connections hung")
    for e in errors:
        run.fail(e)
    for k in range(n_conns):
        r = results.get(k)
        if r is None:
            continue
        run.check(r[0], "connection %d: wrong aadd results" % k)
        run.check(r[1], "connection %d: wrong callback result" % k)
        run.check(r[2] >= n_conns, "connection %d: rendezvous returned %r" % (k, r[2]))

    # several threads sharing one connection
    shared = run.connect().root
    shared_results = {}

    def sharer(k):
        try:
            got = [shared.aadd(k, i) for i in range(50)] + [shared.add(k, i) for i in range(50)]
            shared_results[k] = got == [k + i for i in range(50)] * 2
        except Exception as exc:
            errors.append("sharer %d: %s: %s" % (k, type(exc).__name__, _short(str(exc))))

    del errors[:]
    workers = [threading.Thread(target=sharer, args=(k,)) for k in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    for e in errors:
        run.fail(e)
    run.eq(sorted(shared_results.items()), [(k, True) for k in range(4)],
           "4 threads on one connection")

    # the server handles one connection's requests concurrently: a quick call overtakes a
    # slow one sent before it on the same connection (an async handler awaiting a sleep,
    # then a plain def blocking its executor thread)
    for slow_name in ("asleep", "sleep"):
        conn = run.connect()
        done = {}

        def slow():
            done["slow_result"] = getattr(conn.root, slow_name)(1.0)
            done["slow"] = time.monotonic()

        t = threading.Thread(target=slow)
        t.start()
        time.sleep(0.1)
        t0 = time.monotonic()
        quick = [conn.root.aadd(i, i) for i in range(20)]
        done["quick"] = time.monotonic()
        t.join(30)
        run.eq(quick, [2 * i for i in range(20)], "quick calls beside %s" % slow_name)
        run.eq(done.get("slow_result"), 1.0, "%s(1.0) result" % slow_name)
        if "slow" in done:
            run.check(done["quick"] < done["slow"],
                      "20 quick calls (%.2f s) did not finish before the pending %s(1.0)"
                      % (done["quick"] - t0, slow_name))


def identity(run):
    """Our objects come back to us as themselves, whatever handler returns them (an
    ``async def`` handler returning its argument, or what our callback returned)."""
    conn = run.connect(sync_request_timeout=5)
    root = conn.root
    mine = [1, 2, 3]
    back = root.echo((mine, 1, (mine, "x")))
    run.check(back[0] is mine and back[2][0] is mine and back[1] == 1,
              "a tuple holding our list: %s" % _short(back))
    run.check(root.echo(mine) is mine, "our list did not come back as itself (async def echo)")
    run.check(root.echo_plain(mine) is mine, "our list did not come back as itself (plain def)")

    def fn(x):
        return x

    run.check(root.echo(fn) is fn, "our function did not come back as itself")
    run.check(root.apply(fn, mine) is mine,
              "our list, returned by our callback to an async def handler, is not itself")
    obj = root.make_obj(3)
    run.check(root.echo(obj) == obj, "the server's object did not come back as the same proxy")
    run.eq(root.aadd(1, 1), 2, "connection usable")


def async_objects(run):
    root = run.connect().root
    obj = root.make_async_obj(5)
    run.eq(obj.get(), 5, "async def method of a remote object (CALLATTR)")
    method = obj.get
    run.eq(method(), 5, "async def bound method fetched, then called (GETATTR + CALL)")
    run.eq(obj.add(2), 7, "async def method with an argument")
    run.eq(obj(1), ("called", 7, 1), "object with an async def __call__")
    run.eq(root.deferred(3), ("later", 3), "plain def handler returning a coroutine")
    run.eq(root.apply(obj.add, 1), 8, "the server calls back its own async method")


def pipelined(run):
    conn = run.connect()
    root = conn.root
    aadd = rpyc.async_(root.aadd)
    results = [aadd(i, 1) for i in range(500)]
    run.eq([r.value for r in results], [i + 1 for i in range(500)], "500 pipelined async_ calls")

    def inc(x):
        return x + 1

    apply = rpyc.async_(root.apply)
    results = [apply(inc, i) for i in range(50)]
    run.eq([r.value for r in results], [i + 1 for i in range(50)],
           "50 pipelined calls, each handler calling back (handlers run at once)")
    slow = rpyc.async_(root.asleep)(0.5)
    quick = rpyc.async_(root.aadd)(1, 1)
    quick.wait()
    run.check(not slow.ready, "a quick call sent after a slow one did not overtake it")
    run.eq(slow.value, 0.5, "the slow call")


def timeouts(run):
    conn = run.connect(sync_request_timeout=0.3)
    root = conn.root
    run.raises(rpyc.AsyncResultTimeout, "asleep(1.0) with sync_request_timeout=0.3",
               root.asleep, 1.0)
    res = rpyc.timed(root.asleep, 0.2)(1.0)
    run.raises(rpyc.AsyncResultTimeout, "rpyc.timed(asleep, 0.2)(1.0).value",
               lambda: res.value)
    time.sleep(1.0)  # both late answers arrive and are dropped
    run.eq(root.aadd(1, 2), 3, "a call after two timed-out ones")
    run.eq([root.aadd(i, i) for i in range(20)], [2 * i for i in range(20)], "20 more calls")


def big(run):
    root = run.connect().root
    n = 8 * 1024 * 1024
    data = make_bytes(n, 1)
    run.eq(tuple(root.digest(data)), digest(data), "digest of 8 MiB sent")
    got = root.echo(data)
    run.check(got == data, "echo of 8 MiB: %d bytes back, equal=%s" % (len(got), got == data))
    made = root.make_bytes(n, 2)
    run.eq(digest(made), digest(make_bytes(n, 2)), "8 MiB made by the server")
    run.eq(root.aadd(1, 1), 2, "connection usable after big frames")


def netref_churn(run):
    conn = run.connect(sync_request_timeout=30)
    root = conn.root
    root.aadd(0, 0)
    gc.collect()
    base = root.table_size()
    objs = [root.make_obj(i) for i in range(1000)]
    run.eq(root.table_size() - base, 1000, "server object table growth")
    run.eq([o.value for o in objs[::100]], list(range(0, 1000, 100)), "remote objects work")
    del objs
    gc.collect()
    run.check(_poll_until(root.table_size, base, 10),
              "server object table not back to baseline %d (at %d)" % (base, root.table_size()))

    class Obj:
        pass

    def factory():
        return Obj()

    root.aadd(0, 0)
    base = own_table(conn)
    run.eq(root.pull_objs(factory, 300), 300, "server held 300 distinct proxies of ours")
    run.check(_poll_until(lambda: settled_own_table(conn), base, 10),
              "our object table not back to baseline %d (at %d)" % (base, own_table(conn)))


def _poll_until(fn, want, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if fn() == want:
            return True
        time.sleep(0.05)
    return fn() == want


def bg_serving(run):
    conn = run.connect()
    bg = rpyc.BgServingThread(conn)
    try:
        for use_async in (False, True):
            cb, ticks, done = tick_recorder(5)
            run.eq(conn.root.start_ticker(cb, 5, 0.02, use_async), True, "start_ticker")
            run.check(done.wait(10), "ticks received (use_async=%s): %r" % (use_async, ticks))
            run.eq(sorted(ticks), [0, 1, 2, 3, 4], "ticks (use_async=%s)" % use_async)
    finally:
        bg.stop()


def close_midway(run):
    """Closing a connection while the server's handlers run (one awaits our callback)."""
    conn = run.connect()
    root = conn.root

    def slow_cb(x):
        time.sleep(0.3)
        return x

    rpyc.async_(root.asleep)(0.3)
    rpyc.async_(root.apply)(slow_cb, 1)
    rpyc.async_(root.slow_callback)("close-" + uuid.uuid4().hex, lambda: time.sleep(0.3))
    time.sleep(0.05)
    conn.close()
    run.conns.remove(conn)
    time.sleep(0.6)
    other = run.connect().root
    run.check(_poll_until(lambda: other.stats()[2], 1, 10),
              "the server still counts the closed connection: stats %r" % (other.stats(),))
    run.eq(other.aadd(2, 2), 4, "the server goes on")


def busy_executor(run):
    """While every thread of the server's default executor runs a blocking plain def
    handler (``sleep(4)``), requests of other connections that need no executor thread (an
    ``async def`` handler) are still answered at once, whatever their size: a 20 KB
    argument arrives as a compressed frame, which the server decodes on a worker thread."""
    workers = run.connect().root.default_workers()
    blockers = [run.connect() for _ in range(workers)]
    threads = [threading.Thread(target=c.root.sleep, args=(4.0,)) for c in blockers]
    for t in threads:
        t.start()
    time.sleep(0.5)  # every executor thread is in sleep(4) now
    root = run.connect().root
    t0 = time.monotonic()
    run.eq(root.aadd(1, 2), 3, "a small call to an async def handler")
    small = time.monotonic() - t0
    blob = os.urandom(20000)
    t0 = time.monotonic()
    run.eq(root.aadd(blob, b""), blob, "a 20 KB call to an async def handler")
    large = time.monotonic() - t0
    for t in threads:
        t.join(30)
    run.info.update(workers=workers, small_s=round(small, 3), large_s=round(large, 3))
    run.check(small < 1.0, "the small call took %.2f s" % small)
    run.check(large < 1.0, "the 20 KB call took %.2f s while the executor was busy (the "
              "blocking handlers ended 3.5 s after it was sent)" % large)


def block_callbacks(run):
    """More plain def handlers than executor threads, each waiting (``rpyc.aio.block``)
    for a callback of ours whose answer is 20 KB (a compressed frame): all of them finish."""
    workers = run.connect().root.default_workers()
    n = workers + 2
    conns = [run.connect(sync_request_timeout=30) for _ in range(n)]
    results = {}

    def cb(x):
        time.sleep(0.3)  # every handler is waiting for us before the first answer goes
        return os.urandom(20000)

    def call(k):
        t0 = time.monotonic()
        try:
            got = conns[k].root.block_apply(cb, k)
            results[k] = ("ok" if len(got) == 60000 else "wrong length %d" % len(got),
                          round(time.monotonic() - t0, 2))
        except Exception as exc:
            results[k] = ("%s: %s" % (type(exc).__name__, str(exc).splitlines()[0][:100]),
                          round(time.monotonic() - t0, 2))

    threads = [threading.Thread(target=call, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    run.info.update(workers=workers, results={str(k): v for k, v in sorted(results.items())})
    bad = {k: v for k, v in results.items() if v[0] != "ok" or v[1] > 3}
    run.check(not bad and len(results) == n,
              "%d handlers (executor of %d threads) waiting for 20 KB callback answers: %s"
              % (n, workers, sorted(bad.items())))


def shared(run):
    """One of several clients (sync and async, both implementations) on one server."""
    tag = run.args.tag
    root = run.connect().root
    me = "%s-%d" % (impl_info(rpyc)["native"] and "ours" or "upstream", os.getpid())
    met = root.rendezvous(tag, run.args.parties, 30)
    run.check(met >= run.args.parties, "rendezvous returned %r" % (met,))
    for i in range(200):
        if not run.eq(root.aadd(i, 7), i + 7, "aadd %d" % i):
            break
        if i % 20 == 0:
            run.eq(root.apply(lambda x: (me, x), i), (me, i), "callback %d" % i)
            run.eq(root.echo((me, i)), (me, i), "echo %d" % i)
        root.incr(tag + "-calls")
    run.info["me"] = me


def counter(run):
    """Reads the server's counter ``<tag>-calls`` (after ``shared``) into info."""
    root = run.connect().root
    run.info["counter"] = root.counter(run.args.tag + "-calls")
    run.info["stats"] = tuple(root.stats())


def classic(run):
    conn = rpyc.classic.connect(run.args.host, run.args.port)
    conn._config["sync_request_timeout"] = SYNC_TIMEOUT
    run.conns.append(conn)
    run.eq(conn.eval("1 + 1"), 2, "eval")
    conn.execute("x = 41")
    run.eq(conn.eval("x + 1"), 42, "execute, then eval")
    run.eq(conn.modules.os.getpid(), run.args.pid, "modules.os.getpid() is the server's pid")
    run.eq(conn.modules["os.path"].join("a", "b"), os.path.join("a", "b"), "modules['os.path']")
    run.eq(conn.builtins.len("abc"), 3, "builtins.len on a str (by value)")
    # the server's builtins see our list as an rpyc.aio async netref, on which len() cannot
    # wait for us: a TypeError naming the awaitable helper (docs of rpyc.aio._netref)
    exc = run.raises(TypeError, "builtins.len on our list", conn.builtins.len, [1, 2, 3])
    if exc is not None:
        run.check("rpyc.aio.len" in str(exc), "TypeError without the helper's name: %s"
                  % _short(str(exc)))
    rlist = conn.builtins.list()
    rlist.append(5)
    run.eq(list(rlist), [5], "append on a remote list")
    run.raises(ZeroDivisionError, "eval('1/0')", conn.eval, "1/0")

    def mul(a, b=2):
        return a * b

    rf = rpyc.classic.teleport_function(conn, mul)
    run.eq(rf(3), 6, "teleported function")
    run.eq(conn.eval("mul(5, 3)"), 15, "teleported function in the namespace")


SCENARIOS = ("calls", "callbacks", "exceptions", "iteration", "context_manager", "sequential",
             "threads", "identity", "async_objects", "pipelined", "timeouts", "big",
             "netref_churn", "bg_serving", "close_midway", "busy_executor", "block_callbacks",
             "shared", "counter", "classic")


def run_one(name, args):
    run = Run(args)
    seconds = run_scenario(globals()[name], run)
    return {"scenario": name, "ok": not run.failures, "failures": run.failures,
            "info": run.info, "seconds": seconds}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--scenario", action="append", choices=SCENARIOS, required=True)
    ap.add_argument("--timeout", type=float, default=60, help="per scenario, seconds")
    ap.add_argument("--tag", default="")
    ap.add_argument("--parties", type=int, default=1)
    ap.add_argument("--pid", type=int, default=0)
    args = ap.parse_args()
    # hard bound: dump the stacks and exit
    faulthandler.dump_traceback_later(args.timeout * len(args.scenario) + 10, exit=True)
    print_results_and_exit(impl_info(rpyc), args.scenario, run_one, args)


if __name__ == "__main__":
    main()
