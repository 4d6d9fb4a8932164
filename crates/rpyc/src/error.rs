//! Errors: what went wrong on the peer ([`RemoteError`]) or here ([`Error`]).

use crate::value::Value;
use rpyc_wire::brine::Value as Wire;
use rpyc_wire::WireError;
use std::fmt;
use std::io;
use std::time::Duration;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a call can fail with.
#[derive(Debug)]
pub enum Error {
    /// The peer raised an exception while serving the request.
    Remote(RemoteError),
    /// No answer within `sync_request_timeout` (or the time given to
    /// [`crate::AsyncResult::wait_timeout`]): how long it waited. The request may still run
    /// on the peer; a late answer is dropped.
    Timeout(Duration),
    /// The connection is closed (by either side, or after an error: the text says why).
    Closed(String),
    /// The socket failed.
    Io(io::Error),
    /// The peer broke the protocol, or a limit was hit (the text names the config key).
    Wire(WireError),
    /// A value could not be converted to the type asked for, or cannot be sent.
    Conversion(String),
}

impl Error {
    /// An exception for the peer: Python's builtin exception `name` (`"ValueError"`,
    /// `"KeyError"`...) with one message argument. Return it from a service method.
    pub fn raise(name: &str, message: impl Into<String>) -> Error {
        Error::Remote(RemoteError::new(
            "builtins",
            name,
            vec![Value::Str(message.into())],
        ))
    }

    /// `ValueError(message)` for the peer.
    pub fn value_error(message: impl Into<String>) -> Error {
        Error::raise("ValueError", message)
    }

    /// `TypeError(message)` for the peer.
    pub fn type_error(message: impl Into<String>) -> Error {
        Error::raise("TypeError", message)
    }

    /// `AttributeError(message)` for the peer.
    pub fn attribute_error(message: impl Into<String>) -> Error {
        Error::raise("AttributeError", message)
    }

    /// The remote exception, when this is one.
    pub fn remote(&self) -> Option<&RemoteError> {
        match self {
            Error::Remote(e) => Some(e),
            _ => None,
        }
    }

    /// Whether the peer raised an exception of this class name (`"ValueError"`, or a
    /// qualified `"mymodule.MyError"`).
    pub fn is_remote(&self, name: &str) -> bool {
        self.remote().is_some_and(|e| e.is(name))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Remote(e) => write!(f, "{e}"),
            Error::Timeout(d) => write!(
                f,
                "no answer after {:.3}s (the peer is slow or stuck; raise \
                 Config::sync_request_timeout, or set it to None to wait forever)",
                d.as_secs_f64()
            ),
            Error::Closed(why) => write!(f, "connection closed: {why}"),
            Error::Io(e) => write!(f, "socket error: {e}"),
            Error::Wire(e) => write!(f, "{e}"),
            Error::Conversion(why) => write!(f, "{why}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            Error::Wire(e) => Some(e),
            Error::Remote(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Error {
        Error::Io(e)
    }
}

impl From<WireError> for Error {
    fn from(e: WireError) -> Error {
        match e {
            WireError::Closed(why) => Error::Closed(why),
            other => Error::Wire(other),
        }
    }
}

impl From<RemoteError> for Error {
    fn from(e: RemoteError) -> Error {
        Error::Remote(e)
    }
}

/// An exception raised by the peer, as it described it: its class, its arguments, its
/// public attributes and the text of its traceback.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteError {
    /// The module of the exception class (`"builtins"` for `ValueError`).
    pub module: String,
    /// The class name (`"ValueError"`).
    pub name: String,
    /// `exc.args`.
    pub args: Vec<Value>,
    /// The public attributes the peer sent (`("errno", 2)`...).
    pub attrs: Vec<(String, Value)>,
    /// The remote traceback, as text (empty if the peer did not send one).
    pub traceback: String,
}

impl RemoteError {
    /// An exception of class `module.name` with these arguments.
    pub fn new(module: &str, name: &str, args: Vec<Value>) -> RemoteError {
        RemoteError {
            module: module.to_owned(),
            name: name.to_owned(),
            args,
            attrs: Vec::new(),
            traceback: String::new(),
        }
    }

    /// `module.name`, or just `name` for builtins.
    pub fn qualified_name(&self) -> String {
        if self.module == "builtins" || self.module.is_empty() {
            self.name.clone()
        } else {
            format!("{}.{}", self.module, self.name)
        }
    }

    /// Whether the class is `name` (a plain name, or qualified by module).
    pub fn is(&self, name: &str) -> bool {
        self.name == name || self.qualified_name() == name
    }

    /// The first argument when it is a string (the usual message), else all arguments.
    pub fn message(&self) -> String {
        match self.args.as_slice() {
            [] => String::new(),
            [Value::Str(s)] => s.clone(),
            [one] => format!("{one:?}"),
            many => format!("{:?}", Value::Tuple(many.to_vec())),
        }
    }

    /// Read an EXCEPTION body (docs/protocol.md#the-exception-body).
    pub(crate) fn from_body(body: Wire) -> RemoteError {
        match body {
            Wire::Int(1) => RemoteError::new("builtins", "StopIteration", Vec::new()),
            Wire::Str(text) => RemoteError::new("builtins", "Exception", vec![Value::Str(text)]),
            Wire::Tuple(items) if items.len() == 4 => {
                let mut it = items.into_iter();
                let (cls, args, attrs, tb) = (it.next(), it.next(), it.next(), it.next());
                let (module, name) = match cls {
                    Some(Wire::Tuple(pair)) if pair.len() == 2 => {
                        let mut p = pair.into_iter();
                        match (p.next(), p.next()) {
                            (Some(Wire::Str(m)), Some(Wire::Str(n))) => (m, n),
                            _ => return RemoteError::malformed(),
                        }
                    }
                    _ => return RemoteError::malformed(),
                };
                let args = match args {
                    Some(Wire::Tuple(a)) => a.into_iter().map(Value::from_wire).collect(),
                    Some(other) => vec![Value::from_wire(other)],
                    None => Vec::new(),
                };
                let attrs = match attrs {
                    Some(Wire::Tuple(a)) => a
                        .into_iter()
                        .filter_map(|pair| match pair {
                            Wire::Tuple(kv) if kv.len() == 2 => {
                                let mut kv = kv.into_iter();
                                match (kv.next(), kv.next()) {
                                    (Some(Wire::Str(k)), Some(v)) => Some((k, Value::from_wire(v))),
                                    _ => None,
                                }
                            }
                            _ => None,
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                let traceback = match tb {
                    Some(Wire::Str(t)) => t,
                    _ => String::new(),
                };
                RemoteError {
                    module,
                    name,
                    args,
                    attrs,
                    traceback,
                }
            }
            _ => RemoteError::malformed(),
        }
    }

    fn malformed() -> RemoteError {
        RemoteError::new(
            "rpyc",
            "MalformedRemoteException",
            vec![Value::str(
                "the peer sent an exception description of an unknown shape",
            )],
        )
    }

    /// The EXCEPTION body describing this exception to a Python peer.
    pub(crate) fn to_body(&self) -> Wire {
        let args = self
            .args
            .iter()
            .map(|a| a.to_wire().unwrap_or_else(|| Wire::Str(format!("{a:?}"))))
            .collect();
        let mut attrs: Vec<Wire> = self
            .attrs
            .iter()
            .filter(|(k, _)| k != "_remote_version")
            .map(|(k, v)| {
                Wire::Tuple(vec![
                    Wire::str(k.as_str()),
                    v.to_wire().unwrap_or_else(|| Wire::Str(format!("{v:?}"))),
                ])
            })
            .collect();
        // A major version other than 6 makes Python peers append a warning to the traceback.
        attrs.push(Wire::Tuple(vec![
            Wire::str("_remote_version"),
            Wire::str("6.0.2"),
        ]));
        let traceback = if self.traceback.is_empty() {
            format!(
                "Traceback (rpyc-rs Rust peer):\n{}: {}\n",
                self.qualified_name(),
                self.message()
            )
        } else {
            self.traceback.clone()
        };
        Wire::Tuple(vec![
            Wire::Tuple(vec![
                Wire::str(self.module.as_str()),
                Wire::str(self.name.as_str()),
            ]),
            Wire::Tuple(args),
            Wire::Tuple(attrs),
            Wire::Str(traceback),
        ])
    }
}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "remote {}: {}", self.qualified_name(), self.message())?;
        if !self.traceback.is_empty() {
            write!(
                f,
                "\n\n========= Remote Traceback =========\n{}",
                self.traceback
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for RemoteError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_roundtrip_and_hostile_shapes_do_not_panic() {
        let e = RemoteError::new("builtins", "ValueError", vec![Value::str("bad")]);
        let back = RemoteError::from_body(e.to_body());
        assert_eq!(back.name, "ValueError");
        assert_eq!(back.message(), "bad");
        assert!(back.traceback.contains("ValueError: bad"));
        assert_eq!(back.attrs[0].0, "_remote_version");
        assert_eq!(RemoteError::from_body(Wire::Int(1)).name, "StopIteration");
        for hostile in [
            Wire::None,
            Wire::Tuple(vec![Wire::None; 4]),
            Wire::Tuple(vec![Wire::Tuple(vec![Wire::Int(1), Wire::Int(2)]); 4]),
        ] {
            assert_eq!(
                RemoteError::from_body(hostile).name,
                "MalformedRemoteException"
            );
        }
    }
}
