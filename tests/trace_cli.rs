//! Recording and replaying dialogues through the `telepay` binary: `--record` on a
//! command, `trace replay` against a card, `trace show`, `trace diff`, the `replay:`
//! reader in strict and lenient modes, secrets masked by default.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn telepay(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_telepay"))
        .args(args)
        .env_remove("TELEPAY_READER")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the telepay binary runs")
}

fn telepay_with_stdin(args: &[&str], stdin: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_telepay"))
        .args(args)
        .env_remove("TELEPAY_READER")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the telepay binary runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A fresh directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("telepay-trace-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

const READ_ARGS: &[&str] = &["--date", "261125", "--unpredictable-number", "CAFEBABE"];

#[test]
fn a_recorded_card_read_replays_green_against_the_same_card() {
    let dir = scratch("roundtrip");
    let trace = dir.join("visa.trace");
    let mut args = vec![
        "card",
        "read",
        "--reader",
        "sim:visa?seed=3",
        "--record",
        path_str(&trace),
    ];
    args.extend_from_slice(READ_ARGS);
    let recorded = telepay(&args);
    assert!(recorded.status.success(), "{}", text(&recorded.stderr));

    let file = std::fs::read_to_string(&trace).unwrap();
    assert!(file.starts_with("telepay-trace 1\n"), "{file}");
    assert!(file.contains("@reader sim:visa?seed=3"), "{file}");
    assert!(file.contains("@secrets masked"), "{file}");
    assert!(
        file.contains("\n> 00A404000E325041592E5359532E444446303100"),
        "{file}"
    );

    let replayed = telepay(&["trace", "replay", path_str(&trace)]);
    assert!(
        replayed.status.success(),
        "{}{}",
        text(&replayed.stdout),
        text(&replayed.stderr)
    );
    assert!(
        text(&replayed.stdout).contains("0 differ from the recording"),
        "{}",
        text(&replayed.stdout)
    );
}

#[test]
fn a_card_that_answers_differently_fails_the_replay_with_the_difference_decoded() {
    let replayed = telepay(&[
        "trace",
        "replay",
        "traces/cb-card-read.trace",
        "--reader",
        "sim:t0-slow?seed=1",
    ]);
    assert_eq!(
        replayed.status.code(),
        Some(1),
        "{}",
        text(&replayed.stderr)
    );
    let out = text(&replayed.stdout);
    assert!(out.contains("line "), "{out}");
    assert!(out.contains("expected "), "{out}");
    assert!(
        text(&replayed.stderr).contains("answers differ from the recording"),
        "{}",
        text(&replayed.stderr)
    );
}

#[test]
fn pin_blocks_are_masked_in_recordings_unless_asked() {
    let dir = scratch("secrets");
    let masked = dir.join("masked.trace");
    let commands = [
        "00A4040007A000000042101000",
        "80A8000002830000",
        "0020008008241234FFFFFFFFFF",
    ];
    let mut args = vec!["apdu", "--record", path_str(&masked)];
    args.extend_from_slice(&commands);
    assert!(telepay(&args).status.success());
    let file = std::fs::read_to_string(&masked).unwrap();
    assert!(file.contains("<pin:8>"), "{file}");
    assert!(!file.contains("241234"), "{file}");

    // Replaying a masked PIN needs the PIN; given on stdin, it matches again.
    let without = telepay(&["trace", "replay", path_str(&masked)]);
    assert_eq!(without.status.code(), Some(1));
    assert!(
        text(&without.stderr).contains("--pin-stdin"),
        "{}",
        text(&without.stderr)
    );
    let with_pin = telepay_with_stdin(
        &["trace", "replay", path_str(&masked), "--pin-stdin"],
        "1234\n",
    );
    assert!(
        with_pin.status.success(),
        "{}{}",
        text(&with_pin.stdout),
        text(&with_pin.stderr)
    );

    let kept = dir.join("kept.trace");
    let mut args = vec!["apdu", "--record", path_str(&kept), "--record-secrets"];
    args.extend_from_slice(&commands);
    assert!(telepay(&args).status.success());
    let file = std::fs::read_to_string(&kept).unwrap();
    assert!(file.contains("@secrets recorded"), "{file}");
    assert!(file.contains("241234FFFFFFFFFF"), "{file}");
}

#[test]
fn recording_never_overwrites_an_existing_file() {
    let dir = scratch("overwrite");
    let trace = dir.join("exists.trace");
    std::fs::write(&trace, "precious").unwrap();
    let output = telepay(&["atr", "--record", path_str(&trace)]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("cannot record to"),
        "{}",
        text(&output.stderr)
    );
    assert_eq!(std::fs::read_to_string(&trace).unwrap(), "precious");
}

#[test]
fn show_decodes_a_trace() {
    let output = telepay(&["trace", "show", "traces/t0-slow-card-read.trace"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let out = text(&output.stdout);
    assert!(out.contains("Reader:   sim:t0-slow?seed=1"), "{out}");
    assert!(
        out.contains("SELECT by DF name \"2PAY.SYS.DDF01\""),
        "{out}"
    );
    // The raw T=0 dialogue: 61xx then GET RESPONSE, as they crossed the interface.
    assert!(out.contains("GET RESPONSE"), "{out}");
}

#[test]
fn diff_explains_what_changed_between_two_cards() {
    let same = telepay(&[
        "trace",
        "diff",
        "traces/cb-card-read.trace",
        "traces/cb-card-read.trace",
    ]);
    assert!(same.status.success());
    assert!(text(&same.stdout).is_empty());

    let output = telepay(&[
        "trace",
        "diff",
        "traces/cb-card-read.trace",
        "traces/blocked-card-read.trace",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let out = text(&output.stdout);
    assert!(
        out.contains(
            "9F17 Personal Identification Number (PIN) Try Counter 03 (3 tries left) → 00"
        ),
        "{out}"
    );
    assert!(
        text(&output.stderr).contains("the traces differ"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn the_replay_reader_plays_the_card_strictly_or_leniently() {
    // Skipping the directory: strict mode refuses, lenient mode finds the command.
    let select_then_record = ["00A4040007A000000042101000", "00B2011400"];
    let mut strict = vec!["apdu", "--reader", "replay:traces/cb-card-read.trace"];
    strict.extend_from_slice(&select_then_record);
    let refused = telepay(&strict);
    assert_eq!(refused.status.code(), Some(1));
    let error = text(&refused.stderr);
    assert!(error.contains("does not match line"), "{error}");
    assert!(
        error.contains("SELECT by DF name \"2PAY.SYS.DDF01\""),
        "{error}"
    );

    let mut lenient = vec![
        "apdu",
        "--reader",
        "replay:traces/cb-card-read.trace?mode=lenient",
    ];
    lenient.extend_from_slice(&select_then_record);
    let played = telepay(&lenient);
    assert!(played.status.success(), "{}", text(&played.stderr));
    assert!(text(&played.stdout).contains("5A Application Primary Account Number (PAN)"));
}

#[test]
fn import_detects_the_format_and_reports_lines_it_skipped() {
    let dir = scratch("import");
    let out = dir.join("gp.trace");
    let output = telepay(&[
        "trace",
        "import",
        "tests/fixtures/import/gp.log",
        "-o",
        path_str(&out),
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let warnings = text(&output.stderr);
    assert!(
        warnings.contains("line 15: not understood, skipped: ISD: A000000151000000"),
        "{warnings}"
    );
    let trace = std::fs::read_to_string(&out).unwrap();
    assert!(trace.starts_with("telepay-trace 1\n"), "{trace}");
    assert!(trace.contains("@imported-from gp"), "{trace}");
    // The imported trace is a trace like any other.
    let shown = telepay(&["trace", "show", path_str(&out)]);
    assert!(shown.status.success(), "{}", text(&shown.stderr));
    assert!(
        text(&shown.stdout).contains("SELECT"),
        "{}",
        text(&shown.stdout)
    );
}

#[test]
fn import_of_an_unknown_log_names_the_formats() {
    let dir = scratch("import-unknown");
    let log = dir.join("notes.txt");
    std::fs::write(&log, "just some notes\nnothing to see\n").unwrap();
    let output = telepay(&["trace", "import", path_str(&log)]);
    assert_eq!(output.status.code(), Some(1));
    let error = text(&output.stderr);
    assert!(
        error.contains("cannot tell which tool wrote this log"),
        "{error}"
    );
    assert!(
        error.contains("pcsc-spy, opensc, vicc, cardpeek, apdu4j, gp, pyscard"),
        "{error}"
    );
    let output = telepay(&["trace", "import", "--from", "wireshark", path_str(&log)]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("wireshark"),
        "{}",
        text(&output.stderr)
    );
}
