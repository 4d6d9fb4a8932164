"""Connection.stats() and Server.stats() (docs/metrics.md): exact counts on both ends of real
loopback connections, for the blocking servers (gevent in a subprocess) and rpyc.aio."""

import asyncio
import gc
import json
import subprocess
import sys
import threading

import pytest

pytest.importorskip("rpyc._core")

import rpyc  # noqa: E402
import rpyc.aio  # noqa: E402
from rpyc.utils.metrics import COUNTERS, GAUGES  # noqa: E402
from rpyc.utils.server import OneShotServer, ThreadedServer, ThreadPoolServer  # noqa: E402

from .support import wait_until  # noqa: E402


class Held:
    def exposed_ping(self):
        return "pong"


class StatsService(rpyc.Service):
    """Remembers its connection (the server's end) and lets tests block a call."""

    def __init__(self):
        self.conns = []
        self.entered = threading.Event()
        self.release = threading.Event()

    def on_connect(self, conn):
        self.conns.append(conn)

    def exposed_echo(self, value):
        return value

    def exposed_fail(self):
        raise ValueError("boom")

    def exposed_block(self):
        self.entered.set()
        assert self.release.wait(10), "the test never released the blocked call"
        return "released"

    def exposed_make(self):
        return Held()


def delta(after, before, key):
    return after[key] - before[key]


def test_calls_and_latency_are_counted_exactly_on_both_ends(harness):
    service = StatsService()
    conn, _ = harness.pair(service)
    echo = conn.root.echo
    server_conn = service.conns[0]
    c0, s0 = conn.stats(), server_conn.stats()
    n = 50
    for i in range(n):
        assert echo(i) == i
    c1, s1 = conn.stats(), server_conn.stats()
    assert delta(c1, c0, "calls_made") == n
    assert delta(s1, s0, "calls_served") == n
    assert delta(c1, c0, "calls_served") == 0 and delta(s1, s0, "calls_made") == 0
    hist0 = s0["latency"].get("call", {"count": 0, "sum": 0.0})
    hist = s1["latency"]["call"]
    assert hist["count"] - hist0["count"] == n
    assert hist["sum"] > hist0["sum"]
    counts = [count for _, count in hist["buckets"]]
    assert counts == sorted(counts), "buckets are cumulative"
    assert hist["buckets"][-1] == (float("inf"), hist["count"])
    bounds = [le for le, _ in hist["buckets"]]
    assert bounds == sorted(bounds) and bounds[0] == 1e-05
    # The client serves nothing here: no latency of its own.
    assert c1["latency"] == {}
    assert set(COUNTERS) | set(GAUGES) | {"latency"} <= set(c1)


def test_bytes_and_frames_agree_across_the_wire(harness):
    service = StatsService()
    conn, _ = harness.pair(service)
    echo = conn.root.echo
    for i in range(20):
        echo("x" * i)
    client, server = conn.stats(), service.conns[0].stats()
    assert client["bytes_out"] == server["bytes_in"] > 0
    assert client["frames_out"] == server["frames_in"] > 20
    assert server["bytes_out"] == client["bytes_in"] > 0
    assert server["frames_out"] == client["frames_in"] > 20


def test_errors_are_counted_on_both_ends(harness):
    service = StatsService()
    conn, _ = harness.pair(service)
    fail = conn.root.fail
    c0, s0 = conn.stats(), service.conns[0].stats()
    for _ in range(3):
        with pytest.raises(ValueError, match="boom"):
            fail()
    c1, s1 = conn.stats(), service.conns[0].stats()
    assert delta(s1, s0, "errors_served") == 3
    assert delta(c1, c0, "errors_received") == 3
    assert delta(s1, s0, "calls_served") == 3  # an error is still a call served


def test_large_payloads_are_counted_as_compressed_frames(harness):
    service = StatsService()
    conn, _ = harness.pair(service)
    echo = conn.root.echo
    c0, s0 = conn.stats(), service.conns[0].stats()
    payload = b"compressible " * 100_000
    assert echo(payload) == payload
    c1, s1 = conn.stats(), service.conns[0].stats()
    assert delta(c1, c0, "frames_compressed_out") == 1
    assert delta(s1, s0, "frames_compressed_in") == 1
    assert delta(s1, s0, "frames_compressed_out") == 1
    assert delta(c1, c0, "frames_compressed_in") == 1
    # Bytes on the wire, not inflated ones.
    assert delta(c1, c0, "bytes_out") < len(payload) // 10


def test_in_flight_and_pending_during_a_blocking_call(harness):
    service = StatsService()
    conn, _ = harness.pair(service)
    block = rpyc.async_(conn.root.block)  # (a round trip: the server has its end by now)
    server_conn = service.conns[0]
    assert server_conn.stats()["in_flight"] == 0
    result = block()
    try:
        assert service.entered.wait(10)
        assert server_conn.stats()["in_flight"] == 1
        assert conn.stats()["pending"] == 1
    finally:
        service.release.set()
    assert result.value == "released"
    assert wait_until(lambda: server_conn.stats()["in_flight"] == 0)
    assert conn.stats()["pending"] == 0
    assert server_conn.stats()["latency"]["call"]["count"] >= 1


def test_objects_held_go_up_and_down(harness):
    service = StatsService()
    conn, _ = harness.pair(service)
    make, echo = conn.root.make, conn.root.echo
    server_conn = service.conns[0]
    s0, c0 = server_conn.stats(), conn.stats()
    held = [make() for _ in range(3)]
    s1, c1 = server_conn.stats(), conn.stats()
    assert delta(s1, s0, "objects_held") == 3
    assert delta(c1, c0, "proxies") == 3
    del held
    gc.collect()
    # Releases travel with the next frame (or the flusher's write): make one.
    echo(0)
    assert wait_until(lambda: server_conn.stats()["objects_held"] == s0["objects_held"])
    assert delta(conn.stats(), c0, "releases_sent") == 3
    assert delta(server_conn.stats(), s0, "releases_served") == 3
    assert conn.stats()["proxies"] == c0["proxies"]


@pytest.mark.parametrize("server_cls", [ThreadedServer, ThreadPoolServer], ids=lambda c: c.__name__)
def test_server_stats_add_up_live_and_closed_connections(harness, server_cls):
    service = StatsService()
    server = harness.server(service, server_cls)
    conns = [harness.connect(server) for _ in range(3)]
    echoes = [conn.root.echo for conn in conns]  # (kept: no release is under way)
    for k, echo in enumerate(echoes):
        for i in range(5 * (k + 1)):
            echo(i)
    made = sum(c.stats()["calls_made"] for c in conns)
    stats = server.stats()
    assert stats["connections_open"] == 3 and stats["connections_total"] == 3
    assert stats["calls_served"] == made
    assert sum(h["count"] for h in stats["latency"].values()) == made
    assert stats["bytes_in"] == sum(c.stats()["bytes_out"] for c in conns)

    conns[0].close()
    assert wait_until(lambda: server.stats()["connections_open"] == 2)
    after = server.stats()
    assert after["connections_total"] == 3
    # The closed connection's counts stay in the totals (its CLOSE is not a call served);
    # its client's counters stay readable after closing.
    assert after["calls_served"] == made
    # (Closing may release proxies: what a client wrote the server counts once read.)
    assert wait_until(lambda: server.stats()["bytes_in"] == sum(c.stats()["bytes_out"] for c in conns))
    assert after["latency"]["call"]["count"] == stats["latency"]["call"]["count"]


def test_oneshot_server_stats(harness):
    service = StatsService()
    server = harness.server(service, OneShotServer)
    conn = harness.connect(server)
    for i in range(7):
        conn.root.echo(i)
    stats = server.stats()
    assert stats["connections_open"] == 1
    assert stats["calls_served"] == conn.stats()["calls_made"]


def test_aio_server_and_connection_stats():
    class Echo(rpyc.Service):
        async def exposed_echo(self, value):
            return value

    async def main():
        async with await rpyc.aio.serve(Echo, port=0) as server:
            async with rpyc.aio.connect("127.0.0.1", server.port) as conn:
                before = conn.stats()["calls_made"]
                results = await asyncio.gather(*(conn.root.echo(i) for i in range(40)))
                assert results == list(range(40))
                client = conn.stats()
                assert client["calls_made"] - before == 40
                stats = server.stats()
                assert stats["connections_open"] == 1
                assert stats["calls_served"] == client["calls_made"]
                assert stats["bytes_in"] == client["bytes_out"]
            assert await _eventually(lambda: server.stats()["connections_open"] == 0)
            assert server.stats()["connections_total"] == 1
            assert server.stats()["calls_served"] == client["calls_made"]

    asyncio.run(asyncio.wait_for(main(), 30))


async def _eventually(predicate, timeout=5.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


GEVENT_SERVER = """
from gevent import monkey; monkey.patch_all()
import json, gevent, rpyc
from rpyc.utils.server import GeventServer

class Echo(rpyc.Service):
    def exposed_echo(self, value):
        return value

server = GeventServer(Echo, port=0, auto_register=False)
server._listen()
gevent.spawn(server.start)
conns = [rpyc.connect("127.0.0.1", server.port) for _ in range(2)]
for c in conns:
    echo = c.root.echo
    for i in range(10):
        echo(i)
made = sum(c.stats()["calls_made"] for c in conns)
live = server.stats()
conns[0].close()
for _ in range(500):
    if server.stats()["connections_open"] == 1:
        break
    gevent.sleep(0.01)
after = server.stats()
conns[1].close()
server.close()
print(json.dumps({"made": made, "live": live["calls_served"], "open": live["connections_open"],
                  "after": after["calls_served"], "after_open": after["connections_open"],
                  "total": after["connections_total"]}))
"""


def test_gevent_server_stats():
    pytest.importorskip("gevent")
    res = subprocess.run([sys.executable, "-c", GEVENT_SERVER], capture_output=True, text=True,
                         timeout=60, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["live"] == out["made"] and out["open"] == 2
    assert out["after"] == out["made"] and out["after_open"] == 1 and out["total"] == 2
