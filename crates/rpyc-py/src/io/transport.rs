//! Byte transports under a connection: a native socket (TCP or Unix, read and written with
//! the GIL released) or any Python object with upstream's `Stream` interface (TLS sockets,
//! pipes, user streams), driven through Python calls.

use pyo3::exceptions::PyEOFError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use socket2::Socket;
use std::io::{self, IoSlice};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::busy_poll::BusyPoll;
use super::held::HeldFrames;
use super::outgoing::{skip_bytes, Outgoing};
use super::wait::{dup_socket, wait_ready, Readable};
use crate::tls::session::{TlsSession, READ_LIMIT as TLS_READ_LIMIT};
use crate::tls::socket::TlsSocket;

pub enum Transport {
    Socket(Arc<NativeSocket>),
    Tls(Arc<TlsSession>),
    Python(Py<PyAny>),
}

/// A socket the engine reads and writes itself, with the receive timeout it last set (so
/// that a timed read costs no extra system call: no poll(), no setsockopt() per read).
pub struct NativeSocket {
    sock: Socket,
    /// SO_RCVTIMEO currently on the socket, in µs (0: none).
    rcvtimeo_us: AtomicU64,
    /// Acknowledge each read at once (see `quick_ack`); off once the peer is known to send
    /// without Nagle's algorithm.
    quick_ack: AtomicBool,
    /// Polls briefly before a read blocks (`busy_poll_us`).
    busy_poll: BusyPoll,
}

impl NativeSocket {
    fn new(sock: Socket, busy_poll: Duration) -> Self {
        NativeSocket {
            sock,
            rcvtimeo_us: AtomicU64::new(0),
            quick_ack: AtomicBool::new(true),
            busy_poll: BusyPoll::new(busy_poll),
        }
    }

    /// Make a blocking read return within `left`. The socket keeps the setting, so most
    /// reads need no system call for it: it is changed only when it would overshoot, and
    /// then set to half of what is left (a sync request's next read then fits again).
    fn arm_timeout(&self, left: Duration) -> io::Result<()> {
        let left_us = u64::try_from(left.as_micros()).unwrap_or(u64::MAX);
        let current = self.rcvtimeo_us.load(Ordering::Relaxed);
        if current != 0 && current <= left_us {
            return Ok(());
        }
        let new_us = (left_us / 2).max(left_us.min(1000)).max(1);
        self.sock
            .set_read_timeout(Some(Duration::from_micros(new_us)))?;
        self.rcvtimeo_us.store(new_us, Ordering::Relaxed);
        Ok(())
    }
}

pub fn eof_error(what: impl std::fmt::Display) -> PyErr {
    PyEOFError::new_err(what.to_string())
}

impl Transport {
    /// The transport for `stream`: `native` is a TLS socket or a socket descriptor the
    /// engine reads and writes itself (a descriptor is duplicated, so the engine owns its
    /// handle); `None` drives `stream` through its Python methods. Reads from a socket
    /// descriptor or a TLS socket poll for up to `busy_poll` before they block.
    pub fn attach(
        stream: &Bound<'_, PyAny>,
        native: Option<&Bound<'_, PyAny>>,
        busy_poll: Duration,
    ) -> PyResult<Self> {
        match native {
            Some(tls) if tls.is_instance_of::<TlsSocket>() => {
                let session = tls.cast::<TlsSocket>()?.get().session();
                session.set_busy_poll(busy_poll);
                Ok(Transport::Tls(session))
            }
            Some(fd) => Ok(Transport::Socket(Arc::new(NativeSocket::new(
                dup_socket(fd.extract()?)?,
                busy_poll,
            )))),
            None => Ok(Transport::Python(stream.clone().unbind())),
        }
    }

    /// Another handle on the same transport (for use without holding the engine's lock).
    pub fn clone_ref(&self, py: Python<'_>) -> Self {
        match self {
            Transport::Socket(s) => Transport::Socket(Arc::clone(s)),
            Transport::Tls(s) => Transport::Tls(Arc::clone(s)),
            Transport::Python(o) => Transport::Python(o.clone_ref(py)),
        }
    }

    /// Append at least one and at most `max` bytes to `buf` (at most `want`, the bytes the
    /// next frame still needs, from streams that do not read ahead: TLS, Python streams),
    /// waiting up to `timeout` (`None` = forever). Native transports read with the GIL
    /// released.
    pub fn read_into(
        &self,
        py: Python<'_>,
        buf: &mut Vec<u8>,
        want: usize,
        max: usize,
        timeout: Option<Duration>,
    ) -> PyResult<Readable> {
        match self {
            Transport::Socket(sock) => {
                let sock: &NativeSocket = sock;
                crate::gil::detach(py, || socket_read(sock, buf, max, timeout))
                    .map_err(|e| eof_error(format!("connection lost: {e}")))
            }
            Transport::Tls(session) => {
                let max = want.min(max).clamp(1, TLS_READ_LIMIT);
                crate::gil::detach(py, || session.read_into(buf, max, timeout)).map_err(|e| {
                    eof_error(format!("connection lost: {}", crate::tls::describe(&e)))
                })
            }
            Transport::Python(stream) => {
                let stream = stream.bind(py);
                let secs = timeout.map(|d| d.as_secs_f64());
                let ready = stream
                    .call_method1(intern!(py, "poll"), (secs,))?
                    .is_truthy()?;
                if !ready {
                    return Ok(Readable::Timeout);
                }
                let data = stream.call_method1(intern!(py, "read"), (want,))?;
                let data = data.cast::<PyBytes>()?;
                if data.as_bytes().is_empty() {
                    return Ok(Readable::Eof);
                }
                buf.extend_from_slice(data.as_bytes());
                Ok(Readable::Data)
            }
        }
    }

    /// Write the `held` frames (native transports only hold any), then `frame`. The caller
    /// holds the connection's send gate. A native transport (socket, TLS) is written without
    /// the GIL and fails with `SendStalled` when its peer reads nothing for `stall`; a Python
    /// stream's own `write` decides how long it blocks.
    pub fn write_frames(
        &self,
        py: Python<'_>,
        held: &HeldFrames,
        frame: &Outgoing,
        stall: Option<Duration>,
    ) -> PyResult<()> {
        match self {
            Transport::Socket(sock) => {
                let all = socket_parts(held, &frame.parts(py));
                let total: usize = all.iter().map(|p| p.len()).sum();
                // A small frame is first offered to the socket with the GIL held, in a send
                // that cannot block: when it all fits (the usual case) that costs less than
                // handing the GIL to another thread and waiting to get it back. With 8
                // clients on one server, a third of the server's time went to those
                // hand-overs (futex).
                let sent = if total <= SEND_WITH_GIL {
                    send_now(&sock.sock, &all).map_err(|e| self.write_error(&e, stall))?
                } else {
                    0
                };
                if sent == total {
                    return Ok(());
                }
                let rest = skip_bytes(&all, sent);
                crate::gil::detach(py, || socket_write_parts(&sock.sock, &rest, stall))
                    .map_err(|e| self.write_error(&e, stall))
            }
            Transport::Tls(_) => {
                let parts = frame.parts(py);
                crate::gil::detach(py, || self.write_frames_native(held, &parts, stall))
                    .map_err(|e| self.write_error(&e, stall))
            }
            Transport::Python(stream) => {
                // (Releases are held here only while another write is under way.)
                let parts = frame.parts(py);
                let bytes = match (held.is_empty(), parts.as_slice()) {
                    (true, []) => return Ok(()),
                    (true, [whole]) => PyBytes::new(py, whole),
                    (false, []) => PyBytes::new(py, held.bytes()),
                    _ => PyBytes::new(py, &[&[held.bytes()][..], &parts].concat().concat()),
                };
                stream
                    .bind(py)
                    .call_method1(intern!(py, "write"), (bytes,))?;
                Ok(())
            }
        }
    }

    /// A second handle on a native transport, taken without the GIL (None for Python streams).
    pub fn native(&self) -> Option<Transport> {
        match self {
            Transport::Socket(s) => Some(Transport::Socket(Arc::clone(s))),
            Transport::Tls(s) => Some(Transport::Tls(Arc::clone(s))),
            Transport::Python(_) => None,
        }
    }

    /// Write the `held` frames, then the frame made of `parts` (may be none), to a native
    /// transport without the GIL. A socket takes them in one vectored write where it can
    /// (nothing is copied together). Over TLS each frame gets records of its own: a peer
    /// that polls the socket before each frame (upstream over OpenSSL) would not see a
    /// second frame waiting inside the first one's record.
    pub fn write_frames_native(
        &self,
        held: &HeldFrames,
        parts: &[&[u8]],
        stall: Option<Duration>,
    ) -> io::Result<()> {
        match self {
            Transport::Socket(sock) => {
                socket_write_parts(&sock.sock, &socket_parts(held, parts), stall)
            }
            Transport::Tls(session) => {
                let frames: Vec<&[u8]> = held.frames().chain(parts.iter().copied()).collect();
                session.write_frames(&frames, stall)
            }
            Transport::Python(_) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "a Python stream is written with the GIL held",
            )),
        }
    }

    /// The Python error for a failed native write.
    pub fn write_error(&self, e: &io::Error, stall: Option<Duration>) -> PyErr {
        stalled(e, stall).unwrap_or_else(|| {
            if matches!(self, Transport::Tls(_)) {
                eof_error(format!("connection lost: {}", crate::tls::describe(e)))
            } else {
                eof_error(format!("connection lost: {e}"))
            }
        })
    }

    /// Shut a native transport down without the GIL (Python streams are left alone).
    pub fn shutdown_native(&self) {
        match self {
            Transport::Socket(sock) => {
                let _ = sock.sock.shutdown(std::net::Shutdown::Both);
            }
            Transport::Tls(session) => session.shutdown(),
            Transport::Python(_) => {}
        }
    }

    /// Whether reads force immediate TCP acknowledgements (needed while the peer may hold a
    /// second small message back with Nagle's algorithm, as upstream does).
    pub fn set_quick_ack(&self, on: bool) {
        if let Transport::Socket(sock) = self {
            sock.quick_ack.store(on, Ordering::Relaxed);
        }
    }

    /// Shut the transport down so that blocked readers wake up with EOF.
    pub fn shutdown(&self, py: Python<'_>) {
        match self {
            Transport::Socket(sock) => {
                let _ = sock.sock.shutdown(std::net::Shutdown::Both);
            }
            Transport::Tls(session) => session.shutdown(),
            Transport::Python(stream) => {
                let _ = stream.bind(py).call_method0(intern!(py, "close"));
            }
        }
    }
}

/// The first `max` bytes of `buf`'s spare capacity, to receive into.
fn spare(buf: &mut Vec<u8>, max: usize) -> &mut [std::mem::MaybeUninit<u8>] {
    let room = buf.spare_capacity_mut();
    let n = room.len().min(max);
    &mut room[..n]
}

fn would_block(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

fn socket_read(
    native: &NativeSocket,
    buf: &mut Vec<u8>,
    max: usize,
    timeout: Option<Duration>,
) -> io::Result<Readable> {
    let sock = &native.sock;
    let deadline = timeout.map(|t| Instant::now() + t);
    match timeout {
        // Nothing left: only what is already there.
        Some(t) if t.is_zero() && !wait_ready(sock, false, timeout)? => {
            return Ok(Readable::Timeout);
        }
        Some(t) if t.is_zero() => {}
        // The read itself blocks with the socket's receive timeout: no poll() first.
        Some(t) => native.arm_timeout(t)?,
        // Without a timeout the read blocks (or returns when an earlier receive timeout
        // runs out: the wait below then continues). A signal interrupts it either way.
        None => {}
    }
    // `max` is what the frame decoder planned (and charged to the memory budget).
    super::bigbuf::reserve(buf, max);
    let mut polled = native
        .busy_poll
        .poll(timeout, || sock.recv_with_flags(spare(buf, max), DONT_WAIT));
    loop {
        let received = match polled.take() {
            Some(received) => received,
            None => sock.recv(spare(buf, max)),
        };
        match received {
            Ok(0) => return Ok(Readable::Eof),
            Ok(n) => {
                // SAFETY: recv initialized the first n bytes of the spare capacity.
                unsafe { buf.set_len(buf.len() + n) };
                if native.quick_ack.load(Ordering::Relaxed) {
                    quick_ack(sock);
                }
                return Ok(Readable::Data);
            }
            // A signal: let the caller run Python's handlers (Ctrl-C), then read again.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(Readable::Timeout),
            // The receive timeout ran out, or the descriptor is non-blocking: wait for
            // what is left of the caller's time.
            Err(e) if would_block(&e) || e.kind() == io::ErrorKind::TimedOut => {
                let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
                if !wait_ready(sock, false, left)? {
                    return Ok(Readable::Timeout);
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// `send` flag that keeps a blocking socket from blocking in the kernel.
#[cfg(unix)]
const DONT_WAIT: std::ffi::c_int = libc::MSG_DONTWAIT;
#[cfg(not(unix))]
const DONT_WAIT: std::ffi::c_int = 0;

/// The held frames, then `parts`, as one list of slices for a socket (empty ones left out).
fn socket_parts<'a>(held: &'a HeldFrames, parts: &[&'a [u8]]) -> Vec<&'a [u8]> {
    std::iter::once(held.bytes())
        .chain(parts.iter().copied())
        .filter(|p| !p.is_empty())
        .collect()
}

/// Largest frame offered to the socket with the GIL held (see `Transport::write_frames`):
/// copying it into the kernel is quick. Only where a send can be told not to block.
#[cfg(unix)]
const SEND_WITH_GIL: usize = 16 * 1024;
#[cfg(not(unix))]
const SEND_WITH_GIL: usize = 0;

/// One send of `parts` that never blocks; the number of bytes the socket took (0 when its
/// buffer is full).
fn send_now(sock: &Socket, parts: &[&[u8]]) -> io::Result<usize> {
    match sock.send_vectored_with_flags(&io_slices(parts), DONT_WAIT) {
        Ok(n) => Ok(n),
        Err(e) if would_block(&e) => Ok(0),
        Err(e) => Err(e),
    }
}

/// At most this many slices go to one vectored send (POSIX guarantees 16; Linux takes 1024).
const MAX_SLICES: usize = 512;

/// The first `MAX_SLICES` of `parts`, for one vectored send.
fn io_slices<'a>(parts: &[&'a [u8]]) -> Vec<IoSlice<'a>> {
    parts
        .iter()
        .take(MAX_SLICES)
        .map(|p| IoSlice::new(p))
        .collect()
}

/// Write all of `parts`, in order, in as few (vectored) sends as the socket takes; with
/// `stall`, give up (`TimedOut`) once the peer has taken no byte for that long. The engine's
/// sockets are blocking, so the sends must not wait in the kernel (which cannot time out):
/// they wait in `poll`.
fn socket_write_parts(sock: &Socket, parts: &[&[u8]], stall: Option<Duration>) -> io::Result<()> {
    let flags = if stall.is_some() { DONT_WAIT } else { 0 };
    let mut rest = skip_bytes(parts, 0);
    let mut progress = Instant::now();
    while !rest.is_empty() {
        match sock.send_vectored_with_flags(&io_slices(&rest), flags) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "socket closed")),
            Ok(n) => {
                rest = skip_bytes(&rest, n);
                progress = Instant::now();
            }
            Err(e) if would_block(&e) => {
                let left = stall.map(|s| s.saturating_sub(progress.elapsed()));
                if left == Some(Duration::ZERO) {
                    let unsent: usize = rest.iter().map(|p| p.len()).sum();
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "{} of a frame unsent",
                            rpyc_wire::limits::human_size(unsent as u64)
                        ),
                    ));
                }
                wait_ready(sock, true, left)?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// `SendStalled`, naming the key, when `e` is the timeout of a write limited to `stall`.
fn stalled(e: &io::Error, stall: Option<Duration>) -> Option<PyErr> {
    let limit = stall.filter(|_| e.kind() == io::ErrorKind::TimedOut)?;
    Some(crate::errors::SendStalled::new_err(format!(
        "the peer read nothing for send_stall_timeout={} s ({e}); raise the send_stall_timeout \
         config key to wait longer; connection closed",
        limit.as_secs_f64()
    )))
}

/// Acknowledge received data at once instead of up to 40 ms later. A peer that keeps
/// Nagle's algorithm on (upstream servers do) holds its second back-to-back reply until the
/// first is acknowledged; with delayed ACKs every such pair would cost 40 ms. Linux resets
/// the flag after use, hence once per read.
#[cfg(target_os = "linux")]
fn quick_ack(sock: &Socket) {
    use std::os::fd::AsRawFd;
    let one: libc::c_int = 1;
    // SAFETY: a valid descriptor and a c_int option value of the size given; errors (unix
    // sockets do not have the option) are harmless and ignored.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_QUICKACK,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn quick_ack(_sock: &Socket) {}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use socket2::{Domain, Type};
    use std::io::Read;

    /// Parts written through a small send buffer (many partial sends) arrive whole and in
    /// order, empty parts and more parts than one vectored send takes included.
    #[test]
    fn parts_arrive_in_order_through_partial_sends() {
        let (writer, reader) = Socket::pair(Domain::UNIX, Type::STREAM, None).expect("pair");
        writer.set_send_buffer_size(4096).expect("sndbuf");
        let blocks: Vec<Vec<u8>> = (0..MAX_SLICES * 2 + 3)
            .map(|i| vec![(i % 251) as u8; (i * 37) % 300])
            .collect();
        let expected: Vec<u8> = blocks.concat();
        let total = expected.len();
        let reading = std::thread::spawn(move || {
            let mut got = vec![0u8; total];
            (&reader).read_exact(&mut got).map(|()| got)
        });
        let parts: Vec<&[u8]> = blocks.iter().map(Vec::as_slice).collect();
        socket_write_parts(&writer, &parts, Some(Duration::from_secs(10))).expect("write");
        let got = reading.join().expect("reader thread").expect("read");
        assert!(got == expected, "bytes differ");
    }

    /// The send made with the GIL held never waits: with the peer's buffer full it takes
    /// nothing (or part), and the rest is left to the waiting writer.
    #[test]
    fn send_now_never_blocks_on_a_full_buffer() {
        let (writer, reader) = Socket::pair(Domain::UNIX, Type::STREAM, None).expect("pair");
        writer.set_send_buffer_size(4096).expect("sndbuf");
        let block = vec![7u8; 4096];
        let mut taken = 0;
        for _ in 0..10_000 {
            match send_now(&writer, &[&block]).expect("send") {
                0 => break,
                n => taken += n,
            }
        }
        assert!(taken > 0, "nothing fit at all");
        assert_eq!(send_now(&writer, &[&block]).expect("send"), 0);
        let reading = std::thread::spawn(move || {
            let mut got = vec![0u8; taken + 3];
            (&reader).read_exact(&mut got).map(|()| got)
        });
        socket_write_parts(&writer, &[b"xyz"], Some(Duration::from_secs(10))).expect("rest");
        let got = reading.join().expect("reader thread").expect("read");
        assert_eq!(&got[taken..], b"xyz");
    }

    /// A peer that reads nothing makes the write give up after `stall`, saying how much of
    /// the frame is left.
    #[test]
    fn a_peer_that_reads_nothing_stalls_the_write() {
        let (writer, _reader) = Socket::pair(Domain::UNIX, Type::STREAM, None).expect("pair");
        let big = vec![1u8; 8 << 20];
        let err = socket_write_parts(&writer, &[b"head", &big], Some(Duration::from_millis(50)))
            .expect_err("nobody reads");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(err.to_string().contains("of a frame unsent"), "{err}");
    }
}
