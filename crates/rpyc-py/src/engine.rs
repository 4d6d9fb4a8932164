//! The connection engine: sequence numbers, pending replies, the receive loop and request
//! dispatch (WIRE.md §4, §8). The Python `Connection` class subclasses `Engine`.
//!
//! Threading model: no thread hand-off. A thread waiting for a reply reads the socket itself
//! (as "the reader", GIL released while blocked), files replies that belong to other waiting
//! threads into their slots and wakes them, and serves incoming requests inline, which is what
//! makes nested callbacks work. Reader ownership is reentrant so that a request served inline
//! may itself wait for a reply.

use crate::codec::boxing::BoxCtx;
use crate::codec::py_encode::Encoder;
use crate::codec::py_sink::PySink;
use crate::errors::{wire_err, ProtocolError, TruncatedFrame};
use crate::gate::Gate;
use crate::io::outgoing::Outgoing;
use crate::io::transport::{eof_error, Transport};
use crate::io::wait::Readable;
use crate::objects::ObjectTable;
use crate::releases::{self, Hold, Releases};
use crate::threads;
use crate::work::{Work, WorkKind};
use pyo3::exceptions::{PyKeyError, PyRuntimeError, PyTimeoutError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};
use rpyc_wire::brine::{self, Cursor, Skip, Value};
use rpyc_wire::consts::{
    handler, COMPRESSION_LEVEL, FRAME_HEADER_LEN, FRAME_TRAILER, MSG_EXCEPTION, MSG_REQUEST,
};
use rpyc_wire::frame::{self, FrameHeader};
use rpyc_wire::message;
use rpyc_wire::{Limits, WireError};
use rustc_hash::FxHashMap as HashMap;
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// `rpyc.core.netref.BaseNetref`, registered by the netref module at import.
pub static NETREF_BASE: PyOnceLock<Py<PyType>> = PyOnceLock::new();

fn netref_base(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    NETREF_BASE
        .get(py)
        .map(|b| b.bind(py))
        .ok_or_else(|| PyValueError::new_err("rpyc.core.netref is not initialised"))
}

/// Longest uninterrupted wait for another thread's progress (signals are checked between).
const PROGRESS_SLICE: Duration = Duration::from_millis(100);

/// Silence after which a waiting thread nudges an upstream TLS peer (see `upstream_over_tls`),
/// and the longest interval between nudges.
const NUDGE_AFTER: Duration = Duration::from_millis(1);
const NUDGE_MAX: Duration = Duration::from_secs(1);

/// Frames from this size on are handed over in the receive buffer they arrived in.
const LARGE_FRAME: usize = 1 << 20;

/// A received frame's payload: `buf[start..]`.
struct Payload {
    buf: Vec<u8>,
    start: usize,
}

impl Payload {
    fn new(buf: Vec<u8>, start: usize) -> Self {
        Payload { buf, start }
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

/// Defaults of the connection limits (config keys of the same names; docs/architecture.md).
const DEFAULT_MAX_PENDING_REQUESTS: usize = 100_000;
const DEFAULT_MAX_LOCAL_OBJECTS: usize = 100_000;
const DEFAULT_SEND_STALL_TIMEOUT: f64 = 60.0;
/// How long a read polls a native or TLS socket before it blocks (`busy_poll_us`; busy_poll.rs).
const DEFAULT_BUSY_POLL_US: usize = 50;

/// What carries the frames; it decides which frames may be held back (`releases`) and which
/// peers may need nudging (`upstream_over_tls`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Carrier {
    Socket,
    Tls,
    Python,
}

/// Settings fixed for the life of a connection (read once from `protocol_config`).
struct Settings {
    carrier: Carrier,
    bind_threads: bool,
    compress_threshold: Option<usize>,
    compress_level: u32,
    limits: Limits,
    /// Requests of ours awaiting an answer (`max_pending_requests`).
    max_pending_requests: usize,
    /// Objects the peer may hold references to (`max_local_objects`).
    max_local_objects: usize,
    /// How long a write may wait for the peer to read (`send_stall_timeout`; None: forever).
    send_stall: Option<Duration>,
}

/// How a request's answer is to be delivered.
enum Slot {
    /// A thread is waiting in `sync_request` (until `deadline`); the outcome is parked here.
    Sync {
        outcome: Option<PyResult<Py<PyAny>>>,
        deadline: Option<Instant>,
    },
    /// `AsyncResult`-style callback `f(is_exc, obj)`.
    Async(Py<PyAny>),
}

/// What reading one frame led to.
enum Step {
    /// Nothing arrived in time.
    Idle,
    /// A frame was processed entirely (e.g. a reply filed for its waiter).
    Done,
    /// A frame needs Python: a request to serve or an answer for a callback.
    Work(WorkKind),
}

#[derive(Default)]
struct Shared {
    pending: HashMap<u64, Slot>,
    /// Thread token of the current reader and its reentrancy depth.
    reader: Option<(u64, u32)>,
    /// Bumped whenever a frame was processed or the reader left: waiters re-check.
    generation: u64,
    /// Threads sleeping in `wait_progress`.
    waiters: usize,
    /// Bytes received but not yet consumed; only the reader touches it.
    rbuf: Vec<u8>,
    /// Why the connection is dead, once it is.
    dead: Option<String>,
}

#[pyclass(module = "rpyc._core", subclass, frozen)]
pub struct Engine {
    settings: OnceLock<Settings>,
    config: OnceLock<Py<PyDict>>,
    transport: Mutex<Option<Transport>>,
    objects: ObjectTable,
    shared: Mutex<Shared>,
    progress: Condvar,
    send_gate: Gate,
    /// `HANDLE_DEL` frames waiting to travel with the next write (see `releases`).
    releases: Releases,
    /// Answer the peer's `HANDLE_DEL`s (upstream waits for answers; see `serve_release`).
    answer_dels: AtomicBool,
    /// The peer is rpyc-rs (see `_set_rpyc_rs_peer`).
    rpyc_rs_peer: AtomicBool,
    next_seq: AtomicU64,
    closed: AtomicBool,
}

fn config_bool(cfg: &Bound<'_, PyDict>, key: &str, default: bool) -> PyResult<bool> {
    match cfg.get_item(key)? {
        Some(v) => v.is_truthy(),
        None => Ok(default),
    }
}

fn config_size(cfg: &Bound<'_, PyDict>, key: &str, default: usize) -> PyResult<usize> {
    match cfg.get_item(key)? {
        Some(v) if !v.is_none() => v.extract().map_err(|_| {
            PyValueError::new_err(format!("{key} must be a non-negative integer, not {v}"))
        }),
        _ => Ok(default),
    }
}

/// A duration in seconds; `None` (the key's value or absent default) means no limit.
fn config_seconds(
    cfg: &Bound<'_, PyDict>,
    key: &str,
    default: Option<f64>,
) -> PyResult<Option<Duration>> {
    let secs = match cfg.get_item(key)? {
        Some(v) if v.is_none() => None,
        Some(v) => Some(v.extract::<f64>()?),
        None => default,
    };
    secs.map(|t| {
        Duration::try_from_secs_f64(t)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                PyValueError::new_err(format!(
                    "{key} must be a positive number of seconds or None, not {t}"
                ))
            })
    })
    .transpose()
}

fn deadline_after(timeout: Option<f64>) -> Option<Instant> {
    timeout
        .filter(|t| t.is_finite())
        .map(|t| Instant::now() + Duration::from_secs_f64(t.max(0.0)))
}

fn remaining(deadline: Option<Instant>) -> Option<Duration> {
    deadline.map(|d| d.saturating_duration_since(Instant::now()))
}

impl Engine {
    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn settings(&self) -> PyResult<&Settings> {
        self.settings
            .get()
            .ok_or_else(|| PyValueError::new_err("connection engine not started"))
    }

    fn transport(&self, py: Python<'_>) -> PyResult<Transport> {
        let guard = self.transport.lock().unwrap_or_else(|p| p.into_inner());
        match guard.as_ref() {
            Some(t) => Ok(t.clone_ref(py)),
            None => Err(eof_error("stream has been closed")),
        }
    }

    fn box_ctx<'a, 'py>(
        &'a self,
        conn: &'a Bound<'py, PyAny>,
        base: &'a Bound<'py, PyType>,
    ) -> PyResult<BoxCtx<'a, 'py>> {
        let s = self.settings()?;
        Ok(BoxCtx {
            conn,
            table: &self.objects,
            netref_base: base,
            max_depth: s.limits.max_nesting_depth,
            max_objects: s.max_local_objects,
            added: RefCell::new(Vec::new()),
        })
    }

    /// Start a payload buffer: room for the frame header, then the thread prefix if bound.
    fn begin_payload(&self, recipient: u64) -> PyResult<Outgoing> {
        let mut out = Outgoing::with_capacity(128);
        out.buf.extend_from_slice(&[0u8; FRAME_HEADER_LEN]);
        if self.settings()?.bind_threads {
            out.buf.extend_from_slice(&threads::token().to_be_bytes());
            out.buf.extend_from_slice(&recipient.to_be_bytes());
        }
        Ok(out)
    }

    /// Frame the payload that follows the reserved header bytes (compressed if that pays).
    /// A frame that a peer with our limits would refuse is refused here, before anything is
    /// written: the caller gets a `ValueError` and the connection stays usable, where the
    /// peer would have closed it.
    fn seal_frame(&self, py: Python<'_>, mut out: Outgoing) -> PyResult<Outgoing> {
        let s = self.settings()?;
        let payload_len = out.len() - FRAME_HEADER_LEN;
        let level = s.compress_level;
        // A payload the peer may not inflate is not worth compressing: sent as is, it may
        // still fit max_frame_size.
        let compressed = (frame::should_compress(payload_len, s.compress_threshold)
            && payload_len <= s.limits.max_decompressed_size)
            .then(|| Self::compress_payload(py, &mut out, level))
            .flatten();
        let wire_len = compressed.as_ref().map_or(payload_len, Vec::len);
        frame::check_outgoing(wire_len, &s.limits)
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        if let Some(body) = compressed {
            let mut framed = Vec::with_capacity(body.len() + FRAME_HEADER_LEN + 1);
            let header = FrameHeader {
                len: frame_len(body.len())?,
                compressed: true,
            };
            framed.extend_from_slice(&header.to_bytes());
            framed.extend_from_slice(&body);
            framed.push(FRAME_TRAILER);
            return Ok(Outgoing::from(framed));
        }
        let header = FrameHeader {
            len: frame_len(payload_len)?,
            compressed: false,
        };
        out.buf[..FRAME_HEADER_LEN].copy_from_slice(&header.to_bytes());
        out.buf.push(FRAME_TRAILER);
        Ok(out)
    }

    /// The payload compressed, if compressing it pays (its first bytes shrink). A payload
    /// with values spliced in is tried on a copy of its first bytes and made contiguous only
    /// if it is compressed after all.
    fn compress_payload(py: Python<'_>, out: &mut Outgoing, level: u32) -> Option<Vec<u8>> {
        if out.is_spliced() {
            let sample = out.copy_range(py, FRAME_HEADER_LEN, frame::COMPRESSION_SAMPLE);
            if !crate::gil::detach(py, || frame::sample_shrinks(&sample, level)) {
                return None;
            }
            *out = Outgoing::from(std::mem::take(out).flatten(py));
            let payload = &out.buf[FRAME_HEADER_LEN..];
            return Some(crate::gil::detach(py, || frame::compress(payload, level)));
        }
        let payload = &out.buf[FRAME_HEADER_LEN..];
        crate::gil::detach(py, || {
            frame::compression_pays(payload, level).then(|| frame::compress(payload, level))
        })
    }

    /// Write a sealed frame. A failed or stalled write ends the connection (a frame cut
    /// short leaves the stream unusable).
    fn write_frame(&self, py: Python<'_>, framed: &Outgoing) -> PyResult<()> {
        let transport = self.transport(py)?;
        let stall = self.settings()?.send_stall;
        let res = {
            let _gate = self.send_gate.acquire(py);
            // A writer that waited for the gate behind a stalled write reports the stall.
            if let Some(e) = self.dead_error() {
                return Err(e);
            }
            let held = self.releases.take();
            transport.write_frames(py, &held, framed, stall)
        };
        if let Err(e) = &res {
            self.fail(py, e);
        }
        res
    }

    /// Send the held releases from the flusher thread (no GIL; native transports only,
    /// the only ones that hold releases).
    pub(crate) fn flush_held_detached(&self) {
        let transport = self
            .transport
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .and_then(Transport::native);
        let Some(transport) = transport else {
            drop(self.releases.take_for_flusher()); // closed: nobody to tell
            return;
        };
        let stall = self.settings.get().and_then(|s| s.send_stall);
        let _gate = self.send_gate.acquire_detached();
        let held = self.releases.take_for_flusher();
        if held.is_empty() || self.lock().dead.is_some() {
            return;
        }
        if let Err(e) = transport.write_frames_native(&held, &[], stall) {
            self.mark_dead(format!("connection lost: {e}"));
            transport.shutdown_native();
        }
    }

    fn mark_dead(&self, why: String) {
        let mut sh = self.lock();
        if sh.dead.is_none() {
            sh.dead = Some(why);
        }
        self.advance(&mut sh);
    }

    /// Record progress (a frame processed, the reader left, the connection died) and wake the
    /// threads waiting for it. Waking costs a system call, so only when someone waits.
    fn advance(&self, sh: &mut Shared) {
        sh.generation += 1;
        if sh.waiters > 0 {
            self.progress.notify_all();
        }
    }

    fn dead_error(&self) -> Option<PyErr> {
        self.lock().dead.clone().map(eof_error)
    }

    /// Become (or re-enter as) the reader; false if another thread reads.
    fn try_become_reader(&self) -> bool {
        let me = threads::token();
        let mut sh = self.lock();
        match sh.reader {
            None => {
                sh.reader = Some((me, 1));
                true
            }
            Some((t, depth)) if t == me => {
                sh.reader = Some((t, depth + 1));
                true
            }
            Some(_) => false,
        }
    }

    /// Leave the reader role once (reentrant). A thread that does not hold it changes
    /// nothing: `_dispatch` may hand out answers without holding it.
    fn release_reader(&self) {
        let me = threads::token();
        let mut sh = self.lock();
        if let Some((t, depth)) = sh.reader {
            if t == me {
                sh.reader = (depth > 1).then_some((t, depth - 1));
            }
        }
        self.advance(&mut sh);
    }

    /// After reading one frame as the reader: give up the reader role, except when the frame
    /// is an answer to deliver to a callback. Then the role passes to the Python code that runs
    /// the callback (`_release_reader` afterwards), as upstream delivers under its receive
    /// lock: a thread waiting for that answer must not start reading meanwhile, or it would
    /// block on a socket whose answer was already taken.
    fn release_reader_unless_delivering(&self, res: &PyResult<Step>) {
        if !matches!(res, Ok(Step::Work(WorkKind::Deliver { .. }))) {
            self.release_reader();
        }
    }

    /// Sleep (GIL released) until a frame is processed, the reader leaves, or the deadline;
    /// at most `PROGRESS_SLICE`, so that callers get to check for signals.
    fn wait_progress(&self, py: Python<'_>, seen: u64, deadline: Option<Instant>) {
        let slice_end = Instant::now() + PROGRESS_SLICE;
        let deadline = Some(deadline.map_or(slice_end, |d| d.min(slice_end)));
        crate::gil::detach(py, || {
            let mut sh = self.lock();
            sh.waiters += 1;
            while sh.generation == seen && sh.reader.is_some() && sh.dead.is_none() {
                match remaining(deadline) {
                    None => sh = self.progress.wait(sh).unwrap_or_else(|p| p.into_inner()),
                    Some(left) if left.is_zero() => break,
                    Some(left) => {
                        sh = self
                            .progress
                            .wait_timeout(sh, left)
                            .unwrap_or_else(|p| p.into_inner())
                            .0
                    }
                }
            }
            sh.waiters -= 1;
        });
    }

    /// As the reader: take one complete frame's payload out of the buffer, reading more as
    /// needed until `deadline`. `Ok(None)` on timeout.
    fn read_payload(&self, py: Python<'_>, deadline: Option<Instant>) -> PyResult<Option<Payload>> {
        let limits = self.settings()?.limits;
        let transport = self.transport(py)?;
        let mut buf = std::mem::take(&mut self.lock().rbuf);
        let result = loop {
            let want = match buf.first_chunk::<FRAME_HEADER_LEN>() {
                None => FRAME_HEADER_LEN - buf.len(),
                Some(head) => {
                    let header = match FrameHeader::parse(head, &limits) {
                        Ok(h) => h,
                        Err(e) => break Err(wire_err(e)),
                    };
                    let total = FRAME_HEADER_LEN + header.body_len();
                    if buf.len() >= total {
                        // The trailer byte is dropped unchecked, as upstream does. Only
                        // inflating is worth releasing the GIL for.
                        let body_end = FRAME_HEADER_LEN + header.len as usize;
                        if !header.compressed && buf.len() == total && total >= LARGE_FRAME {
                            // The buffer holds this frame alone: hand it over instead of
                            // copying a large payload out of it.
                            let mut whole = std::mem::take(&mut buf);
                            whole.truncate(body_end);
                            break Ok(Some(Payload::new(whole, FRAME_HEADER_LEN)));
                        }
                        let body = &buf[FRAME_HEADER_LEN..body_end];
                        let payload = if header.compressed {
                            crate::gil::detach(py, || frame::inflate(body, &limits))
                        } else {
                            Ok(body.to_vec())
                        };
                        buf.drain(..total);
                        break payload.map(|p| Some(Payload::new(p, 0))).map_err(wire_err);
                    }
                    total - buf.len()
                }
            };
            match transport.read_into(py, &mut buf, want, remaining(deadline)) {
                Ok(Readable::Data) => continue,
                Ok(Readable::Timeout) => break Ok(None),
                Ok(Readable::Eof) if buf.is_empty() => {
                    break Err(eof_error("connection closed by peer"))
                }
                Ok(Readable::Eof) => {
                    break Err(TruncatedFrame::new_err(format!(
                    "connection closed by peer in the middle of a frame ({} bytes of it received)",
                    buf.len()
                )))
                }
                Err(e) => break Err(e),
            }
        };
        self.lock().rbuf = buf;
        result
    }

    /// As the reader: read and process at most one frame.
    fn serve_one(&self, slf: &Bound<'_, Engine>, deadline: Option<Instant>) -> PyResult<Step> {
        let py = slf.py();
        if let Some(e) = self.dead_error() {
            return Err(e);
        }
        let payload = match self.read_payload(py, deadline) {
            Ok(Some(p)) => p,
            Ok(None) => return Ok(Step::Idle),
            Err(e) => {
                self.fail(py, &e);
                return Err(e);
            }
        };
        let res = self.process(slf, payload.bytes(), self.settings()?.bind_threads);
        self.advance(&mut self.lock());
        match res {
            Ok(Some(work)) => Ok(Step::Work(work)),
            Ok(None) => Ok(Step::Done),
            Err(e) => {
                if e.is_instance_of::<ProtocolError>(py) {
                    self.fail(py, &e);
                }
                Err(e)
            }
        }
    }

    /// As a waiting thread: read frames until the answer to `seq` is in, its deadline
    /// passes, or a frame needs Python (returned as work to run before waiting again).
    fn wait_reply(&self, slf: &Bound<'_, Engine>, seq: u64) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let awaited = match self.lock().pending.get(&seq) {
            Some(Slot::Sync { deadline, .. }) => Some(*deadline),
            _ => None,
        };
        let deadline = match awaited {
            Some(deadline) => deadline,
            // Closed meanwhile (e.g. the work we ran was the peer's CLOSE).
            _ => {
                return Err(self.dead_error().unwrap_or_else(|| {
                    PyValueError::new_err(format!("no request {seq} is awaited"))
                }))
            }
        };
        let nudging = self.upstream_over_tls()?; // see `upstream_over_tls`
        let mut quiet_for = NUDGE_AFTER;
        loop {
            if let Some(outcome) = self.take_outcome(seq) {
                return outcome;
            }
            if let Some(e) = self.dead_error() {
                self.forget(seq);
                return Err(e);
            }
            if matches!(remaining(deadline), Some(d) if d.is_zero()) {
                self.forget(seq);
                return Err(PyTimeoutError::new_err("result expired"));
            }
            py.check_signals()?;
            let seen = self.lock().generation;
            if self.try_become_reader() {
                let read_until = if nudging {
                    let nudge_at = Instant::now() + quiet_for;
                    Some(deadline.map_or(nudge_at, |d| d.min(nudge_at)))
                } else {
                    deadline
                };
                let res = self.serve_one(slf, read_until);
                self.release_reader_unless_delivering(&res);
                match res {
                    Ok(Step::Work(kind)) => {
                        let work = Work::new(kind).with_resume(seq);
                        return Ok(Py::new(py, work)?.into_any());
                    }
                    Ok(Step::Idle) if nudging => {
                        if let Ok(Transport::Tls(session)) = self.transport(py) {
                            if crate::gil::detach(py, move || session.nudge()) {
                                quiet_for = (quiet_for * 2).min(NUDGE_MAX);
                            }
                        }
                    }
                    Ok(_) => quiet_for = NUDGE_AFTER,
                    Err(e) => {
                        if let Some(outcome) = self.take_outcome(seq) {
                            return outcome;
                        }
                        self.forget(seq);
                        return Err(e);
                    }
                }
            } else {
                self.wait_progress(py, seen, deadline);
            }
        }
    }

    /// Whether the peer is (or may be) upstream over TLS. Such a peer gets its releases one
    /// by one, answered by Python, and may need nudging while we wait: upstream
    /// over OpenSSL polls the socket before each frame, and a frame that OpenSSL read along
    /// with the previous one (two of ours in one read) stays unseen until more bytes arrive.
    /// A waiting thread that hears nothing for `NUDGE_AFTER` sends a TLS 1.3 KeyUpdate,
    /// which wakes that poll (then at growing intervals, up to `NUDGE_MAX`).
    fn upstream_over_tls(&self) -> PyResult<bool> {
        Ok(self.settings()?.carrier == Carrier::Tls && !self.rpyc_rs_peer.load(Ordering::Relaxed))
    }

    /// The connection cannot continue (EOF, I/O error, hostile bytes): wake everyone and
    /// shut the transport so the peer sees the connection end.
    fn fail(&self, py: Python<'_>, e: &PyErr) {
        self.mark_dead(describe(py, e));
        if let Ok(t) = self.transport(py) {
            t.shutdown(py);
        }
    }

    /// Decode one frame's payload (with the thread prefix when `bind_threads`): file a
    /// reply, or return the work it asks of Python.
    fn process(
        &self,
        slf: &Bound<'_, Engine>,
        payload: &[u8],
        bind_threads: bool,
    ) -> PyResult<Option<WorkKind>> {
        let py = slf.py();
        let max_depth = self.settings()?.limits.max_nesting_depth;
        let Some(env) =
            message::read_envelope(payload, bind_threads, max_depth).map_err(wire_err)?
        else {
            // Upstream treats an empty payload as "nothing arrived".
            return Ok(None);
        };
        let peer_thread = env.threads.map_or(0, |(sender, _)| sender);
        let mut cur = Cursor::at(message::message_bytes(payload, bind_threads), env.body);
        let conn = slf.as_any();
        let base = netref_base(py)?;
        let ctx = self.box_ctx(conn, base)?;
        if env.msg_type == MSG_REQUEST {
            // Upstream answers an unknown handler (of any type) with KeyError(handler).
            let (handler_id, args) = match env.handler_id() {
                Some(id) => match ctx.unbox(&mut cur, message::ARGS_LEVEL) {
                    Err(e) if e.is_instance_of::<ProtocolError>(py) => return Err(e),
                    args => (id, args),
                },
                None => {
                    brine::read(&mut cur, message::ARGS_LEVEL, max_depth, &mut Skip)
                        .map_err(wire_err)?;
                    let handler = value_to_py(py, env.handler.as_ref(), max_depth)?;
                    (-1, Err(PyKeyError::new_err((handler,))))
                }
            };
            // Extra bytes after the arguments: the request is refused (its frame is intact,
            // so the connection goes on; upstream would ignore them).
            let args = args.and_then(|a| cur.finish().map(|()| a).map_err(wire_err));
            if handler_id == handler::DEL {
                if let Ok(a) = &args {
                    if self.serve_release(conn, peer_thread, &env.seq, a.bind(py))? {
                        return Ok(None);
                    }
                }
            }
            return Ok(Some(WorkKind::Request {
                seq: env.seq,
                handler: handler_id,
                args: Mutex::new(Some(args)),
                peer: peer_thread,
            }));
        }
        let seq = env.seq.as_i64().and_then(|s| u64::try_from(s).ok());
        let exception = env.msg_type == MSG_EXCEPTION;
        let outcome = if !exception {
            // Unboxed even when nobody waits: the proxies it holds must be released
            // (DEL), or the peer would keep their objects.
            ctx.unbox(&mut cur, message::ANSWER_LEVEL)
        } else {
            let raw = brine::read(
                &mut cur,
                message::ANSWER_LEVEL,
                max_depth,
                &mut PySink::new(py),
            )?;
            let awaited = seq.is_some_and(|s| self.lock().pending.contains_key(&s));
            if awaited {
                // A peer's odd exception description is the waiter's error, not ours.
                conn.call_method1(intern!(py, "_unpack_exception"), (raw,))
                    .map(Bound::unbind)
            } else {
                // Not unpacked: that costs a class per exception name a peer invents.
                Ok(py.None())
            }
        };
        let outcome = match outcome {
            Err(e) if e.is_instance_of::<ProtocolError>(py) => return Err(e),
            // Extra bytes after the body: refused, for the waiter (as for a request).
            Ok(v) => cur.finish().map(|()| v).map_err(wire_err),
            // A well-formed reply of the wrong shape: the waiter gets the error.
            Err(e) => Err(e),
        };
        let Some(seq) = seq else {
            return Ok(None);
        };
        self.deliver(py, seq, exception, outcome)
    }

    /// Hand an answer to whoever waits for `seq` (answers nobody waits for are dropped).
    fn deliver(
        &self,
        py: Python<'_>,
        seq: u64,
        is_exc: bool,
        outcome: PyResult<Py<PyAny>>,
    ) -> PyResult<Option<WorkKind>> {
        let mut sh = self.lock();
        match sh.pending.get_mut(&seq) {
            Some(Slot::Sync {
                outcome: parked, ..
            }) => {
                *parked = Some(match outcome {
                    Ok(obj) if is_exc => Err(PyErr::from_value(obj.into_bound(py))),
                    other => other,
                });
                Ok(None)
            }
            Some(Slot::Async(_)) => {
                let Some(Slot::Async(callback)) = sh.pending.remove(&seq) else {
                    return Ok(None);
                };
                drop(sh);
                let (is_exc, obj) = match outcome {
                    Ok(obj) => (is_exc, obj),
                    Err(e) => (true, e.into_value(py).into_any()),
                };
                Ok(Some(WorkKind::Deliver {
                    callback,
                    is_exc,
                    obj,
                }))
            }
            None => {
                drop(sh);
                drop(outcome);
                Ok(None)
            }
        }
    }

    /// Append an EXCEPTION message for `exc` (serialized by the connection's vinegar).
    fn put_exception(
        &self,
        conn: &Bound<'_, PyAny>,
        buf: &mut Vec<u8>,
        seq: &Value,
        exc: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let py = conn.py();
        let start = buf.len();
        let raw = conn.call_method1(intern!(py, "_dump_exception"), (exc,))?;
        let max_depth = self.settings()?.limits.max_nesting_depth;
        message::write_answer_head(buf, true, seq, max_depth).map_err(wire_err)?;
        let mut enc = Encoder::new(buf, max_depth);
        if let Err(err) = enc.value(&raw, message::ANSWER_LEVEL) {
            buf.truncate(start);
            return Err(err.into_pyerr(&raw));
        }
        Ok(())
    }

    fn request_of(work: &Work) -> PyResult<(&Value, u64)> {
        match &work.kind {
            WorkKind::Request { seq, peer, .. } => Ok((seq, *peer)),
            WorkKind::Deliver { .. } => Err(PyValueError::new_err("not a request")),
        }
    }

    /// Send a request; its answer goes to `slot` (`None`: the answer is not awaited and is
    /// dropped on arrival, as every answer nobody waits for). Returns the seq.
    fn send_request(
        &self,
        slf: &Bound<'_, Engine>,
        handler_id: i64,
        args: &Bound<'_, PyTuple>,
        slot: Option<Slot>,
    ) -> PyResult<u64> {
        let py = slf.py();
        if let Some(e) = self.dead_error() {
            return Err(e);
        }
        let base = netref_base(py)?;
        let ctx = self.box_ctx(slf.as_any(), base)?;
        let (seq, framed) = self.encode_request(py, &ctx, handler_id, args)?;
        if let Some(slot) = slot {
            let max = self.settings()?.max_pending_requests;
            let mut sh = self.lock();
            if sh.pending.len() >= max {
                drop(sh);
                ctx.undo();
                return Err(PyRuntimeError::new_err(format!(
                    "another request would exceed max_pending_requests={max} ({max} requests \
                     of this connection await answers; raise the max_pending_requests config \
                     key to allow more)"
                )));
            }
            sh.pending.insert(seq, slot);
        }
        if let Err(e) = self.write_frame(py, &framed) {
            self.forget(seq);
            return Err(e);
        }
        Ok(seq)
    }

    /// A sealed REPLY carrying `value` for request `seq` of thread `peer`.
    fn reply_frame(
        &self,
        conn: &Bound<'_, PyAny>,
        peer: u64,
        seq: &Value,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<Outgoing> {
        let py = conn.py();
        let ctx = self.box_ctx(conn, netref_base(py)?)?;
        let mut out = self.begin_payload(peer)?;
        let max_depth = self.settings()?.limits.max_nesting_depth;
        message::write_answer_head(&mut out.buf, false, seq, max_depth).map_err(wire_err)?;
        match ctx
            .put_boxed(&mut out, value, message::ANSWER_LEVEL)
            .and_then(|()| self.seal_frame(py, out))
        {
            Ok(framed) => Ok(framed),
            Err(e) => {
                // A reply that cannot be encoded (or sent: too large, object table full)
                // becomes an exception reply instead of killing the connection.
                ctx.undo();
                self.exception_frame(conn, peer, seq, e.value(py).as_any())
            }
        }
    }

    /// `HANDLE_DEL` served without Python: the peer dropped `count` references to `obj`.
    /// Upstream peers get their `None` answer (they keep a callback until it comes); rpyc-rs
    /// peers that said they need none (`quiet_del`) do not. False if `args` is not of the
    /// expected shape (Python then serves the request and reports the error), or for an
    /// upstream peer over TLS (see `_set_rpyc_rs_peer`).
    fn serve_release(
        &self,
        conn: &Bound<'_, PyAny>,
        peer: u64,
        seq: &Value,
        args: &Bound<'_, PyAny>,
    ) -> PyResult<bool> {
        if self.upstream_over_tls()? {
            return Ok(false); // see `_set_rpyc_rs_peer`
        }
        let Ok(args) = args.cast::<PyTuple>() else {
            return Ok(false);
        };
        let count = match args.len() {
            1 => 1,
            2 => match args.get_item(1)?.extract::<u64>() {
                Ok(n) => n,
                Err(_) => return Ok(false),
            },
            _ => return Ok(false),
        };
        let Ok((_, key)) = crate::codec::id_pack::id_pack_of(&args.get_item(0)?) else {
            return Ok(false);
        };
        drop(self.objects.decref(key, count));
        if self.answer_dels.load(Ordering::Relaxed) {
            let framed =
                self.reply_frame(conn, peer, seq, &conn.py().None().into_bound(conn.py()))?;
            // A failed write has ended the connection; the reader notices.
            let _ = self.write_frame(conn.py(), &framed);
        }
        Ok(true)
    }

    /// A sealed request frame with a fresh sequence number (boxing undone if it fails).
    fn encode_request(
        &self,
        py: Python<'_>,
        ctx: &BoxCtx<'_, '_>,
        handler_id: i64,
        args: &Bound<'_, PyTuple>,
    ) -> PyResult<(u64, Outgoing)> {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let mut out = self.begin_payload(threads::current_peer())?;
        message::write_request_head(&mut out.buf, seq, handler_id);
        match ctx
            .put_boxed(&mut out, args.as_any(), message::ARGS_LEVEL)
            .and_then(|()| self.seal_frame(py, out))
        {
            Ok(framed) => Ok((seq, framed)),
            Err(e) => {
                ctx.undo();
                Err(e)
            }
        }
    }

    /// A sealed EXCEPTION answer to `seq`: `exc`, or the reason why `exc` cannot be sent
    /// (arguments nested too deep, too large): the request must get an answer.
    fn exception_frame(
        &self,
        conn: &Bound<'_, PyAny>,
        peer: u64,
        seq: &Value,
        exc: &Bound<'_, PyAny>,
    ) -> PyResult<Outgoing> {
        let py = conn.py();
        let first = self.begin_payload(peer).and_then(|mut out| {
            self.put_exception(conn, &mut out.buf, seq, exc)?;
            self.seal_frame(py, out)
        });
        first.or_else(|why| {
            // From `_reply_exception` this is raised while Python handles `exc`, so CPython
            // chained `exc` to it as its context, whose text would go along: the very thing
            // that did not fit.
            let why = why.value(py);
            why.setattr(intern!(py, "__context__"), py.None())?;
            let mut out = self.begin_payload(peer)?;
            self.put_exception(conn, &mut out.buf, seq, why.as_any())?;
            self.seal_frame(py, out)
        })
    }

    fn take_outcome(&self, seq: u64) -> Option<PyResult<Py<PyAny>>> {
        let mut sh = self.lock();
        if let Some(Slot::Sync {
            outcome: Some(_), ..
        }) = sh.pending.get(&seq)
        {
            if let Some(Slot::Sync { outcome, .. }) = sh.pending.remove(&seq) {
                return outcome;
            }
        }
        None
    }

    fn forget(&self, seq: u64) {
        let dropped = self.lock().pending.remove(&seq);
        drop(dropped);
    }
}

/// The message of a Python exception.
fn describe(py: Python<'_>, e: &PyErr) -> String {
    e.value(py)
        .str()
        .map(|s| s.to_string())
        .unwrap_or_else(|_| "connection failed".into())
}

fn frame_len(n: usize) -> PyResult<u32> {
    u32::try_from(n).map_err(|_| {
        wire_err(WireError::FrameTooLarge {
            size: n as u64,
            max: u32::MAX as usize,
        })
    })
}

/// A decoded value as the Python object it stands for (rare: a handler that is not an
/// integer, for the `KeyError` upstream answers it with).
fn value_to_py(py: Python<'_>, v: Option<&Value>, max_depth: usize) -> PyResult<Py<PyAny>> {
    match v {
        Some(v) => crate::codec::py_sink::load(py, &brine::to_vec(v), max_depth),
        None => Ok(py.None()),
    }
}

#[pymethods]
impl Engine {
    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn new(_args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyDict>>) -> Self {
        Engine {
            settings: OnceLock::new(),
            config: OnceLock::new(),
            transport: Mutex::new(None),
            objects: ObjectTable::default(),
            shared: Mutex::new(Shared::default()),
            progress: Condvar::new(),
            send_gate: Gate::default(),
            releases: Releases::default(),
            answer_dels: AtomicBool::new(true),
            rpyc_rs_peer: AtomicBool::new(false),
            next_seq: AtomicU64::new(0),
            closed: AtomicBool::new(false),
        }
    }

    /// Attach the transport and read the fixed settings from `config`. `native` is what the
    /// stream offers the engine to drive directly (see `Transport::attach`); without it
    /// `stream` is driven through Python.
    #[pyo3(signature = (stream, config, native=None, compress=true))]
    fn _engine_start(
        &self,
        stream: &Bound<'_, PyAny>,
        config: &Bound<'_, PyDict>,
        native: Option<&Bound<'_, PyAny>>,
        compress: bool,
    ) -> PyResult<()> {
        let busy_poll = Duration::from_micros(config_size(
            config,
            "busy_poll_us",
            DEFAULT_BUSY_POLL_US,
        )? as u64);
        let transport = Transport::attach(stream, native, busy_poll)?;
        let carrier = match &transport {
            Transport::Socket(_) => Carrier::Socket,
            Transport::Tls(_) => Carrier::Tls,
            Transport::Python(_) => Carrier::Python,
        };
        let defaults = Limits::default();
        let compress_threshold = if compress {
            match config.get_item("compression_threshold")? {
                Some(v) if v.is_none() => None,
                Some(v) => Some(v.extract::<usize>()?),
                None => Some(rpyc_wire::consts::COMPRESSION_THRESHOLD),
            }
        } else {
            None
        };
        let settings = Settings {
            carrier,
            bind_threads: config_bool(config, "bind_threads", false)?,
            compress_threshold,
            compress_level: config_size(config, "compression_level", COMPRESSION_LEVEL as usize)?
                as u32,
            limits: Limits {
                max_frame_size: config_size(config, "max_frame_size", defaults.max_frame_size)?,
                max_decompressed_size: config_size(
                    config,
                    "max_decompressed_size",
                    defaults.max_decompressed_size,
                )?,
                max_nesting_depth: config_size(
                    config,
                    "max_nesting_depth",
                    defaults.max_nesting_depth,
                )?,
            },
            max_pending_requests: config_size(
                config,
                "max_pending_requests",
                DEFAULT_MAX_PENDING_REQUESTS,
            )?,
            max_local_objects: config_size(config, "max_local_objects", DEFAULT_MAX_LOCAL_OBJECTS)?,
            send_stall: config_seconds(
                config,
                "send_stall_timeout",
                Some(DEFAULT_SEND_STALL_TIMEOUT),
            )?,
        };
        if self.settings.set(settings).is_err() {
            return Err(PyValueError::new_err("connection engine already started"));
        }
        let _ = self.config.set(config.clone().unbind());
        *self.transport.lock().unwrap_or_else(|p| p.into_inner()) = Some(transport);
        Ok(())
    }

    /// Send a request and wait for its answer (serving whatever arrives meanwhile). Returns
    /// the answer, or a `Work` the caller must run before calling `_wait_reply(work.resume)`.
    fn _sync_request(
        slf: &Bound<'_, Engine>,
        handler_id: i64,
        args: &Bound<'_, PyTuple>,
    ) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let this = slf.get();
        let timeout: Option<f64> = match this.config.get() {
            Some(cfg) => match cfg.bind(py).get_item(intern!(py, "sync_request_timeout"))? {
                Some(v) if !v.is_none() => Some(v.extract()?),
                _ => None,
            },
            None => None,
        };
        let slot = Slot::Sync {
            outcome: None,
            deadline: deadline_after(timeout),
        };
        let seq = this.send_request(slf, handler_id, args, Some(slot))?;
        this.wait_reply(slf, seq)
    }

    /// Resume waiting for the answer to request `seq` (after running a `Work`).
    fn _wait_reply(slf: &Bound<'_, Engine>, seq: u64) -> PyResult<Py<PyAny>> {
        slf.get().wait_reply(slf, seq)
    }

    /// Answer the request `work` with `value` (kept alive until the reply is written: if it
    /// is a proxy of the peer's object, dropping it first would send the peer a DEL before
    /// the reply that references it).
    fn _reply(
        slf: &Bound<'_, Engine>,
        work: &Bound<'_, Work>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        work.get().leave();
        let (seq, peer) = Self::request_of(work.get())?;
        let framed = this.reply_frame(slf.as_any(), peer, seq, value)?;
        this.write_frame(py, &framed)
    }

    /// Answer the request `work` with the exception `exc`.
    fn _reply_exception(
        slf: &Bound<'_, Engine>,
        work: &Bound<'_, Work>,
        exc: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        work.get().leave();
        let (seq, peer) = Self::request_of(work.get())?;
        let framed = this.exception_frame(slf.as_any(), peer, seq, exc)?;
        this.write_frame(py, &framed)
    }

    /// Send a request whose answer is passed to `callback(is_exc, obj)`; `None` drops it.
    #[pyo3(signature = (handler_id, args, callback=None))]
    fn _async_request(
        slf: &Bound<'_, Engine>,
        handler_id: i64,
        args: &Bound<'_, PyTuple>,
        callback: Option<Py<PyAny>>,
    ) -> PyResult<()> {
        slf.get()
            .send_request(slf, handler_id, args, callback.map(Slot::Async))
            .map(|_| ())
    }

    /// `HANDLE_DEL` for a proxy that died: `count` references to it were received. Over a
    /// native transport the frame is held back to travel with the next write (see
    /// `releases`); nothing waits for an answer either way.
    fn _release(
        slf: &Bound<'_, Engine>,
        proxy: &Bound<'_, PyAny>,
        count: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let args = PyTuple::new(py, [proxy, count])?;
        let holds = match this.settings()?.carrier {
            Carrier::Socket => true,
            Carrier::Tls => this.rpyc_rs_peer.load(Ordering::Relaxed),
            Carrier::Python => false,
        };
        if !holds {
            return this
                .send_request(slf, handler::DEL, &args, None)
                .map(|_| ());
        }
        if let Some(e) = this.dead_error() {
            return Err(e);
        }
        let base = netref_base(py)?;
        let ctx = this.box_ctx(slf.as_any(), base)?;
        let (_, framed) = this.encode_request(py, &ctx, handler::DEL, &args)?;
        // A release carries an id_pack, never a large `bytes`: nothing is spliced in.
        match this.releases.hold(&framed.buf) {
            Hold::Held => Ok(()),
            Hold::Schedule if releases::schedule(slf.clone().unbind()) => Ok(()),
            Hold::Schedule | Hold::Full => this.write_frame(py, &Outgoing::default()),
        }
    }

    /// Serve one incoming frame if one arrives within `timeout` seconds (None = forever).
    /// If another thread is reading, wait (when `wait_for_lock`) for it to make progress.
    /// `waiting()` returning false means the caller's condition is already met. Returns
    /// whether a frame was processed, or the `Work` it asks of Python.
    #[pyo3(signature = (timeout=Some(1.0), wait_for_lock=true, waiting=None))]
    fn _serve(
        slf: &Bound<'_, Engine>,
        timeout: Option<f64>,
        wait_for_lock: bool,
        waiting: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let this = slf.get();
        let deadline = deadline_after(timeout);
        let seen = this.lock().generation;
        let as_bool = |b: bool| -> PyResult<Py<PyAny>> {
            Ok(pyo3::types::PyBool::new(py, b)
                .to_owned()
                .into_any()
                .unbind())
        };
        if let Some(w) = waiting {
            if !w.call0()?.is_truthy()? {
                return as_bool(false);
            }
        }
        if this.try_become_reader() {
            let res = this.serve_one(slf, deadline);
            this.release_reader_unless_delivering(&res);
            return match res? {
                Step::Work(kind) => Ok(Py::new(py, Work::new(kind))?.into_any()),
                Step::Done => as_bool(true),
                Step::Idle => as_bool(false),
            };
        }
        if let Some(e) = this.dead_error() {
            return Err(e);
        }
        if wait_for_lock {
            this.wait_progress(py, seen, deadline);
        }
        as_bool(false)
    }

    /// Stop the engine: wake every waiter with EOF, shut the transport, drop local objects.
    fn _engine_close(&self, py: Python<'_>) {
        self.closed.store(true, Ordering::SeqCst);
        self.mark_dead("connection closed".into());
        let transport = self
            .transport
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(t) = transport {
            t.shutdown(py);
        }
        let pending: Vec<Slot> = self.lock().pending.drain().map(|(_, s)| s).collect();
        drop(pending);
        drop(self.releases.take());
        drop(self.objects.take_all());
    }

    /// Whether reads force immediate TCP acknowledgements (off for rpyc-rs peers, which
    /// send with Nagle's algorithm off; see `rpyc.core.extensions`).
    fn _set_quick_ack(&self, py: Python<'_>, on: bool) -> PyResult<()> {
        self.transport(py)?.set_quick_ack(on);
        Ok(())
    }

    /// Whether the peer's `HANDLE_DEL`s get answers (off for rpyc-rs peers that need none).
    fn _set_answer_dels(&self, on: bool) {
        self.answer_dels.store(on, Ordering::Relaxed);
    }

    /// Mark the peer as rpyc-rs. Such a peer reads every frame that arrives, even several
    /// in one TLS read, so over TLS too releases may wait for the next frame and `HANDLE_DEL`
    /// is answered natively. Upstream over OpenSSL polls the socket before each frame and
    /// misses a frame that OpenSSL already read along with the previous one: over TLS it gets
    /// its frames one by one, at the pace of Python code, as it always did.
    fn _set_rpyc_rs_peer(&self, on: bool) {
        self.rpyc_rs_peer.store(on, Ordering::Relaxed);
    }

    /// End the reader role handed over with a `Work` that delivers an answer.
    fn _release_reader(&self) {
        self.release_reader();
    }

    /// Process one message payload (`msg_type | brine((seq, body))`, decompressed, without
    /// a thread prefix) as if it had just been received: a reply is filed for its waiter; a
    /// request, or an answer for a callback, is returned as the `Work` to run (as `_serve`
    /// does). Requests injected this way are answered to the peer's unbound thread.
    fn _engine_dispatch(slf: &Bound<'_, Engine>, data: &[u8]) -> PyResult<Option<Py<Work>>> {
        let py = slf.py();
        let this = slf.get();
        if let Some(e) = this.dead_error() {
            return Err(e);
        }
        // Hold the reader role if it is free (or ours), as a frame read from the socket
        // would be processed; when another thread reads, process without it (a `Deliver`
        // handed out then has no role to release, which `_release_reader` tolerates).
        let reading = this.try_become_reader();
        let res = this.process(slf, data, false);
        this.advance(&mut this.lock());
        if reading && !matches!(res, Ok(Some(WorkKind::Deliver { .. }))) {
            this.release_reader();
        }
        match res {
            Ok(Some(kind)) => Ok(Some(Py::new(py, Work::new(kind))?)),
            Ok(None) => Ok(None),
            Err(e) => {
                if e.is_instance_of::<ProtocolError>(py) {
                    this.fail(py, &e);
                }
                Err(e)
            }
        }
    }

    /// Number of local objects the peer holds references to.
    fn _local_objects_len(&self) -> usize {
        self.objects.len()
    }

    fn _local_object_keys(&self) -> Vec<(u64, u64)> {
        self.objects.keys()
    }

    /// `HANDLE_DEL`: the peer dropped `count` references to `obj`.
    fn _decref_local(&self, obj: &Bound<'_, PyAny>, count: u64) -> PyResult<()> {
        let (_, key) = crate::codec::id_pack::id_pack_of(obj)?;
        drop(self.objects.decref(key, count));
        Ok(())
    }

    /// The local object the peer knows under `(class_id, instance_id)`.
    fn _local_object_by_key(
        &self,
        py: Python<'_>,
        class_id: u64,
        instance_id: u64,
    ) -> PyResult<Py<PyAny>> {
        self.objects
            .get(py, (class_id, instance_id))
            .ok_or_else(|| pyo3::exceptions::PyKeyError::new_err(((class_id, instance_id),)))
    }

    #[getter]
    fn _engine_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Whether the connection can no longer be used: closed, or ended by the peer, an I/O
    /// error or a protocol error.
    #[getter]
    fn _engine_dead(&self) -> bool {
        self.lock().dead.is_some()
    }
}

/// Registers `rpyc.core.netref.BaseNetref` (called once by that module).
#[pyfunction]
pub fn register_netref_base(py: Python<'_>, cls: Bound<'_, PyType>) -> PyResult<()> {
    let _ = NETREF_BASE.set(py, cls.unbind());
    Ok(())
}
