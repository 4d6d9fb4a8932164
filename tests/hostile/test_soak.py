"""Random-frame soak: a hostile peer mutates real frames against a live ThreadedServer.

The seeds are the frames captured from upstream sessions (crates/rpyc-wire/tests/vectors, or
the RPYC_SPEC_VECTORS directory), decompressed, with the captured root id_pack replaced by the
live server's (so that mutated requests reach the handlers with a real object). Each hostile
connection sends a few frames built from them — bit flips, byte swaps, inserted, deleted and
duplicated ranges, splices, length fields set to huge values, random garbage, sometimes
zlib-compressed, sometimes with a wrong flag or a header that promises more than is sent —
reads what comes back for a moment, and closes.

Meanwhile a well-behaved client keeps calling the server. Checks: the server process never
dies, logs no traceback or panic, its resident memory stays bounded, and the good client's
calls all succeed, during the soak and after it.

Runs against a plain and a bind_threads server (whose seeds carry thread prefixes),
RPYC_SOAK_SECONDS (default 8) seconds each; RPYC_SOAK_SEED replays a run (the seed is printed
in every failure).
"""
import collections
import json
import os
import random
import socket
import struct
import threading
import time
import zlib
from pathlib import Path

import pytest

import rpyc
from hostile_wire import (
    HANDLE_GETROOT, HANDLE_PING, HOST, LABEL_REMOTE_REF, MSG_REPLY, BrineError, Closed, RawClient, brine,
    frame, request, unbrine,
)

SOAK_SECONDS = float(os.environ.get("RPYC_SOAK_SECONDS", "8"))
VECTORS = Path(os.environ.get(
    "RPYC_SPEC_VECTORS", Path(__file__).resolve().parents[2] / "crates/rpyc-wire/tests/vectors"))
MiB = 1 << 20

pytestmark = pytest.mark.timeout(SOAK_SECONDS * 3 + 120)


# ---------------------------------------------------------------------------------------------
# seeds
# ---------------------------------------------------------------------------------------------

THREAD_PREFIX = struct.pack("!QQ", 0x5EED, 0)


def load_seeds(bind_threads):
    """(payloads, captured root id_packs): every captured frame's message payload,
    decompressed, both directions (replies sent to a server are valid input too). For a
    bind_threads server, payloads captured without thread prefix get one; for a plain server,
    prefixed ones stay as they are (mostly garbage to it, which is fine)."""
    payloads, roots = [], set()
    for path in sorted(VECTORS.glob("session-*.json")):
        prefixed = "bind-threads" in path.name
        for entry in json.loads(path.read_text()):
            raw = bytes.fromhex(entry["hex"])
            length, flag = struct.unpack("!LB", raw[:5])
            payload = raw[5:5 + length]
            if flag:
                payload = zlib.decompress(payload)
            if bind_threads and not prefixed:
                payload = THREAD_PREFIX + payload
            payloads.append(payload)
            if entry["direction"] == "server->client":
                message = payload[16:] if bind_threads or prefixed else payload
                try:
                    _, (_, (label, value)) = message[0], unbrine(message[1:])
                except (BrineError, ValueError, TypeError):
                    continue
                if label == LABEL_REMOTE_REF and isinstance(value, tuple) and len(value) == 3 \
                        and isinstance(value[0], str) \
                        and value[0].endswith("Service"):
                    roots.add(value)
    return payloads, roots


def with_root(payloads, roots, live_root):
    """The payloads with every captured root id_pack replaced by the live one."""
    live = brine(live_root)
    out = []
    for p in payloads:
        for r in roots:
            p = p.replace(brine(r), live)
        out.append(p)
    return out


# ---------------------------------------------------------------------------------------------
# mutations
# ---------------------------------------------------------------------------------------------

INTERESTING = [0x00, 0x01, 0x02, 0x08, 0x0e, 0x0f, 0x10, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18,
               0x19, 0x1a, 0x1b, 0x20, 0x50, 0x7f, 0x80, 0xef, 0xf0, 0xff]
LENGTH_TAGS = {0x0e: 1, 0x14: 1, 0x16: 1, 0x0f: 4, 0x15: 4, 0x17: 4}


def mutate(rng, seeds):
    p = bytearray(rng.choice(seeds))
    for _ in range(rng.choice((1, 1, 1, 2, 3, 8))):
        op = rng.randrange(10)
        n = len(p)
        if op == 0 and n:                                   # bit flip
            i = rng.randrange(n)
            p[i] ^= 1 << rng.randrange(8)
        elif op == 1 and n:                                 # interesting byte
            p[rng.randrange(n)] = rng.choice(INTERESTING)
        elif op == 2:                                       # insert random bytes
            i = rng.randrange(n + 1)
            p[i:i] = os.urandom(rng.randrange(1, 16))
        elif op == 3 and n > 1:                             # delete a range
            i = rng.randrange(n)
            del p[i:i + rng.randrange(1, 16)]
        elif op == 4 and n > 1:                             # duplicate a range
            i = rng.randrange(n)
            chunk = p[i:i + rng.randrange(1, 64)]
            j = rng.randrange(n + 1)
            p[j:j] = chunk * rng.randrange(1, 4)
        elif op == 5 and n > 1:                             # truncate
            del p[rng.randrange(1, n):]
        elif op == 6:                                       # splice with another seed
            other = rng.choice(seeds)
            p = p[:rng.randrange(len(p) + 1)] + bytearray(other[rng.randrange(len(other) + 1):])
        elif op == 7:                                       # length field set large
            spots = [i for i, b in enumerate(p) if b in LENGTH_TAGS]
            if spots:
                i = rng.choice(spots)
                width = LENGTH_TAGS[p[i]]
                value = rng.choice((0, 1, 255, 2 ** (8 * width) - 1, rng.randrange(2 ** (8 * width))))
                p[i + 1:i + 1 + width] = value.to_bytes(width, "big")
        elif op == 8:                                       # deep nesting
            i = rng.randrange(n + 1)
            p[i:i] = bytes([rng.choice((0x10, 0x1a))]) * rng.randrange(1, 400)
        else:                                               # message type byte
            if n:
                p[0] = rng.choice((0, 1, 2, 3, 4, 0xff))
    return bytes(p)


def hostile_frame(rng, seeds):
    kind = rng.random()
    if kind < 0.05:                                         # pure garbage
        return os.urandom(rng.randrange(1, 300))
    if kind < 0.15:                                         # an unmutated seed
        payload = rng.choice(seeds)
    elif kind < 0.20:                                       # random payload, valid header
        payload = os.urandom(rng.randrange(0, 200))
    else:
        payload = mutate(rng, seeds)
    r = rng.random()
    if r < 0.10:
        return frame(zlib.compress(payload, 1), flag=rng.choice((1, 1, 2, 255)))
    if r < 0.13:                                            # flag says compressed, it is not
        return frame(payload, flag=1)
    if r < 0.15:                                            # header promises more than is sent
        return struct.pack("!LB", len(payload) + rng.randrange(1, 5000), 0) + payload
    if r < 0.17:                                            # header promises less
        return struct.pack("!LB", max(0, len(payload) - rng.randrange(1, 10)), 0) + payload + b"\n"
    return frame(payload, trailer=bytes([rng.choice((10, 10, 10, 0, 255))]))


# ---------------------------------------------------------------------------------------------
# the soak
# ---------------------------------------------------------------------------------------------

class GoodClient(threading.Thread):
    """Calls the server every few milliseconds; a fresh connection every 50 calls."""

    def __init__(self, port, bind_threads):
        super().__init__(daemon=True)
        self.port = port
        self.config = {"sync_request_timeout": 10, "bind_threads": bind_threads}
        self.stop = threading.Event()
        self.calls = 0
        self.failures = []
        self.slowest = 0.0

    def run(self):
        conn = None
        i = 0
        while not self.stop.is_set():
            try:
                if conn is None or i % 50 == 0:
                    if conn is not None:
                        conn.close()
                    conn = rpyc.connect(HOST, self.port, config=self.config)
                t0 = time.monotonic()
                assert conn.root.add(i, 1) == i + 1
                assert conn.root.echo(("soak", i, b"x" * (i % 5000))) == ("soak", i, b"x" * (i % 5000))
                self.slowest = max(self.slowest, time.monotonic() - t0)
                self.calls += 1
            except Exception as exc:  # recorded; the test fails on any
                self.failures.append("call %d: %r" % (i, exc))
                conn = None
            i += 1
            time.sleep(0.01)
        if conn is not None:
            conn.close()


def live_root(port, bind_threads):
    with RawClient(port) as c:
        c.send(request(0, HANDLE_GETROOT, prefix=THREAD_PREFIX if bind_threads else b""))
        mtype, seq, (label, id_pack) = c.recv_message(prefix_len=16 if bind_threads else 0)
        assert (mtype, seq, label) == (MSG_REPLY, 0, LABEL_REMOTE_REF)
        return id_pack


def hostile_connection(port, rng, seeds, history):
    """One hostile connection: a few frames, a short read, close. Returns frames sent."""
    frames = [hostile_frame(rng, seeds) for _ in range(rng.randrange(1, 6))]
    history.append(frames)
    try:
        with RawClient(port, timeout=2.0) as c:
            for f in frames:
                if not c.send_quietly(f):
                    break
            deadline = time.monotonic() + rng.choice((0.0, 0.01, 0.05))
            try:
                while time.monotonic() < deadline:
                    c._fill(deadline)
            except (Closed, socket.timeout, OSError):
                pass
    except (ConnectionError, socket.timeout):
        pass
    return len(frames)


def describe(history):
    return "\n".join(" | ".join(f[:80].hex() + ("..." if len(f) > 80 else "") for f in frames)
                     for frames in list(history)[-10:])


@pytest.mark.skipif(not VECTORS.is_dir(), reason="no captured session vectors at %s" % VECTORS)
@pytest.mark.parametrize("bind_threads", [False, True], ids=["plain", "bind_threads"])
def test_random_frame_soak(fresh_server, bind_threads):
    seed = int(os.environ.get("RPYC_SOAK_SEED", str(random.randrange(2 ** 32))))
    rng = random.Random(seed)
    server = fresh_server(bind_threads=bind_threads)
    payloads, roots = load_seeds(bind_threads)
    assert payloads and roots, "no seeds in %s" % VECTORS
    seeds = with_root(payloads, roots, live_root(server.port, bind_threads))
    history = collections.deque(maxlen=50)
    where = "seed %d (RPYC_SOAK_SEED=%d to replay); last frames sent:\n" % (seed, seed)

    good = GoodClient(server.port, bind_threads)
    good.start()
    start = time.monotonic()
    warmup_end = start + min(5.0, SOAK_SECONDS / 3)
    rss_base = None
    rss_max = 0
    connections = frames = 0
    next_sample = start
    try:
        while time.monotonic() - start < SOAK_SECONDS:
            frames += hostile_connection(server.port, rng, seeds, history)
            connections += 1
            now = time.monotonic()
            if now >= next_sample:
                next_sample = now + 0.5
                assert server.alive(), "the server died (status %s) at %.1f s; %s%s\nlog:\n%s" % (
                    server.proc.returncode, now - start, where, describe(history),
                    server.log_tail())
                rss = server.status_kib("VmRSS")
                if now >= warmup_end:
                    rss_base = rss if rss_base is None else rss_base
                    rss_max = max(rss_max, rss)
    finally:
        good.stop.set()
        good.join(30)

    assert server.alive(), "the server died; %s%s\nlog:\n%s" % (
        where, describe(history), server.log_tail())
    log = server.log_tail(10 ** 7)
    for bad in ("Traceback", "panicked", "PanicException", "terminated abruptly"):
        assert bad not in log, "the server logged %r; %s%s\nlog:\n%s" % (
            bad, where, describe(history), server.log_tail())
    assert not good.failures, "the well-behaved client failed: %s; %s%s" % (
        good.failures[:5], where, describe(history))
    assert good.calls > 0
    assert good.slowest < 5.0, "a good call took %.1f s" % good.slowest
    assert rss_base is not None
    grown = rss_max - rss_base
    assert grown < 64 * 1024, "server RSS grew by %d KiB during the soak (%d connections, " \
        "%d frames); %s" % (grown, connections, frames, where)
    # and after it
    conn = rpyc.connect(HOST, server.port, config={"bind_threads": bind_threads})
    try:
        assert conn.root.add(40, 2) == 42
    finally:
        conn.close()
    print("soak: %d hostile connections, %d frames, %d good calls (slowest %.3f s), "
          "RSS %d -> max %d KiB, seed %d" % (connections, frames, good.calls, good.slowest,
                                             rss_base, rss_max, seed))


# ---------------------------------------------------------------------------------------------
# regressions found by the soak
# ---------------------------------------------------------------------------------------------

def nested(depth, leaf=0):
    value = leaf
    for _ in range(depth):
        value = (value,)
    return value


@pytest.mark.parametrize("depth", [5, 200])
def test_deeply_nested_seq_is_echoed(server, depth):
    """Upstream echoes any seq; ours could not encode one nested over 4 levels, so the answer
    failed, the serving thread died with a traceback, and the connection was dropped."""
    seq = nested(depth)
    offset = server.log_size()
    with RawClient(server.port) as c:
        c.send(request(seq, HANDLE_PING, ("x",)))
        assert c.recv_message() == (MSG_REPLY, seq, (1, "x"))
        c.send(request(seq, 99, ()))                        # an exception answer, same seq
        mtype, rseq, body = c.recv_message()
        assert (mtype, rseq, body[0]) == (3, seq, ("builtins", "KeyError"))
        c.send(request(1, HANDLE_PING, ("still",)))
        assert c.recv_message() == (MSG_REPLY, 1, (1, "still"))
    assert "Traceback" not in server.log_since(offset)


def test_close_survives_a_peer_answering_garbage(raw_peer):
    """close() waits for the peer to end the connection; a peer that sends garbage instead
    made close() raise ProtocolError (a ThreadedServer thread died with a traceback)."""
    conn, peer = raw_peer

    def answer_garbage():
        peer.settimeout(5)
        peer.recv(100)                                  # the CLOSE request
        peer.sendall(frame(b"\xff garbage"))

    t = threading.Thread(target=answer_garbage)
    t.start()
    conn.close()
    t.join(5)
    assert conn.closed


def test_exception_with_a_nul_in_its_class_name(server, raw_peer):
    """Unpacking a stray EXCEPTION whose class name holds a NUL raised out of the receive
    path and killed the serving thread. Stray exceptions are no longer unpacked, and one that
    is awaited becomes a MalformedRemoteException."""
    offset = server.log_size()
    with RawClient(server.port) as c:
        c.send(frame(bytes([3]) + brine((77, (("a\x00b", "C\x00"), ("x",), (), "tb")))))
        c.send(request(1, HANDLE_PING, ("after",)))
        assert c.recv_message() == (MSG_REPLY, 1, (1, "after"))
    assert "Traceback" not in server.log_since(offset)

    conn, peer = raw_peer
    res = conn.async_request(HANDLE_PING, "x")
    peer.settimeout(5)
    head = peer.recv(5)
    body = peer.recv(struct.unpack("!L", head[:4])[0] + 1)
    seq, _ = unbrine(body[1:-1])
    peer.sendall(frame(bytes([3]) + brine((seq, (("a\x00b", "C\x00"), ("x",), (), "tb")))))
    assert res.error
    with pytest.raises(Exception) as info:
        res.value
    assert type(info.value).__name__ == "rpyc.MalformedRemoteException"
