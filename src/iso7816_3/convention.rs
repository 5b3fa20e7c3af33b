//! Direct and inverse convention (ISO 7816-3 §8.1), character by character.
//!
//! A UART reads the line in direct convention: high level is 1, least significant bit
//! first. A card in inverse convention sends low level for 1, most significant bit
//! first; a direct-convention UART therefore reads each of its characters bit-reversed
//! and complemented — its TS `3F` arrives as `03`. Decoding is that same operation
//! again (it is an involution), so one function encodes and decodes.

pub use crate::atr::Convention;

/// TS as a direct-convention UART reads it from a direct-convention card.
pub const TS_DIRECT: u8 = 0x3B;
/// TS as a direct-convention UART reads it from an inverse-convention card (the `3F`
/// of the standard, reversed and complemented).
pub const TS_INVERSE_AS_READ: u8 = 0x03;

/// One character converted between what the UART reads (or writes) in direct
/// convention and its value in inverse convention; its own inverse.
pub fn invert(byte: u8) -> u8 {
    !byte.reverse_bits()
}

/// Characters as they are on the line, from their values (`Direct`: unchanged).
pub fn encode(convention: Convention, bytes: &mut [u8]) {
    if convention == Convention::Inverse {
        bytes.iter_mut().for_each(|byte| *byte = invert(*byte));
    }
}

/// Characters' values, from what the UART read (`Direct`: unchanged).
pub fn decode(convention: Convention, bytes: &mut [u8]) {
    // The inverse-convention mapping is an involution.
    encode(convention, bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// §8.1: TS `3F` in inverse convention is read `03` by a direct UART.
    #[test]
    fn inverse_ts_reads_as_03() {
        assert_eq!(invert(0x3F), TS_INVERSE_AS_READ);
        assert_eq!(invert(TS_INVERSE_AS_READ), 0x3F);
    }

    #[test]
    fn inversion_is_an_involution() {
        for byte in 0..=u8::MAX {
            assert_eq!(invert(invert(byte)), byte);
        }
    }

    #[test]
    fn direct_convention_leaves_bytes_alone() {
        let mut bytes = [0x3B, 0x00, 0xFF];
        decode(Convention::Direct, &mut bytes);
        assert_eq!(bytes, [0x3B, 0x00, 0xFF]);
        let mut bytes = [0x3F, 0x00, 0xFF];
        encode(Convention::Inverse, &mut bytes);
        assert_eq!(bytes, [0x03, 0xFF, 0x00]);
    }
}
