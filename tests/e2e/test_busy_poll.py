"""Config ``busy_poll_us``: a read from a native socket asks the socket without blocking for
up to that many microseconds before it sleeps (docs/architecture.md, "Busy polling")."""

import sys
import time
from pathlib import Path

import pytest

import rpyc
from rpyc.utils.authenticators import SSLAuthenticator

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tls_certs import make_pki  # noqa: E402


class SlowService(rpyc.Service):
    def exposed_slow(self, seconds):
        time.sleep(seconds)
        return seconds

    def exposed_add(self, a, b):
        return a + b


def _cpu_spent_waiting(connect, seconds=0.3, tries=3):
    """CPU time the calling thread spends on a call whose answer takes ``seconds``: the
    most of ``tries`` attempts, each on a new connection ``connect()`` (a miss makes a
    connection skip polling for a while). A polling thread yields the CPU to every other
    runnable thread, so it spends little of it while other processes keep the machine busy."""
    spent = []
    for _ in range(tries):
        slow = connect().root.slow
        assert slow(0) == 0  # (the first answers come at once: nothing is backed off)
        start = time.thread_time()
        assert slow(seconds) == seconds
        spent.append(time.thread_time() - start)
        if spent[-1] > 0.05:
            break
    return max(spent)


def test_a_waiting_read_polls_for_the_budget_then_sleeps(harness):
    srv = harness.server(SlowService)
    # 0.2 s of polling in a 0.3 s wait shows as CPU time of the waiting thread...
    assert _cpu_spent_waiting(lambda: harness.connect(srv, config={"busy_poll_us": 200_000})) > 0.05
    # ...which a read that blocks at once does not spend.
    assert _cpu_spent_waiting(lambda: harness.connect(srv, config={"busy_poll_us": 0})) < 0.05


def test_a_tls_read_polls_too(harness, tmp_path):
    pki = make_pki(tmp_path)
    auth = SSLAuthenticator(pki["server.key"], pki["server.pem"])
    srv = harness.server(SlowService, authenticator=auth)

    def connect(busy_poll_us):
        return harness.track(rpyc.ssl_connect(
            "localhost", srv.port, ca_certs=pki["ca.pem"], config={"busy_poll_us": busy_poll_us}))

    assert _cpu_spent_waiting(lambda: connect(200_000)) > 0.05
    assert _cpu_spent_waiting(lambda: connect(0)) < 0.05


@pytest.mark.parametrize("busy_poll_us", [0, 1, 50, 10_000])
def test_calls_work_whatever_the_budget(harness, busy_poll_us):
    srv = harness.server(SlowService, protocol_config={"busy_poll_us": busy_poll_us})
    conn = harness.connect(srv, config={"busy_poll_us": busy_poll_us})
    add = conn.root.add
    assert [add(i, 1) for i in range(200)] == list(range(1, 201))
    assert conn.root.slow(0.01) == 0.01


@pytest.mark.parametrize("bad", [-1, "fast", 1.5])
def test_a_bad_budget_names_the_key(harness, bad):
    srv = harness.server(SlowService)
    with pytest.raises(ValueError, match="busy_poll_us must be a non-negative integer"):
        rpyc.connect("127.0.0.1", srv.port, config={"busy_poll_us": bad})

