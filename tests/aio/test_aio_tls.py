"""rpyc.aio over TLS (rustls driven by the event loop, no socket in the TLS code): the same
verification, errors and credentials as the blocking TLS of rpyc.ssl_connect /
SSLAuthenticator, and interop with the blocking side in both directions."""

import asyncio
import ssl
import threading
import warnings

import pytest

import rpyc
import rpyc.aio
from rpyc.utils.authenticators import SSLAuthenticator
from rpyc.utils.server import ThreadedServer
from tls_certs import have_openssl_cli, make_openssl_pki, make_pki

from aio_support import run


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


class Who(rpyc.Service):
    def on_connect(self, conn):
        self.conn = conn

    async def exposed_add(self, x, y):
        return x + y

    def exposed_echo(self, data):
        return data

    async def exposed_peer_subject(self):
        cert = self.conn._config["credentials"]
        return None if not cert else dict(x[0] for x in cert["subject"])["commonName"]


def _auth(pki, **kw):
    return SSLAuthenticator(pki["server.key"], pki["server.pem"], **kw)


def test_verified_tls_with_client_certificates(pki):
    async def main():
        auth = _auth(pki, ca_certs=pki["ca.pem"])
        async with await rpyc.aio.serve(Who, port=0, ssl=auth) as server:
            async with rpyc.aio.ssl_connect("127.0.0.1", server.port, ca_certs=pki["ca.pem"],
                                            keyfile=pki["client.key"], certfile=pki["client.pem"]) as conn:
                assert await conn.root.add(1, 2) == 3
                assert await conn.root.peer_subject() == "test client"
                big = bytes(range(256)) * 20000  # 5 MB: many TLS records, a heavy frame
                assert await conn.root.echo(big) == big
                results = await asyncio.gather(*(conn.root.add(i, 1) for i in range(200)))
                assert results == list(range(1, 201))

    run(main)


def test_certificate_problems_are_refused_with_a_clear_error(pki):
    async def main():
        async with await rpyc.aio.serve(Who, port=0, ssl=_auth(pki)) as server:
            with pytest.raises(ssl.SSLError, match="certificate verify failed"):
                await rpyc.aio.ssl_connect("127.0.0.1", server.port, ca_certs=pki["other-ca.pem"])
            # the server still serves
            async with rpyc.aio.ssl_connect("127.0.0.1", server.port, ca_certs=pki["ca.pem"]) as conn:
                assert await conn.root.add(2, 2) == 4
        # mutual TLS: a client without a certificate is refused
        async with await rpyc.aio.serve(Who, port=0, ssl=_auth(pki, ca_certs=pki["ca.pem"])) as server:
            with pytest.raises((ssl.SSLError, EOFError, ConnectionError)):
                conn = await rpyc.aio.ssl_connect("127.0.0.1", server.port, ca_certs=pki["ca.pem"])
                await conn.root.add(1, 1)

    run(main)


def test_wrong_host_name_is_refused(pki):
    async def main():
        auth = SSLAuthenticator(pki["wrong-host.key"], pki["wrong-host.pem"])
        async with await rpyc.aio.serve(Who, port=0, ssl=auth) as server:
            with pytest.raises(ssl.SSLError, match="certificate verify failed"):
                await rpyc.aio.ssl_connect("127.0.0.1", server.port, ca_certs=pki["ca.pem"])
            async with rpyc.aio.ssl_connect("127.0.0.1", server.port, ca_certs=pki["ca.pem"],
                                            check_hostname=False) as conn:
                assert await conn.root.add(1, 1) == 2

    run(main)


def test_unverified_tls_warns(pki):
    async def main():
        async with await rpyc.aio.serve(Who, port=0, ssl=_auth(pki)) as server:
            from rpyc.core import tls

            tls._warned_unverified.clear()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                async with rpyc.aio.ssl_connect("127.0.0.1", server.port) as conn:
                    assert await conn.root.add(1, 1) == 2
            assert any(issubclass(w.category, rpyc.SecurityWarning) for w in caught)

    run(main)


def test_blocking_tls_peers_both_ways(pki):
    # a blocking TLS client against the rpyc.aio TLS server
    async def aio_server():
        async with await rpyc.aio.serve(Who, port=0, ssl=_auth(pki)) as server:
            loop = asyncio.get_running_loop()

            def blocking_client():
                c = rpyc.ssl_connect("127.0.0.1", server.port, ca_certs=pki["ca.pem"])
                try:
                    return [c.root.add(i, i) for i in range(20)]
                finally:
                    c.close()

            assert await loop.run_in_executor(None, blocking_client) == [2 * i for i in range(20)]

    run(aio_server)

    # an rpyc.aio TLS client against the blocking TLS server
    class Plain(rpyc.Service):
        def exposed_add(self, x, y):
            return x + y

    server = ThreadedServer(Plain, port=0, authenticator=_auth(pki))
    thread = threading.Thread(target=server.start, daemon=True)
    thread.start()
    try:
        async def aio_client():
            async with rpyc.aio.ssl_connect("127.0.0.1", server.port, ca_certs=pki["ca.pem"]) as conn:
                assert await asyncio.gather(*(conn.root.add(i, 1) for i in range(50))) == list(range(1, 51))

        run(aio_client)
    finally:
        server.close()
        thread.join(5)


@pytest.mark.skipif(not have_openssl_cli(), reason="needs the openssl command")
def test_openssl_recipe_certificates(tmp_path):
    """Upstream's test_ssl.py recipe over rpyc.aio: the self-signed CA:TRUE server.crt as the
    client's ca_certs, the v1 client.crt checked against the bundle; client2 (signed by the
    v1 client.crt, which may not issue) refused."""
    recipe = make_openssl_pki(tmp_path / "openssl-recipe")

    async def main():
        auth = SSLAuthenticator(recipe["server.key"], recipe["server.crt"],
                                ca_certs=recipe["client-server.bundle.crt"])
        async with await rpyc.aio.serve(Who, port=0, ssl=auth) as server:
            async with rpyc.aio.ssl_connect("localhost", server.port, ca_certs=recipe["server.crt"],
                                            keyfile=recipe["client.key"],
                                            certfile=recipe["client.crt"]) as conn:
                assert await conn.root.peer_subject() == "client"
            # (TLS 1.3: the refusal can arrive after the client's half of the handshake)
            with pytest.raises((ssl.SSLError, EOFError, ConnectionError),
                               match="unknown ca|closed"):
                async with rpyc.aio.ssl_connect("localhost", server.port,
                                                ca_certs=recipe["server.crt"],
                                                keyfile=recipe["client2.key"],
                                                certfile=recipe["client2.crt"]) as conn:
                    await conn.root.add(1, 1)

    run(main)
