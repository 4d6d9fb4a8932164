"""``AsyncResult``: the pending answer of an asynchronous request (docs/protocol.md#connection-lifecycle)."""

from typing import Any, Callable, List, Optional

from rpyc.lib import Timeout

AsyncResultTimeout = TimeoutError


class AsyncResult:
    """Filled in by the connection when the answer arrives; reading ``value`` waits for it
    (serving the connection meanwhile) and raises the remote exception, if any."""

    __slots__ = ["_conn", "_is_ready", "_is_exc", "_callbacks", "_obj", "_ttl", "__weakref__"]

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self._is_ready = False
        self._is_exc: Optional[bool] = None
        self._obj: Any = None
        self._callbacks: List[Callable[["AsyncResult"], Any]] = []
        self._ttl = Timeout(None)

    def __repr__(self) -> str:
        if self._is_ready:
            state = "error" if self._is_exc else "ready"
        elif self.expired:
            state = "expired"
        else:
            state = "pending"
        return f"<AsyncResult object ({state}) at 0x{id(self):08x}>"

    def __call__(self, is_exc: bool, obj: Any) -> None:
        """Deliver the answer (called by the connection)."""
        if self.expired:
            return
        self._is_exc = is_exc
        self._obj = obj
        self._is_ready = True
        for cb in self._callbacks:
            cb(self)
        del self._callbacks[:]

    def _waiting(self) -> bool:
        return not (self._is_ready or self.expired)

    def wait(self) -> None:
        """Block until the answer arrives or the expiry passes (then ``TimeoutError``)."""
        while self._waiting():
            if self._conn.closed:
                raise EOFError("connection closed before the result arrived")
            self._conn.serve(self._ttl.timeleft(), True, self._waiting)
        if not self._is_ready:
            raise AsyncResultTimeout("result expired")

    def add_callback(self, func: Callable[["AsyncResult"], Any]) -> None:
        """Call ``func(self)`` when the answer arrives (at once if it already has)."""
        if self._is_ready:
            func(self)
        else:
            self._callbacks.append(func)

    def set_expiry(self, timeout: Optional[float]) -> None:
        """Give up waiting ``timeout`` seconds from now (``None``: never)."""
        self._ttl = Timeout(timeout)

    @property
    def ready(self) -> bool:
        """True once the answer arrived (polls the connection without blocking)."""
        if self._is_ready:
            return True
        if self._ttl.expired():
            return False
        if not self._conn.closed:
            self._conn.poll_all()
        return self._is_ready

    @property
    def error(self) -> bool:
        return self.ready and bool(self._is_exc)

    @property
    def expired(self) -> bool:
        return not self._is_ready and self._ttl.expired()

    @property
    def value(self) -> Any:
        """The result; raises the remote exception, or ``TimeoutError`` after expiry."""
        self.wait()
        if self._is_exc:
            raise self._obj
        return self._obj

