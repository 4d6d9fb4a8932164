"""Zero-deploy: run a temporary RPyC server on a machine you can reach over SSH, with
nothing installed there but Python.

:class:`DeployedServer` copies this ``rpyc`` package into a temporary directory of the remote
machine, starts a server there bound to the remote loopback interface on a free port, and
reaches it through an SSH tunnel (or, with a plumbum ``ParamikoMachine``, a direct SSH
channel). Closing the deployment stops the server, the tunnel and the SSH session and removes
the temporary directory.

Requires `plumbum <https://plumbum.readthedocs.io/>`_ (imported when a deployment is made,
so this module itself imports without it). This package contains a compiled extension
(``rpyc._core``): the remote machine must be able to load the copy, i.e. run the same
operating system, architecture and CPython minor version as this one.
"""

import sys
from subprocess import TimeoutExpired
from typing import Any, Dict, Iterator, List, Optional

import rpyc.utils.classic
import rpyc.utils.factory
from rpyc.core.service import VoidService
from rpyc.core.stream import SocketStream
from rpyc.lib.compat import BYTES_LITERAL  # noqa: F401 (upstream's name)

__all__ = ["SERVER_SCRIPT", "DeployedServer", "MultiServerDeployment"]

#: Python source run on the remote machine. Placeholders: ``$SERVER_MODULE$``,
#: ``$SERVER_CLASS$``, ``$SERVICE_MODULE$``, ``$SERVICE_CLASS$`` and ``$EXTRA_SETUP$`` (code
#: run before the server is made; it may set ``logger``). The script prints the port, then
#: serves until its standard input is closed, and removes its directory on exit.
SERVER_SCRIPT = r"""\
import atexit
import os
import shutil
import sys

here = os.path.dirname(os.path.abspath(__file__))
os.chdir(here)
atexit.register(shutil.rmtree, here, True)
for dirpath, dirnames, filenames in os.walk(here):
    for name in filenames:
        if name.endswith(".pyc"):
            try:
                os.remove(os.path.join(dirpath, name))
            except OSError:
                pass
sys.path.insert(0, here)

from $SERVER_MODULE$ import $SERVER_CLASS$ as ServerCls
from $SERVICE_MODULE$ import $SERVICE_CLASS$ as ServiceCls

logger = None
$EXTRA_SETUP$

server = ServerCls(ServiceCls, hostname="localhost", port=0, reuse_addr=True, logger=logger)
thread = server._start_in_thread()
sys.stdout.write("%s\n" % (server.port,))
sys.stdout.flush()
try:
    sys.stdin.read()
finally:
    server.close()
    thread.join(2)
"""


def _plumbum() -> Any:
    try:
        import plumbum
        import plumbum.commands.base
        import plumbum.path
    except ImportError as exc:
        raise ImportError(
            "rpyc.utils.zerodeploy needs plumbum (pip install plumbum)") from exc
    return plumbum


def _render_script(template: str, server_class: str, service_class: str, extra_setup: str) -> str:
    server_module, server_name = server_class.rsplit(".", 1)
    service_module, service_name = service_class.rsplit(".", 1)
    replacements = {
        "$SERVER_MODULE$": server_module,
        "$SERVER_CLASS$": server_name,
        "$SERVICE_MODULE$": service_module,
        "$SERVICE_CLASS$": service_name,
        "$EXTRA_SETUP$": extra_setup,
    }
    for placeholder, value in replacements.items():
        template = template.replace(placeholder, value)
    return template


class DeployedServer:
    """A temporary RPyC server on ``remote_machine`` (a plumbum ``SshMachine`` or
    ``ParamikoMachine``).

    :param server_class: dotted name of the server class to run (``ThreadedServer``,
                         ``ForkingServer``...)
    :param service_class: dotted name of the service it serves (by default the classic
                          ``SlaveService``: the deployment gives full control of the remote
                          account, reachable only through this SSH session)
    :param server_script: the script template (see :data:`SERVER_SCRIPT`)
    :param extra_setup: Python code inserted in the script before the server starts
    :param python_executable: the remote interpreter (a path or a plumbum command); by
                              default ``pythonX.Y`` matching this interpreter, then
                              ``pythonX``, then the machine's ``python``

    Use it as a context manager, or call :meth:`close`.
    """

    def __init__(self, remote_machine: Any, server_class: str = "rpyc.utils.server.ThreadedServer",
                 service_class: str = "rpyc.core.service.SlaveService", server_script: str = SERVER_SCRIPT,
                 extra_setup: str = "", python_executable: Any = None) -> None:
        self.proc: Any = None
        self.tun: Any = None
        self.remote_machine: Any = remote_machine
        self._tmpdir_ctx: Any = None
        self.local_port: Optional[int] = None
        plumbum = _plumbum()

        try:
            package_dir = plumbum.local.path(rpyc.utils.classic.__file__).up().up()
            self._tmpdir_ctx = remote_machine.tempdir()
            tmp = self._tmpdir_ctx.__enter__()
            plumbum.path.copy(package_dir, tmp / "rpyc")
            script = tmp / "deployed-rpyc.py"
            script.write(_render_script(server_script, server_class, service_class, extra_setup))

            command = self._python(remote_machine, python_executable, plumbum)
            self.proc = command.popen(script, new_session=True)
            self.remote_port = self._read_port(plumbum)

            if hasattr(remote_machine, "connect_sock"):
                self.local_port = None  # Paramiko: open SSH channels on demand
            else:
                self.local_port = rpyc.utils.factory._get_free_port()
                self.tun = remote_machine.tunnel(self.local_port, self.remote_port)
        except BaseException:
            remote_machine = self.remote_machine
            self.remote_machine = None  # the caller owns the machine if we failed
            try:
                self.close()
            finally:
                self.remote_machine = remote_machine
            raise

    @staticmethod
    def _python(remote_machine: Any, python_executable: Any, plumbum: Any) -> Any:
        if isinstance(python_executable, plumbum.commands.base.BoundCommand):
            return python_executable
        if python_executable:
            return remote_machine[python_executable]
        major, minor = sys.version_info[:2]
        for name in (f"python{major}.{minor}", f"python{major}"):
            try:
                return remote_machine[name]
            except plumbum.CommandNotFound:
                continue
        return remote_machine.python

    def _read_port(self, plumbum: Any) -> int:
        line: Any = ""
        try:
            line = self.proc.stdout.readline()
            return int(line.strip())
        except Exception:
            try:
                self.proc.terminate()
            except Exception:
                pass
            stdout, stderr = self.proc.communicate()
            if isinstance(line, str):
                line = line.encode("utf-8", "replace")
            raise plumbum.ProcessExecutionError(
                getattr(self.proc, "argv", None), self.proc.returncode, line + (stdout or b""), stderr
            ) from None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def __enter__(self) -> "DeployedServer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @staticmethod
    def _stop(proc: Any, timeout: Optional[float]) -> None:
        """terminate + communicate(timeout); a process that does not exit is killed and the
        ``TimeoutExpired`` propagates."""
        try:
            proc.terminate()
            proc.communicate(timeout=timeout)
        except TimeoutExpired:
            proc.kill()
            raise
        except Exception:
            pass

    def close(self, timeout: Optional[float] = None) -> None:
        """Stop the remote server, the tunnel and the SSH session, and remove the remote
        temporary directory. ``timeout`` bounds each of the three waits for a process to end
        (``None``: wait as long as needed)."""
        if self.proc is not None:
            proc, self.proc = self.proc, None
            self._stop(proc, timeout)
        if self.tun is not None:
            tun, self.tun = self.tun, None
            session_proc = getattr(getattr(tun, "_session", None), "proc", None)
            if session_proc is not None:
                self._stop(session_proc, timeout)
            try:
                tun.close()
            except Exception:
                pass
        if self.remote_machine is not None:
            machine, self.remote_machine = self.remote_machine, None
            session_proc = getattr(getattr(machine, "_session", None), "proc", None)
            if session_proc is not None:
                self._stop(session_proc, timeout)
            try:
                machine.close()
            except Exception:
                pass
        if self._tmpdir_ctx is not None:
            ctx, self._tmpdir_ctx = self._tmpdir_ctx, None
            try:
                ctx.__exit__(None, None, None)
            except Exception:
                pass

    def _connect_sock(self) -> Any:
        if self.local_port is None:
            return self.remote_machine.connect_sock(self.remote_port)
        return SocketStream._connect("localhost", self.local_port)

    def connect(self, service: Any = VoidService, config: Dict[str, Any] = {}) -> Any:
        """A connection to the deployed server (like :func:`rpyc.connect`)."""
        return rpyc.utils.factory.connect_stream(SocketStream(self._connect_sock()), service=service, config=config)

    def classic_connect(self) -> Any:
        """A classic connection to the deployed server (like :func:`rpyc.classic.connect`)."""
        return rpyc.utils.classic.connect_stream(SocketStream(self._connect_sock()))


class MultiServerDeployment:
    """One :class:`DeployedServer` per machine of ``remote_machines``, managed together (a
    sequence of the deployments, closed together)."""

    def __init__(self, remote_machines: Any, server_class: str = "rpyc.utils.server.ThreadedServer") -> None:
        self.remote_machines = remote_machines
        self.servers: List[DeployedServer] = []
        try:
            for machine in remote_machines:
                self.servers.append(DeployedServer(machine, server_class))
        except BaseException:
            self.close()
            raise

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def __enter__(self) -> "MultiServerDeployment":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __iter__(self) -> Iterator[DeployedServer]:
        return iter(self.servers)

    def __len__(self) -> int:
        return len(self.servers)

    def __getitem__(self, index: int) -> DeployedServer:
        return self.servers[index]

    def close(self) -> None:
        """Close every deployment."""
        while self.servers:
            self.servers.pop(0).close()

    def connect_all(self, service: Any = VoidService, config: Dict[str, Any] = {}) -> List[Any]:
        """A connection to each deployed server, in order."""
        return [server.connect(service, config) for server in self.servers]

    def classic_connect_all(self) -> List[Any]:
        """A classic connection to each deployed server, in order."""
        return [server.classic_connect() for server in self.servers]
