//! `rpyc._core.TlsSocket`: an established TLS connection with the socket methods RPyC's
//! streams, servers and user code call (`recv`, `sendall`, `getpeername`, `getpeercert`,
//! `version`, `cipher`...). A connection's engine drives the same session natively.

use super::errors::io_error;
use super::info;
use super::session::TlsSession;
use crate::io::wait::Readable;
use pyo3::exceptions::PyTimeoutError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[pyclass(module = "rpyc._core", frozen)]
pub struct TlsSocket {
    session: Arc<TlsSession>,
    /// Whether the peer's certificate was verified (Python returns `{}` from
    /// `getpeercert()` for an unverified one).
    verified: bool,
    server_hostname: Option<String>,
    timeout: Mutex<Option<f64>>,
    closed: AtomicBool,
}

impl TlsSocket {
    pub fn new(session: TlsSession, verified: bool, server_hostname: Option<String>) -> Self {
        TlsSocket {
            session: Arc::new(session),
            verified,
            server_hostname,
            timeout: Mutex::new(None),
            closed: AtomicBool::new(false),
        }
    }

    /// The session, for the engine to read and write without Python in between.
    pub fn session(&self) -> Arc<TlsSession> {
        Arc::clone(&self.session)
    }

    fn timeout(&self) -> Option<Duration> {
        let secs = *self.timeout.lock().unwrap_or_else(|p| p.into_inner());
        secs.map(|s| Duration::from_secs_f64(s.max(0.0)))
    }

    fn ensure_open(&self) -> PyResult<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(pyo3::exceptions::PyOSError::new_err("TLS socket is closed"));
        }
        Ok(())
    }
}

fn address<'py>(
    py: Python<'py>,
    addr: std::io::Result<socket2::SockAddr>,
) -> PyResult<Bound<'py, PyAny>> {
    let addr = addr?;
    match addr.as_socket() {
        Some(SocketAddr::V4(a)) => Ok((a.ip().to_string(), a.port()).into_pyobject(py)?.into_any()),
        Some(SocketAddr::V6(a)) => Ok((a.ip().to_string(), a.port(), a.flowinfo(), a.scope_id())
            .into_pyobject(py)?
            .into_any()),
        None => Ok(PyTuple::empty(py).into_any()),
    }
}

#[pymethods]
impl TlsSocket {
    /// Up to `bufsize` decrypted bytes; `b""` at the end of the stream.
    fn recv<'py>(&self, py: Python<'py>, bufsize: usize) -> PyResult<Bound<'py, PyBytes>> {
        self.ensure_open()?;
        let timeout = self.timeout();
        let session = &self.session;
        let mut buf = Vec::new();
        let got = crate::gil::detach(py, || session.read_into(&mut buf, bufsize.max(1), timeout))
            .map_err(|e| io_error(py, e))?;
        match got {
            Readable::Timeout if timeout.is_some() => Err(PyTimeoutError::new_err("timed out")),
            // Interrupted while waiting forever: run Python's signal handlers, report nothing.
            Readable::Timeout => {
                py.check_signals()?;
                Ok(PyBytes::new(py, b""))
            }
            Readable::Eof => Ok(PyBytes::new(py, b"")),
            Readable::Data => Ok(PyBytes::new(py, &buf)),
        }
    }

    fn sendall(&self, py: Python<'_>, data: &[u8]) -> PyResult<()> {
        self.ensure_open()?;
        let session = &self.session;
        crate::gil::detach(py, || session.write_all(data, None)).map_err(|e| io_error(py, e))
    }

    fn send(&self, py: Python<'_>, data: &[u8]) -> PyResult<usize> {
        self.sendall(py, data)?;
        Ok(data.len())
    }

    /// Decrypted bytes readable without waiting.
    fn pending(&self) -> usize {
        self.session.pending()
    }

    fn fileno(&self) -> i64 {
        if self.closed.load(Ordering::Acquire) {
            return -1;
        }
        raw_fd(self.session.socket())
    }

    fn settimeout(&self, value: Option<f64>) {
        *self.timeout.lock().unwrap_or_else(|p| p.into_inner()) = value;
    }

    fn gettimeout(&self) -> Option<f64> {
        *self.timeout.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn setblocking(&self, flag: bool) {
        self.settimeout(if flag { None } else { Some(0.0) });
    }

    fn getpeername<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        address(py, self.session.socket().peer_addr())
    }

    fn getsockname<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        address(py, self.session.socket().local_addr())
    }

    /// `SHUT_RD`, `SHUT_WR` or `SHUT_RDWR` on the underlying socket.
    fn shutdown(&self, how: i32) -> PyResult<()> {
        let how = match how {
            0 => std::net::Shutdown::Read,
            1 => std::net::Shutdown::Write,
            _ => std::net::Shutdown::Both,
        };
        match self.session.socket().shutdown(how) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotConnected => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Send TLS's close_notify and shut the socket down; the descriptor is released when
    /// the last user (socket object or connection engine) lets go of the session.
    fn close(&self) {
        if !self.closed.swap(true, Ordering::AcqRel) {
            self.session.shutdown();
        }
    }

    /// The peer's certificate: a dict as `ssl` gives (empty when not verified, None when
    /// the peer sent none), or its DER bytes with `binary_form=True`.
    #[pyo3(signature = (binary_form=false))]
    fn getpeercert<'py>(
        &self,
        py: Python<'py>,
        binary_form: bool,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.session
            .with_connection(|c| info::peer_cert(py, c, self.verified, binary_form))
    }

    /// `"TLSv1.2"` or `"TLSv1.3"`.
    fn version(&self) -> Option<&'static str> {
        self.session.with_connection(info::version)
    }

    /// `(suite name, protocol version, secret bits)` as `ssl.SSLSocket.cipher()`.
    fn cipher(&self) -> Option<(String, &'static str, u32)> {
        self.session.with_connection(info::cipher)
    }

    #[getter]
    fn server_hostname(&self) -> Option<&str> {
        self.server_hostname.as_deref()
    }

    #[getter]
    fn server_side(&self) -> bool {
        self.session
            .with_connection(|c| matches!(c, rustls::Connection::Server(_)))
    }

    fn __repr__(&self) -> String {
        let state = if self.closed.load(Ordering::Acquire) {
            "closed".to_owned()
        } else {
            format!("fd={}", raw_fd(self.session.socket()))
        };
        format!(
            "<rpyc TlsSocket {state} {}>",
            self.version().unwrap_or("handshaking")
        )
    }
}

#[cfg(unix)]
fn raw_fd(sock: &socket2::Socket) -> i64 {
    use std::os::fd::AsRawFd;
    i64::from(sock.as_raw_fd())
}

#[cfg(windows)]
fn raw_fd(sock: &socket2::Socket) -> i64 {
    use std::os::windows::io::AsRawSocket;
    sock.as_raw_socket() as i64
}
