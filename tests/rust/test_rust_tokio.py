"""The tokio client of the Rust crate (crates/rpyc/examples/tokio_client.rs, feature
`tokio`) against Python servers: ours and upstream rpyc 6.0.2 (tests/peers/server.py,
started by the shared `peer_server` fixture). The example prints `ok NAME` or
`FAIL NAME: why` per check."""

import os

import pytest

from rust_peers import run

CHECKS = ["calls", "references", "exceptions", "callbacks", "concurrency", "releases",
          "timeout"]


@pytest.mark.timeout(90)
@pytest.mark.parametrize("mode", ["default", "bind_threads"])
@pytest.mark.parametrize("role", ["ours", "upstream"])
def test_tokio_client_against_python_server(role, mode, peer_server, rust_examples):
    server = peer_server(role, mode)
    # our server answers the hello (quiet_del), upstream echoes it
    env = dict(os.environ, RPYC_EXPECT_FEATURES="quiet_del" if role == "ours" else "")
    extra = ["--bind-threads"] if mode == "bind_threads" else []
    rc, out, err, _ = run([rust_examples["tokio_client"], "--port", server.port] + extra,
                          timeout=60, env=env)
    lines = out.splitlines()
    failed = [line for line in lines if line.startswith("FAIL")]
    missing = [c for c in CHECKS if "ok " + c not in lines]
    assert not failed and not missing and rc == 0, (
        "\n".join(failed) + "\nmissing: %s\n--- stdout ---\n%s\n--- stderr ---\n%s"
        % (missing, out[-3000:], err[-3000:]))
    assert "closed: connection closed" in lines
    assert server.alive()
