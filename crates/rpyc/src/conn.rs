//! The blocking driver of the connection core: a [`Connection`] over a socket, shared by
//! any number of threads.
//!
//! There is no background thread. A thread that waits for an answer becomes the *reader*:
//! it reads the socket, files answers that belong to other waiting threads (and wakes
//! them), and serves the peer's requests itself, after giving up the reader role, so that
//! a request served this way may call the peer back and wait in turn. This is how nested
//! callbacks work in both directions without a serving thread.

use crate::config::Config;
use crate::error::{Error, RemoteError, Result};
use crate::expose::{Exposed, Void};
use crate::netref::{Link, NetRef};
use crate::serving::{self, Core, Host, Resolved};
use crate::tls;
use crate::transport::Stream;
use crate::value::{FromValue, IntoArgs, Value};
use rpyc_wire::brine::Value as Wire;
use rpyc_wire::budget::MemoryBudget;
use rpyc_wire::conn::Event;
use rpyc_wire::consts::handler;
use rpyc_wire::frame::{FrameDecoder, Payload};
use rpyc_wire::message::IdPack;
use rpyc_wire::WireError;
use rustc_hash::{FxHashMap, FxHashSet};
use std::cell::RefCell;
use std::future::Future;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
#[cfg(unix)]
use std::os::unix::net::UnixStream;
#[cfg(unix)]
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// Bytes read from the socket at a time.
pub(crate) const READ_CHUNK: usize = 64 * 1024;
/// How long a connection waits for room in the process's inbound memory budget
/// (`max_inbound_memory`) before it gives up, and how often it looks.
pub(crate) const BUDGET_WAIT: Duration = Duration::from_secs(2);
pub(crate) const BUDGET_RETRY: Duration = Duration::from_millis(10);
/// Items fetched per `HANDLE_BUFFITER` when iterating a remote object.
pub(crate) const ITER_CHUNK: i64 = 128;

/// Inbound bytes held by all connections of the process (`max_inbound_memory`).
pub(crate) fn budget() -> &'static Arc<MemoryBudget> {
    static BUDGET: OnceLock<Arc<MemoryBudget>> = OnceLock::new();
    BUDGET.get_or_init(MemoryBudget::new)
}

thread_local! {
    /// The peer threads whose requests this thread is serving, innermost last
    /// (`bind_threads`: a request made while serving goes to that peer thread).
    static SERVING: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

pub(crate) fn current_peer_thread() -> u64 {
    SERVING.with(|s| s.borrow().last().copied().unwrap_or(0))
}

/// Run `f` as serving a request of peer thread `thread` (what requests it makes are
/// addressed to that thread under `bind_threads`).
pub(crate) fn serving_thread<T>(thread: u64, f: impl FnOnce() -> T) -> T {
    SERVING.with(|s| s.borrow_mut().push(thread));
    let out = f();
    SERVING.with(|s| s.borrow_mut().pop());
    out
}

/// What answered one of our requests, as it came (converted by the thread that waits).
enum Outcome {
    Reply(std::result::Result<Resolved, WireError>),
    Exception(std::result::Result<Wire, WireError>),
}

/// A request of the peer, to serve on the thread that read it.
enum Incoming {
    Request {
        seq: Wire,
        handler: i64,
        thread: u64,
        args: std::result::Result<Vec<Resolved>, WireError>,
    },
    UnknownHandler {
        seq: Wire,
        handler: Wire,
        thread: u64,
    },
}

struct State {
    core: Core,
    outcomes: FxHashMap<u64, Outcome>,
    /// Requests whose waiter gave up (timeout): their answers are dropped, and the
    /// references they hold released.
    abandoned: FxHashSet<u64>,
    /// A thread holds the reader role.
    reading: bool,
    /// Threads waiting on the condition variable (woken only when there are some).
    waiting: usize,
    /// Counts the reads processed (what `serve` waits for).
    progress: u64,
    /// Our rpyc-rs hello, while its answer is awaited.
    hello: Option<u64>,
    /// Tasks awaiting an [`AsyncResult`], woken when its answer is filed.
    wakers: FxHashMap<u64, Waker>,
    /// A background thread reads and serves (started by the first awaited `AsyncResult`).
    background: bool,
    closed: Option<String>,
}

struct ReadSide {
    stream: Stream,
    /// Frames as they arrive. Reading happens here, outside the state lock (other threads
    /// send meanwhile), so the frames are taken out of the byte stream here too, straight
    /// from the socket into the decoder's buffer, and only their payloads go to the core.
    frames: FrameDecoder,
    /// What is read when the decoder cannot lend room (TLS records, to decrypt; the memory
    /// budget refusing, to wait for room with the bytes kept). Allocated on first use.
    buf: Vec<u8>,
    /// The socket's read timeout as last set (`None`: never set).
    timeout: Option<Option<Duration>>,
    /// Reads left to do without busy polling, and how many the next miss skips (doubles per
    /// miss, halves per hit): long calls and busy machines stop paying for polls that miss.
    poll_skip: u32,
    poll_backoff: u32,
}

/// Most reads a socket whose polls keep missing skips between two attempts.
const MAX_POLL_SKIP: u32 = 64;

impl ReadSide {
    /// Give the socket a read timeout that ends a read by `deadline` (give or take 5 ms),
    /// changing it (a system call) only when the one set does not fit.
    fn fit_timeout(&mut self, deadline: Option<Instant>) -> std::io::Result<()> {
        let want = match deadline {
            None => None,
            Some(d) => {
                let remaining = d
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(1));
                if let Some(Some(t)) = self.timeout {
                    // A read blocks at most `t` from now: keep `t` if that ends near the
                    // deadline (a shorter read just wakes the loop up early).
                    if t <= remaining + Duration::from_millis(5) && t >= remaining / 2 {
                        return Ok(());
                    }
                }
                Some(remaining)
            }
        };
        if self.timeout != Some(want) {
            self.stream.set_read_timeout(want)?;
            self.timeout = Some(want);
        }
        Ok(())
    }
}

/// The state shared by a [`Connection`] and every [`NetRef`] of it.
pub(crate) struct Shared {
    state: Mutex<State>,
    cond: Condvar,
    writer: Mutex<Stream>,
    reader: Mutex<ReadSide>,
    /// A handle on the socket to shut it down without taking the other locks.
    control: Stream,
    /// References to the peer's objects we dropped, to release (`HANDLE_DEL`) with the
    /// next frame we send.
    releases: Mutex<Vec<IdPack>>,
    config: Config,
    service: Arc<dyn Exposed>,
    /// The TLS session, for connections over TLS.
    tls: Option<tls::Session>,
}

/// How long a thread waiting for an answer over TLS lets the peer be silent before it asks
/// for a key update, then doubling up to [`NUDGE_MAX`] (docs/architecture.md: an OpenSSL
/// peer may hold a second frame it read along with the first, unseen by its poll).
pub(crate) const NUDGE_FIRST: Duration = Duration::from_millis(1);
pub(crate) const NUDGE_MAX: Duration = Duration::from_secs(1);

/// A connection to an RPyC peer (client or server side; after the connection is made both
/// sides are the same).
///
/// ```no_run
/// let conn = rpyc::Connection::connect("127.0.0.1:18861")?;
/// let sum: i64 = conn.root()?.call_method("add", (5, 10))?;
/// # Ok::<(), rpyc::Error>(())
/// ```
///
/// A `Connection` may be shared between threads (`&Connection` is `Send`); calls from
/// several threads are multiplexed. Dropping it closes the connection; [`NetRef`]s that
/// outlive it fail with [`Error::Closed`].
pub struct Connection {
    shared: Arc<Shared>,
    root: OnceLock<NetRef>,
}

fn context(e: std::io::Error, what: String) -> Error {
    Error::Io(std::io::Error::new(e.kind(), format!("{what}: {e}")))
}

/// A TCP connection to the first of `addr`'s addresses that accepts one (each attempt bounded
/// by `config.connect_timeout`); errors name the address.
fn tcp_connect(addr: impl ToSocketAddrs, config: &Config) -> Result<TcpStream> {
    let addrs: Vec<_> = addr
        .to_socket_addrs()
        .map_err(|e| context(e, "cannot resolve the server address".into()))?
        .collect();
    let mut last = None;
    for a in &addrs {
        let attempt = match config.connect_timeout {
            Some(t) => TcpStream::connect_timeout(a, t),
            None => TcpStream::connect(a),
        };
        match attempt {
            Ok(s) => return Ok(s),
            Err(e) => {
                last = Some(context(
                    e,
                    format!("cannot connect to {a} (is an RPyC server listening there?)"),
                ))
            }
        }
    }
    Err(last.unwrap_or_else(|| {
        Error::Io(std::io::Error::new(
            ErrorKind::InvalidInput,
            "the server address resolved to nothing",
        ))
    }))
}

impl Connection {
    /// Connect over TCP with the default [`Config`].
    pub fn connect(addr: impl ToSocketAddrs) -> Result<Connection> {
        Connection::connect_with(addr, Config::default())
    }

    /// Connect over TCP.
    pub fn connect_with(addr: impl ToSocketAddrs, config: Config) -> Result<Connection> {
        Connection::from_tcp(tcp_connect(addr, &config)?, config)
    }

    /// Connect to a Unix domain socket with the default [`Config`].
    #[cfg(unix)]
    pub fn connect_unix(path: impl AsRef<Path>) -> Result<Connection> {
        Connection::connect_unix_with(path, Config::default())
    }

    /// Connect to a Unix domain socket.
    #[cfg(unix)]
    pub fn connect_unix_with(path: impl AsRef<Path>, config: Config) -> Result<Connection> {
        let path = path.as_ref();
        let s = UnixStream::connect(path).map_err(|e| {
            context(
                e,
                format!(
                    "cannot connect to {} (is an RPyC server listening on that socket?)",
                    path.display()
                ),
            )
        })?;
        Connection::from_stream(Stream::Unix(s), config)
    }

    /// A connection over a connected TCP socket (this side sends the rpyc-rs hello, as a
    /// connecting side does).
    pub fn from_tcp(stream: TcpStream, config: Config) -> Result<Connection> {
        if config.nodelay {
            stream.set_nodelay(true)?;
        }
        Connection::from_stream(Stream::Tcp(stream), config)
    }

    /// A connection over a connected Unix domain socket (this side sends the hello).
    #[cfg(unix)]
    pub fn from_unix(stream: UnixStream, config: Config) -> Result<Connection> {
        Connection::from_stream(Stream::Unix(stream), config)
    }

    pub(crate) fn from_stream(stream: Stream, config: Config) -> Result<Connection> {
        Connection::from_parts(stream, config, None, Vec::new(), true)
    }

    /// A connection a server accepted (it sends no hello: the connecting side does).
    pub(crate) fn accepted(stream: Stream, config: Config) -> Result<Connection> {
        Connection::from_parts(stream, config, None, Vec::new(), false)
    }

    /// Connect over TCP and TLS (`addr` is `host:port`; the host is the name the server's
    /// certificate must carry unless [`crate::TlsClient::server_name`] says otherwise).
    #[cfg(feature = "tls")]
    pub fn connect_tls(addr: &str, tls: &crate::TlsClient, config: Config) -> Result<Connection> {
        let session = tls.session_for(addr)?;
        let s = tcp_connect(addr, &config)?;
        if config.nodelay {
            s.set_nodelay(true)?;
        }
        Connection::over_tls(Stream::Tcp(s), config, session, true)
    }

    /// Run the TLS handshake on `stream` (bounded by `sync_request_timeout`, else 30 s),
    /// then make the connection.
    #[cfg(feature = "tls")]
    pub(crate) fn over_tls(
        mut stream: Stream,
        config: Config,
        mut session: rustls::Connection,
        connecting: bool,
    ) -> Result<Connection> {
        let limit = config
            .sync_request_timeout
            .unwrap_or(Duration::from_secs(30));
        stream.set_read_timeout(Some(limit))?;
        stream.set_write_timeout(Some(limit))?;
        let initial = crate::tls::handshake(&mut session, &mut stream)?;
        stream.set_read_timeout(None)?;
        let tls = Some(tls::Session::new(session));
        Connection::from_parts(stream, config, tls, initial, connecting)
    }

    fn from_parts(
        stream: Stream,
        config: Config,
        tls: Option<tls::Session>,
        initial: Vec<u8>,
        connecting: bool,
    ) -> Result<Connection> {
        stream.set_write_timeout(config.send_stall_timeout)?;
        let reader = stream.try_clone()?;
        let control = stream.try_clone()?;
        let service = config.service.clone().unwrap_or_else(|| Arc::new(Void));
        let shared = Shared {
            state: Mutex::new(State {
                core: Core::new(config.wire.clone(), budget()),
                outcomes: FxHashMap::default(),
                abandoned: FxHashSet::default(),
                reading: false,
                waiting: 0,
                progress: 0,
                hello: None,
                wakers: FxHashMap::default(),
                background: false,
                closed: None,
            }),
            cond: Condvar::new(),
            writer: Mutex::new(stream),
            reader: Mutex::new(ReadSide {
                stream: reader,
                frames: FrameDecoder::with_budget(
                    config.wire.limits,
                    budget(),
                    config.wire.max_inbound_memory,
                ),
                buf: Vec::new(),
                timeout: None,
                poll_skip: 0,
                poll_backoff: 0,
            }),
            control,
            releases: Mutex::new(Vec::new()),
            config,
            service,
            tls,
        };
        if !initial.is_empty() {
            let mut rd = shared.reader.lock().unwrap_or_else(|e| e.into_inner());
            rd.frames.feed(&initial)?;
        }
        let shared = Arc::new(shared);
        if connecting && shared.config.rpyc_rs_extensions {
            shared.send_hello()?;
        }
        Ok(Connection {
            shared,
            root: OnceLock::new(),
        })
    }

    /// The peer's root object (its service), fetched once (`HANDLE_GETROOT`).
    pub fn root(&self) -> Result<NetRef> {
        if let Some(r) = self.root.get() {
            return Ok(r.clone());
        }
        let r: NetRef = self.shared.call(handler::GETROOT, Vec::new())?.get()?;
        Ok(self.root.get_or_init(|| r).clone())
    }

    /// Send `data` and get it back (`HANDLE_PING`): a round trip.
    pub fn ping(&self, data: impl Into<Value>) -> Result<Value> {
        self.shared.call(handler::PING, vec![data.into()])
    }

    /// Serve the peer's requests for up to `timeout` (when this thread does not wait for
    /// anything, nobody reads: a client that expects calls from the peer while idle runs
    /// this, or [`Connection::serve_all`] on a thread). `Ok(true)` if something arrived.
    pub fn serve(&self, timeout: Duration) -> Result<bool> {
        let start = self.shared.lock().progress;
        let deadline = Instant::now() + timeout;
        match self.shared.wait(
            |st| (st.progress != start).then_some(()),
            Some(deadline),
            None,
        ) {
            Ok(()) => Ok(true),
            Err(Error::Timeout(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Serve the peer's requests until the connection closes (`Ok` when the peer closed it).
    pub fn serve_all(&self) -> Result<()> {
        match self.shared.wait(|_| None::<()>, None, None) {
            Err(Error::Closed(_)) => Ok(()),
            Err(e) => Err(e),
            Ok(()) => Ok(()),
        }
    }

    /// Close the connection: tell the peer (`HANDLE_CLOSE`), then shut the socket down.
    /// Closing twice is harmless.
    pub fn close(&self) {
        self.shared.close();
    }

    /// Whether the connection is closed (and why).
    pub fn closed(&self) -> Option<String> {
        self.shared.lock().closed.clone()
    }

    /// How many of our objects the peer holds references to (the object table).
    pub fn local_objects(&self) -> usize {
        self.shared.lock().core.objects().len()
    }

    /// The rpyc-rs features both sides use (empty with an upstream peer, or before the
    /// peer answered our hello).
    pub fn peer_features(&self) -> Vec<&'static str> {
        self.shared.lock().core.session().peer_features().to_vec()
    }

    /// The settings of this connection.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// Send the pending releases of dropped [`NetRef`]s now (they otherwise travel with the
    /// next request).
    pub fn flush(&self) -> Result<()> {
        self.shared.flush_releases(true)
    }

    /// A synchronous request with handler id `handler` (a constant of
    /// `rpyc_wire::consts::handler`) and these arguments; the boxed result. For what the
    /// typed methods of [`NetRef`] do not cover.
    pub fn request(&self, handler: i64, args: impl IntoArgs) -> Result<Value> {
        self.shared.call(handler, args.into_args())
    }
}

/// The answer to a request sent without waiting ([`NetRef::call_async`],
/// [`NetRef::call_method_async`]). Dropping it without waiting gives the answer up (the
/// references it holds are released when it arrives).
pub struct AsyncResult {
    shared: Arc<Shared>,
    id: Option<u64>,
}

impl AsyncResult {
    /// Wait for the answer, at most `sync_request_timeout` from now, and convert it.
    pub fn wait<R: FromValue>(self) -> Result<R> {
        let timeout = self.shared.config.sync_request_timeout;
        self.wait_until(timeout.map(|t| Instant::now() + t))
    }

    /// Wait for the answer at most `timeout` ([`Error::Timeout`] after that; the answer
    /// is then given up).
    pub fn wait_timeout<R: FromValue>(self, timeout: Duration) -> Result<R> {
        self.wait_until(Some(Instant::now() + timeout))
    }

    fn wait_until<R: FromValue>(mut self, deadline: Option<Instant>) -> Result<R> {
        let Some(id) = self.id.take() else {
            return Err(Error::Closed("the answer was already taken".into()));
        };
        R::from_value(self.shared.wait_reply(id, deadline)?)
    }

    /// Whether the answer has arrived (this does not read the socket: another thread
    /// waiting on the connection, or [`Connection::serve`], does).
    pub fn ready(&self) -> bool {
        let st = self.shared.lock();
        self.id
            .is_some_and(|id| st.outcomes.contains_key(&id) || st.closed.is_some())
    }
}

/// Awaiting an `AsyncResult` (any executor) gives the answer as a [`Value`]. The first one
/// awaited on a connection starts a background thread that reads and serves it, so the task
/// never blocks; `sync_request_timeout` does not apply (wrap the future in your runtime's
/// timeout).
impl Future for AsyncResult {
    type Output = Result<Value>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<Value>> {
        let Some(id) = self.id else {
            return Poll::Ready(Err(Error::Closed("the answer was already taken".into())));
        };
        let shared = self.shared.clone();
        let mut st = shared.lock();
        if let Some(outcome) = st.outcomes.remove(&id) {
            drop(st);
            self.id = None;
            return Poll::Ready(shared.outcome_value(outcome));
        }
        if let Some(why) = &st.closed {
            let why = why.clone();
            drop(st);
            self.id = None;
            return Poll::Ready(Err(Error::Closed(why)));
        }
        st.wakers.insert(id, cx.waker().clone());
        let start = !st.background;
        st.background = true;
        drop(st);
        if start {
            shared.spawn_background();
        }
        Poll::Pending
    }
}

impl Drop for AsyncResult {
    fn drop(&mut self) {
        let Some(id) = self.id.take() else { return };
        let outcome = {
            let mut st = self.shared.lock();
            st.wakers.remove(&id);
            let outcome = st.outcomes.remove(&id);
            if outcome.is_none() {
                st.abandoned.insert(id);
            }
            outcome
        };
        if let Some(Outcome::Reply(Ok(r))) = outcome {
            // Its references become proxies, dropped (released) at once.
            drop(self.shared.from_resolved(r));
        }
    }
}

impl std::fmt::Debug for AsyncResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "<rpyc::AsyncResult {}>",
            if self.ready() { "ready" } else { "pending" }
        )
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.shared.close();
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<rpyc::Connection")?;
        if let Some(why) = self.closed() {
            write!(f, " closed: {why}")?;
        }
        write!(f, ">")
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    // -- requests ------------------------------------------------------------------------

    /// A synchronous request: send, then wait (reading and serving) for the answer.
    pub(crate) fn call(self: &Arc<Self>, handler: i64, args: Vec<Value>) -> Result<Value> {
        let id = self.send_request(handler, args)?;
        let deadline = self.config.sync_request_timeout.map(|t| Instant::now() + t);
        self.wait_reply(id, deadline)
    }

    /// Send a request without waiting: its answer is taken by [`AsyncResult`].
    pub(crate) fn call_async(
        self: &Arc<Self>,
        handler: i64,
        args: Vec<Value>,
    ) -> Result<AsyncResult> {
        let id = self.send_request(handler, args)?;
        Ok(AsyncResult {
            shared: self.clone(),
            id: Some(id),
        })
    }

    /// Wait for the answer to request `id` until `deadline`.
    fn wait_reply(self: &Arc<Self>, id: u64, deadline: Option<Instant>) -> Result<Value> {
        let outcome = self.wait(|st| st.outcomes.remove(&id), deadline, Some(id))?;
        self.outcome_value(outcome)
    }

    /// A background thread that reads and serves until the connection ends (for tasks that
    /// await answers instead of reading themselves).
    fn spawn_background(self: &Arc<Self>) {
        let shared = self.clone();
        let spawned = std::thread::Builder::new()
            .name("rpyc-reader".into())
            .spawn(move || {
                let _ = shared.wait(|_| None::<()>, None, None);
            });
        if let Err(e) = spawned {
            drop(self.fail(format!("cannot start a reader thread: {e}")));
        }
    }

    fn outcome_value(self: &Arc<Self>, outcome: Outcome) -> Result<Value> {
        match outcome {
            Outcome::Reply(Ok(r)) => self.from_resolved(r),
            Outcome::Reply(Err(e)) | Outcome::Exception(Err(e)) => Err(Error::Wire(e)),
            Outcome::Exception(Ok(body)) => Err(Error::Remote(RemoteError::from_body(body))),
        }
    }

    fn send_request(self: &Arc<Self>, handler: i64, args: Vec<Value>) -> Result<u64> {
        let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let mut graveyard = Vec::new();
        let (id, bytes) = {
            let mut st = self.lock();
            if let Some(why) = &st.closed {
                return Err(Error::Closed(why.clone()));
            }
            self.queue_releases(&mut st);
            let ours = self.ours();
            let sent = serving::queue_request(
                &mut st.core,
                current_peer_thread(),
                handler,
                args,
                &ours,
                &mut graveyard,
            );
            match sent {
                Ok(id) => (id, st.core.take_outgoing()),
                Err(e) => {
                    drop(st);
                    drop(graveyard);
                    return Err(e);
                }
            }
        };
        self.write(&mut writer, &bytes)?;
        Ok(id)
    }

    /// Write `bytes` (the writer lock held); a failure closes the connection.
    fn write(&self, writer: &mut Stream, bytes: &[u8]) -> Result<()> {
        let sealed;
        let bytes = match &self.tls {
            None => bytes,
            Some(t) if bytes.is_empty() && !t.wants_write() => bytes,
            Some(t) => {
                sealed = t.encrypt(bytes).map_err(|e| {
                    let why = format!("TLS: {e}");
                    drop(self.fail(why.clone()));
                    Error::Closed(why)
                })?;
                &sealed
            }
        };
        if bytes.is_empty() {
            return Ok(());
        }
        match self.write_all(writer, bytes) {
            Ok(()) => Ok(()),
            Err(e) => {
                let why = match e.kind() {
                    ErrorKind::WouldBlock | ErrorKind::TimedOut => format!(
                        "the peer read nothing for send_stall_timeout={:?} (raise \
                         Config::send_stall_timeout if it is just slow)",
                        self.config.send_stall_timeout.unwrap_or_default()
                    ),
                    _ => format!("sending failed: {e}"),
                };
                self.fail(why.clone());
                Err(Error::Closed(why))
            }
        }
    }

    /// `write_all` that also copes with the moments the reader polls the socket without
    /// blocking (the flag is shared by both sides): "would block" is a stall only once
    /// nothing was written for `send_stall_timeout`.
    fn write_all(&self, writer: &mut Stream, mut bytes: &[u8]) -> std::io::Result<()> {
        // Since when nothing could be written (the clock is read only once a write would
        // block: on a VM without a vDSO clock every reading is a system call).
        let mut stalled_since: Option<Instant> = None;
        while !bytes.is_empty() {
            match writer.write(bytes) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => {
                    bytes = &bytes[n..];
                    stalled_since = None;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    let since = *stalled_since.get_or_insert_with(Instant::now);
                    let stalled = self
                        .config
                        .send_stall_timeout
                        .is_some_and(|t| since.elapsed() >= t);
                    if stalled {
                        return Err(e);
                    }
                    std::thread::yield_now();
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    // -- waiting and reading -------------------------------------------------------------

    /// Wait until `ready` gives something, reading and serving meanwhile (as the reader,
    /// or woken by the thread that is). `abandon`: the request to forget on timeout.
    fn wait<T>(
        self: &Arc<Self>,
        mut ready: impl FnMut(&mut State) -> Option<T>,
        deadline: Option<Instant>,
        abandon: Option<u64>,
    ) -> Result<T> {
        // The clock is read only when a deadline or TLS needs it: a server's connection
        // waits with neither, once per request, and on a VM without a vDSO clock every
        // reading is a system call.
        let timed = deadline.is_some() || self.tls.is_some();
        let started = deadline.map(|_| Instant::now());
        // (When, and how often, the reader nudges a silent TLS peer: while requests await
        // answers, whoever they belong to.)
        let mut nudge: Option<(Instant, Duration)> = None;
        let mut st = self.lock();
        loop {
            if let Some(t) = ready(&mut st) {
                return Ok(t);
            }
            if let Some(why) = &st.closed {
                return Err(Error::Closed(why.clone()));
            }
            let now = timed.then(Instant::now);
            if let (Some(d), Some(now)) = (deadline, now) {
                if now >= d {
                    if let Some(id) = abandon {
                        st.abandoned.insert(id);
                    }
                    let waited = started.map(|s| now.saturating_duration_since(s));
                    return Err(Error::Timeout(waited.unwrap_or_default()));
                }
            }
            if st.reading {
                st.waiting += 1;
                st = match deadline {
                    Some(d) => {
                        self.cond
                            .wait_timeout(st, now.map_or(Duration::ZERO, |n| d - n))
                            .unwrap_or_else(|e| e.into_inner())
                            .0
                    }
                    None => self.cond.wait(st).unwrap_or_else(|e| e.into_inner()),
                };
                st.waiting -= 1;
                continue;
            }
            st.reading = true;
            let seen = st.progress;
            let awaited = st.core.session().requests.awaited() > 0;
            nudge = match nudge {
                _ if self.tls.is_none() || !awaited => None,
                None => now.map(|n| (n + NUDGE_FIRST, NUDGE_FIRST)),
                kept => kept,
            };
            drop(st);
            let read_deadline = match (deadline, nudge) {
                (Some(d), Some((n, _))) => Some(d.min(n)),
                (None, Some((n, _))) => Some(n),
                (d, None) => d,
            };
            let poll = if abandon.is_some() {
                self.config.busy_poll
            } else {
                Duration::ZERO
            };
            let (requests, graveyard) = self.read_some(read_deadline, poll);
            st = self.lock();
            if let Some((at, every)) = nudge {
                let now = Instant::now();
                if st.progress != seen {
                    nudge = Some((now + NUDGE_FIRST, NUDGE_FIRST));
                } else if now >= at {
                    let every = (every * 2).min(NUDGE_MAX);
                    nudge = Some((now + every, every));
                    if self.tls.as_ref().is_some_and(tls::Session::nudge) {
                        st.reading = false;
                        if st.waiting > 0 {
                            self.cond.notify_all();
                        }
                        drop(st);
                        self.flush_releases(true).ok();
                        drop(graveyard);
                        st = self.lock();
                        continue;
                    }
                }
            }
            st.reading = false;
            if st.waiting > 0 {
                self.cond.notify_all();
            }
            drop(st);
            drop(graveyard);
            if !requests.is_empty() {
                for r in requests {
                    self.serve_request(r);
                }
            } else {
                // Answers the core queued (releases of an upstream peer are answered).
                self.flush_releases(false).ok();
            }
            st = self.lock();
        }
    }

    /// One read from the socket, processed: answers filed, requests returned to serve.
    /// Also returns objects to drop once no lock is held.
    fn read_some(
        self: &Arc<Self>,
        deadline: Option<Instant>,
        busy_poll: Duration,
    ) -> (Vec<Incoming>, Vec<Arc<dyn Exposed>>) {
        let mut rd = self.reader.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = rd.fit_timeout(deadline) {
            return (Vec::new(), self.fail(format!("socket error: {e}")));
        }
        let skip = rd.poll_skip > 0;
        if skip {
            rd.poll_skip -= 1;
        }
        let budget = if skip { Duration::ZERO } else { busy_poll };
        let ReadSide {
            stream,
            frames,
            buf,
            poll_backoff,
            poll_skip,
            ..
        } = &mut *rd;
        // Plain bytes go straight into the frame decoder's buffer. When it has no room to
        // lend (the budget refused; a header over the limit, whose error comes with the
        // frames below), or over TLS, they go through `buf`.
        let (room, direct): (&mut [u8], bool) = match (&self.tls, frames.read_buf()) {
            (None, Ok(room)) => (room, true),
            _ => {
                if buf.is_empty() {
                    buf.resize(READ_CHUNK, 0);
                }
                (&mut buf[..], false)
            }
        };
        let polled = match poll_read(stream, room, budget, deadline) {
            Ok(p) => p,
            Err(e) => return (Vec::new(), self.fail(format!("socket error: {e}"))),
        };
        if !budget.is_zero() {
            if polled.is_some() {
                *poll_backoff /= 2;
            } else {
                *poll_backoff = (*poll_backoff * 2).clamp(1, MAX_POLL_SKIP);
                *poll_skip = *poll_backoff;
            }
        }
        let read = match polled {
            Some(n) => Ok(n),
            None => stream.read(room),
        };
        let n = match read {
            Ok(0) => {
                return (
                    Vec::new(),
                    self.fail("connection closed by the peer".into()),
                )
            }
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                return (Vec::new(), Vec::new())
            }
            Err(e) => return (Vec::new(), self.fail(format!("socket error: {e}"))),
        };
        let mut plain = Vec::new();
        let mut tls_closed = false;
        let received: &[u8] = match &self.tls {
            None if direct => {
                frames.commit(n);
                &[]
            }
            None => &buf[..n],
            Some(t) => match t.decrypt(&buf[..n], &mut plain) {
                Ok(closed) => {
                    tls_closed = closed;
                    &plain
                }
                Err(why) => return (Vec::new(), self.fail(why)),
            },
        };
        if tls_closed && received.is_empty() {
            return (
                Vec::new(),
                self.fail("connection closed by the peer".into()),
            );
        }
        let mut waited = Duration::ZERO;
        if !received.is_empty() {
            loop {
                match frames.feed(received) {
                    Ok(()) => break,
                    // The process's inbound memory is taken by other connections: wait for
                    // room (the bytes are kept), as the Python engine does.
                    Err(WireError::MemoryBudget { .. }) if waited < BUDGET_WAIT => {
                        std::thread::sleep(BUDGET_RETRY);
                        waited += BUDGET_RETRY;
                    }
                    Err(e) => return (Vec::new(), self.fail(format!("protocol error: {e}"))),
                }
            }
        }
        // The frames complete now, inflated here, without the state lock. A frame that
        // cannot be read ends the connection once the frames before it are processed.
        let mut payloads: Vec<Payload> = Vec::new();
        let bad_frame = loop {
            match frames.next_payload() {
                Ok(Some(p)) => payloads.push(p),
                Ok(None) => break None,
                Err(WireError::MemoryBudget { .. }) if waited < BUDGET_WAIT => {
                    // An inflation paused for room: it goes on where it stopped.
                    std::thread::sleep(BUDGET_RETRY);
                    waited += BUDGET_RETRY;
                }
                Err(e) => break Some(e),
            }
        };
        drop(rd);
        let mut st = self.lock();
        if st.closed.is_some() {
            return (Vec::new(), Vec::new());
        }
        let mut requests = Vec::new();
        let mut refs = Vec::new();
        for payload in &payloads {
            let event = st.core.process(payload);
            match event {
                Ok(None) => {}
                Ok(Some(Event::Reply { id, result })) if st.hello == Some(id) => {
                    st.hello = None;
                    if let Some(both) = serving::hello_ack_features(&result) {
                        st.core.session_mut().set_peer_features(both);
                    }
                }
                Ok(Some(Event::Exception { id, .. })) if st.hello == Some(id) => {
                    st.hello = None;
                }
                Ok(Some(Event::Reply { id, result })) => {
                    if st.abandoned.remove(&id) {
                        if let Ok(boxed) = &result {
                            serving::collect_refs(boxed, &mut refs);
                        }
                    } else {
                        let result = result.map(|b| serving::resolve(st.core.objects(), b));
                        st.outcomes.insert(id, Outcome::Reply(result));
                        if let Some(w) = st.wakers.remove(&id) {
                            w.wake();
                        }
                    }
                }
                Ok(Some(Event::Exception { id, body })) => {
                    if !st.abandoned.remove(&id) {
                        st.outcomes.insert(id, Outcome::Exception(body));
                        if let Some(w) = st.wakers.remove(&id) {
                            w.wake();
                        }
                    }
                }
                Ok(Some(Event::Request {
                    seq,
                    handler,
                    thread,
                    args,
                })) => {
                    let args = args.map(|a| {
                        a.into_iter()
                            .map(|b| serving::resolve(st.core.objects(), b))
                            .collect()
                    });
                    requests.push(Incoming::Request {
                        seq,
                        handler,
                        thread,
                        args,
                    })
                }
                Ok(Some(Event::UnknownHandler {
                    seq,
                    handler,
                    thread,
                })) => requests.push(Incoming::UnknownHandler {
                    seq,
                    handler,
                    thread,
                }),
                Ok(Some(Event::Closed)) => {
                    let g = self.fail_locked(&mut st, "connection closed by the peer".into());
                    return (Vec::new(), g);
                }
                Err(e) => {
                    let g = self.fail_locked(&mut st, format!("protocol error: {e}"));
                    return (Vec::new(), g);
                }
            }
        }
        if let Some(e) = bad_frame {
            let g = self.fail_locked(&mut st, format!("protocol error: {e}"));
            return (Vec::new(), g);
        }
        st.progress += 1;
        if tls_closed {
            let g = self.fail_locked(&mut st, "connection closed by the peer".into());
            return (Vec::new(), g);
        }
        if !refs.is_empty() {
            self.releases
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(refs);
        }
        (requests, Vec::new())
    }

    /// End the connection (`why`), wake every waiter and shut the socket down. Returns the
    /// objects the peer held, to drop once no lock is held.
    fn fail(&self, why: String) -> Vec<Arc<dyn Exposed>> {
        let mut st = self.lock();
        self.fail_locked(&mut st, why)
    }

    fn fail_locked(&self, st: &mut State, why: String) -> Vec<Arc<dyn Exposed>> {
        if st.closed.is_none() {
            st.closed = Some(why.clone());
            st.core.session_mut().end(why);
            self.control.shutdown();
        }
        // (Answers already filed stay: their waiters take them before they see the end.)
        self.cond.notify_all();
        for (_, w) in st.wakers.drain() {
            w.wake();
        }
        st.core.objects_mut().take_all()
    }

    fn close(&self) {
        {
            let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
            let bytes = {
                let mut st = self.lock();
                if st.closed.is_some() {
                    return;
                }
                self.queue_releases(&mut st);
                let _ = st.core.close();
                st.core.take_outgoing()
            };
            let _ = self.write(&mut writer, &bytes);
        }
        let graveyard = self.fail("connection closed".into());
        drop(graveyard);
    }

    // -- releases ------------------------------------------------------------------------

    /// A [`NetRef`] was dropped: release the peer's object with the next frame, or now if
    /// nobody is sending.
    pub(crate) fn release(&self, id: IdPack) {
        self.releases
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(id);
        let _ = self.flush_releases(false);
    }

    /// Queue `HANDLE_DEL` for every dropped reference (the state lock held).
    fn queue_releases(&self, st: &mut State) {
        let ids = std::mem::take(&mut *self.releases.lock().unwrap_or_else(|e| e.into_inner()));
        if st.closed.is_some() {
            return;
        }
        serving::queue_releases(&mut st.core, ids);
    }

    /// Send what is queued (releases, answers the core made). `block`: wait for the locks;
    /// otherwise give up if another thread holds them (it will send them).
    fn flush_releases(&self, block: bool) -> Result<()> {
        let mut writer = if block {
            self.writer.lock().unwrap_or_else(|e| e.into_inner())
        } else {
            match self.writer.try_lock() {
                Ok(w) => w,
                Err(_) => return Ok(()),
            }
        };
        let bytes = {
            let mut st = if block {
                self.lock()
            } else {
                match self.state.try_lock() {
                    Ok(st) => st,
                    Err(_) => return Ok(()),
                }
            };
            if st.closed.is_some() {
                self.releases
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clear();
                return Ok(());
            }
            self.queue_releases(&mut st);
            st.core.take_outgoing()
        };
        self.write(&mut writer, &bytes)
    }

    // -- boxing --------------------------------------------------------------------------

    /// Whether a reference is one of this connection's (it may be sent back to the peer).
    fn ours(self: &Arc<Self>) -> impl Fn(&NetRef) -> bool + '_ {
        move |r: &NetRef| matches!(r.link(), Link::Blocking(s) if Arc::ptr_eq(s, self))
    }

    /// A proxy for a reference to the peer's object.
    fn netref(self: &Arc<Self>) -> impl Fn(IdPack) -> NetRef + '_ {
        move |id| NetRef::new(Link::Blocking(self.clone()), id)
    }

    /// A received box as a value.
    fn from_resolved(self: &Arc<Self>, r: Resolved) -> Result<Value> {
        serving::from_resolved(r, &self.netref())
    }

    fn local_object_of(&self, id: &IdPack) -> Option<Arc<dyn Exposed>> {
        let key = serving::id_key(id)?;
        self.lock().core.objects().get(key).cloned()
    }

    // -- serving the peer ----------------------------------------------------------------

    fn serve_request(self: &Arc<Self>, r: Incoming) {
        let (seq, thread, result) = match r {
            Incoming::Request {
                seq,
                handler,
                thread,
                args,
            } => {
                let result = serving_thread(thread, || {
                    let args = serving::request_args(args, &self.netref());
                    serving::dispatch(&**self, handler, args)
                });
                (seq, thread, result)
            }
            Incoming::UnknownHandler {
                seq,
                handler,
                thread,
            } => (seq, thread, Err(serving::unknown_handler(handler))),
        };
        self.answer(&seq, thread, result);
    }

    fn answer(self: &Arc<Self>, seq: &Wire, thread: u64, result: Result<Value>) {
        let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let mut graveyard = Vec::new();
        let bytes = {
            let mut st = self.lock();
            if st.closed.is_some() {
                return;
            }
            self.queue_releases(&mut st);
            let ours = self.ours();
            serving::queue_answer(&mut st.core, seq, thread, result, &ours, &mut graveyard);
            st.core.take_outgoing()
        };
        let _ = self.write(&mut writer, &bytes);
        drop(writer);
        drop(graveyard);
    }

    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    /// Offer our features to the peer: an upstream peer echoes the ping, an rpyc-rs peer
    /// answers with the features both use (read when the answer arrives).
    fn send_hello(self: &Arc<Self>) -> Result<()> {
        let id = self.send_request(handler::PING, vec![serving::hello_offer()])?;
        let mut st = self.lock();
        if st.outcomes.remove(&id).is_none() {
            st.hello = Some(id);
        }
        Ok(())
    }
}

impl Host for Shared {
    fn service(&self) -> &Arc<dyn Exposed> {
        &self.service
    }

    fn local_object(&self, id: &IdPack) -> Option<Arc<dyn Exposed>> {
        self.local_object_of(id)
    }

    fn answer_hello(&self, data: &Value) -> Option<Value> {
        if !self.config.rpyc_rs_extensions {
            return None;
        }
        let (both, ack) = serving::hello_answer(&self.service, data)?;
        self.lock().core.session_mut().set_peer_features(both);
        Some(ack)
    }
}

/// Poll the socket without blocking for up to `budget` (when the deadline leaves room):
/// `Some(n)` if something came.
fn poll_read(
    stream: &mut Stream,
    buf: &mut [u8],
    budget: Duration,
    deadline: Option<Instant>,
) -> std::io::Result<Option<usize>> {
    if budget.is_zero() {
        return Ok(None);
    }
    let start = Instant::now();
    if deadline.is_some_and(|d| d.saturating_duration_since(start) <= budget) {
        return Ok(None);
    }
    stream.set_nonblocking(true)?;
    let got = loop {
        match stream.read(buf) {
            Ok(n) => break Ok(Some(n)),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if start.elapsed() >= budget {
                    break Ok(None);
                }
                // Any other runnable thread (the peer, on a busy machine) goes first.
                std::thread::yield_now();
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => break Err(e),
        }
    };
    stream.set_nonblocking(false)?;
    got
}
