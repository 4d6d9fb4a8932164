"""Unit tests for rpyc.version, rpyc.core.consts and rpyc.lib (package, colls, compat)."""

import gc
import importlib
import inspect
import logging
import os
import socket
import sys
import threading
import time
import types

import pytest

import rpyc.lib as lib
from rpyc.core import consts
from rpyc.lib import colls, compat

version = importlib.import_module("rpyc.version")  # the module, whatever rpyc.version is bound to

# ---------------------------------------------------------------------------------------------
# version and constants
# ---------------------------------------------------------------------------------------------


def test_version_values() -> None:
    assert version.__version__ == "6.0.2"
    assert version.version == ("6", "0", "2")
    assert all(isinstance(part, str) for part in version.version)
    assert version.release_date == "2025-04-19"


def test_consts_values() -> None:
    assert (consts.MSG_REQUEST, consts.MSG_REPLY, consts.MSG_EXCEPTION) == (1, 2, 3)
    labels = (
        consts.LABEL_VALUE,
        consts.LABEL_TUPLE,
        consts.LABEL_LOCAL_REF,
        consts.LABEL_REMOTE_REF,
    )
    assert labels == (1, 2, 3, 4)
    names = [
        "PING",
        "CLOSE",
        "GETROOT",
        "GETATTR",
        "DELATTR",
        "SETATTR",
        "CALL",
        "CALLATTR",
        "REPR",
        "STR",
        "CMP",
        "HASH",
        "DIR",
        "PICKLE",
        "DEL",
        "INSPECT",
        "BUFFITER",
        "OLDSLICING",
        "CTXEXIT",
        "INSTANCECHECK",
    ]
    assert [getattr(consts, "HANDLE_" + n) for n in names] == list(range(1, 21))
    assert consts.EXC_STOP_ITERATION == 1
    assert consts.STREAM_CHUNK == 64000


# ---------------------------------------------------------------------------------------------
# get_id_pack (docs/protocol.md#id_pack)
# ---------------------------------------------------------------------------------------------


class _Outer:
    class Inner:
        pass


def _plain_function() -> None:
    pass


def test_id_pack_module_in_sys_modules() -> None:
    assert lib.get_id_pack(os) == ("os", id(types.ModuleType), id(os))
    assert lib.get_id_pack(os.path)[0] == os.path.__name__  # "posixpath" on POSIX


def test_id_pack_module_not_in_sys_modules() -> None:
    mod = types.ModuleType("mymod_not_imported_anywhere")
    assert lib.get_id_pack(mod) == (
        "builtins.mymod_not_imported_anywhere",
        id(types.ModuleType),
        id(mod),
    )


def test_id_pack_classes() -> None:
    assert lib.get_id_pack(list) == ("builtins.list", id(list), 0)
    assert lib.get_id_pack(type(None)) == ("builtins.NoneType", id(type(None)), 0)
    assert lib.get_id_pack(types.ModuleType) == ("builtins.module", id(types.ModuleType), 0)
    assert lib.get_id_pack(type) == ("builtins.type", id(type), 0)
    # __name__, not __qualname__: nested classes lose their outer name
    assert lib.get_id_pack(_Outer.Inner) == (f"{__name__}.Inner", id(_Outer.Inner), 0)


def test_id_pack_metaclass_made_class() -> None:
    class Meta(type):
        pass

    Made = Meta("Made", (), {})
    assert lib.get_id_pack(Made) == (f"{__name__}.Made", id(Made), 0)


def test_id_pack_instances() -> None:
    obj = [1]
    assert lib.get_id_pack(obj) == ("builtins.list", id(list), id(obj))
    assert lib.get_id_pack(_plain_function)[0] == "builtins.function"
    bound = _Outer().__init__
    assert lib.get_id_pack(bound)[0] == "builtins.method-wrapper"
    assert lib.get_id_pack(test_id_pack_instances.__get__(1))[0] == "builtins.method"
    assert lib.get_id_pack(len)[0] == "builtins.builtin_function_or_method"
    inner = _Outer.Inner()
    assert lib.get_id_pack(inner) == (f"{__name__}.Inner", id(_Outer.Inner), id(inner))


def test_id_pack_class_id_of_instance_matches_class() -> None:
    inner = _Outer.Inner()
    assert lib.get_id_pack(inner)[1] == lib.get_id_pack(_Outer.Inner)[1]
    assert lib.get_id_pack(inner)[2] != 0


def test_id_pack_uses_dunder_class_for_name() -> None:
    class Disguised:
        @property  # type: ignore[misc]
        def __class__(self):  # noqa: D401
            return dict

    obj = Disguised()
    assert lib.get_id_pack(obj) == ("builtins.dict", id(Disguised), id(obj))


def test_id_pack_of_proxy_is_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    class FakeNetref:
        __slots__ = ("____id_pack__",)

    class FakeProxy(FakeNetref):
        __slots__ = ()

        def __getattribute__(self, name: str) -> object:
            raise AssertionError("attribute access must not be forwarded")

    proxy = FakeProxy()
    object.__setattr__(proxy, "____id_pack__", ("remote.Thing", 11, 22))
    monkeypatch.setattr(lib, "_netref_base", FakeNetref)
    assert lib.get_id_pack(proxy) == ("remote.Thing", 11, 22)


def test_id_pack_real_netref_if_available() -> None:
    try:
        from rpyc.core import netref
    except ImportError as exc:  # e.g. the native extension is not built
        pytest.skip(f"rpyc.core.netref unavailable: {exc}")
    assert lib._netref_class() is netref.BaseNetref


def test_id_pack_without_netref_module(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lib, "_netref_base", None)
    monkeypatch.delitem(sys.modules, "rpyc.core.netref", raising=False)
    assert lib._netref_class() is None
    obj = object()
    assert lib.get_id_pack(obj) == ("builtins.object", id(object), id(obj))


# ---------------------------------------------------------------------------------------------
# get_methods (docs/protocol.md#inspect-answers)
# ---------------------------------------------------------------------------------------------


class _Base:
    def base_method(self) -> None:
        """Base docs.

        More text, indented."""

    def overridden(self) -> None:
        """base version"""


class _Derived(_Base):
    plain_attribute = 5
    lambda_attr = staticmethod(lambda: None)

    class NestedClass:
        pass

    @property
    def prop(self) -> int:
        return 1

    def overridden(self) -> None:
        """derived version"""

    @classmethod
    def a_classmethod(cls) -> None:
        pass

    @staticmethod
    def a_staticmethod() -> None:
        pass

    def _private(self) -> None:
        pass

    def __len__(self) -> int:
        return 0


def test_get_methods_shape_and_filtering() -> None:
    methods = lib.get_methods(frozenset(["__init__"]), _Derived())
    assert isinstance(methods, tuple)
    for entry in methods:
        assert isinstance(entry, tuple) and len(entry) == 2
        assert isinstance(entry[0], str)
        assert entry[1] is None or isinstance(entry[1], str)
    names = [name for name, _ in methods]
    assert "__init__" not in names  # excluded by obj_attrs
    for expected in (
        "base_method",
        "overridden",
        "a_classmethod",
        "a_staticmethod",
        "_private",
        "__len__",
        "lambda_attr",
        "__repr__",
    ):
        assert expected in names
    for not_routine in ("plain_attribute", "NestedClass", "prop", "__module__", "__doc__"):
        assert not_routine not in names
    assert len(names) == len(set(names))


def test_get_methods_docs_and_merge_order() -> None:
    methods = lib.get_methods((), _Derived())
    docs = dict(methods)
    assert docs["base_method"] == "Base docs.\n\nMore text, indented."
    assert docs["overridden"] == "derived version"  # later classes override values...
    names = [name for name, _ in methods]
    # ...but keep the position where the name was first seen (object, _Base, _Derived)
    assert names.index("__repr__") < names.index("base_method") < names.index("overridden")
    assert names.index("overridden") < names.index("a_classmethod")


def test_get_methods_of_class_includes_metaclass_first() -> None:
    class Meta(type):
        def meta_only(cls) -> None:
            """from the metaclass"""

        def shared(cls) -> None:
            """metaclass version"""

    class WithMeta(metaclass=Meta):
        def shared(self) -> None:
            """class version"""

        def own(self) -> None:
            pass

    methods = lib.get_methods((), WithMeta)
    names = [name for name, _ in methods]
    docs = dict(methods)
    assert "meta_only" in names and "own" in names and "mro" in names
    assert docs["shared"] == "class version"
    assert names.index("meta_only") < names.index("own")
    # for an instance, the metaclass is not consulted
    assert "meta_only" not in dict(lib.get_methods((), WithMeta()))


def test_get_methods_notices_a_class_edited_after_a_cached_answer() -> None:
    class Edited:
        def first(self) -> None:
            """one"""

    excluded = frozenset(["__init__"])
    before = lib.get_methods(excluded, Edited())
    assert lib.get_methods(excluded, Edited()) is before  # answered from the cache
    assert "second" not in dict(before)

    def second(self: object) -> None:
        """two"""

    Edited.second = second  # type: ignore[attr-defined]
    assert dict(lib.get_methods(excluded, Edited()))["second"] == "two"

    def first(self: object) -> None:
        """replaced"""

    Edited.first = first  # type: ignore[method-assign]
    assert dict(lib.get_methods(excluded, Edited()))["first"] == "replaced"
    del Edited.second  # type: ignore[attr-defined]
    assert "second" not in dict(lib.get_methods(excluded, Edited()))


def test_get_methods_cache_stays_bounded() -> None:
    excluded = frozenset()
    for i in range(lib._METHODS_CACHE_SIZE + 10):
        lib.get_methods(excluded, type(f"Made{i}", (), {"m": lambda self: None})())
    assert len(lib._methods_cache) <= lib._METHODS_CACHE_SIZE


def test_get_methods_is_brine_dumpable() -> None:
    from rpyc.core.brine import dumpable as _dumpable

    assert _dumpable(lib.get_methods(frozenset(), _Derived()))
    assert _dumpable(lib.get_methods(frozenset(), dict))


# ---------------------------------------------------------------------------------------------
# misc helpers
# ---------------------------------------------------------------------------------------------


def test_safe_import_and_missing_module() -> None:
    assert lib.safe_import("os.path") is os.path
    missing = lib.safe_import("no_such_module_for_rpyc_tests")
    assert isinstance(missing, lib.MissingModule)
    assert not missing
    with pytest.raises(ImportError):
        missing.anything
    with pytest.raises(AttributeError):
        missing.__wrapped__
    assert not hasattr(missing, "__len__")


def test_setup_logger_names() -> None:
    assert lib.setup_logger(quiet=True).name == "rpyc"
    assert lib.setup_logger(quiet=True, namespace="x").name == "rpyc.x"
    assert isinstance(lib.setup_logger(quiet=True), logging.Logger)


def test_hybridmethod() -> None:
    class Thing:
        @lib.hybridmethod
        def who(self_or_cls: object) -> object:
            return self_or_cls

    thing = Thing()
    assert Thing.who() is Thing
    assert thing.who() is thing
    with pytest.raises(AttributeError):
        thing.who = 5


def test_hasattr_static_does_not_run_code() -> None:
    calls = []

    class Thing:
        @property
        def prop(self) -> int:
            calls.append(1)
            raise RuntimeError

        def __getattr__(self, name: str) -> int:
            calls.append(2)
            return 1

    assert lib.hasattr_static(Thing(), "prop")
    assert not lib.hasattr_static(Thing(), "dynamic")
    assert calls == []


def test_spawn_runs_daemon_thread_with_args() -> None:
    result = []
    done = threading.Event()

    def worker(a: int, b: int = 0) -> None:
        result.append((a, b, threading.current_thread().name))
        done.set()

    thread = lib.spawn(worker, 1, b=2)
    assert done.wait(5)
    thread.join(5)
    assert thread.daemon
    a, b, name = result[0]
    assert (a, b) == (1, 2)
    assert name.startswith(lib.SPAWN_THREAD_PREFIX + "-")
    assert name == lib.SPAWN_THREAD_PREFIX + "-" + "-".join(map(str, lib.get_id_pack(worker)))


def test_spawn_waitready() -> None:
    order = []
    release = threading.Event()

    def init() -> str:
        order.append("init")
        return "ready"

    def main() -> None:
        release.wait(5)
        order.append("main")

    thread, value = lib.spawn_waitready(init, main)
    assert value == "ready"
    assert order == ["init"]
    release.set()
    thread.join(5)
    assert order == ["init", "main"]


def test_spawn_waitready_init_failure() -> None:
    def init() -> None:
        raise KeyError("nope")

    with pytest.raises(KeyError):
        lib.spawn_waitready(init, lambda: None)


def test_timeout() -> None:
    for infinite in (lib.Timeout(None), lib.Timeout(-1)):
        assert not infinite.finite
        assert not infinite.expired()
        assert infinite.timeleft() is None
    zero = lib.Timeout(0)
    assert zero.finite and zero.expired() and zero.timeleft() == 0
    later = lib.Timeout(10)
    assert not later.expired()
    assert 9 < later.timeleft() <= 10
    copy = lib.Timeout(later)
    assert copy.finite and copy.tmax == later.tmax
    short = lib.Timeout(0.05)
    start = time.monotonic()
    short.sleep(5)  # bounded by the deadline
    assert time.monotonic() - start < 1
    assert short.expired()


def test_exp_backoff_range() -> None:
    for collision in range(1, 15):
        n = min(collision, 10)
        upper = (2**n - (1 if n > 3 else 0)) * 51.2e-6
        for _ in range(20):
            assert 0 <= lib.exp_backoff(collision) <= upper


def test_socket_backoff_connect_to_listener() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    try:
        sock = lib.socket_backoff_connect(
            socket.AF_INET, socket.SOCK_STREAM, 0, listener.getsockname(), 3, 6
        )
        try:
            assert sock.getpeername() == listener.getsockname()
            assert sock.gettimeout() == 3
        finally:
            sock.close()
    finally:
        listener.close()


def test_socket_backoff_connect_refused() -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    address = probe.getsockname()
    probe.close()  # nobody listens there now
    with pytest.raises(OSError):
        lib.socket_backoff_connect(socket.AF_INET, socket.SOCK_STREAM, 0, address, 1, 3)


def test_maxint_and_prefix() -> None:
    assert lib.maxint == sys.maxsize
    assert lib.SPAWN_THREAD_PREFIX == "RpycSpawnThread"


# ---------------------------------------------------------------------------------------------
# colls
# ---------------------------------------------------------------------------------------------


class _Weakable:
    pass


def test_weak_value_dict() -> None:
    wvd = colls.WeakValueDict()
    a, b = _Weakable(), _Weakable()
    wvd["a"] = a
    wvd["b"] = b
    assert len(wvd) == 2 and "a" in wvd and wvd["a"] is a and wvd.get("a") is a
    assert set(wvd.keys()) == {"a", "b"}
    assert set(map(id, wvd.values())) == {id(a), id(b)}
    assert dict(wvd.items()) == {"a": a, "b": b}
    del a
    gc.collect()
    assert "a" not in wvd
    assert wvd.get("a", 7) == 7
    with pytest.raises(KeyError):
        wvd["a"]
    del wvd["b"]
    assert len(wvd) == 0
    wvd["c"] = b
    wvd.clear()
    assert len(wvd) == 0


def test_weak_value_dict_rebinding_keeps_new_value() -> None:
    wvd = colls.WeakValueDict()
    first, second = _Weakable(), _Weakable()
    wvd["k"] = first
    wvd["k"] = second
    del first
    gc.collect()
    assert wvd["k"] is second


def test_refcounting_coll_semantics() -> None:
    table = colls.RefCountingColl()
    root = object()
    for _ in range(4):  # sent four times
        table.add("root", root)
    table.decref("root", 2)
    assert table["root"] is root  # still reachable
    table.decref("root", 2)
    with pytest.raises(KeyError):
        table["root"]
    with pytest.raises(KeyError):
        table.decref("root")


def test_refcounting_coll_single_and_clear() -> None:
    table = colls.RefCountingColl()
    obj = object()
    table.add(1, obj)
    table.decref(1)  # default count is 1
    with pytest.raises(KeyError):
        table[1]
    table.add(2, obj)
    table.add(2, obj)
    table.decref(2, 5)  # more than held: gone
    assert 2 not in table
    table.add(3, obj)
    table.clear()
    assert len(table) == 0


def test_refcounting_coll_threads() -> None:
    table = colls.RefCountingColl()
    obj = object()

    def adder() -> None:
        for _ in range(1000):
            table.add("k", obj)

    threads = [threading.Thread(target=adder) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    table.decref("k", 3999)
    assert table["k"] is obj
    table.decref("k", 1)
    assert "k" not in table


# ---------------------------------------------------------------------------------------------
# compat
# ---------------------------------------------------------------------------------------------


def test_compat_flags_and_aliases() -> None:
    assert compat.is_py_3k is True
    assert compat.is_py_gte37 and compat.is_py_gte38
    assert compat.is_py_gte310 == (sys.version_info >= (3, 10))
    assert compat.is_py_gte311 == (sys.version_info >= (3, 11))
    assert compat.BYTES_LITERAL("é") == "é".encode("utf-8")
    assert compat.maxint == sys.maxsize
    assert compat.execute is exec
    assert compat.TimeoutError is TimeoutError
    assert compat.next is next and compat.callable is callable
    import io
    import pickle
    import struct

    assert compat.pickle is pickle and compat.BytesIO is io.BytesIO
    assert compat.Struct is struct.Struct
    ns: dict = {}
    compat.execute("x = 1 + 1", ns)
    assert ns["x"] == 2


def test_compat_get_exc_errno() -> None:
    assert compat.get_exc_errno(OSError(5, "io")) == 5
    assert compat.get_exc_errno(Exception(7, "x")) == 7


def test_compat_with_metaclass() -> None:
    class Meta(type):
        pass

    class Base:
        pass

    class Thing(compat.with_metaclass(Meta, Base)):  # type: ignore[misc]
        pass

    assert type(Thing) is Meta
    assert Thing.__mro__ == (Thing, Base, object)


def test_compat_acquire_lock() -> None:
    lock = threading.Lock()
    assert compat.acquire_lock(lock, True, lib.Timeout(1))
    start = time.monotonic()
    assert not compat.acquire_lock(lock, True, lib.Timeout(0.1))
    assert time.monotonic() - start < 2
    assert not compat.acquire_lock(lock, False, lib.Timeout(None))
    lock.release()
    assert compat.acquire_lock(lock, True, lib.Timeout(None))
    lock.release()


def test_compat_poll() -> None:
    left, right = socket.socketpair()
    try:
        poller = compat.poll()
        poller.register(left.fileno(), "r")
        assert poller.poll(0) == []
        right.sendall(b"x")
        events = poller.poll(1)
        assert len(events) == 1
        fd, letters = events[0]
        assert fd == left.fileno() and "r" in letters
        poller.modify(left.fileno(), "w")
        assert "w" in dict(poller.poll(1))[left.fileno()]
        poller.unregister(left.fileno())
        assert poller.poll(0) == []
    finally:
        left.close()
        right.close()


def test_compat_select_names() -> None:
    import select

    assert compat.select is select.select
    assert issubclass(select.error, compat.select_error)
    assert inspect.isclass(compat.poll)
