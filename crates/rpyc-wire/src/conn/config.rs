//! Connection settings, with the defaults every driver uses. The Python package reads its
//! config defaults from here (`rpyc._core.config_defaults()`), so each is written once.

use crate::consts::{COMPRESSION_LEVEL, COMPRESSION_THRESHOLD};
use crate::limits::Limits;

/// Default values of the config keys, by key name.
pub mod defaults {
    /// Our requests awaiting an answer (`max_pending_requests`).
    pub const MAX_PENDING_REQUESTS: usize = 100_000;
    /// Our objects the peer may hold references to (`max_local_objects`).
    pub const MAX_LOCAL_OBJECTS: usize = 100_000;
    /// Inbound bytes (buffered and inflated, before decoding) all connections of a process
    /// may hold beyond 128 KiB each (`max_inbound_memory`).
    pub const MAX_INBOUND_MEMORY: usize = 512 * 1024 * 1024;
    /// Seconds a write may wait while the peer reads nothing (`send_stall_timeout`).
    pub const SEND_STALL_TIMEOUT: f64 = 60.0;
    /// Microseconds a read polls a socket before it blocks (`busy_poll_us`).
    pub const BUSY_POLL_US: u64 = 50;
}

/// The settings one connection keeps for its whole life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `max_frame_size`, `max_decompressed_size`, `max_nesting_depth`.
    pub limits: Limits,
    /// `bind_threads`: every message carries a sender and a recipient thread id.
    pub bind_threads: bool,
    /// Payloads longer than this are compressed (`compression_threshold`; `None`: never).
    pub compression_threshold: Option<usize>,
    /// zlib level (`compression_level`).
    pub compression_level: u32,
    /// `max_pending_requests`.
    pub max_pending_requests: usize,
    /// `max_local_objects`.
    pub max_local_objects: usize,
    /// `max_inbound_memory`.
    pub max_inbound_memory: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            limits: Limits::default(),
            bind_threads: false,
            compression_threshold: Some(COMPRESSION_THRESHOLD),
            compression_level: COMPRESSION_LEVEL,
            max_pending_requests: defaults::MAX_PENDING_REQUESTS,
            max_local_objects: defaults::MAX_LOCAL_OBJECTS,
            max_inbound_memory: defaults::MAX_INBOUND_MEMORY,
        }
    }
}
