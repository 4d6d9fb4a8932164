//! Reading: the reader role (one thread reads a connection at a time, reentrantly), frames
//! out of the transport under the process's inbound memory budget, and waiting for answers.

use super::{deadline_after, remaining, Engine, Slot};
use crate::errors::{wire_err, ProtocolError, TruncatedFrame};
use crate::io::transport::{eof_error, Transport};
use crate::io::wait::Readable;
use crate::threads;
use crate::work::{Work, WorkKind};
use pyo3::exceptions::{PyTimeoutError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBool;
use rpyc_wire::budget::MemoryBudget;
use rpyc_wire::conn::Config;
use rpyc_wire::frame::{FrameDecoder, Payload};
use rpyc_wire::WireError;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

/// Longest uninterrupted wait for another thread's progress (signals are checked between).
const PROGRESS_SLICE: Duration = Duration::from_millis(100);

/// Silence after which a waiting thread nudges an upstream TLS peer (see
/// `Engine::upstream_over_tls`), and the longest interval between nudges.
const NUDGE_AFTER: Duration = Duration::from_millis(1);
const NUDGE_MAX: Duration = Duration::from_secs(1);

/// How long a connection waits for the inbound memory budget to give room before it fails.
const BUDGET_WAIT: Duration = Duration::from_secs(2);

/// The inbound memory budget shared by every connection of this process.
static BUDGET: LazyLock<Arc<MemoryBudget>> = LazyLock::new(MemoryBudget::new);

/// A connection's frame decoder, drawing on the process's budget.
pub fn frame_decoder(config: &Config) -> FrameDecoder {
    FrameDecoder::with_budget(config.limits, &BUDGET, config.max_inbound_memory)
}

/// Bytes of the process's inbound memory budget in use (`rpyc._core.inbound_memory()`).
#[pyfunction]
pub fn inbound_memory() -> usize {
    BUDGET.used()
}

/// What reading one frame led to.
pub enum Step {
    /// Nothing arrived in time.
    Idle,
    /// A frame was processed entirely (e.g. a reply filed for its waiter).
    Done,
    /// A frame needs Python: a request to serve or an answer for a callback.
    Work(WorkKind),
}

/// Waiting for the budget to give room: since when, and the next pause.
struct BudgetWait {
    since: Instant,
    pause: Duration,
}

impl BudgetWait {
    /// Pause (GIL released) before trying again; the error once waited too long, or
    /// `Ok(false)` once the caller's deadline passed.
    fn pause(
        wait: &mut Option<BudgetWait>,
        py: Python<'_>,
        e: WireError,
        deadline: Option<Instant>,
    ) -> PyResult<bool> {
        let w = wait.get_or_insert(BudgetWait {
            since: Instant::now(),
            pause: Duration::from_millis(1),
        });
        if w.since.elapsed() >= BUDGET_WAIT {
            return Err(wire_err(e));
        }
        let pause = match remaining(deadline) {
            Some(left) if left.is_zero() => return Ok(false),
            Some(left) => w.pause.min(left),
            None => w.pause,
        };
        crate::gil::detach(py, || std::thread::sleep(pause));
        w.pause = (w.pause * 2).min(Duration::from_millis(16));
        Ok(true)
    }
}

impl Engine {
    /// Become (or re-enter as) the reader; false if another thread reads.
    pub(super) fn try_become_reader(&self) -> bool {
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
    pub(super) fn release_reader(&self) {
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
            while sh.generation == seen && sh.reader.is_some() && sh.session.ended().is_none() {
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

    /// As the reader: the next complete frame's payload, reading more as needed until
    /// `deadline` (`Ok(None)` then). Waits (up to `BUDGET_WAIT`) when the process's inbound
    /// memory budget has no room, then fails naming `max_inbound_memory`.
    fn read_payload(&self, py: Python<'_>, deadline: Option<Instant>) -> PyResult<Option<Payload>> {
        let transport = self.transport(py)?;
        let taken = self.lock().frames.take();
        let Some(mut frames) = taken else {
            return Err(eof_error("connection closed"));
        };
        let result = self.read_with(py, &transport, &mut frames, deadline);
        self.lock().frames = Some(frames);
        result
    }

    fn read_with(
        &self,
        py: Python<'_>,
        transport: &Transport,
        frames: &mut FrameDecoder,
        deadline: Option<Instant>,
    ) -> PyResult<Option<Payload>> {
        let mut budget_wait = None;
        loop {
            // Only inflating is worth releasing the GIL for.
            let next = if frames.next_compressed() == Some(true) {
                crate::gil::detach(py, || frames.next_payload())
            } else {
                frames.next_payload()
            };
            match next {
                Ok(Some(payload)) => {
                    self.stats
                        .frame_in(payload.wire_len(), payload.compressed());
                    return Ok(Some(payload));
                }
                Ok(None) => {}
                Err(e @ WireError::MemoryBudget { .. }) => {
                    if !BudgetWait::pause(&mut budget_wait, py, e, deadline)? {
                        return Ok(None);
                    }
                    continue;
                }
                Err(e) => return Err(wire_err(e)),
            }
            let plan = frames.read_plan().map_err(wire_err)?;
            let buf = match frames.prepare_read(plan.chunk) {
                Ok(buf) => buf,
                Err(e) => {
                    if !BudgetWait::pause(&mut budget_wait, py, e, deadline)? {
                        return Ok(None);
                    }
                    continue;
                }
            };
            let read = transport.read_into(py, buf, plan.want, plan.chunk, remaining(deadline));
            frames.settle();
            match read? {
                Readable::Data => budget_wait = None,
                Readable::Timeout => return Ok(None),
                Readable::Eof if frames.buffered() == 0 => {
                    return Err(eof_error("connection closed by peer"))
                }
                Readable::Eof => {
                    return Err(TruncatedFrame::new_err(format!(
                    "connection closed by peer in the middle of a frame ({} bytes of it received)",
                    frames.buffered()
                )))
                }
            }
        }
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
        let bind_threads = self.settings()?.core.bind_threads;
        let res = self.process(slf, &payload, bind_threads);
        drop(payload);
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

    /// `_serve`: one frame as the reader, or waiting for the reading thread's progress.
    pub(super) fn serve(
        &self,
        slf: &Bound<'_, Engine>,
        timeout: Option<f64>,
        wait_for_lock: bool,
        waiting: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let deadline = deadline_after(timeout);
        let seen = self.lock().generation;
        let as_bool = |b: bool| -> Py<PyAny> { PyBool::new(py, b).to_owned().into_any().unbind() };
        if let Some(w) = waiting {
            if !w.call0()?.is_truthy()? {
                return Ok(as_bool(false));
            }
        }
        if self.try_become_reader() {
            let res = self.serve_one(slf, deadline);
            self.release_reader_unless_delivering(&res);
            return match res? {
                Step::Work(kind) => Ok(Py::new(py, Work::new(kind))?.into_any()),
                Step::Done => Ok(as_bool(true)),
                Step::Idle => Ok(as_bool(false)),
            };
        }
        if let Some(e) = self.dead_error() {
            return Err(e);
        }
        if wait_for_lock {
            self.wait_progress(py, seen, deadline);
        }
        Ok(as_bool(false))
    }

    /// As a waiting thread: read frames until the answer to `seq` is in, its deadline
    /// passes, or a frame needs Python (returned as work to run before waiting again).
    pub(super) fn wait_reply(&self, slf: &Bound<'_, Engine>, seq: u64) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let nudging = self.upstream_over_tls()?; // see `upstream_over_tls`
        let mut quiet_for = NUDGE_AFTER;
        loop {
            let deadline = {
                let mut sh = self.lock();
                if let Some(outcome) = sh.outcomes.remove(&seq) {
                    return outcome;
                }
                match sh.session.requests.get(seq) {
                    Some(Slot::Sync { deadline }) => *deadline,
                    // Closed meanwhile (e.g. the work we ran was the peer's CLOSE).
                    _ => {
                        drop(sh);
                        return Err(self.dead_error().unwrap_or_else(|| {
                            PyValueError::new_err(format!("no request {seq} is awaited"))
                        }));
                    }
                }
            };
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
            if !self.try_become_reader() {
                self.wait_progress(py, seen, deadline);
                continue;
            }
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
                    if let Some(outcome) = self.lock().outcomes.remove(&seq) {
                        return outcome;
                    }
                    self.forget(seq);
                    return Err(e);
                }
            }
        }
    }

    /// Stop awaiting `seq` (timed out, or the connection ended).
    pub(super) fn forget(&self, seq: u64) {
        let dropped = {
            let mut sh = self.lock();
            (sh.session.requests.take(seq), sh.outcomes.remove(&seq))
        };
        drop(dropped);
    }
}
