//! Frames out of a byte stream, as the bytes arrive, under the frame limits and the inbound
//! memory budget.

use super::inflate::Inflater;
use super::FrameHeader;
use crate::budget::{Charge, MemoryBudget, FREE_PER_CONNECTION};
use crate::consts::FRAME_HEADER_LEN;
use crate::error::WireError;
use crate::limits::Limits;
use std::ops::Range;
use std::sync::Arc;

/// Smallest read worth making: bytes are read in chunks of at least this much.
pub const READ_CHUNK: usize = 64 * 1024;

/// Uncompressed payloads from this size on are handed over in the buffer they arrived in
/// when they fill it (no copy of a large frame).
const HAND_OVER: usize = 1 << 20;

/// Incremental frame decoder: bytes in as they arrive, complete payloads out.
///
/// A header announcing more than `max_frame_size` is refused as soon as its 5 bytes are
/// buffered, before any payload is read or allocated, and is returned again on every later
/// call (the stream cannot be resynchronised: drop the connection). A frame whose payload
/// fails to inflate is consumed before its error is returned. Empty payloads are returned as
/// they are (upstream's receiver silently ignores them).
///
/// What the decoder holds beyond [`FREE_PER_CONNECTION`] (buffered bytes, a payload being
/// inflated, payloads handed out until they are dropped) is taken from a [`MemoryBudget`].
/// When the budget refuses, [`WireError::MemoryBudget`] is returned and nothing is lost:
/// the same call succeeds once other holders gave bytes back.
#[derive(Debug)]
pub struct FrameDecoder {
    /// Buffered bytes are `buf[start..end]`; `buf[end..]` is zeroed room that
    /// [`FrameDecoder::read_buf`] lends to a transport to read into (safe code cannot read
    /// into uninitialised memory: the room is zeroed once, as it grows, and reused).
    buf: Vec<u8>,
    /// Bytes of `buf` before this offset have been consumed.
    start: usize,
    /// Bytes of `buf` from this offset on have not arrived.
    end: usize,
    limits: Limits,
    /// What `buf` holds (or is about to receive) beyond the free allowance.
    charge: Charge,
    /// The charge a payload is given when it is copied out of `buf`.
    payload_charge: Charge,
    /// A compressed frame being inflated, when the budget paused it.
    inflating: Option<InflaterSlot>,
}

/// (An `Inflater` holds a `Decompress`, which is not `Debug`.)
struct InflaterSlot(Inflater);

impl std::fmt::Debug for InflaterSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Inflater")
    }
}

/// One frame's payload (inflated), with what it holds of the budget until dropped.
#[derive(Debug)]
pub struct Payload {
    buf: Vec<u8>,
    start: usize,
    /// What it holds of the budget (`None`: nothing, the usual small payload).
    _charge: Option<Charge>,
    /// The frame it came in, as it was on the wire (for drivers' byte counters).
    wire_len: usize,
    compressed: bool,
}

impl Payload {
    /// Bytes of its frame on the wire: header, (compressed) payload and trailer.
    pub fn wire_len(&self) -> usize {
        self.wire_len
    }

    /// Whether its frame was compressed.
    pub fn compressed(&self) -> bool {
        self.compressed
    }

    pub fn bytes(&self) -> &[u8] {
        self.buf.get(self.start..).unwrap_or_default()
    }

    /// The payload's bytes as a vector of their own (copied when they share a buffer).
    pub fn into_vec(mut self) -> Vec<u8> {
        if self.start == 0 {
            return std::mem::take(&mut self.buf);
        }
        self.bytes().to_vec()
    }
}

impl std::ops::Deref for Payload {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.bytes()
    }
}

/// What the next read from the transport should ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadPlan {
    /// Bytes the next frame (or its header) still needs.
    pub want: usize,
    /// How many bytes to read at most: at least [`READ_CHUNK`], more for a large frame, but
    /// never more than three times what has already arrived, so that a peer announcing
    /// 256 MiB and sending 3 bytes makes us reserve nothing.
    pub chunk: usize,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        FrameDecoder::new(Limits::default())
    }
}

impl FrameDecoder {
    /// A decoder outside any shared budget (tests, tools).
    pub fn new(limits: Limits) -> Self {
        FrameDecoder::with_budget(limits, &MemoryBudget::new(), usize::MAX)
    }

    /// A decoder drawing on `budget`, which it may take up to `max_inbound_memory`.
    pub fn with_budget(
        limits: Limits,
        budget: &Arc<MemoryBudget>,
        max_inbound_memory: usize,
    ) -> Self {
        FrameDecoder {
            buf: Vec::new(),
            start: 0,
            end: 0,
            limits,
            charge: Charge::new(budget, max_inbound_memory),
            payload_charge: Charge::new(budget, max_inbound_memory),
            inflating: None,
        }
    }

    /// The limits this decoder enforces.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Bytes buffered but not yet returned as a frame.
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// Append bytes that arrived.
    pub fn feed(&mut self, data: &[u8]) -> Result<(), WireError> {
        // Drop consumed bytes when that is cheap relative to what stays (amortised O(1)).
        if self.start > 0 && self.start >= self.end - self.start {
            self.compact();
        }
        self.charge_for(data.len())?;
        let room = self.buf.len() - self.end;
        let (into_room, rest) = data.split_at(room.min(data.len()));
        self.buf[self.end..self.end + into_room.len()].copy_from_slice(into_room);
        // (`rest` is not empty only when the room is full: `buf` ends at `end` then.)
        self.buf.extend_from_slice(rest);
        self.end += data.len();
        Ok(())
    }

    /// Room to read the next bytes into, straight from the transport (no copy through a
    /// buffer of the driver's own): at most [`ReadPlan::chunk`] bytes, charged to the
    /// budget before any of it is allocated. Call [`FrameDecoder::commit`] with the number
    /// of bytes read into it (0 if nothing was).
    ///
    /// The room grows with what arrived, as the read plan does: a header announcing 256 MiB
    /// followed by a slow drip of bytes makes the decoder hold at most about four times
    /// what arrived (at least [`READ_CHUNK`]), never what the header claims.
    pub fn read_buf(&mut self) -> Result<&mut [u8], WireError> {
        let chunk = self.read_plan()?.chunk;
        if self.start > 0 {
            self.compact();
        }
        // Less room than planned is lent as it is while it is at least half the plan: a
        // read may take less than planned anyway, and growing by a little for every few
        // bytes of a drip would copy what arrived over and over.
        let room = self.buf.len() - self.end;
        if room < chunk.div_ceil(2) {
            self.charge_for(chunk)?;
            self.buf.resize(self.end + chunk, 0);
        }
        let until = self.buf.len().min(self.end + chunk);
        Ok(&mut self.buf[self.end..until])
    }

    /// After a read into [`FrameDecoder::read_buf`]'s room: `n` bytes of it arrived.
    pub fn commit(&mut self, n: usize) {
        // (More than the room lent cannot have been read: clamped, not trusted.)
        self.end = self.end.saturating_add(n).min(self.buf.len());
        let _ = self.charge_for(0);
    }

    /// What the next read should ask for (an error for a header over `max_frame_size`).
    pub fn read_plan(&self) -> Result<ReadPlan, WireError> {
        let avail = self.buffered();
        let want = match self.next_header()? {
            None => FRAME_HEADER_LEN - avail,
            Some(h) => (FRAME_HEADER_LEN + h.body_len())
                .saturating_sub(avail)
                .max(1),
        };
        Ok(ReadPlan {
            want,
            chunk: READ_CHUNK.max(want.min(avail.saturating_mul(3))),
        })
    }

    /// Whether the next frame, once complete, has to be inflated (`None`: no header yet).
    pub fn next_compressed(&self) -> Option<bool> {
        self.next_header().ok().flatten().map(|h| h.compressed)
    }

    /// The header of the next frame if all of it has arrived (`Ok(None)`: more bytes are
    /// needed), for drivers that decide where to process a frame before taking it.
    pub fn next_complete(&self) -> Result<Option<FrameHeader>, WireError> {
        Ok(self.next_frame_range()?.map(|(header, _)| header))
    }

    /// Make room for up to `n` more bytes (charging the budget for them) and return the
    /// buffer, for a transport to append at most `n` bytes to (growing it as it likes;
    /// nothing else may touch the decoder until then). Call [`FrameDecoder::settle`] after.
    pub fn prepare_read(&mut self, n: usize) -> Result<&mut Vec<u8>, WireError> {
        if self.start > 0 {
            self.compact();
        }
        self.charge_for(n)?;
        // The transport appends: the room of `read_buf` goes.
        self.buf.truncate(self.end);
        Ok(&mut self.buf)
    }

    /// After a read into [`FrameDecoder::prepare_read`]'s buffer: take what was appended,
    /// and charge what the buffer holds (not what it might have received).
    pub fn settle(&mut self) {
        self.end = self.buf.len();
        let _ = self.charge_for(0);
    }

    fn compact(&mut self) {
        self.buf.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
    }

    /// Charge the budget for what the buffer holds, or for `more` bytes after the buffered
    /// ones if that is more (beyond the free allowance).
    fn charge_for(&mut self, more: usize) -> Result<(), WireError> {
        let held = self.buf.len().max(self.end.saturating_add(more));
        self.charge.set(held.saturating_sub(FREE_PER_CONNECTION))
    }

    /// The next complete payload (inflated), `Ok(None)` if more bytes are needed.
    pub fn next_payload(&mut self) -> Result<Option<Payload>, WireError> {
        let Some((header, range)) = self.next_frame_range()? else {
            return Ok(None);
        };
        let wire_len = FRAME_HEADER_LEN + header.body_len();
        if header.compressed {
            return self.inflate_frame(range, wire_len).map(Some);
        }
        let frame_end = range.end + 1;
        if range.len() >= HAND_OVER && frame_end == self.end {
            // The buffer holds this frame alone: hand it over rather than copy it out.
            let mut whole = std::mem::take(&mut self.buf);
            whole.truncate(range.end);
            self.start = 0;
            self.end = 0;
            return Ok(Some(Payload {
                buf: whole,
                start: range.start,
                _charge: Some(self.charge.split_off()),
                wire_len,
                compressed: false,
            }));
        }
        let charge = match range.len().saturating_sub(FREE_PER_CONNECTION) {
            0 => None,
            over => {
                self.payload_charge.set(over)?;
                Some(self.payload_charge.split_off())
            }
        };
        let payload = Payload {
            buf: self.buf[range].to_vec(),
            start: 0,
            _charge: charge,
            wire_len,
            compressed: false,
        };
        self.consume(frame_end);
        Ok(Some(payload))
    }

    /// (Out of line: making an inflater takes ~50 KiB of stack, which would otherwise be
    /// reserved, and touched, on every call of `next_payload`: on every thread that reads.)
    #[inline(never)]
    fn inflate_frame(
        &mut self,
        range: Range<usize>,
        wire_len: usize,
    ) -> Result<Payload, WireError> {
        let slot = match self.inflating.take() {
            Some(slot) => slot,
            None => InflaterSlot(Inflater::new(self.payload_charge.split_off())),
        };
        let InflaterSlot(mut inflater) = slot;
        match inflater.run(&self.buf[range.clone()], &self.limits) {
            Err(e @ WireError::MemoryBudget { .. }) => {
                // Paused: the frame stays, and the next call goes on where this one stopped.
                self.inflating = Some(InflaterSlot(inflater));
                Err(e)
            }
            Err(e) => {
                self.consume(range.end + 1);
                Err(e)
            }
            Ok(()) => {
                self.consume(range.end + 1);
                let (buf, charge) = inflater.finish();
                Ok(Payload {
                    buf,
                    start: 0,
                    _charge: Some(charge),
                    wire_len,
                    compressed: true,
                })
            }
        }
    }

    fn consume(&mut self, frame_end: usize) {
        self.start = frame_end;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            // Room beyond one read's worth would stay charged to the budget while idle.
            self.buf.truncate(READ_CHUNK);
        }
        let _ = self.charge_for(0);
    }

    /// The next complete frame as it was on the wire (header and payload, not inflated;
    /// the trailer is dropped unchecked), `Ok(None)` if more bytes are needed.
    pub fn next_raw(&mut self) -> Result<Option<(FrameHeader, Vec<u8>)>, WireError> {
        let Some((header, range)) = self.next_frame_range()? else {
            return Ok(None);
        };
        let payload = self.buf[range.clone()].to_vec();
        self.consume(range.end + 1);
        Ok(Some((header, payload)))
    }

    fn next_header(&self) -> Result<Option<FrameHeader>, WireError> {
        match self.buf[self.start..self.end].first_chunk::<FRAME_HEADER_LEN>() {
            Some(head) => FrameHeader::parse(head, &self.limits).map(Some),
            None => Ok(None),
        }
    }

    /// Header and payload range (in `buf`) of the next complete frame.
    fn next_frame_range(&self) -> Result<Option<(FrameHeader, Range<usize>)>, WireError> {
        let Some(header) = self.next_header()? else {
            return Ok(None);
        };
        if self.buffered() - FRAME_HEADER_LEN < header.body_len() {
            return Ok(None);
        }
        let from = self.start + FRAME_HEADER_LEN;
        Ok(Some((header, from..from + header.len as usize)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::encode_frame;

    fn framed(payload: &[u8], threshold: Option<usize>) -> Vec<u8> {
        let mut out = Vec::new();
        encode_frame(payload, threshold, 1, &mut out).expect("frame");
        out
    }

    #[test]
    fn payloads_tell_their_frame_length_on_the_wire_and_whether_it_was_compressed() {
        let small = framed(b"abc", None);
        let big = framed(&[7u8; 100_000], Some(1024));
        let mut d = FrameDecoder::new(Limits::default());
        d.feed(&small).expect("feed");
        d.feed(&big).expect("feed");
        let p = d.next_payload().expect("ok").expect("payload");
        assert_eq!((p.wire_len(), p.compressed()), (small.len(), false));
        let p = d.next_payload().expect("ok").expect("payload");
        assert!(big.len() < 100_000, "the test payload must compress");
        assert_eq!(
            (p.wire_len(), p.compressed(), p.len()),
            (big.len(), true, 100_000)
        );
    }

    #[test]
    fn the_budget_bounds_what_is_buffered_and_nothing_is_lost_when_it_refuses() {
        let budget = MemoryBudget::new();
        let mut frames = FrameDecoder::with_budget(Limits::default(), &budget, 1 << 20);
        let big = framed(&vec![1u8; 3 << 20], None);
        // A read of the whole frame would hold 3 MiB: refused, the buffer unchanged.
        assert!(matches!(
            frames.prepare_read(big.len()),
            Err(WireError::MemoryBudget { .. })
        ));
        assert_eq!(frames.buffered(), 0);
        // What fits goes in; the budget holds what exceeds the free allowance.
        frames.feed(&big[..1 << 20]).expect("1 MiB fits");
        assert_eq!(budget.used(), (1 << 20) - FREE_PER_CONNECTION);
        assert!(frames.feed(&big[1 << 20..]).is_err());
        assert_eq!(frames.buffered(), 1 << 20);
        drop(frames);
        assert_eq!(budget.used(), 0, "everything given back");
    }

    #[test]
    fn a_large_frame_is_handed_over_with_its_charge() {
        let budget = MemoryBudget::new();
        let mut frames = FrameDecoder::with_budget(Limits::default(), &budget, 64 << 20);
        let payload = vec![9u8; 4 << 20];
        frames.feed(&framed(&payload, None)).expect("fits");
        let got = frames.next_payload().expect("frame").expect("complete");
        assert_eq!(&got[..], &payload[..]);
        assert!(budget.used() > 0, "the payload holds its bytes");
        assert_eq!(frames.buffered(), 0);
        drop(got);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn read_plans_grow_with_what_arrived_not_with_what_a_header_claims() {
        let mut frames = FrameDecoder::new(Limits::default());
        assert_eq!(
            frames.read_plan().expect("plan"),
            ReadPlan {
                want: 5,
                chunk: READ_CHUNK
            }
        );
        frames
            .feed(&[0x10, 0, 0, 0, 0, 1, 2])
            .expect("header of a 256 MiB frame");
        let plan = frames.read_plan().expect("plan");
        assert_eq!(plan.want, (256 << 20) + 1 - 2);
        assert_eq!(plan.chunk, READ_CHUNK);
    }

    /// Hands `wire` to the decoder through `read_buf`/`commit`, at most `step` bytes per
    /// read (less when the room lent is smaller), and returns the payloads.
    fn read_through(frames: &mut FrameDecoder, wire: &[u8], step: usize) -> Vec<Vec<u8>> {
        let mut got = Vec::new();
        let mut at = 0;
        while at < wire.len() {
            let room = frames.read_buf().expect("room");
            assert!(!room.is_empty());
            let n = room.len().min(step).min(wire.len() - at);
            room[..n].copy_from_slice(&wire[at..at + n]);
            frames.commit(n);
            at += n;
            while let Some(p) = frames.next_payload().expect("frame") {
                got.push(p.into_vec());
            }
        }
        got
    }

    #[test]
    fn bytes_read_into_the_room_lent_make_the_same_frames_as_bytes_fed() {
        let payloads: Vec<Vec<u8>> = [0usize, 3, 70_000, 2 << 20, 5, 300_000]
            .iter()
            .map(|&n| (0..n).map(|i| (i % 251) as u8).collect())
            .collect();
        let mut wire = Vec::new();
        for p in &payloads {
            encode_frame(p, None, 1, &mut wire).expect("frame");
        }
        for step in [1, 7, 4096, 100_000, usize::MAX] {
            let mut frames = FrameDecoder::new(Limits::default());
            // Small steps are slow through 2 MiB: those read only the first frames.
            let wire = if step < 4096 {
                &wire[..80_000]
            } else {
                &wire[..]
            };
            let got = read_through(&mut frames, wire, step);
            assert_eq!(got[..], payloads[..got.len()], "step {step}");
            assert!(step < 4096 || got.len() == payloads.len());
        }
    }

    #[test]
    fn feeding_after_reads_into_the_room_keeps_every_byte_in_order() {
        let mut wire = Vec::new();
        for n in [10usize, 200_000, 20] {
            encode_frame(&vec![n as u8; n], None, 1, &mut wire).expect("frame");
        }
        let mut frames = FrameDecoder::new(Limits::default());
        let mut got = read_through(&mut frames, &wire[..1000], 300);
        frames.feed(&wire[1000..150_000]).expect("fits");
        got.extend(read_through(&mut frames, &wire[150_000..], 5000));
        let lens: Vec<usize> = got.iter().map(Vec::len).collect();
        assert_eq!(lens, [10, 200_000, 20]);
        assert!(got.iter().all(|p| p.iter().all(|&b| b == p.len() as u8)));
    }

    #[test]
    fn a_header_claiming_256_mib_then_a_drip_reserves_only_what_arrived() {
        let budget = MemoryBudget::new();
        let mut frames = FrameDecoder::with_budget(Limits::default(), &budget, usize::MAX);
        let room = frames.read_buf().expect("room");
        room[..5].copy_from_slice(&[0x10, 0, 0, 0, 0]);
        frames.commit(5);
        let mut lengths = Vec::new();
        for _ in 0..300_000 {
            let room = frames.read_buf().expect("room");
            // Never more than about four times what arrived, whatever the header said.
            assert!(room.len() <= 3 * frames.buffered().max(READ_CHUNK));
            assert!(frames.buf.len() <= 4 * frames.buffered() + READ_CHUNK);
            frames.commit(1);
            if lengths.last() != Some(&frames.buf.len()) {
                lengths.push(frames.buf.len());
            }
        }
        assert_eq!(frames.buffered(), 300_005);
        assert!(budget.used() <= 4 * 300_005);
        // The buffer grows in a few large steps, not by a little for every byte (a growth
        // may move what arrived).
        assert!(lengths.len() <= 8, "grew {} times", lengths.len());
        drop(frames);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn the_budget_refuses_room_before_allocating_it_and_nothing_is_lost() {
        let budget = MemoryBudget::new();
        let mut frames = FrameDecoder::with_budget(Limits::default(), &budget, 1 << 20);
        let wire = framed(&vec![4u8; 3 << 20], None);
        let mut at = 0;
        let refused = loop {
            match frames.read_buf() {
                Ok(room) => {
                    let n = room.len().min(wire.len() - at);
                    room[..n].copy_from_slice(&wire[at..at + n]);
                    frames.commit(n);
                    at += n;
                }
                Err(e) => break e,
            }
        };
        assert!(matches!(refused, WireError::MemoryBudget { .. }));
        assert_eq!(frames.buffered(), at);
        assert!(frames.buf.len() <= (1 << 20) + FREE_PER_CONNECTION);
        assert!(budget.used() <= 1 << 20);
        // Room given back elsewhere: the same frame completes.
        let mut roomy = FrameDecoder::new(Limits::default());
        roomy.feed(&wire[..at]).expect("fits");
        assert_eq!(
            read_through(&mut roomy, &wire[at..], 1 << 20)[0].len(),
            3 << 20
        );
    }

    #[test]
    fn a_large_frame_read_into_the_room_is_handed_over_and_the_room_is_given_back() {
        let budget = MemoryBudget::new();
        let mut frames = FrameDecoder::with_budget(Limits::default(), &budget, 64 << 20);
        let got = read_through(&mut frames, &framed(&vec![6u8; 4 << 20], None), usize::MAX);
        assert_eq!(got[0].len(), 4 << 20);
        assert_eq!(frames.buf.len(), 0, "the buffer went with the payload");
        drop(got);
        assert_eq!(budget.used(), 0);
        // After a frame copied out, the room left is one read's worth.
        let mut wire = framed(&vec![6u8; 2 << 20], None);
        wire.extend_from_slice(&framed(b"x", None)[..3]);
        read_through(&mut frames, &wire, usize::MAX);
        read_through(&mut frames, &framed(b"x", None)[3..], usize::MAX);
        assert!(frames.buf.len() <= READ_CHUNK);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn commit_counts_no_more_than_the_room_lent() {
        let mut frames = FrameDecoder::new(Limits::default());
        let lent = frames.read_buf().expect("room").len();
        frames.commit(usize::MAX);
        assert_eq!(frames.buffered(), lent);
    }

    #[test]
    fn a_header_over_the_limit_lends_no_room() {
        let mut frames = FrameDecoder::new(Limits {
            max_frame_size: 100,
            ..Limits::default()
        });
        frames.feed(&[0, 0, 0, 101, 0]).expect("buffered");
        assert!(matches!(
            frames.read_buf(),
            Err(WireError::FrameTooLarge { size: 101, .. })
        ));
    }
}
