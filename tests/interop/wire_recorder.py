"""A recording TCP relay and an RPyC frame reader, for checking what one peer sends another.

No ``rpyc`` import: the pytest process never imports either implementation. Brine values are
decoded with ``tests/hostile/hostile_wire.py`` (a hand-written decoder, loaded by path).

``Relay(target_port)`` listens on 127.0.0.1 (ephemeral port) and forwards every connection it
accepts to ``127.0.0.1:target_port``, keeping all bytes of each direction. Two daemon threads
per connection copy the bytes; every wait is bounded (select with a short tick, socket
timeouts for sends) and ``close()`` stops and joins them all.

``parse_stream(data, prefix_len)`` splits one direction into frames, as upstream 6.0.2 writes
them: u32 big-endian length, 1 flag byte (non-zero: zlib), payload, 1 trailer byte. The payload is
the optional ``bind_threads`` prefix (16 bytes), the message type byte, then brine of
``(seq, body)``; a request body is ``(handler, boxed args)``, a reply body a boxed value,
an exception body what ``vinegar.dump`` makes (not boxed).
"""

import collections
import importlib.util
import select
import socket
import struct
import threading
import time
import zlib
from pathlib import Path

_HOSTILE_WIRE = Path(__file__).resolve().parent.parent / "hostile" / "hostile_wire.py"


def _load_hostile_wire():
    spec = importlib.util.spec_from_file_location("rpyc_wire_check_hostile_wire", _HOSTILE_WIRE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_hw = _load_hostile_wire()
unbrine = _hw.unbrine

MSG_REQUEST, MSG_REPLY, MSG_EXCEPTION = 1, 2, 3
LABEL_VALUE, LABEL_TUPLE, LABEL_LOCAL_REF, LABEL_REMOTE_REF = 1, 2, 3, 4
HANDLE_PING, HANDLE_GETROOT, HANDLE_GETATTR, HANDLE_CALL, HANDLE_CALLATTR = 1, 3, 4, 7, 8
HANDLE_DEL, HANDLE_INSPECT = 15, 16
HANDLE_ITER_BATCH = 64
UPSTREAM_HANDLERS = frozenset(range(1, 21))  # rpyc 6.0.2: HANDLE_PING (1) .. HANDLE_INSTANCECHECK (20)
THREAD_PREFIX_LEN = 16  # bind_threads: brine.I8I8 (sender's thread id, receiver's thread id)
HELLO = "rpyc-rs/hello"
HELLO_ACK = "rpyc-rs/hello-ack"
RPYC_RS = "rpyc-rs"
_QUICKACK = getattr(socket, "TCP_QUICKACK", None)  # Linux


# ---------------------------------------------------------------------------------------
# relay
# ---------------------------------------------------------------------------------------

class Recording:
    """The bytes of one relayed connection: ``c2s`` (client to server) and ``s2c``."""

    def __init__(self, index):
        self.index = index
        self.c2s = bytearray()
        self.s2c = bytearray()
        self.errors = []
        self.finished = {"c2s": False, "s2c": False}  # that direction reached EOF

    def done(self):
        return all(self.finished.values())


class Relay:
    TICK = 0.05       # seconds between checks of the stop flag
    SEND_TIMEOUT = 10.0

    def __init__(self, target_port, host="127.0.0.1"):
        self.target = (host, target_port)
        self.recordings = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = []
        self._sockets = []
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((host, 0))
        self._listener.listen(16)
        self._listener.settimeout(self.TICK)
        self.port = self._listener.getsockname()[1]
        self._start(self._accept_loop, "wire-relay-accept")

    def _start(self, target, name, *args):
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            rec = Recording(len(self.recordings))
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError as exc:
                rec.errors.append("cannot connect to %s:%s: %r" % (self.target + (exc,)))
                client.close()
                self.recordings.append(rec)
                continue
            for sock in (client, server):
                sock.settimeout(self.SEND_TIMEOUT)  # bounds sendall; reads wait in select
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._sockets += [client, server]
                self.recordings.append(rec)
            self._start(self._pump, "wire-relay-c2s-%d" % rec.index, client, server, rec, "c2s")
            self._start(self._pump, "wire-relay-s2c-%d" % rec.index, server, client, rec, "s2c")

    def _pump(self, src, dst, rec, direction):
        buf = getattr(rec, direction)
        try:
            while not self._stop.is_set():
                ready, _, _ = select.select([src], [], [], self.TICK)
                if not ready:
                    continue
                data = src.recv(65536)
                if not data:
                    rec.finished[direction] = True
                    break
                if _QUICKACK is not None:  # as our peers do: a sender with Nagle on (upstream)
                    src.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)  # waits for this ACK
                buf += data
                dst.sendall(data)
        except (OSError, ValueError) as exc:
            if not self._stop.is_set():
                rec.errors.append("%s: %r" % (direction, exc))
            rec.finished[direction] = True
        try:
            dst.shutdown(socket.SHUT_WR)  # pass the end of this direction on
        except OSError:
            pass

    def wait_finished(self, timeout):
        """True once every relayed connection has ended in both directions."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(rec.done() for rec in self.recordings):
                return True
            time.sleep(self.TICK)
        return all(rec.done() for rec in self.recordings)

    def close(self, timeout=5.0):
        """Stop every thread and close every socket. Returns the names of threads that did
        not stop within ``timeout`` (none expected)."""
        self._stop.set()
        try:
            self._listener.close()
        except OSError:
            pass
        deadline = time.monotonic() + timeout
        with self._lock:
            threads = list(self._threads)
            sockets = list(self._sockets)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        for sock in sockets:
            try:
                sock.close()
            except OSError:
                pass
        return [t.name for t in threads if t.is_alive()]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---------------------------------------------------------------------------------------
# frames
# ---------------------------------------------------------------------------------------

Frame = collections.namedtuple(
    "Frame", "index offset flag trailer prefix mtype seq body handler error")
# handler: the request's handler id (requests only, else None); error: why the frame does not
# decode (then mtype/seq/body may be None).


def parse_stream(data, prefix_len=0):
    """``(frames, problems)`` for all bytes of one direction; ``problems`` lists what is
    not a whole frame (the stream must end at a frame boundary)."""
    frames, problems = [], []
    pos = 0
    data = bytes(data)
    while pos < len(data):
        if len(data) - pos < 5:
            problems.append("stream ends inside a frame header at offset %d" % pos)
            break
        length, flag = struct.unpack_from("!LB", data, pos)
        end = pos + 5 + length + 1
        if end > len(data):
            problems.append("stream ends inside a frame at offset %d (length %d, %d bytes left)"
                            % (pos, length, len(data) - pos - 5))
            break
        payload = data[pos + 5:pos + 5 + length]
        frames.append(_decode_frame(len(frames), pos, flag, data[end - 1:end], payload, prefix_len))
        pos = end
    return frames, problems


def _decode_frame(index, offset, flag, trailer, payload, prefix_len):
    def bad(why, **known):
        fields = dict(prefix=b"", mtype=None, seq=None, body=None, handler=None)
        fields.update(known)
        return Frame(index, offset, flag, trailer, error=why, **fields)

    if flag:
        try:
            payload = zlib.decompress(payload)
        except zlib.error as exc:
            return bad("zlib: %s" % exc)
    if len(payload) < prefix_len + 1:
        return bad("payload of %d bytes is too short" % len(payload))
    prefix, mtype = payload[:prefix_len], payload[prefix_len]
    try:
        message = unbrine(payload[prefix_len + 1:])
    except Exception as exc:  # BrineError, UnicodeDecodeError, ValueError...
        return bad("brine: %s: %s" % (type(exc).__name__, exc), prefix=prefix, mtype=mtype)
    if type(message) is not tuple or len(message) != 2 or type(message[0]) is not int:
        return bad("message is not (seq, body): %r" % (message,)[:200], prefix=prefix, mtype=mtype)
    seq, body = message
    handler = None
    problem = None
    if mtype == MSG_REQUEST:
        if type(body) is not tuple or len(body) != 2 or type(body[0]) is not int:
            problem = "request body is not (handler, args): %r" % (body,)
        else:
            handler = body[0]
            problem = box_problem(body[1])
    elif mtype == MSG_REPLY:
        problem = box_problem(body)
    elif mtype == MSG_EXCEPTION:
        problem = exception_problem(body)
    return Frame(index, offset, flag, trailer, prefix, mtype, seq, body, handler,
                 None if problem is None else problem[:300])


def box_problem(box, depth=0):
    """Why ``box`` is not a well-formed boxed value (docs/protocol.md#boxing), or None."""
    if depth > 100:
        return "boxes nested too deep"
    if type(box) is not tuple or len(box) != 2 or type(box[0]) is not int:
        return "not a (label, value) box: %r" % (box,)
    label, value = box
    if label == LABEL_VALUE:
        return None
    if label == LABEL_TUPLE:
        if type(value) is not tuple:
            return "LABEL_TUPLE over %r" % (value,)
        for item in value:
            problem = box_problem(item, depth + 1)
            if problem:
                return problem
        return None
    if label in (LABEL_LOCAL_REF, LABEL_REMOTE_REF):
        if not (type(value) is tuple and len(value) == 3 and type(value[0]) is str
                and type(value[1]) is int and type(value[2]) is int):
            return "reference box with id_pack %r" % (value,)
        return None
    return "unknown box label %r" % (label,)


def exception_problem(body):
    """Why ``body`` is not what upstream's ``vinegar.dump`` makes (an exception answer is not
    boxed), or None: ``1`` (EXC_STOP_ITERATION), a str, or ``((module, name), args, attrs,
    traceback text)``."""
    if body == 1 and type(body) is int or type(body) is str:
        return None
    if not (type(body) is tuple and len(body) == 4):
        return "exception body is not vinegar: %r" % (body,)
    names, args, attrs, tbtext = body
    if not (type(names) is tuple and len(names) == 2 and all(type(n) is str for n in names)
            and type(args) is tuple and type(attrs) is tuple and type(tbtext) is str
            and all(type(a) is tuple and len(a) == 2 and type(a[0]) is str for a in attrs)):
        return "exception body is not vinegar: %r" % (body,)
    return None


def strings_in(value, depth=0):
    """Every str and bytes inside a decoded brine value."""
    if depth > 200:
        return
    if type(value) in (str, bytes):
        yield value
    elif type(value) in (tuple, frozenset):
        for item in value:
            yield from strings_in(item, depth + 1)
    elif type(value) is slice:
        yield from strings_in((value.start, value.stop, value.step), depth + 1)


def mentions(value, needle):
    raw = needle.encode()
    return any((needle in s) if type(s) is str else (raw in s) for s in strings_in(value))


def is_hello_request(frame):
    """The connecting side's negotiation ping: ``PING`` whose data is
    ``("rpyc-rs/hello", 1, features)`` (args travel by value: box ``(1, (data,))``)."""
    if frame.mtype != MSG_REQUEST or frame.handler != HANDLE_PING:
        return False
    args = frame.body[1]
    if not (type(args) is tuple and len(args) == 2 and args[0] == LABEL_VALUE
            and type(args[1]) is tuple and len(args[1]) == 1):
        return False
    data = args[1][0]
    return (type(data) is tuple and len(data) == 3 and data[0] == HELLO and data[1] == 1
            and type(data[2]) is tuple and all(type(f) is str for f in data[2]))


def describe(frame):
    kind = {MSG_REQUEST: "request", MSG_REPLY: "reply", MSG_EXCEPTION: "exception"}.get(
        frame.mtype, "type %r" % (frame.mtype,))
    text = "frame #%d at offset %d (%s, flag %d, seq %r" % (
        frame.index, frame.offset, kind, frame.flag, frame.seq)
    if frame.handler is not None:
        text += ", handler %d" % frame.handler
    body = repr(frame.body)
    return text + "): " + (body if len(body) <= 200 else body[:200] + "...")


def _scanned(frame):
    """The part of a frame's body searched for "rpyc-rs": all of it, except the traceback
    text of an exception answer (file paths: a checkout may well be named rpyc-rs)."""
    if frame.mtype == MSG_EXCEPTION and type(frame.body) is tuple and len(frame.body) == 4:
        return frame.body[:3]
    return frame.body


def violations_towards_upstream(frames, hello_allowed):
    """What in ``frames`` (one direction, sent by rpyc-rs) an upstream rpyc 6.0.2 peer must
    never receive. ``hello_allowed``: these frames go from the connecting side to the
    accepting side, where a single hello ping (as the first frame) is allowed."""
    out = []
    for f in frames:
        if f.error is not None:
            out.append("does not decode (%s): %s" % (f.error, describe(f)))
            continue
        if f.flag not in (0, 1):
            out.append("flag byte %d (upstream writes 0 or 1): %s" % (f.flag, describe(f)))
        if f.trailer != b"\n":
            out.append("trailer %r (upstream writes b'\\n'): %s" % (f.trailer, describe(f)))
        if f.mtype not in (MSG_REQUEST, MSG_REPLY, MSG_EXCEPTION):
            out.append("message type %r: %s" % (f.mtype, describe(f)))
            continue
        if f.mtype == MSG_REQUEST and f.handler not in UPSTREAM_HANDLERS:
            name = " (HANDLE_ITER_BATCH)" if f.handler == HANDLE_ITER_BATCH else ""
            out.append("handler %r%s unknown to upstream: %s" % (f.handler, name, describe(f)))
        if f.mtype != MSG_REQUEST and mentions(f.body, HELLO_ACK):
            out.append("hello-ack answer: %s" % describe(f))
        elif mentions(_scanned(f), RPYC_RS):
            if not (hello_allowed and f.index == 0 and is_hello_request(f)):
                out.append("mentions %r: %s" % (RPYC_RS, describe(f)))
    return out


def find_marker(frames, marker):
    """The PING request whose data is ``marker`` (the workload's last request), or None."""
    for f in frames:
        if (f.error is None and f.mtype == MSG_REQUEST and f.handler == HANDLE_PING
                and f.body[1] == (LABEL_VALUE, (marker,))):
            return f
    return None


def answers(frames):
    """seq -> first reply/exception frame among ``frames``."""
    out = {}
    for f in frames:
        if f.error is None and f.mtype in (MSG_REPLY, MSG_EXCEPTION):
            out.setdefault(f.seq, f)
    return out


def requests(frames, handler=None, before=None):
    """Request frames (of ``handler``, if given) before frame index ``before`` (if given)."""
    return [f for f in frames
            if f.error is None and f.mtype == MSG_REQUEST
            and (handler is None or f.handler == handler)
            and (before is None or f.index < before)]
