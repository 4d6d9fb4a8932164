"""Shared pytest fixtures, mainly for the interop suite (tests/interop).

Two implementations are both called ``rpyc``, so they never share an interpreter:

* "ours"     -- the interpreter where our package is installed: ``$RPYC_OURS_PYTHON`` or
                ``sys.executable``;
* "upstream" -- the venv made by ``scripts/upstream-venv.sh`` (rpyc==6.0.2 from PyPI), or
                ``$RPYC_UPSTREAM_PYTHON``.

Nothing here imports ``rpyc``: the peers (tests/peers/server.py and client.py) always run as
subprocesses, on 127.0.0.1 only, with bounded waits; every process started is killed (its
whole process group) at teardown.

Environment knobs:
    RPYC_INTEROP_CONTROL=1   also run the upstream->upstream control direction
    RPYC_OURS_PYTHON=...     interpreter for "ours" (default: sys.executable)
    RPYC_UPSTREAM_PYTHON=... interpreter for "upstream" (default: scripts/upstream-venv.sh)
    RPYC_INTEROP_NO_FAILFAST=1  keep running a direction after two of its scenarios hung
    RPYC_INTEROP_KEEP_LOGS=1    keep the servers' stdout/stderr files (a temp dir)
"""

import atexit
import collections
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT / "tests" / "peers"
UPSTREAM_VERSION = "6.0.2"
CONTROL = os.environ.get("RPYC_INTEROP_CONTROL", "") in ("1", "true", "yes")

SERVER_START_TIMEOUT = 30.0  # seconds until the server prints PORT
# After this many scenarios of one (client, server) direction hung (client killed, or a
# request timed out), the remaining ones fail at once instead of each waiting for timeouts.
HANG_LIMIT = 0 if os.environ.get("RPYC_INTEROP_NO_FAILFAST") else 2
VENV_TIMEOUT = 600.0         # seconds for scripts/upstream-venv.sh (may pip install)


def _load_catalog():
    spec = importlib.util.spec_from_file_location("rpyc_interop_catalog", PEERS / "catalog.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CATALOG = _load_catalog()

# (client role, server role)
DIRECTIONS = [("ours", "upstream"), ("upstream", "ours"), ("ours", "ours")]
if CONTROL:
    DIRECTIONS.append(("upstream", "upstream"))

InteropCase = collections.namedtuple("InteropCase", "client server mode scenario timeout")


def interop_cases(modes=None, scenarios=None, directions=None):
    """All (direction x mode x scenario) cases as pytest params, with per-test timeouts."""
    params = []
    for client, server in directions or DIRECTIONS:
        for sc in CATALOG.SCENARIOS:
            if scenarios is not None and sc.name not in scenarios:
                continue
            for mode in sc.modes:
                if modes is not None and mode not in modes:
                    continue
                case = InteropCase(client, server, mode, sc.name, sc.timeout)
                budget = sc.timeout + 10 + SERVER_START_TIMEOUT + 20
                params.append(pytest.param(
                    case, id="%s-%s-%s-%s" % (client, server, mode, sc.name),
                    marks=[pytest.mark.timeout(budget), pytest.mark.interop]))
    return params


def pytest_generate_tests(metafunc):
    if "interop_case" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("interop_select")
        kwargs = dict(marker.kwargs) if marker else {}
        metafunc.parametrize("interop_case", interop_cases(**kwargs))


def pytest_configure(config):
    config.addinivalue_line("markers", "interop: cross-implementation test (subprocess peers)")
    config.addinivalue_line(
        "markers", "interop_select(modes=None, scenarios=None, directions=None): "
                   "restrict the interop_case parametrization")
    if not config.pluginmanager.hasplugin("timeout"):
        config.addinivalue_line("markers", "timeout(seconds): per-test timeout (pytest-timeout)")


def pytest_report_header(config):
    return ["interop: ours python = %s; upstream python = %s; control direction %s" % (
        os.environ.get("RPYC_OURS_PYTHON") or sys.executable,
        os.environ.get("RPYC_UPSTREAM_PYTHON") or "scripts/upstream-venv.sh",
        "ON" if CONTROL else "off (RPYC_INTEROP_CONTROL=1 to enable)")]


_NOTES = []  # printed in the terminal summary


def pytest_terminal_summary(terminalreporter):
    for note in _NOTES:
        terminalreporter.write_line("interop: " + note)


# ---------------------------------------------------------------------------------
# processes
# ---------------------------------------------------------------------------------

_LIVE_PROCS = set()


def _kill_group(proc, grace=3.0):
    """Stop a process started with start_new_session=True, and its whole group."""
    if proc.poll() is None:
        try:
            if proc.stdin:
                proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)  # the group may outlive the leader
        except (ProcessLookupError, PermissionError):
            break
        try:
            proc.wait(2.0)
        except subprocess.TimeoutExpired:
            continue
    if proc.poll() is None:  # pragma: no cover
        proc.kill()
        proc.wait(5)
    _LIVE_PROCS.discard(proc)


@atexit.register
def _kill_leftovers():
    for proc in list(_LIVE_PROCS):
        _kill_group(proc, grace=0.5)


def peer_env(role):
    env = dict(os.environ)
    env.pop("RPYC_BIND_THREADS", None)  # modes are explicit, never inherited
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    if role == "upstream":
        env.pop("PYTHONPATH", None)  # never let the upstream venv see our package
        env.pop("PYTHONHOME", None)
    return env


def _tail(path_or_text, limit=4000, start=0):
    if isinstance(path_or_text, Path):
        try:
            with open(path_or_text, "rb") as f:
                f.seek(start)
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return ""
    else:
        text = path_or_text or ""
    return text if limit is None or len(text) <= limit else "...\n" + text[-limit:]


def impl_problem(role, impl, who):
    """A message if the peer does not run the implementation its role says, else None."""
    if not impl:
        return "%s did not report which rpyc it imported" % who
    if role == "ours" and not impl.get("native"):
        return ("%s is supposed to be ours (rpyc-rs) but imported rpyc %s from %s, which has no "
                "rpyc._core" % (who, impl.get("version"), impl.get("file")))
    if role == "upstream" and (impl.get("native") or impl.get("version") != UPSTREAM_VERSION):
        return "%s is supposed to be upstream rpyc %s but imported %r" % (who, UPSTREAM_VERSION, impl)
    return None


class PeerStartError(Exception):
    pass


class PeerServer:
    """A server of tests/peers (``script``: server.py, or aio_server.py) running under one
    interpreter in one mode."""

    def __init__(self, role, mode, python, logdir, script="server.py"):
        self.role, self.mode, self.python, self.script = role, mode, python, script
        stem = "%s-%s-%s-%d" % (Path(script).stem, role, mode, int(time.time() * 1000) % 10**8)
        self.out_path = Path(logdir) / (stem + ".out")
        self.err_path = Path(logdir) / (stem + ".err")
        self.port = None
        self.impl = None
        self.restart_note = ""
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(
                [python, "-u", str(PEERS / script), "--mode", mode, "--max-lifetime", "3600"],
                stdin=subprocess.PIPE, stdout=out, stderr=err, cwd=str(PEERS),
                env=peer_env(role), start_new_session=True)
        _LIVE_PROCS.add(self.proc)
        try:
            self._wait_port()
        except BaseException:
            self.stop()
            raise

    def _wait_port(self):
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:
            text = self.out_path.read_text("utf-8", "replace")
            for line in text.splitlines():
                if line.startswith("IMPL "):
                    try:
                        self.impl = json.loads(line[5:])
                    except ValueError:
                        pass
                elif line.startswith("PORT "):
                    self.port = int(line.split()[1])
                    return
            rc = self.proc.poll()
            if rc is not None:
                raise PeerStartError(
                    "%s %s (%s mode, %s) exited with status %s before printing its port.\n"
                    "--- stdout ---\n%s\n--- stderr ---\n%s"
                    % (self.role, self.script, self.mode, self.python, rc, _tail(text),
                       _tail(self.err_path)))
            if time.monotonic() > deadline:
                raise PeerStartError(
                    "%s %s (%s mode, %s) printed no port within %ss.\n--- stderr ---\n%s"
                    % (self.role, self.script, self.mode, self.python, SERVER_START_TIMEOUT,
                       _tail(self.err_path)))
            time.sleep(0.02)

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def err_size(self):
        try:
            return self.err_path.stat().st_size
        except OSError:
            return 0

    def stderr_since(self, offset, limit=4000):
        """What the server wrote to stderr after ``offset``: its last ``limit`` characters
        (None: all of it)."""
        return _tail(self.err_path, limit, start=offset)

    def stop(self):
        _kill_group(self.proc)


class ClientResult:
    def __init__(self, impl, results, returncode, stdout, stderr, seconds, timed_out):
        self.impl, self.results = impl, results
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr
        self.seconds, self.timed_out = seconds, timed_out


class Interop:
    """Session-wide helper: interpreters, a pool of servers, and the client runner."""

    catalog = CATALOG
    peers = PEERS
    impl_problem = staticmethod(impl_problem)
    peer_env = staticmethod(peer_env)

    def __init__(self, logdir):
        self.logdir = logdir
        self._upstream = None
        self._upstream_error = None
        self._servers = {}
        self._server_errors = {}
        self._hangs = collections.defaultdict(list)  # (client, server) -> ["mode/scenario"]

    # -- interpreters -------------------------------------------------------------
    def ours_python(self):
        return os.environ.get("RPYC_OURS_PYTHON") or sys.executable

    def upstream_python(self):
        if self._upstream:
            return self._upstream
        if self._upstream_error is None:
            try:
                self._upstream = self._resolve_upstream()
                return self._upstream
            except Exception as exc:
                self._upstream_error = str(exc)
                _NOTES.append("upstream rpyc %s unavailable, upstream tests skipped: %s"
                              % (UPSTREAM_VERSION, exc))
        pytest.skip("upstream rpyc %s venv unavailable: %s" % (UPSTREAM_VERSION, self._upstream_error))

    def _resolve_upstream(self):
        python = os.environ.get("RPYC_UPSTREAM_PYTHON")
        if not python:
            script = ROOT / "scripts" / "upstream-venv.sh"
            try:
                proc = subprocess.run(["bash", str(script)], capture_output=True, text=True,
                                      timeout=VENV_TIMEOUT, cwd=str(ROOT),
                                      env=peer_env("upstream"))
            except subprocess.TimeoutExpired:
                raise RuntimeError("%s timed out after %ss" % (script, VENV_TIMEOUT))
            if proc.returncode != 0 or not proc.stdout.strip():
                raise RuntimeError("%s failed (status %s): %s" % (
                    script, proc.returncode, _tail(proc.stderr + proc.stdout, 1500)))
            python = proc.stdout.strip().splitlines()[-1].strip()
        probe = ("import json, importlib.util, rpyc; print(json.dumps({'version': rpyc.__version__,"
                 " 'file': rpyc.__file__, 'native': importlib.util.find_spec('rpyc._core') is not None}))")
        try:
            proc = subprocess.run([python, "-c", probe], capture_output=True, text=True, timeout=60,
                                  cwd=str(PEERS), env=peer_env("upstream"))
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RuntimeError("cannot run %s: %s" % (python, exc))
        if proc.returncode != 0:
            raise RuntimeError("%s cannot import rpyc: %s" % (python, _tail(proc.stderr, 1500)))
        impl = json.loads(proc.stdout.strip().splitlines()[-1])
        if impl["version"] != UPSTREAM_VERSION or impl["native"]:
            raise RuntimeError("%s has rpyc %r, not upstream %s" % (python, impl, UPSTREAM_VERSION))
        return python

    def python(self, role):
        return self.ours_python() if role == "ours" else self.upstream_python()

    # -- servers ------------------------------------------------------------------
    def server(self, role, mode, script="server.py"):
        """A running server (``script`` of tests/peers) for (role, mode), started on first use
        and reused afterwards (restarted if it died or a test stopped it)."""
        python = self.python(role)
        key = (role, mode, script)
        if key in self._server_errors:
            pytest.fail("(cached) " + self._server_errors[key], pytrace=False)
        srv = self._servers.get(key)
        note = ""
        if srv is not None and not srv.alive():
            note = ("note: the %s %s (%s mode) had died (status %s) after an earlier test and "
                    "was restarted; its log: %s" % (role, script, mode, srv.proc.returncode,
                                                     srv.err_path))
            srv.stop()
            srv = None
        if srv is None:
            error = None
            try:
                srv = PeerServer(role, mode, python, self.logdir, script)
            except PeerStartError as exc:
                error = str(exc)
            if error is not None:  # fail outside the except block: no chained traceback
                self._server_errors[key] = error
                pytest.fail(error, pytrace=False)
            srv.restart_note = note
            problem = impl_problem(role, srv.impl, "the %s server" % role)
            if problem:
                srv.stop()
                self._server_errors[key] = problem
                pytest.fail(problem, pytrace=False)
            self._servers[key] = srv
        return srv

    def close(self):
        for srv in self._servers.values():
            srv.stop()
        self._servers.clear()

    # -- clients ------------------------------------------------------------------
    def run_client(self, role, port, mode, scenarios, timeout):
        python = self.python(role)
        cmd = [python, "-u", str(PEERS / "client.py"), "--host", "127.0.0.1", "--port", str(port),
               "--mode", mode, "--timeout", str(timeout)]
        for name in scenarios:
            cmd += ["--scenario", name]
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, cwd=str(PEERS), env=peer_env(role),
                                start_new_session=True)
        _LIVE_PROCS.add(proc)
        timed_out = False
        try:
            out, err = proc.communicate(timeout=timeout + 10)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc, grace=0)
            out, err = proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:
                _kill_group(proc, grace=0)
            _LIVE_PROCS.discard(proc)
        impl, results = None, {}
        for line in out.decode("utf-8", "replace").splitlines():
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict) and "impl" in obj:
                impl = obj["impl"]
            elif isinstance(obj, dict) and "scenario" in obj:
                results[obj["scenario"]] = obj
        return ClientResult(impl, results, proc.returncode, out.decode("utf-8", "replace"),
                            err.decode("utf-8", "replace"), time.monotonic() - t0, timed_out)

    # -- one scenario end to end ------------------------------------------------------
    def check_scenario(self, case):
        """Run case (an InteropCase) and fail the test with a full report if it does not pass."""
        hung = self._hangs[(case.client, case.server)]
        if HANG_LIMIT and len(hung) >= HANG_LIMIT:
            pytest.fail("not attempted: %d earlier scenarios of %s client -> %s server hung or "
                        "timed out (%s); see their reports. Set RPYC_INTEROP_NO_FAILFAST=1 to run "
                        "everything anyway." % (len(hung), case.client, case.server,
                                                ", ".join(hung)), pytrace=False)
        server = self.server(case.server, case.mode)
        offset = server.err_size()
        res = self.run_client(case.client, server.port, case.mode, [case.scenario], case.timeout)
        server_alive = server.alive()
        problems = []
        result = res.results.get(case.scenario)
        if res.impl is None:
            problems.append("the %s client did not start (status %s)" % (case.client, res.returncode))
        else:
            problem = impl_problem(case.client, res.impl, "the %s client" % case.client)
            if problem:
                problems.append(problem)
        if res.timed_out:
            problems.append("the client was killed after %ss (scenario timeout %ss)"
                            % (round(res.seconds, 1), case.timeout))
        elif "Timeout (0:" in res.stderr:
            res.timed_out = True
            problems.append("the client hit its scenario timeout (%ss) and dumped its stacks "
                            "(see client stderr)" % case.timeout)
        elif result is None and res.impl is not None:
            problems.append("the client printed no result (status %s)" % res.returncode)
        if result is not None and not result["ok"]:
            failures = (result.get("detail") or {}).get("failures") or ["(no detail)"]
            problems.append("scenario failed:\n  - " + "\n  - ".join(failures))
            if case.scenario != "timeouts" and any(
                    "TimeoutError" in f or "result expired" in f for f in failures):
                hung.append("%s/%s" % (case.mode, case.scenario))
        tag = "%s/%s" % (case.mode, case.scenario)
        if res.timed_out and tag not in hung:
            hung.append(tag)
        if not server_alive:
            problems.append("the %s server (%s mode) died during the scenario with status %s"
                            % (case.server, case.mode, server.proc.returncode))
        if problems:
            report = [
                "interop %s client -> %s server, mode %s, scenario %s (%s)" % (
                    case.client, case.server, case.mode, case.scenario,
                    CATALOG.BY_NAME[case.scenario].doc),
                *problems,
            ]
            if result is not None and (result.get("detail") or {}).get("info"):
                report.append("info: %s" % json.dumps(result["detail"]["info"]))
            if server.restart_note:
                report.append(server.restart_note)
                server.restart_note = ""  # reported once
            if res.stderr.strip():
                report.append("--- client stderr ---\n" + _tail(res.stderr))
            srv_err = server.stderr_since(offset)
            if srv_err.strip():
                report.append("--- server stderr ---\n" + srv_err)
            pytest.fail("\n".join(report), pytrace=False)
        return result


# ---------------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def interop():
    logdir = tempfile.mkdtemp(prefix="rpyc-interop-")
    helper = Interop(logdir)
    try:
        yield helper
    finally:
        helper.close()
        if os.environ.get("RPYC_INTEROP_KEEP_LOGS"):
            _NOTES.append("peer logs kept in %s" % logdir)
        else:
            shutil.rmtree(logdir, ignore_errors=True)


@pytest.fixture(scope="session")
def upstream_python(interop):
    """Path of the python with upstream rpyc 6.0.2 (skips the test if it cannot be made)."""
    return interop.upstream_python()


@pytest.fixture(scope="session")
def ours_python(interop):
    """Path of the python with our rpyc (never imported in the pytest process)."""
    return interop.ours_python()


@pytest.fixture
def peer_server(interop):
    """Factory: peer_server(role, mode="default") -> running PeerServer (reused per session)."""
    def get(role, mode="default"):
        return interop.server(role, mode)
    return get
