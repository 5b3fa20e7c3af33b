//! `telepay session start|pay|end|totals`: a pseudo-session of incremental payment
//! (claim 10) on the command line, with its running totals, overall and per means
//! (claim 6).
//!
//! The open session is `session.json` in the data directory: its name, its user, when
//! it started, the provision asked for it, and every payment made in it. Each
//! `session pay` is a purchase in a process of its own; the front-end that each run
//! builds afresh resumes the session from its log (`frontend-sessions.sqlite`). The
//! session's first wallet payment goes to the wallet acquirer, which reserves a
//! provision with it; the front-end verifies the next ones itself against that
//! provision, signatures included, and keeps them in its log. `session end` asks the
//! front-end to settle them: the acquirer debits exactly their sum and releases the
//! rest.
//!
//! `session.json` is written atomically: a new temporary file in the same directory,
//! mode 0600 from its creation, fsynced, renamed over the old one, then the directory
//! fsynced, so that a crash leaves the old file or the new one, never half of one. Two
//! `session pay` run at the same time are not serialised: the second one's write would
//! lose the first one's entry in the file (not the payment, which the front-end's log
//! and the acquirer keep).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};

use crate::messages::{Currency, Means, Message, Money, PaymentId, SessionId};
use crate::provider::parse_price;
use crate::purchase::{Faults, SystemClock, render};
use crate::terminal::plan::{PaymentOutcome, SessionPayment, SessionTotals, means_name};

use super::purchase::{
    InSession, PaymentMade, PurchaseArgs, data_dir, data_dir_path, network_without_card,
};
use super::{CliError, GlobalArgs};

/// The open session's file name in the data directory.
pub(super) const SESSION_FILE: &str = "session.json";

/// The version of `session.json` this build reads and writes.
const FORMAT: u32 = 1;

/// The largest `session.json` read: a session of tens of thousands of payments.
const MAX_SESSION_FILE_BYTES: u64 = 8 * 1024 * 1024;

/// The provision asked when `session start` names none: 10 units of the service's
/// currency (10.00 EUR), small enough for a wallet reloaded for a demonstration.
const DEFAULT_PROVISION: &str = "10";

/// What a session name may hold: the key store's identifier rule.
const NAME_RULE: &str = "a session name: 1 to 64 of A-Z a-z 0-9 - _ . @";

#[derive(Debug, Subcommand)]
pub(super) enum SessionCommand {
    /// Open the pseudo-session NAME in the data directory (session.json). Refused while
    /// another is open.
    Start(StartArgs),
    /// Buy within the open session: the arguments of `telepay purchase` (the PINs on
    /// standard input in the same order). The session's wallet payments after its
    /// first are verified by the front-end against the provision, without the
    /// acquirer. Prints the session's totals after the purchase.
    Pay(Box<PurchaseArgs>),
    /// End the open session: the front-end settles its wallet payments with the wallet
    /// acquirer, which debits their sum. Prints what was debited and the final totals,
    /// and removes session.json.
    End(DirArgs),
    /// The open session's payments and totals, overall and per means (claim 6).
    Totals(DirArgs),
}

/// Where the session is kept.
#[derive(Debug, Args)]
pub(super) struct DirArgs {
    /// The data directory [default: $TELEPAY_DATA_DIR, else $XDG_DATA_HOME/telepay,
    /// else ~/.local/share/telepay]
    #[arg(long, value_name = "DIR", env = "TELEPAY_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

/// Arguments of `telepay session start`.
#[derive(Debug, Args)]
pub(super) struct StartArgs {
    /// The session's name (1 to 64 of A-Z a-z 0-9 - _ . @).
    name: String,
    /// Who pays in the session when `session pay` is given no --user: the key-store
    /// user (--means wallet) or the payer-configuration user (--means auto).
    #[arg(long, value_name = "ID")]
    user: Option<String>,
    /// The provision the front-end asks of the wallet acquirer with the session's first
    /// wallet payment, in the service's currency, out of what the account has
    /// available; when the session's payments outgrow it, the front-end settles it and
    /// asks another. 0 sends every wallet payment to the acquirer.
    #[arg(long, value_name = "AMOUNT", default_value = DEFAULT_PROVISION)]
    provision: String,
    #[command(flatten)]
    dir: DirArgs,
}

/// `session.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionFile {
    /// [`FORMAT`].
    format: u32,
    /// The session's name.
    name: String,
    /// Who pays by default.
    user: Option<String>,
    /// When it started, RFC 3339 UTC.
    started: String,
    /// The provision, as given.
    provision: String,
    /// The payments made in it, in order.
    payments: Vec<Entry>,
}

/// One payment of the session, as `session pay` recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    /// The front-end's payment request.
    payment: PaymentId,
    /// The means that paid.
    means: Means,
    /// The amount.
    amount: Money,
    /// Who paid.
    user: Option<String>,
    /// Whether the acknowledgement was positive.
    authorised: bool,
}

impl From<PaymentMade> for Entry {
    fn from(made: PaymentMade) -> Entry {
        Entry {
            payment: made.payment,
            means: made.means,
            amount: made.amount,
            user: made.user,
            authorised: made.authorised,
        }
    }
}

/// Runs `telepay session ...`.
pub(super) fn session(
    global: &GlobalArgs,
    command: &SessionCommand,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    match command {
        SessionCommand::Start(args) => start(global, args, out),
        SessionCommand::Pay(args) => pay(global, args, out),
        SessionCommand::End(args) => end(global, args, out),
        SessionCommand::Totals(args) => totals(global, args, out),
    }
}

/// The name of the session open in `dir`, if one is (and its file reads).
pub(super) fn open_session_name(dir: &Path) -> Option<String> {
    read(&dir.join(SESSION_FILE))
        .ok()
        .flatten()
        .map(|file| file.name)
}

fn start(global: &GlobalArgs, args: &StartArgs, out: &mut dyn Write) -> Result<(), CliError> {
    if !valid_name(&args.name) {
        return Err(CliError::BadArgument {
            argument: "NAME",
            input: args.name.clone(),
            expected: NAME_RULE,
        });
    }
    // The amount's form; its currency is the service's, known at each payment (the
    // euro has as many decimals as any currency telepay knows).
    if parse_price(&args.provision, Currency::EUR).is_err() {
        return Err(CliError::BadArgument {
            argument: "--provision",
            input: args.provision.clone(),
            expected: "an amount such as 10.00, in the currency of the services bought",
        });
    }
    let dir = data_dir(args.dir.data_dir.as_deref())?;
    let path = dir.join(SESSION_FILE);
    if let Some(open) = read(&path)? {
        return Err(CliError::SessionAlreadyOpen {
            name: open.name,
            started: open.started,
            path,
        });
    }
    let file = SessionFile {
        format: FORMAT,
        name: args.name.clone(),
        user: args.user.clone(),
        started: super::now_rfc3339(),
        provision: args.provision.clone(),
        payments: Vec::new(),
    };
    write(&path, &file)?;
    if global.json {
        let json = serde_json::json!({
            "session": file.name,
            "user": file.user,
            "started": file.started,
            "provision": file.provision,
            "file": path.display().to_string(),
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
    } else {
        writeln!(
            out,
            "session {} started {}{}, provision {} ({})",
            file.name,
            file.started,
            file.user
                .as_deref()
                .map(|user| format!(" for {user}"))
                .unwrap_or_default(),
            file.provision,
            path.display()
        )?;
    }
    Ok(())
}

fn pay(global: &GlobalArgs, args: &PurchaseArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let dir = data_dir(args.data_dir())?;
    let path = dir.join(SESSION_FILE);
    let Some(mut file) = read(&path)? else {
        return Err(CliError::NoSession { path });
    };
    let session = InSession {
        name: &file.name,
        user: file.user.as_deref(),
        provision: &file.provision,
    };
    let ran = super::purchase::run(global, args, Some(session), out)?;
    if let Some(payment) = ran.payment {
        file.payments.push(Entry::from(payment));
        write(&path, &file)?;
    }
    // As text, after the purchase's own text (`telepay session totals --json` gives
    // them as JSON).
    write_totals(out, &file, &summarise(&file, &path)?)?;
    ran.outcome
}

fn totals(global: &GlobalArgs, args: &DirArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let path = data_dir_path(args.data_dir.as_deref())?.join(SESSION_FILE);
    let Some(file) = read(&path)? else {
        return Err(CliError::NoSession { path });
    };
    let summary = summarise(&file, &path)?;
    if global.json {
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&totals_json(&file, &summary))?
        )?;
    } else {
        write_totals(out, &file, &summary)?;
    }
    Ok(())
}

fn end(global: &GlobalArgs, args: &DirArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let dir = data_dir_path(args.data_dir.as_deref())?;
    let path = dir.join(SESSION_FILE);
    let Some(file) = read(&path)? else {
        return Err(CliError::NoSession { path });
    };
    let summary = summarise(&file, &path)?;
    let mut network = network_without_card(global, dir)?;
    network.open_session(SessionId::from(file.name.as_str()));
    let ended = network
        .end_session(SystemClock, Faults::none())
        .map_err(|error| CliError::Purchase(error.to_string()))?;
    let closed = ended.closed.ok_or_else(|| CliError::SessionNotClosed {
        name: file.name.clone(),
    })?;
    // What the acquirer refused at settlement (a payment the front-end admitted but
    // the account no longer allows), with why.
    let refused: Vec<(PaymentId, String)> = ended
        .log
        .entries
        .iter()
        .filter_map(|entry| match &entry.envelope.message {
            Message::SettlementResult(result) => Some(result.refused.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    if global.json {
        let mut json = totals_json(&file, &summary);
        if let Some(object) = json.as_object_mut() {
            object.insert(
                "closed".to_owned(),
                serde_json::json!({
                    "wallet_payments": closed.payments,
                    "debited": closed.debited.map(|debited| debited.to_string()),
                    "settled": closed.settled,
                    "refused": refused
                        .iter()
                        .map(|(payment, reason)| serde_json::json!({
                            "payment": payment.0,
                            "reason": reason,
                        }))
                        .collect::<Vec<_>>(),
                }),
            );
        }
        writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
    } else {
        write!(out, "{}", render::text(&ended.log))?;
        let payments = format!(
            "{} wallet payment{}",
            closed.payments,
            if closed.payments == 1 { "" } else { "s" }
        );
        if closed.settled {
            writeln!(
                out,
                "session {} closed: {payments}, {} debited",
                file.name,
                closed
                    .debited
                    .map_or_else(|| "nothing".to_owned(), |debited| debited.to_string())
            )?;
        } else {
            writeln!(
                out,
                "session {} closed: {payments}, settlement pending: the front-end keeps the payments; `telepay session start {}` then `telepay session end` settles them",
                file.name, file.name
            )?;
        }
        for (payment, reason) in &refused {
            writeln!(out, "  refused at settlement: {payment}: {reason}")?;
        }
        write_totals(out, &file, &summary)?;
    }
    std::fs::remove_file(&path).map_err(|source| CliError::SessionFile {
        path: path.clone(),
        source,
    })?;
    Ok(())
}

/// Whether `name` follows [`NAME_RULE`].
fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.chars().count())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
}

/// The session's totals: what `session.json` records, counted by the payer device's
/// rules ([`SessionTotals`]: authorised payments only, each once).
struct Summary {
    totals: SessionTotals,
    /// Authorised payments, per means in [`Means::ALL`] order.
    counted: [usize; 2],
    /// Payments refused by the acquirer or the front-end.
    refused: usize,
}

fn means_index(means: Means) -> usize {
    match means {
        Means::BankCard => 0,
        Means::VirtualWallet => 1,
    }
}

fn summarise(file: &SessionFile, path: &Path) -> Result<Summary, CliError> {
    let mut summary = Summary {
        totals: SessionTotals::new(),
        counted: [0; 2],
        refused: 0,
    };
    for entry in &file.payments {
        let payment = SessionPayment {
            payment: entry.payment.clone(),
            means: entry.means,
            amount: entry.amount,
            outcome: if entry.authorised {
                PaymentOutcome::Completed
            } else {
                PaymentOutcome::Refused
            },
        };
        let counted =
            summary
                .totals
                .record(&payment)
                .map_err(|error| CliError::SessionFileContent {
                    path: path.to_owned(),
                    reason: error.to_string(),
                })?;
        match counted {
            crate::terminal::plan::Counted::Added => {
                if let Some(slot) = summary.counted.get_mut(means_index(entry.means)) {
                    *slot = slot.saturating_add(1);
                }
            }
            crate::terminal::plan::Counted::NotCounted => {
                summary.refused = summary.refused.saturating_add(1);
            }
            crate::terminal::plan::Counted::AlreadyCounted => {}
        }
    }
    Ok(summary)
}

/// `3 payments` / `1 payment`.
fn payments_text(count: usize) -> String {
    format!("{count} payment{}", if count == 1 { "" } else { "s" })
}

/// The amounts, one per currency joined by ` + `; `nothing` when there is none.
fn amounts_text(amounts: &[Money]) -> String {
    if amounts.is_empty() {
        return "nothing".to_owned();
    }
    amounts
        .iter()
        .map(Money::to_string)
        .collect::<Vec<_>>()
        .join(" + ")
}

/// The overall totals, one amount per currency.
fn overall(totals: &SessionTotals) -> Vec<Money> {
    totals
        .currencies()
        .into_iter()
        .map(|currency| totals.total(currency))
        .collect()
}

/// What `means` paid, one amount per currency it paid in.
fn by_means(totals: &SessionTotals, means: Means) -> Vec<Money> {
    totals
        .currencies()
        .into_iter()
        .map(|currency| totals.total_by(means, currency))
        .filter(|amount| !amount.is_zero())
        .collect()
}

fn write_totals(
    out: &mut dyn Write,
    file: &SessionFile,
    summary: &Summary,
) -> Result<(), CliError> {
    let counted = summary.counted.iter().sum();
    writeln!(
        out,
        "session {}{}, started {}: {}, {}",
        file.name,
        file.user
            .as_deref()
            .map(|user| format!(" ({user})"))
            .unwrap_or_default(),
        file.started,
        payments_text(counted),
        amounts_text(&overall(&summary.totals))
    )?;
    for means in Means::ALL {
        let count = summary
            .counted
            .get(means_index(means))
            .copied()
            .unwrap_or(0);
        let paid = by_means(&summary.totals, means);
        if paid.is_empty() {
            writeln!(out, "  {}: nothing", means_name(means))?;
        } else {
            writeln!(
                out,
                "  {}: {} ({})",
                means_name(means),
                amounts_text(&paid),
                payments_text(count)
            )?;
        }
    }
    if summary.refused > 0 {
        writeln!(
            out,
            "  refused, not counted: {}",
            payments_text(summary.refused)
        )?;
    }
    for entry in &file.payments {
        writeln!(
            out,
            "  {}  {:<14}  {:>12}  {}{}",
            entry.payment,
            means_name(entry.means),
            entry.amount.to_string(),
            if entry.authorised {
                "authorised"
            } else {
                "refused"
            },
            entry
                .user
                .as_deref()
                .map(|user| format!(" ({user})"))
                .unwrap_or_default()
        )?;
    }
    Ok(())
}

fn totals_json(file: &SessionFile, summary: &Summary) -> serde_json::Value {
    let strings =
        |amounts: Vec<Money>| -> Vec<String> { amounts.iter().map(Money::to_string).collect() };
    let means: serde_json::Map<String, serde_json::Value> = Means::ALL
        .into_iter()
        .map(|means| {
            (
                means.name().to_owned(),
                serde_json::json!({
                    "payments": summary.counted.get(means_index(means)).copied().unwrap_or(0),
                    "paid": strings(by_means(&summary.totals, means)),
                }),
            )
        })
        .collect();
    serde_json::json!({
        "session": file.name,
        "user": file.user,
        "started": file.started,
        "provision": file.provision,
        "payments": file.payments.iter().map(|entry| serde_json::json!({
            "payment": entry.payment.0,
            "means": entry.means.name(),
            "amount": entry.amount.to_string(),
            "user": entry.user,
            "authorised": entry.authorised,
        })).collect::<Vec<_>>(),
        "totals": {
            "payments": summary.counted.iter().sum::<usize>(),
            "refused": summary.refused,
            "overall": strings(overall(&summary.totals)),
            "by_means": means,
        },
    })
}

/// The session file at `path`; `None` when there is none.
fn read(path: &Path) -> Result<Option<SessionFile>, CliError> {
    let io_error = |source| CliError::SessionFile {
        path: path.to_owned(),
        source,
    };
    let content = |reason: String| CliError::SessionFileContent {
        path: path.to_owned(),
        reason,
    };
    let handle = match std::fs::File::open(path) {
        Ok(handle) => handle,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(io_error(error)),
    };
    let mut bytes = Vec::new();
    handle
        .take(MAX_SESSION_FILE_BYTES.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io_error)?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > MAX_SESSION_FILE_BYTES {
        return Err(content(format!(
            "larger than {MAX_SESSION_FILE_BYTES} bytes"
        )));
    }
    let file: SessionFile = serde_json::from_slice(&bytes)
        .map_err(|error| content(format!("not a telepay session file: {error}")))?;
    if file.format != FORMAT {
        return Err(content(format!(
            "format {} is not supported (this build reads {FORMAT})",
            file.format
        )));
    }
    if !valid_name(&file.name) {
        return Err(content(format!(
            "name {:?}: expected {NAME_RULE}",
            file.name
        )));
    }
    Ok(Some(file))
}

/// Writes `file` at `path` atomically: a new temporary file beside it (0600 from its
/// creation), written and fsynced, renamed over `path`, the directory fsynced. A
/// failure leaves the old file as it was and removes the temporary one.
fn write(path: &Path, file: &SessionFile) -> Result<(), CliError> {
    let io_error = |at: &Path| {
        let at = at.to_owned();
        move |source| CliError::SessionFile { path: at, source }
    };
    let mut bytes = serde_json::to_vec_pretty(file)?;
    bytes.push(b'\n');
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    };
    let suffix = super::random_bytes::<6>()?;
    let temporary = directory.join(format!(".{SESSION_FILE}.{}.tmp", hex::encode(suffix)));
    let written = write_new(&temporary, &bytes)
        .map_err(io_error(&temporary))
        .and_then(|()| std::fs::rename(&temporary, path).map_err(io_error(path)));
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written?;
    sync_directory(&directory).map_err(io_error(&directory))
}

fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut handle = options.open(path)?;
    handle.write_all(bytes)?;
    handle.sync_all()
}

#[cfg(unix)]
fn sync_directory(directory: &Path) -> std::io::Result<()> {
    std::fs::File::open(directory).and_then(|handle| handle.sync_all())
}

#[cfg(not(unix))]
fn sync_directory(_directory: &Path) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eur(minor: u64) -> Money {
        Money::new(minor, Currency::EUR)
    }

    fn entry(payment: &str, means: Means, amount: Money, authorised: bool) -> Entry {
        Entry {
            payment: PaymentId::from(payment),
            means,
            amount,
            user: Some("alice".into()),
            authorised,
        }
    }

    fn file(payments: Vec<Entry>) -> SessionFile {
        SessionFile {
            format: FORMAT,
            name: "evening".into(),
            user: Some("alice".into()),
            started: "2026-05-01T20:00:00Z".into(),
            provision: "10".into(),
            payments,
        }
    }

    #[test]
    fn session_names_follow_the_identifier_rule() {
        for good in ["evening", "a", "x.y-z_1@2", &"n".repeat(64)] {
            assert!(valid_name(good), "{good}");
        }
        for bad in ["", "with space", "slash/", "é", &"n".repeat(65)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn the_totals_count_authorised_payments_once_per_means() {
        let wallet = Means::VirtualWallet;
        let card = Means::BankCard;
        let session = file(vec![
            entry("P-1", wallet, eur(250), true),
            entry("P-2", card, eur(120), true),
            entry("P-3", wallet, eur(50), false),
            entry("P-4", wallet, eur(390), true),
            // The same payment written twice counts once.
            entry("P-4", wallet, eur(390), true),
        ]);
        let summary = summarise(&session, Path::new("session.json")).unwrap();
        assert_eq!(summary.counted, [1, 2]);
        assert_eq!(summary.refused, 1);
        assert_eq!(overall(&summary.totals), [eur(760)]);
        assert_eq!(by_means(&summary.totals, wallet), [eur(640)]);
        let mut text = Vec::new();
        write_totals(&mut text, &session, &summary).unwrap();
        let text = String::from_utf8(text).unwrap();
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some("session evening (alice), started 2026-05-01T20:00:00Z: 3 payments, 7.60 EUR")
        );
        assert_eq!(lines.next(), Some("  bank card: 1.20 EUR (1 payment)"));
        assert_eq!(
            lines.next(),
            Some("  virtual wallet: 6.40 EUR (2 payments)")
        );
        assert_eq!(lines.next(), Some("  refused, not counted: 1 payment"));
        let json = totals_json(&session, &summary);
        assert_eq!(json["totals"]["payments"], 3);
        assert_eq!(json["totals"]["overall"][0], "7.60 EUR");
        assert_eq!(
            json["totals"]["by_means"]["virtual-wallet"]["paid"][0],
            "6.40 EUR"
        );
    }

    #[test]
    fn a_payment_recorded_twice_with_another_amount_is_refused_with_the_file() {
        let session = file(vec![
            entry("P-1", Means::VirtualWallet, eur(250), true),
            entry("P-1", Means::VirtualWallet, eur(999), true),
        ]);
        match summarise(&session, Path::new("/data/session.json")) {
            Err(CliError::SessionFileContent { path, reason }) => {
                assert_eq!(path, Path::new("/data/session.json"));
                assert!(reason.contains("P-1"), "{reason}");
            }
            other => panic!("{:?}", other.map(|summary| summary.counted)),
        }
    }

    #[test]
    fn the_file_round_trips_and_a_foreign_one_is_refused_by_name() {
        let dir = std::env::temp_dir().join(format!(
            "telepay-session-unit-{}-{}",
            std::process::id(),
            line!()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(SESSION_FILE);
        assert!(read(&path).unwrap().is_none());
        let written = file(vec![entry("P-1", Means::VirtualWallet, eur(250), true)]);
        write(&path, &written).unwrap();
        assert_eq!(read(&path).unwrap(), Some(written));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Nothing but the file is left in the directory: the temporary was renamed.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        let table: [(&str, &str); 4] = [
            ("{", "not a telepay session file"),
            (
                r#"{"format":2,"name":"e","user":null,"started":"","provision":"1","payments":[]}"#,
                "format 2 is not supported (this build reads 1)",
            ),
            (
                r#"{"format":1,"name":"a/b","user":null,"started":"","provision":"1","payments":[]}"#,
                "name \"a/b\": expected a session name",
            ),
            (
                r#"{"format":1,"name":"e","user":null,"started":"","provision":"1","payments":[],"x":1}"#,
                "unknown field `x`",
            ),
        ];
        for (text, expected) in table {
            std::fs::write(&path, text).unwrap();
            match read(&path) {
                Err(CliError::SessionFileContent { path: at, reason }) => {
                    assert_eq!(at, path);
                    assert!(reason.contains(expected), "{text}: {reason}");
                }
                other => panic!("{text}: {:?}", other.map(|file| file.map(|file| file.name))),
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
