//! Micro-benchmarks of the sans-IO layers: brine, frames (with and without zlib), the
//! streaming frame decoder, messages.
//!
//! ```sh
//! cargo bench -p rpyc-wire                 # everything, ~1.5 min
//! cargo bench -p rpyc-wire -- frame/       # one group (criterion's name filter)
//! ```
//!
//! Every bench reports bytes per second (`Throughput::Bytes`): for brine and messages
//! the size of the *encoded* form (decode and encode alike, as bench/run.py's brine row),
//! for frames the size of the payload. Measurement times are short on purpose (the
//! machine is small and shared); pass criterion's `--measurement-time` for steadier numbers.

#[path = "../tests/common/mod.rs"]
mod common;

use common::noise;
use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, Criterion, SamplingMode, Throughput,
};
use rpyc_wire::brine::{self, Value};
use rpyc_wire::consts::{handler, COMPRESSION_LEVEL, COMPRESSION_THRESHOLD, MSG_REQUEST};
use rpyc_wire::frame::{self, FrameDecoder};
use rpyc_wire::message::{self, Boxed, IdPack, Message};
use rpyc_wire::Limits;

const MIB: usize = 1 << 20;
/// Chunk size for the streaming decoder (a typical socket read).
const CHUNK: usize = 64 * 1024;

// ----------------------------------------------------------------------------- inputs

/// Boxed arguments of a CALL request as upstream sends them for `proxy(1, 2)`:
/// `(obj, args, kwargs)` with `obj` one of the receiver's own objects.
fn call_args() -> Value {
    Boxed::Tuple(vec![
        Boxed::LocalRef(IdPack::new(
            "builtins.function",
            94_310_452_087_232,
            140_234_567_890_123,
        )),
        Boxed::Value(Value::Tuple(vec![Value::Int(1), Value::Int(2)])),
        Boxed::Value(Value::Tuple(vec![])),
    ])
    .into_wire()
}

/// The small request tuple `(msg, seq, (handler, args))`.
fn small_request() -> Value {
    Value::Tuple(vec![
        Value::Int(MSG_REQUEST.into()),
        Value::Int(4711),
        Value::Tuple(vec![Value::Int(handler::CALL), call_args()]),
    ])
}

/// The ~1 MiB mixed payload of bench/workers/client.py's brine row, item for item:
/// 6,870 tuples of ints (small, 32/48-bit, bignum), ascii and non-ascii str, bytes,
/// floats and a nested tuple. Encodes to 1,046,075 bytes, as upstream's `brine.dump`.
fn mixed_payload() -> Value {
    let items = (0..6870i64)
        .map(|i| {
            Value::Tuple(vec![
                Value::Int(i),
                Value::Int(i * 7919 - 5_000_000),
                Value::Int((i * 2_654_435_761) & 0xFFFF_FFFF_FFFF),
                Value::BigInt((1_180_591_620_717_411_303_424u128 + i as u128).to_string()), // 2**70 + i
                Value::Str(format!("item-{i:06}")),
                Value::Str(format!("ünïcødé ✓ {i}")),
                Value::Bytes((0..i % 48).map(|k| ((i + k) & 0xFF) as u8).collect()),
                Value::Float(i as f64 * 0.5),
                Value::Float(-1.0 / (i + 1) as f64),
                Value::Tuple(vec![
                    Value::Int(i),
                    Value::Str(format!("{i:x}")),
                    Value::Bytes(vec![0; (i % 5) as usize]),
                ]),
            ])
        })
        .collect();
    Value::Tuple(items)
}

/// 1 MiB of compressible bytes: the mixed payload's brine encoding, repeated to size
/// (zlib level 1 shrinks it to about a third).
fn compressible(n: usize) -> Vec<u8> {
    brine::to_vec(&mixed_payload())
        .into_iter()
        .cycle()
        .take(n)
        .collect()
}

fn framed(payload: &[u8], threshold: Option<usize>) -> Vec<u8> {
    let mut wire = Vec::new();
    frame::encode_frame(payload, threshold, COMPRESSION_LEVEL, &mut wire).expect("frame fits");
    wire
}

/// A group for 1 MiB inputs: 10 samples of equal size fit in the short measurement time.
fn bulk_group<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(10).sampling_mode(SamplingMode::Flat);
    g
}

// ----------------------------------------------------------------------------- brine

fn bench_brine(c: &mut Criterion) {
    let limits = Limits::default();
    let inputs = [
        ("small_request", small_request()),
        ("mixed_1MiB", mixed_payload()),
        ("bytes_1MiB", Value::Bytes(noise(MIB))),
    ];
    for (name, value) in &inputs {
        let encoded = brine::to_vec(value);
        let back = brine::decode(&encoded, &limits).expect("decodes");
        assert!(back == *value, "{name}: decode(encode(x)) != x");
        if *name == "mixed_1MiB" {
            // the size upstream's brine.dump gives bench/run.py's payload
            assert_eq!(
                encoded.len(),
                1_046_075,
                "mixed payload drifted from run.py's"
            );
        }
        let mut g = if encoded.len() >= MIB / 2 {
            bulk_group(c, "brine")
        } else {
            c.benchmark_group("brine")
        };
        g.throughput(Throughput::Bytes(encoded.len() as u64));
        let mut out = Vec::with_capacity(encoded.len());
        g.bench_function(format!("encode/{name}"), |b| {
            b.iter(|| {
                out.clear();
                brine::encode(black_box(value), &mut out);
                black_box(out.len())
            })
        });
        g.bench_function(format!("decode/{name}"), |b| {
            b.iter(|| brine::decode(black_box(&encoded), &limits).expect("valid"))
        });
        g.finish();
    }
}

// ----------------------------------------------------------------------------- frames

fn bench_frame(c: &mut Criterion) {
    let limits = Limits::default();
    let inputs = [("compressible", compressible(MIB)), ("random", noise(MIB))];
    let mut g = bulk_group(c, "frame");
    g.throughput(Throughput::Bytes(MIB as u64));
    for (name, payload) in &inputs {
        let mut out = Vec::with_capacity(MIB + 64);
        // plain frames cost the same whatever the bytes are: measured once
        if *name == "random" {
            g.bench_function(format!("encode_plain/{name}"), |b| {
                b.iter(|| {
                    out.clear();
                    frame::encode_frame(black_box(payload), None, COMPRESSION_LEVEL, &mut out)
                        .unwrap();
                    black_box(out.len())
                })
            });
        }
        g.bench_function(format!("encode_zlib/{name}"), |b| {
            b.iter(|| {
                out.clear();
                let t = Some(COMPRESSION_THRESHOLD);
                frame::encode_frame(black_box(payload), t, COMPRESSION_LEVEL, &mut out).unwrap();
                black_box(out.len())
            })
        });
        // What a sender that checks `compression_pays` first does: the 16 KiB trial,
        // then a plain or a compressed frame.
        g.bench_function(format!("encode_trial/{name}"), |b| {
            b.iter(|| {
                out.clear();
                let t = frame::compression_pays(black_box(payload), COMPRESSION_LEVEL)
                    .then_some(COMPRESSION_THRESHOLD);
                frame::encode_frame(payload, t, COMPRESSION_LEVEL, &mut out).unwrap();
                black_box(out.len())
            })
        });
        let mut wires = vec![("zlib", framed(payload, Some(COMPRESSION_THRESHOLD)))];
        if *name == "random" {
            wires.insert(0, ("plain", framed(payload, None)));
        }
        for (kind, wire) in wires {
            g.bench_function(format!("decode_{kind}/{name}"), |b| {
                b.iter(|| {
                    let mut dec = FrameDecoder::new(limits);
                    dec.feed(black_box(&wire)).expect("room to buffer");
                    dec.next_payload().unwrap().expect("one frame")
                })
            });
        }
    }
    g.finish();
}

/// The streaming decoder fed 64 KiB chunks, taking out every complete payload after
/// each chunk (as a connection's reader does).
fn bench_stream(c: &mut Criterion) {
    let limits = Limits::default();
    let call = message::encode_payload(
        &Message::request(4711i64, handler::CALL, call_args()),
        false,
    );
    let mut small_frames = Vec::new();
    while small_frames.len() < MIB {
        frame::encode_frame(
            &call,
            Some(COMPRESSION_THRESHOLD),
            COMPRESSION_LEVEL,
            &mut small_frames,
        )
        .unwrap();
    }
    let inputs = [
        ("one_plain_1MiB_frame", framed(&noise(MIB), None), MIB),
        (
            "one_zlib_1MiB_frame",
            framed(&compressible(MIB), Some(COMPRESSION_THRESHOLD)),
            MIB,
        ),
        // throughput counts payload bytes: frames * payload size
        (
            "small_call_frames",
            small_frames.clone(),
            small_frames.len() / (call.len() + 6) * call.len(),
        ),
    ];
    let mut g = bulk_group(c, "frame_stream_64KiB");
    for (name, wire, payload_bytes) in &inputs {
        g.throughput(Throughput::Bytes(*payload_bytes as u64));
        g.bench_function(*name, |b| {
            b.iter(|| {
                let mut dec = FrameDecoder::new(limits);
                let mut got = 0usize;
                for chunk in black_box(wire).chunks(CHUNK) {
                    dec.feed(chunk).expect("room to buffer");
                    while let Some(p) = dec.next_payload().unwrap() {
                        got += p.len();
                    }
                }
                assert_eq!(got, *payload_bytes);
                got
            })
        });
    }
    g.finish();
}

// ----------------------------------------------------------------------------- messages

fn bench_message(c: &mut Criterion) {
    let limits = Limits::default();
    let msg = Message::request(4711i64, handler::CALL, call_args());
    let payload = message::encode_payload(&msg, false);
    assert!(message::decode_payload(&payload, false, &limits).expect("decodes") == msg);
    let mut g = c.benchmark_group("message");
    g.throughput(Throughput::Bytes(payload.len() as u64));
    let mut out = Vec::with_capacity(64);
    g.bench_function("encode/call_request", |b| {
        b.iter(|| {
            out.clear();
            message::encode_payload_into(black_box(&msg), false, &mut out);
            black_box(out.len())
        })
    });
    g.bench_function("decode/call_request", |b| {
        b.iter(|| message::decode_payload(black_box(&payload), false, &limits).unwrap())
    });
    // message + frame, both directions: what one request costs the sans-IO layers
    g.bench_function("encode_framed/call_request", |b| {
        b.iter(|| {
            out.clear();
            let p = message::encode_payload(black_box(&msg), false);
            frame::encode_frame(&p, Some(COMPRESSION_THRESHOLD), COMPRESSION_LEVEL, &mut out)
                .unwrap();
            black_box(out.len())
        })
    });
    let wire = framed(&payload, Some(COMPRESSION_THRESHOLD));
    g.bench_function("decode_framed/call_request", |b| {
        b.iter(|| {
            let mut dec = FrameDecoder::new(limits);
            dec.feed(black_box(&wire)).expect("room to buffer");
            let p = dec.next_payload().unwrap().expect("one frame");
            message::decode_payload(&p, false, &limits).unwrap()
        })
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_brine, bench_frame, bench_stream, bench_message
}
criterion_main!(benches);
