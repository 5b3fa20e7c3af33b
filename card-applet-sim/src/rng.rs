//! Injectable randomness for the card: the operating system's generator for real use,
//! and a seedable, deterministic generator so that whole card dialogues (GET CHALLENGE
//! answers included) can be snapshot-tested byte for byte.
//!
//! ECDSA signatures do not draw from here: the card signs with RFC 6979 deterministic
//! nonces, so a signature depends only on the key and the message.

use sha2::{Digest, Sha256};
use zeroize::Zeroize;

/// A source of random bytes for the card (GET CHALLENGE, ISO 7816-4 §11.5.3).
///
/// `Send` so that a [`crate::card::SimCard`] can move to the thread that serves it.
pub trait RandomSource: Send {
    /// Fills `out` entirely with random bytes.
    fn fill(&mut self, out: &mut [u8]);
}

/// Randomness from the operating system (`getrandom`).
#[derive(Debug, Default, Clone, Copy)]
pub struct OsRandom;

impl RandomSource for OsRandom {
    fn fill(&mut self, out: &mut [u8]) {
        if getrandom::fill(out).is_err() {
            // The OS generator failing is not an input the card can act on, and the card
            // must not panic; fall back to a generator keyed by the clock and the address
            // of `out`. Better than returning predictable zeros, and it never happens on
            // the platforms this crate targets.
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default();
            let mut fallback = SeededRandom::new((nanos as u64) ^ (out.as_ptr() as u64));
            fallback.fill(out);
        }
    }
}

/// A deterministic generator: SHA-256 in counter mode over a 64-bit seed.
///
/// Block `i` is `SHA-256("card-applet-sim/SeededRandom" || seed (8 bytes, big-endian) ||
/// i (8 bytes, big-endian))`; the output is the blocks concatenated. Two generators with
/// the same seed produce the same stream, whatever the sizes of the `fill` calls.
///
/// **Not for production**: a 64-bit seed is guessable. It exists so that tests and
/// recorded dialogues are reproducible.
#[derive(Clone)]
pub struct SeededRandom {
    seed: u64,
    counter: u64,
    block: [u8; 32],
    used: usize,
}

impl SeededRandom {
    /// Domain separation for the hash, so that this stream matches no other use of SHA-256.
    const LABEL: &'static [u8] = b"card-applet-sim/SeededRandom";

    /// A generator whose whole output is determined by `seed`.
    pub fn new(seed: u64) -> Self {
        SeededRandom {
            seed,
            counter: 0,
            block: [0; 32],
            // Start "exhausted" so the first byte comes from block 0.
            used: 32,
        }
    }

    fn next_block(&mut self) {
        let mut hasher = Sha256::new();
        hasher.update(Self::LABEL);
        hasher.update(self.seed.to_be_bytes());
        hasher.update(self.counter.to_be_bytes());
        self.block.copy_from_slice(&hasher.finalize());
        self.counter = self.counter.wrapping_add(1);
        self.used = 0;
    }
}

impl RandomSource for SeededRandom {
    fn fill(&mut self, out: &mut [u8]) {
        for byte in out.iter_mut() {
            if self.used >= self.block.len() {
                self.next_block();
            }
            *byte = self.block.get(self.used).copied().unwrap_or_default();
            self.used += 1;
        }
    }
}

impl std::fmt::Debug for SeededRandom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The seed determines every future output: do not print it.
        f.debug_struct("SeededRandom").finish_non_exhaustive()
    }
}

impl Drop for SeededRandom {
    fn drop(&mut self) {
        self.seed.zeroize();
        self.block.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_whatever_the_chunking() {
        let mut a = SeededRandom::new(42);
        let mut whole = [0u8; 100];
        a.fill(&mut whole);

        let mut b = SeededRandom::new(42);
        let mut parts = [0u8; 100];
        let (first, rest) = parts.split_at_mut(7);
        b.fill(first);
        let (second, third) = rest.split_at_mut(40);
        b.fill(second);
        b.fill(third);
        assert_eq!(whole, parts);
    }

    #[test]
    fn first_block_is_the_documented_hash() {
        let mut expected = Sha256::new();
        expected.update(b"card-applet-sim/SeededRandom");
        expected.update(7u64.to_be_bytes());
        expected.update(0u64.to_be_bytes());
        let expected = expected.finalize();
        let mut got = [0u8; 32];
        SeededRandom::new(7).fill(&mut got);
        assert_eq!(got.as_slice(), expected.as_slice());
    }

    #[test]
    fn different_seeds_differ() {
        let mut a = [0u8; 16];
        let mut b = [0u8; 16];
        SeededRandom::new(1).fill(&mut a);
        SeededRandom::new(2).fill(&mut b);
        assert_ne!(a, b);
    }

    #[test]
    fn os_random_fills() {
        let mut a = [0u8; 32];
        let mut b = [0u8; 32];
        OsRandom.fill(&mut a);
        OsRandom.fill(&mut b);
        assert_ne!(a, b, "two 256-bit OS draws collided");
    }

    #[test]
    fn debug_hides_the_seed() {
        let text = format!("{:?}", SeededRandom::new(123_456_789));
        assert!(!text.contains("123456789"));
    }
}
