"""RPyC (Remote Python Call) on a Rust core: transparent, symmetric remote objects.

Drop-in for upstream RPyC 6: the same module tree and names, wire-compatible with
``rpyc==6.0.2`` peers. The protocol engine lives in the native extension ``rpyc._core``.
"""

from rpyc.core import (  # noqa: F401
    AsyncResult,
    AsyncResultTimeout,
    BaseNetref,
    Channel,
    ClassicService,
    Connection,
    GenericException,
    MasterService,
    PipeStream,
    Service,
    SlaveService,
    SocketStream,
    TunneledSocketStream,
    VoidService,
)
from rpyc.utils.factory import (  # noqa: F401
    connect,
    connect_by_service,
    connect_channel,
    connect_pipes,
    connect_stdpipes,
    connect_stream,
    connect_subproc,
    connect_thread,
    discover,
    list_services,
    ssh_connect,
    ssl_connect,
    unix_connect,
)
from rpyc.core.tls import SecurityWarning  # noqa: F401
from rpyc.core.byvalue import ByValueError, by_value, returns_by_value  # noqa: F401
from rpyc.utils.helpers import BgServingThread, async_, buffiter, classpartial, restricted, timed  # noqa: F401
from rpyc.utils.server import (  # noqa: F401
    ForkingServer,
    OneShotServer,
    ThreadedServer,
    ThreadPoolServer,
)
from rpyc.utils.prefork import PreforkServer  # noqa: F401
from rpyc.utils import exposed, service  # noqa: F401
from rpyc.lib import setup_logger, spawn  # noqa: F401
from rpyc.version import __version__  # noqa: F401
from rpyc import version  # noqa: F401  (the module, as upstream)
from rpyc import lib, utils, cli  # noqa: F401

from rpyc.utils import classic  # noqa: F401

globals()["async"] = async_  # `async` is a keyword: reachable as getattr(rpyc, "async")

# What `from rpyc import *` gave without a list (every public name above), spelled out so that
# type checkers see these names as rpyc's API (mypy --strict: no implicit re-exports).
__all__ = [
    "AsyncResult", "AsyncResultTimeout", "BaseNetref", "BgServingThread", "ByValueError", "Channel",
    "ClassicService", "Connection", "ForkingServer", "GenericException", "MasterService",
    "OneShotServer", "PipeStream", "PreforkServer", "SecurityWarning", "Service", "SlaveService", "SocketStream",
    "ThreadPoolServer", "ThreadedServer", "TunneledSocketStream", "VoidService", "async",
    "async_", "buffiter", "by_value", "classic", "classpartial", "cli", "connect", "connect_by_service",
    "connect_channel", "connect_pipes", "connect_stdpipes", "connect_stream", "connect_subproc",
    "connect_thread", "core", "discover", "exposed", "lib", "list_services", "restricted",
    "returns_by_value", "service", "setup_logger", "spawn", "ssh_connect", "ssl_connect", "timed", "unix_connect",
    "utils", "version",
]
