//! The Virtual Wallet acquirer (claim 10) as a party of the purchase: the wallet's
//! rules over its durable store ([`WalletAccounts`]: SQLite's [`WalletStore`] or
//! PostgreSQL's [`super::postgres::PgWalletStore`]), answering the front-end's transaction F
//! with an acknowledgement G, a session's settlement with a [`SettlementResult`], and
//! taking the front-end's reversals.
//!
//! For each F paid from the wallet:
//!
//! - the signed payment must be the payment request's (identifier, merchant, service,
//!   amount), or G is negative ([`RefusalReason::MismatchWithRequest`]);
//! - without a provision asked, the payment is debited ([`WalletStore::pay`]);
//! - with one ([`crate::messages::ProvisionRequest`]), the payment is the first of a
//!   pseudo-session: it opens the provision, which it authenticates, and is settled
//!   later with the session's other payments ([`WalletStore::reserve_with_payment`]);
//!   G carries the [`ProvisionGrant`] the front-end checks the session's next
//!   payments against.
//!
//! Every change is durable before the answer is returned, and a store that cannot
//! record gives no answer at all (as the bank-card acquirer,
//! [`crate::acquirer::system`]): the front-end's deadline then reverses the payment.
//!
//! A repeated F gets the same G. A positive one: the store answers a repeated payment
//! or provision as such, and the authorisation code is derived from the payment, not
//! drawn. A negative one the store decided is kept with a digest of F
//! ([`WalletStore::record_refused_transaction`]), because the account may change in
//! between: a duplicate of an F refused for insufficient funds, arriving after a
//! reload, must not debit a purchase the front-end has ended. (A refusal that F alone
//! decides, another means or a mismatch with the request, is decided alike again.)
//!
//! A dispute of a wallet payment ([`WalletAcquirer::dispute`], claims 8, 9) is answered
//! with its outcome: accepted when the statement verifies with its account key and
//! names a payment debited from that account for the merchant — recorded durably for
//! review under a case number, **not refunded** — or rejected with the reason.

use sha2::Digest;

use crate::messages::{
    Acknowledgement, AcquirerId, AcquirerTransaction, Currency, DisputeCase, DisputeDecision,
    DisputeId, DisputeOutcome, Means, Money, Payment, ProvisionGrant, RefusalReason, Reversal,
    SessionId, SessionSettlement, SettlementResult, Timestamp, Verdict,
};

use super::accounts::WalletAccounts;
use super::encoding::{AccountKey, SignedWalletPayment};
use super::rules::{AccountState, Credit, Refusal, Reservation, Settlement};
use super::store::{
    DisputeRecording, Outcome, RefusedTransaction, WalletReversal, WalletStore, WalletStoreError,
};

/// ISO 4217's "XXX", the code for "no currency involved": the currency of the zeros of
/// a settlement that concerned no known provision and carried no payment.
pub const NO_CURRENCY: Currency = Currency {
    numeric: 999,
    exponent: 0,
};

/// The domain tag of the authorisation code's hash, so that it is never a hash of
/// anything else telepay computes.
const AUTHORISATION_TAG: &[u8] = b"telepay-wallet-authorisation/1";

/// RFC 4648 §6's base 32 alphabet: upper-case letters and digits 2–7.
const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// Why the wallet acquirer could not answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalletAcquirerError {
    /// The transaction or the reversal is addressed to another acquirer.
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
    /// The settlement is addressed to another acquirer.
    #[error("settlement of session {segment} is addressed to acquirer {addressed}, this is {this}")]
    SettlementNotForThisAcquirer {
        /// The provision to settle.
        segment: SessionId,
        /// The acquirer it names.
        addressed: AcquirerId,
        /// This acquirer.
        this: AcquirerId,
    },
    /// The dispute case is addressed to another acquirer.
    #[error("dispute {dispute} is addressed to acquirer {addressed}, this is {this}")]
    DisputeNotForThisAcquirer {
        /// The dispute.
        dispute: DisputeId,
        /// The acquirer it names.
        addressed: AcquirerId,
        /// This acquirer.
        this: AcquirerId,
    },
    /// F could not be serialised to be digested (never, for the message types).
    #[error("transaction for payment {payment} cannot be serialised: {source}")]
    Serialise {
        /// The payment.
        payment: crate::messages::PaymentId,
        /// serde_json's error.
        #[source]
        source: serde_json::Error,
    },
    /// The store failed: no answer can be given, and nothing changed.
    #[error(transparent)]
    Store(#[from] WalletStoreError),
}

/// The Virtual Wallet acquirer: its name and its store.
#[derive(Debug)]
pub struct WalletAcquirer {
    id: AcquirerId,
    store: Box<dyn WalletAccounts>,
}

impl WalletAcquirer {
    /// The acquirer `id`, keeping its accounts in the SQLite `store`.
    pub fn new(id: AcquirerId, store: WalletStore) -> WalletAcquirer {
        WalletAcquirer::with_store(id, Box::new(store))
    }

    /// The acquirer `id`, keeping its accounts in `store`: SQLite, or a PostgreSQL
    /// database several wallet-acquirer processes share
    /// ([`super::postgres::PgWalletStore`]).
    pub fn with_store(id: AcquirerId, store: Box<dyn WalletAccounts>) -> WalletAcquirer {
        WalletAcquirer { id, store }
    }

    /// The acquirer's name.
    pub fn id(&self) -> &AcquirerId {
        &self.id
    }

    /// The store.
    pub fn store(&self) -> &dyn WalletAccounts {
        self.store.as_ref()
    }

    /// The store, mutably (opening accounts).
    pub fn store_mut(&mut self) -> &mut dyn WalletAccounts {
        self.store.as_mut()
    }

    /// `key`'s account, if it is open.
    ///
    /// # Errors
    /// The store's.
    pub fn balance(&self, key: &AccountKey) -> Result<Option<AccountState>, WalletAcquirerError> {
        Ok(self.store.account(key)?)
    }

    /// Credits an account (a reload), once per reference ([`WalletStore::credit`]).
    ///
    /// # Errors
    /// The store's.
    pub fn credit(
        &mut self,
        credit: &Credit,
        now: Timestamp,
    ) -> Result<Outcome<AccountState>, WalletAcquirerError> {
        Ok(self.store.credit(credit, now)?)
    }

    /// Answers F with G, the change it makes durable before G is returned.
    ///
    /// - another means than the wallet: refused ([`RefusalReason::NoAcquirer`]),
    ///   nothing stored;
    /// - a signed payment that is not the request's: refused
    ///   ([`RefusalReason::MismatchWithRequest`]), nothing stored;
    /// - otherwise the store decides: the payment debited, or the provision opened by
    ///   it; a refusal's reason is [`refusal_reason`]'s, and the negative G is kept
    ///   with a digest of F, so that the same F repeated gets it again.
    ///
    /// # Errors
    /// [`WalletAcquirerError::NotForThisAcquirer`], or the store's error: then no G
    /// exists and nothing changed.
    pub fn authorise(
        &mut self,
        f: &AcquirerTransaction,
        now: Timestamp,
    ) -> Result<Acknowledgement, WalletAcquirerError> {
        let payment_id = &f.transaction.payment;
        if f.acquirer != self.id {
            return Err(WalletAcquirerError::NotForThisAcquirer {
                payment: payment_id.to_string(),
                addressed: f.acquirer.clone(),
                this: self.id.clone(),
            });
        }
        let answer = |verdict, provision| Acknowledgement {
            acquirer: self.id.clone(),
            purchase: f.transaction.purchase.clone(),
            payment: payment_id.clone(),
            verdict,
            provision,
        };
        let Payment::VirtualWallet(signed) = &f.transaction.means else {
            // Another means: not this acquirer's to decide, and nothing to keep.
            return Ok(answer(Verdict::refused(RefusalReason::NoAcquirer), None));
        };
        if !matches_request(f, signed) {
            return Ok(answer(
                Verdict::refused(RefusalReason::MismatchWithRequest),
                None,
            ));
        }
        // The very F refused before gets its refusal again, even if the account has
        // changed since (a reload): the front-end ended that purchase on it.
        let digest = transaction_digest(f)?;
        if let Some(refused) = self.store.refused_transaction(payment_id)?
            && refused.digest == digest
        {
            return Ok(refused.acknowledgement);
        }
        let refusal = match &f.provision {
            None => match self.store.pay(signed, now)? {
                Outcome::Done(_) | Outcome::Repeated(_) => {
                    return Ok(answer(self.positive(signed), None));
                }
                Outcome::Refused(refusal) => refusal,
            },
            Some(asked) => {
                let reservation = Reservation {
                    session: asked.segment.clone(),
                    account: signed.payment.account.clone(),
                    merchant: f.merchant.clone(),
                    amount: asked.amount,
                };
                match self.store.reserve_with_payment(signed, &reservation, now)? {
                    Outcome::Done((_, provision)) | Outcome::Repeated((_, provision)) => {
                        let grant = ProvisionGrant {
                            segment: provision.reservation.session.clone(),
                            amount: provision.reservation.amount,
                            sequence_floor: provision.sequence_floor,
                        };
                        return Ok(answer(self.positive(signed), Some(grant)));
                    }
                    Outcome::Refused(refusal) => refusal,
                }
            }
        };
        // Kept before it is sent. A positive G needs no keeping: the store answers
        // the same payment or provision again as repeated.
        let refused = RefusedTransaction {
            digest,
            acknowledgement: answer(Verdict::refused(refusal_reason(&refusal)), None),
        };
        self.store.record_refused_transaction(&refused, now)?;
        Ok(refused.acknowledgement)
    }

    /// A positive verdict for `signed`, with its authorisation code.
    fn positive(&self, signed: &SignedWalletPayment) -> Verdict {
        let payment = &signed.payment;
        Verdict::Positive {
            authorisation_code: authorisation_code(&self.id, &payment.account, payment.sequence)
                .into(),
            // ISO 8583 response code 00: approved.
            response_code: *b"00",
            // A wallet payment has no card to complete a GENERATE AC.
            arpc: None,
        }
    }

    /// Settles a provision with the session's payments ([`WalletStore::settle`]):
    /// exactly their sum debited, the rest released. An empty list releases the
    /// whole provision (how the front-end cancels one whose grant it never received).
    /// A repeated settlement gets the same result, its refusals included.
    ///
    /// A session the store refuses to settle (no provision was reserved under that
    /// name) debits and releases nothing: the result says so with zeros, in the
    /// currency of the first payment, or [`NO_CURRENCY`] when there is none, and
    /// lists every payment as refused with the reason. With no payment, the zeros
    /// are the whole answer: nothing was reserved, so nothing is owed or released.
    ///
    /// # Errors
    /// [`WalletAcquirerError::SettlementNotForThisAcquirer`], or the store's: then no
    /// result exists and nothing changed.
    pub fn settle(
        &mut self,
        s: &SessionSettlement,
        now: Timestamp,
    ) -> Result<SettlementResult, WalletAcquirerError> {
        if s.acquirer != self.id {
            return Err(WalletAcquirerError::SettlementNotForThisAcquirer {
                segment: s.segment.clone(),
                addressed: s.acquirer.clone(),
                this: self.id.clone(),
            });
        }
        let result = |settlement: &Settlement, refused| SettlementResult {
            acquirer: self.id.clone(),
            segment: s.segment.clone(),
            settled: u32::try_from(settlement.settled.len()).unwrap_or(u32::MAX),
            debited: settlement.debited,
            released: settlement.released,
            refused,
        };
        Ok(match self.store.settle(&s.segment, &s.payments, now)? {
            Outcome::Done(settlement) => {
                let refused = settlement
                    .refused
                    .iter()
                    .map(|(payment, refusal)| (payment.clone(), refusal.to_string()))
                    .collect();
                result(&settlement, refused)
            }
            // The refusals of the first settlement, as they were said then.
            Outcome::Repeated(settlement) => {
                let refused = self.store.settlement_refusals(&s.segment)?;
                result(&settlement, refused)
            }
            Outcome::Refused(refusal) => {
                let currency = s
                    .payments
                    .first()
                    .map_or(NO_CURRENCY, |first| first.payment.amount.currency);
                let reason = refusal.to_string();
                SettlementResult {
                    acquirer: self.id.clone(),
                    segment: s.segment.clone(),
                    settled: 0,
                    debited: Money::new(0, currency),
                    released: Money::new(0, currency),
                    refused: s
                        .payments
                        .iter()
                        .map(|signed| (signed.payment.payment.clone(), reason.clone()))
                        .collect(),
                }
            }
        })
    }

    /// Takes the front-end's cancellation of a payment ([`WalletStore::reverse`]): a
    /// debited payment is credited back once; one never debited is never debited
    /// after, so that an F overtaken by its reversal is refused
    /// ([`RefusalReason::Cancelled`]).
    ///
    /// # Errors
    /// [`WalletAcquirerError::NotForThisAcquirer`], or the store's: then nothing
    /// changed.
    pub fn reverse(
        &mut self,
        reversal: &Reversal,
        now: Timestamp,
    ) -> Result<WalletReversal, WalletAcquirerError> {
        if reversal.acquirer != self.id {
            return Err(WalletAcquirerError::NotForThisAcquirer {
                payment: reversal.payment.to_string(),
                addressed: reversal.acquirer.clone(),
                this: self.id.clone(),
            });
        }
        Ok(self.store.reverse(reversal, now)?)
    }

    /// Answers a dispute of a payment (claims 8, 9) with its outcome, the dispute
    /// recorded durably before an acceptance is returned:
    ///
    /// - a dispute of another means than the wallet: rejected, nothing recorded;
    /// - a message that is not its signed statement, a reason that breaks the rules, a
    ///   statement naming another merchant than the case's
    ///   ([`super::dispute::check_dispute`]): rejected;
    /// - otherwise the store decides ([`WalletStore::record_dispute`]): the signature
    ///   with the statement's account key, then the payment debited from that account
    ///   for that merchant. Accepted means recorded for review under a case number —
    ///   **no refund is made**; the same dispute repeated gets the same case number.
    ///   A rejection is decided again if the dispute is repeated: the payment may have
    ///   been debited since (a session settled).
    ///
    /// # Errors
    /// [`WalletAcquirerError::DisputeNotForThisAcquirer`], or the store's error: then no
    /// outcome exists and nothing was recorded.
    pub fn dispute(
        &mut self,
        case: &DisputeCase,
        now: Timestamp,
    ) -> Result<DisputeOutcome, WalletAcquirerError> {
        let dispute = &case.dispute;
        if case.acquirer != self.id {
            return Err(WalletAcquirerError::DisputeNotForThisAcquirer {
                dispute: dispute.dispute.clone(),
                addressed: case.acquirer.clone(),
                this: self.id.clone(),
            });
        }
        let outcome = |outcome| DisputeOutcome {
            dispute: dispute.dispute.clone(),
            acquirer: Some(self.id.clone()),
            outcome,
        };
        if dispute.means != Means::VirtualWallet {
            return Ok(outcome(DisputeDecision::Rejected {
                reason: format!(
                    "dispute {}: this acquirer takes disputes of virtual-wallet payments only",
                    dispute.dispute
                ),
            }));
        }
        if let Err(fault) = super::dispute::check_dispute(dispute, &case.merchant) {
            return Ok(outcome(DisputeDecision::Rejected {
                reason: fault.to_string(),
            }));
        }
        let decision = match self.store.record_dispute(&dispute.signed, now)? {
            DisputeRecording::Recorded { case } | DisputeRecording::Repeated { case } => {
                DisputeDecision::Accepted { case }
            }
            DisputeRecording::Refused(refusal) => DisputeDecision::Rejected {
                reason: refusal.to_string(),
            },
        };
        Ok(outcome(decision))
    }
}

/// SHA-256 of F as JSON: what tells a repeated F from another one under the same
/// payment identifier.
fn transaction_digest(f: &AcquirerTransaction) -> Result<[u8; 32], WalletAcquirerError> {
    let json = serde_json::to_vec(f).map_err(|source| WalletAcquirerError::Serialise {
        payment: f.transaction.payment.clone(),
        source,
    })?;
    Ok(sha2::Sha256::digest(&json).into())
}

/// Whether the signed payment is the one F and its payment request describe: the
/// request's identifier (which E and the payment carry too), its purchase, merchant,
/// service and amount (currency included), and a request that accepts the wallet.
/// The payment's time is the payer device's clock and is not compared (the sequence,
/// not the time, guards against replay: `docs/wallet.md` §2).
fn matches_request(f: &AcquirerTransaction, signed: &SignedWalletPayment) -> bool {
    let payment = &signed.payment;
    let request = &f.request;
    payment.payment == request.payment
        && f.transaction.payment == request.payment
        && f.transaction.purchase == request.purchase
        && payment.merchant == f.merchant
        && f.merchant == request.merchant
        && payment.service == request.service
        && payment.amount == request.amount
        && request
            .accepted_means
            .contains(&crate::messages::Means::VirtualWallet)
}

/// The reason G gives for a wallet refusal. Exhaustive on purpose: a new refusal must
/// be given its reason here.
pub fn refusal_reason(refusal: &Refusal) -> RefusalReason {
    match refusal {
        Refusal::UnknownAccount { .. } => RefusalReason::UnknownAccount,
        Refusal::Signature(_) => RefusalReason::SignatureInvalid,
        // A sequence not above the last accepted, or already spent opening a
        // provision: a replay (or a re-ordering, which is refused alike).
        Refusal::StaleSequence { .. }
        | Refusal::SequenceNotIncreasing { .. }
        | Refusal::OpeningReplayed { .. }
        | Refusal::SequenceUsed { .. } => RefusalReason::ReplayedSequence,
        Refusal::InsufficientFunds { .. } => RefusalReason::InsufficientFunds,
        Refusal::ProvisionExceeded { .. } => RefusalReason::ProvisionExceeded,
        // The payment is not the one the account, the provision or the request
        // allow: another currency, nothing to pay, a number beyond the store, another
        // account or merchant.
        Refusal::WrongCurrency { .. }
        | Refusal::ZeroAmount { .. }
        | Refusal::OutOfRange { .. }
        | Refusal::OtherAccount { .. }
        | Refusal::OtherMerchant { .. } => RefusalReason::MismatchWithRequest,
        // A name the front-end chose is already taken: the session of the provision
        // (used for another, or settled already) or the payment's identifier. The
        // credit reference is a credit's, never in F; were it reported, it would be
        // an identifier reused too.
        Refusal::SessionReused { .. }
        | Refusal::SessionSettled { .. }
        | Refusal::PaymentIdReused { .. }
        | Refusal::CreditReferenceReused { .. } => RefusalReason::PaymentIdReused,
        // A settlement's, never F's: the provision named does not exist, so the
        // transaction does not match anything the front-end was granted.
        Refusal::UnknownSession { .. } => RefusalReason::MismatchWithRequest,
        // A credit's, never F's: an amount beyond what the account can hold is
        // outside the acquirer's limits.
        Refusal::BalanceOverflow { .. } => RefusalReason::AmountOutOfLimits,
        Refusal::Reversed { .. } => RefusalReason::Cancelled,
    }
}

/// The authorisation code (ISO 8583 field 38, six characters) of a wallet payment:
/// the first 30 bits of SHA-256(tag ‖ acquirer ‖ account ‖ sequence) in base 32
/// (RFC 4648 §6, upper-case letters and digits 2–7). Derived, not drawn, so that a
/// repeated F gets the same code; the acquirer's name and the account's sequence make
/// it differ from one payment to the next. Each variable-length part comes after its
/// length, so that no two inputs hash the same bytes.
pub fn authorisation_code(acquirer: &AcquirerId, account: &AccountKey, sequence: u64) -> String {
    let mut hash = sha2::Sha256::new();
    for part in [AUTHORISATION_TAG, acquirer.0.as_bytes()] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    hash.update(account.to_sec1());
    hash.update(sequence.to_be_bytes());
    let digest = hash.finalize();
    let first = digest.first_chunk::<4>().copied().unwrap_or([0; 4]);
    let bits = u32::from_be_bytes(first) >> 2;
    (0..6)
        .rev()
        .map(|group| {
            let index = (bits >> (group * 5)) & 0x1F;
            char::from(BASE32.get(index as usize).copied().unwrap_or(b'A'))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::SigningKey;

    fn account(seed: u8) -> AccountKey {
        AccountKey::new(SigningKey::from_slice(&[seed; 32]).unwrap().verifying_key())
    }

    #[test]
    fn the_authorisation_code_is_six_base32_characters_fixed_by_its_inputs() {
        let acquirer = AcquirerId::from("wallet-1");
        let code = authorisation_code(&acquirer, &account(1), 7);
        assert_eq!(code.len(), 6);
        assert!(code.bytes().all(|byte| BASE32.contains(&byte)), "{code}");
        assert_eq!(authorisation_code(&acquirer, &account(1), 7), code);
        let others = [
            authorisation_code(&acquirer, &account(1), 8),
            authorisation_code(&acquirer, &account(2), 7),
            authorisation_code(&AcquirerId::from("wallet-2"), &account(1), 7),
        ];
        assert!(others.iter().all(|other| *other != code), "{others:?}");
    }

    #[test]
    fn the_code_is_the_hash_read_five_bits_at_a_time() {
        // Recomputed by hand from the definition: tag, acquirer, account, sequence.
        let acquirer = AcquirerId::from("A");
        let key = account(3);
        let mut input = Vec::new();
        input.extend_from_slice(&(AUTHORISATION_TAG.len() as u64).to_be_bytes());
        input.extend_from_slice(AUTHORISATION_TAG);
        input.extend_from_slice(&1u64.to_be_bytes());
        input.extend_from_slice(b"A");
        input.extend_from_slice(&key.to_sec1());
        input.extend_from_slice(&42u64.to_be_bytes());
        let digest = sha2::Sha256::digest(&input);
        let bits = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
        let expected: String = (0..6)
            .map(|i| BASE32[((bits >> (27 - 5 * i)) & 0x1F) as usize] as char)
            .collect();
        assert_eq!(authorisation_code(&acquirer, &key, 42), expected);
    }
}
