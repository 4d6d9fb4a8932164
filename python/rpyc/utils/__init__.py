"""Utilities built on top of the protocol, and the ``exposed``/``service`` decorators.

``@exposed`` marks a member (function, class or descriptor) of a service class, and
``@service`` on the class publishes each marked member under its prefixed name as well, so
that ``def add(...)`` decorated with ``@exposed`` becomes reachable as ``exposed_add`` (and,
through the access policy, as ``add``) without renaming it::

    @rpyc.service
    class CalculatorService(rpyc.Service):
        @rpyc.exposed
        def add(self, a, b):
            return a + b

        @rpyc.exposed("public_")
        def sub(self, a, b):  # published as public_sub
            return a - b
"""

import functools
import inspect
import sys
from typing import Any, Callable, TypeVar, Union

from rpyc.core import DEFAULT_CONFIG  # noqa: F401 (upstream's name; the protocol's own dict)

__all__ = ["exposed", "service"]

_T = TypeVar("_T")
_FALLBACK_PREFIX = "exposed_"


def _default_prefix() -> str:
    """The ``exposed_prefix`` of the protocol's default configuration (read at decoration
    time, without importing the protocol module if nothing has imported it yet)."""
    protocol = sys.modules.get("rpyc.core.protocol")
    config = getattr(protocol, "DEFAULT_CONFIG", None)
    if isinstance(config, dict):
        prefix = config.get("exposed_prefix")
        if isinstance(prefix, str):
            return prefix
    return _FALLBACK_PREFIX


def _mark(prefix: str, obj: _T) -> _T:
    obj.__exposed__ = prefix  # type: ignore[attr-defined]
    return obj


def exposed(arg: Any) -> Any:
    """Mark a class member as exposed, for :func:`service`.

    ``@exposed`` uses the default prefix (``"exposed_"``); ``@exposed("prefix_")`` returns a
    decorator using that prefix instead. The marked object gets an ``__exposed__`` attribute
    holding the prefix. Anything that is neither a string, a callable nor a descriptor is
    rejected with :class:`TypeError`.
    """
    if isinstance(arg, str):
        return functools.partial(_mark, arg)
    if hasattr(arg, "__call__") or hasattr(arg, "__get__"):
        return _mark(_default_prefix(), arg)
    raise TypeError("rpyc.exposed expects a callable object, descriptor, or string")


def service(cls: Union[type, Callable[..., Any]]) -> Any:
    """Class decorator publishing every member marked by :func:`exposed` under
    ``prefix + name`` too (the original name stays). Marked nested classes are processed
    recursively. Returns the class."""
    # getmembers reads every attribute through getattr: a descriptor raising something other
    # than AttributeError aborts the decoration, as upstream's does.
    for name, member in inspect.getmembers(cls):
        prefix = getattr(member, "__exposed__", None)
        if not isinstance(prefix, str) or not prefix or inspect.iscode(member):
            continue
        if inspect.isclass(member):
            member = service(member)
        setattr(cls, name, member)
        setattr(cls, prefix + name, member)
    return cls
