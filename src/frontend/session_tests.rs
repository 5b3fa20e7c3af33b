//! Incremental payment at the front-end (claim 10), step by step: the other parties are
//! played by hand, the wallet payments are signed with real P-256 keys.

use p256::ecdsa::SigningKey;
use p256::ecdsa::signature::Signer;

use super::sessions::{Recovery, SegmentState, SqliteSessionLog};
use super::tests::{T0, client, payer, server, terminal};
use super::*;
use crate::acquirer::wallet::{AccountKey, SignedWalletPayment, WalletPayment};
use crate::messages::{
    Currency, Money, Payment, ProvisionGrant, QuoteId, QuoteValidity, ServiceId, ServiceKind,
    SessionClosed, SessionSettlement, StaticInfo, VariableInfo,
};

fn session() -> SessionId {
    "evening".into()
}

fn wallet_acquirer() -> AcquirerId {
    "wallet-acquirer".into()
}

fn wallet() -> Party {
    Party::Acquirer(wallet_acquirer())
}

/// A front-end selling for one server, paid by card or wallet, asking 10.00 EUR of
/// provision per session.
fn front_end() -> FrontEnd<SeededEntropy> {
    let mut config = FrontEndConfig::new(
        "merchant-42".into(),
        vec!["demo-publisher".into()],
        "bank-card-acquirer".into(),
    );
    config
        .acquirers
        .push((Means::VirtualWallet, wallet_acquirer()));
    config.session_provision = 1_000;
    FrontEnd::new(config, SeededEntropy::new(7))
}

fn key() -> SigningKey {
    SigningKey::from_slice(&[0x42; 32]).expect("a valid scalar")
}

/// The payer device's part: D signed with the wallet key, at `sequence`.
fn pay(d: &PaymentRequest, sequence: u64, key: &SigningKey) -> Message {
    let payment = WalletPayment {
        account: AccountKey::new(key.verifying_key()),
        merchant: d.merchant.clone(),
        service: d.service.clone(),
        payment: d.payment.clone(),
        amount: d.amount,
        sequence,
        time: d.date,
    };
    let signed = SignedWalletPayment::sign(payment, |bytes| key.sign(bytes)).expect("encodable");
    Message::Transaction(Box::new(Transaction {
        purchase: d.purchase.clone(),
        payment: d.payment.clone(),
        terminal: terminal(),
        means: Payment::VirtualWallet(Box::new(signed)),
    }))
}

fn quote(purchase: &PurchaseId, price: u64) -> Message {
    Message::Quote(Quote {
        purchase: purchase.clone(),
        quote: QuoteId::from(format!("Q-{purchase}")),
        service: ServiceId("page".into()),
        static_info: StaticInfo {
            designation: "One page of the archive".into(),
            kind: ServiceKind::PayPerView,
            identification_required: false,
            unit_billing: None,
        },
        variable: VariableInfo {
            price: Money::new(price, Currency::EUR),
            available: true,
        },
        validity: QuoteValidity {
            issued_at: T0,
            valid_until: T0.plus_millis(3_600_000),
        },
        service_enclosed: Some(Delivery::content("text/plain", b"page".to_vec())),
    })
}

/// A and C of the `n`-th request of the session: the payment request D.
fn request_in_session(front: &mut FrontEnd<SeededEntropy>, n: u64, price: u64) -> PaymentRequest {
    let a = front.handle(
        T0,
        &client(),
        Message::ServiceRequest(ServiceRequest {
            request: RequestId::from(format!("r-{n}")),
            terminal: terminal(),
            provider: "demo-publisher".into(),
            service: "page".into(),
            delivery_address: None,
            payment_service: None,
            session: Some(session()),
            units: None,
        }),
    );
    let purchase = match a.sent.as_slice() {
        [
            Envelope {
                message: Message::QuoteRequest(b),
                ..
            },
        ] => b.purchase.clone(),
        other => panic!("expected B, got {other:?}"),
    };
    let d = front.handle(T0, &server(), quote(&purchase, price));
    match d.sent.as_slice() {
        [
            Envelope {
                message: Message::PaymentRequest(d),
                ..
            },
        ] => d.clone(),
        other => panic!("expected D, got {other:?}"),
    }
}

fn steps(reaction: &Reaction) -> Vec<&'static str> {
    reaction
        .sent
        .iter()
        .map(|envelope| envelope.message.step())
        .collect()
}

/// The acquirer's positive G granting the provision F asked for.
fn grant(f: &Reaction) -> Message {
    let Some(Message::AcquirerTransaction(f)) = f.sent.last().map(|e| &e.message) else {
        panic!("expected F, got {f:?}");
    };
    let asked = f.provision.clone().expect("F asks for a provision");
    Message::Acknowledgement(Acknowledgement {
        acquirer: wallet_acquirer(),
        purchase: f.transaction.purchase.clone(),
        payment: f.transaction.payment.clone(),
        verdict: Verdict::Positive {
            authorisation_code: "W00001".into(),
            response_code: *b"00",
            arpc: None,
        },
        provision: Some(ProvisionGrant {
            segment: asked.segment,
            amount: asked.amount,
            sequence_floor: 0,
        }),
    })
}

fn settlement_of(reaction: &Reaction) -> SessionSettlement {
    reaction
        .sent
        .iter()
        .find_map(|envelope| match &envelope.message {
            Message::SessionSettlement(settlement) => Some(settlement.clone()),
            _ => None,
        })
        .expect("a settlement")
}

fn settled(settlement: &SessionSettlement) -> Message {
    let minor = settlement
        .payments
        .iter()
        .map(|signed| signed.payment.amount.minor)
        .sum::<u64>();
    Message::SettlementResult(SettlementResult {
        acquirer: wallet_acquirer(),
        segment: settlement.segment.clone(),
        settled: u32::try_from(settlement.payments.len()).unwrap_or(u32::MAX),
        debited: Money::new(minor, Currency::EUR),
        released: Money::new(1_000 - minor, Currency::EUR),
        refused: Vec::new(),
    })
}

fn end() -> Message {
    Message::SessionEnd(SessionEnd {
        terminal: terminal(),
        session: session(),
    })
}

#[test]
fn claim10_the_first_payment_opens_a_provision_the_next_are_verified_locally() {
    let mut front = front_end();
    let key = key();
    // The first payment goes to the wallet acquirer with a request for 10.00 EUR.
    let d1 = request_in_session(&mut front, 1, 200);
    assert_eq!(d1.session, Some(session()));
    let f = front.handle(T0, &payer(), pay(&d1, 1, &key));
    assert_eq!(steps(&f), ["F"]);
    let Message::AcquirerTransaction(sent) = &f.sent[0].message else {
        unreachable!()
    };
    let asked = sent.provision.clone().expect("a provision asked");
    assert_eq!(asked.amount, Money::new(1_000, Currency::EUR));
    assert_eq!(asked.segment.0, "P/terminal-1/evening/1");
    // Granted: H and the service (enclosed, Fig. 7).
    let h = front.handle(T0, &wallet(), grant(&f));
    assert_eq!(steps(&h), ["H", "K"]);

    // The second and third: no F at all, H and K at once.
    for (n, sequence) in [(2, 2), (3, 5)] {
        let d = request_in_session(&mut front, n, 300);
        let local = front.handle(T0, &payer(), pay(&d, sequence, &key));
        assert_eq!(steps(&local), ["H", "K"], "payment {n}");
        let Message::PayerAcknowledgement(h) = &local.sent[0].message else {
            unreachable!()
        };
        assert!(h.verdict.is_positive());
    }
    // Ending the session settles exactly the three payments, then closes it.
    let ended = front.handle(T0, &client(), end());
    assert_eq!(steps(&ended), ["settle"]);
    let settlement = settlement_of(&ended);
    assert_eq!(settlement.payments.len(), 3);
    let closed = front.handle(T0, &wallet(), settled(&settlement));
    assert_eq!(
        closed.sent[0].message,
        Message::SessionClosed(SessionClosed {
            terminal: terminal(),
            session: session(),
            payments: 3,
            debited: Some(Money::new(800, Currency::EUR)),
            settled: true,
        })
    );
    // The session has ended: a new request in it is refused.
    let late = front.handle(
        T0,
        &client(),
        Message::ServiceRequest(ServiceRequest {
            request: "r-9".into(),
            terminal: terminal(),
            provider: "demo-publisher".into(),
            service: "page".into(),
            delivery_address: None,
            payment_service: None,
            session: Some(session()),
            units: None,
        }),
    );
    assert_eq!(steps(&late), ["outcome"]);
    // A repeated end gets the same answer.
    assert_eq!(front.handle(T0, &client(), end()).sent, closed.sent);
}

#[test]
fn claim10_a_payment_beyond_the_provision_settles_it_and_opens_another() {
    let mut front = front_end();
    let key = key();
    let d1 = request_in_session(&mut front, 1, 600);
    let f = front.handle(T0, &payer(), pay(&d1, 1, &key));
    front.handle(T0, &wallet(), grant(&f));
    // 6.00 + 6.00 > 10.00: the first provision is settled, a second one asked.
    let d2 = request_in_session(&mut front, 2, 600);
    let rolled = front.handle(T0, &payer(), pay(&d2, 2, &key));
    assert_eq!(steps(&rolled), ["settle", "F"]);
    let first = settlement_of(&rolled);
    assert_eq!(first.payments.len(), 1);
    assert_eq!(first.segment.0, "P/terminal-1/evening/1");
    let Message::AcquirerTransaction(second) = &rolled.sent[1].message else {
        unreachable!()
    };
    assert_eq!(
        second
            .provision
            .as_ref()
            .map(|asked| asked.segment.0.as_str()),
        Some("P/terminal-1/evening/2")
    );
    assert_eq!(
        steps(&front.handle(T0, &wallet(), grant(&rolled))),
        ["H", "K"]
    );
    assert!(front.handle(T0, &wallet(), settled(&first)).sent.is_empty());
    let ended = front.handle(T0, &client(), end());
    let last = settlement_of(&ended);
    assert_eq!(last.payments.len(), 1);
    let closed = front.handle(T0, &wallet(), settled(&last));
    let Message::SessionClosed(closed) = &closed.sent[0].message else {
        unreachable!()
    };
    assert_eq!(closed.payments, 2);
    assert_eq!(closed.debited, Some(Money::new(1_200, Currency::EUR)));
}

#[test]
fn claim10_the_front_end_refuses_a_forged_or_replayed_session_payment() {
    let mut front = front_end();
    let key = key();
    let d1 = request_in_session(&mut front, 1, 100);
    let f = front.handle(T0, &payer(), pay(&d1, 7, &key));
    front.handle(T0, &wallet(), grant(&f));

    // A signature by another key over the same account: refused, no F, no K.
    let d2 = request_in_session(&mut front, 2, 100);
    let Message::Transaction(mut forged) = pay(&d2, 8, &SigningKey::from_slice(&[9; 32]).unwrap())
    else {
        unreachable!()
    };
    if let Payment::VirtualWallet(signed) = &mut forged.means {
        signed.payment.account = AccountKey::new(key.verifying_key());
    }
    let refused = front.handle(T0, &payer(), Message::Transaction(forged));
    assert_eq!(steps(&refused), ["H", "outcome"]);
    let Message::PayerAcknowledgement(h) = &refused.sent[0].message else {
        unreachable!()
    };
    assert!(matches!(
        h.verdict,
        Verdict::Negative {
            reason: RefusalReason::SignatureInvalid,
            ..
        }
    ));
    // A sequence not above the last admitted: refused as a replay.
    let d3 = request_in_session(&mut front, 3, 100);
    let replayed = front.handle(T0, &payer(), pay(&d3, 7, &key));
    let Message::PayerAcknowledgement(h) = &replayed.sent[0].message else {
        unreachable!()
    };
    assert!(matches!(
        h.verdict,
        Verdict::Negative {
            reason: RefusalReason::ReplayedSequence,
            ..
        }
    ));
    // Only the first payment is settled.
    let ended = front.handle(T0, &client(), end());
    assert_eq!(settlement_of(&ended).payments.len(), 1);
}

#[test]
fn claim10_a_silent_acquirer_gets_the_provision_released_not_reversed() {
    let mut front = front_end();
    let d1 = request_in_session(&mut front, 1, 100);
    front.handle(T0, &payer(), pay(&d1, 1, &key()));
    let due = front.poll_timeout().expect("F has a deadline");
    let expired = front.handle_timeout(due);
    assert_eq!(steps(&expired), ["H", "settle", "outcome"]);
    let release = settlement_of(&expired);
    assert!(
        release.payments.is_empty(),
        "an empty settlement releases it all"
    );
}

#[test]
fn claim10_a_front_end_run_once_per_request_resumes_the_open_session() {
    let directory = std::env::temp_dir().join(format!(
        "telepay-sessions-{}-{}",
        std::process::id(),
        line!()
    ));
    std::fs::create_dir_all(&directory).unwrap();
    let path = directory.join("sessions.sqlite");
    let _ = std::fs::remove_file(&path);
    let key = key();
    let open = |prefix: &str| {
        let mut front = front_end()
            .with_session_log(
                Box::new(SqliteSessionLog::open(&path).unwrap()),
                Recovery::Resume,
            )
            .unwrap();
        front.config.purchase_prefix = prefix.into();
        front
    };
    {
        let mut first = open("P");
        let d1 = request_in_session(&mut first, 1, 200);
        let f = first.handle(T0, &payer(), pay(&d1, 1, &key));
        first.handle(T0, &wallet(), grant(&f));
    }
    // The next run carries on with the same provision: no F, no settlement yet.
    let mut second = open("Q");
    assert_eq!(second.poll_timeout(), None);
    let d2 = request_in_session(&mut second, 1, 300);
    assert_eq!(
        steps(&second.handle(T0, &payer(), pay(&d2, 2, &key))),
        ["H", "K"]
    );
    let ended = second.handle(T0, &client(), end());
    let settlement = settlement_of(&ended);
    assert_eq!(settlement.segment.0, "P/terminal-1/evening/1");
    assert_eq!(settlement.payments.len(), 2);
    let _ = std::fs::remove_dir_all(&directory);
}

#[test]
fn claim10_a_front_end_that_crashes_mid_session_settles_every_payment_after_restart() {
    let directory = std::env::temp_dir().join(format!(
        "telepay-sessions-{}-{}",
        std::process::id(),
        line!()
    ));
    std::fs::create_dir_all(&directory).unwrap();
    let path = directory.join("sessions.sqlite");
    let _ = std::fs::remove_file(&path);
    let key = key();
    {
        let mut front = front_end()
            .with_session_log(
                Box::new(SqliteSessionLog::open(&path).unwrap()),
                Recovery::Settle,
            )
            .unwrap();
        let d1 = request_in_session(&mut front, 1, 200);
        let f = front.handle(T0, &payer(), pay(&d1, 1, &key));
        front.handle(T0, &wallet(), grant(&f));
        for n in 2..=3 {
            let d = request_in_session(&mut front, n, 200);
            assert_eq!(
                steps(&front.handle(T0, &payer(), pay(&d, n, &key))),
                ["H", "K"]
            );
        }
        // The process dies here: no end of session, no settlement.
    }
    let mut restarted = front_end()
        .with_session_log(
            Box::new(SqliteSessionLog::open(&path).unwrap()),
            Recovery::Settle,
        )
        .unwrap();
    let due = restarted.poll_timeout().expect("the open provision is due");
    let resumed = restarted.handle_timeout(due);
    let settlement = settlement_of(&resumed);
    assert_eq!(settlement.segment.0, "P/terminal-1/evening/1");
    let sequences: Vec<u64> = settlement
        .payments
        .iter()
        .map(|signed| signed.payment.sequence)
        .collect();
    assert_eq!(sequences, [1, 2, 3]);
    assert!(
        settlement
            .payments
            .iter()
            .all(|signed| signed.verify().is_ok())
    );
    restarted.handle(T0, &wallet(), settled(&settlement));
    let session = restarted
        .sessions()
        .get(&terminal(), &session())
        .expect("the recovered session");
    assert!(matches!(
        session.segments[0].state,
        SegmentState::Settled(_)
    ));
    // Settled: a third start has nothing to recover.
    let third = front_end()
        .with_session_log(
            Box::new(SqliteSessionLog::open(&path).unwrap()),
            Recovery::Settle,
        )
        .unwrap();
    assert_eq!(third.poll_timeout(), None);
    let _ = std::fs::remove_dir_all(&directory);
}
