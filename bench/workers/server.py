"""Benchmark server; runs under either interpreter.

    python server.py --kind rpyc   # rpyc.ThreadedServer with BenchService
    python server.py --kind tcp    # raw TCP echo of 16-byte messages (the "floor"); a
                                   # connection that opens with b"BULK<size>" echoes blocks
                                   # of <size> bytes instead (the bulk echo floor)

Binds 127.0.0.1 on an ephemeral port and prints exactly one line on stdout:

    READY <port> <pid>

then serves until killed, until stdin reaches EOF (the orchestrator died), or until
--max-seconds pass.
"""
import argparse
import os
import socket
import sys
import threading

from common import (HOST, LIST_LEN, recv_block, recv_polling, RPYC_CONFIG, max_lifetime, raise_nofile_limit,
                    watch_parent_stdin)

FLOOR_MSG_LEN = 16


def _ready(port):
    sys.stdout.write(f"READY {port} {os.getpid()}\n")
    sys.stdout.flush()


# --------------------------------------------------------------------------- tcp floor
def _recv_exact(sock, n, recv=socket.socket.recv):
    buf = recv(sock, n)
    while len(buf) < n:
        more = recv(sock, n - len(buf))
        if not more:
            return b""
        buf += more
    return buf


def _tcp_echo_conn(sock):
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        data = _recv_exact(sock, FLOOR_MSG_LEN)
        if data.startswith(b"BULK"):
            size = int(data[4:])
            while (block := recv_block(sock, size)) is not None:
                sock.sendall(block)
            return
        recv = socket.socket.recv
        if data.startswith(b"POLL"):  # the polling floor: no echo of this first message
            recv = recv_polling
            data = _recv_exact(sock, FLOOR_MSG_LEN, recv)
        while data:
            sock.sendall(data)
            data = _recv_exact(sock, FLOOR_MSG_LEN, recv)
    except OSError:
        pass
    finally:
        sock.close()


def serve_tcp():
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind((HOST, 0))
    lsock.listen(128)
    _ready(lsock.getsockname()[1])
    while True:
        conn, _ = lsock.accept()
        threading.Thread(target=_tcp_echo_conn, args=(conn,), daemon=True).start()


# --------------------------------------------------------------------------- rpyc
def serve_rpyc():
    import rpyc

    the_list = list(range(LIST_LEN))

    class BenchService(rpyc.Service):
        def exposed_add(self, a, b):
            return a + b

        def exposed_echo(self, data):
            return data

        def exposed_call_me(self, fn, x):
            return fn(x)

        def exposed_get_list(self):
            # a list is not brine-able, so the client receives a netref to it
            return the_list

    server = rpyc.ThreadedServer(
        BenchService,
        hostname=HOST,
        port=0,
        protocol_config=dict(RPYC_CONFIG),
    )
    server._listen()  # (listening before READY: start() would do it later; idempotent)
    _ready(server.port)
    server.start()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kind", choices=("rpyc", "tcp"), required=True)
    ap.add_argument("--max-seconds", type=float, default=1800.0)
    args = ap.parse_args()

    raise_nofile_limit()
    watch_parent_stdin()
    max_lifetime(args.max_seconds)
    if args.kind == "tcp":
        serve_tcp()
    else:
        serve_rpyc()


if __name__ == "__main__":
    main()
