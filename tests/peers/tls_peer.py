#!/usr/bin/env python
"""Interop peer for TLS: runs unchanged under upstream rpyc 6.0.2 (Python ``ssl``) or ours
(rustls), using only the public API.

    tls_peer.py server --certfile F --keyfile F [--ca F]
        ThreadedServer on 127.0.0.1 with SSLAuthenticator; prints "PORT <n>", serves until
        stdin closes.
    tls_peer.py client --port N [--host H] [--ca F] [--certfile F --keyfile F]
        ssl_connect, then add / 1 MiB echo / callback / credentials; prints one JSON line:
        {"ok": true, ...} or {"ok": false, "error": "<ExceptionType>: <message>"}.
"""

import argparse
import json
import sys
import threading
import time

import rpyc
from rpyc.utils.authenticators import SSLAuthenticator
from rpyc.utils.server import ThreadedServer


class TlsPeerService(rpyc.Service):
    def on_connect(self, conn):
        self._conn = conn

    def exposed_add(self, a, b):
        return a + b

    def exposed_echo(self, data):
        return data

    def exposed_call_back(self, fn, value):
        return fn(value) * 2

    def exposed_client_common_name(self):
        creds = self._conn._config.get("credentials")
        if not creds:
            return None
        return dict(rdn[0] for rdn in creds["subject"])["commonName"]


def serve(args):
    auth = SSLAuthenticator(args.keyfile, args.certfile, ca_certs=args.ca)
    server = ThreadedServer(TlsPeerService, hostname="127.0.0.1", port=0, authenticator=auth)
    server._listen()  # (listening before the port is announced: start() would do it later)
    threading.Thread(target=server.start, daemon=True).start()
    print("PORT %d" % server.port, flush=True)
    sys.stdin.read()  # until the harness closes our stdin
    server.close()


def client(args):
    kwargs = {}
    if args.ca:
        kwargs["ca_certs"] = args.ca
    if args.certfile:
        kwargs.update(certfile=args.certfile, keyfile=args.keyfile)
    try:
        conn = rpyc.ssl_connect(args.host, args.port, **kwargs)
        try:
            payload = bytes(range(256)) * 4096
            result = {
                "ok": True,
                "add": conn.root.add(2, 3),
                "echo_ok": conn.root.echo(payload) == payload,
                "callback": conn.root.call_back(lambda v: v + 1, 20),
                "client_cn": conn.root.client_common_name(),
            }
            if args.calls:
                # temporary proxies dropped between calls: a release, then the next request
                started = time.monotonic()
                for i in range(args.calls):
                    if conn.root.add(i, 1) != i + 1:
                        raise AssertionError("wrong sum")
                result["calls_s"] = round(time.monotonic() - started, 3)
        finally:
            conn.close()
    except Exception as exc:
        result = {"ok": False, "error": "%s: %s" % (type(exc).__name__, exc)}
    print(json.dumps(result), flush=True)


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="role", required=True)
    srv = sub.add_parser("server")
    srv.add_argument("--certfile", required=True)
    srv.add_argument("--keyfile", required=True)
    srv.add_argument("--ca")
    cli = sub.add_parser("client")
    cli.add_argument("--host", default="localhost")
    cli.add_argument("--port", type=int, required=True)
    cli.add_argument("--ca")
    cli.add_argument("--certfile")
    cli.add_argument("--keyfile")
    cli.add_argument("--calls", type=int, default=0, help="then N conn.root.add calls, timed")
    args = parser.parse_args()
    serve(args) if args.role == "server" else client(args)


if __name__ == "__main__":
    main()
