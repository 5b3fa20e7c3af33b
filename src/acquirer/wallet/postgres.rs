//! The Virtual Wallet's accounts on PostgreSQL, [`PgWalletStore`]: one database that
//! several wallet-acquirer processes share (`telepay serve acquirer-wallet` with
//! `[acquirer_wallet] store = "postgres://…"`, `telepay wallet … --store postgres://…`).
//!
//! It runs the very operations of the SQLite [`super::WalletStore`] (its module doc
//! has the rules each applies and what makes each idempotent), over a PostgreSQL
//! transaction (`wallet::sql::Tx`): the same rows, states and answers. The schema is
//! `migrations/postgres/0002_wallet.sql`, applied when the store opens the database,
//! in one transaction under the advisory lock the card journal's migrations take, and
//! recorded in the same `schema_migrations`: a card acquirer and a wallet acquirer may
//! share a database, opened in any order (each applies its own migrations, and
//! neither touches the other's tables).
//!
//! # Several processes at once
//!
//! Every operation is one transaction at READ COMMITTED, each of whose statements sees
//! what committed before it; it first takes the locks of what it decides on, always in
//! one order, so that no two operations wait for each other in a circle:
//!
//! 1. the advisory locks of the payments it names (`pg_advisory_xact_lock(WALLET_PAYMENT_LOCKS,
//!    key)`, the key drawn from the payment id's SHA-256, several in the order of their
//!    keys): a payment, its reversal, its dispute and a settlement naming it take
//!    turns, and a payment id used on two accounts at once is refused as reused on the
//!    second, as SQLite would;
//! 2. the account's row, `SELECT … FOR UPDATE`: every debit (`pay`,
//!    `reserve_with_payment`, `reserve`, `settle`, the refund of `reverse`) and every
//!    credit of one account takes turns, and the second reads the balance, the
//!    provisions and the last sequence the first committed before the pure rule
//!    ([`super::rules`]) decides on them. Two processes debiting one account therefore
//!    never take it below what the rules allow (and the schema's `CHECK (balance >= 0)`
//!    and `reserved <= balance` would refuse it anyway); a repeated payment, sent to
//!    either process, finds the first one's row and gets [`super::Outcome::Repeated`].
//!
//! Keys another account's transaction may insert at the same time are UNIQUE in the
//! schema: a credit's reference, a provision's session, a dispute's identifier, an
//! account's key. The second insert waits for the first transaction and fails as a
//! unique violation (SQLSTATE 23505) once it commits; the operation is then run again
//! from its start, sees the first one's row, and answers as to a repeated request
//! (the same credit once, a dispute recorded once, another request under a used key
//! refused).
//!
//! - **Retries**: a transaction the server aborts as a serialization failure (40001), a
//!   deadlock (40P01) or, as above, a unique violation (23505) is run again from its
//!   start, up to [`crate::acquirer::postgres::MAX_ATTEMPTS`] times in all.
//! - **Connection lost** (the server restarted): the call connects **once** more and
//!   runs the operation again from its start. Every operation is idempotent, so a
//!   change whose commit was sent but not confirmed is neither lost nor doubled: run
//!   again, it is answered as repeated.
//!
//! # The client
//!
//! As [`crate::acquirer::postgres::PgJournal`]: the synchronous `postgres` crate, on a
//! small tokio runtime of its own. Call a [`PgWalletStore`] from ordinary threads, or
//! from inside a tokio runtime only through `spawn_blocking` or `block_in_place` (what
//! the network node does). No TLS: a database on the same machine (see
//! `docs/deployment.md`, "PostgreSQL").

use postgres::types::{ToSql, Type};
use postgres::{Client, IsolationLevel, Statement, Transaction};

use crate::acquirer::pg::{
    OpenFailure, PG_SCHEMA_VERSION, PgFailure, Session, Statements, WALLET, lock_payments,
};
use crate::acquirer::postgres::redacted;
use crate::messages::{Currency, DisputeId, PaymentId, Reversal, Timestamp};

use super::accounts::WalletAccounts;
use super::dispute::SignedDispute;
use super::encoding::{AccountKey, SignedWalletPayment};
use super::rules::{AccountState, Credit, Decision, Provision, Reservation, SessionId, Settlement};
use super::sql::{At, Row, Tx, Value};
use super::store::{
    self, DisputeRecording, Outcome, RefusedTransaction, StoredDispute, StoredPayment,
    WalletOperation, WalletReversal, WalletStoreError,
};

/// The class of the wallet payments' advisory locks, the first of their two 32-bit keys
/// (ASCII `tpaw`): apart from the card journal's (`tpay`) and from the one-key locks.
const WALLET_PAYMENT_LOCKS: i32 = 0x7470_6177;

/// Locks an account's row until the end of the transaction (none if it is not open:
/// opening it then races on its key, see the module doc).
const LOCK_ACCOUNT: &str = "SELECT 1 FROM wallet_accounts WHERE key = $1 FOR UPDATE";

/// The wallet's accounts in a PostgreSQL database (see the module doc for what several
/// processes sharing it may count on).
pub struct PgWalletStore {
    /// The connection, and how to make it again.
    session: Session,
    /// The address without its password, for errors.
    name: String,
}

impl std::fmt::Debug for PgWalletStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgWalletStore")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl PgFailure for WalletStoreError {
    fn postgres_error(&self) -> Option<&postgres::Error> {
        match self {
            WalletStoreError::Postgres { source, .. } => Some(source),
            _ => None,
        }
    }

    /// Every wallet operation run again after losing a race on a unique key answers as
    /// to a repeated request (module doc).
    fn retries_unique_violation(&self) -> bool {
        true
    }
}

impl PgWalletStore {
    /// Connects to the database at `address` (a `postgres://` URL or `key=value`
    /// words, as libpq takes them) and brings the wallet's tables up to this build's,
    /// applying its missing migrations in one transaction under an advisory lock
    /// (processes opening a new database at once take turns).
    ///
    /// # Errors
    /// [`WalletStoreError::Postgres`] when the address does not parse, the server
    /// cannot be reached or refuses; [`WalletStoreError::MigrationVersion`] for a
    /// database migrated by a newer build.
    pub fn open(address: &str) -> Result<PgWalletStore, WalletStoreError> {
        let name = redacted(address);
        let at = At {
            path: &name,
            operation: WalletOperation::Open,
        };
        let session = Session::open(address, "telepay acquirer-wallet accounts", WALLET).map_err(
            |failure| match failure {
                OpenFailure::Postgres(source) => at.pg()(source),
                OpenFailure::NewerSchema(found) => WalletStoreError::MigrationVersion {
                    path: name.clone(),
                    found,
                    known: PG_SCHEMA_VERSION,
                },
            },
        )?;
        Ok(PgWalletStore { session, name })
    }

    /// Runs `body` in one READ COMMITTED transaction, committed when it returns a
    /// value: again after a serialization failure, a deadlock or a lost race on a
    /// unique key, and once more on a new connection when the connection was lost.
    fn write<T>(
        &self,
        operation: WalletOperation,
        body: impl FnMut(&mut dyn Tx, At<'_>) -> Result<T, WalletStoreError>,
    ) -> Result<T, WalletStoreError> {
        self.run(operation, Client::transaction, body)
    }

    /// Runs `body` in one read-only REPEATABLE READ transaction: one snapshot for all
    /// it reads.
    fn read<T>(
        &self,
        body: impl FnMut(&mut dyn Tx, At<'_>) -> Result<T, WalletStoreError>,
    ) -> Result<T, WalletStoreError> {
        fn snapshot(client: &mut Client) -> Result<Transaction<'_>, postgres::Error> {
            client
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
        }
        self.run(WalletOperation::Read, snapshot, body)
    }

    /// Runs `body` in the transaction `begin` starts, committed when `body` returns a
    /// value, as [`Session::run_while`] runs it.
    fn run<T>(
        &self,
        operation: WalletOperation,
        begin: impl for<'c> Fn(&'c mut Client) -> Result<Transaction<'c>, postgres::Error>,
        mut body: impl FnMut(&mut dyn Tx, At<'_>) -> Result<T, WalletStoreError>,
    ) -> Result<T, WalletStoreError> {
        let at = At {
            path: &self.name,
            operation,
        };
        self.session.run_while(
            &|| true,
            at.pg(),
            || self.reentered(operation),
            |client, statements| {
                let mut transaction = begin(client).map_err(at.pg())?;
                let value = body(
                    &mut PgTx {
                        transaction: &mut transaction,
                        statements,
                    },
                    at,
                )?;
                transaction.commit().map_err(at.pg())?;
                Ok(value)
            },
        )
    }

    fn reentered(&self, operation: WalletOperation) -> WalletStoreError {
        WalletStoreError::Reentered {
            path: self.name.clone(),
            operation,
        }
    }
}

impl WalletAccounts for PgWalletStore {
    fn name(&self) -> &str {
        &self.name
    }

    fn open_account(
        &mut self,
        key: &AccountKey,
        currency: Currency,
        now: Timestamp,
    ) -> Result<Outcome<AccountState>, WalletStoreError> {
        self.write(WalletOperation::OpenAccount, |tx, at| {
            store::open_account(tx, at, key, currency, now)
        })
    }

    fn account(&self, key: &AccountKey) -> Result<Option<AccountState>, WalletStoreError> {
        self.read(|tx, at| store::load_account(tx, at, key))
    }

    fn credit(
        &mut self,
        credit: &Credit,
        now: Timestamp,
    ) -> Result<Outcome<AccountState>, WalletStoreError> {
        self.write(WalletOperation::Credit, |tx, at| {
            store::credit_account(tx, at, credit, now)
        })
    }

    fn pay(
        &mut self,
        signed: &SignedWalletPayment,
        now: Timestamp,
    ) -> Result<Outcome<Decision>, WalletStoreError> {
        self.write(WalletOperation::Pay, |tx, at| {
            store::pay(tx, at, signed, now)
        })
    }

    fn reserve(
        &mut self,
        reservation: &Reservation,
        now: Timestamp,
    ) -> Result<Outcome<(AccountState, Provision)>, WalletStoreError> {
        self.write(WalletOperation::Reserve, |tx, at| {
            store::reserve(tx, at, reservation, now)
        })
    }

    fn reserve_with_payment(
        &mut self,
        signed: &SignedWalletPayment,
        reservation: &Reservation,
        now: Timestamp,
    ) -> Result<Outcome<(AccountState, Provision)>, WalletStoreError> {
        self.write(WalletOperation::Reserve, |tx, at| {
            store::reserve_with_payment(tx, at, signed, reservation, now)
        })
    }

    fn opening(&self, session: &SessionId) -> Result<Option<StoredPayment>, WalletStoreError> {
        self.read(|tx, at| store::opening(tx, at, session))
    }

    fn provision(&self, session: &SessionId) -> Result<Option<Provision>, WalletStoreError> {
        self.read(|tx, at| store::load_provision(tx, at, session))
    }

    fn settle(
        &mut self,
        session: &SessionId,
        payments: &[SignedWalletPayment],
        now: Timestamp,
    ) -> Result<Outcome<Settlement>, WalletStoreError> {
        self.write(WalletOperation::Settle, |tx, at| {
            store::settle(tx, at, session, payments, now)
        })
    }

    fn settlement_refusals(
        &self,
        session: &SessionId,
    ) -> Result<Vec<(PaymentId, String)>, WalletStoreError> {
        self.read(|tx, at| store::settlement_refusals(tx, at, session))
    }

    fn reverse(
        &mut self,
        reversal: &Reversal,
        now: Timestamp,
    ) -> Result<WalletReversal, WalletStoreError> {
        self.write(WalletOperation::Reverse, |tx, at| {
            store::reverse(tx, at, reversal, now)
        })
    }

    fn record_refused_transaction(
        &mut self,
        refused: &RefusedTransaction,
        now: Timestamp,
    ) -> Result<(), WalletStoreError> {
        self.write(WalletOperation::RecordRefusal, |tx, at| {
            store::record_refused_transaction(tx, at, refused, now)
        })
    }

    fn refused_transaction(
        &self,
        payment: &PaymentId,
    ) -> Result<Option<RefusedTransaction>, WalletStoreError> {
        self.read(|tx, at| store::refused_transaction(tx, at, payment))
    }

    fn is_reversed(&self, payment: &PaymentId) -> Result<bool, WalletStoreError> {
        self.read(|tx, at| store::is_reversed(tx, at, payment))
    }

    fn payments(&self, key: &AccountKey) -> Result<Vec<StoredPayment>, WalletStoreError> {
        self.read(|tx, at| store::payments(tx, at, key))
    }

    fn credits(&self, key: &AccountKey) -> Result<Vec<Credit>, WalletStoreError> {
        self.read(|tx, at| store::credits(tx, at, key))
    }

    fn record_dispute(
        &mut self,
        signed: &SignedDispute,
        now: Timestamp,
    ) -> Result<DisputeRecording, WalletStoreError> {
        let at = At {
            path: &self.name,
            operation: WalletOperation::RecordDispute,
        };
        let message = match store::dispute_message(at, signed)? {
            Ok(message) => message,
            Err(refused) => return Ok(refused),
        };
        self.write(WalletOperation::RecordDispute, |tx, at| {
            store::record_dispute(tx, at, signed, &message, now)
        })
    }

    fn dispute(&self, dispute: &DisputeId) -> Result<Option<StoredDispute>, WalletStoreError> {
        self.read(|tx, at| {
            let mut found = store::read_disputes(tx, at, "dispute = ?1", Value::from(&dispute.0))?;
            Ok(found.pop())
        })
    }

    fn disputes(&self, key: &AccountKey) -> Result<Vec<StoredDispute>, WalletStoreError> {
        self.read(|tx, at| {
            store::read_disputes(
                tx,
                at,
                "account = ?1",
                Value::from(key.to_sec1().as_slice()),
            )
        })
    }
}

/// A PostgreSQL transaction as a [`Tx`], with the statements its connection prepared.
struct PgTx<'a, 'b> {
    /// The transaction.
    transaction: &'a mut Transaction<'b>,
    /// The statements prepared on its connection.
    statements: &'a mut Statements,
}

impl PgTx<'_, '_> {
    /// `sql` prepared (its parameters' types inferred by the server; once per
    /// connection) and `params` bound to them.
    fn prepare(
        &mut self,
        at: At<'_>,
        sql: &str,
        params: &[Value],
    ) -> Result<(Statement, Vec<Param>), WalletStoreError> {
        let statement = self
            .statements
            .prepared_as(self.transaction, sql, numbered)
            .map_err(at.pg())?;
        let params = bind(at, statement.params(), params)?;
        Ok((statement, params))
    }
}

impl Tx for PgTx<'_, '_> {
    fn query(
        &mut self,
        at: At<'_>,
        sql: &str,
        params: &[Value],
    ) -> Result<Vec<Row>, WalletStoreError> {
        let (statement, params) = self.prepare(at, sql, params)?;
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(Param::as_sql).collect();
        let rows = self.transaction.query(&statement, &refs).map_err(at.pg())?;
        rows.iter().map(|row| read_row(at, row)).collect()
    }

    fn execute(
        &mut self,
        at: At<'_>,
        sql: &str,
        params: &[Value],
    ) -> Result<u64, WalletStoreError> {
        let (statement, params) = self.prepare(at, sql, params)?;
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(Param::as_sql).collect();
        self.transaction.execute(&statement, &refs).map_err(at.pg())
    }

    fn lock_payments(
        &mut self,
        at: At<'_>,
        payments: &[&PaymentId],
    ) -> Result<(), WalletStoreError> {
        lock_payments(
            self.transaction,
            self.statements,
            WALLET_PAYMENT_LOCKS,
            payments,
        )
        .map_err(at.pg())
    }

    fn lock_account(&mut self, at: At<'_>, key: &AccountKey) -> Result<(), WalletStoreError> {
        let key = key.to_sec1();
        let statement = self
            .statements
            .prepared(self.transaction, LOCK_ACCOUNT)
            .map_err(at.pg())?;
        // Zero rows for an account not yet made, one otherwise.
        self.transaction
            .query(&statement, &[&key.as_slice()])
            .map_err(at.pg())?;
        Ok(())
    }
}

/// `sql` with SQLite's numbered parameters `?N` written as PostgreSQL's `$N` (the
/// statements hold no `?` in a literal).
fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '?' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

/// A row as [`Value`]s, by the columns' types (a boolean as 0 or 1, as SQLite gives
/// it).
fn read_row(at: At<'_>, row: &postgres::Row) -> Result<Row, WalletStoreError> {
    let mut values = Vec::with_capacity(row.len());
    for (index, column) in row.columns().iter().enumerate() {
        let ty = column.type_();
        let value = if *ty == Type::INT8 {
            row.try_get::<_, Option<i64>>(index)
                .map(|value| value.map_or(Value::Null, Value::Int))
        } else if *ty == Type::INT4 {
            row.try_get::<_, Option<i32>>(index)
                .map(|value| value.map_or(Value::Null, |value| Value::Int(i64::from(value))))
        } else if *ty == Type::INT2 {
            row.try_get::<_, Option<i16>>(index)
                .map(|value| value.map_or(Value::Null, |value| Value::Int(i64::from(value))))
        } else if *ty == Type::BOOL {
            row.try_get::<_, Option<bool>>(index)
                .map(|value| value.map_or(Value::Null, |value| Value::Int(i64::from(value))))
        } else if *ty == Type::TEXT || *ty == Type::VARCHAR {
            row.try_get::<_, Option<String>>(index)
                .map(|value| value.map_or(Value::Null, Value::Text))
        } else if *ty == Type::BYTEA {
            row.try_get::<_, Option<Vec<u8>>>(index)
                .map(|value| value.map_or(Value::Null, Value::Blob))
        } else {
            return Err(WalletStoreError::Column {
                path: at.path.to_owned(),
                operation: at.operation,
                index,
                expected: "an integer, a boolean, a text or a byte string",
                found: ty.name().to_owned(),
            });
        };
        values.push(value.map_err(at.pg())?);
    }
    Ok(Row(values))
}

/// A parameter's value in the type the server inferred for it from the statement.
#[derive(Debug)]
enum Param {
    /// `bigint`.
    Int8(Option<i64>),
    /// `integer`.
    Int4(Option<i32>),
    /// `text` or `varchar`.
    Text(Option<String>),
    /// `bytea`.
    Bytes(Option<Vec<u8>>),
}

impl Param {
    fn as_sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            Param::Int8(value) => value,
            Param::Int4(value) => value,
            Param::Text(value) => value,
            Param::Bytes(value) => value,
        }
    }
}

/// `values` as the parameters `types` of a prepared statement: an integer in the
/// parameter's width, a text as text, a byte string as `bytea`, NULL as any. Anything
/// else is refused (a statement this code does not write), never sent as another type.
fn bind(at: At<'_>, types: &[Type], values: &[Value]) -> Result<Vec<Param>, WalletStoreError> {
    let mismatch = |index: usize, ty: &Type| WalletStoreError::Column {
        path: at.path.to_owned(),
        operation: at.operation,
        index,
        expected: "a parameter of its kind",
        found: format!("parameter of type {}", ty.name()),
    };
    if types.len() != values.len() {
        return Err(WalletStoreError::Column {
            path: at.path.to_owned(),
            operation: at.operation,
            index: values.len(),
            expected: "as many values as parameters",
            found: format!("{} parameters", types.len()),
        });
    }
    types
        .iter()
        .zip(values)
        .enumerate()
        .map(|(index, (ty, value))| {
            Ok(match value {
                Value::Null if *ty == Type::INT8 => Param::Int8(None),
                Value::Null if *ty == Type::INT4 => Param::Int4(None),
                Value::Null if *ty == Type::BYTEA => Param::Bytes(None),
                Value::Null => Param::Text(None),
                Value::Int(value) if *ty == Type::INT8 => Param::Int8(Some(*value)),
                Value::Int(value) if *ty == Type::INT4 => Param::Int4(Some(
                    i32::try_from(*value).map_err(|_| mismatch(index, ty))?,
                )),
                Value::Text(text) if *ty == Type::TEXT || *ty == Type::VARCHAR => {
                    Param::Text(Some(text.clone()))
                }
                Value::Blob(bytes) if *ty == Type::BYTEA => Param::Bytes(Some(bytes.clone())),
                _ => return Err(mismatch(index, ty)),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_parameters_are_written_as_postgresql_reads_them() {
        let table = [
            ("SELECT ?1", "SELECT $1"),
            (
                "WHERE a = ?1 AND b = ?12 AND c = '?'",
                "WHERE a = $1 AND b = $12 AND c = '?'",
            ),
            ("?", "?"),
            ("", ""),
            ("é?2", "é$2"),
        ];
        for (sql, expected) in table {
            assert_eq!(numbered(sql), expected, "{sql}");
        }
    }

    proptest::proptest! {
        /// Rewriting never panics and changes only `?` before a digit.
        #[test]
        fn numbering_changes_only_question_marks(sql in "\\PC{0,64}") {
            let out = numbered(&sql);
            proptest::prop_assert_eq!(out.chars().count(), sql.chars().count());
            for (a, b) in sql.chars().zip(out.chars()) {
                proptest::prop_assert!(a == b || (a == '?' && b == '$'));
            }
        }
    }
}
