//! Sans-IO core of the RPyC 6 wire protocol: no Python, no sockets.
//!
//! Layers, bottom up: [`frame`] (length-prefixed, optionally zlib-compressed frames),
//! [`message`] (message type byte, `(seq, body)`), [`brine`] (the value serializer).
//! Everything a peer sends is decoded under [`limits::Limits`].
#![forbid(unsafe_code)]

pub mod brine;
pub mod consts;
pub mod error;
pub mod frame;
pub mod limits;
pub mod message;

pub use error::WireError;
pub use limits::Limits;
