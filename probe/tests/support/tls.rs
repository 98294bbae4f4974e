//! wss:// test servers and their certificates: a private CA and leaves that are good,
//! expired, for another host, or self-signed (made with rcgen, so no clock games).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A wss:// server presenting the PEM certificate chain and key at `cert` and `key`: it sends
/// `{"seq":1}` to `{"seq":5}` and holds the stream.
pub async fn wss_server(cert: &Path, key: &Path) -> SocketAddr {
    use rustls_pki_types::pem::PemObject;
    let certs: Vec<_> = rustls_pki_types::CertificateDer::pem_file_iter(cert)
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    let key = rustls_pki_types::PrivateKeyDer::from_pem_file(key).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut ws) = tokio_tungstenite::accept_async(tls).await else {
                    return;
                };
                for seq in 1..=5u64 {
                    let msg = tokio_tungstenite::tungstenite::Message::text(format!(
                        r#"{{"seq":{seq}}}"#
                    ));
                    if futures_util::SinkExt::send(&mut ws, msg).await.is_err() {
                        return;
                    }
                }
                let _ = tokio::time::timeout(Duration::from_secs(10), async {
                    while let Some(Ok(_)) = futures_util::StreamExt::next(&mut ws).await {}
                })
                .await;
            });
        }
    });
    addr
}

/// What is wrong with a leaf certificate.
#[derive(Debug, Clone, Copy)]
pub enum Leaf {
    /// For 127.0.0.1, signed by the CA, valid now.
    Good,
    /// For 127.0.0.1, signed by the CA, expired in 2020.
    Expired,
    /// Signed by the CA, valid now, but only for `wrong.example`.
    WrongHost,
    /// For 127.0.0.1, valid now, signed by nobody but itself.
    SelfSigned,
}

/// A private CA in `dir`: `ca.pem` for `tls.ca_file`, and leaves made on demand.
pub struct Pki {
    pub ca_file: PathBuf,
    ca: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
    dir: PathBuf,
}

impl Pki {
    pub fn new(dir: &Path) -> Self {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "wsmon hostile test CA");
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca = params.self_signed(&ca_key).unwrap();
        let ca_file = dir.join("ca.pem");
        std::fs::write(&ca_file, ca.pem()).unwrap();
        Self {
            ca_file,
            ca,
            ca_key,
            dir: dir.to_path_buf(),
        }
    }

    /// Writes the leaf's certificate and key; returns their paths.
    pub fn leaf(&self, kind: Leaf) -> (PathBuf, PathBuf) {
        let host = match kind {
            Leaf::WrongHost => "wrong.example",
            _ => "127.0.0.1",
        };
        let mut params = rcgen::CertificateParams::new(vec![host.to_string()]).unwrap();
        if let Leaf::Expired = kind {
            params.not_before = rcgen::date_time_ymd(2019, 1, 1);
            params.not_after = rcgen::date_time_ymd(2020, 1, 1);
        }
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = match kind {
            Leaf::SelfSigned => params.self_signed(&key).unwrap(),
            _ => params.signed_by(&key, &self.ca, &self.ca_key).unwrap(),
        };
        let name = format!("{kind:?}").to_lowercase();
        let (cert_path, key_path) = (
            self.dir.join(format!("{name}.pem")),
            self.dir.join(format!("{name}.key")),
        );
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path)
    }
}
