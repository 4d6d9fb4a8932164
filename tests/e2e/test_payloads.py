"""Large values on the wire: a 32 MiB bytes echo (incompressible and compressible), big
strings and tuples with many members."""

import os

import pytest

import rpyc

MIB = 1024 * 1024


class EchoService(rpyc.Service):
    def exposed_echo(self, x):
        return x

    def exposed_length(self, x):
        return len(x)

    def exposed_make(self, n):
        return b"\xab" * n


@pytest.fixture
def root(harness):
    conn, _ = harness.pair(EchoService)
    return conn.root


@pytest.mark.timeout(60)
def test_32_mib_random_bytes_echo(root):
    data = os.urandom(32 * MIB)
    assert root.length(data) == len(data)
    back = root.echo(data)
    assert type(back) is bytes
    assert back == data


@pytest.mark.timeout(60)
def test_32_mib_compressible_bytes(root):
    data = b"rpyc " * (32 * MIB // 5)
    assert root.echo(data) == data
    made = root.make(32 * MIB)
    assert len(made) == 32 * MIB and made[:3] == b"\xab\xab\xab" and made.count(b"\xab") == 32 * MIB


@pytest.mark.timeout(60)
def test_large_frames_back_to_back_with_small_ones(root):
    """A large frame arrives alone or with the next frames in one read; both ways each frame
    gets its own bytes (large payloads are handed over in their receive buffer)."""
    big = [os.urandom(2 * MIB + i) for i in range(3)]
    pending = []
    for blob in big:
        pending.append(rpyc.async_(root.echo)(blob))
        pending.append(rpyc.async_(root.length)(blob[:10]))
    values = [r.value for r in pending]
    assert values[0::2] == big
    assert values[1::2] == [10, 10, 10]
    assert root.echo(big[0]) == big[0]  # and alone


@pytest.mark.timeout(60)
def test_several_large_values_in_one_message(root):
    """Large bytes travel by reference to their own buffer (not copied into the frame):
    several of them, nested, between small values, both ways, in order."""
    blobs = [os.urandom(MIB + i) for i in range(4)]
    value = (b"a", blobs[0], 1, (blobs[1], "x", (blobs[2],)), b"z" * 10, blobs[3], b"")
    assert root.echo(value) == value
    assert root.echo((blobs[0], blobs[0])) == (blobs[0], blobs[0])
    squeezable = b"\x00" * (3 * MIB)  # compressed after all: the frame is made whole first
    assert root.echo((blobs[1], squeezable)) == (blobs[1], squeezable)


@pytest.mark.timeout(60)
def test_large_value_beside_one_sent_by_reference(root):
    """A tuple that cannot go by value (it holds a list) is boxed item by item after the
    large bytes in it was already spliced in: the frame must carry it once, in place."""
    blob = os.urandom(2 * MIB)
    assert root.length((blob, [1, 2, 3])) == 2
    assert root.echo((blob, [1, 2, 3]))[0] == blob


def test_big_string_and_tuple(root):
    text = "\u00e9t\u00e9 \u2603 " * 200_000
    assert root.echo(text) == text
    items = tuple(range(200_000))
    assert root.echo(items) == items
    nested = tuple((i, str(i), float(i)) for i in range(20_000))
    assert root.echo(nested) == nested


def nested_tuple(depth):
    value = ()
    for _ in range(depth):
        value = (value,)
    return value


def test_deeply_nested_argument_below_the_limit(harness):
    """Values within max_nesting_depth (256) must either travel or be refused locally with a
    ValueError; they must never cost the connection."""
    conn, _ = harness.pair(EchoService, client_config={"sync_request_timeout": 5})
    root = conn.root
    for depth in range(240, 256):
        value = nested_tuple(depth)
        try:
            assert root.echo(value) == value
        except ValueError:
            pass  # refused before sending: acceptable
        assert root.echo(depth) == depth, f"connection unusable after depth {depth}"


def test_deeply_nested_reply_below_the_limit(harness):
    class Maker(rpyc.Service):
        def exposed_make(self, depth):
            return nested_tuple(depth)

    conn, _ = harness.pair(Maker)
    for depth in (100, 200, 250):
        assert conn.root.make(depth) == nested_tuple(depth)
