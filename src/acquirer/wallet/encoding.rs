//! The Virtual Wallet's signed payment: the values ([`AccountKey`], [`WalletPayment`],
//! [`SignedWalletPayment`]), the canonical byte encoding the user's key signs, its
//! decoding, and the signature check. `docs/wallet.md` draws the encoding byte by byte.

use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};

use crate::messages::{Currency, MerchantId, Money, PaymentId, ServiceId, Timestamp};

/// The domain tag that opens every encoded payment: a signature over these bytes can
/// never be taken for a signature over another telepay message (a key-store challenge,
/// a dispute), whose encodings open with their own tags.
pub const PAYMENT_TAG: &[u8] = b"telepay-wallet-payment/1";

/// Bytes of a SEC1 compressed P-256 point (SEC 1 v2 §2.3.3): `02`/`03` and X.
pub const ACCOUNT_KEY_LEN: usize = 33;

/// Bytes of a signature: `r ‖ s`, 32 bytes each, big-endian.
pub const SIGNATURE_LEN: usize = 64;

/// Most bytes in an identifier (merchant, service, payment): what a u16 length holds.
pub const MAX_ID_BYTES: usize = u16::MAX as usize;

/// Why a payment could not be encoded, decoded or verified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WalletError {
    /// The bytes are not a P-256 public key in SEC1 form.
    #[error(
        "account key: {length} bytes starting {prefix:02X?} are not a P-256 point in SEC1 form"
    )]
    InvalidAccountKey {
        /// How many bytes were given.
        length: usize,
        /// Their first byte, when there is one.
        prefix: Option<u8>,
    },
    /// An identifier is longer than its u16 length can say.
    #[error("payment {payment}: field `{field}` is {length} bytes, at most {MAX_ID_BYTES}")]
    FieldTooLong {
        /// The payment (its identifier cut to 64 characters).
        payment: String,
        /// The field.
        field: &'static str,
        /// Its length in bytes.
        length: usize,
    },
    /// The encoding ends before a field does.
    #[error(
        "encoded payment: field `{field}` at offset {offset}: needs {needed} bytes, {available} left"
    )]
    Truncated {
        /// The field being read.
        field: &'static str,
        /// Where it starts.
        offset: usize,
        /// How many bytes it needs.
        needed: usize,
        /// How many are left.
        available: usize,
    },
    /// A field holds something other than what it must.
    #[error("encoded payment: field `{field}` at offset {offset}: expected {expected}")]
    Malformed {
        /// The field.
        field: &'static str,
        /// Where it starts.
        offset: usize,
        /// What it must hold.
        expected: &'static str,
    },
    /// Bytes follow the last field.
    #[error("encoded payment: {extra} bytes after the last field, at offset {offset}")]
    TrailingBytes {
        /// Where they start.
        offset: usize,
        /// How many.
        extra: usize,
    },
    /// The 64 bytes are not an ECDSA signature: `r` or `s` is zero or not below the
    /// group order.
    #[error("payment {payment}: the signature's r or s is zero or not below the P-256 order")]
    SignatureEncoding {
        /// The payment.
        payment: PaymentId,
    },
    /// The signature does not verify with the account's key over the payment's
    /// encoding.
    #[error("payment {payment}: the signature does not verify with account {account}")]
    BadSignature {
        /// The payment.
        payment: PaymentId,
        /// The account's fingerprint.
        account: String,
    },
}

/// An anonymous wallet account: a P-256 public key, kept in SEC1 compressed form (the
/// form it is encoded, stored and compared in) with the key parsed once.
#[derive(Clone)]
pub struct AccountKey {
    compressed: [u8; ACCOUNT_KEY_LEN],
    key: VerifyingKey,
}

impl AccountKey {
    /// The account of `key`.
    pub fn new(key: &VerifyingKey) -> AccountKey {
        let point = key.to_sec1_point(true);
        let mut compressed = [0u8; ACCOUNT_KEY_LEN];
        // A compressed P-256 point is always 33 bytes; `zip` stops at the shorter side
        // rather than panicking, and the parse below would refuse anything else.
        for (to, from) in compressed.iter_mut().zip(point.as_bytes()) {
            *to = *from;
        }
        AccountKey {
            compressed,
            key: *key,
        }
    }

    /// The account whose key is `bytes`: SEC1 compressed (33 bytes) or uncompressed
    /// (65 bytes), a point of the curve other than the identity.
    ///
    /// Only those two forms (SEC 1 v2 §2.3.3–2.3.4): the `sec1` crate also reads a
    /// "compact" x-only form tagged `05`, which names a point the holder of the key
    /// did not necessarily present, and the identity `00`.
    pub fn from_sec1(bytes: &[u8]) -> Result<AccountKey, WalletError> {
        let refused = || WalletError::InvalidAccountKey {
            length: bytes.len(),
            prefix: bytes.first().copied(),
        };
        match (bytes.first(), bytes.len()) {
            (Some(0x02 | 0x03), ACCOUNT_KEY_LEN) | (Some(0x04), 65) => {}
            _ => return Err(refused()),
        }
        VerifyingKey::from_sec1_bytes(bytes)
            .map(|key| AccountKey::new(&key))
            .map_err(|_| refused())
    }

    /// The key in SEC1 compressed form.
    pub fn to_sec1(&self) -> [u8; ACCOUNT_KEY_LEN] {
        self.compressed
    }

    /// The key that verifies the account's payments.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.key
    }

    /// The key store's fingerprint of the key (`3f2a:91bc:0d4e:77a1`), to name the
    /// account in messages and logs.
    pub fn fingerprint(&self) -> String {
        crate::terminal::keystore::fingerprint(&self.key)
    }
}

impl PartialEq for AccountKey {
    fn eq(&self, other: &AccountKey) -> bool {
        self.compressed == other.compressed
    }
}

impl Eq for AccountKey {}

impl std::hash::Hash for AccountKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.compressed.hash(state);
    }
}

impl std::fmt::Debug for AccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AccountKey({})", hex::encode_upper(self.compressed))
    }
}

impl std::fmt::Display for AccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(&self.fingerprint())
    }
}

/// A payment the user's key signs: debit `amount` from `account` for `service` bought
/// from `merchant`, the account's `sequence`-th payment, made at `time`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WalletPayment {
    /// The account debited.
    pub account: AccountKey,
    /// The merchant paid (the front-end selling).
    pub merchant: MerchantId,
    /// The service bought.
    pub service: ServiceId,
    /// The front-end's name for the payment request.
    pub payment: PaymentId,
    /// How much.
    pub amount: Money,
    /// The account's counter: each accepted payment must carry a greater one.
    pub sequence: u64,
    /// When the payer device signed it (its clock).
    pub time: Timestamp,
}

/// Appends `text` with its u16 big-endian length.
fn put_text(
    out: &mut Vec<u8>,
    payment: &PaymentId,
    field: &'static str,
    text: &str,
) -> Result<(), WalletError> {
    let length = u16::try_from(text.len()).map_err(|_| WalletError::FieldTooLong {
        payment: payment.0.chars().take(64).collect(),
        field,
        length: text.len(),
    })?;
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(text.as_bytes());
    Ok(())
}

impl WalletPayment {
    /// The canonical encoding the key signs (`docs/wallet.md`): every variable field
    /// after its u16 big-endian length, every number big-endian at a fixed width, so
    /// that the bytes read back as exactly one payment ([`WalletPayment::decode`]).
    ///
    /// ```text
    /// u16 len ‖ "telepay-wallet-payment/1"
    /// u16 len (33) ‖ account, SEC1 compressed
    /// u16 len ‖ merchant   u16 len ‖ service   u16 len ‖ payment   (UTF-8)
    /// u64 amount (minor units) ‖ u16 currency numeric ‖ u8 exponent
    /// u64 sequence ‖ i64 time (ms since 1970 UTC)
    /// ```
    pub fn encode(&self) -> Result<Vec<u8>, WalletError> {
        let texts = self
            .merchant
            .0
            .len()
            .saturating_add(self.service.0.len())
            .saturating_add(self.payment.0.len());
        // Tag, key and the six length prefixes; then 8 + 2 + 1 + 8 + 8 fixed bytes.
        let fixed = 2 + PAYMENT_TAG.len() + 2 + ACCOUNT_KEY_LEN + 6 + 27;
        let mut out = Vec::with_capacity(fixed.saturating_add(texts));
        // The tag and the key have fixed lengths, encoded all the same so that every
        // variable-looking field is read one way.
        out.extend_from_slice(&(PAYMENT_TAG.len() as u16).to_be_bytes());
        out.extend_from_slice(PAYMENT_TAG);
        out.extend_from_slice(&(ACCOUNT_KEY_LEN as u16).to_be_bytes());
        out.extend_from_slice(&self.account.to_sec1());
        put_text(&mut out, &self.payment, "merchant", &self.merchant.0)?;
        put_text(&mut out, &self.payment, "service", &self.service.0)?;
        put_text(&mut out, &self.payment, "payment", &self.payment.0)?;
        out.extend_from_slice(&self.amount.minor.to_be_bytes());
        out.extend_from_slice(&self.amount.currency.numeric.to_be_bytes());
        out.push(self.amount.currency.exponent);
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&self.time.0.to_be_bytes());
        Ok(out)
    }

    /// The payment `bytes` encode, the inverse of [`WalletPayment::encode`]; anything
    /// else (another tag, a short field, a bad key, bytes left over) is an error naming
    /// the field and its offset.
    pub fn decode(bytes: &[u8]) -> Result<WalletPayment, WalletError> {
        let mut reader = Reader { bytes, offset: 0 };
        let tag_at = reader.offset;
        let tag = reader.prefixed("tag")?;
        if tag != PAYMENT_TAG {
            return Err(WalletError::Malformed {
                field: "tag",
                offset: tag_at,
                expected: "\"telepay-wallet-payment/1\"",
            });
        }
        let key_at = reader.offset;
        let key = reader.prefixed("account")?;
        if key.len() != ACCOUNT_KEY_LEN || !matches!(key.first(), Some(0x02 | 0x03)) {
            return Err(WalletError::Malformed {
                field: "account",
                offset: key_at,
                expected: "a 33-byte SEC1 compressed point",
            });
        }
        let account = AccountKey::from_sec1(key).map_err(|_| WalletError::Malformed {
            field: "account",
            offset: key_at,
            expected: "a point of P-256",
        })?;
        let merchant = MerchantId::from(reader.text("merchant")?);
        let service = ServiceId::from(reader.text("service")?);
        let payment = PaymentId::from(reader.text("payment")?);
        let minor = u64::from_be_bytes(reader.array("amount")?);
        let numeric = u16::from_be_bytes(reader.array("currency")?);
        let [exponent] = reader.array("exponent")?;
        let sequence = u64::from_be_bytes(reader.array("sequence")?);
        let time = Timestamp(i64::from_be_bytes(reader.array("time")?));
        if reader.offset != bytes.len() {
            return Err(WalletError::TrailingBytes {
                offset: reader.offset,
                extra: bytes.len().saturating_sub(reader.offset),
            });
        }
        Ok(WalletPayment {
            account,
            merchant,
            service,
            payment,
            amount: Money::new(minor, Currency { numeric, exponent }),
            sequence,
            time,
        })
    }
}

/// Reads an encoding front to back, naming each field it fails on.
struct Reader<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, field: &'static str, needed: usize) -> Result<&'a [u8], WalletError> {
        let rest = self.bytes.get(self.offset..).unwrap_or_default();
        let taken = rest.get(..needed).ok_or(WalletError::Truncated {
            field,
            offset: self.offset,
            needed,
            available: rest.len(),
        })?;
        self.offset = self.offset.saturating_add(needed);
        Ok(taken)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], WalletError> {
        let at = self.offset;
        let taken = self.take(field, N)?;
        <[u8; N]>::try_from(taken).map_err(|_| WalletError::Truncated {
            field,
            offset: at,
            needed: N,
            available: taken.len(),
        })
    }

    fn prefixed(&mut self, field: &'static str) -> Result<&'a [u8], WalletError> {
        let length = u16::from_be_bytes(self.array(field)?);
        self.take(field, usize::from(length))
    }

    fn text(&mut self, field: &'static str) -> Result<String, WalletError> {
        let at = self.offset;
        let bytes = self.prefixed(field)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| WalletError::Malformed {
            field,
            offset: at,
            expected: "UTF-8 text",
        })
    }
}

/// A payment with its signature by the account's key: ECDSA P-256 with SHA-256 (FIPS
/// 186-5 §6.4) over [`WalletPayment::encode`], `r ‖ s` big-endian.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SignedWalletPayment {
    /// The payment.
    pub payment: WalletPayment,
    /// `r ‖ s`.
    pub signature: [u8; SIGNATURE_LEN],
}

impl SignedWalletPayment {
    /// `payment` signed by `sign` (the key store's [`UnlockedKey::sign`], or a
    /// `SigningKey`'s `sign`).
    ///
    /// [`UnlockedKey::sign`]: crate::terminal::keystore::UnlockedKey::sign
    pub fn sign(
        payment: WalletPayment,
        sign: impl FnOnce(&[u8]) -> Signature,
    ) -> Result<SignedWalletPayment, WalletError> {
        let message = payment.encode()?;
        let signature = sign(&message).to_bytes().into();
        Ok(SignedWalletPayment { payment, signature })
    }

    /// Checks the signature with the account's key over the payment's encoding.
    ///
    /// Both forms of `s` are accepted, as `p256` does (it normalises nothing for
    /// P-256): ECDSA's malleability lets anyone turn `(r, s)` into `(r, n − s)`, but
    /// neither replay nor repudiation follows from it here. A payment is spent once
    /// by its account's sequence, never by its signature bytes, and a mauled signature
    /// still proves the key signed these very bytes. Refusing high `s` would refuse
    /// half the signatures the key store makes.
    pub fn verify(&self) -> Result<(), WalletError> {
        let message = self.payment.encode()?;
        let signature =
            Signature::from_slice(&self.signature).map_err(|_| WalletError::SignatureEncoding {
                payment: self.payment.payment.clone(),
            })?;
        self.payment
            .account
            .verifying_key()
            .verify(&message, &signature)
            .map_err(|_| WalletError::BadSignature {
                payment: self.payment.payment.clone(),
                account: self.payment.account.fingerprint(),
            })
    }
}

/// On the wire (messages, traces, JSON) a signed payment is its canonical encoding and
/// its signature, both in upper-case hex: `{"payment": "0018…", "signature": "…"}`.
/// What is read back is exactly what was signed, so a relay cannot alter a field
/// without breaking the signature; bytes that do not decode are refused by name.
impl serde::Serialize for SignedWalletPayment {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeStruct};
        let encoded = self.payment.encode().map_err(S::Error::custom)?;
        let mut state = serializer.serialize_struct("SignedWalletPayment", 2)?;
        state.serialize_field("payment", &hex::encode_upper(encoded))?;
        state.serialize_field("signature", &hex::encode_upper(self.signature))?;
        state.end()
    }
}

impl schemars::JsonSchema for SignedWalletPayment {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "SignedWalletPayment".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "object",
            "description": "A wallet payment: its canonical encoding (docs/wallet.md) and its ECDSA P-256 signature (r || s), both in hex.",
            "properties": {
                "payment": { "type": "string", "pattern": "^([0-9A-Fa-f]{2})+$" },
                "signature": { "type": "string", "pattern": "^[0-9A-Fa-f]{128}$" },
            },
            "required": ["payment", "signature"],
            "additionalProperties": false,
        })
    }
}

impl<'de> serde::Deserialize<'de> for SignedWalletPayment {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Wire {
            payment: String,
            signature: String,
        }
        let wire = Wire::deserialize(deserializer)?;
        let encoded = hex::decode(&wire.payment)
            .map_err(|error| D::Error::custom(format!("wallet payment: {error}")))?;
        let payment = WalletPayment::decode(&encoded).map_err(D::Error::custom)?;
        let signature = hex::decode(&wire.signature)
            .ok()
            .and_then(|bytes| <[u8; SIGNATURE_LEN]>::try_from(bytes).ok())
            .ok_or_else(|| {
                D::Error::custom(format!(
                    "wallet payment {}: the signature is not {SIGNATURE_LEN} bytes of hex",
                    payment.payment
                ))
            })?;
        Ok(SignedWalletPayment { payment, signature })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::SigningKey;
    use p256::ecdsa::signature::Signer;
    use proptest::prelude::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_slice(&[seed; 32]).unwrap()
    }

    fn payment(signer: &SigningKey) -> WalletPayment {
        WalletPayment {
            account: AccountKey::new(signer.verifying_key()),
            merchant: MerchantId::from("FE"),
            service: ServiceId::from("S1"),
            payment: PaymentId::from("P"),
            amount: Money::new(0x0102, Currency::EUR),
            sequence: 7,
            time: Timestamp(-1),
        }
    }

    #[test]
    fn the_encoding_byte_by_byte() {
        let signer = key(1);
        let p = payment(&signer);
        let mut expected = Vec::new();
        expected.extend_from_slice(b"\x00\x18telepay-wallet-payment/1");
        expected.extend_from_slice(b"\x00\x21");
        expected.extend_from_slice(&p.account.to_sec1());
        expected.extend_from_slice(b"\x00\x02FE\x00\x02S1\x00\x01P");
        expected.extend_from_slice(&hex::decode("0000000000000102").unwrap());
        expected.extend_from_slice(&hex::decode("03D2").unwrap());
        expected.extend_from_slice(&hex::decode("02").unwrap());
        expected.extend_from_slice(&hex::decode("0000000000000007").unwrap());
        expected.extend_from_slice(&hex::decode("FFFFFFFFFFFFFFFF").unwrap());
        assert_eq!(p.encode().unwrap(), expected);
        assert_eq!(expected.len(), 26 + 35 + 4 + 4 + 3 + 8 + 3 + 8 + 8);
    }

    #[test]
    fn decoding_names_the_field_and_the_offset() {
        let good = payment(&key(1)).encode().unwrap();
        let mut other_tag = good.clone();
        other_tag[2] = b'T';
        let mut bad_prefix = good.clone();
        bad_prefix[28] = 0x04;
        let mut bad_utf8 = good.clone();
        bad_utf8[63] = 0xFF;
        let mut trailing = good.clone();
        trailing.push(0);
        let cases: [(&[u8], WalletError); 6] = [
            (
                &[],
                WalletError::Truncated {
                    field: "tag",
                    offset: 0,
                    needed: 2,
                    available: 0,
                },
            ),
            (
                &good[..30],
                WalletError::Truncated {
                    field: "account",
                    offset: 28,
                    needed: 33,
                    available: 2,
                },
            ),
            (
                &other_tag,
                WalletError::Malformed {
                    field: "tag",
                    offset: 0,
                    expected: "\"telepay-wallet-payment/1\"",
                },
            ),
            (
                &bad_prefix,
                WalletError::Malformed {
                    field: "account",
                    offset: 26,
                    expected: "a 33-byte SEC1 compressed point",
                },
            ),
            (
                &bad_utf8,
                WalletError::Malformed {
                    field: "merchant",
                    offset: 61,
                    expected: "UTF-8 text",
                },
            ),
            (
                &trailing,
                WalletError::TrailingBytes {
                    offset: good.len(),
                    extra: 1,
                },
            ),
        ];
        for (bytes, expected) in cases {
            assert_eq!(
                WalletPayment::decode(bytes),
                Err(expected.clone()),
                "{expected}"
            );
        }
    }

    #[test]
    fn a_signature_verifies_only_over_its_payment_and_with_its_key() {
        let signer = key(1);
        let signed = SignedWalletPayment::sign(payment(&signer), |m| signer.sign(m)).unwrap();
        assert_eq!(signed.verify(), Ok(()));
        // Its low-s or high-s twin verifies too (documented choice).
        let twin = Signature::from_slice(&signed.signature).unwrap();
        let (r, s) = twin.split_scalars();
        let flipped = Signature::from_scalars(r.to_bytes(), (-*s).to_bytes()).unwrap();
        let mut mauled = signed.clone();
        mauled.signature = flipped.to_bytes().into();
        assert_ne!(mauled.signature, signed.signature);
        assert_eq!(mauled.verify(), Ok(()));

        let mut more = signed.clone();
        more.payment.amount.minor += 1;
        let mut other_key = signed.clone();
        other_key.payment.account = AccountKey::new(key(2).verifying_key());
        let mut zero = signed.clone();
        zero.signature = [0; 64];
        let fingerprint = |p: &SignedWalletPayment| p.payment.account.fingerprint();
        let cases = [
            (
                more.clone(),
                WalletError::BadSignature {
                    payment: PaymentId::from("P"),
                    account: fingerprint(&more),
                },
            ),
            (
                other_key.clone(),
                WalletError::BadSignature {
                    payment: PaymentId::from("P"),
                    account: fingerprint(&other_key),
                },
            ),
            (
                zero,
                WalletError::SignatureEncoding {
                    payment: PaymentId::from("P"),
                },
            ),
        ];
        for (signed, expected) in cases {
            assert_eq!(signed.verify(), Err(expected.clone()), "{expected}");
        }
    }

    #[test]
    fn keys_are_read_in_both_sec1_forms_and_kept_compressed() {
        let signer = key(3);
        let account = AccountKey::new(signer.verifying_key());
        let uncompressed = signer.verifying_key().to_sec1_point(false);
        assert_eq!(
            AccountKey::from_sec1(uncompressed.as_bytes()).unwrap(),
            account
        );
        assert_eq!(AccountKey::from_sec1(&account.to_sec1()).unwrap(), account);
        let mut compact = account.to_sec1();
        compact[0] = 0x05;
        let mut beyond_p = [0xFF; 33];
        beyond_p[0] = 0x02;
        let short_uncompressed = [&[0x04][..], &account.to_sec1()[1..]].concat();
        // (bytes, why refused): every refusal says the length and the first byte.
        let refused: [(&[u8], &str); 5] = [
            (&[], "empty"),
            (&compact, "the compact x-only form"),
            (&beyond_p, "x not below the field prime"),
            (&short_uncompressed, "uncompressed tag on 33 bytes"),
            (&[0x00], "the identity"),
        ];
        for (bytes, why) in refused {
            assert_eq!(
                AccountKey::from_sec1(bytes),
                Err(WalletError::InvalidAccountKey {
                    length: bytes.len(),
                    prefix: bytes.first().copied()
                }),
                "{why}"
            );
        }
    }

    fn arbitrary_payment() -> impl Strategy<Value = WalletPayment> {
        (
            1u8..=4,
            ".{0,6}",
            ".{0,6}",
            ".{0,6}",
            any::<u64>(),
            any::<u16>(),
            any::<u8>(),
            any::<u64>(),
            any::<i64>(),
        )
            .prop_map(
                |(seed, merchant, service, payment, minor, numeric, exponent, sequence, time)| {
                    WalletPayment {
                        account: AccountKey::new(key(seed).verifying_key()),
                        merchant: MerchantId::from(merchant),
                        service: ServiceId::from(service),
                        payment: PaymentId::from(payment),
                        amount: Money::new(minor, Currency { numeric, exponent }),
                        sequence,
                        time: Timestamp(time),
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn decode_inverts_encode(p in arbitrary_payment()) {
            let bytes = p.encode().unwrap();
            prop_assert_eq!(WalletPayment::decode(&bytes).unwrap(), p);
        }

        #[test]
        fn distinct_payments_never_encode_equal(a in arbitrary_payment(), b in arbitrary_payment()) {
            // Shifting text between neighbouring fields is the case a careless
            // concatenation would confuse; proptest's strings reach it.
            prop_assert_eq!(a == b, a.encode().unwrap() == b.encode().unwrap());
        }

        #[test]
        fn moving_bytes_between_fields_changes_the_encoding(
            text in ".{1,8}", cut in 0usize..8
        ) {
            let signer = key(1);
            let cut = text.char_indices().map(|(i, _)| i).nth(cut % text.chars().count()).unwrap_or(0);
            let mut a = payment(&signer);
            a.merchant = MerchantId::from(text[..cut].to_owned());
            a.service = ServiceId::from(text[cut..].to_owned());
            let mut b = a.clone();
            b.merchant = MerchantId::from(text.clone());
            b.service = ServiceId::from(String::new());
            prop_assume!(a != b);
            prop_assert_ne!(a.encode().unwrap(), b.encode().unwrap());
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = WalletPayment::decode(&bytes);
        }
    }
}
