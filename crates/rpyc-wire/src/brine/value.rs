//! The brine value tree.

use std::hash::{Hash, Hasher};

/// One brine value: the closed set of immutable Python values that travel by value.
///
/// Equality ([`PartialEq`]/[`Eq`]) and [`Hash`] are *structural*: floats compare by bit
/// pattern (so `NaN == NaN` when the bits agree and `0.0 != -0.0`), `Int(1) != Bool(true)`,
/// and frozenset members compare in wire order. This is the right notion for tests,
/// caches and table keys; Python's own `==` is a different relation.
#[derive(Debug, Clone)]
pub enum Value {
    /// `None` (tag `00`).
    None,
    /// `True` / `False` (tags `03` / `04`).
    Bool(bool),
    /// `Ellipsis` (tag `06`).
    Ellipsis,
    /// `NotImplemented` (tag `05`).
    NotImplemented,
    /// An integer that fits in `i64`.
    Int(i64),
    /// An integer outside the `i64` range, as canonical decimal text: optional `-`, then
    /// digits without leading zeros. The decoder only produces texts outside `i64`; the
    /// encoder also accepts in-range texts (and then writes the canonical short form).
    /// Use [`Value::int_from_decimal`] to build one from untrusted text.
    BigInt(String),
    /// A binary64 float; its bits travel unchanged (NaN payloads, `-0.0`).
    Float(f64),
    /// A complex number: real part, imaginary part.
    Complex(f64, f64),
    /// `bytes`.
    Bytes(Vec<u8>),
    /// `str`.
    Str(String),
    /// `tuple`.
    Tuple(Vec<Value>),
    /// `frozenset`, members in wire order.
    FrozenSet(Vec<Value>),
    /// `slice(start, stop, step)`.
    Slice(Box<(Value, Value, Value)>),
}

impl Value {
    /// An integer from decimal text; the text must be canonical (what Python's `str(int)`
    /// produces: optional `-`, no `+`, no leading zeros, no separators, at most 4300 digits).
    pub fn int_from_decimal(text: &str) -> Option<Value> {
        super::int::parse_canonical(text.as_bytes())
    }

    /// Build a slice value.
    pub fn slice(start: Value, stop: Value, step: Value) -> Value {
        Value::Slice(Box::new((start, stop, step)))
    }

    /// Build a `str` value.
    pub fn str(s: impl Into<String>) -> Value {
        Value::Str(s.into())
    }

    /// Build a `bytes` value.
    pub fn bytes(b: impl Into<Vec<u8>>) -> Value {
        Value::Bytes(b.into())
    }

    /// The integer, when this is an `Int` (not a `Bool`, not a `BigInt`).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// Whether this is an integer (`Int` or `BigInt`; `Bool` is not).
    pub fn is_int(&self) -> bool {
        matches!(self, Value::Int(_) | Value::BigInt(_))
    }

    /// The text, when this is a `Str`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The bytes, when this is a `Bytes`.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The members, when this is a `Tuple`.
    pub fn as_tuple(&self) -> Option<&[Value]> {
        match self {
            Value::Tuple(items) => Some(items),
            _ => None,
        }
    }

    /// The members, when this is a `Tuple`, by value.
    pub fn into_tuple(self) -> Result<Vec<Value>, Value> {
        match self {
            Value::Tuple(items) => Ok(items),
            other => Err(other),
        }
    }

    /// Python's type name of the value, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::None => "NoneType",
            Value::Bool(_) => "bool",
            Value::Ellipsis => "ellipsis",
            Value::NotImplemented => "NotImplementedType",
            Value::Int(_) | Value::BigInt(_) => "int",
            Value::Float(_) => "float",
            Value::Complex(..) => "complex",
            Value::Bytes(_) => "bytes",
            Value::Str(_) => "str",
            Value::Tuple(_) => "tuple",
            Value::FrozenSet(_) => "frozenset",
            Value::Slice(_) => "slice",
        }
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        use Value::*;
        match (self, other) {
            (None, None) | (Ellipsis, Ellipsis) | (NotImplemented, NotImplemented) => true,
            (Bool(a), Bool(b)) => a == b,
            (Int(a), Int(b)) => a == b,
            (BigInt(a), BigInt(b)) => a == b,
            (Float(a), Float(b)) => a.to_bits() == b.to_bits(),
            (Complex(ar, ai), Complex(br, bi)) => {
                ar.to_bits() == br.to_bits() && ai.to_bits() == bi.to_bits()
            }
            (Bytes(a), Bytes(b)) => a == b,
            (Str(a), Str(b)) => a == b,
            (Tuple(a), Tuple(b)) | (FrozenSet(a), FrozenSet(b)) => a == b,
            (Slice(a), Slice(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for Value {}

impl Hash for Value {
    fn hash<H: Hasher>(&self, state: &mut H) {
        std::mem::discriminant(self).hash(state);
        match self {
            Value::None | Value::Ellipsis | Value::NotImplemented => {}
            Value::Bool(b) => b.hash(state),
            Value::Int(i) => i.hash(state),
            Value::BigInt(s) => s.hash(state),
            Value::Float(f) => f.to_bits().hash(state),
            Value::Complex(r, i) => {
                r.to_bits().hash(state);
                i.to_bits().hash(state);
            }
            Value::Bytes(b) => b.hash(state),
            Value::Str(s) => s.hash(state),
            Value::Tuple(items) | Value::FrozenSet(items) => items.hash(state),
            Value::Slice(parts) => parts.hash(state),
        }
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Value {
        Value::Int(i)
    }
}

impl From<i32> for Value {
    fn from(i: i32) -> Value {
        Value::Int(i.into())
    }
}

impl From<u64> for Value {
    fn from(u: u64) -> Value {
        match i64::try_from(u) {
            Ok(i) => Value::Int(i),
            Err(_) => Value::BigInt(u.to_string()),
        }
    }
}

impl From<f64> for Value {
    fn from(f: f64) -> Value {
        Value::Float(f)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Str(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Str(s)
    }
}

impl From<Vec<Value>> for Value {
    fn from(items: Vec<Value>) -> Value {
        Value::Tuple(items)
    }
}
