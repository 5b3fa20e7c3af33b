//! Fuzz target `wallet_payment`: the Virtual Wallet's signed payment
//! (`telepay::acquirer::wallet::{WalletPayment, SignedWalletPayment}`, encoding in
//! `docs/wallet.md` §1), as bytes and as its JSON wire form.
//!
//! The input is read as an encoded payment. Checked on every input:
//!
//! - `WalletPayment::decode` never panics; an error's `Display`, `Debug` and `source()`
//!   chain format; it is `Truncated`, `Malformed` or `TrailingBytes` only, and its
//!   offsets lie in the input (`Truncated`: the bytes left at the offset are
//!   `available`, fewer than `needed`; `Malformed`: the field's length prefix is inside;
//!   `TrailingBytes`: offset + extra is the input's length).
//!
//! On success (the encoding is canonical, so the decoding is injective):
//!
//! - `encode()` gives back exactly the input, of 94 + m + s + p bytes (the tag, the key,
//!   three lengths and 27 fixed bytes, plus the three texts); the account key is the
//!   input's 33 bytes at offset 28, SEC1 compressed;
//! - the input less its last byte fails with `Truncated` on `time` (8 needed, 7 left),
//!   and the input and one more byte with `TrailingBytes` (1 extra, at the input's end);
//! - the wire form written here from the documentation, in lower-case hex with the
//!   signature `00 01 … 3F`, reads as that payment and signature; written back it is
//!   exactly the documented form in upper case, and reads back equal.
//!
//! When the input is UTF-8, it is also read as JSON: `serde_json::from_str` of a
//! `SignedWalletPayment` never panics, and on success the value writes the documented
//! wire form (its `payment` decodes to the payment read), reads back equal and writes
//! the same text again; `verify()` never panics, and an error is `SignatureEncoding`
//! or `BadSignature` naming the payment.
#![no_main]

#[path = "common/wallet.rs"]
mod wallet;

use libfuzzer_sys::fuzz_target;
use telepay::acquirer::wallet::encoding::{ACCOUNT_KEY_LEN, PAYMENT_TAG};
use telepay::acquirer::wallet::{SignedWalletPayment, WalletError, WalletPayment};
use wallet::json_round_trip;

/// Where the account key starts: after the tag and the key's own length.
const KEY_OFFSET: usize = 2 + PAYMENT_TAG.len() + 2;

/// Bytes of a payment with empty texts: tag, key, three text lengths, amount (8),
/// currency (2), exponent (1), sequence (8), time (8).
const FIXED_LEN: usize = KEY_OFFSET + ACCOUNT_KEY_LEN + 3 * 2 + 8 + 2 + 1 + 8 + 8;

fuzz_target!(|input: &[u8]| check(input));

fn check(input: &[u8]) {
    match WalletPayment::decode(input) {
        Ok(payment) => check_payment(input, &payment),
        Err(error) => check_error(input.len(), &error),
    }
    if let Ok(text) = std::str::from_utf8(input) {
        check_json(text);
    }
}

fn check_error(len: usize, error: &WalletError) {
    wallet::check_formats(error);
    let what = error.to_string();
    match *error {
        WalletError::Truncated {
            offset,
            needed,
            available,
            ..
        } => wallet::check_truncated(len, offset, needed, available, &what),
        WalletError::Malformed { offset, .. } => wallet::check_malformed(len, offset, &what),
        WalletError::TrailingBytes { offset, extra } => {
            wallet::check_trailing(len, offset, extra, &what)
        }
        _ => panic!("decoding failed with {error:?}"),
    }
}

fn check_payment(input: &[u8], payment: &WalletPayment) {
    match payment.encode() {
        Ok(encoded) => assert!(
            encoded == input,
            "decode then encode changed the bytes:\n in  {}\n out {}",
            wallet::hex(input, true),
            wallet::hex(&encoded, true)
        ),
        Err(error) => panic!("a payment read is not encodable: {error}"),
    }
    let texts = payment.merchant.0.len() + payment.service.0.len() + payment.payment.0.len();
    assert_eq!(input.len(), FIXED_LEN + texts, "length of {payment:?}");
    assert_eq!(
        input.get(KEY_OFFSET..KEY_OFFSET + ACCOUNT_KEY_LEN),
        Some(&payment.account.to_sec1()[..]),
        "the account key is not the bytes read"
    );
    let _ = format!("{payment:?} {} {}", payment.account, payment.amount);

    let len = input.len();
    let Some((_, shorter)) = input.split_last() else {
        panic!("a payment read from no bytes");
    };
    assert_eq!(
        WalletPayment::decode(shorter),
        Err(WalletError::Truncated {
            field: "time",
            offset: len - 8,
            needed: 8,
            available: 7,
        }),
        "the payment less its last byte"
    );
    let mut longer = input.to_vec();
    longer.push(0);
    assert_eq!(
        WalletPayment::decode(&longer),
        Err(WalletError::TrailingBytes {
            offset: len,
            extra: 1
        }),
        "the payment and one more byte"
    );

    let signature = wallet::pattern_signature();
    let text = wallet::wire("payment", input, &signature, false);
    let signed = match serde_json::from_str::<SignedWalletPayment>(&text) {
        Ok(signed) => signed,
        Err(error) => panic!("the wire form of a payment read is refused: {error}\n{text}"),
    };
    assert_eq!(
        &signed.payment, payment,
        "the wire form read another payment"
    );
    assert_eq!(
        signed.signature, signature,
        "the wire form read another signature"
    );
    let written = json_round_trip!(&signed, SignedWalletPayment);
    wallet::check_written(&written, "payment", input, &signature);
}

fn check_json(text: &str) {
    let Ok(signed) = serde_json::from_str::<SignedWalletPayment>(text) else {
        return;
    };
    let written = json_round_trip!(&signed, SignedWalletPayment);
    let encoded = match signed.payment.encode() {
        Ok(encoded) => encoded,
        Err(error) => panic!("a payment read from JSON is not encodable: {error}"),
    };
    wallet::check_written(&written, "payment", &encoded, &signed.signature);
    assert_eq!(
        WalletPayment::decode(&encoded).as_ref(),
        Ok(&signed.payment),
        "the encoding written decodes to another payment"
    );
    match signed.verify() {
        Ok(()) => {}
        Err(WalletError::SignatureEncoding { payment })
        | Err(WalletError::BadSignature { payment, .. }) => {
            assert_eq!(
                payment, signed.payment.payment,
                "the error names another payment"
            );
        }
        Err(other) => panic!("verify failed with {other:?}"),
    }
}
