//! The [`Sink`] that builds [`Value`] trees, and the decoding entry points for them.

use super::cursor::Cursor;
use super::pyset::{self, Summary};
use super::reader::read;
use super::sink::{Container, Sink, Text};
use super::Value;
use crate::error::WireError;
use crate::limits::Limits;
use std::collections::hash_map::RandomState;

/// Decode a buffer that must hold exactly one brine value.
pub fn decode(data: &[u8], limits: &Limits) -> Result<Value, WireError> {
    let (value, used) = decode_prefix(data, limits)?;
    Cursor::at(data, used).finish()?;
    Ok(value)
}

/// Decode the brine value at the start of `data`; returns it and the bytes it used.
pub fn decode_prefix(data: &[u8], limits: &Limits) -> Result<(Value, usize), WireError> {
    let mut cur = Cursor::new(data);
    let value = read(
        &mut cur,
        0,
        limits.max_nesting_depth,
        &mut ValueSink::default(),
    )?;
    Ok((value, cur.pos()))
}

/// Builds [`Value`]s. Frozensets whose members are equal under Python's `==` are refused
/// ([`pyset`] decides equality without Python). So that nested frozensets never summarize
/// a subtree twice, everything inside a frozenset is summarized bottom up as it completes.
/// One sink decodes one value: after an error its state is not reusable.
#[derive(Default)]
pub struct ValueSink {
    /// Hash keys of the duplicate check, made at the first frozenset.
    state: Option<RandomState>,
    /// Frozensets open around the current position.
    sets_open: usize,
    /// The summary of the container that just completed, when its parent needs it.
    last_sum: Option<Summary>,
}

/// A container being built; `sums` summarizes its members when it is inside a frozenset.
pub struct ValueBuilder {
    items: Vec<Value>,
    sums: Option<Vec<Summary>>,
}

impl ValueSink {
    fn state(&mut self) -> &RandomState {
        self.state.get_or_insert_with(RandomState::new)
    }

    /// Record `value`'s summary for its parent, when that parent (still open) needs it.
    fn summarize_for_parent(&mut self, value: &Value, sums: Option<&[Summary]>) {
        if let Some(sums) = sums {
            if self.sets_open > 0 {
                let s = pyset::summarize(value, sums, self.state());
                self.last_sum = Some(s);
            }
        }
    }
}

impl Sink for ValueSink {
    type Value = Value;
    type Builder = ValueBuilder;
    type Error = WireError;

    fn wire_error(&mut self, e: WireError) -> WireError {
        e
    }
    fn none(&mut self) -> Result<Value, WireError> {
        Ok(Value::None)
    }
    fn boolean(&mut self, v: bool) -> Result<Value, WireError> {
        Ok(Value::Bool(v))
    }
    fn ellipsis(&mut self) -> Result<Value, WireError> {
        Ok(Value::Ellipsis)
    }
    fn not_implemented(&mut self) -> Result<Value, WireError> {
        Ok(Value::NotImplemented)
    }
    fn int(&mut self, v: i64) -> Result<Value, WireError> {
        Ok(Value::Int(v))
    }
    fn big_int(&mut self, text: &[u8]) -> Result<Value, WireError> {
        Ok(Value::BigInt(text.iter().map(|&c| char::from(c)).collect()))
    }
    fn float(&mut self, v: f64) -> Result<Value, WireError> {
        Ok(Value::Float(v))
    }
    fn complex(&mut self, re: f64, im: f64) -> Result<Value, WireError> {
        Ok(Value::Complex(re, im))
    }
    fn bytes(&mut self, b: &[u8]) -> Result<Value, WireError> {
        Ok(Value::Bytes(b.to_vec()))
    }
    fn str(&mut self, text: Text<'_>) -> Result<Value, WireError> {
        Ok(Value::Str(text.to_owned_string()))
    }

    fn begin(&mut self, kind: Container, len: usize) -> Result<ValueBuilder, WireError> {
        if kind == Container::FrozenSet {
            self.sets_open += 1;
        }
        Ok(ValueBuilder {
            items: Vec::with_capacity(len),
            sums: (self.sets_open > 0).then(|| Vec::with_capacity(len)),
        })
    }

    fn push(&mut self, b: &mut ValueBuilder, item: Value) -> Result<(), WireError> {
        if b.sums.is_some() {
            // A container inside a set left its summary; a scalar is summarized here.
            let sum = match self.last_sum.take() {
                Some(s) => s,
                None => pyset::summarize_tree(&item, self.state()),
            };
            if let Some(sums) = b.sums.as_mut() {
                sums.push(sum);
            }
        }
        b.items.push(item);
        Ok(())
    }

    fn end(&mut self, b: ValueBuilder, kind: Container, offset: usize) -> Result<Value, WireError> {
        let ValueBuilder { items, sums } = b;
        let value = match kind {
            Container::Tuple => Value::Tuple(items),
            Container::FrozenSet => {
                self.sets_open -= 1;
                let members = sums.as_deref().unwrap_or_default();
                if pyset::has_duplicates_summarized(&items, members, self.state()) {
                    return Err(WireError::NonCanonical {
                        what: "FSET with duplicate members",
                        offset,
                    });
                }
                Value::FrozenSet(items)
            }
            // Unhashable before Python 3.12: refused on every version (so that the decoder
            // building Python objects, which must refuse it there, agrees everywhere).
            Container::Slice if self.sets_open > 0 => {
                return Err(WireError::BadSetMember {
                    why: "a slice inside a frozenset (unhashable)".to_owned(),
                    offset,
                })
            }
            Container::Slice => {
                let mut it = items.into_iter();
                match (it.next(), it.next(), it.next()) {
                    (Some(a), Some(b), Some(c)) => Value::Slice(Box::new((a, b, c))),
                    _ => {
                        return Err(WireError::BadContainer {
                            what: "SLICE",
                            offset,
                        })
                    }
                }
            }
            // (Never opened: this sink leaves `Sink::by_value` off, so the reader refuses
            // the by-value tags before any reaches it.)
            other => {
                return Err(WireError::BadContainer {
                    what: other.name(),
                    offset,
                })
            }
        };
        self.summarize_for_parent(&value, sums.as_deref());
        Ok(value)
    }
}
