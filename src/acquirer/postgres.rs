//! The bank-card acquirer's journal on PostgreSQL, [`PgJournal`]: one database that
//! several acquirer processes share (`telepay serve acquirer-card` with `[acquirer_card]
//! store = "postgres://…"`, `telepay acquirer … --store postgres://…`).
//!
//! It keeps the rows, states and answers of the SQLite [`crate::acquirer::journal`]
//! (its module doc draws the states), so that a batch cut from either for the same
//! transactions is the same bytes; the schema is `migrations/postgres/`, applied when
//! the database is opened ([`PgJournal::open`]).
//!
//! # Several processes at once
//!
//! Every operation is one transaction at PostgreSQL's default isolation, READ
//! COMMITTED, made safe by explicit locks taken in one order (a payment's lock, then
//! a card's row, then transaction rows), so that no two operations wait for each other
//! in a circle:
//!
//! - **Authorisation** ([`CardJournal::authorise_with`]): the payment's advisory lock
//!   (`pg_advisory_xact_lock(PAYMENT_LOCKS, key)`, the key drawn from the payment id's
//!   SHA-256) first, so that two processes given the same F, or a reversal racing its
//!   F, take turns; then the look-up of the payment (`payment UNIQUE`: a repeated F,
//!   sent to either process, gets the stored G); then the card's row, made if new
//!   (`INSERT … ON CONFLICT DO NOTHING`) and locked (`SELECT … FOR UPDATE`), so that
//!   two processes authorising one card take turns and the second reads the counter
//!   the first recorded: the ATC replay guard holds across processes. The rules decide
//!   under those locks and the decision is committed before the G is returned.
//! - **Reversal** ([`CardJournal::reverse`]): the payment's advisory lock, then the
//!   transaction's row `FOR UPDATE`: a reversal and a cut-off that meet on one row take
//!   turns, and the one that comes second sees what the first did (a cut-off skips a
//!   reversed row; a reversal finds a batched one too late).
//! - **Cut-off** ([`CardJournal::cut_off`]): `pg_advisory_xact_lock(CUT_OFF_LOCK)`,
//!   so one process at a time cuts; then the batch number after the last committed one
//!   and one `UPDATE … WHERE state = 'authorised'` that moves every committed
//!   authorised transaction into it. An authorisation still in progress is not seen
//!   and goes into the next batch: a transaction is in exactly one batch, none lost.
//!   The pending transactions are found by their state, not (as in SQLite) as those
//!   after the last batch's highest `seq`: here `seq` is taken at insert and a smaller
//!   one may commit later.
//! - **Telecollection** ([`CardJournal::mark_sent`], [`CardJournal::mark_acknowledged`]):
//!   the batch's row `FOR UPDATE`, then the same transitions as SQLite: idempotent, so
//!   two processes remitting the same batch send the same bytes and the centre counts
//!   it once.
//! - **Retries**: a transaction the server aborts as a serialization failure (SQLSTATE
//!   40001) or a deadlock (40P01) is run again from its start, up to
//!   [`MAX_ATTEMPTS`] times in all; the rules' closure may then be called again (it is
//!   pure).
//! - **Connection lost** (the server restarted): a call finding its connection closed,
//!   or losing it during the call, connects **once** more and runs the operation again
//!   from its start. Every operation is idempotent (an F already recorded comes back
//!   as recorded, a cut-off finds nothing left to cut, a mark is a no-op), so a
//!   transaction whose commit was sent but not confirmed is neither lost nor doubled.
//!   If the new connection fails too, the call fails with
//!   [`JournalError::Postgres`] naming the database (never its password) and the next
//!   call tries again.
//!
//! # The client
//!
//! The synchronous `postgres` crate runs each call on a small tokio runtime of its own:
//! call a [`PgJournal`] from ordinary threads, or from inside a tokio runtime only
//! through `spawn_blocking` or `block_in_place` (what the network node does), never
//! directly from an async task, where tokio refuses to start a runtime.
//!
//! The connection is made without TLS ([`postgres::NoTls`]): for a database on the
//! same machine, over its Unix socket (`postgres://USER@/DB?host=/run/postgresql`) or
//! loopback. A database on another machine needs TLS: build the client with a TLS
//! connector (`tokio-postgres-rustls` over the workspace's rustls, or
//! `postgres-native-tls`) instead of `NoTls`, and `sslmode=verify-full` in the address;
//! `sslmode=require` with this build fails at connection rather than send in clear.

use std::cell::Cell;
use std::ops::ControlFlow;

use postgres::types::ToSql;
use postgres::{Client, GenericClient, IsolationLevel, Row};

use super::pg::{
    CARD_JOURNAL, OpenFailure, PG_SCHEMA_VERSION, PgFailure, Session, Statements, lock_payments,
};

use crate::acquirer::batch::{BatchHeader, BatchRecord, BatchWriter};
use crate::acquirer::card::{CardHistory, CardKey, Decision};
use crate::acquirer::journal::{
    At, Authorisation, BatchColumns, BatchState, BatchSummary, EntryColumns, JournalEntry,
    JournalError, Known, NOT_A_CARD_PAYMENT, Operation, RECORD_COLUMNS, RecordColumns,
    ReversalOutcome, StoredAs, StoredRow, StoredTransaction, StoredValue, TRANSACTION_COLUMNS,
    TransactionFilter, TransactionState, atc_to_raise, batch_key, check_ids, currency_total,
    decided_state, f_columns, g_columns, means_text, reversal_outcome, stored_as, stored_f,
    stored_g,
};
use crate::acquirer::store::CardJournal;
use crate::messages::{AcquirerId, AcquirerTransaction, PaymentId, Reversal, Timestamp};

/// The advisory lock (ASCII `tpayCUTO`) a cut-off holds: one process cuts at a time.
const CUT_OFF_LOCK: i64 = 0x7470_6179_4355_544f;

/// The class of the payments' advisory locks, the first of their two 32-bit keys
/// (ASCII `tpay`). PostgreSQL keeps two-key locks apart from one-key locks, so these
/// never meet the migrations' lock or [`CUT_OFF_LOCK`].
const PAYMENT_LOCKS: i32 = 0x7470_6179;

pub use super::pg::MAX_ATTEMPTS;

/// How many rows a listing or a batch reads from the server at a time: a batch of any
/// size streams.
const FETCH_ROWS: i32 = 256;

/// The SQL of the transactions' columns bound by [`insert_transaction`]: F and G in
/// columns, as the SQLite journal holds them (migration 3).
const INSERT_TRANSACTION: &str = "INSERT INTO transactions (payment, purchase, merchant, pan, \
     pan_sequence, expiry, atc, amount_minor, currency, requested_at, transaction_date, \
     cryptogram, amount_other, transaction_type, terminal_country, aid, aip, tvr, \
     unpredictable_number, cid, iad, authorisation_code, state, batch, recorded_at, updated_at, \
     f_json, g_json, service, designation, designation_digest, amount_exponent, nonce, \
     valid_until, accepted_means, session, terminal, card_amount, card_currency, pin_verified, \
     response_code, arpc, refusal_reason) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, \
     $19, $20, $21, $22, $23, NULL, $24, $24, $25, $26, $27, $28, $29, $30, $31, $32, $33, $34, \
     $35, $36, $37, $38, $39, $40, $41)";

/// Makes the card's row if it has none (no counter spent yet).
const ENSURE_CARD: &str = "INSERT INTO cards (pan, pan_sequence, last_atc, updated_at) \
     VALUES ($1, $2, NULL, $3) ON CONFLICT (pan, pan_sequence) DO NOTHING";

/// Locks the card's row and reads its counter.
const LOCK_CARD: &str =
    "SELECT last_atc FROM cards WHERE pan = $1 AND pan_sequence = $2 FOR UPDATE";

/// Raises the card's counter of a row that exists (`GREATEST` skips a NULL).
const RAISE_LOCKED_CARD: &str = "UPDATE cards SET last_atc = GREATEST(last_atc, $3), \
     updated_at = $4 WHERE pan = $1 AND pan_sequence = $2";

/// Raises a card's counter, never lowering it, making the card known.
const RAISE_CARD_ATC: &str = "INSERT INTO cards (pan, pan_sequence, last_atc, updated_at) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (pan, pan_sequence) DO UPDATE SET \
     last_atc = GREATEST(cards.last_atc, excluded.last_atc), updated_at = excluded.updated_at";

/// Runs `sql`, [`RAISE_LOCKED_CARD`] or [`RAISE_CARD_ATC`], for `card`'s counter `atc`.
fn raise_atc(
    client: &mut impl GenericClient,
    statements: &mut Statements,
    at: At<'_>,
    sql: &str,
    card: &CardKey,
    atc: u16,
    now: Timestamp,
) -> Result<(), JournalError> {
    statements
        .execute(
            client,
            sql,
            &[
                &card.pan,
                &i64::from(card.pan_sequence),
                &i64::from(atc),
                &now.0,
            ],
        )
        .map_err(at.pg())?;
    Ok(())
}

/// The bank-card journal in a PostgreSQL database (see the module doc for what several
/// processes sharing it may count on).
pub struct PgJournal {
    /// The connection, and how to make it again.
    session: Session,
    /// The address without its password, for errors.
    name: String,
    /// The journal's acquirer once read: written once, by the first transaction
    /// recorded, and never changed.
    acquirer: Option<AcquirerId>,
}

impl std::fmt::Debug for PgJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgJournal")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// `address` with any password replaced by `***`: the URL form's user info
/// (`postgres://user:secret@host/db`) and a `password=` parameter, in the URL's query
/// or among the key-value form's words.
pub fn redacted(address: &str) -> String {
    let hide_parameters = |text: &str, separator: char| -> String {
        text.split(separator)
            .map(|part| match part.split_once('=') {
                Some((key, _)) if key.trim().eq_ignore_ascii_case("password") => {
                    format!("{key}=***")
                }
                _ => part.to_owned(),
            })
            .collect::<Vec<_>>()
            .join(&separator.to_string())
    };
    let Some((scheme, rest)) = address.split_once("://") else {
        return hide_parameters(address, ' ');
    };
    let (before_query, query) = match rest.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (rest, None),
    };
    let (authority, path) = match before_query.find('/') {
        Some(slash) => before_query.split_at(slash),
        None => (before_query, ""),
    };
    let authority = match authority.rsplit_once('@') {
        Some((user_info, host)) => match user_info.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    match query {
        Some(query) => format!(
            "{scheme}://{authority}{path}?{}",
            hide_parameters(query, '&')
        ),
        None => format!("{scheme}://{authority}{path}"),
    }
}

impl At<'_> {
    /// The client's error, for this journal and operation.
    fn pg(self) -> impl Fn(postgres::Error) -> JournalError {
        let path = self.path.to_owned();
        let operation = self.operation;
        move |source| JournalError::Postgres {
            path: path.clone(),
            operation,
            source,
        }
    }
}

impl PgFailure for JournalError {
    fn postgres_error(&self) -> Option<&postgres::Error> {
        match self {
            JournalError::Postgres { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// A row's column, or the client's error (a type that does not match the schema).
fn column<'a, T: postgres::types::FromSql<'a>>(
    row: &'a Row,
    index: usize,
    at: At<'_>,
) -> Result<T, JournalError> {
    row.try_get(index).map_err(at.pg())
}

/// Takes `payment`'s advisory lock until the end of the transaction.
fn lock_payment(
    client: &mut impl GenericClient,
    statements: &mut Statements,
    at: At<'_>,
    payment: &PaymentId,
) -> Result<(), JournalError> {
    lock_payments(client, statements, PAYMENT_LOCKS, &[payment]).map_err(at.pg())
}

/// A signed 64-bit value of an unsigned one the schema bounds (a counter, a currency);
/// `None` beyond (a value the caller must refuse or store as NULL).
fn signed(value: u64) -> Option<i64> {
    i64::try_from(value).ok()
}

impl PgJournal {
    /// Connects to the database at `address` (a `postgres://` URL or `key=value`
    /// words, as libpq takes them) and brings its schema up to this build's, applying
    /// the missing migrations in one transaction under an advisory lock (processes
    /// opening a new database at once take turns; the first makes the schema).
    ///
    /// # Errors
    /// [`JournalError::Postgres`] when the address does not parse, the server cannot be
    /// reached or refuses; [`JournalError::MigrationVersion`] for a database migrated by a
    /// newer build.
    pub fn open(address: &str) -> Result<PgJournal, JournalError> {
        let name = redacted(address);
        let at = At {
            path: &name,
            operation: Operation::Open,
        };
        let session = Session::open(address, "telepay acquirer-card journal", CARD_JOURNAL)
            .map_err(|failure| match failure {
                OpenFailure::Postgres(source) => at.pg()(source),
                OpenFailure::NewerSchema(found) => JournalError::MigrationVersion {
                    path: name.clone(),
                    found,
                    known: PG_SCHEMA_VERSION,
                },
            })?;
        Ok(PgJournal {
            session,
            name,
            acquirer: None,
        })
    }

    /// The database's address without its password.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How many statements the journal's connection keeps prepared. An authorisation's
    /// statements are parsed by the server once per connection, not at every call;
    /// after a reconnection they are prepared again on the new connection.
    pub fn prepared_statements(&self) -> usize {
        self.session.prepared_statements()
    }

    /// Runs `body` in the journal's connection: again when the server aborted it as a
    /// serialization failure or deadlock (at most [`MAX_ATTEMPTS`] runs), and once more
    /// on a new connection when the connection was lost.
    fn run<T>(
        &self,
        operation: Operation,
        body: impl FnMut(&mut Client, &mut Statements, At<'_>) -> Result<T, JournalError>,
    ) -> Result<T, JournalError> {
        self.run_while(operation, &|| true, body)
    }

    /// [`PgJournal::run`], running `body` again only while `may_repeat` says so (a
    /// listing that has handed rows out is not started over: its caller has them).
    fn run_while<T>(
        &self,
        operation: Operation,
        may_repeat: &dyn Fn() -> bool,
        mut body: impl FnMut(&mut Client, &mut Statements, At<'_>) -> Result<T, JournalError>,
    ) -> Result<T, JournalError> {
        let at = At {
            path: &self.name,
            operation,
        };
        self.session.run_while(
            may_repeat,
            at.pg(),
            || JournalError::Reentered {
                path: self.name.clone(),
                operation,
            },
            |client, statements| body(client, statements, at),
        )
    }
}

/// A read-only transaction that sees one snapshot of the database throughout.
fn read_snapshot(client: &mut Client) -> Result<postgres::Transaction<'_>, postgres::Error> {
    client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
}

/// F, G and the state stored for `payment`.
fn stored_transaction(
    client: &mut impl GenericClient,
    statements: &mut Statements,
    at: At<'_>,
    payment: &PaymentId,
) -> Result<Option<StoredTransaction>, JournalError> {
    let Some(row) = statements
        .query_opt(
            client,
            concat!(
                "SELECT ",
                g_columns!(),
                ", ",
                f_columns!(),
                ", state, batch FROM transactions WHERE payment = $1"
            ),
            &[&payment.0.as_str()],
        )
        .map_err(at.pg())?
    else {
        return Ok(None);
    };
    let state: String = row.try_get("state").map_err(at.pg())?;
    let batch: Option<i64> = row.try_get("batch").map_err(at.pg())?;
    Ok(Some(StoredTransaction {
        transaction: stored_f(at, payment, &row)?,
        acknowledgement: stored_g(at, payment, &row)?,
        state: TransactionState::from_name(&state)
            .ok_or_else(|| at.corrupt(payment, "state", &state))?,
        batch: batch
            .map(|batch| u64::try_from(batch).map_err(|_| at.corrupt(payment, "batch", batch)))
            .transpose()?,
    }))
}

impl StoredRow for Row {
    fn value<T: StoredValue>(
        &self,
        at: At<'_>,
        payment: &PaymentId,
        column: &'static str,
    ) -> Result<Option<T>, JournalError> {
        // The row is fetched: a failure here is a column missing or of another type.
        self.try_get(column)
            .map_err(|error| at.corrupt(payment, column, error))
    }
}

/// A stored counter as the rules take it.
fn last_atc(at: At<'_>, card: &CardKey, found: Option<i64>) -> Result<Option<u16>, JournalError> {
    found
        .map(|atc| {
            u16::try_from(atc)
                .map_err(|_| at.corrupt(crate::emv::mask_pan(&card.pan), "last_atc", atc))
        })
        .transpose()
}

/// Makes the card's row if new, locks it until the end of the transaction, and reads
/// its counter.
fn lock_card(
    client: &mut impl GenericClient,
    statements: &mut Statements,
    at: At<'_>,
    card: &CardKey,
    now: Timestamp,
) -> Result<CardHistory, JournalError> {
    let pan_sequence = i64::from(card.pan_sequence);
    statements
        .execute(client, ENSURE_CARD, &[&card.pan, &pan_sequence, &now.0])
        .map_err(at.pg())?;
    let row = statements
        .query_one(client, LOCK_CARD, &[&card.pan, &pan_sequence])
        .map_err(at.pg())?;
    Ok(CardHistory {
        last_atc: last_atc(at, card, column(&row, 0, at)?)?,
    })
}

/// Whether a reversal of `payment` was received.
fn is_reversed(
    client: &mut impl GenericClient,
    statements: &mut Statements,
    at: At<'_>,
    payment: &PaymentId,
) -> Result<bool, JournalError> {
    let row = statements
        .query_one(
            client,
            "SELECT EXISTS (SELECT 1 FROM reversals WHERE payment = $1)",
            &[&payment.0.as_str()],
        )
        .map_err(at.pg())?;
    column(&row, 0, at)
}

/// The journal's acquirer as stored, if any.
fn stored_acquirer(
    client: &mut impl GenericClient,
    statements: &mut Statements,
    at: At<'_>,
) -> Result<Option<AcquirerId>, JournalError> {
    let row = statements
        .query_opt(client, "SELECT value FROM meta WHERE key = 'acquirer'", &[])
        .map_err(at.pg())?;
    row.map(|row| column::<String>(&row, 0, at).map(AcquirerId::from))
        .transpose()
}

/// Checks that the journal is `received`'s (`known` when already read), making it so
/// in an empty journal: two processes recording the first transactions at once agree
/// on one acquirer (`ON CONFLICT DO NOTHING`, then the value that stands).
fn check_acquirer(
    client: &mut impl GenericClient,
    statements: &mut Statements,
    at: At<'_>,
    known: Option<&AcquirerId>,
    received: &AcquirerId,
) -> Result<AcquirerId, JournalError> {
    let journal = match known {
        Some(acquirer) => acquirer.clone(),
        None => {
            statements
                .execute(
                    client,
                    "INSERT INTO meta (key, value) VALUES ('acquirer', $1) \
                     ON CONFLICT (key) DO NOTHING",
                    &[&received.0.as_str()],
                )
                .map_err(at.pg())?;
            stored_acquirer(client, statements, at)?
                .ok_or_else(|| at.corrupt("meta", "acquirer", "missing"))?
        }
    };
    if journal != *received {
        return Err(JournalError::ForeignAcquirer {
            path: at.path.to_owned(),
            operation: at.operation,
            journal,
            received: received.clone(),
        });
    }
    Ok(journal)
}

/// Inserts F with its G in `state` (a new payment: the caller looked, holding its lock).
fn insert_transaction(
    client: &mut impl GenericClient,
    statements: &mut Statements,
    at: At<'_>,
    f: &AcquirerTransaction,
    g: &crate::messages::Acknowledgement,
    (state, authorisation_code): (TransactionState, Option<&str>),
    now: Timestamp,
) -> Result<(), JournalError> {
    let payment = &f.transaction.payment;
    let Some(card) = f.transaction.means.card() else {
        return Err(at.mismatch(payment, NOT_A_CARD_PAYMENT));
    };
    let StoredAs {
        f_json,
        g_json,
        response_code,
        arpc,
        refusal_reason,
    } = stored_as(at, f, g)?;
    let hex = |bytes: &[u8]| hex::encode_upper(bytes);
    let pan_sequence = i64::from(card.pan_sequence);
    let atc = i64::from(card.atc);
    let amount_minor = signed(f.request.amount.minor);
    let currency = i64::from(f.request.amount.currency.numeric);
    let (date, cryptogram, amount_other) = (
        hex(&card.date),
        hex(&card.cryptogram),
        hex(&card.amount_other),
    );
    let (transaction_type, country, aid, aip, tvr, un, iad) = (
        hex(&[card.transaction_type]),
        hex(&card.terminal_country),
        hex(&card.aid),
        hex(&card.aip),
        hex(&card.tvr),
        hex(&card.unpredictable_number),
        hex(&card.iad),
    );
    let cid = i64::from(card.cid);
    let request = &f.request;
    let exponent = i64::from(request.amount.currency.exponent);
    let (digest, nonce, means) = (
        hex(&request.designation_digest),
        hex(&request.nonce),
        means_text(&request.accepted_means),
    );
    let session = request.session.as_ref().map(|session| session.0.as_str());
    let (card_amount, card_currency, response_code) =
        (hex(&card.amount), hex(&card.currency), hex(response_code));
    let arpc = arpc.as_ref().map(|arpc| hex(arpc));
    let values: [&(dyn ToSql + Sync); 41] = [
        &payment.0.as_str(),
        &f.transaction.purchase.0.as_str(),
        &f.merchant.0.as_str(),
        &card.pan.as_str(),
        &pan_sequence,
        &card.expiry.as_str(),
        &atc,
        &amount_minor,
        &currency,
        &f.request.date.0,
        &date,
        &cryptogram,
        &amount_other,
        &transaction_type,
        &country,
        &aid,
        &aip,
        &tvr,
        &un,
        &cid,
        &iad,
        &authorisation_code,
        &state.as_str(),
        &now.0,
        &f_json,
        &g_json,
        &request.service.0.as_str(),
        &request.designation.as_str(),
        &digest,
        &exponent,
        &nonce,
        &request.valid_until.0,
        &means.as_ref(),
        &session,
        &f.transaction.terminal.0.as_str(),
        &card_amount,
        &card_currency,
        &card.pin_verified,
        &response_code,
        &arpc,
        &refusal_reason,
    ];
    statements
        .execute(client, INSERT_TRANSACTION, &values)
        .map_err(at.pg())?;
    Ok(())
}

/// The batches `condition` selects (`$1` bound to `key` when given), with their totals.
fn select_batches(
    client: &mut impl GenericClient,
    at: At<'_>,
    condition: &str,
    key: Option<i64>,
) -> Result<Vec<BatchSummary>, JournalError> {
    let sql = format!(
        "SELECT number, acquirer, cut_off_at, state, records, bytes, checksum, sent_at, \
         acknowledged_at FROM batches {condition} ORDER BY number"
    );
    let rows = match key {
        Some(key) => client.query(sql.as_str(), &[&key]),
        None => client.query(sql.as_str(), &[]),
    }
    .map_err(at.pg())?;
    let mut batches = Vec::with_capacity(rows.len());
    for row in &rows {
        let mut summary = BatchColumns {
            number: column(row, 0, at)?,
            acquirer: column(row, 1, at)?,
            cut_off_at: column(row, 2, at)?,
            state: column(row, 3, at)?,
            records: column(row, 4, at)?,
            bytes: column(row, 5, at)?,
            checksum: column(row, 6, at)?,
            sent_at: column(row, 7, at)?,
            acknowledged_at: column(row, 8, at)?,
        }
        .into_summary(at)?;
        let number = signed(summary.number).ok_or_else(|| at.unknown_batch(summary.number))?;
        let totals = client
            .query(
                "SELECT currency, records, total_minor FROM batch_totals WHERE batch = $1 \
                 ORDER BY currency",
                &[&number],
            )
            .map_err(at.pg())?;
        for total in &totals {
            summary.totals.push(currency_total(
                at,
                summary.number,
                (
                    column(total, 0, at)?,
                    column(total, 1, at)?,
                    column(total, 2, at)?,
                ),
            )?);
        }
        batches.push(summary);
    }
    Ok(batches)
}

/// A batch record read from the columns [`RECORD_COLUMNS`] lists.
fn record_from_row(at: At<'_>, row: &Row) -> Result<BatchRecord, JournalError> {
    RecordColumns {
        payment: column(row, 0, at)?,
        merchant: column(row, 1, at)?,
        pan: column(row, 2, at)?,
        pan_sequence: column(row, 3, at)?,
        expiry: column(row, 4, at)?,
        atc: column(row, 5, at)?,
        amount_minor: column(row, 6, at)?,
        currency: column(row, 7, at)?,
        amount_other: column(row, 8, at)?,
        date: column(row, 9, at)?,
        transaction_type: column(row, 10, at)?,
        terminal_country: column(row, 11, at)?,
        aid: column(row, 12, at)?,
        aip: column(row, 13, at)?,
        tvr: column(row, 14, at)?,
        unpredictable_number: column(row, 15, at)?,
        cid: column(row, 16, at)?,
        cryptogram: column(row, 17, at)?,
        iad: column(row, 18, at)?,
        authorisation_code: column(row, 19, at)?,
    }
    .into_record(at)
}

/// A listed transaction read from the columns [`TRANSACTION_COLUMNS`] lists.
fn entry_from_row(at: At<'_>, row: &Row) -> Result<JournalEntry, JournalError> {
    EntryColumns {
        seq: column(row, 0, at)?,
        payment: column(row, 1, at)?,
        purchase: column(row, 2, at)?,
        merchant: column(row, 3, at)?,
        pan: column(row, 4, at)?,
        pan_sequence: column(row, 5, at)?,
        atc: column(row, 6, at)?,
        amount_minor: column(row, 7, at)?,
        currency: column(row, 8, at)?,
        state: column(row, 9, at)?,
        batch: column(row, 10, at)?,
        authorisation_code: column(row, 11, at)?,
        recorded_at: column(row, 12, at)?,
        updated_at: column(row, 13, at)?,
    }
    .into_entry(at)
}

/// Streams batch `key`'s records in order through a portal, [`FETCH_ROWS`] at a time,
/// in `transaction`; `each` may stop it.
fn for_each_record(
    transaction: &mut postgres::Transaction<'_>,
    at: At<'_>,
    key: i64,
    mut each: impl FnMut(BatchRecord) -> Result<ControlFlow<()>, JournalError>,
) -> Result<(), JournalError> {
    let sql = format!("SELECT {RECORD_COLUMNS} FROM transactions WHERE batch = $1 ORDER BY seq");
    let portal = transaction.bind(sql.as_str(), &[&key]).map_err(at.pg())?;
    loop {
        let rows = transaction
            .query_portal(&portal, FETCH_ROWS)
            .map_err(at.pg())?;
        if rows.is_empty() {
            return Ok(());
        }
        for row in &rows {
            if each(record_from_row(at, row)?)?.is_break() {
                return Ok(());
            }
        }
    }
}

impl CardJournal for PgJournal {
    fn name(&self) -> &str {
        &self.name
    }

    fn acquirer(&self) -> Result<Option<AcquirerId>, JournalError> {
        self.run(Operation::Read, stored_acquirer)
    }

    fn stored_transaction(
        &self,
        payment: &PaymentId,
    ) -> Result<Option<StoredTransaction>, JournalError> {
        self.run(Operation::Read, |client, statements, at| {
            stored_transaction(client, statements, at, payment)
        })
    }

    fn card_history(&self, card: &CardKey) -> Result<CardHistory, JournalError> {
        self.run(Operation::Read, |client, statements, at| {
            let row = statements
                .query_opt(
                    client,
                    "SELECT last_atc FROM cards WHERE pan = $1 AND pan_sequence = $2",
                    &[&card.pan, &i64::from(card.pan_sequence)],
                )
                .map_err(at.pg())?;
            let found: Option<i64> = match row {
                Some(row) => column(&row, 0, at)?,
                None => None,
            };
            Ok(CardHistory {
                last_atc: last_atc(at, card, found)?,
            })
        })
    }

    fn authorise_with(
        &mut self,
        f: &AcquirerTransaction,
        now: Timestamp,
        decide: &mut dyn FnMut(Known) -> Decision,
    ) -> Result<Authorisation, JournalError> {
        let payment = &f.transaction.payment;
        let Some(card) = f.transaction.means.card() else {
            let at = At {
                path: &self.name,
                operation: Operation::Record,
            };
            return Err(at.mismatch(payment, NOT_A_CARD_PAYMENT));
        };
        let key = CardKey::of(card);
        let known_acquirer = self.acquirer.clone();
        let (authorisation, acquirer) = self.run(Operation::Record, |client, statements, at| {
            let mut transaction = client.transaction().map_err(at.pg())?;
            // The payment's lock first: the same F at two processes, or its reversal,
            // take turns, and the second finds what the first committed.
            lock_payment(&mut transaction, statements, at, payment)?;
            if let Some(stored) = stored_transaction(&mut transaction, statements, at, payment)? {
                return Ok((Authorisation::AlreadyRecorded(Box::new(stored)), None));
            }
            let acquirer = check_acquirer(
                &mut transaction,
                statements,
                at,
                known_acquirer.as_ref(),
                &f.acquirer,
            )?;
            // The card's row locked: two processes authorising one card take turns, and
            // the second reads the counter the first recorded (the replay guard).
            let history = lock_card(&mut transaction, statements, at, &key, now)?;
            let reversed = is_reversed(&mut transaction, statements, at, payment)?;
            let known = Known { history, reversed };
            let decision = decide(known);
            if decision.card != key {
                return Err(at.mismatch(payment, "the cards of F and the decision"));
            }
            let g = decision.acknowledgement;
            check_ids(at, f, &g)?;
            let decided = decided_state(at, f, card, &g, reversed)?;
            insert_transaction(&mut transaction, statements, at, f, &g, decided, now)?;
            if let Some(atc) = atc_to_raise(decided.0, decision.record_atc, card.atc) {
                raise_atc(
                    &mut transaction,
                    statements,
                    at,
                    RAISE_LOCKED_CARD,
                    &key,
                    atc,
                    now,
                )?;
            }
            transaction.commit().map_err(at.pg())?;
            Ok((Authorisation::Recorded(g), Some(acquirer)))
        })?;
        if let Some(acquirer) = acquirer {
            self.acquirer = Some(acquirer);
        }
        Ok(authorisation)
    }

    fn raise_card_atc(
        &mut self,
        card: &CardKey,
        atc: u16,
        now: Timestamp,
    ) -> Result<(), JournalError> {
        self.run(Operation::Record, |client, statements, at| {
            raise_atc(client, statements, at, RAISE_CARD_ATC, card, atc, now)
        })
    }

    fn spend_card_atc_with(
        &mut self,
        card: &CardKey,
        now: Timestamp,
        decide: &mut dyn FnMut(CardHistory) -> Option<u16>,
    ) -> Result<(), JournalError> {
        self.run(Operation::Record, |client, statements, at| {
            let mut transaction = client.transaction().map_err(at.pg())?;
            let history = lock_card(&mut transaction, statements, at, card, now)?;
            if let Some(atc) = decide(history) {
                raise_atc(
                    &mut transaction,
                    statements,
                    at,
                    RAISE_LOCKED_CARD,
                    card,
                    atc,
                    now,
                )?;
            }
            transaction.commit().map_err(at.pg())
        })
    }

    fn reverse(
        &mut self,
        reversal: &Reversal,
        now: Timestamp,
    ) -> Result<ReversalOutcome, JournalError> {
        let payment = &reversal.payment;
        self.run(Operation::Reverse, |client, statements, at| {
            let mut transaction = client.transaction().map_err(at.pg())?;
            lock_payment(&mut transaction, statements, at, payment)?;
            if let Some(journal) = stored_acquirer(&mut transaction, statements, at)?
                && journal != reversal.acquirer
            {
                return Err(JournalError::ForeignAcquirer {
                    path: at.path.to_owned(),
                    operation: Operation::Reverse,
                    journal,
                    received: reversal.acquirer.clone(),
                });
            }
            let row = transaction
                .query_opt(
                    "SELECT purchase, state, batch FROM transactions WHERE payment = $1 \
                     FOR UPDATE",
                    &[&payment.0.as_str()],
                )
                .map_err(at.pg())?;
            let recorded = match row {
                None => None,
                Some(row) => Some((
                    column(&row, 0, at)?,
                    column(&row, 1, at)?,
                    column(&row, 2, at)?,
                )),
            };
            let outcome = reversal_outcome(at, reversal, recorded)?;
            if outcome == ReversalOutcome::Reversed {
                transaction
                    .execute(
                        "UPDATE transactions SET state = 'reversed', updated_at = $2 \
                         WHERE payment = $1",
                        &[&payment.0.as_str(), &now.0],
                    )
                    .map_err(at.pg())?;
            }
            if !outcome.keeps_a_marker() {
                return Ok(outcome);
            }
            transaction
                .execute(
                    "INSERT INTO reversals (payment, purchase, acquirer, reason, received_at) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (payment) DO NOTHING",
                    &[
                        &payment.0.as_str(),
                        &reversal.purchase.0.as_str(),
                        &reversal.acquirer.0.as_str(),
                        &reversal.reason,
                        &now.0,
                    ],
                )
                .map_err(at.pg())?;
            transaction.commit().map_err(at.pg())?;
            Ok(outcome)
        })
    }

    fn cut_off(&mut self, now: Timestamp) -> Result<Option<BatchSummary>, JournalError> {
        self.run(Operation::CutOff, |client, statements, at| {
            let mut transaction = client.transaction().map_err(at.pg())?;
            // One process cuts at a time; after the lock, the last batch is the last
            // one committed (READ COMMITTED reads afresh at each statement).
            transaction
                .execute("SELECT pg_advisory_xact_lock($1)", &[&CUT_OFF_LOCK])
                .map_err(at.pg())?;
            let last: i64 = {
                let row = transaction
                    .query_one("SELECT coalesce(max(number), 0) FROM batches", &[])
                    .map_err(at.pg())?;
                column(&row, 0, at)?
            };
            let number = last
                .checked_add(1)
                .ok_or_else(|| at.corrupt(last, "number", "the last batch number"))?;
            // Every committed authorised transaction; a row a reversal holds is waited
            // for and skipped if it was reversed.
            let moved = transaction
                .execute(
                    "UPDATE transactions SET state = 'in-batch', batch = $1, updated_at = $2 \
                     WHERE state = 'authorised'",
                    &[&number, &now.0],
                )
                .map_err(at.pg())?;
            if moved == 0 {
                // Nothing to remit: no batch (the transaction rolls back unchanged).
                return Ok(None);
            }
            let acquirer = stored_acquirer(&mut transaction, statements, at)?
                .ok_or_else(|| at.corrupt("meta", "acquirer", "missing"))?;
            let number_u64 =
                u64::try_from(number).map_err(|_| at.corrupt(number, "number", number))?;
            let mut totals = Vec::new();
            for row in &transaction
                .query(
                    "SELECT currency, count(*), sum(amount_minor)::BIGINT FROM transactions \
                     WHERE batch = $1 GROUP BY currency ORDER BY currency",
                    &[&number],
                )
                .map_err(at.pg())?
            {
                let total: Option<i64> = column(row, 2, at)?;
                let total = total.ok_or_else(|| at.corrupt(number, "total", "NULL"))?;
                totals.push(currency_total(
                    at,
                    number_u64,
                    (column(row, 0, at)?, column(row, 1, at)?, total),
                )?);
            }
            let header = BatchHeader {
                acquirer,
                number: number_u64,
                cut_off_at: now,
                records: moved,
                totals,
            };
            // The batch's bytes are fixed now: hashed once, the digest stored, and every
            // later writing of the batch must give the same.
            let batch_error = |source| JournalError::Batch {
                path: at.path.to_owned(),
                operation: Operation::CutOff,
                number: number_u64,
                source,
            };
            let mut writer = BatchWriter::new(std::io::sink(), &header).map_err(batch_error)?;
            for_each_record(&mut transaction, at, number, |record| {
                writer.write_record(&record).map_err(batch_error)?;
                Ok(ControlFlow::Continue(()))
            })?;
            let (_, trailer) = writer.finish().map_err(batch_error)?;
            let records = signed(moved).ok_or_else(|| at.corrupt(number, "records", moved))?;
            let bytes =
                signed(trailer.bytes).ok_or_else(|| at.corrupt(number, "bytes", trailer.bytes))?;
            transaction
                .execute(
                    "INSERT INTO batches (number, acquirer, cut_off_at, state, records, bytes, \
                     checksum) VALUES ($1, $2, $3, 'open', $4, $5, $6)",
                    &[
                        &number,
                        &header.acquirer.0.as_str(),
                        &now.0,
                        &records,
                        &bytes,
                        &hex::encode(trailer.checksum),
                    ],
                )
                .map_err(at.pg())?;
            for total in &header.totals {
                let records = signed(total.records)
                    .ok_or_else(|| at.corrupt(number, "records", total.records))?;
                let total_minor = signed(total.total_minor)
                    .ok_or_else(|| at.corrupt(number, "total_minor", total.total_minor))?;
                transaction
                    .execute(
                        "INSERT INTO batch_totals (batch, currency, records, total_minor) \
                         VALUES ($1, $2, $3, $4)",
                        &[&number, &i64::from(total.currency), &records, &total_minor],
                    )
                    .map_err(at.pg())?;
            }
            transaction.commit().map_err(at.pg())?;
            Ok(Some(BatchSummary::cut(header, &trailer)))
        })
    }

    fn batch(&self, number: u64) -> Result<Option<BatchSummary>, JournalError> {
        let Some(key) = batch_key(number) else {
            return Ok(None);
        };
        self.run(Operation::Read, |client, _, at| {
            Ok(select_batches(client, at, "WHERE number = $1", Some(key))?
                .into_iter()
                .next())
        })
    }

    fn batches(&self) -> Result<Vec<BatchSummary>, JournalError> {
        self.run(Operation::Read, |client, _, at| {
            select_batches(client, at, "", None)
        })
    }

    fn unacknowledged_batches(&self) -> Result<Vec<BatchSummary>, JournalError> {
        self.run(Operation::Read, |client, _, at| {
            select_batches(client, at, "WHERE state IN ('open', 'sent')", None)
        })
    }

    fn last_cutoff(&self) -> Result<Option<Timestamp>, JournalError> {
        self.run(Operation::Read, |client, _, at| {
            let row = client
                .query_one("SELECT max(cut_off_at) FROM batches", &[])
                .map_err(at.pg())?;
            Ok(column::<Option<i64>>(&row, 0, at)?.map(Timestamp))
        })
    }

    fn oldest_pending(&self) -> Result<Option<Timestamp>, JournalError> {
        self.run(Operation::Read, |client, _, at| {
            let row = client
                .query_one(
                    "SELECT min(recorded_at) FROM transactions WHERE state = 'authorised'",
                    &[],
                )
                .map_err(at.pg())?;
            Ok(column::<Option<i64>>(&row, 0, at)?.map(Timestamp))
        })
    }

    fn visit_batch_records(
        &self,
        number: u64,
        each: &mut dyn FnMut(BatchRecord) -> ControlFlow<()>,
    ) -> Result<(), JournalError> {
        let at = At {
            path: &self.name,
            operation: Operation::WriteBatch,
        };
        let key = batch_key(number).ok_or_else(|| at.unknown_batch(number))?;
        // Once records were handed out, a failure is not started over: the caller has
        // part of a batch, and must see the error.
        let visited = Cell::new(false);
        self.run_while(
            Operation::WriteBatch,
            &|| !visited.get(),
            |client, _, at| {
                // One snapshot for the batch's existence and all its records.
                let mut transaction = read_snapshot(client).map_err(at.pg())?;
                let row = transaction
                    .query_one(
                        "SELECT EXISTS (SELECT 1 FROM batches WHERE number = $1)",
                        &[&key],
                    )
                    .map_err(at.pg())?;
                if !column::<bool>(&row, 0, at)? {
                    return Err(at.unknown_batch(number));
                }
                for_each_record(&mut transaction, at, key, |record| {
                    visited.set(true);
                    Ok(each(record))
                })?;
                transaction.commit().map_err(at.pg())
            },
        )
    }

    fn visit_transactions(
        &self,
        filter: &TransactionFilter,
        each: &mut dyn FnMut(JournalEntry) -> ControlFlow<()>,
    ) -> Result<(), JournalError> {
        let batch = match filter.batch {
            Some(number) => match batch_key(number) {
                Some(key) => Some(key),
                None => return Ok(()),
            },
            None => None,
        };
        // LIMIT NULL is no limit.
        let limit = filter
            .limit
            .map(|limit| i64::try_from(limit).unwrap_or(i64::MAX));
        let state = filter.state.map(TransactionState::as_str);
        let payment = filter.payment.as_ref().map(|payment| payment.0.as_str());
        let sql = format!(
            "SELECT {TRANSACTION_COLUMNS} FROM transactions \
             WHERE ($1::TEXT IS NULL OR state = $1) AND ($2::BIGINT IS NULL OR batch = $2) \
             AND ($3::TEXT IS NULL OR payment = $3) ORDER BY seq LIMIT $4"
        );
        let visited = Cell::new(false);
        self.run_while(Operation::List, &|| !visited.get(), |client, _, at| {
            let mut transaction = read_snapshot(client).map_err(at.pg())?;
            let portal = transaction
                .bind(sql.as_str(), &[&state, &batch, &payment, &limit])
                .map_err(at.pg())?;
            'rows: loop {
                let rows = transaction
                    .query_portal(&portal, FETCH_ROWS)
                    .map_err(at.pg())?;
                if rows.is_empty() {
                    break;
                }
                for row in &rows {
                    visited.set(true);
                    if each(entry_from_row(at, row)?).is_break() {
                        break 'rows;
                    }
                }
            }
            transaction.commit().map_err(at.pg())
        })
    }

    fn mark_sent(&mut self, number: u64, now: Timestamp) -> Result<(), JournalError> {
        self.transition(number, now, Operation::MarkSent)
    }

    fn mark_acknowledged(&mut self, number: u64, now: Timestamp) -> Result<(), JournalError> {
        self.transition(number, now, Operation::MarkAcknowledged)
    }
}

impl PgJournal {
    /// Moves batch `number` and its transactions on, as [`crate::acquirer::journal::Journal`]
    /// does, holding the batch's row: two processes marking it take turns and the second
    /// finds it marked.
    fn transition(
        &mut self,
        number: u64,
        now: Timestamp,
        operation: Operation,
    ) -> Result<(), JournalError> {
        let at = At {
            path: &self.name,
            operation,
        };
        let key = batch_key(number).ok_or_else(|| at.unknown_batch(number))?;
        self.run(operation, |client, _, at| {
            let mut transaction = client.transaction().map_err(at.pg())?;
            let row = transaction
                .query_opt(
                    "SELECT state FROM batches WHERE number = $1 FOR UPDATE",
                    &[&key],
                )
                .map_err(at.pg())?
                .ok_or_else(|| at.unknown_batch(number))?;
            let state_name: String = column(&row, 0, at)?;
            let state = BatchState::from_name(&state_name)
                .ok_or_else(|| at.corrupt(number, "state", &state_name))?;
            let (batch_sql, rows_sql) = match (operation, state) {
                (Operation::MarkSent, BatchState::Open) => (
                    "UPDATE batches SET state = 'sent', sent_at = $2 WHERE number = $1",
                    "UPDATE transactions SET state = 'remitted', updated_at = $2 WHERE batch = $1",
                ),
                (Operation::MarkSent, BatchState::Sent)
                | (Operation::MarkAcknowledged, BatchState::Acknowledged) => return Ok(()),
                (Operation::MarkSent, BatchState::Acknowledged) => {
                    return Err(JournalError::BatchState {
                        path: at.path.to_owned(),
                        operation,
                        number,
                        state,
                    });
                }
                // Acknowledged without having been marked sent: sent by other means; the
                // time of sending is taken as now.
                (_, BatchState::Open | BatchState::Sent) => (
                    "UPDATE batches SET state = 'acknowledged', sent_at = coalesce(sent_at, $2), \
                     acknowledged_at = $2 WHERE number = $1",
                    "UPDATE transactions SET state = 'acknowledged-by-centre', updated_at = $2 \
                     WHERE batch = $1",
                ),
                (_, BatchState::Acknowledged) => return Ok(()),
            };
            transaction
                .execute(batch_sql, &[&key, &now.0])
                .map_err(at.pg())?;
            transaction
                .execute(rows_sql, &[&key, &now.0])
                .map_err(at.pg())?;
            transaction.commit().map_err(at.pg())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acquirer::pg::{MIGRATION_LOCK, payment_key};

    #[test]
    fn an_address_is_named_without_its_password() {
        let table = [
            (
                "postgres://telepay:s3cret@db.example:5432/journal",
                "postgres://telepay:***@db.example:5432/journal",
            ),
            (
                "postgres://telepay@/journal?host=/run/postgresql",
                "postgres://telepay@/journal?host=/run/postgresql",
            ),
            (
                "postgresql://u@h/d?password=hunter2&sslmode=require",
                "postgresql://u@h/d?password=***&sslmode=require",
            ),
            ("postgres://u:p@h", "postgres://u:***@h"),
            (
                "host=/tmp port=5433 user=telepay password=hunter2 dbname=j",
                "host=/tmp port=5433 user=telepay password=*** dbname=j",
            ),
            ("", ""),
        ];
        for (address, shown) in table {
            assert_eq!(redacted(address), shown, "{address}");
        }
    }

    #[test]
    fn lock_keys_are_stable_and_apart() {
        // The same payment has the same key in every process.
        assert_eq!(
            payment_key(&PaymentId::from("PAY-1")),
            payment_key(&PaymentId::from("PAY-1"))
        );
        assert_ne!(
            payment_key(&PaymentId::from("PAY-1")),
            payment_key(&PaymentId::from("PAY-2"))
        );
        assert_ne!(MIGRATION_LOCK, CUT_OFF_LOCK);
    }

    proptest::proptest! {
        /// Naming an address never panics and never shows a password given after
        /// `password=`.
        #[test]
        fn redaction_never_panics(address in "\\PC{0,64}", secret in "[a-z]{6,12}") {
            let _ = redacted(&address);
            let shown = redacted(&format!("host=/tmp password={secret} dbname=x"));
            proptest::prop_assert!(!shown.contains(&secret));
            let shown = redacted(&format!("postgres://u:{secret}@h/d"));
            proptest::prop_assert!(!shown.contains(&secret));
        }
    }
}
