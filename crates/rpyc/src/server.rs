//! A threaded server: one thread per connection, as the Python `ThreadedServer`.

use crate::config::Config;
use crate::conn::Connection;
use crate::error::Result;
use crate::expose::Exposed;
use crate::transport::Stream;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
#[cfg(unix)]
use std::os::unix::net::UnixListener;
#[cfg(unix)]
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread::{self, JoinHandle};

enum Listener {
    Tcp(TcpListener),
    #[cfg(unix)]
    Unix(UnixListener, std::path::PathBuf),
}

/// Serves one object (the root each client gets: `conn.root` on the Python side) to every
/// client, each connection on its own thread, with the limits of [`Config`] (the defaults
/// are the Python servers').
///
/// ```no_run
/// struct Calc;
///
/// #[rpyc::service]
/// impl Calc {
///     fn add(&self, x: i64, y: i64) -> i64 {
///         x + y
///     }
/// }
///
/// rpyc::Server::bind("127.0.0.1:18861", Calc)?.serve_forever()?;
/// # Ok::<(), rpyc::Error>(())
/// ```
pub struct Server {
    listener: Listener,
    config: Config,
    #[cfg(feature = "tls")]
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl Server {
    /// Listen on a TCP address (port 0: any free port, see [`Server::local_addr`]).
    pub fn bind(addr: impl ToSocketAddrs, service: impl Exposed) -> Result<Server> {
        Server::bind_with(addr, Config::with_service(service))
    }

    /// Listen on a TCP address; the root is `config.service`.
    pub fn bind_with(addr: impl ToSocketAddrs, config: Config) -> Result<Server> {
        let listener = TcpListener::bind(addr).map_err(|e| {
            crate::Error::Io(io::Error::new(
                e.kind(),
                format!("cannot listen: {e} (is another server using the port?)"),
            ))
        })?;
        Ok(Server {
            listener: Listener::Tcp(listener),
            config,
            #[cfg(feature = "tls")]
            tls: None,
        })
    }

    /// Listen on a TCP address and serve over TLS (each client's handshake runs on its own
    /// thread, bounded by `sync_request_timeout`).
    #[cfg(feature = "tls")]
    pub fn bind_tls(
        addr: impl ToSocketAddrs,
        service: impl Exposed,
        tls: &crate::TlsServer,
    ) -> Result<Server> {
        let config = tls.config()?;
        let mut server = Server::bind(addr, service)?;
        server.tls = Some(config);
        Ok(server)
    }

    /// Listen on a Unix domain socket (the path must not exist).
    #[cfg(unix)]
    pub fn bind_unix(path: impl AsRef<Path>, service: impl Exposed) -> Result<Server> {
        let path = path.as_ref();
        let listener = UnixListener::bind(path).map_err(|e| {
            crate::Error::Io(io::Error::new(
                e.kind(),
                format!("cannot listen on {}: {e}", path.display()),
            ))
        })?;
        Ok(Server {
            listener: Listener::Unix(listener, path.to_owned()),
            config: Config::with_service(service),
            #[cfg(feature = "tls")]
            tls: None,
        })
    }

    /// The TCP address listened on (`None` for a Unix socket).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match &self.listener {
            Listener::Tcp(l) => l.local_addr().ok(),
            #[cfg(unix)]
            Listener::Unix(..) => None,
        }
    }

    /// How to wake the accept loop: connect to it.
    fn waker(&self) -> Waker {
        match &self.listener {
            Listener::Tcp(l) => Waker(l.local_addr().ok().map(Endpoint::Tcp)),
            #[cfg(unix)]
            Listener::Unix(_, path) => Waker(Some(Endpoint::Unix(path.clone()))),
        }
    }

    /// Accept and serve clients until the listener fails.
    pub fn serve_forever(self) -> Result<()> {
        let stop = Arc::new(AtomicBool::new(false));
        let live = Arc::new(Mutex::new(Vec::new()));
        self.accept_loop(&stop, &live)
    }

    /// Serve on a background thread; the handle stops it.
    pub fn spawn(self) -> Result<ServerHandle> {
        let addr = self.local_addr();
        let waker = self.waker();
        let stop = Arc::new(AtomicBool::new(false));
        let live: Arc<Mutex<Vec<Weak<Connection>>>> = Arc::new(Mutex::new(Vec::new()));
        let (s, l) = (stop.clone(), live.clone());
        let thread = thread::Builder::new()
            .name("rpyc-accept".into())
            .spawn(move || {
                let _ = self.accept_loop(&s, &l);
            })?;
        Ok(ServerHandle {
            addr,
            waker,
            stop,
            live,
            thread: Some(thread),
        })
    }

    fn accept_loop(
        &self,
        stop: &AtomicBool,
        live: &Arc<Mutex<Vec<Weak<Connection>>>>,
    ) -> Result<()> {
        loop {
            let accepted = match &self.listener {
                Listener::Tcp(l) => l.accept().map(|(s, _)| Stream::Tcp(s)),
                #[cfg(unix)]
                Listener::Unix(l, _) => l.accept().map(|(s, _)| Stream::Unix(s)),
            };
            if stop.load(Ordering::SeqCst) {
                return Ok(());
            }
            let stream = match accepted {
                Ok(s) => s,
                // A client that gave up before we accepted it, or too many open files:
                // keep serving the others.
                Err(e) if is_transient(&e) => {
                    thread::sleep(std::time::Duration::from_millis(10));
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            if let Stream::Tcp(s) = &stream {
                if self.config.nodelay {
                    let _ = s.set_nodelay(true);
                }
            }
            let config = self.config.clone();
            #[cfg(feature = "tls")]
            let tls = self.tls.clone();
            let live = live.clone();
            let spawned = thread::Builder::new()
                .name("rpyc-conn".into())
                .spawn(move || {
                    #[cfg(feature = "tls")]
                    let made = match tls {
                        Some(tls) => crate::tls::server_session(&tls)
                            .and_then(|s| Connection::over_tls(stream, config, s, false)),
                        None => Connection::accepted(stream, config),
                    };
                    #[cfg(not(feature = "tls"))]
                    let made = Connection::accepted(stream, config);
                    let Ok(conn) = made else { return };
                    let conn = Arc::new(conn);
                    {
                        let mut live = live.lock().unwrap_or_else(|e| e.into_inner());
                        live.retain(|w| w.strong_count() > 0);
                        live.push(Arc::downgrade(&conn));
                    }
                    let _ = conn.serve_all();
                    conn.close();
                });
            if spawned.is_err() {
                // No thread for it: the connection is dropped (closed) right away.
                continue;
            }
        }
    }
}

pub(crate) fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    ) || e.raw_os_error() == Some(24) // EMFILE
        || e.raw_os_error() == Some(23) // ENFILE
}

/// A server running on a background thread ([`Server::spawn`]).
pub struct ServerHandle {
    addr: Option<SocketAddr>,
    waker: Waker,
    stop: Arc<AtomicBool>,
    live: Arc<Mutex<Vec<Weak<Connection>>>>,
    thread: Option<JoinHandle<()>>,
}

impl ServerHandle {
    /// The TCP address listened on.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.addr
    }

    /// How many connections are being served.
    pub fn connections(&self) -> usize {
        let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.iter()
            .filter_map(Weak::upgrade)
            .filter(|c| c.closed().is_none())
            .count()
    }

    /// Stop accepting, close every connection, and wait for the accept thread.
    pub fn close(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop (it checks `stop` after each accept).
        let woken = self.waker.wake();
        let conns: Vec<_> = {
            let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
            live.iter().filter_map(Weak::upgrade).collect()
        };
        for c in conns {
            c.close();
        }
        if let Some(t) = self.thread.take() {
            if woken {
                let _ = t.join();
            }
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

enum Endpoint {
    Tcp(SocketAddr),
    #[cfg(unix)]
    Unix(std::path::PathBuf),
}

/// Connects to a listener so that its blocked `accept` returns.
struct Waker(Option<Endpoint>);

impl Waker {
    fn wake(&self) -> bool {
        match &self.0 {
            Some(Endpoint::Tcp(a)) => TcpStream::connect(a).is_ok(),
            #[cfg(unix)]
            Some(Endpoint::Unix(p)) => std::os::unix::net::UnixStream::connect(p).is_ok(),
            None => false,
        }
    }
}
