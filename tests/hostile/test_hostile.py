"""Hostile peers against our server.

Requirement: a peer that sends garbage, a truncated frame, an oversized length header, a zlib
bomb, a 100,000-deep nested tuple or an unknown handler gets a clear logged error and a closed
connection (or, where upstream rpyc 6.0.2 answers with an EXCEPTION message, that answer and a
connection that stays usable); the server keeps serving its other clients; no panic, no
unbounded allocation.

Each test attacks our ThreadedServer (hostile_server.py, a subprocess on 127.0.0.1) from a raw
socket with hand-built frames (hostile_wire.py, independent of the package), then checks:
the connection is closed (or the reply), the server logged the error, the server process is
alive, a connection opened *before* the attack still works, and a new ``rpyc.connect`` client
can call ``add``. Every wait is bounded.

Every test here once caught a real bug or guards a limit; none is expected to fail.
"""
import socket
import struct
import time
import zlib

import pytest

import rpyc
from hostile_wire import (
    HANDLE_CALLATTR, HANDLE_GETROOT, HANDLE_PING, LABEL_LOCAL_REF, LABEL_REMOTE_REF,
    LABEL_TUPLE, LABEL_VALUE, MSG_EXCEPTION, MSG_REPLY, Closed, RawClient, brine,
    frame, request, request_payload,
)

pytestmark = pytest.mark.timeout(60)

MiB = 1 << 20
GiB = 1 << 30
CLOSE_TIMEOUT = 5.0
CLIENT_CONFIG = {"sync_request_timeout": 5}
PROTOCOL_ERROR = "closing after a protocol error"  # what Connection.serve_all logs


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------

def connect(server, **config):
    cfg = dict(CLIENT_CONFIG)
    cfg.update(config)
    return rpyc.connect("127.0.0.1", server.port, config=cfg)


def assert_healthy(server, bystander=None, **config):
    """The server process lives, a client connected before the attack still works, and a new
    client can call ``add``."""
    assert server.alive(), "the server died (status %s); log:\n%s" % (
        server.proc.returncode, server.log_tail())
    if bystander is not None:
        assert bystander.root.add(2, 3) == 5, "the bystander connection stopped working"
    conn = connect(server, **config)
    try:
        assert conn.root.add(1, 2) == 3
    finally:
        conn.close()


@pytest.fixture
def bystander(server):
    """A normal client connected to the shared server before the attack."""
    conn = connect(server)
    assert conn.root.add(0, 0) == 0
    try:
        yield conn
    finally:
        try:
            conn.close()
        except Exception:
            pass


def protocol_error_logged(server, offset, *needles):
    """The log since ``offset`` once it holds a protocol-error line containing every needle."""
    needles = [n.lower() for n in needles]

    def ok(text):
        return any(PROTOCOL_ERROR in line and " ERROR " in line
                   and all(n in line.lower() for n in needles)
                   for line in text.splitlines())

    text = server.wait_log(offset, ok)
    assert ok(text), ("expected an ERROR line %r mentioning %r in the server log; got:\n%s"
                      % (PROTOCOL_ERROR, needles, text[-3000:]))
    return text


def attack(server, data, *needles, bystander=None):
    """Send ``data`` from a fresh raw connection; the server must close the connection, log a
    protocol error mentioning ``needles``, and keep serving."""
    offset = server.log_size()
    with RawClient(server.port) as c:
        c.send_quietly(data)
        c.wait_closed(CLOSE_TIMEOUT)
    text = protocol_error_logged(server, offset, *needles)
    assert_healthy(server, bystander)
    return text


def ping(c, seq, data="still here"):
    c.send(request(seq, HANDLE_PING, (data,)))
    assert c.recv_message() == (MSG_REPLY, seq, (LABEL_VALUE, data))


def raw_add(c, seq):
    """A real call on a raw connection: GETROOT, then CALLATTR(root, "add", (1, 2))."""
    c.send(request(seq, HANDLE_GETROOT))
    mtype, rseq, (label, id_pack) = c.recv_message()
    assert (mtype, rseq, label) == (MSG_REPLY, seq, LABEL_REMOTE_REF)
    args = (LABEL_TUPLE, ((LABEL_LOCAL_REF, id_pack), (LABEL_VALUE, "add"),
                          (LABEL_VALUE, (1, 2)), (LABEL_VALUE, ())))
    c.send(frame(request_payload(seq + 1, HANDLE_CALLATTR, brine(args))))
    assert c.recv_message() == (MSG_REPLY, seq + 1, (LABEL_VALUE, 3))


def expect_exception(c, seq, module, name):
    mtype, rseq, body = c.recv_message()
    assert (mtype, rseq) == (MSG_EXCEPTION, seq), (mtype, rseq, body)
    assert isinstance(body, tuple) and len(body) == 4, body
    assert body[0] == (module, name), body
    return body


def body_with(args_box_bytes, seq=0, handler=HANDLE_PING):
    """A request frame whose args box is given as raw (possibly hostile) brine bytes."""
    return frame(request_payload(seq, handler, args_box_bytes))


def zeros_bomb(size=GiB, chunk=MiB):
    """A valid zlib stream inflating to ``size`` zero bytes, built incrementally with
    compressobj: after a full flush every further chunk of zeros compresses to the same
    independent block, so it is computed once and repeated (~1 MB for 1 GiB)."""
    zeros = bytes(chunk)
    co = zlib.compressobj(9)
    first = co.compress(zeros) + co.flush(zlib.Z_FULL_FLUSH)   # includes the 2-byte header
    block = co.compress(zeros) + co.flush(zlib.Z_FULL_FLUSH)
    assert co.compress(zeros) + co.flush(zlib.Z_FULL_FLUSH) == block
    adler = ((size % 65521) << 16) | 1                         # adler32 of `size` zero bytes
    final = b"\x03\x00"                                        # empty final fixed block
    return first + block * (size // chunk - 1) + final + struct.pack("!L", adler)


def test_zeros_bomb_is_valid():
    """Self-check of the bomb builder (on a small size, fully inflated locally)."""
    bomb = zeros_bomb(size=8 * MiB)
    assert zlib.decompress(bomb) == bytes(8 * MiB)
    assert len(zeros_bomb()) < 2 * MiB


# ---------------------------------------------------------------------------------------------
# garbage, truncation, oversized and malformed frames: logged error + closed connection
# ---------------------------------------------------------------------------------------------

GARBAGE = {
    # "GET " read as a length is 1.1 GiB
    "http-request": (b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", "max_frame_size"),
    # a TLS ClientHello record header: length 0x16030102 = 352 MiB
    "tls-hello": (bytes.fromhex("160301020001fc0303") + bytes(range(64)), "max_frame_size"),
    # a plausible small frame full of junk: message type 0xfe
    "junk-frame": (frame(b"\xfe" + bytes((i * 37 + 11) % 256 for i in range(300))),
                   "unknown message type 254"),
}


@pytest.mark.parametrize("kind", sorted(GARBAGE))
def test_garbage(server, bystander, kind):
    data, needle = GARBAGE[kind]
    attack(server, data, needle, bystander=bystander)


def test_truncated_frame_then_eof_closes(server, bystander):
    """The header announces 100 bytes, 5 arrive, then the peer half-closes."""
    with RawClient(server.port) as c:
        c.send(struct.pack("!LB", 100, 0) + b"\x01\x11\x50\x11\x51")
        c.sock.shutdown(socket.SHUT_WR)
        c.wait_closed(CLOSE_TIMEOUT)
    assert_healthy(server, bystander)


def test_truncated_frame_then_eof_logs_error(server):
    offset = server.log_size()
    with RawClient(server.port) as c:
        c.send(struct.pack("!LB", 100, 0) + b"\x01\x11\x50\x11\x51")
        c.sock.shutdown(socket.SHUT_WR)
        c.wait_closed(CLOSE_TIMEOUT)
    text = server.wait_log(offset, lambda t: " ERROR " in t or " WARNING " in t)
    assert " ERROR " in text or " WARNING " in text, (
        "nothing logged above INFO for a truncated frame:\n" + text)


@pytest.mark.parametrize("length", [3 * GiB, 0xFFFFFFFF, 256 * MiB + 1],
                         ids=["3GiB", "4GiB-1", "max_frame_size+1"])
def test_oversized_length_header(fresh_server, length):
    """Refused as soon as the 5 header bytes arrive (the server does not wait for the payload)
    and before anything of that size is allocated; the error names max_frame_size."""
    server = fresh_server()
    assert_healthy(server)
    peak_before = server.status_kib("VmPeak")
    offset = server.log_size()
    with RawClient(server.port) as c:
        c.send(struct.pack("!LB", length, 0) + b"\x01\x11\x50")
        t0 = time.monotonic()
        c.wait_closed(CLOSE_TIMEOUT)
        assert time.monotonic() - t0 < 2.0
    protocol_error_logged(server, offset, "max_frame_size")
    grown = (server.status_kib("VmPeak") - peak_before) * 1024
    assert grown < GiB, "virtual memory peak grew by %d MiB" % (grown // MiB)
    assert_healthy(server)


def test_zlib_bomb(fresh_server):
    """~1 MB of zlib that inflates to 1 GiB of zeros: refused once the inflated size passes
    max_decompressed_size (256 MiB by default); resident memory stays within that limit."""
    bomb = zeros_bomb()
    server = fresh_server()
    assert_healthy(server)
    rss_before = server.status_kib("VmRSS") * 1024
    offset = server.log_size()
    with RawClient(server.port, timeout=10) as c:
        c.send_quietly(frame(bomb, flag=1))
        c.wait_closed(10)
    protocol_error_logged(server, offset, "max_decompressed_size")
    peak = server.status_kib("VmHWM") * 1024
    assert peak - rss_before < 256 * MiB + 100 * MiB, (
        "resident peak grew by %d MiB" % ((peak - rss_before) // MiB))
    assert_healthy(server)


CORRUPT_ZLIB = {
    "junk-after-header": b"\x78\x01" + b"this is not deflate data at all" * 3,
    "no-zlib-header": b"\x00\x01\x02\x03garbage",
    "cut-short": zlib.compress(bytes(request_payload(0, HANDLE_PING, brine((1, ("x" * 5000,))))),
                               1)[:-40],
    "bad-checksum": (lambda z: z[:-1] + bytes([z[-1] ^ 0xFF]))(
        zlib.compress(bytes(request_payload(0, HANDLE_PING, brine((1, ("y",))))), 1)),
}


@pytest.mark.parametrize("kind", sorted(CORRUPT_ZLIB))
def test_corrupt_zlib(server, bystander, kind):
    attack(server, frame(CORRUPT_ZLIB[kind], flag=1), "compress", bystander=bystander)


@pytest.mark.parametrize("shape", ["tuple", "frozenset"])
def test_deeply_nested_100000(server, bystander, shape):
    """100,000 levels of nesting: refused by max_nesting_depth, no stack overflow."""
    if shape == "tuple":
        deep = b"\x10" * 100000 + b"\x02"                 # ((((...),),),)
    else:
        deep = b"\x1a\x10" * 50000 + b"\x02"              # frozenset({frozenset({...})})
    attack(server, body_with(b"\x11\x51\x10" + deep), "max_nesting_depth", bystander=bystander)


def test_unknown_message_type(server, bystander):
    attack(server, frame(b"\x07" + brine((0, (HANDLE_PING, (1, ("x",)))))),
           "unknown message type 7", bystander=bystander)


def test_truncated_brine_body(server, bystander):
    """A complete frame whose brine body stops in the middle of the args tuple."""
    payload = request_payload(0, HANDLE_PING, brine((1, ("abc", 5, 6))))
    attack(server, frame(payload[:-3]), "truncated", bystander=bystander)


def test_thread_prefix_sent_to_plain_server(server, bystander):
    """A bind_threads peer talks to a server without bind_threads: the first byte of the
    16-byte prefix reads as message type 0."""
    prefix = struct.pack("!QQ", 0x7F5E30E4AB80, 0)
    data = frame(prefix + request_payload(0, HANDLE_PING, brine((1, ("x",)))))
    attack(server, data, "unknown message type 0", bystander=bystander)


def test_no_thread_prefix_sent_to_bind_threads_server(fresh_server):
    """The other direction: a plain peer talks to a bind_threads server with a short message."""
    server = fresh_server(bind_threads=True)
    assert_healthy(server, bind_threads=True)
    offset = server.log_size()
    with RawClient(server.port) as c:
        c.send(request(0, HANDLE_PING, ("x",)))
        c.wait_closed(CLOSE_TIMEOUT)
    protocol_error_logged(server, offset, "prefix")
    assert_healthy(server, bind_threads=True)


def test_int_with_5000_digits(server, bystander):
    """Upstream (CPython) refuses INT text over 4300 digits and drops the connection."""
    big = b"\x17" + struct.pack("!L", 5000) + b"7" * 5000
    attack(server, body_with(b"\x11\x51\x10" + big), "INT", bystander=bystander)


def test_int_with_5000_digits_error_names_the_limit(server):
    big = b"\x17" + struct.pack("!L", 5000) + b"7" * 5000
    offset = server.log_size()
    with RawClient(server.port) as c:
        c.send(body_with(b"\x11\x51\x10" + big))
        c.wait_closed(CLOSE_TIMEOUT)
    text = server.wait_log(offset, lambda t: PROTOCOL_ERROR in t)
    line = [ln for ln in text.splitlines() if PROTOCOL_ERROR in ln]
    assert line, text
    assert "4300" in line[0] or "digits" in line[0], line[0]


def test_int_with_4300_digits_is_accepted(server):
    """The boundary: 4300 digits is what CPython peers can exchange; it must round-trip."""
    value = int("7" * 4300)
    text = b"7" * 4300
    with RawClient(server.port) as c:
        c.send(body_with(b"\x11\x51\x10\x17" + struct.pack("!L", 4300) + text, seq=3))
        assert c.recv_message() == (MSG_REPLY, 3, (LABEL_VALUE, value))
        ping(c, 4)


def test_str_l4_claiming_4gib(fresh_server):
    """STR_L4 announcing 4 GiB - 1 with 3 bytes behind it: refused, nothing that big allocated."""
    server = fresh_server()
    assert_healthy(server)
    peak_before = server.status_kib("VmPeak")
    attack(server, body_with(b"\x11\x51\x10\x0f\xff\xff\xff\xffabc"), "truncated")
    grown = (server.status_kib("VmPeak") - peak_before) * 1024
    assert grown < GiB, "virtual memory peak grew by %d MiB" % (grown // MiB)


def test_tup_l4_claiming_4g_items(fresh_server):
    """TUP_L4 announcing 2**32-1 items with 2 behind it: refused, no 32 GiB item vector."""
    server = fresh_server()
    assert_healthy(server)
    peak_before = server.status_kib("VmPeak")
    attack(server, body_with(b"\x11\x51\x15\xff\xff\xff\xff\x50\x50"), "truncated")
    grown = (server.status_kib("VmPeak") - peak_before) * 1024
    assert grown < GiB, "virtual memory peak grew by %d MiB" % (grown // MiB)


MALFORMED = {
    "unassigned-tag-07": b"\x11\x51\x10\x07",
    "unassigned-tag-1c": b"\x11\x51\x10\x1c",
    "unassigned-tag-f0": b"\x11\x51\x10\xf0",
    "unicode-invalid-utf8": b"\x11\x51\x10\x08\x0b\xff\xfe",
    "unicode-over-int": b"\x11\x51\x10\x08\x51",
    "truncated-float": b"\x11\x51\x10\x18\x00\x00",
}


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_malformed_brine(server, bystander, kind):
    attack(server, body_with(MALFORMED[kind]), bystander=bystander)


def test_trailing_bytes_after_request(server, bystander):
    """Bytes after the request's brine value: upstream ignores them and answers; our strict
    decoder refuses the request. Either way the request gets exactly one answer (REPLY or
    EXCEPTION) and the connection stays usable."""
    with RawClient(server.port) as c:
        c.send(frame(request_payload(1, HANDLE_PING, brine((1, ("x",))) + b"\x50")))
        mtype, seq, body = c.recv_message()
        assert seq == 1 and mtype in (MSG_REPLY, MSG_EXCEPTION), (mtype, seq, body)
        if mtype == MSG_REPLY:
            assert body == (LABEL_VALUE, "x")
        ping(c, 2)
    assert_healthy(server, bystander)


@pytest.mark.parametrize("payload", [b"\x01", b"\x01\x51", b"\x01\x11\x50"],
                         ids=["type-only", "body-not-a-pair", "pair-cut-short"])
def test_malformed_message_envelope(server, bystander, payload):
    attack(server, frame(payload), bystander=bystander)


# ---------------------------------------------------------------------------------------------
# upstream answers with an EXCEPTION message and keeps the connection: so must we
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("handler", [99, 0, 21, 159, 255, -1, 2 ** 40])
def test_unknown_handler_id(server, bystander, handler):
    """Upstream replies EXCEPTION KeyError(handler_id) and keeps serving the connection."""
    with RawClient(server.port) as c:
        c.send(request(5, handler, ()))
        body = expect_exception(c, 5, "builtins", "KeyError")
        assert body[1] == (handler,)
        ping(c, 6)
        raw_add(c, 7)
    assert_healthy(server, bystander)


@pytest.mark.parametrize("handler", [2 ** 63, 10 ** 30, "abc", ()],
                         ids=["2**63", "10**30", "str", "tuple"])
def test_unknown_handler_of_other_type(server, handler):
    with RawClient(server.port) as c:
        c.send(request(5, handler, ()))
        try:
            mtype, seq, body = c.recv_message()
        except Closed:
            raise AssertionError("connection closed instead of an EXCEPTION reply")
        assert (mtype, seq) == (MSG_EXCEPTION, 5)
        assert body[0] == ("builtins", "KeyError") and body[1] == (handler,)
        ping(c, 6)
    assert_healthy(server)


def test_local_ref_never_sent(server, bystander):
    """A request naming 'your object' with an id_pack we never exported: EXCEPTION KeyError
    (upstream's behaviour) and the connection stays usable."""
    fake = ("builtins.list", 123456789, 987654321)
    with RawClient(server.port) as c:
        args = (LABEL_TUPLE, ((LABEL_LOCAL_REF, fake),))
        c.send(frame(request_payload(1, 9, brine(args))))  # HANDLE_REPR(obj)
        body = expect_exception(c, 1, "builtins", "KeyError")
        assert body[1] == (fake,)
        ping(c, 2)
        raw_add(c, 3)
    assert_healthy(server, bystander)


def test_invalid_label(server, bystander):
    """Box label 9: upstream's unboxing raises ValueError('invalid label 9') inside the
    request dispatcher, which answers EXCEPTION and keeps the connection."""
    with RawClient(server.port) as c:
        c.send(frame(request_payload(1, HANDLE_PING, brine((9, ("x",))))))
        body = expect_exception(c, 1, "builtins", "ValueError")
        assert "invalid label 9" in repr(body[1])
        ping(c, 2)
        raw_add(c, 3)
    assert_healthy(server, bystander)


def test_args_of_wrong_arity_and_type(server, bystander):
    """Arguments that do not fit the handler: EXCEPTION TypeError, connection usable."""
    with RawClient(server.port) as c:
        c.send(request(1, HANDLE_GETROOT, (1, 2, 3)))
        expect_exception(c, 1, "builtins", "TypeError")
        c.send(frame(request_payload(2, HANDLE_PING, brine((LABEL_VALUE, 5)))))  # args not a tuple
        expect_exception(c, 2, "builtins", "TypeError")
        ping(c, 3)
    assert_healthy(server, bystander)


def test_args_box_not_a_pair(server):
    with RawClient(server.port) as c:
        c.send(frame(request_payload(1, HANDLE_PING, brine((1,)))))
        try:
            mtype, seq, body = c.recv_message()
        except Closed:
            raise AssertionError("connection closed instead of an EXCEPTION reply")
        assert (mtype, seq) == (MSG_EXCEPTION, 1)
        ping(c, 2)


# ---------------------------------------------------------------------------------------------
# oddities upstream tolerates: we must not crash or close
# ---------------------------------------------------------------------------------------------

def test_empty_payload_frame(server, bystander):
    """L = 0: upstream treats it as 'nothing arrived'; nothing is answered."""
    offset = server.log_size()
    with RawClient(server.port) as c:
        c.send(frame(b""))
        c.send(frame(b"") * 50)
        assert c.is_open(0.3)
        ping(c, 1)
        raw_add(c, 2)
    assert PROTOCOL_ERROR not in server.log_since(offset)
    assert_healthy(server, bystander)


def test_stray_reply_and_exception_are_dropped(server, bystander):
    """A REPLY or EXCEPTION for a seq the server never used is dropped silently."""
    with RawClient(server.port) as c:
        c.send(frame(bytes([MSG_REPLY]) + brine((55, (LABEL_VALUE, 5)))))
        c.send(frame(bytes([MSG_EXCEPTION]) + brine((56, "legacy string exception"))))
        c.send(frame(bytes([MSG_EXCEPTION]) + brine((57, (("builtins", "ValueError"), ("x",),
                                                        (), "tb")))))
        ping(c, 1)
    assert_healthy(server, bystander)


@pytest.mark.parametrize("seq", ["abc", -5, (1, 2), 10 ** 20], ids=["str", "negative", "tuple",
                                                                   "big"])
def test_odd_seq_is_echoed(server, seq):
    """Upstream never checks the type of a received seq and echoes it (docs/protocol.md#sequence-numbers)."""
    with RawClient(server.port) as c:
        c.send(request(seq, HANDLE_PING, ("x",)))
        assert c.recv_message() == (MSG_REPLY, seq, (LABEL_VALUE, "x"))
        ping(c, 1)


@pytest.mark.parametrize("flag", [1, 2, 7, 255])
def test_any_nonzero_flag_means_compressed(server, flag):
    with RawClient(server.port) as c:
        payload = request_payload(1, HANDLE_PING, brine((1, ("z" * 10,))))
        c.send(frame(zlib.compress(payload, 1), flag=flag))
        assert c.recv_message() == (MSG_REPLY, 1, (LABEL_VALUE, "z" * 10))


def test_trailer_byte_not_checked(server):
    with RawClient(server.port) as c:
        c.send(frame(request_payload(1, HANDLE_PING, brine((1, ("t",)))), trailer=b"X"))
        assert c.recv_message() == (MSG_REPLY, 1, (LABEL_VALUE, "t"))
        ping(c, 2)


# ---------------------------------------------------------------------------------------------
# slow and many peers
# ---------------------------------------------------------------------------------------------

def test_slowloris_header_then_silence(server, bystander):
    """Twenty peers send a header and a few payload bytes, then go silent: everybody else is
    still served promptly. When one of them finally completes its frame it gets its answer."""
    payload = request_payload(1, HANDLE_PING, brine((1, ("slow",))))
    slow = []
    try:
        for _ in range(20):
            c = RawClient(server.port)
            c.send(struct.pack("!LB", len(payload), 0) + payload[:3])
            slow.append(c)
        time.sleep(0.2)
        for i in range(5):
            t0 = time.monotonic()
            assert_healthy(server, bystander)
            assert time.monotonic() - t0 < 2.0
        assert all(c.is_open(0.05) for c in slow)
        slow[0].send(payload[3:] + b"\n")
        assert slow[0].recv_message() == (MSG_REPLY, 1, (LABEL_VALUE, "slow"))
    finally:
        for c in slow:
            c.close()
    assert_healthy(server, bystander)


def _garbage_cases():
    """Deterministic inputs, each known to end in a protocol error."""
    big_int = b"\x17" + struct.pack("!L", 5000) + b"1" * 5000
    return [
        b"GET / HTTP/1.1\r\n\r\n",
        struct.pack("!LB", 0xFFFFFFFF, 0),
        frame(b"\xfe" + bytes(range(256))),
        frame(request_payload(0, HANDLE_PING, brine((1, ("abc", 5, 6))))[:-4]),
        body_with(b"\x11\x51\x10" + b"\x10" * 1000 + b"\x02"),
        frame(b"\x78\x01garbage-garbage", flag=1),
        body_with(b"\x11\x51\x10\x0f\xff\xff\xff\xffabc"),
        frame(struct.pack("!QQ", 1, 0) + request_payload(0, HANDLE_PING, brine((1, ())))),
        body_with(b"\x11\x51\x10" + big_int),
        frame(zlib.compress(b"\x07" + brine((0, (1, (1, ())))), 1), flag=1),
    ]


def test_many_garbage_connections(fresh_server):
    """200 hostile connections one after another: each is closed with a logged error, a normal
    client still works afterwards, and the server's resident memory did not grow unboundedly."""
    server = fresh_server()
    cases = _garbage_cases()
    # warm up (threads, arenas, imports) before taking the baseline
    for data in cases:
        with RawClient(server.port) as c:
            c.send_quietly(data)
            c.wait_closed(CLOSE_TIMEOUT)
    assert_healthy(server)
    rss_before = server.status_kib("VmRSS") * 1024
    offset = server.log_size()
    n = 200
    for i in range(n):
        with RawClient(server.port) as c:
            c.send_quietly(cases[i % len(cases)])
            c.wait_closed(CLOSE_TIMEOUT)
    text = server.wait_log(offset, lambda t: t.count(PROTOCOL_ERROR) >= n)
    assert text.count(PROTOCOL_ERROR) == n
    assert_healthy(server)
    grown = server.status_kib("VmRSS") * 1024 - rss_before
    assert grown < 100 * MiB, "RSS grew by %d MiB" % (grown // MiB)


# ---------------------------------------------------------------------------------------------
# allocation driven by an announced (not yet received) frame length
# ---------------------------------------------------------------------------------------------

def _announce_big_frames(server, count, length=255 * MiB):
    """``count`` peers announce a frame just under max_frame_size, send 2 payload bytes, and
    after pauses 3 more, one at a time (a read after the header is where the receive buffer
    gets sized)."""
    peers = []
    for _ in range(count):
        try:
            c = RawClient(server.port)
            c.send(struct.pack("!LB", length, 0) + b"\x01\x11")
            for byte in (b"\x50", b"\x11", b"\x51"):
                time.sleep(0.05)
                c.send(byte)
        except OSError:
            break
        peers.append(c)
    time.sleep(0.3)
    return peers


def test_announced_length_is_not_reserved_up_front(fresh_server):
    server = fresh_server()
    assert_healthy(server)
    before = server.big_anon_mappings()
    peers = _announce_big_frames(server, 8)
    try:
        if not server.alive():
            pytest.fail("the server died", pytrace=False)
        grown = server.big_anon_mappings() - before
        assert grown < 256 * MiB, (
            "8 peers that sent 8 bytes each made the server map %d MiB" % (grown // MiB))
    finally:
        for c in peers:
            c.close()


def test_announced_length_under_address_space_limit(fresh_server):
    server = fresh_server(rlimit_as=GiB, env={"MALLOC_ARENA_MAX": "2"})
    try:
        assert_healthy(server)
        small = _announce_big_frames(server, 6, length=1000)  # control: small frames are fine
        for c in small:
            c.close()
        assert_healthy(server)
    except Exception as exc:  # the control part must not count as the expected failure
        pytest.fail("control phase failed: %r\n%s" % (exc, server.log_tail()), pytrace=False)
    peers = _announce_big_frames(server, 6)
    try:
        time.sleep(0.3)
        assert server.alive(), "the server died with status %s:\n%s" % (
            server.proc.returncode, server.log_tail(800))
    finally:
        for c in peers:
            c.close()
    assert_healthy(server)
