"""rpyc.utils.zerodeploy without SSH: the "remote machine" is this machine, reached through
plumbum's local machine (temporary directory, commands) plus either a direct socket (the
ParamikoMachine path, ``connect_sock``) or a stand-in tunnel (the SshMachine path). The
deployed server is a real child process running the copied package on 127.0.0.1.
Also: the module imports without plumbum, and the small reactor module."""

import os
import socket
import subprocess
import sys
import threading

import pytest

pytest.importorskip("rpyc._core")

from .classic_support import LOOPBACK, FakeSshMachine, wait_until  # noqa: E402

pytestmark = pytest.mark.timeout(90)


def test_module_imports_without_plumbum():
    code = ("import sys; sys.modules['plumbum'] = None\n"
            "import rpyc.utils.zerodeploy as z\n"
            "try:\n"
            "    z.DeployedServer(object())\n"
            "except ImportError as e:\n"
            "    print('ImportError', e)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "needs plumbum" in result.stdout


def test_render_script():
    from rpyc.utils.zerodeploy import SERVER_SCRIPT, _render_script

    text = _render_script(SERVER_SCRIPT, "rpyc.utils.server.ThreadedServer", "rpyc.core.service.SlaveService",
                          "logger = 'x'")
    assert "from rpyc.utils.server import ThreadedServer as ServerCls" in text
    assert "from rpyc.core.service import SlaveService as ServiceCls" in text
    assert "logger = 'x'" in text and "$" not in text
    compile(text, "deployed-rpyc.py", "exec")


class LocalAsRemote:
    """A plumbum-machine look-alike backed by this machine."""

    def __init__(self, direct=True):
        from plumbum import local

        self._local = local
        self.closed = False
        self.fake_ssh = None if direct else FakeSshMachine()
        if direct:
            self.connect_sock = self._connect_sock

    def tempdir(self):
        return self._local.tempdir()

    def __getitem__(self, name):
        return self._local[name]

    @property
    def python(self):
        return self._local[sys.executable]

    def _connect_sock(self, port):
        return socket.create_connection((LOOPBACK, port))

    def tunnel(self, lport, dport):
        return self.fake_ssh.tunnel(lport, dport)

    def close(self):
        self.closed = True


@pytest.mark.parametrize("direct", [True, False], ids=["paramiko-like", "tunnel"])
def test_deployed_server(direct):
    pytest.importorskip("plumbum")
    from rpyc.utils.zerodeploy import DeployedServer

    machine = LocalAsRemote(direct=direct)
    threads_before = set(threading.enumerate())
    with DeployedServer(machine, python_executable=sys.executable) as dep:
        proc = dep.proc
        conn = dep.classic_connect()
        remote_dir = conn.modules.os.getcwd()
        assert remote_dir != os.getcwd()
        assert conn.modules.rpyc.__file__.startswith(remote_dir)  # the copied package
        assert conn.modules.os.getpid() == proc.pid
        assert conn.eval("6 * 7") == 42
        getcwd = conn.modules.os.getcwd
        conn.close()
        plain = dep.connect()
        assert plain.root.get_service_name() == "SLAVE"
        plain.close()
        if not direct:
            assert dep.tun is not None and dep.local_port is not None
    assert proc.poll() is not None
    assert machine.closed
    assert wait_until(lambda: not os.path.exists(remote_dir))
    with pytest.raises(EOFError):
        getcwd()
    if not direct:
        assert all(t.closed for t in machine.fake_ssh.tunnels)
    for t in threading.enumerate():
        if t not in threads_before:
            t.join(5)


def test_close_passes_the_timeout(monkeypatch):
    pytest.importorskip("plumbum")
    from rpyc.utils.zerodeploy import DeployedServer

    seen = []
    original = subprocess.Popen.communicate

    def communicate(self, input=None, timeout=None):
        seen.append(timeout)
        return original(self, input, timeout)

    dep = DeployedServer(LocalAsRemote(), python_executable=sys.executable)
    monkeypatch.setattr(subprocess.Popen, "communicate", communicate)
    dep.close(timeout=7)
    assert seen and set(seen) == {7}
    dep.close()  # idempotent


def test_failed_start_reports_the_output(tmp_path):
    pytest.importorskip("plumbum")
    from plumbum import ProcessExecutionError

    from rpyc.utils.zerodeploy import DeployedServer

    machine = LocalAsRemote()
    with pytest.raises(ProcessExecutionError) as info:
        DeployedServer(machine, server_script="import sys\nprint('not a port')\nsys.exit(3)\n",
                       python_executable=sys.executable)
    assert "not a port" in str(info.value)
    assert not machine.closed  # the caller still owns the machine


def test_multi_server_deployment():
    pytest.importorskip("plumbum")
    from rpyc.utils.zerodeploy import MultiServerDeployment

    with MultiServerDeployment([LocalAsRemote(), LocalAsRemote()]) as multi:
        assert len(multi) == 2
        conns = multi.classic_connect_all()
        pids = {c.modules.os.getpid() for c in conns}
        assert pids == {multi[0].proc.pid, multi[1].proc.pid}
        for c in conns:
            c.close()
        for c in multi.connect_all():
            assert c.root.get_service_name() == "SLAVE"
            c.close()
    assert len(multi) == 0


def test_reactor_dispatches_readable_objects():
    from rpyc.core import reactor

    r = reactor.SelectReactor()
    r.POLL_INTERVAL = 0.05
    a, b = socket.socketpair()
    got = []
    r.register_read(a, lambda s: got.append(s.recv(100)))
    thread = threading.Thread(target=r.run, daemon=True)
    thread.start()
    try:
        b.sendall(b"ping")
        assert wait_until(lambda: got == [b"ping"])
        r.unregister_read(a)
        c, d = socket.socketpair()
        r.register_read(c)  # no callback: drained, closed at EOF
        d.sendall(b"x")
        d.close()
        assert wait_until(lambda: c.fileno() == -1)
    finally:
        r.stop()
        thread.join(2)
        for s in (a, b):
            s.close()
    assert not thread.is_alive()
    assert callable(reactor.start_reactor)
