//! What a received frame asks of us, as the core classified it: a request (for Python to
//! serve, or a release served here), or an answer (filed for its waiting thread, or handed
//! to a callback).

use super::{netref_base, Engine, Slot};
use crate::codec::py_sink::{from_value, PySink};
use crate::errors::{wire_err, ProtocolError};
use crate::work::{InFlight, WorkKind};
use pyo3::exceptions::PyKeyError;
use pyo3::intern;
use pyo3::prelude::*;
use rpyc_wire::brine::{self, Cursor, Skip};
use rpyc_wire::conn::{Answer, Incoming, Request};
use rpyc_wire::consts::handler;
use rpyc_wire::message::{message_bytes, ANSWER_LEVEL, ARGS_LEVEL};
use std::sync::Mutex;
use std::time::Instant;

impl Engine {
    /// Process one frame's payload (with the thread prefix when `bind_threads`): file a
    /// reply, or return the work it asks of Python. A `ProtocolError` ends the connection.
    pub(super) fn process(
        &self,
        slf: &Bound<'_, Engine>,
        payload: &[u8],
        bind_threads: bool,
    ) -> PyResult<Option<WorkKind>> {
        let incoming = self
            .lock()
            .session
            .classify_with(payload, bind_threads)
            .map_err(wire_err)?;
        let message = message_bytes(payload, bind_threads);
        match incoming {
            // Upstream treats an empty payload as "nothing arrived".
            Incoming::Nothing => Ok(None),
            Incoming::Request(request) => self.on_request(slf, message, request),
            Incoming::Answer(answer) => self.on_answer(slf, message, answer),
        }
    }

    fn on_request(
        &self,
        slf: &Bound<'_, Engine>,
        message: &[u8],
        r: Request,
    ) -> PyResult<Option<WorkKind>> {
        // (Served latency counts from here: unboxing the arguments is part of serving.)
        let since = Instant::now();
        let py = slf.py();
        let max_depth = self.settings()?.core.limits.max_nesting_depth;
        let mut cur = Cursor::at(message, r.body);
        // Upstream answers an unknown handler (of any type) with KeyError(handler).
        let (handler_id, args) = match r.handler {
            Ok(id) => {
                if id == handler::DEL && self.serve_release(slf, message, &r)? {
                    return Ok(None);
                }
                let ctx = self.box_ctx(slf.as_any(), netref_base(py)?)?;
                match ctx.unbox(&mut cur, ARGS_LEVEL) {
                    Err(e) if e.is_instance_of::<ProtocolError>(py) => return Err(e),
                    args => (id, args),
                }
            }
            Err(handler) => {
                brine::read(&mut cur, ARGS_LEVEL, max_depth, &mut Skip).map_err(wire_err)?;
                let handler = from_value(py, &handler, max_depth)?;
                (-1, Err(PyKeyError::new_err((handler,))))
            }
        };
        // Extra bytes after the arguments: the request is refused (its frame is intact, so
        // the connection goes on; upstream would ignore them).
        let args = args.and_then(|a| cur.finish().map(|()| a).map_err(wire_err));
        Ok(Some(WorkKind::Request {
            seq: r.seq,
            handler: handler_id,
            args: Mutex::new(Some(args)),
            peer: r.thread,
            in_flight: InFlight::new(&self.stats, handler_id, since),
        }))
    }

    fn on_answer(
        &self,
        slf: &Bound<'_, Engine>,
        message: &[u8],
        a: Answer,
    ) -> PyResult<Option<WorkKind>> {
        let py = slf.py();
        let max_depth = self.settings()?.core.limits.max_nesting_depth;
        let mut cur = Cursor::at(message, a.body);
        if a.exception {
            self.stats.error_received();
        }
        let outcome = if !a.exception {
            // Unboxed even when nobody waits: the proxies it holds must be released
            // (DEL), or the peer would keep their objects.
            let ctx = self.box_ctx(slf.as_any(), netref_base(py)?)?;
            ctx.unbox(&mut cur, ANSWER_LEVEL)
        } else {
            let raw = brine::read(&mut cur, ANSWER_LEVEL, max_depth, &mut PySink::new(py))?;
            let awaited = a
                .seq
                .is_some_and(|s| self.lock().session.requests.is_awaited(s));
            if awaited {
                // A peer's odd exception description is the waiter's error, not ours.
                slf.as_any()
                    .call_method1(intern!(py, "_unpack_exception"), (raw,))
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
        let Some(seq) = a.seq else {
            return Ok(None);
        };
        self.deliver(py, seq, a.exception, outcome)
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
        match sh.session.requests.take(seq) {
            Some(Slot::Sync { .. }) => {
                let outcome = match outcome {
                    Ok(obj) if is_exc => Err(PyErr::from_value(obj.into_bound(py))),
                    other => other,
                };
                sh.outcomes.insert(seq, outcome);
                Ok(None)
            }
            Some(Slot::Async(callback)) => {
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

    /// `HANDLE_DEL` served without Python: the peer dropped `count` references to one of our
    /// objects. Upstream peers get their `None` answer (they keep a callback until it comes);
    /// rpyc-rs peers that said they need none (`quiet_del`) do not. False when the arguments
    /// are not of that shape or name no object of ours (Python then serves the request and
    /// reports the error), or for an upstream peer over TLS (see `upstream_over_tls`).
    fn serve_release(
        &self,
        slf: &Bound<'_, Engine>,
        message: &[u8],
        r: &Request,
    ) -> PyResult<bool> {
        if self.upstream_over_tls()? {
            return Ok(false);
        }
        let (release, answer) = {
            let sh = self.lock();
            (
                sh.session.release_args(message, r.body),
                sh.session.answers_releases(),
            )
        };
        let Some((key, count)) = release else {
            return Ok(false);
        };
        let objects = self.objects()?;
        if !objects.contains(key) {
            return Ok(false);
        }
        // The object whose entry goes away dies here, outside the table's lock.
        drop(objects.decref(key, count));
        self.stats.release_served();
        if answer {
            let py = slf.py();
            let framed =
                self.reply_frame(slf.as_any(), r.thread, &r.seq, &py.None().into_bound(py))?;
            // A failed write has ended the connection; the reader notices.
            let _ = self.write_frame(py, &framed);
        }
        Ok(true)
    }
}
