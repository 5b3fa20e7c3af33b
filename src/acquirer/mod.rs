//! Acquirer systems, the patent's (20): each answers a submitted transaction F with a
//! positive or negative acknowledgement G.
//!
//! - [`card`]: "secure telepayment by bank card" (claim 11): the banking rules a bank-card
//!   acquirer applies to a transaction the card signed in-card (issuer, expiry, limits,
//!   the match with the payment request, the ARQC, the transaction counter), as pure
//!   code over values: no clock, no storage. What it must remember between transactions
//!   (each card's last transaction counter) comes in as a value and goes out as one.
//!
//! - [`system`]: the bank-card acquirer as a party of the purchase: the rules over the
//!   durable journal, an acknowledgement recorded before it is sent.
//!
//! - [`store`]: the journal as a trait, [`store::CardJournal`], with two stores: the
//!   SQLite [`journal::Journal`] (embedded, the default) and [`postgres::PgJournal`]
//!   (one PostgreSQL database shared by several acquirer processes).
//!
//! Like every role, an acquirer reads no clock and opens no socket here (DESIGN.md §3,
//! principle 2): the journal that persists decisions and the telecollection batch sit at
//! the edge.

pub mod batch;
pub mod card;
pub mod journal;
pub(crate) mod pg;
pub mod postgres;
pub mod schedule;
pub(crate) mod sqlite;
pub mod store;
pub mod system;
pub mod wallet;
