//! Messages (WIRE.md §4): the payload of one frame.
//!
//! ```text
//! bind_threads off:  | type u8 | brine TUP2(seq, body) |
//! bind_threads on:   | sender u64 BE | recipient u64 BE | type u8 | brine TUP2(seq, body) |
//! ```
//!
//! A request body is `TUP2(handler, boxed_args)`; a reply body is a boxed value; an
//! exception body is unboxed (WIRE.md §7). Bodies stay [`Value`]s here: [`Boxed`] turns a
//! boxed value into labels and id_packs when the caller wants that view.

mod boxing;

pub use boxing::{Boxed, IdPack};

use crate::brine::{self, Value};
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

/// Split a payload into thread prefix, message type and brine body (for callers that
/// decode the body themselves, e.g. straight into host-language objects, or that route
/// by thread id first). Checks the type byte.
pub fn split_payload(payload: &[u8], bind_threads: bool) -> Result<PayloadHeader<'_>, WireError> {
    let (threads, rest) = if bind_threads {
        let Some((prefix, rest)) = payload.split_first_chunk::<THREAD_PREFIX_LEN>() else {
            return Err(WireError::BadMessage(format!(
                "payload of {} bytes is shorter than the {THREAD_PREFIX_LEN}-byte thread prefix \
                 that bind_threads=True requires (does the peer have bind_threads enabled?)",
                payload.len()
            )));
        };
        let (s, r) = prefix.split_at(8);
        (Some((u64_be(s), u64_be(r))), rest)
    } else {
        (None, payload)
    };
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

/// Decode one message payload (already inflated). The brine body must be exactly one
/// `TUP2(seq, body)`, and a request body exactly `TUP2(handler, args)`.
pub fn decode_payload(
    payload: &[u8],
    bind_threads: bool,
    limits: &Limits,
) -> Result<Message, WireError> {
    let header = split_payload(payload, bind_threads)?;
    let (seq, body) = pair(brine::decode(header.body, limits)?, "message")?;
    let kind = match header.msg_type {
        MSG_REQUEST => {
            let (handler, args) = pair(body, "request body")?;
            MessageKind::Request { seq, handler, args }
        }
        MSG_REPLY => MessageKind::Reply { seq, body },
        _ => MessageKind::Exception { seq, body },
    };
    Ok(Message {
        threads: header.threads,
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
        out.extend_from_slice(&sender.to_be_bytes());
        out.extend_from_slice(&recipient.to_be_bytes());
    }
    out.push(msg.msg_type());
    out.push(tag::TUP2);
    match &msg.kind {
        MessageKind::Request { seq, handler, args } => {
            brine::encode(seq, out);
            out.push(tag::TUP2);
            brine::encode(handler, out);
            brine::encode(args, out);
        }
        MessageKind::Reply { seq, body } | MessageKind::Exception { seq, body } => {
            brine::encode(seq, out);
            brine::encode(body, out);
        }
    }
}

fn pair(v: Value, what: &str) -> Result<(Value, Value), WireError> {
    match v {
        Value::Tuple(items) if items.len() == 2 => {
            let mut it = items.into_iter();
            match (it.next(), it.next()) {
                (Some(a), Some(b)) => Ok((a, b)),
                _ => Err(not_a_pair(what, "tuple")),
            }
        }
        Value::Tuple(items) => Err(WireError::BadMessage(format!(
            "{what} is a {}-tuple, not a 2-tuple",
            items.len()
        ))),
        other => Err(not_a_pair(what, other.type_name())),
    }
}

fn not_a_pair(what: &str, got: &str) -> WireError {
    WireError::BadMessage(format!("{what} is a {got}, not a 2-tuple"))
}

fn u64_be(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    u64::from_be_bytes(a)
}
