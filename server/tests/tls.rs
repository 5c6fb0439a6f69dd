//! TLS in the real `shoal-server` binary (`--tls-cert`, `--tls-key`) with a CA and a server
//! certificate made at test time: `https://` logins and `realms://` sync between two devices
//! of an app that trusts the CA ([`App::with_trusted_ca`]); an app or client without it is
//! refused with a certificate error at once, never left hanging.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::binary::Binary;
use common::notes_config;
use shoal::protocol::sync::WEBSOCKET_SUBPROTOCOL;
use shoal::{App, Credentials, ErrorCode, Realm, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const APP_ID: &str = "io.shoal.tests.tls";

/// A CA, and a certificate for `localhost` and 127.0.0.1 that it signed.
struct TestPki {
    ca_pem: String,
    cert_path: std::path::PathBuf,
    key_path: std::path::PathBuf,
}

fn make_ca(name: &str) -> rcgen::CertifiedIssuer<'static, rcgen::KeyPair> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap()).unwrap()
}

fn make_pki(dir: &Path) -> TestPki {
    let ca = make_ca("Shoal test CA");
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "shoal-server");
    let cert = params.signed_by(&key, &ca).unwrap();
    let cert_path = dir.join("server.pem");
    let key_path = dir.join("server.key");
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    TestPki {
        ca_pem: ca.pem(),
        cert_path,
        key_path,
    }
}

fn start_tls(pki: &TestPki) -> Binary {
    let cert = pki.cert_path.to_str().unwrap();
    let key = pki.key_path.to_str().unwrap();
    Binary::start(&["--tls-cert", cert, "--tls-key", key], "info")
}

/// Logs in, retrying while the server is starting.
fn login(app: &App, auth: &str, register: bool) -> shoal::User {
    let credentials = Credentials::password("tls-user", "pw", register).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match app.login(&credentials, auth) {
            Ok(user) => return user,
            Err(e) if e.code() == ErrorCode::Io && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("login over TLS: {e}"),
        }
    }
}

#[test]
fn two_devices_log_in_over_https_and_sync_over_realms_with_a_trusted_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = make_pki(tmp.path());
    let server = start_tls(&pki);
    let port = server.addr.port();
    let auth = format!("https://localhost:{port}/auth");
    let url = format!("realms://127.0.0.1:{port}/~/notes");

    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let app_a = App::with_trusted_ca(dir_a.path(), APP_ID, pki.ca_pem.as_bytes()).unwrap();
    let app_b = App::with_trusted_ca(dir_b.path(), APP_ID, pki.ca_pem.as_bytes()).unwrap();
    let user_a = login(&app_a, &auth, true);
    let user_b = login(&app_b, &auth, false);
    assert_eq!(user_a.identity(), user_b.identity());

    let realm_a = Realm::open(&notes_config(&user_a, &url)).unwrap();
    realm_a.begin_write().unwrap();
    realm_a
        .create_object("Note", Some(&Value::Int(1)))
        .unwrap()
        .set("text", "over TLS")
        .unwrap();
    realm_a.commit().unwrap();
    realm_a
        .session()
        .unwrap()
        .wait_for_upload(Duration::from_secs(30))
        .expect("upload over wss://");

    let realm_b = Realm::open(&notes_config(&user_b, &url)).unwrap();
    let session_b = realm_b.session().unwrap();
    session_b
        .wait_for_download(Duration::from_secs(30))
        .expect("download over wss://");
    realm_b.refresh().unwrap();
    let note = realm_b
        .find_object("Note", &Value::Int(1))
        .unwrap()
        .expect("the note arrived");
    assert_eq!(note.get("text").unwrap(), Value::String("over TLS".into()));

    // And back: B to A.
    realm_b.begin_write().unwrap();
    realm_b
        .create_object("Note", Some(&Value::Int(2)))
        .unwrap()
        .set("text", "and back")
        .unwrap();
    realm_b.commit().unwrap();
    session_b.wait_for_upload(Duration::from_secs(30)).unwrap();
    realm_a
        .session()
        .unwrap()
        .wait_for_download(Duration::from_secs(30))
        .unwrap();
    realm_a.refresh().unwrap();
    assert!(realm_a
        .find_object("Note", &Value::Int(2))
        .unwrap()
        .is_some());
    assert!(server.log().contains("tls=true"), "{}", server.log());
}

#[test]
fn clients_without_the_ca_are_refused_with_a_certificate_error_not_a_hang() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = make_pki(tmp.path());
    let server = start_tls(&pki);
    let port = server.addr.port();
    let auth = format!("https://127.0.0.1:{port}/auth");

    // The public roots (no trusted CA): the login fails at once with the certificate error.
    let dir = tempfile::tempdir().unwrap();
    let app = App::new(dir.path(), APP_ID).unwrap();
    let credentials = Credentials::password("nobody", "pw", true).unwrap();
    let started = Instant::now();
    let error = app.login(&credentials, &auth).unwrap_err();
    assert_eq!(error.code(), ErrorCode::Io, "{error}");
    assert!(
        error.message().to_lowercase().contains("certificate"),
        "{error}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));

    // Another CA: refused the same way.
    let other = tempfile::tempdir().unwrap();
    let other_ca = make_ca("Another CA").pem();
    let app = App::with_trusted_ca(other.path(), APP_ID, other_ca.as_bytes()).unwrap();
    let error = app.login(&credentials, &auth).unwrap_err();
    assert_eq!(error.code(), ErrorCode::Io, "{error}");
    assert!(
        error.message().to_lowercase().contains("certificate"),
        "{error}"
    );

    // A raw wss:// client with the public roots: the handshake fails on the certificate.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let result = runtime.block_on(async {
        let mut request = format!("wss://127.0.0.1:{port}/realm-sync")
            .into_client_request()
            .unwrap();
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            WEBSOCKET_SUBPROTOCOL.parse().unwrap(),
        );
        tokio::time::timeout(
            Duration::from_secs(5),
            tokio_tungstenite::connect_async(request),
        )
        .await
    });
    let error = result.expect("no hang").expect_err("refused");
    assert!(
        error.to_string().to_lowercase().contains("certificate"),
        "{error}"
    );

    // Plain HTTP to the TLS port is not served (closed without an answer).
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into();
    let plain = agent.get(&format!("http://127.0.0.1:{port}/health")).call();
    assert!(plain.is_err(), "{plain:?}");
}

#[test]
fn a_trusted_ca_must_be_pem_certificates() {
    let dir = tempfile::tempdir().unwrap();
    for bad in [
        &b""[..],
        b"not a certificate",
        b"-----BEGIN CERTIFICATE-----\n!!!\n",
    ] {
        let error = App::with_trusted_ca(dir.path(), APP_ID, bad).unwrap_err();
        assert_eq!(error.code(), ErrorCode::InvalidArgument, "{error}");
    }
    // An app of the same directory must not change its roots while it is alive.
    let ca = make_ca("CA one").pem();
    let app = App::with_trusted_ca(dir.path(), APP_ID, ca.as_bytes()).unwrap();
    let again = App::with_trusted_ca(dir.path(), APP_ID, ca.as_bytes());
    assert!(again.is_ok());
    let error = App::new(dir.path(), APP_ID).unwrap_err();
    assert_eq!(error.code(), ErrorCode::InvalidArgument, "{error}");
    drop((app, again));
}

#[test]
fn the_server_refuses_to_start_with_a_missing_or_mismatched_key() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = make_pki(tmp.path());
    let other = make_pki(&{
        let d = tmp.path().join("other");
        std::fs::create_dir(&d).unwrap();
        d
    });
    let data = tmp.path().join("data");
    for (cert, key) in [
        (&pki.cert_path, &tmp.path().join("missing.key")),
        (&pki.cert_path, &other.key_path),
        (&pki.key_path, &pki.key_path),
    ] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_shoal-server"))
            .arg("--data")
            .arg(&data)
            .args(["--listen", "127.0.0.1:0", "--tls-cert"])
            .arg(cert)
            .arg("--tls-key")
            .arg(key)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1), "{output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("TLS"), "{stderr}");
    }
    // --tls-cert alone is a usage error.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_shoal-server"))
        .arg("--data")
        .arg(&data)
        .arg("--tls-cert")
        .arg(&pki.cert_path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
}
