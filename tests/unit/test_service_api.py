"""Unit tests for rpyc.core.service that need no live connection: fake connection classes
stand in for rpyc.core.protocol.Connection."""

import builtins
import functools
import importlib
import sys
from typing import Any, Dict, List

import pytest

try:
    from rpyc.core import service
except ImportError as exc:  # rpyc.core.protocol (or the native extension) is not available
    pytest.skip(f"rpyc.core.service unavailable: {exc}", allow_module_level=True)

from rpyc.lib import get_methods  # noqa: E402

# LOCAL_ATTRS of the proxies (docs/protocol.md#what-a-proxy-sends), used by the server to answer INSPECT
LOCAL_ATTRS = frozenset(
    """____conn__ ____id_pack__ ____refcount__ __class__ __cmp__ __del__ __delattr__ __dir__
    __doc__ __getattr__ __getattribute__ __hash__ __instancecheck__ __init__ __metaclass__
    __module__ __new__ __reduce__ __reduce_ex__ __repr__ __setattr__ __slots__ __str__
    __weakref__ __dict__ __methods__ __exit__ __eq__ __ne__ __lt__ __gt__ __le__ __ge__
    __array_struct__ __array_interface__""".split()
)


class FakeConnection:
    """Records how Service._connect builds it, and runs on_connect like the real one."""

    def __init__(self, root: Any, channel: Any, config: Dict[str, Any] = {}) -> None:
        self._local_root = root
        self.channel = channel
        self._config = {"allow_all_attrs": False, "allow_exposed_attrs": True}
        self._config.update(config)
        root.on_connect(self)


class RecordingService(service.Service):
    _protocol = FakeConnection

    def __init__(self) -> None:
        self.events: List[Any] = []

    def on_connect(self, conn: Any) -> None:
        self.events.append(("connect", conn))

    def on_disconnect(self, conn: Any) -> None:
        self.events.append(("disconnect", conn))


# ---------------------------------------------------------------------------------------------
# Service basics
# ---------------------------------------------------------------------------------------------


def test_service_protocol_is_connection() -> None:
    protocol = importlib.import_module("rpyc.core.protocol")
    assert service.Service._protocol is protocol.Connection


def test_service_aliases_from_class_name() -> None:
    class AddService(service.Service):
        pass

    class Calculator(service.Service):
        pass

    assert AddService.get_service_aliases() == ("ADD",)
    assert AddService.get_service_name() == "ADD"
    assert Calculator.get_service_aliases() == ("CALCULATOR",)
    assert service.Service.get_service_aliases() == ("",)
    assert service.VoidService.get_service_name() == "VOID"
    assert service.SlaveService.get_service_name() == "SLAVE"
    assert service.ClassicService.get_service_name() == "CLASSIC"
    assert service.MasterService.get_service_name() == "MASTER"


def test_service_aliases_attribute() -> None:
    class Foobar(service.Service):
        ALIASES = ["foo", "bar", "lalaland"]

    assert Foobar.get_service_aliases() == ("FOO", "BAR", "LALALAND")
    assert Foobar.get_service_name() == "FOO"
    instance = Foobar()
    assert instance.exposed_get_service_aliases() == ("FOO", "BAR", "LALALAND")
    assert instance.exposed_get_service_name() == "FOO"
    assert Foobar.exposed_get_service_name() == "FOO"


def test_service_denies_remote_writes() -> None:
    instance = service.VoidService()
    with pytest.raises(AttributeError, match="access denied"):
        type(instance)._rpyc_setattr(instance, "x", 1)
    with pytest.raises(AttributeError, match="access denied"):
        type(instance)._rpyc_delattr(instance, "x")
    assert not hasattr(service.Service, "_rpyc_getattr")


def test_service_hooks_default_to_noop() -> None:
    instance = service.Service()
    assert instance.on_connect(object()) is None
    assert instance.on_disconnect(object()) is None


def test_connect_on_class_instantiates() -> None:
    conn = RecordingService._connect("channel", {"allow_all_attrs": True})
    assert isinstance(conn, FakeConnection)
    root = conn._local_root
    assert isinstance(root, RecordingService)
    assert conn.channel == "channel"
    assert conn._config["allow_all_attrs"] is True
    assert root.events == [("connect", conn)]  # once, by the connection


def test_connect_on_instance_shares_it() -> None:
    instance = RecordingService()
    first = instance._connect("c1")
    second = instance._connect("c2")
    assert first._local_root is instance and second._local_root is instance
    assert instance.events == [("connect", first), ("connect", second)]


def test_connect_default_config_is_not_shared_mutable_state() -> None:
    conn = RecordingService._connect("channel")
    conn._config["mutated"] = True
    assert "mutated" not in RecordingService._connect("channel")._config


def test_void_service_exposes_nothing_extra() -> None:
    exposed = [name for name in dir(service.VoidService) if name.startswith("exposed_")]
    assert exposed == ["exposed_get_service_aliases", "exposed_get_service_name"]


def test_inspect_listing_of_a_service_matches_upstream() -> None:
    class AddService(service.Service):
        def exposed_add(self, a: int, b: int) -> int:
            return a + b

        def exposed_fail(self) -> None:
            raise ValueError

        def exposed_call_me(self, fn: Any, x: int) -> Any:
            return fn(x) * 2

        def exposed_empty_iter(self) -> Any:
            return iter(())

    names = [name for name, _ in get_methods(LOCAL_ATTRS, AddService())]
    expected = [
        "__subclasshook__",
        "__init_subclass__",
        "__format__",
        "__sizeof__",
        "on_connect",
        "on_disconnect",
        "_rpyc_delattr",
        "_rpyc_setattr",
        "get_service_aliases",
        "get_service_name",
        "exposed_get_service_aliases",
        "exposed_get_service_name",
        "exposed_add",
        "exposed_fail",
        "exposed_call_me",
        "exposed_empty_iter",
    ]
    if sys.version_info >= (3, 11):
        expected.insert(0, "__getstate__")
    assert names == expected


# ---------------------------------------------------------------------------------------------
# ModuleNamespace
# ---------------------------------------------------------------------------------------------


class CountingGetmodule:
    def __init__(self) -> None:
        self.calls: List[Any] = []

    def __call__(self, name: Any) -> Any:
        self.calls.append(name)
        return service.Slave().getmodule(name)


def test_module_namespace_prefetch_and_cache() -> None:
    getmodule = CountingGetmodule()
    ns = service.ModuleNamespace(getmodule)
    assert getmodule.calls == ["builtins", "importlib.util"]
    assert ns.builtins is builtins
    assert ns["os.path"] is sys.modules["os.path"]
    assert ns["os.path"] is sys.modules["os.path"]
    assert ns.json is importlib.import_module("json")
    assert getmodule.calls == ["builtins", "importlib.util", "os.path", "json"]


def test_module_namespace_missing_module() -> None:
    ns = service.ModuleNamespace(CountingGetmodule())
    with pytest.raises(ImportError):
        ns["no_such_module_for_rpyc_tests"]
    with pytest.raises(AttributeError):
        ns.no_such_module_for_rpyc_tests
    assert not hasattr(ns, "no_such_module_for_rpyc_tests")


def test_module_namespace_contains() -> None:
    ns = service.ModuleNamespace(CountingGetmodule())
    assert "os" in ns
    assert "json" in ns
    assert "no_such_module_for_rpyc_tests" not in ns


def test_module_namespace_private_names_do_not_collide() -> None:
    ns = service.ModuleNamespace(CountingGetmodule())
    assert ns._thread is sys.modules["_thread"]
    assert ns._weakref is importlib.import_module("_weakref")


# ---------------------------------------------------------------------------------------------
# Slave and the classic services
# ---------------------------------------------------------------------------------------------


def test_slave_capabilities() -> None:
    slave = service.Slave()
    assert slave.namespace == {} and slave.getconn() is None
    slave.execute("x = 6 * 7\nimport math")
    assert slave.namespace["x"] == 42
    assert slave.eval("x + 1") == 43
    assert slave.eval("math.sqrt(16)") == 4.0
    assert slave.getmodule("os") is sys.modules["os"]
    assert slave.getmodule(("os", "path")) is sys.modules["os.path"]
    with pytest.raises(ImportError):
        slave.getmodule("no_such_module_for_rpyc_tests")


def test_slave_service_on_connect_opens_everything() -> None:
    class TestSlave(service.SlaveService):
        _protocol = FakeConnection

    conn = TestSlave._connect("channel")
    slave = conn._local_root
    assert slave.getconn() is conn
    assert slave.exposed_get_service_name() == "TESTSLAVE"
    expected = {
        "allow_all_attrs": True,
        "allow_pickle": True,
        "allow_getattr": True,
        "allow_setattr": True,
        "allow_delattr": True,
        "allow_exposed_attrs": False,
        "import_custom_exceptions": True,
        "instantiate_custom_exceptions": True,
        "instantiate_oldstyle_exceptions": True,
    }
    for key, value in expected.items():
        assert conn._config[key] is value, key


def test_fake_slave_service() -> None:
    for name in ("namespace", "execute", "eval", "getmodule", "getconn"):
        assert getattr(service.FakeSlaveService, "exposed_" + name) is None
    assert issubclass(service.FakeSlaveService, service.VoidService)


class FakeSlaveRoot:
    """What conn.root looks like to MasterService: the peer's slave (here a local one)."""

    def __init__(self) -> None:
        self.slave = service.Slave()
        self.getmodule = self.slave.getmodule
        self.eval = self.slave.eval
        self.execute = self.slave.execute
        self.namespace = self.slave.namespace


class MasterConnection:
    def __init__(self, root: Any, channel: Any, config: Dict[str, Any] = {}) -> None:
        self._local_root = root
        self._config: Dict[str, Any] = dict(config)
        self.root_config_snapshots: List[Dict[str, Any]] = []
        self._peer = FakeSlaveRoot()
        root.on_connect(self)

    @property
    def root(self) -> FakeSlaveRoot:
        self.root_config_snapshots.append(dict(self._config))
        return self._peer


def test_master_service_install() -> None:
    conn: Any = MasterConnection(service.MasterService(), "channel")
    peer = conn._peer
    assert isinstance(conn.modules, service.ModuleNamespace)
    assert conn.modules.os is sys.modules["os"]
    assert conn.builtins is builtins and conn.builtin is builtins
    assert conn.namespace is peer.namespace
    conn.execute("y = 5")
    assert conn.eval("y * 2") == 10
    assert isinstance(conn.teleport, functools.partial)
    assert conn.teleport.args == (conn,)
    # the master does not open its own side
    assert "allow_all_attrs" not in conn._config


def test_master_install_static() -> None:
    class Holder:
        pass

    holder: Any = Holder()
    slave = FakeSlaveRoot()
    service.MasterService._install(holder, slave)
    assert holder.eval("1 + 1") == 2
    assert holder.modules.builtins is builtins


def test_classic_service_configures_before_fetching_root() -> None:
    conn: Any = MasterConnection(service.ClassicService(), "channel")
    assert conn.root_config_snapshots, "MasterService must fetch conn.root"
    assert conn.root_config_snapshots[0]["allow_all_attrs"] is True
    assert conn._local_root.getconn() is conn
    assert conn.builtins is builtins


def test_classic_hierarchy() -> None:
    assert service.ClassicService.__mro__[1:4] == (
        service.MasterService,
        service.SlaveService,
        service.Slave,
    )
    assert issubclass(service.ClassicClient, service.MasterService)
    assert issubclass(service.ClassicClient, service.FakeSlaveService)
    assert issubclass(service.SlaveService, service.Service)
    conn: Any = MasterConnection(service.ClassicClient(), "channel")
    assert "allow_all_attrs" not in conn._config
    assert conn.modules.sys is sys
