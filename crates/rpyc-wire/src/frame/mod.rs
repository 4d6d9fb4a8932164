//! Frames (docs/protocol.md#frames): `u32 len | u8 compressed | payload | trailer`.
//!
//! Sans-IO: callers own the transport and hand bytes in and out. [`FrameDecoder`] turns
//! bytes as they arrive into payloads (inflated by [`Inflater`] under the limits and the
//! inbound memory budget); the functions here frame and compress what goes out.

mod decoder;
mod inflate;

pub use decoder::{FrameDecoder, Payload, ReadPlan, READ_CHUNK};
pub use inflate::{inflate, Inflater};

use crate::consts::{FRAME_HEADER_LEN, FRAME_TRAILER};
use crate::error::WireError;
use crate::limits::Limits;
use flate2::write::ZlibEncoder;
use flate2::Compression;
use std::io::Write;

/// The fixed 5-byte header of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Payload bytes on the wire (after compression), excluding header and trailer.
    pub len: u32,
    /// Upstream treats every non-zero flag as "zlib-compressed".
    pub compressed: bool,
}

impl FrameHeader {
    /// Parse a header, refusing lengths above `max_frame_size` before anything is allocated.
    pub fn parse(bytes: &[u8; FRAME_HEADER_LEN], limits: &Limits) -> Result<Self, WireError> {
        let len = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        if len as u64 > limits.max_frame_size as u64 {
            return Err(WireError::FrameTooLarge {
                size: len as u64,
                max: limits.max_frame_size,
            });
        }
        Ok(FrameHeader {
            len,
            compressed: bytes[4] != 0,
        })
    }

    pub fn to_bytes(self) -> [u8; FRAME_HEADER_LEN] {
        let l = self.len.to_be_bytes();
        [l[0], l[1], l[2], l[3], self.compressed as u8]
    }

    /// Bytes still to read after the header: the payload plus the trailer byte.
    pub fn body_len(self) -> usize {
        self.len as usize + 1
    }
}

/// Refuse to send a frame whose body (`len` bytes on the wire) a peer applying the same
/// `max_frame_size` would refuse: the sender gets a clear error and keeps its connection,
/// where the peer would close it.
pub fn check_outgoing(len: usize, limits: &Limits) -> Result<(), WireError> {
    if len > limits.max_frame_size {
        return Err(WireError::OutgoingTooLarge {
            size: len as u64,
            max: limits.max_frame_size,
        });
    }
    Ok(())
}

/// zlib-compress a payload at the given level (upstream uses level 1).
pub fn compress(payload: &[u8], level: u32) -> Vec<u8> {
    let mut enc = ZlibEncoder::new(
        Vec::with_capacity(payload.len() / 2 + 64),
        Compression::new(level),
    );
    // Writing into a Vec cannot fail.
    let _ = enc.write_all(payload);
    enc.finish().unwrap_or_default()
}

/// Whether a payload of `len` bytes is compressed under upstream's policy.
pub fn should_compress(len: usize, threshold: Option<usize>) -> bool {
    matches!(threshold, Some(t) if len > t)
}

/// Bytes of a large payload compressed as a trial before compressing all of it.
pub const COMPRESSION_SAMPLE: usize = 16 * 1024;

/// Whether compressing `payload` is worth its CPU: payloads larger than
/// [`COMPRESSION_SAMPLE`] are compressed only if their first bytes shrink by at least 10%.
/// Random or already-compressed data (the usual bulk `bytes`) is sent as is; a compressed
/// frame is never required by the protocol, so peers cannot tell.
pub fn compression_pays(payload: &[u8], level: u32) -> bool {
    match payload.get(..COMPRESSION_SAMPLE) {
        Some(sample) if payload.len() > COMPRESSION_SAMPLE => sample_shrinks(sample, level),
        _ => true,
    }
}

/// Whether `sample` (the first bytes of a large payload) shrinks by at least 10%.
pub fn sample_shrinks(sample: &[u8], level: u32) -> bool {
    compress(sample, level).len() * 10 < sample.len() * 9
}

/// Append one complete frame carrying `payload` to `out`, compressing it when its length
/// exceeds `compress_threshold` (`None` disables compression).
pub fn encode_frame(
    payload: &[u8],
    compress_threshold: Option<usize>,
    level: u32,
    out: &mut Vec<u8>,
) -> Result<(), WireError> {
    let compressed;
    let body: &[u8] = if should_compress(payload.len(), compress_threshold) {
        compressed = compress(payload, level);
        &compressed
    } else {
        payload
    };
    let len = u32::try_from(body.len()).map_err(|_| WireError::FrameTooLarge {
        size: body.len() as u64,
        max: u32::MAX as usize,
    })?;
    let header = FrameHeader {
        len,
        compressed: body.as_ptr() != payload.as_ptr(),
    };
    out.reserve(FRAME_HEADER_LEN + body.len() + 1);
    out.extend_from_slice(&header.to_bytes());
    out.extend_from_slice(body);
    out.push(FRAME_TRAILER);
    Ok(())
}
