//! What `ssl.SSLSocket` tells of an established connection (`getpeercert`, `version`,
//! `cipher`), for the blocking TLS socket and the event loop's TLS pipe alike.

use super::peer_cert::certificate_dict;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

/// The peer's certificate: a dict as `ssl` gives (empty when not verified, None when the
/// peer sent none), or its DER bytes with `binary_form`.
pub fn peer_cert<'py>(
    py: Python<'py>,
    conn: &rustls::Connection,
    verified: bool,
    binary_form: bool,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let Some(der) = conn.peer_certificates().and_then(|chain| chain.first()) else {
        return Ok(None);
    };
    if binary_form {
        return Ok(Some(PyBytes::new(py, der.as_ref()).into_any()));
    }
    if !verified {
        return Ok(Some(PyDict::new(py).into_any()));
    }
    Ok(Some(certificate_dict(py, der.as_ref())?.into_any()))
}

/// `"TLSv1.2"` or `"TLSv1.3"` (None while handshaking).
pub fn version(conn: &rustls::Connection) -> Option<&'static str> {
    conn.protocol_version().map(|v| match v {
        rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3",
        rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2",
        _ => "unknown",
    })
}

/// `(suite name, protocol version, secret bits)` as `ssl.SSLSocket.cipher()`.
pub fn cipher(conn: &rustls::Connection) -> Option<(String, &'static str, u32)> {
    let suite = conn.negotiated_cipher_suite()?;
    let name = suite.suite().as_str().unwrap_or("unknown").to_owned();
    let bits = if name.contains("128") { 128 } else { 256 };
    Some((name, version(conn).unwrap_or("unknown"), bits))
}
