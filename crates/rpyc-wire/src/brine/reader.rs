//! The brine reader: strict, iterative, bounded, generic over where values go.
//!
//! Accepts exactly what upstream's encoder produces and nothing else: every length must be
//! complete and use the shortest form, integer text must be canonical and outside the
//! immediate range, UNICODE must wrap a bytes item holding UTF-8, SLICE must wrap a `TUP3`
//! and FSET a tuple (whose members the sink checks for duplicates). Containers are read with
//! an explicit stack, so nesting costs no call stack; nesting is bounded by `max_depth`, and
//! no allocation exceeds what the remaining input could fill: a container's announced member
//! count, plus the members still owed to enclosing containers, must fit in the unread bytes
//! (each member takes at least one).

use super::cursor::{is_bytes_tag, Cursor};
use super::sink::{Container, Sink, Text, CHECKPOINT_BYTES, CHECKPOINT_ITEMS};
use crate::consts::tag;
use crate::error::WireError;
use smallvec::SmallVec;

/// Containers open at once before the reader's stack moves to the heap.
const INLINE_DEPTH: usize = 8;

/// An open container whose members are being read.
struct Open<B> {
    kind: Container,
    start: usize,
    builder: B,
    remaining: usize,
}

/// Read one value at the cursor into `sink`. `level` is the number of containers already
/// open around it (the message and boxing layers count theirs); a container that would be
/// the `max_depth + 1`-th level is refused with [`WireError::NestingTooDeep`].
pub fn read<S: Sink>(
    cur: &mut Cursor<'_>,
    level: usize,
    max_depth: usize,
    sink: &mut S,
) -> Result<S::Value, S::Error> {
    Reader {
        cur,
        level,
        max_depth,
        stack: SmallVec::new(),
        owed: 0,
    }
    .run(sink)
}

struct Reader<'c, 'a, B> {
    cur: &'c mut Cursor<'a>,
    level: usize,
    max_depth: usize,
    stack: SmallVec<[Open<B>; INLINE_DEPTH]>,
    /// Members of open containers not yet complete (at least one per open container: the
    /// one being read).
    owed: usize,
}

/// What the next item turned out to be.
enum Item<V> {
    Done(V),
    /// A container was opened; its members follow.
    Opened,
}

impl<B> Reader<'_, '_, B> {
    fn run<S: Sink<Builder = B>>(mut self, sink: &mut S) -> Result<S::Value, S::Error> {
        let mut items_left = CHECKPOINT_ITEMS;
        let mut next_checkpoint = self.cur.pos() + CHECKPOINT_BYTES;
        loop {
            items_left -= 1;
            if items_left == 0 || self.cur.pos() >= next_checkpoint {
                sink.checkpoint()?;
                items_left = CHECKPOINT_ITEMS;
                next_checkpoint = self.cur.pos() + CHECKPOINT_BYTES;
            }
            let mut value = match self.item(sink) {
                Ok(Item::Done(v)) => v,
                Ok(Item::Opened) => continue,
                Err(e) => return Err(e),
            };
            // A value is complete: hand it to its container, closing every container that
            // it completes.
            loop {
                let Some(top) = self.stack.last_mut() else {
                    return Ok(value);
                };
                sink.push(&mut top.builder, value)?;
                top.remaining -= 1;
                self.owed -= 1;
                if top.remaining > 0 {
                    break;
                }
                // (The top, complete: always there.)
                let Some(done) = self.stack.pop() else {
                    break;
                };
                value = sink.end(done.builder, done.kind, done.start)?;
            }
        }
    }

    /// Read one item: a complete scalar, or the header of a container (then pushed).
    #[inline]
    fn item<S: Sink<Builder = B>>(&mut self, sink: &mut S) -> Result<Item<S::Value>, S::Error> {
        let start = self.cur.pos();
        let Some(t) = self.cur.next_byte() else {
            return Err(sink.wire_error(WireError::Truncated {
                what: "tag",
                offset: start,
            }));
        };
        let value = match t {
            tag::IMM_FIRST..=tag::IMM_LAST => sink.int(i64::from(t) - tag::IMM_BIAS),
            tag::NONE => sink.none(),
            tag::TRUE => sink.boolean(true),
            tag::FALSE => sink.boolean(false),
            tag::UNICODE => {
                let text = self.unicode(start).map_err(|e| sink.wire_error(e))?;
                sink.str(text)
            }
            tag::EMPTY_STR | tag::STR1..=tag::STR_L4 => {
                let b = self
                    .cur
                    .bytes_body(t, start)
                    .map_err(|e| sink.wire_error(e))?;
                sink.bytes(b)
            }
            tag::EMPTY_TUPLE | tag::TUP1..=tag::TUP_L4 => {
                return self.open(sink, Container::Tuple, t, start);
            }
            tag::INT_L1 | tag::INT_L4 => {
                let (text, small) = self
                    .cur
                    .int_body(t, start)
                    .map_err(|e| sink.wire_error(e))?;
                match small {
                    Some(v) => sink.int(v),
                    None => sink.big_int(text),
                }
            }
            tag::FLOAT => {
                let raw = self
                    .cur
                    .array("FLOAT", start)
                    .map_err(|e| sink.wire_error(e))?;
                sink.float(f64::from_be_bytes(raw))
            }
            _ => return self.rare(sink, t, start),
        };
        value.map(Item::Done)
    }

    /// The tags seldom seen, out of the hot path.
    #[inline(never)]
    fn rare<S: Sink<Builder = B>>(
        &mut self,
        sink: &mut S,
        t: u8,
        start: usize,
    ) -> Result<Item<S::Value>, S::Error> {
        let value = match t {
            tag::ELLIPSIS => sink.ellipsis(),
            tag::NOT_IMPLEMENTED => sink.not_implemented(),
            tag::COMPLEX => {
                let raw: [u8; 16] = self
                    .cur
                    .array("COMPLEX", start)
                    .map_err(|e| sink.wire_error(e))?;
                let (re, im) = raw.split_at(8);
                sink.complex(f64_be(re), f64_be(im))
            }
            tag::FSET | tag::SLICE => {
                let (kind, what) = if t == tag::FSET {
                    (Container::FrozenSet, "FSET")
                } else {
                    (Container::Slice, "SLICE")
                };
                let inner = self.cur.byte(what).map_err(|e| sink.wire_error(e))?;
                let fits = match kind {
                    Container::Slice => inner == tag::TUP3,
                    _ => inner == tag::EMPTY_TUPLE || (tag::TUP1..=tag::TUP_L4).contains(&inner),
                };
                if !fits {
                    return Err(sink.wire_error(WireError::BadContainer {
                        what,
                        offset: start,
                    }));
                }
                return self.open(sink, kind, inner, start);
            }
            tag::LIST..=tag::ARRAY | tag::LOCAL_REF | tag::REMOTE_REF if sink.by_value() => {
                return self.by_value(sink, t, start);
            }
            _ => Err(sink.wire_error(WireError::UnknownTag {
                tag: t,
                offset: start,
            })),
        };
        value.map(Item::Done)
    }

    /// A by-value container (docs/by-value.md#wire-format): its tag, then a tuple of the
    /// shape the kind calls for.
    #[inline(never)]
    fn by_value<S: Sink<Builder = B>>(
        &mut self,
        sink: &mut S,
        t: u8,
        start: usize,
    ) -> Result<Item<S::Value>, S::Error> {
        let (kind, what) = match t {
            tag::LIST => (Container::List, "LIST"),
            tag::DICT => (Container::Dict, "DICT"),
            tag::SET => (Container::Set, "SET"),
            tag::ARRAY => (Container::Array, "ARRAY"),
            tag::LOCAL_REF => (Container::LocalRef, "LOCAL_REF"),
            _ => (Container::RemoteRef, "REMOTE_REF"),
        };
        let inner = self.cur.byte(what).map_err(|e| sink.wire_error(e))?;
        let fits = match kind {
            Container::Array => inner == tag::TUP4,
            Container::LocalRef | Container::RemoteRef => inner == tag::TUP3,
            _ => inner == tag::EMPTY_TUPLE || (tag::TUP1..=tag::TUP_L4).contains(&inner),
        };
        if !fits {
            return Err(sink.wire_error(WireError::BadContainer {
                what,
                offset: start,
            }));
        }
        if kind == Container::Dict {
            // Keys and values alternate: an odd count is no dict.
            let n = self
                .cur
                .clone()
                .tuple_len(inner, start)
                .map_err(|e| sink.wire_error(e))?;
            if n % 2 != 0 {
                return Err(sink.wire_error(WireError::BadContainer {
                    what,
                    offset: start,
                }));
            }
        }
        self.open(sink, kind, inner, start)
    }

    #[inline]
    fn unicode(&mut self, start: usize) -> Result<Text<'_>, WireError> {
        let inner = self.cur.byte("UNICODE")?;
        if !is_bytes_tag(inner) {
            return Err(WireError::BadUnicode { offset: start });
        }
        let raw = self.cur.bytes_body(inner, start)?;
        // Most text is ASCII: told apart with one cheap pass, so that no sink validates it.
        if raw.is_ascii() {
            return Ok(Text::Ascii(raw));
        }
        std::str::from_utf8(raw)
            .map(Text::Utf8)
            .map_err(|_| WireError::BadUnicode { offset: start })
    }

    /// Open a container whose tuple tag `t` has been read; an empty one is finished at once
    /// (it is a complete value, like a scalar).
    #[inline(always)]
    fn open<S: Sink<Builder = B>>(
        &mut self,
        sink: &mut S,
        kind: Container,
        t: u8,
        start: usize,
    ) -> Result<Item<S::Value>, S::Error> {
        let open = self.level + self.stack.len();
        if open >= self.max_depth {
            return Err(sink.wire_error(WireError::NestingTooDeep {
                max: self.max_depth,
            }));
        }
        let n = self
            .cur
            .tuple_len(t, start)
            .map_err(|e| sink.wire_error(e))?;
        // `owed` counts the member being read in each open container (this one among them),
        // whose first byte is already read.
        match n.checked_add(self.owed - self.stack.len()) {
            Some(need) if need <= self.cur.remaining() => {}
            _ => {
                return Err(sink.wire_error(WireError::Truncated {
                    what: kind.name(),
                    offset: start,
                }))
            }
        }
        let builder = sink.begin(kind, n)?;
        if n == 0 {
            return sink.end(builder, kind, start).map(Item::Done);
        }
        self.owed += n;
        self.stack.push(Open {
            kind,
            start,
            builder,
            remaining: n,
        });
        Ok(Item::Opened)
    }
}

#[inline]
fn f64_be(b: &[u8]) -> f64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    f64::from_be_bytes(a)
}
