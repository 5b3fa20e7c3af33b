//! Fuzz target `wallet_statements`: the wallet key's signed statements other than
//! payments — the identity statement (`telepay::acquirer::wallet::identity`,
//! `telepay-identity/1`) and the dispute statement (`…::dispute`, `telepay-dispute/1`),
//! both read by the shared reader of `…::statement` — as bytes and as their JSON wire
//! form.
//!
//! The input is read as an encoded identity statement, as an encoded dispute statement,
//! and as an encoded payment. Checked on every input:
//!
//! - neither `IdentityStatement::decode` nor `DisputeStatement::decode` panics; an
//!   error's `Display`, `Debug` and `source()` chain format; it names its kind of
//!   statement (`identity statement`, `dispute statement`); it is `Truncated`,
//!   `Malformed` or `TrailingBytes` only, with its offsets in the input (as for
//!   payments: the bytes left are `available` < `needed`, a malformed field's length
//!   prefix is inside, offset + extra is the input's length);
//! - at most one of the three decoders accepts the input: the domain tags (and their
//!   lengths) differ, so a signature over one kind is never one over another
//!   (`statement.rs`).
//!
//! On success (each encoding is canonical):
//!
//! - `encode()` gives back exactly the input, of 85 + m + i + p bytes for an identity
//!   (tag, key, three lengths, nonce 16, time 8) and 70 + d + m + p + r for a dispute
//!   (tag, key, four lengths, time 8); the account key is the input's 33 bytes after
//!   the tag and the key's length, SEC1 compressed;
//! - the input less its last byte fails with `Truncated` on `time`, and the input and
//!   one more byte with `TrailingBytes`;
//! - the wire form written here (`{"statement": hex, "signature": hex}`, lower case,
//!   signature `00 01 … 3F`) reads as that statement and signature, and is written back
//!   exactly as documented, in upper case, and reads back equal;
//! - an identity's customer is `K-` and 16 upper-case hex digits; a dispute's reason
//!   passes `check_reason` exactly when it is not blank and has at most
//!   `MAX_DISPUTE_REASON_CHARS` characters (the encoding does not bound it).
//!
//! When the input is UTF-8 it is also read as JSON, as a `SignedIdentity` and as a
//! `SignedDispute`: no panic, at most one succeeds, and a value read writes the
//! documented wire form, reads back equal and writes the same text again; `verify()`
//! never panics, and an error is `SignatureEncoding` or `BadSignature` naming the kind
//! and the statement's subject (identification or dispute, cut to 64 characters).
#![no_main]

#[path = "common/wallet.rs"]
mod wallet;

use std::fmt::Debug;

use libfuzzer_sys::fuzz_target;
use telepay::acquirer::wallet::dispute::{
    DISPUTE_TAG, DisputeFault, MAX_DISPUTE_REASON_CHARS, check_reason,
};
use telepay::acquirer::wallet::encoding::ACCOUNT_KEY_LEN;
use telepay::acquirer::wallet::identity::{IDENTITY_TAG, customer_id};
use telepay::acquirer::wallet::{
    AccountKey, DisputeStatement, IdentityStatement, SignedDispute, SignedIdentity, StatementError,
    WalletPayment,
};
use wallet::{SIGNATURE_LEN, json_round_trip};

fuzz_target!(|input: &[u8]| check(input));

fn check(input: &[u8]) {
    let identity = check_kind::<Identity>(input);
    let dispute = check_kind::<Dispute>(input);
    let payment = WalletPayment::decode(input).is_ok();
    assert!(
        usize::from(identity) + usize::from(dispute) + usize::from(payment) <= 1,
        "read as more than one kind (identity {identity}, dispute {dispute}, payment \
         {payment}): {}",
        wallet::hex(input, true)
    );
    if let Ok(text) = std::str::from_utf8(input) {
        let identity = check_json::<Identity>(text);
        let dispute = check_json::<Dispute>(text);
        assert!(
            !(identity && dispute),
            "JSON read as both an identity and a dispute: {text}"
        );
    }
}

/// One kind of statement, as the checks below need it.
trait Kind {
    /// The statement.
    type Statement: PartialEq + Debug;
    /// The statement with its signature.
    type Signed: PartialEq + Debug;
    /// What errors call it.
    const KIND: &'static str;
    /// Its domain tag.
    const TAG: &'static [u8];
    /// Bytes of the encoding besides its texts: tag, key, the texts' lengths, and the
    /// fixed-width fields.
    const FIXED_LEN: usize;

    fn decode(bytes: &[u8]) -> Result<Self::Statement, StatementError>;
    fn encode(statement: &Self::Statement) -> Result<Vec<u8>, StatementError>;
    /// Bytes of its text fields together.
    fn texts_len(statement: &Self::Statement) -> usize;
    fn account(statement: &Self::Statement) -> &AccountKey;
    /// What its errors are about: the identification, or the dispute.
    fn subject(statement: &Self::Statement) -> &str;
    /// The checks particular to the kind.
    fn check_rules(statement: &Self::Statement);

    fn statement(signed: &Self::Signed) -> &Self::Statement;
    fn signature(signed: &Self::Signed) -> &[u8; SIGNATURE_LEN];
    fn verify(signed: &Self::Signed) -> Result<(), StatementError>;
    fn from_json(text: &str) -> Result<Self::Signed, serde_json::Error>;
    /// [`json_round_trip`] of the value: the text written.
    fn json_round_trip(signed: &Self::Signed) -> String;
}

/// Where the account key starts: after the tag and the key's own length.
const fn key_offset(tag: &[u8]) -> usize {
    2 + tag.len() + 2
}

struct Identity;

impl Kind for Identity {
    type Statement = IdentityStatement;
    type Signed = SignedIdentity;
    const KIND: &'static str = "identity statement";
    const TAG: &'static [u8] = IDENTITY_TAG;
    // Key, three text lengths (merchant, identification, purpose), nonce, time.
    const FIXED_LEN: usize = key_offset(IDENTITY_TAG) + ACCOUNT_KEY_LEN + 3 * 2 + 16 + 8;

    fn decode(bytes: &[u8]) -> Result<IdentityStatement, StatementError> {
        IdentityStatement::decode(bytes)
    }
    fn encode(statement: &IdentityStatement) -> Result<Vec<u8>, StatementError> {
        statement.encode()
    }
    fn texts_len(statement: &IdentityStatement) -> usize {
        statement.merchant.0.len() + statement.identification.0.len() + statement.purpose.len()
    }
    fn account(statement: &IdentityStatement) -> &AccountKey {
        &statement.account
    }
    fn subject(statement: &IdentityStatement) -> &str {
        &statement.identification.0
    }
    fn check_rules(statement: &IdentityStatement) {
        let customer = customer_id(&statement.account).0;
        let digits = customer.strip_prefix("K-").unwrap_or_default();
        assert!(
            digits.len() == 16
                && digits
                    .bytes()
                    .all(|b| matches!(b, b'0'..=b'9' | b'A'..=b'F')),
            "customer {customer:?}"
        );
    }

    fn statement(signed: &SignedIdentity) -> &IdentityStatement {
        &signed.statement
    }
    fn signature(signed: &SignedIdentity) -> &[u8; SIGNATURE_LEN] {
        &signed.signature
    }
    fn verify(signed: &SignedIdentity) -> Result<(), StatementError> {
        signed.verify()
    }
    fn from_json(text: &str) -> Result<SignedIdentity, serde_json::Error> {
        serde_json::from_str(text)
    }
    fn json_round_trip(signed: &SignedIdentity) -> String {
        json_round_trip!(signed, SignedIdentity)
    }
}

struct Dispute;

impl Kind for Dispute {
    type Statement = DisputeStatement;
    type Signed = SignedDispute;
    const KIND: &'static str = "dispute statement";
    const TAG: &'static [u8] = DISPUTE_TAG;
    // Key, four text lengths (dispute, merchant, payment, reason), time.
    const FIXED_LEN: usize = key_offset(DISPUTE_TAG) + ACCOUNT_KEY_LEN + 4 * 2 + 8;

    fn decode(bytes: &[u8]) -> Result<DisputeStatement, StatementError> {
        DisputeStatement::decode(bytes)
    }
    fn encode(statement: &DisputeStatement) -> Result<Vec<u8>, StatementError> {
        statement.encode()
    }
    fn texts_len(statement: &DisputeStatement) -> usize {
        statement.dispute.0.len()
            + statement.merchant.0.len()
            + statement.payment.0.len()
            + statement.reason.len()
    }
    fn account(statement: &DisputeStatement) -> &AccountKey {
        &statement.account
    }
    fn subject(statement: &DisputeStatement) -> &str {
        &statement.dispute.0
    }
    fn check_rules(statement: &DisputeStatement) {
        let reason = &statement.reason;
        let chars = reason.chars().count();
        let expected = if reason.trim().is_empty() {
            Err(DisputeFault::EmptyReason {
                dispute: statement.dispute.clone(),
            })
        } else if chars > MAX_DISPUTE_REASON_CHARS {
            Err(DisputeFault::ReasonTooLong {
                dispute: statement.dispute.clone(),
                chars,
                max: MAX_DISPUTE_REASON_CHARS,
            })
        } else {
            Ok(())
        };
        assert_eq!(
            check_reason(&statement.dispute, reason),
            expected,
            "reason {reason:?}"
        );
    }

    fn statement(signed: &SignedDispute) -> &DisputeStatement {
        &signed.statement
    }
    fn signature(signed: &SignedDispute) -> &[u8; SIGNATURE_LEN] {
        &signed.signature
    }
    fn verify(signed: &SignedDispute) -> Result<(), StatementError> {
        signed.verify()
    }
    fn from_json(text: &str) -> Result<SignedDispute, serde_json::Error> {
        serde_json::from_str(text)
    }
    fn json_round_trip(signed: &SignedDispute) -> String {
        json_round_trip!(signed, SignedDispute)
    }
}

/// Decodes `input` as a `K`; whether it was one.
fn check_kind<K: Kind>(input: &[u8]) -> bool {
    match K::decode(input) {
        Ok(statement) => {
            check_statement::<K>(input, &statement);
            true
        }
        Err(error) => {
            check_error::<K>(input.len(), &error);
            false
        }
    }
}

fn check_error<K: Kind>(len: usize, error: &StatementError) {
    wallet::check_formats(error);
    let what = error.to_string();
    match *error {
        StatementError::Truncated {
            statement,
            offset,
            needed,
            available,
            ..
        } => {
            assert_eq!(statement, K::KIND, "{what}");
            wallet::check_truncated(len, offset, needed, available, &what);
        }
        StatementError::Malformed {
            statement, offset, ..
        } => {
            assert_eq!(statement, K::KIND, "{what}");
            wallet::check_malformed(len, offset, &what);
        }
        StatementError::TrailingBytes {
            statement,
            offset,
            extra,
        } => {
            assert_eq!(statement, K::KIND, "{what}");
            wallet::check_trailing(len, offset, extra, &what);
        }
        _ => panic!("decoding a {} failed with {error:?}", K::KIND),
    }
}

fn check_statement<K: Kind>(input: &[u8], statement: &K::Statement) {
    match K::encode(statement) {
        Ok(encoded) => assert!(
            encoded == input,
            "{}: decode then encode changed the bytes:\n in  {}\n out {}",
            K::KIND,
            wallet::hex(input, true),
            wallet::hex(&encoded, true)
        ),
        Err(error) => panic!("a {} read is not encodable: {error}", K::KIND),
    }
    assert_eq!(
        input.len(),
        K::FIXED_LEN + K::texts_len(statement),
        "length of {statement:?}"
    );
    let key_at = key_offset(K::TAG);
    assert_eq!(
        input.get(key_at..key_at + ACCOUNT_KEY_LEN),
        Some(&K::account(statement).to_sec1()[..]),
        "{}: the account key is not the bytes read",
        K::KIND
    );
    K::check_rules(statement);

    let len = input.len();
    let Some((_, shorter)) = input.split_last() else {
        panic!("a {} read from no bytes", K::KIND);
    };
    assert_eq!(
        K::decode(shorter),
        Err(StatementError::Truncated {
            statement: K::KIND,
            field: "time",
            offset: len - 8,
            needed: 8,
            available: 7,
        }),
        "the {} less its last byte",
        K::KIND
    );
    let mut longer = input.to_vec();
    longer.push(0);
    assert_eq!(
        K::decode(&longer),
        Err(StatementError::TrailingBytes {
            statement: K::KIND,
            offset: len,
            extra: 1
        }),
        "the {} and one more byte",
        K::KIND
    );

    let signature = wallet::pattern_signature();
    let text = wallet::wire("statement", input, &signature, false);
    let signed = match K::from_json(&text) {
        Ok(signed) => signed,
        Err(error) => panic!(
            "the wire form of a {} read is refused: {error}\n{text}",
            K::KIND
        ),
    };
    assert_eq!(
        K::statement(&signed),
        statement,
        "the wire form read another statement"
    );
    assert_eq!(
        K::signature(&signed),
        &signature,
        "the wire form read another signature"
    );
    let written = K::json_round_trip(&signed);
    wallet::check_written(&written, "statement", input, &signature);
}

/// Reads `text` as a signed `K`; whether it was one.
fn check_json<K: Kind>(text: &str) -> bool {
    let Ok(signed) = K::from_json(text) else {
        return false;
    };
    let written = K::json_round_trip(&signed);
    let statement = K::statement(&signed);
    let encoded = match K::encode(statement) {
        Ok(encoded) => encoded,
        Err(error) => panic!("a {} read from JSON is not encodable: {error}", K::KIND),
    };
    wallet::check_written(&written, "statement", &encoded, K::signature(&signed));
    assert_eq!(
        K::decode(&encoded).as_ref(),
        Ok(statement),
        "the encoding written decodes to another {}",
        K::KIND
    );
    let subject: String = K::subject(statement).chars().take(64).collect();
    match K::verify(&signed) {
        Ok(()) => {}
        Err(StatementError::SignatureEncoding {
            statement,
            subject: named,
        })
        | Err(StatementError::BadSignature {
            statement,
            subject: named,
            ..
        }) => {
            assert_eq!(statement, K::KIND);
            assert_eq!(named, subject, "the error names another subject");
        }
        Err(other) => panic!("verify of a {} failed with {other:?}", K::KIND),
    }
    true
}
