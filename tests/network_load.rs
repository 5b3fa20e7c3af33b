//! Load on the network deployment: 200 terminals, each with its own card, buying at
//! once through one front-end for 60 seconds (`TELEPAY_LOAD_SECONDS` and
//! `TELEPAY_LOAD_TERMINALS` change that), on 127.0.0.1 over mutual TLS. Bounded: every
//! purchase ends (delivered, or failed with its reason) within its patience, and no
//! transaction is lost or counted twice — the acquirer's journal holds exactly the
//! payments of the purchases that delivered, each once. The latencies are printed
//! (`cargo test --test network_load -- --nocapture`), never asserted.

mod common;
use common::TempDir;

use std::collections::BTreeMap;
use std::time::Duration;

use telepay::messages::{ProviderId, ServiceId};
use telepay::net::load;
use telepay::net::local::{LocalDeployment, LocalOptions};
use telepay::terminal::payer::ScriptedUser;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

#[test]
fn two_hundred_terminals_for_a_minute_lose_and_double_nothing() {
    let seconds = setting("TELEPAY_LOAD_SECONDS", 60);
    let count = setting("TELEPAY_LOAD_TERMINALS", 200) as usize;
    let dir = TempDir::new("network-load");
    let names: Vec<String> = (1..=count).map(|n| format!("load{n}")).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let deployment = runtime
        .block_on(LocalDeployment::start(
            dir.path(),
            &LocalOptions {
                terminals: names.clone(),
                ..LocalOptions::default()
            },
        ))
        .unwrap();
    // Each terminal its own card of the cb BIN: one card's counter cannot be used from
    // two terminals at once.
    let terminals = names
        .iter()
        .enumerate()
        .map(|(index, name)| {
            let card = telepay::testing::cb_card(dir.path(), 1000 + index as u32).unwrap();
            deployment
                .terminal(name, card, ScriptedUser::with_pin("1234"), |payer| payer)
                .unwrap()
        })
        .collect();

    let report = runtime.block_on(load::run(
        terminals,
        ProviderId::from("demo-publisher"),
        ServiceId::from("market-report-2026"),
        Duration::from_secs(seconds),
        Duration::from_secs(30),
    ));
    runtime.block_on(deployment.stop());

    let delivered = report.delivered().count();
    let failed: BTreeMap<&str, usize> = report
        .samples
        .iter()
        .filter_map(|sample| sample.failure.as_deref())
        .fold(BTreeMap::new(), |mut counts, failure| {
            *counts.entry(failure).or_default() += 1;
            counts
        });
    println!(
        "{count} terminals, {seconds} s: {} purchases, {delivered} delivered ({:.0}/s), \
         latency p50 {:?}, p99 {:?}, max {:?}; failures: {failed:?}",
        report.samples.len(),
        report.throughput(),
        report.percentile(0.50),
        report.percentile(0.99),
        report.percentile(1.0),
    );
    // Bounded: every purchase ended within its patience.
    assert!(report.percentile(1.0) <= Duration::from_secs(31));
    assert!(delivered > 0);

    // Nothing lost, nothing twice: the journal's authorised payments are exactly the
    // delivered purchases' payments, each once, and their amounts add up.
    assert_eq!(
        common::authorised_payments(&dir.file("acq1.sqlite")),
        common::delivered_payments(&report)
    );
}
