//! Message and boxing codec (docs/protocol.md#messages, #boxing).

mod common;

use common::{hex, unhex};
use rpyc_wire::brine::{self, Value};
use rpyc_wire::consts::{handler, MSG_EXCEPTION, MSG_REPLY, MSG_REQUEST};
use rpyc_wire::frame;
use rpyc_wire::message::{
    decode_payload, encode_payload, encode_payload_into, split_payload, Boxed, IdPack, Message,
    MessageKind,
};
use rpyc_wire::{Limits, WireError};

fn lim() -> Limits {
    Limits::default()
}

fn unit_args() -> Value {
    Boxed::Value(Value::Tuple(vec![])).to_wire()
}

#[test]
fn getroot_request_matches_the_annotated_session() {
    let msg = Message::request(0i64, handler::GETROOT, unit_args());
    assert_eq!(hex(&encode_payload(&msg, false)), "0111501153115102");
    let mut framed = Vec::new();
    frame::encode_frame(&encode_payload(&msg, false), Some(3000), 1, &mut framed).unwrap();
    assert_eq!(hex(&framed), "000000080001115011531151020a");
    // With bind_threads (docs/protocol.md#a-thread-bound-request).
    let bound = msg.clone().with_threads(0x7f5e30e4ab80, 0);
    assert_eq!(
        hex(&encode_payload(&bound, true)),
        "00007f5e30e4ab8000000000000000000111501153115102"
    );
    let back = decode_payload(&encode_payload(&bound, true), true, &lim()).unwrap();
    assert_eq!(back, bound);
    assert_eq!(back.handler_id(), Some(handler::GETROOT));
    assert_eq!(back.msg_type(), MSG_REQUEST);
    // bind_threads without ids writes zeros; without bind_threads ids are dropped.
    assert_eq!(&encode_payload(&msg, true)[..16], &[0u8; 16]);
    assert_eq!(encode_payload(&bound, false), encode_payload(&msg, false));
}

#[test]
fn stop_iteration_exception_frame() {
    let msg = Message::exception(5i64, Value::Int(1));
    assert_eq!(msg.msg_type(), MSG_EXCEPTION);
    let mut framed = Vec::new();
    frame::encode_frame(&encode_payload(&msg, false), Some(3000), 1, &mut framed).unwrap();
    assert_eq!(hex(&framed), "0000000400031155510a");
}

#[test]
fn any_seq_value_roundtrips() {
    for seq in [
        Value::str("abc"),
        Value::Int(-5),
        Value::Int(1 << 40),
        Value::BigInt("123456789012345678901234567890".into()),
        Value::None,
        Value::Tuple(vec![Value::Int(1), Value::Float(2.5)]),
    ] {
        let msg = Message::reply(seq.clone(), Boxed::Value(Value::None).to_wire());
        let mut out = vec![0xaa];
        encode_payload_into(&msg, false, &mut out);
        assert_eq!(out[1], MSG_REPLY);
        let back = decode_payload(&out[1..], false, &lim()).unwrap();
        assert_eq!(back.seq(), &seq);
        assert_eq!(back, msg);
    }
}

#[test]
fn unknown_message_types_are_refused() {
    for t in [0u8, 4, 7, 0xff] {
        let payload = [&[t][..], &unhex("11505102")[..]].concat();
        let e = decode_payload(&payload, false, &lim()).unwrap_err();
        assert_eq!(e, WireError::UnknownMessageType(t));
        assert!(e.to_string().contains("bind_threads"));
    }
    // A thread-bound payload read without bind_threads: its first byte is an id byte.
    let bound = encode_payload(
        &Message::request(0i64, handler::GETROOT, unit_args()).with_threads(1, 0),
        true,
    );
    assert_eq!(
        decode_payload(&bound, false, &lim()),
        Err(WireError::UnknownMessageType(0))
    );
}

#[test]
fn short_payload_with_bind_threads_names_the_setting() {
    let plain = encode_payload(
        &Message::request(0i64, handler::GETROOT, unit_args()),
        false,
    );
    assert_eq!(plain.len(), 8);
    for payload in [&plain[..], &[][..], &[0u8; 15][..]] {
        match decode_payload(payload, true, &lim()) {
            Err(WireError::BadMessage(why)) => {
                assert!(why.contains("bind_threads"), "{why}");
                assert!(why.contains("16-byte"), "{why}");
            }
            other => panic!("{other:?}"),
        }
    }
    // Prefix but no type byte.
    assert!(matches!(
        decode_payload(&[0u8; 16], true, &lim()),
        Err(WireError::BadMessage(_))
    ));
    assert!(matches!(
        decode_payload(&[], false, &lim()),
        Err(WireError::BadMessage(_))
    ));
}

#[test]
fn malformed_bodies_are_refused() {
    type Check = fn(&WireError) -> bool;
    let cases: &[(&str, Check)] = &[
        // (seq, body) is not a pair.
        ("0251", |e| matches!(e, WireError::BadMessage(_))),
        ("0212515151", |e| matches!(e, WireError::BadMessage(_))),
        ("0202", |e| matches!(e, WireError::BadMessage(_))),
        // Trailing bytes after the pair (upstream ignores them; we do not).
        ("0211515151", |e| {
            matches!(e, WireError::TrailingBytes { .. })
        }),
        // Truncated body.
        ("021150", |e| matches!(e, WireError::Truncated { .. })),
        // A request body that is not (handler, args).
        ("01115053", |e| matches!(e, WireError::BadMessage(_))),
        ("01115012535151", |e| matches!(e, WireError::BadMessage(_))),
    ];
    for (h, ok) in cases {
        let e = decode_payload(&unhex(h), false, &lim()).unwrap_err();
        assert!(ok(&e), "{h}: {e:?}");
    }
}

#[test]
fn split_payload_exposes_the_body() {
    let payload = unhex("00000000000000010000000000000002021150115100");
    let h = split_payload(&payload, true).unwrap();
    assert_eq!(h.threads, Some((1, 2)));
    assert_eq!(h.msg_type, MSG_REPLY);
    assert_eq!(hex(h.body), "1150115100");
    let msg = decode_payload(&payload, true, &lim()).unwrap();
    assert_eq!(
        msg.kind,
        MessageKind::Reply {
            seq: Value::Int(0),
            body: Boxed::Value(Value::None).to_wire()
        }
    );
}

#[test]
fn boxing_labels() {
    let pack = IdPack::new("__main__.AddService", 94852551336768, 139855731571984);
    assert!(!pack.is_class());
    assert!(IdPack::new("builtins.list", 7, 0).is_class());
    let cases = [
        (Boxed::Value(Value::Int(15)), "11515f"),
        (Boxed::Value(Value::Tuple(vec![])), "115102"),
        (
            Boxed::Tuple(vec![
                Boxed::LocalRef(IdPack::new("a", 1, 2)),
                Boxed::Value(Value::str("add")),
            ]),
            "11521111531208 0a61 5152 1151080c616464",
        ),
        (
            Boxed::RemoteRef(IdPack::new("b", 3, 0)),
            "1154120 80a62 5350",
        ),
    ];
    for (boxed, h) in cases {
        let h: String = h.chars().filter(|c| !c.is_whitespace()).collect();
        assert_eq!(hex(&brine::to_vec(&boxed.to_wire())), h, "{boxed:?}");
        let mut direct = Vec::new();
        boxed.encode(&mut direct);
        assert_eq!(hex(&direct), h);
        let back = Boxed::from_wire(brine::decode(&unhex(&h), &lim()).unwrap()).unwrap();
        assert_eq!(back, boxed);
        assert_eq!(back.into_wire(), boxed.to_wire());
    }
    // The REMOTE_REF of the annotated session.
    let wire = brine::decode(
        &unhex("115412080e135f5f6d61696e5f5f2e41646453657276696365160e3934383532353531333336373638160f313339383535373331353731393834"),
        &lim(),
    )
    .unwrap();
    assert_eq!(Boxed::from_wire(wire).unwrap(), Boxed::RemoteRef(pack));
}

#[test]
fn boxing_errors() {
    let bad = |h: &str| Boxed::from_wire(brine::decode(&unhex(h), &lim()).unwrap());
    for (h, needle) in [
        ("115500", "invalid label 5"),
        ("115000", "invalid label 0"),
        ("110300", "invalid label True"),
        ("11080a3100", "invalid label a str"),
        ("1152 51", "LABEL_TUPLE"),
        ("51", "(label, value) pair"),
        ("12515151", "(label, value) pair"),
        ("115310 51", "id_pack"),
        ("1153 12 0a61 51 52", "id_pack"), // bytes name
        ("1154 12 080a61 183ff0000000000000 52", "id_pack"), // float id
        ("1154 12 080a61 03 52", "id_pack"), // bool id
        ("1152 10 51", "(label, value) pair"), // member of a LABEL_TUPLE is not a box
    ] {
        let h: String = h.chars().filter(|c| !c.is_whitespace()).collect();
        match bad(&h) {
            Err(WireError::BadMessage(why)) => assert!(why.contains(needle), "{h}: {why}"),
            other => panic!("{h}: {other:?}"),
        }
    }
    // Big-int ids from a hostile peer stay representable.
    let big = "1154 12 080a61 1614 3939393939393939393939393939393939393939 50";
    let big: String = big.chars().filter(|c| !c.is_whitespace()).collect();
    match bad(&big).unwrap() {
        Boxed::RemoteRef(p) => {
            assert_eq!(p.class_id, Value::BigInt("9".repeat(20)));
            assert_eq!(p.class_id_i64(), None);
            assert!(p.is_class());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn boxing_tuples_like_upstream() {
    // All members by value: one LABEL_VALUE box.
    let t = Boxed::tuple(vec![
        Boxed::Value(Value::Int(5)),
        Boxed::Value(Value::Int(10)),
    ]);
    assert_eq!(
        t,
        Boxed::Value(Value::Tuple(vec![Value::Int(5), Value::Int(10)]))
    );
    // One reference: LABEL_TUPLE with each member boxed.
    let t = Boxed::tuple(vec![
        Boxed::RemoteRef(IdPack::new("f", 1, 2)),
        Boxed::Value(Value::Int(20)),
    ]);
    assert!(matches!(&t, Boxed::Tuple(items) if items.len() == 2));
    assert_eq!(t.clone().into_items().unwrap().len(), 2);
    assert_eq!(
        Boxed::Value(Value::Tuple(vec![Value::Int(1)])).into_items(),
        Ok(vec![Boxed::Value(Value::Int(1))])
    );
    assert!(Boxed::Value(Value::Int(1)).into_items().is_err());
    assert!(Boxed::LocalRef(IdPack::new("x", 1, 1))
        .into_items()
        .is_err());
}

#[test]
fn id_pack_wire_form() {
    let p = IdPack::new("builtins.method", 139855751582400, 139855740290176);
    let v = p.to_value();
    assert_eq!(
        hex(&brine::to_vec(&v)),
        "12080e0f6275696c74696e732e6d6574686f64160f313339383535373531353832343030160f313339383535373430323930313736"
    );
    assert_eq!(IdPack::from_value(v.clone()), Ok(p.clone()));
    assert_eq!(p.into_value(), v);
}
