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
//!   [`Journal::authorise_with`] also reads what the decision needs (the payment, the
//!   card's counter, a reversal) in that same transaction, so nothing changes between
//!   the reads and the write;
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
use crate::acquirer::card::{CardHistory, CardKey, Decision};
use crate::messages::{
    Acknowledgement, AcquirerId, AcquirerTransaction, CardTransaction, Currency, Means, MerchantId,
    Money, Payment, PaymentId, PaymentRequest, PurchaseId, RefusalReason, Reversal, ServiceId,
    SessionId, TerminalId, Timestamp, Transaction, Verdict,
};

/// The schema this build writes. It reads this one and [`OLDEST_SCHEMA_VERSION`],
/// which it upgrades in place; a journal of another version is refused rather than
/// guessed at.
///
/// - 1: F and G as JSON (layouts 1 and 2).
/// - 2 (2026-11-26): F and G in columns (layout 3). A build reading version 1 only would
///   find no JSON in the new rows: it refuses the file instead.
pub const SCHEMA_VERSION: i64 = 2;

/// The oldest schema this build reads (and upgrades to [`SCHEMA_VERSION`]).
pub const OLDEST_SCHEMA_VERSION: i64 = 1;

/// The revision of the schema's physical layout, kept in SQLite's `user_version` (0 in
/// files made before layouts were counted, which are layout 1). Layouts 1 and 2 changed
/// how the tables are checked and indexed; layout 3 changed where F and G are held,
/// with schema version 2. [`Journal::open`] brings an older layout up to this one
/// ([`upgrade_layout`]).
///
/// - 1: the first layout.
/// - 2 (2026-11-26): checks without `IN` lists; no index of states (the transactions
///   waiting for a cut-off are those after the last batch's, [`last_cut_seq`]); the
///   index of batches without the transactions in none; the cards clustered on their
///   key. An authorisation builds no temporary table and writes three or five pages to
///   the log (four on average) where it wrote six or seven.
/// - 3 (2026-11-26): F and G in columns rather than as JSON beside the columns that
///   already held most of them: the rest of F's request, its terminal, the card's
///   amount, currency and PIN check, G's response code, ARPC and reason. `f_json` and
///   `g_json` are kept for what the columns cannot state exactly ([`f_in_columns`],
///   [`g_in_columns`]) and for the rows recorded before. A purchase's row holds 0.46
///   KB of values where it held 1.6 KB, and an authorisation serialises nothing.
const LAYOUT: i64 = 3;

/// What a bank-card journal answers for a payment by another means.
pub(crate) const NOT_A_CARD_PAYMENT: &str =
    "a bank-card payment (this journal records no other means)";

/// The tables other than `transactions` and `cards`, which are as in layout 1.
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

/// The transactions, as layout 3 defines them.
const TRANSACTIONS_TABLE: &str = "
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
    -- The checks compare with `=` rather than `IN (...)`: SQLite evaluates a constant
    -- list of more than two values through a temporary b-tree built for each row it
    -- inserts (an insert in memory took 8.2 µs with the lists, 4.6 µs without).
    state TEXT NOT NULL CHECK (state = 'authorised' OR state = 'in-batch'
        OR state = 'remitted' OR state = 'acknowledged-by-centre' OR state = 'refused'
        OR state = 'reversed'),
    batch INTEGER REFERENCES batches (number) DEFERRABLE INITIALLY DEFERRED,
    recorded_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    -- F and G as JSON, where the columns do not hold them whole: in the rows recorded
    -- before layout 3, and for an F or G the columns cannot state exactly (an amount
    -- beyond 64-bit signed integers, a provision...). NULL otherwise.
    f_json TEXT,
    g_json TEXT,
    -- The rest of F (NULL where f_json holds it): its request's service, designation
    -- and digest, amount exponent, nonce, validity, accepted means (names, comma
    -- separated) and pseudo-session; E's terminal; the card's 9F02, 5F2A and PIN check.
    service TEXT,
    designation TEXT,
    designation_digest TEXT,
    amount_exponent INTEGER,
    nonce TEXT,
    valid_until INTEGER,
    accepted_means TEXT,
    session TEXT,
    terminal TEXT,
    card_amount TEXT,
    card_currency TEXT,
    pin_verified INTEGER,
    -- The rest of G (NULL where g_json holds it): the response code and ARPC, and a
    -- refusal's reason (NULL for a positive G, whose code is authorisation_code).
    response_code TEXT,
    arpc TEXT,
    refusal_reason TEXT,
    CHECK (f_json IS NOT NULL OR terminal IS NOT NULL),
    CHECK (g_json IS NOT NULL OR response_code IS NOT NULL),
    -- A transaction is in a batch exactly in the batch states.
    CHECK ((batch IS NOT NULL)
        = (state = 'in-batch' OR state = 'remitted' OR state = 'acknowledged-by-centre')),
    -- Only what was authorised has an authorisation code, and a remittable amount.
    CHECK ((authorisation_code IS NULL) = (state = 'refused')),
    CHECK (state = 'refused' OR amount_minor IS NOT NULL)
);
";

/// The index of `transactions` in layouts 2 and 3 besides the one SQLite keeps for `payment
/// UNIQUE`. Each commit writes to the log every page it changes, so recording a
/// transaction should change as few as it can: this index is partial, and there is no
/// index of states (the transactions waiting for a cut-off are found from the last
/// batch's, see [`last_cut_seq`]).
const TRANSACTIONS_INDEXES: &str = "
-- Each batch's transactions in their order, for writing and marking it, and the last
-- transaction cut off. A transaction enters it at its cut-off: recording one does not
-- touch it.
CREATE INDEX transactions_in_batch ON transactions (batch, seq) WHERE batch IS NOT NULL;
";

/// Each card's counter, as layouts 2 and 3 define it: one b-tree keyed by the card, where
/// layout 1 had a table and an index of its key.
const CARDS_TABLE: &str = "
CREATE TABLE cards (
    pan TEXT NOT NULL,
    pan_sequence INTEGER NOT NULL CHECK (pan_sequence BETWEEN 0 AND 255),
    last_atc INTEGER NOT NULL CHECK (last_atc BETWEEN 0 AND 65535),
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (pan, pan_sequence)
) WITHOUT ROWID;
";

/// The columns of `transactions` in layouts 1 and 2: what an upgrade copies.
const LAYOUT_1_2_COLUMNS: &str = "seq, payment, purchase, merchant, pan, pan_sequence, \
     expiry, atc, amount_minor, currency, requested_at, transaction_date, cryptogram, \
     amount_other, transaction_type, terminal_country, aid, aip, tvr, unpredictable_number, \
     cid, iad, authorisation_code, state, batch, recorded_at, updated_at, f_json, g_json";

/// From layout `from` (1 or 2) to this one, inside the transaction that opens the file
/// (all of it or nothing): the tables whose definition changed are renamed, made again,
/// refilled with every row as it was (`seq` included, so the order of recording
/// stands; F and G stay in their JSON, the new columns NULL) and the old ones dropped
/// with their indexes; then the new indexes are built. Nothing refers to
/// `transactions` or `cards`, so renaming them rewrites no other table. Once per file;
/// a journal of a million transactions takes about as long as a cut-off of them.
fn upgrade_layout(transaction: &rusqlite::Transaction<'_>, from: i64) -> rusqlite::Result<()> {
    if from < 2 {
        transaction.execute_batch("ALTER TABLE cards RENAME TO cards_layout_1;")?;
        transaction.execute_batch(CARDS_TABLE)?;
        transaction.execute_batch(
            "INSERT INTO cards SELECT * FROM cards_layout_1;
             DROP TABLE cards_layout_1;",
        )?;
    }
    transaction.execute_batch("ALTER TABLE transactions RENAME TO transactions_before;")?;
    transaction.execute_batch(TRANSACTIONS_TABLE)?;
    transaction.execute_batch(&format!(
        "INSERT INTO transactions ({LAYOUT_1_2_COLUMNS}) \
         SELECT {LAYOUT_1_2_COLUMNS} FROM transactions_before ORDER BY seq;
         DROP TABLE transactions_before;"
    ))?;
    transaction.execute_batch(TRANSACTIONS_INDEXES)?;
    transaction.pragma_update(None, "user_version", LAYOUT)
}

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

    pub(crate) fn from_name(name: &str) -> Option<BatchState> {
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
    /// A batch just cut off: open, its `header` and the `trailer` of its bytes.
    pub fn cut(header: BatchHeader, trailer: &BatchTrailer) -> BatchSummary {
        BatchSummary {
            number: header.number,
            acquirer: header.acquirer,
            cut_off_at: header.cut_off_at,
            state: BatchState::Open,
            records: header.records,
            totals: header.totals,
            checksum: trailer.checksum,
            bytes: trailer.bytes,
            sent_at: None,
            acknowledged_at: None,
        }
    }

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

impl ReversalOutcome {
    /// Whether the reversal is recorded (a marker in `reversals`), so that a later F for
    /// the payment is refused: yes unless there was nothing to cancel or it came too late.
    pub(crate) fn keeps_a_marker(&self) -> bool {
        matches!(
            self,
            ReversalOutcome::Reversed | ReversalOutcome::AlreadyReversed | ReversalOutcome::Marked
        )
    }
}

/// What a reversal does, given the transaction recorded for its payment as a store read
/// it (purchase, state's name, batch), or none: the one rule both journals apply.
///
/// # Errors
/// [`JournalError::Mismatch`] when the reversal names another purchase than the
/// recorded F; [`JournalError::Corrupt`] for a state or batch this code does not write.
pub(crate) fn reversal_outcome(
    at: At<'_>,
    reversal: &Reversal,
    recorded: Option<(String, String, Option<i64>)>,
) -> Result<ReversalOutcome, JournalError> {
    let payment = &reversal.payment;
    let Some((purchase, state_name, batch)) = recorded else {
        return Ok(ReversalOutcome::Marked);
    };
    if purchase != reversal.purchase.0.as_str() {
        return Err(at.mismatch(
            payment,
            "the purchase ids of the reversal and the recorded F",
        ));
    }
    let state = TransactionState::from_name(&state_name)
        .ok_or_else(|| at.corrupt(payment, "state", &state_name))?;
    Ok(match state {
        TransactionState::Authorised => ReversalOutcome::Reversed,
        TransactionState::Reversed => ReversalOutcome::AlreadyReversed,
        TransactionState::Refused => ReversalOutcome::WasRefused,
        TransactionState::InBatch
        | TransactionState::Remitted
        | TransactionState::AcknowledgedByCentre => {
            let batch = batch
                .and_then(|batch| u64::try_from(batch).ok())
                .ok_or_else(|| at.corrupt(payment, "batch", format!("{batch:?}")))?;
            ReversalOutcome::AlreadyBatched { batch, state }
        }
    })
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

/// What the journal knows when an F for a new payment arrives, read by
/// [`Journal::authorise_with`] in the transaction that records the decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Known {
    /// The card's history: its last ATC.
    pub history: CardHistory,
    /// Whether the front-end reversed the payment before F arrived (its reversal
    /// overtook F): then F must be refused.
    pub reversed: bool,
}

/// What [`Journal::authorise_with`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authorisation {
    /// The decision is recorded, on disk: its G may be sent.
    Recorded(Acknowledgement),
    /// The payment was already in the journal: nothing was decided and nothing changed.
    /// What is stored, for the caller to compare with the F it received.
    AlreadyRecorded(Box<StoredTransaction>),
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
    /// PostgreSQL failed ([`crate::acquirer::postgres::PgJournal`]): the server is
    /// unreachable, a constraint refused a row, a serialization failure outlasted the
    /// retries... `path` is the database's address without its password.
    #[error("journal {path}: {operation}: {source}")]
    Postgres {
        /// The database (`postgres://USER@HOST/DB`, never the password).
        path: String,
        /// The operation.
        operation: Operation,
        /// The client's error (a server error carries its SQLSTATE).
        #[source]
        source: postgres::Error,
    },
    /// The journal was called again from inside one of its own callbacks (a listing's
    /// or a batch's), which its one connection cannot serve: nothing was done.
    #[error("journal {path}: {operation}: called from inside another operation's callback")]
    Reentered {
        /// The database.
        path: String,
        /// The operation refused.
        operation: Operation,
    },
    /// The PostgreSQL database records a migration this build does not know: a newer
    /// build migrated it.
    #[error(
        "journal {path}: the database records migration {found}, which this build does not know (its newest is {known}): a newer build migrated it"
    )]
    MigrationVersion {
        /// The database's address, without its password.
        path: String,
        /// The first migration recorded that this build does not know.
        found: i64,
        /// The newest migration this build knows.
        known: i64,
    },
    /// The file's schema is of another version.
    #[error(
        "journal {path}: schema version {found} is not supported (this build reads {OLDEST_SCHEMA_VERSION} to {SCHEMA_VERSION})"
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
    /// The acquirer of `meta`, once read: it is written once, by the first transaction
    /// recorded, and never changes, so an authorisation need not read it again.
    acquirer: Option<AcquirerId>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal").field("path", &self.path).finish()
    }
}

/// Error constructors bound to a file and an operation (the PostgreSQL journal uses
/// them too, with its address for a path).
#[derive(Clone, Copy)]
pub(crate) struct At<'a> {
    pub(crate) path: &'a str,
    pub(crate) operation: Operation,
}

impl<'a> At<'a> {
    fn db(self) -> impl Fn(rusqlite::Error) -> JournalError + 'a {
        move |source| JournalError::Database {
            path: self.path.to_owned(),
            operation: self.operation,
            source,
        }
    }

    pub(crate) fn corrupt(
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

    pub(crate) fn json(
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

    pub(crate) fn mismatch(self, payment: &PaymentId, what: &'static str) -> JournalError {
        JournalError::Mismatch {
            path: self.path.to_owned(),
            operation: self.operation,
            payment: payment.clone(),
            what,
        }
    }

    pub(crate) fn unknown_batch(self, number: u64) -> JournalError {
        JournalError::UnknownBatch {
            path: self.path.to_owned(),
            operation: self.operation,
            number,
        }
    }
}

/// A write transaction begun with `BEGIN IMMEDIATE` (the file's write lock taken at
/// once, so the look-ups it makes cannot be overtaken by another writer), committed by
/// [`WriteTransaction::commit`] and rolled back when dropped otherwise, like
/// `rusqlite::Transaction`; but its `BEGIN`, `COMMIT` and `ROLLBACK` are statements
/// prepared once and cached, where `rusqlite` compiles them at every transaction
/// (about a microsecond each, on the path of every authorisation).
struct WriteTransaction<'c> {
    connection: &'c Connection,
}

impl<'c> WriteTransaction<'c> {
    fn begin(connection: &'c Connection) -> rusqlite::Result<WriteTransaction<'c>> {
        connection
            .prepare_cached("BEGIN IMMEDIATE")
            .and_then(|mut statement| statement.execute([]))?;
        Ok(WriteTransaction { connection })
    }

    fn commit(self) -> rusqlite::Result<()> {
        self.connection
            .prepare_cached("COMMIT")
            .and_then(|mut statement| statement.execute([]))?;
        Ok(())
    }
}

impl std::ops::Deref for WriteTransaction<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.connection
    }
}

impl Drop for WriteTransaction<'_> {
    fn drop(&mut self) {
        // Not committed (an error, or nothing to write): undo whatever was done. After
        // a successful COMMIT the connection is back in autocommit mode and there is
        // nothing to undo; a failed COMMIT may leave the transaction open.
        if !self.connection.is_autocommit() {
            let _ = self
                .connection
                .prepare_cached("ROLLBACK")
                .and_then(|mut statement| statement.execute([]));
        }
    }
}

/// A batch number as SQLite stores it; `None` beyond its integers (no such batch).
pub(crate) fn batch_key(number: u64) -> Option<i64> {
    i64::try_from(number).ok()
}

fn hex_array<const N: usize>(text: &str) -> Option<[u8; N]> {
    let mut bytes = [0u8; N];
    hex::decode_to_slice(text, &mut bytes).ok()?;
    Some(bytes)
}

pub(crate) const TRANSACTION_COLUMNS: &str = "seq, payment, purchase, merchant, pan, pan_sequence, atc, \
     amount_minor, currency, state, batch, authorisation_code, recorded_at, updated_at";

pub(crate) const RECORD_COLUMNS: &str = "payment, merchant, pan, pan_sequence, expiry, atc, amount_minor, \
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
        // G is sent after `record` returns: the journal is durable (WAL, FULL).
        crate::acquirer::sqlite::make_durable(&connection).map_err(at.db())?;
        // wal_autocheckpoint stays at SQLite's default (1000 pages, every ~250
        // authorisations): the log is then rewritten from its start, within the file's
        // size. A larger one was slower here (4000 pages: 3,400 against 4,600 durable
        // authorisations/s), the log growing for longer, and a write that grows a file
        // costs its fsync an update of the file's size as well.
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
            let found = found.unwrap_or(0);
            if !(OLDEST_SCHEMA_VERSION..=SCHEMA_VERSION).contains(&found) {
                return Err(JournalError::SchemaVersion {
                    path: path.clone(),
                    found,
                });
            }
            let layout: i64 = transaction
                .pragma_query_value(None, "user_version", |row| row.get(0))
                .map_err(at.db())?;
            if layout < LAYOUT {
                upgrade_layout(&transaction, layout).map_err(at.db())?;
            }
            if found < SCHEMA_VERSION {
                transaction
                    .prepare_cached("INSERT INTO schema_version (version) VALUES (?1)")
                    .and_then(|mut statement| statement.execute([SCHEMA_VERSION]))
                    .map_err(at.db())?;
            }
        } else {
            for part in [
                SCHEMA,
                TRANSACTIONS_TABLE,
                TRANSACTIONS_INDEXES,
                CARDS_TABLE,
            ] {
                transaction.execute_batch(part).map_err(at.db())?;
            }
            transaction
                .prepare_cached("INSERT INTO schema_version (version) VALUES (?1)")
                .and_then(|mut statement| statement.execute([SCHEMA_VERSION]))
                .map_err(at.db())?;
            transaction
                .pragma_update(None, "user_version", LAYOUT)
                .map_err(at.db())?;
        }
        transaction.commit().map_err(at.db())?;
        Ok(Journal {
            connection,
            path,
            acquirer: None,
        })
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
            .map(|found| found.map(AcquirerId::from))
            .map_err(at.db())
    }

    /// The acknowledgement already given for `payment`, if any: a repeated F gets it
    /// again, unchanged.
    pub fn acknowledgement_for(
        &self,
        payment: &PaymentId,
    ) -> Result<Option<Acknowledgement>, JournalError> {
        stored_acknowledgement(&self.connection, self.at(Operation::Read), payment)
    }

    /// F, G and where the transaction is, for `payment`.
    pub fn stored_transaction(
        &self,
        payment: &PaymentId,
    ) -> Result<Option<StoredTransaction>, JournalError> {
        stored_transaction(&self.connection, self.at(Operation::Read), payment)
    }

    /// The highest ATC recorded for the card (PAN, PAN sequence number), if seen.
    pub fn card_last_atc(&self, pan: &str, pan_sequence: u8) -> Result<Option<u16>, JournalError> {
        card_last_atc(
            &self.connection,
            self.at(Operation::Read),
            pan,
            pan_sequence,
        )
    }

    /// The card's history as the banking rules take it ([`crate::acquirer::card`]).
    pub fn card_history(&self, card: &CardKey) -> Result<CardHistory, JournalError> {
        Ok(CardHistory {
            last_atc: self.card_last_atc(&card.pan, card.pan_sequence)?,
        })
    }

    /// Whether the front-end has reversed `payment`, seen or not: a later F for it must
    /// be refused.
    pub fn is_reversed(&self, payment: &PaymentId) -> Result<bool, JournalError> {
        is_reversed(&self.connection, self.at(Operation::Read), payment)
    }

    /// Decides F and records the decision in **one** SQLite transaction, returning once
    /// it is on disk: the look-ups the decision needs (is the payment already recorded,
    /// was it reversed, the card's last ATC) are read in the transaction that writes
    /// it, so nothing can change between them and the write, and the file is locked
    /// once instead of four times.
    ///
    /// - A payment already in the journal is not decided again: `decide` is not called,
    ///   nothing changes, and what is stored comes back
    ///   ([`Authorisation::AlreadyRecorded`]).
    /// - Otherwise `decide` gets what the journal knows ([`Known`]) and its decision is
    ///   recorded as [`Journal::record_decision`] records one, with the same checks and
    ///   errors ([`Authorisation::Recorded`]).
    pub fn authorise_with(
        &mut self,
        f: &AcquirerTransaction,
        now: Timestamp,
        decide: impl FnOnce(Known) -> Decision,
    ) -> Result<Authorisation, JournalError> {
        let at = At {
            path: &self.path,
            operation: Operation::Record,
        };
        let payment = &f.transaction.payment;
        let Some(card) = f.transaction.means.card() else {
            return Err(at.mismatch(payment, NOT_A_CARD_PAYMENT));
        };
        let transaction = WriteTransaction::begin(&self.connection).map_err(at.db())?;
        // One statement for the three look-ups: a new payment is the usual case.
        let (recorded, last_atc, reversed): (bool, Option<i64>, bool) = transaction
            .prepare_cached(LOOK_UP_NEW_PAYMENT)
            .and_then(|mut statement| {
                statement.query_row(
                    params![payment.0.as_str(), card.pan.as_str(), card.pan_sequence],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                )
            })
            .map_err(at.db())?;
        if recorded && let Some(stored) = stored_transaction(&transaction, at, payment)? {
            return Ok(Authorisation::AlreadyRecorded(Box::new(stored)));
        }
        let acquirer = check_acquirer(&transaction, at, self.acquirer.as_ref(), &f.acquirer)?;
        let known = Known {
            history: CardHistory {
                last_atc: last_atc_of(at, &card.pan, last_atc)?,
            },
            reversed,
        };
        let decision = decide(known);
        if decision.card.pan != card.pan.as_str() || decision.card.pan_sequence != card.pan_sequence
        {
            return Err(at.mismatch(payment, "the cards of F and the decision"));
        }
        let g = decision.acknowledgement;
        check_ids(at, f, &g)?;
        let entry = NewEntry {
            f,
            g: &g,
            record_atc: decision.record_atc,
            reversed: known.reversed,
            now,
        };
        insert_decision(&transaction, at, entry)?;
        transaction.commit().map_err(at.db())?;
        self.acquirer = Some(acquirer);
        Ok(Authorisation::Recorded(g))
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
        let Some(card) = transaction.transaction.means.card() else {
            return Err(self
                .at(Operation::Record)
                .mismatch(&transaction.transaction.payment, NOT_A_CARD_PAYMENT));
        };
        if decision.card.pan != card.pan.as_str() || decision.card.pan_sequence != card.pan_sequence
        {
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
        check_ids(at, f, g)?;
        let transaction = WriteTransaction::begin(&self.connection).map_err(at.db())?;
        if let Some(stored) = stored_acknowledgement(&transaction, at, payment)? {
            return Ok(stored);
        }
        let acquirer = check_acquirer(&transaction, at, self.acquirer.as_ref(), &f.acquirer)?;
        // Only a positive G has to know: a reversed payment may still be refused.
        let reversed = g.verdict.is_positive() && is_reversed(&transaction, at, payment)?;
        let entry = NewEntry {
            f,
            g,
            record_atc,
            reversed,
            now,
        };
        insert_decision(&transaction, at, entry)?;
        transaction.commit().map_err(at.db())?;
        self.acquirer = Some(acquirer);
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
            .prepare_cached(RAISE_CARD_ATC)
            .and_then(|mut statement| {
                statement.execute(params![card.pan, card.pan_sequence, atc, now.0])
            })
            .map_err(at.db())?;
        Ok(())
    }

    /// Reads the card's history, lets `decide` judge a cryptogram that is not a payment
    /// (a cardholder identification) with it, and raises the card's last ATC to the
    /// counter `decide` returns, all in one SQLite transaction: no other counter of the
    /// card can be recorded between the read and the raise, so one cryptogram is
    /// never accepted twice ([`Journal::raise_card_atc`] alone cannot promise that).
    pub fn spend_card_atc_with(
        &mut self,
        card: &crate::acquirer::card::CardKey,
        now: Timestamp,
        decide: impl FnOnce(CardHistory) -> Option<u16>,
    ) -> Result<(), JournalError> {
        let at = At {
            path: &self.path,
            operation: Operation::Record,
        };
        let transaction = WriteTransaction::begin(&self.connection).map_err(at.db())?;
        let history = CardHistory {
            last_atc: card_last_atc(&transaction, at, &card.pan, card.pan_sequence)?,
        };
        if let Some(atc) = decide(history) {
            transaction
                .prepare_cached(RAISE_CARD_ATC)
                .and_then(|mut statement| {
                    statement.execute(params![card.pan, card.pan_sequence, atc, now.0])
                })
                .map_err(at.db())?;
        }
        transaction.commit().map_err(at.db())
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
            && acquirer != reversal.acquirer.0.as_str()
        {
            return Err(JournalError::ForeignAcquirer {
                path: self.path.clone(),
                operation: Operation::Reverse,
                journal: AcquirerId::from(acquirer),
                received: reversal.acquirer.clone(),
            });
        }
        let row: Option<(String, String, Option<i64>)> = transaction
            .prepare_cached("SELECT purchase, state, batch FROM transactions WHERE payment = ?1")
            .and_then(|mut statement| {
                statement.query_row([payment.0.as_str()], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })
            })
            .optional()
            .map_err(at.db())?;
        let outcome = reversal_outcome(at, reversal, row)?;
        if outcome == ReversalOutcome::Reversed {
            transaction
                .prepare_cached(
                    "UPDATE transactions SET state = 'reversed', updated_at = ?2 \
                     WHERE payment = ?1",
                )
                .and_then(|mut statement| statement.execute(params![payment.0.as_str(), now.0]))
                .map_err(at.db())?;
        }
        if !outcome.keeps_a_marker() {
            return Ok(outcome);
        }
        transaction
            .prepare_cached(
                "INSERT INTO reversals (payment, purchase, acquirer, reason, received_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (payment) DO NOTHING",
            )
            .and_then(|mut statement| {
                statement.execute(params![
                    payment.0.as_str(),
                    reversal.purchase.0.as_str(),
                    reversal.acquirer.0.as_str(),
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
        let cut = last_cut_seq(&transaction, at)?;
        let pending: bool = transaction
            .prepare_cached(ANY_PENDING)
            .and_then(|mut statement| statement.query_row([cut], |row| row.get(0)))
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
            .prepare_cached(CUT_OFF_PENDING)
            .and_then(|mut statement| statement.execute(params![number, now.0, cut]))
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
            acquirer: AcquirerId::from(acquirer),
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
                    header.acquirer.0.as_str(),
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
        Ok(Some(BatchSummary::cut(header, &trailer)))
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
    ///
    /// It reads the transactions recorded since the last cut-off (layout 1 read every
    /// authorised one, through its index of states and then the table).
    pub fn oldest_pending(&self) -> Result<Option<Timestamp>, JournalError> {
        let at = self.at(Operation::Read);
        let cut = last_cut_seq(&self.connection, at)?;
        self.connection
            .prepare_cached(OLDEST_PENDING)
            .and_then(|mut statement| {
                statement.query_row([cut], |row| row.get::<_, Option<i64>>(0))
            })
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

/// Records a transaction (`batch` is NULL until its cut-off; `recorded_at` and
/// `updated_at` are both ?24).
const INSERT_TRANSACTION: &str = "INSERT INTO transactions (payment, purchase, merchant, pan, \
     pan_sequence, expiry, atc, amount_minor, currency, requested_at, transaction_date, \
     cryptogram, amount_other, transaction_type, terminal_country, aid, aip, tvr, \
     unpredictable_number, cid, iad, authorisation_code, state, batch, recorded_at, updated_at, \
     f_json, g_json, service, designation, designation_digest, amount_exponent, nonce, \
     valid_until, accepted_means, session, terminal, card_amount, card_currency, pin_verified, \
     response_code, arpc, refusal_reason) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, \
     ?19, ?20, ?21, ?22, ?23, NULL, ?24, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32, ?33, \
     ?34, ?35, ?36, ?37, ?38, ?39, ?40, ?41)";

/// Raises a card's last ATC to ?3, never lowering it, and makes the card known.
const RAISE_CARD_ATC: &str = "INSERT INTO cards (pan, pan_sequence, last_atc, updated_at) \
     VALUES (?1, ?2, ?3, ?4) ON CONFLICT (pan, pan_sequence) DO UPDATE SET \
     last_atc = max(last_atc, excluded.last_atc), updated_at = excluded.updated_at";

/// The highest `seq` of the last batch, 0 before the first ([`last_cut_seq`]).
const LAST_CUT_SEQ: &str = "SELECT coalesce(max(seq), 0) FROM transactions \
     WHERE batch = (SELECT max(number) FROM batches)";

/// Whether a transaction after ?1 (the last cut off) waits for a cut-off.
const ANY_PENDING: &str =
    "SELECT EXISTS (SELECT 1 FROM transactions WHERE seq > ?1 AND state = 'authorised')";

/// Moves the transactions after ?3 that wait for a cut-off into batch ?1.
const CUT_OFF_PENDING: &str = "UPDATE transactions SET state = 'in-batch', batch = ?1, \
     updated_at = ?2 WHERE seq > ?3 AND state = 'authorised'";

/// When the oldest transaction after ?1 that waits for a cut-off was recorded.
const OLDEST_PENDING: &str =
    "SELECT min(recorded_at) FROM transactions WHERE seq > ?1 AND state = 'authorised'";

/// Upper-case hexadecimal text of a value, for a TEXT column: on the stack for the
/// values a transaction has (up to 32 bytes, the longest IAD), where `hex::encode_upper`
/// allocated a string for each of ten columns. Longer values (a refused F may carry
/// anything) are encoded on the heap.
enum HexText {
    /// Up to 32 bytes: `len` characters of `text`.
    Short { text: [u8; 64], len: usize },
    /// Longer.
    Long(String),
}

impl HexText {
    fn of(bytes: &[u8]) -> HexText {
        let len = bytes.len().saturating_mul(2);
        let mut text = [0u8; 64];
        if let Some(out) = text.get_mut(..len)
            && hex::encode_to_slice(bytes, &mut *out).is_ok()
        {
            out.make_ascii_uppercase();
            return HexText::Short { text, len };
        }
        HexText::Long(hex::encode_upper(bytes))
    }
}

impl rusqlite::ToSql for HexText {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        let text = match self {
            HexText::Short { text, len } => text.get(..*len).unwrap_or_default(),
            HexText::Long(text) => text.as_bytes(),
        };
        Ok(rusqlite::types::ToSqlOutput::Borrowed(
            rusqlite::types::ValueRef::Text(text),
        ))
    }
}

/// The highest `seq` cut off so far (0 before the first batch): the last transaction of
/// the last batch. Every transaction waiting for a cut-off comes after it, because
/// `seq` only grows (rows are never deleted, and SQLite numbers a new row one past the
/// highest) and a cut-off takes every transaction authorised before it: so the pending
/// ones are `seq > last_cut_seq AND state = 'authorised'`, found without an index of
/// states that every authorisation would have to write (a page more per commit).
fn last_cut_seq(connection: &Connection, at: At<'_>) -> Result<i64, JournalError> {
    connection
        .prepare_cached(LAST_CUT_SEQ)
        .and_then(|mut statement| statement.query_row([], |row| row.get(0)))
        .map_err(at.db())
}

/// The ids of F and G must name the same payment, purchase and acquirer.
pub(crate) fn check_ids(
    at: At<'_>,
    f: &AcquirerTransaction,
    g: &Acknowledgement,
) -> Result<(), JournalError> {
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
    Ok(())
}

/// The G stored for `payment`, read through `connection` (the journal's, or a
/// transaction's).
fn stored_acknowledgement(
    connection: &Connection,
    at: At<'_>,
    payment: &PaymentId,
) -> Result<Option<Acknowledgement>, JournalError> {
    let mut statement = connection
        .prepare_cached(concat!(
            "SELECT ",
            g_columns!(),
            " FROM transactions WHERE payment = ?1"
        ))
        .map_err(at.db())?;
    let mut rows = statement.query([payment.0.as_str()]).map_err(at.db())?;
    let Some(row) = rows.next().map_err(at.db())? else {
        return Ok(None);
    };
    stored_g(at, payment, row).map(Some)
}

/// F, G and the state stored for `payment`.
fn stored_transaction(
    connection: &Connection,
    at: At<'_>,
    payment: &PaymentId,
) -> Result<Option<StoredTransaction>, JournalError> {
    let mut statement = connection
        .prepare_cached(concat!(
            "SELECT ",
            g_columns!(),
            ", ",
            f_columns!(),
            ", state, batch FROM transactions WHERE payment = ?1"
        ))
        .map_err(at.db())?;
    let mut rows = statement.query([payment.0.as_str()]).map_err(at.db())?;
    let Some(row) = rows.next().map_err(at.db())? else {
        return Ok(None);
    };
    let state: String = row.get("state").map_err(at.db())?;
    let batch: Option<i64> = row.get("batch").map_err(at.db())?;
    Ok(Some(StoredTransaction {
        transaction: stored_f(at, payment, row)?,
        acknowledgement: stored_g(at, payment, row)?,
        state: TransactionState::from_name(&state)
            .ok_or_else(|| at.corrupt(payment, "state", &state))?,
        batch: batch
            .map(|batch| u64::try_from(batch).map_err(|_| at.corrupt(payment, "batch", batch)))
            .transpose()?,
    }))
}

/// What [`stored_g`] reads: G's columns, its JSON, and the journal's acquirer. Macros
/// rather than constants, so that each journal's SELECT (`?1` here, `$1` in
/// PostgreSQL) is one string made at compile time, not formatted at every read.
macro_rules! g_columns {
    () => {
        "purchase, authorisation_code, response_code, arpc, refusal_reason, g_json, \
         (SELECT value FROM meta WHERE key = 'acquirer') AS acquirer"
    };
}

/// What [`stored_f`] reads besides [`g_columns!`].
macro_rules! f_columns {
    () => {
        "merchant, pan, pan_sequence, expiry, atc, amount_minor, currency, requested_at, \
         transaction_date, cryptogram, amount_other, transaction_type, terminal_country, aid, \
         aip, tvr, unpredictable_number, cid, iad, f_json, service, designation, \
         designation_digest, amount_exponent, nonce, valid_until, accepted_means, session, \
         terminal, card_amount, card_currency, pin_verified"
    };
}

pub(crate) use {f_columns, g_columns};

/// What a row holds of F and G besides the columns both journals fill from F's fields:
/// their JSON where the columns cannot state them ([`f_in_columns`], [`g_in_columns`]),
/// and G's verdict in columns.
pub(crate) struct StoredAs<'g> {
    /// F as JSON, or `None` when the columns state it.
    pub(crate) f_json: Option<String>,
    /// G as JSON, or `None` when the columns state it.
    pub(crate) g_json: Option<String>,
    /// G's response code.
    pub(crate) response_code: &'g [u8; 2],
    /// G's ARPC, when it has one.
    pub(crate) arpc: &'g Option<[u8; 8]>,
    /// A refusal's reason as messages name it; `None` for a positive G.
    pub(crate) refusal_reason: Option<String>,
}

/// [`StoredAs`] for F and G.
pub(crate) fn stored_as<'g>(
    at: At<'_>,
    f: &AcquirerTransaction,
    g: &'g Acknowledgement,
) -> Result<StoredAs<'g>, JournalError> {
    let payment = &f.transaction.payment;
    let f_json = if f_in_columns(f) {
        None
    } else {
        Some(serde_json::to_string(f).map_err(at.json(payment, "transaction F"))?)
    };
    let g_json = if g_in_columns(g) {
        None
    } else {
        Some(serde_json::to_string(g).map_err(at.json(payment, "acknowledgement G"))?)
    };
    let (response_code, arpc, refusal_reason) = match &g.verdict {
        Verdict::Positive {
            response_code,
            arpc,
            ..
        } => (response_code, arpc, None),
        Verdict::Negative {
            reason,
            response_code,
            arpc,
        } => (
            response_code,
            arpc,
            Some(refusal_name(at, payment, reason)?),
        ),
    };
    Ok(StoredAs {
        f_json,
        g_json,
        response_code,
        arpc,
        refusal_reason,
    })
}

/// Whether the columns state F exactly, so that no JSON of it is stored. They do for a
/// bank-card F as the front-end makes it; not for a provision (a wallet's), a request
/// naming another merchant than F, or an amount beyond 64-bit signed integers. (The
/// ids and the acquirer need no column of their own: the journal refuses an F whose
/// request, transaction and G disagree on them, or of another acquirer.)
fn f_in_columns(f: &AcquirerTransaction) -> bool {
    f.provision.is_none()
        && f.request.merchant == f.merchant
        && i64::try_from(f.request.amount.minor).is_ok()
}

/// Whether the columns state G exactly: unless it carries a provision (a wallet's).
fn g_in_columns(g: &Acknowledgement) -> bool {
    g.provision.is_none()
}

/// A refusal reason as messages write it (`card-expired`).
fn refusal_name(
    at: At<'_>,
    payment: &PaymentId,
    reason: &RefusalReason,
) -> Result<String, JournalError> {
    match serde_json::to_value(reason).map_err(at.json(payment, "refusal reason"))? {
        serde_json::Value::String(name) => Ok(name),
        other => Err(at.corrupt(payment, "refusal_reason", other)),
    }
}

/// The accepted means as the `accepted_means` column holds them: names, comma
/// separated (no name has a comma).
pub(crate) fn means_text(means: &[Means]) -> std::borrow::Cow<'static, str> {
    match means {
        [] => "".into(),
        [one] => one.name().into(),
        [Means::BankCard, Means::VirtualWallet] => "bank-card,virtual-wallet".into(),
        more => more
            .iter()
            .map(|means| means.name())
            .collect::<Vec<_>>()
            .join(",")
            .into(),
    }
}

/// G from the row [`g_columns!`] selected: from its JSON when it has one.
pub(crate) fn stored_g<R: StoredRow + ?Sized>(
    at: At<'_>,
    payment: &PaymentId,
    row: &R,
) -> Result<Acknowledgement, JournalError> {
    let column = StoredColumns { at, payment, row };
    if let Some(json) = column.optional_text("g_json")? {
        return serde_json::from_str(&json).map_err(at.json(payment, "stored acknowledgement G"));
    }
    let response_code = column.hex::<2>("response_code")?;
    let arpc = column
        .optional_text("arpc")?
        .map(|text| hex_array::<8>(&text).ok_or_else(|| at.corrupt(payment, "arpc", &text)))
        .transpose()?;
    let verdict = match column.optional_text("refusal_reason")? {
        None => Verdict::Positive {
            authorisation_code: column
                .optional_text("authorisation_code")?
                .ok_or_else(|| at.corrupt(payment, "authorisation_code", "NULL"))?
                .into(),
            response_code,
            arpc,
        },
        Some(name) => Verdict::Negative {
            reason: serde_json::from_value(serde_json::Value::String(name.clone()))
                .map_err(|_| at.corrupt(payment, "refusal_reason", &name))?,
            response_code,
            arpc,
        },
    };
    Ok(Acknowledgement {
        acquirer: column.acquirer()?,
        purchase: column.text("purchase")?.into(),
        payment: payment.clone(),
        verdict,
        provision: None,
    })
}

/// F from the row [`g_columns!`] and [`f_columns!`] selected: from its JSON when it has
/// one.
pub(crate) fn stored_f<R: StoredRow + ?Sized>(
    at: At<'_>,
    payment: &PaymentId,
    row: &R,
) -> Result<AcquirerTransaction, JournalError> {
    let column = StoredColumns { at, payment, row };
    if let Some(json) = column.optional_text("f_json")? {
        return serde_json::from_str(&json).map_err(at.json(payment, "stored transaction F"));
    }
    let purchase = PurchaseId::from(column.text("purchase")?);
    let merchant = MerchantId::from(column.text("merchant")?);
    let minor = column.number::<i64>("amount_minor")?;
    let card = CardTransaction {
        pan: column.text("pan")?.into(),
        pan_sequence: column.number::<u8>("pan_sequence")?,
        expiry: column.text("expiry")?.into(),
        aid: column.hex_vec("aid")?,
        aip: column.hex("aip")?,
        atc: column.number::<u16>("atc")?,
        cid: column.number::<u8>("cid")?,
        cryptogram: column.hex("cryptogram")?,
        iad: column.hex_vec("iad")?,
        amount: column.hex("card_amount")?,
        amount_other: column.hex("amount_other")?,
        terminal_country: column.hex("terminal_country")?,
        tvr: column.hex("tvr")?,
        currency: column.hex("card_currency")?,
        date: column.hex("transaction_date")?,
        transaction_type: column.hex::<1>("transaction_type")?[0],
        unpredictable_number: column.hex("unpredictable_number")?,
        pin_verified: column.flag("pin_verified")?,
    };
    let means_text = column.text("accepted_means")?;
    let accepted_means = match means_text.as_str() {
        "" => Vec::new(),
        text => text
            .split(',')
            .map(|name| {
                Means::from_name(name).ok_or_else(|| at.corrupt(payment, "accepted_means", text))
            })
            .collect::<Result<_, _>>()?,
    };
    Ok(AcquirerTransaction {
        acquirer: column.acquirer()?,
        merchant: merchant.clone(),
        request: PaymentRequest {
            purchase: purchase.clone(),
            payment: payment.clone(),
            merchant,
            service: ServiceId::from(column.text("service")?),
            designation: column.text("designation")?.into(),
            designation_digest: column.hex("designation_digest")?,
            amount: Money {
                minor: u64::try_from(minor)
                    .map_err(|_| at.corrupt(payment, "amount_minor", minor))?,
                currency: Currency {
                    numeric: column.number::<u16>("currency")?,
                    exponent: column.number::<u8>("amount_exponent")?,
                },
            },
            date: Timestamp(column.number("requested_at")?),
            nonce: column.hex("nonce")?,
            valid_until: Timestamp(column.number("valid_until")?),
            accepted_means,
            session: column.optional_text("session")?.map(SessionId::from),
        },
        transaction: Transaction {
            purchase,
            payment: payment.clone(),
            terminal: TerminalId::from(column.text("terminal")?),
            means: Payment::BankCard(card),
        },
        provision: None,
    })
}

/// A row of `transactions` read by column name — the SQLite journal's, or the
/// PostgreSQL one's (`acquirer::postgres`): each value as the type its column holds,
/// `None` for NULL, [`JournalError::Corrupt`] for a value of another type.
pub(crate) trait StoredRow {
    /// The value of `column`.
    fn value<T: StoredValue>(
        &self,
        at: At<'_>,
        payment: &PaymentId,
        column: &'static str,
    ) -> Result<Option<T>, JournalError>;
}

/// What a stored transaction's columns hold, read from either database: text,
/// integers, and the PIN check as a flag (INTEGER 0 or 1 in SQLite, BOOLEAN in
/// PostgreSQL).
pub(crate) trait StoredValue:
    rusqlite::types::FromSql + for<'a> postgres::types::FromSql<'a>
{
}

impl StoredValue for String {}
impl StoredValue for i64 {}
impl StoredValue for bool {}

impl StoredRow for Row<'_> {
    fn value<T: StoredValue>(
        &self,
        at: At<'_>,
        payment: &PaymentId,
        column: &'static str,
    ) -> Result<Option<T>, JournalError> {
        self.get(column).map_err(|error| match error {
            rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::IntegralValueOutOfRange(..)
            | rusqlite::Error::InvalidColumnType(..) => {
                let found = self
                    .get_ref(column)
                    .map(|value| format!("{value:?}"))
                    .unwrap_or_default();
                at.corrupt(payment, column, found)
            }
            other => (at.db())(other),
        })
    }
}

/// The columns of one stored transaction, read by name; a value out of its column's
/// range, or NULL where F or G needs a value, is [`JournalError::Corrupt`] naming the
/// payment and the column.
struct StoredColumns<'a, R: StoredRow + ?Sized> {
    at: At<'a>,
    payment: &'a PaymentId,
    row: &'a R,
}

impl<R: StoredRow + ?Sized> StoredColumns<'_, R> {
    fn optional_text(&self, column: &'static str) -> Result<Option<String>, JournalError> {
        self.row.value(self.at, self.payment, column)
    }

    fn text(&self, column: &'static str) -> Result<String, JournalError> {
        self.optional_text(column)?
            .ok_or_else(|| self.at.corrupt(self.payment, column, "NULL"))
    }

    fn number<T: TryFrom<i64>>(&self, column: &'static str) -> Result<T, JournalError> {
        let value = self
            .row
            .value::<i64>(self.at, self.payment, column)?
            .ok_or_else(|| self.at.corrupt(self.payment, column, "NULL"))?;
        T::try_from(value).map_err(|_| self.at.corrupt(self.payment, column, value))
    }

    fn flag(&self, column: &'static str) -> Result<bool, JournalError> {
        self.row
            .value(self.at, self.payment, column)?
            .ok_or_else(|| self.at.corrupt(self.payment, column, "NULL"))
    }

    fn hex<const N: usize>(&self, column: &'static str) -> Result<[u8; N], JournalError> {
        let text = self.text(column)?;
        hex_array(&text).ok_or_else(|| self.at.corrupt(self.payment, column, &text))
    }

    fn hex_vec(&self, column: &'static str) -> Result<Vec<u8>, JournalError> {
        let text = self.text(column)?;
        hex::decode(&text).map_err(|_| self.at.corrupt(self.payment, column, &text))
    }

    /// The journal's acquirer, which F and G name (the journal records no other's).
    fn acquirer(&self) -> Result<AcquirerId, JournalError> {
        self.optional_text("acquirer")?
            .map(AcquirerId::from)
            .ok_or_else(|| {
                self.at
                    .corrupt(self.payment, "acquirer", "no acquirer in meta")
            })
    }
}

/// What [`Journal::authorise_with`] reads before deciding, for payment ?1 and card
/// (?2, ?3): whether the payment is recorded, the card's last ATC, whether the payment
/// was reversed.
const LOOK_UP_NEW_PAYMENT: &str = "SELECT \
     EXISTS (SELECT 1 FROM transactions WHERE payment = ?1), \
     (SELECT last_atc FROM cards WHERE pan = ?2 AND pan_sequence = ?3), \
     EXISTS (SELECT 1 FROM reversals WHERE payment = ?1)";

/// The card's last ATC.
fn card_last_atc(
    connection: &Connection,
    at: At<'_>,
    pan: &str,
    pan_sequence: u8,
) -> Result<Option<u16>, JournalError> {
    let found: Option<i64> = connection
        .prepare_cached("SELECT last_atc FROM cards WHERE pan = ?1 AND pan_sequence = ?2")
        .and_then(|mut statement| statement.query_row(params![pan, pan_sequence], |row| row.get(0)))
        .optional()
        .map_err(at.db())?;
    last_atc_of(at, pan, found)
}

/// A card's last ATC as `cards` holds it, checked to fit an ATC.
fn last_atc_of(at: At<'_>, pan: &str, found: Option<i64>) -> Result<Option<u16>, JournalError> {
    found
        .map(|atc| {
            u16::try_from(atc).map_err(|_| at.corrupt(crate::emv::mask_pan(pan), "last_atc", atc))
        })
        .transpose()
}

/// Whether a reversal of `payment` was received.
fn is_reversed(
    connection: &Connection,
    at: At<'_>,
    payment: &PaymentId,
) -> Result<bool, JournalError> {
    connection
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM reversals WHERE payment = ?1)")
        .and_then(|mut statement| statement.query_row([payment.0.as_str()], |row| row.get(0)))
        .map_err(at.db())
}

/// Checks that the journal is `received`'s (`known`, when already read, saves reading
/// it again), and makes it so in an empty journal. Returns the journal's acquirer, to
/// remember once the transaction commits.
fn check_acquirer(
    connection: &Connection,
    at: At<'_>,
    known: Option<&AcquirerId>,
    received: &AcquirerId,
) -> Result<AcquirerId, JournalError> {
    let journal = match known {
        Some(acquirer) => Some(acquirer.clone()),
        None => connection
            .prepare_cached("SELECT value FROM meta WHERE key = 'acquirer'")
            .and_then(|mut statement| statement.query_row([], |row| row.get::<_, String>(0)))
            .optional()
            .map_err(at.db())?
            .map(AcquirerId::from),
    };
    match journal {
        Some(journal) if journal != *received => Err(JournalError::ForeignAcquirer {
            path: at.path.to_owned(),
            operation: at.operation,
            journal,
            received: received.clone(),
        }),
        Some(journal) => Ok(journal),
        None => {
            connection
                .prepare_cached("INSERT INTO meta (key, value) VALUES ('acquirer', ?1)")
                .and_then(|mut statement| statement.execute([received.0.as_str()]))
                .map_err(at.db())?;
            Ok(received.clone())
        }
    }
}

/// What [`insert_decision`] records.
struct NewEntry<'a> {
    /// F.
    f: &'a AcquirerTransaction,
    /// G.
    g: &'a Acknowledgement,
    /// An ATC to raise the card's counter to, besides F's when G is positive.
    record_atc: Option<u16>,
    /// Whether the payment was reversed before F arrived.
    reversed: bool,
    /// The time of recording.
    now: Timestamp,
}

/// Inserts F with its G (a new payment: the caller looked) and raises the card's
/// counter, in the caller's transaction. A positive G must be remittable and its
/// payment not reversed. `json` is the buffer F and G are serialised in.
fn insert_decision(
    connection: &Connection,
    at: At<'_>,
    entry: NewEntry<'_>,
) -> Result<(), JournalError> {
    let NewEntry {
        f,
        g,
        record_atc,
        reversed,
        now,
    } = entry;
    let payment = &f.transaction.payment;
    let Some(card) = f.transaction.means.card() else {
        return Err(at.mismatch(payment, NOT_A_CARD_PAYMENT));
    };
    let (state, authorisation_code) = decided_state(at, f, card, g, reversed)?;
    let StoredAs {
        f_json,
        g_json,
        response_code,
        arpc,
        refusal_reason,
    } = stored_as(at, f, g)?;
    let request = &f.request;

    connection
        .prepare_cached(INSERT_TRANSACTION)
        .and_then(|mut statement| {
            statement.execute(params![
                payment.0.as_str(),
                f.transaction.purchase.0.as_str(),
                f.merchant.0.as_str(),
                card.pan.as_str(),
                card.pan_sequence,
                card.expiry.as_str(),
                card.atc,
                i64::try_from(f.request.amount.minor).ok(),
                f.request.amount.currency.numeric,
                f.request.date.0,
                HexText::of(&card.date),
                HexText::of(&card.cryptogram),
                HexText::of(&card.amount_other),
                HexText::of(&[card.transaction_type]),
                HexText::of(&card.terminal_country),
                HexText::of(&card.aid),
                HexText::of(&card.aip),
                HexText::of(&card.tvr),
                HexText::of(&card.unpredictable_number),
                card.cid,
                HexText::of(&card.iad),
                authorisation_code,
                state.as_str(),
                now.0,
                f_json,
                g_json,
                request.service.0.as_str(),
                request.designation.as_str(),
                HexText::of(&request.designation_digest),
                request.amount.currency.exponent,
                HexText::of(&request.nonce),
                request.valid_until.0,
                means_text(&request.accepted_means),
                request.session.as_ref().map(|session| session.0.as_str()),
                f.transaction.terminal.0.as_str(),
                HexText::of(&card.amount),
                HexText::of(&card.currency),
                card.pin_verified,
                HexText::of(response_code),
                arpc.as_ref().map(|arpc| HexText::of(arpc)),
                refusal_reason,
            ])
        })
        .map_err(at.db())?;

    if let Some(atc) = atc_to_raise(state, record_atc, card.atc) {
        connection
            .prepare_cached(RAISE_CARD_ATC)
            .and_then(|mut statement| {
                statement.execute(params![card.pan.as_str(), card.pan_sequence, atc, now.0])
            })
            .map_err(at.db())?;
    }
    Ok(())
}

/// The state a new transaction is recorded in for G (`authorised` or `refused`) and its
/// authorisation code. A positive G must be remittable (the batch can carry it, its
/// amount is the card's) and its payment not `reversed` before it arrived.
pub(crate) fn decided_state<'g>(
    at: At<'_>,
    f: &AcquirerTransaction,
    card: &CardTransaction,
    g: &'g Acknowledgement,
    reversed: bool,
) -> Result<(TransactionState, Option<&'g str>), JournalError> {
    let payment = &f.transaction.payment;
    match &g.verdict {
        Verdict::Positive {
            authorisation_code, ..
        } => {
            if reversed {
                return Err(JournalError::ReversedBeforeRecord {
                    path: at.path.to_owned(),
                    payment: payment.clone(),
                });
            }
            let not_remittable = |field, expected| JournalError::NotRemittable {
                path: at.path.to_owned(),
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
            batch::check_fields(&record_fields(f, card, authorisation_code))
                .map_err(|(field, expected)| not_remittable(field, expected))?;
            Ok((
                TransactionState::Authorised,
                Some(authorisation_code.as_str()),
            ))
        }
        Verdict::Negative { .. } => Ok((TransactionState::Refused, None)),
    }
}

/// The counter to raise the card's to, for a transaction recorded in `state`: the
/// counter only grows; an authorised transaction spent F's, and any authentic
/// cryptogram the rules ask to remember (`record_atc`) spent its own.
pub(crate) fn atc_to_raise(
    state: TransactionState,
    record_atc: Option<u16>,
    card_atc: u16,
) -> Option<u16> {
    match state {
        TransactionState::Authorised => Some(record_atc.map_or(card_atc, |atc| atc.max(card_atc))),
        _ => record_atc,
    }
}

/// The fields of the batch record `f` and `card` make, as [`batch::check_record`] judges
/// them, borrowed from F rather than copied into a record.
fn record_fields<'a>(
    f: &'a AcquirerTransaction,
    card: &'a CardTransaction,
    authorisation_code: &'a str,
) -> batch::RecordFields<'a> {
    batch::RecordFields {
        payment: &f.transaction.payment.0,
        merchant: &f.merchant.0,
        pan: &card.pan,
        expiry: &card.expiry,
        amount_minor: f.request.amount.minor,
        currency: f.request.amount.currency.numeric,
        amount_other: &card.amount_other,
        date: &card.date,
        transaction_type: card.transaction_type,
        terminal_country: &card.terminal_country,
        aid: &card.aid,
        iad: &card.iad,
        authorisation_code,
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
    let text = |index: usize| row.get::<_, String>(index).map_err(&db);
    let integer = |index: usize| row.get::<_, i64>(index).map_err(&db);
    RecordColumns {
        payment: text(0)?,
        merchant: text(1)?,
        pan: text(2)?,
        pan_sequence: integer(3)?,
        expiry: text(4)?,
        atc: integer(5)?,
        amount_minor: row.get(6).map_err(&db)?,
        currency: integer(7)?,
        amount_other: text(8)?,
        date: text(9)?,
        transaction_type: text(10)?,
        terminal_country: text(11)?,
        aid: text(12)?,
        aip: text(13)?,
        tvr: text(14)?,
        unpredictable_number: text(15)?,
        cid: integer(16)?,
        cryptogram: text(17)?,
        iad: text(18)?,
        authorisation_code: row.get(19).map_err(&db)?,
    }
    .into_record(at)
}

/// The columns of a batch record ([`RECORD_COLUMNS`]) as a store reads them, before
/// they are checked: both journals store the same columns with the same meaning, so
/// that a batch written from either is the same bytes.
pub(crate) struct RecordColumns {
    pub(crate) payment: String,
    pub(crate) merchant: String,
    pub(crate) pan: String,
    pub(crate) pan_sequence: i64,
    pub(crate) expiry: String,
    pub(crate) atc: i64,
    pub(crate) amount_minor: Option<i64>,
    pub(crate) currency: i64,
    pub(crate) amount_other: String,
    pub(crate) date: String,
    pub(crate) transaction_type: String,
    pub(crate) terminal_country: String,
    pub(crate) aid: String,
    pub(crate) aip: String,
    pub(crate) tvr: String,
    pub(crate) unpredictable_number: String,
    pub(crate) cid: i64,
    pub(crate) cryptogram: String,
    pub(crate) iad: String,
    pub(crate) authorisation_code: Option<String>,
}

impl RecordColumns {
    /// The record, or [`JournalError::Corrupt`] naming the first column out of range.
    pub(crate) fn into_record(self, at: At<'_>) -> Result<BatchRecord, JournalError> {
        let payment = self.payment;
        let corrupt = |column: &'static str, found: &dyn std::fmt::Display| {
            at.corrupt(&payment, column, found)
        };
        fn fixed<const N: usize>(text: &str) -> Option<[u8; N]> {
            hex_array::<N>(text)
        }
        let (amount, pan_sequence, atc, currency, cid) = (
            self.amount_minor,
            self.pan_sequence,
            self.atc,
            self.currency,
            self.cid,
        );
        let record = BatchRecord {
            payment: PaymentId::from(payment.clone()),
            merchant: MerchantId::from(self.merchant),
            pan: self.pan,
            pan_sequence: u8::try_from(pan_sequence)
                .map_err(|_| corrupt("pan_sequence", &pan_sequence))?,
            expiry: self.expiry,
            atc: u16::try_from(atc).map_err(|_| corrupt("atc", &atc))?,
            amount_minor: amount
                .and_then(|amount| u64::try_from(amount).ok())
                .ok_or_else(|| corrupt("amount_minor", &format!("{amount:?}")))?,
            currency: u16::try_from(currency).map_err(|_| corrupt("currency", &currency))?,
            amount_other: fixed(&self.amount_other)
                .ok_or_else(|| corrupt("amount_other", &self.amount_other))?,
            date: fixed(&self.date).ok_or_else(|| corrupt("transaction_date", &self.date))?,
            transaction_type: fixed::<1>(&self.transaction_type)
                .map(|[byte]| byte)
                .ok_or_else(|| corrupt("transaction_type", &self.transaction_type))?,
            terminal_country: fixed(&self.terminal_country)
                .ok_or_else(|| corrupt("terminal_country", &self.terminal_country))?,
            aid: hex::decode(&self.aid).map_err(|_| corrupt("aid", &self.aid))?,
            aip: fixed(&self.aip).ok_or_else(|| corrupt("aip", &self.aip))?,
            tvr: fixed(&self.tvr).ok_or_else(|| corrupt("tvr", &self.tvr))?,
            unpredictable_number: fixed(&self.unpredictable_number)
                .ok_or_else(|| corrupt("unpredictable_number", &self.unpredictable_number))?,
            cid: u8::try_from(cid).map_err(|_| corrupt("cid", &cid))?,
            cryptogram: fixed(&self.cryptogram)
                .ok_or_else(|| corrupt("cryptogram", &self.cryptogram))?,
            iad: hex::decode(&self.iad).map_err(|_| corrupt("iad", &self.iad))?,
            authorisation_code: self
                .authorisation_code
                .ok_or_else(|| corrupt("authorisation_code", &"NULL"))?,
        };
        Ok(record)
    }
}

fn batch_from_row(at: At<'_>, row: &Row<'_>) -> Result<BatchSummary, JournalError> {
    let db = at.db();
    BatchColumns {
        number: row.get(0).map_err(&db)?,
        acquirer: row.get(1).map_err(&db)?,
        cut_off_at: row.get(2).map_err(&db)?,
        state: row.get(3).map_err(&db)?,
        records: row.get(4).map_err(&db)?,
        bytes: row.get(5).map_err(&db)?,
        checksum: row.get(6).map_err(&db)?,
        sent_at: row.get(7).map_err(&db)?,
        acknowledged_at: row.get(8).map_err(&db)?,
    }
    .into_summary(at)
}

/// The columns of a batch (`batches`) as a store reads them, before they are checked.
pub(crate) struct BatchColumns {
    pub(crate) number: i64,
    pub(crate) acquirer: String,
    pub(crate) cut_off_at: i64,
    pub(crate) state: String,
    pub(crate) records: i64,
    pub(crate) bytes: i64,
    pub(crate) checksum: String,
    pub(crate) sent_at: Option<i64>,
    pub(crate) acknowledged_at: Option<i64>,
}

impl BatchColumns {
    /// The batch without its totals, or [`JournalError::Corrupt`].
    pub(crate) fn into_summary(self, at: At<'_>) -> Result<BatchSummary, JournalError> {
        let number = self.number;
        let corrupt =
            |column: &'static str, found: &dyn std::fmt::Display| at.corrupt(number, column, found);
        let (records, bytes) = (self.records, self.bytes);
        Ok(BatchSummary {
            number: u64::try_from(number).map_err(|_| corrupt("number", &number))?,
            acquirer: AcquirerId::from(self.acquirer),
            cut_off_at: Timestamp(self.cut_off_at),
            state: BatchState::from_name(&self.state)
                .ok_or_else(|| corrupt("state", &self.state))?,
            records: u64::try_from(records).map_err(|_| corrupt("records", &records))?,
            totals: Vec::new(),
            checksum: hex_array(&self.checksum)
                .ok_or_else(|| corrupt("checksum", &self.checksum))?,
            bytes: u64::try_from(bytes).map_err(|_| corrupt("bytes", &bytes))?,
            sent_at: self.sent_at.map(Timestamp),
            acknowledged_at: self.acknowledged_at.map(Timestamp),
        })
    }
}

/// One per-currency total of batch `number` as a store reads it, checked.
pub(crate) fn currency_total(
    at: At<'_>,
    number: u64,
    (currency, records, total): (i64, i64, i64),
) -> Result<CurrencyTotal, JournalError> {
    Ok(CurrencyTotal {
        currency: u16::try_from(currency).map_err(|_| at.corrupt(number, "currency", currency))?,
        records: u64::try_from(records).map_err(|_| at.corrupt(number, "records", records))?,
        total_minor: u64::try_from(total).map_err(|_| at.corrupt(number, "total_minor", total))?,
    })
}

fn entry_from_row(at: At<'_>, row: &Row<'_>) -> Result<JournalEntry, JournalError> {
    let db = at.db();
    EntryColumns {
        seq: row.get(0).map_err(&db)?,
        payment: row.get(1).map_err(&db)?,
        purchase: row.get(2).map_err(&db)?,
        merchant: row.get(3).map_err(&db)?,
        pan: row.get(4).map_err(&db)?,
        pan_sequence: row.get(5).map_err(&db)?,
        atc: row.get(6).map_err(&db)?,
        amount_minor: row.get(7).map_err(&db)?,
        currency: row.get(8).map_err(&db)?,
        state: row.get(9).map_err(&db)?,
        batch: row.get(10).map_err(&db)?,
        authorisation_code: row.get(11).map_err(&db)?,
        recorded_at: row.get(12).map_err(&db)?,
        updated_at: row.get(13).map_err(&db)?,
    }
    .into_entry(at)
}

/// The columns of a listed transaction ([`TRANSACTION_COLUMNS`]) as a store reads
/// them, before they are checked.
pub(crate) struct EntryColumns {
    pub(crate) seq: i64,
    pub(crate) payment: String,
    pub(crate) purchase: String,
    pub(crate) merchant: String,
    pub(crate) pan: String,
    pub(crate) pan_sequence: i64,
    pub(crate) atc: i64,
    pub(crate) amount_minor: Option<i64>,
    pub(crate) currency: i64,
    pub(crate) state: String,
    pub(crate) batch: Option<i64>,
    pub(crate) authorisation_code: Option<String>,
    pub(crate) recorded_at: i64,
    pub(crate) updated_at: i64,
}

impl EntryColumns {
    /// The entry, or [`JournalError::Corrupt`].
    pub(crate) fn into_entry(self, at: At<'_>) -> Result<JournalEntry, JournalError> {
        let payment = self.payment;
        let corrupt = |column: &'static str, found: &dyn std::fmt::Display| {
            at.corrupt(&payment, column, found)
        };
        let (seq, pan_sequence, atc, amount, currency, batch) = (
            self.seq,
            self.pan_sequence,
            self.atc,
            self.amount_minor,
            self.currency,
            self.batch,
        );
        Ok(JournalEntry {
            seq: u64::try_from(seq).map_err(|_| corrupt("seq", &seq))?,
            payment: PaymentId::from(payment.clone()),
            purchase: self.purchase,
            merchant: MerchantId::from(self.merchant),
            pan: self.pan,
            pan_sequence: u8::try_from(pan_sequence)
                .map_err(|_| corrupt("pan_sequence", &pan_sequence))?,
            atc: u16::try_from(atc).map_err(|_| corrupt("atc", &atc))?,
            amount_minor: amount
                .map(|amount| u64::try_from(amount).map_err(|_| corrupt("amount_minor", &amount)))
                .transpose()?,
            currency: u16::try_from(currency).map_err(|_| corrupt("currency", &currency))?,
            state: TransactionState::from_name(&self.state)
                .ok_or_else(|| corrupt("state", &self.state))?,
            batch: batch
                .map(|batch| u64::try_from(batch).map_err(|_| corrupt("batch", &batch)))
                .transpose()?,
            authorisation_code: self.authorisation_code,
            recorded_at: Timestamp(self.recorded_at),
            updated_at: Timestamp(self.updated_at),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    use crate::acquirer::batch::read_batch;
    use crate::messages::{ProvisionGrant, ProvisionRequest};

    const NOW: Timestamp = Timestamp(1_795_644_000_000);

    /// F for `payment`, paid by card `pan` with counter `atc`, `amount` euro cents.
    fn f(payment: &str, pan: &str, atc: u16, amount: u64) -> AcquirerTransaction {
        let money = Money::new(amount, Currency::EUR);
        let designation_digest = PaymentRequest::digest_designation("Report 2026");
        let nonce = [7u8; 16];
        let request = PaymentRequest {
            purchase: PurchaseId::from(format!("PUR-{payment}")),
            payment: PaymentId::from(payment),
            merchant: MerchantId::from("FRONT-END"),
            service: ServiceId::from("S1"),
            designation: "Report 2026".into(),
            designation_digest,
            amount: money,
            date: NOW,
            nonce,
            valid_until: NOW.plus_millis(60_000),
            accepted_means: vec![Means::BankCard],
            session: None,
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
            provision: None,
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
            provision: None,
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
            provision: None,
        }
    }

    fn reversal(payment: &str) -> Reversal {
        Reversal {
            acquirer: AcquirerId::from("ACQ-1"),
            purchase: PurchaseId::from(format!("PUR-{payment}")),
            payment: PaymentId::from(payment),
            reason: "the acquirer did not answer in time".into(),
        }
    }

    fn card_mut(f: &mut AcquirerTransaction) -> &mut CardTransaction {
        let Payment::BankCard(card) = &mut f.transaction.means else {
            panic!("a bank-card payment")
        };
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
                out.push((entry.payment.0.into(), entry.state, entry.batch));
                Ok::<_, JournalError>(())
            })
            .unwrap();
        out
    }

    /// Arbitrary text: any characters, NUL and commas included, empty or not.
    fn any_text() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop_oneof![any::<String>(), "[a-z,]{0,12}", Just(String::new())]
    }

    /// What the property below changes in an F and its G.
    #[derive(Debug, Clone)]
    struct Variation {
        service: String,
        designation: String,
        designation_digest: [u8; 20],
        amount_minor: u64,
        currency: (u16, u8),
        nonce: [u8; 16],
        date: i64,
        valid_until: i64,
        accepted_means: Vec<Means>,
        session: Option<String>,
        terminal: String,
        card_amount: [u8; 6],
        card_currency: [u8; 2],
        pin_verified: bool,
        aid: Vec<u8>,
        iad: Vec<u8>,
        tvr: [u8; 5],
        reason: RefusalReason,
        arpc: Option<[u8; 8]>,
    }

    fn any_variation() -> impl proptest::strategy::Strategy<Value = Variation> {
        use proptest::prelude::*;
        let reasons = vec![
            RefusalReason::CardExpired,
            RefusalReason::CryptogramInvalid,
            RefusalReason::ReplayedCounter,
            RefusalReason::MismatchWithRequest,
            RefusalReason::AmountOutOfLimits,
        ];
        (
            (any_text(), any_text(), any::<[u8; 20]>(), any::<u64>()),
            (
                (any::<u16>(), any::<u8>()),
                any::<[u8; 16]>(),
                any::<i64>(),
                any::<i64>(),
            ),
            (
                proptest::collection::vec(prop::sample::select(Means::ALL.to_vec()), 0..4),
                proptest::option::of(any_text()),
                any_text(),
            ),
            (
                any::<[u8; 6]>(),
                any::<[u8; 2]>(),
                any::<bool>(),
                proptest::collection::vec(any::<u8>(), 0..40),
                proptest::collection::vec(any::<u8>(), 0..40),
                any::<[u8; 5]>(),
            ),
            (
                prop::sample::select(reasons),
                proptest::option::of(any::<[u8; 8]>()),
            ),
        )
            .prop_map(
                |(
                    (service, designation, designation_digest, amount_minor),
                    (currency, nonce, date, valid_until),
                    (accepted_means, session, terminal),
                    (card_amount, card_currency, pin_verified, aid, iad, tvr),
                    (reason, arpc),
                )| Variation {
                    service,
                    designation,
                    designation_digest,
                    amount_minor,
                    currency,
                    nonce,
                    date,
                    valid_until,
                    accepted_means,
                    session,
                    terminal,
                    card_amount,
                    card_currency,
                    pin_verified,
                    aid,
                    iad,
                    tvr,
                    reason,
                    arpc,
                },
            )
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Whatever a refused F and its G hold, the journal gives them back as they were
        /// recorded, from its columns or, where they cannot state it, from JSON.
        #[test]
        fn any_refused_f_and_its_g_read_back_as_recorded(v in any_variation()) {
            let mut journal = Journal::open_in_memory().unwrap();
            let mut f = f("PAY-ANY", "4970100000000014", 7, 1250);
            f.request.service = ServiceId::from(v.service);
            f.request.designation = v.designation.into();
            f.request.designation_digest = v.designation_digest;
            f.request.amount = Money {
                minor: v.amount_minor,
                currency: Currency { numeric: v.currency.0, exponent: v.currency.1 },
            };
            f.request.nonce = v.nonce;
            f.request.date = Timestamp(v.date);
            f.request.valid_until = Timestamp(v.valid_until);
            f.request.accepted_means = v.accepted_means;
            f.request.session = v.session.map(SessionId::from);
            f.transaction.terminal = TerminalId::from(v.terminal);
            let card = card_mut(&mut f);
            card.amount = v.card_amount;
            card.currency = v.card_currency;
            card.pin_verified = v.pin_verified;
            card.aid = v.aid;
            card.iad = v.iad;
            card.tvr = v.tvr;
            let mut g = negative(&f, v.reason);
            if let Verdict::Negative { arpc, .. } = &mut g.verdict {
                *arpc = v.arpc;
            }
            journal.record(&f, &g, NOW).unwrap();
            let stored = journal
                .stored_transaction(&f.transaction.payment)
                .unwrap()
                .unwrap();
            proptest::prop_assert_eq!(&stored.transaction, &f);
            proptest::prop_assert_eq!(&stored.acknowledgement, &g);
            let json = kept_as_json(&journal, "PAY-ANY");
            proptest::prop_assert_eq!(json, (i64::try_from(v.amount_minor).is_err(), false));
        }
    }

    /// Whether the row of `payment` keeps F and G as JSON.
    fn kept_as_json(journal: &Journal, payment: &str) -> (bool, bool) {
        journal
            .connection
            .query_row(
                "SELECT f_json IS NOT NULL, g_json IS NOT NULL FROM transactions WHERE payment = ?1",
                [payment],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .unwrap()
    }

    #[test]
    fn f_and_g_are_read_back_as_recorded_from_columns_or_json_where_columns_cannot_state_them() {
        let mut journal = Journal::open_in_memory().unwrap();
        let provision = |amount| ProvisionGrant {
            segment: SessionId::from("SEG-1"),
            amount: Money::new(amount, Currency::EUR),
            sequence_floor: 3,
        };
        // (payment, how F and G differ from the usual, whether each needs its JSON)
        type Change = fn(&mut AcquirerTransaction, &mut Acknowledgement);
        let cases: [(&str, Change, (bool, bool)); 8] = [
            ("PAY-USUAL", |_, _| {}, (false, false)),
            (
                "PAY-EVERY-FIELD",
                |f, g| {
                    f.request.accepted_means = vec![Means::VirtualWallet, Means::BankCard];
                    f.request.session = Some(SessionId::from("SESSION-9"));
                    f.request.amount.currency = Currency {
                        numeric: 392,
                        exponent: 0,
                    };
                    f.request.designation = "Rapport « annuel », 2026".into();
                    let card = card_mut(f);
                    card.pin_verified = false;
                    card.iad = vec![0x06, 0x01, 0x0A, 0x03, 0xA0, 0x00, 0x00, 0x01, 0xFF];
                    card.currency = [0x03, 0x92];
                    g.verdict = Verdict::Positive {
                        authorisation_code: "Z9Y8X7".into(),
                        response_code: *b"00",
                        arpc: None,
                    };
                },
                (false, false),
            ),
            (
                "PAY-NO-MEANS",
                |f, g| {
                    f.request.accepted_means = Vec::new();
                    *g = negative(f, RefusalReason::MismatchWithRequest);
                },
                (false, false),
            ),
            (
                "PAY-REFUSED-WITH-ARPC",
                |f, g| {
                    *g = negative(f, RefusalReason::ReplayedCounter);
                    if let Verdict::Negative { arpc, .. } = &mut g.verdict {
                        *arpc = Some([0xA5; 8]);
                    }
                },
                (false, false),
            ),
            (
                "PAY-HUGE",
                |f, g| {
                    f.request.amount.minor = u64::MAX;
                    *g = negative(f, RefusalReason::AmountOutOfLimits);
                },
                (true, false),
            ),
            (
                "PAY-OTHER-MERCHANT",
                |f, g| {
                    f.request.merchant = MerchantId::from("SOMEONE-ELSE");
                    *g = negative(f, RefusalReason::MismatchWithRequest);
                },
                (true, false),
            ),
            (
                "PAY-PROVISION",
                |f, g| {
                    f.provision = Some(ProvisionRequest {
                        segment: SessionId::from("SEG-1"),
                        amount: Money::new(5_000, Currency::EUR),
                    });
                    *g = negative(f, RefusalReason::NotAnAuthorisationRequest);
                },
                (true, false),
            ),
            ("PAY-GRANT", |_, _| {}, (false, true)),
        ];
        for (atc, (payment, change, json)) in (1u16..).zip(cases) {
            let mut f = f(payment, "4970100000000014", atc, 1250);
            let mut g = positive(&f, "A1B2C3");
            change(&mut f, &mut g);
            if payment == "PAY-GRANT" {
                g.provision = Some(provision(5_000));
            }
            journal.record(&f, &g, NOW).unwrap();
            let stored = journal
                .stored_transaction(&f.transaction.payment)
                .unwrap()
                .unwrap();
            assert_eq!(stored.transaction, f, "{payment}");
            assert_eq!(stored.acknowledgement, g, "{payment}");
            assert_eq!(
                journal.acknowledgement_for(&f.transaction.payment).unwrap(),
                Some(g),
                "{payment}"
            );
            assert_eq!(kept_as_json(&journal, payment), json, "{payment}");
        }
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
                    out.push(entry.payment.0.into());
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

    /// `transactions` and `cards` as layout 1 defined them (the file of journals made
    /// before 2026-11-26), with layout 1's indexes; the other tables are as in [`SCHEMA`].
    const LAYOUT_1_TABLES: &str = "
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
";

    /// `transactions` as layout 2 defined it (journals made on 2026-11-26 before
    /// layout 3), with its index; `cards` was already as in [`CARDS_TABLE`].
    const LAYOUT_2_TABLES: &str = "
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
    -- The checks compare with `=` rather than `IN (...)`: SQLite evaluates a constant
    -- list of more than two values through a temporary b-tree built for each row it
    -- inserts (an insert in memory took 8.2 µs with the lists, 4.6 µs without).
    state TEXT NOT NULL CHECK (state = 'authorised' OR state = 'in-batch'
        OR state = 'remitted' OR state = 'acknowledged-by-centre' OR state = 'refused'
        OR state = 'reversed'),
    batch INTEGER REFERENCES batches (number) DEFERRABLE INITIALLY DEFERRED,
    recorded_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    f_json TEXT NOT NULL,
    g_json TEXT NOT NULL,
    -- A transaction is in a batch exactly in the batch states.
    CHECK ((batch IS NOT NULL)
        = (state = 'in-batch' OR state = 'remitted' OR state = 'acknowledged-by-centre')),
    -- Only what was authorised has an authorisation code, and a remittable amount.
    CHECK ((authorisation_code IS NULL) = (state = 'refused')),
    CHECK (state = 'refused' OR amount_minor IS NOT NULL)
);
CREATE INDEX transactions_in_batch ON transactions (batch, seq) WHERE batch IS NOT NULL;
";

    /// The insert of layouts 1 and 2, which wrote F and G as JSON.
    fn insert_of_layouts_1_and_2() -> String {
        let values: Vec<String> = (1..=29).map(|n| format!("?{n}")).collect();
        format!(
            "INSERT INTO transactions ({LAYOUT_1_2_COLUMNS}) VALUES ({})",
            values.join(", ")
        )
    }

    /// A new, empty directory for one test's files, removed when dropped.
    struct Scratch(std::path::PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            let dir =
                std::env::temp_dir().join(format!("telepay-journal-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }

        fn file(&self, name: &str) -> std::path::PathBuf {
            self.0.join(name)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Everything a journal shows of itself.
    #[derive(Debug, PartialEq)]
    struct Contents {
        entries: Vec<JournalEntry>,
        batches: Vec<BatchSummary>,
        stored: Vec<Option<StoredTransaction>>,
        batch_files: Vec<Vec<u8>>,
        last_atc: Option<u16>,
        reversed: Vec<bool>,
    }

    /// What `journal` shows of itself, to compare two journals.
    fn contents(journal: &Journal) -> Contents {
        let mut entries = Vec::new();
        journal
            .transactions(&TransactionFilter::default(), |entry| {
                entries.push(entry);
                Ok::<_, JournalError>(())
            })
            .unwrap();
        let stored = entries
            .iter()
            .map(|entry| journal.stored_transaction(&entry.payment).unwrap())
            .collect();
        let batches = journal.batches().unwrap();
        let files = batches
            .iter()
            .map(|batch| {
                let mut file = Vec::new();
                journal.write_batch(batch.number, &mut file).unwrap();
                file
            })
            .collect();
        let reversed = ["PAY-3", "PAY-UNSEEN", "PAY-1"]
            .iter()
            .map(|payment| journal.is_reversed(&PaymentId::from(*payment)).unwrap())
            .collect();
        Contents {
            entries,
            batches,
            stored,
            batch_files: files,
            last_atc: journal.card_last_atc("4970100000000014", 1).unwrap(),
            reversed,
        }
    }

    /// The SQL of the journal's tables and indexes, by name.
    fn schema_sql(path: &std::path::Path) -> BTreeMap<String, String> {
        let raw = Connection::open(path).unwrap();
        let mut statement = raw
            .prepare("SELECT name, coalesce(sql, '') FROM sqlite_schema")
            .unwrap();
        statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    /// A journal of `layout` (made of `tables` besides [`SCHEMA`]) holding the rows
    /// `model` holds, as the build of that layout wrote them: F and G as JSON.
    fn journal_of_layout(
        model: &std::path::Path,
        old: &std::path::Path,
        layout: i64,
        tables: &[&str],
    ) {
        let stored = contents(&Journal::open(model).unwrap()).stored;
        let raw = Connection::open(old).unwrap();
        raw.execute_batch(SCHEMA).unwrap();
        for table in tables {
            raw.execute_batch(table).unwrap();
        }
        if layout > 1 {
            raw.pragma_update(None, "user_version", layout).unwrap();
        }
        raw.execute("ATTACH ?1 AS model", [model.to_str().unwrap()])
            .unwrap();
        // Layouts 1 and 2 were schema version 1.
        raw.execute("INSERT INTO main.schema_version (version) VALUES (1)", [])
            .unwrap();
        for table in ["meta", "batches", "batch_totals", "cards", "reversals"] {
            raw.execute_batch(&format!(
                "INSERT INTO main.{table} SELECT * FROM model.{table}"
            ))
            .unwrap();
        }
        let placeholders = LAYOUT_1_2_COLUMNS.replace("f_json, g_json", "'', ''");
        raw.execute_batch(&format!(
            "INSERT INTO main.transactions ({LAYOUT_1_2_COLUMNS}) \
             SELECT {placeholders} FROM model.transactions"
        ))
        .unwrap();
        for row in stored.into_iter().flatten() {
            raw.execute(
                "UPDATE main.transactions SET f_json = ?1, g_json = ?2 WHERE payment = ?3",
                params![
                    serde_json::to_string(&row.transaction).unwrap(),
                    serde_json::to_string(&row.acknowledgement).unwrap(),
                    row.transaction.transaction.payment.0.as_str(),
                ],
            )
            .unwrap();
        }
    }

    /// Makes a journal of `layout` with every state and table filled, opens it with
    /// this build and checks that it reads as a journal of today's layout made the same
    /// way, has its layout, and goes on as one.
    fn upgrades_in_place_with_every_row(layout: i64, tables: &[&str]) -> BTreeMap<String, String> {
        let scratch = Scratch::new(&format!("layout-{layout}"));
        let (model, old) = (scratch.file("model.sqlite"), scratch.file("old.sqlite"));
        // Every state and table filled through the API, in a journal of today's layout.
        {
            let mut journal = Journal::open(&model).unwrap();
            authorise(&mut journal, "PAY-1", 1, 1250);
            authorise(&mut journal, "PAY-2", 2, 2500);
            journal.cut_off(NOW).unwrap().unwrap();
            journal.mark_sent(1, NOW.plus_millis(1)).unwrap();
            authorise(&mut journal, "PAY-3", 3, 100);
            journal.reverse(&reversal("PAY-3"), NOW).unwrap();
            journal.reverse(&reversal("PAY-UNSEEN"), NOW).unwrap();
            let refused = f("PAY-4", "4970100000000014", 4, 100);
            journal
                .record(
                    &refused,
                    &negative(&refused, RefusalReason::CardExpired),
                    NOW,
                )
                .unwrap();
            authorise(&mut journal, "PAY-5", 5, 300);
        }
        // The same rows in a file of the old layout, as an older build made it.
        journal_of_layout(&model, &old, layout, tables);
        let before = schema_sql(&old);

        let expected = contents(&Journal::open(&model).unwrap());
        let mut journal = Journal::open(&old).unwrap();
        assert_eq!(contents(&journal), expected, "every row as it was");
        let after = schema_sql(&old);
        assert_eq!(after, schema_sql(&model), "the layout of a new journal");
        let versions: Vec<i64> = journal
            .connection
            .prepare("SELECT version FROM schema_version ORDER BY version")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(versions, [1, SCHEMA_VERSION], "the upgrade is recorded");
        let upgraded: i64 = journal
            .connection
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap();
        assert_eq!(upgraded, LAYOUT);

        // It goes on as any journal: seq after the copied ones, the next batch.
        authorise(&mut journal, "PAY-6", 6, 400);
        let second = journal.cut_off(NOW.plus_millis(2)).unwrap().unwrap();
        assert_eq!((second.number, second.records), (2, 2));
        let order: Vec<String> = states(&journal).into_iter().map(|(p, _, _)| p).collect();
        assert_eq!(
            order,
            ["PAY-1", "PAY-2", "PAY-3", "PAY-4", "PAY-5", "PAY-6"]
        );
        // The copied rows kept their JSON; the new one is in columns only.
        let json: Vec<(String, bool)> = journal
            .connection
            .prepare("SELECT payment, f_json IS NOT NULL AND g_json IS NOT NULL FROM transactions ORDER BY seq")
            .unwrap()
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(json.last(), Some(&("PAY-6".to_owned(), false)));
        assert!(json[..5].iter().all(|(_, kept)| *kept), "{json:?}");
        drop(journal);
        // Opened again, there is nothing left to upgrade.
        assert_eq!(schema_sql(&old), after);
        Journal::open(&old).unwrap();
        before
    }

    #[test]
    fn a_layout_1_journal_is_upgraded_in_place_with_every_row() {
        let before = upgrades_in_place_with_every_row(1, &[LAYOUT_1_TABLES]);
        assert!(before.contains_key("transactions_by_state"));
        assert!(before["transactions"].contains("state IN"));
    }

    #[test]
    fn a_layout_2_journal_is_upgraded_in_place_with_every_row() {
        let before = upgrades_in_place_with_every_row(2, &[LAYOUT_2_TABLES, CARDS_TABLE]);
        assert!(before["transactions"].contains("f_json TEXT NOT NULL"));
        assert!(!before["transactions"].contains("refusal_reason"));
    }

    /// The opcodes SQLite compiles `sql` to on `connection`.
    fn opcodes(connection: &Connection, sql: &str) -> Vec<String> {
        let mut statement = connection.prepare(&format!("EXPLAIN {sql}")).unwrap();
        let mut rows = statement.raw_query();
        let mut opcodes = Vec::new();
        while let Some(row) = rows.next().unwrap() {
            opcodes.push(row.get(1).unwrap());
        }
        opcodes
    }

    #[test]
    fn an_authorisation_builds_no_temporary_table() {
        // A CHECK with `IN` and more than two values makes SQLite build a temporary
        // b-tree for every row it checks (`OpenEphemeral`): layout 1 did, layout 2 not.
        let journal = Journal::open_in_memory().unwrap();
        let layout_1 = Connection::open_in_memory().unwrap();
        layout_1.execute_batch(SCHEMA).unwrap();
        layout_1.execute_batch(LAYOUT_1_TABLES).unwrap();
        let temporary = |ops: &[String]| ops.iter().any(|op| op == "OpenEphemeral");
        let insert_1 = opcodes(&layout_1, &insert_of_layouts_1_and_2());
        assert!(temporary(&insert_1), "{insert_1:?}");
        for sql in [INSERT_TRANSACTION, RAISE_CARD_ATC] {
            let ops = opcodes(&journal.connection, sql);
            assert!(ops.iter().any(|op| op.ends_with("Insert")), "{sql}");
            assert!(!temporary(&ops), "{sql}: {ops:?}");
        }
    }

    /// A decision as the rules would make it for `f`: `g`, the card of F, `record_atc`.
    fn decision(f: &AcquirerTransaction, g: Acknowledgement, record_atc: Option<u16>) -> Decision {
        let Payment::BankCard(card) = &f.transaction.means else {
            panic!("a bank-card payment")
        };
        Decision {
            acknowledgement: g,
            card: CardKey::of(card),
            record_atc,
        }
    }

    #[test]
    fn authorise_with_gives_the_decision_what_the_journal_knows_and_records_it() {
        let mut journal = Journal::open_in_memory().unwrap();
        journal.reverse(&reversal("PAY-R"), NOW).unwrap();
        let pan = "4970100000000014";
        // (payment, ATC, what `decide` must be given, the verdict it returns, the state
        // recorded, the card's last ATC afterwards)
        /// One F: what `decide` must be given, what it answers, what is then stored.
        struct Step {
            payment: &'static str,
            atc: u16,
            given: Known,
            positive: bool,
            state: TransactionState,
            last_atc: Option<u16>,
        }
        let known = |last_atc, reversed| Known {
            history: CardHistory { last_atc },
            reversed,
        };
        let steps = [
            Step {
                payment: "PAY-1",
                atc: 10,
                given: known(None, false),
                positive: true,
                state: TransactionState::Authorised,
                last_atc: Some(10),
            },
            Step {
                payment: "PAY-2",
                atc: 11,
                given: known(Some(10), false),
                positive: false,
                state: TransactionState::Refused,
                last_atc: Some(10),
            },
            Step {
                payment: "PAY-R",
                atc: 12,
                given: known(Some(10), true),
                positive: false,
                state: TransactionState::Refused,
                last_atc: Some(10),
            },
            Step {
                payment: "PAY-3",
                atc: 13,
                given: known(Some(10), false),
                positive: true,
                state: TransactionState::Authorised,
                last_atc: Some(13),
            },
        ];
        for step in steps {
            let Step {
                payment,
                atc,
                given: expected,
                positive: positive_g,
                state,
                last_atc,
            } = step;
            let f = f(payment, pan, atc, 100);
            let g = if positive_g {
                positive(&f, "A1B2C3")
            } else {
                negative(&f, RefusalReason::Cancelled)
            };
            let mut given = None;
            let outcome = journal
                .authorise_with(&f, NOW, |found| {
                    given = Some(found);
                    decision(&f, g.clone(), None)
                })
                .unwrap();
            assert_eq!(given, Some(expected), "{payment}");
            assert_eq!(outcome, Authorisation::Recorded(g.clone()), "{payment}");
            let stored = journal.stored_transaction(&f.transaction.payment).unwrap();
            assert_eq!(
                stored,
                Some(StoredTransaction {
                    transaction: f.clone(),
                    acknowledgement: g,
                    state,
                    batch: None
                }),
                "{payment}"
            );
            assert_eq!(
                journal.card_last_atc(pan, 1).unwrap(),
                last_atc,
                "{payment}"
            );
        }

        // A payment already recorded is not decided again, and nothing changes.
        let again = f("PAY-1", pan, 10, 100);
        let mut decided = false;
        let outcome = journal
            .authorise_with(&again, NOW.plus_millis(9), |_| {
                decided = true;
                decision(
                    &again,
                    negative(&again, RefusalReason::ReplayedCounter),
                    None,
                )
            })
            .unwrap();
        assert!(!decided);
        let stored = journal
            .stored_transaction(&again.transaction.payment)
            .unwrap();
        assert_eq!(
            outcome,
            Authorisation::AlreadyRecorded(Box::new(stored.unwrap()))
        );
        assert_eq!(states(&journal).len(), 4);
    }

    #[test]
    fn a_decision_that_cannot_be_recorded_changes_nothing() {
        let pan = "4970100000000014";
        let reversed = f("PAY-R", pan, 1, 100);
        let mut other_card = f("PAY-1", pan, 2, 100);
        let other = decision(
            &f("PAY-1", "4970100000000022", 2, 100),
            positive(&other_card, "A1B2C3"),
            Some(2),
        );
        let mut unremittable = f("PAY-2", pan, 3, 100);
        card_mut(&mut unremittable).amount = Money::new(101, Currency::EUR).emv_amount().unwrap();
        card_mut(&mut other_card).atc = 2;
        let cases: [(&AcquirerTransaction, Decision, &str); 3] = [
            (
                &reversed,
                decision(&reversed, positive(&reversed, "A1B2C3"), Some(1)),
                "journal :memory:: record: payment PAY-R was reversed before it arrived and cannot be authorised",
            ),
            (
                &other_card,
                other,
                "journal :memory:: record: payment PAY-1: the cards of F and the decision differ",
            ),
            (
                &unremittable,
                decision(&unremittable, positive(&unremittable, "A1B2C3"), Some(3)),
                "journal :memory:: record: payment PAY-2 cannot be remitted: field `amount`: expected the card's 9F02 equal to the request's amount",
            ),
        ];
        for (transaction, decision, expected) in cases {
            let mut journal = Journal::open_in_memory().unwrap();
            journal.reverse(&reversal("PAY-R"), NOW).unwrap();
            let error = journal
                .authorise_with(transaction, NOW, |_| decision)
                .unwrap_err()
                .to_string();
            assert_eq!(error, expected);
            // Nothing was kept: no transaction, no counter, and the acquirer is not set,
            // so the journal still takes any acquirer's first transaction.
            assert!(states(&journal).is_empty(), "{expected}");
            assert_eq!(journal.card_last_atc(pan, 1).unwrap(), None, "{expected}");
            assert_eq!(journal.acquirer().unwrap(), None, "{expected}");
            let mut foreign = f("PAY-9", pan, 9, 100);
            foreign.acquirer = AcquirerId::from("ACQ-2");
            let g = positive(&foreign, "A1B2C3");
            let recorded =
                journal.authorise_with(&foreign, NOW, |_| decision_for(&foreign, g.clone()));
            assert_eq!(recorded.unwrap(), Authorisation::Recorded(g), "{expected}");
        }
    }

    fn decision_for(f: &AcquirerTransaction, g: Acknowledgement) -> Decision {
        decision(f, g, None)
    }

    #[test]
    fn hex_text_is_upper_case_hex_on_the_stack_up_to_32_bytes() {
        let cases: [(Vec<u8>, String, bool); 5] = [
            (vec![], String::new(), true),
            (vec![0x0A], "0A".into(), true),
            (vec![0xAB, 0xcd], "ABCD".into(), true),
            (vec![0xEF; 32], "EF".repeat(32), true),
            (vec![0x01; 33], "01".repeat(33), false),
        ];
        for (bytes, expected, short) in cases {
            let text = HexText::of(&bytes);
            assert_eq!(matches!(text, HexText::Short { .. }), short, "{expected}");
            let rusqlite::types::ToSqlOutput::Borrowed(rusqlite::types::ValueRef::Text(got)) =
                rusqlite::ToSql::to_sql(&text).unwrap()
            else {
                panic!("{expected}: not text");
            };
            assert_eq!(got, expected.as_bytes());
        }
    }

    #[test]
    fn the_journal_finds_what_it_needs_by_its_keys() {
        // No statement on the path of an authorisation, a cut-off or a batch reads the
        // whole table of transactions: each goes by `seq`, `payment` or the batch index.
        let journal = Journal::open_in_memory().unwrap();
        for sql in [
            LAST_CUT_SEQ,
            ANY_PENDING,
            CUT_OFF_PENDING,
            OLDEST_PENDING,
            "SELECT f_json, g_json, state, batch FROM transactions WHERE payment = ?1",
            "SELECT payment FROM transactions WHERE batch = ?1 ORDER BY seq",
            "UPDATE transactions SET state = 'remitted', updated_at = ?2 WHERE batch = ?1",
        ] {
            let mut statement = journal
                .connection
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap();
            let mut rows = statement.raw_query();
            let mut plan = Vec::new();
            while let Some(row) = rows.next().unwrap() {
                plan.push(row.get::<_, String>(3).unwrap());
            }
            assert!(
                plan.iter()
                    .any(|step| step.starts_with("SEARCH transactions")),
                "{sql}: {plan:?}"
            );
            assert!(
                !plan
                    .iter()
                    .any(|step| step.starts_with("SCAN transactions")),
                "{sql}: {plan:?}"
            );
        }
    }

    #[test]
    fn the_pending_transactions_are_the_authorised_ones_since_the_last_batch() {
        let mut journal = Journal::open_in_memory().unwrap();
        let at = |millis| NOW.plus_millis(millis);
        let record = |journal: &mut Journal, payment: &str, atc: u16, when: i64, ok: bool| {
            let f = f(payment, "4970100000000014", atc, 100);
            let g = if ok {
                positive(&f, "A1B2C3")
            } else {
                negative(&f, RefusalReason::CardExpired)
            };
            journal.record(&f, &g, at(when)).unwrap();
        };
        let batch_of = |journal: &Journal, number: u64| -> Vec<String> {
            let mut payments = Vec::new();
            journal
                .batch_records(number, |record| {
                    payments.push(record.payment.0.into());
                    Ok::<_, JournalError>(())
                })
                .unwrap();
            payments
        };
        assert_eq!(journal.oldest_pending().unwrap(), None);
        // Recorded out of the clock's order: the oldest is the earliest time.
        record(&mut journal, "PAY-1", 1, 5, true);
        record(&mut journal, "PAY-2", 2, 0, false);
        record(&mut journal, "PAY-3", 3, 1, true);
        assert_eq!(journal.oldest_pending().unwrap(), Some(at(1)));
        assert_eq!(journal.cut_off(at(10)).unwrap().map(|b| b.number), Some(1));
        assert_eq!(batch_of(&journal, 1), ["PAY-1", "PAY-3"]);
        assert_eq!(journal.oldest_pending().unwrap(), None);
        assert_eq!(journal.cut_off(at(11)).unwrap(), None);
        // Authorised then reversed after the batch: nothing pending.
        record(&mut journal, "PAY-4", 4, 12, true);
        journal.reverse(&reversal("PAY-4"), at(13)).unwrap();
        record(&mut journal, "PAY-5", 5, 14, false);
        assert_eq!(journal.oldest_pending().unwrap(), None);
        assert_eq!(journal.cut_off(at(15)).unwrap(), None);
        record(&mut journal, "PAY-6", 6, 16, true);
        assert_eq!(journal.oldest_pending().unwrap(), Some(at(16)));
        assert_eq!(journal.cut_off(at(17)).unwrap().map(|b| b.number), Some(2));
        assert_eq!(batch_of(&journal, 2), ["PAY-6"]);
        assert_eq!(
            states(&journal),
            [
                ("PAY-1".into(), TransactionState::InBatch, Some(1)),
                ("PAY-2".into(), TransactionState::Refused, None),
                ("PAY-3".into(), TransactionState::InBatch, Some(1)),
                ("PAY-4".into(), TransactionState::Reversed, None),
                ("PAY-5".into(), TransactionState::Refused, None),
                ("PAY-6".into(), TransactionState::InBatch, Some(2)),
            ]
        );
    }
}
