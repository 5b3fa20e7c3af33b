//! The EMV symmetric cryptography of the card and of the acquirer: the one copy.
//!
//! The simulated card's payment applet and telepay's acquirer both call these functions,
//! so an ARQC the card computes is verified by the very same code; the independent check
//! is the cross-test against `pyemv` (`tests/crypto_pyemv.rs`) and the known-answer
//! vectors in `tests/vectors/emv_crypto.txt`.
//!
//! What each function implements (clauses of EMV 4.3 Book 2, Annex A unless said
//! otherwise):
//!
//! | function | clause |
//! |---|---|
//! | [`retail_mac`], [`Padding`] | A1.2 MAC with a 64-bit block cipher = ISO/IEC 9797-1 MAC algorithm 3 (single DES CBC, output transformation 3), padding methods 1 and 2 |
//! | [`derive_icc_master_key`] | A1.4.1 master key derivation, Option A (PAN ‖ PSN, rightmost 16 digits) |
//! | [`derive_icc_master_key_option_b`] | A1.4.2 master key derivation, Option B (SHA-1 and decimalisation for PANs of 17–19 digits) |
//! | [`derive_session_key`], [`derive_common_session_key`] | A1.3.1 common session key derivation (R = ATC ‖ 00…00 for the AC key) |
//! | [`application_cryptogram`], [`ac_input_data`] | §8.1 application cryptogram generation, §8.1.1 data selection; Visa CVN 10 and CVN 18 key, padding and layout |
//! | [`arpc_method1`] | §8.2.1 ARPC method 1: 3DES(ARQC ⊕ (ARC ‖ 00…00)) |
//! | [`arpc_method2`] | §8.2.2 ARPC method 2: MAC over ARQC ‖ CSU ‖ proprietary data, 4 bytes |
//!
//! Keys are [`DoubleKey`] values: Debug never prints them and they are wiped on drop.
//! Functions whose inputs come from outside (hex text, PAN digits, issuer data lengths)
//! return a [`CryptoError`] naming the input, the position and what was expected; the
//! others are total over their typed inputs and never panic.

mod cryptogram;
mod derive;
mod key;
mod mac;

pub use cryptogram::{
    AcInput, CryptogramVersion, ac_input_data, application_cryptogram, arpc_method1,
    arpc_method1_with_key, arpc_method2, arpc_method2_with_key, try_ac_input_data,
};
pub use derive::{
    derive_common_session_key, derive_icc_master_key, derive_icc_master_key_option_b,
    derive_session_key,
};
pub use key::DoubleKey;
pub use mac::{Padding, retail_mac};

/// Everything that can be wrong with an input to the EMV algorithms.
///
/// No variant carries key material or a PAN: a rejected key or PAN is described by its
/// length or by the offending character (which, not being a valid digit, reveals
/// nothing of the secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// A hexadecimal key text holds a character that is not a hex digit.
    #[error("key hex: character {found:?} at position {position} is not a hex digit")]
    KeyHexDigit {
        /// Zero-based index of the character in the text.
        position: usize,
        /// The character found there.
        found: char,
    },
    /// A hexadecimal key text does not have exactly 32 hex digits (16 bytes).
    #[error("key hex: expected 32 hex digits (a double-length key), got {found} characters")]
    KeyHexLength {
        /// Number of characters received.
        found: usize,
    },
    /// A PAN holds a character that is not an ASCII decimal digit.
    #[error("PAN: character {found:?} at position {position} is not a decimal digit")]
    PanDigit {
        /// Zero-based index of the character in the PAN.
        position: usize,
        /// The character found there.
        found: char,
    },
    /// A PAN is shorter than 12 or longer than 19 digits (ISO/IEC 7812-1).
    #[error("PAN: expected 12 to 19 digits, got {found}")]
    PanLength {
        /// Number of characters received.
        found: usize,
    },
    /// A PAN sequence number (tag 5F34) is not a two-digit decimal value.
    #[error("PAN sequence number: expected 0 to 99, got {found}")]
    PanSequenceNumber {
        /// The value received.
        found: u8,
    },
    /// The Issuer Application Data (9F10) is too short to hold the field a cryptogram
    /// version reads from it (the CVR for Visa CVN 10).
    #[error("issuer application data (9F10): expected at least {expected} bytes, got {found}")]
    IssuerApplicationDataTooShort {
        /// Minimum length the cryptogram version needs.
        expected: usize,
        /// Length received.
        found: usize,
    },
    /// The proprietary authentication data of ARPC method 2 is longer than 8 bytes
    /// (EMV Book 2 §8.2.2).
    #[error("proprietary authentication data: expected 0 to 8 bytes, got {found}")]
    ProprietaryAuthenticationDataLength {
        /// Length received.
        found: usize,
    },
}
