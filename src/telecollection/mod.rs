//! Telecollection: the bank-card acquirer remits its acknowledged transactions, batch
//! by batch, to the telecollection centre (FR2750275 claim 11; `docs/telecollection.md`).
//!
//! - [`centre`]: the centre's core: verifies a batch ([`crate::acquirer::batch`]),
//!   refuses a malformed one with the line and the reason, accepts a good one once per
//!   (acquirer, batch number) and keeps what it accepted in its own SQLite file.
//! - [`server`]: the centre on a socket (TCP or Unix), one thread per connection, and
//!   the client [`server::remit`]: a batch goes as an 8-byte big-endian length and the
//!   batch's bytes; the answer comes back as one line of JSON.
//! - [`remittance`]: the acquirer's side: cut a batch off when the schedule says it is
//!   due, send every batch the centre has not acknowledged, record the acknowledgement.

pub mod centre;
pub mod remittance;
pub mod server;
