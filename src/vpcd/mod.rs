//! Serving a card to pcscd through vsmartcard's vpcd driver: the protocol, sans I/O.
//!
//! vsmartcard's `vpcd` is a PC/SC reader driver loaded by pcscd. With the stock
//! configuration (`/etc/reader.conf.d/vpcd`, `DEVICENAME /dev/null:0x8C7B`) the driver
//! **listens** on TCP 35963 for the reader "Virtual PCD 00 00" and 35964 for
//! "Virtual PCD 00 01"; the virtual card (vsmartcard's `vicc`, or telepay here)
//! **connects** to it as a client. A connected card is an inserted card; a closed
//! connection is a removed card.
//!
//! # The wire format (vsmartcard 3.3, `vpcd.c`)
//!
//! Both directions carry the same frame: a 2-byte big-endian length, then that many
//! payload bytes. From vpcd to the card:
//!
//! | payload | meaning | the card answers |
//! |---|---|---|
//! | `00` (1 byte) | power off | nothing |
//! | `01` (1 byte) | power on | nothing |
//! | `02` (1 byte) | reset | nothing |
//! | `04` (1 byte) | get the ATR | the ATR |
//! | 2 bytes or more | a command APDU, passed as the application gave it | the response APDU |
//!
//! vpcd asks for the ATR about every 0.4 s as its card-presence check, powered or not.
//! It passes any length under T=0 too, so `61xx`/`6Cxx` come from the card itself,
//! untouched, as on a real T=0 interface. A reply of length 0 is vpcd's "card gone":
//! it closes the connection; a reply over 65,535 bytes cannot be framed at all.
//!
//! # What this module decides
//!
//! - **No empty or over-long reply, ever.** When the card's answer cannot be sent as it
//!   is — the card answered nothing, more than 65,535 bytes, or refused the command (a
//!   replayed card whose recording does not have it) — vpcd receives
//!   [`SUBSTITUTE_RESPONSE`] `6F00` ("no precise diagnosis", ISO 7816-4 §5.6, table 6)
//!   and an [`Event::Substituted`] says why. The connection stays up: the application
//!   sees a failed command, not a removed card.
//! - **A lost card closes the connection.** When the backend cannot power the card or
//!   fails in a way that means the card is gone (any reader error other than a refused
//!   command), the operation returns a [`VpcdError`]; the edge closes the connection,
//!   which pcscd reports as a removed card, and reconnects later.
//! - **Malformed frames close the connection**: an empty frame, or a 1-byte frame that
//!   is not one of the four control bytes. vpcd never sends either; a stream that does
//!   is not vpcd's, or is out of step, and nothing after it can be trusted.
//! - **Redundant resets are not passed on.** pcscd powers the card up when the card is
//!   inserted, powers it off when idle and up again for each application. A power-up
//!   of a card that is already powered and has not received an APDU since its last
//!   power-up, or a reset of a card that has not received one since its last reset, is
//!   absorbed ([`Event::Absorbed`]): the card is already in the state that reset would
//!   give. So the backend sees one power-up per dialogue, and a recording (or a
//!   `replay:` trace) holds one `@atr` per dialogue, whatever pcscd's timers did.
//!
//! # Shape
//!
//! - [`Decoder`] turns received bytes, in pieces of any size, into [`Message`]s;
//!   [`encode_frame`] frames a reply.
//! - [`VirtualCard`] drives any [`Reader`] (`sim:`, `replay:`,
//!   `pcsc:` for a relay) as vpcd's messages ask; it lives as long as the server, across
//!   connections, and lets an [`ExchangeObserver`](crate::reader::ExchangeObserver)
//!   (the `--record` trace recorder) see every ATR and exchange.
//! - [`Session`] joins the two for one server: bytes in ([`Session::receive`]), bytes
//!   out ([`Session::take_outgoing`]) and [`Event`]s for the log
//!   ([`Session::next_event`]).
//! - [`serve`] is the TCP edge: connect, `TCP_NODELAY`, `TCP_QUICKACK` after every read,
//!   reconnect with backoff.

mod card;
pub mod serve;

use std::collections::VecDeque;
use std::time::Duration;

pub use card::{Backend, VirtualCard};

use crate::reader::{Reader, ReaderError, ResetKind};

/// The TCP port of vpcd's first reader, "Virtual PCD 00 00" (0x8C7B in
/// `/etc/reader.conf.d/vpcd`); reader `00 0N` listens on this port + N.
pub const DEFAULT_PORT: u16 = 35963;

/// The largest payload a frame can carry: its length is 2 bytes.
pub const MAX_PAYLOAD: usize = 65_535;

/// The longest ATR vpcd hands to pcscd: TS and at most 32 more characters (ISO 7816-3
/// §8.2.1; pcsc-lite's `MAX_ATR_SIZE`).
pub const MAX_ATR_LEN: usize = 33;

/// What vpcd receives instead of an answer that cannot be sent as it is: `6F00`, "no
/// precise diagnosis" (ISO 7816-4 §5.6, table 6).
pub const SUBSTITUTE_RESPONSE: [u8; 2] = [0x6F, 0x00];

/// The one-byte control messages vpcd sends (vsmartcard `vpcd.h`, `VPCD_CTRL_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Control {
    /// `00`: remove power from the card. No reply.
    PowerOff,
    /// `01`: power the card. No reply; vpcd asks for the ATR next.
    PowerOn,
    /// `02`: reset the powered card (pcscd's `IFD_RESET`, a warm reset, ISO 7816-3
    /// §6.2.3). No reply; vpcd asks for the ATR next.
    Reset,
    /// `04`: send the card's ATR. Also vpcd's presence check, powered or not.
    GetAtr,
}

impl Control {
    /// The control a byte stands for, if any.
    pub fn from_byte(byte: u8) -> Option<Control> {
        match byte {
            0x00 => Some(Control::PowerOff),
            0x01 => Some(Control::PowerOn),
            0x02 => Some(Control::Reset),
            0x04 => Some(Control::GetAtr),
            _ => None,
        }
    }

    /// The byte on the wire.
    pub fn byte(self) -> u8 {
        match self {
            Control::PowerOff => 0x00,
            Control::PowerOn => 0x01,
            Control::Reset => 0x02,
            Control::GetAtr => 0x04,
        }
    }

    /// Whether vpcd waits for a reply (only the ATR request).
    pub fn expects_reply(self) -> bool {
        self == Control::GetAtr
    }
}

impl std::fmt::Display for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Control::PowerOff => "power off",
            Control::PowerOn => "power on",
            Control::Reset => "reset",
            Control::GetAtr => "get ATR",
        })
    }
}

/// One message from vpcd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A one-byte control.
    Control(Control),
    /// A command APDU (2 bytes or more), as the PC/SC application sent it.
    Apdu(Vec<u8>),
}

/// Everything that ends a vpcd connection: a malformed stream, a card that cannot be
/// served, a reply that cannot be framed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VpcdError {
    /// A frame with length 0: vpcd never sends one.
    #[error(
        "vpcd frame at byte {offset}: length 0; expected a control byte or an APDU (1 to 65,535 bytes)"
    )]
    EmptyFrame {
        /// Where the frame's length starts in the connection's byte stream.
        offset: u64,
    },
    /// A one-byte frame that is none of the four controls.
    #[error(
        "vpcd frame at byte {offset}: unknown control byte {byte:02X}; expected 00 (power off), \
         01 (power on), 02 (reset) or 04 (get ATR)"
    )]
    UnknownControl {
        /// Where the frame's length starts in the connection's byte stream.
        offset: u64,
        /// The byte received.
        byte: u8,
    },
    /// A reply that no frame can carry.
    #[error(
        "cannot send a reply of {len} bytes to vpcd: a frame carries 1 to 65,535 bytes \
         (vpcd takes an empty one for a removed card)"
    )]
    ReplyLength {
        /// The reply's length.
        len: usize,
    },
    /// The backend could not power or reset the card, so there is no ATR to give.
    #[error("cannot {action} the card: {source}")]
    PowerUp {
        /// The backend reader's name (the source error names it too).
        reader: String,
        /// `power` or `reset`.
        action: &'static str,
        /// The backend's error.
        #[source]
        source: Box<ReaderError>,
    },
    /// The card's ATR cannot pass through vpcd.
    #[error(
        "reader {reader}: the card's ATR {atr} is {len} bytes; vpcd passes 1 to 33 \
         (TS and at most 32 more, ISO 7816-3 §8.2.1)"
    )]
    AtrLength {
        /// The backend reader's name.
        reader: String,
        /// The ATR in hex.
        atr: String,
        /// Its length.
        len: usize,
    },
    /// The backend failed on a command in a way that means the card is gone.
    #[error("the card was lost on the command {command}: {source}")]
    CardLost {
        /// The backend reader's name (the source error names it too).
        reader: String,
        /// The command in hex.
        command: String,
        /// The backend's error.
        #[source]
        source: Box<ReaderError>,
    },
    /// The connection failed earlier; the edge must close it and open a new one.
    #[error("the vpcd connection already failed at byte {offset}; it must be closed")]
    ConnectionFailed {
        /// Where the first failure was met in the connection's byte stream.
        offset: u64,
    },
}

/// Frames a reply: the 2-byte big-endian length, then the payload, appended to `out`.
/// Refuses an empty payload (vpcd would drop the card) and one over [`MAX_PAYLOAD`].
pub fn encode_frame_into(payload: &[u8], out: &mut Vec<u8>) -> Result<(), VpcdError> {
    let len = u16::try_from(payload.len())
        .ok()
        .filter(|&len| len != 0)
        .ok_or(VpcdError::ReplyLength { len: payload.len() })?;
    out.reserve(payload.len().saturating_add(2));
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

/// Frames a reply; see [`encode_frame_into`].
pub fn encode_frame(payload: &[u8]) -> Result<Vec<u8>, VpcdError> {
    let mut out = Vec::new();
    encode_frame_into(payload, &mut out)?;
    Ok(out)
}

/// A malformed frame, kept so that a failed decoder keeps answering the same error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Empty { offset: u64 },
    UnknownControl { offset: u64, byte: u8 },
}

impl Fault {
    fn to_error(self) -> VpcdError {
        match self {
            Fault::Empty { offset } => VpcdError::EmptyFrame { offset },
            Fault::UnknownControl { offset, byte } => VpcdError::UnknownControl { offset, byte },
        }
    }
}

/// Buffered bytes beyond which consumed bytes are dropped from the front of the
/// buffer (instead of at every frame, which would copy the rest each time).
const COMPACT_AT: usize = 64 * 1024;

/// Turns the bytes vpcd sends, arriving in pieces of any size, into [`Message`]s.
///
/// Feed bytes with [`Decoder::push`], then call [`Decoder::next_message`] until it
/// gives `Ok(None)` (more bytes needed). After a malformed frame the decoder stays
/// failed and answers the same error: the stream is out of step for good.
#[derive(Debug, Default)]
pub struct Decoder {
    buffer: Vec<u8>,
    /// The first byte of `buffer` not consumed yet.
    start: usize,
    /// The stream offset of `buffer[start]`.
    position: u64,
    failed: Option<Fault>,
}

impl Decoder {
    /// A decoder at the start of a connection.
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// Adds received bytes. Ignored once the decoder has failed.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.failed.is_none() {
            self.buffer.extend_from_slice(bytes);
        }
    }

    /// The next complete message, `Ok(None)` when more bytes are needed, or the error
    /// for a malformed frame (the same error on every later call).
    pub fn next_message(&mut self) -> Result<Option<Message>, VpcdError> {
        if let Some(fault) = self.failed {
            return Err(fault.to_error());
        }
        let pending = self.buffer.get(self.start..).unwrap_or_default();
        let Some((&length, rest)) = pending.split_first_chunk::<2>() else {
            return Ok(None);
        };
        let offset = self.position;
        let len = usize::from(u16::from_be_bytes(length));
        let message = match len {
            0 => return Err(self.fail(Fault::Empty { offset })),
            1 => {
                let Some(&byte) = rest.first() else {
                    return Ok(None);
                };
                match Control::from_byte(byte) {
                    Some(control) => Message::Control(control),
                    None => return Err(self.fail(Fault::UnknownControl { offset, byte })),
                }
            }
            _ => {
                let Some(payload) = rest.get(..len) else {
                    return Ok(None);
                };
                Message::Apdu(payload.to_vec())
            }
        };
        // `len` ≤ 65,535, so `2 + len` cannot overflow.
        self.consume(2 + len);
        Ok(Some(message))
    }

    /// The stream offset of the next byte to decode (bytes consumed so far).
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Bytes received but not yet decoded: the start of a frame still arriving.
    pub fn buffered(&self) -> usize {
        self.buffer.len().saturating_sub(self.start)
    }

    /// Whether a malformed frame was met.
    pub fn has_failed(&self) -> bool {
        self.failed.is_some()
    }

    fn fail(&mut self, fault: Fault) -> VpcdError {
        self.failed = Some(fault);
        self.buffer = Vec::new();
        self.start = 0;
        fault.to_error()
    }

    fn consume(&mut self, count: usize) {
        self.start = self.start.saturating_add(count).min(self.buffer.len());
        self.position = self
            .position
            .saturating_add(u64::try_from(count).unwrap_or(u64::MAX));
        if self.start == self.buffer.len() {
            self.buffer.clear();
            self.start = 0;
        } else if self.start >= COMPACT_AT {
            self.buffer.drain(..self.start);
            self.start = 0;
        }
    }
}

/// Why vpcd received [`SUBSTITUTE_RESPONSE`] instead of the card's answer.
#[derive(Debug)]
#[non_exhaustive]
pub enum Substitution {
    /// The card answered no bytes at all; an empty reply would make vpcd drop the card.
    EmptyResponse,
    /// The card answered more than a frame carries.
    ResponseTooLong {
        /// The answer's length.
        len: usize,
    },
    /// vpcd sent a command while the card is powered off (pcscd powers it first).
    Unpowered,
    /// The backend refused the command (a `replay:` recording that does not have it,
    /// or has ended).
    Refused(Box<ReaderError>),
}

impl std::fmt::Display for Substitution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Substitution::EmptyResponse => f.write_str("the card answered no bytes"),
            Substitution::ResponseTooLong { len } => write!(
                f,
                "the card answered {len} bytes, more than the {MAX_PAYLOAD} a vpcd frame carries"
            ),
            Substitution::Unpowered => f.write_str("the card is powered off"),
            Substitution::Refused(error) => write!(f, "{error}"),
        }
    }
}

/// What happened, for the log. Drain with [`Session::next_event`] after each
/// [`Session::receive`].
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// A control message arrived (its reply, if any, is already queued).
    Control(Control),
    /// The backend card was powered (`Cold`) or reset (`Warm`) and answered this ATR.
    CardReset {
        /// Power-up or warm reset.
        kind: ResetKind,
        /// The ATR.
        atr: Vec<u8>,
    },
    /// A power-up or reset was not passed on: the card was already in that state.
    Absorbed(Control),
    /// The backend card was powered off.
    CardPoweredOff,
    /// The backend card could not be powered off (the error is otherwise ignored: the
    /// next power-up resets it anyway).
    PowerOffFailed(Box<ReaderError>),
    /// A command and the card's response, as sent to vpcd.
    Exchange {
        /// The command APDU.
        command: Vec<u8>,
        /// The response APDU.
        response: Vec<u8>,
        /// How long the backend took.
        elapsed: Duration,
    },
    /// vpcd received [`SUBSTITUTE_RESPONSE`] instead of the card's answer.
    Substituted {
        /// The command APDU.
        command: Vec<u8>,
        /// Why.
        reason: Substitution,
    },
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Event::Control(control) => write!(f, "vpcd: {control}"),
            Event::CardReset {
                kind: ResetKind::Cold,
                atr,
            } => write!(f, "card powered, ATR {}", hex::encode_upper(atr)),
            Event::CardReset {
                kind: ResetKind::Warm,
                atr,
            } => write!(f, "card reset, ATR {}", hex::encode_upper(atr)),
            Event::Absorbed(control) => write!(
                f,
                "{control} not passed on: the card is fresh from its last power-up or reset"
            ),
            Event::CardPoweredOff => f.write_str("card powered off"),
            Event::PowerOffFailed(error) => write!(f, "card power-off failed: {error}"),
            Event::Exchange {
                command,
                response,
                elapsed,
            } => write!(
                f,
                "> {}\n< {}  ({} µs)",
                crate::apdu::loggable_hex(command),
                hex::encode_upper(response),
                elapsed.as_micros()
            ),
            Event::Substituted { command, reason } => write!(
                f,
                "answered 6F00 to {}: {reason}",
                hex::encode_upper(command)
            ),
        }
    }
}

/// One server's protocol state: the [`VirtualCard`] (kept across connections) and the
/// current connection's [`Decoder`], output buffer and events. No I/O.
#[derive(Debug)]
pub struct Session<R: Reader> {
    card: VirtualCard<R>,
    decoder: Decoder,
    outgoing: Vec<u8>,
    events: VecDeque<Event>,
    /// Where the current connection failed, if it did.
    failed_at: Option<u64>,
}

impl<R: Reader> Session<R> {
    /// A session serving `card`, ready for a first connection.
    pub fn new(card: VirtualCard<R>) -> Session<R> {
        Session {
            card,
            decoder: Decoder::new(),
            outgoing: Vec::new(),
            events: VecDeque::new(),
            failed_at: None,
        }
    }

    /// Handles received bytes: every complete message is decoded and answered; replies
    /// are queued for [`Session::take_outgoing`]. An error means the connection must be
    /// closed (then call [`Session::disconnected`]); replies queued before the error
    /// are still worth sending.
    pub fn receive(&mut self, bytes: &[u8]) -> Result<(), VpcdError> {
        if let Some(offset) = self.failed_at {
            return Err(VpcdError::ConnectionFailed { offset });
        }
        self.decoder.push(bytes);
        loop {
            let offset = self.decoder.position();
            let result = match self.decoder.next_message() {
                Ok(Some(message)) => self.answer(message),
                Ok(None) => return Ok(()),
                Err(error) => Err(error),
            };
            if let Err(error) = result {
                self.failed_at = Some(offset);
                return Err(error);
            }
        }
    }

    fn answer(&mut self, message: Message) -> Result<(), VpcdError> {
        let mut events = Vec::new();
        let reply = match message {
            Message::Control(control) => {
                events.push(Event::Control(control));
                let result = self.card.control(control, &mut events);
                self.events.extend(events);
                result?
            }
            Message::Apdu(command) => {
                let result = self.card.command(&command, &mut events);
                self.events.extend(events);
                Some(result?)
            }
        };
        if let Some(reply) = reply {
            encode_frame_into(&reply, &mut self.outgoing)?;
        }
        Ok(())
    }

    /// The bytes to send to vpcd, in order; the queue is emptied.
    pub fn take_outgoing(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.outgoing)
    }

    /// The next event for the log, oldest first.
    pub fn next_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The connection ended (closed by either side, or failed): the card counts as
    /// removed from the virtual reader. The next connection starts a fresh stream.
    pub fn disconnected(&mut self) {
        let mut events = Vec::new();
        self.card.removed(&mut events);
        self.events.extend(events);
        self.decoder = Decoder::new();
        self.outgoing.clear();
        self.failed_at = None;
    }

    /// Bytes of a frame still arriving on the current connection.
    pub fn partial_frame(&self) -> usize {
        self.decoder.buffered()
    }

    /// The card served.
    pub fn card(&self) -> &VirtualCard<R> {
        &self.card
    }

    /// The card served, mutably (e.g. to take its observer back at the end).
    pub fn card_mut(&mut self) -> &mut VirtualCard<R> {
        &mut self.card
    }

    /// Gives the card back.
    pub fn into_card(self) -> VirtualCard<R> {
        self.card
    }
}
