//! The half-duplex character protocol T=0 (ISO 7816-3 §10) and the transport of APDUs
//! over it (§12.2), host side and card side, as sans-IO engines.
//!
//! A T=0 command is a five-byte header CLA INS P1 P2 P3 (§10.3.2). P3 is the number of
//! data bytes that follow, in one direction only: to the card for an *incoming*
//! command (P3 = Lc), from the card for an *outgoing* one (P3 = Le, `00` meaning 256).
//! After the header, and after each data transfer, the card sends a procedure byte
//! (§10.3.3):
//!
//! | procedure byte | meaning |
//! |---|---|
//! | `60` (NULL) | wait: the card is working; the work waiting time restarts |
//! | INS (ACK) | all remaining data bytes now, in the command's direction |
//! | INS ⊕ `FF` (ACK) | the next data byte only |
//! | `6X` (≠ `60`), `9X` | SW1; SW2 follows and ends the command |
//!
//! INS values `6X` and `9X` cannot be acknowledged and are invalid (§10.3.2).
//!
//! - [`command_tpdu`] maps a short command APDU to its T=0 TPDU (§12.2).
//! - [`T0Host`]: the interface device's side: sends a TPDU, follows the procedure
//!   bytes, returns the card's data and SW1 SW2 exactly as given (`61xx` and `6Cxx`
//!   are the transport layer's business, not this engine's).
//! - [`T0Card`]: the card's side: reads headers, acknowledges and collects data, sends
//!   NULL bytes, data and status.
//! - [`CardApduAdapter`]: the card's §12.2 mapping between T=0 TPDUs and the APDUs an
//!   application speaks, with GET RESPONSE (`61xx`) and `6Cxx`.
//!
//! Every engine takes the instant bytes arrived and reports the next deadline; none
//! reads a clock (see [`super`]).

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use zeroize::Zeroize;

use crate::apdu::{ApduError, Case, Command, CommandView, ins};

/// The NULL procedure byte: the card asks for more time (§10.3.3).
pub const NULL: u8 = 0x60;
/// Length of a T=0 command header CLA INS P1 P2 P3 (§10.3.2).
pub const HEADER_LEN: usize = 5;
/// The status a card answers when it cannot tell the fault more precisely
/// (ISO 7816-4 §5.6: `6F00`).
const SW_NO_PRECISE_DIAGNOSIS: [u8; 2] = [0x6F, 0x00];
/// "Instruction code not supported or invalid" (ISO 7816-4 §5.6).
const SW_INS_INVALID: [u8; 2] = [0x6D, 0x00];
/// "Incorrect parameters P1-P2" (ISO 7816-4 §5.6).
const SW_WRONG_P1P2: [u8; 2] = [0x6A, 0x86];
/// SW1 of "SW2 bytes still available" (ISO 7816-3 §10.3.5, ISO 7816-4 §5.6).
const SW1_BYTES_AVAILABLE: u8 = 0x61;
/// SW1 of "wrong Le; SW2 is the exact length" (ISO 7816-4 §5.6).
const SW1_WRONG_LE: u8 = 0x6C;

/// Whether `byte` is an SW1 under T=0: `6X` other than `60`, or `9X` (§10.3.3).
pub fn is_sw1(byte: u8) -> bool {
    matches!(byte & 0xF0, 0x60 | 0x90) && byte != NULL
}

/// Whether INS is invalid under T=0: `6X` and `9X` are procedure bytes (§10.3.2).
pub fn is_invalid_ins(ins: u8) -> bool {
    matches!(ins & 0xF0, 0x60 | 0x90)
}

/// The number of data bytes P3 announces for an outgoing command: `00` means 256
/// (§10.3.2).
pub fn outgoing_length(p3: u8) -> usize {
    if p3 == 0 { 256 } else { usize::from(p3) }
}

/// The low byte of a length, as SW2 of `61xx`/`6Cxx` and P3 code it (256 → `00`).
fn length_byte(len: usize) -> u8 {
    (len.min(256) % 256) as u8
}

/// Which way a command's data field goes under T=0 (§10.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// P3 data bytes go to the card (Lc): the command carries data.
    Incoming,
    /// P3 data bytes come from the card (Le), or none at all.
    Outgoing,
}

/// Interindustry instructions whose command carries data (ISO 7816-4 §5.4.2 Table 4,
/// ISO 7816-7/-8/-9), so that a T=0 card reads P3 as Lc. Odd INS values carry their
/// parameters as a data object (ISO 7816-4 §5.4.2), so READ BINARY `B1`, READ RECORD
/// `B3` and GET DATA `CB` are incoming while their even forms are not. Instructions
/// with an optional data field (DEACTIVATE FILE, ERASE, TERMINATE, DELETE FILE) are
/// listed: with P3 = `00` they are case 1 either way.
pub const INCOMING_INTERINDUSTRY: &[u8] = &[
    ins::DEACTIVATE_FILE,
    ins::ERASE_RECORDS,
    ins::ERASE_BINARY,
    ins::ERASE_BINARY_ODD,
    ins::PERFORM_SCQL_OPERATION,
    ins::PERFORM_TRANSACTION_OPERATION,
    ins::PERFORM_USER_OPERATION,
    ins::VERIFY,
    ins::VERIFY_ODD,
    ins::MANAGE_SECURITY_ENVIRONMENT,
    ins::CHANGE_REFERENCE_DATA,
    ins::DISABLE_VERIFICATION_REQUIREMENT,
    ins::ENABLE_VERIFICATION_REQUIREMENT,
    ins::PERFORM_SECURITY_OPERATION,
    ins::RESET_RETRY_COUNTER,
    ins::ACTIVATE_FILE,
    ins::GENERATE_ASYMMETRIC_KEY_PAIR,
    ins::EXTERNAL_AUTHENTICATE,
    ins::GENERAL_AUTHENTICATE,
    ins::GENERAL_AUTHENTICATE_ODD,
    ins::INTERNAL_AUTHENTICATE,
    ins::SEARCH_BINARY,
    ins::SEARCH_BINARY_ODD,
    ins::SEARCH_RECORD,
    ins::SELECT,
    ins::READ_BINARY_ODD,
    ins::READ_RECORD_ODD,
    ins::ENVELOPE,
    ins::ENVELOPE_ODD,
    ins::GET_DATA_ODD,
    ins::WRITE_BINARY,
    ins::WRITE_BINARY_ODD,
    ins::WRITE_RECORD,
    ins::UPDATE_BINARY,
    ins::UPDATE_BINARY_ODD,
    ins::PUT_DATA,
    ins::PUT_DATA_ODD,
    ins::UPDATE_RECORD,
    ins::UPDATE_RECORD_ODD,
    ins::CREATE_FILE,
    ins::APPEND_RECORD,
    ins::DELETE_FILE,
    ins::TERMINATE_DF,
    ins::TERMINATE_EF,
    ins::TERMINATE_CARD_USAGE,
];

/// Proprietary-class instructions whose command carries data: the EMV commands (EMV
/// Book 3 §6.5: CARD BLOCK `16`, APPLICATION UNBLOCK `18`, APPLICATION BLOCK `1E`,
/// PIN CHANGE/UNBLOCK `24`, GET PROCESSING OPTIONS `A8`, GENERATE AC `AE`) and the
/// GlobalPlatform card-management commands that T=0 cards commonly receive
/// (INITIALIZE UPDATE `50`, PUT KEY `D8`, STORE DATA `E2`, DELETE `E4`, INSTALL
/// `E6`, LOAD `E8`, SET STATUS `F0`, GET STATUS `F2`).
pub const INCOMING_PROPRIETARY: &[u8] = &[
    ins::CARD_BLOCK,
    ins::APPLICATION_UNBLOCK,
    ins::APPLICATION_BLOCK,
    ins::PIN_CHANGE_UNBLOCK,
    ins::GET_PROCESSING_OPTIONS,
    ins::GENERATE_AC,
    0x50,
    0xD8,
    0xE2,
    0xE4,
    0xE6,
    0xE8,
    0xF0,
    0xF2,
];

/// Which way the data of the command with this class and instruction goes: the card's
/// side needs it because a T=0 header does not say (§10.3.2, §12.2).
///
/// [`INCOMING_INTERINDUSTRY`] applies to every class (proprietary classes reuse the
/// interindustry instructions, e.g. EMV issuer scripts' `84 DA` or `04 DC`);
/// [`INCOMING_PROPRIETARY`] adds the EMV and GlobalPlatform commands for a
/// proprietary class (CLA b8 = 1, ISO 7816-4 §5.4.1). Everything else — READ BINARY,
/// READ RECORD, GET DATA, GET RESPONSE, GET CHALLENGE, MANAGE CHANNEL and every
/// unknown instruction — is outgoing.
pub fn instruction_direction(cla: u8, ins: u8) -> Direction {
    let proprietary = cla & 0x80 != 0 && cla != 0xFF;
    if INCOMING_INTERINDUSTRY.contains(&ins) || (proprietary && INCOMING_PROPRIETARY.contains(&ins))
    {
        Direction::Incoming
    } else {
        Direction::Outgoing
    }
}

/// Why a T=0 exchange failed, or why an engine refused a call.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum T0Error {
    /// The command APDU does not parse (ISO 7816-4 §5.1).
    #[error("command APDU for T=0: {source}")]
    BadApdu {
        /// Why.
        #[source]
        source: ApduError,
    },
    /// An extended-length APDU: T=0 carries short APDUs only (§12.2); the layer above
    /// chains or uses GET RESPONSE.
    #[error(
        "case {case} APDU uses extended lengths: T=0 carries short APDUs only (ISO 7816-3 §12.2)"
    )]
    ExtendedLength {
        /// The APDU's case.
        case: Case,
    },
    /// A TPDU shorter than its header.
    #[error("TPDU of {len} bytes: expected the 5-byte header CLA INS P1 P2 P3")]
    TpduTooShort {
        /// Bytes given.
        len: usize,
    },
    /// Data after the header that P3 does not announce.
    #[error(
        "TPDU with P3 = {p3:02X} and {data_len} data bytes at offset 5: P3 must count the data bytes (ISO 7816-3 §10.3.2)"
    )]
    TpduLength {
        /// P3.
        p3: u8,
        /// Data bytes after the header.
        data_len: usize,
    },
    /// INS `6X` or `9X` (§10.3.2).
    #[error(
        "INS = {ins:02X} at offset 1 is invalid under T=0: 6X and 9X are procedure bytes (ISO 7816-3 §10.3.2)"
    )]
    InvalidIns {
        /// The INS byte.
        ins: u8,
    },
    /// A call the engine cannot take in its current state.
    #[error("{call} called while {state}")]
    WrongStep {
        /// The call refused.
        call: &'static str,
        /// The engine's state.
        state: &'static str,
    },
    /// The card sent a byte that is no procedure byte where one was due (§10.3.3).
    #[error(
        "byte {byte:02X} received while {state}: expected a procedure byte, 60 (NULL), {ins:02X} (INS), {:02X} (INS ⊕ FF), 6X or 9X (SW1) (ISO 7816-3 §10.3.3)",
        !ins
    )]
    ProtocolViolation {
        /// The byte received.
        byte: u8,
        /// The command's INS, which the acknowledgements echo.
        ins: u8,
        /// What the engine was waiting for.
        state: &'static str,
    },
    /// The work waiting time passed between two characters from the card (§10.2).
    #[error(
        "timed out waiting for {waiting_for}: no character within the work waiting time (ISO 7816-3 §10.2); received so far: {}",
        hex_or_nothing(received)
    )]
    Timeout {
        /// What was due.
        waiting_for: &'static str,
        /// The bytes received from the card in this exchange, procedure bytes
        /// included.
        received: Vec<u8>,
    },
    /// Bytes from the card with no exchange in progress (after SW2).
    #[error(
        "{} bytes received after SW2, with no command in progress: {}",
        bytes.len(),
        hex::encode_upper(bytes)
    )]
    TrailingBytes {
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// Card side: bytes from the host while the card is not listening (working on a
    /// command).
    // The bytes stay out of the message: they may be a PIN sent too early.
    #[error("{} bytes received while {state}", bytes.len())]
    UnexpectedBytes {
        /// The bytes (dropped).
        bytes: Vec<u8>,
        /// The card's state.
        state: &'static str,
    },
    /// Card side: response data longer than P3 allows.
    #[error(
        "{len} response bytes for P3 = {p3:02X}: at most {} (ISO 7816-3 §10.3.2)",
        outgoing_length(*p3)
    )]
    ResponseTooLong {
        /// Bytes given.
        len: usize,
        /// The header's P3.
        p3: u8,
    },
    /// Card side: response data after an incoming command's data; under T=0 it goes
    /// through `61xx` and GET RESPONSE (§12.2.4).
    #[error(
        "{len} response bytes after the data of an incoming command: answer 61xx and serve them with GET RESPONSE (ISO 7816-3 §12.2.4)"
    )]
    DataAfterCommand {
        /// Bytes given.
        len: usize,
    },
    /// Card side: a status word whose SW1 is no SW1 under T=0.
    #[error("status {sw1:02X}{sw2:02X}: SW1 must be 6X other than 60, or 9X (ISO 7816-3 §10.3.3)")]
    InvalidStatus {
        /// SW1.
        sw1: u8,
        /// SW2.
        sw2: u8,
    },
}

fn hex_or_nothing(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        "nothing".to_owned()
    } else {
        hex::encode_upper(bytes)
    }
}

/// The T=0 TPDU for a short command APDU (§12.2):
///
/// - case 1: the header with P3 = `00` (§12.2.2);
/// - case 2S: the header with P3 = Le, `00` for 256 (§12.2.3);
/// - case 3S: the header with P3 = Lc, then the data (§12.2.4);
/// - case 4S: as case 3S, Le dropped: the card answers `61xx` and the transport above
///   fetches the data with GET RESPONSE (§12.2.5).
///
/// # Errors
/// [`T0Error::BadApdu`] when the APDU does not parse; [`T0Error::ExtendedLength`] for
/// cases 2E, 3E and 4E (the layer above chains).
pub fn command_tpdu(apdu: &[u8]) -> Result<Vec<u8>, T0Error> {
    let view = CommandView::parse(apdu).map_err(|source| T0Error::BadApdu { source })?;
    let case = view.case();
    let mut tpdu = Vec::with_capacity(HEADER_LEN + view.data().len());
    tpdu.extend_from_slice(&view.header());
    match case {
        Case::One => tpdu.push(0),
        Case::TwoShort => tpdu.push(length_byte(view.ne().unwrap_or(0))),
        Case::ThreeShort | Case::FourShort => {
            tpdu.push(length_byte(view.data().len()));
            tpdu.extend_from_slice(view.data());
        }
        Case::TwoExtended | Case::ThreeExtended | Case::FourExtended => {
            return Err(T0Error::ExtendedLength { case });
        }
    }
    Ok(tpdu)
}

/// What the host engine waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HostState {
    Idle,
    /// A procedure byte.
    Procedure,
    /// `count` data bytes, then a procedure byte.
    Receiving {
        count: usize,
    },
    /// SW2 after this SW1.
    Sw2 {
        sw1: u8,
    },
}

impl HostState {
    fn name(self) -> &'static str {
        match self {
            HostState::Idle => "idle",
            HostState::Procedure => "waiting for a procedure byte",
            HostState::Receiving { .. } => "receiving data bytes",
            HostState::Sw2 { .. } => "waiting for SW2",
        }
    }

    fn waiting_for(self) -> &'static str {
        match self {
            HostState::Idle => "nothing",
            HostState::Procedure => "a procedure byte",
            HostState::Receiving { .. } => "a data byte",
            HostState::Sw2 { .. } => "SW2",
        }
    }
}

/// The interface device's side of T=0: one TPDU at a time; see the module
/// documentation.
///
/// [`T0Host::start`] queues the header; the caller writes what
/// [`T0Host::poll_transmit`] gives, feeds the card's bytes (echo removed) to
/// [`T0Host::handle_input`], calls [`T0Host::handle_timeout`] when
/// [`T0Host::poll_timeout`] passes, and takes the card's answer from
/// [`T0Host::poll_response`]. After an error the exchange is abandoned and the engine
/// is idle (the card usually needs a reset).
pub struct T0Host {
    work_waiting_time: Duration,
    state: HostState,
    /// The command's INS, which the card's acknowledgements echo.
    ins: u8,
    /// Data for an incoming command (zeroized when the exchange ends: it may be a PIN).
    outgoing_data: Vec<u8>,
    /// How many of them were handed out.
    sent: usize,
    /// Data bytes the card may send (outgoing command), or 0.
    expected: usize,
    /// Data received from the card.
    data: Vec<u8>,
    /// Every byte received from the card in this exchange, for errors.
    received: Vec<u8>,
    transmit: Vec<u8>,
    deadline: Option<Instant>,
    response: Option<Vec<u8>>,
    nulls: usize,
}

impl fmt::Debug for T0Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Command data may be a PIN block: lengths only.
        f.debug_struct("T0Host")
            .field("work_waiting_time", &self.work_waiting_time)
            .field("state", &self.state)
            .field("ins", &self.ins)
            .field("command_data_len", &self.outgoing_data.len())
            .field("sent", &self.sent)
            .field("expected", &self.expected)
            .field("received", &self.received.len())
            .field("deadline", &self.deadline)
            .field("nulls", &self.nulls)
            .finish_non_exhaustive()
    }
}

impl Drop for T0Host {
    fn drop(&mut self) {
        self.outgoing_data.zeroize();
        self.transmit.zeroize();
    }
}

impl T0Host {
    /// An idle host; `work_waiting_time` is WWT (§10.2,
    /// [`super::timing::LineTiming::t0_work_waiting_time`]), widened as the line needs.
    pub fn new(work_waiting_time: Duration) -> T0Host {
        T0Host {
            work_waiting_time,
            state: HostState::Idle,
            ins: 0,
            outgoing_data: Vec::new(),
            sent: 0,
            expected: 0,
            data: Vec::new(),
            received: Vec::new(),
            transmit: Vec::new(),
            deadline: None,
            response: None,
            nulls: 0,
        }
    }

    /// Starts one TPDU: the 5-byte header followed by P3 data bytes (an incoming
    /// command), or the header alone (an outgoing command: the card sends up to P3
    /// bytes, 256 when P3 = `00`; a case-1 command takes this form too). A response
    /// not yet taken is dropped.
    ///
    /// # Errors
    /// [`T0Error::WrongStep`] while an exchange is in progress,
    /// [`T0Error::TpduTooShort`], [`T0Error::TpduLength`], [`T0Error::InvalidIns`].
    pub fn start(&mut self, tpdu: &[u8], now: Instant) -> Result<(), T0Error> {
        if self.state != HostState::Idle {
            return Err(T0Error::WrongStep {
                call: "start",
                state: self.state.name(),
            });
        }
        let (Some(header), Some(data)) = (tpdu.get(..HEADER_LEN), tpdu.get(HEADER_LEN..)) else {
            return Err(T0Error::TpduTooShort { len: tpdu.len() });
        };
        let [_, ins, _, _, p3] = header else {
            return Err(T0Error::TpduTooShort { len: tpdu.len() });
        };
        if is_invalid_ins(*ins) {
            return Err(T0Error::InvalidIns { ins: *ins });
        }
        if !data.is_empty() && data.len() != usize::from(*p3) {
            return Err(T0Error::TpduLength {
                p3: *p3,
                data_len: data.len(),
            });
        }
        self.end_exchange();
        self.ins = *ins;
        self.outgoing_data.extend_from_slice(data);
        self.expected = if data.is_empty() {
            outgoing_length(*p3)
        } else {
            0
        };
        self.response = None;
        self.nulls = 0;
        self.transmit.extend_from_slice(header);
        self.state = HostState::Procedure;
        self.deadline = Some(after(now, self.work_waiting_time));
        Ok(())
    }

    /// Takes the card's characters, all arrived at `now`, and follows the procedure
    /// bytes (§10.3.3): NULL restarts the work waiting time; INS moves all remaining
    /// data, INS ⊕ `FF` the next byte, in the command's direction; SW1 then SW2 end the
    /// exchange. Input is accepted whatever `now` is: deadlines fire only through
    /// [`T0Host::handle_timeout`].
    ///
    /// # Errors
    /// [`T0Error::ProtocolViolation`] for a byte that is no procedure byte (or an
    /// acknowledgement with no data left to move); [`T0Error::TrailingBytes`] for
    /// bytes after SW2 (the response stays available) or with no exchange in
    /// progress. Either way the exchange is over.
    pub fn handle_input(&mut self, bytes: &[u8], now: Instant) -> Result<(), T0Error> {
        let mut rest = bytes;
        while let Some((&byte, tail)) = rest.split_first() {
            if self.state == HostState::Idle {
                return Err(T0Error::TrailingBytes {
                    bytes: rest.to_vec(),
                });
            }
            rest = tail;
            self.received.push(byte);
            match self.state {
                HostState::Idle => {}
                HostState::Receiving { count } => {
                    self.data.push(byte);
                    self.state = match count.checked_sub(1) {
                        Some(0) | None => HostState::Procedure,
                        Some(left) => HostState::Receiving { count: left },
                    };
                }
                HostState::Sw2 { sw1 } => {
                    let mut response = std::mem::take(&mut self.data);
                    response.extend([sw1, byte]);
                    self.response = Some(response);
                    self.end_exchange();
                }
                HostState::Procedure => self.procedure_byte(byte)?,
            }
        }
        if self.state != HostState::Idle && !bytes.is_empty() {
            // §10.2: WWT runs from each character the card sends.
            self.deadline = Some(after(now, self.work_waiting_time));
        }
        Ok(())
    }

    fn procedure_byte(&mut self, byte: u8) -> Result<(), T0Error> {
        if byte == NULL {
            self.nulls = self.nulls.saturating_add(1);
            return Ok(());
        }
        if is_sw1(byte) {
            self.state = HostState::Sw2 { sw1: byte };
            return Ok(());
        }
        let one_byte = if byte == self.ins {
            false
        } else if byte == !self.ins {
            true
        } else {
            return Err(self.violation(byte, HostState::Procedure.name()));
        };
        if self.expected == 0 {
            // Incoming: hand out all remaining command data, or the next byte.
            let remaining = self.outgoing_data.get(self.sent..).unwrap_or_default();
            let count = if one_byte { 1 } else { remaining.len() };
            match remaining.get(..count) {
                Some(chunk) if !chunk.is_empty() => {
                    self.transmit.extend_from_slice(chunk);
                    self.sent += count;
                    Ok(())
                }
                _ => Err(self.violation(byte, "waiting for SW1, every command data byte sent")),
            }
        } else {
            // Outgoing: receive all remaining bytes, or the next one.
            let remaining = self.expected.saturating_sub(self.data.len());
            if remaining == 0 {
                return Err(self.violation(byte, "waiting for SW1, every data byte received"));
            }
            let count = if one_byte { 1 } else { remaining };
            self.state = HostState::Receiving { count };
            Ok(())
        }
    }

    fn violation(&mut self, byte: u8, state: &'static str) -> T0Error {
        let ins = self.ins;
        self.end_exchange();
        T0Error::ProtocolViolation { byte, ins, state }
    }

    /// Fires the work waiting time if `now` has reached [`T0Host::poll_timeout`].
    ///
    /// # Errors
    /// [`T0Error::Timeout`] naming what was due and what the card sent; the exchange
    /// is over.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), T0Error> {
        match self.deadline {
            Some(deadline) if now >= deadline => {}
            _ => return Ok(()),
        }
        let error = T0Error::Timeout {
            waiting_for: self.state.waiting_for(),
            received: self.received.clone(),
        };
        self.end_exchange();
        Err(error)
    }

    /// Bytes to write on the line now: the header, then command data as the card
    /// acknowledges it.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        if self.transmit.is_empty() {
            None
        } else {
            Some(std::mem::take(&mut self.transmit))
        }
    }

    /// The instant the card's next character is due by, during an exchange.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    /// The card's answer once SW2 arrived: its data and SW1 SW2 exactly as sent
    /// (`61xx`, `6Cxx` included); `Some` once per exchange.
    pub fn poll_response(&mut self) -> Option<Vec<u8>> {
        self.response.take()
    }

    /// NULL procedure bytes received in the current or last exchange.
    pub fn null_bytes(&self) -> usize {
        self.nulls
    }

    /// Whether no exchange is in progress ([`T0Host::start`] may be called).
    pub fn is_idle(&self) -> bool {
        self.state == HostState::Idle
    }

    fn end_exchange(&mut self) {
        self.state = HostState::Idle;
        self.deadline = None;
        // Data queued by an acknowledgement but not yet handed out belongs to the
        // exchange that just ended: sent later, it would reach the card as the next
        // command's header — a PIN block sent twice, and read as a command.
        self.transmit.zeroize();
        self.outgoing_data.zeroize();
        self.outgoing_data.clear();
        self.sent = 0;
        self.expected = 0;
        self.data.clear();
        self.received.clear();
    }
}

fn after(now: Instant, wait: Duration) -> Instant {
    now.checked_add(wait).unwrap_or(now)
}

/// How the card side behaves on the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct T0CardConfig {
    /// Send INS ⊕ `FF` before every data byte, in both directions, instead of one INS
    /// for all of them (§10.3.3).
    pub ack_each_byte: bool,
}

/// What the card side reports to the application.
#[derive(Clone, PartialEq, Eq)]
pub enum T0CardEvent {
    /// A complete header: answer with [`T0Card::receive_data`] (incoming command),
    /// [`T0Card::respond`], or [`T0Card::send_null`] first.
    Header([u8; 5]),
    /// An incoming command's header and its P3 data bytes: answer with
    /// [`T0Card::respond`] (no data).
    Command {
        /// The header.
        header: [u8; 5],
        /// The data bytes.
        data: Vec<u8>,
    },
    /// A header or data cut short: nothing for `idle_timeout` after the last byte.
    /// The card is ready for a new header.
    Discarded {
        /// The bytes received (header first).
        bytes: Vec<u8>,
    },
}

impl fmt::Debug for T0CardEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            T0CardEvent::Header(header) => f
                .debug_tuple("Header")
                .field(&hex::encode_upper(header))
                .finish(),
            T0CardEvent::Command { header, data } => {
                let [cla, ins, p1, p2, _] = *header;
                // VERIFY and its kin carry a PIN block: show its length only.
                let shown = if Command::new(cla, ins, p1, p2).carries_secret() {
                    format!("<{} bytes hidden>", data.len())
                } else {
                    hex::encode_upper(data)
                };
                f.debug_struct("Command")
                    .field("header", &hex::encode_upper(header))
                    .field("data", &shown)
                    .finish()
            }
            T0CardEvent::Discarded { bytes } => f
                .debug_struct("Discarded")
                .field("len", &bytes.len())
                .finish(),
        }
    }
}

/// The card side's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CardState {
    /// Collecting a header (in `buffer`).
    Idle,
    /// The header is out as [`T0CardEvent::Header`]; the application decides.
    Working { header: [u8; 5] },
    /// Collecting `expected` data bytes (in `buffer`).
    Receiving { header: [u8; 5], expected: usize },
    /// The command is out as [`T0CardEvent::Command`]; the application answers.
    Processing { header: [u8; 5] },
}

impl CardState {
    fn name(self) -> &'static str {
        match self {
            CardState::Idle => "waiting for a command header",
            CardState::Working { .. } => "working on a command header",
            CardState::Receiving { .. } => "receiving command data",
            CardState::Processing { .. } => "working on a command and its data",
        }
    }
}

/// How long the card side waits in the middle of a header or of command data before
/// discarding it, unless [`T0Card::with_idle_timeout`] says otherwise: one second,
/// the default work waiting time (9,600 etu) at 9,600 baud.
pub const DEFAULT_CARD_IDLE_TIMEOUT: Duration = Duration::from_secs(1);

/// The card's side of T=0; see the module documentation.
///
/// The caller feeds the host's bytes to [`T0Card::handle_input`], answers each
/// [`T0Card::poll_event`] with [`T0Card::receive_data`], [`T0Card::respond`] or
/// [`T0Card::send_null`], and writes what [`T0Card::poll_transmit`] gives.
/// [`CardApduAdapter`] does the answering for an application that speaks APDUs.
pub struct T0Card {
    config: T0CardConfig,
    idle_timeout: Duration,
    state: CardState,
    /// The header being collected, or the command data (zeroized: it may be a PIN).
    buffer: Vec<u8>,
    last_input: Option<Instant>,
    transmit: Vec<u8>,
    events: VecDeque<T0CardEvent>,
}

impl fmt::Debug for T0Card {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("T0Card")
            .field("config", &self.config)
            .field("idle_timeout", &self.idle_timeout)
            .field("state", &self.state)
            .field("buffered", &self.buffer.len())
            .field("events", &self.events.len())
            .finish_non_exhaustive()
    }
}

impl Drop for T0Card {
    fn drop(&mut self) {
        self.buffer.zeroize();
    }
}

impl T0Card {
    /// A card waiting for a header, discarding a partial one after
    /// [`DEFAULT_CARD_IDLE_TIMEOUT`].
    ///
    /// The line's first character after the ATR may also be PPSS `FF` (§9.1): the
    /// driver routes a PPS request to [`super::pps`] before handing the line to this
    /// engine.
    pub fn new(config: T0CardConfig) -> T0Card {
        T0Card {
            config,
            idle_timeout: DEFAULT_CARD_IDLE_TIMEOUT,
            state: CardState::Idle,
            buffer: Vec::with_capacity(HEADER_LEN),
            last_input: None,
            transmit: Vec::new(),
            events: VecDeque::new(),
        }
    }

    /// The same card, discarding a partial header or data after `idle_timeout`.
    pub fn with_idle_timeout(mut self, idle_timeout: Duration) -> T0Card {
        self.idle_timeout = idle_timeout;
        self
    }

    /// Takes the host's characters, all arrived at `now`: a header, or the data the
    /// card acknowledged.
    ///
    /// # Errors
    /// [`T0Error::UnexpectedBytes`] for bytes arriving while the card works on a
    /// command (they are dropped; the command goes on), or beyond the data P3
    /// announced.
    pub fn handle_input(&mut self, bytes: &[u8], now: Instant) -> Result<(), T0Error> {
        if !bytes.is_empty() {
            self.last_input = Some(now);
        }
        let mut rest = bytes;
        while let Some((&byte, tail)) = rest.split_first() {
            match self.state {
                CardState::Idle => {
                    self.buffer.push(byte);
                    if let Ok(header) = <[u8; 5]>::try_from(self.buffer.as_slice()) {
                        self.buffer.clear();
                        self.state = CardState::Working { header };
                        self.events.push_back(T0CardEvent::Header(header));
                    }
                }
                CardState::Receiving { header, expected } => {
                    self.buffer.push(byte);
                    if self.buffer.len() >= expected {
                        let data = std::mem::take(&mut self.buffer);
                        self.state = CardState::Processing { header };
                        self.events.push_back(T0CardEvent::Command { header, data });
                    } else if self.config.ack_each_byte {
                        // §10.3.3: INS ⊕ FF asks for the next byte only.
                        self.transmit.push(!header[1]);
                    }
                }
                CardState::Working { .. } | CardState::Processing { .. } => {
                    return Err(T0Error::UnexpectedBytes {
                        bytes: rest.to_vec(),
                        state: self.state.name(),
                    });
                }
            }
            rest = tail;
        }
        Ok(())
    }

    /// Discards a header or command data cut short once `idle_timeout` has passed
    /// since its last byte, reporting [`T0CardEvent::Discarded`]; the card then waits
    /// for a new header, so a host that restarts finds a clean card.
    ///
    /// # Errors
    /// None today; the signature matches the other engines.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), T0Error> {
        match self.poll_timeout() {
            Some(deadline) if now >= deadline => {}
            _ => return Ok(()),
        }
        let mut bytes = match self.state {
            CardState::Receiving { header, .. } => header.to_vec(),
            _ => Vec::new(),
        };
        bytes.append(&mut self.buffer);
        self.state = CardState::Idle;
        self.last_input = None;
        self.events.push_back(T0CardEvent::Discarded { bytes });
        Ok(())
    }

    /// Bytes to write on the line now: procedure bytes, data, SW1 SW2.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        if self.transmit.is_empty() {
            None
        } else {
            Some(std::mem::take(&mut self.transmit))
        }
    }

    /// While a header or command data is partly received: when it is discarded.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let waiting = match self.state {
            CardState::Idle => !self.buffer.is_empty(),
            CardState::Receiving { .. } => true,
            CardState::Working { .. } | CardState::Processing { .. } => false,
        };
        if waiting {
            self.last_input.map(|at| after(at, self.idle_timeout))
        } else {
            None
        }
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<T0CardEvent> {
        self.events.pop_front()
    }

    /// Whether the card waits for a header with nothing of one received.
    pub fn is_idle(&self) -> bool {
        self.state == CardState::Idle && self.buffer.is_empty()
    }

    /// After [`T0CardEvent::Header`] of an incoming command: acknowledges (INS, or
    /// INS ⊕ `FF` before each byte when so configured) and collects P3 data bytes,
    /// then reports [`T0CardEvent::Command`]. With P3 = `00` there is nothing to
    /// collect and the command is reported at once, with no data.
    ///
    /// # Errors
    /// [`T0Error::WrongStep`] unless a header is being worked on;
    /// [`T0Error::InvalidIns`] for INS `6X`/`9X`, which cannot be acknowledged.
    pub fn receive_data(&mut self, now: Instant) -> Result<(), T0Error> {
        let CardState::Working { header } = self.state else {
            return Err(T0Error::WrongStep {
                call: "receive_data",
                state: self.state.name(),
            });
        };
        let [_, ins, _, _, p3] = header;
        if is_invalid_ins(ins) {
            return Err(T0Error::InvalidIns { ins });
        }
        if p3 == 0 {
            self.state = CardState::Processing { header };
            self.events.push_back(T0CardEvent::Command {
                header,
                data: Vec::new(),
            });
            return Ok(());
        }
        self.transmit
            .push(if self.config.ack_each_byte { !ins } else { ins });
        self.state = CardState::Receiving {
            header,
            expected: usize::from(p3),
        };
        self.last_input = Some(now);
        Ok(())
    }

    /// Answers the command being worked on, and waits for the next header.
    ///
    /// - After [`T0CardEvent::Header`]: with data, an outgoing command's answer — INS
    ///   then the data (or INS ⊕ `FF` before each byte when so configured), then SW1
    ///   SW2. Data shorter than P3 asks is sent byte by byte (INS ⊕ `FF`), the one way
    ///   §10.3.3 lets the card stop early. Without data, SW1 SW2 alone (a case-1
    ///   command, or a refusal before any data).
    /// - After [`T0CardEvent::Command`]: SW1 SW2 alone.
    ///
    /// # Errors
    /// [`T0Error::WrongStep`] with no command being worked on;
    /// [`T0Error::InvalidStatus`] when SW1 is no SW1; [`T0Error::ResponseTooLong`];
    /// [`T0Error::DataAfterCommand`]; [`T0Error::InvalidIns`] for data under INS
    /// `6X`/`9X`.
    pub fn respond(&mut self, data: &[u8], sw: [u8; 2], now: Instant) -> Result<(), T0Error> {
        let _ = now;
        let [sw1, sw2] = sw;
        let header = match self.state {
            CardState::Working { header } | CardState::Processing { header } => header,
            CardState::Idle | CardState::Receiving { .. } => {
                return Err(T0Error::WrongStep {
                    call: "respond",
                    state: self.state.name(),
                });
            }
        };
        if !is_sw1(sw1) {
            return Err(T0Error::InvalidStatus { sw1, sw2 });
        }
        let [_, ins, _, _, p3] = header;
        if !data.is_empty() {
            if matches!(self.state, CardState::Processing { .. }) {
                return Err(T0Error::DataAfterCommand { len: data.len() });
            }
            if data.len() > outgoing_length(p3) {
                return Err(T0Error::ResponseTooLong {
                    len: data.len(),
                    p3,
                });
            }
            if is_invalid_ins(ins) {
                return Err(T0Error::InvalidIns { ins });
            }
            if self.config.ack_each_byte || data.len() < outgoing_length(p3) {
                for &byte in data {
                    self.transmit.extend([!ins, byte]);
                }
            } else {
                self.transmit.push(ins);
                self.transmit.extend_from_slice(data);
            }
        }
        self.transmit.extend(sw);
        self.state = CardState::Idle;
        self.last_input = None;
        Ok(())
    }

    /// Sends a NULL procedure byte (`60`) to ask for more time (§10.3.3), while the
    /// card works on a command, before [`T0Card::respond`].
    ///
    /// # Errors
    /// [`T0Error::WrongStep`] with no command being worked on.
    pub fn send_null(&mut self, now: Instant) -> Result<(), T0Error> {
        let _ = now;
        match self.state {
            CardState::Working { .. } | CardState::Processing { .. } => {
                self.transmit.push(NULL);
                Ok(())
            }
            CardState::Idle | CardState::Receiving { .. } => Err(T0Error::WrongStep {
                call: "send_null",
                state: self.state.name(),
            }),
        }
    }
}

/// Response data the adapter holds for GET RESPONSE, with the application's status.
struct Pending {
    data: Vec<u8>,
    sw: [u8; 2],
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.data.zeroize();
    }
}

/// The card side's §12.2 mapping between T=0 and an application that speaks APDUs
/// (like `card-applet-sim`): bytes in, bytes out, data plus SW1 SW2.
///
/// - Header of an incoming command ([`instruction_direction`]) with P3 > 0: the data
///   is collected, then the application gets `CLA INS P1 P2 Lc data` (case 3; a case-4
///   command's Le does not cross T=0, §12.2.5). Response data is not sent: the card
///   answers `61xx` (xx = its length, `00` for 256 or more) and holds it for GET
///   RESPONSE. With P3 = 0 the application gets the 4-byte header (case 1).
/// - Header of an outgoing command: the application gets `CLA INS P1 P2 Le` with
///   Le = P3 (`00`: 256). Data of exactly Ne bytes goes back with the application's
///   status; more or fewer gets `6C(Na)` and the host re-issues with P3 = Na — except
///   more than 256 for Ne = 256, sent as 256 bytes and `61xx` for the rest. No data:
///   the status alone.
/// - GET RESPONSE (INS `C0`) while the adapter holds data: Ne equal to what is held
///   gets it all with the application's status; fewer gets that many and `61xx` for
///   the rest; more gets `6C(Na)`. While it holds none, GET RESPONSE goes to the
///   application like any other command (a card such as the `t0-slow` profile does
///   `61xx` itself). Any other command drops held data (ISO 7816-4 §5.3.4).
/// - INS `6X`/`9X`: `6D00` (§10.3.2). An application answer shorter than SW1 SW2, or
///   whose SW1 T=0 cannot carry, is answered `6F00`.
///
/// `with_null_bytes(n)` sends n NULL bytes before each answer the application
/// computed, as a slow card does.
#[derive(Default)]
pub struct CardApduAdapter {
    pending: Option<Pending>,
    null_bytes: u8,
}

impl fmt::Debug for CardApduAdapter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CardApduAdapter")
            .field("pending", &self.pending.as_ref().map(|p| p.data.len()))
            .field("null_bytes", &self.null_bytes)
            .finish()
    }
}

impl CardApduAdapter {
    /// An adapter holding no data, sending no NULL bytes.
    pub fn new() -> CardApduAdapter {
        CardApduAdapter::default()
    }

    /// The same adapter, sending `count` NULL procedure bytes before each answer the
    /// application computed (in [`CardApduAdapter::handle_event`]).
    pub fn with_null_bytes(mut self, count: u8) -> CardApduAdapter {
        self.null_bytes = count;
        self
    }

    /// Bytes held for GET RESPONSE.
    pub fn pending_len(&self) -> usize {
        self.pending.as_ref().map_or(0, |p| p.data.len())
    }

    /// Whether the command with this header carries data the card must collect
    /// ([`T0Card::receive_data`]) before [`CardApduAdapter::command`]: an incoming
    /// instruction ([`instruction_direction`]) with P3 > 0, other than an invalid INS
    /// or a GET RESPONSE served from held data.
    pub fn expects_data(&self, header: &[u8; 5]) -> bool {
        let [cla, ins, _, _, p3] = *header;
        p3 > 0
            && !is_invalid_ins(ins)
            && !self.serves_get_response(ins)
            && instruction_direction(cla, ins) == Direction::Incoming
    }

    /// The T=0 answer to one command — the data to send after the header (outgoing
    /// commands only; empty otherwise) and SW1 SW2 — for [`T0Card::respond`].
    ///
    /// `data` is the command data collected after [`T0CardEvent::Command`], empty
    /// after a [`T0CardEvent::Header`] that [`CardApduAdapter::expects_data`] refused.
    /// `application` gets the command APDU and returns the response data and SW1 SW2,
    /// or `None` when it failed (the answer is then `6F00`, which the caller may
    /// choose not to send). It is not called for an invalid INS or a GET RESPONSE
    /// served from held data.
    pub fn command<F>(
        &mut self,
        header: &[u8; 5],
        data: &[u8],
        application: F,
    ) -> (Vec<u8>, [u8; 2])
    where
        F: FnOnce(&[u8]) -> Option<Vec<u8>>,
    {
        let [cla, ins, p1, p2, p3] = *header;
        if is_invalid_ins(ins) {
            return (Vec::new(), SW_INS_INVALID);
        }
        if data.is_empty() && self.serves_get_response(ins) {
            return self.get_response([p1, p2], p3);
        }
        // ISO 7816-4 §5.3.4: data held for GET RESPONSE lasts until the next command.
        self.pending = None;
        let incoming = !data.is_empty() || instruction_direction(cla, ins) == Direction::Incoming;
        // Case 3 (CLA INS P1 P2 Lc data), case 1 (an incoming instruction without
        // data), or case 2 (CLA INS P1 P2 Le) — §12.2.
        let mut apdu = Vec::with_capacity(HEADER_LEN + data.len());
        apdu.extend_from_slice(&[cla, ins, p1, p2]);
        if !data.is_empty() {
            apdu.push(length_byte(data.len()));
            apdu.extend_from_slice(data);
        } else if !incoming {
            apdu.push(p3);
        }
        let response = application(&apdu);
        apdu.zeroize();
        let (data, sw) = split_response(response);
        if incoming {
            self.answer_incoming(data, sw)
        } else {
            self.answer_outgoing(outgoing_length(p3), data, sw)
        }
    }

    /// Answers one event of `card` in full — collecting data, calling `application`
    /// (command APDU in, response data and SW1 SW2 out), sending the NULL bytes and
    /// the answer.
    ///
    /// # Errors
    /// What `card` returns for a step it refuses (an event answered twice, or an event
    /// from another card).
    pub fn handle_event<A>(
        &mut self,
        card: &mut T0Card,
        event: T0CardEvent,
        application: &mut A,
        now: Instant,
    ) -> Result<(), T0Error>
    where
        A: FnMut(&[u8]) -> Vec<u8>,
    {
        let (header, mut data) = match event {
            T0CardEvent::Header(header) if self.expects_data(&header) => {
                return card.receive_data(now);
            }
            T0CardEvent::Header(header) => (header, Vec::new()),
            T0CardEvent::Command { header, data } => (header, data),
            T0CardEvent::Discarded { .. } => return Ok(()),
        };
        let mut computed = false;
        let (response, sw) = self.command(&header, &data, |apdu| {
            computed = true;
            Some(application(apdu))
        });
        data.zeroize();
        if computed {
            for _ in 0..self.null_bytes {
                card.send_null(now)?;
            }
        }
        card.respond(&response, sw, now)
    }

    fn serves_get_response(&self, ins: u8) -> bool {
        ins == ins::GET_RESPONSE && self.pending.is_some()
    }

    fn answer_incoming(&mut self, data: Vec<u8>, sw: [u8; 2]) -> (Vec<u8>, [u8; 2]) {
        if data.is_empty() {
            return (data, sw);
        }
        // §12.2.5: the data waits for GET RESPONSE; 61xx says how much.
        let announce = [SW1_BYTES_AVAILABLE, length_byte(data.len())];
        self.pending = Some(Pending { data, sw });
        (Vec::new(), announce)
    }

    fn answer_outgoing(&mut self, ne: usize, mut data: Vec<u8>, sw: [u8; 2]) -> (Vec<u8>, [u8; 2]) {
        if data.is_empty() || data.len() == ne {
            (data, sw)
        } else if data.len() > ne && ne == 256 {
            // More than one P3 can ask: 256 now, the rest through GET RESPONSE.
            let rest = data.split_off(ne);
            let announce = [SW1_BYTES_AVAILABLE, length_byte(rest.len())];
            self.pending = Some(Pending { data: rest, sw });
            (data, announce)
        } else {
            // §12.2.3, ISO 7816-4 §5.3.4: wrong Le; SW2 gives the length to ask.
            let exact = [SW1_WRONG_LE, length_byte(data.len())];
            data.zeroize();
            (Vec::new(), exact)
        }
    }

    /// GET RESPONSE served from held data (ISO 7816-4 §7.6.1: P1-P2 = `0000`).
    fn get_response(&mut self, p1p2: [u8; 2], p3: u8) -> (Vec<u8>, [u8; 2]) {
        let Some(mut pending) = self.pending.take() else {
            return (Vec::new(), SW_NO_PRECISE_DIAGNOSIS);
        };
        if p1p2 != [0, 0] {
            self.pending = Some(pending);
            return (Vec::new(), SW_WRONG_P1P2);
        }
        let ne = outgoing_length(p3);
        let available = pending.data.len();
        if ne == available {
            (std::mem::take(&mut pending.data), pending.sw)
        } else if ne < available {
            let rest = pending.data.split_off(ne);
            let announce = [SW1_BYTES_AVAILABLE, length_byte(rest.len())];
            let now = std::mem::take(&mut pending.data);
            pending.data = rest;
            self.pending = Some(pending);
            (now, announce)
        } else {
            let exact = [SW1_WRONG_LE, length_byte(available)];
            self.pending = Some(pending);
            (Vec::new(), exact)
        }
    }
}

/// Splits an application's answer into data and SW1 SW2; `6F00` and no data when it
/// failed, is shorter than two bytes, or ends in an SW1 that T=0 cannot carry.
fn split_response(response: Option<Vec<u8>>) -> (Vec<u8>, [u8; 2]) {
    let Some(mut response) = response else {
        return (Vec::new(), SW_NO_PRECISE_DIAGNOSIS);
    };
    let sw = response
        .len()
        .checked_sub(2)
        .map(|at| response.split_off(at))
        .and_then(|sw| <[u8; 2]>::try_from(sw).ok());
    match sw {
        Some(sw) if is_sw1(sw[0]) => (response, sw),
        _ => {
            response.zeroize();
            (Vec::new(), SW_NO_PRECISE_DIAGNOSIS)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bytes(hex: &str) -> Vec<u8> {
        hex::decode(hex.replace([' ', '|'], "")).unwrap()
    }

    const WWT: Duration = Duration::from_millis(1000);

    fn ms(start: Instant, ms: u64) -> Instant {
        start + Duration::from_millis(ms)
    }

    // ---- command_tpdu (§12.2) ----

    #[test]
    fn tpdu_for_each_case() {
        let rows: &[(&str, &str, &str)] = &[
            ("§12.2.2 case 1: P3 = 00", "80 1E 00 00", "80 1E 00 00 00"),
            (
                "§12.2.3 case 2S: P3 = Le",
                "00 B2 01 0C 1D",
                "00 B2 01 0C 1D",
            ),
            (
                "§12.2.3 case 2S: Le 256 as 00",
                "00 B2 01 0C 00",
                "00 B2 01 0C 00",
            ),
            (
                "§12.2.4 case 3S: P3 = Lc, data",
                "00 20 00 80 08 24 12 34 FF FF FF FF FF",
                "00 20 00 80 08 24 12 34 FF FF FF FF FF",
            ),
            (
                "§12.2.5 case 4S: Le dropped",
                "00 A4 04 00 07 A0 00 00 00 04 10 10 00",
                "00 A4 04 00 07 A0 00 00 00 04 10 10",
            ),
        ];
        for &(name, apdu, tpdu) in rows {
            assert_eq!(command_tpdu(&bytes(apdu)), Ok(bytes(tpdu)), "{name}");
        }
    }

    #[test]
    fn tpdu_refusals() {
        let rows: Vec<(&str, &str, T0Error)> = vec![
            (
                "§12.2 case 2E",
                "00 B0 00 00 00 01 00",
                T0Error::ExtendedLength {
                    case: Case::TwoExtended,
                },
            ),
            (
                "§12.2 case 3E",
                "00 D6 00 00 00 00 02 AA BB",
                T0Error::ExtendedLength {
                    case: Case::ThreeExtended,
                },
            ),
            (
                "header too short",
                "00 A4 04",
                T0Error::BadApdu {
                    source: ApduError::TooShort { len: 3 },
                },
            ),
        ];
        for (name, apdu, expected) in rows {
            assert_eq!(command_tpdu(&bytes(apdu)), Err(expected), "{name}");
        }
    }

    // ---- host side (§10.3.3) ----

    /// Runs a host exchange: `tpdu` started at `start`, then each `|`-separated chunk
    /// of `card` 1 ms apart. Returns everything the host transmitted and the response
    /// (or the first error).
    fn host_run(tpdu: &str, card: &str) -> (Vec<u8>, Result<Vec<u8>, T0Error>, usize) {
        let start = Instant::now();
        let mut host = T0Host::new(WWT);
        let mut sent = Vec::new();
        if let Err(error) = host.start(&bytes(tpdu), start) {
            return (sent, Err(error), 0);
        }
        sent.extend(host.poll_transmit().unwrap_or_default());
        for (i, chunk) in card.split('|').enumerate() {
            let result = host.handle_input(&bytes(chunk), ms(start, i as u64 + 1));
            sent.extend(host.poll_transmit().unwrap_or_default());
            if let Err(error) = result {
                return (sent, Err(error), host.null_bytes());
            }
        }
        let response = host.poll_response().ok_or(T0Error::Timeout {
            waiting_for: host.state.waiting_for(),
            received: Vec::new(),
        });
        assert!(host.is_idle() || response.is_err());
        (sent, response, host.null_bytes())
    }

    /// One row per procedure-byte rule: the TPDU, the card's bytes, what the host
    /// sent, the response, the NULLs counted.
    #[test]
    fn host_procedure_bytes() {
        let rows: &[(&str, &str, &str, &str, &str, usize)] = &[
            (
                "§10.3.3 INS, outgoing: all data at once",
                "00 B2 01 0C 04",
                "B2 01 02 03 04 90 00",
                "00 B2 01 0C 04",
                "01 02 03 04 90 00",
                0,
            ),
            (
                "§10.3.3 INS, incoming: all data at once",
                "00 20 00 80 02 12 34",
                "20|90 00",
                "00 20 00 80 02 12 34",
                "90 00",
                0,
            ),
            (
                "§10.3.3 INS ⊕ FF, outgoing: one byte at a time",
                "00 B2 01 0C 02",
                "4D 01 4D 02 90 00",
                "00 B2 01 0C 02",
                "01 02 90 00",
                0,
            ),
            (
                "§10.3.3 INS ⊕ FF, incoming: one byte at a time",
                "00 20 00 80 02 12 34",
                "DF|DF|90 00",
                "00 20 00 80 02 12 34",
                "90 00",
                0,
            ),
            (
                "§10.3.3 INS ⊕ FF then INS for the rest",
                "00 B2 01 0C 03",
                "4D 01 B2 02 03 90 00",
                "00 B2 01 0C 03",
                "01 02 03 90 00",
                0,
            ),
            (
                "§10.3.3 NULL bytes before, between and after",
                "00 B2 01 0C 02",
                "60|60 B2 01 02|60 90 00",
                "00 B2 01 0C 02",
                "01 02 90 00",
                3,
            ),
            (
                "§10.3.3 data bytes that look like procedure bytes are data",
                "00 B2 01 0C 03",
                "B2 60 90 00 90 00",
                "00 B2 01 0C 03",
                "60 90 00 90 00",
                0,
            ),
            (
                "§10.3.5 61xx returned as given",
                "00 A4 04 00 02 3F 00",
                "A4|61 1C",
                "00 A4 04 00 02 3F 00",
                "61 1C",
                0,
            ),
            (
                "§10.3.5 6Cxx returned as given",
                "00 B2 01 0C 00",
                "6C 1A",
                "00 B2 01 0C 00",
                "6C 1A",
                0,
            ),
            (
                "§10.3.2 P3 = 00 outgoing: 256 bytes",
                "00 B0 00 00 00",
                &format!("B0 {} 90 00", "AB ".repeat(256)),
                "00 B0 00 00 00",
                &format!("{} 90 00", "AB ".repeat(256)),
                0,
            ),
            (
                "§12.2.2 case 1: SW only",
                "80 1E 00 00 00",
                "90 00",
                "80 1E 00 00 00",
                "90 00",
                0,
            ),
            (
                "§12.2.4 case 3 refused before the data: SW only",
                "00 20 00 80 02 12 34",
                "69 85",
                "00 20 00 80 02",
                "69 85",
                0,
            ),
            (
                "§10.3.3 fewer bytes than P3, byte by byte",
                "00 B2 01 0C 04",
                "4D 01 62 82",
                "00 B2 01 0C 04",
                "01 62 82",
                0,
            ),
        ];
        for &(name, tpdu, card, sent, response, nulls) in rows {
            let (transmitted, result, counted) = host_run(tpdu, card);
            assert_eq!(transmitted, bytes(sent), "{name}: sent");
            assert_eq!(result, Ok(bytes(response)), "{name}: response");
            assert_eq!(counted, nulls, "{name}: NULLs");
        }
    }

    /// One row per host-side error, the error checked exactly.
    #[test]
    fn host_errors() {
        let rows: Vec<(&str, &str, &str, T0Error)> = vec![
            (
                "§10.3.3 a byte that is no procedure byte",
                "00 B2 01 0C 04",
                "12",
                T0Error::ProtocolViolation {
                    byte: 0x12,
                    ins: 0xB2,
                    state: "waiting for a procedure byte",
                },
            ),
            (
                "§10.3.3 INS after every command byte went",
                "00 20 00 80 02 12 34",
                "20|20",
                T0Error::ProtocolViolation {
                    byte: 0x20,
                    ins: 0x20,
                    state: "waiting for SW1, every command data byte sent",
                },
            ),
            (
                "§10.3.3 INS ⊕ FF after every data byte came",
                "00 B2 01 0C 01",
                "B2 01 4D",
                T0Error::ProtocolViolation {
                    byte: 0x4D,
                    ins: 0xB2,
                    state: "waiting for SW1, every data byte received",
                },
            ),
            (
                "bytes after SW2",
                "00 B2 01 0C 00",
                "6C 1A 90",
                T0Error::TrailingBytes { bytes: bytes("90") },
            ),
            (
                "§10.3.2 INS 6X is invalid",
                "00 6A 00 00 00",
                "",
                T0Error::InvalidIns { ins: 0x6A },
            ),
            (
                "§10.3.2 INS 9X is invalid",
                "00 9F 00 00 00",
                "",
                T0Error::InvalidIns { ins: 0x9F },
            ),
            (
                "TPDU shorter than a header",
                "00 B2 01 0C",
                "",
                T0Error::TpduTooShort { len: 4 },
            ),
            (
                "§10.3.2 P3 must count the data",
                "00 20 00 80 03 12 34",
                "",
                T0Error::TpduLength { p3: 3, data_len: 2 },
            ),
        ];
        for (name, tpdu, card, expected) in rows {
            assert_eq!(host_run(tpdu, card).1, Err(expected), "{name}");
        }
    }

    #[test]
    fn host_keeps_the_response_despite_trailing_bytes() {
        let start = Instant::now();
        let mut host = T0Host::new(WWT);
        host.start(&bytes("00 B2 01 0C 00"), start).unwrap();
        assert!(host.handle_input(&bytes("6C 1A FF"), start).is_err());
        assert_eq!(host.poll_response(), Some(bytes("6C 1A")));
        assert!(host.is_idle());
    }

    /// §10.2: WWT runs from the last character; a NULL restarts it; past it, the
    /// exchange times out naming what was due and what came.
    #[test]
    fn host_work_waiting_time() {
        let start = Instant::now();
        let mut host = T0Host::new(WWT);
        assert_eq!(host.poll_timeout(), None);
        host.start(&bytes("00 B2 01 0C 02"), start).unwrap();
        assert_eq!(host.poll_timeout(), Some(ms(start, 1000)));
        host.handle_input(&[NULL], ms(start, 800)).unwrap();
        assert_eq!(host.poll_timeout(), Some(ms(start, 1800)));
        assert_eq!(host.handle_timeout(ms(start, 1000)), Ok(()), "restarted");
        host.handle_input(&bytes("B2 01"), ms(start, 1700)).unwrap();
        assert_eq!(host.poll_timeout(), Some(ms(start, 2700)));
        assert_eq!(
            host.handle_timeout(ms(start, 2700)),
            Err(T0Error::Timeout {
                waiting_for: "a data byte",
                received: bytes("60 B2 01"),
            })
        );
        assert!(host.is_idle());
        assert_eq!(host.poll_timeout(), None);
        assert_eq!(host.null_bytes(), 1);
    }

    #[test]
    fn host_timeouts_name_what_was_due() {
        let rows: &[(&str, &str, &str)] = &[
            ("", "a procedure byte", ""),
            ("B2 01 02", "a procedure byte", "B2 01 02"),
            ("90", "SW2", "90"),
        ];
        for &(card, waiting_for, received) in rows {
            let start = Instant::now();
            let mut host = T0Host::new(WWT);
            host.start(&bytes("00 B2 01 0C 02"), start).unwrap();
            host.handle_input(&bytes(card), start).unwrap();
            assert_eq!(
                host.handle_timeout(ms(start, 1000)),
                Err(T0Error::Timeout {
                    waiting_for,
                    received: bytes(received)
                }),
                "{card}"
            );
        }
    }

    #[test]
    fn host_one_exchange_at_a_time() {
        let start = Instant::now();
        let mut host = T0Host::new(WWT);
        host.start(&bytes("00 B2 01 0C 02"), start).unwrap();
        assert_eq!(
            host.start(&bytes("00 B2 01 0C 02"), start),
            Err(T0Error::WrongStep {
                call: "start",
                state: "waiting for a procedure byte"
            })
        );
        assert_eq!(
            T0Host::new(WWT).handle_input(&bytes("90 00"), start),
            Err(T0Error::TrailingBytes {
                bytes: bytes("90 00")
            })
        );
    }

    /// §10.3.3: with INS ⊕ FF, command data goes out one byte per acknowledgement.
    #[test]
    fn host_sends_one_byte_per_complement() {
        let start = Instant::now();
        let mut host = T0Host::new(WWT);
        host.start(&bytes("00 20 00 80 03 12 34 56"), start)
            .unwrap();
        assert_eq!(host.poll_transmit(), Some(bytes("00 20 00 80 03")));
        host.handle_input(&[0xDF], start).unwrap();
        assert_eq!(host.poll_transmit(), Some(bytes("12")));
        host.handle_input(&[0x60], start).unwrap();
        assert_eq!(host.poll_transmit(), None);
        host.handle_input(&[0xDF], start).unwrap();
        assert_eq!(host.poll_transmit(), Some(bytes("34")));
        host.handle_input(&[0x20], start).unwrap();
        assert_eq!(host.poll_transmit(), Some(bytes("56")));
        host.handle_input(&bytes("63 C2"), start).unwrap();
        assert_eq!(host.poll_response(), Some(bytes("63 C2")));
    }

    /// §10.3.3 then §10.2: an acknowledgement queues the command data, but a byte that
    /// is no procedure byte in the same read ends the exchange. The data queued (a PIN
    /// block here) is dropped with it, never sent after the error nor ahead of the next
    /// command's header. Found by the `t0_host` fuzz target.
    #[test]
    fn host_drops_queued_data_when_the_exchange_ends() {
        let start = Instant::now();
        let mut host = T0Host::new(WWT);
        host.start(&bytes("00 20 00 80 08 24 12 34 FF FF FF FF FF"), start)
            .unwrap();
        assert_eq!(host.poll_transmit(), Some(bytes("00 20 00 80 08")));
        assert!(matches!(
            host.handle_input(&bytes("20 1F"), start),
            Err(T0Error::ProtocolViolation { byte: 0x1F, .. })
        ));
        assert_eq!(host.poll_transmit(), None, "no PIN byte after the error");
        host.start(&bytes("00 B2 01 0C 00"), start).unwrap();
        assert_eq!(host.poll_transmit(), Some(bytes("00 B2 01 0C 00")));

        // The card answers its status right after the INS, before any data went.
        let mut host = T0Host::new(WWT);
        host.start(&bytes("00 20 00 80 08 24 12 34 FF FF FF FF FF"), start)
            .unwrap();
        host.poll_transmit();
        host.handle_input(&bytes("20 69 85"), start).unwrap();
        assert_eq!(host.poll_response(), Some(bytes("69 85")));
        assert_eq!(host.poll_transmit(), None, "the card has answered: no data");
    }

    // ---- card side ----

    /// Card-side steps: `<hex` host bytes in, `>hex` expected card bytes out,
    /// `E:...` expected event, and answers.
    #[derive(Debug)]
    enum Step {
        In(&'static str),
        Out(&'static str),
        Event(T0CardEvent),
        ReceiveData,
        Respond(&'static str, [u8; 2]),
        Null,
    }

    fn header(hex: &str) -> [u8; 5] {
        <[u8; 5]>::try_from(bytes(hex).as_slice()).unwrap()
    }

    fn card_run(config: T0CardConfig, steps: &[Step]) {
        let start = Instant::now();
        let mut card = T0Card::new(config);
        for (i, step) in steps.iter().enumerate() {
            match step {
                Step::In(hex) => card.handle_input(&bytes(hex), start).unwrap(),
                Step::Out(hex) => {
                    assert_eq!(card.poll_transmit(), Some(bytes(hex)), "step {i}: {step:?}")
                }
                Step::Event(event) => {
                    assert_eq!(card.poll_event().as_ref(), Some(event), "step {i}")
                }
                Step::ReceiveData => card.receive_data(start).unwrap(),
                Step::Respond(data, sw) => card.respond(&bytes(data), *sw, start).unwrap(),
                Step::Null => card.send_null(start).unwrap(),
            }
        }
        assert_eq!(card.poll_transmit(), None);
        assert_eq!(card.poll_event(), None);
        assert!(card.is_idle());
    }

    #[test]
    fn card_outgoing_with_ins() {
        use Step::*;
        card_run(
            T0CardConfig::default(),
            &[
                In("00 B2 01 0C"),
                In("04"),
                Event(T0CardEvent::Header(header("00 B2 01 0C 04"))),
                Respond("01 02 03 04", [0x90, 0x00]),
                Out("B2 01 02 03 04 90 00"),
            ],
        );
    }

    #[test]
    fn card_outgoing_byte_by_byte() {
        use Step::*;
        card_run(
            T0CardConfig {
                ack_each_byte: true,
            },
            &[
                In("00 B2 01 0C 02"),
                Event(T0CardEvent::Header(header("00 B2 01 0C 02"))),
                Null,
                Respond("01 02", [0x90, 0x00]),
                Out("60 4D 01 4D 02 90 00"),
            ],
        );
    }

    #[test]
    fn card_incoming_with_ins() {
        use Step::*;
        card_run(
            T0CardConfig::default(),
            &[
                In("00 20 00 80 02"),
                Event(T0CardEvent::Header(header("00 20 00 80 02"))),
                ReceiveData,
                Out("20"),
                In("12 34"),
                Event(T0CardEvent::Command {
                    header: header("00 20 00 80 02"),
                    data: bytes("12 34"),
                }),
                Null,
                Null,
                Respond("", [0x90, 0x00]),
                Out("60 60 90 00"),
            ],
        );
    }

    #[test]
    fn card_incoming_byte_by_byte() {
        use Step::*;
        card_run(
            T0CardConfig {
                ack_each_byte: true,
            },
            &[
                In("00 20 00 80 03"),
                Event(T0CardEvent::Header(header("00 20 00 80 03"))),
                ReceiveData,
                Out("DF"),
                In("12"),
                Out("DF"),
                In("34"),
                Out("DF"),
                In("56"),
                Event(T0CardEvent::Command {
                    header: header("00 20 00 80 03"),
                    data: bytes("12 34 56"),
                }),
                Respond("", [0x63, 0xC2]),
                Out("63 C2"),
            ],
        );
    }

    #[test]
    fn card_case_1_and_refusal() {
        use Step::*;
        card_run(
            T0CardConfig::default(),
            &[
                // §12.2.2: an incoming INS with P3 = 00 has no data to collect.
                In("80 1E 00 00 00"),
                Event(T0CardEvent::Header(header("80 1E 00 00 00"))),
                ReceiveData,
                Event(T0CardEvent::Command {
                    header: header("80 1E 00 00 00"),
                    data: Vec::new(),
                }),
                Respond("", [0x90, 0x00]),
                Out("90 00"),
                // Refused before its data: SW at once.
                In("00 20 00 80 08"),
                Event(T0CardEvent::Header(header("00 20 00 80 08"))),
                Respond("", [0x69, 0x83]),
                Out("69 83"),
                // Fewer bytes than P3: one complement per byte, then SW.
                In("00 B0 00 00 00"),
                Event(T0CardEvent::Header(header("00 B0 00 00 00"))),
                Respond("AA BB", [0x62, 0x82]),
                Out("4F AA 4F BB 62 82"),
            ],
        );
    }

    /// A header or data cut short is discarded after the idle timeout, and the card
    /// then reads a new header cleanly.
    #[test]
    fn card_discards_after_timeout() {
        let start = Instant::now();
        let idle = Duration::from_millis(300);
        let mut card = T0Card::new(T0CardConfig::default()).with_idle_timeout(idle);
        assert_eq!(card.poll_timeout(), None);
        card.handle_input(&bytes("00 B2 01"), ms(start, 10))
            .unwrap();
        assert_eq!(card.poll_timeout(), Some(ms(start, 310)));
        card.handle_timeout(ms(start, 309)).unwrap();
        assert_eq!(card.poll_event(), None);
        card.handle_timeout(ms(start, 310)).unwrap();
        assert_eq!(
            card.poll_event(),
            Some(T0CardEvent::Discarded {
                bytes: bytes("00 B2 01")
            })
        );
        assert!(card.is_idle());

        card.handle_input(&bytes("00 20 00 80 04"), ms(start, 400))
            .unwrap();
        assert_eq!(
            card.poll_event(),
            Some(T0CardEvent::Header(header("00 20 00 80 04")))
        );
        assert_eq!(
            card.poll_timeout(),
            None,
            "no deadline while the card works"
        );
        card.receive_data(ms(start, 410)).unwrap();
        assert_eq!(card.poll_transmit(), Some(bytes("20")));
        card.handle_input(&bytes("12 34"), ms(start, 420)).unwrap();
        card.handle_timeout(ms(start, 720)).unwrap();
        assert_eq!(
            card.poll_event(),
            Some(T0CardEvent::Discarded {
                bytes: bytes("00 20 00 80 04 12 34")
            })
        );
        card.handle_input(&bytes("00 B2 01 0C 00"), ms(start, 800))
            .unwrap();
        assert_eq!(
            card.poll_event(),
            Some(T0CardEvent::Header(header("00 B2 01 0C 00")))
        );
    }

    /// One row per card-side refusal: the steps before, the call, the error.
    #[test]
    fn card_errors() {
        type Call = fn(&mut T0Card, Instant) -> Result<(), T0Error>;
        let rows: Vec<(&str, &str, bool, Call, T0Error)> = vec![
            (
                "respond with no command",
                "",
                false,
                |card, now| card.respond(&[], [0x90, 0x00], now),
                T0Error::WrongStep {
                    call: "respond",
                    state: "waiting for a command header",
                },
            ),
            (
                "send_null with no command",
                "00 B2",
                false,
                |card, now| card.send_null(now),
                T0Error::WrongStep {
                    call: "send_null",
                    state: "waiting for a command header",
                },
            ),
            (
                "receive_data twice",
                "00 20 00 80 02",
                true,
                |card, now| card.receive_data(now),
                T0Error::WrongStep {
                    call: "receive_data",
                    state: "receiving command data",
                },
            ),
            (
                "§10.3.3 SW1 must be 6X or 9X",
                "00 B2 01 0C 02",
                false,
                |card, now| card.respond(&[], [0x60, 0x00], now),
                T0Error::InvalidStatus {
                    sw1: 0x60,
                    sw2: 0x00,
                },
            ),
            (
                "§10.3.2 more data than P3",
                "00 B2 01 0C 02",
                false,
                |card, now| card.respond(&[1, 2, 3], [0x90, 0x00], now),
                T0Error::ResponseTooLong { len: 3, p3: 2 },
            ),
            (
                "§10.3.2 INS 6X cannot be acknowledged",
                "00 6A 00 00 02",
                false,
                |card, now| card.receive_data(now),
                T0Error::InvalidIns { ins: 0x6A },
            ),
            (
                "host bytes while the card works",
                "00 B2 01 0C 02",
                false,
                |card, now| card.handle_input(&[0xAA], now),
                T0Error::UnexpectedBytes {
                    bytes: vec![0xAA],
                    state: "working on a command header",
                },
            ),
        ];
        for (name, input, receive, call, expected) in rows {
            let start = Instant::now();
            let mut card = T0Card::new(T0CardConfig::default());
            card.handle_input(&bytes(input), start).unwrap();
            if receive {
                card.receive_data(start).unwrap();
            }
            assert_eq!(call(&mut card, start), Err(expected), "{name}");
        }
    }

    #[test]
    fn card_refuses_data_after_an_incoming_command() {
        let start = Instant::now();
        let mut card = T0Card::new(T0CardConfig::default());
        card.handle_input(&bytes("00 A4 04 00 01 AA"), start)
            .unwrap_err();
        let mut card = T0Card::new(T0CardConfig::default());
        card.handle_input(&bytes("00 A4 04 00 01"), start).unwrap();
        card.receive_data(start).unwrap();
        card.handle_input(&bytes("AA"), start).unwrap();
        assert_eq!(
            card.respond(&[1], [0x90, 0x00], start),
            Err(T0Error::DataAfterCommand { len: 1 })
        );
    }

    #[test]
    fn instruction_directions() {
        let rows: &[(u8, u8, Direction)] = &[
            (0x00, 0xA4, Direction::Incoming), // SELECT
            (0x00, 0x20, Direction::Incoming), // VERIFY
            (0x80, 0xA8, Direction::Incoming), // GET PROCESSING OPTIONS
            (0x80, 0xAE, Direction::Incoming), // GENERATE AC
            (0x00, 0x88, Direction::Incoming), // INTERNAL AUTHENTICATE
            (0x00, 0x82, Direction::Incoming), // EXTERNAL AUTHENTICATE
            (0x84, 0x1E, Direction::Incoming), // APPLICATION BLOCK
            (0x84, 0x24, Direction::Incoming), // PIN CHANGE/UNBLOCK
            (0x04, 0xDA, Direction::Incoming), // PUT DATA (issuer script)
            (0x00, 0xB2, Direction::Outgoing), // READ RECORD
            (0x00, 0xB3, Direction::Incoming), // READ RECORD, odd INS
            (0x00, 0xB0, Direction::Outgoing), // READ BINARY
            (0x80, 0xCA, Direction::Outgoing), // GET DATA
            (0x00, 0xC0, Direction::Outgoing), // GET RESPONSE
            (0x00, 0x84, Direction::Outgoing), // GET CHALLENGE
            (0x00, 0xA8, Direction::Outgoing), // A8 is only GPO with a proprietary class
            (0x80, 0x50, Direction::Incoming), // INITIALIZE UPDATE
            (0x00, 0x50, Direction::Outgoing),
            (0x00, 0x12, Direction::Incoming),
            (0x00, 0x7E, Direction::Outgoing), // unknown
        ];
        for &(cla, ins, direction) in rows {
            assert_eq!(
                instruction_direction(cla, ins),
                direction,
                "{cla:02X} {ins:02X}"
            );
        }
    }

    #[test]
    fn event_debug_hides_a_pin() {
        let event = T0CardEvent::Command {
            header: header("00 20 00 80 08"),
            data: bytes("24 12 34 FF FF FF FF FF"),
        };
        let shown = format!("{event:?}");
        assert!(shown.contains("<8 bytes hidden>"), "{shown}");
        assert!(!shown.contains("1234"), "{shown}");
    }

    // ---- host and card wired together ----

    /// Host and card in memory, bytes moved `chunk` at a time, a fake clock advanced
    /// one character time per byte.
    struct Wire<A: FnMut(&[u8]) -> Vec<u8>> {
        host: T0Host,
        card: T0Card,
        adapter: CardApduAdapter,
        application: A,
        now: Instant,
        chunk: usize,
        /// Every TPDU the host started, for the tests to read.
        tpdus: Vec<Vec<u8>>,
    }

    impl<A: FnMut(&[u8]) -> Vec<u8>> Wire<A> {
        fn new(config: T0CardConfig, nulls: u8, chunk: usize, application: A) -> Wire<A> {
            Wire {
                host: T0Host::new(WWT),
                card: T0Card::new(config),
                adapter: CardApduAdapter::new().with_null_bytes(nulls),
                application,
                now: Instant::now(),
                chunk: chunk.max(1),
                tpdus: Vec::new(),
            }
        }

        fn tick(&mut self, bytes: usize) {
            // ~1.25 ms per character at 9600 baud.
            self.now += Duration::from_micros(1250 * bytes as u64);
        }

        /// One TPDU, host to card and back.
        fn exchange(&mut self, tpdu: &[u8]) -> Result<Vec<u8>, T0Error> {
            self.tpdus.push(tpdu.to_vec());
            self.host.start(tpdu, self.now)?;
            for _ in 0..10_000 {
                let mut moved = false;
                if let Some(out) = self.host.poll_transmit() {
                    for piece in out.chunks(self.chunk) {
                        self.tick(piece.len());
                        self.card.handle_input(piece, self.now)?;
                        moved = true;
                    }
                }
                while let Some(event) = self.card.poll_event() {
                    self.adapter.handle_event(
                        &mut self.card,
                        event,
                        &mut self.application,
                        self.now,
                    )?;
                    moved = true;
                }
                if let Some(out) = self.card.poll_transmit() {
                    for piece in out.chunks(self.chunk) {
                        self.tick(piece.len());
                        self.host.handle_input(piece, self.now)?;
                        moved = true;
                    }
                }
                if let Some(response) = self.host.poll_response() {
                    assert!(self.card.is_idle());
                    return Ok(response);
                }
                if !moved {
                    let deadline = self.host.poll_timeout().unwrap_or(self.now);
                    self.host.handle_timeout(deadline)?;
                }
            }
            panic!("the wire did not settle");
        }

        /// An APDU through the transport rules above T=0 (§12.2, ISO 7816-4 §5.3.4):
        /// `61xx` → GET RESPONSE Le = xx, concatenating; `6Cxx` → the same command
        /// with P3 = xx.
        fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, T0Error> {
            let mut tpdu = command_tpdu(apdu)?;
            let mut data = Vec::new();
            for _ in 0..300 {
                let mut response = self.exchange(&tpdu)?;
                let sw = response.split_off(response.len() - 2);
                data.extend_from_slice(&response);
                match sw[..] {
                    [SW1_BYTES_AVAILABLE, xx] => tpdu = vec![0x00, 0xC0, 0x00, 0x00, xx],
                    [SW1_WRONG_LE, xx] => tpdu[4] = xx,
                    _ => {
                        data.extend_from_slice(&sw);
                        return Ok(data);
                    }
                }
            }
            panic!("too many rounds");
        }
    }

    /// The APDUs a scripted application received.
    type Seen = std::rc::Rc<std::cell::RefCell<Vec<Vec<u8>>>>;

    /// One wired case: name, APDU, the application's answers, the APDUs it must see,
    /// the TPDUs on the line, the response.
    type WiredRow<'a> = (
        &'a str,
        &'a str,
        Vec<&'a str>,
        Vec<&'a str>,
        Vec<&'a str>,
        String,
    );

    /// A scripted application: records the APDUs it gets, answers from a list.
    fn scripted(answers: Vec<&str>) -> (impl FnMut(&[u8]) -> Vec<u8>, Seen) {
        let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let log = seen.clone();
        let mut answers: VecDeque<Vec<u8>> = answers.into_iter().map(bytes).collect();
        let application = move |apdu: &[u8]| {
            log.borrow_mut().push(apdu.to_vec());
            answers.pop_front().unwrap_or_else(|| bytes("6F 00"))
        };
        (application, seen)
    }

    /// One row per case of §12.2: the APDU, the application's answers, the APDUs it
    /// must have seen, the TPDUs on the line, the response the transport returns.
    #[test]
    fn wired_cases() {
        let fci =
            "6F 1A 84 07 A0 00 00 00 04 10 10 A5 0F 50 0A 4D 41 53 54 45 52 43 41 52 44 87 01 01";
        let long = "AB ".repeat(256);
        let long_ok = format!("{long} 90 00");
        let fci_ok = format!("{fci} 90 00");
        let longer_ok = format!("{long} CD CD CD 90 00");
        let rows: Vec<WiredRow<'_>> = vec![
            (
                "§12.2.2 case 1",
                "80 1E 00 00",
                vec!["90 00"],
                vec!["80 1E 00 00"],
                vec!["80 1E 00 00 00"],
                "90 00".into(),
            ),
            (
                "§12.2.3 case 2, Le = 256 as P3 = 00",
                "00 B0 00 00 00",
                vec![&long_ok],
                vec!["00 B0 00 00 00"],
                vec!["00 B0 00 00 00"],
                format!("{long} 90 00"),
            ),
            (
                "§12.2.3 case 2, wrong Le: 6Cxx and re-issue",
                "00 B2 01 0C 00",
                vec!["70 03 5A 01 11 90 00", "70 03 5A 01 11 90 00"],
                vec!["00 B2 01 0C 00", "00 B2 01 0C 05"],
                vec!["00 B2 01 0C 00", "00 B2 01 0C 05"],
                "70 03 5A 01 11 90 00".into(),
            ),
            (
                "§12.2.3 case 2, error status only",
                "00 B2 05 0C 00",
                vec!["6A 83"],
                vec!["00 B2 05 0C 00"],
                vec!["00 B2 05 0C 00"],
                "6A 83".into(),
            ),
            (
                "§12.2.4 case 3",
                "00 20 00 80 08 24 12 34 FF FF FF FF FF",
                vec!["90 00"],
                vec!["00 20 00 80 08 24 12 34 FF FF FF FF FF"],
                vec!["00 20 00 80 08 24 12 34 FF FF FF FF FF"],
                "90 00".into(),
            ),
            (
                "§12.2.5 case 4: 61xx and GET RESPONSE",
                "00 A4 04 00 07 A0 00 00 00 04 10 10 00",
                vec![&fci_ok],
                vec!["00 A4 04 00 07 A0 00 00 00 04 10 10"],
                vec!["00 A4 04 00 07 A0 00 00 00 04 10 10", "00 C0 00 00 1C"],
                format!("{fci} 90 00"),
            ),
            (
                "§12.2.5 case 4 over 256 bytes: 61 00, then 61xx for the rest",
                "80 AE 80 00 02 12 34 00",
                vec![&longer_ok],
                vec!["80 AE 80 00 02 12 34"],
                vec!["80 AE 80 00 02 12 34", "00 C0 00 00 00", "00 C0 00 00 03"],
                format!("{long} CD CD CD 90 00"),
            ),
            (
                "§12.2.5 case 4 whose application does 61xx itself",
                "00 A4 04 00 02 3F 00 00",
                vec!["61 04", "01 02 03 04 90 00"],
                vec!["00 A4 04 00 02 3F 00", "00 C0 00 00 04"],
                vec!["00 A4 04 00 02 3F 00", "00 C0 00 00 04"],
                "01 02 03 04 90 00".into(),
            ),
            (
                "§12.2.5 case 4 with a warning kept through GET RESPONSE",
                "00 A4 04 00 02 3F 00 00",
                vec!["01 02 62 83"],
                vec!["00 A4 04 00 02 3F 00"],
                vec!["00 A4 04 00 02 3F 00", "00 C0 00 00 02"],
                "01 02 62 83".into(),
            ),
        ];
        for (name, apdu, answers, seen_expected, tpdus, response) in rows {
            for (config, nulls, chunk) in [
                (T0CardConfig::default(), 0, 64),
                (
                    T0CardConfig {
                        ack_each_byte: true,
                    },
                    3,
                    1,
                ),
            ] {
                let (application, seen) = scripted(answers.clone());
                let mut wire = Wire::new(config, nulls, chunk, application);
                assert_eq!(
                    wire.transmit(&bytes(apdu)),
                    Ok(bytes(&response)),
                    "{name} {config:?}"
                );
                let seen_expected: Vec<Vec<u8>> = seen_expected.iter().map(|s| bytes(s)).collect();
                assert_eq!(*seen.borrow(), seen_expected, "{name}: application saw");
                let tpdus: Vec<Vec<u8>> = tpdus.iter().map(|s| bytes(s)).collect();
                assert_eq!(wire.tpdus, tpdus, "{name}: TPDUs");
            }
        }
    }

    /// GET RESPONSE asking the wrong length gets 6Cxx, fewer gets 61xx for the rest,
    /// and another command drops what was held.
    #[test]
    fn adapter_get_response_lengths() {
        let (application, seen) = scripted(vec!["01 02 03 04 05 90 00", "6D 00"]);
        let mut wire = Wire::new(T0CardConfig::default(), 0, 64, application);
        let rows: &[(&str, &str, &str)] = &[
            ("command with data: 61 05", "00 A4 04 00 01 AA", "61 05"),
            ("asks more than held: 6C 05", "00 C0 00 00 10", "6C 05"),
            ("P1-P2 not 0000: 6A 86", "00 C0 01 00 05", "6A 86"),
            (
                "asks fewer: 2 bytes and 61 03",
                "00 C0 00 00 02",
                "01 02 61 03",
            ),
            ("asks the rest", "00 C0 00 00 03", "03 04 05 90 00"),
        ];
        for &(name, tpdu, response) in rows {
            assert_eq!(wire.exchange(&bytes(tpdu)), Ok(bytes(response)), "{name}");
        }
        assert_eq!(wire.adapter.pending_len(), 0);
        // Nothing held: GET RESPONSE goes to the application.
        assert_eq!(wire.exchange(&bytes("00 C0 00 00 05")), Ok(bytes("6D 00")));
        assert_eq!(seen.borrow().len(), 2);
    }

    #[test]
    fn adapter_drops_held_data_on_another_command() {
        let (application, _) = scripted(vec!["01 02 90 00", "90 00"]);
        let mut wire = Wire::new(T0CardConfig::default(), 0, 64, application);
        assert_eq!(
            wire.exchange(&bytes("00 A4 04 00 01 AA")),
            Ok(bytes("61 02"))
        );
        assert_eq!(wire.adapter.pending_len(), 2);
        assert_eq!(wire.exchange(&bytes("00 B2 01 0C 00")), Ok(bytes("90 00")));
        assert_eq!(wire.adapter.pending_len(), 0);
    }

    /// §10.3.2 invalid INS and a broken application get a status, never silence.
    #[test]
    fn adapter_statuses_of_its_own() {
        let rows: &[(&str, &str, &str)] = &[
            ("INS 6X", "00 65 00 00 00", "6D 00"),
            ("answer shorter than SW1 SW2", "00 B2 01 0C 00", "6F 00"),
            ("SW1 T=0 cannot carry", "00 B2 01 0C 00", "6F 00"),
        ];
        let answers = ["", "90", "01 02 12 34"];
        for (&(name, tpdu, response), answer) in rows.iter().zip(answers) {
            let (application, _) = scripted(vec![answer]);
            let mut card = T0Card::new(T0CardConfig::default());
            let mut adapter = CardApduAdapter::new();
            let mut application = application;
            let now = Instant::now();
            card.handle_input(&bytes(tpdu), now).unwrap();
            let event = card.poll_event().unwrap();
            adapter
                .handle_event(&mut card, event, &mut application, now)
                .unwrap();
            assert_eq!(card.poll_transmit(), Some(bytes(response)), "{name}");
        }
    }

    /// The `t0-slow` simulated card (61xx and 6Cxx itself, NULL bytes, byte-by-byte
    /// acknowledgements) behind T=0 answers exactly as it does APDU by APDU.
    #[test]
    fn wired_sim_card_t0_slow() {
        use card_applet_sim::SmartCard;
        use card_applet_sim::card::{SimCard, SimOptions};
        use card_applet_sim::profile::Profile;

        let new_card = || {
            let profile = Profile::builtin("t0-slow").unwrap();
            let mut card = SimCard::new(profile, SimOptions::seeded(7)).unwrap();
            card.power_on();
            card
        };
        let mut direct = new_card();
        let mut served = new_card();
        let mut wire = Wire::new(
            T0CardConfig {
                ack_each_byte: true,
            },
            3,
            1,
            move |apdu: &[u8]| served.transmit(apdu),
        );
        let apdus = [
            "00 A4 04 00 0E 31 50 41 59 2E 53 59 53 2E 44 44 46 30 31 00",
            "00 B2 01 0C 00",
            "00 A4 04 00 07 A0 00 00 00 42 10 10 00",
            "80 A8 00 00 04 83 02 02 50 00",
            "00 B2 01 0C 00",
            "00 20 00 80 08 24 12 34 FF FF FF FF FF",
            "00 84 00 00 08",
            "00 84 00 00 00",
            "00 A4 04 00 05 FF FF FF FF FF 00",
        ];
        for apdu in apdus {
            let through_t0 = wire.transmit(&bytes(apdu)).unwrap();
            let mut tpdu = command_tpdu(&bytes(apdu)).unwrap();
            // The same transport rules, APDU by APDU, on an identical card.
            let mut expected = Vec::new();
            loop {
                let mut response = direct.transmit(&tpdu);
                let sw = response.split_off(response.len() - 2);
                expected.extend_from_slice(&response);
                match sw[..] {
                    [0x61, xx] => tpdu = vec![0x00, 0xC0, 0x00, 0x00, xx],
                    [0x6C, xx] => tpdu[4] = xx,
                    _ => {
                        expected.extend_from_slice(&sw);
                        break;
                    }
                }
            }
            assert_eq!(through_t0, expected, "{apdu}");
        }
        assert!(wire.host.null_bytes() >= 3);
        // The card's own 61xx (GET RESPONSE) and 6Cxx (re-issue) were exercised.
        assert!(wire.tpdus.iter().any(|tpdu| tpdu[1] == 0xC0));
        assert!(wire.tpdus.contains(&bytes("00 B2 01 0C 31")));
    }

    proptest! {
        /// The wired pair delivers exactly the application's response, whatever its
        /// length, the command case, the acknowledgement style and the chunking.
        #[test]
        fn wired_pair_delivers_the_application_response(
            data in proptest::collection::vec(any::<u8>(), 0..400),
            sw in prop::sample::select(vec![[0x90u8, 0x00], [0x62, 0x82], [0x63, 0xC1], [0x6A, 0x82], [0x91, 0x00]]),
            command in 0usize..4,
            le in any::<u8>(),
            nc in 1usize..40,
            ack_each_byte in any::<bool>(),
            nulls in 0u8..3,
            chunk in 1usize..9,
        ) {
            let answer = [data.as_slice(), &sw].concat();
            let apdu: Vec<u8> = match command {
                0 => vec![0x00, 0xB2, 0x01, 0x0C, le],
                1 => [&[0x00, 0xA4, 0x04, 0x00, nc as u8][..], &vec![0xA0; nc], &[le]].concat(),
                2 => [&[0x80, 0xAE, 0x80, 0x00, nc as u8][..], &vec![0x11; nc]].concat(),
                _ => vec![0x00, 0x0E, 0x00, 0x00],
            };
            let mut wire = Wire::new(
                T0CardConfig { ack_each_byte },
                nulls,
                chunk,
                move |_: &[u8]| answer.clone(),
            );
            let response = wire.transmit(&apdu).unwrap();
            prop_assert_eq!(response, [data.as_slice(), &sw].concat());
        }

        /// No sequence of calls and bytes makes the host panic.
        #[test]
        fn host_never_panics(
            steps in proptest::collection::vec(
                (0u8..4, proptest::collection::vec(any::<u8>(), 0..12), 0u64..1500),
                0..12,
            )
        ) {
            let start = Instant::now();
            let mut host = T0Host::new(WWT);
            let mut now = start;
            for (kind, input, delay) in steps {
                now += Duration::from_millis(delay);
                let _ = match kind {
                    0 => host.start(&input, now),
                    1 => host.handle_timeout(now),
                    _ => host.handle_input(&input, now),
                };
                let _ = (host.poll_transmit(), host.poll_timeout(), host.poll_response());
                let _ = (host.null_bytes(), host.is_idle());
            }
        }

        /// No sequence of calls and bytes makes the card side (or the adapter) panic.
        #[test]
        fn card_never_panics(
            ack_each_byte in any::<bool>(),
            steps in proptest::collection::vec(
                (0u8..7, proptest::collection::vec(any::<u8>(), 0..12), any::<[u8; 2]>(), 0u64..1500),
                0..16,
            )
        ) {
            let start = Instant::now();
            let mut card = T0Card::new(T0CardConfig { ack_each_byte });
            let mut adapter = CardApduAdapter::new().with_null_bytes(1);
            let mut application = |apdu: &[u8]| apdu.to_vec();
            let mut now = start;
            for (kind, input, sw, delay) in steps {
                now += Duration::from_millis(delay);
                let _ = match kind {
                    0 => card.receive_data(now),
                    1 => card.respond(&input, sw, now),
                    2 => card.send_null(now),
                    3 => card.handle_timeout(now),
                    4 => match card.poll_event() {
                        Some(event) => adapter.handle_event(&mut card, event, &mut application, now),
                        None => Ok(()),
                    },
                    _ => card.handle_input(&input, now),
                };
                let _ = (card.poll_transmit(), card.poll_timeout(), card.is_idle());
            }
        }
    }
}
