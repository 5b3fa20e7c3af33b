//! ISO/IEC 9797-1 MAC algorithm 3 (the "retail MAC" of ANSI X9.19) with padding methods
//! 1 and 2: the MAC of EMV Book 2 A1.2.1 behind every cryptogram of this crate.

use super::DoubleKey;

/// Padding applied to the data before a MAC (ISO/IEC 9797-1 §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Padding {
    /// Padding method 1: zero bytes up to a multiple of 8; none when the data is already
    /// aligned, except that empty data becomes one zero block (the padded string must be
    /// a *positive* multiple of the block length). Visa CVN 10 uses it (VIS zero padding).
    Method1,
    /// Padding method 2: one `0x80` byte, then zero bytes up to a multiple of 8, always
    /// (so aligned data gains a whole block). EMV Book 2 A1.2.1 and §8.1.2; CVN 18.
    Method2,
}

impl Padding {
    /// The padded data, as the MAC sees it; always a non-zero multiple of 8 bytes long.
    pub fn apply(self, data: &[u8]) -> Vec<u8> {
        let mut padded = Vec::with_capacity(data.len().saturating_add(8));
        let mut blocks = data.chunks_exact(8);
        for block in &mut blocks {
            padded.extend_from_slice(block);
        }
        if let Some(tail) = self.final_block(blocks.remainder(), data.is_empty()) {
            padded.extend_from_slice(&tail);
        }
        padded
    }

    /// The block that padding appends after the whole blocks of the data, if any.
    /// `remainder` holds the 0 to 7 trailing bytes that do not fill a block.
    fn final_block(self, remainder: &[u8], data_is_empty: bool) -> Option<[u8; 8]> {
        let aligned = remainder.is_empty();
        if self == Padding::Method1 && aligned && !data_is_empty {
            return None;
        }
        let mut block = [0u8; 8];
        for (slot, byte) in block.iter_mut().zip(remainder) {
            *slot = *byte;
        }
        if self == Padding::Method2 {
            // The remainder is at most 7 bytes, so the marker always has a slot.
            if let Some(marker) = block.get_mut(remainder.len()) {
                *marker = 0x80;
            }
        }
        Some(block)
    }
}

/// ISO/IEC 9797-1 MAC algorithm 3 with a double-length key (EMV Book 2 A1.2.1):
/// the padded data is chained through single DES in CBC mode under the left half `KL`
/// (initial transformation 1, zero IV), then output transformation 3 computes
/// `G = DES(KL)[DES⁻¹(KR)[H]]`, so the last block in effect goes through triple DES.
/// The full 8-byte MAC is returned; callers truncate when a format says so.
///
/// Total over every input: any data length, including empty, is accepted.
pub fn retail_mac(key: &DoubleKey, data: &[u8], padding: Padding) -> [u8; 8] {
    let (left, right) = key.single_des_halves();
    let mut chain = [0u8; 8];
    let mut blocks = data.chunks_exact(8);
    for block in &mut blocks {
        xor_into(&mut chain, block);
        left.encrypt(&mut chain);
    }
    if let Some(last) = padding.final_block(blocks.remainder(), data.is_empty()) {
        xor_into(&mut chain, &last);
        left.encrypt(&mut chain);
    }
    // Output transformation 3 (ISO/IEC 9797-1 §7.2.3).
    right.decrypt(&mut chain);
    left.encrypt(&mut chain);
    chain
}

/// `chain ^= block`, over the shorter of the two (always 8 bytes here).
pub(crate) fn xor_into(chain: &mut [u8; 8], block: &[u8]) {
    for (c, b) in chain.iter_mut().zip(block) {
        *c ^= *b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn unhex(text: &str) -> Vec<u8> {
        hex::decode(text).unwrap()
    }

    /// One row per data length class: padding method 1 and method 2 outputs.
    #[test]
    fn padding_table() {
        let rows: &[(&str, &str, &str)] = &[
            // data, method 1, method 2
            ("", "0000000000000000", "8000000000000000"),
            ("12", "1200000000000000", "1280000000000000"),
            ("11223344556677", "1122334455667700", "1122334455667780"),
            (
                "1122334455667788",
                "1122334455667788",
                "11223344556677888000000000000000",
            ),
            (
                "112233445566778899",
                "11223344556677889900000000000000",
                "11223344556677889980000000000000",
            ),
        ];
        for (data, method1, method2) in rows {
            assert_eq!(
                hex::encode_upper(Padding::Method1.apply(&unhex(data))),
                *method1,
                "method 1 of {data}"
            );
            assert_eq!(
                hex::encode_upper(Padding::Method2.apply(&unhex(data))),
                *method2,
                "method 2 of {data}"
            );
        }
    }

    /// The streaming MAC must equal a plain CBC over the explicitly padded data.
    fn reference_mac(key: &DoubleKey, data: &[u8], padding: Padding) -> [u8; 8] {
        let (left, right) = key.single_des_halves();
        let mut chain = [0u8; 8];
        for block in padding.apply(data).chunks(8) {
            xor_into(&mut chain, block);
            left.encrypt(&mut chain);
        }
        right.decrypt(&mut chain);
        left.encrypt(&mut chain);
        chain
    }

    fn padding_strategy() -> impl Strategy<Value = Padding> {
        prop_oneof![Just(Padding::Method1), Just(Padding::Method2)]
    }

    proptest! {
        #[test]
        fn mac_never_panics_and_matches_padded_cbc(
            key in any::<[u8; 16]>(),
            data in proptest::collection::vec(any::<u8>(), 0..200),
            padding in padding_strategy(),
        ) {
            let key = DoubleKey::new(key);
            prop_assert_eq!(retail_mac(&key, &data, padding), reference_mac(&key, &data, padding));
        }

        #[test]
        fn padding_is_a_positive_block_multiple_that_keeps_the_data(
            data in proptest::collection::vec(any::<u8>(), 0..64),
            padding in padding_strategy(),
        ) {
            let padded = padding.apply(&data);
            prop_assert!(!padded.is_empty());
            prop_assert_eq!(padded.len() % 8, 0);
            prop_assert!(padded.len() - data.len() <= 8);
            prop_assert_eq!(&padded[..data.len()], &data[..]);
            match padding {
                Padding::Method1 => prop_assert!(padded[data.len()..].iter().all(|b| *b == 0)),
                Padding::Method2 => {
                    prop_assert_eq!(padded[data.len()], 0x80);
                    prop_assert!(padded[data.len() + 1..].iter().all(|b| *b == 0));
                }
            }
        }
    }
}
