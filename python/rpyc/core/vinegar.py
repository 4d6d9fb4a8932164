"""Vinegar: turning exceptions into brine-able values and back (docs/protocol.md#exceptions-vinegar).

:func:`dump` describes an exception raised by a request handler as a plain tuple that can be
sent as the body of an EXCEPTION message; :func:`load` rebuilds a raisable exception from such
a description. The rebuilt exception is an instance of a local subclass of the original class
(or of a :class:`GenericException` stand-in when that class is unknown or not allowed) whose
``str()`` appends the remote traceback.

The loader never runs the exception's ``__init__``, but with ``import_custom_exceptions`` it
imports arbitrary modules named by the peer, and with ``instantiate_custom_exceptions`` it
instantiates arbitrary exception classes: only enable those for trusted peers.
"""

import builtins
import importlib
import sys
import traceback
from types import TracebackType
from typing import Any, Dict, List, Optional, Tuple, Type, Union

from rpyc import version  # noqa: F401 (upstream's name)
from rpyc.core import brine, consts  # noqa: F401 (brine: upstream's name)
from rpyc.core.brine import dumpable

ClassType = type  # upstream's name (a Python 2 leftover)

# The module object itself, taken from sys.modules: the package namespace might rebind the name
# ``rpyc.version``, and the version must be read from the module at each dump/load.
_version = importlib.import_module("rpyc.version")

__all__ = [
    "dump",
    "load",
    "GenericException",
    "REMOTE_LINE_START",
    "REMOTE_LINE_END",
    "REMOTE_LINE",
]

REMOTE_LINE_START = "\n\n========= Remote Traceback "
REMOTE_LINE_END = " =========\n"
#: Header put before the remote traceback in ``str(exc)``; format it with the traceback number.
REMOTE_LINE = REMOTE_LINE_START + "({})" + REMOTE_LINE_END

_TRACEBACK_DENIED = "<traceback denied>"
_VERSION_DENIED = "<version denied>"
_VERSION_ATTR = "_remote_version"
# attribute names of an exception that dump() never lists
_SKIPPED_ATTRS = frozenset(("args", "with_traceback"))

DumpedException = Tuple[Tuple[str, str], Tuple[Any, ...], Tuple[Tuple[str, Any], ...], str]


class GenericException(Exception):
    """Base class of the stand-ins created for remote exceptions whose class cannot (or may not)
    be found locally. The stand-in class is named ``"module.ClassName"`` after the original."""


# "module.name" -> GenericException subclass standing in for that remote class
_generic_exceptions_cache: Dict[str, Type[BaseException]] = {}
# local exception class -> derived class whose str() shows the remote traceback
_exception_classes_cache: Dict[type, Type[BaseException]] = {}
# Entries each cache keeps at most: the names come from the peer, which could invent a new
# one per exception. Classes made past it are not kept and die with their exceptions.
_CACHE_LIMIT = 1024


# CPython refuses str() of integers above 4300 digits (about 14284 bits); brine sends integers
# as decimal text, so such values cannot be encoded although they are "dumpable"
_SAFE_INT_BITS = 14000


def _encodable(value: Any) -> bool:
    """Whether a dumpable value can really be encoded: no lone surrogates in strings and no
    integer beyond CPython's decimal-conversion limit, at any depth."""
    kind = type(value)
    if kind is str:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if kind is int:
        if value.bit_length() <= _SAFE_INT_BITS:
            return True
        try:
            str(value)
        except ValueError:
            return False
        return True
    if kind is tuple or kind is frozenset:
        return all(_encodable(item) for item in value)
    if kind is slice:
        return _encodable(value.start) and _encodable(value.stop) and _encodable(value.step)
    return True


def _safe_text(text: str) -> str:
    """``text`` with anything UTF-8 cannot encode (lone surrogates) backslash-escaped."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _brineable(value: Any) -> Any:
    """``value`` itself if brine can encode it, else a textual stand-in (normally its
    ``repr``), so that the exception description always survives encoding."""
    if dumpable(value) and _encodable(value):
        return value
    if type(value) is str:
        return _safe_text(value)
    try:
        text = repr(value)
    except Exception as exc:  # a broken __repr__ must not break the error report
        text = f"<unrepresentable {type(value).__name__} object: {type(exc).__name__}>"
    return _safe_text(text)


# ---------------------------------------------------------------------------------------------
# dump
# ---------------------------------------------------------------------------------------------


def dump(
    typ: Any,
    val: Optional[BaseException],
    tb: Optional[TracebackType],
    include_local_traceback: bool,
    include_local_version: bool,
) -> Union[int, str, DumpedException]:
    """Describe an exception (as given by ``sys.exc_info()``) as a brine-able value.

    Returns :data:`~rpyc.core.consts.EXC_STOP_ITERATION` when ``typ`` is exactly
    ``StopIteration``, ``typ`` itself when it is a string (legacy), otherwise the 4-tuple
    ``((module, class name), args, attrs, traceback text)``:

    * ``args``: ``val.args`` with every value brine cannot encode replaced by its ``repr``;
    * ``attrs``: ``(name, value)`` for the public attributes of ``val`` in ``dir()`` order
      (except ``args`` and ``with_traceback``), values likewise made encodable, followed by
      ``("_remote_version", <this package's version or "<version denied>">)``;
    * the formatted traceback, or ``"<traceback denied>"``.
    """
    if typ is StopIteration:
        return consts.EXC_STOP_ITERATION
    if type(typ) is str:
        return typ

    if include_local_traceback:
        tbtext = _safe_text("".join(traceback.format_exception(typ, val, tb)))
    else:
        tbtext = _TRACEBACK_DENIED

    raw_args = getattr(val, "args", ())
    if not isinstance(raw_args, tuple):
        raw_args = (raw_args,)
    args = tuple(_brineable(arg) for arg in raw_args)

    attrs: List[Tuple[str, Any]] = []
    for name in dir(val):
        if name.startswith("_") or name in _SKIPPED_ATTRS:
            continue
        try:
            value = getattr(val, name)
        except Exception:  # AttributeError, or a misbehaving property
            continue
        attrs.append((name, _brineable(value)))
    # read the version now: it may be changed at run time and must be reported as it is
    attrs.append(
        (_VERSION_ATTR, _version.__version__ if include_local_version else _VERSION_DENIED)
    )

    return ((typ.__module__, typ.__name__), args, tuple(attrs), tbtext)


# ---------------------------------------------------------------------------------------------
# load
# ---------------------------------------------------------------------------------------------


def _find_class(
    modname: str, clsname: str, import_custom: bool, instantiate_custom: bool
) -> Optional[type]:
    """Local exception class called ``modname.clsname``, if the configuration allows using it."""
    if import_custom and modname not in sys.modules:
        try:
            __import__(modname)
        except Exception:
            pass
    candidate: Any
    if (modname, clsname) in _OWN_CLASSES:
        candidate = _OWN_CLASSES[(modname, clsname)]()
    elif instantiate_custom:
        module = sys.modules.get(modname)
        candidate = getattr(module, clsname, None) if module is not None else None
    elif modname == builtins.__name__:
        candidate = getattr(builtins, clsname, None)
    else:
        candidate = None
    if isinstance(candidate, type) and issubclass(candidate, BaseException):
        return candidate
    return None


def _by_value_error() -> type:
    from rpyc.core.byvalue import ByValueError

    return ByValueError


#: rpyc's own exceptions an rpyc-rs peer raises for its protocol extensions: rebuilt as
#: themselves whatever the configuration says (they carry no peer-chosen class)
_OWN_CLASSES = {("rpyc.core.byvalue", "ByValueError"): _by_value_error}


def _generic_class(modname: str, clsname: str) -> Type[BaseException]:
    """The (cached) :class:`GenericException` subclass standing in for ``modname.clsname``."""
    fullname = f"{modname}.{clsname}"
    cls = _generic_exceptions_cache.get(fullname)
    if cls is None:
        cls = type(fullname, (GenericException,), {"__module__": f"{__name__}/{modname}"})
        if len(_generic_exceptions_cache) < _CACHE_LIMIT:
            _generic_exceptions_cache[fullname] = cls
    return cls


def _remote_header(remote_tb: str) -> str:
    return REMOTE_LINE.format(remote_tb.count(REMOTE_LINE_START) + 1)


def _get_exception_class(cls: type) -> Type[BaseException]:
    """The (cached) subclass of ``cls`` whose ``str``/``repr`` append the remote traceback."""
    derived = _exception_classes_cache.get(cls)
    if derived is not None:
        return derived

    base_str: Any = cls.__str__

    def __str__(self: BaseException) -> str:
        try:
            text = base_str(self)
        except Exception:
            text = "<Unprintable exception>"
        remote_tb = getattr(self, "_remote_tb", None)
        if isinstance(remote_tb, str):
            text += _remote_header(remote_tb) + remote_tb
        return text

    def __repr__(self: BaseException) -> str:
        return str(self)

    namespace = {
        "__str__": __str__,
        "__repr__": __repr__,
        "__module__": cls.__module__,
        "__qualname__": getattr(cls, "__qualname__", cls.__name__),
        "__doc__": cls.__doc__,
    }
    metaclass: Any = type(cls)
    derived = metaclass(cls.__name__, (cls,), namespace)
    if len(_exception_classes_cache) < _CACHE_LIMIT:
        _exception_classes_cache[cls] = derived
    return derived


def _instantiate(cls: type) -> BaseException:
    """An instance of the traceback-showing subclass of ``cls``, created without ``__init__``."""
    derived = _get_exception_class(cls)
    return derived.__new__(derived)


def _malformed(val: Any) -> BaseException:
    """Stand-in exception for an EXCEPTION body that does not have the expected shape."""
    exc = _instantiate(_generic_class("rpyc", "MalformedRemoteException"))
    exc.args = (f"malformed remote exception description: {val!r:.200}",)
    exc._remote_tb = "<no remote traceback>"  # type: ignore[attr-defined]
    return exc


def load(
    val: Any,
    import_custom_exceptions: bool,
    instantiate_custom_exceptions: bool,
    instantiate_oldstyle_exceptions: bool,
) -> Any:
    """Rebuild an exception from a value produced by :func:`dump` (on either implementation).

    Returns the ``StopIteration`` class for :data:`~rpyc.core.consts.EXC_STOP_ITERATION`, a
    string unchanged (legacy), otherwise an exception instance:

    * the class is looked up by module and name (builtins only, unless
      ``instantiate_custom_exceptions``; modules are imported first only with
      ``import_custom_exceptions``); when it is unknown or not allowed, a cached
      :class:`GenericException` subclass named ``"module.name"`` is used instead;
    * the instance belongs to a cached subclass of that class whose ``str``/``repr`` end with a
      numbered "Remote Traceback" section;
    * ``__init__`` is not called: ``args`` and the transmitted attributes are assigned
      directly (attributes that cannot be set are skipped);
    * ``_remote_tb`` holds the remote traceback text, to which a warning is appended when the
      peer reports a different major version.

    ``instantiate_oldstyle_exceptions`` is accepted for compatibility and has no effect.
    """
    if isinstance(val, int) and val == consts.EXC_STOP_ITERATION:
        return StopIteration
    if type(val) is str:
        return val

    try:
        (modname, clsname), args, attrs, tbtext = val
        attrs = tuple((name, value) for name, value in attrs)
    except (TypeError, ValueError):
        return _malformed(val)
    if not (
        isinstance(modname, str)
        and isinstance(clsname, str)
        and isinstance(tbtext, str)
        and all(isinstance(name, str) for name, _ in attrs)
    ):
        return _malformed(val)
    if not isinstance(args, tuple):
        args = (args,)

    cls = _find_class(modname, clsname, import_custom_exceptions, instantiate_custom_exceptions)
    exc: Any = None
    if cls is not None:
        try:
            exc = _instantiate(cls)
        except Exception:
            # e.g. a class that refuses subclassing or whose __new__ needs arguments
            exc = None
    if exc is None:
        try:
            exc = _instantiate(_generic_class(modname, clsname))
        except ValueError:  # a name no class can have (a NUL character)
            return _malformed(val)
    try:
        exc.args = args
    except Exception:
        pass
    for name, value in attrs:
        if name.startswith("__"):
            continue  # never produced by a sender; refuse to touch the object's internals
        try:
            setattr(exc, name, value)
        except Exception:  # read-only attribute, property with a strict setter, ...
            pass

    remote_version = getattr(exc, _VERSION_ATTR, _VERSION_DENIED)
    if remote_version != _VERSION_DENIED:
        local_major = str(_version.version[0])
        if str(remote_version).split(".")[0] != local_major:
            tbtext += (
                f"\nWARNING: Remote is on RPyC {remote_version} "
                f"and local is on RPyC {_version.__version__}.\n\n"
            )
    exc._remote_tb = tbtext
    return exc
