"""The protocol layer: streams, channel, connection, proxies, services."""

from rpyc.core.stream import PipeStream, SocketStream, TunneledSocketStream  # noqa: F401
from rpyc.core.channel import Channel  # noqa: F401
from rpyc.core.protocol import DEFAULT_CONFIG, Connection  # noqa: F401
from rpyc.core.netref import BaseNetref  # noqa: F401
from rpyc.core.async_ import AsyncResult, AsyncResultTimeout  # noqa: F401
from rpyc.core.service import (  # noqa: F401
    ClassicService,
    MasterService,
    Service,
    SlaveService,
    VoidService,
)
from rpyc.core.vinegar import GenericException  # noqa: F401

__all__ = [
    "AsyncResult", "AsyncResultTimeout", "BaseNetref", "Channel", "ClassicService", "Connection",
    "DEFAULT_CONFIG", "GenericException", "MasterService", "PipeStream", "Service",
    "SlaveService", "SocketStream", "TunneledSocketStream", "VoidService",
]
