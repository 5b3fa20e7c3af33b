//! The state file: counters survive restarts, every write is atomic, and a damaged or
//! foreign file is an error naming the file, never a silent reset to a fresh card.

mod common;

use card_applet_sim::card::{CardError, SimCard, SimOptions};
use card_applet_sim::profile::Profile;
use card_applet_sim::state::{CardState, StateError};
use common::*;
use std::path::Path;

fn open(profile: &str, path: &Path) -> Result<SimCard, CardError> {
    SimCard::new(
        Profile::builtin(profile).unwrap(),
        SimOptions::seeded(1).with_state_file(path),
    )
}

/// Runs one online transaction approved by the issuer (PIN verified, ARPC good) and one
/// offline one, through the card.
fn two_transactions(card: &mut SimCard) {
    use card_applet_sim::crypto::arpc_method1;
    start_cb(card);
    expect_sw(card, &verify("1234"), "9000");
    let arqc = h(&expect_sw(
        card,
        &generate_ac("80", &cb_cdol1("000000005000", "11223344")),
        "9000",
    ));
    let arqc: [u8; 8] = arqc[14..22].try_into().unwrap();
    let profile = card.profile().clone();
    let app = &profile.applications()[0];
    let version = app.cryptogram_version().unwrap();
    let icc = version
        .derive_icc_master_key(
            app.issuer_master_key(),
            profile.pan(),
            profile.pan_sequence(),
        )
        .unwrap();
    let atc = card.atc();
    let arpc = arpc_method1(version, &icc, atc, &arqc, b"00");
    expect_sw(
        card,
        &generate_ac("40", &format!("3030{}30300000000000AABBCCDD", hx(&arpc))),
        "9000",
    );
    start_cb(card);
    expect_sw(
        card,
        &generate_ac("40", &cb_cdol1("000000001000", "01020304")),
        "9000",
    );
}

#[test]
fn counters_and_log_survive_a_restart() {
    let dir = temp_dir("state-restart");
    let path = dir.join("card.state");
    let before = {
        let mut card = card_with_state("cb", &path);
        two_transactions(&mut card);
        assert_eq!(send(&mut card, &verify("0000")), "6985", "after the AC");
        start_cb(&mut card);
        assert_eq!(send(&mut card, &verify("0000")), "63C2");
        card.state().clone()
    };
    assert_eq!(before.applications[0].atc, 2);
    assert_eq!(before.applications[0].last_online_atc, 1);
    assert_eq!(before.applications[0].log.len(), 3);
    assert_eq!(before.pin_tries_left, 2);

    let mut card = card_with_state("cb", &path);
    assert_eq!(card.state(), &before);
    start_cb(&mut card);
    assert_eq!(send(&mut card, "80CA9F3600"), "9F360200029000");
    assert_eq!(send(&mut card, "80CA9F1300"), "9F130200019000");
    assert_eq!(send(&mut card, "80CA9F1700"), "9F1701029000");
    assert!(
        send(&mut card, "00B2015C00").ends_with("0002409000"),
        "newest log entry: ATC 2, TC"
    );
    // No temporary file is left beside the state file.
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("card.state")]);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_missing_file_is_a_new_card_and_is_created() {
    let dir = temp_dir("state-new");
    let path = dir.join("new.state");
    let card = open("blocked", &path).unwrap();
    assert_eq!(card.pin_tries_left(), 0);
    let written = CardState::load(&path).unwrap();
    assert_eq!(&written, card.state());
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("pin_tries_left = 0"), "{text}");
    assert!(!text.contains("4970100000000030"), "the PAN is not stored");
    let _ = std::fs::remove_dir_all(dir);
}

/// Writes a valid state file for `cb`, lets `damage` alter its bytes, and returns the
/// error opening it gives.
fn open_damaged(
    name: &str,
    damage: impl FnOnce(Vec<u8>) -> Vec<u8>,
) -> (StateError, std::path::PathBuf) {
    let dir = temp_dir(name);
    let path = dir.join("card.state");
    {
        let mut card = card_with_state("cb", &path);
        start_cb(&mut card);
        expect_sw(
            &mut card,
            &generate_ac("00", &cb_cdol1("000000001000", "01020304")),
            "9000",
        );
    }
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, damage(bytes)).unwrap();
    let error = match open("cb", &path) {
        Err(CardError::State(e)) => e,
        other => panic!("{name}: expected a state error, got {other:?}"),
    };
    // The damaged file is left as it was, for a person to look at.
    assert!(path.exists());
    let _ = std::fs::remove_dir_all(&dir);
    (error, path)
}

fn with_checksum(body: &str) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    format!(
        "{body}# sha256:{}\n",
        hex::encode(Sha256::digest(body.as_bytes()))
    )
    .into_bytes()
}

fn body_of(bytes: &[u8]) -> String {
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let cut = text.trim_end_matches('\n').rfind('\n').unwrap() + 1;
    text[..cut].to_owned()
}

#[test]
fn truncated_files_are_errors() {
    for keep in [0usize, 1, 40, 200] {
        let (error, path) = open_damaged(&format!("state-trunc-{keep}"), |b| {
            b[..keep.min(b.len())].to_vec()
        });
        match &error {
            StateError::Truncated { path: p, len } => {
                assert_eq!(p, &path);
                assert_eq!(*len, keep);
            }
            other => panic!("cut at {keep}: {other:?}"),
        }
        assert!(
            error.to_string().contains(&path.display().to_string()),
            "{error}"
        );
    }
    // Cut inside the checksum line.
    let (error, _) = open_damaged("state-trunc-sum", |b| b[..b.len() - 10].to_vec());
    assert!(
        matches!(
            error,
            StateError::Truncated { .. } | StateError::ChecksumMismatch { .. }
        ),
        "{error:?}"
    );
}

#[test]
fn corrupt_files_are_errors() {
    // One flipped digit in the body.
    let (error, _) = open_damaged("state-flip", |mut b| {
        let at = b.iter().position(|c| *c == b'=').unwrap() + 2;
        b[at] ^= 0x01;
        b
    });
    assert!(
        matches!(error, StateError::ChecksumMismatch { .. }),
        "{error:?}"
    );

    let (error, _) = open_damaged("state-utf8", |mut b| {
        b[3] = 0xFF;
        b
    });
    assert!(
        matches!(error, StateError::NotUtf8 { offset: 3, .. }),
        "{error:?}"
    );

    // Valid checksum, but not the state's shape.
    let (error, _) = open_damaged("state-syntax", |_| {
        with_checksum("version = 1\nthis is not toml\n")
    });
    assert!(matches!(error, StateError::Syntax { .. }), "{error:?}");

    let (error, _) = open_damaged("state-version", |b| {
        with_checksum(&body_of(&b).replace("version = 1", "version = 2"))
    });
    assert!(
        matches!(
            error,
            StateError::UnsupportedVersion {
                found: 2,
                supported: 1,
                ..
            }
        ),
        "{error:?}"
    );

    let (error, _) = open_damaged("state-tries", |b| {
        with_checksum(&body_of(&b).replace("pin_tries_left = 3", "pin_tries_left = 9"))
    });
    match error {
        StateError::InvalidValue { field, .. } => assert_eq!(field, "pin_tries_left"),
        other => panic!("{other:?}"),
    }

    let (error, _) = open_damaged("state-range", |b| {
        with_checksum(&body_of(&b).replace("pin_tries_left = 3", "pin_tries_left = 300"))
    });
    assert!(matches!(error, StateError::Syntax { .. }), "{error:?}");

    let (error, _) = open_damaged("state-log", |b| {
        let body = body_of(&b);
        let start = body.find("log = [\"").unwrap() + 8;
        with_checksum(&format!("{}{}", &body[..start], &body[start + 2..]))
    });
    match error {
        StateError::InvalidValue { field, .. } => assert_eq!(field, "applications[0].log[0]"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_state_file_of_another_card_is_refused() {
    let dir = temp_dir("state-foreign");
    let path = dir.join("card.state");
    drop(open("visa", &path).unwrap());
    match open("cb", &path) {
        Err(CardError::State(StateError::WrongCard {
            expected_profile,
            found_profile,
            ..
        })) => {
            assert_eq!(expected_profile, "cb");
            assert_eq!(found_profile, "visa");
        }
        other => panic!("{other:?}"),
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn an_exhausted_atc_refuses_to_transact_and_never_wraps() {
    let dir = temp_dir("state-atc");
    let path = dir.join("card.state");
    drop(open("cb", &path).unwrap());
    let mut state = CardState::load(&path).unwrap();
    state.applications[0].atc = u16::MAX;
    state.save(&path).unwrap();
    let mut card = card_with_state("cb", &path);
    start_cb(&mut card);
    assert_eq!(
        send(
            &mut card,
            &generate_ac("80", &cb_cdol1("000000001000", "01020304"))
        ),
        "6985"
    );
    assert_eq!(card.atc(), u16::MAX);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_failed_write_answers_6581_and_releases_nothing() {
    let dir = temp_dir("state-unwritable");
    let path = dir.join("card.state");
    let mut card = card_with_state("cb", &path);
    start_cb(&mut card);
    // Replace the directory by a file: the next save cannot create its temporary file.
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::write(&dir, b"not a directory").unwrap();
    assert_eq!(
        send(
            &mut card,
            &generate_ac("80", &cb_cdol1("000000001000", "01020304"))
        ),
        "6581"
    );
    assert!(matches!(
        card.last_persist_error(),
        Some(StateError::Io { .. })
    ));
    assert_eq!(
        send(&mut card, &verify("0000")),
        "6985",
        "the transaction ended"
    );
    let _ = std::fs::remove_file(&dir);
}
