//! TLS over rustls (feature `tls`, on by default), as the Python package does it: no
//! OpenSSL. The session is shared by the reading and the writing side of a connection;
//! bytes are encrypted and written under the connection's write lock, so records leave in
//! the order of their sequence numbers, and each frame is its own record.

#[cfg(feature = "tls")]
pub use enabled::*;

#[cfg(feature = "tls")]
mod enabled {
    use crate::error::{Error, Result};
    use rpyc_tls::{certified_key, ClientVerifier, ServerVerifier, TrustAnchors};
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use rustls::sign::SingleCertAndKey;
    use rustls::{ClientConfig, ServerConfig};
    use std::io::{self, Read, Write};
    use std::path::{Path, PathBuf};
    use std::sync::{Arc, Mutex};

    /// TLS settings of a client ([`crate::Connection::connect_tls`]).
    #[derive(Debug, Clone, Default)]
    pub struct TlsClient {
        /// PEM file of the CA certificates to trust (`None`: the system's trust store).
        pub ca_file: Option<PathBuf>,
        /// PEM certificate chain to present (mutual TLS), with `key_file`.
        pub cert_file: Option<PathBuf>,
        /// PEM private key of `cert_file`.
        pub key_file: Option<PathBuf>,
        /// The name the server's certificate must carry (default: the host of the address).
        pub server_name: Option<String>,
    }

    /// TLS settings of a server ([`crate::Server::bind_tls`]).
    #[derive(Debug, Clone, Default)]
    pub struct TlsServer {
        /// PEM certificate chain of the server.
        pub cert_file: PathBuf,
        /// PEM private key of the server.
        pub key_file: PathBuf,
        /// PEM file of the CAs whose client certificates are required (`None`: clients are
        /// not asked for a certificate).
        pub client_ca_file: Option<PathBuf>,
    }

    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    fn tls_error(what: &str, e: impl std::fmt::Display) -> Error {
        Error::Io(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what}: {e}"),
        ))
    }

    fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
        let certs: std::result::Result<Vec<_>, _> = CertificateDer::pem_file_iter(path)
            .map_err(|e| {
                tls_error(
                    &format!("cannot read certificates from {}", path.display()),
                    e,
                )
            })?
            .collect();
        let certs = certs
            .map_err(|e| tls_error(&format!("bad PEM certificate in {}", path.display()), e))?;
        if certs.is_empty() {
            return Err(tls_error(
                &format!("no certificate in {}", path.display()),
                "expected -----BEGIN CERTIFICATE-----",
            ));
        }
        Ok(certs)
    }

    fn key(path: &Path) -> Result<PrivateKeyDer<'static>> {
        PrivateKeyDer::from_pem_file(path).map_err(|e| {
            tls_error(
                &format!("cannot read a private key from {}", path.display()),
                e,
            )
        })
    }

    /// The trust anchors: `ca_file`, else the system's store. Verification is webpki's plus
    /// the self-signed and v1 certificate shapes OpenSSL accepts (`rpyc-tls`, docs/tls.md).
    fn anchors(ca_file: Option<&Path>) -> Result<Arc<TrustAnchors>> {
        let (anchors, rejected) = match ca_file {
            Some(path) => TrustAnchors::from_certs(certs(path)?),
            None => TrustAnchors::from_certs(rustls_native_certs::load_native_certs().certs),
        };
        if anchors.is_empty() {
            return Err(match ca_file {
                Some(path) => tls_error(
                    &format!("bad CA in {}", path.display()),
                    format!("none of its {rejected} certificate(s) can be a trust anchor"),
                ),
                None => tls_error(
                    "no trusted CA",
                    "the system has no CA certificates; give TlsClient::ca_file",
                ),
            });
        }
        Ok(Arc::new(anchors))
    }

    impl TlsClient {
        /// A client session for `addr` (`host:port`, `[v6]:port`): the host is the name the
        /// server's certificate must carry unless `server_name` says otherwise.
        pub(crate) fn session_for(&self, addr: &str) -> Result<rustls::Connection> {
            let host = addr
                .rsplit_once(':')
                .map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']'))
                .unwrap_or(addr);
            self.session(host)
        }

        fn session(&self, host: &str) -> Result<rustls::Connection> {
            let verifier = ServerVerifier::new(anchors(self.ca_file.as_deref())?, provider(), true)
                .map_err(|e| tls_error("CA", e))?;
            let builder = ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .map_err(|e| tls_error("TLS setup", e))?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier));
            let config = match (&self.cert_file, &self.key_file) {
                (Some(c), Some(k)) => {
                    let identity = certified_key(certs(c)?, key(k)?, &provider())
                        .map_err(|e| tls_error("client certificate and key do not match", e))?;
                    builder.with_client_cert_resolver(Arc::new(SingleCertAndKey::from(identity)))
                }
                (None, None) => builder.with_no_client_auth(),
                _ => {
                    return Err(tls_error(
                        "client certificate",
                        "give both TlsClient::cert_file and TlsClient::key_file",
                    ))
                }
            };
            let name = self.server_name.as_deref().unwrap_or(host);
            let name = ServerName::try_from(name.to_owned())
                .map_err(|e| tls_error(&format!("{name:?} is not a valid server name"), e))?;
            let conn = rustls::ClientConnection::new(Arc::new(config), name)
                .map_err(|e| tls_error("TLS setup", e))?;
            Ok(rustls::Connection::Client(conn))
        }
    }

    impl TlsServer {
        pub(crate) fn config(&self) -> Result<Arc<ServerConfig>> {
            let builder = ServerConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .map_err(|e| tls_error("TLS setup", e))?;
            let builder = match &self.client_ca_file {
                Some(ca) => {
                    let verifier = ClientVerifier::new(anchors(Some(ca))?, provider(), false)
                        .map_err(|e| tls_error("client CA", e))?;
                    builder.with_client_cert_verifier(Arc::new(verifier))
                }
                None => builder.with_no_client_auth(),
            };
            let identity =
                certified_key(certs(&self.cert_file)?, key(&self.key_file)?, &provider())
                    .map_err(|e| tls_error("server certificate and key do not match", e))?;
            let config = builder.with_cert_resolver(Arc::new(SingleCertAndKey::from(identity)));
            Ok(Arc::new(config))
        }
    }

    /// A server's session for one accepted connection.
    pub(crate) fn server_session(config: &Arc<ServerConfig>) -> Result<rustls::Connection> {
        rustls::ServerConnection::new(config.clone())
            .map(rustls::Connection::Server)
            .map_err(|e| tls_error("TLS setup", e))
    }

    /// Run the handshake on the blocking socket; returns plaintext that came with it.
    pub(crate) fn handshake<S: Read + Write>(
        conn: &mut rustls::Connection,
        sock: &mut S,
    ) -> Result<Vec<u8>> {
        while conn.is_handshaking() {
            conn.complete_io(sock).map_err(handshake_failed)?;
        }
        while conn.wants_write() {
            conn.write_tls(sock)?;
        }
        let mut plain = Vec::new();
        drain(conn, &mut plain)?;
        Ok(plain)
    }

    /// Why a handshake failed, with what to check (both drivers say it the same way).
    pub(crate) fn handshake_failed(e: io::Error) -> Error {
        Error::Io(io::Error::new(
            e.kind(),
            format!(
                "TLS handshake failed: {e} (check the CA, the server name and the \
                 certificates on both sides)"
            ),
        ))
    }

    /// Plaintext rustls holds; `Ok(true)` once the peer closed the TLS session.
    pub(crate) fn drain(conn: &mut rustls::Connection, out: &mut Vec<u8>) -> io::Result<bool> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match conn.reader().read(&mut chunk) {
                Ok(0) => return Ok(true),
                Ok(n) => out.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
    }

    /// The TLS session of a connection.
    pub(crate) struct Session(Mutex<rustls::Connection>);

    impl Session {
        pub(crate) fn new(conn: rustls::Connection) -> Session {
            Session(Mutex::new(conn))
        }

        fn lock(&self) -> std::sync::MutexGuard<'_, rustls::Connection> {
            self.0.lock().unwrap_or_else(|e| e.into_inner())
        }

        /// Encrypt `frames` (whole frames), one record (or more) per frame; with what the
        /// session owes the peer anyway (a key update). Call with the write lock held.
        pub(crate) fn encrypt(&self, frames: &[u8]) -> io::Result<Vec<u8>> {
            let mut conn = self.lock();
            let mut rest = frames;
            while !rest.is_empty() {
                let n = frame_len(rest).unwrap_or(rest.len()).min(rest.len());
                conn.writer().write_all(&rest[..n])?;
                rest = &rest[n..];
            }
            let mut out = Vec::with_capacity(frames.len() + 64);
            while conn.wants_write() {
                conn.write_tls(&mut out)?;
            }
            Ok(out)
        }

        /// Decrypt what arrived; `Ok(true)` when the peer closed the session.
        pub(crate) fn decrypt(
            &self,
            data: &[u8],
            out: &mut Vec<u8>,
        ) -> std::result::Result<bool, String> {
            let mut conn = self.lock();
            let mut rd = data;
            let mut closed = false;
            while !rd.is_empty() {
                conn.read_tls(&mut rd).map_err(|e| format!("TLS: {e}"))?;
                conn.process_new_packets()
                    .map_err(|e| format!("TLS: {e}"))?;
                closed |= drain(&mut conn, out).map_err(|e| format!("TLS: {e}"))?;
            }
            Ok(closed)
        }

        /// Whether the session has records to send (a reply to a key update).
        pub(crate) fn wants_write(&self) -> bool {
            self.lock().wants_write()
        }

        /// Ask the peer for a key update (TLS 1.3): the record makes its socket readable.
        /// False on TLS 1.2, which has none.
        pub(crate) fn nudge(&self) -> bool {
            self.lock().refresh_traffic_keys().is_ok()
        }
    }

    /// The length of the frame that starts `bytes` (header, payload, trailer).
    fn frame_len(bytes: &[u8]) -> Option<usize> {
        let len = u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
        Some(len + 6)
    }
}

#[cfg(not(feature = "tls"))]
pub(crate) use disabled::*;

#[cfg(not(feature = "tls"))]
mod disabled {
    /// Without the `tls` feature there is no session.
    pub(crate) enum Session {}

    impl Session {
        pub(crate) fn encrypt(&self, _: &[u8]) -> std::io::Result<Vec<u8>> {
            match *self {}
        }
        pub(crate) fn decrypt(&self, _: &[u8], _: &mut Vec<u8>) -> Result<bool, String> {
            match *self {}
        }
        pub(crate) fn wants_write(&self) -> bool {
            match *self {}
        }
        pub(crate) fn nudge(&self) -> bool {
            match *self {}
        }
    }
}
