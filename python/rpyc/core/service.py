"""Services: the objects a connection exposes to its peer.

Each end of a connection has a *service* whose instance is the connection's local root; the
peer reaches it as ``conn.root``. With the default configuration only the members whose
names start with ``exposed_`` are reachable remotely (``conn.root.foo`` resolves to
``exposed_foo``), and remote ``setattr``/``delattr`` on a service are always refused.

The classic mode (full remote control of a Python process) is built from the same pieces:
:class:`SlaveService` opens its process to the peer, :class:`MasterService` decorates the
connection with ``modules``, ``eval``, ``execute``... bound to the peer's slave, and
:class:`ClassicService` does both.
"""

import importlib
from functools import partial
from typing import Any, Callable, Dict, Optional, Tuple, Union

from rpyc.core.protocol import Connection
from rpyc.lib import hybridmethod
from rpyc.lib.compat import execute

__all__ = [
    "Service",
    "VoidService",
    "ModuleNamespace",
    "Slave",
    "SlaveService",
    "FakeSlaveService",
    "MasterService",
    "ClassicService",
    "ClassicClient",
]


class Service:
    """Base class of RPyC services.

    Subclass it and define ``exposed_<name>`` members to make them callable by the peer.
    The service name is derived from the class name (``CalculatorService`` -> ``"CALCULATOR"``)
    unless the class sets ``ALIASES``, a sequence of names whose first one is the canonical
    name. :meth:`on_connect` and :meth:`on_disconnect` are hooks run when a connection using
    this service starts and after it has ended.

    ``_rpyc_getattr``/``_rpyc_setattr``/``_rpyc_delattr`` may be defined to take over remote
    attribute access completely (this bypasses the configured access policy: be careful).
    """

    __slots__ = ()
    ALIASES: Tuple[str, ...] = ()
    #: connection class instantiated by :meth:`_connect`
    _protocol: type = Connection

    def on_connect(self, conn: Connection) -> None:
        """Hook run once the connection is set up; it may already talk to the peer."""

    def on_disconnect(self, conn: Connection) -> None:
        """Hook run after the connection has been closed (no I/O is possible any more)."""

    # Remote writes are always refused; reads follow the connection's access policy unless a
    # subclass defines ``_rpyc_getattr``. (Definition order matters: it is the INSPECT order.)
    def _rpyc_delattr(self, name: str) -> None:
        raise AttributeError("access denied")

    def _rpyc_setattr(self, name: str, value: Any) -> None:
        raise AttributeError("access denied")

    @classmethod
    def get_service_aliases(cls) -> Tuple[str, ...]:
        """The names of this service, upper-cased: ``ALIASES`` if set, otherwise the class name
        without its ``Service`` suffix."""
        if cls.ALIASES:
            return tuple(str(alias).upper() for alias in cls.ALIASES)
        name = cls.__name__.upper()
        if name.endswith("SERVICE"):
            name = name[: -len("SERVICE")]
        return (name,)

    @classmethod
    def get_service_name(cls) -> str:
        """The canonical name of this service (its first alias)."""
        return cls.get_service_aliases()[0]

    exposed_get_service_aliases = get_service_aliases
    exposed_get_service_name = get_service_name

    @hybridmethod
    def _connect(self: Any, channel: Any, config: Dict[str, Any] = {}) -> Connection:
        """Create a connection over ``channel`` whose local root is this service. Called on
        the class, a new instance of the service is created first. The connection object
        runs :meth:`on_connect` itself."""
        service = self() if isinstance(self, type) else self
        return service._protocol(service, channel, config)


class VoidService(Service):
    """A service exposing nothing beyond the service-name methods."""

    __slots__ = ()


class ModuleNamespace:
    """Attribute and item access to the modules of a peer (``conn.modules``).

    ``ns["os.path"]`` and ``ns.os`` import the module on the peer (through ``getmodule``) and
    cache its proxy; ``"name" in ns`` asks the peer whether the module can be found without
    importing it.
    """

    __slots__ = ("__getmodule", "__cache", "__weakref__")

    def __init__(self, getmodule: Callable[[Any], Any]) -> None:
        self.__getmodule = getmodule
        self.__cache: Dict[Any, Any] = {}
        for name in ("builtins", "importlib.util"):
            self.__cache[name] = getmodule(name)

    def __contains__(self, name: str) -> bool:
        finder = self.__cache["importlib.util"]._find_spec_from_path
        return finder(name) is not None

    def __getitem__(self, name: Any) -> Any:
        try:
            return self.__cache[name]
        except KeyError:
            module = self.__getmodule(name)
            self.__cache[name] = module
            return module

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except ImportError:
            raise AttributeError(name) from None


class Slave:
    """The classic-mode capabilities: a private namespace in which the peer may execute and
    evaluate code, module import, and access to the connection."""

    __slots__ = ("_conn", "namespace")

    def __init__(self) -> None:
        self._conn: Optional[Connection] = None
        self.namespace: Dict[str, Any] = {}

    def execute(self, text: str) -> None:
        """Execute ``text`` (statements) in the namespace."""
        execute(text, self.namespace)

    def eval(self, text: str) -> Any:
        """Evaluate the expression ``text`` in the namespace and return its value."""
        return eval(text, self.namespace)

    def getmodule(self, name: Union[str, Tuple[str, ...]]) -> Any:
        """Import and return a module; a tuple of names is joined with dots."""
        if type(name) is tuple:
            name = ".".join(name)
        return importlib.import_module(name)  # type: ignore[arg-type]

    def getconn(self) -> Optional[Connection]:
        """The connection this slave serves."""
        return self._conn


_CLASSIC_CONFIG = {
    "allow_all_attrs": True,
    "allow_pickle": True,
    "allow_getattr": True,
    "allow_setattr": True,
    "allow_delattr": True,
    "allow_exposed_attrs": False,
    "import_custom_exceptions": True,
    "instantiate_custom_exceptions": True,
    "instantiate_oldstyle_exceptions": True,
}


class SlaveService(Slave, Service):
    """The classic server: gives the peer unrestricted access to this process (any attribute,
    imports, code execution, pickling). Only use it with trusted peers."""

    __slots__ = ()

    def on_connect(self, conn: Connection) -> None:
        self._conn = conn
        conn._config.update(_CLASSIC_CONFIG)
        super().on_connect(conn)


class FakeSlaveService(VoidService):
    """A service that looks like a slave (it has the slave's exposed names) but grants
    nothing: for connecting to classic peers without opening this process to them."""

    __slots__ = ()
    exposed_namespace = None
    exposed_execute = None
    exposed_eval = None
    exposed_getmodule = None
    exposed_getconn = None


def _teleport(conn: Connection, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    from rpyc.utils.classic import teleport_function

    return teleport_function(conn, func, *args, **kwargs)


class MasterService(Service):
    """The classic client side: on connect it equips the connection with shortcuts to the
    peer's slave -- ``modules``, ``builtins`` (and ``builtin``), ``eval``, ``execute``,
    ``namespace`` and ``teleport`` -- without exposing anything itself."""

    __slots__ = ()

    def on_connect(self, conn: Connection) -> None:
        super().on_connect(conn)
        self._install(conn, conn.root)

    @staticmethod
    def _install(conn: Any, slave: Any) -> None:
        """Set the classic attributes on ``conn``, backed by ``slave`` (the peer's root)."""
        modules = ModuleNamespace(slave.getmodule)
        conn.modules = modules
        conn.eval = slave.eval
        conn.execute = slave.execute
        conn.namespace = slave.namespace
        conn.builtins = modules.builtins
        conn.builtin = conn.builtins
        conn.teleport = partial(_teleport, conn)


class ClassicService(MasterService, SlaveService):
    """Both classic roles at once: each side fully controls the other (used by
    ``rpyc.classic.connect`` and the classic server)."""

    __slots__ = ()


class ClassicClient(MasterService, FakeSlaveService):
    """The master role only, for connecting to a classic server without opening this process
    to it."""

    __slots__ = ()
