//! Strict brine decoder (WIRE.md §2.4).
//!
//! Accepts exactly what upstream's encoder produces and nothing else: every length must
//! be complete and use the shortest form, integer text must be canonical and outside the
//! immediate range, SLICE must wrap a `TUP3`, FSET must wrap a tuple without duplicate
//! members. Containers are decoded with an explicit stack (no recursion), nesting is
//! bounded by [`Limits::max_nesting_depth`], and no allocation exceeds what the remaining
//! input could fill: a container's announced member count, plus the members still owed
//! to enclosing containers, must fit in the unread bytes (each member takes at least one).

use super::pyset::{self, Summary};
use super::{int, Value};
use crate::consts::tag;
use crate::error::WireError;
use crate::limits::Limits;
use std::collections::hash_map::RandomState;

/// Decode a buffer that must hold exactly one brine value.
pub fn decode(data: &[u8], limits: &Limits) -> Result<Value, WireError> {
    let (value, used) = decode_prefix(data, limits)?;
    if used != data.len() {
        return Err(WireError::TrailingBytes { offset: used });
    }
    Ok(value)
}

/// Decode the brine value at the start of `data`; returns it and the bytes it used.
pub fn decode_prefix(data: &[u8], limits: &Limits) -> Result<(Value, usize), WireError> {
    Decoder {
        data,
        pos: 0,
        max_depth: limits.max_nesting_depth,
        hash_state: None,
        sums: Vec::new(),
    }
    .run()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Tuple,
    FrozenSet,
    Slice,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Tuple => "tuple",
            Kind::FrozenSet => "FSET",
            Kind::Slice => "SLICE",
        }
    }
}

/// An open container whose members are being read.
struct Frame {
    kind: Kind,
    start: usize,
    items: Vec<Value>,
    remaining: usize,
    /// Whether this container is a frozenset or inside one: then the duplicate-check
    /// summaries of its members are kept (on [`Decoder::sums`], from `sums_from` on, one
    /// per member in order), so no subtree is hashed twice however deeply sets nest.
    in_set: bool,
    sums_from: usize,
}

impl Frame {
    /// The finished container; `members` are the members' summaries when `in_set`.
    fn finish(self, members: &[Summary], state: &RandomState) -> Result<Value, WireError> {
        match self.kind {
            Kind::Tuple => Ok(Value::Tuple(self.items)),
            Kind::FrozenSet => {
                if pyset::has_duplicates_summarized(&self.items, members, state) {
                    return Err(WireError::NonCanonical {
                        what: "FSET with duplicate members",
                        offset: self.start,
                    });
                }
                Ok(Value::FrozenSet(self.items))
            }
            Kind::Slice => {
                let mut it = self.items.into_iter();
                match (it.next(), it.next(), it.next()) {
                    (Some(a), Some(b), Some(c)) => Ok(Value::Slice(Box::new((a, b, c)))),
                    _ => Err(WireError::BadContainer {
                        what: "SLICE",
                        offset: self.start,
                    }),
                }
            }
        }
    }
}

struct Decoder<'a> {
    data: &'a [u8],
    pos: usize,
    max_depth: usize,
    /// Hash keys of the frozenset duplicate check, made at the first container.
    hash_state: Option<RandomState>,
    /// Summaries of the members read so far of the open containers that are in a set.
    sums: Vec<Summary>,
}

impl<'a> Decoder<'a> {
    fn run(mut self) -> Result<(Value, usize), WireError> {
        // Grown to 16 frames at the first container (one allocation, none for scalars).
        let mut stack: Vec<Frame> = Vec::new();
        // Members announced by open containers and not yet started; each needs a byte.
        let mut owed: usize = 0;
        'item: loop {
            if let Some(top) = stack.last_mut() {
                top.remaining -= 1;
                owed -= 1;
            }
            let start = self.pos;
            let t = self.u8("tag")?;
            let mut value = match t {
                tag::NONE => Value::None,
                tag::TRUE => Value::Bool(true),
                tag::FALSE => Value::Bool(false),
                tag::NOT_IMPLEMENTED => Value::NotImplemented,
                tag::ELLIPSIS => Value::Ellipsis,
                tag::IMM_FIRST..=tag::IMM_LAST => Value::Int(i64::from(t) - tag::IMM_BIAS),
                tag::EMPTY_STR | tag::STR1..=tag::STR_L4 => {
                    Value::Bytes(self.bytes_body(t, start)?.to_vec())
                }
                tag::UNICODE => {
                    let inner = self.u8("UNICODE")?;
                    if !matches!(inner, tag::EMPTY_STR | tag::STR1..=tag::STR_L4) {
                        return Err(WireError::BadUnicode { offset: start });
                    }
                    let raw = self.bytes_body(inner, start)?;
                    match std::str::from_utf8(raw) {
                        Ok(s) => Value::Str(s.to_owned()),
                        Err(_) => return Err(WireError::BadUnicode { offset: start }),
                    }
                }
                tag::INT_L1 | tag::INT_L4 => self.int_body(t, start)?,
                tag::FLOAT => Value::Float(f64::from_be_bytes(self.array("FLOAT", start)?)),
                tag::COMPLEX => {
                    let raw: [u8; 16] = self.array("COMPLEX", start)?;
                    let (re, im) = raw.split_at(8);
                    Value::Complex(f64_be(re), f64_be(im))
                }
                tag::EMPTY_TUPLE => {
                    self.check_depth(stack.len())?;
                    Value::Tuple(Vec::new())
                }
                tag::TUP1..=tag::TUP_L4 => {
                    let n = self.tuple_len(t, start)?;
                    self.open(&mut stack, &mut owed, Kind::Tuple, n, start)?;
                    continue 'item;
                }
                tag::FSET => {
                    let inner = self.u8("FSET")?;
                    match inner {
                        tag::EMPTY_TUPLE => {
                            self.check_depth(stack.len())?;
                            Value::FrozenSet(Vec::new())
                        }
                        tag::TUP1..=tag::TUP_L4 => {
                            let n = self.tuple_len(inner, start)?;
                            self.open(&mut stack, &mut owed, Kind::FrozenSet, n, start)?;
                            continue 'item;
                        }
                        _ => {
                            return Err(WireError::BadContainer {
                                what: "FSET",
                                offset: start,
                            })
                        }
                    }
                }
                tag::SLICE => {
                    if self.u8("SLICE")? != tag::TUP3 {
                        return Err(WireError::BadContainer {
                            what: "SLICE",
                            offset: start,
                        });
                    }
                    self.open(&mut stack, &mut owed, Kind::Slice, 3, start)?;
                    continue 'item;
                }
                _ => {
                    return Err(WireError::UnknownTag {
                        tag: t,
                        offset: start,
                    })
                }
            };
            // A value is complete: hand it to its container, closing every container
            // that it completes. `sum` is the value's summary when it is already known
            // (a container closed inside a frozenset).
            let mut sum: Option<Summary> = None;
            loop {
                let Some(top) = stack.last_mut() else {
                    return Ok((value, self.pos));
                };
                if top.in_set {
                    let state = self.hash_state.get_or_insert_with(RandomState::new);
                    let s = sum.unwrap_or_else(|| pyset::summarize_tree(&value, state));
                    self.sums.push(s);
                }
                if top.remaining > 0 {
                    top.items.push(value);
                    continue 'item;
                }
                let Some(mut frame) = stack.pop() else {
                    return Ok((value, self.pos));
                };
                frame.items.push(value);
                let from = frame.sums_from;
                let members = self.sums.get(from..).unwrap_or_default();
                let state = self.hash_state.get_or_insert_with(RandomState::new);
                value = frame.finish(members, state)?;
                // A parent in a set needs the summary; the frame was in the set too, so
                // `members` holds all its members' summaries.
                sum = if stack.last().is_some_and(|p| p.in_set) {
                    Some(pyset::summarize(&value, members, state))
                } else {
                    None
                };
                self.sums.truncate(from);
            }
        }
    }

    fn check_depth(&self, open: usize) -> Result<(), WireError> {
        if open >= self.max_depth {
            return Err(WireError::NestingTooDeep {
                max: self.max_depth,
            });
        }
        Ok(())
    }

    fn open(
        &self,
        stack: &mut Vec<Frame>,
        owed: &mut usize,
        kind: Kind,
        n: usize,
        start: usize,
    ) -> Result<(), WireError> {
        self.check_depth(stack.len())?;
        let unread = self.data.len() - self.pos;
        match n.checked_add(*owed) {
            Some(need) if need <= unread => {}
            _ => {
                return Err(WireError::Truncated {
                    what: kind.name(),
                    offset: start,
                })
            }
        }
        *owed += n;
        if stack.capacity() == 0 {
            stack.reserve(16);
        }
        let in_set = kind == Kind::FrozenSet || stack.last().is_some_and(|f| f.in_set);
        stack.push(Frame {
            kind,
            start,
            items: Vec::with_capacity(n),
            remaining: n,
            in_set,
            sums_from: self.sums.len(),
        });
        Ok(())
    }

    #[inline]
    fn u8(&mut self, what: &'static str) -> Result<u8, WireError> {
        match self.data.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                Ok(b)
            }
            None => Err(WireError::Truncated {
                what,
                offset: self.pos,
            }),
        }
    }

    #[inline]
    fn take(&mut self, n: usize, what: &'static str, start: usize) -> Result<&'a [u8], WireError> {
        let data: &'a [u8] = self.data;
        match data.get(self.pos..).and_then(|rest| rest.get(..n)) {
            Some(s) => {
                self.pos += n;
                Ok(s)
            }
            None => Err(WireError::Truncated {
                what,
                offset: start,
            }),
        }
    }

    #[inline]
    fn array<const N: usize>(
        &mut self,
        what: &'static str,
        start: usize,
    ) -> Result<[u8; N], WireError> {
        let s = self.take(N, what, start)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u32_len(&mut self, what: &'static str, start: usize) -> Result<usize, WireError> {
        let raw: [u8; 4] = self.array(what, start)?;
        Ok(u32::from_be_bytes(raw) as usize)
    }

    /// The raw bytes of a bytes item whose tag `t` has been read.
    fn bytes_body(&mut self, t: u8, start: usize) -> Result<&'a [u8], WireError> {
        let n = match t {
            tag::EMPTY_STR => 0,
            tag::STR1..=tag::STR4 => usize::from(t - tag::STR1) + 1,
            tag::STR_L1 => {
                let n = usize::from(self.u8("STR_L1 length")?);
                if n < 5 {
                    return Err(WireError::NonCanonical {
                        what: "STR_L1 length below 5",
                        offset: start,
                    });
                }
                n
            }
            _ => {
                let n = self.u32_len("STR_L4 length", start)?;
                if n < 256 {
                    return Err(WireError::NonCanonical {
                        what: "STR_L4 length below 256",
                        offset: start,
                    });
                }
                n
            }
        };
        self.take(n, "bytes", start)
    }

    /// The member count of a tuple whose tag `t` (TUP1..TUP_L4) has been read.
    fn tuple_len(&mut self, t: u8, start: usize) -> Result<usize, WireError> {
        match t {
            tag::TUP_L1 => {
                let n = usize::from(self.u8("TUP_L1 length")?);
                if n < 5 {
                    return Err(WireError::NonCanonical {
                        what: "TUP_L1 length below 5",
                        offset: start,
                    });
                }
                Ok(n)
            }
            tag::TUP_L4 => {
                let n = self.u32_len("TUP_L4 length", start)?;
                if n < 256 {
                    return Err(WireError::NonCanonical {
                        what: "TUP_L4 length below 256",
                        offset: start,
                    });
                }
                Ok(n)
            }
            _ => Ok(usize::from(t - tag::TUP1) + 1),
        }
    }

    fn int_body(&mut self, t: u8, start: usize) -> Result<Value, WireError> {
        let n = if t == tag::INT_L1 {
            usize::from(self.u8("INT_L1 length")?)
        } else {
            let n = self.u32_len("INT_L4 length", start)?;
            if n < 256 {
                return Err(WireError::NonCanonical {
                    what: "INT_L4 length below 256",
                    offset: start,
                });
            }
            n
        };
        let text = self.take(n, "INT", start)?;
        let value = int::parse_canonical(text).ok_or(WireError::BadInteger { offset: start })?;
        if let Value::Int(i) = value {
            if (tag::IMM_MIN..=tag::IMM_MAX).contains(&i) {
                return Err(WireError::NonCanonical {
                    what: "INT text for an immediate integer",
                    offset: start,
                });
            }
        }
        Ok(value)
    }
}

#[inline]
fn f64_be(b: &[u8]) -> f64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    f64::from_be_bytes(a)
}
