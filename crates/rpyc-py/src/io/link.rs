//! The write side of a connection: its transport, the gate writers take turns on, and the
//! releases held back to travel with the next frame. The flusher thread writes through it
//! too, without the GIL and without the engine.

use super::held::{HeldFrames, Hold, Releases};
use super::outgoing::Outgoing;
use super::transport::{eof_error, Transport};
use crate::gate::Gate;
use crate::stats::Stats;
use pyo3::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What carries the frames; it decides which frames may be held back and which peers may
/// need nudging (see `engine::reader`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Carrier {
    Socket,
    Tls,
    Python,
}

pub struct Link {
    transport: Mutex<Option<Transport>>,
    carrier: Carrier,
    /// Writers take turns (a Python-stream transport calls Python while holding it).
    gate: Gate,
    held: Releases,
    /// How long a write may wait for the peer to read (`send_stall_timeout`; None: forever).
    stall: Option<Duration>,
    /// Why the transport failed under a write (the connection is over); `is_lost` tells
    /// without the lock (asked before every read and write).
    lost: Mutex<Option<String>>,
    is_lost: AtomicBool,
    /// The connection's counters: frames and bytes are counted here, as written (a
    /// release held back is counted when it goes out with a later write).
    stats: Arc<Stats>,
}

impl Link {
    pub fn new(transport: Transport, stall: Option<Duration>, stats: Arc<Stats>) -> Arc<Link> {
        let carrier = match &transport {
            Transport::Socket(_) => Carrier::Socket,
            Transport::Tls(_) => Carrier::Tls,
            Transport::Python(_) => Carrier::Python,
        };
        Arc::new(Link {
            transport: Mutex::new(Some(transport)),
            carrier,
            gate: Gate::default(),
            held: Releases::default(),
            stall,
            lost: Mutex::new(None),
            is_lost: AtomicBool::new(false),
            stats,
        })
    }

    fn count_written(&self, held: &HeldFrames, framed: usize) {
        let frames = held.len() + usize::from(framed > 0);
        self.stats.written(frames, held.bytes().len() + framed);
    }

    pub fn carrier(&self) -> Carrier {
        self.carrier
    }

    /// A handle on the transport (for use without holding the link's lock).
    pub fn transport(&self, py: Python<'_>) -> PyResult<Transport> {
        let guard = self.transport.lock().unwrap_or_else(|p| p.into_inner());
        match guard.as_ref() {
            Some(t) => Ok(t.clone_ref(py)),
            None => Err(eof_error("stream has been closed")),
        }
    }

    /// Why a write failed, if one did.
    pub fn lost(&self) -> Option<String> {
        if !self.is_lost.load(Ordering::Acquire) {
            return None;
        }
        self.lost.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn mark_lost(&self, why: String) {
        let mut lost = self.lost.lock().unwrap_or_else(|p| p.into_inner());
        if lost.is_none() {
            *lost = Some(why);
            self.is_lost.store(true, Ordering::Release);
        }
    }

    /// Write a sealed frame (after the releases held back). A failed or stalled write
    /// leaves the stream unusable: the link is lost, and the caller ends the connection.
    pub fn write(&self, py: Python<'_>, framed: &Outgoing) -> PyResult<()> {
        let transport = self.transport(py)?;
        {
            let _gate = self.gate.acquire(py);
            // A writer that waited for the gate behind a failed write reports that failure.
            if let Some(why) = self.lost() {
                return Err(eof_error(why));
            }
            let held = self.held.take();
            let written = transport.write_frames(py, &held, framed, self.stall);
            if let Err(e) = &written {
                self.mark_lost(describe(py, e));
            }
            written?;
            self.count_written(&held, framed.len());
        }
        if self.carrier == Carrier::Python {
            self.write_held_releases(py)?;
        }
        Ok(())
    }

    /// A release over a Python stream. The stream's `write` runs Python code, and with it
    /// the garbage collector and proxies' `__del__`, while its caller holds the gate: a
    /// release that waited for the gate there would wait for its own thread. So it never
    /// waits: the frame is held, and written now if the gate is free, else by the gate's
    /// holder once its write is done.
    pub fn write_release(&self, py: Python<'_>, framed: &[u8]) -> PyResult<()> {
        // (What `hold` advises concerns the flusher, which Python streams do not use.)
        let _ = self.held.hold(framed);
        self.write_held_releases(py)
    }

    /// Write the releases held over a Python stream, unless someone holds the gate: then
    /// that writer does it when done (it looks after dropping the gate, and a release is
    /// held before its thread tries the gate, so none is left behind). Loops while writing
    /// made more (a collection during the write).
    fn write_held_releases(&self, py: Python<'_>) -> PyResult<()> {
        loop {
            // (Usually nothing is held: then the gate is not even tried, once per write.)
            if self.held.is_empty() {
                return Ok(());
            }
            let Some(_gate) = self.gate.try_acquire() else {
                return Ok(());
            };
            let held = self.held.take();
            if held.is_empty() || self.lost().is_some() {
                return Ok(());
            }
            let transport = self.transport(py)?;
            let written = transport.write_frames(py, &held, &Outgoing::default(), self.stall);
            if let Err(e) = &written {
                self.mark_lost(describe(py, e));
            }
            written?;
            self.count_written(&held, 0);
        }
    }

    /// Hold a release frame back; what the caller must do next.
    pub fn hold(&self, framed: &[u8]) -> Hold {
        self.held.hold(framed)
    }

    /// Send the held releases from the flusher thread (no GIL; native transports only,
    /// the only ones that hold releases).
    pub fn flush_detached(&self) {
        let transport = self
            .transport
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .and_then(Transport::native);
        let Some(transport) = transport else {
            drop(self.held.take_for_flusher()); // closed: nobody to tell
            return;
        };
        let _gate = self.gate.acquire_detached();
        let held = self.held.take_for_flusher();
        if held.is_empty() || self.lost().is_some() {
            return;
        }
        match transport.write_frames_native(&held, &[], self.stall) {
            Ok(()) => self.count_written(&held, 0),
            Err(e) => {
                self.mark_lost(format!("connection lost: {e}"));
                transport.shutdown_native();
            }
        }
    }

    /// Shut the transport so that a blocked reader wakes with EOF and the peer sees the end.
    pub fn shutdown(&self, py: Python<'_>) {
        if let Ok(t) = self.transport(py) {
            t.shutdown(py);
        }
    }

    /// Shut the transport and let go of it (the connection is closed).
    pub fn close(&self, py: Python<'_>) {
        let transport = self
            .transport
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(t) = transport {
            t.shutdown(py);
        }
        drop(self.held.take());
    }
}

/// The message of a Python exception.
pub fn describe(py: Python<'_>, e: &PyErr) -> String {
    e.value(py)
        .str()
        .map(|s| s.to_string())
        .unwrap_or_else(|_| "connection failed".into())
}
