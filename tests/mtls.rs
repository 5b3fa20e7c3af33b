//! Mutual TLS between the roles, with real handshakes over 127.0.0.1 and real
//! certificates made by `pki::init` in temporary directories.
//!
//! Accepted: an allowed front-end calling an acquirer's edge, the handler seeing who
//! calls. Refused, the handler never reached (each edge counts its handler's calls): a
//! client without a certificate, a terminal calling an acquirer that accepts front-ends
//! only, a front-end certified by another CA, and a server holding a terminal's
//! certificate where the client expects an acquirer (a forged acquirer). Then the test
//! PKI itself: no overwriting, key files 0600, `issue` extending a CA; and the CLI.

mod common;
use common::TempDir;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::extract::Extension;
use axum::routing::{get, post};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{AlertDescription, CertificateError};
use telepay::net::pki::{self, InitOptions, PeerName, PkiError};
use telepay::net::serve::{ClientError, PeerClient, PeerRoutes, https_client, serve_tls};
use telepay::net::tls::{TlsIdentity, client_config, server_config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

fn peer(text: &str) -> PeerName {
    text.parse().expect("a valid peer name")
}

/// A PKI with the peers the tests use.
fn make_pki(name: &str) -> TempDir {
    let dir = TempDir::new(name);
    let peers = [
        "frontend:fe1",
        "acquirer-card:acq1",
        "acquirer-card:acq2",
        "telecollection:centre",
        "terminal:t1",
    ]
    .map(peer);
    pki::init(dir.path(), &peers, &InitOptions::default()).expect("pki init");
    dir
}

fn identity(dir: &Path, name: &str) -> TlsIdentity {
    TlsIdentity::load_dir(dir, &peer(name)).expect("the identity loads")
}

/// An edge serving `GET /whoami` (answers the caller's name) and `POST /echo`, counting
/// the requests that reach its handlers.
struct Edge {
    address: SocketAddr,
    calls: Arc<AtomicUsize>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Edge {
    async fn start(identity: &TlsIdentity, allowed: &str) -> Edge {
        let calls = Arc::new(AtomicUsize::new(0));
        let whoami_calls = Arc::clone(&calls);
        let echo_calls = Arc::clone(&calls);
        let router = Router::new()
            .route(
                "/whoami",
                get(move |Extension(caller): Extension<PeerName>| {
                    whoami_calls.fetch_add(1, Ordering::SeqCst);
                    async move { caller.to_string() }
                }),
            )
            .route(
                "/echo",
                post(
                    move |Extension(caller): Extension<PeerName>, body: String| {
                        echo_calls.fetch_add(1, Ordering::SeqCst);
                        async move { format!("{caller} said {body}") }
                    },
                ),
            );
        let config = server_config(identity, allowed.parse().expect("allowed peers"))
            .expect("a server configuration");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let address = listener.local_addr().expect("its address");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve_tls(listener, config, router, async move {
            let _ = stopped.await;
        }));
        Edge {
            address,
            calls,
            stop: Some(stop),
            task,
        }
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// Stops the edge; serve_tls returns Ok.
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let result = tokio::time::timeout(std::time::Duration::from_secs(15), self.task)
            .await
            .expect("serve_tls returns after shutdown")
            .expect("the task did not panic");
        assert!(result.is_ok(), "{result:?}");
    }
}

/// A client as `identity`, reaching `server` (a peer name) at `edge`'s address.
fn client(identity: &TlsIdentity, server: &str, edge: &Edge) -> PeerClient {
    https_client(identity, PeerRoutes::new().with(peer(server), edge.address)).expect("a client")
}

fn tls_error(error: &ClientError) -> &rustls::Error {
    error
        .tls_error()
        .unwrap_or_else(|| panic!("no TLS error behind {error:?}"))
}

#[tokio::test]
async fn an_allowed_front_end_calls_an_acquirer_and_is_named() {
    let dir = make_pki("mtls-accept");
    let edge = Edge::start(&identity(dir.path(), "acquirer-card:acq1"), "role:frontend").await;
    let fe1 = client(
        &identity(dir.path(), "frontend:fe1"),
        "acq1.acquirer-card.telepay",
        &edge,
    );
    let acq1 = peer("acq1.acquirer-card.telepay");

    let response = fe1.get(&acq1, "/whoami").await.expect("the call succeeds");
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), axum::http::Version::HTTP_11);
    assert_eq!(response.body().as_ref(), b"fe1.frontend.telepay");

    let response = fe1
        .post_json(&acq1, "/echo", &serde_json::json!({"amount": 1250}))
        .await
        .expect("the second call succeeds");
    assert_eq!(
        response.body().as_ref(),
        br#"fe1.frontend.telepay said {"amount":1250}"#
    );
    assert_eq!(edge.calls(), 2);
    edge.stop().await;
}

#[tokio::test]
async fn the_edge_speaks_http2_when_offered() {
    let dir = make_pki("mtls-h2");
    let edge = Edge::start(&identity(dir.path(), "acquirer-card:acq1"), "role:frontend").await;
    // client_config offers h2 then http/1.1 (ALPN, RFC 7301); the edge picks h2 and
    // answers an HTTP/2 request from the front-end, naming it.
    let connector = tokio_rustls::TlsConnector::from(
        client_config(&identity(dir.path(), "frontend:fe1")).expect("a client configuration"),
    );
    let tcp = tokio::net::TcpStream::connect(edge.address)
        .await
        .expect("tcp");
    let name = ServerName::try_from("acq1.acquirer-card.telepay").expect("a server name");
    let tls = connector.connect(name, tcp).await.expect("the handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .expect("the HTTP/2 handshake");
    tokio::spawn(connection);
    let request = axum::http::Request::get("https://acq1.acquirer-card.telepay/whoami")
        .body(http_body_util::Empty::<hyper::body::Bytes>::new())
        .expect("a request");
    let response = sender.send_request(request).await.expect("an answer");
    assert_eq!(response.version(), axum::http::Version::HTTP_2);
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .expect("the body")
        .to_bytes();
    assert_eq!(body.as_ref(), b"fe1.frontend.telepay");
    assert_eq!(edge.calls(), 1);
    edge.stop().await;
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused() {
    let dir = make_pki("mtls-nocert");
    let edge = Edge::start(&identity(dir.path(), "acquirer-card:acq1"), "role:frontend").await;

    // A client that trusts the CA but presents no certificate.
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_file_iter(dir.file("ca.pem")).expect("ca.pem") {
        roots
            .add(certificate.expect("a certificate"))
            .expect("a root");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .expect("TLS 1.3")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(edge.address)
        .await
        .expect("the TCP connection");
    let name = ServerName::try_from("acq1.acquirer-card.telepay").expect("a server name");
    let outcome = async {
        // In TLS 1.3 the client finishes its side of the handshake before the server has
        // checked its (empty) certificate: the refusal is the alert it reads next.
        let mut tls = connector.connect(name, tcp).await?;
        tls.write_all(b"GET /whoami HTTP/1.1\r\nhost: acq1.acquirer-card.telepay\r\n\r\n")
            .await?;
        let mut answer = Vec::new();
        tls.read_to_end(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    }
    .await;
    let error = outcome.expect_err("the server refuses the connection");
    let cause = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    assert_eq!(
        cause,
        Some(&rustls::Error::AlertReceived(
            AlertDescription::CertificateRequired
        )),
        "{error:?}"
    );
    assert_eq!(edge.calls(), 0);

    // The edge goes on serving after the refusal.
    let fe1 = client(
        &identity(dir.path(), "frontend:fe1"),
        "acq1.acquirer-card.telepay",
        &edge,
    );
    let response = fe1
        .get(&peer("acq1.acquirer-card.telepay"), "/whoami")
        .await
        .expect("an allowed peer is served");
    assert_eq!(response.body().as_ref(), b"fe1.frontend.telepay");
    assert_eq!(edge.calls(), 1);
    edge.stop().await;
}

#[tokio::test]
async fn a_terminal_cannot_call_an_acquirer() {
    let dir = make_pki("mtls-role");
    let edge = Edge::start(&identity(dir.path(), "acquirer-card:acq1"), "role:frontend").await;
    let t1 = client(
        &identity(dir.path(), "terminal:t1"),
        "acq1.acquirer-card.telepay",
        &edge,
    );

    let error = t1
        .get(&peer("acq1.acquirer-card.telepay"), "/whoami")
        .await
        .expect_err("a terminal is refused");
    assert_eq!(
        tls_error(&error),
        &rustls::Error::AlertReceived(AlertDescription::AccessDenied),
        "{error}"
    );
    assert_eq!(edge.calls(), 0);
    edge.stop().await;
}

#[tokio::test]
async fn an_exact_allow_list_accepts_only_the_named_peer() {
    let dir = make_pki("mtls-exact");
    let edge = Edge::start(
        &identity(dir.path(), "telecollection:centre"),
        "acq1.acquirer-card.telepay",
    )
    .await;
    let centre = peer("centre.telecollection.telepay");
    let acq2 = client(
        &identity(dir.path(), "acquirer-card:acq2"),
        "centre.telecollection.telepay",
        &edge,
    );
    let error = acq2
        .get(&centre, "/whoami")
        .await
        .expect_err("acq2 is not named");
    assert_eq!(
        tls_error(&error),
        &rustls::Error::AlertReceived(AlertDescription::AccessDenied)
    );
    assert_eq!(edge.calls(), 0);

    let acq1 = client(
        &identity(dir.path(), "acquirer-card:acq1"),
        "centre.telecollection.telepay",
        &edge,
    );
    let response = acq1.get(&centre, "/whoami").await.expect("acq1 is named");
    assert_eq!(response.body().as_ref(), b"acq1.acquirer-card.telepay");
    assert_eq!(edge.calls(), 1);
    edge.stop().await;
}

#[tokio::test]
async fn a_front_end_of_another_ca_is_refused() {
    let ours = make_pki("mtls-ours");
    let theirs = make_pki("mtls-theirs");
    let edge = Edge::start(
        &identity(ours.path(), "acquirer-card:acq1"),
        "role:frontend",
    )
    .await;
    let acq1 = peer("acq1.acquirer-card.telepay");

    // Their fe1, trusting both CAs (so that it accepts our acquirer): our acquirer
    // refuses its certificate, issued by a CA it does not trust.
    let bundle = theirs.file("both-cas.pem");
    let mut both = std::fs::read(theirs.file("ca.pem")).expect("their CA");
    both.extend(std::fs::read(ours.file("ca.pem")).expect("our CA"));
    std::fs::write(&bundle, both).expect("the bundle");
    let fe1 = peer("frontend:fe1");
    let foreign = TlsIdentity::load(
        &fe1.cert_path(theirs.path()),
        &fe1.key_path(theirs.path()),
        &bundle,
    )
    .expect("their fe1 loads under the bundle");
    let error = client(&foreign, "acq1.acquirer-card.telepay", &edge)
        .get(&acq1, "/whoami")
        .await
        .expect_err("our acquirer refuses their front-end");
    assert_eq!(
        tls_error(&error),
        &rustls::Error::AlertReceived(AlertDescription::UnknownCA),
        "{error}"
    );

    // Their fe1 trusting only their CA refuses our acquirer in turn.
    let error = client(
        &identity(theirs.path(), "frontend:fe1"),
        "acq1.acquirer-card.telepay",
        &edge,
    )
    .get(&acq1, "/whoami")
    .await
    .expect_err("their front-end refuses our acquirer");
    assert_eq!(
        tls_error(&error),
        &rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
        "{error}"
    );
    assert_eq!(edge.calls(), 0);
    edge.stop().await;
}

#[tokio::test]
async fn a_forged_acquirer_is_refused_by_the_front_end() {
    let dir = make_pki("mtls-forged");
    // A server holding t1's certificate (valid, same CA) where acq1 is expected.
    let forged = Edge::start(&identity(dir.path(), "terminal:t1"), "role:frontend").await;
    let fe1 = client(
        &identity(dir.path(), "frontend:fe1"),
        "acq1.acquirer-card.telepay",
        &forged,
    );
    let error = fe1
        .get(&peer("acq1.acquirer-card.telepay"), "/whoami")
        .await
        .expect_err("the front-end refuses the forged acquirer");
    assert!(
        matches!(
            tls_error(&error),
            rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
            )
        ),
        "{error}"
    );
    assert_eq!(forged.calls(), 0);
    forged.stop().await;
}

#[tokio::test]
async fn a_client_reaches_only_routed_peers() {
    let dir = make_pki("mtls-route");
    let edge = Edge::start(&identity(dir.path(), "acquirer-card:acq1"), "role:frontend").await;
    let fe1 = client(
        &identity(dir.path(), "frontend:fe1"),
        "acq1.acquirer-card.telepay",
        &edge,
    );
    let error = fe1
        .get(&peer("acq2.acquirer-card.telepay"), "/whoami")
        .await
        .expect_err("no route");
    assert!(
        matches!(&error, ClientError::NoRoute { peer } if peer.instance() == "acq2"),
        "{error:?}"
    );
    let error = fe1
        .get(&peer("acq1.acquirer-card.telepay"), "whoami")
        .await
        .expect_err("not a path");
    assert!(
        matches!(&error, ClientError::BadPath { path, .. } if path == "whoami"),
        "{error:?}"
    );
    assert_eq!(edge.calls(), 0);
    edge.stop().await;
}

#[tokio::test]
async fn the_edge_survives_garbage_and_silence() {
    let dir = make_pki("mtls-garbage");
    let edge = Edge::start(&identity(dir.path(), "acquirer-card:acq1"), "role:frontend").await;
    // Plain HTTP on the TLS port, then a connection that closes at once.
    let mut plain = tokio::net::TcpStream::connect(edge.address)
        .await
        .expect("tcp");
    plain
        .write_all(b"GET /whoami HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .expect("written");
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer).await;
    assert!(!answer.starts_with(b"HTTP/"), "{answer:?}");
    drop(
        tokio::net::TcpStream::connect(edge.address)
            .await
            .expect("tcp"),
    );

    let fe1 = client(
        &identity(dir.path(), "frontend:fe1"),
        "acq1.acquirer-card.telepay",
        &edge,
    );
    let response = fe1
        .get(&peer("acq1.acquirer-card.telepay"), "/whoami")
        .await
        .expect("still serving");
    assert_eq!(response.body().as_ref(), b"fe1.frontend.telepay");
    assert_eq!(edge.calls(), 1);
    edge.stop().await;
}

#[tokio::test]
async fn an_issued_leaf_chains_to_the_existing_ca() {
    let dir = make_pki("mtls-issue");
    let report = pki::issue(
        dir.path(),
        &[peer("frontend:fe3"), peer("terminal:t3")],
        &InitOptions::default(),
    )
    .expect("issue");
    let written: Vec<_> = report
        .written
        .iter()
        .map(|file| {
            file.path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(
        written,
        [
            "fe3.frontend.telepay.pem",
            "fe3.frontend.telepay-key.pem",
            "t3.terminal.telepay.pem",
            "t3.terminal.telepay-key.pem",
        ]
    );
    let edge = Edge::start(&identity(dir.path(), "acquirer-card:acq1"), "role:frontend").await;
    let fe3 = client(
        &identity(dir.path(), "frontend:fe3"),
        "acq1.acquirer-card.telepay",
        &edge,
    );
    let response = fe3
        .get(&peer("acq1.acquirer-card.telepay"), "/whoami")
        .await
        .expect("the new front-end is accepted");
    assert_eq!(response.body().as_ref(), b"fe3.frontend.telepay");
    edge.stop().await;
}

#[test]
fn init_refuses_to_overwrite_unless_forced() {
    let dir = make_pki("pki-overwrite");
    let before = std::fs::read(dir.file("ca.pem")).expect("ca.pem");
    let fe1 = [peer("frontend:fe1")];
    match pki::init(dir.path(), &fe1, &InitOptions::default()) {
        Err(PkiError::Exists { path }) => assert_eq!(path, dir.file("ca.pem")),
        other => panic!("{other:?}"),
    }
    assert_eq!(std::fs::read(dir.file("ca.pem")).expect("ca.pem"), before);

    // A fresh directory where only one peer's key exists: refused before anything is
    // written, the error naming that file.
    let fresh = TempDir::new("pki-one-file");
    std::fs::write(fresh.file("fe1.frontend.telepay-key.pem"), "mine").expect("a file");
    match pki::init(fresh.path(), &fe1, &InitOptions::default()) {
        Err(PkiError::Exists { path }) => {
            assert_eq!(path, fresh.file("fe1.frontend.telepay-key.pem"))
        }
        other => panic!("{other:?}"),
    }
    assert!(!fresh.file("ca.pem").exists());
    let mut names: Vec<_> = std::fs::read_dir(fresh.path())
        .expect("the directory")
        .map(|entry| entry.expect("an entry").file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["fe1.frontend.telepay-key.pem"]);

    let forced = InitOptions {
        force: true,
        ..InitOptions::default()
    };
    let report = pki::init(dir.path(), &fe1, &forced).expect("forced");
    assert_eq!(report.written.len(), 4);
    assert_ne!(std::fs::read(dir.file("ca.pem")).expect("ca.pem"), before);
    // No temporary file is left behind.
    assert!(
        std::fs::read_dir(dir.path())
            .expect("the directory")
            .all(|entry| !entry
                .expect("an entry")
                .file_name()
                .to_string_lossy()
                .ends_with(".tmp"))
    );

    match pki::init(
        dir.path(),
        &[peer("terminal:t1"), peer("t1.terminal.telepay")],
        &forced,
    ) {
        Err(PkiError::DuplicatePeer { peer: twice }) => assert_eq!(twice, peer("terminal:t1")),
        other => panic!("{other:?}"),
    }
}

#[cfg(unix)]
#[test]
fn key_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = make_pki("pki-modes");
    let mode = |name: &str| {
        std::fs::metadata(dir.file(name))
            .expect("the file")
            .permissions()
            .mode()
            & 0o777
    };
    for key in [
        "ca-key.pem",
        "fe1.frontend.telepay-key.pem",
        "t1.terminal.telepay-key.pem",
    ] {
        assert_eq!(mode(key), 0o600, "{key}");
    }
    // Certificates are public; the umask may narrow them, never widen them.
    assert_eq!(mode("ca.pem") & 0o077 & !0o044, 0);
    assert_eq!(mode("ca.pem") & 0o600, 0o600);
    pki::issue(dir.path(), &[peer("terminal:t4")], &InitOptions::default()).expect("issue");
    assert_eq!(mode("t4.terminal.telepay-key.pem"), 0o600);
}

#[test]
fn issue_needs_the_ca_and_its_key() {
    let dir = make_pki("pki-issue-ca");
    let other = make_pki("pki-issue-other");
    let t9 = [peer("terminal:t9")];

    match pki::issue(dir.path(), &[peer("terminal:t1")], &InitOptions::default()) {
        Err(PkiError::Exists { path }) => assert_eq!(path, dir.file("t1.terminal.telepay.pem")),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        pki::issue(dir.path(), &[], &InitOptions::default()),
        Err(PkiError::NoPeers)
    ));

    // Another CA's key next to this CA's certificate.
    std::fs::copy(other.file("ca-key.pem"), dir.file("ca-key.pem")).expect("copied");
    match pki::issue(dir.path(), &t9, &InitOptions::default()) {
        Err(PkiError::CaKeyMismatch { cert, key }) => {
            assert_eq!((cert, key), (dir.file("ca.pem"), dir.file("ca-key.pem")));
        }
        other => panic!("{other:?}"),
    }

    // No CA at all.
    let empty = TempDir::new("pki-issue-empty");
    match pki::issue(empty.path(), &t9, &InitOptions::default()) {
        Err(PkiError::Read { path, source }) => {
            assert_eq!(path, empty.file("ca.pem"));
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("{other:?}"),
    }
    // A CA bundle of two certificates is not one CA.
    let mut two = std::fs::read(dir.file("ca.pem")).expect("ca");
    two.extend(std::fs::read(other.file("ca.pem")).expect("ca"));
    std::fs::write(empty.file("ca.pem"), two).expect("written");
    match pki::issue(empty.path(), &t9, &InitOptions::default()) {
        Err(PkiError::CaCertificateCount { count: 2, .. }) => {}
        other => panic!("{other:?}"),
    }
    assert!(!dir.file("t9.terminal.telepay.pem").exists());

    // A CA made elsewhere (another subject): the new certificate would not verify under
    // it, so nothing is written.
    let foreign = TempDir::new("pki-issue-foreign");
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("a key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Some Other CA");
    let ca = params.self_signed(&key).expect("a CA");
    std::fs::write(foreign.file("ca.pem"), ca.pem()).expect("written");
    std::fs::write(foreign.file("ca-key.pem"), key.serialize_pem()).expect("written");
    match pki::issue(foreign.path(), &t9, &InitOptions::default()) {
        Err(PkiError::NotTelepayCa {
            ca, peer: refused, ..
        }) => {
            assert_eq!((ca, refused), (foreign.file("ca.pem"), peer("terminal:t9")));
        }
        other => panic!("{other:?}"),
    }
    assert!(!foreign.file("t9.terminal.telepay.pem").exists());
}

/// `telepay pki ARGS` and its exit status, stdout and stderr.
fn telepay_pki(args: &[&str]) -> (Option<i32>, String, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_telepay"))
        .arg("pki")
        .args(args)
        .output()
        .expect("the telepay binary runs");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn cli_init_lists_the_files_it_writes() {
    let root = TempDir::new("pki-cli");
    let dir = root.file("pki");
    let dir_text = dir.to_str().expect("a UTF-8 path");
    let (status, stdout, stderr) = telepay_pki(&["init", "--dir", dir_text]);
    assert_eq!((status, stderr.as_str()), (Some(0), ""));
    let expected: String = std::iter::once(("ca.pem".to_owned(), "CA certificate".to_owned()))
        .chain(std::iter::once((
            "ca-key.pem".to_owned(),
            "CA private key".to_owned(),
        )))
        .chain(pki::demo_peers().iter().flat_map(|peer| {
            [
                (format!("{peer}.pem"), format!("certificate of {peer}")),
                (format!("{peer}-key.pem"), format!("private key of {peer}")),
            ]
        }))
        .map(|(file, what)| format!("wrote {}: {what}\n", dir.join(file).display()))
        .collect();
    assert_eq!(stdout, expected);
    assert_eq!(stdout.lines().count(), 20);
    for line in stdout.lines() {
        let path = line
            .strip_prefix("wrote ")
            .and_then(|rest| rest.split(": ").next())
            .expect("wrote PATH: WHAT");
        assert!(Path::new(path).is_file(), "{path}");
    }

    // Again: refused, one line of error naming the file, nothing printed.
    let (status, stdout, stderr) = telepay_pki(&["init", "--dir", dir_text]);
    assert_eq!(
        (status, stdout.as_str(), stderr),
        (
            Some(1),
            "",
            format!(
                "telepay: error: {} exists: pass --force to replace it\n",
                dir.join("ca.pem").display()
            )
        )
    );

    // issue adds a terminal; a bad name is a usage error.
    let (status, stdout, _) = telepay_pki(&["issue", "--dir", dir_text, "--peer", "terminal:t3"]);
    assert_eq!(status, Some(0));
    assert_eq!(
        stdout,
        format!(
            "wrote {}: certificate of t3.terminal.telepay\nwrote {}: private key of t3.terminal.telepay\n",
            dir.join("t3.terminal.telepay.pem").display(),
            dir.join("t3.terminal.telepay-key.pem").display()
        )
    );
    let (status, _, stderr) = telepay_pki(&["issue", "--dir", dir_text, "--peer", "bank:b1"]);
    assert_eq!(status, Some(2));
    assert!(stderr.contains("unknown role \"bank\""), "{stderr}");
}
