//! `telepay purchase`, `telepay catalogue` and `telepay users`: the patent's purchase
//! flow A–K with every party embedded, the demo catalogue it sells from, and the payer
//! device's users and payment plans.
//!
//! Each run builds the whole network afresh from the data directory ([`build_network`]):
//! the front-end, which keeps the payments of pseudo-sessions in
//! `frontend-sessions.sqlite` and resumes them from one run to the next; the service
//! server; the bank-card acquirer and its journal; the virtual-wallet acquirer (claim
//! 10) and its accounts in `wallet.sqlite`; and the payer device, with the card through
//! `--reader` and, for `--means wallet` or `auto`, the wallet key unlocked from the key
//! store (claim 12).
//!
//! PINs: the wallet key is unlocked first, with its key-store PIN, before the card is
//! touched, so that a wrong PIN stops the purchase before anything is asked of the
//! front-end; the card PIN is asked when the card pays. With `--pin-stdin` they are
//! the lines of standard input in that order. Neither is printed nor logged, and both
//! are zeroized once used.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;
use zeroize::Zeroizing;

use crate::acquirer::card::AmountLimits;
use crate::acquirer::journal::{Journal, JournalError};
use crate::acquirer::wallet::{AccountKey, WalletAcquirer, WalletStore};
use crate::frontend::sessions::{Recovery, SqliteSessionLog};
use crate::frontend::{Entropy, FrontEnd, SeededEntropy, SystemEntropy};
use crate::messages::{
    AccountBalance, AcquirerId, AcquirerTransaction, Delivery, Failure, Means, Message, Money,
    PaymentId, PaymentService, PostalAddress, ServiceId, ServiceKind, SessionId, Verdict,
};
use crate::provider::{Catalogue, CatalogueError, ServiceServer, format_price, parse_price};
use crate::purchase::embedded::{Embedded, PurchaseRun, WALLET_ACQUIRER, test_rules};
use crate::purchase::{Fate, Faults, SystemClock, render};
use crate::reader::uri::SimUri;
use crate::reader::{Reader, ReaderError, ReaderUri, Transport};
use crate::terminal::card_module::{CardModule, TerminalData};
use crate::terminal::client::RequestResult;
use crate::terminal::keystore::{KeyStoreError, Pin, UnlockedKey};
use crate::terminal::payer::{MeansChoice, PayerUser, PaymentState, Solicitation, WalletSigner};
use crate::terminal::plan::{self, AcquirerLimits, Users, means_name};

use super::keys::StoreArgs;
use super::{CliError, GlobalArgs, open_powered_uri, read_pin_from_stdin};

/// The journal's file name in the data directory.
pub(super) const JOURNAL_FILE: &str = "acquirer-journal.sqlite";

/// The wallet acquirer's store in the data directory.
pub(super) const WALLET_FILE: &str = "wallet.sqlite";

/// The front-end's log of the pseudo-sessions' wallet payments in the data directory.
pub(super) const SESSION_LOG_FILE: &str = "frontend-sessions.sqlite";

/// The wallet acquirer's amount limits, as the payment plan weighs them: any amount
/// from one minor unit to the largest the wallet keeps (`rules::MAX_VALUE`, 2⁶³−1), in
/// every currency telepay knows (the account's currency is checked at payment).
const WALLET_LIMITS: &str = "\
[[limit]]\ncurrency = \"EUR\"\nmin = 1\nmax = 9223372036854775807\n\
[[limit]]\ncurrency = \"USD\"\nmin = 1\nmax = 9223372036854775807\n\
[[limit]]\ncurrency = \"GBP\"\nmin = 1\nmax = 9223372036854775807\n\
[[limit]]\ncurrency = \"JPY\"\nmin = 1\nmax = 9223372036854775807\n";

/// Which means pays a purchase (`--means`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum MeansArg {
    /// The bank card, each payment confirmed (the purchase as before the wallet).
    Card,
    /// The virtual wallet of --user's key-store key, each payment confirmed.
    Wallet,
    /// The payment plan and thresholds of the payer configuration's active user
    /// (--user makes another active).
    Auto,
}

/// Arguments of `telepay purchase` (and of `telepay session pay`).
#[derive(Debug, Args)]
pub(super) struct PurchaseArgs {
    /// The service to buy, by its catalogue id [default: the catalogue's first paid item]
    #[arg(long, value_name = "ID")]
    service: Option<String>,
    /// The catalogue to sell from (TOML, docs/catalogue.md) [default: the demo catalogue]
    #[arg(long, value_name = "FILE")]
    pub(super) catalogue: Option<PathBuf>,
    /// Which means pays: card, wallet (--user's wallet key, unlocked with its key-store
    /// PIN) or auto (the plan of --payer-config's active user, claims 4, 5 and 18)
    #[arg(long, value_enum, value_name = "MEANS", default_value_t = MeansArg::Card)]
    means: MeansArg,
    /// With --means wallet: the key-store user whose wallet key pays. With --means
    /// auto: the payer-configuration user made active. In a session: the session's
    /// user by default
    #[arg(long, value_name = "ID")]
    pub(super) user: Option<String>,
    /// The payer configuration: users, their means, plans and thresholds (TOML,
    /// docs/payer.md); needed by --means auto
    #[arg(long, value_name = "FILE", required_if_eq("means", "auto"))]
    payer_config: Option<PathBuf>,
    /// Read the PINs from standard input instead of prompting, one per line, in this
    /// order: first the key-store PIN when a wallet key is unlocked (--means wallet,
    /// or auto for a user with a key-store key), then the card PIN when the card pays.
    #[arg(long)]
    pub(super) pin_stdin: bool,
    /// Write the exchanges as a Mermaid sequence diagram to this file.
    #[arg(long, value_name = "FILE")]
    diagram: Option<PathBuf>,
    // --keystore and --data-dir, as `telepay keys` reads them. The data directory holds
    // the acquirers' journal and accounts, the front-end's session log and the software
    // card's counters.
    #[command(flatten)]
    store: StoreArgs,
    /// Draw the front-end's nonces from this seed instead of the system's random source,
    /// so that a purchase is the same card dialogue each time (to record it and replay
    /// it with --reader replay:FILE the same day, each run with a fresh --data-dir).
    /// Never for real payments: the card's unpredictable number becomes predictable.
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// Delivery address for physical goods: "NAME;STREET;POSTCODE;TOWN;COUNTRY"
    /// (country as two letters, e.g. FR).
    #[arg(long, value_name = "ADDRESS")]
    pub(super) deliver_to: Option<String>,
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
    /// For a pay-per-time service: pay at most this many units (each is paid when the
    /// previous one runs out) [default: the service's limit]
    #[arg(long, value_name = "N", conflicts_with_all = ["bill", "account", "deliver_to"])]
    units: Option<u32>,
    /// Buy through the front-end served at this URL (`telepay serve frontend`,
    /// docs/deployment.md): this command is then the consultation terminal only — its
    /// client and payer devices and the card — calling the front-end over mutual TLS.
    /// Repeat it for front-ends standing by: the purchase moves to the next when the
    /// one it is on is lost, without charging twice
    #[arg(long, value_name = "URL", requires = "pki", conflicts_with_all = ["units", "bill", "account"])]
    pub(super) frontend: Vec<String>,
    /// With --frontend: the certificate name each front-end must present, in the order
    /// of the --frontend options [default: fe1.frontend.telepay, fe2.frontend.telepay, …]
    #[arg(long, value_name = "NAME")]
    pub(super) frontend_name: Vec<String>,
    /// With --frontend: the certificates' directory (`telepay pki init`), holding ca.pem
    /// and this terminal's certificate and key
    #[arg(long, value_name = "DIR")]
    pub(super) pki: Option<PathBuf>,
    /// With --frontend: this terminal's name; its certificate is NAME.terminal.telepay
    #[arg(long, value_name = "NAME", default_value = "t1")]
    pub(super) terminal: String,
}

impl PurchaseArgs {
    /// The data directory given (`--data-dir`, `TELEPAY_DATA_DIR`), if any.
    pub(super) fn data_dir(&self) -> Option<&Path> {
        self.store.data_dir.as_deref()
    }
}

/// Arguments of `telepay users`.
#[derive(Debug, Args)]
pub(super) struct UsersArgs {
    /// The payer configuration (TOML, docs/payer.md).
    #[arg(long, value_name = "FILE")]
    payer_config: PathBuf,
}

/// Arguments of `telepay catalogue`.
#[derive(Debug, Args)]
pub(super) struct CatalogueArgs {
    /// The catalogue to list [default: the demo catalogue]
    #[arg(long, value_name = "FILE")]
    catalogue: Option<PathBuf>,
}

pub(super) fn load_catalogue(path: Option<&Path>) -> Result<Catalogue, CliError> {
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

pub(super) fn parse_address(text: &str) -> Result<PostalAddress, CliError> {
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

/// The person at the terminal: shows the payment, takes the card PIN from standard
/// input or a prompt that does not echo.
pub(super) struct TerminalUser {
    pin_stdin: bool,
    /// The PIN read from standard input, for a second card transaction of the run.
    stdin_pin: Option<Zeroizing<String>>,
    /// Where the PIN came from failed: the purchase stops with this.
    failure: Option<String>,
}

impl TerminalUser {
    /// Why the PIN could not be read, when it could not.
    pub(super) fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    /// The user at the terminal; the card PIN is the next line of standard input when
    /// `pin_stdin`, else typed at a prompt.
    pub(super) fn new(pin_stdin: bool) -> TerminalUser {
        TerminalUser {
            pin_stdin,
            stdin_pin: None,
            failure: None,
        }
    }
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
            // Standard input holds one card PIN; a purchase that asks twice
            // (identification, then payment) gets the same one, kept zeroizing for this
            // run only.
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
#[derive(Clone)]
pub(super) enum CliEntropy {
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

/// The card reader's channel, as the CLI opens it.
pub(super) type Channel = Transport<Box<dyn Reader + Send>>;

/// The embedded network as the CLI builds it.
pub(super) type Network = Embedded<CliEntropy, Channel, TerminalUser>;

/// What [`build_network`] needs.
pub(super) struct NetworkSetup {
    /// What the service server sells.
    pub(super) catalogue: Catalogue,
    /// The data directory: journal, wallet accounts, session log.
    pub(super) dir: PathBuf,
    /// The card, powered.
    pub(super) transport: Channel,
    /// The person at the terminal.
    pub(super) user: TerminalUser,
    /// `--seed`.
    pub(super) seed: Option<u64>,
    /// The provision the front-end asks for a pseudo-session, in minor units of the
    /// payment's currency; `None` for the front-end's default.
    pub(super) session_provision: Option<u64>,
}

/// The network of `dir` for a command that asks the card nothing (`session end`,
/// `dispute`): the software card, in memory, only completes it (no PIN, no counter
/// touched); the demo catalogue.
pub(super) fn network_without_card(global: &GlobalArgs, dir: PathBuf) -> Result<Network, CliError> {
    let uri = ReaderUri::default();
    let mut transport = Transport::new(crate::reader::open_with(&uri, &global.open_options())?);
    transport.power_on()?;
    build_network(NetworkSetup {
        catalogue: Catalogue::demo().map_err(|error| CliError::Purchase(error.to_string()))?,
        dir,
        transport,
        user: TerminalUser::new(false),
        seed: None,
        session_provision: None,
    })
}

/// Every party of the purchase, from the data directory: the bank-card acquirer with
/// its journal, the wallet acquirer with its store, the front-end taking both means and
/// keeping its sessions' payments in its log, resumed (the CLI runs one front-end per
/// command, so an open session carries on from one run to the next).
pub(super) fn build_network(setup: NetworkSetup) -> Result<Network, CliError> {
    let journal = Journal::open(setup.dir.join(JOURNAL_FILE))
        .map_err(|error: JournalError| CliError::Purchase(error.to_string()))?;
    let rules = test_rules().map_err(|error| CliError::Purchase(error.to_string()))?;
    let wallet_store = WalletStore::open(setup.dir.join(WALLET_FILE))?;
    let session_log = SqliteSessionLog::open(setup.dir.join(SESSION_LOG_FILE))?;
    let card = CardModule::new(setup.transport, TerminalData::france());
    let mut entropy = match setup.seed {
        Some(seed) => CliEntropy::Seeded(SeededEntropy::new(seed)),
        None => CliEntropy::System(SystemEntropy),
    };
    // The journal outlives this process: each run names its purchases afresh.
    let run_id = hex::encode_upper(entropy.nonce().first_chunk::<4>().unwrap_or(&[0; 4]));
    let mut network = Embedded::new(
        ServiceServer::new(setup.catalogue),
        rules,
        journal,
        card,
        setup.user,
        // Never drawn from: the front-end is replaced below, with `entropy` itself.
        entropy.clone(),
        format!("P-{run_id}"),
    );
    // The same front-end, with its session log and the session's provision, which
    // `Embedded::new` leaves at their defaults (memory, and the configuration's).
    let mut config = network.front_end.config().clone();
    if let Some(provision) = setup.session_provision {
        config.session_provision = provision;
    }
    network.front_end =
        FrontEnd::new(config, entropy).with_session_log(Box::new(session_log), Recovery::Resume)?;
    Ok(network.with_wallet(WalletAcquirer::new(
        AcquirerId::from(WALLET_ACQUIRER),
        wallet_store,
    )))
}

/// The software card `sim:PROFILE`, its counters kept in the data directory, so that a
/// purchase does not replay the previous one's ATC (the acquirer would refuse it).
pub(super) fn software_card(dir: &Path, profile: &str) -> ReaderUri {
    ReaderUri::Sim(SimUri {
        profile: profile.to_owned(),
        state: Some(dir.join(format!("sim-{profile}.state"))),
        seed: None,
    })
}

/// A user's `card_reader` from the payer configuration; a built-in software card
/// without a state file keeps its counters in the data directory, as the default card.
fn configured_reader(text: &str, dir: &Path) -> Result<ReaderUri, CliError> {
    match ReaderUri::parse(text).map_err(ReaderError::from)? {
        ReaderUri::Sim(sim) if sim.state.is_none() && !sim.profile_is_file() => {
            Ok(software_card(dir, &sim.profile))
        }
        other => Ok(other),
    }
}

/// How the payer device pays, and what it needs for that.
pub(super) struct PayerSetup {
    pub(super) choice: MeansChoice,
    /// The wallet key, unlocked.
    pub(super) wallet: Option<WalletSigner>,
    /// The active user's card reader, with `--means auto`.
    pub(super) reader: Option<ReaderUri>,
    /// Who pays: the key-store user, or the plan's active user.
    pub(super) user: Option<String>,
}

/// The means choice for `--means`, the wallet key unlocked when one is needed.
pub(super) fn payer_setup(
    args: &PurchaseArgs,
    user: Option<&str>,
    dir: &Path,
) -> Result<PayerSetup, CliError> {
    match args.means {
        MeansArg::Card => Ok(PayerSetup {
            choice: MeansChoice::Fixed(Means::BankCard),
            wallet: None,
            reader: None,
            user: user.map(str::to_owned),
        }),
        MeansArg::Wallet => {
            let user = user.ok_or(CliError::MissingArgument {
                argument: "--user",
                when: "with --means wallet: the key-store user whose wallet key pays",
            })?;
            let key = unlock_wallet_key(args, user)?;
            Ok(PayerSetup {
                choice: MeansChoice::Fixed(Means::VirtualWallet),
                wallet: Some(WalletSigner::from_unlocked(key)),
                reader: None,
                user: Some(user.to_owned()),
            })
        }
        MeansArg::Auto => {
            let path = args
                .payer_config
                .as_ref()
                .ok_or(CliError::MissingArgument {
                    argument: "--payer-config",
                    when: "with --means auto: the users' plans and thresholds",
                })?;
            let mut users = load_users(path)?;
            if let Some(user) = user {
                users.switch_to(user).map_err(|source| CliError::Plan {
                    path: path.clone(),
                    source,
                })?;
            }
            let active = users.active();
            let id = active.id().as_str().to_owned();
            let reader = active
                .means()
                .card_reader
                .as_deref()
                .map(|text| configured_reader(text, dir))
                .transpose()?;
            // The key is unlocked whether or not the plan picks the wallet for this
            // payment: the plan decides only once the front-end's request has come.
            let wallet = match &active.means().key_store_user {
                Some(entry) => Some(WalletSigner::from_unlocked(unlock_wallet_key(args, entry)?)),
                None => None,
            };
            Ok(PayerSetup {
                choice: MeansChoice::Plan {
                    users: Box::new(users),
                    limits: acquirer_limits()?,
                },
                wallet,
                reader,
                user: Some(id),
            })
        }
    }
}

/// The amounts each embedded acquirer takes, for the plan: the bank-card acquirer's
/// ([`test_rules`]) and the wallet's ([`WALLET_LIMITS`]).
fn acquirer_limits() -> Result<AcquirerLimits, CliError> {
    let wallet = AmountLimits::from_toml_str(WALLET_LIMITS, "the wallet acquirer's limits")
        .map_err(|error| CliError::Purchase(error.to_string()))?;
    Ok(AcquirerLimits::new()
        .with(Means::BankCard, AmountLimits::default())
        .with(Means::VirtualWallet, wallet))
}

/// `user`'s wallet key, unlocked with their key-store PIN (the next line of standard
/// input with `--pin-stdin`, else a prompt that does not echo).
fn unlock_wallet_key(args: &PurchaseArgs, user: &str) -> Result<UnlockedKey, CliError> {
    unlock_key(&args.store, args.pin_stdin, user)
}

/// `user`'s key from the key store `store` names, unlocked with their PIN (a line of
/// standard input with `pin_stdin`, else a prompt that does not echo). Shared with
/// `telepay dispute`.
pub(super) fn unlock_key(
    store_args: &super::keys::StoreArgs,
    pin_stdin: bool,
    user: &str,
) -> Result<UnlockedKey, CliError> {
    let file = store_args.file(false)?;
    let store = store_args.load(&file)?;
    // Refuse before asking a PIN the user would type for nothing.
    if store.entry(user).is_none() {
        return Err(CliError::KeyStoreFile {
            path: file.path().to_owned(),
            source: Box::new(KeyStoreError::UnknownUser {
                user: user.to_owned(),
            }),
        });
    }
    let text = if pin_stdin {
        read_pin_from_stdin()?
    } else {
        rpassword::prompt_password(format!("key-store PIN for {user}: "))
            .map(Zeroizing::new)
            .map_err(CliError::PinPrompt)?
    };
    let pin = Pin::new(&text)?;
    drop(text);
    Ok(store.unlock(user, &pin)?)
}

/// The payer configuration's users.
fn load_users(path: &Path) -> Result<Users, CliError> {
    plan::config::load(path).map_err(|error| CliError::PayerConfig(Box::new(error)))
}

/// What to buy: the service, and the bill or reload for a payment service.
pub(super) fn what_to_buy(
    catalogue: &Catalogue,
    args: &PurchaseArgs,
) -> Result<(ServiceId, Option<PaymentService>), CliError> {
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
    Ok((service, payment_service))
}

/// The pseudo-session a purchase is made in (`telepay session pay`).
#[derive(Debug, Clone, Copy)]
pub(super) struct InSession<'a> {
    /// The session's name, as the client device gives it to the front-end.
    pub(super) name: &'a str,
    /// Who pays when `--user` is not given.
    pub(super) user: Option<&'a str>,
    /// The provision the front-end asks of the wallet acquirer with the session's first
    /// wallet payment: an amount in the service's currency.
    pub(super) provision: &'a str,
}

/// A payment a purchase made: the payer device sent a transaction E.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PaymentMade {
    /// The front-end's payment request.
    pub(super) payment: PaymentId,
    /// The means that paid.
    pub(super) means: Means,
    /// The amount.
    pub(super) amount: Money,
    /// Who paid (the key-store or plan user), when known.
    pub(super) user: Option<String>,
    /// Whether the acknowledgement H was positive.
    pub(super) authorised: bool,
}

/// What a purchase came to: the payment it made, if any, and the command's result.
pub(super) struct Ran {
    /// The payment, when the payer device paid (authorised or not).
    pub(super) payment: Option<PaymentMade>,
    /// `Ok` when the service was delivered; else why not.
    pub(super) outcome: Result<(), CliError>,
}

/// `telepay purchase`: A–K with every party in this process.
pub(super) fn purchase(
    global: &GlobalArgs,
    args: &PurchaseArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    if !args.frontend.is_empty() {
        return super::remote::purchase(global, args, out);
    }
    run(global, args, None, out)?.outcome
}

/// A purchase, in `session` when given. `Err` when it could not start (nothing was
/// paid); otherwise what it came to.
pub(super) fn run(
    global: &GlobalArgs,
    args: &PurchaseArgs,
    session: Option<InSession<'_>>,
    out: &mut dyn Write,
) -> Result<Ran, CliError> {
    let catalogue = load_catalogue(args.catalogue.as_deref())?;
    let (service, payment_service) = what_to_buy(&catalogue, args)?;
    let metered = catalogue
        .get(&service)
        .is_some_and(|item| item.kind() == ServiceKind::PayPerTime);
    if let (Some(units), false) = (args.units, metered) {
        return Err(CliError::BadArgument {
            argument: "--units",
            input: units.to_string(),
            expected: "a pay-per-time service (see `telepay catalogue`)",
        });
    }
    let address = args.deliver_to.as_deref().map(parse_address).transpose()?;
    let provision = match session {
        Some(session) => provision_minor(&catalogue, &service, session.provision)?,
        None => None,
    };
    let dir = data_dir(args.data_dir())?;
    if session.is_none() && args.means != MeansArg::Card {
        note_open_session(&dir);
    }
    let user = args
        .user
        .as_deref()
        .or(session.and_then(|session| session.user));
    // Before the card is powered: a wrong key-store PIN stops here.
    let payer = payer_setup(args, user, &dir)?;
    let uri = match (&global.reader, &payer.reader) {
        (Some(uri), _) | (None, Some(uri)) => uri.clone(),
        (None, None) => software_card(&dir, "cb"),
    };
    let transport = open_powered_uri(global, &uri)?;
    let mut network = build_network(NetworkSetup {
        catalogue,
        dir: dir.clone(),
        transport,
        user: TerminalUser::new(args.pin_stdin),
        seed: args.seed,
        session_provision: provision,
    })?;
    let PayerSetup {
        choice,
        wallet,
        user: paying_user,
        ..
    } = payer;
    network = network.map_payer(|payer| {
        let payer = payer.with_means(choice);
        match wallet {
            Some(wallet) => payer.with_wallet(wallet),
            None => payer,
        }
    });
    if let Some(session) = session {
        network.open_session(SessionId::from(session.name));
    }
    let run = match payment_service {
        Some(payment_service) => {
            network.pay_service(&service, payment_service, SystemClock, Faults::none())
        }
        None if metered => {
            network.purchase_metered(&service, args.units, SystemClock, Faults::none())
        }
        None => network.purchase(&service, address, SystemClock, Faults::none()),
    }
    .map_err(|error| CliError::Purchase(error.to_string()))?;
    let payment = payment_made(&run, paying_user);
    let outcome = report(global, args, &mut network, &run, &dir, out);
    Ok(Ran { payment, outcome })
}

/// The session's provision in minor units of `service`'s currency; `None` when the
/// catalogue has no such service (the server refuses it: nothing is paid).
fn provision_minor(
    catalogue: &Catalogue,
    service: &ServiceId,
    provision: &str,
) -> Result<Option<u64>, CliError> {
    let Some(item) = catalogue.get(service) else {
        return Ok(None);
    };
    parse_price(provision, item.currency())
        .map(|amount| Some(amount.minor))
        .map_err(|_| CliError::BadArgument {
            argument: "--provision",
            input: provision.to_owned(),
            expected: "the session's provision: an amount in the service's currency, e.g. 10.00",
        })
}

/// A warning when a session is open and a purchase is made outside it: the user
/// probably meant `session pay`, and this payment will not count in the session's
/// totals (it does not harm the session's payments: a provision settles from its own
/// sequence floor).
fn note_open_session(dir: &Path) {
    if let Some(name) = super::session::open_session_name(dir) {
        eprintln!(
            "telepay: warning: session {name} is open and this purchase is not part of it (use `telepay session pay`)"
        );
    }
}

/// The payment the run made, from its log: D's amount, E's means, H's verdict.
fn payment_made(run: &PurchaseRun, user: Option<String>) -> Option<PaymentMade> {
    let (payment, _) = run.payment.as_ref()?;
    let mut amount = None;
    let mut means = None;
    let mut authorised = false;
    let delivered = run
        .log
        .entries
        .iter()
        .filter(|entry| entry.fate == Fate::Delivered);
    for entry in delivered {
        match &entry.envelope.message {
            Message::PaymentRequest(d) if d.payment == *payment => amount = Some(d.amount),
            Message::Transaction(e) if e.payment == *payment => means = Some(e.means.means()),
            Message::PayerAcknowledgement(h) if h.payment == *payment => {
                authorised = h.verdict.is_positive();
            }
            _ => {}
        }
    }
    Some(PaymentMade {
        payment: payment.clone(),
        means: means?,
        amount: amount?,
        user,
        authorised,
    })
}

/// The run for people: the messages, the card's and the wallet's outcome, the plan's
/// totals, then the delivery or why there was none.
fn report(
    global: &GlobalArgs,
    args: &PurchaseArgs,
    network: &mut Network,
    run: &PurchaseRun,
    dir: &Path,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    write!(out, "{}", render::text(&run.log))?;
    if let Some(path) = &args.diagram {
        std::fs::write(path, render::mermaid(&run.log)).map_err(|error| {
            CliError::Purchase(format!(
                "cannot write the diagram to {}: {error}",
                path.display()
            ))
        })?;
    }
    if let Some((_, Some(state))) = &run.payment
        && let Some(line) = card_line(state)
    {
        writeln!(out, "{line}")?;
    }
    if let Some(line) = wallet_line(network, run) {
        writeln!(out, "{line}")?;
    }
    if let Some(line) = network.payer.totals_line() {
        writeln!(out, "totals: {line}")?;
    }
    writeln!(out, "journal: {}", dir.join(JOURNAL_FILE).display())?;
    super::finish_recording(global, network.payer.card_mut().channel_mut())?;
    result_lines(&run.result, network.payer.user().failure.as_deref(), out)
}

/// How the card ended a payment, when it did: its TC or AAC, or why it could not.
pub(super) fn card_line(state: &PaymentState) -> Option<String> {
    match state {
        PaymentState::Completed(completion) => Some(format!(
            "card: {:?} {} (ATC {})",
            completion.kind,
            hex::encode_upper(completion.cryptogram),
            completion.atc
        )),
        PaymentState::CompletionFailed(why) => Some(format!("card: completion failed: {why}")),
        PaymentState::Abandoned {
            completion,
            outcome,
        } => Some(format!(
            "card: abandoned with AAC {} (ATC {}): {}",
            hex::encode_upper(completion.cryptogram),
            completion.atc,
            outcome.as_ref().map_or_else(
                || "no word from the acquirer".to_owned(),
                ToString::to_string
            )
        )),
        PaymentState::Declined(_)
        | PaymentState::AwaitingAcknowledgement
        | PaymentState::WalletSettled { .. } => None,
    }
}

/// The last lines of a purchase: what was delivered and paid, or — as the error — why
/// nothing was. `pin_failure` is why the PIN could not be read, when it could not: that,
/// rather than "no PIN was entered", is the reason to give.
pub(super) fn result_lines(
    result: &Option<RequestResult>,
    pin_failure: Option<&str>,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    match result {
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
            let reason = match (failure, pin_failure) {
                (
                    Failure::PaymentDeclined { .. } | Failure::IdentificationFailed { .. },
                    Some(why),
                ) => why.to_owned(),
                _ => failure.to_string(),
            };
            Err(CliError::PurchaseFailed(reason))
        }
        None => Err(CliError::PurchaseFailed(
            "the front-end never answered the request".into(),
        )),
    }
}

/// What became of a wallet payment: debited, admitted against a session's provision
/// (by the acquirer opening it, or by the front-end alone), or refused; `None` when the
/// wallet did not pay.
fn wallet_line(network: &Network, run: &PurchaseRun) -> Option<String> {
    let (payment, _) = run.payment.as_ref()?;
    let mut signed = None;
    let mut to_acquirer: Option<&AcquirerTransaction> = None;
    let mut granted = None;
    let mut verdict = None;
    let delivered = run
        .log
        .entries
        .iter()
        .filter(|entry| entry.fate == Fate::Delivered);
    for entry in delivered {
        match &entry.envelope.message {
            Message::Transaction(e) if e.payment == *payment => signed = e.means.wallet(),
            Message::AcquirerTransaction(f) if f.transaction.payment == *payment => {
                to_acquirer = Some(f);
            }
            Message::Acknowledgement(g) if g.payment == *payment => {
                granted = g.provision.as_ref();
            }
            Message::PayerAcknowledgement(h) if h.payment == *payment => {
                verdict = Some(&h.verdict);
            }
            _ => {}
        }
    }
    let signed = signed?;
    let amount = signed.payment.amount;
    let account = &signed.payment.account;
    let asked = to_acquirer.and_then(|f| f.provision.as_ref());
    Some(match verdict {
        None => "wallet: no acknowledgement came for the payment".to_owned(),
        Some(Verdict::Negative { reason, .. }) => format!("wallet: refused: {reason}"),
        Some(Verdict::Positive { .. }) => match (to_acquirer, asked) {
            (Some(_), None) => format!(
                "wallet: debited {amount}, balance now {} (account {})",
                balance_text(network, account, false),
                account.fingerprint()
            ),
            // The acquirer may grant less than asked (what is available): the grant.
            (_, Some(asked)) => format!(
                "wallet: {amount} authorised by the acquirer, which reserved a provision of {} for {}; debited when the session ends ({}, account {})",
                granted.map_or(asked.amount, |grant| grant.amount),
                granted.map_or(&asked.segment, |grant| &grant.segment),
                balance_text(network, account, true),
                account.fingerprint()
            ),
            (None, None) => format!(
                "wallet: {amount} verified by the front-end against the session's provision, without the acquirer; debited when the session ends ({}, account {})",
                balance_text(network, account, true),
                account.fingerprint()
            ),
        },
    })
}

/// The account's balance as the wallet acquirer has it now (and what is reserved, when
/// `reserved`), or why it cannot be read.
fn balance_text(network: &Network, account: &AccountKey, reserved: bool) -> String {
    let Some(wallet) = network.wallet.as_ref() else {
        return "no wallet acquirer".to_owned();
    };
    match wallet.balance(account) {
        Ok(Some(state)) if reserved => format!(
            "balance {}, {} reserved",
            Money::new(state.balance, state.currency),
            Money::new(state.reserved, state.currency)
        ),
        Ok(Some(state)) => Money::new(state.balance, state.currency).to_string(),
        Ok(None) => "no account".to_owned(),
        Err(error) => format!("balance unreadable: {error}"),
    }
}

/// `telepay users`: each user of the payer configuration with the means at their
/// disposal, their plan's rules in order and their confirmation thresholds.
pub(super) fn users(
    global: &GlobalArgs,
    args: &UsersArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let users = load_users(&args.payer_config)?;
    let active = users.active().id().clone();
    if global.json {
        let json: Vec<serde_json::Value> = users
            .iter()
            .map(|user| {
                let rules: Vec<serde_json::Value> = user
                    .plan()
                    .rules()
                    .iter()
                    .enumerate()
                    .map(|(position, rule)| {
                        let currency = rule.band.currency;
                        serde_json::json!({
                            "rule": position.saturating_add(1),
                            "currency": currency.alpha(),
                            "from": format_price(Money::new(rule.band.from, currency)),
                            "below": rule.band.below.map(|below| format_price(Money::new(below, currency))),
                            "kinds": rule.kinds.iter().map(|kind| kind.name()).collect::<Vec<_>>(),
                            "means": rule.means.iter().map(|means| means.name()).collect::<Vec<_>>(),
                        })
                    })
                    .collect();
                let thresholds: Vec<serde_json::Value> = user
                    .thresholds()
                    .entries()
                    .iter()
                    .map(|(means, amount)| {
                        serde_json::json!({
                            "means": means.name(),
                            "currency": amount.currency.alpha(),
                            "implicit_up_to": format_price(*amount),
                        })
                    })
                    .collect();
                serde_json::json!({
                    "id": user.id().as_str(),
                    "active": *user.id() == active,
                    "card_reader": user.means().card_reader,
                    "key_store_user": user.means().key_store_user,
                    "rules": rules,
                    "thresholds": thresholds,
                })
            })
            .collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
        return Ok(());
    }
    writeln!(out, "{}:", args.payer_config.display())?;
    for user in users.iter() {
        writeln!(
            out,
            "{}{}",
            user.id(),
            if *user.id() == active {
                " (active)"
            } else {
                ""
            }
        )?;
        let mut means = Vec::new();
        if let Some(reader) = &user.means().card_reader {
            means.push(format!("bank card in {reader}"));
        }
        if let Some(entry) = &user.means().key_store_user {
            means.push(format!("virtual wallet of key-store user {entry}"));
        }
        writeln!(out, "  means: {}", means.join(", "))?;
        writeln!(out, "  plan:")?;
        for (position, rule) in user.plan().rules().iter().enumerate() {
            let kinds = if rule.kinds.is_empty() {
                "every kind".to_owned()
            } else {
                rule.kinds
                    .iter()
                    .map(|kind| kind.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let order = rule
                .means
                .iter()
                .map(|&means| means_name(means))
                .collect::<Vec<_>>()
                .join(", else ");
            writeln!(
                out,
                "    {}. {}, {kinds}: {order}",
                position.saturating_add(1),
                rule.band
            )?;
        }
        let thresholds = user.thresholds().entries();
        if thresholds.is_empty() {
            writeln!(out, "  thresholds: none, every payment is confirmed")?;
        } else {
            writeln!(out, "  thresholds (confirmed without a question up to):")?;
            for (means, amount) in thresholds {
                writeln!(out, "    {}: {amount}", means_name(*means))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acquirer::wallet::rules::MAX_VALUE;
    use crate::messages::Currency;

    #[test]
    fn the_wallet_limits_are_the_wallets_whole_range_in_every_known_currency() {
        let limits = AmountLimits::from_toml_str(WALLET_LIMITS, "test").unwrap();
        for currency in [Currency::EUR, Currency::USD, Currency::GBP, Currency::JPY] {
            let range = limits.range(currency.numeric).unwrap();
            assert_eq!(
                (range.min, range.max),
                (1, MAX_VALUE),
                "{}",
                currency.alpha()
            );
        }
    }

    #[test]
    fn a_configured_software_card_keeps_its_counters_in_the_data_directory() {
        let dir = Path::new("/data");
        let table: [(&str, &str); 4] = [
            ("sim:cb", "sim:cb?state=/data/sim-cb.state"),
            ("sim:visa", "sim:visa?state=/data/sim-visa.state"),
            (
                "sim:cb?state=/elsewhere.state",
                "sim:cb?state=/elsewhere.state",
            ),
            ("pcsc:", "pcsc:"),
        ];
        for (given, expected) in table {
            let uri = configured_reader(given, dir).unwrap();
            assert_eq!(uri, ReaderUri::parse(expected).unwrap(), "{given}");
        }
        assert!(matches!(
            configured_reader("nfc:", dir),
            Err(CliError::Reader(_))
        ));
    }
}
