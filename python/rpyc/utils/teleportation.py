"""Sending functions as data ("teleportation", docs/protocol.md#teleportation).

A plain Python function -- no closure, brine-able defaults, nested functions allowed -- is
flattened into a tuple of brine values (:func:`export_function`) that the other side turns
back into a function object (:func:`import_function`). The tuple carries raw bytecode, so it
is only meaningful to an interpreter that compiles to the same bytecode: the same
implementation and the same minor version (``sys.implementation.cache_tag`` names exactly
that). :func:`rpyc.classic.teleport_function` checks the peer before sending and raises
:class:`IncompatibleBytecodeError` on a mismatch; the importer itself cannot tell (the tuple
does not say which interpreter produced it) and accepts every layout upstream RPyC sends.

Code-tuple layouts, chosen by the *sender's* version:

* 18 items (3.11 and later): argcount, posonlyargcount, kwonlyargcount, nlocals,
  stacksize, flags, code, consts, names, varnames, filename, name, qualname, firstlineno,
  linetable, exceptiontable, freevars, cellvars;
* 16 items (3.8 - 3.10): the same without qualname and exceptiontable, and the line table
  is ``co_lnotab`` before 3.10;
* 15 items (before 3.8): without posonlyargcount as well.

Nested code objects inside ``consts`` travel as ``(CODEOBJ_MAGIC, codetup)`` pairs.
"""

import dis
import sys
from types import CodeType, FunctionType
from typing import Any, Dict, Iterator, Optional, Tuple

from rpyc.core import brine, netref  # noqa: F401 (netref: upstream's name)
from rpyc.lib.compat import is_py_gte38, is_py_gte310, is_py_gte311  # noqa: F401 (upstream's names)

__all__ = [
    "CODEOBJ_MAGIC",
    "BYTECODE_TAG",
    "IncompatibleBytecodeError",
    "export_function",
    "import_function",
    "decode_codeobj",
]

#: marks a nested code object inside an exported ``consts`` tuple (the value is fixed by the
#: wire format: upstream peers use the same string)
CODEOBJ_MAGIC = "MAg1c J0hNNzo0hn ZqhuBP17LQk8"

#: what this interpreter's bytecode is compatible with (``"cpython-311"``...); ``None`` when
#: the implementation does not say, in which case the version numbers are compared instead
BYTECODE_TAG: Optional[str] = getattr(sys.implementation, "cache_tag", None)

#: upstream's name (the size of a pre-3.6 instruction with an argument); unused here
CODE_HAVEARG_SIZE = 3

_VERSION = sys.version_info[:2]
_LAYOUT_311 = 18
_LAYOUT_38 = 16
_LAYOUT_OLD = 15


class IncompatibleBytecodeError(ValueError):
    """The peer runs an interpreter whose bytecode differs from ours, so a teleported
    function would misbehave (or crash the peer) instead of running."""


def decode_codeobj(codeobj: CodeType) -> Iterator[Tuple[str, Any]]:
    """Yield ``(opname, argval)`` for each instruction of ``codeobj`` (``argval`` is the
    resolved argument -- a constant, a name, a jump target... -- or ``None``)."""
    for instruction in dis.get_instructions(codeobj):
        yield instruction.opname, instruction.argval


# -- export ----------------------------------------------------------------------------------

def _export_consts(consts: Tuple[Any, ...]) -> Tuple[Any, ...]:
    exported = []
    for const in consts:
        if isinstance(const, CodeType):
            exported.append((CODEOBJ_MAGIC, _export_codeobj(const)))
        elif brine.dumpable(const):
            exported.append(const)
        else:
            raise TypeError(f"cannot export a function with a non-brinable constant: {const!r}")
    return tuple(exported)


def _export_codeobj(code: CodeType) -> Tuple[Any, ...]:
    """Flatten ``code`` into the code tuple of this interpreter's layout."""
    consts = _export_consts(code.co_consts)
    if sys.version_info >= (3, 11):  # (spelled so that mypy checks each branch on its version)
        codetup: Tuple[Any, ...] = (
            code.co_argcount, code.co_posonlyargcount, code.co_kwonlyargcount, code.co_nlocals,
            code.co_stacksize, code.co_flags, code.co_code, consts, code.co_names,
            code.co_varnames, code.co_filename, code.co_name, code.co_qualname,
            code.co_firstlineno, code.co_linetable, code.co_exceptiontable, code.co_freevars,
            code.co_cellvars,
        )
    else:
        lines = code.co_linetable if _VERSION >= (3, 10) else code.co_lnotab
        codetup = (
            code.co_argcount, code.co_posonlyargcount, code.co_kwonlyargcount, code.co_nlocals,
            code.co_stacksize, code.co_flags, code.co_code, consts, code.co_names,
            code.co_varnames, code.co_filename, code.co_name, code.co_firstlineno, lines,
            code.co_freevars, code.co_cellvars,
        )
    if not brine.dumpable(codetup):
        raise TypeError(f"cannot export code object {code.co_name!r}: it holds non-brinable values")
    return codetup


def export_function(func: Any) -> Tuple[Any, ...]:
    """Flatten ``func`` into ``(name, module, defaults, kwdefaults, codetup)``, a tuple brine
    can send. Closures and non-brinable defaults or constants raise :class:`TypeError`;
    globals are not exported (the importer supplies a namespace)."""
    if not isinstance(func, FunctionType):
        raise TypeError(f"only plain Python functions can be exported, not {type(func).__name__}")
    if func.__closure__:
        raise TypeError(f"cannot export {func.__name__!r}: it is a closure (uses variables of an enclosing function)")
    defaults = func.__defaults__
    kwdefaults: Optional[Tuple[Tuple[str, Any], ...]] = None
    if func.__kwdefaults__ is not None:
        kwdefaults = tuple(func.__kwdefaults__.items())
    if not brine.dumpable(defaults):
        raise TypeError(f"cannot export {func.__name__!r}: non-brinable default values (__defaults__)")
    if not brine.dumpable(kwdefaults):
        raise TypeError(f"cannot export {func.__name__!r}: non-brinable keyword defaults (__kwdefaults__)")
    return (func.__name__, func.__module__, defaults, kwdefaults, _export_codeobj(func.__code__))


# -- import ----------------------------------------------------------------------------------

def _unpack_codetup(codetup: Any) -> Dict[str, Any]:
    """Name the fields of a code tuple of any known layout; missing ones get neutral values."""
    if not isinstance(codetup, tuple):
        raise TypeError(f"a code tuple must be a tuple, not {type(codetup).__name__}")
    fields: Dict[str, Any] = {"posonlyargcount": 0, "qualname": None, "exceptiontable": b""}
    count = len(codetup)
    if count == _LAYOUT_311:
        (fields["argcount"], fields["posonlyargcount"], fields["kwonlyargcount"], fields["nlocals"],
         fields["stacksize"], fields["flags"], fields["code"], fields["consts"], fields["names"],
         fields["varnames"], fields["filename"], fields["name"], fields["qualname"],
         fields["firstlineno"], fields["lines"], fields["exceptiontable"], fields["freevars"],
         fields["cellvars"]) = codetup
    elif count == _LAYOUT_38:
        (fields["argcount"], fields["posonlyargcount"], fields["kwonlyargcount"], fields["nlocals"],
         fields["stacksize"], fields["flags"], fields["code"], fields["consts"], fields["names"],
         fields["varnames"], fields["filename"], fields["name"], fields["firstlineno"],
         fields["lines"], fields["freevars"], fields["cellvars"]) = codetup
    elif count == _LAYOUT_OLD:
        (fields["argcount"], fields["kwonlyargcount"], fields["nlocals"], fields["stacksize"],
         fields["flags"], fields["code"], fields["consts"], fields["names"], fields["varnames"],
         fields["filename"], fields["name"], fields["firstlineno"], fields["lines"],
         fields["freevars"], fields["cellvars"]) = codetup
    else:
        raise ValueError(f"unknown code tuple layout ({count} items; expected 15, 16 or 18)")
    if fields["qualname"] is None:
        fields["qualname"] = fields["name"]
    if _VERSION < (3, 10) and (count == _LAYOUT_311 or len(fields["lines"]) > 2):
        # A line table from another format would be misread: go without line numbers.
        fields["lines"] = b""
    return fields


def _import_codetup(codetup: Any) -> CodeType:
    """Build a code object for this interpreter from a code tuple of any known layout."""
    f = _unpack_codetup(codetup)
    consts = []
    for const in f["consts"]:
        if type(const) is tuple and len(const) == 2 and const[0] == CODEOBJ_MAGIC:
            consts.append(_import_codetup(const[1]))
        else:
            consts.append(const)
    if sys.version_info >= (3, 11):
        return CodeType(
            f["argcount"], f["posonlyargcount"], f["kwonlyargcount"], f["nlocals"],
            f["stacksize"], f["flags"], f["code"], tuple(consts), f["names"], f["varnames"],
            f["filename"], f["name"], f["qualname"], f["firstlineno"], f["lines"],
            f["exceptiontable"], f["freevars"], f["cellvars"],
        )
    else:
        return CodeType(
            f["argcount"], f["posonlyargcount"], f["kwonlyargcount"], f["nlocals"], f["stacksize"],
            f["flags"], f["code"], tuple(consts), f["names"], f["varnames"], f["filename"],
            f["name"], f["firstlineno"], f["lines"], f["freevars"], f["cellvars"],
        )


def _default_globals(modname: Any) -> Dict[str, Any]:
    try:
        module = __import__(modname, None, None, ["*"])
    except Exception:
        module = __import__("__main__", None, None, ["*"])
    return module.__dict__


def import_function(functup: Any, globals: Any = None, def_: bool = True) -> FunctionType:
    """Rebuild the function exported by :func:`export_function`.

    ``globals`` is the namespace the function sees (a dict; a proxy of a remote dict is
    copied locally first). By default it is the namespace of the function's module if that
    module can be imported here, else ``__main__``'s. With ``def_`` the function is also
    stored in ``globals`` under its name, so teleported functions can call each other.
    """
    name, modname, defaults, kwdefaults, codetup = functup
    if globals is None:
        globals = _default_globals(modname)
    else:
        from rpyc.core.netref import BaseNetref

        if isinstance(globals, BaseNetref):
            # A function's globals must be a real dict.
            from rpyc.utils.classic import obtain

            globals = obtain(globals)
    globals.setdefault("__builtins__", __builtins__)
    func = FunctionType(_import_codetup(codetup), globals, name, defaults)
    if kwdefaults is not None:
        func.__kwdefaults__ = {key: value for key, value in kwdefaults}
    if def_:
        globals[name] = func
    return func


def check_peer_bytecode(peer_tag: Optional[str], peer_version: Tuple[int, int], what: str = "function") -> None:
    """Raise :class:`IncompatibleBytecodeError` unless a peer reporting ``peer_tag``
    (its ``sys.implementation.cache_tag``) and ``peer_version`` (major, minor) runs the same
    bytecode as this interpreter."""
    if peer_tag is not None and BYTECODE_TAG is not None:
        same = peer_tag == BYTECODE_TAG
    else:
        same = tuple(peer_version) == _VERSION
    if not same:
        mine = BYTECODE_TAG or "python-%d.%d" % _VERSION
        theirs = peer_tag or "python-%d.%d" % tuple(peer_version)
        raise IncompatibleBytecodeError(
            f"cannot teleport {what}: this interpreter produces {mine} bytecode but the peer "
            f"runs {theirs}; teleported bytecode only works between identical Python versions "
            f"(send the source with conn.execute() instead)"
        )
