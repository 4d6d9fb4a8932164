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


def _involuntary_switches():
    """This thread's involuntary context switches (Linux), or None."""
    try:
        with open("/proc/thread-self/status") as status:
            for line in status:
                if line.startswith("nonvoluntary_ctxt_switches:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _polled_while_waiting(connect, seconds=0.3):
    """Whether the calling thread polled (rather than slept) through a call whose answer
    takes ``seconds``. A polling thread spends CPU time; on a busy machine it spends little,
    since it yields the CPU to every runnable thread after each attempt, but each yield that
    lets another thread run counts as an involuntary context switch, which a thread asleep
    in ``recv`` never gets."""
    slow = connect().root.slow
    assert slow(0) == 0  # (the first answers come at once: nothing is backed off)
    switches = _involuntary_switches()
    start = time.thread_time()
    assert slow(seconds) == seconds
    cpu = time.thread_time() - start
    yielded = None if switches is None else _involuntary_switches() - switches
    return cpu > 0.05 or (yielded is not None and yielded >= 10)


def test_a_waiting_read_polls_for_the_budget_then_sleeps(harness):
    srv = harness.server(SlowService)
    # 0.2 s of polling in a 0.3 s wait shows as CPU time (or yields) of the waiting thread...
    assert _polled_while_waiting(lambda: harness.connect(srv, config={"busy_poll_us": 200_000}))
    # ...which a read that blocks at once does not spend.
    assert not _polled_while_waiting(lambda: harness.connect(srv, config={"busy_poll_us": 0}))


def test_a_tls_read_polls_too(harness, tmp_path):
    pki = make_pki(tmp_path)
    auth = SSLAuthenticator(pki["server.key"], pki["server.pem"])
    srv = harness.server(SlowService, authenticator=auth)

    def connect(busy_poll_us):
        return harness.track(rpyc.ssl_connect(
            "localhost", srv.port, ca_certs=pki["ca.pem"], config={"busy_poll_us": busy_poll_us}))

    assert _polled_while_waiting(lambda: connect(200_000))
    assert not _polled_while_waiting(lambda: connect(0))


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

