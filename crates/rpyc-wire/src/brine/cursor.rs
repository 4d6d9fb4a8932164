//! A position in a buffer of brine data, with the strict readers of brine's fixed parts
//! (tags, canonical length fields, small integers). [`super::read`] decodes whole values
//! from it; the message and boxing layers read their fixed envelopes with it directly.

use super::int;
use crate::consts::tag;
use crate::error::WireError;

/// A cursor over one buffer of brine data. Every read checks the bytes actually present;
/// nothing is allocated from a length field.
#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Cursor { data, pos: 0 }
    }

    /// A cursor at offset `pos` of `data` (at its end if `pos` is beyond it).
    pub fn at(data: &'a [u8], pos: usize) -> Self {
        Cursor {
            data,
            pos: pos.min(data.len()),
        }
    }

    /// Offset of the next byte to read.
    #[inline]
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Bytes not read yet.
    #[inline]
    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    /// The whole buffer (offsets in errors refer to it).
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    pub fn at_end(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// Fail unless every byte was read (no encoder leaves bytes after a value).
    pub fn finish(&self) -> Result<(), WireError> {
        if self.at_end() {
            Ok(())
        } else {
            Err(WireError::TrailingBytes { offset: self.pos })
        }
    }

    /// Move back to `pos`, an earlier position of this cursor.
    pub fn rewind(&mut self, pos: usize) {
        self.pos = pos.min(self.pos);
    }

    #[inline]
    pub fn byte(&mut self, what: &'static str) -> Result<u8, WireError> {
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

    /// The next byte, consumed; `None` at the end (a cheaper `byte` for hot loops).
    #[inline(always)]
    pub fn next_byte(&mut self) -> Option<u8> {
        let b = self.data.get(self.pos).copied();
        self.pos += usize::from(b.is_some());
        b
    }

    /// The next byte, without consuming it.
    #[inline]
    pub fn peek(&self) -> Option<u8> {
        self.data.get(self.pos).copied()
    }

    /// The next `n` bytes; `start` is the offset of the item they belong to (for errors).
    #[inline]
    pub fn take(
        &mut self,
        n: usize,
        what: &'static str,
        start: usize,
    ) -> Result<&'a [u8], WireError> {
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
    pub fn array<const N: usize>(
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
        Ok(u32::from_be_bytes(self.array(what, start)?) as usize)
    }

    /// A length field after a long-form tag, refused when a shorter form would do
    /// (`min` is the smallest length the long form may carry).
    fn long_len(
        &mut self,
        long4: bool,
        min: usize,
        what: &'static str,
        start: usize,
    ) -> Result<usize, WireError> {
        let n = if long4 {
            self.u32_len(what, start)?
        } else {
            usize::from(self.byte(what)?)
        };
        if n < min {
            return Err(WireError::NonCanonical {
                what: non_canonical_length(what),
                offset: start,
            });
        }
        Ok(n)
    }

    /// The content of a bytes item whose tag `t` (a bytes tag) has been read.
    #[inline]
    pub fn bytes_body(&mut self, t: u8, start: usize) -> Result<&'a [u8], WireError> {
        let n = match t {
            tag::EMPTY_STR => 0,
            tag::STR1..=tag::STR4 => usize::from(t - tag::STR1) + 1,
            tag::STR_L1 => self.long_len(false, 5, "STR_L1 length", start)?,
            tag::STR_L4 => self.long_len(true, 256, "STR_L4 length", start)?,
            _ => {
                return Err(WireError::UnknownTag {
                    tag: t,
                    offset: start,
                })
            }
        };
        self.take(n, "bytes", start)
    }

    /// The member count of a tuple whose tag `t` (a tuple tag) has been read. The count is
    /// not yet checked against the bytes left (the reader does, with what enclosing
    /// containers still owe).
    #[inline]
    pub fn tuple_len(&mut self, t: u8, start: usize) -> Result<usize, WireError> {
        match t {
            tag::EMPTY_TUPLE => Ok(0),
            tag::TUP1..=tag::TUP4 => Ok(usize::from(t - tag::TUP1) + 1),
            tag::TUP_L1 => self.long_len(false, 5, "TUP_L1 length", start),
            tag::TUP_L4 => self.long_len(true, 256, "TUP_L4 length", start),
            _ => Err(WireError::UnknownTag {
                tag: t,
                offset: start,
            }),
        }
    }

    /// A tuple header (any tuple tag) whose member count fits in the bytes left; `what`
    /// names the structure expected there.
    pub fn tuple_header(&mut self, what: &'static str) -> Result<usize, WireError> {
        let start = self.pos;
        let t = self.byte(what)?;
        if !is_tuple_tag(t) {
            return Err(WireError::BadContainer {
                what,
                offset: start,
            });
        }
        let n = self.tuple_len(t, start)?;
        if n > self.remaining() {
            return Err(WireError::Truncated {
                what,
                offset: start,
            });
        }
        Ok(n)
    }

    /// The text and (when it fits `i64`) value of an INT item whose tag `t` has been read:
    /// canonical decimal, at most 4300 digits, never for an integer with an immediate form.
    #[inline]
    pub fn int_body(&mut self, t: u8, start: usize) -> Result<(&'a [u8], Option<i64>), WireError> {
        let n = if t == tag::INT_L1 {
            usize::from(self.byte("INT_L1 length")?)
        } else {
            self.long_len(true, 256, "INT_L4 length", start)?
        };
        let text = self.take(n, "INT", start)?;
        let value = int::canonical_decimal(text).ok_or(WireError::BadInteger { offset: start })?;
        let digits = text.len() - usize::from(text.first() == Some(&b'-'));
        if digits > int::MAX_INT_DIGITS {
            return Err(WireError::IntegerTooLong {
                digits,
                offset: start,
            });
        }
        if value.is_some_and(|v| (tag::IMM_MIN..=tag::IMM_MAX).contains(&v)) {
            return Err(WireError::NonCanonical {
                what: "INT text for an immediate integer",
                offset: start,
            });
        }
        Ok((text, value))
    }

    /// An integer that must fit `i64` (a handler id, a boxing label, a count).
    pub fn small_int(&mut self, what: &'static str) -> Result<i64, WireError> {
        let start = self.pos;
        match self.byte(what)? {
            t @ tag::IMM_FIRST..=tag::IMM_LAST => Ok(i64::from(t) - tag::IMM_BIAS),
            t @ (tag::INT_L1 | tag::INT_L4) => {
                self.int_body(t, start)?
                    .1
                    .ok_or(WireError::ExpectedInteger {
                        what,
                        offset: start,
                    })
            }
            _ => Err(WireError::ExpectedInteger {
                what,
                offset: start,
            }),
        }
    }

    /// Like [`Cursor::small_int`], but leaves the cursor where it was (returning `None`)
    /// when the next item is not such an integer, so the caller can read it otherwise.
    pub fn try_small_int(&mut self) -> Option<i64> {
        let start = self.pos;
        let v = self.small_int("integer").ok();
        if v.is_none() {
            self.pos = start;
        }
        v
    }

    /// Expect tag `t` (a fixed structure byte such as the `TUP2` of a message).
    pub fn expect(&mut self, t: u8, what: &'static str) -> Result<(), WireError> {
        let start = self.pos;
        if self.byte(what)? != t {
            return Err(WireError::BadContainer {
                what,
                offset: start,
            });
        }
        Ok(())
    }
}

/// The error text for a long length form used where a short one fits.
fn non_canonical_length(what: &'static str) -> &'static str {
    match what {
        "STR_L1 length" => "STR_L1 length below 5",
        "STR_L4 length" => "STR_L4 length below 256",
        "TUP_L1 length" => "TUP_L1 length below 5",
        "TUP_L4 length" => "TUP_L4 length below 256",
        _ => "INT_L4 length below 256",
    }
}

pub fn is_tuple_tag(t: u8) -> bool {
    t == tag::EMPTY_TUPLE || (tag::TUP1..=tag::TUP_L4).contains(&t)
}

pub fn is_bytes_tag(t: u8) -> bool {
    t == tag::EMPTY_STR || (tag::STR1..=tag::STR_L4).contains(&t)
}
