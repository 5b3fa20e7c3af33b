//! The wallet's accounts as a trait, [`WalletAccounts`], so that the acquirer
//! ([`super::WalletAcquirer`]), the CLI and the service run over either store: the
//! SQLite [`super::WalletStore`] (embedded, the default) or
//! [`super::postgres::PgWalletStore`] (one PostgreSQL database shared by several
//! wallet-acquirer processes). Both give the same answers to the same calls; each
//! method's contract is the SQLite store's method of the same name.

use crate::messages::{Currency, DisputeId, PaymentId, Reversal, Timestamp};

use super::dispute::SignedDispute;
use super::encoding::{AccountKey, SignedWalletPayment};
use super::rules::{AccountState, Credit, Decision, Provision, Reservation, SessionId, Settlement};
use super::store::{
    DisputeRecording, Outcome, RefusedTransaction, StoredDispute, StoredPayment, WalletReversal,
    WalletStore, WalletStoreError,
};

/// The Virtual Wallet's durable accounts: what the acquirer, the CLI and the tests ask
/// of a store. Every change is durable before the method returns; a method that fails
/// changed nothing. Object safe: held as `Box<dyn WalletAccounts>`.
pub trait WalletAccounts: Send + std::fmt::Debug {
    /// The store's file, or its database's address without the password.
    fn name(&self) -> &str;

    /// Opens `key`'s account in `currency`, empty ([`WalletStore::open_account`]).
    fn open_account(
        &mut self,
        key: &AccountKey,
        currency: Currency,
        now: Timestamp,
    ) -> Result<Outcome<AccountState>, WalletStoreError>;

    /// The account of `key`, if it is open ([`WalletStore::account`]).
    fn account(&self, key: &AccountKey) -> Result<Option<AccountState>, WalletStoreError>;

    /// Credits an account once per reference ([`WalletStore::credit`]).
    fn credit(
        &mut self,
        credit: &Credit,
        now: Timestamp,
    ) -> Result<Outcome<AccountState>, WalletStoreError>;

    /// Debits a signed payment ([`WalletStore::pay`]).
    fn pay(
        &mut self,
        signed: &SignedWalletPayment,
        now: Timestamp,
    ) -> Result<Outcome<Decision>, WalletStoreError>;

    /// Reserves a provision for a session ([`WalletStore::reserve`]).
    fn reserve(
        &mut self,
        reservation: &Reservation,
        now: Timestamp,
    ) -> Result<Outcome<(AccountState, Provision)>, WalletStoreError>;

    /// Opens a provision with the session's first payment
    /// ([`WalletStore::reserve_with_payment`]).
    fn reserve_with_payment(
        &mut self,
        signed: &SignedWalletPayment,
        reservation: &Reservation,
        now: Timestamp,
    ) -> Result<Outcome<(AccountState, Provision)>, WalletStoreError>;

    /// The payment that opened `session`'s provision ([`WalletStore::opening`]).
    fn opening(&self, session: &SessionId) -> Result<Option<StoredPayment>, WalletStoreError>;

    /// The provision of `session` ([`WalletStore::provision`]).
    fn provision(&self, session: &SessionId) -> Result<Option<Provision>, WalletStoreError>;

    /// Settles a session ([`WalletStore::settle`]).
    fn settle(
        &mut self,
        session: &SessionId,
        payments: &[SignedWalletPayment],
        now: Timestamp,
    ) -> Result<Outcome<Settlement>, WalletStoreError>;

    /// What the settlement of `session` refused ([`WalletStore::settlement_refusals`]).
    fn settlement_refusals(
        &self,
        session: &SessionId,
    ) -> Result<Vec<(PaymentId, String)>, WalletStoreError>;

    /// Takes the front-end's cancellation of a payment ([`WalletStore::reverse`]).
    fn reverse(
        &mut self,
        reversal: &Reversal,
        now: Timestamp,
    ) -> Result<WalletReversal, WalletStoreError>;

    /// Keeps the negative acknowledgement given to a refused transaction
    /// ([`WalletStore::record_refused_transaction`]).
    fn record_refused_transaction(
        &mut self,
        refused: &RefusedTransaction,
        now: Timestamp,
    ) -> Result<(), WalletStoreError>;

    /// The negative acknowledgement kept for `payment`'s transaction
    /// ([`WalletStore::refused_transaction`]).
    fn refused_transaction(
        &self,
        payment: &PaymentId,
    ) -> Result<Option<RefusedTransaction>, WalletStoreError>;

    /// Whether the front-end reversed `payment` ([`WalletStore::is_reversed`]).
    fn is_reversed(&self, payment: &PaymentId) -> Result<bool, WalletStoreError>;

    /// Every payment debited from `key`'s account ([`WalletStore::payments`]).
    fn payments(&self, key: &AccountKey) -> Result<Vec<StoredPayment>, WalletStoreError>;

    /// Every credit to `key`'s account ([`WalletStore::credits`]).
    fn credits(&self, key: &AccountKey) -> Result<Vec<Credit>, WalletStoreError>;

    /// Records a dispute of a payment for review ([`WalletStore::record_dispute`]).
    fn record_dispute(
        &mut self,
        signed: &SignedDispute,
        now: Timestamp,
    ) -> Result<DisputeRecording, WalletStoreError>;

    /// The dispute recorded under `dispute` ([`WalletStore::dispute`]).
    fn dispute(&self, dispute: &DisputeId) -> Result<Option<StoredDispute>, WalletStoreError>;

    /// Every dispute recorded for `key`'s account ([`WalletStore::disputes`]).
    fn disputes(&self, key: &AccountKey) -> Result<Vec<StoredDispute>, WalletStoreError>;
}

impl WalletAccounts for WalletStore {
    fn name(&self) -> &str {
        WalletStore::path(self)
    }

    fn open_account(
        &mut self,
        key: &AccountKey,
        currency: Currency,
        now: Timestamp,
    ) -> Result<Outcome<AccountState>, WalletStoreError> {
        WalletStore::open_account(self, key, currency, now)
    }

    fn account(&self, key: &AccountKey) -> Result<Option<AccountState>, WalletStoreError> {
        WalletStore::account(self, key)
    }

    fn credit(
        &mut self,
        credit: &Credit,
        now: Timestamp,
    ) -> Result<Outcome<AccountState>, WalletStoreError> {
        WalletStore::credit(self, credit, now)
    }

    fn pay(
        &mut self,
        signed: &SignedWalletPayment,
        now: Timestamp,
    ) -> Result<Outcome<Decision>, WalletStoreError> {
        WalletStore::pay(self, signed, now)
    }

    fn reserve(
        &mut self,
        reservation: &Reservation,
        now: Timestamp,
    ) -> Result<Outcome<(AccountState, Provision)>, WalletStoreError> {
        WalletStore::reserve(self, reservation, now)
    }

    fn reserve_with_payment(
        &mut self,
        signed: &SignedWalletPayment,
        reservation: &Reservation,
        now: Timestamp,
    ) -> Result<Outcome<(AccountState, Provision)>, WalletStoreError> {
        WalletStore::reserve_with_payment(self, signed, reservation, now)
    }

    fn opening(&self, session: &SessionId) -> Result<Option<StoredPayment>, WalletStoreError> {
        WalletStore::opening(self, session)
    }

    fn provision(&self, session: &SessionId) -> Result<Option<Provision>, WalletStoreError> {
        WalletStore::provision(self, session)
    }

    fn settle(
        &mut self,
        session: &SessionId,
        payments: &[SignedWalletPayment],
        now: Timestamp,
    ) -> Result<Outcome<Settlement>, WalletStoreError> {
        WalletStore::settle(self, session, payments, now)
    }

    fn settlement_refusals(
        &self,
        session: &SessionId,
    ) -> Result<Vec<(PaymentId, String)>, WalletStoreError> {
        WalletStore::settlement_refusals(self, session)
    }

    fn reverse(
        &mut self,
        reversal: &Reversal,
        now: Timestamp,
    ) -> Result<WalletReversal, WalletStoreError> {
        WalletStore::reverse(self, reversal, now)
    }

    fn record_refused_transaction(
        &mut self,
        refused: &RefusedTransaction,
        now: Timestamp,
    ) -> Result<(), WalletStoreError> {
        WalletStore::record_refused_transaction(self, refused, now)
    }

    fn refused_transaction(
        &self,
        payment: &PaymentId,
    ) -> Result<Option<RefusedTransaction>, WalletStoreError> {
        WalletStore::refused_transaction(self, payment)
    }

    fn is_reversed(&self, payment: &PaymentId) -> Result<bool, WalletStoreError> {
        WalletStore::is_reversed(self, payment)
    }

    fn payments(&self, key: &AccountKey) -> Result<Vec<StoredPayment>, WalletStoreError> {
        WalletStore::payments(self, key)
    }

    fn credits(&self, key: &AccountKey) -> Result<Vec<Credit>, WalletStoreError> {
        WalletStore::credits(self, key)
    }

    fn record_dispute(
        &mut self,
        signed: &SignedDispute,
        now: Timestamp,
    ) -> Result<DisputeRecording, WalletStoreError> {
        WalletStore::record_dispute(self, signed, now)
    }

    fn dispute(&self, dispute: &DisputeId) -> Result<Option<StoredDispute>, WalletStoreError> {
        WalletStore::dispute(self, dispute)
    }

    fn disputes(&self, key: &AccountKey) -> Result<Vec<StoredDispute>, WalletStoreError> {
        WalletStore::disputes(self, key)
    }
}
