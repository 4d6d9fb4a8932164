//! `rpyc._core.TlsPipe`: TLS without a socket, for event loops (`rpyc.aio`). The loop hands
//! it the ciphertext that arrived and gets the plaintext out; plaintext to send goes in and
//! the ciphertext to write comes out. rustls is sans-IO itself, so this is a thin shell
//! around one `rustls::Connection`, with the same configurations, checks and error
//! messages as the blocking TLS socket.

use super::errors::{handshake_error, io_error};
use super::info;
use super::session::tls_error;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::io::{self, Read, Write};
use std::sync::{Mutex, MutexGuard};

/// Plaintext taken out of rustls per read.
const READ_STEP: usize = 64 * 1024;

#[pyclass(module = "rpyc._core", frozen)]
pub struct TlsPipe {
    conn: Mutex<PipeState>,
    verified: bool,
    server_hostname: Option<String>,
    /// Who is at the other end, for error messages.
    peer: String,
}

struct PipeState {
    conn: rustls::Connection,
    /// The peer sent close_notify.
    peer_closed: bool,
}

impl TlsPipe {
    pub fn new(
        mut conn: rustls::Connection,
        verified: bool,
        server_hostname: Option<String>,
        peer: String,
    ) -> Self {
        // Everything sent is written out at once by the caller (`outgoing`): no limit to
        // reach, and a large frame is never refused.
        conn.set_buffer_limit(None);
        TlsPipe {
            conn: Mutex::new(PipeState {
                conn,
                peer_closed: false,
            }),
            verified,
            server_hostname,
            peer,
        }
    }

    fn lock(&self) -> MutexGuard<'_, PipeState> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn failure(&self, py: Python<'_>, handshaking: bool, e: io::Error) -> PyErr {
        if handshaking {
            handshake_error(py, e, &self.peer)
        } else {
            io_error(py, e)
        }
    }
}

#[pymethods]
impl TlsPipe {
    /// Ciphertext that arrived; returns the plaintext it completed (often empty during the
    /// handshake). A TLS failure (a bad certificate, an alert, garbage) raises the `ssl`
    /// exception the blocking socket would raise.
    fn receive<'py>(&self, py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
        let mut state = self.lock();
        let mut rest = data;
        let mut plain = Vec::new();
        loop {
            let handshaking = state.conn.is_handshaking();
            if !rest.is_empty() {
                state
                    .conn
                    .read_tls(&mut rest)
                    .map_err(|e| self.failure(py, handshaking, e))?;
                state
                    .conn
                    .process_new_packets()
                    .map_err(|e| self.failure(py, handshaking, tls_error(e)))?;
            }
            // Take out the plaintext (rustls buffers a bounded amount; more ciphertext is
            // read only after that room is freed).
            loop {
                let at = plain.len();
                plain.resize(at + READ_STEP, 0);
                match state.conn.reader().read(&mut plain[at..]) {
                    Ok(0) => {
                        plain.truncate(at);
                        state.peer_closed = true;
                        break;
                    }
                    Ok(n) => plain.truncate(at + n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        plain.truncate(at);
                        break;
                    }
                    Err(e) => {
                        plain.truncate(at);
                        return Err(self.failure(py, handshaking, e));
                    }
                }
            }
            if rest.is_empty() || state.peer_closed {
                break;
            }
        }
        Ok(PyBytes::new(py, &plain))
    }

    /// Plaintext to send; `outgoing()` then returns its ciphertext.
    fn send(&self, py: Python<'_>, data: &[u8]) -> PyResult<()> {
        let mut state = self.lock();
        let handshaking = state.conn.is_handshaking();
        state
            .conn
            .writer()
            .write_all(data)
            .map_err(|e| self.failure(py, handshaking, e))
    }

    /// The ciphertext waiting to be written (handshake messages, records, alerts).
    fn outgoing<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let mut state = self.lock();
        let mut out = Vec::new();
        while state.conn.wants_write() {
            state
                .conn
                .write_tls(&mut out)
                .map_err(|e| io_error(py, e))?;
        }
        Ok(PyBytes::new(py, &out))
    }

    /// Whether the handshake is still going on.
    #[getter]
    fn handshaking(&self) -> bool {
        self.lock().conn.is_handshaking()
    }

    /// Whether the peer ended the TLS session (close_notify).
    #[getter]
    fn peer_closed(&self) -> bool {
        self.lock().peer_closed
    }

    /// Queue TLS's close_notify (then write `outgoing()`).
    fn close(&self) {
        self.lock().conn.send_close_notify();
    }

    /// As `ssl.SSLSocket.getpeercert`.
    #[pyo3(signature = (binary_form=false))]
    fn getpeercert<'py>(
        &self,
        py: Python<'py>,
        binary_form: bool,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        info::peer_cert(py, &self.lock().conn, self.verified, binary_form)
    }

    fn version(&self) -> Option<&'static str> {
        info::version(&self.lock().conn)
    }

    fn cipher(&self) -> Option<(String, &'static str, u32)> {
        info::cipher(&self.lock().conn)
    }

    #[getter]
    fn server_hostname(&self) -> Option<&str> {
        self.server_hostname.as_deref()
    }

    #[getter]
    fn server_side(&self) -> bool {
        matches!(self.lock().conn, rustls::Connection::Server(_))
    }
}
