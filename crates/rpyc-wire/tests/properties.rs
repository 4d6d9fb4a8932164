//! Property tests: roundtrips on arbitrary values, no panics on arbitrary bytes, and
//! "whatever the strict decoder accepts re-encodes to the same bytes".

use proptest::prelude::*;
use rpyc_wire::brine::{self, Value};
use rpyc_wire::frame::{self, FrameDecoder, Payload};
use rpyc_wire::message::{decode_payload, encode_payload, Boxed, Message, MessageKind};
use rpyc_wire::{Limits, WireError};

fn small_limits() -> Limits {
    Limits {
        max_frame_size: 1 << 16,
        max_decompressed_size: 1 << 16,
        max_nesting_depth: 16,
    }
}

fn float() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        any::<u64>().prop_map(f64::from_bits), // every bit pattern, NaN payloads included
        Just(0.0),
        Just(-0.0),
        Just(f64::INFINITY),
        Just(f64::NAN),
    ]
}

fn big_int() -> impl Strategy<Value = Value> {
    // 20+ digits with a non-zero lead are always outside i64.
    ("[1-9][0-9]{19,80}", any::<bool>())
        .prop_map(|(digits, neg)| Value::BigInt(if neg { format!("-{digits}") } else { digits }))
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::None),
        Just(Value::Ellipsis),
        Just(Value::NotImplemented),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        (-60i64..200).prop_map(Value::Int),
        big_int(),
        float().prop_map(Value::Float),
        (float(), float()).prop_map(|(r, i)| Value::Complex(r, i)),
        prop::collection::vec(any::<u8>(), 0..300).prop_map(Value::Bytes),
        ".{0,40}".prop_map(Value::Str),
        "x{250,260}".prop_map(Value::Str),
    ]
}

/// Frozenset members that are distinct under Python equality: distinct ints or strings.
fn frozenset() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop::collection::btree_set(any::<i64>(), 0..8)
            .prop_map(|s| Value::FrozenSet(s.into_iter().map(Value::Int).collect())),
        prop::collection::btree_set(".{0,6}", 0..8)
            .prop_map(|s| Value::FrozenSet(s.into_iter().map(Value::Str).collect())),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    let base = prop_oneof![
        8 => leaf(),
        1 => frozenset(),
        // Around the 255/256-member boundary (leaves only, to keep values small).
        1 => prop::collection::vec(any::<i64>().prop_map(Value::Int), 250..260)
            .prop_map(Value::Tuple),
    ];
    base.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Tuple),
            (inner.clone(), inner.clone(), inner).prop_map(|(a, b, c)| Value::slice(a, b, c)),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn encode_decode_roundtrip(v in value()) {
        let bytes = brine::to_vec(&v);
        let back = brine::decode(&bytes, &Limits::default());
        prop_assert_eq!(back, Ok(v.clone()));
        let (prefix, used) = brine::decode_prefix(&[&bytes[..], &[0x99][..]].concat(), &Limits::default()).unwrap();
        prop_assert_eq!(prefix, v);
        prop_assert_eq!(used, bytes.len());
    }

    /// By-value mode (docs/by-value.md) only adds tags: every plain value reads there too,
    /// also wrapped in a by-value list; a plain reader refuses that list.
    #[test]
    fn by_value_mode_accepts_every_plain_value(v in value()) {
        use rpyc_wire::brine::{read, Cursor, Skip, SkipByValue};
        let plain = brine::to_vec(&v);
        let mut listed = vec![0x1c, 0x10];
        listed.extend_from_slice(&plain);
        for data in [&plain, &listed] {
            let mut cur = Cursor::new(data);
            prop_assert!(read(&mut cur, 0, 256, &mut SkipByValue).is_ok());
            prop_assert!(cur.at_end());
        }
        let mut cur = Cursor::new(&listed);
        let refused = matches!(read(&mut cur, 0, 256, &mut Skip), Err(WireError::UnknownTag { tag: 0x1c, .. }));
        prop_assert!(refused);
    }

    #[test]
    fn decode_arbitrary_bytes_never_panics(data in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = brine::decode(&data, &small_limits());
        let _ = brine::decode_prefix(&data, &small_limits());
        let _ = decode_payload(&data, false, &small_limits());
        let _ = decode_payload(&data, true, &small_limits());
    }

    /// The decoder accepts only canonical encodings: anything it accepts re-encodes to the
    /// very same bytes. Mutations of valid encodings exercise the interesting paths.
    #[test]
    fn accepted_input_is_canonical(v in value(), edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4), cut in any::<prop::sample::Index>()) {
        let mut data = brine::to_vec(&v);
        for (at, byte) in edits {
            let i = at.index(data.len());
            data[i] = byte;
        }
        let keep = cut.index(data.len() + 1);
        for slice in [&data[..], &data[..keep]] {
            if let Ok(decoded) = brine::decode(slice, &Limits::default()) {
                prop_assert_eq!(brine::to_vec(&decoded), slice.to_vec());
            }
        }
    }

    #[test]
    fn frame_decoder_on_arbitrary_bytes_never_panics(
        data in prop::collection::vec(any::<u8>(), 0..2048),
        chunks in prop::collection::vec(1usize..64, 1..64),
    ) {
        let mut dec = FrameDecoder::new(small_limits());
        let mut pos = 0;
        for n in chunks.iter().cycle() {
            if pos >= data.len() { break; }
            let end = (pos + n).min(data.len());
            dec.feed(&data[pos..end]).expect("room to buffer");
            pos = end;
            loop {
                match dec.next_payload() {
                    Ok(Some(p)) => { let _ = decode_payload(&p, false, &small_limits()); }
                    Ok(None) => break,
                    Err(_) => return Ok(()),
                }
            }
        }
        let _ = frame::inflate(&data, &small_limits());
    }

    #[test]
    fn frames_roundtrip(payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..4000), 1..6), threshold in prop::option::of(0usize..5000)) {
        let mut stream = Vec::new();
        for p in &payloads {
            frame::encode_frame(p, threshold, 1, &mut stream).unwrap();
        }
        let mut dec = FrameDecoder::new(Limits::default());
        dec.feed(&stream).expect("room to buffer");
        for p in &payloads {
            prop_assert_eq!(dec.next_payload().map(|p| p.map(Payload::into_vec)), Ok(Some(p.clone())));
        }
        prop_assert!(matches!(dec.next_payload(), Ok(None)));
    }

    #[test]
    fn messages_roundtrip(seq in value(), body in value(), kind in 0u8..3, threads in prop::option::of((any::<u64>(), any::<u64>())), bind in any::<bool>()) {
        let boxed = Boxed::Value(body.clone()).to_wire();
        let mut msg = match kind {
            0 => Message::request(seq, 7, boxed),
            1 => Message::reply(seq, boxed),
            _ => Message::exception(seq, body),
        };
        msg.threads = threads;
        let payload = encode_payload(&msg, bind);
        let back = decode_payload(&payload, bind, &Limits::default());
        match back {
            Ok(m) => {
                let mut want = msg.clone();
                want.threads = if bind { Some(threads.unwrap_or((0, 0))) } else { None };
                prop_assert_eq!(m, want);
            }
            // Values nested to the default limit can exceed it inside the envelope.
            Err(WireError::NestingTooDeep { .. }) => {}
            Err(e) => prop_assert!(false, "{e}"),
        }
        if let MessageKind::Request { args, .. } = &msg.kind {
            prop_assert_eq!(Boxed::from_wire(args.clone()).unwrap().to_wire(), args.clone());
        }
    }
}

/// A box tree: values, references, tuples of them.
fn boxed() -> impl Strategy<Value = Boxed> {
    let base = prop_oneof![
        4 => value().prop_map(Boxed::Value),
        1 => (".{0,8}", any::<i64>(), any::<i64>())
            .prop_map(|(n, c, i)| Boxed::LocalRef(rpyc_wire::message::IdPack::new(n, c, i))),
        1 => (".{0,8}", any::<i64>(), any::<i64>())
            .prop_map(|(n, c, i)| Boxed::RemoteRef(rpyc_wire::message::IdPack::new(n, c, i))),
    ];
    base.prop_recursive(3, 24, 4, |inner| {
        prop::collection::vec(inner, 0..4).prop_map(Boxed::Tuple)
    })
}

proptest! {
    /// A request's argument tuple encoded in place (no clone) is byte for byte, and error
    /// for error, what boxing a cloned tuple gives, at any level and depth limit.
    #[test]
    fn tuple_encoded_in_place_matches_the_boxed_tuple(
        items in prop::collection::vec(boxed(), 0..6),
        level in 0usize..4,
        max_depth in 1usize..12,
    ) {
        let mut expected = vec![7u8];
        let want = Boxed::tuple(items.clone()).encode_checked(level, max_depth, &mut expected);
        let mut got = vec![7u8];
        let have = Boxed::encode_tuple_checked(&items, level, max_depth, &mut got);
        prop_assert_eq!(want.is_ok(), have.is_ok());
        prop_assert_eq!(got, expected);
    }
}
