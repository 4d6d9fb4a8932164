"""What a long-lived server keeps after many calls and abrupt disconnects (nothing: no
descriptor, task or object left behind), and what an rpyc.aio client sees when its server
dies (every pending await ends with EOFError at once). Runs against both server kinds."""
import asyncio
import os
import signal
import socket
import struct
import time

import pytest

import rpyc
import rpyc.aio
from hostile_wire import HANDLE_CALLATTR, HANDLE_GETROOT, RawClient, frame, request, request_payload

pytestmark = pytest.mark.timeout(180)

CALLS = 10_000
ABRUPT = 300


def _stats(server):
    conn = rpyc.connect("127.0.0.1", server.port, config={"sync_request_timeout": 30})
    try:
        return conn.root.stats()
    finally:
        conn.close()


def _settled_stats(server, baseline, timeout=10.0):
    """Stats once the server let go of the closed connections (or at the deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        stats = _stats(server)
        if (stats[0] <= baseline[0] and stats[2] <= baseline[2]) or time.monotonic() > deadline:
            return stats
        time.sleep(0.1)


def _abrupt(port, i):
    """Connect, start something (a request, half a frame, or a request for a reference), then
    reset the connection without closing it properly."""
    c = RawClient(port, timeout=10)
    try:
        kind = i % 3
        if kind == 0:
            c.send(request(1, HANDLE_GETROOT))
        elif kind == 1:
            c.send(request(1, HANDLE_GETROOT)[:7])
        else:
            c.send(request(1, HANDLE_GETROOT))
            _, _, root = c.recv_message()
            root_pack = root[1]
            args = ((3, root_pack), (1, "sleep"), (1, (0.05,)), (1, ()))
            from hostile_wire import brine

            boxed = brine((2, args))
            c.send(frame(request_payload(2, HANDLE_CALLATTR, boxed)))
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    finally:
        c.close()


def test_nothing_leaks_after_many_calls_and_abrupt_disconnects(fresh_server):
    server = fresh_server()
    # warm up: imports, thread pools, caches of proxy classes
    with rpyc.connect("127.0.0.1", server.port) as conn:
        for i in range(500):
            conn.root.add(i, 1)
        conn.root.objects(50)
    for i in range(30):
        _abrupt(server.port, i)
    time.sleep(0.5)
    baseline = _settled_stats(server, (10**9, 0, 10**9, 0))

    with rpyc.connect("127.0.0.1", server.port) as conn:
        add = conn.root.add
        for i in range(CALLS):
            assert add(i, 1) == i + 1
        for _ in range(20):
            assert len(conn.root.objects(50)) == 50  # references, released again
    for i in range(ABRUPT):
        _abrupt(server.port, i)
    after = _settled_stats(server, baseline)

    print("stats (fds, threads, tasks, objects) before, after:", baseline, after)
    fds, threads, tasks, objects = after
    assert fds <= baseline[0], f"descriptors: {baseline[0]} before, {fds} after"
    assert tasks <= baseline[2], f"asyncio tasks: {baseline[2]} before, {tasks} after"
    # (reusable server threads may stay idle: ThreadedServer keeps up to 16)
    assert threads <= baseline[1] + 16, f"threads: {baseline[1]} before, {threads} after"
    assert objects - baseline[3] < 5000, f"live objects: {baseline[3]} before, {objects} after"
    assert server.alive()


def test_a_killed_server_ends_pending_awaits_with_eof_within_a_second(fresh_server):
    server = fresh_server()

    async def main():
        conn = await rpyc.aio.connect("127.0.0.1", server.port)
        pending = [asyncio.ensure_future(conn.root.sleep(30)) for _ in range(5)]
        await asyncio.sleep(0.2)
        start = time.perf_counter()
        os.kill(server.pid, signal.SIGKILL)
        results = await asyncio.gather(*pending, return_exceptions=True)
        elapsed = time.perf_counter() - start
        assert all(isinstance(r, EOFError) for r in results), results
        assert elapsed < 1.0, f"pending awaits ended {elapsed:.2f} s after the kill"
        assert conn.closed
        with pytest.raises(EOFError):
            await conn.root.add(1, 2)

    asyncio.run(asyncio.wait_for(main(), 30))
