//! What every durable SQLite store of the acquirers (the bank-card journal, the
//! wallet's accounts) sets on its connection, so that an answer given is never lost.

use rusqlite::Connection;

/// WAL, `synchronous=FULL`, foreign keys, and a 10 s wait for another writer.
///
/// WAL: readers (the CLI listing a journal) do not block the writer, and a commit is
/// one append to the log. `synchronous=FULL`: the log is fsynced at every commit, so
/// when a write returns it survives a power cut, not only a process crash. It must: an
/// acknowledgement, a debit or a settlement is sent after its write returns and may
/// never be lost. NORMAL would be ~9× faster here (NOTES.md: 67k against 7.5k
/// commits/s) but may lose the last commits on power loss.
pub(crate) fn make_durable(connection: &Connection) -> rusqlite::Result<()> {
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.pragma_update(None, "synchronous", "FULL")?;
    connection.pragma_update(None, "foreign_keys", true)?;
    connection.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(())
}
