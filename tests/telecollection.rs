//! Telecollection end to end: the acquirer's journal on disk, batches cut off and
//! streamed, the centre verifying and de-duplicating them, over real sockets, and a
//! journal killed at random points losing nothing and remitting nothing twice.

mod common;
use common::TempDir;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use telepay::acquirer::batch::{BatchError, CurrencyTotal, read_batch};
use telepay::acquirer::journal::{
    BatchState, Journal, JournalEntry, JournalError, ReversalOutcome, TransactionFilter,
    TransactionState,
};
use telepay::acquirer::schedule::CutoffSchedule;
use telepay::messages::{
    Acknowledgement, AcquirerId, AcquirerTransaction, Currency, Money, PaymentId, PurchaseId,
    RefusalReason, Reversal, Timestamp, Verdict,
};
use telepay::telecollection::centre::{AcquirerTotal, Centre, CentreAnswer};
use telepay::telecollection::remittance::{remit_pending, telecollect};
use telepay::telecollection::server::{
    CentreAddress, CentreServer, ClientOptions, ServerOptions, remit, remit_file,
};

/// 2026-11-25T22:00:00Z.
const NOW: Timestamp = Timestamp(1_795_644_000_000);

/// F for `payment`: card `pan`, counter `atc`, `amount` minor units of `currency`.
/// Built by hand: the banking rules that would judge it are not under test here.
fn f(payment: &str, atc: u16, amount: u64, currency: Currency) -> AcquirerTransaction {
    common::hand_built_f(
        payment,
        "4970100000000014",
        atc,
        Money::new(amount, currency),
        NOW,
    )
}

fn answer(f: &AcquirerTransaction, positive: bool) -> Acknowledgement {
    let verdict = if positive {
        Verdict::Positive {
            authorisation_code: format!("A{:05}", f.transaction.payment.0.len() * 7 % 100_000)
                .into(),
            response_code: *b"00",
            arpc: Some([0x5A; 8]),
        }
    } else {
        Verdict::Negative {
            reason: RefusalReason::CardExpired,
            response_code: RefusalReason::CardExpired.response_code(),
            arpc: None,
        }
    };
    Acknowledgement {
        acquirer: f.acquirer.clone(),
        purchase: f.transaction.purchase.clone(),
        payment: f.transaction.payment.clone(),
        verdict,
        provision: None,
    }
}

fn record(
    journal: &mut Journal,
    payment: &str,
    atc: u16,
    amount: u64,
    positive: bool,
) -> Acknowledgement {
    let f = f(payment, atc, amount, Currency::EUR);
    journal.record(&f, &answer(&f, positive), NOW).unwrap()
}

fn entries(journal: &Journal) -> Vec<JournalEntry> {
    let mut out = Vec::new();
    journal
        .transactions(&TransactionFilter::default(), |entry| {
            out.push(entry);
            Ok::<_, JournalError>(())
        })
        .unwrap();
    out
}

fn batch_bytes(journal: &Journal, number: u64) -> Vec<u8> {
    let mut bytes = Vec::new();
    journal.write_batch(number, &mut bytes).unwrap();
    bytes
}

/// A centre served on 127.0.0.1 (ephemeral port) or a Unix socket, stopped on drop.
struct RunningCentre {
    address: CentreAddress,
    shutdown: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RunningCentre {
    fn start(listen: &CentreAddress, store: &Path) -> RunningCentre {
        let centre = Centre::open(store).unwrap();
        let options = ServerOptions {
            io_timeout: Duration::from_secs(10),
            poll_interval: Duration::from_millis(5),
            max_batch_bytes: 1 << 20,
            ..ServerOptions::default()
        };
        let server = CentreServer::bind(listen, centre, options).unwrap();
        let address = server.local_address().clone();
        let shutdown = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&shutdown);
        let thread = std::thread::spawn(move || server.run(&flag).unwrap());
        RunningCentre {
            address,
            shutdown,
            thread: Some(thread),
        }
    }
}

impl Drop for RunningCentre {
    fn drop(&mut self) {
        self.shutdown.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn loopback() -> CentreAddress {
    "tcp:127.0.0.1:0".parse().unwrap()
}

fn options() -> ClientOptions {
    ClientOptions {
        timeout: Duration::from_secs(10),
    }
}

fn accepted(answer: &CentreAnswer) -> (u64, bool) {
    match answer {
        CentreAnswer::Accepted(acceptance) => (acceptance.batch, acceptance.duplicate),
        other => panic!("not accepted: {other:?}"),
    }
}

#[test]
fn the_journal_keeps_everything_across_reopening() {
    let dir = TempDir::new("reopen");
    let path = dir.file("journal.sqlite");
    let (before, batches, g) = {
        let mut journal = Journal::open(&path).unwrap();
        let g = record(&mut journal, "PAY-1", 1, 1250, true);
        record(&mut journal, "PAY-2", 2, 2500, true);
        record(&mut journal, "PAY-3", 3, 999, false);
        record(&mut journal, "PAY-4", 4, 100, true);
        let reversal = Reversal {
            acquirer: AcquirerId::from("ACQ-1"),
            purchase: PurchaseId::from("PUR-PAY-4"),
            payment: PaymentId::from("PAY-4"),
            reason: "not delivered".into(),
        };
        assert_eq!(
            journal.reverse(&reversal, NOW).unwrap(),
            ReversalOutcome::Reversed
        );
        journal.cut_off(NOW).unwrap().unwrap();
        journal.mark_sent(1, NOW.plus_millis(1)).unwrap();
        record(&mut journal, "PAY-5", 5, 700, true);
        (entries(&journal), journal.batches().unwrap(), g)
    };
    // The file is in WAL mode with full synchronisation, as the journal set it.
    let raw = rusqlite::Connection::open(&path).unwrap();
    let mode: String = raw
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    drop(raw);

    let journal = Journal::open(&path).unwrap();
    assert_eq!(entries(&journal), before);
    assert_eq!(journal.batches().unwrap(), batches);
    assert_eq!(
        journal
            .acknowledgement_for(&PaymentId::from("PAY-1"))
            .unwrap(),
        Some(g)
    );
    assert_eq!(
        journal.card_last_atc("4970100000000014", 1).unwrap(),
        Some(5)
    );
    assert!(journal.is_reversed(&PaymentId::from("PAY-4")).unwrap());
    let states: Vec<(&str, TransactionState)> = before
        .iter()
        .map(|entry| (entry.payment.0.as_str(), entry.state))
        .collect();
    assert_eq!(
        states,
        [
            ("PAY-1", TransactionState::Remitted),
            ("PAY-2", TransactionState::Remitted),
            ("PAY-3", TransactionState::Refused),
            ("PAY-4", TransactionState::Reversed),
            ("PAY-5", TransactionState::Authorised),
        ]
    );
    assert_eq!(
        (batches[0].state, batches[0].records, &batches[0].totals[..]),
        (
            BatchState::Sent,
            2,
            &[CurrencyTotal {
                currency: 978,
                records: 2,
                total_minor: 3750
            }][..]
        )
    );
}

#[test]
fn a_journal_of_another_schema_or_not_a_database_is_refused() {
    let dir = TempDir::new("schema");
    let path = dir.file("journal.sqlite");
    drop(Journal::open(&path).unwrap());
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.execute("UPDATE schema_version SET version = 3", [])
        .unwrap();
    drop(raw);
    assert_eq!(
        Journal::open(&path).unwrap_err().to_string(),
        format!(
            "journal {}: schema version 3 is not supported (this build reads 1 to 2)",
            path.display()
        )
    );
    let text = dir.file("notes.txt");
    std::fs::write(&text, vec![b'x'; 4096]).unwrap();
    assert_eq!(
        Journal::open(&text).unwrap_err().to_string(),
        format!("journal {}: open: file is not a database", text.display())
    );
}

#[test]
fn a_batch_written_again_is_the_same_file_or_no_file() {
    let dir = TempDir::new("rewrite");
    let path = dir.file("journal.sqlite");
    let mut journal = Journal::open(&path).unwrap();
    record(&mut journal, "PAY-1", 1, 1250, true);
    record(&mut journal, "PAY-2", 2, 2500, true);
    let summary = journal.cut_off(NOW).unwrap().unwrap();
    let first = batch_bytes(&journal, 1);
    assert_eq!(first.len() as u64, summary.bytes);
    assert_eq!(batch_bytes(&journal, 1), first, "deterministic");
    // Someone alters a remitted transaction's cryptogram behind the journal's back.
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.execute(
        "UPDATE transactions SET cryptogram = 'FFFFFFFFFFFFFFFF' WHERE payment = 'PAY-2'",
        [],
    )
    .unwrap();
    drop(raw);
    let mut altered = Vec::new();
    let error = journal.write_batch(1, &mut altered).unwrap_err();
    assert!(
        matches!(
            &error,
            JournalError::Batch {
                number: 1,
                source: BatchError::ChecksumMismatch { line: 4, .. },
                ..
            }
        ),
        "{error}"
    );
    // No trailer went out: whatever was written cannot be accepted.
    let text = String::from_utf8(altered.clone()).unwrap();
    assert_eq!(text.lines().count(), 3);
    assert!(matches!(
        read_batch(&altered[..], |_| {}),
        Err(BatchError::Truncated { line: 4, .. })
    ));
}

#[test]
fn the_centre_refuses_a_bad_batch_naming_the_line_and_the_fault() {
    let mut journal = Journal::open_in_memory().unwrap();
    record(&mut journal, "PAY-1", 1, 1250, true);
    record(&mut journal, "PAY-2", 2, 2500, true);
    journal.cut_off(NOW).unwrap().unwrap();
    let good = String::from_utf8(batch_bytes(&journal, 1)).unwrap();
    let lines: Vec<&str> = good.lines().collect();
    let trailer = lines[3];
    let declared = trailer.rsplit_once("sha256=").unwrap().1;

    // A cryptogram altered in a record: the format and the totals hold, only the
    // checksum can tell.
    let tampered = good.replacen(
        "cryptogram=0000000002020202",
        "cryptogram=0000000002020203",
        1,
    );
    assert_ne!(tampered, good);
    let computed = {
        use sha2::Digest;
        let body_end = tampered.rfind("T records").unwrap();
        hex::encode(sha2::Sha256::digest(&tampered.as_bytes()[..body_end]))
    };
    // Totals forged in header and trailer, checksum recomputed: the records do not add up.
    let forged = {
        use sha2::Digest;
        let body = format!(
            "{}\n{}\n{}\n",
            lines[0].replace("978:2:3750", "978:2:3000"),
            lines[1],
            lines[2]
        );
        let checksum = hex::encode(sha2::Sha256::digest(body.as_bytes()));
        format!("{body}T records=2 totals=978:2:3000 sha256={checksum}\n")
    };
    let mid_line = &good[..good
        .find("pan=4970100000000014 psn=01 expiry=281231 atc=0002")
        .unwrap()];
    let at_line_end = format!("{}\n{}\n", lines[0], lines[1]);
    let cases: Vec<(&str, String, Option<u64>, String)> = vec![
        (
            "a cryptogram altered",
            tampered,
            Some(4),
            format!("line 4: checksum mismatch: the trailer says {declared}, the bytes give {computed}"),
        ),
        (
            "totals forged",
            forged,
            Some(4),
            "line 4: currency 978: declared 2 records totalling 3000, the records give 2 totalling 3750".into(),
        ),
        (
            "cut mid-line",
            mid_line.to_owned(),
            Some(3),
            "line 3: the line has no end (the batch was cut mid-line)".into(),
        ),
        (
            "cut after a record",
            at_line_end,
            Some(3),
            "line 3: the batch ends where a record `R` or the trailer `T` was expected".into(),
        ),
        (
            "empty",
            String::new(),
            Some(1),
            "line 1: the batch ends where the header `H` was expected".into(),
        ),
    ];
    let mut centre = Centre::open_in_memory().unwrap();
    for (what, bytes, line, reason) in cases {
        assert_eq!(
            centre.receive(bytes.as_bytes(), NOW).unwrap(),
            CentreAnswer::Refused { line, reason },
            "{what}"
        );
    }
    assert!(
        centre.batches().unwrap().is_empty(),
        "nothing refused is kept"
    );
}

#[test]
fn a_batch_sent_twice_is_counted_once_even_by_a_restarted_centre() {
    let dir = TempDir::new("dedup");
    let store = dir.file("centre.sqlite");
    let mut journal = Journal::open_in_memory().unwrap();
    record(&mut journal, "PAY-1", 1, 1250, true);
    record(&mut journal, "PAY-2", 2, 2500, true);
    journal.cut_off(NOW).unwrap().unwrap();
    let bytes = batch_bytes(&journal, 1);

    let first = {
        let mut centre = Centre::open(&store).unwrap();
        let first = centre.receive(&bytes[..], NOW).unwrap();
        let again = centre.receive(&bytes[..], NOW.plus_millis(1000)).unwrap();
        let CentreAnswer::Accepted(mut expected) = first.clone() else {
            panic!("{first:?}")
        };
        assert!(!expected.duplicate);
        expected.duplicate = true;
        assert_eq!(
            again,
            CentreAnswer::Accepted(expected),
            "the same acceptance, marked duplicate"
        );
        first
    };
    // Restarted: the store remembers.
    let mut centre = Centre::open(&store).unwrap();
    let third = centre.receive(&bytes[..], NOW.plus_millis(2000)).unwrap();
    let (CentreAnswer::Accepted(first), CentreAnswer::Accepted(third)) = (first, third) else {
        panic!("not accepted")
    };
    assert_eq!(
        (third.duplicate, third.accepted_at),
        (true, first.accepted_at)
    );
    let batches = centre.batches().unwrap();
    assert_eq!(batches.len(), 1);
    assert_eq!(
        (batches[0].number, batches[0].duplicates, batches[0].records),
        (1, 2, 2)
    );
    assert_eq!(
        centre.totals().unwrap(),
        [AcquirerTotal {
            acquirer: AcquirerId::from("ACQ-1"),
            currency: 978,
            batches: 1,
            records: 2,
            total_minor: 3750
        }]
    );

    // Another journal's batch 1 for the same acquirer, with other contents: refused.
    let mut other = Journal::open_in_memory().unwrap();
    record(&mut other, "PAY-9", 9, 100, true);
    other.cut_off(NOW).unwrap().unwrap();
    let other_bytes = batch_bytes(&other, 1);
    let CentreAnswer::Refused { line: None, reason } =
        centre.receive(&other_bytes[..], NOW).unwrap()
    else {
        panic!("a conflicting batch 1 was not refused")
    };
    assert!(
        reason.starts_with(&format!(
            "batch 1 of acquirer ACQ-1 was already accepted with other contents (sha256 {})",
            first.checksum
        )),
        "{reason}"
    );
    assert_eq!(centre.totals().unwrap()[0].records, 2);
}

#[test]
fn a_real_centre_over_tcp_takes_remittances_and_de_duplicates() {
    let dir = TempDir::new("tcp");
    let store = dir.file("centre.sqlite");
    let centre = RunningCentre::start(&loopback(), &store);
    let mut journal = Journal::open(dir.file("journal.sqlite")).unwrap();
    record(&mut journal, "PAY-1", 1, 1250, true);
    record(&mut journal, "PAY-2", 2, 2500, true);
    record(&mut journal, "PAY-3", 3, 300, false);
    let schedule: CutoffSchedule = "daily:22:30".parse().unwrap();

    // Not due before 22:30: nothing cut, nothing sent.
    let early = telecollect(&mut journal, &schedule, &centre.address, &options(), NOW).unwrap();
    assert_eq!((early.cut, early.remitted.len()), (None, 0));
    // Due at 22:30: batch 1 is cut, sent, accepted, and marked acknowledged.
    let due = NOW.plus_millis(30 * 60_000);
    let report = telecollect(&mut journal, &schedule, &centre.address, &options(), due).unwrap();
    assert_eq!(report.cut.as_ref().map(|batch| batch.number), Some(1));
    assert_eq!(report.remitted.len(), 1);
    assert_eq!(accepted(&report.remitted[0].answer), (1, false));
    assert_eq!(
        journal.batch(1).unwrap().unwrap().state,
        BatchState::Acknowledged
    );

    // Batch 2 reaches the centre, then the acquirer dies before recording the answer:
    // on restart it is sent again, and the centre counts it once.
    record(&mut journal, "PAY-4", 4, 400, true);
    let second = journal.cut_off(due.plus_millis(1)).unwrap().unwrap();
    journal.mark_sent(2, due.plus_millis(2)).unwrap();
    let bytes = batch_bytes(&journal, 2);
    let answer = remit(&centre.address, bytes.len() as u64, &bytes[..], &options()).unwrap();
    assert_eq!(accepted(&answer), (2, false));
    assert_eq!(journal.batch(2).unwrap().unwrap().state, BatchState::Sent);
    let resent = remit_pending(
        &mut journal,
        &centre.address,
        &options(),
        due.plus_millis(3),
    )
    .unwrap();
    assert_eq!(resent.len(), 1);
    assert_eq!(accepted(&resent[0].answer), (2, true));
    assert!(journal.unacknowledged_batches().unwrap().is_empty());

    // A batch file remitted as a file.
    let file = dir.file("batch-2.txt");
    std::fs::write(&file, &bytes).unwrap();
    assert_eq!(
        accepted(&remit_file(&centre.address, &file, &options()).unwrap()),
        (2, true)
    );

    // A corrupted batch over the wire: refused, with its line.
    let mut corrupted = bytes.clone();
    let position = corrupted.iter().position(|&b| b == b'R').unwrap() + 10;
    corrupted[position] ^= 0x01;
    let refused = remit(
        &centre.address,
        corrupted.len() as u64,
        &corrupted[..],
        &options(),
    )
    .unwrap();
    assert!(
        matches!(refused, CentreAnswer::Refused { line: Some(_), .. }),
        "{refused:?}"
    );

    // The centre's store, read while it runs: each batch once.
    let store = Centre::open(&store).unwrap();
    let batches = store.batches().unwrap();
    assert_eq!(
        batches
            .iter()
            .map(|b| (b.number, b.records, b.duplicates))
            .collect::<Vec<_>>(),
        [(1, 2, 0), (2, 1, 2)]
    );
    assert_eq!(batches[1].checksum, hex::encode(second.checksum));
    assert_eq!(store.totals().unwrap()[0].total_minor, 1250 + 2500 + 400);
}

#[test]
fn the_wire_framing_as_a_raw_client_sees_it() {
    let dir = TempDir::new("framing");
    let socket = dir.file("centre.sock");
    let listen = CentreAddress::Unix(socket.clone());
    let centre = RunningCentre::start(&listen, &dir.file("centre.sqlite"));
    let mut journal = Journal::open_in_memory().unwrap();
    record(&mut journal, "PAY-1", 1, 1250, true);
    journal.cut_off(NOW).unwrap().unwrap();
    let bytes = batch_bytes(&journal, 1);

    // Two frames on one connection, then an oversized one, by hand.
    let mut stream = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    for duplicate in [false, true] {
        stream
            .write_all(&(bytes.len() as u64).to_be_bytes())
            .unwrap();
        stream.write_all(&bytes).unwrap();
        line.clear();
        reader.read_line(&mut line).unwrap();
        let answer: CentreAnswer = serde_json::from_str(&line).unwrap();
        assert_eq!(accepted(&answer), (1, duplicate));
        assert!(
            line.starts_with("{\"status\":\"accepted\",\"acquirer\":\"ACQ-1\",\"batch\":1,"),
            "{line}"
        );
    }
    stream.write_all(&(2u64 << 20).to_be_bytes()).unwrap();
    line.clear();
    reader.read_line(&mut line).unwrap();
    assert_eq!(
        serde_json::from_str::<CentreAnswer>(&line).unwrap(),
        CentreAnswer::Refused {
            line: None,
            reason:
                "the frame announces 2097152 bytes; this centre takes batches of 1 to 1048576 bytes"
                    .into()
        }
    );
    // ...and the centre closes that connection.
    let mut rest = Vec::new();
    assert_eq!(reader.read_to_end(&mut rest).unwrap(), 0);
    drop(centre);
    assert!(
        !socket.exists(),
        "the socket file is removed when the centre stops"
    );
}

// ---------------------------------------------------------------------------------
// Crash test: a child process records, cuts off and remits until it is killed.
// ---------------------------------------------------------------------------------

const CHILD_JOURNAL: &str = "TELEPAY_TEST_CRASH_JOURNAL";
const CHILD_CENTRE: &str = "TELEPAY_TEST_CRASH_CENTRE";

/// Run by `killed_at_random_points_the_acquirer_loses_nothing_and_remits_nothing_twice`
/// in a child process; does nothing when run on its own.
#[test]
#[ignore = "run as a child process by the crash test"]
fn crash_child_records_until_killed() {
    let (Ok(journal_path), Ok(centre)) =
        (std::env::var(CHILD_JOURNAL), std::env::var(CHILD_CENTRE))
    else {
        return;
    };
    let address: CentreAddress = centre.parse().unwrap();
    let mut journal = Journal::open(&journal_path).unwrap();
    let start = entries(&journal).len() as u64;
    let mut stdout = std::io::stdout();
    for index in start.. {
        let payment = format!("PAY-{index}");
        let atc = u16::try_from(index % 60_000).unwrap() + 1;
        let positive = index % 5 != 0;
        let f = f(&payment, atc, 100 + index, Currency::EUR);
        let g = journal.record(&f, &answer(&f, positive), NOW).unwrap();
        // G is "sent" only now that it is durable.
        writeln!(stdout, "ACK {payment} {}", g.verdict.is_positive()).unwrap();
        if index % 4 == 0 {
            let now = NOW.plus_millis(i64::try_from(index).unwrap());
            if let Some(batch) = journal.cut_off(now).unwrap() {
                writeln!(stdout, "CUT {}", batch.number).unwrap();
            }
            remit_pending(&mut journal, &address, &options(), now).unwrap();
        }
    }
}

#[test]
fn killed_at_random_points_the_acquirer_loses_nothing_and_remits_nothing_twice() {
    let dir = TempDir::new("crash");
    let journal_path = dir.file("journal.sqlite");
    let centre = RunningCentre::start(&loopback(), &dir.file("centre.sqlite"));
    let mut acknowledged: Vec<(String, bool)> = Vec::new();
    let exe = std::env::current_exe().unwrap();
    for (round, delay_ms) in [150u64, 400, 90, 650, 230].into_iter().enumerate() {
        let mut child = std::process::Command::new(&exe)
            .args([
                "crash_child_records_until_killed",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_JOURNAL, &journal_path)
            .env(CHILD_CENTRE, centre.address.to_string())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for line in BufReader::new(stdout).lines() {
                match line {
                    Ok(line) => lines.push(line),
                    Err(_) => break,
                }
            }
            lines
        });
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().unwrap(); // SIGKILL: no destructor, no flush, wherever it was.
        child.wait().unwrap();
        let lines = reader.join().unwrap();
        let round_acks: Vec<(String, bool)> = lines
            .iter()
            .filter_map(|line| line.strip_prefix("ACK "))
            .map(|rest| {
                let (payment, positive) = rest.split_once(' ').unwrap();
                (payment.to_owned(), positive == "true")
            })
            .collect();
        assert!(
            !round_acks.is_empty(),
            "round {round}: the child acknowledged nothing"
        );
        acknowledged.extend(round_acks);
    }

    // After the last crash, the acquirer restarts and remits what is pending.
    let mut journal = Journal::open(&journal_path).unwrap();
    remit_pending(
        &mut journal,
        &centre.address,
        &options(),
        NOW.plus_millis(1 << 30),
    )
    .unwrap();

    // No acknowledged transaction is lost, and each keeps the answer it was given.
    for (payment, positive) in &acknowledged {
        let g = journal
            .acknowledgement_for(&PaymentId::from(payment.clone()))
            .unwrap();
        assert_eq!(
            g.map(|g| g.verdict.is_positive()),
            Some(*positive),
            "{payment}"
        );
    }
    // Every batch is acknowledged, its file verifies, and its rows are exactly its
    // records; no authorised transaction is left outside a batch but the uncut ones.
    let all = entries(&journal);
    let batches = journal.batches().unwrap();
    assert!(!batches.is_empty());
    let mut remitted_total = 0u64;
    for batch in &batches {
        assert_eq!(
            batch.state,
            BatchState::Acknowledged,
            "batch {}",
            batch.number
        );
        let mut payments = Vec::new();
        let verified = read_batch(&batch_bytes(&journal, batch.number)[..], |record| {
            payments.push(record.payment.0.clone())
        })
        .unwrap();
        assert_eq!(verified.trailer.checksum, batch.checksum);
        let rows: Vec<String> = all
            .iter()
            .filter(|entry| entry.batch == Some(batch.number))
            .map(|entry| entry.payment.0.to_string())
            .collect();
        assert_eq!(payments, rows, "batch {}", batch.number);
        remitted_total += batch
            .totals
            .iter()
            .map(|total| total.total_minor)
            .sum::<u64>();
    }
    for entry in &all {
        let expected_state = match (entry.authorisation_code.is_some(), entry.batch) {
            (false, None) => TransactionState::Refused,
            (true, None) => TransactionState::Authorised,
            (true, Some(_)) => TransactionState::AcknowledgedByCentre,
            (false, Some(_)) => panic!("{entry:?}"),
        };
        assert_eq!(entry.state, expected_state, "{entry:?}");
    }
    // The centre holds each batch once, with the journal's totals.
    let store = Centre::open(dir.file("centre.sqlite")).unwrap();
    let accepted = store.batches().unwrap();
    assert_eq!(
        accepted
            .iter()
            .map(|b| (b.number, b.checksum.clone()))
            .collect::<Vec<_>>(),
        batches
            .iter()
            .map(|b| (b.number, hex::encode(b.checksum)))
            .collect::<Vec<_>>()
    );
    let centre_total: u64 = store
        .totals()
        .unwrap()
        .iter()
        .map(|total| total.total_minor)
        .sum();
    assert_eq!(centre_total, remitted_total);
}

#[test]
fn the_documented_example_batch_reads_as_documented() {
    let doc = include_str!("../docs/telecollection.md");
    let start = doc.find("```text\nH format=telepay-batch").unwrap() + "```text\n".len();
    let example = &doc[start..start + doc[start..].find("```").unwrap()];
    let mut records = Vec::new();
    let batch = read_batch(example.as_bytes(), |record| records.push(record.clone())).unwrap();
    assert_eq!(
        (
            batch.header.acquirer.0.as_str(),
            batch.header.number,
            batch.header.cut_off_at
        ),
        ("ACQ-1", 7, NOW)
    );
    let payments: Vec<&str> = records
        .iter()
        .map(|record| record.payment.0.as_str())
        .collect();
    assert_eq!(payments, ["PAY-0001", "PAY 0002/é"]);
    assert_eq!(
        hex::encode(batch.trailer.checksum),
        "9a2f77779ca413c206952ae34b9d6b370c98e30a0f13362c07b4b8e716f8bcfe"
    );
}

/// The centre unreachable at the cut-off: the batch is cut and kept (sent, not
/// acknowledged), the round reports the failure; once the centre answers, the next
/// round sends it — and the centre counts it once.
#[test]
fn a_batch_cut_while_the_centre_is_unreachable_is_kept_and_sent_later_once() {
    let dir = TempDir::new("centre-unreachable");
    let mut journal = Journal::open(dir.file("journal.sqlite")).unwrap();
    record(&mut journal, "PAY-1", 1, 1250, true);
    record(&mut journal, "PAY-2", 2, 2500, true);
    let schedule: CutoffSchedule = "daily:22:30".parse().unwrap();
    let due = NOW.plus_millis(30 * 60_000);
    // An address nothing listens on.
    let vacant = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere: CentreAddress = format!("tcp:{}", vacant.local_addr().unwrap())
        .parse()
        .unwrap();
    drop(vacant);

    let failed = telecollect(&mut journal, &schedule, &nowhere, &options(), due);
    assert!(failed.is_err(), "{failed:?}");
    let kept = journal.unacknowledged_batches().unwrap();
    assert_eq!(
        kept.iter()
            .map(|batch| (batch.number, batch.records))
            .collect::<Vec<_>>(),
        [(1, 2)]
    );

    // The centre is back: the next round cuts nothing new and sends batch 1.
    let store = dir.file("centre.sqlite");
    let centre = RunningCentre::start(&loopback(), &store);
    let later = due.plus_millis(60_000);
    let report = telecollect(&mut journal, &schedule, &centre.address, &options(), later).unwrap();
    assert_eq!(report.cut.map(|batch| batch.number), None);
    assert_eq!(report.remitted.len(), 1);
    assert_eq!(accepted(&report.remitted[0].answer), (1, false));
    assert!(journal.unacknowledged_batches().unwrap().is_empty());
    // Another round sends nothing; the centre holds the batch once.
    let again = telecollect(&mut journal, &schedule, &centre.address, &options(), later).unwrap();
    assert!(again.remitted.is_empty());
    let batches = Centre::open(&store).unwrap().batches().unwrap();
    assert_eq!(
        batches
            .iter()
            .map(|batch| (batch.number, batch.records, batch.duplicates))
            .collect::<Vec<_>>(),
        [(1, 2, 0)]
    );
}

/// The centre over HTTPS with mutual TLS (`telepay serve telecollection`): a card
/// acquirer's batch, streamed, is accepted, and sent again counted once; an acquirer
/// certificate the centre was not told speaks for this acquirer is refused with the
/// reason; a terminal's certificate does not get past the handshake.
#[test]
fn the_centre_over_mutual_tls_takes_batches_only_from_the_acquirer_they_belong_to() {
    use telepay::net::centre::HttpsCentre;
    use telepay::net::config::ServiceConfig;
    use telepay::net::pki::{self, InitOptions, PeerName, ServiceRole};
    use telepay::net::service::Service;
    use telepay::net::tls::TlsIdentity;
    use telepay::telecollection::remittance::remit_batch_to;

    let dir = TempDir::new("centre-https");
    let pki_dir = dir.file("pki");
    pki::init(&pki_dir, &pki::demo_peers(), &InitOptions::default()).unwrap();
    let config_path = dir.file("centre.toml");
    std::fs::write(
        &config_path,
        "listen = \"127.0.0.1:0\"\n[tls]\ncert = \"pki/centre.telecollection.telepay.pem\"\n\
         key = \"pki/centre.telecollection.telepay-key.pem\"\nca = \"pki/ca.pem\"\n\
         accept = [\"role:acquirer-card\"]\n\n\
         [[speaker]]\npeer = \"acq1.acquirer-card.telepay\"\nparty = \"acquirer:ACQ-1\"\n\n\
         [telecollection]\nstore = \"centre.sqlite\"\n",
    )
    .unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let config = ServiceConfig::load(&config_path).unwrap();
    let service = runtime
        .block_on(Service::start(
            ServiceRole::Telecollection,
            &config,
            &config_path,
        ))
        .unwrap();
    let address = service.local_address().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = runtime.spawn(service.run(async {
        let _ = stopped.await;
    }));

    let mut journal = Journal::open(dir.file("journal.sqlite")).unwrap();
    record(&mut journal, "PAY-1", 1, 1250, true);
    record(&mut journal, "PAY-2", 2, 2500, true);
    journal.cut_off(NOW).unwrap().unwrap();
    let centre_as = |instance: &str, role: ServiceRole| {
        let me = PeerName::new(role, instance).unwrap();
        let identity = TlsIdentity::load(
            &me.cert_path(&pki_dir),
            &me.key_path(&pki_dir),
            &pki_dir.join("ca.pem"),
        )
        .unwrap();
        HttpsCentre::new(
            &identity,
            PeerName::from_dns_name("centre.telecollection.telepay").unwrap(),
            address,
            dir.file("spool"),
            Duration::from_secs(10),
        )
        .unwrap()
    };

    // acq2 is a card acquirer, but not one the centre knows speaks for this acquirer.
    let refused = remit_batch_to(
        &mut journal,
        1,
        &centre_as("acq2", ServiceRole::CardAcquirer),
        NOW,
    )
    .unwrap();
    assert!(
        matches!(&refused, CentreAnswer::Refused { reason, .. }
            if reason.contains("acq2.acquirer-card.telepay may not remit for acquirer:ACQ-1")),
        "{refused:?}"
    );
    // A terminal's certificate: refused in the handshake.
    let terminal = remit_batch_to(
        &mut journal,
        1,
        &centre_as("t1", ServiceRole::Terminal),
        NOW,
    );
    assert!(terminal.is_err(), "{terminal:?}");
    // acq1: accepted, then counted once when it comes again.
    let acq1 = centre_as("acq1", ServiceRole::CardAcquirer);
    let accepted_answer = remit_batch_to(&mut journal, 1, &acq1, NOW).unwrap();
    assert_eq!(accepted(&accepted_answer), (1, false));
    assert!(journal.unacknowledged_batches().unwrap().is_empty());
    let bytes = batch_bytes(&journal, 1);
    let again = telepay::telecollection::remittance::CentreSink::send(
        &acq1,
        bytes.len() as u64,
        &mut |out| {
            out.write_all(&bytes).map_err(|source| {
                telepay::telecollection::server::RemitError::Send {
                    address: "test".into(),
                    source,
                }
            })
        },
    )
    .unwrap();
    assert_eq!(accepted(&again), (1, true));

    let _ = stop.send(());
    runtime.block_on(served).unwrap().unwrap();
    let batches = Centre::open(dir.file("centre.sqlite"))
        .unwrap()
        .batches()
        .unwrap();
    assert_eq!(
        batches
            .iter()
            .map(|batch| (batch.number, batch.records, batch.duplicates))
            .collect::<Vec<_>>(),
        [(1, 2, 1)]
    );
    // Nothing left in the spools.
    assert_eq!(std::fs::read_dir(dir.file("spool")).unwrap().count(), 0);
    assert_eq!(
        std::fs::read_dir(dir.file("centre.spool")).unwrap().count(),
        0
    );
}
