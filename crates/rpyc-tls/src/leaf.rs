//! The fallback path: verifying a leaf of one of the shapes webpki refuses (see the crate
//! docs) the way OpenSSL does, and nothing looser than webpki would be for the rest.

use crate::anchors::TrustAnchors;
use crate::der::{self, Algorithms};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::verify_tls13_signature_with_raw_key;
use rustls::pki_types::{SubjectPublicKeyInfoDer, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error, OtherError};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::{FromDer, X509Certificate, X509Version};

/// What the leaf certificate is for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    Server,
    Client,
}

impl Purpose {
    fn word(self) -> &'static str {
        match self {
            Purpose::Server => "server",
            Purpose::Client => "client",
        }
    }
}

/// A refusal webpki has no variant for; the message names the reason.
#[derive(Debug)]
struct Refused(String);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

fn refused(reason: String) -> Error {
    Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(Refused(
        reason,
    )))))
}

fn parse(cert: &[u8]) -> Option<X509Certificate<'_>> {
    match X509Certificate::from_der(cert) {
        Ok(([], parsed)) => Some(parsed),
        _ => None,
    }
}

/// The parsed leaf when it takes the fallback path: an X.509 v1 certificate, or a CA
/// certificate that is itself one of the trust anchors. Anything else is webpki's.
pub(crate) fn fallback_shape<'a>(
    cert: &'a [u8],
    anchors: &TrustAnchors,
) -> Option<X509Certificate<'a>> {
    let parsed = parse(cert)?;
    match parsed.version() {
        X509Version::V1 => Some(parsed),
        X509Version::V3 if parsed.is_ca() && anchors.contains(cert) => Some(parsed),
        _ => None,
    }
}

fn unix(secs: i64) -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(u64::try_from(secs).unwrap_or(0)))
}

/// Inside [not_before, not_after], as OpenSSL checks every certificate of the chain.
fn check_validity(not_before: i64, not_after: i64, now: UnixTime) -> Result<(), Error> {
    let time = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    if time < not_before {
        return Err(Error::InvalidCertificate(
            CertificateError::NotValidYetContext {
                time: now,
                not_before: unix(not_before),
            },
        ));
    }
    if time > not_after {
        return Err(Error::InvalidCertificate(
            CertificateError::ExpiredContext {
                time: now,
                not_after: unix(not_after),
            },
        ));
    }
    Ok(())
}

/// The extensions OpenSSL would object to: a critical one we do not enforce, a keyUsage or
/// extendedKeyUsage that does not allow the purpose (OpenSSL's `check_purpose_ssl_*`).
fn check_extensions(parsed: &X509Certificate<'_>, purpose: Purpose) -> Result<(), Error> {
    for ext in parsed.extensions() {
        let understood = matches!(
            ext.parsed_extension(),
            ParsedExtension::BasicConstraints(_)
                | ParsedExtension::KeyUsage(_)
                | ParsedExtension::ExtendedKeyUsage(_)
                | ParsedExtension::SubjectAlternativeName(_)
        );
        if ext.critical && !understood {
            return Err(refused(format!(
                "the certificate has a critical extension rpyc does not handle ({})",
                ext.oid
            )));
        }
    }
    match parsed.key_usage() {
        Ok(Some(ku)) => {
            let ku = ku.value;
            let fits = match purpose {
                Purpose::Server => {
                    ku.digital_signature() || ku.key_encipherment() || ku.key_agreement()
                }
                Purpose::Client => ku.digital_signature() || ku.key_agreement(),
            };
            if !fits {
                return Err(refused(format!(
                    "its keyUsage does not allow TLS {} authentication",
                    purpose.word()
                )));
            }
        }
        Ok(None) => {}
        Err(e) => return Err(refused(format!("its keyUsage cannot be read: {e}"))),
    }
    match parsed.extended_key_usage() {
        Ok(Some(eku)) => {
            let fits = match purpose {
                Purpose::Server => eku.value.server_auth,
                Purpose::Client => eku.value.client_auth,
            };
            if !fits {
                return Err(Error::InvalidCertificate(CertificateError::InvalidPurpose));
            }
        }
        Ok(None) => {}
        Err(e) => return Err(refused(format!("its extendedKeyUsage cannot be read: {e}"))),
    }
    Ok(())
}

/// Verify a fallback-shaped leaf: its own dates and extensions, then a trust anchor whose
/// subject is its issuer, that may issue certificates (unless it is the leaf itself,
/// self-signed), is inside its own dates, and whose key signed the leaf. Intermediates are
/// not used: these shapes come from one-level recipes.
pub(crate) fn verify(
    cert: &[u8],
    parsed: &X509Certificate<'_>,
    anchors: &TrustAnchors,
    algs: &Algorithms,
    now: UnixTime,
    purpose: Purpose,
) -> Result<(), Error> {
    check_validity(
        parsed.validity().not_before.timestamp(),
        parsed.validity().not_after.timestamp(),
        now,
    )?;
    check_extensions(parsed, purpose)?;
    let mut error = Error::InvalidCertificate(CertificateError::UnknownIssuer);
    for anchor in anchors
        .anchors
        .iter()
        .filter(|a| a.subject == parsed.issuer().as_raw())
    {
        let itself = anchor.der.as_ref() == cert;
        if !itself && !anchor.may_issue {
            // OpenSSL: "invalid CA certificate", sent as an "unknown ca" alert.
            continue;
        }
        if !itself && anchor.constrained {
            error = refused(
                "its CA has nameConstraints, which rpyc enforces only for v3 certificates \
                 verified by webpki: re-issue the certificate as v3 with a subjectAltName"
                    .to_owned(),
            );
            continue;
        }
        match anchor.signed(cert, algs) {
            Ok(()) if itself => return Ok(()),
            Ok(()) => return check_validity(anchor.not_before, anchor.not_after, now),
            Err(e) => error = e,
        }
    }
    Err(error)
}

/// A handshake signature: webpki's check, or for a v1 certificate (which webpki cannot
/// parse) the same check against the certificate's key.
pub(crate) fn handshake_signature(
    webpki: Result<HandshakeSignatureValid, Error>,
    tls13: bool,
    message: &[u8],
    cert: &[u8],
    dss: &DigitallySignedStruct,
    algs: &Algorithms,
) -> Result<HandshakeSignatureValid, Error> {
    let Err(first) = webpki else {
        return webpki;
    };
    let Some(parsed) = parse(cert).filter(|p| p.version() == X509Version::V1) else {
        return Err(first);
    };
    let spki = parsed.public_key().raw;
    if tls13 {
        verify_tls13_signature_with_raw_key(
            message,
            &SubjectPublicKeyInfoDer::from(spki),
            dss,
            algs,
        )
    } else {
        der::verify_tls12_raw(message, spki, dss, algs)
    }
}

/// webpki's refusal of a self-signed CA certificate that is not one of the trust anchors
/// (`CaUsedAsEndEntity`, an opaque "other" error) said as OpenSSL says it: the issuer is
/// unknown (a self-signed certificate that was not passed as ca_certs). Other errors pass.
pub(crate) fn explain(error: Error, cert: &[u8]) -> Error {
    let ca_as_leaf = matches!(
        &error,
        Error::InvalidCertificate(CertificateError::Other(other))
            if other.0.to_string() == "CaUsedAsEndEntity"
    );
    let self_issued =
        || parse(cert).is_some_and(|p| p.is_ca() && p.subject().as_raw() == p.issuer().as_raw());
    if ca_as_leaf && self_issued() {
        Error::InvalidCertificate(CertificateError::UnknownIssuer)
    } else {
        error
    }
}
