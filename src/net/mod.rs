//! The network edge of the roles: how the front-end, the service servers, the acquirers,
//! the telecollection centre and the terminals authenticate one another, the HTTP
//! transport they speak over that authentication, and the processes that host them.
//!
//! - [`pki`]: the peer names certificates carry (`{instance}.{role}.telepay`), the roles,
//!   and a test PKI: a CA and per-peer certificates for local deployments and tests
//!   (`telepay pki init|issue`).
//! - [`tls`]: mutual TLS (rustls, ring provider, TLS 1.3): a role's identity loaded from
//!   PEM files, the peers a role accepts, server and client configurations that refuse
//!   any other peer during the handshake.
//! - [`serve`]: an axum router served over mutual TLS, each request carrying the
//!   caller's authenticated name, and a client that calls other roles by name.
//! - [`switchboard`]: where each message goes and who may send it (pure rules).
//! - [`node`]: a process's roles behind the HTTPS edge; [`link`]: its calls to peers,
//!   with deadlines and retries.
//! - [`config`] and [`service`]: `telepay serve ROLE --config FILE`.
//! - [`terminal`]: the consultation terminal against a remote front-end
//!   (`telepay purchase --frontend URL`).
//! - [`local`]: a whole deployment on 127.0.0.1 in one process, for tests and
//!   benchmarks; [`load`]: many terminals at once; [`openapi`]: the wire's OpenAPI
//!   document.
//!
//! docs/deployment.md says how to deploy with test or real certificates.

pub mod centre;
pub mod config;
pub mod link;
pub mod load;
pub mod local;
pub mod node;
pub mod openapi;
pub mod pki;
pub mod serve;
pub mod service;
pub mod switchboard;
pub mod terminal;
pub mod tls;
