//! `docs/openapi.json` is the network edge's wire as the code defines it: made from the
//! message types by `telepay::net::openapi::document`. When a message changes, run
//! `TELEPAY_UPDATE_OPENAPI=1 cargo test --test openapi` and review the diff.

use std::path::Path;

#[test]
fn the_committed_openapi_document_is_the_one_the_types_make() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.json");
    let made = serde_json::to_string_pretty(&telepay::net::openapi::document()).unwrap() + "\n";
    if std::env::var_os("TELEPAY_UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &made).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == made,
        "docs/openapi.json differs from the types: run TELEPAY_UPDATE_OPENAPI=1 cargo test --test openapi"
    );
}

#[test]
fn every_message_of_the_flow_is_in_the_schema() {
    let document = telepay::net::openapi::document();
    let message = &document["components"]["schemas"]["Message"];
    let text = message.to_string();
    for kind in [
        "service-request",
        "quote-request",
        "quote",
        "payment-request",
        "transaction",
        "acquirer-transaction",
        "acknowledgement",
        "payer-acknowledgement",
        "service-order",
        "service-delivery",
        "client-delivery",
        "purchase-outcome",
        "reversal",
        "payment-abandoned",
        "abandonment-result",
    ] {
        assert!(text.contains(&format!("\"{kind}\"")), "{kind} missing");
    }
}

/// Every message of a card purchase (and of its abandonment), a wallet session and its
/// end, as bodies of `POST /v1/messages`, validated against docs/openapi.json by an
/// independent JSON Schema implementation (Python's `jsonschema`, Draft 2020-12).
#[test]
fn real_messages_validate_against_the_document_with_an_independent_validator() {
    use telepay::messages::{
        AbandonmentOutcome, AbandonmentResult, AcquirerId, CardDecline, Envelope, Means, Message,
        Party, PaymentAbandonment, ServiceId, SessionId, Timestamp,
    };
    use telepay::net::node::Wire;
    use telepay::purchase::{Faults, VirtualClock};
    use telepay::terminal::payer::MeansChoice;

    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let available = std::process::Command::new(&python)
        .args(["-c", "import jsonschema, referencing"])
        .status()
        .is_ok_and(|status| status.success());
    if !available {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have the jsonschema package (.ci/run installs it)"
        );
        eprintln!("skipped: {python} lacks the jsonschema package");
        return;
    }
    let start = Timestamp(1_767_225_600_000);
    let key = p256::ecdsa::SigningKey::from_slice(&[0x42; 32]).unwrap();
    let mut network = telepay::testing::demo_wallet_network(
        "sim:cb?seed=1",
        "1234",
        1,
        key,
        2_000,
        start,
        MeansChoice::Fixed(Means::BankCard),
    )
    .unwrap();
    let mut bodies = String::new();
    // One body per envelope, a line each.
    let lines = |envelopes: Vec<Envelope>| -> String {
        envelopes
            .into_iter()
            .map(|envelope| {
                let body = Wire {
                    envelopes: vec![envelope],
                };
                serde_json::to_string(&body).unwrap() + "\n"
            })
            .collect()
    };
    let of_log = |log: &telepay::purchase::PurchaseLog| -> Vec<Envelope> {
        log.entries
            .iter()
            .map(|entry| entry.envelope.clone())
            .collect()
    };
    let card = network
        .purchase(
            &ServiceId::from("market-report-2026"),
            None,
            VirtualClock::new(start, 10),
            Faults::none(),
        )
        .unwrap();
    assert!(card.delivered());
    bodies.push_str(&lines(of_log(&card.log)));
    // The abandonment of that payment and its result, as a terminal whose front-end was
    // lost would send them (the D and E are the purchase's own).
    let d = card
        .log
        .entries
        .iter()
        .find_map(|entry| match &entry.envelope.message {
            Message::PaymentRequest(d) => Some(d.clone()),
            _ => None,
        });
    let e = card
        .log
        .entries
        .iter()
        .find_map(|entry| match &entry.envelope.message {
            Message::Transaction(e) => Some(e.clone()),
            _ => None,
        });
    let (d, e) = (d.unwrap(), e.unwrap());
    let terminal = e.terminal.clone();
    for (from, to, message) in [
        (
            Party::Payer(terminal.clone()),
            Party::FrontEnd,
            Message::PaymentAbandoned(Box::new(PaymentAbandonment {
                request: d.clone(),
                transaction: (*e).clone(),
                decline: CardDecline {
                    cid: 0x00,
                    cryptogram: [0x5A; 8],
                    iad: vec![0x06, 0x01, 0x12, 0x03, 0x24, 0x00, 0x00],
                },
            })),
        ),
        (
            Party::FrontEnd,
            Party::Payer(terminal.clone()),
            Message::AbandonmentResult(AbandonmentResult {
                acquirer: AcquirerId::from("bank-card-acquirer"),
                terminal,
                purchase: d.purchase.clone(),
                payment: d.payment.clone(),
                outcome: AbandonmentOutcome::NotCharged {
                    detail: "authorised, now reversed".into(),
                },
            }),
        ),
    ] {
        bodies.push_str(&lines(vec![Envelope { from, to, message }]));
    }
    let mut network =
        network.map_payer(|payer| payer.with_means(MeansChoice::Fixed(Means::VirtualWallet)));
    network.open_session(SessionId::from("evening"));
    for service in ["market-report-2026", "marine-weather-live"] {
        let run = network
            .purchase(
                &ServiceId::from(service),
                None,
                VirtualClock::new(start, 10),
                Faults::none(),
            )
            .unwrap();
        assert!(run.delivered());
        bodies.push_str(&lines(of_log(&run.log)));
    }
    let ended = network
        .end_session(VirtualClock::new(start, 10), Faults::none())
        .unwrap();
    bodies.push_str(&lines(of_log(&ended.log)));

    let dir = std::env::temp_dir().join(format!("telepay-openapi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bodies.jsonl");
    std::fs::write(&file, &bodies).unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = std::process::Command::new(&python)
        .arg(root.join("scripts/validate-wire.py"))
        .arg(root.join("docs/openapi.json"))
        .arg(&file)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let checked: usize = stdout
        .split(" bodies,")
        .next()
        .and_then(|count| count.trim().rsplit('\n').next())
        .and_then(|count| count.parse().ok())
        .unwrap_or(0);
    assert!(checked >= 30, "{stdout}");
    assert!(stdout.contains(" 0 failures"), "{stdout}");
}
