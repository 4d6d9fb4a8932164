"""Fixtures of the scaling suite (tests/scale): real etcd, dnsmasq and HAProxy processes
(see engines.py) and rpyc servers in subprocesses; every process is stopped at teardown and
every test has a timeout."""

import os

import pytest

from .engines import Dnsmasq, Etcd, HAProxy, ServerProcess

SCALE_DIR = os.path.dirname(os.path.abspath(__file__))


def pytest_collection_modifyitems(config, items):
    for item in items:
        if str(item.fspath).startswith(SCALE_DIR + os.sep) and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(60))


@pytest.fixture
def etcd(tmp_path):
    engine = Etcd(tmp_path)
    try:
        yield engine
    finally:
        engine.stop()


@pytest.fixture
def procs(tmp_path):
    """Start things with ``procs.server(*args)``, ``procs.haproxy(ports)``,
    ``procs.dnsmasq(options)``; all are stopped after the test."""

    class Procs:
        def __init__(self):
            self.started = []

        def _keep(self, thing):
            self.started.append(thing)
            return thing

        def server(self, *args):
            return self._keep(ServerProcess(tmp_path, *args))

        def haproxy(self, ports, **kwargs):
            return self._keep(HAProxy(tmp_path, ports, **kwargs))

        def dnsmasq(self, options):
            return self._keep(Dnsmasq(tmp_path, options))

    p = Procs()
    try:
        yield p
    finally:
        for thing in reversed(p.started):
            thing.stop()
