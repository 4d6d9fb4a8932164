//! The server side's verifier of client certificates (mutual TLS).

use crate::anchors::TrustAnchors;
use crate::der::Algorithms;
use crate::leaf::{self, Purpose};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{VerifierBuilderError, WebPkiClientVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};
use std::fmt;
use std::sync::Arc;

/// webpki's client verification, plus the shapes OpenSSL accepts (crate docs). With
/// `optional`, a client without a certificate is let in (`CERT_OPTIONAL`).
pub struct ClientVerifier {
    webpki: Arc<dyn ClientCertVerifier>,
    anchors: Arc<TrustAnchors>,
    algs: Algorithms,
}

impl fmt::Debug for ClientVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientVerifier")
            .field("anchors", &self.anchors.anchors.len())
            .finish()
    }
}

impl ClientVerifier {
    pub fn new(
        anchors: Arc<TrustAnchors>,
        provider: Arc<CryptoProvider>,
        optional: bool,
    ) -> Result<ClientVerifier, VerifierBuilderError> {
        let mut builder =
            WebPkiClientVerifier::builder_with_provider(anchors.store(), Arc::clone(&provider));
        if optional {
            builder = builder.allow_unauthenticated();
        }
        Ok(ClientVerifier {
            webpki: builder.build()?,
            anchors,
            algs: provider.signature_verification_algorithms,
        })
    }
}

impl ClientCertVerifier for ClientVerifier {
    fn offer_client_auth(&self) -> bool {
        self.webpki.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.webpki.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.webpki.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        if let Some(parsed) = leaf::fallback_shape(end_entity, &self.anchors) {
            leaf::verify(
                end_entity,
                &parsed,
                &self.anchors,
                &self.algs,
                now,
                Purpose::Client,
            )?;
            return Ok(ClientCertVerified::assertion());
        }
        self.webpki
            .verify_client_cert(end_entity, intermediates, now)
            .map_err(|e| leaf::explain(e, end_entity))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        let webpki = self.webpki.verify_tls12_signature(message, cert, dss);
        leaf::handshake_signature(webpki, false, message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        let webpki = self.webpki.verify_tls13_signature(message, cert, dss);
        leaf::handshake_signature(webpki, true, message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}
