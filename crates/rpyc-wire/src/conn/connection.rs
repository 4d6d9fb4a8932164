//! A whole connection for drivers that own it from one place (a Rust program, an event
//! loop, tests): bytes in, [`Event`]s out; requests and answers in, bytes out. Values are
//! [`Value`]s and boxes [`Boxed`] trees. Drivers that share a connection between threads
//! (the Python extension) use its parts directly: [`FrameDecoder`], [`Session`],
//! [`ObjectTable`], [`Sealer`].

use super::config::Config;
use super::objects::{ObjKey, ObjectTable};
use super::outbound::{payload_buffer, Sealer};
use super::session::{Answer, Incoming, Request, Session};
use crate::brine::{self, Cursor, Skip, Value, ValueSink};
use crate::budget::MemoryBudget;
use crate::consts::handler;
use crate::error::WireError;
use crate::frame::FrameDecoder;
use crate::message::{
    unbox, write_answer_head, write_request_head, write_thread_prefix, BoxSink, Boxed, BoxedSink,
    ANSWER_LEVEL, ARGS_LEVEL,
};
use std::sync::Arc;

/// What arrived, for the driver to act on.
#[derive(Debug, PartialEq)]
pub enum Event {
    /// A request of the peer, to answer with [`Connection::reply`] or
    /// [`Connection::reply_exception`], quoting `seq` and `thread`. `args` are the members
    /// of the boxed argument tuple, or why they could not be read (a box of the wrong shape,
    /// bytes after them): the request must still be answered, with that error.
    Request {
        seq: Value,
        handler: i64,
        thread: u64,
        args: Result<Vec<Boxed>, WireError>,
    },
    /// A request whose handler is not an integer (upstream answers `KeyError(handler)`).
    UnknownHandler {
        seq: Value,
        handler: Value,
        thread: u64,
    },
    /// The reply to our request `id`: its boxed result, or why it could not be read.
    Reply {
        id: u64,
        result: Result<Boxed, WireError>,
    },
    /// The exception answer to our request `id` (its body is not boxed: see
    /// docs/protocol.md#exceptions-vinegar).
    Exception {
        id: u64,
        body: Result<Value, WireError>,
    },
    /// The peer closed the connection (`HANDLE_CLOSE`); nothing more can be sent.
    Closed,
}

/// One connection's protocol state, owned by one driver.
pub struct Connection<T> {
    frames: FrameDecoder,
    session: Session<()>,
    objects: ObjectTable<T>,
    sealer: Sealer,
    outgoing: Vec<u8>,
}

impl<T> Connection<T> {
    /// A connection drawing inbound memory from `budget` (shared by a process's connections).
    pub fn new(config: Config, budget: &Arc<MemoryBudget>) -> Self {
        Connection {
            frames: FrameDecoder::with_budget(config.limits, budget, config.max_inbound_memory),
            objects: ObjectTable::new(config.max_local_objects),
            sealer: Sealer::new(&config),
            session: Session::new(config),
            outgoing: Vec::new(),
        }
    }

    pub fn session(&self) -> &Session<()> {
        &self.session
    }

    /// The session, to record what the driver learnt (the peer's features after a hello).
    pub fn session_mut(&mut self) -> &mut Session<()> {
        &mut self.session
    }

    /// Our objects the peer holds references to.
    pub fn objects(&self) -> &ObjectTable<T> {
        &self.objects
    }

    /// Our objects, to take back entries a message that was not sent had added, or to empty
    /// the table when the connection ends.
    pub fn objects_mut(&mut self) -> &mut ObjectTable<T> {
        &mut self.objects
    }

    /// Record that `obj` is sent by reference under `key` (before sending the box that
    /// names it): it stays alive until the peer releases it.
    pub fn export(&mut self, key: ObjKey, obj: impl FnOnce() -> T) -> Result<(), WireError> {
        self.objects.add(key, obj)
    }

    /// Bytes that arrived from the peer.
    pub fn receive(&mut self, bytes: &[u8]) -> Result<(), WireError> {
        self.session.check_alive()?;
        self.frames.feed(bytes)
    }

    /// Room for the transport to read the next bytes into, instead of handing them to
    /// [`Connection::receive`] (which copies them): see [`FrameDecoder::read_buf`]. Follow
    /// with [`Connection::commit`].
    pub fn read_buf(&mut self) -> Result<&mut [u8], WireError> {
        self.session.check_alive()?;
        self.frames.read_buf()
    }

    /// `n` bytes were read into [`Connection::read_buf`]'s room.
    pub fn commit(&mut self, n: usize) {
        self.frames.commit(n);
    }

    /// Everything queued for the peer so far.
    pub fn take_outgoing(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.outgoing)
    }

    /// Send a request whose answer is awaited (an [`Event::Reply`] or [`Event::Exception`]
    /// with the returned id). `args` are the members of its argument tuple.
    pub fn request(&mut self, handler: i64, args: &[Boxed]) -> Result<u64, WireError> {
        self.request_within(0, handler, args)
    }

    /// [`Connection::request`] made while serving a request of peer thread `thread`
    /// (`bind_threads`: the peer serves it on that thread, which waits for our answer).
    pub fn request_within(
        &mut self,
        thread: u64,
        handler: i64,
        args: &[Boxed],
    ) -> Result<u64, WireError> {
        self.session.check_alive()?;
        let seq = self.session.requests.start(())?;
        let sent = self.send_request(seq, thread, handler, args);
        if sent.is_err() {
            self.session.requests.take(seq);
        }
        sent.map(|()| seq)
    }

    /// Send a request whose answer nobody awaits (it is dropped on arrival).
    pub fn notify(&mut self, handler: i64, args: &[Boxed]) -> Result<(), WireError> {
        self.session.check_alive()?;
        let seq = self.session.requests.next_seq();
        self.send_request(seq, 0, handler, args)
    }

    fn send_request(
        &mut self,
        seq: u64,
        thread: u64,
        handler: i64,
        args: &[Boxed],
    ) -> Result<(), WireError> {
        let mut buf = self.payload(thread);
        reserve_blobs(&mut buf, args.iter().map(blob_len).sum());
        write_request_head(&mut buf, seq, handler);
        let max_depth = self.session.config().limits.max_nesting_depth;
        Boxed::encode_tuple_checked(args, ARGS_LEVEL, max_depth, &mut buf)?;
        self.queue(buf)
    }

    /// Answer the request `seq` of peer thread `thread` with `result`.
    pub fn reply(&mut self, seq: &Value, thread: u64, result: &Boxed) -> Result<(), WireError> {
        self.session.check_alive()?;
        let max_depth = self.session.config().limits.max_nesting_depth;
        let mut buf = self.payload(thread);
        reserve_blobs(&mut buf, blob_len(result));
        write_answer_head(&mut buf, false, seq, max_depth)?;
        result.encode_checked(ANSWER_LEVEL, max_depth, &mut buf)?;
        self.queue(buf)
    }

    /// Answer the request `seq` of peer thread `thread` with an exception `body`.
    pub fn reply_exception(
        &mut self,
        seq: &Value,
        thread: u64,
        body: &Value,
    ) -> Result<(), WireError> {
        self.session.check_alive()?;
        let max_depth = self.session.config().limits.max_nesting_depth;
        let mut buf = self.payload(thread);
        write_answer_head(&mut buf, true, seq, max_depth)?;
        brine::encode_checked(body, ANSWER_LEVEL, max_depth, &mut buf)?;
        self.queue(buf)
    }

    /// Tell the peer we close (`HANDLE_CLOSE`, which upstream never answers) and end.
    pub fn close(&mut self) -> Result<(), WireError> {
        let told = self.notify(handler::CLOSE, &[]);
        self.end("connection closed");
        told
    }

    fn end(&mut self, why: &str) {
        self.session.end(why);
    }

    /// A payload buffer (frame header room, and the thread prefix under `bind_threads`:
    /// unbound sender, `recipient` the peer thread being answered).
    fn payload(&self, recipient: u64) -> Vec<u8> {
        let mut buf = payload_buffer();
        if self.session.config().bind_threads {
            write_thread_prefix(&mut buf, 0, recipient);
        }
        buf
    }

    fn queue(&mut self, payload: Vec<u8>) -> Result<(), WireError> {
        let framed = self.sealer.seal(payload)?;
        // Usually nothing else waits to go: the frame becomes the outgoing bytes as it is
        // (a large one is not copied).
        if self.outgoing.is_empty() {
            self.outgoing = framed;
        } else {
            self.outgoing.extend_from_slice(&framed);
        }
        Ok(())
    }

    /// The next event, when a complete frame is buffered. A protocol violation ends the
    /// connection: its error is returned, and every later call returns [`WireError::Closed`].
    pub fn poll_event(&mut self) -> Result<Option<Event>, WireError> {
        loop {
            self.session.check_alive()?;
            let step = self.next_step();
            match step {
                Ok(Step::Event(event)) => return Ok(Some(event)),
                Ok(Step::Handled) => continue,
                Ok(Step::Idle) => return Ok(None),
                // The budget refusing is not the peer's fault: the same call goes on later.
                Err(e @ WireError::MemoryBudget { .. }) => return Err(e),
                Err(e) => {
                    self.end(&format!("connection lost: {e}"));
                    return Err(e);
                }
            }
        }
    }

    /// What one frame's `payload` brings, for drivers that take frames out of a
    /// [`FrameDecoder`] of their own (read outside the lock that guards the connection):
    /// `Ok(None)` when it was handled here. Errors end the connection, as in
    /// [`Connection::poll_event`].
    pub fn process(&mut self, payload: &[u8]) -> Result<Option<Event>, WireError> {
        self.session.check_alive()?;
        match self.step(payload) {
            Ok(Step::Event(event)) => Ok(Some(event)),
            Ok(Step::Handled | Step::Idle) => Ok(None),
            Err(e) => {
                self.end(&format!("connection lost: {e}"));
                Err(e)
            }
        }
    }

    fn next_step(&mut self) -> Result<Step, WireError> {
        let Some(payload) = self.frames.next_payload()? else {
            return Ok(Step::Idle);
        };
        self.step(&payload)
    }

    fn step(&mut self, payload: &[u8]) -> Result<Step, WireError> {
        let incoming = self.session.classify(payload)?;
        let message = self.session.message(payload);
        match incoming {
            Incoming::Nothing => Ok(Step::Handled),
            Incoming::Request(request) => self.on_request(message, request),
            Incoming::Answer(answer) => self.on_answer(message, answer),
        }
    }

    fn on_request(&mut self, message: &[u8], r: Request) -> Result<Step, WireError> {
        let max_depth = self.session.config().limits.max_nesting_depth;
        let mut cur = Cursor::at(message, r.body);
        let id = match r.handler {
            Ok(id) => id,
            Err(handler) => {
                brine::read(&mut cur, ARGS_LEVEL, max_depth, &mut Skip)?;
                cur.finish()?;
                return Ok(Step::Event(Event::UnknownHandler {
                    seq: r.seq,
                    handler,
                    thread: r.thread,
                }));
            }
        };
        if id == handler::CLOSE {
            self.end("connection closed by the peer");
            return Ok(Step::Event(Event::Closed));
        }
        if id == handler::DEL && self.release(message, &r)? {
            return Ok(Step::Handled);
        }
        let args = read_boxed(&mut cur, ARGS_LEVEL, max_depth)?.and_then(Boxed::into_items);
        Ok(Step::Event(Event::Request {
            seq: r.seq,
            handler: id,
            thread: r.thread,
            args,
        }))
    }

    /// Serve a `HANDLE_DEL` naming one of our objects; false (to serve it as any request)
    /// when its arguments are not of that shape or name no object of ours.
    fn release(&mut self, message: &[u8], r: &Request) -> Result<bool, WireError> {
        let Some((key, count)) = self.session.release_args(message, r.body) else {
            return Ok(false);
        };
        if !self.objects.contains(key) {
            return Ok(false);
        }
        drop(self.objects.decref(key, count));
        if self.session.answers_releases() {
            self.reply(&r.seq, r.thread, &Boxed::Value(Value::None))?;
        }
        Ok(true)
    }

    fn on_answer(&mut self, message: &[u8], a: Answer) -> Result<Step, WireError> {
        let max_depth = self.session.config().limits.max_nesting_depth;
        let mut cur = Cursor::at(message, a.body);
        let waiter = a.seq.and_then(|s| self.session.requests.take(s));
        if a.exception {
            let body = brine::read(&mut cur, ANSWER_LEVEL, max_depth, &mut ValueSink::default())?;
            let body = cur.finish().map(|()| body);
            return Ok(match (waiter, a.seq) {
                (Some(()), Some(id)) => Step::Event(Event::Exception { id, body }),
                _ => Step::Handled,
            });
        }
        let result = read_boxed(&mut cur, ANSWER_LEVEL, max_depth)?;
        match (waiter, a.seq) {
            (Some(()), Some(id)) => Ok(Step::Event(Event::Reply { id, result })),
            _ => {
                // Nobody awaits it: release the references it holds, or the peer would keep
                // their objects for the life of the connection.
                if let Ok(boxed) = &result {
                    self.release_references(boxed)?;
                }
                Ok(Step::Handled)
            }
        }
    }

    /// Send `HANDLE_DEL` for every reference to the peer's objects in `boxed`.
    fn release_references(&mut self, boxed: &Boxed) -> Result<(), WireError> {
        match boxed {
            Boxed::RemoteRef(id) => self.notify(
                handler::DEL,
                &[Boxed::LocalRef(id.clone()), Boxed::Value(Value::Int(1))],
            ),
            Boxed::Tuple(items) => items.iter().try_for_each(|b| self.release_references(b)),
            Boxed::Value(_) | Boxed::LocalRef(_) => Ok(()),
        }
    }
}

/// Room for a message's heads, a blob's box and brine headers, and the frame's trailer.
const HEADS: usize = 128;

/// Room for `blobs` bytes of `bytes`/`str` members and the heads around them, so that a
/// large blob is not copied as the buffer grows. Small ones are left to the payload buffer
/// as it comes: reserving there would grow (reallocate) the buffer of every small message.
fn reserve_blobs(buf: &mut Vec<u8>, blobs: usize) {
    if blobs > HEADS {
        buf.reserve(blobs + HEADS);
    }
}

/// The length of a `bytes` or `str` box: room reserved (with [`HEADS`]) before encoding
/// it, so that neither the encoding nor sealing reallocates (copies) a large payload.
fn blob_len(b: &Boxed) -> usize {
    match b {
        Boxed::Value(Value::Bytes(v)) => v.len(),
        Boxed::Value(Value::Str(v)) => v.len(),
        _ => 0,
    }
}

/// What one frame led to.
enum Step {
    Idle,
    Handled,
    Event(Event),
}

/// One box that must end the message: a box of the wrong shape, or bytes after it, are the
/// message's error (`Ok(Err(..))`); malformed brine ends the connection (`Err`).
fn read_boxed(
    cur: &mut Cursor<'_>,
    level: usize,
    max_depth: usize,
) -> Result<Result<Boxed, WireError>, WireError> {
    let mut sink = BoxedSink::default();
    match unbox(cur, level, max_depth, &mut sink) {
        Err(e) if sink.is_fatal(&e) => Err(e),
        Err(e) => Ok(Err(e)),
        Ok(boxed) => Ok(cur.finish().map(|()| boxed)),
    }
}
