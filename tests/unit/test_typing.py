"""Static typing of the installed package: ``mypy -p rpyc`` is clean under the project's
``[tool.mypy]`` settings, ``rpyc/_core.pyi`` matches the built extension (``stubtest``), and
the public API has real types (``connect()`` gives a ``Connection``, not ``Any``; a server's
``port`` is an ``int``). CI must ``pip install mypy`` for these to run.
"""

import asyncio
import importlib.util
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import List

import pytest

import rpyc
import rpyc.aio
from rpyc.utils.server import ThreadedServer

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "pyproject.toml"

needs_mypy = pytest.mark.skipif(
    importlib.util.find_spec("mypy") is None,
    reason="mypy is not installed (pip install mypy); the typing checks need it",
)

# Checked with --strict, as a strict user's code would be: each assert_type fails if the
# expression's type regresses (to Any, to str...). Never run, only type-checked (mypy ships
# typing_extensions' stub, so it need not be installed).
_SNIPPET = '''
import socket
from typing import Any

from typing_extensions import assert_type

import rpyc
import rpyc.aio
import rpyc.aio.classic
from rpyc.utils import classic, factory, registry, server


def blocking(channel: rpyc.Channel, stream: rpyc.SocketStream, machine: Any) -> None:
    assert_type(rpyc.connect("127.0.0.1", 1), rpyc.Connection)
    assert_type(rpyc.ssl_connect("127.0.0.1", 1), rpyc.Connection)
    assert_type(rpyc.unix_connect("/tmp/s"), rpyc.Connection)
    assert_type(rpyc.ssh_connect(machine, 1), rpyc.Connection)
    assert_type(rpyc.connect_stream(stream), rpyc.Connection)
    assert_type(rpyc.connect_channel(channel), rpyc.Connection)
    assert_type(rpyc.connect_pipes(None, None), rpyc.Connection)
    assert_type(rpyc.connect_stdpipes(), rpyc.Connection)
    assert_type(rpyc.connect_subproc(["python"]), rpyc.Connection)
    assert_type(rpyc.connect_thread(), rpyc.Connection)
    assert_type(rpyc.connect_by_service("X"), rpyc.Connection)
    assert_type(factory.connect_multiprocess(), rpyc.Connection)
    assert_type(rpyc.classic.connect("127.0.0.1"), rpyc.Connection)
    assert_type(classic.ssl_connect("127.0.0.1"), rpyc.Connection)
    assert_type(classic.unix_connect("/tmp/s"), rpyc.Connection)
    assert_type(classic.ssh_connect(machine, 1), rpyc.Connection)
    assert_type(classic.connect_stream(stream), rpyc.Connection)
    assert_type(classic.connect_channel(channel), rpyc.Connection)
    assert_type(classic.connect_pipes(None, None), rpyc.Connection)
    assert_type(classic.connect_stdpipes(), rpyc.Connection)
    assert_type(classic.connect_subproc(), rpyc.Connection)
    assert_type(classic.connect_thread(), rpyc.Connection)
    assert_type(classic.connect_multiprocess(), rpyc.Connection)
    for cls in (rpyc.ThreadedServer, rpyc.ThreadPoolServer, rpyc.ForkingServer,
                rpyc.OneShotServer, server.GeventServer, server.Server):
        srv = cls(rpyc.SlaveService)
        assert_type(srv.port, int)
        assert_type(srv.host, str)
    assert_type(registry.UDPRegistryServer().port, int)
    assert_type(registry.TCPRegistryServer().port, int)
    conn = rpyc.connect("127.0.0.1", 1)
    assert_type(conn.closed, bool)
    assert_type(conn.modules, Any)  # the classic attributes are declared


async def aio(sock: socket.socket) -> None:
    assert_type(await rpyc.aio.connect("127.0.0.1", 1), rpyc.aio.Connection)
    assert_type(await rpyc.aio.ssl_connect("127.0.0.1", 1), rpyc.aio.Connection)
    assert_type(await rpyc.aio.unix_connect("/tmp/s"), rpyc.aio.Connection)
    assert_type(await rpyc.aio.connect_socket(sock), rpyc.aio.Connection)
    async with rpyc.aio.connect("127.0.0.1", 1) as conn:
        assert_type(conn, rpyc.aio.Connection)
    assert_type(await rpyc.aio.classic.connect("127.0.0.1"), rpyc.aio.Connection)
    async with rpyc.aio.classic.unix_connect("/tmp/s") as cconn:
        assert_type(cconn, rpyc.aio.Connection)
    srv = await rpyc.aio.serve(rpyc.VoidService)
    assert_type(srv.port, int)
'''


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory to run the checkers in (not the checkout: mypy would find ./pyproject.toml
    and write its cache there), with one mypy cache shared by the checks of this module.
    The checkers must see the package these tests import."""
    path = tmp_path_factory.mktemp("typing")
    seen = subprocess.run([sys.executable, "-c", "import rpyc; print(rpyc.__file__)"], cwd=path,
                          capture_output=True, text=True, timeout=60)
    if seen.returncode != 0 or Path(seen.stdout.strip()) != Path(rpyc.__file__):
        pytest.fail(f"the tests import {rpyc.__file__} but a fresh interpreter imports "
                    f"{seen.stdout.strip() or seen.stderr.strip()}; install this checkout "
                    f"(pip install . or maturin develop) so that mypy checks the same package")
    return path


def _check(work: Path, *args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", *args], cwd=work, capture_output=True, text=True,
                          timeout=280)
    if proc.returncode != 0:
        pytest.fail(f"`python -m {' '.join(args)}` failed (exit {proc.returncode}):\n"
                    f"{proc.stdout}{proc.stderr}", pytrace=False)


def _mypy(work: Path, *args: str) -> List[str]:
    return ["mypy", "--config-file", str(CONFIG), "--cache-dir", str(work / "mypy-cache"), *args]


@needs_mypy
@pytest.mark.timeout(300)
def test_mypy_package_is_clean(work: Path) -> None:
    _check(work, *_mypy(work, "-p", "rpyc"))


@needs_mypy
@pytest.mark.timeout(300)
def test_stub_matches_the_extension(work: Path) -> None:
    _check(work, "mypy.stubtest", "rpyc._core", "--mypy-config-file", str(CONFIG))


@needs_mypy
@pytest.mark.timeout(300)
def test_public_api_types(work: Path) -> None:
    (work / "rpyc_typing_snippet.py").write_text(textwrap.dedent(_SNIPPET))
    _check(work, *_mypy(work, "--strict", "rpyc_typing_snippet.py"))


def test_typing_markers_are_installed() -> None:
    # PEP 561: without py.typed, mypy ignores an installed package's annotations (and its
    # .pyi next to the extension)
    package = Path(rpyc.__file__).parent
    assert (package / "py.typed").is_file()
    assert (package / "_core.pyi").is_file()


def test_all_lists_the_public_names() -> None:
    # A name missing from __all__ is invisible to type checkers that refuse implicit
    # re-exports (mypy --strict), though `rpyc.name` works at run time.
    for name in rpyc.__all__:
        assert hasattr(rpyc, name), name
    public = {name for name, value in vars(rpyc).items()
              if not name.startswith("_") and not isinstance(value, ModuleType)}
    assert public <= set(rpyc.__all__), sorted(public - set(rpyc.__all__))


# -- a server's port is an int (upstream kept a unix socket's path in it) -------------------

def test_tcp_server_port_is_an_int() -> None:
    server = ThreadedServer(rpyc.VoidService, port=0)
    try:
        assert type(server.port) is int and server.port > 0
        assert server.socket_path is None
    finally:
        server.close()


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no unix sockets on this platform")
def test_unix_socket_server_port_is_an_int(tmp_path: Path) -> None:
    path = str(tmp_path / "s.sock")
    server = ThreadedServer(rpyc.VoidService, socket_path=path)
    try:
        server._listen()  # (where the port of a TCP server is read again)
        assert server.port == 0 and type(server.port) is int
        assert server.socket_path == path and os.path.exists(path)
    finally:
        server.close()


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no unix sockets on this platform")
def test_aio_unix_socket_server_port_is_an_int(tmp_path: Path) -> None:
    path = str(tmp_path / "s.sock")

    async def main() -> None:
        server = await rpyc.aio.serve(rpyc.VoidService, socket_path=path)
        try:
            assert server.port == 0 and type(server.port) is int
            assert server.socket_path == path and path in repr(server)
        finally:
            server.close()
            await server.wait_closed()

    asyncio.run(main())
