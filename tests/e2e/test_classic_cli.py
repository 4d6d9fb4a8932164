"""The command-line programs rpyc_classic and rpyc_registry (bin/ wrappers and ``python -m``),
run as child processes serving on 127.0.0.1, with bounded waits."""

import os
import re
import socket
import subprocess
import sys
import time

import pytest

pytest.importorskip("rpyc._core")

import rpyc  # noqa: E402
from rpyc.cli import rpyc_classic as classic_cli  # noqa: E402
from rpyc.cli import rpyc_registry as registry_cli  # noqa: E402
from rpyc.utils.registry import TCPRegistryClient, TCPRegistryServer, UDPRegistryClient, UDPRegistryServer  # noqa: E402

from .classic_support import BIN, LOOPBACK, Tracker, free_port, wait_until  # noqa: E402

pytestmark = pytest.mark.timeout(60)

CLASSIC = os.path.join(BIN, "rpyc_classic.py")
REGISTRY = os.path.join(BIN, "rpyc_registry.py")


@pytest.fixture
def track():
    tracker = Tracker()
    try:
        yield tracker
    finally:
        tracker.close()


def _readline(proc, timeout=20.0):
    """One line of ``proc``'s stdout; the process is killed if none comes within
    ``timeout`` seconds (so the read cannot hang)."""
    import threading

    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        line = proc.stdout.readline()
    finally:
        timer.cancel()
    assert line, "no output from the server within %ss" % timeout
    return line


def _connect_when_up(port, timeout=20.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return rpyc.classic.connect(LOOPBACK, port)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _run(args, timeout=30):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


# -- rpyc_classic ------------------------------------------------------------------------------------

@pytest.mark.parametrize("launcher", [[CLASSIC], ["-m", "rpyc.cli.rpyc_classic"]], ids=["bin", "module"])
def test_oneshot_announces_host_and_port(track, launcher):
    proc = track.python(*launcher, "--mode=oneshot", "--host=localhost", "-p0",
                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert _readline(proc) == b"rpyc-oneshot\n"
    host, port = _readline(proc).rstrip(b"\n").split(b"\t")
    assert host == b"127.0.0.1"
    conn = track.conn(rpyc.classic.connect(host.decode(), int(port)))
    assert conn.modules.os.getpid() == proc.pid
    conn.close()
    assert proc.wait(15) == 0  # one connection, then the server exits
    assert b"WARNING" not in proc.stderr.read()


@pytest.mark.parametrize("mode", ["threaded", "forking", "THREADED"])
def test_long_running_modes_serve_several_clients(track, mode):
    port = free_port()
    proc = track.python(CLASSIC, "-q", "-m", mode, "-p", str(port), stdin=subprocess.DEVNULL,
                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    first = track.conn(_connect_when_up(port))
    second = track.conn(rpyc.classic.connect(LOOPBACK, port))
    first.execute("x = 1")
    pids = {first.modules.os.getpid(), second.modules.os.getpid()}
    if mode == "forking":
        assert len(pids) == 2 and proc.pid not in pids
    else:
        assert pids == {proc.pid}
        assert second.eval("'x' in dir()") is False  # one namespace per connection
    first.close()
    second.close()
    assert proc.poll() is None


def test_default_port_and_loopback_binding():
    server = classic_cli.ClassicServer([])
    assert server._host() == "127.0.0.1"
    assert server._port() == 18812
    assert classic_cli.ClassicServer(["--ipv6"])._host() == "::1"
    assert classic_cli.ClassicServer(["--host", "0.0.0.0", "-p", "1234"])._host() == "0.0.0.0"
    assert classic_cli.ClassicServer(["-p", "1234"])._port() == 1234


def test_ssl_default_port(tmp_path):
    key, cert = tmp_path / "k.pem", tmp_path / "c.pem"
    key.write_text("x")
    cert.write_text("x")
    server = classic_cli.ClassicServer(["--ssl-keyfile", str(key), "--ssl-certfile", str(cert)])
    assert server._port() == 18821


def test_warns_when_reachable_off_loopback(capsys):
    assert classic_cli._is_loopback_only("127.0.0.1", False)
    assert classic_cli._is_loopback_only("localhost", False)
    assert classic_cli._is_loopback_only("127.0.0.2", False)
    assert classic_cli._is_loopback_only("::1", True)
    assert not classic_cli._is_loopback_only("0.0.0.0", False)
    assert not classic_cli._is_loopback_only("::", True)
    assert not classic_cli._is_loopback_only("192.0.2.1", False)
    # No socket is bound here: only the check the server runs before binding.
    classic_cli.ClassicServer(["--host", "0.0.0.0"])._warn_if_exposed("0.0.0.0")
    err = capsys.readouterr().err
    assert "WARNING" in err and "0.0.0.0" in err and "NO client authentication" in err
    classic_cli.ClassicServer([])._warn_if_exposed("127.0.0.1")
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("args, message", [
    (["-m", "bogus"], "invalid choice"),
    (["-p", "70000"], "out of range"),
    (["-p", "http"], "not a port"),
    (["--ssl-keyfile", __file__], "go together"),
    (["--ssl-cafile", __file__], "needs --ssl-keyfile"),
    (["--ssl-keyfile", "/no/such/file", "--ssl-certfile", __file__], "no such file"),
    (["--register", "--registry-type", "TCP"], "--registry-host is required"),
])
def test_bad_arguments(args, message):
    result = _run([CLASSIC, *args])
    assert result.returncode == 2
    assert message in result.stderr


def test_help():
    result = _run([CLASSIC, "--help"])
    assert result.returncode == 0
    for flag in ("--mode", "--port", "--host", "--ipv6", "--logfile", "--quiet", "--ssl-keyfile",
                 "--ssl-certfile", "--ssl-cafile", "--register", "--registry-type", "--registry-port",
                 "--registry-host"):
        assert flag in result.stdout


def test_stdio_mode(track):
    conn = track.conn(rpyc.classic.connect_subproc(CLASSIC))
    track.proc(conn.proc)
    conn.execute("print('stray output must not corrupt the stream')")
    assert conn.eval("6 * 7") == 42
    conn.close()
    assert conn.proc.wait(10) == 0


def test_logfile(track, tmp_path):
    log = tmp_path / "server.log"
    proc = track.python(CLASSIC, "--mode=oneshot", "-p0", "--logfile", str(log),
                        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert _readline(proc) == b"rpyc-oneshot\n"
    _, port = _readline(proc).split(b"\t")
    conn = rpyc.classic.connect(LOOPBACK, int(port))
    conn.close()
    assert proc.wait(15) == 0
    assert "server started" in log.read_text()


@pytest.mark.parametrize("kind", ["TCP", "UDP"])
def test_register_with_a_registry(track, kind):
    if kind == "TCP":
        registry = TCPRegistryServer(host=LOOPBACK, port=0, allow_listing=True)
        client = TCPRegistryClient(ip=LOOPBACK, port=registry.port, timeout=1)
    else:
        registry = UDPRegistryServer(host=LOOPBACK, port=0, allow_listing=True)
        client = UDPRegistryClient(ip=LOOPBACK, port=registry.port, timeout=1)
    registry.logger.disabled = True
    thread = __import__("threading").Thread(target=registry.start, daemon=True)
    thread.start()
    track.on_close(lambda: (registry.close(), thread.join(5)))
    port = free_port()
    track.python(CLASSIC, "-q", "-p", str(port), "--register", "--registry-type", kind.lower(),
                 "--registry-host", LOOPBACK, "--registry-port", str(registry.port),
                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert wait_until(lambda: client.discover("SLAVE") == ((LOOPBACK, port),), timeout=20)
    conn = track.conn(rpyc.connect_by_service("SLAVE", registrar=client, service=rpyc.ClassicService))
    assert conn.eval("1 + 2") == 3


# -- rpyc_registry ---------------------------------------------------------------------------------------

def _wait_registry(client, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.register(("PROBE",), 1):
            return
        time.sleep(0.1)
    raise AssertionError("the registry did not come up")


@pytest.mark.parametrize("mode", ["TCP", "UDP", "tcp"])
def test_registry_program(track, mode):
    kind = socket.SOCK_STREAM if mode.upper() == "TCP" else socket.SOCK_DGRAM
    port = free_port(kind)
    track.python(REGISTRY, "-m", mode, "--host", LOOPBACK, "-p", str(port), "-l", "-q", "-t", "1",
                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    cls = TCPRegistryClient if mode.upper() == "TCP" else UDPRegistryClient
    client = cls(ip=LOOPBACK, port=port, timeout=0.5)
    client.logger.disabled = True
    _wait_registry(client)
    assert client.register(("FOO",), 1234)
    assert client.discover("foo") == ((LOOPBACK, 1234),)
    assert set(client.list()) == {"FOO", "PROBE"}
    time.sleep(1.2)  # -t 1: pruned at the next query
    assert client.discover("FOO") == ()


def test_registry_program_listing_off_and_module_launcher(track):
    port = free_port()
    track.python("-m", "rpyc.cli.rpyc_registry", "-m", "TCP", "--host", LOOPBACK, "-p", str(port),
                 "--listing", "false", "--quiet", stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                 stderr=subprocess.DEVNULL)
    client = TCPRegistryClient(ip=LOOPBACK, port=port, timeout=0.5)
    client.logger.disabled = True
    _wait_registry(client)
    assert client.list() is None


def test_registry_bad_arguments_and_help():
    result = _run([REGISTRY, "-m", "SCTP"])
    assert result.returncode == 2 and "invalid mode" in result.stderr
    result = _run([REGISTRY, "-l", "maybe"])
    assert result.returncode == 2 and "boolean" in result.stderr
    result = _run([REGISTRY, "--help"])
    assert result.returncode == 0
    for flag in ("--mode", "--ipv6", "--port", "--logfile", "--quiet", "--timeout", "--listing"):
        assert flag in result.stdout


# -- both programs: --version, usage strings, the registry's default address ---------------------------

_LAUNCHERS = {
    "classic-bin": [CLASSIC], "classic-module": ["-m", "rpyc.cli.rpyc_classic"],
    "registry-bin": [REGISTRY], "registry-module": ["-m", "rpyc.cli.rpyc_registry"],
}


@pytest.mark.parametrize("flag", ["--version", "-v"])
@pytest.mark.parametrize("launcher", sorted(_LAUNCHERS))
def test_version(launcher, flag):
    result = _run([*_LAUNCHERS[launcher], flag])
    assert result.returncode == 0, result.stderr
    prog = "rpyc_classic" if launcher.startswith("classic") else "rpyc_registry"
    # plumbum's format (upstream's CLIs): program name, space, version.
    assert result.stdout == f"{prog} {rpyc.__version__}\n"


@pytest.mark.parametrize("program", [CLASSIC, REGISTRY])
def test_usage_names_flags_without_a_metavar(program):
    result = _run([program, "--help"])
    assert result.returncode == 0
    usage = result.stdout.split("\n\n")[0]
    for flag in ("-h", "-v", "-q"):
        assert f"[{flag}]" in usage
    if program == REGISTRY:
        assert "[-l]" in usage and "[-6]" in usage
    assert "[QUIET]" not in result.stdout and "[ALLOW_LISTING]" not in result.stdout
    assert not re.search(r"\[[A-Z_]+\]", result.stdout)  # no optional values anywhere


@pytest.mark.parametrize("args, quiet, listing", [
    ([], False, False),
    (["-q", "-l"], True, True),
    (["-l", "true", "-q", "yes"], True, True),  # upstream's spellings (plumbum switches with a value)
    (["--listing=false", "--quiet=0"], False, False),
    (["--listing", "off", "-t", "5", "-q"], True, False),
    (["-l", "1", "-m", "TCP"], False, True),
])
def test_registry_flags_accept_upstream_value_spellings(args, quiet, listing):
    opts = registry_cli.parse_args(args)
    assert (opts.quiet, opts.allow_listing) == (quiet, listing)


def test_registry_binds_loopback_by_default():
    assert registry_cli.RegistryServer([])._host() == "127.0.0.1"
    assert registry_cli.RegistryServer(["-6"])._host() == "::1"
    assert registry_cli.RegistryServer(["--host", "0.0.0.0"])._host() == "0.0.0.0"
    for mode in ("UDP", "TCP"):
        server = registry_cli.RegistryServer(["-m", mode, "-p", "0"]).make_server()
        try:
            assert server.sock.getsockname()[0] == LOOPBACK
        finally:
            server.sock.close()


def test_registry_program_default_host_warns_and_serves_loopback(track):
    port = free_port()
    proc = track.python(REGISTRY, "-m", "TCP", "-p", str(port), stdin=subprocess.DEVNULL,
                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    client = TCPRegistryClient(ip=LOOPBACK, port=port, timeout=0.5)
    client.logger.disabled = True
    _wait_registry(client)
    proc.terminate()
    _, err = proc.communicate(timeout=15)
    assert b"WARNING" in err and b"listening on 127.0.0.1 only" in err and b"--host 0.0.0.0" in err
