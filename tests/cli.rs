//! The `telepay` binary as a user runs it: every command against the software card, and
//! bad input of each kind giving one clear line and a non-zero exit status.

use std::process::{Command, Output};

fn telepay(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_telepay"))
        .args(args)
        .env_remove("TELEPAY_READER")
        .output()
        .expect("the telepay binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs a command that must succeed and returns its stdout.
fn ok(args: &[&str]) -> String {
    let output = telepay(args);
    assert!(
        output.status.success(),
        "telepay {args:?} failed: {}",
        stderr(&output)
    );
    stdout(&output)
}

/// Runs a command that must fail with `code` and one line on stderr; returns that line.
fn fails(args: &[&str], code: i32) -> String {
    let output = telepay(args);
    assert_eq!(
        output.status.code(),
        Some(code),
        "telepay {args:?}: stdout {} stderr {}",
        stdout(&output),
        stderr(&output)
    );
    let error = stderr(&output);
    assert!(!error.contains("panicked"), "{error}");
    assert!(!error.contains("RUST_BACKTRACE"), "{error}");
    error
}

#[test]
fn readers_lists_every_built_in_card_and_the_missing_backends() {
    let text = ok(&["readers"]);
    for uri in [
        "sim:cb",
        "sim:visa",
        "sim:mastercard",
        "sim:t0-slow",
        "sim:blocked",
    ] {
        assert!(text.contains(uri), "{uri} missing from:\n{text}");
    }
    // The serial backend lists the machine's serial ports (none is also an answer).
    assert!(text.contains("serial:\n"), "{text}");
    // PC/SC is built with the `pcsc` feature; without it, the listing says how to get it.
    if cfg!(feature = "pcsc") {
        assert!(!text.contains("pcsc:\n  (unavailable:"), "{text}");
    } else {
        assert!(text.contains("--features pcsc"), "{text}");
    }
}

#[test]
fn atr_is_decoded() {
    let text = ok(&["atr"]);
    assert!(text.contains("Reader: sim:cb"), "{text}");
    assert!(text.contains("ATR: 3B"), "{text}");
    assert!(text.contains("T=0") || text.contains("T=1"), "{text}");
}

#[test]
fn atr_as_json() {
    let text = ok(&["atr", "--json", "--reader", "sim:visa"]);
    let json: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(json["reader"], "sim:visa");
    assert!(json["atr"].as_str().unwrap().starts_with("3B"));
}

#[test]
fn apdu_sends_and_decodes_each_command() {
    let text = ok(&[
        "apdu",
        "00A404000E325041592E5359532E444446303100",
        "00 A4 04 00 07 A0 00 00 00 42 10 10 00",
        "80CA9F1700",
    ]);
    assert!(
        text.contains("> SELECT by DF name \"2PAY.SYS.DDF01\""),
        "{text}"
    );
    assert!(text.contains("< 9000"), "{text}");
    assert!(text.contains("84 Dedicated File (DF) Name"), "{text}");
    assert!(
        text.contains("GET DATA 9F17 Personal Identification Number (PIN) Try Counter"),
        "{text}"
    );
}

#[test]
fn apdu_status_words_are_decoded_not_fatal() {
    let text = ok(&["apdu", "00A4040007A000000099999900"]);
    assert!(text.contains("< 6A82"), "{text}");
    assert!(text.to_lowercase().contains("not found"), "{text}");
}

#[test]
fn apdu_masks_pin_blocks_unless_asked() {
    let select = "00A4040007A000000042101000";
    let gpo = "80A8000002830000";
    let verify = "0020008008241234FFFFFFFFFF";
    let masked = ok(&["apdu", select, gpo, verify]);
    assert!(masked.contains("0020008008****************"), "{masked}");
    assert!(!masked.contains("241234"), "{masked}");
    let shown = ok(&["apdu", "--show-secrets", select, gpo, verify]);
    assert!(shown.contains("0020008008241234FFFFFFFFFF"), "{shown}");
}

#[test]
fn apdu_bad_hex_names_the_argument_and_position() {
    let error = fails(&["apdu", "00A4G0"], 1);
    assert_eq!(
        error.trim(),
        "telepay: error: APDU \"00A4G0\": 'G' at character 4 is not a hex digit"
    );
    let error = fails(&["apdu", "00A"], 1);
    assert!(error.contains("odd number of hex digits"), "{error}");
}

#[test]
fn apdu_malformed_command_is_refused_before_anything_is_sent() {
    let error = fails(&["apdu", "00A4040005A000"], 1);
    assert!(
        error.starts_with("telepay: error: APDU 00A4040005A000: "),
        "{error}"
    );
    assert_eq!(error.lines().count(), 1, "{error}");
}

#[test]
fn unknown_reader_scheme_lists_the_valid_forms() {
    let error = fails(&["atr", "--reader", "usb:1"], 2);
    assert!(error.contains("unknown scheme \"usb\""), "{error}");
    assert!(error.contains("pcsc:NAME"), "{error}");
}

#[test]
fn a_serial_port_that_does_not_exist_is_named_in_the_error() {
    let error = fails(&["atr", "--reader", "serial:/dev/telepay-no-such-port"], 1);
    assert!(
        error.contains("serial port /dev/telepay-no-such-port"),
        "{error}"
    );
    assert!(error.contains("cannot open it"), "{error}");
}

#[test]
fn unknown_profile_lists_the_built_in_ones() {
    let error = fails(&["atr", "--reader", "sim:amex"], 1);
    assert!(error.contains("amex"), "{error}");
    assert!(error.contains("cb"), "{error}");
}

#[test]
fn card_read_masks_the_pan_by_default() {
    let text = ok(&["card", "read"]);
    assert!(text.contains("GET PROCESSING OPTIONS"), "{text}");
    assert!(text.contains("READ RECORD"), "{text}");
    let pan_line = text
        .lines()
        .find(|line| line.starts_with("PAN:"))
        .expect("a PAN line");
    assert!(pan_line.contains("******"), "{pan_line}");
    assert!(pan_line.contains("--show-pan"), "{pan_line}");
    assert!(text.contains("PIN tries left:     3"), "{text}");

    let shown = ok(&["card", "read", "--show-pan"]);
    let pan_line = shown
        .lines()
        .find(|line| line.starts_with("PAN:"))
        .expect("a PAN line");
    assert!(!pan_line.contains('*'), "{pan_line}");
}

#[test]
fn card_read_works_on_every_built_in_card() {
    for profile in ["cb", "visa", "mastercard", "t0-slow", "blocked"] {
        let reader = format!("sim:{profile}");
        let text = ok(&["card", "read", "--reader", &reader]);
        assert!(text.contains("Selected:"), "{profile}: {text}");
        let expected_tries = if profile == "blocked" { "0" } else { "3" };
        assert!(
            text.contains(&format!("PIN tries left:     {expected_tries}")),
            "{profile}: {text}"
        );
    }
}

#[test]
fn card_read_json_is_machine_readable() {
    let text = ok(&["card", "read", "--json", "--reader", "sim:visa"]);
    let json: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(json["reader"], "sim:visa");
    assert_eq!(json["cardholder"]["pan_masked"], true);
    assert!(json["cardholder"]["pan"].as_str().unwrap().contains('*'));
    assert!(json["exchanges"].as_array().unwrap().len() >= 5);
}

#[test]
fn card_read_unknown_aid_names_what_the_card_offers() {
    let error = fails(&["card", "read", "--aid", "A0000000999999"], 1);
    assert!(error.contains("A0000000999999"), "{error}");
    assert!(error.contains("A0000000421010"), "{error}");
}

#[test]
fn card_read_bad_arguments() {
    let error = fails(&["card", "read", "--aid", "A0"], 1);
    assert!(error.contains("--aid"), "{error}");
    let error = fails(&["card", "read", "--date", "261332"], 1);
    assert!(error.contains("--date \"261332\""), "{error}");
    let error = fails(&["card", "read", "--unpredictable-number", "0102"], 1);
    assert!(error.contains("exactly 4 bytes"), "{error}");
}

#[test]
fn tlv_decodes_with_the_dictionary() {
    let text = ok(&[
        "tlv",
        "6F1A840E325041592E5359532E4444463031A5088801025F2D02656E",
    ]);
    assert!(
        text.contains("6F File Control Information (FCI) Template"),
        "{text}"
    );
    assert!(text.contains("88 Short File Identifier (SFI)"), "{text}");
}

#[test]
fn tlv_bad_input() {
    let error = fails(&["tlv", "6F05840301"], 1);
    assert!(
        error.starts_with("telepay: error: TLV 6F05840301: "),
        "{error}"
    );
    let error = fails(&["tlv", "zz"], 1);
    assert!(error.contains("not a hex digit"), "{error}");
}
