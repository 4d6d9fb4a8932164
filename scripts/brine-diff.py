#!/usr/bin/env python3
"""Differential test of our brine decoder against upstream rpyc 6.0.2's (stdlib only).

    python3 scripts/brine-diff.py [--inputs N] [--seed S] [--batch B]
                                  [--ours-python PY] [--upstream-python PY] [--examples K]

Feeds the same inputs to ``rpyc.core.brine.load`` of both implementations. Each runs in
its own subprocess (tests/peers/brine_diff_peer.py): ours under --ours-python
($RPYC_OURS_PYTHON, else this interpreter), upstream under --upstream-python
($RPYC_UPSTREAM_PYTHON, else the venv of scripts/upstream-venv.sh). This process never
imports rpyc. Every input gets one outcome:

* both accept: the values must be equal, type-exact (floats by bit pattern, frozensets as
  sets of members). A difference is a violation;
* only ours accepts: a violation, unless the input is in OURS_ONLY_ALLOWED;
* only upstream accepts: our error message must fall in a strictness category whose check
  on upstream's facts holds (for instance: "trailing bytes" needs upstream's value,
  re-encoded by upstream's brine.dump, to be a strict prefix of the input). Otherwise a
  violation;
* both refuse: fine.

The categories (STRICTNESS_CATEGORIES) and the allowance (OURS_ONLY_ALLOWED) are literal
dicts at the top of tests/interop/test_brine_differential.py, the one place to edit them;
this script reads them from there with ``ast.literal_eval``, the test passes them in.

Inputs come from a seeded PRNG (``--seed`` replays a run): encodings of random values, the
spec vectors of crates/rpyc-wire/tests/vectors (brine*.json and the brine bodies of the
captured session frames), structurally plausible but lenient encodings (bad lengths, odd
integer texts, frozensets/slices over non-tuples, ...), mutations of all of those, and
short random byte strings. No input is longer than MAX_INPUT bytes.

Prints a table of outcomes per generator, examples (hex) of every kind of outcome, and
exits with status 1 on any violation. tests/interop/test_brine_differential.py runs a
short version of the same code.
"""

import argparse
import ast
import collections
import importlib.util
import json
import os
import random
import re
import select
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT / "tests" / "peers"
PEER = PEERS / "brine_diff_peer.py"
TEST_MODULE = ROOT / "tests" / "interop" / "test_brine_differential.py"
VECTORS = ROOT / "crates" / "rpyc-wire" / "tests" / "vectors"
UPSTREAM_VERSION = "6.0.2"

MAX_INPUT = 8192        # bytes; leaves room for INT texts around the 4300-digit limit
BATCH = 1000            # inputs per request to the peers
INPUT_TIMEOUT = 2.0     # seconds per input inside a peer (SIGALRM)
START_TIMEOUT = 60.0    # seconds for a peer to import rpyc and say hello
KINDS = ("valid", "vector", "lenient", "mutated", "random")

# ---------------------------------------------------------------------------------
# configuration from the test module
# ---------------------------------------------------------------------------------


def load_config(path=TEST_MODULE):
    """(STRICTNESS_CATEGORIES, OURS_ONLY_ALLOWED) as written in the test module."""
    tree = ast.parse(Path(path).read_text("utf-8"), str(path))
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name) and target.id in (
                        "STRICTNESS_CATEGORIES", "OURS_ONLY_ALLOWED"):
                    found[target.id] = ast.literal_eval(node.value)
    missing = {"STRICTNESS_CATEGORIES", "OURS_ONLY_ALLOWED"} - set(found)
    if missing:
        raise RuntimeError("%s does not define %s as literals" % (path, ", ".join(sorted(missing))))
    return found["STRICTNESS_CATEGORIES"], found["OURS_ONLY_ALLOWED"]


# ---------------------------------------------------------------------------------
# a tiny brine encoder (what upstream's brine.dump produces)
# ---------------------------------------------------------------------------------

_I1, _I4, _F8, _C16 = struct.Struct("!B"), struct.Struct("!L"), struct.Struct("!d"), struct.Struct("!dd")


def _bytes_item(b):
    n = len(b)
    if n == 0:
        return b"\x01"
    if n <= 4:
        return bytes([0x09 + n]) + b
    if n < 256:
        return b"\x0e" + _I1.pack(n) + b
    return b"\x0f" + _I4.pack(n) + b


def _tuple_header(n):
    if n == 0:
        return b"\x02"
    if n <= 4:
        return bytes([0x0F + n])
    if n < 256:
        return b"\x14" + _I1.pack(n)
    return b"\x15" + _I4.pack(n)


def _int_item(text):
    """INT_L1/INT_L4 with this text (bytes), length form chosen as upstream does."""
    if len(text) < 256:
        return b"\x16" + _I1.pack(len(text)) + text
    return b"\x17" + _I4.pack(len(text)) + text


def encode(v, out=None):
    """Brine encoding of v, byte for byte what upstream's ``brine.dump`` writes."""
    top = out is None
    if top:
        out = []
    t = type(v)
    if v is None:
        out.append(b"\x00")
    elif v is NotImplemented:
        out.append(b"\x05")
    elif v is Ellipsis:
        out.append(b"\x06")
    elif t is bool:
        out.append(b"\x03" if v else b"\x04")
    elif t is int:
        if -48 <= v < 160:
            out.append(bytes([v + 0x50]))
        else:
            out.append(_int_item(str(v).encode("ascii")))
    elif t is float:
        out.append(b"\x18" + _F8.pack(v))
    elif t is complex:
        out.append(b"\x1b" + _C16.pack(v.real, v.imag))
    elif t is bytes:
        out.append(_bytes_item(v))
    elif t is str:
        out.append(b"\x08" + _bytes_item(v.encode("utf-8")))
    elif t is tuple:
        out.append(_tuple_header(len(v)))
        for x in v:
            encode(x, out)
    elif t is frozenset:
        out.append(b"\x1a")
        encode(tuple(v), out)
    elif t is slice:
        out.append(b"\x19")
        encode((v.start, v.stop, v.step), out)
    else:
        raise TypeError("cannot encode %r" % (t,))
    return b"".join(out) if top else None


# ---------------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------------

TAG_BYTES = list(range(0x00, 0x1C))
UNKNOWN_TAGS = [0x07, 0x09, 0x1C, 0x1D, 0x1E, 0x1F, 0xF0, 0xF7, 0xFF]
IMM_EDGES = [0x20, 0x21, 0x4F, 0x50, 0x51, 0xEE, 0xEF]
LEN_TAGS = {0x0E: 1, 0x0F: 4, 0x14: 1, 0x15: 4, 0x16: 1, 0x17: 4}
INT_EDGES = [-49, -48, -47, -1, 0, 1, 158, 159, 160, 161, 255, 256, 1000, -1000,
             2**31 - 1, 2**31, -2**31, -2**31 - 1, 2**32, 2**63 - 1, 2**63, -2**63, -2**63 - 1,
             2**64 - 1, 2**64, -2**64, 10**18, 10**19, 10**19 - 1, -(10**19), 10**38 - 1, 10**38,
             -(10**38) + 1, -(10**38), 10**39, 2**127, -2**127, 10**254, 10**255, -(10**253),
             -(10**254)]
FLOAT_EDGES = [0.0, -0.0, 1.0, -1.5, 0.1, 18.2, float("inf"), float("-inf"), float("nan"),
               5e-324, -5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 2.0**53 + 1]
LEN_EDGES = [0, 1, 2, 3, 4, 5, 6, 254, 255, 256, 257]
LEN_FIELD_VALUES = [0, 1, 2, 3, 4, 5, 6, 254, 255, 256, 257, 4096, 65535, 0x7FFFFFFF, 0xFFFFFFFF]
INT_TEXTS = [b"5", b"-48", b"159", b"160", b"-49", b"+5", b" 5", b"5 ", b"\t160\n", b"1_0",
             b"1__0", b"_1", b"1_", b"05", b"00", b"0", b"-0", b"+0", b"", b"-", b"+", b" ",
             b"1e3", b"0x10", b"1.0", b"--1", b"-_1", b"+-1", b"\xd9\xa1", b"\x0b200\x0c",
             b"0000000000000000000200", b"1000_000", b"-1_000", b"99999999999999999999",
             b"-9223372036854775809", b"18446744073709551616", b"200\x00"]
CHAR_POOLS = [(0x20, 0x7E), (0x00, 0x7F), (0xA0, 0x7FF), (0x800, 0xD7FF), (0xE000, 0xFFFF),
              (0x10000, 0x10FFFF)]
BAD_UTF8 = [b"\x80", b"\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82",
            b"\xff", b"a\xc3", b"\xf0\x9f\x98", b"\xc3\x28", b"\xe0\x80\xaf", b"\xed\xbf\xbf"]


def vector_inputs(vectors=VECTORS):
    """Every brine vector, and the brine body of every captured session frame."""
    out = []

    def read(name):
        with open(os.path.join(vectors, name)) as f:
            return json.load(f)

    for name in ("brine.json", "brine-negative.json", "brine-lenient.json"):
        out += [bytes.fromhex(v["hex"]) for v in read(name) if "hex" in v]
    spec = importlib.util.spec_from_file_location("rpyc_fuzz_seed_corpus",
                                                  ROOT / "fuzz" / "seed_corpus.py")
    seeds = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(seeds)  # for split_frames and THREAD_PREFIX_LEN
    for session in read("sessions-index.json"):
        prefix = seeds.THREAD_PREFIX_LEN if session.get("bind_threads") else 0
        for rec in read(session["file"]):
            for compressed, payload in seeds.split_frames(bytes.fromhex(rec["hex"])):
                if compressed:
                    payload = zlib.decompress(payload)
                out.append(payload[prefix + 1:])  # after the message-type byte
    return [b for b in dict.fromkeys(out) if len(b) <= MAX_INPUT]


class Inputs:
    """The seeded stream of (generator kind, input bytes)."""

    def __init__(self, seed, vectors=VECTORS):
        self.rng = random.Random(seed)
        self.vectors = vector_inputs(vectors)
        self.pool = collections.deque(self.vectors, maxlen=2048)  # bases for mutations
        self.budget = MAX_INPUT  # bytes a lenient item may still take (reset per item)

    # -- values -----------------------------------------------------------------
    def int_value(self):
        r = self.rng
        c = r.random()
        if c < 0.3:
            return r.choice(INT_EDGES)
        if c < 0.6:
            return r.randint(-60, 200)
        if c < 0.9:
            return r.getrandbits(r.choice((16, 32, 63, 64, 65, 128, 400))) * r.choice((1, -1))
        if c < 0.99:
            return int(_digits(r, r.randint(1, 300)))
        n = r.choice((4298, 4299, 4300))  # digits, at CPython's int-to-text limit
        return int(_digits(r, n)) * r.choice((1, -1))

    def float_value(self):
        r = self.rng
        if r.random() < 0.4:
            return r.choice(FLOAT_EDGES)
        if r.random() < 0.5:  # any bit pattern: NaN payloads, subnormals, signalling NaNs
            return _F8.unpack(r.getrandbits(64).to_bytes(8, "big"))[0]
        return r.uniform(-1e6, 1e6)

    def length(self, cap=300):
        r = self.rng
        n = r.choice(LEN_EDGES) if r.random() < 0.4 else int(r.expovariate(0.2))
        return min(n, cap)

    def str_value(self):
        r = self.rng
        target = self.length()
        pool = r.choice(CHAR_POOLS) if r.random() < 0.5 else (0x20, 0x7E)
        chars, size = [], 0
        while size < target:
            lo, hi = pool if r.random() < 0.8 else r.choice(CHAR_POOLS)
            c = chr(r.randint(lo, hi))
            if 0xD800 <= ord(c) <= 0xDFFF:
                continue
            chars.append(c)
            size += len(c.encode("utf-8"))
        return "".join(chars)

    def value(self, depth=0, hashable=False):
        r = self.rng
        leaf = depth >= 6 or r.random() < 0.55 + 0.08 * depth
        if leaf:
            c = r.randrange(9)
            if c == 0:
                return r.choice((None, True, False, Ellipsis, NotImplemented))
            if c in (1, 2):
                return self.int_value()
            if c == 3:
                return self.float_value()
            if c == 4:
                return complex(self.float_value(), self.float_value())
            if c in (5, 6):
                return bytes(r.getrandbits(8) for _ in range(self.length()))
            return self.str_value()
        c = r.randrange(6 if hashable else 7)
        if c <= 2:
            n = self.length(260 if depth < 2 else 6) if r.random() < 0.2 else r.randint(0, 6)
            return tuple(self.value(depth + 1, hashable) for _ in range(n))
        if c <= 5:
            members = [self.value(depth + 1, True) for _ in range(r.randint(0, 6))]
            if r.random() < 0.05:
                members += [float("nan"), float("nan")]  # distinct objects: two members
            return frozenset(members)
        return slice(self.value(depth + 1), self.value(depth + 1), self.value(depth + 1))

    def deep_value(self):
        r = self.rng
        d = r.choice((r.randint(250, 262), r.randint(100, 400)))
        v = self.value(5)
        for _ in range(d):
            c = r.random()
            if c < 0.6:
                v = (v,)
            elif c < 0.8:
                v = frozenset([v]) if _hashable(v) else (v, 1)
            else:
                v = slice(v, None, 1)
        return v

    # -- lenient structures -------------------------------------------------------
    def int_text(self):
        r = self.rng
        c = r.random()
        if c < 0.35:
            return r.choice(INT_TEXTS)
        if c < 0.55:
            return str(self.int_value()).encode()
        if c < 0.65:  # around the 4300-digit limit, with an optional sign or padding
            n = r.choice((4299, 4300, 4301, 4302))
            return r.choice((b"", b"-", b"+", b"0", b" ")) + _digits(r, n).encode()
        alphabet = b"0123456789" * 3 + b"+-_ \t\n\x0b\x0c\r.xe\x00"
        return bytes(r.choices(alphabet, k=r.randint(0, 25)))

    def lenient(self, depth=0):
        """An item built like upstream's reader would accept it, often not canonically."""
        if depth == 0:
            self.budget = self.rng.choice((64, 256, 1024, MAX_INPUT))
        item = self._lenient(depth)
        self.budget -= len(item)
        return item

    def _lenient(self, depth):
        r = self.rng
        if self.budget <= 0:
            return bytes([r.choice(IMM_EDGES)])
        c = r.randrange(16 if depth < 8 else 9)
        if c == 0:
            return encode(self.value(4))
        if c == 1:  # byte string, length field of any width and any value
            content = bytes(r.getrandbits(8) for _ in range(self.length(40)))
            t = r.choice((0x01, 0x0A, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F))
            declared = len(content) if r.random() < 0.7 else r.choice(LEN_FIELD_VALUES)
            field = b"" if t < 0x0E else (_I1.pack(declared & 0xFF) if t == 0x0E else _I4.pack(declared))
            return bytes([t]) + field + content
        if c == 2:  # INT item: any text, any length form
            text = self.int_text()
            if r.random() < 0.3:
                return b"\x17" + _I4.pack(len(text)) + text
            if len(text) < 256 and r.random() < 0.9:
                return b"\x16" + _I1.pack(len(text)) + text
            return _int_item(text)
        if c == 3:  # FLOAT / COMPLEX, sometimes short
            t, n = r.choice(((0x18, 8), (0x1B, 16)))
            return bytes([t]) + bytes(r.getrandbits(8) for _ in range(n if r.random() < 0.8 else r.randint(0, n)))
        if c == 4:  # UNICODE over anything
            k = r.random()
            if k < 0.4:
                inner = _bytes_item(self.str_value().encode("utf-8"))
            elif k < 0.7:
                bad = r.choice(BAD_UTF8)
                inner = _bytes_item(self.str_value().encode("utf-8")[:3] + bad)
            elif k < 0.85:
                raw = self.str_value().encode("utf-8")
                inner = b"\x0e" + _I1.pack(len(raw) & 0xFF) + raw  # STR_L1 for any length
            else:
                inner = self.lenient(depth + 1)
            return b"\x08" + inner
        if c == 5:
            return bytes([r.choice(UNKNOWN_TAGS + TAG_BYTES)])
        if c == 6:
            return bytes([r.choice((0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06) + tuple(IMM_EDGES))])
        if c == 7:
            return encode(r.choice(INT_EDGES))
        if c == 8:
            return encode(self.float_value())
        if c in (9, 10, 11):  # tuple: any header, item count sometimes off
            n = r.randint(0, 6) if r.random() < 0.9 else r.choice(LEN_EDGES)
            form = r.random()
            if form < 0.7:
                head = _tuple_header(n)
            elif form < 0.85:
                head = b"\x14" + _I1.pack(n & 0xFF)
            else:
                head = b"\x15" + _I4.pack(n)
            items = n + (r.choice((-1, 1)) if r.random() < 0.1 else 0)
            return head + b"".join(self.lenient(depth + 1) for _ in range(max(items, 0)))
        if c == 12:  # FSET over anything
            k = r.random()
            if k < 0.25:  # equal members (1, True, 1.0), repeated or byte-identical items
                pool = [encode(x) for x in (1, True, 1.0, 0, False, 0.0, -0.0, 1 + 0j, float("nan"))]
                items = [r.choice(pool) for _ in range(r.randint(1, 4))]
                return b"\x1a" + _tuple_header(len(items)) + b"".join(items)
            if k < 0.4:
                return b"\x1a" + encode(self.value(3, True))
            return b"\x1a" + self.lenient(depth + 1)
        if c == 13:  # SLICE over anything with three parts, or not
            k = r.random()
            if k < 0.3:
                return b"\x19" + encode(self.value(3))
            if k < 0.5:
                return b"\x19" + r.choice((b"\x0c", b"\x08\x0c")) + bytes(r.choice(b"abc\x00\x7f") for _ in range(3))
            if k < 0.6:
                return b"\x19\x1a\x12" + encode(r.randint(0, 9)) + encode(r.randint(10, 19)) + encode(r.randint(20, 29))
            return b"\x19" + self.lenient(depth + 1)
        if c == 14:  # a chain of containers around the nesting limit
            d = r.choice((r.randint(190, 262), r.randint(1, 600)))
            unit = r.choice((b"\x10", b"\x1a\x10", b"\x19\x12\x00\x00", b"\x11\x50",
                             b"\x14\x05\x50\x50\x50\x50", b"\x1a\x14\x05\x60\x61\x62\x63"))
            return unit * d + self.lenient(depth + 1)
        return self.lenient(depth + 1) + self.lenient(depth + 1)  # trailing item

    # -- mutations ------------------------------------------------------------------
    def mutate(self, data):
        r = self.rng
        b = bytearray(data)
        for _ in range(r.choice((1, 1, 1, 2, 2, 3, 4))):
            op = r.randrange(12)
            n = len(b)
            i = r.randrange(n + 1)
            if op == 0 and n:  # bit flip
                i = min(i, n - 1)
                b[i] ^= 1 << r.randrange(8)
            elif op == 1 and n:  # random byte
                b[min(i, n - 1)] = r.getrandbits(8)
            elif op == 2:  # insert
                b[i:i] = bytes([r.choice((r.getrandbits(8), r.choice(TAG_BYTES)))])
            elif op == 3 and n:  # delete a run
                del b[i:i + r.choice((1, 1, 2, 4, 8))]
            elif op == 4 and n:  # duplicate a slice
                j = r.randrange(n + 1)
                lo, hi = min(i, j), max(i, j)
                b[hi:hi] = b[lo:min(hi, lo + 64)]
            elif op == 5 and n:  # truncate
                del b[r.randrange(n):]
            elif op == 6:  # append random bytes or an item
                b += bytes(r.getrandbits(8) for _ in range(r.randint(1, 4))) if r.random() < 0.5 \
                    else self.lenient(4)
            elif op in (7, 8) and n:  # length field set to a small or large value
                spots = [k for k in range(n) if b[k] in LEN_TAGS]
                if spots:
                    k = r.choice(spots)
                    width = LEN_TAGS[b[k]]
                    v = r.choice(LEN_FIELD_VALUES)
                    if width == 1:
                        b[k + 1:k + 2] = _I1.pack(v & 0xFF)
                    else:
                        b[k + 1:k + 5] = _I4.pack(v)
            elif op == 9 and n:  # tag swap
                b[min(i, n - 1)] = r.choice(TAG_BYTES + UNKNOWN_TAGS + IMM_EDGES)
            elif op == 10:  # splice in part of another input
                other = r.choice(self.pool)
                j = r.randrange(len(other) + 1)
                b[i:i + r.randint(0, 8)] = other[j:j + r.randint(1, 32)]
            elif op == 11 and n:  # swap two bytes
                j = r.randrange(n)
                i = min(i, n - 1)
                b[i], b[j] = b[j], b[i]
        return bytes(b[:MAX_INPUT])

    def random_bytes(self):
        r = self.rng
        n = r.choice((0, 1, 1, 2, 2, 3, 4, 5, 6, 8, 9, 12, 16, 17, 24))
        if r.random() < 0.5:
            return bytes(r.getrandbits(8) for _ in range(n))
        return bytes(r.choice(TAG_BYTES + IMM_EDGES) for _ in range(n))

    def next(self):
        r = self.rng
        c = r.random()
        if c < 0.22:
            v = self.deep_value() if r.random() < 0.01 else self.value()
            data = encode(v)
            if len(data) > MAX_INPUT:
                return self.next()
            self.pool.append(data)
            return "valid", data
        if c < 0.24:
            return "vector", r.choice(self.vectors)
        if c < 0.42:
            data = self.lenient()[:MAX_INPUT]
            self.pool.append(data)
            return "lenient", data
        if c < 0.9:
            return "mutated", self.mutate(r.choice(self.pool))
        return "random", self.random_bytes()


def _digits(r, n):
    """n random decimal digits, the first not 0."""
    return str(r.randint(1, 9)) + "".join(r.choices("0123456789", k=n - 1))


def _hashable(v):
    try:
        hash(v)
        return True
    except TypeError:
        return False


# ---------------------------------------------------------------------------------
# classification
# ---------------------------------------------------------------------------------

def _check_trailing(data, msg, facts):
    consumed, short, canon_end, _ = facts
    if short:
        return "read past the end"
    if consumed >= len(data):
        return "no bytes left over"
    if canon_end != consumed:
        return "prefix not canonical"
    return None


def _check_short_read(data, msg, facts):
    return None if facts[1] else "no short read"


def _check_non_canonical(data, msg, facts):
    consumed, _, canon_end, _ = facts
    return None if canon_end != consumed else "input is canonical"


def _check_too_deep(data, msg, facts):
    m = re.search(r"max_nesting_depth=(\d+)", msg)
    limit = int(m.group(1)) if m else 256
    return None if facts[3] > limit else "value not that deep"


def _check_never(data, msg, facts):
    return "upstream accepts"


def _check_by_design(data, msg, facts):
    return None


# A category's "check" names one of these: a predicate on upstream's facts (consumed,
# short_read, canonical_end, depth: see tests/peers/brine_diff_peer.py) that returns None
# when it holds, else why not.
CHECKS = {
    "trailing": _check_trailing,          # upstream's value re-encoded is a strict prefix
    "short_read": _check_short_read,      # upstream read past the end and did not notice
    "non_canonical": _check_non_canonical,  # re-encoding the value gives other bytes
    "too_deep": _check_too_deep,          # the value nests deeper than our limit
    "never": _check_never,                # upstream must refuse these too
    "by_design": _check_by_design,        # refused on purpose although upstream may accept
}


def category_of(msg, categories):
    for name, cat in categories.items():
        if any(f in msg for f in cat["fragments"]):
            return name
    return None


def classify(data, ours, up, categories, allowed, kind=None):
    """(outcome key, is_violation) for one input; ours and up are peer results."""
    o_ok, u_ok = ours[0] == "V", up[0] == "V"
    if ours[0] == "X":
        return "VIOLATION ours crashed or hung", True
    if kind == "valid" and (u_ok and up[4] != len(data) or not u_ok and up[1] != "RecursionError"):
        # encode() and upstream's dump disagree: a bug of this harness
        return "VIOLATION harness: a valid input is not upstream's encoding", True
    if o_ok and u_ok:
        if ours[1] != up[1]:
            return "VIOLATION both accept, values differ", True
        if up[4] != len(data):
            return "both accept (input not canonical)", False
        return "both accept", False
    if o_ok:
        if data.hex() in allowed:
            return "only ours accepts (allowed)", False
        if "upstream:" + up[1] in allowed:
            return "only ours accepts (allowed: upstream %s)" % up[1], False
        return "VIOLATION only ours accepts (upstream: %s)" % up[1], True
    if not u_ok:
        if ours[1] != "ProtocolError":
            return "both refuse (ours: %s)" % ours[1], False
        return "both refuse", False
    # only upstream accepts
    if ours[1] != "ProtocolError":
        return "VIOLATION only upstream accepts, ours raised %s" % ours[1], True
    name = category_of(ours[2], categories)
    if name is None:
        return "VIOLATION only upstream accepts, no category", True
    why_not = CHECKS[categories[name]["check"]](data, ours[2], up[2:6])
    if why_not:
        return "VIOLATION only upstream accepts, %s, but %s" % (name, why_not), True
    return "only upstream accepts: %s" % name, False


# ---------------------------------------------------------------------------------
# peers
# ---------------------------------------------------------------------------------

class PeerFailure(Exception):
    pass


def default_env(role):
    env = dict(os.environ)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    if role == "upstream":
        env.pop("PYTHONPATH", None)  # never let the upstream venv see our package
        env.pop("PYTHONHOME", None)
    return env


def impl_problem(role, impl):
    if role == "ours" and not impl.get("native"):
        return "the ours peer imported rpyc %s from %s, which has no rpyc._core" % (
            impl.get("version"), impl.get("file"))
    if role == "upstream" and (impl.get("native") or impl.get("version") != UPSTREAM_VERSION):
        return "the upstream peer is not upstream rpyc %s: %r" % (UPSTREAM_VERSION, impl)
    return None


class Peer:
    """tests/peers/brine_diff_peer.py in its own process group, talking over pipes."""

    def __init__(self, role, python, env_for_role=default_env):
        self.role, self.python, self.env_for_role = role, python, env_for_role
        self.proc = None
        self.impl = None
        self.start()

    def start(self):
        self.err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [self.python, "-u", str(PEER), "--role", self.role, "--timeout", str(INPUT_TIMEOUT)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err, cwd=str(PEERS),
            env=self.env_for_role(self.role), start_new_session=True)
        try:
            hello = self.recv(START_TIMEOUT)
        except BaseException:
            self.close()
            raise
        self.impl = hello.get("impl") or {}
        problem = impl_problem(self.role, self.impl)
        if problem:
            self.close()
            raise PeerFailure(problem)

    def send(self, inputs):
        parts = [b"B", struct.pack("!I", len(inputs))]
        for data in inputs:
            parts += [struct.pack("!I", len(data)), data]
        try:
            self.proc.stdin.write(b"".join(parts))
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise PeerFailure("%s peer: cannot send: %s%s" % (self.role, exc, self._why()))

    def _read(self, n, deadline):
        fd = self.proc.stdout.fileno()
        buf = bytearray()
        while len(buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise PeerFailure("%s peer: no answer in time%s" % (self.role, self._why()))
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, min(n - len(buf), 1 << 20))
            if not chunk:
                raise PeerFailure("%s peer: exited%s" % (self.role, self._why()))
            buf += chunk
        return bytes(buf)

    def recv(self, timeout):
        deadline = time.monotonic() + timeout
        (n,) = struct.unpack("!I", self._read(4, deadline))
        return json.loads(self._read(n, deadline).decode("utf-8"))

    def _why(self):
        try:
            self.proc.wait(0.5)
        except subprocess.TimeoutExpired:
            pass
        rc = self.proc.poll()
        self.err.seek(0)
        tail = self.err.read()[-1500:].decode("utf-8", "replace").strip()
        return " (status %s)%s" % (rc, ("; stderr: " + tail) if tail else "")

    def close(self):
        proc = self.proc
        if proc is None:
            return
        try:
            proc.stdin.write(b"Q")
            proc.stdin.close()
        except (BrokenPipeError, OSError, ValueError):
            pass
        try:
            proc.wait(3)
        except subprocess.TimeoutExpired:
            pass
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if proc.poll() is not None:
                break
            try:
                os.killpg(proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                break
            try:
                proc.wait(3)
            except subprocess.TimeoutExpired:
                pass
        proc.stdout.close()
        self.err.close()
        self.proc = None

    def restart(self):
        self.close()
        self.start()

    def run_batch(self, inputs):
        """Results for inputs; a crash or hang becomes an "X" result for the input at fault."""
        try:
            self.send(inputs)
            return self.recv(batch_timeout(len(inputs)))
        except PeerFailure:
            pass
        # Find the culprit(s): one input per request, restarting after each failure.
        self.restart()
        results = []
        for data in inputs:
            try:
                self.send([data])
                results += self.recv(INPUT_TIMEOUT + 10)
            except PeerFailure as exc:
                results.append(["X", "crash", str(exc)[:600]])
                self.restart()
        return results


def batch_timeout(n):
    return 30.0 + n * 0.05


# ---------------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------------

class Report:
    def __init__(self, seed, inputs, examples=3):
        self.seed, self.inputs, self.examples_kept = seed, inputs, examples
        self.counts = collections.Counter()          # (outcome, kind) -> n
        self.categories = collections.Counter()      # our error category -> n (all refusals)
        self.examples = collections.defaultdict(list)  # outcome -> [(len, hex, kind, ours, up)]
        self.seconds = 0.0
        self.done = 0
        self.impls = {}

    def add(self, outcome, kind, data, ours, up, categories):
        self.counts[(outcome, kind)] += 1
        self.done += 1
        if ours[0] == "E":
            self.categories[category_of(ours[2], categories) or "(%s, no category)" % ours[1]] += 1
        ex = self.examples[outcome]
        if (len(ex) < self.examples_kept or len(data) < ex[-1][0]) and \
                all(e[1] != data.hex() for e in ex):
            ex.append((len(data), data.hex(), kind, ours, up))
            ex.sort(key=lambda e: (e[0], e[1]))
            del ex[self.examples_kept:]

    @property
    def outcomes(self):
        totals = collections.Counter()
        for (outcome, _), n in self.counts.items():
            totals[outcome] += n
        return totals

    @property
    def violations(self):
        return sum(n for o, n in self.outcomes.items() if o.startswith("VIOLATION"))

    def table(self):
        kinds = [k for k in KINDS if any(kk == k for (_, kk) in self.counts)]
        rows = sorted(self.outcomes.items(), key=lambda kv: (kv[0].startswith("VIOLATION"), kv[0]))
        width = max([len(o) for o, _ in rows] + [20])
        lines = ["brine differential: %d inputs, seed %d, %.1f s (%.0f inputs/s)" % (
            self.done, self.seed, self.seconds, self.done / self.seconds if self.seconds else 0)]
        head = "%-*s %9s" % (width, "outcome", "total") + "".join(" %9s" % k for k in kinds)
        lines += [head, "-" * len(head)]
        for outcome, total in rows:
            lines.append("%-*s %9d" % (width, outcome, total) + "".join(
                " %9d" % self.counts[(outcome, k)] for k in kinds))
        lines += ["", "our error messages by category (every input we refused):"]
        for name, n in self.categories.most_common():
            lines.append("  %-40s %9d" % (name, n))
        lines.append("violations: %d" % self.violations)
        return "\n".join(lines)

    def examples_text(self, only_violations=False):
        lines = []
        for outcome in sorted(self.examples):
            if only_violations and not outcome.startswith("VIOLATION"):
                continue
            lines.append("%s:" % outcome)
            for _, hexdata, kind, ours, up in self.examples[outcome]:
                lines.append("  %s  [%s]" % (hexdata or "(empty)" if len(hexdata) <= 160 else
                                             hexdata[:160] + "...(%d bytes)" % (len(hexdata) // 2), kind))
                lines.append("      ours: %s" % _short(ours))
                lines.append("      upstream: %s" % _short(up))
        return "\n".join(lines)

    def failure_text(self):
        return "%s\n\nviolations (shortest examples; replay with RPYC_BRINE_DIFF_SEED=%d or " \
               "scripts/brine-diff.py --seed %d --inputs %d):\n%s" % (
                   self.table(), self.seed, self.seed, self.inputs,
                   self.examples_text(only_violations=True))


def _short(result):
    text = json.dumps(result)
    return text if len(text) <= 300 else text[:300] + "..."


def run(ours_python, upstream_python, inputs, seed, categories, allowed, batch=BATCH,
        env_for_role=default_env, examples=3, progress=None):
    """Run the differential test; returns a Report."""
    unknown = {c["check"] for c in categories.values()} - set(CHECKS)
    if unknown:
        raise ValueError("unknown checks in STRICTNESS_CATEGORIES: %s" % sorted(unknown))
    gen = Inputs(seed)
    report = Report(seed, inputs, examples)
    t0 = time.monotonic()
    peers = []
    try:
        ours = Peer("ours", ours_python, env_for_role)
        peers.append(ours)
        up = Peer("upstream", upstream_python, env_for_role)
        peers.append(up)
        report.impls = {"ours": ours.impl, "upstream": up.impl}

        def make(n):
            return [gen.next() for _ in range(n)]

        left = inputs
        current = make(min(batch, left))
        left -= len(current)
        while current:
            datas = [d for _, d in current]
            sent = {p.role: _send(p, datas) for p in peers}
            upcoming = make(min(batch, left))  # while the peers work
            left -= len(upcoming)
            ours_res = _collect(ours, datas, sent["ours"])
            up_res = _collect(up, datas, sent["upstream"])
            for (kind, data), o, u in zip(current, ours_res, up_res):
                if u[0] == "X":  # upstream crashed or hung: treat as a refusal, but keep it
                    u = ["E", "UpstreamFailure", u[2]]
                outcome, _ = classify(data, o, u, categories, allowed, kind)
                report.add(outcome, kind, data, o, u, categories)
            current = upcoming
            if progress:
                progress(report)
    finally:
        for p in peers:
            p.close()
        report.seconds = time.monotonic() - t0
    return report


def _send(peer, datas):
    try:
        peer.send(datas)
        return True
    except PeerFailure:
        return False  # _collect re-runs the batch and finds out why


def _collect(peer, datas, sent):
    """The results of the batch just sent to peer (re-run input by input on a failure)."""
    if sent:
        try:
            results = peer.recv(batch_timeout(len(datas)))
            if len(results) == len(datas):
                return results
        except PeerFailure:
            pass
    return peer.run_batch(datas)


# ---------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------

def upstream_python_default():
    python = os.environ.get("RPYC_UPSTREAM_PYTHON")
    if python:
        return python
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "upstream-venv.sh")], capture_output=True,
                          text=True, timeout=600, cwd=str(ROOT), env=default_env("upstream"))
    if proc.returncode != 0 or not proc.stdout.strip():
        raise SystemExit("scripts/upstream-venv.sh failed: %s" % (proc.stderr[-1500:],))
    return proc.stdout.strip().splitlines()[-1].strip()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inputs", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=None, help="default: random (printed)")
    ap.add_argument("--batch", type=int, default=BATCH)
    ap.add_argument("--examples", type=int, default=3, help="examples kept per outcome")
    ap.add_argument("--ours-python", default=os.environ.get("RPYC_OURS_PYTHON") or sys.executable)
    ap.add_argument("--upstream-python", default=None)
    ap.add_argument("--quiet", action="store_true", help="no progress lines")
    args = ap.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    categories, allowed = load_config()
    upstream = args.upstream_python or upstream_python_default()
    print("seed %d, %d inputs; ours: %s; upstream: %s" % (seed, args.inputs, args.ours_python, upstream),
          flush=True)
    last = [time.monotonic()]

    def progress(report):
        if args.quiet or time.monotonic() - last[0] < 30:
            return
        last[0] = time.monotonic()
        print("  %d/%d inputs, %d violations so far" % (report.done, args.inputs, report.violations),
              flush=True)

    report = run(args.ours_python, upstream, args.inputs, seed, categories, allowed,
                 batch=args.batch, examples=args.examples, progress=progress)
    print(report.table())
    print("\nexamples (shortest inputs per outcome):")
    print(report.examples_text())
    if report.violations:
        print("\nFAILED: %d violations; replay with --seed %d --inputs %d"
              % (report.violations, seed, args.inputs))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
