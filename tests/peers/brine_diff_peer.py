"""Peer of the brine differential test: runs ``rpyc.core.brine.load`` on batches of inputs.

    python brine_diff_peer.py --role upstream|ours [--timeout SECONDS]

Started by ``scripts/brine-diff.py`` (and so by tests/interop/test_brine_differential.py)
once under the upstream rpyc 6.0.2 venv and once under our interpreter; the two are never
imported in one process. The same rendering code runs on both sides, so their outputs can
be compared as strings.

Protocol (binary, on stdin/stdout):

* at start the peer writes one response holding ``{"impl": {...}, "role": ...}``;
* request: ``b"B"`` + ``!I`` count + count x (``!I`` length + bytes); ``b"Q"`` or EOF ends;
* response: ``!I`` length + a UTF-8 JSON list with one entry per input, in order:
  - ``["V", rendering]`` (ours) or
    ``["V", rendering, consumed, short_read, canonical_end, depth]`` (upstream) when
    ``load`` returned a value;
  - ``["E", exception class name, message (at most 300 characters)]`` otherwise
    (``"Timeout"`` when one input ran longer than ``--timeout``).

The upstream facts explain why upstream accepted what we refuse (see the categories in
tests/interop/test_brine_differential.py):

* ``consumed``: the bytes upstream's reader took (``BytesIO.tell()`` after the value);
* ``short_read``: some ``read(n)`` returned fewer than n bytes (upstream never checks);
* ``canonical_end``: where the canonical encoding of the value (upstream's ``brine.dump``,
  with frozenset members in any order) ends when matched against the input from byte 0,
  or -1 when the input does not start with one;
* ``depth``: the deepest nesting of tuple/frozenset/slice containers in the value.

Each input gets a time bound (SIGALRM) and every exception is caught, RecursionError and
MemoryError included. The address space is capped (RLIMIT_AS) so that a runaway allocation
fails instead of swapping.
"""

import argparse
import io
import json
import os
import signal
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from peer_common import impl_info  # noqa: E402  (no rpyc import there)

MESSAGE_LIMIT = 300
ADDRESS_SPACE_LIMIT = 4 << 30
_D = struct.Struct("!d")
_DD = struct.Struct("!dd")


class InputTimeout(BaseException):
    """Raised by SIGALRM inside a load that ran too long."""


def _alarm(signum, frame):
    raise InputTimeout()


# ---------------------------------------------------------------------------------
# type-exact rendering (the same code renders both sides' values)
# ---------------------------------------------------------------------------------

def render(v):
    """A deterministic, type-exact string for a brine value.

    Floats are compared by bit pattern (so -0.0 != 0.0, and NaN equals a NaN with the same
    bits); a frozenset is the sorted list of its members' renderings (independent of the
    hash seed); bool is not int; bytes is not str.
    """
    t = type(v)
    if v is None:
        return "N"
    if v is Ellipsis:
        return "..."
    if v is NotImplemented:
        return "NI"
    if t is bool:
        return "T" if v else "F"
    if t is int:
        return "i" + format(v, "x")  # hex: no 4300-digit limit on str(int)
    if t is float:
        return "f" + _D.pack(v).hex()
    if t is complex:
        return "c" + _DD.pack(v.real, v.imag).hex()
    if t is bytes:
        return "b'" + v.hex()
    if t is str:
        return "s'" + v.encode("utf-8", "surrogatepass").hex()
    if t is tuple:
        return "(" + ",".join([render(x) for x in v]) + ")"
    if t is frozenset:
        return "{" + ",".join(sorted([render(x) for x in v])) + "}"
    if t is slice:
        return "S(" + render(v.start) + "," + render(v.stop) + "," + render(v.step) + ")"
    return "?" + t.__module__ + "." + t.__qualname__


def depth(v):
    """Deepest nesting of tuple/frozenset/slice containers (iterative: no recursion limit)."""
    best = 0
    stack = [(v, 0)]
    while stack:
        x, d = stack.pop()
        t = type(x)
        if t is tuple or t is frozenset:
            d += 1
            stack.extend((m, d) for m in x)
        elif t is slice:
            d += 1
            stack.extend(((x.start, d), (x.stop, d), (x.step, d)))
        else:
            continue
        if d > best:
            best = d
    return best


def _tuple_header_end(data, pos, n):
    """End of the canonical tuple header for n items at pos, or -1."""
    if n == 0:
        hdr = b"\x02"
    elif n <= 4:
        hdr = bytes([0x0F + n])
    elif n < 256:
        hdr = b"\x14" + bytes([n])
    else:
        hdr = b"\x15" + struct.pack("!L", n)
    return pos + len(hdr) if data.startswith(hdr, pos) else -1


def canonical_end(v, data, pos, dump):
    """Where the canonical encoding of v ends if data holds one at pos, else -1.

    Canonical means what ``dump`` produces, except that a frozenset's members may come in
    any order (each member once: a set cannot list one twice).
    """
    t = type(v)
    if t is tuple:
        p = _tuple_header_end(data, pos, len(v))
        for x in v:
            if p < 0:
                return -1
            p = canonical_end(x, data, p, dump)
        return p
    if t is frozenset:
        if not data.startswith(b"\x1a", pos):
            return -1
        p = _tuple_header_end(data, pos + 1, len(v))
        left = list(v)
        while left and p >= 0:
            for i, m in enumerate(left):
                e = canonical_end(m, data, p, dump)
                if e >= 0:
                    del left[i]
                    p = e
                    break
            else:
                return -1
        return p
    if t is slice:
        if not data.startswith(b"\x19", pos):
            return -1
        return canonical_end((v.start, v.stop, v.step), data, pos + 1, dump)
    enc = dump(v)
    return pos + len(enc) if data.startswith(enc, pos) else -1


class TracingBytesIO(io.BytesIO):
    """A BytesIO that notes whether any read came back short (upstream never checks)."""

    short = False

    def read(self, n=-1):
        b = super().read(n)
        if n is not None and n >= 0 and len(b) < n:
            self.short = True
        return b


# ---------------------------------------------------------------------------------
# the loop
# ---------------------------------------------------------------------------------

def _read_exact(stream, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = stream.read(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def _send(out, obj):
    body = json.dumps(obj, separators=(",", ":")).encode("utf-8")
    out.write(struct.pack("!I", len(body)) + body)
    out.flush()


def _error(exc):
    if isinstance(exc, InputTimeout):
        return ["E", "Timeout", ""]
    try:
        msg = str(exc)
    except BaseException:  # noqa: BLE001 - a message that cannot be rendered
        msg = "<unprintable>"
    return ["E", type(exc).__name__, msg[:MESSAGE_LIMIT]]


def _safe(fn, *args):
    """fn(*args) with room on the stack: deep values exceed the default recursion limit."""
    try:
        return fn(*args)
    except RecursionError:
        old = sys.getrecursionlimit()
        sys.setrecursionlimit(max(old, 20000))
        try:
            return fn(*args)
        finally:
            sys.setrecursionlimit(old)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--role", choices=("upstream", "ours"), required=True)
    ap.add_argument("--timeout", type=float, default=2.0, help="seconds per input")
    args = ap.parse_args()

    try:
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if soft == resource.RLIM_INFINITY or soft > ADDRESS_SPACE_LIMIT:
            resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_LIMIT, hard))
    except (ImportError, ValueError, OSError):  # pragma: no cover - not POSIX
        pass

    import rpyc
    from rpyc.core import brine

    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    _send(stdout, {"impl": impl_info(rpyc), "role": args.role})
    upstream = args.role == "upstream"
    load, dump = brine.load, brine.dump
    signal.signal(signal.SIGALRM, _alarm)
    timeout = args.timeout

    while True:
        kind = stdin.read(1)
        if kind != b"B":
            return 0
        (count,) = struct.unpack("!I", _read_exact(stdin, 4))
        inputs = []
        for _ in range(count):
            (n,) = struct.unpack("!I", _read_exact(stdin, 4))
            inputs.append(_read_exact(stdin, n) if n else b"")
        results = []
        for data in inputs:
            signal.setitimer(signal.ITIMER_REAL, timeout)
            try:
                try:
                    value = load(data)
                    if upstream:
                        # The same decode again, with a reader that keeps the facts.
                        stream = TracingBytesIO(data)
                        again = brine._load(stream)
                        facts = [stream.tell(), stream.short,
                                 _safe(canonical_end, again, data, 0, dump), depth(again)]
                    else:
                        facts = []
                    results.append(["V", _safe(render, value)] + facts)
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
            except BaseException as exc:  # noqa: BLE001 - every outcome is data here
                if isinstance(exc, KeyboardInterrupt):
                    raise
                results.append(_error(exc))
        _send(stdout, results)


if __name__ == "__main__":
    sys.exit(main())
