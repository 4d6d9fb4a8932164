//! Requests, replies and exceptions on their way out: boxed from Python objects, framed by
//! the core's `Sealer` (compression, outgoing limits) and written through the link.

use super::{netref_base, Engine, Slot};
use crate::codec::boxing::BoxCtx;
use crate::codec::py_encode::Encoder;
use crate::errors::wire_err;
use crate::io::flusher;
use crate::io::held::Hold;
use crate::io::link::Carrier;
use crate::io::outgoing::Outgoing;
use crate::threads;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use rpyc_wire::brine::Value;
use rpyc_wire::conn::Sealer;
use rpyc_wire::consts::{handler, FRAME_HEADER_LEN, FRAME_TRAILER};
use rpyc_wire::frame;
use rpyc_wire::message::{self, ANSWER_LEVEL, ARGS_LEVEL};
use std::sync::Arc;

impl Engine {
    /// Start a payload buffer: room for the frame header, then the thread prefix if bound.
    fn begin_payload(&self, recipient: u64) -> PyResult<Outgoing> {
        let mut out = Outgoing::with_capacity(128);
        out.buf.extend_from_slice(&[0u8; FRAME_HEADER_LEN]);
        if self.settings()?.core.bind_threads {
            message::write_thread_prefix(&mut out.buf, threads::token(), recipient);
        }
        Ok(out)
    }

    /// Frame the payload that follows the reserved header bytes (compressed if that pays).
    /// A frame that a peer with our limits would refuse is refused here, before anything is
    /// written: the caller gets a `ValueError` and the connection stays usable, where the
    /// peer would have closed it.
    fn seal_frame(&self, py: Python<'_>, mut out: Outgoing) -> PyResult<Outgoing> {
        let sealer = Sealer::new(&self.settings()?.core);
        let payload_len = out.len() - FRAME_HEADER_LEN;
        let compressed = (sealer.compresses(payload_len) && !out.raw_data)
            .then(|| Self::compress_payload(py, &mut out, sealer.level()))
            .flatten();
        let header = match &compressed {
            Some(body) => sealer.header(body.len(), true),
            None => sealer.header(payload_len, false),
        }
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
        if let Some(body) = compressed {
            self.stats.compressed_out();
            let mut framed = Vec::with_capacity(body.len() + FRAME_HEADER_LEN + 1);
            framed.extend_from_slice(&header);
            framed.extend_from_slice(&body);
            framed.push(FRAME_TRAILER);
            return Ok(Outgoing::from(framed));
        }
        out.buf[..FRAME_HEADER_LEN].copy_from_slice(&header);
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
    pub(super) fn write_frame(&self, py: Python<'_>, framed: &Outgoing) -> PyResult<()> {
        if let Some(e) = self.dead_error() {
            return Err(e);
        }
        let written = self.link()?.write(py, framed);
        if let Err(e) = &written {
            self.fail(py, e);
        }
        written
    }

    /// Send a request; its answer goes to `slot` (`None`: the answer is not awaited and is
    /// dropped on arrival, as every answer nobody waits for). Returns the seq.
    pub(super) fn send_request(
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
        let seq = {
            let mut sh = self.lock();
            match slot {
                Some(slot) => sh.session.requests.start(slot),
                None => Ok(sh.session.requests.next_seq()),
            }
        }
        .map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
        let base = netref_base(py)?;
        let ctx = self.box_ctx(slf.as_any(), base)?;
        let sent = self
            .encode_request(py, &ctx, seq, handler_id, args)
            .and_then(|framed| self.write_frame(py, &framed));
        if let Err(e) = sent {
            self.forget(seq);
            return Err(e);
        }
        Ok(seq)
    }

    /// A sealed request frame (boxing undone if it fails).
    fn encode_request(
        &self,
        py: Python<'_>,
        ctx: &BoxCtx<'_, '_>,
        seq: u64,
        handler_id: i64,
        args: &Bound<'_, PyTuple>,
    ) -> PyResult<Outgoing> {
        let mut out = self.begin_payload(threads::current_peer())?;
        message::write_request_head(&mut out.buf, seq, handler_id);
        let sealed = ctx
            .put_boxed(&mut out, args.as_any(), ARGS_LEVEL)
            .and_then(|()| self.seal_frame(py, out));
        match &sealed {
            Ok(_) => self.stats.request_sent(handler_id),
            Err(_) => ctx.undo(),
        }
        sealed
    }

    /// `_release`: `HANDLE_DEL` for a proxy that died. Over a native transport the frame is
    /// held back to travel with the next write (see `io::held`).
    pub(super) fn release(
        &self,
        slf: &Bound<'_, Engine>,
        proxy: &Bound<'_, PyAny>,
        count: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let py = slf.py();
        let args = PyTuple::new(py, [proxy, count])?;
        let link = Arc::clone(self.link()?);
        let holds = match link.carrier() {
            Carrier::Socket | Carrier::Python => true,
            Carrier::Tls => self.lock().session.rpyc_rs_peer(),
        };
        if !holds {
            return self
                .send_request(slf, handler::DEL, &args, None)
                .map(|_| ());
        }
        if let Some(e) = self.dead_error() {
            return Err(e);
        }
        let seq = self.lock().session.requests.next_seq();
        let ctx = self.box_ctx(slf.as_any(), netref_base(py)?)?;
        let framed = self.encode_request(py, &ctx, seq, handler::DEL, &args)?;
        // A release carries an id_pack, never a large `bytes`: nothing is spliced in.
        if link.carrier() == Carrier::Python {
            // (It may come from a collection inside this thread's own write: never wait.)
            return link
                .write_release(py, &framed.buf)
                .inspect_err(|e| self.fail(py, e));
        }
        match link.hold(&framed.buf) {
            Hold::Held => Ok(()),
            Hold::Schedule if flusher::schedule(link) => Ok(()),
            Hold::Schedule | Hold::Full => self.write_frame(py, &Outgoing::default()),
        }
    }

    /// A sealed REPLY carrying `value` for request `seq` of thread `peer`.
    pub(super) fn reply_frame(
        &self,
        conn: &Bound<'_, PyAny>,
        peer: u64,
        seq: &Value,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<Outgoing> {
        let py = conn.py();
        let ctx = self.box_ctx(conn, netref_base(py)?)?;
        let mut out = self.begin_payload(peer)?;
        let max_depth = self.settings()?.core.limits.max_nesting_depth;
        message::write_answer_head(&mut out.buf, false, seq, max_depth).map_err(wire_err)?;
        match ctx
            .put_boxed(&mut out, value, ANSWER_LEVEL)
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

    /// A sealed EXCEPTION answer to `seq`: `exc`, or the reason why `exc` cannot be sent
    /// (arguments nested too deep, too large): the request must get an answer.
    pub(super) fn exception_frame(
        &self,
        conn: &Bound<'_, PyAny>,
        peer: u64,
        seq: &Value,
        exc: &Bound<'_, PyAny>,
    ) -> PyResult<Outgoing> {
        let py = conn.py();
        self.stats.error_served();
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
        let max_depth = self.settings()?.core.limits.max_nesting_depth;
        message::write_answer_head(buf, true, seq, max_depth).map_err(wire_err)?;
        let mut enc = Encoder::new(buf, max_depth);
        if let Err(err) = enc.value(&raw, ANSWER_LEVEL) {
            buf.truncate(start);
            return Err(err.into_pyerr(&raw));
        }
        Ok(())
    }
}
