//! telepay: a smart-card / APDU emulation toolkit that models the mediated telepayment
//! system of patent FR2750275.
//!
//! - [`apdu`]: command and response APDUs (ISO 7816-4 cases 1–4, short and extended)
//!   and status words decoded to their meaning.
//! - [`atr`]: the Answer To Reset (ISO 7816-3 §8).
//! - [`iso7816_3`]: the serial line's protocols as sans-IO engines: ATR reception, PPS,
//!   T=0 and T=1, host side and card side.
//! - [`tlv`]: BER-TLV, the EMV tag dictionary, DOLs and a pretty-printer.
//! - [`reader`]: one reader abstraction for every backend, the transport layer (T=0
//!   GET RESPONSE / re-issue, command chaining) and reader URIs.
//! - [`describe`]: an exchange rendered for people (command name, TLV tree, SW meaning).
//! - [`messages`]: the purchase exchanges A–K of the patent's Fig. 6, one type each.
//! - [`terminal`]: the consultation terminal: client device, payer device and its
//!   bank-card module.
//! - [`frontend`]: the communication front-end: the purchase state machine A–K.
//! - [`provider`]: service servers: the catalogue, quotes, delivery.
//! - [`acquirer`]: the bank-card acquirer: banking rules, the durable journal, cut-off
//!   schedule and remittance batches.
//! - [`telecollection`]: the telecollection centre that receives remitted batches.
//! - [`net`]: the roles' network edge: peer names, a test PKI, mutual TLS and the HTTPS
//!   transport between roles.
//! - [`purchase`]: the embedded runner connecting every role, and the purchase log.
//! - [`emv`]: the terminal side of an EMV card read (application selection, GPO, records).
//! - [`trace`]: recorded dialogues: the `.trace` format, recording, replay, diff, import.
//! - [`serial`]: serial lines: the port edge, and the card side `telepay serial serve`
//!   plays on one.
//! - [`vpcd`]: serves any reader's card to pcscd through vsmartcard's vpcd driver.
//! - [`testing`]: snapshot helpers for tests of card dialogues.
//! - [`cli`]: the `telepay` command line.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod acquirer;
pub mod apdu;
pub mod atr;
mod calendar;
pub mod cli;
pub mod describe;
pub mod emv;
pub mod frontend;
pub mod iso7816_3;
pub mod messages;
pub mod net;
pub mod provider;
pub mod purchase;
pub mod reader;
pub mod serial;
pub mod telecollection;
pub mod terminal;
pub mod testing;
pub mod tlv;
pub mod trace;
pub mod vpcd;
