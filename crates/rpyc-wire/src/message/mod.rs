//! Messages (docs/protocol.md#messages): the payload of one frame.
//!
//! ```text
//! bind_threads off:  | type u8 | brine TUP2(seq, body) |
//! bind_threads on:   | sender u64 BE | recipient u64 BE | type u8 | brine TUP2(seq, body) |
//! ```
//!
//! A request body is `TUP2(handler, boxed_args)`; a reply body is a boxed value; an
//! exception body is unboxed (docs/protocol.md#exceptions-vinegar). Bodies stay [`Value`]s here: [`Boxed`] turns a
//! boxed value into labels and id_packs when the caller wants that view.

mod boxing;

pub use boxing::{
    describe, unbox, write_box_head, write_id_pack, BadBox, BoxSink, Boxed, BoxedSink, IdNum,
    IdPack, IdPackRef,
};

use crate::brine::{self, write, Cursor, Value, ValueSink};
use crate::consts::{tag, MSG_EXCEPTION, MSG_REPLY, MSG_REQUEST, THREAD_PREFIX_LEN};
use crate::error::WireError;
use crate::limits::Limits;

/// One decoded message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The `bind_threads` prefix: `(sender thread id, recipient thread id)`. `None` when the
    /// connection does not bind threads; encoding with `bind_threads` writes `(0, 0)` then.
    pub threads: Option<(u64, u64)>,
    /// What the message is.
    pub kind: MessageKind,
}

/// The three message types. `seq` is whatever value the requester chose (upstream echoes
/// any value, not only integers), so it is kept as a [`Value`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageKind {
    /// `MSG_REQUEST`: body `(handler, boxed_args)`.
    Request {
        seq: Value,
        handler: Value,
        args: Value,
    },
    /// `MSG_REPLY`: body is the boxed result.
    Reply { seq: Value, body: Value },
    /// `MSG_EXCEPTION`: body is the serialized exception (not boxed), or `1` for a bare
    /// `StopIteration`.
    Exception { seq: Value, body: Value },
}

impl Message {
    /// A request for handler `handler` (a `consts::handler` id) with boxed arguments.
    pub fn request(seq: impl Into<Value>, handler: i64, args: Value) -> Message {
        Message {
            threads: None,
            kind: MessageKind::Request {
                seq: seq.into(),
                handler: Value::Int(handler),
                args,
            },
        }
    }

    /// A reply carrying a boxed result.
    pub fn reply(seq: impl Into<Value>, body: Value) -> Message {
        Message {
            threads: None,
            kind: MessageKind::Reply {
                seq: seq.into(),
                body,
            },
        }
    }

    /// An exception reply carrying a serialized exception.
    pub fn exception(seq: impl Into<Value>, body: Value) -> Message {
        Message {
            threads: None,
            kind: MessageKind::Exception {
                seq: seq.into(),
                body,
            },
        }
    }

    /// The same message with a `bind_threads` prefix.
    pub fn with_threads(mut self, sender: u64, recipient: u64) -> Message {
        self.threads = Some((sender, recipient));
        self
    }

    /// The sequence number (any value; upstream's peers send non-negative integers).
    pub fn seq(&self) -> &Value {
        match &self.kind {
            MessageKind::Request { seq, .. }
            | MessageKind::Reply { seq, .. }
            | MessageKind::Exception { seq, .. } => seq,
        }
    }

    /// The raw message-type byte: `MSG_REQUEST`, `MSG_REPLY` or `MSG_EXCEPTION`.
    pub fn msg_type(&self) -> u8 {
        match self.kind {
            MessageKind::Request { .. } => MSG_REQUEST,
            MessageKind::Reply { .. } => MSG_REPLY,
            MessageKind::Exception { .. } => MSG_EXCEPTION,
        }
    }

    /// For a request: the handler id, when it is an integer.
    pub fn handler_id(&self) -> Option<i64> {
        match &self.kind {
            MessageKind::Request { handler, .. } => handler.as_i64(),
            _ => None,
        }
    }
}

/// The fixed part of a payload, split off without decoding the brine body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayloadHeader<'a> {
    /// `(sender, recipient)` when the payload was read with `bind_threads`.
    pub threads: Option<(u64, u64)>,
    /// `MSG_REQUEST`, `MSG_REPLY` or `MSG_EXCEPTION`.
    pub msg_type: u8,
    /// The brine `TUP2(seq, body)` that follows.
    pub body: &'a [u8],
}

/// The nesting level of a message's `seq` (inside the `(seq, body)` pair).
pub const SEQ_LEVEL: usize = 1;
/// The level of a request's handler and of its boxed arguments (inside `(seq, (handler,
/// args))`).
pub const ARGS_LEVEL: usize = 2;
/// The level of a reply's boxed result and of an exception answer's body.
pub const ANSWER_LEVEL: usize = 1;

/// Split a payload into thread prefix, message type and brine body (for callers that
/// decode the body themselves, e.g. straight into host-language objects, or that route
/// by thread id first). Checks the type byte.
pub fn split_payload(payload: &[u8], bind_threads: bool) -> Result<PayloadHeader<'_>, WireError> {
    let (threads, rest) = split_threads(payload, bind_threads)?;
    let Some((&msg_type, body)) = rest.split_first() else {
        return Err(WireError::BadMessage(
            "payload has no message-type byte".to_owned(),
        ));
    };
    if !matches!(msg_type, MSG_REQUEST | MSG_REPLY | MSG_EXCEPTION) {
        return Err(WireError::UnknownMessageType(msg_type));
    }
    Ok(PayloadHeader {
        threads,
        msg_type,
        body,
    })
}

fn split_threads(
    payload: &[u8],
    bind_threads: bool,
) -> Result<(Option<ThreadIds>, &[u8]), WireError> {
    if !bind_threads {
        return Ok((None, payload));
    }
    let Some((prefix, rest)) = payload.split_first_chunk::<THREAD_PREFIX_LEN>() else {
        return Err(WireError::BadMessage(format!(
            "payload of {} bytes is shorter than the {THREAD_PREFIX_LEN}-byte thread prefix \
             that bind_threads=True requires (does the peer have bind_threads enabled?)",
            payload.len()
        )));
    };
    let (s, r) = prefix.split_at(8);
    Ok((Some((u64_be(s), u64_be(r))), rest))
}

/// `(sender, recipient)` thread ids of a `bind_threads` prefix.
pub type ThreadIds = (u64, u64);

/// The fixed part of a message, read without its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// `(sender, recipient)` when the payload was read with `bind_threads`.
    pub threads: Option<(u64, u64)>,
    /// `MSG_REQUEST`, `MSG_REPLY` or `MSG_EXCEPTION`.
    pub msg_type: u8,
    /// The sequence number: any value (upstream echoes whatever it received).
    pub seq: Value,
    /// A request's handler: any value (upstream answers a non-integer with `KeyError`).
    pub handler: Option<Value>,
    /// Offset of the body in the message bytes (after the thread prefix): a request's
    /// boxed arguments (at [`ARGS_LEVEL`]), a reply's boxed result or an exception answer's
    /// body (at [`ANSWER_LEVEL`]).
    pub body: usize,
}

impl Envelope {
    /// The handler id, when this is a request whose handler is an integer.
    pub fn handler_id(&self) -> Option<i64> {
        self.handler.as_ref().and_then(Value::as_i64)
    }
}

/// Read a message's envelope. `Ok(None)` for an empty payload, or one that holds nothing
/// after the thread prefix (upstream's receiver ignores such frames). The body starts at
/// `envelope.body` in [`message_bytes`]`(payload, bind_threads)`.
pub fn read_envelope(
    payload: &[u8],
    bind_threads: bool,
    max_depth: usize,
) -> Result<Option<Envelope>, WireError> {
    if payload.is_empty() {
        return Ok(None);
    }
    let (threads, message) = split_threads(payload, bind_threads)?;
    let Some(&msg_type) = message.first() else {
        return Ok(None);
    };
    if !matches!(msg_type, MSG_REQUEST | MSG_REPLY | MSG_EXCEPTION) {
        return Err(WireError::UnknownMessageType(msg_type));
    }
    let mut cur = Cursor::new(message);
    cur.byte("message type")?;
    pair_head(&mut cur, "message", 0, max_depth)?;
    let seq = read_number(&mut cur, SEQ_LEVEL, max_depth)?;
    let handler = if msg_type == MSG_REQUEST {
        pair_head(&mut cur, "request body", SEQ_LEVEL, max_depth)?;
        Some(read_number(&mut cur, ARGS_LEVEL, max_depth)?)
    } else {
        None
    };
    Ok(Some(Envelope {
        threads,
        msg_type,
        seq,
        handler,
        body: cur.pos(),
    }))
}

/// A seq or handler: almost always an integer (read directly), but any value may stand there.
fn read_number(cur: &mut Cursor<'_>, level: usize, max_depth: usize) -> Result<Value, WireError> {
    match cur.try_small_int() {
        Some(v) => Ok(Value::Int(v)),
        None => brine::read(cur, level, max_depth, &mut ValueSink::default()),
    }
}

/// The message bytes of a payload: what follows the thread prefix (if any).
pub fn message_bytes(payload: &[u8], bind_threads: bool) -> &[u8] {
    match bind_threads {
        true => payload.get(THREAD_PREFIX_LEN..).unwrap_or_default(),
        false => payload,
    }
}

/// A `TUP2` opening the pair `what` at `level`.
fn pair_head(
    cur: &mut Cursor<'_>,
    what: &str,
    level: usize,
    max_depth: usize,
) -> Result<(), WireError> {
    write::container_level(level, max_depth)
        .map_err(|_| WireError::NestingTooDeep { max: max_depth })?;
    let start = cur.pos();
    let t = cur.byte("message")?;
    if t == tag::TUP2 {
        return Ok(());
    }
    let got = if brine::is_tuple_tag(t) {
        cur.rewind(start);
        let n = cur.tuple_header("message").unwrap_or(0);
        format!("a {n}-tuple")
    } else {
        "not a tuple".to_owned()
    };
    Err(WireError::BadMessage(format!(
        "{what} is {got}, not a 2-tuple"
    )))
}

/// Decode one message payload (already inflated). The brine body must be exactly one
/// `TUP2(seq, body)`, and a request body exactly `TUP2(handler, args)`.
pub fn decode_payload(
    payload: &[u8],
    bind_threads: bool,
    limits: &Limits,
) -> Result<Message, WireError> {
    let max_depth = limits.max_nesting_depth;
    let Some(env) = read_envelope(payload, bind_threads, max_depth)? else {
        // Checks the prefix and type byte again, for its errors.
        split_payload(payload, bind_threads)?;
        return Err(WireError::BadMessage("empty message".to_owned()));
    };
    let mut cur = Cursor::at(message_bytes(payload, bind_threads), env.body);
    let level = match env.msg_type {
        MSG_REQUEST => ARGS_LEVEL,
        _ => ANSWER_LEVEL,
    };
    let body = brine::read(&mut cur, level, max_depth, &mut ValueSink::default())?;
    cur.finish()?;
    let kind = match (env.msg_type, env.handler) {
        (MSG_REQUEST, Some(handler)) => MessageKind::Request {
            seq: env.seq,
            handler,
            args: body,
        },
        (MSG_REPLY, _) => MessageKind::Reply { seq: env.seq, body },
        _ => MessageKind::Exception { seq: env.seq, body },
    };
    Ok(Message {
        threads: env.threads,
        kind,
    })
}

/// Encode one message payload (not yet framed or compressed).
pub fn encode_payload(msg: &Message, bind_threads: bool) -> Vec<u8> {
    let mut out = Vec::new();
    encode_payload_into(msg, bind_threads, &mut out);
    out
}

/// Append one message payload to `out`.
pub fn encode_payload_into(msg: &Message, bind_threads: bool, out: &mut Vec<u8>) {
    if bind_threads {
        let (sender, recipient) = msg.threads.unwrap_or((0, 0));
        write_thread_prefix(out, sender, recipient);
    }
    out.push(msg.msg_type());
    write::tuple_header(out, 2);
    match &msg.kind {
        MessageKind::Request { seq, handler, args } => {
            brine::encode(seq, out);
            write::tuple_header(out, 2);
            brine::encode(handler, out);
            brine::encode(args, out);
        }
        MessageKind::Reply { seq, body } | MessageKind::Exception { seq, body } => {
            brine::encode(seq, out);
            brine::encode(body, out);
        }
    }
}

/// The `bind_threads` prefix: our thread, and the peer thread the message is for.
pub fn write_thread_prefix(out: &mut Vec<u8>, sender: u64, recipient: u64) {
    out.extend_from_slice(&sender.to_be_bytes());
    out.extend_from_slice(&recipient.to_be_bytes());
}

/// The start of a request: type, `(seq, (handler, ` — the boxed arguments follow (at
/// [`ARGS_LEVEL`]).
pub fn write_request_head(out: &mut Vec<u8>, seq: u64, handler: i64) {
    out.push(MSG_REQUEST);
    write::tuple_header(out, 2);
    match i64::try_from(seq) {
        Ok(s) => write::int(out, s),
        // (A connection would need 2^63 requests to get here.)
        Err(_) => {
            let _ = write::int_text(out, seq.to_string().as_bytes());
        }
    }
    write::tuple_header(out, 2);
    write::int(out, handler);
}

/// The start of an answer to the request `seq`: type, `(seq, ` — the body follows (at
/// [`ANSWER_LEVEL`]). `seq` is echoed as received, so it must encode within `max_depth`.
pub fn write_answer_head(
    out: &mut Vec<u8>,
    exception: bool,
    seq: &Value,
    max_depth: usize,
) -> Result<(), WireError> {
    out.push(if exception { MSG_EXCEPTION } else { MSG_REPLY });
    write::tuple_header(out, 2);
    brine::encode_checked(seq, SEQ_LEVEL, max_depth, out)
}

fn u64_be(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    u64::from_be_bytes(a)
}
