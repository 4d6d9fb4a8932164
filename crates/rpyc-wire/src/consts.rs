//! Numeric constants of the RPyC 6 protocol (docs/protocol.md: tag table, messages, boxing, handlers).

/// Brine tag bytes: the first byte of every encoded item.
pub mod tag {
    pub const NONE: u8 = 0x00;
    pub const EMPTY_STR: u8 = 0x01;
    pub const EMPTY_TUPLE: u8 = 0x02;
    pub const TRUE: u8 = 0x03;
    pub const FALSE: u8 = 0x04;
    pub const NOT_IMPLEMENTED: u8 = 0x05;
    pub const ELLIPSIS: u8 = 0x06;
    pub const UNICODE: u8 = 0x08;
    pub const STR1: u8 = 0x0a;
    pub const STR2: u8 = 0x0b;
    pub const STR3: u8 = 0x0c;
    pub const STR4: u8 = 0x0d;
    pub const STR_L1: u8 = 0x0e;
    pub const STR_L4: u8 = 0x0f;
    pub const TUP1: u8 = 0x10;
    pub const TUP2: u8 = 0x11;
    pub const TUP3: u8 = 0x12;
    pub const TUP4: u8 = 0x13;
    pub const TUP_L1: u8 = 0x14;
    pub const TUP_L4: u8 = 0x15;
    pub const INT_L1: u8 = 0x16;
    pub const INT_L4: u8 = 0x17;
    pub const FLOAT: u8 = 0x18;
    pub const SLICE: u8 = 0x19;
    pub const FSET: u8 = 0x1a;
    pub const COMPLEX: u8 = 0x1b;
    /// By-value tags (rpyc-rs, docs/by-value.md): valid only inside a `LABEL_BY_VALUE`
    /// box, which only a peer that negotiated `by_value` sends. Each prefixes a tuple, as
    /// FSET does: a list's members, a dict's keys and values alternating, a set's members,
    /// an array's `(dtype, shape, strides, data)`, a reference's id_pack.
    pub const LIST: u8 = 0x1c;
    pub const DICT: u8 = 0x1d;
    pub const SET: u8 = 0x1e;
    pub const ARRAY: u8 = 0x1f;
    /// "Your object" / "my object" inside a by-value value (as labels 3 and 4 say of a box).
    pub const LOCAL_REF: u8 = 0xf0;
    pub const REMOTE_REF: u8 = 0xf1;
    /// First tag of the immediate-integer range; the value is `tag - IMM_BIAS`.
    pub const IMM_FIRST: u8 = 0x20;
    pub const IMM_LAST: u8 = 0xef;
    pub const IMM_BIAS: i64 = 0x50;
    /// Smallest and largest integers with a one-byte immediate encoding.
    pub const IMM_MIN: i64 = -48;
    pub const IMM_MAX: i64 = 159;
}

/// The raw message-type byte that follows the optional thread prefix.
pub const MSG_REQUEST: u8 = 1;
pub const MSG_REPLY: u8 = 2;
pub const MSG_EXCEPTION: u8 = 3;

/// Boxing labels (docs/protocol.md#labels).
pub const LABEL_VALUE: i64 = 1;
pub const LABEL_TUPLE: i64 = 2;
pub const LABEL_LOCAL_REF: i64 = 3;
pub const LABEL_REMOTE_REF: i64 = 4;
/// rpyc-rs extension `by_value`: the value uses the by-value tags (docs/by-value.md).
pub const LABEL_BY_VALUE: i64 = 5;

/// Request handler ids (docs/protocol.md#handler-table).
pub mod handler {
    pub const PING: i64 = 1;
    pub const CLOSE: i64 = 2;
    pub const GETROOT: i64 = 3;
    pub const GETATTR: i64 = 4;
    pub const DELATTR: i64 = 5;
    pub const SETATTR: i64 = 6;
    pub const CALL: i64 = 7;
    pub const CALLATTR: i64 = 8;
    pub const REPR: i64 = 9;
    pub const STR: i64 = 10;
    pub const CMP: i64 = 11;
    pub const HASH: i64 = 12;
    pub const DIR: i64 = 13;
    pub const PICKLE: i64 = 14;
    pub const DEL: i64 = 15;
    pub const INSPECT: i64 = 16;
    pub const BUFFITER: i64 = 17;
    pub const OLDSLICING: i64 = 18;
    pub const CTXEXIT: i64 = 19;
    pub const INSTANCECHECK: i64 = 20;
    /// rpyc-rs extension `by_value`: `(obj)` answered by value or with an error.
    pub const OBTAIN: i64 = 66;
}

/// Exception body that stands for a bare `StopIteration` (docs/protocol.md#the-exception-body).
pub const EXC_STOP_ITERATION: i64 = 1;

/// Frame layout (docs/protocol.md#frame-layout): u32 length, u8 compressed flag, payload, one trailer byte.
pub const FRAME_HEADER_LEN: usize = 5;
pub const FRAME_TRAILER: u8 = b'\n';
/// Upstream compresses payloads strictly longer than this many bytes.
pub const COMPRESSION_THRESHOLD: usize = 3000;
pub const COMPRESSION_LEVEL: u32 = 1;
/// Length of the `bind_threads` prefix: sender and recipient thread ids, u64 each.
pub const THREAD_PREFIX_LEN: usize = 16;
