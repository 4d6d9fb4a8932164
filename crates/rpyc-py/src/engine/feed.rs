//! The engine driven by an event loop (`rpyc.aio`): bytes are pushed in as they arrive
//! instead of read by a waiting thread, and complete frames come back out as `Work`.
//!
//! The loop must never wait on anything, so frames are split in two kinds. Light frames
//! (most of them: small, or compressed into less than `HEAVY_COMPRESSED`) are processed
//! on the loop. A heavy frame (a big payload to decode, or a compressed one that may inflate
//! to `max_decompressed_size`) is left for the driver to process on a worker thread
//! (`_drain(1)`), where inflating runs without the GIL and decoding lets the loop's thread
//! take the GIL every 64 KiB. The driver stops reading that connection meanwhile, so
//! frames are still processed in order.

use super::Engine;
use crate::errors::{wire_err, ProtocolError};
use crate::io::transport::eof_error;
use crate::work::Work;
use pyo3::prelude::*;
use rpyc_wire::frame::FrameDecoder;
use rpyc_wire::WireError;

/// A compressed frame at least this long (on the wire) is heavy: zlib inflates up to
/// ~1000 times, so a lighter one inflates to about 1 MiB at most.
const HEAVY_COMPRESSED: usize = 1024;

/// An uncompressed frame at least this long is heavy (decoding it takes milliseconds).
const HEAVY_PLAIN: usize = 256 * 1024;

/// What `_drain` stopped at.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Stop {
    /// Every complete frame was processed: feed more bytes.
    NeedBytes = 0,
    /// The next frame is heavy: process it off the loop (`_drain(1)`).
    Heavy = 1,
    /// The inbound memory budget has no room for the next frame now: try again later.
    Budget = 2,
}

impl Engine {
    /// Process complete frames until more bytes are needed, or (after `heavy` heavy frames)
    /// a heavy frame is next, or the budget is full.
    fn drain_frames(
        &self,
        slf: &Bound<'_, Engine>,
        frames: &mut FrameDecoder,
        mut heavy: usize,
        works: &mut Vec<Py<Work>>,
    ) -> PyResult<Stop> {
        let py = slf.py();
        loop {
            if let Some(e) = self.dead_error() {
                return Err(e);
            }
            let Some(header) = frames.next_complete().map_err(wire_err)? else {
                return Ok(Stop::NeedBytes);
            };
            let is_heavy = if header.compressed {
                header.body_len() >= HEAVY_COMPRESSED
            } else {
                header.body_len() >= HEAVY_PLAIN
            };
            if is_heavy {
                if heavy == 0 {
                    return Ok(Stop::Heavy);
                }
                heavy -= 1;
            }
            // Inflating needs no Python: let the loop's thread run meanwhile.
            let next = if is_heavy && header.compressed {
                crate::gil::detach(py, || frames.next_payload())
            } else {
                frames.next_payload()
            };
            let payload = match next {
                Ok(Some(p)) => {
                    self.stats.frame_in(p.wire_len(), p.compressed());
                    p
                }
                Ok(None) => return Ok(Stop::NeedBytes),
                Err(WireError::MemoryBudget { .. }) => return Ok(Stop::Budget),
                Err(e) => return Err(wire_err(e)),
            };
            // (A heavy frame's decoding lets the loop's thread take the GIL now and then.)
            let res = self.process(slf, payload.bytes(), false);
            drop(payload);
            if let Some(kind) = res? {
                works.push(Py::new(py, Work::new(kind))?);
            }
        }
    }

    /// Run `f` with the frame decoder taken out of the shared state (nobody else reads).
    fn with_frames<R>(&self, f: impl FnOnce(&mut FrameDecoder) -> PyResult<R>) -> PyResult<R> {
        let taken = self.lock().frames.take();
        let Some(mut frames) = taken else {
            return Err(eof_error("connection closed"));
        };
        let res = f(&mut frames);
        self.lock().frames = Some(frames);
        res
    }

    /// `_feed`: take bytes that arrived; false when the budget has no room for them now.
    pub(super) fn feed(&self, py: Python<'_>, data: &[u8]) -> PyResult<bool> {
        let res = self.with_frames(|frames| match frames.feed(data) {
            Ok(()) => Ok(true),
            Err(WireError::MemoryBudget { .. }) => Ok(false),
            Err(e) => Err(wire_err(e)),
        });
        self.failing(py, res)
    }

    /// `_drain`: the work asked by the complete frames, and why it stopped.
    pub(super) fn drain(
        &self,
        slf: &Bound<'_, Engine>,
        heavy: usize,
    ) -> PyResult<(Vec<Py<Work>>, u8)> {
        let mut works = Vec::new();
        let res = self.with_frames(|frames| self.drain_frames(slf, frames, heavy, &mut works));
        self.advance(&mut self.lock());
        let stop = self.failing(slf.py(), res)?;
        Ok((works, stop as u8))
    }

    /// `_buffered`: bytes received but not yet processed as frames.
    pub(super) fn buffered(&self) -> usize {
        self.lock().frames.as_ref().map_or(0, |f| f.buffered())
    }

    /// A protocol error ends the connection (as when a reading thread meets it).
    fn failing<T>(&self, py: Python<'_>, res: PyResult<T>) -> PyResult<T> {
        if let Err(e) = &res {
            if e.is_instance_of::<ProtocolError>(py) {
                self.fail(py, e);
            }
        }
        res
    }
}
