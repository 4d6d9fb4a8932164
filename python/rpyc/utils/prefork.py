"""``PreforkServer``: N worker processes serve one listening socket (docs/scaling.md#prefork).

The supervisor (the process that calls :meth:`PreforkServer.start`) binds the socket,
forks the workers, each of which runs an ordinary server (``ThreadedServer`` by default)
on the inherited socket, restarts a worker that dies, registers the service once, and
drains every worker on :meth:`PreforkServer.close` or SIGTERM. The supervisor serves no
connection and starts no thread: a fork copies only the forking thread, so a thread (the
engine's, or a registration thread) holding a lock at that moment would leave the lock
held forever in the child.
"""

import logging
import os
import socket
import sys
import threading
import time
from typing import Any, Dict, List, Optional, Type

from rpyc.utils import _workerctl
from rpyc.utils.server import Server, ThreadedServer, announce_loopback_default

__all__ = ["PreforkServer"]

#: a worker that exits sooner than this after it started counts as failing: the next
#: restart of its slot waits twice as long as the previous one (up to max_restart_delay)
STABLE_AFTER = 10.0
#: seconds an orphaned worker (its supervisor died) drains before it exits, unless
#: handle_sigterm set another drain
ORPHAN_DRAIN = 30.0
#: the first delay of a failing slot's restart
FIRST_RESTART_DELAY = 0.1


class PreforkServer:
    """Serve ``service`` from ``workers`` processes (default: one per CPU) that share one
    listening socket; each worker is a ``server_class`` (``ThreadedServer``,
    ``ThreadPoolServer``, ``GeventServer``...) built with ``server_kwargs``
    (``protocol_config``, ``authenticator``, ``listener_timeout``, ``nbThreads``...).

    ``hostname``, ``ipv6``, ``port`` (0: the kernel picks one, read it from :attr:`port`
    right after construction), ``backlog``, ``reuse_addr``, ``socket_path``, ``registrar``,
    ``auto_register`` and ``logger`` mean what they mean for :class:`Server`; the service is
    registered once, by the supervisor. A worker that dies is restarted (a worker that keeps
    dying within 10 s of its start waits 0.1 s, then 0.2 s... up to ``max_restart_delay``).
    POSIX only (it forks).
    """

    def __init__(self, service: Any, hostname: Optional[str] = None, ipv6: bool = False,
                 port: int = 0, backlog: int = socket.SOMAXCONN, reuse_addr: bool = True,
                 registrar: Any = None, auto_register: Optional[bool] = None, logger: Any = None,
                 socket_path: Optional[str] = None, workers: Optional[int] = None,
                 server_class: Type[Server] = ThreadedServer, max_restart_delay: float = 5.0,
                 **server_kwargs: Any) -> None:
        if not hasattr(os, "fork") or sys.platform == "win32":
            raise OSError("PreforkServer forks worker processes, which this platform cannot do; "
                          "run one ThreadedServer per process behind a balancer instead "
                          "(docs/scaling.md)")
        self.workers = (os.cpu_count() or 1) if workers is None else int(workers)
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, not {workers!r}")
        self.service = service
        self.server_class = server_class
        self.max_restart_delay = float(max_restart_delay)
        # Bound (not started) through the base class: the same addresses, defaults and
        # warnings as any server; its socket is the one every worker accepts on.
        self._binding = Server(service, hostname=hostname, ipv6=ipv6, port=port, backlog=backlog,
                               reuse_addr=reuse_addr, registrar=registrar,
                               auto_register=auto_register, logger=logger, socket_path=socket_path,
                               listener_timeout=server_kwargs.get("listener_timeout", 0.5))
        self.listener: socket.socket = self._binding.listener
        self.host, self.port = self._binding.host, self._binding.port
        self.socket_path = self._binding.socket_path
        self.logger = self._binding.logger
        self.registrar = self._binding.registrar
        self.auto_register = self._binding.auto_register
        self.backlog = backlog
        # Workers accept with a timeout (a blocking accept would not notice close()); the
        # socket's O_NONBLOCK flag is shared by every process, so all must agree.
        if server_kwargs.get("listener_timeout", 0.5) is None:
            server_kwargs["listener_timeout"] = 0.5
        server_kwargs["logger"] = self.logger
        self._server_kwargs = server_kwargs
        self.active = False
        self._closed = False
        self._lock = threading.Lock()
        self._close_done = threading.Event()
        self._children: Dict[int, _workerctl.Child] = {}  # by pid
        self._slots: Dict[int, int] = {}  # pid -> slot
        self._started_at: Dict[int, float] = {}  # slot -> when its worker started
        self._failures: Dict[int, int] = {}  # slot -> consecutive quick exits
        self._restart_at: Dict[int, float] = {}  # slot -> when to start it again
        self._sigterm_drain: Optional[float] = None
        self._sigterm_requested = False
        self._registered = False

    @property
    def worker_pids(self) -> List[int]:
        """The pids of the running workers."""
        with self._lock:
            return sorted(self._children)

    def handle_sigterm(self, drain: float = 30.0) -> Any:
        """Make SIGTERM close the server with ``close(drain=drain)``, and a worker that gets
        SIGTERM by itself (a signal to the whole process group) drain too. Call from the main
        thread, before :meth:`start`; returns the handler it replaced."""
        import signal

        if threading.current_thread() is not threading.main_thread():
            raise ValueError("handle_sigterm must be called from the main thread (Python delivers signals there)")
        self._sigterm_drain = float(drain)

        def on_sigterm(signum: int, frame: Any) -> None:
            self.logger.info("SIGTERM: draining the workers for up to %ss", drain)
            if self.active:
                # (closed by the supervising loop: the handler may have interrupted it
                # while it holds the lock that close takes)
                self._sigterm_requested = True
            else:
                self.close(drain=drain)

        return signal.signal(signal.SIGTERM, on_sigterm)

    def start(self) -> None:
        """Fork the workers and supervise them until :meth:`close` (or Ctrl-C)."""
        self._warn_if_threaded()
        self.listener.listen(self.backlog)
        self.logger.info("prefork server on [%s]:%s with %d workers of %s", self.host,
                         self.socket_path or self.port, self.workers, self.server_class.__name__)
        if self._binding._loopback_by_default:
            announce_loopback_default(type(self).__name__, self.host, self.port)
        self.active = True
        next_registration = 0.0
        try:
            with self._lock:
                for slot in range(self.workers):
                    self._spawn(slot)
            while self.active:
                if self._sigterm_requested:
                    self.close(drain=self._sigterm_drain)
                    break
                self._supervise()
                if self.auto_register and self.active and time.monotonic() >= next_registration:
                    next_registration = time.monotonic() + self._register()
                time.sleep(0.05)
        except KeyboardInterrupt:
            self.logger.warning("keyboard interrupt!")
        finally:
            self.close()

    def close(self, drain: Optional[float] = None) -> None:
        """Stop: unregister, then close every worker as ``Server.close(drain)`` closes a
        server (with ``drain``, each finishes its calls in flight for up to ``drain``
        seconds), and reap them; a worker still running 2 s after that is killed. A second
        ``close`` waits for the first."""
        with self._lock:
            first = not self._closed
            self._closed = True
            self.active = False
            children = list(self._children.values())
            self._children.clear()
        if not first:
            self._close_done.wait()
            return
        try:
            if self._registered and self.registrar is not None:
                try:
                    self.registrar.unregister(self.port)
                except Exception:
                    self.logger.exception("error unregistering services")
            # (our copy only: the workers still accept until each begins its drain)
            self.listener.close()
            statuses = _workerctl.stop(children, drain)
            self.logger.info("stopped %d worker(s)%s", len(statuses),
                             f" after draining up to {drain}s" if drain else "")
        finally:
            self._close_done.set()

    def _register(self) -> float:
        """Register once now; the seconds until the next registration."""
        from rpyc.utils.registry import REREGISTER_INTERVAL

        interval = float(getattr(self.registrar, "REREGISTER_INTERVAL", REREGISTER_INTERVAL))
        try:
            ok = self.registrar.register(self.service.get_service_aliases(), self.port, interface=self.host)
        except Exception:
            self.logger.exception("error registering services")
            ok = False
        self._registered = self._registered or bool(ok)
        return interval if ok else 1.0

    def _supervise(self) -> None:
        """Reap the workers that exited and start the slots whose restart is due."""
        with self._lock:
            if not self.active:
                return
            for pid in list(self._children):
                status = _workerctl.reap(pid, block=False)
                if status is not None:
                    self._on_exit(pid, status)
            now = time.monotonic()
            for slot, when in list(self._restart_at.items()):
                if now >= when:
                    del self._restart_at[slot]
                    self._spawn(slot)

    def _on_exit(self, pid: int, status: int) -> None:
        self._children.pop(pid).forget()
        slot = self._slots.pop(pid)
        lived = time.monotonic() - self._started_at.get(slot, 0.0)
        failures = self._failures.get(slot, 0) + 1 if lived < STABLE_AFTER else 0
        self._failures[slot] = failures
        delay = 0.0 if not failures else min(FIRST_RESTART_DELAY * 2 ** (failures - 1), self.max_restart_delay)
        self.logger.warning("worker %d (slot %d) exited (%s) after %.1fs; restarting it in %.1fs",
                            pid, slot, _describe(status), lived, delay)
        self._restart_at[slot] = time.monotonic() + delay

    def _spawn(self, slot: int) -> None:
        """Fork the worker of ``slot`` (with ``self._lock`` held)."""
        pid, control_fd = _workerctl.fork(self._children.values())
        if pid == 0:
            self._worker_main(control_fd)  # (never returns)
        self._children[pid] = _workerctl.Child(pid, control_fd)
        self._slots[pid] = slot
        self._started_at[slot] = time.monotonic()
        self.logger.info("worker %d started (slot %d)", pid, slot)

    def _worker_main(self, control_fd: int) -> None:
        """The worker process: serve the inherited socket until told to close, then exit."""
        import signal

        code = 0
        try:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            worker_class = type(self.server_class.__name__, (self.server_class,),
                                {"_shared_listener": self.listener})
            server = worker_class(self.service, auto_register=False, **self._server_kwargs)
            # (an orphan, its supervisor killed, stops too: nothing would restart or reap it)
            orphan_drain = ORPHAN_DRAIN if self._sigterm_drain is None else self._sigterm_drain
            _workerctl.watch(control_fd, lambda drain: server.close(drain=drain), self._sigterm_drain,
                             orphan_drain)
            server.start()
        except KeyboardInterrupt:
            pass
        except BaseException:
            self.logger.exception("prefork worker failed")
            code = 1
        finally:
            logging.shutdown()  # (flush the handlers: os._exit skips it)
            os._exit(code)

    def _warn_if_threaded(self) -> None:
        # A fork copies only the forking thread (see the module's docstring).
        tasks = "/proc/self/task"
        count = len(os.listdir(tasks)) if os.path.isdir(tasks) else threading.active_count()
        if count > 1:
            self.logger.warning(
                "PreforkServer.start() forks a process that runs %d threads; a thread holding a "
                "lock at the fork leaves it held in the workers. Start the prefork server before "
                "creating threads or RPyC connections in this process.", count)


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit code {os.WEXITSTATUS(status)}"
