//! The one body of SQL the wallet's two stores run: the SQLite
//! [`super::store::WalletStore`] and the PostgreSQL [`super::postgres::PgWalletStore`]
//! apply the rules through the same functions ([`super::store`]'s), over a transaction
//! of either database ([`Tx`]), so that the same calls give the same rows and answers.
//!
//! The statements are written once, in the dialect both databases read (numbered
//! parameters `?1`, which the PostgreSQL side turns into `$1`; `EXISTS`, `ON CONFLICT`,
//! `RETURNING`), their values passed and read back as [`Value`]s. What differs is
//! what [`Tx`] says: how a transaction locks what it is about to decide on
//! ([`Tx::lock_payments`], [`Tx::lock_account`]), which SQLite needs not (its write
//! transactions are `IMMEDIATE`: one at a time) and PostgreSQL does (several processes).

use rusqlite::types::{ToSqlOutput, ValueRef};

use crate::messages::PaymentId;

use super::encoding::AccountKey;
use super::store::{WalletOperation, WalletStoreError};

/// Names the store and operation of an error.
#[derive(Clone, Copy)]
pub(crate) struct At<'a> {
    /// The store's file, or the database's address without its password.
    pub(crate) path: &'a str,
    /// The operation.
    pub(crate) operation: WalletOperation,
}

impl<'a> At<'a> {
    /// SQLite's error, for this store and operation.
    pub(crate) fn db(self) -> impl Fn(rusqlite::Error) -> WalletStoreError + 'a {
        move |source| WalletStoreError::Database {
            path: self.path.to_owned(),
            operation: self.operation,
            source,
        }
    }

    /// PostgreSQL's error, for this store and operation.
    pub(crate) fn pg(self) -> impl Fn(postgres::Error) -> WalletStoreError + 'a {
        move |source| WalletStoreError::Postgres {
            path: self.path.to_owned(),
            operation: self.operation,
            source,
        }
    }

    /// A stored value this code does not write.
    pub(crate) fn corrupt(
        self,
        table: &'static str,
        row: impl ToString,
        column: &'static str,
        found: impl ToString,
    ) -> WalletStoreError {
        WalletStoreError::Corrupt {
            path: self.path.to_owned(),
            operation: self.operation,
            table,
            row: row.to_string(),
            column,
            found: found.to_string().chars().take(32).collect(),
        }
    }

    /// A value of the rules as the databases' 64-bit integer: the rules keep them
    /// within [`super::rules::MAX_VALUE`], so this fails only on a bug, reported not
    /// panicking.
    pub(crate) fn int(
        self,
        table: &'static str,
        column: &'static str,
        value: u64,
    ) -> Result<i64, WalletStoreError> {
        i64::try_from(value).map_err(|_| self.corrupt(table, "(new)", column, value))
    }

    /// A stored integer the rules take unsigned.
    pub(crate) fn uint(
        self,
        table: &'static str,
        row: &str,
        column: &'static str,
        value: i64,
    ) -> Result<u64, WalletStoreError> {
        u64::try_from(value).map_err(|_| self.corrupt(table, row, column, value))
    }

    /// A column of another type than the statement reads.
    fn column(self, index: usize, expected: &'static str, found: &Value) -> WalletStoreError {
        WalletStoreError::Column {
            path: self.path.to_owned(),
            operation: self.operation,
            index,
            expected,
            found: found.kind().to_owned(),
        }
    }
}

/// A value bound to a statement or read from a row: the four kinds the schema uses
/// (a boolean is read as the integer 0 or 1, as SQLite gives it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    /// NULL.
    Null,
    /// An integer.
    Int(i64),
    /// A text.
    Text(String),
    /// A byte string.
    Blob(Vec<u8>),
}

impl Value {
    /// The kind, for errors.
    fn kind(&self) -> &'static str {
        match self {
            Value::Null => "NULL",
            Value::Int(_) => "an integer",
            Value::Text(_) => "a text",
            Value::Blob(_) => "a byte string",
        }
    }
}

impl From<i64> for Value {
    fn from(value: i64) -> Value {
        Value::Int(value)
    }
}

impl From<&str> for Value {
    fn from(value: &str) -> Value {
        Value::Text(value.to_owned())
    }
}

impl From<&String> for Value {
    fn from(value: &String) -> Value {
        Value::Text(value.clone())
    }
}

impl From<String> for Value {
    fn from(value: String) -> Value {
        Value::Text(value)
    }
}

impl From<&crate::messages::Text> for Value {
    fn from(value: &crate::messages::Text) -> Value {
        Value::Text(value.as_str().to_owned())
    }
}

impl From<Option<&str>> for Value {
    fn from(value: Option<&str>) -> Value {
        value.map_or(Value::Null, Value::from)
    }
}

impl From<&[u8]> for Value {
    fn from(value: &[u8]) -> Value {
        Value::Blob(value.to_vec())
    }
}

impl From<Vec<u8>> for Value {
    fn from(value: Vec<u8>) -> Value {
        Value::Blob(value)
    }
}

impl From<&Vec<u8>> for Value {
    fn from(value: &Vec<u8>) -> Value {
        Value::Blob(value.clone())
    }
}

/// The values of a statement's parameters, `?1` first.
macro_rules! args {
    ($($value:expr),* $(,)?) => {
        &[$($crate::acquirer::wallet::sql::Value::from($value)),*]
    };
}
pub(crate) use args;

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::Int(value) => ValueRef::Integer(*value),
            Value::Text(text) => ValueRef::Text(text.as_bytes()),
            Value::Blob(bytes) => ValueRef::Blob(bytes),
        }))
    }
}

/// A row read: its columns in the statement's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Row(pub(crate) Vec<Value>);

impl Row {
    fn value(
        &self,
        at: At<'_>,
        index: usize,
        expected: &'static str,
    ) -> Result<&Value, WalletStoreError> {
        self.0
            .get(index)
            .ok_or_else(|| at.column(index, expected, &Value::Null))
    }

    /// Column `index`, an integer.
    pub(crate) fn int(&self, at: At<'_>, index: usize) -> Result<i64, WalletStoreError> {
        match self.value(at, index, "an integer")? {
            Value::Int(value) => Ok(*value),
            other => Err(at.column(index, "an integer", other)),
        }
    }

    /// Column `index`, a truth value (an integer, 0 being false).
    pub(crate) fn bool(&self, at: At<'_>, index: usize) -> Result<bool, WalletStoreError> {
        Ok(self.int(at, index)? != 0)
    }

    /// Column `index`, a text.
    pub(crate) fn text(&self, at: At<'_>, index: usize) -> Result<String, WalletStoreError> {
        match self.value(at, index, "a text")? {
            Value::Text(text) => Ok(text.clone()),
            other => Err(at.column(index, "a text", other)),
        }
    }

    /// Column `index`, a text or NULL.
    pub(crate) fn opt_text(
        &self,
        at: At<'_>,
        index: usize,
    ) -> Result<Option<String>, WalletStoreError> {
        match self.value(at, index, "a text or NULL")? {
            Value::Text(text) => Ok(Some(text.clone())),
            Value::Null => Ok(None),
            other => Err(at.column(index, "a text or NULL", other)),
        }
    }

    /// Column `index`, a byte string.
    pub(crate) fn blob(&self, at: At<'_>, index: usize) -> Result<Vec<u8>, WalletStoreError> {
        match self.value(at, index, "a byte string")? {
            Value::Blob(bytes) => Ok(bytes.clone()),
            other => Err(at.column(index, "a byte string", other)),
        }
    }
}

/// One transaction of either database, in which an operation of the wallet runs.
pub(crate) trait Tx {
    /// Runs `sql` with `params`, returning its rows.
    fn query(
        &mut self,
        at: At<'_>,
        sql: &str,
        params: &[Value],
    ) -> Result<Vec<Row>, WalletStoreError>;

    /// Runs `sql` with `params`, returning how many rows it changed.
    fn execute(&mut self, at: At<'_>, sql: &str, params: &[Value])
    -> Result<u64, WalletStoreError>;

    /// Makes every other transaction that names one of `payments` wait for this one:
    /// taken first, before anything is read.
    fn lock_payments(
        &mut self,
        at: At<'_>,
        payments: &[&PaymentId],
    ) -> Result<(), WalletStoreError>;

    /// Makes every other transaction that changes `key`'s account wait for this one,
    /// and this one wait for any that does: taken before the account is read (after
    /// the payments' locks, never before), so that what is read is what stands.
    fn lock_account(&mut self, at: At<'_>, key: &AccountKey) -> Result<(), WalletStoreError>;

    /// The first row of `sql`, if any.
    fn query_opt(
        &mut self,
        at: At<'_>,
        sql: &str,
        params: &[Value],
    ) -> Result<Option<Row>, WalletStoreError> {
        Ok(self.query(at, sql, params)?.into_iter().next())
    }

    /// Whether `sql`, a `SELECT EXISTS (…)`, says true.
    fn exists(
        &mut self,
        at: At<'_>,
        sql: &str,
        params: &[Value],
    ) -> Result<bool, WalletStoreError> {
        match self.query_opt(at, sql, params)? {
            Some(row) => row.bool(at, 0),
            None => Err(at.column(0, "a truth value", &Value::Null)),
        }
    }
}

/// A SQLite transaction as a [`Tx`]: SQLite serialises write transactions
/// (`BEGIN IMMEDIATE`), so the locks are already held.
pub(crate) struct SqliteTx<'a>(pub(crate) &'a rusqlite::Connection);

impl Tx for SqliteTx<'_> {
    fn query(
        &mut self,
        at: At<'_>,
        sql: &str,
        params: &[Value],
    ) -> Result<Vec<Row>, WalletStoreError> {
        let mut statement = self.0.prepare_cached(sql).map_err(at.db())?;
        let columns = statement.column_count();
        let mut rows = statement
            .query(rusqlite::params_from_iter(params.iter()))
            .map_err(at.db())?;
        let mut read = Vec::new();
        while let Some(row) = rows.next().map_err(at.db())? {
            let mut values = Vec::with_capacity(columns);
            for index in 0..columns {
                values.push(match row.get_ref(index).map_err(at.db())? {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(value) => Value::Int(value),
                    ValueRef::Text(text) => match std::str::from_utf8(text) {
                        Ok(text) => Value::Text(text.to_owned()),
                        // What rusqlite refuses too: never read as another text.
                        Err(_) => {
                            return Err(WalletStoreError::Column {
                                path: at.path.to_owned(),
                                operation: at.operation,
                                index,
                                expected: "a text in UTF-8",
                                found: "a text not in UTF-8".to_owned(),
                            });
                        }
                    },
                    ValueRef::Blob(bytes) => Value::Blob(bytes.to_vec()),
                    ValueRef::Real(_) => {
                        return Err(WalletStoreError::Column {
                            path: at.path.to_owned(),
                            operation: at.operation,
                            index,
                            expected: "no real number",
                            found: "a real number".to_owned(),
                        });
                    }
                });
            }
            read.push(Row(values));
        }
        Ok(read)
    }

    fn execute(
        &mut self,
        at: At<'_>,
        sql: &str,
        params: &[Value],
    ) -> Result<u64, WalletStoreError> {
        let changed = self
            .0
            .prepare_cached(sql)
            .and_then(|mut statement| statement.execute(rusqlite::params_from_iter(params.iter())))
            .map_err(at.db())?;
        Ok(u64::try_from(changed).unwrap_or(u64::MAX))
    }

    fn lock_payments(&mut self, _: At<'_>, _: &[&PaymentId]) -> Result<(), WalletStoreError> {
        Ok(())
    }

    fn lock_account(&mut self, _: At<'_>, _: &AccountKey) -> Result<(), WalletStoreError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_go_to_sqlite_and_come_back_as_they_were() {
        let connection = rusqlite::Connection::open_in_memory().unwrap();
        let at = At {
            path: ":memory:",
            operation: WalletOperation::Read,
        };
        let mut tx = SqliteTx(&connection);
        let rows = tx
            .query(
                at,
                "SELECT ?1, ?2, ?3, ?4, EXISTS (SELECT 1 WHERE ?1 = 7)",
                args![7_i64, "seven", vec![7_u8, 0], None::<&str>],
            )
            .unwrap();
        assert_eq!(
            rows,
            [Row(vec![
                Value::Int(7),
                Value::Text("seven".into()),
                Value::Blob(vec![7, 0]),
                Value::Null,
                Value::Int(1),
            ])]
        );
        let row = &rows[0];
        assert_eq!(row.int(at, 0).unwrap(), 7);
        assert_eq!(row.opt_text(at, 3).unwrap(), None);
        assert!(row.bool(at, 4).unwrap());
        // A column of another kind, or past the row, is named, not a panic.
        let error = row.text(at, 0).unwrap_err().to_string();
        assert_eq!(
            error,
            "wallet :memory:: read: column 0: expected a text, found an integer"
        );
        let error = row.blob(at, 9).unwrap_err().to_string();
        assert_eq!(
            error,
            "wallet :memory:: read: column 9: expected a byte string, found NULL"
        );
        // Bytes stored as text that are not UTF-8 are refused, not mended.
        let error = tx
            .query(at, "SELECT CAST(X'C328' AS TEXT)", &[])
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "wallet :memory:: read: column 0: expected a text in UTF-8, found a text not in UTF-8"
        );
    }
}
