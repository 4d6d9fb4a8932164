//! `rpyc._core.TlsContext`: a rustls client or server configuration built once from the
//! options `rpyc.core.tls` normalizes (file paths, verification mode, versions, suites), and
//! the handshake that turns a connected socket into a `TlsSocket`.

use super::errors::handshake_error;
use super::pipe::TlsPipe;
use super::session::TlsSession;
use super::socket::TlsSocket;
use super::verify::AcceptAnyServerCert;
use pyo3::exceptions::{PyFileNotFoundError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use rpyc_tls::{certified_key, ClientVerifier, ServerVerifier, TrustAnchors};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::sign::SingleCertAndKey;
use rustls::{ClientConfig, ServerConfig, SupportedProtocolVersion};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

/// How much of the peer's certificate is checked (`ssl.CERT_*`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Verify {
    None,
    Optional,
    Required,
}

/// The options, read from the dict `rpyc.core.tls` builds.
struct Options {
    certfile: Option<String>,
    keyfile: Option<String>,
    ca_certs: Option<String>,
    verify: Verify,
    check_hostname: bool,
    versions: Vec<&'static SupportedProtocolVersion>,
    tls12_suites: Option<Vec<String>>,
}

fn get<'py, T: FromPyObjectOwned<'py>>(
    opts: &Bound<'py, PyDict>,
    key: &str,
) -> PyResult<Option<T>> {
    match opts.get_item(key)? {
        Some(v) if !v.is_none() => Ok(Some(v.extract().map_err(Into::into)?)),
        _ => Ok(None),
    }
}

impl Options {
    fn read(opts: &Bound<'_, PyDict>) -> PyResult<Options> {
        let verify = match get::<String>(opts, "verify")?.as_deref() {
            None | Some("none") => Verify::None,
            Some("optional") => Verify::Optional,
            Some("required") => Verify::Required,
            Some(other) => {
                return Err(PyValueError::new_err(format!(
                    "unknown verification mode {other:?} (none, optional, required)"
                )))
            }
        };
        let mut versions = Vec::new();
        for v in get::<Vec<String>>(opts, "versions")?
            .unwrap_or_else(|| vec!["1.2".into(), "1.3".into()])
        {
            versions.push(match v.as_str() {
                "1.2" => &rustls::version::TLS12,
                "1.3" => &rustls::version::TLS13,
                other => {
                    return Err(PyValueError::new_err(format!(
                        "TLS version {other} is not supported: rpyc speaks TLS 1.2 and 1.3"
                    )))
                }
            });
        }
        Ok(Options {
            certfile: get(opts, "certfile")?,
            keyfile: get(opts, "keyfile")?,
            ca_certs: get(opts, "ca_certs")?,
            verify,
            check_hostname: get(opts, "check_hostname")?.unwrap_or(false),
            versions,
            tls12_suites: get(opts, "tls12_cipher_suites")?,
        })
    }

    /// ring's provider, restricted to the TLS 1.2 suites asked for (TLS 1.3 suites are kept,
    /// as Python's `set_ciphers` leaves them alone too).
    fn provider(&self) -> PyResult<Arc<CryptoProvider>> {
        let mut provider = rustls::crypto::ring::default_provider();
        if let Some(wanted) = &self.tls12_suites {
            provider.cipher_suites.retain(|s| {
                s.version() == &rustls::version::TLS13
                    || s.suite()
                        .as_str()
                        .is_some_and(|name| wanted.iter().any(|w| w == name))
            });
            let only_tls12 = self.versions.iter().all(|v| *v == &rustls::version::TLS12);
            if only_tls12 && provider.cipher_suites.is_empty() {
                return Err(PyValueError::new_err(format!(
                    "none of the requested ciphers {wanted:?} is available for TLS 1.2"
                )));
            }
        }
        Ok(Arc::new(provider))
    }

    /// The trust anchors: `ca_certs`, else the system's store.
    fn anchors(&self) -> PyResult<Arc<TrustAnchors>> {
        let anchors = match &self.ca_certs {
            Some(path) => {
                let (anchors, rejected) = TrustAnchors::from_certs(read_certs(path, "ca_certs")?);
                if anchors.is_empty() {
                    return Err(PyValueError::new_err(format!(
                        "ca_certs {path:?}: none of its {rejected} certificate(s) can be used as a trust anchor"
                    )));
                }
                anchors
            }
            None => {
                // Verification without a CA file: the operating system's trust store, as
                // Python's default context does.
                let found = rustls_native_certs::load_native_certs();
                let (anchors, _) = TrustAnchors::from_certs(found.certs);
                if anchors.is_empty() {
                    return Err(PyValueError::new_err(
                        "certificate verification requested but no ca_certs given and the \
                         system trust store is empty: pass ca_certs=<CA bundle>",
                    ));
                }
                anchors
            }
        };
        Ok(Arc::new(anchors))
    }

    /// The local certificate chain and key, when `certfile` is given (the key may be in
    /// the certificate file, as with `ssl.SSLContext.load_cert_chain`).
    fn identity(&self) -> PyResult<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>> {
        let Some(certfile) = &self.certfile else {
            if let Some(keyfile) = &self.keyfile {
                return Err(PyValueError::new_err(format!(
                    "keyfile {keyfile:?} given without certfile: pass both"
                )));
            }
            return Ok(None);
        };
        let chain = read_certs(certfile, "certfile")?;
        let key_path = self.keyfile.as_deref().unwrap_or(certfile);
        let key = PrivateKeyDer::from_pem_file(key_path)
            .map_err(|e| pem_error(key_path, "keyfile", "private key", e))?;
        Ok(Some((chain, key)))
    }
}

fn pem_error(path: &str, key: &str, what: &str, e: rustls::pki_types::pem::Error) -> PyErr {
    match e {
        rustls::pki_types::pem::Error::Io(io) if io.kind() == std::io::ErrorKind::NotFound => {
            PyFileNotFoundError::new_err(format!("{key}: no such file {path:?}"))
        }
        rustls::pki_types::pem::Error::NoItemsFound => {
            PyValueError::new_err(format!("{key} {path:?} holds no PEM {what}"))
        }
        other => PyValueError::new_err(format!("{key} {path:?}: {other}")),
    }
}

fn read_certs(path: &str, key: &str) -> PyResult<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(path, key, "certificate", e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, key, "certificate", e))?;
    if certs.is_empty() {
        return Err(pem_error(
            path,
            key,
            "certificate",
            rustls::pki_types::pem::Error::NoItemsFound,
        ));
    }
    Ok(certs)
}

fn config_error(e: rustls::Error) -> PyErr {
    PyValueError::new_err(format!("TLS configuration rejected: {e}"))
}

enum Side {
    Client {
        config: Arc<ClientConfig>,
        verifies: bool,
        check_hostname: bool,
    },
    Server {
        config: Arc<ServerConfig>,
        verifies: bool,
    },
}

/// A TLS configuration for one side, reusable for many connections.
#[pyclass(module = "rpyc._core", frozen)]
pub struct TlsContext {
    side: Side,
}

fn client_config(opts: &Options) -> PyResult<Side> {
    let provider = opts.provider()?;
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&opts.versions)
        .map_err(config_error)?;
    let verifies = opts.verify != Verify::None;
    let builder = if !verifies {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert::new(Arc::clone(
                &provider,
            ))))
    } else {
        // webpki's verification, plus the self-signed and v1 shapes OpenSSL accepts
        // (docs/tls.md); without check_hostname the chain is verified but not the name.
        let verifier =
            ServerVerifier::new(opts.anchors()?, Arc::clone(&provider), opts.check_hostname)
                .map_err(|e| PyValueError::new_err(format!("ca_certs: {e}")))?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
    };
    let config = match opts.identity()? {
        Some((chain, key)) => builder.with_client_cert_resolver(Arc::new(SingleCertAndKey::from(
            certified_key(chain, key, &provider).map_err(config_error)?,
        ))),
        None => builder.with_no_client_auth(),
    };
    Ok(Side::Client {
        config: Arc::new(config),
        verifies,
        check_hostname: verifies && opts.check_hostname,
    })
}

fn server_config(opts: &Options) -> PyResult<Side> {
    let provider = opts.provider()?;
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&opts.versions)
        .map_err(config_error)?;
    let verifies = opts.verify != Verify::None;
    let builder = if !verifies {
        builder.with_no_client_auth()
    } else {
        // Without ca_certs, client certificates are checked against the system trust store,
        // as Python's default server context does.
        let optional = opts.verify == Verify::Optional;
        let verifier = ClientVerifier::new(opts.anchors()?, Arc::clone(&provider), optional)
            .map_err(|e| PyValueError::new_err(format!("ca_certs: {e}")))?;
        builder.with_client_cert_verifier(Arc::new(verifier))
    };
    let Some((chain, key)) = opts.identity()? else {
        return Err(PyValueError::new_err(
            "a TLS server needs certfile= (and keyfile= unless the key is in certfile)",
        ));
    };
    // (a v1 certificate too: rustls's own key check cannot parse those)
    let identity = certified_key(chain, key, &provider).map_err(config_error)?;
    let config = builder.with_cert_resolver(Arc::new(SingleCertAndKey::from(identity)));
    Ok(Side::Server {
        config: Arc::new(config),
        verifies,
    })
}

/// The name the client checks the certificate against (and sends as SNI). Without a name
/// check any parsable placeholder will do.
fn server_name(host: Option<&str>, check_hostname: bool) -> PyResult<ServerName<'static>> {
    match host.map(|h| ServerName::try_from(h.to_owned())) {
        Some(Ok(name)) => Ok(name),
        _ if !check_hostname => Ok(ServerName::IpAddress(
            IpAddr::V4(Ipv4Addr::UNSPECIFIED).into(),
        )),
        Some(Err(_)) => Err(PyValueError::new_err(format!(
            "{:?} is not a valid host name to verify a certificate against",
            host.unwrap_or_default()
        ))),
        None => Err(PyValueError::new_err(
            "server_hostname is required to verify the server's host name",
        )),
    }
}

impl TlsContext {
    /// A new connection of this side, and whether it verifies the peer's certificate.
    fn connection(&self, server_hostname: Option<&str>) -> PyResult<(rustls::Connection, bool)> {
        match &self.side {
            Side::Client {
                config,
                verifies,
                check_hostname,
            } => {
                let name = server_name(server_hostname, *check_hostname)?;
                let conn = rustls::ClientConnection::new(Arc::clone(config), name)
                    .map_err(config_error)?;
                Ok((conn.into(), *verifies))
            }
            Side::Server { config, verifies } => {
                let conn =
                    rustls::ServerConnection::new(Arc::clone(config)).map_err(config_error)?;
                Ok((conn.into(), *verifies))
            }
        }
    }
}

#[pymethods]
impl TlsContext {
    /// A client configuration from `rpyc.core.tls` options.
    #[staticmethod]
    fn client(options: &Bound<'_, PyDict>) -> PyResult<TlsContext> {
        Ok(TlsContext {
            side: client_config(&Options::read(options)?)?,
        })
    }

    /// A server configuration from `rpyc.core.tls` options.
    #[staticmethod]
    fn server(options: &Bound<'_, PyDict>) -> PyResult<TlsContext> {
        Ok(TlsContext {
            side: server_config(&Options::read(options)?)?,
        })
    }

    /// Handshake over the connected socket `fd` (duplicated: the caller keeps its own) and
    /// return the TLS socket. `server_hostname` is what a client verifies.
    #[pyo3(signature = (fd, server_hostname=None, timeout=10.0))]
    fn wrap(
        &self,
        py: Python<'_>,
        fd: i64,
        server_hostname: Option<&str>,
        timeout: f64,
    ) -> PyResult<TlsSocket> {
        let sock = crate::io::wait::dup_socket(fd)?;
        let peer = sock
            .peer_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .map(|a| a.to_string())
            .unwrap_or_else(|| "peer".into());
        let (conn, verifies) = self.connection(server_hostname)?;
        let timeout = Duration::try_from_secs_f64(timeout).map_err(|_| {
            PyValueError::new_err("TLS handshake timeout must be a positive number")
        })?;
        let session = crate::gil::detach(py, || TlsSession::handshake(sock, conn, timeout))
            .map_err(|e| handshake_error(py, e, &peer))?;
        Ok(TlsSocket::new(
            session,
            verifies,
            server_hostname.map(str::to_owned),
        ))
    }

    /// A TLS session without a socket, for an event loop to move its bytes (see
    /// `TlsPipe`); `peer` names the other end in error messages.
    #[pyo3(signature = (server_hostname=None, peer="peer"))]
    fn pipe(&self, server_hostname: Option<&str>, peer: &str) -> PyResult<TlsPipe> {
        let (conn, verifies) = self.connection(server_hostname)?;
        Ok(TlsPipe::new(
            conn,
            verifies,
            server_hostname.map(str::to_owned),
            peer.to_owned(),
        ))
    }

    /// Whether the peer's certificate is verified.
    #[getter]
    fn verifies(&self) -> bool {
        match self.side {
            Side::Client { verifies, .. } | Side::Server { verifies, .. } => verifies,
        }
    }

    /// "client" or "server".
    #[getter]
    fn side(&self) -> &'static str {
        match self.side {
            Side::Client { .. } => "client",
            Side::Server { .. } => "server",
        }
    }
}
