//! Sealing outgoing payloads into frames: compression policy and the outgoing limits.

use super::config::Config;
use crate::consts::{FRAME_HEADER_LEN, FRAME_TRAILER};
use crate::error::WireError;
use crate::frame::{self, FrameHeader};
use crate::limits::Limits;

/// How a connection frames what it sends.
#[derive(Debug, Clone, Copy)]
pub struct Sealer {
    threshold: Option<usize>,
    level: u32,
    limits: Limits,
}

impl Sealer {
    pub fn new(config: &Config) -> Self {
        Sealer {
            threshold: config.compression_threshold,
            level: config.compression_level,
            limits: config.limits,
        }
    }

    pub fn level(&self) -> u32 {
        self.level
    }

    /// Whether a payload of `len` bytes is to be compressed (if a trial says it pays):
    /// over the threshold, and not larger than a peer with our limits would inflate (sent
    /// as is, it may still fit `max_frame_size`).
    pub fn compresses(&self, len: usize) -> bool {
        frame::should_compress(len, self.threshold) && len <= self.limits.max_decompressed_size
    }

    /// The header of a frame whose body is `wire_len` bytes on the wire. A frame that a peer
    /// with our `max_frame_size` would refuse is refused here, before anything is written:
    /// the sender gets the error and keeps its connection, where the peer would close it.
    pub fn header(
        &self,
        wire_len: usize,
        compressed: bool,
    ) -> Result<[u8; FRAME_HEADER_LEN], WireError> {
        frame::check_outgoing(wire_len, &self.limits)?;
        let len = u32::try_from(wire_len).map_err(|_| WireError::OutgoingTooLarge {
            size: wire_len as u64,
            max: u32::MAX as usize,
        })?;
        Ok(FrameHeader { len, compressed }.to_bytes())
    }

    /// Frame the payload that follows [`FRAME_HEADER_LEN`] reserved bytes at the start of
    /// `buf`: compressed when that pays, refused over `max_frame_size`.
    pub fn seal(&self, mut buf: Vec<u8>) -> Result<Vec<u8>, WireError> {
        let payload = buf.get(FRAME_HEADER_LEN..).unwrap_or_default();
        if self.compresses(payload.len()) && frame::compression_pays(payload, self.level) {
            let body = frame::compress(payload, self.level);
            let mut framed = Vec::with_capacity(FRAME_HEADER_LEN + body.len() + 1);
            framed.extend_from_slice(&self.header(body.len(), true)?);
            framed.extend_from_slice(&body);
            framed.push(FRAME_TRAILER);
            return Ok(framed);
        }
        let header = self.header(payload.len(), false)?;
        buf[..FRAME_HEADER_LEN].copy_from_slice(&header);
        buf.push(FRAME_TRAILER);
        Ok(buf)
    }
}

/// A buffer to write a payload into, with room for the frame header in front.
pub fn payload_buffer() -> Vec<u8> {
    let mut buf = Vec::with_capacity(128);
    buf.extend_from_slice(&[0u8; FRAME_HEADER_LEN]);
    buf
}
