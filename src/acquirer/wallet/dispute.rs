//! Disputes ("contestations", FR2750275 claims 8, 9 and 12: the key-store key "serves
//! identification / authentication and disputes"): the statement the payer device signs
//! with the wallet key to dispute a payment, its canonical encoding, and the checks of a
//! [`Dispute`] message against its statement that the front-end and the acquirer both
//! make ([`check_dispute`]).
//!
//! The flow: the payer device sends a [`Dispute`] to the front-end, which records it and
//! forwards a [`crate::messages::DisputeCase`] to the acquirer of the disputed payment's
//! means; the acquirer answers a [`crate::messages::DisputeOutcome`], which the
//! front-end records and passes on to the payer device. The wallet acquirer verifies the
//! signature with the statement's account key, checks that the payment was debited from
//! that account for that merchant, and records the dispute durably
//! ([`super::WalletStore::record_dispute`]); **accepted means recorded for review under
//! a case number, not refunded**: nothing is credited back automatically.
//!
//! # Encoding (`telepay-dispute/1`)
//!
//! As every wallet statement ([`super::statement`]): integers big-endian, variable
//! fields after their u16 length.
//!
//! | offset | size | field | content |
//! |---|---|---|---|
//! | 0 | 2 | tag length | `00 11` (17) |
//! | 2 | 17 | domain tag | ASCII `telepay-dispute/1` |
//! | 19 | 2 | key length | `00 21` (33) |
//! | 21 | 33 | account | SEC1 compressed point (SEC 1 v2 §2.3.3) |
//! | 54 | 2 + d | dispute | u16 length, UTF-8: the payer device's name for it |
//! | 56+d | 2 + m | merchant | u16 length, UTF-8 |
//! | 58+d+m | 2 + p | payment | u16 length, UTF-8: the payment disputed |
//! | 60+d+m+p | 2 + r | reason | u16 length, UTF-8, at most [`MAX_DISPUTE_REASON_CHARS`] characters |
//! | 62+d+m+p+r | 8 | time | i64, ms since 1970-01-01 UTC (the payer device's clock) |
//!
//! Total: 70 + d + m + p + r bytes. The dispute's identifier is signed too: the
//! acquirer keeps disputes by it, and no relay can file the user's statement twice
//! under two names.

use super::encoding::AccountKey;
use super::statement::{Reader, Signed, Statement, StatementError, Writer};
use crate::messages::{Dispute, DisputeId, MerchantId, PaymentId, Timestamp};

/// The domain tag that opens every encoded dispute statement.
pub const DISPUTE_TAG: &[u8] = b"telepay-dispute/1";

/// Most characters in a dispute's reason.
pub const MAX_DISPUTE_REASON_CHARS: usize = 500;

/// What errors call this kind of statement.
const KIND: &str = "dispute statement";

/// What the payer device signs to dispute a payment: "the holder of `account` disputes
/// payment `payment` to `merchant`, because `reason`; dispute `dispute`, made at `time`".
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DisputeStatement {
    /// The payer device's name for the dispute.
    pub dispute: DisputeId,
    /// The account disputing: the key that signs.
    pub account: AccountKey,
    /// The merchant the payment went to.
    pub merchant: MerchantId,
    /// The payment disputed.
    pub payment: PaymentId,
    /// Why, in the user's words.
    pub reason: String,
    /// When the payer device signed (its clock).
    pub time: Timestamp,
}

impl DisputeStatement {
    /// The canonical encoding the key signs (the module's table).
    ///
    /// # Errors
    /// [`StatementError::FieldTooLong`] for a text of more than 65,535 bytes.
    pub fn encode(&self) -> Result<Vec<u8>, StatementError> {
        let mut writer = Writer::new(KIND, &self.dispute.0, DISPUTE_TAG);
        writer.key(&self.account);
        writer.text("dispute", &self.dispute.0)?;
        writer.text("merchant", &self.merchant.0)?;
        writer.text("payment", &self.payment.0)?;
        writer.text("reason", &self.reason)?;
        writer.time(self.time);
        Ok(writer.finish())
    }

    /// The statement `bytes` encode, the inverse of [`DisputeStatement::encode`];
    /// anything else is an error naming the field and its offset. The reason's length
    /// in characters is a rule of disputes ([`check_reason`]), not of the encoding.
    ///
    /// # Errors
    /// [`StatementError::Truncated`], [`StatementError::Malformed`] or
    /// [`StatementError::TrailingBytes`].
    pub fn decode(bytes: &[u8]) -> Result<DisputeStatement, StatementError> {
        let mut reader = Reader::open(KIND, bytes, DISPUTE_TAG, "\"telepay-dispute/1\"")?;
        let account = reader.key()?;
        let dispute = DisputeId::from(reader.text("dispute")?);
        let merchant = MerchantId::from(reader.text("merchant")?);
        let payment = PaymentId::from(reader.text("payment")?);
        let reason = reader.text("reason")?;
        let time = reader.time()?;
        reader.finish()?;
        Ok(DisputeStatement {
            dispute,
            account,
            merchant,
            payment,
            reason,
            time,
        })
    }
}

/// A dispute statement with its signature by the account's key ([`Signed`]).
pub type SignedDispute = Signed<DisputeStatement>;

impl Statement for DisputeStatement {
    const KIND: &'static str = KIND;

    fn encode(&self) -> Result<Vec<u8>, StatementError> {
        DisputeStatement::encode(self)
    }

    fn decode(bytes: &[u8]) -> Result<Self, StatementError> {
        DisputeStatement::decode(bytes)
    }

    fn account(&self) -> &AccountKey {
        &self.account
    }

    fn subject(&self) -> &str {
        &self.dispute.0
    }
}

/// Why a [`Dispute`] is refused before its signature or its payment is looked at: its
/// reason breaks the rules, or the message says something else than the statement the
/// user signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DisputeFault {
    /// The reason is empty (or only spaces).
    #[error("dispute {dispute}: the reason is empty")]
    EmptyReason {
        /// The dispute.
        dispute: DisputeId,
    },
    /// The reason is longer than [`MAX_DISPUTE_REASON_CHARS`].
    #[error("dispute {dispute}: the reason is {chars} characters, at most {max}")]
    ReasonTooLong {
        /// The dispute.
        dispute: DisputeId,
        /// Its length in characters.
        chars: usize,
        /// The most allowed.
        max: usize,
    },
    /// The message's dispute identifier is not the one signed.
    #[error("dispute {carried}: the signed statement is for dispute {signed}")]
    OtherDispute {
        /// The message's.
        carried: DisputeId,
        /// The statement's.
        signed: DisputeId,
    },
    /// The message's payment is not the one signed.
    #[error(
        "dispute {dispute}: the message names payment {carried}, the signed statement {signed}"
    )]
    OtherPayment {
        /// The dispute.
        dispute: DisputeId,
        /// The message's.
        carried: PaymentId,
        /// The statement's.
        signed: PaymentId,
    },
    /// The message's reason is not the one signed.
    #[error("dispute {dispute}: the message's reason is not the signed one")]
    OtherReason {
        /// The dispute.
        dispute: DisputeId,
    },
    /// The statement disputes a payment to another merchant than the one taking it.
    #[error("dispute {dispute}: the signed statement names merchant {signed}, not {expected}")]
    OtherMerchant {
        /// The dispute.
        dispute: DisputeId,
        /// The merchant taking the dispute (the front-end's).
        expected: MerchantId,
        /// The statement's.
        signed: MerchantId,
    },
}

/// The rules of a dispute's reason: not empty, at most [`MAX_DISPUTE_REASON_CHARS`]
/// characters.
///
/// # Errors
/// [`DisputeFault::EmptyReason`] or [`DisputeFault::ReasonTooLong`].
pub fn check_reason(dispute: &DisputeId, reason: &str) -> Result<(), DisputeFault> {
    if reason.trim().is_empty() {
        return Err(DisputeFault::EmptyReason {
            dispute: dispute.clone(),
        });
    }
    let chars = reason.chars().count();
    if chars > MAX_DISPUTE_REASON_CHARS {
        return Err(DisputeFault::ReasonTooLong {
            dispute: dispute.clone(),
            chars,
            max: MAX_DISPUTE_REASON_CHARS,
        });
    }
    Ok(())
}

/// What the front-end and the acquirer check of a [`Dispute`] before anything else:
/// the reason's rules, then that the message carries the statement's dispute,
/// payment and reason, and that the statement names `merchant` (the front-end's).
/// The signature is the acquirer's to check, with the payment it covers.
///
/// # Errors
/// The first [`DisputeFault`] that applies.
pub fn check_dispute(dispute: &Dispute, merchant: &MerchantId) -> Result<(), DisputeFault> {
    let statement = &dispute.signed.statement;
    check_reason(&dispute.dispute, &dispute.reason)?;
    if statement.dispute != dispute.dispute {
        return Err(DisputeFault::OtherDispute {
            carried: dispute.dispute.clone(),
            signed: statement.dispute.clone(),
        });
    }
    if statement.payment != dispute.payment {
        return Err(DisputeFault::OtherPayment {
            dispute: dispute.dispute.clone(),
            carried: dispute.payment.clone(),
            signed: statement.payment.clone(),
        });
    }
    if statement.reason != dispute.reason {
        return Err(DisputeFault::OtherReason {
            dispute: dispute.dispute.clone(),
        });
    }
    if statement.merchant != *merchant {
        return Err(DisputeFault::OtherMerchant {
            dispute: dispute.dispute.clone(),
            expected: merchant.clone(),
            signed: statement.merchant.clone(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::{Means, TerminalId};
    use p256::ecdsa::SigningKey;
    use p256::ecdsa::signature::Signer;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_slice(&[seed; 32]).unwrap()
    }

    fn statement(signer: &SigningKey) -> DisputeStatement {
        DisputeStatement {
            dispute: DisputeId::from("D"),
            account: AccountKey::new(signer.verifying_key()),
            merchant: MerchantId::from("FE"),
            payment: PaymentId::from("P1"),
            reason: "no".into(),
            time: Timestamp(0x0102),
        }
    }

    #[test]
    fn the_encoding_byte_by_byte() {
        let s = statement(&key(1));
        let mut expected = Vec::new();
        expected.extend_from_slice(b"\x00\x11telepay-dispute/1");
        expected.extend_from_slice(b"\x00\x21");
        expected.extend_from_slice(&s.account.to_sec1());
        expected.extend_from_slice(b"\x00\x01D\x00\x02FE\x00\x02P1\x00\x02no");
        expected.extend_from_slice(&hex::decode("0000000000000102").unwrap());
        assert_eq!(s.encode().unwrap(), expected);
        assert_eq!(expected.len(), 70 + 1 + 2 + 2 + 2);
        assert_eq!(DisputeStatement::decode(&expected), Ok(s));
    }

    #[test]
    fn decoding_names_the_field_and_the_offset() {
        let good = statement(&key(1)).encode().unwrap();
        let mut identity_tag = b"\x00\x12telepay-identity/1".to_vec();
        identity_tag.extend_from_slice(&good[19..]);
        let mut long_length = good.clone();
        // The reason's length (at offset 65) says 11 bytes; 10 are left.
        long_length[66] = 0x0B;
        let cases: [(&str, &[u8], StatementError); 3] = [
            (
                "an identity's tag",
                &identity_tag,
                StatementError::Malformed {
                    statement: KIND,
                    field: "tag",
                    offset: 0,
                    expected: "\"telepay-dispute/1\"",
                },
            ),
            (
                "a reason longer than what is left",
                &long_length,
                StatementError::Truncated {
                    statement: KIND,
                    field: "reason",
                    offset: 67,
                    needed: 11,
                    available: 10,
                },
            ),
            (
                "time cut short",
                &good[..good.len() - 1],
                StatementError::Truncated {
                    statement: KIND,
                    field: "time",
                    offset: 69,
                    needed: 8,
                    available: 7,
                },
            ),
        ];
        for (why, bytes, expected) in cases {
            assert_eq!(DisputeStatement::decode(bytes), Err(expected), "{why}");
        }
    }

    fn message(signer: &SigningKey, edit: impl FnOnce(&mut Dispute)) -> Dispute {
        let signed = SignedDispute::sign(statement(signer), |m| signer.sign(m)).unwrap();
        let mut dispute = Dispute {
            dispute: DisputeId::from("D"),
            terminal: TerminalId::from("t"),
            means: Means::VirtualWallet,
            payment: PaymentId::from("P1"),
            reason: "no".into(),
            signed,
        };
        edit(&mut dispute);
        dispute
    }

    #[test]
    fn a_dispute_says_what_its_statement_says() {
        let signer = key(1);
        let merchant = MerchantId::from("FE");
        assert_eq!(check_dispute(&message(&signer, |_| {}), &merchant), Ok(()));
        let long = "é".repeat(MAX_DISPUTE_REASON_CHARS + 1);
        let at_most = "é".repeat(MAX_DISPUTE_REASON_CHARS);
        assert_eq!(check_reason(&"D".into(), &at_most), Ok(()));
        let cases: Vec<(Dispute, MerchantId, DisputeFault)> = vec![
            (
                message(&signer, |d| d.reason = " ".into()),
                merchant.clone(),
                DisputeFault::EmptyReason {
                    dispute: "D".into(),
                },
            ),
            (
                message(&signer, |d| d.reason = long.clone()),
                merchant.clone(),
                DisputeFault::ReasonTooLong {
                    dispute: "D".into(),
                    chars: 501,
                    max: 500,
                },
            ),
            (
                message(&signer, |d| d.dispute = "D2".into()),
                merchant.clone(),
                DisputeFault::OtherDispute {
                    carried: "D2".into(),
                    signed: "D".into(),
                },
            ),
            (
                message(&signer, |d| d.payment = "P2".into()),
                merchant.clone(),
                DisputeFault::OtherPayment {
                    dispute: "D".into(),
                    carried: "P2".into(),
                    signed: "P1".into(),
                },
            ),
            (
                message(&signer, |d| d.reason = "yes".into()),
                merchant.clone(),
                DisputeFault::OtherReason {
                    dispute: "D".into(),
                },
            ),
            (
                message(&signer, |_| {}),
                MerchantId::from("other"),
                DisputeFault::OtherMerchant {
                    dispute: "D".into(),
                    expected: "other".into(),
                    signed: "FE".into(),
                },
            ),
        ];
        for (dispute, merchant, expected) in cases {
            assert_eq!(
                check_dispute(&dispute, &merchant),
                Err(expected.clone()),
                "{expected}"
            );
        }
    }
}
