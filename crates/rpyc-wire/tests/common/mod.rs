//! Shared helpers: locating the spec vectors, hex, JSON value trees.
#![allow(dead_code)]

use rpyc_wire::brine::Value;
use serde_json::Value as Json;
use std::path::PathBuf;

/// The directory holding the spec vectors.
///
/// `RPYC_SPEC_DIR` wins when set (either the spec directory, with a `vectors/` inside, or
/// the vectors directory itself). Otherwise the files committed in `tests/vectors/`
/// (generated from upstream rpyc 6.0.2) are used.
pub fn vectors_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("RPYC_SPEC_DIR") {
        let dir = PathBuf::from(dir);
        let nested = dir.join("vectors");
        return if nested.is_dir() { nested } else { dir };
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

pub fn load(name: &str) -> Json {
    let path = vectors_dir().join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad JSON in {}: {e}", path.display()))
}

pub fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0, "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn float_bits(j: &Json) -> f64 {
    assert_eq!(j["t"], "float", "not a float node: {j}");
    let bits = u64::from_str_radix(j["bits"].as_str().expect("bits"), 16).expect("bits hex");
    f64::from_bits(bits)
}

fn items(j: &Json) -> Vec<Value> {
    j["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(json_to_value)
        .collect()
}

/// The language-neutral value tree of brine.json (docs/protocol.md#test-vectors) as a [`Value`].
pub fn json_to_value(j: &Json) -> Value {
    match j["t"].as_str().expect("t") {
        "none" => Value::None,
        "bool" => Value::Bool(j["v"].as_bool().expect("bool")),
        "ellipsis" => Value::Ellipsis,
        "notimplemented" => Value::NotImplemented,
        "int" => {
            let text = j["v"].as_str().expect("int text");
            match text.parse::<i64>() {
                Ok(i) => Value::Int(i),
                Err(_) => Value::BigInt(text.to_owned()),
            }
        }
        "float" => Value::Float(float_bits(j)),
        "complex" => Value::Complex(float_bits(&j["re"]), float_bits(&j["im"])),
        "bytes" => Value::Bytes(unhex(j["hex"].as_str().expect("hex"))),
        "str" => Value::Str(j["v"].as_str().expect("str").to_owned()),
        "tuple" => Value::Tuple(items(j)),
        "frozenset" => Value::FrozenSet(items(j)),
        "slice" => Value::slice(
            json_to_value(&j["start"]),
            json_to_value(&j["stop"]),
            json_to_value(&j["step"]),
        ),
        other => panic!("unknown value tree node {other}"),
    }
}

/// A tiny deterministic PRNG (xorshift64*) for chunking streams.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish in `1..=max`.
    pub fn size(&mut self, max: usize) -> usize {
        1 + (self.next() % max as u64) as usize
    }
}

/// Drop a value without recursion (Rust's generated drop glue recurses, which overflows
/// the stack for values nested tens of thousands deep).
pub fn drop_flat(v: Value) {
    let mut todo = vec![v];
    while let Some(v) = todo.pop() {
        match v {
            Value::Tuple(items) | Value::FrozenSet(items) => todo.extend(items),
            Value::Slice(parts) => {
                let (a, b, c) = *parts;
                todo.extend([a, b, c]);
            }
            _ => {}
        }
    }
}

/// The next payload as a plain vector (payloads compare as byte vectors in tests).
#[allow(dead_code)]
pub fn next_vec(
    dec: &mut rpyc_wire::frame::FrameDecoder,
) -> Result<Option<Vec<u8>>, rpyc_wire::WireError> {
    dec.next_payload()
        .map(|p| p.map(rpyc_wire::frame::Payload::into_vec))
}

/// Bytes zlib cannot shrink (xorshift).
pub fn noise(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}
