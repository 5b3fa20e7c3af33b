//! `telepay acquirer journal|cutoff|remit` and `telepay telecollection serve|batches`
//! as a user runs them: real purchases with the software card fill the acquirer's
//! journal in a temporary data directory, a real centre runs as a child process, and
//! batches go from one to the other over TCP and a Unix socket.

mod common;
use common::TempDir;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// `telepay ARGS` with the data directory `data` (through `TELEPAY_DATA_DIR`, as a user
/// sets it) and nothing else of the environment's telepay settings.
fn command(data: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_telepay"));
    command
        .args(args)
        .env("TELEPAY_DATA_DIR", data)
        .env_remove("TELEPAY_READER")
        .env_remove("XDG_DATA_HOME");
    command
}

fn run(data: &Path, args: &[&str]) -> Output {
    command(data, args)
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
fn ok(data: &Path, args: &[&str]) -> String {
    let output = run(data, args);
    assert!(
        output.status.success(),
        "telepay {args:?} failed: {}{}",
        stdout(&output),
        stderr(&output)
    );
    stdout(&output)
}

/// Runs a command that must fail with `code`; returns its stdout and stderr.
fn fails(data: &Path, args: &[&str], code: i32) -> (String, String) {
    let output = run(data, args);
    let (out, error) = (stdout(&output), stderr(&output));
    assert_eq!(
        output.status.code(),
        Some(code),
        "telepay {args:?}: stdout {out} stderr {error}"
    );
    assert!(!error.contains("panicked"), "{error}");
    (out, error)
}

/// `echo 1234 | telepay purchase --pin-stdin`: the demo catalogue's first paid item,
/// 2.50 EUR, paid with the software bank card, authorised by the embedded acquirer.
fn purchase(data: &Path) {
    let mut child = command(data, &["purchase", "--pin-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the telepay binary runs");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"1234\n").unwrap();
    }
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "purchase failed: {}{}",
        stdout(&output),
        stderr(&output)
    );
    assert!(
        stdout(&output).contains("paid 2.50 EUR"),
        "{}",
        stdout(&output)
    );
}

/// The JSON of `telepay --json ARGS`.
fn json(data: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let text = ok(data, &all);
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{error}: {text}"))
}

/// The states of the journal's transactions, oldest first.
fn states(data: &Path) -> Vec<String> {
    json(data, &["acquirer", "journal"])
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["state"].as_str().unwrap().to_owned())
        .collect()
}

/// `telepay telecollection serve` as a child; killed when dropped unless stopped.
struct RunningCentre {
    child: Option<Child>,
    /// The address it printed first.
    address: String,
}

impl RunningCentre {
    fn start(data: &Path, extra: &[&str]) -> RunningCentre {
        let mut args = vec!["telecollection", "serve"];
        args.extend_from_slice(extra);
        let mut child = command(data, &args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the telepay binary runs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        if line.is_empty() {
            let output = child.wait_with_output().unwrap();
            panic!("the centre did not start: {}", stderr(&output));
        }
        RunningCentre {
            child: Some(child),
            address: line.trim_end().to_owned(),
        }
    }

    /// Sends `signal` (`TERM`, `INT`) and waits for the centre to exit; returns its
    /// status and its log (standard error).
    fn stop(mut self, signal: &str) -> (ExitStatus, String) {
        let mut child = self.child.take().unwrap();
        let sent = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status()
            .unwrap();
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("the centre did not stop on SIG{signal}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let output = child.wait_with_output().unwrap();
        (output.status, stderr(&output))
    }
}

impl Drop for RunningCentre {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The `sha256 <hex>` a command printed.
fn printed_checksum(text: &str) -> String {
    let start = text.find("sha256 ").expect("a checksum") + "sha256 ".len();
    text.get(start..start + 64).unwrap().to_owned()
}

#[test]
fn two_purchases_are_cut_off_remitted_once_and_totalled_by_the_centre() {
    let data = TempDir::new("flow");
    let dir = data.path();
    purchase(dir);
    purchase(dir);

    // The journal: both authorised, not in a batch, the PAN masked.
    let listing = ok(dir, &["acquirer", "journal"]);
    let rows: Vec<&str> = listing
        .lines()
        .filter(|line| line.contains("authorised"))
        .collect();
    assert_eq!(rows.len(), 2, "{listing}");
    for row in &rows {
        assert!(row.contains("497010******0014"), "{row}");
        assert!(row.contains("2.50 EUR"), "{row}");
    }
    assert!(
        !listing.contains("4970100000000014"),
        "full PAN shown: {listing}"
    );
    assert!(listing.ends_with("2 transactions\n"), "{listing}");
    let entries = json(dir, &["acquirer", "journal"]);
    let entries = entries.as_array().unwrap();
    assert_eq!(entries.len(), 2);
    for (entry, atc) in entries.iter().zip([1, 2]) {
        assert_eq!(entry["state"], "authorised");
        assert_eq!(entry["amount_minor"], 250);
        assert_eq!(entry["currency"], 978);
        assert_eq!(entry["batch"], serde_json::Value::Null);
        assert_eq!(entry["atc"], atc);
        assert_eq!(entry["pan"], "497010******0014");
        let code = entry["authorisation_code"].as_str().unwrap();
        assert!(
            code.len() == 6 && code.bytes().all(|b| b.is_ascii_alphanumeric()),
            "{code}"
        );
    }
    // --payment and --limit narrow the listing.
    let first = entries[0]["payment"].as_str().unwrap();
    let only = json(dir, &["acquirer", "journal", "--payment", first]);
    assert_eq!(only.as_array().unwrap().len(), 1);
    assert_eq!(only[0]["payment"], first);
    let limited = json(dir, &["acquirer", "journal", "--limit", "1"]);
    assert_eq!(limited.as_array().unwrap().len(), 1);

    // Not due: the default schedule's next cut-off is after the purchases, and 2000 is
    // before them. Nothing moves.
    let early = ok(dir, &["acquirer", "cutoff", "--at", "2000-01-01T00:00:00Z"]);
    assert!(
        early.starts_with("nothing to cut yet: 2 transactions waiting for the next cut-off at "),
        "{early}"
    );
    assert!(early.contains("daily:22:00+01:00"), "{early}");
    assert_eq!(states(dir), ["authorised", "authorised"]);

    let centre = RunningCentre::start(dir, &["--listen", "tcp:127.0.0.1:0"]);
    assert!(
        centre.address.starts_with("tcp:127.0.0.1:"),
        "{}",
        centre.address
    );
    assert!(!centre.address.ends_with(":0"), "{}", centre.address);

    // The cut-off: batch 1, both transactions, 5.00 EUR.
    let cut = ok(dir, &["acquirer", "cutoff", "--force"]);
    assert!(
        cut.starts_with("batch 1 of bank-card-acquirer cut off at "),
        "{cut}"
    );
    assert!(cut.contains(": 2 records\n"), "{cut}");
    assert!(cut.contains("978 EUR: 2 records, 5.00 EUR\n"), "{cut}");
    let checksum = printed_checksum(&cut);
    assert_eq!(states(dir), ["in-batch", "in-batch"]);
    assert_eq!(
        ok(dir, &["acquirer", "cutoff", "--force"]),
        "nothing to cut: no authorised transaction is waiting\n"
    );
    let in_batch = json(dir, &["acquirer", "journal", "--batch", "1"]);
    assert_eq!(in_batch.as_array().unwrap().len(), 2);
    assert_eq!(in_batch[0]["batch"], 1);

    // Remitted: accepted, then nothing is pending.
    let remitted = ok(dir, &["acquirer", "remit", "--centre", &centre.address]);
    assert_eq!(remitted.lines().count(), 1, "{remitted}");
    assert!(
        remitted.starts_with("batch 1: accepted by bank-card-acquirer at "),
        "{remitted}"
    );
    assert!(remitted.contains("2 records, 5.00 EUR (2)"), "{remitted}");
    assert_eq!(printed_checksum(&remitted), checksum);
    assert_eq!(
        states(dir),
        ["acknowledged-by-centre", "acknowledged-by-centre"]
    );
    assert_eq!(
        ok(dir, &["acquirer", "remit", "--centre", &centre.address]),
        "nothing to remit: the centre has acknowledged every batch\n"
    );
    let again = ok(
        dir,
        &[
            "acquirer",
            "remit",
            "--centre",
            &centre.address,
            "--batch",
            "1",
        ],
    );
    assert!(
        again.starts_with("batch 1: already acknowledged by the centre at "),
        "{again}"
    );

    // The centre's side: batch 1 once, 2 records, 5.00 EUR.
    let listing = ok(dir, &["telecollection", "batches"]);
    let row = listing
        .lines()
        .nth(1)
        .unwrap_or_else(|| panic!("{listing}"));
    let columns: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        (columns[0], columns[1], columns[2], columns[3]),
        ("bank-card-acquirer", "1", "2", "0"),
        "{listing}"
    );
    assert!(row.ends_with("5.00 EUR (2)"), "{listing}");
    assert!(
        listing.contains("\nbank-card-acquirer  EUR: 1 batch, 2 records, 5.00 EUR\n"),
        "{listing}"
    );
    let accepted = json(dir, &["telecollection", "batches"]);
    assert_eq!(accepted["batches"].as_array().unwrap().len(), 1);
    let batch = &accepted["batches"][0];
    assert_eq!(batch["acquirer"], "bank-card-acquirer");
    assert_eq!(batch["number"], 1);
    assert_eq!(batch["records"], 2);
    assert_eq!(batch["duplicates"], 0);
    assert_eq!(batch["checksum"], checksum.as_str());
    assert_eq!(batch["totals"][0]["total_minor"], 500);
    assert_eq!(batch["totals"][0]["total"], "5.00 EUR");
    assert_eq!(accepted["totals"][0]["currency_code"], "EUR");
    assert_eq!(accepted["totals"][0]["total_minor"], 500);
    assert_eq!(accepted["totals"][0]["batches"], 1);

    // The batch file: the documented format, its trailer's SHA-256 that of every byte
    // before it, and the one the cut-off fixed.
    let file = data.file("batch-1.txt");
    let file_text = file.to_str().unwrap();
    let written = ok(
        dir,
        &["acquirer", "remit", "--batch", "1", "--out", file_text],
    );
    assert!(written.starts_with("batch 1 written to "), "{written}");
    let bytes = std::fs::read(&file).unwrap();
    let text = String::from_utf8(bytes.clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[0]
            .starts_with("H format=telepay-batch version=1 acquirer=bank-card-acquirer batch=1 "),
        "{text}"
    );
    assert!(lines[0].ends_with(" records=2 totals=978:2:500"), "{text}");
    assert!(
        lines[1].starts_with("R ") && lines[2].starts_with("R "),
        "{text}"
    );
    let trailer = lines[3];
    let trailer_start = bytes.len() - trailer.len() - 1;
    let computed = hex::encode(Sha256::digest(&bytes[..trailer_start]));
    assert_eq!(
        trailer,
        format!("T records=2 totals=978:2:500 sha256={computed}")
    );
    assert_eq!(computed, checksum);
    let verified = telepay::acquirer::batch::read_batch(bytes.as_slice(), |_| {}).unwrap();
    assert_eq!(hex::encode(verified.trailer.checksum), checksum);
    // An existing file is never overwritten.
    let (_, error) = fails(
        dir,
        &["acquirer", "remit", "--batch", "1", "--out", file_text],
        1,
    );
    assert!(
        error.starts_with(&format!(
            "telepay: error: cannot write the batch file {file_text}: "
        )),
        "{error}"
    );
    assert_eq!(std::fs::read(&file).unwrap(), bytes);

    // SIGTERM: the centre stops cleanly.
    let (status, log) = centre.stop("TERM");
    assert!(status.success(), "{status}: {log}");
    assert!(
        log.contains("accepted batch 1 of bank-card-acquirer (2 records)"),
        "{log}"
    );
    assert!(log.contains("stopped"), "{log}");
}

#[test]
fn a_refused_batch_or_an_unreachable_centre_fails_naming_the_centre() {
    // Two journals of the same acquirer each cut a batch 1 with other contents: the
    // centre accepts the first and refuses the second, never merging them.
    let first = TempDir::new("first");
    let second = TempDir::new("second");
    let store = TempDir::new("centre");
    for data in [&first, &second] {
        purchase(data.path());
        let cut = ok(data.path(), &["acquirer", "cutoff", "--force"]);
        assert!(cut.contains(": 1 record\n"), "{cut}");
    }
    let socket = store.file("centre.sock");
    let socket_address = format!("unix:{}", socket.display());
    let store_file = store.file("centre.sqlite");
    let centre = RunningCentre::start(
        store.path(),
        &[
            "--listen",
            &socket_address,
            "--store",
            store_file.to_str().unwrap(),
        ],
    );
    assert_eq!(centre.address, socket_address);

    let accepted = ok(
        first.path(),
        &["acquirer", "remit", "--centre", &socket_address],
    );
    assert!(accepted.starts_with("batch 1: accepted"), "{accepted}");

    let (out, error) = fails(
        second.path(),
        &["acquirer", "remit", "--centre", &socket_address],
        1,
    );
    assert!(out.starts_with("batch 1: refused: "), "{out}");
    assert!(
        error.starts_with(&format!(
            "telepay: error: centre {socket_address} refused batch 1: batch 1 of acquirer bank-card-acquirer was already accepted with other contents"
        )),
        "{error}"
    );
    // Refused: sent, never acknowledged; the next remittance tries it again.
    assert_eq!(states(second.path()), ["remitted"]);
    let remitted = json(
        second.path(),
        &["acquirer", "journal", "--state", "remitted"],
    );
    assert_eq!(remitted.as_array().unwrap().len(), 1);
    let (out, _) = fails(
        second.path(),
        &["--json", "acquirer", "remit", "--centre", &socket_address],
        1,
    );
    let answers: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(answers["remitted"][0]["batch"], 1);
    assert_eq!(answers["remitted"][0]["answer"]["status"], "refused");

    // Nobody listens on a port just closed.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let address = format!("tcp:127.0.0.1:{port}");
    let (out, error) = fails(
        second.path(),
        &["acquirer", "remit", "--centre", &address],
        1,
    );
    assert_eq!(out, "");
    assert!(
        error.starts_with(&format!(
            "telepay: error: centre {address}: cannot connect: "
        )),
        "{error}"
    );
    assert_eq!(states(second.path()), ["remitted"]);

    // The store holds the first batch only.
    let listing = json(
        store.path(),
        &[
            "telecollection",
            "batches",
            "--store",
            store_file.to_str().unwrap(),
        ],
    );
    assert_eq!(listing["batches"].as_array().unwrap().len(), 1);
    assert_eq!(listing["totals"][0]["total_minor"], 250);

    // SIGINT: the centre stops cleanly and removes its socket.
    let (status, log) = centre.stop("INT");
    assert!(status.success(), "{status}: {log}");
    assert!(!socket.exists(), "{}", socket.display());
}

#[test]
fn bad_arguments_and_missing_files_give_one_clear_line() {
    let empty = TempDir::new("empty");
    let dir = empty.path();
    let journal = dir.join("acquirer-journal.sqlite");
    for args in [
        &["acquirer", "journal"][..],
        &["acquirer", "cutoff", "--force"],
        &["acquirer", "remit", "--centre", "tcp:127.0.0.1:9"],
    ] {
        let (_, error) = fails(dir, args, 1);
        assert_eq!(
            error,
            format!(
                "telepay: error: no acquirer journal at {}: make a purchase first, or name the data directory with --data-dir\n",
                journal.display()
            ),
            "{args:?}"
        );
    }
    let (_, error) = fails(dir, &["telecollection", "batches"], 1);
    assert!(
        error.starts_with(&format!(
            "telepay: error: no telecollection centre store at {}",
            dir.join("telecollection-centre.sqlite").display()
        )),
        "{error}"
    );
    // Nothing was created by looking.
    assert_eq!(std::fs::read_dir(dir).unwrap().count(), 0);

    // Usage errors: exit status 2, clap's message naming the option.
    let usage: [(&[&str], &str); 8] = [
        (&["acquirer", "cutoff", "--at", "yesterday"], "--at"),
        (
            &["acquirer", "cutoff", "--at", "2026-11-25T22:00:00"],
            "RFC 3339",
        ),
        (
            &["acquirer", "cutoff", "--schedule", "hourly"],
            "cut-off schedule \"hourly\"",
        ),
        (&["acquirer", "journal", "--state", "done"], "--state"),
        (&["acquirer", "remit"], "--centre"),
        (&["acquirer", "remit", "--out", "x.txt"], "--batch"),
        (
            &["acquirer", "remit", "--centre", "localhost:7070"],
            "expected tcp:IP:PORT, IP:PORT or unix:PATH",
        ),
        (
            &["telecollection", "serve", "--listen", "udp:1.2.3.4:5"],
            "expected tcp:IP:PORT, IP:PORT or unix:PATH",
        ),
    ];
    for (args, expected) in usage {
        let (_, error) = fails(dir, args, 2);
        assert!(error.contains(expected), "{args:?}: {error}");
    }
}
