"""Discovery on etcd v3 (EtcdRegistryClient) against a real etcd on loopback."""

import json
import signal
import time

import pytest

import rpyc
from rpyc.utils.factory import DiscoveryError
from rpyc.utils.registry import EtcdRegistryClient, RegistryError
from rpyc.utils.server import ThreadedServer

from .engines import free_port


class EchoService(rpyc.Service):
    ALIASES = ["ECHO", "ECHO2"]


def _wait(check, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    return check()


def _server(registrar):
    server = ThreadedServer(EchoService, hostname="127.0.0.1", port=0, registrar=registrar,
                            auto_register=True)
    server._start_in_thread()
    return server


def test_register_discover_unregister(etcd):
    registrar = EtcdRegistryClient(etcd.url, ttl=5)
    server = _server(registrar)
    try:
        expected = (("127.0.0.1", server.port),)
        assert _wait(lambda: registrar.discover("echo")) == expected
        assert rpyc.discover("ECHO2", registrar=registrar) == expected
        assert set(rpyc.list_services(registrar=registrar)) == {"ECHO", "ECHO2"}
        assert rpyc.list_services(registrar=registrar, filter_host="10.9.9.9") == ()
        conn = rpyc.connect_by_service("echo", registrar=registrar)
        try:
            assert conn.root.get_service_name() == "ECHO"
        finally:
            conn.close()
    finally:
        server.close()
    # close revokes the lease: the keys go at once, not after the ttl
    assert registrar.discover("echo") == ()
    with pytest.raises(DiscoveryError):
        rpyc.discover("echo", registrar=EtcdRegistryClient(etcd.url))


def test_several_servers_are_all_discovered(etcd):
    servers = [_server(EtcdRegistryClient(etcd.url, ttl=5)) for _ in range(3)]
    try:
        client = EtcdRegistryClient(etcd.url)
        expected = {("127.0.0.1", s.port) for s in servers}
        assert _wait(lambda: set(client.discover("echo")) == expected)
        seen = set()
        for _ in range(40):
            conn = rpyc.connect_by_service("echo", registrar=client)
            seen.add(conn._channel.stream.sock.getpeername()[1])
            conn.close()
        # random spreading: 40 connections reach all 3 servers (chance of missing one ~1e-7)
        assert seen == {s.port for s in servers}
    finally:
        for s in servers:
            s.close()


def test_crashed_server_disappears_after_ttl(etcd, procs):
    server = procs.server("--etcd", etcd.url, "--ttl", "2")
    client = EtcdRegistryClient(etcd.url)
    assert _wait(lambda: client.discover("scaletest")) == (("127.0.0.1", server.port),)
    # The lease is kept alive while the server lives (well past one ttl)...
    time.sleep(3)
    assert client.discover("scaletest") == (("127.0.0.1", server.port),)
    # ... and expires once it is gone without unregistering.
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(5)
    started = time.monotonic()
    assert _wait(lambda: client.discover("scaletest") == (), timeout=10)
    assert time.monotonic() - started < 5


def test_expired_lease_is_registered_again(etcd):
    registrar = EtcdRegistryClient(etcd.url, ttl=2)
    assert registrar.register(["LATE"], 4242, interface="127.0.0.1")
    lease = registrar._leases[4242]
    registrar._post("/v3/lease/revoke", {"ID": lease})  # as if etcd lost it
    assert registrar.discover("late") == ()
    assert registrar.register(["LATE"], 4242, interface="127.0.0.1")
    assert registrar._leases[4242] != lease
    assert registrar.discover("late") == (("127.0.0.1", 4242),)
    registrar.unregister(4242)
    assert registrar.discover("late") == ()


def test_any_interface_registers_the_source_address(etcd):
    registrar = EtcdRegistryClient(etcd.url, ttl=5)
    assert registrar.register(["ANY"], 4243, interface="0.0.0.0")
    assert registrar.discover("any") == (("127.0.0.1", 4243),)
    advertised = EtcdRegistryClient(etcd.url, ttl=5, advertise_host="rpc.example.test")
    assert advertised.register(["ADV"], 4244, interface="0.0.0.0")
    assert advertised.discover("adv") == (("rpc.example.test", 4244),)
    registrar.unregister(4243)
    advertised.unregister(4244)


def test_hostile_entries_are_skipped(etcd):
    registrar = EtcdRegistryClient(etcd.url, ttl=5)
    from rpyc.utils.discovery_etcd import _b64

    for key, value in [("BAD/a", "not json"), ("BAD/b", json.dumps({"host": 1, "port": 2})),
                       ("BAD/c", json.dumps({"host": "h", "port": 70000})),
                       ("BAD/d", json.dumps(["h", 1])), ("BAD/e", json.dumps({"host": "ok", "port": 99}))]:
        registrar._post("/v3/kv/put", {"key": _b64(registrar.prefix + key), "value": _b64(value)})
    assert registrar.discover("bad") == (("ok", 99),)


def test_unreachable_etcd_names_the_endpoint():
    port = free_port()
    registrar = EtcdRegistryClient(f"http://127.0.0.1:{port}", timeout=1)
    with pytest.raises(RegistryError, match=f"cannot reach etcd at http://127.0.0.1:{port}"):
        registrar.discover("echo")
    assert registrar.register(["X"], 1, "127.0.0.1") is False  # logged; the server retries


def test_second_endpoint_is_used_when_the_first_is_down(etcd):
    registrar = EtcdRegistryClient(f"http://127.0.0.1:{free_port()},{etcd.url}", ttl=5)
    assert registrar.register(["FAILOVER"], 4245, "127.0.0.1")
    assert registrar.discover("failover") == (("127.0.0.1", 4245),)
    registrar.unregister(4245)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="not an etcd URL"):
        EtcdRegistryClient("127.0.0.1:2379")
    with pytest.raises(ValueError, match="ttl must be at least 2"):
        EtcdRegistryClient(ttl=1)
