"""Unit tests for rpyc.core.vinegar (exception serialization, docs/protocol.md#exceptions-vinegar)."""

import importlib
import sys
import textwrap
import types
from typing import Any, Iterator, Tuple

import pytest

from rpyc.core import consts, vinegar

version = importlib.import_module("rpyc.version")  # the module, whatever rpyc.version is bound to


def _exc_info(exc: BaseException) -> Tuple[Any, Any, Any]:
    try:
        raise exc
    except BaseException:
        return sys.exc_info()


def _dump(exc: BaseException, tb: bool = True, ver: bool = True) -> Any:
    return vinegar.dump(*_exc_info(exc), tb, ver)


def _load(dumped: Any, import_custom: bool = False, instantiate_custom: bool = False) -> Any:
    return vinegar.load(dumped, import_custom, instantiate_custom, False)


def _is_dumpable(value: Any) -> bool:
    from rpyc.core import brine

    return bool(brine.dumpable(value))


class CustomError(Exception):
    pass


class ErrorWithAttrs(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.code = 42
        self.payload = [1, 2]
        self._hidden = "secret"

    @property
    def readonly(self) -> str:
        return "ro"


class UnprintableError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("cannot print")


# ---------------------------------------------------------------------------------------------
# dump
# ---------------------------------------------------------------------------------------------


def test_dump_stop_iteration_exact_type_only() -> None:
    assert _dump(StopIteration("x")) == consts.EXC_STOP_ITERATION == 1

    class MyStop(StopIteration):
        pass

    dumped = _dump(MyStop())
    assert isinstance(dumped, tuple) and dumped[0][1] == "MyStop"


def test_dump_legacy_string_passthrough() -> None:
    assert vinegar.dump("legacy", None, None, True, True) == "legacy"


def test_dump_shape_builtin() -> None:
    dumped = _dump(ValueError("bad value", 3))
    assert isinstance(dumped, tuple) and len(dumped) == 4
    (module, name), args, attrs, tbtext = dumped
    assert (module, name) == ("builtins", "ValueError")
    assert args == ("bad value", 3)
    assert isinstance(attrs, tuple)
    assert all(isinstance(pair, tuple) and len(pair) == 2 for pair in attrs)
    assert attrs[-1] == ("_remote_version", version.__version__)
    assert tbtext.startswith("Traceback (most recent call last):")
    assert "ValueError: ('bad value', 3)" in tbtext
    assert _is_dumpable(dumped)


def test_dump_attrs_order_and_filtering() -> None:
    _, args, attrs, _ = _dump(ErrorWithAttrs("boom"))
    names = [name for name, _ in attrs]
    assert names[-1] == "_remote_version"
    listed = names[:-1]
    assert listed == sorted(listed)  # dir() order
    assert "code" in listed and "payload" in listed and "readonly" in listed
    assert "args" not in listed and "with_traceback" not in listed
    assert not any(name.startswith("_") for name in listed)
    values = dict(attrs)
    assert values["code"] == 42
    assert values["payload"] == "[1, 2]"  # not dumpable -> repr
    assert values["readonly"] == "ro"
    if sys.version_info >= (3, 11):
        assert values["add_note"].startswith("<built-in method add_note of ErrorWithAttrs")


def test_dump_non_dumpable_args_become_repr() -> None:
    _, args, _, _ = _dump(CustomError([1], {"a": 1}, (1, [2]), "ok", None, 1.5))
    assert args == ("[1]", "{'a': 1}", "(1, [2])", "ok", None, 1.5)


def test_dump_oserror_attributes() -> None:
    _, _, attrs, _ = _dump(FileNotFoundError(2, "No such file", "/nope"))
    values = dict(attrs)
    assert values["errno"] == 2
    assert values["strerror"] == "No such file"
    assert values["filename"] == "/nope"
    assert values["filename2"] is None
    assert "characters_written" not in values  # raises AttributeError when unset


def test_dump_denied_traceback_and_version() -> None:
    _, _, attrs, tbtext = _dump(ValueError("x"), tb=False, ver=False)
    assert tbtext == "<traceback denied>"
    assert attrs[-1] == ("_remote_version", "<version denied>")


def test_dump_reads_version_at_dump_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(version, "__version__", "9.9.9")
    _, _, attrs, _ = _dump(ValueError("x"))
    assert attrs[-1] == ("_remote_version", "9.9.9")


def test_dump_includes_chained_causes() -> None:
    try:
        try:
            raise KeyError("inner")
        except KeyError as inner:
            raise RuntimeError("outer") from inner
    except RuntimeError:
        _, _, _, tbtext = vinegar.dump(*sys.exc_info(), True, True)
    assert "KeyError: 'inner'" in tbtext and "RuntimeError: outer" in tbtext


# ---------------------------------------------------------------------------------------------
# load
# ---------------------------------------------------------------------------------------------


def test_load_stop_iteration_and_string() -> None:
    assert _load(consts.EXC_STOP_ITERATION) is StopIteration
    assert _load("legacy") == "legacy"


def test_load_builtin_roundtrip() -> None:
    exc = _load(_dump(ValueError("bad value")))
    assert isinstance(exc, ValueError)
    assert type(exc) is not ValueError
    assert type(exc).__name__ == "ValueError"
    assert type(exc).__module__ == "builtins"
    assert exc.args == ("bad value",)
    assert exc._remote_version == version.__version__
    assert "ValueError: bad value" in exc._remote_tb
    text = str(exc)
    assert text.startswith("bad value\n\n========= Remote Traceback (1) =========\n")
    assert text.endswith(exc._remote_tb)
    assert repr(exc) == text
    with pytest.raises(ValueError):
        raise exc


def test_load_class_caches() -> None:
    first = _load(_dump(KeyError("a")))
    second = _load(_dump(KeyError("b")))
    assert type(first) is type(second)
    g1 = _load(_dump(CustomError("a")))
    g2 = _load(_dump(CustomError("b")))
    assert type(g1) is type(g2)


def test_load_does_not_call_init() -> None:
    class NeedsArgs(Exception):
        def __init__(self, a: int, b: int) -> None:  # would fail with the wrong arity
            raise AssertionError("__init__ must not run")

    module = types.ModuleType("vinegar_test_needs_args")
    module.NeedsArgs = NeedsArgs  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    try:
        dumped = ((module.__name__, "NeedsArgs"), ("only one",), (), "tb")
        exc = _load(dumped, instantiate_custom=True)
        assert isinstance(exc, NeedsArgs) and exc.args == ("only one",)
    finally:
        del sys.modules[module.__name__]


def test_load_custom_exception_generic_by_default() -> None:
    dumped = _dump(CustomError("custom", [1]))
    exc = _load(dumped)
    assert isinstance(exc, vinegar.GenericException)
    assert isinstance(exc, Exception)
    assert not isinstance(exc, CustomError)
    fullname = f"{__name__}.CustomError"
    assert type(exc).__name__ == fullname
    assert type(exc).__module__ == f"rpyc.core.vinegar/{__name__}"
    assert exc.args == ("custom", "[1]")
    assert vinegar._generic_exceptions_cache[fullname] in type(exc).__mro__


def test_load_custom_exception_instantiated() -> None:
    exc = _load(_dump(ErrorWithAttrs("boom")), instantiate_custom=True)
    assert isinstance(exc, ErrorWithAttrs)
    assert exc.code == 42
    assert exc.payload == "[1, 2]"
    assert exc.readonly == "ro"  # read-only property skipped silently
    assert not hasattr(exc, "_hidden")
    assert "========= Remote Traceback (1) =========" in str(exc)


def test_load_non_builtin_module_needs_instantiate_flag() -> None:
    # a real class, but outside builtins: only allowed with instantiate_custom_exceptions
    import json

    dumped = (("json.decoder", "JSONDecodeError"), ("msg",), (), "tb")
    assert isinstance(_load(dumped), vinegar.GenericException)
    assert isinstance(_load(dumped, instantiate_custom=True), json.JSONDecodeError)


def test_load_rejects_non_exception_classes() -> None:
    for module, name in (("builtins", "int"), ("builtins", "len"), ("builtins", "nonexistent")):
        exc = _load(((module, name), (), (), "tb"), instantiate_custom=True)
        assert isinstance(exc, vinegar.GenericException)
        assert type(exc).__name__ == f"{module}.{name}"


@pytest.fixture
def custom_module(tmp_path: Any) -> Iterator[str]:
    name = "rpyc_vinegar_test_custom_mod"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent("""
            class SpecialError(Exception):
                pass
            """))
    sys.path.insert(0, str(tmp_path))
    try:
        yield name
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop(name, None)


def test_load_import_custom_exceptions(custom_module: str) -> None:
    dumped = ((custom_module, "SpecialError"), ("x",), (), "tb")
    exc = _load(dumped, import_custom=False, instantiate_custom=True)
    assert isinstance(exc, vinegar.GenericException)
    assert custom_module not in sys.modules
    exc = _load(dumped, import_custom=True, instantiate_custom=True)
    assert custom_module in sys.modules
    assert isinstance(exc, sys.modules[custom_module].SpecialError)


def test_load_import_failure_is_ignored() -> None:
    dumped = (("no.such.module_for_vinegar", "Err"), (), (), "tb")
    exc = _load(dumped, import_custom=True, instantiate_custom=True)
    assert isinstance(exc, vinegar.GenericException)


def test_remote_traceback_numbering_through_relays() -> None:
    first = _load(_dump(ValueError("origin")))
    assert "Remote Traceback (1)" in str(first)
    # the first receiver re-raises it towards a third party: its str() (with the first
    # remote traceback) ends up in the new traceback text
    relayed = _load(_dump(first))
    text = str(relayed)
    assert "========= Remote Traceback (2) =========" in text
    assert text.count(vinegar.REMOTE_LINE_START) == 2


def test_remote_line_constants() -> None:
    assert vinegar.REMOTE_LINE_START == "\n\n========= Remote Traceback "
    assert vinegar.REMOTE_LINE_END == " =========\n"
    assert vinegar.REMOTE_LINE.format(3) == "\n\n========= Remote Traceback (3) =========\n"


def test_unprintable_exception() -> None:
    exc = _load(_dump(UnprintableError()), instantiate_custom=True)
    assert str(exc).startswith("<Unprintable exception>\n\n========= Remote Traceback (1)")


def test_version_warning_on_major_mismatch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(version, "__version__", "1.0.0")
    exc = _load(_dump(AssertionError()))
    assert exc._remote_version == "1.0.0"
    assert "WARNING: Remote is on RPyC 1.0.0 and local is on RPyC 1.0.0." in exc._remote_tb
    assert exc._remote_tb.endswith(".\n\n")


def test_no_version_warning_on_same_major() -> None:
    dumped = (("builtins", "ValueError"), (), (("_remote_version", "6.9.1"),), "tb")
    exc = _load(dumped)
    assert exc._remote_tb == "tb"
    assert exc._remote_version == "6.9.1"


def test_no_version_warning_when_denied_or_absent() -> None:
    exc = _load(_dump(ValueError("x"), tb=False, ver=False))
    assert exc._remote_tb == "<traceback denied>"
    assert exc._remote_version == "<version denied>"
    exc = _load((("builtins", "ValueError"), (), (), "tb"))
    assert exc._remote_tb == "tb"


def test_load_skips_dunder_attrs() -> None:
    dumped = (("builtins", "ValueError"), (), (("__class__", "x"), ("__dict__", 1)), "tb")
    exc = _load(dumped)
    assert isinstance(exc, ValueError)


@pytest.mark.parametrize(
    "payload",
    [
        (),
        (1, 2, 3, 4),
        (("builtins", "ValueError"), (), (), 5),
        (("builtins",), (), (), "tb"),
        ((1, 2), (), (), "tb"),
        (("builtins", "ValueError"), (), 7, "tb"),
        (("builtins", "ValueError"), (), ((1, 2),), "tb"),
        None,
        2,
    ],
)
def test_load_malformed_payload_gives_generic_exception(payload: Any) -> None:
    exc = _load(payload)
    assert isinstance(exc, vinegar.GenericException)
    assert "malformed remote exception" in exc.args[0]


def test_load_args_not_tuple_is_wrapped() -> None:
    exc = _load((("builtins", "ValueError"), "single", (), "tb"))
    assert exc.args == ("single",)


def test_instantiate_oldstyle_flag_is_accepted() -> None:
    exc = vinegar.load(_dump(ValueError("x")), False, False, True)
    assert isinstance(exc, ValueError)


def test_dump_always_encodable() -> None:
    huge = 10**5000
    lone = "bad \udc80 text"
    dumped = _dump(CustomError(lone, huge, (1, lone), "fine"))
    _, args, attrs, tbtext = dumped
    assert args[0] == "bad \\udc80 text"
    assert isinstance(args[1], str)  # the integer is too long to be sent as decimal text
    assert args[2] == repr((1, lone))
    assert args[3] == "fine"
    assert vinegar._encodable(dumped)
    _, args, _, tbtext = _dump(ValueError(lone))
    assert args == ("bad \\udc80 text",)
    assert "ValueError: bad \\udc80 text" in tbtext
    tbtext.encode("utf-8")


def test_dump_survives_broken_repr() -> None:
    class BrokenRepr:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    _, args, _, _ = _dump(CustomError(BrokenRepr()))
    assert args == ("<unrepresentable BrokenRepr object: RuntimeError>",)


def test_name_no_class_can_have_is_malformed():
    """Found by the hostile soak: a NUL in the remote class name made type() raise inside
    the connection's receive path."""
    exc = vinegar.load((("mod\x00ule", "Na\x00me"), ("x",), (), "tb"), False, False, False)
    assert type(exc).__name__ == "rpyc.MalformedRemoteException"


def test_generic_class_cache_is_bounded(monkeypatch):
    """Peers choose the names: a new name per exception must not grow the caches forever."""
    monkeypatch.setattr(vinegar, "_generic_exceptions_cache", {})
    monkeypatch.setattr(vinegar, "_exception_classes_cache", {})
    monkeypatch.setattr(vinegar, "_CACHE_LIMIT", 10)
    for i in range(50):
        exc = vinegar.load((("peer.mod", "Invented%d" % i), (i,), (), "tb"), False, False, False)
        assert type(exc).__name__ == "peer.mod.Invented%d" % i and exc.args == (i,)
    assert len(vinegar._generic_exceptions_cache) == 10
    assert len(vinegar._exception_classes_cache) == 10
