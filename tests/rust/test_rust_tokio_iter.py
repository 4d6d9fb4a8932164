"""Awaited iteration on the tokio driver of the Rust crate
(crates/rpyc/examples/tokio_iter.rs: `NetRef::iter`, `Iter::next`, `items`, `to_vec`)
against Python servers, ours and upstream rpyc 6.0.2 (tests/peers/server.py)."""

import pytest

from rust_peers import run

CHECKS = ["iter", "iter_error", "items", "to_vec"]


@pytest.mark.timeout(90)
@pytest.mark.parametrize("role", ["ours", "upstream"])
def test_tokio_iteration_against_python_server(role, peer_server, rust_examples):
    server = peer_server(role)
    rc, out, err, _ = run([rust_examples["tokio_iter"], "--port", server.port], timeout=60)
    lines = out.splitlines()
    failed = [line for line in lines if line.startswith("FAIL")]
    missing = [c for c in CHECKS if "ok " + c not in lines]
    assert not failed and not missing and rc == 0, (failed, missing, out[-2000:], err[-2000:])
    assert server.alive()
