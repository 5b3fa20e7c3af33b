//! What the wallet targets (`wallet_payment`, `wallet_statements`) share: the wire form
//! of a signed payment or statement written here from its documentation, the check of
//! the wire text the library writes, a JSON round trip, and the bounds a decoding
//! error's offsets must keep.
//!
//! On the wire (`src/acquirer/wallet/encoding.rs`, `statement.rs`) a signed payment is
//! `{"payment": HEX, "signature": HEX}` and a signed statement `{"statement": HEX,
//! "signature": HEX}`: the canonical encoding and `r ‖ s`, in upper-case hex, in that
//! order. Reading accepts either case (the hex is decoded, then the encoding).
// Each target uses part of this module.
#![allow(dead_code)]

/// Bytes of a signature: `r ‖ s`, 32 bytes each.
pub const SIGNATURE_LEN: usize = 64;

/// A signature for the wire texts built here: the bytes `00 01 … 3F`, so that a swap or
/// a shift of its bytes shows. (`r` and `s` are non-zero and below the P-256 order, but
/// it is no signature of anything.)
pub fn pattern_signature() -> [u8; SIGNATURE_LEN] {
    let mut signature = [0u8; SIGNATURE_LEN];
    for (byte, value) in signature.iter_mut().zip(0u8..) {
        *byte = value;
    }
    signature
}

/// `bytes` in hex, upper case when `upper`.
pub fn hex(bytes: &[u8], upper: bool) -> String {
    let digits: &[u8; 16] = if upper {
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    let mut text = String::with_capacity(bytes.len().saturating_mul(2));
    for byte in bytes {
        text.push(char::from(digits[usize::from(byte >> 4)]));
        text.push(char::from(digits[usize::from(byte & 0x0F)]));
    }
    text
}

/// The bytes of upper-case hex `text`; `None` for anything else (lower case included).
fn from_upper_hex(text: &str) -> Option<Vec<u8>> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let (pairs, rest) = text.as_bytes().as_chunks::<2>();
    if !rest.is_empty() {
        return None;
    }
    pairs
        .iter()
        .map(|&[high, low]| Some((digit(high)? << 4) | digit(low)?))
        .collect()
}

/// The compact wire text of a signed value whose encoding is the member `member`.
pub fn wire(member: &str, encoded: &[u8], signature: &[u8], upper: bool) -> String {
    format!(
        "{{\"{member}\":\"{}\",\"signature\":\"{}\"}}",
        hex(encoded, upper),
        hex(signature, upper)
    )
}

/// Checks that `text`, which the library wrote for a signed value, is exactly the
/// documented wire form of `encoded` and `signature`: the two members in order, in
/// upper-case hex, nothing else.
pub fn check_written(text: &str, member: &str, encoded: &[u8], signature: &[u8]) {
    assert_eq!(
        text,
        wire(member, encoded, signature, true),
        "the wire form written is not {{\"{member}\": HEX, \"signature\": HEX}}"
    );
    // The same through a JSON reader, so that a difference in escaping or order
    // would not hide behind the text comparison above.
    let Ok(serde_json::Value::Object(object)) = serde_json::from_str(text) else {
        panic!("the wire form written is not a JSON object: {text}");
    };
    assert_eq!(object.len(), 2, "members of {text}");
    let member_bytes = object
        .get(member)
        .and_then(serde_json::Value::as_str)
        .and_then(from_upper_hex);
    assert_eq!(member_bytes.as_deref(), Some(encoded), "{member} of {text}");
    let signature_bytes = object
        .get("signature")
        .and_then(serde_json::Value::as_str)
        .and_then(from_upper_hex);
    assert_eq!(
        signature_bytes.as_deref(),
        Some(signature),
        "signature of {text}"
    );
}

/// A decoding error's `Display` and `Debug` format, and its `source()` chain.
pub fn check_formats(error: &dyn std::error::Error) {
    let _ = error.to_string();
    let _ = format!("{error:?}");
    let mut source = error.source();
    while let Some(cause) = source {
        let _ = cause.to_string();
        source = cause.source();
    }
}

/// A field cut short: it starts inside the input (or at its end), `available` is what
/// is left from there, and it needed more.
pub fn check_truncated(len: usize, offset: usize, needed: usize, available: usize, what: &str) {
    assert!(offset <= len, "{what}: offset {offset} beyond {len} bytes");
    assert_eq!(
        available,
        len - offset,
        "{what}: bytes left at offset {offset} of {len}"
    );
    assert!(
        needed > available,
        "{what}: {needed} needed, {available} left"
    );
}

/// A field holding something else: its length prefix lies inside the input.
pub fn check_malformed(len: usize, offset: usize, what: &str) {
    assert!(
        offset.checked_add(2).is_some_and(|end| end <= len),
        "{what}: malformed field at offset {offset} of {len} bytes"
    );
}

/// Bytes after the last field: at least one, up to the end of the input.
pub fn check_trailing(len: usize, offset: usize, extra: usize, what: &str) {
    assert!(extra > 0, "{what}: no extra byte at offset {offset}");
    assert_eq!(
        offset.checked_add(extra),
        Some(len),
        "{what}: {extra} extra bytes at offset {offset} of {len}"
    );
}

/// Serialises `$value` (a `$type`) to JSON, reads the text back equal, and serialises
/// that again to the same text; the text. Its failures are assertion failures.
macro_rules! json_round_trip {
    ($value:expr, $type:ty) => {{
        let value: &$type = $value;
        let text = match serde_json::to_string(value) {
            Ok(text) => text,
            Err(error) => panic!("a value read is not written back: {error}\n{value:?}"),
        };
        let again: $type = match serde_json::from_str(&text) {
            Ok(again) => again,
            Err(error) => panic!("the text written does not read back: {error}\n{text}"),
        };
        assert_eq!(&again, value, "read back differs from\n{text}");
        match serde_json::to_string(&again) {
            Ok(twice) => assert_eq!(twice, text, "written twice differs"),
            Err(error) => panic!("written once but not twice: {error}\n{again:?}"),
        }
        text
    }};
}

pub(crate) use json_round_trip;
