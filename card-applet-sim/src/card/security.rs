//! Cardholder verification and the card's own security functions: VERIFY with a
//! plaintext offline PIN checked inside the card, GET CHALLENGE, and PERFORM SECURITY
//! OPERATION: COMPUTE DIGITAL SIGNATURE with the card's ECDSA P-256 key.

use p256::ecdsa::{Signature, signature::Signer};
use zeroize::Zeroizing;

use super::apdu::{Apdu, Sw};
use super::emv::constant_time_eq;
use super::{Phase, SimCard};

/// VERIFY P2 for a plaintext PIN (EMV Book 3 §6.5.12, table 23).
const P2_PLAINTEXT_PIN: u8 = 0x80;
/// The length of an ISO 9564 PIN block.
const PIN_BLOCK_LEN: usize = 8;

/// Reads an ISO 9564-1 format 2 PIN block (EMV Book 3 §6.5.12.3): control nibble `2`, PIN
/// length 4 to 12, the PIN digits, `F` filler to 16 nibbles. `None` when malformed.
fn parse_pin_block(block: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let block: &[u8; PIN_BLOCK_LEN] = block.try_into().ok()?;
    // The nibbles on the stack, wiped when dropped: only the digits get a heap copy.
    let mut nibbles: Zeroizing<[u8; 2 * PIN_BLOCK_LEN]> = Zeroizing::new([0; 2 * PIN_BLOCK_LEN]);
    for (pair, byte) in nibbles.chunks_exact_mut(2).zip(block) {
        if let [high, low] = pair {
            *high = byte >> 4;
            *low = byte & 0x0F;
        }
    }
    let (&control, rest) = nibbles.split_first()?;
    let (&length, rest) = rest.split_first()?;
    let length = usize::from(length);
    if control != 0x2 || !(4..=12).contains(&length) {
        return None;
    }
    let (digits, filler) = rest.split_at_checked(length)?;
    if digits.iter().any(|d| *d > 9) || filler.iter().any(|f| *f != 0xF) {
        return None;
    }
    Some(Zeroizing::new(digits.to_vec()))
}

impl SimCard {
    /// VERIFY (ISO 7816-4 §11.5.6, EMV Book 3 §6.5.12): `00 20 00 80 08 <PIN block>`.
    ///
    /// The card compares the PIN itself. Right PIN: `9000`, the try counter back to the
    /// limit. Wrong PIN: the counter drops by one and is written before the answer,
    /// `63Cx` with the tries left, or `6983` when that was the last try. A blocked PIN
    /// answers `6983` without looking at the block. `00 20 00 80` without data asks for
    /// the counter: `63Cx`, or `9000` if already verified. VERIFY belongs after GET
    /// PROCESSING OPTIONS and before the first GENERATE AC (`6985` otherwise); enciphered
    /// PINs (P2 `88`) are not supported (`6A86`).
    pub(super) fn verify(&mut self, apdu: &Apdu<'_>) -> Result<Vec<u8>, Sw> {
        if apdu.p1 != 0x00 || apdu.p2 != P2_PLAINTEXT_PIN {
            return Err(Sw::WRONG_P1P2);
        }
        self.selected_application()?;
        if apdu.data.is_empty() && apdu.ne.is_none() {
            // ISO 7816-4 §11.5.6: an empty data field asks for the retry counter.
            return match self.state.pin_tries_left {
                0 => Err(Sw::AUTH_BLOCKED),
                _ if self.session.pin_verified => Ok(Vec::new()),
                n => Err(Sw::tries_left(n)),
            };
        }
        if apdu.data.len() != PIN_BLOCK_LEN || apdu.ne.is_some() {
            return Err(Sw::WRONG_LENGTH);
        }
        if self.session.phase != Phase::Initiated {
            return Err(Sw::CONDITIONS);
        }
        if self.state.pin_tries_left == 0 {
            return Err(Sw::AUTH_BLOCKED);
        }
        let offered = parse_pin_block(apdu.data).ok_or(Sw::WRONG_DATA)?;
        self.session.pin.tried = true;
        if constant_time_eq(&offered, self.profile.pin().digits()) {
            self.session.pin.failed = false;
            self.session.pin_verified = true;
            let limit = self.profile.pin_try_limit();
            if self.state.pin_tries_left != limit {
                self.state.pin_tries_left = limit;
                if let Err(sw) = self.persist() {
                    self.session.pin_verified = false;
                    return Err(sw);
                }
            }
            Ok(Vec::new())
        } else {
            self.session.pin.failed = true;
            self.session.pin_verified = false;
            let left = self.state.pin_tries_left.saturating_sub(1);
            self.state.pin_tries_left = left;
            // The decrement must be durable before the terminal learns the PIN was wrong,
            // or pulling the card would give free tries.
            self.persist()?;
            if left == 0 {
                Err(Sw::AUTH_BLOCKED)
            } else {
                Err(Sw::tries_left(left))
            }
        }
    }

    /// GET CHALLENGE (ISO 7816-4 §11.5.3, EMV Book 3 §6.5.6): `00 84 00 00 00` answers
    /// 8 random bytes from the card's random source.
    pub(super) fn get_challenge(&mut self, apdu: &Apdu<'_>) -> Result<Vec<u8>, Sw> {
        if apdu.p1p2() != 0 {
            return Err(Sw::WRONG_P1P2);
        }
        if !apdu.data.is_empty() || apdu.ne.is_none() {
            return Err(Sw::WRONG_LENGTH);
        }
        let mut challenge = vec![0u8; 8];
        self.random.fill(&mut challenge);
        Ok(challenge)
    }

    /// PERFORM SECURITY OPERATION: COMPUTE DIGITAL SIGNATURE (ISO 7816-8 §11.4):
    /// `00 2A 9E 9A Lc <data> 00`. The card hashes the data with SHA-256 and signs with
    /// its ECDSA P-256 key, RFC 6979 deterministic nonces; the answer is the signature as
    /// `r || s` (64 bytes). Only after a successful VERIFY in the current selection of the
    /// application (`6982` otherwise).
    pub(super) fn perform_security_operation(&mut self, apdu: &Apdu<'_>) -> Result<Vec<u8>, Sw> {
        // P1 9E: a digital signature data object is returned; P2 9A: the data field holds
        // the data to be signed.
        if apdu.p1p2() != 0x9E9A {
            return Err(Sw::WRONG_P1P2);
        }
        if apdu.data.is_empty() {
            return Err(Sw::WRONG_LENGTH);
        }
        if !self.session.pin_verified {
            return Err(Sw::SECURITY_STATUS);
        }
        let signature: Signature = self.profile.signing_key().sign(apdu.data);
        Ok(signature.to_bytes().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_blocks() {
        let cases: [(&str, Option<&[u8]>); 8] = [
            ("241234FFFFFFFFFF", Some(&[1, 2, 3, 4])),
            (
                "2C123456789012FF",
                Some(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2]),
            ),
            ("26123456FFFFFFFF", Some(&[1, 2, 3, 4, 5, 6])),
            ("141234FFFFFFFFFF", None), // control nibble 1 (format 1)
            ("231234FFFFFFFFFF", None), // length 3
            ("2D1234567890123F", None), // length 13
            ("24123AFFFFFFFFFF", None), // digit A
            ("241234FFFFFFFFF0", None), // filler not F
        ];
        for (block, expected) in cases {
            let bytes = hex::decode(block).unwrap();
            let got = parse_pin_block(&bytes);
            assert_eq!(got.as_deref().map(|v| v.as_slice()), expected, "{block}");
        }
    }
}
