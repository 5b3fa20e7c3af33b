//! The serial line end to end through real parts: `socat` makes a pty pair,
//! `telepay serial serve` (the built binary) plays a card on one end, and the `serial:`
//! backend reads it from the other, speaking T=0 or T=1 as a Phoenix reader would.
//! The decoded `card read` must be exactly what the same card gives in process
//! (`sim:`), whatever protocol carried it.
//!
//! Faults: the card side killed between commands and a card that stops in the middle
//! of a command both give a clear timeout error; garbage injected on the line (by a
//! relay this test runs between two pty pairs) is recovered from in T=1 and reported
//! clearly in T=0.
//!
//! When `socat` is missing, the test fails if the environment variable `CI` is set
//! (`.ci/run` installs it), and otherwise prints `SKIPPED: …` and passes.

mod common;
use common::TempDir;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use telepay::reader::{Reader, ReaderError, ReaderUri, open};

/// Fixed inputs, so the in-process and the serial dialogues are byte for byte equal.
const READ_ARGS: [&str; 6] = [
    "card",
    "read",
    "--date",
    "261125",
    "--unpredictable-number",
    "CAFEBABE",
];

/// Fails in CI, skips elsewhere.
fn skip(why: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("CI is set, so this test must run, but: {why}");
    }
    println!("SKIPPED: {why}");
}

/// A child process killed when the guard goes.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A pty pair made by socat: `card` and `host` are the two ends' paths.
struct PtyPair {
    _socat: Guard,
    card: PathBuf,
    host: PathBuf,
    _dir: TempDir,
}

/// `socat pty,raw,echo=0 pty,raw,echo=0`, or `None` (after `skip`) without socat.
fn pty_pair(name: &str) -> Option<PtyPair> {
    let dir = TempDir::new(name);
    let card = dir.0.join("card");
    let host = dir.0.join("host");
    let child = Command::new("socat")
        .arg("-d")
        .arg("-d")
        .arg(format!("pty,raw,echo=0,link={}", card.display()))
        .arg(format!("pty,raw,echo=0,link={}", host.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let child = match child {
        Ok(child) => Guard(child),
        Err(error) => {
            skip(&format!(
                "socat cannot be started ({error}); apt-get install socat"
            ));
            return None;
        }
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(card.exists() && host.exists()) {
        assert!(Instant::now() < deadline, "socat made no pty pair in 10 s");
        thread::sleep(Duration::from_millis(20));
    }
    Some(PtyPair {
        _socat: child,
        card,
        host,
        _dir: dir,
    })
}

/// `telepay serial serve --card CARD --port PORT EXTRA…`, killed when dropped.
fn serve(card: &str, port: &Path, extra: &[&str]) -> Guard {
    let child = Command::new(env!("CARGO_BIN_EXE_telepay"))
        .args(["serial", "serve", "--card", card, "--port"])
        .arg(port)
        .args(extra)
        .env_remove("TELEPAY_READER")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the telepay binary runs");
    // The card side opens its port before it can hear a reset.
    thread::sleep(Duration::from_millis(300));
    Guard(child)
}

fn telepay(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_telepay"))
        .args(args)
        .env_remove("TELEPAY_READER")
        .output()
        .expect("the telepay binary runs")
}

/// `card read` on `reader`, its first line (which names the reader) left out.
fn card_read(reader: &str) -> String {
    let mut args = vec!["--reader", reader];
    args.extend(READ_ARGS);
    let output = telepay(&args);
    assert!(
        output.status.success(),
        "card read on {reader} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).expect("UTF-8 output");
    let (first, rest) = text.split_once('\n').unwrap_or_default();
    assert_eq!(first, format!("Reader: {reader}"));
    rest.to_owned()
}

/// Reads `profile` through a pty with `uri_options` on the host side and
/// `serve_options` on the card side, and checks the result is the in-process one.
fn read_over_serial_matches_sim(profile: &str, uri_options: &str, serve_options: &[&str]) {
    let Some(pair) = pty_pair(profile) else {
        return;
    };
    let card = format!("sim:{profile}?seed=1");
    let _served = serve(&card, &pair.card, serve_options);
    let serial = format!("serial:{}?{uri_options}", pair.host.display());
    let expected = card_read(&card);
    assert_eq!(
        card_read(&serial),
        expected,
        "card read over {serial} differs from {card} in process"
    );
}

#[test]
fn cb_over_t0_reads_as_in_process() {
    read_over_serial_matches_sim("cb", "protocol=auto", &[]);
}

#[test]
fn cb_over_t1_after_a_pps_reads_as_in_process() {
    read_over_serial_matches_sim("cb", "protocol=t1", &[]);
}

#[test]
fn a_t1_only_card_reads_as_in_process() {
    read_over_serial_matches_sim("visa", "protocol=auto", &[]);
}

/// The mastercard profile asks a waiting time extension before every answer.
#[test]
fn waiting_time_extensions_are_granted() {
    read_over_serial_matches_sim("mastercard", "protocol=t1", &[]);
}

/// The t0-slow profile sends NULL bytes and acknowledges data byte by byte, and
/// answers 61xx / 6Cxx itself.
#[test]
fn null_bytes_and_byte_by_byte_acknowledgements_in_t0() {
    read_over_serial_matches_sim("t0-slow", "protocol=t0", &[]);
}

/// A Phoenix reader echoes every character the host writes; the host strips it.
#[test]
fn the_readers_echo_is_stripped() {
    read_over_serial_matches_sim("cb", "echo=on&protocol=t1", &["--echo"]);
    read_over_serial_matches_sim("cb", "echo=on&protocol=t0", &["--echo"]);
}

/// Opens `uri` in process and powers the card.
fn powered(uri: &str) -> Box<dyn Reader + Send> {
    let uri: ReaderUri = uri.parse().expect("a reader URI");
    let mut reader = open(&uri).expect("the serial reader opens");
    reader.power_on().expect("the card answers its reset");
    reader
}

const SELECT_PSE: &str = "00A404000E315041592E5359532E444446303100";

#[test]
fn a_card_side_killed_between_commands_is_a_clear_timeout() {
    for protocol in ["t0", "t1"] {
        let Some(pair) = pty_pair("killed") else {
            return;
        };
        let served = serve("sim:cb?seed=1", &pair.card, &[]);
        let mut reader = powered(&format!(
            "serial:{}?protocol={protocol}",
            pair.host.display()
        ));
        let select = hex::decode(SELECT_PSE).unwrap();
        assert!(reader.transmit_raw(&select).is_ok());
        drop(served);
        let error = reader.transmit_raw(&select).unwrap_err();
        let message = error.to_string();
        assert!(
            matches!(error, ReaderError::Serial(_)),
            "{protocol}: {message}"
        );
        assert!(
            message.contains(&pair.host.display().to_string()),
            "the error names the port: {message}"
        );
        assert!(
            message.contains("timed out") || message.contains("no answer"),
            "{protocol}: the error says the card went silent: {message}"
        );
    }
}

/// A scripted card: sends a T=0-only ATR, acknowledges the header of the first
/// command with its INS, then says nothing more, as a card dying mid-command.
#[test]
fn a_card_that_stops_in_the_middle_of_a_command_is_a_clear_timeout() {
    let Some(pair) = pty_pair("mid-command") else {
        return;
    };
    let card_end = pair.card.clone();
    let script = thread::spawn(move || {
        let mut port = serialport::new(card_end.to_string_lossy(), 9600)
            .timeout(Duration::from_secs(5))
            .open()
            .expect("the card end opens");
        let mut reset = [0u8; 5];
        port.read_exact(&mut reset).expect("the reset request");
        assert_eq!(reset, telepay::serial::INBAND_RESET);
        port.write_all(&hex::decode("3B6800008073C60100525430").unwrap())
            .unwrap();
        let mut header = [0u8; 5];
        port.read_exact(&mut header).expect("a command header");
        port.write_all(&[header[1]]).unwrap();
        // The data comes; the card never answers.
        let mut data = vec![0u8; usize::from(header[4])];
        port.read_exact(&mut data).expect("the command data");
        thread::sleep(Duration::from_secs(3));
    });
    let mut reader = powered(&format!("serial:{}", pair.host.display()));
    let started = Instant::now();
    let error = reader
        .transmit_raw(&hex::decode(SELECT_PSE).unwrap())
        .unwrap_err();
    let message = error.to_string();
    assert!(message.contains("T=0"), "{message}");
    assert!(message.contains("00A40400"), "names the command: {message}");
    assert!(
        message.contains("timed out") || message.contains("no answer"),
        "{message}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "WWT, not forever"
    );
    script.join().unwrap();
}

/// A relay between two pty pairs that copies both ways and, once, writes `garbage`
/// towards the host just before the card's `nth` chunk of characters.
struct Relay {
    stop: Arc<AtomicBool>,
    injected: Arc<AtomicUsize>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl Relay {
    fn start(host_side: &Path, card_side: &Path, nth: usize, garbage: &'static [u8]) -> Relay {
        let open = |path: &Path| {
            serialport::new(path.to_string_lossy(), 9600)
                .timeout(Duration::from_millis(50))
                .open()
                .expect("a relay end opens")
        };
        let mut to_host = open(host_side);
        let mut from_host = to_host.try_clone().unwrap();
        let mut to_card = open(card_side);
        let mut from_card = to_card.try_clone().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let injected = Arc::new(AtomicUsize::new(0));
        let mut threads = Vec::new();
        {
            let stop = stop.clone();
            threads.push(thread::spawn(move || {
                let mut buffer = [0u8; 512];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(count) = from_host.read(&mut buffer)
                        && count > 0
                    {
                        to_card.write_all(&buffer[..count]).unwrap();
                    }
                }
            }));
        }
        {
            let stop = stop.clone();
            let injected = injected.clone();
            threads.push(thread::spawn(move || {
                let mut buffer = [0u8; 512];
                let mut chunks = 0;
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(count) = from_card.read(&mut buffer)
                        && count > 0
                    {
                        chunks += 1;
                        if chunks == nth {
                            // Counted before it is written: once written, the host may
                            // fail and the test look at the count at once.
                            injected.fetch_add(1, Ordering::SeqCst);
                            to_host.write_all(garbage).unwrap();
                        }
                        to_host.write_all(&buffer[..count]).unwrap();
                    }
                }
            }));
        }
        Relay {
            stop,
            injected,
            threads,
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// Host ↔ pty pair A ↔ relay ↔ pty pair B ↔ `serial serve`.
fn through_relay(
    name: &str,
    nth: usize,
    garbage: &'static [u8],
) -> Option<(PtyPair, PtyPair, Guard, Relay)> {
    let host_pair = pty_pair(&format!("{name}-host"))?;
    let card_pair = pty_pair(&format!("{name}-card"))?;
    let served = serve("sim:cb?seed=1", &card_pair.card, &[]);
    let relay = Relay::start(&host_pair.card, &card_pair.host, nth, garbage);
    Some((host_pair, card_pair, served, relay))
}

/// T=1 (§11.6.3): the garbage makes the host see a bad block; it asks for it again
/// with an R-block, the card repeats it, and the read ends as in process.
#[test]
fn garbage_on_the_line_is_recovered_in_t1() {
    // Chunk 1 is the ATR, 2 the PPS answer, 3 the IFS response: 5 is in the dialogue.
    let Some((host_pair, _card_pair, _served, relay)) =
        through_relay("garbage-t1", 5, b"\x00\x40\x05\x12\x34")
    else {
        return;
    };
    let serial = format!("serial:{}?protocol=t1", host_pair.host.display());
    assert_eq!(card_read(&serial), card_read("sim:cb?seed=1"));
    assert_eq!(relay.injected.load(Ordering::SeqCst), 1, "garbage was sent");
}

/// T=0 has no error recovery: the host reports the byte that is no procedure byte.
#[test]
fn garbage_on_the_line_is_a_clear_error_in_t0() {
    let Some((host_pair, _card_pair, _served, relay)) = through_relay("garbage-t0", 3, b"\x42")
    else {
        return;
    };
    let serial = format!("serial:{}?protocol=t0", host_pair.host.display());
    let mut args = vec!["--reader", serial.as_str()];
    args.extend(READ_ARGS);
    let output = telepay(&args);
    assert!(!output.status.success(), "the read must fail");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("T=0"), "{stderr}");
    assert!(stderr.contains("42"), "names the byte: {stderr}");
    assert_eq!(relay.injected.load(Ordering::SeqCst), 1);
}

/// Claim 11 through a serial reader: `telepay purchase` with the card behind a pty,
/// served by `telepay serial serve` — the PIN verified and the cryptogram computed by
/// the card over T=1 (cb, after a PPS) and over T=0 (t0-slow, NULL bytes and per-byte
/// acknowledgements), and the service delivered.
#[test]
fn a_purchase_pays_with_a_card_on_a_serial_line() {
    for (profile, options) in [("cb", "protocol=t1"), ("t0-slow", "protocol=t0")] {
        let Some(pair) = pty_pair(&format!("purchase-{profile}")) else {
            return;
        };
        let data = TempDir::new(&format!("purchase-data-{profile}"));
        let _served = serve(&format!("sim:{profile}?seed=1"), &pair.card, &[]);
        let reader = format!("serial:{}?{options}", pair.host.display());
        let mut child = Command::new(env!("CARGO_BIN_EXE_telepay"))
            .args(["--reader", &reader, "purchase", "--pin-stdin"])
            .env_remove("TELEPAY_READER")
            .env("TELEPAY_DATA_DIR", &data.0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the telepay binary runs");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(b"1234\n")
            .unwrap();
        let output = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{profile}: {}\n{text}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            text.contains("PIN verified by the card"),
            "{profile}: {text}"
        );
        assert!(text.contains("card: Tc "), "{profile}: {text}");
        assert!(
            text.contains("delivered: market-report-2026"),
            "{profile}: {text}"
        );
    }
}
