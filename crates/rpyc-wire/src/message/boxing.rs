//! Boxing (docs/protocol.md#boxing): every request argument and reply result is a
//! `(label, value)` pair. One unboxer ([`unbox`]) reads boxes straight from the wire into
//! any [`BoxSink`]: [`BoxedSink`] gives [`Boxed`] trees, `rpyc._core` gives Python objects
//! and proxies.

use crate::brine::{self, is_bytes_tag, write, Cursor, Sink, Skip, Text, Value, ValueSink};
use crate::consts::{
    tag, LABEL_BY_VALUE, LABEL_LOCAL_REF, LABEL_REMOTE_REF, LABEL_TUPLE, LABEL_VALUE,
};
use crate::error::WireError;
use crate::limits::Limits;

/// An object reference: `(name_pack, class_id, instance_id)` (docs/protocol.md#id_pack).
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

/// An id as it stood on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdNum<'a> {
    Small(i64),
    /// Canonical decimal text of an integer outside `i64`.
    Big(&'a str),
}

impl IdNum<'_> {
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            IdNum::Small(v) => u64::try_from(v).ok(),
            IdNum::Big(text) => text.parse().ok(),
        }
    }

    pub fn to_value(&self) -> Value {
        match *self {
            IdNum::Small(v) => Value::Int(v),
            IdNum::Big(text) => Value::BigInt(text.to_owned()),
        }
    }
}

/// An id_pack read from the wire, borrowing its name from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdPackRef<'a> {
    pub name: Text<'a>,
    pub class_id: IdNum<'a>,
    pub instance_id: IdNum<'a>,
}

impl IdPackRef<'_> {
    /// `(class_id, instance_id)` when both fit `u64` (how object tables key objects).
    pub fn key(&self) -> Option<(u64, u64)> {
        Some((self.class_id.as_u64()?, self.instance_id.as_u64()?))
    }

    pub fn to_owned(&self) -> IdPack {
        IdPack {
            name: self.name.to_owned_string(),
            class_id: self.class_id.to_value(),
            instance_id: self.instance_id.to_value(),
        }
    }
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
        let bytes = brine::to_vec(&v);
        let mut cur = Cursor::new(&bytes);
        match read_id_pack(&mut cur, 0, usize::MAX) {
            Some(id) if cur.at_end() => Ok(id.to_owned()),
            _ => Err(WireError::BadMessage(format!(
                "id_pack must be a (str, int, int) tuple, got {}",
                describe(&v)
            ))),
        }
    }

    /// The wire form, a `TUP3(str, int, int)`.
    pub fn to_value(&self) -> Value {
        self.clone().into_value()
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
}

/// Append an id_pack: `TUP3(str, int, int)`.
pub fn write_id_pack(out: &mut Vec<u8>, name: &str, class_id: u64, instance_id: u64) {
    write::tuple_header(out, 3);
    write::str(out, name);
    write_u64(out, class_id);
    write_u64(out, instance_id);
}

fn write_u64(out: &mut Vec<u8>, v: u64) {
    match i64::try_from(v) {
        Ok(v) => write::int(out, v),
        Err(_) => {
            // Canonical by construction (digits of a u64 beyond i64).
            let _ = write::int_text(out, v.to_string().as_bytes());
        }
    }
}

/// A box of label `label` follows: `TUP2` and the label.
#[inline]
pub fn write_box_head(out: &mut Vec<u8>, label: i64) {
    write::tuple_header(out, 2);
    write::int(out, label);
}

/// A tuple box at `level` (its level already checked): label 2, each member boxed; or,
/// label 1 (every member by value), a brine tuple of the members' values, the bytes
/// `Boxed::Value(Value::Tuple(..))` encodes to.
fn write_tuple_members(
    items: &[Boxed],
    label: i64,
    level: usize,
    max_depth: usize,
    out: &mut Vec<u8>,
) -> Result<(), WireError> {
    write::container_level(level + 1, max_depth)?;
    write_box_head(out, label);
    write::tuple_header(out, items.len());
    items.iter().try_for_each(|item| match item {
        Boxed::Value(v) if label == LABEL_VALUE => {
            brine::encode_checked(v, level + 2, max_depth, out)
        }
        _ => item.write_checked(level + 2, max_depth, out),
    })
}

/// A well-formed item that is not a valid box. Not a protocol violation (the message stays
/// parseable): the error goes to whoever handles the message, as upstream raises it there.
#[derive(Debug)]
pub enum BadBox<V> {
    /// This item stood where a `(label, value)` pair belongs.
    NotAPair(V),
    /// A label other than 1 to 4.
    Label(V),
    /// A `LABEL_TUPLE` box holding this instead of a tuple.
    NotATuple(V),
    /// A reference whose id_pack is not `(str, int, int)`.
    IdPack(V),
}

/// Builds what boxes hold: plain values through [`BoxSink::values`], and the tuples and
/// references boxes add.
pub trait BoxSink {
    /// An unboxed object.
    type Object;
    /// The sink for label-1 values.
    type Values: Sink;

    fn values(&mut self) -> &mut Self::Values;
    /// A label-1 value as an object.
    fn plain(&mut self, v: <Self::Values as Sink>::Value) -> Self::Object;
    /// A label-2 tuple of objects.
    fn tuple(
        &mut self,
        items: Vec<Self::Object>,
    ) -> Result<Self::Object, <Self::Values as Sink>::Error>;
    /// Label 3: "your object", one of the receiver's own.
    fn local_ref(
        &mut self,
        id: &IdPackRef<'_>,
    ) -> Result<Self::Object, <Self::Values as Sink>::Error>;
    /// Label 4: "my object", the sender's (the receiver makes or reuses a proxy).
    fn remote_ref(
        &mut self,
        id: &IdPackRef<'_>,
    ) -> Result<Self::Object, <Self::Values as Sink>::Error>;
    /// The error for a box of the wrong shape (see [`BadBox`]).
    fn bad_box(
        &mut self,
        bad: BadBox<<Self::Values as Sink>::Value>,
    ) -> <Self::Values as Sink>::Error;
    /// Whether `e` ends the connection (malformed brine, a limit) rather than the handling
    /// of this one message (a [`BadBox`], an unknown object).
    fn is_fatal(&self, e: &<Self::Values as Sink>::Error) -> bool;

    /// Switch the value sink's by-value mode for a `LABEL_BY_VALUE` box (docs/by-value.md);
    /// false when this side does not accept one (the feature was not negotiated, or the
    /// sink cannot build by-value data): the label is then an invalid label.
    fn by_value(&mut self, _on: bool) -> bool {
        false
    }

    /// A `LABEL_BY_VALUE` value, read in full: the object, or the (not fatal) error the
    /// sink kept while building it (an array it refused).
    fn by_value_done(
        &mut self,
        v: <Self::Values as Sink>::Value,
    ) -> Result<Self::Object, <Self::Values as Sink>::Error> {
        Ok(self.plain(v))
    }
}

type BoxResult<B> = Result<<B as BoxSink>::Object, <<B as BoxSink>::Values as Sink>::Error>;

/// Read one box at `level` (the containers already open around it). Malformed brine is a
/// fatal error; a box of the wrong shape is a [`BadBox`] error returned after the whole box
/// was read (and validated), so that the message can still be answered.
pub fn unbox<B: BoxSink>(
    cur: &mut Cursor<'_>,
    level: usize,
    max_depth: usize,
    sink: &mut B,
) -> BoxResult<B> {
    if level >= max_depth {
        return Err(sink
            .values()
            .wire_error(WireError::NestingTooDeep { max: max_depth }));
    }
    if cur.peek() != Some(tag::TUP2) {
        let item = brine::read(cur, level, max_depth, sink.values())?;
        return Err(sink.bad_box(BadBox::NotAPair(item)));
    }
    cur.expect(tag::TUP2, "box")
        .map_err(|e| sink.values().wire_error(e))?;
    let inner = level + 1;
    match cur.try_small_int() {
        Some(LABEL_VALUE) => {
            let v = brine::read(cur, inner, max_depth, sink.values())?;
            Ok(sink.plain(v))
        }
        Some(LABEL_TUPLE) => unbox_tuple(cur, inner, max_depth, sink),
        Some(LABEL_BY_VALUE) if sink.by_value(true) => {
            let v = brine::read(cur, inner, max_depth, sink.values());
            sink.by_value(false);
            sink.by_value_done(v?)
        }
        Some(label @ (LABEL_LOCAL_REF | LABEL_REMOTE_REF)) => {
            let start = cur.pos();
            match read_id_pack(cur, inner, max_depth) {
                Some(id) if label == LABEL_LOCAL_REF => sink.local_ref(&id),
                Some(id) => sink.remote_ref(&id),
                None => {
                    cur.rewind(start);
                    let item = brine::read(cur, inner, max_depth, sink.values())?;
                    Err(sink.bad_box(BadBox::IdPack(item)))
                }
            }
        }
        other => {
            let label = match other {
                Some(n) => sink.values().int(n)?,
                None => brine::read(cur, inner, max_depth, sink.values())?,
            };
            skip(cur, inner, max_depth, sink)?;
            Err(sink.bad_box(BadBox::Label(label)))
        }
    }
}

/// The value of a `LABEL_TUPLE` box: a tuple whose members are boxes.
fn unbox_tuple<B: BoxSink>(
    cur: &mut Cursor<'_>,
    level: usize,
    max_depth: usize,
    sink: &mut B,
) -> BoxResult<B> {
    let n = match cur.peek() {
        Some(t) if brine::is_tuple_tag(t) => {
            if level >= max_depth {
                return Err(sink
                    .values()
                    .wire_error(WireError::NestingTooDeep { max: max_depth }));
            }
            cur.tuple_header("boxed tuple")
                .map_err(|e| sink.values().wire_error(e))?
        }
        _ => {
            let item = brine::read(cur, level, max_depth, sink.values())?;
            return Err(sink.bad_box(BadBox::NotATuple(item)));
        }
    };
    let mut items = Vec::with_capacity(n);
    let mut failed = None;
    for _ in 0..n {
        if failed.is_some() {
            // Validate the rest, so that malformed bytes anywhere still end the connection.
            skip(cur, level + 1, max_depth, sink)?;
            continue;
        }
        match unbox(cur, level + 1, max_depth, sink) {
            Ok(item) => items.push(item),
            Err(e) if sink.is_fatal(&e) => return Err(e),
            Err(e) => failed = Some(e),
        }
    }
    match failed {
        Some(e) => Err(e),
        None => sink.tuple(items),
    }
}

/// Read and validate one item without building it.
fn skip<B: BoxSink>(
    cur: &mut Cursor<'_>,
    level: usize,
    max_depth: usize,
    sink: &mut B,
) -> Result<(), <B::Values as Sink>::Error> {
    brine::read(cur, level, max_depth, &mut Skip).map_err(|e| sink.values().wire_error(e))
}

/// An id_pack `TUP3(str, int, int)` at `level`; `None` (cursor anywhere) for any other
/// item, malformed or too deep: the caller rewinds and reads it in full to report it.
fn read_id_pack<'a>(cur: &mut Cursor<'a>, level: usize, max_depth: usize) -> Option<IdPackRef<'a>> {
    if level >= max_depth {
        return None;
    }
    let start = cur.pos();
    if cur.byte("id_pack").ok()? != tag::TUP3 || cur.byte("id_pack").ok()? != tag::UNICODE {
        return None;
    }
    let t = cur.byte("id_pack name").ok()?;
    if !is_bytes_tag(t) {
        return None;
    }
    let raw = cur.bytes_body(t, start).ok()?;
    // (Names are class names: nearly always ASCII, told apart without a UTF-8 pass.)
    let name = match raw.is_ascii() {
        true => Text::Ascii(raw),
        false => Text::Utf8(std::str::from_utf8(raw).ok()?),
    };
    Some(IdPackRef {
        name,
        class_id: id_num(cur)?,
        instance_id: id_num(cur)?,
    })
}

fn id_num<'a>(cur: &mut Cursor<'a>) -> Option<IdNum<'a>> {
    let start = cur.pos();
    match cur.byte("id").ok()? {
        t @ tag::IMM_FIRST..=tag::IMM_LAST => Some(IdNum::Small(i64::from(t) - tag::IMM_BIAS)),
        t @ (tag::INT_L1 | tag::INT_L4) => match cur.int_body(t, start).ok()? {
            (_, Some(v)) => Some(IdNum::Small(v)),
            (text, None) => std::str::from_utf8(text).ok().map(IdNum::Big),
        },
        _ => None,
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

/// Unboxes into [`Boxed`] trees; a [`BadBox`] becomes a [`WireError::BadMessage`].
#[derive(Default)]
pub struct BoxedSink {
    values: ValueSink,
}

impl BoxSink for BoxedSink {
    type Object = Boxed;
    type Values = ValueSink;

    fn values(&mut self) -> &mut ValueSink {
        &mut self.values
    }
    fn plain(&mut self, v: Value) -> Boxed {
        Boxed::Value(v)
    }
    fn tuple(&mut self, items: Vec<Boxed>) -> Result<Boxed, WireError> {
        Ok(Boxed::Tuple(items))
    }
    fn local_ref(&mut self, id: &IdPackRef<'_>) -> Result<Boxed, WireError> {
        Ok(Boxed::LocalRef(id.to_owned()))
    }
    fn remote_ref(&mut self, id: &IdPackRef<'_>) -> Result<Boxed, WireError> {
        Ok(Boxed::RemoteRef(id.to_owned()))
    }
    fn bad_box(&mut self, bad: BadBox<Value>) -> WireError {
        WireError::BadMessage(match bad {
            BadBox::NotAPair(v) => format!(
                "a boxed value must be a (label, value) pair, got {}",
                describe(&v)
            ),
            BadBox::Label(v) => format!("invalid label {}", describe(&v)),
            BadBox::NotATuple(v) => {
                format!("LABEL_TUPLE box holds {}, not a tuple", describe(&v))
            }
            BadBox::IdPack(v) => format!(
                "id_pack must be a (str, int, int) tuple, got {}",
                describe(&v)
            ),
        })
    }
    fn is_fatal(&self, e: &WireError) -> bool {
        !matches!(e, WireError::BadMessage(_))
    }
}

impl Boxed {
    /// Unbox the wire form `TUP2(label, value)`. Any other label is an error
    /// (upstream: `ValueError("invalid label N")`).
    pub fn from_wire(v: Value) -> Result<Boxed, WireError> {
        let bytes = brine::to_vec(&v);
        Boxed::decode(
            &bytes,
            &Limits {
                max_nesting_depth: usize::MAX,
                ..Limits::default()
            },
        )
    }

    /// Unbox one box that must fill `data` exactly.
    pub fn decode(data: &[u8], limits: &Limits) -> Result<Boxed, WireError> {
        let mut cur = Cursor::new(data);
        let boxed = unbox(
            &mut cur,
            0,
            limits.max_nesting_depth,
            &mut BoxedSink::default(),
        )?;
        cur.finish()?;
        Ok(boxed)
    }

    /// The wire form `TUP2(label, value)`.
    pub fn to_wire(&self) -> Value {
        self.clone().into_wire()
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
    /// `brine::encode(&self.to_wire(), out)`, without building the value). Writes nothing
    /// for a box brine cannot carry (see [`Boxed::encode_checked`]).
    pub fn encode(&self, out: &mut Vec<u8>) {
        let _ = self.encode_checked(0, usize::MAX, out);
    }

    /// Like [`Boxed::encode`] for a box at `level` in a message, refusing (writing nothing)
    /// what a peer applying `max_depth` would refuse and what brine cannot carry.
    pub fn encode_checked(
        &self,
        level: usize,
        max_depth: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), WireError> {
        let start = out.len();
        let written = self.write_checked(level, max_depth, out);
        if written.is_err() {
            out.truncate(start);
        }
        written
    }

    fn write_checked(
        &self,
        level: usize,
        max_depth: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), WireError> {
        write::container_level(level, max_depth)?;
        match self {
            Boxed::Value(v) => {
                write_box_head(out, LABEL_VALUE);
                brine::encode_checked(v, level + 1, max_depth, out)
            }
            Boxed::Tuple(items) => write_tuple_members(items, LABEL_TUPLE, level, max_depth, out),
            Boxed::LocalRef(id) => {
                write_box_head(out, LABEL_LOCAL_REF);
                brine::encode_checked(&id.to_value(), level + 1, max_depth, out)
            }
            Boxed::RemoteRef(id) => {
                write_box_head(out, LABEL_REMOTE_REF);
                brine::encode_checked(&id.to_value(), level + 1, max_depth, out)
            }
        }
    }

    /// [`Boxed::encode_checked`] of `Boxed::tuple(items.to_vec())`, without building it:
    /// a request's arguments are encoded where they are (a 64 MiB `bytes` argument is not
    /// cloned on its way to the wire).
    pub fn encode_tuple_checked(
        items: &[Boxed],
        level: usize,
        max_depth: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), WireError> {
        let start = out.len();
        let label = if items.iter().all(|b| matches!(b, Boxed::Value(_))) {
            LABEL_VALUE
        } else {
            LABEL_TUPLE
        };
        let written = write::container_level(level, max_depth)
            .and_then(|()| write_tuple_members(items, label, level, max_depth, out));
        if written.is_err() {
            out.truncate(start);
        }
        written
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

/// A short description of a value for error messages (never the whole value).
pub fn describe(v: &Value) -> String {
    match v {
        Value::Int(i) => i.to_string(),
        Value::Bool(b) => if *b { "True" } else { "False" }.to_owned(),
        Value::None => "None".to_owned(),
        Value::Tuple(items) => format!("a {}-tuple", items.len()),
        other => format!("a {}", other.type_name()),
    }
}
