//! Signatures checked from raw DER, for the certificates webpki cannot parse: a minimal,
//! bounds-checked reader of the few DER elements involved (certificate and key framing),
//! and the crypto provider's own verification algorithms, so exactly the signature
//! algorithms rustls accepts elsewhere are accepted here (no SHA-1, as with OpenSSL's
//! default security level).

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::{CertificateError, DigitallySignedStruct, Error, PeerMisbehaved};

pub(crate) type Algorithms = WebPkiSupportedAlgorithms;

const SEQUENCE: u8 = 0x30;
const BIT_STRING: u8 = 0x03;

/// One DER element at the start of `input`: its tag, its contents, and the bytes after it.
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let (len_bytes, rest) = rest.split_at(n);
        let len = len_bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, rest)
    };
    if rest.len() < len {
        return None;
    }
    let (contents, after) = rest.split_at(len);
    Some((tag, contents, after))
}

fn expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    match element(input)? {
        (t, contents, after) if t == tag => Some((contents, after)),
        _ => None,
    }
}

/// A BIT STRING's bits; keys and signatures are whole bytes.
fn whole_bytes(bits: &[u8]) -> Option<&[u8]> {
    match bits.split_first()? {
        (0, bytes) => Some(bytes),
        _ => None,
    }
}

/// The signed part of a certificate (its tbsCertificate element, whole), the contents of
/// its signatureAlgorithm, and the signature.
fn signed_parts(cert: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let (body, trailing) = expect(cert, SEQUENCE)?;
    if !trailing.is_empty() {
        return None;
    }
    let (_, after_tbs) = expect(body, SEQUENCE)?;
    let tbs = &body[..body.len() - after_tbs.len()];
    let (alg, rest) = expect(after_tbs, SEQUENCE)?;
    let (bits, rest) = expect(rest, BIT_STRING)?;
    if !rest.is_empty() {
        return None;
    }
    Some((tbs, alg, whole_bytes(bits)?))
}

/// The contents of a SubjectPublicKeyInfo's algorithm, and the key.
fn key_parts(spki: &[u8]) -> Option<(&[u8], &[u8])> {
    let (body, _) = expect(spki, SEQUENCE)?;
    let (alg, rest) = expect(body, SEQUENCE)?;
    let (bits, _) = expect(rest, BIT_STRING)?;
    Some((alg, whole_bytes(bits)?))
}

/// Whether `cert` carries a valid signature by the key `issuer_spki`.
pub(crate) fn verify_signed(
    cert: &[u8],
    issuer_spki: &[u8],
    algs: &Algorithms,
) -> Result<(), Error> {
    let (tbs, sig_alg, signature) =
        signed_parts(cert).ok_or(Error::InvalidCertificate(CertificateError::BadEncoding))?;
    let (key_alg, key) =
        key_parts(issuer_spki).ok_or(Error::InvalidCertificate(CertificateError::BadEncoding))?;
    let alg = algs
        .all
        .iter()
        .find(|a| {
            a.signature_alg_id().as_ref() == sig_alg && a.public_key_alg_id().as_ref() == key_alg
        })
        .ok_or_else(|| {
            Error::InvalidCertificate(
                CertificateError::UnsupportedSignatureAlgorithmForPublicKeyContext {
                    signature_algorithm_id: sig_alg.to_vec(),
                    public_key_algorithm_id: key_alg.to_vec(),
                },
            )
        })?;
    alg.verify_signature(key, tbs, signature)
        .map_err(|_| Error::InvalidCertificate(CertificateError::BadSignature))
}

/// A TLS 1.2 handshake signature by the key `spki` (rustls offers this only for TLS 1.3
/// raw keys): the scheme must be one the provider maps, and its algorithm fit the key.
pub(crate) fn verify_tls12_raw(
    message: &[u8],
    spki: &[u8],
    dss: &DigitallySignedStruct,
    algs: &Algorithms,
) -> Result<HandshakeSignatureValid, Error> {
    let candidates = algs
        .mapping
        .iter()
        .find(|(scheme, _)| *scheme == dss.scheme)
        .map(|(_, candidates)| *candidates)
        .ok_or(Error::PeerMisbehaved(
            PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme,
        ))?;
    let (key_alg, key) =
        key_parts(spki).ok_or(Error::InvalidCertificate(CertificateError::BadEncoding))?;
    let alg = candidates
        .iter()
        .find(|a| a.public_key_alg_id().as_ref() == key_alg)
        .ok_or_else(|| {
            Error::InvalidCertificate(
                CertificateError::UnsupportedSignatureAlgorithmForPublicKeyContext {
                    signature_algorithm_id: Vec::new(),
                    public_key_algorithm_id: key_alg.to_vec(),
                },
            )
        })?;
    alg.verify_signature(key, message, dss.signature())
        .map(|_| HandshakeSignatureValid::assertion())
        .map_err(|_| Error::InvalidCertificate(CertificateError::BadSignature))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_and_overlong_elements_are_refused() {
        assert!(element(&[]).is_none());
        assert!(element(&[0x30]).is_none());
        assert!(element(&[0x30, 0x05, 1, 2]).is_none());
        assert!(element(&[0x30, 0x85, 1, 1, 1, 1, 1]).is_none());
        assert!(element(&[0x30, 0x82, 0xff]).is_none());
        assert_eq!(
            element(&[0x30, 0x01, 7, 9]),
            Some((0x30, &[7u8][..], &[9u8][..]))
        );
        assert!(whole_bytes(&[3, 0xff]).is_none());
        assert!(signed_parts(&[0x30, 0x00]).is_none());
    }
}
