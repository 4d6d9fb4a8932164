"""Protocol extensions between two rpyc-rs peers, negotiated so that an upstream peer never
sees them.

Negotiation rides on a request every RPyC peer already answers: the connecting side sends
an asynchronous ``HANDLE_PING`` whose data is ``(HELLO, version, features)``. Upstream
echoes ping data back unchanged, so the connecting side learns nothing and uses nothing.
An rpyc-rs peer answers ``(HELLO_ACK, version, its features)`` instead, and from then on
both sides use the features both named. Nothing waits for the answer: until it arrives,
the connection behaves exactly as with upstream.

Features:

``iter_batch``
    ``next()`` on a proxy of a remote iterator fetches up to :data:`ITER_BATCH_SIZE` items
    per round trip (``HANDLE_ITER_BATCH``) and hands them out locally. Only iterators over
    materialized data (lists, tuples, ranges, strings, bytes, dicts, sets...) are read
    ahead; any other iterator (a generator, a file) still yields one item per request, so
    its code runs exactly when the caller asks for the next item, as with upstream.
``root_class``
    the accepting side's answer carries the description of its root object's class (the
    answer to the INSPECT request the connecting side would send when it first receives
    the root), so ``conn.root`` costs the GETROOT round trip alone. The answer overtakes
    GETROOT's answer because the peer serves requests in order.
``quiet_del``
    the sender of a ``HANDLE_DEL`` (a proxy died) does not wait for its answer, so the
    owner sends none. Upstream keeps a callback per request until its answer arrives, so
    upstream peers still get theirs.
``cancel``
    a requester that stops waiting for an answer (an ``rpyc.aio`` call cancelled or timed
    out) sends ``HANDLE_CANCEL(seq)``; an ``rpyc.aio`` owner cancels the task serving that
    request, a blocking owner cannot interrupt its handler and ignores it. Either way the
    late answer, if any, is dropped by the requester.
``by_value``
    lists, dicts, sets and arrays marked with ``rpyc.by_value`` (or listed in config
    ``by_value_types``) travel as copies in a ``LABEL_BY_VALUE`` box; ``HANDLE_OBTAIN(obj)``
    answers with such a copy (``obtain``, ``numpy.asarray(proxy)``) without pickle. See
    docs/by-value.md.
``no_quickack``
    (implicit in any rpyc-rs peer) it sends with Nagle's algorithm off, so reads need not
    force immediate TCP acknowledgements (one system call less per read).
"""

import threading
from collections import deque
from typing import Any, Dict, FrozenSet, List, Optional, Tuple, cast

from rpyc import _core
from rpyc.core import consts
from rpyc.lib import get_methods

#: the hello ping's data, ``(HELLO, VERSION, features)``, as the core defines it
_HELLO_PAYLOAD: Tuple[str, int, Tuple[str, ...]] = _core.hello_payload()
HELLO, VERSION = _HELLO_PAYLOAD[0], _HELLO_PAYLOAD[1]
FEATURE_ITER_BATCH = "iter_batch"
FEATURE_ROOT_CLASS = "root_class"
FEATURE_QUIET_DEL = "quiet_del"
FEATURE_CANCEL = "cancel"
FEATURE_BY_VALUE = "by_value"
#: what this implementation offers
FEATURES: FrozenSet[str] = frozenset(_HELLO_PAYLOAD[2])
#: most items one ``HANDLE_ITER_BATCH`` returns
ITER_BATCH_SIZE = 256

# Iterators whose next() only reads data that already exists: reading ahead runs no user
# code (the one visible difference: items taken before a concurrent mutation of the
# container by the owner itself).
_READ_AHEAD_TYPES: FrozenSet[type] = frozenset(
    type(iter(sample))
    for sample in cast(Tuple[Any, ...], (  # (mixed types: mypy cannot infer their join)
        [], (), range(0), "", "\u20ac", b"", bytearray(), {}, {}.values(), {}.items(),
        set(), frozenset(), reversed([]), reversed(()), reversed(range(0)),
    ))
)


def hello_payload() -> Tuple[str, int, Tuple[str, ...]]:
    return _HELLO_PAYLOAD


def may_be_hello(data: Any) -> bool:
    """A cheap test before the core reads ``data`` as a hello (every ping passes here)."""
    return type(data) is tuple and data[:1] == (HELLO,)


def send_hello(conn: Any) -> None:
    """Start the negotiation from the connecting side (no waiting)."""

    def on_answer(is_exc: bool, answer: Any) -> None:
        if is_exc:
            return
        features = conn._peer_announced(answer, True)  # None: an upstream peer's echo
        if features is None:
            return
        peer_is_rpyc_rs(conn, features)
        if len(answer) == 4 and FEATURE_ROOT_CLASS in conn._peer_features:
            _learn_root_class(conn, answer[3])

    conn._async_request(consts.HANDLE_PING, (hello_payload(),), on_answer)


def answer_hello(conn: Any, data: Any) -> Optional[Tuple[Any, ...]]:
    """The accepting side's answer to a hello (instead of the echo upstream gives), or None
    when ``data`` is no hello."""
    features = conn._peer_announced(data, False)
    if features is None:
        return None
    peer_is_rpyc_rs(conn, features)
    answer: Tuple[Any, ...] = _core.hello_ack()
    if FEATURE_ROOT_CLASS in conn._peer_features:
        answer += (_describe_root(conn),)
    return answer


# -- root_class ---------------------------------------------------------------------------


def _describe_root(conn: Any) -> Tuple[Tuple[str, int, int], Tuple[Tuple[str, Any], ...]]:
    """``(id_pack, methods)`` of the local root, exactly what GETROOT and INSPECT would say."""
    from rpyc.core import netref  # (netref imports this module)

    root = conn._local_root
    return (_core.local_id_pack(root), get_methods(netref.LOCAL_ATTRS, root))


def _learn_root_class(conn: Any, description: Any) -> None:
    """Remember the proxy class of the peer's root before GETROOT's answer needs it."""
    from rpyc.core import netref

    if type(description) is not tuple or len(description) != 2:
        return
    id_pack, methods = description
    if not (
        type(id_pack) is tuple and len(id_pack) == 3 and type(id_pack[0]) is str
        and type(id_pack[1]) is int and type(id_pack[2]) is int and type(methods) is tuple
    ):
        return  # (the class factory copes with odd method lists, as after INSPECT)
    conn._netref_classes_cache[(id_pack[0], id_pack[1])] = netref.shared_class_factory(id_pack, methods)


def peer_is_rpyc_rs(conn: Any, features: Tuple[str, ...]) -> None:
    """The core recorded the peer as rpyc-rs using ``features`` (quiet_del among them decides
    whether its releases are answered); what Python keeps of it."""
    conn._peer_features = frozenset(features)
    if FEATURE_BY_VALUE in conn._peer_features:
        conn._enable_by_value(tuple(conn._config.get("by_value_types") or ()))
    try:
        conn._set_quick_ack(False)
    except EOFError:  # closed meanwhile
        pass


# -- iter_batch: the owner's side ------------------------------------------------------


def serve_iter_batch(conn: Any, iterator: Any, count: Any) -> Tuple[Tuple[Any, ...], bool]:
    """``(items, exhausted)``: up to ``count`` items of ``iterator`` (one unless it only
    reads existing data). An error after some items is kept and raised by the next call,
    as the plain ``next()`` sequence would have raised it then."""
    pending: Dict[int, Tuple[Any, BaseException]] = conn._iter_errors
    kept = pending.pop(id(iterator), None)
    if kept is not None and kept[0] is iterator:
        raise kept[1]
    step = conn._handle_getattr(iterator, "__next__")  # the attribute policy decides
    limit = max(1, min(int(count), ITER_BATCH_SIZE)) if type(iterator) in _READ_AHEAD_TYPES else 1
    items: List[Any] = []
    try:
        while len(items) < limit:
            items.append(step())
    except StopIteration:
        return tuple(items), True
    except Exception as exc:
        if not items:
            raise
        pending[id(iterator)] = (iterator, exc)
    return tuple(items), False


# -- iter_batch: the proxy's side ------------------------------------------------------


class _Prefetched(deque[Any]):  # (subscripted for mypy; fine at run time since 3.9)
    """Items fetched ahead for one iterator proxy; ``done`` once the owner said so."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        super().__init__()
        self.done = False


_buffer_lock = threading.Lock()


def next_item(proxy: Any, conn: Any, getattribute: Any, setattr_: Any, syncreq: Any) -> Any:
    """``next(proxy)`` with read-ahead (the caller checked that the peer offers it)."""
    buf = getattribute(proxy, "____prefetched__")
    if buf is None:
        with _buffer_lock:
            buf = getattribute(proxy, "____prefetched__")
            if buf is None:
                buf = _Prefetched()
                setattr_(proxy, "____prefetched__", buf)
    while True:
        try:
            return buf.popleft()
        except IndexError:
            pass
        if buf.done:
            raise StopIteration
        items, done = syncreq(proxy, consts.HANDLE_ITER_BATCH, ITER_BATCH_SIZE)
        buf.extend(items)
        if done:
            buf.done = True
