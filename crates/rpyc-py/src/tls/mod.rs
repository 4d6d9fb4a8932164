//! TLS on rustls (no OpenSSL in the data path): configurations, the handshake, and the
//! session a connection's engine reads and writes natively.

pub mod context;
mod errors;
mod info;
mod peer_cert;
pub mod pipe;
pub mod session;
pub mod socket;
mod verify;

pub use errors::describe;
