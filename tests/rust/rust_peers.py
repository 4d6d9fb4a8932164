"""Helpers of the tests of the Rust crate (tests/rust): building the examples, the Rust
server process, running peer processes with bounded waits."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from procs import stop_group  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT = 600  # seconds; a no-op when `cargo test --workspace` built them already
EXAMPLES = ("client", "server", "callback", "classic", "interop_client", "tls_client",
            "tokio_client", "tokio_tls_client", "async_server", "tokio_iter")


def build_examples():
    """{name: path} of the crate's example binaries and of rpyc-cli (debug builds)."""
    cargo = shutil.which("cargo")
    if cargo is None:
        pytest.skip("cargo is not installed: the Rust crate cannot be built")
    for what in (["-p", "rpyc", "--examples"], ["-p", "rpyc-cli"]):
        cmd = [cargo, "build", "-q"] + what
        try:
            proc = subprocess.run(cmd, cwd=str(ROOT), capture_output=True, text=True,
                                  timeout=BUILD_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail("%s took more than %ss" % (" ".join(cmd[1:]), BUILD_TIMEOUT))
        if proc.returncode != 0:
            pytest.fail("cargo %s failed:\n%s" % (" ".join(cmd[1:]), proc.stderr[-4000:]))
    out = target_dir() / "debug" / "examples"
    paths = {name: out / name for name in EXAMPLES}
    paths["rpyc-cli"] = target_dir() / "debug" / "rpyc-cli"
    missing = [str(p) for p in paths.values() if not p.exists()]
    if missing:
        pytest.fail("built examples not found: %s (is CARGO_TARGET_DIR the one cargo used?)"
                    % ", ".join(missing))
    return paths


def target_dir():
    env = os.environ.get("CARGO_TARGET_DIR")
    return Path(env) if env else ROOT / "target"


class RustServer:
    """crates/rpyc/examples/server.rs on an ephemeral port."""

    def __init__(self, binary, extra=()):
        self.proc = subprocess.Popen(
            [str(binary), "--port", "0"] + [str(a) for a in extra], stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, start_new_session=True)
        line = self.proc.stdout.readline().decode()  # "listening on 127.0.0.1:PORT"
        if not line.startswith("listening on "):
            self.stop()
            raise RuntimeError("the Rust server did not start: %r %s"
                               % (line, self.proc.stderr.read().decode()[-2000:]))
        self.port = int(line.rsplit(":", 1)[1])

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        stop_group(self.proc)
        for f in (self.proc.stdout, self.proc.stderr):
            if f:
                f.close()


def run(cmd, timeout, env=None, cwd=None):
    """Run a peer process in its own session, killed (with its group) past `timeout`."""
    proc = subprocess.Popen([str(c) for c in cmd], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True, env=env, cwd=cwd)
    t0 = time.monotonic()
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_group(proc, wait=1.0)
        out, err = proc.communicate(timeout=10)
        pytest.fail("%s did not finish within %ss\n--- stdout ---\n%s\n--- stderr ---\n%s" % (
            cmd[0], timeout, out.decode()[-3000:], err.decode()[-3000:]))
    finally:
        if proc.poll() is None:
            stop_group(proc, wait=1.0)
    return proc.returncode, out.decode(), err.decode(), time.monotonic() - t0
