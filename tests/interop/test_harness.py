"""Sanity checks of the interop harness itself and of the two interpreters it uses."""

import json
import subprocess
import sys

import pytest

PROBE = ("import json, importlib.util, rpyc; print(json.dumps({'version': rpyc.__version__, "
         "'file': rpyc.__file__, 'native': importlib.util.find_spec('rpyc._core') is not None}))")


def _probe(interop, python, role):
    proc = subprocess.run([python, "-c", PROBE], capture_output=True, text=True, timeout=60,
                          cwd=str(interop.peers), env=interop.peer_env(role))
    if proc.returncode != 0:
        pytest.fail("%s cannot import rpyc:\n%s" % (python, proc.stderr[-3000:]), pytrace=False)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_catalog_matches_client_script(interop):
    """client.py --list (no rpyc import needed) names exactly the catalog's scenarios."""
    proc = subprocess.run([sys.executable, str(interop.peers / "client.py"), "--list"],
                          capture_output=True, text=True, timeout=60, cwd=str(interop.peers))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [s.name for s in interop.catalog.SCENARIOS]
    for s in interop.catalog.SCENARIOS:
        assert s.modes and set(s.modes) <= set(interop.catalog.MODES), s


def test_upstream_interpreter_is_upstream(interop, upstream_python):
    impl = _probe(interop, upstream_python, "upstream")
    assert interop.impl_problem("upstream", impl, "upstream python") is None, impl


def test_ours_interpreter_is_ours(interop, ours_python):
    """The interpreter for "ours" imports rpyc-rs (rpyc with the native rpyc._core)."""
    impl = _probe(interop, ours_python, "ours")
    problem = interop.impl_problem("ours", impl, "ours python %s" % ours_python)
    if problem:
        pytest.fail(problem, pytrace=False)


def test_no_rpyc_rs_wire_extensions_towards_upstream():
    pytest.skip("rpyc-rs defines no wire extensions yet; nothing can leak to an upstream peer")
