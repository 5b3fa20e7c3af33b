//! The Virtual Wallet's accounts on PostgreSQL against a real server, and the same
//! scenario on both stores.
//!
//! - One scenario body over any [`WalletAccounts`], run on the SQLite store and on
//!   PostgreSQL: the same answers, step by step, and the same rows after.
//! - Several wallet-acquirer processes sharing one database, played by several
//!   connections on several threads: one account debited by two at once never below
//!   what the rules allow, a repeated payment debited once whichever process gets it,
//!   a payment id used on two accounts at once kept once, and the migrations of a new
//!   database applied once by four processes (two card acquirers, two wallets).
//! - The store called from inside a multi-threaded tokio runtime (`spawn_blocking`),
//!   across a server restart, and `telepay serve acquirer-wallet` with
//!   `store = "postgres://…"` answering a wallet purchase over mutual TLS.
//!
//! Each test starts its own throwaway cluster (`tests/common/postgres.rs`). Without
//! PostgreSQL installed, each test says so and returns early, unless `CI` is set: then
//! it fails.

mod common;
use common::postgres::PgCluster;
use common::wallet::Payer;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};

use p256::ecdsa::SigningKey;
use p256::ecdsa::signature::Signer;
use telepay::acquirer::postgres::PgJournal;
use telepay::acquirer::wallet::{
    AccountKey, Credit, CreditReference, DisputeRecording, DisputeStatement, Outcome,
    PgWalletStore, Refusal, RefusedTransaction, Reservation, SessionId, SignedDispute,
    SignedWalletPayment, WalletAccounts, WalletReversal, WalletStore, WalletStoreError,
};
use telepay::messages::{
    Acknowledgement, AcquirerId, Currency, DisputeId, MerchantId, Money, PaymentId, PurchaseId,
    RefusalReason, Reversal, ServiceId, Timestamp, Verdict,
};

/// 2026-11-26T00:00:00Z.
const NOW: Timestamp = Timestamp(1_795_651_200_000);

fn eur(minor: u64) -> Money {
    Money::new(minor, Currency::EUR)
}

impl Payer {
    fn pay(&self, payment: &str, amount: u64, sequence: u64) -> SignedWalletPayment {
        self.pay_at(payment, eur(amount), sequence, NOW)
    }

    fn dispute(&self, dispute: &str, payment: &str) -> SignedDispute {
        let statement = DisputeStatement {
            dispute: DisputeId::from(dispute),
            account: self.account(),
            merchant: MerchantId::from("FE-1"),
            payment: PaymentId::from(payment),
            reason: "not delivered".into(),
            time: NOW,
        };
        SignedDispute::sign(statement, |message| self.key.sign(message)).unwrap()
    }
}

fn credit(reference: &str, account: &AccountKey, amount: u64) -> Credit {
    Credit {
        reference: CreditReference::from(reference),
        account: account.clone(),
        amount: eur(amount),
    }
}

fn reversal(payment: &str) -> Reversal {
    Reversal {
        acquirer: AcquirerId::from("wallet"),
        purchase: PurchaseId::from("PU-1"),
        payment: PaymentId::from(payment),
        reason: "not delivered".into(),
    }
}

/// A store on a new database `name` of `cluster`.
fn pg_store(cluster: &PgCluster, name: &str) -> PgWalletStore {
    PgWalletStore::open(&cluster.create_database(name)).unwrap()
}

/// `account` open in euros and credited with `balance` under `R-0-FINGERPRINT`.
fn fund(store: &mut dyn WalletAccounts, account: &AccountKey, balance: u64) {
    store.open_account(account, Currency::EUR, NOW).unwrap();
    let reference = format!("R-0-{}", account.fingerprint());
    let credited = store
        .credit(&credit(&reference, account, balance), NOW)
        .unwrap();
    assert!(matches!(credited, Outcome::Done(_)), "{credited:?}");
}

/// A new database `name` of `cluster` holding `payer`'s account funded with
/// `balance`; its address.
fn funded_database(cluster: &PgCluster, name: &str, payer: &Payer, balance: u64) -> String {
    let address = cluster.create_database(name);
    fund(
        &mut PgWalletStore::open(&address).unwrap(),
        &payer.account(),
        balance,
    );
    address
}

// ---------------------------------------------------------------------------------
// One scenario, both stores
// ---------------------------------------------------------------------------------

/// Every answer of the scenario, then everything the store keeps of it, as text: the
/// same on both stores.
fn scenario(store: &mut dyn WalletAccounts) -> Vec<String> {
    let alice = Payer::new(7);
    let key = alice.account();
    let mut said = Vec::new();
    let mut say = |step: &str, answer: String| said.push(format!("{step}: {answer}"));

    // Open, once; not again in another currency.
    let opened = store.open_account(&key, Currency::EUR, NOW).unwrap();
    assert!(matches!(opened, Outcome::Done(_)), "{opened:?}");
    say("open", format!("{opened:?}"));
    let again = store.open_account(&key, Currency::EUR, NOW).unwrap();
    assert!(matches!(again, Outcome::Repeated(_)), "{again:?}");
    say("open again", format!("{again:?}"));
    let usd = store.open_account(&key, Currency::USD, NOW).unwrap();
    assert!(
        matches!(usd, Outcome::Refused(Refusal::WrongCurrency { .. })),
        "{usd:?}"
    );
    say("open in USD", format!("{usd:?}"));

    // Credited once per reference.
    let first = store.credit(&credit("R-1", &key, 1_000), NOW).unwrap();
    assert!(matches!(&first, Outcome::Done(state) if state.balance == 1_000));
    say("credit", format!("{first:?}"));
    let twice = store.credit(&credit("R-1", &key, 1_000), NOW).unwrap();
    assert!(matches!(&twice, Outcome::Repeated(state) if state.balance == 1_000));
    say("credit again", format!("{twice:?}"));
    let other = store.credit(&credit("R-1", &key, 5), NOW).unwrap();
    assert_eq!(
        other,
        Outcome::Refused(Refusal::CreditReferenceReused {
            reference: CreditReference::from("R-1")
        })
    );
    say("another credit, same reference", format!("{other:?}"));

    // Debited; the same signed payment again is the same outcome.
    let paid = store.pay(&alice.pay("P-1", 100, 1), NOW).unwrap();
    let Outcome::Done(decision) = &paid else {
        panic!("not debited: {paid:?}");
    };
    assert_eq!(decision.state.balance, 900);
    say("pay", format!("{paid:?}"));
    let repeated = store.pay(&alice.pay("P-1", 100, 1), NOW).unwrap();
    assert_eq!(repeated, Outcome::Repeated(decision.clone()));
    say("pay again", format!("{repeated:?}"));

    // More than the balance: refused, nothing changed.
    let too_much = store.pay(&alice.pay("P-2", 5_000, 2), NOW).unwrap();
    assert_eq!(
        too_much,
        Outcome::Refused(Refusal::InsufficientFunds {
            request: "payment P-2".into(),
            amount: eur(5_000),
            available: eur(900),
        })
    );
    say("pay too much", format!("{too_much:?}"));

    // A session: opened by its first payment, settled with the next, once.
    let session = SessionId::from("S-1");
    let reservation = Reservation {
        session: session.clone(),
        account: key.clone(),
        merchant: MerchantId::from("FE-1"),
        amount: eur(300),
    };
    let first_of_session = alice.pay("P-3", 40, 3);
    let reserved = store
        .reserve_with_payment(&first_of_session, &reservation, NOW)
        .unwrap();
    assert!(
        matches!(&reserved, Outcome::Done((state, _)) if state.reserved == 300),
        "{reserved:?}"
    );
    say("reserve", format!("{reserved:?}"));
    let payments = [first_of_session, alice.pay("P-4", 60, 4)];
    let settled = store.settle(&session, &payments, NOW).unwrap();
    assert!(
        matches!(&settled, Outcome::Done(s) if s.debited == eur(100) && s.state.balance == 800),
        "{settled:?}"
    );
    say("settle", format!("{settled:?}"));
    let settled_again = store.settle(&session, &payments, NOW).unwrap();
    assert!(matches!(settled_again, Outcome::Repeated(_)));
    say("settle again", format!("{settled_again:?}"));
    // A reservation without a payment, released whole by an empty settlement.
    let plain = Reservation {
        session: SessionId::from("S-2"),
        amount: eur(50),
        ..reservation
    };
    say(
        "reserve without payment",
        format!("{:?}", store.reserve(&plain, NOW).unwrap()),
    );
    say(
        "settle empty",
        format!(
            "{:?}",
            store.settle(&SessionId::from("S-2"), &[], NOW).unwrap()
        ),
    );

    // Reversed: credited back once, never debited again.
    let reversed = store.reverse(&reversal("P-1"), NOW).unwrap();
    assert!(
        matches!(&reversed, WalletReversal::Refunded { state, .. } if state.balance == 900),
        "{reversed:?}"
    );
    say("reverse", format!("{reversed:?}"));
    let reversed_again = store.reverse(&reversal("P-1"), NOW).unwrap();
    assert!(matches!(
        reversed_again,
        WalletReversal::AlreadyRefunded { .. }
    ));
    say("reverse again", format!("{reversed_again:?}"));
    let after = store.pay(&alice.pay("P-1", 100, 1), NOW).unwrap();
    assert_eq!(
        after,
        Outcome::Refused(Refusal::Reversed {
            payment: PaymentId::from("P-1")
        })
    );
    say("pay the reversed", format!("{after:?}"));

    // A refused transaction's G kept, the first one standing.
    let refused = RefusedTransaction {
        digest: [0x2F; 32],
        acknowledgement: Acknowledgement {
            acquirer: AcquirerId::from("wallet"),
            purchase: PurchaseId::from("PU-2"),
            payment: PaymentId::from("P-2"),
            verdict: Verdict::refused(RefusalReason::InsufficientFunds),
            provision: None,
        },
    };
    store.record_refused_transaction(&refused, NOW).unwrap();
    let mut other_g = refused.clone();
    other_g.digest = [0; 32];
    store.record_refused_transaction(&other_g, NOW).unwrap();
    assert_eq!(
        store
            .refused_transaction(&PaymentId::from("P-2"))
            .unwrap()
            .as_ref(),
        Some(&refused)
    );

    // A dispute of the settled payment, recorded once.
    let disputed = store
        .record_dispute(&alice.dispute("D-1", "P-4"), NOW)
        .unwrap();
    assert_eq!(
        disputed,
        DisputeRecording::Recorded {
            case: "WD-000001".into()
        }
    );
    say("dispute", format!("{disputed:?}"));
    let disputed_again = store
        .record_dispute(&alice.dispute("D-1", "P-4"), NOW)
        .unwrap();
    assert_eq!(
        disputed_again,
        DisputeRecording::Repeated {
            case: "WD-000001".into()
        }
    );
    say("dispute again", format!("{disputed_again:?}"));
    say(
        "dispute the reversed",
        format!(
            "{:?}",
            store
                .record_dispute(&alice.dispute("D-2", "P-1"), NOW)
                .unwrap()
        ),
    );

    // What the store keeps.
    let account = store.account(&key).unwrap().unwrap();
    assert_eq!((account.balance, account.reserved), (900, 0));
    said.push(format!("account: {account:?}"));
    said.push(format!("payments: {:?}", store.payments(&key).unwrap()));
    said.push(format!("credits: {:?}", store.credits(&key).unwrap()));
    for session in ["S-1", "S-2"] {
        let session = SessionId::from(session);
        said.push(format!(
            "{session}: {:?} {:?} {:?}",
            store.provision(&session).unwrap(),
            store.opening(&session).unwrap(),
            store.settlement_refusals(&session).unwrap()
        ));
    }
    for payment in ["P-1", "P-2", "P-4"] {
        said.push(format!(
            "{payment} reversed: {}",
            store.is_reversed(&PaymentId::from(payment)).unwrap()
        ));
    }
    said.push(format!("disputes: {:?}", store.disputes(&key).unwrap()));
    said.push(format!(
        "D-1: {:?}",
        store.dispute(&DisputeId::from("D-1")).unwrap()
    ));
    said
}

#[test]
fn one_scenario_gives_the_same_answers_and_rows_on_sqlite_and_postgres() {
    let Some(cluster) = PgCluster::start("wallet-scenario") else {
        return;
    };
    let mut sqlite = WalletStore::open_in_memory().unwrap();
    let mut postgres = pg_store(&cluster, "scenario");
    let on_sqlite = scenario(&mut sqlite);
    let on_postgres = scenario(&mut postgres);
    assert_eq!(on_sqlite.len(), on_postgres.len());
    for (sqlite, postgres) in on_sqlite.iter().zip(&on_postgres) {
        assert_eq!(sqlite, postgres);
    }
}

// ---------------------------------------------------------------------------------
// Several processes at once
// ---------------------------------------------------------------------------------

/// What a process's payments came to.
#[derive(Debug, Default)]
struct Tally {
    debited: u64,
    refused_for_balance: u64,
    /// Refused as stale and signed again with a new sequence, as a payer device does.
    resigned: u64,
}

#[test]
fn two_processes_debiting_one_account_never_take_it_below_what_the_rules_allow() {
    const EACH: u64 = 200;
    const AMOUNT: u64 = 7;
    const AFFORDABLE: u64 = 250;
    let Some(cluster) = PgCluster::start("wallet-debits") else {
        return;
    };
    let payer = Arc::new(Payer::new(9));
    let address = funded_database(&cluster, "debits", &payer, AFFORDABLE * AMOUNT);
    // The payer device's counter: each payment signed with the next sequence. Two
    // processes receive them in any order, so one may arrive after a later one and be
    // refused as stale: it is signed again with a new sequence (the same payment id).
    let sequence = Arc::new(AtomicU64::new(1));
    let barrier = Arc::new(Barrier::new(2));
    let threads: Vec<_> = (0..2)
        .map(|process| {
            let (address, payer) = (address.clone(), Arc::clone(&payer));
            let (sequence, barrier) = (Arc::clone(&sequence), Arc::clone(&barrier));
            std::thread::spawn(move || {
                // Waits at the barrier whatever happens, so that the other thread
                // never waits for this one forever.
                let store = PgWalletStore::open(&address);
                let mut tally = Tally::default();
                barrier.wait();
                let mut store = store.unwrap();
                for n in 0..EACH {
                    let id = format!("PAY-{process}-{n}");
                    for _ in 0..1_000 {
                        let signed =
                            payer.pay(&id, AMOUNT, sequence.fetch_add(1, Ordering::SeqCst));
                        match store.pay(&signed, NOW).unwrap() {
                            Outcome::Done(_) => tally.debited += 1,
                            Outcome::Refused(Refusal::InsufficientFunds { .. }) => {
                                tally.refused_for_balance += 1;
                            }
                            Outcome::Refused(Refusal::StaleSequence { .. }) => {
                                tally.resigned += 1;
                                continue;
                            }
                            other => panic!("{id}: {other:?}"),
                        }
                        break;
                    }
                }
                tally
            })
        })
        .collect();
    let tallies: Vec<Tally> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let debited: u64 = tallies.iter().map(|t| t.debited).sum();
    let refused: u64 = tallies.iter().map(|t| t.refused_for_balance).sum();
    assert_eq!(
        (debited, refused),
        (AFFORDABLE, 2 * EACH - AFFORDABLE),
        "{tallies:?}"
    );
    // Both processes did debit: they ran at once, not one after the other.
    assert!(tallies.iter().all(|t| t.debited > 0), "{tallies:?}");

    let store = PgWalletStore::open(&address).unwrap();
    let account = store.account(&payer.account()).unwrap().unwrap();
    assert_eq!((account.balance, account.reserved), (0, 0));
    let kept = store.payments(&payer.account()).unwrap();
    assert_eq!(kept.len() as u64, AFFORDABLE);
    let sum: u64 = kept.iter().map(|p| p.signed.payment.amount.minor).sum();
    assert_eq!(sum, AFFORDABLE * AMOUNT);
    // The account's last sequence is the highest debited.
    assert_eq!(
        Some(account.last_sequence),
        kept.iter().map(|p| p.signed.payment.sequence).max()
    );
}

/// The answers of two processes (two stores on two threads), paying at once in each
/// of `rounds` rounds: payment `PREFIX-n`, sequence n, 10 cents, signed by the
/// process's payer. An error is kept, not raised, until every round has met at the
/// barrier: a thread that panicked would leave the other waiting.
fn race(
    address: &str,
    rounds: u64,
    payers: [&Arc<Payer>; 2],
    prefix: &'static str,
) -> [Vec<Result<Outcome<telepay::acquirer::wallet::Decision>, String>>; 2] {
    let barrier = Arc::new(Barrier::new(2));
    let threads = payers.map(|payer| {
        let (address, payer, barrier) =
            (address.to_owned(), Arc::clone(payer), Arc::clone(&barrier));
        std::thread::spawn(move || {
            let mut store = PgWalletStore::open(&address).map_err(|e| e.to_string());
            (1..=rounds)
                .map(|n| {
                    let signed = payer.pay(&format!("{prefix}-{n}"), 10, n);
                    barrier.wait();
                    let store = store.as_mut().map_err(|e| e.clone())?;
                    store.pay(&signed, NOW).map_err(|e| e.to_string())
                })
                .collect::<Vec<_>>()
        })
    });
    threads.map(|thread| thread.join().unwrap())
}

#[test]
fn one_payment_sent_to_two_processes_at_once_is_debited_once() {
    const ROUNDS: u64 = 30;
    let Some(cluster) = PgCluster::start("wallet-same-payment") else {
        return;
    };
    let payer = Arc::new(Payer::new(11));
    let address = funded_database(&cluster, "same", &payer, 10_000);
    let answers = race(&address, ROUNDS, [&payer, &payer], "SAME");
    for (n, (one, other)) in answers[0].iter().zip(&answers[1]).enumerate() {
        let (one, other) = (one.as_ref().unwrap(), other.as_ref().unwrap());
        // One debited it, the other found it debited: the same decision.
        let (done, repeated) = match (one, other) {
            (Outcome::Done(done), Outcome::Repeated(repeated))
            | (Outcome::Repeated(repeated), Outcome::Done(done)) => (done, repeated),
            other => panic!("round {n}: {other:?}"),
        };
        assert_eq!(done, repeated, "round {n}");
    }
    let store = PgWalletStore::open(&address).unwrap();
    assert_eq!(
        store.payments(&payer.account()).unwrap().len() as u64,
        ROUNDS
    );
    assert_eq!(
        store.account(&payer.account()).unwrap().unwrap().balance,
        10_000 - 10 * ROUNDS
    );
}

#[test]
fn one_payment_id_used_on_two_accounts_at_once_is_kept_once() {
    const ROUNDS: u64 = 20;
    let Some(cluster) = PgCluster::start("wallet-same-id") else {
        return;
    };
    let address = cluster.create_database("same-id");
    let payers = [Arc::new(Payer::new(21)), Arc::new(Payer::new(22))];
    let mut setup = PgWalletStore::open(&address).unwrap();
    for payer in &payers {
        fund(&mut setup, &payer.account(), 1_000);
    }
    let answers = race(&address, ROUNDS, [&payers[0], &payers[1]], "ID");
    for (n, (one, other)) in answers[0].iter().zip(&answers[1]).enumerate() {
        let (one, other) = (one.as_ref().unwrap(), other.as_ref().unwrap());
        let id = PaymentId::from(format!("ID-{}", n + 1).as_str());
        let reused = Outcome::Refused(Refusal::PaymentIdReused { payment: id });
        assert!(
            matches!((one, other), (Outcome::Done(_), r) | (r, Outcome::Done(_)) if *r == reused),
            "round {n}: {one:?} / {other:?}"
        );
    }
    let kept: usize = payers
        .iter()
        .map(|payer| setup.payments(&payer.account()).unwrap().len())
        .sum();
    assert_eq!(kept as u64, ROUNDS);
}

#[test]
fn concurrent_openings_credits_and_disputes_under_one_key_are_recorded_once() {
    let Some(cluster) = PgCluster::start("wallet-unique") else {
        return;
    };
    let address = cluster.create_database("unique");
    let payers = [Arc::new(Payer::new(31)), Arc::new(Payer::new(32))];
    let mut setup = PgWalletStore::open(&address).unwrap();
    for (n, payer) in payers.iter().enumerate() {
        fund(&mut setup, &payer.account(), 1_000);
        let paid = setup
            .pay(&payer.pay(&format!("D-PAY-{n}"), 10, 1), NOW)
            .unwrap();
        assert!(matches!(paid, Outcome::Done(_)));
    }
    let newcomer = Arc::new(Payer::new(33));
    let barrier = Arc::new(Barrier::new(2));
    // Each thread: the same new account opened (one opens it), the same credit
    // reference on its own account (one account gets it), then the same dispute id
    // for its own payment (one is recorded).
    let threads: Vec<_> = payers
        .iter()
        .enumerate()
        .map(|(n, payer)| {
            let (address, payer, barrier) =
                (address.clone(), Arc::clone(payer), Arc::clone(&barrier));
            let newcomer = Arc::clone(&newcomer);
            std::thread::spawn(move || {
                // Errors are kept, not raised, until the last barrier: a thread that
                // panicked would leave the other waiting.
                let mut store = PgWalletStore::open(&address).map_err(|e| e.to_string());
                barrier.wait();
                let opened = store.as_mut().map_err(|e| e.clone()).and_then(|store| {
                    store
                        .open_account(&newcomer.account(), Currency::EUR, NOW)
                        .map_err(|e| e.to_string())
                });
                barrier.wait();
                let credited = store.as_mut().map_err(|e| e.clone()).and_then(|store| {
                    store
                        .credit(&credit("SHARED-REF", &payer.account(), 5), NOW)
                        .map_err(|e| e.to_string())
                });
                barrier.wait();
                let disputed = store.as_mut().map_err(|e| e.clone()).and_then(|store| {
                    store
                        .record_dispute(&payer.dispute("SHARED-D", &format!("D-PAY-{n}")), NOW)
                        .map_err(|e| e.to_string())
                });
                (opened.unwrap(), (credited.unwrap(), disputed.unwrap()))
            })
        })
        .collect();
    let (opened, answers): (Vec<_>, Vec<_>) =
        threads.into_iter().map(|t| t.join().unwrap()).unzip();
    assert!(
        matches!(
            opened.as_slice(),
            [Outcome::Done(_), Outcome::Repeated(_)] | [Outcome::Repeated(_), Outcome::Done(_)]
        ),
        "{opened:?}"
    );
    let credited = answers
        .iter()
        .filter(|(credited, _)| matches!(credited, Outcome::Done(_)))
        .count();
    let reused = answers
        .iter()
        .filter(|(credited, _)| {
            *credited
                == Outcome::Refused(Refusal::CreditReferenceReused {
                    reference: CreditReference::from("SHARED-REF"),
                })
        })
        .count();
    assert_eq!((credited, reused), (1, 1), "{answers:?}");
    let recorded = answers
        .iter()
        .filter(|(_, disputed)| matches!(disputed, DisputeRecording::Recorded { .. }))
        .count();
    assert_eq!(recorded, 1, "{answers:?}");
    let all: usize = payers
        .iter()
        .map(|payer| setup.disputes(&payer.account()).unwrap().len())
        .sum();
    assert_eq!(all, 1);
}

#[test]
fn four_processes_opening_a_new_database_at_once_migrate_it_once() {
    let Some(cluster) = PgCluster::start("wallet-migrations") else {
        return;
    };
    let address = cluster.create_database("migrations");
    let barrier = Arc::new(Barrier::new(4));
    // Two card acquirers and two wallet acquirers, at once.
    let threads: Vec<_> = (0..4)
        .map(|n| {
            let (address, barrier) = (address.clone(), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                if n % 2 == 0 {
                    PgWalletStore::open(&address)
                        .map(drop)
                        .map_err(|e| e.to_string())
                } else {
                    PgJournal::open(&address)
                        .map(drop)
                        .map_err(|e| e.to_string())
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap().unwrap();
    }
    let mut client = postgres::Client::connect(&address, postgres::NoTls).unwrap();
    let applied: Vec<(i64, String)> = client
        .query(
            "SELECT version, name FROM schema_migrations ORDER BY version",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(
        applied,
        [
            (1, "card_journal".to_owned()),
            (2, "wallet".to_owned()),
            (3, "card_journal".to_owned())
        ]
    );
    // Opened again: nothing to do; the store works.
    let mut store = PgWalletStore::open(&address).unwrap();
    fund(&mut store, &Payer::new(3).account(), 10);
}

#[test]
fn the_card_journal_and_the_wallet_share_a_database_opened_in_either_order() {
    let Some(cluster) = PgCluster::start("wallet-order") else {
        return;
    };
    for (name, wallet_first) in [("wallet-first", true), ("journal-first", false)] {
        let address = cluster.create_database(name);
        if wallet_first {
            drop(PgWalletStore::open(&address).unwrap());
            drop(PgJournal::open(&address).unwrap());
        } else {
            drop(PgJournal::open(&address).unwrap());
            drop(PgWalletStore::open(&address).unwrap());
        }
        let mut client = postgres::Client::connect(&address, postgres::NoTls).unwrap();
        let count: i64 = client
            .query_one("SELECT count(*) FROM schema_migrations", &[])
            .unwrap()
            .get(0);
        assert_eq!(count, 3, "{name}: the journal's 1 and 3, the wallet's 2");
        let mut store = PgWalletStore::open(&address).unwrap();
        fund(&mut store, &Payer::new(4).account(), 10);
        assert_eq!(
            PgJournal::open(&address)
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Ok(()),
            "{name}"
        );
    }
}

#[test]
fn a_database_migrated_by_a_newer_build_is_refused() {
    let Some(cluster) = PgCluster::start("wallet-newer") else {
        return;
    };
    let address = cluster.create_database("newer");
    drop(PgWalletStore::open(&address).unwrap());
    cluster.record_migration(&address, 3, "future");
    match PgWalletStore::open(&address) {
        Err(WalletStoreError::MigrationVersion { path, found, known }) => {
            assert_eq!((path, found, known), (address.clone(), 3, 3));
        }
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------------------------
// Inside tokio, and across a restart
// ---------------------------------------------------------------------------------

#[test]
fn a_payment_works_from_a_blocking_thread_of_a_multi_threaded_runtime() {
    let Some(cluster) = PgCluster::start("wallet-tokio") else {
        return;
    };
    let address = cluster.create_database("tokio");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (paid, balance) = runtime.block_on(async move {
        // Opened, used, and dropped in spawn_blocking, as the network node does.
        let mut store = tokio::task::spawn_blocking(move || {
            let mut store = PgWalletStore::open(&address).unwrap();
            fund(&mut store, &Payer::new(5).account(), 500);
            store
        })
        .await
        .unwrap();
        tokio::task::spawn_blocking(move || {
            let payer = Payer::new(5);
            let paid = store.pay(&payer.pay("T-1", 120, 1), NOW).unwrap();
            let balance = store.account(&payer.account()).unwrap().map(|a| a.balance);
            (paid, balance)
        })
        .await
        .unwrap()
    });
    assert!(matches!(paid, Outcome::Done(_)), "{paid:?}");
    assert_eq!(balance, Some(380));
}

#[test]
fn a_server_restart_between_payments_loses_and_doubles_nothing() {
    let Some(cluster) = PgCluster::start("wallet-restart") else {
        return;
    };
    let mut store = pg_store(&cluster, "restart");
    let payer = Payer::new(6);
    fund(&mut store, &payer.account(), 1_000);
    let mut debited = Vec::new();
    for n in 1..=6u64 {
        // Restarted before every other payment: the call finds its connection closed
        // and connects once more.
        if n % 2 == 0 {
            cluster.restart();
        }
        let signed = payer.pay(&format!("R-{n}"), 100, n);
        let paid = store.pay(&signed, NOW).unwrap();
        assert!(matches!(paid, Outcome::Done(_)), "{n}: {paid:?}");
        debited.push(signed);
    }
    cluster.restart();
    // Each again after the restart: found debited, none debited twice.
    for signed in &debited {
        assert!(matches!(
            store.pay(signed, NOW).unwrap(),
            Outcome::Repeated(_)
        ));
    }
    let account = store.account(&payer.account()).unwrap().unwrap();
    assert_eq!((account.balance, account.last_sequence), (400, 6));
    assert_eq!(store.payments(&payer.account()).unwrap().len(), 6);

    // A server that stays down: the error names the database, and the next call,
    // once it is back, works.
    cluster.stop();
    let error = store.account(&payer.account()).unwrap_err();
    assert!(
        matches!(error, WalletStoreError::Postgres { .. }),
        "{error:?}"
    );
    cluster.start_again();
    assert_eq!(
        store.account(&payer.account()).unwrap().map(|a| a.balance),
        Some(400)
    );
}

// ---------------------------------------------------------------------------------
// The CLI and the service
// ---------------------------------------------------------------------------------

/// `telepay ARGS` on the data directory `data`, `stdin` as standard input: exit
/// status, standard output and standard error.
fn telepay(args: &[&str], stdin: &str, data: &std::path::Path) -> (bool, String, String) {
    common::run_telepay(data, args, stdin)
}

#[test]
fn the_wallet_commands_take_the_postgres_accounts_with_store() {
    let Some(cluster) = PgCluster::start("wallet-cli") else {
        return;
    };
    let address = cluster.create_database("cli");
    let data = common::TempDir::new("pg-wallet-cli");
    let (ok, created, error) = telepay(
        &["keys", "new", "--user", "alice", "--pin-stdin"],
        "correct horse\n",
        data.path(),
    );
    assert!(ok, "{error}");
    let fingerprint = created
        .lines()
        .find_map(|line| line.strip_prefix("  fingerprint "))
        .expect("keys new prints the fingerprint")
        .to_owned();

    let with_store = |args: &[&str]| {
        let mut args = args.to_vec();
        args.extend(["--user", "alice", "--store", address.as_str()]);
        telepay(&args, "", data.path())
    };
    let (ok, opened, error) = with_store(&["wallet", "open"]);
    assert!(ok, "{error}");
    assert!(opened.contains(&fingerprint), "{opened}");
    let (ok, reloaded, error) = with_store(&[
        "wallet",
        "reload",
        "--amount",
        "20.00",
        "--reference",
        "CLI-1",
    ]);
    assert!(ok, "{error}");
    assert!(reloaded.contains("balance now 20.00 EUR"), "{reloaded}");
    let (ok, again, error) = with_store(&[
        "wallet",
        "reload",
        "--amount",
        "20.00",
        "--reference",
        "CLI-1",
    ]);
    assert!(ok, "{error}");
    assert!(again.contains("already credited"), "{again}");
    let (ok, balance, error) = with_store(&["wallet", "balance"]);
    assert!(ok, "{error}");
    assert!(balance.contains("balance: 20.00 EUR"), "{balance}");
    assert!(balance.contains("credits: 1"), "{balance}");

    // In PostgreSQL, not in the data directory's file.
    assert!(!data.file("wallet.sqlite").exists());
    let store = PgWalletStore::open(&address).unwrap();
    let credits: Vec<String> = store
        .credits(&find_account(&address, &fingerprint))
        .unwrap()
        .iter()
        .map(|credit| credit.reference.0.to_string())
        .collect();
    assert_eq!(credits, ["CLI-1"]);

    // Without --store, the (empty) data directory has no account.
    let (ok, _, error) = telepay(&["wallet", "balance", "--user", "alice"], "", data.path());
    assert!(!ok);
    assert!(error.contains("wallet.sqlite"), "{error}");

    // A server that is not there: the error names the database, never a password.
    let nowhere = format!(
        "postgres://telepay:s3cret@/nowhere?host={}&port=1",
        data.path().display()
    );
    let (ok, _, error) = telepay(
        &["wallet", "balance", "--user", "alice", "--store", &nowhere],
        "",
        data.path(),
    );
    assert!(!ok);
    assert!(error.contains("postgres://telepay:***@/nowhere"), "{error}");
    assert!(!error.contains("s3cret"), "{error}");
}

/// The account whose fingerprint `keys new` printed, found among the database's (it
/// has one).
fn find_account(address: &str, fingerprint: &str) -> AccountKey {
    let mut client = postgres::Client::connect(address, postgres::NoTls).unwrap();
    let keys: Vec<Vec<u8>> = client
        .query("SELECT key FROM wallet_accounts", &[])
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    let key = AccountKey::from_sec1(keys.first().expect("one account")).unwrap();
    assert_eq!(key.fingerprint(), fingerprint);
    key
}

#[test]
fn serve_acquirer_wallet_debits_a_wallet_purchase_in_the_configured_database() {
    use telepay::messages::{Means, ProviderId};
    use telepay::net::local::{LocalDeployment, LocalOptions};
    use telepay::terminal::client::RequestResult;
    use telepay::terminal::payer::{MeansChoice, ScriptedUser, WalletSigner};

    let Some(cluster) = PgCluster::start("wallet-serve") else {
        return;
    };
    let address = cluster.create_database("serve");
    let key = SigningKey::from_slice(&[0x5A; 32]).unwrap();
    let account = AccountKey::new(key.verifying_key());
    fund(
        &mut PgWalletStore::open(&address).unwrap(),
        &account,
        10_000,
    );
    let dir = common::TempDir::new("pg-wallet-serve");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let run = runtime.block_on(async {
        // The service opens the store from inside the runtime, and drops it from a
        // task as it stops.
        let deployment = LocalDeployment::start(
            dir.path(),
            &LocalOptions {
                wallet: true,
                wallet_store: Some(address.clone()),
                ..LocalOptions::default()
            },
        )
        .await
        .unwrap();
        let terminal = deployment
            .terminal(
                "t1",
                telepay::testing::powered("sim:cb").unwrap(),
                ScriptedUser::with_pin("1234"),
                |payer| {
                    payer
                        .with_wallet(WalletSigner::from_signing_key(key))
                        .with_means(MeansChoice::Fixed(Means::VirtualWallet))
                },
            )
            .unwrap();
        let run = terminal
            .purchase(
                ProviderId::from("demo-publisher"),
                ServiceId::from("market-report-2026"),
                None,
                std::time::Duration::from_secs(20),
            )
            .await;
        deployment.stop().await;
        run
    });
    assert!(
        matches!(run.result, Some(RequestResult::Delivered(_))),
        "{:?}\n{:?}",
        run.result,
        run.troubles
    );
    // 2.50 EUR debited in PostgreSQL; the SQLite file was never made.
    let store = PgWalletStore::open(&address).unwrap();
    assert_eq!(
        store.account(&account).unwrap().map(|a| a.balance),
        Some(10_000 - 250)
    );
    assert_eq!(store.payments(&account).unwrap().len(), 1);
    assert!(!dir.file("wallet.sqlite").exists());
}
