//! Where decoded values go: the one brine reader ([`super::read`]) hands each value it
//! decodes to a [`Sink`], which builds it in its own representation — [`super::Value`] here,
//! Python objects in the `rpyc._core` extension (serde's visitor pattern, monomorphized per
//! sink). The reader owns everything about the format (tags, lengths, canonical forms,
//! nesting, allocation bounds); a sink only builds, and checks what only it can check
//! (frozenset members that its own notion of equality calls duplicates).

use crate::error::WireError;

/// The containers brine nests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    Tuple,
    /// Members arrive in wire order; the sink refuses duplicates.
    FrozenSet,
    /// Always exactly three members: start, stop, step.
    Slice,
    /// By-value containers (only when [`Sink::by_value`] is on): a list, a dict (keys and
    /// values alternating; the sink refuses duplicate keys), a set, an array (exactly
    /// `dtype, shape, strides, data`: [`super::array`] checks them), a reference (an
    /// id_pack: `str, int, int`) to the receiver's own object or to the sender's.
    List,
    Dict,
    Set,
    Array,
    LocalRef,
    RemoteRef,
}

impl Container {
    pub fn name(self) -> &'static str {
        match self {
            Container::Tuple => "tuple",
            Container::FrozenSet => "FSET",
            Container::Slice => "SLICE",
            Container::List => "LIST",
            Container::Dict => "DICT",
            Container::Set => "SET",
            Container::Array => "ARRAY",
            Container::LocalRef => "LOCAL_REF",
            Container::RemoteRef => "REMOTE_REF",
        }
    }
}

/// Validated text of a `str` item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Text<'a> {
    /// Only ASCII characters (the usual case: a sink may copy these bytes as they are).
    Ascii(&'a [u8]),
    /// Any other UTF-8.
    Utf8(&'a str),
}

impl Text<'_> {
    /// The text as an owned `String`.
    pub fn to_owned_string(&self) -> String {
        match *self {
            // ASCII bytes are UTF-8: one copy (not a char at a time, growing as it goes);
            // the fallback never happens.
            Text::Ascii(b) => match std::str::from_utf8(b) {
                Ok(s) => s.to_owned(),
                Err(_) => b.iter().map(|&c| char::from(c)).collect(),
            },
            Text::Utf8(s) => s.to_owned(),
        }
    }
}

/// Builds the values the reader decodes.
pub trait Sink {
    /// A complete value.
    type Value;
    /// A container whose members are still arriving.
    type Builder;
    type Error;

    /// The sink's error for a malformed input found by the reader.
    fn wire_error(&mut self, e: WireError) -> Self::Error;

    fn none(&mut self) -> Result<Self::Value, Self::Error>;
    fn boolean(&mut self, v: bool) -> Result<Self::Value, Self::Error>;
    fn ellipsis(&mut self) -> Result<Self::Value, Self::Error>;
    fn not_implemented(&mut self) -> Result<Self::Value, Self::Error>;
    fn int(&mut self, v: i64) -> Result<Self::Value, Self::Error>;
    /// An integer outside `i64`, as canonical decimal text (ASCII: an optional `-`, then
    /// digits) of at most 4300 digits.
    fn big_int(&mut self, text: &[u8]) -> Result<Self::Value, Self::Error>;
    fn float(&mut self, v: f64) -> Result<Self::Value, Self::Error>;
    fn complex(&mut self, re: f64, im: f64) -> Result<Self::Value, Self::Error>;
    fn bytes(&mut self, b: &[u8]) -> Result<Self::Value, Self::Error>;
    fn str(&mut self, text: Text<'_>) -> Result<Self::Value, Self::Error>;

    /// Start a container of `len` members (`len` fits in the input: every member takes at
    /// least one byte, so a sink may allocate for `len` members at once).
    fn begin(&mut self, kind: Container, len: usize) -> Result<Self::Builder, Self::Error>;
    /// Add the next member, in wire order.
    fn push(&mut self, builder: &mut Self::Builder, item: Self::Value) -> Result<(), Self::Error>;
    /// Finish the container that started at byte `offset`, once all its members are in.
    fn end(
        &mut self,
        builder: Self::Builder,
        kind: Container,
        offset: usize,
    ) -> Result<Self::Value, Self::Error>;

    /// Whether the by-value tags are accepted here (inside a `LABEL_BY_VALUE` box of a
    /// connection that negotiated `by_value`); everywhere else they are unknown tags.
    #[inline]
    fn by_value(&self) -> bool {
        false
    }

    /// Called every [`CHECKPOINT_ITEMS`] items or [`CHECKPOINT_BYTES`] bytes of one value
    /// (a sink that holds a lock others wait for may let them have it; an error stops the
    /// reading).
    #[inline]
    fn checkpoint(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// Items read between two [`Sink::checkpoint`]s, at most.
pub const CHECKPOINT_ITEMS: usize = 16 * 1024;
/// Bytes read between two [`Sink::checkpoint`]s, at most (give or take one item).
pub const CHECKPOINT_BYTES: usize = 64 * 1024;

/// A sink that builds nothing: [`super::read`] with it validates a value (every rule the
/// reader enforces) and skips over it.
pub struct Skip;

/// [`Skip`] for a by-value value: the by-value tags are accepted, and arrays are checked
/// ([`super::array`]) as a building sink would.
pub struct SkipByValue;

impl Sink for SkipByValue {
    type Value = super::array::Scalar;
    type Builder = Vec<super::array::Scalar>;
    type Error = WireError;

    fn wire_error(&mut self, e: WireError) -> WireError {
        e
    }
    fn none(&mut self) -> Result<Self::Value, WireError> {
        Ok(super::array::Scalar::None)
    }
    fn boolean(&mut self, _: bool) -> Result<Self::Value, WireError> {
        Ok(super::array::Scalar::Other)
    }
    fn ellipsis(&mut self) -> Result<Self::Value, WireError> {
        Ok(super::array::Scalar::Other)
    }
    fn not_implemented(&mut self) -> Result<Self::Value, WireError> {
        Ok(super::array::Scalar::Other)
    }
    fn int(&mut self, v: i64) -> Result<Self::Value, WireError> {
        Ok(super::array::Scalar::Int(v))
    }
    fn big_int(&mut self, _: &[u8]) -> Result<Self::Value, WireError> {
        Ok(super::array::Scalar::Other)
    }
    fn float(&mut self, _: f64) -> Result<Self::Value, WireError> {
        Ok(super::array::Scalar::Other)
    }
    fn complex(&mut self, _: f64, _: f64) -> Result<Self::Value, WireError> {
        Ok(super::array::Scalar::Other)
    }
    fn bytes(&mut self, b: &[u8]) -> Result<Self::Value, WireError> {
        Ok(super::array::Scalar::Bytes(b.len()))
    }
    fn str(&mut self, t: Text<'_>) -> Result<Self::Value, WireError> {
        Ok(super::array::Scalar::Str(t.to_owned_string()))
    }
    fn begin(&mut self, kind: Container, _: usize) -> Result<Self::Builder, WireError> {
        // Only the members of arrays and shape/strides tuples are looked at; other
        // containers keep nothing.
        let _ = kind;
        Ok(Vec::new())
    }
    fn push(&mut self, b: &mut Self::Builder, item: Self::Value) -> Result<(), WireError> {
        if b.len() < super::array::MAX_DIMS + 1 {
            b.push(item);
        } else {
            b.push(super::array::Scalar::Other);
            b.truncate(super::array::MAX_DIMS + 1);
        }
        Ok(())
    }
    fn end(
        &mut self,
        b: Self::Builder,
        kind: Container,
        offset: usize,
    ) -> Result<Self::Value, WireError> {
        match kind {
            Container::Tuple => Ok(super::array::Scalar::Ints(
                b.iter()
                    .map(|s| match s {
                        super::array::Scalar::Int(v) => Some(*v),
                        _ => None,
                    })
                    .collect(),
            )),
            Container::Array => {
                super::array::check_parts(&b, offset)?;
                Ok(super::array::Scalar::Other)
            }
            _ => Ok(super::array::Scalar::Other),
        }
    }
    fn by_value(&self) -> bool {
        true
    }
}

impl Sink for Skip {
    type Value = ();
    type Builder = ();
    type Error = WireError;

    fn wire_error(&mut self, e: WireError) -> WireError {
        e
    }
    fn none(&mut self) -> Result<(), WireError> {
        Ok(())
    }
    fn boolean(&mut self, _: bool) -> Result<(), WireError> {
        Ok(())
    }
    fn ellipsis(&mut self) -> Result<(), WireError> {
        Ok(())
    }
    fn not_implemented(&mut self) -> Result<(), WireError> {
        Ok(())
    }
    fn int(&mut self, _: i64) -> Result<(), WireError> {
        Ok(())
    }
    fn big_int(&mut self, _: &[u8]) -> Result<(), WireError> {
        Ok(())
    }
    fn float(&mut self, _: f64) -> Result<(), WireError> {
        Ok(())
    }
    fn complex(&mut self, _: f64, _: f64) -> Result<(), WireError> {
        Ok(())
    }
    fn bytes(&mut self, _: &[u8]) -> Result<(), WireError> {
        Ok(())
    }
    fn str(&mut self, _: Text<'_>) -> Result<(), WireError> {
        Ok(())
    }
    fn begin(&mut self, _: Container, _: usize) -> Result<(), WireError> {
        Ok(())
    }
    fn push(&mut self, _: &mut (), _: ()) -> Result<(), WireError> {
        Ok(())
    }
    fn end(&mut self, _: (), _: Container, _: usize) -> Result<(), WireError> {
        Ok(())
    }
}
