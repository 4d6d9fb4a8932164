//! TLS failures as Python exceptions that name the cause and the fix. They are the `ssl`
//! module's own exception types (`SSLCertVerificationError`, `SSLError`), so code written
//! against upstream's OpenSSL-based TLS catches them unchanged.

use pyo3::exceptions::{PyOSError, PyTimeoutError};
use pyo3::prelude::*;
use rustls::{AlertDescription, CertificateError};
use std::io;

/// What went wrong, and what to change, for a certificate the local side rejected.
fn certificate_hint(e: &CertificateError) -> &'static str {
    match e {
        CertificateError::UnknownIssuer => {
            "pass ca_certs= the CA certificate that signed the peer's certificate (for a \
             self-signed certificate: the certificate itself)"
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            "connect using a host name the certificate was issued for, or pass \
             check_hostname=False to check only the chain"
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            "the peer must renew its certificate (or the clocks disagree)"
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "the certificate is not valid yet: check both clocks"
        }
        CertificateError::BadSignature => {
            "the certificate names a CA in ca_certs as its issuer but was not signed by that \
             CA's key: re-issue it with the right CA, or pass the CA that signed it"
        }
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            "the certificate's extendedKeyUsage does not allow this use (serverAuth for a \
             server, clientAuth for a client)"
        }
        CertificateError::Other(other) if other.0.to_string() == "CaUsedAsEndEntity" => {
            "the peer's certificate is a CA certificate (basicConstraints CA:TRUE) used as a \
             leaf: accepted only when that very certificate is in ca_certs; otherwise re-issue \
             it without CA:TRUE"
        }
        _ => "check the peer's certificate against ca_certs",
    }
}

/// What an alert from the peer most likely means.
fn alert_hint(a: &AlertDescription) -> &'static str {
    match a {
        AlertDescription::CertificateRequired => {
            "the peer requires a client certificate: pass certfile= and keyfile="
        }
        AlertDescription::BadCertificate
        | AlertDescription::UnknownCA
        | AlertDescription::CertificateUnknown
        | AlertDescription::DecryptError => {
            "the peer rejected this side's certificate: use one signed by a CA the peer trusts"
        }
        AlertDescription::CertificateExpired => "the peer says this side's certificate expired",
        AlertDescription::ProtocolVersion | AlertDescription::HandshakeFailure => {
            "no common TLS version or cipher suite (rpyc needs TLS 1.2 or 1.3)"
        }
        _ => "see the peer's logs",
    }
}

/// An alert as OpenSSL words it (`tlsv13 alert certificate required`), which is what code
/// written against upstream's `ssl`-based TLS matches error messages with.
fn openssl_alert(a: &AlertDescription) -> String {
    let camel = format!("{a:?}");
    let mut words = String::new();
    let mut prev_lower = false;
    for ch in camel.chars() {
        if ch.is_ascii_uppercase() && prev_lower {
            words.push(' ');
        }
        prev_lower = ch.is_ascii_lowercase();
        words.push(ch.to_ascii_lowercase());
    }
    // Alerts TLS 1.3 introduced carry OpenSSL's "tlsv13" prefix; the others "tlsv1".
    let prefix = match a {
        AlertDescription::CertificateRequired | AlertDescription::MissingExtension => "tlsv13",
        _ => "tlsv1",
    };
    format!("{prefix} alert {words}")
}

/// A one-line description of a TLS-session I/O error, with a hint where there is one.
pub fn describe(e: &io::Error) -> String {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        // rustls shows these through Debug (`Other(OtherError(..))`): the reason alone reads better.
        Some(rustls::Error::InvalidCertificate(c @ CertificateError::Other(other))) => {
            format!(
                "certificate verify failed: {} ({})",
                other.0,
                certificate_hint(c)
            )
        }
        Some(rustls::Error::InvalidCertificate(c)) => {
            format!("certificate verify failed: {e} ({})", certificate_hint(c))
        }
        Some(rustls::Error::AlertReceived(a)) => {
            format!("the peer sent {} ({})", openssl_alert(a), alert_hint(a))
        }
        Some(other) => format!("TLS error: {other}"),
        None => e.to_string(),
    }
}

fn ssl_exception(py: Python<'_>, name: &str, message: String) -> PyErr {
    let made = py
        .import("ssl")
        .and_then(|m| m.getattr(name))
        .and_then(|cls| cls.call1((1, message.clone())));
    match made {
        Ok(exc) => PyErr::from_value(exc),
        // A Python built without the ssl module: still an OSError, as SSLError is.
        Err(_) => PyOSError::new_err(message),
    }
}

/// The exception for a failed handshake with `peer`.
pub fn handshake_error(py: Python<'_>, e: io::Error, peer: &str) -> PyErr {
    let what = describe(&e);
    let message = format!("TLS handshake with {peer} failed: {what}");
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::InvalidCertificate(_)) => {
            ssl_exception(py, "SSLCertVerificationError", message)
        }
        Some(_) => ssl_exception(py, "SSLError", message),
        None if e.kind() == io::ErrorKind::TimedOut => PyTimeoutError::new_err(message),
        None => PyOSError::new_err(message),
    }
}

/// The exception for a failed read or write on an established TLS socket (used when
/// Python code drives the socket; the engine turns the same failures into `EOFError`).
pub fn io_error(py: Python<'_>, e: io::Error) -> PyErr {
    if e.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) {
        ssl_exception(py, "SSLError", describe(&e))
    } else {
        e.into()
    }
}
