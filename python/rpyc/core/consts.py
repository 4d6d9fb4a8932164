"""Numeric constants of the RPyC wire protocol (see docs/protocol.md: messages, boxing, handlers, exceptions)."""

# Message types: the first byte of every message payload.
MSG_REQUEST = 1
MSG_REPLY = 2
MSG_EXCEPTION = 3

# Box labels: how an argument or a result travels (section 5).
LABEL_VALUE = 1
LABEL_TUPLE = 2
LABEL_LOCAL_REF = 3
LABEL_REMOTE_REF = 4
#: rpyc-rs extension ``by_value`` (docs/by-value.md): the value uses the by-value tags
LABEL_BY_VALUE = 5

# Request handler identifiers (section 6).
HANDLE_PING = 1
HANDLE_CLOSE = 2
HANDLE_GETROOT = 3
HANDLE_GETATTR = 4
HANDLE_DELATTR = 5
HANDLE_SETATTR = 6
HANDLE_CALL = 7
HANDLE_CALLATTR = 8
HANDLE_REPR = 9
HANDLE_STR = 10
HANDLE_CMP = 11
HANDLE_HASH = 12
HANDLE_DIR = 13
HANDLE_PICKLE = 14
HANDLE_DEL = 15
HANDLE_INSPECT = 16
HANDLE_BUFFITER = 17
HANDLE_OLDSLICING = 18
HANDLE_CTXEXIT = 19
HANDLE_INSTANCECHECK = 20
#: rpyc-rs extension (rpyc.core.extensions): sent only to a peer that announced ``iter_batch``
HANDLE_ITER_BATCH = 64
#: rpyc-rs extension: stop serving request ``seq`` (sent only to a peer that announced ``cancel``)
HANDLE_CANCEL = 65
#: rpyc-rs extension: ``(obj)`` answered by value, or ``ByValueError`` (peer announced ``by_value``)
HANDLE_OBTAIN = 66

# Compact body of an EXCEPTION message whose exception is exactly ``StopIteration``.
EXC_STOP_ITERATION = 1

# Chunk size (bytes) for bulk stream I/O and file transfers.
STREAM_CHUNK = 64000
