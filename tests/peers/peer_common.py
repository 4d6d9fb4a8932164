"""Helpers shared by server.py and client.py (no rpyc import here).

``brine_values()`` lists values of every brine-dumpable type, with the encoding edges that
matter (immediate-int range, length-prefix boundaries, non-BMP text, NaN/-0.0, ...).
``canon(v)`` renders a value as a deterministic string that includes exact types, so that
two processes (with different hash seeds) can compare what they hold.
"""

import importlib.util
import math


def impl_info(rpyc_module):
    """Which rpyc this interpreter runs: ours (has the native ``rpyc._core``) or upstream."""
    try:
        native = importlib.util.find_spec("rpyc._core") is not None
    except Exception:  # pragma: no cover - defensive
        native = False
    return {
        "version": getattr(rpyc_module, "__version__", None),
        "file": getattr(rpyc_module, "__file__", None),
        "native": native,
    }


def _pattern(n, salt=0):
    return bytes((i * 7 + salt) & 0xFF for i in range(n))


def brine_values():
    """(label, value) pairs; labels are unique and stable."""
    vals = [
        ("None", None),
        ("True", True),
        ("False", False),
        ("Ellipsis", Ellipsis),
        ("NotImplemented", NotImplemented),
    ]
    ints = [0, 1, -1, 100, -47, -48, 158, 159, -49, 160, 255, 256, 1000, -1000,
            2**31 - 1, 2**31, -2**31, 2**32, 2**63 - 1, -2**63, 2**63, 2**64, -2**64 - 1,
            10**30, -10**30,
            10**254,          # 255 digits: longest 1-byte-length integer text
            10**255,          # 256 digits: 4-byte length
            -10**253,         # '-' + 254 digits = 255 chars
            -10**254,         # '-' + 255 digits = 256 chars
            10**1000, -(10**1000) + 7]
    vals += [("int:%d" % i, v) for i, v in enumerate(ints)]
    floats = [0.0, -0.0, 1.0, -1.5, 18.2, math.pi, 1e300, -1e-300, 5e-324,
              float("inf"), float("-inf"), float("nan"), 2.0**53 + 1]
    vals += [("float:%d" % i, v) for i, v in enumerate(floats)]
    cplx = [0j, 1 + 2j, -1.5 - 0.5j, complex(float("inf"), -0.0), complex(float("nan"), 1.0)]
    vals += [("complex:%d" % i, v) for i, v in enumerate(cplx)]
    for n in (0, 1, 2, 3, 4, 5, 6, 254, 255, 256, 257, 65536):
        vals.append(("bytes:%d" % n, _pattern(n, n)))
    vals.append(("bytes:nul-ff", b"\x00\xff"))
    strs = ["", "a", "ab", "abc", "abcd", "abcde", "\x00", "\u00e9", "\u20ac", "\U0001F600",
            "a\U0001F600", "h\u00e9llo w\u00f6rld", "x" * 255, "x" * 256, "\u00e9" * 128,
            "\U0001F600\U00010348\U0010FFFF", "mixed \u65e5\u672c\u8a9e \U0001F680 text"]
    vals += [("str:%d" % i, v) for i, v in enumerate(strs)]
    tuples = [(), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4), (1, 2, 3, 4, 5),
              tuple(range(255)), tuple(range(256)), ((), ((),)),
              (None, (True, (b"x", ("y",)))), (1, "a", b"b", 2.5, None),
              (True, 1, False, 0, 1.0),            # bool must stay bool, int stay int
              ((((((((((("deep",),),),),),),),),),),),
              ("he", 7, "llo", 8, (), 900, None, True, Ellipsis, 18.2, 13 + 18.2j,
               frozenset([1, 2, 3]), slice(1, 2, 3))]
    vals += [("tuple:%d" % i, v) for i, v in enumerate(tuples)]
    fsets = [frozenset(), frozenset([1]), frozenset([5, 6, 7]), frozenset([(1, 2)]),
             frozenset(["a", "b", "c", "\U0001F600"]), frozenset([b"x", 1, None, 2.5]),
             frozenset([frozenset([1]), frozenset()])]
    vals += [("frozenset:%d" % i, v) for i, v in enumerate(fsets)]
    slices = [slice(None), slice(1, 10), slice(1, 2, 3), slice(-1, None, -1),
              slice("a", b"b", 1.5), slice((1, 2), None, frozenset([3]))]
    vals += [("slice:%d" % i, v) for i, v in enumerate(slices)]
    return vals


def _float(x):
    if math.isnan(x):
        return "nan"
    return float.hex(x) if math.isfinite(x) else repr(x)  # hex keeps -0.0 distinct


def canon(v):
    """Deterministic, type-exact rendering of a brine value (raises TypeError otherwise)."""
    t = type(v)
    if v is None or v is Ellipsis or v is NotImplemented:
        return repr(v)
    if t is bool:
        return "bool:%r" % v
    if t is int:
        return "int:%d" % v if abs(v) < 10**4000 else "int:hex:%x" % v
    if t is float:
        return "float:" + _float(v)
    if t is complex:
        return "complex:%s,%s" % (_float(v.real), _float(v.imag))
    if t is bytes:
        return "bytes:" + v.hex()
    if t is str:
        return "str:" + v.encode("utf-8", "surrogatepass").hex()
    if t is tuple:
        return "tuple(" + ",".join(canon(x) for x in v) + ")"
    if t is frozenset:
        return "frozenset{" + ",".join(sorted(canon(x) for x in v)) + "}"
    if t is slice:
        return "slice(%s,%s,%s)" % (canon(v.start), canon(v.stop), canon(v.step))
    raise TypeError("not a brine value: %s" % t.__name__)


def digest(data):
    import hashlib
    return (len(data), hashlib.sha256(data).hexdigest())


def make_bytes(n, salt=0):
    """Deterministic n bytes: a compressible pattern with an incompressible-ish tail."""
    import hashlib
    block = bytes(range(256)) * 256  # 64 KiB
    out = bytearray()
    i = salt
    while len(out) < n:
        out += block
        out += hashlib.sha256(b"%d" % i).digest() * 64  # 2 KiB less compressible
        i += 1
    return bytes(out[:n])
