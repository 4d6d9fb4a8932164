//! The connection core (docs/architecture.md#the-connection-core): the protocol state of one
//! connection, without I/O, threads or a clock. Bytes and calls go in; events and bytes come
//! out. Drivers move the bytes: the Python extension's blocking engine (many threads sharing
//! a connection: it uses the parts), and [`Connection`] for drivers that own a connection
//! from one place.
//!
//! - [`Config`]: the settings, with the defaults every driver uses;
//! - [`crate::frame::FrameDecoder`]: frames out of the byte stream, under the frame limits
//!   and the process's inbound [`crate::budget::MemoryBudget`];
//! - [`Session`]: sequence numbers and the pending table ([`Requests`]), what each received
//!   payload is ([`Incoming`]), `HANDLE_DEL` arguments, whether the connection lives, what
//!   the peer is (the rpyc-rs [`hello`]);
//! - [`ObjectTable`]: our objects the peer holds references to;
//! - [`Sealer`]: framing and compressing what we send.

mod config;
mod connection;
pub mod hello;
mod objects;
mod outbound;
mod requests;
mod session;

pub use config::{defaults, Config};
pub use connection::{Connection, Event};
pub use objects::{ObjKey, ObjectTable};
pub use outbound::{payload_buffer, Sealer};
pub use requests::Requests;
pub use session::{Answer, Incoming, Request, Session};
