//! Socket primitives shared by the transports and the TLS session: waiting for a socket
//! to become ready, and taking our own handle on a Python socket's descriptor.

use pyo3::prelude::*;
use socket2::Socket;
use std::io;
use std::time::Duration;

/// Result of waiting for incoming bytes.
pub enum Readable {
    /// Bytes were appended to the buffer.
    Data,
    /// Nothing arrived within the timeout.
    Timeout,
    /// The peer closed the stream.
    Eof,
}

/// Wait until the socket is readable (or writable); false on timeout.
#[cfg(unix)]
pub(crate) fn wait_ready(
    sock: &Socket,
    write: bool,
    timeout: Option<Duration>,
) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    let mut pfd = libc::pollfd {
        fd: sock.as_raw_fd(),
        events: if write { libc::POLLOUT } else { libc::POLLIN },
        revents: 0,
    };
    let ms: libc::c_int = match timeout {
        None => -1,
        // Round up: a sub-millisecond remainder must not turn into a busy poll(0) loop.
        Some(d) => d.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int,
    };
    // SAFETY: one valid pollfd, count 1.
    let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
    if rc >= 0 {
        return Ok(rc > 0);
    }
    let err = io::Error::last_os_error();
    if err.kind() == io::ErrorKind::Interrupted {
        // A signal: report "nothing yet" so the caller can run Python's signal handlers
        // (Ctrl-C must interrupt a blocked serve()).
        return Ok(false);
    }
    Err(err)
}

/// Portable fallback: emulate the wait with a read timeout and a peek.
#[cfg(not(unix))]
pub(crate) fn wait_ready(
    sock: &Socket,
    write: bool,
    timeout: Option<Duration>,
) -> io::Result<bool> {
    if write {
        return Ok(true);
    }
    sock.set_read_timeout(timeout.map(|d| d.max(Duration::from_millis(1))))?;
    let mut probe = [std::mem::MaybeUninit::<u8>::uninit(); 1];
    let res = sock.peek(&mut probe);
    sock.set_read_timeout(None)?;
    match res {
        Ok(_) => Ok(true),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// Duplicate a Python socket's descriptor so the engine owns its own handle.
#[cfg(unix)]
pub fn dup_socket(fd: i64) -> PyResult<Socket> {
    use std::os::fd::{BorrowedFd, RawFd};
    let raw = RawFd::try_from(fd)
        .map_err(|_| pyo3::exceptions::PyValueError::new_err("invalid file descriptor"))?;
    // SAFETY: the caller passes the descriptor of a socket it keeps open during this call.
    let borrowed = unsafe { BorrowedFd::borrow_raw(raw) };
    let owned = borrowed.try_clone_to_owned()?;
    let sock = Socket::from(owned);
    // Requests and replies are small writes answered at once: Nagle's algorithm would hold
    // a write back until the previous one is acknowledged (40 ms with delayed ACKs).
    // Unix sockets refuse the option; that is fine.
    let _ = sock.set_tcp_nodelay(true);
    Ok(sock)
}

#[cfg(not(unix))]
pub fn dup_socket(_fd: i64) -> PyResult<Socket> {
    Err(pyo3::exceptions::PyNotImplementedError::new_err(
        "native sockets are only used on POSIX systems; pass fd=None",
    ))
}
