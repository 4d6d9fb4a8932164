//! Frame codec (docs/protocol.md#frames): limits, compression policy, trailer, hostile input.

mod common;

use common::{hex, next_vec, noise, unhex};
use flate2::{Compress, Compression, FlushCompress};
use rpyc_wire::consts::COMPRESSION_THRESHOLD;
use rpyc_wire::frame::{self, FrameDecoder, FrameHeader};
use rpyc_wire::limits::MIB;
use rpyc_wire::{Limits, WireError};

fn frame_bytes(len: u32, flag: u8, payload: &[u8], trailer: u8) -> Vec<u8> {
    let mut v = len.to_be_bytes().to_vec();
    v.push(flag);
    v.extend_from_slice(payload);
    v.push(trailer);
    v
}

#[test]
fn oversize_header_is_refused_before_any_payload() {
    let limits = Limits::default();
    let head = [0xc0, 0, 0, 0, 0]; // 3 GiB
    let e = FrameHeader::parse(&head, &limits).unwrap_err();
    assert_eq!(
        e,
        WireError::FrameTooLarge {
            size: 3 << 30,
            max: 256 * MIB
        }
    );
    let msg = e.to_string();
    assert!(
        msg.starts_with("frame of 3 GiB exceeds max_frame_size=256 MiB"),
        "{msg}"
    );

    // The decoder refuses it as soon as the header is in, with only 10 payload bytes
    // buffered: nothing of the announced size is allocated.
    let mut dec = FrameDecoder::new(limits);
    dec.feed(&head[..4]).expect("room to buffer");
    assert_eq!(next_vec(&mut dec), Ok(None));
    dec.feed(&head[4..]).expect("room to buffer");
    dec.feed(&[0u8; 10]).expect("room to buffer");
    assert_eq!(next_vec(&mut dec), Err(e.clone()));
    assert_eq!(dec.buffered(), 15);
    // It stays refused: the stream cannot be resynchronised.
    assert_eq!(next_vec(&mut dec), Err(e));

    // Exactly the limit is fine; one more byte is not.
    let small = Limits {
        max_frame_size: 100,
        ..Limits::default()
    };
    assert!(FrameHeader::parse(&[0, 0, 0, 100, 0], &small).is_ok());
    assert!(matches!(
        FrameHeader::parse(&[0, 0, 0, 101, 0], &small),
        Err(WireError::FrameTooLarge {
            size: 101,
            max: 100
        })
    ));
}

/// Build a zlib stream of `total` zero bytes at level 9 without compressing all of them:
/// after the first few chunks every sync-flushed chunk of zeros compresses to the same
/// bytes (the window is all zeros), so the middle is repeated.
fn zlib_of_zeros(total: usize) -> Vec<u8> {
    const CHUNK: usize = 1 << 20;
    assert!(total % CHUNK == 0 && total / CHUNK >= 4);
    let zeros = vec![0u8; CHUNK];
    let mut c = Compress::new(Compression::best(), true);
    let chunk = |c: &mut Compress, flush| {
        let mut out = Vec::with_capacity(CHUNK);
        let before = c.total_in();
        c.compress_vec(&zeros, &mut out, flush).expect("compress");
        assert_eq!(
            c.total_in() - before,
            CHUNK as u64,
            "one call takes the chunk"
        );
        out
    };
    let first = chunk(&mut c, FlushCompress::Sync);
    let second = chunk(&mut c, FlushCompress::Sync);
    let third = chunk(&mut c, FlushCompress::Sync);
    assert_eq!(second, third, "steady-state chunks compress identically");
    let mut stream = first;
    for _ in 1..total / CHUNK - 1 {
        stream.extend_from_slice(&second);
    }
    // The last chunk ends the stream; the Adler-32 that `c` computed covers only the
    // chunks it saw, so replace it with the checksum of all `total` zeros.
    let last = chunk(&mut c, FlushCompress::Finish);
    let body_end = last.len() - 4;
    stream.extend_from_slice(&last[..body_end]);
    // Adler-32 of `total` zero bytes: a = 1, b = total mod 65521.
    let b = (total % 65521) as u32;
    stream.extend_from_slice(&((b << 16) | 1).to_be_bytes());
    stream
}

#[test]
fn zlib_bomb_is_refused_with_decompressed_too_large() {
    // 1 GiB of zeros in about 1 MiB of zlib.
    let bomb = zlib_of_zeros(1 << 30);
    eprintln!("bomb: {} bytes of zlib for 1 GiB", bomb.len());
    assert!(bomb.len() < 2 * MIB, "bomb is {} bytes", bomb.len());
    let limits = Limits::default();
    assert_eq!(
        frame::inflate(&bomb, &limits),
        Err(WireError::DecompressedTooLarge { max: 256 * MIB })
    );
    let e = WireError::DecompressedTooLarge { max: 256 * MIB };
    assert!(e.to_string().contains("max_decompressed_size=256 MiB"));

    // Through the frame decoder (under a smaller limit: inflating 256 MiB again is slow in
    // unoptimised test builds).
    let limits16 = Limits {
        max_decompressed_size: 16 * MIB,
        ..limits
    };
    let mut dec = FrameDecoder::new(limits16);
    dec.feed(&frame_bytes(bomb.len() as u32, 1, &bomb, b'\n'))
        .expect("room to buffer");
    assert_eq!(
        next_vec(&mut dec),
        Err(WireError::DecompressedTooLarge { max: 16 * MIB })
    );

    // The same bomb is fine under a limit that allows it: the stream is valid
    // (a smaller one, to keep the test light).
    let small = zlib_of_zeros(8 * MIB);
    let roomy = Limits {
        max_decompressed_size: 8 * MIB,
        ..Limits::default()
    };
    let out = frame::inflate(&small, &roomy).expect("8 MiB inflates under an 8 MiB limit");
    assert_eq!(out.len(), 8 * MIB);
    assert!(out.iter().all(|&b| b == 0));
    let tight = Limits {
        max_decompressed_size: 8 * MIB - 1,
        ..Limits::default()
    };
    assert_eq!(
        frame::inflate(&small, &tight),
        Err(WireError::DecompressedTooLarge { max: 8 * MIB - 1 })
    );
}

#[test]
fn compression_threshold_is_strictly_greater_than_3000() {
    for (len, compressed) in [(2999, false), (3000, false), (3001, true), (10_000, true)] {
        let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        assert_eq!(
            frame::should_compress(len, Some(COMPRESSION_THRESHOLD)),
            compressed
        );
        let mut out = Vec::new();
        frame::encode_frame(&payload, Some(COMPRESSION_THRESHOLD), 1, &mut out).expect("encode");
        assert_eq!(out[4], compressed as u8, "flag for {len}");
        assert_eq!(out.last(), Some(&b'\n'));
        let announced = u32::from_be_bytes([out[0], out[1], out[2], out[3]]) as usize;
        assert_eq!(announced, out.len() - 6);
        if !compressed {
            assert_eq!(&out[5..out.len() - 1], &payload[..]);
        }
        let mut dec = FrameDecoder::new(Limits::default());
        dec.feed(&out).expect("room to buffer");
        assert_eq!(next_vec(&mut dec), Ok(Some(payload.clone())));
        assert_eq!(next_vec(&mut dec), Ok(None));

        // Compression disabled: never compressed.
        let mut plain = Vec::new();
        frame::encode_frame(&payload, None, 1, &mut plain).expect("encode");
        assert_eq!(plain[4], 0);
    }
    // The decision is made even when compression does not pay (random-looking data).
    let mut out = Vec::new();
    frame::encode_frame(&noise(3001), Some(3000), 1, &mut out).expect("encode");
    assert_eq!(out[4], 1);
}

#[test]
fn trailer_is_not_validated_and_any_nonzero_flag_means_zlib() {
    let payload = unhex("0111501153115102"); // REQUEST seq=0 GETROOT
    let mut dec = FrameDecoder::new(Limits::default());
    dec.feed(&frame_bytes(8, 0, &payload, b'X'))
        .expect("room to buffer");
    assert_eq!(next_vec(&mut dec), Ok(Some(payload.clone())));

    let z = frame::compress(&payload, 1);
    for flag in [1u8, 2, 0x7f, 0xff] {
        let mut dec = FrameDecoder::new(Limits::default());
        dec.feed(&frame_bytes(z.len() as u32, flag, &z, 0x00))
            .expect("room to buffer");
        assert_eq!(next_vec(&mut dec), Ok(Some(payload.clone())), "flag {flag}");
    }
    // A small payload may arrive compressed (upstream inflates any size).
    let mut dec = FrameDecoder::new(Limits::default());
    dec.feed(&frame_bytes(z.len() as u32, 1, &z, b'\n'))
        .expect("room to buffer");
    assert_eq!(next_vec(&mut dec), Ok(Some(payload)));
}

#[test]
fn empty_payload_frame_is_returned_as_empty() {
    let mut dec = FrameDecoder::new(Limits::default());
    dec.feed(&unhex("00000000000a")).expect("room to buffer");
    assert_eq!(next_vec(&mut dec), Ok(Some(Vec::new())));
    assert_eq!(dec.buffered(), 0);
}

#[test]
fn corrupt_truncated_or_padded_zlib_is_refused() {
    let limits = Limits::default();
    let payload = vec![b'x'; 5000];
    let z = frame::compress(&payload, 1);
    assert_eq!(frame::inflate(&z, &limits), Ok(payload.clone()));
    // Truncated anywhere.
    for cut in [0, 1, 2, z.len() / 2, z.len() - 1] {
        assert!(
            matches!(
                frame::inflate(&z[..cut], &limits),
                Err(WireError::BadCompression(_))
            ),
            "cut at {cut}"
        );
    }
    // Garbage after the stream.
    let mut padded = z.clone();
    padded.extend_from_slice(b"junk");
    match frame::inflate(&padded, &limits) {
        Err(WireError::BadCompression(why)) => assert!(why.contains("4 bytes after"), "{why}"),
        other => panic!("{other:?}"),
    }
    // Not zlib at all.
    assert!(matches!(
        frame::inflate(b"hello world", &limits),
        Err(WireError::BadCompression(_))
    ));
    // A raw deflate stream without the zlib header.
    assert!(frame::inflate(&z[2..], &limits).is_err());
    // Exactly at the limit inflates; one byte under the size does not.
    let exact = Limits {
        max_decompressed_size: 5000,
        ..limits
    };
    assert_eq!(frame::inflate(&z, &exact), Ok(payload));
    let under = Limits {
        max_decompressed_size: 4999,
        ..limits
    };
    assert_eq!(
        frame::inflate(&z, &under),
        Err(WireError::DecompressedTooLarge { max: 4999 })
    );
    // Empty output is fine.
    let empty = frame::compress(b"", 1);
    assert_eq!(frame::inflate(&empty, &limits), Ok(Vec::new()));
}

#[test]
fn many_frames_in_one_feed_and_byte_by_byte() {
    let mut stream = Vec::new();
    let payloads: Vec<Vec<u8>> = (0..200usize)
        .map(|i| vec![(i % 256) as u8; (i * 37) % 5000])
        .collect();
    for p in &payloads {
        frame::encode_frame(p, Some(3000), 1, &mut stream).expect("encode");
    }
    let mut dec = FrameDecoder::new(Limits::default());
    dec.feed(&stream).expect("room to buffer");
    for p in &payloads {
        assert_eq!(next_vec(&mut dec).expect("ok").as_ref(), Some(p));
    }
    assert_eq!(next_vec(&mut dec), Ok(None));
    assert_eq!(dec.buffered(), 0);

    let mut dec = FrameDecoder::new(Limits::default());
    let mut got = Vec::new();
    for b in &stream {
        dec.feed(std::slice::from_ref(b)).expect("room to buffer");
        while let Some(p) = dec.next_payload().expect("ok") {
            got.push(p.into_vec());
        }
    }
    assert_eq!(got, payloads);
}

#[test]
fn header_roundtrip() {
    let h = FrameHeader {
        len: 0x0102_0304,
        compressed: true,
    };
    assert_eq!(hex(&h.to_bytes()), "0102030401");
    assert_eq!(h.body_len(), 0x0102_0305);
    assert_eq!(
        FrameHeader::parse(
            &h.to_bytes(),
            &Limits {
                max_frame_size: usize::MAX,
                ..Limits::default()
            }
        ),
        Ok(h)
    );
}

#[test]
fn outgoing_frame_over_max_frame_size_is_refused_with_the_key() {
    let small = Limits {
        max_frame_size: 100,
        ..Limits::default()
    };
    assert_eq!(frame::check_outgoing(100, &small), Ok(()));
    let e = frame::check_outgoing(101, &small).unwrap_err();
    assert_eq!(
        e,
        WireError::OutgoingTooLarge {
            size: 101,
            max: 100
        }
    );
    let msg = frame::check_outgoing(300 * MIB, &Limits::default())
        .unwrap_err()
        .to_string();
    assert!(
        msg.starts_with("outgoing frame of 300 MiB exceeds max_frame_size=256 MiB"),
        "{msg}"
    );
    assert!(msg.contains("raise the max_frame_size config key"), "{msg}");
}

#[test]
fn compression_is_skipped_for_incompressible_bulk_data() {
    assert!(!frame::compression_pays(&noise(1 << 20), 1));
    assert!(frame::compression_pays(&vec![b'x'; 1 << 20], 1));
    // Small payloads are compressed as upstream does, whatever they hold.
    assert!(frame::compression_pays(&noise(4000), 1));
}
