//! Brine, RPyC's value serializer (docs/protocol.md#brine): one reader and one writer.
//!
//! [`read`] decodes one value from a [`Cursor`] into any [`Sink`]: [`ValueSink`] builds the
//! [`Value`] tree ([`decode`], [`decode_prefix`]); `rpyc._core` builds Python objects with the
//! same reader. It is strict (it accepts only what upstream's encoder can produce), never
//! panics, never recurses, and bounds nesting and allocation. [`write`] holds every byte
//! layout of the encoder side, byte-exact with upstream's `brine.dump`; [`encode`] walks a
//! [`Value`] through it.

pub mod array;
mod cursor;
mod encode;
pub mod int;
mod pyset;
mod reader;
mod sink;
mod value;
mod value_sink;
pub mod write;

pub use cursor::{is_bytes_tag, is_tuple_tag, Cursor};
pub use encode::{encode, encode_checked, to_vec, try_encode};
pub use int::MAX_INT_DIGITS;
pub use reader::read;
pub use sink::{Container, Sink, Skip, SkipByValue, Text};
pub use value::Value;
pub use value_sink::{decode, decode_prefix, ValueBuilder, ValueSink};
