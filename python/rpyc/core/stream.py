"""Byte streams under a channel: sockets, pipes (upstream's ``rpyc.core.stream`` surface).

A connection over a plain (non-TLS) socket hands the socket's descriptor to the native
engine, which reads and writes it with the GIL released; every other stream is driven
through the ``read``/``write``/``poll`` methods below.
"""

import errno
import ipaddress
import os
import select
import socket
import sys
from typing import Any, Dict, Optional, Tuple

from rpyc import _core
from rpyc.core import green
from rpyc.core.consts import STREAM_CHUNK
from rpyc.lib import Timeout, safe_import, socket_backoff_connect
from rpyc.lib.compat import BYTES_LITERAL, get_exc_errno, maxint, poll, select_error  # noqa: F401 (upstream's names)

# pywin32, for upstream's Windows pipe streams (MissingModule where it is not installed).
win32file = safe_import("win32file")
win32pipe = safe_import("win32pipe")
win32event = safe_import("win32event")

retry_errnos = (errno.EAGAIN, errno.EWOULDBLOCK)


class _ClosedFile:
    """Stands in for a closed socket or file: any use raises ``EOFError``."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise EOFError("stream has been closed")

    def close(self) -> None:
        pass

    def __bool__(self) -> bool:
        return False


ClosedFile = _ClosedFile()


class Stream:
    """Base class of streams: exactly-``count`` reads, whole writes, ``poll``."""

    __slots__ = ()

    def close(self) -> None:
        raise NotImplementedError()

    @property
    def closed(self) -> bool:
        raise NotImplementedError()

    def fileno(self) -> int:
        raise NotImplementedError()

    def poll(self, timeout: Optional[float]) -> bool:
        """True when data can be read within ``timeout`` seconds (``None`` waits forever)."""
        deadline = Timeout(timeout)
        while True:
            try:
                left = deadline.timeleft()
                rl, _, _ = select.select([self.fileno()], [], [], left)
                return bool(rl)
            except InterruptedError:
                if deadline.expired():
                    return False

    def read(self, count: int) -> bytes:
        raise NotImplementedError()

    def write(self, data: bytes) -> None:
        raise NotImplementedError()

    def __enter__(self) -> "Stream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class SocketStream(Stream):
    """A stream over a connected socket (TCP, unix, or TLS-wrapped)."""

    __slots__ = ("sock",)
    MAX_IO_CHUNK = STREAM_CHUNK

    def __init__(self, sock: Any) -> None:
        self.sock = sock

    @classmethod
    def _connect(cls, host: str, port: int, family: int = socket.AF_INET,
                 socktype: int = socket.SOCK_STREAM, proto: int = 0, timeout: float = 3,
                 nodelay: bool = False, keepalive: Any = False, attempts: int = 6) -> socket.socket:
        try:
            family, socktype, proto, _, sockaddr = socket.getaddrinfo(host, port, family, socktype, proto)[0]
        except socket.gaierror as exc:
            raise resolve_error(exc, host, port) from None
        try:
            s = socket_backoff_connect(family, socktype, proto, sockaddr, timeout, attempts)
        except socket.timeout:
            raise socket.timeout(f"timed out connecting to {_fmt_addr(sockaddr)}") from None
        except OSError as exc:
            raise connect_error(exc, host, sockaddr) from None
        try:
            s.settimeout(None)  # the engine blocks (GIL released) and enforces its own timeouts
            if nodelay and family in (socket.AF_INET, socket.AF_INET6):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if keepalive:
                _set_keepalive(s, keepalive)
            return s
        except BaseException:
            s.close()
            raise

    @classmethod
    def connect(cls, host: str, port: int, **kwargs: Any) -> "SocketStream":
        """Connect over TCP; keyword options as upstream (``ipv6``, ``timeout``, ``nodelay``,
        ``keepalive``, ``attempts``, ``family``...)."""
        if kwargs.pop("ipv6", False):
            kwargs["family"] = socket.AF_INET6
        # Small requests dominate RPyC traffic: Nagle's delay would cost milliseconds.
        kwargs.setdefault("nodelay", True)
        return cls(cls._connect(host, port, **kwargs))

    @classmethod
    def unix_connect(cls, path: str, timeout: float = 3) -> "SocketStream":
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.settimeout(timeout)
            s.connect(path)
            s.settimeout(None)
        except FileNotFoundError:
            s.close()
            raise FileNotFoundError(errno.ENOENT, f"no unix socket at {path!r} (is the server running?)") from None
        except ConnectionRefusedError:
            s.close()
            raise ConnectionRefusedError(errno.ECONNREFUSED, f"connection refused to unix socket {path!r}") from None
        except BaseException:
            s.close()
            raise
        return cls(s)

    @classmethod
    def ssl_connect(cls, host: str, port: int, ssl_kwargs: Dict[str, Any], **kwargs: Any) -> "SocketStream":
        """TLS client (rustls) with upstream's ``ssl_kwargs`` keys: ``keyfile``,
        ``certfile``, ``ca_certs``, ``cert_reqs``, ``ssl_version``, ``ciphers``,
        ``check_hostname`` (see :func:`rpyc.core.tls.client_context`)."""
        from rpyc.core import tls

        if kwargs.pop("ipv6", False):
            kwargs["family"] = socket.AF_INET6
        options = dict(ssl_kwargs)
        options.pop("server_side", None)
        handshake_timeout = options.pop("handshake_timeout", tls.HANDSHAKE_TIMEOUT)
        context = tls.client_context(**options)
        if not context.verifies:
            tls.warn_unverified(host, port)
        sock = cls._connect(host, port, **kwargs)
        if green.is_green_socket(sock):  # (TLS fed from the gevent socket: docs/gevent.md)
            return cls(green.tls_client(context, sock, host, handshake_timeout))
        return cls(tls.wrap_client(context, sock, host, handshake_timeout))

    @property
    def closed(self) -> bool:
        return self.sock is ClosedFile

    def poll(self, timeout: Optional[float]) -> bool:
        # A TLS socket may hold decrypted bytes that select() cannot see.
        pending = getattr(self.sock, "pending", None)
        if pending is not None and pending() > 0:
            return True
        return super().poll(timeout)

    def close(self) -> None:
        if not self.closed:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except Exception:
                pass
            self.sock.close()
        self.sock = ClosedFile

    def fileno(self) -> int:
        try:
            return self.sock.fileno()
        except OSError as exc:
            self.close()
            raise EOFError(exc) from exc

    def native_transport(self) -> Optional[Any]:
        """What the native engine may drive directly (a rustls TLS socket or a socket
        descriptor), or None (Python ``ssl`` sockets, closed streams)."""
        import ssl

        sock = self.sock
        if isinstance(sock, _core.TlsSocket):
            return sock
        if sock is ClosedFile or isinstance(sock, ssl.SSLSocket):
            return None
        if not isinstance(sock, socket.socket) or os.name != "posix":
            return None
        return sock.fileno()

    def read(self, count: int) -> bytes:
        chunks = []
        while count > 0:
            try:
                buf = self.sock.recv(min(self.MAX_IO_CHUNK, count))
            except socket.timeout:
                continue
            except OSError as exc:
                if exc.errno in retry_errnos:
                    continue
                self.close()
                raise EOFError(exc) from exc
            if not buf:
                self.close()
                raise EOFError("connection closed by peer")
            chunks.append(buf)
            count -= len(buf)
        return b"".join(chunks)

    def write(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError as exc:
            cause = self._tls_alert() or exc
            self.close()
            raise EOFError(cause) from cause

    def _tls_alert(self) -> Optional[BaseException]:
        """After a failed TLS write, the alert the peer sent first (e.g. "unknown ca") names
        the real cause; read it if it is there."""
        import ssl

        if not isinstance(self.sock, ssl.SSLSocket):
            return None
        try:
            self.sock.settimeout(1)
            self.sock.recv(1)
        except ssl.SSLError as alert:
            return alert if "alert" in str(alert) else None
        except OSError:
            return None
        return None


class TunneledSocketStream(SocketStream):
    """A socket stream whose tunnel (``tun``, e.g. an SSH process) is closed with it."""

    __slots__ = ("tun",)

    def __init__(self, sock: Any) -> None:
        super().__init__(sock)
        self.tun: Any = None

    def close(self) -> None:
        super().close()
        if self.tun is not None:
            self.tun.close()


class PipeStream(Stream):
    """A stream over two file objects (read end, write end)."""

    __slots__ = ("incoming", "outgoing")
    MAX_IO_CHUNK = STREAM_CHUNK

    def __init__(self, incoming: Any, outgoing: Any) -> None:
        outgoing.flush()
        self.incoming = incoming
        self.outgoing = outgoing

    @classmethod
    def from_std(cls) -> "PipeStream":
        return cls(sys.stdin, sys.stdout)

    @classmethod
    def create_pair(cls) -> Tuple["PipeStream", "PipeStream"]:
        r1, w1 = os.pipe()
        r2, w2 = os.pipe()
        side1 = cls(os.fdopen(r1, "rb"), os.fdopen(w2, "wb"))
        side2 = cls(os.fdopen(r2, "rb"), os.fdopen(w1, "wb"))
        return side1, side2

    @property
    def closed(self) -> bool:
        return self.incoming is ClosedFile

    def close(self) -> None:
        self.incoming.close()
        self.outgoing.close()
        self.incoming = ClosedFile
        self.outgoing = ClosedFile

    def fileno(self) -> int:
        return self.incoming.fileno()

    def native_transport(self) -> Optional[Any]:
        return None

    def read(self, count: int) -> bytes:
        chunks = []
        fd = self.incoming.fileno()
        try:
            while count > 0:
                buf = os.read(fd, min(self.MAX_IO_CHUNK, count))
                if not buf:
                    raise EOFError("connection closed by peer")
                chunks.append(buf)
                count -= len(buf)
        except OSError as exc:
            self.close()
            raise EOFError(exc) from exc
        except EOFError:
            self.close()
            raise
        return b"".join(chunks)

    def write(self, data: bytes) -> None:
        try:
            fd = self.outgoing.fileno()
            view = memoryview(data)
            while view:
                written = os.write(fd, view[: self.MAX_IO_CHUNK])
                view = view[written:]
        except OSError as exc:
            self.close()
            raise EOFError(exc) from exc


_WIN32_PIPES_MISSING = (
    "{name} (Windows pipes through pywin32) is not implemented by rpyc-rs, on any platform; "
    "use a socket (rpyc.connect, rpyc.unix_connect) or PipeStream over file objects"
)


class Win32PipeStream(Stream):
    """Upstream's stream over two Windows pipes. rpyc-rs does not implement Windows pipes: the
    class exists so that code importing it keeps working, and using it raises ``ImportError``
    (what upstream raises off Windows, where pywin32 cannot be imported)."""

    __slots__ = ()
    PIPE_BUFFER_SIZE = 130000
    MAX_IO_CHUNK = STREAM_CHUNK

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise ImportError(_WIN32_PIPES_MISSING.format(name=type(self).__name__))

    @classmethod
    def from_std(cls) -> "Win32PipeStream":
        raise ImportError(_WIN32_PIPES_MISSING.format(name=cls.__name__))

    @classmethod
    def create_pair(cls) -> Tuple["Win32PipeStream", "Win32PipeStream"]:
        raise ImportError(_WIN32_PIPES_MISSING.format(name=cls.__name__))


class NamedPipeStream(Win32PipeStream):
    """Upstream's stream over a Windows named pipe; not implemented by rpyc-rs (see
    :class:`Win32PipeStream`): its factories raise ``ImportError``."""

    __slots__ = ()
    NAMED_PIPE_PREFIX = r"\\.\pipe\rpyc_"
    PIPE_IO_TIMEOUT = 3
    CONNECT_TIMEOUT = 3

    @classmethod
    def create_server(cls, pipename: str, connect: bool = True) -> "NamedPipeStream":
        raise ImportError(_WIN32_PIPES_MISSING.format(name=cls.__name__))

    @classmethod
    def create_client(cls, pipename: str) -> "NamedPipeStream":
        raise ImportError(_WIN32_PIPES_MISSING.format(name=cls.__name__))


def resolve_error(exc: socket.gaierror, host: str, port: int) -> socket.gaierror:
    """``exc`` naming what was looked up (the same class: ``except socket.gaierror`` keeps
    working)."""
    return socket.gaierror(exc.errno, f"cannot resolve host {host!r} (connecting to port {port}): {exc.strerror}")


def connect_error(exc: OSError, host: str, sockaddr: Any) -> OSError:
    """A failed connect to ``host`` (``sockaddr``) as an error of the same class and errno
    that names the address (and, for a refusal, its likeliest cause)."""
    if isinstance(exc, ConnectionRefusedError):
        return ConnectionRefusedError(exc.errno, _refused_message(host, sockaddr))
    if exc.errno is None or exc.strerror is None:
        return exc
    # e.g. no route to host
    return type(exc)(exc.errno, f"{exc.strerror} (connecting to {_fmt_addr(sockaddr)})")


def _refused_message(host: str, sockaddr: Any) -> str:
    """Why a TCP connection to ``host`` (``sockaddr``) may have been refused. Off loopback, the
    likeliest cause is a server that took our default and listens on loopback only."""
    target = _fmt_addr(sockaddr)
    if str(sockaddr[0]) != str(host):
        target = f"{host} at {target}"
    message = f"connection refused to {target} (is the server running?"
    try:
        loopback = ipaddress.ip_address(str(sockaddr[0]).split("%")[0]).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        message += (" A server started without a hostname listens on 127.0.0.1 only: start it with"
                    " hostname=\"0.0.0.0\", or rpyc_classic with --host 0.0.0.0, to accept other"
                    " machines")
    return message + ")"


def _fmt_addr(sockaddr: Any) -> str:
    host, port = sockaddr[0], sockaddr[1]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


def _set_keepalive(s: socket.socket, keepalive: Any) -> None:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    if keepalive is True or not hasattr(socket, "TCP_KEEPIDLE"):
        return
    seconds = int(keepalive)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, seconds)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, seconds)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 5)
