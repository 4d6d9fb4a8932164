//! A tokio driver of the connection core (feature `tokio`): connections whose socket is
//! read by the runtime's reactor, and an accept loop ([`Server`]) serving each connection
//! as a task.
//!
//! ```no_run
//! # async fn run() -> rpyc::Result<()> {
//! let conn = rpyc::tokio::Connection::connect("127.0.0.1:18861").await?;
//! let root = conn.root().await?;
//! let sum: i64 = root.call_method("add", (5, 10)).await?;
//! # Ok(())
//! # }
//! ```
//!
//! One task per connection owns the socket: it feeds what it reads to the connection core,
//! writes what the core queues, and files answers. Requests from any task reach it through a
//! channel and their answers come back on a oneshot channel, so many tasks may have calls in
//! flight on one connection.
//!
//! [`crate::Exposed`] methods are synchronous, and one may call the peer back through a
//! [`crate::NetRef`] of this connection with its blocking methods, so a request made by the
//! peer (a call of a service method, a callback) never runs where it could block the
//! driver. On a multi-thread runtime the driver's thread serves it itself, inside
//! `block_in_place` (which hands the worker's other tasks to another thread): no handoff to
//! another thread and back. Meanwhile the driver is parked, and started again as a task of
//! its own as soon as something needs it: a callback of that request, a request of another
//! task on this connection, or a watchdog thread once the call has run a millisecond or two
//! (then the peer's next requests are read and served concurrently). On a current-thread
//! runtime, where `block_in_place` is not allowed, each request runs on the blocking pool
//! (`spawn_blocking`) and its answer comes back to the driver through a channel. A call of
//! an `async fn` method ([`crate::Exposed::async_method`], written by `#[rpyc::service]`)
//! is awaited as a task on either flavour, holding no thread while it waits; it calls the
//! peer back by awaiting a [`NetRef`]. Awaiting a [`NetRef`] never blocks a
//! thread, so the peer's callbacks run while a task awaits, on any runtime flavour. The
//! blocking methods of a [`crate::NetRef`] of a tokio connection also work from any thread
//! outside the runtime; on a runtime's worker they block the worker.
//!
//! `sync_request_timeout` bounds every awaited request (`tokio::time::timeout`); a late
//! answer is dropped and the references it holds released. Dropping the last handle on a
//! remote object sends `HANDLE_DEL` through the driver (batched with what it sends next).
//! Bytes that break the protocol end the connection with an error for every waiter.
//!
//! TLS (feature `tls`): [`Connection::connect_tls`] and [`Server::bind_tls`] take the
//! blocking driver's [`crate::TlsClient`] and [`crate::TlsServer`] and check certificates
//! the same way. The handshake is awaited on the socket; after it the driver encrypts each
//! frame as its own record and, while answers are awaited from a silent peer, asks it for a
//! key update (1 ms, doubling up to 1 s), as the blocking driver does for OpenSSL peers.

mod iter;
mod server;
#[cfg(feature = "tls")]
mod tls;
mod watchdog;

pub use iter::Iter;
pub use server::{Server, ServerHandle};

use crate::config::Config;
use crate::conn::{budget, current_peer_thread, serving_thread, BUDGET_RETRY, BUDGET_WAIT};
use crate::conn::{NUDGE_FIRST, NUDGE_MAX, READ_CHUNK};
use crate::error::{Error, RemoteError, Result};
use crate::expose::{Exposed, Void};
use crate::netref::{kwargs_value, Link};
use crate::serving::{self, Core, Host, Resolved};
use crate::tls::Session;
use crate::value::{mismatch, FromValue, IntoArgs, Value};
use ::tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use ::tokio::net::{TcpStream, ToSocketAddrs};
use ::tokio::sync::{mpsc, oneshot, watch};
use ::tokio::time::{sleep, timeout, Instant, Sleep};
use rpyc_wire::brine::Value as Wire;
use rpyc_wire::conn::Event;
use rpyc_wire::consts::handler;
use rpyc_wire::message::IdPack;
use rpyc_wire::WireError;
use rustc_hash::FxHashMap;
use std::any::Any;
use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::Poll;
use std::time::Duration;

/// How long closing waits for what is queued to be written.
const CLOSE_FLUSH: Duration = Duration::from_secs(1);
/// How many of the peer's requests one connection serves at once (on the blocking pool, as
/// tasks, or inline on drivers' threads); past that its driver stops reading until one is
/// answered, so a peer cannot make us hold an unbounded queue of requests. (Requests waiting for our answers to their callbacks
/// count too: 128 nested callbacks in flight at once wait for `sync_request_timeout`.)
const MAX_SERVING: usize = 128;
/// Why a connection we closed ended.
const CLOSED: &str = "connection closed";

/// What the tasks using a connection ask of its driver.
enum Cmd {
    /// Send a request; its answer goes to `reply`.
    Request {
        handler: i64,
        args: Vec<Value>,
        thread: u64,
        reply: Reply,
    },
    /// The answer to the peer's request `seq`, served away from the driver (the blocking
    /// pool, a task, or a call served inline that outlived its place on the driver).
    Answer {
        seq: Wire,
        thread: u64,
        result: Result<Value>,
    },
    /// A reference to the peer's object was dropped.
    Release(IdPack),
    /// One of our objects the peer holds, by id_pack (`HANDLE_INSPECT`).
    Lookup(
        IdPack,
        std::sync::mpsc::SyncSender<Option<Arc<dyn Exposed>>>,
    ),
    /// Tell the peer and end.
    Close,
}

/// Where an answer goes: an awaiting task, or a thread blocked on it.
enum Reply {
    Task(oneshot::Sender<Result<Value>>),
    Thread(std::sync::mpsc::SyncSender<Result<Value>>),
}

impl Reply {
    fn send(self, v: Result<Value>) {
        // (Nobody waits any more: the value, and the references it holds, are dropped.)
        match self {
            Reply::Task(tx) => drop(tx.send(v)),
            Reply::Thread(tx) => drop(tx.try_send(v)),
        }
    }
}

/// What the tasks using a connection see of it.
#[derive(Default)]
struct Status {
    local_objects: usize,
    peer_features: Vec<&'static str>,
}

/// The state shared by a [`Connection`], its driver task and every reference of it.
pub(crate) struct Shared {
    cmds: mpsc::UnboundedSender<Cmd>,
    config: Config,
    service: Arc<dyn Exposed>,
    status: Mutex<Status>,
    /// Why the connection ended (`None` while it lives).
    closed: watch::Sender<Option<String>>,
    runtime: ::tokio::runtime::Handle,
    /// Whether the driver serves the peer's synchronous requests on its own thread (on a
    /// multi-thread runtime; see `serve_inline`).
    inline: bool,
    /// The driver, while its thread serves a request inline.
    parked: Mutex<Option<Parked>>,
}

/// A driver set aside while its thread serves a request inline, and how to start it
/// again as a task of its own (`resume::<S>`, for its stream type).
struct Parked {
    driver: Box<dyn Any + Send>,
    resume: fn(Box<dyn Any + Send>, &::tokio::runtime::Handle),
}

impl Shared {
    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    fn closed_error(&self) -> Error {
        Error::Closed(
            self.closed
                .borrow()
                .clone()
                .unwrap_or_else(|| "connection closed".into()),
        )
    }

    /// Send a command to the driver, starting it again as a task if its thread serves a
    /// request inline: the command may be a callback of that very request, and nobody
    /// else waits for it to end either.
    fn send(&self, cmd: Cmd) -> Result<()> {
        self.cmds.send(cmd).map_err(|_| self.closed_error())?;
        self.unpark();
        Ok(())
    }

    /// If the driver is parked (its thread serves a request inline), start it again as a
    /// task of its own; the request's answer will reach it as a command.
    fn unpark(&self) {
        let parked = self.parked.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(p) = parked {
            (p.resume)(p.driver, &self.runtime);
        }
    }

    /// A request, awaited (at most `sync_request_timeout`).
    async fn request(&self, handler: i64, args: Vec<Value>) -> Result<Value> {
        let (tx, rx) = oneshot::channel();
        self.send(Cmd::Request {
            handler,
            args,
            thread: current_peer_thread(),
            reply: Reply::Task(tx),
        })?;
        let answer = match self.config.sync_request_timeout {
            Some(t) => {
                let start = Instant::now();
                timeout(t, rx)
                    .await
                    .map_err(|_| Error::Timeout(start.elapsed()))?
            }
            None => rx.await,
        };
        answer.unwrap_or_else(|_| Err(self.closed_error()))
    }

    /// A request whose answer this thread waits for (a service method calling the peer
    /// back, or a thread outside the runtime).
    pub(crate) fn call_blocking(&self, handler: i64, args: Vec<Value>) -> Result<Value> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.send(Cmd::Request {
            handler,
            args,
            thread: current_peer_thread(),
            reply: Reply::Thread(tx),
        })?;
        match self.config.sync_request_timeout {
            Some(t) => {
                let start = std::time::Instant::now();
                match rx.recv_timeout(t) {
                    Ok(v) => v,
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                        Err(Error::Timeout(start.elapsed()))
                    }
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                        Err(self.closed_error())
                    }
                }
            }
            None => rx.recv().unwrap_or_else(|_| Err(self.closed_error())),
        }
    }

    pub(crate) fn release(&self, id: IdPack) {
        // (After the end, nothing is left to release. A parked driver is left parked: a
        // request served inline drops the references it was given, and the releases wait
        // for the driver's next turn.)
        let _ = self.cmds.send(Cmd::Release(id));
    }
}

/// What serving a synchronous request needs.
struct Serving(Arc<Shared>);

impl Host for Serving {
    fn service(&self) -> &Arc<dyn Exposed> {
        &self.0.service
    }

    fn local_object(&self, id: &IdPack) -> Option<Arc<dyn Exposed>> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.0.send(Cmd::Lookup(id.clone(), tx)).ok()?;
        rx.recv().ok().flatten()
    }

    fn answer_hello(&self, _: &Value) -> Option<Value> {
        // (PING, the hello, is served by the driver itself: see `Inline`.)
        None
    }
}

/// Serving `PING` (the hello) and `GETROOT` in the driver.
struct Inline<'a> {
    shared: &'a Shared,
    /// The features both sides use, once the peer's hello is answered.
    features: std::cell::RefCell<Option<Vec<&'static str>>>,
}

impl Host for Inline<'_> {
    fn service(&self) -> &Arc<dyn Exposed> {
        &self.shared.service
    }

    fn local_object(&self, _: &IdPack) -> Option<Arc<dyn Exposed>> {
        None
    }

    fn answer_hello(&self, data: &Value) -> Option<Value> {
        if !self.shared.config.rpyc_rs_extensions {
            return None;
        }
        let (both, ack) = serving::hello_answer(&self.shared.service, data)?;
        *self.features.borrow_mut() = Some(both);
        Some(ack)
    }
}

/// A connection to an RPyC peer driven by a tokio task (client or server side).
///
/// ```no_run
/// # async fn run() -> rpyc::Result<()> {
/// let conn = rpyc::tokio::Connection::connect("127.0.0.1:18861").await?;
/// let r: i64 = conn.root().await?.call_method("add", (5, 10)).await?;
/// # Ok(())
/// # }
/// ```
///
/// `&Connection` and [`NetRef`]s may be used from any number of tasks at once. Dropping the
/// `Connection` closes it; references that outlive it fail with [`Error::Closed`].
pub struct Connection {
    shared: Arc<Shared>,
    root: OnceLock<NetRef>,
}

impl Connection {
    /// Connect over TCP with the default [`Config`].
    pub async fn connect(addr: impl ToSocketAddrs) -> Result<Connection> {
        Connection::connect_with(addr, Config::default()).await
    }

    /// Connect over TCP (within `config.connect_timeout`).
    pub async fn connect_with(addr: impl ToSocketAddrs, config: Config) -> Result<Connection> {
        let stream = tcp_connect(addr, &config).await?;
        Connection::from_tcp(stream, config)
    }

    /// Connect over TCP and TLS (`addr` is `host:port`; the host is the name the server's
    /// certificate must carry unless [`crate::TlsClient::server_name`] says otherwise). The
    /// certificates are checked as [`crate::Connection::connect_tls`] checks them: the chain
    /// up to `ca_file` (or the system's CAs) and the host name, always. The handshake is
    /// bounded by `sync_request_timeout` (30 s when unset).
    ///
    /// ```no_run
    /// # async fn run() -> rpyc::Result<()> {
    /// let tls = rpyc::TlsClient { ca_file: Some("ca.pem".into()), ..Default::default() };
    /// let conn = rpyc::tokio::Connection::connect_tls("localhost:18821", &tls, rpyc::Config::default()).await?;
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "tls")]
    pub async fn connect_tls(
        addr: &str,
        tls: &crate::TlsClient,
        config: Config,
    ) -> Result<Connection> {
        let mut session = tls.session_for(addr)?;
        let mut stream = tcp_connect(addr, &config).await?;
        if config.nodelay {
            stream.set_nodelay(true)?;
        }
        let limit = config.sync_request_timeout;
        let initial = tls::handshake(&mut session, &mut stream, limit).await?;
        Connection::start(stream, config, true, Some(Session::new(session)), initial)
    }

    /// Connect to a Unix domain socket with the default [`Config`].
    #[cfg(unix)]
    pub async fn connect_unix(path: impl AsRef<std::path::Path>) -> Result<Connection> {
        Connection::connect_unix_with(path, Config::default()).await
    }

    /// Connect to a Unix domain socket.
    #[cfg(unix)]
    pub async fn connect_unix_with(
        path: impl AsRef<std::path::Path>,
        config: Config,
    ) -> Result<Connection> {
        let path = path.as_ref();
        let s = ::tokio::net::UnixStream::connect(path).await.map_err(|e| {
            Error::Io(std::io::Error::new(
                e.kind(),
                format!(
                    "cannot connect to {} (is an RPyC server listening on that socket?): {e}",
                    path.display()
                ),
            ))
        })?;
        Connection::from_unix(s, config)
    }

    /// A connection over a connected TCP socket (this side sends the rpyc-rs hello, as a
    /// connecting side does). Call it within a tokio runtime: it spawns the driver task.
    pub fn from_tcp(stream: TcpStream, config: Config) -> Result<Connection> {
        if config.nodelay {
            stream.set_nodelay(true)?;
        }
        Connection::start(stream, config, true, None, Vec::new())
    }

    /// A connection over a connected Unix domain socket (this side sends the hello).
    #[cfg(unix)]
    pub fn from_unix(stream: ::tokio::net::UnixStream, config: Config) -> Result<Connection> {
        Connection::start(stream, config, true, None, Vec::new())
    }

    /// Start the driver task on `stream`; `connecting`: send the rpyc-rs hello. Over TLS,
    /// `tls` is the session after its handshake and `initial` the plaintext that came with
    /// it.
    pub(crate) fn start<S>(
        stream: S,
        config: Config,
        connecting: bool,
        tls: Option<Session>,
        initial: Vec<u8>,
    ) -> Result<Connection>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let runtime = ::tokio::runtime::Handle::try_current().map_err(|_| {
            Error::Io(std::io::Error::other(
                "rpyc::tokio connections must be made within a tokio runtime",
            ))
        })?;
        let (cmds, rx) = mpsc::unbounded_channel();
        let service = config.service.clone().unwrap_or_else(|| Arc::new(Void));
        let shared = Arc::new(Shared {
            cmds,
            service,
            status: Mutex::new(Status::default()),
            closed: watch::Sender::new(None),
            inline: runtime.runtime_flavor() == ::tokio::runtime::RuntimeFlavor::MultiThread,
            parked: Mutex::new(None),
            runtime: runtime.clone(),
            config,
        });
        let mut driver = Driver {
            core: Core::new(shared.config.wire.clone(), budget()),
            shared: shared.clone(),
            pending: FxHashMap::default(),
            hello: None,
            out: Vec::new(),
            written: 0,
            serving: 0,
            backlog: false,
            inline: None,
            tls,
        };
        if connecting && shared.config.rpyc_rs_extensions {
            let mut graveyard = Vec::new();
            let ours = |_: &crate::NetRef| false;
            let id = serving::queue_request(
                &mut driver.core,
                0,
                handler::PING,
                vec![serving::hello_offer()],
                &ours,
                &mut graveyard,
            )?;
            driver.hello = Some(id);
        }
        runtime.spawn(driver.run(stream, rx, initial));
        Ok(Connection {
            shared,
            root: OnceLock::new(),
        })
    }

    /// The peer's root object (its service), fetched once (`HANDLE_GETROOT`).
    pub async fn root(&self) -> Result<NetRef> {
        if let Some(r) = self.root.get() {
            return Ok(r.clone());
        }
        let r: NetRef = self.request(handler::GETROOT, ()).await?.get()?;
        Ok(self.root.get_or_init(|| r).clone())
    }

    /// Send `data` and get it back (`HANDLE_PING`): a round trip.
    pub async fn ping(&self, data: impl Into<Value>) -> Result<Value> {
        self.shared.request(handler::PING, vec![data.into()]).await
    }

    /// A request with handler id `handler` (a constant of `rpyc_wire::consts::handler`) and
    /// these arguments; the boxed result.
    pub async fn request(&self, handler: i64, args: impl IntoArgs) -> Result<Value> {
        self.shared.request(handler, args.into_args()).await
    }

    /// Close the connection: tell the peer (`HANDLE_CLOSE`) and end the driver task.
    /// Closing twice is harmless.
    pub fn close(&self) {
        let _ = self.shared.cmds.send(Cmd::Close);
    }

    /// Wait until the connection ends (closed by either side, or broken); why it ended.
    pub async fn wait_closed(&self) -> String {
        let mut rx = self.shared.closed.subscribe();
        let why = match rx.wait_for(Option::is_some).await {
            Ok(why) => why.clone(),
            Err(_) => None,
        };
        why.unwrap_or_else(|| "connection closed".into())
    }

    /// Whether the connection is closed (and why).
    pub fn closed(&self) -> Option<String> {
        self.shared.closed.borrow().clone()
    }

    /// How many of our objects the peer holds references to (as of the driver's last step).
    pub fn local_objects(&self) -> usize {
        self.shared
            .status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .local_objects
    }

    /// The rpyc-rs features both sides use (empty with an upstream peer, or before the
    /// peer answered our hello).
    pub fn peer_features(&self) -> Vec<&'static str> {
        self.shared
            .status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .peer_features
            .clone()
    }

    /// The settings of this connection.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }
}

/// A TCP connection to an RPyC server, within `config.connect_timeout`.
async fn tcp_connect(addr: impl ToSocketAddrs, config: &Config) -> Result<TcpStream> {
    let connecting = TcpStream::connect(addr);
    match config.connect_timeout {
        Some(t) => timeout(t, connecting).await.map_err(|_| {
            Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("cannot connect within connect_timeout={t:?}"),
            ))
        })?,
        None => connecting.await,
    }
    .map_err(|e| {
        Error::Io(std::io::Error::new(
            e.kind(),
            format!("cannot connect (is an RPyC server listening there?): {e}"),
        ))
    })
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.close();
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<rpyc::tokio::Connection")?;
        if let Some(why) = self.closed() {
            write!(f, " closed: {why}")?;
        }
        write!(f, ">")
    }
}

/// The task that owns a connection's socket and its core.
struct Driver {
    core: Core,
    shared: Arc<Shared>,
    /// Who waits for the answer to each of our requests.
    pending: FxHashMap<u64, Reply>,
    /// Our rpyc-rs hello, while its answer is awaited.
    hello: Option<u64>,
    /// Bytes to write, of which `written` are.
    out: Vec<u8>,
    written: usize,
    /// The peer's requests being served (on the blocking pool, as tasks, inline).
    serving: usize,
    /// Frames read but not processed yet (`MAX_SERVING` requests were in service, or a
    /// request is to be served inline first).
    backlog: bool,
    /// A request of the peer to serve on the driver's thread before anything else.
    inline: Option<SyncCall>,
    /// The TLS session, for connections over TLS.
    tls: Option<Session>,
}

/// What woke the driver.
enum Wake {
    Read(std::io::Result<usize>),
    Cmd(Option<Cmd>),
    Write(std::io::Error),
    Stalled,
    /// A TLS peer was silent while we await answers: time to ask for a key update.
    Nudge,
}

impl Driver {
    async fn run<S>(mut self, stream: S, rx: mpsc::UnboundedReceiver<Cmd>, initial: Vec<u8>)
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (rd, wr) = ::tokio::io::split(stream);
        let io = Io {
            rd,
            wr,
            rx,
            buf: vec![0u8; READ_CHUNK],
            stall: Box::pin(sleep(
                self.shared.config.send_stall_timeout.unwrap_or_default(),
            )),
            stall_armed: false,
            nudge: Box::pin(sleep(NUDGE_FIRST)),
            nudge_every: None,
        };
        // (Plaintext that came with the last handshake records.)
        let first = if initial.is_empty() {
            Ok(())
        } else {
            self.received(&initial).await
        };
        drive(self, io, first).await;
    }

    /// Move what the core queued to the bytes to write (encrypted over TLS, one record per
    /// frame, with what the session owes the peer: the answer to its key update).
    fn take_outgoing(&mut self) -> std::result::Result<(), String> {
        let more = self.core.take_outgoing();
        match &self.tls {
            Some(t) if !more.is_empty() || t.wants_write() => {
                let sealed = t.encrypt(&more).map_err(|e| format!("TLS: {e}"))?;
                self.out.extend_from_slice(&sealed);
            }
            Some(_) => {}
            None if !more.is_empty() => self.out.extend_from_slice(&more),
            None => {}
        }
        Ok(())
    }

    /// Bytes read from the socket (decrypted over TLS).
    async fn incoming(&mut self, bytes: &[u8]) -> std::result::Result<(), String> {
        let Some(t) = &self.tls else {
            return self.received(bytes).await;
        };
        let mut plain = Vec::new();
        let closed = t.decrypt(bytes, &mut plain)?;
        if !plain.is_empty() {
            self.received(&plain).await?;
        }
        if closed {
            return Err("connection closed by the peer".into());
        }
        Ok(())
    }

    fn core_close(&mut self) {
        let _ = self.core.close();
    }

    /// What the tasks see: the object count and the peer's features.
    fn publish(&self) {
        let mut st = self.shared.status.lock().unwrap_or_else(|e| e.into_inner());
        st.local_objects = self.core.objects().len();
        if st.peer_features.as_slice() != self.core.session().peer_features() {
            st.peer_features = self.core.session().peer_features().to_vec();
        }
    }

    fn command(&mut self, cmd: Cmd) {
        let mut graveyard = Vec::new();
        match cmd {
            Cmd::Request {
                handler,
                args,
                thread,
                reply,
            } => {
                let ours = ours(self.shared.clone());
                match serving::queue_request(
                    &mut self.core,
                    thread,
                    handler,
                    args,
                    &ours,
                    &mut graveyard,
                ) {
                    Ok(id) => {
                        self.pending.insert(id, reply);
                    }
                    Err(e) => reply.send(Err(e)),
                }
            }
            Cmd::Answer {
                seq,
                thread,
                result,
            } => {
                self.serving = self.serving.saturating_sub(1);
                let ours = ours(self.shared.clone());
                serving::queue_answer(&mut self.core, &seq, thread, result, &ours, &mut graveyard);
            }
            Cmd::Release(id) => serving::queue_releases(&mut self.core, [id]),
            Cmd::Lookup(id, tx) => {
                let obj = serving::id_key(&id).and_then(|k| self.core.objects().get(k).cloned());
                let _ = tx.try_send(obj);
            }
            Cmd::Close => self.core_close(),
        }
        drop(graveyard);
    }

    /// Bytes from the peer: answers go to their waiters, requests to be served.
    async fn received(&mut self, bytes: &[u8]) -> std::result::Result<(), String> {
        let mut waited = Duration::ZERO;
        loop {
            match self.core.receive(bytes) {
                Ok(()) => break,
                // The process's inbound memory is taken by other connections: wait for room
                // (the bytes are kept), as the blocking driver does.
                Err(WireError::MemoryBudget { .. }) if waited < BUDGET_WAIT => {
                    sleep(BUDGET_RETRY).await;
                    waited += BUDGET_RETRY;
                }
                Err(e) => return Err(format!("protocol error: {e}")),
            }
        }
        self.events(waited).await
    }

    /// Process the frames received (until `MAX_SERVING` requests are in service, or a
    /// request is to be served inline).
    async fn events(&mut self, mut waited: Duration) -> std::result::Result<(), String> {
        loop {
            if self.serving >= MAX_SERVING || self.inline.is_some() {
                self.backlog = true;
                return Ok(());
            }
            match self.core.poll_event() {
                Ok(None) => {
                    self.backlog = false;
                    return Ok(());
                }
                Err(WireError::MemoryBudget { .. }) if waited < BUDGET_WAIT => {
                    // An inflation paused for room: it goes on where it stopped.
                    sleep(BUDGET_RETRY).await;
                    waited += BUDGET_RETRY;
                }
                Err(e) => return Err(format!("protocol error: {e}")),
                Ok(Some(Event::Closed)) => return Err("connection closed by the peer".into()),
                Ok(Some(event)) => self.event(event),
            }
        }
    }

    fn event(&mut self, event: Event) {
        match event {
            Event::Reply { id, result } if self.hello == Some(id) => {
                self.hello = None;
                if let Some(both) = serving::hello_ack_features(&result) {
                    self.core.session_mut().set_peer_features(both);
                    // (Seen before the answers that follow are delivered.)
                    self.publish();
                }
            }
            Event::Exception { id, .. } if self.hello == Some(id) => self.hello = None,
            Event::Reply { id, result } => {
                let Some(reply) = self.pending.remove(&id) else {
                    return;
                };
                let value = match result {
                    Ok(b) => {
                        let r = serving::resolve(self.core.objects(), b);
                        serving::from_resolved(r, &self.netref())
                    }
                    Err(e) => Err(Error::Wire(e)),
                };
                reply.send(value);
            }
            Event::Exception { id, body } => {
                let Some(reply) = self.pending.remove(&id) else {
                    return;
                };
                reply.send(match body {
                    Ok(body) => Err(Error::Remote(RemoteError::from_body(body))),
                    Err(e) => Err(Error::Wire(e)),
                });
            }
            Event::Request {
                seq,
                handler: h @ (handler::PING | handler::GETROOT),
                thread,
                args,
            } => {
                // Served here, in order (no code of the service runs): the hello is
                // answered before the requests that follow it.
                let args = args.map(|a| {
                    a.into_iter()
                        .map(|b| serving::resolve(self.core.objects(), b))
                        .collect()
                });
                let args = serving::request_args(args, &self.netref());
                let inline = Inline {
                    shared: &self.shared,
                    features: Default::default(),
                };
                let result = serving::dispatch(&inline, h, args);
                if let Some(both) = inline.features.into_inner() {
                    self.core.session_mut().set_peer_features(both);
                }
                let mut graveyard = Vec::new();
                let ours = ours(self.shared.clone());
                serving::queue_answer(&mut self.core, &seq, thread, result, &ours, &mut graveyard);
            }
            Event::Request {
                seq,
                handler,
                thread,
                args,
            } => {
                // Our objects it names are looked up now (a release later in the same read
                // must not take them away first); the request is served on the driver's
                // thread (multi-thread runtime: see `serve_inline`) or on the blocking pool,
                // whose answer comes back as a command.
                let args: std::result::Result<Vec<Resolved>, WireError> = args.map(|a| {
                    a.into_iter()
                        .map(|b| serving::resolve(self.core.objects(), b))
                        .collect()
                });
                self.serving += 1;
                if let Some((obj, name)) = async_call(handler, &args) {
                    // An `async fn` of a service: awaited as a task of its own, so it holds
                    // no thread while it waits.
                    let call = AsyncCall {
                        handler,
                        obj,
                        name,
                        args,
                        thread,
                    };
                    let shared = self.shared.clone();
                    let served = call.serve(shared.clone());
                    self.shared.runtime.spawn(async move {
                        let result = served.await;
                        let _ = shared.send(Cmd::Answer {
                            seq,
                            thread,
                            result,
                        });
                    });
                    return;
                }
                if self.shared.inline {
                    self.inline = Some(SyncCall {
                        seq,
                        handler,
                        thread,
                        args,
                    });
                    return;
                }
                let shared = self.shared.clone();
                self.shared.runtime.spawn_blocking(move || {
                    let result = serve_sync(&shared, handler, thread, args);
                    let _ = shared.send(Cmd::Answer {
                        seq,
                        thread,
                        result,
                    });
                });
            }
            Event::UnknownHandler {
                seq,
                handler,
                thread,
            } => {
                let mut graveyard = Vec::new();
                let ours = ours(self.shared.clone());
                let result = Err(serving::unknown_handler(handler));
                serving::queue_answer(&mut self.core, &seq, thread, result, &ours, &mut graveyard);
            }
            Event::Closed => {}
        }
    }

    fn netref(&self) -> impl Fn(IdPack) -> crate::NetRef + '_ {
        move |id| crate::NetRef::new(Link::Tokio(self.shared.clone()), id)
    }

    /// The connection ended: every waiter learns why; the objects the peer held are dropped.
    fn end(&mut self, why: String) {
        self.core.session_mut().end(why.clone());
        self.shared.closed.send_replace(Some(why.clone()));
        for (_, reply) in self.pending.drain() {
            reply.send(Err(Error::Closed(why.clone())));
        }
        drop(self.core.objects_mut().take_all());
        self.publish();
    }
}

/// What the driver loop keeps besides the [`Driver`]: the socket's halves, the commands,
/// the read buffer and the timers.
struct Io<S> {
    rd: ::tokio::io::ReadHalf<S>,
    wr: ::tokio::io::WriteHalf<S>,
    rx: mpsc::UnboundedReceiver<Cmd>,
    buf: Vec<u8>,
    stall: Pin<Box<Sleep>>,
    stall_armed: bool,
    /// While our requests await answers over TLS, a silent peer is asked for a key update
    /// after 1 ms, then at doubling intervals up to 1 s (as the blocking driver: an OpenSSL
    /// peer may hold a frame it read along with the previous one, unseen by its poll; the
    /// record makes its socket readable). `None`: not armed.
    nudge: Pin<Box<Sleep>>,
    nudge_every: Option<Duration>,
}

/// A synchronous request of the peer, to serve on the driver's thread.
struct SyncCall {
    seq: Wire,
    handler: i64,
    thread: u64,
    args: std::result::Result<Vec<Resolved>, WireError>,
}

/// The driver loop, until the connection ends; `first`: how processing what came with the
/// TLS handshake went. It returns early, the connection going on, when a request served
/// inline outlives its place on the loop (see [`serve_inline`]).
async fn drive<S>(mut d: Driver, mut io: Io<S>, mut first: std::result::Result<(), String>)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let stall_limit = d.shared.config.send_stall_timeout;
    let why = loop {
        if let Err(why) = std::mem::replace(&mut first, Ok(())) {
            break why;
        }
        if let Some(call) = d.inline.take() {
            match serve_inline(d, io, call) {
                Some((back, back_io)) => (d, io) = (back, back_io),
                None => return,
            }
            d.publish();
        }
        // (Frames left when requests in service or a request to serve inline stopped the
        // processing.)
        if d.backlog && d.serving < MAX_SERVING {
            first = d.events(Duration::ZERO).await;
            continue;
        }
        if let Err(why) = d.take_outgoing() {
            break why;
        }
        let awaited = d.tls.is_some() && d.core.session().requests.awaited() > 0;
        match (awaited, io.nudge_every) {
            (true, None) => {
                io.nudge.as_mut().reset(Instant::now() + NUDGE_FIRST);
                io.nudge_every = Some(NUDGE_FIRST);
            }
            (false, _) => io.nudge_every = None,
            (true, Some(_)) => {}
        }
        let nudging = io.nudge_every.is_some();
        if !d.out.is_empty() && !io.stall_armed {
            if let Some(t) = stall_limit {
                io.stall.as_mut().reset(Instant::now() + t);
                io.stall_armed = true;
            }
        }
        let out = &mut d.out;
        let written = &mut d.written;
        let may_read = d.serving < MAX_SERVING && !d.backlog;
        let Io {
            rd,
            wr,
            rx,
            buf,
            stall,
            stall_armed,
            nudge,
            ..
        } = &mut io;
        // Plain bytes are read straight into the frame decoder's buffer. When it has no
        // room to lend (the budget refused: `received` waits for room with the bytes kept;
        // a header over the limit, whose error comes with the frames), or over TLS, they go
        // through `buf`. (Only when reading: lending room may move what is buffered to the
        // front.)
        let lent = match may_read && d.tls.is_none() {
            true => d.core.read_buf().ok(),
            false => None,
        };
        let direct = lent.is_some();
        let room: &mut [u8] = lent.unwrap_or(&mut buf[..]);
        let wake = poll_fn(|cx| {
            let before = *written;
            while *written < out.len() {
                match Pin::new(&mut *wr).poll_write(cx, &out[*written..]) {
                    Poll::Ready(Ok(0)) => {
                        return Poll::Ready(Wake::Write(std::io::ErrorKind::WriteZero.into()))
                    }
                    Poll::Ready(Ok(n)) => *written += n,
                    Poll::Ready(Err(e)) => return Poll::Ready(Wake::Write(e)),
                    Poll::Pending => break,
                }
            }
            if *written == out.len() {
                out.clear();
                *written = 0;
                *stall_armed = false;
            } else if *written != before {
                if let Some(t) = stall_limit {
                    stall.as_mut().reset(Instant::now() + t);
                }
            }
            if let Poll::Ready(c) = rx.poll_recv(cx) {
                return Poll::Ready(Wake::Cmd(c));
            }
            if may_read {
                let mut rb = ReadBuf::new(&mut *room);
                if let Poll::Ready(r) = Pin::new(&mut *rd).poll_read(cx, &mut rb) {
                    return Poll::Ready(Wake::Read(r.map(|()| rb.filled().len())));
                }
            }
            if *stall_armed && stall.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Wake::Stalled);
            }
            if nudging && nudge.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Wake::Nudge);
            }
            Poll::Pending
        })
        .await;
        let step = match wake {
            Wake::Cmd(None) | Wake::Cmd(Some(Cmd::Close)) => {
                d.core_close();
                Err(CLOSED.to_owned())
            }
            Wake::Cmd(Some(cmd)) => {
                d.command(cmd);
                // Everything already asked goes out in the same write (releases are
                // batched with the next request).
                let mut step = Ok(());
                while let Ok(cmd) = io.rx.try_recv() {
                    if matches!(cmd, Cmd::Close) {
                        d.core_close();
                        step = Err(CLOSED.to_owned());
                        break;
                    }
                    d.command(cmd);
                }
                step
            }
            Wake::Read(Ok(0)) => Err("connection closed by the peer".to_owned()),
            Wake::Read(Ok(n)) => {
                // (The peer spoke: a nudge, if one is due, starts over at 1 ms.)
                io.nudge_every = None;
                if direct {
                    d.core.commit(n);
                    d.events(Duration::ZERO).await
                } else {
                    d.incoming(&io.buf[..n]).await
                }
            }
            Wake::Read(Err(e)) => Err(format!("socket error: {e}")),
            Wake::Write(e) => Err(format!("sending failed: {e}")),
            Wake::Stalled => Err(format!(
                "the peer read nothing for send_stall_timeout={:?} (raise \
                 Config::send_stall_timeout if it is just slow)",
                stall_limit.unwrap_or_default()
            )),
            Wake::Nudge => {
                let every = (io.nudge_every.unwrap_or(NUDGE_FIRST) * 2).min(NUDGE_MAX);
                io.nudge.as_mut().reset(Instant::now() + every);
                io.nudge_every = Some(every);
                // (TLS 1.2 has no key update: nothing to send, the timer just runs.)
                if let Some(t) = &d.tls {
                    t.nudge();
                }
                Ok(())
            }
        };
        d.publish();
        if let Err(why) = step {
            if why == CLOSED {
                // Our HANDLE_CLOSE (and what was queued before it), within a second.
                let _ = d.take_outgoing();
                let rest = &d.out[d.written..];
                let wr = &mut io.wr;
                let _ = timeout(CLOSE_FLUSH, async {
                    wr.write_all(rest).await?;
                    wr.shutdown().await
                })
                .await;
            }
            break why;
        }
    };
    d.end(why);
    io.rx.close();
    // (Requests that were still queued learn that the connection is closed.)
    while let Ok(cmd) = io.rx.try_recv() {
        if let Cmd::Request { reply, .. } = cmd {
            reply.send(Err(d.shared.closed_error()));
        }
    }
}

/// Serve a synchronous request of the peer on the driver's own thread (on a multi-thread
/// runtime): no handoff to the blocking pool and back. `block_in_place` first hands this
/// worker's other tasks to another thread, so other connections go on. Meanwhile the
/// driver is parked in [`Shared::parked`], and started again as a task of its own by
/// whoever needs it before the call ends: a callback the call makes on this connection,
/// a request of another task, or the watchdog once the call has run a millisecond or two
/// (so the peer's next requests are read and served concurrently, as on the blocking
/// pool). The driver back: the answer is queued. `None`: the driver went on without us,
/// and the answer reaches it as a command.
fn serve_inline<S>(d: Driver, io: Io<S>, call: SyncCall) -> Option<(Driver, Io<S>)>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let shared = d.shared.clone();
    *shared.parked.lock().unwrap_or_else(|e| e.into_inner()) = Some(Parked {
        driver: Box::new((d, io)),
        resume: resume::<S>,
    });
    let watched = watchdog::start(&shared);
    let SyncCall {
        seq,
        handler,
        thread,
        args,
    } = call;
    let result = ::tokio::task::block_in_place(|| serve_sync(&shared, handler, thread, args));
    watchdog::end(watched);
    let parked = shared
        .parked
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    let Some(parked) = parked else {
        let _ = shared.send(Cmd::Answer {
            seq,
            thread,
            result,
        });
        return None;
    };
    let Ok(back) = parked.driver.downcast::<(Driver, Io<S>)>() else {
        unreachable!("a connection's driver is parked with its own stream type");
    };
    let (mut d, io) = *back;
    d.serving = d.serving.saturating_sub(1);
    let mut graveyard = Vec::new();
    let ours = ours(shared);
    serving::queue_answer(&mut d.core, &seq, thread, result, &ours, &mut graveyard);
    drop(graveyard);
    Some((d, io))
}

/// Start a parked driver again as a task (its request's answer comes as a command).
fn resume<S>(parked: Box<dyn Any + Send>, runtime: &::tokio::runtime::Handle)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let Ok(back) = parked.downcast::<(Driver, Io<S>)>() else {
        unreachable!("a connection's driver is parked with its own stream type");
    };
    let (d, io) = *back;
    let driving: Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(drive(d, io, Ok(())));
    runtime.spawn(driving);
}

/// Serve a synchronous request of the peer on this thread (the blocking pool's, or the
/// driver's: see [`serve_inline`]). A service method that panicked is the peer's
/// `RuntimeError`, and the connection goes on.
fn serve_sync(
    shared: &Arc<Shared>,
    handler: i64,
    thread: u64,
    args: std::result::Result<Vec<Resolved>, WireError>,
) -> Result<Value> {
    let netref = |id| crate::NetRef::new(Link::Tokio(shared.clone()), id);
    let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        serving_thread(thread, || {
            let args = serving::request_args(args, &netref);
            serving::dispatch(&Serving(shared.clone()), handler, args)
        })
    }));
    served.unwrap_or_else(|_| Err(panicked()))
}

/// The `async fn` a request calls, if it calls one: `obj.name(...)` (`HANDLE_CALLATTR`),
/// or `obj(...)` (`HANDLE_CALL`, as method `"__call__"`: a bound method read with
/// `getattr`), where `obj` is one of ours whose [`Exposed::async_method`] names it.
fn async_call(
    handler: i64,
    args: &std::result::Result<Vec<Resolved>, WireError>,
) -> Option<(Arc<dyn Exposed>, String)> {
    let (obj, name) = match (handler, args.as_deref().ok()?) {
        (handler::CALLATTR, [Resolved::Local(_, Some(obj)), Resolved::Value(name), ..]) => {
            let name = match name {
                Wire::Str(s) => s.clone(),
                Wire::Bytes(b) => String::from_utf8(b.clone()).ok()?,
                _ => return None,
            };
            (obj, name)
        }
        (handler::CALL, [Resolved::Local(_, Some(obj)), ..]) => (obj, "__call__".to_owned()),
        _ => return None,
    };
    obj.async_method(&name).then(|| (obj.clone(), name))
}

/// A request of the peer that calls an `async fn` of ours.
struct AsyncCall {
    handler: i64,
    obj: Arc<dyn Exposed>,
    name: String,
    args: std::result::Result<Vec<Resolved>, WireError>,
    /// The peer thread that asked (`bind_threads`: our callbacks go to it).
    thread: u64,
}

impl AsyncCall {
    /// Convert the arguments and await the method; a panic in it is the peer's
    /// `RuntimeError` (it runs as a task of its own, whose panic tokio catches).
    async fn serve(self, shared: Arc<Shared>) -> Result<Value> {
        let netref = |id| crate::NetRef::new(Link::Tokio(shared.clone()), id);
        let mut args = serving::request_args(self.args, &netref)?.into_iter();
        // (The target, and for CALLATTR the name, were read by `async_call`.)
        let skip = if self.handler == handler::CALLATTR {
            2
        } else {
            1
        };
        let mut args = args.by_ref().skip(skip);
        let call = serving::call_args(
            args.next().unwrap_or_default(),
            args.next().unwrap_or_default(),
        )?;
        let method = InPeerThread {
            thread: self.thread,
            fut: self.obj.call_method_async(self.name, call),
        };
        match shared.runtime.spawn(method).await {
            Ok(result) => result,
            Err(_) => Err(panicked()),
        }
    }
}

/// What the peer gets for a service method that panicked (the connection goes on).
fn panicked() -> Error {
    Error::raise("RuntimeError", "the Rust service method panicked")
}

/// A future polled as serving a request of peer thread `thread`: the requests it makes
/// (callbacks) are addressed to that thread under `bind_threads`, as the blocking pool's
/// `serving_thread` does for synchronous methods.
struct InPeerThread {
    thread: u64,
    fut: crate::MethodFuture,
}

impl Future for InPeerThread {
    type Output = Result<Value>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        let thread = self.thread;
        serving_thread(thread, || self.fut.as_mut().poll(cx))
    }
}

/// Whether a reference is one of this connection's (it may be sent back to the peer).
fn ours(shared: Arc<Shared>) -> impl Fn(&crate::NetRef) -> bool {
    move |r: &crate::NetRef| matches!(r.link(), Link::Tokio(s) if Arc::ptr_eq(s, &shared))
}

/// A reference to an object of the peer of a tokio [`Connection`], with async operations.
/// It wraps the crate's [`crate::NetRef`] ([`NetRef::inner`]): the same handle, released
/// (`HANDLE_DEL`) when the last clone of either is dropped. Values received on a tokio
/// connection hold `crate::NetRef`s; convert them with `get::<rpyc::tokio::NetRef>()` or
/// [`NetRef::from_value`].
#[derive(Clone)]
pub struct NetRef(crate::NetRef, Arc<Shared>);

impl NetRef {
    fn shared(&self) -> &Arc<Shared> {
        &self.1
    }

    /// The crate's handle (its methods are blocking; see the module's documentation).
    pub fn inner(&self) -> &crate::NetRef {
        &self.0
    }

    /// The crate's handle.
    pub fn into_inner(self) -> crate::NetRef {
        self.0
    }

    /// The id_pack the peer gave: `(class name, class id, instance id)`.
    pub fn id_pack(&self) -> &IdPack {
        self.0.id_pack()
    }

    /// The remote class name (`"builtins.list"`, `"__main__.MyService"`).
    pub fn type_name(&self) -> &str {
        self.0.type_name()
    }

    fn me(&self) -> Value {
        Value::Remote(self.0.clone())
    }

    async fn request<R: FromValue>(&self, h: i64, args: Vec<Value>) -> Result<R> {
        R::from_value(self.shared().request(h, args).await?)
    }

    /// `obj.name` (`HANDLE_GETATTR`).
    pub async fn getattr<R: FromValue>(&self, name: &str) -> Result<R> {
        self.request(handler::GETATTR, vec![self.me(), Value::str(name)])
            .await
    }

    /// `obj.name = value` (`HANDLE_SETATTR`; the peer must allow it).
    pub async fn setattr(&self, name: &str, value: impl Into<Value>) -> Result<()> {
        let args = vec![self.me(), Value::str(name), value.into()];
        self.request::<Value>(handler::SETATTR, args)
            .await
            .map(drop)
    }

    /// `del obj.name` (`HANDLE_DELATTR`; the peer must allow it).
    pub async fn delattr(&self, name: &str) -> Result<()> {
        let args = vec![self.me(), Value::str(name)];
        self.request::<Value>(handler::DELATTR, args)
            .await
            .map(drop)
    }

    /// `obj(*args)` (`HANDLE_CALL`).
    pub async fn call<R: FromValue>(&self, args: impl IntoArgs) -> Result<R> {
        self.call_kw(args, Vec::<(String, Value)>::new()).await
    }

    /// `obj(*args, **kwargs)`.
    pub async fn call_kw<R, K, V>(
        &self,
        args: impl IntoArgs,
        kwargs: impl IntoIterator<Item = (K, V)>,
    ) -> Result<R>
    where
        R: FromValue,
        K: Into<String>,
        V: Into<Value>,
    {
        let args = vec![
            self.me(),
            Value::Tuple(args.into_args()),
            kwargs_value(kwargs),
        ];
        self.request(handler::CALL, args).await
    }

    /// `obj.name(*args)` in one round trip (`HANDLE_CALLATTR`).
    pub async fn call_method<R: FromValue>(&self, name: &str, args: impl IntoArgs) -> Result<R> {
        self.call_method_kw(name, args, Vec::<(String, Value)>::new())
            .await
    }

    /// `obj.name(*args, **kwargs)`.
    pub async fn call_method_kw<R, K, V>(
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
        let args = vec![
            self.me(),
            Value::str(name),
            Value::Tuple(args.into_args()),
            kwargs_value(kwargs),
        ];
        self.request(handler::CALLATTR, args).await
    }

    /// `repr(obj)`.
    pub async fn repr(&self) -> Result<String> {
        self.request(handler::REPR, vec![self.me()]).await
    }

    /// `str(obj)`.
    pub async fn str(&self) -> Result<String> {
        self.request(handler::STR, vec![self.me()]).await
    }

    /// `dir(obj)`.
    pub async fn dir(&self) -> Result<Vec<String>> {
        self.request(handler::DIR, vec![self.me()]).await
    }

    /// `len(obj)`.
    pub async fn len(&self) -> Result<usize> {
        self.call_method("__len__", ()).await
    }

    /// `len(obj) == 0`.
    pub async fn is_empty(&self) -> Result<bool> {
        self.len().await.map(|n| n == 0)
    }

    /// `obj[key]`.
    pub async fn getitem<R: FromValue>(&self, key: impl Into<Value>) -> Result<R> {
        self.call_method("__getitem__", (key.into(),)).await
    }

    /// `obj[key] = value`.
    pub async fn setitem(&self, key: impl Into<Value>, value: impl Into<Value>) -> Result<()> {
        self.call_method::<Value>("__setitem__", (key.into(), value.into()))
            .await
            .map(drop)
    }

    /// `item in obj`.
    pub async fn contains(&self, item: impl Into<Value>) -> Result<bool> {
        self.call_method("__contains__", (item.into(),)).await
    }

    /// Iterate a remote iterable (`iter(obj)`), awaiting batches of up to 128 items
    /// (`HANDLE_BUFFITER`).
    pub async fn iter(&self) -> Result<Iter> {
        let it: Value = self.call_method("__iter__", ()).await?;
        match NetRef::from_value(it) {
            Ok(it) => Ok(Iter::new(it)),
            Err(_) => Err(Error::Conversion(
                "__iter__ of the remote object did not return an iterator reference".into(),
            )),
        }
    }

    /// The items of a remote iterable, fetched in batches of 128 (`HANDLE_BUFFITER`).
    pub async fn to_vec<T: FromValue>(&self) -> Result<Vec<T>> {
        let mut it = self.iter().await?;
        let mut out = Vec::new();
        while let Some(item) = it.next().await? {
            out.push(item);
        }
        Ok(out)
    }

    /// The `(key, value)` pairs of a mapping: `obj.items()` if the peer lets us call it,
    /// else its keys and `obj[key]` for each (as [`crate::NetRef::items`]).
    pub async fn items(&self) -> Result<Vec<(Value, Value)>> {
        let pairs: Vec<Value> = match self.call_method::<Value>("items", ()).await {
            Ok(Value::Remote(view)) => NetRef::from_value(Value::Remote(view))?.to_vec().await?,
            Ok(Value::Tuple(kvs)) => kvs,
            Ok(other) => return Err(mismatch("an items view", &other)),
            Err(e) if e.is_remote("AttributeError") => {
                let mut out = Vec::new();
                let mut keys = self.iter().await?;
                while let Some(key) = keys.next::<Value>().await? {
                    let value = self.getitem(key.clone()).await?;
                    out.push((key, value));
                }
                return Ok(out);
            }
            Err(e) => return Err(e),
        };
        pairs.into_iter().map(crate::netref::pair).collect()
    }
}

impl FromValue for NetRef {
    fn from_value(v: Value) -> Result<NetRef> {
        let shared = match &v {
            Value::Remote(r) => match r.link() {
                Link::Tokio(s) => Some(s.clone()),
                _ => None,
            },
            _ => None,
        };
        match (v, shared) {
            (Value::Remote(r), Some(s)) => Ok(NetRef(r, s)),
            (other, _) => Err(mismatch("a reference of a tokio connection", &other)),
        }
    }
}

impl TryFrom<Value> for NetRef {
    type Error = Error;
    fn try_from(v: Value) -> Result<NetRef> {
        NetRef::from_value(v)
    }
}

impl From<NetRef> for Value {
    fn from(r: NetRef) -> Value {
        Value::Remote(r.0)
    }
}

impl From<&NetRef> for Value {
    fn from(r: &NetRef) -> Value {
        Value::Remote(r.0.clone())
    }
}

impl fmt::Debug for NetRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<tokio netref {}>", self.type_name())
    }
}
