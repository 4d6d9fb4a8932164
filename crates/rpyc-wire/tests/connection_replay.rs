//! The captured upstream sessions (vectors/session-*.json) replayed against a server-side
//! connection core: the client's frames go in, the core's events are answered with what the
//! upstream server answered, and what the core sends must be what upstream sent, byte for
//! byte (payloads compared after inflating: zlib implementations compress differently).
//! `HANDLE_DEL` is served by the core itself; its answers must match upstream's too.

mod common;

use common::{load, unhex};
use rpyc_wire::brine::Value;
use rpyc_wire::budget::MemoryBudget;
use rpyc_wire::conn::{Config, Connection, Event};
use rpyc_wire::consts::{handler, THREAD_PREFIX_LEN};
use rpyc_wire::frame::FrameDecoder;
use rpyc_wire::message::{decode_payload, Boxed, MessageKind};
use rpyc_wire::Limits;
use std::collections::HashMap;

struct Captured {
    from_client: bool,
    payload: Vec<u8>,
}

fn captured(file: &str) -> Vec<Captured> {
    load(file)
        .as_array()
        .expect("frames")
        .iter()
        .map(|f| {
            let bytes = unhex(f["hex"].as_str().expect("hex"));
            Captured {
                from_client: f["direction"].as_str() == Some("client->server"),
                payload: payloads(&bytes).pop().expect("one frame"),
            }
        })
        .collect()
}

fn payloads(stream: &[u8]) -> Vec<Vec<u8>> {
    let mut frames = FrameDecoder::new(Limits::default());
    frames.feed(stream).expect("room");
    let mut out = Vec::new();
    while let Some(p) = frames.next_payload().expect("frame") {
        out.push(p.into_vec());
    }
    assert_eq!(frames.buffered(), 0);
    out
}

fn framed(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    rpyc_wire::frame::encode_frame(payload, None, 1, &mut out).expect("frame");
    out
}

/// The message without the thread prefix, and the recipient thread id.
fn message(payload: &[u8], bind_threads: bool) -> (&[u8], u64) {
    if !bind_threads {
        return (payload, 0);
    }
    let (prefix, rest) = payload.split_at(THREAD_PREFIX_LEN);
    let recipient = u64::from_be_bytes(prefix[8..].try_into().expect("8 bytes"));
    (rest, recipient)
}

/// Record every reference to the server's own objects that `boxed` hands out.
fn export_all(server: &mut Connection<()>, boxed: &Boxed) {
    match boxed {
        Boxed::RemoteRef(id) => {
            let key = (id_u64(&id.class_id), id_u64(&id.instance_id));
            server.export(key, || ()).expect("room");
        }
        Boxed::Tuple(items) => items.iter().for_each(|b| export_all(server, b)),
        _ => {}
    }
}

fn id_u64(v: &Value) -> u64 {
    match v {
        Value::Int(i) => *i as u64,
        Value::BigInt(t) => t.parse().expect("u64 id"),
        other => panic!("id {other:?}"),
    }
}

fn replay(file: &str, bind_threads: bool) {
    let frames = captured(file);
    let config = Config {
        bind_threads,
        ..Config::default()
    };
    let limits = config.limits;
    let mut server: Connection<()> = Connection::new(config, &MemoryBudget::new());
    // Requests of the client awaiting our answer: seq -> thread.
    let mut open: HashMap<Value, u64> = HashMap::new();
    // Releases the core answered by itself.
    let mut released: Vec<Value> = Vec::new();
    let mut next_server = 0;
    let mut closed = false;
    let server_frames: Vec<&Captured> = frames.iter().filter(|f| !f.from_client).collect();
    for frame in frames.iter().filter(|f| f.from_client) {
        let msg = decode_payload(&frame.payload, bind_threads, &limits).expect("client message");
        if let MessageKind::Request { seq, handler, .. } = &msg.kind {
            if handler.as_i64() == Some(handler::DEL) {
                released.push(seq.clone());
            }
        }
        if closed {
            // The client went on after its CLOSE (an answer to a callback): nobody reads it.
            continue;
        }
        server.receive(&framed(&frame.payload)).expect("receive");
        while let Some(event) = server.poll_event().expect("server event") {
            match event {
                Event::Request { seq, thread, .. } | Event::UnknownHandler { seq, thread, .. } => {
                    released.retain(|s| *s != seq);
                    open.insert(seq, thread);
                }
                Event::Reply { .. } | Event::Exception { .. } => {}
                Event::Closed => {
                    closed = true;
                    break;
                }
            }
        }
        // Send, in order, what upstream sent next, as far as it answers what arrived.
        let mut expected = Vec::new();
        while let Some(next) = server_frames.get(next_server) {
            let msg = decode_payload(&next.payload, bind_threads, &limits).expect("server message");
            match msg.kind {
                MessageKind::Reply { seq, body } => {
                    if let Some(thread) = open.remove(&seq) {
                        let boxed = Boxed::from_wire(body).expect("boxed reply");
                        export_all(&mut server, &boxed);
                        server.reply(&seq, thread, &boxed).expect("reply");
                    } else if let Some(i) = released.iter().position(|s| *s == seq) {
                        released.remove(i); // answered by the core already
                    } else {
                        break;
                    }
                }
                MessageKind::Exception { seq, body } => match open.remove(&seq) {
                    Some(thread) => server
                        .reply_exception(&seq, thread, &body)
                        .expect("exception"),
                    None => break,
                },
                MessageKind::Request { seq, handler, args } => {
                    let args = Boxed::from_wire(args)
                        .and_then(Boxed::into_items)
                        .expect("args");
                    let (_, thread) = message(&next.payload, bind_threads);
                    let handler = handler.as_i64().expect("id");
                    let id = server
                        .request_within(thread, handler, &args)
                        .expect("request");
                    assert_eq!(
                        Value::Int(id as i64),
                        seq,
                        "{file}: our seq numbers are upstream's"
                    );
                }
            }
            expected.push(next.payload.clone());
            next_server += 1;
        }
        let mut sent = payloads(&server.take_outgoing());
        // Answers of the same round may leave in another order than upstream's threads
        // happened to write them: compare the round's frames as a set.
        let key = |p: &Vec<u8>| message(p, bind_threads).0.to_vec();
        sent.sort_by_key(key);
        expected.sort_by_key(key);
        assert_eq!(sent.len(), expected.len(), "{file}: frames sent");
        for (ours, theirs) in sent.iter().zip(&expected) {
            let (ours_msg, ours_to) = message(ours, bind_threads);
            let (theirs_msg, theirs_to) = message(theirs, bind_threads);
            assert_eq!(ours_msg, theirs_msg, "{file}: the same message");
            assert_eq!(ours_to, theirs_to, "{file}: to the same thread");
        }
    }
    assert_eq!(
        next_server,
        server_frames.len(),
        "{file}: every upstream frame was sent"
    );
    assert!(
        open.is_empty() && released.is_empty(),
        "{file}: everything answered"
    );
}

#[test]
fn every_captured_session_replays_against_a_server_core() {
    let index = load("sessions-index.json");
    for entry in index.as_array().expect("index") {
        let file = entry["file"].as_str().expect("file");
        replay(file, entry["bind_threads"].as_bool().expect("bind_threads"));
    }
}
