//! Typed errors of the protocol layer. Every message names the cause and, for limits,
//! the configuration key that raises the limit.

use crate::limits::human_size;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// A frame header announced more payload than `max_frame_size` allows.
    FrameTooLarge { size: u64, max: usize },
    /// A frame of ours that a peer with our `max_frame_size` would refuse (not sent).
    OutgoingTooLarge { size: u64, max: usize },
    /// Holding `wanted` more inbound bytes would take the budget shared by the process's
    /// connections (`used` now) past `max_inbound_memory`.
    MemoryBudget {
        wanted: usize,
        used: usize,
        max: usize,
    },
    /// Another request awaiting an answer would exceed `max_pending_requests` (not sent).
    TooManyPending { max: usize },
    /// Another object sent by reference would exceed `max_local_objects` (not sent).
    TooManyObjects { max: usize },
    /// The connection is closed (by either side, or after an error: `why`).
    Closed(String),
    /// A compressed frame inflated past `max_decompressed_size`.
    DecompressedTooLarge { max: usize },
    /// The zlib stream of a compressed frame is corrupt or incomplete.
    BadCompression(String),
    /// Brine items nested deeper than `max_nesting_depth`.
    NestingTooDeep { max: usize },
    /// A value of ours nested deeper than a peer with our `max_nesting_depth` accepts
    /// (not sent).
    OutgoingTooDeep { max: usize },
    /// Input ended inside an item.
    Truncated { what: &'static str, offset: usize },
    /// A tag byte that brine does not assign.
    UnknownTag { tag: u8, offset: usize },
    /// A UNICODE item whose bytes are not UTF-8, or whose inner item is not bytes.
    BadUnicode { offset: usize },
    /// An INT item whose text is not a canonical decimal integer.
    BadInteger { offset: usize },
    /// An INT item longer than CPython converts (4300 digits).
    IntegerTooLong { digits: usize, offset: usize },
    /// An item of another type where an integer must stand (seq, handler id, label).
    ExpectedInteger { what: &'static str, offset: usize },
    /// A SLICE or FSET whose inner item is not a tuple of the right shape.
    BadContainer { what: &'static str, offset: usize },
    /// A frozenset member that a Python peer cannot hold: unhashable, or one of too many
    /// with the same hash (a hash-flooding pattern).
    BadSetMember { why: String, offset: usize },
    /// Bytes left over after the one value a buffer must hold.
    TrailingBytes { offset: usize },
    /// A well-formed item in a form upstream's encoder never produces (a length field
    /// longer than needed, INT text for an immediate integer, duplicate FSET members).
    NonCanonical { what: &'static str, offset: usize },
    /// A value that cannot be encoded for a CPython peer (see `brine::try_encode`).
    Unencodable(String),
    /// A message-type byte other than 1, 2 or 3.
    UnknownMessageType(u8),
    /// A message whose structure is not `(seq, body)` or whose body has the wrong shape.
    BadMessage(String),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::FrameTooLarge { size, max } => write!(
                f,
                "frame of {} exceeds max_frame_size={} (raise the max_frame_size config key to accept it)",
                human_size(*size),
                human_size(*max as u64)
            ),
            WireError::OutgoingTooLarge { size, max } => write!(
                f,
                "outgoing frame of {} exceeds max_frame_size={} (a peer with that limit would refuse it; raise the max_frame_size config key on both sides to send it)",
                human_size(*size),
                human_size(*max as u64)
            ),
            WireError::MemoryBudget { wanted, used, max } => write!(
                f,
                "receiving {} more would take the inbound memory of this process's connections \
                 past max_inbound_memory={} ({} held now; raise the max_inbound_memory config key \
                 to allow more)",
                human_size(*wanted as u64),
                human_size(*max as u64),
                human_size(*used as u64)
            ),
            WireError::TooManyPending { max } => write!(
                f,
                "another request would exceed max_pending_requests={max} ({max} requests of this \
                 connection await answers; raise the max_pending_requests config key to allow more)"
            ),
            WireError::TooManyObjects { max } => write!(
                f,
                "sending another object reference would exceed max_local_objects={max} (the peer \
                 holds references to {max} objects of this connection and has not released them; \
                 raise the max_local_objects config key to allow more)"
            ),
            WireError::Closed(why) => write!(f, "{why}"),
            WireError::DecompressedTooLarge { max } => write!(
                f,
                "compressed frame inflates past max_decompressed_size={} (raise the max_decompressed_size config key to accept it)",
                human_size(*max as u64)
            ),
            WireError::BadCompression(why) => write!(f, "corrupt compressed frame: {why}"),
            WireError::NestingTooDeep { max } => write!(
                f,
                "brine data nested deeper than max_nesting_depth={max} (raise the max_nesting_depth config key to accept it)"
            ),
            WireError::OutgoingTooDeep { max } => write!(
                f,
                "value nested deeper than max_nesting_depth={max} (raise the max_nesting_depth config key on both sides to send it)"
            ),
            WireError::Truncated { what, offset } => {
                write!(f, "brine data truncated inside {what} at byte {offset}")
            }
            WireError::UnknownTag { tag, offset } => {
                write!(f, "unknown brine tag 0x{tag:02x} at byte {offset}")
            }
            WireError::BadUnicode { offset } => {
                write!(f, "brine UNICODE item at byte {offset} is not valid UTF-8 bytes")
            }
            WireError::BadInteger { offset } => {
                write!(f, "brine INT item at byte {offset} is not a decimal integer")
            }
            WireError::IntegerTooLong { digits, offset } => write!(
                f,
                "brine INT item at byte {offset} has {digits} digits, over the 4300-digit limit of CPython's int conversion"
            ),
            WireError::ExpectedInteger { what, offset } => {
                write!(f, "expected an integer ({what}) at byte {offset}")
            }
            WireError::BadContainer { what, offset } => {
                write!(f, "brine {what} item at byte {offset} does not hold a valid tuple")
            }
            WireError::BadSetMember { why, offset } => {
                write!(f, "brine frozenset at byte {offset}: {why}")
            }
            WireError::TrailingBytes { offset } => {
                write!(f, "unexpected bytes after the brine value at byte {offset}")
            }
            WireError::NonCanonical { what, offset } => write!(
                f,
                "brine item at byte {offset} is not in canonical form ({what}); upstream never encodes it this way"
            ),
            WireError::Unencodable(why) => write!(f, "cannot encode value: {why}"),
            WireError::UnknownMessageType(t) => {
                write!(f, "unknown message type {t} (expected 1, 2 or 3; is the peer RPyC 6 with the same bind_threads setting?)")
            }
            WireError::BadMessage(why) => write!(f, "malformed message: {why}"),
        }
    }
}

impl std::error::Error for WireError {}
