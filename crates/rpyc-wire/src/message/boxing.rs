//! Boxing (WIRE.md §5): every request argument and reply result is a `(label, value)` pair.

use crate::brine::{self, Value};
use crate::consts::{tag, LABEL_LOCAL_REF, LABEL_REMOTE_REF, LABEL_TUPLE, LABEL_VALUE};
use crate::error::WireError;

/// An object reference: `(name_pack, class_id, instance_id)` (WIRE.md §5.1).
///
/// The ids are integers (`Value::Int`, or `Value::BigInt` when a peer sends ids beyond
/// `i64`; they are only ever used as keys, so they are kept exactly as received).
/// `instance_id == 0` means "a class".
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdPack {
    pub name: String,
    pub class_id: Value,
    pub instance_id: Value,
}

impl IdPack {
    /// An id_pack with `i64` ids.
    pub fn new(name: impl Into<String>, class_id: i64, instance_id: i64) -> IdPack {
        IdPack {
            name: name.into(),
            class_id: Value::Int(class_id),
            instance_id: Value::Int(instance_id),
        }
    }

    /// Read an id_pack from its wire form, a `TUP3(str, int, int)`.
    pub fn from_value(v: Value) -> Result<IdPack, WireError> {
        let bad = |got: &Value| {
            WireError::BadMessage(format!(
                "id_pack must be a (str, int, int) tuple, got {}",
                describe(got)
            ))
        };
        let items = match v {
            Value::Tuple(items) if items.len() == 3 => items,
            other => return Err(bad(&other)),
        };
        if !matches!(&items[..], [Value::Str(_), c, i] if c.is_int() && i.is_int()) {
            return Err(bad(&Value::Tuple(items)));
        }
        let mut it = items.into_iter();
        match (it.next(), it.next(), it.next()) {
            (Some(Value::Str(name)), Some(class_id), Some(instance_id)) => Ok(IdPack {
                name,
                class_id,
                instance_id,
            }),
            _ => Err(WireError::BadMessage(
                "id_pack must be a (str, int, int) tuple".to_owned(),
            )),
        }
    }

    /// The wire form, a `TUP3(str, int, int)`.
    pub fn to_value(&self) -> Value {
        Value::Tuple(vec![
            Value::Str(self.name.clone()),
            self.class_id.clone(),
            self.instance_id.clone(),
        ])
    }

    /// The wire form, by value.
    pub fn into_value(self) -> Value {
        Value::Tuple(vec![Value::Str(self.name), self.class_id, self.instance_id])
    }

    /// Whether the id_pack names a class (`instance_id == 0`).
    pub fn is_class(&self) -> bool {
        self.instance_id == Value::Int(0)
    }

    /// `class_id` when it fits `i64`.
    pub fn class_id_i64(&self) -> Option<i64> {
        self.class_id.as_i64()
    }

    /// `instance_id` when it fits `i64`.
    pub fn instance_id_i64(&self) -> Option<i64> {
        self.instance_id.as_i64()
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.push(tag::TUP3);
        brine::encode_str(&self.name, out);
        brine::encode(&self.class_id, out);
        brine::encode(&self.instance_id, out);
    }
}

/// A boxed object: what a label says about the value next to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Boxed {
    /// Label 1: the value itself (dumpable).
    Value(Value),
    /// Label 2: a tuple with at least one member that is not by value.
    Tuple(Vec<Boxed>),
    /// Label 3: "this is **your** object" (the receiver looks it up in its own table).
    LocalRef(IdPack),
    /// Label 4: "this is **my** object" (the receiver builds or reuses a proxy).
    RemoteRef(IdPack),
}

impl Boxed {
    /// Unbox the wire form `TUP2(label, value)`. Any other label is an error
    /// (upstream: `ValueError("invalid label N")`). Recursion follows LABEL_TUPLE nesting,
    /// which a decoded value bounds by `max_nesting_depth`.
    pub fn from_wire(v: Value) -> Result<Boxed, WireError> {
        let (label, value) = match v {
            Value::Tuple(items) if items.len() == 2 => {
                let mut it = items.into_iter();
                match (it.next(), it.next()) {
                    (Some(l), Some(v)) => (l, v),
                    _ => return Err(not_a_box(&Value::None)),
                }
            }
            other => return Err(not_a_box(&other)),
        };
        match label {
            Value::Int(LABEL_VALUE) => Ok(Boxed::Value(value)),
            Value::Int(LABEL_TUPLE) => match value {
                Value::Tuple(items) => items
                    .into_iter()
                    .map(Boxed::from_wire)
                    .collect::<Result<Vec<_>, _>>()
                    .map(Boxed::Tuple),
                other => Err(WireError::BadMessage(format!(
                    "LABEL_TUPLE box holds {}, not a tuple",
                    describe(&other)
                ))),
            },
            Value::Int(LABEL_LOCAL_REF) => IdPack::from_value(value).map(Boxed::LocalRef),
            Value::Int(LABEL_REMOTE_REF) => IdPack::from_value(value).map(Boxed::RemoteRef),
            other => Err(WireError::BadMessage(format!(
                "invalid label {}",
                describe(&other)
            ))),
        }
    }

    /// The wire form `TUP2(label, value)`.
    pub fn to_wire(&self) -> Value {
        match self {
            Boxed::Value(v) => labelled(LABEL_VALUE, v.clone()),
            Boxed::Tuple(items) => labelled(
                LABEL_TUPLE,
                Value::Tuple(items.iter().map(Boxed::to_wire).collect()),
            ),
            Boxed::LocalRef(id) => labelled(LABEL_LOCAL_REF, id.to_value()),
            Boxed::RemoteRef(id) => labelled(LABEL_REMOTE_REF, id.to_value()),
        }
    }

    /// The wire form, by value (no clones).
    pub fn into_wire(self) -> Value {
        match self {
            Boxed::Value(v) => labelled(LABEL_VALUE, v),
            Boxed::Tuple(items) => labelled(
                LABEL_TUPLE,
                Value::Tuple(items.into_iter().map(Boxed::into_wire).collect()),
            ),
            Boxed::LocalRef(id) => labelled(LABEL_LOCAL_REF, id.into_value()),
            Boxed::RemoteRef(id) => labelled(LABEL_REMOTE_REF, id.into_value()),
        }
    }

    /// Append the brine encoding of the wire form to `out` (same bytes as
    /// `brine::encode(&self.to_wire(), out)`, without building the value).
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(tag::TUP2);
        match self {
            Boxed::Value(v) => {
                brine::encode(&Value::Int(LABEL_VALUE), out);
                brine::encode(v, out);
            }
            Boxed::Tuple(items) => {
                brine::encode(&Value::Int(LABEL_TUPLE), out);
                brine::encode_tuple_header(items.len(), out);
                for item in items {
                    item.encode(out);
                }
            }
            Boxed::LocalRef(id) => {
                brine::encode(&Value::Int(LABEL_LOCAL_REF), out);
                id.encode(out);
            }
            Boxed::RemoteRef(id) => {
                brine::encode(&Value::Int(LABEL_REMOTE_REF), out);
                id.encode(out);
            }
        }
    }

    /// Box a tuple the way upstream does: by value (label 1) when every member is by
    /// value, else label 2 with each member boxed on its own.
    pub fn tuple(items: Vec<Boxed>) -> Boxed {
        if items.iter().all(|b| matches!(b, Boxed::Value(_))) {
            Boxed::Value(Value::Tuple(
                items
                    .into_iter()
                    .filter_map(|b| match b {
                        Boxed::Value(v) => Some(v),
                        _ => None,
                    })
                    .collect(),
            ))
        } else {
            Boxed::Tuple(items)
        }
    }

    /// The members of a boxed tuple (a request's argument tuple), each as a box: a by-value
    /// tuple yields `Boxed::Value` members.
    pub fn into_items(self) -> Result<Vec<Boxed>, WireError> {
        match self {
            Boxed::Value(Value::Tuple(items)) => Ok(items.into_iter().map(Boxed::Value).collect()),
            Boxed::Tuple(items) => Ok(items),
            Boxed::Value(other) => Err(WireError::BadMessage(format!(
                "expected a boxed tuple, got {}",
                describe(&other)
            ))),
            Boxed::LocalRef(_) | Boxed::RemoteRef(_) => Err(WireError::BadMessage(
                "expected a boxed tuple, got an object reference".to_owned(),
            )),
        }
    }
}

fn labelled(label: i64, value: Value) -> Value {
    Value::Tuple(vec![Value::Int(label), value])
}

fn not_a_box(got: &Value) -> WireError {
    WireError::BadMessage(format!(
        "a boxed value must be a (label, value) pair, got {}",
        describe(got)
    ))
}

/// A short description of a value for error messages (never the whole value).
fn describe(v: &Value) -> String {
    match v {
        Value::Int(i) => i.to_string(),
        Value::Bool(b) => if *b { "True" } else { "False" }.to_owned(),
        Value::None => "None".to_owned(),
        Value::Tuple(items) => format!("a {}-tuple", items.len()),
        other => format!("a {}", other.type_name()),
    }
}
