//! What the wallet key's signed statements other than payments share: the identity
//! statement ([`super::identity`]) and the dispute statement ([`super::dispute`]) are
//! encoded field by field the way a payment is ([`super::encoding`]), each under its
//! own domain tag, and fail with one error type, [`StatementError`].
//!
//! The layout rules, the same for every statement (`docs/wallet.md` §1 for payments):
//! every integer big-endian at a fixed width; every variable field after its u16
//! big-endian length; the domain tag and the 33-byte key carry a length prefix too, so
//! that a field is read one way only; a fixed-width field (a nonce) has no prefix. The
//! bytes therefore read back as exactly one statement, and the three tags —
//! `telepay-wallet-payment/1`, `telepay-identity/1`, `telepay-dispute/1` — differ from
//! the first bytes on (their lengths differ), so a signature over one kind can never be
//! presented as a signature over another.

use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};

use super::encoding::{ACCOUNT_KEY_LEN, AccountKey, SIGNATURE_LEN};
use crate::messages::Timestamp;

/// Most bytes in a text field of a statement: what its u16 length holds.
pub const MAX_TEXT_BYTES: usize = u16::MAX as usize;

/// Why a statement could not be encoded, decoded or verified. `statement` names its
/// kind (`identity statement`, `dispute statement`), `subject` the identification or
/// dispute it is about (cut to 64 characters).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StatementError {
    /// A text field is longer than its u16 length can say.
    #[error("{statement} {subject}: field `{field}` is {length} bytes, at most {max}")]
    FieldTooLong {
        /// The kind of statement.
        statement: &'static str,
        /// What it is about.
        subject: String,
        /// The field.
        field: &'static str,
        /// Its length in bytes.
        length: usize,
        /// The most it may hold.
        max: usize,
    },
    /// The encoding ends before a field does.
    #[error(
        "encoded {statement}: field `{field}` at offset {offset}: needs {needed} bytes, {available} left"
    )]
    Truncated {
        /// The kind of statement.
        statement: &'static str,
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
    #[error("encoded {statement}: field `{field}` at offset {offset}: expected {expected}")]
    Malformed {
        /// The kind of statement.
        statement: &'static str,
        /// The field.
        field: &'static str,
        /// Where it starts.
        offset: usize,
        /// What it must hold.
        expected: &'static str,
    },
    /// Bytes follow the last field.
    #[error("encoded {statement}: {extra} bytes after the last field, at offset {offset}")]
    TrailingBytes {
        /// The kind of statement.
        statement: &'static str,
        /// Where they start.
        offset: usize,
        /// How many.
        extra: usize,
    },
    /// The 64 bytes are not an ECDSA signature: `r` or `s` is zero or not below the
    /// group order.
    #[error("{statement} {subject}: the signature's r or s is zero or not below the P-256 order")]
    SignatureEncoding {
        /// The kind of statement.
        statement: &'static str,
        /// What it is about.
        subject: String,
    },
    /// The signature does not verify with the statement's account key over its
    /// encoding.
    #[error("{statement} {subject}: the signature does not verify with account {account}")]
    BadSignature {
        /// The kind of statement.
        statement: &'static str,
        /// What it is about.
        subject: String,
        /// The account's fingerprint.
        account: String,
    },
}

/// A subject as errors name it: at most 64 characters.
pub(crate) fn subject(text: &str) -> String {
    text.chars().take(64).collect()
}

/// Builds a statement's encoding, field by field.
pub(crate) struct Writer {
    out: Vec<u8>,
    statement: &'static str,
    subject: String,
}

impl Writer {
    /// An encoding of a `statement` about `subject`, opening with `tag`.
    pub(crate) fn new(statement: &'static str, subject: &str, tag: &[u8]) -> Writer {
        let mut writer = Writer {
            out: Vec::with_capacity(128),
            statement,
            subject: self::subject(subject),
        };
        // Tags are constants far below u16::MAX; the prefix keeps the layout uniform.
        let length = u16::try_from(tag.len()).unwrap_or(u16::MAX);
        writer.out.extend_from_slice(&length.to_be_bytes());
        writer.out.extend_from_slice(tag);
        writer
    }

    /// The account key, SEC1 compressed, after its length (33).
    pub(crate) fn key(&mut self, key: &AccountKey) {
        self.out
            .extend_from_slice(&(ACCOUNT_KEY_LEN as u16).to_be_bytes());
        self.out.extend_from_slice(&key.to_sec1());
    }

    /// `text` after its u16 length: at most [`MAX_TEXT_BYTES`].
    pub(crate) fn text(&mut self, field: &'static str, text: &str) -> Result<(), StatementError> {
        let length = u16::try_from(text.len()).map_err(|_| StatementError::FieldTooLong {
            statement: self.statement,
            subject: self.subject.clone(),
            field,
            length: text.len(),
            max: MAX_TEXT_BYTES,
        })?;
        self.out.extend_from_slice(&length.to_be_bytes());
        self.out.extend_from_slice(text.as_bytes());
        Ok(())
    }

    /// Fixed-width bytes, without a length.
    pub(crate) fn fixed(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    /// A time, i64 milliseconds since 1970-01-01 UTC.
    pub(crate) fn time(&mut self, time: Timestamp) {
        self.out.extend_from_slice(&time.0.to_be_bytes());
    }

    /// The bytes written.
    pub(crate) fn finish(self) -> Vec<u8> {
        self.out
    }
}

/// Reads a statement's encoding front to back, naming each field it fails on.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    offset: usize,
    statement: &'static str,
}

impl<'a> Reader<'a> {
    /// Reads `bytes`, which must open with `tag` written as [`Writer::new`] writes it.
    pub(crate) fn open(
        statement: &'static str,
        bytes: &'a [u8],
        tag: &[u8],
        expected_tag: &'static str,
    ) -> Result<Reader<'a>, StatementError> {
        let mut reader = Reader {
            bytes,
            offset: 0,
            statement,
        };
        let found = reader.prefixed("tag")?;
        if found != tag {
            return Err(StatementError::Malformed {
                statement,
                field: "tag",
                offset: 0,
                expected: expected_tag,
            });
        }
        Ok(reader)
    }

    fn take(&mut self, field: &'static str, needed: usize) -> Result<&'a [u8], StatementError> {
        let rest = self.bytes.get(self.offset..).unwrap_or_default();
        let taken = rest.get(..needed).ok_or(StatementError::Truncated {
            statement: self.statement,
            field,
            offset: self.offset,
            needed,
            available: rest.len(),
        })?;
        self.offset = self.offset.saturating_add(needed);
        Ok(taken)
    }

    /// `N` fixed bytes.
    pub(crate) fn array<const N: usize>(
        &mut self,
        field: &'static str,
    ) -> Result<[u8; N], StatementError> {
        let at = self.offset;
        let taken = self.take(field, N)?;
        <[u8; N]>::try_from(taken).map_err(|_| StatementError::Truncated {
            statement: self.statement,
            field,
            offset: at,
            needed: N,
            available: taken.len(),
        })
    }

    fn prefixed(&mut self, field: &'static str) -> Result<&'a [u8], StatementError> {
        let length = u16::from_be_bytes(self.array(field)?);
        self.take(field, usize::from(length))
    }

    /// The account key: 33 bytes after their length, a compressed point of P-256.
    pub(crate) fn key(&mut self) -> Result<AccountKey, StatementError> {
        let at = self.offset;
        let key = self.prefixed("account")?;
        if key.len() != ACCOUNT_KEY_LEN || !matches!(key.first(), Some(0x02 | 0x03)) {
            return Err(self.malformed("account", at, "a 33-byte SEC1 compressed point"));
        }
        AccountKey::from_sec1(key).map_err(|_| self.malformed("account", at, "a point of P-256"))
    }

    /// UTF-8 text after its u16 length.
    pub(crate) fn text(&mut self, field: &'static str) -> Result<String, StatementError> {
        let at = self.offset;
        let bytes = self.prefixed(field)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| self.malformed(field, at, "UTF-8 text"))
    }

    /// A time, i64 milliseconds since 1970-01-01 UTC.
    pub(crate) fn time(&mut self) -> Result<Timestamp, StatementError> {
        Ok(Timestamp(i64::from_be_bytes(self.array("time")?)))
    }

    /// Checks that nothing follows the last field.
    pub(crate) fn finish(self) -> Result<(), StatementError> {
        if self.offset != self.bytes.len() {
            return Err(StatementError::TrailingBytes {
                statement: self.statement,
                offset: self.offset,
                extra: self.bytes.len().saturating_sub(self.offset),
            });
        }
        Ok(())
    }

    fn malformed(
        &self,
        field: &'static str,
        offset: usize,
        expected: &'static str,
    ) -> StatementError {
        StatementError::Malformed {
            statement: self.statement,
            field,
            offset,
            expected,
        }
    }
}

/// Checks `signature` (`r ‖ s`, ECDSA P-256 with SHA-256, FIPS 186-5 §6.4) by `key` over
/// `message`. Both forms of `s` are accepted, as for payments (`docs/wallet.md` §1): a
/// mauled signature still proves the key signed these very bytes, and statements are
/// told apart by their bytes, never by their signatures.
pub(crate) fn verify(
    statement: &'static str,
    subject: &str,
    key: &AccountKey,
    message: &[u8],
    signature: &[u8; SIGNATURE_LEN],
) -> Result<(), StatementError> {
    let parsed =
        Signature::from_slice(signature).map_err(|_| StatementError::SignatureEncoding {
            statement,
            subject: self::subject(subject),
        })?;
    let verifying: &VerifyingKey = key.verifying_key();
    verifying
        .verify(message, &parsed)
        .map_err(|_| StatementError::BadSignature {
            statement,
            subject: self::subject(subject),
            account: key.fingerprint(),
        })
}

/// A statement a user's key signs (identity, dispute): the name of its kind, its
/// canonical encoding and decoding, and the account and subject it names.
pub trait Statement: Sized {
    /// The kind's name in errors: `identity statement`, `dispute statement`.
    const KIND: &'static str;

    /// The canonical bytes the key signs.
    ///
    /// # Errors
    /// A text too long to encode.
    fn encode(&self) -> Result<Vec<u8>, StatementError>;

    /// The statement `bytes` encode, the inverse of [`Statement::encode`].
    ///
    /// # Errors
    /// The bytes are not one statement of this kind.
    fn decode(bytes: &[u8]) -> Result<Self, StatementError>;

    /// The account whose key signs it.
    fn account(&self) -> &AccountKey;

    /// What errors name it by (the identification's or the dispute's identifier).
    fn subject(&self) -> &str;
}

/// A statement with its signature by the account's key: ECDSA P-256 with SHA-256
/// (FIPS 186-5 §6.4) over [`Statement::encode`], `r ‖ s` big-endian.
///
/// On the wire it is `{"statement": HEX, "signature": HEX}`: the canonical encoding and
/// the signature in upper-case hex, so a relay cannot alter a field without breaking
/// the signature.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Signed<S> {
    /// The statement.
    pub statement: S,
    /// `r ‖ s`.
    pub signature: [u8; SIGNATURE_LEN],
}

impl<S: Statement> Signed<S> {
    /// `statement` signed by `sign` (the key store's `UnlockedKey::sign`, or a
    /// `SigningKey`'s `sign`).
    ///
    /// # Errors
    /// The statement has no encoding (a text too long).
    pub fn sign(
        statement: S,
        sign: impl FnOnce(&[u8]) -> Signature,
    ) -> Result<Signed<S>, StatementError> {
        let message = statement.encode()?;
        let signature = sign(&message).to_bytes().into();
        Ok(Signed {
            statement,
            signature,
        })
    }

    /// Checks the signature with the statement's account key over its encoding.
    ///
    /// # Errors
    /// [`StatementError::SignatureEncoding`] or [`StatementError::BadSignature`].
    pub fn verify(&self) -> Result<(), StatementError> {
        let message = self.statement.encode()?;
        verify(
            S::KIND,
            self.statement.subject(),
            self.statement.account(),
            &message,
            &self.signature,
        )
    }
}

impl<S: Statement> serde::Serialize for Signed<S> {
    fn serialize<Z: serde::Serializer>(&self, serializer: Z) -> Result<Z::Ok, Z::Error> {
        use serde::ser::Error;
        let encoded = self.statement.encode().map_err(Z::Error::custom)?;
        wire::Wire::new(&encoded, &self.signature).serialize(serializer)
    }
}

impl<S: Statement> schemars::JsonSchema for Signed<S> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        // "identity statement" → "SignedIdentityStatement".
        let words: String = S::KIND
            .split(' ')
            .map(|word| {
                let mut letters = word.chars();
                letters
                    .next()
                    .map(|first| first.to_ascii_uppercase().to_string() + letters.as_str())
                    .unwrap_or_default()
            })
            .collect();
        format!("Signed{words}").into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "object",
            "description": "A signed statement: its canonical encoding (docs/wallet.md) and its ECDSA P-256 signature (r || s), both in hex.",
            "properties": {
                "statement": { "type": "string", "pattern": "^([0-9A-Fa-f]{2})+$" },
                "signature": { "type": "string", "pattern": "^[0-9A-Fa-f]{128}$" },
            },
            "required": ["statement", "signature"],
            "additionalProperties": false,
        })
    }
}

impl<'de, S: Statement> serde::Deserialize<'de> for Signed<S> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let wire = wire::Wire::deserialize(deserializer)?;
        let (encoded, signature) = wire.bytes(S::KIND).map_err(D::Error::custom)?;
        let statement = S::decode(&encoded).map_err(D::Error::custom)?;
        Ok(Signed {
            statement,
            signature,
        })
    }
}

/// Serde for a signed statement on the wire: `{"statement": HEX, "signature": HEX}`,
/// upper-case hex of the canonical encoding and of `r ‖ s`, as for a signed payment. What
/// is read back is exactly what was signed.
pub(crate) mod wire {
    use super::SIGNATURE_LEN;

    /// The two hex strings of a signed statement.
    #[derive(serde::Serialize, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(crate) struct Wire {
        pub(crate) statement: String,
        pub(crate) signature: String,
    }

    impl Wire {
        /// The wire form of `encoded` and `signature`.
        pub(crate) fn new(encoded: &[u8], signature: &[u8; SIGNATURE_LEN]) -> Wire {
            Wire {
                statement: hex::encode_upper(encoded),
                signature: hex::encode_upper(signature),
            }
        }

        /// The encoding's bytes and the signature, or why they are not hex of the
        /// right length.
        pub(crate) fn bytes(&self, kind: &str) -> Result<(Vec<u8>, [u8; SIGNATURE_LEN]), String> {
            let encoded =
                hex::decode(&self.statement).map_err(|error| format!("{kind}: {error}"))?;
            let signature = hex::decode(&self.signature)
                .ok()
                .and_then(|bytes| <[u8; SIGNATURE_LEN]>::try_from(bytes).ok())
                .ok_or_else(|| {
                    format!("{kind}: the signature is not {SIGNATURE_LEN} bytes of hex")
                })?;
            Ok((encoded, signature))
        }
    }
}
