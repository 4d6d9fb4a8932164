"""Hostile by-value frames (docs/by-value.md#limits): a peer that negotiated ``by_value``
sends arrays whose header lies (a huge shape, an object dtype, strides pointing outside the
data, truncated data). Each is answered with a named error (``ByValueError``) on a
connection that keeps working, with no allocation from the claimed shape; malformed
by-value structure is a protocol error like any malformed brine; and by-value tags are
refused on a connection that did not negotiate them.
"""
import struct

import pytest

from hostile_wire import (
    HANDLE_PING, LABEL_VALUE, MSG_EXCEPTION, MSG_REPLY, RawClient, brine, frame, request,
    request_payload,
)
from test_hostile import assert_healthy, attack, bystander, ping  # noqa: F401 (a fixture)

pytestmark = pytest.mark.timeout(60)

LABEL_BY_VALUE = 5
LIST, DICT, ARRAY = b"\x1c", b"\x1d", b"\x1f"
HELLO = ("rpyc-rs/hello", 1, ("by_value",))


def negotiated_client(server):
    """A raw connection that announced ``by_value`` and got the ack."""
    c = RawClient(server.port)
    c.send(request(0x30, HANDLE_PING, (HELLO,)))
    kind, seq, body = c.recv_message()
    assert (kind, seq) == (MSG_REPLY, 0x30)
    assert body[1][0] == "rpyc-rs/hello-ack" and "by_value" in body[1][2], body
    return c


def by_value_ping(seq, value_brine):
    """A PING whose argument tuple is a by-value box holding ``value_brine``."""
    args = b"\x11" + brine(LABEL_BY_VALUE) + b"\x10" + value_brine
    return frame(request_payload(seq, HANDLE_PING, args))


def array(dtype, shape, strides, data):
    return ARRAY + b"\x13" + brine(dtype) + brine(tuple(shape)) + brine(tuple(strides)) + brine(data)


def exception_text(body):
    """The class name and message of an EXCEPTION body (vinegar's 4-tuple)."""
    (module, name), args = body[0], body[1]
    return "%s.%s: %s" % (module, name, args)


def refused(server, value_brine, *needles):
    """Send a by-value PING holding ``value_brine``: answered with a ByValueError naming
    ``needles``; then the same connection still answers pings."""
    with negotiated_client(server) as c:
        c.send(by_value_ping(0x31, value_brine))
        kind, seq, body = c.recv_message()
        assert (kind, seq) == (MSG_EXCEPTION, 0x31), body
        text = exception_text(body)
        assert "ByValueError" in text, text
        for needle in needles:
            assert needle in text, text
        ping(c, 0x32)
    assert_healthy(server)


def test_a_good_array_round_trips_through_ping(server):
    data = struct.pack("<3d", 1.0, 2.0, 3.0)
    with negotiated_client(server) as c:
        c.send(by_value_ping(0x31, array("<f8", (3,), (8,), data)))
        kind, seq, body = c.recv_message()
        assert (kind, seq) == (MSG_REPLY, 0x31)
        # PING echoes its data: the array arrived (an ndarray, or without numpy a
        # memoryview); an unmarked result goes back as a proxy (label 4)
        assert body[0] == 4, body


def test_huge_shape_is_refused_without_allocating(server):
    refused(server, array("<f8", (1 << 40, 1 << 40), (8 << 40, 8), b"\0" * 64), "addresses", "carries 64")


def test_shape_overflowing_every_integer_is_refused(server):
    big = (1 << 63) - 1
    refused(server, array("<f8", (big, big), (big, big), b"\0" * 8), "carries 8")


def test_object_dtype_is_refused(server):
    refused(server, array("|O", (1,), (8,), b"\0" * 8), "Python objects")


def test_datetime_and_structured_dtypes_are_refused(server):
    refused(server, array("<M8[ns]", (1,), (8,), b"\0" * 8), "not a plain dtype")


def test_strides_outside_the_buffer_are_refused(server):
    refused(server, array("<f8", (2, 3), (1000, 8), b"\0" * 48), "outside")


def test_negative_strides_are_refused(server):
    refused(server, array("<f8", (2,), (-8,), b"\0" * 16), "negative")


def test_truncated_array_data_is_refused(server):
    refused(server, array("<f8", (6,), (8,), b"\0" * 47), "truncated")


def test_malformed_array_header_is_a_protocol_error(server, bystander):
    # ARRAY must wrap a 4-tuple: anything else is malformed brine, which ends the connection
    with negotiated_client(server) as c:
        c.send(by_value_ping(0x31, ARRAY + b"\x12" + brine("<f8") + brine((1,)) + brine((8,))))
        c.wait_closed(5)
    assert_healthy(server, bystander)


def test_odd_dict_is_a_protocol_error(server):
    with negotiated_client(server) as c:
        c.send(by_value_ping(0x31, DICT + brine((1, 2, 3))))
        c.wait_closed(5)
    assert_healthy(server)


def test_list_claiming_more_members_than_the_frame_holds(server):
    with negotiated_client(server) as c:
        c.send(by_value_ping(0x31, LIST + b"\x15" + struct.pack("!L", 1 << 30) + b"\x51"))
        c.wait_closed(5)
    assert_healthy(server)


def test_deep_lists_hit_the_nesting_limit(server):
    with negotiated_client(server) as c:
        c.send(by_value_ping(0x31, (LIST + b"\x10") * 400 + b"\x51"))
        c.wait_closed(5)
    assert_healthy(server)


def test_by_value_tags_without_negotiation_are_refused(server, bystander):
    # a LIST tag in a plain LABEL_VALUE box: an unknown tag, as for any upstream peer
    args = b"\x11" + brine(LABEL_VALUE) + b"\x10" + LIST + brine((1,))
    attack(server, frame(request_payload(0x31, HANDLE_PING, args)), "tag", bystander=bystander)


def test_by_value_label_without_negotiation_is_refused(server):
    args = b"\x11" + brine(LABEL_BY_VALUE) + b"\x10" + LIST + brine((1,))
    with RawClient(server.port) as c:
        c.send(frame(request_payload(0x31, HANDLE_PING, args)))
        c.wait_closed(5)
    assert_healthy(server)


def test_by_value_label_holding_plain_brine_without_negotiation_is_an_invalid_label(server):
    # a label-5 box of plain brine from a peer that did not negotiate: the label is
    # invalid (answered, as upstream answers an unknown label), the connection lives
    args = b"\x11" + brine(LABEL_BY_VALUE) + brine((1,))
    with RawClient(server.port) as c:
        c.send(frame(request_payload(0x31, HANDLE_PING, args)))
        kind, seq, body = c.recv_message()
        assert (kind, seq) == (MSG_EXCEPTION, 0x31)
        assert "invalid label" in exception_text(body)
        ping(c, 0x32)
