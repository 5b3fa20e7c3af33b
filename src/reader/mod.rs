//! One reader abstraction for every backend, and the transport layer every user goes
//! through.
//!
//! - [`Reader`]: what a backend does — power, reset, raw bytes in and out. The software
//!   card ([`sim`]), trace replay ([`replay`]) and, with the cargo feature `pcsc`, real
//!   PC/SC readers (`pcsc`) implement it, and so do Phoenix-style readers on a serial
//!   line ([`serial`]).
//! - [`Transport`]: the layer above every reader. It turns a [`Command`](crate::apdu::Command) into bytes,
//!   handles what ISO 7816 leaves to the terminal (T=0 `61xx` → GET RESPONSE, `6Cxx` →
//!   re-issue with the right Le, command chaining when the card does not announce
//!   extended lengths) and lets an [`ExchangeObserver`] (the trace recorder) see every
//!   raw exchange.
//! - [`ReaderUri`]: readers are named by URI everywhere; [`open`] turns one into a reader
//!   ([`open_with`] when there is more to say than the URI, e.g. how long to wait for a
//!   card).

#[cfg(feature = "pcsc")]
pub mod pcsc;
pub mod replay;
pub mod serial;
pub mod sim;
mod transport;
pub mod uri;

pub use card_applet_sim::ResetKind;
pub use transport::{ExchangeObserver, Transport};
pub use uri::{ReaderUri, UriError};

use std::time::Duration;

use crate::apdu::ApduError;
use crate::atr::AtrError;

/// A card reader with a card in it, as the terminal sees it: power, reset, and raw
/// APDU bytes in and out. Status-word handling belongs to [`Transport`], not here.
pub trait Reader {
    /// The reader's name as the user would recognise it (e.g. `sim:cb`, a PC/SC name).
    fn name(&self) -> &str;
    /// Powers the card and returns its Answer To Reset.
    fn power_on(&mut self) -> Result<Vec<u8>, ReaderError>;
    /// Resets the card (cold or warm) and returns its Answer To Reset.
    fn reset(&mut self, kind: ResetKind) -> Result<Vec<u8>, ReaderError>;
    /// Sends one command APDU as bytes and returns the response bytes (data + SW1 SW2).
    fn transmit_raw(&mut self, command: &[u8]) -> Result<Vec<u8>, ReaderError>;
    /// Removes power from the card.
    fn power_off(&mut self) -> Result<(), ReaderError>;
    /// The transmission protocol in use with the powered card (ISO 7816-3 §10 T=0, §11
    /// T=1) when the backend negotiates one, as PC/SC does; `None` otherwise.
    fn protocol(&self) -> Option<crate::atr::Protocol> {
        None
    }
}

impl<R: Reader + ?Sized> Reader for Box<R> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn power_on(&mut self) -> Result<Vec<u8>, ReaderError> {
        (**self).power_on()
    }
    fn reset(&mut self, kind: ResetKind) -> Result<Vec<u8>, ReaderError> {
        (**self).reset(kind)
    }
    fn transmit_raw(&mut self, command: &[u8]) -> Result<Vec<u8>, ReaderError> {
        (**self).transmit_raw(command)
    }
    fn power_off(&mut self) -> Result<(), ReaderError> {
        (**self).power_off()
    }
    fn protocol(&self) -> Option<crate::atr::Protocol> {
        (**self).protocol()
    }
}

/// Everything that can go wrong between the terminal and the card, below the
/// application: opening a reader, the card's answers, the transport rules.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReaderError {
    /// The reader URI does not parse.
    #[error(transparent)]
    Uri(#[from] UriError),
    /// The URI names a backend this build does not provide.
    #[error(
        "reader {uri}: the {scheme}: backend is not available in this build of telepay \
         ({reason}); available backends: {available}"
    )]
    BackendUnavailable {
        /// The URI as given.
        uri: String,
        /// The backend's scheme.
        scheme: &'static str,
        /// Why it is missing and how to get it.
        reason: &'static str,
        /// The schemes this build does provide.
        available: &'static str,
    },
    /// The software card could not be created (bad profile, unreadable state file…).
    #[error("reader {uri}: {source}")]
    SimCard {
        /// The URI as given.
        uri: String,
        /// The card's own error.
        #[source]
        source: Box<card_applet_sim::card::CardError>,
    },
    /// The card's Answer To Reset does not parse.
    #[error("reader {reader}: the card's ATR {atr} is malformed: {source}")]
    BadAtr {
        /// The reader's name.
        reader: String,
        /// The ATR in hex.
        atr: String,
        /// What is wrong with it.
        #[source]
        source: AtrError,
    },
    /// A command was sent before the card was powered.
    #[error("reader {reader}: the card is not powered; power it on first")]
    NotPowered {
        /// The reader's name.
        reader: String,
    },
    /// The command cannot be encoded for this card (too long for short APDUs and no
    /// chaining possible, …).
    #[error("reader {reader}: cannot send the command: {source}")]
    Encode {
        /// The reader's name.
        reader: String,
        /// Why.
        #[source]
        source: ApduError,
    },
    /// The card answered bytes that are not a response APDU (fewer than two bytes).
    #[error(
        "reader {reader}: the card's answer {response} to {command} is not a response APDU: {source}"
    )]
    MalformedResponse {
        /// The reader's name.
        reader: String,
        /// The command sent, in hex.
        command: String,
        /// The bytes received, in hex.
        response: String,
        /// What is wrong.
        #[source]
        source: ApduError,
    },
    /// The card kept answering `61xx`/`6Cxx` beyond any sensible length: a broken card
    /// or transport, stopped rather than looped on forever.
    #[error(
        "reader {reader}: the card's {what} did not end after {rounds} rounds ({bytes} bytes received)"
    )]
    RunawayResponse {
        /// The reader's name.
        reader: String,
        /// `GET RESPONSE` or `6Cxx re-issue`.
        what: &'static str,
        /// Rounds made before giving up.
        rounds: usize,
        /// Bytes gathered so far.
        bytes: usize,
    },
    /// The trace a `replay:` reader plays cannot be read.
    #[error("cannot replay {}: {source}", file.display())]
    Trace {
        /// The trace file.
        file: std::path::PathBuf,
        /// What is wrong with it.
        #[source]
        source: Box<crate::trace::format::TraceError>,
    },
    /// The terminal sent a command the recording does not have at this point.
    #[error(
        "reader {reader}: the command does not match line {line} of the recording:\n  {detail}"
    )]
    ReplayMismatch {
        /// The reader's name.
        reader: String,
        /// The line of the recorded exchange.
        line: usize,
        /// Expected and received, decoded, the differing bytes marked.
        detail: String,
    },
    /// The terminal did something else than the recording at this point (a command
    /// where a reset was recorded, or the reverse).
    #[error(
        "reader {reader}: line {line} of the recording expects {expected}, but the terminal sent {received}"
    )]
    ReplayUnexpected {
        /// The reader's name.
        reader: String,
        /// The line of the recorded event.
        line: usize,
        /// What the recording has there.
        expected: String,
        /// What came instead.
        received: String,
    },
    /// The recording has nothing more to play.
    #[error("reader {reader}: the recording ended while waiting for {waiting_for}")]
    ReplayEnded {
        /// The reader's name.
        reader: String,
        /// What the terminal asked for.
        waiting_for: &'static str,
    },
    /// A chained command (ISO 7816-4 §5.3.3) was refused part-way.
    #[error("reader {reader}: the card refused part {part} of a chained command with {sw}")]
    ChainingRefused {
        /// The reader's name.
        reader: String,
        /// Which part (1-based) was refused.
        part: usize,
        /// The status word, decoded.
        sw: crate::apdu::StatusWord,
    },
    /// A serial-line reader failed: the port, the ATR, the PPS or the T=0 / T=1
    /// protocol; the error names the port and the step.
    #[error(transparent)]
    Serial(Box<crate::serial::SerialError>),
    /// The PC/SC resource manager or a PC/SC reader failed; the error names the reader
    /// and keeps the PC/SC code.
    #[cfg(feature = "pcsc")]
    #[error(transparent)]
    Pcsc(Box<pcsc::PcscError>),
}

#[cfg(feature = "pcsc")]
impl From<pcsc::PcscError> for ReaderError {
    fn from(error: pcsc::PcscError) -> Self {
        ReaderError::Pcsc(Box::new(error))
    }
}

/// Backends this build provides, for error messages.
#[cfg(feature = "pcsc")]
pub const AVAILABLE_BACKENDS: &str = "sim:, pcsc:, serial:, replay:";
/// Backends this build provides, for error messages.
#[cfg(not(feature = "pcsc"))]
pub const AVAILABLE_BACKENDS: &str = "sim:, serial:, replay:";

/// Why `pcsc:` is missing from a build without the cargo feature `pcsc`.
#[cfg(not(feature = "pcsc"))]
const PCSC_NOT_BUILT: &str = "PC/SC support is the cargo feature `pcsc`: rebuild with \
`cargo build --features pcsc`, after installing libpcsclite-dev on Debian/Ubuntu";

/// How to open a reader, beyond what its URI names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OpenOptions {
    /// How long power-on may wait for a card to be inserted (PC/SC readers); `None`
    /// means a reader without a card is an error at once. Other backends always have
    /// their card and ignore it.
    pub wait: Option<Duration>,
}

impl OpenOptions {
    /// These options, waiting up to `wait` for a card.
    pub fn with_wait(mut self, wait: Option<Duration>) -> OpenOptions {
        self.wait = wait;
        self
    }
}

/// Opens the reader a URI names. The card is not powered yet: wrap the reader in a
/// [`Transport`] and call [`Transport::power_on`].
pub fn open(uri: &ReaderUri) -> Result<Box<dyn Reader + Send>, ReaderError> {
    open_with(uri, &OpenOptions::default())
}

/// Opens the reader a URI names, with `options`; see [`open`].
pub fn open_with(
    uri: &ReaderUri,
    options: &OpenOptions,
) -> Result<Box<dyn Reader + Send>, ReaderError> {
    match uri {
        ReaderUri::Sim(sim_uri) => Ok(Box::new(sim::SimReader::open(sim_uri)?)),
        #[cfg(feature = "pcsc")]
        ReaderUri::Pcsc(pcsc_uri) => Ok(Box::new(pcsc::PcscReader::open(pcsc_uri, options)?)),
        #[cfg(not(feature = "pcsc"))]
        ReaderUri::Pcsc(_) => {
            // Nothing else in this build would wait for a card.
            let _ = options;
            Err(unavailable(uri, "pcsc", PCSC_NOT_BUILT))
        }
        ReaderUri::Serial(serial_uri) => Ok(Box::new(serial::SerialReader::open(serial_uri)?)),
        ReaderUri::Replay(replay_uri) => Ok(Box::new(replay::ReplayReader::open(replay_uri)?)),
    }
}

#[cfg(not(feature = "pcsc"))]
fn unavailable(uri: &ReaderUri, scheme: &'static str, reason: &'static str) -> ReaderError {
    ReaderError::BackendUnavailable {
        uri: uri.to_string(),
        scheme,
        reason,
        available: AVAILABLE_BACKENDS,
    }
}

/// One reader a backend can offer, as `telepay readers` lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReaderListing {
    /// The URI that opens it.
    pub uri: String,
    /// What it is.
    pub description: String,
}

/// The readers of one backend, or why the backend offers none.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BackendListing {
    /// The backend's scheme.
    pub scheme: &'static str,
    /// Its readers (empty when unavailable).
    pub readers: Vec<ReaderListing>,
    /// Why the backend is unavailable, if it is.
    pub unavailable: Option<String>,
}

/// Lists the readers available on every backend.
pub fn list_readers() -> Vec<BackendListing> {
    vec![
        BackendListing {
            scheme: "sim",
            readers: sim::list(),
            unavailable: None,
        },
        pcsc_listing(),
        BackendListing {
            scheme: "serial",
            readers: serial_listing(),
            unavailable: None,
        },
        BackendListing {
            scheme: "replay",
            readers: replay_listing(),
            unavailable: None,
        },
    ]
}

/// The PC/SC readers with their state and the ATR of their card, or why there are none.
#[cfg(feature = "pcsc")]
fn pcsc_listing() -> BackendListing {
    match pcsc::list() {
        Ok(readers) => BackendListing {
            scheme: "pcsc",
            readers: readers.iter().map(pcsc::ReaderStatus::listing).collect(),
            unavailable: None,
        },
        Err(error) => BackendListing {
            scheme: "pcsc",
            readers: Vec::new(),
            unavailable: Some(error.to_string()),
        },
    }
}

/// Without the feature: how to get PC/SC support.
#[cfg(not(feature = "pcsc"))]
fn pcsc_listing() -> BackendListing {
    BackendListing {
        scheme: "pcsc",
        readers: Vec::new(),
        unavailable: Some(PCSC_NOT_BUILT.to_owned()),
    }
}

/// The serial ports the operating system knows of (USB adapters, on-board UARTs); a
/// pty is not listed but opens all the same.
fn serial_listing() -> Vec<ReaderListing> {
    let Ok(ports) = ::serialport::available_ports() else {
        return Vec::new();
    };
    ports
        .into_iter()
        .map(|port| ReaderListing {
            uri: format!("serial:{}", port.port_name),
            description: match port.port_type {
                ::serialport::SerialPortType::UsbPort(usb) => format!(
                    "USB serial port {:04x}:{:04x}{}",
                    usb.vid,
                    usb.pid,
                    usb.product.map(|p| format!(" ({p})")).unwrap_or_default()
                ),
                ::serialport::SerialPortType::PciPort => "PCI serial port".to_owned(),
                ::serialport::SerialPortType::BluetoothPort => "Bluetooth serial port".to_owned(),
                ::serialport::SerialPortType::Unknown => "serial port".to_owned(),
            },
        })
        .collect()
}

/// The golden traces shipped in `traces/` when run from a clone, as replayable readers.
fn replay_listing() -> Vec<ReaderListing> {
    let Ok(entries) = std::fs::read_dir("traces") else {
        return Vec::new();
    };
    let mut listing: Vec<ReaderListing> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "trace"))
        .map(|path| ReaderListing {
            uri: format!("replay:{}", path.display()),
            description: "recorded dialogue".to_owned(),
        })
        .collect();
    listing.sort_by(|a, b| a.uri.cmp(&b.uri));
    listing
}
