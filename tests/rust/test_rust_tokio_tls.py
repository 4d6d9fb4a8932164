"""TLS on the tokio driver of the Rust crate against Python peers, ours and upstream rpyc
6.0.2: the tokio TLS client (crates/rpyc/examples/tokio_tls_client.rs) against
tests/peers/tls_peer.py servers, and tls_peer.py clients against the tokio TLS server
(crates/rpyc/examples/server.rs --tokio --tls-cert/--tls-key). A wrong CA and a wrong host
name are refused on both sides."""

import pytest

from rust_peers import RustServer, run
from test_rust_tls import PEERS, json_line, pki, tls_server  # noqa: F401 (fixtures)


@pytest.mark.timeout(90)
def test_tokio_tls_client(tls_server, pki, rust_examples):  # noqa: F811
    role, port = tls_server
    client = rust_examples["tokio_tls_client"]
    rc, out, err, _ = run([client, "localhost:%d" % port, "--ca", pki / "ca.pem",
                           "--calls", "20"], timeout=60)
    res = json_line(out)
    assert rc == 0 and res and res["ok"], (out, err)
    # the callback runs while the client's one runtime thread awaits call_back
    assert (res["add"], res["echo_ok"], res["callback"]) == (5, True, 42)
    rc, out, err, _ = run([client, "localhost:%d" % port, "--ca", pki / "other-ca.pem"],
                          timeout=30)
    assert rc == 1 and "UnknownIssuer" in out and "TLS handshake failed" in out, out
    rc, out, err, _ = run([client, "localhost:%d" % port, "--ca", pki / "ca.pem",
                           "--server-name", "example.invalid"], timeout=30)
    assert rc == 1 and "not valid for name" in out, out


@pytest.fixture(scope="module")
def tokio_tls_server(rust_examples, pki):  # noqa: F811
    srv = RustServer(rust_examples["server"], ["--tokio", "--tls-cert", pki / "server.pem",
                                               "--tls-key", pki / "server.key"])
    try:
        yield srv
    finally:
        srv.stop()


def python_client(interop, role, port, ca):
    rc, out, err, _ = run([interop.python(role), "-u", PEERS / "tls_peer.py", "client",
                           "--port", port, "--ca", ca, "--calls", "20"],
                          timeout=60, env=interop.peer_env(role), cwd=str(PEERS))
    return json_line(out), err


@pytest.mark.timeout(90)
@pytest.mark.parametrize("role", ["ours", "upstream"])
def test_python_tls_client_against_tokio_tls_server(role, interop, pki,  # noqa: F811
                                                    tokio_tls_server):
    res, err = python_client(interop, role, tokio_tls_server.port, pki / "ca.pem")
    assert res and res["ok"], err
    assert (res["add"], res["echo_ok"], res["callback"]) == (5, True, 42)
    # a client trusting another CA refuses the server, which goes on serving
    res, err = python_client(interop, role, tokio_tls_server.port, pki / "other-ca.pem")
    assert res and not res["ok"], res
    assert "certificate verify failed" in res["error"] or "UnknownIssuer" in res["error"], res
    # a plain-TCP client gets nowhere
    rc, out, err, _ = run([interop.python(role), "-c",
                           "import rpyc; c = rpyc.connect('127.0.0.1', %d, "
                           "config={'sync_request_timeout': 3}); c.root" % tokio_tls_server.port],
                          timeout=30, env=interop.peer_env(role), cwd=str(PEERS))
    assert rc != 0
    res, err = python_client(interop, role, tokio_tls_server.port, pki / "ca.pem")
    assert res and res["ok"], err
    assert tokio_tls_server.alive()
