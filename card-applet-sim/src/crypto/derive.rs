//! Key derivation: ICC master keys from the issuer master key (EMV Book 2 A1.4, Options A
//! and B) and session keys from an ICC master key (A1.3.1, common session key derivation).

use sha1::{Digest, Sha1};
use zeroize::Zeroizing;

use super::{CryptoError, DoubleKey};

/// Shortest PAN accepted (ISO/IEC 7812-1 issuer identification number plus account).
const PAN_MIN_DIGITS: usize = 12;
/// Longest PAN (ISO/IEC 7812-1; EMV tag 5A, cn 19).
const PAN_MAX_DIGITS: usize = 19;
/// Option B applies only to PANs longer than this (EMV Book 2 A1.4.2).
const OPTION_A_MAX_PAN_DIGITS: usize = 16;

/// EMV Book 2 A1.4.1, Option A: the ICC master key for one card.
///
/// `Y` is PAN ‖ PSN as decimal digits, its rightmost 16 kept, or zero-padded on the left
/// to 16, packed as 8 BCD bytes; then `ZL = 3DES(IMK)[Y]`, `ZR = 3DES(IMK)[Y ⊕ FF…FF]`,
/// and the key `ZL ‖ ZR` is adjusted to odd parity.
///
/// `pan` is the PAN's ASCII digits, 12 to 19 of them, without the `F` padding of tag 5A;
/// `pan_sequence` is the PAN sequence number (tag 5F34), 0 to 99.
pub fn derive_icc_master_key(
    issuer_master_key: &DoubleKey,
    pan: &str,
    pan_sequence: u8,
) -> Result<DoubleKey, CryptoError> {
    let digits = pan_and_sequence_digits(pan, pan_sequence)?;
    let mut y = Zeroizing::new([0u8; 16]);
    // Right-align: the zip from the right keeps the rightmost 16 digits and leaves
    // leading zeros when there are fewer.
    for (slot, digit) in y.iter_mut().rev().zip(digits.iter().rev()) {
        *slot = *digit;
    }
    Ok(master_key_from_digits(issuer_master_key, &y))
}

/// EMV Book 2 A1.4.2, Option B: the ICC master key for PANs of 17 to 19 digits; for a
/// PAN of 16 digits or fewer it is Option A, as the clause specifies.
///
/// `X` is PAN ‖ PSN as BCD, with one leading zero digit when the digit count is odd;
/// the first 16 decimal digits of the hexadecimal SHA-1 of `X` (then, if too few, its
/// `A`–`F` digits decimalised `A→0 … F→5`, in order) form `Y`, which is used as in
/// Option A. Visa CVN 18 specifies this option.
pub fn derive_icc_master_key_option_b(
    issuer_master_key: &DoubleKey,
    pan: &str,
    pan_sequence: u8,
) -> Result<DoubleKey, CryptoError> {
    let digits = pan_and_sequence_digits(pan, pan_sequence)?;
    // The two PSN digits follow the PAN digits.
    if digits.len() <= OPTION_A_MAX_PAN_DIGITS.saturating_add(2) {
        return derive_icc_master_key(issuer_master_key, pan, pan_sequence);
    }
    let mut x = Zeroizing::new(Vec::with_capacity(digits.len().div_ceil(2)));
    let leading_zero = (digits.len() % 2 == 1).then_some(0u8);
    let mut padded = leading_zero.into_iter().chain(digits.iter().copied());
    while let (Some(high), Some(low)) = (padded.next(), padded.next()) {
        x.push((high << 4) | low);
    }
    let hash = Sha1::digest(x.as_slice());
    let nibbles = || hash.iter().flat_map(|byte| [byte >> 4, byte & 0x0F]);
    let decimal = nibbles().filter(|n| *n < 10);
    let decimalised = nibbles().filter(|n| *n >= 10).map(|n| n - 10);
    let mut y = Zeroizing::new([0u8; 16]);
    for (slot, digit) in y.iter_mut().zip(decimal.chain(decimalised)) {
        *slot = digit;
    }
    Ok(master_key_from_digits(issuer_master_key, &y))
}

/// EMV Book 2 A1.3.1, common session key derivation, for any 8-byte diversification
/// value `R`: `SKL = 3DES(MK)[R with byte 3 = F0]`, `SKR = 3DES(MK)[R with byte 3 = 0F]`,
/// adjusted to odd parity.
pub fn derive_session_key(master_key: &DoubleKey, diversification: &[u8; 8]) -> DoubleKey {
    let [r1, r2, _, r4, r5, r6, r7, r8] = *diversification;
    let left = master_key.tdes_encrypt([r1, r2, 0xF0, r4, r5, r6, r7, r8]);
    let right = master_key.tdes_encrypt([r1, r2, 0x0F, r4, r5, r6, r7, r8]);
    join_with_parity(left, right)
}

/// EMV Book 2 A1.3.1 with the diversification value of the application cryptogram key,
/// `R = ATC ‖ 00 00 00 00 00 00`, so the halves encrypt `ATC ‖ F0 00 00 00 00 00` and
/// `ATC ‖ 0F 00 00 00 00 00`.
pub fn derive_common_session_key(icc_master_key: &DoubleKey, atc: u16) -> DoubleKey {
    let [high, low] = atc.to_be_bytes();
    derive_session_key(icc_master_key, &[high, low, 0, 0, 0, 0, 0, 0])
}

/// `ZL = 3DES(IMK)[Y]`, `ZR = 3DES(IMK)[Y ⊕ FF…FF]` from the 16 digits of `Y`.
fn master_key_from_digits(issuer_master_key: &DoubleKey, y_digits: &[u8; 16]) -> DoubleKey {
    let mut y = [0u8; 8];
    for (byte, pair) in y.iter_mut().zip(y_digits.chunks_exact(2)) {
        if let [high, low] = pair {
            *byte = (high << 4) | low;
        }
    }
    let left = issuer_master_key.tdes_encrypt(y);
    let right = issuer_master_key.tdes_encrypt(y.map(|byte| !byte));
    join_with_parity(left, right)
}

/// `left ‖ right`, adjusted to odd parity.
fn join_with_parity(left: [u8; 8], right: [u8; 8]) -> DoubleKey {
    let mut key = Zeroizing::new([0u8; 16]);
    for (slot, byte) in key.iter_mut().zip(left.iter().chain(right.iter())) {
        *slot = *byte;
    }
    DoubleKey::with_odd_parity(key)
}

/// The PAN digits then the two PSN digits, as values 0 to 9, after validation.
fn pan_and_sequence_digits(pan: &str, pan_sequence: u8) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let mut digits = Zeroizing::new(Vec::with_capacity(PAN_MAX_DIGITS.saturating_add(2)));
    let mut count = 0usize;
    for (position, found) in pan.chars().enumerate() {
        let digit = found
            .to_digit(10)
            .ok_or(CryptoError::PanDigit { position, found })?;
        count = position.saturating_add(1);
        // Digits past the longest PAN are only counted, for the error.
        if count <= PAN_MAX_DIGITS {
            // `to_digit(10)` is below 10, so the cast is exact.
            digits.push(digit as u8);
        }
    }
    if !(PAN_MIN_DIGITS..=PAN_MAX_DIGITS).contains(&count) {
        return Err(CryptoError::PanLength { found: count });
    }
    if pan_sequence > 99 {
        return Err(CryptoError::PanSequenceNumber {
            found: pan_sequence,
        });
    }
    digits.push(pan_sequence / 10);
    digits.push(pan_sequence % 10);
    Ok(digits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const IMK: &str = "0123456789ABCDEFFEDCBA9876543210";

    fn imk() -> DoubleKey {
        DoubleKey::from_hex(IMK).unwrap()
    }

    /// One row per malformed PAN or PSN: the exact error, for both options.
    #[test]
    fn bad_pan_or_sequence_number_is_named() {
        let rows: &[(&str, u8, CryptoError)] = &[
            ("", 0, CryptoError::PanLength { found: 0 }),
            ("12345678901", 0, CryptoError::PanLength { found: 11 }),
            (
                "12345678901234567890",
                0,
                CryptoError::PanLength { found: 20 },
            ),
            (
                "4111 1111 1111 1111",
                0,
                CryptoError::PanDigit {
                    position: 4,
                    found: ' ',
                },
            ),
            (
                "411111111111111F",
                0,
                CryptoError::PanDigit {
                    position: 15,
                    found: 'F',
                },
            ),
            (
                "４１１１１１１１１１１１",
                0,
                CryptoError::PanDigit {
                    position: 0,
                    found: '４',
                },
            ),
            (
                "4111111111111111",
                100,
                CryptoError::PanSequenceNumber { found: 100 },
            ),
            (
                "4111111111111111",
                255,
                CryptoError::PanSequenceNumber { found: 255 },
            ),
        ];
        for (pan, psn, expected) in rows {
            assert_eq!(
                derive_icc_master_key(&imk(), pan, *psn)
                    .map(|k| *k.expose())
                    .as_ref(),
                Err(expected),
                "option A, PAN {pan:?} PSN {psn}"
            );
            assert_eq!(
                derive_icc_master_key_option_b(&imk(), pan, *psn)
                    .map(|k| *k.expose())
                    .as_ref(),
                Err(expected),
                "option B, PAN {pan:?} PSN {psn}"
            );
        }
    }

    #[test]
    fn option_a_uses_only_the_rightmost_sixteen_digits() {
        // PAN ‖ PSN = 99 | 01234567890123445: the leading "9" falls outside Y.
        let long = derive_icc_master_key(&imk(), "99012345678901234", 45).unwrap();
        let trimmed = derive_icc_master_key(&imk(), "9012345678901234", 45).unwrap();
        assert_eq!(long.expose(), trimmed.expose());
    }

    #[test]
    fn option_a_left_pads_short_pans_with_zeros() {
        // PAN 123456789012 and PSN 07 make 14 digits, so Y = 00 1234567890 1207: the same
        // Y as the PAN written with two explicit leading zeros.
        let short = derive_icc_master_key(&imk(), "123456789012", 7).unwrap();
        let zero_led = derive_icc_master_key(&imk(), "00123456789012", 7).unwrap();
        assert_eq!(short.expose(), zero_led.expose());
    }

    #[test]
    fn option_b_is_option_a_up_to_sixteen_digits() {
        for pan in ["123456789012", "1234567890123456"] {
            let a = derive_icc_master_key(&imk(), pan, 3).unwrap();
            let b = derive_icc_master_key_option_b(&imk(), pan, 3).unwrap();
            assert_eq!(a.expose(), b.expose(), "PAN {pan}");
        }
        let a = derive_icc_master_key(&imk(), "12345678901234567", 3).unwrap();
        let b = derive_icc_master_key_option_b(&imk(), "12345678901234567", 3).unwrap();
        assert_ne!(a.expose(), b.expose());
    }

    #[test]
    fn session_key_ignores_byte_three_of_r() {
        // A1.3.1 overwrites byte 3 of R, so R values differing only there give one key.
        let mk = imk();
        let a = derive_session_key(&mk, &[0x12, 0x34, 0x00, 0x78, 0x90, 0x12, 0x34, 0x56]);
        let b = derive_session_key(&mk, &[0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x34, 0x56]);
        assert_eq!(a.expose(), b.expose());
        let by_atc = derive_common_session_key(&mk, 0x1234);
        let by_r = derive_session_key(&mk, &[0x12, 0x34, 0, 0, 0, 0, 0, 0]);
        assert_eq!(by_atc.expose(), by_r.expose());
    }

    fn pan_strategy() -> impl Strategy<Value = String> {
        proptest::string::string_regex("[0-9]{12,19}").unwrap()
    }

    proptest! {
        #[test]
        fn derived_master_keys_have_odd_parity(
            imk in any::<[u8; 16]>(),
            pan in pan_strategy(),
            psn in 0u8..=99,
        ) {
            let imk = DoubleKey::new(imk);
            prop_assert!(derive_icc_master_key(&imk, &pan, psn).unwrap().has_odd_parity());
            let option_b = derive_icc_master_key_option_b(&imk, &pan, psn).unwrap();
            prop_assert!(option_b.has_odd_parity());
        }

        #[test]
        fn derived_session_keys_have_odd_parity(
            mk in any::<[u8; 16]>(),
            atc in any::<u16>(),
            r in any::<[u8; 8]>(),
        ) {
            let mk = DoubleKey::new(mk);
            prop_assert!(derive_common_session_key(&mk, atc).has_odd_parity());
            prop_assert!(derive_session_key(&mk, &r).has_odd_parity());
        }

        #[test]
        fn derivation_never_panics_on_any_text(pan in ".{0,40}", psn in any::<u8>()) {
            let imk = DoubleKey::new([0x5A; 16]);
            let a = derive_icc_master_key(&imk, &pan, psn);
            let b = derive_icc_master_key_option_b(&imk, &pan, psn);
            prop_assert_eq!(a.is_ok(), b.is_ok());
        }
    }
}
