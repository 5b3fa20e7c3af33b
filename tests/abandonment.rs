//! A bank-card payment abandoned by the payer device because its front-end went away
//! between E and H: the card ends the transaction with an AAC, and the card's acquirer
//! cancels the payment on that proof alone — whichever front-end brings it.
//!
//! Real parts: the software card (card-applet-sim) driven by the payer device's card
//! module, the acquirer's rules with the test issuers' keys, the SQLite journal.
//!
//! - an authorised payment abandoned is reversed (a reversed transaction is never cut
//!   into a batch);
//! - a payment the acquirer never saw is marked, and a late F for it is refused;
//! - a payment the card completed with a TC cannot be abandoned, and its TC (or its
//!   ARQC) dressed up as an AAC is refused;
//! - the proof is bound to its payment: each field changed alone is refused for its
//!   reason;
//! - the card waits to complete one transaction at a time: a late H (or identification
//!   result, or abandonment) for an earlier transaction does not complete a later one.
//! - the abandonments still waiting for an answer are sent again in the order of their
//!   payments' identifiers, whatever order they were paid in.

mod common;
use common::TempDir;

use telepay::acquirer::card::AbandonmentRefusal;
use telepay::acquirer::journal::{Journal, TransactionState};
use telepay::acquirer::system::BankCardAcquirer;
use telepay::messages::{
    AbandonmentOutcome, AbandonmentResult, AcquirerTransaction, Currency, Envelope, Means,
    MerchantId, Message, Money, Party, PayerAcknowledgement, PaymentAbandonment, PaymentId,
    PaymentRequest, PurchaseId, RefusalReason, ServiceId, TerminalId, Timestamp, Verdict,
};
use telepay::purchase::embedded::test_rules;
use telepay::terminal::card_module::{CardModule, TerminalData};
use telepay::terminal::payer::{PayerDevice, PaymentState, ScriptedUser};

/// 2026-11-25T12:00:00Z.
const NOW: Timestamp = Timestamp(1_795_608_000_000);

type Payer =
    PayerDevice<telepay::reader::Transport<Box<dyn telepay::reader::Reader + Send>>, ScriptedUser>;

struct Bench {
    _dir: TempDir,
    payer: Payer,
    acquirer: BankCardAcquirer,
}

fn bench(name: &str) -> Bench {
    let dir = TempDir::new(&format!("abandonment-{name}"));
    let card = telepay::testing::cb_card(dir.path(), 7).unwrap();
    let payer = PayerDevice::new(
        TerminalId::from("t1"),
        CardModule::new(card, TerminalData::france()),
        ScriptedUser::with_pin("1234"),
    );
    let acquirer = BankCardAcquirer::new(test_rules().unwrap(), Journal::open_in_memory().unwrap());
    Bench {
        _dir: dir,
        payer,
        acquirer,
    }
}

/// Payment request D number `n` of the lost front-end.
fn request(n: u8) -> PaymentRequest {
    let designation = format!("Document {n}");
    PaymentRequest {
        purchase: PurchaseId::from(format!("fe1-P{n}")),
        payment: PaymentId::from(format!("fe1-P{n}-D1")),
        merchant: MerchantId::from("telepay-demo"),
        service: ServiceId::from("doc"),
        designation_digest: PaymentRequest::digest_designation(&designation),
        designation: designation.into(),
        amount: Money::new(250, Currency::EUR),
        date: NOW,
        nonce: [n; 16],
        valid_until: Timestamp(NOW.0 + 600_000),
        accepted_means: vec![Means::BankCard],
        session: None,
    }
}

impl Bench {
    /// The payer device answers D with E (the card's ARQC).
    fn pay(&mut self, d: &PaymentRequest) -> AcquirerTransaction {
        let sent = self
            .payer
            .handle(NOW, &Party::FrontEnd, Message::PaymentRequest(d.clone()));
        let [
            Envelope {
                message: Message::Transaction(e),
                ..
            },
        ] = sent.as_slice()
        else {
            panic!("the payer device did not pay: {sent:?}");
        };
        AcquirerTransaction {
            acquirer: self.acquirer.id().clone(),
            merchant: d.merchant.clone(),
            request: d.clone(),
            transaction: (**e).clone(),
            provision: None,
        }
    }

    /// D paid by the card and authorised by the acquirer: F and its positive G.
    fn pay_and_authorise(&mut self, d: &PaymentRequest) -> (AcquirerTransaction, Verdict) {
        let f = self.pay(d);
        let g = self.acquirer.authorise(&f, NOW).unwrap();
        assert!(g.verdict.is_positive(), "{g:?}");
        (f, g.verdict)
    }

    /// H with `verdict` reaches the payer device.
    fn acknowledge(&mut self, d: &PaymentRequest, verdict: Verdict) {
        self.payer.handle(
            NOW,
            &Party::FrontEnd,
            Message::PayerAcknowledgement(PayerAcknowledgement {
                purchase: d.purchase.clone(),
                payment: d.payment.clone(),
                verdict,
            }),
        );
    }

    /// Where the journal has `payment`.
    fn state(&self, payment: &PaymentId) -> TransactionState {
        let stored = self.acquirer.journal().stored_transaction(payment).unwrap();
        stored.expect("the journal has the payment").state
    }

    /// The payer device abandons what waits for H: the one abandonment it makes.
    fn abandon(&mut self) -> PaymentAbandonment {
        let sent = self.payer.abandon_unacknowledged();
        let [
            Envelope {
                from,
                to: Party::FrontEnd,
                message: Message::PaymentAbandoned(abandonment),
            },
        ] = sent.as_slice()
        else {
            panic!("expected one abandonment, got {sent:?}");
        };
        assert_eq!(*from, Party::Payer(TerminalId::from("t1")));
        PaymentAbandonment::clone(abandonment)
    }
}

fn not_charged(detail: &str) -> AbandonmentOutcome {
    AbandonmentOutcome::NotCharged {
        detail: detail.into(),
    }
}

#[test]
fn an_authorised_payment_abandoned_with_the_cards_aac_is_reversed() {
    let mut bench = bench("authorised");
    let d = request(1);
    let (f, verdict) = bench.pay_and_authorise(&d);

    // The front-end is lost: H never comes. The card declines with an AAC.
    let abandonment = bench.abandon();
    assert_eq!(abandonment.decline.cid & 0xC0, 0x00, "an AAC");
    let atc = f.transaction.means.card().unwrap().atc;
    match bench.payer.payment_state(&d.payment) {
        Some(PaymentState::Abandoned {
            completion,
            outcome: None,
        }) => assert_eq!(completion.atc, atc, "the same transaction"),
        other => panic!("{other:?}"),
    }

    let outcome = bench.acquirer.abandon(&abandonment, NOW).unwrap();
    assert_eq!(outcome, not_charged("authorised, now reversed"));
    // A repeat (the answer was lost on the way back) changes nothing.
    let again = bench.acquirer.abandon(&abandonment, NOW).unwrap();
    assert_eq!(again, not_charged("already reversed"));
    assert_eq!(bench.state(&d.payment), TransactionState::Reversed);

    // The result reaches the payer device; a late H from the lost front-end changes
    // nothing on the device (the card's transaction is over).
    bench.payer.handle(
        NOW,
        &Party::FrontEnd,
        Message::AbandonmentResult(AbandonmentResult {
            acquirer: bench.acquirer.id().clone(),
            terminal: TerminalId::from("t1"),
            purchase: d.purchase.clone(),
            payment: d.payment.clone(),
            outcome: outcome.clone(),
        }),
    );
    bench.acknowledge(&d, verdict);
    match bench.payer.payment_state(&d.payment) {
        Some(PaymentState::Abandoned {
            outcome: Some(got), ..
        }) => assert_eq!(*got, outcome),
        other => panic!("{other:?}"),
    }
    assert!(
        bench.payer.abandon_unacknowledged().is_empty(),
        "nothing left to abandon once the acquirer answered"
    );
}

#[test]
fn abandonments_are_sent_again_in_the_order_of_their_payments_whatever_the_order_paid() {
    let mut bench = bench("order");
    // Paid and abandoned one after the other, the later identifier first.
    let (later, earlier) = (request(5), request(4));
    bench.pay(&later);
    assert_eq!(bench.abandon().transaction.payment, later.payment);
    bench.pay(&earlier);
    let sent = bench.payer.abandon_unacknowledged();

    // Both still wait for the acquirer's answer: each is sent (again), by identifier.
    let abandoned: Vec<&PaymentId> = sent
        .iter()
        .map(|envelope| match &envelope.message {
            Message::PaymentAbandoned(abandonment) => &abandonment.transaction.payment,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(abandoned, [&earlier.payment, &later.payment]);
    let listed: Vec<&PaymentId> = bench.payer.payments().map(|(payment, _)| payment).collect();
    assert_eq!(listed, [&earlier.payment, &later.payment]);
}

#[test]
fn a_payment_the_acquirer_never_saw_is_marked_and_its_late_transaction_refused() {
    let mut bench = bench("unseen");
    let d = request(2);
    let f = bench.pay(&d);
    let abandonment = bench.abandon();
    let outcome = bench.acquirer.abandon(&abandonment, NOW).unwrap();
    assert_eq!(
        outcome,
        not_charged("never received; a late transaction will be refused")
    );
    // The lost front-end was only cut off, and its F arrives after all.
    let g = bench.acquirer.authorise(&f, NOW).unwrap();
    assert_eq!(g.verdict, Verdict::refused(RefusalReason::Cancelled));
}

#[test]
fn a_payment_completed_with_a_tc_cannot_be_abandoned_nor_its_cryptograms_passed_off_as_an_aac() {
    let mut bench = bench("completed");
    let d = request(3);
    let (f, verdict) = bench.pay_and_authorise(&d);
    bench.acknowledge(&d, verdict);
    let Some(PaymentState::Completed(tc)) = bench.payer.payment_state(&d.payment).cloned() else {
        panic!("the card did not complete");
    };
    assert!(bench.payer.abandon_unacknowledged().is_empty());

    // A forger takes the TC, and then the ARQC, and calls each an AAC: the MAC is the
    // same computation, but the card's verification results it covers say what the
    // card really answered.
    let card = f.transaction.means.card().unwrap().clone();
    for (what, cryptogram, iad) in [
        ("the TC", tc.cryptogram, tc.iad.clone()),
        ("the ARQC", card.cryptogram, card.iad.clone()),
    ] {
        let forged = PaymentAbandonment {
            request: d.clone(),
            transaction: f.transaction.clone(),
            decline: telepay::messages::CardDecline {
                cid: 0x00,
                cryptogram,
                iad,
            },
        };
        assert_eq!(
            bench.acquirer.rules().check_abandonment(&forged),
            Err(AbandonmentRefusal::NotDeclinedAfterArqc),
            "{what}"
        );
        let outcome = bench.acquirer.abandon(&forged, NOW).unwrap();
        assert!(!outcome.not_charged(), "{what}: {outcome}");
    }
    assert_eq!(
        bench.state(&d.payment),
        TransactionState::Authorised,
        "still charged"
    );
}

#[test]
fn the_proof_is_bound_to_its_payment_each_field_changed_alone_is_refused() {
    let mut bench = bench("bound");
    let d = request(4);
    bench.pay(&d);
    let genuine = bench.abandon();
    let rules = bench.acquirer.rules();
    assert_eq!(rules.check_abandonment(&genuine), Ok(()));

    type Mutation = fn(&mut PaymentAbandonment);
    let cases: [(&str, Mutation, AbandonmentRefusal); 6] = [
        (
            "CID says TC",
            |a| a.decline.cid = 0x40,
            AbandonmentRefusal::NotAnAac { cid: 0x40 },
        ),
        (
            "one bit of the AAC",
            |a| a.decline.cryptogram[7] ^= 0x01,
            AbandonmentRefusal::CryptogramInvalid,
        ),
        (
            "the CVR made to say TC",
            |a| a.decline.iad[4] = (a.decline.iad[4] & 0x3F) | 0x40,
            AbandonmentRefusal::CryptogramInvalid,
        ),
        (
            "another payment request's nonce",
            |a| a.request.nonce[0] ^= 0xFF,
            AbandonmentRefusal::MismatchWithRequest,
        ),
        (
            "another amount in D",
            |a| a.request.amount.minor += 1,
            AbandonmentRefusal::MismatchWithRequest,
        ),
        (
            "another payment identifier in D",
            |a| a.request.payment = PaymentId::from("fe1-P9-D1"),
            AbandonmentRefusal::MismatchWithRequest,
        ),
    ];
    for (what, mutate, expected) in cases {
        let mut changed = genuine.clone();
        mutate(&mut changed);
        assert_eq!(rules.check_abandonment(&changed), Err(expected), "{what}");
    }
}

/// The card has one transaction waiting to complete at a time. An acknowledgement (or
/// an abandonment) of an earlier payment, come after a later payment's E, must not
/// complete the later one's transaction in its name.
#[test]
fn a_late_acknowledgement_of_an_earlier_payment_does_not_complete_the_next_one() {
    let mut bench = bench("late");
    let first = request(5);
    let (_, first_verdict) = bench.pay_and_authorise(&first);
    // H for the first never came; the user buys again.
    let second = request(6);
    let (f2, second_verdict) = bench.pay_and_authorise(&second);
    let second_atc = f2.transaction.means.card().unwrap().atc;

    bench.acknowledge(&first, first_verdict);
    match bench.payer.payment_state(&first.payment) {
        Some(PaymentState::CompletionFailed(why)) => assert!(
            why.contains(&format!("waits to complete transaction {second_atc}")),
            "{why}"
        ),
        other => panic!("{other:?}"),
    }
    // Abandoning now abandons the second alone: the one the card waits for.
    let abandonment = bench.abandon();
    assert_eq!(abandonment.transaction.payment, second.payment);

    // Had its H come instead, the second would still have completed with a TC.
    let mut bench = self::bench("late-then-h");
    let (_, first_verdict) = bench.pay_and_authorise(&first);
    let (_, second_verdict_again) = bench.pay_and_authorise(&second);
    assert_eq!(
        second_verdict_again.is_positive(),
        second_verdict.is_positive()
    );
    bench.acknowledge(&first, first_verdict);
    bench.acknowledge(&second, second_verdict_again);
    match bench.payer.payment_state(&second.payment) {
        Some(PaymentState::Completed(completion)) => {
            assert_eq!(
                completion.kind,
                telepay::terminal::card_module::CryptogramKind::Tc
            );
        }
        other => panic!("{other:?}"),
    }
}

/// The same for an identification (claim 16): its result, come after the payment's E,
/// does not complete the payment's card transaction in the identification's name.
#[test]
fn a_late_identification_result_does_not_complete_the_payments_transaction() {
    use telepay::messages::{
        IdentificationId, IdentificationRequest, IdentificationResult, RefusalReason,
    };
    use telepay::terminal::payer::IdentificationState;

    let mut bench = bench("late-identification");
    let identification = IdentificationRequest {
        purchase: PurchaseId::from("fe1-P7"),
        identification: IdentificationId::from("fe1-P7-ID"),
        merchant: MerchantId::from("telepay-demo"),
        purpose: "identified users only".into(),
        currency: Currency::EUR,
        date: NOW,
        nonce: [7; 16],
        accepted_means: vec![Means::BankCard],
    };
    let sent = bench.payer.handle(
        NOW,
        &Party::FrontEnd,
        Message::IdentificationRequest(identification.clone()),
    );
    assert!(
        matches!(
            sent.as_slice(),
            [Envelope {
                message: Message::IdentificationProof(_),
                ..
            }]
        ),
        "{sent:?}"
    );
    // The result does not come; a payment follows on the same card.
    let d = request(7);
    let (_, verdict) = bench.pay_and_authorise(&d);
    bench.payer.handle(
        NOW,
        &Party::FrontEnd,
        Message::IdentificationResult(IdentificationResult {
            purchase: identification.purchase.clone(),
            identification: identification.identification.clone(),
            verdict: Verdict::refused(RefusalReason::AcquirerUnreachable),
            customer: None,
        }),
    );
    match bench
        .payer
        .identification_state(&identification.identification)
    {
        Some(IdentificationState::CompletionFailed(why)) => {
            assert!(why.contains("another one followed"), "{why}");
        }
        other => panic!("{other:?}"),
    }
    bench.acknowledge(&d, verdict);
    match bench.payer.payment_state(&d.payment) {
        Some(PaymentState::Completed(completion)) => {
            assert_eq!(
                completion.kind,
                telepay::terminal::card_module::CryptogramKind::Tc
            );
        }
        other => panic!("{other:?}"),
    }
}
