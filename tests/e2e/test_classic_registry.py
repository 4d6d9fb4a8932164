"""rpyc.utils.registry over real UDP and TCP sockets on 127.0.0.1 (never broadcast): the
commands, pruning, listing, hooks, malformed requests, discovery helpers, and servers that
auto-register through a registrar."""

import logging
import socket
import threading
import time

import pytest

pytest.importorskip("rpyc._core")

import rpyc  # noqa: E402
from rpyc.core import brine  # noqa: E402
from rpyc.utils.factory import DiscoveryError, ForbiddenError  # noqa: E402
from rpyc.utils.registry import (  # noqa: E402
    DEFAULT_PRUNING_TIMEOUT,
    MAX_DGRAM_SIZE,
    REGISTRY_PORT,
    RegistryClient,
    TCPRegistryClient,
    TCPRegistryServer,
    UDPRegistryClient,
    UDPRegistryServer,
)
from rpyc.utils.server import ThreadedServer  # noqa: E402

from .classic_support import LOOPBACK, wait_until  # noqa: E402

pytestmark = pytest.mark.timeout(60)

KINDS = ["udp", "tcp"]


class Registry:
    """A registry server of one kind on 127.0.0.1 (free port), served in a thread."""

    def __init__(self, kind, **kwargs):
        kwargs.setdefault("logger", logging.getLogger("test-registry"))
        cls = UDPRegistryServer if kind == "udp" else TCPRegistryServer
        self.kind = kind
        self.server = cls(host=LOOPBACK, port=0, **kwargs)
        self.thread = threading.Thread(target=self.server.start, daemon=True)
        self.thread.start()
        assert wait_until(lambda: self.server.active)

    def client(self, **kwargs):
        kwargs.setdefault("timeout", 2)
        if self.kind == "udp":
            return UDPRegistryClient(ip=LOOPBACK, port=self.server.port, **kwargs)
        return TCPRegistryClient(ip=LOOPBACK, port=self.server.port, **kwargs)

    def close(self):
        if self.server.active:
            self.server.close()
        self.thread.join(5)
        assert not self.thread.is_alive()


@pytest.fixture(params=KINDS)
def registry(request):
    reg = Registry(request.param, pruning_timeout=60, allow_listing=True)
    try:
        yield reg
    finally:
        reg.close()


def test_constants():
    assert (REGISTRY_PORT, DEFAULT_PRUNING_TIMEOUT, MAX_DGRAM_SIZE) == (18811, 240, 1500)
    assert RegistryClient.REREGISTER_INTERVAL == 60


def test_udp_client_broadcast_detection():
    assert UDPRegistryClient().bcast is True  # constructing it sends nothing
    assert UDPRegistryClient(ip="10.0.0.255").bcast is True
    assert UDPRegistryClient(ip=LOOPBACK).bcast is False
    assert UDPRegistryClient(ip=LOOPBACK, bcast=True).bcast is True
    six = UDPRegistryClient(ip="::1", ipv6=True)
    assert six.bcast is False and six.sock_family == socket.AF_INET6


def test_register_discover_unregister(registry):
    c = registry.client()
    assert c.register(("foo", "Bar"), 12345) is True
    assert c.register(("FOO",), 45678) is True
    assert set(c.discover("foo")) == {(LOOPBACK, 12345), (LOOPBACK, 45678)}
    assert c.discover("BAR") == ((LOOPBACK, 12345),)
    assert registry.server.services["FOO"].keys() == {(LOOPBACK, 12345), (LOOPBACK, 45678)}
    c.unregister(12345)
    assert wait_until(lambda: c.discover("FOO") == ((LOOPBACK, 45678),))
    assert c.discover("BAR") == ()
    assert c.discover("NOPE") == ()


def test_query_returns_oldest_first_and_reregistering_refreshes(registry):
    c = registry.client()
    c.register(("SVC",), 1)
    time.sleep(0.01)
    c.register(("SVC",), 2)
    assert c.discover("SVC") == ((LOOPBACK, 1), (LOOPBACK, 2))
    time.sleep(0.01)
    c.register(("SVC",), 1)
    assert c.discover("SVC") == ((LOOPBACK, 2), (LOOPBACK, 1))


def test_listing_and_filter(registry):
    c = registry.client()
    c.register(("FOO",), 12345)
    assert c.register(("BAR",), 54321, interface="127.0.0.2") is True
    assert set(c.list()) == {"FOO", "BAR"}
    assert c.list(filter_host=LOOPBACK) == ("FOO",)
    assert c.list(filter_host="127.0.0.2") == ("BAR",)
    assert c.list(filter_host="127.0.0.9") == ()
    assert c.discover("BAR") == (("127.0.0.2", 54321),)


@pytest.mark.parametrize("kind", KINDS)
def test_listing_disabled(kind):
    reg = Registry(kind)
    try:
        c = reg.client()
        c.register(("FOO",), 1)
        assert c.list() is None
        with pytest.raises(ForbiddenError):
            rpyc.list_services(registrar=c)
    finally:
        reg.close()


@pytest.mark.parametrize("kind", KINDS)
def test_pruning(kind):
    reg = Registry(kind, pruning_timeout=0.5, allow_listing=True)
    try:
        c = reg.client()
        c.register(("OLD",), 1111)
        assert c.discover("OLD") == ((LOOPBACK, 1111),)
        time.sleep(0.7)
        assert "OLD" in c.list()  # LIST does not prune
        assert c.discover("OLD") == ()
        assert "OLD" not in c.list()
    finally:
        reg.close()


def test_hooks(registry):
    events = []
    registry.server.on_service_added = lambda name, addr: events.append(("+", name, addr))
    registry.server.on_service_removed = lambda name, addr: events.append(("-", name, addr))
    c = registry.client()
    c.register(("HOOK",), 7)
    c.register(("HOOK",), 7)  # a keep-alive: no new event
    c.unregister(7)
    assert wait_until(lambda: len(events) == 2)
    assert events == [("+", "HOOK", (LOOPBACK, 7)), ("-", "HOOK", (LOOPBACK, 7))]


def test_failing_hook_does_not_break_the_registry(registry):
    def boom(name, addr):
        raise RuntimeError("hook failed")

    registry.server.on_service_added = boom
    registry.server.logger.disabled = True
    c = registry.client()
    assert c.register(("X",), 1) is True
    assert c.discover("X") == ((LOOPBACK, 1),)


def _raw_udp(port, payload, timeout=0.5):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(payload, (LOOPBACK, port))
        try:
            return s.recvfrom(MAX_DGRAM_SIZE)[0]
        except socket.timeout:
            return None


def _raw_tcp(port, payload, timeout=2):
    with socket.create_connection((LOOPBACK, port), timeout=timeout) as s:
        s.sendall(payload)
        chunks = []
        while True:
            try:
                data = s.recv(4096)
            except socket.timeout:
                return None
            if not data:
                return b"".join(chunks)
            chunks.append(data)


def test_wire_bytes_match_the_spec():
    reg = Registry("udp", allow_listing=False)
    try:
        port = reg.server.port
        query = bytes.fromhex("12080d52505943080e0551554552591008 0c464f4f".replace(" ", ""))
        assert query == brine.dump(("RPYC", "QUERY", ("FOO",)))
        assert _raw_udp(port, query) == brine.dump(())
        register = brine.dump(("RPYC", "REGISTER", (("FOO",), 12345)))
        assert _raw_udp(port, register) == bytes.fromhex("080b4f4b")
        assert _raw_udp(port, query) == bytes.fromhex(
            "1011080e093132372e302e302e311605" + "3132333435")
        assert _raw_udp(port, brine.dump(("RPYC", "LIST", ((None,),)))) == b"\x00"
        # lower-case commands are accepted
        assert _raw_udp(port, brine.dump(("RPYC", "query", ("foo",)))) == brine.dump(((LOOPBACK, 12345),))
    finally:
        reg.close()


@pytest.mark.parametrize("kind", KINDS)
def test_malformed_requests_are_ignored(kind):
    reg = Registry(kind, allow_listing=True)
    reg.server.logger.disabled = True
    raw = _raw_udp if kind == "udp" else _raw_tcp
    try:
        port = reg.server.port
        for payload in (b"", b"\xff\xfe garbage", brine.dump(("NOPE", "QUERY", ("X",))),
                        brine.dump(("RPYC", "SELFDESTRUCT", ())), brine.dump(("RPYC", 5, ())),
                        brine.dump(("RPYC", "QUERY", "not-a-tuple")),
                        brine.dump(("RPYC", "REGISTER", (("A",), "port"))),
                        brine.dump(("RPYC", "REGISTER", (("A",), 70000))),
                        brine.dump(("RPYC", "QUERY", ("a", "b", "c"))),
                        brine.dump(1)):
            reply = raw(port, payload)
            assert reply in (None, b""), payload
        # still serving
        c = reg.client()
        assert c.register(("OK",), 1) is True
        assert c.discover("OK") == ((LOOPBACK, 1),)
    finally:
        reg.close()


def test_tcp_request_in_pieces():
    reg = Registry("tcp")
    try:
        payload = brine.dump(("RPYC", "REGISTER", (("SPLIT",), 4242)))
        with socket.create_connection((LOOPBACK, reg.server.port), timeout=2) as s:
            s.sendall(payload[:5])
            time.sleep(0.2)
            s.sendall(payload[5:])
            assert s.recv(100) == brine.dump("OK")
        assert reg.client().discover("SPLIT") == ((LOOPBACK, 4242),)
    finally:
        reg.close()


def test_clients_without_a_registry():
    port = _free_udp_port()
    udp = UDPRegistryClient(ip=LOOPBACK, port=port, timeout=0.3)
    udp.logger.disabled = True
    assert udp.discover("X") == ()
    assert udp.list() == ()
    assert udp.register(("X",), 1) is False
    udp.unregister(1)
    tcp = TCPRegistryClient(ip=LOOPBACK, port=_free_tcp_port(), timeout=0.3)
    tcp.logger.disabled = True
    assert tcp.discover("X") == ()
    assert tcp.list() == ()
    assert tcp.register(("X",), 1) is False
    tcp.unregister(1)


def _free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def _free_tcp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def test_server_lifecycle_errors():
    reg = Registry("udp")
    with pytest.raises(ValueError, match="already running"):
        reg.server.start()
    reg.close()
    with pytest.raises(ValueError, match="not running"):
        reg.server.close()
    with pytest.raises(ValueError, match="disposed"):
        reg.server.start()


def test_close_is_prompt(registry):
    t0 = time.monotonic()
    registry.close()
    assert time.monotonic() - t0 < 1.0


# -- discovery helpers and auto-registering servers ----------------------------------------------

class EchoService(rpyc.Service):
    ALIASES = ("ECHO", "PARROT")

    def exposed_echo(self, x):
        return x


@pytest.mark.parametrize("kind", KINDS)
def test_server_auto_registers_and_clients_discover_it(kind):
    reg = Registry(kind, allow_listing=True)
    server = ThreadedServer(EchoService, hostname=LOOPBACK, port=0, registrar=reg.client(),
                            logger=logging.getLogger("test-echo"))
    assert server.auto_register is True
    thread = server._start_in_thread()
    try:
        c = reg.client()
        assert wait_until(lambda: c.discover("ECHO") == ((LOOPBACK, server.port),))
        assert c.discover("parrot") == ((LOOPBACK, server.port),)
        assert rpyc.discover("echo", registrar=c) == ((LOOPBACK, server.port),)
        assert set(rpyc.list_services(registrar=c)) == {"ECHO", "PARROT"}
        conn = rpyc.connect_by_service("ECHO", registrar=c)
        try:
            assert conn.root.echo("hi") == "hi"
        finally:
            conn.close()
        with pytest.raises(DiscoveryError):
            rpyc.discover("NOBODY", registrar=c)
    finally:
        server.close()
        thread.join(5)
    # close() unregisters
    assert wait_until(lambda: reg.client().discover("ECHO") == ())
    reg.close()
