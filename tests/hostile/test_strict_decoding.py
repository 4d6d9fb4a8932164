"""Frozensets a Python peer cannot have sent, and frames built to burn the server's CPU.

Brine frozensets are decoded into Python frozensets, so what Python cannot hold is a
protocol error naming the problem, never a ``TypeError`` out of the serving loop and never a
set silently shorter than what the peer sent: members equal under ``==`` (``{1, True}``),
unhashable members (a slice), and members that all hash alike (16,000 integers
``k * (2**61 - 1)`` used to take 2.5 s of decoding with the GIL held, freezing every other
client of the server).
"""
import statistics
import struct
import threading
import time

import pytest

import rpyc
from hostile_wire import (
    HANDLE_PING, LABEL_VALUE, RawClient, brine, frame, request_payload,
)
from test_hostile import PROTOCOL_ERROR, assert_healthy, attack, bystander, connect  # noqa: F401 (a fixture)

pytestmark = pytest.mark.timeout(60)

SLICE_123 = b"\x19\x12\x51\x52\x53"          # slice(1, 2, 3)


def fset(members_brine, count):
    """An FSET item over ``count`` members already encoded as brine."""
    if count <= 4:
        head = bytes([0x10 + count - 1])
    elif count < 256:
        head = b"\x14" + bytes([count])
    else:
        head = b"\x15" + count.to_bytes(4, "big")
    return b"\x1a" + head + members_brine


def ping_with(boxed_args_brine, seq=b"\x51"):
    """A PING request frame whose seq and boxed arguments are raw brine."""
    return frame(b"\x01\x11" + seq + b"\x11" + brine(HANDLE_PING) + boxed_args_brine)


def boxed(value_brine):
    """``(LABEL_VALUE, (value,))``: a one-argument tuple by value."""
    return b"\x11" + brine(LABEL_VALUE) + b"\x10" + value_brine


def test_slice_inside_a_frozenset_seq_is_a_protocol_error(server, bystander):
    """A frozenset holding a slice in the seq position raised TypeError out of serve_all (two
    tracebacks, the serving thread died). Now it is a logged protocol error."""
    seq = fset(SLICE_123, 1)
    text = attack(server, ping_with(boxed(b"\x51"), seq=seq), "unhashable", bystander=bystander)
    assert "Traceback" not in text and "TypeError" not in text, text[-2000:]


def test_slice_nested_in_a_frozenset_argument_is_refused(server, bystander):
    member = b"\x10" + SLICE_123                 # (slice(1, 2, 3),)
    attack(server, ping_with(boxed(fset(member, 1))), "unhashable", bystander=bystander)


@pytest.mark.parametrize("members, count", [
    (b"\x51\x51", 2),                            # {1, 1}
    (b"\x51\x03", 2),                            # {1, True}: the True used to be lost
    (b"\x51\x18" + struct.pack("!d", 1.0), 2),   # {1, 1.0}
])
def test_frozenset_with_equal_members_is_refused(server, bystander, members, count):
    attack(server, ping_with(boxed(fset(members, count))), "duplicate", bystander=bystander)


def colliding_ints(n):
    """``n`` distinct integers with one Python hash: multiples of the hash modulus."""
    modulus = (1 << 61) - 1
    return b"".join(brine(k * modulus) for k in range(1, n + 1))


def test_hash_flooding_frozenset_is_refused_while_others_are_served(server):
    """16,000 members of equal hash (~400 KB) against a live server while another client
    calls: refused at once, and the other client's calls all stay under 100 ms."""
    data = ping_with(boxed(fset(colliding_ints(16000), 16000)))
    assert len(data) > 300_000
    latencies, stop = [], threading.Event()
    with connect(server) as other:
        add = other.root.add

        def call_loop():
            while not stop.is_set():
                t0 = time.perf_counter()
                assert add(1, 2) == 3
                latencies.append(time.perf_counter() - t0)

        caller = threading.Thread(target=call_loop)
        caller.start()
        try:
            time.sleep(0.2)
            offset = server.log_size()
            t0 = time.perf_counter()
            with RawClient(server.port) as c:
                c.send_quietly(data)
                c.wait_closed(10)
            refused_in = time.perf_counter() - t0
            time.sleep(0.2)
        finally:
            stop.set()
            caller.join(10)
    text = server.wait_log(offset, lambda t: PROTOCOL_ERROR in t)
    assert "same hash" in text, text[-2000:]
    assert refused_in < 1.0, refused_in
    assert latencies, "the other client made no call"
    assert max(latencies) < 0.1, (max(latencies), statistics.median(latencies))
    assert_healthy(server)


def test_a_client_is_closed_after_a_fatal_protocol_error(raw_peer):
    """After a protocol error ended the connection, conn.closed was still False."""
    conn, peer = raw_peer
    res = conn.async_request(HANDLE_PING, "x")
    peer.settimeout(5)
    peer.recv(1000)
    peer.sendall(frame(b"\x02\x11\x50" + fset(b"\x10" + SLICE_123, 1)))   # an unhashable reply
    with pytest.raises(rpyc.core.brine.ProtocolError, match="unhashable"):
        res.wait()
    assert conn.closed
    with pytest.raises(EOFError):
        conn.ping()
