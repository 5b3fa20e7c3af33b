//! The bank-card acquirer system as a party of the purchase: the banking rules of
//! [`crate::acquirer::card`] over the durable [`Journal`].
//!
//! For each transaction F: a payment already in the journal gets its recorded
//! acknowledgement again (idempotence); a payment the front-end reversed before F
//! arrived is refused; otherwise the rules decide with the card's history from the
//! journal, and the decision is recorded — durably — **before** G is returned. A
//! journal that cannot record means no answer at all: the front-end's deadline then
//! reverses the payment, so nothing is charged that the acquirer did not keep.

use crate::acquirer::card::{BankCardRules, CardHistory, CardKey};
use crate::acquirer::journal::{Authorisation, Journal, JournalError, ReversalOutcome};
use std::collections::BTreeMap;

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

/// A bank-card acquirer: rules and journal.
pub struct BankCardAcquirer {
    rules: BankCardRules,
    journal: Journal,
    /// The identity checks answered since the process started, so that a repeated one
    /// gets the same verdict (its counter is spent by then). Not journalled: an
    /// identification moves no money, and after a restart a repeat is refused as a
    /// replayed counter, which is safe.
    identifications: BTreeMap<IdentificationId, (IdentityCheck, IdentityVerdict)>,
}

impl BankCardAcquirer {
    /// The acquirer deciding with `rules` and keeping `journal`.
    pub fn new(rules: BankCardRules, journal: Journal) -> BankCardAcquirer {
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
        let history = match check.proof.proof.card() {
            Some(card) => self.journal.card_history(&CardKey::of(card))?,
            // verify_identity refuses it: another means than the card.
            None => CardHistory::default(),
        };
        let decision = self.rules.verify_identity(check, &history);
        if let Some(atc) = decision.record_atc {
            self.journal.raise_card_atc(&decision.card, atc, now)?;
        }
        self.identifications.insert(
            identification.clone(),
            (check.clone(), decision.verdict.clone()),
        );
        Ok(decision.verdict)
    }

    /// The acquirer's name.
    pub fn id(&self) -> &AcquirerId {
        self.rules.acquirer()
    }

    /// The journal.
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// The journal, mutably (cut-off, remittance).
    pub fn journal_mut(&mut self) -> &mut Journal {
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
        let authorisation = self.journal.authorise_with(transaction, now, |known| {
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
}
