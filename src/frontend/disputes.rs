//! Disputes, a service message of the payer device (FR2750275 claims 8, 9: "the
//! handling of disputes"), as the front-end carries them.
//!
//! The payer device sends a [`Dispute`] of a payment, signed with the user's wallet key;
//! the front-end:
//!
//! 1. takes it only from that terminal's payer device;
//! 2. refuses by itself what no acquirer needs to see: a message that is not the
//!    statement the user signed, a reason empty or too long, a statement for another
//!    merchant ([`crate::acquirer::wallet::dispute::check_dispute`]), a means it has no
//!    acquirer for — the outcome then names no acquirer;
//! 3. otherwise forwards a [`DisputeCase`] to the acquirer of the dispute's means and
//!    waits [`FrontEndConfig::acquirer_timeout_ms`](super::FrontEndConfig) for its
//!    [`DisputeOutcome`], which it records and passes on to the payer device.
//!
//! When the acquirer does not answer in time, the payer device is told
//! [`DisputeDecision::Unanswered`]: the dispute is not lost, and not decided. A late
//! answer is still recorded and passed on; the payer device repeating the dispute gets
//! the case sent again (the acquirer keeps disputes by identifier, so a second copy is
//! the same case).
//!
//! Every dispute is kept in memory with its last outcome ([`FrontEnd::disputes`]). A
//! repeated dispute gets its recorded outcome again, and is ignored while its case is
//! at the acquirer; another dispute under a used identifier is ignored.

use std::collections::{BTreeMap, BTreeSet};

use super::{Entropy, FrontEnd, Reaction};
use crate::acquirer::wallet::dispute::check_dispute;
use crate::messages::{
    AcquirerId, Dispute, DisputeCase, DisputeDecision, DisputeId, DisputeOutcome, Envelope,
    Message, Party, Timestamp,
};
use crate::terminal::plan::means_name;

/// What the front-end keeps of one dispute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisputeRecord {
    /// The dispute as the payer device sent it.
    pub dispute: Dispute,
    /// When it first arrived.
    pub received_at: Timestamp,
    /// The acquirer its case went to; `None` when the front-end refused it itself.
    pub acquirer: Option<AcquirerId>,
    /// When the acquirer's answer is due, while the case is at the acquirer.
    pub deadline: Option<Timestamp>,
    /// The last outcome sent to the payer device.
    pub outcome: Option<DisputeOutcome>,
}

impl DisputeRecord {
    /// Whether the case is at the acquirer, its answer awaited.
    pub fn is_pending(&self) -> bool {
        self.deadline.is_some()
    }

    /// Whether the outcome is final: accepted or rejected.
    pub fn is_decided(&self) -> bool {
        self.outcome
            .as_ref()
            .is_some_and(|outcome| !matches!(outcome.outcome, DisputeDecision::Unanswered))
    }
}

/// Every dispute the front-end has taken, by identifier.
#[derive(Debug, Clone, Default)]
pub struct Disputes {
    records: BTreeMap<DisputeId, DisputeRecord>,
    /// The disputes whose case is at an acquirer, so that deadlines are found without
    /// scanning every dispute ever taken.
    waiting: BTreeSet<DisputeId>,
}

impl Disputes {
    /// The dispute named `dispute`, if the front-end has taken it.
    pub fn get(&self, dispute: &DisputeId) -> Option<&DisputeRecord> {
        self.records.get(dispute)
    }

    /// Every dispute, by identifier.
    pub fn iter(&self) -> impl Iterator<Item = &DisputeRecord> {
        self.records.values()
    }

    /// How many disputes the front-end has taken.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether the front-end has taken none.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The earliest deadline of a case at an acquirer.
    pub(super) fn poll_timeout(&self) -> Option<Timestamp> {
        self.waiting
            .iter()
            .filter_map(|id| self.records.get(id).and_then(|record| record.deadline))
            .min()
    }

    /// Tells the payer device of each case whose acquirer is late at `now` that it is
    /// unanswered.
    pub(super) fn handle_timeout(&mut self, now: Timestamp) -> Vec<Envelope> {
        let due: Vec<DisputeId> = self
            .waiting
            .iter()
            .filter(|id| {
                self.records
                    .get(*id)
                    .and_then(|record| record.deadline)
                    .is_some_and(|deadline| deadline <= now)
            })
            .cloned()
            .collect();
        let mut sent = Vec::with_capacity(due.len());
        for id in due {
            self.waiting.remove(&id);
            let Some(record) = self.records.get_mut(&id) else {
                continue;
            };
            record.deadline = None;
            let unanswered = DisputeOutcome {
                dispute: id,
                acquirer: record.acquirer.clone(),
                outcome: DisputeDecision::Unanswered,
            };
            sent.push(to_payer(record, unanswered));
        }
        sent
    }

    /// Sends `record`'s case to its acquirer, due by `now + timeout_ms`.
    fn forward(
        &mut self,
        id: &DisputeId,
        acquirer: AcquirerId,
        merchant: crate::messages::MerchantId,
        now: Timestamp,
        timeout_ms: i64,
    ) -> Option<Envelope> {
        let record = self.records.get_mut(id)?;
        record.acquirer = Some(acquirer.clone());
        record.deadline = Some(now.plus_millis(timeout_ms));
        self.waiting.insert(id.clone());
        Some(Envelope {
            from: Party::FrontEnd,
            to: Party::Acquirer(acquirer.clone()),
            message: Message::DisputeCase(Box::new(DisputeCase {
                acquirer,
                merchant,
                dispute: record.dispute.clone(),
            })),
        })
    }
}

/// Records `outcome` as `record`'s last and addresses it to the payer device.
fn to_payer(record: &mut DisputeRecord, outcome: DisputeOutcome) -> Envelope {
    record.outcome = Some(outcome.clone());
    Envelope {
        from: Party::FrontEnd,
        to: Party::Payer(record.dispute.terminal.clone()),
        message: Message::DisputeOutcome(outcome),
    }
}

impl<E: Entropy> FrontEnd<E> {
    /// Every dispute the front-end has taken, with its last outcome.
    pub fn disputes(&self) -> &Disputes {
        &self.disputes
    }

    /// A payer device's [`Dispute`] (the module's steps).
    pub(super) fn on_dispute(
        &mut self,
        now: Timestamp,
        from: &Party,
        dispute: Dispute,
    ) -> Reaction {
        if !matches!(from, Party::Payer(sender) if *sender == dispute.terminal) {
            return Reaction::ignore(format!(
                "a dispute for terminal {} came from {from}",
                dispute.terminal
            ));
        }
        let id = dispute.dispute.clone();
        let merchant = self.config.merchant.clone();
        let timeout = self.config.acquirer_timeout_ms;
        if let Some(record) = self.disputes.records.get(&id) {
            if record.dispute != dispute {
                return Reaction::ignore(format!(
                    "dispute {id} already names another dispute of terminal {}",
                    record.dispute.terminal
                ));
            }
            if record.is_pending() {
                return Reaction::ignore(format!(
                    "dispute {id} repeated while its case is at the acquirer"
                ));
            }
            if record.is_decided() {
                let outcome = record.outcome.clone().map(|outcome| Envelope {
                    from: Party::FrontEnd,
                    to: Party::Payer(dispute.terminal.clone()),
                    message: Message::DisputeOutcome(outcome),
                });
                return Reaction::resend(
                    outcome.into_iter().collect(),
                    format!("dispute {id} repeated: its outcome again"),
                );
            }
            // Unanswered: the acquirer did not answer in time; try it again.
            let acquirer = record.acquirer.clone();
            let sent = acquirer
                .and_then(|acquirer| self.disputes.forward(&id, acquirer, merchant, now, timeout));
            return Reaction::resend(
                sent.into_iter().collect(),
                format!("dispute {id} repeated after its acquirer did not answer: sent again"),
            );
        }
        let refusal = match check_dispute(&dispute, &merchant) {
            Err(fault) => Some(fault.to_string()),
            Ok(()) => match self.config.acquirer_for(dispute.means) {
                None => Some(format!(
                    "dispute {id}: the front-end has no acquirer for the {}",
                    means_name(dispute.means)
                )),
                Some(_) => None,
            },
        };
        let acquirer = self.config.acquirer_for(dispute.means).cloned();
        let mut record = DisputeRecord {
            dispute,
            received_at: now,
            acquirer: None,
            deadline: None,
            outcome: None,
        };
        if let Some(reason) = refusal {
            let sent = to_payer(
                &mut record,
                DisputeOutcome {
                    dispute: id.clone(),
                    acquirer: None,
                    outcome: DisputeDecision::Rejected { reason },
                },
            );
            self.disputes.records.insert(id, record);
            return Reaction::send(vec![sent]);
        }
        self.disputes.records.insert(id.clone(), record);
        let sent = acquirer
            .and_then(|acquirer| self.disputes.forward(&id, acquirer, merchant, now, timeout));
        Reaction::send(sent.into_iter().collect())
    }

    /// An acquirer's [`DisputeOutcome`]: recorded, and passed on to the payer device.
    pub(super) fn on_dispute_outcome(&mut self, from: &Party, outcome: DisputeOutcome) -> Reaction {
        let id = outcome.dispute.clone();
        let Some(record) = self.disputes.records.get_mut(&id) else {
            return Reaction::ignore(format!("an outcome for unknown dispute {id}"));
        };
        let expected = record.acquirer.clone();
        let from_expected = matches!(
            (from, expected.as_ref()),
            (Party::Acquirer(sender), Some(acquirer)) if sender == acquirer
        );
        if !from_expected || outcome.acquirer != expected {
            return Reaction::ignore(format!("an outcome for dispute {id} came from {from}"));
        }
        if matches!(outcome.outcome, DisputeDecision::Unanswered) {
            return Reaction::ignore(format!(
                "an acquirer answered dispute {id} with no decision"
            ));
        }
        if record.is_decided() {
            return Reaction::ignore(if record.outcome.as_ref() == Some(&outcome) {
                format!("outcome of dispute {id} repeated")
            } else {
                format!("outcome of dispute {id} differs from the one recorded: kept the first")
            });
        }
        record.deadline = None;
        self.disputes.waiting.remove(&id);
        let sent = to_payer(record, outcome);
        Reaction::send(vec![sent])
    }
}
