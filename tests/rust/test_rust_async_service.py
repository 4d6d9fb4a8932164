"""`async fn` methods of a Rust service on the tokio server
(crates/rpyc/examples/async_server.rs, a one-thread runtime) against Python clients, ours
and upstream rpyc 6.0.2: slow calls of several clients overlap, and a method awaits a
function of its caller."""

import pytest

from rust_peers import RustServer, run

CLIENTS = 4
SLOW = 1.0

# Four connections call slow(SLOW) at once (threads); prints the wall time, then a
# callback's result.
CLIENT = r"""
import sys, threading, time, rpyc
port = int(sys.argv[1])
conns = [rpyc.connect("127.0.0.1", port, config={"sync_request_timeout": 30})
         for _ in range(%(n)d)]
for c in conns:
    c.root  # the root fetched before the clock starts
results = []
def call(c):
    results.append(c.root.slow(%(slow)r))
threads = [threading.Thread(target=call, args=(c,)) for c in conns]
t0 = time.monotonic()
for t in threads:
    t.start()
for t in threads:
    t.join(60)
print("took", time.monotonic() - t0, "results", sorted(results))
print("callback", conns[0].root.call_back(lambda v: v + 1, 20))
print("add", conns[0].root.add(2, 3))
""" % {"n": CLIENTS, "slow": SLOW}


@pytest.fixture(scope="module")
def async_server(rust_examples):
    srv = RustServer(rust_examples["async_server"])
    try:
        yield srv
    finally:
        srv.stop()


@pytest.mark.timeout(90)
@pytest.mark.parametrize("role", ["ours", "upstream"])
def test_slow_async_calls_of_python_clients_overlap(role, interop, async_server):
    rc, out, err, _ = run([interop.python(role), "-c", CLIENT, async_server.port],
                          timeout=60, env=interop.peer_env(role))
    assert rc == 0, (out, err)
    lines = dict(line.split(" ", 1) for line in out.splitlines() if " " in line)
    took = float(lines["took"].split()[0])
    assert lines["took"].endswith("results [%r, %r, %r, %r]" % ((SLOW,) * CLIENTS)), out
    # one after the other: 4 s; overlapping: about 1 s (generous bound for a busy machine)
    assert took < CLIENTS * SLOW * 0.6, out
    assert lines["callback"] == "42", out
    assert lines["add"] == "5", out
    assert async_server.alive()
