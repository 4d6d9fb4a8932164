//! The tokio accept loop: one task per connection, with the limits of the threaded server
//! (the per-connection [`Config`] limits and the process-wide inbound memory budget).

use super::{Cmd, Connection, Shared};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::expose::Exposed;
use crate::server::is_transient;
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

/// The connections being served, to close them with the server.
type Live = Arc<Mutex<Vec<Weak<Shared>>>>;

/// Serves one object (the root each client gets: `conn.root` on the Python side) to every
/// client, each connection driven by its own task; requests run on the runtime's blocking
/// pool. The limits are those of [`Config`] (the defaults are the Python servers').
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
        })
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
        self.accept_loop(Arc::new(Mutex::new(Vec::new()))).await
    }

    /// Serve on a task of the current runtime; the handle stops it.
    pub fn spawn(self) -> Result<ServerHandle> {
        let runtime = ::tokio::runtime::Handle::try_current().map_err(|_| {
            Error::Io(std::io::Error::other(
                "rpyc::tokio::Server::spawn must be called within a tokio runtime",
            ))
        })?;
        let addr = self.local_addr();
        let live: Live = Arc::new(Mutex::new(Vec::new()));
        let task = runtime.spawn(self.accept_loop(live.clone()));
        Ok(ServerHandle { addr, live, task })
    }

    async fn accept_loop(self, live: Live) -> Result<()> {
        loop {
            let made = match &self.listener {
                Listener::Tcp(l) => match l.accept().await {
                    Ok((s, _)) => {
                        if self.config.nodelay {
                            let _ = s.set_nodelay(true);
                        }
                        Ok(Connection::start(s, self.config.clone(), false))
                    }
                    Err(e) => Err(e),
                },
                #[cfg(unix)]
                Listener::Unix(l) => match l.accept().await {
                    Ok((s, _)) => Ok(Connection::start(s, self.config.clone(), false)),
                    Err(e) => Err(e),
                },
            };
            let conn = match made {
                Ok(Ok(conn)) => conn,
                // (No runtime: cannot happen within the accept task.)
                Ok(Err(_)) => continue,
                // A client that gave up before we accepted it, or too many open files:
                // keep serving the others.
                Err(e) if is_transient(&e) => {
                    ::tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            {
                let mut live = live.lock().unwrap_or_else(|e| e.into_inner());
                live.retain(|w| w.strong_count() > 0);
                live.push(Arc::downgrade(&conn.shared));
            }
            // The connection lives until either side ends it (its driver is its own task).
            ::tokio::spawn(async move {
                conn.wait_closed().await;
            });
        }
    }
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
            .filter_map(Weak::upgrade)
            .filter(|s| s.closed.borrow().is_none())
            .count()
    }

    /// Stop accepting and close every connection.
    pub fn close(self) {}

    fn shutdown(&mut self) {
        self.task.abort();
        let live = std::mem::take(&mut *self.live.lock().unwrap_or_else(|e| e.into_inner()));
        for s in live.iter().filter_map(Weak::upgrade) {
            let _ = s.cmds.send(Cmd::Close);
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}
