//! The half-duplex block protocol T=1 of ISO/IEC 7816-3 §11 as sans-IO engines: the
//! interface device's side ([`T1Host`]) and the card's side ([`T1Card`]).
//!
//! - [`Block`]: I-, R- and S-blocks, their prologue, information field and LRC or CRC
//!   epilogue (§11.3); [`BlockReceiver`] frames a character stream into blocks.
//! - [`T1Host`]: sends a command APDU of any length (up to 65,544 bytes, extended
//!   lengths) chained in IFSC-sized I-blocks and collects the chained response
//!   (§11.6.2); negotiates IFSD (S(IFS), §11.4.2); grants waiting time extensions
//!   (S(WTX), §11.4.3); recovers from errors and resynchronises (§11.6.3).
//! - [`T1Card`]: the mirror image: receives chained commands, answers chained responses
//!   by IFSD, asks for waiting time extensions, answers S(IFS), S(ABORT), S(RESYNCH).
//!
//! The error handling follows ISO 7816-3 §11.6.3 and EMV Book 1 §9.2.5 ("Error
//! Handling"), whose numbered rules are cited where they are applied:
//! an invalid block (bad EDC or parity, bad length, bad PCB, wrong NAD, a block cut
//! short beyond CWT, characters that frame no block) is answered with an R-block
//! carrying the error and the N(R) expected; a missing answer after BWT likewise; an
//! R-block asking for the last block has it sent again; after
//! [`T1Config::max_retransmissions`] such attempts in a row the interface device sends
//! S(RESYNCH request), and after [`MAX_RESYNCHRONISATIONS`] of them in one exchange it
//! gives up with [`T1Error::ResynchronisationFailed`]: the card must be reset.
//!
//! After an invalid block the engines stay silent until the line has been quiet for
//! CWT before answering, so characters still on their way (a block whose LEN was
//! corrupted, garbage) are swallowed instead of being answered one by one. And since
//! the sender of a block waits for the answer (T=1 is half-duplex), characters that
//! follow a block within the same `handle_input` call make it invalid too: a corrupted
//! LEN can frame a shorter block whose last byte happens to match the LRC, and this is
//! how that is caught.
//!
//! Time is passed in: deadlines are instants the caller learns from `poll_timeout` and
//! acts on with `handle_timeout`; characters handed to `handle_input` count as having
//! arrived in time.

mod block;
mod card;
mod host;
mod link;
#[cfg(test)]
mod tests;

use std::time::Duration;

pub use block::{
    Block, BlockError, BlockReceiver, Edc, MAX_INF_LEN, Pcb, ReceiveError, Supervisory, crc16, lrc,
};
pub use card::{T1Card, T1CardEvent};
pub use host::{T1Event, T1Host};

use super::timing::LineTiming;

/// The information field sizes before any S(IFS) exchange: IFSC when the ATR gives
/// none, and IFSD (ISO 7816-3 §11.4.2).
pub const DEFAULT_IFS: u8 = 32;

/// The longest command APDU: 4 header bytes, extended Lc (3), 65,535 data bytes and
/// extended Le (2) (ISO 7816-4 §5.1, case 4E).
pub const MAX_COMMAND_LEN: usize = 65_544;

/// The longest response APDU: 65,536 data bytes and SW1 SW2 (ISO 7816-4 §5.1).
pub const MAX_RESPONSE_LEN: usize = 65_538;

/// The S(RESYNCH request)s the interface device sends in one exchange before giving
/// up (ISO 7816-3 §11.6.3, rule 6.4; EMV Book 1 §9.2.5).
pub const MAX_RESYNCHRONISATIONS: u8 = 3;

/// The parameters of one T=1 link, the same on both sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct T1Config {
    /// IFSC, the card's information field size: the longest INF the interface device
    /// sends (§11.4.2; TA of the first T=1 group of the ATR, default 32).
    pub ifsc: u8,
    /// IFSD, the interface device's information field size: the longest INF the card
    /// sends. The host accepts I-blocks up to this size from the start; a card engine
    /// sends blocks of this size until S(IFS request) changes it, so a card should
    /// start from [`DEFAULT_IFS`] as §11.4.2 says (see [`T1Config::for_card`]).
    pub ifsd: u8,
    /// The epilogue: LRC or CRC (§11.4.4, TCi b1).
    pub edc: Edc,
    /// The NAD the interface device sends (§11.3.2.1): `00` unless addressing is used.
    /// The card answers with source and destination swapped.
    pub nad: u8,
    /// BWT, the longest wait from the last character of a block to the first of the
    /// answer (§11.4.3).
    pub block_waiting_time: Duration,
    /// CWT, the longest wait between two characters of one block (§11.4.3); also the
    /// quiet time awaited after an invalid block before answering it.
    pub character_waiting_time: Duration,
    /// How many times a block is sent again (or an R-block sent) for one step of an
    /// exchange before resynchronising: 2, i.e. three attempts (§11.6.3, rule 7.4;
    /// EMV Book 1 §9.2.5).
    pub max_retransmissions: u8,
    /// The time one character takes on the line (12 etu with the guard time, §7.2).
    /// BWT counts from the last character of a block; the engines learn only when a
    /// block is queued, so they add its transmission time (its length × this) to the
    /// deadline. Zero when the caller's clock already starts after the last character.
    pub character_time: Duration,
}

impl T1Config {
    /// The interface device's parameters from the card's ATR and the line timing: IFSC,
    /// BWI, CWI and the EDC from [`crate::atr::Atr::t1_parameters`] (their defaults when
    /// the ATR does not offer T=1), IFSD 254 — the largest, which the host then
    /// announces with [`T1Host::request_ifsd`].
    pub fn from_atr(atr: &crate::atr::Atr, timing: &LineTiming) -> T1Config {
        let (ifsc, bwi, cwi, crc) = atr
            .t1_parameters()
            .map_or((DEFAULT_IFS, 4, 13, false), |p| {
                (p.ifsc, p.bwi, p.cwi, p.crc)
            });
        T1Config {
            // §11.4.2: IFSC 00 and FF are reserved; a card announcing one gets the default.
            ifsc: if ifsc == 0 || ifsc == 0xFF {
                DEFAULT_IFS
            } else {
                ifsc
            },
            ifsd: 254,
            edc: if crc { Edc::Crc } else { Edc::Lrc },
            nad: 0,
            block_waiting_time: timing.t1_block_waiting_time(bwi),
            character_waiting_time: timing.t1_character_waiting_time(cwi),
            max_retransmissions: 2,
            character_time: timing.character(),
        }
    }

    /// The same link seen from the card: IFSD back to [`DEFAULT_IFS`], the size the card
    /// must assume until the interface device's S(IFS request) (§11.4.2).
    pub fn for_card(self) -> T1Config {
        T1Config {
            ifsd: DEFAULT_IFS,
            ..self
        }
    }

    /// The NAD the card sends: the interface device's with source (b3–b1) and
    /// destination (b7–b5) addresses swapped (§11.3.2.1).
    pub fn card_nad(&self) -> u8 {
        ((self.nad >> 4) & 0x07) | ((self.nad & 0x07) << 4)
    }
}

impl Default for T1Config {
    /// The defaults of §11.4 on a 9600 baud line (D = 1): IFSC 32, IFSD 254, LRC,
    /// NAD 00, BWI 4, CWI 13, two retransmissions.
    fn default() -> T1Config {
        let timing = LineTiming::from_baud(9600, 1);
        T1Config {
            ifsc: DEFAULT_IFS,
            ifsd: 254,
            edc: Edc::Lrc,
            nad: 0,
            block_waiting_time: timing.t1_block_waiting_time(4),
            character_waiting_time: timing.t1_character_waiting_time(13),
            max_retransmissions: 2,
            character_time: timing.character(),
        }
    }
}

/// Which side of the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The interface device (reader, terminal).
    Host,
    /// The card.
    Card,
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Side::Host => "the interface device",
            Side::Card => "the card",
        })
    }
}

/// What a timed-out wait was for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Waiting {
    /// The first character of the other side's block, for BWT (× a WTX multiplier)
    /// after our block (§11.4.3).
    Block {
        /// How long was waited.
        waited: Duration,
    },
    /// The next character of a block begun, for CWT (§11.4.3).
    Character {
        /// The characters of the block received so far (hex).
        received: String,
    },
}

impl std::fmt::Display for Waiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Waiting::Block { waited } => write!(f, "a block (waited {waited:?}, BWT)"),
            Waiting::Character { received } => {
                write!(f, "the rest of block {received} (CWT)")
            }
        }
    }
}

/// A recoverable fault: what made an engine send an R-block, send a block again or
/// resynchronise (§11.6.3).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Fault {
    /// Nothing, or not a whole block, arrived in time.
    #[error("timed out waiting for {waiting_for}")]
    Timeout {
        /// What was awaited.
        waiting_for: Waiting,
    },
    /// Characters that are not a valid block.
    #[error("invalid block {block}: {reason}")]
    BadBlock {
        /// The characters (hex).
        block: String,
        /// Why they are invalid.
        reason: BlockError,
    },
    /// The driver reported a character received with a parity error (§7.3).
    #[error("parity error on a received character")]
    Parity,
    /// A valid block the rules do not allow at this point of the exchange.
    #[error("unexpected block {block}: expected {expected}")]
    Unexpected {
        /// The block (hex).
        block: String,
        /// What the rules allow here.
        expected: &'static str,
    },
    /// The other side asked for our last block again: an R-block whose N(R) is the N(S)
    /// of our last I-block, or any R-block after our R- or S-block (§11.6.3, rule 7).
    #[error("retransmission requested by {block}")]
    RetransmissionRequested {
        /// The R-block (hex).
        block: String,
    },
}

impl Fault {
    /// The R-block error code reporting this fault (§11.3.2.2): EDC for an EDC or parity
    /// error, "other" for the rest.
    fn receive_error(&self) -> ReceiveError {
        match self {
            Fault::Parity
            | Fault::BadBlock {
                reason: BlockError::EdcMismatch { .. },
                ..
            } => ReceiveError::Edc,
            _ => ReceiveError::Other,
        }
    }
}

/// Errors of the T=1 layer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum T1Error {
    /// Characters that are not a valid block (from [`Block::decode`]).
    #[error("invalid T=1 block {block}: {reason}")]
    BadBlock {
        /// The characters (hex).
        block: String,
        /// Why they are invalid.
        reason: BlockError,
    },
    /// A block with more than 254 bytes of information cannot be encoded (§11.3.2.3).
    #[error("information field of {len} bytes: a block carries at most 254")]
    InformationFieldTooLong {
        /// The length asked for.
        len: usize,
    },
    /// A command APDU outside 4..=65,544 bytes.
    #[error("command APDU of {len} bytes: expected {min}..={max}")]
    CommandLength {
        /// The length given.
        len: usize,
        /// The shortest command (a header).
        min: usize,
        /// The longest (case 4E).
        max: usize,
    },
    /// A response APDU outside 2..=65,538 bytes.
    #[error("response APDU of {len} bytes: expected {min}..={max}")]
    ResponseLength {
        /// The length given.
        len: usize,
        /// The shortest response (SW1 SW2).
        min: usize,
        /// The longest.
        max: usize,
    },
    /// The card's chained response grew beyond [`MAX_RESPONSE_LEN`]; the host aborted the
    /// chain with S(ABORT request).
    #[error("response chain exceeds {max} bytes: aborted")]
    ResponseTooLong {
        /// The longest response accepted.
        max: usize,
    },
    /// An operation started while another is in progress.
    #[error("cannot {operation}: {state}")]
    Busy {
        /// What was asked.
        operation: &'static str,
        /// What the engine is doing.
        state: &'static str,
    },
    /// A card operation that needs a command being processed, with none.
    #[error("cannot {operation}: no command is being processed")]
    NoCommand {
        /// What was asked.
        operation: &'static str,
    },
    /// An IFS outside 1..=254 (§11.4.2).
    #[error("information field size {value}: expected 1..=254 (ISO 7816-3 §11.4.2)")]
    InvalidIfs {
        /// The value given.
        value: u8,
    },
    /// A WTX multiplier of 0.
    #[error("waiting time extension multiplier 0: expected 1..=255")]
    InvalidWtxMultiplier,
    /// The interface device sent [`MAX_RESYNCHRONISATIONS`] S(RESYNCH request)s in one
    /// exchange without getting the exchange through (§11.6.3, rule 6.4): the card must
    /// be reset; the engine refuses further work.
    #[error(
        "T=1 resynchronisation failed after {attempts} S(RESYNCH request)s (last fault: {last}): reset the card"
    )]
    ResynchronisationFailed {
        /// S(RESYNCH request)s sent.
        attempts: u8,
        /// The fault that made the last attempt fail.
        last: Fault,
    },
    /// The exchange was aborted by an S(ABORT request).
    #[error("exchange aborted by {by} with S(ABORT request)")]
    Aborted {
        /// Who sent the S(ABORT request).
        by: Side,
    },
    /// The engine gave up earlier ([`T1Error::ResynchronisationFailed`]); the card
    /// must be reset and a new engine made.
    #[error("the T=1 link is dead after failed resynchronisation: reset the card")]
    Dead,
}

/// `now + after`, or `None` beyond the clock's range (no deadline can be that far).
fn deadline(now: std::time::Instant, after: Duration) -> Option<std::time::Instant> {
    now.checked_add(after)
}

#[cfg(test)]
mod config_tests {
    use super::*;
    use crate::atr::Atr;

    /// §11.4: IFSC from TA3, BWI/CWI from TB3, CRC from TC3 b1; IFSD 254.
    #[test]
    fn from_atr_reads_the_t1_group() {
        let timing = LineTiming::from_baud(9600, 1);
        for (atr, ifsc, bwi, cwi, edc) in [
            // T0 = 80, TD1 = 80, TD2 = 01: T=1 offered without T=1 interface bytes.
            ("3B 80 80 01 01", 32, 4, 13, Edc::Lrc),
            // TD2 = 31: TA3 = FE (IFSC 254), TB3 = 45 (BWI 4, CWI 5).
            ("3B 80 80 31 FE 45 8A", 254, 4, 5, Edc::Lrc),
            // TD2 = 61: TB3 = 13 (BWI 1, CWI 3), TC3 = 01 (CRC).
            ("3B 80 80 61 13 01 73", 32, 1, 3, Edc::Crc),
            // T=0 only: the defaults.
            ("3B 00", 32, 4, 13, Edc::Lrc),
        ] {
            let bytes = hex::decode(atr.replace(' ', "")).unwrap();
            let atr = Atr::parse(&bytes).unwrap();
            let config = T1Config::from_atr(&atr, &timing);
            assert_eq!(config.ifsc, ifsc, "IFSC");
            assert_eq!(config.ifsd, 254);
            assert_eq!(config.edc, edc);
            assert_eq!(config.block_waiting_time, timing.t1_block_waiting_time(bwi));
            assert_eq!(
                config.character_waiting_time,
                timing.t1_character_waiting_time(cwi)
            );
            assert_eq!(config.max_retransmissions, 2);
            assert_eq!(config.for_card().ifsd, DEFAULT_IFS);
        }
    }

    /// §11.3.2.1: the card swaps SAD and DAD.
    #[test]
    fn card_nad_swaps_addresses() {
        for (nad, card) in [(0x00, 0x00), (0x12, 0x21), (0x07, 0x70), (0x35, 0x53)] {
            let config = T1Config {
                nad,
                ..T1Config::default()
            };
            assert_eq!(config.card_nad(), card, "{nad:02X}");
        }
    }
}
