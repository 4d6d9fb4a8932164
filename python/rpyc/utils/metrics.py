"""Statistics of connections and servers, and a Prometheus endpoint for them
(docs/metrics.md).

The engine counts (``Connection.stats()``); a server adds up its connections
(``Server.stats()``, with :class:`ServerStats`); :func:`serve_prometheus` exposes either
over HTTP, reading ``stats()`` at scrape time, so serving a call costs no Python work.
``prometheus_client`` is needed for the endpoint only: ``pip install 'rpyc[metrics]'``.
"""

import copy
import threading
from typing import Any, Dict, Iterable, Iterator, List, Tuple

__all__ = ["COUNTERS", "GAUGES", "MetricsEndpoint", "ServerStats", "StatsCollector", "add_stats",
           "serve_prometheus"]

#: Keys of ``stats()`` that only grow, with what they count (the Prometheus help texts).
COUNTERS: Dict[str, str] = {
    "calls_made": "requests sent to the peer (releases not included)",
    "calls_served": "requests of the peer answered (releases not included)",
    "releases_sent": "HANDLE_DEL requests sent (proxies of the peer's objects that died)",
    "releases_served": "HANDLE_DEL requests of the peer served",
    "errors_served": "requests of the peer answered with an exception",
    "errors_received": "exceptions received as answers to our requests",
    "bytes_in": "bytes of the frames received",
    "bytes_out": "bytes of the frames sent",
    "frames_in": "frames received",
    "frames_out": "frames sent",
    "frames_compressed_in": "compressed frames received",
    "frames_compressed_out": "compressed frames sent",
}

#: Keys of ``stats()`` that go up and down (a closed connection's last values are not kept).
GAUGES: Dict[str, str] = {
    "in_flight": "requests of the peer being served now",
    "pending": "our requests awaiting an answer",
    "objects_held": "our objects the peer holds references to",
    "proxies": "proxies of the peer's objects alive here",
}


def _empty() -> Dict[str, Any]:
    stats: Dict[str, Any] = dict.fromkeys(COUNTERS, 0)
    stats.update(dict.fromkeys(GAUGES, 0))
    stats["latency"] = {}
    return stats


def add_stats(total: Dict[str, Any], stats: Dict[str, Any], gauges: bool = True) -> None:
    """Add one ``stats()`` dict into ``total`` (in place): counters, latency histograms
    (bucket by bucket; every connection has the same bounds) and, with ``gauges``, the
    gauges."""
    for key in COUNTERS:
        total[key] += stats[key]
    if gauges:
        for key in GAUGES:
            total[key] += stats[key]
    latency = total["latency"]
    for handler, hist in stats["latency"].items():
        mine = latency.get(handler)
        if mine is None:
            latency[handler] = copy.deepcopy(hist)
            continue
        mine["count"] += hist["count"]
        mine["sum"] += hist["sum"]
        mine["buckets"] = [(le, a + b) for (le, a), (_, b) in zip(mine["buckets"], hist["buckets"])]


class ServerStats:
    """A server's statistics: the totals of its closed connections, plus its live ones
    when asked. The server calls :meth:`opened` and :meth:`closed` (under its own lock, the
    one that guards its live connections, so that a connection is counted exactly once);
    nothing is done per call."""

    def __init__(self) -> None:
        self._closed = _empty()
        self.connections_total = 0

    def opened(self) -> None:
        self.connections_total += 1

    def closed(self, conn: Any) -> None:
        # (A closed connection serves nothing and holds nothing: its gauges are dropped.)
        add_stats(self._closed, conn.stats(), gauges=False)

    def snapshot(self, live: Iterable[Any]) -> Dict[str, Any]:
        """The server's ``stats()``: closed connections' totals plus ``live`` connections'
        counters and gauges, ``connections_open`` and ``connections_total``."""
        total = copy.deepcopy(self._closed)
        open_ = 0
        for conn in live:
            add_stats(total, conn.stats())
            open_ += 1
        total["connections_open"] = open_
        total["connections_total"] = self.connections_total
        return total


def _prometheus() -> Any:
    try:
        import prometheus_client
    except ImportError as exc:
        raise ImportError(
            f"the Prometheus endpoint needs prometheus_client ({exc}): pip install 'rpyc[metrics]'"
        ) from None
    return prometheus_client


class StatsCollector:
    """A ``prometheus_client`` collector reading ``source.stats()`` (a server's or a
    connection's) at each scrape: counters as ``rpyc_<key>_total``, gauges as
    ``rpyc_<key>``, served latency as the histogram ``rpyc_request_duration_seconds``
    labelled by handler."""

    def __init__(self, source: Any) -> None:
        self.source = source

    def describe(self) -> List[Any]:
        # (Registering must not call stats(): nothing is declared ahead of a scrape.)
        return []

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        stats = self.source.stats()
        for key, doc in COUNTERS.items():
            yield CounterMetricFamily(f"rpyc_{key}", doc, value=stats[key])
        for key, doc in GAUGES.items():
            yield GaugeMetricFamily(f"rpyc_{key}", doc, value=stats[key])
        if "connections_total" in stats:
            yield CounterMetricFamily("rpyc_connections", "connections accepted",
                                      value=stats["connections_total"])
            yield GaugeMetricFamily("rpyc_connections_open", "connections open now",
                                    value=stats["connections_open"])
        hist = HistogramMetricFamily("rpyc_request_duration_seconds",
                                     "time from a request's arrival to its answer, per handler",
                                     labels=["handler"])
        for handler, h in sorted(stats["latency"].items()):
            buckets: List[Tuple[str, float]] = [(_bound(le), n) for le, n in h["buckets"]]
            hist.add_metric([handler], buckets, sum_value=h["sum"])
        yield hist


def _bound(le: float) -> str:
    """A bucket's upper bound as Prometheus writes it (``+Inf`` for the last)."""
    return "+Inf" if le == float("inf") else repr(le)


class MetricsEndpoint:
    """A running Prometheus endpoint (``http://host:port/metrics``); :meth:`close` stops it."""

    def __init__(self, httpd: Any, thread: threading.Thread) -> None:
        self._httpd = httpd
        self._thread = thread
        self.host: str = httpd.server_address[0]
        self.port: int = httpd.server_address[1]

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)

    def __enter__(self) -> "MetricsEndpoint":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def serve_prometheus(source: Any, port: int = 0, host: str = "127.0.0.1") -> MetricsEndpoint:
    """Serve ``source.stats()`` (a server or a connection) in Prometheus' text format at
    ``http://host:port/metrics``, from a daemon thread. Loopback only by default; ``port=0``
    picks a free port (see the endpoint's ``port``). The endpoint serves these metrics only
    (a registry of its own); to add them to an existing registry, register a
    :class:`StatsCollector` there."""
    prometheus_client = _prometheus()
    registry = prometheus_client.CollectorRegistry(auto_describe=False)
    registry.register(StatsCollector(source))
    httpd, thread = prometheus_client.start_http_server(port, addr=host, registry=registry)
    return MetricsEndpoint(httpd, thread)
