//! The calls a node makes to its peers: HTTPS with mutual TLS, each peer verified as
//! the certificate name its route gives, every call with a deadline, retried when the
//! peer could not be reached or failed (never when it refused).
//!
//! Retrying is safe because the flow's messages carry their identifiers: a role that
//! gets a message twice answers the second as it answered the first (the front-end
//! resends H for a repeated E, the acquirer its recorded G for a repeated F).

use std::net::SocketAddr;
use std::time::Duration;

use hyper::StatusCode;
use hyper::body::Bytes;

use crate::messages::Envelope;

use super::node::{ErrorBody, MailboxPoll, Wire};
use super::pki::PeerName;
use super::serve::{ClientError, PeerClient, PeerRoutes, https_client};
use super::switchboard::Route;
use super::tls::TlsIdentity;

/// The largest answer read from a peer.
pub const MAX_ANSWER_BYTES: usize = 16 << 20;

/// How calls are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkOptions {
    /// The deadline of one attempt, connection and TLS handshake included.
    pub call_timeout: Duration,
    /// How many attempts a call makes at most.
    pub attempts: u32,
    /// The wait before the second attempt; doubled before each later one.
    pub backoff: Duration,
}

impl Default for LinkOptions {
    fn default() -> LinkOptions {
        LinkOptions {
            call_timeout: Duration::from_secs(5),
            attempts: 3,
            backoff: Duration::from_millis(100),
        }
    }
}

/// Why a call to a peer failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// No route with that index (a defect of the caller).
    #[error("no route number {route}")]
    NoRoute {
        /// The index asked for.
        route: usize,
    },
    /// A route's URL or peer name cannot be used.
    #[error("route to {url}: {reason}")]
    BadRoute {
        /// The route's URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The TLS client configuration could not be made.
    #[error("TLS client: {0}")]
    Tls(String),
    /// Every attempt failed to reach the peer or to get its answer in time.
    #[error("{url}: no answer after {attempts} attempt(s): {last}")]
    Unreachable {
        /// The URL called.
        url: String,
        /// How many attempts were made.
        attempts: u32,
        /// What the last attempt ran into.
        last: String,
    },
    /// The peer answered with an error status (`status` 0: the TLS handshake refused
    /// the peer or this node).
    #[error("{url}: refused ({status}): {error}")]
    Refused {
        /// The URL called.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The peer's reason.
        error: String,
    },
    /// The peer's answer is not the wire's JSON.
    #[error("{url}: unreadable answer: {detail}")]
    BadAnswer {
        /// The URL called.
        url: String,
        /// What was wrong.
        detail: String,
    },
}

/// A node's calls to the peers of its routes, in the routes' order.
pub struct Link {
    client: PeerClient,
    peers: Vec<PeerName>,
    options: LinkOptions,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("peers", &self.peers)
            .field("options", &self.options)
            .finish()
    }
}

/// What one attempt came to.
enum Attempt {
    Answer(Bytes),
    /// Worth another attempt: the peer was not reached, was late, or failed.
    Retry(String),
    /// Not worth another: the peer refused the call, or the TLS handshake refused the
    /// peer or this node.
    Refused(u16, String),
}

/// The socket address of a route's URL: `https://IP:PORT` (peers are reached at the
/// addresses the configuration gives, never through the system's resolver).
pub fn route_address(route: &Route) -> Result<SocketAddr, LinkError> {
    let bad = |reason: &str| LinkError::BadRoute {
        url: route.url.clone(),
        reason: reason.to_owned(),
    };
    let rest = route
        .url
        .strip_prefix("https://")
        .ok_or_else(|| bad("expected https://IP:PORT"))?;
    rest.trim_end_matches('/')
        .parse()
        .map_err(|_| bad("expected https://IP:PORT (an address and a port, no path)"))
}

impl Link {
    /// Clients for `routes` (in their order), presenting `identity`.
    ///
    /// # Errors
    /// [`LinkError::BadRoute`] for a URL that is not `https://IP:PORT`,
    /// [`LinkError::Tls`] when the identity cannot make a client configuration.
    pub fn new(
        identity: &TlsIdentity,
        routes: &[Route],
        options: LinkOptions,
    ) -> Result<Link, LinkError> {
        let mut addresses = PeerRoutes::new();
        for route in routes {
            addresses.insert(route.peer.clone(), route_address(route)?);
        }
        let client = https_client(identity, addresses)
            .map_err(|error| LinkError::Tls(error.to_string()))?
            .with_timeout(options.call_timeout)
            .with_max_response_bytes(MAX_ANSWER_BYTES);
        Ok(Link {
            client,
            peers: routes.iter().map(|route| route.peer.clone()).collect(),
            options,
        })
    }

    /// Sends `envelope` to the peer of `route`; the messages its answer carries.
    ///
    /// # Errors
    /// [`LinkError`]: unreachable after every attempt, refused, or an unreadable answer.
    pub async fn call(
        &self,
        route: usize,
        envelope: &Envelope,
    ) -> Result<Vec<Envelope>, LinkError> {
        let body = WireRef {
            envelopes: std::slice::from_ref(envelope),
        };
        self.post(route, "/v1/messages", &body, None).await
    }

    /// Takes what waits in this terminal's mailbox at the peer of `route`, the peer
    /// waiting up to `wait` for something to come.
    ///
    /// # Errors
    /// As [`Link::call`].
    pub async fn poll_mailbox(
        &self,
        route: usize,
        wait: Duration,
    ) -> Result<Vec<Envelope>, LinkError> {
        let body = MailboxPoll {
            wait_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
        };
        self.post(
            route,
            "/v1/mailbox",
            &body,
            Some(wait + self.options.call_timeout),
        )
        .await
    }

    async fn post<T: serde::Serialize>(
        &self,
        route: usize,
        path: &str,
        body: &T,
        timeout: Option<Duration>,
    ) -> Result<Vec<Envelope>, LinkError> {
        let Some(peer) = self.peers.get(route) else {
            return Err(LinkError::NoRoute { route });
        };
        // A longer deadline (a mailbox poll) needs a client of its own; a call does not.
        let longer;
        let client = match timeout {
            Some(timeout) => {
                longer = self.client.clone().with_timeout(timeout);
                &longer
            }
            None => &self.client,
        };
        let url = format!("{peer}{path}");
        let mut backoff = self.options.backoff;
        let mut last = String::new();
        let attempts = self.options.attempts.max(1);
        for attempt in 1..=attempts {
            let outcome = match client.post_json(peer, path, body).await {
                Ok(response) if response.status() == StatusCode::OK => {
                    Attempt::Answer(response.into_body())
                }
                Ok(response) => {
                    let status = response.status();
                    let bytes = response.into_body();
                    let error = serde_json::from_slice::<ErrorBody>(&bytes)
                        .map(|body| body.error)
                        .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into_owned());
                    if status.is_server_error() {
                        Attempt::Retry(format!("{status}: {error}"))
                    } else {
                        Attempt::Refused(status.as_u16(), error)
                    }
                }
                // The handshake refused the peer (not the name asked for, another CA)
                // or this node: trying again changes nothing.
                Err(error) if error.tls_error().is_some() => {
                    Attempt::Refused(0, format!("TLS: {error}"))
                }
                Err(ClientError::Json(error)) => {
                    Attempt::Refused(0, format!("the message does not serialise: {error}"))
                }
                Err(error) => Attempt::Retry(error.to_string()),
            };
            match outcome {
                Attempt::Answer(bytes) => {
                    let wire: Wire =
                        serde_json::from_slice(&bytes).map_err(|error| LinkError::BadAnswer {
                            url: url.clone(),
                            detail: error.to_string(),
                        })?;
                    return Ok(wire.envelopes);
                }
                Attempt::Refused(status, error) => {
                    return Err(LinkError::Refused { url, status, error });
                }
                Attempt::Retry(reason) => {
                    tracing::debug!(%url, attempt, reason, "call failed");
                    last = reason;
                    if attempt < attempts {
                        tokio::time::sleep(backoff).await;
                        backoff = backoff.saturating_mul(2);
                    }
                }
            }
        }
        Err(LinkError::Unreachable {
            url,
            attempts,
            last,
        })
    }
}

/// [`Wire`] borrowing its messages, to serialise without cloning them.
#[derive(serde::Serialize)]
struct WireRef<'a> {
    envelopes: &'a [Envelope],
}
