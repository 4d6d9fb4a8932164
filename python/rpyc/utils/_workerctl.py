"""Telling forked server processes to drain (PreforkServer's workers, ForkingServer's
children), and reaping them.

Each child gets the read end of a pipe whose write end only its parent keeps. The parent
writes one line, ``drain <seconds>`` or ``close``; a thread of the child waits for it and
runs the drain. A pipe, not a signal alone: a signal cannot carry the deadline, and a
child's main thread may be inside a native wait or a long call where Python runs no signal
handler. The pipe also tells a child that its parent died (end of file): it then drains
instead of serving on as an orphan. A child may also get SIGTERM directly (systemd and
``kill`` of a process group signal every process); it is seen through
``signal.set_wakeup_fd``, which the interpreter writes to as soon as the signal arrives,
whatever the main thread is doing.
"""

import os
import select
import signal
import threading
import time
from typing import Any, Callable, Dict, Iterable, Optional, Tuple

#: seconds a child has after its drain deadline to exit before it is killed (SIGKILL): a
#: call that ignores its closed connection must not keep the parent waiting forever
EXIT_GRACE = 2.0


class Child:
    """The parent's handle of a forked child: its pid and the write end of its pipe."""

    def __init__(self, pid: int, control_fd: int) -> None:
        self.pid = pid
        self.control_fd = control_fd

    def tell(self, drain: Optional[float]) -> None:
        """Ask the child to close: draining for ``drain`` seconds, or at once (None)."""
        line = b"close\n" if drain is None else b"drain %r\n" % float(drain)
        try:
            os.write(self.control_fd, line)
        except OSError:  # (EPIPE: it has exited already)
            pass

    def forget(self) -> None:
        """Close our end of the pipe (the child is gone)."""
        fd, self.control_fd = self.control_fd, -1
        if fd >= 0:
            try:
                os.close(fd)
            except OSError:
                pass


def fork(siblings: Iterable[Child]) -> Tuple[int, int]:
    """``os.fork()`` with a control pipe: ``(pid, write end)`` in the parent, ``(0, read
    end)`` in the child. The child closes the write ends of ``siblings`` it inherited, so
    that each pipe's end of file still means that the parent is gone."""
    siblings = list(siblings)  # (before forking: the caller's set may change)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        # (the parent's SIGTERM handler closes the parent's server, not this child's: the
        # child installs its own in watch())
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.close(write_fd)
        for sibling in siblings:
            sibling.forget()
        return 0, read_fd
    os.close(read_fd)
    return pid, write_fd


def watch(control_fd: int, on_close: Callable[[Optional[float]], None],
          sigterm_drain: Optional[float], orphan_drain: Optional[float]) -> threading.Thread:
    """In a child (from its main thread): call ``on_close(seconds or None)`` once, in a
    daemon thread, when the parent asks; on SIGTERM, draining ``sigterm_drain`` seconds (if
    None, SIGTERM keeps its default: the child dies, as upstream's children do); when the
    parent dies, draining ``orphan_drain`` seconds (if None, the child serves on)."""
    wake_fd = -1
    if sigterm_drain is not None:
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        # (a Python handler must be installed for the wakeup fd to be written; the work is
        # done by the thread, whatever the main thread is doing)
        signal.signal(signal.SIGTERM, lambda signum, frame: None)
        signal.set_wakeup_fd(wake_w)
        wake_fd = wake_r

    def run() -> None:
        order = _wait_for_order(control_fd, wake_fd, sigterm_drain, orphan_drain)
        if order is not _NO_ORDER:
            on_close(order)

    thread = threading.Thread(target=run, name="rpyc-drain-watch", daemon=True)
    thread.start()
    return thread


#: what _wait_for_order returns when nothing is to be done (an orphan that serves on)
_NO_ORDER: Any = object()


def _wait_for_order(control_fd: int, wake_fd: int, sigterm_drain: Optional[float],
                    orphan_drain: Optional[float]) -> Optional[float]:
    # (poll, not select: a busy parent's descriptors may be numbered above FD_SETSIZE)
    poller = select.poll()
    poller.register(control_fd, select.POLLIN)
    if wake_fd >= 0:
        poller.register(wake_fd, select.POLLIN)
    watching = True
    buf = b""
    while watching or wake_fd >= 0:
        ready = [fd for fd, _ in poller.poll()]
        if wake_fd in ready:
            return sigterm_drain
        if control_fd not in ready:
            continue
        try:
            data = os.read(control_fd, 256)
        except InterruptedError:
            continue
        except OSError:
            data = b""
        if not data:  # the parent is gone
            if orphan_drain is not None:
                return orphan_drain
            poller.unregister(control_fd)
            os.close(control_fd)
            watching = False
            continue
        buf += data
        if b"\n" in buf:
            return _parse(buf.split(b"\n", 1)[0])
    return _NO_ORDER


def _parse(line: bytes) -> Optional[float]:
    word, _, arg = line.partition(b" ")
    if word == b"drain":
        try:
            return max(0.0, float(arg))
        except ValueError:
            pass
    return None


def stop(children: Iterable[Child], drain: Optional[float]) -> Dict[int, int]:
    """Tell every child to close (draining ``drain`` seconds), wait for them to exit (until
    the deadline and :data:`EXIT_GRACE` more, then SIGKILL), reap them, and return their
    wait statuses (-1: reaped by someone else, e.g. a SIGCHLD handler)."""
    children = list(children)
    for child in children:
        child.tell(drain)
    deadline = time.monotonic() + (drain or 0.0) + EXIT_GRACE
    statuses: Dict[int, int] = {}
    pending = {child.pid: child for child in children}
    killed = False
    while pending:
        for pid in list(pending):
            status = reap(pid, block=killed)
            if status is not None:
                statuses[pid] = status
                pending.pop(pid).forget()
        if not pending:
            break
        if killed:
            continue
        if time.monotonic() >= deadline:
            for pid in pending:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            killed = True
            continue
        time.sleep(0.02)
    return statuses


def reap(pid: int, block: bool) -> Optional[int]:
    """The wait status of ``pid`` once it has exited (-1 if another waiter reaped it), or
    None while it runs."""
    try:
        done, status = os.waitpid(pid, 0 if block else os.WNOHANG)
    except ChildProcessError:
        return -1
    except InterruptedError:
        return None
    return status if done == pid else None
