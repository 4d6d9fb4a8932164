"""Unit tests for rpyc.utils (decorators), rpyc.utils.helpers and rpyc.utils.authenticators
that need no live connection: the netref functions are replaced by fakes where needed."""

import gc
import ssl
import threading
import time
import types
from typing import Any, List, Tuple

import pytest

import rpyc
import rpyc.utils as utils
from rpyc.core.consts import HANDLE_BUFFITER, HANDLE_CALL
from rpyc.utils import authenticators, helpers

# ---------------------------------------------------------------------------------------------
# fakes
# ---------------------------------------------------------------------------------------------


class FakeProxy:
    """Looks like a netref to the duck-typed checks of async_."""

    def __init__(self, name: str = "p") -> None:
        self.____conn__ = "conn"
        self.____id_pack__ = ("fake.Thing", 1, id(self))
        self.name = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the wrapper must send a request, not call the proxy")

    def __repr__(self) -> str:
        return f"<FakeProxy {self.name}>"


class NonCallableProxy:
    def __init__(self) -> None:
        self.____conn__ = "conn"
        self.____id_pack__ = ("fake.Thing", 1, 2)


class FakeAsyncResult:
    def __init__(self, request: Tuple[Any, ...]) -> None:
        self.request = request
        self.expiry: Any = "unset"

    def set_expiry(self, timeout: Any) -> None:
        self.expiry = timeout


class FakeNetrefModule:
    def __init__(self, items: List[Any] = []) -> None:
        self.requests: List[Tuple[Any, ...]] = []
        self._items = list(items)

    def asyncreq(self, proxy: Any, handler: int, *args: Any) -> FakeAsyncResult:
        self.requests.append((proxy, handler) + args)
        return FakeAsyncResult((proxy, handler) + args)

    def syncreq(self, proxy: Any, handler: int, *args: Any) -> Any:
        self.requests.append((proxy, handler) + args)
        assert handler == HANDLE_BUFFITER
        (count,) = args
        batch, self._items = self._items[:count], self._items[count:]
        return tuple(batch)


@pytest.fixture
def fake_netref(monkeypatch: pytest.MonkeyPatch) -> FakeNetrefModule:
    fake = FakeNetrefModule(list(range(100)))
    monkeypatch.setattr(helpers, "_netref", lambda: fake)
    return fake


# ---------------------------------------------------------------------------------------------
# exposed / service decorators
# ---------------------------------------------------------------------------------------------


def test_exposed_bare_marks_with_default_prefix() -> None:
    def func() -> None:
        pass

    assert utils.exposed(func) is func
    assert func.__exposed__ == "exposed_"  # type: ignore[attr-defined]


def test_exposed_with_prefix() -> None:
    decorator = utils.exposed("public_")

    def func() -> None:
        pass

    assert decorator(func) is func
    assert func.__exposed__ == "public_"  # type: ignore[attr-defined]


def test_exposed_rejects_other_values() -> None:
    for bad in (5, None, 1.5, b"prefix"):
        with pytest.raises(TypeError):
            utils.exposed(bad)


def test_exposed_default_prefix_follows_default_config(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_protocol = types.ModuleType("rpyc.core.protocol")
    fake_protocol.DEFAULT_CONFIG = {"exposed_prefix": "remote_"}  # type: ignore[attr-defined]
    monkeypatch.setitem(__import__("sys").modules, "rpyc.core.protocol", fake_protocol)

    def func() -> None:
        pass

    utils.exposed(func)
    assert func.__exposed__ == "remote_"  # type: ignore[attr-defined]


def test_service_decorator_publishes_prefixed_names() -> None:
    @utils.service
    class Calc:
        @utils.exposed
        def add(self, a: int, b: int) -> int:
            return a + b

        @utils.exposed("public_")
        def sub(self, a: int, b: int) -> int:
            return a - b

        def hidden(self) -> None:
            pass

        @utils.exposed
        class Nested:
            @utils.exposed
            def inner(self) -> str:
                return "inner"

    assert Calc.exposed_add is Calc.add
    assert Calc.public_sub is Calc.sub
    assert not hasattr(Calc, "exposed_sub")
    assert not hasattr(Calc, "exposed_hidden")
    assert Calc.exposed_Nested is Calc.Nested
    assert Calc.Nested.exposed_inner is Calc.Nested.inner
    assert Calc().exposed_add(1, 2) == 3


def test_service_decorator_returns_class_unchanged_without_marks() -> None:
    class Plain:
        def method(self) -> None:
            pass

    before = dict(vars(Plain))
    assert utils.service(Plain) is Plain
    assert dict(vars(Plain)) == before


# ---------------------------------------------------------------------------------------------
# async_ / timed
# ---------------------------------------------------------------------------------------------


def test_async_rejects_non_proxies() -> None:
    with pytest.raises(TypeError, match="must be a Netref"):
        helpers.async_(len)
    with pytest.raises(TypeError, match="must be callable"):
        helpers.async_(NonCallableProxy())


def test_async_wrapper_cache_and_repr() -> None:
    proxy = FakeProxy("alpha")
    wrapper = helpers.async_(proxy)
    assert helpers.async_(proxy) is wrapper
    assert helpers.async_(wrapper) is wrapper
    assert wrapper.proxy is proxy
    assert repr(wrapper) == "async_(<FakeProxy alpha>)"
    assert getattr(helpers, "async") is helpers.async_


def test_async_cache_is_weak() -> None:
    proxy = FakeProxy()
    key = id(proxy)
    wrapper = helpers.async_(proxy)
    assert key in helpers._async_proxies_cache
    del wrapper
    gc.collect()
    assert key not in helpers._async_proxies_cache


def test_async_call_sends_call_request(fake_netref: FakeNetrefModule) -> None:
    proxy = FakeProxy()
    wrapper = helpers.async_(proxy)
    result = wrapper(1, 2, key="value")
    assert isinstance(result, FakeAsyncResult)
    assert fake_netref.requests == [(proxy, HANDLE_CALL, (1, 2), (("key", "value"),))]


def test_timed_sets_expiry(fake_netref: FakeNetrefModule) -> None:
    proxy = FakeProxy("t")
    timed = helpers.timed(proxy, 2.5)
    assert timed.timeout == 2.5
    assert timed.proxy is helpers.async_(proxy)
    result = timed(7)
    assert result.expiry == 2.5
    assert fake_netref.requests == [(proxy, HANDLE_CALL, (7,), ())]
    assert repr(timed) == "timed(<FakeProxy t>, 2.5)"


def test_timed_rejects_non_proxies() -> None:
    with pytest.raises(TypeError):
        helpers.timed(object(), 1)


# ---------------------------------------------------------------------------------------------
# buffiter
# ---------------------------------------------------------------------------------------------


def test_buffiter_growing_chunks(fake_netref: FakeNetrefModule) -> None:
    source = [0]  # iter() is applied locally to obj; the fake ignores the iterator
    items = list(helpers.buffiter(source, chunk=5, max_chunk=30, factor=3))
    assert items == list(range(100))
    counts = [request[2] for request in fake_netref.requests]
    # batches of 5, 15, 30, 30, then the last 20 items, then an empty batch (exhausted)
    assert counts == [5, 15, 30, 30, 30, 30]
    assert all(request[1] == HANDLE_BUFFITER for request in fake_netref.requests)


def test_buffiter_is_lazy_and_validates_factor() -> None:
    gen = helpers.buffiter([], factor=0)  # nothing happens until iteration starts
    with pytest.raises(ValueError):
        next(gen)


# ---------------------------------------------------------------------------------------------
# restricted
# ---------------------------------------------------------------------------------------------


class Target:
    def __init__(self) -> None:
        self.readable = 1
        self.writable = 2
        self.secret = 3


def test_restricted_read_and_write() -> None:
    target = Target()
    view = helpers.restricted(target, {"readable", "writable"}, {"writable"})
    assert view.readable == 1
    assert type(view)._rpyc_getattr(view, "writable") == 2
    with pytest.raises(AttributeError):
        view.secret
    with pytest.raises(AttributeError):
        type(view)._rpyc_getattr(view, "secret")
    view.writable = 20
    assert target.writable == 20
    type(view)._rpyc_setattr(view, "writable", 21)
    assert target.writable == 21
    with pytest.raises(AttributeError):
        view.readable = 10
    with pytest.raises(AttributeError):
        type(view)._rpyc_setattr(view, "secret", 0)
    assert target.readable == 1 and target.secret == 3


def test_restricted_wattrs_defaults_to_attrs_and_empty_forbids() -> None:
    target = Target()
    view = helpers.restricted(target, ["readable"])
    view.readable = 5
    assert target.readable == 5
    frozen = helpers.restricted(target, ["readable"], ())
    with pytest.raises(AttributeError):
        frozen.readable = 6


def test_restricted_methods_are_bound_to_target() -> None:
    data = [3, 1, 2]
    view = helpers.restricted(data, {"sort", "__len__"})
    view.sort()
    assert data == [1, 2, 3]
    with pytest.raises(AttributeError):
        view.append


# ---------------------------------------------------------------------------------------------
# classpartial
# ---------------------------------------------------------------------------------------------


def test_classpartial_binds_constructor_arguments() -> None:
    class Configured:
        """Docs of Configured."""

        def __init__(self, a: int, b: int = 0) -> None:
            self.a, self.b = a, b

    Partial = helpers.classpartial(Configured, 1, b=2)
    assert isinstance(Partial, type) and issubclass(Partial, Configured)
    assert Partial.__name__ == "Configured"
    assert Partial.__doc__ == "Docs of Configured."
    instance = Partial()
    assert type(instance) is Configured
    assert (instance.a, instance.b) == (1, 2)
    assert Partial() is not instance


# ---------------------------------------------------------------------------------------------
# BgServingThread
# ---------------------------------------------------------------------------------------------


class FakeConn:
    def __init__(self, fail_after: int = -1) -> None:
        self.serve_calls: List[Any] = []
        self.fail_after = fail_after
        self.lock = threading.Lock()

    def serve(self, timeout: Any) -> bool:
        with self.lock:
            self.serve_calls.append(timeout)
            if 0 <= self.fail_after < len(self.serve_calls):
                raise EOFError("connection closed by peer")
        return False


def _wait_for(predicate: Any, limit: float = 5.0) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def test_bg_serving_thread_serves_and_stops() -> None:
    conn = FakeConn()
    bg = helpers.BgServingThread(conn, serve_interval=0.25, sleep_interval=0.001)
    assert _wait_for(lambda: len(conn.serve_calls) >= 3)
    assert set(conn.serve_calls) == {0.25}
    bg.stop()
    assert not bg._thread.is_alive()
    assert bg._conn is None
    count = len(conn.serve_calls)
    time.sleep(0.05)
    assert len(conn.serve_calls) == count
    with pytest.raises(AssertionError):
        bg.stop()


def test_bg_serving_thread_callback_on_error() -> None:
    called = threading.Event()
    conn = FakeConn(fail_after=2)
    bg = helpers.BgServingThread(conn, callback=called.set, sleep_interval=0.001)
    assert called.wait(5)
    bg._thread.join(5)
    assert not bg._active
    assert helpers.BgServingThread.SERVE_INTERVAL == 0.0
    assert helpers.BgServingThread.SLEEP_INTERVAL == 0.1


def test_bg_serving_thread_reraises_without_callback() -> None:
    errors: List[Any] = []
    previous = threading.excepthook
    threading.excepthook = lambda args: errors.append(args.exc_type)
    try:
        bg = helpers.BgServingThread(FakeConn(fail_after=0), sleep_interval=0.001)
        bg._thread.join(5)
    finally:
        threading.excepthook = previous
    assert errors == [EOFError]
    assert not bg._active


# ---------------------------------------------------------------------------------------------
# authenticators
# ---------------------------------------------------------------------------------------------


def test_authentication_error_is_exception() -> None:
    assert issubclass(authenticators.AuthenticationError, Exception)


def test_ssl_authenticator_defaults(tmp_path: Any) -> None:
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tls_certs import make_pki

    pki = make_pki(tmp_path)
    key, cert, ca = pki["server.key"], pki["server.pem"], pki["ca.pem"]
    plain = authenticators.SSLAuthenticator(key, cert)
    assert plain.cert_reqs == ssl.CERT_NONE
    assert plain.ca_certs is None and plain.ssl_version is None and plain.ciphers is None
    with_ca = authenticators.SSLAuthenticator(key, cert, ca_certs=ca)
    assert with_ca.cert_reqs == ssl.CERT_REQUIRED and with_ca.ca_certs == ca
    explicit = authenticators.SSLAuthenticator(key, cert, ca_certs=ca, cert_reqs=ssl.CERT_OPTIONAL)
    assert explicit.cert_reqs == ssl.CERT_OPTIONAL


def test_ssl_authenticator_handshake_failure(tmp_path: Any) -> None:
    import shutil
    import socket
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl command not available")
    key = tmp_path / "key.pem"
    cert = tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    auth = authenticators.SSLAuthenticator(key, cert)
    assert auth.keyfile == str(key) and auth.certfile == str(cert)
    left, right = socket.socketpair()
    try:
        right.sendall(b"this is not a TLS client hello at all\r\n" * 4)
        right.shutdown(socket.SHUT_WR)
        with pytest.raises(authenticators.AuthenticationError):
            auth(left)
    finally:
        left.close()
        right.close()


def test_ssl_authenticator_handshake_success(tmp_path: Any) -> None:
    import shutil
    import socket
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl command not available")
    key = tmp_path / "key.pem"
    cert = tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    auth = authenticators.SSLAuthenticator(key, cert)
    left, right = socket.socketpair()
    outcome: List[Any] = []

    def client() -> None:
        context = ssl.create_default_context(cafile=str(cert))
        context.check_hostname = False
        with context.wrap_socket(right, server_hostname="localhost") as tls:
            tls.sendall(b"ping")
            outcome.append(tls.recv(4))

    thread = threading.Thread(target=client)
    thread.start()
    try:
        tls_server, credentials = auth(left)
        assert isinstance(tls_server, rpyc._core.TlsSocket)  # rustls, not the ssl module
        assert not credentials  # CERT_NONE: the client sent no certificate
        assert tls_server.recv(4) == b"ping"
        tls_server.sendall(b"pong")
        thread.join(10)
        assert outcome == [b"pong"]
        tls_server.close()
    finally:
        thread.join(10)
        left.close()
        right.close()
