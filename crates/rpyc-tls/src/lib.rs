//! Certificate verification for rpyc's TLS (rustls), shared by the Python extension and the
//! Rust crate: webpki's verifiers, plus the certificate shapes OpenSSL (and so upstream
//! RPyC over Python's `ssl`) accepts but webpki refuses.
//!
//! Only these shapes take the fallback path, decided from the certificate itself before
//! anything is verified, so no other certificate gets a looser check:
//!
//! - **a CA certificate used as its own leaf**: the certificate is byte-identical to one in
//!   the trust anchors and carries `basicConstraints CA:TRUE` (what `openssl req -x509`
//!   makes by default; webpki refuses it with `CaUsedAsEndEntity`);
//! - **an X.509 v1 certificate** (what `openssl x509 -req` makes without `-extfile`; webpki
//!   cannot parse it: `UnsupportedCertVersion`).
//!
//! Those are verified here: signed directly by a trust anchor that may issue certificates
//! (or self-signed and itself a trust anchor), inside both validity periods, usable for the
//! purpose, no critical extension we do not understand; see `leaf.rs`. Every other
//! certificate is webpki's alone. On top of webpki, the host name check falls back to the
//! subject's commonName when the certificate has no DNS subjectAltName, as OpenSSL does for
//! Python (`name.rs`). The local side's own v1 certificate is accepted too
//! (`certified_key`). `docs/tls.md` lists every difference from OpenSSL that remains.

mod anchors;
mod client;
mod der;
mod identity;
mod leaf;
mod name;
mod server;

pub use anchors::TrustAnchors;
pub use client::ClientVerifier;
pub use identity::certified_key;
pub use server::ServerVerifier;

/// A handshake signature by `cert`'s key, as rustls checks it, and by a v1 certificate's key
/// too: for a verifier that checks nothing else (`cert_reqs=CERT_NONE`), so that an
/// unverified v1 certificate still has to belong to the peer.
pub fn verify_handshake_signature(
    tls13: bool,
    message: &[u8],
    cert: &rustls::pki_types::CertificateDer<'_>,
    dss: &rustls::DigitallySignedStruct,
    algs: &rustls::crypto::WebPkiSupportedAlgorithms,
) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
    let webpki = if tls13 {
        rustls::crypto::verify_tls13_signature(message, cert, dss, algs)
    } else {
        rustls::crypto::verify_tls12_signature(message, cert, dss, algs)
    };
    leaf::handshake_signature(webpki, tls13, message, cert, dss, algs)
}
