//! What every driver of the connection core shares (the blocking [`crate::Connection`] and
//! the tokio one): boxing values for the core and back, exporting our objects, serving the
//! peer's requests on [`Exposed`] objects, the rpyc-rs hello. No I/O here.

use crate::error::{Error, RemoteError, Result};
use crate::expose::{Args, BoundMethod, Exposed, Local};
use crate::netref::NetRef;
use crate::value::Value;
use rpyc_wire::brine::Value as Wire;
use rpyc_wire::conn::hello::{self, Announcement};
use rpyc_wire::conn::{Connection as CoreConnection, ObjKey, ObjectTable};
use rpyc_wire::consts::handler;
use rpyc_wire::message::{Boxed, IdPack};
use rpyc_wire::WireError;
use std::sync::Arc;

/// The connection core as the drivers of this crate use it: our objects are `Exposed`.
pub(crate) type Core = CoreConnection<Arc<dyn Exposed>>;

/// The rpyc-rs features this crate implements: `quiet_del` (releases are not answered) and
/// `root_class` (the root's class description comes with the hello's answer).
pub(crate) const OUR_FEATURES: [&str; 2] = [hello::QUIET_DEL, hello::ROOT_CLASS];
/// What a connecting side offers: it has no use for the peer's root description.
pub(crate) const CLIENT_FEATURES: [&str; 1] = [hello::QUIET_DEL];

/// A received box whose references to our own objects were looked up when its frame was
/// processed: a `HANDLE_DEL` later in the same read must not take them away first.
pub(crate) enum Resolved {
    Value(Wire),
    Tuple(Vec<Resolved>),
    Remote(IdPack),
    Local(IdPack, Option<Arc<dyn Exposed>>),
}

pub(crate) fn resolve(objects: &ObjectTable<Arc<dyn Exposed>>, b: Boxed) -> Resolved {
    match b {
        Boxed::Value(v) => Resolved::Value(v),
        Boxed::Tuple(items) => {
            Resolved::Tuple(items.into_iter().map(|i| resolve(objects, i)).collect())
        }
        Boxed::RemoteRef(id) => Resolved::Remote(id),
        Boxed::LocalRef(id) => {
            let obj = id_key(&id).and_then(|k| objects.get(k).cloned());
            Resolved::Local(id, obj)
        }
    }
}

/// Convert everything (every reference gets its proxy from `netref`, released when
/// dropped), keeping the first error.
pub(crate) fn from_resolved_into(
    r: Resolved,
    err: &mut Option<Error>,
    netref: &dyn Fn(IdPack) -> NetRef,
) -> Value {
    match r {
        Resolved::Value(v) => Value::from_wire(v),
        Resolved::Tuple(items) => Value::Tuple(
            items
                .into_iter()
                .map(|i| from_resolved_into(i, err, netref))
                .collect(),
        ),
        Resolved::Remote(id) => Value::Remote(netref(id)),
        Resolved::Local(_, Some(obj)) => Value::Local(Local::new(obj)),
        Resolved::Local(id, None) => {
            err.get_or_insert_with(|| key_error(&id));
            Value::None
        }
    }
}

/// A received box as a value.
pub(crate) fn from_resolved(r: Resolved, netref: &dyn Fn(IdPack) -> NetRef) -> Result<Value> {
    let mut err = None;
    let v = from_resolved_into(r, &mut err, netref);
    match err {
        Some(e) => Err(e),
        None => Ok(v),
    }
}

/// A value as a box: references of this connection (`ours`) go back as LOCAL_REF, our
/// objects are exported (recorded in `exported`, to take back if the message is not sent).
pub(crate) fn to_boxed(
    core: &mut Core,
    v: Value,
    exported: &mut Vec<ObjKey>,
    ours: &dyn Fn(&NetRef) -> bool,
) -> Result<Boxed> {
    Ok(match v {
        Value::Remote(r) => {
            if !ours(&r) {
                return Err(Error::Conversion(format!(
                    "a reference to a {} object of another connection cannot be sent (fetch \
                     its value first, or pass it on the connection it came from)",
                    r.type_name()
                )));
            }
            Boxed::LocalRef(r.id_pack().clone())
        }
        Value::Local(l) => export(core, &l, exported)?,
        Value::Tuple(items) => Boxed::tuple(
            items
                .into_iter()
                .map(|i| to_boxed(core, i, exported, ours))
                .collect::<Result<_>>()?,
        ),
        other => Boxed::Value(other.into_wire().map_err(|_| {
            Error::Conversion("a frozenset or slice can only hold values, not references".into())
        })?),
    })
}

/// Box `args` and queue the request (made while serving peer thread `thread`); on failure
/// the exports are taken back (objects to drop, once no lock is held, in `graveyard`).
pub(crate) fn queue_request(
    core: &mut Core,
    thread: u64,
    handler: i64,
    args: Vec<Value>,
    ours: &dyn Fn(&NetRef) -> bool,
    graveyard: &mut Vec<Arc<dyn Exposed>>,
) -> Result<u64> {
    let mut exported = Vec::new();
    let boxed: Result<Vec<Boxed>> = args
        .into_iter()
        .map(|a| to_boxed(core, a, &mut exported, ours))
        .collect();
    let sent = boxed.and_then(|boxed| {
        core.request_within(thread, handler, &boxed)
            .map_err(Error::from)
    });
    if sent.is_err() {
        take_back(core, &exported, graveyard);
    }
    sent
}

/// Queue the answer to the peer's request `seq` (of peer thread `thread`): the result, or
/// the exception (a result that cannot be sent becomes the exception saying why).
pub(crate) fn queue_answer(
    core: &mut Core,
    seq: &Wire,
    thread: u64,
    result: Result<Value>,
    ours: &dyn Fn(&NetRef) -> bool,
    graveyard: &mut Vec<Arc<dyn Exposed>>,
) {
    let failed = match result {
        Ok(v) => {
            let mut exported = Vec::new();
            let sent = to_boxed(core, v, &mut exported, ours)
                .and_then(|b| core.reply(seq, thread, &b).map_err(Error::from));
            match sent {
                Ok(()) => None,
                Err(e) => {
                    take_back(core, &exported, graveyard);
                    Some(exception_body(&e))
                }
            }
        }
        Err(e) => Some(exception_body(&e)),
    };
    if let Some(body) = failed {
        if let Err(e) = core.reply_exception(seq, thread, &body) {
            // The description itself cannot be sent: send why instead.
            let fallback = exception_body(&Error::Wire(e));
            let _ = core.reply_exception(seq, thread, &fallback);
        }
    }
}

/// Queue `HANDLE_DEL` for references to the peer's objects we dropped.
pub(crate) fn queue_releases(core: &mut Core, ids: impl IntoIterator<Item = IdPack>) {
    for id in ids {
        let _ = core.notify(
            handler::DEL,
            &[Boxed::LocalRef(id), Boxed::Value(Wire::Int(1))],
        );
    }
}

// -- the rpyc-rs hello (docs/protocol.md#rpyc-rs-extensions) --------------------------

/// The argument of the `HANDLE_PING` a connecting side sends to offer its features.
pub(crate) fn hello_offer() -> Value {
    Value::Tuple(vec![
        Value::str(hello::HELLO),
        Value::Int(hello::VERSION),
        Value::tuple(CLIENT_FEATURES.iter().copied()),
    ])
}

/// The features both sides use, from the answer to our hello (`None`: an upstream echo).
pub(crate) fn hello_ack_features(
    result: &std::result::Result<Boxed, WireError>,
) -> Option<Vec<&'static str>> {
    let Ok(Boxed::Value(answer)) = result else {
        return None;
    };
    let named = hello::features_of(answer, Announcement::Ack)?;
    Some(
        CLIENT_FEATURES
            .iter()
            .copied()
            .filter(|f| named.contains(f))
            .collect(),
    )
}

/// The answer to the peer's hello (`None`: `data` is no hello): the features both use (for
/// the session) and the answer, with our root's description when `root_class` is one.
pub(crate) fn hello_answer(
    service: &Arc<dyn Exposed>,
    data: &Value,
) -> Option<(Vec<&'static str>, Value)> {
    let named = hello::features_of(&data.to_wire()?, Announcement::Hello)?;
    let both: Vec<&'static str> = OUR_FEATURES
        .iter()
        .copied()
        .filter(|f| named.contains(f))
        .collect();
    let mut ack = vec![
        Value::str(hello::HELLO_ACK),
        Value::Int(hello::VERSION),
        Value::tuple(both.iter().copied()),
    ];
    if both.contains(&hello::ROOT_CLASS) {
        let root = Local::new(service.clone());
        let (class_id, instance_id) = root.key();
        ack.push(Value::Tuple(vec![
            Value::Tuple(vec![
                Value::Str(root.type_name()),
                Value::Int(class_id as i64),
                Value::Int(instance_id as i64),
            ]),
            Value::Tuple(
                service
                    .methods()
                    .into_iter()
                    .map(|m| Value::Tuple(vec![Value::str(m), Value::None]))
                    .collect(),
            ),
        ]));
    }
    Some((both, Value::Tuple(ack)))
}

// -- serving the peer's requests ---------------------------------------------------------

/// What serving a request needs of the driver.
pub(crate) trait Host {
    /// Our root.
    fn service(&self) -> &Arc<dyn Exposed>;
    /// One of our objects the peer holds, by its id_pack.
    fn local_object(&self, id: &IdPack) -> Option<Arc<dyn Exposed>>;
    /// Answer the peer's hello (`None`: not a hello, or extensions are off), recording the
    /// features both sides use.
    fn answer_hello(&self, data: &Value) -> Option<Value>;
}

/// Serve the peer's request `id` with these (converted) arguments.
pub(crate) fn dispatch(host: &dyn Host, id: i64, args: Result<Vec<Value>>) -> Result<Value> {
    let mut args = args?.into_iter();
    let mut next = || args.next().unwrap_or(Value::None);
    match id {
        handler::PING => {
            let data = next();
            Ok(host.answer_hello(&data).unwrap_or(data))
        }
        handler::GETROOT => Ok(Value::Local(Local::new(host.service().clone()))),
        handler::GETATTR => {
            let obj = target(next())?;
            let name = attr_name(next())?;
            getattr(&obj, &name)
        }
        handler::SETATTR => {
            let obj = target(next())?;
            let name = attr_name(next())?;
            obj.setattr(&name, next()).map(|()| Value::None)
        }
        handler::DELATTR => {
            let obj = target(next())?;
            let name = attr_name(next())?;
            Err(Error::attribute_error(format!(
                "cannot delete attribute '{name}' of '{}' object",
                obj.type_name()
            )))
        }
        handler::CALL => {
            let obj = target(next())?;
            let call = call_args(next(), next())?;
            obj.call(call)
        }
        handler::CALLATTR => {
            let obj = target(next())?;
            let name = attr_name(next())?;
            let call = call_args(next(), next())?;
            call_method(&obj, &name, call)
        }
        handler::REPR => Ok(Value::Str(target(next())?.repr())),
        handler::STR => Ok(Value::Str(target(next())?.str())),
        handler::HASH => {
            let obj = target(next())?;
            Ok(Value::Int(Local::new(obj).key().1 as i64))
        }
        handler::DIR => Ok(Value::tuple(target(next())?.methods())),
        handler::INSPECT => {
            let id = match next() {
                Value::Tuple(parts) => id_pack_of(parts),
                _ => None,
            }
            .ok_or_else(|| Error::type_error("INSPECT needs an id_pack"))?;
            let obj = host.local_object(&id).ok_or_else(|| key_error(&id))?;
            Ok(Value::Tuple(
                obj.methods()
                    .into_iter()
                    .map(|m| Value::Tuple(vec![Value::str(m), Value::None]))
                    .collect(),
            ))
        }
        handler::CMP => Ok(Value::NotImplemented),
        handler::INSTANCECHECK => Ok(Value::Bool(false)),
        handler::PICKLE => Err(Error::value_error("pickling is disabled")),
        handler::DEL => match next() {
            Value::Remote(r) => Err(key_error(r.id_pack())),
            _ => Err(Error::type_error(
                "DEL needs a reference to one of our objects",
            )),
        },
        handler::BUFFITER | handler::OLDSLICING | handler::CTXEXIT => Err(Error::type_error(
            "this operation is not supported by objects of an rpyc-rs Rust peer",
        )),
        other => Err(Error::Remote(RemoteError::new(
            "builtins",
            "KeyError",
            vec![Value::Int(other)],
        ))),
    }
}

/// The answer to a request whose handler is not an integer (upstream: `KeyError(handler)`).
pub(crate) fn unknown_handler(handler: Wire) -> Error {
    Error::Remote(RemoteError::new(
        "builtins",
        "KeyError",
        vec![Value::from_wire(handler)],
    ))
}

/// The arguments of a request as values (`Err`: why they could not be read or converted).
pub(crate) fn request_args(
    args: std::result::Result<Vec<Resolved>, WireError>,
    netref: &dyn Fn(IdPack) -> NetRef,
) -> Result<Vec<Value>> {
    let args = args.map_err(|e| Error::value_error(e.to_string()))?;
    let mut err = None;
    let args: Vec<Value> = args
        .into_iter()
        .map(|r| from_resolved_into(r, &mut err, netref))
        .collect();
    match err {
        Some(e) => Err(e),
        None => Ok(args),
    }
}

pub(crate) fn export(core: &mut Core, l: &Local, exported: &mut Vec<ObjKey>) -> Result<Boxed> {
    let key = l.key();
    core.export(key, || l.object().clone())?;
    exported.push(key);
    Ok(Boxed::RemoteRef(IdPack {
        name: l.type_name(),
        class_id: Wire::Int(key.0 as i64),
        instance_id: Wire::Int(key.1 as i64),
    }))
}

/// Take back the sends a message that was not sent had recorded.
pub(crate) fn take_back(
    core: &mut Core,
    exported: &[ObjKey],
    graveyard: &mut Vec<Arc<dyn Exposed>>,
) {
    for key in exported {
        if let Some(obj) = core.objects_mut().decref(*key, 1) {
            graveyard.push(obj);
        }
    }
}

pub(crate) fn collect_refs(b: &Boxed, out: &mut Vec<IdPack>) {
    match b {
        Boxed::RemoteRef(id) => out.push(id.clone()),
        Boxed::Tuple(items) => items.iter().for_each(|i| collect_refs(i, out)),
        Boxed::Value(_) | Boxed::LocalRef(_) => {}
    }
}

pub(crate) fn id_key(id: &IdPack) -> Option<ObjKey> {
    let c = u64::try_from(id.class_id.as_i64()?).ok()?;
    let i = u64::try_from(id.instance_id.as_i64()?).ok()?;
    Some((c, i))
}

pub(crate) fn id_pack_of(parts: Vec<Value>) -> Option<IdPack> {
    let mut it = parts.into_iter();
    match (it.next(), it.next(), it.next(), it.next()) {
        (Some(Value::Str(name)), Some(Value::Int(c)), Some(Value::Int(i)), None) => {
            Some(IdPack::new(name, c, i))
        }
        _ => None,
    }
}

pub(crate) fn key_error(id: &IdPack) -> Error {
    Error::Remote(RemoteError::new(
        "builtins",
        "KeyError",
        vec![Value::from_wire(id.to_value())],
    ))
}

/// The object a request is about: one of ours.
pub(crate) fn target(v: Value) -> Result<Arc<dyn Exposed>> {
    match v {
        Value::Local(l) => Ok(l.object().clone()),
        other => Err(Error::type_error(format!(
            "expected an object of this Rust peer, got {}",
            other.describe()
        ))),
    }
}

pub(crate) fn attr_name(v: Value) -> Result<String> {
    match v {
        Value::Str(s) => Ok(s),
        Value::Bytes(b) => {
            String::from_utf8(b).map_err(|_| Error::type_error("name must be a string"))
        }
        _ => Err(Error::type_error("name must be a string")),
    }
}

/// `args` (a tuple) and `kwargs` (`((name, value), ...)`) of CALL and CALLATTR.
pub(crate) fn call_args(args: Value, kwargs: Value) -> Result<Args> {
    let positional = match args {
        Value::Tuple(items) => items,
        Value::None => Vec::new(),
        other => {
            return Err(Error::type_error(format!(
                "call arguments must be a tuple, got {}",
                other.describe()
            )))
        }
    };
    let mut keywords = Vec::new();
    match kwargs {
        Value::None => {}
        Value::Tuple(pairs) => {
            for pair in pairs {
                match pair {
                    Value::Tuple(kv) if kv.len() == 2 => {
                        let mut kv = kv.into_iter();
                        let k = attr_name(kv.next().unwrap_or_default())?;
                        keywords.push((k, kv.next().unwrap_or_default()));
                    }
                    _ => {
                        return Err(Error::type_error(
                            "keyword arguments must be (name, value) pairs",
                        ))
                    }
                }
            }
        }
        _ => {
            return Err(Error::type_error(
                "keyword arguments must be (name, value) pairs",
            ))
        }
    }
    Ok(Args {
        positional,
        keywords,
    })
}

pub(crate) fn getattr(obj: &Arc<dyn Exposed>, name: &str) -> Result<Value> {
    if obj.methods().contains(&name) {
        return Ok(Value::Local(Local::new(Arc::new(BoundMethod {
            target: obj.clone(),
            name: name.to_owned(),
        }))));
    }
    match obj.getattr(name) {
        Err(_) if name == "__doc__" => Ok(Value::None),
        other => other,
    }
}

pub(crate) fn call_method(obj: &Arc<dyn Exposed>, name: &str, args: Args) -> Result<Value> {
    match name {
        "__call__" => return obj.call(args),
        "__repr__" => return Ok(Value::Str(obj.repr())),
        "__str__" => return Ok(Value::Str(obj.str())),
        _ => {}
    }
    if obj.methods().contains(&name) {
        return obj.call_method(name, args);
    }
    match obj.getattr(name)? {
        Value::Local(l) => l.object().call(args),
        other => Err(Error::type_error(format!(
            "'{}' object is not callable",
            other.type_name()
        ))),
    }
}

/// The EXCEPTION body for an error of ours.
pub(crate) fn exception_body(e: &Error) -> Wire {
    let remote = match e {
        Error::Remote(r) => r.clone(),
        Error::Conversion(why) => RemoteError::new("builtins", "TypeError", vec![Value::str(why)]),
        Error::Timeout(_) => {
            RemoteError::new("builtins", "TimeoutError", vec![Value::str(e.to_string())])
        }
        // (an io::Error a service method returned: Python's OSError)
        Error::Io(io) => RemoteError::new("builtins", "OSError", vec![Value::str(io.to_string())]),
        other => RemoteError::new(
            "builtins",
            "RuntimeError",
            vec![Value::str(other.to_string())],
        ),
    };
    remote.to_body()
}
