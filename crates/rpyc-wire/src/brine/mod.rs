//! Brine, RPyC's value serializer (WIRE.md §2): a [`Value`] tree and its codec.
//!
//! [`encode`] is byte-exact with upstream's `brine.dump`. [`decode`] is strict: it accepts
//! only what upstream's encoder can produce (see [`decode`](mod@decode) for the rules), never
//! panics, never recurses, and bounds nesting and allocation by [`crate::Limits`].

mod decode;
mod encode;
pub mod int;
mod pyset;
mod value;

pub use decode::{decode, decode_prefix};
pub use encode::{
    encode, encode_bytes, encode_int, encode_str, encode_tuple_header, to_vec, try_encode,
};
pub use int::MAX_INT_DIGITS;
pub use value::Value;
