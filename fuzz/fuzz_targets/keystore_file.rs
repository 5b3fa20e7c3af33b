//! Fuzz target `keystore_file`: the payer device's key store file
//! (`telepay::terminal::keystore::KeyStore::parse_with_policy`, format in
//! `docs/keystore.md`).
//!
//! Checked on every input:
//!
//! - neither policy's parser panics; an error's `Display`, `Debug` and `source()` chain
//!   format, and a `Corrupt` error names a non-empty member;
//! - what the production policy accepts the test policy accepts too, with the same
//!   entries (the production floor is the higher one);
//! - a store read writes back to bytes that read back equal and write the same bytes
//!   (serialisation is canonical);
//! - identifiers are unique, and every entry's cost is within the policy's bounds;
//! - every entry of at most 2,000 iterations (the seeds' test cost, kept cheap) is
//!   unlocked with the seeds' PIN `12345678`: a wrong PIN or an altered entry is an
//!   error naming that entry, never a panic; a success gives the entry's own public key
//!   (the unlock itself checks the scalar against it).
#![no_main]

use libfuzzer_sys::fuzz_target;
use telepay::terminal::keystore::{
    CostPolicy, KeyStore, KeyStoreError, MAX_ITERATIONS, MIN_PRODUCTION_ITERATIONS,
    MIN_TEST_ITERATIONS, Pin,
};

fuzz_target!(|input: &[u8]| check(input));

fn check(input: &[u8]) {
    let production = KeyStore::parse_with_policy(input, CostPolicy::Production);
    let test = KeyStore::parse_with_policy(input, CostPolicy::AllowTestCost);
    for result in [&production, &test] {
        if let Err(error) = result {
            check_error(error);
        }
    }
    if let Ok(store) = &production {
        let Ok(test_store) = &test else {
            panic!("accepted under the production policy only: {test:?}");
        };
        assert_eq!(store.to_bytes(), test_store.to_bytes());
        check_store(store, MIN_PRODUCTION_ITERATIONS);
    }
    if let Ok(store) = &test {
        check_store(store, MIN_TEST_ITERATIONS);
        check_unlock(store);
    }
}

fn check_error(error: &KeyStoreError) {
    let _ = error.to_string();
    let _ = format!("{error:?}");
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let _ = cause.to_string();
        source = cause.source();
    }
    if let KeyStoreError::Corrupt { field, reason, .. } = error {
        assert!(!field.is_empty(), "a Corrupt error without its member");
        assert!(!reason.is_empty(), "a Corrupt error without its reason");
    }
}

fn check_store(store: &KeyStore, floor: u32) {
    let bytes = store.to_bytes();
    let again = KeyStore::parse_with_policy(&bytes, store.policy())
        .unwrap_or_else(|error| panic!("our own output refused: {error}"));
    assert_eq!(&again, store, "read back differs");
    assert_eq!(again.to_bytes(), bytes, "written twice differs");
    let users: Vec<&str> = store.users().collect();
    for (index, user) in users.iter().enumerate() {
        assert!(!users[..index].contains(user), "duplicate {user:?}");
    }
    for entry in store.entries() {
        assert!(
            (floor..=MAX_ITERATIONS).contains(&entry.iterations()),
            "{} iterations accepted",
            entry.iterations()
        );
        assert_eq!(entry.public_key_sec1().len(), 65);
        assert_eq!(entry.fingerprint().len(), 19);
    }
}

fn check_unlock(store: &KeyStore) {
    let Ok(pin) = Pin::new("12345678") else {
        panic!("the seeds' PIN is refused");
    };
    for entry in store.entries() {
        if entry.iterations() > 2_000 {
            continue;
        }
        match store.unlock(entry.user(), &pin) {
            Ok(key) => {
                assert_eq!(key.verifying_key(), entry.public_key(), "another key");
                assert_eq!(key.user(), entry.user());
            }
            Err(KeyStoreError::WrongPin { user }) => assert_eq!(user, entry.user()),
            Err(KeyStoreError::Corrupt { user, .. }) => {
                assert_eq!(user.as_deref(), Some(entry.user()));
            }
            Err(other) => panic!("unlock of {:?}: {other:?}", entry.user()),
        }
    }
}
