//! The bank-card acquirer's durable journal: every transaction F it answered, with its
//! acknowledgement G, each card's last transaction counter, the reversals, and the
//! remittance batches cut from the authorised transactions (claim 11: the acquirer
//! "keeps the acknowledged transaction and remits it, at the deadline the banking
//! systems set, to the telecollection centre").
//!
//! One SQLite file (`rusqlite`, bundled SQLite). Each operation that changes the journal
//! is one SQLite transaction and returns only once it is on disk, so that:
//!
//! - an acknowledgement is durable **before** it is sent: [`Journal::record`] returns
//!   when the transaction, its G and the card's counter are committed;
//! - a repeated F gets the stored G ([`Journal::acknowledgement_for`]), whatever has
//!   changed since (a card counter, a cut-off);
//! - a cut-off ([`Journal::cut_off`]) moves every authorised transaction into a new
//!   batch at once or not at all, and fixes the batch's bytes (their SHA-256 is stored),
//!   so a batch re-sent after a crash is the very same file and the centre's
//!   de-duplication by batch number counts it once.
//!
//! States of a transaction (`docs/telecollection.md` draws them):
//!
//! ```text
//! authorised ──cut_off──▶ in-batch ──mark_sent──▶ remitted ──mark_acknowledged──▶ acknowledged-by-centre
//!     │
//!     └──reverse──▶ reversed          refused (a negative G: kept for idempotence, never remitted)
//! ```
//!
//! Batches go `open` (cut, not yet sent) → `sent` (transmission started) →
//! `acknowledged` (the centre accepted it).

use std::io::Write;
use std::path::Path;

use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};
use serde::{Deserialize, Serialize};

use crate::acquirer::batch::{
    self, BatchError, BatchHeader, BatchRecord, BatchTrailer, BatchWriter, CurrencyTotal,
};
use crate::acquirer::card::Decision;
use crate::messages::{
    Acknowledgement, AcquirerId, AcquirerTransaction, MerchantId, Payment, PaymentId, Reversal,
    Timestamp, Verdict,
};

/// The schema this build reads and writes. A journal of another version is refused
/// rather than guessed at.
pub const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE schema_version (
    version INTEGER NOT NULL CHECK (version >= 1)
);
-- The acquirer this journal belongs to, fixed by the first transaction recorded.
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE batches (
    number INTEGER PRIMARY KEY CHECK (number >= 1),
    acquirer TEXT NOT NULL,
    cut_off_at INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('open', 'sent', 'acknowledged')),
    records INTEGER NOT NULL CHECK (records >= 1),
    bytes INTEGER NOT NULL CHECK (bytes > 0),
    checksum TEXT NOT NULL CHECK (length(checksum) = 64),
    sent_at INTEGER,
    acknowledged_at INTEGER,
    CHECK ((state = 'open') = (sent_at IS NULL)),
    CHECK ((state = 'acknowledged') = (acknowledged_at IS NOT NULL))
);
CREATE TABLE batch_totals (
    batch INTEGER NOT NULL REFERENCES batches (number),
    currency INTEGER NOT NULL CHECK (currency BETWEEN 0 AND 999),
    records INTEGER NOT NULL CHECK (records >= 1),
    total_minor INTEGER NOT NULL CHECK (total_minor >= 0),
    PRIMARY KEY (batch, currency)
);
CREATE TABLE transactions (
    seq INTEGER PRIMARY KEY,
    payment TEXT NOT NULL UNIQUE,
    purchase TEXT NOT NULL,
    merchant TEXT NOT NULL,
    pan TEXT NOT NULL,
    pan_sequence INTEGER NOT NULL CHECK (pan_sequence BETWEEN 0 AND 255),
    expiry TEXT NOT NULL,
    atc INTEGER NOT NULL CHECK (atc BETWEEN 0 AND 65535),
    -- NULL only for a refused amount beyond 64-bit signed integers.
    amount_minor INTEGER CHECK (amount_minor >= 0),
    currency INTEGER NOT NULL CHECK (currency BETWEEN 0 AND 65535),
    requested_at INTEGER NOT NULL,
    transaction_date TEXT NOT NULL,
    cryptogram TEXT NOT NULL CHECK (length(cryptogram) = 16),
    amount_other TEXT NOT NULL,
    transaction_type TEXT NOT NULL,
    terminal_country TEXT NOT NULL,
    aid TEXT NOT NULL,
    aip TEXT NOT NULL,
    tvr TEXT NOT NULL,
    unpredictable_number TEXT NOT NULL,
    cid INTEGER NOT NULL CHECK (cid BETWEEN 0 AND 255),
    iad TEXT NOT NULL,
    authorisation_code TEXT,
    state TEXT NOT NULL CHECK (state IN
        ('authorised', 'in-batch', 'remitted', 'acknowledged-by-centre', 'refused', 'reversed')),
    batch INTEGER REFERENCES batches (number) DEFERRABLE INITIALLY DEFERRED,
    recorded_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    f_json TEXT NOT NULL,
    g_json TEXT NOT NULL,
    -- A transaction is in a batch exactly in the batch states.
    CHECK ((batch IS NOT NULL) = (state IN ('in-batch', 'remitted', 'acknowledged-by-centre'))),
    -- Only what was authorised has an authorisation code, and a remittable amount.
    CHECK ((authorisation_code IS NULL) = (state = 'refused')),
    CHECK (state = 'refused' OR amount_minor IS NOT NULL)
);
CREATE INDEX transactions_by_state ON transactions (state);
CREATE INDEX transactions_by_batch ON transactions (batch, seq);
CREATE TABLE cards (
    pan TEXT NOT NULL,
    pan_sequence INTEGER NOT NULL CHECK (pan_sequence BETWEEN 0 AND 255),
    last_atc INTEGER NOT NULL CHECK (last_atc BETWEEN 0 AND 65535),
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (pan, pan_sequence)
);
-- Every reversal received, for a transaction seen or not (yet): a marker for a payment
-- never seen makes a later F for it refused.
CREATE TABLE reversals (
    payment TEXT PRIMARY KEY,
    purchase TEXT NOT NULL,
    acquirer TEXT NOT NULL,
    reason TEXT NOT NULL,
    received_at INTEGER NOT NULL
);
";

/// Where a transaction is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TransactionState {
    /// Positively acknowledged, waiting for the next cut-off.
    Authorised,
    /// Cut off into a batch not yet sent.
    InBatch,
    /// In a batch whose transmission to the centre has started.
    Remitted,
    /// In a batch the centre has accepted.
    AcknowledgedByCentre,
    /// Negatively acknowledged; kept so that a repeated F gets the same answer. Never
    /// remitted.
    Refused,
    /// Authorised, then cancelled by the front-end before any cut-off. Never remitted.
    Reversed,
}

impl TransactionState {
    /// The name the journal stores and the CLI shows.
    pub fn as_str(self) -> &'static str {
        match self {
            TransactionState::Authorised => "authorised",
            TransactionState::InBatch => "in-batch",
            TransactionState::Remitted => "remitted",
            TransactionState::AcknowledgedByCentre => "acknowledged-by-centre",
            TransactionState::Refused => "refused",
            TransactionState::Reversed => "reversed",
        }
    }

    /// The state named `name`.
    pub fn from_name(name: &str) -> Option<TransactionState> {
        [
            TransactionState::Authorised,
            TransactionState::InBatch,
            TransactionState::Remitted,
            TransactionState::AcknowledgedByCentre,
            TransactionState::Refused,
            TransactionState::Reversed,
        ]
        .into_iter()
        .find(|state| state.as_str() == name)
    }
}

impl std::fmt::Display for TransactionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a batch is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BatchState {
    /// Cut off, not yet sent.
    Open,
    /// Transmission to the centre started (it may or may not have arrived).
    Sent,
    /// The centre accepted it.
    Acknowledged,
}

impl BatchState {
    /// The name the journal stores and the CLI shows.
    pub fn as_str(self) -> &'static str {
        match self {
            BatchState::Open => "open",
            BatchState::Sent => "sent",
            BatchState::Acknowledged => "acknowledged",
        }
    }

    fn from_name(name: &str) -> Option<BatchState> {
        [BatchState::Open, BatchState::Sent, BatchState::Acknowledged]
            .into_iter()
            .find(|state| state.as_str() == name)
    }
}

impl std::fmt::Display for BatchState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A batch as the journal keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BatchSummary {
    /// Its number, from 1.
    pub number: u64,
    /// The acquirer remitting.
    pub acquirer: AcquirerId,
    /// When it was cut off.
    pub cut_off_at: Timestamp,
    /// Where it is.
    pub state: BatchState,
    /// How many transactions it holds.
    pub records: u64,
    /// Per currency, ascending.
    pub totals: Vec<CurrencyTotal>,
    /// SHA-256 of the batch file before its trailer, as fixed at the cut-off.
    pub checksum: [u8; 32],
    /// The batch file's size in bytes.
    pub bytes: u64,
    /// When its transmission first started.
    pub sent_at: Option<Timestamp>,
    /// When the centre's acceptance was recorded.
    pub acknowledged_at: Option<Timestamp>,
}

impl BatchSummary {
    /// The batch file's header.
    pub fn header(&self) -> BatchHeader {
        BatchHeader {
            acquirer: self.acquirer.clone(),
            number: self.number,
            cut_off_at: self.cut_off_at,
            records: self.records,
            totals: self.totals.clone(),
        }
    }
}

/// What [`Journal::reverse`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReversalOutcome {
    /// The transaction was authorised and not yet in a batch: it is reversed and will
    /// never be remitted.
    Reversed,
    /// It was already reversed; nothing changed.
    AlreadyReversed,
    /// The payment has not been seen: a marker is kept so that a later F for it is
    /// refused ([`Journal::is_reversed`]).
    Marked,
    /// The transaction was refused: there is nothing to cancel; nothing changed.
    WasRefused,
    /// Too late: the transaction is already in a batch; nothing changed. Cancelling it
    /// now is a refund, outside telecollection.
    AlreadyBatched {
        /// The batch holding it.
        batch: u64,
        /// Its state.
        state: TransactionState,
    },
}

/// What to list with [`Journal::transactions`]; every field narrows the selection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransactionFilter {
    /// Only transactions in this state.
    pub state: Option<TransactionState>,
    /// Only transactions of this batch.
    pub batch: Option<u64>,
    /// Only this payment.
    pub payment: Option<PaymentId>,
    /// At most this many, oldest first.
    pub limit: Option<u64>,
}

/// One transaction as [`Journal::transactions`] lists it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct JournalEntry {
    /// The order of recording, from 1.
    pub seq: u64,
    /// The payment request.
    pub payment: PaymentId,
    /// The purchase.
    pub purchase: String,
    /// The merchant.
    pub merchant: MerchantId,
    /// The card's PAN (`Debug` masks it; show it with [`crate::emv::mask_pan`]).
    pub pan: String,
    /// The PAN sequence number.
    pub pan_sequence: u8,
    /// The card's transaction counter.
    pub atc: u16,
    /// The amount in minor units (`None` only for a refused absurd amount).
    pub amount_minor: Option<u64>,
    /// ISO 4217 numeric currency.
    pub currency: u16,
    /// Where it is.
    pub state: TransactionState,
    /// Its batch, when in one.
    pub batch: Option<u64>,
    /// The authorisation code, for authorised ones.
    pub authorisation_code: Option<String>,
    /// When it was recorded.
    pub recorded_at: Timestamp,
    /// When its state last changed.
    pub updated_at: Timestamp,
}

impl std::fmt::Debug for JournalEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JournalEntry")
            .field("seq", &self.seq)
            .field("payment", &self.payment)
            .field("pan", &crate::emv::mask_pan(&self.pan))
            .field("atc", &self.atc)
            .field("amount_minor", &self.amount_minor)
            .field("currency", &self.currency)
            .field("state", &self.state)
            .field("batch", &self.batch)
            .finish_non_exhaustive()
    }
}

/// A transaction with its messages, as [`Journal::stored_transaction`] reads it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTransaction {
    /// F as received.
    pub transaction: AcquirerTransaction,
    /// G as answered.
    pub acknowledgement: Acknowledgement,
    /// Where it is.
    pub state: TransactionState,
    /// Its batch, when in one.
    pub batch: Option<u64>,
}

/// The journal operation that failed, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Opening the file and checking its schema.
    Open,
    /// Looking something up.
    Read,
    /// Recording a transaction and its acknowledgement.
    Record,
    /// Recording a reversal.
    Reverse,
    /// Cutting a batch off.
    CutOff,
    /// Streaming a batch's records or file.
    WriteBatch,
    /// Marking a batch sent.
    MarkSent,
    /// Marking a batch acknowledged by the centre.
    MarkAcknowledged,
    /// Listing transactions.
    List,
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Operation::Open => "open",
            Operation::Read => "read",
            Operation::Record => "record",
            Operation::Reverse => "reverse",
            Operation::CutOff => "cut-off",
            Operation::WriteBatch => "write batch",
            Operation::MarkSent => "mark sent",
            Operation::MarkAcknowledged => "mark acknowledged",
            Operation::List => "list",
        })
    }
}

/// A journal operation that failed. Every variant names the journal's file and the
/// operation; nothing was changed by an operation that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    /// SQLite failed (file unreadable, not a database, disk full, locked...).
    #[error("journal {path}: {operation}: {source}")]
    Database {
        /// The journal's file.
        path: String,
        /// The operation.
        operation: Operation,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// The file's schema is of another version.
    #[error(
        "journal {path}: schema version {found} is not supported (this build reads {SCHEMA_VERSION})"
    )]
    SchemaVersion {
        /// The journal's file.
        path: String,
        /// The version found.
        found: i64,
    },
    /// A message could not be encoded, or a stored one read back, as JSON.
    #[error("journal {path}: {operation}: payment {payment}: the {what} as JSON: {source}")]
    Json {
        /// The journal's file.
        path: String,
        /// The operation.
        operation: Operation,
        /// The payment concerned.
        payment: PaymentId,
        /// Which message (`transaction F`, `acknowledgement G`).
        what: &'static str,
        /// serde_json's error.
        #[source]
        source: serde_json::Error,
    },
    /// A transaction or reversal for another acquirer than the journal's.
    #[error(
        "journal {path}: {operation}: the journal is acquirer {journal}'s, this is for {received}"
    )]
    ForeignAcquirer {
        /// The journal's file.
        path: String,
        /// The operation.
        operation: Operation,
        /// The journal's acquirer.
        journal: AcquirerId,
        /// The message's.
        received: AcquirerId,
    },
    /// The acknowledgement or decision does not answer this transaction (ids differ).
    #[error("journal {path}: {operation}: payment {payment}: {what} differ")]
    Mismatch {
        /// The journal's file.
        path: String,
        /// The operation.
        operation: Operation,
        /// The payment of F (or of the reversal).
        payment: PaymentId,
        /// What differs (`the payment ids of F and G`...).
        what: &'static str,
    },
    /// A positive acknowledgement for a payment the front-end has already reversed.
    #[error(
        "journal {path}: record: payment {payment} was reversed before it arrived and cannot be authorised"
    )]
    ReversedBeforeRecord {
        /// The journal's file.
        path: String,
        /// The payment.
        payment: PaymentId,
    },
    /// A positive acknowledgement for a transaction the remittance batch cannot carry:
    /// it is not recorded, so that nothing authorised is left unremittable.
    #[error(
        "journal {path}: record: payment {payment} cannot be remitted: field `{field}`: expected {expected}"
    )]
    NotRemittable {
        /// The journal's file.
        path: String,
        /// The payment.
        payment: PaymentId,
        /// The batch record's field.
        field: &'static str,
        /// What the batch format needs.
        expected: &'static str,
    },
    /// No batch of this number.
    #[error("journal {path}: {operation}: no batch {number}")]
    UnknownBatch {
        /// The journal's file.
        path: String,
        /// The operation.
        operation: Operation,
        /// The number asked for.
        number: u64,
    },
    /// The batch is not in a state that allows the operation.
    #[error("journal {path}: {operation}: batch {number} is already {state}")]
    BatchState {
        /// The journal's file.
        path: String,
        /// The operation.
        operation: Operation,
        /// The batch.
        number: u64,
        /// Its state.
        state: BatchState,
    },
    /// Writing a batch failed, or its bytes are not those fixed at its cut-off.
    #[error("journal {path}: {operation}: batch {number}: {source}")]
    Batch {
        /// The journal's file.
        path: String,
        /// The operation.
        operation: Operation,
        /// The batch.
        number: u64,
        /// The batch format's error.
        #[source]
        source: BatchError,
    },
    /// A stored value that the schema's constraints should have made impossible: the
    /// file was altered outside telepay.
    #[error("journal {path}: {operation}: row {row}: column `{column}` holds {found:?}")]
    Corrupt {
        /// The journal's file.
        path: String,
        /// The operation.
        operation: Operation,
        /// The row (payment id, or batch number).
        row: String,
        /// The column.
        column: &'static str,
        /// The value (at most 32 characters).
        found: String,
    },
}

/// The journal.
pub struct Journal {
    connection: Connection,
    path: String,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal").field("path", &self.path).finish()
    }
}

/// Error constructors bound to a file and an operation.
#[derive(Clone, Copy)]
struct At<'a> {
    path: &'a str,
    operation: Operation,
}

impl<'a> At<'a> {
    fn db(self) -> impl Fn(rusqlite::Error) -> JournalError + 'a {
        move |source| JournalError::Database {
            path: self.path.to_owned(),
            operation: self.operation,
            source,
        }
    }

    fn corrupt(
        self,
        row: impl ToString,
        column: &'static str,
        found: impl ToString,
    ) -> JournalError {
        JournalError::Corrupt {
            path: self.path.to_owned(),
            operation: self.operation,
            row: row.to_string(),
            column,
            found: found.to_string().chars().take(32).collect(),
        }
    }

    fn json(
        self,
        payment: &PaymentId,
        what: &'static str,
    ) -> impl FnOnce(serde_json::Error) -> JournalError + 'a {
        let payment = payment.clone();
        move |source| JournalError::Json {
            path: self.path.to_owned(),
            operation: self.operation,
            payment,
            what,
            source,
        }
    }

    fn mismatch(self, payment: &PaymentId, what: &'static str) -> JournalError {
        JournalError::Mismatch {
            path: self.path.to_owned(),
            operation: self.operation,
            payment: payment.clone(),
            what,
        }
    }

    fn unknown_batch(self, number: u64) -> JournalError {
        JournalError::UnknownBatch {
            path: self.path.to_owned(),
            operation: self.operation,
            number,
        }
    }
}

/// A batch number as SQLite stores it; `None` beyond its integers (no such batch).
fn batch_key(number: u64) -> Option<i64> {
    i64::try_from(number).ok()
}

fn hex_array<const N: usize>(text: &str) -> Option<[u8; N]> {
    let mut bytes = [0u8; N];
    hex::decode_to_slice(text, &mut bytes).ok()?;
    Some(bytes)
}

const TRANSACTION_COLUMNS: &str = "seq, payment, purchase, merchant, pan, pan_sequence, atc, \
     amount_minor, currency, state, batch, authorisation_code, recorded_at, updated_at";

const RECORD_COLUMNS: &str = "payment, merchant, pan, pan_sequence, expiry, atc, amount_minor, \
     currency, amount_other, transaction_date, transaction_type, terminal_country, aid, aip, \
     tvr, unpredictable_number, cid, cryptogram, iad, authorisation_code";

impl Journal {
    /// Opens the journal at `path`, creating it (and its schema) if absent.
    pub fn open(path: impl AsRef<Path>) -> Result<Journal, JournalError> {
        let path_text = path.as_ref().display().to_string();
        let at = At {
            path: &path_text,
            operation: Operation::Open,
        };
        let connection = Connection::open(path.as_ref()).map_err(at.db())?;
        Journal::set_up(connection, path_text)
    }

    /// A journal in memory, gone when dropped: for tests.
    pub fn open_in_memory() -> Result<Journal, JournalError> {
        let path = ":memory:".to_owned();
        let at = At {
            path: &path,
            operation: Operation::Open,
        };
        let connection = Connection::open_in_memory().map_err(at.db())?;
        Journal::set_up(connection, path)
    }

    fn set_up(mut connection: Connection, path: String) -> Result<Journal, JournalError> {
        let at = At {
            path: &path,
            operation: Operation::Open,
        };
        // WAL: readers (the CLI listing the journal) do not block the acquirer writing,
        // and a commit is one append to the log.
        // synchronous=FULL: the log is fsynced at every commit, so when `record` returns
        // the acknowledgement survives a power cut, not only a process crash. It must:
        // G is sent after `record` returns, and an acknowledged transaction may never be
        // lost. NORMAL would be ~9× faster here (NOTES.md: 67k vs 7.5k commits/s) but may
        // lose the last commits on power loss.
        connection
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(at.db())?;
        connection
            .pragma_update(None, "synchronous", "FULL")
            .map_err(at.db())?;
        connection
            .pragma_update(None, "foreign_keys", true)
            .map_err(at.db())?;
        connection
            .busy_timeout(std::time::Duration::from_secs(10))
            .map_err(at.db())?;
        // Every statement goes through `prepare_cached`; the default cache holds 16 and
        // the journal has about 30, so a cut-off or a listing would evict the ones an
        // authorisation needs.
        connection.set_prepared_statement_cache_capacity(64);
        let transaction = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(at.db())?;
        let exists: bool = transaction
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE name = 'schema_version')",
            )
            .and_then(|mut statement| statement.query_row([], |row| row.get(0)))
            .map_err(at.db())?;
        if exists {
            let found: Option<i64> = transaction
                .prepare_cached("SELECT max(version) FROM schema_version")
                .and_then(|mut statement| statement.query_row([], |row| row.get(0)))
                .map_err(at.db())?;
            if found != Some(SCHEMA_VERSION) {
                return Err(JournalError::SchemaVersion {
                    path: path.clone(),
                    found: found.unwrap_or(0),
                });
            }
        } else {
            transaction.execute_batch(SCHEMA).map_err(at.db())?;
            transaction
                .prepare_cached("INSERT INTO schema_version (version) VALUES (?1)")
                .and_then(|mut statement| statement.execute([SCHEMA_VERSION]))
                .map_err(at.db())?;
        }
        transaction.commit().map_err(at.db())?;
        Ok(Journal { connection, path })
    }

    /// The journal's file, as errors name it (`:memory:` for an in-memory one).
    pub fn path(&self) -> &str {
        &self.path
    }

    fn at(&self, operation: Operation) -> At<'_> {
        At {
            path: &self.path,
            operation,
        }
    }

    /// The acquirer the journal belongs to: the one of the first transaction recorded.
    pub fn acquirer(&self) -> Result<Option<AcquirerId>, JournalError> {
        let at = self.at(Operation::Read);
        self.connection
            .prepare_cached("SELECT value FROM meta WHERE key = 'acquirer'")
            .and_then(|mut statement| statement.query_row([], |row| row.get::<_, String>(0)))
            .optional()
            .map(|found| found.map(AcquirerId))
            .map_err(at.db())
    }

    /// The acknowledgement already given for `payment`, if any: a repeated F gets it
    /// again, unchanged.
    pub fn acknowledgement_for(
        &self,
        payment: &PaymentId,
    ) -> Result<Option<Acknowledgement>, JournalError> {
        let at = self.at(Operation::Read);
        let json: Option<String> = self
            .connection
            .prepare_cached("SELECT g_json FROM transactions WHERE payment = ?1")
            .and_then(|mut statement| statement.query_row([&payment.0], |row| row.get(0)))
            .optional()
            .map_err(at.db())?;
        json.map(|json| {
            serde_json::from_str(&json).map_err(at.json(payment, "stored acknowledgement G"))
        })
        .transpose()
    }

    /// F, G and where the transaction is, for `payment`.
    pub fn stored_transaction(
        &self,
        payment: &PaymentId,
    ) -> Result<Option<StoredTransaction>, JournalError> {
        let at = self.at(Operation::Read);
        let row: Option<(String, String, String, Option<i64>)> = self
            .connection
            .prepare_cached(
                "SELECT f_json, g_json, state, batch FROM transactions WHERE payment = ?1",
            )
            .and_then(|mut statement| {
                statement.query_row([&payment.0], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
                })
            })
            .optional()
            .map_err(at.db())?;
        let Some((f_json, g_json, state, batch)) = row else {
            return Ok(None);
        };
        Ok(Some(StoredTransaction {
            transaction: serde_json::from_str(&f_json)
                .map_err(at.json(payment, "stored transaction F"))?,
            acknowledgement: serde_json::from_str(&g_json)
                .map_err(at.json(payment, "stored acknowledgement G"))?,
            state: TransactionState::from_name(&state)
                .ok_or_else(|| at.corrupt(payment, "state", &state))?,
            batch: batch
                .map(|batch| u64::try_from(batch).map_err(|_| at.corrupt(payment, "batch", batch)))
                .transpose()?,
        }))
    }

    /// The highest ATC recorded for the card (PAN, PAN sequence number), if seen.
    pub fn card_last_atc(&self, pan: &str, pan_sequence: u8) -> Result<Option<u16>, JournalError> {
        let at = self.at(Operation::Read);
        let found: Option<i64> = self
            .connection
            .prepare_cached("SELECT last_atc FROM cards WHERE pan = ?1 AND pan_sequence = ?2")
            .and_then(|mut statement| {
                statement.query_row(params![pan, pan_sequence], |row| row.get(0))
            })
            .optional()
            .map_err(at.db())?;
        found
            .map(|atc| {
                u16::try_from(atc)
                    .map_err(|_| at.corrupt(crate::emv::mask_pan(pan), "last_atc", atc))
            })
            .transpose()
    }

    /// The card's history as the banking rules take it ([`crate::acquirer::card`]).
    pub fn card_history(
        &self,
        card: &crate::acquirer::card::CardKey,
    ) -> Result<crate::acquirer::card::CardHistory, JournalError> {
        Ok(crate::acquirer::card::CardHistory {
            last_atc: self.card_last_atc(&card.pan, card.pan_sequence)?,
        })
    }

    /// Whether the front-end has reversed `payment`, seen or not: a later F for it must
    /// be refused.
    pub fn is_reversed(&self, payment: &PaymentId) -> Result<bool, JournalError> {
        let at = self.at(Operation::Read);
        self.connection
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM reversals WHERE payment = ?1)")
            .and_then(|mut statement| statement.query_row([&payment.0], |row| row.get(0)))
            .map_err(at.db())
    }

    /// Records F and the G answering it, in one SQLite transaction, and returns once it
    /// is on disk: only then may G be sent. The card's last ATC is raised to F's when G
    /// is positive (never lowered).
    ///
    /// Returns the acknowledgement that stands for this payment: `acknowledgement` when
    /// newly recorded, or the one recorded the first time when the payment is already
    /// in the journal (then nothing changes).
    ///
    /// A positive G is refused ([`JournalError::NotRemittable`]) when the batch cannot
    /// carry the transaction (a field outside the format, or a card amount or currency
    /// that is not the request's), and ([`JournalError::ReversedBeforeRecord`]) when the
    /// payment was reversed before it arrived.
    pub fn record(
        &mut self,
        transaction: &AcquirerTransaction,
        acknowledgement: &Acknowledgement,
        now: Timestamp,
    ) -> Result<Acknowledgement, JournalError> {
        self.record_with_atc(transaction, acknowledgement, None, now)
    }

    /// [`Journal::record`] for a [`Decision`] of the banking rules: also raises the
    /// card's last ATC to `decision.record_atc` when it is given, even for a negative
    /// G (an authentic cryptogram has spent its counter, whatever the verdict).
    pub fn record_decision(
        &mut self,
        transaction: &AcquirerTransaction,
        decision: &Decision,
        now: Timestamp,
    ) -> Result<Acknowledgement, JournalError> {
        let Payment::BankCard(card) = &transaction.transaction.means;
        if decision.card.pan != card.pan || decision.card.pan_sequence != card.pan_sequence {
            return Err(self.at(Operation::Record).mismatch(
                &transaction.transaction.payment,
                "the cards of F and the decision",
            ));
        }
        self.record_with_atc(
            transaction,
            &decision.acknowledgement,
            decision.record_atc,
            now,
        )
    }

    fn record_with_atc(
        &mut self,
        f: &AcquirerTransaction,
        g: &Acknowledgement,
        record_atc: Option<u16>,
        now: Timestamp,
    ) -> Result<Acknowledgement, JournalError> {
        let at = At {
            path: &self.path,
            operation: Operation::Record,
        };
        let payment = &f.transaction.payment;
        if f.request.payment != *payment || g.payment != *payment {
            return Err(at.mismatch(
                payment,
                "the payment ids of F's request, F's transaction and G",
            ));
        }
        if f.transaction.purchase != g.purchase || f.request.purchase != g.purchase {
            return Err(at.mismatch(payment, "the purchase ids of F and G"));
        }
        if f.acquirer != g.acquirer {
            return Err(at.mismatch(payment, "the acquirers of F and G"));
        }
        let Payment::BankCard(card) = &f.transaction.means;
        let f_json = serde_json::to_string(f).map_err(at.json(payment, "transaction F"))?;
        let g_json = serde_json::to_string(g).map_err(at.json(payment, "acknowledgement G"))?;

        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(at.db())?;
        let stored: Option<String> = transaction
            .prepare_cached("SELECT g_json FROM transactions WHERE payment = ?1")
            .and_then(|mut statement| statement.query_row([&payment.0], |row| row.get(0)))
            .optional()
            .map_err(at.db())?;
        if let Some(stored) = stored {
            return serde_json::from_str(&stored)
                .map_err(at.json(payment, "stored acknowledgement G"));
        }
        let journal_acquirer: Option<String> = transaction
            .prepare_cached("SELECT value FROM meta WHERE key = 'acquirer'")
            .and_then(|mut statement| statement.query_row([], |row| row.get(0)))
            .optional()
            .map_err(at.db())?;
        match journal_acquirer {
            Some(acquirer) if acquirer != f.acquirer.0 => {
                return Err(JournalError::ForeignAcquirer {
                    path: self.path.clone(),
                    operation: Operation::Record,
                    journal: AcquirerId(acquirer),
                    received: f.acquirer.clone(),
                });
            }
            Some(_) => {}
            None => {
                transaction
                    .prepare_cached("INSERT INTO meta (key, value) VALUES ('acquirer', ?1)")
                    .and_then(|mut statement| statement.execute([&f.acquirer.0]))
                    .map_err(at.db())?;
            }
        }

        let (state, authorisation_code) = match &g.verdict {
            Verdict::Positive {
                authorisation_code, ..
            } => {
                let reversed: bool = transaction
                    .prepare_cached("SELECT EXISTS (SELECT 1 FROM reversals WHERE payment = ?1)")
                    .and_then(|mut statement| statement.query_row([&payment.0], |row| row.get(0)))
                    .map_err(at.db())?;
                if reversed {
                    return Err(JournalError::ReversedBeforeRecord {
                        path: self.path.clone(),
                        payment: payment.clone(),
                    });
                }
                let not_remittable = |field, expected| JournalError::NotRemittable {
                    path: self.path.clone(),
                    payment: payment.clone(),
                    field,
                    expected,
                };
                // The batch states the request's amount as what the card signed: they
                // must be equal (EMV Book 3 Annex A: 9F02 n12, 5F2A n3).
                if f.request.amount.emv_amount() != Some(card.amount) {
                    return Err(not_remittable(
                        "amount",
                        "the card's 9F02 equal to the request's amount",
                    ));
                }
                if f.request.amount.currency.emv_code() != card.currency
                    || f.request.amount.currency.numeric > 999
                {
                    return Err(not_remittable(
                        "currency",
                        "the card's 5F2A equal to the request's currency",
                    ));
                }
                let record = batch_record(f, authorisation_code);
                batch::check_record(&record)
                    .map_err(|(field, expected)| not_remittable(field, expected))?;
                (
                    TransactionState::Authorised,
                    Some(authorisation_code.as_str()),
                )
            }
            Verdict::Negative { .. } => (TransactionState::Refused, None),
        };

        transaction
            .prepare_cached(
                "INSERT INTO transactions (payment, purchase, merchant, pan, pan_sequence, expiry, \
                 atc, amount_minor, currency, requested_at, transaction_date, cryptogram, \
                 amount_other, transaction_type, terminal_country, aid, aip, tvr, \
                 unpredictable_number, cid, iad, authorisation_code, state, batch, recorded_at, \
                 updated_at, f_json, g_json) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, \
                 ?17, ?18, ?19, ?20, ?21, ?22, ?23, NULL, ?24, ?24, ?25, ?26)",
            )
            .and_then(|mut statement| {
                statement.execute(params![
                    payment.0,
                    f.transaction.purchase.0,
                    f.merchant.0,
                    card.pan,
                    card.pan_sequence,
                    card.expiry,
                    card.atc,
                    i64::try_from(f.request.amount.minor).ok(),
                    f.request.amount.currency.numeric,
                    f.request.date.0,
                    hex::encode_upper(card.date),
                    hex::encode_upper(card.cryptogram),
                    hex::encode_upper(card.amount_other),
                    hex::encode_upper([card.transaction_type]),
                    hex::encode_upper(card.terminal_country),
                    hex::encode_upper(&card.aid),
                    hex::encode_upper(card.aip),
                    hex::encode_upper(card.tvr),
                    hex::encode_upper(card.unpredictable_number),
                    card.cid,
                    hex::encode_upper(&card.iad),
                    authorisation_code,
                    state.as_str(),
                    now.0,
                    f_json,
                    g_json,
                ])
            })
            .map_err(at.db())?;

        // The counter only grows: an authorised transaction spent it, and so did any
        // authentic cryptogram the rules ask to remember.
        let raise = match state {
            TransactionState::Authorised => {
                Some(record_atc.map_or(card.atc, |atc| atc.max(card.atc)))
            }
            _ => record_atc,
        };
        if let Some(atc) = raise {
            transaction
                .prepare_cached("INSERT INTO cards (pan, pan_sequence, last_atc, updated_at) VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT (pan, pan_sequence) DO UPDATE SET \
                     last_atc = max(last_atc, excluded.last_atc), updated_at = excluded.updated_at")
.and_then(|mut statement| statement.execute(params![card.pan, card.pan_sequence, atc, now.0]))
                .map_err(at.db())?;
        }
        transaction.commit().map_err(at.db())?;
        Ok(g.clone())
    }

    /// Raises the card's last ATC to `atc` (never lowers it), durably, for an authentic
    /// cryptogram that is not a payment: a cardholder identification
    /// ([`crate::acquirer::card::IdentityDecision`]) spends a counter like any other
    /// cryptogram, so a later cryptogram with a counter at or below it is refused as
    /// replayed.
    pub fn raise_card_atc(
        &mut self,
        card: &crate::acquirer::card::CardKey,
        atc: u16,
        now: Timestamp,
    ) -> Result<(), JournalError> {
        let at = At {
            path: &self.path,
            operation: Operation::Record,
        };
        self.connection
            .prepare_cached(
                "INSERT INTO cards (pan, pan_sequence, last_atc, updated_at) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (pan, pan_sequence) DO UPDATE SET \
                 last_atc = max(last_atc, excluded.last_atc), updated_at = excluded.updated_at",
            )
            .and_then(|mut statement| {
                statement.execute(params![card.pan, card.pan_sequence, atc, now.0])
            })
            .map_err(at.db())?;
        Ok(())
    }

    /// Records the front-end's cancellation of a payment, in one SQLite transaction:
    /// an authorised transaction not yet cut off is reversed (never remitted); a payment
    /// never seen gets a marker so that a later F for it is refused; one already in a
    /// batch is left as it is (see [`ReversalOutcome`]).
    pub fn reverse(
        &mut self,
        reversal: &Reversal,
        now: Timestamp,
    ) -> Result<ReversalOutcome, JournalError> {
        let at = At {
            path: &self.path,
            operation: Operation::Reverse,
        };
        let payment = &reversal.payment;
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(at.db())?;
        let journal_acquirer: Option<String> = transaction
            .prepare_cached("SELECT value FROM meta WHERE key = 'acquirer'")
            .and_then(|mut statement| statement.query_row([], |row| row.get(0)))
            .optional()
            .map_err(at.db())?;
        if let Some(acquirer) = journal_acquirer
            && acquirer != reversal.acquirer.0
        {
            return Err(JournalError::ForeignAcquirer {
                path: self.path.clone(),
                operation: Operation::Reverse,
                journal: AcquirerId(acquirer),
                received: reversal.acquirer.clone(),
            });
        }
        let row: Option<(String, String, Option<i64>)> = transaction
            .prepare_cached("SELECT purchase, state, batch FROM transactions WHERE payment = ?1")
            .and_then(|mut statement| {
                statement.query_row([&payment.0], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })
            })
            .optional()
            .map_err(at.db())?;
        let outcome = match row {
            None => ReversalOutcome::Marked,
            Some((purchase, state_name, batch)) => {
                if purchase != reversal.purchase.0 {
                    return Err(at.mismatch(
                        payment,
                        "the purchase ids of the reversal and the recorded F",
                    ));
                }
                let state = TransactionState::from_name(&state_name)
                    .ok_or_else(|| at.corrupt(payment, "state", &state_name))?;
                match state {
                    TransactionState::Authorised => {
                        transaction
                            .prepare_cached(
                                "UPDATE transactions SET state = 'reversed', updated_at = ?2 \
                                 WHERE payment = ?1",
                            )
                            .and_then(|mut statement| statement.execute(params![payment.0, now.0]))
                            .map_err(at.db())?;
                        ReversalOutcome::Reversed
                    }
                    TransactionState::Reversed => ReversalOutcome::AlreadyReversed,
                    TransactionState::Refused => return Ok(ReversalOutcome::WasRefused),
                    TransactionState::InBatch
                    | TransactionState::Remitted
                    | TransactionState::AcknowledgedByCentre => {
                        let batch = batch
                            .and_then(|batch| u64::try_from(batch).ok())
                            .ok_or_else(|| at.corrupt(payment, "batch", format!("{batch:?}")))?;
                        return Ok(ReversalOutcome::AlreadyBatched { batch, state });
                    }
                }
            }
        };
        transaction
            .prepare_cached(
                "INSERT INTO reversals (payment, purchase, acquirer, reason, received_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (payment) DO NOTHING",
            )
            .and_then(|mut statement| {
                statement.execute(params![
                    payment.0,
                    reversal.purchase.0,
                    reversal.acquirer.0,
                    reversal.reason,
                    now.0
                ])
            })
            .map_err(at.db())?;
        transaction.commit().map_err(at.db())?;
        Ok(outcome)
    }

    /// Cuts a batch off: moves every authorised transaction (reversed ones are not
    /// authorised any more) into batch number last + 1, computes its totals and the
    /// SHA-256 of its file, all in one SQLite transaction. `None` when there is nothing
    /// to remit (no batch is made).
    pub fn cut_off(&mut self, now: Timestamp) -> Result<Option<BatchSummary>, JournalError> {
        let at = At {
            path: &self.path,
            operation: Operation::CutOff,
        };
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(at.db())?;
        let pending: bool = transaction
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM transactions WHERE state = 'authorised')")
            .and_then(|mut statement| statement.query_row([], |row| row.get(0)))
            .map_err(at.db())?;
        if !pending {
            return Ok(None);
        }
        let acquirer: String = transaction
            .prepare_cached("SELECT value FROM meta WHERE key = 'acquirer'")
            .and_then(|mut statement| statement.query_row([], |row| row.get(0)))
            .optional()
            .map_err(at.db())?
            .ok_or_else(|| at.corrupt("meta", "acquirer", "missing"))?;
        let last: i64 = transaction
            .prepare_cached("SELECT coalesce(max(number), 0) FROM batches")
            .and_then(|mut statement| statement.query_row([], |row| row.get(0)))
            .map_err(at.db())?;
        let number = last
            .checked_add(1)
            .ok_or_else(|| at.corrupt(last, "number", "the last batch number"))?;
        let moved: i64 = transaction
            .prepare_cached(
                "UPDATE transactions SET state = 'in-batch', batch = ?1, updated_at = ?2 \
                 WHERE state = 'authorised'",
            )
            .and_then(|mut statement| statement.execute(params![number, now.0]))
            .map_err(at.db())?
            .try_into()
            .map_err(|_| at.corrupt(number, "records", "beyond 64 bits"))?;
        let totals = {
            let mut statement = transaction
                .prepare(
                    "SELECT currency, count(*), sum(amount_minor) FROM transactions \
                     WHERE batch = ?1 GROUP BY currency ORDER BY currency",
                )
                .map_err(at.db())?;
            let rows = statement
                .query_map([number], |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, i64>(1)?,
                        row.get::<_, i64>(2)?,
                    ))
                })
                .map_err(at.db())?;
            let mut totals = Vec::new();
            for row in rows {
                let (currency, records, total) = row.map_err(at.db())?;
                totals.push(CurrencyTotal {
                    currency: u16::try_from(currency)
                        .map_err(|_| at.corrupt(number, "currency", currency))?,
                    records: u64::try_from(records)
                        .map_err(|_| at.corrupt(number, "records", records))?,
                    total_minor: u64::try_from(total)
                        .map_err(|_| at.corrupt(number, "total", total))?,
                });
            }
            totals
        };
        let number_u64 = u64::try_from(number).map_err(|_| at.corrupt(number, "number", number))?;
        let header = BatchHeader {
            acquirer: AcquirerId(acquirer),
            number: number_u64,
            cut_off_at: now,
            records: u64::try_from(moved).map_err(|_| at.corrupt(number, "records", moved))?,
            totals,
        };
        // The batch's bytes are fixed now: hash them once, store the digest, and every
        // later writing of this batch must give the same.
        let batch_error = |source| JournalError::Batch {
            path: at.path.to_owned(),
            operation: Operation::CutOff,
            number: number_u64,
            source,
        };
        let mut writer = BatchWriter::new(std::io::sink(), &header).map_err(batch_error)?;
        for_each_record(&transaction, at, number, |record| {
            writer.write_record(&record).map_err(batch_error)
        })?;
        let (_, trailer) = writer.finish().map_err(batch_error)?;
        transaction
            .prepare_cached("INSERT INTO batches (number, acquirer, cut_off_at, state, records, bytes, checksum) \
                 VALUES (?1, ?2, ?3, 'open', ?4, ?5, ?6)")
.and_then(|mut statement| statement.execute(params![
                    number,
                    header.acquirer.0,
                    now.0,
                    moved,
                    i64::try_from(trailer.bytes).unwrap_or(i64::MAX),
                    hex::encode(trailer.checksum)
                ]))
            .map_err(at.db())?;
        for total in &header.totals {
            transaction
                .prepare_cached("INSERT INTO batch_totals (batch, currency, records, total_minor) VALUES (?1, ?2, ?3, ?4)")
.and_then(|mut statement| statement.execute(params![
                        number,
                        total.currency,
                        i64::try_from(total.records).unwrap_or(i64::MAX),
                        i64::try_from(total.total_minor).unwrap_or(i64::MAX)
                    ]))
                .map_err(at.db())?;
        }
        transaction.commit().map_err(at.db())?;
        Ok(Some(BatchSummary {
            number: number_u64,
            acquirer: header.acquirer,
            cut_off_at: now,
            state: BatchState::Open,
            records: header.records,
            totals: header.totals,
            checksum: trailer.checksum,
            bytes: trailer.bytes,
            sent_at: None,
            acknowledged_at: None,
        }))
    }

    /// The batch numbered `number`, if any.
    pub fn batch(&self, number: u64) -> Result<Option<BatchSummary>, JournalError> {
        let at = self.at(Operation::Read);
        let Some(key) = batch_key(number) else {
            return Ok(None);
        };
        Ok(self
            .select_batches(at, "WHERE number = ?1", Some(key))?
            .into_iter()
            .next())
    }

    /// Every batch, by number.
    pub fn batches(&self) -> Result<Vec<BatchSummary>, JournalError> {
        self.select_batches(self.at(Operation::Read), "", None)
    }

    /// The batches the centre has not acknowledged yet (open or sent), by number: what
    /// to (re)send after a restart.
    pub fn unacknowledged_batches(&self) -> Result<Vec<BatchSummary>, JournalError> {
        self.select_batches(
            self.at(Operation::Read),
            "WHERE state IN ('open', 'sent')",
            None,
        )
    }

    fn select_batches(
        &self,
        at: At<'_>,
        condition: &str,
        key: Option<i64>,
    ) -> Result<Vec<BatchSummary>, JournalError> {
        let sql = format!(
            "SELECT number, acquirer, cut_off_at, state, records, bytes, checksum, sent_at, \
             acknowledged_at FROM batches {condition} ORDER BY number"
        );
        let mut statement = self.connection.prepare(&sql).map_err(at.db())?;
        let mut rows = match key {
            Some(key) => statement.query([key]),
            None => statement.query([]),
        }
        .map_err(at.db())?;
        let mut batches = Vec::new();
        while let Some(row) = rows.next().map_err(at.db())? {
            batches.push(batch_from_row(at, row)?);
        }
        drop(rows);
        drop(statement);
        let mut totals = self
            .connection
            .prepare("SELECT currency, records, total_minor FROM batch_totals WHERE batch = ?1 ORDER BY currency")
            .map_err(at.db())?;
        for summary in &mut batches {
            let key = batch_key(summary.number).ok_or_else(|| at.unknown_batch(summary.number))?;
            let rows = totals
                .query_map([key], |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, i64>(1)?,
                        row.get::<_, i64>(2)?,
                    ))
                })
                .map_err(at.db())?;
            for row in rows {
                let (currency, records, total) = row.map_err(at.db())?;
                summary.totals.push(CurrencyTotal {
                    currency: u16::try_from(currency)
                        .map_err(|_| at.corrupt(summary.number, "currency", currency))?,
                    records: u64::try_from(records)
                        .map_err(|_| at.corrupt(summary.number, "records", records))?,
                    total_minor: u64::try_from(total)
                        .map_err(|_| at.corrupt(summary.number, "total_minor", total))?,
                });
            }
        }
        Ok(batches)
    }

    /// The time of the last cut-off, if any.
    pub fn last_cutoff(&self) -> Result<Option<Timestamp>, JournalError> {
        let at = self.at(Operation::Read);
        self.connection
            .prepare_cached("SELECT max(cut_off_at) FROM batches")
            .and_then(|mut statement| statement.query_row([], |row| row.get::<_, Option<i64>>(0)))
            .map(|found| found.map(Timestamp))
            .map_err(at.db())
    }

    /// When the oldest authorised transaction waiting for a cut-off was recorded, if
    /// any: with [`Journal::last_cutoff`], what a schedule decides a cut-off from.
    pub fn oldest_pending(&self) -> Result<Option<Timestamp>, JournalError> {
        let at = self.at(Operation::Read);
        self.connection
            .prepare_cached("SELECT min(recorded_at) FROM transactions WHERE state = 'authorised'")
            .and_then(|mut statement| statement.query_row([], |row| row.get::<_, Option<i64>>(0)))
            .map(|found| found.map(Timestamp))
            .map_err(at.db())
    }

    /// Calls `each` with every record of batch `number`, in the batch's order, reading
    /// them one at a time from the database: a batch of any size streams.
    pub fn batch_records<E: From<JournalError>>(
        &self,
        number: u64,
        each: impl FnMut(BatchRecord) -> Result<(), E>,
    ) -> Result<(), E> {
        let at = self.at(Operation::WriteBatch);
        let key = batch_key(number).ok_or_else(|| at.unknown_batch(number))?;
        let exists: bool = self
            .connection
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM batches WHERE number = ?1)")
            .and_then(|mut statement| statement.query_row([key], |row| row.get(0)))
            .map_err(at.db())?;
        if !exists {
            return Err(at.unknown_batch(number).into());
        }
        for_each_record(&self.connection, at, key, each)
    }

    /// Writes batch `number`'s file to `out`, streaming, and checks that its bytes are
    /// those fixed at its cut-off (else nothing past the records is written, so the
    /// truncated file cannot be accepted). Returns its trailer.
    pub fn write_batch<W: Write>(&self, number: u64, out: W) -> Result<BatchTrailer, JournalError> {
        let at = self.at(Operation::WriteBatch);
        let summary = self
            .batch(number)?
            .ok_or_else(|| at.unknown_batch(number))?;
        let batch_error = |source| JournalError::Batch {
            path: self.path.clone(),
            operation: Operation::WriteBatch,
            number,
            source,
        };
        let mut writer = BatchWriter::new(out, &summary.header()).map_err(batch_error)?;
        self.batch_records(number, |record| {
            writer.write_record(&record).map_err(batch_error)
        })?;
        let (_, trailer) = writer
            .finish_expecting(&summary.checksum)
            .map_err(batch_error)?;
        Ok(trailer)
    }

    /// Marks batch `number` sent: call it **before** the first transmission, so that a
    /// batch that may have reached the centre is never taken for one that did not. Its
    /// transactions become `remitted`. Marking a sent batch again changes nothing; an
    /// acknowledged one is refused.
    pub fn mark_sent(&mut self, number: u64, now: Timestamp) -> Result<(), JournalError> {
        self.transition(number, now, Operation::MarkSent)
    }

    /// Marks batch `number` acknowledged by the centre: its transactions become
    /// `acknowledged-by-centre`. Idempotent.
    pub fn mark_acknowledged(&mut self, number: u64, now: Timestamp) -> Result<(), JournalError> {
        self.transition(number, now, Operation::MarkAcknowledged)
    }

    fn transition(
        &mut self,
        number: u64,
        now: Timestamp,
        operation: Operation,
    ) -> Result<(), JournalError> {
        let at = At {
            path: &self.path,
            operation,
        };
        let key = batch_key(number).ok_or_else(|| at.unknown_batch(number))?;
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(at.db())?;
        let state_name: String = transaction
            .prepare_cached("SELECT state FROM batches WHERE number = ?1")
            .and_then(|mut statement| statement.query_row([key], |row| row.get(0)))
            .optional()
            .map_err(at.db())?
            .ok_or_else(|| at.unknown_batch(number))?;
        let state = BatchState::from_name(&state_name)
            .ok_or_else(|| at.corrupt(number, "state", &state_name))?;
        let (batch_sql, rows_sql) = match (operation, state) {
            (Operation::MarkSent, BatchState::Open) => (
                "UPDATE batches SET state = 'sent', sent_at = ?2 WHERE number = ?1",
                "UPDATE transactions SET state = 'remitted', updated_at = ?2 WHERE batch = ?1",
            ),
            (Operation::MarkSent, BatchState::Sent)
            | (Operation::MarkAcknowledged, BatchState::Acknowledged) => {
                return Ok(());
            }
            (Operation::MarkSent, BatchState::Acknowledged) => {
                return Err(JournalError::BatchState {
                    path: self.path.clone(),
                    operation,
                    number,
                    state,
                });
            }
            // Acknowledged without having been marked sent: sent by other means (the
            // file remitted by hand); the time of sending is taken as now.
            (_, BatchState::Open | BatchState::Sent) => (
                "UPDATE batches SET state = 'acknowledged', sent_at = coalesce(sent_at, ?2), \
                 acknowledged_at = ?2 WHERE number = ?1",
                "UPDATE transactions SET state = 'acknowledged-by-centre', updated_at = ?2 WHERE batch = ?1",
            ),
            (_, BatchState::Acknowledged) => return Ok(()),
        };
        transaction
            .prepare_cached(batch_sql)
            .and_then(|mut statement| statement.execute(params![key, now.0]))
            .map_err(at.db())?;
        transaction
            .prepare_cached(rows_sql)
            .and_then(|mut statement| statement.execute(params![key, now.0]))
            .map_err(at.db())?;
        transaction.commit().map_err(at.db())
    }

    /// Calls `each` with every transaction `filter` selects, oldest first, one at a
    /// time (the journal may hold millions).
    pub fn transactions<E: From<JournalError>>(
        &self,
        filter: &TransactionFilter,
        mut each: impl FnMut(JournalEntry) -> Result<(), E>,
    ) -> Result<(), E> {
        let at = self.at(Operation::List);
        let sql = format!(
            "SELECT {TRANSACTION_COLUMNS} FROM transactions \
             WHERE (?1 IS NULL OR state = ?1) AND (?2 IS NULL OR batch = ?2) \
             AND (?3 IS NULL OR payment = ?3) ORDER BY seq LIMIT ?4"
        );
        let batch = match filter.batch {
            Some(number) => match batch_key(number) {
                Some(key) => Some(key),
                None => return Ok(()),
            },
            None => None,
        };
        let limit = filter
            .limit
            .map_or(-1, |limit| i64::try_from(limit).unwrap_or(i64::MAX));
        let mut statement = self.connection.prepare(&sql).map_err(at.db())?;
        let mut rows = statement
            .query(params![
                filter.state.map(TransactionState::as_str),
                batch,
                filter.payment.as_ref().map(|payment| payment.0.as_str()),
                limit
            ])
            .map_err(at.db())?;
        while let Some(row) = rows.next().map_err(at.db())? {
            each(entry_from_row(at, row)?)?;
        }
        Ok(())
    }
}

/// The batch record of an authorised F.
fn batch_record(f: &AcquirerTransaction, authorisation_code: &str) -> BatchRecord {
    let Payment::BankCard(card) = &f.transaction.means;
    BatchRecord {
        payment: f.transaction.payment.clone(),
        merchant: f.merchant.clone(),
        pan: card.pan.clone(),
        pan_sequence: card.pan_sequence,
        expiry: card.expiry.clone(),
        atc: card.atc,
        amount_minor: f.request.amount.minor,
        currency: f.request.amount.currency.numeric,
        amount_other: card.amount_other,
        date: card.date,
        transaction_type: card.transaction_type,
        terminal_country: card.terminal_country,
        aid: card.aid.clone(),
        aip: card.aip,
        tvr: card.tvr,
        unpredictable_number: card.unpredictable_number,
        cid: card.cid,
        cryptogram: card.cryptogram,
        iad: card.iad.clone(),
        authorisation_code: authorisation_code.to_owned(),
    }
}

/// Streams the records of batch `key` from `connection` (the journal's, or a
/// transaction's) in order.
fn for_each_record<E: From<JournalError>>(
    connection: &Connection,
    at: At<'_>,
    key: i64,
    mut each: impl FnMut(BatchRecord) -> Result<(), E>,
) -> Result<(), E> {
    let sql = format!("SELECT {RECORD_COLUMNS} FROM transactions WHERE batch = ?1 ORDER BY seq");
    let mut statement = connection.prepare(&sql).map_err(at.db())?;
    let mut rows = statement.query([key]).map_err(at.db())?;
    while let Some(row) = rows.next().map_err(at.db())? {
        each(record_from_row(at, row)?)?;
    }
    Ok(())
}

fn record_from_row(at: At<'_>, row: &Row<'_>) -> Result<BatchRecord, JournalError> {
    let db = at.db();
    let payment: String = row.get(0).map_err(&db)?;
    let text =
        |index: usize| -> Result<String, JournalError> { row.get::<_, String>(index).map_err(&db) };
    let integer =
        |index: usize| -> Result<i64, JournalError> { row.get::<_, i64>(index).map_err(&db) };
    let corrupt =
        |column: &'static str, found: &dyn std::fmt::Display| at.corrupt(&payment, column, found);
    fn fixed<const N: usize>(text: &str) -> Option<[u8; N]> {
        hex_array::<N>(text)
    }
    let amount_other = text(8)?;
    let date = text(9)?;
    let transaction_type = text(10)?;
    let country = text(11)?;
    let aid = text(12)?;
    let aip = text(13)?;
    let tvr = text(14)?;
    let un = text(15)?;
    let cryptogram = text(17)?;
    let iad = text(18)?;
    let pan_sequence = integer(3)?;
    let atc = integer(5)?;
    let amount = row.get::<_, Option<i64>>(6).map_err(&db)?;
    let currency = integer(7)?;
    let cid = integer(16)?;
    let authorisation_code: Option<String> = row.get(19).map_err(&db)?;
    Ok(BatchRecord {
        payment: PaymentId(payment.clone()),
        merchant: MerchantId(text(1)?),
        pan: text(2)?,
        pan_sequence: u8::try_from(pan_sequence)
            .map_err(|_| corrupt("pan_sequence", &pan_sequence))?,
        expiry: text(4)?,
        atc: u16::try_from(atc).map_err(|_| corrupt("atc", &atc))?,
        amount_minor: amount
            .and_then(|amount| u64::try_from(amount).ok())
            .ok_or_else(|| corrupt("amount_minor", &format!("{amount:?}")))?,
        currency: u16::try_from(currency).map_err(|_| corrupt("currency", &currency))?,
        amount_other: fixed(&amount_other).ok_or_else(|| corrupt("amount_other", &amount_other))?,
        date: fixed(&date).ok_or_else(|| corrupt("transaction_date", &date))?,
        transaction_type: fixed::<1>(&transaction_type)
            .map(|[byte]| byte)
            .ok_or_else(|| corrupt("transaction_type", &transaction_type))?,
        terminal_country: fixed(&country).ok_or_else(|| corrupt("terminal_country", &country))?,
        aid: hex::decode(&aid).map_err(|_| corrupt("aid", &aid))?,
        aip: fixed(&aip).ok_or_else(|| corrupt("aip", &aip))?,
        tvr: fixed(&tvr).ok_or_else(|| corrupt("tvr", &tvr))?,
        unpredictable_number: fixed(&un).ok_or_else(|| corrupt("unpredictable_number", &un))?,
        cid: u8::try_from(cid).map_err(|_| corrupt("cid", &cid))?,
        cryptogram: fixed(&cryptogram).ok_or_else(|| corrupt("cryptogram", &cryptogram))?,
        iad: hex::decode(&iad).map_err(|_| corrupt("iad", &iad))?,
        authorisation_code: authorisation_code
            .ok_or_else(|| corrupt("authorisation_code", &"NULL"))?,
    })
}

fn batch_from_row(at: At<'_>, row: &Row<'_>) -> Result<BatchSummary, JournalError> {
    let db = at.db();
    let number: i64 = row.get(0).map_err(&db)?;
    let corrupt =
        |column: &'static str, found: &dyn std::fmt::Display| at.corrupt(number, column, found);
    let state: String = row.get(3).map_err(&db)?;
    let records: i64 = row.get(4).map_err(&db)?;
    let bytes: i64 = row.get(5).map_err(&db)?;
    let checksum: String = row.get(6).map_err(&db)?;
    Ok(BatchSummary {
        number: u64::try_from(number).map_err(|_| corrupt("number", &number))?,
        acquirer: AcquirerId(row.get(1).map_err(&db)?),
        cut_off_at: Timestamp(row.get(2).map_err(&db)?),
        state: BatchState::from_name(&state).ok_or_else(|| corrupt("state", &state))?,
        records: u64::try_from(records).map_err(|_| corrupt("records", &records))?,
        totals: Vec::new(),
        checksum: hex_array(&checksum).ok_or_else(|| corrupt("checksum", &checksum))?,
        bytes: u64::try_from(bytes).map_err(|_| corrupt("bytes", &bytes))?,
        sent_at: row.get::<_, Option<i64>>(7).map_err(&db)?.map(Timestamp),
        acknowledged_at: row.get::<_, Option<i64>>(8).map_err(&db)?.map(Timestamp),
    })
}

fn entry_from_row(at: At<'_>, row: &Row<'_>) -> Result<JournalEntry, JournalError> {
    let db = at.db();
    let seq: i64 = row.get(0).map_err(&db)?;
    let payment: String = row.get(1).map_err(&db)?;
    let corrupt =
        |column: &'static str, found: &dyn std::fmt::Display| at.corrupt(&payment, column, found);
    let pan_sequence: i64 = row.get(5).map_err(&db)?;
    let atc: i64 = row.get(6).map_err(&db)?;
    let amount: Option<i64> = row.get(7).map_err(&db)?;
    let currency: i64 = row.get(8).map_err(&db)?;
    let state: String = row.get(9).map_err(&db)?;
    let batch: Option<i64> = row.get(10).map_err(&db)?;
    Ok(JournalEntry {
        seq: u64::try_from(seq).map_err(|_| corrupt("seq", &seq))?,
        payment: PaymentId(payment.clone()),
        purchase: row.get(2).map_err(&db)?,
        merchant: MerchantId(row.get(3).map_err(&db)?),
        pan: row.get(4).map_err(&db)?,
        pan_sequence: u8::try_from(pan_sequence)
            .map_err(|_| corrupt("pan_sequence", &pan_sequence))?,
        atc: u16::try_from(atc).map_err(|_| corrupt("atc", &atc))?,
        amount_minor: amount
            .map(|amount| u64::try_from(amount).map_err(|_| corrupt("amount_minor", &amount)))
            .transpose()?,
        currency: u16::try_from(currency).map_err(|_| corrupt("currency", &currency))?,
        state: TransactionState::from_name(&state).ok_or_else(|| corrupt("state", &state))?,
        batch: batch
            .map(|batch| u64::try_from(batch).map_err(|_| corrupt("batch", &batch)))
            .transpose()?,
        authorisation_code: row.get(11).map_err(&db)?,
        recorded_at: Timestamp(row.get(12).map_err(&db)?),
        updated_at: Timestamp(row.get(13).map_err(&db)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acquirer::batch::read_batch;
    use crate::acquirer::card::{CardHistory, CardKey};
    use crate::messages::{
        CardTransaction, Currency, Means, Money, PaymentRequest, PurchaseId, RefusalReason,
        TerminalId, Transaction,
    };

    const NOW: Timestamp = Timestamp(1_795_644_000_000);

    /// F for `payment`, paid by card `pan` with counter `atc`, `amount` euro cents.
    fn f(payment: &str, pan: &str, atc: u16, amount: u64) -> AcquirerTransaction {
        let money = Money::new(amount, Currency::EUR);
        let designation_digest = PaymentRequest::digest_designation("Report 2026");
        let nonce = [7u8; 16];
        let request = PaymentRequest {
            purchase: PurchaseId(format!("PUR-{payment}")),
            payment: PaymentId::from(payment),
            merchant: MerchantId::from("FRONT-END"),
            designation: "Report 2026".into(),
            designation_digest,
            amount: money,
            date: NOW,
            nonce,
            valid_until: NOW.plus_millis(60_000),
            accepted_means: vec![Means::BankCard],
        };
        let card = CardTransaction {
            pan: pan.into(),
            pan_sequence: 1,
            expiry: "281231".into(),
            aid: vec![0xA0, 0, 0, 0, 0x42, 0x10, 0x10],
            aip: [0x39, 0x00],
            atc,
            cid: 0x80,
            cryptogram: [1, 2, 3, 4, 5, 6, 7, 8],
            iad: vec![0x06, 0x01, 0x0A, 0x03, 0xA0, 0x00, 0x00],
            amount: money.emv_amount().unwrap(),
            amount_other: [0; 6],
            terminal_country: [0x02, 0x50],
            tvr: [0; 5],
            currency: Currency::EUR.emv_code(),
            date: NOW.emv_date(),
            transaction_type: 0,
            unpredictable_number: PaymentRequest::unpredictable_number(&nonce, &designation_digest),
            pin_verified: true,
        };
        AcquirerTransaction {
            acquirer: AcquirerId::from("ACQ-1"),
            merchant: MerchantId::from("FRONT-END"),
            transaction: Transaction {
                purchase: request.purchase.clone(),
                payment: request.payment.clone(),
                terminal: TerminalId::from("T-1"),
                means: Payment::BankCard(card),
            },
            request,
        }
    }

    fn positive(f: &AcquirerTransaction, code: &str) -> Acknowledgement {
        Acknowledgement {
            acquirer: f.acquirer.clone(),
            purchase: f.transaction.purchase.clone(),
            payment: f.transaction.payment.clone(),
            verdict: Verdict::Positive {
                authorisation_code: code.into(),
                response_code: *b"00",
                arpc: Some([9; 8]),
            },
        }
    }

    fn negative(f: &AcquirerTransaction, reason: RefusalReason) -> Acknowledgement {
        Acknowledgement {
            acquirer: f.acquirer.clone(),
            purchase: f.transaction.purchase.clone(),
            payment: f.transaction.payment.clone(),
            verdict: Verdict::Negative {
                response_code: reason.response_code(),
                reason,
                arpc: None,
            },
        }
    }

    fn reversal(payment: &str) -> Reversal {
        Reversal {
            acquirer: AcquirerId::from("ACQ-1"),
            purchase: PurchaseId(format!("PUR-{payment}")),
            payment: PaymentId::from(payment),
            reason: "the acquirer did not answer in time".into(),
        }
    }

    fn card_mut(f: &mut AcquirerTransaction) -> &mut CardTransaction {
        let Payment::BankCard(card) = &mut f.transaction.means;
        card
    }

    fn authorise(journal: &mut Journal, payment: &str, atc: u16, amount: u64) {
        let f = f(payment, "4970100000000014", atc, amount);
        journal.record(&f, &positive(&f, "A1B2C3"), NOW).unwrap();
    }

    fn states(journal: &Journal) -> Vec<(String, TransactionState, Option<u64>)> {
        let mut out = Vec::new();
        journal
            .transactions(&TransactionFilter::default(), |entry| {
                out.push((entry.payment.0, entry.state, entry.batch));
                Ok::<_, JournalError>(())
            })
            .unwrap();
        out
    }

    #[test]
    fn a_repeated_f_gets_the_stored_g_and_changes_nothing() {
        let mut journal = Journal::open_in_memory().unwrap();
        let first = f("PAY-1", "4970100000000014", 10, 1250);
        let g = positive(&first, "A1B2C3");
        assert_eq!(
            journal
                .acknowledgement_for(&first.transaction.payment)
                .unwrap(),
            None
        );
        assert_eq!(journal.record(&first, &g, NOW).unwrap(), g);
        // The same payment again, with another answer: the first stands.
        let refusal = negative(&first, RefusalReason::ReplayedCounter);
        assert_eq!(
            journal
                .record(&first, &refusal, NOW.plus_millis(5))
                .unwrap(),
            g
        );
        assert_eq!(
            journal
                .acknowledgement_for(&first.transaction.payment)
                .unwrap(),
            Some(g.clone())
        );
        let stored = journal
            .stored_transaction(&first.transaction.payment)
            .unwrap()
            .unwrap();
        assert_eq!(
            stored,
            StoredTransaction {
                transaction: first,
                acknowledgement: g,
                state: TransactionState::Authorised,
                batch: None,
            }
        );
        assert_eq!(states(&journal).len(), 1);
    }

    #[test]
    fn the_card_counter_is_raised_by_authorised_transactions_only() {
        let mut journal = Journal::open_in_memory().unwrap();
        let pan = "4970100000000014";
        // (payment, ATC, authorised?, last ATC afterwards)
        let steps: [(&str, u16, bool, Option<u16>); 5] = [
            ("PAY-1", 10, false, None),
            ("PAY-2", 5, true, Some(5)),
            ("PAY-3", 12, false, Some(5)),
            ("PAY-4", 11, true, Some(11)),
            // The rules refuse a lower ATC; were one authorised, the counter stays.
            ("PAY-5", 7, true, Some(11)),
        ];
        for (payment, atc, authorised, last) in steps {
            let f = f(payment, pan, atc, 100);
            let g = if authorised {
                positive(&f, "A1B2C3")
            } else {
                negative(&f, RefusalReason::AmountOutOfLimits)
            };
            journal.record(&f, &g, NOW).unwrap();
            assert_eq!(journal.card_last_atc(pan, 1).unwrap(), last, "{payment}");
        }
        assert_eq!(journal.card_last_atc(pan, 2).unwrap(), None);
        assert_eq!(journal.card_last_atc("4970100000000022", 1).unwrap(), None);
    }

    #[test]
    fn a_decision_of_the_rules_records_the_counter_it_names() {
        let mut journal = Journal::open_in_memory().unwrap();
        let refused = f("PAY-1", "4970100000000014", 20, 100);
        let key = CardKey {
            pan: "4970100000000014".into(),
            pan_sequence: 1,
        };
        // Authentic cryptogram refused on a limit: the rules ask to remember its ATC.
        let decision = Decision {
            acknowledgement: negative(&refused, RefusalReason::AmountOutOfLimits),
            card: key.clone(),
            record_atc: Some(20),
        };
        journal.record_decision(&refused, &decision, NOW).unwrap();
        assert_eq!(
            journal.card_history(&key).unwrap(),
            CardHistory { last_atc: Some(20) }
        );
        // A decision about another card is not this F's.
        let other = Decision {
            card: CardKey {
                pan: "4970100000000022".into(),
                pan_sequence: 1,
            },
            ..decision
        };
        let next = f("PAY-2", "4970100000000014", 21, 100);
        assert_eq!(
            journal
                .record_decision(&next, &other, NOW)
                .unwrap_err()
                .to_string(),
            "journal :memory:: record: payment PAY-2: the cards of F and the decision differ"
        );
    }

    #[test]
    fn reversals_in_every_state() {
        let mut journal = Journal::open_in_memory().unwrap();
        authorise(&mut journal, "PAY-BATCHED", 1, 100);
        journal.cut_off(NOW).unwrap().unwrap();
        authorise(&mut journal, "PAY-OPEN", 2, 100);
        let refused = f("PAY-REFUSED", "4970100000000014", 3, 100);
        journal
            .record(
                &refused,
                &negative(&refused, RefusalReason::CardExpired),
                NOW,
            )
            .unwrap();

        let cases = [
            ("PAY-OPEN", ReversalOutcome::Reversed),
            ("PAY-OPEN", ReversalOutcome::AlreadyReversed),
            ("PAY-UNSEEN", ReversalOutcome::Marked),
            ("PAY-UNSEEN", ReversalOutcome::Marked),
            ("PAY-REFUSED", ReversalOutcome::WasRefused),
            (
                "PAY-BATCHED",
                ReversalOutcome::AlreadyBatched {
                    batch: 1,
                    state: TransactionState::InBatch,
                },
            ),
        ];
        for (payment, outcome) in cases {
            assert_eq!(
                journal.reverse(&reversal(payment), NOW).unwrap(),
                outcome,
                "{payment}"
            );
        }
        journal.mark_sent(1, NOW).unwrap();
        assert_eq!(
            journal.reverse(&reversal("PAY-BATCHED"), NOW).unwrap(),
            ReversalOutcome::AlreadyBatched {
                batch: 1,
                state: TransactionState::Remitted
            }
        );
        let reversed: Vec<bool> = ["PAY-OPEN", "PAY-UNSEEN", "PAY-REFUSED", "PAY-BATCHED"]
            .iter()
            .map(|payment| journal.is_reversed(&PaymentId::from(*payment)).unwrap())
            .collect();
        assert_eq!(reversed, [true, true, false, false]);

        // The unseen payment arrives after all: it cannot be authorised...
        let late = f("PAY-UNSEEN", "4970100000000014", 9, 100);
        assert_eq!(
            journal
                .record(&late, &positive(&late, "A1B2C3"), NOW)
                .unwrap_err()
                .to_string(),
            "journal :memory:: record: payment PAY-UNSEEN was reversed before it arrived and cannot be authorised"
        );
        assert_eq!(
            journal
                .acknowledgement_for(&late.transaction.payment)
                .unwrap(),
            None
        );
        // ...but its refusal is kept like any other.
        let refusal = negative(&late, RefusalReason::AcquirerUnreachable);
        assert_eq!(journal.record(&late, &refusal, NOW).unwrap(), refusal);

        // Nothing reversed is ever cut off.
        assert_eq!(journal.cut_off(NOW).unwrap(), None);
        // A reversal naming another purchase for a recorded payment is refused.
        let mut wrong = reversal("PAY-REFUSED");
        wrong.purchase = PurchaseId::from("PUR-OTHER");
        assert_eq!(
            journal.reverse(&wrong, NOW).unwrap_err().to_string(),
            "journal :memory:: reverse: payment PAY-REFUSED: the purchase ids of the reversal and the recorded F differ"
        );
    }

    #[test]
    fn cut_off_takes_exactly_the_authorised_transactions_and_numbers_batches() {
        let mut journal = Journal::open_in_memory().unwrap();
        assert_eq!(journal.cut_off(NOW).unwrap(), None);
        authorise(&mut journal, "PAY-1", 1, 1250);
        authorise(&mut journal, "PAY-2", 2, 2500);
        authorise(&mut journal, "PAY-3", 3, 100);
        let refused = f("PAY-4", "4970100000000014", 4, 700);
        journal
            .record(
                &refused,
                &negative(&refused, RefusalReason::CardExpired),
                NOW,
            )
            .unwrap();
        journal.reverse(&reversal("PAY-3"), NOW).unwrap();

        let first = journal.cut_off(NOW).unwrap().unwrap();
        assert_eq!(
            (first.number, first.records, first.state),
            (1, 2, BatchState::Open)
        );
        assert_eq!(
            first.totals,
            [CurrencyTotal {
                currency: 978,
                records: 2,
                total_minor: 3750
            }]
        );
        assert_eq!(journal.cut_off(NOW).unwrap(), None, "nothing left to cut");

        authorise(&mut journal, "PAY-5", 5, 1);
        let second = journal.cut_off(NOW.plus_millis(1)).unwrap().unwrap();
        authorise(&mut journal, "PAY-6", 6, 2);
        let third = journal.cut_off(NOW.plus_millis(2)).unwrap().unwrap();
        assert_eq!(
            (second.number, second.records, third.number, third.records),
            (2, 1, 3, 1)
        );
        assert_eq!(journal.last_cutoff().unwrap(), Some(NOW.plus_millis(2)));
        assert_eq!(
            states(&journal),
            [
                ("PAY-1".into(), TransactionState::InBatch, Some(1)),
                ("PAY-2".into(), TransactionState::InBatch, Some(1)),
                ("PAY-3".into(), TransactionState::Reversed, None),
                ("PAY-4".into(), TransactionState::Refused, None),
                ("PAY-5".into(), TransactionState::InBatch, Some(2)),
                ("PAY-6".into(), TransactionState::InBatch, Some(3)),
            ]
        );
        assert_eq!(journal.batches().unwrap(), [first.clone(), second, third]);

        // The file written later is the one hashed at the cut-off.
        let mut file = Vec::new();
        let trailer = journal.write_batch(1, &mut file).unwrap();
        assert_eq!(
            (trailer.checksum, trailer.bytes),
            (first.checksum, first.bytes)
        );
        let mut payments = Vec::new();
        let verified =
            read_batch(&file[..], |record| payments.push(record.payment.0.clone())).unwrap();
        assert_eq!(verified.header, first.header());
        assert_eq!(payments, ["PAY-1", "PAY-2"]);
    }

    #[test]
    fn batches_go_open_sent_acknowledged() {
        let mut journal = Journal::open_in_memory().unwrap();
        authorise(&mut journal, "PAY-1", 1, 100);
        journal.cut_off(NOW).unwrap().unwrap();
        authorise(&mut journal, "PAY-2", 2, 100);
        journal.cut_off(NOW).unwrap().unwrap();
        let pending = |journal: &Journal| -> Vec<(u64, BatchState)> {
            journal
                .unacknowledged_batches()
                .unwrap()
                .iter()
                .map(|b| (b.number, b.state))
                .collect()
        };
        assert_eq!(
            pending(&journal),
            [(1, BatchState::Open), (2, BatchState::Open)]
        );
        journal.mark_sent(1, NOW.plus_millis(10)).unwrap();
        journal.mark_sent(1, NOW.plus_millis(20)).unwrap(); // again: nothing changes
        assert_eq!(
            journal.batch(1).unwrap().unwrap().sent_at,
            Some(NOW.plus_millis(10))
        );
        assert_eq!(
            pending(&journal),
            [(1, BatchState::Sent), (2, BatchState::Open)]
        );
        journal.mark_acknowledged(1, NOW.plus_millis(30)).unwrap();
        journal.mark_acknowledged(1, NOW.plus_millis(40)).unwrap();
        assert_eq!(
            journal.batch(1).unwrap().unwrap().acknowledged_at,
            Some(NOW.plus_millis(30))
        );
        assert_eq!(pending(&journal), [(2, BatchState::Open)]);
        assert_eq!(
            states(&journal),
            [
                (
                    "PAY-1".into(),
                    TransactionState::AcknowledgedByCentre,
                    Some(1)
                ),
                ("PAY-2".into(), TransactionState::InBatch, Some(2)),
            ]
        );
        let errors = [
            (
                journal.mark_sent(1, NOW).unwrap_err(),
                "journal :memory:: mark sent: batch 1 is already acknowledged",
            ),
            (
                journal.mark_sent(3, NOW).unwrap_err(),
                "journal :memory:: mark sent: no batch 3",
            ),
            (
                journal.mark_acknowledged(u64::MAX, NOW).unwrap_err(),
                "journal :memory:: mark acknowledged: no batch 18446744073709551615",
            ),
            (
                journal.write_batch(9, Vec::new()).unwrap_err(),
                "journal :memory:: write batch: no batch 9",
            ),
        ];
        for (error, text) in errors {
            assert_eq!(error.to_string(), text);
        }
        // Acknowledged without a recorded send (the file remitted by hand).
        journal.mark_acknowledged(2, NOW.plus_millis(50)).unwrap();
        let second = journal.batch(2).unwrap().unwrap();
        assert_eq!(
            (second.state, second.sent_at),
            (BatchState::Acknowledged, Some(NOW.plus_millis(50)))
        );
    }

    #[test]
    fn what_a_batch_cannot_carry_is_never_authorised() {
        let mut journal = Journal::open_in_memory().unwrap();
        let base = f("PAY-1", "4970100000000014", 1, 1250);
        let mut cases: Vec<(AcquirerTransaction, &str, &str)> = Vec::new();
        let mut amount = base.clone();
        card_mut(&mut amount).amount = Money::new(1251, Currency::EUR).emv_amount().unwrap();
        cases.push((
            amount,
            "A1B2C3",
            "field `amount`: expected the card's 9F02 equal to the request's amount",
        ));
        let mut currency = base.clone();
        card_mut(&mut currency).currency = Currency::USD.emv_code();
        cases.push((
            currency,
            "A1B2C3",
            "field `currency`: expected the card's 5F2A equal to the request's currency",
        ));
        let mut pan = base.clone();
        card_mut(&mut pan).pan = "49701000000000A4".into();
        cases.push((pan, "A1B2C3", "field `pan`: expected 12 to 19 digits"));
        let mut date = base.clone();
        card_mut(&mut date).date = [0x26, 0x1F, 0x01];
        cases.push((
            date,
            "A1B2C3",
            "field `date`: expected 6 digits YYMMDD (9A)",
        ));
        cases.push((
            base.clone(),
            "A1-2C3",
            "field `auth`: expected 6 letters or digits",
        ));
        for (f, code, expected) in cases {
            let error = journal
                .record(&f, &positive(&f, code), NOW)
                .unwrap_err()
                .to_string();
            assert_eq!(
                error,
                format!("journal :memory:: record: payment PAY-1 cannot be remitted: {expected}")
            );
        }
        // Refused, the same transaction is kept: it will never be remitted.
        let mut pan = base.clone();
        card_mut(&mut pan).pan = "49701000000000A4".into();
        journal
            .record(&pan, &negative(&pan, RefusalReason::InvalidPan), NOW)
            .unwrap();
        assert_eq!(
            states(&journal),
            [("PAY-1".into(), TransactionState::Refused, None)]
        );
    }

    #[test]
    fn messages_that_do_not_belong_together_are_refused() {
        let mut journal = Journal::open_in_memory().unwrap();
        let first = f("PAY-1", "4970100000000014", 1, 100);
        let mut other_payment = positive(&first, "A1B2C3");
        other_payment.payment = PaymentId::from("PAY-2");
        let mut other_acquirer = first.clone();
        other_acquirer.acquirer = AcquirerId::from("ACQ-2");
        let g2 = positive(&other_acquirer, "A1B2C3");
        let cases = [
            (
                journal.record(&first, &other_payment, NOW).unwrap_err(),
                "journal :memory:: record: payment PAY-1: the payment ids of F's request, F's transaction and G differ",
            ),
            (
                journal
                    .record(&other_acquirer, &positive(&first, "A1B2C3"), NOW)
                    .unwrap_err(),
                "journal :memory:: record: payment PAY-1: the acquirers of F and G differ",
            ),
        ];
        for (error, text) in cases {
            assert_eq!(error.to_string(), text);
        }
        journal
            .record(&first, &positive(&first, "A1B2C3"), NOW)
            .unwrap();
        assert_eq!(journal.acquirer().unwrap(), Some(AcquirerId::from("ACQ-1")));
        let mut second = other_acquirer.clone();
        second.transaction.payment = PaymentId::from("PAY-9");
        second.request.payment = PaymentId::from("PAY-9");
        let mut g2 = g2;
        g2.payment = PaymentId::from("PAY-9");
        assert_eq!(
            journal.record(&second, &g2, NOW).unwrap_err().to_string(),
            "journal :memory:: record: the journal is acquirer ACQ-1's, this is for ACQ-2"
        );
        let mut foreign = reversal("PAY-1");
        foreign.acquirer = AcquirerId::from("ACQ-2");
        assert_eq!(
            journal.reverse(&foreign, NOW).unwrap_err().to_string(),
            "journal :memory:: reverse: the journal is acquirer ACQ-1's, this is for ACQ-2"
        );
    }

    #[test]
    fn listing_filters_by_state_batch_payment_and_limit() {
        let mut journal = Journal::open_in_memory().unwrap();
        for (index, payment) in ["PAY-1", "PAY-2", "PAY-3"].iter().enumerate() {
            authorise(&mut journal, payment, index as u16 + 1, 100);
        }
        journal.cut_off(NOW).unwrap();
        authorise(&mut journal, "PAY-4", 4, 100);
        let list = |filter: TransactionFilter| -> Vec<String> {
            let mut out = Vec::new();
            journal
                .transactions(&filter, |entry| {
                    out.push(entry.payment.0);
                    Ok::<_, JournalError>(())
                })
                .unwrap();
            out
        };
        assert_eq!(
            list(TransactionFilter::default()),
            ["PAY-1", "PAY-2", "PAY-3", "PAY-4"]
        );
        assert_eq!(
            list(TransactionFilter {
                state: Some(TransactionState::Authorised),
                ..Default::default()
            }),
            ["PAY-4"]
        );
        assert_eq!(
            list(TransactionFilter {
                batch: Some(1),
                limit: Some(2),
                ..Default::default()
            }),
            ["PAY-1", "PAY-2"]
        );
        assert_eq!(
            list(TransactionFilter {
                payment: Some(PaymentId::from("PAY-3")),
                ..Default::default()
            }),
            ["PAY-3"]
        );
        assert!(
            list(TransactionFilter {
                batch: Some(u64::MAX),
                ..Default::default()
            })
            .is_empty()
        );
        // The PAN never shows in Debug.
        journal
            .transactions(&TransactionFilter::default(), |entry| {
                let text = format!("{entry:?}");
                assert!(
                    text.contains("497010******0014") && !text.contains("4970100000000014"),
                    "{text}"
                );
                Ok::<_, JournalError>(())
            })
            .unwrap();
    }
}
