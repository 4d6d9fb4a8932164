//! A TLS session over a socket, shared by one reader and one writer at a time.
//!
//! rustls keeps a connection's state in one object, so reads and writes take turns on a
//! mutex — but nobody holds it while waiting for the socket: the reader waits for
//! readability and the writer for writability with the lock released. Holding it across a
//! blocked write would deadlock two peers that both send large frames at once (each writer
//! waits for the other side to read, and neither reader could take the lock to do so).
//! The socket is non-blocking for the same reason.

use crate::io::busy_poll::BusyPoll;
use crate::io::wait::{wait_ready, Readable};
use socket2::Socket;
use std::io::{self, Read, Write};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Plaintext handed to rustls per step of a write: bounds the ciphertext buffered at once
/// (a 64 MiB frame is encrypted and sent in pieces, not copied whole).
const WRITE_CHUNK: usize = 256 * 1024;

/// Largest plaintext read the engine takes at once.
pub const READ_LIMIT: usize = 1024 * 1024;

pub struct TlsSession {
    sock: Socket,
    conn: Mutex<rustls::Connection>,
    /// Polls briefly before a read waits (`busy_poll_us` of the connection using it; none
    /// before that, e.g. during the handshake and an authenticator's exchange).
    busy_poll: BusyPoll,
}

/// A TLS-level failure (bad certificate, alert, protocol violation) carried in an
/// `io::Error` so that callers can tell it apart from socket errors.
pub fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

fn remaining(deadline: Option<Instant>) -> Option<Duration> {
    deadline.map(|d| d.saturating_duration_since(Instant::now()))
}

impl TlsSession {
    /// Run the handshake on `sock` (made non-blocking) within `timeout`.
    pub fn handshake(
        sock: Socket,
        conn: rustls::Connection,
        timeout: Duration,
    ) -> io::Result<TlsSession> {
        sock.set_nonblocking(true)?;
        let session = TlsSession {
            sock,
            conn: Mutex::new(conn),
            busy_poll: BusyPoll::new(Duration::ZERO),
        };
        let deadline = Instant::now() + timeout;
        loop {
            session.flush_until(Some(deadline))?;
            let done = {
                let mut conn = session.lock();
                // Frames are written in bounded chunks (see WRITE_CHUNK); the default limit
                // would make a chunk larger than it fail instead of being buffered.
                conn.set_buffer_limit(None);
                !conn.is_handshaking()
            };
            if done {
                return Ok(session);
            }
            if !session.wait(false, Some(deadline))? {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "TLS handshake not completed within {:.1} s",
                        timeout.as_secs_f64()
                    ),
                ));
            }
            if !session.receive()? {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the peer closed the connection during the TLS handshake \
                     (it may not speak TLS, or it rejected this side's certificate)",
                ));
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, rustls::Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wait for the socket; false when the deadline passed. A signal counts as "not yet"
    /// unless the deadline is over.
    fn wait(&self, write: bool, deadline: Option<Instant>) -> io::Result<bool> {
        loop {
            if wait_ready(&self.sock, write, remaining(deadline))? {
                return Ok(true);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(false);
            }
            if deadline.is_none() {
                // Interrupted while waiting forever: let the caller run signal handlers.
                return Ok(false);
            }
        }
    }

    /// Read available ciphertext and process it. False when the peer closed the socket.
    fn receive(&self) -> io::Result<bool> {
        let mut conn = self.lock();
        match conn.read_tls(&mut &self.sock) {
            Ok(0) => return Ok(false),
            Ok(_) => {}
            Err(e) if would_block(&e) || e.kind() == io::ErrorKind::Interrupted => return Ok(true),
            Err(e) => return Err(e),
        }
        if let Err(e) = conn.process_new_packets() {
            // Tell the peer why (rustls queued an alert), then fail.
            drop(conn);
            let _ = self.flush_nonblocking();
            return Err(tls_error(e));
        }
        Ok(true)
    }

    /// Send queued ciphertext, waiting for writability (lock released) until `deadline`.
    fn flush_until(&self, deadline: Option<Instant>) -> io::Result<()> {
        loop {
            let mut conn = self.lock();
            if !conn.wants_write() {
                return Ok(());
            }
            match conn.write_tls(&mut &self.sock) {
                Ok(_) => {}
                Err(e) if would_block(&e) || e.kind() == io::ErrorKind::Interrupted => {
                    drop(conn);
                    if !self.wait(true, deadline)? && deadline.is_some() {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "TLS peer did not accept data in time",
                        ));
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Send what the socket takes right now (alerts, session tickets, key updates).
    fn flush_nonblocking(&self) -> io::Result<()> {
        let mut conn = self.lock();
        while conn.wants_write() {
            match conn.write_tls(&mut &self.sock) {
                Ok(_) => {}
                Err(e) if would_block(&e) => break,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Move decrypted bytes into `buf`; None when none are buffered.
    fn take_plaintext(&self, buf: &mut Vec<u8>, max: usize) -> io::Result<Option<Readable>> {
        let mut conn = self.lock();
        let state = conn.process_new_packets().map_err(tls_error)?;
        let available = state.plaintext_bytes_to_read();
        if available == 0 {
            return Ok(state.peer_has_closed().then_some(Readable::Eof));
        }
        // Size the buffer by what is there, not by what a frame header announced.
        let start = buf.len();
        buf.resize(start + available.min(max).max(1), 0);
        let res = conn.reader().read(&mut buf[start..]);
        match res {
            Ok(n) => {
                buf.truncate(start + n);
                Ok(Some(if n == 0 {
                    Readable::Eof
                } else {
                    Readable::Data
                }))
            }
            Err(e) => {
                buf.truncate(start);
                Err(e)
            }
        }
    }

    /// Append at most `max` decrypted bytes to `buf`, waiting up to `timeout` (`None` =
    /// forever).
    pub fn read_into(
        &self,
        buf: &mut Vec<u8>,
        max: usize,
        timeout: Option<Duration>,
    ) -> io::Result<Readable> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            if let Some(got) = self.take_plaintext(buf, max)? {
                return Ok(got);
            }
            if !self.wait_readable(deadline)? {
                return Ok(Readable::Timeout);
            }
            if !self.receive()? {
                return Ok(Readable::Eof);
            }
            self.flush_nonblocking()?;
        }
    }

    /// Poll reads for up to `budget` before they wait (see `busy_poll`).
    pub fn set_busy_poll(&self, budget: Duration) {
        self.busy_poll.set_budget(budget);
    }

    /// `wait` for ciphertext to read, asking the socket without waiting first for up to
    /// the busy-poll budget.
    fn wait_readable(&self, deadline: Option<Instant>) -> io::Result<bool> {
        let polled = self.busy_poll.poll(remaining(deadline), || {
            match wait_ready(&self.sock, false, Some(Duration::ZERO))? {
                true => Ok(()),
                false => Err(io::ErrorKind::WouldBlock.into()),
            }
        });
        match polled {
            Some(ready) => ready.map(|()| true),
            None => self.wait(false, deadline),
        }
    }

    /// Encrypt and send all of `data`. With `stall`, fail (`TimedOut`) when the peer
    /// takes less than a chunk in that time.
    pub fn write_all(&self, data: &[u8], stall: Option<Duration>) -> io::Result<()> {
        self.write_frames(&[data], stall)
    }

    /// Encrypt and send `frames` in order, each in records of its own (never two frames in
    /// one record), flushing every `WRITE_CHUNK` bytes and at the end.
    pub fn write_frames(&self, frames: &[&[u8]], stall: Option<Duration>) -> io::Result<()> {
        let mut unflushed = 0;
        let mut sent = frames
            .iter()
            .flat_map(|frame| frame.chunks(WRITE_CHUNK))
            .try_for_each(|chunk| {
                self.lock().writer().write_all(chunk)?;
                unflushed += chunk.len();
                if unflushed < WRITE_CHUNK {
                    return Ok(());
                }
                unflushed = 0;
                self.flush_until(stall.map(|s| Instant::now() + s))
            });
        if sent.is_ok() && unflushed > 0 {
            sent = self.flush_until(stall.map(|s| Instant::now() + s));
        }
        sent.map_err(|e| self.alert_behind(e))
    }

    /// A peer that rejects us (e.g. our client certificate, which TLS 1.3 judges after the
    /// client finished its handshake) sends an alert and closes: a write then fails with a
    /// bare "broken pipe". The alert, if it arrived, names the real cause.
    fn alert_behind(&self, e: io::Error) -> io::Error {
        if e.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) {
            return e;
        }
        match self.receive() {
            Err(tls)
                if tls
                    .get_ref()
                    .is_some_and(|inner| inner.is::<rustls::Error>()) =>
            {
                tls
            }
            _ => e,
        }
    }

    /// Make the socket readable for the peer without sending it application data: a TLS 1.3
    /// KeyUpdate. False under TLS 1.2, which has nothing of the kind.
    pub fn nudge(&self) -> bool {
        if self.lock().refresh_traffic_keys().is_err() {
            return false;
        }
        self.flush_nonblocking().is_ok()
    }

    /// Decrypted bytes ready to be read without touching the socket.
    pub fn pending(&self) -> usize {
        let mut conn = self.lock();
        match conn.process_new_packets() {
            Ok(state) => state.plaintext_bytes_to_read(),
            Err(_) => 0,
        }
    }

    /// Say goodbye (close_notify, best effort) and shut the socket down so that a blocked
    /// reader wakes up.
    pub fn shutdown(&self) {
        self.lock().send_close_notify();
        let _ = self.flush_nonblocking();
        let _ = self.sock.shutdown(std::net::Shutdown::Both);
    }

    pub fn socket(&self) -> &Socket {
        &self.sock
    }

    /// Run `f` on the rustls connection (for certificate and cipher introspection).
    pub fn with_connection<T>(&self, f: impl FnOnce(&rustls::Connection) -> T) -> T {
        f(&self.lock())
    }
}
