"""Upstream names that need more than existing (tests/interop/test_public_names.py checks that
every public upstream name exists): the Windows pipe streams import everywhere and fail
clearly when used, ``rpyc.utils.DEFAULT_CONFIG`` is the protocol's dict, the registry is
loaded by ``import rpyc``, and ``rpyc.core.async`` is the alias of ``rpyc.core.async_``."""

import importlib
import subprocess
import sys

import pytest

import rpyc
from rpyc.core import stream


@pytest.mark.parametrize("cls", [stream.NamedPipeStream, stream.Win32PipeStream])
def test_windows_pipe_streams_import_and_fail_when_used(cls):
    from rpyc.core.stream import NamedPipeStream, Win32PipeStream  # noqa: F401 (the import itself)

    assert issubclass(cls, stream.Stream)
    uses = [lambda: cls(None, None), cls.from_std, cls.create_pair]
    if cls is stream.NamedPipeStream:
        uses += [lambda: cls.create_server("rpyc-test"), lambda: cls.create_client("rpyc-test")]
        assert cls.NAMED_PIPE_PREFIX == "\\\\.\\pipe\\rpyc_"
    for use in uses:
        with pytest.raises(ImportError, match=cls.__name__ + r" \(Windows pipes through pywin32\) is not implemented"):
            use()


def test_pywin32_modules_are_missing_modules():
    for name in ("win32file", "win32pipe", "win32event"):
        module = getattr(stream, name)
        assert not module  # a MissingModule (falsy), as upstream where pywin32 is absent
        with pytest.raises(ImportError):
            module.CreateFile


def test_utils_default_config_is_the_protocols():
    from rpyc.core.protocol import DEFAULT_CONFIG
    from rpyc.utils import DEFAULT_CONFIG as utils_config

    assert utils_config is DEFAULT_CONFIG


def test_registry_reachable_after_import_rpyc():
    code = "import rpyc; print(rpyc.utils.registry.REGISTRY_PORT, rpyc.utils.registry.UDPRegistryClient.__name__)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["18811", "UDPRegistryClient"]


def test_core_async_alias():
    alias = importlib.import_module("rpyc.core.async")
    assert alias.AsyncResult is rpyc.AsyncResult and alias.AsyncResultTimeout is rpyc.AsyncResultTimeout
