//! The purchase benchmarks of issue 8. Prints rates, ratios against floors measured in
//! the same run, times and peak memory; asserts nothing about time. Run with
//! `cargo bench -p telepay --bench purchase`. `PURCHASE_BENCH_PARTS=1,2,3` picks the
//! parts (all by default); `PURCHASE_BENCH_BATCH=N` sets the batch size of part 3
//! (1,000,000 by default).
//!
//! 1. **Purchases per second**, end to end in one process: A to K for the demo
//!    catalogue's first paid item, the `sim:cb` card (state in memory, right PIN), every
//!    role driven by the [`Runner`] on a [`VirtualClock`], against the **floor** of the
//!    EMV cryptography one purchase needs, called alone: the card's ARQC, its check of
//!    the ARPC and its TC (each a CVN 18 session key, then a MAC or one 3DES block; the
//!    card holds its ICC master key, derived once when it was personalised), and the
//!    acquirer's ICC master key derivation, ARQC verification and ARPC. Measured with the
//!    journal in memory (the purchase's own cost) and in a file with `synchronous=FULL`
//!    (each purchase then waits for one fsync), and on a front-end that has already made
//!    10,000 purchases. The same ratio is also measured in pairs (the floor, then as many
//!    purchases, interleaved on one network), so that both sides of each ratio see the
//!    same moment of a shared machine. Profiling rounds time each role and the card
//!    channel, on a new network and after 10,000 purchases; `purchase-HASH --child
//!    purchases N` only buys, for `perf record`. Goal: purchases / floor ≥ 0.5.
//! 2. **Durable acknowledgements per second**: the acquirer's `authorise` (banking rules
//!    and the journal's look-ups and write, `Journal::authorise_with`) on a journal file
//!    in a temporary directory, for Fs built beforehand by the card (so the card's time
//!    is not counted), against SQLite's own single-row durable commit on the same disk: a
//!    bare table, WAL, `synchronous=FULL`, one row of the same size per commit. Goal:
//!    ≥ 0.8. `purchase-HASH --child acknowledgements DIR N` only authorises (DIR
//!    `memory`: on a journal in memory), for `perf record` or `strace`.
//! 3. **A remittance batch of 1,000,000 transactions**: a journal filled through the
//!    acquirer's own `authorise` (real cryptograms from 1,000 cards of the `cb` BIN) on
//!    tmpfs, since the journal commits each transaction alone, then copied to the disk;
//!    then, each in a child process so that its peak memory is its own: `Journal::cut_off`,
//!    `Journal::write_batch` to a file, and the centre's `Centre::verify` reading it back.
//!    Time and peak resident memory (`VmHWM`) of each, for that batch and for one 100
//!    times smaller: streamed means the same peak for both.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fs::File;
use std::hint::black_box;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::process::Command as Process;
use std::time::{Duration, Instant};

use card_applet_sim::crypto::{
    AcInput, CryptogramVersion, DoubleKey, ac_input_data, application_cryptogram, arpc_method1,
    try_ac_input_data,
};
use card_applet_sim::profile::Profile;
use telepay::acquirer::card::CardHistory;
use telepay::acquirer::journal::Journal;
use telepay::acquirer::system::BankCardAcquirer;
use telepay::apdu::{Command, Response};
use telepay::emv::CardChannel;
use telepay::frontend::SeededEntropy;
use telepay::messages::{
    AcquirerTransaction, Message, Party, Payment, PaymentId, PurchaseId, ServiceId, Timestamp,
    Verdict,
};
use telepay::provider::{Catalogue, ServiceServer};
use telepay::purchase::embedded::{Embedded, test_rules};
use telepay::purchase::{Faults, Handled, PartyKind, Role, Runner, VirtualClock};
use telepay::reader::{Reader, ReaderError, Transport};
use telepay::telecollection::centre::Centre;
use telepay::terminal::card_module::{CardModule, TerminalData};
use telepay::terminal::payer::ScriptedUser;
use telepay::testing::powered;

/// 2026-11-25 10:30:00 UTC, as the purchase tests start.
const START: Timestamp = Timestamp(1_795_602_600_000);
/// Part 1: purchases before any measurement (caches, allocator, SQLite pages).
const WARM_UP: usize = 200;
/// Part 1: purchases per measured round.
const PURCHASES: usize = 2_000;
/// Part 1: purchases on one network before measuring what a long-running one costs.
const HISTORY: usize = 10_000;
/// Part 1, the paired ratio: pairs of the floor and the purchases, interleaved.
const PAIRS: usize = 21;
/// Part 1, the paired ratio: floor computations, then purchases, in each pair.
const PAIR_SIZE: usize = 200;
/// Part 1: purchases per round with the journal in a file (each waits for an fsync).
const PURCHASES_ON_DISK: usize = 500;
/// Rounds of each measurement; the median is reported (the machine is shared).
const ROUNDS: usize = 3;
/// Floors: windows of this length, median of `WINDOWS`.
const WINDOW: Duration = Duration::from_millis(400);
const WINDOWS: usize = 5;
/// Part 2: durable commits per round, each side.
const COMMITS: usize = 1_000;
/// Part 3: transactions per synthetic card (its ATCs run 1..=this).
const PER_CARD: usize = 1_000;

type Card = Transport<Box<dyn Reader + Send>>;
type Network<C> = Embedded<SeededEntropy, C, ScriptedUser>;

// ---------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Runs `body` for `WINDOW`, `WINDOWS` times; the median of operations per second.
fn rate(mut body: impl FnMut() -> usize) -> f64 {
    let mut rates = Vec::with_capacity(WINDOWS);
    for _ in 0..WINDOWS {
        let started = Instant::now();
        let mut operations = 0usize;
        while started.elapsed() < WINDOW {
            operations += body();
        }
        rates.push(operations as f64 / started.elapsed().as_secs_f64());
    }
    median(rates)
}

/// `VmHWM` (peak resident memory) of this process, in kB.
fn vm_hwm_kb() -> u64 {
    status_kb("VmHWM")
}

/// A `kB` field of `/proc/self/status` (0 where there is none).
fn status_kb(name: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// `value` rounded, with thousands separated by commas.
fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value);
    let mut out = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// A new, empty directory under `base`, named for this process.
fn scratch_dir(base: &Path, name: &str) -> PathBuf {
    let dir = base.join(format!("telepay-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}

fn parts() -> Vec<u8> {
    match std::env::var("PURCHASE_BENCH_PARTS") {
        Ok(text) => text
            .split(',')
            .filter_map(|part| part.trim().parse().ok())
            .collect(),
        Err(_) => vec![1, 2, 3],
    }
}

// ---------------------------------------------------------------------------------
// The network
// ---------------------------------------------------------------------------------

/// The demo catalogue's first paid, available item: what `telepay purchase` buys by
/// default.
fn default_item() -> ServiceId {
    Catalogue::demo()
        .expect("demo catalogue")
        .items()
        .iter()
        .find(|item| !item.is_free() && item.available())
        .map(|item| item.id().clone())
        .expect("a paid item")
}

fn cb_card() -> Card {
    powered("sim:cb?seed=1").expect("sim:cb")
}

fn network<C: CardChannel>(channel: C, journal: Journal, prefix: &str) -> Network<C> {
    Embedded::new(
        ServiceServer::new(Catalogue::demo().expect("demo catalogue")),
        test_rules().expect("test issuers"),
        journal,
        CardModule::new(channel, TerminalData::france()),
        ScriptedUser::with_pin("1234"),
        SeededEntropy::new(1),
        prefix.into(),
    )
}

/// The clock of the `n`th purchase: one second apart, 10 ms per message.
fn clock(n: usize) -> VirtualClock {
    VirtualClock::new(START.plus_millis(n as i64 * 1_000), 10)
}

/// Buys `item` `count` times from purchase number `first`; the time taken.
fn buy<C: CardChannel>(
    network: &mut Network<C>,
    item: &ServiceId,
    first: usize,
    count: usize,
) -> Duration {
    let started = Instant::now();
    for n in first..first + count {
        let run = network
            .purchase(item, None, clock(n), Faults::none())
            .expect("the roles do not loop");
        assert!(run.delivered(), "purchase {n} was not delivered");
    }
    started.elapsed()
}

// ---------------------------------------------------------------------------------
// Part 1: purchases per second against the EMV cryptography of one purchase
// ---------------------------------------------------------------------------------

/// What the floor works on: the `cb` card's CB application (CVN 18) as the card holds
/// it and as the acquirer derives it, and one transaction's values.
struct CryptoFloor {
    version: CryptogramVersion,
    issuer_master_key: DoubleKey,
    card_icc_master_key: DoubleKey,
    pan: String,
    pan_sequence: u8,
    iad: Vec<u8>,
}

impl CryptoFloor {
    fn new() -> CryptoFloor {
        let profile = Profile::builtin("cb").expect("cb profile");
        let application = &profile.applications()[0];
        let version = application.cryptogram_version().expect("a supported CVN");
        assert_eq!(
            version,
            CryptogramVersion::Cvn18,
            "the cb card's CB application"
        );
        let card_icc_master_key = version
            .derive_icc_master_key(
                application.issuer_master_key(),
                profile.pan(),
                profile.pan_sequence(),
            )
            .expect("derivable");
        CryptoFloor {
            version,
            issuer_master_key: application.issuer_master_key().clone(),
            card_icc_master_key,
            pan: profile.pan().to_owned(),
            pan_sequence: profile.pan_sequence(),
            // Visa layout: 06, DKI 01, CVN 12, 03, CVR.
            iad: vec![0x06, 0x01, 0x12, 0x03, 0xA4, 0x10, 0x00],
        }
    }

    fn input(&self, atc: u16) -> AcInput<'_> {
        AcInput {
            cdol1_data: &[],
            amount_authorised: [0, 0, 0, 0, 0x04, 0x90],
            amount_other: [0; 6],
            terminal_country: [0x02, 0x50],
            tvr: [0; 5],
            currency: [0x09, 0x78],
            date: [0x26, 0x11, 0x25],
            transaction_type: 0,
            unpredictable_number: [0xCA, 0xFE, 0xBA, 0xBE],
            aip: [0x1C, 0x00],
            atc,
            iad: &self.iad,
        }
    }

    /// Every EMV computation of one purchase, in the order the purchase makes them.
    fn one_purchase(&self, atc: u16) -> [u8; 8] {
        let v = self.version;
        let input = self.input(atc);
        // Card, first GENERATE AC: session key (A1.3.1) + MAC (§8.1.2) = the ARQC.
        let arqc =
            application_cryptogram(v, &self.card_icc_master_key, atc, &ac_input_data(v, &input));
        // Acquirer: ICC master key (A1.4), ARQC recomputed, ARPC method 1 (§8.2.1).
        let icc_master_key = v
            .derive_icc_master_key(&self.issuer_master_key, &self.pan, self.pan_sequence)
            .expect("derivable");
        let data = try_ac_input_data(v, &input).expect("a Visa IAD");
        let expected = application_cryptogram(v, &icc_master_key, atc, &data);
        assert_eq!(expected, arqc);
        let arpc = arpc_method1(v, &icc_master_key, atc, &arqc, b"00");
        // Card, second GENERATE AC: its own ARPC to compare, then the TC.
        let own = arpc_method1(v, &self.card_icc_master_key, atc, &arqc, b"00");
        assert_eq!(own, arpc);
        application_cryptogram(v, &self.card_icc_master_key, atc, &ac_input_data(v, &input))
    }
}

/// A role timed around each call: `spent` in `handle` and `handle_timeout`, `polled` in
/// `poll_timeout` (which takes `&self`, hence the cell).
struct Timed<'a> {
    role: &'a mut dyn Role,
    spent: Duration,
    polled: Cell<Duration>,
}

impl<'a> Timed<'a> {
    fn new(role: &'a mut dyn Role) -> Timed<'a> {
        Timed {
            role,
            spent: Duration::ZERO,
            polled: Cell::new(Duration::ZERO),
        }
    }
}

impl Role for Timed<'_> {
    fn party(&self) -> Party {
        self.role.party()
    }

    fn handle(&mut self, now: Timestamp, from: &Party, message: Message) -> Handled {
        let started = Instant::now();
        let handled = self.role.handle(now, from, message);
        self.spent += started.elapsed();
        handled
    }

    fn handle_ref(&mut self, now: Timestamp, from: &Party, message: &Message) -> Handled {
        let started = Instant::now();
        let handled = self.role.handle_ref(now, from, message);
        self.spent += started.elapsed();
        handled
    }

    fn poll_timeout(&self) -> Option<Timestamp> {
        let started = Instant::now();
        let due = self.role.poll_timeout();
        self.polled.set(self.polled.get() + started.elapsed());
        due
    }

    fn handle_timeout(&mut self, now: Timestamp) -> Handled {
        let started = Instant::now();
        let handled = self.role.handle_timeout(now);
        self.spent += started.elapsed();
        handled
    }
}

/// A card channel timed around each command: the transport and the software card.
struct TimedChannel {
    inner: Card,
    spent: Duration,
    commands: u64,
}

impl CardChannel for TimedChannel {
    fn transmit(&mut self, command: &Command) -> Result<Response, ReaderError> {
        let started = Instant::now();
        let response = self.inner.transmit(command);
        self.spent += started.elapsed();
        self.commands += 1;
        response
    }
}

/// Per purchase, over `PURCHASES` purchases after `before` others on the same network:
/// each role's time, the card channel's (inside the payer's), and the runner's
/// (routing, cloning messages into the log).
fn profile_roles(item: &ServiceId, before: usize) -> Vec<(String, Duration)> {
    let channel = TimedChannel {
        inner: cb_card(),
        spent: Duration::ZERO,
        commands: 0,
    };
    let mut network = network(channel, Journal::open_in_memory().expect("journal"), "Q");
    buy(&mut network, item, 0, before);
    network.payer.card_mut().channel_mut().spent = Duration::ZERO;
    network.payer.card_mut().channel_mut().commands = 0;
    let mut spent = [Duration::ZERO; 5];
    let mut polled = [Duration::ZERO; 5];
    let started = Instant::now();
    for n in before..before + PURCHASES {
        let provider = network.server.catalogue().provider().clone();
        let first = network.client.request(provider, item.clone(), None);
        let mut roles = [
            Timed::new(&mut network.client),
            Timed::new(&mut network.payer),
            Timed::new(&mut network.front_end),
            Timed::new(&mut network.server),
            Timed::new(&mut network.acquirer),
        ];
        {
            let [a, b, c, d, e] = &mut roles;
            let list: Vec<&mut dyn Role> = vec![a, b, c, d, e];
            let mut runner = Runner::new(list, clock(n));
            runner.run(first).expect("the roles do not loop");
            assert_eq!(runner.log().steps().len(), 11, "A to K");
        }
        for ((total, poll), role) in spent.iter_mut().zip(&mut polled).zip(&roles) {
            *total += role.spent;
            *poll += role.polled.get();
        }
    }
    let total = started.elapsed();
    let channel = network.payer.card_mut().channel_mut();
    let card = channel.spent;
    let commands = channel.commands;
    let roles_total: Duration = spent.iter().chain(&polled).sum();
    let per = |d: Duration| d / PURCHASES as u32;
    vec![
        ("whole purchase".into(), per(total)),
        (
            "front-end: handling messages and deadlines".into(),
            per(spent[2]),
        ),
        (
            "front-end: `poll_timeout` (the runner asks when each queue empties)".into(),
            per(polled[2]),
        ),
        ("acquirer (rules + in-memory journal)".into(), per(spent[4])),
        ("payer device, all".into(), per(spent[1])),
        (
            format!(
                "  of which the card channel ({} commands: transport + software card)",
                commands / PURCHASES as u64
            ),
            per(card),
        ),
        ("service server".into(), per(spent[3])),
        ("client device".into(), per(spent[0])),
        (
            "runner (routing, cloning messages into the log), other roles' `poll_timeout`".into(),
            per(total.saturating_sub(roles_total) + polled.iter().sum::<Duration>() - polled[2]),
        ),
    ]
}

/// The floor's rate: one purchase's EMV cryptography, alone, per second.
fn floor_rate(floor: &CryptoFloor, atc: &mut u16) -> f64 {
    rate(|| {
        floor_time(floor, atc, 64);
        64
    })
}

/// `count` of the floor's computations, the card's ATC going on from `atc`; the time
/// they took.
fn floor_time(floor: &CryptoFloor, atc: &mut u16, count: usize) -> Duration {
    let started = Instant::now();
    for _ in 0..count {
        *atc = atc.wrapping_add(1);
        black_box(floor.one_purchase(black_box(*atc)));
    }
    started.elapsed()
}

/// Purchases per second on a new network: `WARM_UP` purchases, then `count` timed.
fn fresh_rate(item: &ServiceId, journal: Journal, count: usize) -> f64 {
    let mut network = network(cb_card(), journal, "M");
    buy(&mut network, item, 0, WARM_UP);
    count as f64 / buy(&mut network, item, WARM_UP, count).as_secs_f64()
}

/// The ratio measured in pairs, so that both sides see the same moment of a shared
/// machine: on one new network (journal in memory, `WARM_UP` purchases first),
/// `PAIR_SIZE` floor computations then `PAIR_SIZE` purchases (the other way round in
/// every other pair, so that neither always comes first), `PAIRS` times; each pair's
/// ratio is the floor's time over the purchases'. Sorted.
fn paired_ratios(item: &ServiceId, floor: &CryptoFloor, atc: &mut u16) -> Vec<f64> {
    let mut network = network(cb_card(), Journal::open_in_memory().expect("journal"), "R");
    buy(&mut network, item, 0, WARM_UP);
    let mut next = WARM_UP;
    let mut ratios = Vec::with_capacity(PAIRS);
    for pair in 0..PAIRS {
        let (floor_spent, purchases_spent) = if pair % 2 == 0 {
            let floor_spent = floor_time(floor, atc, PAIR_SIZE);
            (floor_spent, buy(&mut network, item, next, PAIR_SIZE))
        } else {
            let purchases_spent = buy(&mut network, item, next, PAIR_SIZE);
            (floor_time(floor, atc, PAIR_SIZE), purchases_spent)
        };
        next += PAIR_SIZE;
        ratios.push(floor_spent.as_secs_f64() / purchases_spent.as_secs_f64());
    }
    ratios.sort_by(f64::total_cmp);
    ratios
}

fn list(rates: &[f64]) -> String {
    rates
        .iter()
        .map(|rate| thousands(*rate))
        .collect::<Vec<_>>()
        .join(", ")
}

fn part1() {
    println!("## 1. Purchases per second, in process, `sim:cb`, against their EMV cryptography\n");
    let item = default_item();
    let floor = CryptoFloor::new();
    let mut atc = 0u16;
    let dir = scratch_dir(&std::env::temp_dir(), "purchase");
    // Rounds alternate: floor, purchases with the journal in memory, purchases with the
    // journal in a file, each on a new network (a new front-end, card and journal).
    let (mut floors, mut in_memory, mut on_disk) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        floors.push(floor_rate(&floor, &mut atc));
        in_memory.push(fresh_rate(
            &item,
            Journal::open_in_memory().expect("journal"),
            PURCHASES,
        ));
        let journal =
            Journal::open(dir.join(format!("journal-{round}.sqlite"))).expect("journal file");
        on_disk.push(fresh_rate(&item, journal, PURCHASES_ON_DISK));
    }
    let _ = std::fs::remove_dir_all(&dir);
    let pairs = paired_ratios(&item, &floor, &mut atc);
    // The same front-end after many purchases: what a long-running one pays.
    let (history_rate, history) = {
        let mut network = network(cb_card(), Journal::open_in_memory().expect("journal"), "H");
        let history = HISTORY;
        buy(&mut network, &item, 0, history);
        let spent = buy(&mut network, &item, history, PURCHASES);
        (PURCHASES as f64 / spent.as_secs_f64(), history)
    };

    let floor_rate = median(floors.clone());
    let memory_rate = median(in_memory.clone());
    let disk_rate = median(on_disk.clone());
    let floor_us = 1e6 / floor_rate;
    println!("item: {item} (the demo catalogue's first paid item), card sim:cb, PIN right");
    println!(
        "floor: the EMV cryptography of one purchase (card ARQC + ARPC check + TC; acquirer \
         ICC key + ARQC check + ARPC), alone; rounds: {}",
        list(&floors)
    );
    println!(
        "purchases, journal in memory, {WARM_UP} + {PURCHASES} on a new network; rounds: {}",
        list(&in_memory)
    );
    println!(
        "purchases, journal file (WAL, synchronous=FULL), {WARM_UP} + {PURCHASES_ON_DISK} on \
         a new network; rounds: {}",
        list(&on_disk)
    );
    println!();
    println!("| measurement | result |");
    println!("|---|---|");
    println!(
        "| floor: EMV cryptography of one purchase, alone | {} purchases/s ({:.1} µs) |",
        thousands(floor_rate),
        floor_us
    );
    println!(
        "| purchases A–K, journal in memory | {} /s ({:.0} µs each) |",
        thousands(memory_rate),
        1e6 / memory_rate
    );
    println!(
        "| purchases A–K, journal file, synchronous=FULL | {} /s ({:.0} µs each) |",
        thousands(disk_rate),
        1e6 / disk_rate
    );
    println!(
        "| purchases A–K, journal in memory, after {} purchases on the same front-end | {} /s ({:.0} µs each) |",
        thousands(history as f64),
        thousands(history_rate),
        1e6 / history_rate
    );
    let ratio = memory_rate / floor_rate;
    println!(
        "| **ratio purchases / floor (journal in memory)** | **{ratio:.2}** (goal ≥ 0.5: {}) |",
        if ratio >= 0.5 { "met" } else { "NOT met" }
    );
    let paired = pairs[PAIRS / 2];
    println!(
        "| **ratio, paired**: {PAIRS} pairs of {PAIR_SIZE} floor computations and {PAIR_SIZE} \
         purchases (journal in memory) interleaved on one network; median (quartiles, \
         extremes) | **{paired:.2}** ({:.2}–{:.2}; {:.2}–{:.2}) (goal ≥ 0.5: {}) |",
        pairs[PAIRS / 4],
        pairs[3 * PAIRS / 4],
        pairs[0],
        pairs[PAIRS - 1],
        if paired >= 0.5 { "met" } else { "NOT met" }
    );
    println!(
        "| ratio purchases / floor (journal file) | {:.2} |",
        disk_rate / floor_rate
    );
    println!();
    println!(
        "Where one purchase's time goes (journal in memory, {PURCHASES} purchases timed role \
         by role, after {WARM_UP} on a new network, and after {} on one):\n",
        thousands(HISTORY as f64)
    );
    println!(
        "| part | µs per purchase, new network | after {} purchases |",
        thousands(HISTORY as f64)
    );
    println!("|---|---|---|");
    let fresh = profile_roles(&item, WARM_UP);
    let old = profile_roles(&item, HISTORY);
    for ((name, new), (_, later)) in fresh.iter().zip(&old) {
        println!(
            "| {name} | {:.1} | {:.1} |",
            new.as_secs_f64() * 1e6,
            later.as_secs_f64() * 1e6
        );
    }
    println!("| the floor: the EMV cryptography in all of it | {floor_us:.1} | |");
    println!();
}

// ---------------------------------------------------------------------------------
// Part 2: durable acknowledgements per second against SQLite's durable commit
// ---------------------------------------------------------------------------------

/// `count` Fs the card signed: purchases whose F never reaches the acquirer (it is
/// unreachable), each one's F taken from the log. Their ATCs increase.
fn card_signed_transactions(count: usize) -> Vec<AcquirerTransaction> {
    let item = default_item();
    let mut network = network(cb_card(), Journal::open_in_memory().expect("journal"), "F");
    let mut fs = Vec::with_capacity(count);
    for n in 0..count {
        let run = network
            .purchase(
                &item,
                None,
                clock(n),
                Faults::none().unreachable(PartyKind::Acquirer),
            )
            .expect("the roles do not loop");
        let f = run
            .log
            .entries
            .into_iter()
            .find_map(|entry| match entry.envelope.message {
                Message::AcquirerTransaction(f) => Some(f),
                _ => None,
            })
            .expect("an F on its way to the acquirer");
        fs.push(*f);
    }
    fs
}

/// Authorises every F on a new journal file in `dir`; acknowledgements per second.
fn durable_acknowledgements(dir: &Path, round: usize, fs: &[AcquirerTransaction]) -> f64 {
    let journal = Journal::open(dir.join(format!("journal-{round}.sqlite"))).expect("journal");
    let mut acquirer = BankCardAcquirer::new(test_rules().expect("rules"), journal);
    let now = START.plus_millis(3_600_000);
    let started = Instant::now();
    for f in fs {
        let g = acquirer.authorise(f, now).expect("recorded");
        assert!(
            matches!(g.verdict, Verdict::Positive { .. }),
            "{:?}",
            g.verdict
        );
    }
    fs.len() as f64 / started.elapsed().as_secs_f64()
}

/// The bytes of the values the journal's row for `f` holds (a text's length, 8 for an
/// integer), read from a journal file made for it in `dir`.
fn journal_row_bytes(dir: &Path, f: &AcquirerTransaction) -> usize {
    let path = dir.join("row-size.sqlite");
    {
        let journal = Journal::open(&path).expect("journal");
        let mut acquirer = BankCardAcquirer::new(test_rules().expect("rules"), journal);
        acquirer.authorise(f, START).expect("recorded");
    }
    let connection = rusqlite::Connection::open(&path).expect("journal file");
    let mut statement = connection
        .prepare("SELECT * FROM transactions")
        .expect("statement");
    let columns = statement.column_count();
    let bytes = statement
        .query_row([], |row| {
            (0..columns)
                .map(|column| {
                    Ok(match row.get_ref(column)? {
                        rusqlite::types::ValueRef::Null => 0,
                        rusqlite::types::ValueRef::Integer(_)
                        | rusqlite::types::ValueRef::Real(_) => 8,
                        rusqlite::types::ValueRef::Text(bytes)
                        | rusqlite::types::ValueRef::Blob(bytes) => bytes.len(),
                    })
                })
                .sum::<rusqlite::Result<usize>>()
        })
        .expect("one row");
    drop(statement);
    drop(connection);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.join(format!("row-size.sqlite{suffix}")));
    }
    bytes
}

/// SQLite alone: WAL, synchronous=FULL, one row of `payload` bytes per commit.
fn sqlite_commits(dir: &Path, round: usize, count: usize, payload: usize) -> f64 {
    let connection =
        rusqlite::Connection::open(dir.join(format!("floor-{round}.sqlite"))).expect("sqlite");
    connection
        .pragma_update(None, "journal_mode", "WAL")
        .expect("WAL");
    connection
        .pragma_update(None, "synchronous", "FULL")
        .expect("FULL");
    connection
        .execute_batch("CREATE TABLE rows (seq INTEGER PRIMARY KEY, payload TEXT NOT NULL)")
        .expect("table");
    let text = "x".repeat(payload);
    let mut insert = connection
        .prepare("INSERT INTO rows (payload) VALUES (?1)")
        .expect("statement");
    let started = Instant::now();
    for _ in 0..count {
        insert.execute([&text]).expect("insert");
    }
    count as f64 / started.elapsed().as_secs_f64()
}

fn part2() {
    println!("## 2. Durable acknowledgements per second against SQLite's durable commit\n");
    let fs = card_signed_transactions(COMMITS);
    let dir = scratch_dir(&std::env::temp_dir(), "acknowledgements");
    // The floor's row is as long as the values the journal stores for one transaction
    // (F and G in columns), so that both write about as many bytes per commit.
    let payload = journal_row_bytes(&dir, &fs[0]);
    let mut floors = Vec::new();
    let mut journals = Vec::new();
    for round in 0..ROUNDS {
        floors.push(sqlite_commits(&dir, round, COMMITS, payload));
        journals.push(durable_acknowledgements(&dir, round, &fs));
    }
    let _ = std::fs::remove_dir_all(&dir);
    // Where the journal's time goes beyond the fsync: the same Fs decided by the rules
    // alone (no journal), and authorised on a journal in memory (no disk).
    let rules = test_rules().expect("rules");
    let history = CardHistory::default();
    let mut next = 0usize;
    let decide_rate = rate(|| {
        let f = &fs[next % fs.len()];
        next += 1;
        black_box(rules.decide(black_box(f), &history));
        1
    });
    let memory_rate = {
        let journal = Journal::open_in_memory().expect("journal");
        let mut acquirer = BankCardAcquirer::new(test_rules().expect("rules"), journal);
        let started = Instant::now();
        for f in &fs {
            black_box(acquirer.authorise(f, START).expect("recorded"));
        }
        fs.len() as f64 / started.elapsed().as_secs_f64()
    };
    let floor = median(floors.clone());
    let journal = median(journals.clone());
    println!(
        "{} Fs built by the card beforehand; journal and floor in {} (same disk), alternating \
         rounds of {COMMITS}",
        fs.len(),
        std::env::temp_dir().display()
    );
    println!(
        "floor rounds: {}; journal rounds: {}",
        floors
            .iter()
            .map(|r| thousands(*r))
            .collect::<Vec<_>>()
            .join(", "),
        journals
            .iter()
            .map(|r| thousands(*r))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!();
    println!("| measurement | result |");
    println!("|---|---|");
    println!(
        "| floor: SQLite WAL, synchronous=FULL, 1 row ({payload} B) per commit | {} commits/s ({:.0} µs) |",
        thousands(floor),
        1e6 / floor
    );
    println!(
        "| `BankCardAcquirer::authorise` (rules + `authorise_with`), journal file | {} acknowledgements/s ({:.0} µs) |",
        thousands(journal),
        1e6 / journal
    );
    let ratio = journal / floor;
    println!(
        "| **ratio acknowledgements / floor** | **{ratio:.2}** (goal ≥ 0.8: {}) |",
        if ratio >= 0.8 { "met" } else { "NOT met" }
    );
    println!(
        "| where the rest goes: `BankCardRules::decide` alone (rules + EMV cryptography) | {} /s ({:.0} µs) |",
        thousands(decide_rate),
        1e6 / decide_rate
    );
    println!(
        "| where the rest goes: `authorise` on a journal in memory (no disk) | {} /s ({:.0} µs) |",
        thousands(memory_rate),
        1e6 / memory_rate
    );
    println!(
        "| floor + journal in memory, as times | {:.0} µs, against {:.0} µs measured |",
        1e6 / floor + 1e6 / memory_rate,
        1e6 / journal
    );
    println!();
}

// ---------------------------------------------------------------------------------
// Part 3: a batch of 1,000,000 transactions, streamed
// ---------------------------------------------------------------------------------

/// A 16-digit PAN of the `cb` BIN 497010 with a Luhn check digit (ISO/IEC 7812-1
/// Annex B), account number `account`.
fn synthetic_pan(account: u64) -> String {
    let body = format!("497010{:09}", 200_000_000 + account);
    let mut sum = 0u32;
    // From the right of the body, the first digit is doubled (it sits left of the
    // check digit).
    for (index, digit) in body.bytes().rev().enumerate() {
        let mut value = u32::from(digit - b'0');
        if index % 2 == 0 {
            value *= 2;
            if value > 9 {
                value -= 9;
            }
        }
        sum += value;
    }
    format!("{body}{}", (10 - sum % 10) % 10)
}

/// F number `n` from `template`, for the card `pan` (ICC master key `key`) at `atc`:
/// new identifiers, and the ARQC the card would compute for that ATC.
fn synthetic_f(
    template: &AcquirerTransaction,
    n: usize,
    pan: &str,
    key: &DoubleKey,
    atc: u16,
) -> AcquirerTransaction {
    let mut f = template.clone();
    let purchase = PurchaseId::from(format!("B-{n:07}"));
    let payment = PaymentId::from(format!("B-{n:07}-PAY"));
    f.request.purchase = purchase.clone();
    f.request.payment = payment.clone();
    f.transaction.purchase = purchase;
    f.transaction.payment = payment;
    let Payment::BankCard(card) = &mut f.transaction.means else {
        panic!("a bank-card payment")
    };
    card.pan = pan.into();
    card.atc = atc;
    let version = CryptogramVersion::Cvn18;
    let input = card.ac_input();
    card.cryptogram = application_cryptogram(version, key, atc, &ac_input_data(version, &input));
    f
}

/// What a child process reports: the step's time, `VmHWM` before and after, what its
/// resident memory is made of at the end, and its result.
struct ChildReport {
    seconds: f64,
    hwm_before_kb: u64,
    hwm_after_kb: u64,
    /// `RssAnon`, `RssFile`, `RssShmem` after the step (SQLite maps its WAL index).
    rss_kb: [u64; 3],
    detail: String,
}

/// Runs this benchmark again as `--child STEP ARGS…` and reads its report line.
fn run_child(step: &str, args: &[&Path]) -> ChildReport {
    let exe = std::env::current_exe().expect("own executable");
    let output = Process::new(exe)
        .arg("--child")
        .arg(step)
        .args(args)
        .output()
        .expect("child process");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "child {step} failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|line| line.strip_prefix("CHILD "))
        .expect("a report line");
    let fields: BTreeMap<&str, &str> = line
        .split(' ')
        .filter_map(|field| field.split_once('='))
        .collect();
    let kb = |name: &str| -> u64 { fields[name].parse().expect("kB") };
    ChildReport {
        seconds: fields["seconds"].parse().expect("seconds"),
        hwm_before_kb: kb("hwm_before_kb"),
        hwm_after_kb: kb("hwm_after_kb"),
        rss_kb: [kb("anon_kb"), kb("file_kb"), kb("shmem_kb")],
        detail: fields["detail"].replace('_', " "),
    }
}

/// The child side: one step, timed, its peak memory read before and after.
fn child(step: &str, args: &[String]) {
    let started;
    let before;
    // Kept open until the memory is read: what the step mapped is still there.
    let mut journal = None;
    let detail = match step {
        "cut-off" => {
            let opened = journal.insert(Journal::open(&args[0]).expect("journal"));
            before = vm_hwm_kb();
            started = Instant::now();
            let batch = opened
                .cut_off(START.plus_millis(86_400_000))
                .expect("cut-off")
                .expect("a batch");
            format!(
                "batch_{}:_{}_records,_{}_bytes",
                batch.number, batch.records, batch.bytes
            )
        }
        "write-batch" => {
            let opened = journal.insert(Journal::open(&args[0]).expect("journal"));
            let out =
                BufWriter::with_capacity(1 << 16, File::create(&args[1]).expect("batch file"));
            before = vm_hwm_kb();
            started = Instant::now();
            let trailer = opened.write_batch(1, out).expect("written");
            format!("{}_records,_{}_bytes", trailer.records, trailer.bytes)
        }
        "verify" => {
            let input =
                BufReader::with_capacity(1 << 16, File::open(&args[0]).expect("batch file"));
            before = vm_hwm_kb();
            started = Instant::now();
            let verified = Centre::verify(input).expect("a valid batch");
            format!(
                "{}_records,_{}_bytes,_checksum_verified",
                verified.trailer.records, verified.trailer.bytes
            )
        }
        // For a profiler: `perf record … purchase-HASH --child purchases 20000`.
        "purchases" => {
            let count: usize = args[0].parse().expect("a count");
            let item = default_item();
            let mut network = network(cb_card(), Journal::open_in_memory().expect("journal"), "P");
            buy(&mut network, &item, 0, WARM_UP);
            before = vm_hwm_kb();
            started = Instant::now();
            buy(&mut network, &item, WARM_UP, count);
            format!("{count}_purchases")
        }
        // For an instruction count against the purchases': `valgrind --tool=callgrind
        // purchase-HASH --child floor 20000`.
        "floor" => {
            let count: usize = args[0].parse().expect("a count");
            let floor = CryptoFloor::new();
            before = vm_hwm_kb();
            started = Instant::now();
            for atc in 0..count {
                black_box(floor.one_purchase(black_box(atc as u16)));
            }
            format!("{count}_floors")
        }
        // For a profiler or `strace`: `purchase-HASH --child acknowledgements DIR 1000`
        // authorises that many card-signed Fs on a new journal file in DIR, as part 2
        // (DIR `memory`: on a journal in memory).
        "acknowledgements" => {
            let count: usize = args[1].parse().expect("a count");
            let fs = card_signed_transactions(count);
            before = vm_hwm_kb();
            started = Instant::now();
            let rate = if args[0] == "memory" {
                let journal = Journal::open_in_memory().expect("journal");
                let mut acquirer = BankCardAcquirer::new(test_rules().expect("rules"), journal);
                for f in &fs {
                    black_box(acquirer.authorise(f, START).expect("recorded"));
                }
                count as f64 / started.elapsed().as_secs_f64()
            } else {
                let dir = scratch_dir(Path::new(&args[0]), "child-acknowledgements");
                let rate = durable_acknowledgements(&dir, 0, &fs);
                let _ = std::fs::remove_dir_all(&dir);
                rate
            };
            format!("{count}_acknowledgements,_{rate:.0}_per_second")
        }
        other => panic!("unknown child step {other}"),
    };
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "CHILD seconds={seconds} hwm_before_kb={before} hwm_after_kb={} anon_kb={} file_kb={} \
         shmem_kb={} detail={detail}",
        vm_hwm_kb(),
        status_kb("RssAnon"),
        status_kb("RssFile"),
        status_kb("RssShmem"),
    );
    drop(journal);
}

/// A journal of `total` authorised transactions, filled through the acquirer's own
/// `authorise` on `fill_base` and copied to `disk_dir`; its path, and the time taken.
fn filled_journal(
    total: usize,
    template: &AcquirerTransaction,
    fill_base: &Path,
    disk_dir: &Path,
) -> (PathBuf, Duration) {
    let fill_dir = scratch_dir(fill_base, &format!("fill-{total}"));
    let profile = Profile::builtin("cb").expect("cb profile");
    let issuer_master_key = profile.applications()[0].issuer_master_key().clone();
    let cards = total.div_ceil(PER_CARD);
    let card_keys: Vec<(String, DoubleKey)> = (0..cards as u64)
        .map(|account| {
            let pan = synthetic_pan(account);
            let key = CryptogramVersion::Cvn18
                .derive_icc_master_key(&issuer_master_key, &pan, 1)
                .expect("derivable");
            (pan, key)
        })
        .collect();
    let filled_path = fill_dir.join("journal.sqlite");
    let started = Instant::now();
    {
        let journal = Journal::open(&filled_path).expect("journal");
        let mut acquirer = BankCardAcquirer::new(test_rules().expect("rules"), journal);
        let now = START.plus_millis(3_600_000);
        let mut n = 0usize;
        // ATC by ATC across the cards: each card's counter rises, as the rules require.
        'fill: for atc in 1..=PER_CARD as u16 {
            for (pan, key) in &card_keys {
                if n == total {
                    break 'fill;
                }
                let f = synthetic_f(template, n, pan, key, atc);
                let g = acquirer.authorise(&f, now).expect("recorded");
                assert!(
                    matches!(g.verdict, Verdict::Positive { .. }),
                    "transaction {n}: {:?}",
                    g.verdict
                );
                n += 1;
                if n.is_multiple_of(200_000) {
                    eprintln!(
                        "  filled {} in {:.0} s",
                        thousands(n as f64),
                        started.elapsed().as_secs_f64()
                    );
                }
            }
        }
    }
    let fill = started.elapsed();
    let journal_path = disk_dir.join(format!("journal-{total}.sqlite"));
    std::fs::copy(&filled_path, &journal_path).expect("journal copied to the disk");
    let _ = std::fs::remove_dir_all(&fill_dir);
    (journal_path, fill)
}

fn part3() {
    let total: usize = std::env::var("PURCHASE_BENCH_BATCH")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(1_000_000);
    println!(
        "## 3. A remittance batch of {} transactions\n",
        thousands(total as f64)
    );
    // Filling: one SQLite commit per transaction is all the journal offers, so the
    // journal is filled on tmpfs, where fsync costs nothing, then copied to the disk.
    let shm = Path::new("/dev/shm");
    let fill_base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let disk_dir = scratch_dir(&std::env::temp_dir(), "batch");
    let template = card_signed_transactions(1).remove(0);
    // A batch 100 times smaller first, the same way: streamed means the same peak.
    let sizes = [(total / 100).max(1), total];
    let mut rows = Vec::new();
    for size in sizes {
        let (journal_path, fill) = filled_journal(size, &template, &fill_base, &disk_dir);
        let journal_bytes = std::fs::metadata(&journal_path)
            .map(|m| m.len())
            .unwrap_or(0);
        let batch_path = disk_dir.join(format!("batch-{size}.txt"));
        let cut = run_child("cut-off", &[&journal_path]);
        let write = run_child("write-batch", &[&journal_path, &batch_path]);
        let verify = run_child("verify", &[&batch_path]);
        let batch_bytes = std::fs::metadata(&batch_path).map(|m| m.len()).unwrap_or(0);
        let _ = std::fs::remove_file(&journal_path);
        let _ = std::fs::remove_file(&batch_path);
        println!(
            "{}: filled through `BankCardAcquirer::authorise` ({} card(s) of BIN 497010, ATC \
             1..{}, real ARQCs) on {} in {:.1} s ({} /s); journal file {:.0} MB on {}; \
             batch file {:.1} MB ({:.0} B per record)",
            thousands(size as f64),
            size.div_ceil(PER_CARD),
            size.min(PER_CARD),
            fill_base.display(),
            fill.as_secs_f64(),
            thousands(size as f64 / fill.as_secs_f64()),
            journal_bytes as f64 / 1e6,
            std::env::temp_dir().display(),
            batch_bytes as f64 / 1e6,
            batch_bytes as f64 / size as f64
        );
        for (name, report) in [
            ("cut-off", &cut),
            ("write-batch", &write),
            ("verify", &verify),
        ] {
            println!("  {name}: {}", report.detail);
        }
        rows.push((size, cut, write, verify));
    }
    let _ = std::fs::remove_dir_all(&disk_dir);
    println!();
    println!(
        "| step (each in its own child process) | transactions | time | peak RSS (VmHWM) \
         before → after the step | RSS at the end: anonymous / file / shared |"
    );
    println!("|---|---|---|---|---|");
    let mb = |kb: u64| kb as f64 / 1024.0;
    for (size, cut, write, verify) in &rows {
        for (name, report) in [
            (
                "`Journal::cut_off` (1 SQLite transaction: states, totals, SHA-256)",
                cut,
            ),
            ("`Journal::write_batch` to a file", write),
            ("`Centre::verify` of that file", verify),
        ] {
            println!(
                "| {name} | {} | {:.2} s ({} records/s) | {:.1} MB → {:.1} MB | {:.1} / {:.1} / {:.1} MB |",
                thousands(*size as f64),
                report.seconds,
                thousands(*size as f64 / report.seconds),
                mb(report.hwm_before_kb),
                mb(report.hwm_after_kb),
                mb(report.rss_kb[0]),
                mb(report.rss_kb[1]),
                mb(report.rss_kb[2]),
            );
        }
    }
    println!();
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(at) = args.iter().position(|arg| arg == "--child") {
        let step = args.get(at + 1).expect("a step").clone();
        child(&step, &args[at + 2..]);
        return;
    }
    let parts = parts();
    println!("# telepay purchase benchmarks (issue 8)\n");
    if parts.contains(&1) {
        part1();
    }
    if parts.contains(&2) {
        part2();
    }
    if parts.contains(&3) {
        part3();
    }
}
