"""Data by value (docs/by-value.md): containers and arrays that travel as local copies
instead of proxies, between rpyc-rs peers that negotiated the ``by_value`` extension.

``rpyc.by_value(obj)`` marks one value, ``@rpyc.returns_by_value`` marks an exposed method's
results, config ``by_value_types`` lists types that always travel by value. By value carries
tuples, lists, dicts, sets, frozensets, str/bytes/numbers, their nestings, and arrays of a
plain dtype (numpy arrays, or any object with the buffer protocol); anything else inside
stays a proxy. Against a peer without the extension (upstream RPyC) a marked value travels
as it would unmarked: brine when brine can carry it, else a proxy.

numpy is optional: it is imported only to send or rebuild an array, and only if installed.
"""

import sys
from types import MethodType
from typing import Any, Callable, Optional, Sequence, Set, Tuple, TypeVar

__all__ = ["ByValue", "ByValueError", "by_value", "returns_by_value"]

F = TypeVar("F", bound=Callable[..., Any])


class ByValueError(ValueError):
    """A value cannot travel by value (an object dtype, an array over the frame limit, a
    malformed array from the peer, or, for ``obtain``, an object that is not data)."""


class ByValue:
    """The marker ``rpyc.by_value(obj)`` returns; boxing unwraps it. ``strict``: refuse
    (``ByValueError``) what would have to travel as a proxy (``obtain``)."""

    __slots__ = ("value", "strict")

    def __init__(self, value: Any, strict: bool = False) -> None:
        self.value = value
        self.strict = strict

    def __repr__(self) -> str:
        return f"rpyc.by_value({self.value!r})"


def by_value(obj: Any) -> ByValue:
    """Mark ``obj`` to travel by value when sent (as an argument or a result)."""
    return obj if type(obj) is ByValue else ByValue(obj)


#: the functions decorated with ``returns_by_value`` (empty: calls skip the check)
MARKED: Set[Any] = set()


def returns_by_value(func: F) -> F:
    """Decorator: the results of this exposed method travel by value when the peer calls it
    (a local call returns the plain result)."""
    MARKED.add(getattr(func, "__func__", func))
    return func


def wants_by_value(func: Any, result: Any) -> Any:
    """A called function's result, marked when the function (or the method's function) is
    decorated. (A set lookup: no attribute search per call.)"""
    target = func.__func__ if type(func) is MethodType else func
    try:
        marked = target in MARKED
    except TypeError:  # an unhashable callable
        return result
    return by_value(result) if marked else result


# -- arrays ---------------------------------------------------------------------------------

_BUFFER_DTYPES = {
    # struct format codes (native size and order, as memoryview reports them) -> kind, size
    "b": "i1", "B": "u1", "h": "i2", "H": "u2", "i": "i4", "I": "u4", "l": "i8" if
    sys.maxsize > 2**32 else "i4", "L": "u8" if sys.maxsize > 2**32 else "u4", "q": "i8",
    "Q": "u8", "f": "f4", "d": "f8", "e": "f2", "?": "b1", "c": "S1",
}
_ORDER = "<" if sys.byteorder == "little" else ">"


def _numpy() -> Any:
    """numpy if this process already has it or can import it, else None."""
    np = sys.modules.get("numpy")
    if np is not None:
        return np
    try:
        import numpy as np  # noqa: F811 (optional)
    except ImportError:
        return None
    return np


def _too_big(nbytes: int, max_bytes: int) -> None:
    if nbytes > max_bytes:
        raise ByValueError(
            f"an array of {nbytes} bytes cannot travel by value: frames are limited to "
            f"{max_bytes} bytes (config max_frame_size, on both sides); send it in slices"
        )


def _array_parts(obj: Any, max_bytes: int) -> Optional[Tuple[Any, ...]]:
    """``(dtype, shape, strides, data)`` of an array or buffer, C-contiguous, refusing
    object dtypes and data over ``max_bytes`` before anything is copied. A numpy scalar of
    a plain dtype is ``(dtype, None, (), data)`` (shape None: a scalar, not a 0-d array);
    one of another dtype (datetime...) is ``(b"plain", value)``, its Python value."""
    np = sys.modules.get("numpy")  # (an ndarray exists only if numpy was imported)
    if np is not None and isinstance(obj, np.generic):
        if obj.dtype.hasobject:
            return None
        if obj.dtype.fields is None and obj.dtype.kind in "biufcSU":
            return (obj.dtype.str, None, (), obj.tobytes())
        return (b"plain", obj.item())
    if np is not None and isinstance(obj, np.ndarray):
        dtype = obj.dtype
        if dtype.hasobject:
            raise ByValueError(
                f"an array of dtype {dtype} holds Python objects: it never travels by value "
                f"(convert it to a plain dtype, or send it as a list)"
            )
        if dtype.fields is not None or dtype.kind not in "biufcSU":
            raise ByValueError(f"an array of dtype {dtype} is not plain data: it cannot travel by value")
        _too_big(obj.nbytes, max_bytes)
        data = obj if obj.flags.c_contiguous else obj.copy(order="C")  # (keeps 0-d arrays)
        return (dtype.str, tuple(data.shape), tuple(data.strides), data.tobytes())
    view = memoryview(obj)
    code = view.format.lstrip("@=")
    kind = _BUFFER_DTYPES.get(code)
    if kind is None:
        raise ByValueError(f"a buffer of format {view.format!r} is not plain data: it cannot travel by value")
    _too_big(view.nbytes, max_bytes)
    dtype = ("|" if kind[1] == "1" else _ORDER) + kind
    shape = view.shape or ()
    data = view.tobytes()  # C order
    strides, step = [], view.itemsize
    for n in reversed(shape):
        strides.append(step)
        step *= n
    return (dtype, tuple(shape), tuple(reversed(strides)), data)


def _load_array(dtype: str, shape: Optional[Sequence[int]], strides: Sequence[int], data: bytes) -> Any:
    """The array a peer sent (header already checked by the core: plain dtype, strides
    inside ``data``): a writable numpy array, or without numpy a memoryview of a copy.
    ``shape`` None: a numpy scalar of that dtype, or without numpy its Python value."""
    if shape is None:
        return _load_scalar(dtype, data)
    np = _numpy()
    if np is not None:
        view = np.ndarray(shape, dtype=np.dtype(dtype), buffer=data, strides=strides)
        return view.copy()  # (own, writable, C-contiguous memory)
    code = next((c for c, k in _BUFFER_DTYPES.items() if k == dtype[1:]), None)
    if code is None or (dtype[0] not in "|=" and dtype[0] != _ORDER):
        raise ByValueError(
            f"an array of dtype {dtype} arrived by value, but numpy is not installed here "
            f"to hold it (pip install numpy)"
        )
    itemsize = int(dtype[2:])
    out = bytearray()
    # gather the items in C order (any strides inside the data, checked by the core)
    def walk(dim: int, offset: int) -> None:
        if dim == len(shape):
            out.extend(data[offset:offset + itemsize])
            return
        for i in range(shape[dim]):
            walk(dim + 1, offset + i * strides[dim])
    walk(0, 0)
    # (Any: typeshed types cast() per literal format, and this one is known only at run time)
    flat: Any = memoryview(bytes(out)).cast("B")
    copy: memoryview = flat.cast(code, shape) if shape else flat.cast(code)
    return copy


# struct codes of the plain kinds (a scalar read without numpy)
_SCALAR_CODES = {"b1": "?", "i1": "b", "u1": "B", "i2": "h", "u2": "H", "i4": "i", "u4": "I",
                 "i8": "q", "u8": "Q", "f2": "e", "f4": "f", "f8": "d", "c8": "ff", "c16": "dd"}


def _load_scalar(dtype: str, data: bytes) -> Any:
    """A numpy scalar a peer sent (dtype plain and ``data`` long enough, checked by the
    core): the numpy scalar of that dtype, or without numpy its Python value (what
    ``.item()`` gives: bool, int, float, complex, bytes, str)."""
    np = _numpy()
    if np is not None:
        return np.frombuffer(data, dtype=np.dtype(dtype), count=1)[0]
    import struct

    order = ">" if dtype[0] == ">" else "<" if dtype[0] == "<" else _ORDER
    kind, size = dtype[1], int(dtype[2:])
    if kind == "S":
        return data[:size].rstrip(b"\0")
    if kind == "U":
        return data[:size * 4].decode("utf-32-be" if order == ">" else "utf-32-le").rstrip("\0")
    code = _SCALAR_CODES.get(dtype[1:])
    if code is None:  # (float128, complex256: no Python type holds them exactly)
        raise ByValueError(
            f"a numpy scalar of dtype {dtype} arrived by value, but numpy is not installed "
            f"here to hold it (pip install numpy)"
        )
    parts = struct.unpack_from(order + code, data)
    return complex(*parts) if kind == "c" else parts[0]
