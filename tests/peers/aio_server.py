#!/usr/bin/env python
"""Interop peer: an ``rpyc.aio`` server (ours only: ``rpyc.aio.serve`` on one event loop) on
127.0.0.1, ephemeral port, for tests/interop/test_aio_interop.py.

Protocol with the harness (stdout, line-oriented, flushed), as tests/peers/server.py:
    IMPL {"version": ..., "file": ..., "native": bool}
    PORT <n>          -- printed once the listener is accepting
Then it serves until stdin reaches EOF (or is closed), SIGTERM/SIGKILL, or --max-lifetime
seconds elapse. Anything else (the ``rpyc.aio`` logger at WARNING) goes to stderr; SIGUSR1
writes the stacks of every thread there (faulthandler).

Options:
    --mode interop|classic|catalog
                              interop: AioInteropService (below); classic: rpyc.SlaveService;
                              catalog: tests/peers/server.py's InteropService adapted to
                              rpyc.aio (for the catalog scenarios of tests/peers/client.py)
    --max-lifetime SECONDS    safety net against orphaned servers (default 1800)

``AioInteropService`` has the names of tests/peers/server.py's ``InteropService`` that the
aio clients use (``add``, ``echo``, ``call_me``, ``ping_pong``, ``gen``, ``ctx``,
``sleep_add``...), most of them as ``async def`` handlers, plus what only an event-loop
server can do: handlers awaiting callbacks concurrently, a rendezvous of several clients,
and a record of handlers that were cancelled (``slow`` / ``cancel_report``).
"""

import argparse
import asyncio
import faulthandler
import json
import logging
import os
import signal
import sys
import threading
import time

from peer_common import digest, impl_info, make_bytes

faulthandler.enable()
if hasattr(signal, "SIGUSR1"):  # the harness asks for the stacks of a server that hangs
    faulthandler.register(signal.SIGUSR1, all_threads=True)

import rpyc  # noqa: E402  (must be ours: rpyc.aio)
import rpyc.aio  # noqa: E402
import server as sync_server  # noqa: E402  (tests/peers/server.py: what both services share)


# clients expect the class of the server's exceptions in __main__, as when server.py runs
InteropError = sync_server.InteropError
InteropError.__module__ = "__main__"
Thing = sync_server.Thing  # returned by reference


class AsyncThing:
    """An object whose methods (and __call__) are coroutine functions."""

    def __init__(self, value):
        self.value = value

    async def exposed_get(self):
        await asyncio.sleep(0)
        return self.value

    async def exposed_add(self, n):
        self.value += n
        return self.value

    async def __call__(self, x):
        return ("called", self.value, x)


class Shared:
    """State shared by every connection (all of it lives on the loop's thread)."""

    server = None
    connects = 0
    disconnects = 0
    groups = {}      # rendezvous name -> [count, asyncio.Event]
    counters = {}    # name -> int
    slow = {}        # key -> {"state", "started", "ended", "event", "started_event"}


_background = set()  # tasks started by handlers (kept referenced)


async def _await(awaitable):
    return await awaitable


def _slow_record(key):
    rec = Shared.slow.get(key)
    if rec is None:
        rec = Shared.slow[key] = {"state": "unknown", "started": None, "ended": None,
                                  "event": asyncio.Event(), "started_event": asyncio.Event()}
    return rec


async def _recorded(key, start):
    """Awaits ``start()``, recording in ``Shared.slow[key]`` when it started and whether it
    finished or was cancelled (CancelledError), and when."""
    rec = _slow_record(key)
    rec["state"], rec["started"] = "running", time.monotonic()
    rec["started_event"].set()
    try:
        result = await start()
    except asyncio.CancelledError:
        rec["state"], rec["ended"] = "cancelled", time.monotonic()
        rec["event"].set()
        raise
    rec["state"], rec["ended"] = "finished", time.monotonic()
    rec["event"].set()
    return result


class AwaitingService:
    """The handlers of tests/peers/server.py's ``InteropService`` that use the client's
    objects (its callbacks, its lists), for rpyc.aio: they await them. Both aio services
    have them (``AioInteropService`` and the catalog's ``InteropService``)."""

    async def exposed_pull_objs(self, factory, n):
        """Holds n objects of the client (proxies), then drops them."""
        import gc
        objs = [await factory() for _ in range(n)]
        distinct = len(set(id(o) for o in objs))
        del objs
        gc.collect()
        return distinct

    async def exposed_start_ticker(self, cb, n, interval, use_async):
        """A background task calls ``cb(i)`` n times after this handler returned: awaited
        one after the other, or (use_async) fired without waiting for the answers."""
        async def tick():
            try:
                for i in range(n):
                    await asyncio.sleep(interval)
                    if use_async:
                        pending.append(asyncio.ensure_future(_await(cb(i))))
                    else:
                        await cb(i)
                if pending:
                    await asyncio.gather(*pending)
            except Exception as exc:  # reported on stderr
                print("ticker failed: %r" % (exc,), file=sys.stderr, flush=True)

        pending = []
        task = asyncio.ensure_future(tick())
        _background.add(task)
        task.add_done_callback(_background.discard)
        return True

    # --- callbacks into the client (awaited: the handler's task waits, the loop serves) ----
    async def exposed_call_me(self, fn, x):
        return (await fn(x)) * 2

    async def exposed_call_kw(self, fn):
        return await fn(1, 2, c=3)

    async def exposed_call_n(self, fn, n):
        return [await fn(i) for i in range(n)] == [i + 1 for i in range(n)]

    async def exposed_ping_pong(self, fn, n):
        if n <= 0:
            return 0
        return (await fn(n - 1)) + 1

    async def exposed_call_catch(self, fn):
        try:
            await fn()
        except ValueError as exc:
            return "caught:%s" % (exc.args[0],)
        return "not raised"

    async def exposed_ask_client(self):
        root = await self._conn.fetch_root()
        return (await root.whoami(), await root.add_one(41))

    async def exposed_map(self, fn, values):
        if isinstance(values, rpyc.aio.AsyncNetref):
            return tuple([await fn(v) async for v in values])
        return tuple([await fn(v) for v in values])


class AioInteropService(AwaitingService, rpyc.Service):
    def on_connect(self, conn):
        # _conn, _list, _dict, _ctx_log (and server.py's own counters, unused here)
        sync_server.InteropService.on_connect(self, conn)
        Shared.connects += 1

    def on_disconnect(self, conn):
        Shared.disconnects += 1

    # --- plain calls: an async def, a plain def (executor thread), an inline def --------
    async def exposed_aadd(self, a, b):
        await asyncio.sleep(0)
        return a + b

    def exposed_add(self, a, b):
        return a + b

    @rpyc.aio.inline
    def exposed_inline_add(self, a, b):
        return a + b

    async def exposed_echo(self, value):
        await asyncio.sleep(0)  # (suspends once: answered by the handler's task)
        return value

    def exposed_echo_plain(self, value):
        return value

    async def exposed_kw(self, *args, **kwargs):
        return (args, tuple(sorted(kwargs.items())))

    async def exposed_where(self):
        """Which thread runs an async handler: the loop's (the main thread)."""
        return "loop" if threading.current_thread() is threading.main_thread() else "worker"

    def exposed_where_plain(self):
        return "loop" if threading.current_thread() is threading.main_thread() else "worker"

    async def exposed_stats(self):
        clients = len(Shared.server.clients) if Shared.server is not None else -1
        return (Shared.connects, Shared.disconnects, clients)

    def exposed_default_workers(self):
        """How many threads the loop's default executor (plain def handlers) may have."""
        return min(32, (os.cpu_count() or 1) + 4)

    def exposed_pid(self):
        return os.getpid()

    def exposed_make_obj(self, value=0):
        return Thing(value)

    def exposed_make_async_obj(self, value):
        return AsyncThing(value)

    def exposed_deferred(self, x):
        """A plain def (executor thread) returning a coroutine: awaited on the loop."""
        async def later():
            await asyncio.sleep(0)
            return ("later", x)
        return later()

    def exposed_digest(self, data):
        return digest(data)

    def exposed_make_bytes(self, n, salt=0):
        return make_bytes(n, salt)

    exposed_table_size = sync_server.InteropService.exposed_table_size

    # --- callbacks into the client (awaited: the handler's task waits, the loop serves) ----
    async def exposed_apply(self, fn, x):
        return await fn(x)

    async def exposed_apply_twice(self, fn, x):
        return await fn(await fn(x))

    async def exposed_apply_many(self, fn, n):
        """n callbacks in flight at once (the client serves them while it waits)."""
        return tuple(await asyncio.gather(*(fn(i) for i in range(n))))

    def exposed_block_apply(self, fn, x):
        """A plain def (executor thread) using a callback through rpyc.aio.block."""
        return rpyc.aio.block(fn(x), 10) * 3

    async def exposed_remote_len(self, obj):
        return await rpyc.aio.len(obj)

    async def exposed_sum_remote(self, obj):
        total = 0
        async for item in obj:
            total += item
        return total

    # --- exceptions ----------------------------------------------------------------
    async def exposed_fail_value(self, msg):
        raise ValueError(msg)

    def exposed_fail_key(self, key):
        return {}[key]

    async def exposed_fail_custom(self, msg, code):
        raise InteropError(msg, code)

    async def exposed_fail_chained(self):
        await asyncio.sleep(0)
        try:
            raise KeyError("inner")
        except KeyError as exc:
            raise RuntimeError("outer") from exc

    async def exposed_fail_late(self, msg):
        await asyncio.sleep(0.01)
        raise ValueError(msg)

    # --- references, iteration, context managers ----------------------------------
    def exposed_get_list(self):
        return self._list

    def exposed_get_big_list(self, n):
        return list(range(n))

    def exposed_get_dict(self):
        return self._dict

    # (as tests/peers/server.py's, on an executor thread)
    exposed_gen = sync_server.InteropService.exposed_gen
    exposed_gen_objs = sync_server.InteropService.exposed_gen_objs
    exposed_gen_fail = sync_server.InteropService.exposed_gen_fail
    exposed_ctx = sync_server.InteropService.exposed_ctx
    exposed_gen_ctx = sync_server.InteropService.exposed_gen_ctx

    async def exposed_ctx_log(self):
        return tuple(self._ctx_log)

    # --- time ----------------------------------------------------------------------
    def exposed_sleep(self, seconds):
        """Blocks its executor thread, not the loop."""
        time.sleep(seconds)
        return seconds

    async def exposed_asleep(self, seconds):
        await asyncio.sleep(seconds)
        return seconds

    async def exposed_sleep_add(self, seconds, a, b):
        await asyncio.sleep(seconds)
        return a + b

    # --- several clients at once ------------------------------------------------------
    async def exposed_rendezvous(self, group, n, timeout):
        """Returns once n calls of ``group`` are being served at the same time."""
        entry = Shared.groups.setdefault(group, [0, asyncio.Event()])
        entry[0] += 1
        if entry[0] >= n:
            entry[1].set()
        try:
            await asyncio.wait_for(entry[1].wait(), timeout)
        except asyncio.TimeoutError:
            raise TimeoutError("rendezvous %r: %d of %d arrived within %ss"
                               % (group, entry[0], n, timeout)) from None
        return entry[0]

    async def exposed_incr(self, name, by=1):
        Shared.counters[name] = Shared.counters.get(name, 0) + by
        return Shared.counters[name]

    async def exposed_counter(self, name):
        return Shared.counters.get(name, 0)

    # --- cancellation ----------------------------------------------------------------
    async def exposed_slow(self, key, seconds):
        """Sleeps; records whether it finished or was cancelled (CancelledError), and when
        (time.monotonic(): one clock for every process of the machine on Linux)."""
        await _recorded(key, lambda: asyncio.sleep(seconds))
        return key

    async def exposed_slow_callback(self, key, fn):
        """Awaits a callback of the client; records its own cancellation."""
        return await _recorded(key, fn)

    async def exposed_wait_started(self, key, timeout):
        rec = _slow_record(key)
        await asyncio.wait_for(rec["started_event"].wait(), timeout)
        return rec["started"]

    async def exposed_cancel_report(self, key, timeout):
        """(state, started, ended) of ``slow(key)`` once it ended, or after ``timeout``."""
        rec = _slow_record(key)
        try:
            await asyncio.wait_for(rec["event"].wait(), timeout)
        except asyncio.TimeoutError:
            pass
        return (rec["state"], rec["started"], rec["ended"])

    async def exposed_tasks_serving(self):
        """How many handler tasks this connection is running (besides this one)."""
        me = asyncio.current_task()
        return len([t for t in self._conn._serving.values() if t is not me and not t.done()])


def catalog_service():
    """tests/peers/server.py's ``InteropService`` (the one the catalog scenarios of
    tests/peers/client.py expect) served by rpyc.aio: its handlers that use the client's
    objects (callbacks, the client's lists) await them instead, and the ones that start
    threads use the loop. Same class name, so the same service name (INTEROP)."""
    base = sync_server.InteropService

    class InteropService(AwaitingService, base):
        async def exposed_setitem(self, obj, key, value):
            await rpyc.aio.setitem(obj, key, value)

        async def exposed_getitem(self, obj, key):
            return await obj[key]

        async def exposed_length(self, obj):
            return await rpyc.aio.len(obj)

        async def exposed_close_soon(self, delay):
            asyncio.get_running_loop().call_later(delay, self._conn.close)
            return True

    return InteropService


async def amain(args):
    def out(line):
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    out("IMPL " + json.dumps(impl_info(rpyc)))
    if args.mode == "classic":
        service = rpyc.SlaveService
    elif args.mode == "catalog":
        service = catalog_service()
    else:
        service = AioInteropService
    server = await rpyc.aio.serve(service, hostname="127.0.0.1", port=0)
    Shared.server = server
    out("PORT %d" % server.port)

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def watch_stdin():
        try:
            while sys.stdin.buffer.read(4096):
                pass
        except (OSError, ValueError):
            pass
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=watch_stdin, name="stdin-watch", daemon=True).start()
    try:
        await asyncio.wait_for(stop.wait(), args.max_lifetime)
    except asyncio.TimeoutError:
        print("max lifetime reached", file=sys.stderr, flush=True)
    server.close()
    try:
        await asyncio.wait_for(server.wait_closed(), 5)
    except asyncio.TimeoutError:
        print("server.wait_closed() took more than 5 s", file=sys.stderr, flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=("interop", "classic", "catalog"), default="interop")
    ap.add_argument("--max-lifetime", type=float, default=1800.0)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="aio_server %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(amain(args))
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


if __name__ == "__main__":
    main()
