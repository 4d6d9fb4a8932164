"""Hand-made wire helpers for the hostile suite.

Deliberately independent of the package under test: a tiny brine encoder/decoder and frame
builder written from docs/protocol.md (brine, frames, messages, boxing), so that a bug in our codec cannot hide a bug in
the server's handling of hostile bytes.
"""
import socket
import struct
import time
import zlib

MSG_REQUEST, MSG_REPLY, MSG_EXCEPTION = 1, 2, 3
LABEL_VALUE, LABEL_TUPLE, LABEL_LOCAL_REF, LABEL_REMOTE_REF = 1, 2, 3, 4
HANDLE_PING, HANDLE_CLOSE, HANDLE_GETROOT, HANDLE_GETATTR = 1, 2, 3, 4
HANDLE_CALL, HANDLE_CALLATTR = 7, 8

HOST = "127.0.0.1"


# ---------------------------------------------------------------------------------------------
# brine
# ---------------------------------------------------------------------------------------------

def brine(value):
    """Encode ``value`` exactly like upstream ``brine.dump`` (the subset the tests need)."""
    out = bytearray()
    _enc(value, out)
    return bytes(out)


def _enc(v, out):
    t = type(v)
    if v is None:
        out += b"\x00"
    elif t is bool:
        out += b"\x03" if v else b"\x04"
    elif t is int:
        if -48 <= v <= 159:
            out.append(v + 0x50)
        else:
            text = str(v).encode("ascii")
            if len(text) < 256:
                out += b"\x16" + struct.pack("!B", len(text)) + text
            else:
                out += b"\x17" + struct.pack("!L", len(text)) + text
    elif t is bytes:
        n = len(v)
        if n == 0:
            out += b"\x01"
        elif n <= 4:
            out.append(0x0A + n - 1)
            out += v
        elif n < 256:
            out += b"\x0e" + struct.pack("!B", n) + v
        else:
            out += b"\x0f" + struct.pack("!L", n) + v
    elif t is str:
        out += b"\x08"
        _enc(v.encode("utf-8"), out)
    elif t is float:
        out += b"\x18" + struct.pack("!d", v)
    elif t is tuple:
        n = len(v)
        if n == 0:
            out += b"\x02"
            return
        if n <= 4:
            out.append(0x10 + n - 1)
        elif n < 256:
            out += b"\x14" + struct.pack("!B", n)
        else:
            out += b"\x15" + struct.pack("!L", n)
        for item in v:
            _enc(item, out)
    else:
        raise TypeError("cannot encode %r" % (v,))


class BrineError(Exception):
    pass


def unbrine(data):
    """Decode one brine value (strictly: the whole input must be consumed)."""
    value, pos = _dec(data, 0)
    if pos != len(data):
        raise BrineError("%d trailing bytes" % (len(data) - pos))
    return value


def _take(data, pos, n):
    if pos + n > len(data):
        raise BrineError("truncated at %d" % pos)
    return data[pos:pos + n], pos + n


def _dec(data, pos):
    tag, pos = _take(data, pos, 1)
    tag = tag[0]
    simple = {0: None, 1: b"", 2: (), 3: True, 4: False, 5: NotImplemented, 6: Ellipsis}
    if tag in simple:
        return simple[tag], pos
    if 0x20 <= tag <= 0xEF:
        return tag - 0x50, pos
    if 0x0A <= tag <= 0x0D:
        return _take(data, pos, tag - 0x0A + 1)
    if tag in (0x0E, 0x0F, 0x16, 0x17, 0x14, 0x15):
        if tag in (0x0E, 0x16, 0x14):
            raw, pos = _take(data, pos, 1)
            n = raw[0]
        else:
            raw, pos = _take(data, pos, 4)
            n = struct.unpack("!L", raw)[0]
        if tag in (0x14, 0x15):
            items = []
            for _ in range(n):
                item, pos = _dec(data, pos)
                items.append(item)
            return tuple(items), pos
        raw, pos = _take(data, pos, n)
        return (int(raw.decode("ascii")) if tag in (0x16, 0x17) else raw), pos
    if 0x10 <= tag <= 0x13:
        items = []
        for _ in range(tag - 0x10 + 1):
            item, pos = _dec(data, pos)
            items.append(item)
        return tuple(items), pos
    if tag == 0x08:
        raw, pos = _dec(data, pos)
        if type(raw) is not bytes:
            raise BrineError("UNICODE over %r" % (raw,))
        return raw.decode("utf-8"), pos
    if tag == 0x18:
        raw, pos = _take(data, pos, 8)
        return struct.unpack("!d", raw)[0], pos
    if tag == 0x1B:
        raw, pos = _take(data, pos, 16)
        return complex(*struct.unpack("!dd", raw)), pos
    if tag == 0x19:
        parts, pos = _dec(data, pos)
        return slice(*parts), pos
    if tag == 0x1A:
        members, pos = _dec(data, pos)
        return frozenset(members), pos
    raise BrineError("unknown tag %#x at %d" % (tag, pos - 1))


# ---------------------------------------------------------------------------------------------
# frames and messages
# ---------------------------------------------------------------------------------------------

def frame(payload, flag=0, trailer=b"\n"):
    return struct.pack("!LB", len(payload), flag) + payload + trailer


def request_payload(seq, handler, boxed_args, prefix=b""):
    """A request message payload with the args box already encoded as brine bytes."""
    return prefix + bytes([MSG_REQUEST]) + b"\x11" + brine(seq) + b"\x11" + brine(handler) + boxed_args


def request(seq, handler, args=(), prefix=b""):
    """A request frame whose (dumpable) args travel by value: box (1, args)."""
    return frame(request_payload(seq, handler, brine((LABEL_VALUE, tuple(args))), prefix=prefix))


class Closed(Exception):
    """The server closed the connection."""


class RawClient:
    """A plain TCP socket speaking hand-built frames; every wait is bounded."""

    def __init__(self, port, timeout=5.0):
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.buf = b""

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        self.sock.sendall(data)

    def send_quietly(self, data):
        """Send as much as the server accepts; a reset while sending is not an error here
        (the server may close early on bytes it refuses)."""
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError):
            return False

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout("no data within the deadline")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            raise Closed()
        self.buf += chunk

    def recv_frame(self, timeout=None):
        """The next (flag, message payload), inflated. Raises Closed on EOF."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while len(self.buf) < 5:
            self._fill(deadline)
        length, flag = struct.unpack("!LB", self.buf[:5])
        while len(self.buf) < 5 + length + 1:
            self._fill(deadline)
        payload = self.buf[5:5 + length]
        self.buf = self.buf[5 + length + 1:]
        if flag:
            payload = zlib.decompress(payload)
        return flag, payload

    def recv_message(self, timeout=None, prefix_len=0):
        """The next message as (type, seq, body), body decoded (still boxed)."""
        _, payload = self.recv_frame(timeout)
        payload = payload[prefix_len:]
        seq, body = unbrine(payload[1:])
        return payload[0], seq, body

    def wait_closed(self, timeout=5.0):
        """Read (and collect) whatever arrives until EOF. Returns the bytes received before EOF.
        Fails (AssertionError) when the server keeps the connection open past ``timeout``."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                self._fill(deadline)
        except Closed:
            return self.buf
        except socket.timeout:
            raise AssertionError("the server did not close the connection within %ss "
                                 "(received %d bytes meanwhile)" % (timeout, len(self.buf)))

    def is_open(self, wait=0.3):
        """True when the server has not closed the connection after ``wait`` seconds."""
        try:
            self._fill(time.monotonic() + wait)
        except socket.timeout:
            return True
        except Closed:
            return False
        return True
