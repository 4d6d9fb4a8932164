"""A minimal select-based reactor (``rpyc.core.reactor``).

Upstream ships an unfinished module of this name that nothing uses; it is kept here so that
the module tree matches. This version works: register a readable object with a callback and
run the loop (in the calling thread, or in a daemon thread with :func:`start_reactor`).
Connections do not need it: each connection's engine reads its own socket.
"""

import os
import select
import threading
from typing import Any, Callable, Dict, Optional

__all__ = ["SelectReactor", "start_reactor"]


class SelectReactor:
    """Calls ``callback(fileobj)`` whenever a registered object (anything with ``fileno()``)
    is readable. Without a callback, the object is read (``recv(16000)``) and closed and
    unregistered at end of file, as upstream's sketch did."""

    TIMEOUT: Optional[float] = 0.5 if os.name == "nt" else None
    #: how often the loop checks whether :meth:`stop` was called (seconds)
    POLL_INTERVAL = 0.5

    def __init__(self) -> None:
        self._active = False
        self._lock = threading.Lock()
        self._readers: Dict[Any, Optional[Callable[[Any], None]]] = {}

    def register_read(self, fileobj: Any, callback: Optional[Callable[[Any], None]] = None) -> None:
        with self._lock:
            self._readers[fileobj] = callback

    def unregister_read(self, fileobj: Any) -> None:
        with self._lock:
            self._readers.pop(fileobj, None)

    @property
    def active(self) -> bool:
        return self._active

    def stop(self) -> None:
        """Make :meth:`run` return after its current wait."""
        self._active = False

    def _drain(self, fileobj: Any) -> None:
        data = fileobj.recv(16000)
        if not data:
            fileobj.close()
            self.unregister_read(fileobj)

    def run(self) -> None:
        """Dispatch readable objects until :meth:`stop`."""
        self._active = True
        timeout = self.TIMEOUT if self.TIMEOUT is not None else self.POLL_INTERVAL
        while self._active:
            with self._lock:
                readers = dict(self._readers)
            if not readers:
                threading.Event().wait(timeout)
                continue
            try:
                readable, _, _ = select.select(list(readers), [], [], timeout)
            except (OSError, ValueError):
                # An object was closed under us: drop the dead ones and go on.
                for fileobj in readers:
                    try:
                        if fileobj.fileno() < 0:
                            self.unregister_read(fileobj)
                    except Exception:
                        self.unregister_read(fileobj)
                continue
            for fileobj in readable:
                callback = readers.get(fileobj)
                if callback is None:
                    self._drain(fileobj)
                else:
                    callback(fileobj)


_reactor = SelectReactor()
_thread: Optional[threading.Thread] = None


def start_reactor() -> threading.Thread:
    """Run the module's reactor in a daemon thread (once; ``ValueError`` if already
    started) and return the thread."""
    global _thread
    if _thread is not None:
        raise ValueError("already started")
    _thread = threading.Thread(target=_reactor.run, name="rpyc reactor thread", daemon=True)
    _thread.start()
    return _thread
