//! The payer device's key store (claim 12, Fig. 9), as documentation of its behaviour:
//! two users with their PINs, a wrong PIN, a short PIN, a PIN change, a deletion, every
//! kind of damage to the file (each reported with the entry and the member at fault),
//! the file's permissions and atomic replacement, properties of the format, and a
//! cross-check of the whole construction against Python's `hashlib` and `cryptography`.
//!
//! Tests use `KdfCost::for_tests()` (1,000 iterations) so that debug builds run fast;
//! one test seals and opens at the production cost.

mod common;
use common::TempDir;

use std::convert::Infallible;

use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::elliptic_curve::rand_core::{TryCryptoRng, TryRng};
use serde_json::Value;
use sha2::{Digest, Sha256};
use telepay::terminal::keystore::{
    CostPolicy, KdfCost, KeyStore, KeyStoreError, KeyStoreFile, MIN_PRODUCTION_ITERATIONS, Pin,
    Timestamp, fingerprint,
};

/// A deterministic generator for tests: SHA-256 of a seed and a counter.
struct TestRng {
    seed: u64,
    counter: u64,
}

impl TestRng {
    fn new(seed: u64) -> TestRng {
        TestRng { seed, counter: 0 }
    }
}

impl TryRng for TestRng {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut bytes = [0u8; 4];
        self.try_fill_bytes(&mut bytes)?;
        Ok(u32::from_le_bytes(bytes))
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut bytes = [0u8; 8];
        self.try_fill_bytes(&mut bytes)?;
        Ok(u64::from_le_bytes(bytes))
    }

    fn try_fill_bytes(&mut self, destination: &mut [u8]) -> Result<(), Infallible> {
        for chunk in destination.chunks_mut(32) {
            let block = Sha256::new()
                .chain_update(self.seed.to_be_bytes())
                .chain_update(self.counter.to_be_bytes())
                .finalize();
            self.counter += 1;
            chunk.copy_from_slice(&block[..chunk.len()]);
        }
        Ok(())
    }
}

impl TryCryptoRng for TestRng {}

const ALICE_PIN: &str = "correct horse";
const BOB_PIN: &str = "battery staple";
const CREATED: Timestamp = Timestamp(1_795_651_200); // 2026-11-26T00:00:00Z

fn pin(text: &str) -> Pin {
    Pin::new(text).unwrap()
}

/// A test-cost store with alice and bob.
fn two_users() -> KeyStore {
    let mut store = KeyStore::new(CostPolicy::AllowTestCost);
    let mut rng = TestRng::new(1);
    store
        .add(
            "alice",
            &pin(ALICE_PIN),
            KdfCost::for_tests(),
            CREATED,
            &mut rng,
        )
        .unwrap();
    store
        .add(
            "bob",
            &pin(BOB_PIN),
            KdfCost::for_tests(),
            CREATED,
            &mut rng,
        )
        .unwrap();
    store
}

fn verifies(key: &VerifyingKey, message: &[u8], signature: &Signature) -> bool {
    key.verify(message, signature).is_ok()
}

#[test]
fn two_users_each_open_their_own_key_with_their_own_pin() {
    let store = two_users();
    assert_eq!(store.users().collect::<Vec<_>>(), ["alice", "bob"]);
    let alice = store.unlock("alice", &pin(ALICE_PIN)).unwrap();
    let bob = store.unlock("bob", &pin(BOB_PIN)).unwrap();
    assert_eq!(alice.user(), "alice");
    assert_ne!(alice.verifying_key(), bob.verifying_key());
    // The key opened is the one listed.
    assert_eq!(
        Some(alice.verifying_key()),
        store
            .entry("alice")
            .map(|entry| *entry.public_key())
            .as_ref()
    );
    let message = b"payment request 12.50 EUR";
    let signature = alice.sign(message);
    assert!(verifies(alice.verifying_key(), message, &signature));
    assert!(!verifies(bob.verifying_key(), message, &signature));
    // Each PIN opens only its own user's key.
    match store.unlock("alice", &pin(BOB_PIN)) {
        Err(KeyStoreError::WrongPin { user }) => assert_eq!(user, "alice"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_wrong_pin_is_reported_as_wrong_and_never_yields_a_key() {
    let store = two_users();
    for wrong in ["correct horsE", "correct horse ", "12345678"] {
        let error = store.unlock("alice", &pin(wrong)).unwrap_err();
        assert_eq!(
            error.to_string(),
            "wrong PIN for user \"alice\"",
            "{wrong:?}"
        );
    }
}

#[test]
fn pins_shorter_than_eight_characters_or_outside_printable_ascii_are_refused() {
    // (PIN, the error's message exactly; None: accepted)
    let table: &[(&str, Option<&str>)] = &[
        (
            "",
            Some("the PIN is too short: 0 characters, at least 8 needed"),
        ),
        (
            "1234",
            Some("the PIN is too short: 4 characters, at least 8 needed"),
        ),
        (
            "1234567",
            Some("the PIN is too short: 7 characters, at least 8 needed"),
        ),
        ("12345678", None),
        ("a b c d ", None),
        (
            "1234567\n",
            Some("the PIN has a character other than printable ASCII (space to ~) at position 7"),
        ),
        (
            "pässwört",
            Some("the PIN has a character other than printable ASCII (space to ~) at position 1"),
        ),
    ];
    for (text, expected) in table {
        assert_eq!(
            Pin::new(text)
                .err()
                .map(|error| error.to_string())
                .as_deref(),
            *expected,
            "{text:?}"
        );
    }
    let long = "x".repeat(129);
    assert_eq!(
        Pin::new(&long).unwrap_err().to_string(),
        "the PIN is too long: 129 bytes, at most 128"
    );
}

#[test]
fn unknown_bad_and_duplicate_users() {
    let mut store = two_users();
    let mut rng = TestRng::new(2);
    match store.unlock("carol", &pin(ALICE_PIN)) {
        Err(KeyStoreError::UnknownUser { user }) => assert_eq!(user, "carol"),
        other => panic!("{other:?}"),
    }
    match store.add(
        "alice",
        &pin("another pin"),
        KdfCost::for_tests(),
        CREATED,
        &mut rng,
    ) {
        Err(KeyStoreError::DuplicateUser { user }) => assert_eq!(user, "alice"),
        other => panic!("{other:?}"),
    }
    // (identifier, what is wrong)
    for (user, expected) in [
        ("", "empty"),
        ("bob smith", "a character not allowed"),
        ("bob/..", "a character not allowed"),
        ("ünal", "a character not allowed"),
    ] {
        match store.add(
            user,
            &pin(ALICE_PIN),
            KdfCost::for_tests(),
            CREATED,
            &mut rng,
        ) {
            Err(KeyStoreError::BadUser {
                user: got,
                expected: why,
            }) => assert_eq!((got.as_str(), why), (user, expected)),
            other => panic!("{user:?}: {other:?}"),
        }
    }
    // Nothing was added by the refusals.
    assert_eq!(store.len(), 2);
}

#[test]
fn a_test_cost_is_refused_by_a_production_store_and_by_the_caller_below_the_floor() {
    let mut store = KeyStore::new(CostPolicy::Production);
    let error = store
        .add(
            "alice",
            &pin(ALICE_PIN),
            KdfCost::for_tests(),
            CREATED,
            &mut TestRng::new(3),
        )
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "KDF cost of 1000 iterations refused: the policy accepts 100000 to 50000000"
    );
    assert!(matches!(
        KdfCost::from_iterations(1, CostPolicy::AllowTestCost),
        Err(KeyStoreError::CostOutOfRange {
            iterations: 1,
            floor: 1000,
            ..
        })
    ));
    assert_eq!(
        KdfCost::from_iterations(MIN_PRODUCTION_ITERATIONS, CostPolicy::Production)
            .unwrap()
            .iterations(),
        100_000
    );
}

#[test]
fn changing_the_pin_keeps_the_key_and_retires_the_old_pin() {
    let mut store = two_users();
    let before = store.to_bytes();
    let public_key = *store.entry("alice").unwrap().public_key();
    let old_signature = store
        .unlock("alice", &pin(ALICE_PIN))
        .unwrap()
        .sign(b"before");

    // A wrong current PIN changes nothing.
    let error = store
        .change_pin(
            "alice",
            &pin("not the pin"),
            &pin("new secret 42"),
            KdfCost::for_tests(),
            &mut TestRng::new(4),
        )
        .unwrap_err();
    assert!(matches!(error, KeyStoreError::WrongPin { .. }), "{error:?}");
    assert_eq!(store.to_bytes(), before);

    store
        .change_pin(
            "alice",
            &pin(ALICE_PIN),
            &pin("new secret 42"),
            KdfCost::for_tests(),
            &mut TestRng::new(4),
        )
        .unwrap();
    assert!(matches!(
        store.unlock("alice", &pin(ALICE_PIN)),
        Err(KeyStoreError::WrongPin { .. })
    ));
    let unlocked = store.unlock("alice", &pin("new secret 42")).unwrap();
    // Same key: same public key, old signatures still verify, new ones too.
    assert_eq!(*unlocked.verifying_key(), public_key);
    assert!(verifies(&public_key, b"before", &old_signature));
    assert!(verifies(&public_key, b"after", &unlocked.sign(b"after")));
    assert_eq!(store.entry("alice").unwrap().created(), CREATED);
    // Bob is untouched; the file changed only in alice's entry.
    assert!(store.unlock("bob", &pin(BOB_PIN)).is_ok());
    let reread = KeyStore::parse_with_policy(&store.to_bytes(), CostPolicy::AllowTestCost).unwrap();
    assert_eq!(reread, store);
}

#[test]
fn deleting_a_user_removes_only_their_key() {
    let mut store = two_users();
    let alice_key = *store.entry("alice").unwrap().public_key();
    assert_eq!(store.remove("alice").unwrap(), alice_key);
    assert!(matches!(
        store.unlock("alice", &pin(ALICE_PIN)),
        Err(KeyStoreError::UnknownUser { .. })
    ));
    assert!(matches!(
        store.remove("alice"),
        Err(KeyStoreError::UnknownUser { .. })
    ));
    assert!(store.unlock("bob", &pin(BOB_PIN)).is_ok());
    assert_eq!(store.users().collect::<Vec<_>>(), ["bob"]);
}

#[test]
fn debug_output_shows_no_secret() {
    let store = two_users();
    let unlocked = store.unlock("alice", &pin(ALICE_PIN)).unwrap();
    let shown = format!("{unlocked:?} {:?} {store:?}", pin(ALICE_PIN));
    assert!(!shown.contains(ALICE_PIN), "{shown}");
    // The unlocked key shows its user and the fingerprint of its public key, nothing else
    // (it has no accessor for the private scalar at all).
    assert!(shown.contains("UnlockedKey"), "{shown}");
    assert!(
        shown.contains(&fingerprint(unlocked.verifying_key())),
        "{shown}"
    );
    assert!(shown.contains("Pin(<hidden>)"), "{shown}");
}

// ---------------------------------------------------------------------------------------
// A damaged file

/// The test store's bytes as a JSON tree, to damage one member.
fn document() -> Value {
    serde_json::from_slice(&two_users().to_bytes()).unwrap()
}

fn parse_value(document: &Value) -> Result<KeyStore, KeyStoreError> {
    KeyStore::parse_with_policy(
        &serde_json::to_vec(document).unwrap(),
        CostPolicy::AllowTestCost,
    )
}

/// Replaces the member at `pointer` (RFC 6901) with `value`.
fn with(pointer: &str, value: Value) -> Value {
    let mut document = document();
    *document.pointer_mut(pointer).unwrap() = value;
    document
}

/// The hex string at `pointer` with the byte at `index` XORed with 01.
fn flipped(pointer: &str, index: usize) -> Value {
    let document = document();
    let mut bytes = hex::decode(document.pointer(pointer).unwrap().as_str().unwrap()).unwrap();
    bytes[index] ^= 1;
    with(pointer, Value::from(hex::encode(bytes)))
}

#[test]
fn a_damaged_file_is_refused_naming_the_entry_and_the_member() {
    let sealed = document()["entries"][0]["sealed_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut without_salt = document();
    without_salt["entries"][0]["kdf"]
        .as_object_mut()
        .unwrap()
        .remove("salt");
    let mut extra_member = document();
    extra_member["entries"][1]["comment"] = Value::from("hi");
    let mut duplicate = document();
    duplicate["entries"][1]["user"] = Value::from("alice");

    // (what is damaged, the document, the error's message exactly)
    let table: Vec<(&str, Value, &str)> = vec![
        (
            "version 2",
            with("/version", Value::from(2)),
            "unsupported key store: format \"telepay-keystore\" version 2, this version reads telepay-keystore version 1",
        ),
        (
            "another format",
            with("/format", Value::from("pkcs12")),
            "unsupported key store: format \"pkcs12\" version 1, this version reads telepay-keystore version 1",
        ),
        (
            "entries not an array",
            with("/entries", Value::from("none")),
            "key store header: entries: expected an array, found a string",
        ),
        (
            "salt not hex",
            with(
                "/entries/0/kdf/salt",
                Value::from("zz6add0779e09dd483c4446391b6ad29"),
            ),
            "key store entry 1 (\"alice\"): kdf.salt: not hex: character 1 is not a hex digit",
        ),
        (
            "salt too short",
            with("/entries/0/kdf/salt", Value::from("076add07")),
            "key store entry 1 (\"alice\"): kdf.salt: expected 16 bytes (32 hex digits), found 8 hex digits",
        ),
        (
            "salt missing",
            without_salt,
            "key store entry 1 (\"alice\"): kdf.salt: missing",
        ),
        (
            "sealed key truncated",
            with("/entries/0/sealed_key", Value::from(&sealed[..94])),
            "key store entry 1 (\"alice\"): sealed_key: expected 48 bytes (96 hex digits), found 94 hex digits",
        ),
        (
            "nonce base64",
            with("/entries/1/cipher/nonce", Value::from("TcEsfn1SK3qtIw4E")),
            "key store entry 2 (\"bob\"): cipher.nonce: not hex: character 1 is not a hex digit",
        ),
        (
            "public key off the curve",
            with(
                "/entries/1/public_key",
                Value::from(format!("04{}", "11".repeat(64))),
            ),
            "key store entry 2 (\"bob\"): public_key: not an uncompressed SEC1 point on P-256 (04 ‖ X ‖ Y)",
        ),
        (
            "iteration count 1",
            with("/entries/0/kdf/iterations", Value::from(1)),
            "key store entry 1 (\"alice\"): kdf.iterations: 1 is below the floor of 1000",
        ),
        (
            "iteration count above the ceiling",
            with("/entries/0/kdf/iterations", Value::from(4_000_000_000u64)),
            "key store entry 1 (\"alice\"): kdf.iterations: 4000000000 is above the ceiling of 50000000",
        ),
        (
            "iteration count as text",
            with("/entries/0/kdf/iterations", Value::from("1000")),
            "key store entry 1 (\"alice\"): kdf.iterations: expected a whole number up to 50000000, found \"1000\"",
        ),
        (
            "another KDF",
            with("/entries/0/kdf/algorithm", Value::from("md5")),
            "key store entry 1 (\"alice\"): kdf.algorithm: expected \"pbkdf2-hmac-sha256\", found \"md5\"",
        ),
        (
            "another cipher",
            with("/entries/1/cipher/algorithm", Value::from("aes-128-cbc")),
            "key store entry 2 (\"bob\"): cipher.algorithm: expected \"aes-256-gcm\", found \"aes-128-cbc\"",
        ),
        (
            "creation time negative",
            with("/entries/0/created", Value::from(-5)),
            "key store entry 1 (\"alice\"): created: expected Unix seconds (a whole number ≥ 0), found -5",
        ),
        (
            "identifier with a space",
            with("/entries/1/user", Value::from("bob smith")),
            "key store entry 2 (\"bob smith\"): user: user identifier \"bob smith\": a character not allowed (1 to 64 of A-Z a-z 0-9 - _ . @)",
        ),
        (
            "unknown member",
            extra_member,
            "key store entry 2 (\"bob\"): (member): unknown member \"comment\"; expected only [\"user\", \"created\", \"public_key\", \"kdf\", \"cipher\", \"pin_check\", \"sealed_key\"]",
        ),
        (
            "two entries for one user",
            duplicate,
            "key store entry 2 (\"alice\"): user: the same identifier as entry 1",
        ),
        (
            "an entry that is not an object",
            with("/entries/0", Value::from(7)),
            "key store entry 1: (entry): expected an object, found a number",
        ),
        (
            "PIN check not a string",
            with("/entries/0/pin_check", Value::from(7)),
            "key store entry 1 (\"alice\"): pin_check: expected a string, found a number",
        ),
    ];
    for (what, damaged, expected) in &table {
        match parse_value(damaged) {
            Err(error) => assert_eq!(error.to_string(), *expected, "{what}"),
            Ok(_) => panic!("{what}: accepted"),
        }
    }

    // Not JSON at all: the line and column.
    match KeyStore::parse(b"{\n  \"format\": \"telepay-keystore\",\n  oops\n}") {
        Err(KeyStoreError::Syntax { line, column, .. }) => assert_eq!((line, column), (3, 3)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_test_cost_entry_is_refused_by_a_production_reader() {
    match KeyStore::parse(&two_users().to_bytes()) {
        Err(error @ KeyStoreError::CostBelowFloor { .. }) => assert_eq!(
            error.to_string(),
            "key store entry 1 (\"alice\"): kdf.iterations: 1000 is below the floor of 100000 (a test-cost entry: not for real keys)"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_altered_entry_is_detected_at_unlock() {
    let bob_key = document()["entries"][1]["public_key"].clone();
    let altered = "key store entry 1 (\"alice\"): sealed_key: the PIN is right but the AES-GCM tag does not match: the sealed key, the nonce, or a bound member (user, created, public_key) was altered";
    // (what is altered, the document, the user to unlock with alice's PIN, the error)
    let table: Vec<(&str, Value, &str, String)> = vec![
        (
            "tag's last byte",
            flipped("/entries/0/sealed_key", 47),
            "alice",
            altered.to_owned(),
        ),
        (
            "ciphertext's first byte",
            flipped("/entries/0/sealed_key", 0),
            "alice",
            altered.to_owned(),
        ),
        (
            "nonce",
            flipped("/entries/0/cipher/nonce", 11),
            "alice",
            altered.to_owned(),
        ),
        (
            "identifier (AAD)",
            with("/entries/0/user", Value::from("alicf")),
            "alicf",
            altered.replace("alice", "alicf"),
        ),
        (
            "creation time (AAD)",
            with("/entries/0/created", Value::from(0)),
            "alice",
            altered.to_owned(),
        ),
        (
            "public key swapped for bob's (AAD)",
            with("/entries/0/public_key", bob_key),
            "alice",
            altered.to_owned(),
        ),
        // The KDF's own inputs change the derived key: the PIN no longer matches.
        (
            "salt",
            flipped("/entries/0/kdf/salt", 0),
            "alice",
            "wrong PIN for user \"alice\"".to_owned(),
        ),
        (
            "iterations",
            with("/entries/0/kdf/iterations", Value::from(1001)),
            "alice",
            "wrong PIN for user \"alice\"".to_owned(),
        ),
        (
            "PIN check",
            flipped("/entries/0/pin_check", 3),
            "alice",
            "wrong PIN for user \"alice\"".to_owned(),
        ),
    ];
    for (what, damaged, user, expected) in &table {
        let store = parse_value(damaged).unwrap_or_else(|error| panic!("{what}: {error}"));
        match store.unlock(user, &pin(ALICE_PIN)) {
            Err(error) => assert_eq!(error.to_string(), *expected, "{what}"),
            Ok(_) => panic!("{what}: unlocked"),
        }
        // Bob's entry, untouched, still opens.
        assert!(store.unlock("bob", &pin(BOB_PIN)).is_ok(), "{what}");
    }
}

// ---------------------------------------------------------------------------------------
// The file

#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[cfg(unix)]
#[test]
fn the_file_is_written_with_mode_0600_even_over_a_readable_one() {
    let dir = TempDir::new("keystore-mode");
    let file = KeyStoreFile::new(dir.file("keystore.json"));
    std::fs::write(file.path(), b"old").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(file.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
    file.save(&two_users()).unwrap();
    assert_eq!(mode(file.path()), 0o600);
    assert_eq!(file.load(CostPolicy::AllowTestCost).unwrap(), two_users());
    // Only the store is left in the directory: no temporary file.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(names, ["keystore.json"]);
}

#[test]
fn a_missing_file_is_an_empty_store_and_a_failed_save_changes_nothing() {
    let dir = TempDir::new("keystore-save");
    let file = KeyStoreFile::new(dir.file("keystore.json"));
    assert!(file.load(CostPolicy::Production).unwrap().is_empty());

    // The rename cannot replace a directory: the save fails after the temporary file
    // was written, and that file is removed.
    std::fs::create_dir(file.path()).unwrap();
    std::fs::write(file.path().join("inside"), b"kept").unwrap();
    match file.save(&two_users()) {
        Err(KeyStoreError::Io { path, .. }) => assert_eq!(path, file.path()),
        other => panic!("{other:?}"),
    }
    assert_eq!(std::fs::read(file.path().join("inside")).unwrap(), b"kept");
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(names, ["keystore.json"]);

    // A directory that does not exist: nothing is created.
    let nowhere = KeyStoreFile::new(dir.file("missing/keystore.json"));
    assert!(matches!(
        nowhere.save(&two_users()),
        Err(KeyStoreError::Io { .. })
    ));
    assert!(!dir.file("missing").exists());
}

#[test]
fn a_file_larger_than_the_limit_is_refused_before_parsing() {
    let dir = TempDir::new("keystore-large");
    let path = dir.file("keystore.json");
    std::fs::write(&path, vec![b' '; (1 << 20) + 1]).unwrap();
    match KeyStoreFile::new(&path).load(CostPolicy::Production) {
        Err(error @ KeyStoreError::TooLarge { .. }) => assert_eq!(
            error.to_string(),
            format!("key store {} is larger than 1048576 bytes", path.display())
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_production_cost_seals_and_opens() {
    let mut store = KeyStore::new(CostPolicy::Production);
    let public_key = store
        .add(
            "alice",
            &pin(ALICE_PIN),
            KdfCost::production(),
            CREATED,
            &mut TestRng::new(9),
        )
        .unwrap();
    let reread = KeyStore::parse(&store.to_bytes()).unwrap();
    assert_eq!(reread.entry("alice").unwrap().iterations(), 600_000);
    let unlocked = reread.unlock("alice", &pin(ALICE_PIN)).unwrap();
    assert_eq!(*unlocked.verifying_key(), public_key);
}

// ---------------------------------------------------------------------------------------
// Cross-check against an independent implementation

/// The Python side: derives the key with `hashlib.pbkdf2_hmac`, checks the PIN check,
/// rebuilds the associated data from the format's description, decrypts with
/// `cryptography`'s AESGCM, checks the public key against the private scalar, verifies
/// our signature with `cryptography`'s ECDSA P-256, and signs a message of its own.
const PYTHON_CHECK: &str = r#"
import hashlib, hmac, json, struct, sys
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature, decode_dss_signature

path, user, pin, message, signature = sys.argv[1:6]
store = json.load(open(path))
assert store["format"] == "telepay-keystore" and store["version"] == 1
entry = next(e for e in store["entries"] if e["user"] == user)
assert entry["kdf"]["algorithm"] == "pbkdf2-hmac-sha256"
assert entry["cipher"]["algorithm"] == "aes-256-gcm"
salt = bytes.fromhex(entry["kdf"]["salt"])
iterations = entry["kdf"]["iterations"]
master = hashlib.pbkdf2_hmac("sha256", pin.encode("ascii"), salt, iterations, 32)
encryption = hmac.new(master, b"telepay-keystore/1 encryption key", hashlib.sha256).digest()
check = hmac.new(master, b"telepay-keystore/1 PIN check", hashlib.sha256).digest()[:16]
assert check == bytes.fromhex(entry["pin_check"]), "PIN check differs"
public = bytes.fromhex(entry["public_key"])
aad = (b"telepay-keystore\x00" + struct.pack(">I", 1) + bytes([len(user)]) + user.encode()
       + b"\x01" + struct.pack(">I", iterations) + salt + b"\x01"
       + struct.pack(">Q", entry["created"]) + public)
scalar = AESGCM(encryption).decrypt(bytes.fromhex(entry["cipher"]["nonce"]),
                                    bytes.fromhex(entry["sealed_key"]), aad)
assert len(scalar) == 32
private = ec.derive_private_key(int.from_bytes(scalar, "big"), ec.SECP256R1())
derived = private.public_key().public_bytes(serialization.Encoding.X962,
                                            serialization.PublicFormat.UncompressedPoint)
assert derived == public, "public key differs"
raw = bytes.fromhex(signature)
der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
private.public_key().verify(der, bytes.fromhex(message), ec.ECDSA(hashes.SHA256()))
r, s = decode_dss_signature(private.sign(b"signed by python", ec.ECDSA(hashes.SHA256())))
print(r.to_bytes(32, "big").hex() + s.to_bytes(32, "big").hex())
"#;

#[test]
fn python_hashlib_and_cryptography_open_our_entry_and_verify_our_signature() {
    let dir = TempDir::new("keystore-python");
    let file = KeyStoreFile::new(dir.file("keystore.json"));
    let store = two_users();
    file.save(&store).unwrap();
    let unlocked = store.unlock("bob", &pin(BOB_PIN)).unwrap();
    let message = b"E: 12.50 EUR to provider demo, sequence 1";
    let signature = unlocked.sign(message);

    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let output = std::process::Command::new(&python)
        .arg("-c")
        .arg(PYTHON_CHECK)
        .arg(file.path())
        .arg("bob")
        .arg(BOB_PIN)
        .arg(hex::encode(message))
        .arg(hex::encode(signature.to_bytes()))
        .output()
        .unwrap_or_else(|error| {
            panic!("{python} must run (CI installs it with `cryptography`): {error}")
        });
    assert!(
        output.status.success(),
        "python: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    // And the other way: Python's signature with the key it decrypted verifies with ours.
    let python_signature = hex::decode(String::from_utf8_lossy(&output.stdout).trim()).unwrap();
    let python_signature = Signature::from_slice(&python_signature).unwrap();
    assert!(verifies(
        unlocked.verifying_key(),
        b"signed by python",
        &python_signature
    ));

    // A wrong PIN fails on the Python side too, at the PIN check.
    let wrong = std::process::Command::new(&python)
        .arg("-c")
        .arg(PYTHON_CHECK)
        .arg(file.path())
        .arg("bob")
        .arg(ALICE_PIN)
        .arg(hex::encode(message))
        .arg(hex::encode(signature.to_bytes()))
        .output()
        .unwrap();
    assert!(!wrong.status.success());
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("PIN check differs"),
        "{}",
        String::from_utf8_lossy(&wrong.stderr)
    );
}

// ---------------------------------------------------------------------------------------
// Properties

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

    /// Any store reads back equal from its bytes, and writes the same bytes again.
    #[test]
    fn the_format_round_trips(
        users in proptest::collection::btree_set("[A-Za-z0-9._@-]{1,64}", 0..4),
        created in proptest::prelude::any::<u64>(),
        seed in proptest::prelude::any::<u64>(),
        extra in 0u32..50,
    ) {
        let mut store = KeyStore::new(CostPolicy::AllowTestCost);
        let mut rng = TestRng::new(seed);
        let cost = KdfCost::from_iterations(1_000 + extra, CostPolicy::AllowTestCost).unwrap();
        for user in &users {
            store.add(user, &pin("12345678"), cost, Timestamp(created), &mut rng).unwrap();
        }
        let bytes = store.to_bytes();
        let reread = KeyStore::parse_with_policy(&bytes, CostPolicy::AllowTestCost).unwrap();
        proptest::prop_assert_eq!(&reread, &store);
        proptest::prop_assert_eq!(reread.to_bytes(), bytes);
    }

    /// Arbitrary bytes never panic the parser.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
        let _ = KeyStore::parse(&bytes);
        let _ = KeyStore::parse_with_policy(&bytes, CostPolicy::AllowTestCost);
    }

    /// A valid file with one byte changed never panics the parser, nor the unlock of
    /// what it reads; whatever it accepts writes back to bytes it accepts again.
    #[test]
    fn a_file_with_one_byte_changed_never_panics(position in 0usize..4096, byte in proptest::prelude::any::<u8>()) {
        let mut bytes = two_users().to_bytes();
        let index = position % bytes.len();
        bytes[index] = byte;
        if let Ok(store) = KeyStore::parse_with_policy(&bytes, CostPolicy::AllowTestCost) {
            for user in store.users() {
                let _ = store.unlock(user, &pin(ALICE_PIN));
            }
            let again =
                KeyStore::parse_with_policy(&store.to_bytes(), CostPolicy::AllowTestCost).ok();
            proptest::prop_assert_eq!(again, Some(store));
        }
    }
}
