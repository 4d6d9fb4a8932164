"""rpyc-cli (crates/rpyc-cli) against our and upstream's Python servers."""

import pytest

from rust_peers import run


@pytest.mark.timeout(60)
@pytest.mark.parametrize("role", ["ours", "upstream"])
def test_cli_against_service(role, peer_server, rust_examples):
    cli = rust_examples["rpyc-cli"]
    addr = "127.0.0.1:%d" % peer_server(role, "default").port
    rc, out, err, _ = run([cli, addr, "ping"], timeout=30)
    assert rc == 0 and out.startswith("pong in "), err
    rc, out, err, _ = run([cli, addr, "names"], timeout=30)
    assert rc == 0, err
    names = [line.strip() for line in out.splitlines()[1:]]
    assert {"add", "echo", "get_list"} <= set(names) and "hidden" not in names, out
    rc, out, err, _ = run([cli, addr, "call", "add", "2", "3"], timeout=30)
    assert (rc, out) == (0, "5\n"), err
    rc, out, err, _ = run([cli, addr, "call", "echo", "(1, 'a b', b'\\x00', 2.5, None, [True])"],
                          timeout=30)
    assert (rc, out) == (0, "(1, 'a b', b'\\x00', 2.5, None, (True,))\n"), err
    rc, out, err, _ = run([cli, addr, "call", "get_list"], timeout=30)
    assert (rc, out) == (0, "[1, 2, 3]\n"), err
    rc, out, err, _ = run([cli, addr, "call", "fail_value", "boom"], timeout=30)
    assert rc == 1 and "remote ValueError: boom" in err and "exposed_fail_value" in err
    rc, out, err, _ = run([cli, addr, "eval", "1 + 1"], timeout=30)
    assert rc == 2 and "need a classic server" in err
    rc, out, err, _ = run([cli, "--timeout", "0.3", addr, "call", "sleep", "2"], timeout=30)
    assert rc == 3 and "no answer after" in err


@pytest.mark.timeout(60)
@pytest.mark.parametrize("role", ["ours", "upstream"])
def test_cli_classic(role, peer_server, rust_examples):
    cli = rust_examples["rpyc-cli"]
    addr = "127.0.0.1:%d" % peer_server(role, "classic").port
    rc, out, err, _ = run([cli, addr, "eval", "sum(range(10))"], timeout=30)
    assert (rc, out) == (0, "45\n"), err
    rc, out, err, _ = run([cli, addr, "exec", "import os"], timeout=30)
    assert (rc, out) == (0, ""), err
    rc, out, err, _ = run([cli, addr, "eval", "1/0"], timeout=30)
    assert rc == 1 and "ZeroDivisionError" in err


@pytest.mark.timeout(30)
def test_cli_usage_and_connection_errors(rust_examples):
    cli = rust_examples["rpyc-cli"]
    rc, out, err, _ = run([cli], timeout=10)
    assert rc == 2 and "usage:" in err
    rc, out, err, _ = run([cli, "127.0.0.1:1", "ping"], timeout=10)
    assert rc == 3 and "is an RPyC server listening there?" in err
    rc, out, err, _ = run([cli, "127.0.0.1:1", "call", "f", "(1,"], timeout=10)
    assert rc == 2 and "argument \"(1,\"" in err, err
