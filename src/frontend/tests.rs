//! The front-end's purchase state machine, step by step, without any other role: each
//! test plays the other parties by hand and reads what the front-end sends.

use super::*;
use crate::messages::{
    CardTransaction, Currency, Money, Payment, PaymentService, PostalAddress, QuoteId,
    QuoteValidity, ServiceId, ServiceKind, StaticInfo, UnitBilling, VariableInfo,
};

pub(super) const T0: Timestamp = Timestamp(1_795_600_000_000);

pub(super) fn terminal() -> TerminalId {
    "terminal-1".into()
}

fn provider() -> ProviderId {
    "demo-publisher".into()
}

fn acquirer() -> AcquirerId {
    "bank-card-acquirer".into()
}

pub(super) fn client() -> Party {
    Party::Client(terminal())
}

pub(super) fn payer() -> Party {
    Party::Payer(terminal())
}

pub(super) fn server() -> Party {
    Party::Server(provider())
}

fn bank() -> Party {
    Party::Acquirer(acquirer())
}

fn front_end() -> FrontEnd<SeededEntropy> {
    FrontEnd::new(
        FrontEndConfig::new("merchant-42".into(), vec![provider()], acquirer()),
        SeededEntropy::new(7),
    )
}

fn service_request(request: &str) -> Message {
    Message::ServiceRequest(ServiceRequest {
        request: request.into(),
        terminal: terminal(),
        provider: provider(),
        service: "report-2026".into(),
        delivery_address: None,
        payment_service: None,
        session: None,
        units: None,
    })
}

fn quote(purchase: &PurchaseId, price: u64, enclosed: Option<Delivery>) -> Message {
    Message::Quote(Quote {
        purchase: purchase.clone(),
        quote: QuoteId("Q-1".into()),
        service: ServiceId("report-2026".into()),
        static_info: StaticInfo {
            designation: "Annual market report 2026".into(),
            kind: ServiceKind::Document,
            identification_required: false,
            unit_billing: None,
        },
        variable: VariableInfo {
            price: Money::new(price, Currency::EUR),
            available: true,
        },
        validity: QuoteValidity {
            issued_at: T0,
            valid_until: T0.plus_millis(300_000),
        },
        service_enclosed: enclosed,
    })
}

fn transaction(payment: &PaymentRequest) -> Message {
    Message::Transaction(Box::new(Transaction {
        purchase: payment.purchase.clone(),
        payment: payment.payment.clone(),
        terminal: terminal(),
        means: Payment::BankCard(CardTransaction {
            pan: "4970100000000014".into(),
            pan_sequence: 1,
            expiry: "281231".into(),
            aid: vec![0xA0, 0, 0, 0, 0x42, 0x10, 0x10],
            aip: [0x1C, 0x00],
            atc: 1,
            cid: 0x80,
            cryptogram: [1, 2, 3, 4, 5, 6, 7, 8],
            iad: vec![0x06, 0x01, 0x12, 0x03, 0xA0, 0x00, 0x00],
            amount: payment.amount.emv_amount().unwrap(),
            amount_other: [0; 6],
            terminal_country: [0x02, 0x50],
            tvr: [0; 5],
            currency: payment.amount.currency.emv_code(),
            date: payment.date.emv_date(),
            transaction_type: 0,
            unpredictable_number: PaymentRequest::unpredictable_number(
                &payment.nonce,
                &payment.designation_digest,
            ),
            pin_verified: true,
        }),
    }))
}

fn acknowledgement(payment: &PaymentRequest, positive: bool) -> Message {
    let verdict = if positive {
        Verdict::Positive {
            authorisation_code: "A1B2C3".into(),
            response_code: *b"00",
            arpc: Some([9; 8]),
        }
    } else {
        Verdict::Negative {
            reason: RefusalReason::CryptogramInvalid,
            response_code: *b"Z3",
            arpc: None,
        }
    };
    Message::Acknowledgement(Acknowledgement {
        acquirer: acquirer(),
        purchase: payment.purchase.clone(),
        payment: payment.payment.clone(),
        verdict,
        provision: None,
    })
}

fn document() -> Delivery {
    Delivery::content("text/plain", b"The market grew.".to_vec())
}

/// The steps of the messages sent, with their addressees: `"B>server"`.
fn steps(reaction: &Reaction) -> Vec<String> {
    reaction
        .sent
        .iter()
        .map(|envelope| {
            let to = match &envelope.to {
                Party::Client(_) => "client",
                Party::Payer(_) => "payer",
                Party::FrontEnd => "front-end",
                Party::Server(_) => "server",
                Party::Acquirer(_) => "acquirer",
            };
            format!("{}>{to}", envelope.message.step())
        })
        .collect()
}

fn only_payment_request(reaction: &Reaction) -> PaymentRequest {
    match reaction.sent.as_slice() {
        [
            Envelope {
                message: Message::PaymentRequest(payment),
                ..
            },
        ] => payment.clone(),
        other => panic!("expected one D, got {other:?}"),
    }
}

fn failure_of(reaction: &Reaction) -> Failure {
    reaction
        .sent
        .iter()
        .find_map(|envelope| match &envelope.message {
            Message::PurchaseOutcome(outcome) => Some(outcome.failure.clone()),
            _ => None,
        })
        .expect("a purchase outcome")
}

/// Runs A and C and returns the purchase id and the payment request D.
fn up_to_payment_request(
    front: &mut FrontEnd<SeededEntropy>,
    enclosed: Option<Delivery>,
) -> (PurchaseId, PaymentRequest) {
    let a = front.handle(T0, &client(), service_request("r-1"));
    assert_eq!(steps(&a), ["B>server"]);
    let purchase = PurchaseId("P-000001".into());
    let d = front.handle(
        T0.plus_millis(50),
        &server(),
        quote(&purchase, 250, enclosed),
    );
    assert_eq!(steps(&d), ["D>payer"]);
    (purchase, only_payment_request(&d))
}

#[test]
fn fig6_a_to_k_in_order() {
    let mut front = front_end();
    let (purchase, payment) = up_to_payment_request(&mut front, None);
    // D is built from the quote: its price, its designation and a fresh nonce.
    assert_eq!(payment.amount, Money::new(250, Currency::EUR));
    assert_eq!(payment.designation, "Annual market report 2026");
    assert_eq!(
        payment.designation_digest,
        PaymentRequest::digest_designation("Annual market report 2026")
    );
    assert_eq!(payment.valid_until, T0.plus_millis(300_000));
    assert_eq!(payment.accepted_means, [Means::BankCard]);

    let f = front.handle(T0.plus_millis(900), &payer(), transaction(&payment));
    assert_eq!(steps(&f), ["F>acquirer"]);
    let Message::AcquirerTransaction(submitted) = &f.sent[0].message else {
        unreachable!()
    };
    assert_eq!(
        submitted.request, payment,
        "the acquirer checks E against D"
    );
    assert_eq!(submitted.merchant, MerchantId("merchant-42".into()));

    let hi = front.handle(
        T0.plus_millis(1000),
        &bank(),
        acknowledgement(&payment, true),
    );
    assert_eq!(steps(&hi), ["H>payer", "I>server"]);
    let k = front.handle(
        T0.plus_millis(1100),
        &server(),
        Message::ServiceDelivery(ServiceDelivery {
            purchase: purchase.clone(),
            service: "report-2026".into(),
            delivery: document(),
        }),
    );
    assert_eq!(steps(&k), ["K>client"]);
    let Message::ClientDelivery(delivered) = &k.sent[0].message else {
        unreachable!()
    };
    assert_eq!(delivered.request, RequestId("r-1".into()));
    assert_eq!(delivered.paid, Money::new(250, Currency::EUR));
    assert_eq!(front.purchase(&purchase).unwrap().stage, Stage::Delivered);
    assert_eq!(front.poll_timeout(), None, "nothing left to wait for");
}

#[test]
fn fig7_the_quote_carries_the_service_held_until_a_positive_acknowledgement() {
    let mut front = front_end();
    let (purchase, payment) = up_to_payment_request(&mut front, Some(document()));
    let f = front.handle(T0.plus_millis(900), &payer(), transaction(&payment));
    assert_eq!(steps(&f), ["F>acquirer"], "nothing delivered before G");
    let hk = front.handle(
        T0.plus_millis(1000),
        &bank(),
        acknowledgement(&payment, true),
    );
    assert_eq!(steps(&hk), ["H>payer", "K>client"], "no I, no J");
    assert_eq!(front.purchase(&purchase).unwrap().stage, Stage::Delivered);
}

#[test]
fn fig7_a_negative_acknowledgement_keeps_the_enclosed_service() {
    let mut front = front_end();
    let (_, payment) = up_to_payment_request(&mut front, Some(document()));
    front.handle(T0.plus_millis(900), &payer(), transaction(&payment));
    let h = front.handle(
        T0.plus_millis(1000),
        &bank(),
        acknowledgement(&payment, false),
    );
    assert_eq!(steps(&h), ["H>payer", "outcome>client"]);
    assert!(
        h.sent
            .iter()
            .all(|envelope| !matches!(envelope.message, Message::ClientDelivery(_))),
        "the service stays with the front-end"
    );
}

#[test]
fn free_services_skip_the_payment_steps() {
    let mut front = front_end();
    front.handle(T0, &client(), service_request("r-1"));
    let purchase = PurchaseId("P-000001".into());
    let i = front.handle(T0, &server(), quote(&purchase, 0, None));
    assert_eq!(steps(&i), ["I>server"], "no D–H");

    let mut front = front_end();
    front.handle(T0, &client(), service_request("r-1"));
    let k = front.handle(T0, &server(), quote(&purchase, 0, Some(document())));
    assert_eq!(
        steps(&k),
        ["K>client"],
        "free and enclosed: delivered at once"
    );
}

#[test]
fn a_quote_expired_before_e_is_refused_and_nothing_is_submitted() {
    let mut front = front_end();
    let (_, payment) = up_to_payment_request(&mut front, None);
    let late = payment.valid_until.plus_millis(1);
    let reaction = front.handle(late, &payer(), transaction(&payment));
    assert_eq!(
        steps(&reaction),
        ["H>payer", "outcome>client"],
        "no F: nothing charged"
    );
    let Message::PayerAcknowledgement(h) = &reaction.sent[0].message else {
        unreachable!()
    };
    assert!(matches!(
        h.verdict,
        Verdict::Negative {
            reason: RefusalReason::QuoteExpired,
            ..
        }
    ));
    assert_eq!(failure_of(&reaction), Failure::QuoteExpired);
}

#[test]
fn an_unavailable_server_ends_the_purchase() {
    let mut front = front_end();
    front.handle(T0, &client(), service_request("r-1"));
    let reaction = front.handle(
        T0,
        &server(),
        Message::Unavailable(Unavailable {
            purchase: "P-000001".into(),
            service: "report-2026".into(),
            reason: "server down for maintenance".into(),
        }),
    );
    assert_eq!(steps(&reaction), ["outcome>client"]);
    assert_eq!(
        failure_of(&reaction),
        Failure::ServiceUnavailable {
            reason: "server down for maintenance".into()
        }
    );
}

#[test]
fn a_silent_server_ends_the_purchase_at_its_deadline() {
    let mut front = front_end();
    front.handle(T0, &client(), service_request("r-1"));
    let deadline = front.poll_timeout().expect("a deadline for C");
    assert_eq!(deadline, T0.plus_millis(10_000));
    assert!(
        front
            .handle_timeout(deadline.plus_millis(-1))
            .sent
            .is_empty()
    );
    let reaction = front.handle_timeout(deadline);
    assert_eq!(failure_of(&reaction), Failure::ServerSilent);
}

#[test]
fn a_silent_acquirer_gets_a_negative_h_and_a_reversal() {
    let mut front = front_end();
    let (purchase, payment) = up_to_payment_request(&mut front, None);
    front.handle(T0.plus_millis(900), &payer(), transaction(&payment));
    let deadline = front.poll_timeout().unwrap();
    let reaction = front.handle_timeout(deadline);
    assert_eq!(
        steps(&reaction),
        ["H>payer", "reversal>acquirer", "outcome>client"]
    );
    assert_eq!(
        failure_of(&reaction),
        Failure::PaymentRefused {
            reason: RefusalReason::AcquirerUnreachable
        }
    );
    // The acquirer's positive answer arrives after all: cancelled again, nothing else.
    let late = front.handle(
        deadline.plus_millis(5),
        &bank(),
        acknowledgement(&payment, true),
    );
    assert_eq!(steps(&late), ["reversal>acquirer"]);
    assert!(front.purchase(&purchase).unwrap().reversed);
}

#[test]
fn a_declined_payment_ends_the_purchase_without_h() {
    let mut front = front_end();
    let (_, payment) = up_to_payment_request(&mut front, None);
    let reaction = front.handle(
        T0.plus_millis(900),
        &payer(),
        Message::PaymentDeclined(PaymentDeclined {
            purchase: payment.purchase.clone(),
            payment: payment.payment.clone(),
            reason: "wrong PIN, 2 tries left".into(),
        }),
    );
    assert_eq!(steps(&reaction), ["outcome>client"]);
    assert_eq!(
        failure_of(&reaction),
        Failure::PaymentDeclined {
            reason: "wrong PIN, 2 tries left".into()
        }
    );
}

#[test]
fn a_silent_payer_device_ends_the_purchase() {
    let mut front = front_end();
    up_to_payment_request(&mut front, None);
    let reaction = front.handle_timeout(T0.plus_millis(50 + 120_000));
    assert_eq!(failure_of(&reaction), Failure::PayerSilent);
}

#[test]
fn a_server_that_cannot_deliver_after_payment_gets_the_payment_reversed() {
    let mut front = front_end();
    let (_, payment) = up_to_payment_request(&mut front, None);
    front.handle(T0.plus_millis(900), &payer(), transaction(&payment));
    front.handle(
        T0.plus_millis(1000),
        &bank(),
        acknowledgement(&payment, true),
    );
    // I is sent three times in all, then the front-end gives up.
    let second = front.handle_timeout(front.poll_timeout().unwrap());
    assert_eq!(steps(&second), ["I>server"]);
    let third = front.handle_timeout(front.poll_timeout().unwrap());
    assert_eq!(steps(&third), ["I>server"]);
    let given_up = front.handle_timeout(front.poll_timeout().unwrap());
    assert_eq!(steps(&given_up), ["reversal>acquirer", "outcome>client"]);
}

#[test]
fn repeated_messages_change_nothing_and_get_the_same_answer() {
    let mut front = front_end();
    let (purchase, payment) = up_to_payment_request(&mut front, None);
    // A repeated while the purchase runs: no second purchase.
    let again = front.handle(T0.plus_millis(60), &client(), service_request("r-1"));
    assert!(again.sent.is_empty() && again.ignored.is_some());
    // C repeated: no second D.
    let again = front.handle(T0.plus_millis(60), &server(), quote(&purchase, 250, None));
    assert!(again.sent.is_empty());

    front.handle(T0.plus_millis(900), &payer(), transaction(&payment));
    // E repeated while G is awaited: no second F.
    assert!(
        front
            .handle(T0.plus_millis(950), &payer(), transaction(&payment))
            .sent
            .is_empty()
    );
    let first = front.handle(
        T0.plus_millis(1000),
        &bank(),
        acknowledgement(&payment, true),
    );
    // E repeated after H: the same H again, and nothing else.
    let again = front.handle(T0.plus_millis(1010), &payer(), transaction(&payment));
    assert_eq!(again.sent, vec![first.sent[0].clone()]);
    // G repeated: nothing.
    assert!(
        front
            .handle(
                T0.plus_millis(1020),
                &bank(),
                acknowledgement(&payment, true)
            )
            .sent
            .is_empty()
    );

    let k = front.handle(
        T0.plus_millis(1100),
        &server(),
        Message::ServiceDelivery(ServiceDelivery {
            purchase: purchase.clone(),
            service: "report-2026".into(),
            delivery: document(),
        }),
    );
    // A repeated after K: the same K.
    let again = front.handle(T0.plus_millis(2000), &client(), service_request("r-1"));
    assert_eq!(again.sent, k.sent);
    // A new request is a new purchase.
    let new = front.handle(T0.plus_millis(2000), &client(), service_request("r-2"));
    assert_eq!(steps(&new), ["B>server"]);
    assert!(front.purchase(&"P-000002".into()).is_some());
}

#[test]
fn messages_from_the_wrong_party_are_ignored() {
    let mut front = front_end();
    let (purchase, payment) = up_to_payment_request(&mut front, None);
    let stranger = Party::Payer("terminal-2".into());
    assert!(
        front
            .handle(T0, &stranger, transaction(&payment))
            .sent
            .is_empty()
    );
    let forged_bank = Party::Acquirer("other-acquirer".into());
    front.handle(T0.plus_millis(900), &payer(), transaction(&payment));
    let forged = front.handle(
        T0.plus_millis(950),
        &forged_bank,
        acknowledgement(&payment, true),
    );
    assert!(forged.sent.is_empty() && forged.ignored.is_some());
    assert_eq!(
        front.purchase(&purchase).unwrap().stage,
        Stage::AwaitingAcknowledgement
    );
}

#[test]
fn a_content_that_does_not_match_its_digest_is_not_delivered() {
    let mut front = front_end();
    let (purchase, payment) = up_to_payment_request(&mut front, None);
    front.handle(T0.plus_millis(900), &payer(), transaction(&payment));
    front.handle(
        T0.plus_millis(1000),
        &bank(),
        acknowledgement(&payment, true),
    );
    let mut damaged = document();
    if let Delivery::Content { bytes, .. } = &mut damaged {
        *bytes = [bytes.as_slice(), b"!"].concat().into();
    }
    let reaction = front.handle(
        T0.plus_millis(1100),
        &server(),
        Message::ServiceDelivery(ServiceDelivery {
            purchase: purchase.clone(),
            service: "report-2026".into(),
            delivery: damaged,
        }),
    );
    assert!(reaction.sent.is_empty());
    assert!(reaction.ignored.unwrap().contains("digest"));
}

#[test]
fn physical_goods_pass_their_address_to_the_server() {
    let mut front = front_end();
    let address = PostalAddress {
        name: "A. Martin".into(),
        lines: vec!["1 rue de la Paix".into()],
        postcode: "75002".into(),
        town: "Paris".into(),
        country: "FR".into(),
    };
    let reaction = front.handle(
        T0,
        &client(),
        Message::ServiceRequest(ServiceRequest {
            request: "r-1".into(),
            terminal: terminal(),
            provider: provider(),
            service: "printed-guide".into(),
            delivery_address: Some(address.clone()),
            payment_service: None,
            session: None,
            units: None,
        }),
    );
    let Message::QuoteRequest(b) = &reaction.sent[0].message else {
        unreachable!()
    };
    assert_eq!(b.delivery_address, Some(address));
}

#[test]
fn an_unknown_service_server_is_a_bad_request() {
    let mut front = front_end();
    let reaction = front.handle(
        T0,
        &client(),
        Message::ServiceRequest(ServiceRequest {
            request: "r-1".into(),
            terminal: terminal(),
            provider: "nobody".into(),
            service: "x".into(),
            delivery_address: None,
            payment_service: None,
            session: None,
            units: None,
        }),
    );
    assert!(
        matches!(failure_of(&reaction), Failure::BadRequest { reason } if reason.contains("nobody"))
    );
}

// ---------------------------------------------------------------------------------------
// Claim 16: services for identified users. The front-end asks the payer device, has the
// proof checked by the acquirer, passes the verdict on, and names the customer in I.

/// A quote for a service delivered to identified users only.
fn identified_only_quote(purchase: &PurchaseId, price: u64) -> Message {
    let Message::Quote(mut quote) = quote(purchase, price, None) else {
        unreachable!()
    };
    quote.static_info.identification_required = true;
    Message::Quote(quote)
}

fn card_proof(request: &IdentificationRequest) -> crate::messages::IdentityProof {
    let Message::Transaction(transaction) = transaction(&request.card_request()) else {
        unreachable!()
    };
    let Payment::BankCard(card) = transaction.means else {
        unreachable!()
    };
    crate::messages::IdentityProof::Card(card)
}

fn proof(request: &IdentificationRequest) -> Message {
    Message::IdentificationProof(Box::new(IdentificationProof {
        purchase: request.purchase.clone(),
        identification: request.identification.clone(),
        terminal: terminal(),
        proof: card_proof(request),
    }))
}

fn identity_verdict(request: &IdentificationRequest, positive: bool) -> Message {
    let (verdict, customer) = if positive {
        (
            Verdict::Positive {
                authorisation_code: "ID0001".into(),
                response_code: *b"00",
                arpc: Some([7; 8]),
            },
            Some(CustomerId("C-0123456789ABCDEF".into())),
        )
    } else {
        (
            Verdict::Negative {
                reason: RefusalReason::CardholderNotVerified,
                response_code: RefusalReason::CardholderNotVerified.response_code(),
                arpc: Some([7; 8]),
            },
            None,
        )
    };
    Message::IdentityVerdict(IdentityVerdict {
        acquirer: acquirer(),
        purchase: request.purchase.clone(),
        identification: request.identification.clone(),
        verdict,
        customer,
    })
}

/// Runs A and an identified-only C; returns the identification request.
fn up_to_identification(front: &mut FrontEnd<SeededEntropy>, price: u64) -> IdentificationRequest {
    front.handle(T0, &client(), service_request("r-1"));
    let purchase = PurchaseId("P-000001".into());
    let asked = front.handle(
        T0.plus_millis(50),
        &server(),
        identified_only_quote(&purchase, price),
    );
    assert_eq!(
        steps(&asked),
        ["identify>payer"],
        "no payment before identification"
    );
    let Message::IdentificationRequest(request) = &asked.sent[0].message else {
        unreachable!()
    };
    request.clone()
}

#[test]
fn claim16_a_free_service_for_identified_users_names_the_customer_in_the_order() {
    let mut front = front_end();
    let request = up_to_identification(&mut front, 0);
    assert_eq!(request.purpose, "Annual market report 2026");
    assert_eq!(request.card_request().amount, Money::new(0, Currency::EUR));

    let check = front.handle(T0.plus_millis(400), &payer(), proof(&request));
    assert_eq!(steps(&check), ["identity check>acquirer"]);
    let Message::IdentityCheck(sent) = &check.sent[0].message else {
        unreachable!()
    };
    assert_eq!(
        sent.request, request,
        "the acquirer checks the proof against the request"
    );

    let ordered = front.handle(
        T0.plus_millis(500),
        &bank(),
        identity_verdict(&request, true),
    );
    assert_eq!(steps(&ordered), ["identified>payer", "I>server"]);
    let Message::ServiceOrder(order) = &ordered.sent[1].message else {
        unreachable!()
    };
    assert_eq!(
        order.customer,
        Some(CustomerId("C-0123456789ABCDEF".into()))
    );
}

#[test]
fn claim16_a_paid_service_for_identified_users_asks_for_payment_after_identification() {
    let mut front = front_end();
    let request = up_to_identification(&mut front, 250);
    front.handle(T0.plus_millis(400), &payer(), proof(&request));
    let paid = front.handle(
        T0.plus_millis(500),
        &bank(),
        identity_verdict(&request, true),
    );
    assert_eq!(steps(&paid), ["identified>payer", "D>payer"]);
    let Message::PaymentRequest(d) = &paid.sent[1].message else {
        unreachable!()
    };
    assert_ne!(
        d.nonce, request.nonce,
        "each card transaction gets its own nonce"
    );
}

#[test]
fn claim16_a_refused_identity_ends_the_purchase_before_any_payment() {
    let mut front = front_end();
    let request = up_to_identification(&mut front, 250);
    front.handle(T0.plus_millis(400), &payer(), proof(&request));
    let ended = front.handle(
        T0.plus_millis(500),
        &bank(),
        identity_verdict(&request, false),
    );
    assert_eq!(steps(&ended), ["identified>payer", "outcome>client"]);
    assert!(matches!(
        failure_of(&ended),
        Failure::IdentificationFailed { reason } if reason.contains("PIN")
    ));
    let purchase = front.purchase(&request.purchase).unwrap();
    assert!(purchase.payment.is_none() && purchase.customer.is_none());
}

#[test]
fn claim16_an_identification_declined_on_the_payer_device_ends_the_purchase() {
    let mut front = front_end();
    let request = up_to_identification(&mut front, 0);
    let ended = front.handle(
        T0.plus_millis(400),
        &payer(),
        Message::IdentificationDeclined(IdentificationDeclined {
            purchase: request.purchase.clone(),
            identification: request.identification.clone(),
            reason: "wrong PIN: 2 tries left".into(),
        }),
    );
    assert_eq!(
        steps(&ended),
        ["outcome>client"],
        "nothing goes to the acquirer"
    );
    assert_eq!(
        failure_of(&ended),
        Failure::IdentificationFailed {
            reason: "wrong PIN: 2 tries left".into()
        }
    );
}

#[test]
fn claim16_a_silent_acquirer_ends_the_identification_and_lets_the_card_complete() {
    let mut front = front_end();
    let request = up_to_identification(&mut front, 0);
    front.handle(T0.plus_millis(400), &payer(), proof(&request));
    let deadline = front.poll_timeout().expect("a deadline for the acquirer");
    assert_eq!(deadline, T0.plus_millis(400 + 30_000));
    let expired = front.handle_timeout(deadline);
    assert_eq!(steps(&expired), ["identified>payer", "outcome>client"]);
    let Message::IdentificationResult(result) = &expired.sent[0].message else {
        unreachable!()
    };
    assert!(!result.verdict.is_positive(), "the card ends with an AAC");
    // A verdict arriving after that changes nothing.
    let late = front.handle(
        deadline.plus_millis(1),
        &bank(),
        identity_verdict(&request, true),
    );
    assert!(late.sent.is_empty() && late.ignored.is_some());
}

#[test]
fn claim16_a_repeated_proof_gets_the_same_result_and_no_second_check() {
    let mut front = front_end();
    let request = up_to_identification(&mut front, 0);
    front.handle(T0.plus_millis(400), &payer(), proof(&request));
    let first = front.handle(
        T0.plus_millis(500),
        &bank(),
        identity_verdict(&request, true),
    );
    let again = front.handle(T0.plus_millis(600), &payer(), proof(&request));
    assert_eq!(steps(&again), ["identified>payer"]);
    assert_eq!(again.sent[0], first.sent[0]);
}

#[test]
fn claim16_a_verdict_from_another_party_is_ignored() {
    let mut front = front_end();
    let request = up_to_identification(&mut front, 0);
    front.handle(T0.plus_millis(400), &payer(), proof(&request));
    let forged = front.handle(
        T0.plus_millis(500),
        &server(),
        identity_verdict(&request, true),
    );
    assert!(forged.sent.is_empty() && forged.ignored.is_some());
    assert_eq!(
        front.purchase(&request.purchase).unwrap().stage,
        Stage::AwaitingIdentityCheck
    );
}

#[test]
fn claim17_the_bill_or_account_of_a_request_travels_to_the_server_in_b() {
    let mut front = front_end();
    let bill = PaymentService::Bill {
        reference: "W-2026-1107".into(),
    };
    let reaction = front.handle(
        T0,
        &client(),
        Message::ServiceRequest(ServiceRequest {
            request: "r-1".into(),
            terminal: terminal(),
            provider: provider(),
            service: "city-water-bill".into(),
            delivery_address: None,
            payment_service: Some(bill.clone()),
            session: None,
            units: None,
        }),
    );
    let Message::QuoteRequest(b) = &reaction.sent[0].message else {
        unreachable!()
    };
    assert_eq!(b.payment_service, Some(bill));
}

// ---------------------------------------------------------------------------------------
// Pay-per-time

/// A and a pay-per-time quote (0.10 EUR per 30 s, 10 units at most): D for unit 1.
fn up_to_first_unit(front: &mut FrontEnd<SeededEntropy>) -> (PurchaseId, PaymentRequest) {
    front.handle(T0, &client(), service_request("r-1"));
    let purchase = PurchaseId("P-000001".into());
    let Message::Quote(mut metered) = quote(&purchase, 10, None) else {
        unreachable!()
    };
    metered.static_info.kind = ServiceKind::PayPerTime;
    metered.static_info.unit_billing = Some(UnitBilling {
        unit_seconds: 30,
        max_units: 10,
    });
    let d = front.handle(T0, &server(), Message::Quote(metered));
    (purchase, only_payment_request(&d))
}

/// Unit 1 paid and the access delivered at `T0 + 1 s`.
fn first_unit_delivered(front: &mut FrontEnd<SeededEntropy>) -> PurchaseId {
    let (purchase, d1) = up_to_first_unit(front);
    assert_eq!(d1.payment.0, "P-000001-PAY-1");
    assert!(d1.designation.contains("unit 1 of 30 s"));
    front.handle(T0, &payer(), transaction(&d1));
    let i = front.handle(T0, &bank(), acknowledgement(&d1, true));
    assert_eq!(steps(&i), ["H>payer", "I>server"]);
    let k = front.handle(
        T0.plus_millis(1_000),
        &server(),
        Message::ServiceDelivery(ServiceDelivery {
            purchase: purchase.clone(),
            service: "report-2026".into(),
            delivery: document(),
        }),
    );
    assert_eq!(steps(&k), ["K>client"]);
    purchase
}

#[test]
fn pay_per_time_asks_the_next_unit_when_the_paid_one_runs_out() {
    let mut front = front_end();
    first_unit_delivered(&mut front);
    // The unit paid lasts 30 s from the delivery.
    assert_eq!(front.poll_timeout(), Some(T0.plus_millis(31_000)));
    let d2 = front.handle_timeout(T0.plus_millis(31_000));
    assert_eq!(steps(&d2), ["D>payer"]);
    let d2 = only_payment_request(&d2);
    assert_eq!(d2.payment.0, "P-000001-PAY-2");
    assert_eq!(d2.amount, Money::new(10, Currency::EUR));
    // Paid: no second I, the service runs on; the next unit is due 30 s later.
    front.handle(T0.plus_millis(31_500), &payer(), transaction(&d2));
    let h = front.handle(T0.plus_millis(32_000), &bank(), acknowledgement(&d2, true));
    assert_eq!(steps(&h), ["H>payer"]);
    assert_eq!(front.poll_timeout(), Some(T0.plus_millis(62_000)));
}

#[test]
fn pay_per_time_stops_when_the_user_asks() {
    let mut front = front_end();
    let purchase = first_unit_delivered(&mut front);
    let stopped = front.handle(
        T0.plus_millis(5_000),
        &client(),
        Message::StopService(StopService {
            terminal: terminal(),
            purchase: purchase.clone(),
        }),
    );
    assert_eq!(steps(&stopped), ["stopped>client", "stopped>server"]);
    let Message::ServiceStopped(stopped) = &stopped.sent[0].message else {
        unreachable!()
    };
    assert_eq!(
        (stopped.units, stopped.reason.as_str()),
        (1, "stopped by the user")
    );
    assert_eq!(front.poll_timeout(), None, "no further unit is asked");
}

#[test]
fn pay_per_time_stops_when_a_unit_is_not_paid_and_the_client_keeps_its_k() {
    let mut front = front_end();
    let purchase = first_unit_delivered(&mut front);
    let d2 = only_payment_request(&front.handle_timeout(T0.plus_millis(31_000)));
    let declined = front.handle(
        T0.plus_millis(32_000),
        &payer(),
        Message::PaymentDeclined(PaymentDeclined {
            purchase: purchase.clone(),
            payment: d2.payment.clone(),
            reason: "the user declined the payment".into(),
        }),
    );
    // Not a purchase outcome: the service was delivered; it stops.
    assert_eq!(steps(&declined), ["stopped>client", "stopped>server"]);
    // A repeated A still gets K.
    let again = front.handle(T0.plus_millis(33_000), &client(), service_request("r-1"));
    assert_eq!(steps(&again), ["K>client"]);
}

#[test]
fn a_payment_another_front_end_took_is_abandoned_through_this_one_without_state() {
    // The payment request D and transaction E of a front-end that went away: this
    // front-end never saw them.
    let mut lost = front_end();
    let (_, d) = up_to_payment_request(&mut lost, None);
    let Message::Transaction(e) = transaction(&d) else {
        unreachable!()
    };
    let abandonment = PaymentAbandonment {
        request: d.clone(),
        transaction: *e,
        decline: crate::messages::CardDecline {
            cid: 0x00,
            cryptogram: [8; 8],
            iad: vec![0x06, 0x01, 0x12, 0x03, 0x20, 0x00, 0x00],
        },
    };
    let mut front = front_end();

    // Only the terminal's own payer device may abandon its payment.
    let impostor = Party::Payer("terminal-2".into());
    let ignored = front.handle(
        T0,
        &impostor,
        Message::PaymentAbandoned(Box::new(abandonment.clone())),
    );
    assert_eq!(steps(&ignored), Vec::<String>::new());
    assert!(ignored.ignored.is_some());

    // Passed to the bank card's acquirer as it is: the acquirer checks the AAC.
    let forwarded = front.handle(
        T0,
        &payer(),
        Message::PaymentAbandoned(Box::new(abandonment.clone())),
    );
    assert_eq!(
        forwarded.sent,
        [Envelope {
            from: Party::FrontEnd,
            to: bank(),
            message: Message::PaymentAbandoned(Box::new(abandonment)),
        }]
    );

    // The acquirer's result goes back to the terminal it names, and only from it.
    let result = AbandonmentResult {
        acquirer: acquirer(),
        terminal: terminal(),
        purchase: d.purchase.clone(),
        payment: d.payment.clone(),
        outcome: crate::messages::AbandonmentOutcome::NotCharged {
            detail: "authorised, now reversed".into(),
        },
    };
    let from_elsewhere = front.handle(
        T0,
        &Party::Acquirer("other-acquirer".into()),
        Message::AbandonmentResult(result.clone()),
    );
    assert!(from_elsewhere.sent.is_empty());
    let passed_on = front.handle(T0, &bank(), Message::AbandonmentResult(result.clone()));
    assert_eq!(
        passed_on.sent,
        [Envelope {
            from: Party::FrontEnd,
            to: payer(),
            message: Message::AbandonmentResult(result),
        }]
    );
}
