//! Mutual TLS between the roles (rustls, the ring provider, TLS 1.3 only): a role's
//! identity loaded from PEM files, which peers it accepts, and the server and client
//! configurations that enforce both during the handshake itself.
//!
//! - A server requires a client certificate chained to the CA bundle and then checks the
//!   client's telepay name against its [`AllowedPeers`]: a terminal calling an acquirer,
//!   or a certificate of another CA, fails the handshake; no request is read from it.
//! - A client verifies the server's certificate against the same CA bundle and the DNS
//!   name of the peer it means to reach (RFC 6125), so a server holding some other role's
//!   certificate (a forged acquirer) is refused.

use std::collections::BTreeSet;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore,
    ServerConfig, SignatureScheme,
};
use rustls_pki_types::pem::{PemObject, SectionKind};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use zeroize::Zeroizing;

use super::pki::{CA_CERT_FILE, DOMAIN, NameError, PeerName, ServiceRole};

/// The largest PEM file read (a certificate chain or a CA bundle of a few certificates).
const MAX_PEM_BYTES: u64 = 1 << 20;

/// ALPN protocols offered and accepted (RFC 7301): HTTP/2, then HTTP/1.1.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Why an identity, a configuration or a peer's certificate was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file is larger than any certificate chain or key.
    #[error("{} is larger than {max} bytes: not a PEM certificate or key", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit.
        max: u64,
    },
    /// A file is not well-formed PEM.
    #[error("{} is not well-formed PEM: {source}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What the PEM decoder said.
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// A certificate file (or CA bundle) holds no `CERTIFICATE` section.
    #[error("{} holds no PEM certificate", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// A CA bundle's certificate cannot be a trust anchor.
    #[error("{}: certificate {index} cannot be a trust anchor: {source}", path.display())]
    CaCertificate {
        /// The CA bundle.
        path: PathBuf,
        /// The certificate's position in the file, from 0.
        index: usize,
        /// Why.
        #[source]
        source: rustls::Error,
    },
    /// The key file holds no `PRIVATE KEY` (PKCS#8) section.
    #[error(
        "{} holds no PKCS#8 private key (PEM \"PRIVATE KEY\"){}",
        path.display(),
        match found { Some(kind) => format!(": found {kind}; convert it with `openssl pkcs8 -topk8 -nocrypt`"), None => String::new() }
    )]
    NoPkcs8Key {
        /// The file.
        path: PathBuf,
        /// The kind of key section found instead, if any.
        found: Option<&'static str>,
    },
    /// The key file holds more than one private key.
    #[error("{} holds {count} private keys: expected one", path.display())]
    SeveralKeys {
        /// The file.
        path: PathBuf,
        /// How many.
        count: usize,
    },
    /// The private key is of no type the ring provider can sign with.
    #[error("{}: unusable private key: {source}", path.display())]
    UnusableKey {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rustls::Error,
    },
    /// The private key is not the certificate's.
    #[error("{} is not the private key of {} ({source})", key.display(), cert.display())]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        #[source]
        source: rustls::Error,
    },
    /// The certificate is not valid, for this purpose, under the CA bundle (not issued by
    /// it, expired, not yet valid, lacking the extended key usage).
    #[error("{} is not valid for TLS {usage} under {}: {source}", cert.display(), ca.display())]
    NotChained {
        /// The certificate file.
        cert: PathBuf,
        /// The CA bundle.
        ca: PathBuf,
        /// `server authentication` or `client authentication` (RFC 5280 §4.2.1.12).
        usage: &'static str,
        /// What the verifier said.
        #[source]
        source: webpki::Error,
    },
    /// The identity's certificate does not carry one valid telepay name.
    #[error("{}: {source}", path.display())]
    IdentityName {
        /// The certificate file.
        path: PathBuf,
        /// Why.
        #[source]
        source: CertNameError,
    },
    /// The identity's certificate names another peer than the one asked for.
    #[error("{} is the certificate of {found}, not of {expected}", path.display())]
    IdentityMismatch {
        /// The certificate file.
        path: PathBuf,
        /// The peer asked for.
        expected: PeerName,
        /// The peer the certificate names.
        found: PeerName,
    },
    /// The other side presented no certificate.
    #[error("the peer presented no certificate")]
    NoPeerCertificate,
    /// The other side's certificate does not carry one valid telepay name.
    #[error("peer certificate: {0}")]
    PeerName(#[source] CertNameError),
    /// A server configuration that accepts no peer at all.
    #[error("no peer is allowed: a server would refuse every client")]
    NoAllowedPeers,
    /// The client-certificate verifier cannot be built from the CA bundle.
    #[error("cannot build the client-certificate verifier: {0}")]
    Verifier(#[source] rustls::server::VerifierBuilderError),
    /// rustls refused the configuration.
    #[error("rustls configuration: {0}")]
    Config(#[source] rustls::Error),
}

/// Why a certificate's telepay name cannot be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertNameError {
    /// The certificate is not X.509 DER that webpki can read.
    #[error("not a readable X.509 certificate: {0}")]
    Unreadable(#[source] webpki::Error),
    /// No subjectAltName DNS name ends with `.telepay`.
    #[error("no telepay name (INSTANCE.ROLE.telepay) among its DNS names {names:?}")]
    NoTelepayName {
        /// The DNS names it carries.
        names: Vec<String>,
    },
    /// More than one: which one is the peer would be ambiguous.
    #[error("several telepay names {names:?}: a certificate names exactly one peer")]
    SeveralTelepayNames {
        /// The telepay names it carries.
        names: Vec<String>,
    },
    /// The telepay name is not a valid peer name.
    #[error("telepay name {name:?}: {source}")]
    BadTelepayName {
        /// The name.
        name: String,
        /// Why.
        #[source]
        source: NameError,
    },
}

/// A role's TLS identity: its certificate chain and private key, the peer name its
/// certificate carries, and the CA bundle it trusts. The private key lives only inside
/// the signing key object; its PEM and DER bytes are zeroized once loaded.
#[derive(Clone)]
pub struct TlsIdentity {
    name: PeerName,
    certified: Arc<CertifiedKey>,
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
}

impl fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("name", &self.name)
            .field("chain_len", &self.certified.cert.len())
            .field("trust_anchors", &self.roots.len())
            .field("key", &"<hidden>")
            .finish()
    }
}

impl TlsIdentity {
    /// Loads an identity: `cert` a PEM chain (the peer's certificate first, then any
    /// intermediates), `key` its PKCS#8 PEM private key, `ca` a PEM bundle of trusted CA
    /// certificates. Checks that the key is the certificate's, that the certificate is
    /// valid now under the bundle for both TLS server and client authentication, and
    /// that it carries exactly one telepay name.
    pub fn load(cert: &Path, key: &Path, ca: &Path) -> Result<TlsIdentity, TlsError> {
        let chain = read_certificates(cert)?;
        let roots = read_roots(ca)?;
        let signing_key = read_signing_key(key)?;
        let certified = CertifiedKey::new(chain, signing_key);
        certified
            .keys_match()
            .map_err(|source| TlsError::KeyMismatch {
                cert: cert.to_owned(),
                key: key.to_owned(),
                source,
            })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let (end_entity, intermediates) =
            certified
                .cert
                .split_first()
                .ok_or_else(|| TlsError::NoCertificate {
                    path: cert.to_owned(),
                })?;
        let parsed = webpki::EndEntityCert::try_from(end_entity).map_err(|source| {
            TlsError::IdentityName {
                path: cert.to_owned(),
                source: CertNameError::Unreadable(source),
            }
        })?;
        let now = UnixTime::now();
        for (usage, key_usage) in [
            ("server authentication", webpki::KeyUsage::server_auth()),
            ("client authentication", webpki::KeyUsage::client_auth()),
        ] {
            parsed
                .verify_for_usage(
                    provider.signature_verification_algorithms.all,
                    &roots.roots,
                    intermediates,
                    now,
                    key_usage,
                    None,
                    None,
                )
                .map_err(|source| TlsError::NotChained {
                    cert: cert.to_owned(),
                    ca: ca.to_owned(),
                    usage,
                    source,
                })?;
        }
        let name = telepay_name(&parsed).map_err(|source| TlsError::IdentityName {
            path: cert.to_owned(),
            source,
        })?;
        Ok(TlsIdentity {
            name,
            certified: Arc::new(certified),
            roots: Arc::new(roots),
            provider,
        })
    }

    /// Loads `peer`'s identity from a directory laid out as `telepay pki init` writes it:
    /// `{dns}.pem`, `{dns}-key.pem`, `ca.pem`; the certificate must name `peer`.
    pub fn load_dir(dir: &Path, peer: &PeerName) -> Result<TlsIdentity, TlsError> {
        let cert = peer.cert_path(dir);
        let identity = TlsIdentity::load(&cert, &peer.key_path(dir), &dir.join(CA_CERT_FILE))?;
        if identity.name != *peer {
            return Err(TlsError::IdentityMismatch {
                path: cert,
                expected: peer.clone(),
                found: identity.name,
            });
        }
        Ok(identity)
    }

    /// The peer name the certificate carries.
    pub fn name(&self) -> &PeerName {
        &self.name
    }

    /// The certificate chain presented to peers, the peer's own certificate first.
    pub fn certificate_chain(&self) -> &[CertificateDer<'static>] {
        &self.certified.cert
    }
}

/// Which peers a server accepts: exact names and/or whole roles.
///
/// Parsed from configuration entries, one per peer or role: `acq1.acquirer-card.telepay`
/// (or `acquirer-card:acq1`) for one peer, `role:frontend` for every peer of a role. As
/// one string, entries are separated by commas.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedPeers {
    peers: BTreeSet<PeerName>,
    roles: BTreeSet<ServiceRole>,
}

/// The prefix of a role entry in [`AllowedPeers`].
pub const ROLE_PREFIX: &str = "role:";

impl AllowedPeers {
    /// Accepts nobody (a server needs at least one entry).
    pub fn none() -> AllowedPeers {
        AllowedPeers::default()
    }

    /// Also accepts every peer of `role`.
    pub fn with_role(mut self, role: ServiceRole) -> AllowedPeers {
        self.roles.insert(role);
        self
    }

    /// Also accepts `peer`.
    pub fn with_peer(mut self, peer: PeerName) -> AllowedPeers {
        self.peers.insert(peer);
        self
    }

    /// What a server of `role` accepts by default (docs/deployment.md): the front-end
    /// accepts terminals only (service servers and acquirers answer on the front-end's
    /// own calls and never call it); the card and wallet
    /// acquirers and the service servers accept front-ends; the telecollection centre
    /// accepts card acquirers; a terminal serves nobody.
    pub fn default_for(role: ServiceRole) -> AllowedPeers {
        let roles: &[ServiceRole] = match role {
            ServiceRole::FrontEnd => &[ServiceRole::Terminal],
            ServiceRole::Provider | ServiceRole::CardAcquirer | ServiceRole::WalletAcquirer => {
                &[ServiceRole::FrontEnd]
            }
            ServiceRole::Telecollection => &[ServiceRole::CardAcquirer],
            ServiceRole::Terminal => &[],
        };
        roles.iter().fold(AllowedPeers::none(), |allowed, role| {
            allowed.with_role(*role)
        })
    }

    /// Parses configuration entries (see the type's documentation); surrounding spaces
    /// are ignored, an empty entry is an error.
    pub fn parse_entries<S: AsRef<str>>(
        entries: impl IntoIterator<Item = S>,
    ) -> Result<AllowedPeers, NameError> {
        let mut allowed = AllowedPeers::none();
        for entry in entries {
            let entry = entry.as_ref().trim();
            allowed = match entry.strip_prefix(ROLE_PREFIX) {
                Some(role) => allowed.with_role(role.parse()?),
                None => allowed.with_peer(entry.parse()?),
            };
        }
        Ok(allowed)
    }

    /// Whether `peer` is accepted: named, or of an accepted role.
    pub fn allows(&self, peer: &PeerName) -> bool {
        self.roles.contains(&peer.role()) || self.peers.contains(peer)
    }

    /// Whether nobody is accepted.
    pub fn is_empty(&self) -> bool {
        self.roles.is_empty() && self.peers.is_empty()
    }
}

impl FromStr for AllowedPeers {
    type Err = NameError;

    /// Comma-separated entries: `role:frontend, acq1.acquirer-card.telepay`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        AllowedPeers::parse_entries(text.split(','))
    }
}

impl fmt::Display for AllowedPeers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let roles = self.roles.iter().map(|role| format!("{ROLE_PREFIX}{role}"));
        let peers = self.peers.iter().map(PeerName::dns_name);
        f.write_str(&roles.chain(peers).collect::<Vec<_>>().join(","))
    }
}

/// A server configuration for `identity`: TLS 1.3, ALPN `h2` and `http/1.1`, a client
/// certificate REQUIRED, chained to the identity's CA bundle, and naming a peer that
/// `allowed` accepts. Both checks run inside the handshake: a refused client gets an
/// alert (`certificate_required`, `unknown_ca`, `access_denied`, RFC 8446 §6.2) and no
/// request of its reaches the router.
pub fn server_config(
    identity: &TlsIdentity,
    allowed: AllowedPeers,
) -> Result<Arc<ServerConfig>, TlsError> {
    if allowed.is_empty() {
        return Err(TlsError::NoAllowedPeers);
    }
    let chain = WebPkiClientVerifier::builder_with_provider(
        identity.roots.clone(),
        identity.provider.clone(),
    )
    .build()
    .map_err(TlsError::Verifier)?;
    let verifier = AllowedPeerVerifier {
        chain,
        allowed,
        server: identity.name.clone(),
    };
    let mut config = ServerConfig::builder_with_provider(identity.provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(TlsError::Config)?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(identity.certified.clone())));
    config.alpn_protocols = ALPN.iter().map(|protocol| protocol.to_vec()).collect();
    Ok(Arc::new(config))
}

/// A client configuration for `identity`: TLS 1.3, ALPN `h2` and `http/1.1`, the
/// identity's certificate presented, servers verified against its CA bundle. The caller
/// connects with `ServerName` = the DNS name of the peer it means to reach
/// ([`PeerName::dns_name`]); a server whose certificate names anyone else is refused.
pub fn client_config(identity: &TlsIdentity) -> Result<Arc<ClientConfig>, TlsError> {
    client_config_offering(identity, &ALPN).map(Arc::new)
}

/// [`client_config`] offering the ALPN protocols `alpn`.
pub(super) fn client_config_offering(
    identity: &TlsIdentity,
    alpn: &[&[u8]],
) -> Result<ClientConfig, TlsError> {
    let mut config = ClientConfig::builder_with_provider(identity.provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(TlsError::Config)?
        .with_root_certificates(identity.roots.clone())
        .with_client_cert_resolver(Arc::new(SingleCertAndKey::from(identity.certified.clone())));
    config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
    Ok(config)
}

/// Who is on the other side of a completed handshake: the telepay name of its
/// certificate (`certs` as rustls reports them, the peer's own certificate first). Call
/// it only on a chain the handshake verified.
pub fn peer_name(certs: &[CertificateDer<'_>]) -> Result<PeerName, TlsError> {
    let end_entity = certs.first().ok_or(TlsError::NoPeerCertificate)?;
    let parsed = webpki::EndEntityCert::try_from(end_entity)
        .map_err(|source| TlsError::PeerName(CertNameError::Unreadable(source)))?;
    telepay_name(&parsed).map_err(TlsError::PeerName)
}

/// The one subjectAltName DNS name under `.telepay`, as a peer name. Other DNS names (a
/// real certificate may carry a host name too) are ignored; two telepay names are
/// refused, since which peer the certificate is would be ambiguous.
fn telepay_name(cert: &webpki::EndEntityCert<'_>) -> Result<PeerName, CertNameError> {
    let suffix = format!(".{DOMAIN}");
    let names: Vec<&str> = cert.valid_dns_names().collect();
    let telepay: Vec<&str> = names
        .iter()
        .copied()
        .filter(|name| {
            name.len() > suffix.len()
                && name
                    .get(name.len() - suffix.len()..)
                    .is_some_and(|end| end.eq_ignore_ascii_case(&suffix))
        })
        .collect();
    match telepay.as_slice() {
        [] => Err(CertNameError::NoTelepayName {
            names: names.iter().map(|name| (*name).to_owned()).collect(),
        }),
        [name] => PeerName::from_dns_name(name).map_err(|source| CertNameError::BadTelepayName {
            name: (*name).to_owned(),
            source,
        }),
        several => Err(CertNameError::SeveralTelepayNames {
            names: several.iter().map(|name| (*name).to_owned()).collect(),
        }),
    }
}

/// The client-certificate verifier of a server: rustls's WebPKI verifier (chain to the
/// CA bundle, validity, clientAuth EKU, the CertificateVerify signature), then the
/// allow-list on the verified certificate's telepay name. A refusal is an
/// `access_denied` alert (RFC 8446 §6.2), and is logged with the refused name.
#[derive(Debug)]
struct AllowedPeerVerifier {
    chain: Arc<dyn ClientCertVerifier>,
    allowed: AllowedPeers,
    /// The server's own name, for the log.
    server: PeerName,
}

impl ClientCertVerifier for AllowedPeerVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.chain.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // The chain first: a name read from a certificate nobody vouched for means nothing.
        let verified = self
            .chain
            .verify_client_cert(end_entity, intermediates, now)?;
        let refused =
            || rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure);
        let parsed = webpki::EndEntityCert::try_from(end_entity).map_err(|_| refused())?;
        let peer = match telepay_name(&parsed) {
            Ok(peer) => peer,
            Err(error) => {
                tracing::warn!(server = %self.server, %error, "client refused: no telepay name");
                return Err(refused());
            }
        };
        if !self.allowed.allows(&peer) {
            tracing::warn!(
                server = %self.server,
                client = %peer,
                allowed = %self.allowed,
                "client refused: not an allowed peer"
            );
            return Err(refused());
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.chain.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.chain.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.chain.supported_verify_schemes()
    }
}

fn read_limited(path: &Path) -> Result<Zeroizing<Vec<u8>>, TlsError> {
    let read_error = |source| TlsError::Read {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let mut bytes = Zeroizing::new(Vec::new());
    file.take(MAX_PEM_BYTES.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > MAX_PEM_BYTES {
        return Err(TlsError::TooLarge {
            path: path.to_owned(),
            max: MAX_PEM_BYTES,
        });
    }
    Ok(bytes)
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read_limited(path)?;
    let certificates = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem {
            path: path.to_owned(),
            source,
        })?;
    if certificates.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certificates)
}

fn read_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for (index, certificate) in read_certificates(path)?.into_iter().enumerate() {
        roots
            .add(certificate)
            .map_err(|source| TlsError::CaCertificate {
                path: path.to_owned(),
                index,
                source,
            })?;
    }
    Ok(roots)
}

/// The one PKCS#8 key of a PEM file, as a ring signing key. The file's bytes and the
/// decoded DER are zeroized when dropped; the ring key object keeps its own copy.
fn read_signing_key(path: &Path) -> Result<Arc<dyn rustls::sign::SigningKey>, TlsError> {
    let bytes = read_limited(path)?;
    let mut pkcs8: Vec<Zeroizing<Vec<u8>>> = Vec::new();
    let mut other: Option<&'static str> = None;
    for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(&bytes) {
        let (kind, der) = section.map_err(|source| TlsError::Pem {
            path: path.to_owned(),
            source,
        })?;
        let der = Zeroizing::new(der);
        match kind {
            SectionKind::PrivateKey => pkcs8.push(der),
            SectionKind::EcPrivateKey => other = other.or(Some("an EC PRIVATE KEY (SEC1)")),
            SectionKind::RsaPrivateKey => other = other.or(Some("an RSA PRIVATE KEY (PKCS#1)")),
            _ => {}
        }
    }
    let der = match pkcs8.as_slice() {
        [der] => der,
        [] => {
            return Err(TlsError::NoPkcs8Key {
                path: path.to_owned(),
                found: other,
            });
        }
        several => {
            return Err(TlsError::SeveralKeys {
                path: path.to_owned(),
                count: several.len(),
            });
        }
    };
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der.as_slice()));
    rustls::crypto::ring::sign::any_supported_type(&key).map_err(|source| TlsError::UnusableKey {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::pki::{self, InitOptions};

    fn peer(text: &str) -> PeerName {
        text.parse().unwrap()
    }

    #[test]
    fn allowed_peers_parse_and_allow() {
        let allowed: AllowedPeers = "role:frontend, acq1.acquirer-card.telepay,terminal:t9"
            .parse()
            .unwrap();
        let table = [
            ("fe1.frontend.telepay", true),
            ("fe2.frontend.telepay", true),
            ("acq1.acquirer-card.telepay", true),
            ("acq2.acquirer-card.telepay", false),
            ("t9.terminal.telepay", true),
            ("t1.terminal.telepay", false),
            ("centre.telecollection.telepay", false),
        ];
        for (name, expected) in table {
            assert_eq!(allowed.allows(&peer(name)), expected, "{name}");
        }
        assert_eq!(
            allowed.to_string(),
            "role:frontend,acq1.acquirer-card.telepay,t9.terminal.telepay"
        );
        assert_eq!(allowed.to_string().parse::<AllowedPeers>(), Ok(allowed));
    }

    #[test]
    fn allowed_peers_errors() {
        let table: [(&str, NameError); 4] = [
            (
                "role:bank",
                NameError::UnknownRole {
                    role: "bank".into(),
                },
            ),
            (
                "role:",
                NameError::UnknownRole {
                    role: String::new(),
                },
            ),
            (
                "role:frontend,",
                NameError::Form {
                    input: String::new(),
                },
            ),
            (
                "fe1.frontend",
                NameError::Form {
                    input: "fe1.frontend".into(),
                },
            ),
        ];
        for (text, expected) in table {
            assert_eq!(text.parse::<AllowedPeers>(), Err(expected), "{text:?}");
        }
    }

    #[test]
    fn default_allow_lists() {
        let table: [(ServiceRole, &str); 6] = [
            (ServiceRole::FrontEnd, "role:terminal"),
            (ServiceRole::Provider, "role:frontend"),
            (ServiceRole::CardAcquirer, "role:frontend"),
            (ServiceRole::WalletAcquirer, "role:frontend"),
            (ServiceRole::Telecollection, "role:acquirer-card"),
            (ServiceRole::Terminal, ""),
        ];
        for (role, expected) in table {
            assert_eq!(
                AllowedPeers::default_for(role).to_string(),
                expected,
                "{role}"
            );
        }
    }

    /// A directory under the system's temporary directory, removed when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            let mut suffix = [0u8; 8];
            getrandom::fill(&mut suffix).unwrap();
            let path =
                std::env::temp_dir().join(format!("telepay-tls-{name}-{}", hex::encode(suffix)));
            Scratch(path)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn identities_load_and_name_themselves() {
        let dir = Scratch::new("load");
        let fe1 = peer("frontend:fe1");
        let acq1 = peer("acquirer-card:acq1");
        pki::init(
            &dir.0,
            &[fe1.clone(), acq1.clone()],
            &InitOptions::default(),
        )
        .unwrap();
        let identity = TlsIdentity::load_dir(&dir.0, &fe1).unwrap();
        assert_eq!(identity.name(), &fe1);
        assert_eq!(identity.certificate_chain().len(), 1);
        assert_eq!(peer_name(identity.certificate_chain()).unwrap(), fe1);
        let debug = format!("{identity:?}");
        assert!(
            debug.contains("<hidden>") && !debug.contains("PRIVATE"),
            "{debug}"
        );

        // A key that is not the certificate's.
        match TlsIdentity::load(
            &fe1.cert_path(&dir.0),
            &acq1.key_path(&dir.0),
            &dir.0.join("ca.pem"),
        ) {
            Err(TlsError::KeyMismatch { .. }) => {}
            other => panic!("{other:?}"),
        }
        // A certificate file given as the key.
        match TlsIdentity::load(
            &fe1.cert_path(&dir.0),
            &fe1.cert_path(&dir.0),
            &dir.0.join("ca.pem"),
        ) {
            Err(TlsError::NoPkcs8Key { found: None, .. }) => {}
            other => panic!("{other:?}"),
        }
        // fe1's files under acq1's names.
        std::fs::rename(fe1.cert_path(&dir.0), acq1.cert_path(&dir.0)).unwrap();
        std::fs::rename(fe1.key_path(&dir.0), acq1.key_path(&dir.0)).unwrap();
        match TlsIdentity::load_dir(&dir.0, &acq1) {
            Err(TlsError::IdentityMismatch {
                expected, found, ..
            }) => {
                assert_eq!((expected, found), (acq1, fe1));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn identities_under_another_ca_or_expired_are_refused() {
        let ours = Scratch::new("ours");
        let theirs = Scratch::new("theirs");
        let fe1 = peer("frontend:fe1");
        pki::init(&ours.0, std::slice::from_ref(&fe1), &InitOptions::default()).unwrap();
        pki::init(
            &theirs.0,
            std::slice::from_ref(&fe1),
            &InitOptions::default(),
        )
        .unwrap();
        match TlsIdentity::load(
            &fe1.cert_path(&ours.0),
            &fe1.key_path(&ours.0),
            &theirs.0.join("ca.pem"),
        ) {
            Err(TlsError::NotChained {
                source: webpki::Error::UnknownIssuer,
                usage: "server authentication",
                ..
            }) => {}
            other => panic!("{other:?}"),
        }

        let expired = Scratch::new("expired");
        let options = InitOptions {
            leaf_days: 1,
            not_before: Some(
                std::time::SystemTime::now() - std::time::Duration::from_secs(3 * 86_400),
            ),
            ..InitOptions::default()
        };
        pki::init(&expired.0, std::slice::from_ref(&fe1), &options).unwrap();
        match TlsIdentity::load_dir(&expired.0, &fe1) {
            Err(TlsError::NotChained {
                source: webpki::Error::CertExpired { .. },
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
    }

    /// A self-signed certificate carrying `names` as DNS subjectAltNames.
    fn certificate_naming(names: &[&str]) -> CertificateDer<'static> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        rcgen::CertificateParams::new(names)
            .unwrap()
            .self_signed(&key)
            .unwrap()
            .der()
            .clone()
    }

    #[test]
    fn peer_names_are_read_from_certificates() {
        let fe1 = peer("fe1.frontend.telepay");
        let table: [(&[&str], Result<PeerName, &str>); 7] = [
            (&["fe1.frontend.telepay"], Ok(fe1.clone())),
            (&["fe1.frontend.telepay", "localhost"], Ok(fe1.clone())),
            (&["FE1.Frontend.TELEPAY"], Err("BadTelepayName")),
            (&["localhost", "example.com"], Err("NoTelepayName")),
            (
                &["fe1.frontend.telepay", "fe2.frontend.telepay"],
                Err("SeveralTelepayNames"),
            ),
            (&["b1.bank.telepay"], Err("BadTelepayName")),
            (&["telepay", ".telepay"], Err("NoTelepayName")),
        ];
        for (names, expected) in table {
            let certificate = certificate_naming(names);
            let found = peer_name(std::slice::from_ref(&certificate));
            match (found, expected) {
                (Ok(found), Ok(expected)) => assert_eq!(found, expected, "{names:?}"),
                (Err(TlsError::PeerName(error)), Err(variant)) => {
                    assert!(
                        format!("{error:?}").starts_with(variant),
                        "{names:?}: {error:?}"
                    );
                }
                (found, expected) => panic!("{names:?}: {found:?}, expected {expected:?}"),
            }
        }
        match peer_name(&[certificate_naming(&["b1.bank.telepay"])]) {
            Err(TlsError::PeerName(CertNameError::BadTelepayName { name, source })) => {
                assert_eq!(name, "b1.bank.telepay");
                assert_eq!(
                    source,
                    NameError::UnknownRole {
                        role: "bank".into()
                    }
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(peer_name(&[]), Err(TlsError::NoPeerCertificate)));
        assert!(matches!(
            peer_name(&[CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x00])]),
            Err(TlsError::PeerName(CertNameError::Unreadable(_)))
        ));
    }

    #[test]
    fn server_config_needs_someone_to_accept() {
        let dir = Scratch::new("none");
        let fe1 = peer("frontend:fe1");
        pki::init(&dir.0, std::slice::from_ref(&fe1), &InitOptions::default()).unwrap();
        let identity = TlsIdentity::load_dir(&dir.0, &fe1).unwrap();
        assert!(matches!(
            server_config(&identity, AllowedPeers::none()),
            Err(TlsError::NoAllowedPeers)
        ));
        let config =
            server_config(&identity, AllowedPeers::default_for(ServiceRole::FrontEnd)).unwrap();
        assert_eq!(
            config.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        let client = client_config(&identity).unwrap();
        assert!(client.client_auth_cert_resolver.has_certs());
    }
}
