"""By value in a process where numpy cannot be imported (docs/by-value.md: numpy is
optional): containers travel by value, ``obtain`` needs no pickle, a buffer from the
standard library arrives as a memoryview, and nothing imports numpy."""

import subprocess
import sys
import textwrap

import pytest

import rpyc

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


RECEIVER = textwrap.dedent(
    r'''
    import sys
    sys.modules["numpy"] = None  # "import numpy" raises ImportError from here on
    import rpyc
    c = rpyc.connect("127.0.0.1", int(sys.argv[1]))
    for _ in range(100):
        if "by_value" in c._peer_features:
            break
        c.ping()
    got = c.root.scalars()
    print(repr([(type(v).__name__, v) for v in got]))
    c.close()
    '''
)


class ScalarService(rpyc.Service):
    @rpyc.returns_by_value
    def exposed_scalars(self):
        import numpy as np

        return [np.float64(1.5), np.int32(-7), np.uint8(200), np.bool_(True), np.complex64(1 - 2j),
                np.float16(0.25), np.bytes_(b"ab"), np.str_("h\u00e9"), np.array(3).astype(">i2")[()]]


def test_numpy_scalars_arrive_as_python_values_without_numpy(harness):
    pytest.importorskip("numpy")
    srv = harness.server(ScalarService)
    proc = subprocess.run([sys.executable, "-c", RECEIVER, str(srv.port)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == repr([
        ("float", 1.5), ("int", -7), ("int", 200), ("bool", True), ("complex", 1 - 2j), ("float", 0.25),
        ("bytes", b"ab"), ("str", "h\u00e9"), ("int", 3),
    ])
