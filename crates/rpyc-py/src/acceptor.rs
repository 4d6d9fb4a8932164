//! The servers' accept loop: waits for connections on a listening socket with the GIL
//! released and hands each accepted descriptor to a Python callback.

use crate::transport::{dup_socket, wait_ready};
use pyo3::prelude::*;
use socket2::Socket;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[pyclass(module = "rpyc._core", frozen)]
pub struct Acceptor {
    listener: Socket,
    stopped: AtomicBool,
}

enum Accepted {
    Client(Socket),
    Nothing,
    Closed,
}

impl Acceptor {
    fn accept_once(&self, timeout: Duration) -> io::Result<Accepted> {
        if self.stopped.load(Ordering::SeqCst) {
            return Ok(Accepted::Closed);
        }
        if !wait_ready(&self.listener, false, Some(timeout))? {
            return Ok(Accepted::Nothing);
        }
        match self.listener.accept() {
            Ok((sock, _addr)) => Ok(Accepted::Client(sock)),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::Interrupted
                        | io::ErrorKind::ConnectionAborted
                ) =>
            {
                Ok(Accepted::Nothing)
            }
            // A listener shut down by close() reports EINVAL/EBADF: the loop is over.
            Err(_) if self.stopped.load(Ordering::SeqCst) => Ok(Accepted::Closed),
            Err(e) => Err(e),
        }
    }
}

#[cfg(unix)]
fn into_fd(sock: Socket) -> i64 {
    use std::os::fd::IntoRawFd;
    sock.into_raw_fd() as i64
}

#[cfg(not(unix))]
fn into_fd(sock: Socket) -> i64 {
    use std::os::windows::io::IntoRawSocket;
    sock.into_raw_socket() as i64
}

#[pymethods]
impl Acceptor {
    /// Watch the listening socket whose descriptor is `fd` (duplicated; the caller keeps
    /// its own socket object).
    #[new]
    fn new(fd: i64) -> PyResult<Self> {
        Ok(Acceptor {
            listener: dup_socket(fd)?,
            stopped: AtomicBool::new(false),
        })
    }

    /// Accept one connection within `timeout` seconds; its descriptor (now owned by the
    /// caller) or None.
    fn accept(&self, py: Python<'_>, timeout: f64) -> PyResult<Option<i64>> {
        let wait = Duration::from_secs_f64(timeout.max(0.0));
        match crate::gil::detach(py, || self.accept_once(wait))? {
            Accepted::Client(sock) => Ok(Some(into_fd(sock))),
            Accepted::Nothing | Accepted::Closed => Ok(None),
        }
    }

    /// Accept until `stop()`: call `on_client(fd)` for each connection. Signals (Ctrl-C)
    /// are checked every `poll_interval` seconds.
    #[pyo3(signature = (on_client, poll_interval=0.5))]
    fn run(
        &self,
        py: Python<'_>,
        on_client: &Bound<'_, PyAny>,
        poll_interval: f64,
    ) -> PyResult<()> {
        let wait = Duration::from_secs_f64(poll_interval.clamp(0.001, 3600.0));
        loop {
            match crate::gil::detach(py, || self.accept_once(wait))? {
                Accepted::Client(sock) => {
                    on_client.call1((into_fd(sock),))?;
                }
                Accepted::Nothing => py.check_signals()?,
                Accepted::Closed => return Ok(()),
            }
        }
    }

    /// Make `run` return (within one poll interval) and `accept` refuse.
    fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        let _ = self.listener.shutdown(std::net::Shutdown::Both);
    }
}
