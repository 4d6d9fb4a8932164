//! The brine [`Sink`] that builds Python objects: `rpyc_wire`'s one reader decodes peer
//! bytes straight into them (no intermediate value tree).

use crate::errors::wire_err;
use pyo3::exceptions::PyTypeError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyModule;
use pyo3::types::{PyComplex, PyDict, PyFloat, PyFrozenSet, PyList, PySet, PyTuple};
use rpyc_wire::brine::{self, Container, Cursor, Sink, Text};
use rpyc_wire::WireError;

/// Most members of one frozenset that may share a Python hash. CPython compares a new member
/// with every member of equal hash, so `n` members that all hash alike (integers
/// `k * (2**61 - 1)` do) cost `n²/2` comparisons with the GIL held: 16,000 of them took
/// 2.5 s. Legitimate sets hold at most a handful of equal hashes (`hash(-1) == hash(-2)`).
pub const MAX_EQUAL_HASHES: usize = 16;

/// Decode the one value that fills `data` (`brine.load`).
pub fn load(py: Python<'_>, data: &[u8], max_depth: usize) -> PyResult<Py<PyAny>> {
    let mut cur = Cursor::new(data);
    let value = brine::read(&mut cur, 0, max_depth, &mut PySink::new(py))?;
    cur.finish().map_err(wire_err)?;
    Ok(value)
}

/// A core value as the Python object it stands for (for the few values the core makes or
/// keeps itself: a seq, a handler that is not an integer, the rpyc-rs hello).
pub fn from_value(
    py: Python<'_>,
    v: &rpyc_wire::brine::Value,
    max_depth: usize,
) -> PyResult<Py<PyAny>> {
    load(py, &brine::to_vec(v), max_depth)
}

/// What turns a by-value reference (`LOCAL_REF`/`REMOTE_REF` and an id_pack) into an object:
/// the connection's unboxer.
pub trait ResolveRef<'py> {
    fn resolve(&self, local: bool, id_pack: Bound<'py, PyTuple>) -> R;
}

/// Builds Python objects for the brine reader. One sink decodes one value: after an error
/// its state is not reusable.
pub struct PySink<'a, 'py> {
    py: Python<'py>,
    /// Frozensets open around the current position (a slice inside one is refused).
    sets_open: usize,
    /// Reading a `LABEL_BY_VALUE` value: the by-value tags are accepted.
    by_value: bool,
    /// Resolves references inside by-value values (none: they are refused).
    refs: Option<&'a dyn ResolveRef<'py>>,
    /// References made so far (a hashed container that saw one checks its keys).
    refs_made: usize,
    /// The first array refused while reading a by-value value: reported once the value is
    /// read (the message stays intact, so the connection goes on).
    deferred: Option<PyErr>,
    /// Short strings of by-value values, shared (made on first use).
    strs: Option<Box<StrCache>>,
}

/// Short ASCII strings already made while reading by-value values: a list of dicts repeats
/// its keys in every dict, and one shared `str` (its hash computed once) saves an object
/// and a hash per key. A direct-mapped table: a collision only costs a new object.
struct StrCache {
    slots: Vec<Option<CachedStr>>,
}

/// A cached string: its bytes (padded), their length, the object.
type CachedStr = ([u8; STR_CACHE_LEN], u8, Py<PyAny>);

/// Longest string shared through [`StrCache`], and the number of its slots.
const STR_CACHE_LEN: usize = 24;
const STR_CACHE_SLOTS: usize = 256;

impl StrCache {
    fn get_or_make(&mut self, py: Python<'_>, raw: &[u8]) -> R {
        // FNV-1a over the bytes picks the slot.
        let h = raw.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        let slot = &mut self.slots[(h as usize) % STR_CACHE_SLOTS];
        if let Some((bytes, len, obj)) = slot {
            if &bytes[..usize::from(*len)] == raw {
                return Ok(obj.clone_ref(py));
            }
        }
        let obj = text_to_py(py, Text::Ascii(raw))?;
        let mut bytes = [0u8; STR_CACHE_LEN];
        bytes[..raw.len()].copy_from_slice(raw);
        // (raw.len() <= STR_CACHE_LEN < 256)
        *slot = Some((bytes, raw.len() as u8, obj.clone_ref(py)));
        Ok(obj)
    }
}

impl<'a, 'py> PySink<'a, 'py> {
    pub fn new(py: Python<'py>) -> Self {
        PySink {
            py,
            sets_open: 0,
            by_value: false,
            refs: None,
            refs_made: 0,
            deferred: None,
            strs: None,
        }
    }

    /// A sink that may read by-value values, resolving their references with `refs`.
    pub fn with_refs(py: Python<'py>, refs: &'a dyn ResolveRef<'py>) -> Self {
        PySink {
            py,
            sets_open: 0,
            by_value: false,
            refs: Some(refs),
            refs_made: 0,
            deferred: None,
            strs: None,
        }
    }

    /// Switch the by-value tags on or off (the unboxer does, around a `LABEL_BY_VALUE` box).
    pub fn set_by_value(&mut self, on: bool) {
        self.by_value = on;
    }

    /// The error kept while reading the last by-value value, if any.
    pub fn take_deferred(&mut self) -> Option<PyErr> {
        self.deferred.take()
    }

    pub fn py(&self) -> Python<'py> {
        self.py
    }
}

/// A container being built.
pub enum PyBuilder<'py> {
    /// A tuple filled in place, `next` being the slot the next member goes to.
    Tuple {
        tuple: Bound<'py, PyTuple>,
        next: ffi::Py_ssize_t,
        len: ffi::Py_ssize_t,
    },
    /// Frozenset members or slice parts, built once all are in.
    Items(Vec<Py<PyAny>>),
    /// A by-value list filled in place.
    List {
        list: Bound<'py, PyList>,
        next: ffi::Py_ssize_t,
        len: ffi::Py_ssize_t,
    },
    /// Members of a by-value container built once all are in; `refs_before` is the
    /// sink's reference count when it opened (a hashed container checks its keys if it grew).
    ByValue {
        items: Vec<Py<PyAny>>,
        refs_before: usize,
    },
}

type R = PyResult<Py<PyAny>>;

impl<'py> Sink for PySink<'_, 'py> {
    type Value = Py<PyAny>;
    type Builder = PyBuilder<'py>;
    type Error = PyErr;

    #[cold]
    #[inline(never)]
    fn wire_error(&mut self, e: WireError) -> PyErr {
        wire_err(e)
    }
    fn none(&mut self) -> R {
        Ok(self.py.None())
    }
    fn boolean(&mut self, v: bool) -> R {
        Ok(pyo3::types::PyBool::new(self.py, v)
            .to_owned()
            .into_any()
            .unbind())
    }
    fn ellipsis(&mut self) -> R {
        Ok(self.py.Ellipsis())
    }
    fn not_implemented(&mut self) -> R {
        Ok(self.py.NotImplemented())
    }
    #[inline]
    fn int(&mut self, v: i64) -> R {
        Ok(v.into_pyobject(self.py)?.into_any().unbind())
    }
    fn big_int(&mut self, text: &[u8]) -> R {
        big_int_from_text(self.py, text)
    }
    fn float(&mut self, v: f64) -> R {
        Ok(PyFloat::new(self.py, v).into_any().unbind())
    }
    fn complex(&mut self, re: f64, im: f64) -> R {
        Ok(PyComplex::from_doubles(self.py, re, im).into_any().unbind())
    }
    #[inline]
    fn bytes(&mut self, b: &[u8]) -> R {
        Ok(crate::io::bigbuf::new_bytes(self.py, b)?
            .into_any()
            .unbind())
    }
    #[inline]
    fn str(&mut self, text: Text<'_>) -> R {
        match text {
            Text::Ascii(raw) if self.by_value && raw.len() <= STR_CACHE_LEN => self
                .strs
                .get_or_insert_with(|| {
                    Box::new(StrCache {
                        slots: (0..STR_CACHE_SLOTS).map(|_| None).collect(),
                    })
                })
                .get_or_make(self.py, raw),
            _ => text_to_py(self.py, text),
        }
    }

    #[inline]
    fn by_value(&self) -> bool {
        self.by_value
    }

    #[inline]
    fn begin(&mut self, kind: Container, len: usize) -> PyResult<PyBuilder<'py>> {
        if kind == Container::List {
            let len = ffi::Py_ssize_t::try_from(len)
                .map_err(|_| PyTypeError::new_err("list too long"))?;
            // SAFETY: PyList_New returns a new list of `len` NULL slots (or NULL with an
            // error set), filled in order by `push` before anyone else sees it.
            let list = unsafe { Bound::from_owned_ptr_or_err(self.py, ffi::PyList_New(len))? };
            // SAFETY: it is a list, made above.
            let list = unsafe { list.cast_into_unchecked::<PyList>() };
            return Ok(PyBuilder::List { list, next: 0, len });
        }
        if self.by_value && kind != Container::Tuple && kind != Container::Slice {
            if kind == Container::FrozenSet {
                self.sets_open += 1;
            }
            return Ok(PyBuilder::ByValue {
                items: Vec::with_capacity(len),
                refs_before: self.refs_made,
            });
        }
        if kind != Container::Tuple {
            if kind == Container::FrozenSet {
                self.sets_open += 1;
            }
            return Ok(PyBuilder::Items(Vec::with_capacity(len)));
        }
        let len =
            ffi::Py_ssize_t::try_from(len).map_err(|_| PyTypeError::new_err("tuple too long"))?;
        // SAFETY: PyTuple_New returns a new tuple of `len` NULL slots (or NULL with an error
        // set); a tuple dropped half-filled releases only the slots that were set.
        let tuple = unsafe { Bound::from_owned_ptr_or_err(self.py, ffi::PyTuple_New(len))? };
        // A brine tuple holds only immutable brine values made before it, so it can never be
        // part of a reference cycle: the cycle collector has nothing to find in it. Left
        // tracked, every decoded tuple would be traversed by the young-generation collections
        // the decode itself triggers (CPython would untrack most of them later anyway).
        // SAFETY: a tuple just made by PyTuple_New is tracked and owned here. (The empty
        // tuple is a shared singleton that is never tracked: left alone.)
        if len > 0 {
            unsafe { ffi::PyObject_GC_UnTrack(tuple.as_ptr().cast()) };
        }
        // SAFETY: it is a tuple, made above.
        let tuple = unsafe { tuple.cast_into_unchecked::<PyTuple>() };
        Ok(PyBuilder::Tuple {
            tuple,
            next: 0,
            len,
        })
    }

    #[inline]
    fn push(&mut self, builder: &mut PyBuilder<'py>, item: Py<PyAny>) -> PyResult<()> {
        match builder {
            PyBuilder::Tuple { tuple, next, len } => {
                // The reader pushes exactly `len` members; a surplus would be an error, not
                // a write.
                if *next >= *len {
                    return Err(PyTypeError::new_err("tuple member beyond its length"));
                }
                // SAFETY: `next` < the length, the slot is empty and the tuple is not shared
                // yet; the reference to `item` is handed over.
                unsafe { ffi::PyTuple_SET_ITEM(tuple.as_ptr(), *next, item.into_ptr()) };
                *next += 1;
            }
            PyBuilder::List { list, next, len } => {
                if *next >= *len {
                    return Err(PyTypeError::new_err("list member beyond its length"));
                }
                // SAFETY: as for tuples: `next` < the length, the slot is empty, the list
                // is not shared yet, and the reference is handed over.
                unsafe { ffi::PyList_SET_ITEM(list.as_ptr(), *next, item.into_ptr()) };
                *next += 1;
            }
            PyBuilder::Items(items) | PyBuilder::ByValue { items, .. } => items.push(item),
        }
        Ok(())
    }

    #[inline]
    /// Let other threads have the GIL if they asked for it: a frame holding a million small
    /// values takes ~100 ms of CPython's time to build, which other connections' threads
    /// must not wait for in one piece. Releasing the GIL here would not do: a thread that
    /// waits for it asks for it only after the switch interval (5 ms) passed without any
    /// hand-over, and our own quick release and re-take count as one. Running a little
    /// Python code lets the interpreter honour the request as it does between bytecodes
    /// (and run signal handlers: Ctrl-C stops a long decode). Nothing half-built is visible
    /// to other threads: decoded tuples are untracked by the garbage collector and
    /// referenced only here.
    fn checkpoint(&mut self) -> PyResult<()> {
        static NOTHING: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        let nothing = NOTHING.get_or_try_init(self.py, || {
            self.py.eval(c"lambda: None", None, None).map(Bound::unbind)
        })?;
        nothing.call0(self.py).map(drop)
    }

    fn end(&mut self, builder: PyBuilder<'py>, kind: Container, offset: usize) -> R {
        match (builder, kind) {
            (PyBuilder::Tuple { tuple, .. }, _) => Ok(tuple.into_any().unbind()),
            (PyBuilder::Items(items), kind) => self.end_items(items, kind, offset),
            (PyBuilder::List { list, .. }, _) => Ok(list.into_any().unbind()),
            (PyBuilder::ByValue { items, refs_before }, kind) => {
                let keyed_refs = self.refs_made > refs_before;
                self.end_by_value(items, kind, offset, keyed_refs)
            }
        }
    }
}

impl PySink<'_, '_> {
    /// Finish a by-value container (docs/by-value.md). `saw_refs`: a reference was made
    /// inside it, so the members that get hashed are checked for one first (hashing a
    /// proxy would ask the peer, in the middle of reading its message).
    #[inline(never)]
    fn end_by_value(
        &mut self,
        items: Vec<Py<PyAny>>,
        kind: Container,
        offset: usize,
        saw_refs: bool,
    ) -> R {
        let py = self.py;
        let hashed = |step: usize| -> PyResult<()> {
            if saw_refs && items.iter().step_by(step).any(|k| holds_ref(k.bind(py))) {
                return Err(wire_err(WireError::BadSetMember {
                    why: "an object reference as a set member or dict key".to_owned(),
                    offset,
                }));
            }
            Ok(())
        };
        match kind {
            Container::FrozenSet => {
                self.sets_open -= 1;
                hashed(1)?;
                frozenset(py, items, offset)
            }
            Container::Set => {
                hashed(1)?;
                let frozen = frozenset(py, items, offset)?;
                Ok(PySet::new(
                    py,
                    frozen.bind(py).try_iter()?.collect::<PyResult<Vec<_>>>()?,
                )?
                .into_any()
                .unbind())
            }
            Container::Dict => {
                hashed(2)?;
                dict(py, items, offset)
            }
            Container::Array => self.array(items, offset),
            Container::LocalRef | Container::RemoteRef => {
                let Some(refs) = self.refs else {
                    return Err(wire_err(WireError::BadContainer {
                        what: kind.name(),
                        offset,
                    }));
                };
                let id = PyTuple::new(py, &items)?;
                let well_formed = items.len() == 3
                    && id
                        .get_item(0)?
                        .is_exact_instance_of::<pyo3::types::PyString>()
                    && id.get_item(1)?.is_exact_instance_of::<pyo3::types::PyInt>()
                    && id.get_item(2)?.is_exact_instance_of::<pyo3::types::PyInt>();
                if !well_formed {
                    return Err(wire_err(WireError::BadContainer {
                        what: kind.name(),
                        offset,
                    }));
                }
                self.refs_made += 1;
                refs.resolve(kind == Container::LocalRef, id)
            }
            _ => Err(wire_err(WireError::BadContainer {
                what: kind.name(),
                offset,
            })),
        }
    }

    /// An array from `(dtype, shape, strides, data)`, checked by `rpyc_wire`'s rules; one
    /// that fails them is kept as the value's error (the message was read in full).
    fn array(&mut self, items: Vec<Py<PyAny>>, offset: usize) -> R {
        let py = self.py;
        // (shape None: a numpy scalar, no dimensions; docs/by-value.md#wire-format)
        type Header = (String, Option<Vec<i64>>, Vec<i64>, usize);
        let header = || -> Option<Header> {
            let [dtype, shape, strides, data] = &items[..] else {
                return None;
            };
            let tuple_ints = |v: &Py<PyAny>| -> Option<Vec<i64>> {
                let t = v.bind(py).cast_exact::<PyTuple>().ok()?;
                t.iter().map(|i| i.extract::<i64>().ok()).collect()
            };
            let shape = if shape.is_none(py) {
                None
            } else {
                Some(tuple_ints(shape)?)
            };
            Some((
                dtype.bind(py).extract::<String>().ok()?,
                shape,
                tuple_ints(strides)?,
                data.bind(py)
                    .cast_exact::<pyo3::types::PyBytes>()
                    .ok()?
                    .as_bytes()
                    .len(),
            ))
        };
        let Some((dtype, shape, strides, nbytes)) = header() else {
            return Err(wire_err(WireError::BadContainer {
                what: "ARRAY",
                offset,
            }));
        };
        let dims = shape.as_deref().unwrap_or(&[]);
        let built = match brine::array::check(&dtype, dims, &strides, nbytes) {
            Ok(_) => byvalue_helper(py, "_load_array")
                .and_then(|f| f.call1((dtype, shape, strides, &items[3]))),
            Err(why) => byvalue_helper(py, "ByValueError")
                .and_then(|cls| cls.call1((why.0,)))
                .map(|exc| PyErr::from_value(exc))
                .and_then(Err),
        };
        match built {
            Ok(array) => Ok(array.unbind()),
            Err(e) => {
                if self.deferred.is_none() {
                    self.deferred = Some(e);
                }
                Ok(py.None())
            }
        }
    }

    /// Finish a frozenset or slice (out of line: tuples are the hot path).
    #[inline(never)]
    fn end_items(&mut self, items: Vec<Py<PyAny>>, kind: Container, offset: usize) -> R {
        if kind == Container::FrozenSet {
            self.sets_open -= 1;
            return frozenset(self.py, items, offset);
        }
        if self.sets_open > 0 {
            return Err(wire_err(slice_in_set(offset)));
        }
        match &items[..] {
            [start, stop, step] => new_slice(self.py, start, stop, step),
            _ => Err(wire_err(WireError::BadContainer {
                what: "SLICE",
                offset,
            })),
        }
    }
}

/// A slice inside a frozenset: unhashable before Python 3.12, and refused on every version
/// so that every decoder (`rpyc_wire`'s `Value` one too) agrees.
fn slice_in_set(offset: usize) -> WireError {
    WireError::BadSetMember {
        why: "a slice inside a frozenset (unhashable)".to_owned(),
        offset,
    }
}

/// A frozenset of `items`, refusing what upstream's encoder cannot produce: members equal
/// under Python's `==` (a frozenset never holds two) and unhashable members (a slice before
/// Python 3.12, or a tuple holding one). Refuses too a hash-flooding pattern (see
/// [`MAX_EQUAL_HASHES`]) before CPython spends quadratic time on it.
#[inline(never)]
fn frozenset(py: Python<'_>, items: Vec<Py<PyAny>>, offset: usize) -> R {
    check_hashes(py, items.iter(), offset)?;
    let set = PyFrozenSet::new(py, items.iter())?;
    if set.len() != items.len() {
        return Err(wire_err(WireError::NonCanonical {
            what: "FSET with duplicate members",
            offset,
        }));
    }
    Ok(set.into_any().unbind())
}

/// Refuse unhashable members and more than [`MAX_EQUAL_HASHES`] members of equal hash.
fn check_hashes<'a>(
    py: Python<'_>,
    items: impl Iterator<Item = &'a Py<PyAny>>,
    offset: usize,
) -> PyResult<()> {
    let mut hashes = Vec::with_capacity(items.size_hint().0);
    for item in items {
        match item.bind(py).hash() {
            Ok(h) => hashes.push(h),
            Err(e) if e.is_instance_of::<PyTypeError>(py) => {
                let name = item.bind(py).get_type().name().map(|n| n.to_string());
                return Err(wire_err(WireError::BadSetMember {
                    why: format!(
                        "a set or dict key is unhashable ({})",
                        name.as_deref().unwrap_or("?")
                    ),
                    offset,
                }));
            }
            Err(e) => return Err(e),
        }
    }
    hashes.sort_unstable();
    let most = hashes
        .chunk_by(|a, b| a == b)
        .map(<[isize]>::len)
        .max()
        .unwrap_or(0);
    if most > MAX_EQUAL_HASHES {
        return Err(wire_err(WireError::BadSetMember {
            why: format!(
                "a set or dict holds {most} members with the same hash: duplicate members, or a \
                 hash-flooding pattern (at most {MAX_EQUAL_HASHES} are accepted)"
            ),
            offset,
        }));
    }
    Ok(())
}

/// A str from validated text, built directly in its final width: CPython's generic
/// decoder grows a writer for non-ASCII text, which costs more than the whole copy here.
#[inline]
pub fn text_to_py(py: Python<'_>, text: Text<'_>) -> R {
    let made = match text {
        Text::Ascii(raw) => str_of_width(py, raw.len(), 127, |dst: *mut u8| {
            // SAFETY: `dst` has room for `raw.len()` one-byte characters.
            unsafe { std::ptr::copy_nonoverlapping(raw.as_ptr(), dst, raw.len()) }
        }),
        Text::Utf8(text) => non_ascii_str(py, text),
    };
    made.ok_or_else(|| PyErr::fetch(py))
}

#[inline(never)]
fn non_ascii_str(py: Python<'_>, text: &str) -> Option<Py<PyAny>> {
    let (count, max) = text
        .chars()
        .fold((0usize, 0u32), |(n, m), c| (n + 1, m.max(c as u32)));
    if max < 0x100 {
        str_of_width(py, count, max, |dst: *mut u8| fill(text, dst, |c| c as u8))
    } else if max < 0x10000 {
        str_of_width(py, count, max, |dst: *mut u16| {
            fill(text, dst, |c| c as u16)
        })
    } else {
        str_of_width(py, count, max, |dst: *mut u32| {
            fill(text, dst, |c| c as u32)
        })
    }
}

/// A new str of `count` characters, all at most `max`, whose storage (one code unit of type
/// `T` per character: the width CPython picks for `max`) `write` fills in full. `None`
/// with the Python error set when CPython cannot allocate it.
fn str_of_width<T>(
    py: Python<'_>,
    count: usize,
    max: u32,
    write: impl FnOnce(*mut T),
) -> Option<Py<PyAny>> {
    let len = ffi::Py_ssize_t::try_from(count).ok()?;
    // SAFETY: PyUnicode_New returns a new, uninitialised compact str of `len` characters whose
    // code units have the width `max` calls for (that of `T`, chosen by the caller), or NULL
    // with an error set. `write` fills every unit before the str is shared.
    unsafe {
        let ptr = ffi::PyUnicode_New(len, max);
        if ptr.is_null() {
            return None;
        }
        write(ffi::PyUnicode_DATA(ptr).cast::<T>());
        Some(Bound::from_owned_ptr(py, ptr).unbind())
    }
}

/// Write each character of `text` as one code unit at `dst` (which has room for them all).
fn fill<T>(text: &str, dst: *mut T, unit: impl Fn(char) -> T) {
    for (i, c) in text.chars().enumerate() {
        // SAFETY: `i` < the character count the caller allocated for.
        unsafe { dst.add(i).write(unit(c)) };
    }
}

/// An integer beyond i64 from its validated canonical text (at most 4300 digits). Up to
/// 38 digits it is built from its binary value (CPython's decimal parser costs ten times
/// more), read as two halves of at most 19 digits that each fit a u64.
#[inline(never)]
fn big_int_from_text(py: Python<'_>, text: &[u8]) -> R {
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    if digits.len() <= 38 {
        let split = digits.len().saturating_sub(19);
        let (high, low) = digits.split_at(split);
        // < 10^38 < 2^127: fits an i128 with either sign.
        let magnitude =
            u128::from(decimal_u64(high)) * 10u128.pow(19) + u128::from(decimal_u64(low));
        let value = magnitude as i128;
        let value = if negative { -value } else { value };
        return Ok(value.into_pyobject(py)?.into_any().unbind());
    }
    let mut cstr = Vec::with_capacity(text.len() + 1);
    cstr.extend_from_slice(text);
    cstr.push(0);
    // SAFETY: `cstr` is NUL-terminated and outlives the call; a NULL result sets an error.
    unsafe {
        let ptr = ffi::PyLong_FromString(cstr.as_ptr().cast(), std::ptr::null_mut(), 10);
        Bound::from_owned_ptr_or_err(py, ptr).map(Bound::unbind)
    }
}

/// The value of at most 19 validated ASCII digits (0 for none).
fn decimal_u64(digits: &[u8]) -> u64 {
    digits
        .iter()
        .fold(0u64, |acc, &d| acc * 10 + u64::from(d - b'0'))
}

fn new_slice(py: Python<'_>, a: &Py<PyAny>, b: &Py<PyAny>, c: &Py<PyAny>) -> R {
    // SAFETY: PySlice_New borrows its three arguments and returns a new reference or NULL.
    unsafe {
        let ptr = ffi::PySlice_New(a.as_ptr(), b.as_ptr(), c.as_ptr());
        Bound::from_owned_ptr_or_err(py, ptr).map(|b| b.unbind())
    }
}

/// An attribute of `rpyc.core.byvalue` (the array builder, the error class).
fn byvalue_helper<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    static MODULE: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
    MODULE
        .get_or_try_init(py, || py.import("rpyc.core.byvalue").map(Bound::unbind))?
        .bind(py)
        .getattr(name)
}

/// Whether `obj` is a proxy, or a tuple or frozenset holding one (what a by-value dict key
/// or set member must not be).
fn holds_ref(obj: &Bound<'_, PyAny>) -> bool {
    if let Ok(t) = obj.cast_exact::<PyTuple>() {
        return t.iter().any(|m| holds_ref(&m));
    }
    if let Ok(s) = obj.cast_exact::<PyFrozenSet>() {
        return s.iter().any(|m| holds_ref(&m));
    }
    let Some(base) = crate::engine::NETREF_BASE.get(obj.py()) else {
        return false;
    };
    obj.is_instance(base.bind(obj.py())).unwrap_or(true)
}

/// A dict from keys and values alternating, refusing what a dict cannot hold (unhashable
/// keys), duplicate keys (no encoder writes them) and hash-flooding key sets (see
/// [`MAX_EQUAL_HASHES`]).
fn dict(py: Python<'_>, items: Vec<Py<PyAny>>, offset: usize) -> R {
    if items.len() / 2 > MAX_EQUAL_HASHES {
        check_hashes(py, items.iter().step_by(2), offset)?;
    }
    let d = PyDict::new(py);
    let mut it = items.into_iter();
    let mut n = 0usize;
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        if let Err(e) = d.set_item(&k, v) {
            if e.is_instance_of::<PyTypeError>(py) {
                return Err(wire_err(WireError::BadSetMember {
                    why: "a dict key is unhashable".to_owned(),
                    offset,
                }));
            }
            return Err(e);
        }
        n += 1;
    }
    if d.len() != n {
        return Err(wire_err(WireError::NonCanonical {
            what: "DICT with duplicate keys",
            offset,
        }));
    }
    Ok(d.into_any().unbind())
}
