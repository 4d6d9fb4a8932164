"""The Prometheus endpoint (rpyc.utils.metrics.serve_prometheus, rpyc_classic
--prometheus-port): scraped over loopback HTTP with urllib, parsed with prometheus_client's
own parser, and compared with ``stats()``."""

import subprocess
import sys
import threading
import time
import urllib.request

import pytest

pytest.importorskip("rpyc._core")
pytest.importorskip("prometheus_client")

import rpyc  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402
from rpyc.utils import metrics  # noqa: E402

from .classic_support import Tracker, free_port  # noqa: E402


class Echo(rpyc.Service):
    def exposed_echo(self, value):
        return value

    def exposed_fail(self):
        raise KeyError("nope")


def scrape(port, timeout=20.0):
    """The endpoint's samples as ``{(name, labels as a sorted tuple): value}``, retrying
    until it answers (a process may still be starting)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
                text = resp.read().decode()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def test_the_endpoint_serves_the_servers_stats(harness):
    server = harness.server(Echo)
    conns = [harness.connect(server) for _ in range(2)]
    n = 0
    for conn in conns:
        echo = conn.root.echo
        for i in range(10):
            echo(i)
            n += 1
    with pytest.raises(KeyError):
        conns[0].root.fail()
    with metrics.serve_prometheus(server) as endpoint:
        assert endpoint.host == "127.0.0.1"  # loopback unless told otherwise
        samples = scrape(endpoint.port)
        stats = server.stats()  # (nothing was called since the scrape)
    assert samples[("rpyc_calls_served_total", ())] == stats["calls_served"]
    assert samples[("rpyc_bytes_in_total", ())] == stats["bytes_in"] > 0
    assert samples[("rpyc_errors_served_total", ())] == 1
    assert samples[("rpyc_connections_total", ())] == 2
    assert samples[("rpyc_connections_open", ())] == 2
    assert samples[("rpyc_in_flight", ())] == 0
    call = (("handler", "call"),)
    assert samples[("rpyc_request_duration_seconds_count", call)] == n + 1
    assert samples[("rpyc_request_duration_seconds_bucket", call + (("le", "+Inf"),))] == n + 1
    assert samples[("rpyc_request_duration_seconds_sum", call)] == pytest.approx(
        stats["latency"]["call"]["sum"])
    # Every server-side handler that served something has its series.
    handlers = {dict(labels)["handler"] for name, labels in samples
                if name == "rpyc_request_duration_seconds_count"}
    assert handlers == set(stats["latency"])


def test_a_connection_can_be_the_source_and_the_endpoint_closes(harness):
    server = harness.server(Echo)
    conn = harness.connect(server)
    conn.root.echo(1)
    endpoint = metrics.serve_prometheus(conn, port=0)
    try:
        samples = scrape(endpoint.port)
        assert samples[("rpyc_calls_made_total", ())] == conn.stats()["calls_made"] > 0
        assert ("rpyc_connections_total", ()) not in samples  # a connection is no server
    finally:
        endpoint.close()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{endpoint.port}/metrics", timeout=2)


def test_missing_prometheus_client_names_the_extra(monkeypatch, harness):
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # import raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'rpyc\[metrics\]'"):
        metrics.serve_prometheus(harness.server(Echo))


@pytest.fixture
def track():
    tracker = Tracker()
    try:
        yield tracker
    finally:
        tracker.close()


def _readline(proc, timeout=20.0):
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        line = proc.stdout.readline()
    finally:
        timer.cancel()
    assert line, "no output from the server within %ss" % timeout
    return line


@pytest.mark.timeout(60)
def test_rpyc_classic_prometheus_port(track):
    metrics_port = free_port()
    proc = track.python("-m", "rpyc.cli.rpyc_classic", "-q", "-m", "oneshot", "-p", "0",
                        "--prometheus-port", str(metrics_port), stdin=subprocess.DEVNULL,
                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert _readline(proc).strip() == "rpyc-oneshot"
    host, port = _readline(proc).split()
    conn = rpyc.classic.connect(host, int(port))
    try:
        before = scrape(metrics_port)[("rpyc_calls_served_total", ())]
        for _ in range(5):
            conn.modules.os.getpid()
        samples = scrape(metrics_port)
        assert samples[("rpyc_connections_open", ())] == 1
        assert samples[("rpyc_calls_served_total", ())] >= before + 5
        assert samples[("rpyc_request_duration_seconds_count", (("handler", "getattr"),))] > 0
    finally:
        conn.close()


@pytest.mark.parametrize("mode", ["forking", "stdio"])
def test_rpyc_classic_prometheus_port_refused_without_a_server_to_count(mode):
    res = subprocess.run([sys.executable, "-m", "rpyc.cli.rpyc_classic", "-m", mode,
                          "--prometheus-port", "0"], capture_output=True, text=True, timeout=30,
                         stdin=subprocess.DEVNULL)
    assert res.returncode == 2
    assert f"--prometheus-port does not work with --mode {mode}" in res.stderr
