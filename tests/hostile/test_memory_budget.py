"""The inbound memory budget of a process (config key ``max_inbound_memory``, 512 MiB by
default): what all connections hold before decoding (buffered frames, inflated payloads)
stays within it, whatever each frame's own limits allow.

Before it, ``max_decompressed_size`` bounded one frame only: 8 connections that each sent a
522 KB zlib bomb took a server to 1.77 GiB, and 32 of them passed 3.5 GiB.
"""
import statistics
import threading
import time

import pytest

from hostile_wire import RawClient, frame
from test_hostile import GiB, MiB, assert_healthy, connect, zeros_bomb

pytestmark = pytest.mark.timeout(120)

BOMBS = 32


def test_thirty_two_zlib_bombs_at_once_stay_within_the_budget(fresh_server):
    """32 connections each send a zlib bomb inflating to 512 MiB, all at once: the server's
    resident peak stays within idle + 1 GiB, it survives, and a well-behaved client connected
    throughout gets its answers within 100 ms (at most two slower, none over 500 ms)."""
    bomb = frame(zeros_bomb(size=512 * MiB), flag=1)
    server = fresh_server()
    assert_healthy(server)
    rss_idle = server.status_kib("VmRSS") * 1024
    latencies, stop, failures = [], threading.Event(), []
    with connect(server) as good:
        add = good.root.add

        def call_loop():
            try:
                while not stop.is_set():
                    t0 = time.perf_counter()
                    assert add(1, 2) == 3
                    latencies.append(time.perf_counter() - t0)
                    time.sleep(0.005)
            except Exception as e:  # reported below, not lost in the thread
                failures.append(e)

        caller = threading.Thread(target=call_loop)
        caller.start()
        attackers = [RawClient(server.port, timeout=30) for _ in range(BOMBS)]
        try:
            time.sleep(0.2)
            barrier = threading.Barrier(BOMBS)

            def send(c):
                barrier.wait(10)
                c.send_quietly(bomb)

            senders = [threading.Thread(target=send, args=(c,)) for c in attackers]
            for t in senders:
                t.start()
            for t in senders:
                t.join(30)
            for c in attackers:
                c.wait_closed(30)
            time.sleep(0.2)
        finally:
            stop.set()
            caller.join(10)
            for c in attackers:
                c.close()
    assert not failures, failures
    peak = server.status_kib("VmHWM") * 1024
    assert peak - rss_idle <= GiB, "resident peak grew by %d MiB" % ((peak - rss_idle) // MiB)
    assert server.alive()
    assert latencies, "the well-behaved client made no call"
    # A decoder that stalled the others (a lock or the GIL held while inflating) delays
    # many calls by far more than 100 ms; a busy machine delays one or two, briefly.
    slow = sorted(t for t in latencies if t >= 0.1)
    assert len(slow) <= 2 and max(latencies) < 0.5, (
        "%d calls took 100 ms or more, the slowest %.0f ms (median %.1f ms, %d calls)"
        % (len(slow), max(latencies) * 1000, statistics.median(latencies) * 1000,
           len(latencies)))
    log = server.log_tail(200_000)
    assert "max_inbound_memory" in log or "max_decompressed_size" in log, log[-3000:]
    assert_healthy(server)


def test_idle_connections_cost_little_memory(fresh_server):
    """Each connection's serving thread keeps the stack it touched. Reading a frame once
    reserved (and, with stack probes, touched) the ~50 KiB an inflater takes, on every
    thread, compressed frames or not: 83 KiB of resident memory per idle connection instead
    of 30."""
    import resource

    resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
    server = fresh_server()
    for _ in range(10):
        with connect(server) as c:
            c.root.add(1, 2)
    time.sleep(0.3)
    before = server.status_kib("VmRSS")
    conns = []
    try:
        for _ in range(200):
            c = connect(server)
            c.root.add(1, 2)
            conns.append(c)
        time.sleep(0.3)
        per_conn = (server.status_kib("VmRSS") - before) / len(conns)
    finally:
        for c in conns:
            c.close()
    assert per_conn < 48, "%.1f KiB of server memory per idle connection" % per_conn
