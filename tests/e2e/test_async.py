"""Asynchronous requests: ``rpyc.async_`` and ``AsyncResult`` (ready, value, wait, error,
expired, set_expiry, add_callback), ``rpyc.timed`` and ``sync_request_timeout``."""

import threading
import time

import pytest

import rpyc
from rpyc import AsyncResultTimeout


class SlowService(rpyc.Service):
    def exposed_sleep_then(self, seconds, value=None):
        time.sleep(seconds)
        return value

    def exposed_fail(self):
        return int("not a number")

    def exposed_echo(self, x):
        return x


@pytest.fixture
def conn(harness):
    conn, _ = harness.pair(SlowService)
    return conn


def test_async_result_ready_and_value(conn):
    call = rpyc.async_(conn.root.sleep_then)
    res = call(0.3, "done")
    assert isinstance(res, rpyc.AsyncResult)
    assert not res.ready
    assert not res.error and not res.expired
    assert res.value == "done"
    assert res.ready
    assert not res.error
    assert "ready" in repr(res)


def test_async_result_wait(conn):
    res = rpyc.async_(conn.root.sleep_then)(0.2, 5)
    t0 = time.monotonic()
    res.wait()
    assert time.monotonic() - t0 >= 0.1
    assert res.ready and res.value == 5


def test_async_result_error(conn):
    res = rpyc.async_(conn.root.fail)()
    res.wait()
    assert res.ready
    assert res.error
    with pytest.raises(ValueError) as info:
        res.value
    assert "not a number" in str(info.value)


def test_async_result_expiry(conn):
    res = rpyc.async_(conn.root.sleep_then)(1, "late")
    res.set_expiry(0.3)
    t0 = time.monotonic()
    with pytest.raises(AsyncResultTimeout):
        res.value
    elapsed = time.monotonic() - t0
    assert 0.2 <= elapsed < 1.5
    assert res.expired
    assert not res.ready
    assert AsyncResultTimeout is TimeoutError
    assert "expired" in repr(res)


def test_async_result_callbacks(conn):
    fired = []
    done = threading.Event()

    def on_result(r):
        fired.append(r.value)
        done.set()

    res = rpyc.async_(conn.root.sleep_then)(0.2, "cb")
    res.add_callback(on_result)
    assert fired == []
    res.wait()
    assert done.is_set() and fired == ["cb"]
    late = []
    res.add_callback(lambda r: late.append(r.value))  # already ready: called at once
    assert late == ["cb"]


def test_many_async_requests_in_flight(conn):
    echo = rpyc.async_(conn.root.echo)
    results = [echo(i) for i in range(200)]
    assert [r.value for r in results] == list(range(200))


def test_async_rejects_non_proxies():
    with pytest.raises(TypeError):
        rpyc.async_(len)
    assert getattr(rpyc, "async") is rpyc.async_


def test_timed(conn):
    slow = rpyc.timed(conn.root.sleep_then, 0.3)
    assert slow.timeout == 0.3
    fast_res = slow(0, "quick")
    assert fast_res.value == "quick"
    res = slow(1, "too late")
    with pytest.raises(AsyncResultTimeout):
        res.value
    assert res.expired


def test_sync_request_timeout(harness):
    conn, _ = harness.pair(SlowService, client_config={"sync_request_timeout": 0.3})
    root = conn.root
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        root.sleep_then(1.0, "late")
    assert time.monotonic() - t0 < 0.9
    # the configuration is live: a longer timeout lets the next call wait for the server,
    # which first finishes the expired call (its late reply is dropped)
    conn._config["sync_request_timeout"] = 10
    assert root.sleep_then(0, "next") == "next"
    assert root.echo(7) == 7
