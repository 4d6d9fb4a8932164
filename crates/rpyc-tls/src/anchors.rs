//! The trust anchors: webpki's root store and, for the fallback path, what it needs of each
//! anchor certificate (its bytes, subject, key, validity, whether it may issue).

use crate::der;
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;
use std::sync::Arc;
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::{FromDer, X509Certificate, X509Version};

/// One anchor as the fallback path sees it.
pub(crate) struct Anchor {
    pub der: CertificateDer<'static>,
    pub subject: Vec<u8>,
    /// The DER SubjectPublicKeyInfo.
    pub spki: Vec<u8>,
    pub not_before: i64,
    pub not_after: i64,
    /// Whether OpenSSL would let it issue certificates (`X509_check_ca`): a v3 certificate
    /// with `basicConstraints CA:TRUE` (and `keyCertSign` if it has a keyUsage), or a
    /// self-signed v1 certificate.
    pub may_issue: bool,
    /// It carries nameConstraints, which only webpki enforces: the fallback path does not
    /// use such an anchor.
    pub constrained: bool,
}

impl Anchor {
    fn parse(der: CertificateDer<'static>) -> Option<Anchor> {
        let (rest, cert) = X509Certificate::from_der(der.as_ref()).ok()?;
        if !rest.is_empty() {
            return None;
        }
        let may_issue = match cert.version() {
            X509Version::V1 => cert.subject().as_raw() == cert.issuer().as_raw(),
            _ => {
                let ca = matches!(cert.basic_constraints(), Ok(Some(bc)) if bc.value.ca);
                let signs = match cert.key_usage() {
                    Ok(Some(ku)) => ku.value.key_cert_sign(),
                    Ok(None) => true,
                    Err(_) => false,
                };
                ca && signs
            }
        };
        let constrained = cert.extensions().iter().any(|e| {
            matches!(e.parsed_extension(), ParsedExtension::NameConstraints(_))
                || e.oid.to_id_string() == "2.5.29.30"
        });
        Some(Anchor {
            constrained,
            subject: cert.subject().as_raw().to_vec(),
            spki: cert.public_key().raw.to_vec(),
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
            may_issue,
            der: der.clone(),
        })
    }

    /// Whether `cert` (DER) is signed by this anchor's key.
    pub fn signed(&self, cert: &[u8], algs: &der::Algorithms) -> Result<(), rustls::Error> {
        der::verify_signed(cert, &self.spki, algs)
    }
}

/// The certificates a verifier trusts (`ca_certs`, or the system's store).
pub struct TrustAnchors {
    store: Arc<RootCertStore>,
    pub(crate) anchors: Vec<Anchor>,
}

impl TrustAnchors {
    /// Anchors from certificates, and how many of them could not be used (not parsable).
    pub fn from_certs(certs: Vec<CertificateDer<'static>>) -> (TrustAnchors, usize) {
        let mut store = RootCertStore::empty();
        let (_, rejected) = store.add_parsable_certificates(certs.iter().cloned());
        let anchors = certs.into_iter().filter_map(Anchor::parse).collect();
        (
            TrustAnchors {
                store: Arc::new(store),
                anchors,
            },
            rejected,
        )
    }

    /// No usable anchor at all.
    pub fn is_empty(&self) -> bool {
        self.store.is_empty()
    }

    pub(crate) fn store(&self) -> Arc<RootCertStore> {
        Arc::clone(&self.store)
    }

    /// Whether `cert` is itself one of the anchors, byte for byte.
    pub(crate) fn contains(&self, cert: &[u8]) -> bool {
        self.anchors.iter().any(|a| a.der.as_ref() == cert)
    }
}
