//! The "Virtual Wallet" acquirer of claim 10: anonymous accounts identified by a P-256
//! public key, credited by reloads and debited by payments the user's key signs, and
//! incremental payment (a provision reserved for a session, its payments verified by
//! the front-end up to it, then settled together). `docs/wallet.md` has the encoding,
//! the rules and the store.
//!
//! - [`encoding`]: the signed payment and its canonical, documented byte encoding;
//! - [`rules`]: the acquirer's decisions, pure functions over an account's state;
//! - [`accounts`]: the store as a trait, [`WalletAccounts`], with two stores:
//! - [`store`]: the durable store at the edge (SQLite, embedded, the default), which
//!   applies the rules, and the operations themselves over either database;
//! - [`postgres`]: the same operations on PostgreSQL, [`postgres::PgWalletStore`]
//!   (one database shared by several wallet-acquirer processes);
//! - `sql`: the transaction both stores run the operations in;
//! - [`system`]: the acquirer as a party of the purchase: F answered with G (a payment
//!   debited, or a provision opened by a session's first payment), settlements,
//!   reversals and disputes.
//!
//! The wallet's key also serves the payer device's service messages (claims 8, 9, 12):
//!
//! - [`identity`]: the statement that identifies the user by the key, which the
//!   front-end checks itself;
//! - [`dispute`]: the statement that disputes a payment, which this acquirer checks and
//!   records for review;
//! - [`statement`]: the encoding rules, the error and the signed form ([`statement::Signed`]) both statements share.

pub mod accounts;
pub mod dispute;
pub mod encoding;
pub mod identity;
pub mod postgres;
pub mod rules;
pub(crate) mod sql;
pub mod statement;
pub mod store;
pub mod system;

pub use self::postgres::PgWalletStore;
pub use accounts::WalletAccounts;
pub use dispute::{DisputeFault, DisputeStatement, SignedDispute};
pub use encoding::{AccountKey, SignedWalletPayment, WalletError, WalletPayment};
pub use identity::{IdentityRefusal, IdentityStatement, SignedIdentity};
pub use rules::{
    AccountState, Credit, CreditReference, Decision, Provision, ProvisionState, ProvisionTally,
    Refusal, Reservation, SessionId, Settlement, apply_credit, decide_payment, open_provision,
    reserve, settle,
};
pub use statement::StatementError;
pub use store::{
    DisputeRecording, DisputeRefusal, Outcome, RefusedTransaction, StoredDispute, StoredPayment,
    WalletOperation, WalletReversal, WalletStore, WalletStoreError,
};
pub use system::{WalletAcquirer, WalletAcquirerError};
