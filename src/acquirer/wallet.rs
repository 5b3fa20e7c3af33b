//! The "Virtual Wallet" acquirer of claim 10: anonymous accounts identified by a P-256
//! public key, credited by reloads and debited by payments the user's key signs, and
//! incremental payment (a provision reserved for a session, its payments verified by
//! the front-end up to it, then settled together). `docs/wallet.md` has the encoding,
//! the rules and the store.
//!
//! - [`encoding`]: the signed payment and its canonical, documented byte encoding;
//! - [`rules`]: the acquirer's decisions, pure functions over an account's state;
//! - [`store`]: the durable store at the edge (SQLite), which applies the rules.
//!
//! Not yet wired into the purchase flow (the front-end's F/G and the payer device's E).

pub mod encoding;
pub mod rules;
pub mod store;

pub use encoding::{AccountKey, SignedWalletPayment, WalletError, WalletPayment};
pub use rules::{
    AccountState, Credit, CreditReference, Decision, Provision, ProvisionState, ProvisionTally,
    Refusal, Reservation, SessionId, Settlement, apply_credit, decide_payment, reserve, settle,
};
pub use store::{Outcome, StoredPayment, WalletOperation, WalletStore, WalletStoreError};
