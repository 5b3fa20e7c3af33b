//! Identification / authentication of the user by the wallet's key (FR2750275 claims 8,
//! 9 and 12: the key-store key "serves identification / authentication"): the statement
//! the payer device signs to answer the front-end's [`IdentificationRequest`], its
//! canonical encoding, and the front-end's check of it ([`check_identity`]).
//!
//! The front-end verifies the proof itself, with no acquirer round trip: the statement
//! carries the account's public key, and what the front-end needs to know is that the
//! holder of that key answered *this* request, now — the signature, the merchant, the
//! identification, the front-end's fresh nonce, the purpose shown to the user and a
//! time within [`IDENTITY_TIME_TOLERANCE_MS`] of the front-end's clock. The customer is
//! then a pseudonym of the key ([`customer_id`], `K-` and 16 hex digits), stable for
//! one key and never the key itself.
//!
//! What it proves, and no more: that the user holds the key behind the pseudonym, as
//! the wallet's accounts are anonymous (claim 10). It does not say who the user is in
//! the world, nor that a wallet account is open for the key.
//!
//! # Encoding (`telepay-identity/1`)
//!
//! As every wallet statement ([`super::statement`]): integers big-endian, variable
//! fields after their u16 length.
//!
//! | offset | size | field | content |
//! |---|---|---|---|
//! | 0 | 2 | tag length | `00 12` (18) |
//! | 2 | 18 | domain tag | ASCII `telepay-identity/1` |
//! | 20 | 2 | key length | `00 21` (33) |
//! | 22 | 33 | account | SEC1 compressed point (SEC 1 v2 §2.3.3) |
//! | 55 | 2 + m | merchant | u16 length, UTF-8 |
//! | 57+m | 2 + i | identification | u16 length, UTF-8 |
//! | 59+m+i | 2 + p | purpose | u16 length, UTF-8 |
//! | 61+m+i+p | 16 | nonce | the front-end's nonce, as drawn |
//! | 77+m+i+p | 8 | time | i64, ms since 1970-01-01 UTC (the payer device's clock) |
//!
//! Total: 85 + m + i + p bytes. The tag differs from a payment's
//! (`telepay-wallet-payment/1`) and a dispute's (`telepay-dispute/1`) from its length
//! on, so a signed identity is never a signed payment: it moves no money.

use sha2::Digest;

use super::encoding::AccountKey;
use super::statement::{Reader, Signed, Statement, StatementError, Writer};
use crate::messages::{
    CustomerId, IdentificationId, IdentificationRequest, MerchantId, RefusalReason, Timestamp,
};

/// The domain tag that opens every encoded identity statement.
pub const IDENTITY_TAG: &[u8] = b"telepay-identity/1";

/// How far the statement's time may be from the front-end's clock, either way: five
/// minutes. The nonce already makes a proof good for one request only; the window
/// bounds how long a proof held back by a relay stays good for it.
pub const IDENTITY_TIME_TOLERANCE_MS: i64 = 5 * 60 * 1000;

/// The authorisation code of a positive identification the front-end verified itself
/// (the identification result's six characters; no acquirer gave one).
pub const KEY_VERIFIED_CODE: &str = "KEY-OK";

/// What errors call this kind of statement.
const KIND: &str = "identity statement";

/// What the payer device signs to identify its user with the wallet key: "the holder of
/// `account` answers identification `identification` of `merchant`, for `purpose`, with
/// the nonce `nonce`, at `time`".
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdentityStatement {
    /// The account key: whom the statement identifies.
    pub account: AccountKey,
    /// The merchant asking (the front-end), as the request names it.
    pub merchant: MerchantId,
    /// The identification answered.
    pub identification: IdentificationId,
    /// What the identification is for, as shown to the user.
    pub purpose: String,
    /// The front-end's nonce for the request.
    pub nonce: [u8; 16],
    /// When the payer device signed (its clock).
    pub time: Timestamp,
}

impl IdentityStatement {
    /// The statement that answers `request` for `account` at `now`.
    pub fn answering(
        account: AccountKey,
        request: &IdentificationRequest,
        now: Timestamp,
    ) -> IdentityStatement {
        IdentityStatement {
            account,
            merchant: request.merchant.clone(),
            identification: request.identification.clone(),
            purpose: request.purpose.clone(),
            nonce: request.nonce,
            time: now,
        }
    }

    /// The canonical encoding the key signs (the module's table).
    ///
    /// # Errors
    /// [`StatementError::FieldTooLong`] for a text of more than 65,535 bytes.
    pub fn encode(&self) -> Result<Vec<u8>, StatementError> {
        let mut writer = Writer::new(KIND, &self.identification.0, IDENTITY_TAG);
        writer.key(&self.account);
        writer.text("merchant", &self.merchant.0)?;
        writer.text("identification", &self.identification.0)?;
        writer.text("purpose", &self.purpose)?;
        writer.fixed(&self.nonce);
        writer.time(self.time);
        Ok(writer.finish())
    }

    /// The statement `bytes` encode, the inverse of [`IdentityStatement::encode`];
    /// anything else is an error naming the field and its offset.
    ///
    /// # Errors
    /// [`StatementError::Truncated`], [`StatementError::Malformed`] (another tag, a key
    /// that is not a compressed point of P-256, text that is not UTF-8) or
    /// [`StatementError::TrailingBytes`].
    pub fn decode(bytes: &[u8]) -> Result<IdentityStatement, StatementError> {
        let mut reader = Reader::open(KIND, bytes, IDENTITY_TAG, "\"telepay-identity/1\"")?;
        let account = reader.key()?;
        let merchant = MerchantId::from(reader.text("merchant")?);
        let identification = IdentificationId::from(reader.text("identification")?);
        let purpose = reader.text("purpose")?;
        let nonce = reader.array("nonce")?;
        let time = reader.time()?;
        reader.finish()?;
        Ok(IdentityStatement {
            account,
            merchant,
            identification,
            purpose,
            nonce,
            time,
        })
    }
}

/// An identity statement with its signature by the account's key ([`Signed`]).
pub type SignedIdentity = Signed<IdentityStatement>;

impl Statement for IdentityStatement {
    const KIND: &'static str = KIND;

    fn encode(&self) -> Result<Vec<u8>, StatementError> {
        IdentityStatement::encode(self)
    }

    fn decode(bytes: &[u8]) -> Result<Self, StatementError> {
        IdentityStatement::decode(bytes)
    }

    fn account(&self) -> &AccountKey {
        &self.account
    }

    fn subject(&self) -> &str {
        &self.identification.0
    }
}

/// The customer a key identifies: `K-` and the first 8 bytes, in upper-case hex, of
/// SHA-256 over the key in SEC1 compressed form. The same key is the same customer
/// every time; the service server learns a pseudonym, never the key, and a key's
/// pseudonym never looks like a card's (`C-`, [`crate::acquirer::card::customer_id`]).
pub fn customer_id(account: &AccountKey) -> CustomerId {
    let digest = sha2::Sha256::digest(account.to_sec1());
    CustomerId::from(format!(
        "K-{}",
        hex::encode_upper(digest.get(..8).unwrap_or_default())
    ))
}

/// Why the front-end refused a proof of identity by key. The checks run in the order
/// of the variants; the first that fails is the refusal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityRefusal {
    /// The signature does not verify with the statement's key.
    #[error("the proof's signature is refused: {0}")]
    Signature(StatementError),
    /// The statement names another merchant.
    #[error("the proof is for merchant {signed}, not {expected}")]
    OtherMerchant {
        /// The front-end's merchant.
        expected: MerchantId,
        /// The one signed.
        signed: MerchantId,
    },
    /// The statement answers another identification.
    #[error("the proof answers identification {signed}, not {expected}")]
    OtherIdentification {
        /// The request's.
        expected: IdentificationId,
        /// The one signed.
        signed: IdentificationId,
    },
    /// The statement carries another nonce than the request's: made for another
    /// request, or replayed.
    #[error("the proof carries nonce {signed}, the request's is {expected}")]
    OtherNonce {
        /// The request's nonce, in hex.
        expected: String,
        /// The one signed, in hex.
        signed: String,
    },
    /// The statement names another purpose than the one shown to the user.
    #[error("the proof is for {signed:?}, the request for {expected:?}")]
    OtherPurpose {
        /// The request's.
        expected: String,
        /// The one signed.
        signed: String,
    },
    /// The statement's time is more than the tolerance away from the front-end's clock.
    #[error(
        "the proof was signed at {signed}, more than {tolerance_ms} ms from the front-end's {now}"
    )]
    OutOfTime {
        /// The time signed.
        signed: Timestamp,
        /// The front-end's clock.
        now: Timestamp,
        /// The tolerance either way.
        tolerance_ms: i64,
    },
}

impl IdentityRefusal {
    /// The reason the identification result gives: a bad signature is
    /// [`RefusalReason::SignatureInvalid`], any other field
    /// [`RefusalReason::MismatchWithRequest`].
    pub fn reason(&self) -> RefusalReason {
        match self {
            IdentityRefusal::Signature(_) => RefusalReason::SignatureInvalid,
            IdentityRefusal::OtherMerchant { .. }
            | IdentityRefusal::OtherIdentification { .. }
            | IdentityRefusal::OtherNonce { .. }
            | IdentityRefusal::OtherPurpose { .. }
            | IdentityRefusal::OutOfTime { .. } => RefusalReason::MismatchWithRequest,
        }
    }
}

/// The front-end's check of a proof of identity by key against the `request` it sent,
/// as `merchant`, at `now`: the signature first (nothing is learnt from a forged proof),
/// then the merchant, the identification, the nonce, the purpose and the time within
/// [`IDENTITY_TIME_TOLERANCE_MS`]. The customer it identifies, or the first refusal.
///
/// # Errors
/// The first [`IdentityRefusal`] that applies.
pub fn check_identity(
    signed: &SignedIdentity,
    request: &IdentificationRequest,
    merchant: &MerchantId,
    now: Timestamp,
) -> Result<CustomerId, IdentityRefusal> {
    signed.verify().map_err(IdentityRefusal::Signature)?;
    let statement = &signed.statement;
    if statement.merchant != *merchant || request.merchant != *merchant {
        return Err(IdentityRefusal::OtherMerchant {
            expected: merchant.clone(),
            signed: statement.merchant.clone(),
        });
    }
    if statement.identification != request.identification {
        return Err(IdentityRefusal::OtherIdentification {
            expected: request.identification.clone(),
            signed: statement.identification.clone(),
        });
    }
    if statement.nonce != request.nonce {
        return Err(IdentityRefusal::OtherNonce {
            expected: hex::encode_upper(request.nonce),
            signed: hex::encode_upper(statement.nonce),
        });
    }
    if statement.purpose != request.purpose {
        return Err(IdentityRefusal::OtherPurpose {
            expected: request.purpose.clone(),
            signed: statement.purpose.clone(),
        });
    }
    let distance = statement.time.0.abs_diff(now.0);
    if distance > IDENTITY_TIME_TOLERANCE_MS.unsigned_abs() {
        return Err(IdentityRefusal::OutOfTime {
            signed: statement.time,
            now,
            tolerance_ms: IDENTITY_TIME_TOLERANCE_MS,
        });
    }
    Ok(customer_id(&statement.account))
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::SigningKey;
    use p256::ecdsa::signature::Signer;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_slice(&[seed; 32]).unwrap()
    }

    fn statement(signer: &SigningKey) -> IdentityStatement {
        IdentityStatement {
            account: AccountKey::new(signer.verifying_key()),
            merchant: MerchantId::from("FE"),
            identification: IdentificationId::from("I"),
            purpose: "P1".into(),
            nonce: [0xA5; 16],
            time: Timestamp(-1),
        }
    }

    #[test]
    fn the_encoding_byte_by_byte() {
        let s = statement(&key(1));
        let mut expected = Vec::new();
        expected.extend_from_slice(b"\x00\x12telepay-identity/1");
        expected.extend_from_slice(b"\x00\x21");
        expected.extend_from_slice(&s.account.to_sec1());
        expected.extend_from_slice(b"\x00\x02FE\x00\x01I\x00\x02P1");
        expected.extend_from_slice(&[0xA5; 16]);
        expected.extend_from_slice(&hex::decode("FFFFFFFFFFFFFFFF").unwrap());
        assert_eq!(s.encode().unwrap(), expected);
        assert_eq!(expected.len(), 85 + 2 + 1 + 2);
    }

    #[test]
    fn decoding_names_the_field_and_the_offset() {
        let good = statement(&key(1)).encode().unwrap();
        let mut payment_tag = b"\x00\x18telepay-wallet-payment/1".to_vec();
        payment_tag.extend_from_slice(&good[20..]);
        let mut bad_prefix = good.clone();
        bad_prefix[22] = 0x04;
        let mut bad_utf8 = good.clone();
        bad_utf8[57] = 0xFF;
        let mut trailing = good.clone();
        trailing.push(0);
        let cases: [(&str, &[u8], StatementError); 7] = [
            (
                "empty",
                &[],
                StatementError::Truncated {
                    statement: KIND,
                    field: "tag",
                    offset: 0,
                    needed: 2,
                    available: 0,
                },
            ),
            (
                "a payment's tag",
                &payment_tag,
                StatementError::Malformed {
                    statement: KIND,
                    field: "tag",
                    offset: 0,
                    expected: "\"telepay-identity/1\"",
                },
            ),
            (
                "key cut short",
                &good[..30],
                StatementError::Truncated {
                    statement: KIND,
                    field: "account",
                    offset: 22,
                    needed: 33,
                    available: 8,
                },
            ),
            (
                "uncompressed tag on 33 bytes",
                &bad_prefix,
                StatementError::Malformed {
                    statement: KIND,
                    field: "account",
                    offset: 20,
                    expected: "a 33-byte SEC1 compressed point",
                },
            ),
            (
                "merchant not UTF-8",
                &bad_utf8,
                StatementError::Malformed {
                    statement: KIND,
                    field: "merchant",
                    offset: 55,
                    expected: "UTF-8 text",
                },
            ),
            (
                "nonce cut short",
                &good[..70],
                StatementError::Truncated {
                    statement: KIND,
                    field: "nonce",
                    offset: 66,
                    needed: 16,
                    available: 4,
                },
            ),
            (
                "a byte too many",
                &trailing,
                StatementError::TrailingBytes {
                    statement: KIND,
                    offset: good.len(),
                    extra: 1,
                },
            ),
        ];
        for (why, bytes, expected) in cases {
            assert_eq!(IdentityStatement::decode(bytes), Err(expected), "{why}");
        }
    }

    #[test]
    fn a_signature_verifies_only_over_its_statement_and_with_its_key() {
        let signer = key(1);
        let signed = SignedIdentity::sign(statement(&signer), |m| signer.sign(m)).unwrap();
        assert_eq!(signed.verify(), Ok(()));
        let fingerprint = signed.statement.account.fingerprint();
        let mut other_nonce = signed.clone();
        other_nonce.statement.nonce[0] ^= 1;
        let mut other_key = signed.clone();
        other_key.statement.account = AccountKey::new(key(2).verifying_key());
        let mut zero = signed.clone();
        zero.signature = [0; 64];
        let cases = [
            (
                other_nonce,
                StatementError::BadSignature {
                    statement: KIND,
                    subject: "I".into(),
                    account: fingerprint,
                },
            ),
            (
                other_key,
                StatementError::BadSignature {
                    statement: KIND,
                    subject: "I".into(),
                    account: AccountKey::new(key(2).verifying_key()).fingerprint(),
                },
            ),
            (
                zero,
                StatementError::SignatureEncoding {
                    statement: KIND,
                    subject: "I".into(),
                },
            ),
        ];
        for (signed, expected) in cases {
            assert_eq!(signed.verify(), Err(expected.clone()), "{expected}");
        }
    }

    #[test]
    fn the_customer_is_a_pseudonym_of_the_key() {
        let account = AccountKey::new(key(1).verifying_key());
        let digest = sha2::Sha256::digest(account.to_sec1());
        let expected = format!("K-{}", hex::encode_upper(&digest[..8]));
        assert_eq!(customer_id(&account).0, expected);
        assert_eq!(expected.len(), 18);
        assert_ne!(
            customer_id(&AccountKey::new(key(2).verifying_key())),
            customer_id(&account)
        );
    }
}
