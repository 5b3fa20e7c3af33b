//! `telepay purchase` as a user runs it: the exit status and the reason, the diagram
//! file, and a purchase recorded with the software card then paid again by the
//! recording itself (`--reader replay:FILE`).

mod common;
use common::TempDir;

use std::path::Path;
use std::process::{Command, Output, Stdio};

/// `telepay ARGS` with `pin` on standard input and `data` as the data directory.
fn purchase(args: &[&str], pin: &str, data: &Path) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_telepay"))
        .args(args)
        .env_remove("TELEPAY_READER")
        .env("TELEPAY_DATA_DIR", data)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the telepay binary runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{pin}\n").as_bytes())
        .expect("the PIN is written");
    child.wait_with_output().expect("telepay ends")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_delivered_purchase_exits_0_and_writes_its_diagram() {
    let dir = TempDir::new("diagram");
    let diagram = dir.file("buy.mmd");
    let output = purchase(
        &[
            "purchase",
            "--pin-stdin",
            "--service",
            "marine-weather-live",
            "--diagram",
            diagram.to_str().unwrap(),
        ],
        "1234",
        &dir.file("data"),
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("delivered: marine-weather-live"),
        "{stdout}"
    );
    let drawn = std::fs::read_to_string(&diagram).expect("the diagram file");
    assert!(drawn.starts_with("sequenceDiagram\n"), "{drawn}");
    assert!(drawn.contains("C quote"), "{drawn}");
    assert!(
        !drawn.contains("I service order"),
        "Fig. 7 has no I: {drawn}"
    );
}

#[test]
fn a_refused_purchase_exits_non_zero_with_its_reason() {
    let dir = TempDir::new("refused");
    let output = purchase(&["purchase", "--pin-stdin"], "9999", &dir.file("data"));
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        text(&output.stderr).lines().last(),
        Some("telepay: error: purchase refused: payment not made: wrong PIN: 2 tries left")
    );
    // The card's counter is kept in the data directory: the next wrong PIN says 1.
    let output = purchase(&["purchase", "--pin-stdin"], "9999", &dir.file("data"));
    assert!(
        text(&output.stderr).contains("wrong PIN: 1 try left"),
        "{}",
        text(&output.stderr)
    );
}

/// The payer device reads the card through any reader URI, a recording included: a
/// seeded purchase recorded with the software card is paid again by the trace alone,
/// and a fresh acquirer authorises the same cryptogram.
#[test]
fn a_recorded_purchase_replays_as_the_card() {
    let dir = TempDir::new("replay");
    let trace = dir.file("purchase.trace");
    let recorded = purchase(
        &[
            "--record",
            trace.to_str().unwrap(),
            "purchase",
            "--pin-stdin",
            "--seed",
            "7",
        ],
        "1234",
        &dir.file("first"),
    );
    assert!(recorded.status.success(), "{}", text(&recorded.stderr));
    let replay = format!("replay:{}", trace.display());
    let replayed = purchase(
        &[
            "--reader",
            &replay,
            "purchase",
            "--pin-stdin",
            "--seed",
            "7",
        ],
        "1234",
        &dir.file("second"),
    );
    assert!(replayed.status.success(), "{}", text(&replayed.stderr));
    let transaction = |output: &Output| {
        text(&output.stdout)
            .lines()
            .find(|line| line.starts_with("E "))
            .map(str::to_owned)
            .expect("an E line")
    };
    assert_eq!(transaction(&replayed), transaction(&recorded));
    // The recording masks the PIN: the replay did not need it.
    let recording = std::fs::read_to_string(&trace).unwrap();
    assert!(!recording.contains("241234FFFFFFFFFF"), "{recording}");
}

/// Payment services (claim 17) from the command line: a bill named by its reference, a
/// reload by account and amount, and an account for identified customers, where the
/// one PIN given on standard input serves the identification and the payment.
#[test]
fn payment_services_are_bought_by_bill_or_by_account_and_amount() {
    let dir = TempDir::new("payment-services");
    let output = purchase(
        &["purchase", "--pin-stdin", "--bill", "W-2026-1108"],
        "1234",
        &dir.file("data"),
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains(
            "delivered: receipt RCP-000001 for city-water-bill (W-2026-1108), paid 17.35 EUR"
        ),
        "{stdout}"
    );

    let output = purchase(
        &[
            "purchase",
            "--pin-stdin",
            "--service",
            "transit-pass-account",
            "--account",
            "TP-884211",
            "--amount",
            "10.00",
        ],
        "1234",
        &dir.file("data"),
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(stdout.contains("identified as customer C-"), "{stdout}");
    assert!(
        stdout.contains("paid 10.00 EUR, still owed 15.40 EUR"),
        "{stdout}"
    );

    // An amount that is not one is refused before anything is bought.
    let output = purchase(
        &[
            "purchase",
            "--pin-stdin",
            "--account",
            "0612345678",
            "--amount",
            "twenty",
        ],
        "1234",
        &dir.file("data"),
    );
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    assert!(
        text(&output.stderr).contains("--amount"),
        "{}",
        text(&output.stderr)
    );
    assert!(text(&output.stdout).is_empty());
}
