//! The host name check, as OpenSSL does it for Python's `ssl` (`X509_check_host` with
//! `X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS`, `hostname_checks_common_name` on): the
//! subjectAltName when it has DNS names (webpki's check), else the subject's commonName, for
//! a DNS name only; an IP address is only ever matched against IP subjectAltNames.

use rustls::client::verify_server_name;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, Error};
use std::net::IpAddr;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::X509Certificate;

/// Whether `cert` (`parsed`: the same certificate) is valid for `name`.
pub(crate) fn check(
    cert: &CertificateDer<'_>,
    parsed: &X509Certificate<'_>,
    name: &ServerName<'_>,
) -> Result<(), Error> {
    // A v1 certificate has no subjectAltName; webpki cannot parse it at all.
    let by_alt_names = match ParsedCertificate::try_from(cert) {
        Ok(p) => verify_server_name(&p, name),
        Err(_) => Err(Error::InvalidCertificate(CertificateError::NotValidForName)),
    };
    match by_alt_names {
        Err(Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        )) => {
            if common_name_matches(parsed, name) {
                Ok(())
            } else {
                Err(mismatch(parsed, name))
            }
        }
        other => other,
    }
}

/// The name mismatch, with the names the certificate does carry.
fn mismatch(parsed: &X509Certificate<'_>, name: &ServerName<'_>) -> Error {
    let mut presented: Vec<String> = Vec::new();
    if let Ok(Some(san)) = parsed.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                GeneralName::DNSName(d) => presented.push(format!("DNS:{d}")),
                GeneralName::IPAddress(ip) => presented.push(format!("IP:{}", ip_text(ip))),
                _ => {}
            }
        }
    }
    for cn in parsed.subject().iter_common_name() {
        if let Ok(cn) = cn.as_str() {
            presented.push(format!("CN:{cn}"));
        }
    }
    Error::InvalidCertificate(CertificateError::NotValidForNameContext {
        expected: name.to_owned(),
        presented,
    })
}

fn ip_text(raw: &[u8]) -> String {
    if let Ok(v4) = <[u8; 4]>::try_from(raw) {
        IpAddr::from(v4).to_string()
    } else if let Ok(v6) = <[u8; 16]>::try_from(raw) {
        IpAddr::from(v6).to_string()
    } else {
        format!("<{} bytes>", raw.len())
    }
}

/// OpenSSL's commonName fallback: only without DNS subjectAltNames, only for DNS names.
pub(crate) fn common_name_matches(parsed: &X509Certificate<'_>, name: &ServerName<'_>) -> bool {
    let ServerName::DnsName(host) = name else {
        return false;
    };
    match parsed.subject_alternative_name() {
        Ok(Some(san)) => {
            if san
                .value
                .general_names
                .iter()
                .any(|n| matches!(n, GeneralName::DNSName(_)))
            {
                return false;
            }
        }
        Ok(None) => {}
        Err(_) => return false,
    }
    parsed
        .subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok())
        .any(|cn| pattern_matches(cn, host.as_ref()))
}

/// A case-insensitive match; a wildcard only as the whole leftmost label of a pattern with
/// at least two more labels (`*.example.com`, never `*.com` or `w*.example.com`), matching
/// exactly one label.
fn pattern_matches(pattern: &str, host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    if let Some(suffix) = pattern.strip_prefix("*.") {
        if !suffix.contains('.') || suffix.contains('*') {
            return false;
        }
        return match host.split_once('.') {
            Some((label, rest)) => !label.is_empty() && rest.eq_ignore_ascii_case(suffix),
            None => false,
        };
    }
    !pattern.contains('*') && pattern.eq_ignore_ascii_case(host)
}

#[cfg(test)]
mod tests {
    use super::pattern_matches;

    #[test]
    fn patterns_match_as_openssl_does() {
        assert!(pattern_matches("localhost", "LocalHost"));
        assert!(pattern_matches("localhost", "localhost."));
        assert!(!pattern_matches("localhost", "localhost2"));
        assert!(pattern_matches("*.example.com", "a.example.com"));
        assert!(!pattern_matches("*.example.com", "a.b.example.com"));
        assert!(!pattern_matches("*.example.com", "example.com"));
        assert!(!pattern_matches("*.com", "example.com"));
        assert!(!pattern_matches("w*.example.com", "www.example.com"));
    }
}
