//! The telecollection centre's core: what it does with a batch it receives, with no
//! socket and no clock (the time of reception is passed in).
//!
//! A batch is verified whole ([`read_batch`]: format, counts, totals, SHA-256) before
//! anything is stored. A malformed one is refused with the line and the reason. A good
//! one is accepted once per (acquirer, batch number): the same batch received again
//! (a retry after a lost answer, a restarted acquirer) gets the same acceptance,
//! marked `duplicate`, and is not counted again; a *different* batch under a number
//! already accepted is refused, never merged. What was accepted is kept in the centre's
//! own SQLite file, so a restarted centre still de-duplicates.

use std::io::BufRead;
use std::path::Path;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::{Deserialize, Serialize};

use crate::acquirer::batch::{BatchError, CurrencyTotal, VerifiedBatch, read_batch};
use crate::messages::{AcquirerId, Timestamp};

/// The schema of the centre's store this build reads and writes.
pub const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE schema_version (
    version INTEGER NOT NULL CHECK (version >= 1)
);
CREATE TABLE batches (
    acquirer TEXT NOT NULL,
    number INTEGER NOT NULL CHECK (number >= 1),
    cut_off_at INTEGER NOT NULL,
    records INTEGER NOT NULL CHECK (records >= 1),
    bytes INTEGER NOT NULL CHECK (bytes > 0),
    checksum TEXT NOT NULL CHECK (length(checksum) = 64),
    accepted_at INTEGER NOT NULL,
    -- How many times the same batch came again after its acceptance.
    duplicates INTEGER NOT NULL DEFAULT 0 CHECK (duplicates >= 0),
    PRIMARY KEY (acquirer, number)
);
CREATE TABLE batch_totals (
    acquirer TEXT NOT NULL,
    number INTEGER NOT NULL,
    currency INTEGER NOT NULL CHECK (currency BETWEEN 0 AND 999),
    records INTEGER NOT NULL CHECK (records >= 1),
    total_minor INTEGER NOT NULL CHECK (total_minor >= 0),
    PRIMARY KEY (acquirer, number, currency),
    FOREIGN KEY (acquirer, number) REFERENCES batches (acquirer, number)
);
";

/// The centre's acceptance of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Acceptance {
    /// The acquirer that remitted it.
    pub acquirer: AcquirerId,
    /// Its number.
    pub batch: u64,
    /// How many transactions it holds.
    pub records: u64,
    /// Per currency, ascending.
    pub totals: Vec<CurrencyTotal>,
    /// The SHA-256 of its bytes before the trailer, lower-case hex: the acquirer checks
    /// the centre accepted the batch it sent.
    pub checksum: String,
    /// When the centre first accepted it.
    pub accepted_at: Timestamp,
    /// Whether this reception was a repeat of a batch already accepted (then nothing
    /// was counted again).
    pub duplicate: bool,
}

/// The centre's answer to a batch.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum CentreAnswer {
    /// The batch is accepted (or was already).
    Accepted(Acceptance),
    /// The batch is refused; the acquirer must not count it as remitted.
    Refused {
        /// The line of the batch at fault, when one is.
        line: Option<u64>,
        /// Why, for people.
        reason: String,
    },
    /// The centre could not process the batch (its store failed); send it again later.
    Unavailable {
        /// Why, for people.
        reason: String,
    },
}

impl CentreAnswer {
    /// The answer to a batch that did not verify.
    pub fn refused(error: &BatchError) -> CentreAnswer {
        CentreAnswer::Refused {
            line: Some(error.line()),
            reason: error.to_string(),
        }
    }
}

/// A batch the centre accepted, as it keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct AcceptedBatch {
    /// The acquirer.
    pub acquirer: AcquirerId,
    /// The batch number.
    pub number: u64,
    /// When the acquirer cut it off.
    pub cut_off_at: Timestamp,
    /// How many transactions.
    pub records: u64,
    /// Per currency, ascending.
    pub totals: Vec<CurrencyTotal>,
    /// SHA-256 before the trailer, lower-case hex.
    pub checksum: String,
    /// The file's size.
    pub bytes: u64,
    /// When it was accepted.
    pub accepted_at: Timestamp,
    /// How many times it came again afterwards.
    pub duplicates: u64,
}

/// What an acquirer has remitted in one currency, over every batch accepted.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct AcquirerTotal {
    /// The acquirer.
    pub acquirer: AcquirerId,
    /// ISO 4217 numeric currency.
    pub currency: u16,
    /// How many batches carried this currency.
    pub batches: u64,
    /// How many transactions.
    pub records: u64,
    /// Their sum in minor units.
    pub total_minor: u64,
}

/// The centre's store operation that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CentreOperation {
    /// Opening the store.
    Open,
    /// Accepting a batch.
    Accept,
    /// Listing batches or totals.
    List,
}

impl std::fmt::Display for CentreOperation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CentreOperation::Open => "open",
            CentreOperation::Accept => "accept",
            CentreOperation::List => "list",
        })
    }
}

/// The centre's store failed. A batch is never acknowledged when this happens.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CentreError {
    /// SQLite failed.
    #[error("centre store {path}: {operation}: {source}")]
    Database {
        /// The store's file.
        path: String,
        /// The operation.
        operation: CentreOperation,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// The store's schema is of another version.
    #[error(
        "centre store {path}: schema version {found} is not supported (this build reads {SCHEMA_VERSION})"
    )]
    SchemaVersion {
        /// The store's file.
        path: String,
        /// The version found.
        found: i64,
    },
    /// A stored value out of its range: the file was altered outside telepay.
    #[error("centre store {path}: {operation}: column `{column}` holds {found}")]
    Corrupt {
        /// The store's file.
        path: String,
        /// The operation.
        operation: CentreOperation,
        /// The column.
        column: &'static str,
        /// The value.
        found: i64,
    },
}

/// The telecollection centre.
pub struct Centre {
    connection: Connection,
    path: String,
}

impl std::fmt::Debug for Centre {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Centre").field("path", &self.path).finish()
    }
}

fn to_u64(
    path: &str,
    operation: CentreOperation,
    column: &'static str,
    value: i64,
) -> Result<u64, CentreError> {
    u64::try_from(value).map_err(|_| CentreError::Corrupt {
        path: path.to_owned(),
        operation,
        column,
        found: value,
    })
}

impl Centre {
    /// Opens the centre's store at `path`, creating it if absent.
    pub fn open(path: impl AsRef<Path>) -> Result<Centre, CentreError> {
        let path_text = path.as_ref().display().to_string();
        let connection =
            Connection::open(path.as_ref()).map_err(|source| CentreError::Database {
                path: path_text.clone(),
                operation: CentreOperation::Open,
                source,
            })?;
        Centre::set_up(connection, path_text)
    }

    /// A centre whose store is in memory: for tests.
    pub fn open_in_memory() -> Result<Centre, CentreError> {
        let path = ":memory:".to_owned();
        let connection = Connection::open_in_memory().map_err(|source| CentreError::Database {
            path: path.clone(),
            operation: CentreOperation::Open,
            source,
        })?;
        Centre::set_up(connection, path)
    }

    fn set_up(mut connection: Connection, path: String) -> Result<Centre, CentreError> {
        let db = |source| CentreError::Database {
            path: path.clone(),
            operation: CentreOperation::Open,
            source,
        };
        // As the acquirer's journal: an acceptance is durable before it is answered,
        // or a centre crash could forget a batch the acquirer then never sends again.
        connection
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(db)?;
        connection
            .pragma_update(None, "synchronous", "FULL")
            .map_err(db)?;
        connection
            .pragma_update(None, "foreign_keys", true)
            .map_err(db)?;
        connection
            .busy_timeout(std::time::Duration::from_secs(10))
            .map_err(db)?;
        let transaction = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        let exists: bool = transaction
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE name = 'schema_version')",
                [],
                |row| row.get(0),
            )
            .map_err(db)?;
        if exists {
            let found: Option<i64> = transaction
                .query_row("SELECT max(version) FROM schema_version", [], |row| {
                    row.get(0)
                })
                .map_err(db)?;
            if found != Some(SCHEMA_VERSION) {
                return Err(CentreError::SchemaVersion {
                    path: path.clone(),
                    found: found.unwrap_or(0),
                });
            }
        } else {
            transaction.execute_batch(SCHEMA).map_err(db)?;
            transaction
                .execute(
                    "INSERT INTO schema_version (version) VALUES (?1)",
                    [SCHEMA_VERSION],
                )
                .map_err(db)?;
        }
        transaction.commit().map_err(db)?;
        Ok(Centre { connection, path })
    }

    /// The store's file (`:memory:` for an in-memory one).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Reads and verifies a batch, streaming: needs no store, so a server verifies
    /// batches in parallel and holds the centre only to [`Centre::accept`].
    pub fn verify<R: BufRead>(batch: R) -> Result<VerifiedBatch, BatchError> {
        read_batch(batch, |_| {})
    }

    /// Accepts a verified batch, once per (acquirer, batch number), durably before
    /// answering. The same batch again gets the same acceptance marked `duplicate`; a
    /// different batch under a number already accepted is refused.
    pub fn accept(
        &mut self,
        batch: &VerifiedBatch,
        now: Timestamp,
    ) -> Result<CentreAnswer, CentreError> {
        let path = self.path.as_str();
        let db = |source| CentreError::Database {
            path: path.to_owned(),
            operation: CentreOperation::Accept,
            source,
        };
        let header = &batch.header;
        let checksum = hex::encode(batch.trailer.checksum);
        let Ok(number) = i64::try_from(header.number) else {
            return Ok(CentreAnswer::Refused {
                line: Some(1),
                reason: format!(
                    "line 1: batch number {} is beyond what this centre stores",
                    header.number
                ),
            });
        };
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        let stored: Option<(String, i64)> = transaction
            .query_row(
                "SELECT checksum, accepted_at FROM batches WHERE acquirer = ?1 AND number = ?2",
                params![header.acquirer.0.as_str(), number],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
            .map_err(db)?;
        let acceptance = |accepted_at: Timestamp, duplicate: bool| {
            CentreAnswer::Accepted(Acceptance {
                acquirer: header.acquirer.clone(),
                batch: header.number,
                records: header.records,
                totals: header.totals.clone(),
                checksum: checksum.clone(),
                accepted_at,
                duplicate,
            })
        };
        if let Some((stored_checksum, accepted_at)) = stored {
            if stored_checksum != checksum {
                return Ok(CentreAnswer::Refused {
                    line: None,
                    reason: format!(
                        "batch {} of acquirer {} was already accepted with other contents \
                         (sha256 {stored_checksum}); this one is sha256 {checksum}",
                        header.number, header.acquirer
                    ),
                });
            }
            transaction
                .execute(
                    "UPDATE batches SET duplicates = duplicates + 1 WHERE acquirer = ?1 AND number = ?2",
                    params![header.acquirer.0.as_str(), number],
                )
                .map_err(db)?;
            transaction.commit().map_err(db)?;
            return Ok(acceptance(Timestamp(accepted_at), true));
        }
        let too_large = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
        transaction
            .execute(
                "INSERT INTO batches (acquirer, number, cut_off_at, records, bytes, checksum, accepted_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    header.acquirer.0.as_str(),
                    number,
                    header.cut_off_at.0,
                    too_large(header.records),
                    too_large(batch.trailer.bytes),
                    checksum,
                    now.0
                ],
            )
            .map_err(db)?;
        for total in &header.totals {
            transaction
                .execute(
                    "INSERT INTO batch_totals (acquirer, number, currency, records, total_minor) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        header.acquirer.0.as_str(),
                        number,
                        total.currency,
                        too_large(total.records),
                        too_large(total.total_minor)
                    ],
                )
                .map_err(db)?;
        }
        transaction.commit().map_err(db)?;
        Ok(acceptance(now, false))
    }

    /// Verifies the batch read from `batch` and accepts it, or answers why it is
    /// refused. `Err` only when the centre's store fails.
    pub fn receive<R: BufRead>(
        &mut self,
        batch: R,
        now: Timestamp,
    ) -> Result<CentreAnswer, CentreError> {
        match Centre::verify(batch) {
            Ok(verified) => self.accept(&verified, now),
            Err(error) => Ok(CentreAnswer::refused(&error)),
        }
    }

    /// Every batch accepted, by acquirer and number.
    pub fn batches(&self) -> Result<Vec<AcceptedBatch>, CentreError> {
        let path = self.path.as_str();
        let operation = CentreOperation::List;
        let db = |source| CentreError::Database {
            path: path.to_owned(),
            operation,
            source,
        };
        let mut statement = self
            .connection
            .prepare(
                "SELECT acquirer, number, cut_off_at, records, bytes, checksum, accepted_at, duplicates \
                 FROM batches ORDER BY acquirer, number",
            )
            .map_err(db)?;
        let rows = statement
            .query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, i64>(2)?,
                    row.get::<_, i64>(3)?,
                    row.get::<_, i64>(4)?,
                    row.get::<_, String>(5)?,
                    row.get::<_, i64>(6)?,
                    row.get::<_, i64>(7)?,
                ))
            })
            .map_err(db)?;
        let mut totals = self
            .connection
            .prepare(
                "SELECT currency, records, total_minor FROM batch_totals \
                 WHERE acquirer = ?1 AND number = ?2 ORDER BY currency",
            )
            .map_err(db)?;
        let mut batches = Vec::new();
        for row in rows {
            let (acquirer, number, cut_off_at, records, bytes, checksum, accepted_at, duplicates) =
                row.map_err(db)?;
            let currency_rows = totals
                .query_map(params![acquirer, number], |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, i64>(1)?,
                        row.get::<_, i64>(2)?,
                    ))
                })
                .map_err(db)?;
            let mut batch_totals = Vec::new();
            for currency_row in currency_rows {
                let (currency, count, total) = currency_row.map_err(db)?;
                batch_totals.push(CurrencyTotal {
                    currency: u16::try_from(currency).map_err(|_| CentreError::Corrupt {
                        path: path.to_owned(),
                        operation,
                        column: "currency",
                        found: currency,
                    })?,
                    records: to_u64(path, operation, "records", count)?,
                    total_minor: to_u64(path, operation, "total_minor", total)?,
                });
            }
            batches.push(AcceptedBatch {
                acquirer: AcquirerId::from(acquirer),
                number: to_u64(path, operation, "number", number)?,
                cut_off_at: Timestamp(cut_off_at),
                records: to_u64(path, operation, "records", records)?,
                totals: batch_totals,
                checksum,
                bytes: to_u64(path, operation, "bytes", bytes)?,
                accepted_at: Timestamp(accepted_at),
                duplicates: to_u64(path, operation, "duplicates", duplicates)?,
            });
        }
        Ok(batches)
    }

    /// What each acquirer has remitted, per currency, over every batch accepted (each
    /// batch counted once, however often it came).
    pub fn totals(&self) -> Result<Vec<AcquirerTotal>, CentreError> {
        let path = self.path.as_str();
        let operation = CentreOperation::List;
        let db = |source| CentreError::Database {
            path: path.to_owned(),
            operation,
            source,
        };
        let mut statement = self
            .connection
            .prepare(
                "SELECT acquirer, currency, count(*), sum(records), sum(total_minor) FROM batch_totals \
                 GROUP BY acquirer, currency ORDER BY acquirer, currency",
            )
            .map_err(db)?;
        let rows = statement
            .query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, i64>(2)?,
                    row.get::<_, i64>(3)?,
                    row.get::<_, i64>(4)?,
                ))
            })
            .map_err(db)?;
        let mut totals = Vec::new();
        for row in rows {
            let (acquirer, currency, batches, records, total) = row.map_err(db)?;
            totals.push(AcquirerTotal {
                acquirer: AcquirerId::from(acquirer),
                currency: u16::try_from(currency).map_err(|_| CentreError::Corrupt {
                    path: path.to_owned(),
                    operation,
                    column: "currency",
                    found: currency,
                })?,
                batches: to_u64(path, operation, "batches", batches)?,
                records: to_u64(path, operation, "records", records)?,
                total_minor: to_u64(path, operation, "total_minor", total)?,
            });
        }
        Ok(totals)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_travel_as_one_json_object_tagged_by_status() {
        let accepted = CentreAnswer::Accepted(Acceptance {
            acquirer: AcquirerId::from("ACQ-1"),
            batch: 7,
            records: 2,
            totals: vec![CurrencyTotal {
                currency: 978,
                records: 2,
                total_minor: 3750,
            }],
            checksum: "ab".repeat(32),
            accepted_at: Timestamp(1_795_644_000_000),
            duplicate: false,
        });
        let cases = [
            (
                accepted,
                format!(
                    "{{\"status\":\"accepted\",\"acquirer\":\"ACQ-1\",\"batch\":7,\"records\":2,\
                     \"totals\":[{{\"currency\":978,\"records\":2,\"total_minor\":3750}}],\
                     \"checksum\":\"{}\",\"accepted-at\":1795644000000,\"duplicate\":false}}",
                    "ab".repeat(32)
                ),
            ),
            (
                CentreAnswer::Refused {
                    line: Some(4),
                    reason: "line 4: data after the trailer".into(),
                },
                r#"{"status":"refused","line":4,"reason":"line 4: data after the trailer"}"#.into(),
            ),
            (
                CentreAnswer::Unavailable {
                    reason: "disk full".into(),
                },
                r#"{"status":"unavailable","reason":"disk full"}"#.into(),
            ),
        ];
        for (answer, json) in cases {
            assert_eq!(serde_json::to_string(&answer).unwrap(), json);
            assert_eq!(serde_json::from_str::<CentreAnswer>(&json).unwrap(), answer);
        }
    }

    #[test]
    fn a_store_of_another_schema_is_refused() {
        let centre = Centre::open_in_memory().unwrap();
        centre
            .connection
            .execute("UPDATE schema_version SET version = 9", [])
            .unwrap();
        let Centre { connection, path } = centre;
        assert_eq!(
            Centre::set_up(connection, path).unwrap_err().to_string(),
            "centre store :memory:: schema version 9 is not supported (this build reads 1)"
        );
    }
}
