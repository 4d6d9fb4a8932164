"""rpyc.aio end to end over real sockets: the client API (awaited calls, attribute chains,
pipelining, callbacks, iteration, context managers, the awaitable helpers), the server
(async and plain handlers, on_connect/on_disconnect), and mixing with blocking peers."""

import asyncio
import errno
import os
import socket
import tempfile
import threading
import time

import pytest

import rpyc
import rpyc.aio
from rpyc.utils.authenticators import AuthenticationError
from rpyc.core import consts
from rpyc.utils.server import ThreadedServer

from aio_support import run


class Thing:
    def __init__(self) -> None:
        self.exposed_value = 7
        self.log = []

    def exposed_method(self, x):
        return ("method", x)

    def __enter__(self):
        self.log.append("enter")
        return self

    def __exit__(self, typ, exc, tb):
        self.log.append(("exit", typ.__name__ if typ else None))
        return False


class Calc(rpyc.Service):
    def __init__(self) -> None:
        self.thing = Thing()
        self.arrived = 0
        self.all_arrived = asyncio.Event()
        self.loop_thread = None

    async def exposed_add(self, x, y):
        await asyncio.sleep(0)
        return x + y

    def exposed_sub(self, x, y):
        return x - y

    def exposed_blocking(self, seconds):
        time.sleep(seconds)
        return seconds

    def exposed_thread_of_plain(self):
        return threading.get_ident()

    @rpyc.aio.inline
    def exposed_thread_of_inline(self):
        return threading.get_ident()

    async def exposed_thread_of_async(self):
        return threading.get_ident()

    async def exposed_apply(self, fn, x):
        return await fn(x)

    async def exposed_kind_of(self, obj):
        return type(obj).__name__

    async def exposed_wait_for_all(self, n):
        # Returns only once n requests are being served at once: proves pipelining.
        self.arrived += 1
        if self.arrived >= n:
            self.all_arrived.set()
        await asyncio.wait_for(self.all_arrived.wait(), 10)
        return self.arrived

    def exposed_get_list(self):
        return list(range(1000))

    def exposed_get_dict(self):
        return {"a": 1, "b": 2}

    def exposed_get_tuple(self):
        return (1, (2, 3), "x")

    def exposed_countdown(self, n):
        while n > 0:
            yield n
            n -= 1

    def exposed_get_thing(self):
        return self.thing

    def exposed_thing_log(self):
        return tuple(map(str, self.thing.log))

    async def exposed_fail(self):
        raise ValueError("remote failure")

    async def exposed_in_task(self):
        # handlers run in a task of their own: asyncio.timeout, current_task, contextvars
        return asyncio.current_task() is not None


async def started(service=Calc, **kwargs):
    return await rpyc.aio.serve(service, port=0, **kwargs)


def test_calls_chains_and_pipelining():
    async def main():
        async with await started() as server:
            async with rpyc.aio.connect("127.0.0.1", server.port) as conn:
                assert isinstance(conn.root, rpyc.aio.AsyncNetref)
                assert await conn.root.add(5, 10) == 15
                assert await conn.root.sub(5, 10) == -5
                assert await conn.root.in_task() is True
                # an attribute chain resolves in one await; steps after a by-value result
                # run locally
                assert await conn.root.get_thing().method(3) == ("method", 3)
                assert await conn.root.get_thing().value == 7
                assert await conn.root.get_tuple()[1][0] == 2
                results = await asyncio.gather(*(conn.root.add(i, i) for i in range(100)))
                assert results == [2 * i for i in range(100)]
                counts = await asyncio.gather(*(conn.root.wait_for_all(20) for _ in range(20)))
                assert counts == [20] * 20
            assert conn.closed

    run(main)


def test_await_connect_without_context_manager():
    async def main():
        async with await started() as server:
            conn = await rpyc.aio.connect("127.0.0.1", server.port)
            try:
                assert await conn.root.add(1, 2) == 3
            finally:
                await conn.aclose()
            with pytest.raises(EOFError):
                await conn.root.add(1, 2)

    run(main)


def test_callbacks_run_on_the_callers_loop():
    async def main():
        async with await started() as server:
            async with rpyc.aio.connect("127.0.0.1", server.port) as conn:
                async def inc(v):
                    return v + 1

                def plain_double(v):
                    return v * 2

                assert await conn.root.apply(inc, 41) == 42
                assert await conn.root.apply(plain_double, 21) == 42
                # inside an async handler the peer's objects are async netrefs
                assert await conn.root.kind_of(inc) == "AsyncNetref"

    run(main)


def test_plain_def_runs_off_the_loop_unless_inline():
    async def main():
        async with await started() as server:
            async with rpyc.aio.connect("127.0.0.1", server.port) as conn:
                loop_thread = await conn.root.thread_of_async()
                assert await conn.root.thread_of_inline() == loop_thread
                assert await conn.root.thread_of_plain() != loop_thread
                # a blocking plain def does not stall the server's loop
                start = time.perf_counter()
                slow = asyncio.ensure_future(conn.root.blocking(0.5))
                assert await conn.root.add(1, 1) == 2
                assert time.perf_counter() - start < 0.4
                assert await slow == 0.5
        async with await started(protocol_config={"aio_plain_calls": "inline"}) as server:
            async with rpyc.aio.connect("127.0.0.1", server.port) as conn:
                assert await conn.root.thread_of_plain() == await conn.root.thread_of_async()

    run(main)


def test_iteration_context_managers_and_helpers():
    async def main():
        async with await started() as server:
            async with rpyc.aio.connect("127.0.0.1", server.port) as conn:
                items = [x async for x in conn.root.get_list()]
                assert items == list(range(1000))
                lst = await conn.root.get_list()
                assert await rpyc.aio.len(lst) == 1000
                assert await lst[999] == 999
                assert [x async for x in conn.root.countdown(3)] == [3, 2, 1]
                assert await rpyc.aio.list(conn.root.countdown(2)) == [2, 1]

                async with conn.root.get_thing() as thing:
                    assert await thing.method(1) == ("method", 1)
                with pytest.raises(KeyError):
                    async with conn.root.get_thing():
                        raise KeyError("inside")
                assert await conn.root.thing_log() == ("enter", "('exit', None)", "enter", "('exit', 'KeyError')")

                d = await conn.root.get_dict()
                assert await d["a"] == 1
                assert await rpyc.aio.contains(d, "b")
                assert not await rpyc.aio.contains(d, "z")
                assert await rpyc.aio.repr(d) == "{'a': 1, 'b': 2}"
                assert await rpyc.aio.str(d) == "{'a': 1, 'b': 2}"
                assert await rpyc.aio.bool(d) is True
                assert await rpyc.aio.compare(d, d) is True
                assert await rpyc.aio.compare(d, 5) is False
                assert await rpyc.aio.compare(d, 5, "__ne__") is True
                with pytest.raises(TypeError, match="__gt__ is not supported"):
                    await rpyc.aio.compare(await conn.root.get_list(), [0], "__gt__")
                await rpyc.aio.setitem(d, "c", 3)
                await rpyc.aio.delitem(d, "a")
                assert await rpyc.aio.len(d) == 2
                assert await rpyc.aio.getattr(d, "missing", "dflt") == "dflt"
                assert "keys" in await rpyc.aio.dir(d)
                it = await rpyc.aio.iter(d)
                assert await rpyc.aio.next(it) == "b"
                assert await rpyc.aio.next(it) == "c"
                assert await rpyc.aio.next(it, "end") == "end"
                with pytest.raises(StopAsyncIteration):
                    await rpyc.aio.next(it)
                assert await (await conn.root.get_list())[3] + 1 == 4

    run(main)


def test_synchronous_operations_name_their_awaitable_helper():
    async def main():
        async with await started() as server:
            async with rpyc.aio.connect("127.0.0.1", server.port) as conn:
                lst = await conn.root.get_list()
                for op, helper in [
                    (len, "len"), (bool, "bool"), (lambda p: 3 in p, "contains"),
                    (lambda p: p.__setitem__(0, 1), "setitem"), (lambda p: p < 1, "compare"),
                ]:
                    with pytest.raises(TypeError, match=f"rpyc.aio.{helper}"):
                        op(lst)
                with pytest.raises(TypeError, match="async for"):
                    list(lst)
                # local answers that need no request
                assert "builtins.list" in repr(lst)
                assert lst == lst and hash(lst) == hash(lst)
                assert {lst: 1}[lst] == 1

    run(main)


def test_remote_exceptions_and_setattr_policy():
    async def main():
        async with await started() as server:
            async with rpyc.aio.connect("127.0.0.1", server.port) as conn:
                with pytest.raises(ValueError, match="remote failure"):
                    await conn.root.fail()
                with pytest.raises(AttributeError):
                    await conn.root.no_such_method()
                thing = await conn.root.get_thing()
                with pytest.raises(AttributeError):  # allow_setattr is off by default
                    await rpyc.aio.setattr(thing, "value", 1)
                assert await conn.root.add(1, 1) == 2  # the connection goes on

    run(main)


class Lifecycle(rpyc.Service):
    events = []

    async def on_connect(self, conn):
        await asyncio.sleep(0.05)
        self.events.append("connect")

    async def on_disconnect(self, conn):
        await asyncio.sleep(0)
        self.events.append("disconnect")

    async def exposed_events(self):
        return tuple(self.events)


def test_async_on_connect_finishes_before_requests_are_served():
    async def main():
        Lifecycle.events = []
        async with await started(Lifecycle) as server:
            async with rpyc.aio.connect("127.0.0.1", server.port) as conn:
                assert await conn.root.events() == ("connect",)
            for _ in range(100):
                if "disconnect" in Lifecycle.events:
                    break
                await asyncio.sleep(0.01)
            assert Lifecycle.events == ["connect", "disconnect"]

    run(main)


def test_server_close_ends_pending_awaits_with_eof():
    async def main():
        server = await started()
        conn = await rpyc.aio.connect("127.0.0.1", server.port)
        pending = asyncio.ensure_future(conn.root.wait_for_all(1000))
        await asyncio.sleep(0.1)
        start = time.perf_counter()
        server.close()
        with pytest.raises(EOFError):
            await pending
        assert time.perf_counter() - start < 1
        await server.wait_closed()
        assert conn.closed
        assert not server.clients

    run(main)


def test_serve_forever_and_unix_sockets():
    async def main():
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "rpyc.sock")
            server = await rpyc.aio.serve(Calc, socket_path=path)
            forever = asyncio.ensure_future(server.serve_forever())
            async with rpyc.aio.unix_connect(path) as conn:
                assert await conn.root.add(2, 3) == 5
            forever.cancel()
            with pytest.raises(asyncio.CancelledError):
                await forever
            assert not server.is_serving()
            await server.wait_closed()

    run(main)


def test_authenticators_on_both_sides():
    def server_auth(sock):
        if sock.recv(5) != b"hello":
            raise AuthenticationError("wrong greeting")
        sock.sendall(b"ok")
        return sock, "friend"

    def client_auth(sock):
        sock.sendall(b"hello")
        assert sock.recv(2) == b"ok"
        return sock, None

    class WhoAmI(rpyc.Service):
        def on_connect(self, conn):
            self.conn = conn

        async def exposed_credentials(self):
            return self.conn._config["credentials"]

    async def main():
        async with await started(WhoAmI, authenticator=server_auth) as server:
            async with rpyc.aio.connect("127.0.0.1", server.port, authenticator=client_auth) as conn:
                assert await conn.root.credentials() == "friend"
            # a peer that fails authentication is dropped; the server goes on
            loop = asyncio.get_running_loop()
            with pytest.raises((EOFError, ConnectionError, OSError)):
                await asyncio.wait_for(
                    loop.run_in_executor(None, lambda: rpyc.connect("127.0.0.1", server.port).root), 10)
            async with rpyc.aio.connect("127.0.0.1", server.port, authenticator=client_auth) as conn:
                assert await conn.root.credentials() == "friend"

    run(main)


def test_blocking_clients_and_async_clients_share_a_server():
    async def main():
        async with await started() as server:
            loop = asyncio.get_running_loop()

            def blocking_client():
                c = rpyc.connect("127.0.0.1", server.port)
                try:
                    got = [c.root.add(i, 1) for i in range(50)]
                    got.append(c.root.apply(lambda v: v * 3, 5))  # a sync callback, served inline
                    return got
                finally:
                    c.close()

            async with rpyc.aio.connect("127.0.0.1", server.port) as conn:
                sync_part = loop.run_in_executor(None, blocking_client)
                async_part = asyncio.gather(*(conn.root.add(i, 2) for i in range(50)))
                got_sync, got_async = await asyncio.gather(sync_part, async_part)
            assert got_sync == [i + 1 for i in range(50)] + [15]
            assert got_async == [i + 2 for i in range(50)]

    run(main)


def test_async_client_calls_a_threaded_server():
    class Plain(rpyc.Service):
        def exposed_add(self, x, y):
            return x + y

        def exposed_apply(self, fn, x):
            return fn(x)

    server = ThreadedServer(Plain, port=0)
    thread = threading.Thread(target=server.start, daemon=True)
    thread.start()
    try:
        async def main():
            async with rpyc.aio.connect("127.0.0.1", server.port) as conn:
                assert await conn.root.add(1, 2) == 3
                assert await asyncio.gather(*(conn.root.add(i, 0) for i in range(30))) == list(range(30))

                async def triple(v):
                    return v * 3

                assert await conn.root.apply(triple, 4) == 12

        run(main)
    finally:
        server.close()
        thread.join(5)


def test_connection_refused_names_the_address():
    async def main():
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        with pytest.raises(ConnectionRefusedError, match=f"127.0.0.1:{port}"):
            await rpyc.aio.connect("127.0.0.1", port)

    run(main)


def test_block_runs_remote_operations_from_worker_threads():
    class Worker(rpyc.Service):
        def exposed_call_back(self, fn):
            # a plain def on an executor thread may use the peer's objects through block()
            return rpyc.aio.block(fn(20)) + 1

    async def main():
        async with await started(Worker) as server:
            async with rpyc.aio.connect("127.0.0.1", server.port) as conn:
                async def plus_one(v):
                    return v + 1

                assert await conn.root.call_back(plus_one) == 22
                with pytest.raises(RuntimeError, match="stall"):
                    rpyc.aio.block(conn.root.add(1, 2))

    run(main)


class Cancellable(rpyc.Service):
    cancelled_at = None

    async def exposed_slow(self):
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            Cancellable.cancelled_at = time.perf_counter()
            raise

    async def exposed_add(self, x, y):
        return x + y


def test_cancelling_a_call_cancels_the_handler_on_an_rpyc_aio_server():
    async def main():
        async with await started(Cancellable) as server:
            async with rpyc.aio.connect("127.0.0.1", server.port) as conn:
                for cancel in ("wait_for", "task.cancel", "timeout"):
                    Cancellable.cancelled_at = None
                    if cancel == "wait_for":
                        with pytest.raises(asyncio.TimeoutError):
                            await asyncio.wait_for(conn.root.slow(), 0.05)
                    elif cancel == "task.cancel":
                        task = asyncio.ensure_future(conn.root.slow())
                        await asyncio.sleep(0.05)
                        task.cancel()
                        with pytest.raises(asyncio.CancelledError):
                            await task
                    else:
                        conn._config["sync_request_timeout"] = 0.05
                        with pytest.raises(TimeoutError, match="result expired"):
                            await conn.root.slow()
                        conn._config["sync_request_timeout"] = 30
                    gave_up = time.perf_counter()
                    while Cancellable.cancelled_at is None and time.perf_counter() - gave_up < 1:
                        await asyncio.sleep(0.005)
                    assert Cancellable.cancelled_at is not None, cancel
                    assert Cancellable.cancelled_at - gave_up < 0.1, cancel
                    # the connection goes on, answers are not mixed up
                    assert await asyncio.gather(*(conn.root.add(i, 1) for i in range(10))) == list(range(1, 11))
                assert not conn._pending

    run(main)


class Echo(rpyc.Service):
    def __init__(self):
        self.made = None

    async def exposed_echo_later(self, x):
        await asyncio.sleep(0)
        return x

    def exposed_echo_plain(self, x):
        return x

    def exposed_make_fn(self):
        import weakref

        payload = bytearray(1 << 20)

        def fn():
            return len(payload)

        self.made = weakref.ref(fn)
        return fn

    async def exposed_made_alive(self):
        import gc

        gc.collect()
        return self.made is not None and self.made() is not None


def test_handlers_may_return_the_peers_objects():
    # regression: awaiting a returned proxy looped forever and wedged the loop
    async def main():
        async with await started(Echo) as server:
            async with rpyc.aio.connect("127.0.0.1", server.port) as conn:
                mine = [1, 2, 3]
                assert await asyncio.wait_for(conn.root.echo_later(mine), 5) is mine
                assert await asyncio.wait_for(conn.root.echo_plain(mine), 5) is mine

    run(main)


def test_functions_the_peer_called_are_freed_when_it_releases_them():
    # regression: a cache of coroutine-function checks kept every called function alive
    async def main():
        async with await started(Echo) as server:
            async with rpyc.aio.connect("127.0.0.1", server.port) as conn:
                fn = await conn.root.make_fn()
                assert await fn() == 1 << 20
                del fn
                import gc

                gc.collect()
                for _ in range(100):
                    await asyncio.sleep(0.01)
                    if not await conn.root.made_alive():
                        break
                assert not await conn.root.made_alive()

    run(main)


def test_async_request_timeout_and_one_timer_for_all_requests():
    # regression: conn.async_request(..., timeout=) ignored its timeout
    async def main():
        async with await started(Cancellable) as server:
            async with rpyc.aio.connect("127.0.0.1", server.port) as conn:
                root = await conn.root
                fut = conn.async_request(consts.HANDLE_CALLATTR, root, "slow", (), (), timeout=0.05)
                with pytest.raises(TimeoutError, match="result expired"):
                    await asyncio.wait_for(fut, 5)
                # a future handed out and cancelled by its holder gives the request up too
                Cancellable.cancelled_at = None
                fut = conn.async_request(consts.HANDLE_CALLATTR, root, "slow", (), ())
                await asyncio.sleep(0.05)
                fut.cancel()
                gave_up = time.perf_counter()
                while Cancellable.cancelled_at is None and time.perf_counter() - gave_up < 1:
                    await asyncio.sleep(0.005)
                assert Cancellable.cancelled_at is not None
                # requests in flight share one timer (not a timer per request)
                loop = asyncio.get_running_loop()
                before = len(loop._scheduled)
                calls = [asyncio.ensure_future(conn.root.add(i, 1)) for i in range(500)]
                await asyncio.sleep(0)
                assert len(loop._scheduled) <= before + 1
                assert await asyncio.gather(*calls) == list(range(1, 501))
                assert not conn._pending

    run(main)


def test_connect_errors_name_the_host_and_the_loopback_default(monkeypatch):
    # as the blocking factories: tests/e2e/test_connection.py (nothing leaves 127.0.0.1: the
    # lookup failure and the refusal are simulated)
    real_getaddrinfo = socket.getaddrinfo

    def fake_getaddrinfo(host, *args, **kwargs):
        if host == "nosuchhost.invalid":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)

    async def main():
        with pytest.raises(socket.gaierror) as info:
            await rpyc.aio.connect("nosuchhost.invalid", 18861)
        assert info.value.errno == socket.EAI_NONAME
        assert "'nosuchhost.invalid'" in str(info.value) and "18861" in str(info.value)

        loop = asyncio.get_running_loop()

        async def refuse(sock, address):
            raise ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")

        monkeypatch.setattr(loop, "sock_connect", refuse)
        with pytest.raises(ConnectionRefusedError) as info:
            await rpyc.aio.connect("192.0.2.7", 18861)
        assert "192.0.2.7:18861" in str(info.value) and "listens on 127.0.0.1 only" in str(info.value)

    run(main)


def test_serve_without_hostname_announces_the_loopback_default(monkeypatch, caplog):
    import logging

    import rpyc.utils.server as server_mod

    monkeypatch.setattr(server_mod, "_loopback_default_announced", False)

    async def main():
        async with await rpyc.aio.serve(Echo, hostname="127.0.0.1") as named:
            pass
        async with await rpyc.aio.serve(Echo) as server:
            return named.port, server.port

    with caplog.at_level(logging.WARNING, logger="rpyc"):
        _, port = run(main)
    records = [r for r in caplog.records if r.name == "rpyc"]
    assert len(records) == 1
    message = records[0].getMessage()
    assert "rpyc.aio server" in message and f"127.0.0.1 port {port} only" in message
    assert "hostname='0.0.0.0'" in message
