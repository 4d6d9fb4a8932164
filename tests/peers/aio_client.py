#!/usr/bin/env python
"""Interop peer: an ``rpyc.aio`` client (ours only) for tests/interop/test_aio_interop.py,
against tests/peers/server.py (a ThreadedServer, upstream rpyc 6.0.2 or ours) or
tests/peers/aio_server.py (an ``rpyc.aio`` server, ours). The scenarios use the names both
services share (``add``, ``echo``, ``call_me``, ``gen``, ``ctx``, ``sleep_add``...).

Usage:
    aio_client.py --port N [--host 127.0.0.1] --target upstream|ours-sync|ours-aio
                  --scenario NAME [--scenario NAME ...] [--timeout SECONDS]
                  [--pid PID] [--tag TAG] [--parties N]

``--target`` only says what to expect where the servers legitimately differ (the service's
name, the negotiated rpyc-rs features, whether a call overtakes a slow one).

Output (stdout), one JSON object per line, flushed:
    {"impl": {...}}
    {"scenario": NAME, "ok": bool, "failures": [...], "info": {...}, "seconds": float}
Exit status 0 if every scenario passed, 1 otherwise.
"""

import argparse
import asyncio
import faulthandler
import gc
import json
import os
import sys
import time
import traceback
import uuid

from peer_checks import Checks, custom_exception, own_table, short as _short, unexpected
from peer_common import digest, impl_info, make_bytes

faulthandler.enable()

import rpyc  # noqa: E402  (must be ours: rpyc.aio)
import rpyc.aio  # noqa: E402

SYNC_TIMEOUT = 10  # sync_request_timeout of every connection unless a scenario says otherwise
OUR_FEATURES = ["by_value", "cancel", "iter_batch", "quiet_del", "root_class"]


class AioClientService(rpyc.Service):
    """What the servers' ``ask_client`` uses (an async def and a plain def)."""

    async def exposed_whoami(self):
        await asyncio.sleep(0)
        return "client"

    def exposed_add_one(self, x):
        return x + 1


class Run(Checks):
    def __init__(self, args):
        super().__init__()
        self.args = args

    async def connect(self, **config):
        cfg = {"sync_request_timeout": SYNC_TIMEOUT}
        cfg.update(config)
        conn = await rpyc.aio.connect(self.args.host, self.args.port, service=AioClientService,
                                      config=cfg)
        self.conns.append(conn)
        return conn

    async def close_all(self):
        for conn in self.conns:
            try:
                await asyncio.wait_for(conn.aclose(), 5)
            except Exception as exc:
                self.fail("conn.aclose() raised or took more than 5 s: %r" % (exc,))
        self.conns = []

    async def raises(self, exc_types, what, awaitable):
        try:
            result = await awaitable
        except exc_types as exc:
            return exc
        except (Exception, asyncio.CancelledError) as exc:
            self.fail("%s: raised %s: %s, want %s" % (what, type(exc).__name__,
                                                      _short(str(exc)), exc_types))
            return None
        self.fail("%s: returned %s, want %s" % (what, _short(result), exc_types))
        return None


# =================================================================================
# scenarios
# =================================================================================

async def calls(run):
    conn = await run.connect()
    root = conn.root
    run.check(isinstance(root, rpyc.aio.AsyncNetref), "conn.root is a %s" % type(root))
    run.info["features"] = sorted(conn._peer_features)
    run.eq(await root.add(5, 10), 15, "add(5, 10)")
    run.eq(await root.add("a", "b"), "ab", "add('a', 'b')")
    run.eq(await root.add(2**70, 1), 2**70 + 1, "add(2**70, 1)")
    run.eq(await root.exposed_add(1, 2), 3, "exposed_add spelled out")
    run.eq(await root.kw(1, 2, x=3, y=4), ((1, 2), (("x", 3), ("y", 4))), "keyword arguments")
    for value in (None, True, 1.5, -7, b"\x00\xff", "h\u00e9llo \U0001F600", (1, (2, 3)),
                  frozenset([1, 2]), "x" * 5000, bytes(range(256)) * 40):
        run.eq(await root.echo(value), value, "echo(%s)" % _short(value, 40))
    want_name = "AIOINTEROP" if run.args.target == "ours-aio" else "INTEROP"
    run.eq(await root.get_service_name(), want_name, "get_service_name()")
    # attribute chains resolve in one await
    run.eq(await root.make_obj(5).bump(2), 7, "root.make_obj(5).bump(2)")
    obj = await root.make_obj(3)
    run.check(isinstance(obj, rpyc.aio.AsyncNetref), "make_obj gave a %s" % type(obj))
    run.eq(await obj.value, 3, "attribute of a remote object")
    run.eq(await obj.bump(), 4, "method of a remote object")
    run.eq(await rpyc.aio.len(obj), 7, "rpyc.aio.len(remote object)")
    run.eq(await rpyc.aio.repr(obj), "Thing(4)", "rpyc.aio.repr")
    run.eq(await rpyc.aio.str(obj), "thing:4", "rpyc.aio.str")
    run.eq(await rpyc.aio.getattr(obj, "nope", "dflt"), "dflt", "rpyc.aio.getattr default")
    run.eq([await root.add(i, 1) for i in range(200)], [i + 1 for i in range(200)],
           "200 sequential calls")
    await run.raises(AttributeError, "missing attribute", root.no_such_method())
    run.eq(await root.add(1, 1), 2, "connection usable")


async def callbacks(run):
    conn = await run.connect()
    root = conn.root

    async def inc(x):
        await asyncio.sleep(0)
        return x + 1

    def plain_inc(x):
        return x + 1

    run.eq(await root.call_me(inc, 20), 42, "the server calls our async def")
    run.eq(await root.call_me(plain_inc, 20), 42, "the server calls our plain def")

    async def kw(*a, **k):
        return (a, tuple(sorted(k.items())))

    run.eq(await root.call_kw(kw), ((1, 2), (("c", 3),)), "callback with keyword arguments")
    run.eq(await root.call_n(inc, 50), True, "50 callbacks in one call")

    async def pp(n):
        return await root.ping_pong(pp, n)

    run.eq(await root.ping_pong(pp, 6), 6, "nested ping-pong depth 6")

    async def bad():
        raise ValueError("from client")

    run.eq(await root.call_catch(bad), "caught:from client", "the server caught our ValueError")

    async def bad_x(x):
        raise ValueError("cb fail %d" % x)

    exc = await run.raises(ValueError, "uncaught callback exception", root.call_me(bad_x, 7))
    if exc is not None:
        run.check("cb fail 7" in str(exc), "message lost: %s" % _short(str(exc)))
    run.eq(await root.ask_client(), ("client", 42), "the server used our root (async whoami)")
    run.eq(await root.map(str, (1, 2, 3)), ("1", "2", "3"), "the server calls our builtin str")
    run.eq(await root.map(inc, [1, 2, 3]), (2, 3, 4), "the server iterates our list")
    got = await asyncio.gather(*(root.call_me(inc, i) for i in range(20)))
    run.eq(got, [(i + 1) * 2 for i in range(20)], "20 concurrent calls, each calling back")
    run.eq(await root.add(1, 1), 2, "connection usable after callbacks")


async def iteration(run):
    root = (await run.connect()).root
    run.eq([x async for x in root.gen(5)], [0, 1, 2, 3, 4], "async for over a remote generator")
    run.eq(await rpyc.aio.list(root.gen(0)), [], "empty generator")
    lst = await root.get_list()
    run.eq([x async for x in lst], [1, 2, 3], "async for over a remote list")
    run.eq(await rpyc.aio.len(lst), 3, "rpyc.aio.len(remote list)")
    run.eq(await lst[1], 2, "remote list[1]")
    run.check(await rpyc.aio.contains(lst, 2), "rpyc.aio.contains")
    await rpyc.aio.setitem(lst, slice(3, 3), tuple(range(300)))
    run.eq(await rpyc.aio.list(lst), [1, 2, 3] + list(range(300)), "303 items after setitem")
    got = []
    async for obj in root.gen_objs(4):
        got.append(await obj.value)
    run.eq(got, [0, 1, 2, 3], "generator of remote objects")
    items = []
    try:
        async for x in root.gen_fail():
            items.append(x)
    except ValueError as exc:
        run.check("gen failed" in str(exc), "message: %s" % _short(str(exc)))
    else:
        run.fail("gen_fail: no ValueError")
    run.eq(items, [1], "gen_fail items before the exception")
    d = await root.get_dict()
    run.eq(sorted([k async for k in d]), ["a", "b"], "async for over a remote dict")
    run.eq(await d["a"], 1, "remote dict['a']")
    it = await rpyc.aio.iter(root.gen(2))
    run.eq(await rpyc.aio.next(it), 0, "rpyc.aio.next 1")
    run.eq(await rpyc.aio.next(it), 1, "rpyc.aio.next 2")
    run.eq(await rpyc.aio.next(it, "end"), "end", "rpyc.aio.next default")
    run.eq(await root.add(1, 1), 2, "connection usable after iteration")


async def exceptions(run):
    root = (await run.connect()).root
    exc = await run.raises(ValueError, "fail_value('boom')", root.fail_value("boom"))
    if exc is not None:
        run.eq(exc.args, ("boom",), "ValueError args")
        run.check("Remote Traceback" in str(exc), "no 'Remote Traceback' in str(exc)")
        tb = getattr(exc, "_remote_tb", None)
        run.check(isinstance(tb, str) and "ValueError" in tb, "_remote_tb: %s" % _short(tb))
    exc = await run.raises(KeyError, "fail_key", root.fail_key("missing"))
    if exc is not None:
        run.eq(exc.args, ("missing",), "KeyError args")
    exc = await run.raises(Exception, "fail_custom", root.fail_custom("custom msg", 42))
    custom_exception(run, exc, rpyc.GenericException)
    exc = await run.raises(RuntimeError, "fail_chained", root.fail_chained())
    if exc is not None:
        run.check("outer" in str(exc), "'outer' missing")
    await run.raises(AttributeError, "not exposed", root.on_connect)
    # exceptions of concurrent calls reach the right awaits
    outcomes = await asyncio.gather(
        *(root.fail_value("e%d" % i) if i % 2 else root.add(i, 0) for i in range(20)),
        return_exceptions=True)
    for i, got in enumerate(outcomes):
        if i % 2:
            run.check(isinstance(got, ValueError) and got.args == ("e%d" % i,),
                      "concurrent call %d: %s" % (i, _short(got)))
        else:
            run.eq(got, i, "concurrent call %d" % i)
    run.eq(await root.add(1, 1), 2, "connection usable after exceptions")


async def context_manager(run):
    root = (await run.connect()).root
    async with root.ctx() as v:
        run.eq(v, "entered", "__enter__ value")
    run.eq(await root.ctx_log(), ("enter", "exit-ok"), "log after clean exit")
    try:
        async with root.ctx():
            raise KeyError("inside")
    except KeyError as exc:
        run.eq(exc.args, ("inside",), "propagated exception args")
    else:
        run.fail("exception inside the async with-block was swallowed")
    run.eq((await root.ctx_log())[2:], ("enter", "exit-exc"), "log after exception")
    try:
        async with root.ctx(True):
            raise KeyError("suppressed")
    except KeyError:
        run.fail("__exit__ returned True but the exception propagated")
    run.eq((await root.ctx_log())[4:], ("enter", "exit-exc"), "log after suppressed exception")
    async with root.gen_ctx() as v:
        run.eq(v, "gen-entered", "contextlib __enter__ value")
    run.eq((await root.ctx_log())[6:], ("gen-enter", "gen-ok"), "contextlib clean exit")
    try:
        async with root.gen_ctx():
            raise ValueError("gen")
    except ValueError:
        pass
    else:
        run.fail("contextlib: exception swallowed")
    run.eq((await root.ctx_log())[8:], ("gen-enter", "gen-exc"), "contextlib exit with exception")


async def identity(run):
    """Objects come back as themselves: ours returned by the server, and the server's
    returned by our ``async def`` callback."""
    conn = await run.connect(sync_request_timeout=5)
    root = conn.root
    mine = [1, 2, 3]
    back = await root.echo((mine, 1))
    run.check(back[0] is mine, "a tuple holding our list: %s" % _short(back))
    run.check((await root.echo(mine)) is mine, "our list did not come back as itself")
    if run.args.target == "ours-aio":
        run.check((await root.echo_plain(mine)) is mine,
                  "our list did not come back as itself (plain def echo)")
    obj = await root.make_obj(4)
    run.check((await root.echo(obj)) == obj, "the server's object did not come back as itself")

    async def ident(o):
        await asyncio.sleep(0)
        return o

    got = await root.map(ident, (obj,))
    run.check(len(got) == 1 and got[0] == obj,
              "the server's object, returned by our async def callback: %s" % _short(got))
    run.eq(await root.add(1, 1), 2, "connection usable")


async def gather(run):
    root = (await run.connect()).root
    got = await asyncio.gather(*(root.add(i, i) for i in range(50)))
    run.eq(got, [2 * i for i in range(50)], "gather of 50 add calls")
    got = await asyncio.gather(*(root.sleep_add(0.01, i, 1) for i in range(50)))
    run.eq(got, [i + 1 for i in range(50)], "gather of 50 sleep_add calls")
    payloads = [("x", i, "y" * (i * 100)) for i in range(50)]
    got = await asyncio.gather(*(root.echo(p) for p in payloads))
    run.eq(got, payloads, "gather of 50 echoes of different sizes (some compressed)")
    objs = await asyncio.gather(*(root.make_obj(i) for i in range(50)))
    got = await asyncio.gather(*(o.bump(1) for o in objs))
    run.eq(got, [i + 1 for i in range(50)], "gather of 50 calls on 50 remote objects")


async def times_out(run, awaitable, timeout, what):
    """``asyncio.wait_for(awaitable, timeout)`` must time out (a failure naming what if not)."""
    try:
        await asyncio.wait_for(awaitable, timeout)
    except asyncio.TimeoutError:
        return
    run.fail("%s did not time out" % what)


async def cancel_task(run, task, what):
    """Cancel task: awaiting it then must raise CancelledError."""
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        return
    run.fail("%s: the task was not cancelled" % what)


async def cancel_report(run, root, key, since, lags, lag_name, what):
    """The server's record of ``slow(key)`` (or ``slow_callback``): (state, started, ended).
    A failure naming what unless it was cancelled; then lags[lag_name] is how long after
    ``since`` (time.monotonic()) the handler got CancelledError."""
    state, started, ended = await root.cancel_report(key, 2.0)
    run.eq(state, "cancelled", what)
    if state == "cancelled":
        lags[lag_name] = ended - since
    return state, started, ended


async def cancel(run):
    """Cancelled calls: the await ends at once, the late answer is dropped, and the
    connection goes on with every later answer matched to its own call."""
    conn = await run.connect()
    root = conn.root
    t0 = time.monotonic()
    await times_out(run, root.sleep_add(0.6, 1, 2), 0.1, "wait_for(sleep_add(0.6), 0.1)")
    dt = time.monotonic() - t0
    run.info["timeout_after"] = round(dt, 3)
    run.check(dt < 0.45, "wait_for(..., 0.1) raised only after %.2f s" % dt)
    run.eq(await root.add(100, 200), 300, "the call after a cancelled one")
    got = await asyncio.gather(*(root.add(i, 1000) for i in range(20)))
    run.eq(got, [i + 1000 for i in range(20)], "20 calls after the cancelled one")

    task = asyncio.ensure_future(root.sleep_add(0.3, 5, 5))
    await asyncio.sleep(0.05)
    await cancel_task(run, task, "task.cancel() of a pending call")
    await asyncio.sleep(0.4)  # its late answer arrives meanwhile: nothing awaits it
    run.eq(await root.echo("after"), "after", "a call after the late answer")

    tasks = [asyncio.ensure_future(root.sleep_add(0.05, k, 0)) for k in range(6)]
    await asyncio.sleep(0.01)
    for k in range(1, 6, 2):
        tasks[k].cancel()
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    for k, got in enumerate(outcomes):
        if k % 2:
            run.check(isinstance(got, asyncio.CancelledError),
                      "cancelled call %d: %s" % (k, _short(got)))
        else:
            run.eq(got, k, "call %d beside cancelled ones" % k)
    run.eq(await root.add(1, 1), 2, "connection usable after cancellations")

    # cancelled while the server is calling us back: our callback still answers (or is
    # cancelled, between rpyc-rs peers), the server's late answer is dropped
    async def slow_inc(x):
        await asyncio.sleep(0.3)
        return x + 1

    await times_out(run, root.call_me(slow_inc, 1), 0.1, "wait_for(call_me(slow callback), 0.1)")
    await asyncio.sleep(0.5)
    run.eq(await root.call_me(slow_inc, 2), 6, "call_me after a cancelled call_me")
    await asyncio.sleep(0.2)
    run.eq(await root.echo(("last", 1)), ("last", 1), "a call after every late answer")
    run.check(not conn.closed, "the connection closed")
    run.info["pending_after"] = len(conn._pending)
    run.eq(len(conn._pending), 0, "requests still pending on the connection")

    # sync_request_timeout expiry on an rpyc.aio connection
    conn2 = await run.connect(sync_request_timeout=0.2)
    exc = await run.raises(TimeoutError, "sleep_add(0.8) with sync_request_timeout=0.2",
                           conn2.root.sleep_add(0.8, 1, 1))
    await asyncio.sleep(0.9)
    run.eq(await conn2.root.add(2, 2), 4, "a call after a request timed out")
    run.check(not conn2.closed, "the connection closed after a request timed out")


async def ticker(run):
    """The server calls back on its own (a thread of a ThreadedServer, a task of an aio
    server) after the call that started it returned: the loop serves those requests."""
    root = (await run.connect()).root
    for use_async in (False, True):
        ticks = []

        async def cb(i):
            await asyncio.sleep(0)
            ticks.append(i)

        run.eq(await root.start_ticker(cb, 5, 0.02, use_async), True, "start_ticker")
        for _ in range(500):
            if len(ticks) >= 5:
                break
            await asyncio.sleep(0.01)
        run.eq(sorted(ticks), [0, 1, 2, 3, 4], "ticks (use_async=%s)" % use_async)
    run.eq(await root.add(1, 1), 2, "connection usable after the ticks")


async def big(run):
    root = (await run.connect(sync_request_timeout=30)).root
    n = 8 * 1024 * 1024
    data = make_bytes(n, 1)
    run.eq(tuple(await root.digest(data)), digest(data), "digest of 8 MiB sent")
    got = await root.echo(data)
    run.check(got == data, "echo of 8 MiB: %d bytes back, equal=%s" % (len(got), got == data))
    made = await root.make_bytes(n, 2)
    run.eq(digest(made), digest(make_bytes(n, 2)), "8 MiB made by the server")
    chunks = [make_bytes(2 * 1024 * 1024, k) for k in range(4)]
    got = await asyncio.gather(*(root.echo(c) for c in chunks))
    run.check(got == chunks, "4 concurrent echoes of 2 MiB")
    run.eq(await root.add(1, 1), 2, "connection usable after big frames")


async def netref_churn(run):
    conn = await run.connect(sync_request_timeout=30)
    root = conn.root
    await root.add(0, 0)
    gc.collect()
    base = await root.table_size()
    objs = await asyncio.gather(*(root.make_obj(i) for i in range(1000)))
    run.eq(await root.table_size() - base, 1000, "server object table growth")
    got = await asyncio.gather(*(o.value for o in objs[::100]))
    run.eq(got, list(range(0, 1000, 100)), "remote objects work")
    del objs, got
    gc.collect()
    size = None
    for _ in range(200):
        size = await root.table_size()
        if size == base:
            break
        await asyncio.sleep(0.05)
    run.eq(size, base, "server object table back to baseline after our proxies died")

    class Obj:
        pass

    async def factory():
        return Obj()

    base = own_table(conn)
    run.eq(await root.pull_objs(factory, 300), 300, "server held 300 distinct proxies of ours")
    for _ in range(200):
        if own_table(conn) == base:
            break
        await asyncio.sleep(0.05)
    run.eq(own_table(conn), base,
           "our object table back to baseline after the server's proxies died")


async def close_pending(run):
    """Closing a connection with calls in flight ends their awaits with EOFError at once;
    the server goes on with other connections."""
    conn = await run.connect()
    root = conn.root
    pending = [asyncio.ensure_future(root.sleep_add(1.0, k, 0)) for k in range(3)]
    await asyncio.sleep(0.05)
    t0 = time.monotonic()
    await asyncio.wait_for(conn.aclose(), 5)
    outcomes = await asyncio.wait_for(asyncio.gather(*pending, return_exceptions=True), 5)
    dt = time.monotonic() - t0
    run.check(all(isinstance(o, EOFError) for o in outcomes),
              "pending calls after aclose(): %s" % _short(outcomes))
    run.check(dt < 0.5, "pending awaits ended %.2f s after aclose()" % dt)
    await run.raises(EOFError, "a call on the closed connection", root.add(1, 1))
    other = (await run.connect()).root
    run.eq(await other.add(2, 2), 4, "a new connection works")


async def cancel_reaches_handler(run):
    """Between rpyc-rs peers the cancelled call's handler gets CancelledError (within
    100 ms on loopback), other handlers of the connection go on."""
    conn = await run.connect()
    root = conn.root
    run.eq(sorted(conn._peer_features), OUR_FEATURES, "features negotiated with our aio server")
    tag = uuid.uuid4().hex[:8]
    lags = {}

    key = tag + "-wait_for"
    await times_out(run, root.slow(key, 10), 0.1, "wait_for(slow(10), 0.1)")
    t_timeout = time.monotonic()
    state, started, ended = await cancel_report(run, root, key, t_timeout, lags, "wait_for",
                                                "the handler of a call cancelled by wait_for")
    if state == "cancelled":
        run.check(ended - started < 0.5, "the handler ran %.3f s before its cancellation"
                  % (ended - started))

    key = tag + "-task"
    task = asyncio.ensure_future(root.slow(key, 10))
    await root.wait_started(key, 5)
    t_cancel = time.monotonic()
    await cancel_task(run, task, "task.cancel()")
    await cancel_report(run, root, key, t_cancel, lags, "task.cancel",
                        "the handler of a call cancelled by task.cancel()")

    # a sibling handler of the same connection is not affected
    keep_key, victim_key = tag + "-keep", tag + "-victim"
    keep = asyncio.ensure_future(root.slow(keep_key, 0.3))
    victim = asyncio.ensure_future(root.slow(victim_key, 10))
    await root.wait_started(victim_key, 5)
    victim.cancel()
    run.eq(await keep, keep_key, "the sibling call's result")
    run.eq((await root.cancel_report(keep_key, 2.0))[0], "finished", "the sibling handler")
    run.eq((await root.cancel_report(victim_key, 2.0))[0], "cancelled", "the cancelled handler")

    # the cancellation goes on down a chain: the server's handler awaits our callback
    cb = {}

    async def hang():
        cb["started"] = time.monotonic()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cb["state"], cb["at"] = "cancelled", time.monotonic()
            raise
        cb["state"] = "finished"
        return "hung"

    key = tag + "-chain"
    await times_out(run, root.slow_callback(key, hang), 0.3,
                    "wait_for(slow_callback(hang), 0.3)")
    t_timeout = time.monotonic()
    await cancel_report(run, root, key, t_timeout, lags, "chain: server handler",
                        "the server's handler awaiting our callback")
    for _ in range(100):
        if "state" in cb:
            break
        await asyncio.sleep(0.01)
    run.check("started" in cb, "our callback was never called")
    run.eq(cb.get("state"), "cancelled", "our callback, after its caller's handler was cancelled")
    if cb.get("state") == "cancelled":
        lags["chain: our callback"] = cb["at"] - t_timeout

    # sync_request_timeout expiry cancels the handler too
    conn2 = await run.connect(sync_request_timeout=0.2)
    key = tag + "-expiry"
    try:
        await conn2.root.slow(key, 10)
    except TimeoutError:
        pass
    else:
        run.fail("slow(10) with sync_request_timeout=0.2 did not time out")
    t_timeout = time.monotonic()
    await cancel_report(run, root, key, t_timeout, lags, "sync_request_timeout",
                        "the handler of a call that expired (sync_request_timeout)")
    run.eq(await conn2.root.aadd(2, 2), 4, "the connection of the expired call goes on")

    run.info["lags_ms"] = {k: round(v * 1000, 1) for k, v in lags.items()}
    for what, lag in lags.items():
        run.check(lag < 0.1, "%s: CancelledError %.0f ms after the client stopped waiting"
                  % (what, lag * 1000))
    run.eq(await root.aadd(1, 2), 3, "connection usable after cancellations")
    run.eq(await root.tasks_serving(), 0, "handler tasks left running on the server")


async def classic(run):
    async with rpyc.aio.classic.connect(run.args.host, run.args.port,
                                        config={"sync_request_timeout": SYNC_TIMEOUT}) as conn:
        run.eq(await conn.modules.os.getpid(), run.args.pid, "modules.os.getpid() is the server's")
        run.eq(await conn.eval("1+1"), 2, "eval('1+1')")
        await conn.execute("x = 41")
        run.eq(await conn.eval("x + 1"), 42, "execute, then eval")
        ns = await conn.namespace
        run.eq(await ns["x"], 41, "namespace['x']")
        run.eq(await conn.modules["os.path"].join("a", "b"), os.path.join("a", "b"),
               "modules['os.path'].join")
        if run.args.target == "ours-aio":
            # the aio server's builtins see our list as an async netref, on which len()
            # cannot wait for us: a TypeError naming the awaitable helper
            exc = await run.raises(TypeError, "builtins.len on our list",
                                   conn.builtins.len([1, 2, 3]))
            if exc is not None:
                run.check("rpyc.aio.len" in str(exc), "TypeError without the helper's name")
        else:
            run.eq(await conn.builtins.len([1, 2, 3]), 3, "builtins.len on our list")
        run.eq(await conn.builtins.len("abc"), 3, "builtins.len on a str (by value)")
        rlist = await conn.builtins.list()
        await rlist.append(5)
        run.eq(await rpyc.aio.list(rlist), [5], "append on a remote list")
        await run.raises(ZeroDivisionError, "eval('1/0')", conn.eval("1/0"))

        def mul(a, b=2):
            return a * b

        rf = await conn.teleport(mul)
        run.eq(await rf(3), 6, "teleported function")
        run.eq(await conn.eval("mul(5, 3)"), 15, "teleported function in the namespace")

        def where():
            import os
            return os.getpid()

        rw = await conn.teleport(where)
        run.eq(await rw(), run.args.pid, "a teleported function runs in the server")
        got = await asyncio.gather(*(conn.eval("%d * 2" % i) for i in range(50)))
        run.eq(got, [i * 2 for i in range(50)], "gather of 50 evals")


async def shared(run):
    """One of several clients (sync and async, both implementations) on one aio server."""
    tag = run.args.tag
    root = (await run.connect()).root
    me = "aio-%d" % os.getpid()
    met = await root.rendezvous(tag, run.args.parties, 30)
    run.check(met >= run.args.parties, "rendezvous returned %r" % (met,))

    async def echo_cb(x):
        return (me, x)

    for start in range(0, 200, 20):
        got = await asyncio.gather(*(root.aadd(i, 7) for i in range(start, start + 20)))
        if not run.eq(got, [i + 7 for i in range(start, start + 20)], "aadd batch %d" % start):
            break
        run.eq(await root.apply(echo_cb, start), (me, start), "callback %d" % start)
        await asyncio.gather(*(root.incr(tag + "-calls") for _ in range(20)))
    run.info["me"] = me


SCENARIOS = ("calls", "callbacks", "iteration", "exceptions", "context_manager", "identity",
             "gather", "cancel", "ticker", "big", "netref_churn", "close_pending",
             "cancel_reaches_handler", "classic", "shared")


async def run_one(name, args):
    run = Run(args)
    t0 = time.monotonic()
    try:
        await asyncio.wait_for(globals()[name](run), args.timeout)
    except asyncio.TimeoutError:
        run.fail("scenario timed out after %ss\n%s"
                 % (args.timeout, traceback.format_exc()[-2000:]))
    except Exception as exc:
        run.fail(unexpected(exc))
    finally:
        await run.close_all()
    return {"scenario": name, "ok": not run.failures, "failures": run.failures,
            "info": run.info, "seconds": round(time.monotonic() - t0, 3)}


async def amain(args):
    all_ok = True
    for name in args.scenario:
        result = await run_one(name, args)
        all_ok &= result["ok"]
        print(json.dumps(result, default=repr), flush=True)
    return all_ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--target", choices=("upstream", "ours-sync", "ours-aio"), required=True)
    ap.add_argument("--scenario", action="append", choices=SCENARIOS, required=True)
    ap.add_argument("--timeout", type=float, default=60, help="per scenario, seconds")
    ap.add_argument("--pid", type=int, default=0)
    ap.add_argument("--tag", default="")
    ap.add_argument("--parties", type=int, default=1)
    args = ap.parse_args()
    # hard bound: dump the stacks and exit if the loop itself is stuck
    faulthandler.dump_traceback_later(args.timeout * len(args.scenario) + 10, exit=True)
    print(json.dumps({"impl": impl_info(rpyc)}), flush=True)
    ok = asyncio.run(amain(args))
    sys.stdout.flush()
    os._exit(0 if ok else 1)


if __name__ == "__main__":
    main()
