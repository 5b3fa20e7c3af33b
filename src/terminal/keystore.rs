//! The payer device's key store (patent claim 12, Fig. 9): each user's private ECDSA
//! P-256 signing key, kept encrypted on the terminal under a key derived from the
//! user's PIN.
//!
//! The user presents an **identifier**, which selects one encrypted entry among several,
//! and a **PIN**, which through a slow hash-based derivation (PBKDF2-HMAC-SHA-256, RFC
//! 8018 §5.2) gives the symmetric key that decrypts the private key (AES-256-GCM, NIST
//! SP 800-38D). The format, the cost and the choices are in `docs/keystore.md`.
//!
//! Sans-IO: [`KeyStore`] is a value; [`KeyStore::parse`] and [`KeyStore::to_bytes`] are
//! pure; time ([`Timestamp`]) and randomness (a [`TryCryptoRng`]) are inputs. The file
//! sits at the edge, in [`KeyStoreFile`] (bounded read, atomic write with mode 0600).
//!
//! Per entry:
//!
//! ```text
//! K      = PBKDF2-HMAC-SHA-256(PIN as UTF-8, salt (16 random bytes), iterations, 32 bytes)
//! Kenc   = HMAC-SHA-256(K, "telepay-keystore/1 encryption key")
//! check  = HMAC-SHA-256(K, "telepay-keystore/1 PIN check")[0..16]
//! sealed = AES-256-GCM(Kenc, nonce (12 random bytes), private scalar (32 bytes), AAD)
//! ```
//!
//! The PIN check tells a wrong PIN (check differs) from an altered entry (check agrees,
//! the GCM tag does not); it gives an attacker who holds the file nothing the tag does
//! not already give (each PIN guess costs one full PBKDF2 either way). The associated
//! data binds the format version, the identifier, the KDF and its parameters, the cipher,
//! the creation time and the public key, so none of them can be changed in the file
//! without the change being detected at unlock.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hmac::{Hmac, Mac};
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::elliptic_curve::rand_core::TryCryptoRng;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// The value of the file's `format` member.
pub const FORMAT_NAME: &str = "telepay-keystore";
/// The file format version this code reads and writes (bound into every entry's AAD).
pub const FORMAT_VERSION: u32 = 1;
/// The KDF name written in each entry.
pub const KDF_NAME: &str = "pbkdf2-hmac-sha256";
/// The cipher name written in each entry.
pub const CIPHER_NAME: &str = "aes-256-gcm";

/// Fewest characters in a PIN: 8 characters drawn from printable ASCII (95 symbols)
/// give up to 52 bits; even an all-digit PIN of 8 gives 26.6 bits, which with the
/// production cost below means ~10⁸ × 81 ms ≈ 3 months of one core per key (see
/// `docs/keystore.md`). The patent asks for a PIN "long enough to protect the key".
pub const MIN_PIN_CHARS: usize = 8;
/// Most bytes in a PIN: bounds the work an oversized input can cause.
pub const MAX_PIN_BYTES: usize = 128;
/// Most characters in a user identifier.
pub const MAX_USER_CHARS: usize = 64;
/// PBKDF2 iterations of [`KdfCost::production`]: OWASP's 2023 figure for
/// PBKDF2-HMAC-SHA-256 (87 ms per unlock in release on the project's 2-core VM; see
/// `docs/benchmarks.md`).
pub const PRODUCTION_ITERATIONS: u32 = 600_000;
/// The floor a store read under [`CostPolicy::Production`] accepts.
pub const MIN_PRODUCTION_ITERATIONS: u32 = 100_000;
/// PBKDF2 iterations of [`KdfCost::for_tests`].
pub const TEST_ITERATIONS: u32 = 1_000;
/// The floor under [`CostPolicy::AllowTestCost`]: never fewer, whatever a file says.
pub const MIN_TEST_ITERATIONS: u32 = 1_000;
/// The ceiling: a file asking more (an unlock of hours) is refused as corrupt.
pub const MAX_ITERATIONS: u32 = 50_000_000;
/// Most bytes [`KeyStoreFile::load`] reads: a store of a few hundred users is ~200 KiB.
pub const MAX_FILE_BYTES: u64 = 1 << 20;
/// Most entries in one store.
pub const MAX_ENTRIES: usize = 1_000;

const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 12;
const CHECK_LEN: usize = 16;
const SCALAR_LEN: usize = 32;
const TAG_LEN: usize = 16;
const SEALED_LEN: usize = SCALAR_LEN + TAG_LEN;
const PUBLIC_KEY_LEN: usize = 65;
const ENCRYPTION_LABEL: &[u8] = b"telepay-keystore/1 encryption key";
const CHECK_LABEL: &[u8] = b"telepay-keystore/1 PIN check";
/// Identifiers of the KDF and the cipher inside the AAD (one byte each).
const KDF_ID_PBKDF2_HMAC_SHA256: u8 = 1;
const CIPHER_ID_AES_256_GCM: u8 = 1;

/// Why a key store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyStoreError {
    /// The PIN has fewer characters than [`MIN_PIN_CHARS`].
    #[error("the PIN is too short: {got} characters, at least {min} needed")]
    PinTooShort {
        /// The minimum.
        min: usize,
        /// The PIN's length in characters.
        got: usize,
    },
    /// The PIN has more bytes than [`MAX_PIN_BYTES`].
    #[error("the PIN is too long: {got} bytes, at most {max}")]
    PinTooLong {
        /// The maximum.
        max: usize,
        /// The PIN's length in bytes.
        got: usize,
    },
    /// The PIN holds a character outside printable ASCII.
    #[error(
        "the PIN has a character other than printable ASCII (space to ~) at position {position}"
    )]
    PinCharacter {
        /// The character's position (0-based, in characters).
        position: usize,
    },
    /// A user identifier is empty, too long or holds a character not allowed.
    #[error("user identifier {user:?}: {expected} (1 to {MAX_USER_CHARS} of A-Z a-z 0-9 - _ . @)")]
    BadUser {
        /// The identifier given.
        user: String,
        /// What is wrong.
        expected: &'static str,
    },
    /// The PIN does not open this user's key.
    #[error("wrong PIN for user {user:?}")]
    WrongPin {
        /// The user.
        user: String,
    },
    /// No entry has this identifier.
    #[error("no key for user {user:?} in the key store")]
    UnknownUser {
        /// The identifier given.
        user: String,
    },
    /// An entry with this identifier exists already.
    #[error("user {user:?} already has a key in the key store")]
    DuplicateUser {
        /// The identifier given.
        user: String,
    },
    /// A KDF cost outside what the policy accepts, asked by the caller.
    #[error("KDF cost of {iterations} iterations refused: the policy accepts {floor} to {ceiling}")]
    CostOutOfRange {
        /// The iterations asked.
        iterations: u32,
        /// The policy's floor.
        floor: u32,
        /// The ceiling.
        ceiling: u32,
    },
    /// The store already holds [`MAX_ENTRIES`] entries.
    #[error("the key store is full ({max} entries)")]
    Full {
        /// The maximum.
        max: usize,
    },
    /// The file is not JSON.
    #[error("key store is not JSON: line {line}, column {column}: {reason}")]
    Syntax {
        /// Line of the fault (1-based).
        line: usize,
        /// Column of the fault (1-based).
        column: usize,
        /// The parser's reason.
        reason: String,
    },
    /// The file says it is another format, or another version of this one.
    #[error("unsupported key store: {found}, this version reads {FORMAT_NAME} version {supported}")]
    UnsupportedVersion {
        /// What the file says (format and version).
        found: String,
        /// The version supported.
        supported: u32,
    },
    /// A member of the file is missing or malformed, or an entry was altered.
    #[error("key store {}: {field}: {reason}", entry_label(*entry, user.as_deref()))]
    Corrupt {
        /// The entry's position (0-based) in `entries`, or `None` for the file's header.
        entry: Option<usize>,
        /// The entry's identifier, when it could be read.
        user: Option<String>,
        /// The member at fault, as a JSON path inside the entry (`kdf.salt`).
        field: &'static str,
        /// What is wrong: what was expected and what was found.
        reason: String,
    },
    /// An entry's KDF cost is below the policy's floor (never silently accepted).
    #[error(
        "key store {}: kdf.iterations: {iterations} is below the floor of {floor}{hint}",
        entry_label(Some(*entry), Some(user)),
        hint = if *floor > MIN_TEST_ITERATIONS && *iterations >= MIN_TEST_ITERATIONS {
            " (a test-cost entry: not for real keys)"
        } else {
            ""
        }
    )]
    CostBelowFloor {
        /// The entry's position (0-based).
        entry: usize,
        /// The entry's identifier.
        user: String,
        /// Its iteration count.
        iterations: u32,
        /// The policy's floor.
        floor: u32,
    },
    /// The file is larger than [`MAX_FILE_BYTES`].
    #[error("key store {} is larger than {max} bytes", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit.
        max: u64,
    },
    /// The cipher could not seal a key (never expected: AES-GCM takes any 32 bytes).
    #[error("cannot seal the key of {user:?}: {reason}")]
    Seal {
        /// The user.
        user: String,
        /// The cipher's complaint.
        reason: String,
    },
    /// The system's random source failed.
    #[error("cannot draw random bytes: {reason}")]
    Random {
        /// The source's error.
        reason: String,
    },
    /// Reading or writing the key store file failed.
    #[error("key store {}: {source}", path.display())]
    Io {
        /// The file (or its temporary sibling, or its directory).
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// `entry 2 (alice)`, 1-based as people count, or `header`.
fn entry_label(entry: Option<usize>, user: Option<&str>) -> String {
    match (entry, user) {
        (None, _) => "header".to_owned(),
        (Some(index), Some(user)) => format!("entry {} ({user:?})", index.saturating_add(1)),
        (Some(index), None) => format!("entry {}", index.saturating_add(1)),
    }
}

/// A PIN checked for length and characters; zeroized on drop, hidden from `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Pin(Zeroizing<String>);

impl Pin {
    /// Checks a PIN: [`MIN_PIN_CHARS`] to [`MAX_PIN_BYTES`] printable ASCII characters
    /// (space to `~`). ASCII only, so the same PIN typed on any keyboard or locale gives
    /// the same bytes (no Unicode normalisation question).
    pub fn new(pin: &str) -> Result<Pin, KeyStoreError> {
        let pin = Zeroizing::new(pin.to_owned());
        if pin.len() > MAX_PIN_BYTES {
            return Err(KeyStoreError::PinTooLong {
                max: MAX_PIN_BYTES,
                got: pin.len(),
            });
        }
        if let Some(position) = pin
            .chars()
            .position(|character| !(' '..='~').contains(&character))
        {
            return Err(KeyStoreError::PinCharacter { position });
        }
        let got = pin.chars().count();
        if got < MIN_PIN_CHARS {
            return Err(KeyStoreError::PinTooShort {
                min: MIN_PIN_CHARS,
                got,
            });
        }
        Ok(Pin(pin))
    }

    fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::fmt::Debug for Pin {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Pin(<hidden>)")
    }
}

/// Which KDF costs a store accepts, from a file and from [`KeyStore::add`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CostPolicy {
    /// At least [`MIN_PRODUCTION_ITERATIONS`]: the only policy for real keys.
    #[default]
    Production,
    /// At least [`MIN_TEST_ITERATIONS`], so that debug-build tests run fast. Never for
    /// real keys: a test-cost entry falls to a PIN search in minutes.
    AllowTestCost,
}

impl CostPolicy {
    /// The fewest iterations accepted.
    pub fn floor(self) -> u32 {
        match self {
            CostPolicy::Production => MIN_PRODUCTION_ITERATIONS,
            CostPolicy::AllowTestCost => MIN_TEST_ITERATIONS,
        }
    }

    fn check(self, iterations: u32) -> Result<(), KeyStoreError> {
        if (self.floor()..=MAX_ITERATIONS).contains(&iterations) {
            Ok(())
        } else {
            Err(KeyStoreError::CostOutOfRange {
                iterations,
                floor: self.floor(),
                ceiling: MAX_ITERATIONS,
            })
        }
    }
}

/// The KDF cost of an entry: PBKDF2-HMAC-SHA-256 iterations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfCost {
    iterations: u32,
}

impl KdfCost {
    /// The cost for real keys: [`PRODUCTION_ITERATIONS`].
    pub const fn production() -> KdfCost {
        KdfCost {
            iterations: PRODUCTION_ITERATIONS,
        }
    }

    /// A deliberately weak cost, [`TEST_ITERATIONS`], **for tests only**: a store
    /// holding such an entry is refused unless read with [`CostPolicy::AllowTestCost`].
    pub const fn for_tests() -> KdfCost {
        KdfCost {
            iterations: TEST_ITERATIONS,
        }
    }

    /// A cost of `iterations`, checked against `policy` and [`MAX_ITERATIONS`].
    pub fn from_iterations(iterations: u32, policy: CostPolicy) -> Result<KdfCost, KeyStoreError> {
        policy.check(iterations)?;
        Ok(KdfCost { iterations })
    }

    /// The PBKDF2 iteration count.
    pub fn iterations(self) -> u32 {
        self.iterations
    }
}

/// A time as seconds since the Unix epoch (UTC): the caller reads the clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(pub u64);

impl std::fmt::Display for Timestamp {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let seconds = i64::try_from(self.0).unwrap_or(i64::MAX);
        formatter.write_str(&crate::calendar::rfc3339_utc(seconds))
    }
}

/// One encrypted key, as stored: everything is public but the sealed scalar's content.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    user: String,
    created: Timestamp,
    public_key: VerifyingKey,
    iterations: u32,
    salt: [u8; SALT_LEN],
    nonce: [u8; NONCE_LEN],
    check: [u8; CHECK_LEN],
    sealed: [u8; SEALED_LEN],
}

/// What [`KeyStore::entries`] shows of an entry: never a secret.
#[derive(Debug, Clone, Copy)]
pub struct EntryInfo<'store> {
    entry: &'store Entry,
}

impl EntryInfo<'_> {
    /// The user identifier.
    pub fn user(&self) -> &str {
        &self.entry.user
    }

    /// The public key.
    pub fn public_key(&self) -> &VerifyingKey {
        &self.entry.public_key
    }

    /// The public key as an uncompressed SEC1 point (`04 ‖ X ‖ Y`, 65 bytes).
    pub fn public_key_sec1(&self) -> Vec<u8> {
        sec1(&self.entry.public_key)
    }

    /// A short fingerprint of the public key; see [`fingerprint`].
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.entry.public_key)
    }

    /// The entry's PBKDF2 iteration count.
    pub fn iterations(&self) -> u32 {
        self.entry.iterations
    }

    /// When the key was created.
    pub fn created(&self) -> Timestamp {
        self.entry.created
    }
}

/// The public key as an uncompressed SEC1 point, 65 bytes.
fn sec1(key: &VerifyingKey) -> Vec<u8> {
    key.to_sec1_point(false).as_bytes().to_vec()
}

/// The first 8 bytes of SHA-256 over the uncompressed SEC1 public key, as four groups of
/// four hex digits (`3f2a:91bc:0d4e:77a1`): enough to tell keys apart by eye.
pub fn fingerprint(key: &VerifyingKey) -> String {
    let digest = Sha256::digest(sec1(key));
    digest
        .chunks(2)
        .take(4)
        .map(hex::encode)
        .collect::<Vec<_>>()
        .join(":")
}

/// A private key opened with its PIN: it signs. Zeroized on drop (the `p256` signing
/// key zeroizes its scalar), hidden from `Debug`.
pub struct UnlockedKey {
    user: String,
    signing: SigningKey,
}

impl UnlockedKey {
    /// The user it belongs to.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// Signs `message`: ECDSA P-256 over SHA-256 of the message, deterministic nonce
    /// (RFC 6979), signature `r ‖ s` (64 bytes with `to_bytes`).
    pub fn sign(&self, message: &[u8]) -> Signature {
        self.signing.sign(message)
    }

    /// The public key that verifies its signatures.
    pub fn verifying_key(&self) -> &VerifyingKey {
        self.signing.verifying_key()
    }
}

impl std::fmt::Debug for UnlockedKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("UnlockedKey")
            .field("user", &self.user)
            .field("public_key", &fingerprint(self.verifying_key()))
            .finish_non_exhaustive()
    }
}

/// The key store: users' encrypted signing keys, in the order they were added.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyStore {
    policy: CostPolicy,
    entries: Vec<Entry>,
}

impl KeyStore {
    /// An empty store accepting `policy`'s costs.
    pub fn new(policy: CostPolicy) -> KeyStore {
        KeyStore {
            policy,
            entries: Vec::new(),
        }
    }

    /// The cost policy the store checks.
    pub fn policy(&self) -> CostPolicy {
        self.policy
    }

    /// Reads a store written by [`KeyStore::to_bytes`] under [`CostPolicy::Production`].
    pub fn parse(bytes: &[u8]) -> Result<KeyStore, KeyStoreError> {
        KeyStore::parse_with_policy(bytes, CostPolicy::Production)
    }

    /// Reads a store, refusing any entry whose cost `policy` does not accept.
    pub fn parse_with_policy(bytes: &[u8], policy: CostPolicy) -> Result<KeyStore, KeyStoreError> {
        let document: Value =
            serde_json::from_slice(bytes).map_err(|error| KeyStoreError::Syntax {
                line: error.line(),
                column: error.column(),
                reason: error.to_string(),
            })?;
        let header_error = |field, reason: String| KeyStoreError::Corrupt {
            entry: None,
            user: None,
            field,
            reason,
        };
        let Value::Object(root) = &document else {
            return Err(header_error(
                "(root)",
                format!("expected an object, found {}", kind(&document)),
            ));
        };
        let format = root.get("format");
        let version = root.get("version");
        if format.and_then(Value::as_str) != Some(FORMAT_NAME)
            || version.and_then(Value::as_u64) != Some(u64::from(FORMAT_VERSION))
        {
            let shown = |value: Option<&Value>| value.map_or("(none)".to_owned(), Value::to_string);
            return Err(KeyStoreError::UnsupportedVersion {
                found: format!("format {} version {}", shown(format), shown(version)),
                supported: FORMAT_VERSION,
            });
        }
        check_members(root, &["format", "version", "entries"], |field, reason| {
            header_error(field, reason)
        })?;
        let Some(Value::Array(raw_entries)) = root.get("entries") else {
            return Err(header_error(
                "entries",
                format!(
                    "expected an array, found {}",
                    root.get("entries").map_or("nothing", kind)
                ),
            ));
        };
        if raw_entries.len() > MAX_ENTRIES {
            return Err(header_error(
                "entries",
                format!("{} entries, at most {MAX_ENTRIES}", raw_entries.len()),
            ));
        }
        let mut store = KeyStore::new(policy);
        for (index, raw) in raw_entries.iter().enumerate() {
            let entry = parse_entry(index, raw, policy)?;
            if let Some(first) = store.position(&entry.user) {
                return Err(KeyStoreError::Corrupt {
                    entry: Some(index),
                    user: Some(entry.user),
                    field: "user",
                    reason: format!("the same identifier as entry {}", first.saturating_add(1)),
                });
            }
            store.entries.push(entry);
        }
        Ok(store)
    }

    /// The store as the file's bytes: pretty JSON, entries in order, ending in a newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        let file = FileOut {
            format: FORMAT_NAME,
            version: FORMAT_VERSION,
            entries: self.entries.iter().map(entry_out).collect(),
        };
        // Serialising strings and integers into a Vec cannot fail.
        let mut bytes = serde_json::to_vec_pretty(&file).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }

    /// The identifiers, in order.
    pub fn users(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|entry| entry.user.as_str())
    }

    /// The entries' public parts, in order.
    pub fn entries(&self) -> impl Iterator<Item = EntryInfo<'_>> {
        self.entries.iter().map(|entry| EntryInfo { entry })
    }

    /// The entry of `user`, if any.
    pub fn entry(&self, user: &str) -> Option<EntryInfo<'_>> {
        self.entries
            .iter()
            .find(|entry| entry.user == user)
            .map(|entry| EntryInfo { entry })
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there is no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn position(&self, user: &str) -> Option<usize> {
        self.entries.iter().position(|entry| entry.user == user)
    }

    /// Generates a new signing key for `user`, stores it sealed under `pin` with `cost`,
    /// and returns its public key. `created` is the time to record.
    pub fn add<R: TryCryptoRng + ?Sized>(
        &mut self,
        user: &str,
        pin: &Pin,
        cost: KdfCost,
        created: Timestamp,
        rng: &mut R,
    ) -> Result<VerifyingKey, KeyStoreError> {
        check_user(user)?;
        if self.position(user).is_some() {
            return Err(KeyStoreError::DuplicateUser {
                user: user.to_owned(),
            });
        }
        if self.entries.len() >= MAX_ENTRIES {
            return Err(KeyStoreError::Full { max: MAX_ENTRIES });
        }
        self.policy.check(cost.iterations)?;
        let signing = generate_signing_key(rng)?;
        let entry = seal(user, &signing, pin, cost, created, rng)?;
        let public_key = entry.public_key;
        self.entries.push(entry);
        Ok(public_key)
    }

    /// Opens `user`'s key with `pin`.
    pub fn unlock(&self, user: &str, pin: &Pin) -> Result<UnlockedKey, KeyStoreError> {
        let index = self
            .position(user)
            .ok_or_else(|| KeyStoreError::UnknownUser {
                user: user.to_owned(),
            })?;
        let entry = self
            .entries
            .get(index)
            .ok_or_else(|| KeyStoreError::UnknownUser {
                user: user.to_owned(),
            })?;
        open(index, entry, pin)
    }

    /// Re-seals `user`'s key under `new_pin` (fresh salt and nonce, `cost`), after
    /// `old_pin` opened it. The key, its public key and its creation time are unchanged;
    /// on any error the store is unchanged.
    pub fn change_pin<R: TryCryptoRng + ?Sized>(
        &mut self,
        user: &str,
        old_pin: &Pin,
        new_pin: &Pin,
        cost: KdfCost,
        rng: &mut R,
    ) -> Result<(), KeyStoreError> {
        self.policy.check(cost.iterations)?;
        let unlocked = self.unlock(user, old_pin)?;
        let index = self
            .position(user)
            .ok_or_else(|| KeyStoreError::UnknownUser {
                user: user.to_owned(),
            })?;
        let slot = self
            .entries
            .get_mut(index)
            .ok_or_else(|| KeyStoreError::UnknownUser {
                user: user.to_owned(),
            })?;
        let resealed = seal(user, &unlocked.signing, new_pin, cost, slot.created, rng)?;
        *slot = resealed;
        Ok(())
    }

    /// Removes `user`'s entry and returns its public key.
    pub fn remove(&mut self, user: &str) -> Result<VerifyingKey, KeyStoreError> {
        let index = self
            .position(user)
            .ok_or_else(|| KeyStoreError::UnknownUser {
                user: user.to_owned(),
            })?;
        Ok(self.entries.remove(index).public_key)
    }
}

/// Identifiers: 1 to [`MAX_USER_CHARS`] of `A-Z a-z 0-9 - _ . @`, case-sensitive.
fn check_user(user: &str) -> Result<(), KeyStoreError> {
    let bad = |expected| KeyStoreError::BadUser {
        user: user.to_owned(),
        expected,
    };
    if user.is_empty() {
        return Err(bad("empty"));
    }
    if user.chars().count() > MAX_USER_CHARS {
        return Err(bad("too long"));
    }
    if !user
        .bytes()
        .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'@'))
    {
        return Err(bad("a character not allowed"));
    }
    Ok(())
}

/// A uniformly random private scalar in [1, n−1]: 32 random bytes, drawn again in the
/// rare case (< 2⁻³²) they are zero or not below the group order n (FIPS 186-5 A.4.2,
/// rejection sampling).
fn generate_signing_key<R: TryCryptoRng + ?Sized>(
    rng: &mut R,
) -> Result<SigningKey, KeyStoreError> {
    for _ in 0..64 {
        let mut bytes = Zeroizing::new([0u8; SCALAR_LEN]);
        fill(rng, bytes.as_mut_slice())?;
        if let Ok(key) = SigningKey::from_slice(bytes.as_slice()) {
            return Ok(key);
        }
    }
    Err(KeyStoreError::Random {
        reason: "64 draws in a row were not a valid P-256 scalar: the source is broken".to_owned(),
    })
}

fn fill<R: TryCryptoRng + ?Sized>(rng: &mut R, bytes: &mut [u8]) -> Result<(), KeyStoreError> {
    rng.try_fill_bytes(bytes)
        .map_err(|error| KeyStoreError::Random {
            reason: error.to_string(),
        })
}

/// The keys derived from the PIN: the AES key and the PIN check. Zeroized on drop.
struct DerivedKeys {
    encryption: Zeroizing<[u8; 32]>,
    check: Zeroizing<[u8; 32]>,
}

/// PBKDF2-HMAC-SHA-256 (RFC 8018 §5.2), then two HMAC-SHA-256 with distinct labels so
/// the AES key and the PIN check are independent (one PBKDF2 block: the defender pays
/// the iterations once, like the attacker).
fn derive(pin: &Pin, salt: &[u8], iterations: u32) -> DerivedKeys {
    let mut master = Zeroizing::new([0u8; 32]);
    // `pbkdf2` fails only for a PRF refusing the key length; HMAC takes any length,
    // so the result is always Ok.
    let _ = pbkdf2::pbkdf2::<Hmac<Sha256>>(pin.as_bytes(), salt, iterations, master.as_mut_slice());
    DerivedKeys {
        encryption: label_mac(&master, ENCRYPTION_LABEL),
        check: label_mac(&master, CHECK_LABEL),
    }
}

fn label_mac(master: &[u8; 32], label: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut output = Zeroizing::new([0u8; 32]);
    // HMAC accepts a key of any length (RFC 2104 §2): `new_from_slice` cannot fail here.
    if let Ok(mut mac) = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(master) {
        mac.update(label);
        output.copy_from_slice(&mac.finalize().into_bytes());
    }
    output
}

/// The associated data of an entry (every multi-byte number big-endian):
///
/// ```text
/// "telepay-keystore" 00 ‖ version (4) ‖ len(user) (1) ‖ user ‖ KDF id 01 ‖
/// iterations (4) ‖ salt (16) ‖ cipher id 01 ‖ created (8) ‖ public key SEC1 (65)
/// ```
fn associated_data(
    user: &str,
    iterations: u32,
    salt: &[u8; SALT_LEN],
    created: Timestamp,
    public_key: &VerifyingKey,
) -> Vec<u8> {
    let mut aad = Vec::with_capacity(128 + user.len());
    aad.extend_from_slice(FORMAT_NAME.as_bytes());
    aad.push(0);
    aad.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
    // Identifiers are at most 64 ASCII bytes (check_user): the length fits a byte.
    aad.push(u8::try_from(user.len()).unwrap_or(u8::MAX));
    aad.extend_from_slice(user.as_bytes());
    aad.push(KDF_ID_PBKDF2_HMAC_SHA256);
    aad.extend_from_slice(&iterations.to_be_bytes());
    aad.extend_from_slice(salt);
    aad.push(CIPHER_ID_AES_256_GCM);
    aad.extend_from_slice(&created.0.to_be_bytes());
    aad.extend_from_slice(&sec1(public_key));
    aad
}

fn seal<R: TryCryptoRng + ?Sized>(
    user: &str,
    signing: &SigningKey,
    pin: &Pin,
    cost: KdfCost,
    created: Timestamp,
    rng: &mut R,
) -> Result<Entry, KeyStoreError> {
    let mut salt = [0u8; SALT_LEN];
    fill(rng, &mut salt)?;
    let mut nonce = [0u8; NONCE_LEN];
    fill(rng, &mut nonce)?;
    let keys = derive(pin, &salt, cost.iterations);
    let public_key = *signing.verifying_key();
    let aad = associated_data(user, cost.iterations, &salt, created, &public_key);
    let scalar = Zeroizing::new(signing.to_bytes());
    let cipher = Aes256Gcm::new(&(*keys.encryption).into());
    let sealed_vec = cipher
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: scalar.as_slice(),
                aad: &aad,
            },
        )
        .map_err(|_| KeyStoreError::Seal {
            user: user.to_owned(),
            reason: "AES-GCM refused to encrypt 32 bytes".to_owned(),
        })?;
    let sealed: [u8; SEALED_LEN] =
        sealed_vec
            .as_slice()
            .try_into()
            .map_err(|_| KeyStoreError::Seal {
                user: user.to_owned(),
                reason: format!("AES-GCM gave {} bytes, not {SEALED_LEN}", sealed_vec.len()),
            })?;
    let mut check = [0u8; CHECK_LEN];
    check.copy_from_slice(keys.check.get(..CHECK_LEN).unwrap_or(&[0; CHECK_LEN]));
    Ok(Entry {
        user: user.to_owned(),
        created,
        public_key,
        iterations: cost.iterations,
        salt,
        nonce,
        check,
        sealed,
    })
}

fn open(index: usize, entry: &Entry, pin: &Pin) -> Result<UnlockedKey, KeyStoreError> {
    let keys = derive(pin, &entry.salt, entry.iterations);
    // Constant-time comparison, so the time taken says nothing of how many leading bytes
    // of the check agree.
    let check_ok = constant_time_equal(keys.check.get(..CHECK_LEN).unwrap_or(&[]), &entry.check);
    if !check_ok {
        return Err(KeyStoreError::WrongPin {
            user: entry.user.clone(),
        });
    }
    let corrupt = |field, reason: &str| KeyStoreError::Corrupt {
        entry: Some(index),
        user: Some(entry.user.clone()),
        field,
        reason: reason.to_owned(),
    };
    let aad = associated_data(
        &entry.user,
        entry.iterations,
        &entry.salt,
        entry.created,
        &entry.public_key,
    );
    let cipher = Aes256Gcm::new(&(*keys.encryption).into());
    let scalar = Zeroizing::new(
        cipher
            .decrypt(
                &Nonce::from(entry.nonce),
                Payload {
                    msg: &entry.sealed,
                    aad: &aad,
                },
            )
            .map_err(|_| {
                corrupt(
                    "sealed_key",
                    "the PIN is right but the AES-GCM tag does not match: the sealed key, the \
                     nonce, or a bound member (user, created, public_key) was altered",
                )
            })?,
    );
    let signing = SigningKey::from_slice(&scalar)
        .map_err(|_| corrupt("sealed_key", "decrypts to a value that is not a P-256 key"))?;
    if *signing.verifying_key() != entry.public_key {
        return Err(corrupt(
            "public_key",
            "is not the public key of the sealed private key",
        ));
    }
    Ok(UnlockedKey {
        user: entry.user.clone(),
        signing,
    })
}

fn constant_time_equal(left: &[u8], right: &[u8]) -> bool {
    use p256::elliptic_curve::subtle::ConstantTimeEq;
    left.len() == right.len() && bool::from(left.ct_eq(right))
}

/// The file as written: members in this order (serde keeps a struct's field order).
#[derive(serde::Serialize)]
struct FileOut<'store> {
    format: &'static str,
    version: u32,
    entries: Vec<EntryOut<'store>>,
}

#[derive(serde::Serialize)]
struct EntryOut<'store> {
    user: &'store str,
    created: u64,
    public_key: String,
    kdf: KdfOut,
    cipher: CipherOut,
    pin_check: String,
    sealed_key: String,
}

#[derive(serde::Serialize)]
struct KdfOut {
    algorithm: &'static str,
    iterations: u32,
    salt: String,
}

#[derive(serde::Serialize)]
struct CipherOut {
    algorithm: &'static str,
    nonce: String,
}

fn entry_out(entry: &Entry) -> EntryOut<'_> {
    EntryOut {
        user: &entry.user,
        created: entry.created.0,
        public_key: hex::encode(sec1(&entry.public_key)),
        kdf: KdfOut {
            algorithm: KDF_NAME,
            iterations: entry.iterations,
            salt: hex::encode(entry.salt),
        },
        cipher: CipherOut {
            algorithm: CIPHER_NAME,
            nonce: hex::encode(entry.nonce),
        },
        pin_check: hex::encode(entry.check),
        sealed_key: hex::encode(entry.sealed),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Refuses members not in `allowed`: a field this version does not know could be one
/// the writer meant to matter.
fn check_members(
    object: &Map<String, Value>,
    allowed: &[&'static str],
    error: impl Fn(&'static str, String) -> KeyStoreError,
) -> Result<(), KeyStoreError> {
    match object.keys().find(|key| !allowed.contains(&key.as_str())) {
        Some(unknown) => Err(error(
            "(member)",
            format!("unknown member {unknown:?}; expected only {allowed:?}"),
        )),
        None => Ok(()),
    }
}

/// Reads one entry, every field checked; errors name the entry and the field.
fn parse_entry(index: usize, raw: &Value, policy: CostPolicy) -> Result<Entry, KeyStoreError> {
    let user_name = raw.get("user").and_then(Value::as_str).map(str::to_owned);
    let corrupt = |field: &'static str, reason: String| KeyStoreError::Corrupt {
        entry: Some(index),
        user: user_name.clone(),
        field,
        reason,
    };
    let Value::Object(object) = raw else {
        return Err(corrupt(
            "(entry)",
            format!("expected an object, found {}", kind(raw)),
        ));
    };
    check_members(
        object,
        &[
            "user",
            "created",
            "public_key",
            "kdf",
            "cipher",
            "pin_check",
            "sealed_key",
        ],
        corrupt,
    )?;
    let member = |object: &Map<String, Value>, name: &str, field: &'static str| {
        object
            .get(name)
            .cloned()
            .ok_or_else(|| corrupt(field, "missing".to_owned()))
    };
    let string = |value: Value, field: &'static str| match value {
        Value::String(text) => Ok(text),
        other => Err(corrupt(
            field,
            format!("expected a string, found {}", kind(&other)),
        )),
    };

    let user = string(member(object, "user", "user")?, "user")?;
    check_user(&user).map_err(|error| corrupt("user", error.to_string()))?;

    let created = member(object, "created", "created")?;
    let created = created.as_u64().ok_or_else(|| {
        corrupt(
            "created",
            format!(
                "expected Unix seconds (a whole number ≥ 0), found {}",
                created
            ),
        )
    })?;

    let public_hex = string(member(object, "public_key", "public_key")?, "public_key")?;
    let public_bytes: [u8; PUBLIC_KEY_LEN] = fixed_hex(&public_hex, "public_key", &corrupt)?;
    let public_key = VerifyingKey::from_sec1_bytes(&public_bytes).map_err(|_| {
        corrupt(
            "public_key",
            "not an uncompressed SEC1 point on P-256 (04 ‖ X ‖ Y)".to_owned(),
        )
    })?;

    let Value::Object(kdf) = member(object, "kdf", "kdf")? else {
        return Err(corrupt("kdf", "expected an object".to_owned()));
    };
    check_members(&kdf, &["algorithm", "iterations", "salt"], |_, reason| {
        corrupt("kdf", reason)
    })?;
    let algorithm = string(member(&kdf, "algorithm", "kdf.algorithm")?, "kdf.algorithm")?;
    if algorithm != KDF_NAME {
        return Err(corrupt(
            "kdf.algorithm",
            format!("expected {KDF_NAME:?}, found {algorithm:?}"),
        ));
    }
    let iterations_value = member(&kdf, "iterations", "kdf.iterations")?;
    let iterations = iterations_value
        .as_u64()
        .and_then(|number| u32::try_from(number).ok())
        .ok_or_else(|| {
            corrupt(
                "kdf.iterations",
                format!("expected a whole number up to {MAX_ITERATIONS}, found {iterations_value}"),
            )
        })?;
    if iterations > MAX_ITERATIONS {
        return Err(corrupt(
            "kdf.iterations",
            format!("{iterations} is above the ceiling of {MAX_ITERATIONS}"),
        ));
    }
    if iterations < policy.floor() {
        return Err(KeyStoreError::CostBelowFloor {
            entry: index,
            user,
            iterations,
            floor: policy.floor(),
        });
    }
    let salt_hex = string(member(&kdf, "salt", "kdf.salt")?, "kdf.salt")?;
    let salt: [u8; SALT_LEN] = fixed_hex(&salt_hex, "kdf.salt", &corrupt)?;

    let Value::Object(cipher) = member(object, "cipher", "cipher")? else {
        return Err(corrupt("cipher", "expected an object".to_owned()));
    };
    check_members(&cipher, &["algorithm", "nonce"], |_, reason| {
        corrupt("cipher", reason)
    })?;
    let algorithm = string(
        member(&cipher, "algorithm", "cipher.algorithm")?,
        "cipher.algorithm",
    )?;
    if algorithm != CIPHER_NAME {
        return Err(corrupt(
            "cipher.algorithm",
            format!("expected {CIPHER_NAME:?}, found {algorithm:?}"),
        ));
    }
    let nonce_hex = string(member(&cipher, "nonce", "cipher.nonce")?, "cipher.nonce")?;
    let nonce: [u8; NONCE_LEN] = fixed_hex(&nonce_hex, "cipher.nonce", &corrupt)?;

    let check_hex = string(member(object, "pin_check", "pin_check")?, "pin_check")?;
    let check: [u8; CHECK_LEN] = fixed_hex(&check_hex, "pin_check", &corrupt)?;
    let sealed_hex = string(member(object, "sealed_key", "sealed_key")?, "sealed_key")?;
    let sealed: [u8; SEALED_LEN] = fixed_hex(&sealed_hex, "sealed_key", &corrupt)?;

    Ok(Entry {
        user,
        created: Timestamp(created),
        public_key,
        iterations,
        salt,
        nonce,
        check,
        sealed,
    })
}

/// Lower-case or upper-case hex of exactly `N` bytes.
fn fixed_hex<const N: usize>(
    text: &str,
    field: &'static str,
    corrupt: &impl Fn(&'static str, String) -> KeyStoreError,
) -> Result<[u8; N], KeyStoreError> {
    if let Some(position) = text.chars().position(|c| !c.is_ascii_hexdigit()) {
        return Err(corrupt(
            field,
            format!(
                "not hex: character {} is not a hex digit",
                position.saturating_add(1)
            ),
        ));
    }
    let expected = N.saturating_mul(2);
    if text.len() != expected {
        return Err(corrupt(
            field,
            format!(
                "expected {N} bytes ({expected} hex digits), found {} hex digits",
                text.len()
            ),
        ));
    }
    let mut bytes = [0u8; N];
    hex::decode_to_slice(text, &mut bytes)
        .map_err(|error| corrupt(field, format!("not hex: {error}")))?;
    Ok(bytes)
}

/// The key store's file: the edge where the store is read and written.
#[derive(Debug, Clone)]
pub struct KeyStoreFile {
    path: PathBuf,
}

impl KeyStoreFile {
    /// The store at `path` (conventionally `keystore.json` in the data directory).
    pub fn new(path: impl Into<PathBuf>) -> KeyStoreFile {
        KeyStoreFile { path: path.into() }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the store; a file that does not exist is an empty store. At most
    /// [`MAX_FILE_BYTES`] are read.
    pub fn load(&self, policy: CostPolicy) -> Result<KeyStore, KeyStoreError> {
        let io_error = |source| KeyStoreError::Io {
            path: self.path.clone(),
            source,
        };
        let file = match std::fs::File::open(&self.path) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(KeyStore::new(policy));
            }
            Err(error) => return Err(io_error(error)),
        };
        let mut bytes = Vec::new();
        file.take(MAX_FILE_BYTES.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(io_error)?;
        if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > MAX_FILE_BYTES {
            return Err(KeyStoreError::TooLarge {
                path: self.path.clone(),
                max: MAX_FILE_BYTES,
            });
        }
        KeyStore::parse_with_policy(&bytes, policy)
    }

    /// Writes the store atomically: a new temporary file in the same directory, mode
    /// 0600 from its creation, written and fsynced, renamed over the old file, then the
    /// directory fsynced so the rename itself survives a crash. A failure at any step
    /// leaves the old file as it was (and removes the temporary file).
    pub fn save(&self, store: &KeyStore) -> Result<(), KeyStoreError> {
        let bytes = store.to_bytes();
        let directory = match self.path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
            _ => PathBuf::from("."),
        };
        let name = self
            .path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_else(|| "keystore".to_owned());
        let mut suffix = [0u8; 6];
        getrandom::fill(&mut suffix).map_err(|error| KeyStoreError::Random {
            reason: error.to_string(),
        })?;
        let temporary = directory.join(format!(".{name}.{}.tmp", hex::encode(suffix)));
        let result = write_new_file(&temporary, &bytes).and_then(|()| {
            std::fs::rename(&temporary, &self.path).map_err(|source| KeyStoreError::Io {
                path: self.path.clone(),
                source,
            })
        });
        if result.is_err() {
            let _ = std::fs::remove_file(&temporary);
        }
        result?;
        sync_directory(&directory)
    }
}

fn write_new_file(path: &Path, bytes: &[u8]) -> Result<(), KeyStoreError> {
    let io_error = |source| KeyStoreError::Io {
        path: path.to_owned(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io_error)?;
    file.write_all(bytes).map_err(io_error)?;
    file.sync_all().map_err(io_error)
}

#[cfg(unix)]
fn sync_directory(directory: &Path) -> Result<(), KeyStoreError> {
    std::fs::File::open(directory)
        .and_then(|handle| handle.sync_all())
        .map_err(|source| KeyStoreError::Io {
            path: directory.to_owned(),
            source,
        })
}

#[cfg(not(unix))]
fn sync_directory(_directory: &Path) -> Result<(), KeyStoreError> {
    Ok(())
}

/// The operating system's random source (`getrandom`), as a [`TryCryptoRng`] for
/// [`KeyStore::add`] and [`KeyStore::change_pin`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemRandom;

/// The system random source failed.
#[derive(Debug, thiserror::Error)]
#[error("the system random source failed: {0}")]
pub struct SystemRandomError(String);

impl p256::elliptic_curve::rand_core::TryRng for SystemRandom {
    type Error = SystemRandomError;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut bytes = [0u8; 4];
        self.try_fill_bytes(&mut bytes)?;
        Ok(u32::from_le_bytes(bytes))
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut bytes = [0u8; 8];
        self.try_fill_bytes(&mut bytes)?;
        Ok(u64::from_le_bytes(bytes))
    }

    fn try_fill_bytes(&mut self, destination: &mut [u8]) -> Result<(), Self::Error> {
        getrandom::fill(destination).map_err(|error| SystemRandomError(error.to_string()))
    }
}

impl TryCryptoRng for SystemRandom {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_are_checked() {
        let table: [(&str, Option<KeyStoreError>); 5] = [
            (
                "1234567",
                Some(KeyStoreError::PinTooShort { min: 8, got: 7 }),
            ),
            ("12345678", None),
            ("correct horse", None),
            (
                "pin\u{e9}12345",
                Some(KeyStoreError::PinCharacter { position: 3 }),
            ),
            (
                "12345678\t",
                Some(KeyStoreError::PinCharacter { position: 8 }),
            ),
        ];
        for (pin, expected) in table {
            match (Pin::new(pin), expected) {
                (Ok(_), None) => {}
                (Err(got), Some(expected)) => {
                    assert_eq!(got.to_string(), expected.to_string(), "{pin:?}")
                }
                (got, expected) => panic!("{pin:?}: {got:?} vs {expected:?}"),
            }
        }
        let long = "a".repeat(MAX_PIN_BYTES + 1);
        assert!(matches!(
            Pin::new(&long),
            Err(KeyStoreError::PinTooLong { max: 128, got: 129 })
        ));
        assert_eq!(
            format!("{:?}", Pin::new("12345678").unwrap()),
            "Pin(<hidden>)"
        );
    }

    #[test]
    fn identifiers_are_checked() {
        for good in ["alice", "a", "bob.smith@example", "U_2-x"] {
            assert!(check_user(good).is_ok(), "{good}");
        }
        for (bad, why) in [
            ("", "empty"),
            ("al ice", "a character not allowed"),
            ("é", "a character not allowed"),
            (&"x".repeat(65), "too long"),
        ] {
            match check_user(bad) {
                Err(KeyStoreError::BadUser { expected, .. }) => assert_eq!(expected, why),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }
}
