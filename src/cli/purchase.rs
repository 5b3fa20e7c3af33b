//! `telepay purchase` and `telepay catalogue`: the patent's purchase flow A–K with every
//! party embedded, and the demo catalogue it sells from.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;
use zeroize::Zeroizing;

use crate::acquirer::journal::{Journal, JournalError};
use crate::frontend::{Entropy, SeededEntropy, SystemEntropy};
use crate::messages::{
    AccountBalance, Delivery, Failure, PaymentService, PostalAddress, ServiceId, ServiceKind,
};
use crate::provider::{Catalogue, CatalogueError, ServiceServer, format_price, parse_price};
use crate::purchase::embedded::{Embedded, test_rules};
use crate::purchase::{Faults, SystemClock, render};
use crate::reader::ReaderUri;
use crate::reader::uri::SimUri;
use crate::terminal::card_module::{CardModule, TerminalData};
use crate::terminal::client::RequestResult;
use crate::terminal::payer::{PayerUser, PaymentState, Solicitation};

use super::{CliError, GlobalArgs, open_powered_uri, read_pin_from_stdin};

/// The journal's file name in the data directory.
pub(super) const JOURNAL_FILE: &str = "acquirer-journal.sqlite";

/// Arguments of `telepay purchase`.
#[derive(Debug, Args)]
pub(super) struct PurchaseArgs {
    /// The service to buy, by its catalogue id [default: the catalogue's first paid item]
    #[arg(long, value_name = "ID")]
    service: Option<String>,
    /// The catalogue to sell from (TOML, docs/catalogue.md) [default: the demo catalogue]
    #[arg(long, value_name = "FILE")]
    catalogue: Option<PathBuf>,
    /// Read the PIN from the first line of standard input instead of prompting.
    #[arg(long)]
    pin_stdin: bool,
    /// Write the exchanges as a Mermaid sequence diagram to this file.
    #[arg(long, value_name = "FILE")]
    diagram: Option<PathBuf>,
    /// Where the acquirer's journal and the software card's counters are kept
    /// [default: $TELEPAY_DATA_DIR, else $XDG_DATA_HOME/telepay, else
    /// ~/.local/share/telepay]
    #[arg(long, value_name = "DIR", env = "TELEPAY_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Draw the front-end's nonces from this seed instead of the system's random source,
    /// so that a purchase is the same card dialogue each time (to record it and replay
    /// it with --reader replay:FILE the same day, each run with a fresh --data-dir).
    /// Never for real payments: the card's unpredictable number becomes predictable.
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// Delivery address for physical goods: "NAME;STREET;POSTCODE;TOWN;COUNTRY"
    /// (country as two letters, e.g. FR).
    #[arg(long, value_name = "ADDRESS")]
    deliver_to: Option<String>,
    /// Pay this bill (a payment service, claim 17) [default service: the catalogue's
    /// first bill-payment item]
    #[arg(long, value_name = "REFERENCE", conflicts_with_all = ["account", "deliver_to"])]
    bill: Option<String>,
    /// Reload this account (a payment service, claim 17) by --amount [default service:
    /// the catalogue's first account-reload item]
    #[arg(
        long,
        value_name = "NUMBER",
        requires = "amount",
        conflicts_with = "deliver_to"
    )]
    account: Option<String>,
    /// The reload's amount, e.g. 20.00, in the service's currency
    #[arg(long, value_name = "AMOUNT", requires = "account")]
    amount: Option<String>,
}

/// Arguments of `telepay catalogue`.
#[derive(Debug, Args)]
pub(super) struct CatalogueArgs {
    /// The catalogue to list [default: the demo catalogue]
    #[arg(long, value_name = "FILE")]
    catalogue: Option<PathBuf>,
}

fn load_catalogue(path: Option<&Path>) -> Result<Catalogue, CliError> {
    match path {
        Some(path) => Catalogue::load(path),
        None => Catalogue::demo(),
    }
    .map_err(|error: CatalogueError| CliError::Purchase(error.to_string()))
}

/// `telepay catalogue`: the items, their kinds and prices.
pub(super) fn catalogue(
    global: &GlobalArgs,
    args: &CatalogueArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let catalogue = load_catalogue(args.catalogue.as_deref())?;
    if global.json {
        let items: Vec<serde_json::Value> = catalogue
            .items()
            .iter()
            .map(|item| {
                serde_json::json!({
                    "id": item.id().0,
                    "designation": item.designation(),
                    "kind": item.kind(),
                    // Null for a payment service: the bill or the reload sets the price.
                    "price": item.fixed_price().map(format_price),
                    "currency": item.currency().alpha(),
                    "validity_seconds": item.validity_seconds(),
                    "deliver_with_quote": item.deliver_with_quote(),
                    "available": item.available(),
                    "identification_required": item.identification_required(),
                    "bills": item.bills().iter().map(|bill| serde_json::json!({
                        "reference": bill.reference(),
                        "amount": format_price(bill.amount()),
                        "description": bill.description(),
                    })).collect::<Vec<_>>(),
                    "reload": item.reload_range().map(|(min, max)| serde_json::json!({
                        "min": format_price(min),
                        "max": format_price(max),
                    })),
                    "accounts": item.accounts().iter().map(|account| serde_json::json!({
                        "number": account.number(),
                        "prepaid": account.is_prepaid(),
                        "balance": format_price(account.balance()),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&items)?)?;
        return Ok(());
    }
    writeln!(out, "{} ({})", catalogue.provider(), catalogue.origin())?;
    for item in catalogue.items() {
        let mut notes = Vec::new();
        if item.deliver_with_quote() {
            notes.push("delivered with the quote (Fig. 7)".to_owned());
        }
        if item.identification_required() {
            notes.push("identified customers only".to_owned());
        }
        if !item.bills().is_empty() {
            let bills: Vec<String> = item
                .bills()
                .iter()
                .map(|bill| format!("{} {}", bill.reference(), bill.amount()))
                .collect();
            notes.push(format!("bills: {}", bills.join(", ")));
        }
        if let Some((min, max)) = item.reload_range() {
            let accounts: Vec<String> = item
                .accounts()
                .iter()
                .map(|account| {
                    format!(
                        "{} ({})",
                        account.number(),
                        if account.is_prepaid() {
                            "prepaid"
                        } else {
                            "not prepaid"
                        }
                    )
                })
                .collect();
            notes.push(format!(
                "reload {min} to {max}, accounts: {}",
                accounts.join(", ")
            ));
        }
        if !item.available() {
            notes.push("unavailable".to_owned());
        }
        writeln!(
            out,
            "  {:<24} {:>10}  {:<14} {}{}",
            item.id(),
            match item.fixed_price() {
                Some(price) if price.is_zero() => "free".to_owned(),
                Some(price) => price.to_string(),
                None if !item.bills().is_empty() => "per bill".to_owned(),
                None => "chosen".to_owned(),
            },
            item.kind().name(),
            item.designation(),
            if notes.is_empty() {
                String::new()
            } else {
                format!(" [{}]", notes.join(", "))
            }
        )?;
    }
    Ok(())
}

/// The data directory, created if absent: `explicit` (`--data-dir`, which clap also
/// fills from `TELEPAY_DATA_DIR`), else `$XDG_DATA_HOME/telepay`, else
/// `~/.local/share/telepay`. Shared with `telepay acquirer` and `telepay telecollection`.
pub(super) fn data_dir(explicit: Option<&Path>) -> Result<PathBuf, CliError> {
    let dir = data_dir_path(explicit)?;
    std::fs::create_dir_all(&dir).map_err(|source| CliError::DataDir {
        path: dir.clone(),
        source,
    })?;
    Ok(dir)
}

/// The data directory as [`data_dir`] finds it, without creating it: for commands that
/// only read what a purchase left there.
pub(super) fn data_dir_path(explicit: Option<&Path>) -> Result<PathBuf, CliError> {
    if let Some(dir) = explicit {
        return Ok(dir.to_owned());
    }
    match std::env::var_os("XDG_DATA_HOME").filter(|value| !value.is_empty()) {
        Some(base) => Ok(PathBuf::from(base).join("telepay")),
        None => match std::env::var_os("HOME").filter(|value| !value.is_empty()) {
            Some(home) => Ok(PathBuf::from(home).join(".local/share/telepay")),
            None => Err(CliError::NoDataDir),
        },
    }
}

fn parse_address(text: &str) -> Result<PostalAddress, CliError> {
    let parts: Vec<&str> = text.split(';').map(str::trim).collect();
    let [name, street, postcode, town, country] = parts.as_slice() else {
        return Err(CliError::BadArgument {
            argument: "--deliver-to",
            input: text.to_owned(),
            expected: "five fields separated by ';': NAME;STREET;POSTCODE;TOWN;COUNTRY",
        });
    };
    Ok(PostalAddress {
        name: (*name).to_owned(),
        lines: vec![(*street).to_owned()],
        postcode: (*postcode).to_owned(),
        town: (*town).to_owned(),
        country: (*country).to_owned(),
    })
}

/// The person at the terminal: shows the payment, takes the PIN from standard input or
/// a prompt that does not echo.
struct TerminalUser {
    pin_stdin: bool,
    /// The PIN read from standard input, for a second card transaction of the run.
    stdin_pin: Option<Zeroizing<String>>,
    /// Where the PIN came from failed: the purchase stops with this.
    failure: Option<String>,
}

impl PayerUser for TerminalUser {
    fn confirm(&mut self, solicitation: Solicitation<'_>) -> bool {
        match solicitation {
            Solicitation::Payment(request) => eprintln!(
                "payment request: {} for \"{}\" (valid until {})",
                request.amount, request.designation, request.valid_until
            ),
            Solicitation::Identification(request) => eprintln!(
                "identification request: {} asks who you are, for \"{}\"",
                request.merchant, request.purpose
            ),
        }
        true
    }

    fn pin(&mut self, _solicitation: Solicitation<'_>) -> Option<Zeroizing<String>> {
        let read = if self.pin_stdin {
            // Standard input holds one PIN; a purchase that asks twice (identification,
            // then payment) gets the same one, kept zeroizing for this run only.
            match &self.stdin_pin {
                Some(pin) => Ok(pin.clone()),
                None => read_pin_from_stdin()
                    .inspect(|pin| self.stdin_pin = Some(pin.clone()))
                    .map_err(|error| error.to_string()),
            }
        } else {
            rpassword::prompt_password("PIN: ")
                .map(Zeroizing::new)
                .map_err(|error| format!("cannot read the PIN from the terminal: {error}"))
        };
        match read {
            Ok(pin) => Some(pin),
            Err(why) => {
                self.failure = Some(why);
                None
            }
        }
    }
}

/// The front-end's nonces: the system's, or a seeded sequence (`--seed`).
enum CliEntropy {
    System(SystemEntropy),
    Seeded(SeededEntropy),
}

impl Entropy for CliEntropy {
    fn nonce(&mut self) -> [u8; 16] {
        match self {
            CliEntropy::System(entropy) => entropy.nonce(),
            CliEntropy::Seeded(entropy) => entropy.nonce(),
        }
    }
}

/// `telepay purchase`: A–K with every party in this process.
pub(super) fn purchase(
    global: &GlobalArgs,
    args: &PurchaseArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let catalogue = load_catalogue(args.catalogue.as_deref())?;
    // A payment service is bought from an item of its kind; anything else from the first
    // paid item.
    let wanted_kind = match (&args.bill, &args.account) {
        (Some(_), _) => Some(ServiceKind::BillPayment),
        (None, Some(_)) => Some(ServiceKind::AccountReload),
        (None, None) => None,
    };
    let service = match &args.service {
        Some(id) => ServiceId::from(id.as_str()),
        None => catalogue
            .items()
            .iter()
            .find(|item| {
                item.available()
                    && match wanted_kind {
                        Some(kind) => item.kind() == kind,
                        None => !item.is_free(),
                    }
            })
            .map(|item| item.id().clone())
            .ok_or_else(|| {
                CliError::Purchase(match wanted_kind {
                    Some(kind) => format!("the catalogue has no {} item on sale", kind.name()),
                    None => "the catalogue has no paid item".into(),
                })
            })?,
    };
    let payment_service = match (&args.bill, &args.account, &args.amount) {
        (Some(reference), _, _) => Some(PaymentService::Bill {
            reference: reference.clone(),
        }),
        (None, Some(account), Some(amount)) => {
            let currency = catalogue
                .get(&service)
                .map(|item| item.currency())
                .ok_or_else(|| {
                    CliError::Purchase(format!("no service `{service}` in the catalogue"))
                })?;
            let amount = parse_price(amount, currency).map_err(|_| CliError::BadArgument {
                argument: "--amount",
                input: amount.clone(),
                expected: "an amount such as 20.00, in the service's currency",
            })?;
            Some(PaymentService::Reload {
                account: account.clone(),
                amount,
            })
        }
        _ => None,
    };
    let address = args.deliver_to.as_deref().map(parse_address).transpose()?;
    let dir = data_dir(args.data_dir.as_deref())?;
    // The software card keeps its counters next to the journal, so that a second
    // purchase does not replay the first one's ATC (the acquirer would refuse it).
    let uri = global.reader.clone().unwrap_or_else(|| {
        ReaderUri::Sim(SimUri {
            profile: "cb".into(),
            state: Some(dir.join("sim-cb.state")),
            seed: None,
        })
    });
    let journal_path = dir.join(JOURNAL_FILE);
    let journal = Journal::open(&journal_path)
        .map_err(|error: JournalError| CliError::Purchase(error.to_string()))?;
    let rules = test_rules().map_err(|error| CliError::Purchase(error.to_string()))?;
    let transport = open_powered_uri(global, &uri)?;
    let card = CardModule::new(transport, TerminalData::france());
    let user = TerminalUser {
        pin_stdin: args.pin_stdin,
        stdin_pin: None,
        failure: None,
    };
    let mut entropy = match args.seed {
        Some(seed) => CliEntropy::Seeded(SeededEntropy::new(seed)),
        None => CliEntropy::System(SystemEntropy),
    };
    // The journal outlives this process: each run names its purchases afresh.
    let run_id = hex::encode_upper(&entropy.nonce()[..4]);
    let mut network = Embedded::new(
        ServiceServer::new(catalogue),
        rules,
        journal,
        card,
        user,
        entropy,
        format!("P-{run_id}"),
    );
    let run = match payment_service {
        Some(payment_service) => {
            network.pay_service(&service, payment_service, SystemClock, Faults::none())
        }
        None => network.purchase(&service, address, SystemClock, Faults::none()),
    }
    .map_err(|error| CliError::Purchase(error.to_string()))?;

    write!(out, "{}", render::text(&run.log))?;
    if let Some(path) = &args.diagram {
        std::fs::write(path, render::mermaid(&run.log)).map_err(|error| {
            CliError::Purchase(format!(
                "cannot write the diagram to {}: {error}",
                path.display()
            ))
        })?;
    }
    if let Some((_, Some(state))) = &run.payment {
        match state {
            PaymentState::Completed(completion) => writeln!(
                out,
                "card: {:?} {} (ATC {})",
                completion.kind,
                hex::encode_upper(completion.cryptogram),
                completion.atc
            )?,
            PaymentState::CompletionFailed(why) => writeln!(out, "card: completion failed: {why}")?,
            PaymentState::Declined(_)
            | PaymentState::AwaitingAcknowledgement
            | PaymentState::WalletSettled { .. } => {}
        }
    }
    writeln!(out, "journal: {}", journal_path.display())?;
    super::finish_recording(global, network.payer.card_mut().channel_mut())?;
    match run.result {
        Some(RequestResult::Delivered(k)) => {
            match &k.delivery {
                Delivery::Content {
                    media_type, bytes, ..
                } => writeln!(
                    out,
                    "delivered: {} ({media_type}, {} bytes, digest checked), paid {}",
                    k.service,
                    bytes.len(),
                    k.paid
                )?,
                Delivery::Order { order, address } => writeln!(
                    out,
                    "delivered: order {order} for {}, shipped to {} in {}, paid {}",
                    k.service, address.name, address.town, k.paid
                )?,
                Delivery::Receipt {
                    receipt,
                    reference,
                    balance,
                    ..
                } => writeln!(
                    out,
                    "delivered: receipt {receipt} for {} ({reference}), paid {}{}",
                    k.service,
                    k.paid,
                    match balance {
                        Some(AccountBalance::Credit(credit)) => format!(", credit now {credit}"),
                        Some(AccountBalance::Owed(owed)) => format!(", still owed {owed}"),
                        None => String::new(),
                    }
                )?,
            }
            Ok(())
        }
        Some(RequestResult::Damaged(k)) => Err(CliError::PurchaseFailed(format!(
            "{} arrived damaged: its content does not match its digest",
            k.service
        ))),
        Some(RequestResult::Failed(failure)) => {
            // The PIN could not be read: that, not "no PIN was entered", is the reason.
            let reason = match (&failure, &network.payer.user().failure) {
                (
                    Failure::PaymentDeclined { .. } | Failure::IdentificationFailed { .. },
                    Some(why),
                ) => why.clone(),
                _ => failure.to_string(),
            };
            Err(CliError::PurchaseFailed(reason))
        }
        None => Err(CliError::PurchaseFailed(
            "the front-end never answered the request".into(),
        )),
    }
}
