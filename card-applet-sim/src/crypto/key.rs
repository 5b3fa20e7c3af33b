//! Double-length DES keys: the key type of every EMV algorithm here, its odd-parity rule,
//! its check value, and the block-cipher primitives built from it.

use core::fmt;

use des::cipher::{Array, BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};
use des::{Des, TdesEde2};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::CryptoError;

/// A double-length (16-byte) DES key, used as two-key triple DES (EDE, K1 ‖ K2).
///
/// `Debug` prints `DoubleKey(..)` and never the key; the bytes are zeroized on drop, and
/// so is every clone.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct DoubleKey([u8; 16]);

impl DoubleKey {
    /// Wraps 16 key bytes, taken as they are (parity is not checked: DES ignores the
    /// parity bits, and issuers' test keys often have even parity).
    pub fn new(bytes: [u8; 16]) -> DoubleKey {
        DoubleKey(bytes)
    }

    /// Parses exactly 32 hexadecimal digits (either case, no separators).
    ///
    /// The error names the position of the first bad character, or the length; it never
    /// repeats the text, which is key material.
    pub fn from_hex(hex: &str) -> Result<DoubleKey, CryptoError> {
        // The partial key lives in a wiped buffer so that an error path leaves nothing.
        let mut bytes = Zeroizing::new([0u8; 16]);
        let mut count = 0usize;
        for (position, found) in hex.chars().enumerate() {
            let nibble = found
                .to_digit(16)
                .ok_or(CryptoError::KeyHexDigit { position, found })?;
            if let Some(byte) = bytes.get_mut(position / 2) {
                // `to_digit(16)` is below 16, so the cast is exact.
                *byte = (*byte << 4) | nibble as u8;
            }
            count = position.saturating_add(1);
        }
        if count != 32 {
            return Err(CryptoError::KeyHexLength { found: count });
        }
        Ok(DoubleKey(*bytes))
    }

    /// The key bytes, for derivations, personalisation and tests. Copy them only into
    /// buffers that are zeroized in turn.
    pub fn expose(&self) -> &[u8; 16] {
        &self.0
    }

    /// The key check value: the first three bytes of the key's triple-DES encryption of
    /// eight zero bytes (the usual KCV of ANSI X9.24 practice). It identifies a key in
    /// logs and personalisation files without revealing it.
    pub fn check_value(&self) -> [u8; 3] {
        let [a, b, c, ..] = self.tdes_encrypt([0u8; 8]);
        [a, b, c]
    }

    /// Whether every byte has odd parity (an odd number of bits set): the DES key
    /// convention (FIPS 46-3), which every derivation here produces.
    pub fn has_odd_parity(&self) -> bool {
        self.0.iter().all(|byte| byte.count_ones() % 2 == 1)
    }

    /// Builds a key from derivation output, flipping the least significant bit of each
    /// byte that has even parity. DES ignores that bit, so no cryptogram depends on it,
    /// but the stored key then has the form HSMs and pyemv produce and check.
    pub(crate) fn with_odd_parity(mut bytes: Zeroizing<[u8; 16]>) -> DoubleKey {
        for byte in bytes.iter_mut() {
            if byte.count_ones() % 2 == 0 {
                *byte ^= 0x01;
            }
        }
        DoubleKey(*bytes)
    }

    /// Triple-DES (EDE2) encryption of one block: EMV Book 2 A1.1 with a double-length key.
    pub(crate) fn tdes_encrypt(&self, block: [u8; 8]) -> [u8; 8] {
        let mut key = Array::from(self.0);
        let cipher = TdesEde2::new(&key);
        wipe(&mut key);
        let mut block = Array::from(block);
        cipher.encrypt_block(&mut block);
        block.into()
    }

    /// The two single-DES ciphers keyed with the left and the right half, for the MAC of
    /// ISO/IEC 9797-1 algorithm 3.
    pub(crate) fn single_des_halves(&self) -> (SingleDes, SingleDes) {
        // Filled in place, then wiped, so no stray copy of a half outlives the ciphers.
        let mut left = Array::from([0u8; 8]);
        let mut right = Array::from([0u8; 8]);
        for (slot, byte) in left.iter_mut().zip(self.0.iter()) {
            *slot = *byte;
        }
        for (slot, byte) in right.iter_mut().zip(self.0.iter().skip(8)) {
            *slot = *byte;
        }
        let halves = (SingleDes(Des::new(&left)), SingleDes(Des::new(&right)));
        wipe(&mut left);
        wipe(&mut right);
        halves
    }
}

impl fmt::Debug for DoubleKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DoubleKey(..)")
    }
}

/// Single DES keyed with one half of a [`DoubleKey`].
pub(crate) struct SingleDes(Des);

impl SingleDes {
    /// Encrypts one block in place.
    pub(crate) fn encrypt(&self, block: &mut [u8; 8]) {
        let mut array = Array::from(*block);
        self.0.encrypt_block(&mut array);
        *block = array.into();
    }

    /// Decrypts one block in place.
    pub(crate) fn decrypt(&self, block: &mut [u8; 8]) {
        let mut array = Array::from(*block);
        self.0.decrypt_block(&mut array);
        *block = array.into();
    }
}

/// Wipes a temporary copy of key bytes.
fn wipe(bytes: &mut [u8]) {
    bytes.zeroize();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One row per malformed text: the exact error expected.
    #[test]
    fn from_hex_rejects_malformed_text() {
        let rows: &[(&str, CryptoError)] = &[
            ("", CryptoError::KeyHexLength { found: 0 }),
            (
                "0123456789ABCDEFFEDCBA987654321",
                CryptoError::KeyHexLength { found: 31 },
            ),
            (
                "0123456789ABCDEFFEDCBA98765432100",
                CryptoError::KeyHexLength { found: 33 },
            ),
            (
                "0123456789ABCDEG",
                CryptoError::KeyHexDigit {
                    position: 15,
                    found: 'G',
                },
            ),
            (
                " 0123456789ABCDEFFEDCBA9876543210",
                CryptoError::KeyHexDigit {
                    position: 0,
                    found: ' ',
                },
            ),
            (
                "0123456789ABCDEF-FEDCBA9876543210",
                CryptoError::KeyHexDigit {
                    position: 16,
                    found: '-',
                },
            ),
            (
                "0123456789ABCDEFFEDCBA987654321é",
                CryptoError::KeyHexDigit {
                    position: 31,
                    found: 'é',
                },
            ),
        ];
        for (text, expected) in rows {
            assert_eq!(
                DoubleKey::from_hex(text).map(|k| *k.expose()).as_ref(),
                Err(expected),
                "input {text:?}"
            );
        }
    }

    #[test]
    fn from_hex_accepts_both_cases() {
        let upper = DoubleKey::from_hex("0123456789ABCDEFFEDCBA9876543210").unwrap();
        let lower = DoubleKey::from_hex("0123456789abcdeffedcba9876543210").unwrap();
        assert_eq!(upper.expose(), lower.expose());
        assert_eq!(
            upper.expose(),
            &[
                0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF, 0xFE, 0xDC, 0xBA, 0x98, 0x76, 0x54,
                0x32, 0x10
            ]
        );
    }

    #[test]
    fn debug_hides_the_key() {
        let key = DoubleKey::from_hex("0123456789ABCDEFFEDCBA9876543210").unwrap();
        assert_eq!(format!("{key:?}"), "DoubleKey(..)");
        assert_eq!(format!("{:?}", Some(key.clone())), "Some(DoubleKey(..))");
    }

    #[test]
    fn check_value_of_the_classic_test_key() {
        // pyemv 1.5.0 tools.key_check_digits docstring: 0123…3210 has check digits 08D7.
        let key = DoubleKey::from_hex("0123456789ABCDEFFEDCBA9876543210").unwrap();
        assert_eq!(key.check_value()[..2], [0x08, 0xD7]);
    }

    #[test]
    fn parity_adjustment_flips_only_the_low_bit_of_even_bytes() {
        // pyemv 1.5.0 tools.adjust_key_parity docstring example.
        let raw = DoubleKey::from_hex("1A2B3C4D5F0A1B2C4D5F6A7B8C9D0F1A").unwrap();
        assert!(!raw.has_odd_parity());
        let adjusted = DoubleKey::with_odd_parity(Zeroizing::new(*raw.expose()));
        assert_eq!(
            hex::encode_upper(adjusted.expose()),
            "1A2A3D4C5E0B1A2C4C5E6B7A8C9D0E1A"
        );
        assert!(adjusted.has_odd_parity());
    }

    #[test]
    fn zeroize_clears_the_bytes() {
        let mut key = DoubleKey::new([0xA5; 16]);
        key.zeroize();
        assert_eq!(key.expose(), &[0u8; 16]);
    }
}
