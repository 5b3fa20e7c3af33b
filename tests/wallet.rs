//! The Virtual Wallet acquirer (claim 10) through its store: payments signed by keys
//! of the terminal's key store, credits, provisions for incremental payment and their
//! settlement, on a real SQLite file reopened as after a crash.

mod common;

use common::TempDir;
use common::wallet::Payer;
use proptest::prelude::*;
use telepay::acquirer::journal::Journal;
use telepay::acquirer::wallet::{
    AccountKey, AccountState, Credit, CreditReference, Decision, Outcome, ProvisionState,
    ProvisionTally, Refusal, Reservation, SessionId, SignedWalletPayment, WalletError,
    WalletPayment, WalletStore,
};
use telepay::messages::{Currency, MerchantId, Money, PaymentId, ServiceId, Timestamp};
use telepay::terminal::keystore::{CostPolicy, KdfCost, KeyStore, Pin, SystemRandom};

const NOW: Timestamp = Timestamp(1_795_651_200_000); // 2026-11-26T00:00:00Z

fn eur(minor: u64) -> Money {
    Money::new(minor, Currency::EUR)
}

impl Payer {
    /// The payment of `amount`, the account's `sequence`-th, made `sequence` ms after
    /// NOW.
    fn pay(&self, payment: &str, amount: Money, sequence: u64) -> SignedWalletPayment {
        self.pay_at(
            payment,
            amount,
            sequence,
            NOW.plus_millis(i64::try_from(sequence).unwrap_or(0)),
        )
    }
}

fn credit(reference: &str, account: &AccountKey, amount: Money) -> Credit {
    Credit {
        reference: CreditReference::from(reference),
        account: account.clone(),
        amount,
    }
}

fn reservation(session: &str, account: &AccountKey, amount: Money) -> Reservation {
    Reservation {
        session: SessionId::from(session),
        account: account.clone(),
        merchant: MerchantId::from("FE-1"),
        amount,
    }
}

/// A store with `payer`'s account open in euros and credited with `balance`.
fn funded(store: &mut WalletStore, payer: &Payer, balance: u64) -> AccountState {
    store
        .open_account(&payer.account(), Currency::EUR, NOW)
        .unwrap();
    match store
        .credit(&credit("R-0", &payer.account(), eur(balance)), NOW)
        .unwrap()
    {
        Outcome::Done(state) => state,
        other => panic!("not credited: {other:?}"),
    }
}

fn state(payer: &Payer, balance: u64, reserved: u64, last_sequence: u64) -> AccountState {
    AccountState {
        key: payer.account(),
        currency: Currency::EUR,
        balance,
        reserved,
        last_sequence,
    }
}

#[test]
fn a_key_store_key_pays_and_the_signed_request_is_kept() {
    let mut keys = KeyStore::new(CostPolicy::AllowTestCost);
    let pin = Pin::new("correct horse").unwrap();
    let created = telepay::terminal::keystore::Timestamp(1_795_651_200);
    keys.add(
        "alice",
        &pin,
        KdfCost::for_tests(),
        created,
        &mut SystemRandom,
    )
    .unwrap();
    let alice = keys.unlock("alice", &pin).unwrap();
    let account = AccountKey::new(alice.verifying_key());
    let mut store = WalletStore::open_in_memory().unwrap();
    store.open_account(&account, Currency::EUR, NOW).unwrap();
    store
        .credit(&credit("R-1", &account, eur(1_000)), NOW)
        .unwrap();
    let payment = WalletPayment {
        account: account.clone(),
        merchant: MerchantId::from("FE-1"),
        service: ServiceId::from("report-2026"),
        payment: PaymentId::from("PAY-1"),
        amount: eur(250),
        sequence: 1,
        time: NOW,
    };
    let signed = SignedWalletPayment::sign(payment, |message| alice.sign(message)).unwrap();
    let outcome = store.pay(&signed, NOW.plus_millis(5)).unwrap();
    let mut after = AccountState::new(account.clone(), Currency::EUR);
    after.balance = 750;
    after.last_sequence = 1;
    assert_eq!(
        outcome,
        Outcome::Done(Decision {
            state: after.clone(),
            debited: eur(250)
        })
    );
    assert_eq!(store.account(&account).unwrap(), Some(after));
    // Non-repudiation: the very bytes signed and the signature, which still verify.
    let kept = store.payments(&account).unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].signed, signed);
    assert_eq!(kept[0].session, None);
    assert_eq!(kept[0].recorded_at, NOW.plus_millis(5));
    assert_eq!(kept[0].signed.verify(), Ok(()));
}

#[test]
fn payments_refused_change_nothing() {
    let payer = Payer::new(1);
    let thief = Payer::new(2);
    let mut forged = thief.pay("PAY-FORGED", eur(100), 2);
    forged.payment.account = payer.account();
    let mut tampered = payer.pay("PAY-TAMPERED", eur(100), 2);
    tampered.payment.amount = eur(1);
    // (what the payer device sends, the refusal)
    let cases: Vec<(SignedWalletPayment, Refusal)> = vec![
        (
            forged,
            Refusal::Signature(WalletError::BadSignature {
                payment: PaymentId::from("PAY-FORGED"),
                account: payer.account().fingerprint(),
            }),
        ),
        (
            tampered,
            Refusal::Signature(WalletError::BadSignature {
                payment: PaymentId::from("PAY-TAMPERED"),
                account: payer.account().fingerprint(),
            }),
        ),
        (
            payer.pay("PAY-REPLAY", eur(100), 1),
            Refusal::StaleSequence {
                payment: PaymentId::from("PAY-REPLAY"),
                sequence: 1,
                last: 1,
            },
        ),
        (
            payer.pay("PAY-LATE", eur(100), 0),
            Refusal::StaleSequence {
                payment: PaymentId::from("PAY-LATE"),
                sequence: 0,
                last: 1,
            },
        ),
        (
            payer.pay("PAY-BIG", eur(401), 2),
            Refusal::InsufficientFunds {
                request: "payment PAY-BIG".into(),
                amount: eur(401),
                available: eur(400),
            },
        ),
        (
            payer.pay("PAY-USD", Money::new(100, Currency::USD), 2),
            Refusal::WrongCurrency {
                request: "payment PAY-USD".into(),
                expected: Currency::EUR,
                received: Currency::USD,
            },
        ),
        (
            payer.pay("PAY-ZERO", eur(0), 2),
            Refusal::ZeroAmount {
                request: "payment PAY-ZERO".into(),
            },
        ),
        (
            thief.pay("PAY-NOBODY", eur(1), 1),
            Refusal::UnknownAccount {
                request: "payment PAY-NOBODY".into(),
                account: thief.account().fingerprint(),
            },
        ),
    ];
    let mut store = WalletStore::open_in_memory().unwrap();
    funded(&mut store, &payer, 500);
    let first = store.pay(&payer.pay("PAY-1", eur(100), 1), NOW).unwrap();
    assert!(matches!(first, Outcome::Done(_)), "{first:?}");
    let before = state(&payer, 400, 0, 1);
    for (payment, expected) in cases {
        assert_eq!(
            store.pay(&payment, NOW).unwrap(),
            Outcome::Refused(expected.clone()),
            "{expected}"
        );
        assert_eq!(
            store.account(&payer.account()).unwrap().as_ref(),
            Some(&before)
        );
    }
    assert_eq!(store.payments(&payer.account()).unwrap().len(), 1);
}

#[test]
fn refusals_read_as_sentences_naming_the_payment() {
    let payer = Payer::new(1);
    let mut store = WalletStore::open_in_memory().unwrap();
    funded(&mut store, &payer, 400);
    let messages = [
        (
            payer.pay("PAY-BIG", eur(401), 1),
            "payment PAY-BIG: 4.01 EUR asked, 4.00 EUR available",
        ),
        (
            payer.pay("PAY-USD", Money::new(1, Currency::USD), 1),
            "payment PAY-USD: amount in currency USD, the account is in EUR",
        ),
    ];
    for (payment, expected) in messages {
        let Outcome::Refused(refusal) = store.pay(&payment, NOW).unwrap() else {
            panic!("{expected}: not refused");
        };
        assert_eq!(refusal.to_string(), expected);
    }
}

#[test]
fn a_credit_repeated_by_reference_counts_once() {
    let payer = Payer::new(1);
    let mut store = WalletStore::open_in_memory().unwrap();
    store
        .open_account(&payer.account(), Currency::EUR, NOW)
        .unwrap();
    let reload = credit("BANK-7", &payer.account(), eur(300));
    assert_eq!(
        store.credit(&reload, NOW).unwrap(),
        Outcome::Done(state(&payer, 300, 0, 0))
    );
    assert_eq!(
        store.credit(&reload, NOW.plus_millis(1)).unwrap(),
        Outcome::Repeated(state(&payer, 300, 0, 0))
    );
    assert_eq!(
        store
            .credit(&credit("BANK-7", &payer.account(), eur(301)), NOW)
            .unwrap(),
        Outcome::Refused(Refusal::CreditReferenceReused {
            reference: CreditReference::from("BANK-7")
        })
    );
    assert_eq!(store.credits(&payer.account()).unwrap(), [reload]);
    // An account opened again in its currency is the same account; in another, refused.
    assert_eq!(
        store
            .open_account(&payer.account(), Currency::EUR, NOW)
            .unwrap(),
        Outcome::Repeated(state(&payer, 300, 0, 0))
    );
    assert_eq!(
        store
            .open_account(&payer.account(), Currency::GBP, NOW)
            .unwrap(),
        Outcome::Refused(Refusal::WrongCurrency {
            request: format!("account {}", payer.account()),
            expected: Currency::EUR,
            received: Currency::GBP,
        })
    );
}

#[test]
fn session_end_settles_exactly_the_sum_and_releases_the_rest() {
    let payer = Payer::new(1);
    let mut store = WalletStore::open_in_memory().unwrap();
    funded(&mut store, &payer, 1_000);
    let session = SessionId::from("S-1");
    let Outcome::Done((reserved, provision)) = store
        .reserve(&reservation("S-1", &payer.account(), eur(300)), NOW)
        .unwrap()
    else {
        panic!("not reserved");
    };
    assert_eq!(reserved, state(&payer, 1_000, 300, 0));
    // While reserved, only the rest is available to other payments and provisions.
    assert_eq!(
        store
            .reserve(&reservation("S-2", &payer.account(), eur(701)), NOW)
            .unwrap(),
        Outcome::Refused(Refusal::InsufficientFunds {
            request: "session S-2".into(),
            amount: eur(701),
            available: eur(700)
        })
    );
    // The front-end checks each payment itself, with no round trip.
    let payments = [
        payer.pay("PAY-1", eur(40), 1),
        payer.pay("PAY-2", eur(40), 2),
        payer.pay("PAY-3", eur(45), 3),
    ];
    let mut tally = ProvisionTally::new(provision, 0);
    for payment in &payments {
        tally.admit(payment).unwrap();
    }
    assert_eq!((tally.total(), tally.remaining()), (eur(125), eur(175)));

    let Outcome::Done(settlement) = store.settle(&session, &payments, NOW).unwrap() else {
        panic!("not settled");
    };
    assert_eq!(settlement.debited, eur(125));
    assert_eq!(settlement.released, eur(175));
    assert_eq!(settlement.settled, payments);
    assert!(settlement.refused.is_empty());
    assert_eq!(settlement.state, state(&payer, 875, 0, 3));
    assert_eq!(
        store.account(&payer.account()).unwrap(),
        Some(settlement.state.clone())
    );
    let kept = store.payments(&payer.account()).unwrap();
    assert_eq!(kept.len(), 3);
    assert!(kept.iter().all(|p| p.session.as_ref() == Some(&session)));
    assert_eq!(
        store.provision(&session).unwrap().map(|p| p.state),
        Some(ProvisionState::Settled)
    );

    // Settling again changes nothing, whatever comes with it.
    let again = store
        .settle(&session, &[payer.pay("PAY-4", eur(10), 4)], NOW)
        .unwrap();
    let mut expected = settlement.clone();
    expected.refused.clear();
    assert_eq!(again, Outcome::Repeated(expected));
    assert_eq!(
        store.account(&payer.account()).unwrap(),
        Some(settlement.state)
    );
    // So does reserving again under the same session; another reservation under it
    // is refused.
    let Outcome::Repeated((_, provision)) = store
        .reserve(&reservation("S-1", &payer.account(), eur(300)), NOW)
        .unwrap()
    else {
        panic!("not repeated");
    };
    assert_eq!(provision.state, ProvisionState::Settled);
    assert_eq!(
        store
            .reserve(&reservation("S-1", &payer.account(), eur(1)), NOW)
            .unwrap(),
        Outcome::Refused(Refusal::SessionReused { session })
    );
    assert_eq!(
        store.settle(&SessionId::from("S-9"), &[], NOW).unwrap(),
        Outcome::Refused(Refusal::UnknownSession {
            session: SessionId::from("S-9")
        })
    );
}

#[test]
fn the_payment_over_the_provision_is_refused_and_the_earlier_ones_settle() {
    let payer = Payer::new(1);
    let mut store = WalletStore::open_in_memory().unwrap();
    funded(&mut store, &payer, 1_000);
    let Outcome::Done((_, provision)) = store
        .reserve(&reservation("S-1", &payer.account(), eur(100)), NOW)
        .unwrap()
    else {
        panic!("not reserved");
    };
    let payments = [
        payer.pay("PAY-1", eur(60), 1),
        payer.pay("PAY-2", eur(30), 2),
        payer.pay("PAY-3", eur(20), 3),
    ];
    let over = Refusal::ProvisionExceeded {
        session: SessionId::from("S-1"),
        payment: PaymentId::from("PAY-3"),
        total: eur(110),
        provision: eur(100),
    };
    // The front-end refuses it mid-session (and delivers nothing for it)...
    let mut tally = ProvisionTally::new(provision, 0);
    assert_eq!(tally.admit(&payments[0]), Ok(()));
    assert_eq!(tally.admit(&payments[1]), Ok(()));
    assert_eq!(tally.admit(&payments[2]), Err(over.clone()));
    // ...and the acquirer, sent it all the same, refuses it too.
    let Outcome::Done(settlement) = store
        .settle(&SessionId::from("S-1"), &payments, NOW)
        .unwrap()
    else {
        panic!("not settled");
    };
    assert_eq!(settlement.settled, payments[..2]);
    assert_eq!(settlement.refused, [(PaymentId::from("PAY-3"), over)]);
    assert_eq!(
        (settlement.debited, settlement.released),
        (eur(90), eur(10))
    );
    assert_eq!(
        store.account(&payer.account()).unwrap(),
        Some(state(&payer, 910, 0, 2))
    );
}

#[test]
fn a_session_survives_a_crash_between_reservation_and_settlement() {
    let dir = TempDir::new("wallet-crash");
    let path = dir.file("acquirer.sqlite");
    let payer = Payer::new(1);
    let payments = [
        payer.pay("PAY-1", eur(10), 1),
        payer.pay("PAY-2", eur(15), 2),
    ];
    {
        let mut store = WalletStore::open(&path).unwrap();
        funded(&mut store, &payer, 100);
        let reserved = store
            .reserve(&reservation("S-1", &payer.account(), eur(50)), NOW)
            .unwrap();
        assert!(matches!(reserved, Outcome::Done(_)), "{reserved:?}");
        // The process dies here: the store is dropped with nothing more written.
    }
    let mut store = WalletStore::open(&path).unwrap();
    assert_eq!(
        store.account(&payer.account()).unwrap(),
        Some(state(&payer, 100, 50, 0))
    );
    let Outcome::Done(settlement) = store
        .settle(&SessionId::from("S-1"), &payments, NOW)
        .unwrap()
    else {
        panic!("not settled");
    };
    assert_eq!(settlement.debited, eur(25));
    drop(store);
    let store = WalletStore::open(&path).unwrap();
    assert_eq!(
        store.account(&payer.account()).unwrap(),
        Some(state(&payer, 75, 0, 2))
    );
    let kept: Vec<SignedWalletPayment> = store
        .payments(&payer.account())
        .unwrap()
        .into_iter()
        .map(|p| p.signed)
        .collect();
    assert_eq!(kept, payments);
}

#[test]
fn the_wallet_shares_the_journal_file_through_its_own_connection() {
    let dir = TempDir::new("wallet-journal");
    let path = dir.file("acquirer.sqlite");
    let journal = Journal::open(&path).unwrap();
    let payer = Payer::new(1);
    let mut store = WalletStore::open(&path).unwrap();
    funded(&mut store, &payer, 100);
    assert!(matches!(
        store.pay(&payer.pay("PAY-1", eur(30), 1), NOW).unwrap(),
        Outcome::Done(_)
    ));
    assert_eq!(journal.acquirer().unwrap(), None);
    drop((journal, store));
    // Both open the file again, in either order, each finding its own tables.
    let store = WalletStore::open(&path).unwrap();
    Journal::open(&path).unwrap();
    assert_eq!(
        store.account(&payer.account()).unwrap(),
        Some(state(&payer, 70, 0, 1))
    );
}

/// One step of the property test.
#[derive(Debug, Clone)]
enum Step {
    /// Credit with one of a few references (so some repeat).
    Credit { reference: u8, minor: u64 },
    /// A direct payment; the sequence moves from the payer's counter by `delta`
    /// (≤ 0 replays or re-orders).
    Pay { minor: u64, delta: i8 },
    /// Reserve a provision for a new session.
    Reserve { minor: u64 },
    /// The payer signs the next payment of the open session.
    SessionPay { minor: u64 },
    /// Settle the last session with its payments (again, if already settled).
    Settle,
    /// The process dies and the store is opened again.
    Reopen,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0u8..4, 1u64..500).prop_map(|(reference, minor)| Step::Credit { reference, minor }),
        (0u64..300, -1i8..3).prop_map(|(minor, delta)| Step::Pay { minor, delta }),
        (1u64..400).prop_map(|minor| Step::Reserve { minor }),
        (1u64..120).prop_map(|minor| Step::SessionPay { minor }),
        Just(Step::Settle),
        Just(Step::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn the_balance_is_credits_less_settled_payments_and_never_negative(
        steps in proptest::collection::vec(step(), 1..32)
    ) {
        let dir = TempDir::new("wallet-property");
        let path = dir.file("wallet.sqlite");
        let payer = Payer::new(7);
        let account = payer.account();
        let mut store = WalletStore::open(&path).unwrap();
        store.open_account(&account, Currency::EUR, NOW).unwrap();
        // The model: what the store answered Done, summed independently.
        let mut credited = 0u64;
        let mut debited = 0u64;
        let mut open_provision = 0u64;
        let mut counter = 0u64;
        let mut sessions = 0u32;
        let mut session: Option<(SessionId, Vec<SignedWalletPayment>)> = None;
        for (index, step) in steps.into_iter().enumerate() {
            match step {
                Step::Credit { reference, minor } => {
                    let outcome = store
                        .credit(&credit(&format!("R-{reference}"), &account, eur(minor)), NOW)
                        .unwrap();
                    if let Outcome::Done(_) = outcome {
                        credited += minor;
                    }
                }
                Step::Pay { minor, delta } => {
                    let sequence = counter.saturating_add_signed(i64::from(delta));
                    counter = counter.max(sequence);
                    let payment = payer.pay(&format!("PAY-{index}"), eur(minor), sequence);
                    if let Outcome::Done(decision) = store.pay(&payment, NOW).unwrap() {
                        prop_assert_eq!(decision.debited, eur(minor));
                        debited += minor;
                    }
                }
                Step::Reserve { minor } => {
                    sessions += 1;
                    let id = SessionId::from(format!("S-{sessions}"));
                    let outcome = store
                        .reserve(&reservation(&id.0, &account, eur(minor)), NOW)
                        .unwrap();
                    if let Outcome::Done(_) = outcome {
                        open_provision += minor;
                        session = Some((id, Vec::new()));
                    }
                }
                Step::SessionPay { minor } => {
                    if let Some((_, payments)) = session.as_mut() {
                        counter += 1;
                        payments.push(payer.pay(&format!("PAY-{index}"), eur(minor), counter));
                    }
                }
                Step::Settle => {
                    if let Some((id, payments)) = session.as_ref() {
                        let provision = store.provision(id).unwrap().unwrap();
                        match store.settle(id, payments, NOW).unwrap() {
                            Outcome::Done(settlement) => {
                                let sum: u64 = settlement
                                    .settled
                                    .iter()
                                    .map(|p| p.payment.amount.minor)
                                    .sum();
                                prop_assert_eq!(settlement.debited, eur(sum));
                                prop_assert_eq!(
                                    sum + settlement.released.minor,
                                    provision.reservation.amount.minor
                                );
                                debited += sum;
                                open_provision -= provision.reservation.amount.minor;
                            }
                            Outcome::Repeated(_) => {}
                            Outcome::Refused(refusal) => {
                                prop_assert!(false, "settle refused: {}", refusal);
                            }
                        }
                    }
                }
                Step::Reopen => {
                    drop(store);
                    store = WalletStore::open(&path).unwrap();
                }
            }
            let state = store.account(&account).unwrap().unwrap();
            let stored_credits: u64 = store
                .credits(&account)
                .unwrap()
                .iter()
                .map(|c| c.amount.minor)
                .sum();
            let stored_payments: u64 = store
                .payments(&account)
                .unwrap()
                .iter()
                .map(|p| p.signed.payment.amount.minor)
                .sum();
            prop_assert_eq!(stored_credits, credited);
            prop_assert_eq!(stored_payments, debited);
            prop_assert_eq!(state.balance, credited - debited);
            prop_assert_eq!(state.reserved, open_provision);
            prop_assert!(state.reserved <= state.balance);
        }
    }
}
