"""Stopping the processes tests start (each in its own session, so that its children go
with it)."""

import os
import signal
import subprocess


def stop_group(proc: subprocess.Popen, wait: float = 3.0) -> None:
    """SIGTERM, then SIGKILL, to the process group led by ``proc`` (started with
    ``start_new_session=True``), waiting up to ``wait`` seconds after each."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            break
        try:
            proc.wait(wait)
            break
        except subprocess.TimeoutExpired:
            continue
