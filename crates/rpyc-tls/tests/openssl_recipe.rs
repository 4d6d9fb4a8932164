//! The verifiers against certificates made with the openssl CLI at test time
//! (scripts/openssl-recipe-certs.sh: upstream RPyC's test_ssl.py recipe and negative shapes,
//! plus a few made here): what OpenSSL accepts is accepted, and each refusal has its reason.
//! Needs the `openssl` command; without it the test says so and checks nothing.

use rpyc_tls::{ClientVerifier, ServerVerifier, TrustAnchors};
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use rustls::{CertificateError, Error};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

struct Pki(PathBuf);

impl Pki {
    fn make() -> Option<Pki> {
        if Command::new("openssl").arg("version").output().is_err() {
            eprintln!("openssl_recipe: the openssl command is missing; nothing checked");
            return None;
        }
        let dir = std::env::temp_dir().join(format!("rpyc-tls-recipe-{}", std::process::id()));
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/openssl-recipe-certs.sh");
        let ok = Command::new("bash")
            .arg(script)
            .arg(&dir)
            .status()
            .expect("bash runs");
        assert!(ok.success(), "openssl-recipe-certs.sh failed");
        let pki = Pki(dir);
        // A CA with nameConstraints, and a v1 leaf it signed.
        pki.openssl(&["genrsa", "-out", "nc.key", "2048"]);
        pki.openssl(&[
            "req",
            "-new",
            "-x509",
            "-key",
            "nc.key",
            "-out",
            "nc.crt",
            "-subj",
            "/CN=nc",
            "-addext",
            "nameConstraints=critical,permitted;DNS:example.com",
        ]);
        pki.openssl(&["genrsa", "-out", "ncleaf.key", "2048"]);
        pki.openssl(&[
            "req",
            "-new",
            "-key",
            "ncleaf.key",
            "-out",
            "ncleaf.csr",
            "-subj",
            "/CN=localhost",
        ]);
        pki.openssl(&[
            "x509",
            "-req",
            "-in",
            "ncleaf.csr",
            "-CA",
            "nc.crt",
            "-CAkey",
            "nc.key",
            "-out",
            "ncleaf.crt",
        ]);
        // Self-signed CA certificates with an unknown critical extension / for clients only.
        pki.openssl(&[
            "req",
            "-new",
            "-x509",
            "-key",
            "server.key",
            "-out",
            "crit.crt",
            "-subj",
            "/CN=localhost",
            "-addext",
            "1.2.3.4=critical,ASN1:NULL",
        ]);
        pki.openssl(&[
            "req",
            "-new",
            "-x509",
            "-key",
            "server.key",
            "-out",
            "clientonly.crt",
            "-subj",
            "/CN=localhost",
            "-addext",
            "extendedKeyUsage=clientAuth",
        ]);
        Some(pki)
    }

    fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(&self.0)
            .output();
        let out = out.expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn certs(&self, file: &str) -> Vec<CertificateDer<'static>> {
        CertificateDer::pem_file_iter(self.0.join(file))
            .expect("readable")
            .collect::<Result<_, _>>()
            .expect("PEM")
    }

    fn cert(&self, file: &str) -> CertificateDer<'static> {
        self.certs(file).remove(0)
    }

    fn anchors(&self, file: &str) -> Arc<TrustAnchors> {
        Arc::new(TrustAnchors::from_certs(self.certs(file)).0)
    }

    fn server(&self, ca: &str, leaf: &str, host: &str, check: bool) -> Result<(), Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = ServerVerifier::new(self.anchors(ca), provider, check).expect("verifier");
        let name = ServerName::try_from(host.to_owned()).expect("name");
        verifier
            .verify_server_cert(&self.cert(leaf), &[], &name, &[], UnixTime::now())
            .map(|_| ())
    }

    fn client_at(&self, ca: &str, leaf: &str, now: UnixTime) -> Result<(), Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = ClientVerifier::new(self.anchors(ca), provider, false).expect("verifier");
        verifier
            .verify_client_cert(&self.cert(leaf), &[], now)
            .map(|_| ())
    }

    fn client(&self, ca: &str, leaf: &str) -> Result<(), Error> {
        self.client_at(ca, leaf, UnixTime::now())
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn cert_error(r: Result<(), Error>) -> CertificateError {
    match r {
        Err(Error::InvalidCertificate(e)) => e,
        other => panic!("expected a certificate error, got {other:?}"),
    }
}

fn other_message(r: Result<(), Error>) -> String {
    match cert_error(r) {
        CertificateError::Other(o) => o.0.to_string(),
        e => panic!("expected a reasoned refusal, got {e:?}"),
    }
}

#[test]
fn openssl_recipe_shapes() {
    let Some(pki) = Pki::make() else { return };
    use CertificateError::*;

    // What OpenSSL accepts.
    pki.server("server.crt", "server.crt", "localhost", true)
        .expect("self-signed CA pinned");
    pki.server("v1-self.crt", "v1-self.crt", "LOCALHOST", true)
        .expect("self-signed v1 pinned");
    pki.client("client-server.bundle.crt", "client.crt")
        .expect("v1 client, bundle");
    pki.client("server.crt", "client.crt")
        .expect("v1 client, its CA only");
    pki.server("server.crt", "client.crt", "client", true)
        .expect("v1 leaf, CN=client");

    // Host names: the commonName only for DNS names; check_hostname=False skips the name.
    let e = cert_error(pki.server("server.crt", "server.crt", "127.0.0.1", true));
    assert!(matches!(e, NotValidForNameContext { .. }), "{e:?}");
    let e = cert_error(pki.server("wronghost.crt", "wronghost.crt", "localhost", true));
    assert!(
        matches!(e, NotValidForNameContext { ref presented, .. }
        if presented == &["CN:example.invalid".to_owned()]),
        "{e:?}"
    );
    pki.server("wronghost.crt", "wronghost.crt", "localhost", false)
        .expect("no name check");
    let e = cert_error(pki.server("server.crt", "client.crt", "localhost", true));
    assert!(matches!(e, NotValidForNameContext { .. }), "{e:?}");

    // Unknown CA: a self-signed certificate that is not in ca_certs (webpki's
    // CaUsedAsEndEntity, said as OpenSSL says it), or that only has the right name.
    assert_eq!(
        cert_error(pki.server("server.crt", "stranger.crt", "stranger", true)),
        UnknownIssuer
    );
    assert_eq!(
        cert_error(pki.server("server.crt", "impostor.crt", "localhost", true)),
        UnknownIssuer
    );

    // v1 leaves: another CA, a forged signature, expired, not yet valid, an issuer that may
    // not issue (client2 by the v1 client.crt), an issuer with nameConstraints.
    assert_eq!(
        cert_error(pki.client("client-server.bundle.crt", "stranger-client.crt")),
        UnknownIssuer
    );
    assert_eq!(
        cert_error(pki.client("client-server.bundle.crt", "forged-client.crt")),
        BadSignature
    );
    let e = cert_error(pki.client("client-server.bundle.crt", "expired-client.crt"));
    assert!(matches!(e, ExpiredContext { .. }), "{e:?}");
    let e = cert_error(pki.client_at(
        "server.crt",
        "client.crt",
        UnixTime::since_unix_epoch(Duration::from_secs(1_000_000)),
    ));
    assert!(matches!(e, NotValidYetContext { .. }), "{e:?}");
    assert_eq!(
        cert_error(pki.client("client-server.bundle.crt", "client2.crt")),
        UnknownIssuer
    );
    let m = other_message(pki.server("nc.crt", "ncleaf.crt", "localhost", false));
    assert!(m.contains("nameConstraints"), "{m}");

    // Pinned CA certificates: unknown critical extensions and the wrong purpose are refused.
    let m = other_message(pki.server("crit.crt", "crit.crt", "localhost", true));
    assert!(
        m.contains("critical extension") && m.contains("1.2.3.4"),
        "{m}"
    );
    assert_eq!(
        cert_error(pki.server("clientonly.crt", "clientonly.crt", "localhost", true)),
        InvalidPurpose
    );
    pki.client("clientonly.crt", "clientonly.crt")
        .expect("clientAuth pinned as a client");
}
