"""Sanity checks of the interop harness itself and of the two interpreters it uses, and a
check on the wire (through a recording relay, tests/interop/wire_recorder.py) that no rpyc-rs
protocol extension reaches an upstream peer."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from procs import stop_group

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


# ---------------------------------------------------------------------------------------
# rpyc-rs wire extensions (rpyc.core.extensions) never reach an upstream peer
# ---------------------------------------------------------------------------------------

def _load_wire_recorder():
    path = Path(__file__).resolve().parent / "wire_recorder.py"
    spec = importlib.util.spec_from_file_location("rpyc_interop_wire_recorder", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


wire = _load_wire_recorder()
WIRE_MODES = ("default", "bind_threads")
WIRE_CLIENT_TIMEOUT = 30  # seconds for tests/peers/wire_client.py (it needs about 1 s)
WIRE_MARKER = "wire-check:end-of-workload"  # wire_client.py's last ping
OUR_FEATURES = ["by_value", "cancel", "iter_batch", "quiet_del", "root_class"]


class WireRun:
    """One run of tests/peers/wire_client.py through a recording relay, frames decoded."""

    def __init__(self, result, rec, c2s, s2c, problems):
        self.result, self.rec, self.c2s, self.s2c, self.problems = result, rec, c2s, s2c, problems

    def handlers(self, frames):
        return sorted({f.handler for f in wire.requests(frames)})


def _record_workload(interop, peer_server, client, server, mode):
    srv = peer_server(server, mode)
    python = interop.python(client)
    relay = wire.Relay(srv.port)
    try:
        proc = subprocess.Popen(
            [python, "-u", str(interop.peers / "wire_client.py"), "--port", str(relay.port),
             "--mode", mode],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            cwd=str(interop.peers), env=interop.peer_env(client), start_new_session=True)
        try:
            out, err = proc.communicate(timeout=WIRE_CLIENT_TIMEOUT)
        except subprocess.TimeoutExpired:
            stop_group(proc, wait=2)
            out, err = proc.communicate(timeout=10)
            pytest.fail("the %s wire client did not finish within %ss\n--- stderr ---\n%s"
                        % (client, WIRE_CLIENT_TIMEOUT, err.decode("utf-8", "replace")[-3000:]),
                        pytrace=False)
        finished = relay.wait_finished(5)
    finally:
        stuck = relay.close()
    assert not stuck, "relay threads still running: %s" % stuck
    err = err.decode("utf-8", "replace")
    lines = out.decode("utf-8", "replace").strip().splitlines()
    assert lines, "the %s wire client printed nothing (status %s)\n%s" % (
        client, proc.returncode, err[-3000:])
    result = json.loads(lines[-1])
    problem = interop.impl_problem(client, result["impl"], "the %s wire client" % client)
    assert problem is None, problem
    assert result["ok"] and proc.returncode == 0, "%s\n--- stderr ---\n%s" % (
        "\n".join(result["failures"]), err[-3000:])
    assert len(relay.recordings) == 1, "expected one relayed connection, got %d" % len(
        relay.recordings)
    rec = relay.recordings[0]
    assert not rec.errors, rec.errors
    assert finished, "the relayed connection did not end in both directions within 5 s"
    prefix = wire.THREAD_PREFIX_LEN if mode == "bind_threads" else 0
    c2s, c2s_problems = wire.parse_stream(rec.c2s, prefix)
    s2c, s2c_problems = wire.parse_stream(rec.s2c, prefix)
    problems = {"c2s": c2s_problems, "s2c": s2c_problems}
    return WireRun(result, rec, c2s, s2c, problems)


def _unanswered(requests, replies):
    answered = wire.answers(replies)
    return [f for f in requests if f.seq not in answered]


@pytest.mark.interop
@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", WIRE_MODES)
@pytest.mark.parametrize("client,server", [("ours", "upstream"), ("upstream", "ours")],
                         ids=["ours-upstream", "upstream-ours"])
def test_no_rpyc_rs_wire_extensions_towards_upstream(interop, peer_server, client, server, mode):
    """Every frame rpyc-rs sends an upstream 6.0.2 peer (recorded by a relay between the two)
    is plain RPyC: message types 1-3, handlers 1-20 (no HANDLE_ITER_BATCH), no hello-ack and
    nothing else naming rpyc-rs except our client's one hello ping, which upstream echoes;
    every HANDLE_DEL of the upstream peer is answered (no quiet_del). The workload
    (tests/peers/wire_client.py) would use every extension if the peer offered it."""
    run = _record_workload(interop, peer_server, client, server, mode)
    if client == "ours":
        ours_name, to_up, from_up = "c2s", run.c2s, run.s2c
    else:
        ours_name, to_up, from_up = "s2c", run.s2c, run.c2s
    up_name = "s2c" if ours_name == "c2s" else "c2s"
    assert not run.problems[up_name] and not [f for f in from_up if f.error], (
        "the recorder cannot read upstream's own frames: %s" % (
            run.problems[up_name] + [wire.describe(f) for f in from_up if f.error][:5]))

    leaks = run.problems[ours_name] + wire.violations_towards_upstream(
        to_up, hello_allowed=(client == "ours"))
    peer = "server" if client == "ours" else "client"
    assert not leaks, "rpyc-rs sent the upstream %s:\n  - %s" % (peer, "\n  - ".join(leaks))

    # the workload went through the relay, so the check above had something to check
    marker = wire.find_marker(run.c2s, WIRE_MARKER)
    assert marker is not None, "the workload's last ping is not in the recording"
    assert any(f.flag for f in to_up) and any(not f.flag for f in to_up), \
        "expected compressed and uncompressed frames towards upstream"
    assert any(f.mtype == wire.MSG_REPLY for f in to_up), "we answered no request of upstream"
    expected = {wire.HANDLE_GETATTR, wire.HANDLE_CALL, wire.HANDLE_CALLATTR, wire.HANDLE_DEL}
    expected |= {wire.HANDLE_PING} if client == "ours" else {wire.HANDLE_GETROOT}
    assert expected <= set(run.handlers(to_up)), run.handlers(to_up)
    if client == "ours":
        assert run.result["features"] == [], run.result["features"]
        assert wire.is_hello_request(to_up[0]), "our client did not start with its hello"
        echo = wire.answers(from_up).get(to_up[0].seq)
        assert echo is not None and echo.body == (wire.LABEL_VALUE, to_up[0].body[1][1][0]), \
            "upstream did not echo the hello: %s" % (echo and wire.describe(echo))

    # quiet_del is not used with upstream: every DEL upstream sent before the end of the
    # workload is answered (upstream keeps a callback per request until its answer arrives)
    if client == "ours":  # upstream's requests before its answer to the marker ping
        end = wire.answers(from_up)[marker.seq].index
    else:
        end = marker.index
    dels = wire.requests(from_up, wire.HANDLE_DEL, before=end)
    assert dels, "upstream sent no HANDLE_DEL during the workload"
    missing = _unanswered(dels, to_up)
    assert not missing, "%d of upstream's %d HANDLE_DEL requests got no answer, first: %s" % (
        len(missing), len(dels), wire.describe(missing[0]))


@pytest.mark.interop
@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", WIRE_MODES)
def test_wire_check_sees_extensions_between_rpyc_rs_peers(interop, peer_server, mode):
    """Control for the test above: the same workload between two rpyc-rs peers does show
    the extension traffic on the wire (hello-ack with the root's class, HANDLE_ITER_BATCH,
    unanswered HANDLE_DEL), and the same check reports it."""
    run = _record_workload(interop, peer_server, "ours", "ours", mode)
    for name, frames in (("c2s", run.c2s), ("s2c", run.s2c)):
        bad = run.problems[name] + [wire.describe(f) for f in frames if f.error]
        assert not bad, "%s does not decode: %s" % (name, bad[:5])
    assert run.result["features"] == OUR_FEATURES, run.result["features"]

    hello = run.c2s[0]
    assert wire.is_hello_request(hello), wire.describe(hello)
    ack = wire.answers(run.s2c).get(hello.seq)
    assert ack is not None and ack.mtype == wire.MSG_REPLY, "no answer to the hello"
    label, value = ack.body
    assert label == wire.LABEL_VALUE and value[:2] == (wire.HELLO_ACK, 1), wire.describe(ack)
    assert sorted(value[2]) == OUR_FEATURES, wire.describe(ack)
    assert len(value) == 4, "no root_class description in the hello-ack: %s" % wire.describe(ack)
    (name, _, _), methods = value[3]
    assert name.endswith("InteropService") and "exposed_add" in {m[0] for m in methods}, value[3]
    assert wire.HANDLE_ITER_BATCH in run.handlers(run.c2s), run.handlers(run.c2s)
    assert wire.HANDLE_ITER_BATCH in run.handlers(run.s2c), run.handlers(run.s2c)  # (map)

    marker = wire.find_marker(run.c2s, WIRE_MARKER)
    assert marker is not None
    dels = wire.requests(run.c2s, wire.HANDLE_DEL, before=marker.index)
    assert dels, "our client sent no HANDLE_DEL"
    assert len(_unanswered(dels, run.s2c)) == len(dels), "quiet_del: the server answered a DEL"
    end = wire.answers(run.s2c)[marker.seq].index
    dels = wire.requests(run.s2c, wire.HANDLE_DEL, before=end)
    assert dels, "our server sent no HANDLE_DEL"
    assert len(_unanswered(dels, run.c2s)) == len(dels), "quiet_del: the client answered a DEL"

    # the check of the test above fails on this traffic, in both directions
    leaks_c2s = wire.violations_towards_upstream(run.c2s, hello_allowed=True)
    leaks_s2c = wire.violations_towards_upstream(run.s2c, hello_allowed=False)
    assert any("HANDLE_ITER_BATCH" in v for v in leaks_c2s), leaks_c2s
    assert any("hello-ack" in v for v in leaks_s2c), leaks_s2c
