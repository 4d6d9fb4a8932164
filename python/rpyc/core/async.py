"""Upstream's alias of :mod:`rpyc.core.async_` (``async`` is a keyword since Python 3.7, so
this module is reachable only through ``importlib.import_module("rpyc.core.async")``)."""

from rpyc.core.async_ import *  # noqa: F401,F403
