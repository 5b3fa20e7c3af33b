//! The names the roles carry in their certificates, and a test PKI for local deployments
//! and tests: `telepay pki init` makes a CA and one certificate per peer, `telepay pki
//! issue` signs more with that CA.
//!
//! A peer's identity is ONE DNS name in its certificate's subjectAltName (RFC 5280
//! §4.2.1.6): `{instance}.{role}.telepay`, e.g. `fe1.frontend.telepay`. The role says what
//! the peer may do; the instance tells two peers of one role apart. Names are read back
//! from certificates only after the certificate was verified against the CA (see
//! [`crate::net::tls`]).
//!
//! The CA and the leaves are ECDSA P-256 (FIPS 186-4). The CA carries a name constraint
//! (RFC 5280 §4.2.1.10) permitting only names under `telepay`, so a test CA trusted by
//! mistake cannot vouch for any other host. Private keys are PKCS#8 PEM (RFC 5958, RFC
//! 7468 §10), written 0600 from the file's creation, and zeroized in memory once written.

use std::collections::BTreeSet;
use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
    GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose, NameConstraints,
    PKCS_ECDSA_P256_SHA256, PublicKeyData, SanType, SerialNumber,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, UnixTime};
use zeroize::Zeroizing;

/// The DNS suffix every peer name ends with: a private top-level label, never resolved
/// through the public DNS (clients map names to addresses themselves).
pub const DOMAIN: &str = "telepay";

/// The CA certificate's file name in a PKI directory.
pub const CA_CERT_FILE: &str = "ca.pem";

/// The CA private key's file name in a PKI directory.
pub const CA_KEY_FILE: &str = "ca-key.pem";

/// The start of the test CA's subject common name, which goes on with the CA key's
/// [`ca_key_id`]: `telepay test CA 3f9c0a12d4e5b6a7`.
pub const CA_COMMON_NAME: &str = "telepay test CA";

/// Default validity of a peer's certificate, in days (825: the longest the CA/Browser
/// Forum baseline allowed for TLS certificates until 2020, which common clients accept).
pub const DEFAULT_LEAF_DAYS: u32 = 825;

/// Default validity of the test CA, in days (10 years).
pub const DEFAULT_CA_DAYS: u32 = 3_650;

/// The longest validity accepted, in days (100 years).
pub const MAX_VALIDITY_DAYS: u32 = 36_525;

/// The longest instance name: one DNS label (RFC 1035 §2.3.4).
pub const MAX_INSTANCE_LEN: usize = 63;

/// How far before now a certificate's validity starts by default: peers' clocks differ.
pub const CLOCK_SKEW: Duration = Duration::from_secs(3_600);

/// The largest PEM file read back (a CA certificate or key is about 1 KiB).
const MAX_PEM_BYTES: u64 = 1 << 20;

/// What a peer is in the telepayment system (DESIGN.md §3, the patent's Fig. 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServiceRole {
    /// The communication front-end (12), the telematic mediator.
    FrontEnd,
    /// A service server (11).
    Provider,
    /// A bank-card acquirer (20).
    CardAcquirer,
    /// A virtual-wallet acquirer (20).
    WalletAcquirer,
    /// The telecollection centre that receives the card acquirers' remittances.
    Telecollection,
    /// A consultation terminal (client and payer devices, 21 and 22).
    Terminal,
}

impl ServiceRole {
    /// Every role, in the order of the name scheme's documentation.
    pub const ALL: [ServiceRole; 6] = [
        ServiceRole::FrontEnd,
        ServiceRole::Provider,
        ServiceRole::CardAcquirer,
        ServiceRole::WalletAcquirer,
        ServiceRole::Telecollection,
        ServiceRole::Terminal,
    ];

    /// The role's label in names: `frontend`, `provider`, `acquirer-card`,
    /// `acquirer-wallet`, `telecollection`, `terminal`.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceRole::FrontEnd => "frontend",
            ServiceRole::Provider => "provider",
            ServiceRole::CardAcquirer => "acquirer-card",
            ServiceRole::WalletAcquirer => "acquirer-wallet",
            ServiceRole::Telecollection => "telecollection",
            ServiceRole::Terminal => "terminal",
        }
    }
}

impl fmt::Display for ServiceRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ServiceRole {
    type Err = NameError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        ServiceRole::ALL
            .into_iter()
            .find(|role| role.as_str() == text)
            .ok_or_else(|| NameError::UnknownRole {
                role: text.to_owned(),
            })
    }
}

/// Why a role or peer name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// Not one of the six role labels.
    #[error(
        "unknown role {role:?}: expected frontend, provider, acquirer-card, acquirer-wallet, telecollection or terminal"
    )]
    UnknownRole {
        /// The label given.
        role: String,
    },
    /// Neither `ROLE:INSTANCE` nor `INSTANCE.ROLE.telepay`.
    #[error(
        "{input:?} is not a peer name: expected ROLE:INSTANCE (e.g. frontend:fe1) or INSTANCE.ROLE.telepay (e.g. fe1.frontend.telepay)"
    )]
    Form {
        /// The text given.
        input: String,
    },
    /// The instance is empty or longer than one DNS label.
    #[error("instance {instance:?} has {length} characters: expected 1 to 63")]
    InstanceLength {
        /// The instance given.
        instance: String,
        /// Its length in bytes.
        length: usize,
    },
    /// The instance holds a character other than `a-z`, `0-9`, `-`.
    #[error(
        "instance {instance:?} has {character:?} at offset {offset}: expected only a-z, 0-9 and - (lower case)"
    )]
    InstanceCharacter {
        /// The instance given.
        instance: String,
        /// The first character refused.
        character: char,
        /// Its byte offset in the instance.
        offset: usize,
    },
    /// The instance starts or ends with `-`, which a DNS label may not (RFC 1035
    /// §2.3.1, RFC 1123 §2.1).
    #[error("instance {instance:?} starts or ends with '-': a DNS label may not")]
    InstanceHyphen {
        /// The instance given.
        instance: String,
    },
}

/// A peer's identity: its role and its instance name, carried in its certificate as the
/// DNS name `{instance}.{role}.telepay`.
///
/// Parsed from either `ROLE:INSTANCE` (`frontend:fe1`, the command line's form) or the DNS
/// form (`fe1.frontend.telepay`); displayed in the DNS form.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerName {
    role: ServiceRole,
    instance: String,
}

impl PeerName {
    /// The peer `instance` of `role`; the instance is checked as a DNS label: 1 to 63 of
    /// `a-z 0-9 -`, not starting or ending with `-`.
    pub fn new(role: ServiceRole, instance: &str) -> Result<PeerName, NameError> {
        check_instance(instance)?;
        Ok(PeerName {
            role,
            instance: instance.to_owned(),
        })
    }

    /// The role.
    pub fn role(&self) -> ServiceRole {
        self.role
    }

    /// The instance name.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The DNS name the certificate carries: `fe1.frontend.telepay`.
    pub fn dns_name(&self) -> String {
        format!("{}.{}.{DOMAIN}", self.instance, self.role)
    }

    /// The command line's form: `frontend:fe1`.
    pub fn argument(&self) -> String {
        format!("{}:{}", self.role, self.instance)
    }

    /// Parses the DNS form `INSTANCE.ROLE.telepay` (lower case, no trailing dot).
    pub fn from_dns_name(name: &str) -> Result<PeerName, NameError> {
        let form = || NameError::Form {
            input: name.to_owned(),
        };
        let rest = name
            .strip_suffix(DOMAIN)
            .and_then(|rest| rest.strip_suffix('.'))
            .ok_or_else(form)?;
        let (instance, role) = rest.rsplit_once('.').ok_or_else(form)?;
        PeerName::new(role.parse()?, instance)
    }

    /// Parses the command line's form `ROLE:INSTANCE`.
    pub fn from_argument(text: &str) -> Result<PeerName, NameError> {
        let (role, instance) = text.split_once(':').ok_or_else(|| NameError::Form {
            input: text.to_owned(),
        })?;
        PeerName::new(role.parse()?, instance)
    }

    /// The certificate file of this peer in a PKI directory: `{dns}.pem`.
    pub fn cert_path(&self, dir: &Path) -> PathBuf {
        dir.join(format!("{}.pem", self.dns_name()))
    }

    /// The private key file of this peer in a PKI directory: `{dns}-key.pem`.
    pub fn key_path(&self, dir: &Path) -> PathBuf {
        dir.join(format!("{}-key.pem", self.dns_name()))
    }
}

impl fmt::Display for PeerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{DOMAIN}", self.instance, self.role)
    }
}

impl FromStr for PeerName {
    type Err = NameError;

    /// `ROLE:INSTANCE` when the text has a colon, else the DNS form.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.contains(':') {
            PeerName::from_argument(text)
        } else {
            PeerName::from_dns_name(text)
        }
    }
}

impl serde::Serialize for PeerName {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for PeerName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// An instance name is one DNS label (RFC 1035 §2.3.1 as relaxed by RFC 1123 §2.1: it may
/// start with a digit), restricted to lower case so that a name has one spelling.
fn check_instance(instance: &str) -> Result<(), NameError> {
    if instance.is_empty() || instance.len() > MAX_INSTANCE_LEN {
        return Err(NameError::InstanceLength {
            instance: instance.to_owned(),
            length: instance.len(),
        });
    }
    if let Some((offset, character)) = instance
        .char_indices()
        .find(|(_, character)| !matches!(character, 'a'..='z' | '0'..='9' | '-'))
    {
        return Err(NameError::InstanceCharacter {
            instance: instance.to_owned(),
            character,
            offset,
        });
    }
    if instance.starts_with('-') || instance.ends_with('-') {
        return Err(NameError::InstanceHyphen {
            instance: instance.to_owned(),
        });
    }
    Ok(())
}

/// The demo cluster's peers, which `telepay pki init` makes without `--peer`: provider
/// `p1`, front-ends `fe1` `fe2`, card acquirers `acq1` `acq2`, wallet acquirer
/// `wallet1`, telecollection `centre`, terminals `t1` `t2`.
pub fn demo_peers() -> Vec<PeerName> {
    [
        (ServiceRole::Provider, "p1"),
        (ServiceRole::FrontEnd, "fe1"),
        (ServiceRole::FrontEnd, "fe2"),
        (ServiceRole::CardAcquirer, "acq1"),
        (ServiceRole::CardAcquirer, "acq2"),
        (ServiceRole::WalletAcquirer, "wallet1"),
        (ServiceRole::Telecollection, "centre"),
        (ServiceRole::Terminal, "t1"),
        (ServiceRole::Terminal, "t2"),
    ]
    .into_iter()
    .map(|(role, instance)| PeerName {
        role,
        instance: instance.to_owned(),
    })
    .collect()
}

/// How [`init`] and [`issue`] make certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitOptions {
    /// Replace files that exist (otherwise any existing file is an error and nothing is
    /// written).
    pub force: bool,
    /// Validity of each peer's certificate, in days.
    pub leaf_days: u32,
    /// Validity of the CA (for [`init`]), in days.
    pub ca_days: u32,
    /// Start of validity; `None`: an hour ago ([`CLOCK_SKEW`]), so that a host whose
    /// clock is a little behind accepts a certificate made now. Time is an input so that
    /// tests can make certificates that have expired or are not valid yet.
    pub not_before: Option<SystemTime>,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            force: false,
            leaf_days: DEFAULT_LEAF_DAYS,
            ca_days: DEFAULT_CA_DAYS,
            not_before: None,
        }
    }
}

/// What a written file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileContent {
    /// The CA's certificate (the trust anchor every peer is configured with).
    CaCertificate,
    /// The CA's private key.
    CaKey,
    /// A peer's certificate.
    Certificate(PeerName),
    /// A peer's private key.
    Key(PeerName),
}

impl fmt::Display for FileContent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileContent::CaCertificate => f.write_str("CA certificate"),
            FileContent::CaKey => f.write_str("CA private key"),
            FileContent::Certificate(peer) => write!(f, "certificate of {peer}"),
            FileContent::Key(peer) => write!(f, "private key of {peer}"),
        }
    }
}

/// One file written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenFile {
    /// Where.
    pub path: PathBuf,
    /// What it holds.
    pub content: FileContent,
}

/// What [`init`] or [`issue`] wrote, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PkiReport {
    /// The files, in the order written.
    pub written: Vec<WrittenFile>,
}

/// Why the PKI could not be made or extended. Nothing is written unless every
/// certificate could be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// A file to write exists and `force` was not given.
    #[error("{} exists: pass --force to replace it", path.display())]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// The same peer was named twice.
    #[error("peer {peer} is named twice")]
    DuplicatePeer {
        /// The peer.
        peer: PeerName,
    },
    /// `issue` without a peer.
    #[error("no peer named: give at least one --peer ROLE:INSTANCE")]
    NoPeers,
    /// A validity out of range.
    #[error("validity of {what}: {days} days, expected 1 to {MAX_VALIDITY_DAYS}")]
    Validity {
        /// `CA` or the peer's name.
        what: String,
        /// The days given.
        days: u32,
    },
    /// The start of validity is before 1970 or too far in the future for a certificate.
    #[error("the start of validity {start:?} is outside what a certificate can carry")]
    Start {
        /// The start given.
        start: SystemTime,
    },
    /// The PKI directory cannot be created.
    #[error("cannot create the directory {}: {source}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file cannot be written (or its temporary sibling, or the directory synced).
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file is larger than any PEM file the PKI writes.
    #[error("{} is larger than {max} bytes: not a PEM certificate or key", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit.
        max: u64,
    },
    /// The CA certificate file does not hold exactly one PEM certificate.
    #[error("{} holds {count} certificates: expected exactly one, the CA's", path.display())]
    CaCertificateCount {
        /// The file.
        path: PathBuf,
        /// How many it holds.
        count: usize,
    },
    /// The CA certificate file is not PEM, or its certificate is not X.509 DER.
    #[error("{} is not a PEM X.509 certificate: {reason}", path.display())]
    CaCertificate {
        /// The file.
        path: PathBuf,
        /// What the PEM or X.509 decoder said.
        reason: String,
    },
    /// The CA key file is not a PKCS#8 P-256 key.
    #[error("{} is not a PKCS#8 PEM ECDSA P-256 key: {source}", path.display())]
    CaKey {
        /// The file.
        path: PathBuf,
        /// What rcgen said.
        #[source]
        source: rcgen::Error,
    },
    /// The CA key is not the key of the CA certificate.
    #[error("{} is not the private key of {}", key.display(), cert.display())]
    CaKeyMismatch {
        /// The CA certificate.
        cert: PathBuf,
        /// The CA key.
        key: PathBuf,
    },
    /// A certificate signed with the CA key does not verify under the CA certificate: the
    /// CA was not made by `pki init` (its subject is not `CN=telepay test CA {key id}`).
    #[error(
        "a certificate for {peer} signed with this CA does not verify under {} ({source}): `pki issue` signs only with a CA made by `pki init`",
        ca.display()
    )]
    NotTelepayCa {
        /// The CA certificate.
        ca: PathBuf,
        /// The peer whose certificate was being made.
        peer: PeerName,
        /// What the verifier said.
        #[source]
        source: webpki::Error,
    },
    /// rcgen failed to make a key or a certificate.
    #[error("cannot make the {what}: {source}")]
    Generate {
        /// Which key or certificate.
        what: String,
        /// Why.
        #[source]
        source: rcgen::Error,
    },
    /// The system's random source failed.
    #[error("the system's random source failed: {source}")]
    Random {
        /// Why.
        #[source]
        source: getrandom::Error,
    },
}

/// Makes a new test PKI in `dir` (created 0700 if missing): a CA (`ca.pem`,
/// `ca-key.pem`) and, signed by it, one certificate and key per peer (`{dns}.pem`,
/// `{dns}-key.pem`). Refuses, before writing anything, when a file exists and
/// `options.force` is not set.
pub fn init(dir: &Path, peers: &[PeerName], options: &InitOptions) -> Result<PkiReport, PkiError> {
    check_unique(peers)?;
    let ca_cert_path = dir.join(CA_CERT_FILE);
    let ca_key_path = dir.join(CA_KEY_FILE);
    let mut targets = vec![ca_cert_path.clone(), ca_key_path.clone()];
    targets.extend(peer_paths(dir, peers));
    refuse_existing(&targets, options.force)?;

    let start = start_time(options)?;
    let ca_key = generate_key("CA key")?;
    let ca_params = ca_params(&ca_key, start, options.ca_days)?;
    let ca_cert = ca_params
        .self_signed(&*ca_key)
        .map_err(|source| PkiError::Generate {
            what: "CA certificate".to_owned(),
            source,
        })?;
    let issuer = Issuer::from_params(&ca_params, &*ca_key);
    let mut files = vec![
        PendingFile::public(ca_cert_path, ca_cert.pem(), FileContent::CaCertificate),
        PendingFile::secret(
            ca_key_path,
            Zeroizing::new(ca_key.serialize_pem()),
            FileContent::CaKey,
        ),
    ];
    for peer in peers {
        let (cert, key) = leaf(dir, peer, &issuer, start, options.leaf_days)?;
        files.push(cert);
        files.push(key);
    }
    write_files(dir, files, options.force)
}

/// Signs new certificates for `peers` with the CA of `dir` (`ca.pem`, `ca-key.pem`, made
/// by [`init`]): adding a terminal to a running deployment. Each new certificate is
/// verified under `ca.pem` before anything is written.
pub fn issue(dir: &Path, peers: &[PeerName], options: &InitOptions) -> Result<PkiReport, PkiError> {
    if peers.is_empty() {
        return Err(PkiError::NoPeers);
    }
    check_unique(peers)?;
    let targets: Vec<PathBuf> = peer_paths(dir, peers).collect();
    refuse_existing(&targets, options.force)?;

    let ca_cert_path = dir.join(CA_CERT_FILE);
    let ca_key_path = dir.join(CA_KEY_FILE);
    let ca_cert = read_ca_certificate(&ca_cert_path)?;
    let anchor =
        webpki::anchor_from_trusted_cert(&ca_cert).map_err(|error| PkiError::CaCertificate {
            path: ca_cert_path.clone(),
            reason: error.to_string(),
        })?;
    let ca_key = read_ca_key(&ca_key_path)?;
    // The key must be the certificate's: compare the SubjectPublicKeyInfo (RFC 5280
    // §4.1.2.7) the certificate carries with the key's.
    if webpki::spki_for_anchor(&anchor).as_ref() != ca_key.subject_public_key_info().as_slice() {
        return Err(PkiError::CaKeyMismatch {
            cert: ca_cert_path,
            key: ca_key_path,
        });
    }
    // rcgen needs the issuer's subject; without an X.509 parser it is rebuilt from the
    // key as `init` made it, and each new certificate is verified under ca.pem below, so
    // a CA with another subject is refused, never silently mis-signed.
    let issuer = Issuer::new(ca_identity_params(&ca_key), &*ca_key);
    let start = start_time(options)?;
    let anchors = [anchor];
    let mut files = Vec::with_capacity(peers.len().saturating_mul(2));
    for peer in peers {
        let (cert, key) = leaf(dir, peer, &issuer, start, options.leaf_days)?;
        verify_leaf(&cert.bytes, &anchors, start).map_err(|source| PkiError::NotTelepayCa {
            ca: ca_cert_path.clone(),
            peer: peer.clone(),
            source,
        })?;
        files.push(cert);
        files.push(key);
    }
    write_files(dir, files, options.force)
}

fn check_unique(peers: &[PeerName]) -> Result<(), PkiError> {
    let mut seen = BTreeSet::new();
    for peer in peers {
        if !seen.insert(peer) {
            return Err(PkiError::DuplicatePeer { peer: peer.clone() });
        }
    }
    Ok(())
}

fn peer_paths<'a>(dir: &'a Path, peers: &'a [PeerName]) -> impl Iterator<Item = PathBuf> + 'a {
    peers
        .iter()
        .flat_map(move |peer| [peer.cert_path(dir), peer.key_path(dir)])
}

/// Checked before any key is made, so that a refusal costs nothing and writes nothing.
fn refuse_existing(paths: &[PathBuf], force: bool) -> Result<(), PkiError> {
    if force {
        return Ok(());
    }
    match paths.iter().find(|path| path.symlink_metadata().is_ok()) {
        Some(path) => Err(PkiError::Exists { path: path.clone() }),
        None => Ok(()),
    }
}

fn start_time(options: &InitOptions) -> Result<time::OffsetDateTime, PkiError> {
    let start = match options.not_before {
        Some(start) => start,
        None => SystemTime::now()
            .checked_sub(CLOCK_SKEW)
            .unwrap_or(SystemTime::UNIX_EPOCH),
    };
    let out_of_range = || PkiError::Start { start };
    let seconds = start
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_err(|_| out_of_range())?
        .as_secs();
    let seconds = i64::try_from(seconds).map_err(|_| out_of_range())?;
    let start = time::OffsetDateTime::from_unix_timestamp(seconds).map_err(|_| out_of_range())?;
    // A certificate's validity is encoded as UTCTime up to 2049, GeneralizedTime after
    // (RFC 5280 §4.1.2.5): anything up to year 9999 can be carried.
    if start.year() > 9999 {
        return Err(out_of_range());
    }
    Ok(start)
}

/// `start + days`, refused when `days` is 0, above [`MAX_VALIDITY_DAYS`], or past year 9999.
fn end_time(
    start: time::OffsetDateTime,
    days: u32,
    what: &str,
) -> Result<time::OffsetDateTime, PkiError> {
    let invalid = || PkiError::Validity {
        what: what.to_owned(),
        days,
    };
    if days == 0 || days > MAX_VALIDITY_DAYS {
        return Err(invalid());
    }
    start
        .checked_add(time::Duration::days(i64::from(days)))
        .filter(|end| end.year() <= 9999)
        .ok_or_else(invalid)
}

/// A positive serial of 128 random bits (RFC 5280 §4.1.2.2: unique per CA, at most 20
/// octets; CA/B Forum baseline: at least 64 random bits). The first octet is kept in
/// 0x40..=0x7F: positive, and its DER INTEGER encoding is exactly these 16 octets.
fn random_serial() -> Result<SerialNumber, PkiError> {
    let mut serial = [0u8; 16];
    getrandom::fill(&mut serial).map_err(|source| PkiError::Random { source })?;
    serial[0] = (serial[0] & 0x3f) | 0x40;
    Ok(SerialNumber::from_slice(&serial))
}

fn generate_key(what: &str) -> Result<Zeroizing<KeyPair>, PkiError> {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
        .map(Zeroizing::new)
        .map_err(|source| PkiError::Generate {
            what: what.to_owned(),
            source,
        })
}

/// A short identifier of a CA key: the first 8 octets, in hex, of the SHA-256 of its
/// DER SubjectPublicKeyInfo (RFC 5280 §4.1.2.7).
///
/// It makes each test CA's subject unique. Two CAs of one subject would be confused by
/// path building (RFC 5280 §6.1: an issuer is found by name): a peer certified by another
/// `pki init` would fail on a bad signature instead of on an unknown issuer. Derived from
/// the key, it is also what lets `issue` rebuild the subject from `ca-key.pem`.
pub fn ca_key_id(key: &impl PublicKeyData) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(key.subject_public_key_info());
    hex::encode(digest.get(..8).unwrap_or_default())
}

/// What an issuer's certificate says of the test CA: its subject `CN=telepay test CA
/// {key id}`, and the key usages and key-identifier method rcgen checks and uses when
/// signing.
fn ca_identity_params(key: &KeyPair) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut subject = DistinguishedName::new();
    subject.push(
        DnType::CommonName,
        format!("{CA_COMMON_NAME} {}", ca_key_id(key)),
    );
    params.distinguished_name = subject;
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

fn ca_params(
    key: &KeyPair,
    start: time::OffsetDateTime,
    days: u32,
) -> Result<CertificateParams, PkiError> {
    let mut params = ca_identity_params(key);
    params.not_before = start;
    params.not_after = end_time(start, days, "CA")?;
    params.serial_number = Some(random_serial()?);
    // basicConstraints cA, path length 0: it signs peers' certificates only (RFC 5280
    // §4.2.1.9). rcgen marks it critical.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    // Only names under `telepay` (RFC 5280 §4.2.1.10): a DNS constraint matches the name
    // itself and every name below it.
    params.name_constraints = Some(NameConstraints {
        permitted_subtrees: vec![GeneralSubtree::DnsName(DOMAIN.to_owned())],
        excluded_subtrees: Vec::new(),
    });
    Ok(params)
}

/// A new key and, signed by `issuer`, a certificate naming `peer`: subject CN and the one
/// DNS subjectAltName = the peer's DNS name, EKU serverAuth + clientAuth (RFC 5280
/// §4.2.1.12: every role both serves and calls), key usage digitalSignature (ECDSA
/// signs the TLS 1.3 CertificateVerify, RFC 8446 §4.4.3).
fn leaf(
    dir: &Path,
    peer: &PeerName,
    issuer: &Issuer<'_, &KeyPair>,
    start: time::OffsetDateTime,
    days: u32,
) -> Result<(PendingFile, PendingFile), PkiError> {
    let dns = peer.dns_name();
    let generate = |source| PkiError::Generate {
        what: format!("certificate of {dns}"),
        source,
    };
    let key = generate_key(&format!("key of {dns}"))?;
    let mut params = CertificateParams::default();
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, dns.as_str());
    params.distinguished_name = subject;
    params.subject_alt_names = vec![SanType::DnsName(dns.as_str().try_into().map_err(generate)?)];
    params.not_before = start;
    params.not_after = end_time(start, days, &dns)?;
    params.serial_number = Some(random_serial()?);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    let cert = params.signed_by(&*key, issuer).map_err(generate)?;
    Ok((
        PendingFile::public(
            peer.cert_path(dir),
            cert.pem(),
            FileContent::Certificate(peer.clone()),
        ),
        PendingFile::secret(
            peer.key_path(dir),
            Zeroizing::new(key.serialize_pem()),
            FileContent::Key(peer.clone()),
        ),
    ))
}

/// Verifies a PEM leaf made here under `anchors` for TLS client authentication, at `at`.
fn verify_leaf(
    pem: &[u8],
    anchors: &[rustls_pki_types::TrustAnchor<'_>],
    at: time::OffsetDateTime,
) -> Result<(), webpki::Error> {
    let der = CertificateDer::from_pem_slice(pem).map_err(|_| webpki::Error::BadDer)?;
    let leaf = webpki::EndEntityCert::try_from(&der)?;
    let seconds = u64::try_from(at.unix_timestamp()).unwrap_or(0);
    leaf.verify_for_usage(
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .all,
        anchors,
        &[],
        UnixTime::since_unix_epoch(Duration::from_secs(seconds)),
        webpki::KeyUsage::client_auth(),
        None,
        None,
    )
    .map(|_| ())
}

fn read_limited(path: &Path) -> Result<Zeroizing<Vec<u8>>, PkiError> {
    let read_error = |source| PkiError::Read {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let mut bytes = Zeroizing::new(Vec::new());
    file.take(MAX_PEM_BYTES.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > MAX_PEM_BYTES {
        return Err(PkiError::TooLarge {
            path: path.to_owned(),
            max: MAX_PEM_BYTES,
        });
    }
    Ok(bytes)
}

fn read_ca_certificate(path: &Path) -> Result<CertificateDer<'static>, PkiError> {
    let bytes = read_limited(path)?;
    let certificates = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| PkiError::CaCertificate {
            path: path.to_owned(),
            reason: error.to_string(),
        })?;
    let count = certificates.len();
    match <[CertificateDer<'static>; 1]>::try_from(certificates) {
        Ok([certificate]) => Ok(certificate),
        Err(_) => Err(PkiError::CaCertificateCount {
            path: path.to_owned(),
            count,
        }),
    }
}

fn read_ca_key(path: &Path) -> Result<Zeroizing<KeyPair>, PkiError> {
    let bytes = read_limited(path)?;
    let key_error = |source| PkiError::CaKey {
        path: path.to_owned(),
        source,
    };
    let text =
        std::str::from_utf8(&bytes).map_err(|_| key_error(rcgen::Error::CouldNotParseKeyPair))?;
    KeyPair::from_pem(text)
        .map(Zeroizing::new)
        .map_err(key_error)
}

/// A file made in memory, written only once every file could be made.
struct PendingFile {
    path: PathBuf,
    bytes: Zeroizing<Vec<u8>>,
    secret: bool,
    content: FileContent,
}

impl PendingFile {
    fn public(path: PathBuf, pem: String, content: FileContent) -> PendingFile {
        PendingFile {
            path,
            bytes: Zeroizing::new(pem.into_bytes()),
            secret: false,
            content,
        }
    }

    fn secret(path: PathBuf, pem: Zeroizing<String>, content: FileContent) -> PendingFile {
        PendingFile {
            path,
            bytes: Zeroizing::new(pem.as_bytes().to_vec()),
            secret: true,
            content,
        }
    }
}

/// Writes every file: first each to a temporary sibling (a key's created 0600, so it is
/// never readable by others, not even while it is written), fsynced; then each is moved
/// into place: renamed over the old file with `force`, else hard-linked, which fails
/// atomically if the name was taken meanwhile. The directory is fsynced last.
fn write_files(dir: &Path, files: Vec<PendingFile>, force: bool) -> Result<PkiReport, PkiError> {
    create_private_dir(dir)?;
    let mut staged: Vec<(PathBuf, PendingFile)> = Vec::with_capacity(files.len());
    for file in files {
        let temporary = match temporary_path(dir, &file.path) {
            Ok(path) => path,
            Err(error) => {
                remove_staged(&staged);
                return Err(error);
            }
        };
        if let Err(error) = write_new_file(&temporary, &file.bytes, file.secret) {
            let _ = std::fs::remove_file(&temporary);
            remove_staged(&staged);
            return Err(error);
        }
        staged.push((temporary, file));
    }
    let mut report = PkiReport::default();
    let mut remaining = staged.into_iter();
    while let Some((temporary, file)) = remaining.next() {
        if let Err(error) = place(&temporary, &file.path, force) {
            let _ = std::fs::remove_file(&temporary);
            let rest: Vec<_> = remaining.collect();
            remove_staged(&rest);
            return Err(error);
        }
        report.written.push(WrittenFile {
            path: file.path,
            content: file.content,
        });
    }
    sync_directory(dir)?;
    Ok(report)
}

fn remove_staged(staged: &[(PathBuf, PendingFile)]) {
    for (temporary, _) in staged {
        let _ = std::fs::remove_file(temporary);
    }
}

fn temporary_path(dir: &Path, path: &Path) -> Result<PathBuf, PkiError> {
    let mut suffix = [0u8; 6];
    getrandom::fill(&mut suffix).map_err(|source| PkiError::Random { source })?;
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(dir.join(format!(".{name}.{}.tmp", hex::encode(suffix))))
}

fn create_private_dir(dir: &Path) -> Result<(), PkiError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|source| PkiError::CreateDir {
        path: dir.to_owned(),
        source,
    })
}

fn write_new_file(path: &Path, bytes: &[u8], secret: bool) -> Result<(), PkiError> {
    let write_error = |source| PkiError::Write {
        path: path.to_owned(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // The mode is applied by open(2) itself: there is no moment when a key file
        // exists with wider permissions.
        options.mode(if secret { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut file = options.open(path).map_err(write_error)?;
    file.write_all(bytes).map_err(write_error)?;
    file.sync_all().map_err(write_error)
}

fn place(temporary: &Path, path: &Path, force: bool) -> Result<(), PkiError> {
    let write_error = |source| PkiError::Write {
        path: path.to_owned(),
        source,
    };
    if force {
        return std::fs::rename(temporary, path).map_err(write_error);
    }
    match std::fs::hard_link(temporary, path) {
        Ok(()) => std::fs::remove_file(temporary).map_err(|source| PkiError::Write {
            path: temporary.to_owned(),
            source,
        }),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Err(PkiError::Exists {
            path: path.to_owned(),
        }),
        Err(error) => Err(write_error(error)),
    }
}

#[cfg(unix)]
fn sync_directory(dir: &Path) -> Result<(), PkiError> {
    std::fs::File::open(dir)
        .and_then(|handle| handle.sync_all())
        .map_err(|source| PkiError::Write {
            path: dir.to_owned(),
            source,
        })
}

#[cfg(not(unix))]
fn sync_directory(_dir: &Path) -> Result<(), PkiError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(role: ServiceRole, instance: &str) -> PeerName {
        PeerName::new(role, instance).unwrap()
    }

    #[test]
    fn roles_round_trip() {
        for role in ServiceRole::ALL {
            assert_eq!(role.as_str().parse::<ServiceRole>(), Ok(role));
            assert_eq!(role.to_string(), role.as_str());
        }
        assert_eq!(
            "acquirer".parse::<ServiceRole>(),
            Err(NameError::UnknownRole {
                role: "acquirer".to_owned()
            })
        );
    }

    #[test]
    fn names_in_both_forms() {
        let table: [(&str, ServiceRole, &str); 6] = [
            ("fe1.frontend.telepay", ServiceRole::FrontEnd, "fe1"),
            ("frontend:fe1", ServiceRole::FrontEnd, "fe1"),
            (
                "acq1.acquirer-card.telepay",
                ServiceRole::CardAcquirer,
                "acq1",
            ),
            (
                "acquirer-wallet:wallet1",
                ServiceRole::WalletAcquirer,
                "wallet1",
            ),
            (
                "centre.telecollection.telepay",
                ServiceRole::Telecollection,
                "centre",
            ),
            ("terminal:0-a", ServiceRole::Terminal, "0-a"),
        ];
        for (text, role, instance) in table {
            let peer: PeerName = text.parse().unwrap();
            assert_eq!((peer.role(), peer.instance()), (role, instance), "{text}");
            assert_eq!(peer.to_string(), format!("{instance}.{role}.telepay"));
            assert_eq!(peer.dns_name(), peer.to_string());
            assert_eq!(peer.argument(), format!("{role}:{instance}"));
            assert_eq!(peer.argument().parse::<PeerName>(), Ok(peer.clone()));
            assert_eq!(peer.dns_name().parse::<PeerName>(), Ok(peer));
        }
    }

    fn form(input: &str) -> NameError {
        NameError::Form {
            input: input.to_owned(),
        }
    }

    fn role(role: &str) -> NameError {
        NameError::UnknownRole {
            role: role.to_owned(),
        }
    }

    fn length(instance: &str) -> NameError {
        NameError::InstanceLength {
            instance: instance.to_owned(),
            length: instance.len(),
        }
    }

    fn character(instance: &str, character: char, offset: usize) -> NameError {
        NameError::InstanceCharacter {
            instance: instance.to_owned(),
            character,
            offset,
        }
    }

    fn hyphen(instance: &str) -> NameError {
        NameError::InstanceHyphen {
            instance: instance.to_owned(),
        }
    }

    #[test]
    fn bad_names_have_exact_errors() {
        let long = "a".repeat(64);
        let too_long = format!("frontend:{long}");
        #[rustfmt::skip]
        let table: [(&str, NameError); 20] = [
            ("",                      form("")),
            ("fe1",                   form("fe1")),
            ("fe1.frontend",          form("fe1.frontend")),
            ("fe1.frontend.telepay.", form("fe1.frontend.telepay.")),
            ("fe1.frontend.example",  form("fe1.frontend.example")),
            ("frontend.telepay",      form("frontend.telepay")),
            ("fe1.frontendtelepay",   form("fe1.frontendtelepay")),
            ("fe1.bank.telepay",      role("bank")),
            ("Frontend:fe1",          role("Frontend")),
            (":fe1",                  role("")),
            ("frontend:",             length("")),
            (".frontend.telepay",     length("")),
            (&too_long,               length(&long)),
            ("FE1.frontend.telepay",  character("FE1", 'F', 0)),
            ("frontend:fe_1",         character("fe_1", '_', 2)),
            ("a.b.frontend.telepay",  character("a.b", '.', 1)),
            ("frontend:fé",           character("fé", 'é', 1)),
            ("frontend:a:b",          character("a:b", ':', 1)),
            ("-fe.frontend.telepay",  hyphen("-fe")),
            ("frontend:fe-",          hyphen("fe-")),
        ];
        for (text, expected) in table {
            assert_eq!(text.parse::<PeerName>(), Err(expected), "{text:?}");
        }
        assert!(PeerName::new(ServiceRole::Terminal, &long[..63]).is_ok());
        assert_eq!(
            form("x").to_string(),
            "\"x\" is not a peer name: expected ROLE:INSTANCE (e.g. frontend:fe1) or INSTANCE.ROLE.telepay (e.g. fe1.frontend.telepay)"
        );
        assert_eq!(
            character("fe_1", '_', 2).to_string(),
            "instance \"fe_1\" has '_' at offset 2: expected only a-z, 0-9 and - (lower case)"
        );
    }

    #[test]
    fn names_serialize_as_dns_names() {
        let peer = name(ServiceRole::CardAcquirer, "acq1");
        let json = serde_json::to_string(&peer).unwrap();
        assert_eq!(json, "\"acq1.acquirer-card.telepay\"");
        assert_eq!(serde_json::from_str::<PeerName>(&json).unwrap(), peer);
        let error = serde_json::from_str::<PeerName>("\"acq1.bank.telepay\"").unwrap_err();
        assert!(
            error.to_string().starts_with("unknown role \"bank\""),
            "{error}"
        );
    }

    #[test]
    fn demo_peers_are_valid_and_distinct() {
        let peers = demo_peers();
        assert_eq!(peers.len(), 9);
        for peer in &peers {
            assert_eq!(peer.dns_name().parse::<PeerName>().as_ref(), Ok(peer));
        }
        assert!(check_unique(&peers).is_ok());
    }

    #[test]
    fn validity_is_bounded() {
        let start = time::OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        assert!(end_time(start, 1, "CA").is_ok());
        assert!(end_time(start, MAX_VALIDITY_DAYS, "CA").is_ok());
        for days in [0, MAX_VALIDITY_DAYS + 1, u32::MAX] {
            assert!(
                matches!(end_time(start, days, "CA"), Err(PkiError::Validity { days: d, .. }) if d == days),
                "{days}"
            );
        }
        let late = time::OffsetDateTime::from_unix_timestamp(253_000_000_000).unwrap();
        assert!(matches!(
            end_time(late, 36_500, "x"),
            Err(PkiError::Validity { .. })
        ));
        let before_epoch = SystemTime::UNIX_EPOCH - Duration::from_secs(1);
        let options = InitOptions {
            not_before: Some(before_epoch),
            ..InitOptions::default()
        };
        assert!(matches!(start_time(&options), Err(PkiError::Start { .. })));
    }

    #[test]
    fn serials_are_positive_and_sixteen_octets() {
        for _ in 0..64 {
            let serial = random_serial().unwrap().to_bytes();
            assert_eq!(serial.len(), 16);
            assert!((0x40..=0x7f).contains(&serial[0]), "{serial:02x?}");
        }
    }

    #[test]
    fn the_ca_vouches_only_for_telepay_names() {
        let start = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
        let ca_key = generate_key("CA key").unwrap();
        let ca_params = ca_params(&ca_key, start, 30).unwrap();
        let ca_cert = ca_params.self_signed(&*ca_key).unwrap();
        let issuer = Issuer::from_params(&ca_params, &*ca_key);
        let anchors = [webpki::anchor_from_trusted_cert(ca_cert.der()).unwrap()];

        let dir = Path::new("unused");
        let (cert, _) = leaf(dir, &name(ServiceRole::Terminal, "t1"), &issuer, start, 30).unwrap();
        assert_eq!(verify_leaf(&cert.bytes, &anchors, start), Ok(()));

        // A leaf for another host, signed by the same key: the name constraint refuses it.
        let key = generate_key("key").unwrap();
        let mut params = CertificateParams::new(vec!["www.example.com".to_owned()]).unwrap();
        params.not_before = start;
        params.not_after = end_time(start, 30, "x").unwrap();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let foreign = params.signed_by(&*key, &issuer).unwrap();
        assert_eq!(
            verify_leaf(foreign.pem().as_bytes(), &anchors, start),
            Err(webpki::Error::NameConstraintViolation)
        );
    }

    #[test]
    fn ca_subjects_are_unique_and_follow_the_key() {
        let one = generate_key("one").unwrap();
        let two = generate_key("two").unwrap();
        assert_ne!(ca_key_id(&*one), ca_key_id(&*two));
        assert_eq!(ca_key_id(&*one).len(), 16);
        let subject = ca_identity_params(&one).distinguished_name;
        assert_eq!(
            subject.get(&DnType::CommonName),
            Some(&rcgen::DnValue::Utf8String(format!(
                "telepay test CA {}",
                ca_key_id(&*one)
            )))
        );
    }

    proptest::proptest! {
        /// Parsing never panics, and whatever parses prints back to the same name.
        #[test]
        fn parsing_never_panics(text in "\\PC{0,80}") {
            if let Ok(peer) = text.parse::<PeerName>() {
                proptest::prop_assert_eq!(peer.dns_name().parse::<PeerName>(), Ok(peer.clone()));
                proptest::prop_assert_eq!(peer.argument().parse::<PeerName>(), Ok(peer));
            }
        }

        /// Every valid instance of every role round-trips through both forms.
        #[test]
        fn valid_names_round_trip(
            instance in "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?",
            role in proptest::sample::select(ServiceRole::ALL.to_vec()),
        ) {
            let peer = PeerName::new(role, &instance).unwrap();
            proptest::prop_assert_eq!(peer.dns_name().parse::<PeerName>(), Ok(peer.clone()));
            proptest::prop_assert_eq!(peer.argument().parse::<PeerName>(), Ok(peer));
        }
    }
}
