//! [`Value`]: everything that travels as an argument or a result, with conversions from and
//! to Rust types.

use crate::error::{Error, Result};
use crate::expose::{Exposed, Local};
use crate::netref::NetRef;
use rpyc_wire::brine::Value as Wire;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::Hash;
use std::sync::Arc;

/// One argument or result of a remote call.
///
/// The data variants are brine's, the closed set of immutable Python values that travel by
/// value (`None`, `bool`, `int`, `float`, `complex`, `bytes`, `str`, `tuple`, `frozenset`,
/// `slice`, `Ellipsis`, `NotImplemented`). Everything else travels by reference:
/// [`Value::Remote`] is an object of the peer (a list, a dict, a function, a module...), and
/// [`Value::Local`] an object of ours that the peer may call ([`crate::callback`], a service).
///
/// Build values with `From` (`Value::from(5)`, `"text".into()`, `(1, "a").into()`), read
/// them with `TryFrom` (`i64::try_from(v)?`) or [`FromValue`] (what the generic `call`
/// methods use to give you the type you ask for).
#[derive(Clone, Default)]
pub enum Value {
    /// `None`.
    #[default]
    None,
    /// `True` / `False`.
    Bool(bool),
    /// An `int` that fits `i64`.
    Int(i64),
    /// An `int` outside `i64`, as canonical decimal text (optional `-`, no leading zeros).
    BigInt(String),
    /// A `float`.
    Float(f64),
    /// A `complex`: real part, imaginary part.
    Complex(f64, f64),
    /// `bytes`.
    Bytes(Vec<u8>),
    /// `str`.
    Str(String),
    /// A `tuple` (may hold references).
    Tuple(Vec<Value>),
    /// A `frozenset`, members in wire order (by-value members only).
    FrozenSet(Vec<Value>),
    /// A `slice(start, stop, step)`.
    Slice(Box<(Value, Value, Value)>),
    /// `Ellipsis`.
    Ellipsis,
    /// `NotImplemented`.
    NotImplemented,
    /// An object of the peer, by reference.
    Remote(NetRef),
    /// An object of ours, sent by reference: the peer gets a proxy it can call.
    Local(Local),
}

impl Value {
    /// A `str` value.
    pub fn str(s: impl Into<String>) -> Value {
        Value::Str(s.into())
    }

    /// A `bytes` value.
    pub fn bytes(b: impl Into<Vec<u8>>) -> Value {
        Value::Bytes(b.into())
    }

    /// A `tuple` of the items.
    pub fn tuple<I, T>(items: I) -> Value
    where
        I: IntoIterator<Item = T>,
        T: Into<Value>,
    {
        Value::Tuple(items.into_iter().map(Into::into).collect())
    }

    /// An object of ours sent by reference (the peer can call its methods).
    pub fn local(obj: impl Exposed) -> Value {
        Value::Local(Local::new(Arc::new(obj)))
    }

    /// An integer from canonical decimal text (`"-12"`, `"100000000000000000000"`).
    pub fn int_from_decimal(text: &str) -> Option<Value> {
        Wire::int_from_decimal(text).map(Value::from_wire)
    }

    /// Python's name of the value's type (`"int"`, `"str"`, or the remote class name of a
    /// reference), for messages.
    pub fn type_name(&self) -> String {
        match self {
            Value::Remote(r) => r.type_name().to_owned(),
            Value::Local(l) => l.type_name(),
            other => other
                .to_wire()
                .map(|w| w.type_name().to_owned())
                .unwrap_or_else(|| "tuple".to_owned()),
        }
    }

    /// Whether this is `None`.
    pub fn is_none(&self) -> bool {
        matches!(self, Value::None)
    }

    /// The integer, for `Int`.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The text, for `Str`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The members, for `Tuple`.
    pub fn as_tuple(&self) -> Option<&[Value]> {
        match self {
            Value::Tuple(items) => Some(items),
            _ => None,
        }
    }

    /// The reference, for `Remote`.
    pub fn as_netref(&self) -> Option<&NetRef> {
        match self {
            Value::Remote(r) => Some(r),
            _ => None,
        }
    }

    /// Convert to `T` ([`FromValue`]); remote containers are fetched (see [`FromValue`]).
    pub fn get<T: FromValue>(self) -> Result<T> {
        T::from_value(self)
    }

    /// The brine value, when this holds no reference.
    pub(crate) fn to_wire(&self) -> Option<Wire> {
        Some(match self {
            Value::None => Wire::None,
            Value::Bool(b) => Wire::Bool(*b),
            Value::Int(i) => Wire::Int(*i),
            Value::BigInt(s) => Wire::BigInt(s.clone()),
            Value::Float(f) => Wire::Float(*f),
            Value::Complex(r, i) => Wire::Complex(*r, *i),
            Value::Bytes(b) => Wire::Bytes(b.clone()),
            Value::Str(s) => Wire::Str(s.clone()),
            Value::Tuple(items) => Wire::Tuple(
                items
                    .iter()
                    .map(Value::to_wire)
                    .collect::<Option<Vec<_>>>()?,
            ),
            Value::FrozenSet(items) => Wire::FrozenSet(
                items
                    .iter()
                    .map(Value::to_wire)
                    .collect::<Option<Vec<_>>>()?,
            ),
            Value::Slice(p) => Wire::slice(p.0.to_wire()?, p.1.to_wire()?, p.2.to_wire()?),
            Value::Ellipsis => Wire::Ellipsis,
            Value::NotImplemented => Wire::NotImplemented,
            Value::Remote(_) | Value::Local(_) => return None,
        })
    }

    /// The brine value, by value (no copy of strings and bytes); `Err` gives the value
    /// back when it holds a reference.
    pub(crate) fn into_wire(self) -> std::result::Result<Wire, Value> {
        Ok(match self {
            Value::Bytes(b) => Wire::Bytes(b),
            Value::Str(s) => Wire::Str(s),
            Value::BigInt(s) => Wire::BigInt(s),
            other => return other.to_wire().ok_or(other),
        })
    }

    /// A brine value as a [`Value`].
    pub(crate) fn from_wire(w: Wire) -> Value {
        match w {
            Wire::None => Value::None,
            Wire::Bool(b) => Value::Bool(b),
            Wire::Ellipsis => Value::Ellipsis,
            Wire::NotImplemented => Value::NotImplemented,
            Wire::Int(i) => Value::Int(i),
            Wire::BigInt(s) => Value::BigInt(s),
            Wire::Float(f) => Value::Float(f),
            Wire::Complex(r, i) => Value::Complex(r, i),
            Wire::Bytes(b) => Value::Bytes(b),
            Wire::Str(s) => Value::Str(s),
            Wire::Tuple(items) => Value::Tuple(items.into_iter().map(Value::from_wire).collect()),
            Wire::FrozenSet(items) => {
                Value::FrozenSet(items.into_iter().map(Value::from_wire).collect())
            }
            Wire::Slice(p) => {
                let (a, b, c) = *p;
                Value::Slice(Box::new((
                    Value::from_wire(a),
                    Value::from_wire(b),
                    Value::from_wire(c),
                )))
            }
        }
    }

    /// A short description for error messages: the type, and the value when it is short.
    pub(crate) fn describe(&self) -> String {
        match self {
            Value::Remote(r) => format!("a remote {} object", r.type_name()),
            Value::Local(l) => format!("a local {} object", l.type_name()),
            Value::Str(s) if s.len() <= 40 => format!("str {s:?}"),
            Value::Str(_) => "a str".to_owned(),
            Value::Int(i) => format!("int {i}"),
            Value::Float(f) => format!("float {f}"),
            Value::Bool(b) => format!("bool {}", if *b { "True" } else { "False" }),
            Value::None => "None".to_owned(),
            other => format!("a {}", other.type_name()),
        }
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::None => write!(f, "None"),
            Value::Bool(b) => write!(f, "{}", if *b { "True" } else { "False" }),
            Value::Int(i) => write!(f, "{i}"),
            Value::BigInt(s) => write!(f, "{s}"),
            Value::Float(x) => write!(f, "{x:?}"),
            Value::Complex(r, i) => write!(f, "({r:?}+{i:?}j)"),
            Value::Bytes(b) => write!(f, "b{:?}", String::from_utf8_lossy(b)),
            Value::Str(s) => write!(f, "{s:?}"),
            Value::Tuple(items) => {
                let mut t = f.debug_tuple("");
                for item in items {
                    t.field(item);
                }
                t.finish()
            }
            Value::FrozenSet(items) => f.debug_set().entries(items).finish(),
            Value::Slice(p) => write!(f, "slice({:?}, {:?}, {:?})", p.0, p.1, p.2),
            Value::Ellipsis => write!(f, "Ellipsis"),
            Value::NotImplemented => write!(f, "NotImplemented"),
            Value::Remote(r) => write!(f, "{r:?}"),
            Value::Local(l) => write!(f, "<local {}>", l.type_name()),
        }
    }
}

/// Structural equality for data (floats by bits, as brine carries them); references are
/// equal when they name the same object.
impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Remote(a), Value::Remote(b)) => a.same_object(b),
            (Value::Local(a), Value::Local(b)) => a.same_object(b),
            (Value::Tuple(a), Value::Tuple(b)) => a == b,
            (Value::FrozenSet(a), Value::FrozenSet(b)) => a == b,
            (Value::Slice(a), Value::Slice(b)) => a == b,
            (a, b) => match (a.to_wire(), b.to_wire()) {
                (Some(a), Some(b)) => a == b,
                _ => false,
            },
        }
    }
}

// -- Rust -> Value -----------------------------------------------------------------------

macro_rules! from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(i: $t) -> Value {
                Value::Int(i64::from(i))
            }
        }
    )*};
}
from_int!(i8, i16, i32, i64, u8, u16, u32);

impl From<u64> for Value {
    fn from(u: u64) -> Value {
        match i64::try_from(u) {
            Ok(i) => Value::Int(i),
            Err(_) => Value::BigInt(u.to_string()),
        }
    }
}

impl From<usize> for Value {
    fn from(u: usize) -> Value {
        Value::from(u as u64)
    }
}

impl From<isize> for Value {
    fn from(i: isize) -> Value {
        Value::Int(i as i64)
    }
}

impl From<i128> for Value {
    fn from(i: i128) -> Value {
        match i64::try_from(i) {
            Ok(i) => Value::Int(i),
            Err(_) => Value::BigInt(i.to_string()),
        }
    }
}

impl From<u128> for Value {
    fn from(u: u128) -> Value {
        match i64::try_from(u) {
            Ok(i) => Value::Int(i),
            Err(_) => Value::BigInt(u.to_string()),
        }
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}

impl From<f64> for Value {
    fn from(f: f64) -> Value {
        Value::Float(f)
    }
}

impl From<f32> for Value {
    fn from(f: f32) -> Value {
        Value::Float(f64::from(f))
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

impl From<&String> for Value {
    fn from(s: &String) -> Value {
        Value::Str(s.clone())
    }
}

impl From<&[u8]> for Value {
    fn from(b: &[u8]) -> Value {
        Value::Bytes(b.to_vec())
    }
}

impl From<Vec<u8>> for Value {
    fn from(b: Vec<u8>) -> Value {
        Value::Bytes(b)
    }
}

impl From<()> for Value {
    fn from((): ()) -> Value {
        Value::None
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(o: Option<T>) -> Value {
        o.map_or(Value::None, Into::into)
    }
}

impl From<NetRef> for Value {
    fn from(r: NetRef) -> Value {
        Value::Remote(r)
    }
}

impl From<&NetRef> for Value {
    fn from(r: &NetRef) -> Value {
        Value::Remote(r.clone())
    }
}

impl From<Local> for Value {
    fn from(l: Local) -> Value {
        Value::Local(l)
    }
}

impl<T: Exposed> From<Arc<T>> for Value {
    fn from(obj: Arc<T>) -> Value {
        Value::Local(Local::new(obj))
    }
}

impl From<Wire> for Value {
    fn from(w: Wire) -> Value {
        Value::from_wire(w)
    }
}

macro_rules! from_tuple {
    ($($n:ident),+) => {
        impl<$($n: Into<Value>),+> From<($($n,)+)> for Value {
            #[allow(non_snake_case)]
            fn from(($($n,)+): ($($n,)+)) -> Value {
                Value::Tuple(vec![$($n.into()),+])
            }
        }
    };
}
from_tuple!(A);
from_tuple!(A, B);
from_tuple!(A, B, C);
from_tuple!(A, B, C, D);
from_tuple!(A, B, C, D, E);
from_tuple!(A, B, C, D, E, F);

// -- Value -> Rust -----------------------------------------------------------------------

/// Conversion of a received [`Value`] to a Rust type: what `call`, `call_method` and
/// `getattr` use to return the type you ask for (`let n: i64 = root.call_method("add",
/// (1, 2))?`).
///
/// Integers convert when they fit; `f64` also takes an `int`; `Vec<T>` takes a tuple, a
/// frozenset, or a *remote* iterable (a list, a generator...), which is then iterated;
/// `HashMap`/`BTreeMap` take a remote mapping (its items are fetched). A value of another
/// type is an [`Error::Conversion`] naming both types.
pub trait FromValue: Sized {
    /// Convert, or say what was expected and what came.
    fn from_value(v: Value) -> Result<Self>;
}

pub(crate) fn mismatch(expected: &str, got: &Value) -> Error {
    Error::Conversion(format!(
        "expected {expected}, got {} (ask for rpyc::Value to take any value)",
        got.describe()
    ))
}

impl FromValue for Value {
    fn from_value(v: Value) -> Result<Value> {
        Ok(v)
    }
}

impl FromValue for NetRef {
    fn from_value(v: Value) -> Result<NetRef> {
        match v {
            Value::Remote(r) => Ok(r),
            other => Err(mismatch("a remote object (NetRef)", &other)),
        }
    }
}

impl FromValue for () {
    fn from_value(v: Value) -> Result<()> {
        match v {
            Value::None => Ok(()),
            other => Err(mismatch("None", &other)),
        }
    }
}

impl FromValue for bool {
    fn from_value(v: Value) -> Result<bool> {
        match v {
            Value::Bool(b) => Ok(b),
            other => Err(mismatch("bool", &other)),
        }
    }
}

macro_rules! to_int {
    ($($t:ty),*) => {$(
        impl FromValue for $t {
            fn from_value(v: Value) -> Result<$t> {
                match &v {
                    Value::Int(i) => <$t>::try_from(*i).map_err(|_| Error::Conversion(format!(
                        "int {i} does not fit {} (ask for a wider integer type)", stringify!($t)))),
                    Value::BigInt(s) => s.parse::<$t>().map_err(|_| Error::Conversion(format!(
                        "int {s} does not fit {} (ask for i128, u128 or rpyc::Value)", stringify!($t)))),
                    _ => Err(mismatch(stringify!($t), &v)),
                }
            }
        }
        impl TryFrom<Value> for $t {
            type Error = Error;
            fn try_from(v: Value) -> Result<$t> {
                <$t as FromValue>::from_value(v)
            }
        }
    )*};
}
to_int!(i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize);

impl FromValue for f64 {
    fn from_value(v: Value) -> Result<f64> {
        match v {
            Value::Float(f) => Ok(f),
            Value::Int(i) => Ok(i as f64),
            other => Err(mismatch("float", &other)),
        }
    }
}

impl FromValue for String {
    fn from_value(v: Value) -> Result<String> {
        match v {
            Value::Str(s) => Ok(s),
            other => Err(mismatch("str", &other)),
        }
    }
}

macro_rules! try_from_simple {
    ($($t:ty),*) => {$(
        impl TryFrom<Value> for $t {
            type Error = Error;
            fn try_from(v: Value) -> Result<$t> {
                <$t as FromValue>::from_value(v)
            }
        }
    )*};
}
try_from_simple!(bool, f64, String, NetRef);

/// `bytes` as a `Vec<u8>` is [`Bytes`]; a plain `Vec<u8>` would be a list of small ints.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bytes(pub Vec<u8>);

impl FromValue for Bytes {
    fn from_value(v: Value) -> Result<Bytes> {
        match v {
            Value::Bytes(b) => Ok(Bytes(b)),
            other => Err(mismatch("bytes", &other)),
        }
    }
}

impl From<Bytes> for Value {
    fn from(b: Bytes) -> Value {
        Value::Bytes(b.0)
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: Value) -> Result<Option<T>> {
        match v {
            Value::None => Ok(None),
            other => T::from_value(other).map(Some),
        }
    }
}

impl<T: FromValue> FromValue for Vec<T> {
    fn from_value(v: Value) -> Result<Vec<T>> {
        match v {
            Value::Tuple(items) | Value::FrozenSet(items) => {
                items.into_iter().map(T::from_value).collect()
            }
            Value::Remote(r) => r.iter()?.map(|item| item.and_then(T::from_value)).collect(),
            other => Err(mismatch("a tuple or a remote iterable", &other)),
        }
    }
}

impl<K: FromValue + Eq + Hash, V: FromValue> FromValue for HashMap<K, V> {
    fn from_value(v: Value) -> Result<HashMap<K, V>> {
        match v {
            Value::Remote(r) => r
                .items()?
                .into_iter()
                .map(|(k, v)| Ok((K::from_value(k)?, V::from_value(v)?)))
                .collect(),
            other => Err(mismatch("a remote mapping", &other)),
        }
    }
}

impl<K: FromValue + Ord, V: FromValue> FromValue for BTreeMap<K, V> {
    fn from_value(v: Value) -> Result<BTreeMap<K, V>> {
        match v {
            Value::Remote(r) => r
                .items()?
                .into_iter()
                .map(|(k, v)| Ok((K::from_value(k)?, V::from_value(v)?)))
                .collect(),
            other => Err(mismatch("a remote mapping", &other)),
        }
    }
}

macro_rules! to_tuple {
    ($len:expr; $($n:ident),+) => {
        impl<$($n: FromValue),+> FromValue for ($($n,)+) {
            #[allow(non_snake_case)]
            fn from_value(v: Value) -> Result<Self> {
                match v {
                    Value::Tuple(items) if items.len() == $len => {
                        let mut it = items.into_iter();
                        $(let $n = $n::from_value(it.next().unwrap_or(Value::None))?;)+
                        Ok(($($n,)+))
                    }
                    other => Err(mismatch(concat!("a tuple of ", stringify!($len)), &other)),
                }
            }
        }
    };
}
to_tuple!(1; A);
to_tuple!(2; A, B);
to_tuple!(3; A, B, C);
to_tuple!(4; A, B, C, D);
to_tuple!(5; A, B, C, D, E);
to_tuple!(6; A, B, C, D, E, F);

// -- arguments ---------------------------------------------------------------------------

/// The positional arguments of a call: `()`, a tuple of values (`(5, "a")`, `(x,)` for one),
/// or a `Vec<Value>`.
pub trait IntoArgs {
    /// The arguments, in order.
    fn into_args(self) -> Vec<Value>;
}

impl IntoArgs for () {
    fn into_args(self) -> Vec<Value> {
        Vec::new()
    }
}

impl IntoArgs for Vec<Value> {
    fn into_args(self) -> Vec<Value> {
        self
    }
}

impl IntoArgs for &[Value] {
    fn into_args(self) -> Vec<Value> {
        self.to_vec()
    }
}

macro_rules! args_tuple {
    ($($n:ident),+) => {
        impl<$($n: Into<Value>),+> IntoArgs for ($($n,)+) {
            #[allow(non_snake_case)]
            fn into_args(self) -> Vec<Value> {
                let ($($n,)+) = self;
                vec![$($n.into()),+]
            }
        }
    };
}
args_tuple!(A);
args_tuple!(A, B);
args_tuple!(A, B, C);
args_tuple!(A, B, C, D);
args_tuple!(A, B, C, D, E);
args_tuple!(A, B, C, D, E, F);
args_tuple!(A, B, C, D, E, F, G);
args_tuple!(A, B, C, D, E, F, G, H);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_both_ways() {
        assert_eq!(Value::from(5), Value::Int(5));
        assert_eq!(Value::from(u64::MAX), Value::BigInt(u64::MAX.to_string()));
        assert_eq!(i64::try_from(Value::Int(7)).ok(), Some(7));
        assert!(u8::try_from(Value::Int(300)).is_err());
        assert_eq!(
            u64::from_value(Value::BigInt("18446744073709551615".into())).ok(),
            Some(u64::MAX)
        );
        assert_eq!(
            <(i64, String)>::from_value(Value::from((1, "a"))).ok(),
            Some((1, "a".to_owned()))
        );
        assert_eq!(Option::<i64>::from_value(Value::None).ok(), Some(None));
        assert_eq!(f64::from_value(Value::Int(2)).ok(), Some(2.0));
        let e = match String::from_value(Value::Int(3)) {
            Err(e) => e.to_string(),
            Ok(_) => String::new(),
        };
        assert!(e.contains("expected str, got int 3"), "{e}");
        assert_eq!(
            Vec::<i64>::from_value(Value::tuple([1, 2, 3])).ok(),
            Some(vec![1, 2, 3])
        );
        assert_eq!(Value::from(Some("x")), Value::str("x"));
        assert_eq!(Value::from(()), Value::None);
    }

    #[test]
    fn wire_roundtrip() {
        let v = Value::Tuple(vec![
            Value::Float(-0.0),
            Value::FrozenSet(vec![Value::Int(1)]),
            Value::Slice(Box::new((Value::None, Value::Int(3), Value::None))),
            Value::Complex(1.0, 2.0),
            Value::Bytes(b"ab".to_vec()),
        ]);
        let w = v.to_wire().expect("data only");
        assert_eq!(Value::from_wire(w), v);
    }
}
