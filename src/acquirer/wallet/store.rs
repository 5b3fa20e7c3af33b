//! The Virtual Wallet's durable store: accounts, credits, payments kept with their
//! signatures (non-repudiation) and provisions, in SQLite (`rusqlite`, bundled).
//!
//! The operations themselves are written once, over a transaction of either database
//! (`wallet::sql::Tx`): this module's free functions are what [`WalletStore`] runs on
//! SQLite and [`super::postgres::PgWalletStore`] on PostgreSQL, so that the same calls
//! give the same rows and answers on both.
//!
//! Each operation that changes the store is one `BEGIN IMMEDIATE` transaction that
//! reads the account, applies the pure rule of [`super::rules`] and writes what it
//! returns; it returns only once the commit is on disk (WAL, `synchronous=FULL`), so an
//! answer is never sent for a change a power cut could undo. A refusal writes nothing.
//! Every change is idempotent by its key: a payment by its account and sequence (the
//! same signed bytes), a credit by its reference, a provision and its settlement by
//! the session, a reversal by the payment it cancels.
//!
//! A provision opened by the session's first payment ([`WalletStore::reserve_with_payment`])
//! keeps that payment's signed bytes beside it (non-repudiation: only the key's holder
//! could have asked for the reservation). A payment the front-end reversed is never
//! debited afterwards, and one already debited is credited back once
//! ([`WalletStore::reverse`]).
//!
//! Disputes of payments (claims 8, 9) are kept too ([`WalletStore::record_dispute`]):
//! the statement as the account's key signed it, once per dispute identifier, under a
//! case number for review. Recording a dispute changes no balance.
//!
//! The tables are all named `wallet_*` and the store never touches SQLite's
//! `user_version`, so it may live in the bank-card journal's file
//! ([`crate::acquirer::journal::Journal`]) through its own connection: both open the
//! file in WAL mode, both write in `IMMEDIATE` transactions that SQLite serialises, and
//! both wait up to 10 s for the other's lock.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use crate::messages::{
    Acknowledgement, Currency, MerchantId, Money, PaymentId, Reversal, Timestamp,
};

use super::encoding::{AccountKey, SignedWalletPayment, WalletPayment};
use super::rules::{
    self, AccountState, Credit, CreditReference, Decision, Provision, ProvisionState, Refusal,
    Reservation, SessionId, Settlement,
};
use super::sql::{At, SqliteTx, Tx, Value, args};

/// The schema this build reads and writes; a store of another version is refused.
pub const WALLET_SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE wallet_schema (
    version INTEGER NOT NULL CHECK (version >= 1)
);
CREATE TABLE wallet_accounts (
    key BLOB PRIMARY KEY CHECK (length(key) = 33),
    currency INTEGER NOT NULL CHECK (currency BETWEEN 0 AND 65535),
    exponent INTEGER NOT NULL CHECK (exponent BETWEEN 0 AND 255),
    -- The balance can never go negative, nor the provisions exceed it, whatever the
    -- code above does.
    balance INTEGER NOT NULL CHECK (balance >= 0),
    reserved INTEGER NOT NULL CHECK (reserved >= 0 AND reserved <= balance),
    last_sequence INTEGER NOT NULL CHECK (last_sequence >= 0),
    opened_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE wallet_credits (
    reference TEXT PRIMARY KEY,
    account BLOB NOT NULL REFERENCES wallet_accounts (key),
    amount INTEGER NOT NULL CHECK (amount > 0),
    recorded_at INTEGER NOT NULL
);
CREATE INDEX wallet_credits_by_account ON wallet_credits (account);
CREATE TABLE wallet_provisions (
    session TEXT PRIMARY KEY,
    account BLOB NOT NULL REFERENCES wallet_accounts (key),
    merchant TEXT NOT NULL,
    amount INTEGER NOT NULL CHECK (amount > 0),
    sequence_floor INTEGER NOT NULL CHECK (sequence_floor >= 0),
    state TEXT NOT NULL CHECK (state = 'open' OR state = 'settled'),
    debited INTEGER CHECK (debited >= 0 AND debited <= amount),
    reserved_at INTEGER NOT NULL,
    settled_at INTEGER,
    CHECK ((state = 'settled') = (debited IS NOT NULL)),
    CHECK ((state = 'settled') = (settled_at IS NOT NULL))
);
-- Every payment debited, with the bytes signed and the signature as received.
CREATE TABLE wallet_payments (
    account BLOB NOT NULL REFERENCES wallet_accounts (key),
    sequence INTEGER NOT NULL CHECK (sequence >= 1),
    payment TEXT NOT NULL,
    amount INTEGER NOT NULL CHECK (amount > 0),
    session TEXT REFERENCES wallet_provisions (session),
    message BLOB NOT NULL,
    signature BLOB NOT NULL CHECK (length(signature) = 64),
    recorded_at INTEGER NOT NULL,
    PRIMARY KEY (account, sequence)
) WITHOUT ROWID;
CREATE INDEX wallet_payments_by_session ON wallet_payments (session) WHERE session IS NOT NULL;
";

/// Tables added to version 1 after its first files were written. They are created on
/// every open, so that such a file gets them; the version stays 1 because nothing in
/// the tables above changes meaning (an older build ignores these, and keeps working
/// on the rest).
const ADDITIONS: &str = "
-- The first payment of a session, which opened its provision: kept as signed, and
-- not debited until the session is settled (it is one of the session's payments).
CREATE TABLE IF NOT EXISTS wallet_openings (
    session TEXT PRIMARY KEY REFERENCES wallet_provisions (session),
    account BLOB NOT NULL REFERENCES wallet_accounts (key),
    sequence INTEGER NOT NULL CHECK (sequence >= 1),
    payment TEXT NOT NULL,
    message BLOB NOT NULL,
    signature BLOB NOT NULL CHECK (length(signature) = 64),
    recorded_at INTEGER NOT NULL,
    -- One signed payment opens one provision.
    UNIQUE (account, sequence)
);
CREATE INDEX IF NOT EXISTS wallet_openings_by_payment ON wallet_openings (payment);
CREATE INDEX IF NOT EXISTS wallet_payments_by_payment ON wallet_payments (payment);
-- The front-end's cancellations, seen or not: a reversed payment is never debited
-- after; `refund` names the credit that gave back one debited before.
CREATE TABLE IF NOT EXISTS wallet_reversals (
    payment TEXT PRIMARY KEY,
    purchase TEXT NOT NULL,
    reason TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    refund TEXT UNIQUE REFERENCES wallet_credits (reference)
);
-- The negative acknowledgements G given to transactions F that the store refused, by
-- payment, with a digest of F: a repeated F gets the same G even once the account
-- has changed (a reload after insufficient funds).
CREATE TABLE IF NOT EXISTS wallet_refused_transactions (
    payment TEXT PRIMARY KEY,
    digest BLOB NOT NULL CHECK (length(digest) = 32),
    acknowledgement TEXT NOT NULL,
    recorded_at INTEGER NOT NULL
);
-- The disputes recorded for review (claims 8, 9), each with its statement as signed,
-- once per dispute identifier; `number` makes the case number. No balance changes.
CREATE TABLE IF NOT EXISTS wallet_disputes (
    number INTEGER PRIMARY KEY AUTOINCREMENT,
    dispute TEXT NOT NULL UNIQUE,
    account BLOB NOT NULL REFERENCES wallet_accounts (key),
    payment TEXT NOT NULL,
    merchant TEXT NOT NULL,
    message BLOB NOT NULL,
    signature BLOB NOT NULL CHECK (length(signature) = 64),
    recorded_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS wallet_disputes_by_account ON wallet_disputes (account);
-- What a settlement refused, so that a repeated settlement answers the same.
CREATE TABLE IF NOT EXISTS wallet_settlement_refusals (
    session TEXT NOT NULL REFERENCES wallet_provisions (session),
    position INTEGER NOT NULL CHECK (position >= 0),
    payment TEXT NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (session, position)
) WITHOUT ROWID;
";

/// A store operation, as errors name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WalletOperation {
    /// Opening the file and checking its schema.
    Open,
    /// Looking something up.
    Read,
    /// Opening an account.
    OpenAccount,
    /// Crediting an account.
    Credit,
    /// Debiting a payment.
    Pay,
    /// Reserving a provision.
    Reserve,
    /// Settling a provision.
    Settle,
    /// Reversing a payment.
    Reverse,
    /// Recording a refused transaction's acknowledgement.
    RecordRefusal,
    /// Recording a dispute.
    RecordDispute,
}

impl std::fmt::Display for WalletOperation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WalletOperation::Open => "open",
            WalletOperation::Read => "read",
            WalletOperation::OpenAccount => "open account",
            WalletOperation::Credit => "credit",
            WalletOperation::Pay => "pay",
            WalletOperation::Reserve => "reserve",
            WalletOperation::Settle => "settle",
            WalletOperation::Reverse => "reverse",
            WalletOperation::RecordRefusal => "record refusal",
            WalletOperation::RecordDispute => "record dispute",
        })
    }
}

/// A store operation that failed. Every variant names the store (its file, or its
/// database's address without the password) and the operation; an operation that
/// failed changed nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalletStoreError {
    /// SQLite failed (file unreadable, not a database, disk full, locked, a CHECK...).
    #[error("wallet {path}: {operation}: {source}")]
    Database {
        /// The store's file.
        path: String,
        /// The operation.
        operation: WalletOperation,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// PostgreSQL failed (the address does not parse, the server cannot be reached or
    /// refused, a CHECK, a serialization failure retried too often...).
    #[error("wallet {path}: {operation}: {source}")]
    Postgres {
        /// The database's address, without its password.
        path: String,
        /// The operation.
        operation: WalletOperation,
        /// The client's error (a server error carries its SQLSTATE).
        #[source]
        source: postgres::Error,
    },
    /// A column read is not of the kind the statement reads: a schema this code does
    /// not write.
    #[error("wallet {path}: {operation}: column {index}: expected {expected}, found {found}")]
    Column {
        /// The store.
        path: String,
        /// The operation.
        operation: WalletOperation,
        /// The column's position in the statement, from 0.
        index: usize,
        /// The kind read.
        expected: &'static str,
        /// The kind found (or the database's type name).
        found: String,
    },
    /// The store was called again from inside one of its own operations, which its one
    /// connection cannot serve: nothing was done.
    #[error("wallet {path}: {operation}: called from inside another operation")]
    Reentered {
        /// The store.
        path: String,
        /// The operation refused.
        operation: WalletOperation,
    },
    /// The PostgreSQL database records a migration this build does not know: a newer
    /// build migrated it.
    #[error(
        "wallet {path}: the database records migration {found}, which this build does not know (its newest is {known}): a newer build migrated it"
    )]
    MigrationVersion {
        /// The database's address, without its password.
        path: String,
        /// The first migration recorded that this build does not know.
        found: i64,
        /// The newest this build knows.
        known: i64,
    },
    /// The file's wallet schema is of another version.
    #[error(
        "wallet {path}: schema version {found} is not supported (this build reads {WALLET_SCHEMA_VERSION})"
    )]
    SchemaVersion {
        /// The store's file.
        path: String,
        /// The version found.
        found: i64,
    },
    /// A stored value is not one this code writes.
    #[error("wallet {path}: {operation}: table {table}, row {row}, column {column}: found {found}")]
    Corrupt {
        /// The store's file.
        path: String,
        /// The operation.
        operation: WalletOperation,
        /// The table.
        table: &'static str,
        /// The row's key.
        row: String,
        /// The column.
        column: &'static str,
        /// What was found (at most 32 characters).
        found: String,
    },
    /// An acknowledgement could not be written as, or read back from, JSON.
    #[error("wallet {path}: {operation}: acknowledgement of payment {payment}: {source}")]
    Json {
        /// The store's file.
        path: String,
        /// The operation.
        operation: WalletOperation,
        /// The payment it answers.
        payment: PaymentId,
        /// serde_json's error.
        #[source]
        source: serde_json::Error,
    },
}

/// A negative acknowledgement G as the store keeps it for a refused transaction F.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedTransaction {
    /// SHA-256 of F as the acquirer serialised it: a repeated F is the same bytes.
    pub digest: [u8; 32],
    /// The acknowledgement given; its payment is the key.
    pub acknowledgement: Acknowledgement,
}

/// What a store operation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<T> {
    /// The change was made and is durable.
    Done(T),
    /// The same request was already made: nothing changed; what it gave then (with
    /// the account as it is now).
    Repeated(T),
    /// Refused by the rules: nothing changed.
    Refused(Refusal),
}

/// A payment as the store keeps it: the bytes signed, read back, and the signature as
/// received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPayment {
    /// The signed payment.
    pub signed: SignedWalletPayment,
    /// The session it was settled in, or none for a direct payment.
    pub session: Option<SessionId>,
    /// When it was debited.
    pub recorded_at: Timestamp,
}

/// What [`WalletStore::reverse`] did. In every case the reversal is kept: the payment
/// is never debited after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalletReversal {
    /// The payment was debited: its amount is credited back to its account.
    Refunded {
        /// The credit made, under the reference `reversal/{payment}`.
        refund: Credit,
        /// The account after it.
        state: AccountState,
    },
    /// An earlier reversal already credited the payment back; nothing changed.
    AlreadyRefunded {
        /// The credit it made.
        refund: Credit,
    },
    /// The payment opened a provision still open: it is not debited, and the
    /// session's settlement will refuse it.
    Withheld {
        /// The session it opened.
        session: SessionId,
    },
    /// The payment was never debited here: nothing to give back.
    NothingDebited,
    /// Several debited payments carry the identifier (a store written before
    /// identifiers were kept unique): none is refunded; [`WalletStore::payments`]
    /// shows them, to be settled by hand.
    Ambiguous {
        /// How many.
        payments: usize,
    },
    /// The refund could not be credited (its reference is taken by another credit, or
    /// the balance would exceed [`rules::MAX_VALUE`]); the reversal is kept all the
    /// same, and a reversal repeated later tries the refund again.
    RefundRefused(Refusal),
}

impl std::fmt::Display for WalletReversal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WalletReversal::Refunded { refund, state } => write!(
                f,
                "{} credited back to account {} (credit {}), balance {}",
                refund.amount,
                refund.account,
                refund.reference,
                Money::new(state.balance, state.currency)
            ),
            WalletReversal::AlreadyRefunded { refund } => write!(
                f,
                "already credited back: {} to account {} (credit {})",
                refund.amount, refund.account, refund.reference
            ),
            WalletReversal::Withheld { session } => write!(
                f,
                "not debited: it opened session {session}, whose settlement will refuse it"
            ),
            WalletReversal::NothingDebited => f.write_str("nothing debited, nothing to reverse"),
            WalletReversal::Ambiguous { payments } => write!(
                f,
                "{payments} debited payments carry the identifier: none refunded"
            ),
            WalletReversal::RefundRefused(refusal) => write!(f, "refund refused: {refusal}"),
        }
    }
}

/// What [`WalletStore::record_dispute`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DisputeRecording {
    /// The dispute is recorded for review under `case`, durably.
    Recorded {
        /// The case number.
        case: String,
    },
    /// The same signed statement was recorded before under `case`: nothing changed.
    Repeated {
        /// The case number given then.
        case: String,
    },
    /// Refused: nothing was recorded.
    Refused(DisputeRefusal),
}

/// Why the store refused a dispute. Its text is what the dispute's outcome says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DisputeRefusal {
    /// The statement's signature does not verify with its account key (checked before
    /// anything is looked up, so that nothing is learnt of an account without its key).
    #[error("{0}")]
    Signature(super::statement::StatementError),
    /// The identifier already names a dispute with another statement.
    #[error("dispute {dispute}: the identifier already names another dispute")]
    IdReused {
        /// The dispute.
        dispute: crate::messages::DisputeId,
    },
    /// The front-end cancelled the payment: it was never debited, or was credited back.
    #[error("payment {payment} was cancelled by the front-end: nothing is owed for it")]
    Reversed {
        /// The payment.
        payment: PaymentId,
    },
    /// No payment under this identifier was debited from the account (unknown, another
    /// account's, or a session payment not settled yet).
    #[error("payment {payment} was not debited from account {account}")]
    NotDebited {
        /// The payment.
        payment: PaymentId,
        /// The account's fingerprint.
        account: String,
    },
    /// The payment was debited from the account, for another merchant.
    #[error("payment {payment} was made to merchant {paid}, not {disputed}")]
    OtherMerchant {
        /// The payment.
        payment: PaymentId,
        /// The merchant it paid.
        paid: MerchantId,
        /// The merchant the statement names.
        disputed: MerchantId,
    },
}

/// A dispute as the store keeps it: the statement as signed and its case number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDispute {
    /// The case number (`WD-000001`…).
    pub case: String,
    /// The statement and its signature, read back from the bytes signed.
    pub signed: super::dispute::SignedDispute,
    /// When it was recorded.
    pub recorded_at: Timestamp,
}

/// The case number of the dispute recorded as row `number`.
fn case_number(number: i64) -> String {
    format!("WD-{number:06}")
}

/// The Virtual Wallet acquirer's store.
pub struct WalletStore {
    connection: Connection,
    path: String,
}

impl std::fmt::Debug for WalletStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WalletStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl WalletStore {
    /// Opens (creating if need be) the store in the SQLite file at `path`, which may
    /// be the bank-card journal's.
    pub fn open(path: impl AsRef<Path>) -> Result<WalletStore, WalletStoreError> {
        let path_text = path.as_ref().display().to_string();
        let at = At {
            path: &path_text,
            operation: WalletOperation::Open,
        };
        let connection = Connection::open(path.as_ref()).map_err(at.db())?;
        WalletStore::set_up(connection, path_text)
    }

    /// A store in memory, gone when dropped: for tests.
    pub fn open_in_memory() -> Result<WalletStore, WalletStoreError> {
        let path = ":memory:".to_owned();
        let at = At {
            path: &path,
            operation: WalletOperation::Open,
        };
        let connection = Connection::open_in_memory().map_err(at.db())?;
        WalletStore::set_up(connection, path)
    }

    fn set_up(mut connection: Connection, path: String) -> Result<WalletStore, WalletStoreError> {
        let at = At {
            path: &path,
            operation: WalletOperation::Open,
        };
        // A debit or a settlement acknowledged survives a power cut (WAL, FULL).
        crate::acquirer::sqlite::make_durable(&connection).map_err(at.db())?;
        let transaction = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(at.db())?;
        let exists: bool = transaction
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE name = 'wallet_schema')",
            )
            .and_then(|mut statement| statement.query_row([], |row| row.get(0)))
            .map_err(at.db())?;
        if exists {
            let found: Option<i64> = transaction
                .prepare_cached("SELECT max(version) FROM wallet_schema")
                .and_then(|mut statement| statement.query_row([], |row| row.get(0)))
                .map_err(at.db())?;
            if found != Some(WALLET_SCHEMA_VERSION) {
                return Err(WalletStoreError::SchemaVersion {
                    path: path.clone(),
                    found: found.unwrap_or(0),
                });
            }
        } else {
            transaction.execute_batch(SCHEMA).map_err(at.db())?;
            transaction
                .execute(
                    "INSERT INTO wallet_schema (version) VALUES (?1)",
                    [WALLET_SCHEMA_VERSION],
                )
                .map_err(at.db())?;
        }
        transaction.execute_batch(ADDITIONS).map_err(at.db())?;
        transaction.commit().map_err(at.db())?;
        Ok(WalletStore { connection, path })
    }

    /// The store's file.
    pub fn path(&self) -> &str {
        &self.path
    }

    fn at(&self, operation: WalletOperation) -> At<'_> {
        At {
            path: &self.path,
            operation,
        }
    }

    /// Runs `body` in one `BEGIN IMMEDIATE` transaction (SQLite's writers take turns),
    /// committed, on disk, when `body` returns a value; rolled back on an error.
    fn write<T>(
        &mut self,
        operation: WalletOperation,
        body: impl FnOnce(&mut dyn Tx, At<'_>) -> Result<T, WalletStoreError>,
    ) -> Result<T, WalletStoreError> {
        let at = At {
            path: &self.path,
            operation,
        };
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(at.db())?;
        let value = body(&mut SqliteTx(&transaction), at)?;
        transaction.commit().map_err(at.db())?;
        Ok(value)
    }

    /// Runs `body` in one read transaction: one snapshot for all it reads.
    fn read<T>(
        &self,
        body: impl FnOnce(&mut dyn Tx, At<'_>) -> Result<T, WalletStoreError>,
    ) -> Result<T, WalletStoreError> {
        let at = self.at(WalletOperation::Read);
        let transaction = self.connection.unchecked_transaction().map_err(at.db())?;
        body(&mut SqliteTx(&transaction), at)
    }

    /// Opens `key`'s account in `currency`, empty. Opening it again in the same
    /// currency is [`Outcome::Repeated`]; in another, refused.
    pub fn open_account(
        &mut self,
        key: &AccountKey,
        currency: Currency,
        now: Timestamp,
    ) -> Result<Outcome<AccountState>, WalletStoreError> {
        self.write(WalletOperation::OpenAccount, |tx, at| {
            open_account(tx, at, key, currency, now)
        })
    }

    /// The account of `key`, if it is open.
    pub fn account(&self, key: &AccountKey) -> Result<Option<AccountState>, WalletStoreError> {
        self.read(|tx, at| load_account(tx, at, key))
    }

    /// Credits an account ([`rules::apply_credit`]), once per reference: the same
    /// credit again is [`Outcome::Repeated`], another credit under a used reference is
    /// refused.
    pub fn credit(
        &mut self,
        credit: &Credit,
        now: Timestamp,
    ) -> Result<Outcome<AccountState>, WalletStoreError> {
        self.write(WalletOperation::Credit, |tx, at| {
            credit_account(tx, at, credit, now)
        })
    }

    /// Debits a signed payment ([`rules::decide_payment`]) and keeps it with its
    /// signature. The same signed payment again (same account, sequence and bytes,
    /// signature checked) is [`Outcome::Repeated`]; another with a used sequence is
    /// refused as stale. Refused as well: a payment the front-end reversed
    /// ([`Refusal::Reversed`], even one already debited: it was refunded), one that
    /// opened a provision ([`Refusal::OpeningReplayed`]: it is settled with its
    /// session), and one whose identifier names another payment kept
    /// ([`Refusal::PaymentIdReused`]).
    pub fn pay(
        &mut self,
        signed: &SignedWalletPayment,
        now: Timestamp,
    ) -> Result<Outcome<Decision>, WalletStoreError> {
        self.write(WalletOperation::Pay, |tx, at| pay(tx, at, signed, now))
    }

    /// Reserves a provision for a session ([`rules::reserve`]). The same reservation
    /// again is [`Outcome::Repeated`] (with the provision as it is now, perhaps
    /// settled); another under a used session is refused.
    pub fn reserve(
        &mut self,
        reservation: &Reservation,
        now: Timestamp,
    ) -> Result<Outcome<(AccountState, Provision)>, WalletStoreError> {
        self.write(WalletOperation::Reserve, |tx, at| {
            reserve(tx, at, reservation, now)
        })
    }

    /// Opens a provision with the session's first payment, signed by the account's key
    /// ([`rules::open_provision`]): the reservation is authenticated by the payment,
    /// which is kept as signed beside the provision and **not** debited (it is the
    /// session's first payment, settled with the others by [`WalletStore::settle`]).
    ///
    /// The same payment and reservation again is [`Outcome::Repeated`] (with the
    /// provision as it is now, perhaps settled), after its signature is checked;
    /// anything else under a used session is [`Refusal::SessionReused`]. Refused as
    /// well: a payment the front-end reversed, one whose sequence already opened a
    /// provision ([`Refusal::OpeningReplayed`]) or was debited (stale), and one whose
    /// identifier names another payment kept.
    pub fn reserve_with_payment(
        &mut self,
        signed: &SignedWalletPayment,
        reservation: &Reservation,
        now: Timestamp,
    ) -> Result<Outcome<(AccountState, Provision)>, WalletStoreError> {
        self.write(WalletOperation::Reserve, |tx, at| {
            reserve_with_payment(tx, at, signed, reservation, now)
        })
    }

    /// The payment that opened `session`'s provision, as signed, if it was opened by
    /// one ([`WalletStore::reserve_with_payment`]).
    pub fn opening(&self, session: &SessionId) -> Result<Option<StoredPayment>, WalletStoreError> {
        self.read(|tx, at| opening(tx, at, session))
    }

    /// The provision of `session`, if one was reserved.
    pub fn provision(&self, session: &SessionId) -> Result<Option<Provision>, WalletStoreError> {
        self.read(|tx, at| load_provision(tx, at, session))
    }

    /// Settles a session ([`rules::settle`]): its admitted payments debited and kept
    /// with their signatures, exactly their sum; the rest of the provision released.
    /// Before the rules, a payment is refused that the front-end reversed
    /// ([`Refusal::Reversed`]), that opened another session
    /// ([`Refusal::OpeningReplayed`]) or whose identifier names another payment
    /// ([`Refusal::PaymentIdReused`]); the refusals come in the payments' order.
    /// An empty list releases the whole provision.
    ///
    /// A session already settled is [`Outcome::Repeated`] whatever `payments` holds,
    /// with the payments settled then; its `refused` is empty, the refusals of the
    /// first settlement being kept as text ([`WalletStore::settlement_refusals`]).
    pub fn settle(
        &mut self,
        session: &SessionId,
        payments: &[SignedWalletPayment],
        now: Timestamp,
    ) -> Result<Outcome<Settlement>, WalletStoreError> {
        self.write(WalletOperation::Settle, |tx, at| {
            settle(tx, at, session, payments, now)
        })
    }

    /// What the settlement of `session` refused, as it said then: each payment's
    /// identifier and the refusal's text, in the payments' order. Empty for a session
    /// not settled, or settled with every payment.
    pub fn settlement_refusals(
        &self,
        session: &SessionId,
    ) -> Result<Vec<(PaymentId, String)>, WalletStoreError> {
        self.read(|tx, at| settlement_refusals(tx, at, session))
    }

    /// Takes the front-end's cancellation of a payment, in one transaction. The
    /// reversal is kept (once per payment), so that the payment is never debited
    /// after it: [`WalletStore::pay`] and [`WalletStore::reserve_with_payment`] refuse
    /// it and [`WalletStore::settle`] leaves it out. Then:
    ///
    /// - a payment already debited (directly or in a settled session) is credited
    ///   back under the reference `reversal/{payment}`, once: a repeated reversal finds
    ///   the refund made ([`WalletReversal::AlreadyRefunded`]);
    /// - the first payment of a provision still open is not debited yet: the
    ///   settlement will refuse it ([`WalletReversal::Withheld`]);
    /// - otherwise nothing was debited ([`WalletReversal::NothingDebited`]), and a
    ///   later transaction for the payment is refused.
    pub fn reverse(
        &mut self,
        reversal: &Reversal,
        now: Timestamp,
    ) -> Result<WalletReversal, WalletStoreError> {
        self.write(WalletOperation::Reverse, |tx, at| {
            reverse(tx, at, reversal, now)
        })
    }

    /// Keeps the negative acknowledgement given to a refused transaction, so that
    /// the transaction repeated gets it again ([`WalletStore::refused_transaction`]).
    /// The first one kept for a payment stands: recording another is a no-op.
    pub fn record_refused_transaction(
        &mut self,
        refused: &RefusedTransaction,
        now: Timestamp,
    ) -> Result<(), WalletStoreError> {
        self.write(WalletOperation::RecordRefusal, |tx, at| {
            record_refused_transaction(tx, at, refused, now)
        })
    }

    /// The negative acknowledgement kept for `payment`'s transaction, if it was
    /// refused ([`WalletStore::record_refused_transaction`]).
    pub fn refused_transaction(
        &self,
        payment: &PaymentId,
    ) -> Result<Option<RefusedTransaction>, WalletStoreError> {
        self.read(|tx, at| refused_transaction(tx, at, payment))
    }

    /// Whether the front-end reversed `payment` ([`WalletStore::reverse`]).
    pub fn is_reversed(&self, payment: &PaymentId) -> Result<bool, WalletStoreError> {
        self.read(|tx, at| is_reversed(tx, at, payment))
    }

    /// Every payment debited from `key`'s account, in sequence order, as signed.
    pub fn payments(&self, key: &AccountKey) -> Result<Vec<StoredPayment>, WalletStoreError> {
        self.read(|tx, at| payments(tx, at, key))
    }

    /// Every credit to `key`'s account, in reference order.
    pub fn credits(&self, key: &AccountKey) -> Result<Vec<Credit>, WalletStoreError> {
        self.read(|tx, at| credits(tx, at, key))
    }

    /// Records a dispute of a payment for review (claims 8, 9), in one transaction,
    /// after checking, in this order: the statement's signature with its account key;
    /// its identifier unused, or used by these very bytes signed (then
    /// [`DisputeRecording::Repeated`], with the case number given then); the payment
    /// not cancelled by the front-end; debited from the statement's account (directly
    /// or in a settled session); and paid to the statement's merchant. No balance
    /// changes: an accepted dispute is a case to review, not a refund.
    ///
    /// # Errors
    /// The store's; then nothing was recorded.
    pub fn record_dispute(
        &mut self,
        signed: &super::dispute::SignedDispute,
        now: Timestamp,
    ) -> Result<DisputeRecording, WalletStoreError> {
        let at = self.at(WalletOperation::RecordDispute);
        // Checked before the transaction: a bad signature reads nothing.
        let message = match dispute_message(at, signed)? {
            Ok(message) => message,
            Err(refused) => return Ok(refused),
        };
        self.write(WalletOperation::RecordDispute, |tx, at| {
            record_dispute(tx, at, signed, &message, now)
        })
    }

    /// The dispute recorded under `dispute`, if one is.
    ///
    /// # Errors
    /// The store's, or a stored statement that does not decode.
    pub fn dispute(
        &self,
        dispute: &crate::messages::DisputeId,
    ) -> Result<Option<StoredDispute>, WalletStoreError> {
        self.read(|tx, at| {
            let mut found = read_disputes(tx, at, "dispute = ?1", Value::from(&dispute.0))?;
            Ok(found.pop())
        })
    }

    /// Every dispute recorded for `key`'s account, in the order recorded.
    ///
    /// # Errors
    /// The store's, or a stored statement that does not decode.
    pub fn disputes(&self, key: &AccountKey) -> Result<Vec<StoredDispute>, WalletStoreError> {
        self.read(|tx, at| {
            read_disputes(
                tx,
                at,
                "account = ?1",
                Value::from(key.to_sec1().as_slice()),
            )
        })
    }
}

// The operations, over a transaction of either database ([`Tx`]): each is the whole
// of one store operation, run by the SQLite store in one `IMMEDIATE` transaction and
// by the PostgreSQL store in one transaction it may run again (so each is a function
// of what it reads, and writes nothing outside the transaction).

/// [`WalletStore::open_account`] in `tx`.
pub(crate) fn open_account(
    tx: &mut dyn Tx,
    at: At<'_>,
    key: &AccountKey,
    currency: Currency,
    now: Timestamp,
) -> Result<Outcome<AccountState>, WalletStoreError> {
    tx.lock_account(at, key)?;
    if let Some(state) = load_account(tx, at, key)? {
        if state.currency == currency {
            return Ok(Outcome::Repeated(state));
        }
        return Ok(Outcome::Refused(Refusal::WrongCurrency {
            request: format!("account {key}"),
            expected: state.currency,
            received: currency,
        }));
    }
    tx.execute(
        at,
        "INSERT INTO wallet_accounts
         (key, currency, exponent, balance, reserved, last_sequence, opened_at)
         VALUES (?1, ?2, ?3, 0, 0, 0, ?4)",
        args![
            key.to_sec1().as_slice(),
            i64::from(currency.numeric),
            i64::from(currency.exponent),
            now.0
        ],
    )?;
    Ok(Outcome::Done(AccountState::new(key.clone(), currency)))
}

/// [`WalletStore::credit`] in `tx`.
pub(crate) fn credit_account(
    tx: &mut dyn Tx,
    at: At<'_>,
    credit: &Credit,
    now: Timestamp,
) -> Result<Outcome<AccountState>, WalletStoreError> {
    tx.lock_account(at, &credit.account)?;
    let Some(state) = load_account(tx, at, &credit.account)? else {
        return Ok(Outcome::Refused(Refusal::UnknownAccount {
            request: format!("credit {}", credit.reference),
            account: credit.account.fingerprint(),
        }));
    };
    let used = tx.query_opt(
        at,
        "SELECT account, amount FROM wallet_credits WHERE reference = ?1",
        args![&credit.reference.0],
    )?;
    if let Some(row) = used {
        let (account, amount) = (row.blob(at, 0)?, row.int(at, 1)?);
        let same = account == credit.account.to_sec1()
            && u64::try_from(amount).ok() == Some(credit.amount.minor)
            && credit.amount.currency == state.currency;
        return Ok(if same {
            Outcome::Repeated(state)
        } else {
            Outcome::Refused(Refusal::CreditReferenceReused {
                reference: credit.reference.clone(),
            })
        });
    }
    let next = match rules::apply_credit(&state, credit) {
        Ok(next) => next,
        Err(refusal) => return Ok(Outcome::Refused(refusal)),
    };
    insert_credit(tx, at, credit, now)?;
    save_account(tx, at, &next)?;
    Ok(Outcome::Done(next))
}

/// [`WalletStore::pay`] in `tx`.
pub(crate) fn pay(
    tx: &mut dyn Tx,
    at: At<'_>,
    signed: &SignedWalletPayment,
    now: Timestamp,
) -> Result<Outcome<Decision>, WalletStoreError> {
    let payment = &signed.payment;
    let request = format!("payment {}", payment.payment);
    let state = match payer_account(tx, at, signed, request)? {
        Ok(state) => state,
        Err(refusal) => return Ok(Outcome::Refused(refusal)),
    };
    if let Some(stored) = stored_message(tx, at, &payment.account, payment.sequence)? {
        // Only the very bytes signed, under a good signature, count as the same
        // payment; anything else with this sequence is a replay, which the rule
        // below refuses. Either way the signature is checked once.
        if payment.encode().ok().as_deref() == Some(stored.as_slice()) {
            return Ok(match signed.verify() {
                Ok(()) => Outcome::Repeated(Decision {
                    state,
                    debited: payment.amount,
                }),
                Err(error) => Outcome::Refused(Refusal::Signature(error)),
            });
        }
    }
    if let Some(refusal) = screen(tx, at, signed, None, &mut Vec::new())? {
        return Ok(Outcome::Refused(refusal));
    }
    let decision = match rules::decide_payment(&state, signed) {
        Ok(decision) => decision,
        Err(refusal) => return Ok(Outcome::Refused(refusal)),
    };
    insert_payment(tx, at, signed, None, now)?;
    save_account(tx, at, &decision.state)?;
    Ok(Outcome::Done(decision))
}

/// What a signed payment is first checked against, under its locks (the payment's,
/// then its account's: the order every operation takes them in): the front-end's
/// cancellation first (once reversed, a payment is never debited again, whatever else
/// is true of it), then the account it is drawn on (unknown: refused, naming
/// `request`).
fn payer_account(
    tx: &mut dyn Tx,
    at: At<'_>,
    signed: &SignedWalletPayment,
    request: String,
) -> Result<Result<AccountState, Refusal>, WalletStoreError> {
    let payment = &signed.payment;
    tx.lock_payments(at, &[&payment.payment])?;
    tx.lock_account(at, &payment.account)?;
    if is_reversed(tx, at, &payment.payment)? {
        return Ok(Err(Refusal::Reversed {
            payment: payment.payment.clone(),
        }));
    }
    Ok(
        load_account(tx, at, &payment.account)?.ok_or_else(|| Refusal::UnknownAccount {
            request,
            account: payment.account.fingerprint(),
        }),
    )
}

/// [`WalletStore::reserve`] in `tx`.
pub(crate) fn reserve(
    tx: &mut dyn Tx,
    at: At<'_>,
    reservation: &Reservation,
    now: Timestamp,
) -> Result<Outcome<(AccountState, Provision)>, WalletStoreError> {
    tx.lock_account(at, &reservation.account)?;
    let Some(state) = load_account(tx, at, &reservation.account)? else {
        return Ok(Outcome::Refused(Refusal::UnknownAccount {
            request: format!("session {}", reservation.session),
            account: reservation.account.fingerprint(),
        }));
    };
    if let Some(provision) = load_provision(tx, at, &reservation.session)? {
        return Ok(if &provision.reservation == reservation {
            Outcome::Repeated((state, provision))
        } else {
            Outcome::Refused(Refusal::SessionReused {
                session: reservation.session.clone(),
            })
        });
    }
    let (next, provision) = match rules::reserve(&state, reservation) {
        Ok(done) => done,
        Err(refusal) => return Ok(Outcome::Refused(refusal)),
    };
    insert_provision(tx, at, &provision, now)?;
    save_account(tx, at, &next)?;
    Ok(Outcome::Done((next, provision)))
}

/// [`WalletStore::reserve_with_payment`] in `tx`.
pub(crate) fn reserve_with_payment(
    tx: &mut dyn Tx,
    at: At<'_>,
    signed: &SignedWalletPayment,
    reservation: &Reservation,
    now: Timestamp,
) -> Result<Outcome<(AccountState, Provision)>, WalletStoreError> {
    let payment = &signed.payment;
    let session = &reservation.session;
    let request = format!("session {session}: payment {}", payment.payment);
    let state = match payer_account(tx, at, signed, request)? {
        Ok(state) => state,
        Err(refusal) => return Ok(Outcome::Refused(refusal)),
    };
    if let Some(provision) = load_provision(tx, at, session)? {
        let opening = opening_message(tx, at, session)?;
        // The same request again: the provision granted may be less than asked
        // (what was available then), never more.
        let granted = &provision.reservation;
        let same = granted.session == reservation.session
            && granted.account == reservation.account
            && granted.merchant == reservation.merchant
            && granted.amount.currency == reservation.amount.currency
            && granted.amount.minor <= reservation.amount.minor
            && opening.is_some()
            && payment.encode().ok() == opening;
        if !same {
            return Ok(Outcome::Refused(Refusal::SessionReused {
                session: session.clone(),
            }));
        }
        return Ok(match signed.verify() {
            Ok(()) => Outcome::Repeated((state, provision)),
            Err(error) => Outcome::Refused(Refusal::Signature(error)),
        });
    }
    if let Some(refusal) = screen(tx, at, signed, None, &mut Vec::new())? {
        return Ok(Outcome::Refused(refusal));
    }
    let (next, provision) = match rules::open_provision(&state, signed, reservation) {
        Ok(opened) => opened,
        Err(refusal) => return Ok(Outcome::Refused(refusal)),
    };
    insert_provision(tx, at, &provision, now)?;
    let table = "wallet_openings";
    let message = payment
        .encode()
        .map_err(|error| at.corrupt(table, &payment.payment, "message", error))?;
    let sequence = at.int(table, "sequence", payment.sequence)?;
    tx.execute(
        at,
        "INSERT INTO wallet_openings
         (session, account, sequence, payment, message, signature, recorded_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        args![
            &session.0,
            payment.account.to_sec1().as_slice(),
            sequence,
            &payment.payment.0,
            message,
            signed.signature.as_slice(),
            now.0
        ],
    )?;
    save_account(tx, at, &next)?;
    Ok(Outcome::Done((next, provision)))
}

/// [`WalletStore::opening`] in `tx`.
pub(crate) fn opening(
    tx: &mut dyn Tx,
    at: At<'_>,
    session: &SessionId,
) -> Result<Option<StoredPayment>, WalletStoreError> {
    let Some(row) = tx.query_opt(
        at,
        "SELECT sequence, message, signature, recorded_at
         FROM wallet_openings WHERE session = ?1",
        args![&session.0],
    )?
    else {
        return Ok(None);
    };
    let sequence = row.int(at, 0)?;
    let signed = read_signed(
        at,
        "wallet_openings",
        &sequence.to_string(),
        &row.blob(at, 1)?,
        &row.blob(at, 2)?,
    )?;
    Ok(Some(StoredPayment {
        signed,
        session: Some(session.clone()),
        recorded_at: Timestamp(row.int(at, 3)?),
    }))
}

/// [`WalletStore::settle`] in `tx`.
pub(crate) fn settle(
    tx: &mut dyn Tx,
    at: At<'_>,
    session: &SessionId,
    payments: &[SignedWalletPayment],
    now: Timestamp,
) -> Result<Outcome<Settlement>, WalletStoreError> {
    let ids: Vec<&PaymentId> = payments
        .iter()
        .map(|signed| &signed.payment.payment)
        .collect();
    tx.lock_payments(at, &ids)?;
    let Some(provision) = load_provision(tx, at, session)? else {
        return Ok(Outcome::Refused(Refusal::UnknownSession {
            session: session.clone(),
        }));
    };
    let key = provision.reservation.account.clone();
    tx.lock_account(at, &key)?;
    // Read again under the account's lock: another settlement of the session may have
    // committed while this one waited for it.
    let provision = load_provision(tx, at, session)?
        .ok_or_else(|| at.corrupt("wallet_provisions", session, "session", "gone"))?;
    let state = load_account(tx, at, &key)?
        .ok_or_else(|| at.corrupt("wallet_provisions", session, "account", key.fingerprint()))?;
    if provision.state == ProvisionState::Settled {
        let settled = session_payments(tx, at, session)?;
        let currency = provision.reservation.amount.currency;
        let mut debited = 0u64;
        for payment in &settled {
            debited = debited.saturating_add(payment.payment.amount.minor);
        }
        let released = provision.reservation.amount.minor.saturating_sub(debited);
        return Ok(Outcome::Repeated(Settlement {
            session: session.clone(),
            state,
            settled,
            refused: Vec::new(),
            debited: Money::new(debited, currency),
            released: Money::new(released, currency),
        }));
    }
    // What no rule of the provision decides: reversed by the front-end, another
    // session's opening, an identifier naming another payment. Those are refused
    // and the rest go to the rules, as if the tally had refused them.
    let mut seen = Vec::new();
    let mut screened = Vec::with_capacity(payments.len());
    for signed in payments {
        screened.push(screen(tx, at, signed, Some(session), &mut seen)?);
    }
    let admissible: Vec<SignedWalletPayment> = payments
        .iter()
        .zip(&screened)
        .filter(|(_, refusal)| refusal.is_none())
        .map(|(signed, _)| signed.clone())
        .collect();
    let mut settlement = match rules::settle(&state, &provision, &admissible) {
        Ok(settlement) => settlement,
        Err(refusal) => return Ok(Outcome::Refused(refusal)),
    };
    // The refusals in the order the payments came: a payment passed to the rules
    // is either the next one settled or the next one they refused.
    let mut by_rules = std::mem::take(&mut settlement.refused).into_iter();
    let mut settled = settlement.settled.iter().peekable();
    let mut refused = Vec::new();
    for (signed, screened) in payments.iter().zip(screened) {
        match screened {
            Some(refusal) => refused.push((signed.payment.payment.clone(), refusal)),
            None if settled.peek() == Some(&signed) => {
                settled.next();
            }
            None => refused.extend(by_rules.next()),
        }
    }
    refused.extend(by_rules);
    settlement.refused = refused;
    for signed in &settlement.settled {
        insert_payment(tx, at, signed, Some(session), now)?;
    }
    for (position, (payment, refusal)) in settlement.refused.iter().enumerate() {
        let position = at.int(
            "wallet_settlement_refusals",
            "position",
            u64::try_from(position).unwrap_or(u64::MAX),
        )?;
        tx.execute(
            at,
            "INSERT INTO wallet_settlement_refusals (session, position, payment, reason)
             VALUES (?1, ?2, ?3, ?4)",
            args![&session.0, position, &payment.0, refusal.to_string()],
        )?;
    }
    let debited = at.int("wallet_provisions", "debited", settlement.debited.minor)?;
    tx.execute(
        at,
        "UPDATE wallet_provisions SET state = 'settled', debited = ?2, settled_at = ?3
         WHERE session = ?1 AND state = 'open'",
        args![&session.0, debited, now.0],
    )?;
    save_account(tx, at, &settlement.state)?;
    Ok(Outcome::Done(settlement))
}

/// [`WalletStore::settlement_refusals`] in `tx`.
pub(crate) fn settlement_refusals(
    tx: &mut dyn Tx,
    at: At<'_>,
    session: &SessionId,
) -> Result<Vec<(PaymentId, String)>, WalletStoreError> {
    tx.query(
        at,
        "SELECT payment, reason FROM wallet_settlement_refusals
         WHERE session = ?1 ORDER BY position",
        args![&session.0],
    )?
    .iter()
    .map(|row| Ok((PaymentId::from(row.text(at, 0)?), row.text(at, 1)?)))
    .collect()
}

/// [`WalletStore::reverse`] in `tx`.
pub(crate) fn reverse(
    tx: &mut dyn Tx,
    at: At<'_>,
    reversal: &Reversal,
    now: Timestamp,
) -> Result<WalletReversal, WalletStoreError> {
    let payment = &reversal.payment;
    tx.lock_payments(at, &[payment])?;
    let known = tx.query_opt(
        at,
        "SELECT refund FROM wallet_reversals WHERE payment = ?1",
        args![&payment.0],
    )?;
    let known = known.map(|row| row.opt_text(at, 0)).transpose()?;
    if let Some(Some(reference)) = known {
        let refund = load_credit(tx, at, &CreditReference::from(reference))?;
        return Ok(WalletReversal::AlreadyRefunded { refund });
    }
    if known.is_none() {
        tx.execute(
            at,
            "INSERT INTO wallet_reversals (payment, purchase, reason, received_at)
             VALUES (?1, ?2, ?3, ?4)",
            args![&payment.0, &reversal.purchase.0, &reversal.reason, now.0],
        )?;
    }
    let debited = tx
        .query(
            at,
            "SELECT account, amount FROM wallet_payments WHERE payment = ?1",
            args![&payment.0],
        )?
        .iter()
        .map(|row| Ok((row.blob(at, 0)?, row.int(at, 1)?)))
        .collect::<Result<Vec<_>, WalletStoreError>>()?;
    Ok(match debited.as_slice() {
        [] => {
            let withheld = tx.query_opt(
                at,
                "SELECT o.session FROM wallet_openings o
                 JOIN wallet_provisions p ON p.session = o.session
                 WHERE o.payment = ?1 AND p.state = 'open'",
                args![&payment.0],
            )?;
            match withheld {
                Some(row) => WalletReversal::Withheld {
                    session: SessionId::from(row.text(at, 0)?),
                },
                None => WalletReversal::NothingDebited,
            }
        }
        [(account, amount)] => refund(tx, at, payment, account, *amount, now)?,
        several => WalletReversal::Ambiguous {
            payments: several.len(),
        },
    })
}

/// [`WalletStore::record_refused_transaction`] in `tx`.
pub(crate) fn record_refused_transaction(
    tx: &mut dyn Tx,
    at: At<'_>,
    refused: &RefusedTransaction,
    now: Timestamp,
) -> Result<(), WalletStoreError> {
    let payment = &refused.acknowledgement.payment;
    let json = serde_json::to_string(&refused.acknowledgement).map_err(|source| {
        WalletStoreError::Json {
            path: at.path.to_owned(),
            operation: at.operation,
            payment: payment.clone(),
            source,
        }
    })?;
    tx.execute(
        at,
        "INSERT INTO wallet_refused_transactions (payment, digest, acknowledgement, recorded_at)
         VALUES (?1, ?2, ?3, ?4) ON CONFLICT (payment) DO NOTHING",
        args![&payment.0, refused.digest.as_slice(), json, now.0],
    )?;
    Ok(())
}

/// [`WalletStore::refused_transaction`] in `tx`.
pub(crate) fn refused_transaction(
    tx: &mut dyn Tx,
    at: At<'_>,
    payment: &PaymentId,
) -> Result<Option<RefusedTransaction>, WalletStoreError> {
    let Some(row) = tx.query_opt(
        at,
        "SELECT digest, acknowledgement FROM wallet_refused_transactions
         WHERE payment = ?1",
        args![&payment.0],
    )?
    else {
        return Ok(None);
    };
    let (digest, json) = (row.blob(at, 0)?, row.text(at, 1)?);
    let table = "wallet_refused_transactions";
    let digest = <[u8; 32]>::try_from(digest.as_slice())
        .map_err(|_| at.corrupt(table, payment, "digest", digest.len()))?;
    let acknowledgement = serde_json::from_str(&json).map_err(|source| WalletStoreError::Json {
        path: at.path.to_owned(),
        operation: at.operation,
        payment: payment.clone(),
        source,
    })?;
    Ok(Some(RefusedTransaction {
        digest,
        acknowledgement,
    }))
}

/// [`WalletStore::payments`] in `tx`.
pub(crate) fn payments(
    tx: &mut dyn Tx,
    at: At<'_>,
    key: &AccountKey,
) -> Result<Vec<StoredPayment>, WalletStoreError> {
    let rows = tx.query(
        at,
        "SELECT sequence, message, signature, session, recorded_at
         FROM wallet_payments WHERE account = ?1 ORDER BY sequence",
        args![key.to_sec1().as_slice()],
    )?;
    let mut payments = Vec::with_capacity(rows.len());
    for row in &rows {
        let sequence = row.int(at, 0)?;
        let signed = read_signed(
            at,
            "wallet_payments",
            &sequence.to_string(),
            &row.blob(at, 1)?,
            &row.blob(at, 2)?,
        )?;
        payments.push(StoredPayment {
            signed,
            session: row.opt_text(at, 3)?.map(SessionId::from),
            recorded_at: Timestamp(row.int(at, 4)?),
        });
    }
    Ok(payments)
}

/// [`WalletStore::credits`] in `tx`.
pub(crate) fn credits(
    tx: &mut dyn Tx,
    at: At<'_>,
    key: &AccountKey,
) -> Result<Vec<Credit>, WalletStoreError> {
    let Some(state) = load_account(tx, at, key)? else {
        return Ok(Vec::new());
    };
    let rows = tx.query(
        at,
        "SELECT reference, amount FROM wallet_credits WHERE account = ?1 ORDER BY reference",
        args![key.to_sec1().as_slice()],
    )?;
    let mut credits = Vec::with_capacity(rows.len());
    for row in &rows {
        let reference = row.text(at, 0)?;
        let amount = at.uint("wallet_credits", &reference, "amount", row.int(at, 1)?)?;
        credits.push(Credit {
            reference: CreditReference::from(reference),
            account: key.clone(),
            amount: Money::new(amount, state.currency),
        });
    }
    Ok(credits)
}

/// The bytes a dispute's statement was signed over, once its signature verifies with
/// its account key; the refusal when it does not (checked before anything is read).
pub(crate) fn dispute_message(
    at: At<'_>,
    signed: &super::dispute::SignedDispute,
) -> Result<Result<Vec<u8>, DisputeRecording>, WalletStoreError> {
    if let Err(error) = signed.verify() {
        return Ok(Err(DisputeRecording::Refused(DisputeRefusal::Signature(
            error,
        ))));
    }
    // It verified over its encoding, so it has one.
    let statement = &signed.statement;
    statement
        .encode()
        .map(Ok)
        .map_err(|error| at.corrupt("wallet_disputes", &statement.dispute, "message", error))
}

/// [`WalletStore::record_dispute`] in `tx`, its statement's signature verified over
/// `message`.
pub(crate) fn record_dispute(
    tx: &mut dyn Tx,
    at: At<'_>,
    signed: &super::dispute::SignedDispute,
    message: &[u8],
    now: Timestamp,
) -> Result<DisputeRecording, WalletStoreError> {
    let statement = &signed.statement;
    tx.lock_payments(at, &[&statement.payment])?;
    let known = tx.query_opt(
        at,
        "SELECT number, message FROM wallet_disputes WHERE dispute = ?1",
        args![&statement.dispute.0],
    )?;
    if let Some(row) = known {
        let (number, kept) = (row.int(at, 0)?, row.blob(at, 1)?);
        return Ok(if kept == message {
            DisputeRecording::Repeated {
                case: case_number(number),
            }
        } else {
            DisputeRecording::Refused(DisputeRefusal::IdReused {
                dispute: statement.dispute.clone(),
            })
        });
    }
    if is_reversed(tx, at, &statement.payment)? {
        return Ok(DisputeRecording::Refused(DisputeRefusal::Reversed {
            payment: statement.payment.clone(),
        }));
    }
    let key = statement.account.to_sec1();
    let debited = tx.query(
        at,
        "SELECT sequence, message FROM wallet_payments
         WHERE payment = ?1 AND account = ?2 ORDER BY sequence",
        args![&statement.payment.0, key.as_slice()],
    )?;
    let mut paid = Vec::with_capacity(debited.len());
    for row in &debited {
        let sequence = row.int(at, 0)?;
        let payment = WalletPayment::decode(&row.blob(at, 1)?)
            .map_err(|error| at.corrupt("wallet_payments", sequence, "message", error))?;
        paid.push(payment.merchant);
    }
    let Some(first) = paid.first() else {
        return Ok(DisputeRecording::Refused(DisputeRefusal::NotDebited {
            payment: statement.payment.clone(),
            account: statement.account.fingerprint(),
        }));
    };
    if !paid.contains(&statement.merchant) {
        return Ok(DisputeRecording::Refused(DisputeRefusal::OtherMerchant {
            payment: statement.payment.clone(),
            paid: first.clone(),
            disputed: statement.merchant.clone(),
        }));
    }
    let row = tx
        .query_opt(
            at,
            "INSERT INTO wallet_disputes
             (dispute, account, payment, merchant, message, signature, recorded_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING number",
            args![
                &statement.dispute.0,
                key.as_slice(),
                &statement.payment.0,
                &statement.merchant.0,
                message,
                signed.signature.as_slice(),
                now.0
            ],
        )?
        .ok_or_else(|| at.corrupt("wallet_disputes", &statement.dispute, "number", "none"))?;
    Ok(DisputeRecording::Recorded {
        case: case_number(row.int(at, 0)?),
    })
}

/// The disputes whose `filter` (a condition on `?1`) holds for `value`, in order.
pub(crate) fn read_disputes(
    tx: &mut dyn Tx,
    at: At<'_>,
    filter: &str,
    value: Value,
) -> Result<Vec<StoredDispute>, WalletStoreError> {
    let table = "wallet_disputes";
    let rows = tx.query(
        at,
        &format!(
            "SELECT number, message, signature, recorded_at FROM wallet_disputes
             WHERE {filter} ORDER BY number"
        ),
        &[value],
    )?;
    let mut disputes = Vec::with_capacity(rows.len());
    for row in &rows {
        let (number, message, signature) = (row.int(at, 0)?, row.blob(at, 1)?, row.blob(at, 2)?);
        let statement = super::dispute::DisputeStatement::decode(&message)
            .map_err(|error| at.corrupt(table, number, "message", error))?;
        let signature = <[u8; 64]>::try_from(signature.as_slice())
            .map_err(|_| at.corrupt(table, number, "signature", signature.len()))?;
        disputes.push(StoredDispute {
            case: case_number(number),
            signed: super::dispute::SignedDispute {
                statement,
                signature,
            },
            recorded_at: Timestamp(row.int(at, 3)?),
        });
    }
    Ok(disputes)
}

/// `key`'s account, if it is open.
pub(crate) fn load_account(
    tx: &mut dyn Tx,
    at: At<'_>,
    key: &AccountKey,
) -> Result<Option<AccountState>, WalletStoreError> {
    let Some(row) = tx.query_opt(
        at,
        "SELECT currency, exponent, balance, reserved, last_sequence
         FROM wallet_accounts WHERE key = ?1",
        args![key.to_sec1().as_slice()],
    )?
    else {
        return Ok(None);
    };
    let (numeric, exponent) = (row.int(at, 0)?, row.int(at, 1)?);
    let name = key.fingerprint();
    let table = "wallet_accounts";
    let numeric =
        u16::try_from(numeric).map_err(|_| at.corrupt(table, &name, "currency", numeric))?;
    let exponent =
        u8::try_from(exponent).map_err(|_| at.corrupt(table, &name, "exponent", exponent))?;
    Ok(Some(AccountState {
        key: key.clone(),
        currency: Currency { numeric, exponent },
        balance: at.uint(table, &name, "balance", row.int(at, 2)?)?,
        reserved: at.uint(table, &name, "reserved", row.int(at, 3)?)?,
        last_sequence: at.uint(table, &name, "last_sequence", row.int(at, 4)?)?,
    }))
}

fn save_account(tx: &mut dyn Tx, at: At<'_>, state: &AccountState) -> Result<(), WalletStoreError> {
    let table = "wallet_accounts";
    let balance = at.int(table, "balance", state.balance)?;
    let reserved = at.int(table, "reserved", state.reserved)?;
    let last = at.int(table, "last_sequence", state.last_sequence)?;
    tx.execute(
        at,
        "UPDATE wallet_accounts SET balance = ?2, reserved = ?3, last_sequence = ?4
         WHERE key = ?1",
        args![state.key.to_sec1().as_slice(), balance, reserved, last],
    )?;
    Ok(())
}

fn stored_message(
    tx: &mut dyn Tx,
    at: At<'_>,
    key: &AccountKey,
    sequence: u64,
) -> Result<Option<Vec<u8>>, WalletStoreError> {
    let Ok(sequence) = i64::try_from(sequence) else {
        return Ok(None);
    };
    tx.query_opt(
        at,
        "SELECT message FROM wallet_payments WHERE account = ?1 AND sequence = ?2",
        args![key.to_sec1().as_slice(), sequence],
    )?
    .map(|row| row.blob(at, 0))
    .transpose()
}

fn insert_payment(
    tx: &mut dyn Tx,
    at: At<'_>,
    signed: &SignedWalletPayment,
    session: Option<&SessionId>,
    now: Timestamp,
) -> Result<(), WalletStoreError> {
    let payment = &signed.payment;
    let table = "wallet_payments";
    // The rules verified the signature over this very encoding.
    let message = payment
        .encode()
        .map_err(|error| at.corrupt(table, &payment.payment, "message", error))?;
    let sequence = at.int(table, "sequence", payment.sequence)?;
    let amount = at.int(table, "amount", payment.amount.minor)?;
    tx.execute(
        at,
        "INSERT INTO wallet_payments
         (account, sequence, payment, amount, session, message, signature, recorded_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        args![
            payment.account.to_sec1().as_slice(),
            sequence,
            &payment.payment.0,
            amount,
            session.map(|session| session.0.as_str()),
            message,
            signed.signature.as_slice(),
            now.0
        ],
    )?;
    Ok(())
}

fn read_signed(
    at: At<'_>,
    table: &'static str,
    row: &str,
    message: &[u8],
    signature: &[u8],
) -> Result<SignedWalletPayment, WalletStoreError> {
    let payment =
        WalletPayment::decode(message).map_err(|error| at.corrupt(table, row, "message", error))?;
    let signature = <[u8; 64]>::try_from(signature)
        .map_err(|_| at.corrupt(table, row, "signature", signature.len()))?;
    Ok(SignedWalletPayment { payment, signature })
}

fn session_payments(
    tx: &mut dyn Tx,
    at: At<'_>,
    session: &SessionId,
) -> Result<Vec<SignedWalletPayment>, WalletStoreError> {
    let rows = tx.query(
        at,
        "SELECT sequence, message, signature FROM wallet_payments
         WHERE session = ?1 ORDER BY sequence",
        args![&session.0],
    )?;
    let mut payments = Vec::with_capacity(rows.len());
    for row in &rows {
        payments.push(read_signed(
            at,
            "wallet_payments",
            &row.int(at, 0)?.to_string(),
            &row.blob(at, 1)?,
            &row.blob(at, 2)?,
        )?);
    }
    Ok(payments)
}

fn insert_provision(
    tx: &mut dyn Tx,
    at: At<'_>,
    provision: &Provision,
    now: Timestamp,
) -> Result<(), WalletStoreError> {
    let reservation = &provision.reservation;
    let table = "wallet_provisions";
    let amount = at.int(table, "amount", reservation.amount.minor)?;
    let floor = at.int(table, "sequence_floor", provision.sequence_floor)?;
    tx.execute(
        at,
        "INSERT INTO wallet_provisions
         (session, account, merchant, amount, sequence_floor, state, reserved_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 'open', ?6)",
        args![
            &reservation.session.0,
            reservation.account.to_sec1().as_slice(),
            &reservation.merchant.0,
            amount,
            floor,
            now.0
        ],
    )?;
    Ok(())
}

fn insert_credit(
    tx: &mut dyn Tx,
    at: At<'_>,
    credit: &Credit,
    now: Timestamp,
) -> Result<(), WalletStoreError> {
    let amount = at.int("wallet_credits", "amount", credit.amount.minor)?;
    tx.execute(
        at,
        "INSERT INTO wallet_credits (reference, account, amount, recorded_at)
         VALUES (?1, ?2, ?3, ?4)",
        args![
            &credit.reference.0,
            credit.account.to_sec1().as_slice(),
            amount,
            now.0
        ],
    )?;
    Ok(())
}

fn load_credit(
    tx: &mut dyn Tx,
    at: At<'_>,
    reference: &CreditReference,
) -> Result<Credit, WalletStoreError> {
    let table = "wallet_credits";
    let row = tx.query_opt(
        at,
        "SELECT account, amount FROM wallet_credits WHERE reference = ?1",
        args![&reference.0],
    )?;
    // The reversals' `refund` references an existing credit (a foreign key).
    let row = row.ok_or_else(|| at.corrupt(table, reference, "reference", "none"))?;
    let (account, amount) = (row.blob(at, 0)?, row.int(at, 1)?);
    let key = AccountKey::from_sec1(&account)
        .map_err(|_| at.corrupt(table, reference, "account", hex::encode_upper(&account)))?;
    let state = load_account(tx, at, &key)?
        .ok_or_else(|| at.corrupt(table, reference, "account", key.fingerprint()))?;
    let amount = at.uint(table, &reference.0, "amount", amount)?;
    Ok(Credit {
        reference: reference.clone(),
        account: key,
        amount: Money::new(amount, state.currency),
    })
}

/// Credits a debited payment back, for its reversal: a credit under
/// `reversal/{payment}` ([`rules::apply_credit`]), recorded on the reversal.
fn refund(
    tx: &mut dyn Tx,
    at: At<'_>,
    payment: &PaymentId,
    account: &[u8],
    amount: i64,
    now: Timestamp,
) -> Result<WalletReversal, WalletStoreError> {
    let table = "wallet_payments";
    let key = AccountKey::from_sec1(account)
        .map_err(|_| at.corrupt(table, payment, "account", hex::encode_upper(account)))?;
    // After the payment's lock, as every debit takes them.
    tx.lock_account(at, &key)?;
    let state = load_account(tx, at, &key)?
        .ok_or_else(|| at.corrupt(table, payment, "account", key.fingerprint()))?;
    let credit = Credit {
        reference: CreditReference::from(format!("reversal/{payment}")),
        account: key,
        amount: Money::new(
            at.uint(table, &payment.0, "amount", amount)?,
            state.currency,
        ),
    };
    let taken = tx.exists(
        at,
        "SELECT EXISTS (SELECT 1 FROM wallet_credits WHERE reference = ?1)",
        args![&credit.reference.0],
    )?;
    if taken {
        return Ok(WalletReversal::RefundRefused(
            Refusal::CreditReferenceReused {
                reference: credit.reference,
            },
        ));
    }
    let next = match rules::apply_credit(&state, &credit) {
        Ok(next) => next,
        Err(refusal) => return Ok(WalletReversal::RefundRefused(refusal)),
    };
    insert_credit(tx, at, &credit, now)?;
    save_account(tx, at, &next)?;
    tx.execute(
        at,
        "UPDATE wallet_reversals SET refund = ?2 WHERE payment = ?1",
        args![&payment.0, &credit.reference.0],
    )?;
    Ok(WalletReversal::Refunded {
        refund: credit,
        state: next,
    })
}

/// Whether the front-end reversed `payment`.
pub(crate) fn is_reversed(
    tx: &mut dyn Tx,
    at: At<'_>,
    payment: &PaymentId,
) -> Result<bool, WalletStoreError> {
    tx.exists(
        at,
        "SELECT EXISTS (SELECT 1 FROM wallet_reversals WHERE payment = ?1)",
        args![&payment.0],
    )
}

/// The bytes of the payment that opened `session`'s provision, if one did.
fn opening_message(
    tx: &mut dyn Tx,
    at: At<'_>,
    session: &SessionId,
) -> Result<Option<Vec<u8>>, WalletStoreError> {
    tx.query_opt(
        at,
        "SELECT message FROM wallet_openings WHERE session = ?1",
        args![&session.0],
    )?
    .map(|row| row.blob(at, 0))
    .transpose()
}

/// A payment seen earlier in the same request: its identifier, account and sequence.
type Seen = (PaymentId, [u8; super::encoding::ACCOUNT_KEY_LEN], u64);

/// Why `signed` may be neither debited nor open a provision, whatever the rules say:
/// the front-end reversed it; its account and sequence opened a provision (other than
/// `session`'s, when it is settled with that session); its identifier names another
/// payment kept, or another one in the same request (`seen`, to which it is added).
/// As in the rules, a bad signature is reported before any of the last two, which
/// would tell something of the account.
fn screen(
    tx: &mut dyn Tx,
    at: At<'_>,
    signed: &SignedWalletPayment,
    session: Option<&SessionId>,
    seen: &mut Vec<Seen>,
) -> Result<Option<Refusal>, WalletStoreError> {
    let payment = &signed.payment;
    let id = &payment.payment;
    if is_reversed(tx, at, id)? {
        return Ok(Some(Refusal::Reversed {
            payment: id.clone(),
        }));
    }
    let key = payment.account.to_sec1();
    // No row holds a sequence beyond i64: -1 then matches nothing.
    let sequence = i64::try_from(payment.sequence).unwrap_or(-1);
    let opened = tx
        .query_opt(
            at,
            "SELECT session FROM wallet_openings WHERE account = ?1 AND sequence = ?2",
            args![key.as_slice(), sequence],
        )?
        .map(|row| row.text(at, 0))
        .transpose()?;
    let conflict = match opened.map(SessionId::from) {
        Some(opened) if Some(&opened) != session => Some(Refusal::OpeningReplayed {
            payment: id.clone(),
            sequence: payment.sequence,
            session: opened,
        }),
        _ => {
            // Provisions settle from their own floor, so that one settled before
            // another of the account does not make the other's payments stale; a
            // sequence debited once is what keeps a payment from being paid twice.
            let used = tx.exists(
                at,
                "SELECT EXISTS (SELECT 1 FROM wallet_payments
                                WHERE account = ?1 AND sequence = ?2)",
                args![key.as_slice(), sequence],
            )?;
            let in_request = seen.iter().any(|(other, other_key, other_sequence)| {
                other == id && (*other_key != key || *other_sequence != payment.sequence)
            });
            if used && session.is_some() {
                seen.push((id.clone(), key, payment.sequence));
                return Ok(Some(match signed.verify() {
                    Ok(()) => Refusal::SequenceUsed {
                        payment: id.clone(),
                        sequence: payment.sequence,
                    },
                    Err(error) => Refusal::Signature(error),
                }));
            }
            let kept = tx.exists(
                at,
                "SELECT EXISTS (SELECT 1 FROM wallet_payments
                                WHERE payment = ?1 AND NOT (account = ?2 AND sequence = ?3))
                     OR EXISTS (SELECT 1 FROM wallet_openings
                                WHERE payment = ?1 AND NOT (account = ?2 AND sequence = ?3))",
                args![&id.0, key.as_slice(), sequence],
            )?;
            (in_request || kept).then(|| Refusal::PaymentIdReused {
                payment: id.clone(),
            })
        }
    };
    seen.push((id.clone(), key, payment.sequence));
    Ok(conflict.map(|refusal| match signed.verify() {
        Ok(()) => refusal,
        Err(error) => Refusal::Signature(error),
    }))
}

/// `session`'s provision, if one was reserved.
pub(crate) fn load_provision(
    tx: &mut dyn Tx,
    at: At<'_>,
    session: &SessionId,
) -> Result<Option<Provision>, WalletStoreError> {
    let Some(row) = tx.query_opt(
        at,
        "SELECT account, merchant, amount, sequence_floor, state
         FROM wallet_provisions WHERE session = ?1",
        args![&session.0],
    )?
    else {
        return Ok(None);
    };
    let account = row.blob(at, 0)?;
    let merchant = row.text(at, 1)?;
    let (amount, floor) = (row.int(at, 2)?, row.int(at, 3)?);
    let state = row.text(at, 4)?;
    let table = "wallet_provisions";
    let key = AccountKey::from_sec1(&account)
        .map_err(|_| at.corrupt(table, session, "account", hex::encode_upper(&account)))?;
    let currency = load_account(tx, at, &key)?
        .ok_or_else(|| at.corrupt(table, session, "account", key.fingerprint()))?
        .currency;
    let state = match state.as_str() {
        "open" => ProvisionState::Open,
        "settled" => ProvisionState::Settled,
        other => return Err(at.corrupt(table, session, "state", other)),
    };
    Ok(Some(Provision {
        reservation: Reservation {
            session: session.clone(),
            account: key,
            merchant: MerchantId::from(merchant),
            amount: Money::new(at.uint(table, &session.0, "amount", amount)?, currency),
        },
        sequence_floor: at.uint(table, &session.0, "sequence_floor", floor)?,
        state,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::PaymentId;
    use p256::ecdsa::SigningKey;
    use p256::ecdsa::signature::Signer;

    const NOW: Timestamp = Timestamp(1_795_651_200_000);

    fn signer() -> SigningKey {
        SigningKey::from_slice(&[9; 32]).unwrap()
    }

    fn key() -> AccountKey {
        AccountKey::new(signer().verifying_key())
    }

    #[test]
    fn the_balance_cannot_go_negative_even_past_the_rules() {
        let mut store = WalletStore::open_in_memory().unwrap();
        store.open_account(&key(), Currency::EUR, NOW).unwrap();
        let at = store.at(WalletOperation::Pay);
        let transaction = store.connection.unchecked_transaction().unwrap();
        let mut state = load_account(&mut SqliteTx(&transaction), at, &key())
            .unwrap()
            .unwrap();
        state.reserved = 1;
        let error = save_account(&mut SqliteTx(&transaction), at, &state)
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("wallet :memory:: pay: CHECK constraint failed"),
            "{error}"
        );
        let negative =
            transaction.execute("UPDATE wallet_accounts SET balance = -1, reserved = 0", []);
        assert!(
            negative
                .unwrap_err()
                .to_string()
                .contains("CHECK constraint failed")
        );
    }

    #[test]
    fn a_repeated_payment_is_the_same_bytes_not_the_same_sequence() {
        let mut store = WalletStore::open_in_memory().unwrap();
        store.open_account(&key(), Currency::EUR, NOW).unwrap();
        let credit = Credit {
            reference: CreditReference::from("R-1"),
            account: key(),
            amount: Money::new(500, Currency::EUR),
        };
        store.credit(&credit, NOW).unwrap();
        let sign = |payment: &str, minor| {
            let payment = WalletPayment {
                account: key(),
                merchant: MerchantId::from("FE-1"),
                service: crate::messages::ServiceId::from("news"),
                payment: PaymentId::from(payment),
                amount: Money::new(minor, Currency::EUR),
                sequence: 1,
                time: NOW,
            };
            SignedWalletPayment::sign(payment, |m| signer().sign(m)).unwrap()
        };
        let first = sign("P-1", 100);
        let Outcome::Done(decision) = store.pay(&first, NOW).unwrap() else {
            panic!("not debited");
        };
        assert_eq!(decision.state.balance, 400);
        assert_eq!(
            store.pay(&first, NOW).unwrap(),
            Outcome::Repeated(decision.clone())
        );
        assert_eq!(
            store.pay(&sign("P-2", 100), NOW).unwrap(),
            Outcome::Refused(Refusal::StaleSequence {
                payment: PaymentId::from("P-2"),
                sequence: 1,
                last: 1
            })
        );
        assert_eq!(store.account(&key()).unwrap(), Some(decision.state));
    }
    #[test]
    fn a_dispute_is_recorded_once_for_a_payment_debited_from_its_account_to_its_merchant() {
        use crate::acquirer::wallet::dispute::{DisputeStatement, SignedDispute};
        use crate::messages::DisputeId;
        let mut store = WalletStore::open_in_memory().unwrap();
        store.open_account(&key(), Currency::EUR, NOW).unwrap();
        let credit = Credit {
            reference: CreditReference::from("R-1"),
            account: key(),
            amount: Money::new(500, Currency::EUR),
        };
        store.credit(&credit, NOW).unwrap();
        let pay = |payment: &str, sequence| {
            let payment = WalletPayment {
                account: key(),
                merchant: MerchantId::from("FE-1"),
                service: crate::messages::ServiceId::from("news"),
                payment: PaymentId::from(payment),
                amount: Money::new(100, Currency::EUR),
                sequence,
                time: NOW,
            };
            SignedWalletPayment::sign(payment, |m| signer().sign(m)).unwrap()
        };
        assert!(matches!(
            store.pay(&pay("P-1", 1), NOW),
            Ok(Outcome::Done(_))
        ));
        assert!(matches!(
            store.pay(&pay("P-2", 2), NOW),
            Ok(Outcome::Done(_))
        ));
        let reversal = Reversal {
            acquirer: "wallet".into(),
            purchase: "P".into(),
            payment: PaymentId::from("P-2"),
            reason: "not delivered".into(),
        };
        store.reverse(&reversal, NOW).unwrap();
        let opening = Reservation {
            session: SessionId::from("S-1"),
            account: key(),
            merchant: MerchantId::from("FE-1"),
            amount: Money::new(200, Currency::EUR),
        };
        let opened = store.reserve_with_payment(&pay("P-3", 3), &opening, NOW);
        assert!(matches!(opened, Ok(Outcome::Done(_))), "{opened:?}");
        let balance = store.account(&key()).unwrap().unwrap().balance;

        let dispute = |id: &str, payment: &str, merchant: &str| {
            let statement = DisputeStatement {
                dispute: DisputeId::from(id),
                account: key(),
                merchant: MerchantId::from(merchant),
                payment: PaymentId::from(payment),
                reason: "not delivered".into(),
                time: NOW,
            };
            SignedDispute::sign(statement, |m| signer().sign(m)).unwrap()
        };
        let recorded = |case: &str| DisputeRecording::Recorded { case: case.into() };
        let cases = [
            (
                "debited, to its merchant",
                dispute("D-1", "P-1", "FE-1"),
                recorded("WD-000001"),
            ),
            (
                "the same again",
                dispute("D-1", "P-1", "FE-1"),
                DisputeRecording::Repeated {
                    case: "WD-000001".into(),
                },
            ),
            (
                "to another merchant",
                dispute("D-2", "P-1", "FE-2"),
                DisputeRecording::Refused(DisputeRefusal::OtherMerchant {
                    payment: PaymentId::from("P-1"),
                    paid: MerchantId::from("FE-1"),
                    disputed: MerchantId::from("FE-2"),
                }),
            ),
            (
                "cancelled by the front-end and credited back",
                dispute("D-3", "P-2", "FE-1"),
                DisputeRecording::Refused(DisputeRefusal::Reversed {
                    payment: PaymentId::from("P-2"),
                }),
            ),
            (
                "a session's first payment, not settled yet",
                dispute("D-4", "P-3", "FE-1"),
                DisputeRecording::Refused(DisputeRefusal::NotDebited {
                    payment: PaymentId::from("P-3"),
                    account: key().fingerprint(),
                }),
            ),
            (
                "another dispute of it",
                dispute("D-5", "P-1", "FE-1"),
                recorded("WD-000002"),
            ),
        ];
        for (why, signed, expected) in cases {
            assert_eq!(
                store.record_dispute(&signed, NOW).unwrap(),
                expected,
                "{why}"
            );
        }
        // Kept as signed, in order; no balance moved.
        let kept = store.disputes(&key()).unwrap();
        let names: Vec<(&str, &str)> = kept
            .iter()
            .map(|d| (d.case.as_str(), d.signed.statement.dispute.0.as_str()))
            .collect();
        assert_eq!(names, [("WD-000001", "D-1"), ("WD-000002", "D-5")]);
        assert!(kept.iter().all(|d| d.signed.verify().is_ok()));
        assert_eq!(store.dispute(&DisputeId::from("D-2")).unwrap(), None);
        assert_eq!(store.account(&key()).unwrap().unwrap().balance, balance);
    }

    #[test]
    fn a_version_1_file_written_before_the_additions_gets_them_on_open() {
        // What the first build of version 1 wrote: the schema without the additions.
        let connection = Connection::open_in_memory().unwrap();
        connection.execute_batch(SCHEMA).unwrap();
        connection
            .execute("INSERT INTO wallet_schema (version) VALUES (1)", [])
            .unwrap();
        connection
            .execute(
                "INSERT INTO wallet_accounts
                 (key, currency, exponent, balance, reserved, last_sequence, opened_at)
                 VALUES (?1, 978, 2, 500, 0, 0, 0)",
                [key().to_sec1().as_slice()],
            )
            .unwrap();
        let mut store = WalletStore::set_up(connection, ":memory:".to_owned()).unwrap();
        // The account is still there, and the added tables work.
        assert_eq!(store.account(&key()).unwrap().map(|a| a.balance), Some(500));
        let first = WalletPayment {
            account: key(),
            merchant: MerchantId::from("FE-1"),
            service: crate::messages::ServiceId::from("news"),
            payment: PaymentId::from("P-1"),
            amount: Money::new(100, Currency::EUR),
            sequence: 1,
            time: NOW,
        };
        let first = SignedWalletPayment::sign(first, |m| signer().sign(m)).unwrap();
        let reservation = Reservation {
            session: SessionId::from("S-1"),
            account: key(),
            merchant: MerchantId::from("FE-1"),
            amount: Money::new(300, Currency::EUR),
        };
        let opened = store
            .reserve_with_payment(&first, &reservation, NOW)
            .unwrap();
        assert!(matches!(opened, Outcome::Done(_)), "{opened:?}");
        assert_eq!(
            store
                .opening(&SessionId::from("S-1"))
                .unwrap()
                .map(|o| o.signed),
            Some(first)
        );
        // Opening it again is harmless: the additions are created only if missing.
        let connection =
            std::mem::replace(&mut store.connection, Connection::open_in_memory().unwrap());
        let store = WalletStore::set_up(connection, ":memory:".to_owned()).unwrap();
        assert_eq!(
            store.account(&key()).unwrap().map(|a| a.reserved),
            Some(300)
        );
    }
}
