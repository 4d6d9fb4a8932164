"""CVE-2024-27758: a peer makes this side unpickle bytes it chose, through ``__array__``
(numpy's ``np.array(proxy)`` calls it and rpyc answered with ``pickle.loads`` of the peer's
HANDLE_PICKLE reply) or through a proxy's ``__reduce_ex__`` (``copy.copy``/``deepcopy``,
``pickle`` round trips, ``rpyc.classic.obtain``). Unpickling runs code chosen by the peer.

Upstream 6.0.1 gates ``__array__`` on the *local* ``allow_pickle``; we gate every path. With
the default config (``allow_pickle`` False here) nothing is unpickled, the peer is not even
asked for a pickle, and the caller gets a ValueError naming ``allow_pickle``. The malicious
peer (cve_2024_27758_peer.py) runs in a subprocess under upstream rpyc 6.0.2 and under ours; a
control run with ``allow_pickle=True`` shows that the payload really executes when allowed.
numpy is not required: ``proxy.__array__()`` is the call numpy makes; when numpy is importable
``np.array(proxy)`` is tried too.
"""

import copy
import json
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import pytest

import rpyc
from rpyc.utils.server import ThreadedServer

try:
    import numpy
except ImportError:  # the simulated path is the same call numpy makes
    numpy = None

PEER = Path(__file__).with_name("cve_2024_27758_peer.py")
pytestmark = pytest.mark.timeout(90)


@pytest.fixture(params=["ours", "upstream"])
def peer_python(request):
    if request.param == "ours":
        return sys.executable
    return request.getfixturevalue("upstream_python")


def _peer_env():
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _unpickled(marker):
    return os.path.exists(marker)


def _asked(marker):
    return os.path.exists(marker + ".asked")


# -- the victim is our client --------------------------------------------------------------------

@pytest.fixture
def malicious_server(peer_python, tmp_path):
    marker = str(tmp_path / "client-side-code-ran")
    proc = subprocess.Popen([peer_python, str(PEER), "server", marker], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, env=_peer_env(), cwd=str(tmp_path),
                            start_new_session=True)
    try:
        line = proc.stdout.readline().decode()
        assert line.startswith("PORT "), "malicious server did not start: %r" % line
        yield int(line.split()[1]), marker
    finally:
        proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        proc.stdout.close()


def _client_attacks(ref):
    attacks = {
        "__array__": lambda: ref.__array__(),
        "copy.copy": lambda: copy.copy(ref),
        "copy.deepcopy": lambda: copy.deepcopy(ref),
        "pickle round trip": lambda: pickle.loads(pickle.dumps(ref)),
        "classic.obtain": lambda: rpyc.classic.obtain(ref),
        "obtain inside a container": lambda: rpyc.classic.obtain([ref]),
    }
    if numpy is not None:
        attacks["numpy.array"] = lambda: numpy.array(ref)
    return attacks


def test_client_never_unpickles_server_data(malicious_server):
    port, marker = malicious_server
    with rpyc.connect("127.0.0.1", port) as conn:
        ref = conn.root.payload()
        assert "__array__" in dir(type(ref))  # the proxy offers what numpy looks for
        for name, attack in _client_attacks(ref).items():
            with pytest.raises(ValueError, match="allow_pickle") as info:
                attack()
            assert "pickling is disabled" in str(info.value), name
            assert not _asked(marker), "%s: the peer was asked for a pickle" % name
            assert not _unpickled(marker), "%s: peer data was unpickled" % name
        assert conn.root.payload() is not None  # the connection is still usable


def test_client_control_allow_pickle_runs_the_payload(malicious_server):
    """With allow_pickle=True locally the same call does unpickle: the path above is real."""
    port, marker = malicious_server
    with rpyc.connect("127.0.0.1", port, config={"allow_pickle": True}) as conn:
        with pytest.raises(Exception):
            conn.root.payload().__array__()  # open(...) returned a file, not an array
    assert _asked(marker) and _unpickled(marker)


# -- the victim is our server ---------------------------------------------------------------------

class VictimService(rpyc.Service):
    """A service that innocently converts what clients pass in."""

    def exposed_as_array(self, x):
        return x.__array__()  # what numpy.array(x) calls

    def exposed_numpy_array(self, x):
        if numpy is None:
            return "numpy not installed"
        return numpy.array(x)

    def exposed_deepcopy(self, x):
        return copy.deepcopy(x)

    def exposed_copy(self, x):
        return copy.copy(x)

    def exposed_obtain(self, x):
        return rpyc.classic.obtain(x)

    def exposed_pickle_roundtrip(self, x):
        return pickle.loads(pickle.dumps(x))


def _run_attacker(peer_python, marker, port):
    proc = subprocess.run([peer_python, str(PEER), "client", marker, str(port)],
                          capture_output=True, text=True, timeout=60, env=_peer_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture
def victim_server():
    servers = []

    def start(config=None):
        srv = ThreadedServer(VictimService, port=0, protocol_config=config or {})
        srv._start_in_thread()
        servers.append(srv)
        return srv
    yield start
    for srv in servers:
        srv.close()


def test_server_never_unpickles_client_data(peer_python, victim_server, tmp_path):
    marker = str(tmp_path / "server-side-code-ran")
    results = _run_attacker(peer_python, marker, victim_server().port)
    for name, res in results.items():
        if name == "numpy_array" and numpy is None:
            assert res == {"returned": repr("numpy not installed")}
            continue
        # (a ByValueError, the ValueError of an rpyc-rs peer that first asked for a copy by
        # value, names both refusals)
        assert res.get("error") in ("ValueError", "ByValueError"), (name, res)
        assert "allow_pickle" in res["message"], (name, res)
    time.sleep(0.2)  # nothing is in flight; a late request would show up here
    assert not _asked(marker), "the server asked the client for a pickle"
    assert not _unpickled(marker), "the server unpickled client data"


def test_server_control_allow_pickle_runs_the_payload(peer_python, victim_server, tmp_path):
    marker = str(tmp_path / "server-side-code-ran")
    results = _run_attacker(peer_python, marker, victim_server({"allow_pickle": True}).port)
    assert "error" not in results["deepcopy"], results
    assert _asked(marker) and _unpickled(marker)
