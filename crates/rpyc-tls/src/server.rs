//! The client side's verifier of server certificates.

use crate::anchors::TrustAnchors;
use crate::der::Algorithms;
use crate::leaf::{self, Purpose};
use crate::name;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::VerifierBuilderError;
use rustls::{CertificateError, DigitallySignedStruct, Error, SignatureScheme};
use std::fmt;
use std::sync::Arc;
use x509_parser::prelude::{FromDer, X509Certificate};

/// webpki's server verification, plus the shapes OpenSSL accepts (crate docs); with
/// `check_hostname` false the chain is verified but not the name.
pub struct ServerVerifier {
    webpki: Arc<WebPkiServerVerifier>,
    anchors: Arc<TrustAnchors>,
    algs: Algorithms,
    check_hostname: bool,
}

impl fmt::Debug for ServerVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerVerifier")
            .field("anchors", &self.anchors.anchors.len())
            .field("check_hostname", &self.check_hostname)
            .finish()
    }
}

impl ServerVerifier {
    pub fn new(
        anchors: Arc<TrustAnchors>,
        provider: Arc<CryptoProvider>,
        check_hostname: bool,
    ) -> Result<ServerVerifier, VerifierBuilderError> {
        let webpki =
            WebPkiServerVerifier::builder_with_provider(anchors.store(), Arc::clone(&provider))
                .build()?;
        Ok(ServerVerifier {
            webpki,
            anchors,
            algs: provider.signature_verification_algorithms,
            check_hostname,
        })
    }
}

impl ServerCertVerifier for ServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        if let Some(parsed) = leaf::fallback_shape(end_entity, &self.anchors) {
            leaf::verify(
                end_entity,
                &parsed,
                &self.anchors,
                &self.algs,
                now,
                Purpose::Server,
            )?;
            if self.check_hostname {
                name::check(end_entity, &parsed, server_name)?;
            }
            return Ok(ServerCertVerified::assertion());
        }
        match self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            // webpki checks the chain (trust, validity, usage) before the name, so a name
            // mismatch means everything else passed.
            Err(Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_hostname => Ok(ServerCertVerified::assertion()),
            Err(
                e @ Error::InvalidCertificate(
                    CertificateError::NotValidForName
                    | CertificateError::NotValidForNameContext { .. },
                ),
            ) => match X509Certificate::from_der(end_entity) {
                Ok((_, parsed)) if name::common_name_matches(&parsed, server_name) => {
                    Ok(ServerCertVerified::assertion())
                }
                _ => Err(e),
            },
            Err(e) => Err(leaf::explain(e, end_entity)),
            ok => ok,
        }
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
