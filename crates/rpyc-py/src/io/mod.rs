//! Moving bytes: transports (native sockets, TLS sessions, Python streams), polling before a
//! read blocks, outgoing messages with large values spliced in, large buffers, and the
//! servers' accept.

pub mod acceptor;
pub mod bigbuf;
pub mod busy_poll;
pub mod outgoing;
pub mod transport;
pub mod wait;
