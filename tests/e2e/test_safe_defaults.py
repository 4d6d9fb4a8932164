"""The safe defaults SECURITY.md promises, each checked here (the tests named there):
servers listen on loopback unless given a host, the classic service only runs when asked for
by name, a default connection exposes nothing and unpickles nothing, and the default config
is the restrictive one."""

import logging
import pickle
import subprocess
import sys

import pytest

import rpyc
from rpyc.core.protocol import DEFAULT_CONFIG
from rpyc.utils.server import ForkingServer, OneShotServer, ThreadedServer, ThreadPoolServer

from .support import LOOPBACK, ipv6_available

SERVER_CLASSES = [ThreadedServer, ThreadPoolServer, OneShotServer, ForkingServer]


class PlainService(rpyc.Service):
    def exposed_add(self, a, b):
        return a + b

    def exposed_peer_root_names(self):
        """What the server can reach through the client's root."""
        root = self._conn.root
        found = []
        for name in ("getmodule", "eval", "execute", "namespace"):
            try:
                getattr(root, name)
                found.append(name)
            except AttributeError:
                pass
        return tuple(found)

    def exposed_get_obj(self):
        return self

    def on_connect(self, conn):
        self._conn = conn


@pytest.mark.parametrize("server_cls", SERVER_CLASSES, ids=lambda c: c.__name__)
def test_servers_bind_loopback_by_default(server_cls):
    srv = server_cls(PlainService, port=0)
    try:
        assert srv.host == "127.0.0.1"
        assert srv.listener.getsockname()[0] == "127.0.0.1"
    finally:
        srv.close()


@pytest.mark.skipif(not ipv6_available(), reason="IPv6 loopback unavailable")
def test_ipv6_servers_bind_loopback_by_default():
    srv = ThreadedServer(PlainService, port=0, ipv6=True)
    try:
        assert srv.host == "::1"
    finally:
        srv.close()


def test_a_server_needs_an_explicit_service():
    with pytest.raises(TypeError):
        ThreadedServer()  # no default service, hence no classic service by accident


def test_service_server_is_not_classic(harness):
    conn, srv = harness.pair(PlainService)
    assert not srv._is_classic()
    for name in ("getmodule", "eval", "execute", "namespace", "getconn"):
        with pytest.raises(AttributeError):
            getattr(conn.root, name)
    assert not hasattr(conn, "modules")


def test_default_client_exposes_nothing(harness):
    """rpyc.connect() serves VoidService: the server gets no classic handle on the client."""
    conn, _ = harness.pair(PlainService)
    assert conn.root.peer_root_names() == ()
    assert conn._config["allow_all_attrs"] is False and conn._config["allow_pickle"] is False


def test_classic_server_off_loopback_warns(caplog):
    """Binding (not listening: nothing can connect) a classic server to all interfaces logs a
    warning; a service server does not."""
    with caplog.at_level(logging.WARNING):
        srv = ThreadedServer(rpyc.SlaveService, hostname="0.0.0.0", port=0)
        srv.close()
    assert any("classic" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        srv = ThreadedServer(PlainService, hostname=LOOPBACK, port=0)
        srv.close()
    assert not caplog.records


def test_loopback_default_is_announced_once(monkeypatch, caplog):
    """The first server started without a hostname says, as a WARNING of the "rpyc" logger,
    that it listens on loopback only and how to open it; later ones and servers given a
    hostname say nothing."""
    import rpyc.utils.server as server_mod

    monkeypatch.setattr(server_mod, "_loopback_default_announced", False)
    servers = []
    with caplog.at_level(logging.WARNING, logger="rpyc"):
        for cls, kwargs in [(ThreadPoolServer, {"hostname": LOOPBACK}), (ThreadedServer, {}),
                            (OneShotServer, {})]:
            srv = cls(PlainService, port=0, **kwargs)
            servers.append(srv)
            srv._listen()
    for srv in servers:
        srv.close()
    records = [r for r in caplog.records if r.name == "rpyc"]
    assert len(records) == 1 and records[0].levelno == logging.WARNING
    message = records[0].getMessage()
    assert "ThreadedServer" in message and f"127.0.0.1 port {servers[1].port} only" in message
    assert "hostname='0.0.0.0'" in message


def test_loopback_default_warning_is_visible_without_logging_setup():
    """With no logging configured, Python's last-resort handler prints the warning on stderr."""
    script = (
        "import rpyc\n"
        "from rpyc.utils.server import ThreadedServer\n"
        "for _ in range(2):\n"
        "    srv = ThreadedServer(rpyc.Service, port=0)\n"
        "    srv._listen()\n"
        "    srv.close()\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if "loopback" in line]
    assert len(lines) == 1, result.stderr
    assert "listens on 127.0.0.1" in lines[0] and "hostname='0.0.0.0'" in lines[0]


def test_default_config_is_restrictive():
    expected = {
        "allow_all_attrs": False, "allow_public_attrs": False, "allow_setattr": False,
        "allow_delattr": False, "allow_pickle": False, "import_custom_exceptions": False,
        "instantiate_custom_exceptions": False, "instantiate_oldstyle_exceptions": False,
    }
    assert {key: DEFAULT_CONFIG[key] for key in expected} == expected
    assert "__class__" in DEFAULT_CONFIG["traversal_attrs"]
    assert DEFAULT_CONFIG["max_frame_size"] <= 256 * 1024 * 1024
    assert DEFAULT_CONFIG["max_decompressed_size"] <= 256 * 1024 * 1024
    assert DEFAULT_CONFIG["max_nesting_depth"] <= 256


def test_pickle_refused_both_ways_by_default(harness):
    conn, _ = harness.pair(PlainService)
    obj = conn.root.get_obj()
    with pytest.raises(ValueError, match="allow_pickle"):
        pickle.dumps(obj)  # would unpickle the server's bytes here
    with pytest.raises(ValueError, match="allow_pickle"):
        rpyc.classic.obtain(obj)
    with pytest.raises(ValueError, match="pickling is disabled"):
        conn.sync_request(rpyc.core.consts.HANDLE_PICKLE, obj, 2)  # the server refuses too
