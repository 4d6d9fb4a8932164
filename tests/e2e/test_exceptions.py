"""Remote exceptions ("vinegar"): builtin types come back as themselves with the remote
traceback in ``str()``, custom ones as ``GenericException`` subclasses or as the real class
when the configuration allows it, StopIteration, and denied tracebacks."""

import sys
import uuid

import pytest

import rpyc
from rpyc.core.vinegar import GenericException


class CustomError(Exception):
    """A non-builtin exception class, importable as ``<this module>.CustomError``."""

    def __init__(self, message, code=0):
        super().__init__(message, code)
        self.code = code


class ExcService(rpyc.Service):
    def exposed_fail_value(self):
        raise ValueError("bad value 17")

    def exposed_fail_key(self):
        return {}["missing-key"]

    def exposed_fail_attribute(self):
        return object().no_such_attribute

    def exposed_fail_custom(self):
        raise CustomError("custom failure", code=7)

    def exposed_fail_dynamic(self, modname, clsname):
        # an exception whose class claims to live in a module nobody imported yet
        cls = type(clsname, (Exception,), {"__module__": modname})
        raise cls("lazy failure")

    def exposed_stop(self):
        return next(iter(()))

    def exposed_ok(self):
        return "ok"


RAISERS = {
    ValueError: ("fail_value", "bad value 17"),
    KeyError: ("fail_key", "missing-key"),
    AttributeError: ("fail_attribute", "no_such_attribute"),
}


@pytest.mark.parametrize("exc_type", list(RAISERS), ids=lambda t: t.__name__)
def test_builtin_exception_comes_back_as_its_type(harness, exc_type):
    conn, _ = harness.pair(ExcService)
    method, text = RAISERS[exc_type]
    with pytest.raises(exc_type) as info:
        getattr(conn.root, method)()
    exc = info.value
    assert not isinstance(exc, GenericException)
    message = str(exc)
    assert text in message
    assert "========= Remote Traceback (1) =========" in message
    assert "exposed_" + method in message  # the remote frame is named in the traceback
    assert "Traceback (most recent call last)" in exc._remote_tb
    assert exc._remote_version == rpyc.__version__
    assert conn.root.ok() == "ok"  # the connection survives


def test_custom_exception_is_a_generic_exception(harness):
    conn, _ = harness.pair(ExcService)
    with pytest.raises(GenericException) as info:
        conn.root.fail_custom()
    exc = info.value
    assert isinstance(exc, rpyc.GenericException)
    assert not isinstance(exc, CustomError)
    assert exc.args == ("custom failure", 7)
    assert exc.code == 7
    assert CustomError.__name__ in type(exc).__name__
    assert "custom failure" in str(exc) and "Remote Traceback" in str(exc)


def test_custom_exception_instantiated_when_allowed(harness):
    conn, _ = harness.pair(ExcService, client_config={"instantiate_custom_exceptions": True})
    with pytest.raises(CustomError) as info:
        conn.root.fail_custom()
    exc = info.value
    assert exc.args == ("custom failure", 7)
    assert exc.code == 7
    assert "Remote Traceback" in str(exc)


def test_custom_exception_module_imported_when_allowed(harness, tmp_path, monkeypatch):
    modname = "e2e_lazy_exc_" + uuid.uuid4().hex
    (tmp_path / (modname + ".py")).write_text("class LazyError(Exception):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        # without import_custom_exceptions the module stays unimported: a GenericException
        conn1, _ = harness.pair(ExcService, client_config={"instantiate_custom_exceptions": True})
        with pytest.raises(GenericException):
            conn1.root.fail_dynamic(modname, "LazyError")
        assert modname not in sys.modules
        conn2, _ = harness.pair(ExcService, client_config={
            "instantiate_custom_exceptions": True, "import_custom_exceptions": True})
        with pytest.raises(Exception) as info:
            conn2.root.fail_dynamic(modname, "LazyError")
        assert modname in sys.modules
        assert isinstance(info.value, sys.modules[modname].LazyError)
        assert info.value.args == ("lazy failure",)
    finally:
        sys.modules.pop(modname, None)


def test_stop_iteration_crosses_the_connection(harness):
    conn, _ = harness.pair(ExcService)
    with pytest.raises(StopIteration):
        conn.root.stop()
    assert conn.root.ok() == "ok"


def test_traceback_denied(harness):
    conn, _ = harness.pair(ExcService, protocol_config={"include_local_traceback": False})
    with pytest.raises(ValueError) as info:
        conn.root.fail_value()
    assert info.value._remote_tb == "<traceback denied>"
    assert "<traceback denied>" in str(info.value)
    assert "exposed_fail_value" not in str(info.value)


def test_version_denied(harness):
    conn, _ = harness.pair(ExcService, protocol_config={"include_local_version": False})
    with pytest.raises(ValueError) as info:
        conn.root.fail_value()
    assert info.value._remote_version == "<version denied>"
    assert "WARNING" not in str(info.value)
