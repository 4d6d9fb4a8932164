"""Brine, RPyC's serializer for a closed set of immutable values (docs/protocol.md#brine).

The codec itself is native (``rpyc._core``); this module keeps upstream's public names.
"""

from struct import Struct
from typing import Any

from rpyc._core import ProtocolError, dump, dumpable, load
from rpyc.lib.compat import BYTES_LITERAL  # noqa: F401 (upstream's name)

__all__ = ["dump", "load", "dumpable", "ProtocolError"]

TAG_NONE = b"\x00"
TAG_EMPTY_STR = b"\x01"
TAG_EMPTY_TUPLE = b"\x02"
TAG_TRUE = b"\x03"
TAG_FALSE = b"\x04"
TAG_NOT_IMPLEMENTED = b"\x05"
TAG_ELLIPSIS = b"\x06"
TAG_UNICODE = b"\x08"
TAG_LONG = b"\x09"
TAG_STR1 = b"\x0a"
TAG_STR2 = b"\x0b"
TAG_STR3 = b"\x0c"
TAG_STR4 = b"\x0d"
TAG_STR_L1 = b"\x0e"
TAG_STR_L4 = b"\x0f"
TAG_TUP1 = b"\x10"
TAG_TUP2 = b"\x11"
TAG_TUP3 = b"\x12"
TAG_TUP4 = b"\x13"
TAG_TUP_L1 = b"\x14"
TAG_TUP_L4 = b"\x15"
TAG_INT_L1 = b"\x16"
TAG_INT_L4 = b"\x17"
TAG_FLOAT = b"\x18"
TAG_SLICE = b"\x19"
TAG_FSET = b"\x1a"
TAG_COMPLEX = b"\x1b"

IMM_INTS = {i: bytes([i + 0x50]) for i in range(-48, 160)}
IMM_INTS_LOADER = {v[0]: k for k, v in IMM_INTS.items()}

I1 = Struct("!B")
I4 = Struct("!L")
F8 = Struct("!d")
C16 = Struct("!dd")
I8I8 = Struct("!QQ")

simple_types = frozenset(
    [type(None), int, bool, float, bytes, str, complex, type(NotImplemented), type(Ellipsis)]
)


def register(coll: Any, key: Any) -> Any:
    """Decorator kept for source compatibility: stores the function in ``coll[key]``."""

    def deco(func: Any) -> Any:
        coll[key] = func
        return func

    return deco
