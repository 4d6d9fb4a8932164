"""Classic mode: full remote control of another Python process (``rpyc.classic``).

A classic connection talks to a peer serving :class:`~rpyc.core.service.SlaveService` (the
``rpyc_classic`` server, or any ``ClassicService``) and gets ``conn.modules``,
``conn.builtins``, ``conn.eval``, ``conn.execute``, ``conn.namespace`` and
``conn.teleport``. The factories here are the ones of :mod:`rpyc.utils.factory` with the
service fixed to :class:`~rpyc.core.service.ClassicService`, which serves the slave role too:
**the peer gets the same unrestricted access to this process**. Only connect to peers you
trust, and keep classic servers on the loopback interface (``rpyc_classic`` binds 127.0.0.1
unless told otherwise).

Helpers built on a classic connection: :func:`upload`/:func:`download` (files and directory
trees), :func:`upload_package`, :func:`obtain`/:func:`deliver` (copies by value through
pickle), :func:`redirected_stdio`, :func:`pm` (post-mortem debugging of the peer's last
exception), :func:`interact` (a remote interactive prompt) and :func:`teleport_function`.

Example::

    import rpyc
    conn = rpyc.classic.connect("127.0.0.1")          # rpyc_classic running locally
    conn.modules.sys.path.append("/opt/lib")
    pid = conn.modules.os.getpid()
    rpyc.classic.upload(conn, "settings.ini", "/tmp/settings.ini")
"""

import os
import pickle
import sys
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, List, Optional

from rpyc.core.consts import STREAM_CHUNK
from rpyc.core.protocol import Connection
from rpyc.lib.compat import execute  # noqa: F401 (upstream's name)
from rpyc.core.service import ClassicService, ModuleNamespace, Slave  # noqa: F401  (re-exported)
from rpyc.utils import factory

__all__ = [
    "DEFAULT_SERVER_PORT", "DEFAULT_SERVER_SSL_PORT", "STREAM_CHUNK", "SlaveService",
    "ClassicService", "Slave", "ModuleNamespace",
    "connect_channel", "connect_stream", "connect_stdpipes", "connect_pipes", "connect",
    "unix_connect", "ssl_connect", "ssh_connect", "connect_subproc", "connect_thread",
    "connect_multiprocess",
    "upload", "upload_file", "upload_dir", "upload_package", "upload_module",
    "download", "download_file", "download_dir",
    "obtain", "deliver", "redirected_stdio", "pm", "interact", "teleport_function",
    "MockClassicConnection",
]

DEFAULT_SERVER_PORT = 18812
DEFAULT_SERVER_SSL_PORT = 18821

#: the service classic connections use on this side (both roles, as upstream)
SlaveService = ClassicService


# -- connecting ------------------------------------------------------------------------------

def connect_channel(channel: Any) -> Connection:
    """A classic connection over an existing ``Channel``."""
    return factory.connect_channel(channel, SlaveService)


def connect_stream(stream: Any) -> Connection:
    """A classic connection over an existing ``Stream``."""
    return factory.connect_stream(stream, SlaveService)


def connect_stdpipes() -> Connection:
    """A classic connection over this process's stdin/stdout."""
    return factory.connect_stdpipes(SlaveService)


def connect_pipes(input: Any, output: Any) -> Connection:
    """A classic connection over two file objects (read end, write end)."""
    return factory.connect_pipes(input, output, SlaveService)


def connect(host: str, port: int = DEFAULT_SERVER_PORT, ipv6: bool = False, keepalive: bool = False,
            authenticator: Any = None) -> Connection:
    """A classic connection to the server at ``host:port`` (TCP); ``authenticator`` as for
    :func:`rpyc.utils.factory.connect_stream`."""
    return factory.connect(host, port, SlaveService, ipv6=ipv6, keepalive=keepalive,
                           authenticator=authenticator)


def unix_connect(path: str, authenticator: Any = None) -> Connection:
    """A classic connection over the unix-domain socket at ``path``."""
    return factory.unix_connect(path, SlaveService, authenticator=authenticator)


def ssl_connect(host: str, port: int = DEFAULT_SERVER_SSL_PORT, keyfile: Optional[str] = None,
                certfile: Optional[str] = None, ca_certs: Optional[str] = None, cert_reqs: Any = None,
                ssl_version: Any = None, ciphers: Optional[str] = None, ipv6: bool = False,
                check_hostname: Optional[bool] = None) -> Connection:
    """A classic connection over TLS; the arguments are those of
    :func:`rpyc.utils.factory.ssl_connect` (verification of the server when ``ca_certs`` is
    given, a :class:`rpyc.SecurityWarning` when nothing is verified)."""
    return factory.ssl_connect(host, port, keyfile=keyfile, certfile=certfile, ca_certs=ca_certs,
                               cert_reqs=cert_reqs, ssl_version=ssl_version, ciphers=ciphers,
                               service=SlaveService, ipv6=ipv6, check_hostname=check_hostname)


def ssh_connect(remote_machine: Any, remote_port: int, authenticator: Any = None) -> Connection:
    """A classic connection through an SSH tunnel to ``remote_port`` on ``remote_machine``
    (a plumbum ``SshMachine``); see :func:`rpyc.utils.factory.ssh_connect`."""
    return factory.ssh_connect(remote_machine, remote_port, SlaveService, authenticator=authenticator)


def _default_server_command() -> List[str]:
    # The server module of this very package, run by this very interpreter: a script found on
    # PATH may belong to another installation or be a shell shim (pyenv) that Python cannot run.
    return [sys.executable, "-u", "-m", "rpyc.cli.rpyc_classic"]


def connect_subproc(server_file: Optional[str] = None) -> Connection:
    """Start a classic server as a child process serving over its stdin/stdout, and connect
    to it. ``server_file`` is the server script (``rpyc_classic.py``); by default this
    package's ``rpyc.cli.rpyc_classic`` module. The ``Popen`` is ``conn.proc``."""
    if server_file is None:
        command = _default_server_command()
    else:
        command = [sys.executable, "-u", server_file]
    return factory.connect_subproc(command + ["-q", "-m", "stdio"], SlaveService)


def connect_thread() -> Connection:
    """A classic server for one connection in a thread of this process, and a classic
    connection to it (handy for tests)."""
    return factory.connect_thread(SlaveService, remote_service=SlaveService)


def connect_multiprocess(args: Dict[str, Any] = {}) -> Connection:
    """Like :func:`connect_thread` but the server runs in a child process
    (``multiprocessing``); ``args`` is added to the server's namespace."""
    return factory.connect_multiprocess(SlaveService, remote_service=SlaveService, args=args)


# -- files -----------------------------------------------------------------------------------

def upload(conn: Any, localpath: str, remotepath: str, filter: Optional[Callable[[str], bool]] = None,
           ignore_invalid: bool = False, chunk_size: int = STREAM_CHUNK) -> None:
    """Copy the local file or directory tree ``localpath`` to ``remotepath`` on the peer.

    ``filter(name)`` decides, for each entry of a directory, whether it is copied (default:
    everything). A ``localpath`` that is neither a file nor a directory raises
    :class:`ValueError` unless ``ignore_invalid``.
    """
    if os.path.isdir(localpath):
        upload_dir(conn, localpath, remotepath, filter, chunk_size)
    elif os.path.isfile(localpath):
        upload_file(conn, localpath, remotepath, chunk_size)
    elif not ignore_invalid:
        raise ValueError(f"cannot upload {localpath!r}: not a file or a directory")


def upload_file(conn: Any, localpath: str, remotepath: str, chunk_size: int = STREAM_CHUNK) -> None:
    """Copy one local file to ``remotepath`` on the peer (created or truncated)."""
    with open(localpath, "rb") as local_file:
        with conn.builtins.open(remotepath, "wb") as remote_file:
            while True:
                chunk = local_file.read(chunk_size)
                if not chunk:
                    break
                remote_file.write(chunk)


def upload_dir(conn: Any, localpath: str, remotepath: str, filter: Optional[Callable[[str], bool]] = None,
               chunk_size: int = STREAM_CHUNK) -> None:
    """Copy the local directory tree ``localpath`` to ``remotepath`` on the peer."""
    remote_os = conn.modules.os
    if not remote_os.path.isdir(remotepath):
        remote_os.makedirs(remotepath)
    for name in os.listdir(localpath):
        if filter is not None and not filter(name):
            continue
        upload(conn, os.path.join(localpath, name), remote_os.path.join(remotepath, name),
               filter=filter, ignore_invalid=True, chunk_size=chunk_size)


def download(conn: Any, remotepath: str, localpath: str, filter: Optional[Callable[[str], bool]] = None,
             ignore_invalid: bool = False, chunk_size: int = STREAM_CHUNK) -> None:
    """Copy the file or directory tree ``remotepath`` of the peer to ``localpath``.

    ``filter`` and ``ignore_invalid`` as for :func:`upload`.
    """
    remote_path = conn.modules.os.path
    if remote_path.isdir(remotepath):
        download_dir(conn, remotepath, localpath, filter, chunk_size)
    elif remote_path.isfile(remotepath):
        download_file(conn, remotepath, localpath, chunk_size)
    elif not ignore_invalid:
        raise ValueError(f"cannot download {remotepath!r}: not a file or a directory on the peer")


def download_file(conn: Any, remotepath: str, localpath: str, chunk_size: int = STREAM_CHUNK) -> None:
    """Copy one file of the peer to ``localpath`` (created or truncated)."""
    with conn.builtins.open(remotepath, "rb") as remote_file:
        with open(localpath, "wb") as local_file:
            while True:
                chunk = remote_file.read(chunk_size)
                if not chunk:
                    break
                local_file.write(chunk)


def download_dir(conn: Any, remotepath: str, localpath: str, filter: Optional[Callable[[str], bool]] = None,
                 chunk_size: int = STREAM_CHUNK) -> None:
    """Copy the directory tree ``remotepath`` of the peer to ``localpath``."""
    if not os.path.isdir(localpath):
        os.makedirs(localpath)
    remote_os = conn.modules.os
    for name in remote_os.listdir(remotepath):
        name = str(name)
        if filter is not None and not filter(name):
            continue
        download(conn, remote_os.path.join(remotepath, name), os.path.join(localpath, name),
                 filter=filter, ignore_invalid=True, chunk_size=chunk_size)


def _not_bytecode_cache(name: str) -> bool:
    return name != "__pycache__" and not name.endswith((".pyc", ".pyo"))


def upload_package(conn: Any, module: Any, remotepath: Optional[str] = None,
                   chunk_size: int = STREAM_CHUNK) -> None:
    """Copy a local package (its whole directory) or single-file module to the peer, so that
    the peer can import it.

    ``remotepath`` is where the package directory (or the module file) goes; by default the
    peer's ``site-packages`` (``sysconfig``'s ``purelib``) plus the module's dotted path.
    Bytecode caches are not copied. ``upload_module`` is the same function.

    Example: ``rpyc.classic.upload_package(conn, mypkg)`` then ``conn.modules.mypkg``.
    """
    filename = getattr(module, "__file__", None)
    if not filename:
        raise ValueError(f"cannot upload {module!r}: it has no source file (builtin or namespace package)")
    filename = os.path.abspath(filename)
    is_package = hasattr(module, "__path__")
    parts = module.__name__.split(".")
    if is_package:
        localpath = os.path.dirname(filename)
    else:
        localpath = filename
        parts[-1] = os.path.basename(filename)
    if remotepath is None:
        site = conn.modules.sysconfig.get_paths()["purelib"]
        remotepath = conn.modules.os.path.join(site, *parts)
    if is_package:
        upload_dir(conn, localpath, remotepath, filter=_not_bytecode_cache, chunk_size=chunk_size)
    else:
        parent = conn.modules.os.path.dirname(remotepath)
        if parent and not conn.modules.os.path.isdir(parent):
            conn.modules.os.makedirs(parent)
        upload_file(conn, localpath, remotepath, chunk_size=chunk_size)


upload_module = upload_package


# -- moving objects by value -----------------------------------------------------------------

def _require_pickle(conn: Any, what: str) -> None:
    """Refuse to unpickle what ``conn``'s peer sends unless this side's config allows it
    (shared with ``rpyc.aio.obtain``)."""
    config = getattr(conn, "_config", None)
    if isinstance(config, dict) and not config.get("allow_pickle"):
        raise ValueError(
            f"{what}: pickling is disabled on this connection; it is enabled for classic "
            f"connections, or pass config={{'allow_pickle': True}} when connecting"
        )


class _GatedPickler(pickle.Pickler):
    """A pickler refusing proxies whose connection does not allow pickling locally (a proxy
    pickles as the remote object's own pickle, which is then unpickled *here*)."""

    def reducer_override(self, obj: Any) -> Any:
        from rpyc.core.netref import BaseNetref

        if issubclass(type(obj), BaseNetref):
            _require_pickle(object.__getattribute__(obj, "____conn__"), "obtain")
        return NotImplemented


_NOT_BY_VALUE = object()


def _obtains_by_value(proxy: Any) -> bool:
    """Whether ``proxy`` is a proxy whose peer negotiated ``by_value`` (docs/by-value.md):
    then ``obtain`` asks it for a copy (``HANDLE_OBTAIN``) before any pickle. Shared with
    ``rpyc.aio.obtain``, which awaits the same requests."""
    from rpyc.core import extensions
    from rpyc.core.netref import BaseNetref

    if not issubclass(type(proxy), BaseNetref):
        return False
    conn = object.__getattribute__(proxy, "____conn__")
    return extensions.FEATURE_BY_VALUE in conn._peer_features


def _obtain_by_value(proxy: Any) -> Any:
    """The copy of ``proxy``'s object by value, or ``_NOT_BY_VALUE`` when pickle must do
    (an upstream peer, a local object, or an object that is not data while this side allows
    pickle: else ``refuse_pickle_fallback`` raises)."""
    from rpyc.core import consts
    from rpyc.core.byvalue import ByValueError
    from rpyc.core.netref import refuse_pickle_fallback, syncreq

    if not _obtains_by_value(proxy):
        return _NOT_BY_VALUE
    try:
        return syncreq(proxy, consts.HANDLE_OBTAIN)
    except ByValueError as exc:
        refuse_pickle_fallback(proxy, "obtain()", exc)
        return _NOT_BY_VALUE


def obtain(proxy: Any) -> Any:
    """A local copy of the remote object behind ``proxy`` (also of proxies nested in a local
    container): changes to the copy do not reach the original.

    From an rpyc-rs peer, data (tuples, lists, dicts, sets, str, bytes, numbers, plain
    arrays, nested) is copied by value, without pickle (docs/by-value.md). Anything else,
    and everything from an upstream peer, is pickled on the peer and unpickled here.

    For pickle, the peer must allow pickling, and so must this side: unpickling runs code chosen by the
    peer, so it is only done on connections whose local configuration has ``allow_pickle``
    (true for classic connections). The object must be picklable on the peer.
    """
    import io

    copy = _obtain_by_value(proxy)
    if copy is not _NOT_BY_VALUE:
        return copy
    buffer = io.BytesIO()
    _GatedPickler(buffer, pickle.HIGHEST_PROTOCOL).dump(proxy)
    return pickle.loads(buffer.getvalue())


def deliver(conn: Any, localobj: Any) -> Any:
    """Recreate ``localobj`` on the peer (pickled here, unpickled there) and return a proxy
    to the copy. Requires ``allow_pickle`` in this connection's local configuration (classic
    connections have it) and a picklable object."""
    _require_pickle(conn, "deliver")
    data = bytes(pickle.dumps(localobj))
    return conn.modules["rpyc.lib.compat"].pickle.loads(data)


# -- interactive helpers ---------------------------------------------------------------------

@contextmanager
def redirected_stdio(conn: Any) -> Iterator[None]:
    """Within the block the peer's ``sys.stdin``/``stdout``/``stderr`` are this process's, so
    the peer's console I/O happens here::

        with redirected_stdio(conn):
            conn.modules.sys.stdout.write("printed locally\\n")
    """
    remote_sys = conn.modules.sys
    saved = (remote_sys.stdin, remote_sys.stdout, remote_sys.stderr)
    try:
        remote_sys.stdin = sys.stdin
        remote_sys.stdout = sys.stdout
        remote_sys.stderr = sys.stderr
        yield
    finally:
        remote_sys.stdin, remote_sys.stdout, remote_sys.stderr = saved


def pm(conn: Any) -> None:
    """Post-mortem debugging (``pdb``) of the last exception the peer raised while serving
    this connection, with the debugger's console here."""
    with redirected_stdio(conn):
        conn.modules.pdb.post_mortem(conn.root.getconn()._last_traceback)


_INTERACT_SOURCE = """
def _rpyc_classic_interact(namespace):
    import code
    code.interact(local=dict(namespace))
"""


def interact(conn: Any, namespace: Optional[Dict[str, Any]] = None) -> None:
    """An interactive Python prompt running on the peer, with its console here.
    ``namespace`` (a dict, copied) is the prompt's initial namespace; ``conn`` is added to
    it."""
    if namespace is None:
        namespace = {}
    namespace["conn"] = conn
    with redirected_stdio(conn):
        conn.execute(_INTERACT_SOURCE)
        conn.namespace["_rpyc_classic_interact"](namespace)


# -- teleportation ---------------------------------------------------------------------------

def _peer_bytecode(conn: Any) -> Any:
    """(cache_tag, (major, minor)) of the peer's interpreter, asked once per connection."""
    cached = getattr(conn, "_rpyc_peer_bytecode", None)
    if cached is not None:
        return cached
    remote_sys = conn.modules.sys
    hexversion = int(remote_sys.hexversion)
    try:
        tag = remote_sys.implementation.cache_tag
        tag = None if tag is None else str(tag)
    except AttributeError:
        tag = None
    info = (tag, ((hexversion >> 24) & 0xFF, (hexversion >> 16) & 0xFF))
    try:
        conn._rpyc_peer_bytecode = info
    except AttributeError:
        pass
    return info


def teleport_function(conn: Any, func: Any, globals: Any = None, def_: bool = True) -> Any:
    """Send the plain function ``func`` to the peer as bytecode, rebuild it there and return
    a proxy to the peer's copy (calling it runs on the peer).

    The function runs with ``globals`` (default: the peer's ``conn.namespace``) as its global
    namespace -- it does not see this module's globals, so do imports inside the function --
    and with ``def_`` it is also stored there under its name. Closures and non-brinable
    defaults are refused (:class:`TypeError`). Both interpreters must produce the same
    bytecode (same implementation and minor version), otherwise
    :class:`~rpyc.utils.teleportation.IncompatibleBytecodeError` is raised before anything is
    sent.
    """
    from rpyc.utils.teleportation import check_peer_bytecode, export_function

    exported = export_function(func)
    tag, version = _peer_bytecode(conn)
    check_peer_bytecode(tag, version, what=repr(getattr(func, "__name__", func)))
    if globals is None:
        globals = conn.namespace
    remote_import = conn.modules["rpyc.utils.teleportation"].import_function
    return remote_import(exported, globals, def_)


# -- local stand-in ---------------------------------------------------------------------------

class MockClassicConnection:
    """An object with the attributes of a classic connection (``modules``, ``builtins``,
    ``eval``, ``execute``, ``namespace``, ``teleport``, ``root``) backed by this very process,
    so code written against a classic connection can also run locally."""

    def __init__(self) -> None:
        self.root = Slave()
        ClassicService._install(self, self.root)

    @property
    def closed(self) -> bool:
        return False

    def close(self) -> None:
        """Nothing to close."""

    def __enter__(self) -> "MockClassicConnection":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
