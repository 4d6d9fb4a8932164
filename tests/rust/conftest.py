"""Fixtures for the tests of the Rust crate `rpyc` (crates/rpyc) against Python peers.

The crate's examples are built once per session (``cargo build -p rpyc --examples``, into
``$CARGO_TARGET_DIR`` or ``target/``); every process started here runs on 127.0.0.1 in its
own session and is stopped (its whole group) at teardown. The Python peers, ours and the
upstream rpyc 6.0.2 venv, come from the shared fixtures of tests/conftest.py.
"""

import pytest

from rust_peers import RustServer, build_examples


@pytest.fixture(scope="session")
def rust_examples():
    """{name: path} of the crate's example binaries (debug build)."""
    return build_examples()


@pytest.fixture(scope="module", params=["threads", "tokio"])
def rust_server(request, rust_examples):
    """The example server: the threaded accept loop, or the tokio one (`--tokio`)."""
    srv = RustServer(rust_examples["server"], ["--tokio"] if request.param == "tokio" else [])
    try:
        yield srv
    finally:
        srv.stop()
