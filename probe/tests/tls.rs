//! wss:// canaries: TLS verification is on by default, `ca_file` adds a root, and
//! `insecure_skip_verify` is an explicit opt-out. Certificates come from the openssl CLI.

mod support;

use std::path::Path;

use serde_json::Value;
use support::once_json;

fn openssl(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is missing: install it (apt-get install -y openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `openssl req` making a fresh P-256 key `key` and writing `out` (a CSR, or with `-x509` a
/// self-signed certificate).
fn new_key_request(dir: &Path, x509: bool, key: &str, out: &str, subject: &str) {
    let mut args = vec!["req"];
    if x509 {
        args.extend(["-x509", "-days", "2"]);
    }
    args.extend([
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ]);
    args.extend(["-keyout", key, "-out", out, "-subj", subject]);
    openssl(dir, &args);
}

/// A private CA and a leaf for localhost/127.0.0.1 signed by it.
fn make_certs(dir: &Path) {
    new_key_request(dir, true, "ca.key", "ca.pem", "/CN=wsmon test CA");
    new_key_request(dir, false, "leaf.key", "leaf.csr", "/CN=localhost");
    std::fs::write(
        dir.join("leaf.ext"),
        "basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let sign = "x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out leaf.pem -days 2 -extfile leaf.ext";
    openssl(dir, &sign.split(' ').collect::<Vec<_>>());
}

fn yaml(addr: std::net::SocketAddr, tls: &str) -> String {
    format!(
        "canaries:\n  - name: tls\n    url: wss://127.0.0.1:{}/ws\n    connect_timeout: 2s\n    sequence: {{ pointer: /seq }}\n{tls}",
        addr.port()
    )
}

#[tokio::test]
async fn wss_verifies_certificates_by_default_and_trusts_a_configured_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    make_certs(dir.path());
    let addr =
        support::tls::wss_server(&dir.path().join("leaf.pem"), &dir.path().join("leaf.key")).await;

    let (code, v) = once_json(&yaml(addr, ""), "1s").await;
    assert_eq!(code, 1);
    assert_eq!(
        v["failure_reason"], "tls_untrusted",
        "an unknown CA must be rejected: {v}"
    );
    assert_eq!(v["connect_seconds"]["tls"], Value::Null);

    let ca = dir.path().join("ca.pem");
    let (code, v) = once_json(
        &yaml(addr, &format!("    tls: {{ ca_file: {} }}\n", ca.display())),
        "1s",
    )
    .await;
    assert_eq!(code, 0, "{v}");
    assert!(v["connect_seconds"]["tls"].as_f64().is_some(), "{v}");
    assert_eq!(v["messages"], 5, "{v}");

    let (code, v) = once_json(
        &yaml(addr, "    tls: { insecure_skip_verify: true }\n"),
        "1s",
    )
    .await;
    assert_eq!(code, 0, "{v}");
}

fn localhost_yaml(addr: std::net::SocketAddr, host: &str, ca_file: Option<&Path>) -> String {
    let tls = ca_file.map_or(String::new(), |p| {
        format!("    tls: {{ ca_file: {} }}\n", p.display())
    });
    yaml(addr, &tls).replace("wss://127.0.0.1:", &format!("wss://{host}:"))
}

/// Issue 12, defect 7: the self-signed certificate `openssl req -x509` makes by default is
/// marked `CA:TRUE`. Without `ca_file` it is `tls_untrusted`, like any self-signed one; with
/// `ca_file` naming that very certificate it passes, as with curl and OpenSSL, and its name
/// is still checked.
#[tokio::test]
async fn a_self_signed_ca_true_certificate_is_untrusted_until_ca_file_names_it() {
    let dir = tempfile::tempdir().unwrap();
    openssl(
        dir.path(),
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-keyout",
            "self.key",
            "-out",
            "self.pem",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
        ],
    );
    let cert = dir.path().join("self.pem");
    let text = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("CA:TRUE"),
        "the shape under test is openssl's default CA:TRUE"
    );
    let addr = support::tls::wss_server(&cert, &dir.path().join("self.key")).await;

    let (code, v) = once_json(&localhost_yaml(addr, "localhost", None), "1s").await;
    assert_eq!(
        (code, &v["failure_reason"]),
        (1, &Value::from("tls_untrusted")),
        "{v}"
    );

    let (code, v) = once_json(&localhost_yaml(addr, "localhost", Some(&cert)), "1s").await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["messages"], 5, "{v}");

    // Trusted for DNS:localhost only, so the same certificate at 127.0.0.1 is the wrong host.
    let (code, v) = once_json(&localhost_yaml(addr, "127.0.0.1", Some(&cert)), "1s").await;
    assert_eq!(
        (code, &v["failure_reason"]),
        (1, &Value::from("tls_hostname")),
        "{v}"
    );
}

/// The pinned certificate's validity is still checked: an expired `CA:TRUE` self-signed
/// certificate in `ca_file` is `tls_expired`.
#[tokio::test]
async fn an_expired_self_signed_ca_true_certificate_in_ca_file_is_tls_expired() {
    let dir = tempfile::tempdir().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.not_before = rcgen::date_time_ymd(2019, 1, 1);
    params.not_after = rcgen::date_time_ymd(2020, 1, 1);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let (cert_path, key_path) = (dir.path().join("old.pem"), dir.path().join("old.key"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let addr = support::tls::wss_server(&cert_path, &key_path).await;

    let (code, v) = once_json(&localhost_yaml(addr, "localhost", Some(&cert_path)), "1s").await;
    assert_eq!(
        (code, &v["failure_reason"]),
        (1, &Value::from("tls_expired")),
        "{v}"
    );
}
