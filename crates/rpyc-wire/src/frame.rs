//! Frame codec (WIRE.md §3): `u32 len | u8 compressed | payload | trailer`.
//!
//! Sans-IO: callers own the transport and hand bytes in and out.

use crate::consts::{FRAME_HEADER_LEN, FRAME_TRAILER};
use crate::error::WireError;
use crate::limits::Limits;
use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;
use flate2::Compression;
use std::io::{Read, Write};

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

/// Inflate a zlib stream, stopping with an error as soon as the output would exceed
/// `max_decompressed_size` (a zlib bomb never gets its memory).
pub fn inflate(data: &[u8], limits: &Limits) -> Result<Vec<u8>, WireError> {
    let max = limits.max_decompressed_size;
    let mut out = Vec::with_capacity(data.len().saturating_mul(4).min(max).min(1 << 24));
    let mut dec = ZlibDecoder::new(data).take(max as u64 + 1);
    dec.read_to_end(&mut out)
        .map_err(|e| WireError::BadCompression(e.to_string()))?;
    if out.len() > max {
        return Err(WireError::DecompressedTooLarge { max });
    }
    Ok(out)
}

/// Whether a payload of `len` bytes is compressed under upstream's policy.
pub fn should_compress(len: usize, threshold: Option<usize>) -> bool {
    matches!(threshold, Some(t) if len > t)
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

/// Turn the bytes that followed a header (payload + trailer) into the message payload.
pub fn finish_frame(
    header: FrameHeader,
    mut body: Vec<u8>,
    limits: &Limits,
) -> Result<Vec<u8>, WireError> {
    // The trailer is thrown away unchecked, as upstream does.
    body.truncate(header.len as usize);
    if header.compressed {
        inflate(&body, limits)
    } else {
        Ok(body)
    }
}

/// Incremental frame decoder: feed it bytes as they arrive, take complete payloads out.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    limits: Limits,
}

impl FrameDecoder {
    pub fn new(limits: Limits) -> Self {
        FrameDecoder {
            buf: Vec::new(),
            limits,
        }
    }

    pub fn feed(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Bytes buffered but not yet returned as a frame.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete payload (inflated), `Ok(None)` if more bytes are needed.
    pub fn next_payload(&mut self) -> Result<Option<Vec<u8>>, WireError> {
        let Some(head) = self.buf.first_chunk::<FRAME_HEADER_LEN>() else {
            return Ok(None);
        };
        let header = FrameHeader::parse(head, &self.limits)?;
        let total = FRAME_HEADER_LEN + header.body_len();
        if self.buf.len() < total {
            return Ok(None);
        }
        let body = self.buf[FRAME_HEADER_LEN..total].to_vec();
        self.buf.drain(..total);
        finish_frame(header, body, &self.limits).map(Some)
    }
}
