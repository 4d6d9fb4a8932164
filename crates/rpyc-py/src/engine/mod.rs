//! The blocking driver of the connection core: `rpyc_wire::conn` keeps the protocol state
//! (sequence numbers, the pending table, what each frame is, the object table, limits); this
//! engine moves its bytes over sockets, TLS or Python streams with the GIL released, and
//! hands Python what needs Python. The Python `Connection` class subclasses `Engine`.
//!
//! Threading model: no thread hand-off. A thread waiting for a reply reads the socket itself
//! (as "the reader", GIL released while blocked), files replies that belong to other waiting
//! threads into their slots and wakes them, and serves incoming requests inline, which is what
//! makes nested callbacks work. Reader ownership is reentrant so that a request served inline
//! may itself wait for a reply (docs/architecture.md#the-blocking-engine).
//!
//! - `config`: the settings read from the config dict;
//! - `reader`: the reader role, reading frames, waiting for answers;
//! - `feed`: the same for event-loop drivers, which push the bytes in;
//! - `dispatch`: what a received frame asks (a request to serve, an answer to deliver);
//! - `send`: requests, replies and exceptions on their way out.

mod config;
mod dispatch;
mod feed;
mod reader;
mod send;

pub use config::config_defaults;
pub use reader::inbound_memory;

use crate::codec::boxing::BoxCtx;
use crate::errors::ProtocolError;
use crate::io::link::{self, Carrier, Link};
use crate::io::transport::{eof_error, Transport};
use crate::objects::Objects;
use crate::stats::Stats;
use crate::work::{Work, WorkKind};
use config::Settings;
use pyo3::exceptions::PyValueError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};
use rpyc_wire::brine::{self, Value};
use rpyc_wire::conn::hello::Announcement;
use rpyc_wire::conn::Session;
use rpyc_wire::frame::FrameDecoder;
use rustc_hash::FxHashMap as HashMap;
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// `rpyc.core.netref.BaseNetref`, registered by the netref module at import.
pub static NETREF_BASE: PyOnceLock<Py<PyType>> = PyOnceLock::new();

fn netref_base(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    NETREF_BASE
        .get(py)
        .map(|b| b.bind(py))
        .ok_or_else(|| PyValueError::new_err("rpyc.core.netref is not initialised"))
}

/// How a request's answer is to be delivered (what the core's pending table keeps).
enum Slot {
    /// A thread is waiting in `sync_request` until `deadline`; the answer is parked in
    /// `Shared::outcomes` for it.
    Sync { deadline: Option<Instant> },
    /// `AsyncResult`-style callback `f(is_exc, obj)`.
    Async(Py<PyAny>),
}

/// State shared by the threads of a connection, under one short lock.
struct Shared {
    session: Session<Slot>,
    /// Answers for waiting threads, until they take them.
    outcomes: HashMap<u64, PyResult<Py<PyAny>>>,
    /// The frame decoder; the reader takes it out while it reads.
    frames: Option<Box<FrameDecoder>>,
    /// Thread token of the current reader and its reentrancy depth.
    reader: Option<(u64, u32)>,
    /// Bumped whenever a frame was processed or the reader left: waiters re-check.
    generation: u64,
    /// Threads sleeping in `wait_progress`.
    waiters: usize,
}

#[pyclass(module = "rpyc._core", subclass, frozen)]
pub struct Engine {
    settings: OnceLock<Settings>,
    config: OnceLock<Py<PyDict>>,
    link: OnceLock<Arc<Link>>,
    objects: OnceLock<Objects>,
    /// Set once the peer negotiated `by_value`: config `by_value_types`
    /// (docs/by-value.md).
    by_value: OnceLock<Py<PyTuple>>,
    shared: Mutex<Shared>,
    progress: Condvar,
    closed: AtomicBool,
    /// The connection's counters, shared with the requests in flight (`work::InFlight`).
    stats: Arc<Stats>,
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

    fn link(&self) -> PyResult<&Arc<Link>> {
        self.link
            .get()
            .ok_or_else(|| PyValueError::new_err("connection engine not started"))
    }

    fn objects(&self) -> PyResult<&Objects> {
        self.objects
            .get()
            .ok_or_else(|| PyValueError::new_err("connection engine not started"))
    }

    fn transport(&self, py: Python<'_>) -> PyResult<Transport> {
        self.link()?.transport(py)
    }

    fn box_ctx<'a, 'py>(
        &'a self,
        conn: &'a Bound<'py, PyAny>,
        base: &'a Bound<'py, PyType>,
    ) -> PyResult<BoxCtx<'a, 'py>> {
        Ok(BoxCtx {
            conn,
            table: self.objects()?,
            netref_base: base,
            max_depth: self.settings()?.core.limits.max_nesting_depth,
            added: RefCell::new(Vec::new()),
            by_value: self.by_value.get().map(|t| t.bind(conn.py())),
            max_frame: self.settings()?.core.limits.max_frame_size,
        })
    }

    /// The connection ended (`why`): wake every waiter; pending callbacks are dropped after
    /// the lock is released (dropping Python objects may run code).
    fn mark_dead(&self, why: String) {
        let dropped = {
            let mut sh = self.lock();
            let waiters = sh.session.end(why);
            self.advance(&mut sh);
            waiters
        };
        drop(dropped);
    }

    /// Record progress (a frame processed, the reader left, the connection died) and wake the
    /// threads waiting for it. Waking costs a system call, so only when someone waits.
    fn advance(&self, sh: &mut Shared) {
        sh.generation += 1;
        if sh.waiters > 0 {
            self.progress.notify_all();
        }
    }

    /// `EOFError` naming why the connection ended, if it has (a write may have failed
    /// under the flusher thread, which cannot end the session itself).
    fn dead_error(&self) -> Option<PyErr> {
        if let Some(why) = self.lock().session.ended() {
            return Some(eof_error(why));
        }
        let lost = self.link.get().and_then(|l| l.lost())?;
        self.mark_dead(lost.clone());
        Some(eof_error(lost))
    }

    /// The connection cannot continue (EOF, I/O error, hostile bytes): wake everyone and
    /// shut the transport so the peer sees the connection end.
    fn fail(&self, py: Python<'_>, e: &PyErr) {
        self.mark_dead(link::describe(py, e));
        if let Ok(link) = self.link() {
            link.shutdown(py);
        }
    }

    /// Whether the peer is (or may be) upstream over TLS. Such a peer gets its releases one
    /// by one, answered by Python, and may need nudging while we wait: upstream over OpenSSL
    /// polls the socket before each frame, and a frame that OpenSSL read along with the
    /// previous one (two of ours in one read) stays unseen until more bytes arrive.
    fn upstream_over_tls(&self) -> PyResult<bool> {
        Ok(self.link()?.carrier() == Carrier::Tls && !self.lock().session.rpyc_rs_peer())
    }

    fn request_of(work: &Work) -> PyResult<(&Value, u64)> {
        match &work.kind {
            WorkKind::Request { seq, peer, .. } => Ok((seq, *peer)),
            WorkKind::Deliver { .. } => Err(PyValueError::new_err("not a request")),
        }
    }
}

pub fn deadline_after(timeout: Option<f64>) -> Option<Instant> {
    timeout
        .filter(|t| t.is_finite())
        .map(|t| Instant::now() + Duration::from_secs_f64(t.max(0.0)))
}

pub fn remaining(deadline: Option<Instant>) -> Option<Duration> {
    deadline.map(|d| d.saturating_duration_since(Instant::now()))
}

/// A Python object as a core value (for the few values the core itself reads, such as the
/// rpyc-rs hello); `None` when brine cannot carry it.
fn py_to_value(obj: &Bound<'_, PyAny>) -> Option<Value> {
    let mut buf = Vec::new();
    let max_depth = rpyc_wire::Limits::default().max_nesting_depth;
    crate::codec::py_encode::Encoder::new(&mut buf, max_depth)
        .value(obj, 0)
        .ok()?;
    brine::decode(&buf, &rpyc_wire::Limits::default()).ok()
}

#[pymethods]
impl Engine {
    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn new(_args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyDict>>) -> Self {
        Engine {
            settings: OnceLock::new(),
            config: OnceLock::new(),
            link: OnceLock::new(),
            objects: OnceLock::new(),
            by_value: OnceLock::new(),
            shared: Mutex::new(Shared {
                session: Session::new(Default::default()),
                outcomes: HashMap::default(),
                frames: None,
                reader: None,
                generation: 0,
                waiters: 0,
            }),
            progress: Condvar::new(),
            closed: AtomicBool::new(false),
            stats: Arc::new(Stats::default()),
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
        let settings = Settings::read(config, compress)?;
        let transport = Transport::attach(stream, native, settings.busy_poll)?;
        let core = settings.core.clone();
        let link = Link::new(transport, settings.send_stall, Arc::clone(&self.stats));
        if self.settings.set(settings).is_err() {
            return Err(PyValueError::new_err("connection engine already started"));
        }
        let _ = self.config.set(config.clone().unbind());
        let _ = self.link.set(link);
        let _ = self.objects.set(Objects::new(core.max_local_objects));
        let mut sh = self.lock();
        sh.frames = Some(Box::new(reader::frame_decoder(&core)));
        sh.session = Session::new(core);
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
        let framed = this.reply_frame(slf.as_any(), peer, seq, value);
        // Written (or failed): the request is over either way.
        let res = framed.and_then(|f| this.write_frame(py, &f));
        work.get().answered();
        res
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
        let framed = this.exception_frame(slf.as_any(), peer, seq, exc);
        let res = framed.and_then(|f| this.write_frame(py, &f));
        work.get().answered();
        res
    }

    /// Send a request whose answer is passed to `callback(is_exc, obj)`; `None` drops it.
    /// Returns the request's sequence number (for `_forget_request`).
    #[pyo3(signature = (handler_id, args, callback=None))]
    fn _async_request(
        slf: &Bound<'_, Engine>,
        handler_id: i64,
        args: &Bound<'_, PyTuple>,
        callback: Option<Py<PyAny>>,
    ) -> PyResult<u64> {
        slf.get()
            .send_request(slf, handler_id, args, callback.map(Slot::Async))
    }

    /// `HANDLE_DEL` for a proxy that died: `count` references to it were received. Over a
    /// native transport the frame is held back to travel with the next write (see
    /// `io::held`); over a Python stream it never waits for the write gate (see
    /// `Link::write_release`); nothing waits for an answer either way.
    fn _release(
        slf: &Bound<'_, Engine>,
        proxy: &Bound<'_, PyAny>,
        count: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        slf.get().release(slf, proxy, count)
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
        slf.get().serve(slf, timeout, wait_for_lock, waiting)
    }

    /// Stop the engine: wake every waiter with EOF, shut the transport, drop local objects.
    fn _engine_close(&self, py: Python<'_>) {
        self.closed.store(true, Ordering::SeqCst);
        self.mark_dead("connection closed".into());
        if let Some(link) = self.link.get() {
            link.close(py);
        }
        let outcomes: Vec<_> = self.lock().outcomes.drain().collect();
        drop(outcomes);
        if let Some(objects) = self.objects.get() {
            drop(objects.take_all());
        }
    }

    /// Whether reads force immediate TCP acknowledgements (off for rpyc-rs peers, which
    /// send with Nagle's algorithm off; see `rpyc.core.extensions`).
    /// The peer negotiated `by_value` (docs/by-value.md): from now on by-value data may be
    /// sent (`types`: the config's `by_value_types`) and is accepted.
    fn _enable_by_value(&self, types: Bound<'_, PyTuple>) {
        let _ = self.by_value.set(types.unbind());
    }

    fn _set_quick_ack(&self, py: Python<'_>, on: bool) -> PyResult<()> {
        self.transport(py)?.set_quick_ack(on);
        Ok(())
    }

    /// The peer announced itself with the rpyc-rs hello (`ack`: in its answer to ours) in
    /// `data`: the features both sides use from now on (as a sorted tuple), or `None` when
    /// `data` is no such announcement (an upstream peer).
    ///
    /// Such a peer reads every frame that arrives, even several in one TLS read, so over TLS
    /// too releases may wait for the next frame and `HANDLE_DEL` is answered natively.
    /// Upstream over OpenSSL polls the socket before each frame and misses a frame that
    /// OpenSSL already read along with the previous one: over TLS it gets its frames one by
    /// one, at the pace of Python code, as it always did.
    fn _peer_announced(
        &self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        ack: bool,
    ) -> PyResult<Option<Py<PyTuple>>> {
        let kind = if ack {
            Announcement::Ack
        } else {
            Announcement::Hello
        };
        let Some(value) = py_to_value(data) else {
            return Ok(None);
        };
        let mut sh = self.lock();
        if !sh.session.peer_announced(&value, kind) {
            return Ok(None);
        }
        let features = sh.session.peer_features().to_vec();
        drop(sh);
        Ok(Some(PyTuple::new(py, features)?.unbind()))
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

    /// Bytes that arrived (event-loop drivers, see `feed`). False when the process's
    /// inbound memory budget has no room for them now: nothing was taken, offer them again.
    fn _feed(&self, py: Python<'_>, data: &[u8]) -> PyResult<bool> {
        self.feed(py, data)
    }

    /// Process the complete frames fed so far, `heavy` heavy ones at most (0 on the loop's
    /// thread, 1 on a worker thread). Returns the work they ask of Python and why it
    /// stopped: 0 more bytes are needed, 1 a heavy frame is next, 2 the inbound memory
    /// budget is full (try again later).
    #[pyo3(signature = (heavy=0))]
    fn _drain(slf: &Bound<'_, Engine>, heavy: usize) -> PyResult<(Vec<Py<Work>>, u8)> {
        slf.get().drain(slf, heavy)
    }

    /// Bytes received but not yet processed as frames.
    fn _buffered(&self) -> usize {
        self.buffered()
    }

    /// Stop awaiting the answer to request `seq` (cancelled): its late answer is dropped,
    /// its references released, like any answer nobody awaits.
    fn _forget_request(&self, seq: u64) {
        self.forget(seq);
    }

    /// Number of local objects the peer holds references to.
    fn _local_objects_len(&self) -> usize {
        self.objects.get().map_or(0, Objects::len)
    }

    fn _local_object_keys(&self) -> Vec<(u64, u64)> {
        self.objects.get().map_or_else(Vec::new, Objects::keys)
    }

    /// `HANDLE_DEL`: the peer dropped `count` references to `obj`.
    fn _decref_local(&self, obj: &Bound<'_, PyAny>, count: u64) -> PyResult<()> {
        let (_, key) = crate::codec::id_pack::id_pack_of(obj)?;
        drop(self.objects()?.decref(key, count));
        Ok(())
    }

    /// The local object the peer knows under `(class_id, instance_id)`.
    fn _local_object_by_key(
        &self,
        py: Python<'_>,
        class_id: u64,
        instance_id: u64,
    ) -> PyResult<Py<PyAny>> {
        self.objects()?
            .get(py, (class_id, instance_id))
            .ok_or_else(|| pyo3::exceptions::PyKeyError::new_err(((class_id, instance_id),)))
    }

    /// Requests of the peer being served now (handed to Python, not yet answered): a
    /// draining server closes a connection only when this is 0.
    #[getter]
    fn _engine_serving(&self) -> usize {
        self.stats.in_flight.load(Ordering::Acquire)
    }

    /// The connection's counters as a dict (docs/metrics.md), with `objects_held` (our
    /// objects the peer holds) and `pending` (our requests awaiting answers); `latency` is
    /// keyed by handler id (-1: handlers this side does not know).
    fn _engine_stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = self.stats.to_dict(py)?;
        d.set_item("objects_held", self._local_objects_len())?;
        d.set_item("pending", self.lock().session.requests.awaited())?;
        Ok(d)
    }

    #[getter]
    fn _engine_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Whether the connection can no longer be used: closed, or ended by the peer, an I/O
    /// error or a protocol error.
    #[getter]
    fn _engine_dead(&self) -> bool {
        self.dead_error().is_some()
    }
}

/// Registers `rpyc.core.netref.BaseNetref` (called once by that module).
#[pyfunction]
pub fn register_netref_base(py: Python<'_>, cls: Bound<'_, PyType>) -> PyResult<()> {
    let _ = NETREF_BASE.set(py, cls.unbind());
    Ok(())
}
