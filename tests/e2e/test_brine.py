"""``rpyc.core.brine``: dump/load/dumpable round trips for every supported type, refusal of
everything else, and byte-exact encodings (as produced by upstream rpyc 6.0.2)."""

import math

import pytest

from rpyc.core import brine

VALUES = [
    None, True, False, Ellipsis, NotImplemented,
    0, 1, -1, -48, -49, 159, 160, 255, 256, 2**31, -2**31, 2**63 - 1, 2**63, 2**64, -2**64,
    2**1000, -(2**1000) + 7,
    0.0, 1.5, -2.25, 1e300, -1e-300, float("inf"), float("-inf"),
    complex(1.5, -2.0), 1j, complex(0, 0),
    "", "a", "ab", "abc", "abcd", "x" * 255, "x" * 256, "x" * 70_000, "h\u00e9llo \u2603 \U0001f600",
    b"", b"a", b"ab", b"abc", b"abcd", bytes(range(256)), b"\x00" * 70_000,
    (), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4), tuple(range(5)), tuple(range(300)),
    ((), ((),), (((1,),),)), ("mixed", 1, 2.0, b"3", None, (True, frozenset([1]))),
    frozenset(), frozenset([1, "a", (2, 3), b"b"]), frozenset([frozenset([1]), 2]),
    slice(1, 2, 3), slice(None), slice(None, -1, None), slice("a", (1,), 2.5),
]


def same(a, b):
    """Equal, with the same types all the way down (1 == 1.0 == True is not enough)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (tuple, frozenset)):
        if len(a) != len(b):
            return False
        if isinstance(a, tuple):
            return all(same(x, y) for x, y in zip(a, b))
        return a == b
    if isinstance(a, slice):
        return same(a.start, b.start) and same(a.stop, b.stop) and same(a.step, b.step)
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    return a == b


@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__)
def test_brine_round_trip(value):
    assert brine.dumpable(value)
    data = brine.dump(value)
    assert isinstance(data, bytes)
    assert same(brine.load(data), value)


def test_brine_special_floats():
    assert math.isnan(brine.load(brine.dump(float("nan"))))
    neg_zero = brine.load(brine.dump(-0.0))
    assert neg_zero == 0.0 and math.copysign(1, neg_zero) == -1
    assert brine.load(brine.dump(complex(float("inf"), -0.0))) == complex(float("inf"), -0.0)


def test_brine_everything_at_once():
    value = tuple(VALUES)
    assert brine.dumpable(value)
    assert same(brine.load(brine.dump(value)), value)


class MyInt(int):
    pass


class MyTuple(tuple):
    pass


NOT_DUMPABLE = [
    [], [1], {}, {1: 2}, set(), {1}, object(), bytearray(b"x"), memoryview(b"x"), len, int,
    MyInt(3), MyTuple((1,)), (1, [2]), ((1, 2), {3}), frozenset([1, MyInt(2)]),
    slice(1, [2]), Exception("x"), iter(()),
]


@pytest.mark.parametrize("value", NOT_DUMPABLE, ids=lambda v: type(v).__name__)
def test_brine_refuses_other_types(value):
    assert not brine.dumpable(value)
    with pytest.raises(TypeError):
        brine.dump(value)


# (value, encoding) pairs produced by upstream rpyc 6.0.2's brine.dump
VECTORS = [
    ((None, True, False, Ellipsis, NotImplemented), "14050003040605"),
    (("", "a", "ab", "abc", "abcd", "h\u00e9llo \u2603"),
     "14060801080a61080b6162080c616263080d61626364080e0a68c3a96c6c6f20e29883"),
    ((b"", b"a", b"ab", b"abc", b"abcd", b"\x00\xff"), "1406010a610b61620c6162630d616263640b00ff"),
    ((1.5, -0.0, 1e300, complex(1.5, -2.0)),
     "13183ff8000000000000188000000000000000187e37e43c8800759c1b3ff8000000000000c000000000000000"),
    (((), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4), tuple(range(5))),
     "140602105111515212515253135152535414055051525354"),
    ((slice(1, None, 2), frozenset([5])), "1119125100521a1055"),
    ((0, 1, -1, -48, -49, 159, 160, 255, 256, 2**31, -2**31, 2**63, 2**64, -2**64, 2**100),
     "140f50514f2016032d3439ef160331363016033235351603323536160a32313437343833363438160b2d32"
     "3134373438333634381613393232333337323033363835343737353830381614313834343637343430373"
     "337303935353136313616152d3138343436373434303733373039353531363136161f3132363736353036"
     "3030323238323239343031343936373033323035333736"),
]


@pytest.mark.parametrize("value, hexdata", VECTORS, ids=range(len(VECTORS)))
def test_brine_encoding_matches_upstream(value, hexdata):
    assert brine.dump(value).hex() == hexdata
    assert same(brine.load(bytes.fromhex(hexdata)), value)


def test_integers_round_trip_across_the_decoder_fast_paths():
    """i64, i128 and beyond take different decoding paths; the values must not care."""
    from rpyc.core import brine

    edges = [2**63 - 1, -2**63, 2**63, -2**63 - 1, 2**64, 2**127 - 1, -2**127, 2**127,
             -2**127 - 1, 2**70 + 12345, -(2**100), 10**40, -(10**40)]
    for v in edges:
        for x in (v, v + 1, v - 1):
            assert brine.load(brine.dump(x)) == x
            assert type(brine.load(brine.dump(x))) is int


def test_non_canonical_integer_text_is_refused():
    from rpyc import _core

    int_l1 = 0x16  # WIRE.md: INT_L1, a length byte and the decimal text
    for text in (b"-0", b"0123", b"+5", b"12a", b"", b"-", b"100"):
        with pytest.raises(_core.ProtocolError):  # (100 has an immediate form)
            _core.load(bytes([int_l1, len(text)]) + text)
    assert _core.load(bytes([int_l1, 3]) + b"160") == 160
