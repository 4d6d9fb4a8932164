"""Connection limits: each config key is hit on purpose and its error names the key and value.

- ``max_pending_requests``: our requests awaiting answers (a peer that never answers);
- ``max_local_objects``: our objects the peer holds references to (a peer that never releases);
- ``max_frame_size`` on the sending side: a frame a peer with that limit would refuse is not
  sent; a reply becomes an exception, the connection stays usable;
- ``send_stall_timeout``: a peer that stops reading is disconnected instead of holding a
  server thread (and the frame it waits to write) forever. The same bound applies to a peer
  that floods requests without reading the answers.

Servers are hostile_server.py subprocesses (see conftest.py); every wait is bounded.
"""
import gc
import socket
import struct
import threading
import time

import pytest

import rpyc
from rpyc.core import consts
from hostile_wire import (
    HANDLE_CALLATTR, HANDLE_GETATTR, HANDLE_GETROOT, HANDLE_PING, HOST, LABEL_LOCAL_REF,
    LABEL_REMOTE_REF, LABEL_TUPLE, LABEL_VALUE, MSG_EXCEPTION, MSG_REPLY, RawClient, brine,
    frame, request, request_payload, unbrine,
)

pytestmark = pytest.mark.timeout(90)

MiB = 1 << 20
# Raw peers below script exact requests: no rpyc-rs hello on those connections.
NO_HELLO = {"rpyc_rs_extensions": False}
HANDLE_DEL = 15


def connect(server, **config):
    cfg = {"sync_request_timeout": 10}
    cfg.update(config)
    return rpyc.connect(HOST, server.port, config=cfg)


def assert_healthy(server):
    assert server.alive(), "the server died (status %s); log:\n%s" % (
        server.proc.returncode, server.log_tail())
    conn = connect(server)
    try:
        assert conn.root.add(1, 2) == 3
    finally:
        conn.close()


def boxed_args(*boxes):
    return brine((LABEL_TUPLE, tuple(boxes)))


def raw_getroot(c, seq):
    c.send(request(seq, HANDLE_GETROOT))
    mtype, rseq, (label, id_pack) = c.recv_message()
    assert (mtype, rseq, label) == (MSG_REPLY, seq, LABEL_REMOTE_REF)
    return id_pack


def raw_getattr(c, seq, id_pack, name):
    """GETATTR(obj, name): the (type, seq, body) answer."""
    c.send(frame(request_payload(seq, HANDLE_GETATTR, boxed_args(
        (LABEL_LOCAL_REF, id_pack), (LABEL_VALUE, name)))))
    return c.recv_message()


# ---------------------------------------------------------------------------------------------
# max_pending_requests
# ---------------------------------------------------------------------------------------------

class SilentPeer:
    """A TCP peer that accepts one connection, reads what it is sent and answers nothing until
    told to (``answer``)."""

    def __init__(self):
        self.listener = socket.socket()
        self.listener.bind((HOST, 0))
        self.listener.listen(1)
        self.listener.settimeout(10)
        self.port = self.listener.getsockname()[1]
        self.sock = None
        self.buf = b""

    def accept(self):
        self.sock, _ = self.listener.accept()
        self.sock.settimeout(5)

    def read_requests(self, count):
        """The seqs of the next ``count`` request frames."""
        seqs = []
        while len(seqs) < count:
            while len(self.buf) < 5 or len(self.buf) < 6 + struct.unpack("!L", self.buf[:4])[0]:
                chunk = self.sock.recv(65536)
                assert chunk, "the client closed the connection"
                self.buf += chunk
            length = struct.unpack("!L", self.buf[:4])[0]
            payload, self.buf = self.buf[5:5 + length], self.buf[6 + length:]
            seq, _ = unbrine(payload[1:])
            seqs.append(seq)
        return seqs

    def answer(self, seq, value):
        self.sock.sendall(frame(bytes([MSG_REPLY]) + brine((seq, (LABEL_VALUE, value)))))

    def close(self):
        for s in (self.sock, self.listener):
            if s is not None:
                s.close()


@pytest.fixture
def silent_peer():
    peer = SilentPeer()
    try:
        yield peer
    finally:
        peer.close()


def test_pending_requests_to_a_peer_that_never_answers(silent_peer):
    conn = rpyc.connect(HOST, silent_peer.port,
                        config={"max_pending_requests": 20, "sync_request_timeout": 5,
                                **NO_HELLO})
    try:
        silent_peer.accept()
        results = [conn.async_request(consts.HANDLE_PING, i) for i in range(20)]
        with pytest.raises(RuntimeError, match="max_pending_requests=20") as info:
            conn.async_request(consts.HANDLE_PING, 20)
        assert "raise the max_pending_requests config key" in str(info.value)
        # a synchronous request counts the same way and fails at once (no 5 s wait)
        t0 = time.monotonic()
        with pytest.raises(RuntimeError, match="max_pending_requests=20"):
            conn.sync_request(consts.HANDLE_PING, "sync")
        assert time.monotonic() - t0 < 1.0
        # requests whose answer nobody awaits (HANDLE_DEL's path) take no slot
        for _ in range(50):
            conn._async_request(consts.HANDLE_PING, ("fire and forget",))
        # answers free their slots
        seqs = silent_peer.read_requests(20)
        for seq in seqs[:5]:
            silent_peer.answer(seq, seq)
        assert [r.value for r in results[:5]] == seqs[:5]  # waits, serving, for each
        extra = [conn.async_request(consts.HANDLE_PING, i) for i in range(5)]
        with pytest.raises(RuntimeError, match="max_pending_requests=20"):
            conn.async_request(consts.HANDLE_PING, "one too many")
        assert not any(r.ready for r in extra)
        # close() does not wait for an answer the full table has no room to await
        t0 = time.monotonic()
        conn.close()
        assert time.monotonic() - t0 < 1.0
    finally:
        conn._cleanup()


def test_pending_requests_via_async_proxies(fresh_server):
    """``rpyc.async_`` calls that nobody waits for yet: the answers stay unread in the socket,
    so the count is exact; once they are read, calls are accepted again."""
    server = fresh_server()
    conn = connect(server, max_pending_requests=10)
    try:
        add = rpyc.async_(conn.root.add)
        results = [add(i, 1) for i in range(10)]
        with pytest.raises(RuntimeError, match="max_pending_requests=10"):
            add(10, 1)
        assert [r.value for r in results] == list(range(1, 11))
        assert [add(i, 2).value for i in range(3)] == [2, 3, 4]
        assert conn.root.add(2, 2) == 4
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------------
# max_local_objects
# ---------------------------------------------------------------------------------------------

def test_local_objects_peer_that_never_releases(fresh_server):
    """A raw peer takes new references (a fresh bound method per GETATTR) and never sends DEL:
    the server refuses the 51st with an EXCEPTION naming the key, keeps the connection, and
    accepts new references again once the peer releases some."""
    server = fresh_server(config={"max_local_objects": 50})
    with RawClient(server.port) as c:
        root = raw_getroot(c, 1)                       # the root is the first object
        held = []
        for seq in range(2, 51):
            mtype, rseq, (label, id_pack) = raw_getattr(c, seq, root, "add")
            assert (mtype, rseq, label) == (MSG_REPLY, seq, LABEL_REMOTE_REF)
            held.append(id_pack)
        assert len(set(held)) == 49
        mtype, rseq, body = raw_getattr(c, 51, root, "add")
        assert (mtype, rseq) == (MSG_EXCEPTION, 51), body
        assert body[0] == ("builtins", "RuntimeError"), body
        assert "max_local_objects=50" in body[1][0], body
        assert "raise the max_local_objects config key" in body[1][0], body
        # still usable
        c.send(request(52, HANDLE_PING, ("alive",)))
        assert c.recv_message() == (MSG_REPLY, 52, (LABEL_VALUE, "alive"))
        # release two references: room for two more
        for seq, id_pack in ((53, held[0]), (54, held[1])):
            c.send(frame(request_payload(seq, HANDLE_DEL, boxed_args(
                (LABEL_LOCAL_REF, id_pack), (LABEL_VALUE, 1)))))
            assert c.recv_message() == (MSG_REPLY, seq, (LABEL_VALUE, None))
        for seq in (55, 56):
            assert raw_getattr(c, seq, root, "add")[0] == MSG_REPLY
        assert raw_getattr(c, 57, root, "add")[0] == MSG_EXCEPTION
    assert_healthy(server)


def test_local_objects_rpyc_client(fresh_server):
    """The same through a normal client: the error arrives as a RuntimeError; proxies the
    client drops are released (DEL) and make room."""
    server = fresh_server(config={"max_local_objects": 30})
    conn = connect(server)
    try:
        root = conn.root
        held = []
        with pytest.raises(RuntimeError, match="max_local_objects=30"):
            for _ in range(40):
                held.append(root.echo)               # a new bound method each time
        assert len(held) == 29
        conn.ping()                                  # the connection still works
        del held[:10]
        gc.collect()
        more = [root.echo for _ in range(9)]
        assert len(more) == 9
        assert root.table_size() == 30               # counting table_size itself
    finally:
        conn.close()
    assert_healthy(server)


def test_local_objects_partial_reply_is_taken_back(fresh_server):
    """A reply holding several new objects that do not all fit becomes an exception and none
    of them stays in the table (the peer never learnt of them, so it could never release
    them)."""
    server = fresh_server(config={"max_local_objects": 10})
    conn = connect(server)
    try:
        root = conn.root
        before = root.table_size()                   # root (+ bound methods already dropped)
        with pytest.raises(RuntimeError, match="max_local_objects=10"):
            root.objects(20)
        assert root.table_size() == before
        objs = root.objects(3)
        assert len(objs) == 3
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------------
# max_frame_size, sending side
# ---------------------------------------------------------------------------------------------

def test_outgoing_reply_over_max_frame_size_becomes_an_exception(fresh_server):
    server = fresh_server(config={"max_frame_size": MiB})
    conn = connect(server)
    try:
        with pytest.raises(ValueError, match=r"outgoing frame of 2\.0 MiB exceeds max_frame_size=1 MiB"):
            conn.root.blob(2 * MiB)
        assert len(conn.root.blob(MiB - 100)) == MiB - 100
        assert conn.root.add(1, 2) == 3
    finally:
        conn.close()
    assert_healthy(server)


def test_outgoing_exception_over_max_frame_size_is_replaced(fresh_server):
    """An exception too large to send is answered with the reason instead: the request
    still gets its answer."""
    server = fresh_server(config={"max_frame_size": MiB})
    conn = connect(server)
    try:
        with pytest.raises(ValueError, match=r"outgoing frame of .* exceeds max_frame_size=1 MiB"):
            conn.root.fail(2 * MiB)
        with pytest.raises(ValueError, match=r"^[0-9a-f]{200}\s"):
            conn.root.fail(100)
        assert conn.root.add(1, 2) == 3
    finally:
        conn.close()


def test_outgoing_request_over_max_frame_size_is_refused_locally(fresh_server):
    import os
    server = fresh_server()
    conn = connect(server, max_frame_size=MiB)
    try:
        root = conn.root
        with pytest.raises(ValueError, match=r"exceeds max_frame_size=1 MiB"):
            root.echo(os.urandom(2 * MiB))
        assert root.add(1, 2) == 3
        assert root.table_size() == 2                # root and table_size: nothing left over
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------------
# send_stall_timeout and the incoming flood
# ---------------------------------------------------------------------------------------------

def small_rcvbuf_client(port):
    c = RawClient.__new__(RawClient)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
    sock.settimeout(5)
    sock.connect((HOST, port))
    c.sock, c.timeout, c.buf = sock, 5.0, b""
    return c


def test_send_stall_peer_stops_reading(fresh_server):
    """A peer asks for 16 MiB and reads none of it: after send_stall_timeout the server logs
    the stall, closes that connection (freeing its thread and the frame), keeps serving."""
    server = fresh_server(config={"send_stall_timeout": 1})
    offset = server.log_size()
    c = small_rcvbuf_client(server.port)
    try:
        root = raw_getroot(c, 1)
        c.send(frame(request_payload(2, HANDLE_CALLATTR, boxed_args(
            (LABEL_LOCAL_REF, root), (LABEL_VALUE, "blob"), (LABEL_VALUE, (16 * MiB,)),
            (LABEL_VALUE, ())))))
        text = server.wait_log(offset, lambda t: "send_stall_timeout" in t, timeout=15)
        assert "send_stall_timeout=1 s" in text, text[-2000:]
        assert "raise the send_stall_timeout config key" in text
        assert " ERROR " in text
        received = c.wait_closed(10)
        assert len(received) < 16 * MiB
    finally:
        c.close()
    assert_healthy(server)


def test_request_flood_without_reading_answers(fresh_server):
    """Incoming requests are read one at a time, each answered before the next is read, so a
    flood is held back by TCP; a flooder that never reads the answers stalls the server's
    writes and is disconnected after send_stall_timeout. Memory stays flat meanwhile."""
    server = fresh_server(config={"send_stall_timeout": 1})
    assert_healthy(server)
    rss_before = server.status_kib("VmRSS")
    offset = server.log_size()
    c = small_rcvbuf_client(server.port)
    ping = request(1, HANDLE_PING, ("x" * 1000,))
    sent = 0
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and c.send_quietly(ping * 100):
            sent += 100
        assert time.monotonic() < deadline, "the server never stopped reading the flood"
    except socket.timeout:
        pass  # our send buffer filled because the server stopped reading: expected as well
    finally:
        c.close()
    text = server.wait_log(offset, lambda t: "send_stall_timeout" in t, timeout=10)
    assert "send_stall_timeout=1 s" in text, text[-2000:]
    grown = server.status_kib("VmRSS") - rss_before
    assert grown < 50 * 1024, "RSS grew by %d KiB after %d requests" % (grown, sent)
    assert_healthy(server)


def test_send_stall_does_not_cut_a_slow_reader(fresh_server):
    """A peer that reads slowly but steadily (64 KiB every 50 ms) is not a stalled peer."""
    server = fresh_server(config={"send_stall_timeout": 2})
    c = small_rcvbuf_client(server.port)
    try:
        root = raw_getroot(c, 1)
        size = 4 * MiB
        c.send(frame(request_payload(2, HANDLE_CALLATTR, boxed_args(
            (LABEL_LOCAL_REF, root), (LABEL_VALUE, "blob"), (LABEL_VALUE, (size,)),
            (LABEL_VALUE, ())))))
        got = 0
        c.sock.settimeout(5)
        while got < size:
            chunk = c.sock.recv(256 * 1024)
            assert chunk, "the server closed the connection of a slow reader"
            got += len(chunk)
            time.sleep(0.05)
    finally:
        c.close()
    assert_healthy(server)


def test_send_stall_timeout_must_be_positive():
    a, b = socket.socketpair()
    try:
        with pytest.raises(ValueError, match="send_stall_timeout must be a positive number"):
            rpyc.utils.factory.connect_stream(
                rpyc.core.stream.SocketStream(a), config={"send_stall_timeout": 0})
    finally:
        a.close()
        b.close()


def test_thread_safety_of_the_pending_limit(silent_peer):
    """Four threads race for the last slots: exactly max_pending_requests get one."""
    conn = rpyc.connect(HOST, silent_peer.port, config={"max_pending_requests": 40, **NO_HELLO})
    try:
        silent_peer.accept()
        accepted, refused = [], []
        lock = threading.Lock()

        def worker():
            for _ in range(20):
                try:
                    res = conn.async_request(consts.HANDLE_PING, 0)
                except RuntimeError:
                    with lock:
                        refused.append(1)
                else:
                    with lock:
                        accepted.append(res)

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert len(accepted) == 40 and len(refused) == 40
    finally:
        conn.close()
