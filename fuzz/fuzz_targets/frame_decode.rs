//! Streaming frame decoder, including inflate, on arbitrary bytes, under small limits.
//!
//! Checks: no panic, no hang (every error but a sticky `FrameTooLarge` consumes its
//! frame, and no byte is lost or invented); the same payloads and errors whether the bytes
//! arrive at once or in pieces, and whether frames are taken with `next_payload` or with
//! `next_raw` + `inflate`, and whether pieces go in with `feed` or with `read_buf` +
//! `commit` (reads into the room the decoder lends); payloads respect `max_frame_size` /
//! `max_decompressed_size`; `feed`, reads and `next_payload` allocate at most the limits
//! plus a constant; `inflate` is exact at its limit (a stream of n bytes inflates under a
//! limit of n, fails under n - 1); payloads re-frame to themselves.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rpyc_wire::consts::FRAME_HEADER_LEN;
use rpyc_wire::frame::{self, FrameDecoder, FrameHeader, Payload, READ_CHUNK};
use rpyc_wire::{Limits, WireError};
use rpyc_wire_fuzz::peak_during;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

/// Small limits: a zlib bomb stops early and every limit is within the fuzzer's reach.
const LIMITS: Limits = Limits {
    max_frame_size: 8 * 1024,
    max_decompressed_size: 16 * 1024,
    max_nesting_depth: 16,
};

/// What `next_payload` may allocate at once: the payload (inflate grows its output to at
/// most the limit + 1, and a moving realloc holds old and new block) plus the zlib state.
const NEXT_PAYLOAD_BOUND: usize = 2 * (LIMITS.max_decompressed_size + 1) + 128 * 1024;

/// Compressed frames per input whose inflate limit is probed (each probe inflates twice).
const LIMIT_PROBES: usize = 4;

#[derive(Debug, PartialEq)]
enum Outcome {
    Payload { len: usize, digest: u64 },
    Error(WireError),
}

impl Outcome {
    fn of(result: Result<&[u8], WireError>) -> Outcome {
        match result {
            Ok(p) => {
                let mut h = DefaultHasher::new();
                p.hash(&mut h);
                Outcome::Payload {
                    len: p.len(),
                    digest: h.finish(),
                }
            }
            Err(e) => Outcome::Error(e),
        }
    }
}

/// A deterministic (per input) xorshift stream, for chunk sizes and take methods.
struct Schedule(u64);

impl Schedule {
    fn new(data: &[u8]) -> Schedule {
        let seed = data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        Schedule(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Mostly tiny pieces (headers split anywhere), sometimes big ones.
    fn chunk(&mut self, left: usize) -> usize {
        let x = self.next();
        let n = match x % 4 {
            0 => 1,
            1 => (x >> 8) as usize % 8 + 1,
            2 => (x >> 8) as usize % 64 + 1,
            _ => (x >> 8) as usize % 4096 + 1,
        };
        n.min(left)
    }
}

/// How a run feeds bytes and takes frames.
enum Mode {
    /// Everything in one `feed`, frames via `next_payload`, each payload checked.
    Whole,
    /// Pieces from the schedule; frames via `next_payload` or `next_raw` + `inflate`.
    Pieces(Schedule),
}

fn run(data: &[u8], mut mode: Mode) -> Vec<Outcome> {
    let mut dec = FrameDecoder::new(LIMITS);
    let mut outcomes = Vec::new();
    let mut probes = 0;
    let mut fed = 0;
    let mut taken = 0; // bytes of frames consumed
    while fed < data.len() || fed == 0 {
        let n = match &mut mode {
            Mode::Whole => data.len(),
            Mode::Pieces(s) => s.chunk(data.len() - fed),
        };
        let piece = &data[fed..fed + n];
        let into_room = match &mut mode {
            Mode::Whole => false,
            Mode::Pieces(s) => s.next() & 2 == 2,
        };
        if into_room {
            let (_, peak) = peak_during(|| read_into_room(&mut dec, piece));
            // The room lent grows with what arrived (about 4x), one read's worth at least.
            assert!(
                peak <= 4 * dec.buffered() + READ_CHUNK + 64,
                "reads of {n} bytes allocated {peak} with {} buffered",
                dec.buffered()
            );
        } else {
            let (_, peak) = peak_during(|| dec.feed(piece).expect("room to buffer"));
            // Amortised buffer: consumed bytes are dropped once they are at least half of
            // it, and a Vec grows by doubling, so capacity stays within 4x what is buffered.
            assert!(
                peak <= 4 * dec.buffered() + 64,
                "feed of {n} bytes allocated {peak} with {} buffered",
                dec.buffered()
            );
        }
        fed += n;
        assert_eq!(taken + dec.buffered(), fed, "bytes lost or invented");
        loop {
            let before = dec.buffered();
            let raw = match &mut mode {
                Mode::Whole => false,
                Mode::Pieces(s) => s.next() & 1 == 1,
            };
            let result = if raw {
                dec.next_raw().map(|f| {
                    f.map(|(header, body)| {
                        assert_eq!(body.len(), header.len as usize);
                        if header.compressed {
                            frame::inflate(&body, &LIMITS)
                        } else {
                            Ok(body)
                        }
                    })
                })
            } else {
                let (result, peak) = peak_during(|| dec.next_payload());
                assert!(peak <= NEXT_PAYLOAD_BOUND, "next_payload allocated {peak}");
                result.map(|p| p.map(|p| Ok(p.into_vec())))
            };
            let used = before - dec.buffered();
            taken += used;
            match result {
                Ok(None) => {
                    assert_eq!(used, 0);
                    break;
                }
                Ok(Some(payload)) => {
                    assert!(used > FRAME_HEADER_LEN, "a frame was returned unconsumed");
                    let wire = &data[fed - before..][..used];
                    if matches!(mode, Mode::Whole) {
                        if let Ok(p) = &payload {
                            let probe = probes < LIMIT_PROBES;
                            probes += usize::from(check_payload(wire, p, probe));
                        }
                    }
                    if let Err(e) = &payload {
                        check_frame_error(e);
                    }
                    outcomes.push(Outcome::of(payload.as_deref().map_err(Clone::clone)));
                }
                Err(e @ WireError::FrameTooLarge { .. }) => {
                    // Sticky: the stream cannot be resynchronised.
                    assert_eq!(used, 0);
                    assert_eq!(
                        dec.next_payload().map(|p| p.map(Payload::into_vec)),
                        Err(e.clone())
                    );
                    assert_eq!(dec.next_raw(), Err(e.clone()));
                    outcomes.push(Outcome::Error(e));
                    return outcomes;
                }
                Err(e) => {
                    // Inflate errors come from next_payload only, and consume the frame.
                    check_frame_error(&e);
                    assert!(used > FRAME_HEADER_LEN, "a failed frame was not consumed");
                    outcomes.push(Outcome::Error(e));
                }
            }
        }
        if data.is_empty() {
            break;
        }
    }
    outcomes
}

/// `piece` as a transport hands it over through `read_buf` and `commit` (what a read of
/// the room lent would have received), or through `feed` when no room is lent (a header
/// over the limit: drivers read into a buffer of their own then).
fn read_into_room(dec: &mut FrameDecoder, piece: &[u8]) {
    let mut at = 0;
    while at < piece.len() {
        match dec.read_buf() {
            Ok(room) => {
                assert!(!room.is_empty(), "no room lent");
                let k = room.len().min(piece.len() - at);
                room[..k].copy_from_slice(&piece[at..at + k]);
                dec.commit(k);
                at += k;
            }
            Err(WireError::FrameTooLarge { .. }) => {
                dec.feed(&piece[at..]).expect("room to buffer");
                at = piece.len();
            }
            Err(e) => panic!("read_buf failed: {e:?}"),
        }
    }
}

fn check_frame_error(e: &WireError) {
    assert!(
        matches!(
            e,
            WireError::BadCompression(_) | WireError::DecompressedTooLarge { .. }
        ),
        "unexpected error {e:?}"
    );
    assert!(!e.to_string().is_empty());
}

/// `wire` is the whole frame (header, payload, trailer) that produced `payload`.
/// Returns whether the inflate limit was probed.
fn check_payload(wire: &[u8], payload: &[u8], probe: bool) -> bool {
    let head: &[u8; FRAME_HEADER_LEN] = wire[..FRAME_HEADER_LEN].try_into().expect("5 bytes");
    let header = FrameHeader::parse(head, &LIMITS).expect("a returned frame has a valid header");
    assert_eq!(wire.len(), FRAME_HEADER_LEN + header.body_len());
    let body = &wire[FRAME_HEADER_LEN..wire.len() - 1];

    // Framing the payload again (uncompressed) gives it back; for an uncompressed frame,
    // header and payload are the original bytes (the trailer is not checked by design).
    let mut again = Vec::new();
    frame::encode_frame(payload, None, 1, &mut again).expect("small payload");
    if header.compressed {
        assert!(payload.len() <= LIMITS.max_decompressed_size);
        // An inflated payload may exceed max_frame_size, which limits the wire size.
        let mut dec = FrameDecoder::new(Limits {
            max_frame_size: LIMITS.max_decompressed_size,
            ..LIMITS
        });
        dec.feed(&again).expect("room to buffer");
        assert_eq!(
            dec.next_payload().map(|p| p.map(Payload::into_vec)),
            Ok(Some(payload.to_vec()))
        );
        assert_eq!(dec.buffered(), 0);
    } else {
        assert!(payload.len() <= LIMITS.max_frame_size);
        assert_eq!(payload, body);
        assert_eq!(&again[..again.len() - 1], &wire[..wire.len() - 1]);
        return false;
    }

    // The limit is exact: the same stream inflates under a limit of its output size and
    // fails with DecompressedTooLarge one byte below.
    if !probe {
        return false;
    }
    let exact = Limits {
        max_decompressed_size: payload.len(),
        ..LIMITS
    };
    assert_eq!(frame::inflate(body, &exact).as_deref(), Ok(payload));
    if let Some(max) = payload.len().checked_sub(1) {
        let under = Limits {
            max_decompressed_size: max,
            ..LIMITS
        };
        assert_eq!(
            frame::inflate(body, &under),
            Err(WireError::DecompressedTooLarge { max })
        );
    }
    true
}

fuzz_target!(|data: &[u8]| {
    let whole = run(data, Mode::Whole);
    let pieces = run(data, Mode::Pieces(Schedule::new(data)));
    assert_eq!(
        whole, pieces,
        "results depend on chunking or on the take method"
    );
});
