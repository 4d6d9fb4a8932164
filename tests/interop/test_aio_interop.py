"""rpyc.aio (asyncio-native RPyC, ours) against upstream rpyc 6.0.2 and against our blocking
implementation, in both directions. Every peer is a subprocess on 127.0.0.1 with bounded
waits, killed (its process group) at teardown; the pytest process imports no rpyc.

Peers: tests/peers/aio_server.py (``rpyc.aio.serve``, ours), tests/peers/aio_client.py (an
``rpyc.aio`` client, ours), tests/peers/aio_sync_client.py (a blocking client, run by
upstream 6.0.2 or ours), plus tests/peers/server.py and client.py of the interop suite.

1. Blocking clients (upstream 6.0.2 first, and ours) call an ``rpyc.aio`` server: plain,
   inline and ``async def`` handlers, async handlers awaiting callbacks the client passed
   (the blocking client serves them while it waits; 30 at once), remote exceptions,
   iteration, context managers, 1000 sequential calls, threads and connections at once (a
   rendezvous handler proves the loop serves them concurrently), objects coming back as
   themselves, async methods, pipelined ``rpyc.async_`` calls, timeouts, 8 MiB frames, netref
   lifetimes both ways, a ticker calling back from a background task (BgServingThread),
   closing mid-call, a busy executor, classic mode. The whole interop catalog
   (tests/peers/client.py) also runs against server.py's service served by ``rpyc.aio``. A
   recording relay shows async handlers are invisible on the wire (plain RPyC 6 frames to
   upstream, plain values as answers, never a reference to a coroutine).
2. An ``rpyc.aio`` client calls upstream's ``ThreadedServer``: calls and attribute chains,
   callbacks into its ``async def`` functions, iteration, exceptions, context managers,
   ``asyncio.gather`` of 50 calls on one connection, netref lifetimes, 8 MiB frames, a server
   thread calling back unasked, classic mode (``await conn.modules.os.getpid()`` is the
   server's pid, eval, execute, teleport), and cancellation: ``wait_for``/``task.cancel()``
   end the await at once, the late answer is dropped, later calls get their own answers
   (the relay shows upstream did answer and no HANDLE_CANCEL reached it).
3. The same client against our blocking ``ThreadedServer`` and our ``rpyc.aio`` server,
   where a cancelled call's ``async def`` handler gets CancelledError within 100 ms (also
   down a chain: the handler awaiting the client's callback cancels that callback).
4. Blocking (ours, upstream) and async clients on one ``rpyc.aio`` server at the same time.

A test that fails against the rpyc.aio server has the server's stacks dumped (SIGUSR1) into
its report and the server replaced for the next test (it may be wedged).
"""

import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import wire_recorder as wire  # tests/interop/wire_recorder.py
from procs import stop_group

pytestmark = [pytest.mark.interop, pytest.mark.timeout(180)]

PEERS = Path(__file__).resolve().parent.parent / "peers"
AIO_SERVER = PEERS / "aio_server.py"
AIO_CLIENT = PEERS / "aio_client.py"
SYNC_CLIENT = PEERS / "aio_sync_client.py"
CLIENT_TIMEOUT = 60.0  # per scenario, inside the client; the process gets 20 s more
OUR_FEATURES = ["by_value", "cancel", "iter_batch", "quiet_del", "root_class"]
HANDLE_CANCEL = 65


def _tail(text, limit=4000):
    return text if len(text) <= limit else "...\n" + text[-limit:]


# ---------------------------------------------------------------------------------------
# the rpyc.aio server (ours), one per mode, restarted if a test stopped it
# ---------------------------------------------------------------------------------------

@pytest.fixture
def aio_servers(interop):
    """Factory: aio_servers(mode="interop"|"classic"|"catalog") -> tests/peers/aio_server.py
    under our interpreter, running (a PeerServer of tests/conftest.py, reused)."""
    def get(mode="interop"):
        return interop.server("ours", mode, script=AIO_SERVER.name)
    return get


def is_aio_server(server):
    return getattr(server, "script", None) == AIO_SERVER.name


def dump_stacks(server):
    """Have the rpyc.aio server write the stacks of its threads to its stderr (SIGUSR1):
    shows where a wedged server's loop is."""
    if server.alive() and hasattr(signal, "SIGUSR1"):
        try:
            os.kill(server.pid, signal.SIGUSR1)
        except OSError:
            return
        time.sleep(0.5)


# ---------------------------------------------------------------------------------------
# running clients
# ---------------------------------------------------------------------------------------

class ClientRun:
    def __init__(self, role, cmd, proc):
        self.role, self.cmd, self.proc = role, cmd, proc
        self.started = time.monotonic()
        self.out = self.err = ""
        self.timed_out = False
        self.impl = None
        self.results = {}
        self.seconds = None

    def finish(self, timeout):
        try:
            out, err = self.proc.communicate(timeout=max(0.1, timeout))
        except subprocess.TimeoutExpired:
            self.timed_out = True
            stop_group(self.proc, wait=2)
            out, err = self.proc.communicate(timeout=10)
        finally:
            if self.proc.poll() is None:
                stop_group(self.proc, wait=2)
        self.seconds = time.monotonic() - self.started
        self.out = out.decode("utf-8", "replace")
        self.err = err.decode("utf-8", "replace")
        for line in self.out.splitlines():
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict) and "impl" in obj:
                self.impl = obj["impl"]
            elif isinstance(obj, dict) and "scenario" in obj:
                self.results[obj["scenario"]] = obj
        return self


def start_client(interop, role, script, port, scenarios, *extra, timeout=CLIENT_TIMEOUT):
    """Start a client peer (``role`` "ours" or "upstream") running ``scenarios``; each
    scenario is bounded by ``timeout`` seconds inside the client."""
    python = interop.python(role)
    cmd = [python, "-u", str(script), "--host", "127.0.0.1", "--port", str(port),
           "--timeout", str(timeout)]
    for name in scenarios:
        cmd += ["--scenario", name]
    cmd += [str(x) for x in extra]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=str(PEERS), env=interop.peer_env(role),
                            start_new_session=True)
    return ClientRun(role, cmd, proc)


def problems_of(interop, run, scenarios):
    problems = []
    if run.impl is None:
        problems.append("the %s client did not start (status %s)" % (run.role, run.proc.returncode))
    else:
        problem = interop.impl_problem(run.role, run.impl, "the %s client" % run.role)
        if problem:
            problems.append(problem)
    if run.timed_out:
        problems.append("the client was killed after %.1f s" % run.seconds)
    for name in scenarios:
        result = run.results.get(name)
        if result is None:
            if run.impl is not None:
                problems.append("scenario %s: no result (client status %s)"
                                % (name, run.proc.returncode))
        elif not result["ok"]:
            problems.append("scenario %s failed:\n  - %s"
                            % (name, "\n  - ".join(result["failures"] or ["(no detail)"])))
    return problems


def report(interop, run, scenarios, server=None, offset=0, what=""):
    """Fail the test with everything known if ``run`` did not pass ``scenarios``."""
    problems = problems_of(interop, run, scenarios)
    if server is not None and not server.alive():
        problems.append("the server died (status %s)" % server.proc.returncode)
    if problems:
        lines = ["%s: %s client, %s" % (what, run.role, " ".join(run.cmd[2:]))] + problems
        infos = {n: r.get("info") for n, r in run.results.items() if r.get("info")}
        if infos:
            lines.append("info: %s" % json.dumps(infos))
        if run.err.strip():
            lines.append("--- client stderr ---\n" + _tail(run.err))
        if server is not None:
            if is_aio_server(server):
                dump_stacks(server)
            err = server.stderr_since(offset)
            if err.strip():
                lines.append("--- server stderr ---\n" + _tail(err))
            if is_aio_server(server):
                # it may be wedged: the next test gets a fresh one
                server.stop()
                lines.append("(the rpyc.aio server was stopped; the next test starts another)")
        pytest.fail("\n".join(lines), pytrace=False)
    return {n: run.results[n] for n in scenarios}


def run_client(interop, role, script, port, scenarios, *extra, server=None, what="",
               timeout=CLIENT_TIMEOUT):
    offset = server.err_size() if server is not None else 0
    run = start_client(interop, role, script, port, scenarios, *extra, timeout=timeout)
    run.finish(timeout * len(scenarios) + 20)
    results = report(interop, run, scenarios, server, offset, what)
    return results, run


def run_relayed(interop, role, script, server, offset, scenarios, *extra, what=""):
    """Run a client through a recording relay (tests/interop/wire_recorder.py) to server;
    fail the test as ``report`` does if it did not pass, or if the relay did not see every
    connection end in both directions. Returns the relay (its recordings)."""
    relay = wire.Relay(server.port)
    try:
        run = start_client(interop, role, script, relay.port, scenarios, *extra)
        run.finish(CLIENT_TIMEOUT * len(scenarios) + 20)
        finished = relay.wait_finished(5)
    finally:
        stuck = relay.close()
    report(interop, run, scenarios, server, offset, what)
    assert not stuck, "relay threads still running: %s" % stuck
    assert finished, "the relayed connections did not end in both directions within 5 s"
    return relay


def assert_quiet_server(server, offset, what):
    """The rpyc.aio server logged no error (its logger writes to stderr) during the test."""
    err = server.stderr_since(offset, limit=None)
    bad = [line for line in err.splitlines() if "Traceback" in line or " ERROR " in line]
    assert not bad, "the rpyc.aio server logged errors during %s:\n%s" % (what, _tail(err))


# ---------------------------------------------------------------------------------------
# 1. blocking clients (upstream 6.0.2, and ours) -> rpyc.aio server
# ---------------------------------------------------------------------------------------

SYNC_SCENARIOS = ["calls", "callbacks", "exceptions", "iteration", "context_manager",
                  "sequential", "threads", "identity", "async_objects", "pipelined", "timeouts",
                  "big", "netref_churn", "bg_serving", "close_midway", "busy_executor",
                  "block_callbacks"]
# a scenario that may wedge the server (a known bug) is bounded more tightly
SCENARIO_TIMEOUTS = {"identity": 15}


@pytest.mark.parametrize("scenario", SYNC_SCENARIOS)
@pytest.mark.parametrize("client", ["upstream", "ours"])
def test_blocking_client_calls_aio_server(interop, aio_servers, client, scenario):
    """A blocking client (upstream 6.0.2 first) against ``rpyc.aio.serve``: see
    tests/peers/aio_sync_client.py for what each scenario checks. ``identity``: an
    ``async def`` (or plain def) handler returning the client's own object (its argument,
    or what the client's callback returned) gives the client that object back."""
    server = aio_servers("interop")
    offset = server.err_size()
    results, _ = run_client(interop, client, SYNC_CLIENT, server.port, [scenario],
                            "--tag", uuid.uuid4().hex, server=server,
                            what="%s blocking client -> rpyc.aio server" % client,
                            timeout=SCENARIO_TIMEOUTS.get(scenario, CLIENT_TIMEOUT))
    if scenario == "sequential":
        info = results[scenario]["info"]
        assert info["calls"] == 1000 and info["seconds"] < 30, info
    assert_quiet_server(server, offset, scenario)


@pytest.mark.parametrize("client", ["upstream", "ours"])
def test_blocking_classic_client_calls_aio_classic_server(interop, aio_servers, client):
    """``rpyc.classic.connect`` (upstream, and ours) to ``rpyc.aio.serve(SlaveService)``:
    eval, execute, modules (the server's pid), teleport."""
    server = aio_servers("classic")
    offset = server.err_size()
    run_client(interop, client, SYNC_CLIENT, server.port, ["classic"], "--pid", server.pid,
               server=server, what="%s classic client -> rpyc.aio classic server" % client)
    assert_quiet_server(server, offset, "classic")


def _catalog_scenarios():
    import importlib.util as iu
    spec = iu.spec_from_file_location("rpyc_aio_interop_catalog", PEERS / "catalog.py")
    module = iu.module_from_spec(spec)
    spec.loader.exec_module(module)
    return [sc for sc in module.SCENARIOS if "default" in sc.modes]


CATALOG = _catalog_scenarios()


@pytest.mark.parametrize("scenario", CATALOG, ids=[sc.name for sc in CATALOG])
@pytest.mark.parametrize("client", ["upstream", "ours"])
def test_catalog_client_calls_aio_server(interop, aio_servers, client, scenario):
    """The interop catalog (tests/peers/client.py, the scenarios tests/interop/test_scenarios.py
    runs against ThreadedServers) run by a blocking client against tests/peers/server.py's
    ``InteropService`` served by ``rpyc.aio.serve`` (aio_server.py --mode catalog: the
    handlers that use the client's objects await them). An rpyc.aio server must be a drop-in
    server for every client, upstream's first."""
    server = aio_servers("catalog")
    offset = server.err_size()
    res = interop.run_client(client, server.port, "default", [scenario.name], scenario.timeout)
    problems = []
    result = res.results.get(scenario.name)
    if res.impl is None:
        problems.append("the %s client did not start (status %s)" % (client, res.returncode))
    else:
        problem = interop.impl_problem(client, res.impl, "the %s client" % client)
        if problem:
            problems.append(problem)
    if res.timed_out or "Timeout (0:" in res.stderr:
        problems.append("the client hit its timeout (%ss)" % scenario.timeout)
    if result is None:
        problems.append("the client printed no result (status %s)" % res.returncode)
    elif not result["ok"]:
        problems.append("scenario failed:\n  - " + "\n  - ".join(
            (result.get("detail") or {}).get("failures") or ["(no detail)"]))
    if not server.alive():
        problems.append("the rpyc.aio server died (status %s)" % server.proc.returncode)
    if problems:
        lines = ["%s blocking client -> rpyc.aio server (catalog), scenario %s (%s)"
                 % (client, scenario.name, scenario.doc)] + problems
        if res.stderr.strip():
            lines.append("--- client stderr ---\n" + _tail(res.stderr))
        dump_stacks(server)
        err = server.stderr_since(offset)
        if err.strip():
            lines.append("--- server stderr ---\n" + _tail(err))
        server.stop()  # it may be wedged: the next test gets a fresh one
        pytest.fail("\n".join(lines), pytrace=False)
    assert_quiet_server(server, offset, scenario.name)


_CLOSED_ERRORS = ("BrokenPipeError", "ConnectionResetError")


def _parse_recording(rec):
    """Both directions of a relayed connection, decoded: ``(c2s, c2s_problems, s2c,
    s2c_problems)``. A peer that closes while the other still sends (answers to its last
    requests, as any RPyC peer may) makes the relay's write towards it fail: that is no
    problem, nor is the partial frame it leaves at the end of that direction's recording."""
    unexpected = [e for e in rec.errors if not any(name in e for name in _CLOSED_ERRORS)]
    assert not unexpected, rec.errors
    out = []
    for direction in ("c2s", "s2c"):
        frames, problems = wire.parse_stream(getattr(rec, direction))
        if any(e.startswith(direction + ":") for e in rec.errors):
            problems = [p for p in problems if not p.startswith("stream ends inside")]
        out += [frames, problems]
    return out


def _ref_names(box, depth=0):
    """The class names in the id_packs of every reference inside a boxed value."""
    if depth > 100 or type(box) is not tuple or len(box) != 2:
        return
    label, value = box
    if label in (wire.LABEL_LOCAL_REF, wire.LABEL_REMOTE_REF) and type(value) is tuple:
        if value and type(value[0]) is str:
            yield value[0]
    elif label == wire.LABEL_TUPLE and type(value) is tuple:
        for item in value:
            yield from _ref_names(item, depth + 1)


def test_async_handlers_are_invisible_on_the_wire(interop, aio_servers, upstream_python):
    """Recorded between an upstream 6.0.2 client and the rpyc.aio server: every frame the
    server sends is plain RPyC 6 (message types 1-3, handlers 1-20, no rpyc-rs hello or
    extension), every request of the client is answered, the answers of ``async def``
    handlers are plain values (no reference to a coroutine, task or future ever travels),
    and the server's own requests (callbacks, ``ask_client``) are ordinary CALL/CALLATTR."""
    server = aio_servers("interop")
    offset = server.err_size()
    scenarios = ["calls", "callbacks", "exceptions", "iteration", "context_manager"]
    relay = run_relayed(interop, "upstream", SYNC_CLIENT, server, offset, scenarios,
                        what="upstream client -> relay -> rpyc.aio server")
    assert len(relay.recordings) == len(scenarios), len(relay.recordings)
    handlers_from_server = set()
    for rec in relay.recordings:
        c2s, c2s_problems, s2c, s2c_problems = _parse_recording(rec)
        assert not c2s_problems and not [f for f in c2s if f.error], (
            "cannot read upstream's frames: %s"
            % (c2s_problems + [wire.describe(f) for f in c2s if f.error])[:5])
        leaks = s2c_problems + wire.violations_towards_upstream(s2c, hello_allowed=False)
        assert not leaks, "the rpyc.aio server sent upstream:\n  - " + "\n  - ".join(leaks[:20])
        for f in s2c:
            if f.mtype == wire.MSG_REQUEST:
                handlers_from_server.add(f.handler)
                names = list(_ref_names(f.body[1]))
            elif f.mtype == wire.MSG_REPLY:
                names = list(_ref_names(f.body))
            else:  # an exception answer is not boxed (vinegar)
                names = []
            odd = [n for n in names if any(w in n.lower() for w in ("coroutine", "task", "future"))]
            assert not odd, "a reference to %s went to upstream: %s" % (odd, wire.describe(f))
        # every request of upstream before its close is answered
        answered = wire.answers(s2c)
        unanswered = [f for f in wire.requests(c2s) if f.seq not in answered
                      and f.handler not in (2,)]  # HANDLE_CLOSE gets no answer
        assert not unanswered, "unanswered requests of upstream: %s" % [
            wire.describe(f) for f in unanswered[:5]]
    assert handlers_from_server <= wire.UPSTREAM_HANDLERS
    assert {wire.HANDLE_CALL, wire.HANDLE_CALLATTR} <= handlers_from_server, handlers_from_server


# ---------------------------------------------------------------------------------------
# 2/3. rpyc.aio client -> ThreadedServer (upstream, ours) and -> rpyc.aio server (ours)
# ---------------------------------------------------------------------------------------

AIO_SCENARIOS = ["calls", "callbacks", "iteration", "exceptions", "context_manager", "identity",
                 "gather", "cancel", "ticker", "big", "netref_churn", "close_pending"]


@pytest.mark.parametrize("scenario", AIO_SCENARIOS)
@pytest.mark.parametrize("server_role", ["upstream", "ours"])
def test_aio_client_calls_threaded_server(interop, peer_server, server_role, scenario):
    """``rpyc.aio.connect`` to a ``ThreadedServer`` (tests/peers/server.py, upstream 6.0.2
    first): see tests/peers/aio_client.py for what each scenario checks. Against upstream
    nothing is negotiated; against ours the rpyc-rs features are."""
    srv = peer_server(server_role)
    target = "upstream" if server_role == "upstream" else "ours-sync"
    offset = srv.err_size()
    results, _ = run_client(interop, "ours", AIO_CLIENT, srv.port, [scenario], "--target", target,
                            server=srv, what="rpyc.aio client -> %s ThreadedServer" % server_role,
                            timeout=SCENARIO_TIMEOUTS.get(scenario, CLIENT_TIMEOUT))
    if scenario == "calls":
        want = [] if server_role == "upstream" else OUR_FEATURES
        assert results["calls"]["info"]["features"] == want
    if srv.alive() and srv.stderr_since(offset).strip():
        # (a ThreadedServer prints tracebacks of failed connections to stderr)
        assert "Traceback" not in srv.stderr_since(offset), srv.stderr_since(offset)


@pytest.mark.parametrize("scenario", AIO_SCENARIOS + ["cancel_reaches_handler"])
def test_aio_client_calls_aio_server(interop, aio_servers, scenario):
    """``rpyc.aio.connect`` to ``rpyc.aio.serve``; ``cancel_reaches_handler``: a call cancelled
    by ``asyncio.wait_for`` or ``task.cancel()`` makes the server's ``async def`` handler get
    CancelledError within 100 ms (the server records when, a second call reports it), a
    sibling handler goes on, and the cancellation follows a chain (the handler awaiting the
    client's callback: the callback's task is cancelled too)."""
    server = aio_servers("interop")
    offset = server.err_size()
    results, _ = run_client(interop, "ours", AIO_CLIENT, server.port, [scenario],
                            "--target", "ours-aio", server=server,
                            what="rpyc.aio client -> rpyc.aio server",
                            timeout=SCENARIO_TIMEOUTS.get(scenario, CLIENT_TIMEOUT))
    if scenario == "calls":
        assert results["calls"]["info"]["features"] == OUR_FEATURES
    assert_quiet_server(server, offset, scenario)


@pytest.mark.parametrize("server_kind", ["upstream", "ours-sync", "ours-aio"])
def test_aio_classic_client(interop, peer_server, aio_servers, server_kind):
    """``rpyc.aio.classic.connect`` to a classic server: upstream's (``ThreadedServer`` of
    ``SlaveService``, as ``rpyc_classic`` runs), ours, and ``rpyc.aio.serve(SlaveService)``:
    ``await conn.modules.os.getpid()`` is the server's pid, eval, execute, namespace,
    teleport (the teleported function runs in the server), gather of 50 evals."""
    if server_kind == "ours-aio":
        srv = aio_servers("classic")
        pid = srv.pid
    else:
        srv = peer_server("upstream" if server_kind == "upstream" else "ours", "classic")
        pid = srv.proc.pid
    target = "ours-aio" if server_kind == "ours-aio" else (
        "upstream" if server_kind == "upstream" else "ours-sync")
    run_client(interop, "ours", AIO_CLIENT, srv.port, ["classic"], "--target", target,
               "--pid", pid, server=srv, what="rpyc.aio classic client -> %s" % server_kind)


def test_aio_client_cancellation_against_upstream_on_the_wire(interop, peer_server):
    """Recorded between the rpyc.aio client and upstream's ThreadedServer during the
    ``cancel`` and ``callbacks`` scenarios: the client sends upstream only plain RPyC 6 (its
    one hello ping aside, which upstream echoes): no HANDLE_CANCEL, no HANDLE_ITER_BATCH;
    upstream did answer every cancelled ``sleep_add`` (the late answers reached the client,
    which dropped them: the scenario checks every later call got its own answer)."""
    srv = peer_server("upstream")
    offset = srv.err_size()
    scenarios = ["cancel", "callbacks", "iteration"]
    relay = run_relayed(interop, "ours", AIO_CLIENT, srv, offset, scenarios, "--target", "upstream",
                        what="rpyc.aio client -> relay -> upstream server")
    # cancel: 2 connections; callbacks: 1; iteration: 1
    assert len(relay.recordings) == 4, len(relay.recordings)
    sleep_adds = 0
    for rec in relay.recordings:
        c2s, c2s_problems, s2c, s2c_problems = _parse_recording(rec)
        assert not s2c_problems and not [f for f in s2c if f.error], s2c_problems
        leaks = c2s_problems + wire.violations_towards_upstream(c2s, hello_allowed=True)
        assert not leaks, "the rpyc.aio client sent upstream:\n  - " + "\n  - ".join(leaks[:20])
        assert HANDLE_CANCEL not in {f.handler for f in wire.requests(c2s)}
        answered = wire.answers(s2c)
        for f in wire.requests(c2s, wire.HANDLE_CALLATTR):
            if wire.mentions(f.body, "sleep_add"):
                sleep_adds += 1
                assert f.seq in answered, "upstream never answered %s" % wire.describe(f)
    assert sleep_adds == 1 + 1 + 6 + 1, sleep_adds  # wait_for, task.cancel, 6 in flight, expiry


# ---------------------------------------------------------------------------------------
# 4. blocking and async clients of both implementations on one rpyc.aio server at once
# ---------------------------------------------------------------------------------------

def test_blocking_and_async_clients_share_an_aio_server(interop, aio_servers, upstream_python):
    """Our blocking client, upstream's blocking client and our rpyc.aio client use one
    ``rpyc.aio`` server at the same time: each first waits at a rendezvous that returns only
    once all three are being served at once, then makes 200 calls with callbacks; the
    server's counter sees every call."""
    server = aio_servers("interop")
    offset = server.err_size()
    tag = "shared-" + uuid.uuid4().hex
    parties = 3
    runs = [
        start_client(interop, "ours", SYNC_CLIENT, server.port, ["shared"], "--tag", tag,
                     "--parties", parties),
        start_client(interop, "upstream", SYNC_CLIENT, server.port, ["shared"], "--tag", tag,
                     "--parties", parties),
        start_client(interop, "ours", AIO_CLIENT, server.port, ["shared"], "--target", "ours-aio",
                     "--tag", tag, "--parties", parties),
    ]
    deadline = time.monotonic() + CLIENT_TIMEOUT + 20
    try:
        for run in runs:
            run.finish(deadline - time.monotonic())
    finally:
        for run in runs:
            if run.proc.poll() is None:
                stop_group(run.proc, wait=2)
    for run in runs:
        report(interop, run, ["shared"], server, offset,
               "%s client sharing the rpyc.aio server" % run.role)
    results, _ = run_client(interop, "ours", SYNC_CLIENT, server.port, ["counter"], "--tag", tag,
                            server=server, what="reading the shared counter")
    assert results["counter"]["info"]["counter"] == 200 * parties, results["counter"]["info"]
    assert_quiet_server(server, offset, "the shared run")
