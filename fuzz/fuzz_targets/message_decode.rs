//! Message layer on arbitrary payloads (what a frame carries once inflated): message type,
//! the optional `bind_threads` prefix, `(seq, body)`, request `(handler, args)`, then the
//! boxing layer (labels, LABEL_TUPLE nesting, id_packs) on the request arguments and the
//! reply body.
//!
//! Checks: no panic, no hang; allocation bounded by the payload; `split_payload` agrees
//! with `decode_payload`; a decoded message re-encodes to exactly the payload; a value that
//! unboxes re-boxes (`to_wire`, `into_wire`, `encode`) to exactly what was received, and
//! so does an id_pack.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rpyc_wire::brine::{self, Value};
use rpyc_wire::consts::THREAD_PREFIX_LEN;
use rpyc_wire::message::{self, Boxed, IdPack, Message, MessageKind};
use rpyc_wire::{Limits, WireError};
use rpyc_wire_fuzz::{brine_alloc_bound, check_brine, depth, is_brine_error, peak_during};

const LIMITS: Limits = Limits {
    max_frame_size: 1 << 20,
    max_decompressed_size: 1 << 20,
    max_nesting_depth: 32,
};

fuzz_target!(|data: &[u8]| {
    for bind_threads in [false, true] {
        check_message(data, bind_threads);
    }
});

fn check_message(data: &[u8], bind_threads: bool) {
    let (result, peak) = peak_during(|| message::decode_payload(data, bind_threads, &LIMITS));
    assert!(
        peak <= brine_alloc_bound(data.len()),
        "decoding a {}-byte payload allocated {peak} bytes",
        data.len()
    );
    let split = message::split_payload(data, bind_threads);
    let msg = match result {
        Ok(msg) => msg,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            match e {
                WireError::BadMessage(_) | WireError::UnknownMessageType(_) => {}
                e => {
                    // The header was fine; the brine body was not.
                    assert!(is_brine_error(&e), "unexpected error {e:?}");
                    let header = split.expect("split_payload accepts what reached brine");
                    check_brine(header.body, &brine::decode(header.body, &LIMITS), 32);
                }
            }
            return;
        }
    };
    let header = split.expect("split_payload accepts a decodable payload");
    assert_eq!(header.msg_type, msg.msg_type());
    assert_eq!(header.threads, msg.threads);
    assert_eq!(msg.threads.is_some(), bind_threads);
    let prefix = if bind_threads { THREAD_PREFIX_LEN } else { 0 };
    assert_eq!(header.body.len() + prefix + 1, data.len());

    // Canonical all the way down: encoding the message gives the payload back.
    assert_eq!(message::encode_payload(&msg, bind_threads), data);
    for v in parts(&msg) {
        assert!(depth(v) < LIMITS.max_nesting_depth);
    }

    match &msg.kind {
        MessageKind::Request { handler, args, .. } => {
            assert_eq!(msg.handler_id(), handler.as_i64());
            check_boxed(args);
            if let Ok(b) = Boxed::from_wire(args.clone()) {
                // A request's arguments are a boxed tuple; members unbox one by one.
                if let Ok(items) = b.into_items() {
                    for item in items {
                        let wire = item.to_wire();
                        assert_eq!(Boxed::from_wire(wire), Ok(item));
                    }
                }
            }
        }
        MessageKind::Reply { body, .. } => check_boxed(body),
        // Exception bodies are not boxed; they still must not upset the unboxer.
        MessageKind::Exception { body, .. } => {
            let _ = Boxed::from_wire(body.clone());
        }
    }
}

fn parts(msg: &Message) -> Vec<&Value> {
    match &msg.kind {
        MessageKind::Request { seq, handler, args } => vec![seq, handler, args],
        MessageKind::Reply { seq, body } | MessageKind::Exception { seq, body } => {
            vec![seq, body]
        }
    }
}

/// Unbox `v`; when that works, every way back to the wire gives `v` again.
fn check_boxed(v: &Value) {
    let Ok(boxed) = Boxed::from_wire(v.clone()) else {
        return;
    };
    assert_eq!(&boxed.to_wire(), v, "to_wire differs from what was unboxed");
    let mut direct = Vec::new();
    boxed.encode(&mut direct);
    assert_eq!(direct, brine::to_vec(v), "Boxed::encode differs from brine");
    check_id_packs(&boxed);
    assert_eq!(
        &boxed.into_wire(),
        v,
        "into_wire differs from what was unboxed"
    );
}

fn check_id_packs(b: &Boxed) {
    let mut todo = vec![b];
    while let Some(b) = todo.pop() {
        match b {
            Boxed::Value(_) => {}
            Boxed::Tuple(items) => todo.extend(items),
            Boxed::LocalRef(id) | Boxed::RemoteRef(id) => {
                assert!(id.class_id.is_int() && id.instance_id.is_int());
                assert_eq!(IdPack::from_value(id.to_value()).as_ref(), Ok(id));
                assert_eq!(id.is_class(), id.instance_id == Value::Int(0));
                assert_eq!(id.clone().into_value(), id.to_value());
            }
        }
    }
}
