"""RPyC servers (upstream's ``rpyc.utils.server``): accept connections and serve a service.

Each accepted connection gets its own ``Connection`` whose engine reads and writes the
socket natively; the classes here decide which thread (or process) drives it.
"""

import errno
import logging
import os
import select
import signal
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, Optional, Set

from rpyc import _core
from rpyc.core import green
from rpyc.core.channel import Channel
from rpyc.core.stream import SocketStream
from rpyc.lib import safe_import, spawn, spawn_waitready  # noqa: F401 (spawn_waitready: upstream's name)
from rpyc.lib.compat import get_exc_errno, poll  # noqa: F401 (upstream's names)
from rpyc.lib.reusable_threads import ReusableThreads
from rpyc.utils import _workerctl
from rpyc.utils.authenticators import AuthenticationError
from rpyc.utils.metrics import ServerStats
from rpyc.utils.registry import UDPRegistryClient

__all__ = ["Server", "OneShotServer", "ThreadedServer", "ThreadPoolServer", "ForkingServer", "GeventServer"]

def __getattr__(name: str) -> Any:
    # Upstream's module attribute ``gevent`` (the module, or a MissingModule), imported only
    # when asked for: importing rpyc must not import gevent.
    if name == "gevent":
        return safe_import("gevent")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# The loopback default is announced once per process (the first server started without a
# hostname), through the "rpyc" logger: with no logging configured, Python's last-resort
# handler still prints warnings to stderr.
_loopback_default_lock = threading.Lock()
_loopback_default_announced = False


def announce_loopback_default(kind: str, host: str, port: Any) -> None:
    """Say (once per process) that the server ``kind`` listens on loopback only because it
    was given no hostname (rpyc.aio's servers too)."""
    global _loopback_default_announced
    with _loopback_default_lock:
        if _loopback_default_announced:
            return
        _loopback_default_announced = True
    any_host = "::" if ":" in str(host) else "0.0.0.0"
    logging.getLogger("rpyc").warning(
        "%s listens on %s port %s only (the loopback interface: no hostname was given), so other "
        "machines cannot connect; pass hostname=%r to accept them (upstream rpyc's default)",
        kind, host, port, any_host,
    )


class Server:
    """Base server: binds (TCP on 127.0.0.1 by default, or a unix socket), accepts, optionally
    authenticates, and hands each connection to :meth:`_accept_method`.

    Safe default: with ``hostname=None`` the server listens on the loopback interface only
    (``127.0.0.1``, or ``::1`` with ``ipv6=True``); pass ``hostname="0.0.0.0"`` or ``"::"``
    to accept connections from other machines.
    """

    #: a bound socket that other processes share (set on a prefork worker's class by
    #: rpyc.utils.prefork): served instead of binding one, accepted from in Python (the
    #: native acceptor's stop shuts the socket down), and closed without shutdown(), which
    #: would end every worker's accept, not only this one's
    _shared_listener: Optional[socket.socket] = None

    def __init__(self, service: Any, hostname: Optional[str] = None, ipv6: bool = False,
                 port: int = 0, backlog: int = socket.SOMAXCONN, reuse_addr: bool = True,
                 authenticator: Any = None, registrar: Any = None, auto_register: Optional[bool] = None,
                 protocol_config: Optional[Dict[str, Any]] = None, logger: Any = None,
                 listener_timeout: Optional[float] = 0.5, socket_path: Optional[str] = None) -> None:
        self.active = False
        self._closed = False
        self.service = service
        self.authenticator = authenticator
        self.backlog = backlog
        self.auto_register = bool(registrar) if auto_register is None else auto_register
        self.protocol_config = {} if protocol_config is None else protocol_config
        self.clients: Set[socket.socket] = set()
        self._listener_timeout = listener_timeout
        self._acceptor: Any = None
        self._loopback_by_default = False
        #: the unix socket's path (None for TCP servers)
        self.socket_path = socket_path
        # Graceful drain (close(drain=...)): the connection served on each socket (by file
        # descriptor: an authenticator may wrap the accepted socket), so that close can tell
        # an idle connection from one serving a call.
        self._conns: Dict[int, Any] = {}
        self._conns_lock = threading.Lock()
        self._stats = ServerStats()  # (updated under _conns_lock: see stats())
        self._draining = False
        self._close_lock = threading.Lock()
        self._close_done = threading.Event()
        self._closing_thread: Optional[threading.Thread] = None
        self._register_thread: Optional[threading.Thread] = None

        if self._shared_listener is not None:
            # a prefork worker serves its supervisor's bound socket (rpyc.utils.prefork)
            self.listener = self._shared_listener
            # (accepted from in Python: only a timeout lets the accept loop notice close())
            self.listener.settimeout(listener_timeout)
            sockname = self.listener.getsockname()
            if self.listener.family == getattr(socket, "AF_UNIX", None):
                self.host, self.port, self.socket_path = "", 0, sockname
            else:
                self.host, self.port = sockname[0], sockname[1]
        elif socket_path is not None:
            if hostname is not None or port != 0 or ipv6:
                raise ValueError("socket_path is mutually exclusive with: hostname, port, ipv6")
            self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.listener.bind(socket_path)
            # (no port: upstream put the path in `port`, which made it a str; see socket_path)
            self.host, self.port = "", 0
        else:
            family = socket.AF_INET6 if ipv6 else socket.AF_INET
            if hostname is None:
                hostname = "::1" if ipv6 else "127.0.0.1"
                self._loopback_by_default = True
            elif hostname == "localhost" and not ipv6:
                hostname = "127.0.0.1"
            addrinfo = socket.getaddrinfo(hostname, port, family, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)
            family, socktype, proto, _, sockaddr = addrinfo[0]
            self.listener = socket.socket(family, socktype, proto)
            if reuse_addr and sys.platform != "win32":
                self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                self.listener.bind(sockaddr)
            except OSError as exc:
                self.listener.close()
                if exc.errno == errno.EADDRINUSE:
                    raise OSError(exc.errno, f"cannot listen on {hostname}:{port}: address already in use") from None
                raise
            self.listener.settimeout(listener_timeout)
            sockname = self.listener.getsockname()
            self.host, self.port = sockname[0], sockname[1]

        if logger is None:
            logger = logging.getLogger(f"{self.service.get_service_name()}/{socket_path or self.port}")
        self.logger = logger
        if "logger" not in self.protocol_config:
            self.protocol_config["logger"] = self.logger
        if registrar is None and self.auto_register:
            registrar = UDPRegistryClient(logger=self.logger)
        self.registrar = registrar
        if self.host not in ("127.0.0.1", "::1", "") and self._is_classic():
            self.logger.warning(
                "the classic (full remote Python) service is reachable on %s:%s; anyone who can "
                "connect can run code here. Bind 127.0.0.1 unless that is intended.",
                self.host, self.port,
            )

    def _is_classic(self) -> bool:
        from rpyc.core.service import SlaveService

        svc = self.service
        cls = svc if isinstance(svc, type) else type(svc)
        return issubclass(cls, SlaveService)

    def close(self, drain: Optional[float] = None) -> None:
        """Stop accepting, unregister, close the listener and every client socket.

        ``drain`` (seconds) closes gracefully instead (docs/scaling.md#graceful-drain):
        after the listener is closed and the server unregistered, each connection is closed
        once it serves no call (its peer sees a clean end of stream), and calls in flight
        may finish until the deadline; then whatever remains is closed as without
        ``drain``. A call that arrives while its connection is being closed fails on the
        client with ``EOFError``. A second ``close`` waits for the first to finish.
        """
        with self._close_lock:
            first = not self._closed
            self._closed = True
            if first:
                self._closing_thread = threading.current_thread()
        if not first:
            if self._closing_thread is not threading.current_thread():
                self._close_done.wait()
            return
        try:
            self._close(drain)
        finally:
            self._close_done.set()

    def _close(self, drain: Optional[float]) -> None:
        deadline = time.monotonic() + drain if drain else None
        self._draining = deadline is not None
        self.active = False
        # (a drain stops the native acceptor only after taking over the backlog: stopping
        # shuts the listening socket, which resets the connections waiting in it)
        if self._acceptor is not None and deadline is None:
            self._acceptor.stop()
        if deadline is not None:
            # A registration under way must not re-announce the server after it left.
            thread = self._register_thread
            if thread is not None and thread is not threading.current_thread():
                thread.join(max(0.0, min(deadline - time.monotonic(),
                                         float(getattr(self.registrar, "timeout", 2) or 2) + 1)))
        if self.auto_register and self.registrar is not None:
            try:
                self.registrar.unregister(self.port)
            except Exception:
                self.logger.exception("error unregistering services")
        if deadline is not None:
            if self._drain_backlog:
                self._accept_backlog()
            if self._acceptor is not None:
                self._acceptor.stop()
        if self._shared_listener is None:
            try:
                self.listener.shutdown(socket.SHUT_RDWR)
            except (EnvironmentError, socket.error):
                pass
        self.listener.close()
        self.logger.info("listener closed")
        if deadline is not None:
            try:
                self._drain(deadline)
            finally:
                self._draining = False
        for c in set(self.clients):
            try:
                c.shutdown(socket.SHUT_RDWR)
            except Exception:
                pass
            c.close()
        self.clients.clear()

    #: whether a drain serves the connections waiting in the listen backlog (which closing
    #: the listener would reset) before it closes them cleanly
    _drain_backlog = True

    def _accept_backlog(self) -> None:
        """Hand over the connections the kernel completed but the server has not accepted
        yet: closing the listener would reset them; drained, they end with a clean FIN."""
        try:
            self.listener.setblocking(False)
        except OSError:
            return
        for _ in range(max(int(self.backlog), 1)):
            try:
                sock, _ = self.listener.accept()
            except OSError:  # (BlockingIOError: the backlog is empty)
                return
            sock.setblocking(True)
            self.clients.add(sock)
            try:
                self._accept_method(sock)
            except Exception:
                self.logger.exception("failed to hand over a connection of the backlog")
                self.clients.discard(sock)
                sock.close()

    def _drain(self, deadline: float) -> None:
        """Close each connection once it serves no call, until none is left or ``deadline``
        (``time.monotonic()``) passes."""
        started = time.monotonic()
        ended: Set[int] = set()
        while True:
            with self._conns_lock:
                conns = dict(self._conns)
            # Accepted sockets whose connection is not set up yet (authenticating) are
            # waited for too: the client may already have sent its first call.
            pending = set(conns) | {fd for fd in (_fileno(c) for c in set(self.clients)) if fd >= 0}
            if not pending:
                self.logger.info("drained in %.3fs", time.monotonic() - started)
                return
            for fd, conn in conns.items():
                if fd in ended or getattr(conn, "_engine_serving", False):
                    continue
                ended.add(fd)
                _end_reading(fd)
            if time.monotonic() >= deadline:
                self.logger.warning("drain deadline passed with %d connection(s) still open: closing them",
                                    len(pending))
                return
            time.sleep(0.02)

    def _track(self, sock: socket.socket, conn: Any) -> int:
        fd = sock.fileno()
        with self._conns_lock:
            self._conns[fd] = conn
            self._stats.opened()
        return fd

    def _untrack(self, fd: int) -> None:
        with self._conns_lock:
            conn = self._conns.pop(fd, None)
            if conn is not None:
                self._stats.closed(conn)

    def stats(self) -> Dict[str, Any]:
        """The server's statistics, a plain dict (docs/metrics.md): the counters of its live
        connections plus those of the closed ones, the live ones' gauges, latency histograms
        per handler, ``connections_open`` and ``connections_total``. A ForkingServer serves
        each connection in a child process: its parent counts none of them."""
        with self._conns_lock:  # (a connection moving from live to closed counts once)
            return self._stats.snapshot(list(self._conns.values()))

    def handle_sigterm(self, drain: float = 30.0) -> Any:
        """Make SIGTERM (what ``kill``, systemd and Kubernetes send before a deploy) close
        this server with ``close(drain=drain)``. Call from the main thread (Python runs
        signal handlers there); returns the handler it replaced."""
        if threading.current_thread() is not threading.main_thread():
            raise ValueError("handle_sigterm must be called from the main thread (Python delivers signals there)")

        def on_sigterm(signum: int, frame: Any) -> None:
            self.logger.info("SIGTERM: draining for up to %ss", drain)
            self.close(drain=drain)

        return signal.signal(signal.SIGTERM, on_sigterm)

    def fileno(self) -> int:
        return self.listener.fileno()

    def accept(self) -> None:
        """Accept one connection (waiting in slices of ``listener_timeout`` so that
        :meth:`close` is noticed) and pass it to :meth:`_accept_method`."""
        while self.active:
            if self._acceptor is not None:
                fd = self._acceptor.accept(self._poll_interval())
                if fd is not None:
                    self._on_accepted(socket.socket(fileno=fd))
                    return
                continue
            try:
                sock, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError as exc:
                if exc.errno in (errno.EINTR, errno.EAGAIN):
                    continue
                if not self.active:
                    return
                raise EOFError(exc) from exc
            self._on_accepted(sock)
            return

    def _poll_interval(self) -> float:
        return self._listener_timeout if self._listener_timeout else 0.5

    def _on_accepted(self, sock: socket.socket) -> None:
        if not self.active and not self._draining:  # (a draining server ends it cleanly)
            sock.close()
            return
        sock.setblocking(True)
        self.logger.info("accepted %s with fd %s", _peername(sock), sock.fileno())
        self.clients.add(sock)
        self._accept_method(sock)

    def _accept_method(self, sock: socket.socket) -> None:
        raise NotImplementedError()

    def _authenticate_and_serve_client(self, sock: socket.socket) -> None:
        try:
            if self.authenticator:
                addrinfo = sock.getpeername()
                try:
                    sock2, credentials = self.authenticator(sock)
                except AuthenticationError as exc:
                    self.logger.info("%s failed to authenticate, rejecting connection: %s", addrinfo, exc)
                    return
                except Exception:
                    # e.g. a timeout or reset inside a hand-written authenticator: still a
                    # rejection (the socket is closed below), not a crash of this thread
                    self.logger.exception("%s: the authenticator failed, rejecting connection", addrinfo)
                    return
                self.logger.info("%s authenticated successfully", addrinfo)
            else:
                sock2, credentials = sock, None
            try:
                self._serve_client(sock2, credentials)
            except OSError as exc:
                if sock.fileno() != -1:
                    self.logger.exception("client connection terminated abruptly")
                    raise
                # close() closed this socket while its thread was starting: the end asked for
                self.logger.debug("a client socket closed by the server's close(): %s", exc)
            except Exception:
                self.logger.exception("client connection terminated abruptly")
                raise
        finally:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except Exception:
                pass
            try:
                sock.close()
            except Exception:
                pass
            self.clients.discard(sock)

    def _connection_config(self, sock: socket.socket, credentials: Any) -> Dict[str, Any]:
        return dict(
            self.protocol_config,
            credentials=credentials,
            endpoints=(sock.getsockname(), _peername(sock)),
            logger=self.logger,
        )

    def _serve_client(self, sock: socket.socket, credentials: Any) -> None:
        addrinfo = _peername(sock)
        if credentials:
            self.logger.info("welcome %s (%r)", addrinfo, credentials)
        else:
            self.logger.info("welcome %s", addrinfo)
        fd = None
        try:
            config = self._connection_config(sock, credentials)
            conn = self.service._connect(Channel(SocketStream(sock)), config)
            fd = self._track(sock, conn)
            self._handle_connection(conn)
        finally:
            if fd is not None:
                self._untrack(fd)
            self.logger.info("goodbye %s", addrinfo)

    def _handle_connection(self, conn: Any) -> None:
        conn.serve_all()

    def _bg_register(self) -> None:
        from rpyc.utils.registry import REREGISTER_INTERVAL

        # (a registrar may renew more often, e.g. an etcd lease every ttl/3)
        interval = getattr(self.registrar, "REREGISTER_INTERVAL", REREGISTER_INTERVAL)
        aliases = self.service.get_service_aliases()
        try:
            while self.active:
                t0 = time.time()
                ok = self.registrar.register(aliases, self.port, interface=self.host)
                delay = interval if ok else 1
                while self.active and time.time() - t0 < delay:
                    time.sleep(0.1)
        finally:
            if not self._closed:
                self.logger.info("background auto-register thread finished")

    def _listen(self) -> None:
        if self.active:
            return
        self.listener.listen(self.backlog)
        if green.is_green_socket(self.listener) or self._shared_listener is not None:
            # A gevent listener (monkey-patched process, GeventServer) accepts through gevent:
            # the native accept would block the thread every greenlet runs on. A shared
            # listener too (see _shared_listener).
            self._acceptor = None
        else:
            try:
                self._acceptor = _core.Acceptor(self.listener.fileno())
            except NotImplementedError:  # no native sockets on this platform
                self._acceptor = None
        if self.socket_path is None:
            self.port = self.listener.getsockname()[1]
        self.logger.info("server started on [%s]:%s", self.host, self.socket_path or self.port)
        if self._loopback_by_default:
            announce_loopback_default(type(self).__name__, self.host, self.port)
        self.active = True

    def _register(self) -> None:
        if self.auto_register:
            self._register_thread = spawn(self._bg_register)

    def start(self) -> None:
        """Serve until :meth:`close` (or Ctrl-C)."""
        self._listen()
        self._register()
        try:
            # The loop stays in Python (each wait is native, the GIL released): a server
            # that serves in this thread (OneShotServer) must not run below native frames,
            # which a daemon thread ended by interpreter shutdown cannot unwind through.
            while self.active:
                try:
                    self.accept()
                except EOFError:
                    raise  # the listener failed: the server is done
                except Exception:
                    # e.g. no thread can be started for one more client: the server goes on
                    self.logger.exception("failed to hand over an accepted connection")
        except EOFError:
            pass
        except KeyboardInterrupt:
            print("")
            self.logger.warning("keyboard interrupt!")
        finally:
            self.logger.info("server has terminated")
            self.close()

    def _start_in_thread(self) -> threading.Thread:
        """Listen, then run :meth:`start` in a daemon thread (for tests)."""
        self._listen()
        return spawn(self.start)


def _fileno(sock: Any) -> int:
    try:
        return int(sock.fileno())
    except (OSError, ValueError):
        return -1


def _end_reading(fd: int) -> None:
    """End the read side of the socket ``fd``: its connection's reader wakes with
    end-of-stream, the engine then shuts the socket (the peer sees a clean FIN) and the
    serving thread closes the connection; a call that began meanwhile can still answer on
    the write side. Done on a duplicate of the descriptor so that no wrapper (TLS) of the
    served socket is touched."""
    try:
        with socket.socket(fileno=os.dup(fd)) as dup:
            dup.shutdown(socket.SHUT_RD)
    except OSError:
        pass


def _peername(sock: Any) -> Any:
    try:
        return sock.getpeername()
    except OSError:
        return None


class OneShotServer(Server):
    """Serves a single connection in the accepting thread, then closes itself."""

    _drain_backlog = False  # (it serves one connection only)

    def _accept_method(self, sock: socket.socket) -> None:
        try:
            self._authenticate_and_serve_client(sock)
        finally:
            self.close()


class ThreadedServer(Server):
    """One thread per connection at a time.

    A thread whose connection has closed waits up to :attr:`thread_idle_timeout` seconds to
    serve the next accepted connection instead of exiting (at most :attr:`max_idle_threads`
    wait): a new connection then skips starting a thread. Per-thread state
    (``threading.local``) set while serving a connection can thus be seen by a later one;
    set ``max_idle_threads = 0`` (on the class or the instance, before :meth:`start`) for a
    fresh thread per connection.
    """

    #: most threads kept waiting for a connection (0: each thread exits with its connection)
    max_idle_threads = 16
    #: seconds a thread waits for another connection before exiting
    thread_idle_timeout = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._threads: Optional[ReusableThreads] = None

    def _accept_method(self, sock: socket.socket) -> None:
        threads = self._threads
        if threads is None:
            threads = self._threads = ReusableThreads(self.max_idle_threads, self.thread_idle_timeout)
        threads.run(self._authenticate_and_serve_client, sock)

    def close(self, drain: Optional[float] = None) -> None:
        super().close(drain)
        if self._threads is not None:
            self._threads.stop()


class ThreadPoolServer(Server):
    """A fixed pool of ``nbThreads`` workers serves every connection: a poll thread watches
    the client sockets and hands each readable connection to the pool for its pending
    frames, so the number of connections is not bounded by the number of threads."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.nbthreads = kwargs.pop("nbThreads", 20)
        self.request_batch_size = kwargs.pop("requestBatchSize", 10)
        super().__init__(*args, **kwargs)
        self._pool = ThreadPoolExecutor(self.nbthreads, thread_name_prefix="RpycPool")
        self._poll_lock = threading.Lock()
        self._fd_to_conn: Dict[int, Any] = {}
        self._wakeup_r, self._wakeup_w = os.pipe()
        self._poller_thread: Optional[threading.Thread] = None

    def _listen(self) -> None:
        super()._listen()
        if self._poller_thread is None:
            self._poller_thread = spawn(self._poll_loop)

    def close(self, drain: Optional[float] = None) -> None:
        if self._closed:
            super().close(drain)  # (waits for a close under way)
            return
        super().close(drain)
        self._wake()
        with self._poll_lock:
            conns = list(self._fd_to_conn.values())
            self._fd_to_conn.clear()
        for conn in conns:
            try:
                conn.close()
            except Exception:
                pass
        self._pool.shutdown(wait=False)

    def _wake(self) -> None:
        try:
            os.write(self._wakeup_w, b"x")
        except OSError:
            pass

    def _poll_loop(self) -> None:
        # (goes on while draining: a connection's end of stream is noticed here)
        while self.active or self._draining:
            with self._poll_lock:
                fds = list(self._fd_to_conn)
            try:
                ready, _, _ = select.select(fds + [self._wakeup_r], [], [], 0.5)
            except (OSError, ValueError):
                ready = []
                self._drop_closed()
            for fd in ready:
                if fd == self._wakeup_r:
                    os.read(self._wakeup_r, 4096)
                    continue
                with self._poll_lock:
                    conn = self._fd_to_conn.pop(fd, None)
                if conn is not None:
                    self._pool.submit(self._serve_ready, fd, conn)

    def _drop_closed(self) -> None:
        with self._poll_lock:
            for fd, conn in list(self._fd_to_conn.items()):
                if conn.closed:
                    del self._fd_to_conn[fd]

    def _serve_ready(self, fd: int, conn: Any) -> None:
        try:
            for _ in range(self.request_batch_size):
                if not conn.poll(0):
                    break
        except EOFError:
            pass
        except Exception:
            self.logger.exception("failed to serve client, closing it")
        if conn.closed or getattr(conn, "_engine_closed", False):
            self._forget(conn)
            return
        with self._poll_lock:
            self._fd_to_conn[fd] = conn
        self._wake()

    def _forget(self, conn: Any) -> None:
        # (untracked before its socket closes: a new connection may get the same fd)
        self._untrack(getattr(conn, "_rpyc_pool_fd", -1))
        try:
            conn.close()
        except Exception:
            pass
        sock = getattr(conn, "_rpyc_pool_sock", None)
        if sock is not None:
            self.clients.discard(sock)
            try:
                sock.close()
            except Exception:
                pass

    def _accept_method(self, sock: socket.socket) -> None:
        self._pool.submit(self._setup_connection, sock)

    def _setup_connection(self, sock: socket.socket) -> None:
        try:
            if self.authenticator:
                try:
                    sock2, credentials = self.authenticator(sock)
                except Exception as exc:
                    if isinstance(exc, AuthenticationError):
                        self.logger.info("%s failed to authenticate, rejecting connection: %s",
                                         _peername(sock), exc)
                    else:
                        self.logger.exception("%s: the authenticator failed, rejecting connection",
                                              _peername(sock))
                    self.clients.discard(sock)
                    sock.close()
                    return
            else:
                sock2, credentials = sock, None
            config = self._connection_config(sock2, credentials)
            config["connid"] = str(_peername(sock2))
            conn = self.service._connect(Channel(SocketStream(sock2)), config)
            conn._rpyc_pool_sock = sock
            conn._rpyc_pool_fd = self._track(sock, conn)
        except Exception:
            self.logger.exception("failed to set up client connection")
            self.clients.discard(sock)
            sock.close()
            return
        with self._poll_lock:
            self._fd_to_conn[sock2.fileno()] = conn
        self._wake()


class ForkingServer(Server):
    """One child process per connection (POSIX); children are reaped on SIGCHLD.

    ``close(drain=seconds)`` (and SIGTERM after :meth:`handle_sigterm`) drains the children
    too: each finishes its call in flight, up to the deadline, then closes its connection
    (docs/scaling.md#graceful-drain). ``close()`` without ``drain`` leaves them serving
    their connections to the end, as upstream does.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if not hasattr(os, "fork"):
            raise OSError("ForkingServer needs os.fork(), which this platform lacks")
        super().__init__(*args, **kwargs)
        self._children: Dict[int, _workerctl.Child] = {}  # by pid, until reaped
        self._sigterm_drain: Optional[float] = None
        self._prevhandler = signal.signal(signal.SIGCHLD, self._on_sigchld)

    def close(self, drain: Optional[float] = None) -> None:
        first = not self._closed
        super().close(drain)
        if first and drain is not None:
            children = list(self._children.values())
            _workerctl.stop(children, drain)
            for child in children:
                self._children.pop(child.pid, None)
        signal.signal(signal.SIGCHLD, self._prevhandler)

    def handle_sigterm(self, drain: float = 30.0) -> Any:
        # (children forked from now on drain for as long when SIGTERM reaches them directly)
        self._sigterm_drain = float(drain)
        return super().handle_sigterm(drain)

    @classmethod
    def _handle_sigchld(cls, signum: int, unused: Any) -> None:
        try:
            while True:
                pid, _ = os.waitpid(-1, os.WNOHANG)
                if pid <= 0:
                    break
        except OSError:
            pass

    def _on_sigchld(self, signum: int, unused: Any) -> None:
        self._handle_sigchld(signum, unused)
        for pid, child in list(self._children.items()):
            try:
                os.kill(pid, 0)  # (a reaped child no longer exists)
            except ProcessLookupError:
                self._children.pop(pid, None)
                child.forget()

    def _accept_method(self, sock: socket.socket) -> None:
        pid, control_fd = _workerctl.fork(self._children.values())
        if pid == 0:
            code = 0
            try:
                self.logger.debug("child process created")
                signal.signal(signal.SIGCHLD, self._prevhandler)
                self.listener.close()
                self.clients.clear()
                # (a child outlives its parent, serving its connection to the end, as upstream)
                _workerctl.watch(control_fd, self._child_close, self._sigterm_drain, None)
                self._authenticate_and_serve_client(sock)
            except BaseException:
                self.logger.exception("child process terminated abnormally")
                code = 1
            finally:
                self.logger.debug("child process terminated")
                os._exit(code)
        else:
            self._children[pid] = _workerctl.Child(pid, control_fd)
            sock.close()
            self.clients.discard(sock)

    def _child_close(self, drain: Optional[float]) -> None:
        """In a child (its drain thread): end its connection once it serves no call, or at
        the deadline; the serving main thread then returns and the child exits."""
        if drain:
            self._drain(time.monotonic() + drain)
        with self._conns_lock:
            fds = list(self._conns)
        for fd in fds:
            try:
                with socket.socket(fileno=os.dup(fd)) as dup:
                    dup.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class GeventServer(Server):
    """One greenlet per connection (docs/gevent.md). Needs ``gevent``; run it in a process
    patched with ``gevent.monkey.patch_all()`` so that handlers that block (``time.sleep``,
    sockets) let the other greenlets run. The listening socket, and so every accepted one,
    is a gevent socket even without patching: connections are read greenlet by greenlet."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        try:
            import gevent.socket
        except ImportError as exc:
            raise ImportError(f"GeventServer needs gevent ({exc}): pip install gevent") from None
        super().__init__(*args, **kwargs)
        if not green.is_green_socket(self.listener):
            plain = self.listener
            self.listener = gevent.socket.socket(plain.family, plain.type, plain.proto, fileno=plain.detach())
            self.listener.settimeout(self._listener_timeout)

    def _serve_client(self, sock: Any, credentials: Any) -> None:
        if not green.is_green_socket(sock) and not getattr(self, "_warned_native", False):
            self._warned_native = True
            self.logger.warning(
                "%s connection from %s is not a gevent socket (an authenticator replaced it): "
                "it is read natively, and while it waits no other greenlet runs; see "
                "docs/gevent.md", type(sock).__name__, _peername(sock))
        super()._serve_client(sock, credentials)

    def _register(self) -> None:
        if self.auto_register:
            import gevent

            gevent.spawn(self._bg_register)

    def _accept_method(self, sock: socket.socket) -> None:
        import gevent

        gevent.spawn(self._authenticate_and_serve_client, sock)
