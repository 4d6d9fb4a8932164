"""Regression tests for engine bugs found while building it (each failed before its fix)."""

import subprocess
import sys
import textwrap

import pytest

import rpyc
from rpyc.utils.server import ThreadedServer


class EchoService(rpyc.Service):
    def exposed_add(self, a, b):
        return a + b

    def exposed_echo(self, x):
        return x


@pytest.fixture
def server():
    srv = ThreadedServer(EchoService, port=0)
    srv._start_in_thread()
    try:
        yield srv
    finally:
        srv.close()


@pytest.mark.timeout(30)
def test_reply_referencing_a_dropped_proxy(server):
    # The server computes proxy + proxy: the result is a new *client* list, which the server
    # only holds as a proxy and hands straight back. Its DEL must not overtake the reply.
    with rpyc.connect("127.0.0.1", server.port) as conn:
        for _ in range(20):
            result = conn.root.add([1, 2], [3])
            assert result == [1, 2, 3]


@pytest.mark.timeout(60)
def test_exit_without_close_does_not_panic(server):
    # A connection collected while the interpreter finalizes must not panic in Rust.
    script = textwrap.dedent(
        f"""
        import rpyc
        conn = rpyc.connect("127.0.0.1", {server.port})
        assert conn.root.add(1, 2) == 3
        keep = conn.root.echo([1, 2, 3])
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=50)
    assert proc.returncode == 0, proc.stderr
    assert "panicked" not in proc.stderr


@pytest.mark.timeout(30)
def test_poll_all_serves_every_frame_already_received(server):
    with rpyc.connect("127.0.0.1", server.port) as conn:
        results = [rpyc.async_(conn.root.add)(i, 1) for i in range(5)]
        # wait until all five replies sit in the socket, then one poll_all must serve them
        import time

        time.sleep(0.5)
        assert conn.poll_all(0)
        assert all(r.ready for r in results)
        assert [r.value for r in results] == [i + 1 for i in range(5)]


@pytest.mark.timeout(30)
def test_async_result_delivered_by_another_thread_is_not_missed(server, monkeypatch):
    # Another thread reads the answer and runs the AsyncResult callback slowly; the waiting
    # thread must not start reading the socket meanwhile (it would block for ever).
    import threading
    import time

    import rpyc.core.async_ as async_mod
    import rpyc.core.protocol as protocol_mod

    class SlowResult(async_mod.AsyncResult):
        def __call__(self, *args):
            time.sleep(0.2)
            return super().__call__(*args)

    monkeypatch.setattr(protocol_mod, "AsyncResult", SlowResult)
    conn = rpyc.connect("127.0.0.1", server.port)
    try:
        add = conn.root.add
        reader = threading.Thread(target=lambda: conn.serve(5), daemon=True)
        result = rpyc.async_(add)(1, 2)
        reader.start()
        time.sleep(0.1)
        result.set_expiry(10)
        assert result.value == 3
        reader.join(10)
    finally:
        conn.close()


_RELEASE_DURING_WRITE = """
import asyncio, sys
import rpyc, rpyc.aio
from rpyc.core.stream import SocketStream

PORT = int(sys.argv[1])
victims = []


class DroppingStream(SocketStream):
    # A Python stream (not handed to the engine natively) whose write lets the last
    # reference to a proxy go, as a garbage collection inside the write would.
    def native_transport(self):
        return None

    def write(self, data):
        victims.clear()
        super().write(data)


conn = rpyc.connect_stream(DroppingStream.connect("127.0.0.1", PORT))
for i in range(50):
    victims.append(conn.root.echo)  # (a proxy of the server's bound method)
    assert conn.root.add(i, 1) == i + 1
print("sync ok", flush=True)


async def main():
    async with rpyc.aio.connect("127.0.0.1", PORT) as conn:
        stream_class = type(conn._channel.stream)
        write = stream_class.write

        def dropping_write(self, data):
            victims.clear()
            write(self, data)

        stream_class.write = dropping_write
        for i in range(50):
            victims.append(await conn.root.echo)
            assert await conn.root.add(i, 1) == i + 1
    print("aio ok", flush=True)


asyncio.run(main())
"""


@pytest.mark.timeout(60)
def test_a_proxy_released_inside_a_python_stream_write(server):
    # A proxy whose last reference died inside the write of a Python-stream transport (a
    # garbage collection there runs its __del__) sent its release through the same
    # connection's write gate, held by the very same thread: the process hung (seen with
    # rpyc.aio, whose transport is a Python stream, in an interop test).
    try:
        proc = subprocess.run([sys.executable, "-c", _RELEASE_DURING_WRITE, str(server.port)],
                              capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired as hung:
        pytest.fail("the client hung: %s" % (hung.stdout or b"").decode(errors="replace"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:2] == ["sync ok", "aio ok"]
