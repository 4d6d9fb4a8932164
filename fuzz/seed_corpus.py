#!/usr/bin/env python3
"""Write the seed corpora of the fuzz targets from the spec vectors (stdlib only).

    python3 fuzz/seed_corpus.py [VECTORS_DIR] [CORPUS_DIR]

VECTORS_DIR defaults to crates/rpyc-wire/tests/vectors, CORPUS_DIR to fuzz/corpus.
Writes CORPUS_DIR/<target>/seed-* (overwriting earlier seeds of the same name, leaving
everything the fuzzer has added alone):

- brine_decode: every brine vector (valid, negative, lenient) and the brine body of
  every captured message;
- frame_decode: every captured frame, each session's frames per direction as one
  stream, and a few made-up frames (zlib bomb, corrupt and truncated zlib, trailing
  bytes after the zlib stream, a header over the size limit, an empty frame);
- message_decode: the payload of every captured frame, inflated.
"""

import hashlib
import json
import os
import struct
import sys
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
THREAD_PREFIX_LEN = 16


def frame(payload, compressed=False):
    return struct.pack(">IB", len(payload), int(compressed)) + payload + b"\n"


def split_frames(stream):
    """(compressed, payload) of each frame in a captured stream."""
    out, pos = [], 0
    while pos + 5 <= len(stream):
        n, flag = struct.unpack_from(">IB", stream, pos)
        out.append((flag != 0, stream[pos + 5 : pos + 5 + n]))
        pos += 5 + n + 1
    return out


# By-value values (docs/by-value.md#wire-format), read by brine_decode's by-value pass:
# [1, {"a": 2}, {3}], a 2x2 float64 array, one with strides outside its data, a reference.
BY_VALUE_SEEDS = [
    bytes.fromhex("1c 12 51 1d 11 08 0a 61 52 1e 10 53"),
    bytes.fromhex("1f 13 08 0c 3c 66 38 11 52 52 11 60 58 0e 20") + bytes(32),
    bytes.fromhex("1f 13 08 0c 3c 66 38 11 52 52 11 16 04 31 30 30 30 58 0e 20") + bytes(32),
    bytes.fromhex("1c 11 f1 12 08 0c 61 2e 62 57 58 f0 12 08 0a 78 51 52"),
]


def main():
    vectors = sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "crates/rpyc-wire/tests/vectors")
    corpus = sys.argv[2] if len(sys.argv) > 2 else os.path.join(HERE, "corpus")
    seeds = {"brine_decode": [], "frame_decode": [], "message_decode": [], "connection": []}

    def load(name):
        with open(os.path.join(vectors, name)) as f:
            return json.load(f)

    for name in ("brine.json", "brine-negative.json", "brine-lenient.json"):
        seeds["brine_decode"] += [bytes.fromhex(v["hex"]) for v in load(name)]
    seeds["brine_decode"] += BY_VALUE_SEEDS

    index = load("sessions-index.json")
    for session in index:
        bind_threads = session.get("bind_threads", False)
        streams = {}
        for rec in load(session["file"]):
            wire = bytes.fromhex(rec["hex"])
            seeds["frame_decode"].append(wire)
            streams.setdefault(rec["direction"], []).append(wire)
            for compressed, payload in split_frames(wire):
                if compressed:
                    payload = zlib.decompress(payload)
                seeds["message_decode"].append(payload)
                body = payload[THREAD_PREFIX_LEN if bind_threads else 0 :][1:]
                seeds["brine_decode"].append(body)
        seeds["frame_decode"] += [b"".join(frames) for frames in streams.values()]
        # The connection target: a settings byte (bit 0 bind_threads, bit 2 the client role),
        # then what the peer sent: the client's frames to a server, and the other way round.
        threads = 1 if bind_threads else 0
        for direction, role in (("client->server", 0), ("server->client", 4)):
            frames = streams.get(direction, [])
            for chunking in (0, 5 << 3):
                seeds["connection"].append(bytes([threads | role | chunking]) + b"".join(frames))

    bomb = zlib.compress(b"\0" * (1 << 20), 9)  # ~1 KiB inflating to 1 MiB
    text = zlib.compress(b"\x02\x11\x51" + b"\x08\x0e\x05hello" * 100, 1)
    seeds["frame_decode"] += [
        frame(bomb, True),
        frame(text, True),
        frame(text[:-3], True),  # truncated zlib stream
        frame(text + b"\0\0", True),  # bytes after the zlib stream
        frame(b"\x78\x9c\xff\xff\xff", True),  # corrupt zlib
        frame(b"", False) + frame(b"", True),
        struct.pack(">IB", 0xFFFFFFFF, 0) + b"\0" * 8,  # over max_frame_size
        frame(b"\x02\x11\x51\x50") + frame(zlib.compress(b"\x02\x11\x51\x50"), True),
    ]

    total = 0
    for target, items in seeds.items():
        d = os.path.join(corpus, target)
        os.makedirs(d, exist_ok=True)
        for data in set(items):
            with open(os.path.join(d, "seed-" + hashlib.sha1(data).hexdigest()[:16]), "wb") as f:
                f.write(data)
            total += 1
    print(f"seeded {total} inputs under {corpus}")


if __name__ == "__main__":
    main()
