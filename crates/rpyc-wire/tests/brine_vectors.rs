//! Brine against the spec vectors (docs/protocol.md#brine, vectors/brine*.json).

mod common;

use common::{hex, json_to_value, load, unhex};
use rpyc_wire::brine::{self, Value};
use rpyc_wire::{Limits, WireError};

/// (a) Every positive vector: the value tree encodes to exactly `hex`, and `hex` decodes to
/// exactly the value tree (structural equality: floats by bits, so NaN and -0.0 count).
#[test]
fn positive_vectors_encode_and_decode_exactly() {
    let vectors = load("brine.json");
    let vectors = vectors.as_array().expect("array");
    assert_eq!(vectors.len(), 96, "brine.json should hold 96 vectors");
    let limits = Limits::default();
    for v in vectors {
        let repr = v["repr"].as_str().unwrap_or("?");
        let want = unhex(v["hex"].as_str().expect("hex"));
        let value = json_to_value(&v["value"]);
        assert_eq!(hex(&brine::to_vec(&value)), hex(&want), "encode {repr}");
        let decoded = brine::decode(&want, &limits)
            .unwrap_or_else(|e| panic!("decode {repr} ({}): {e}", hex(&want)));
        assert_eq!(decoded, value, "decode {repr}");
        // try_encode agrees with encode on everything upstream can produce.
        let mut out = Vec::new();
        brine::try_encode(&value, &mut out).expect("try_encode");
        assert_eq!(out, want, "try_encode {repr}");
        // decode_prefix reports the whole buffer as used.
        let (again, used) = brine::decode_prefix(&want, &limits).expect("decode_prefix");
        assert_eq!((again, used), (value, want.len()));
    }
}

/// (b) Everything upstream's `brine.load` rejects, we reject too (with a typed error,
/// never a panic).
#[test]
fn negative_vectors_are_errors() {
    let vectors = load("brine-negative.json");
    let vectors = vectors.as_array().expect("array");
    assert_eq!(vectors.len(), 28);
    let limits = Limits::default();
    for v in vectors {
        let data = unhex(v["hex"].as_str().expect("hex"));
        let why = v["why"].as_str().unwrap_or("?");
        match brine::decode(&data, &limits) {
            Ok(value) => panic!("{why}: accepted as {value:?}"),
            Err(e) => {
                // Every error renders a message.
                assert!(!e.to_string().is_empty());
                expect_kind(why, &e);
            }
        }
    }
}

/// The error class we expect for each negative vector, from its upstream exception.
fn expect_kind(why: &str, e: &WireError) {
    let ok = match e {
        WireError::UnknownTag { .. } => why.contains("unassigned") || why.contains("TAG_LONG"),
        WireError::Truncated { .. } => true,
        WireError::NonCanonical { .. } => why.starts_with("TUP_L1 length 2"),
        WireError::BadUnicode { .. } => why.starts_with("UNICODE"),
        WireError::BadInteger { .. } | WireError::IntegerTooLong { .. } => why.starts_with("INT_L"),
        WireError::BadContainer { .. } => why.starts_with("SLICE") || why.starts_with("FSET"),
        _ => false,
    };
    assert!(ok, "{why}: unexpected error {e:?}");
}

/// (c) Forms that upstream's lenient decoder accepts but its encoder never produces. Our
/// decoder is strict (docs/protocol.md#strictness-what-our-decoder-refuses-that-upstream-accepts):
/// accepting them would let a peer smuggle data that does not re-encode to the same bytes (short reads, alternative lengths, `int()` spellings like " 5", "+5", "1_0",
/// FSET over bytes or with duplicates, trailing bytes). Each must be an error.
///
/// One exception: `18 7ff8000000000001`, a NaN with a payload. That is not a lenient parse
/// but a real float: CPython's `struct.pack("!d")` preserves NaN payloads, so upstream's
/// *encoder* produces these bytes for such a float (docs/protocol.md#floats-and-complex-numbers:
/// the eight bytes are passed through, NaN payload included). Rejecting it would break
/// interop, so we accept it and keep the bits.
#[test]
fn lenient_vectors_are_errors_in_the_strict_decoder() {
    let vectors = load("brine-lenient.json");
    let vectors = vectors.as_array().expect("array");
    assert_eq!(vectors.len(), 14);
    let limits = Limits::default();
    let mut rejected = 0;
    for v in vectors {
        let data = unhex(v["hex"].as_str().expect("hex"));
        let why = v["why"].as_str().unwrap_or("?");
        let result = brine::decode(&data, &limits);
        if why.starts_with("FLOAT NaN with payload") {
            let value = result.unwrap_or_else(|e| panic!("{why}: {e}"));
            assert_eq!(value, Value::Float(f64::from_bits(0x7ff8_0000_0000_0001)));
            assert_eq!(
                brine::to_vec(&value),
                data,
                "NaN payload re-encodes unchanged"
            );
            continue;
        }
        match result {
            Ok(value) => panic!("{why}: strict decoder accepted {value:?}"),
            Err(e) => {
                let expected = match hex(&data).as_str() {
                    "0d41" | "0e056162" => matches!(e, WireError::Truncated { .. }),
                    "16022035" | "1603315f30" => matches!(e, WireError::BadInteger { .. }),
                    "17000000022b35" | "160135" | "0e0161" | "140151" | "1a115151" => {
                        matches!(e, WireError::NonCanonical { .. })
                    }
                    "1a0b4142" => matches!(e, WireError::BadContainer { .. }),
                    "5152" | "0001" | "19125151080141" => {
                        matches!(e, WireError::TrailingBytes { .. })
                    }
                    other => panic!("unlisted lenient vector {other}"),
                };
                assert!(expected, "{why}: unexpected error {e:?}");
                rejected += 1;
            }
        }
    }
    assert_eq!(rejected, 13);
}

fn enc(v: &Value) -> String {
    hex(&brine::to_vec(v))
}

fn dec(h: &str) -> Result<Value, WireError> {
    brine::decode(&unhex(h), &Limits::default())
}

#[test]
fn integer_boundaries() {
    assert_eq!(enc(&Value::Int(-48)), "20");
    assert_eq!(enc(&Value::Int(159)), "ef");
    assert_eq!(enc(&Value::Int(0)), "50");
    assert_eq!(enc(&Value::Int(160)), "1603313630");
    assert_eq!(enc(&Value::Int(-49)), "16032d3439");
    assert_eq!(
        enc(&Value::Int(i64::MIN)),
        format!("1614{}", hex(b"-9223372036854775808"))
    );
    // A BigInt whose text fits i64 is written in its canonical short form.
    assert_eq!(enc(&Value::BigInt("5".into())), "55");
    assert_eq!(enc(&Value::BigInt("-300".into())), "16042d333030");
    // 255 characters including '-' is INT_L1; 256 is INT_L4.
    let t255 = format!("-1{}", "0".repeat(253));
    let t256 = format!("-1{}", "0".repeat(254));
    assert_eq!(
        enc(&Value::BigInt(t255.clone())),
        format!("16ff{}", hex(t255.as_bytes()))
    );
    assert_eq!(
        enc(&Value::BigInt(t256.clone())),
        format!("1700000100{}", hex(t256.as_bytes()))
    );
    for t in [t255, t256] {
        assert_eq!(dec(&enc(&Value::BigInt(t.clone()))), Ok(Value::BigInt(t)));
    }
}

#[test]
fn integer_text_limits() {
    // 4300 digits is CPython's limit; the sign does not count.
    for text in ["9".repeat(4300), format!("-{}", "9".repeat(4300))] {
        let v = Value::BigInt(text);
        assert_eq!(dec(&enc(&v)), Ok(v.clone()));
        assert!(brine::try_encode(&v, &mut Vec::new()).is_ok());
    }
    let v = Value::BigInt("9".repeat(4301));
    assert!(matches!(
        dec(&enc(&v)),
        Err(WireError::IntegerTooLong { digits: 4301, .. })
    ));
    let mut out = Vec::new();
    assert!(matches!(
        brine::try_encode(&v, &mut out),
        Err(WireError::Unencodable(_))
    ));
    assert!(out.is_empty(), "try_encode writes nothing on error");
    assert!(matches!(
        brine::try_encode(&Value::BigInt("12a".into()), &mut out),
        Err(WireError::Unencodable(_))
    ));
}

#[test]
fn non_canonical_forms_are_rejected() {
    let cases = [
        ("0e0461626364", "STR_L1 for 4 bytes"),
        (
            &*format!("0f000000ff{}", "61".repeat(255)),
            "STR_L4 for 255 bytes",
        ),
        ("140451525354", "TUP_L1 for 4 items"),
        (
            &*format!("15000000ff{}", "50".repeat(255)),
            "TUP_L4 for 255 items",
        ),
        ("1603313539", "INT_L1 for 159"),
        ("16032d3438", "INT_L1 for -48"),
        ("160130", "INT_L1 for 0"),
        (
            &*format!("17000000ff{}", "31".repeat(255)),
            "INT_L4 for 255 characters",
        ),
        ("1a1151f8", "FSET with an unassigned tag inside"),
        ("1a1151ef51", "FSET(1, 159) then trailing"),
    ];
    for (h, why) in cases {
        assert!(dec(h).is_err(), "{why} was accepted");
    }
    // Canonical neighbours are accepted.
    for h in [
        "0e056162636465",
        "14055152535455",
        "1603313630",
        "16032d3439",
        "1a115152",
    ] {
        assert!(dec(h).is_ok(), "{h} rejected");
    }
    // Bad integer texts.
    for text in ["-0", "0160", "+160", " 160", "160 ", "1_60", "1e3", "", "-"] {
        let data = [&[0x16, text.len() as u8][..], text.as_bytes()].concat();
        assert!(
            matches!(
                brine::decode(&data, &Limits::default()),
                Err(WireError::BadInteger { .. })
            ),
            "{text:?}"
        );
    }
}

#[test]
fn frozenset_duplicates_follow_python_equality() {
    // 1 and True are one member in Python, so upstream never sends both.
    assert!(matches!(
        dec("1a115103"),
        Err(WireError::NonCanonical { .. })
    ));
    // 0.0 and -0.0 likewise.
    assert!(dec("1a1118000000000000000018800000000000000000").is_err());
    // Two NaNs are two members (distinct NaN objects are unequal).
    let nan2 = "1a11187ff8000000000000187ff8000000000000";
    assert_eq!(
        dec(nan2),
        Ok(Value::FrozenSet(vec![
            Value::Float(f64::NAN),
            Value::Float(f64::NAN)
        ]))
    );
    // str and bytes are never equal.
    assert!(dec("1a11080a610a61").is_ok());
}

#[test]
fn slices_and_unicode_are_strict() {
    assert!(matches!(
        dec("1911515152"),
        Err(WireError::BadContainer { .. })
    )); // 2-tuple
    assert!(matches!(
        dec("19135151525354"),
        Err(WireError::BadContainer { .. })
    )); // 4-tuple
    assert!(matches!(
        dec("1914055152535455"),
        Err(WireError::BadContainer { .. })
    ));
    assert!(matches!(dec("1951"), Err(WireError::BadContainer { .. })));
    assert!(matches!(dec("1902"), Err(WireError::BadContainer { .. })));
    assert!(matches!(dec("19"), Err(WireError::Truncated { .. })));
    assert!(matches!(dec("1a"), Err(WireError::Truncated { .. })));
    assert!(matches!(dec("0802"), Err(WireError::BadUnicode { .. })));
    // Surrogates encoded in UTF-8 are not UTF-8 (CPython's decoder agrees).
    assert!(matches!(
        dec("080ceda080"),
        Err(WireError::BadUnicode { .. })
    ));
    // Overlong encodings likewise.
    assert!(matches!(dec("080bc0af"), Err(WireError::BadUnicode { .. })));
}

#[test]
fn error_messages_name_the_problem() {
    let e = dec("15ffffffff").unwrap_err();
    assert_eq!(
        e,
        WireError::Truncated {
            what: "tuple",
            offset: 0
        }
    );
    assert_eq!(e.to_string(), "brine data truncated inside tuple at byte 0");
    let e = dec("5152").unwrap_err();
    assert_eq!(
        e.to_string(),
        "unexpected bytes after the brine value at byte 1"
    );
    let e = dec("115107").unwrap_err();
    assert_eq!(e.to_string(), "unknown brine tag 0x07 at byte 2");
    let deep = format!("{}00", "10".repeat(300));
    let e = brine::decode(
        &unhex(&deep),
        &Limits {
            max_nesting_depth: 64,
            ..Limits::default()
        },
    )
    .unwrap_err();
    assert_eq!(e, WireError::NestingTooDeep { max: 64 });
    assert!(e.to_string().contains("max_nesting_depth=64"));
}
