//! Identification of a cardholder by the bank card (FR2750275 claim 16): the acquirer's
//! side of the payer device's service message.
//!
//! The payer device answers an [`IdentificationRequest`] as it answers a payment
//! request, with one difference: the card signs a **zero amount** (an EMV account
//! verification) over [`IdentificationRequest::card_request`]. The issuer's acquirer
//! applies the payment rules that make sense without an amount — PAN, issuer, expiry,
//! an ARQC, the request's values, the cryptogram, the counter, the PIN verified by the
//! card — and, when they all hold, names the customer with a pseudonym of the card
//! ([`customer_id`]). Nothing is authorised: a zero amount is never remitted, and the
//! amount limits of payments would refuse it anyway.
//!
//! The proof cannot be replayed: its unpredictable number comes from the front-end's
//! fresh nonce, and its counter must be new for the card.

use sha2::{Digest, Sha256};

use super::{Amount, BankCardRules, CardHistory, CardKey, Judgement};
use crate::messages::{
    AcquirerId, AcquirerTransaction, CustomerId, IdentityCheck, IdentityVerdict, Payment,
    PaymentId, RefusalReason, Transaction, Verdict,
};

/// What the customer pseudonym's hash starts with, so that it is never another hash's.
const CUSTOMER_DOMAIN: &[u8] = b"telepay bank-card acquirer: customer pseudonym v1";

/// What [`BankCardRules::verify_identity`] answers: the verdict and what the journal
/// must remember before it is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityDecision {
    /// The answer to the front-end.
    pub verdict: IdentityVerdict,
    /// The card the proof came from.
    pub card: CardKey,
    /// The counter to record as the card's last: `Some` when the cryptogram is
    /// authentic and its ATC new, whatever the verdict (the card spent it).
    pub record_atc: Option<u16>,
}

impl BankCardRules {
    /// Checks a payer device's proof of identity, given what the journal knows of the
    /// card. Positive when, in this order: the PAN is valid, its issuer known, the card
    /// not expired on the request's date, the cryptogram an ARQC over exactly the
    /// request's zero-amount values, authentic, with a new counter, and the card's own
    /// verification results say it verified the PIN. The first rule that fails is the
    /// negative verdict's reason. An authentic ARQC gets an ARPC either way, so that
    /// the card can complete. A proof made with the wallet key
    /// ([`crate::messages::IdentityProof::Key`]) is not a card's: refused
    /// [`RefusalReason::NoAcquirer`] (the front-end checks those itself).
    pub fn verify_identity(
        &self,
        check: &IdentityCheck,
        history: &CardHistory,
    ) -> IdentityDecision {
        let Some(card) = check.proof.proof.card() else {
            return IdentityDecision {
                verdict: IdentityVerdict {
                    acquirer: self.acquirer.clone(),
                    purchase: check.request.purchase.clone(),
                    identification: check.request.identification.clone(),
                    verdict: Verdict::refused(RefusalReason::NoAcquirer),
                    customer: None,
                },
                card: CardKey {
                    pan: String::new(),
                    pan_sequence: 0,
                },
                record_atc: None,
            };
        };
        // The proof judged as the payment the card signed: the same request values.
        let as_payment = AcquirerTransaction {
            acquirer: check.acquirer.clone(),
            merchant: check.request.merchant.clone(),
            request: check.request.card_request(),
            transaction: Transaction {
                purchase: check.proof.purchase.clone(),
                payment: PaymentId(check.proof.identification.0.clone()),
                terminal: check.proof.terminal.clone(),
                means: Payment::BankCard(card.clone()),
            },
            provision: None,
        };
        // The identification's ids are the request's payment and purchase ids, so rule 6
        // also refuses a proof that answers another identification.
        let Judgement { refusal, authentic } = self.judge(&as_payment, card, history, Amount::Zero);
        let verdict = self.verdict(
            &as_payment.transaction.payment,
            card,
            refusal,
            authentic.as_ref(),
        );
        let customer = verdict
            .is_positive()
            .then(|| customer_id(&self.acquirer, &CardKey::of(card)));
        IdentityDecision {
            verdict: IdentityVerdict {
                acquirer: self.acquirer.clone(),
                purchase: check.request.purchase.clone(),
                identification: check.request.identification.clone(),
                verdict,
                customer,
            },
            card: CardKey::of(card),
            record_atc: (authentic.is_some() && history.admits(card.atc)).then_some(card.atc),
        }
    }
}

/// The customer's pseudonym at `acquirer`: `C-` and the first 8 bytes, in hex, of
/// SHA-256 over a domain, the acquirer, the PAN and the PAN sequence number. The same
/// card is the same customer at one acquirer every time; a service server learns who
/// its customer is without learning the card number, and two acquirers' pseudonyms of
/// one card differ.
pub fn customer_id(acquirer: &AcquirerId, card: &CardKey) -> CustomerId {
    let mut hash = Sha256::new();
    hash.update(CUSTOMER_DOMAIN);
    for part in [acquirer.0.as_bytes(), card.pan.as_bytes()] {
        hash.update(u64::try_from(part.len()).unwrap_or(u64::MAX).to_be_bytes());
        hash.update(part);
    }
    hash.update([card.pan_sequence]);
    let digest = hash.finalize();
    CustomerId::from(format!(
        "C-{}",
        hex::encode_upper(digest.get(..8).unwrap_or_default())
    ))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{ATC, NOON_2026_11_25, card_for, rules, sign};
    use super::*;
    use crate::messages::{
        Currency, IdentificationId, IdentificationProof, IdentificationRequest, IdentityProof,
        Means, MerchantId, PurchaseId, TerminalId,
    };

    fn request() -> IdentificationRequest {
        IdentificationRequest {
            purchase: PurchaseId::from("purchase-1"),
            identification: IdentificationId::from("purchase-1-ID"),
            merchant: MerchantId::from("merchant-1"),
            purpose: "Customer area".into(),
            currency: Currency::EUR,
            date: NOON_2026_11_25,
            nonce: [0xA5; 16],
            accepted_means: vec![Means::BankCard],
        }
    }

    fn check_with(edit: impl FnOnce(&mut IdentityCheck)) -> IdentityCheck {
        let request = request();
        let card = card_for(&request.card_request());
        let mut check = IdentityCheck {
            acquirer: AcquirerId::from("acquirer-cb"),
            proof: IdentificationProof {
                purchase: request.purchase.clone(),
                identification: request.identification.clone(),
                terminal: TerminalId::from("terminal-1"),
                proof: IdentityProof::Card(card),
            },
            request,
        };
        edit(&mut check);
        check
    }

    fn card_of(check: &mut IdentityCheck) -> &mut crate::messages::CardTransaction {
        let IdentityProof::Card(card) = &mut check.proof.proof else {
            panic!("a bank-card payment")
        };
        card
    }

    fn refusal(decision: &IdentityDecision) -> Option<RefusalReason> {
        match &decision.verdict.verdict {
            Verdict::Positive { .. } => None,
            Verdict::Negative { reason, .. } => Some(reason.clone()),
        }
    }

    #[test]
    fn a_genuine_zero_amount_proof_after_the_pin_names_the_customer() {
        let check = check_with(|_| {});
        let decision = rules().verify_identity(&check, &CardHistory::default());
        assert_eq!(refusal(&decision), None);
        let Verdict::Positive { arpc, .. } = &decision.verdict.verdict else {
            unreachable!()
        };
        assert!(arpc.is_some(), "the card completes with the issuer's ARPC");
        let IdentityProof::Card(card) = &check.proof.proof else {
            panic!("a bank-card payment")
        };
        assert_eq!(
            decision.verdict.customer,
            Some(customer_id(
                &AcquirerId::from("acquirer-cb"),
                &CardKey::of(card)
            ))
        );
        assert_eq!(decision.record_atc, Some(ATC));
    }

    #[test]
    fn each_rule_refuses_with_its_reason() {
        let cases: Vec<(&str, IdentityCheck, CardHistory, RefusalReason)> = vec![
            (
                "a PAN with a wrong check digit",
                check_with(|check| card_of(check).pan = "4970100000000015".into()),
                CardHistory::default(),
                RefusalReason::InvalidPan,
            ),
            (
                "an expired card",
                check_with(|check| {
                    card_of(check).expiry = "251130".into();
                    sign(card_of(check));
                }),
                CardHistory::default(),
                RefusalReason::CardExpired,
            ),
            (
                "a TC instead of an ARQC",
                check_with(|check| card_of(check).cid = 0x40),
                CardHistory::default(),
                RefusalReason::NotAnAuthorisationRequest,
            ),
            (
                "a payment's amount signed by the card",
                check_with(|check| {
                    card_of(check).amount = [0, 0, 0, 0, 0x02, 0x50];
                    sign(card_of(check));
                }),
                CardHistory::default(),
                RefusalReason::MismatchWithRequest,
            ),
            (
                "a proof made for another nonce",
                check_with(|check| check.request.nonce = [0x11; 16]),
                CardHistory::default(),
                RefusalReason::MismatchWithRequest,
            ),
            (
                "a proof answering another identification",
                check_with(|check| check.proof.identification = "other-ID".into()),
                CardHistory::default(),
                RefusalReason::MismatchWithRequest,
            ),
            (
                "a forged cryptogram",
                check_with(|check| card_of(check).cryptogram[0] ^= 1),
                CardHistory::default(),
                RefusalReason::CryptogramInvalid,
            ),
            (
                "a counter already used",
                check_with(|_| {}),
                CardHistory {
                    last_atc: Some(ATC),
                },
                RefusalReason::ReplayedCounter,
            ),
            (
                "a card that did not verify the PIN",
                check_with(|check| {
                    // CVR byte 1: offline PIN verification not performed.
                    card_of(check).iad[4] &= !0x04;
                    sign(card_of(check));
                }),
                CardHistory::default(),
                RefusalReason::CardholderNotVerified,
            ),
        ];
        for (case, check, history, expected) in cases {
            let decision = rules().verify_identity(&check, &history);
            assert_eq!(refusal(&decision), Some(expected), "{case}");
            assert_eq!(decision.verdict.customer, None, "{case}: nobody named");
        }
    }

    #[test]
    fn a_genuine_proof_refused_for_its_counter_is_still_answered_with_an_arpc() {
        let check = check_with(|check| {
            card_of(check).iad[4] &= !0x04;
            sign(card_of(check));
        });
        let decision = rules().verify_identity(&check, &CardHistory::default());
        assert!(matches!(
            decision.verdict.verdict,
            Verdict::Negative { arpc: Some(_), .. }
        ));
        assert_eq!(decision.record_atc, Some(ATC), "the card spent its counter");
    }

    #[test]
    fn the_customer_pseudonym_is_stable_per_card_and_acquirer() {
        let card = CardKey {
            pan: "4970100000000014".into(),
            pan_sequence: 1,
        };
        let here = customer_id(&AcquirerId::from("acquirer-cb"), &card);
        assert_eq!(here, customer_id(&AcquirerId::from("acquirer-cb"), &card));
        assert_eq!(here.0.len(), 2 + 16);
        assert!(here.0.starts_with("C-"));
        assert_ne!(here, customer_id(&AcquirerId::from("acquirer-2"), &card));
        let next_card = CardKey {
            pan_sequence: 2,
            ..card
        };
        assert_ne!(
            here,
            customer_id(&AcquirerId::from("acquirer-cb"), &next_card)
        );
    }
}
