//! The bank-card acquirer's journal on PostgreSQL against a real server, and the same
//! scenario on both stores.
//!
//! - One scenario body over any [`CardJournal`], run on the SQLite journal and on
//!   PostgreSQL with the real banking rules and cryptograms a simulated card signed:
//!   both give the same answers and the same batch, byte for byte.
//! - Several processes sharing one database, played by several connections on several
//!   threads: one card's counter spent once, every authorised transaction in exactly
//!   one batch, migrations applied once by four processes opening a new database.
//! - The journal called from inside a multi-threaded tokio runtime (`spawn_blocking`,
//!   `block_in_place`), and across a server restart.
//!
//! Each test starts its own throwaway cluster (`tests/common/postgres.rs`). Without
//! PostgreSQL installed, each test says so and returns early, unless `CI` is set: then
//! it fails (`.ci/run` installs PostgreSQL).

mod common;
use common::postgres::PgCluster;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Barrier};

use telepay::acquirer::card::{CardKey, Decision};
use telepay::acquirer::journal::{
    Authorisation, BatchState, Journal, JournalError, Known, ReversalOutcome, TransactionFilter,
    TransactionState,
};
use telepay::acquirer::postgres::PgJournal;
use telepay::acquirer::store::CardJournal;
use telepay::acquirer::system::BankCardAcquirer;
use telepay::messages::{
    Acknowledgement, AcquirerTransaction, Currency, Message, Money, PaymentId, ProvisionGrant,
    ProvisionRequest, PurchaseId, RefusalReason, Reversal, SessionId, Timestamp, Verdict,
};
use telepay::provider::Catalogue;
use telepay::purchase::embedded::test_rules;
use telepay::purchase::{Faults, PartyKind, VirtualClock};

/// 2026-11-25T10:30:00Z, the purchases' clock.
const START: Timestamp = Timestamp(1_795_602_600_000);

/// 2026-11-25T22:00:00Z, the cut-off.
const CUT_OFF: Timestamp = Timestamp(1_795_644_000_000);

// ---------------------------------------------------------------------------------
// Transactions
// ---------------------------------------------------------------------------------

/// `count` Fs the simulated card `sim:cb?seed=1` signed, ATCs increasing: purchases
/// whose F never reaches the acquirer, each F taken from the log.
fn card_signed(count: usize) -> Vec<AcquirerTransaction> {
    let mut network = telepay::testing::demo_network("sim:cb?seed=1", "1234", 1).unwrap();
    let item = Catalogue::demo()
        .unwrap()
        .items()
        .iter()
        .find(|item| !item.is_free() && item.available())
        .map(|item| item.id().clone())
        .unwrap();
    (0..count)
        .map(|n| {
            let clock = VirtualClock::new(START.plus_millis(n as i64 * 60_000), 10);
            let run = network
                .purchase(
                    &item,
                    None,
                    clock,
                    Faults::none().unreachable(PartyKind::Acquirer),
                )
                .unwrap();
            run.log
                .entries
                .into_iter()
                .find_map(|entry| match entry.envelope.message {
                    Message::AcquirerTransaction(f) => Some(*f),
                    _ => None,
                })
                .expect("an F on its way to the acquirer")
        })
        .collect()
}

/// A hand-built F: card `pan`, counter `atc`, `amount` euro cents. Its cryptogram is
/// not a card's: it goes through [`by_counter`], not the banking rules.
fn f(payment: &str, pan: &str, atc: u16, amount: u64) -> AcquirerTransaction {
    common::hand_built_f(payment, pan, atc, Money::new(amount, Currency::EUR), START)
}

/// The counter rule alone, for hand-built Fs: authorised when the ATC is above the
/// card's last and the payment was not reversed; the counter spent when it is new.
fn by_counter(f: &AcquirerTransaction) -> impl FnMut(Known) -> Decision + '_ {
    move |known| {
        let card = f.transaction.means.card().unwrap();
        let fresh = known.history.admits(card.atc);
        let verdict = if fresh && !known.reversed {
            Verdict::Positive {
                authorisation_code: format!("A{:05}", card.atc).into(),
                response_code: *b"00",
                arpc: None,
            }
        } else {
            let reason = if known.reversed {
                RefusalReason::Cancelled
            } else {
                RefusalReason::ReplayedCounter
            };
            Verdict::Negative {
                response_code: reason.response_code(),
                reason,
                arpc: None,
            }
        };
        Decision {
            acknowledgement: Acknowledgement {
                acquirer: f.acquirer.clone(),
                purchase: f.transaction.purchase.clone(),
                payment: f.transaction.payment.clone(),
                verdict,
                provision: None,
            },
            card: CardKey::of(card),
            record_atc: fresh.then_some(card.atc),
        }
    }
}

/// Authorises hand-built `f` on `journal` with [`by_counter`]; whether it was authorised.
fn authorise_by_counter(journal: &mut impl CardJournal, f: &AcquirerTransaction) -> bool {
    let mut decide = by_counter(f);
    match journal.authorise_with(f, START, &mut decide).unwrap() {
        Authorisation::Recorded(g) => g.verdict.is_positive(),
        Authorisation::AlreadyRecorded(stored) => stored.acknowledgement.verdict.is_positive(),
    }
}

fn reversal_of(f: &AcquirerTransaction) -> Reversal {
    Reversal {
        acquirer: f.acquirer.clone(),
        purchase: f.transaction.purchase.clone(),
        payment: f.transaction.payment.clone(),
        reason: "the front-end's deadline passed".into(),
    }
}

fn states(journal: &impl CardJournal) -> Vec<(String, TransactionState, Option<u64>)> {
    let mut out = Vec::new();
    journal
        .transactions(&TransactionFilter::default(), |entry| {
            out.push((entry.payment.0.into(), entry.state, entry.batch));
            Ok::<_, JournalError>(())
        })
        .unwrap();
    out
}

fn batch_bytes(journal: &impl CardJournal, number: u64) -> Vec<u8> {
    let mut bytes = Vec::new();
    journal.write_batch(number, &mut bytes).unwrap();
    bytes
}

fn pg_journal(cluster: &PgCluster, name: &str) -> PgJournal {
    PgJournal::open(&cluster.create_database(name)).unwrap()
}

// ---------------------------------------------------------------------------------
// One scenario, both stores
// ---------------------------------------------------------------------------------

/// What a store answered along [`scenario`], to compare the stores with.
#[derive(Debug, PartialEq, Eq)]
struct Transcript {
    answers: Vec<String>,
    states: Vec<(String, TransactionState, Option<u64>)>,
    batch: Vec<u8>,
}

/// The life of four card-signed Fs through the acquirer and telecollection, on any
/// journal: authorised and kept, a repeated F answered as the first time, a replayed
/// counter refused, a reversal before the cut-off, one batch cut and written, sent,
/// acknowledged.
fn scenario<J: CardJournal>(journal: J, fs: &[AcquirerTransaction]) -> Transcript {
    let [f1, f2, f3, f4] = fs else {
        panic!("four Fs")
    };
    let mut acquirer = BankCardAcquirer::new(test_rules().unwrap(), journal);
    let now = START.plus_millis(3_600_000);
    let mut answers = Vec::new();

    // Authorised, then kept.
    let g1 = acquirer.authorise(f1, now).unwrap();
    assert!(g1.verdict.is_positive(), "{g1:?}");
    let stored = acquirer
        .journal()
        .stored_transaction(&f1.transaction.payment)
        .unwrap()
        .unwrap();
    assert_eq!(
        (stored.state, &stored.acknowledgement),
        (TransactionState::Authorised, &g1)
    );
    // A repeated F gets the same G, later, and records nothing more.
    assert_eq!(acquirer.authorise(f1, now.plus_millis(5_000)).unwrap(), g1);
    answers.push(format!("{:?}", g1.verdict));

    let g2 = acquirer.authorise(f2, now).unwrap();
    let g4 = acquirer.authorise(f4, now).unwrap();
    assert!(g2.verdict.is_positive() && g4.verdict.is_positive());
    // f3's counter is below f4's, already spent: refused as replayed.
    let g3 = acquirer.authorise(f3, now).unwrap();
    match &g3.verdict {
        Verdict::Negative { reason, .. } => assert_eq!(*reason, RefusalReason::ReplayedCounter),
        other => panic!("{other:?}"),
    }
    let card = CardKey::of(f4.transaction.means.card().unwrap());
    assert_eq!(
        acquirer.journal().card_history(&card).unwrap().last_atc,
        Some(f4.transaction.means.card().unwrap().atc)
    );
    answers.extend([&g2, &g4, &g3].map(|g| format!("{:?}", g.verdict)));

    // Reversed before the cut-off: never remitted; a reversal of an unknown payment
    // leaves a marker.
    assert_eq!(
        acquirer.reverse(&reversal_of(f2), now).unwrap(),
        ReversalOutcome::Reversed
    );
    assert_eq!(
        acquirer.reverse(&reversal_of(f2), now).unwrap(),
        ReversalOutcome::AlreadyReversed
    );
    let mut unseen = reversal_of(f1);
    unseen.payment = PaymentId::from("NEVER-SEEN");
    assert_eq!(
        acquirer.reverse(&unseen, now).unwrap(),
        ReversalOutcome::Marked
    );
    assert_eq!(
        acquirer.reverse(&reversal_of(f3), now).unwrap(),
        ReversalOutcome::WasRefused
    );

    // The cut-off: f1 and f4, nothing else; a second finds nothing.
    let journal = acquirer.journal_mut();
    let batch = journal.cut_off(CUT_OFF).unwrap().expect("a batch");
    assert_eq!((batch.number, batch.records), (1, 2));
    assert_eq!(journal.cut_off(CUT_OFF.plus_millis(1)).unwrap(), None);
    let bytes = batch_bytes(journal, 1);
    assert_eq!(u64::try_from(bytes.len()).unwrap(), batch.bytes);
    let mut records = Vec::new();
    journal
        .batch_records(1, |record| {
            records.push(record.payment);
            Ok::<_, JournalError>(())
        })
        .unwrap();
    assert_eq!(
        records,
        [
            f1.transaction.payment.clone(),
            f4.transaction.payment.clone()
        ]
    );
    assert_eq!(
        acquirer.reverse(&reversal_of(f4), now).unwrap(),
        ReversalOutcome::AlreadyBatched {
            batch: 1,
            state: TransactionState::InBatch
        }
    );

    // Telecollection: open → sent (twice: idempotent) → acknowledged (twice).
    let journal = acquirer.journal_mut();
    assert_eq!(
        journal
            .unacknowledged_batches()
            .unwrap()
            .iter()
            .map(|batch| (batch.number, batch.state))
            .collect::<Vec<_>>(),
        [(1, BatchState::Open)]
    );
    journal.mark_sent(1, CUT_OFF.plus_millis(60_000)).unwrap();
    journal.mark_sent(1, CUT_OFF.plus_millis(90_000)).unwrap();
    assert_eq!(
        journal.unacknowledged_batches().unwrap()[0].sent_at,
        Some(CUT_OFF.plus_millis(60_000))
    );
    journal
        .mark_acknowledged(1, CUT_OFF.plus_millis(120_000))
        .unwrap();
    journal
        .mark_acknowledged(1, CUT_OFF.plus_millis(150_000))
        .unwrap();
    assert!(journal.unacknowledged_batches().unwrap().is_empty());
    match journal.mark_sent(1, CUT_OFF.plus_millis(180_000)) {
        Err(JournalError::BatchState { number, state, .. }) => {
            assert_eq!((number, state), (1, BatchState::Acknowledged))
        }
        other => panic!("{other:?}"),
    }
    let summary = journal.batch(1).unwrap().unwrap();
    assert_eq!(
        (summary.state, summary.acknowledged_at),
        (BatchState::Acknowledged, Some(CUT_OFF.plus_millis(120_000)))
    );
    assert_eq!(journal.last_cutoff().unwrap(), Some(CUT_OFF));
    assert_eq!(journal.oldest_pending().unwrap(), None);
    // The same bytes after the states changed.
    assert_eq!(batch_bytes(journal, 1), bytes);
    match journal.write_batch(2, &mut Vec::new()) {
        Err(JournalError::UnknownBatch { number, .. }) => assert_eq!(number, 2),
        other => panic!("{other:?}"),
    }

    Transcript {
        answers,
        states: states(journal),
        batch: bytes,
    }
}

#[test]
fn one_scenario_gives_the_same_answers_and_batch_bytes_on_sqlite_and_postgres() {
    let Some(cluster) = PgCluster::start("scenario") else {
        return;
    };
    let fs = card_signed(4);
    let on_sqlite = scenario(Journal::open_in_memory().unwrap(), &fs);
    let on_postgres = scenario(pg_journal(&cluster, "scenario"), &fs);
    assert_eq!(
        on_sqlite.states,
        [
            (
                fs[0].transaction.payment.0.to_string(),
                TransactionState::AcknowledgedByCentre,
                Some(1)
            ),
            (
                fs[1].transaction.payment.0.to_string(),
                TransactionState::Reversed,
                None
            ),
            (
                fs[3].transaction.payment.0.to_string(),
                TransactionState::AcknowledgedByCentre,
                Some(1)
            ),
            (
                fs[2].transaction.payment.0.to_string(),
                TransactionState::Refused,
                None
            ),
        ]
    );
    assert_eq!(on_postgres, on_sqlite);
    // And through the boxed store a configuration picks.
    let boxed: Box<dyn CardJournal> = Box::new(pg_journal(&cluster, "boxed"));
    assert_eq!(scenario(boxed, &fs), on_sqlite);
}

// ---------------------------------------------------------------------------------
// Several processes sharing one database
// ---------------------------------------------------------------------------------

#[test]
fn two_processes_given_one_card_counter_at_once_authorise_it_once() {
    let Some(cluster) = PgCluster::start("same-atc") else {
        return;
    };
    let address = cluster.create_database("same_atc");
    const ROUNDS: u16 = 25;
    let barrier = Arc::new(Barrier::new(2));
    let threads: Vec<_> = (0..2)
        .map(|process| {
            let address = address.clone();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let mut journal = PgJournal::open(&address).unwrap();
                let mut authorised = Vec::new();
                for atc in 1..=ROUNDS {
                    // Two payments, one card, one counter: a replayed cryptogram.
                    let f = f(&format!("P{process}-{atc}"), "4970100000000014", atc, 500);
                    barrier.wait();
                    if authorise_by_counter(&mut journal, &f) {
                        authorised.push(atc);
                    }
                }
                authorised
            })
        })
        .collect();
    let mut per_counter: BTreeMap<u16, usize> = BTreeMap::new();
    for thread in threads {
        for atc in thread.join().unwrap() {
            *per_counter.entry(atc).or_default() += 1;
        }
    }
    // Every counter authorised exactly once, by one process or the other.
    assert_eq!(
        per_counter,
        (1..=ROUNDS).map(|atc| (atc, 1)).collect::<BTreeMap<_, _>>()
    );
    let journal = PgJournal::open(&address).unwrap();
    let card = CardKey {
        pan: "4970100000000014".into(),
        pan_sequence: 1,
    };
    assert_eq!(journal.card_history(&card).unwrap().last_atc, Some(ROUNDS));
    let listed = states(&journal);
    assert_eq!(listed.len(), usize::from(ROUNDS) * 2);
    assert_eq!(
        listed
            .iter()
            .filter(|(_, state, _)| *state == TransactionState::Authorised)
            .count(),
        usize::from(ROUNDS)
    );
}

#[test]
fn f_and_g_read_back_from_columns_json_where_columns_cannot_state_them_and_older_rows() {
    let Some(cluster) = PgCluster::start("columns") else {
        return;
    };
    let address = cluster.create_database("columns");
    let mut journal = PgJournal::open(&address).unwrap();
    let mut client = postgres::Client::connect(&address, postgres::NoTls).unwrap();
    let json_kept = |client: &mut postgres::Client, payment: &str| -> (bool, bool) {
        let row = client
            .query_one(
                "SELECT f_json IS NOT NULL, g_json IS NOT NULL FROM transactions \
                 WHERE payment = $1",
                &[&payment],
            )
            .unwrap();
        (row.get(0), row.get(1))
    };
    let negative = |f: &AcquirerTransaction, reason: RefusalReason, arpc| Acknowledgement {
        acquirer: f.acquirer.clone(),
        purchase: f.transaction.purchase.clone(),
        payment: f.transaction.payment.clone(),
        verdict: Verdict::Negative {
            response_code: reason.response_code(),
            reason,
            arpc,
        },
        provision: None,
    };
    // (F, G, whether each is kept as JSON): the usual refusal with an ARPC, an amount
    // beyond i64, a provision asked for, a G granting one.
    let mut huge = f("HUGE", "4970100000000014", 2, 1);
    huge.request.amount.minor = u64::MAX;
    let mut provision = f("PROVISION", "4970100000000014", 3, 500);
    provision.provision = Some(ProvisionRequest {
        segment: SessionId::from("SEG-1"),
        amount: Money::new(5_000, Currency::EUR),
    });
    let granted = f("GRANTED", "4970100000000014", 4, 700);
    let mut grant = negative(&granted, RefusalReason::CardExpired, None);
    grant.provision = Some(ProvisionGrant {
        segment: SessionId::from("SEG-2"),
        amount: Money::new(9_000, Currency::EUR),
        sequence_floor: 2,
    });
    let refused = f("REFUSED", "4970100000000014", 1, 1_250);
    // And one to turn into a row as recorded before migration 3, below.
    let older = f("OLDER", "4970100000000022", 1, 300);
    let older_g = negative(&older, RefusalReason::CardExpired, None);
    let cases = [
        (
            negative(&refused, RefusalReason::ReplayedCounter, Some([0xA5; 8])),
            refused,
            (false, false),
        ),
        (
            negative(&huge, RefusalReason::AmountOutOfLimits, None),
            huge,
            (true, false),
        ),
        (
            negative(&provision, RefusalReason::NotAnAuthorisationRequest, None),
            provision,
            (true, false),
        ),
        (grant, granted, (false, true)),
        (older_g.clone(), older.clone(), (false, false)),
    ];
    for (g, f, json) in cases {
        let payment = f.transaction.payment.0.to_string();
        let decision = |_| Decision {
            acknowledgement: g.clone(),
            card: CardKey::of(f.transaction.means.card().unwrap()),
            record_atc: None,
        };
        let recorded = journal
            .authorise_with(&f, START, &mut { decision })
            .unwrap();
        assert_eq!(recorded, Authorisation::Recorded(g.clone()), "{payment}");
        let stored = journal
            .stored_transaction(&f.transaction.payment)
            .unwrap()
            .unwrap();
        assert_eq!(
            (&stored.transaction, &stored.acknowledgement),
            (&f, &g),
            "{payment}"
        );
        assert_eq!(json_kept(&mut client, &payment), json, "{payment}");
    }
    // A row recorded before migration 3: F and G as JSON, no column of the rest.
    let g = older_g;
    client
        .execute(
            "UPDATE transactions SET f_json = $1, g_json = $2, service = NULL, \
             designation = NULL, designation_digest = NULL, amount_exponent = NULL, \
             nonce = NULL, valid_until = NULL, accepted_means = NULL, terminal = NULL, \
             card_amount = NULL, card_currency = NULL, pin_verified = NULL, \
             response_code = NULL, arpc = NULL, refusal_reason = NULL WHERE payment = $3",
            &[
                &serde_json::to_string(&older).unwrap(),
                &serde_json::to_string(&g).unwrap(),
                &"OLDER",
            ],
        )
        .unwrap();
    let stored = journal
        .stored_transaction(&older.transaction.payment)
        .unwrap()
        .unwrap();
    assert_eq!((&stored.transaction, &stored.acknowledgement), (&older, &g));
    // Without its JSON, such a row is corrupt, and said so.
    client
        .execute(
            "UPDATE transactions SET f_json = NULL, terminal = 'T-1' WHERE payment = $1",
            &[&"OLDER"],
        )
        .unwrap();
    let error = journal
        .stored_transaction(&older.transaction.payment)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("row OLDER: column `card_amount` holds \"NULL\""),
        "{error}"
    );
}

#[test]
fn a_repeated_f_sent_to_the_other_process_gets_the_stored_g() {
    let Some(cluster) = PgCluster::start("repeat") else {
        return;
    };
    let address = cluster.create_database("repeat");
    let mut first = PgJournal::open(&address).unwrap();
    let mut second = PgJournal::open(&address).unwrap();
    let f1 = f("REPEATED", "4970100000000014", 7, 1_250);
    let g = match first
        .authorise_with(&f1, START, &mut by_counter(&f1))
        .unwrap()
    {
        Authorisation::Recorded(g) => g,
        other => panic!("{other:?}"),
    };
    // The other process: not decided again (the rules would refuse the spent counter).
    let mut asked = false;
    let again = second
        .authorise_with(&f1, START.plus_millis(1_000), &mut |known| {
            asked = true;
            by_counter(&f1)(known)
        })
        .unwrap();
    assert!(!asked, "a recorded payment is not decided again");
    match again {
        Authorisation::AlreadyRecorded(stored) => {
            assert_eq!(stored.acknowledgement, g);
            assert_eq!(stored.transaction, f1);
            assert_eq!(stored.state, TransactionState::Authorised);
        }
        other => panic!("{other:?}"),
    }
    // A reversal taken by the second is seen by the first's next F for that payment.
    let mut f2 = f("REVERSED-FIRST", "4970100000000022", 1, 300);
    f2.transaction.purchase = PurchaseId::from("PUR-REVERSED-FIRST");
    assert_eq!(
        second.reverse(&reversal_of(&f2), START).unwrap(),
        ReversalOutcome::Marked
    );
    assert!(!authorise_by_counter(&mut first, &f2));
    assert_eq!(
        states(&second),
        [
            ("REPEATED".into(), TransactionState::Authorised, None),
            ("REVERSED-FIRST".into(), TransactionState::Refused, None),
        ]
    );
}

#[test]
fn interleaved_authorisations_and_cut_offs_of_two_processes_put_each_transaction_in_one_batch() {
    let Some(cluster) = PgCluster::start("cut-offs") else {
        return;
    };
    let address = cluster.create_database("cut_offs");
    const PER_PROCESS: u16 = 200;
    const CARDS: u16 = 16;
    let barrier = Arc::new(Barrier::new(2));
    let threads: Vec<_> = (0..2u16)
        .map(|process| {
            let address = address.clone();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let mut journal = PgJournal::open(&address).unwrap();
                barrier.wait();
                let mut authorised = Vec::new();
                let mut batches = Vec::new();
                for n in 0..PER_PROCESS {
                    // Both processes use every card; their counters interleave, so some
                    // come after a higher one and are refused as replayed.
                    let card = n % CARDS;
                    let atc = (n / CARDS) * 2 + process + 1;
                    let payment = format!("P{process}-{n:03}");
                    let f = f(
                        &payment,
                        &format!("49701000000{card:05}"),
                        atc,
                        u64::from(n) + 1,
                    );
                    if authorise_by_counter(&mut journal, &f) {
                        authorised.push(payment);
                    }
                    if n % 23 == process * 11 {
                        let at = CUT_OFF.plus_millis(i64::from(n));
                        if let Some(batch) = journal.cut_off(at).unwrap() {
                            batches.push(batch.number);
                        }
                    }
                }
                (authorised, batches)
            })
        })
        .collect();
    let mut authorised = BTreeSet::new();
    let mut cut = Vec::new();
    for thread in threads {
        let (payments, batches) = thread.join().unwrap();
        authorised.extend(payments);
        cut.extend(batches);
    }
    let mut journal = PgJournal::open(&address).unwrap();
    if let Some(last) = journal.cut_off(CUT_OFF.plus_millis(1_000_000)).unwrap() {
        cut.push(last.number);
    }
    cut.sort_unstable();
    // Batches numbered 1, 2, … with no gap and none twice, whoever cut them.
    let numbers: Vec<u64> = journal
        .batches()
        .unwrap()
        .iter()
        .map(|batch| batch.number)
        .collect();
    assert_eq!(cut, numbers);
    assert_eq!(numbers, (1..=numbers.len() as u64).collect::<Vec<_>>());
    assert!(numbers.len() >= 4, "{numbers:?}");
    // Every authorised transaction in exactly one batch, and nothing else in any.
    let mut in_batches = BTreeMap::new();
    for summary in journal.batches().unwrap() {
        let mut records = 0;
        let mut total = 0;
        journal
            .batch_records(summary.number, |record| {
                records += 1;
                total += record.amount_minor;
                *in_batches.entry(record.payment.0.to_string()).or_insert(0) += 1;
                Ok::<_, JournalError>(())
            })
            .unwrap();
        assert_eq!(records, summary.records);
        assert_eq!(summary.totals.len(), 1);
        assert_eq!(
            (summary.totals[0].records, summary.totals[0].total_minor),
            (records, total)
        );
        // Its bytes are those fixed at its cut-off.
        assert_eq!(
            batch_bytes(&journal, summary.number).len() as u64,
            summary.bytes
        );
    }
    assert!(in_batches.values().all(|&count| count == 1));
    assert_eq!(
        in_batches.keys().cloned().collect::<BTreeSet<_>>(),
        authorised
    );
    // Each card's counters come in pairs, one per process; whichever way they
    // interleave, at least one process's run of counters goes through (exactly 200 when
    // one process is always first on every card, as happened on a loaded CI machine).
    assert!(
        authorised.len() >= usize::from(PER_PROCESS),
        "{}",
        authorised.len()
    );
    let listed = states(&journal);
    assert_eq!(listed.len(), usize::from(PER_PROCESS) * 2);
    assert!(
        listed
            .iter()
            .all(|(_, state, _)| *state == TransactionState::InBatch
                || *state == TransactionState::Refused)
    );
    // Per card, the counters authorised only grow in the order they were recorded.
    let mut last: BTreeMap<String, u16> = BTreeMap::new();
    journal
        .transactions(&TransactionFilter::default(), |entry| {
            if entry.state == TransactionState::InBatch {
                let previous = last.insert(entry.pan.clone(), entry.atc);
                assert!(previous.is_none_or(|previous| previous < entry.atc));
            }
            Ok::<_, JournalError>(())
        })
        .unwrap();
    assert_eq!(last.len(), usize::from(CARDS));
}

#[test]
fn two_processes_cutting_off_after_every_authorisation_take_turns() {
    let Some(cluster) = PgCluster::start("every-cut") else {
        return;
    };
    let address = cluster.create_database("every_cut");
    const ROUNDS: u16 = 150;
    let barrier = Arc::new(Barrier::new(2));
    let threads: Vec<_> = (0..2u16)
        .map(|process| {
            let address = address.clone();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let mut journal = PgJournal::open(&address).unwrap();
                let mut cut = Vec::new();
                barrier.wait();
                for round in 0..ROUNDS {
                    // Each cut-off meets the other process's cut-offs and commits: the
                    // batch number must be taken by one process at a time.
                    let f = f(
                        &format!("P{process}-{round:03}"),
                        &format!("49701000000000{process}0"),
                        round + 1,
                        100,
                    );
                    assert!(authorise_by_counter(&mut journal, &f));
                    if let Some(batch) = journal.cut_off(CUT_OFF).unwrap() {
                        cut.push((batch.number, batch.records));
                    }
                }
                cut
            })
        })
        .collect();
    let mut cut: Vec<(u64, u64)> = threads
        .into_iter()
        .flat_map(|thread| thread.join().unwrap())
        .collect();
    cut.sort_unstable();
    let numbers: Vec<u64> = cut.iter().map(|(number, _)| *number).collect();
    assert_eq!(numbers, (1..=numbers.len() as u64).collect::<Vec<_>>());
    assert_eq!(
        cut.iter().map(|(_, records)| records).sum::<u64>(),
        u64::from(ROUNDS) * 2
    );
    let journal = PgJournal::open(&address).unwrap();
    assert!(
        states(&journal)
            .iter()
            .all(|(_, state, batch)| *state == TransactionState::InBatch && batch.is_some())
    );
}

#[test]
fn four_processes_opening_a_new_database_at_once_migrate_it_once() {
    let Some(cluster) = PgCluster::start("migrations") else {
        return;
    };
    let address = cluster.create_database("migrations");
    let barrier = Arc::new(Barrier::new(4));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let address = address.clone();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                PgJournal::open(&address).map(|_| ())
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap().unwrap();
    }
    let mut client = postgres::Client::connect(&address, postgres::NoTls).unwrap();
    let rows = client
        .query("SELECT version, name FROM schema_migrations", &[])
        .unwrap();
    let applied: Vec<(i64, String)> = rows.iter().map(|row| (row.get(0), row.get(1))).collect();
    assert_eq!(
        applied,
        [
            (1, "card_journal".to_owned()),
            (3, "card_journal".to_owned())
        ]
    );
    // Opened again: nothing to do, nothing changed.
    let journal = PgJournal::open(&address).unwrap();
    assert_eq!(journal.acquirer().unwrap(), None);
    let count: i64 = client
        .query_one("SELECT count(*) FROM schema_migrations", &[])
        .unwrap()
        .get(0);
    assert_eq!(count, 2, "the card journal's migrations 1 and 3");
}

#[test]
fn a_database_migrated_by_a_newer_build_is_refused() {
    let Some(cluster) = PgCluster::start("newer") else {
        return;
    };
    let address = cluster.create_database("newer");
    drop(PgJournal::open(&address).unwrap());
    cluster.record_migration(&address, 2, "future");
    match PgJournal::open(&address) {
        Err(JournalError::MigrationVersion { path, found, known }) => {
            assert_eq!((path, found, known), (address.clone(), 2, 3));
        }
        other => panic!("{other:?}"),
    }
    let refusal = PgJournal::open(&address).err().unwrap().to_string();
    assert_eq!(
        refusal,
        format!(
            "journal {address}: the database records migration 2, which this build does not \
             know (its newest is 3): a newer build migrated it"
        )
    );
}

// ---------------------------------------------------------------------------------
// Inside tokio, and across a restart
// ---------------------------------------------------------------------------------

#[test]
fn the_journal_works_from_blocking_threads_of_a_multi_threaded_runtime() {
    let Some(cluster) = PgCluster::start("tokio") else {
        return;
    };
    let address = cluster.create_database("tokio");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (first, second) = runtime.block_on(async move {
        // Opened, used and dropped in spawn_blocking, as a task hands work to a thread.
        let by_spawn = tokio::task::spawn_blocking({
            let address = address.clone();
            move || {
                let mut journal = PgJournal::open(&address).unwrap();
                authorise_by_counter(&mut journal, &f("SPAWNED", "4970100000000014", 1, 100))
            }
        })
        .await
        .unwrap();
        // Opened in spawn_blocking, then used from a task through block_in_place, as
        // the network node calls its roles; dropped in the task.
        let mut journal = tokio::task::spawn_blocking(move || PgJournal::open(&address).unwrap())
            .await
            .unwrap();
        let in_place = tokio::task::block_in_place(|| {
            authorise_by_counter(&mut journal, &f("IN-PLACE", "4970100000000014", 2, 100))
        });
        let listed = tokio::task::block_in_place(|| states(&journal));
        assert_eq!(listed.len(), 2);
        drop(journal);
        (by_spawn, in_place)
    });
    assert!(first && second);
}

#[test]
fn a_server_restart_between_authorisations_is_reconnected_once_and_loses_nothing() {
    let Some(cluster) = PgCluster::start("restart") else {
        return;
    };
    let address = cluster.create_database("restart");
    let mut journal = PgJournal::open(&address).unwrap();
    let f1 = f("BEFORE", "4970100000000014", 1, 100);
    let f2 = f("AFTER", "4970100000000014", 2, 200);
    assert_eq!(journal.prepared_statements(), 0);
    assert!(authorise_by_counter(&mut journal, &f1));
    // The authorisation's statements are prepared once on the connection and kept.
    let prepared = journal.prepared_statements();
    assert!(prepared > 0);

    cluster.restart();
    // The connection was cut: the next call connects again and goes on, preparing its
    // statements again on the new connection (the old ones went with the old one).
    assert!(authorise_by_counter(&mut journal, &f2));
    let again = journal.prepared_statements();
    assert!(again > 0 && again <= prepared, "{again} of {prepared}");
    // Nothing lost or doubled; the repeated F still gets its G, through statements
    // already prepared.
    assert!(authorise_by_counter(&mut journal, &f1));
    assert_eq!(journal.prepared_statements(), again);
    assert_eq!(
        states(&journal),
        [
            ("BEFORE".into(), TransactionState::Authorised, None),
            ("AFTER".into(), TransactionState::Authorised, None),
        ]
    );

    // Restarted in the middle of a batch's life: cut, restart, sent, restart,
    // acknowledged; the batch's bytes unchanged.
    let batch = journal.cut_off(CUT_OFF).unwrap().unwrap();
    let bytes = batch_bytes(&journal, batch.number);
    cluster.restart();
    journal.mark_sent(batch.number, CUT_OFF).unwrap();
    assert_eq!(batch_bytes(&journal, batch.number), bytes);
    cluster.restart();
    journal.mark_acknowledged(batch.number, CUT_OFF).unwrap();
    assert!(journal.unacknowledged_batches().unwrap().is_empty());
    assert_eq!(journal.cut_off(CUT_OFF.plus_millis(1)).unwrap(), None);

    // Down: a clear error naming the database and what failed; up again: it goes on.
    cluster.stop();
    let f3 = f("WHILE-DOWN", "4970100000000014", 3, 300);
    match journal.authorise_with(&f3, START, &mut by_counter(&f3)) {
        Err(error @ JournalError::Postgres { .. }) => {
            let text = error.to_string();
            assert!(
                text.starts_with(&format!("journal {address}: record: ")),
                "{text}"
            );
        }
        other => panic!("{other:?}"),
    }
    cluster.start_again();
    assert!(authorise_by_counter(&mut journal, &f3));
    assert_eq!(states(&journal).len(), 3);
}

/// The server crashes (`pg_ctl stop -m immediate`) while one acquirer process
/// authorises and cuts off batches without a pause: whatever transaction was in flight
/// is cut off, and the server recovers from its write-ahead log when it starts again.
/// The acquirer retries each F until it gets its G, as the front-end does. Afterwards
/// every G given survived the crash (a repeated F gets the same G), no payment is
/// recorded twice, and every authorised transaction is in exactly one batch.
#[test]
fn a_server_crash_mid_transaction_loses_no_acknowledgement_and_batches_each_once() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    let Some(cluster) = PgCluster::start("crash") else {
        return;
    };
    let address = cluster.create_database("crash");
    const COUNT: usize = 600;
    let fs: Vec<AcquirerTransaction> = (0..COUNT)
        .map(|n| {
            let atc = u16::try_from(n / 20 + 1).unwrap();
            f(
                &format!("P{n:04}"),
                &format!("49701000000{:05}", n % 20),
                atc,
                100 + n as u64,
            )
        })
        .collect();
    let done = Arc::new(AtomicUsize::new(0));
    let worker = {
        let fs = fs.clone();
        let done = Arc::clone(&done);
        let address = address.clone();
        std::thread::spawn(move || {
            let mut journal = PgJournal::open(&address).unwrap();
            let mut given = BTreeMap::new();
            let mut failures = 0usize;
            let mut cut_offs = 0i64;
            for (n, f) in fs.iter().enumerate() {
                let started = Instant::now();
                let g = loop {
                    let mut decide = by_counter(f);
                    match journal.authorise_with(f, START, &mut decide) {
                        Ok(Authorisation::Recorded(g)) => break g,
                        Ok(Authorisation::AlreadyRecorded(stored)) => break stored.acknowledgement,
                        Err(_) => {
                            failures += 1;
                            assert!(
                                started.elapsed() < Duration::from_secs(60),
                                "{} still failing after a minute",
                                f.transaction.payment
                            );
                            std::thread::sleep(Duration::from_millis(20));
                        }
                    }
                };
                given.insert(f.transaction.payment.0.clone(), g);
                if n % 25 == 24 {
                    // A cut-off the crash may cut off too: then it simply did not
                    // happen, and the next one takes its transactions.
                    cut_offs += 1;
                    if journal.cut_off(CUT_OFF.plus_millis(cut_offs)).is_err() {
                        failures += 1;
                    }
                }
                done.store(n + 1, Ordering::Relaxed);
            }
            (journal, given, failures)
        })
    };
    // Crash it a third of the way through, while the worker keeps going.
    let start = Instant::now();
    while done.load(Ordering::Relaxed) < COUNT / 3 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the worker stalled"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    cluster.crash();
    let crashed_at = done.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(300));
    cluster.start_again();
    let (mut journal, given, failures) = worker.join().unwrap();
    assert!(
        crashed_at < COUNT && failures > 0,
        "the crash came mid-run ({crashed_at} of {COUNT} done) and was felt ({failures} failed calls)"
    );

    // Every G given survived: a repeated F gets the same one.
    assert_eq!(given.len(), COUNT);
    for f in &fs {
        let mut decide = by_counter(f);
        match journal.authorise_with(f, START, &mut decide).unwrap() {
            Authorisation::AlreadyRecorded(stored) => {
                assert_eq!(stored.acknowledgement, given[&f.transaction.payment.0]);
            }
            Authorisation::Recorded(g) => panic!("{g:?} was lost in the crash"),
        }
    }
    // Each payment once, each authorised one in exactly one batch.
    journal.cut_off(CUT_OFF.plus_millis(1_000_000)).unwrap();
    let recorded = states(&journal);
    assert_eq!(recorded.len(), COUNT, "no payment recorded twice or lost");
    let authorised: BTreeSet<&str> = given
        .iter()
        .filter(|(_, g)| g.verdict.is_positive())
        .map(|(payment, _)| payment.as_str())
        .collect();
    assert_eq!(authorised.len(), COUNT, "every counter was fresh");
    let mut in_batches = BTreeMap::new();
    for (payment, state, batch) in &recorded {
        assert_eq!(*state, TransactionState::InBatch, "{payment}");
        *in_batches.entry(batch.unwrap()).or_insert(0usize) += 1;
    }
    let mut listed = BTreeSet::new();
    for batch in in_batches.keys() {
        journal
            .batch_records(*batch, |record| {
                assert!(
                    listed.insert(record.payment.0.clone()),
                    "{} in two batches",
                    record.payment
                );
                Ok::<_, JournalError>(())
            })
            .unwrap();
    }
    assert_eq!(listed.len(), COUNT);
}

// ---------------------------------------------------------------------------------
// The CLI
// ---------------------------------------------------------------------------------

/// `telepay ARGS`, with an empty data directory (so that only `--store` can find a
/// journal): exit status, standard output and standard error.
fn telepay(data: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    common::run_telepay(data, args, "")
}

#[test]
fn the_acquirer_commands_take_the_postgres_journal_with_store() {
    let Some(cluster) = PgCluster::start("cli") else {
        return;
    };
    let address = cluster.create_database("cli");
    let mut journal = PgJournal::open(&address).unwrap();
    for (n, amount) in [(1u16, 250u64), (2, 1_000)] {
        assert!(authorise_by_counter(
            &mut journal,
            &f(&format!("CLI-{n}"), "4970100000000014", n, amount)
        ));
    }
    let data = common::TempDir::new("pg-cli-data");

    let (ok, listed, _) = telepay(data.path(), &["acquirer", "journal", "--store", &address]);
    assert!(ok);
    assert!(
        listed.contains("CLI-1") && listed.contains("CLI-2"),
        "{listed}"
    );
    assert!(listed.ends_with("2 transactions\n"), "{listed}");
    assert!(listed.contains("497010******0014"), "{listed}");

    let (ok, cut, _) = telepay(
        data.path(),
        &[
            "acquirer",
            "cutoff",
            "--force",
            "--at",
            "2026-11-25T22:00:00Z",
            "--store",
            &address,
        ],
    );
    assert!(ok);
    assert!(
        cut.starts_with("batch 1 of ACQ-1 cut off at 2026-11-25T22:00:00"),
        "{cut}"
    );

    let file = data.file("batch-1.txt");
    let (ok, written, _) = telepay(
        data.path(),
        &[
            "acquirer",
            "remit",
            "--batch",
            "1",
            "--out",
            &file.display().to_string(),
            "--store",
            &address,
        ],
    );
    assert!(ok, "{written}");
    assert_eq!(std::fs::read(&file).unwrap(), batch_bytes(&journal, 1));

    // Without --store, the (empty) data directory has no journal.
    let (ok, _, error) = telepay(data.path(), &["acquirer", "journal"]);
    assert!(!ok);
    assert!(error.contains("acquirer-journal.sqlite"), "{error}");

    // A server that is not there: the error names the database, never a password.
    let (ok, _, error) = telepay(
        data.path(),
        &[
            "acquirer",
            "journal",
            "--store",
            &format!(
                "postgres://telepay:s3cret@/nowhere?host={}&port=1",
                data.path().display()
            ),
        ],
    );
    assert!(!ok);
    assert!(error.contains("postgres://telepay:***@/nowhere"), "{error}");
    assert!(!error.contains("s3cret"), "{error}");
}

#[test]
fn serve_acquirer_card_keeps_its_journal_in_the_configured_database() {
    use telepay::net::config::ServiceConfig;
    use telepay::net::pki::{self, InitOptions, ServiceRole};
    use telepay::net::service::Service;

    let Some(cluster) = PgCluster::start("serve") else {
        return;
    };
    let address = cluster.create_database("serve");
    let dir = common::TempDir::new("pg-serve");
    pki::init(
        &dir.file("pki"),
        &pki::demo_peers(),
        &InitOptions::default(),
    )
    .unwrap();
    let path = dir.file("acq1.toml");
    let config = |journal: &str| {
        format!(
            "listen = \"127.0.0.1:0\"\n[tls]\ncert = \"pki/acq1.acquirer-card.telepay.pem\"\n\
             key = \"pki/acq1.acquirer-card.telepay-key.pem\"\nca = \"pki/ca.pem\"\n\
             accept = [\"role:frontend\"]\n[acquirer_card]\n{journal}\n"
        )
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        // Opened from inside the runtime, served, stopped: the journal is dropped by a
        // task, which the client's own runtime must survive.
        std::fs::write(&path, config(&format!("store = \"{address}\""))).unwrap();
        let loaded = ServiceConfig::load(&path).unwrap();
        let service = Service::start(ServiceRole::CardAcquirer, &loaded, &path)
            .await
            .unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(service.run(async {
            let _ = stopped.await;
        }));
        let _ = stop.send(());
        task.await.unwrap().unwrap();

        // Both a file and a database: refused by name.
        std::fs::write(
            &path,
            config(&format!("journal = \"acq1.sqlite\"\nstore = \"{address}\"")),
        )
        .unwrap();
        let loaded = ServiceConfig::load(&path).unwrap();
        match Service::start(ServiceRole::CardAcquirer, &loaded, &path).await {
            Err(error) => assert!(
                error.to_string().ends_with(
                    "[acquirer_card]: give one of journal (a SQLite file) and store \
                     (a PostgreSQL database), not both"
                ),
                "{error}"
            ),
            Ok(_) => panic!("two journals accepted"),
        }
    });
    // The service made the schema.
    let mut client = postgres::Client::connect(&address, postgres::NoTls).unwrap();
    let count: i64 = client
        .query_one("SELECT count(*) FROM schema_migrations", &[])
        .unwrap()
        .get(0);
    assert_eq!(count, 2, "the card journal's migrations 1 and 3");
}
