//! The HTTP edge of a role over mutual TLS: [`serve_tls`] serves an axum router to the
//! peers a [`ServerConfig`] accepts, each request carrying the caller's [`PeerName`];
//! [`https_client`] calls other roles, each by its peer name.
//!
//! The client is hyper-util's pooled client over hyper-rustls rather than reqwest: it
//! takes the project's [`rustls::ClientConfig`] by type (reqwest's `use_preconfigured_tls`
//! takes `Any` and fails at run time if its rustls is another version than ours), and it
//! brings no URL/IDNA stack and no platform verifier (trust is the project's CA bundle,
//! never the system's roots). Peer names are mapped to addresses by the client's own
//! table ([`PeerRoutes`]), never the system resolver: `.telepay` is not a public domain.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, Response, Uri, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Bytes, Incoming};
use hyper_rustls::{DefaultServerNameResolver, HttpsConnector};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use super::pki::PeerName;
use super::tls::{TlsError, TlsIdentity, client_config_offering, peer_name};

/// How long a client has to complete the TLS handshake before the connection is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long an HTTP/1.1 client has to send a request's headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How long connections may take to finish their requests once shutdown is asked.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The pause after an accept error that is not the one connection's fault (out of file
/// descriptors), so that the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// How long a client call may take, connection and answer included, by default.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest answer body a client reads, by default.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 4 << 20;

/// Serves `router` over mutual TLS on `listener` until `shutdown` completes.
///
/// Each connection is handshaken (at most [`HANDSHAKE_TIMEOUT`]) in its own task, then
/// served with HTTP/1.1 or HTTP/2 (hyper-util's auto builder). Every request reaches the
/// router with the authenticated [`PeerName`] of the client and its
/// [`ConnectInfo<SocketAddr>`] as extensions, so a handler takes
/// `Extension<PeerName>` to know who calls. A refused or failed handshake is logged
/// (`tracing` warn: the address and the TLS error, never key material) and the loop goes
/// on; so does it after an accept error. On shutdown it stops accepting, lets open
/// connections finish their requests for up to [`SHUTDOWN_GRACE`], and returns.
///
/// # Errors
///
/// Only when the listener's own address cannot be read.
pub async fn serve_tls(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    router: Router,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let local = listener.local_addr()?;
    let acceptor = TlsAcceptor::from(config);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    tracing::info!(%local, "serving over mutual TLS");
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((tcp, remote)) => {
                tokio::spawn(serve_connection(
                    acceptor.clone(),
                    Arc::clone(&builder),
                    router.clone(),
                    tcp,
                    remote,
                    graceful.watcher(),
                ));
            }
            Err(error) if is_connection_error(&error) => {
                tracing::debug!(%local, %error, "a connection failed before it was accepted");
            }
            Err(error) => {
                tracing::warn!(%local, %error, "accept failed; retrying");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
    drop(listener);
    tracing::info!(%local, open = graceful.count(), "shutting down");
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(SHUTDOWN_GRACE) => {
            tracing::warn!(%local, "connections still open after the shutdown grace period; dropped");
        }
    }
    Ok(())
}

/// Errors of one connection that `accept` reports; the listener itself is fine.
fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

async fn serve_connection(
    acceptor: TlsAcceptor,
    builder: Arc<auto::Builder<TokioExecutor>>,
    router: Router,
    tcp: TcpStream,
    remote: SocketAddr,
    watcher: Watcher,
) {
    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            // tokio-rustls reports the rustls error (the alert sent or received) as the
            // io::Error's inner error; it holds no secret.
            tracing::warn!(%remote, %error, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::warn!(%remote, timeout = ?HANDSHAKE_TIMEOUT, "TLS handshake timed out");
            return;
        }
    };
    // The verifier already required and checked the certificate; reading the name again
    // here cannot fail unless that invariant broke, and then the connection is dropped.
    let peer = match stream
        .get_ref()
        .1
        .peer_certificates()
        .ok_or(TlsError::NoPeerCertificate)
        .and_then(peer_name)
    {
        Ok(peer) => peer,
        Err(error) => {
            tracing::warn!(%remote, %error, "connection without a telepay peer name dropped");
            return;
        }
    };
    tracing::debug!(%remote, %peer, "peer connected");
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(peer.clone());
        request.extensions_mut().insert(ConnectInfo(remote));
        let mut router = router.clone();
        // An axum Router is always ready (its poll_ready returns Ready at once).
        async move { tower_service::Service::call(&mut router, request).await }
    });
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    if let Err(error) = watcher.watch(connection).await {
        tracing::debug!(%remote, %error, "connection ended with an error");
    }
}

/// Where the client reaches each peer: a peer's DNS name mapped to an address, as a
/// hosts file would (the certificate is still checked against the name).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerRoutes {
    addresses: HashMap<PeerName, SocketAddr>,
}

impl PeerRoutes {
    /// No route.
    pub fn new() -> PeerRoutes {
        PeerRoutes::default()
    }

    /// Adds (or replaces) the address of `peer`.
    pub fn with(mut self, peer: PeerName, address: SocketAddr) -> PeerRoutes {
        self.insert(peer, address);
        self
    }

    /// Adds (or replaces) the address of `peer`.
    pub fn insert(&mut self, peer: PeerName, address: SocketAddr) {
        self.addresses.insert(peer, address);
    }

    /// The address of `peer`.
    pub fn address(&self, peer: &PeerName) -> Option<SocketAddr> {
        self.addresses.get(peer).copied()
    }
}

/// The connector's resolver: a peer's DNS name to the IP of its route (the port comes
/// from the URI, which [`PeerClient`] builds from the same route).
#[derive(Debug, Clone)]
struct RouteResolver {
    addresses: Arc<HashMap<String, IpAddr>>,
}

impl tower_service::Service<Name> for RouteResolver {
    type Response = std::iter::Once<SocketAddr>;
    type Error = io::Error;
    type Future = std::future::Ready<Result<Self::Response, io::Error>>;

    fn poll_ready(&mut self, _context: &mut Context<'_>) -> Poll<Result<(), io::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        std::future::ready(
            self.addresses
                .get(name.as_str())
                .map(|ip| std::iter::once(SocketAddr::new(*ip, 0)))
                .ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("no route to {}", name.as_str()),
                    )
                }),
        )
    }
}

type Connector = HttpsConnector<HttpConnector<RouteResolver>>;

/// The body of a request a [`PeerClient`] sends: whole (JSON), or streamed (a
/// remittance batch read from its file as it goes).
pub type RequestBody = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// `bytes` as a whole request body.
pub fn full(bytes: Bytes) -> RequestBody {
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

/// An HTTPS client that calls other roles as the identity it was made with, reaching
/// each by its peer name through [`PeerRoutes`]. It speaks HTTP/1.1 over pooled
/// keep-alive connections (see [`https_client`] for why not HTTP/2); cloning is cheap and
/// shares the pool.
#[derive(Clone)]
pub struct PeerClient {
    client: Client<Connector, RequestBody>,
    routes: Arc<PeerRoutes>,
    own_name: PeerName,
    timeout: Duration,
    max_response_bytes: usize,
}

impl std::fmt::Debug for PeerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerClient")
            .field("as", &self.own_name)
            .field("routes", &self.routes)
            .field("timeout", &self.timeout)
            .field("max_response_bytes", &self.max_response_bytes)
            .finish()
    }
}

/// A client presenting `identity`'s certificate and trusting its CA bundle, that reaches
/// the peers of `routes`: a call to `acq1.acquirer-card.telepay` connects to its route's
/// address and succeeds only if the server there proves that name.
///
/// It offers HTTP/1.1 only (ALPN `http/1.1`): in TLS 1.3 a server refuses a client's
/// certificate by an alert sent after the client's side of the handshake is complete,
/// so the client learns it reading its first answer. HTTP/1.1 hands that read error to
/// the caller as the rustls error ([`ClientError::tls_error`]); the h2 crate keeps only
/// an I/O error's kind and text, which would leave the refusal untyped.
pub fn https_client(identity: &TlsIdentity, routes: PeerRoutes) -> Result<PeerClient, TlsError> {
    let addresses = routes
        .addresses
        .iter()
        .map(|(peer, address)| (peer.dns_name(), address.ip()))
        .collect();
    let mut http = HttpConnector::new_with_resolver(RouteResolver {
        addresses: Arc::new(addresses),
    });
    // The URIs are https: the TLS layer above this connector handles them.
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(HANDSHAKE_TIMEOUT));
    // HTTP/1.1 only: in TLS 1.3 a server refuses a client certificate after the client
    // has finished its handshake, by an alert the client reads with its first answer.
    // Over HTTP/1.1 that read error reaches the caller as the rustls error itself
    // (ClientError::tls_error); the h2 crate keeps only an I/O error's kind and text, so
    // over HTTP/2 the refusal would be untyped. Pooled keep-alive connections serve calls
    // between roles well. (hyper-rustls's builder would panic on a config that already
    // carries ALPN; `new` takes it as it is.)
    let connector = HttpsConnector::new(
        http,
        client_config_offering(identity, &[b"http/1.1"])?,
        true,
        Arc::new(DefaultServerNameResolver::default()),
    );
    let client = Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .build(connector);
    Ok(PeerClient {
        client,
        routes: Arc::new(routes),
        own_name: identity.name().clone(),
        timeout: DEFAULT_REQUEST_TIMEOUT,
        max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
    })
}

impl PeerClient {
    /// The same client with another limit on a call's duration.
    pub fn with_timeout(mut self, timeout: Duration) -> PeerClient {
        self.timeout = timeout;
        self
    }

    /// The same client with another limit on an answer's body.
    pub fn with_max_response_bytes(mut self, max: usize) -> PeerClient {
        self.max_response_bytes = max;
        self
    }

    /// The URI of `path_and_query` at `peer`: `https://{dns name}:{port}{path}`.
    pub fn uri(&self, peer: &PeerName, path_and_query: &str) -> Result<Uri, ClientError> {
        let address = self
            .routes
            .address(peer)
            .ok_or_else(|| ClientError::NoRoute { peer: peer.clone() })?;
        if !path_and_query.starts_with('/') {
            return Err(ClientError::BadPath {
                peer: peer.clone(),
                path: path_and_query.to_owned(),
            });
        }
        format!(
            "https://{}:{}{path_and_query}",
            peer.dns_name(),
            address.port()
        )
        .parse()
        .map_err(|_| ClientError::BadPath {
            peer: peer.clone(),
            path: path_and_query.to_owned(),
        })
    }

    /// Sends `request` to `peer`: its URI is only a path (and query), `/quote`; the client
    /// makes it absolute. Reads the whole answer, up to the body limit, within the
    /// timeout.
    pub async fn send(
        &self,
        peer: &PeerName,
        mut request: Request<RequestBody>,
    ) -> Result<Response<Bytes>, ClientError> {
        let path = request
            .uri()
            .path_and_query()
            .map_or("/", |path| path.as_str())
            .to_owned();
        if request.uri().authority().is_some() {
            return Err(ClientError::BadPath {
                peer: peer.clone(),
                path: request.uri().to_string(),
            });
        }
        *request.uri_mut() = self.uri(peer, &path)?;
        let exchange = async {
            let response =
                self.client
                    .request(request)
                    .await
                    .map_err(|source| ClientError::Request {
                        peer: peer.clone(),
                        source,
                    })?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, self.max_response_bytes)
                .collect()
                .await
                .map_err(|source| {
                    if source.is::<LengthLimitError>() {
                        ClientError::TooLarge {
                            peer: peer.clone(),
                            limit: self.max_response_bytes,
                        }
                    } else {
                        ClientError::Body {
                            peer: peer.clone(),
                            source,
                        }
                    }
                })?
                .to_bytes();
            Ok(Response::from_parts(parts, body))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| ClientError::Timeout {
                peer: peer.clone(),
                after: self.timeout,
            })?
    }

    /// `GET path` at `peer`.
    pub async fn get(&self, peer: &PeerName, path: &str) -> Result<Response<Bytes>, ClientError> {
        let request = Request::builder()
            .method(Method::GET)
            .uri(path)
            .body(full(Bytes::new()))
            .map_err(|_| ClientError::BadPath {
                peer: peer.clone(),
                path: path.to_owned(),
            })?;
        self.send(peer, request).await
    }

    /// `POST path` at `peer` with `body` as JSON.
    pub async fn post_json<T: serde::Serialize + ?Sized>(
        &self,
        peer: &PeerName,
        path: &str,
        body: &T,
    ) -> Result<Response<Bytes>, ClientError> {
        let json = serde_json::to_vec(body).map_err(ClientError::Json)?;
        let request = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(header::CONTENT_TYPE, "application/json")
            .body(full(Bytes::from(json)))
            .map_err(|_| ClientError::BadPath {
                peer: peer.clone(),
                path: path.to_owned(),
            })?;
        self.send(peer, request).await
    }
}

/// Why a call to another role failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The client has no address for the peer.
    #[error("no address is configured for {peer}")]
    NoRoute {
        /// The peer.
        peer: PeerName,
    },
    /// The path is not an absolute path (and query) of a URI.
    #[error("{path:?} is not a request path (it must start with '/') for {peer}")]
    BadPath {
        /// The peer.
        peer: PeerName,
        /// The path given.
        path: String,
    },
    /// The connection, the TLS handshake or the HTTP exchange failed; see
    /// [`ClientError::tls_error`] for the TLS cause, if any.
    #[error("request to {peer} failed: {}", describe(source))]
    Request {
        /// The peer.
        peer: PeerName,
        /// Why.
        #[source]
        source: hyper_util::client::legacy::Error,
    },
    /// The answer's body could not be read.
    #[error("reading the answer of {peer}: {}", describe(source.as_ref()))]
    Body {
        /// The peer.
        peer: PeerName,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The answer's body exceeds the limit.
    #[error("the answer of {peer} exceeds {limit} bytes")]
    TooLarge {
        /// The peer.
        peer: PeerName,
        /// The limit.
        limit: usize,
    },
    /// No complete answer within the timeout.
    #[error("{peer} did not answer within {after:?}")]
    Timeout {
        /// The peer.
        peer: PeerName,
        /// The timeout.
        after: Duration,
    },
    /// The request body cannot be encoded as JSON.
    #[error("cannot encode the request body as JSON: {0}")]
    Json(#[source] serde_json::Error),
}

impl ClientError {
    /// The TLS error behind this failure, if the handshake (or an alert the server sent
    /// after it) is the cause: `InvalidCertificate(NotValidForName..)` for a server that
    /// is not the peer asked for, `InvalidCertificate(UnknownIssuer)` for a server of
    /// another CA, `AlertReceived(AccessDenied | CertificateRequired | UnknownCA..)` when
    /// the server refused this client.
    pub fn tls_error(&self) -> Option<&rustls::Error> {
        match self {
            ClientError::Request { source, .. } => find_tls_error(source),
            ClientError::Body { source, .. } => find_tls_error(source.as_ref()),
            _ => None,
        }
    }
}

/// Walks an error's causes for a rustls error. An `io::Error` wrapping another error
/// reports the wrapped error's source as its own, skipping the wrapped error itself, so
/// it is opened with `get_ref`.
fn find_tls_error<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut current = Some(error);
    // Bounded: a cycle of causes cannot hang the walk.
    for _ in 0..32 {
        let error = current?;
        if let Some(tls) = error.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        current = match error
            .downcast_ref::<io::Error>()
            .and_then(io::Error::get_ref)
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => error.source(),
        };
    }
    None
}

/// An error and its causes on one line, each cause once.
fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut current = error.source();
    for _ in 0..32 {
        let Some(cause) = current else { break };
        let part = cause.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        current = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_errors_are_found_inside_io_errors() {
        let tls = rustls::Error::AlertReceived(rustls::AlertDescription::AccessDenied);
        let inner = io::Error::new(io::ErrorKind::InvalidData, tls);
        let outer = io::Error::other(inner);
        assert!(matches!(
            find_tls_error(&outer),
            Some(rustls::Error::AlertReceived(
                rustls::AlertDescription::AccessDenied
            ))
        ));
        let plain = io::Error::new(io::ErrorKind::ConnectionReset, "reset");
        assert!(find_tls_error(&plain).is_none());
    }

    #[test]
    fn routes_resolve_only_configured_names() {
        let peer: PeerName = "acq1.acquirer-card.telepay".parse().unwrap();
        let routes = PeerRoutes::new().with(peer.clone(), "127.0.0.1:4431".parse().unwrap());
        assert_eq!(
            routes.address(&peer),
            Some("127.0.0.1:4431".parse().unwrap())
        );
        let mut resolver = RouteResolver {
            addresses: Arc::new(HashMap::from([(
                peer.dns_name(),
                IpAddr::from([127, 0, 0, 1]),
            )])),
        };
        let found: Vec<SocketAddr> = tower_service::Service::call(
            &mut resolver,
            "acq1.acquirer-card.telepay".parse::<Name>().unwrap(),
        )
        .into_inner()
        .unwrap()
        .collect();
        assert_eq!(found, vec!["127.0.0.1:0".parse::<SocketAddr>().unwrap()]);
        let missing = tower_service::Service::call(
            &mut resolver,
            "acq2.acquirer-card.telepay".parse::<Name>().unwrap(),
        )
        .into_inner()
        .unwrap_err();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
        assert_eq!(
            missing.to_string(),
            "no route to acq2.acquirer-card.telepay"
        );
    }
}
