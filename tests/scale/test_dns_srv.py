"""Discovery over DNS SRV (DNSSRVRegistryClient) against dnsmasq on loopback, and the RFC
2782 ordering (priority, then weight)."""

import collections
import importlib.util
import random
import sys

import pytest

import rpyc
from rpyc.utils.discovery_dns import srv_order
from rpyc.utils.factory import DiscoveryError
from rpyc.utils.registry import RegistryError
from rpyc.utils.server import ThreadedServer

from .engines import free_port

HAVE_DNSPYTHON = importlib.util.find_spec("dns") is not None
needs_dnspython = pytest.mark.skipif(
    not HAVE_DNSPYTHON, reason="dnspython is not installed (pip install dnspython)")
ZONE = "rpyc.test"


class CalcService(rpyc.Service):
    pass


@pytest.fixture
def servers():
    started = []

    def start(n):
        for _ in range(n):
            server = ThreadedServer(CalcService, hostname="127.0.0.1", port=0)
            server._start_in_thread()
            started.append(server)
        return started

    yield start
    for server in started:
        server.close()


def _dns(procs, records):
    """dnsmasq serving ``_calc._tcp.rpyc.test`` SRV records ``(target, port, priority,
    weight)``; targets ``a``, ``b``... resolve to 127.0.0.1 through it only."""
    options = [f"--local=/{ZONE}/"]
    targets = sorted({r[0] for r in records})
    for target, port, priority, weight in records:
        options.append(f"--srv-host=_calc._tcp.{ZONE},{target}.{ZONE},{port},{priority},{weight}")
    for target in targets:
        options.append(f"--host-record={target}.{ZONE},127.0.0.1")
    server = procs.dnsmasq(options)
    from rpyc.utils.registry import DNSSRVRegistryClient

    return DNSSRVRegistryClient(ZONE, nameservers=["127.0.0.1"], port=server.port, timeout=2)


def _peer_port(conn):
    return conn._channel.stream.sock.getpeername()[1]


@needs_dnspython
def test_priority_is_honoured_and_a_refusing_server_skipped(procs, servers):
    low, high = servers(2)
    registrar = _dns(procs, [("a", low.port, 10, 1), ("b", high.port, 20, 1)])
    assert registrar.record_name("CALC") == f"_calc._tcp.{ZONE}"
    assert rpyc.discover("CALC", registrar=registrar) == (("127.0.0.1", low.port), ("127.0.0.1", high.port))
    for _ in range(5):
        with rpyc.connect_by_service("CALC", registrar=registrar) as conn:
            assert _peer_port(conn) == low.port
    low.close()  # refuses now: the next priority takes over, no connection fails
    for _ in range(5):
        with rpyc.connect_by_service("CALC", registrar=registrar, connect_timeout=0.5) as conn:
            assert _peer_port(conn) == high.port
    high.close()
    with pytest.raises(DiscoveryError, match="refused"):
        rpyc.connect_by_service("CALC", registrar=registrar, connect_timeout=0.5)


@needs_dnspython
def test_weights_share_connections(procs, servers):
    light, heavy = servers(2)
    registrar = _dns(procs, [("a", light.port, 10, 1), ("b", heavy.port, 10, 3)])
    counts = collections.Counter()
    for _ in range(120):
        with rpyc.connect_by_service("CALC", registrar=registrar) as conn:
            counts[_peer_port(conn)] += 1
    # expected 30 / 90; the bounds are > 5 standard deviations wide
    assert 8 < counts[light.port] < 55, counts
    assert counts[light.port] + counts[heavy.port] == 120


@needs_dnspython
def test_unknown_service_and_read_only(procs):
    registrar = _dns(procs, [("a", 1, 10, 1)])
    assert registrar.discover("nothing") == ()
    with pytest.raises(DiscoveryError):
        rpyc.discover("nothing", registrar=registrar)
    with pytest.raises(RegistryError, match="cannot register through DNS SRV"):
        registrar.register(["CALC"], 1)
    with pytest.raises(RegistryError, match="cannot list"):
        registrar.list()
    registrar.unregister(1)  # nothing to do


@needs_dnspython
def test_silent_dns_server_is_named():
    from rpyc.utils.registry import DNSSRVRegistryClient

    port = free_port()
    registrar = DNSSRVRegistryClient(ZONE, nameservers=["127.0.0.1"], port=port, timeout=0.5)
    with pytest.raises(RegistryError, match=f"127.0.0.1.*port {port}"):
        registrar.discover("calc")


def test_missing_dnspython_names_the_extra(monkeypatch):
    for name in [m for m in sys.modules if m == "dns" or m.startswith("dns.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "dns", None)  # makes `import dns...` fail
    from rpyc.utils.registry import DNSSRVRegistryClient

    with pytest.raises(ImportError, match=r"pip install dnspython"):
        DNSSRVRegistryClient("example.test")


def test_srv_order_priority_then_weight():
    rng = random.Random(1234)
    records = [(20, 100, "late"), (10, 1, "light"), (10, 9, "heavy"), (10, 0, "zero")]
    firsts = collections.Counter()
    for _ in range(4000):
        order = srv_order(records, rng)
        assert order[-1] == "late"  # a higher priority value always comes after
        assert order[2] == "zero"  # weight 0 after the weighted ones of its priority
        firsts[order[0]] += 1
    assert set(firsts) == {"light", "heavy"}
    assert 0.85 < firsts["heavy"] / 4000 < 0.95  # 9 / 10
    assert srv_order([], rng) == []
    assert sorted(srv_order([(1, 0, "x"), (1, 0, "y")], rng)) == ["x", "y"]
