//! Crash safety of the bank-card acquirer over thousands of real purchases (issue 8):
//! "a process killed (SIGKILL) at any point of authorization, batching or remittance
//! loses no acknowledged transaction and remits none twice after restart".
//!
//! The acquirer side runs in a child process — this test binary again, selecting the
//! ignored [`crash_purchases_child`] — with every party of the embedded purchase (A–K,
//! the software bank card `sim:cb` with a persistent state file, the SQLite journal),
//! on files in one temporary directory. It buys, cuts batches off on an
//! `every:1` schedule driven by a virtual clock, and remits them to a real
//! telecollection centre that this process serves on 127.0.0.1 (through a transparent
//! relay that can hold back the centre's answer). After each purchase whose G was
//! positive — hence already durable in the journal — the child writes the payment, its
//! amount and currency on standard output, flushed: those lines are the
//! acknowledgements given. Before and after each phase it writes a marker, so the
//! parent knows where each kill landed.
//!
//! The parent kills the child with SIGKILL at least [`MIN_KILLS`] times, at points
//! drawn from a seeded generator (a delay after start, the n-th purchase, cut-off or
//! remittance plus a few microseconds, or the moment the centre has accepted a batch
//! and the acquirer has not heard it yet), until [`MIN_ACKNOWLEDGED`] purchases were
//! acknowledged. A last run cuts off and remits everything pending. Then the journal,
//! the batch files and the centre's store must agree with the acknowledgements to the
//! transaction and to the cent.

mod common;
use common::TempDir;

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use telepay::acquirer::batch::read_batch;
use telepay::acquirer::journal::{
    BatchState, Journal, JournalEntry, JournalError, TransactionFilter, TransactionState,
};
use telepay::acquirer::schedule::CutoffSchedule;
use telepay::frontend::SeededEntropy;
use telepay::messages::{Message, PostalAddress, ServiceId, Timestamp};
use telepay::provider::{Catalogue, ServiceServer};
use telepay::purchase::embedded::{ACQUIRER, Embedded, test_rules};
use telepay::purchase::{Clock, Faults, render};
use telepay::reader::{Reader, Transport};
use telepay::telecollection::centre::{Centre, CentreAnswer};
use telepay::telecollection::remittance::{cut_off_due, remit_pending};
use telepay::telecollection::server::{CentreAddress, CentreServer, ClientOptions, ServerOptions};
use telepay::terminal::card_module::{CardModule, TerminalData};
use telepay::terminal::payer::ScriptedUser;
use telepay::testing::powered;

/// At least this many SIGKILLs.
const MIN_KILLS: usize = 60;
/// At least this many purchases acknowledged over all the runs.
const MIN_ACKNOWLEDGED: usize = 3_000;
/// A bound on the runs, so that a child that stops making progress fails the test
/// instead of looping.
const MAX_RUNS: u64 = 400;
/// The parent's generator seed; `TELEPAY_CRASH_SEED` replaces it to explore others.
const DEFAULT_SEED: u64 = 0x7E1E_9A75_C0DE_2026;

const ENV_DIR: &str = "TELEPAY_CRASH_PURCHASES_DIR";
const ENV_CENTRE: &str = "TELEPAY_CRASH_PURCHASES_CENTRE";
const ENV_START: &str = "TELEPAY_CRASH_PURCHASES_START";
const ENV_MODE: &str = "TELEPAY_CRASH_PURCHASES_MODE";
const CHILD_TEST: &str = "crash_purchases_child";

const JOURNAL_FILE: &str = "journal.sqlite";
const CARD_STATE_FILE: &str = "card.state";
const CENTRE_STORE: &str = "centre.sqlite";

/// 2026-11-25 10:30:00 UTC: the virtual time of the first run.
const START: Timestamp = Timestamp(1_795_602_600_000);
/// Each run's virtual clock starts one day after the previous run's, so the journal's
/// times only go forward across restarts (a run stays far below a virtual day).
const DAY_MS: i64 = 86_400_000;
/// The virtual time between two purchases, drawn in this range: with the `every:1`
/// schedule, a batch every six purchases or so, of varied sizes.
const GAP_MS: (u64, u64) = (1_000, 20_000);

/// The test's catalogue: one item per flow of Fig. 6 / 7 and three currencies, so that
/// the centre's totals are checked per currency.
const CATALOGUE: &str = r#"
provider = "crash-test-publisher"

[[item]]
id = "report-eur"
designation = "Quarterly market report"
kind = "document"
price = "2.50"
currency = "EUR"
validity_seconds = 300
content = "Quarterly market report: the figures."

[[item]]
id = "replay-eur"
designation = "Match replay (pay-per-view)"
kind = "pay-per-view"
price = "3.90"
currency = "EUR"
validity_seconds = 120
content = "Viewing ticket for one replay."

[[item]]
id = "bulletin-usd"
designation = "Harbour weather bulletin"
kind = "pay-per-view"
price = "0.75"
currency = "USD"
validity_seconds = 60
deliver_with_quote = true
content = "Wind west 4, sea slight."

[[item]]
id = "guide-gbp"
designation = "Printed walking guide"
kind = "physical-good"
price = "12.40"
currency = "GBP"
validity_seconds = 900
"#;

/// The services the child buys, in turn at random.
const SERVICES: [&str; 4] = ["report-eur", "replay-eur", "bulletin-usd", "guide-gbp"];

fn client_options() -> ClientOptions {
    ClientOptions {
        timeout: Duration::from_secs(20),
    }
}

/// A small xorshift generator: the aims of the kills are random but reproducible (where
/// each lands also depends on timing, which the test records).
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> XorShift {
        // Zero is xorshift's fixed point.
        XorShift(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in `low..=high` (the modulo bias is irrelevant here).
    fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low + 1)
    }
}

/// The phases the child marks on its output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Phase {
    /// One purchase A–K: the card's dialogue, F, the journal's record, G, H... K.
    Purchase,
    /// `Journal::cut_off`.
    CutOff,
    /// `remit_pending`: mark sent, stream, the centre's answer, mark acknowledged.
    Remit,
}

impl Phase {
    const ALL: [Phase; 3] = [Phase::Purchase, Phase::CutOff, Phase::Remit];

    fn name(self) -> &'static str {
        match self {
            Phase::Purchase => "purchase",
            Phase::CutOff => "cut-off",
            Phase::Remit => "remit",
        }
    }

    fn from_name(name: &str) -> Option<Phase> {
        Phase::ALL.into_iter().find(|phase| phase.name() == name)
    }
}

// ---------------------------------------------------------------------------------
// The child: the acquirer's side, until it is killed.
// ---------------------------------------------------------------------------------

/// The child's standard output: one line per event, flushed at once, so that what the
/// parent reads after the kill is everything the child did up to it.
struct Out(std::io::StdoutLock<'static>);

impl Out {
    fn line(&mut self, line: std::fmt::Arguments<'_>) {
        if writeln!(self.0, "{line}")
            .and_then(|()| self.0.flush())
            .is_err()
        {
            // The parent is gone: nothing left to tell.
            std::process::exit(3);
        }
    }

    /// Reports a failure on the line the parent reads, then fails.
    fn fail(&mut self, what: std::fmt::Arguments<'_>) -> ! {
        let text = what.to_string().replace('\n', " | ");
        self.line(format_args!("FAILED {text}"));
        panic!("{what}");
    }

    fn begin(&mut self, phase: Phase) {
        self.line(format_args!("BEGIN {}", phase.name()));
    }

    fn end(&mut self, phase: Phase) {
        self.line(format_args!("END {}", phase.name()));
    }
}

/// A result the child cannot go on without.
trait OrFail<T> {
    fn or_fail(self, out: &mut Out, what: &str) -> T;
}

impl<T, E: std::fmt::Display> OrFail<T> for Result<T, E> {
    fn or_fail(self, out: &mut Out, what: &str) -> T {
        match self {
            Ok(value) => value,
            Err(error) => out.fail(format_args!("{what}: {error}")),
        }
    }
}

/// A virtual clock shared by every purchase of a run: 10 ms per reading, and moved
/// forward between purchases by the child.
#[derive(Clone)]
struct SharedClock(std::rc::Rc<std::cell::Cell<Timestamp>>);

impl SharedClock {
    fn advance(&self, millis: u64) {
        let now = self.0.get();
        self.0
            .set(now.plus_millis(i64::try_from(millis).unwrap_or(i64::MAX)));
    }
}

impl Clock for SharedClock {
    fn now(&mut self) -> Timestamp {
        let now = self.0.get();
        self.0.set(now.plus_millis(10));
        now
    }

    fn wait_until(&mut self, deadline: Timestamp) {
        self.0.set(self.0.get().max(deadline));
    }
}

type Network = Embedded<SeededEntropy, Transport<Box<dyn Reader + Send>>, ScriptedUser>;

/// Run by the crash test in a child process; does nothing when run on its own.
#[test]
#[ignore = "run as a child process by the purchase crash test"]
fn crash_purchases_child() {
    let (Ok(dir), Ok(centre), Ok(start), Ok(mode)) = (
        std::env::var(ENV_DIR),
        std::env::var(ENV_CENTRE),
        std::env::var(ENV_START),
        std::env::var(ENV_MODE),
    ) else {
        return;
    };
    let mut out = Out(std::io::stdout().lock());
    // The test harness has written `test crash_purchases_child ... ` without a line
    // end: end its line, so that every event is a line of its own.
    out.line(format_args!(""));
    let dir = PathBuf::from(dir);
    let centre: CentreAddress = centre.parse().or_fail(&mut out, "centre address");
    let start: u64 = start.parse().or_fail(&mut out, "start number");
    let base = START.plus_millis(DAY_MS.saturating_mul(i64::try_from(start).unwrap_or(i64::MAX)));
    let clock = SharedClock(std::rc::Rc::new(std::cell::Cell::new(base)));
    let journal = Journal::open(dir.join(JOURNAL_FILE)).or_fail(&mut out, "opening the journal");
    if mode == "drain" {
        drain(journal, &centre, clock, &mut out);
    } else {
        purchase_until_killed(journal, &dir, &centre, start, base, clock, &mut out);
    }
}

/// The last run: cuts off what is authorised, whatever the schedule, and remits every
/// batch the centre has not acknowledged.
fn drain(mut journal: Journal, centre: &CentreAddress, mut clock: SharedClock, out: &mut Out) {
    let now = clock.now();
    out.begin(Phase::CutOff);
    if let Some(batch) = journal.cut_off(now).or_fail(out, "the last cut-off") {
        out.line(format_args!("CUT {} {}", batch.number, batch.records));
    }
    out.end(Phase::CutOff);
    remit(&mut journal, centre, now, out);
    out.line(format_args!("DRAINED"));
}

/// The acquirer's life between two crashes: recovery (remit what is pending), then
/// purchase → cut-off when due → remittance, forever.
fn purchase_until_killed(
    journal: Journal,
    dir: &Path,
    centre: &CentreAddress,
    start: u64,
    base: Timestamp,
    mut clock: SharedClock,
    out: &mut Out,
) -> ! {
    // The card's counters (ATC, PIN tries) live in a file, as in a real card's EEPROM:
    // a restarted terminal meets the same card, whose ATC never goes back.
    let card_uri = format!(
        "sim:cb?state={}&seed={}",
        dir.join(CARD_STATE_FILE).display(),
        start + 1
    );
    let card = CardModule::new(
        powered(&card_uri).or_fail(out, "powering the card"),
        TerminalData::france(),
    );
    let catalogue = Catalogue::from_toml_str(CATALOGUE, dir).or_fail(out, "the catalogue");
    let mut network: Network = Embedded::new(
        ServiceServer::new(catalogue),
        test_rules().or_fail(out, "the banking rules"),
        journal,
        card,
        ScriptedUser::with_pin("1234"),
        SeededEntropy::new(start + 1),
        // A prefix of its own per run: the journal outlives the front-end's counter.
        format!("S{start:04}"),
    );
    let schedule: CutoffSchedule = "every:1".parse().or_fail(out, "the schedule");
    let address = PostalAddress {
        name: "A. Martin".into(),
        lines: vec!["1 rue de la Paix".into()],
        postcode: "75002".into(),
        town: "Paris".into(),
        country: "FR".into(),
    };
    let mut rng = XorShift::new(start.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5EED);

    // What a crash left (a batch cut off but not sent, sent but not acknowledged) goes
    // first.
    let now = clock.now();
    remit(network.acquirer.journal_mut(), centre, now, out);
    loop {
        let service = SERVICES[usize::try_from(rng.between(0, 3)).unwrap_or(0)];
        let delivery = (service == "guide-gbp").then(|| address.clone());
        out.begin(Phase::Purchase);
        let run = network
            .purchase(
                &ServiceId::from(service),
                delivery,
                clock.clone(),
                Faults::none(),
            )
            .or_fail(out, "the purchase loop");
        report_acknowledgements(&run.log, out);
        if !run.delivered() {
            out.fail(format_args!(
                "{service} was not delivered:\n{}",
                render::text(&run.log)
            ));
        }
        out.end(Phase::Purchase);
        clock.advance(rng.between(GAP_MS.0, GAP_MS.1));
        if clock.0.get() >= base.plus_millis(DAY_MS) {
            out.fail(format_args!(
                "run {start} reached the next run's virtual day"
            ));
        }
        pause(&mut rng);

        let now = clock.now();
        let journal = network.acquirer.journal_mut();
        if cut_off_due(journal, &schedule, now).or_fail(out, "the schedule") {
            out.begin(Phase::CutOff);
            if let Some(batch) = journal.cut_off(now).or_fail(out, "the cut-off") {
                out.line(format_args!("CUT {} {}", batch.number, batch.records));
            }
            out.end(Phase::CutOff);
            pause(&mut rng);
        }
        remit(journal, centre, now, out);
    }
}

/// Writes `ACK payment minor currency` for each positive G of the purchase (`NAK
/// payment` for a negative one, `REVERSED payment` for a reversal): G leaves the
/// acquirer only once the journal has it on disk.
fn report_acknowledgements(log: &telepay::purchase::PurchaseLog, out: &mut Out) {
    for entry in &log.entries {
        match &entry.envelope.message {
            Message::Acknowledgement(g) => {
                let Some(f) = log
                    .entries
                    .iter()
                    .find_map(|entry| match &entry.envelope.message {
                        Message::AcquirerTransaction(f) if f.transaction.payment == g.payment => {
                            Some(f)
                        }
                        _ => None,
                    })
                else {
                    out.fail(format_args!("G for {} without its F", g.payment));
                };
                if g.verdict.is_positive() {
                    let amount = f.request.amount;
                    out.line(format_args!(
                        "ACK {} {} {}",
                        g.payment, amount.minor, amount.currency.numeric
                    ));
                } else {
                    out.line(format_args!("NAK {}", g.payment));
                }
            }
            Message::Reversal(reversal) => {
                out.line(format_args!("REVERSED {}", reversal.payment));
            }
            _ => {}
        }
    }
}

/// Sends every batch not yet acknowledged, when there is one; each must be accepted.
fn remit(journal: &mut Journal, centre: &CentreAddress, now: Timestamp, out: &mut Out) {
    let pending = journal
        .unacknowledged_batches()
        .or_fail(out, "listing the batches");
    if pending.is_empty() {
        return;
    }
    out.begin(Phase::Remit);
    let remitted =
        remit_pending(journal, centre, &client_options(), now).or_fail(out, "the remittance");
    for remittance in remitted {
        match remittance.answer {
            CentreAnswer::Accepted(acceptance) => out.line(format_args!(
                "REMITTED {} {}",
                acceptance.batch, acceptance.duplicate
            )),
            other => out.fail(format_args!(
                "batch {} not accepted: {other:?}",
                remittance.batch
            )),
        }
    }
    out.end(Phase::Remit);
}

/// Sometimes waits a little between phases, so that kills also land between them
/// (a batch cut off and not yet sent; a purchase done and no cut-off yet).
fn pause(rng: &mut XorShift) {
    if rng.between(0, 3) == 0 {
        std::thread::sleep(Duration::from_micros(rng.between(0, 2_000)));
    }
}

// ---------------------------------------------------------------------------------
// The parent: the centre, the relay, the kills and the reckoning.
// ---------------------------------------------------------------------------------

/// The telecollection centre on 127.0.0.1 (ephemeral port), stopped on drop.
struct RunningCentre {
    address: SocketAddr,
    shutdown: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RunningCentre {
    fn start(store: &Path) -> RunningCentre {
        let options = ServerOptions {
            io_timeout: Duration::from_secs(20),
            poll_interval: Duration::from_millis(1),
            max_batch_bytes: 1 << 20,
            ..ServerOptions::default()
        };
        let listen: CentreAddress = "tcp:127.0.0.1:0".parse().unwrap();
        let server = CentreServer::bind(&listen, Centre::open(store).unwrap(), options).unwrap();
        let CentreAddress::Tcp(address) = server.local_address().clone() else {
            panic!("a TCP centre has a TCP address")
        };
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

/// What a run reports to the parent while it waits for the point to kill at.
enum Event {
    /// A line of the child's output.
    Line(String),
    /// The child's output ended.
    End,
    /// The relay holds the centre's answer to a batch the centre has just accepted.
    AnswerHeld(String),
}

/// The relay's instruction for the current run: hold the `nth` answer.
struct Arming {
    countdown: u64,
    events: Sender<Event>,
}

/// What the relay's threads share.
#[derive(Default)]
struct RelayState {
    /// One per run armed: connections accepted before the last arming belong to an
    /// earlier child (a killed child's last batch may still be answered), never held.
    generation: u64,
    arming: Option<Arming>,
}

/// A transparent TCP relay between the child and the centre. Armed, it holds back the
/// n-th answer of the centre and tells the parent, which then kills the child: the
/// centre has accepted the batch, and the acquirer never hears it.
struct Relay {
    address: SocketAddr,
    stop: Arc<AtomicBool>,
    state: Arc<Mutex<RelayState>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Relay {
    fn start(centre: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let state = Arc::new(Mutex::new(RelayState::default()));
        let (stop_flag, shared) = (Arc::clone(&stop), Arc::clone(&state));
        let thread = std::thread::spawn(move || {
            for client in listener.incoming() {
                if stop_flag.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(client) = client else { continue };
                let generation = shared.lock().unwrap().generation;
                let shared = Arc::clone(&shared);
                std::thread::spawn(move || relay_connection(client, centre, generation, &shared));
            }
        });
        Relay {
            address,
            stop,
            state,
            thread: Some(thread),
        }
    }

    fn arm(&self, nth: u64, events: Sender<Event>) {
        let mut state = self.state.lock().unwrap();
        state.generation += 1;
        state.arming = Some(Arming {
            countdown: nth,
            events,
        });
    }

    fn disarm(&self) {
        self.state.lock().unwrap().arming = None;
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the accepting thread up so that it sees the flag.
        let _ = TcpStream::connect(self.address);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn relay_connection(
    client: TcpStream,
    centre: SocketAddr,
    generation: u64,
    state: &Mutex<RelayState>,
) {
    let Ok(upstream) = TcpStream::connect(centre) else {
        return;
    };
    let _ = (client.set_nodelay(true), upstream.set_nodelay(true));
    let (Ok(mut from_client), Ok(mut to_centre)) = (client.try_clone(), upstream.try_clone())
    else {
        return;
    };
    // The batches go through untouched.
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from_client, &mut to_centre);
        let _ = to_centre.shutdown(Shutdown::Write);
    });
    // The answers, one JSON line each.
    let mut answers = BufReader::new(upstream);
    let mut to_client = client;
    loop {
        let mut answer = Vec::new();
        match answers.read_until(b'\n', &mut answer) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let held = {
            let mut state = state.lock().unwrap();
            let current = state.generation == generation;
            match state.arming.as_mut() {
                Some(armed) if current && armed.countdown <= 1 => state.arming.take(),
                Some(armed) if current => {
                    armed.countdown -= 1;
                    None
                }
                _ => None,
            }
        };
        if let Some(arming) = held {
            // Not forwarded: the child waits for it until it is killed.
            let text = String::from_utf8_lossy(&answer).trim_end().to_owned();
            let _ = arming.events.send(Event::AnswerHeld(text));
            return;
        }
        if to_client.write_all(&answer).is_err() {
            break;
        }
    }
    let _ = to_client.shutdown(Shutdown::Both);
}

/// Where the parent aims a kill.
#[derive(Debug, Clone, Copy)]
enum Aim {
    /// This long after the child was started, wherever it is.
    AfterStart(Duration),
    /// This long after the child wrote the `nth` marker `at` (`BEGIN` of a phase for
    /// [`Landing::Inside`], `END` for [`Landing::After`]).
    AtMarker {
        at: Landing,
        nth: u64,
        then: Duration,
    },
    /// When the centre has accepted the `nth` batch sent and its answer is held.
    AnswerHeld { nth: u64 },
}

impl Aim {
    fn kind(&self) -> String {
        match self {
            Aim::AfterStart(_) => "after start".into(),
            Aim::AtMarker { at, .. } => format!("{at:?}"),
            Aim::AnswerHeld { .. } => "answer held".into(),
        }
    }

    /// The aims in turn, each with random parameters: every kind of point is aimed at
    /// about as often. The delays after a marker are within the phase's usual length.
    fn draw(run: u64, rng: &mut XorShift) -> Aim {
        let mut at = |at, high_nth, high_micros| Aim::AtMarker {
            at,
            nth: rng.between(1, high_nth),
            then: Duration::from_micros(rng.between(0, high_micros)),
        };
        match run % 6 {
            0 => Aim::AfterStart(Duration::from_millis(rng.between(1, 300))),
            1 => at(Landing::Inside(Phase::Purchase), 100, 2_500),
            2 => at(Landing::Inside(Phase::CutOff), 15, 500),
            // A batch cut off and not yet sent.
            3 => at(Landing::After(Phase::CutOff), 15, 300),
            4 => at(Landing::Inside(Phase::Remit), 15, 4_000),
            _ => Aim::AnswerHeld {
                nth: rng.between(1, 15),
            },
        }
    }
}

/// Where a kill landed, by the child's last marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Landing {
    /// Before the first marker: starting, opening the journal and the card.
    Starting,
    /// Inside a phase.
    Inside(Phase),
    /// After a phase, before the next began.
    After(Phase),
}

impl Landing {
    /// The child's marker line that starts this stretch.
    fn marker(self) -> Option<String> {
        match self {
            Landing::Starting => None,
            Landing::Inside(phase) => Some(format!("BEGIN {}", phase.name())),
            Landing::After(phase) => Some(format!("END {}", phase.name())),
        }
    }
}

/// What the journal and the centre hold right after a kill, batch by batch.
#[derive(Debug, Default)]
struct Wreck {
    /// Batches cut off and not yet sent.
    open: Vec<u64>,
    /// Batches marked sent that the centre has not accepted (yet: the killed child's
    /// last bytes may still be on their way).
    in_transit: Vec<u64>,
    /// Batches the centre accepted and the journal does not know it.
    accepted_unacknowledged: Vec<u64>,
}

/// One run of the child and its kill.
struct Run {
    aim: Aim,
    landing: Landing,
    /// The batch whose acceptance the relay held back, for [`Aim::AnswerHeld`].
    held: Option<u64>,
    wreck: Wreck,
}

/// Everything the child said over all the runs.
#[derive(Default)]
struct Said {
    /// Payment → (amount in minor units, ISO 4217 numeric currency).
    acknowledged: BTreeMap<String, (u64, u16)>,
    refused: Vec<String>,
    reversed: Vec<String>,
    cuts: u64,
    /// Batch → how many duplicate acceptances the acquirer was told of.
    duplicates_heard: BTreeMap<u64, u64>,
    failures: Vec<String>,
}

impl Said {
    fn take(&mut self, lines: &[String]) {
        for line in lines {
            let mut words = line.split(' ');
            match (words.next(), words.next(), words.next(), words.next()) {
                (Some("ACK"), Some(payment), Some(minor), Some(currency)) => {
                    let amount = (minor.parse().unwrap(), currency.parse().unwrap());
                    let before = self.acknowledged.insert(payment.to_owned(), amount);
                    assert_eq!(before, None, "payment {payment} acknowledged twice");
                }
                (Some("NAK"), Some(payment), None, None) => self.refused.push(payment.to_owned()),
                (Some("REVERSED"), Some(payment), None, None) => {
                    self.reversed.push(payment.to_owned());
                }
                (Some("CUT"), Some(_), Some(_), None) => self.cuts += 1,
                (Some("REMITTED"), Some(batch), Some(duplicate), None) => {
                    let heard = self
                        .duplicates_heard
                        .entry(batch.parse().unwrap())
                        .or_default();
                    *heard += u64::from(duplicate == "true");
                }
                (Some("FAILED"), ..) => self.failures.push(line.clone()),
                _ => {}
            }
        }
    }
}

/// A child process, killed (SIGKILL) and reaped when dropped: a failing test leaves no
/// acquirer running.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The parent's side of the test.
struct Harness {
    // Dropped in this order: the relay, the centre, then their directory.
    relay: Relay,
    /// Serving until the harness is dropped.
    _centre: RunningCentre,
    dir: TempDir,
    exe: PathBuf,
    starts: u64,
}

impl Harness {
    fn spawn(&mut self, mode: &str, events: &Sender<Event>) -> Running {
        let start = self.starts;
        self.starts += 1;
        let stderr = std::fs::File::create(self.stderr_path(start)).unwrap();
        let mut child = Running(
            Command::new(&self.exe)
                .args([
                    CHILD_TEST,
                    "--exact",
                    "--ignored",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(ENV_DIR, &self.dir.0)
                .env(ENV_CENTRE, format!("tcp:{}", self.relay.address))
                .env(ENV_START, start.to_string())
                .env(ENV_MODE, mode)
                .stdout(Stdio::piped())
                .stderr(stderr)
                .spawn()
                .unwrap(),
        );
        let stdout = child.0.stdout.take().unwrap();
        let events = events.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                match line {
                    Ok(line) => {
                        if events.send(Event::Line(line)).is_err() {
                            return;
                        }
                    }
                    Err(_) => break,
                }
            }
            let _ = events.send(Event::End);
        });
        child
    }

    fn stderr_path(&self, start: u64) -> PathBuf {
        self.dir.0.join(format!("child-{start}.stderr"))
    }

    fn stderr_of(&self, start: u64) -> String {
        std::fs::read_to_string(self.stderr_path(start)).unwrap_or_default()
    }

    /// Starts the child, kills it where `aim` says, and returns its output, where the
    /// kill landed and the batch whose acceptance the relay held, if it held one.
    fn run_and_kill(&mut self, aim: Aim) -> (Vec<String>, Landing, Option<u64>) {
        let (events, received) = std::sync::mpsc::channel();
        if let Aim::AnswerHeld { nth } = aim {
            self.relay.arm(nth, events.clone());
        }
        let start = self.starts;
        let mut child = self.spawn("run", &events);
        drop(events);
        let started = Instant::now();
        let mut lines = Vec::new();
        let (marker, mut countdown, then) = match aim {
            Aim::AtMarker { at, nth, then } => (at.marker(), nth, then),
            _ => (None, 0, Duration::ZERO),
        };
        // A child that reaches no aimed point within this time is stuck.
        let give_up = started + Duration::from_secs(30);
        let mut held = None;
        loop {
            let wait = match aim {
                Aim::AfterStart(delay) => {
                    let at = started + delay;
                    if Instant::now() >= at {
                        break;
                    }
                    at
                }
                _ => give_up,
            };
            match next_event(&received, wait) {
                Some(Event::Line(line)) => {
                    let aimed = marker.as_ref() == Some(&line);
                    lines.push(line);
                    if aimed {
                        countdown -= 1;
                        if countdown == 0 {
                            std::thread::sleep(then);
                            break;
                        }
                    }
                }
                Some(Event::AnswerHeld(answer)) => {
                    held = Some(answer);
                    break;
                }
                Some(Event::End) => panic!(
                    "run {start} ended on its own before {aim:?}\n{}\n{}",
                    lines.join("\n"),
                    self.stderr_of(start)
                ),
                None if matches!(aim, Aim::AfterStart(_)) => {}
                None => panic!(
                    "run {start} did not reach {aim:?} in 30 s\n{}",
                    self.stderr_of(start)
                ),
            }
        }
        self.relay.disarm();
        assert!(
            child.0.try_wait().unwrap().is_none(),
            "run {start} exited on its own before {aim:?}\n{}",
            self.stderr_of(start)
        );
        child.0.kill().unwrap(); // SIGKILL: no destructor, no flush, wherever it is.
        let status = child.0.wait().unwrap();
        assert!(!status.success(), "run {start}: {status}");
        // What the child wrote before it died is still in the pipe.
        while let Some(event) = next_event(&received, Instant::now() + Duration::from_secs(20)) {
            match event {
                Event::Line(line) => lines.push(line),
                Event::End => break,
                Event::AnswerHeld(_) => {}
            }
        }
        let held = held.map(|answer| match serde_json::from_str(&answer) {
            Ok(CentreAnswer::Accepted(acceptance)) => acceptance.batch,
            _ => panic!("run {start}: the held answer {answer}"),
        });
        let landing = landing(&lines);
        (lines, landing, held)
    }

    /// The last run: cut off and remit everything; it must end by itself, successfully.
    fn drain(&mut self) -> Vec<String> {
        let (events, received) = std::sync::mpsc::channel();
        let start = self.starts;
        let mut child = self.spawn("drain", &events);
        drop(events);
        let mut lines = Vec::new();
        let give_up = Instant::now() + Duration::from_secs(60);
        loop {
            match next_event(&received, give_up) {
                Some(Event::Line(line)) => lines.push(line),
                Some(Event::End) => break,
                Some(Event::AnswerHeld(_)) => {}
                None => panic!(
                    "the draining run {start} did not finish in 60 s\n{}",
                    lines.join("\n")
                ),
            }
        }
        let status = child.0.wait().unwrap();
        assert!(
            status.success() && lines.iter().any(|line| line == "DRAINED"),
            "the draining run {start}: {status}\n{}\n{}",
            lines.join("\n"),
            self.stderr_of(start)
        );
        lines
    }

    /// The state of the batches right after a kill.
    fn wreck(&self) -> Wreck {
        let path = self.dir.0.join(JOURNAL_FILE);
        if !path.exists() {
            return Wreck::default();
        }
        let journal = Journal::open(&path).unwrap();
        let centre = Centre::open(self.dir.0.join(CENTRE_STORE)).unwrap();
        let at_centre: HashSet<(u64, String)> = centre
            .batches()
            .unwrap()
            .into_iter()
            .map(|batch| (batch.number, batch.checksum))
            .collect();
        let mut wreck = Wreck::default();
        for batch in journal.unacknowledged_batches().unwrap() {
            match batch.state {
                BatchState::Open => wreck.open.push(batch.number),
                BatchState::Sent
                    if at_centre.contains(&(batch.number, hex::encode(batch.checksum))) =>
                {
                    wreck.accepted_unacknowledged.push(batch.number);
                }
                BatchState::Sent => wreck.in_transit.push(batch.number),
                BatchState::Acknowledged => panic!("batch {} listed as pending", batch.number),
            }
        }
        // Only one batch is ever in flight: remittances go one at a time.
        assert!(
            wreck.in_transit.len() + wreck.accepted_unacknowledged.len() <= 1,
            "{wreck:?}"
        );
        wreck
    }
}

/// The next event, or `None` at `deadline` (or when no sender is left).
fn next_event(received: &Receiver<Event>, deadline: Instant) -> Option<Event> {
    received
        .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        .ok()
}

/// Where the kill landed: the child's last marker.
fn landing(lines: &[String]) -> Landing {
    lines
        .iter()
        .rev()
        .find_map(|line| {
            let (kind, name) = line.split_once(' ')?;
            let phase = Phase::from_name(name)?;
            match kind {
                "BEGIN" => Some(Landing::Inside(phase)),
                "END" => Some(Landing::After(phase)),
                _ => None,
            }
        })
        .unwrap_or(Landing::Starting)
}

/// The run and the purchase a payment identifier names: `S0012-000034-PAY` is the
/// 34th purchase of run 12 (the front-end's prefix and counter).
fn run_and_purchase(payment: &str) -> (usize, u64) {
    let parse = || {
        let (run, rest) = payment.strip_prefix('S')?.split_once('-')?;
        let purchase = rest.strip_suffix("-PAY")?;
        Some((run.parse().ok()?, purchase.parse().ok()?))
    };
    parse().unwrap_or_else(|| panic!("payment {payment}: not a payment of this test"))
}

fn journal_entries(journal: &Journal) -> Vec<JournalEntry> {
    let mut entries = Vec::new();
    journal
        .transactions(&TransactionFilter::default(), |entry| {
            entries.push(entry);
            Ok::<_, JournalError>(())
        })
        .unwrap();
    entries
}

#[test]
fn sigkill_during_purchases_loses_no_acknowledged_transaction_and_remits_none_twice() {
    let began = Instant::now();
    let seed = std::env::var("TELEPAY_CRASH_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or(DEFAULT_SEED);
    let mut rng = XorShift::new(seed);
    let dir = TempDir::new("crash-purchases");
    let centre = RunningCentre::start(&dir.0.join(CENTRE_STORE));
    let relay = Relay::start(centre.address);
    let mut harness = Harness {
        relay,
        _centre: centre,
        dir,
        exe: std::env::current_exe().unwrap(),
        starts: 0,
    };
    let mut said = Said::default();
    let mut runs: Vec<Run> = Vec::new();
    while runs.len() < MIN_KILLS || said.acknowledged.len() < MIN_ACKNOWLEDGED {
        let number = harness.starts;
        assert!(
            number < MAX_RUNS,
            "seed {seed}: {} acknowledged after {number} runs",
            said.acknowledged.len()
        );
        let aim = Aim::draw(number, &mut rng);
        let (lines, landing, held) = harness.run_and_kill(aim);
        said.take(&lines);
        assert!(said.failures.is_empty(), "seed {seed}: {:?}", said.failures);
        let wreck = harness.wreck();
        if let Aim::AnswerHeld { .. } = aim {
            // The child was remitting, the centre has the batch, and the journal still
            // has it `sent`.
            let held = held.expect("an armed relay held an answer");
            assert_eq!(
                (landing, &wreck.accepted_unacknowledged[..]),
                (Landing::Inside(Phase::Remit), &[held][..]),
                "run {number}: {wreck:?}"
            );
        }
        runs.push(Run {
            aim,
            landing,
            held,
            wreck,
        });
    }
    let drained = harness.drain();
    said.take(&drained);
    assert!(said.failures.is_empty(), "seed {seed}: {:?}", said.failures);

    let journal = Journal::open(harness.dir.0.join(JOURNAL_FILE)).unwrap();
    let centre = Centre::open(harness.dir.0.join(CENTRE_STORE)).unwrap();
    let entries = journal_entries(&journal);
    let batches = journal.batches().unwrap();
    let accepted = centre.batches().unwrap();

    // Nothing is left to remit, and nothing was refused or reversed: after any crash
    // the card's counter and the journal's agree (a replayed ATC would be refused).
    assert!(journal.unacknowledged_batches().unwrap().is_empty());
    assert!(
        said.refused.is_empty() && said.reversed.is_empty(),
        "refused {:?}, reversed {:?}",
        said.refused,
        said.reversed
    );
    for entry in &entries {
        assert_eq!(
            (entry.state, entry.batch.is_some()),
            (TransactionState::AcknowledgedByCentre, true),
            "{entry:?}"
        );
    }

    // Every acknowledged payment is in the journal with its amount, remitted and
    // acknowledged by the centre.
    let by_payment: BTreeMap<&str, &JournalEntry> = entries
        .iter()
        .map(|entry| (entry.payment.0.as_str(), entry))
        .collect();
    for (payment, &(minor, currency)) in &said.acknowledged {
        let Some(entry) = by_payment.get(payment.as_str()) else {
            panic!("acknowledged payment {payment} is not in the journal")
        };
        assert_eq!(
            (entry.amount_minor, entry.currency),
            (Some(minor), currency),
            "{payment}"
        );
    }

    // The journal's batches are the centre's, one for one: same numbers, contents,
    // counts and totals; each acknowledged.
    assert_eq!(
        batches
            .iter()
            .map(|batch| (
                batch.number,
                hex::encode(batch.checksum),
                batch.records,
                batch.totals.clone()
            ))
            .collect::<Vec<_>>(),
        accepted
            .iter()
            .map(|batch| (
                batch.number,
                batch.checksum.clone(),
                batch.records,
                batch.totals.clone()
            ))
            .collect::<Vec<_>>()
    );
    assert!(accepted.iter().all(|batch| batch.acquirer.0 == ACQUIRER));
    assert!(
        batches
            .iter()
            .all(|batch| batch.state == BatchState::Acknowledged)
    );

    // Read back, the batch files verify, hold exactly the journal's rows of that batch,
    // and no payment — nor any card cryptogram (PAN, ATC) — is in two of them.
    let mut remitted: BTreeMap<String, u64> = BTreeMap::new();
    let mut cryptograms: HashSet<(String, u16)> = HashSet::new();
    for batch in &batches {
        let mut bytes = Vec::new();
        journal.write_batch(batch.number, &mut bytes).unwrap();
        let mut payments = Vec::new();
        let verified = read_batch(&bytes[..], |record| {
            payments.push(record.payment.0.to_string());
            assert!(
                cryptograms.insert((record.pan.clone(), record.atc)),
                "ATC {} remitted twice",
                record.atc
            );
        })
        .unwrap();
        assert_eq!(verified.trailer.checksum, batch.checksum);
        let rows: Vec<&str> = entries
            .iter()
            .filter(|entry| entry.batch == Some(batch.number))
            .map(|entry| entry.payment.0.as_str())
            .collect();
        assert_eq!(payments, rows, "batch {}", batch.number);
        for payment in payments {
            if let Some(first) = remitted.insert(payment.clone(), batch.number) {
                panic!(
                    "payment {payment} is in batches {first} and {}",
                    batch.number
                );
            }
        }
    }
    for payment in said.acknowledged.keys() {
        assert!(
            remitted.contains_key(payment),
            "acknowledged {payment} not remitted"
        );
    }
    // Remitted but never acknowledged: G recorded, then the kill before it was given.
    // That can only be the last purchase of a run killed inside a purchase: the one
    // after its last acknowledged.
    let mut unacknowledged = BTreeMap::<usize, u64>::new();
    for payment in remitted.keys() {
        if said.acknowledged.contains_key(payment) {
            continue;
        }
        let (run, purchase) = run_and_purchase(payment);
        let acknowledged_in_run = said
            .acknowledged
            .keys()
            .filter(|acknowledged| run_and_purchase(acknowledged).0 == run)
            .count() as u64;
        assert_eq!(
            (runs[run].landing, purchase),
            (Landing::Inside(Phase::Purchase), acknowledged_in_run + 1),
            "{payment} was recorded and not acknowledged"
        );
        assert_eq!(unacknowledged.insert(run, purchase), None, "{payment}");
    }
    let unacknowledged = unacknowledged.len();

    // The centre's totals, per currency, are the journal's authorised transactions
    // exactly — and, for the acknowledged ones, what was acknowledged.
    let mut journal_totals: BTreeMap<u16, (u64, u64)> = BTreeMap::new();
    for entry in &entries {
        let total = journal_totals.entry(entry.currency).or_default();
        total.0 += 1;
        total.1 += entry.amount_minor.unwrap();
    }
    let centre_totals: BTreeMap<u16, (u64, u64)> = centre
        .totals()
        .unwrap()
        .into_iter()
        .map(|total| {
            assert_eq!(total.acquirer.0, ACQUIRER);
            (total.currency, (total.records, total.total_minor))
        })
        .collect();
    assert_eq!(centre_totals, journal_totals);
    assert_eq!(
        centre_totals.keys().copied().collect::<Vec<_>>(),
        [826, 840, 978],
        "GBP, USD and EUR"
    );
    // ...which are what was acknowledged plus what was recorded and not acknowledged.
    let mut accounted: BTreeMap<u16, (u64, u64)> = BTreeMap::new();
    for payment in remitted.keys() {
        let (minor, currency) = match said.acknowledged.get(payment) {
            Some(&amount) => amount,
            None => {
                let entry = by_payment[payment.as_str()];
                (entry.amount_minor.unwrap(), entry.currency)
            }
        };
        let total = accounted.entry(currency).or_default();
        total.0 += 1;
        total.1 += minor;
    }
    assert_eq!(accounted, centre_totals);

    // Duplicates: a batch comes again only when its acquirer died after the centre's
    // acceptance and before recording it — at most once per kill inside a remittance —
    // and each batch held that way came again. The centre counted them, and counted
    // nothing twice (the totals above).
    let kills_in_remit = runs
        .iter()
        .filter(|run| run.landing == Landing::Inside(Phase::Remit))
        .count() as u64;
    let mut duplicates = 0;
    for batch in &accepted {
        // Each reception whose answer was held is followed by another of the same
        // batch; a batch ever left accepted and unacknowledged came at least once more;
        // each duplicate answer the acquirer heard is one.
        let held = runs
            .iter()
            .filter(|run| run.held == Some(batch.number))
            .count() as u64;
        let left_unacknowledged = runs
            .iter()
            .any(|run| run.wreck.accepted_unacknowledged.contains(&batch.number));
        let heard = said
            .duplicates_heard
            .get(&batch.number)
            .copied()
            .unwrap_or(0);
        assert!(
            batch.duplicates >= held.max(heard).max(u64::from(left_unacknowledged)),
            "batch {}: {} duplicates counted; {held} answers held, {heard} duplicates heard, \
             left accepted and unacknowledged by a kill: {left_unacknowledged}",
            batch.number,
            batch.duplicates
        );
        duplicates += batch.duplicates;
    }
    let held = runs.iter().filter(|run| run.held.is_some()).count() as u64;
    assert!(
        held >= 3 && duplicates >= held && duplicates <= kills_in_remit,
        "{held} answers held, {duplicates} duplicates, {kills_in_remit} kills in remittances"
    );

    // The kills landed everywhere.
    let mut landings: BTreeMap<Landing, usize> = BTreeMap::new();
    let mut by_aim: BTreeMap<(String, Landing), usize> = BTreeMap::new();
    for run in &runs {
        *landings.entry(run.landing).or_default() += 1;
        *by_aim.entry((run.aim.kind(), run.landing)).or_default() += 1;
    }
    for phase in Phase::ALL {
        let inside = landings.get(&Landing::Inside(phase)).copied().unwrap_or(0);
        assert!(inside >= 5, "seed {seed}: {landings:?}");
    }
    let crash_states = runs.iter().fold([0usize; 3], |mut counts, run| {
        counts[0] += run.wreck.open.len();
        counts[1] += run.wreck.in_transit.len();
        counts[2] += run.wreck.accepted_unacknowledged.len();
        counts
    });
    assert!(
        crash_states.iter().all(|&count| count >= 1),
        "{crash_states:?}"
    );
    assert!(runs.len() >= MIN_KILLS && said.acknowledged.len() >= MIN_ACKNOWLEDGED);

    eprintln!(
        "seed {seed}: {} kills, {} acknowledged ({unacknowledged} more recorded and remitted \
         unacknowledged), {} batches ({} cut-offs seen), {duplicates} duplicates; landings \
         {landings:?}; after the kills, batches cut and unsent {}, in transit {}, accepted and \
         unacknowledged {}; {:.1} s; by aim {by_aim:?}",
        runs.len(),
        said.acknowledged.len(),
        batches.len(),
        said.cuts,
        crash_states[0],
        crash_states[1],
        crash_states[2],
        began.elapsed().as_secs_f64()
    );
}
