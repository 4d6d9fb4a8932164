//! TLS for the tokio driver (features `tokio` and `tls`): the handshake, awaited on the
//! socket. After it the driver encrypts and decrypts with the blocking driver's
//! [`crate::tls::Session`] (one record per frame, key-update nudges), so both drivers put
//! the same bytes on the wire and check certificates with the same verifiers
//! (`TlsClient::session_for`, `TlsServer::config`).

use crate::error::Result;
use crate::tls::{drain, handshake_failed};
use ::tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use std::io;
use std::time::Duration;

/// How long a handshake may take when `sync_request_timeout` is unset (as the blocking
/// driver).
const HANDSHAKE_DEFAULT: Duration = Duration::from_secs(30);

/// Run the handshake of `conn` on `sock` within `limit` (`None`: 30 s); returns plaintext
/// that arrived with its last records.
pub(crate) async fn handshake<S>(
    conn: &mut rustls::Connection,
    sock: &mut S,
    limit: Option<Duration>,
) -> Result<Vec<u8>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let limit = limit.unwrap_or(HANDSHAKE_DEFAULT);
    match ::tokio::time::timeout(limit, exchange(conn, sock)).await {
        Ok(r) => r.map_err(handshake_failed),
        Err(_) => Err(handshake_failed(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no answer within {limit:?} (is the peer speaking TLS?)"),
        ))),
    }
}

async fn exchange<S>(conn: &mut rustls::Connection, sock: &mut S) -> io::Result<Vec<u8>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        flush(conn, sock).await?;
        if !conn.is_handshaking() {
            break;
        }
        let n = sock.read(&mut buf).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the peer closed the connection during the handshake",
            ));
        }
        let mut rd = &buf[..n];
        while !rd.is_empty() {
            conn.read_tls(&mut rd)?;
            if let Err(e) = conn.process_new_packets() {
                // The alert tells the peer why (as rustls' own complete_io does).
                let _ = flush(conn, sock).await;
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
        }
    }
    let mut plain = Vec::new();
    drain(conn, &mut plain)?;
    Ok(plain)
}

/// Write every record the session has queued.
async fn flush<S>(conn: &mut rustls::Connection, sock: &mut S) -> io::Result<()>
where
    S: AsyncWrite + Unpin,
{
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out)?;
    }
    if !out.is_empty() {
        sock.write_all(&out).await?;
    }
    Ok(())
}
