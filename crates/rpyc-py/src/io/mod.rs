//! Moving bytes: transports (native sockets, TLS sessions, Python streams), the write side of
//! a connection (its gate and the releases held back for the next frame, sent by the
//! flusher thread when the connection stays quiet), polling before a read blocks, outgoing
//! messages with large values spliced in, large buffers, and the servers' accept.

pub mod acceptor;
pub mod bigbuf;
pub mod busy_poll;
pub mod flusher;
pub mod held;
pub mod link;
pub mod outgoing;
pub mod transport;
pub mod wait;
