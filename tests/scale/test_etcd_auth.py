"""EtcdRegistryClient against a real etcd with authentication enabled (user/password, tokens
that expire) and over https with a private CA."""

import base64
import json
import time
import urllib.request

import pytest

import rpyc
from rpyc.utils.registry import EtcdRegistryClient, RegistryError
from rpyc.utils.server import ThreadedServer

from .engines import Etcd

ROOT_PASSWORD = "r00t-Secret-9f2c"
PASSWORD = "s3cret-Pa55-71ab"


class AuthService(rpyc.Service):
    ALIASES = ["AUTHED"]


def _gateway(url, path, body, token=None, context=None):
    request = urllib.request.Request(url + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    if token:
        request.add_header("Authorization", token)
    with urllib.request.urlopen(request, timeout=5, context=context) as resp:
        return json.loads(resp.read())


def _b64(text):
    return base64.b64encode(text.encode()).decode()


def enable_auth(url, context=None):
    """root (needed to enable auth) and user ``rpyc`` with read-write permission on the
    registry's prefix only, through the JSON gateway (what `etcdctl user add`, `role
    grant-permission --prefix` and `auth enable` do)."""
    post = lambda path, body: _gateway(url, path, body, context=context)  # noqa: E731
    post("/v3/auth/user/add", {"name": "root", "password": ROOT_PASSWORD})
    post("/v3/auth/role/add", {"name": "root"})
    post("/v3/auth/user/grant", {"user": "root", "role": "root"})
    post("/v3/auth/role/add", {"name": "rpyc"})
    post("/v3/auth/role/grant", {"name": "rpyc", "perm": {
        "permType": "READWRITE", "key": _b64("/rpyc/"), "range_end": _b64("/rpyc0")}})
    post("/v3/auth/user/add", {"name": "rpyc", "password": PASSWORD})
    post("/v3/auth/user/grant", {"user": "rpyc", "role": "rpyc"})
    post("/v3/auth/enable", {})


def _wait(check, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    return check()


@pytest.fixture
def auth_etcd(tmp_path):
    # (tokens live 2 s: the tests see them expire)
    engine = Etcd(tmp_path, "--auth-token-ttl", "2")
    try:
        enable_auth(engine.url)
        yield engine
    finally:
        engine.stop()


def test_register_and_discover_with_a_password(auth_etcd):
    registrar = EtcdRegistryClient(auth_etcd.url, ttl=3, user="rpyc", password=PASSWORD)
    server = ThreadedServer(AuthService, hostname="127.0.0.1", port=0, registrar=registrar, auto_register=True)
    server._start_in_thread()
    try:
        client = EtcdRegistryClient(auth_etcd.url, user="rpyc", password=PASSWORD)
        expected = (("127.0.0.1", server.port),)
        assert _wait(lambda: client.discover("authed")) == expected
        conn = rpyc.connect_by_service("authed", registrar=client)
        assert conn.root.get_service_name() == "AUTHED"
        conn.close()
        # The tokens expire (2 s idle): the lease renewals (every 1 s, each renewal keeps the
        # server's token alive) and a discovery after an idle pause authenticate again.
        time.sleep(3.5)
        assert client.discover("authed") == expected
        assert rpyc.list_services(registrar=client) == ("AUTHED",)
    finally:
        server.close()
    assert client.discover("authed") == ()  # the lease was revoked with a valid token


def test_expired_token_is_replaced(auth_etcd):
    client = EtcdRegistryClient(auth_etcd.url, user="rpyc", password=PASSWORD)
    assert client.discover("nothing") == ()
    (first,) = client._tokens.values()
    time.sleep(3)  # (the token's 2 s run out)
    assert client.discover("nothing") == ()
    (second,) = client._tokens.values()
    assert second != first


def test_without_credentials_the_error_says_to_pass_them(auth_etcd):
    client = EtcdRegistryClient(auth_etcd.url)
    with pytest.raises(RegistryError, match="pass user= and password="):
        client.discover("authed")


def test_a_wrong_password_is_refused_without_showing_it(auth_etcd):
    wrong = "not-the-Pa55word-3e1d"
    client = EtcdRegistryClient(auth_etcd.url, user="rpyc", password=wrong)
    with pytest.raises(RegistryError) as info:
        client.discover("authed")
    text = str(info.value)
    assert "authenticating as user 'rpyc'" in text and "check user= and password=" in text
    assert wrong not in text
    assert wrong not in repr(client) and "user='rpyc'" in repr(client)
    assert client.register(["AUTHED"], 12345) is False  # (logged, retried by the server)


def test_a_user_without_permission_is_refused(auth_etcd):
    client = EtcdRegistryClient(auth_etcd.url, prefix="/elsewhere/", user="rpyc", password=PASSWORD)
    with pytest.raises(RegistryError, match="permission denied"):
        client.discover("authed")


def test_credentials_go_together():
    with pytest.raises(ValueError, match="both user= and password="):
        EtcdRegistryClient("http://127.0.0.1:2379", user="rpyc")


def test_https_with_a_ca_file(tmp_path):
    from tls_certs import make_pki  # (tests/, on the path through its conftest)

    pki = make_pki(tmp_path / "pki")
    engine = Etcd(tmp_path, tls=(pki["server.pem"], pki["server.key"], pki["ca.pem"]))
    try:
        enable_auth(engine.url, context=engine._context)
        registrar = EtcdRegistryClient(engine.url, ttl=3, ca_file=pki["ca.pem"], user="rpyc", password=PASSWORD)
        assert registrar.register(["AUTHED"], 4242, interface="127.0.0.1") is True
        assert registrar.discover("authed") == (("127.0.0.1", 4242),)
        registrar.unregister(4242)
        assert registrar.discover("authed") == ()
        # A CA that did not sign etcd's certificate: refused, naming the endpoint.
        stranger = EtcdRegistryClient(engine.url, ca_file=pki["other-ca.pem"], user="rpyc", password=PASSWORD)
        with pytest.raises(RegistryError, match="CERTIFICATE_VERIFY_FAILED"):
            stranger.discover("authed")
    finally:
        engine.stop()
