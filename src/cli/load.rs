//! `telepay load --frontend URL --pki DIR --terminals N --seconds S`: many terminals
//! buying at once through a served front-end, each with its own software card of the
//! `cb` BIN — a load test of a deployment, and what `scripts/demo-cluster` drives.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{CliError, GlobalArgs};
use crate::messages::{ProviderId, ServiceId, TerminalId};
use crate::net::link::LinkOptions;
use crate::net::load;
use crate::net::switchboard::Route;
use crate::net::terminal::RemoteTerminal;
use crate::terminal::card_module::{CardModule, TerminalData};
use crate::terminal::payer::{PayerDevice, ScriptedUser};

/// Arguments of `telepay load`.
#[derive(Debug, Args)]
pub(super) struct LoadArgs {
    /// The front-end's URL (`telepay serve frontend`), https://IP:PORT
    #[arg(long, value_name = "URL")]
    frontend: String,
    /// The certificate name the front-end must present
    #[arg(long, value_name = "NAME", default_value = "fe1.frontend.telepay")]
    frontend_name: String,
    /// The certificates' directory: ca.pem and the terminals' certificates
    #[arg(long, value_name = "DIR")]
    pki: PathBuf,
    /// How many terminals buy at once: PREFIX1 … PREFIXN, each with its certificate in
    /// --pki (`telepay pki issue --peer terminal:PREFIX1 …`)
    #[arg(long, value_name = "N", default_value_t = 8)]
    terminals: u32,
    /// The terminals' name prefix
    #[arg(long, value_name = "PREFIX", default_value = "load")]
    prefix: String,
    /// The first card account: terminal i pays with the cb card of account FIRST + i
    /// (PIN 1234); give each run its own range, a card's counter starts anew each run
    #[arg(long, value_name = "FIRST", default_value_t = 1000)]
    first_card: u32,
    /// How long the terminals buy, in seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    seconds: u64,
    /// The service to buy
    #[arg(long, value_name = "ID", default_value = "market-report-2026")]
    service: String,
    /// The service's provider
    #[arg(long, value_name = "ID", default_value = "demo-publisher")]
    provider: String,
    /// Where the cards' profiles are written [default: a directory under the system's
    /// temporary directory]
    #[arg(long, value_name = "DIR")]
    cards: Option<PathBuf>,
}

/// Runs the terminals and prints what they came to.
pub(super) fn load(
    global: &GlobalArgs,
    args: &LoadArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let front_end = super::remote::front_end_name(&args.frontend_name)?;
    let cards = args.cards.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("telepay-load-cards-{}", std::process::id()))
    });
    std::fs::create_dir_all(&cards)?;
    let mut terminals = Vec::new();
    for index in 1..=args.terminals {
        let name = format!("{}{index}", args.prefix);
        let account = args.first_card.saturating_add(index);
        let profile = cards.join(format!("cb-{account}.toml"));
        std::fs::write(&profile, crate::testing::cb_card_profile(account))?;
        let uri = crate::reader::ReaderUri::parse(&format!("sim:{}", profile.display()))
            .map_err(crate::reader::ReaderError::from)?;
        let card = super::open_powered_uri(global, &uri)?;
        let payer = PayerDevice::new(
            TerminalId::from(name.as_str()),
            CardModule::new(card, TerminalData::france()),
            ScriptedUser::with_pin("1234"),
        );
        let remote = RemoteTerminal::from_pki(
            &args.pki,
            &name,
            vec![Route {
                url: args.frontend.clone(),
                peer: front_end.clone(),
            }],
            payer,
            LinkOptions::default(),
        )
        .map_err(|error| CliError::Purchase(error.to_string()))?;
        terminals.push(remote);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(load::run(
        terminals,
        ProviderId::from(args.provider.as_str()),
        ServiceId::from(args.service.as_str()),
        Duration::from_secs(args.seconds),
        Duration::from_secs(60),
    ));
    if args.cards.is_none() {
        let _ = std::fs::remove_dir_all(&cards);
    }
    let delivered = report.delivered().count();
    let paid: u64 = report
        .delivered()
        .filter_map(|sample| sample.paid.map(|paid| paid.minor))
        .sum();
    let failed = report.samples.len() - delivered;
    let p50 = report.percentile(0.5).as_secs_f64() * 1e3;
    let p99 = report.percentile(0.99).as_secs_f64() * 1e3;
    if global.json {
        let failures: Vec<&str> = report
            .samples
            .iter()
            .filter_map(|sample| sample.failure.as_deref())
            .collect();
        writeln!(
            out,
            "{}",
            serde_json::json!({
                "terminals": args.terminals,
                "seconds": report.elapsed.as_secs_f64(),
                "purchases": report.samples.len(),
                "delivered": delivered,
                "paid_minor": paid,
                "failed": failed,
                "failures": failures,
                "per_second": report.throughput(),
                "p50_ms": p50,
                "p99_ms": p99,
            })
        )?;
    } else {
        writeln!(
            out,
            "{} terminals, {:.1} s: {} purchases, {delivered} delivered ({:.0}/s), {failed} failed; paid {paid} minor units; latency p50 {p50:.1} ms, p99 {p99:.1} ms",
            args.terminals,
            report.elapsed.as_secs_f64(),
            report.samples.len(),
            report.throughput(),
        )?;
        for sample in report
            .samples
            .iter()
            .filter(|sample| sample.failure.is_some())
            .take(10)
        {
            writeln!(
                out,
                "failed: terminal {}: {}",
                sample.terminal + 1,
                sample.failure.as_deref().unwrap_or_default()
            )?;
        }
    }
    if failed == 0 {
        Ok(())
    } else {
        Err(CliError::PurchaseFailed(format!(
            "{failed} purchases did not deliver"
        )))
    }
}
