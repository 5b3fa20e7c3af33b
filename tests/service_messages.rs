//! The payer device's service messages (patent FR2750275 claims 8, 9 and 12): the
//! user's secret key in the key store serves identification / authentication and
//! disputes, besides wallet payments.
//!
//! - **Identification by the key**: for a service for identified users, a device with
//!   a wallet answers the front-end's identification request with a statement signed
//!   by the key; the front-end verifies it itself (no acquirer) and names the customer
//!   by a pseudonym of the key, `K-` and 16 hex digits.
//! - **Disputes**: the user disputes a payment; the signed dispute goes through the
//!   front-end to the acquirer of the payment's means; the wallet acquirer records it
//!   for review under a case number (no refund), the bank-card acquirer sends the user
//!   to the card issuer.
//!
//! The network is `telepay::testing::demo_wallet_network`: the software card `sim:cb`
//! (PIN 1234), the demo catalogue, the front-end, the bank-card acquirer and the wallet
//! acquirer (SQLite in memory), wired by the embedded runner; keys are real P-256 keys,
//! from the key store (test KDF cost) where users are involved.

use p256::ecdsa::SigningKey;
use p256::ecdsa::signature::Signer;
use proptest::prelude::*;
use telepay::acquirer::wallet::dispute::{DisputeFault, MAX_DISPUTE_REASON_CHARS};
use telepay::acquirer::wallet::identity::{
    IDENTITY_TIME_TOLERANCE_MS, IdentityRefusal, KEY_VERIFIED_CODE, customer_id,
};
use telepay::acquirer::wallet::{
    AccountKey, Credit, CreditReference, DisputeStatement, IdentityStatement, SignedDispute,
    SignedIdentity, SignedWalletPayment, StatementError, WalletPayment,
};
use telepay::frontend::{FrontEnd, FrontEndConfig, SeededEntropy};
use telepay::messages::{
    AcquirerId, Currency, CustomerId, Dispute, DisputeCase, DisputeDecision, DisputeId,
    DisputeOutcome, Envelope, Failure, IdentificationId, IdentificationProof,
    IdentificationRequest, IdentificationResult, IdentityCheck, IdentityProof, Means, MerchantId,
    Message, Money, Party, PaymentId, PurchaseOutcome, RefusalReason, ServiceId, TerminalId,
    Timestamp, Verdict,
};
use telepay::provider::{Catalogue, ServiceServer};
use telepay::purchase::embedded::{
    ACQUIRER, DisputeRunError, MERCHANT, PurchaseRun, TERMINAL, WALLET_ACQUIRER,
};
use telepay::purchase::{Faults, PartyKind, PurchaseLog, VirtualClock, render};
use telepay::terminal::client::ClientDevice;
use telepay::terminal::keystore::{CostPolicy, KdfCost, KeyStore, Pin, SystemRandom};
use telepay::terminal::payer::{DisputeError, IdentificationState, MeansChoice, WalletSigner};
use telepay::terminal::plan::{
    AcquirerLimits, AmountBand, MeansAtDisposal, PaymentPlan, PlanRule, Thresholds, User, UserId,
    Users,
};
use telepay::testing::{DemoNetwork, demo_network, demo_wallet_network};

/// 2026-11-25 10:30:00 UTC.
const START: Timestamp = Timestamp(1_795_602_600_000);

const CARD: Means = Means::BankCard;
const WALLET: Means = Means::VirtualWallet;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_slice(&[seed; 32]).unwrap()
}

fn account(seed: u8) -> AccountKey {
    AccountKey::new(key(seed).verifying_key())
}

fn clock() -> VirtualClock {
    VirtualClock::new(START, 10)
}

/// The demo network taking the wallet; the payer device holds the key of `seed`, whose
/// account holds 20.00 EUR, and pays as `means` says.
fn wallet_network(seed: u8, means: MeansChoice) -> DemoNetwork {
    demo_wallet_network("sim:cb?seed=1", "1234", 1, key(seed), 2_000, START, means).unwrap()
}

fn buy(network: &mut DemoNetwork, service: &str) -> PurchaseRun {
    network
        .purchase(&ServiceId::from(service), None, clock(), Faults::none())
        .unwrap()
}

/// The steps a kind of party took part in, with the direction: `"proof<"`.
fn seen_by(log: &PurchaseLog, kind: PartyKind) -> Vec<String> {
    let is = |party: &Party| {
        matches!(
            (party, kind),
            (Party::Payer(_), PartyKind::Payer) | (Party::Acquirer(_), PartyKind::Acquirer)
        )
    };
    log.entries
        .iter()
        .filter_map(|entry| {
            let step = entry.envelope.message.step();
            if is(&entry.envelope.to) {
                Some(format!("{step}>"))
            } else if is(&entry.envelope.from) {
                Some(format!("{step}<"))
            } else {
                None
            }
        })
        .collect()
}

fn find<T>(log: &PurchaseLog, pick: impl Fn(&Message) -> Option<T>) -> Option<T> {
    log.entries
        .iter()
        .find_map(|entry| pick(&entry.envelope.message))
}

fn balance(network: &DemoNetwork, account: &AccountKey) -> u64 {
    network
        .wallet
        .as_ref()
        .unwrap()
        .balance(account)
        .unwrap()
        .unwrap()
        .balance
}

fn the_payment(run: &PurchaseRun) -> PaymentId {
    run.payment.as_ref().expect("a payment request").0.clone()
}

fn means_of(run: &PurchaseRun) -> Option<Means> {
    find(&run.log, |message| match message {
        Message::Transaction(e) => Some(e.means.means()),
        _ => None,
    })
}

fn rejected(reason: &str) -> DisputeDecision {
    DisputeDecision::Rejected {
        reason: reason.to_owned(),
    }
}

// ---------------------------------------------------------------------------------------
// Claims 8 and 9, on the running system

/// Claim 8: the payer device handles service messages — identification /
/// authentication of the user, and disputes. A service for identified users is bought
/// by a device with a wallet: the key identifies the user, verified by the front-end
/// alone, and the service server learns the customer `K-…`. Then a wallet purchase is
/// disputed: the wallet acquirer records it for review under a case number, refunding
/// nothing; a dispute of a payment that was never made is rejected, and a card
/// payment's dispute is sent to the card issuer.
#[test]
fn claim_8_the_payer_device_answers_service_messages_identification_and_disputes() {
    let mut network = wallet_network(7, MeansChoice::Fixed(WALLET));

    // Identification by the key, with no acquirer involved.
    let run = buy(&mut network, "customer-area");
    assert!(run.delivered(), "{}", render::text(&run.log));
    assert_eq!(
        seen_by(&run.log, PartyKind::Payer),
        ["identify>", "proof<", "identified>"]
    );
    assert_eq!(seen_by(&run.log, PartyKind::Acquirer), Vec::<String>::new());
    assert!(
        find(&run.log, |m| matches!(m, Message::IdentityCheck(_))
            .then_some(()))
        .is_none(),
        "no identity check: the front-end verified the key itself"
    );
    let proof = find(&run.log, |m| match m {
        Message::IdentificationProof(proof) => Some(proof.clone()),
        _ => None,
    })
    .unwrap();
    let IdentityProof::Key(signed) = &proof.proof else {
        panic!("a key's proof: {:?}", proof.proof)
    };
    assert_eq!(signed.statement.account, account(7));
    assert_eq!(signed.verify(), Ok(()));
    // The customer is a pseudonym of the key, given to the server in I.
    let customer = customer_id(&account(7));
    assert!(
        customer.0.starts_with("K-") && customer.0.len() == 18,
        "{customer}"
    );
    assert!(
        !customer
            .0
            .contains(&hex::encode_upper(account(7).to_sec1()))
    );
    let order = find(&run.log, |m| match m {
        Message::ServiceOrder(order) => Some(order.clone()),
        _ => None,
    })
    .unwrap();
    assert_eq!(order.customer, Some(customer.clone()));
    let result = find(&run.log, |m| match m {
        Message::IdentificationResult(result) => Some(result.clone()),
        _ => None,
    })
    .unwrap();
    assert_eq!(
        result.verdict,
        Verdict::Positive {
            authorisation_code: KEY_VERIFIED_CODE.into(),
            response_code: *b"00",
            arpc: None
        }
    );
    assert_eq!(
        network.payer.identification_state(&proof.identification),
        Some(&IdentificationState::KeyVerified {
            customer: customer.clone()
        })
    );

    // A wallet purchase, then its dispute.
    let paid = buy(&mut network, "market-report-2026");
    assert!(paid.delivered());
    assert_eq!(means_of(&paid), Some(WALLET));
    let payment = the_payment(&paid);
    let (log, outcome) = network
        .dispute(
            payment.clone(),
            "The report stops at page 3.",
            clock(),
            Faults::none(),
        )
        .unwrap();
    assert_eq!(
        seen_by(&log, PartyKind::Acquirer),
        ["dispute case>", "dispute outcome<"]
    );
    assert_eq!(
        seen_by(&log, PartyKind::Payer),
        ["dispute<", "dispute outcome>"]
    );
    let outcome = outcome.expect("an outcome reached the payer device");
    assert_eq!(
        (outcome.acquirer.as_ref(), &outcome.outcome),
        (
            Some(&AcquirerId::from(WALLET_ACQUIRER)),
            &DisputeDecision::Accepted {
                case: "WD-000001".into()
            }
        ),
        "{}",
        render::text(&log)
    );
    // Kept by the payer device and the front-end; recorded durably by the acquirer, as
    // signed; and not a refund: the balance is what the purchase left.
    assert_eq!(
        network.payer.dispute_outcome(&outcome.dispute),
        Some(&outcome)
    );
    let kept = network.front_end.disputes().get(&outcome.dispute).unwrap();
    assert_eq!(kept.outcome.as_ref(), Some(&outcome));
    assert_eq!(kept.dispute.payment, payment);
    let stored = network
        .wallet
        .as_ref()
        .unwrap()
        .store()
        .dispute(&outcome.dispute)
        .unwrap()
        .unwrap();
    assert_eq!(stored.case, "WD-000001");
    assert_eq!(stored.signed.statement.payment, payment);
    assert_eq!(stored.signed.verify(), Ok(()));
    assert_eq!(balance(&network, &account(7)), 2_000 - 250);

    // The same dispute again: the front-end answers what it recorded, alone.
    let again = network
        .payer
        .dispute_message(&outcome.dispute)
        .unwrap()
        .clone();
    let reaction = network.front_end.handle(START, &again.from, again.message);
    assert_eq!(
        reaction.sent,
        [Envelope {
            from: Party::FrontEnd,
            to: Party::Payer(TerminalId::from(TERMINAL)),
            message: Message::DisputeOutcome(outcome.clone()),
        }]
    );

    // A payment this account never made.
    let (_, unknown) = network
        .dispute(
            PaymentId::from("P-999999-PAY"),
            "I never bought this.",
            clock(),
            Faults::none(),
        )
        .unwrap();
    let unknown = unknown.unwrap();
    assert_eq!(
        unknown.outcome,
        rejected(&format!(
            "payment P-999999-PAY was not debited from account {}",
            account(7).fingerprint()
        ))
    );

    // A card payment: its acquirer does not take disputes.
    network.payer.override_next_means(Some(CARD));
    let by_card = buy(&mut network, "market-report-2026");
    assert_eq!(means_of(&by_card), Some(CARD));
    let (_, card) = network
        .dispute(
            the_payment(&by_card),
            "Charged twice.",
            clock(),
            Faults::none(),
        )
        .unwrap();
    let card = card.unwrap();
    assert_eq!(card.acquirer, Some(AcquirerId::from(ACQUIRER)));
    assert_eq!(
        card.outcome,
        rejected("disputes on bank-card payments go to the card issuer")
    );
    assert_eq!(network.front_end.disputes().len(), 3);
}

/// Two users of one terminal, each with a key in the key store (claim 12: an
/// identifier selects the key, the PIN opens it), and a plan that pays small amounts
/// from the wallet.
struct TwoUsers {
    network: DemoNetwork,
    alice: AccountKey,
    bob: AccountKey,
    keys: KeyStore,
}

const ALICE_PIN: &str = "correct horse";
const BOB_PIN: &str = "battery staple";

fn plan_user(id: &str) -> User {
    let plan = PaymentPlan::new(vec![
        PlanRule::new(vec![WALLET], AmountBand::new(Currency::EUR, 0, Some(1_000))),
        PlanRule::new(vec![CARD], AmountBand::new(Currency::EUR, 1_000, None)),
    ])
    .unwrap();
    let means = MeansAtDisposal {
        card_reader: Some("sim:cb".into()),
        key_store_user: Some(id.into()),
    };
    User::new(UserId::new(id).unwrap(), plan, Thresholds::new(), means).unwrap()
}

fn two_users() -> TwoUsers {
    let mut keys = KeyStore::new(CostPolicy::AllowTestCost);
    let created = telepay::terminal::keystore::Timestamp(1_795_602_600);
    let alice = keys
        .add(
            "alice",
            &Pin::new(ALICE_PIN).unwrap(),
            KdfCost::for_tests(),
            created,
            &mut SystemRandom,
        )
        .unwrap();
    let bob = keys
        .add(
            "bob",
            &Pin::new(BOB_PIN).unwrap(),
            KdfCost::for_tests(),
            created,
            &mut SystemRandom,
        )
        .unwrap();
    let (alice, bob) = (AccountKey::new(&alice), AccountKey::new(&bob));
    let mut users = Users::new(plan_user("alice"));
    users.add(plan_user("bob")).unwrap();
    let limits = AcquirerLimits::new()
        .with(CARD, telepay::acquirer::card::AmountLimits::default())
        .with(
            WALLET,
            telepay::acquirer::card::AmountLimits::from_toml_str(
                "[[limit]]\ncurrency = \"EUR\"\nmin = 1\nmax = 1000\n",
                "wallet acquirer",
            )
            .unwrap(),
        );
    // The network's own key (seed 99) has an empty account and is replaced below.
    let mut network = demo_wallet_network(
        "sim:cb?seed=1",
        "1234",
        1,
        key(99),
        0,
        START,
        MeansChoice::Plan {
            users: Box::new(users),
            limits,
        },
    )
    .unwrap();
    let wallet = network.wallet.as_mut().unwrap();
    for (name, account) in [("alice", &alice), ("bob", &bob)] {
        wallet
            .store_mut()
            .open_account(account, Currency::EUR, START)
            .unwrap();
        wallet
            .credit(
                &Credit {
                    reference: CreditReference::from(format!("reload-{name}")),
                    account: account.clone(),
                    amount: Money::new(2_000, Currency::EUR),
                },
                START,
            )
            .unwrap();
    }
    TwoUsers {
        network,
        alice,
        bob,
        keys,
    }
}

impl TwoUsers {
    /// `user` steps up to the terminal: the device switches to them, and their key,
    /// opened with their PIN, is the device's wallet.
    fn switch_to(&mut self, user: &str, pin: &str) {
        let unlocked = self.keys.unlock(user, &Pin::new(pin).unwrap()).unwrap();
        self.network
            .payer
            .replace_wallet(Some(WalletSigner::from_unlocked(unlocked)));
        self.network
            .payer
            .users_mut()
            .unwrap()
            .switch_to(user)
            .unwrap();
    }

    fn identified_as(&mut self) -> CustomerId {
        let run = buy(&mut self.network, "customer-area");
        assert!(run.delivered(), "{}", render::text(&run.log));
        assert_eq!(seen_by(&run.log, PartyKind::Acquirer), Vec::<String>::new());
        find(&run.log, |m| match m {
            Message::ServiceOrder(order) => order.customer.clone(),
            _ => None,
        })
        .unwrap()
    }
}

/// Claim 9 (with 12): the payer device manages the secret keys of its several users;
/// each user's key pays from that user's own account, identifies that user as a
/// customer of their own, and signs that user's disputes — a dispute bob signs on
/// alice's payment is rejected, since his account never paid it.
#[test]
fn claim_9_each_users_secret_key_serves_payment_identification_and_dispute() {
    let mut terminal = two_users();
    let (alice, bob) = (terminal.alice.clone(), terminal.bob.clone());

    terminal.switch_to("alice", ALICE_PIN);
    let alice_customer = terminal.identified_as();
    let alice_paid = buy(&mut terminal.network, "market-report-2026");
    assert_eq!(means_of(&alice_paid), Some(WALLET));
    let alice_payment = the_payment(&alice_paid);
    assert_eq!(balance(&terminal.network, &alice), 2_000 - 250);

    terminal.switch_to("bob", BOB_PIN);
    let bob_customer = terminal.identified_as();
    let bob_paid = buy(&mut terminal.network, "marine-weather-live");
    assert_eq!(means_of(&bob_paid), Some(WALLET));
    assert_eq!(balance(&terminal.network, &bob), 2_000 - 50);
    assert_eq!(balance(&terminal.network, &alice), 2_000 - 250);

    assert_eq!(alice_customer, customer_id(&alice));
    assert_eq!(bob_customer, customer_id(&bob));
    assert_ne!(alice_customer, bob_customer);

    // Bob disputes alice's payment with his key: his account never paid it.
    let (_, outcome) = terminal
        .network
        .dispute(alice_payment.clone(), "Not mine.", clock(), Faults::none())
        .unwrap();
    assert_eq!(
        outcome.unwrap().outcome,
        rejected(&format!(
            "payment {alice_payment} was not debited from account {}",
            bob.fingerprint()
        ))
    );
    // Bob's own payment is his to dispute.
    let (_, outcome) = terminal
        .network
        .dispute(
            the_payment(&bob_paid),
            "The forecast was yesterday's.",
            clock(),
            Faults::none(),
        )
        .unwrap();
    assert!(matches!(
        outcome.unwrap().outcome,
        DisputeDecision::Accepted { .. }
    ));

    // Alice back at the terminal, her key opened again: her payment is hers to dispute.
    terminal.switch_to("alice", ALICE_PIN);
    let (_, outcome) = terminal
        .network
        .dispute(
            alice_payment,
            "Charged for a report I could not open.",
            clock(),
            Faults::none(),
        )
        .unwrap();
    assert!(matches!(
        outcome.unwrap().outcome,
        DisputeDecision::Accepted { .. }
    ));
    let store = terminal.network.wallet.as_ref().unwrap().store();
    assert_eq!(store.disputes(&alice).unwrap().len(), 1);
    assert_eq!(store.disputes(&bob).unwrap().len(), 1);

    // Alice's key on the device while bob is the active user: the device does not
    // sign for him with her key.
    terminal
        .network
        .payer
        .users_mut()
        .unwrap()
        .switch_to("bob")
        .unwrap();
    let refused =
        terminal
            .network
            .dispute(the_payment(&bob_paid), "Again.", clock(), Faults::none());
    assert_eq!(
        refused.unwrap_err(),
        DisputeRunError::Device(DisputeError::NotTheUsersKey {
            payment: the_payment(&bob_paid),
            user: "bob".into()
        })
    );
}

// ---------------------------------------------------------------------------------------
// Identification by the key: the front-end's checks, each refusal exact

/// A front-end selling the demo catalogue, taking the card and the wallet, that has
/// just asked terminal-1's payer device to identify its user for "customer-area".
fn asked_to_identify() -> (FrontEnd<SeededEntropy>, IdentificationRequest) {
    asked_to_identify_taking(true)
}

/// As [`asked_to_identify`], by a front-end that takes the wallet or the card only.
fn asked_to_identify_taking(wallet: bool) -> (FrontEnd<SeededEntropy>, IdentificationRequest) {
    let mut server = ServiceServer::new(Catalogue::demo().unwrap());
    let provider = server.catalogue().provider().clone();
    let mut front_end = FrontEnd::new(
        FrontEndConfig::new(
            MerchantId::from(MERCHANT),
            vec![provider.clone()],
            AcquirerId::from(ACQUIRER),
        ),
        SeededEntropy::new(1),
    );
    if wallet {
        front_end.accept_means(WALLET, AcquirerId::from(WALLET_ACQUIRER));
    }
    let mut client = ClientDevice::new(TerminalId::from(TERMINAL));
    let a = client.request(provider.clone(), ServiceId::from("customer-area"), None);
    let b = front_end.handle(START, &a.from, a.message);
    let [
        Envelope {
            message: Message::QuoteRequest(b),
            ..
        },
    ] = b.sent.as_slice()
    else {
        panic!("{b:?}")
    };
    let quote = server.handle_quote_request(b, START).unwrap();
    let asked = front_end.handle(START, &Party::Server(provider), Message::Quote(quote));
    let [
        Envelope {
            message: Message::IdentificationRequest(request),
            ..
        },
    ] = asked.sent.as_slice()
    else {
        panic!("{asked:?}")
    };
    let request = request.clone();
    (front_end, request)
}

/// The proof `signer` makes of `statement`, for `request`.
fn proof(
    request: &IdentificationRequest,
    signer: &SigningKey,
    statement: IdentityStatement,
) -> Message {
    Message::IdentificationProof(Box::new(IdentificationProof {
        purchase: request.purchase.clone(),
        identification: request.identification.clone(),
        terminal: TerminalId::from(TERMINAL),
        proof: IdentityProof::Key(SignedIdentity::sign(statement, |m| signer.sign(m)).unwrap()),
    }))
}

fn payer() -> Party {
    Party::Payer(TerminalId::from(TERMINAL))
}

#[test]
fn the_front_end_verifies_a_key_proof_and_names_the_customer() {
    let (mut front_end, request) = asked_to_identify();
    let signer = key(1);
    // Signed a whole tolerance later than asked: still on time.
    let now = START.plus_millis(IDENTITY_TIME_TOLERANCE_MS);
    let statement = IdentityStatement::answering(account(1), &request, START);
    let reaction = front_end.handle(now, &payer(), proof(&request, &signer, statement));
    let customer = customer_id(&account(1));
    assert_eq!(reaction.ignored, None);
    assert_eq!(
        reaction.sent[0].message,
        Message::IdentificationResult(IdentificationResult {
            purchase: request.purchase.clone(),
            identification: request.identification.clone(),
            verdict: Verdict::Positive {
                authorisation_code: "KEY-OK".into(),
                response_code: *b"00",
                arpc: None,
            },
            customer: Some(customer.clone()),
        })
    );
    // Then as after a positive identity verdict: the free service is ordered for the
    // customer.
    let Message::ServiceOrder(order) = &reaction.sent[1].message else {
        panic!("{reaction:?}")
    };
    assert_eq!(order.customer, Some(customer.clone()));
    assert_eq!(
        front_end.purchase(&request.purchase).unwrap().customer,
        Some(customer)
    );
}

#[test]
fn the_front_end_refuses_each_faulty_key_proof_by_name() {
    let signer = key(1);
    let mallory = key(66);
    let identification = IdentificationId::from("P-000001-ID");
    // (case, who signs, the statement's change, the reason, the failure's text)
    type Edit = fn(&mut IdentityStatement);
    let cases: [(&str, &SigningKey, Edit, RefusalReason, String); 6] = [
        (
            "forged: signed by another key than the account's",
            &mallory,
            |_| {},
            RefusalReason::SignatureInvalid,
            format!(
                "the proof's signature is refused: identity statement P-000001-ID: the signature does not verify with account {}",
                account(1).fingerprint()
            ),
        ),
        (
            "another nonce",
            &signer,
            |s| s.nonce = [0; 16],
            RefusalReason::MismatchWithRequest,
            String::new(), // filled below: it names the request's nonce
        ),
        (
            "another merchant",
            &signer,
            |s| s.merchant = MerchantId::from("other-frontend"),
            RefusalReason::MismatchWithRequest,
            "the proof is for merchant other-frontend, not telepay-frontend".into(),
        ),
        (
            "signed too long before",
            &signer,
            |s| s.time = s.time.plus_millis(-IDENTITY_TIME_TOLERANCE_MS - 1),
            RefusalReason::MismatchWithRequest,
            "the proof was signed at 2026-11-25T10:24:59.999Z, more than 300000 ms from the front-end's 2026-11-25T10:30:00Z".into(),
        ),
        (
            "another identification",
            &signer,
            |s| s.identification = IdentificationId::from("P-000002-ID"),
            RefusalReason::MismatchWithRequest,
            "the proof answers identification P-000002-ID, not P-000001-ID".into(),
        ),
        (
            "another purpose",
            &signer,
            |s| s.purpose = "Delete my account".into(),
            RefusalReason::MismatchWithRequest,
            "the proof is for \"Delete my account\", the request for \"Customer area: your subscriptions and invoices\"".into(),
        ),
    ];
    for (case, by, edit, reason, why) in cases {
        let (mut front_end, request) = asked_to_identify();
        assert_eq!(request.identification, identification);
        let why = if why.is_empty() {
            format!(
                "the proof carries nonce {}, the request's is {}",
                "0".repeat(32),
                hex::encode_upper(request.nonce)
            )
        } else {
            why
        };
        let mut statement = IdentityStatement::answering(account(1), &request, START);
        edit(&mut statement);
        let reaction = front_end.handle(START, &payer(), proof(&request, by, statement));
        assert_eq!(
            reaction.sent,
            [
                Envelope {
                    from: Party::FrontEnd,
                    to: payer(),
                    message: Message::IdentificationResult(IdentificationResult {
                        purchase: request.purchase.clone(),
                        identification: request.identification.clone(),
                        verdict: Verdict::refused(reason.clone()),
                        customer: None,
                    }),
                },
                Envelope {
                    from: Party::FrontEnd,
                    to: Party::Client(TerminalId::from(TERMINAL)),
                    message: Message::PurchaseOutcome(PurchaseOutcome {
                        request: front_end
                            .purchase(&request.purchase)
                            .unwrap()
                            .request
                            .request
                            .clone(),
                        purchase: request.purchase.clone(),
                        failure: Failure::IdentificationFailed { reason: why },
                    }),
                },
            ],
            "{case}"
        );
    }
}

#[test]
fn a_refusal_is_the_first_check_that_fails_and_maps_to_its_reason() {
    // A forged proof that also has the wrong nonce is refused for its signature: the
    // fields of a statement nobody signed are not looked at.
    let (_, request) = asked_to_identify();
    let mut statement = IdentityStatement::answering(account(1), &request, START);
    statement.nonce = [0; 16];
    let forged = SignedIdentity::sign(statement, |m| key(66).sign(m)).unwrap();
    let refusal = telepay::acquirer::wallet::identity::check_identity(
        &forged,
        &request,
        &MerchantId::from(MERCHANT),
        START,
    )
    .unwrap_err();
    assert!(matches!(
        refusal,
        IdentityRefusal::Signature(StatementError::BadSignature { .. })
    ));
    assert_eq!(refusal.reason(), RefusalReason::SignatureInvalid);
}

#[test]
fn a_key_proof_is_refused_when_the_front_end_does_not_take_the_wallet() {
    // The front-end takes the card only; a key's proof answers its request all the same.
    let (mut front_end, request) = asked_to_identify_taking(false);
    assert_eq!(request.accepted_means, [CARD]);
    let statement = IdentityStatement::answering(account(1), &request, START);
    let reaction = front_end.handle(START, &payer(), proof(&request, &key(1), statement));
    let Message::IdentificationResult(result) = &reaction.sent[0].message else {
        panic!("{reaction:?}")
    };
    assert_eq!(result.verdict, Verdict::refused(RefusalReason::NoAcquirer));
    let Message::PurchaseOutcome(outcome) = &reaction.sent[1].message else {
        panic!("{reaction:?}")
    };
    assert_eq!(
        outcome.failure,
        Failure::IdentificationFailed {
            reason: "no acquirer takes this means of payment".into()
        }
    );
}

#[test]
fn a_device_uses_the_card_when_the_front_end_does_not_take_the_wallet() {
    // The plain demo network takes the card only; the device holds a wallet key all
    // the same: the card identifies the user, checked by the card's acquirer.
    let mut network = demo_network("sim:cb?seed=1", "1234", 1)
        .unwrap()
        .map_payer(|payer| payer.with_wallet(WalletSigner::from_signing_key(key(3))));
    let run = buy(&mut network, "customer-area");
    assert!(run.delivered(), "{}", render::text(&run.log));
    assert_eq!(
        seen_by(&run.log, PartyKind::Acquirer),
        ["identity check>", "identity verdict<"]
    );
    let check = find(&run.log, |m| match m {
        Message::IdentityCheck(check) => Some(check.clone()),
        _ => None,
    })
    .unwrap();
    assert!(matches!(check.proof.proof, IdentityProof::Card(_)));
}

#[test]
fn the_card_acquirer_refuses_a_key_proof() {
    let mut network = demo_network("sim:cb?seed=1", "1234", 1).unwrap();
    let (_, request) = asked_to_identify();
    let statement = IdentityStatement::answering(account(1), &request, START);
    let Message::IdentificationProof(proof) = proof(&request, &key(1), statement) else {
        unreachable!()
    };
    let verdict = network
        .acquirer
        .identify(
            &IdentityCheck {
                acquirer: AcquirerId::from(ACQUIRER),
                request,
                proof: *proof,
            },
            START,
        )
        .unwrap();
    assert_eq!(verdict.verdict, Verdict::refused(RefusalReason::NoAcquirer));
    assert_eq!(verdict.customer, None);
}

// ---------------------------------------------------------------------------------------
// Disputes: the front-end, the acquirer, the payer device

/// A dispute `signer` signs for `account`'s payment `payment`, made to `merchant`.
fn dispute(
    signer: &SigningKey,
    account: &AccountKey,
    id: &str,
    payment: &PaymentId,
    merchant: &str,
) -> Dispute {
    let statement = DisputeStatement {
        dispute: DisputeId::from(id),
        account: account.clone(),
        merchant: MerchantId::from(merchant),
        payment: payment.clone(),
        reason: "Not delivered.".into(),
        time: START,
    };
    Dispute {
        dispute: DisputeId::from(id),
        terminal: TerminalId::from(TERMINAL),
        means: WALLET,
        payment: payment.clone(),
        reason: "Not delivered.".into(),
        signed: SignedDispute::sign(statement, |m| signer.sign(m)).unwrap(),
    }
}

fn case(dispute: Dispute) -> DisputeCase {
    DisputeCase {
        acquirer: AcquirerId::from(WALLET_ACQUIRER),
        merchant: MerchantId::from(MERCHANT),
        dispute,
    }
}

#[test]
fn the_wallet_acquirer_checks_the_signature_the_account_and_the_merchant() {
    let mut network = wallet_network(7, MeansChoice::Fixed(WALLET));
    let paid = the_payment(&buy(&mut network, "market-report-2026"));
    let acquirer = network.wallet.as_mut().unwrap();
    let decide = |acquirer: &mut telepay::acquirer::wallet::WalletAcquirer, case| {
        acquirer.dispute(&case, START).unwrap().outcome
    };
    // (case, the dispute case, the outcome): in the order the acquirer checks.
    let cases: Vec<(&str, DisputeCase, DisputeDecision)> = vec![
        (
            "signed by another key than the account's",
            case(dispute(&key(66), &account(7), "D-1", &paid, MERCHANT)),
            rejected(&format!(
                "dispute statement D-1: the signature does not verify with account {}",
                account(7).fingerprint()
            )),
        ),
        (
            "a message that is not its statement",
            case(Dispute {
                reason: "Something else.".into(),
                ..dispute(&key(7), &account(7), "D-1", &paid, MERCHANT)
            }),
            rejected("dispute D-1: the message's reason is not the signed one"),
        ),
        (
            "another merchant than the case's",
            case(dispute(
                &key(7),
                &account(7),
                "D-1",
                &paid,
                "other-frontend",
            )),
            rejected(
                "dispute D-1: the signed statement names merchant other-frontend, not telepay-frontend",
            ),
        ),
        (
            "a card payment",
            case(Dispute {
                means: CARD,
                ..dispute(&key(7), &account(7), "D-1", &paid, MERCHANT)
            }),
            rejected("dispute D-1: this acquirer takes disputes of virtual-wallet payments only"),
        ),
        (
            "another account's key, its own signature",
            case(dispute(&key(8), &account(8), "D-1", &paid, MERCHANT)),
            rejected(&format!(
                "payment {paid} was not debited from account {}",
                account(8).fingerprint()
            )),
        ),
        (
            "the account's own",
            case(dispute(&key(7), &account(7), "D-1", &paid, MERCHANT)),
            DisputeDecision::Accepted {
                case: "WD-000001".into(),
            },
        ),
        (
            "the same again",
            case(dispute(&key(7), &account(7), "D-1", &paid, MERCHANT)),
            DisputeDecision::Accepted {
                case: "WD-000001".into(),
            },
        ),
        (
            "another statement under the same identifier",
            case(Dispute {
                signed: SignedDispute::sign(
                    DisputeStatement {
                        time: START.plus_millis(1),
                        ..dispute(&key(7), &account(7), "D-1", &paid, MERCHANT)
                            .signed
                            .statement
                    },
                    |m| key(7).sign(m),
                )
                .unwrap(),
                ..dispute(&key(7), &account(7), "D-1", &paid, MERCHANT)
            }),
            rejected("dispute D-1: the identifier already names another dispute"),
        ),
    ];
    for (why, case, expected) in cases {
        assert_eq!(decide(acquirer, case), expected, "{why}");
    }
    assert_eq!(
        acquirer.store().disputes(&account(7)).unwrap().len(),
        1,
        "recorded once"
    );
    // A case for another acquirer is not answered.
    let mut elsewhere = case(dispute(&key(7), &account(7), "D-2", &paid, MERCHANT));
    elsewhere.acquirer = AcquirerId::from("other-acquirer");
    assert_eq!(
        acquirer.dispute(&elsewhere, START).unwrap_err().to_string(),
        "dispute D-2 is addressed to acquirer other-acquirer, this is wallet-acquirer"
    );
}

#[test]
fn the_front_end_takes_disputes_from_the_terminals_payer_device_only() {
    let mut network = wallet_network(7, MeansChoice::Fixed(WALLET));
    let paid = the_payment(&buy(&mut network, "market-report-2026"));
    let good = dispute(&key(7), &account(7), "terminal-1-D1", &paid, MERCHANT);
    let front_end = &mut network.front_end;

    let from_client = front_end.handle(
        START,
        &Party::Client(TerminalId::from(TERMINAL)),
        Message::Dispute(Box::new(good.clone())),
    );
    assert_eq!(
        (from_client.sent.len(), from_client.ignored.as_deref()),
        (
            0,
            Some("a dispute for terminal terminal-1 came from client device terminal-1")
        )
    );

    // Refused by the front-end itself, naming no acquirer: what the user signed is not
    // what the message says.
    let tampered = Dispute {
        payment: PaymentId::from("P-000009-PAY"),
        dispute: DisputeId::from("terminal-1-D2"),
        ..good.clone()
    };
    let refused = front_end.handle(START, &payer(), Message::Dispute(Box::new(tampered)));
    assert_eq!(
        refused.sent,
        [Envelope {
            from: Party::FrontEnd,
            to: payer(),
            message: Message::DisputeOutcome(DisputeOutcome {
                dispute: DisputeId::from("terminal-1-D2"),
                acquirer: None,
                outcome: rejected(
                    "dispute terminal-1-D2: the signed statement is for dispute terminal-1-D1"
                ),
            }),
        }]
    );

    // Forwarded, then ignored while at the acquirer; another dispute under its name is
    // ignored too.
    let forwarded = front_end.handle(START, &payer(), Message::Dispute(Box::new(good.clone())));
    assert_eq!(
        forwarded.sent,
        [Envelope {
            from: Party::FrontEnd,
            to: Party::Acquirer(AcquirerId::from(WALLET_ACQUIRER)),
            message: Message::DisputeCase(Box::new(case(good.clone()))),
        }]
    );
    assert_eq!(
        front_end.poll_timeout(),
        Some(START.plus_millis(front_end.config().acquirer_timeout_ms))
    );
    let repeated = front_end.handle(START, &payer(), Message::Dispute(Box::new(good.clone())));
    assert_eq!(
        repeated.ignored.as_deref(),
        Some("dispute terminal-1-D1 repeated while its case is at the acquirer")
    );
    let other = Dispute {
        reason: "Other.".into(),
        ..good.clone()
    };
    let conflicting = front_end.handle(START, &payer(), Message::Dispute(Box::new(other)));
    assert_eq!(
        conflicting.ignored.as_deref(),
        Some("dispute terminal-1-D1 already names another dispute of terminal terminal-1")
    );
    // An outcome from another party than the case's acquirer is not taken.
    let forged = DisputeOutcome {
        dispute: good.dispute.clone(),
        acquirer: Some(AcquirerId::from(ACQUIRER)),
        outcome: DisputeDecision::Accepted { case: "X".into() },
    };
    let ignored = front_end.handle(
        START,
        &Party::Acquirer(AcquirerId::from(ACQUIRER)),
        Message::DisputeOutcome(forged),
    );
    assert_eq!(
        ignored.ignored.as_deref(),
        Some("an outcome for dispute terminal-1-D1 came from acquirer bank-card-acquirer")
    );
    assert_eq!(front_end.disputes().len(), 2);
}

#[test]
fn a_silent_acquirer_leaves_the_dispute_unanswered_until_it_is_sent_again() {
    let mut network = wallet_network(7, MeansChoice::Fixed(WALLET));
    let paid = the_payment(&buy(&mut network, "market-report-2026"));
    let (log, outcome) = network
        .dispute(
            paid,
            "Not delivered.",
            clock(),
            Faults::none().drop_step("dispute case", PartyKind::Acquirer),
        )
        .unwrap();
    let outcome = outcome.unwrap();
    assert_eq!(
        (outcome.acquirer.as_ref(), &outcome.outcome),
        (
            Some(&AcquirerId::from(WALLET_ACQUIRER)),
            &DisputeDecision::Unanswered
        ),
        "{}",
        render::text(&log)
    );
    // The deadline was the acquirer's.
    let sent = log.entries.first().unwrap().at;
    let told = log.entries.last().unwrap().at;
    assert!(told >= sent.plus_millis(network.front_end.config().acquirer_timeout_ms));

    // The user sends it again: the front-end sends the case again, the acquirer
    // answers, and the decision replaces "unanswered" on the device.
    let again = network
        .payer
        .dispute_message(&outcome.dispute)
        .unwrap()
        .clone();
    let reaction = network.front_end.handle(told, &again.from, again.message);
    let [
        Envelope {
            message: Message::DisputeCase(case),
            ..
        },
    ] = reaction.sent.as_slice()
    else {
        panic!("{reaction:?}")
    };
    let decided = network
        .wallet
        .as_mut()
        .unwrap()
        .dispute(case, told)
        .unwrap();
    let passed = network.front_end.handle(
        told,
        &Party::Acquirer(AcquirerId::from(WALLET_ACQUIRER)),
        Message::DisputeOutcome(decided.clone()),
    );
    let [to_payer] = passed.sent.as_slice() else {
        panic!("{passed:?}")
    };
    network
        .payer
        .handle(told, &to_payer.from, to_payer.message.clone());
    assert_eq!(
        network.payer.dispute_outcome(&outcome.dispute),
        Some(&decided)
    );
    assert!(matches!(decided.outcome, DisputeDecision::Accepted { .. }));
}

#[test]
fn the_payer_device_refuses_disputes_it_cannot_sign_or_that_break_the_rules() {
    let merchant = MerchantId::from(MERCHANT);
    let payment = PaymentId::from("P-000001-PAY");
    let mut card_only = demo_network("sim:cb?seed=1", "1234", 1).unwrap();
    assert_eq!(
        card_only
            .payer
            .dispute(START, payment.clone(), merchant.clone(), "Not delivered."),
        Err(DisputeError::NoWallet {
            payment: payment.clone()
        })
    );
    let mut network = wallet_network(7, MeansChoice::Fixed(WALLET));
    let id = DisputeId::from(format!("{TERMINAL}-D{}", START.0));
    let cases = [
        (
            "   ".to_owned(),
            DisputeFault::EmptyReason {
                dispute: id.clone(),
            },
        ),
        (
            "x".repeat(MAX_DISPUTE_REASON_CHARS + 1),
            DisputeFault::ReasonTooLong {
                dispute: id.clone(),
                chars: 501,
                max: 500,
            },
        ),
    ];
    for (reason, fault) in cases {
        assert_eq!(
            network
                .payer
                .dispute(START, payment.clone(), merchant.clone(), &reason),
            Err(DisputeError::Reason(fault))
        );
    }
    // Nothing was spent on the refusals: the first dispute made takes the number.
    let made = network
        .payer
        .dispute(START, payment.clone(), merchant.clone(), "Not delivered.")
        .unwrap();
    let Message::Dispute(first) = &made.message else {
        panic!()
    };
    assert_eq!(first.dispute, id);
    assert_eq!(first.means, WALLET, "a payment the device does not know");
    let Message::Dispute(second) = network
        .payer
        .dispute(START, payment, merchant, "Still not delivered.")
        .unwrap()
        .message
    else {
        panic!()
    };
    assert_eq!(
        second.dispute,
        DisputeId::from(format!("{TERMINAL}-D{}", START.0 + 1))
    );
}

// ---------------------------------------------------------------------------------------
// The encodings

fn text() -> impl Strategy<Value = String> {
    ".{0,6}"
}

fn identity_statement() -> impl Strategy<Value = IdentityStatement> {
    (
        1u8..=4,
        text(),
        text(),
        text(),
        any::<[u8; 16]>(),
        any::<i64>(),
    )
        .prop_map(
            |(seed, merchant, identification, purpose, nonce, time)| IdentityStatement {
                account: account(seed),
                merchant: MerchantId::from(merchant),
                identification: IdentificationId::from(identification),
                purpose,
                nonce,
                time: Timestamp(time),
            },
        )
}

fn dispute_statement() -> impl Strategy<Value = DisputeStatement> {
    (1u8..=4, text(), text(), text(), text(), any::<i64>()).prop_map(
        |(seed, dispute, merchant, payment, reason, time)| DisputeStatement {
            dispute: DisputeId::from(dispute),
            account: account(seed),
            merchant: MerchantId::from(merchant),
            payment: PaymentId::from(payment),
            reason,
            time: Timestamp(time),
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn identity_statements_decode_as_encoded(s in identity_statement()) {
        let bytes = s.encode().unwrap();
        prop_assert_eq!(IdentityStatement::decode(&bytes).unwrap(), s);
    }

    #[test]
    fn dispute_statements_decode_as_encoded(s in dispute_statement()) {
        let bytes = s.encode().unwrap();
        prop_assert_eq!(DisputeStatement::decode(&bytes).unwrap(), s);
    }

    #[test]
    fn distinct_statements_never_encode_equal(
        a in identity_statement(), b in identity_statement(),
        c in dispute_statement(), d in dispute_statement(),
    ) {
        prop_assert_eq!(a == b, a.encode().unwrap() == b.encode().unwrap());
        prop_assert_eq!(c == d, c.encode().unwrap() == d.encode().unwrap());
    }

    /// No statement's bytes read as another kind's: a signature over one can never be
    /// presented as a signature over another (a payment above all).
    #[test]
    fn no_statement_is_another_kind(a in identity_statement(), c in dispute_statement()) {
        let identity = a.encode().unwrap();
        let dispute = c.encode().unwrap();
        prop_assert!(WalletPayment::decode(&identity).is_err());
        prop_assert!(WalletPayment::decode(&dispute).is_err());
        prop_assert!(DisputeStatement::decode(&identity).is_err());
        prop_assert!(IdentityStatement::decode(&dispute).is_err());
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..160)) {
        let _ = IdentityStatement::decode(&bytes);
        let _ = DisputeStatement::decode(&bytes);
    }

    /// Bytes that open as a statement and then go astray: every prefix of a good
    /// encoding, each with a byte changed, decodes or fails, never panics.
    #[test]
    fn damaged_statements_never_panic(
        s in identity_statement(), d in dispute_statement(), at in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<prop::sample::Index>()
    ) {
        for mut bytes in [s.encode().unwrap(), d.encode().unwrap()] {
            let i = at.index(bytes.len());
            bytes[i] = byte;
            bytes.truncate(cut.index(bytes.len() + 1));
            let _ = IdentityStatement::decode(&bytes);
            let _ = DisputeStatement::decode(&bytes);
        }
    }

    #[test]
    fn signed_statements_travel_as_json_and_still_verify(s in identity_statement(), d in dispute_statement()) {
        let signer = key(5);
        let identity = SignedIdentity::sign(IdentityStatement { account: account(5), ..s }, |m| signer.sign(m)).unwrap();
        let json = serde_json::to_string(&identity).unwrap();
        let back: SignedIdentity = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(back.verify(), Ok(()));
        prop_assert_eq!(&back, &identity);
        let dispute = SignedDispute::sign(DisputeStatement { account: account(5), ..d }, |m| signer.sign(m)).unwrap();
        let json = serde_json::to_string(&dispute).unwrap();
        let back: SignedDispute = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(back.verify(), Ok(()));
        prop_assert_eq!(back, dispute);
    }
}

#[test]
fn a_signed_payment_is_never_a_signed_statement() {
    // The same key signs payments and statements; a payment's signature presented as a
    // statement's does not decode, let alone verify.
    let signer = key(5);
    let payment = WalletPayment {
        account: account(5),
        merchant: MerchantId::from(MERCHANT),
        service: ServiceId::from("customer-area"),
        payment: PaymentId::from("P-000001-ID"),
        amount: Money::new(1, Currency::EUR),
        sequence: 1,
        time: START,
    };
    let signed = SignedWalletPayment::sign(payment, |m| signer.sign(m)).unwrap();
    let json = serde_json::json!({
        "statement": hex::encode_upper(signed.payment.encode().unwrap()),
        "signature": hex::encode_upper(signed.signature),
    });
    let error = serde_json::from_value::<SignedIdentity>(json)
        .unwrap_err()
        .to_string();
    assert_eq!(
        error,
        "encoded identity statement: field `tag` at offset 0: expected \"telepay-identity/1\""
    );
}

#[test]
fn a_key_proof_on_the_wire() {
    // The proof as JSON: the variant by name, the statement and the signature in hex.
    let (_, request) = asked_to_identify();
    let statement = IdentityStatement::answering(account(1), &request, START);
    let Message::IdentificationProof(proof) = proof(&request, &key(1), statement) else {
        unreachable!()
    };
    let json = serde_json::to_value(&proof).unwrap();
    let key_proof = &json["proof"]["key"];
    assert!(
        key_proof["statement"]
            .as_str()
            .unwrap()
            .starts_with("001274656C65706179"),
        "{json}"
    );
    assert_eq!(key_proof["signature"].as_str().unwrap().len(), 128);
    let back: IdentificationProof = serde_json::from_value(json).unwrap();
    assert_eq!(back, *proof);
}
