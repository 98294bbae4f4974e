//! TLS for `wss://` canaries: verification on by default, `ca_file` roots, the explicit
//! `insecure_skip_verify` opt-out, and which certificate problem a failure was.

use std::sync::Arc;

use crate::config::TlsConfig;
use crate::failure::FailureReason;
use crate::measure::Fault;

pub(crate) fn connector(tls: &TlsConfig) -> Result<tokio_rustls::TlsConnector, Fault> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Fault::new(FailureReason::Tls, format!("TLS setup: {e}")))?;
    let mut verifier = Verifier {
        webpki: None,
        pinned: Vec::new(),
        provider: provider.clone(),
    };
    if !tls.insecure_skip_verify {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        if let Some(path) = &tls.ca_file {
            use rustls_pki_types::pem::PemObject;
            let ca_error = |what: &str, e: &dyn std::fmt::Display| {
                Fault::new(
                    FailureReason::Tls,
                    format!("{what} ca_file {}: {e}", path.display()),
                )
            };
            let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
                .map_err(|e| ca_error("reading", &e))?;
            for cert in certs {
                let cert = cert.map_err(|e| ca_error("parsing", &e))?;
                roots
                    .add(cert.clone())
                    .map_err(|e| ca_error("adding", &e))?;
                verifier.pinned.push(cert);
            }
        }
        let webpki =
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| Fault::new(FailureReason::Tls, format!("TLS setup: {e}")))?;
        verifier.webpki = Some(webpki);
    }
    let config = builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// webpki's verification, plus what curl and OpenSSL accept: a server certificate that is
/// itself in `ca_file`, even when marked `CA:TRUE` (`openssl req -x509` does so by default),
/// once its name and validity check out. Handshake signatures are always checked.
#[derive(Debug)]
struct Verifier {
    /// `None` with `insecure_skip_verify: true`: any certificate is accepted.
    webpki: Option<Arc<rustls::client::WebPkiServerVerifier>>,
    /// The certificates of `ca_file`, byte for byte.
    pinned: Vec<rustls_pki_types::CertificateDer<'static>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &rustls_pki_types::CertificateDer<'_>,
        intermediates: &[rustls_pki_types::CertificateDer<'_>],
        server_name: &rustls_pki_types::ServerName<'_>,
        ocsp: &[u8],
        now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let Some(webpki) = &self.webpki else {
            return Ok(rustls::client::danger::ServerCertVerified::assertion());
        };
        match webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(e)
                if is_ca_used_as_end_entity(&e) && self.pinned.iter().any(|p| p == end_entity) =>
            {
                // webpki checks a certificate's validity period before its CA bit, so this
                // error means it is in date (tests/tls.rs holds an expired one to that).
                let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
                rustls::client::verify_server_name(&parsed, server_name)?;
                Ok(rustls::client::danger::ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// webpki's refusal of a certificate marked `CA:TRUE` as the server's own.
fn is_ca_used_as_end_entity(e: &rustls::Error) -> bool {
    matches!(
        e,
        rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other))
            if matches!(other.0.downcast_ref::<webpki::Error>(), Some(webpki::Error::CaUsedAsEndEntity))
    )
}

/// Which certificate problem failed the handshake, from the rustls error inside `e`.
pub(crate) fn failure_reason(e: &std::io::Error) -> FailureReason {
    use rustls::CertificateError as C;
    let Some(error) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return FailureReason::Tls;
    };
    // A self-signed `CA:TRUE` certificate not in ca_file: untrusted, like any self-signed one.
    if is_ca_used_as_end_entity(error) {
        return FailureReason::TlsUntrusted;
    }
    let rustls::Error::InvalidCertificate(cert) = error else {
        return FailureReason::Tls;
    };
    match cert {
        C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. } => {
            FailureReason::TlsExpired
        }
        C::NotValidForName | C::NotValidForNameContext { .. } => FailureReason::TlsHostname,
        C::UnknownIssuer | C::BadSignature => FailureReason::TlsUntrusted,
        _ => FailureReason::Tls,
    }
}
