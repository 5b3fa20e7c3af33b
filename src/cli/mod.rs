//! The `telepay` command line (clap derive): one enum of subcommands, shared arguments
//! flattened, one error type that sets the exit status.
//!
//! Every command takes `--reader URI` (default `sim:`, the software bank card) and
//! prints decoded, human-readable output, or JSON with `--json`. Errors print one line
//! naming the input and the fault, and exit with status 1 (2 for usage errors).

mod acquirer;
mod dispute;
mod hexarg;
mod keys;
mod load;
mod pki;
mod purchase;
mod remote;
mod serve;
mod session;
mod wallet;

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::apdu::{ApduError, Command};
use crate::describe::{DescribeOptions, DescribedExchange, Describer};
use crate::emv::{self, CardReadReport, EmvError, ReadOptions};
use crate::reader::{self, ExchangeObserver, Reader, ReaderError, ReaderUri, Transport};
use crate::tlv;
use crate::trace::check::{CheckError, CheckOptions, check_card};
use crate::trace::format::{self, TraceError};
use crate::trace::record::Recorder;
use crate::trace::show::{ShowError, show};
use crate::trace::{FORMAT_VERSION, Header, Secrets};

pub use hexarg::{HexError, parse_hex};

/// telepay: smart-card / APDU toolkit and the mediated telepayment system of patent
/// FR2750275.
#[derive(Debug, Parser)]
#[command(name = "telepay", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Commands,
}

/// Arguments every command takes.
#[derive(Debug, Args)]
struct GlobalArgs {
    /// The reader, as a URI: sim:, sim:PROFILE, sim:PROFILE?state=FILE&seed=N, pcsc:NAME,
    /// serial:PATH, replay:FILE [default: sim:, the software bank card]
    #[arg(long, global = true, env = "TELEPAY_READER")]
    reader: Option<ReaderUri>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// Show PIN blocks in decoded dialogues instead of masking them.
    #[arg(long, global = true)]
    show_secrets: bool,
    /// Record every exchange with the card (raw, with timings) to this trace file.
    #[arg(long, global = true, value_name = "FILE")]
    record: Option<PathBuf>,
    /// Keep PIN blocks and other secrets in the recording (masked by default); the
    /// trace's header says so.
    #[arg(long, global = true, requires = "record")]
    record_secrets: bool,
    /// Wait up to this long for a card to be inserted in a pcsc: reader (e.g. 30s, 500ms,
    /// 2m; a bare number is seconds) instead of failing at once when there is none.
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_wait)]
    wait: Option<std::time::Duration>,
}

impl GlobalArgs {
    /// The reader to use: `--reader`, else `default`.
    fn reader_or(&self, default: impl FnOnce() -> ReaderUri) -> ReaderUri {
        self.reader.clone().unwrap_or_else(default)
    }

    /// How readers are opened: `--wait`.
    fn open_options(&self) -> reader::OpenOptions {
        reader::OpenOptions::default().with_wait(self.wait)
    }
}

/// What `--wait` accepts, for its error message.
const WAIT_FORMS: &str =
    "a whole number with a unit ms, s, m or h (e.g. 500ms, 30s, 2m); a bare number is seconds";

/// Parses `--wait`: digits, then `ms`, `s`, `m` or `h` (no unit: seconds). Checked
/// arithmetic: a wait too long for a `Duration` is refused, never wrapped.
fn parse_wait(text: &str) -> Result<std::time::Duration, CliError> {
    let bad = || CliError::BadArgument {
        argument: "--wait",
        input: text.to_owned(),
        expected: WAIT_FORMS,
    };
    let digits_end = text
        .find(|character: char| !character.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(digits_end);
    let number: u64 = digits.parse().map_err(|_| bad())?;
    let millis_per_unit: u64 = match unit {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(bad()),
    };
    let millis = number.checked_mul(millis_per_unit).ok_or_else(bad)?;
    Ok(std::time::Duration::from_millis(millis))
}

#[derive(Debug, Subcommand)]
enum Commands {
    /// List the readers available on each backend.
    Readers,
    /// Power the card and decode its Answer To Reset.
    Atr,
    /// Send APDUs (hex, one per argument; spaces and colons allowed) and decode each
    /// exchange.
    Apdu {
        /// Command APDUs in hex, e.g. 00A404000E325041592E5359532E444446303100.
        #[arg(required = true, value_name = "HEX")]
        apdus: Vec<String>,
    },
    /// Card operations.
    #[command(subcommand)]
    Card(CardCommand),
    /// Decode a BER-TLV blob with the EMV dictionary.
    Tlv {
        /// The TLV bytes in hex.
        #[arg(value_name = "HEX")]
        hex: String,
    },
    /// Recorded dialogues: show, diff, replay against a card, import other tools' logs.
    #[command(subcommand)]
    Trace(TraceCommand),
    /// Serve a card to any PC/SC application through vsmartcard's vpcd driver in pcscd.
    #[command(subcommand)]
    Vpcd(VpcdCommand),
    /// Play a card on a serial line, as a card in a Phoenix-style reader would.
    #[command(subcommand)]
    Serial(SerialCommand),
    /// Buy a service through the patent's purchase flow A–K, every party embedded: the
    /// client and payer devices (the card through --reader, default the software card;
    /// the wallet with --means wallet|auto), the front-end, the service server, the
    /// bank-card acquirer with its journal and the wallet acquirer. Exits non-zero, with
    /// the reason, unless the service was delivered.
    Purchase(Box<purchase::PurchaseArgs>),
    /// List the services a catalogue offers (default: the demo catalogue).
    Catalogue(purchase::CatalogueArgs),
    /// The bank-card acquirer's journal and its telecollection: list the transactions,
    /// cut a remittance batch off, remit batches to the telecollection centre.
    #[command(subcommand)]
    Acquirer(acquirer::AcquirerCommand),
    /// The telecollection centre: serve it on a socket, list the batches it accepted.
    #[command(subcommand)]
    Telecollection(acquirer::TelecollectionCommand),
    /// The payer device's key store: users' P-256 signing keys sealed under their PINs
    /// (claim 12). See docs/keystore.md.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Dispute a payment made from your wallet: the dispute is signed with your
    /// key-store key and sent through the front-end to the wallet acquirer, which records
    /// it for review under a case number (not a refund). Exits non-zero unless accepted.
    Dispute(dispute::DisputeArgs),
    /// The virtual-wallet acquirer's side of a user's account (claim 10): open it,
    /// reload it, read its balance. The account is the user's key-store public key.
    /// See docs/wallet.md.
    #[command(subcommand)]
    Wallet(wallet::WalletCommand),
    /// A pseudo-session (claim 10): start it, pay within it (the session's wallet
    /// payments verified by the front-end against a provision), read its totals
    /// (claim 6), end it (the acquirer settles them). See docs/wallet.md.
    #[command(subcommand)]
    Session(session::SessionCommand),
    /// The payer device's users: the means at their disposal, their payment plans and
    /// confirmation thresholds (claims 4, 5, 7). See docs/payer.md.
    Users(purchase::UsersArgs),
    /// Serve one role — frontend, provider, acquirer-card, acquirer-wallet — over
    /// mutual TLS, as its configuration file says (docs/deployment.md), until SIGINT or
    /// SIGTERM.
    Serve(serve::ServeArgs),
    /// Many terminals buying at once through a served front-end, each with its own
    /// software card: a load test of a deployment (docs/deployment.md).
    Load(load::LoadArgs),
    /// The test PKI of a local deployment: a CA and a certificate per peer for mutual
    /// TLS between the roles. See docs/deployment.md.
    #[command(subcommand)]
    Pki(pki::PkiCommand),
}

#[derive(Debug, Subcommand)]
enum SerialCommand {
    /// Play the card (any reader URI) on a serial port: ATR on reset, PPS, T=0 or T=1,
    /// until the port goes away. The log goes to standard error; --record records the
    /// terminal's dialogue. See docs/serial.md.
    Serve(SerialServeArgs),
}

#[derive(Debug, Args)]
struct SerialServeArgs {
    /// The card to play, as a reader URI: sim:PROFILE, replay:FILE, pcsc:NAME
    /// [default: --reader, else sim:]
    #[arg(long, value_name = "URI")]
    card: Option<ReaderUri>,
    /// The serial port (a pty end, or a USB-serial adapter wired to the terminal's
    /// card contacts).
    #[arg(long, value_name = "PATH")]
    port: PathBuf,
    /// Line speed in bits per second.
    #[arg(long, default_value_t = crate::serial::DEFAULT_BAUD)]
    baud: u32,
    /// Parity bit: none, even (ISO 7816-3) or odd.
    #[arg(long, default_value = "even", value_parser = ["none", "even", "odd"])]
    parity: String,
    /// Stop bits: 2 gives the ISO 7816-3 guard time.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=2))]
    stop: u8,
    /// Echo every received character back, as a Phoenix reader's shared I/O line does
    /// (for testing a host that strips the echo, `echo=on`).
    #[arg(long)]
    echo: bool,
    /// T=0: NULL bytes sent before each answer [default: the card profile's, else 0].
    #[arg(long, value_name = "N")]
    null_bytes: Option<u8>,
    /// T=0: acknowledge data one byte at a time, true or false [default: the card
    /// profile's, else false].
    #[arg(long, value_name = "BOOL")]
    ack_each_byte: Option<bool>,
    /// T=1: the waiting time extension multiplier asked before each answer, 0 for none
    /// [default: the card profile's, else 0].
    #[arg(long, value_name = "MULTIPLIER")]
    wtx: Option<u8>,
    /// Stop after this many sessions (a session ends when the terminal resets the card
    /// again) [default: serve until the port goes away].
    #[arg(long, value_name = "N")]
    max_sessions: Option<u32>,
    /// Log every exchange (PINs masked), not only resets and failures.
    #[arg(long, short)]
    verbose: bool,
}

#[derive(Debug, Subcommand)]
enum VpcdCommand {
    /// Connect to vpcd as its virtual card and serve the card (any reader URI) until
    /// stopped; reconnect when pcscd restarts. The log goes to standard error; --record
    /// records the whole dialogue of the PC/SC application.
    Serve(VpcdServeArgs),
}

#[derive(Debug, Args)]
struct VpcdServeArgs {
    /// The card to serve, as a reader URI: sim:PROFILE, replay:FILE, pcsc:NAME (a relay)
    /// [default: --reader, else sim:]
    #[arg(long, value_name = "URI")]
    card: Option<ReaderUri>,
    /// vpcd's host: the machine pcscd runs on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// vpcd's port: 35963 is the reader "Virtual PCD 00 00", 35964 "Virtual PCD 00 01".
    #[arg(long, default_value_t = crate::vpcd::DEFAULT_PORT)]
    port: u16,
    /// Stop after this many connections to vpcd have ended (default: serve forever).
    #[arg(long, value_name = "N")]
    max_connections: Option<u32>,
    /// Exit with an error when vpcd cannot be reached for this many seconds (default:
    /// keep trying).
    #[arg(long, value_name = "SECONDS")]
    give_up_after: Option<u64>,
    /// Log every control message and exchange, not only connections and warnings.
    #[arg(long, short)]
    verbose: bool,
}

#[derive(Debug, Subcommand)]
enum TraceCommand {
    /// Print a trace decoded: command names, TLV trees with EMV names, SW meanings.
    Show {
        /// The trace file.
        file: PathBuf,
    },
    /// Explain the differences between two traces in decoded terms; exit status 1 when
    /// they differ.
    Diff {
        /// The first trace.
        first: PathBuf,
        /// The second trace.
        second: PathBuf,
    },
    /// Send the recorded commands to a card (--reader; the trace's own @reader by
    /// default) and check every answer against the recording; exit status 0 only if all
    /// match.
    Replay {
        /// The trace file.
        file: PathBuf,
        /// Read the PIN for withheld PIN blocks (<pin:8>) from standard input.
        #[arg(long)]
        pin_stdin: bool,
    },
    /// Convert another tool's APDU log into a trace.
    Import {
        /// The log's format: pcsc-spy, opensc, vicc, cardpeek, apdu4j, gp, pyscard, or
        /// auto to detect it.
        #[arg(long, value_name = "FORMAT", default_value = "auto")]
        from: String,
        /// The log file.
        file: PathBuf,
        /// Where to write the trace (standard output by default).
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum CardCommand {
    /// The EMV read flow: select an application, GET PROCESSING OPTIONS, read the
    /// records, GET DATA; prints the dialogue and the cardholder data.
    Read(ReadArgs),
}

#[derive(Debug, Args)]
struct ReadArgs {
    /// Use this application (AID in hex) instead of the card's highest-priority one.
    #[arg(long, value_name = "HEX")]
    aid: Option<String>,
    /// Show the full PAN (masked to the first six and last four digits by default).
    #[arg(long)]
    show_pan: bool,
    /// Transaction date sent to the card (YYMMDD); today by default.
    #[arg(long, value_name = "YYMMDD")]
    date: Option<String>,
    /// Unpredictable number sent to the card (4 bytes hex); random by default.
    #[arg(long, value_name = "HEX")]
    unpredictable_number: Option<String>,
}

/// Why a command failed; the message is the one line the user sees.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// The reader or the card failed.
    #[error(transparent)]
    Reader(Box<ReaderError>),
    /// The card read stopped.
    #[error(transparent)]
    Emv(Box<EmvError>),
    /// An argument is not hex.
    #[error(transparent)]
    Hex(#[from] HexError),
    /// An APDU argument is not a command APDU.
    #[error("APDU {input}: {source}")]
    BadApdu {
        /// The argument as given.
        input: String,
        /// Why it is not an APDU.
        #[source]
        source: ApduError,
    },
    /// The TLV argument does not parse.
    #[error("TLV {input}: {source}")]
    BadTlv {
        /// The argument as given.
        input: String,
        /// Why.
        #[source]
        source: tlv::TlvError,
    },
    /// An argument has the wrong length or shape.
    #[error("{argument} {input:?}: {expected}")]
    BadArgument {
        /// The option.
        argument: &'static str,
        /// The value given.
        input: String,
        /// What it should be.
        expected: &'static str,
    },
    /// No randomness available for the unpredictable number.
    #[error("cannot draw an unpredictable number from the system: {0}")]
    Random(String),
    /// Writing the output failed (e.g. a closed pipe).
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
    /// JSON encoding failed.
    #[error("cannot encode JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The recording file cannot be created or written.
    #[error("cannot record to {}: {source}", path.display())]
    Record {
        /// The trace file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A trace file is unreadable or malformed.
    #[error(transparent)]
    Trace(Box<TraceError>),
    /// Showing a trace failed.
    #[error(transparent)]
    Show(#[from] ShowError),
    /// Replaying a trace against a card stopped.
    #[error("replay of {}: {source}", file.display())]
    Check {
        /// The trace.
        file: PathBuf,
        /// Why it stopped.
        #[source]
        source: CheckError,
    },
    /// The card's answers differ from the recording.
    #[error("{} of {exchanges} answers differ from the recording {}", mismatches, file.display())]
    Mismatches {
        /// The trace.
        file: PathBuf,
        /// How many answers differ.
        mismatches: usize,
        /// How many exchanges were sent.
        exchanges: usize,
    },
    /// The two traces differ.
    #[error("the traces differ ({count} differences)")]
    TracesDiffer {
        /// How many differences were listed.
        count: usize,
    },
    /// Importing a log failed.
    #[error(transparent)]
    Import(#[from] crate::trace::import::ImportError),
    /// The import format is not one telepay knows.
    #[error("{0}")]
    ImportFormat(String),
    /// Reading the PIN from standard input failed.
    #[error("cannot read the PIN from standard input: {0}")]
    Pin(String),
    /// The purchase could not be set up or run (catalogue, journal, data directory).
    #[error("purchase: {0}")]
    Purchase(String),
    /// The purchase ran and delivered nothing: why.
    #[error("purchase refused: {0}")]
    PurchaseFailed(String),
    /// The card cannot be served to vpcd.
    #[error(transparent)]
    Vpcd(Box<crate::vpcd::VpcdError>),
    /// Serving to vpcd stopped.
    #[error(transparent)]
    Serve(Box<crate::vpcd::serve::ServeError>),
    /// No data directory: neither `--data-dir`, `TELEPAY_DATA_DIR`, `XDG_DATA_HOME` nor
    /// `HOME` is set.
    #[error("no data directory: give --data-dir or set TELEPAY_DATA_DIR")]
    NoDataDir,
    /// The data directory cannot be created.
    #[error("cannot create the data directory {}: {source}", path.display())]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The acquirer's journal does not exist (no purchase was made with this data
    /// directory).
    #[error(
        "no acquirer journal at {}: make a purchase first, or name the data directory with --data-dir",
        path.display()
    )]
    NoJournal {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// The telecollection centre's store does not exist.
    #[error(
        "no telecollection centre store at {}: start a centre with `telepay telecollection serve`, or name the store with --store",
        path.display()
    )]
    NoCentreStore {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// The acquirer's journal failed.
    #[error(transparent)]
    Journal(Box<crate::acquirer::journal::JournalError>),
    /// The telecollection centre's store failed.
    #[error(transparent)]
    Centre(Box<crate::telecollection::centre::CentreError>),
    /// The telecollection centre cannot be served.
    #[error(transparent)]
    CentreServe(Box<crate::telecollection::server::ServeError>),
    /// A batch got no answer from the centre (unreachable, connection lost).
    #[error(transparent)]
    Remit(Box<crate::telecollection::server::RemitError>),
    /// The centre refused a batch.
    #[error("centre {address} refused batch {batch}: {reason}")]
    Refused {
        /// The centre.
        address: String,
        /// The batch number.
        batch: u64,
        /// The batch's line at fault, when the centre names one.
        line: Option<u64>,
        /// The centre's reason.
        reason: String,
    },
    /// The centre could not process a batch (its store failed).
    #[error("centre {address} could not take batch {batch}: {reason}")]
    Unavailable {
        /// The centre.
        address: String,
        /// The batch number.
        batch: u64,
        /// The centre's reason.
        reason: String,
    },
    /// A batch file cannot be written.
    #[error("cannot write the batch file {}: {source}", path.display())]
    BatchFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The key store refused, or its file failed.
    #[error(transparent)]
    KeyStore(Box<crate::terminal::keystore::KeyStoreError>),
    /// The PIN prompt failed (no terminal, or it closed).
    #[error("cannot read the PIN from the terminal: {0}")]
    PinPrompt(#[source] std::io::Error),
    /// The new PIN and its repetition at the prompt differ.
    #[error("the new PIN and its repetition differ; nothing was changed")]
    PinMismatch,
    /// The key store file is damaged, or holds what the cost policy refuses.
    #[error("{}: {source}", path.display())]
    KeyStoreFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: Box<crate::terminal::keystore::KeyStoreError>,
    },
    /// The SIGINT / SIGTERM handlers cannot be installed.
    #[error("cannot install the SIGINT/SIGTERM handlers: {0}")]
    Signals(#[source] std::io::Error),
    /// An option this case needs is missing.
    #[error("{argument} is needed {when}")]
    MissingArgument {
        /// The option.
        argument: &'static str,
        /// When it is needed, and what for.
        when: &'static str,
    },
    /// The wallet acquirer's store failed (the error names its file).
    #[error(transparent)]
    Wallet(Box<crate::acquirer::wallet::WalletStoreError>),
    /// The wallet acquirer refused an operation on a user's account.
    #[error("wallet {}: user {user}: {refusal}", path.display())]
    WalletRefused {
        /// The key-store user whose account it is.
        user: String,
        /// The wallet store's file.
        path: PathBuf,
        /// The acquirer's refusal.
        refusal: Box<crate::acquirer::wallet::Refusal>,
    },
    /// The user's wallet account is not open.
    #[error(
        "wallet {}: user {user} has no account (account {account}): open it with `telepay wallet open --user {user}` or `telepay wallet reload --user {user} --amount AMOUNT`",
        path.display()
    )]
    NoWalletAccount {
        /// The key-store user.
        user: String,
        /// The fingerprint of their public key, the account's name.
        account: String,
        /// The wallet store's file.
        path: PathBuf,
    },
    /// The front-end's session log failed (the error names its file).
    #[error(transparent)]
    SessionLog(Box<crate::frontend::sessions::SessionLogError>),
    /// The payer configuration is unreadable or refused (the error names the file,
    /// line and column).
    #[error(transparent)]
    PayerConfig(Box<crate::terminal::plan::PayerConfigError>),
    /// The payer configuration's users refused an operation (no such user).
    #[error("{}: {source}", path.display())]
    Plan {
        /// The payer configuration.
        path: PathBuf,
        /// Why.
        #[source]
        source: crate::terminal::plan::PlanError,
    },
    /// `telepay session start` while a session is open.
    #[error(
        "session {name} is already open (started {started}, {}): end it with `telepay session end` first",
        path.display()
    )]
    SessionAlreadyOpen {
        /// The open session.
        name: String,
        /// When it started.
        started: String,
        /// Its file.
        path: PathBuf,
    },
    /// A session command with no session open.
    #[error(
        "no session is open ({} does not exist): start one with `telepay session start NAME`",
        path.display()
    )]
    NoSession {
        /// Where the session file was looked for.
        path: PathBuf,
    },
    /// The session file cannot be read, written or removed.
    #[error("session file {}: {source}", path.display())]
    SessionFile {
        /// The file (or its temporary sibling, or its directory).
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The session file does not hold what telepay writes.
    #[error("session file {}: {reason}", path.display())]
    SessionFileContent {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The front-end did not answer the end of a session.
    #[error("the front-end did not answer the end of session {name}")]
    SessionNotClosed {
        /// The session.
        name: String,
    },
    /// A dispute was rejected, went unanswered, or could not be made.
    #[error("{0}")]
    Dispute(String),
    /// A network service could not start or stopped on an error.
    #[error(transparent)]
    Service(Box<crate::net::service::ServiceError>),
    /// The test PKI could not be made or extended (the error names the file or peer).
    #[error(transparent)]
    Pki(Box<crate::net::pki::PkiError>),
}

/// `From` for each layer's error into its boxed `CliError` variant. Boxed: errors are
/// cold, and a small `Result` keeps every call path cheap.
macro_rules! boxed_from {
    ($($error:ty => $variant:ident),* $(,)?) => {
        $(
            impl From<$error> for CliError {
                fn from(error: $error) -> Self {
                    CliError::$variant(Box::new(error))
                }
            }
        )*
    };
}

boxed_from! {
    crate::net::service::ServiceError => Service,
    crate::net::pki::PkiError => Pki,
    crate::vpcd::VpcdError => Vpcd,
    crate::vpcd::serve::ServeError => Serve,
    crate::terminal::keystore::KeyStoreError => KeyStore,
    TraceError => Trace,
    ReaderError => Reader,
    EmvError => Emv,
    crate::acquirer::journal::JournalError => Journal,
    crate::telecollection::centre::CentreError => Centre,
    crate::telecollection::server::ServeError => CentreServe,
    crate::telecollection::server::RemitError => Remit,
    crate::acquirer::wallet::WalletStoreError => Wallet,
    crate::frontend::sessions::SessionLogError => SessionLog,
}

/// Runs the command line and returns the process's exit status.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli, &mut std::io::stdout().lock()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("telepay: error: {}", error_chain(&error));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line (`a: b: c`), skipping causes whose text the
/// message already contains.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

/// Runs one parsed command line, writing to `out`.
pub fn run(cli: Cli, out: &mut dyn Write) -> Result<(), CliError> {
    let global = &cli.global;
    match &cli.command {
        Commands::Readers => readers(global, out),
        Commands::Atr => atr(global, out),
        Commands::Apdu { apdus } => apdu(global, apdus, out),
        Commands::Card(CardCommand::Read(args)) => card_read(global, args, out),
        Commands::Tlv { hex } => tlv_command(global, hex, out),
        Commands::Trace(command) => trace_command(global, command, out),
        Commands::Vpcd(VpcdCommand::Serve(args)) => vpcd_serve(global, args, out),
        Commands::Serial(SerialCommand::Serve(args)) => serial_serve(global, args, out),
        Commands::Purchase(args) => purchase::purchase(global, args, out),
        Commands::Catalogue(args) => purchase::catalogue(global, args, out),
        Commands::Acquirer(command) => acquirer::acquirer(global, command, out),
        Commands::Telecollection(command) => acquirer::telecollection(global, command, out),
        Commands::Keys(command) => keys::keys(global, command, out),
        Commands::Dispute(args) => dispute::dispute(global, args, out),
        Commands::Wallet(command) => wallet::wallet(global, command, out),
        Commands::Session(command) => session::session(global, command, out),
        Commands::Users(args) => purchase::users(global, args, out),
        Commands::Serve(args) => serve::serve(args, out),
        Commands::Load(args) => load::load(global, args, out),
        Commands::Pki(command) => pki::pki(global, command, out),
    }
}

/// Opens the reader, powers the card, and starts the recording when `--record` asks.
fn open_powered(global: &GlobalArgs) -> Result<Transport<Box<dyn Reader + Send>>, CliError> {
    open_powered_uri(global, &global.reader_or(ReaderUri::default))
}

fn open_powered_uri(
    global: &GlobalArgs,
    uri: &ReaderUri,
) -> Result<Transport<Box<dyn Reader + Send>>, CliError> {
    let mut transport = Transport::new(reader::open_with(uri, &global.open_options())?);
    let atr = transport.power_on()?.clone();
    if let Some(path) = &global.record {
        // The protocol the reader negotiated (PC/SC), else the ATR's first offer.
        let protocol = transport
            .reader()
            .protocol()
            .or_else(|| atr.protocols().first().copied());
        let recorder = start_recording(global, path, uri, protocol, atr.as_bytes(), Vec::new())?;
        transport.set_observer(Box::new(recorder));
    }
    Ok(transport)
}

/// Ends the recording, if any, and reports a write error met on the way.
fn finish_recording<R: Reader>(
    global: &GlobalArgs,
    transport: &mut Transport<R>,
) -> Result<(), CliError> {
    if let (Some(path), Some(mut observer)) = (&global.record, transport.take_observer()) {
        observer.finish().map_err(|source| CliError::Record {
            path: path.clone(),
            source,
        })?;
    }
    Ok(())
}

fn readers(global: &GlobalArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let listing = reader::list_readers();
    if global.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&listing)?)?;
        return Ok(());
    }
    for backend in listing {
        writeln!(out, "{}:", backend.scheme)?;
        if let Some(reason) = &backend.unavailable {
            writeln!(out, "  (unavailable: {reason})")?;
        } else if backend.readers.is_empty() {
            writeln!(out, "  (none)")?;
        }
        // PC/SC reader names are long: align each backend's column on its own URIs.
        let width = backend
            .readers
            .iter()
            .map(|entry| entry.uri.chars().count())
            .max()
            .unwrap_or(0)
            .max(16);
        for entry in backend.readers {
            writeln!(out, "  {:<width$} {}", entry.uri, entry.description)?;
        }
    }
    Ok(())
}

fn atr(global: &GlobalArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let mut transport = open_powered(global)?;
    finish_recording(global, &mut transport)?;
    let Some(atr) = transport.atr() else {
        return Ok(());
    };
    if global.json {
        let json = serde_json::json!({
            "reader": transport.reader().name(),
            "atr": hex::encode_upper(atr.as_bytes()),
            "decoded": atr,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
    } else {
        writeln!(out, "Reader: {}", transport.reader().name())?;
        writeln!(out, "ATR: {}", hex::encode_upper(atr.as_bytes()))?;
        write_indented(out, &atr.to_string())?;
    }
    Ok(())
}

fn apdu(global: &GlobalArgs, apdus: &[String], out: &mut dyn Write) -> Result<(), CliError> {
    // Parse every argument before touching the card: a typo in the third APDU must not
    // leave the first two sent.
    let commands = apdus
        .iter()
        .map(|text| {
            let bytes = parse_hex("APDU", text)?;
            Command::parse(&bytes).map_err(|source| CliError::BadApdu {
                input: text.clone(),
                source,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut transport = open_powered(global)?;
    let mut describer = Describer::new(describe_options(global));
    let mut described = Vec::with_capacity(commands.len());
    for command in &commands {
        let response = transport.transmit(command)?;
        let exchange = describer.describe(command, &response);
        if !global.json {
            write!(out, "{exchange}")?;
        }
        described.push(exchange);
    }
    finish_recording(global, &mut transport)?;
    if global.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&described)?)?;
    }
    Ok(())
}

fn describe_options(global: &GlobalArgs) -> DescribeOptions {
    DescribeOptions {
        show_secrets: global.show_secrets,
    }
}

fn card_read(global: &GlobalArgs, args: &ReadArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let aid = match &args.aid {
        Some(text) => {
            let aid = parse_hex("--aid", text)?;
            if !(5..=16).contains(&aid.len()) {
                return Err(CliError::BadArgument {
                    argument: "--aid",
                    input: text.clone(),
                    expected: "an AID of 5 to 16 bytes (ISO 7816-4 §12.2.3)",
                });
            }
            Some(aid)
        }
        None => None,
    };
    let date = match &args.date {
        Some(text) => parse_date(text)?,
        None => today_bcd(),
    };
    let unpredictable_number = match &args.unpredictable_number {
        Some(text) => <[u8; 4]>::try_from(parse_hex("--unpredictable-number", text)?.as_slice())
            .map_err(|_| CliError::BadArgument {
                argument: "--unpredictable-number",
                input: text.clone(),
                expected: "exactly 4 bytes (8 hex digits)",
            })?,
        None => random_bytes()?,
    };
    let options = ReadOptions {
        aid,
        terminal_data: emv::default_terminal_data(date, unpredictable_number),
    };
    let mut transport = open_powered(global)?;
    let atr_hex = transport
        .atr()
        .map(|atr| hex::encode_upper(atr.as_bytes()))
        .unwrap_or_default();
    let result = emv::read_card(&mut transport, &options);
    finish_recording(global, &mut transport)?;
    let report = result?;
    let mut describer = Describer::new(describe_options(global));
    let mut described: Vec<DescribedExchange> = report
        .exchanges()
        .iter()
        .map(|exchange| describer.describe(&exchange.command, &exchange.response))
        .collect();
    if !args.show_pan
        && let Some(pan) = &report.cardholder.pan
    {
        for exchange in &mut described {
            exchange.mask_text(pan, &emv::mask_pan(pan));
        }
    }
    if global.json {
        let json = card_read_json(
            transport.reader().name(),
            &atr_hex,
            &report,
            &described,
            args.show_pan,
        );
        writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
        return Ok(());
    }
    writeln!(out, "Reader: {}", transport.reader().name())?;
    writeln!(out, "ATR: {atr_hex}")?;
    writeln!(out)?;
    for exchange in &described {
        write!(out, "{exchange}")?;
    }
    writeln!(out)?;
    write!(out, "{}", card_summary(&report, args.show_pan))?;
    Ok(())
}

/// The card read's findings, in words.
pub fn card_summary(report: &CardReadReport, show_pan: bool) -> String {
    let mut text = String::new();
    let mut line = |label: &str, value: String| {
        text.push_str(&format!("{label:<20}{value}\n"));
    };
    let offered = report
        .candidates
        .iter()
        .map(|candidate| {
            let label = candidate.label.as_deref().unwrap_or("(no label)");
            format!("{} {label}", hex::encode_upper(&candidate.aid))
        })
        .collect::<Vec<_>>()
        .join("; ");
    line("Directory:", report.directory.to_string());
    line("Applications:", offered);
    line(
        "Selected:",
        format!(
            "{} {}",
            hex::encode_upper(&report.selected.aid),
            report.selected.label.as_deref().unwrap_or("(no label)")
        ),
    );
    line(
        "AIP:",
        format!(
            "{}{}",
            hex::encode_upper(report.aip),
            tlv::decode_value(0x82, &report.aip)
                .map(|text| format!(" ({text})"))
                .unwrap_or_default()
        ),
    );
    let holder = &report.cardholder;
    let pan = match &holder.pan {
        Some(pan) if show_pan => pan.clone(),
        Some(pan) => format!("{} (masked; --show-pan to show)", emv::mask_pan(pan)),
        None => "(not found)".to_owned(),
    };
    line("PAN:", pan);
    if let Some(sequence) = holder.pan_sequence {
        line("PAN sequence:", format!("{sequence:02}"));
    }
    if let Some(expiry) = &holder.expiry {
        line("Expires:", format_yymmdd(expiry));
    }
    if let Some(effective) = &holder.effective {
        line("Effective:", format_yymmdd(effective));
    }
    if let Some(name) = &holder.name {
        line("Cardholder:", name.clone());
    }
    if let Some(country) = &holder.issuer_country {
        line("Issuer country:", country.clone());
    }
    if let Some(currency) = &holder.currency {
        line("Currency:", currency.clone());
    }
    line(
        "ATC:",
        report
            .atc
            .map_or_else(|| "(not given)".to_owned(), |atc| atc.to_string()),
    );
    line(
        "PIN tries left:",
        report
            .pin_tries_left
            .map_or_else(|| "(not given)".to_owned(), |tries| tries.to_string()),
    );
    text
}

fn card_read_json(
    reader_name: &str,
    atr_hex: &str,
    report: &CardReadReport,
    exchanges: &[DescribedExchange],
    show_pan: bool,
) -> serde_json::Value {
    let holder = &report.cardholder;
    let pan = holder.pan.as_ref().map(|pan| {
        if show_pan {
            pan.clone()
        } else {
            emv::mask_pan(pan)
        }
    });
    serde_json::json!({
        "reader": reader_name,
        "atr": atr_hex,
        "directory": report.directory,
        "candidates": report.candidates,
        "selected": report.selected,
        "aip": hex::encode_upper(report.aip),
        "afl": report.afl.iter().map(hex::encode_upper).collect::<Vec<_>>(),
        "cardholder": {
            "pan": pan,
            "pan_masked": !show_pan,
            "pan_sequence": holder.pan_sequence,
            "expiry": holder.expiry,
            "effective": holder.effective,
            "name": holder.name,
            "issuer_country": holder.issuer_country,
            "currency": holder.currency,
        },
        "atc": report.atc,
        "pin_tries_left": report.pin_tries_left,
        "exchanges": exchanges,
    })
}

fn tlv_command(global: &GlobalArgs, text: &str, out: &mut dyn Write) -> Result<(), CliError> {
    let bytes = parse_hex("TLV", text)?;
    let tlvs = tlv::parse(&bytes).map_err(|source| CliError::BadTlv {
        input: text.to_owned(),
        source,
    })?;
    if global.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&tlvs)?)?;
    } else {
        write!(out, "{}", tlv::render(&tlvs))?;
        if !tlv::render(&tlvs).ends_with('\n') {
            writeln!(out)?;
        }
    }
    Ok(())
}

fn trace_command(
    global: &GlobalArgs,
    command: &TraceCommand,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    match command {
        TraceCommand::Show { file } => {
            show(open_trace(file)?, out, describe_options(global))?;
            Ok(())
        }
        TraceCommand::Diff { first, second } => {
            let (a, b) = (format::read_file(first)?, format::read_file(second)?);
            let differences = crate::trace::diff::diff(&a, &b);
            if global.json {
                writeln!(out, "{}", serde_json::to_string_pretty(&differences)?)?;
            } else {
                for line in &differences {
                    writeln!(out, "{line}")?;
                }
            }
            if differences.is_empty() {
                Ok(())
            } else {
                Err(CliError::TracesDiffer {
                    count: differences.len(),
                })
            }
        }
        TraceCommand::Replay { file, pin_stdin } => {
            let trace = open_trace(file)?;
            let recorded_reader = trace.header().reader.clone();
            let uri = match (&global.reader, recorded_reader) {
                (Some(uri), _) => uri.clone(),
                (None, Some(text)) => ReaderUri::parse(&text).map_err(ReaderError::from)?,
                (None, None) => ReaderUri::default(),
            };
            let options = CheckOptions {
                pin: if *pin_stdin {
                    Some(read_pin_from_stdin()?)
                } else {
                    None
                },
            };
            let mut card = reader::open_with(&uri, &global.open_options())?;
            let report =
                check_card(trace, &mut card, &options).map_err(|source| CliError::Check {
                    file: file.clone(),
                    source,
                })?;
            if global.json {
                writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
            } else {
                for mismatch in &report.mismatches {
                    writeln!(out, "line {}: {}", mismatch.line, mismatch.what)?;
                    writeln!(out, "  expected {}", mismatch.expected)?;
                    writeln!(out, "  received {}", mismatch.received)?;
                    for line in &mismatch.explanation {
                        writeln!(out, "  {line}")?;
                    }
                }
                writeln!(
                    out,
                    "{}: {} exchanges sent to {uri}, {} differ from the recording",
                    file.display(),
                    report.exchanges,
                    report.mismatches.len()
                )?;
            }
            if report.all_match() {
                Ok(())
            } else {
                Err(CliError::Mismatches {
                    file: file.clone(),
                    mismatches: report.mismatches.len(),
                    exchanges: report.exchanges,
                })
            }
        }
        TraceCommand::Import { from, file, output } => {
            import_command(from, file, output.as_deref(), out)
        }
    }
}

/// `telepay vpcd serve`: the card is powered once before connecting (a card that
/// cannot be served fails here), then served until the connections run out.
fn vpcd_serve(
    global: &GlobalArgs,
    args: &VpcdServeArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    use crate::vpcd::serve::{ServeOptions, serve};
    use crate::vpcd::{Session, VirtualCard};

    let uri = match &args.card {
        Some(uri) => uri.clone(),
        None => global.reader_or(ReaderUri::default),
    };
    let mut card = VirtualCard::new(reader::open_with(&uri, &global.open_options())?);
    let atr = card.power_up()?.to_vec();
    let address = format!("{}:{}", args.host, args.port);
    if let Some(path) = &global.record {
        let protocol = crate::atr::Atr::parse(&atr)
            .ok()
            .and_then(|parsed| parsed.protocols().first().copied());
        let extra = vec![("vpcd".to_owned(), address.clone())];
        card.set_observer(Box::new(start_recording(
            global, path, &uri, protocol, &atr, extra,
        )?));
    }
    eprintln!(
        "telepay vpcd: serving {uri} (ATR {}) to vpcd at {address}",
        hex::encode_upper(&atr)
    );
    let options = ServeOptions {
        host: args.host.clone(),
        port: args.port,
        max_connections: args.max_connections,
        give_up_after: args.give_up_after.map(std::time::Duration::from_secs),
        verbose: args.verbose,
        ..ServeOptions::default()
    };
    let mut session = Session::new(card);
    let result = serve(&mut session, &options, &mut std::io::stderr());
    if let (Some(path), Some(mut observer)) = (&global.record, session.card_mut().take_observer()) {
        observer.finish().map_err(|source| CliError::Record {
            path: path.clone(),
            source,
        })?;
    }
    let report = result?;
    if global.json {
        let json = serde_json::json!({
            "card": uri.to_string(),
            "vpcd": address,
            "connections": report.connections,
            "failed_connections": report.failed_connections,
            "commands": report.commands,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
    } else {
        writeln!(
            out,
            "served {uri} to vpcd at {address}: {} connections ({} closed on an error), {} commands",
            report.connections, report.failed_connections, report.commands
        )?;
    }
    Ok(())
}

/// `telepay serial serve`: the card waits, mute, for the terminal's reset; it is
/// powered then, as a card inserted in a reader is.
fn serial_serve(
    global: &GlobalArgs,
    args: &SerialServeArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    use crate::reader::uri::Parity;
    use crate::serial::card::{CardLine, CardLineOptions};
    use crate::serial::serve::{ServeOptions, serve};
    use crate::serial::{Line, LineSettings};

    let uri = match &args.card {
        Some(uri) => uri.clone(),
        None => global.reader_or(ReaderUri::default),
    };
    // A software card's profile says how it behaves on the line; options override it.
    let (reader, mut behaviour): (Box<dyn Reader + Send>, _) = match &uri {
        ReaderUri::Sim(sim_uri) => {
            let sim = reader::sim::SimReader::open(sim_uri)?;
            let behaviour = sim.line_behaviour();
            (Box::new(sim), behaviour)
        }
        other => (
            reader::open_with(other, &global.open_options())?,
            Default::default(),
        ),
    };
    if let Some(null_bytes) = args.null_bytes {
        behaviour.t0_null_bytes = null_bytes;
    }
    if let Some(ack_each_byte) = args.ack_each_byte {
        behaviour.t0_ack_each_byte = ack_each_byte;
    }
    if let Some(wtx) = args.wtx {
        behaviour.t1_waiting_time_extension = wtx;
    }
    let settings = LineSettings {
        baud: args.baud,
        parity: match args.parity.as_str() {
            "none" => Parity::None,
            "odd" => Parity::Odd,
            _ => Parity::Even,
        },
        stop_bits: args.stop,
        // The card side writes its own echo (ServeOptions::echo); it reads none back.
        echo: false,
    };
    let mut line = Line::open(&args.port, settings)
        .map_err(|error| CliError::Reader(Box::new(ReaderError::Serial(Box::new(error)))))?;
    let options = CardLineOptions {
        behaviour,
        timing: crate::iso7816_3::timing::LineTiming::from_baud(args.baud, 1),
    };
    let mut card = CardLine::new(reader, options);
    let mut recorder = match &global.record {
        Some(path) => {
            let extra = vec![("serial".to_owned(), args.port.display().to_string())];
            // The ATR is recorded at each reset the terminal makes.
            Some(start_recording(global, path, &uri, None, &[], extra)?)
        }
        None => None,
    };
    eprintln!(
        "telepay serial: playing {uri} on {} ({} baud); waiting for a reset",
        args.port.display(),
        args.baud
    );
    let serve_options = ServeOptions {
        echo: args.echo,
        max_resets: args.max_sessions,
        verbose: args.verbose,
    };
    let result = serve(
        &mut card,
        &mut line,
        serve_options,
        recorder
            .as_mut()
            .map(|r| r as &mut dyn crate::reader::ExchangeObserver),
        &mut std::io::stderr(),
    );
    if let (Some(path), Some(mut recorder)) = (&global.record, recorder) {
        crate::reader::ExchangeObserver::finish(&mut recorder).map_err(|source| {
            CliError::Record {
                path: path.clone(),
                source,
            }
        })?;
    }
    let report =
        result.map_err(|error| CliError::Reader(Box::new(ReaderError::Serial(Box::new(error)))))?;
    if global.json {
        let json = serde_json::json!({
            "card": uri.to_string(),
            "port": args.port.display().to_string(),
            "resets": report.resets,
            "commands": report.commands,
            "failures": report.failures,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
    } else {
        writeln!(
            out,
            "played {uri} on {}: {} resets, {} commands, {} failures",
            args.port.display(),
            report.resets,
            report.commands,
            report.failures
        )?;
    }
    Ok(())
}

/// A new trace file for `--record` (never overwriting one), its header filled from the
/// reader and the options, the card's ATR (unless empty) as its first event.
fn start_recording(
    global: &GlobalArgs,
    path: &Path,
    uri: &ReaderUri,
    protocol: Option<crate::atr::Protocol>,
    atr: &[u8],
    mut extra: Vec<(String, String)>,
) -> Result<Recorder<std::io::BufWriter<std::fs::File>>, CliError> {
    let record_error = |source| CliError::Record {
        path: path.to_owned(),
        source,
    };
    // Never overwrite: an earlier recording may be the only copy of a card's dialogue.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(record_error)?;
    extra.insert(
        0,
        (
            "tool".to_owned(),
            format!("telepay {}", env!("CARGO_PKG_VERSION")),
        ),
    );
    let header = Header {
        version: FORMAT_VERSION,
        reader: Some(uri.to_string()),
        protocol: protocol.map(|protocol| protocol.to_string()),
        profile: match uri {
            ReaderUri::Sim(sim) => Some(sim.profile.clone()),
            _ => None,
        },
        date: Some(now_rfc3339()),
        secrets: if global.record_secrets {
            Secrets::Recorded
        } else {
            Secrets::Masked
        },
        extra,
    };
    let mut recorder =
        Recorder::new(std::io::BufWriter::new(file), &header).map_err(record_error)?;
    // Empty when the card has not answered yet (a card on a serial line waiting for
    // its reset): the ATR is recorded when it comes.
    if !atr.is_empty() {
        recorder.answer_to_reset(atr);
    }
    Ok(recorder)
}

fn open_trace(path: &Path) -> Result<format::Reader<std::io::BufReader<std::fs::File>>, CliError> {
    let origin = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|source| TraceError::Io {
        origin: origin.clone(),
        source,
    })?;
    Ok(format::Reader::new(std::io::BufReader::new(file), &origin)?)
}

fn import_command(
    from: &str,
    file: &Path,
    output: Option<&Path>,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    use crate::trace::import::{ImportFormat, detect, import, text_from_bytes};
    let origin = file.display().to_string();
    let bytes = std::fs::read(file).map_err(|source| TraceError::Io {
        origin: origin.clone(),
        source,
    })?;
    let text = text_from_bytes(&bytes, &origin)?;
    let format = if from == "auto" {
        detect(text).ok_or_else(|| {
            CliError::ImportFormat(format!(
                "{origin}: cannot tell which tool wrote this log; name it with --from ({})",
                ImportFormat::ALL
                    .iter()
                    .map(|format| format.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?
    } else {
        from.parse::<ImportFormat>()
            .map_err(|error| CliError::ImportFormat(error.to_string()))?
    };
    let report = import(format, text, &origin)?;
    for skipped in &report.skipped {
        eprintln!(
            "telepay: warning: {origin} line {}: not understood, skipped: {}",
            skipped.line, skipped.text
        );
    }
    if report.skipped_beyond_limit > 0 {
        eprintln!(
            "telepay: warning: {origin}: {} more lines not understood, not listed",
            report.skipped_beyond_limit
        );
    }
    let text = format::to_string(&report.trace);
    match output {
        Some(path) => {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
                .map_err(|source| CliError::Record {
                    path: path.to_owned(),
                    source,
                })?;
            file.write_all(text.as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|source| CliError::Record {
                    path: path.to_owned(),
                    source,
                })?;
        }
        None => out.write_all(text.as_bytes())?,
    }
    Ok(())
}

/// One line of standard input, the newline removed; the buffer is zeroized.
fn read_pin_from_stdin() -> Result<zeroize::Zeroizing<String>, CliError> {
    let mut line = zeroize::Zeroizing::new(String::new());
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|error| CliError::Pin(error.to_string()))?;
    let pin = zeroize::Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_owned());
    if pin.is_empty() {
        return Err(CliError::Pin("no PIN given".to_owned()));
    }
    Ok(pin)
}

/// The current time as RFC 3339 UTC, for trace headers: the edge where the clock is read.
fn now_rfc3339() -> String {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    crate::calendar::rfc3339_utc(i64::try_from(seconds).unwrap_or(0))
}

fn write_indented(out: &mut dyn Write, text: &str) -> Result<(), CliError> {
    for line in text.lines() {
        writeln!(out, "  {line}")?;
    }
    Ok(())
}

/// `YYMMDD` → `20YY-MM-DD` for display.
fn format_yymmdd(bcd: &str) -> String {
    match (bcd.get(0..2), bcd.get(2..4), bcd.get(4..6)) {
        (Some(year), Some(month), Some(day)) if bcd.len() == 6 => {
            format!("20{year}-{month}-{day}")
        }
        _ => bcd.to_owned(),
    }
}

/// A `YYMMDD` argument as three BCD bytes, checked as a calendar date.
fn parse_date(text: &str) -> Result<[u8; 3], CliError> {
    let bad = || CliError::BadArgument {
        argument: "--date",
        input: text.to_owned(),
        expected: "a date as YYMMDD, e.g. 261125",
    };
    if text.len() != 6 || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(bad());
    }
    let number = |range: std::ops::Range<usize>| {
        text.get(range)
            .and_then(|digits| digits.parse::<u8>().ok())
            .ok_or_else(bad)
    };
    let (year, month, day) = (number(0..2)?, number(2..4)?, number(4..6)?);
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(2000 + u32::from(year), month)
    {
        return Err(bad());
    }
    let bcd = |value: u8| ((value / 10) << 4) | (value % 10);
    Ok([bcd(year), bcd(month), bcd(day)])
}

fn days_in_month(year: u32, month: u8) -> u8 {
    match month {
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Today's date (UTC) as YYMMDD BCD: the edge where the clock is read.
fn today_bcd() -> [u8; 3] {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    let (year, month, day) =
        crate::calendar::civil_from_days(i64::try_from(seconds / 86_400).unwrap_or(0));
    let bcd = |value: i64| {
        let value = u8::try_from(value.rem_euclid(100)).unwrap_or(0);
        ((value / 10) << 4) | (value % 10)
    };
    [bcd(year), bcd(month), bcd(day)]
}

fn random_bytes<const N: usize>() -> Result<[u8; N], CliError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|error| CliError::Random(error.to_string()))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_checked() {
        assert_eq!(parse_date("261125").unwrap(), [0x26, 0x11, 0x25]);
        assert_eq!(parse_date("240229").unwrap(), [0x24, 0x02, 0x29]);
        for bad in ["250229", "261325", "2611", "26112a", "261100"] {
            assert!(
                matches!(
                    parse_date(bad),
                    Err(CliError::BadArgument {
                        argument: "--date",
                        ..
                    })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn wait_durations() {
        let table: [(&str, u64); 7] = [
            ("30s", 30_000),
            ("30", 30_000),
            ("500ms", 500),
            ("2m", 120_000),
            ("1h", 3_600_000),
            ("0", 0),
            ("18446744073709551s", 18_446_744_073_709_551_000),
        ];
        for (text, millis) in table {
            assert_eq!(
                parse_wait(text).ok(),
                Some(std::time::Duration::from_millis(millis)),
                "{text}"
            );
        }
        for bad in [
            "",
            "s",
            "1.5s",
            "-1s",
            "10 s",
            "10sec",
            "1d",
            "30S",
            "18446744073709552s",
            "99999999999999999999",
        ] {
            match parse_wait(bad) {
                Err(CliError::BadArgument {
                    argument,
                    input,
                    expected,
                }) => {
                    assert_eq!(
                        (argument, input.as_str(), expected),
                        ("--wait", bad, WAIT_FORMS)
                    );
                }
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }

    proptest::proptest! {
        /// `--wait` never panics, and whole milliseconds read back exactly.
        #[test]
        fn wait_never_panics(text in "\\PC{0,24}", millis in 0u64..u64::MAX) {
            let _ = parse_wait(&text);
            proptest::prop_assert_eq!(
                parse_wait(&format!("{millis}ms")).ok(),
                Some(std::time::Duration::from_millis(millis))
            );
        }
    }

    #[test]
    fn yymmdd_display() {
        assert_eq!(format_yymmdd("281231"), "2028-12-31");
        assert_eq!(format_yymmdd("2812"), "2812");
    }
}
