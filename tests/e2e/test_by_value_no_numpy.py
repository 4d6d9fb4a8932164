"""By value in a process where numpy cannot be imported (docs/by-value.md: numpy is
optional): containers travel by value, ``obtain`` needs no pickle, a buffer from the
standard library arrives as a memoryview, and nothing imports numpy."""

import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    r'''
    import array, sys, time
    sys.modules["numpy"] = None  # "import numpy" raises ImportError from here on
    import rpyc
    from rpyc.utils.classic import obtain
    from rpyc.utils.server import ThreadedServer
    from rpyc.core.netref import BaseNetref

    class Svc(rpyc.Service):
        @rpyc.returns_by_value
        def exposed_data(self):
            return {"a": [1, 2, (3, {4})], "b": b"x"}

        def exposed_plain(self):
            return [{"k": "v"}]

        def exposed_buffer(self):
            return rpyc.by_value(array.array("d", [1.5, 2.5]))

        def exposed_kind(self, value):
            return type(value).__name__

    srv = ThreadedServer(Svc, port=0, hostname="127.0.0.1")
    srv._start_in_thread()
    try:
        c = rpyc.connect("127.0.0.1", srv.port, config={"by_value_types": (set,)})
        deadline = time.monotonic() + 5
        while "by_value" not in c._peer_features and time.monotonic() < deadline:
            c.ping()
        assert "by_value" in c._peer_features
        assert c.root.data() == {"a": [1, 2, (3, {4})], "b": b"x"}
        proxy = c.root.plain()
        assert isinstance(proxy, BaseNetref)
        assert obtain(proxy) == [{"k": "v"}]
        buf = c.root.buffer()
        assert type(buf) is memoryview and buf.tolist() == [1.5, 2.5], buf
        assert c.root.kind({1, 2}) == "set"
        assert c.root.kind(rpyc.by_value([1])) == "list"
        assert sys.modules.get("numpy") is None
        c.close()
    finally:
        srv.close()
    print("OK")
    '''
)


def test_by_value_without_numpy():
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("OK"), proc.stdout + proc.stderr


def test_containers_by_value_never_import_numpy():
    # numpy may be installed here: sending and receiving containers must not import it
    script = SCRIPT.replace('sys.modules["numpy"] = None', "pass").replace(
        'assert sys.modules.get("numpy") is None', 'assert "numpy" not in sys.modules, "numpy was imported"'
    )
    # (no buffer: an array arriving would import numpy, as it should)
    script = "\n".join(line for line in script.splitlines() if "buf" not in line)
    assert "c.root.buffer()" not in script
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("OK"), proc.stdout + proc.stderr
