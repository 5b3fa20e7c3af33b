//! `telepay acquirer journal|cutoff|remit` and `telepay telecollection serve|batches`:
//! the bank-card acquirer's journal and its remittance to the telecollection centre
//! (FR2750275 claim 11: the acquirer "keeps the acknowledged transaction and remits it,
//! at the deadline the banking systems set, to the telecollection centre";
//! `docs/telecollection.md`).
//!
//! The journal is the one `telepay purchase` keeps in the data directory
//! (`acquirer-journal.sqlite`), or with `--store postgres://…` the PostgreSQL journal
//! that `telepay serve acquirer-card` processes share (`docs/deployment.md`,
//! "PostgreSQL"); the centre's store defaults to
//! `telecollection-centre.sqlite` beside it. This module is the edge: it reads the
//! clock, opens files and sockets, installs the signal handlers; the rules are in
//! [`crate::acquirer`] and [`crate::telecollection`].

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use clap::{Args, Subcommand};

use crate::acquirer::batch::{CurrencyTotal, parse_rfc3339_utc};
use crate::acquirer::journal::{
    BatchState, BatchSummary, Journal, JournalEntry, JournalError, TransactionFilter,
    TransactionState,
};
use crate::acquirer::postgres::PgJournal;
use crate::acquirer::schedule::CutoffSchedule;
use crate::acquirer::store::CardJournal;
use crate::messages::{Currency, Money, PaymentId, Timestamp};
use crate::telecollection::centre::{AcceptedBatch, AcquirerTotal, Centre, CentreAnswer};
use crate::telecollection::remittance::{CentreSink, SocketCentre, cut_off_due, remit_batch_to};
use crate::telecollection::server::{CentreAddress, CentreServer, ClientOptions, ServerOptions};

use super::purchase::{JOURNAL_FILE, data_dir, data_dir_path};
use super::{CliError, GlobalArgs};

/// The centre's store's file name in the data directory.
const CENTRE_FILE: &str = "telecollection-centre.sqlite";

/// The schedule `acquirer cutoff` follows without `--schedule`: 22:00 in UTC+01:00,
/// the usual evening telecollection deadline.
const DEFAULT_SCHEDULE: &str = "daily:22:00+01:00";

/// What `--at` accepts, for its error message.
const TIME_FORMS: &str = "an RFC 3339 time, YYYY-MM-DDTHH:MM:SS[.mmm] then Z or +HH:MM / -HH:MM \
     (e.g. 2026-11-25T22:00:00+01:00)";

/// What `--state` accepts, for its error message.
const STATE_FORMS: &str =
    "one of authorised, in-batch, remitted, acknowledged-by-centre, refused, reversed";

/// `telepay acquirer …`.
#[derive(Debug, Subcommand)]
pub(super) enum AcquirerCommand {
    /// List the transactions of the acquirer's journal, oldest first: state, batch,
    /// amount, masked PAN, authorisation code, ATC, payment.
    Journal(JournalArgs),
    /// Cut a remittance batch off now if the schedule says one is due (or --force):
    /// every authorised transaction goes into the next batch, whose totals and SHA-256
    /// are fixed at once.
    Cutoff(CutoffArgs),
    /// Send the batches the centre has not acknowledged (or --batch N) to the
    /// telecollection centre and print each answer; or write one batch's file
    /// (--out). Exits non-zero when a batch is refused or the centre cannot be reached.
    Remit(RemitArgs),
}

/// `telepay telecollection …`.
#[derive(Debug, Subcommand)]
pub(super) enum TelecollectionCommand {
    /// Run the telecollection centre on a socket until SIGINT or SIGTERM. The first
    /// line on standard output is the address listened on (a TCP port 0 picks a free
    /// port); the log goes to standard error.
    Serve(ServeArgs),
    /// List the batches the centre accepted, and the totals per acquirer and currency.
    Batches(BatchesArgs),
}

/// `--data-dir`, as `telepay purchase` takes it.
#[derive(Debug, Args)]
pub(super) struct DataDirArgs {
    /// Where the acquirer's journal (and the centre's store) are kept [default:
    /// $TELEPAY_DATA_DIR, else $XDG_DATA_HOME/telepay, else ~/.local/share/telepay]
    #[arg(long, value_name = "DIR", env = "TELEPAY_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

/// `--store`: the journal in PostgreSQL rather than the data directory's SQLite file.
#[derive(Debug, Args)]
pub(super) struct StoreArgs {
    /// The acquirer's journal in PostgreSQL, shared by `telepay serve acquirer-card`
    /// processes: postgres://USER@/DB?host=/socket/dir or postgres://USER@HOST:PORT/DB
    /// [default: the SQLite journal in the data directory; --store wins over --data-dir]
    #[arg(long, value_name = "POSTGRES_URL")]
    store: Option<String>,
}

/// Arguments of `telepay acquirer journal`.
#[derive(Debug, Args)]
pub(super) struct JournalArgs {
    /// Only transactions in this state: authorised, in-batch, remitted,
    /// acknowledged-by-centre, refused, reversed.
    #[arg(long, value_name = "STATE", value_parser = parse_state)]
    state: Option<TransactionState>,
    /// Only the transactions of this batch.
    #[arg(long, value_name = "N")]
    batch: Option<u64>,
    /// Only this payment (the front-end's payment request id).
    #[arg(long, value_name = "ID")]
    payment: Option<String>,
    /// At most this many (the oldest first).
    #[arg(long, value_name = "N")]
    limit: Option<u64>,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    data: DataDirArgs,
}

/// Arguments of `telepay acquirer cutoff`.
#[derive(Debug, Args)]
pub(super) struct CutoffArgs {
    /// The time of the cut-off [default: now]
    #[arg(long, value_name = "RFC3339", value_parser = parse_time)]
    at: Option<Timestamp>,
    /// When batches are due: daily:HH:MM[+HH:MM] (a time of day in a fixed UTC offset)
    /// or every:MINUTES.
    #[arg(long, value_name = "SCHEDULE", default_value = DEFAULT_SCHEDULE)]
    schedule: CutoffSchedule,
    /// Cut a batch off whatever the schedule says.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    data: DataDirArgs,
}

/// Arguments of `telepay acquirer remit`.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("destination").required(true).args(["centre", "out"]))]
pub(super) struct RemitArgs {
    /// The telecollection centre: tcp:IP:PORT or unix:PATH (its own protocol), or
    /// https://IP:PORT (`telepay serve telecollection`, mutual TLS: with --pki and --as)
    #[arg(long, value_name = "ADDRESS", value_parser = parse_centre)]
    centre: Option<String>,
    /// With an https:// centre: the certificates' directory (`telepay pki init`)
    #[arg(long, value_name = "DIR")]
    pki: Option<PathBuf>,
    /// With an https:// centre: this acquirer's certificate instance (acq1 for
    /// acq1.acquirer-card.telepay)
    #[arg(long = "as", value_name = "INSTANCE")]
    as_peer: Option<String>,
    /// With an https:// centre: the certificate name it must present
    #[arg(
        long,
        value_name = "NAME",
        default_value = "centre.telecollection.telepay"
    )]
    centre_name: String,
    /// Only this batch [default: every batch the centre has not acknowledged]
    #[arg(long, value_name = "N")]
    batch: Option<u64>,
    /// Write batch --batch N to this new file (docs/telecollection.md's format) instead
    /// of sending it; the journal is not changed.
    #[arg(long, value_name = "FILE", requires = "batch")]
    out: Option<PathBuf>,
    /// How long to wait for the centre to connect and to answer, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    timeout: u64,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    data: DataDirArgs,
}

/// Arguments of `telepay telecollection serve`.
#[derive(Debug, Args)]
pub(super) struct ServeArgs {
    /// Where to listen: tcp:IP:PORT (port 0: any free port) or unix:PATH.
    #[arg(long, value_name = "ADDRESS")]
    listen: CentreAddress,
    /// The centre's store (SQLite), created if absent [default:
    /// telecollection-centre.sqlite in the data directory]
    #[arg(long, value_name = "FILE")]
    store: Option<PathBuf>,
    /// Do not log each batch received on standard error.
    #[arg(long, short)]
    quiet: bool,
    #[command(flatten)]
    data: DataDirArgs,
}

/// Arguments of `telepay telecollection batches`.
#[derive(Debug, Args)]
pub(super) struct BatchesArgs {
    /// The centre's store [default: telecollection-centre.sqlite in the data directory]
    #[arg(long, value_name = "FILE")]
    store: Option<PathBuf>,
    #[command(flatten)]
    data: DataDirArgs,
}

/// Runs `telepay acquirer …`.
pub(super) fn acquirer(
    global: &GlobalArgs,
    command: &AcquirerCommand,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    match command {
        AcquirerCommand::Journal(args) => journal(global, args, out),
        AcquirerCommand::Cutoff(args) => cutoff(global, args, out),
        AcquirerCommand::Remit(args) => remit(global, args, out),
    }
}

/// Runs `telepay telecollection …`.
pub(super) fn telecollection(
    global: &GlobalArgs,
    command: &TelecollectionCommand,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    match command {
        TelecollectionCommand::Serve(args) => serve(global, args, out),
        TelecollectionCommand::Batches(args) => batches(global, args, out),
    }
}

// ---------------------------------------------------------------------------------
// Arguments
// ---------------------------------------------------------------------------------

/// Parses `--state`: a transaction state by the name the journal stores.
fn parse_state(text: &str) -> Result<TransactionState, CliError> {
    TransactionState::from_name(text).ok_or_else(|| CliError::BadArgument {
        argument: "--state",
        input: text.to_owned(),
        expected: STATE_FORMS,
    })
}

/// Parses `--at`: RFC 3339 (§5.6) with `Z` or a numeric offset, whole seconds or
/// milliseconds. The offset is taken off to give the UTC instant.
fn parse_time(text: &str) -> Result<Timestamp, CliError> {
    let bad = || CliError::BadArgument {
        argument: "--at",
        input: text.to_owned(),
        expected: TIME_FORMS,
    };
    if text.ends_with('Z') {
        return parse_rfc3339_utc(text).ok_or_else(bad);
    }
    // `±HH:MM` is the last six characters; everything before it is the local time.
    let split = text.len().checked_sub(6).ok_or_else(bad)?;
    let (local, offset) = (
        text.get(..split).ok_or_else(bad)?,
        text.get(split..).ok_or_else(bad)?,
    );
    let sign: i64 = match offset.as_bytes() {
        [b'+', _, _, b':', _, _] => 1,
        [b'-', _, _, b':', _, _] => -1,
        _ => return Err(bad()),
    };
    let two_digits = |part: Option<&str>| -> Option<i64> {
        let part = part?;
        if part.len() == 2 && part.bytes().all(|byte| byte.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    let hours = two_digits(offset.get(1..3)).ok_or_else(bad)?;
    let minutes = two_digits(offset.get(4..6)).ok_or_else(bad)?;
    // RFC 3339 §5.6: time-numoffset's hour is 00–23, its minute 00–59.
    if hours > 23 || minutes > 59 {
        return Err(bad());
    }
    let local = parse_rfc3339_utc(&format!("{local}Z")).ok_or_else(bad)?;
    let offset_millis = sign * (hours * 60 + minutes) * 60_000;
    local
        .0
        .checked_sub(offset_millis)
        .map(Timestamp)
        .ok_or_else(bad)
}

// ---------------------------------------------------------------------------------
// Formatting
// ---------------------------------------------------------------------------------

/// An amount in minor units of an ISO 4217 numeric currency, for people: `2.50 EUR`;
/// a currency telepay does not know is shown by its code, in minor units.
fn format_money(minor: u64, currency: u16) -> String {
    match Currency::from_numeric(currency) {
        Some(known) => Money::new(minor, known).to_string(),
        None => format!("{minor} minor units of currency {currency:03}"),
    }
}

/// The ISO 4217 alphabetic code if telepay knows it, else the numeric one.
fn currency_code(currency: u16) -> String {
    match Currency::from_numeric(currency) {
        Some(known) => known.alpha(),
        None => format!("{currency:03}"),
    }
}

/// Per-currency totals on one line: `5.00 EUR (2), 3 JPY (1)`.
fn format_totals(totals: &[CurrencyTotal]) -> String {
    totals
        .iter()
        .map(|total| {
            format!(
                "{} ({})",
                format_money(total.total_minor, total.currency),
                total.records
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn totals_json(totals: &[CurrencyTotal]) -> Vec<serde_json::Value> {
    totals
        .iter()
        .map(|total| {
            serde_json::json!({
                "currency": total.currency,
                "currency_code": currency_code(total.currency),
                "records": total.records,
                "total_minor": total.total_minor,
                "total": format_money(total.total_minor, total.currency),
            })
        })
        .collect()
}

fn plural(count: u64, one: &str, many: &str) -> String {
    if count == 1 {
        format!("1 {one}")
    } else {
        format!("{count} {many}")
    }
}

// ---------------------------------------------------------------------------------
// The journal
// ---------------------------------------------------------------------------------

/// The system clock, read at the edge only.
fn now() -> Timestamp {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        });
    Timestamp(millis)
}

/// The journal the commands work on, whichever store keeps it.
type AnyJournal = Box<dyn CardJournal>;

/// Opens the PostgreSQL journal `--store` names, else the journal a purchase left in
/// the data directory. A missing SQLite journal is an error rather than a new empty
/// one: it usually means the wrong data directory.
fn open_journal(data: &DataDirArgs, store: &StoreArgs) -> Result<AnyJournal, CliError> {
    if let Some(address) = &store.store {
        return Ok(Box::new(PgJournal::open(address)?));
    }
    let path = data_dir_path(data.data_dir.as_deref())?.join(JOURNAL_FILE);
    if !path.is_file() {
        return Err(CliError::NoJournal { path });
    }
    Ok(Box::new(Journal::open(&path)?))
}

fn entry_json(entry: &JournalEntry) -> serde_json::Value {
    serde_json::json!({
        "seq": entry.seq,
        "payment": entry.payment.0,
        "purchase": entry.purchase,
        "merchant": entry.merchant.0,
        "pan": crate::emv::mask_pan(&entry.pan),
        "pan_sequence": entry.pan_sequence,
        "atc": entry.atc,
        "amount_minor": entry.amount_minor,
        "currency": entry.currency,
        "amount": entry.amount_minor.map(|minor| format_money(minor, entry.currency)),
        "state": entry.state,
        "batch": entry.batch,
        "authorisation_code": entry.authorisation_code,
        "recorded_at": entry.recorded_at.to_string(),
        "updated_at": entry.updated_at.to_string(),
    })
}

/// `telepay acquirer journal`: streamed row by row, as the journal may hold millions.
fn journal(global: &GlobalArgs, args: &JournalArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let journal = open_journal(&args.data, &args.store)?;
    let filter = TransactionFilter {
        state: args.state,
        batch: args.batch,
        payment: args.payment.as_deref().map(PaymentId::from),
        limit: args.limit,
    };
    let mut count: u64 = 0;
    if global.json {
        // One JSON array, one transaction per line: valid JSON, and greppable.
        write!(out, "[")?;
        journal.transactions(&filter, |entry| -> Result<(), CliError> {
            let separator = if count == 0 { "\n  " } else { ",\n  " };
            write!(
                out,
                "{separator}{}",
                serde_json::to_string(&entry_json(&entry))?
            )?;
            count = count.saturating_add(1);
            Ok(())
        })?;
        writeln!(out, "{}]", if count == 0 { "" } else { "\n" })?;
        return Ok(());
    }
    writeln!(
        out,
        "{:>6}  {:<22}  {:>5}  {:>16}  {:<19}  {:<6}  {:>5}  PAYMENT",
        "SEQ", "STATE", "BATCH", "AMOUNT", "PAN", "AUTH", "ATC"
    )?;
    journal.transactions(&filter, |entry| -> Result<(), CliError> {
        writeln!(
            out,
            "{:>6}  {:<22}  {:>5}  {:>16}  {:<19}  {:<6}  {:>5}  {}",
            entry.seq,
            entry.state.as_str(),
            entry
                .batch
                .map_or_else(|| "-".to_owned(), |batch| batch.to_string()),
            entry.amount_minor.map_or_else(
                || "-".to_owned(),
                |minor| format_money(minor, entry.currency)
            ),
            crate::emv::mask_pan(&entry.pan),
            entry.authorisation_code.as_deref().unwrap_or("-"),
            entry.atc,
            entry.payment
        )?;
        count = count.saturating_add(1);
        Ok(())
    })?;
    writeln!(out, "{}", plural(count, "transaction", "transactions"))?;
    Ok(())
}

fn batch_json(summary: &BatchSummary) -> serde_json::Value {
    serde_json::json!({
        "number": summary.number,
        "acquirer": summary.acquirer.0,
        "cut_off_at": summary.cut_off_at.to_string(),
        "state": summary.state.as_str(),
        "records": summary.records,
        "totals": totals_json(&summary.totals),
        "checksum": hex::encode(summary.checksum),
        "bytes": summary.bytes,
    })
}

/// `telepay acquirer cutoff`.
fn cutoff(global: &GlobalArgs, args: &CutoffArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let mut journal = open_journal(&args.data, &args.store)?;
    let now = args.at.unwrap_or_else(now);
    if !args.force && !cut_off_due(&journal, &args.schedule, now)? {
        return not_due(global, &journal, &args.schedule, now, out);
    }
    let Some(summary) = journal.cut_off(now)? else {
        let reason = "no authorised transaction is waiting";
        if global.json {
            let json = serde_json::json!({ "cut": false, "reason": reason, "pending": 0 });
            writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
        } else {
            writeln!(out, "nothing to cut: {reason}")?;
        }
        return Ok(());
    };
    if global.json {
        let json = serde_json::json!({ "cut": true, "batch": batch_json(&summary) });
        writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
        return Ok(());
    }
    writeln!(
        out,
        "batch {} of {} cut off at {}: {}",
        summary.number,
        summary.acquirer,
        summary.cut_off_at,
        plural(summary.records, "record", "records")
    )?;
    for total in &summary.totals {
        writeln!(
            out,
            "  {} {}: {}, {}",
            total.currency,
            currency_code(total.currency),
            plural(total.records, "record", "records"),
            format_money(total.total_minor, total.currency)
        )?;
    }
    writeln!(
        out,
        "  sha256 {} ({} bytes)",
        hex::encode(summary.checksum),
        summary.bytes
    )?;
    Ok(())
}

/// What `cutoff` says when the schedule has no cut-off due: how many transactions
/// wait, and until when.
fn not_due(
    global: &GlobalArgs,
    journal: &AnyJournal,
    schedule: &CutoffSchedule,
    now: Timestamp,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let mut pending: u64 = 0;
    let filter = TransactionFilter {
        state: Some(TransactionState::Authorised),
        ..TransactionFilter::default()
    };
    journal.transactions(&filter, |_| -> Result<(), CliError> {
        pending = pending.saturating_add(1);
        Ok(())
    })?;
    // As `cut_off_due` reckons: from the later of the last cut-off and the oldest
    // transaction waiting.
    let next = match journal.oldest_pending()? {
        Some(oldest) => {
            let since = journal
                .last_cutoff()?
                .map_or(oldest, |last| last.max(oldest));
            Some(schedule.next_cutoff_after(since))
        }
        None => None,
    };
    if global.json {
        let json = serde_json::json!({
            "cut": false,
            "reason": if pending == 0 { "no authorised transaction is waiting" } else { "not due" },
            "pending": pending,
            "schedule": schedule.to_string(),
            "at": now.to_string(),
            "next_cutoff": next.map(|next| next.to_string()),
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
        return Ok(());
    }
    match next {
        Some(next) => writeln!(
            out,
            "nothing to cut yet: {} waiting for the next cut-off at {next} ({schedule}; --force cuts now)",
            plural(pending, "transaction", "transactions")
        )?,
        None => writeln!(out, "nothing to cut: no authorised transaction is waiting")?,
    }
    Ok(())
}

/// One centre answer, for people.
fn describe_answer(batch: u64, answer: &CentreAnswer) -> String {
    match answer {
        CentreAnswer::Accepted(acceptance) => format!(
            "batch {batch}: {} by {} at {}: {}, {}, sha256 {}",
            if acceptance.duplicate {
                "duplicate, already accepted (counted once)"
            } else {
                "accepted"
            },
            acceptance.acquirer,
            acceptance.accepted_at,
            plural(acceptance.records, "record", "records"),
            format_totals(&acceptance.totals),
            acceptance.checksum
        ),
        CentreAnswer::Refused { reason, .. } => format!("batch {batch}: refused: {reason}"),
        CentreAnswer::Unavailable { reason } => {
            format!("batch {batch}: centre unavailable: {reason}")
        }
    }
}

/// `telepay acquirer remit`.
fn remit(global: &GlobalArgs, args: &RemitArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let mut journal = open_journal(&args.data, &args.store)?;
    match (&args.out, args.batch, &args.centre) {
        (Some(path), Some(number), _) => write_batch_file(global, &journal, number, path, out),
        (_, _, Some(centre)) => {
            let options = ClientOptions {
                timeout: std::time::Duration::from_secs(args.timeout),
            };
            match centre.strip_prefix("https://") {
                Some(address) => {
                    let sink = https_centre(args, centre, address)?;
                    send(global, &mut journal, args, &sink, out)
                }
                None => {
                    let address: CentreAddress =
                        centre.parse().map_err(|_| CliError::BadArgument {
                            argument: "--centre",
                            input: centre.clone(),
                            expected: "tcp:IP:PORT, unix:PATH or https://IP:PORT",
                        })?;
                    let sink = SocketCentre {
                        address: &address,
                        options: &options,
                    };
                    send(global, &mut journal, args, &sink, out)
                }
            }
        }
        // clap requires --centre or --out, and --batch with --out.
        _ => Err(CliError::BadArgument {
            argument: "--centre",
            input: String::new(),
            expected: "a centre address (tcp:IP:PORT or unix:PATH), or --out FILE with --batch N",
        }),
    }
}

/// `--centre`: an address of the centre's socket protocol, or `https://IP:PORT`; checked
/// before anything is opened.
fn parse_centre(text: &str) -> Result<String, String> {
    match text.strip_prefix("https://") {
        Some(address) => address
            .trim_end_matches('/')
            .parse::<std::net::SocketAddr>()
            .map(|_| text.to_owned())
            .map_err(|_| format!("{text:?}: expected https://IP:PORT")),
        None => text
            .parse::<CentreAddress>()
            .map(|_| text.to_owned())
            .map_err(|error| format!("{error}, or https://IP:PORT")),
    }
}

/// The centre's HTTPS edge at `address` (`IP:PORT`), called as `--as` of `--pki`.
fn https_centre(
    args: &RemitArgs,
    centre: &str,
    address: &str,
) -> Result<crate::net::centre::HttpsCentre, CliError> {
    use crate::net::pki::{PeerName, ServiceRole};
    let bad = |argument: &'static str, input: &str, expected: &'static str| CliError::BadArgument {
        argument,
        input: input.to_owned(),
        expected,
    };
    let socket: std::net::SocketAddr = address
        .trim_end_matches('/')
        .parse()
        .map_err(|_| bad("--centre", centre, "https://IP:PORT"))?;
    let pki = args.pki.as_deref().ok_or(CliError::MissingArgument {
        argument: "--pki",
        when: "with an https:// centre: this acquirer's certificate and the CA",
    })?;
    let instance = args.as_peer.as_deref().ok_or(CliError::MissingArgument {
        argument: "--as",
        when: "with an https:// centre: this acquirer's certificate instance",
    })?;
    let me = PeerName::new(ServiceRole::CardAcquirer, instance)
        .map_err(|_| bad("--as", instance, "a card acquirer's instance, e.g. acq1"))?;
    let centre_name = PeerName::from_dns_name(&args.centre_name).map_err(|_| {
        bad(
            "--centre-name",
            &args.centre_name,
            "INSTANCE.telecollection.telepay",
        )
    })?;
    let identity = crate::net::tls::TlsIdentity::load(
        &me.cert_path(pki),
        &me.key_path(pki),
        &pki.join("ca.pem"),
    )
    .map_err(|error| CliError::Purchase(format!("the acquirer's certificate: {error}")))?;
    Ok(crate::net::centre::HttpsCentre::new(
        &identity,
        centre_name,
        socket,
        std::env::temp_dir().join(format!("telepay-remit-{}", std::process::id())),
        std::time::Duration::from_secs(args.timeout),
    )?)
}

/// Sends the batches, printing each answer as it comes; the first refusal or
/// unavailability is the command's error, after every batch has been tried.
fn send(
    global: &GlobalArgs,
    journal: &mut AnyJournal,
    args: &RemitArgs,
    centre: &dyn CentreSink,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let address = centre.describe();
    let numbers: Vec<u64> = match args.batch {
        Some(number) => {
            let summary = journal
                .batch(number)?
                .ok_or_else(|| unknown_batch(journal, number))?;
            if summary.state == BatchState::Acknowledged {
                // The journal refuses to mark it sent again, and there is no need: the
                // centre has it. Said plainly rather than as a journal error.
                return already_acknowledged(global, &address, &summary, out);
            }
            vec![number]
        }
        None => journal
            .unacknowledged_batches()?
            .iter()
            .map(|summary| summary.number)
            .collect(),
    };
    let mut answers = Vec::with_capacity(numbers.len());
    let mut failure = None;
    for number in numbers {
        let answer = match remit_batch_to(journal, number, centre, now()) {
            Ok(answer) => answer,
            Err(error) => {
                // No answer: the centre is unreachable or the link broke; the others
                // would fail the same way. What was answered is still shown.
                failure.get_or_insert(CliError::from(error));
                break;
            }
        };
        if !global.json {
            writeln!(out, "{}", describe_answer(number, &answer))?;
            out.flush()?;
        }
        if failure.is_none() {
            failure = match &answer {
                CentreAnswer::Accepted(_) => None,
                CentreAnswer::Refused { line, reason } => Some(CliError::Refused {
                    address: address.clone(),
                    batch: number,
                    line: *line,
                    reason: reason.clone(),
                }),
                CentreAnswer::Unavailable { reason } => Some(CliError::Unavailable {
                    address: address.clone(),
                    batch: number,
                    reason: reason.clone(),
                }),
            };
        }
        answers.push((number, answer));
    }
    if global.json {
        let remitted: Vec<serde_json::Value> = answers
            .iter()
            .map(|(number, answer)| serde_json::json!({ "batch": number, "answer": answer }))
            .collect();
        let json = serde_json::json!({ "centre": address, "remitted": remitted });
        writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
    } else if answers.is_empty() && failure.is_none() {
        writeln!(
            out,
            "nothing to remit: the centre has acknowledged every batch"
        )?;
    }
    match failure {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// The journal's error for a batch number it does not have.
fn unknown_batch(journal: &AnyJournal, number: u64) -> JournalError {
    JournalError::UnknownBatch {
        path: journal.name().to_owned(),
        operation: crate::acquirer::journal::Operation::WriteBatch,
        number,
    }
}

/// `remit --batch N` for a batch the centre has already acknowledged: nothing is sent.
fn already_acknowledged(
    global: &GlobalArgs,
    address: &str,
    summary: &BatchSummary,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let when = summary
        .acknowledged_at
        .map_or_else(|| "an unrecorded time".to_owned(), |at| at.to_string());
    if global.json {
        let json = serde_json::json!({
            "centre": address,
            "remitted": [],
            "already_acknowledged": { "batch": summary.number, "acknowledged_at": when },
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
    } else {
        writeln!(
            out,
            "batch {}: already acknowledged by the centre at {when}; nothing sent",
            summary.number
        )?;
    }
    Ok(())
}

/// `remit --batch N --out FILE`: the batch's file, exactly the bytes a remittance
/// sends. A new file only; removed again if the batch cannot be written whole.
fn write_batch_file(
    global: &GlobalArgs,
    journal: &AnyJournal,
    number: u64,
    path: &Path,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let summary = journal
        .batch(number)?
        .ok_or_else(|| unknown_batch(journal, number))?;
    let file_error = |source| CliError::BatchFile {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(file_error)?;
    let mut writer = std::io::BufWriter::new(file);
    let written = journal
        .write_batch(number, &mut writer)
        .map_err(CliError::from)
        .and_then(|trailer| {
            writer.flush().map_err(file_error)?;
            writer.get_ref().sync_all().map_err(file_error)?;
            Ok(trailer)
        });
    let trailer = match written {
        Ok(trailer) => trailer,
        Err(error) => {
            drop(writer);
            // A partial batch must not lie around looking like one to carry.
            let _ = std::fs::remove_file(path);
            return Err(error);
        }
    };
    if global.json {
        let json = serde_json::json!({
            "batch": number,
            "file": path.display().to_string(),
            "state": summary.state.as_str(),
            "records": trailer.records,
            "totals": totals_json(&trailer.totals),
            "checksum": hex::encode(trailer.checksum),
            "bytes": trailer.bytes,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
        return Ok(());
    }
    writeln!(
        out,
        "batch {number} written to {}: {}, {}, {} bytes, sha256 {}",
        path.display(),
        plural(trailer.records, "record", "records"),
        format_totals(&trailer.totals),
        trailer.bytes,
        hex::encode(trailer.checksum)
    )?;
    if summary.state != BatchState::Acknowledged {
        writeln!(
            out,
            "  the journal still has it {}: `telepay acquirer remit --centre ADDRESS` sends it (the centre counts it once)",
            summary.state
        )?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------
// The centre
// ---------------------------------------------------------------------------------

/// `telepay telecollection serve`.
fn serve(global: &GlobalArgs, args: &ServeArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let store = match &args.store {
        Some(path) => path.clone(),
        None => data_dir(args.data.data_dir.as_deref())?.join(CENTRE_FILE),
    };
    // SIGINT / SIGTERM set the flag the accepting loop polls; the connections in
    // progress then end and the Unix socket file is removed. A second signal while
    // stopping ends the process at once (registered first, so that it sees the flag
    // as the earlier signal left it), with the shell's 128 + signal status.
    let shutdown = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(
            signal,
            128 + signal,
            Arc::clone(&shutdown),
        )
        .map_err(CliError::Signals)?;
        signal_hook::flag::register(signal, Arc::clone(&shutdown)).map_err(CliError::Signals)?;
    }
    let centre = Centre::open(&store)?;
    let options = ServerOptions {
        log: !args.quiet,
        ..ServerOptions::default()
    };
    let server = CentreServer::bind(&args.listen, centre, options)?;
    let address = server.local_address().clone();
    // First thing on standard output, flushed: a script (or a test) starting the
    // centre on port 0 reads where to remit.
    if global.json {
        let json = serde_json::json!({
            "listening": address.to_string(),
            "store": store.display().to_string(),
        });
        writeln!(out, "{}", serde_json::to_string(&json)?)?;
    } else {
        writeln!(out, "{address}")?;
    }
    out.flush()?;
    eprintln!(
        "telepay telecollection: centre listening on {address}, store {}; stop with Ctrl-C or SIGTERM",
        store.display()
    );
    server.run(&shutdown)?;
    drop(server);
    eprintln!("telepay telecollection: centre on {address} stopped");
    Ok(())
}

fn accepted_json(batch: &AcceptedBatch) -> serde_json::Value {
    serde_json::json!({
        "acquirer": batch.acquirer.0,
        "number": batch.number,
        "cut_off_at": batch.cut_off_at.to_string(),
        "records": batch.records,
        "totals": totals_json(&batch.totals),
        "checksum": batch.checksum,
        "bytes": batch.bytes,
        "accepted_at": batch.accepted_at.to_string(),
        "duplicates": batch.duplicates,
    })
}

fn acquirer_total_json(total: &AcquirerTotal) -> serde_json::Value {
    serde_json::json!({
        "acquirer": total.acquirer.0,
        "currency": total.currency,
        "currency_code": currency_code(total.currency),
        "batches": total.batches,
        "records": total.records,
        "total_minor": total.total_minor,
        "total": format_money(total.total_minor, total.currency),
    })
}

/// `telepay telecollection batches`.
fn batches(global: &GlobalArgs, args: &BatchesArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let path = match &args.store {
        Some(path) => path.clone(),
        None => data_dir_path(args.data.data_dir.as_deref())?.join(CENTRE_FILE),
    };
    if !path.is_file() {
        return Err(CliError::NoCentreStore { path });
    }
    let centre = Centre::open(&path)?;
    let accepted = centre.batches()?;
    let totals = centre.totals()?;
    if global.json {
        let json = serde_json::json!({
            "store": path.display().to_string(),
            "batches": accepted.iter().map(accepted_json).collect::<Vec<_>>(),
            "totals": totals.iter().map(acquirer_total_json).collect::<Vec<_>>(),
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
        return Ok(());
    }
    if accepted.is_empty() {
        writeln!(out, "no batch accepted yet ({})", path.display())?;
        return Ok(());
    }
    let width = accepted
        .iter()
        .map(|batch| batch.acquirer.0.chars().count())
        .chain(totals.iter().map(|total| total.acquirer.0.chars().count()))
        .max()
        .unwrap_or(0)
        .max("ACQUIRER".len());
    writeln!(
        out,
        "{:<width$}  {:>6}  {:>7}  {:>10}  {:<24}  TOTALS",
        "ACQUIRER", "BATCH", "RECORDS", "DUPLICATES", "ACCEPTED AT"
    )?;
    for batch in &accepted {
        writeln!(
            out,
            "{:<width$}  {:>6}  {:>7}  {:>10}  {:<24}  {}",
            batch.acquirer.0,
            batch.number,
            batch.records,
            batch.duplicates,
            batch.accepted_at.to_string(),
            format_totals(&batch.totals)
        )?;
    }
    writeln!(out)?;
    writeln!(out, "Totals per acquirer and currency:")?;
    for total in &totals {
        writeln!(
            out,
            "{:<width$}  {}: {}, {}, {}",
            total.acquirer.0,
            currency_code(total.currency),
            plural(total.batches, "batch", "batches"),
            plural(total.records, "record", "records"),
            format_money(total.total_minor, total.currency)
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_accepts_rfc3339_with_z_or_an_offset() {
        // 2026-11-25T21:00:00Z is 1_795_640_400 seconds after the epoch.
        let table: [(&str, i64); 6] = [
            ("2026-11-25T21:00:00Z", 1_795_640_400_000),
            ("2026-11-25T21:00:00.250Z", 1_795_640_400_250),
            ("2026-11-25T22:00:00+01:00", 1_795_640_400_000),
            ("2026-11-25T16:00:00-05:00", 1_795_640_400_000),
            ("2026-11-25T21:00:00+00:00", 1_795_640_400_000),
            ("2026-11-26T02:30:00.500+05:30", 1_795_640_400_500),
        ];
        for (text, millis) in table {
            assert_eq!(parse_time(text).ok(), Some(Timestamp(millis)), "{text}");
        }
    }

    #[test]
    fn at_refuses_anything_else_naming_the_forms() {
        for bad in [
            "",
            "Z",
            "now",
            "2026-11-25",
            "2026-11-25T21:00:00",
            "2026-11-25 21:00:00Z",
            "2026-11-25T21:00Z",
            "2026-11-25T21:00:00+0100",
            "2026-11-25T21:00:00+24:00",
            "2026-11-25T21:00:00+01:60",
            "2026-11-25T21:00:00*01:00",
            "2026-11-25T21:00:00Z+01:00",
            "2026-13-25T21:00:00Z",
            "2026-11-25T21:00:00.5Z",
            "+01:00",
        ] {
            match parse_time(bad) {
                Err(CliError::BadArgument {
                    argument,
                    input,
                    expected,
                }) => assert_eq!(
                    (argument, input.as_str(), expected),
                    ("--at", bad, TIME_FORMS)
                ),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn states_by_their_journal_names() {
        for state in [
            TransactionState::Authorised,
            TransactionState::InBatch,
            TransactionState::Remitted,
            TransactionState::AcknowledgedByCentre,
            TransactionState::Refused,
            TransactionState::Reversed,
        ] {
            assert_eq!(parse_state(state.as_str()).ok(), Some(state));
            assert!(STATE_FORMS.contains(state.as_str()), "{state}");
        }
        match parse_state("Authorised") {
            Err(CliError::BadArgument {
                argument, expected, ..
            }) => assert_eq!((argument, expected), ("--state", STATE_FORMS)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn amounts_in_their_currency() {
        let table: [(u64, u16, &str); 5] = [
            (500, 978, "5.00 EUR"),
            (5, 978, "0.05 EUR"),
            (1_234, 392, "1234 JPY"),
            (0, 840, "0.00 USD"),
            (42, 999, "42 minor units of currency 999"),
        ];
        for (minor, currency, text) in table {
            assert_eq!(format_money(minor, currency), text);
        }
        let totals = [
            CurrencyTotal {
                currency: 392,
                records: 1,
                total_minor: 3,
            },
            CurrencyTotal {
                currency: 978,
                records: 2,
                total_minor: 500,
            },
        ];
        assert_eq!(format_totals(&totals), "3 JPY (1), 5.00 EUR (2)");
    }

    proptest::proptest! {
        /// `--at` never panics, and every instant written as RFC 3339 UTC reads back.
        #[test]
        fn at_never_panics(text in "\\PC{0,32}", millis in 0i64..253_402_300_799_999) {
            let _ = parse_time(&text);
            proptest::prop_assert_eq!(
                parse_time(&Timestamp(millis).to_string()).ok(),
                Some(Timestamp(millis))
            );
        }
    }
}
