"""Interpreter shutdown with connections still busy: the process must exit normally even if a
daemon server thread is still running a handler when the interpreter finalizes."""

import resource
import subprocess
import sys
import textwrap

import pytest

EXIT_WHILE_HANDLER_RUNS = textwrap.dedent("""
    import time
    import rpyc
    from rpyc.utils.server import ThreadedServer

    class SlowService(rpyc.Service):
        def exposed_sleep(self, seconds):
            time.sleep(seconds)

    # cyclic garbage: the interpreter's final garbage collection takes a moment, so the
    # handler below wakes up while the interpreter is finalizing
    junk = []
    for _ in range(1_000_000):
        cell = []
        cell.append(cell)
        junk.append(cell)

    server = ThreadedServer(SlowService, hostname="127.0.0.1", port=0)
    server._start_in_thread()
    conn = rpyc.connect("127.0.0.1", server.port)
    rpyc.async_(conn.root.sleep)(0.1)  # a daemon server thread is inside the handler
    time.sleep(0.05)
    print("main done", flush=True)
""")


def _no_core_dump():
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def test_exit_while_a_server_thread_runs_a_handler(tmp_path):
    script = tmp_path / "exit_busy.py"
    script.write_text(EXIT_WHILE_HANDLER_RUNS)
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=60, cwd=str(tmp_path), preexec_fn=_no_core_dump)
    assert "main done" in proc.stdout
    assert proc.returncode == 0, f"exit status {proc.returncode}; stderr: {proc.stderr[-2000:]}"


EXIT_AFTER_ONESHOT = textwrap.dedent("""
    import rpyc
    from rpyc.utils.server import OneShotServer

    class Service(rpyc.Service):
        def exposed_fail(self):
            assert False

    # upstream's tests/test_remote_exception.py, reduced
    server = OneShotServer(Service, port=0)
    server.logger.quiet = False
    server._start_in_thread()
    conn = rpyc.connect("localhost", port=server.port)
    try:
        conn.root.fail()
    except AssertionError:
        pass
    conn.close()
    print("main done", flush=True)
""")


def test_exit_while_a_oneshot_server_winds_down(tmp_path):
    """OneShotServer serves in its accepting thread, which ran the connection from inside the
    native accept loop: ended at interpreter exit while Python released the GIL (logging, a
    socket close), the thread unwound through native frames and the process aborted ("FATAL:
    exception not rethrown", 4 runs in 5). The accept loop is now Python's."""
    script = tmp_path / "exit_oneshot.py"
    script.write_text(EXIT_AFTER_ONESHOT)
    for _ in range(3):
        proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                              timeout=60, cwd=str(tmp_path), preexec_fn=_no_core_dump)
        assert "main done" in proc.stdout
        assert proc.returncode == 0, f"exit status {proc.returncode}; stderr: {proc.stderr[-2000:]}"
