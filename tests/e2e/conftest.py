"""Fixtures of the end-to-end suite (tests/e2e): real servers and connections over loopback
sockets, torn down after every test, and a default per-test timeout so nothing can hang.

The tests use only the public rpyc API (plus ``_start_in_thread``, ``_config`` and
``_local_objects``, which upstream has too), so they also run against upstream rpyc 6.0.2
as a control; there the xfail(strict) tests documenting our bugs XPASS, and the few checks
of rpyc-rs improvements (e.g. connect errors naming the address) fail."""

import os

import pytest

from .support import Harness

E2E_DIR = os.path.dirname(os.path.abspath(__file__))
DEFAULT_TIMEOUT = 30  # seconds; tests that need less or more say so with their own marker


def pytest_collection_modifyitems(config, items):
    for item in items:
        if str(item.fspath).startswith(E2E_DIR + os.sep) and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(DEFAULT_TIMEOUT))


@pytest.fixture
def harness():
    """A :class:`Harness`; every server, connection and process it made is closed after the
    test."""
    h = Harness()
    try:
        yield h
    finally:
        h.close()
