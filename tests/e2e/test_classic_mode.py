"""rpyc.classic end to end, over real sockets and pipes on this machine: every way to
connect, the classic attributes, file transfer, moving objects by value, the interactive
helpers, teleportation and the local mock."""

import io
import os
import shutil
import subprocess
import sys
import textwrap
import threading

import pytest

pytest.importorskip("rpyc._core")

import rpyc  # noqa: E402
from rpyc.core.service import ClassicClient, SlaveService  # noqa: E402
from rpyc.utils import classic  # noqa: E402
from rpyc.utils.server import ThreadedServer  # noqa: E402
from rpyc.utils.teleportation import IncompatibleBytecodeError  # noqa: E402

from .classic_support import BIN, LOOPBACK, FakeSshMachine, Tracker, wait_until  # noqa: E402

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def track():
    tracker = Tracker()
    try:
        yield tracker
    finally:
        tracker.close()


@pytest.fixture
def slave_server(track):
    return track.server(ThreadedServer(SlaveService, hostname=LOOPBACK, port=0))


@pytest.fixture
def thread_conn(track):
    return track.conn(classic.connect_thread())


@pytest.fixture
def subproc_conn(track):
    conn = track.conn(classic.connect_subproc(os.path.join(BIN, "rpyc_classic.py")))
    track.proc(conn.proc)
    return conn


# -- constants and aliases -----------------------------------------------------------------

def test_module_surface():
    assert rpyc.classic is classic
    assert classic.DEFAULT_SERVER_PORT == 18812
    assert classic.DEFAULT_SERVER_SSL_PORT == 18821
    assert classic.STREAM_CHUNK == 64000
    assert classic.SlaveService is rpyc.ClassicService
    assert classic.upload_module is classic.upload_package
    for name in classic.__all__:
        assert hasattr(classic, name), name


# -- connecting ------------------------------------------------------------------------------

def _check_classic(conn):
    conn.execute("x = 5")
    assert conn.namespace["x"] == 5
    assert conn.eval("1 + x") == 6
    assert conn.builtins is conn.builtin
    assert conn.builtins.len([1, 2, 3]) == 3
    assert conn.modules["os.path"].join("a", "b") == os.path.join("a", "b")
    assert conn.modules.sys.version_info[:2] == tuple(sys.version_info[:2])
    assert "os" in conn.modules
    assert "no_such_module_hopefully" not in conn.modules
    with pytest.raises(AttributeError):
        conn.modules.no_such_module_hopefully
    return conn.modules.os.getpid()


def test_connect_thread(thread_conn):
    assert _check_classic(thread_conn) == os.getpid()


def test_connect_tcp(track, slave_server):
    conn = track.conn(classic.connect(LOOPBACK, slave_server.port))
    _check_classic(conn)
    # The classic client is itself a slave: the server side may use our modules too.
    server_side = conn.root.getconn()
    assert server_side.root.getmodule("os").getpid() == os.getpid()


def test_connect_unix(track, tmp_path):
    path = str(tmp_path / "classic.sock")
    track.server(ThreadedServer(SlaveService, socket_path=path))
    conn = track.conn(classic.unix_connect(path))
    _check_classic(conn)


def test_connect_subproc_default_and_explicit(track):
    for server_file in (None, os.path.join(BIN, "rpyc_classic.py")):
        conn = track.conn(classic.connect_subproc(server_file))
        track.proc(conn.proc)
        assert _check_classic(conn) == conn.proc.pid
        conn.modules.sys.path.append("xxx")
        assert conn.modules.sys.path.pop(-1) == "xxx"
        conn.close()
        assert conn.proc.wait(10) == 0


def test_connect_multiprocess(track):
    conn = track.conn(classic.connect_multiprocess(args={"answer": 42}))
    track.on_close(lambda: conn.proc.join(10))
    assert conn.eval("answer") == 42
    assert conn.modules.os.getpid() == conn.proc.pid


def _serve_in_thread(make_conn):
    box = {}

    def run():
        box["conn"] = make_conn()
        box["conn"].serve_all()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, box


def test_connect_stream_and_pipes(track):
    from rpyc.core.stream import PipeStream

    left, right = PipeStream.create_pair()
    thread, box = _serve_in_thread(lambda: classic.connect_stream(right))
    conn = track.conn(classic.connect_stream(left))
    assert conn.eval("6 * 7") == 42
    conn.close()
    thread.join(5)
    assert not thread.is_alive()

    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    thread, box = _serve_in_thread(
        lambda: classic.connect_pipes(os.fdopen(r1, "rb"), os.fdopen(w2, "wb")))
    conn = track.conn(classic.connect_pipes(os.fdopen(r2, "rb"), os.fdopen(w1, "wb")))
    assert conn.modules.os.getpid() == os.getpid()
    conn.close()
    thread.join(5)
    assert not thread.is_alive()


def test_connect_channel(track):
    from rpyc.core.channel import Channel
    from rpyc.core.stream import PipeStream

    left, right = PipeStream.create_pair()
    thread, _ = _serve_in_thread(lambda: classic.connect_channel(Channel(right)))
    conn = track.conn(classic.connect_channel(Channel(left)))
    assert conn.eval("2 ** 10") == 1024
    conn.close()
    thread.join(5)


# -- TLS -------------------------------------------------------------------------------------

def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _ssl_poll_fixed():
    # Known bug (reported): SocketStream.poll() selects on the descriptor only, so a TLS
    # record already buffered by OpenSSL (ssl.SSLSocket.pending()) is never served and the
    # connection hangs. The fix overrides poll() in SocketStream.
    from rpyc.core.stream import SocketStream

    return "poll" in SocketStream.__dict__


ssl_test = pytest.mark.xfail(not _ssl_poll_fixed(), strict=False,
                             reason="SocketStream.poll ignores data buffered in the TLS layer")


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    d = tmp_path_factory.mktemp("certs")
    cwd = str(d)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
             "-days", "2", "-subj", "/CN=rpyc-test-ca", cwd=cwd)
    ext = d / "ext.cnf"
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for name in ("server", "client"):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", f"/CN={name}", cwd=cwd)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", "ext.cnf", cwd=cwd)
    return d


@ssl_test
@pytest.mark.timeout(20)
def test_ssl_connect_with_client_certificate(track, certs):
    from rpyc.utils.authenticators import SSLAuthenticator

    auth = SSLAuthenticator(certs / "server.key", certs / "server.crt", ca_certs=certs / "ca.crt")
    server = track.server(ThreadedServer(SlaveService, hostname=LOOPBACK, port=0, authenticator=auth))
    conn = track.conn(classic.ssl_connect("localhost", server.port, keyfile=str(certs / "client.key"),
                                          certfile=str(certs / "client.crt"), ca_certs=str(certs / "ca.crt")))
    _check_classic(conn)
    credentials = conn.root.getconn()._config["credentials"]
    assert dict(x[0] for x in credentials["subject"])["commonName"] == "client"


@ssl_test
@pytest.mark.timeout(20)
def test_ssl_connect_without_verification(track, certs):
    from rpyc.utils.authenticators import SSLAuthenticator

    auth = SSLAuthenticator(certs / "server.key", certs / "server.crt")
    server = track.server(ThreadedServer(SlaveService, hostname=LOOPBACK, port=0, authenticator=auth))
    conn = track.conn(classic.ssl_connect(LOOPBACK, server.port))
    assert conn.eval("3 + 4") == 7


def test_ssl_connect_rejects_unknown_server(track, certs, tmp_path):
    from rpyc.utils.authenticators import SSLAuthenticator
    import ssl

    # Trust an unrelated CA: the server's certificate must be refused.
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "other.key", "-out", "other.crt",
             "-days", "2", "-subj", "/CN=other-ca", cwd=str(tmp_path))
    auth = SSLAuthenticator(certs / "server.key", certs / "server.crt")
    server = track.server(ThreadedServer(SlaveService, hostname=LOOPBACK, port=0, authenticator=auth))
    server.logger.disabled = True
    with pytest.raises(ssl.SSLError):
        classic.ssl_connect("localhost", server.port, ca_certs=str(tmp_path / "other.crt"))


# -- ssh_connect (through a stand-in tunnel) --------------------------------------------------

def test_ssh_connect_uses_and_closes_the_tunnel(track, slave_server):
    machine = FakeSshMachine()
    conn = track.conn(classic.ssh_connect(machine, slave_server.port))
    assert conn.eval("1 + 1") == 2
    tun = machine.tunnels[0]
    assert tun.dport == slave_server.port
    conn.close()
    assert tun.closed

    conn = track.conn(rpyc.ssh_connect(machine, slave_server.port))
    assert conn.root.get_service_name() == "SLAVE"
    conn.close()
    assert machine.tunnels[1].closed


# -- files ------------------------------------------------------------------------------------

def _make_tree(base):
    os.makedirs(os.path.join(base, "sub", "deeper"))
    with open(os.path.join(base, "small.txt"), "w") as f:
        f.write("hello")
    with open(os.path.join(base, "sub", "big.bin"), "wb") as f:
        f.write(os.urandom(3 * 64000 + 17))
    with open(os.path.join(base, "sub", "deeper", "empty"), "wb"):
        pass
    with open(os.path.join(base, "skip.me"), "w") as f:
        f.write("no")


def _tree(base):
    out = {}
    for dirpath, dirnames, filenames in os.walk(base):
        for name in filenames:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, base)] = f.read()
        for name in dirnames:
            out[os.path.relpath(os.path.join(dirpath, name), base) + "/"] = None
    return out


def test_upload_download_tree(subproc_conn, tmp_path):
    src = str(tmp_path / "src")
    _make_tree(src)
    remote = str(tmp_path / "remote")
    classic.upload(subproc_conn, src, remote)
    assert _tree(remote) == _tree(src)
    back = str(tmp_path / "back")
    classic.download(subproc_conn, remote, back)
    assert _tree(back) == _tree(src)

    keep = lambda name: not name.endswith(".me")  # noqa: E731
    filtered = str(tmp_path / "filtered")
    classic.upload(subproc_conn, src, filtered, filter=keep)
    expected = {k: v for k, v in _tree(src).items() if not k.endswith(".me")}
    assert _tree(filtered) == expected
    filtered_back = str(tmp_path / "filtered_back")
    classic.download(subproc_conn, src, filtered_back, filter=keep, chunk_size=1000)
    assert _tree(filtered_back) == expected


def test_upload_download_single_file(subproc_conn, tmp_path):
    src = tmp_path / "one.bin"
    src.write_bytes(b"\x00\x01" * 50000)
    classic.upload(subproc_conn, str(src), str(tmp_path / "two.bin"), chunk_size=4096)
    assert (tmp_path / "two.bin").read_bytes() == src.read_bytes()
    classic.download(subproc_conn, str(tmp_path / "two.bin"), str(tmp_path / "three.bin"))
    assert (tmp_path / "three.bin").read_bytes() == src.read_bytes()


def test_upload_download_invalid(subproc_conn, tmp_path):
    missing = str(tmp_path / "missing")
    with pytest.raises(ValueError, match="cannot upload"):
        classic.upload(subproc_conn, missing, str(tmp_path / "x"))
    classic.upload(subproc_conn, missing, str(tmp_path / "x"), ignore_invalid=True)
    with pytest.raises(ValueError, match="cannot download"):
        classic.download(subproc_conn, missing, str(tmp_path / "y"))
    classic.download(subproc_conn, missing, str(tmp_path / "y"), ignore_invalid=True)
    assert not os.path.exists(tmp_path / "x") and not os.path.exists(tmp_path / "y")


def test_upload_package_and_module(subproc_conn, tmp_path, monkeypatch):
    src = tmp_path / "src"
    pkg = src / "classic_upload_pkg"
    (pkg / "__pycache__").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from .part import VALUE\n")
    (pkg / "part.py").write_text("VALUE = 'from the package'\n")
    (pkg / "__pycache__" / "junk.pyc").write_bytes(b"junk")
    (src / "classic_upload_mod.py").write_text("def triple(x):\n    return 3 * x\n")
    monkeypatch.syspath_prepend(str(src))
    import classic_upload_mod
    import classic_upload_pkg

    dest = tmp_path / "dest"
    classic.upload_package(subproc_conn, classic_upload_pkg, str(dest / "classic_upload_pkg"))
    classic.upload_module(subproc_conn, classic_upload_mod, str(dest / "sub" / "classic_upload_mod.py"))
    assert not (dest / "classic_upload_pkg" / "__pycache__").exists()
    remote_sys = subproc_conn.modules.sys
    remote_sys.path.insert(0, str(dest))
    remote_sys.path.insert(0, str(dest / "sub"))
    assert subproc_conn.modules.classic_upload_pkg.VALUE == "from the package"
    assert subproc_conn.modules.classic_upload_mod.triple(5) == 15
    assert subproc_conn.modules.classic_upload_pkg.__file__.startswith(str(dest))
    with pytest.raises(ValueError, match="no source file"):
        classic.upload_package(subproc_conn, sys, str(dest / "sys"))


# -- by value -----------------------------------------------------------------------------------

def test_obtain_and_deliver(thread_conn):
    path_list = classic.obtain(thread_conn.modules.sys.path)
    assert type(path_list) is list and path_list == list(sys.path)
    nested = classic.obtain({"inner": thread_conn.builtins.list([1, 2])})
    assert type(nested["inner"]) is list and nested["inner"] == [1, 2]
    assert classic.obtain(123) == 123

    remote_list = classic.deliver(thread_conn, [1, "two", 3.0])
    assert isinstance(remote_list, rpyc.BaseNetref)
    assert list(remote_list) == [1, "two", 3.0]
    assert remote_list.____conn__ is thread_conn


def test_obtain_and_deliver_need_local_allow_pickle(track, slave_server):
    # A master-only client does not open itself: its config keeps allow_pickle off.
    conn = track.conn(rpyc.connect(LOOPBACK, slave_server.port, service=ClassicClient))
    # (data such as a list of str is copied by value from an rpyc-rs peer, without pickle:
    # docs/by-value.md; an object that is not data still needs pickle)
    remote_obj = conn.modules.fractions.Fraction(1, 3)
    with pytest.raises(ValueError, match="allow_pickle"):
        classic.obtain(remote_obj)
    with pytest.raises(ValueError, match="allow_pickle"):
        classic.obtain([remote_obj])
    with pytest.raises(ValueError, match="allow_pickle"):
        classic.deliver(conn, [1, 2])

    allowed = track.conn(rpyc.connect(LOOPBACK, slave_server.port, service=ClassicClient,
                                      config={"allow_pickle": True}))
    assert type(classic.obtain(allowed.modules.sys.path)) is list
    assert classic.deliver(allowed, (1, 2)) == (1, 2)


# -- interactive helpers -----------------------------------------------------------------------

def test_redirected_stdio(subproc_conn, capsys):
    subproc_conn.execute("import sys")
    original = subproc_conn.eval("sys.stdout")
    with classic.redirected_stdio(subproc_conn):
        subproc_conn.execute("print('hello from the peer')")
        subproc_conn.execute("sys.stderr.write('err from the peer\\n')")
    out, err = capsys.readouterr()
    assert "hello from the peer" in out
    assert "err from the peer" in err
    assert subproc_conn.eval("sys.stdout") == original
    subproc_conn.execute("print('not here')")
    assert "not here" not in capsys.readouterr().out


def test_pm_debugs_the_peers_last_exception(subproc_conn, capsys, monkeypatch):
    subproc_conn.execute(textwrap.dedent("""
        def failing():
            marker_local = 'look at me'
            raise KeyError('boom')
    """))
    with pytest.raises(KeyError):
        subproc_conn.namespace["failing"]()
    monkeypatch.setattr(sys, "stdin", io.StringIO("p marker_local\nq\n"))
    classic.pm(subproc_conn)
    out = capsys.readouterr().out
    assert "look at me" in out


def test_interact(subproc_conn, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO("import os\nprint('pid', os.getpid())\nprint(type(conn).__name__)\n"))
    classic.interact(subproc_conn, namespace={"extra": 1})
    out = capsys.readouterr().out
    assert f"pid {subproc_conn.proc.pid}" in out
    assert "Connection" in out


# -- teleportation -------------------------------------------------------------------------------

def _remote_pid(a):
    import os
    return a * os.getpid()


def _uses_namespace():
    return ANSWER  # noqa: F821


def _calls_other():
    return _remote_pid(1) + 1


def _kwonly(pos=1, *, scale=10, label="x"):
    return pos * scale, label


def test_teleport_function(subproc_conn):
    pid = subproc_conn.proc.pid
    remote = classic.teleport_function(subproc_conn, _remote_pid)
    assert isinstance(remote, rpyc.BaseNetref)
    assert remote(2) == 2 * pid
    assert subproc_conn.namespace["_remote_pid"] == remote
    assert classic.teleport_function(subproc_conn, _calls_other)() == pid + 1
    assert subproc_conn.teleport(_kwonly)() == (10, "x")
    assert subproc_conn.teleport(_kwonly)(2, scale=3) == (6, "x")

    subproc_conn.namespace["ANSWER"] = 42
    assert classic.teleport_function(subproc_conn, _uses_namespace)() == 42
    other_globals = subproc_conn.builtins.dict({"ANSWER": 43})
    assert classic.teleport_function(subproc_conn, _uses_namespace, other_globals)() == 43
    before = set(subproc_conn.namespace.keys())
    classic.teleport_function(subproc_conn, _kwonly, def_=False)
    assert "_kwonly" in before  # defined by the earlier conn.teleport
    with pytest.raises(TypeError, match="closure"):
        x = 1
        classic.teleport_function(subproc_conn, lambda: x)


def test_teleport_refuses_another_python(thread_conn):
    assert classic._peer_bytecode(thread_conn)[1] == tuple(sys.version_info[:2])
    thread_conn._rpyc_peer_bytecode = ("cpython-399", (3, 99))
    with pytest.raises(IncompatibleBytecodeError, match="cpython-399"):
        classic.teleport_function(thread_conn, _remote_pid)
    assert "_remote_pid" not in thread_conn.namespace


# -- the mock -------------------------------------------------------------------------------------

def test_mock_classic_connection():
    import xml.dom.minidom

    with classic.MockClassicConnection() as conn:
        assert conn.modules.sys is sys
        assert conn.modules["xml.dom.minidom"].Element is xml.dom.minidom.Element
        assert conn.builtin.open is open and conn.builtins is conn.builtin
        assert conn.eval("2 + 3") == 5
        conn.execute("y = 7")
        assert conn.namespace["y"] == 7
        assert conn.teleport(_kwonly)(3) == (30, "x")
        assert not conn.closed


def test_connect_subproc_server_exit_status_after_close(track):
    conn = track.conn(classic.connect_subproc())
    track.proc(conn.proc)
    assert wait_until(lambda: conn.eval("1") == 1)
    conn.close()
    assert conn.proc.wait(10) == 0
