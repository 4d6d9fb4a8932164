"""Interpreter and platform shims.

Upstream rpyc grew these while it still supported Python 2; they are kept here under the same
names because user code and the upstream test suite import them. On the Python versions this
package supports most of them are plain aliases of the standard library.
"""

import pickle  # noqa: F401  (re-exported)
import select as _select_module
import sys
import time
from io import BytesIO  # noqa: F401  (re-exported)
from struct import Struct  # noqa: F401  (re-exported)
from typing import Any, Dict, List, Optional, Set, Tuple

__all__ = [
    "is_py_3k",
    "is_py_gte37",
    "is_py_gte38",
    "is_py_gte310",
    "is_py_gte311",
    "BYTES_LITERAL",
    "maxint",
    "execute",
    "pickle",
    "BytesIO",
    "Struct",
    "next",
    "callable",
    "select",
    "select_error",
    "poll",
    "get_exc_errno",
    "with_metaclass",
    "TimeoutError",
    "acquire_lock",
]

_major, _minor = sys.version_info[:2]
is_py_3k: bool = _major >= 3
is_py_gte37: bool = is_py_3k and _minor >= 7
is_py_gte38: bool = is_py_3k and _minor >= 8
is_py_gte310: bool = is_py_3k and _minor >= 10
is_py_gte311: bool = is_py_3k and _minor >= 11

maxint: int = sys.maxsize

#: ``exec`` under its Python 2 era name.
execute = exec

next = next
callable = callable
TimeoutError = TimeoutError

select = _select_module.select
select_error = OSError  # ``select.error`` has been an alias of OSError since Python 3.3


def BYTES_LITERAL(text: str) -> bytes:
    """Return ``text`` encoded as UTF-8 bytes."""
    return text.encode("utf-8")


def get_exc_errno(exc: BaseException) -> Any:
    """Return the errno carried by a socket/OS error (or its first argument)."""
    if hasattr(exc, "errno"):
        return exc.errno
    return exc.args[0]


def with_metaclass(meta: type, *bases: type) -> type:
    """Return a temporary base class so that ``class X(with_metaclass(M, B))`` is created by
    the metaclass ``M`` with bases ``B`` (the six-style helper)."""

    class _Bootstrap(type):
        def __new__(mcs, name: str, _ignored_bases: Tuple[type, ...], namespace: Dict[str, Any]) -> Any:
            return meta(name, bases, namespace)

    return type.__new__(_Bootstrap, "temporary_class", (), {})


def acquire_lock(lock: Any, blocking: bool, timeout: Any) -> bool:
    """Acquire ``lock``, waiting at most ``timeout.timeleft()`` seconds when ``blocking`` and
    ``timeout`` (a :class:`rpyc.lib.Timeout`) is finite."""
    if blocking and timeout.finite:
        return bool(lock.acquire(True, timeout.timeleft()))
    return bool(lock.acquire(blocking))


# POLLRDHUP (peer closed its writing half) is Linux specific and missing from ``select``.
_POLLRDHUP = getattr(_select_module, "POLLRDHUP", 0x2000)


class PollingPoll:
    """Uniform poller over ``select.poll``.

    ``register(fd, mode)`` takes a string of event letters: ``r`` readable, ``w`` writable,
    ``e`` error, ``h`` hang-up. :meth:`poll` takes seconds (``None`` waits forever) and
    returns ``[(fd, letters)]`` where the letters may also contain ``n`` (invalid fd).
    """

    def __init__(self) -> None:
        self._poller = _select_module.poll()

    @staticmethod
    def _mode_to_flags(mode: str) -> int:
        sm = _select_module
        flags = 0
        if "r" in mode:
            flags |= sm.POLLIN | sm.POLLPRI
        if "w" in mode:
            flags |= sm.POLLOUT
        if "e" in mode:
            flags |= sm.POLLERR
        if "h" in mode:
            flags |= sm.POLLHUP | sm.POLLNVAL | _POLLRDHUP
        return flags

    def register(self, fd: Any, mode: str) -> None:
        self._poller.register(fd, self._mode_to_flags(mode))

    def modify(self, fd: Any, mode: str) -> None:
        # upstream treats modify as a re-registration, which poll() accepts for known fds
        self._poller.register(fd, self._mode_to_flags(mode))

    def unregister(self, fd: Any) -> None:
        self._poller.unregister(fd)

    def poll(self, timeout: Optional[float] = None) -> List[Tuple[int, str]]:
        millis = None if timeout is None else timeout * 1000
        result = []
        sm = _select_module
        for fd, events in self._poller.poll(millis):
            letters = ""
            if events & (sm.POLLIN | sm.POLLPRI):
                letters += "r"
            if events & sm.POLLOUT:
                letters += "w"
            if events & sm.POLLERR:
                letters += "e"
            if events & sm.POLLHUP:
                letters += "h"
            if events & sm.POLLNVAL:
                letters += "n"
            result.append((fd, letters))
        return result


class SelectingPoll:
    """The same interface as the poll-based poller, implemented with ``select.select`` for
    platforms without ``poll`` (Windows)."""

    def __init__(self) -> None:
        self._readers: Set[Any] = set()
        self._writers: Set[Any] = set()

    def register(self, fd: Any, mode: str) -> None:
        if "r" in mode:
            self._readers.add(fd)
        if "w" in mode:
            self._writers.add(fd)

    modify = register

    def unregister(self, fd: Any) -> None:
        self._readers.discard(fd)
        self._writers.discard(fd)

    def poll(self, timeout: Optional[float] = None) -> List[Tuple[Any, str]]:
        if not self._readers and not self._writers:
            if timeout:
                time.sleep(timeout)
            return []
        readable, writable, _ = select(list(self._readers), list(self._writers), [], timeout)
        return [(fd, "r") for fd in readable] + [(fd, "w") for fd in writable]


poll = PollingPoll if hasattr(_select_module, "poll") else SelectingPoll
