"""connect_by_service: random spreading, and a refusing server skipped (no engine needed:
a registrar is any object with ``discover``)."""

import collections

import pytest

import rpyc
from rpyc.utils.factory import DiscoveryError
from rpyc.utils.server import ThreadedServer

from .engines import free_port


class StaticRegistrar:
    def __init__(self, addrs):
        self.addrs = tuple(addrs)

    def discover(self, name):
        return self.addrs


class PingService(rpyc.Service):
    pass


@pytest.fixture
def two_servers():
    servers = [ThreadedServer(PingService, hostname="127.0.0.1", port=0) for _ in range(2)]
    for server in servers:
        server._start_in_thread()
    yield servers
    for server in servers:
        server.close()


def test_random_spread_and_a_dead_server_skipped(two_servers):
    dead = ("127.0.0.1", free_port())  # nothing listens: refused
    registrar = StaticRegistrar([dead] + [("127.0.0.1", s.port) for s in two_servers])
    counts = collections.Counter()
    for _ in range(60):
        with rpyc.connect_by_service("PING", registrar=registrar) as conn:
            counts[conn._channel.stream.sock.getpeername()[1]] += 1
    # every connection succeeded, shared by the two live servers (expected 30 / 30)
    assert sum(counts.values()) == 60 and set(counts) == {s.port for s in two_servers}
    assert min(counts.values()) > 12, counts


def test_every_server_refusing_names_them():
    ports = [free_port(), free_port()]
    registrar = StaticRegistrar([("127.0.0.1", p) for p in ports])
    with pytest.raises(DiscoveryError, match=r"all 2 servers exposing 'PING' refused") as info:
        rpyc.connect_by_service("PING", registrar=registrar, connect_timeout=0.5)
    for port in ports:
        assert f"127.0.0.1:{port}" in str(info.value)
