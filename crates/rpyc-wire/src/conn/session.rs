//! The state of one connection that every driver shares: our requests, what arrives
//! (classified against them), whether the connection still lives, and what the peer is.

use super::config::Config;
use super::hello::{self, Announcement};
use super::objects::ObjKey;
use super::requests::Requests;
use crate::brine::{Cursor, Value};
use crate::consts::{MSG_EXCEPTION, MSG_REQUEST};
use crate::error::WireError;
use crate::message::{self, unbox, Boxed, BoxedSink, ARGS_LEVEL};

/// What one received payload is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// An empty frame (upstream ignores these too).
    Nothing,
    Request(Request),
    Answer(Answer),
}

/// A request of the peer; its arguments start at `body` in the message bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Echoed in the answer, whatever it is.
    pub seq: Value,
    /// The handler id; a handler that is not an integer is answered with `KeyError` (as
    /// upstream does), which needs the value.
    pub handler: Result<i64, Value>,
    /// The peer thread that sent it (`bind_threads`; 0 otherwise): the recipient of the
    /// answer and of requests made while serving it.
    pub thread: u64,
    pub body: usize,
}

/// An answer to one of our requests; its body starts at `body` in the message bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The request it answers (`None`: a seq that is not one of ours).
    pub seq: Option<u64>,
    /// An EXCEPTION message (its body is not boxed).
    pub exception: bool,
    /// (Whether it is awaited is the pending table's to say: a driver takes the waiter out
    /// once it has the outcome to hand over. A reply nobody awaits is still unboxed, so that
    /// the references it holds are released.)
    pub body: usize,
}

/// The shared state of a connection, generic over what a driver keeps per awaited request.
pub struct Session<W> {
    pub requests: Requests<W>,
    config: Config,
    /// Why the connection ended, once it has.
    ended: Option<String>,
    /// Features both sides named in the rpyc-rs hello (empty: an upstream peer, or not yet).
    peer_features: Vec<&'static str>,
    /// The peer is rpyc-rs (it answered or sent a hello).
    rpyc_rs_peer: bool,
}

impl<W> Session<W> {
    pub fn new(config: Config) -> Self {
        Session {
            requests: Requests::new(config.max_pending_requests),
            config,
            ended: None,
            peer_features: Vec::new(),
            rpyc_rs_peer: false,
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The message bytes of a payload (after the `bind_threads` prefix): what `body`
    /// offsets refer to.
    pub fn message<'p>(&self, payload: &'p [u8]) -> &'p [u8] {
        message::message_bytes(payload, self.config.bind_threads)
    }

    /// What a received payload is.
    pub fn classify(&self, payload: &[u8]) -> Result<Incoming, WireError> {
        self.classify_with(payload, self.config.bind_threads)
    }

    /// [`Session::classify`] for a payload with (`bind_threads`) or without a thread prefix.
    pub fn classify_with(&self, payload: &[u8], bind_threads: bool) -> Result<Incoming, WireError> {
        let max_depth = self.config.limits.max_nesting_depth;
        let Some(env) = message::read_envelope(payload, bind_threads, max_depth)? else {
            return Ok(Incoming::Nothing);
        };
        let thread = env.threads.map_or(0, |(sender, _)| sender);
        if env.msg_type == MSG_REQUEST {
            let handler = match (env.handler_id(), env.handler) {
                (Some(id), _) => Ok(id),
                (None, other) => Err(other.unwrap_or(Value::None)),
            };
            return Ok(Incoming::Request(Request {
                seq: env.seq,
                handler,
                thread,
                body: env.body,
            }));
        }
        let seq = env.seq.as_i64().and_then(|s| u64::try_from(s).ok());
        Ok(Incoming::Answer(Answer {
            seq,
            exception: env.msg_type == MSG_EXCEPTION,
            body: env.body,
        }))
    }

    /// The arguments of a `HANDLE_DEL` request (`message` from [`Session::message`]): which
    /// of our objects the peer dropped and how many references to it. `None` when they are
    /// not of that shape (the request is then served the general way, which reports it).
    pub fn release_args(&self, message: &[u8], body: usize) -> Option<(ObjKey, u64)> {
        let mut cur = Cursor::at(message, body);
        let max_depth = self.config.limits.max_nesting_depth;
        let args = unbox(&mut cur, ARGS_LEVEL, max_depth, &mut BoxedSink::default()).ok()?;
        if !cur.at_end() {
            return None;
        }
        let mut items = args.into_items().ok()?.into_iter();
        let (Some(Boxed::LocalRef(id)), count) = (items.next(), items.next()) else {
            return None;
        };
        let count = match count {
            None => 1,
            Some(Boxed::Value(Value::Int(n))) => u64::try_from(n).ok()?,
            Some(_) => return None,
        };
        if items.next().is_some() {
            return None;
        }
        Some(((id_u64(&id.class_id)?, id_u64(&id.instance_id)?), count))
    }

    // -- life ----------------------------------------------------------------------------

    /// The connection ended (closed, or lost: `why`); the first reason is kept. Every
    /// waiter is returned: none will get an answer.
    pub fn end(&mut self, why: impl Into<String>) -> Vec<W> {
        if self.ended.is_none() {
            self.ended = Some(why.into());
        }
        self.requests.drain()
    }

    /// Why the connection ended, if it has.
    pub fn ended(&self) -> Option<&str> {
        self.ended.as_deref()
    }

    /// An error for using an ended connection (`None` while it lives).
    pub fn check_alive(&self) -> Result<(), WireError> {
        match &self.ended {
            Some(why) => Err(WireError::Closed(why.clone())),
            None => Ok(()),
        }
    }

    // -- the peer ------------------------------------------------------------------------

    /// The peer announced itself as rpyc-rs with these features (a hello, or its answer to
    /// ours): both sides use the features both named.
    pub fn peer_announced(&mut self, data: &Value, kind: Announcement) -> bool {
        match hello::features_of(data, kind) {
            Some(features) => {
                self.set_peer_features(features);
                true
            }
            None => false,
        }
    }

    pub fn set_peer_features(&mut self, features: Vec<&'static str>) {
        self.peer_features = features;
        self.rpyc_rs_peer = true;
    }

    pub fn peer_features(&self) -> &[&'static str] {
        &self.peer_features
    }

    pub fn rpyc_rs_peer(&self) -> bool {
        self.rpyc_rs_peer
    }

    /// Whether the peer expects answers to its `HANDLE_DEL`s (upstream keeps a callback per
    /// request until its answer arrives; an rpyc-rs peer with `quiet_del` does not).
    pub fn answers_releases(&self) -> bool {
        !self.peer_features.contains(&hello::QUIET_DEL)
    }
}

/// An id of an id_pack as the `u64` object tables key by.
fn id_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Int(n) => u64::try_from(*n).ok(),
        Value::BigInt(text) => text.parse().ok(),
        _ => None,
    }
}
