//! What the acquirers' PostgreSQL stores share: the bank-card journal
//! ([`super::postgres::PgJournal`]) and the wallet's accounts
//! ([`super::wallet::postgres::PgWalletStore`]) connect, migrate, retry and reconnect
//! alike, and may live in one database.
//!
//! - [`Session`]: the one connection of a store, its address (for reconnecting), and
//!   [`Session::run_while`], which runs an operation again after a serialization
//!   failure or a deadlock (at most [`MAX_ATTEMPTS`] runs) and once more on a new
//!   connection when the old one was lost;
//! - the migrations of `migrations/postgres/`, numbered in one sequence and recorded in
//!   one `schema_migrations` table: each store applies those it owns (the journal
//!   `card_journal`, the wallet `wallet`; neither touches the other's tables) in one
//!   transaction under one advisory lock, so a card acquirer and a wallet acquirer may
//!   open one database in any order, at once;
//! - [`Statements`]: the statements a connection has prepared, each parsed by the
//!   server once per connection instead of at every call (a statement run from its text
//!   costs a round trip more: parse, then bind and execute);
//! - the payments' advisory locks ([`lock_payments`]).

use std::cell::{RefCell, RefMut};
use std::collections::HashMap;

use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{Client, Config, GenericClient, NoTls, Row, Statement};
use sha2::{Digest, Sha256};

use crate::messages::PaymentId;

/// The migrations, in order: (version, name, SQL). Version `n` is
/// `migrations/postgres/000n_NAME.sql`; the last is [`PG_SCHEMA_VERSION`].
pub(crate) const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        CARD_JOURNAL,
        include_str!("../../migrations/postgres/0001_card_journal.sql"),
    ),
    (
        2,
        WALLET,
        include_str!("../../migrations/postgres/0002_wallet.sql"),
    ),
    (
        3,
        CARD_JOURNAL,
        include_str!("../../migrations/postgres/0003_card_journal_columns.sql"),
    ),
];

/// The newest migration this build knows: a database that records a newer one (or a
/// known number under another name) was migrated by a newer build, and is refused.
pub(crate) const PG_SCHEMA_VERSION: i64 = 3;

/// The name of the bank-card journal's migrations.
pub(crate) const CARD_JOURNAL: &str = "card_journal";

/// The name of the wallet's migrations.
pub(crate) const WALLET: &str = "wallet";

/// The table that records which migrations a database has, made before the first.
const MIGRATIONS_TABLE: &str = "CREATE TABLE schema_migrations (
    version BIGINT PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)";

/// The advisory lock (one 64-bit key: ASCII `tpayMIGR`) held while a process checks and
/// applies the migrations, so that processes opening a new database at once take
/// turns: the first makes the schema, the others find it made.
pub(crate) const MIGRATION_LOCK: i64 = 0x7470_6179_4d49_4752;

/// How many times in all a transaction is run when the server aborts it as a
/// serialization failure or a deadlock.
pub const MAX_ATTEMPTS: u32 = 5;

/// A store's error as [`Session::run_while`] needs to see it.
pub(crate) trait PgFailure {
    /// The client's error it carries, if it is one.
    fn postgres_error(&self) -> Option<&postgres::Error>;

    /// Whether a unique violation (SQLSTATE 23505) may be run again: true for a store
    /// whose every operation, run again, finds the row that another process inserted
    /// under the same key and answers as to a repeated request.
    fn retries_unique_violation(&self) -> bool {
        false
    }
}

/// Why opening a database failed.
#[derive(Debug)]
pub(crate) enum OpenFailure {
    /// The address does not parse, the server cannot be reached or refused.
    Postgres(postgres::Error),
    /// The database records a migration newer than this build's.
    NewerSchema(i64),
}

/// The most statements one connection keeps prepared. A store runs a fixed set of
/// statements (the wallet's, the most, are about fifty); the bound only keeps a bug
/// from growing the server's memory without end.
const MAX_PREPARED: usize = 256;

/// The statements one connection has prepared, by their text. A prepared statement
/// belongs to the server session, not to a transaction: one prepared in a transaction
/// that then rolls back stays valid, so the cache needs no undoing; it is dropped with
/// its connection, and a new connection starts with none.
#[derive(Default)]
pub(crate) struct Statements(HashMap<String, Statement>);

impl Statements {
    /// `sql` as prepared on this connection, preparing it the first time.
    pub(crate) fn prepared(
        &mut self,
        client: &mut impl GenericClient,
        sql: &str,
    ) -> Result<Statement, postgres::Error> {
        self.prepared_as(client, sql, |sql| sql.to_owned())
    }

    /// The statement kept under `key`, preparing `text(key)` the first time: a caller
    /// whose statements are written in another form (the wallet's, in SQLite's `?N`)
    /// rewrites each once per connection, not at every call.
    pub(crate) fn prepared_as(
        &mut self,
        client: &mut impl GenericClient,
        key: &str,
        text: impl FnOnce(&str) -> String,
    ) -> Result<Statement, postgres::Error> {
        if let Some(statement) = self.0.get(key) {
            return Ok(statement.clone());
        }
        let statement = client.prepare(&text(key))?;
        if self.0.len() >= MAX_PREPARED {
            self.0.clear();
        }
        self.0.insert(key.to_owned(), statement.clone());
        Ok(statement)
    }

    /// How many statements are kept prepared.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// Runs `sql`, prepared once, with `params`; the rows it changed.
    pub(crate) fn execute(
        &mut self,
        client: &mut impl GenericClient,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, postgres::Error> {
        let statement = self.prepared(client, sql)?;
        client.execute(&statement, params)
    }

    /// Runs `sql`, prepared once, with `params`; its one row.
    pub(crate) fn query_one(
        &mut self,
        client: &mut impl GenericClient,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, postgres::Error> {
        let statement = self.prepared(client, sql)?;
        client.query_one(&statement, params)
    }

    /// Runs `sql`, prepared once, with `params`; its row, if any.
    pub(crate) fn query_opt(
        &mut self,
        client: &mut impl GenericClient,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, postgres::Error> {
        let statement = self.prepared(client, sql)?;
        client.query_opt(&statement, params)
    }
}

/// A connection and the statements prepared on it.
struct Connection {
    /// The connection.
    client: Client,
    /// What it has prepared.
    statements: Statements,
}

impl Connection {
    fn new(client: Client) -> Connection {
        Connection {
            client,
            statements: Statements::default(),
        }
    }
}

/// One store's connection to its database.
pub(crate) struct Session {
    /// How to connect again after the connection is lost.
    config: Config,
    /// The one connection, borrowed for the length of one operation; `None` once it was
    /// lost and could not be made again (the next operation tries).
    connection: RefCell<Option<Connection>>,
}

impl Drop for Session {
    /// Closes the connection. The client blocks on a runtime of its own to say goodbye,
    /// which tokio refuses inside an async task (a service dropping its roles as it
    /// stops): there it is closed on a thread of its own.
    fn drop(&mut self) {
        let Some(connection) = self.connection.get_mut().take() else {
            return;
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            std::thread::scope(|scope| {
                scope.spawn(move || drop(connection));
            });
        } else {
            drop(connection);
        }
    }
}

impl Session {
    /// Connects to the database at `address` (a `postgres://` URL or `key=value`
    /// words, as libpq takes them), naming the connection `application` unless the
    /// address names it, and applies the migrations named `owned` that the database
    /// lacks ([`migrate`]).
    pub(crate) fn open(
        address: &str,
        application: &str,
        owned: &str,
    ) -> Result<Session, OpenFailure> {
        let mut config: Config = address.parse().map_err(OpenFailure::Postgres)?;
        if config.get_application_name().is_none() {
            config.application_name(application);
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(std::time::Duration::from_secs(10));
        }
        let mut client = config.connect(NoTls).map_err(OpenFailure::Postgres)?;
        migrate(&mut client, owned)?;
        Ok(Session {
            config,
            connection: RefCell::new(Some(Connection::new(client))),
        })
    }

    /// How many statements the connection keeps prepared (0 while it is lost).
    pub(crate) fn prepared_statements(&self) -> usize {
        self.connection
            .try_borrow()
            .ok()
            .and_then(|slot| slot.as_ref().map(|connection| connection.statements.len()))
            .unwrap_or(0)
    }

    /// Runs `body` in the connection: again when the server aborted it as a
    /// serialization failure or deadlock (at most [`MAX_ATTEMPTS`] runs), and once more
    /// on a new connection when the connection was lost, each time only while
    /// `may_repeat` says so (a listing that has handed rows out is not started over:
    /// its caller has them). `fail` names a connection's failure in the store's error;
    /// `reentered` is the error of a call made from inside `body`. `body` gets the
    /// connection and the statements prepared on it ([`Statements`]).
    pub(crate) fn run_while<T, E: PgFailure>(
        &self,
        may_repeat: &dyn Fn() -> bool,
        fail: impl Fn(postgres::Error) -> E,
        reentered: impl FnOnce() -> E,
        mut body: impl FnMut(&mut Client, &mut Statements) -> Result<T, E>,
    ) -> Result<T, E> {
        let Ok(mut slot): Result<RefMut<'_, Option<Connection>>, _> =
            self.connection.try_borrow_mut()
        else {
            return Err(reentered());
        };
        let mut reconnected = false;
        let mut connection = match slot.take() {
            Some(connection) if !connection.client.is_closed() => connection,
            // Lost since the last call (the server restarted): the one new connection.
            _ => {
                reconnected = true;
                Connection::new(self.config.connect(NoTls).map_err(&fail)?)
            }
        };
        let mut attempts: u32 = 1;
        let outcome = loop {
            match body(&mut connection.client, &mut connection.statements) {
                Ok(value) => break Ok(value),
                Err(error) if !may_repeat() => break Err(error),
                Err(error) if is_retryable(&error) && attempts < MAX_ATTEMPTS => {
                    // Let the transaction that won go on before trying again.
                    std::thread::sleep(std::time::Duration::from_millis(u64::from(
                        attempts.saturating_mul(3),
                    )));
                    attempts = attempts.saturating_add(1);
                }
                Err(error) if !reconnected && is_connection_lost(&error, &connection.client) => {
                    reconnected = true;
                    match self.config.connect(NoTls) {
                        Ok(new) => connection = Connection::new(new),
                        // The old one is closed: not kept, the next call connects.
                        Err(source) => return Err(fail(source)),
                    }
                }
                Err(error) => break Err(error),
            }
        };
        *slot = Some(connection);
        outcome
    }
}

/// Whether the server aborted the transaction so that it may simply be run again.
fn is_retryable<E: PgFailure>(error: &E) -> bool {
    let Some(source) = error.postgres_error() else {
        return false;
    };
    source.code().is_some_and(|code| {
        *code == SqlState::T_R_SERIALIZATION_FAILURE
            || *code == SqlState::T_R_DEADLOCK_DETECTED
            || (*code == SqlState::UNIQUE_VIOLATION && error.retries_unique_violation())
    })
}

/// Whether the error says the connection is gone (the server shut down or restarted,
/// the socket closed), so that a new one may succeed.
fn is_connection_lost<E: PgFailure>(error: &E, client: &Client) -> bool {
    let Some(source) = error.postgres_error() else {
        return false;
    };
    if source.is_closed() || client.is_closed() {
        return true;
    }
    source.code().is_some_and(|code| {
        *code == SqlState::ADMIN_SHUTDOWN
            || *code == SqlState::CRASH_SHUTDOWN
            || *code == SqlState::CANNOT_CONNECT_NOW
            || code.code().starts_with("08")
    })
}

/// Creates `schema_migrations` if absent and applies the migrations named `owned` it
/// does not list, in order, in one transaction holding [`MIGRATION_LOCK`]. A database
/// that lists a migration this build does not know (a newer number, or a known number
/// under another name) is refused, whoever owns it: a newer build migrated it.
fn migrate(client: &mut Client, owned: &str) -> Result<(), OpenFailure> {
    let pg = OpenFailure::Postgres;
    let mut transaction = client.transaction().map_err(pg)?;
    transaction
        .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .map_err(pg)?;
    // After the lock, so that a process that made the table while this one waited is
    // seen (READ COMMITTED: each statement sees what committed before it).
    let exists: bool = transaction
        .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])
        .and_then(|row| row.try_get(0))
        .map_err(pg)?;
    if !exists {
        transaction.batch_execute(MIGRATIONS_TABLE).map_err(pg)?;
    }
    let applied: Vec<(i64, String)> = transaction
        .query(
            "SELECT version, name FROM schema_migrations ORDER BY version",
            &[],
        )
        .map_err(pg)?
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect::<Result<_, postgres::Error>>()
        .map_err(pg)?;
    let known = |version: i64, name: &str| {
        MIGRATIONS
            .iter()
            .any(|&(known, known_name, _)| known == version && known_name == name)
    };
    if let Some((unknown, _)) = applied
        .iter()
        .find(|(version, name)| !known(*version, name))
    {
        return Err(OpenFailure::NewerSchema(*unknown));
    }
    for &(version, name, sql) in MIGRATIONS {
        if name != owned || applied.iter().any(|(applied, _)| *applied == version) {
            continue;
        }
        transaction.batch_execute(sql).map_err(pg)?;
        transaction
            .execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                &[&version, &name],
            )
            .map_err(pg)?;
    }
    transaction.commit().map_err(pg)
}

/// A payment's advisory lock key: the first four bytes of its id's SHA-256. Two ids
/// with the same key only take turns needlessly.
pub(crate) fn payment_key(payment: &PaymentId) -> i32 {
    let digest = Sha256::digest(payment.0.as_bytes());
    let mut key = [0u8; 4];
    key.copy_from_slice(digest.get(..4).unwrap_or(&[0; 4]));
    i32::from_be_bytes(key)
}

/// Takes the advisory locks of `payments` in class `class` until the end of the
/// transaction, in the order of their keys and each once: two transactions locking
/// several payments take them in one order, so never wait for each other in a circle.
pub(crate) fn lock_payments(
    client: &mut impl GenericClient,
    statements: &mut Statements,
    class: i32,
    payments: &[&PaymentId],
) -> Result<(), postgres::Error> {
    let mut keys: Vec<i32> = payments
        .iter()
        .map(|payment| payment_key(payment))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    for key in keys {
        statements.execute(
            client,
            "SELECT pg_advisory_xact_lock($1, $2)",
            &[&class, &key],
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_migrations_are_numbered_from_1_up_to_the_schema_version() {
        for (index, (version, _, sql)) in MIGRATIONS.iter().enumerate() {
            assert_eq!(usize::try_from(*version).ok(), Some(index + 1));
            assert!(!sql.trim().is_empty());
        }
        assert_eq!(MIGRATIONS.last().map(|m| m.0), Some(PG_SCHEMA_VERSION));
        // Each store owns some, and only the two stores own any.
        assert!(MIGRATIONS.iter().any(|m| m.1 == CARD_JOURNAL));
        assert!(MIGRATIONS.iter().any(|m| m.1 == WALLET));
        assert!(
            MIGRATIONS
                .iter()
                .all(|m| m.1 == CARD_JOURNAL || m.1 == WALLET)
        );
    }
}
