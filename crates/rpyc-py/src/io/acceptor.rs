//! The servers' accept: waits for a connection on a listening socket with the GIL released.
//! The loop around it is Python's (`Server.start`): a server may serve the connection in the
//! accepting thread, and Python code must not run below native frames, which a daemon thread
//! ended by interpreter shutdown cannot unwind through.

use super::wait::{dup_socket, wait_ready};
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
}

impl Acceptor {
    fn accept_once(&self, timeout: Duration) -> io::Result<Accepted> {
        if self.stopped.load(Ordering::SeqCst) {
            return Ok(Accepted::Nothing);
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
            // A listener shut down by close() reports EINVAL/EBADF: nothing more to accept.
            Err(_) if self.stopped.load(Ordering::SeqCst) => Ok(Accepted::Nothing),
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
        // An infinite timeout waits as long as poll() can (24 days).
        let wait = Duration::try_from_secs_f64(timeout.max(0.0)).unwrap_or(Duration::MAX);
        match crate::gil::detach(py, || self.accept_once(wait))? {
            Accepted::Client(sock) => Ok(Some(into_fd(sock))),
            Accepted::Nothing => Ok(None),
        }
    }

    /// Make `accept` refuse (at once, also one that is waiting).
    fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        let _ = self.listener.shutdown(std::net::Shutdown::Both);
    }
}
