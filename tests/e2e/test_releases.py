"""Releases (``HANDLE_DEL`` of a dead proxy) held back to travel with the next frame: the
owner still sees each one before anything sent after it, and a quiet connection sends them
within milliseconds (rpyc._core, releases.rs)."""
import gc
import threading

import pytest

import rpyc

from .support import wait_until


class Owner(rpyc.Service):
    conns = []

    def on_connect(self, conn):
        Owner.conns.append(conn)

    def exposed_make(self):
        return [1, 2, 3]  # a list: sent by reference

    def exposed_held(self):
        """How many of our objects the peer holds, seen from a request."""
        return len(Owner.conns[-1]._local_objects)


def held_by_peer():
    return len(Owner.conns[-1]._local_objects)


@pytest.fixture
def pair(harness):
    Owner.conns = []
    conn, _ = harness.pair(Owner)
    conn.root  # the root is held too: count from here
    return conn


def test_a_release_reaches_the_owner_before_the_next_request(pair):
    conn = pair
    base = conn.root.held()
    for _ in range(50):
        proxy = conn.root.make()
        assert conn.root.held() == base + 1
        del proxy
        assert conn.root.held() == base  # the DEL went first, in the same write or before


ROOT_ONLY = 1  # once every temporary proxy is released, the peer holds the root alone


def test_a_quiet_connection_sends_its_releases_within_milliseconds(pair):
    conn = pair
    proxies = [conn.root.make() for _ in range(10)]
    assert held_by_peer() >= ROOT_ONLY + 10
    del proxies
    gc.collect()
    # nothing else is sent on this connection: the flusher thread sends the releases
    assert wait_until(lambda: held_by_peer() == ROOT_ONLY, timeout=2), held_by_peer()


def test_many_releases_at_once_are_all_delivered(pair):
    conn = pair
    proxies = [conn.root.make() for _ in range(300)]  # more than are ever held back
    assert held_by_peer() >= ROOT_ONLY + 300
    del proxies
    gc.collect()
    assert wait_until(lambda: held_by_peer() == ROOT_ONLY, timeout=2), held_by_peer()


def test_releases_from_many_threads(pair):
    conn = pair
    errors = []

    def worker():
        try:
            for _ in range(40):
                proxy = conn.root.make()
                assert len(proxy) == 3
                del proxy
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert wait_until(lambda: held_by_peer() == ROOT_ONLY, timeout=2), held_by_peer()


def test_releases_held_at_close_do_not_break_closing(pair):
    conn = pair
    proxy = conn.root.make()
    del proxy  # held back...
    conn.close()  # ...and sent ahead of CLOSE, or dropped with the connection
    assert conn.closed
