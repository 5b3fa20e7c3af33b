//! The decoded `telepay card read` dialogue of every built-in card, pinned as insta
//! snapshots a person can review: each exchange named and decoded, then the summary.
//! Date, unpredictable number and the card's randomness are fixed, so the output is
//! byte-for-byte deterministic.

use std::process::Command;

fn card_read(profile: &str) -> String {
    let reader = format!("sim:{profile}?seed=1");
    let output = Command::new(env!("CARGO_BIN_EXE_telepay"))
        .args([
            "card",
            "read",
            "--reader",
            &reader,
            "--date",
            "261125",
            "--unpredictable-number",
            "CAFEBABE",
        ])
        .env_remove("TELEPAY_READER")
        .output()
        .expect("the telepay binary runs");
    assert!(
        output.status.success(),
        "card read on {reader} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

#[test]
fn card_read_cb() {
    insta::assert_snapshot!("card_read_cb", card_read("cb"));
}

#[test]
fn card_read_visa() {
    insta::assert_snapshot!("card_read_visa", card_read("visa"));
}

#[test]
fn card_read_mastercard() {
    insta::assert_snapshot!("card_read_mastercard", card_read("mastercard"));
}

#[test]
fn card_read_t0_slow_looks_the_same_as_a_t1_card_above_the_transport() {
    insta::assert_snapshot!("card_read_t0_slow", card_read("t0-slow"));
}

#[test]
fn card_read_blocked() {
    insta::assert_snapshot!("card_read_blocked", card_read("blocked"));
}

#[test]
fn the_same_card_read_twice_gives_the_same_dialogue() {
    assert_eq!(card_read("cb"), card_read("cb"));
}
