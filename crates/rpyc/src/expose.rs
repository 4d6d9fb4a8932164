//! Objects of ours that a peer holds by reference: services, callbacks, anything a method
//! returns as [`Value::Local`].

use crate::error::{Error, Result};
use crate::value::{FromValue, Value};
use std::fmt;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::pin::Pin;
use std::sync::Arc;

/// The future of an `async fn` service method ([`Exposed::call_method_async`]).
pub type MethodFuture = Pin<Box<dyn Future<Output = Result<Value>> + Send + 'static>>;

/// The arguments of a call from the peer: positional, then keyword.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Args {
    /// Positional arguments, in order.
    pub positional: Vec<Value>,
    /// Keyword arguments, in the order the peer sent them.
    pub keywords: Vec<(String, Value)>,
}

impl Args {
    /// Positional arguments only.
    pub fn new(positional: Vec<Value>) -> Args {
        Args {
            positional,
            keywords: Vec::new(),
        }
    }

    /// Exactly the parameters `names` of `function`, each given once by position or by
    /// keyword; in order of `names`. Too many, too few, unknown or repeated names are a
    /// `TypeError` for the peer, worded as Python words it.
    pub fn bind(self, function: &str, names: &[&str]) -> Result<Vec<Value>> {
        let n = names.len();
        // The usual call (every argument by position): nothing to place, no allocation.
        if self.keywords.is_empty() && self.positional.len() == n {
            return Ok(self.positional);
        }
        if self.positional.len() > n {
            return Err(Error::type_error(format!(
                "{function}() takes {n} positional argument{} but {} were given",
                if n == 1 { "" } else { "s" },
                self.positional.len()
            )));
        }
        let mut slots: Vec<Option<Value>> = self.positional.into_iter().map(Some).collect();
        slots.resize(n, None);
        for (key, value) in self.keywords {
            let Some(i) = names.iter().position(|n| *n == key) else {
                return Err(Error::type_error(format!(
                    "{function}() got an unexpected keyword argument '{key}'"
                )));
            };
            if slots[i].is_some() {
                return Err(Error::type_error(format!(
                    "{function}() got multiple values for argument '{key}'"
                )));
            }
            slots[i] = Some(value);
        }
        let missing: Vec<&str> = names
            .iter()
            .zip(&slots)
            .filter(|(_, s)| s.is_none())
            .map(|(n, _)| *n)
            .collect();
        if !missing.is_empty() {
            return Err(Error::type_error(format!(
                "{function}() missing {} required argument{}: '{}'",
                missing.len(),
                if missing.len() == 1 { "" } else { "s" },
                missing.join("', '")
            )));
        }
        Ok(slots.into_iter().map(Option::unwrap_or_default).collect())
    }
}

/// Convert argument `name` of `function` (used by `#[rpyc::service]`): a value of the wrong
/// type is a `TypeError` for the peer that names the parameter.
pub fn arg<T: FromValue>(function: &str, name: &str, v: Value) -> Result<T> {
    T::from_value(v).map_err(|e| match e {
        Error::Conversion(why) => {
            Error::type_error(format!("{function}() argument '{name}': {why}"))
        }
        other => other,
    })
}

/// An object the peer can hold by reference and use: read attributes, call methods, call
/// it. Every method has a default that refuses (as Python would: `AttributeError`,
/// `TypeError`), so an implementation only writes what it offers.
///
/// `#[rpyc::service]` on an `impl` block writes this for you: each method taking `&self`
/// (and whose name does not start with `_`) can be called by the peer.
///
/// Methods run on the thread that serves the connection; they may call the peer back
/// (arguments that are [`Value::Remote`]).
pub trait Exposed: Send + Sync + 'static {
    /// The class name the peer sees (`module.Class`), e.g. `"calc.Calc"`.
    fn type_name(&self) -> String {
        "rpyc_rs.Object".to_owned()
    }

    /// The names of the methods [`Exposed::call_method`] serves (listed to the peer by
    /// `dir()` and its proxy classes).
    fn methods(&self) -> Vec<&'static str> {
        Vec::new()
    }

    /// Call method `name` (`obj.name(*args, **kwargs)` on the peer).
    fn call_method(&self, name: &str, args: Args) -> Result<Value> {
        let _ = args;
        Err(Error::attribute_error(format!(
            "'{}' object has no attribute '{name}'",
            self.type_name()
        )))
    }

    /// Read attribute `name` (not a method: those are served by [`Exposed::call_method`]).
    fn getattr(&self, name: &str) -> Result<Value> {
        Err(Error::attribute_error(format!(
            "'{}' object has no attribute '{name}'",
            self.type_name()
        )))
    }

    /// Set attribute `name`.
    fn setattr(&self, name: &str, value: Value) -> Result<()> {
        let _ = value;
        Err(Error::attribute_error(format!(
            "cannot set attribute '{name}' of '{}' object",
            self.type_name()
        )))
    }

    /// Call the object itself.
    fn call(&self, args: Args) -> Result<Value> {
        let _ = args;
        Err(Error::type_error(format!(
            "'{}' object is not callable",
            self.type_name()
        )))
    }

    /// `repr(obj)` on the peer.
    fn repr(&self) -> String {
        format!("<{} object (Rust)>", self.type_name())
    }

    /// `str(obj)` on the peer.
    fn str(&self) -> String {
        self.repr()
    }

    /// Whether method `name` is an `async fn` (`"__call__"`: calling the object itself).
    /// The tokio server awaits those ([`Exposed::call_method_async`]) on the runtime
    /// instead of running them on its blocking pool; `#[rpyc::service]` writes both.
    fn async_method(&self, name: &str) -> bool {
        let _ = name;
        false
    }

    /// Method `name` as a future, for a method [`Exposed::async_method`] names. The
    /// default runs [`Exposed::call_method`] (or [`Exposed::call`] for `"__call__"`) when
    /// polled.
    fn call_method_async(self: Arc<Self>, name: String, args: Args) -> MethodFuture {
        Box::pin(async move {
            match name.as_str() {
                "__call__" => self.call(args),
                _ => self.call_method(&name, args),
            }
        })
    }
}

/// An object of ours that travels by reference (see [`Value::Local`]).
#[derive(Clone)]
pub struct Local(pub(crate) Arc<dyn Exposed>);

impl Local {
    /// Wrap a shared object.
    pub fn new(obj: Arc<dyn Exposed>) -> Local {
        Local(obj)
    }

    /// The object.
    pub fn object(&self) -> &Arc<dyn Exposed> {
        &self.0
    }

    /// The class name the peer sees.
    pub fn type_name(&self) -> String {
        self.0.type_name()
    }

    /// Whether both are the same object.
    pub fn same_object(&self, other: &Local) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// `(class_id, instance_id)` of the id_pack the peer gets: a hash of the class name,
    /// and the object's address (unique while the object table keeps it alive; never 0,
    /// which would mean "a class").
    pub(crate) fn key(&self) -> (u64, u64) {
        let mut h = rustc_hash::FxHasher::default();
        self.0.type_name().hash(&mut h);
        let class_id = (h.finish() >> 2) | 1;
        let instance_id = Arc::as_ptr(&self.0) as *const () as usize as u64;
        (class_id, instance_id.max(1) & (u64::MAX >> 1))
    }
}

impl fmt::Debug for Local {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<local {}>", self.0.type_name())
    }
}

/// `obj.method` read by the peer: calling it calls the method.
pub(crate) struct BoundMethod {
    pub(crate) target: Arc<dyn Exposed>,
    pub(crate) name: String,
}

impl Exposed for BoundMethod {
    fn type_name(&self) -> String {
        // A prebuilt proxy class on Python peers: no INSPECT round trip.
        "builtins.method".to_owned()
    }
    fn call(&self, args: Args) -> Result<Value> {
        self.target.call_method(&self.name, args)
    }
    fn async_method(&self, name: &str) -> bool {
        name == "__call__" && self.target.async_method(&self.name)
    }
    fn call_method_async(self: Arc<Self>, _: String, args: Args) -> MethodFuture {
        self.target
            .clone()
            .call_method_async(self.name.clone(), args)
    }
    fn repr(&self) -> String {
        format!(
            "<bound method {}.{} (Rust)>",
            self.target.type_name(),
            self.name
        )
    }
}

/// A Rust closure the peer can call (see [`callback`]).
pub struct Callback<F> {
    f: F,
}

impl<F> Exposed for Callback<F>
where
    F: Fn(Args) -> Result<Value> + Send + Sync + 'static,
{
    fn type_name(&self) -> String {
        "builtins.function".to_owned()
    }
    fn call(&self, args: Args) -> Result<Value> {
        (self.f)(args)
    }
    fn repr(&self) -> String {
        "<function (Rust closure)>".to_owned()
    }
}

/// A Rust closure as a value the peer can call: pass it as an argument, and the Python
/// side gets a function proxy; calling it runs the closure here (on the thread that serves
/// the connection, usually the one waiting for the call that passed it).
///
/// ```
/// let double = rpyc::callback(|args| {
///     let x: i64 = rpyc::arg("double", "x", args.positional.into_iter().next().unwrap_or_default())?;
///     Ok(rpyc::Value::from(x * 2))
/// });
/// # let _ = double;
/// ```
pub fn callback<F>(f: F) -> Value
where
    F: Fn(Args) -> Result<Value> + Send + Sync + 'static,
{
    Value::Local(Local::new(Arc::new(Callback { f })))
}

/// The root of a connection that exposes nothing.
pub(crate) struct Void;

impl Exposed for Void {
    fn type_name(&self) -> String {
        "rpyc.core.service.VoidService".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binding_arguments_like_python() {
        let a = Args {
            positional: vec![Value::Int(1)],
            keywords: vec![("y".into(), Value::Int(2))],
        };
        assert_eq!(
            a.bind("add", &["x", "y"]).ok(),
            Some(vec![Value::Int(1), Value::Int(2)])
        );
        let msg = |r: Result<Vec<Value>>| match r {
            Err(e) => e.to_string(),
            Ok(_) => String::new(),
        };
        assert!(msg(Args::new(vec![Value::Int(1)]).bind("add", &["x", "y"]))
            .contains("add() missing 1 required argument: 'y'"));
        assert!(
            msg(Args::new(vec![Value::Int(1); 3]).bind("add", &["x", "y"]))
                .contains("takes 2 positional arguments but 3 were given")
        );
        let dup = Args {
            positional: vec![Value::Int(1)],
            keywords: vec![("x".into(), Value::Int(2))],
        };
        assert!(msg(dup.bind("add", &["x", "y"])).contains("multiple values for argument 'x'"));
    }
}
