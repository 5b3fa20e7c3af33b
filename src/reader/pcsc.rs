//! The `pcsc:` backend: real smart-card readers through the PC/SC resource manager
//! (pcsc-lite's `pcscd` on Linux and macOS, WinSCard on Windows), with the `pcsc` crate.
//! Built with the cargo feature `pcsc`.
//!
//! - **Which reader.** `pcsc:` takes the first reader, in the resource manager's order,
//!   that holds a card; `pcsc:NAME` does the same among the readers whose name contains
//!   NAME, ignoring case — or takes the one reader named exactly NAME. When several
//!   readers qualify the first wins, and the reader's own name is what [`Reader::name`]
//!   (and so the CLI's `Reader:` line) shows. A card another application holds
//!   exclusively is passed over when another card is free, a mute card last; see
//!   [`choose_reader`].
//! - **Waiting.** With [`OpenOptions::wait`] (`--wait 30s`), power-on waits for a card
//!   with `SCardGetStatusChange`, and notices readers plugged in meanwhile.
//! - **Sharing.** `?share=shared` (the default, as pcsc-tools, OpenSC and pyscard do)
//!   or `?share=exclusive` (`SCardConnect`'s share mode).
//! - **Protocol.** T=0 or T=1, whichever the resource manager negotiates from the ATR
//!   (PPS, ISO 7816-3 §9); reported by [`Reader::protocol`].
//! - **Resets.** Warm: `SCardReconnect(SCARD_RESET_CARD)` (ISO 7816-3 §6.2.3); cold:
//!   `SCardReconnect(SCARD_UNPOWER_CARD)` (§6.2.2). Power-off disconnects with
//!   `SCARD_UNPOWER_CARD`; dropping the reader disconnects with `SCARD_RESET_CARD`, so
//!   no security state (a verified PIN) outlives telepay's dialogue.
//! - **One transaction per dialogue.** Power-on begins a PC/SC transaction
//!   (`SCardBeginTransaction`) that lasts until power-off or drop, so no other
//!   application's APDU can come between two of the dialogue's (a SELECT and the READ
//!   RECORDs that depend on it). Other applications wait meanwhile: under pcsc-lite their
//!   `SCardConnect`, `SCardTransmit` and `SCardBeginTransaction` block until telepay lets
//!   go. See [`PcscReader`] for how the transaction is held.
//! - **Bytes as they are.** [`Reader::transmit_raw`] sends the command unchanged and
//!   returns the answer unchanged; `61xx` and `6Cxx` (ISO 7816-3 §10.3.5, ISO 7816-4
//!   §5.3.4) are handled above, by [`Transport`](super::Transport). pcsc-lite itself does
//!   not issue GET RESPONSE: under T=0 a `61xx` reaches the application when the reader
//!   driver passes it up, which vsmartcard's vpcd does; some drivers of physical readers
//!   fetch the rest themselves, and the transport then simply sees `9000`.
//! - **Errors** ([`PcscError`]) name the reader and keep the PC/SC code ([`PcscCode`]).
//!
//! The pure parts — reader matching ([`matching_readers`], [`choose_reader`]), card
//! states ([`CardState::from_flags`]) and error mapping ([`PcscError::from_pcsc`]) —
//! are tested here; the backend itself against a real pcscd in `tests/pcsc_backend.rs`.

use std::ffi::CString;
use std::fmt;
use std::time::{Duration, Instant};

use ::pcsc as sys;

use super::uri::{PcscUri, ReaderUri, ShareMode};
use super::{OpenOptions, Reader, ReaderError, ReaderListing, ResetKind};
use crate::atr::Protocol;

/// The protocols telepay offers in `SCardConnect`/`SCardReconnect`: the resource manager
/// picks the card's preferred one (the first offered in the ATR, or the one TA2 fixes).
const PROTOCOLS: sys::Protocols = sys::Protocols::T0.union(sys::Protocols::T1);

/// The longest single `SCardGetStatusChange` wait: the reader list is read again after
/// each, so that a reader plugged in while telepay waits is seen within this time.
const WAIT_SLICE: Duration = Duration::from_millis(1000);

/// The PC/SC function names errors report, as the specification spells them.
mod call {
    pub const ESTABLISH: &str = "SCardEstablishContext";
    pub const LIST: &str = "SCardListReaders";
    pub const STATUS_CHANGE: &str = "SCardGetStatusChange";
    pub const CONNECT: &str = "SCardConnect";
    pub const BEGIN: &str = "SCardBeginTransaction";
    pub const STATUS: &str = "SCardStatus";
    pub const RECONNECT: &str = "SCardReconnect";
    pub const TRANSMIT: &str = "SCardTransmit";
    pub const DISCONNECT: &str = "SCardDisconnect";
}

/// A PC/SC error code: the resource manager's description, its `SCARD_…` name and the
/// number, so that a user can search for any of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PcscCode(pub sys::Error);

impl PcscCode {
    /// The numeric code, e.g. `0x8010001D` for `SCARD_E_NO_SERVICE`.
    pub fn code(self) -> u32 {
        // `pcsc::Error` is a `repr(u32)` enum whose discriminants are the codes.
        self.0 as u32
    }

    /// The code's name in the PC/SC headers (`winscard.h`, `pcsclite.h`).
    pub fn symbol(self) -> Option<&'static str> {
        use sys::Error as E;
        Some(match self.0 {
            E::InternalError => "SCARD_F_INTERNAL_ERROR",
            E::Cancelled => "SCARD_E_CANCELLED",
            E::InvalidHandle => "SCARD_E_INVALID_HANDLE",
            E::InvalidParameter => "SCARD_E_INVALID_PARAMETER",
            E::InvalidTarget => "SCARD_E_INVALID_TARGET",
            E::NoMemory => "SCARD_E_NO_MEMORY",
            E::WaitedTooLong => "SCARD_F_WAITED_TOO_LONG",
            E::InsufficientBuffer => "SCARD_E_INSUFFICIENT_BUFFER",
            E::UnknownReader => "SCARD_E_UNKNOWN_READER",
            E::Timeout => "SCARD_E_TIMEOUT",
            E::SharingViolation => "SCARD_E_SHARING_VIOLATION",
            E::NoSmartcard => "SCARD_E_NO_SMARTCARD",
            E::UnknownCard => "SCARD_E_UNKNOWN_CARD",
            E::CantDispose => "SCARD_E_CANT_DISPOSE",
            E::ProtoMismatch => "SCARD_E_PROTO_MISMATCH",
            E::NotReady => "SCARD_E_NOT_READY",
            E::InvalidValue => "SCARD_E_INVALID_VALUE",
            E::SystemCancelled => "SCARD_E_SYSTEM_CANCELLED",
            E::CommError => "SCARD_F_COMM_ERROR",
            E::UnknownError => "SCARD_F_UNKNOWN_ERROR",
            E::InvalidAtr => "SCARD_E_INVALID_ATR",
            E::NotTransacted => "SCARD_E_NOT_TRANSACTED",
            E::ReaderUnavailable => "SCARD_E_READER_UNAVAILABLE",
            E::Shutdown => "SCARD_P_SHUTDOWN",
            E::PciTooSmall => "SCARD_E_PCI_TOO_SMALL",
            E::ReaderUnsupported => "SCARD_E_READER_UNSUPPORTED",
            E::DuplicateReader => "SCARD_E_DUPLICATE_READER",
            E::CardUnsupported => "SCARD_E_CARD_UNSUPPORTED",
            E::NoService => "SCARD_E_NO_SERVICE",
            E::ServiceStopped => "SCARD_E_SERVICE_STOPPED",
            E::IccInstallation => "SCARD_E_ICC_INSTALLATION",
            E::IccCreateorder => "SCARD_E_ICC_CREATEORDER",
            E::UnsupportedFeature => "SCARD_E_UNSUPPORTED_FEATURE",
            E::DirNotFound => "SCARD_E_DIR_NOT_FOUND",
            E::FileNotFound => "SCARD_E_FILE_NOT_FOUND",
            E::NoDir => "SCARD_E_NO_DIR",
            E::NoFile => "SCARD_E_NO_FILE",
            E::NoAccess => "SCARD_E_NO_ACCESS",
            E::WriteTooMany => "SCARD_E_WRITE_TOO_MANY",
            E::BadSeek => "SCARD_E_BAD_SEEK",
            E::InvalidChv => "SCARD_E_INVALID_CHV",
            E::UnknownResMng => "SCARD_E_UNKNOWN_RES_MNG",
            E::NoSuchCertificate => "SCARD_E_NO_SUCH_CERTIFICATE",
            E::CertificateUnavailable => "SCARD_E_CERTIFICATE_UNAVAILABLE",
            E::NoReadersAvailable => "SCARD_E_NO_READERS_AVAILABLE",
            E::CommDataLost => "SCARD_E_COMM_DATA_LOST",
            E::NoKeyContainer => "SCARD_E_NO_KEY_CONTAINER",
            E::ServerTooBusy => "SCARD_E_SERVER_TOO_BUSY",
            E::UnsupportedCard => "SCARD_W_UNSUPPORTED_CARD",
            E::UnresponsiveCard => "SCARD_W_UNRESPONSIVE_CARD",
            E::UnpoweredCard => "SCARD_W_UNPOWERED_CARD",
            E::ResetCard => "SCARD_W_RESET_CARD",
            E::RemovedCard => "SCARD_W_REMOVED_CARD",
            E::SecurityViolation => "SCARD_W_SECURITY_VIOLATION",
            E::WrongChv => "SCARD_W_WRONG_CHV",
            E::ChvBlocked => "SCARD_W_CHV_BLOCKED",
            E::Eof => "SCARD_W_EOF",
            E::CancelledByUser => "SCARD_W_CANCELLED_BY_USER",
            E::CardNotAuthenticated => "SCARD_W_CARD_NOT_AUTHENTICATED",
            E::CacheItemNotFound => "SCARD_W_CACHE_ITEM_NOT_FOUND",
            E::CacheItemStale => "SCARD_W_CACHE_ITEM_STALE",
            E::CacheItemTooBig => "SCARD_W_CACHE_ITEM_TOO_BIG",
            #[allow(unreachable_patterns)] // Windows has one more code.
            _ => return None,
        })
    }
}

impl fmt::Display for PcscCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.symbol() {
            Some(symbol) => write!(f, "{} [{symbol} 0x{:08X}]", self.0, self.code()),
            None => write!(f, "{} [0x{:08X}]", self.0, self.code()),
        }
    }
}

/// What a reader holds, from the flags `SCardGetStatusChange` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CardState {
    /// No card.
    Absent,
    /// A card, free to use.
    Present,
    /// A card that another application (or telepay itself) uses in shared mode.
    InUse,
    /// A card another application holds exclusively: connecting gives a sharing
    /// violation until it lets go.
    HeldExclusively,
    /// A card that gave no Answer To Reset (mute, or inserted the wrong way).
    Mute,
    /// The reader cannot be used (unplugged, driver failure) or reports nothing.
    Unavailable,
}

impl CardState {
    /// The state the `SCARD_STATE_…` flags describe.
    pub fn from_flags(flags: sys::State) -> CardState {
        if flags.intersects(sys::State::UNAVAILABLE | sys::State::UNKNOWN | sys::State::IGNORE) {
            CardState::Unavailable
        } else if !flags.contains(sys::State::PRESENT) {
            CardState::Absent
        } else if flags.contains(sys::State::MUTE) {
            CardState::Mute
        } else if flags.contains(sys::State::EXCLUSIVE) {
            CardState::HeldExclusively
        } else if flags.contains(sys::State::INUSE) {
            CardState::InUse
        } else {
            CardState::Present
        }
    }

    /// How much telepay prefers a reader in this state (lower first); `None` when
    /// there is no card to talk to.
    fn preference(self) -> Option<u8> {
        match self {
            CardState::Present | CardState::InUse => Some(0),
            CardState::HeldExclusively => Some(1),
            CardState::Mute => Some(2),
            CardState::Absent | CardState::Unavailable => None,
        }
    }
}

impl fmt::Display for CardState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CardState::Absent => "no card",
            CardState::Present => "card present",
            CardState::InUse => "card present, in use (shared)",
            CardState::HeldExclusively => "card held exclusively by another application",
            CardState::Mute => "card mute (no answer to reset)",
            CardState::Unavailable => "reader unavailable",
        })
    }
}

/// One reader as the resource manager reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReaderStatus {
    /// The reader's name, e.g. `Virtual PCD 00 01`.
    pub name: String,
    /// What it holds.
    pub state: CardState,
    /// The ATR of the card in it (empty without a card).
    pub atr: Vec<u8>,
}

impl ReaderStatus {
    /// The URI that opens exactly this reader, readable as the name is: only `%` and
    /// `?`, which would end the name, are escaped. Quote it in a shell.
    pub fn uri(&self) -> String {
        let mut uri = String::from("pcsc:");
        for character in self.name.chars() {
            match character {
                '%' => uri.push_str("%25"),
                '?' => uri.push_str("%3F"),
                other => uri.push(other),
            }
        }
        uri
    }

    /// This reader as `telepay readers` lists it: its URI, its state and the ATR.
    pub fn listing(&self) -> ReaderListing {
        let description = if self.atr.is_empty() {
            self.state.to_string()
        } else {
            format!("{}, ATR {}", self.state, hex::encode_upper(&self.atr))
        };
        ReaderListing {
            uri: self.uri(),
            description,
        }
    }
}

impl fmt::Display for ReaderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name, self.state)
    }
}

/// Why a PC/SC reader could not be used. Every variant that involves a PC/SC call keeps
/// its code; `reader` is the reader's name, or the URI as given before a reader was
/// chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PcscError {
    /// The resource manager does not answer.
    #[error(
        "pcscd is not running: start it with `sudo systemctl start pcscd` or `scripts/pcscd-up` \
         ({operation}: {code})"
    )]
    NoService {
        /// The PC/SC call that found out.
        operation: &'static str,
        /// The PC/SC code.
        code: PcscCode,
    },
    /// The resource manager went away during the dialogue.
    #[error(
        "reader {reader}: pcscd stopped during the dialogue; start it again (`sudo systemctl start pcscd` \
         or `scripts/pcscd-up`) and rerun ({operation}: {code})"
    )]
    ServiceStopped {
        /// The reader.
        reader: String,
        /// The PC/SC call that failed.
        operation: &'static str,
        /// The PC/SC code.
        code: PcscCode,
    },
    /// The resource manager knows no reader at all.
    #[error(
        "no PC/SC reader is connected: plug one in (`pcsc_scan` shows what pcscd sees; a reader \
         plugged in after pcscd started may need pcscd restarted), or wait for one with --wait 30s"
    )]
    NoReaders,
    /// `pcsc:NAME` matches no reader.
    #[error("no PC/SC reader's name contains {wanted:?}; the readers are: {}", names(.readers))]
    NoMatchingReader {
        /// NAME as given.
        wanted: String,
        /// Every reader's name.
        readers: Vec<String>,
    },
    /// No reader that qualifies holds a card.
    #[error(
        "no card in {}: insert one, or let telepay wait for it (--wait 30s); {}",
        wanted_text(.wanted.as_deref()),
        statuses(.readers)
    )]
    NoCard {
        /// NAME as given, `None` for `pcsc:`.
        wanted: Option<String>,
        /// The readers that qualified, with their state.
        readers: Vec<ReaderStatus>,
    },
    /// No card came in time.
    #[error(
        "no card in {} after waiting {}; {}",
        wanted_text(.wanted.as_deref()),
        human_duration(*.waited),
        statuses(.readers)
    )]
    WaitTimedOut {
        /// NAME as given, `None` for `pcsc:`.
        wanted: Option<String>,
        /// How long telepay waited.
        waited: Duration,
        /// The readers that qualified at the end, with their state.
        readers: Vec<ReaderStatus>,
    },
    /// Another application holds the card exclusively.
    #[error(
        "reader {reader}: another application holds the card exclusively; close it (or let it \
         finish) and run again ({operation}: {code})"
    )]
    SharingViolation {
        /// The reader.
        reader: String,
        /// The PC/SC call refused.
        operation: &'static str,
        /// The PC/SC code.
        code: PcscCode,
    },
    /// The card left the reader (or was never there when telepay connected).
    #[error(
        "reader {reader}: the card was removed; insert it and run the dialogue again ({operation}: {code})"
    )]
    CardRemoved {
        /// The reader.
        reader: String,
        /// The PC/SC call that found out.
        operation: &'static str,
        /// The PC/SC code.
        code: PcscCode,
    },
    /// Another application reset the card: whatever state the dialogue built is gone.
    #[error(
        "reader {reader}: another application reset the card, so the dialogue's state is lost; \
         run it again ({operation}: {code})"
    )]
    CardReset {
        /// The reader.
        reader: String,
        /// The PC/SC call that found out.
        operation: &'static str,
        /// The PC/SC code.
        code: PcscCode,
    },
    /// The card does not answer.
    #[error(
        "reader {reader}: the card does not answer (mute, unpowered, or inserted the wrong way) \
         ({operation}: {code})"
    )]
    CardUnresponsive {
        /// The reader.
        reader: String,
        /// The PC/SC call that failed.
        operation: &'static str,
        /// The PC/SC code.
        code: PcscCode,
    },
    /// The reader went away or cannot be used.
    #[error(
        "reader {reader}: the reader is not available (unplugged, or its driver failed) \
         ({operation}: {code})"
    )]
    ReaderUnavailable {
        /// The reader.
        reader: String,
        /// The PC/SC call that failed.
        operation: &'static str,
        /// The PC/SC code.
        code: PcscCode,
    },
    /// The resource manager connected without a transmission protocol (a direct
    /// connection), so no APDU can be sent.
    #[error("reader {reader}: no transmission protocol (T=0 or T=1) was negotiated with the card")]
    NoProtocol {
        /// The reader.
        reader: String,
    },
    /// Any other PC/SC failure, with the call and its code.
    #[error("reader {reader}: {operation} failed: {code}")]
    Failed {
        /// The reader.
        reader: String,
        /// The PC/SC call that failed.
        operation: &'static str,
        /// The PC/SC code.
        code: PcscCode,
    },
}

impl PcscError {
    /// The meaning of `error`, returned by `operation` on `reader` (its name, or the URI
    /// before one is chosen).
    pub fn from_pcsc(reader: &str, operation: &'static str, error: sys::Error) -> PcscError {
        use sys::Error as E;
        let code = PcscCode(error);
        let reader = reader.to_owned();
        match error {
            E::NoService => PcscError::NoService { operation, code },
            // pcsc-lite reports a broken socket to pcscd as a communication error.
            E::ServiceStopped | E::Shutdown | E::CommError => PcscError::ServiceStopped {
                reader,
                operation,
                code,
            },
            E::NoReadersAvailable => PcscError::NoReaders,
            E::SharingViolation => PcscError::SharingViolation {
                reader,
                operation,
                code,
            },
            E::RemovedCard | E::NoSmartcard => PcscError::CardRemoved {
                reader,
                operation,
                code,
            },
            E::ResetCard => PcscError::CardReset {
                reader,
                operation,
                code,
            },
            E::UnresponsiveCard | E::UnpoweredCard | E::UnsupportedCard => {
                PcscError::CardUnresponsive {
                    reader,
                    operation,
                    code,
                }
            }
            E::ReaderUnavailable | E::UnknownReader => PcscError::ReaderUnavailable {
                reader,
                operation,
                code,
            },
            _ => PcscError::Failed {
                reader,
                operation,
                code,
            },
        }
    }
}

fn names(readers: &[String]) -> String {
    if readers.is_empty() {
        return "(none)".to_owned();
    }
    readers.join(", ")
}

fn wanted_text(wanted: Option<&str>) -> String {
    match wanted {
        None => "any PC/SC reader".to_owned(),
        Some(name) => format!("a PC/SC reader matching {name:?}"),
    }
}

fn statuses(readers: &[ReaderStatus]) -> String {
    if readers.is_empty() {
        return "pcscd sees no reader".to_owned();
    }
    let list = readers
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    format!("readers: {list}")
}

/// `30 s`, `1500 ms`: how long, for messages.
fn human_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis.is_multiple_of(1000) {
        format!("{} s", millis / 1000)
    } else {
        format!("{millis} ms")
    }
}

/// The positions in `names` of the readers `wanted` names: all of them for `None`;
/// otherwise the one reader named exactly `wanted`, else every reader whose name
/// contains it, ignoring case. Order is kept.
pub fn matching_readers(names: &[String], wanted: Option<&str>) -> Vec<usize> {
    let Some(wanted) = wanted else {
        return (0..names.len()).collect();
    };
    if let Some(exact) = names.iter().position(|name| name == wanted) {
        return vec![exact];
    }
    let wanted = wanted.to_lowercase();
    names
        .iter()
        .enumerate()
        .filter(|(_, name)| name.to_lowercase().contains(&wanted))
        .map(|(index, _)| index)
        .collect()
}

/// The position in `readers` (in the resource manager's order) of the reader to
/// connect to: the first whose card is free or shared; else the first whose card
/// another application holds exclusively (connecting then reports the sharing
/// violation); else the first with a mute card (connecting reports it mute). `None`
/// when no reader holds a card.
pub fn choose_reader(readers: &[ReaderStatus]) -> Option<usize> {
    readers
        .iter()
        .enumerate()
        .filter_map(|(index, reader)| reader.state.preference().map(|rank| (rank, index)))
        // `min_by_key` keeps the first of equals: the resource manager's order decides.
        .min_by_key(|(rank, _)| *rank)
        .map(|(_, index)| index)
}

/// Every reader the resource manager knows, with its state and the ATR of its card.
pub fn list() -> Result<Vec<ReaderStatus>, PcscError> {
    let context = establish()?;
    let names =
        list_names(&context).map_err(|error| PcscError::from_pcsc("pcsc:", call::LIST, error))?;
    states(&context, "pcsc:", &names)
}

fn establish() -> Result<sys::Context, PcscError> {
    sys::Context::establish(sys::Scope::User)
        .map_err(|error| PcscError::from_pcsc("pcsc:", call::ESTABLISH, error))
}

/// A reader's name as pcscd gives it, and as text.
#[derive(Clone)]
struct ReaderName {
    raw: CString,
    text: String,
}

/// `SCardListReaders`: every reader's name (none is not an error).
fn list_names(context: &sys::Context) -> Result<Vec<ReaderName>, sys::Error> {
    Ok(context
        .list_readers_owned()?
        .into_iter()
        .map(|raw| ReaderName {
            text: raw.to_string_lossy().into_owned(),
            raw,
        })
        .collect())
}

/// The current state of each of `names`, without waiting.
fn states(
    context: &sys::Context,
    uri: &str,
    names: &[ReaderName],
) -> Result<Vec<ReaderStatus>, PcscError> {
    let mut watched: Vec<sys::ReaderState> = names
        .iter()
        .map(|name| sys::ReaderState::new(name.raw.clone(), sys::State::UNAWARE))
        .collect();
    if watched.is_empty() {
        return Ok(Vec::new());
    }
    match context.get_status_change(Duration::ZERO, &mut watched) {
        // UNAWARE differs from any state, so the call returns at once with them all.
        Ok(()) | Err(sys::Error::Timeout) => {}
        Err(error) => return Err(PcscError::from_pcsc(uri, call::STATUS_CHANGE, error)),
    }
    Ok(names
        .iter()
        .zip(&watched)
        .map(|(name, state)| status_of(&name.text, state))
        .collect())
}

fn status_of(name: &str, state: &sys::ReaderState) -> ReaderStatus {
    let card_state = CardState::from_flags(state.event_state());
    ReaderStatus {
        name: name.to_owned(),
        state: card_state,
        atr: if card_state == CardState::Absent {
            Vec::new()
        } else {
            state.atr().to_vec()
        },
    }
}

/// An open connection to a card: the state between power-on and power-off.
struct Connection {
    card: sys::Card,
    protocol: Option<sys::Protocol>,
}

/// A PC/SC reader with a card in it; see the module documentation.
///
/// **How the dialogue's transaction is held.** The `pcsc` crate wraps
/// `SCardBeginTransaction` in a `Transaction<'_>` guard that borrows the `Card`
/// mutably and calls `SCardEndTransaction` when dropped, so a struct cannot own both,
/// and the crate does not expose the card handle for raw calls (nor would
/// `#![forbid(unsafe_code)]` allow them). Power-on therefore begins the transaction
/// through the guard and then forgets the guard — it holds only the borrow, so nothing
/// leaks — and the transaction ends with the connection: `SCardDisconnect` releases
/// the transactions of the handle it closes (power-off, drop, or the next power-on).
/// `SCardReconnect` (a reset) keeps it. `tests/pcsc_backend.rs` checks both against
/// pcscd: another client blocks during the dialogue and proceeds once it ends.
pub struct PcscReader {
    context: sys::Context,
    uri: PcscUri,
    share: ShareMode,
    wait: Option<Duration>,
    /// The URI until a reader is chosen, then the reader's name.
    name: String,
    connection: Option<Connection>,
    /// Room for the longest response: extended Le (65,536 bytes) plus SW1 SW2.
    receive: Vec<u8>,
}

impl fmt::Debug for PcscReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PcscReader")
            .field("name", &self.name)
            .field("share", &self.share)
            .field("wait", &self.wait)
            .field("connected", &self.connection.is_some())
            .field("protocol", &self.protocol())
            .finish_non_exhaustive()
    }
}

impl PcscReader {
    /// Connects to the resource manager for a `pcsc:` URI. The reader is chosen, and
    /// waited for, at power-on. Fails at once when pcscd is not running.
    pub fn open(uri: &PcscUri, options: &OpenOptions) -> Result<PcscReader, ReaderError> {
        let name = ReaderUri::Pcsc(uri.clone()).to_string();
        let context = sys::Context::establish(sys::Scope::User)
            .map_err(|error| PcscError::from_pcsc(&name, call::ESTABLISH, error))?;
        Ok(PcscReader {
            context,
            uri: uri.clone(),
            share: uri.share.unwrap_or(ShareMode::Shared),
            wait: options.wait,
            name,
            connection: None,
            receive: vec![0; sys::MAX_BUFFER_SIZE_EXTENDED],
        })
    }

    /// The share mode in use: the URI's, else shared.
    pub fn share_mode(&self) -> ShareMode {
        self.share
    }

    fn pcsc_share(&self) -> sys::ShareMode {
        match self.share {
            ShareMode::Shared => sys::ShareMode::Shared,
            ShareMode::Exclusive => sys::ShareMode::Exclusive,
        }
    }

    fn error(&self, operation: &'static str, error: sys::Error) -> ReaderError {
        PcscError::from_pcsc(&self.name, operation, error).into()
    }

    /// The readers' names. A context made before pcscd restarted fails (pcsc-lite's
    /// `SCardIsValidContext` checks only the client side, so it cannot tell): on the
    /// errors that mean so, a new context is made and the listing tried once more.
    fn fresh_reader_names(&mut self) -> Result<Vec<ReaderName>, PcscError> {
        use sys::Error as E;
        let names = match list_names(&self.context) {
            Err(E::NoService | E::ServiceStopped | E::CommError | E::InvalidHandle) => {
                self.context = sys::Context::establish(sys::Scope::User)
                    .map_err(|error| PcscError::from_pcsc(&self.name, call::ESTABLISH, error))?;
                list_names(&self.context)
            }
            result => result,
        };
        names.map_err(|error| PcscError::from_pcsc(&self.name, call::LIST, error))
    }

    /// Finds the reader to connect to, waiting for a card as long as allowed.
    fn select(&mut self) -> Result<ReaderName, PcscError> {
        let wanted = self.uri.name.clone();
        let started = Instant::now();
        // A wait too long to represent is a wait without end.
        let deadline = self.wait.and_then(|wait| started.checked_add(wait));
        loop {
            let names = self.fresh_reader_names()?;
            let texts: Vec<String> = names.iter().map(|name| name.text.clone()).collect();
            let candidates: Vec<ReaderName> = matching_readers(&texts, wanted.as_deref())
                .into_iter()
                .filter_map(|index| names.get(index).cloned())
                .collect();
            let found = match states(&self.context, &self.name, &candidates) {
                Ok(found) => found,
                // A reader unplugged between the listing and the query: list again.
                Err(PcscError::ReaderUnavailable { .. }) if self.wait.is_some() => Vec::new(),
                Err(error) => return Err(error),
            };
            // `found` is empty or parallel to `candidates`.
            if let Some(name) = choose_reader(&found).and_then(|index| candidates.get(index)) {
                return Ok(name.clone());
            }
            // Why there is no card to connect to, once there is no more time to wait.
            let give_up = |waited: Option<Duration>| match (&wanted, texts.is_empty()) {
                (_, true) => PcscError::NoReaders,
                (Some(name), false) if candidates.is_empty() => PcscError::NoMatchingReader {
                    wanted: name.clone(),
                    readers: texts.clone(),
                },
                _ => match waited {
                    None => PcscError::NoCard {
                        wanted: wanted.clone(),
                        readers: found.clone(),
                    },
                    Some(waited) => PcscError::WaitTimedOut {
                        wanted: wanted.clone(),
                        waited,
                        readers: found.clone(),
                    },
                },
            };
            let Some(wait) = self.wait else {
                return Err(give_up(None));
            };
            let slice = match deadline {
                None => WAIT_SLICE,
                Some(deadline) => {
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    if remaining.is_zero() {
                        return Err(give_up(Some(wait)));
                    }
                    remaining.min(WAIT_SLICE)
                }
            };
            self.wait_for_change(&candidates, slice)?;
        }
    }

    /// Blocks until one of `readers` changes state, or `slice` passes.
    fn wait_for_change(&self, readers: &[ReaderName], slice: Duration) -> Result<(), PcscError> {
        if readers.is_empty() {
            // Nothing to watch yet: look for new readers again after a while.
            std::thread::sleep(slice);
            return Ok(());
        }
        let mut watched: Vec<sys::ReaderState> = readers
            .iter()
            .map(|name| sys::ReaderState::new(name.raw.clone(), sys::State::UNAWARE))
            .collect();
        match self.context.get_status_change(Duration::ZERO, &mut watched) {
            Ok(()) | Err(sys::Error::Timeout) => {}
            Err(sys::Error::UnknownReader) => return Ok(()),
            Err(error) => return Err(PcscError::from_pcsc(&self.name, call::STATUS_CHANGE, error)),
        }
        for state in &mut watched {
            state.sync_current_state();
        }
        match self.context.get_status_change(slice, &mut watched) {
            // A change, the slice over, or a reader gone: the caller looks again.
            Ok(()) | Err(sys::Error::Timeout) | Err(sys::Error::UnknownReader) => Ok(()),
            Err(error) => Err(PcscError::from_pcsc(&self.name, call::STATUS_CHANGE, error)),
        }
    }

    /// The card's ATR and the protocol in use, from `SCardStatus`.
    fn status(&self, card: &sys::Card) -> Result<(Vec<u8>, Option<sys::Protocol>), ReaderError> {
        let status = card
            .status2_owned()
            .map_err(|error| self.error(call::STATUS, error))?;
        Ok((status.atr().to_vec(), status.protocol2()))
    }
}

/// Begins the transaction that spans the dialogue (`SCardBeginTransaction`) and keeps
/// it past this borrow; see [`PcscReader`] for why and for how it ends.
fn begin_dialogue_transaction(card: &mut sys::Card) -> Result<(), sys::Error> {
    let transaction = card.transaction()?;
    std::mem::forget(transaction);
    Ok(())
}

impl Reader for PcscReader {
    fn name(&self) -> &str {
        &self.name
    }

    /// Chooses the reader (waiting for a card if allowed), connects, and begins the
    /// dialogue's transaction. A connection left from an earlier power-on is closed
    /// first, with a reset.
    fn power_on(&mut self) -> Result<Vec<u8>, ReaderError> {
        self.connection = None;
        let reader = self.select()?;
        self.name = reader.text;
        let mut card = self
            .context
            .connect(&reader.raw, self.pcsc_share(), PROTOCOLS)
            .map_err(|error| self.error(call::CONNECT, error))?;
        begin_dialogue_transaction(&mut card).map_err(|error| self.error(call::BEGIN, error))?;
        let (atr, protocol) = self.status(&card)?;
        self.connection = Some(Connection { card, protocol });
        Ok(atr)
    }

    /// Warm reset: `SCardReconnect(SCARD_RESET_CARD)`; cold: `SCARD_UNPOWER_CARD`. The
    /// protocol is negotiated again. Without a connection, a power-on.
    fn reset(&mut self, kind: ResetKind) -> Result<Vec<u8>, ReaderError> {
        let share = self.pcsc_share();
        let Some(mut connection) = self.connection.take() else {
            return self.power_on();
        };
        let disposition = match kind {
            ResetKind::Warm => sys::Disposition::ResetCard,
            ResetKind::Cold => sys::Disposition::UnpowerCard,
        };
        connection
            .card
            .reconnect(share, PROTOCOLS, disposition)
            .map_err(|error| self.error(call::RECONNECT, error))?;
        let (atr, protocol) = self.status(&connection.card)?;
        connection.protocol = protocol;
        self.connection = Some(connection);
        Ok(atr)
    }

    fn transmit_raw(&mut self, command: &[u8]) -> Result<Vec<u8>, ReaderError> {
        let Some(connection) = self.connection.as_ref() else {
            return Err(ReaderError::NotPowered {
                reader: self.name.clone(),
            });
        };
        // The crate panics on a connection without protocol: refuse it first.
        if connection.protocol.is_none() {
            return Err(PcscError::NoProtocol {
                reader: self.name.clone(),
            }
            .into());
        }
        match connection.card.transmit(command, &mut self.receive) {
            Ok(response) => Ok(response.to_vec()),
            Err(error) => Err(PcscError::from_pcsc(&self.name, call::TRANSMIT, error).into()),
        }
    }

    /// Disconnects with `SCARD_UNPOWER_CARD`, which also ends the dialogue's transaction.
    fn power_off(&mut self) -> Result<(), ReaderError> {
        let Some(connection) = self.connection.take() else {
            return Ok(());
        };
        // On failure the crate hands the card back; dropping it disconnects with a reset.
        connection
            .card
            .disconnect(sys::Disposition::UnpowerCard)
            .map_err(|(_card, error)| self.error(call::DISCONNECT, error))
    }

    fn protocol(&self) -> Option<Protocol> {
        match self.connection.as_ref()?.protocol? {
            sys::Protocol::T0 => Some(Protocol::T0),
            sys::Protocol::T1 => Some(Protocol::T1),
            sys::Protocol::RAW => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sys::State as S;

    fn strings(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    #[test]
    fn reader_names_match_exactly_first_then_by_substring_ignoring_case() {
        let readers = strings(&[
            "Virtual PCD 00 00",
            "Virtual PCD 00 01",
            "ACS ACR38U 00 00",
            "Virtual PCD 00 0",
        ]);
        let table: [(Option<&str>, &[usize]); 8] = [
            (None, &[0, 1, 2, 3]),
            (Some("Virtual PCD 00 01"), &[1]),
            // An exact name wins over the longer names that contain it.
            (Some("Virtual PCD 00 0"), &[3]),
            (Some("virtual pcd"), &[0, 1, 3]),
            (Some("00 01"), &[1]),
            (Some("acr38"), &[2]),
            (Some("Gemalto"), &[]),
            (Some(""), &[0, 1, 2, 3]),
        ];
        for (wanted, expected) in table {
            assert_eq!(matching_readers(&readers, wanted), expected, "{wanted:?}");
        }
        assert_eq!(matching_readers(&[], Some("x")), Vec::<usize>::new());
    }

    fn status(name: &str, state: CardState) -> ReaderStatus {
        ReaderStatus {
            name: name.to_owned(),
            state,
            atr: Vec::new(),
        }
    }

    #[test]
    fn the_first_free_card_wins_then_exclusive_then_mute() {
        use CardState::*;
        let table: [(&[CardState], Option<usize>); 8] = [
            (&[], None),
            (&[Absent, Unavailable], None),
            (&[Absent, Present, Present], Some(1)),
            (&[InUse, Present], Some(0)),
            (&[HeldExclusively, Present], Some(1)),
            (&[Mute, HeldExclusively], Some(1)),
            (&[Mute, Absent], Some(0)),
            (&[Absent, HeldExclusively, HeldExclusively], Some(1)),
        ];
        for (states, expected) in table {
            let readers: Vec<ReaderStatus> =
                states.iter().map(|state| status("R", *state)).collect();
            assert_eq!(choose_reader(&readers), expected, "{states:?}");
        }
    }

    #[test]
    fn states_from_the_resource_manager_flags() {
        let table: [(S, CardState); 9] = [
            (S::EMPTY, CardState::Absent),
            (S::empty(), CardState::Absent),
            (S::CHANGED | S::PRESENT, CardState::Present),
            (S::PRESENT | S::UNPOWERED, CardState::Present),
            (S::PRESENT | S::INUSE, CardState::InUse),
            (
                S::PRESENT | S::INUSE | S::EXCLUSIVE,
                CardState::HeldExclusively,
            ),
            (S::PRESENT | S::MUTE, CardState::Mute),
            (S::UNAVAILABLE, CardState::Unavailable),
            (S::UNKNOWN | S::PRESENT, CardState::Unavailable),
        ];
        for (flags, expected) in table {
            assert_eq!(CardState::from_flags(flags), expected, "{flags:?}");
        }
    }

    #[test]
    fn listing_shows_the_uri_state_and_atr() {
        let table = [
            (
                ReaderStatus {
                    name: "Virtual PCD 00 01".to_owned(),
                    state: CardState::Present,
                    atr: vec![0x3B, 0x80, 0x80, 0x01, 0x01],
                },
                "pcsc:Virtual PCD 00 01",
                "card present, ATR 3B80800101",
            ),
            (
                status("Virtual PCD 00 00", CardState::Absent),
                "pcsc:Virtual PCD 00 00",
                "no card",
            ),
            (
                status("Odd 100% ?reader", CardState::HeldExclusively),
                "pcsc:Odd 100%25 %3Freader",
                "card held exclusively by another application",
            ),
        ];
        for (reader, uri, description) in table {
            let listing = reader.listing();
            assert_eq!(listing.uri, uri);
            assert_eq!(listing.description, description);
            // The URI opens exactly this reader.
            assert_eq!(
                ReaderUri::parse(&listing.uri),
                Ok(ReaderUri::Pcsc(PcscUri {
                    name: Some(reader.name.clone()),
                    share: None,
                }))
            );
        }
    }

    #[test]
    fn pcsc_codes_keep_their_name_and_number() {
        let table = [
            (
                sys::Error::NoService,
                "The Smart card resource manager is not running [SCARD_E_NO_SERVICE 0x8010001D]",
            ),
            (
                sys::Error::SharingViolation,
                "The smart card cannot be accessed because of other connections outstanding \
                 [SCARD_E_SHARING_VIOLATION 0x8010000B]",
            ),
            (
                sys::Error::RemovedCard,
                "The smart card has been removed, so further communication is not possible \
                 [SCARD_W_REMOVED_CARD 0x80100069]",
            ),
        ];
        for (error, text) in table {
            assert_eq!(PcscCode(error).to_string(), text);
        }
    }

    #[test]
    fn errors_are_mapped_to_their_meaning() {
        use sys::Error as E;
        let reader = "Virtual PCD 00 01";
        let code = PcscCode;
        let table: [(E, &'static str, PcscError); 13] = [
            (
                E::NoService,
                call::ESTABLISH,
                PcscError::NoService {
                    operation: call::ESTABLISH,
                    code: code(E::NoService),
                },
            ),
            (
                E::ServiceStopped,
                call::TRANSMIT,
                PcscError::ServiceStopped {
                    reader: reader.into(),
                    operation: call::TRANSMIT,
                    code: code(E::ServiceStopped),
                },
            ),
            (
                E::CommError,
                call::TRANSMIT,
                PcscError::ServiceStopped {
                    reader: reader.into(),
                    operation: call::TRANSMIT,
                    code: code(E::CommError),
                },
            ),
            (E::NoReadersAvailable, call::LIST, PcscError::NoReaders),
            (
                E::SharingViolation,
                call::CONNECT,
                PcscError::SharingViolation {
                    reader: reader.into(),
                    operation: call::CONNECT,
                    code: code(E::SharingViolation),
                },
            ),
            (
                E::RemovedCard,
                call::TRANSMIT,
                PcscError::CardRemoved {
                    reader: reader.into(),
                    operation: call::TRANSMIT,
                    code: code(E::RemovedCard),
                },
            ),
            (
                E::NoSmartcard,
                call::CONNECT,
                PcscError::CardRemoved {
                    reader: reader.into(),
                    operation: call::CONNECT,
                    code: code(E::NoSmartcard),
                },
            ),
            (
                E::ResetCard,
                call::TRANSMIT,
                PcscError::CardReset {
                    reader: reader.into(),
                    operation: call::TRANSMIT,
                    code: code(E::ResetCard),
                },
            ),
            (
                E::UnresponsiveCard,
                call::CONNECT,
                PcscError::CardUnresponsive {
                    reader: reader.into(),
                    operation: call::CONNECT,
                    code: code(E::UnresponsiveCard),
                },
            ),
            (
                E::ReaderUnavailable,
                call::TRANSMIT,
                PcscError::ReaderUnavailable {
                    reader: reader.into(),
                    operation: call::TRANSMIT,
                    code: code(E::ReaderUnavailable),
                },
            ),
            (
                E::UnknownReader,
                call::CONNECT,
                PcscError::ReaderUnavailable {
                    reader: reader.into(),
                    operation: call::CONNECT,
                    code: code(E::UnknownReader),
                },
            ),
            (
                E::ProtoMismatch,
                call::RECONNECT,
                PcscError::Failed {
                    reader: reader.into(),
                    operation: call::RECONNECT,
                    code: code(E::ProtoMismatch),
                },
            ),
            (
                E::InsufficientBuffer,
                call::TRANSMIT,
                PcscError::Failed {
                    reader: reader.into(),
                    operation: call::TRANSMIT,
                    code: code(E::InsufficientBuffer),
                },
            ),
        ];
        for (error, operation, expected) in table {
            assert_eq!(
                PcscError::from_pcsc(reader, operation, error),
                expected,
                "{error:?}"
            );
        }
    }

    #[test]
    fn messages_say_what_to_do_and_keep_the_code() {
        let no_service = PcscError::from_pcsc("pcsc:", call::ESTABLISH, sys::Error::NoService);
        assert_eq!(
            no_service.to_string(),
            "pcscd is not running: start it with `sudo systemctl start pcscd` or `scripts/pcscd-up` \
             (SCardEstablishContext: The Smart card resource manager is not running \
             [SCARD_E_NO_SERVICE 0x8010001D])"
        );
        let no_card = PcscError::NoCard {
            wanted: Some("Virtual PCD 00 01".to_owned()),
            readers: vec![status("Virtual PCD 00 01", CardState::Absent)],
        };
        assert_eq!(
            no_card.to_string(),
            "no card in a PC/SC reader matching \"Virtual PCD 00 01\": insert one, or let telepay wait \
             for it (--wait 30s); readers: Virtual PCD 00 01 (no card)"
        );
        let timed_out = PcscError::WaitTimedOut {
            wanted: None,
            waited: Duration::from_millis(1500),
            readers: vec![
                status("A", CardState::Absent),
                status("B", CardState::Unavailable),
            ],
        };
        assert_eq!(
            timed_out.to_string(),
            "no card in any PC/SC reader after waiting 1500 ms; readers: A (no card), B (reader unavailable)"
        );
        let no_match = PcscError::NoMatchingReader {
            wanted: "Gemalto".to_owned(),
            readers: strings(&["Virtual PCD 00 00", "Virtual PCD 00 01"]),
        };
        assert_eq!(
            no_match.to_string(),
            "no PC/SC reader's name contains \"Gemalto\"; the readers are: Virtual PCD 00 00, Virtual PCD 00 01"
        );
        let violation = PcscError::from_pcsc(
            "Virtual PCD 00 01",
            call::CONNECT,
            sys::Error::SharingViolation,
        );
        assert_eq!(
            violation.to_string(),
            "reader Virtual PCD 00 01: another application holds the card exclusively; close it \
             (or let it finish) and run again (SCardConnect: The smart card cannot be accessed \
             because of other connections outstanding [SCARD_E_SHARING_VIOLATION 0x8010000B])"
        );
    }

    proptest::proptest! {
        /// `telepay readers` prints URIs that open exactly the reader listed, whatever
        /// its name.
        #[test]
        fn listed_uris_open_their_reader(name in "\\PC{1,48}") {
            let reader = status(&name, CardState::Present);
            proptest::prop_assert_eq!(
                ReaderUri::parse(&reader.uri()),
                Ok(ReaderUri::Pcsc(PcscUri { name: Some(name.clone()), share: None }))
            );
        }

        /// Matching gives positions in range, in order, and includes an exact name.
        #[test]
        fn matching_is_in_range_and_ordered(
            names in proptest::collection::vec("\\PC{0,12}", 0..8),
            wanted in proptest::option::of("\\PC{0,6}"),
        ) {
            let matched = matching_readers(&names, wanted.as_deref());
            proptest::prop_assert!(matched.windows(2).all(|pair| pair[0] < pair[1]));
            proptest::prop_assert!(matched.iter().all(|&index| index < names.len()));
            if let Some(wanted) = &wanted
                && let Some(exact) = names.iter().position(|name| name == wanted)
            {
                proptest::prop_assert_eq!(matched, vec![exact]);
            }
        }

        /// The chosen reader holds a card, and no reader before it is preferred.
        #[test]
        fn the_choice_holds_a_card(states in proptest::collection::vec(0u8..6, 0..8)) {
            use CardState::*;
            let all = [Absent, Present, InUse, HeldExclusively, Mute, Unavailable];
            let readers: Vec<ReaderStatus> = states
                .iter()
                .filter_map(|&index| all.get(usize::from(index)))
                .map(|state| status("R", *state))
                .collect();
            match choose_reader(&readers) {
                None => {
                    let no_card = readers.iter().all(|reader| reader.state.preference().is_none());
                    proptest::prop_assert!(no_card);
                }
                Some(chosen) => {
                    let rank = readers[chosen].state.preference();
                    proptest::prop_assert!(rank.is_some());
                    let none_better = readers.iter().enumerate().all(|(index, reader)| {
                        match reader.state.preference() {
                            None => true,
                            Some(other) if index < chosen => Some(other) > rank,
                            Some(other) => Some(other) >= rank,
                        }
                    });
                    proptest::prop_assert!(none_better, "{:?} chose {}", states, chosen);
                }
            }
        }
    }

    #[test]
    fn durations_in_messages() {
        let table = [
            (Duration::ZERO, "0 s"),
            (Duration::from_secs(30), "30 s"),
            (Duration::from_millis(1500), "1500 ms"),
            (Duration::from_micros(1), "0 s"),
        ];
        for (duration, text) in table {
            assert_eq!(human_duration(duration), text);
        }
    }
}
