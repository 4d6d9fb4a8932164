"""Type stubs for the native extension ``rpyc._core`` (crates/rpyc-py).

Checked against the built extension by ``python -m mypy.stubtest rpyc._core`` (see
tests/unit/test_typing.py). PyO3 classes have a native layout: ``Engine`` (subclassable) is
a disjoint base, the others are final.
"""

from typing import Any, Callable, Dict, List, Optional, Tuple, final

from typing_extensions import Self, disjoint_base

__all__ = [
    "Engine", "Acceptor", "Work", "TlsContext", "TlsSocket", "TlsPipe", "ProtocolError",
    "SendStalled", "TruncatedFrame", "class_attr", "has_static_attr", "dump", "load", "dumpable",
    "local_id_pack", "register_netref_base", "config_defaults", "hello_payload", "hello_ack",
    "inbound_memory",
]

class TruncatedFrame(EOFError):
    """The peer closed the connection in the middle of a frame."""

class ProtocolError(ValueError):
    """The peer sent bytes that violate the wire protocol or a configured limit."""

class SendStalled(EOFError):
    """The peer read nothing for ``send_stall_timeout`` seconds while a frame waited to be
    sent; the connection was closed."""

def class_attr(cls: type, name: str) -> Optional[Any]:
    """``getattr(cls, name, None)`` without raising (and formatting) an AttributeError."""
def has_static_attr(obj: Any, name: str) -> bool:
    """Whether ``inspect.getattr_static(obj, name)`` would find ``name`` (no code runs)."""
def dump(obj: Any) -> bytes: ...
def load(data: bytes) -> Any: ...
def dumpable(obj: Any) -> bool: ...
def local_id_pack(obj: Any) -> Tuple[str, int, int]: ...
def register_netref_base(cls: type) -> None: ...
def config_defaults() -> Dict[str, Any]:
    """Defaults of the rpyc-rs config keys, as the Rust core defines them."""
def inbound_memory() -> int:
    """Bytes of the process's inbound memory budget in use (``max_inbound_memory``)."""
def hello_payload() -> Tuple[str, int, Tuple[str, ...]]:
    """The data of the rpyc-rs hello ping."""
def hello_ack() -> Tuple[Any, ...]:
    """The start of an answer to a hello (the features this implementation offers)."""

@disjoint_base
class Engine:
    """Base class of ``rpyc.core.protocol.Connection``: the native connection engine."""

    def __new__(cls, *_args: Any, **_kwargs: Any) -> Self:
        """(Any arguments: they are the subclass's ``__init__``'s.)"""
    def _engine_start(
        self,
        stream: Any,
        config: Dict[str, Any],
        native: Optional[Any] = None,
        compress: bool = True,
    ) -> None:
        """``native``: what ``stream.native_transport()`` offers (a socket descriptor), or None."""
    def _sync_request(self, handler_id: int, args: Tuple[Any, ...]) -> Any: ...
    def _wait_reply(self, seq: int) -> Any: ...
    def _reply(self, work: "Work", value: Any) -> None: ...
    def _reply_exception(self, work: "Work", exc: BaseException) -> None: ...
    def _async_request(
        self,
        handler_id: int,
        args: Tuple[Any, ...],
        callback: Optional[Callable[[bool, Any], Any]] = None,
    ) -> int:
        """The request's sequence number."""
    def _release(self, proxy: Any, count: int) -> None:
        """``HANDLE_DEL`` for a dead proxy; over a native transport it travels with the next
        frame written, or within ``RELEASE_DELAY`` (2 ms) if the connection stays quiet."""
    def _serve(
        self,
        timeout: Optional[float] = ...,  # (1.0; PyO3 does not show this default at run time)
        wait_for_lock: bool = True,
        waiting: Optional[Callable[[], bool]] = None,
    ) -> "bool | Work": ...
    def _engine_close(self) -> None: ...
    def _release_reader(self) -> None: ...
    def _peer_announced(self, data: Any, ack: bool) -> Optional[Tuple[str, ...]]:
        """The peer's rpyc-rs hello (``ack``: its answer to ours) in ``data``: the features
        both sides use from now on, recorded in the core; None for anything else."""
    def _set_quick_ack(self, on: bool) -> None: ...
    def _engine_dispatch(self, data: bytes) -> Optional["Work"]:
        """Process one message payload as if received; the ``Work`` it asks of Python, if any."""
    def _feed(self, data: bytes) -> bool:
        """Bytes that arrived (event-loop drivers); False when the inbound memory budget has
        no room for them now (nothing was taken)."""
    def _drain(self, heavy: int = 0) -> Tuple[List["Work"], int]:
        """Process complete frames (``heavy`` heavy ones at most): the work they ask of
        Python, and why it stopped (0 more bytes needed, 1 a heavy frame is next, 2 the
        inbound memory budget is full)."""
    def _buffered(self) -> int: ...
    def _forget_request(self, seq: int) -> None:
        """Stop awaiting the answer to request ``seq``."""
    def _local_objects_len(self) -> int: ...
    def _engine_stats(self) -> Dict[str, Any]:
        """The connection's counters (docs/metrics.md); ``latency`` keyed by handler id."""
    def _local_object_keys(self) -> List[Tuple[int, int]]: ...
    def _local_object_by_key(self, class_id: int, instance_id: int) -> Any: ...
    def _decref_local(self, obj: Any, count: int) -> None: ...
    @property
    def _engine_serving(self) -> int:
        """Requests of the peer being served now (handed to Python, not yet answered)."""
    @property
    def _engine_closed(self) -> bool: ...
    @property
    def _engine_dead(self) -> bool:
        """Closed, or ended by the peer, an I/O error or a protocol error."""

@final
class Work:
    """A request to serve or an async answer to deliver, handed from the engine to Python."""

    is_request: bool
    handler: Optional[int]
    seq: Optional[int]
    args: Tuple[Any, ...]
    callback: Optional[Callable[[bool, Any], Any]]
    is_exc: bool
    obj: Any
    resume: Optional[int]
    def begin(self) -> Tuple[Any, ...]: ...
    def leave(self) -> None: ...

@final
class Acceptor:
    """The servers' native accept (GIL released) over a listening socket's descriptor."""

    def __new__(cls, fd: int) -> Self: ...
    def accept(self, timeout: float) -> Optional[int]:
        """An accepted connection's descriptor within ``timeout`` seconds, or None."""
    def stop(self) -> None: ...

@final
class TlsContext:
    """A rustls client or server configuration (built by ``rpyc.core.tls``)."""

    @staticmethod
    def client(options: Dict[str, Any]) -> "TlsContext": ...
    @staticmethod
    def server(options: Dict[str, Any]) -> "TlsContext": ...
    def wrap(
        self, fd: int, server_hostname: Optional[str] = None, timeout: float = 10.0
    ) -> "TlsSocket": ...
    def pipe(self, server_hostname: Optional[str] = None, peer: str = "peer") -> "TlsPipe":
        """A TLS session without a socket, for an event loop to move its bytes."""
    @property
    def verifies(self) -> bool: ...
    @property
    def side(self) -> str: ...

@final
class TlsSocket:
    """An established TLS connection with the socket methods RPyC and user code call."""

    def recv(self, bufsize: int) -> bytes: ...
    def send(self, data: bytes) -> int: ...
    def sendall(self, data: bytes) -> None: ...
    def pending(self) -> int: ...
    def fileno(self) -> int: ...
    def settimeout(self, value: Optional[float]) -> None: ...
    def gettimeout(self) -> Optional[float]: ...
    def setblocking(self, flag: bool) -> None: ...
    def getpeername(self) -> Any: ...
    def getsockname(self) -> Any: ...
    def shutdown(self, how: int) -> None: ...
    def close(self) -> None: ...
    def getpeercert(self, binary_form: bool = False) -> Any: ...
    def version(self) -> Optional[str]: ...
    def cipher(self) -> Optional[Tuple[str, str, int]]: ...
    @property
    def server_hostname(self) -> Optional[str]: ...
    @property
    def server_side(self) -> bool: ...

@final
class TlsPipe:
    """TLS without a socket (rustls): ciphertext in, plaintext out, and back."""

    def receive(self, data: bytes) -> bytes:
        """Ciphertext that arrived; the plaintext it completed."""
    def send(self, data: bytes) -> None:
        """Plaintext to send; ``outgoing()`` then returns its ciphertext."""
    def outgoing(self) -> bytes: ...
    @property
    def handshaking(self) -> bool: ...
    @property
    def peer_closed(self) -> bool: ...
    def close(self) -> None: ...
    def getpeercert(self, binary_form: bool = False) -> Any: ...
    def version(self) -> Optional[str]: ...
    def cipher(self) -> Optional[Tuple[str, str, int]]: ...
    @property
    def server_hostname(self) -> Optional[str]: ...
    @property
    def server_side(self) -> bool: ...
