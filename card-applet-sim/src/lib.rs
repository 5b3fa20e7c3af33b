//! A software smart card that behaves like silicon: bytes in, bytes out.
//!
//! `card-applet-sim` knows nothing of telepay. A [`SmartCard`] takes a command APDU as
//! bytes and returns the response bytes (data followed by the status word), exactly as a
//! card's I/O line would; it never panics, whatever it is sent, and answers an ISO 7816-4
//! status word for every fault. Anything can drive it: an in-process test, pcscd through
//! vsmartcard's vpcd, a serial line.
//!
//! - [`crypto`]: the EMV algorithms (Option A master-key derivation, session keys,
//!   ISO 9797-1 MAC algorithm 3, ARQC/ARPC) — the one copy used by the card and by
//!   acquirers.
//! - [`profile`]: cards described by data (TOML profiles under `profiles/`).
//! - [`card`]: [`card::SimCard`], the card itself: file system, PSE/PPSE, the EMV payment
//!   applet, PIN verification and in-card signing.
//! - [`state`]: the persistent counters (ATC, PIN tries, log) written atomically.
//! - [`rng`]: injectable randomness, seedable for byte-exact snapshot tests.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod card;
pub mod crypto;
pub mod profile;
pub mod rng;
pub mod state;

/// How a card is reset (ISO 7816-3 §6.2): a cold reset removes power, a warm reset
/// only pulls RST low. Both end the current session (selected application, verified
/// PIN) but persistent counters survive either.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetKind {
    /// Power removed and reapplied (ISO 7816-3 §6.2.2).
    Cold,
    /// RST asserted while powered (ISO 7816-3 §6.2.3).
    Warm,
}

/// A card as its contacts see it: power, reset, and APDUs in and out.
///
/// Implementations never panic on any input: a malformed command gets an error status
/// word, as real silicon answers.
pub trait SmartCard {
    /// Powers the card and returns its Answer To Reset.
    fn power_on(&mut self) -> Vec<u8>;
    /// Resets the card and returns its Answer To Reset.
    fn reset(&mut self, kind: ResetKind) -> Vec<u8>;
    /// Processes one command APDU and returns the response data followed by SW1 SW2.
    /// The result always holds at least the two status bytes.
    fn transmit(&mut self, command: &[u8]) -> Vec<u8>;
    /// Removes power; the session ends.
    fn power_off(&mut self);
}
