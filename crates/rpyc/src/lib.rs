//! RPyC (Remote Python Call) for Rust: call Python services from Rust, and serve Rust
//! objects to Python, over the RPyC 6 protocol (wire-compatible with `rpyc==6.0.2` and with
//! the `rpyc` package of this repository). No Python is needed on the Rust side.
//!
//! Client:
//!
//! ```no_run
//! let conn = rpyc::Connection::connect("127.0.0.1:18861")?;
//! let root = conn.root()?;
//! let sum: i64 = root.call_method("add", (5, 10))?;
//! let items: Vec<String> = root.call_method("list_names", ())?; // a remote list, fetched
//! # Ok::<(), rpyc::Error>(())
//! ```
//!
//! Server (Python clients do `rpyc.connect(host, port).root.add(5, 10)`):
//!
//! ```no_run
//! struct Calc;
//!
//! #[rpyc::service]
//! impl Calc {
//!     fn add(&self, x: i64, y: i64) -> i64 {
//!         x + y
//!     }
//! }
//!
//! rpyc::Server::bind("127.0.0.1:18861", Calc)?.serve_forever()?;
//! # Ok::<(), rpyc::Error>(())
//! ```
//!
//! - [`Connection`]: a connection (TCP or Unix socket), usable from many threads;
//!   [`NetRef`]: a remote object (getattr, setattr, call, call a method, items, iteration,
//!   `repr`/`str`), released when dropped;
//! - [`Value`]: arguments and results (every brine type, plus references), with `From` and
//!   [`FromValue`]/`TryFrom` conversions;
//! - [`Error`]: [`RemoteError`] carries the remote exception's class, arguments and
//!   traceback; timeouts (`sync_request_timeout`), closed connections and limits are
//!   their own variants;
//! - [`Exposed`] and [`macro@service`]: objects of ours the peer can use; [`callback`]
//!   makes a closure the peer can call; [`Server`] serves one to every client;
//! - [`classic`]: `module("os")`, `eval`, `execute` on a classic-mode server;
//! - [`AsyncResult`]: a request in flight (`call_async`), to `wait` on or `.await` from any
//!   executor;
//! - TLS (feature `tls`, default): `Connection::connect_tls`, `Server::bind_tls` (rustls).
//! - `rpyc::tokio` (feature `tokio`): connections driven by a tokio task, with async
//!   `NetRef` operations, and a tokio accept loop (`rpyc::tokio::Server`); over TCP, Unix
//!   sockets and TLS.
//!
//! The protocol state (frames, brine, boxing, sequence numbers, the object table, limits) is
//! the shared connection core of `rpyc_wire::conn`; this crate moves bytes and runs calls.
//! Everything a peer can make us hold is bounded by the same limits as the Python package
//! (see [`Config`]); malformed bytes from a peer end the connection with an error.
//!
//! A [`NetRef`] belongs to the connection it came from: passed as an argument (or returned)
//! on another connection it is refused before anything is sent, with
//! [`Error::Conversion`]: "a reference to a `<type>` object of another connection cannot be
//! sent (fetch its value first, or pass it on the connection it came from)". The peer of
//! the second connection could not reach the object anyway (upstream rpyc would send a
//! reference the other peer does not know): fetch the value (say [`NetRef::to_vec`], or the
//! call's result as a Rust type) and send that.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

extern crate self as rpyc;

pub mod classic;
mod config;
mod conn;
mod error;
mod executor;
mod expose;
mod netref;
mod server;
mod serving;
mod tls;
#[cfg(feature = "tokio")]
pub mod tokio;
mod transport;
mod value;

pub use config::Config;
pub use conn::{AsyncResult, Connection};
pub use error::{Error, RemoteError, Result};
#[doc(hidden)]
pub use executor::block_on;
pub use expose::{arg, callback, Args, Callback, Exposed, Local, MethodFuture};
pub use netref::{NetRef, RemoteIter};
pub use server::{Server, ServerHandle};
#[cfg(feature = "tls")]
pub use tls::{TlsClient, TlsServer};
pub use value::{Bytes, FromValue, IntoArgs, Value};

/// Implements [`Exposed`] for the type of an `impl` block: every method that takes `&self`
/// (and whose name does not start with `_`) can be called by the peer, with arguments
/// converted by [`FromValue`] (a wrong type is a `TypeError` for the caller) and keyword
/// arguments bound by parameter name. A method may return any `T: Into<Value>`, or
/// `Result<T, E>` with `E: Into<rpyc::Error>` (return [`Error::value_error`] and friends
/// to raise a Python exception on the caller's side).
///
/// `#[rpyc::service(name = "calc.Calc")]` sets the class name the peer sees (default: the
/// type's name).
///
/// A method may be an `async fn` (its future must be `Send`): the tokio server awaits it as
/// a task, holding no thread while it waits; the threaded server, and any synchronous
/// caller of [`Exposed::call_method`], runs it to completion on the calling thread (with
/// the `tokio` feature inside a tokio runtime, so tokio timers and sockets work there).
pub use rpyc_macros::service;

/// The protocol core this crate drives (limits, consts, the brine codec).
pub use rpyc_wire as wire;
