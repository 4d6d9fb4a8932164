//! The tokio accept loop: one task per connection, with the limits of the threaded server
//! (the per-connection [`Config`] limits and the process-wide inbound memory budget).

use super::{Cmd, Connection, Shared};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::expose::Exposed;
use crate::server::is_transient;
use ::tokio::io::{AsyncRead, AsyncWrite};
use ::tokio::net::{TcpListener, ToSocketAddrs};
use ::tokio::task::JoinHandle;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

enum Listener {
    Tcp(TcpListener),
    #[cfg(unix)]
    Unix(::tokio::net::UnixListener),
}

/// The connections being served, to close them with the server (`None` once it is closed:
/// a connection whose TLS handshake ends after that closes at once).
type Live = Arc<Mutex<Option<Vec<Weak<Shared>>>>>;

/// Serves one object (the root each client gets: `conn.root` on the Python side) to every
/// client, each connection driven by its own task; requests run on the runtime's blocking
/// pool, except calls of `async fn` methods, awaited as tasks. The limits are those of
/// [`Config`] (the defaults are the Python servers').
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
/// # async fn run() -> rpyc::Result<()> {
/// rpyc::tokio::Server::bind("127.0.0.1:18861", Calc).await?.serve_forever().await?;
/// # Ok(())
/// # }
/// ```
pub struct Server {
    listener: Listener,
    config: Config,
    /// Over TLS: the configuration every accepted connection's session starts from.
    #[cfg(feature = "tls")]
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl Server {
    /// Listen on a TCP address (port 0: any free port, see [`Server::local_addr`]).
    pub async fn bind(addr: impl ToSocketAddrs, service: impl Exposed) -> Result<Server> {
        Server::bind_with(addr, Config::with_service(service)).await
    }

    /// Listen on a TCP address; the root is `config.service`.
    pub async fn bind_with(addr: impl ToSocketAddrs, config: Config) -> Result<Server> {
        let listener = TcpListener::bind(addr).await.map_err(|e| {
            Error::Io(std::io::Error::new(
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

    /// Listen on a TCP address and serve over TLS: the certificates are those of
    /// [`crate::Server::bind_tls`] (a client certificate is required when
    /// `client_ca_file` is given, and checked against it). Each client's handshake runs in
    /// its own task, bounded by `sync_request_timeout` (30 s when unset), so a client that
    /// stalls it delays nobody else.
    #[cfg(feature = "tls")]
    pub async fn bind_tls(
        addr: impl ToSocketAddrs,
        service: impl Exposed,
        tls: &crate::TlsServer,
    ) -> Result<Server> {
        Server::bind_tls_with(addr, Config::with_service(service), tls).await
    }

    /// [`Server::bind_tls`] with these settings; the root is `config.service`.
    #[cfg(feature = "tls")]
    pub async fn bind_tls_with(
        addr: impl ToSocketAddrs,
        config: Config,
        tls: &crate::TlsServer,
    ) -> Result<Server> {
        let tls = tls.config()?;
        let mut server = Server::bind_with(addr, config).await?;
        server.tls = Some(tls);
        Ok(server)
    }

    /// Listen on a Unix domain socket (the path must not exist). Call it within a tokio
    /// runtime.
    #[cfg(unix)]
    pub fn bind_unix(path: impl AsRef<std::path::Path>, service: impl Exposed) -> Result<Server> {
        let path = path.as_ref();
        let listener = ::tokio::net::UnixListener::bind(path).map_err(|e| {
            Error::Io(std::io::Error::new(
                e.kind(),
                format!("cannot listen on {}: {e}", path.display()),
            ))
        })?;
        Ok(Server {
            listener: Listener::Unix(listener),
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
            Listener::Unix(_) => None,
        }
    }

    /// Accept and serve clients until the listener fails.
    pub async fn serve_forever(self) -> Result<()> {
        self.accept_loop(Arc::new(Mutex::new(Some(Vec::new()))))
            .await
    }

    /// Serve on a task of the current runtime; the handle stops it.
    pub fn spawn(self) -> Result<ServerHandle> {
        let runtime = ::tokio::runtime::Handle::try_current().map_err(|_| {
            Error::Io(std::io::Error::other(
                "rpyc::tokio::Server::spawn must be called within a tokio runtime",
            ))
        })?;
        let addr = self.local_addr();
        let live: Live = Arc::new(Mutex::new(Some(Vec::new())));
        let task = runtime.spawn(self.accept_loop(live.clone()));
        Ok(ServerHandle { addr, live, task })
    }

    async fn accept_loop(self, live: Live) -> Result<()> {
        loop {
            let accepted = match &self.listener {
                Listener::Tcp(l) => l.accept().await.map(|(s, _)| {
                    if self.config.nodelay {
                        let _ = s.set_nodelay(true);
                    }
                    self.serve(s, &live)
                }),
                #[cfg(unix)]
                Listener::Unix(l) => l.accept().await.map(|(s, _)| self.serve(s, &live)),
            };
            match accepted {
                Ok(()) => {}
                // A client that gave up before we accepted it, or too many open files:
                // keep serving the others.
                Err(e) if is_transient(&e) => {
                    ::tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Serve an accepted stream in a task of its own (its TLS handshake first, if any); the
    /// connection lives until either side ends it.
    fn serve<S>(&self, stream: S, live: &Live)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let config = self.config.clone();
        #[cfg(feature = "tls")]
        let tls = self.tls.clone();
        let live = live.clone();
        ::tokio::spawn(async move {
            #[cfg(feature = "tls")]
            let made = match tls {
                Some(tls) => start_tls(stream, config, &tls).await,
                None => Connection::start(stream, config, false, None, Vec::new()),
            };
            #[cfg(not(feature = "tls"))]
            let made = Connection::start(stream, config, false, None, Vec::new());
            // (A failed handshake: that client is gone, the server goes on.)
            let Ok(conn) = made else { return };
            {
                let mut live = live.lock().unwrap_or_else(|e| e.into_inner());
                let Some(live) = live.as_mut() else {
                    return conn.close();
                };
                live.retain(|w| w.strong_count() > 0);
                live.push(Arc::downgrade(&conn.shared));
            }
            conn.wait_closed().await;
        });
    }
}

/// The server side of a TLS connection: the handshake, then the driver.
#[cfg(feature = "tls")]
async fn start_tls<S>(
    mut stream: S,
    config: Config,
    tls: &Arc<rustls::ServerConfig>,
) -> Result<Connection>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut session = crate::tls::server_session(tls)?;
    let limit = config.sync_request_timeout;
    let initial = super::tls::handshake(&mut session, &mut stream, limit).await?;
    let session = crate::tls::Session::new(session);
    Connection::start(stream, config, false, Some(session), initial)
}

/// A server running on a task ([`Server::spawn`]). Dropping it stops accepting and closes
/// every connection, as [`ServerHandle::close`] does.
pub struct ServerHandle {
    addr: Option<SocketAddr>,
    live: Live,
    task: JoinHandle<Result<()>>,
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
            .flatten()
            .filter_map(Weak::upgrade)
            .filter(|s| s.closed.borrow().is_none())
            .count()
    }

    /// Stop accepting and close every connection.
    pub fn close(self) {}

    fn shutdown(&mut self) {
        self.task.abort();
        let live = self.live.lock().unwrap_or_else(|e| e.into_inner()).take();
        for s in live.iter().flatten().filter_map(Weak::upgrade) {
            let _ = s.cmds.send(Cmd::Close);
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}
