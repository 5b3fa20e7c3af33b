//! `telepay purchase` and `telepay catalogue`: the patent's purchase flow A–K with every
//! party embedded, and the demo catalogue it sells from.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;
use zeroize::Zeroizing;

use crate::acquirer::journal::{Journal, JournalError};
use crate::frontend::{Entropy, SeededEntropy, SystemEntropy};
use crate::messages::{Delivery, Failure, PaymentRequest, PostalAddress, ServiceId};
use crate::provider::{Catalogue, CatalogueError, ServiceServer, format_price};
use crate::purchase::embedded::{Embedded, test_rules};
use crate::purchase::{Faults, SystemClock, render};
use crate::reader::ReaderUri;
use crate::reader::uri::SimUri;
use crate::terminal::card_module::{CardModule, TerminalData};
use crate::terminal::client::RequestResult;
use crate::terminal::payer::{PayerUser, PaymentState};

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
                    "price": format_price(item.price()),
                    "currency": item.price().currency.alpha(),
                    "validity_seconds": item.validity_seconds(),
                    "deliver_with_quote": item.deliver_with_quote(),
                    "available": item.available(),
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
            notes.push("delivered with the quote (Fig. 7)");
        }
        if !item.available() {
            notes.push("unavailable");
        }
        writeln!(
            out,
            "  {:<24} {:>10}  {:<14} {}{}",
            item.id(),
            if item.is_free() {
                "free".to_owned()
            } else {
                item.price().to_string()
            },
            format!("{:?}", item.kind()),
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
    /// Where the PIN came from failed: the purchase stops with this.
    failure: Option<String>,
}

impl PayerUser for TerminalUser {
    fn confirm(&mut self, request: &PaymentRequest) -> bool {
        eprintln!(
            "payment request: {} for \"{}\" (valid until {})",
            request.amount, request.designation, request.valid_until
        );
        true
    }

    fn pin(&mut self, _request: &PaymentRequest) -> Option<Zeroizing<String>> {
        let read = if self.pin_stdin {
            read_pin_from_stdin().map_err(|error| error.to_string())
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
    let service = match &args.service {
        Some(id) => ServiceId::from(id.as_str()),
        None => catalogue
            .items()
            .iter()
            .find(|item| !item.is_free() && item.available())
            .map(|item| item.id().clone())
            .ok_or_else(|| CliError::Purchase("the catalogue has no paid item".into()))?,
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
    let run = network
        .purchase(&service, address, SystemClock, Faults::none())
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
            PaymentState::Declined(_) | PaymentState::AwaitingAcknowledgement => {}
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
                (Failure::PaymentDeclined { .. }, Some(why)) => why.clone(),
                _ => failure.to_string(),
            };
            Err(CliError::PurchaseFailed(reason))
        }
        None => Err(CliError::PurchaseFailed(
            "the front-end never answered the request".into(),
        )),
    }
}
