"""``rpyc.ssh_connect`` / ``rpyc.classic.ssh_connect`` through a real ``ssh -L`` tunnel made
by plumbum's ``SshMachine`` with the system OpenSSH client, as upstream does, against a
throwaway ``sshd`` this test starts on 127.0.0.1 (own host key, own user key in its own
authorized_keys file, ``StrictModes no``, running as the current user).

Needs ``/usr/sbin/sshd`` (Debian: ``apt-get install -y openssh-server``), the ``ssh`` and
``ssh-keygen`` clients and the ``plumbum`` package; without them the tests are skipped with
the reason. Every process started here is stopped (its whole process group) at teardown."""

import getpass
import os
import shutil
import socket
import subprocess

import pytest
from procs import stop_group

import rpyc

from .support import LOOPBACK, free_port, wait_until

SSHD = "/usr/sbin/sshd"
pytestmark = pytest.mark.timeout(90)


def _missing():
    if not os.path.exists(SSHD):
        return "%s not found (install openssh-server: apt-get install -y openssh-server)" % SSHD
    for tool in ("ssh", "ssh-keygen"):
        if shutil.which(tool) is None:
            return "%s not found (install openssh-client)" % tool
    try:
        import plumbum  # noqa: F401
    except ImportError:
        return "plumbum is not installed (pip install plumbum)"
    return None


def _port_open(port):
    try:
        with socket.create_connection((LOOPBACK, port), timeout=0.5) as s:
            s.settimeout(1)
            return s.recv(4).startswith(b"SSH-")
    except OSError:
        return False


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    reason = _missing()
    if reason:
        print("test_ssh skipped: " + reason)
        pytest.skip(reason)
    home = tmp_path_factory.mktemp("sshd")
    for name in ("host_key", "user_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "rpyc-test",
                        "-f", str(home / name)], check=True, timeout=30)
    (home / "authorized_keys").write_bytes((home / "user_key.pub").read_bytes())
    port = free_port()
    config = home / "sshd_config"
    config.write_text("\n".join([
        "Port %d" % port,
        "ListenAddress 127.0.0.1",
        "HostKey %s" % (home / "host_key"),
        "AuthorizedKeysFile %s" % (home / "authorized_keys"),
        "PidFile %s" % (home / "sshd.pid"),
        "StrictModes no",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "PermitRootLogin prohibit-password",
        "AllowTcpForwarding yes",
        "PermitTTY no",
        "LogLevel VERBOSE",
        "",
    ]))
    if os.geteuid() == 0 and not os.path.isdir("/run/sshd"):
        os.makedirs("/run/sshd", mode=0o755)  # sshd's privilege separation directory
    log = open(home / "sshd.log", "wb")
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdin=subprocess.DEVNULL,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        if not wait_until(lambda: proc.poll() is not None or _port_open(port), timeout=15):
            pytest.fail("sshd did not listen on %d:\n%s" % (port, (home / "sshd.log").read_text()))
        if proc.poll() is not None:
            pytest.fail("sshd exited with %s:\n%s" % (proc.returncode, (home / "sshd.log").read_text()))
        yield {"port": port, "key": str(home / "user_key"), "log": home / "sshd.log"}
    finally:
        stop_group(proc)
        log.close()


@pytest.fixture
def machine(sshd):
    from plumbum.machines.ssh_machine import SshMachine

    try:
        m = SshMachine(LOOPBACK, user=getpass.getuser(), port=sshd["port"], keyfile=sshd["key"],
                       ssh_opts=["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                                 "-o", "BatchMode=yes", "-o", "LogLevel=ERROR"],
                       connect_timeout=20)
    except Exception as exc:  # e.g. a locked account ("!" in /etc/shadow) with UsePAM no
        pytest.fail("ssh login to the test sshd failed: %s\n--- sshd log ---\n%s"
                    % (exc, sshd["log"].read_text()[-3000:]))
    try:
        yield m
    finally:
        m.close()


class AddService(rpyc.Service):
    def exposed_add(self, a, b):
        return a + b



def test_ssh_connect_service(harness, machine):
    srv = harness.server(AddService)
    conn = harness.track(rpyc.ssh_connect(machine, srv.port))
    assert conn.root.add(20, 22) == 42
    stream = conn._channel.stream
    assert isinstance(stream, rpyc.TunneledSocketStream) and stream.tun is not None
    local_port = stream.sock.getpeername()[1]
    assert local_port != srv.port  # we talk to the tunnel's end, not to the server
    conn.close()
    assert wait_until(lambda: not _port_open_plain(local_port), timeout=10)  # tunnel closed with it


def _port_open_plain(port):
    try:
        with socket.create_connection((LOOPBACK, port), timeout=0.5):
            return True
    except OSError:
        return False


def test_classic_ssh_connect(harness, machine):
    srv = harness.server(rpyc.SlaveService)
    conn = harness.track(rpyc.classic.ssh_connect(machine, srv.port))
    assert conn.modules.os.getpid() == os.getpid()  # the "remote" server is this process
    assert conn.eval("6 * 7") == 42


def test_ssh_connect_with_shared_secret(harness, machine):
    from rpyc.utils.authenticators import SharedSecretAuthenticator

    srv = harness.server(AddService, authenticator=SharedSecretAuthenticator(b"k"))
    conn = harness.track(rpyc.ssh_connect(machine, srv.port,
                                          authenticator=SharedSecretAuthenticator(b"k", side="client")))
    assert conn.root.add(1, 2) == 3
