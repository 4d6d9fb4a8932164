//! The local side's own certificate and key. rustls checks that they belong together by
//! parsing the certificate with webpki, which cannot parse a v1 certificate (what
//! `openssl x509 -req` makes): for those the same check is made with x509-parser.

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::{Error, InconsistentKeys};
use x509_parser::prelude::{FromDer, X509Certificate, X509Version};

/// `CertifiedKey::from_der`, accepting a v1 leaf: the key must still be the certificate's.
pub fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, Error> {
    let v1_key = chain
        .first()
        .and_then(|leaf| match X509Certificate::from_der(leaf) {
            Ok((_, parsed)) if parsed.version() == X509Version::V1 => {
                Some(parsed.public_key().raw.to_vec())
            }
            _ => None,
        });
    let Some(cert_spki) = v1_key else {
        return CertifiedKey::from_der(chain, key, provider);
    };
    let signing = provider.key_provider.load_private_key(key)?;
    match signing.public_key() {
        Some(spki) if spki.as_ref() != cert_spki.as_slice() => {
            Err(InconsistentKeys::KeyMismatch.into())
        }
        // (a key that cannot name its public half: rustls lets that pass too)
        _ => Ok(CertifiedKey::new(chain, signing)),
    }
}
