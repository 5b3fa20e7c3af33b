//! The patent's purchase flow end to end in one process: client device, payer device
//! with the software bank card (`sim:`), front-end, the demo service server and the
//! bank-card acquirer with its SQLite journal. Each test is one scenario of Fig. 6 / 7.

use telepay::acquirer::journal::TransactionState;
use telepay::messages::{
    Currency, Delivery, Failure, Message, Money, PaymentService, PostalAddress, RefusalReason,
    ServiceId, Timestamp, Verdict,
};
use telepay::purchase::embedded::PurchaseRun;
use telepay::purchase::{Faults, PartyKind, VirtualClock, render};
use telepay::terminal::client::RequestResult;
use telepay::terminal::payer::PaymentState;
use telepay::testing::{DemoNetwork, demo_network};

type Network = DemoNetwork;

/// 2026-11-25 10:30:00 UTC.
const START: Timestamp = Timestamp(1_795_602_600_000);

fn network(profile: &str, pin: &str) -> Network {
    demo_network(&format!("sim:{profile}?seed=1"), pin, 1).unwrap()
}

/// A clock that moves 10 ms per message.
fn clock() -> VirtualClock {
    VirtualClock::new(START, 10)
}

fn buy(network: &mut Network, service: &str) -> PurchaseRun {
    network
        .purchase(&ServiceId::from(service), None, clock(), Faults::none())
        .unwrap()
}

fn failure(run: &PurchaseRun) -> Failure {
    match &run.result {
        Some(RequestResult::Failed(failure)) => failure.clone(),
        other => panic!(
            "expected a failure, got {other:?}\n{}",
            render::text(&run.log)
        ),
    }
}

fn journal_states(network: &Network) -> Vec<TransactionState> {
    let mut states = Vec::new();
    network
        .acquirer
        .journal()
        .transactions::<telepay::acquirer::journal::JournalError>(&Default::default(), |entry| {
            states.push(entry.state);
            Ok(())
        })
        .unwrap();
    states
}

#[test]
fn fig6_a_paid_document_goes_through_every_step_a_to_k() {
    let mut network = network("cb", "1234");
    let run = buy(&mut network, "market-report-2026");
    assert_eq!(
        run.log.steps(),
        ["A", "B", "C", "D", "E", "F", "G", "H", "I", "J", "K"],
        "{}",
        render::text(&run.log)
    );
    assert!(run.delivered());
    // The card completed with a TC after the positive H.
    let Some((_, Some(PaymentState::Completed(completion)))) = &run.payment else {
        panic!("the card completed: {:?}", run.payment)
    };
    assert_eq!(format!("{:?}", completion.kind), "Tc");
    // The acquirer kept the acknowledged transaction for telecollection.
    assert_eq!(journal_states(&network), [TransactionState::Authorised]);
    insta::assert_snapshot!("purchase_cb_market_report", render::text(&run.log));
}

#[test]
fn fig7_the_service_comes_with_the_quote_and_i_j_disappear() {
    let mut network = network("cb", "1234");
    let run = buy(&mut network, "marine-weather-live");
    assert_eq!(
        run.log.steps(),
        ["A", "B", "C", "D", "E", "F", "G", "H", "K"]
    );
    assert!(run.delivered());
}

#[test]
fn a_free_service_has_no_payment_steps() {
    let mut network = network("cb", "1234");
    let run = buy(&mut network, "library-opening-hours");
    assert_eq!(run.log.steps(), ["A", "B", "C", "I", "J", "K"]);
    assert!(run.delivered());
    assert!(journal_states(&network).is_empty(), "nothing to charge");
}

#[test]
fn physical_goods_are_delivered_as_an_order_to_the_address() {
    let mut network = network("cb", "1234");
    let address = PostalAddress {
        name: "A. Martin".into(),
        lines: vec!["1 rue de la Paix".into()],
        postcode: "75002".into(),
        town: "Paris".into(),
        country: "FR".into(),
    };
    let run = network
        .purchase(
            &ServiceId::from("printed-travel-guide"),
            Some(address.clone()),
            clock(),
            Faults::none(),
        )
        .unwrap();
    let Some(RequestResult::Delivered(k)) = &run.result else {
        panic!("{}", render::text(&run.log))
    };
    let Delivery::Order { address: to, .. } = &k.delivery else {
        panic!("an order, not content")
    };
    assert_eq!(*to, address);
}

#[test]
fn a_wrong_pin_stops_the_purchase_with_the_tries_left() {
    let mut network = network("cb", "9999");
    let run = buy(&mut network, "market-report-2026");
    assert_eq!(
        failure(&run),
        Failure::PaymentDeclined {
            reason: "wrong PIN: 2 tries left".into()
        }
    );
    assert_eq!(run.log.steps(), ["A", "B", "C", "D", "declined", "outcome"]);
    assert!(journal_states(&network).is_empty());
}

#[test]
fn a_blocked_card_stops_the_purchase() {
    let mut network = network("blocked", "1234");
    let run = buy(&mut network, "market-report-2026");
    let Failure::PaymentDeclined { reason } = failure(&run) else {
        panic!()
    };
    assert!(reason.contains("blocked"), "{reason}");
}

#[test]
fn an_unavailable_server_ends_the_purchase_before_any_payment() {
    let mut network = network("cb", "1234");
    network.server.set_available(false);
    let run = buy(&mut network, "market-report-2026");
    assert!(matches!(failure(&run), Failure::ServiceUnavailable { .. }));
    assert_eq!(run.log.steps(), ["A", "B", "unavailable", "outcome"]);
}

#[test]
fn an_item_the_server_cannot_supply_is_refused_at_the_quote() {
    let mut network = network("cb", "1234");
    let run = buy(&mut network, "press-archive-1996");
    assert!(matches!(failure(&run), Failure::ServiceUnavailable { .. }));
}

#[test]
fn an_unreachable_acquirer_gets_a_negative_h_and_nothing_is_charged() {
    let mut network = network("cb", "1234");
    let run = network
        .purchase(
            &ServiceId::from("market-report-2026"),
            None,
            clock(),
            Faults::none().unreachable(PartyKind::Acquirer),
        )
        .unwrap();
    assert_eq!(
        failure(&run),
        Failure::PaymentRefused {
            reason: RefusalReason::AcquirerUnreachable
        }
    );
    // The card ends with an AAC: the payer device completed with the negative H.
    let Some((_, Some(PaymentState::Completed(completion)))) = &run.payment else {
        panic!("{:?}", run.payment)
    };
    assert_eq!(format!("{:?}", completion.kind), "Aac");
    assert!(
        journal_states(&network).is_empty(),
        "the acquirer never saw it"
    );
}

#[test]
fn an_acquirer_silent_after_authorising_sees_its_transaction_reversed() {
    let mut network = network("cb", "1234");
    // The acquirer authorises and records, but its G is lost on the way.
    let run = network
        .purchase(
            &ServiceId::from("market-report-2026"),
            None,
            clock(),
            Faults::none().drop_step("G", PartyKind::FrontEnd),
        )
        .unwrap();
    assert_eq!(
        failure(&run),
        Failure::PaymentRefused {
            reason: RefusalReason::AcquirerUnreachable
        }
    );
    let text = render::text(&run.log);
    assert!(text.contains("reversal of"), "{text}");
    // Kept, but never to be remitted: a cut-off finds nothing to batch.
    assert_eq!(journal_states(&network), [TransactionState::Reversed]);
    let batch = network
        .acquirer
        .journal_mut()
        .cut_off(START.plus_millis(86_400_000))
        .unwrap();
    assert!(batch.is_none(), "a reversed transaction is not remitted");
}

#[test]
fn a_quote_expired_before_the_transaction_is_refused_and_nothing_is_charged() {
    let mut network = network("cb", "1234");
    // Each message takes 25 s: the 60 s quote, issued when B arrives, still holds when
    // C arrives (25 s later) but not when E does (75 s later).
    let run = network
        .purchase(
            &ServiceId::from("marine-weather-live"),
            None,
            VirtualClock::new(START, 25_000),
            Faults::none(),
        )
        .unwrap();
    assert_eq!(failure(&run), Failure::QuoteExpired);
    assert!(!run.log.steps().contains(&"F"), "no acquirer saw it");
    let h = run
        .log
        .entries
        .iter()
        .find_map(|entry| match &entry.envelope.message {
            Message::PayerAcknowledgement(h) => Some(h.verdict.clone()),
            _ => None,
        })
        .expect("a negative H so the card ends its transaction");
    assert!(matches!(
        h,
        Verdict::Negative {
            reason: RefusalReason::QuoteExpired,
            ..
        }
    ));
    assert!(journal_states(&network).is_empty());
}

#[test]
fn two_purchases_in_a_row_use_increasing_counters_and_both_are_kept() {
    let mut network = network("cb", "1234");
    for service in ["market-report-2026", "card-payments-guide"] {
        let run = buy(&mut network, service);
        assert!(run.delivered());
        let Some((_, Some(PaymentState::Completed(completion)))) = &run.payment else {
            panic!("{:?}", run.payment)
        };
        assert_eq!(
            format!("{:?}", completion.kind),
            "Tc",
            "{service}: {completion:?}"
        );
    }
    assert_eq!(
        journal_states(&network),
        [TransactionState::Authorised, TransactionState::Authorised]
    );
    let batch = network
        .acquirer
        .journal_mut()
        .cut_off(START.plus_millis(86_400_000))
        .unwrap()
        .expect("a batch");
    assert_eq!(batch.records, 2);
}

#[test]
fn the_diagram_draws_every_exchange() {
    let mut network = network("cb", "1234");
    let run = buy(&mut network, "market-report-2026");
    let diagram = render::mermaid(&run.log);
    assert!(diagram.starts_with("sequenceDiagram\n"));
    assert_eq!(diagram.matches("->>").count(), 11, "{diagram}");
    insta::assert_snapshot!("purchase_cb_market_report_diagram", diagram);
}

/// Claim 16 in one purchase: an account that is not prepaid, reloaded by an identified
/// customer. The service messages come before the payment; the customer reaches the
/// server in I and comes back on the receipt.
#[test]
fn a_service_for_identified_users_identifies_then_pays() {
    let mut network = network("cb", "1234");
    let run = network
        .pay_service(
            &ServiceId::from("transit-pass-account"),
            PaymentService::Reload {
                account: "TP-884211".into(),
                amount: Money::new(1000, Currency::EUR),
            },
            clock(),
            Faults::none(),
        )
        .unwrap();
    assert!(run.delivered(), "{}", render::text(&run.log));
    assert_eq!(
        run.log.steps(),
        [
            "A",
            "B",
            "C",
            "identify",
            "proof",
            "identity check",
            "identity verdict",
            "identified",
            "D",
            "E",
            "F",
            "G",
            "H",
            "I",
            "J",
            "K"
        ]
    );
    // One payment kept for remittance; the identification left nothing to remit.
    assert_eq!(journal_states(&network), [TransactionState::Authorised]);
    insta::assert_snapshot!("purchase_cb_identified_reload", render::text(&run.log));
}

/// Incremental payment (claim 10), as a person reviews it: a session of three purchases
/// paid from the virtual wallet — the first opens a provision at the wallet acquirer,
/// the next two are verified by the front-end alone — then the end of the session,
/// which settles the three together.
#[test]
fn an_incremental_payment_session_in_full() {
    use telepay::messages::{Means, SessionId};
    use telepay::terminal::payer::MeansChoice;
    let key = p256::ecdsa::SigningKey::from_slice(&[0x42; 32]).unwrap();
    let mut network = telepay::testing::demo_wallet_network(
        "sim:cb?seed=1",
        "1234",
        1,
        key,
        2_000,
        START,
        MeansChoice::Fixed(Means::VirtualWallet),
    )
    .unwrap();
    network.open_session(SessionId::from("evening"));
    let mut transcript = String::new();
    for service in [
        "market-report-2026",
        "marine-weather-live",
        "cup-final-replay",
    ] {
        let run = buy(&mut network, service);
        assert!(run.delivered(), "{}", render::text(&run.log));
        transcript.push_str(&render::text(&run.log));
    }
    let ended = network.end_session(clock(), Faults::none()).unwrap();
    transcript.push_str(&render::text(&ended.log));
    assert_eq!(
        ended.closed.map(|closed| closed.debited),
        Some(Some(Money::new(250 + 50 + 390, Currency::EUR)))
    );
    insta::assert_snapshot!("purchase_wallet_session", transcript);
}

/// Pay-per-time: the first unit's payment buys the access (A–K), then each unit is
/// paid when the previous one runs out (D, E, F, G, H again, 30 s apart), until the
/// units asked for are paid; the client device and the server are told it stopped.
#[test]
fn pay_per_time_units_are_paid_one_after_the_other_until_the_units_asked() {
    let mut network = network("cb", "1234");
    let run = network
        .purchase_metered(
            &ServiceId::from("live-concert-radio"),
            Some(3),
            clock(),
            Faults::none(),
        )
        .unwrap();
    assert_eq!(
        run.log.steps(),
        [
            "A", "B", "C", "D", "E", "F", "G", "H", "I", "J", "K", // unit 1, the access
            "D", "E", "F", "G", "H", // unit 2
            "D", "E", "F", "G", "H", // unit 3
            "stopped", "stopped", // to the client device and the server
        ],
        "{}",
        render::text(&run.log)
    );
    assert!(run.delivered());
    // Each unit's payment request comes when the previous unit ran out.
    let requests: Vec<Timestamp> = run
        .log
        .entries
        .iter()
        .filter_map(|entry| match &entry.envelope.message {
            Message::PaymentRequest(d) => Some(d.date),
            _ => None,
        })
        .collect();
    assert_eq!(requests.len(), 3);
    assert!(requests[1].0 - requests[0].0 >= 30_000);
    assert!(requests[2].0 - requests[1].0 >= 30_000);
    let purchase = run
        .log
        .entries
        .iter()
        .find_map(|entry| match &entry.envelope.message {
            Message::ClientDelivery(k) => Some(k.purchase.clone()),
            _ => None,
        })
        .unwrap();
    let stopped = network.client.stopped(&purchase).expect("told it stopped");
    assert_eq!(stopped.units, 3);
    assert_eq!(stopped.paid, Money::new(30, Currency::EUR));
    // The acquirer authorised three card payments, one per unit.
    assert_eq!(journal_states(&network).len(), 3);
}

/// Pay-per-time in a pseudo-session, from the wallet: only the first unit's payment
/// goes to the wallet acquirer (opening the provision); the front-end verifies the
/// others itself; the end of the session settles all of them.
#[test]
fn pay_per_time_in_a_session_is_verified_by_the_front_end_and_settled_at_the_end() {
    use telepay::messages::{Means, SessionId};
    use telepay::terminal::payer::MeansChoice;
    let key = p256::ecdsa::SigningKey::from_slice(&[0x42; 32]).unwrap();
    let mut network = telepay::testing::demo_wallet_network(
        "sim:cb?seed=1",
        "1234",
        1,
        key,
        2_000,
        START,
        MeansChoice::Fixed(Means::VirtualWallet),
    )
    .unwrap();
    network.open_session(SessionId::from("concert"));
    let run = network
        .purchase_metered(
            &ServiceId::from("live-concert-radio"),
            Some(5),
            clock(),
            Faults::none(),
        )
        .unwrap();
    let count = |step: &str| run.log.steps().iter().filter(|s| **s == step).count();
    assert_eq!((count("D"), count("E"), count("H")), (5, 5, 5));
    assert_eq!(count("F"), 1, "{}", render::text(&run.log));
    let ended = network.end_session(clock(), Faults::none()).unwrap();
    let closed = ended.closed.unwrap();
    assert_eq!(closed.payments, 5);
    assert_eq!(closed.debited, Some(Money::new(50, Currency::EUR)));
}
