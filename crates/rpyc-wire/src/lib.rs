//! Sans-IO core of the RPyC 6 wire protocol: no Python, no sockets.
//!
//! Layers, bottom up: [`brine`] (the value serializer: one reader, one writer),
//! [`message`] (message type byte, `(seq, body)`, boxing), [`frame`] (length-prefixed,
//! optionally zlib-compressed frames, held under a [`budget::MemoryBudget`]) and [`conn`]
//! (one connection's protocol state, for every driver). Everything a peer sends is
//! decoded under [`limits::Limits`].
//!
//! ```
//! use rpyc_wire::brine::Value;
//! use rpyc_wire::consts::{handler, COMPRESSION_LEVEL, COMPRESSION_THRESHOLD};
//! use rpyc_wire::message::{self, Boxed, Message};
//! use rpyc_wire::{frame, Limits};
//!
//! // Sending: message -> payload -> frame.
//! let args = Boxed::Value(Value::Tuple(vec![])).to_wire();
//! let msg = Message::request(0i64, handler::GETROOT, args);
//! let payload = message::encode_payload(&msg, false);
//! let mut wire = Vec::new();
//! frame::encode_frame(&payload, Some(COMPRESSION_THRESHOLD), COMPRESSION_LEVEL, &mut wire)?;
//! assert_eq!(wire, b"\x00\x00\x00\x08\x00\x01\x11\x50\x11\x53\x11\x51\x02\x0a");
//!
//! // Receiving: bytes in any chunking -> payloads -> messages.
//! let mut frames = frame::FrameDecoder::new(Limits::default());
//! frames.feed(&wire[..3])?;
//! assert!(frames.next_payload()?.is_none());
//! frames.feed(&wire[3..])?;
//! let payload = frames.next_payload()?.expect("a complete frame");
//! let back = message::decode_payload(&payload, false, &Limits::default())?;
//! assert_eq!(back, msg);
//! # Ok::<(), rpyc_wire::WireError>(())
//! ```
#![forbid(unsafe_code)]

pub mod brine;
pub mod budget;
pub mod conn;
pub mod consts;
pub mod error;
pub mod frame;
pub mod limits;
pub mod message;

pub use error::WireError;
pub use limits::Limits;
