"""``Connection._dispatch(data)``: one raw message payload processed as if it had been received.

Upstream's test suite patches this method (tests/test_affinity.py); received frames do not
pass through it here (the engine processes them natively), but calling it must work: a
request is served and answered to the peer, a reply reaches its waiter. The peer in these
tests is the raw end of a socket pair, so every byte the connection sends is visible.
"""
import socket
import struct
import threading

import pytest

import rpyc
from rpyc import _core
from rpyc.core import brine, consts
from rpyc.core.stream import SocketStream
from rpyc.utils.factory import connect_stream

pytestmark = pytest.mark.timeout(30)


class RawEnd:
    """The other end of the socket pair: reads frames the connection sends."""

    def __init__(self, sock):
        self.sock = sock
        self.sock.settimeout(5)
        self.buf = b""

    def _need(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed")
            self.buf += chunk

    def recv_payload(self):
        self._need(5)
        length, flag = struct.unpack("!LB", self.buf[:5])
        self._need(5 + length + 1)
        payload, self.buf = self.buf[5:5 + length], self.buf[6 + length:]
        assert flag == 0
        return payload

    def nothing_pending(self, wait=0.2):
        self.sock.settimeout(wait)
        try:
            return not self.sock.recv(1, socket.MSG_PEEK)
        except socket.timeout:
            return True
        finally:
            self.sock.settimeout(5)


@pytest.fixture
def pair():
    def make(**config):
        a, b = socket.socketpair()
        # The raw end scripts exact sequence numbers: no rpyc-rs hello first.
        cfg = {"sync_request_timeout": 5, "rpyc_rs_extensions": False}
        cfg.update(config)
        conn = connect_stream(SocketStream(a), rpyc.VoidService, cfg)
        made.append((conn, b))
        return conn, RawEnd(b)

    made = []
    try:
        yield make
    finally:
        for conn, b in made:
            b.close()
            conn._cleanup()


def message(msg_type, seq, body):
    return bytes([msg_type]) + brine.dump((seq, body))


def test_injected_request_is_served_and_answered(pair):
    conn, peer = pair()
    conn._dispatch(message(consts.MSG_REQUEST, 7,
                           (consts.HANDLE_PING, (consts.LABEL_VALUE, ("hi",)))))
    payload = peer.recv_payload()
    assert payload[0] == consts.MSG_REPLY
    assert brine.load(payload[1:]) == (7, (consts.LABEL_VALUE, "hi"))


def test_injected_request_failure_is_answered_with_an_exception(pair):
    conn, peer = pair()
    conn._dispatch(message(consts.MSG_REQUEST, 8, (99, (consts.LABEL_VALUE, ()))))
    payload = peer.recv_payload()
    assert payload[0] == consts.MSG_EXCEPTION
    seq, raw = brine.load(payload[1:])
    assert seq == 8 and raw[0] == ("builtins", "KeyError")


def test_injected_reply_reaches_an_async_result(pair):
    conn, peer = pair()
    res = conn.async_request(consts.HANDLE_PING, "x")
    request = peer.recv_payload()
    seq, body = brine.load(request[1:])
    assert body == (consts.HANDLE_PING, (consts.LABEL_VALUE, ("x",)))
    assert not res.ready
    conn._dispatch(message(consts.MSG_REPLY, seq, (consts.LABEL_VALUE, "from _dispatch")))
    assert res.ready and res.value == "from _dispatch"
    assert peer.nothing_pending()


def test_injected_exception_reaches_an_async_result(pair):
    conn, peer = pair()
    res = conn.async_request(consts.HANDLE_PING, "x")
    seq, _ = brine.load(peer.recv_payload()[1:])
    exc = (("builtins", "ValueError"), ("bad",), (), "remote tb")
    conn._dispatch(message(consts.MSG_EXCEPTION, seq, exc))
    assert res.error
    with pytest.raises(ValueError, match="bad"):
        res.value


def test_injected_reply_wakes_a_sync_waiter_in_another_thread(pair):
    """The waiting thread is blocked reading the socket; the reply comes from _dispatch on
    another thread, which files it; the waiter sees it when its read returns (here: when the
    peer sends an unrelated frame, as a real reader would on the next frame)."""
    conn, peer = pair()
    out = {}

    def waiter():
        out["value"] = conn.sync_request(consts.HANDLE_PING, "y")

    t = threading.Thread(target=waiter)
    t.start()
    seq, _ = brine.load(peer.recv_payload()[1:])
    conn._dispatch(message(consts.MSG_REPLY, seq, (consts.LABEL_VALUE, "woken")))
    peer.sock.sendall(struct.pack("!LB", 0, 0) + b"\n")  # an empty frame: "nothing arrived"
    t.join(5)
    assert not t.is_alive() and out["value"] == "woken"


def test_patched_dispatch_as_upstream_tests_do(pair, monkeypatch):
    """upstream's test_affinity wraps Connection._dispatch and calls the original."""
    calls = []
    orig = rpyc.core.protocol.Connection._dispatch

    def wrapped(self, data):
        calls.append(data[0])
        return orig(self, data)

    monkeypatch.setattr(rpyc.core.protocol.Connection, "_dispatch", wrapped)
    conn, peer = pair()
    conn._dispatch(message(consts.MSG_REQUEST, 1, (consts.HANDLE_PING, (consts.LABEL_VALUE, (5,)))))
    assert brine.load(peer.recv_payload()[1:]) == (1, (consts.LABEL_VALUE, 5))
    assert calls == [consts.MSG_REQUEST]


def test_bind_threads_payload_has_no_prefix(pair):
    """As upstream, the payload given to _dispatch has no thread prefix; the answer carries
    one (sender: this thread, recipient: the unbound peer thread)."""
    conn, peer = pair(bind_threads=True)
    conn._dispatch(message(consts.MSG_REQUEST, 3, (consts.HANDLE_PING, (consts.LABEL_VALUE, ("t",)))))
    payload = peer.recv_payload()
    sender, recipient = struct.unpack("!QQ", payload[:16])
    assert sender != 0 and recipient == 0
    assert payload[16] == consts.MSG_REPLY
    assert brine.load(payload[17:]) == (3, (consts.LABEL_VALUE, "t"))


def test_malformed_payload_closes_the_connection_as_if_received(pair):
    conn, peer = pair()
    with pytest.raises(_core.ProtocolError, match="unknown message type 7"):
        conn._dispatch(b"\x07" + brine.dump((0, None)))
    with pytest.raises(EOFError):
        peer.recv_payload()
    with pytest.raises(EOFError):
        conn.ping()
