//! Work the engine hands back to Python instead of running it itself: an incoming request to
//! serve, or an answer to pass to an `AsyncResult`.
//!
//! The engine never calls user code from inside its own frames: a daemon thread that is
//! ended by interpreter shutdown while in user code (which may release the GIL anywhere)
//! must not unwind through Rust frames, which aborts the process.

use crate::stats::Stats;
use crate::threads;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// One request handed to Python and not yet answered, counted in its engine's
/// `in_flight` until it is answered or its `Work` is dropped unanswered. A draining server
/// reads the count (`Engine._engine_serving`) to tell an idle connection, which it may
/// close, from one still serving a call. Answering also records the request's latency
/// (`stats::Stats::served`).
pub struct InFlight {
    stats: Arc<Stats>,
    handler: i64,
    /// When the request arrived (before its arguments were unboxed).
    since: Instant,
    /// Set by `answered`: the count was given back, the latency recorded. (A flag rather
    /// than an `Option` under a mutex: the work is shared, and this is every request's cost.)
    done: AtomicBool,
}

impl InFlight {
    pub fn new(stats: &Arc<Stats>, handler: i64, since: Instant) -> Self {
        stats.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight {
            stats: Arc::clone(stats),
            handler,
            since,
            done: AtomicBool::new(false),
        }
    }

    /// The answer was sent (or could not be): record the latency once, stop counting.
    fn answered(&self) {
        if !self.done.swap(true, Ordering::AcqRel) {
            self.stats.served(self.handler, self.since.elapsed());
            self.stats.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        // Dropped unanswered (a CLOSE request, a connection torn down): not a served call.
        if !*self.done.get_mut() {
            self.stats.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

pub enum WorkKind {
    /// A request from the peer: run handler `handler` on `args` and answer `seq`.
    Request {
        seq: rpyc_wire::brine::Value,
        handler: i64,
        /// The unboxed argument tuple, or why it could not be unboxed.
        args: Mutex<Option<PyResult<Py<PyAny>>>>,
        /// The peer thread that sent it (`bind_threads`): the recipient of the answer.
        peer: u64,
        /// Counts the request as in flight until `answered` (or the work is dropped).
        in_flight: InFlight,
    },
    /// An answer for an asynchronous request: call `callback(is_exc, obj)`.
    Deliver {
        callback: Py<PyAny>,
        is_exc: bool,
        obj: Py<PyAny>,
    },
}

#[pyclass(module = "rpyc._core", frozen)]
pub struct Work {
    pub kind: WorkKind,
    /// The synchronous request the handing-out thread was waiting for, to resume after.
    pub resume: Option<u64>,
    /// Whether `enter` marked the serving thread (and `leave` has not yet unmarked it).
    serving: AtomicBool,
}

impl Work {
    pub fn new(kind: WorkKind) -> Self {
        Work {
            kind,
            resume: None,
            serving: AtomicBool::new(false),
        }
    }

    pub fn with_resume(mut self, seq: u64) -> Self {
        self.resume = Some(seq);
        self
    }

    /// Mark this thread as serving the request (nested requests go to the peer's thread).
    pub fn enter(&self) {
        if let WorkKind::Request { peer, .. } = &self.kind {
            if !self.serving.swap(true, Ordering::AcqRel) {
                threads::enter_serving(*peer);
            }
        }
    }

    /// The request's answer was sent (or could not be): it no longer counts as in flight.
    pub fn answered(&self) {
        if let WorkKind::Request { in_flight, .. } = &self.kind {
            in_flight.answered();
        }
    }
}

#[pymethods]
impl Work {
    #[getter]
    fn is_request(&self) -> bool {
        matches!(self.kind, WorkKind::Request { .. })
    }

    #[getter]
    fn handler(&self) -> Option<i64> {
        match &self.kind {
            WorkKind::Request { handler, .. } => Some(*handler),
            WorkKind::Deliver { .. } => None,
        }
    }

    /// The request's arguments; raises what unboxing them raised (once).
    #[getter]
    fn args(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        match &self.kind {
            WorkKind::Request { args, .. } => args
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
                .unwrap_or_else(|| Err(PyRuntimeError::new_err("request arguments already taken")))
                .map(|a| a.clone_ref(py)),
            WorkKind::Deliver { .. } => Err(PyRuntimeError::new_err("not a request")),
        }
    }

    /// The request's sequence number, when it is an integer (what the peer quotes to cancel
    /// it); `None` for an answer, or a peer's odd seq.
    #[getter]
    fn seq(&self) -> Option<i64> {
        match &self.kind {
            WorkKind::Request { seq, .. } => seq.as_i64(),
            WorkKind::Deliver { .. } => None,
        }
    }

    #[getter]
    fn callback(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        match &self.kind {
            WorkKind::Deliver { callback, .. } => Some(callback.clone_ref(py)),
            WorkKind::Request { .. } => None,
        }
    }

    #[getter]
    fn is_exc(&self) -> bool {
        matches!(self.kind, WorkKind::Deliver { is_exc: true, .. })
    }

    #[getter]
    fn obj(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        match &self.kind {
            WorkKind::Deliver { obj, .. } => Some(obj.clone_ref(py)),
            WorkKind::Request { .. } => None,
        }
    }

    #[getter]
    fn resume(&self) -> Option<u64> {
        self.resume
    }

    /// Start serving the request: `enter`, then take the arguments (raising what unboxing
    /// them raised). `Engine._reply` and `_reply_exception` `leave`.
    fn begin(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.enter();
        self.args(py)
    }

    /// End the mark of `enter`; a no-op when not marked (so replying may always call it).
    pub fn leave(&self) {
        if self.serving.swap(false, Ordering::AcqRel) {
            threads::leave_serving();
        }
    }
}
