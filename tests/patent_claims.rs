//! One test per claim of patent FR2750275 that telepay implements on the bank-card path,
//! each named after its claim and showing what the claim says on the running system:
//! the software card, the demo service server, the front-end and the bank-card acquirer
//! in one process. docs/patent.md maps every claim to its test.

use telepay::acquirer::card::{CardKey, customer_id};
use telepay::acquirer::journal::TransactionState;
use telepay::acquirer::schedule::CutoffSchedule;
use telepay::messages::{
    AccountBalance, ClientDelivery, Currency, Delivery, Failure, IdentityCheck, Message, Money,
    Party, Payment, PaymentService, RefusalReason, ServiceId, Timestamp, Verdict,
};
use telepay::purchase::embedded::PurchaseRun;
use telepay::purchase::{Faults, PartyKind, VirtualClock, render};
use telepay::telecollection::centre::{Centre, CentreAnswer};
use telepay::telecollection::remittance::cut_off_due;
use telepay::terminal::card_module::CryptogramKind;
use telepay::terminal::client::RequestResult;
use telepay::terminal::payer::{IdentificationState, PaymentState};
use telepay::testing::{DemoNetwork, demo_network};

type Network = DemoNetwork;

/// 2026-11-25 10:30:00 UTC.
const START: Timestamp = Timestamp(1_795_602_600_000);

fn network(pin: &str) -> Network {
    demo_network("sim:cb?seed=1", pin, 1).unwrap()
}

fn buy(network: &mut Network, service: &str, faults: Faults) -> PurchaseRun {
    network
        .purchase(
            &ServiceId::from(service),
            None,
            VirtualClock::new(START, 10),
            faults,
        )
        .unwrap()
}

/// The steps a party took part in, with the direction: `"D>payer"`, `"E<payer"`.
fn seen_by(run: &PurchaseRun, kind: PartyKind) -> Vec<String> {
    let matches = |party: &Party| {
        matches!(
            (party, kind),
            (Party::Client(_), PartyKind::Client)
                | (Party::Payer(_), PartyKind::Payer)
                | (Party::FrontEnd, PartyKind::FrontEnd)
                | (Party::Server(_), PartyKind::Server)
                | (Party::Acquirer(_), PartyKind::Acquirer)
        )
    };
    run.log
        .entries
        .iter()
        .filter_map(|entry| {
            let step = entry.envelope.message.step();
            if matches(&entry.envelope.to) {
                Some(format!("{step}>"))
            } else if matches(&entry.envelope.from) {
                Some(format!("{step}<"))
            } else {
                None
            }
        })
        .collect()
}

/// Claim 1: seen from the front-end, the steps are A received from the terminal, B sent
/// to a service server, C received from it, D sent to the terminal, E received from it,
/// F submitted to an acquirer, G received from it, H sent to the terminal.
#[test]
fn claim_1_the_front_end_runs_steps_a_to_h() {
    let mut network = network("1234");
    let run = buy(&mut network, "market-report-2026", Faults::none());
    let front_end: Vec<(String, String, &str)> = run
        .log
        .entries
        .iter()
        .take(8)
        .map(|entry| {
            let side = |party: &Party| match party {
                Party::Client(_) | Party::Payer(_) => "terminal".to_owned(),
                Party::FrontEnd => "front-end".to_owned(),
                Party::Server(_) => "server".to_owned(),
                Party::Acquirer(_) => "acquirer".to_owned(),
            };
            (
                side(&entry.envelope.from),
                side(&entry.envelope.to),
                entry.envelope.message.step(),
            )
        })
        .collect();
    let expected = [
        ("terminal", "front-end", "A"),
        ("front-end", "server", "B"),
        ("server", "front-end", "C"),
        ("front-end", "terminal", "D"),
        ("terminal", "front-end", "E"),
        ("front-end", "acquirer", "F"),
        ("acquirer", "front-end", "G"),
        ("front-end", "terminal", "H"),
    ];
    let expected: Vec<(String, String, &str)> = expected
        .iter()
        .map(|(from, to, step)| (from.to_string(), to.to_string(), *step))
        .collect();
    assert_eq!(front_end, expected, "{}", render::text(&run.log));
    // H is the acknowledgement G, passed on unchanged.
    let verdicts: Vec<Verdict> = run
        .log
        .entries
        .iter()
        .filter_map(|entry| match &entry.envelope.message {
            Message::Acknowledgement(g) => Some(g.verdict.clone()),
            Message::PayerAcknowledgement(h) => Some(h.verdict.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(verdicts.len(), 2);
    assert_eq!(verdicts[0], verdicts[1]);
}

/// Claim 2: when the acknowledgement is positive, the front-end asks the server for the
/// service (I), receives it (J) and sends it to the terminal (K); when it is negative,
/// none of that happens.
#[test]
fn claim_2_a_positive_acknowledgement_is_followed_by_i_j_k() {
    let mut network = network("1234");
    let run = buy(&mut network, "market-report-2026", Faults::none());
    assert_eq!(
        run.log.steps()[8..],
        ["I", "J", "K"],
        "{}",
        render::text(&run.log)
    );
    assert!(run.delivered());

    // Negative: an acquirer that cannot be reached → negative H, no I/J/K.
    let mut unreachable = self::network("1234");
    let run = buy(
        &mut unreachable,
        "market-report-2026",
        Faults::none().unreachable(PartyKind::Acquirer),
    );
    for step in ["I", "J", "K"] {
        assert!(
            !run.log.steps().contains(&step),
            "{}",
            render::text(&run.log)
        );
    }
}

/// Claim 3: the information C received from the server may carry the service itself
/// (Fig. 7); the front-end then holds it until the acknowledgement, and I/J disappear.
#[test]
fn claim_3_the_quote_may_carry_the_service() {
    let mut network = network("1234");
    let run = buy(&mut network, "marine-weather-live", Faults::none());
    let quote_carries_it = run.log.entries.iter().any(|entry| {
        matches!(&entry.envelope.message, Message::Quote(c) if c.service_enclosed.is_some())
    });
    assert!(quote_carries_it);
    assert_eq!(
        run.log.steps(),
        ["A", "B", "C", "D", "E", "F", "G", "H", "K"]
    );
    assert!(run.delivered());
}

/// Claim 11: secure telepayment by bank card. The payer device's card module reads the
/// cardholder data; after the PIN is entered and presented, the card itself signs the
/// payment request's elements (its ARQC); the acquirer checks the transaction by the
/// banking rules and answers; it keeps the acknowledged transaction and remits it, at
/// the deadline the banking systems set, to the telecollection centre.
#[test]
fn claim_11_the_card_signs_the_acquirer_keeps_and_remits_at_the_deadline() {
    let mut network = network("1234");
    let run = buy(&mut network, "market-report-2026", Faults::none());
    // E: the cardholder data read from the card, the PIN verified by the card, and the
    // card's cryptogram over the payment request.
    let (card, request) = run
        .log
        .entries
        .iter()
        .find_map(|entry| match &entry.envelope.message {
            Message::AcquirerTransaction(f) => {
                let Payment::BankCard(card) = &f.transaction.means else {
                    panic!("a bank-card payment")
                };
                Some((card.clone(), f.request.clone()))
            }
            _ => None,
        })
        .expect("F");
    assert_eq!(card.pan, "4970100000000014");
    assert!(card.pin_verified);
    assert_eq!(card.cid, 0x80, "an ARQC: the card asks the acquirer");
    assert_eq!(card.amount, request.amount.emv_amount().unwrap());
    // The acquirer's banking rules accepted the card's signature.
    assert!(run.delivered());

    // A wrong PIN: the card refuses it and nothing is signed.
    let mut refused = self::network("0000");
    let declined = buy(&mut refused, "market-report-2026", Faults::none());
    assert!(matches!(
        declined.result,
        Some(RequestResult::Failed(Failure::PaymentDeclined { .. }))
    ));
    assert!(!declined.log.steps().contains(&"E"));

    // Kept: the journal holds it, authorised, until the deadline.
    let journal = network.acquirer.journal_mut();
    let schedule: CutoffSchedule = "daily:22:00".parse().unwrap();
    assert!(
        !cut_off_due(journal, &schedule, START).unwrap(),
        "10:30: not yet"
    );
    let deadline = schedule.next_cutoff_after(START);
    assert!(cut_off_due(journal, &schedule, deadline).unwrap());
    let batch = journal
        .cut_off(deadline)
        .unwrap()
        .expect("a batch at 22:00");
    assert_eq!(batch.records, 1);
    // Remitted to the telecollection centre, which accepts it.
    let mut file = Vec::new();
    journal.write_batch(batch.number, &mut file).unwrap();
    let mut centre = Centre::open_in_memory().unwrap();
    let answer = centre.receive(&file[..], deadline).unwrap();
    assert!(matches!(answer, CentreAnswer::Accepted(_)), "{answer:?}");
    journal.mark_sent(batch.number, deadline).unwrap();
    journal.mark_acknowledged(batch.number, deadline).unwrap();
    let totals = centre.totals().unwrap();
    assert_eq!((totals[0].records, totals[0].total_minor), (1, 250));
    let mut states = Vec::new();
    journal
        .transactions::<telepay::acquirer::journal::JournalError>(&Default::default(), |entry| {
            states.push(entry.state);
            Ok(())
        })
        .unwrap();
    assert_eq!(states, [TransactionState::AcknowledgedByCentre]);
}

/// Claim 13: the system is a consultation terminal (client device + payer device), a
/// front-end and acquirers, the terminal linked to the front-end, the front-end to the
/// service servers and to the acquirers: no message goes around the front-end.
#[test]
fn claim_13_every_exchange_goes_through_the_front_end() {
    let mut network = network("1234");
    let run = buy(&mut network, "market-report-2026", Faults::none());
    for entry in &run.log.entries {
        let Some(other) = [&entry.envelope.from, &entry.envelope.to]
            .into_iter()
            .find(|party| **party != Party::FrontEnd)
        else {
            continue;
        };
        assert!(
            entry.envelope.from == Party::FrontEnd || entry.envelope.to == Party::FrontEnd,
            "{} → {} bypasses the front-end ({other})",
            entry.envelope.from,
            entry.envelope.to
        );
    }
    // Both devices of the terminal take part.
    assert!(!seen_by(&run, PartyKind::Client).is_empty());
    assert!(!seen_by(&run, PartyKind::Payer).is_empty());
}

/// Claim 14: the client device sends requests to the front-end and handles the answers
/// — the service, or why there is none.
#[test]
fn claim_14_the_client_device_requests_and_handles_the_answers() {
    let mut network = network("1234");
    let run = buy(&mut network, "market-report-2026", Faults::none());
    assert_eq!(seen_by(&run, PartyKind::Client), ["A<", "K>"]);
    assert!(matches!(run.result, Some(RequestResult::Delivered(_))));

    let run = buy(&mut network, "press-archive-1996", Faults::none());
    assert_eq!(seen_by(&run, PartyKind::Client), ["A<", "outcome>"]);
    assert!(matches!(
        run.result,
        Some(RequestResult::Failed(Failure::ServiceUnavailable { .. }))
    ));
}

/// Claim 15: the payer device receives the front-end's solicitations, which call for an
/// answer (D → E) or not (H, no answer).
#[test]
fn claim_15_the_payer_device_answers_d_and_not_h() {
    let mut network = network("1234");
    let run = buy(&mut network, "market-report-2026", Faults::none());
    assert_eq!(seen_by(&run, PartyKind::Payer), ["D>", "E<", "H>"]);
    // H asked for nothing back, yet the payer device acted on it: the card completed.
    let Some((_, Some(PaymentState::Completed(completion)))) = &run.payment else {
        panic!("{:?}", run.payment)
    };
    assert_eq!(format!("{:?}", completion.kind), "Tc");
}

fn pay(network: &mut Network, service: &str, payment_service: PaymentService) -> PurchaseRun {
    network
        .pay_service(
            &ServiceId::from(service),
            payment_service,
            VirtualClock::new(START, 10),
            Faults::none(),
        )
        .unwrap()
}

fn delivered(run: &PurchaseRun) -> &ClientDelivery {
    match &run.result {
        Some(RequestResult::Delivered(k)) => k,
        other => panic!("not delivered: {other:?}\n{}", render::text(&run.log)),
    }
}

fn eur(minor: u64) -> Money {
    Money::new(minor, Currency::EUR)
}

fn the_identity_check(run: &PurchaseRun) -> IdentityCheck {
    run.log
        .entries
        .iter()
        .find_map(|entry| match &entry.envelope.message {
            Message::IdentityCheck(check) => Some(IdentityCheck::clone(check)),
            _ => None,
        })
        .expect("an identity check")
}

/// Claim 16: the payer device identifies and authenticates its user. A service for
/// identified users makes the front-end send the payer device a service message; the card
/// verifies the PIN and signs a zero-amount request over the front-end's fresh nonce; the
/// card issuer's acquirer checks it and names the customer by a pseudonym of the card,
/// which the service server receives with the order. No money moves.
#[test]
fn claim_16_the_payer_device_identifies_its_user_with_the_card() {
    let mut network = network("1234");
    let run = buy(&mut network, "customer-area", Faults::none());
    let k = delivered(&run);
    assert_eq!(k.paid, eur(0), "a free service: identified, not paid");
    assert_eq!(
        seen_by(&run, PartyKind::Payer),
        ["identify>", "proof<", "identified>"],
        "the payer device answers the service message, and nothing else"
    );
    assert_eq!(
        seen_by(&run, PartyKind::Acquirer),
        ["identity check>", "identity verdict<"]
    );

    // The proof is the card's: an ARQC over a zero amount, after the card verified the PIN.
    let check = the_identity_check(&run);
    let telepay::messages::IdentityProof::Card(card) = &check.proof.proof else {
        panic!("a bank-card proof")
    };
    assert_eq!((card.cid, card.amount), (0x80, [0; 6]));
    assert!(card.pin_verified);
    // The customer is a pseudonym of that card at this acquirer, given to the server in I.
    let customer = customer_id(
        network.acquirer.id(),
        &CardKey {
            pan: card.pan.to_string(),
            pan_sequence: card.pan_sequence,
        },
    );
    assert!(!customer.0.contains(card.pan.as_str()));
    let order = run
        .log
        .entries
        .iter()
        .find_map(|entry| match &entry.envelope.message {
            Message::ServiceOrder(order) => Some(order.clone()),
            _ => None,
        })
        .expect("I");
    assert_eq!(order.customer, Some(customer.clone()));
    // The card completed its transaction with the acquirer's ARPC, and remembers who.
    let identification = &check.request.identification;
    assert!(matches!(
        network.payer.identification_state(identification),
        Some(IdentificationState::Completed { customer: Some(named), completion })
            if *named == customer && completion.kind == CryptogramKind::Tc
    ));
    // Nothing to remit: the journal holds no transaction, only the card's spent counter.
    let mut transactions = 0;
    network
        .acquirer
        .journal()
        .transactions::<telepay::acquirer::journal::JournalError>(&Default::default(), |_| {
            transactions += 1;
            Ok(())
        })
        .unwrap();
    assert_eq!(transactions, 0);
    assert_eq!(
        network
            .acquirer
            .journal()
            .card_last_atc(&card.pan, card.pan_sequence)
            .unwrap(),
        Some(card.atc)
    );

    // The same card is the same customer the next time.
    let again = buy(&mut network, "customer-area", Faults::none());
    assert!(again.delivered());
    let second = the_identity_check(&again);
    assert_ne!(second.request.nonce, check.request.nonce);

    // The proof cannot be used again: under a new identification its counter is spent.
    let mut replay = check.clone();
    replay.request.identification = "P-REPLAY-ID".into();
    replay.proof.identification = "P-REPLAY-ID".into();
    let verdict = network.acquirer.identify(&replay, START).unwrap();
    assert!(matches!(
        verdict.verdict,
        Verdict::Negative {
            reason: RefusalReason::ReplayedCounter,
            ..
        }
    ));
    assert_eq!(verdict.customer, None);

    // A wrong PIN: the card refuses it, no proof leaves the terminal, nothing is delivered.
    let mut wrong = self::network("0000");
    let refused = buy(&mut wrong, "customer-area", Faults::none());
    assert!(matches!(
        &refused.result,
        Some(RequestResult::Failed(Failure::IdentificationFailed { reason }))
            if reason.contains("wrong PIN")
    ));
    assert_eq!(seen_by(&refused, PartyKind::Acquirer), Vec::<String>::new());
}

/// Claim 17: the payer device serves payment services — paying a bill, reloading a
/// remote account, prepaid or not. Each is a purchase whose price the server sets from
/// the bill or the chosen amount, paid with the card, answered by a receipt.
#[test]
fn claim_17_the_payer_device_pays_bills_and_reloads_accounts() {
    let mut network = network("1234");

    // A bill: its amount is the biller's, and it is paid once.
    let bill = PaymentService::Bill {
        reference: "W-2026-1107".into(),
    };
    let run = pay(&mut network, "city-water-bill", bill.clone());
    let k = delivered(&run);
    assert_eq!(k.paid, eur(4280));
    assert!(matches!(
        &k.delivery,
        Delivery::Receipt { reference, amount, balance: None, .. }
            if reference == "W-2026-1107" && *amount == eur(4280)
    ));
    let twice = pay(&mut network, "city-water-bill", bill);
    assert!(matches!(
        &twice.result,
        Some(RequestResult::Failed(Failure::ServiceUnavailable { reason })) if reason.contains("paid")
    ));
    assert!(
        !twice.log.steps().contains(&"D"),
        "nothing asked of the card"
    );

    // A prepaid account: the credit grows by the amount the user chose.
    let run = pay(
        &mut network,
        "prepaid-phone-credit",
        PaymentService::Reload {
            account: "0612345678".into(),
            amount: eur(2000),
        },
    );
    let k = delivered(&run);
    assert_eq!(k.paid, eur(2000));
    assert!(matches!(
        k.delivery,
        Delivery::Receipt { balance: Some(AccountBalance::Credit(credit)), .. } if credit == eur(2320)
    ));

    // An account that is not prepaid, for identified customers: the user is identified
    // first, then pays; what is owed goes down.
    let run = pay(
        &mut network,
        "transit-pass-account",
        PaymentService::Reload {
            account: "TP-884211".into(),
            amount: eur(1000),
        },
    );
    let k = delivered(&run);
    assert!(matches!(
        &k.delivery,
        Delivery::Receipt { balance: Some(AccountBalance::Owed(owed)), customer: Some(_), .. }
            if *owed == eur(1540)
    ));
    assert_eq!(
        seen_by(&run, PartyKind::Payer),
        ["identify>", "proof<", "identified>", "D>", "E<", "H>"]
    );

    // An amount outside the account's limits is refused at the quote: nothing is paid.
    let too_much = pay(
        &mut network,
        "prepaid-phone-credit",
        PaymentService::Reload {
            account: "0612345678".into(),
            amount: eur(100_001),
        },
    );
    assert!(matches!(
        too_much.result,
        Some(RequestResult::Failed(Failure::ServiceUnavailable { .. }))
    ));

    // The acquirer keeps the three payments for remittance, and only them.
    let mut amounts = Vec::new();
    network
        .acquirer
        .journal()
        .transactions::<telepay::acquirer::journal::JournalError>(&Default::default(), |entry| {
            amounts.push((entry.state, entry.amount_minor));
            Ok(())
        })
        .unwrap();
    assert_eq!(
        amounts,
        [
            (TransactionState::Authorised, Some(4280)),
            (TransactionState::Authorised, Some(2000)),
            (TransactionState::Authorised, Some(1000)),
        ]
    );
}

/// Claim 12 (Fig. 9): a user's secret key is kept encrypted on the terminal. To use it,
/// the user gives an identifier, which selects one encrypted key among several, and a
/// PIN which, through a hash function (PBKDF2-HMAC-SHA-256), gives the symmetric key that
/// decrypts it; the key then signs. (This shows the key store itself; the module
/// `wallet` below pays with such keys, claims 9 and 10.)
#[test]
fn claim_12_an_identifier_selects_the_encrypted_key_and_the_pin_opens_it() {
    use p256::ecdsa::signature::Verifier;
    use telepay::terminal::keystore::{
        CostPolicy, KdfCost, KeyStore, KeyStoreError, Pin, SystemRandom,
    };
    let created = telepay::terminal::keystore::Timestamp(1_795_651_200);
    let pin = |text: &str| Pin::new(text).unwrap();
    // The fast test cost keeps a debug build quick; production uses 600,000 iterations.
    let mut store = KeyStore::new(CostPolicy::AllowTestCost);
    let mut rng = SystemRandom;
    let alice = store
        .add(
            "alice",
            &pin("correct horse"),
            KdfCost::for_tests(),
            created,
            &mut rng,
        )
        .unwrap();
    let bob = store
        .add(
            "bob",
            &pin("battery staple"),
            KdfCost::for_tests(),
            created,
            &mut rng,
        )
        .unwrap();

    // What the terminal keeps, read back from its bytes: the identifier picks the entry,
    // the PIN opens it, and the opened key is the one listed for that identifier.
    let kept = KeyStore::parse_with_policy(&store.to_bytes(), CostPolicy::AllowTestCost).unwrap();
    let opened = kept.unlock("alice", &pin("correct horse")).unwrap();
    assert_eq!(*opened.verifying_key(), alice);
    let request = b"payment request P-000001-PAY: 2.50 EUR";
    let signature = opened.sign(request);
    assert!(alice.verify(request, &signature).is_ok());
    assert!(bob.verify(request, &signature).is_err());

    // Another user's PIN, or a wrong one, opens nothing.
    assert!(matches!(
        kept.unlock("alice", &pin("battery staple")),
        Err(KeyStoreError::WrongPin { .. })
    ));
    // A PIN too short to protect the key is refused before any key is made.
    assert!(matches!(
        Pin::new("1234"),
        Err(KeyStoreError::PinTooShort { .. })
    ));
}

// ---------------------------------------------------------------------------------------
// The virtual wallet and the payer device's own features (claims 4–7, 9, 10, 18): the
// same embedded network, with the wallet acquirer (its accounts in SQLite in memory)
// and users whose wallet keys pay from their accounts.

mod wallet {
    use super::*;
    use p256::ecdsa::SigningKey;
    use telepay::acquirer::card::AmountLimits;
    use telepay::acquirer::wallet::AccountKey;
    use telepay::messages::{Means, PostalAddress, SessionId};
    use telepay::terminal::payer::MeansChoice;
    use telepay::terminal::plan::{
        AcquirerLimits, AmountBand, MeansAtDisposal, PaymentPlan, PlanRule, Thresholds, User,
        UserId, Users,
    };
    use telepay::testing::demo_wallet_network;

    const CARD: Means = Means::BankCard;
    const WALLET: Means = Means::VirtualWallet;

    pub(super) fn key(seed: u8) -> SigningKey {
        SigningKey::from_slice(&[seed; 32]).unwrap()
    }

    pub(super) fn account(seed: u8) -> AccountKey {
        AccountKey::new(key(seed).verifying_key())
    }

    /// The demo network taking the wallet too; the payer device holds the wallet key
    /// of `seed`, whose account holds 20.00 EUR, and pays as `means` says.
    pub(super) fn network_with_wallet(seed: u8, means: MeansChoice) -> Network {
        demo_wallet_network("sim:cb?seed=1", "1234", 1, key(seed), 2_000, START, means).unwrap()
    }

    pub(super) fn balance(network: &Network, seed: u8) -> u64 {
        network
            .wallet
            .as_ref()
            .unwrap()
            .balance(&account(seed))
            .unwrap()
            .unwrap()
            .balance
    }

    fn limits() -> AcquirerLimits {
        AcquirerLimits::new()
            .with(CARD, AmountLimits::default())
            .with(
                WALLET,
                AmountLimits::from_toml_str(
                    "[[limit]]\ncurrency = \"EUR\"\nmin = 1\nmax = 1000\n",
                    "wallet acquirer",
                )
                .unwrap(),
            )
    }

    fn means_of(run: &PurchaseRun) -> Option<Means> {
        run.log
            .entries
            .iter()
            .find_map(|entry| match &entry.envelope.message {
                Message::Transaction(e) => Some(e.means.means()),
                _ => None,
            })
    }

    /// `id`: the wallet below `wallet_below` (minor units), the card from there.
    fn user(id: &str, wallet_below: u64, thresholds: Thresholds) -> User {
        let plan = PaymentPlan::new(vec![
            PlanRule::new(
                vec![WALLET],
                AmountBand::new(Currency::EUR, 0, Some(wallet_below)),
            ),
            PlanRule::new(
                vec![CARD],
                AmountBand::new(Currency::EUR, wallet_below, None),
            ),
        ])
        .unwrap();
        let means = MeansAtDisposal {
            card_reader: Some("sim:cb".into()),
            key_store_user: Some(id.into()),
        };
        User::new(UserId::new(id).unwrap(), plan, thresholds, means).unwrap()
    }

    fn plan(users: Users) -> MeansChoice {
        MeansChoice::Plan {
            users: Box::new(users),
            limits: limits(),
        }
    }

    fn address() -> PostalAddress {
        PostalAddress {
            name: "A. Martin".into(),
            lines: vec!["1 rue de la Paix".into()],
            postcode: "75002".into(),
            town: "Paris".into(),
            country: "FR".into(),
        }
    }

    /// Claim 4: the user chooses their payment plan locally, within the limits the
    /// acquirers accept: here the wallet below 10.00 EUR, the card from 10.00 EUR; the
    /// 2.50 EUR report is paid from the wallet, the 19.90 EUR guide by card.
    #[test]
    fn claim_4_the_users_plan_picks_the_means_within_the_acquirers_limits() {
        let mut network =
            network_with_wallet(1, plan(Users::new(user("alice", 1_000, Thresholds::new()))));
        let report = buy(&mut network, "market-report-2026", Faults::none());
        assert!(report.delivered());
        assert_eq!(means_of(&report), Some(WALLET));
        assert_eq!(balance(&network, 1), 2_000 - 250);

        let guide = network
            .purchase(
                &ServiceId::from("printed-travel-guide"),
                Some(address()),
                VirtualClock::new(START, 10),
                Faults::none(),
            )
            .unwrap();
        assert!(guide.delivered());
        assert_eq!(means_of(&guide), Some(CARD));
        // The wallet acquirer takes at most 10.00 EUR: a plan that names the wallet for
        // everything cannot make it pay 19.90 EUR; the device declines, before any E.
        let mut greedy = network_with_wallet(
            2,
            plan(Users::new(user("carol", 100_000, Thresholds::new()))),
        );
        let refused = greedy
            .purchase(
                &ServiceId::from("printed-travel-guide"),
                Some(address()),
                VirtualClock::new(START, 10),
                Faults::none(),
            )
            .unwrap();
        assert_eq!(means_of(&refused), None);
        assert!(matches!(
            refused.result,
            Some(RequestResult::Failed(Failure::PaymentDeclined { .. }))
        ));
        assert_eq!(balance(&greedy, 2), 2_000);
    }

    /// Claim 5: the user sets, per means, the amount up to which a payment is confirmed
    /// implicitly; above it, the device asks. A user who answers "no" to every question
    /// still pays 0.50 EUR (under the 1.00 EUR threshold) and is asked, and declines,
    /// 2.50 EUR.
    #[test]
    fn claim_5_below_the_threshold_implicit_above_it_explicit() {
        let thresholds = Thresholds::new().with(WALLET, eur(100));
        let mut network =
            network_with_wallet(1, plan(Users::new(user("alice", 1_000, thresholds))));
        // The scripted user refuses every explicit confirmation.
        network.payer.user_mut().confirms = false;
        let weather = buy(&mut network, "marine-weather-live", Faults::none());
        assert!(weather.delivered(), "0.50 EUR is confirmed implicitly");
        let report = buy(&mut network, "market-report-2026", Faults::none());
        assert!(matches!(
            report.result,
            Some(RequestResult::Failed(Failure::PaymentDeclined { .. }))
        ));
        assert_eq!(balance(&network, 1), 2_000 - 50);
    }

    /// Claim 6: the device shows what the pseudo-session has paid, overall and per
    /// means.
    #[test]
    fn claim_6_the_running_total_overall_and_per_means() {
        let mut network =
            network_with_wallet(1, plan(Users::new(user("alice", 300, Thresholds::new()))));
        buy(&mut network, "market-report-2026", Faults::none());
        buy(&mut network, "cup-final-replay", Faults::none());
        buy(&mut network, "marine-weather-live", Faults::none());
        assert_eq!(
            network.payer.totals_line().as_deref(),
            Some("alice: session: 6.90 EUR (bank card 3.90 EUR, virtual wallet 3.00 EUR)")
        );
    }

    /// Claim 7: several users on one terminal, each with their own plan and means:
    /// alice pays 2.50 EUR from her wallet; bob, whose plan sends everything to his
    /// card, pays the same report by card; each has their own totals.
    #[test]
    fn claim_7_several_users_each_with_plan_and_means() {
        let mut users = Users::new(user("alice", 1_000, Thresholds::new()));
        users.add(user("bob", 1, Thresholds::new())).unwrap();
        let mut network = network_with_wallet(1, plan(users));
        let alice = buy(&mut network, "market-report-2026", Faults::none());
        assert_eq!(means_of(&alice), Some(WALLET));
        network.payer.users_mut().unwrap().switch_to("bob").unwrap();
        let bob = buy(&mut network, "market-report-2026", Faults::none());
        assert_eq!(means_of(&bob), Some(CARD));
        let users = network.payer.users().unwrap();
        assert_eq!(users.totals("alice").unwrap().payments(), 1);
        assert_eq!(users.totals("bob").unwrap().payments(), 1);
    }

    /// Claim 10: with the virtual wallet, the first payment of a session gets, with its
    /// positive acknowledgement, a provision; the front-end then verifies the next
    /// payments itself, signatures included, with no round trip to the acquirer; at the
    /// end of the session all go to the acquirer, which debits exactly their sum and
    /// releases the rest of the provision.
    #[test]
    fn claim_10_a_provision_then_payments_verified_by_the_front_end_then_settled() {
        let mut network = network_with_wallet(1, MeansChoice::Fixed(WALLET));
        network.open_session(SessionId::from("evening"));
        let mut runs = Vec::new();
        for service in [
            "market-report-2026",
            "marine-weather-live",
            "cup-final-replay",
        ] {
            let run = buy(&mut network, service, Faults::none());
            assert!(run.delivered(), "{service}");
            runs.push(run);
        }
        // Only the first payment reached the acquirer, asking for a provision.
        let to_acquirer: Vec<usize> = runs
            .iter()
            .map(|run| {
                run.log
                    .entries
                    .iter()
                    .filter(|entry| {
                        matches!(entry.envelope.message, Message::AcquirerTransaction(_))
                    })
                    .count()
            })
            .collect();
        assert_eq!(to_acquirer, [1, 0, 0]);
        // Reserved, not yet debited.
        let state = network
            .wallet
            .as_ref()
            .unwrap()
            .balance(&account(1))
            .unwrap()
            .unwrap();
        assert_eq!(state.balance, 2_000);
        assert!(state.reserved >= 250 + 50 + 390);

        let ended = network
            .end_session(VirtualClock::new(START, 10), Faults::none())
            .unwrap();
        let closed = ended.closed.expect("the session closed");
        assert_eq!(closed.payments, 3);
        assert_eq!(closed.debited, Some(eur(250 + 50 + 390)));
        assert!(closed.settled);
        let state = network
            .wallet
            .as_ref()
            .unwrap()
            .balance(&account(1))
            .unwrap()
            .unwrap();
        assert_eq!(state.balance, 2_000 - 690);
        assert_eq!(state.reserved, 0);
        // Non-repudiation: the acquirer keeps each payment as signed.
        let kept = network
            .wallet
            .as_ref()
            .unwrap()
            .store()
            .payments(&account(1))
            .unwrap();
        assert_eq!(kept.len(), 3);
        assert!(kept.iter().all(|stored| stored.signed.verify().is_ok()));
    }

    /// Claim 18: the payer device answers the front-end's payment request with the means
    /// its user's plan picks, and takes the acknowledgement without answering it.
    #[test]
    fn claim_18_the_payer_device_answers_d_with_the_plans_means() {
        let mut network =
            network_with_wallet(1, plan(Users::new(user("alice", 1_000, Thresholds::new()))));
        let run = buy(&mut network, "market-report-2026", Faults::none());
        assert_eq!(
            seen_by(&run, PartyKind::Payer),
            ["D>", "E<", "H>"],
            "the device answers D with E, and H with nothing"
        );
        assert_eq!(means_of(&run), Some(WALLET));
    }
}
