//! [`NetRef`]: a handle on an object of the peer.

use crate::conn::{AsyncResult, Shared, ITER_CHUNK};
use crate::error::{Error, Result};
use crate::value::{mismatch, FromValue, IntoArgs, Value};
use rpyc_wire::consts::handler;
use rpyc_wire::message::IdPack;
use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

/// A reference to an object of the peer (a list, a dict, a module, a function, a service).
/// Every operation is a request to the peer, which applies its own access policy (an
/// upstream server only lets you reach `exposed_` names and safe dunders by default).
///
/// Cloning is cheap (the same handle). When the last clone is dropped the peer is told to
/// release the object (`HANDLE_DEL`, sent with the next frame).
#[derive(Clone)]
pub struct NetRef(Arc<RefInner>);

struct RefInner {
    conn: Link,
    id: IdPack,
}

/// The driver of the connection a reference belongs to.
#[derive(Clone)]
pub(crate) enum Link {
    /// The blocking [`crate::Connection`].
    Blocking(Arc<Shared>),
    /// A [`crate::tokio::Connection`].
    #[cfg(feature = "tokio")]
    Tokio(Arc<crate::tokio::Shared>),
}

impl Link {
    /// A synchronous request (on a tokio connection: blocks this thread, see
    /// [`crate::tokio`]).
    pub(crate) fn call(&self, h: i64, args: Vec<Value>) -> Result<Value> {
        match self {
            Link::Blocking(s) => s.call(h, args),
            #[cfg(feature = "tokio")]
            Link::Tokio(s) => s.call_blocking(h, args),
        }
    }

    fn call_async(&self, h: i64, args: Vec<Value>) -> Result<AsyncResult> {
        match self {
            Link::Blocking(s) => s.call_async(h, args),
            #[cfg(feature = "tokio")]
            Link::Tokio(_) => Err(Error::Conversion(
                "call_async is for references of a blocking rpyc::Connection: with \
                 rpyc::tokio, await the methods of rpyc::tokio::NetRef"
                    .into(),
            )),
        }
    }

    fn release(&self, id: IdPack) {
        match self {
            Link::Blocking(s) => s.release(id),
            #[cfg(feature = "tokio")]
            Link::Tokio(s) => s.release(id),
        }
    }

    fn sync_request_timeout(&self) -> Option<std::time::Duration> {
        match self {
            Link::Blocking(s) => s.config().sync_request_timeout,
            #[cfg(feature = "tokio")]
            Link::Tokio(s) => s.config().sync_request_timeout,
        }
    }

    fn same(&self, other: &Link) -> bool {
        match (self, other) {
            (Link::Blocking(a), Link::Blocking(b)) => Arc::ptr_eq(a, b),
            #[cfg(feature = "tokio")]
            (Link::Tokio(a), Link::Tokio(b)) => Arc::ptr_eq(a, b),
            #[cfg(feature = "tokio")]
            _ => false,
        }
    }
}

impl Drop for RefInner {
    fn drop(&mut self) {
        let id = std::mem::replace(&mut self.id, IdPack::new("", 0, 0));
        self.conn.release(id);
    }
}

impl NetRef {
    pub(crate) fn new(conn: Link, id: IdPack) -> NetRef {
        NetRef(Arc::new(RefInner { conn, id }))
    }

    pub(crate) fn link(&self) -> &Link {
        &self.0.conn
    }

    /// The id_pack the peer gave: `(class name, class id, instance id)`.
    pub fn id_pack(&self) -> &IdPack {
        &self.0.id
    }

    /// The remote class name (`"builtins.list"`, `"__main__.MyService"`).
    pub fn type_name(&self) -> &str {
        &self.0.id.name
    }

    /// Whether both handles name the same remote object.
    pub fn same_object(&self, other: &NetRef) -> bool {
        self.0.conn.same(&other.0.conn) && self.0.id == other.0.id
    }

    fn me(&self) -> Value {
        Value::Remote(self.clone())
    }

    fn request<R: FromValue>(&self, h: i64, args: Vec<Value>) -> Result<R> {
        R::from_value(self.0.conn.call(h, args)?)
    }

    /// `obj.name` (`HANDLE_GETATTR`).
    pub fn getattr<R: FromValue>(&self, name: &str) -> Result<R> {
        self.request(handler::GETATTR, vec![self.me(), Value::str(name)])
    }

    /// `obj.name = value` (`HANDLE_SETATTR`; the peer must allow it: `allow_setattr`).
    pub fn setattr(&self, name: &str, value: impl Into<Value>) -> Result<()> {
        self.request::<Value>(
            handler::SETATTR,
            vec![self.me(), Value::str(name), value.into()],
        )
        .map(drop)
    }

    /// `del obj.name` (`HANDLE_DELATTR`; the peer must allow it: `allow_delattr`).
    pub fn delattr(&self, name: &str) -> Result<()> {
        self.request::<Value>(handler::DELATTR, vec![self.me(), Value::str(name)])
            .map(drop)
    }

    /// `obj(*args)` (`HANDLE_CALL`).
    pub fn call<R: FromValue>(&self, args: impl IntoArgs) -> Result<R> {
        self.call_kw(args, Vec::<(String, Value)>::new())
    }

    /// `obj(*args, **kwargs)`.
    pub fn call_kw<R, K, V>(
        &self,
        args: impl IntoArgs,
        kwargs: impl IntoIterator<Item = (K, V)>,
    ) -> Result<R>
    where
        R: FromValue,
        K: Into<String>,
        V: Into<Value>,
    {
        self.request(
            handler::CALL,
            vec![
                self.me(),
                Value::Tuple(args.into_args()),
                kwargs_value(kwargs),
            ],
        )
    }

    /// `obj.name(*args)` in one round trip (`HANDLE_CALLATTR`).
    pub fn call_method<R: FromValue>(&self, name: &str, args: impl IntoArgs) -> Result<R> {
        self.call_method_kw(name, args, Vec::<(String, Value)>::new())
    }

    /// `obj.name(*args, **kwargs)`.
    pub fn call_method_kw<R, K, V>(
        &self,
        name: &str,
        args: impl IntoArgs,
        kwargs: impl IntoIterator<Item = (K, V)>,
    ) -> Result<R>
    where
        R: FromValue,
        K: Into<String>,
        V: Into<Value>,
    {
        self.request(
            handler::CALLATTR,
            vec![
                self.me(),
                Value::str(name),
                Value::Tuple(args.into_args()),
                kwargs_value(kwargs),
            ],
        )
    }

    /// `obj(*args)` without waiting: the answer is taken with [`AsyncResult::wait`], so
    /// several calls can be in flight at once (`rpyc.async_` in Python).
    pub fn call_async(&self, args: impl IntoArgs) -> Result<AsyncResult> {
        self.0.conn.call_async(
            handler::CALL,
            vec![
                self.me(),
                Value::Tuple(args.into_args()),
                Value::Tuple(Vec::new()),
            ],
        )
    }

    /// `obj.name(*args)` without waiting (see [`NetRef::call_async`]).
    pub fn call_method_async(&self, name: &str, args: impl IntoArgs) -> Result<AsyncResult> {
        self.0.conn.call_async(
            handler::CALLATTR,
            vec![
                self.me(),
                Value::str(name),
                Value::Tuple(args.into_args()),
                Value::Tuple(Vec::new()),
            ],
        )
    }

    /// `repr(obj)`.
    pub fn repr(&self) -> Result<String> {
        self.request(handler::REPR, vec![self.me()])
    }

    /// `str(obj)`.
    pub fn str(&self) -> Result<String> {
        self.request(handler::STR, vec![self.me()])
    }

    /// `dir(obj)`.
    pub fn dir(&self) -> Result<Vec<String>> {
        self.request(handler::DIR, vec![self.me()])
    }

    /// `len(obj)`.
    pub fn len(&self) -> Result<usize> {
        self.call_method("__len__", ())
    }

    /// `len(obj) == 0`.
    pub fn is_empty(&self) -> Result<bool> {
        self.len().map(|n| n == 0)
    }

    /// `obj[key]`.
    pub fn getitem<R: FromValue>(&self, key: impl Into<Value>) -> Result<R> {
        self.call_method("__getitem__", (key.into(),))
    }

    /// `obj[key] = value`.
    pub fn setitem(&self, key: impl Into<Value>, value: impl Into<Value>) -> Result<()> {
        self.call_method::<Value>("__setitem__", (key.into(), value.into()))
            .map(drop)
    }

    /// `item in obj`.
    pub fn contains(&self, item: impl Into<Value>) -> Result<bool> {
        self.call_method("__contains__", (item.into(),))
    }

    /// `iter(obj)`: the items, fetched in batches of 128 (`HANDLE_BUFFITER` over the remote
    /// iterator; a generator therefore runs up to 128 items ahead of what you took).
    pub fn iter(&self) -> Result<RemoteIter> {
        let it: Value = self.call_method("__iter__", ())?;
        match it {
            Value::Remote(it) => Ok(RemoteIter {
                it,
                buffer: VecDeque::new(),
                done: false,
            }),
            other => Err(mismatch("an iterator from __iter__", &other)),
        }
    }

    /// The `(key, value)` pairs of a mapping: `obj.items()` if the peer lets us call it,
    /// else its keys and `obj[key]` for each.
    pub fn items(&self) -> Result<Vec<(Value, Value)>> {
        match self.call_method::<Value>("items", ()) {
            Ok(Value::Remote(view)) => view.iter()?.map(|kv| kv.and_then(pair)).collect(),
            Ok(Value::Tuple(kvs)) => kvs.into_iter().map(pair).collect(),
            Ok(other) => Err(mismatch("an items view", &other)),
            Err(e) if e.is_remote("AttributeError") => {
                let mut out = Vec::new();
                for key in self.iter()? {
                    let key = key?;
                    let value = self.getitem(key.clone())?;
                    out.push((key, value));
                }
                Ok(out)
            }
            Err(e) => Err(e),
        }
    }

    /// Fetch the items of a remote iterable into a `Vec` of `T`.
    pub fn to_vec<T: FromValue>(&self) -> Result<Vec<T>> {
        self.iter()?
            .map(|item| item.and_then(T::from_value))
            .collect()
    }

    /// How long a call on this reference may wait for its answer.
    pub fn sync_request_timeout(&self) -> Option<std::time::Duration> {
        self.0.conn.sync_request_timeout()
    }
}

pub(crate) fn pair(v: Value) -> Result<(Value, Value)> {
    match v {
        Value::Tuple(kv) if kv.len() == 2 => {
            let mut kv = kv.into_iter();
            Ok((kv.next().unwrap_or_default(), kv.next().unwrap_or_default()))
        }
        other => Err(mismatch("a (key, value) pair", &other)),
    }
}

pub(crate) fn kwargs_value<K: Into<String>, V: Into<Value>>(
    kwargs: impl IntoIterator<Item = (K, V)>,
) -> Value {
    Value::Tuple(
        kwargs
            .into_iter()
            .map(|(k, v)| Value::Tuple(vec![Value::Str(k.into()), v.into()]))
            .collect(),
    )
}

impl fmt::Debug for NetRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<netref {}>", self.0.id.name)
    }
}

/// The items of a remote iterable (see [`NetRef::iter`]).
pub struct RemoteIter {
    it: NetRef,
    buffer: VecDeque<Value>,
    done: bool,
}

impl Iterator for RemoteIter {
    type Item = Result<Value>;

    fn next(&mut self) -> Option<Result<Value>> {
        if let Some(v) = self.buffer.pop_front() {
            return Some(Ok(v));
        }
        if self.done {
            return None;
        }
        let batch: Result<Value> = self.it.request(
            handler::BUFFITER,
            vec![Value::Remote(self.it.clone()), Value::Int(ITER_CHUNK)],
        );
        match batch {
            Ok(Value::Tuple(items)) if !items.is_empty() => {
                self.buffer.extend(items);
                self.buffer.pop_front().map(Ok)
            }
            Ok(Value::Tuple(_)) => {
                self.done = true;
                None
            }
            Ok(other) => {
                self.done = true;
                Some(Err(Error::Conversion(format!(
                    "the peer answered an iteration request with {}",
                    other.describe()
                ))))
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}
