//! The acquirer's side of telecollection: cut a batch off when the schedule says it is
//! due, send every batch the centre has not acknowledged, and record its
//! acknowledgement in the journal.
//!
//! The order of writes is what makes a crash harmless (`docs/telecollection.md`):
//!
//! 1. [`CardJournal::cut_off`] fixes the batch (its transactions, its number, its
//!    bytes' SHA-256) in one database transaction;
//! 2. [`CardJournal::mark_sent`] is committed **before** the first byte leaves, so a
//!    batch that may have arrived is never mistaken for one that did not;
//! 3. the batch is streamed from the journal; the same bytes every time, or nothing
//!    past the records (the trailer is only written when the checksum is the one fixed
//!    at the cut-off);
//! 4. [`CardJournal::mark_acknowledged`] once the centre's acceptance names this batch
//!    (acquirer, number, checksum). A crash before it only means the batch is sent
//!    again, and the centre, de-duplicating by (acquirer, number), counts it once.
//!
//! Every function takes the journal as any [`CardJournal`]: the SQLite [`Journal`] or
//! the PostgreSQL one, where several acquirer processes may run these functions at
//! once (each step is idempotent, and a cut-off is taken by one process at a time).
//!
//! [`Journal`]: crate::acquirer::journal::Journal

use crate::acquirer::journal::BatchSummary;
use crate::acquirer::schedule::CutoffSchedule;
use crate::acquirer::store::CardJournal;
use crate::messages::Timestamp;
use crate::telecollection::centre::CentreAnswer;
use std::io::Write;

use crate::telecollection::server::{CentreAddress, ClientOptions, RemitError, remit_with};

/// One batch sent and the centre's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remittance {
    /// The batch number.
    pub batch: u64,
    /// The centre's answer. Only an acceptance marks the batch acknowledged; a refused
    /// batch stays `sent` and is sent again next time, until someone looks into it.
    pub answer: CentreAnswer,
}

/// What [`telecollect`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelecollectionReport {
    /// The batch cut off this time, if the schedule said one was due and there was
    /// something to remit.
    pub cut: Option<BatchSummary>,
    /// Every batch sent, by number.
    pub remitted: Vec<Remittance>,
}

/// Where an acquirer's batches go: the centre's own socket ([`SocketCentre`]), or its
/// HTTPS edge over mutual TLS (`crate::net::centre::HttpsCentre`).
pub trait CentreSink {
    /// The centre, for messages (`tcp:127.0.0.1:7070`, `https://…`).
    fn describe(&self) -> String;

    /// Sends a batch of `length` bytes, which `body` writes, and returns the centre's
    /// answer.
    ///
    /// # Errors
    /// [`RemitError`]: the centre could not be reached, or its answer read.
    fn send(
        &self,
        length: u64,
        body: &mut dyn FnMut(&mut dyn Write) -> Result<(), RemitError>,
    ) -> Result<CentreAnswer, RemitError>;
}

/// The centre on its own socket protocol (`telepay telecollection serve`).
#[derive(Debug, Clone)]
pub struct SocketCentre<'a> {
    /// Where it listens.
    pub address: &'a CentreAddress,
    /// The client's deadlines.
    pub options: &'a ClientOptions,
}

impl CentreSink for SocketCentre<'_> {
    fn describe(&self) -> String {
        self.address.to_string()
    }

    fn send(
        &self,
        length: u64,
        body: &mut dyn FnMut(&mut dyn Write) -> Result<(), RemitError>,
    ) -> Result<CentreAnswer, RemitError> {
        remit_with(self.address, length, self.options, body)
    }
}

/// Sends batch `number` to the centre at `address`: marks it sent, streams it from the
/// journal, and marks it acknowledged when the centre accepts it (a duplicate
/// acceptance included). Returns the centre's answer.
pub fn remit_batch<J: CardJournal + ?Sized>(
    journal: &mut J,
    number: u64,
    address: &CentreAddress,
    options: &ClientOptions,
    now: Timestamp,
) -> Result<CentreAnswer, RemitError> {
    remit_batch_to(journal, number, &SocketCentre { address, options }, now)
}

/// [`remit_batch`] to any [`CentreSink`].
pub fn remit_batch_to<J: CardJournal + ?Sized>(
    journal: &mut J,
    number: u64,
    centre: &dyn CentreSink,
    now: Timestamp,
) -> Result<CentreAnswer, RemitError> {
    let summary = journal.batch(number)?.ok_or_else(|| {
        crate::acquirer::journal::JournalError::UnknownBatch {
            path: journal.name().to_owned(),
            operation: crate::acquirer::journal::Operation::WriteBatch,
            number,
        }
    })?;
    journal.mark_sent(number, now)?;
    let reader: &J = journal;
    let answer = centre.send(summary.bytes, &mut |out| {
        reader.write_batch(number, out)?;
        Ok(())
    })?;
    if let CentreAnswer::Accepted(acceptance) = &answer {
        if acceptance.batch != number
            || acceptance.acquirer != summary.acquirer
            || acceptance.checksum != hex::encode(summary.checksum)
        {
            return Err(RemitError::AnswerMismatch {
                address: centre.describe(),
                sent: number,
                accepted: acceptance.batch,
                acquirer: acceptance.acquirer.to_string(),
                checksum: acceptance.checksum.clone(),
            });
        }
        journal.mark_acknowledged(number, now)?;
    }
    Ok(answer)
}

/// Sends every batch the centre has not acknowledged (open or sent), by number: after a
/// restart, what may not have arrived goes again. Stops at the first batch that gets no
/// answer (the centre is unreachable: the others would fail the same way).
pub fn remit_pending<J: CardJournal + ?Sized>(
    journal: &mut J,
    address: &CentreAddress,
    options: &ClientOptions,
    now: Timestamp,
) -> Result<Vec<Remittance>, RemitError> {
    remit_pending_to(journal, &SocketCentre { address, options }, now)
}

/// [`remit_pending`] to any [`CentreSink`].
pub fn remit_pending_to<J: CardJournal + ?Sized>(
    journal: &mut J,
    centre: &dyn CentreSink,
    now: Timestamp,
) -> Result<Vec<Remittance>, RemitError> {
    let mut remitted = Vec::new();
    for summary in journal.unacknowledged_batches()? {
        let answer = remit_batch_to(journal, summary.number, centre, now)?;
        remitted.push(Remittance {
            batch: summary.number,
            answer,
        });
    }
    Ok(remitted)
}

/// Whether a batch is due at `now`: there are authorised transactions waiting, and a
/// cut-off of `schedule` has passed since the oldest of them was recorded (and since
/// the last cut-off).
pub fn cut_off_due<J: CardJournal + ?Sized>(
    journal: &J,
    schedule: &CutoffSchedule,
    now: Timestamp,
) -> Result<bool, RemitError> {
    let Some(oldest) = journal.oldest_pending()? else {
        return Ok(false);
    };
    let since = journal
        .last_cutoff()?
        .map_or(oldest, |last| last.max(oldest));
    Ok(schedule.is_due(since, now))
}

/// One round of telecollection, for a loop or a timer: cuts a batch off if one is due,
/// then sends every batch not yet acknowledged.
pub fn telecollect<J: CardJournal + ?Sized>(
    journal: &mut J,
    schedule: &CutoffSchedule,
    address: &CentreAddress,
    options: &ClientOptions,
    now: Timestamp,
) -> Result<TelecollectionReport, RemitError> {
    let cut = if cut_off_due(journal, schedule, now)? {
        journal.cut_off(now)?
    } else {
        None
    };
    let remitted = remit_pending(journal, address, options, now)?;
    Ok(TelecollectionReport { cut, remitted })
}
