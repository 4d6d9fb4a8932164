"""rpyc.utils.teleportation without any connection: export/import round trips, the code
tuple layouts of every sender version, refusals, and the bytecode compatibility check."""

import sys
import types
import warnings

import pytest

pytest.importorskip("rpyc._core")

from rpyc.core import brine  # noqa: E402
from rpyc.utils import teleportation  # noqa: E402
from rpyc.utils.teleportation import (  # noqa: E402
    CODEOBJ_MAGIC,
    IncompatibleBytecodeError,
    check_peer_bytecode,
    decode_codeobj,
    export_function,
    import_function,
)


def plain(a, b=2):
    return a * 10 + b


def keyword_only(pos=5, *, a=42, b="bye", c=(12.4,)):
    return pos, a, b, c


def with_nested(n):
    def inner(x):
        return x + 1

    return [inner(i) for i in range(n)]


def uses_global():
    return GLOBAL_VALUE  # noqa: F821  (provided by the importer's namespace)


def make_closure():
    captured = 3

    def closure():
        return captured

    return closure


def bad_default(x=[1]):
    return x


def test_export_is_brinable_and_round_trips():
    exported = export_function(plain)
    assert brine.dumpable(exported)
    name, module, defaults, kwdefaults, codetup = exported
    assert (name, module, defaults, kwdefaults) == ("plain", __name__, (2,), None)
    rebuilt = import_function(brine.load(brine.dump(exported)), {})
    assert rebuilt(4) == plain(4) == 42
    assert rebuilt(1, b=7) == 17


def test_code_tuple_layout_matches_this_interpreter():
    codetup = export_function(plain)[4]
    if sys.version_info >= (3, 11):
        assert len(codetup) == 18
        assert codetup[12] == plain.__code__.co_qualname
    else:
        assert len(codetup) == 16
    assert codetup[6] == plain.__code__.co_code


def test_keyword_defaults_survive():
    exported = export_function(keyword_only)
    assert exported[3] == (("a", 42), ("b", "bye"), ("c", (12.4,)))
    assert import_function(exported, {})() == keyword_only()


def test_nested_code_objects_are_marked():
    codetup = export_function(with_nested)[4]
    consts = codetup[7]
    nested = [c for c in consts if isinstance(c, tuple) and len(c) == 2 and c[0] == CODEOBJ_MAGIC]
    assert nested, consts
    assert import_function(export_function(with_nested), {})(3) == [1, 2, 3]


def test_globals_and_def():
    namespace = {"GLOBAL_VALUE": 99}
    func = import_function(export_function(uses_global), namespace)
    assert func() == 99
    assert namespace["uses_global"] is func
    assert "__builtins__" in namespace
    other = {"GLOBAL_VALUE": 1}
    func2 = import_function(export_function(uses_global), other, def_=False)
    assert func2() == 1 and "uses_global" not in other


def test_default_globals_are_the_module_namespace():
    func = import_function(export_function(plain))
    assert func.__globals__ is sys.modules[__name__].__dict__


def test_default_globals_fall_back_to_main():
    exported = ("f",) + ("no.such.module.anywhere",) + export_function(plain)[2:]
    func = import_function(exported)
    assert func.__globals__ is sys.modules["__main__"].__dict__


@pytest.mark.parametrize("func, message", [
    (make_closure(), "closure"),
    (bad_default, "default"),
    (len, "plain Python functions"),
])
def test_refusals(func, message):
    with pytest.raises(TypeError, match=message):
        export_function(func)


def test_non_brinable_constant_refused():
    namespace = {}
    exec("def f():\n    return {1, 2}.__len__()\n", namespace)  # a set is not a constant...
    export_function(namespace["f"])
    code = namespace["f"].__code__.replace(co_consts=namespace["f"].__code__.co_consts + (object(),))
    g = types.FunctionType(code, {})
    with pytest.raises(TypeError, match="non-brinable constant"):
        export_function(g)


def _pow(x, y):
    return x ** y


def _layout(code, kind):
    c = code
    if kind == 15:
        return (c.co_argcount, 0, c.co_nlocals, c.co_stacksize, c.co_flags, c.co_code, c.co_consts,
                c.co_names, c.co_varnames, c.co_filename, c.co_name, c.co_firstlineno, c.co_lnotab,
                c.co_freevars, c.co_cellvars)
    if kind == 16:
        return (c.co_argcount, 0, c.co_kwonlyargcount, c.co_nlocals, c.co_stacksize, c.co_flags,
                c.co_code, c.co_consts, c.co_names, c.co_varnames, c.co_filename, c.co_name,
                c.co_firstlineno, c.co_lnotab, c.co_freevars, c.co_cellvars)
    return export_function(_pow)[4]


@pytest.mark.parametrize("kind", [15, 16, 18])
def test_every_upstream_layout_is_accepted(kind):
    if kind == 18 and sys.version_info < (3, 11):
        pytest.skip("an 18-item tuple carries 3.11 bytecode")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # co_lnotab on 3.12+
        codetup = _layout(_pow.__code__, kind)
    func = import_function(("_pow", __name__, None, None, codetup), {})
    assert func(2, 5) == 32
    assert func(x=2, y=3) == 8


def test_unknown_layout_rejected():
    with pytest.raises(ValueError, match="layout"):
        import_function(("f", __name__, None, None, (1, 2, 3)), {})
    with pytest.raises(TypeError):
        import_function(("f", __name__, None, None, "not a tuple"), {})


def test_decode_codeobj():
    ops = list(decode_codeobj(plain.__code__))
    names = [op for op, _ in ops]
    assert "RETURN_VALUE" in names or "RETURN_CONST" in names
    args = [arg for _, arg in ops]
    assert "a" in args and "b" in args and 10 in args


def test_same_interpreter_is_compatible():
    check_peer_bytecode(teleportation.BYTECODE_TAG, sys.version_info[:2])
    check_peer_bytecode(None, sys.version_info[:2])


def test_other_version_is_a_clear_error():
    major, minor = sys.version_info[:2]
    other_tag = "cpython-%d%d" % (major, minor + 1)
    with pytest.raises(IncompatibleBytecodeError, match="identical Python versions") as info:
        check_peer_bytecode(other_tag, (major, minor + 1), what="'f'")
    assert other_tag in str(info.value)
    assert isinstance(info.value, ValueError)
    with pytest.raises(IncompatibleBytecodeError):
        check_peer_bytecode(None, (major, minor - 1))
    with pytest.raises(IncompatibleBytecodeError):
        check_peer_bytecode("pypy39", (major, minor))
