//! The bank-card acquirer's journal as a trait, [`CardJournal`]: exactly what the
//! acquirer ([`crate::acquirer::system::BankCardAcquirer`]), its telecollection
//! ([`crate::telecollection::remittance`]) and the CLI (`telepay acquirer
//! journal|cutoff|remit`) ask of it, so that the journal may be either store:
//!
//! - [`Journal`]: one SQLite file, embedded, the default (one acquirer process);
//! - [`crate::acquirer::postgres::PgJournal`]: a PostgreSQL database that several
//!   acquirer processes share.
//!
//! Both keep the same rows in the same states (the module doc of
//! [`crate::acquirer::journal`] draws them) and answer every operation alike, so that a
//! batch cut from either for the same transactions is the same bytes. What each
//! operation promises (durable before it returns; a repeated F gets the stored G; a
//! cut-off all or nothing) is the journal's, stated on [`Journal`]'s methods; what
//! PostgreSQL adds for several processes is on [`crate::acquirer::postgres`].
//!
//! The trait is object safe (`Box<dyn CardJournal>` is what a configuration picks at
//! run time): callbacks are `&mut dyn FnMut`, a listing's callback stops it with
//! [`ControlFlow::Break`], and the generic forms callers are used to
//! ([`CardJournal::transactions`], [`CardJournal::batch_records`], with the caller's
//! error type) are provided on top.

use std::io::Write;
use std::ops::ControlFlow;

use crate::acquirer::batch::{BatchRecord, BatchTrailer, BatchWriter};
use crate::acquirer::card::{CardHistory, CardKey, Decision};
use crate::acquirer::journal::{
    Authorisation, BatchSummary, Journal, JournalEntry, JournalError, Known, Operation,
    ReversalOutcome, StoredTransaction, TransactionFilter,
};
use crate::messages::{AcquirerId, AcquirerTransaction, PaymentId, Reversal, Timestamp};

/// The bank-card acquirer's durable journal, whichever database keeps it.
///
/// Every method that changes the journal is one database transaction, committed
/// before it returns: an acknowledgement it recorded may be sent. Reads take `&self`;
/// a store with one connection serves one call at a time, and refuses a call made from
/// inside one of its own callbacks ([`JournalError::Reentered`]) rather than block.
pub trait CardJournal: Send {
    /// The journal as errors name it: the SQLite file, or the PostgreSQL database's
    /// address without its password.
    fn name(&self) -> &str;

    /// The acquirer the journal belongs to: the one of the first transaction recorded.
    ///
    /// # Errors
    /// The database's.
    fn acquirer(&self) -> Result<Option<AcquirerId>, JournalError>;

    /// F, G and where the transaction is, for `payment`.
    ///
    /// # Errors
    /// The database's, or a stored message that does not read back.
    fn stored_transaction(
        &self,
        payment: &PaymentId,
    ) -> Result<Option<StoredTransaction>, JournalError>;

    /// The card's history as the banking rules take it: its last ATC.
    ///
    /// # Errors
    /// The database's.
    fn card_history(&self, card: &CardKey) -> Result<CardHistory, JournalError>;

    /// Decides F and records the decision in one transaction ([`Journal::authorise_with`]):
    /// a payment already recorded comes back as it is ([`Authorisation::AlreadyRecorded`],
    /// `decide` not called); otherwise `decide` gets what the journal knows and its
    /// decision is recorded. `decide` may be called again if the database made the
    /// transaction start over (a serialization failure): it must be a pure function of
    /// what it is given.
    ///
    /// # Errors
    /// As [`Journal::authorise_with`]: then nothing was recorded and no G may be sent.
    fn authorise_with(
        &mut self,
        f: &AcquirerTransaction,
        now: Timestamp,
        decide: &mut dyn FnMut(Known) -> Decision,
    ) -> Result<Authorisation, JournalError>;

    /// Raises the card's last ATC to `atc`, never lowering it ([`Journal::raise_card_atc`]).
    ///
    /// # Errors
    /// The database's.
    fn raise_card_atc(
        &mut self,
        card: &CardKey,
        atc: u16,
        now: Timestamp,
    ) -> Result<(), JournalError>;

    /// Reads the card's history, lets `decide` judge a cryptogram that is not a payment
    /// with it, and raises the card's counter to what `decide` returns, in one
    /// transaction ([`Journal::spend_card_atc_with`]). `decide` may be called again if
    /// the transaction starts over.
    ///
    /// # Errors
    /// The database's: then no counter was raised.
    fn spend_card_atc_with(
        &mut self,
        card: &CardKey,
        now: Timestamp,
        decide: &mut dyn FnMut(CardHistory) -> Option<u16>,
    ) -> Result<(), JournalError>;

    /// Records the front-end's cancellation of a payment ([`Journal::reverse`]).
    ///
    /// # Errors
    /// The database's, a foreign acquirer, or a reversal that names another purchase.
    fn reverse(
        &mut self,
        reversal: &Reversal,
        now: Timestamp,
    ) -> Result<ReversalOutcome, JournalError>;

    /// Cuts a batch off ([`Journal::cut_off`]): every authorised transaction into the
    /// next batch, its totals and its bytes' SHA-256 fixed, all or nothing. `None` when
    /// nothing waits.
    ///
    /// # Errors
    /// The database's; then no batch was made.
    fn cut_off(&mut self, now: Timestamp) -> Result<Option<BatchSummary>, JournalError>;

    /// The batch numbered `number`, if any.
    ///
    /// # Errors
    /// The database's.
    fn batch(&self, number: u64) -> Result<Option<BatchSummary>, JournalError>;

    /// Every batch, by number.
    ///
    /// # Errors
    /// The database's.
    fn batches(&self) -> Result<Vec<BatchSummary>, JournalError>;

    /// The batches the centre has not acknowledged yet (open or sent), by number.
    ///
    /// # Errors
    /// The database's.
    fn unacknowledged_batches(&self) -> Result<Vec<BatchSummary>, JournalError>;

    /// The time of the last cut-off, if any.
    ///
    /// # Errors
    /// The database's.
    fn last_cutoff(&self) -> Result<Option<Timestamp>, JournalError>;

    /// When the oldest authorised transaction waiting for a cut-off was recorded.
    ///
    /// # Errors
    /// The database's.
    fn oldest_pending(&self) -> Result<Option<Timestamp>, JournalError>;

    /// Calls `each` with every record of batch `number`, in the batch's order, read one
    /// at a time; `each` stops the reading with [`ControlFlow::Break`].
    ///
    /// # Errors
    /// [`JournalError::UnknownBatch`], the database's, or a corrupt row.
    fn visit_batch_records(
        &self,
        number: u64,
        each: &mut dyn FnMut(BatchRecord) -> ControlFlow<()>,
    ) -> Result<(), JournalError>;

    /// Calls `each` with every transaction `filter` selects, oldest first, one at a
    /// time; `each` stops the listing with [`ControlFlow::Break`].
    ///
    /// # Errors
    /// The database's, or a corrupt row.
    fn visit_transactions(
        &self,
        filter: &TransactionFilter,
        each: &mut dyn FnMut(JournalEntry) -> ControlFlow<()>,
    ) -> Result<(), JournalError>;

    /// Marks batch `number` sent, before its first transmission ([`Journal::mark_sent`]).
    /// Marking a sent batch again changes nothing.
    ///
    /// # Errors
    /// An unknown batch, an acknowledged one, or the database's.
    fn mark_sent(&mut self, number: u64, now: Timestamp) -> Result<(), JournalError>;

    /// Marks batch `number` acknowledged by the centre ([`Journal::mark_acknowledged`]).
    /// Idempotent.
    ///
    /// # Errors
    /// An unknown batch, or the database's.
    fn mark_acknowledged(&mut self, number: u64, now: Timestamp) -> Result<(), JournalError>;

    /// Writes batch `number`'s file to `out`, streaming, checking that its bytes are those
    /// fixed at its cut-off (else nothing past the records is written). Returns its
    /// trailer. The same code writes both stores' batches.
    ///
    /// # Errors
    /// An unknown batch, the database's, the writer's, or bytes that differ from the
    /// cut-off's ([`JournalError::Batch`]).
    fn write_batch(&self, number: u64, out: &mut dyn Write) -> Result<BatchTrailer, JournalError> {
        write_batch_of(self, number, out)
    }

    /// [`CardJournal::visit_transactions`] with a callback that fails with the caller's
    /// error, as [`Journal::transactions`] takes it.
    ///
    /// # Errors
    /// The journal's, or the first error `each` returns (the listing stops there).
    fn transactions<E: From<JournalError>>(
        &self,
        filter: &TransactionFilter,
        mut each: impl FnMut(JournalEntry) -> Result<(), E>,
    ) -> Result<(), E>
    where
        Self: Sized,
    {
        let mut failed = None;
        self.visit_transactions(filter, &mut until_error(&mut each, &mut failed))?;
        failed.map_or(Ok(()), Err)
    }

    /// [`CardJournal::visit_batch_records`] with a callback that fails with the caller's
    /// error, as [`Journal::batch_records`] takes it.
    ///
    /// # Errors
    /// The journal's, or the first error `each` returns (the reading stops there).
    fn batch_records<E: From<JournalError>>(
        &self,
        number: u64,
        mut each: impl FnMut(BatchRecord) -> Result<(), E>,
    ) -> Result<(), E>
    where
        Self: Sized,
    {
        let mut failed = None;
        self.visit_batch_records(number, &mut until_error(&mut each, &mut failed))?;
        failed.map_or(Ok(()), Err)
    }
}

/// A visitor's callback from one that fails: it goes on while `each` succeeds, and stops
/// at the first error, kept in `failed` for the caller to return.
fn until_error<'a, T, E>(
    each: &'a mut impl FnMut(T) -> Result<(), E>,
    failed: &'a mut Option<E>,
) -> impl FnMut(T) -> ControlFlow<()> + 'a {
    move |item| match each(item) {
        Ok(()) => ControlFlow::Continue(()),
        Err(error) => {
            *failed = Some(error);
            ControlFlow::Break(())
        }
    }
}

/// Writes batch `number` of `journal` to `out` from its summary and its records: what
/// [`CardJournal::write_batch`] does unless a store overrides it.
fn write_batch_of<J: CardJournal + ?Sized>(
    journal: &J,
    number: u64,
    out: &mut dyn Write,
) -> Result<BatchTrailer, JournalError> {
    let name = journal.name();
    let batch_error = |source| JournalError::Batch {
        path: name.to_owned(),
        operation: Operation::WriteBatch,
        number,
        source,
    };
    let summary = journal
        .batch(number)?
        .ok_or_else(|| JournalError::UnknownBatch {
            path: name.to_owned(),
            operation: Operation::WriteBatch,
            number,
        })?;
    let mut writer = BatchWriter::new(out, &summary.header()).map_err(batch_error)?;
    let mut failed = None;
    let mut write = |record: BatchRecord| writer.write_record(&record).map_err(batch_error);
    journal.visit_batch_records(number, &mut until_error(&mut write, &mut failed))?;
    if let Some(error) = failed {
        return Err(error);
    }
    let (_, trailer) = writer
        .finish_expecting(&summary.checksum)
        .map_err(batch_error)?;
    Ok(trailer)
}

impl CardJournal for Journal {
    fn name(&self) -> &str {
        self.path()
    }

    fn acquirer(&self) -> Result<Option<AcquirerId>, JournalError> {
        Journal::acquirer(self)
    }

    fn stored_transaction(
        &self,
        payment: &PaymentId,
    ) -> Result<Option<StoredTransaction>, JournalError> {
        Journal::stored_transaction(self, payment)
    }

    fn card_history(&self, card: &CardKey) -> Result<CardHistory, JournalError> {
        Journal::card_history(self, card)
    }

    fn authorise_with(
        &mut self,
        f: &AcquirerTransaction,
        now: Timestamp,
        decide: &mut dyn FnMut(Known) -> Decision,
    ) -> Result<Authorisation, JournalError> {
        Journal::authorise_with(self, f, now, decide)
    }

    fn raise_card_atc(
        &mut self,
        card: &CardKey,
        atc: u16,
        now: Timestamp,
    ) -> Result<(), JournalError> {
        Journal::raise_card_atc(self, card, atc, now)
    }

    fn spend_card_atc_with(
        &mut self,
        card: &CardKey,
        now: Timestamp,
        decide: &mut dyn FnMut(CardHistory) -> Option<u16>,
    ) -> Result<(), JournalError> {
        Journal::spend_card_atc_with(self, card, now, decide)
    }

    fn reverse(
        &mut self,
        reversal: &Reversal,
        now: Timestamp,
    ) -> Result<ReversalOutcome, JournalError> {
        Journal::reverse(self, reversal, now)
    }

    fn cut_off(&mut self, now: Timestamp) -> Result<Option<BatchSummary>, JournalError> {
        Journal::cut_off(self, now)
    }

    fn batch(&self, number: u64) -> Result<Option<BatchSummary>, JournalError> {
        Journal::batch(self, number)
    }

    fn batches(&self) -> Result<Vec<BatchSummary>, JournalError> {
        Journal::batches(self)
    }

    fn unacknowledged_batches(&self) -> Result<Vec<BatchSummary>, JournalError> {
        Journal::unacknowledged_batches(self)
    }

    fn last_cutoff(&self) -> Result<Option<Timestamp>, JournalError> {
        Journal::last_cutoff(self)
    }

    fn oldest_pending(&self) -> Result<Option<Timestamp>, JournalError> {
        Journal::oldest_pending(self)
    }

    fn visit_batch_records(
        &self,
        number: u64,
        each: &mut dyn FnMut(BatchRecord) -> ControlFlow<()>,
    ) -> Result<(), JournalError> {
        Journal::batch_records(self, number, |record| {
            // A break is not an error: stop reading, report nothing.
            match each(record) {
                ControlFlow::Continue(()) => Ok(()),
                ControlFlow::Break(()) => Err(Stop::Stopped),
            }
        })
        .or_else(Stop::into_result)
    }

    fn visit_transactions(
        &self,
        filter: &TransactionFilter,
        each: &mut dyn FnMut(JournalEntry) -> ControlFlow<()>,
    ) -> Result<(), JournalError> {
        Journal::transactions(self, filter, |entry| match each(entry) {
            ControlFlow::Continue(()) => Ok(()),
            ControlFlow::Break(()) => Err(Stop::Stopped),
        })
        .or_else(Stop::into_result)
    }

    fn mark_sent(&mut self, number: u64, now: Timestamp) -> Result<(), JournalError> {
        Journal::mark_sent(self, number, now)
    }

    fn mark_acknowledged(&mut self, number: u64, now: Timestamp) -> Result<(), JournalError> {
        Journal::mark_acknowledged(self, number, now)
    }

    fn write_batch(&self, number: u64, out: &mut dyn Write) -> Result<BatchTrailer, JournalError> {
        Journal::write_batch(self, number, out)
    }
}

/// How a visit of [`Journal`]'s generic listings ends early: stopped by the callback,
/// or failed.
enum Stop {
    /// The callback broke off.
    Stopped,
    /// The journal failed.
    Failed(JournalError),
}

impl From<JournalError> for Stop {
    fn from(error: JournalError) -> Stop {
        Stop::Failed(error)
    }
}

impl Stop {
    fn into_result(self) -> Result<(), JournalError> {
        match self {
            Stop::Stopped => Ok(()),
            Stop::Failed(error) => Err(error),
        }
    }
}

/// A boxed journal is a journal: what a configuration chooses at run time.
impl<J: CardJournal + ?Sized> CardJournal for Box<J> {
    fn name(&self) -> &str {
        (**self).name()
    }

    fn acquirer(&self) -> Result<Option<AcquirerId>, JournalError> {
        (**self).acquirer()
    }

    fn stored_transaction(
        &self,
        payment: &PaymentId,
    ) -> Result<Option<StoredTransaction>, JournalError> {
        (**self).stored_transaction(payment)
    }

    fn card_history(&self, card: &CardKey) -> Result<CardHistory, JournalError> {
        (**self).card_history(card)
    }

    fn authorise_with(
        &mut self,
        f: &AcquirerTransaction,
        now: Timestamp,
        decide: &mut dyn FnMut(Known) -> Decision,
    ) -> Result<Authorisation, JournalError> {
        (**self).authorise_with(f, now, decide)
    }

    fn raise_card_atc(
        &mut self,
        card: &CardKey,
        atc: u16,
        now: Timestamp,
    ) -> Result<(), JournalError> {
        (**self).raise_card_atc(card, atc, now)
    }

    fn spend_card_atc_with(
        &mut self,
        card: &CardKey,
        now: Timestamp,
        decide: &mut dyn FnMut(CardHistory) -> Option<u16>,
    ) -> Result<(), JournalError> {
        (**self).spend_card_atc_with(card, now, decide)
    }

    fn reverse(
        &mut self,
        reversal: &Reversal,
        now: Timestamp,
    ) -> Result<ReversalOutcome, JournalError> {
        (**self).reverse(reversal, now)
    }

    fn cut_off(&mut self, now: Timestamp) -> Result<Option<BatchSummary>, JournalError> {
        (**self).cut_off(now)
    }

    fn batch(&self, number: u64) -> Result<Option<BatchSummary>, JournalError> {
        (**self).batch(number)
    }

    fn batches(&self) -> Result<Vec<BatchSummary>, JournalError> {
        (**self).batches()
    }

    fn unacknowledged_batches(&self) -> Result<Vec<BatchSummary>, JournalError> {
        (**self).unacknowledged_batches()
    }

    fn last_cutoff(&self) -> Result<Option<Timestamp>, JournalError> {
        (**self).last_cutoff()
    }

    fn oldest_pending(&self) -> Result<Option<Timestamp>, JournalError> {
        (**self).oldest_pending()
    }

    fn visit_batch_records(
        &self,
        number: u64,
        each: &mut dyn FnMut(BatchRecord) -> ControlFlow<()>,
    ) -> Result<(), JournalError> {
        (**self).visit_batch_records(number, each)
    }

    fn visit_transactions(
        &self,
        filter: &TransactionFilter,
        each: &mut dyn FnMut(JournalEntry) -> ControlFlow<()>,
    ) -> Result<(), JournalError> {
        (**self).visit_transactions(filter, each)
    }

    fn mark_sent(&mut self, number: u64, now: Timestamp) -> Result<(), JournalError> {
        (**self).mark_sent(number, now)
    }

    fn mark_acknowledged(&mut self, number: u64, now: Timestamp) -> Result<(), JournalError> {
        (**self).mark_acknowledged(number, now)
    }

    fn write_batch(&self, number: u64, out: &mut dyn Write) -> Result<BatchTrailer, JournalError> {
        (**self).write_batch(number, out)
    }
}
