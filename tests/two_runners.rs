//! The same purchase scenarios on two runners: in one process (the embedded runner,
//! every role wired by `Runner`), and over the network (each role its own service over
//! mutual TLS on 127.0.0.1, the terminal calling the front-end; `telepay::net::local`).
//! A scenario is written once, against what the terminal sees; each runs on both.

mod common;
use common::TempDir;

use std::time::Duration;

use telepay::messages::{
    Currency, Delivery, Failure, Money, Party, PostalAddress, ProviderId, ServiceId,
};
use telepay::net::local::{LocalDeployment, LocalOptions};
use telepay::net::terminal::RemoteTerminal;
use telepay::purchase::{Faults, SystemClock};
use telepay::terminal::client::RequestResult;
use telepay::terminal::payer::ScriptedUser;
use telepay::testing::DemoNetwork;

/// What the terminal sees of a purchase, whichever runner ran it.
struct Seen {
    /// How the request ended.
    result: Option<RequestResult>,
    /// The steps of the messages to or from the terminal, in order.
    steps: Vec<&'static str>,
}

/// A way to run purchases from one terminal with the `cb` card.
trait Runs {
    fn buy(&mut self, service: &str, address: Option<PostalAddress>) -> Seen;
}

/// Every role in this process.
struct InProcess(DemoNetwork);

impl Runs for InProcess {
    fn buy(&mut self, service: &str, address: Option<PostalAddress>) -> Seen {
        let run = self
            .0
            .purchase(
                &ServiceId::from(service),
                address,
                SystemClock,
                Faults::none(),
            )
            .unwrap();
        let at_terminal = |party: &Party| matches!(party, Party::Client(_) | Party::Payer(_));
        Seen {
            steps: run
                .log
                .entries
                .iter()
                .filter(|entry| {
                    at_terminal(&entry.envelope.from) || at_terminal(&entry.envelope.to)
                })
                .map(|entry| entry.envelope.message.step())
                .collect(),
            result: run.result,
        }
    }
}

type Card = telepay::reader::Transport<Box<dyn telepay::reader::Reader + Send>>;

/// Every role its own service; this test is the terminal.
struct OverNetwork {
    runtime: tokio::runtime::Runtime,
    deployment: Option<LocalDeployment>,
    terminal: RemoteTerminal<Card, ScriptedUser>,
    _dir: TempDir,
}

impl Runs for OverNetwork {
    fn buy(&mut self, service: &str, address: Option<PostalAddress>) -> Seen {
        let run = self.runtime.block_on(self.terminal.purchase(
            ProviderId::from("demo-publisher"),
            ServiceId::from(service),
            address,
            Duration::from_secs(20),
        ));
        assert!(run.troubles.is_empty(), "{:?}", run.troubles);
        Seen {
            steps: run
                .messages
                .iter()
                .map(|envelope| envelope.message.step())
                .collect(),
            result: run.result,
        }
    }
}

impl Drop for OverNetwork {
    fn drop(&mut self) {
        if let Some(deployment) = self.deployment.take() {
            self.runtime.block_on(deployment.stop());
        }
    }
}

fn in_process(pin: &str) -> InProcess {
    InProcess(telepay::testing::demo_network("sim:cb", pin, 7).unwrap())
}

fn over_network(pin: &str) -> OverNetwork {
    let dir = TempDir::new("two-runners");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let deployment = runtime
        .block_on(LocalDeployment::start(dir.path(), &LocalOptions::default()))
        .unwrap();
    let card = telepay::testing::powered("sim:cb").unwrap();
    let terminal = deployment
        .terminal("t1", card, ScriptedUser::with_pin(pin), |payer| payer)
        .unwrap();
    OverNetwork {
        runtime,
        deployment: Some(deployment),
        terminal,
        _dir: dir,
    }
}

/// Runs the scenario `body` on both runners, the terminal's user typing `pin`.
macro_rules! on_both_runners {
    ($name:ident, $pin:expr, $body:expr) => {
        mod $name {
            use super::*;

            #[test]
            fn in_process() {
                let body: fn(&mut dyn Runs) = $body;
                body(&mut super::in_process($pin));
            }

            #[test]
            fn over_the_network() {
                let body: fn(&mut dyn Runs) = $body;
                body(&mut super::over_network($pin));
            }
        }
    };
}

fn delivered(seen: &Seen) -> &telepay::messages::ClientDelivery {
    match &seen.result {
        Some(RequestResult::Delivered(k)) => k,
        other => panic!("not delivered: {other:?} ({:?})", seen.steps),
    }
}

fn failure(seen: &Seen) -> &Failure {
    match &seen.result {
        Some(RequestResult::Failed(failure)) => failure,
        other => panic!("not a failure: {other:?} ({:?})", seen.steps),
    }
}

on_both_runners!(a_document_is_paid_by_card_and_delivered, "1234", |runs| {
    let seen = runs.buy("market-report-2026", None);
    let k = delivered(&seen);
    assert_eq!(k.paid, Money::new(250, Currency::EUR));
    assert!(matches!(k.delivery, Delivery::Content { .. }));
    assert_eq!(seen.steps, ["A", "D", "E", "H", "K"]);
});

on_both_runners!(three_purchases_in_a_row_on_one_card, "1234", |runs| {
    for service in [
        "market-report-2026",
        "card-payments-guide",
        "cup-final-replay",
    ] {
        let seen = runs.buy(service, None);
        assert_eq!(delivered(&seen).service, ServiceId::from(service));
    }
});

on_both_runners!(
    physical_goods_are_ordered_to_the_address_given,
    "1234",
    |runs| {
        let address = PostalAddress {
            name: "A. Martin".into(),
            lines: vec!["12 rue des Lilas".into()],
            postcode: "75011".into(),
            town: "Paris".into(),
            country: "FR".into(),
        };
        let seen = runs.buy("printed-travel-guide", Some(address.clone()));
        match &delivered(&seen).delivery {
            Delivery::Order {
                address: shipped, ..
            } => assert_eq!(shipped, &address),
            other => panic!("{other:?}"),
        }
    }
);

on_both_runners!(
    a_free_document_is_delivered_without_a_payment,
    "1234",
    |runs| {
        let seen = runs.buy("library-opening-hours", None);
        assert_eq!(delivered(&seen).paid.minor, 0);
        assert_eq!(seen.steps, ["A", "K"]);
    }
);

on_both_runners!(
    an_unknown_service_is_refused_and_nothing_is_paid,
    "1234",
    |runs| {
        let seen = runs.buy("no-such-service", None);
        assert!(
            matches!(failure(&seen), Failure::ServiceUnavailable { .. }),
            "{:?}",
            seen.result
        );
        assert!(!seen.steps.contains(&"E"), "{:?}", seen.steps);
    }
);

on_both_runners!(a_wrong_pin_declines_the_payment, "0000", |runs| {
    let seen = runs.buy("market-report-2026", None);
    assert!(
        matches!(failure(&seen), Failure::PaymentDeclined { .. }),
        "{:?}",
        seen.result
    );
    assert!(!seen.steps.contains(&"K"), "{:?}", seen.steps);
});

on_both_runners!(
    a_service_for_identified_users_identifies_by_the_card_first,
    "1234",
    |runs| {
        let seen = runs.buy("customer-area", None);
        delivered(&seen);
        // The card's proof went to the card acquirer through the front-end; the terminal
        // saw the request and the result.
        assert_eq!(seen.steps, ["A", "identify", "proof", "identified", "K"]);
    }
);
