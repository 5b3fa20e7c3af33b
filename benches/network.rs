//! The network benchmarks of issue 10. Prints rates and ratios measured in the same run;
//! asserts nothing about time. Run with `cargo bench -p telepay --bench network`
//! (`NETWORK_BENCH_SECONDS=N` sets each measurement's length, 10 by default).
//!
//! The same purchase — A to K for the demo catalogue's first paid item, a software
//! card of the `cb` BIN, the card acquirer's journal in a file (WAL, synchronous=FULL)
//! — measured:
//!
//! 1. **in process**: every role in one process, wired by the embedded runner, one
//!    purchase after the other (`telepay purchase`'s path);
//! 2. **over the network, one terminal**: the roles as services over mutual TLS on
//!    127.0.0.1 (`telepay::net::local`, what `telepay serve` runs), one terminal buying
//!    one purchase after the other: the edge's cost per purchase, as a ratio to 1;
//! 3. **over the network, 32 terminals at once**, each its own card: what the deployment
//!    serves when the network's waits overlap, as a ratio to 1;
//! 4. **1 against 2 card-acquirer processes sharing a PostgreSQL journal** (a throwaway
//!    cluster, `fsync=on`), 32 terminals: the scaling ratio. Skipped, and said so, when
//!    PostgreSQL is not installed.

use std::time::{Duration, Instant};

// The tests' throwaway PostgreSQL cluster (and the helpers it stands on).
#[path = "../tests/common/mod.rs"]
mod common;

use telepay::acquirer::journal::Journal;
use telepay::frontend::SeededEntropy;
use telepay::messages::{ProviderId, ServiceId};
use telepay::net::load;
use telepay::net::local::{LocalDeployment, LocalOptions};
use telepay::provider::{Catalogue, ServiceServer};
use telepay::purchase::embedded::{Embedded, test_rules};
use telepay::purchase::{Faults, SystemClock};
use telepay::terminal::card_module::{CardModule, TerminalData};
use telepay::terminal::payer::ScriptedUser;

const SERVICE: &str = "market-report-2026";
const CONCURRENT: usize = 32;

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "telepay-bench-network-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

/// A card of the cb BIN of its own, from a profile file in `dir`.
fn card(
    dir: &std::path::Path,
    account: u32,
) -> telepay::reader::Transport<Box<dyn telepay::reader::Reader + Send>> {
    telepay::testing::cb_card(dir, account).expect("card")
}

/// Purchases per second with every role in this process.
fn in_process(seconds: u64) -> f64 {
    let dir = scratch("embedded");
    let mut network = Embedded::new(
        ServiceServer::new(Catalogue::demo().expect("catalogue")),
        test_rules().expect("rules"),
        Journal::open(dir.join("journal.sqlite")).expect("journal"),
        CardModule::new(card(&dir, 1), TerminalData::france()),
        ScriptedUser::with_pin("1234"),
        SeededEntropy::new(1),
        "P".into(),
    );
    let service = ServiceId::from(SERVICE);
    let started = Instant::now();
    let mut delivered = 0usize;
    while started.elapsed() < Duration::from_secs(seconds) {
        let run = network
            .purchase(&service, None, SystemClock, Faults::none())
            .expect("no loop");
        assert!(run.delivered(), "{:?}", run.result);
        delivered += 1;
    }
    let rate = delivered as f64 / started.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&dir);
    rate
}

/// Purchases per second, p50 and p99 through the network deployment with `terminals`
/// terminals at once, `acquirers` card-acquirer processes on the journal `store`
/// (`None`: an SQLite file).
fn over_network(
    seconds: u64,
    terminals: usize,
    acquirers: usize,
    store: Option<String>,
) -> (f64, Duration, Duration) {
    let dir = scratch(&format!("deployed-{terminals}-{acquirers}"));
    let names: Vec<String> = (1..=terminals).map(|n| format!("bench{n}")).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let deployment = runtime
        .block_on(LocalDeployment::start(
            &dir,
            &LocalOptions {
                terminals: names.clone(),
                card_acquirers: acquirers,
                card_journal_store: store,
                ..LocalOptions::default()
            },
        ))
        .expect("deployment");
    let terminals = names
        .iter()
        .enumerate()
        .map(|(index, name)| {
            deployment
                .terminal(
                    name,
                    card(&dir, 100 + index as u32),
                    ScriptedUser::with_pin("1234"),
                    |payer| payer,
                )
                .expect("terminal")
        })
        .collect();
    let report = runtime.block_on(load::run(
        terminals,
        ProviderId::from("demo-publisher"),
        ServiceId::from(SERVICE),
        Duration::from_secs(seconds),
        Duration::from_secs(30),
    ));
    runtime.block_on(deployment.stop());
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        report.delivered().count(),
        report.samples.len(),
        "every purchase delivered"
    );
    (
        report.throughput(),
        report.percentile(0.50),
        report.percentile(0.99),
    )
}

fn main() {
    let seconds = std::env::var("NETWORK_BENCH_SECONDS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(10);
    println!("# telepay network benchmarks (issue 10)\n");
    println!(
        "item: {SERVICE}, cards of the cb BIN, journal file (WAL, synchronous=FULL), {seconds} s each\n"
    );
    let embedded = in_process(seconds);
    let (one, one_p50, one_p99) = over_network(seconds, 1, 1, None);
    let (many, many_p50, many_p99) = over_network(seconds, CONCURRENT, 1, None);
    println!("| measurement | purchases/s | p50 | p99 |");
    println!("|---|---|---|---|");
    println!(
        "| in process, one after the other | {embedded:.0} | {:.2} ms (mean) | |",
        1e3 / embedded
    );
    println!(
        "| over the network, 1 terminal | {one:.0} | {:.2} ms | {:.2} ms |",
        one_p50.as_secs_f64() * 1e3,
        one_p99.as_secs_f64() * 1e3
    );
    println!(
        "| over the network, {CONCURRENT} terminals at once | {many:.0} | {:.2} ms | {:.2} ms |",
        many_p50.as_secs_f64() * 1e3,
        many_p99.as_secs_f64() * 1e3
    );
    println!();
    println!(
        "| **ratio network / in process, 1 terminal** (the edge's cost) | **{:.2}** |",
        one / embedded
    );
    println!(
        "| ratio network with {CONCURRENT} terminals / in process | {:.2} |",
        many / embedded
    );
    postgres_scaling(seconds);
}

/// Part 4: 1 against 2 card-acquirer processes on one PostgreSQL journal.
fn postgres_scaling(seconds: u64) {
    let Some(cluster) = common::postgres::PgCluster::start_durable("bench-network") else {
        println!("\n(PostgreSQL not installed: 1 against 2 acquirer processes not measured)");
        return;
    };
    let mut rates = Vec::new();
    for acquirers in [1, 2] {
        let database = format!("journal{acquirers}");
        cluster.create_database(&database);
        let (rate, p50, p99) = over_network(
            seconds,
            CONCURRENT,
            acquirers,
            Some(cluster.address(&database)),
        );
        rates.push((acquirers, rate, p50, p99));
    }
    println!();
    println!(
        "| card-acquirer processes on one PostgreSQL journal, {CONCURRENT} terminals | purchases/s | p50 | p99 |"
    );
    println!("|---|---|---|---|");
    for (acquirers, rate, p50, p99) in &rates {
        println!(
            "| {acquirers} | {rate:.0} | {:.2} ms | {:.2} ms |",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3
        );
    }
    println!(
        "| **scaling ratio, 2 processes / 1** | **{:.2}** | | |",
        rates[1].1 / rates[0].1
    );
}
