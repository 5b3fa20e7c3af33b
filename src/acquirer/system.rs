//! The bank-card acquirer system as a party of the purchase: the banking rules of
//! [`crate::acquirer::card`] over the durable journal, a [`CardJournal`]: the SQLite
//! [`Journal`] by default, or a PostgreSQL database several acquirer processes share
//! ([`crate::acquirer::postgres::PgJournal`], through
//! [`BankCardAcquirer::with_store`]).
//!
//! For each transaction F: a payment already in the journal gets its recorded
//! acknowledgement again (idempotence); a payment the front-end reversed before F
//! arrived is refused; otherwise the rules decide with the card's history from the
//! journal, and the decision is recorded — durably — **before** G is returned. A
//! journal that cannot record means no answer at all: the front-end's deadline then
//! reverses the payment, so nothing is charged that the acquirer did not keep.

use crate::acquirer::card::{BankCardRules, CardHistory, CardKey};
use crate::acquirer::journal::{Authorisation, Journal, JournalError, ReversalOutcome};
use crate::acquirer::store::CardJournal;
use std::collections::BTreeMap;

use crate::messages::{AbandonmentOutcome, PaymentAbandonment};
use crate::messages::{
    Acknowledgement, AcquirerId, AcquirerTransaction, IdentificationId, IdentityCheck,
    IdentityVerdict, RefusalReason, Reversal, Timestamp, Verdict,
};

/// Why the acquirer could not answer.
#[derive(Debug, thiserror::Error)]
pub enum AcquirerError {
    /// The transaction is addressed to another acquirer.
    #[error(
        "transaction for payment {payment} is addressed to acquirer {addressed}, this is {this}"
    )]
    NotForThisAcquirer {
        /// The payment.
        payment: String,
        /// The acquirer it names.
        addressed: AcquirerId,
        /// This acquirer.
        this: AcquirerId,
    },
    /// The journal failed: no acknowledgement can be given.
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// A bank-card acquirer: rules and journal. `J` is the journal's store: the SQLite
/// [`Journal`] unless said otherwise, or `Box<dyn CardJournal>` for one a
/// configuration chose ([`BankCardAcquirer::with_store`]).
pub struct BankCardAcquirer<J: CardJournal = Journal> {
    rules: BankCardRules,
    journal: J,
    /// The identity checks answered since the process started, so that a repeated one
    /// gets the same verdict (its counter is spent by then). Not journalled: an
    /// identification moves no money, and after a restart a repeat is refused as a
    /// replayed counter, which is safe.
    identifications: BTreeMap<IdentificationId, (IdentityCheck, IdentityVerdict)>,
}

impl BankCardAcquirer<Box<dyn CardJournal>> {
    /// The acquirer deciding with `rules` and keeping the journal `store`, whichever
    /// database it is (`telepay serve acquirer-card` picks it from its configuration).
    pub fn with_store(
        rules: BankCardRules,
        store: Box<dyn CardJournal>,
    ) -> BankCardAcquirer<Box<dyn CardJournal>> {
        BankCardAcquirer::new(rules, store)
    }
}

impl<J: CardJournal> BankCardAcquirer<J> {
    /// The acquirer deciding with `rules` and keeping `journal`.
    pub fn new(rules: BankCardRules, journal: J) -> BankCardAcquirer<J> {
        BankCardAcquirer {
            rules,
            journal,
            identifications: BTreeMap::new(),
        }
    }

    /// The banking rules.
    pub fn rules(&self) -> &BankCardRules {
        &self.rules
    }

    /// Checks a payer device's proof of identity (claim 16,
    /// [`BankCardRules::verify_identity`]); the card's counter is raised durably
    /// before the verdict is returned. A repeated check gets the verdict it got the
    /// first time; a different check under a used identification is refused.
    ///
    /// # Errors
    /// [`AcquirerError::NotForThisAcquirer`], or the journal's error: then no verdict
    /// exists.
    pub fn identify(
        &mut self,
        check: &IdentityCheck,
        now: Timestamp,
    ) -> Result<IdentityVerdict, AcquirerError> {
        let identification = &check.request.identification;
        if check.acquirer != *self.id() {
            return Err(AcquirerError::NotForThisAcquirer {
                payment: identification.to_string(),
                addressed: check.acquirer.clone(),
                this: self.id().clone(),
            });
        }
        if let Some((first, verdict)) = self.identifications.get(identification) {
            if first == check {
                return Ok(verdict.clone());
            }
            return Ok(IdentityVerdict {
                acquirer: self.id().clone(),
                purchase: check.request.purchase.clone(),
                identification: identification.clone(),
                verdict: Verdict::refused(RefusalReason::PaymentIdReused),
                customer: None,
            });
        }
        let verdict = match check.proof.proof.card() {
            Some(card) => {
                // The history read, the proof judged and its counter spent in one
                // journal transaction: two processes sharing the journal cannot both
                // accept one cryptogram.
                let key = CardKey::of(card);
                let rules = &self.rules;
                let mut verdict = None;
                self.journal
                    .spend_card_atc_with(&key, now, &mut |history| {
                        let decision = rules.verify_identity(check, &history);
                        verdict = Some(decision.verdict);
                        decision.record_atc.filter(|_| decision.card == key)
                    })?;
                match verdict {
                    Some(verdict) => verdict,
                    // A store that returned without asking recorded nothing: refuse
                    // (a history no counter is above), rather than accept unrecorded.
                    None => {
                        let spent = CardHistory {
                            last_atc: Some(u16::MAX),
                        };
                        self.rules.verify_identity(check, &spent).verdict
                    }
                }
            }
            // verify_identity refuses it: another means than the card.
            None => {
                self.rules
                    .verify_identity(check, &CardHistory::default())
                    .verdict
            }
        };
        self.identifications
            .insert(identification.clone(), (check.clone(), verdict.clone()));
        Ok(verdict)
    }

    /// The acquirer's name.
    pub fn id(&self) -> &AcquirerId {
        self.rules.acquirer()
    }

    /// The journal.
    pub fn journal(&self) -> &J {
        &self.journal
    }

    /// The journal, mutably (cut-off, remittance).
    pub fn journal_mut(&mut self) -> &mut J {
        &mut self.journal
    }

    /// Answers F with G, recorded durably before it is returned.
    ///
    /// # Errors
    /// [`AcquirerError::NotForThisAcquirer`], or the journal's error: then no G exists.
    pub fn authorise(
        &mut self,
        transaction: &AcquirerTransaction,
        now: Timestamp,
    ) -> Result<Acknowledgement, AcquirerError> {
        let payment = &transaction.transaction.payment;
        if transaction.acquirer != *self.id() {
            return Err(AcquirerError::NotForThisAcquirer {
                payment: payment.to_string(),
                addressed: transaction.acquirer.clone(),
                this: self.id().clone(),
            });
        }
        if transaction.transaction.means.card().is_none() {
            // Another means: refused without a journal entry.
            return Ok(Acknowledgement {
                acquirer: self.id().clone(),
                purchase: transaction.transaction.purchase.clone(),
                payment: payment.clone(),
                verdict: Verdict::refused(RefusalReason::NoAcquirer),
                provision: None,
            });
        }
        // The look-ups, the rules and the write in one journal transaction.
        let rules = &self.rules;
        let authorisation = self
            .journal
            .authorise_with(transaction, now, &mut |known| {
                let mut decision = rules.decide(transaction, &known.history);
                if known.reversed {
                    // The reversal overtook F: refuse, and spend no counter on it.
                    decision.acknowledgement.verdict = Verdict::refused(RefusalReason::Cancelled);
                    decision.record_atc = None;
                }
                decision
            })?;
        match authorisation {
            Authorisation::Recorded(acknowledgement) => Ok(acknowledgement),
            Authorisation::AlreadyRecorded(stored) if stored.transaction == *transaction => {
                Ok(stored.acknowledgement)
            }
            // Another transaction under a used identifier: refused, and not recorded
            // (the identifier's first transaction stands).
            Authorisation::AlreadyRecorded(_) => Ok(Acknowledgement {
                acquirer: self.id().clone(),
                purchase: transaction.transaction.purchase.clone(),
                payment: payment.clone(),
                verdict: Verdict::refused(RefusalReason::PaymentIdReused),
                provision: None,
            }),
        }
    }

    /// Takes the front-end's cancellation of a payment.
    ///
    /// # Errors
    /// The journal's.
    pub fn reverse(
        &mut self,
        reversal: &Reversal,
        now: Timestamp,
    ) -> Result<ReversalOutcome, AcquirerError> {
        Ok(self.journal.reverse(reversal, now)?)
    }

    /// Takes a payer device's abandonment of a card payment whose front-end went away
    /// ([`PaymentAbandonment`]): when the card's AAC proves the decline
    /// ([`BankCardRules::check_abandonment`]) and the payment recorded, if any, is the
    /// transaction it names, the payment is reversed like a front-end's reversal — or
    /// marked, never seen, so that a late F from the lost front-end is refused.
    ///
    /// # Errors
    /// The journal's: then nothing changed, and the payer device may ask again.
    pub fn abandon(
        &mut self,
        abandonment: &PaymentAbandonment,
        now: Timestamp,
    ) -> Result<AbandonmentOutcome, AcquirerError> {
        let refused = |reason: String| Ok(AbandonmentOutcome::Refused { reason });
        if let Err(refusal) = self.rules.check_abandonment(abandonment) {
            return refused(refusal.to_string());
        }
        let transaction = &abandonment.transaction;
        if let Some(stored) = self.journal.stored_transaction(&transaction.payment)?
            && stored.transaction.transaction != *transaction
        {
            return refused(format!(
                "payment {} was recorded with another transaction",
                transaction.payment
            ));
        }
        let reversal = Reversal {
            acquirer: self.id().clone(),
            purchase: transaction.purchase.clone(),
            payment: transaction.payment.clone(),
            reason: "abandoned by the payer device: its front-end went away, the card's AAC \
                     verified"
                .into(),
        };
        let detail = match self.journal.reverse(&reversal, now)? {
            ReversalOutcome::Reversed => "authorised, now reversed",
            ReversalOutcome::AlreadyReversed => "already reversed",
            ReversalOutcome::Marked => "never received; a late transaction will be refused",
            ReversalOutcome::WasRefused => "it had been refused",
            ReversalOutcome::AlreadyBatched { batch, .. } => {
                return refused(format!(
                    "payment {} is already in batch {batch}: cancelling it now is a refund",
                    transaction.payment
                ));
            }
        };
        Ok(AbandonmentOutcome::NotCharged {
            detail: detail.into(),
        })
    }
}
