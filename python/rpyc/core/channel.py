"""Framing over a stream (docs/protocol.md#frames): ``u32 length | u8 compressed | payload | 0a``.

Connections frame their traffic natively; this class keeps upstream's ``Channel`` API for
code that sends raw frames itself, and carries the ``compress`` choice to the connection.
"""

import zlib
from struct import Struct
from typing import Any, Optional

from rpyc._core import ProtocolError
from rpyc.lib import safe_import  # noqa: F401 (upstream's names)
from rpyc.lib.compat import BYTES_LITERAL  # noqa: F401


class Channel:
    """Frames messages over ``stream``; payloads over 3000 bytes are zlib-compressed."""

    COMPRESSION_THRESHOLD = 3000
    COMPRESSION_LEVEL = 1
    FRAME_HEADER = Struct("!LB")
    FLUSHER = b"\n"
    #: refuse frames announcing more payload than this (bytes); the connection's
    #: ``max_frame_size`` config key plays the same role for connections.
    MAX_FRAME_SIZE = 256 * 1024 * 1024
    __slots__ = ("stream", "compress")

    def __init__(self, stream: Any, compress: bool = True) -> None:
        self.stream = stream
        self.compress = compress

    def close(self) -> None:
        self.stream.close()

    @property
    def closed(self) -> bool:
        return bool(self.stream.closed)

    def fileno(self) -> int:
        return int(self.stream.fileno())

    def poll(self, timeout: Optional[float]) -> bool:
        return bool(self.stream.poll(timeout))

    def recv(self) -> bytes:
        header = self.stream.read(self.FRAME_HEADER.size)
        length, compressed = self.FRAME_HEADER.unpack(header)
        if length > self.MAX_FRAME_SIZE:
            raise ProtocolError(
                f"frame of {length} bytes exceeds MAX_FRAME_SIZE={self.MAX_FRAME_SIZE}"
            )
        data = self.stream.read(length + len(self.FLUSHER))[: -len(self.FLUSHER)]
        if compressed:
            inflater = zlib.decompressobj()
            data = inflater.decompress(data, self.MAX_FRAME_SIZE)
            if inflater.unconsumed_tail:
                raise ProtocolError(
                    f"compressed frame inflates past MAX_FRAME_SIZE={self.MAX_FRAME_SIZE}"
                )
        return data

    def send(self, data: bytes) -> None:
        compressed = self.compress and len(data) > self.COMPRESSION_THRESHOLD
        if compressed:
            data = zlib.compress(data, self.COMPRESSION_LEVEL)
        self.stream.write(self.FRAME_HEADER.pack(len(data), compressed) + data + self.FLUSHER)
