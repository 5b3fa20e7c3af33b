//! Command and response APDUs (ISO/IEC 7816-3 §12.1, ISO/IEC 7816-4 §5.1–§5.6).
//!
//! - [`Command`]: an owned command APDU, also usable as a builder
//!   (`Command::new(..).with_data(..)?.with_le(..)?`), encoded in the shortest valid
//!   form or in a chosen [`Encoding`].
//! - [`CommandView`]: a borrowed, zero-copy view of an encoded command, parsed with
//!   every length case checked ([`Case`]).
//! - [`Response`]: response data and the trailing [`StatusWord`].
//! - [`StatusWord`]: every ISO 7816-4 and EMV status word decoded to its meaning.
//! - [`instruction_name`] and [`ins`]: the ISO 7816-4 and EMV instruction bytes.
//! - [`ApduError`]: why some bytes are not a valid APDU, naming the byte offset.

mod command;
mod instruction;
mod response;
mod status;

use std::fmt;

pub use command::{Command, CommandView};
pub use instruction::{ins, instruction_name};
pub use response::Response;
pub use status::StatusWord;

/// Largest command data field, Nc (ISO 7816-4 §5.1: extended Lc encodes 1 to 65 535).
pub const MAX_DATA_LEN: usize = 65_535;
/// Largest expected response length, Ne (ISO 7816-4 §5.1: extended Le `0000` means 65 536).
pub const MAX_NE: usize = 65_536;
/// Largest data field a short Lc can announce (one byte, 1 to 255).
pub const MAX_SHORT_DATA_LEN: usize = 255;
/// Largest Ne a short Le can encode (`00` means 256).
pub const MAX_SHORT_NE: usize = 256;
/// Length of the command header CLA INS P1 P2.
pub const HEADER_LEN: usize = 4;

/// The seven command APDU length cases of ISO 7816-3 §12.1.3 / ISO 7816-4 §5.1.
///
/// In the layouts below, `H` is the four-byte header CLA INS P1 P2 and the body
/// follows it.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, serde::Serialize)]
pub enum Case {
    /// Case 1: `H` only; no data is sent, none is expected.
    One,
    /// Case 2S: `H Le`; one Le byte, `01`–`FF` for 1–255 and `00` for 256.
    TwoShort,
    /// Case 3S: `H Lc Data`; Lc is one byte `01`–`FF` followed by Lc data bytes.
    ThreeShort,
    /// Case 4S: `H Lc Data Le`; short Lc, Lc data bytes, then one short Le byte.
    FourShort,
    /// Case 2E: `H 00 Le1 Le2`; a zero byte then a two-byte Le
    /// (`0001`–`FFFF`, `0000` for 65 536).
    TwoExtended,
    /// Case 3E: `H 00 Lc1 Lc2 Data`; a zero byte, a two-byte Lc (`0001`–`FFFF`),
    /// then Lc data bytes.
    ThreeExtended,
    /// Case 4E: `H 00 Lc1 Lc2 Data Le1 Le2`; extended Lc, data, then a two-byte Le
    /// without the leading zero byte (`0000` for 65 536).
    FourExtended,
}

impl Case {
    /// Whether the case uses the extended length fields.
    pub fn is_extended(self) -> bool {
        matches!(
            self,
            Case::TwoExtended | Case::ThreeExtended | Case::FourExtended
        )
    }

    /// Whether the command carries a data field (cases 3 and 4).
    pub fn has_data(self) -> bool {
        matches!(
            self,
            Case::ThreeShort | Case::FourShort | Case::ThreeExtended | Case::FourExtended
        )
    }

    /// Whether the command carries an Le field (cases 2 and 4).
    pub fn has_le(self) -> bool {
        matches!(
            self,
            Case::TwoShort | Case::FourShort | Case::TwoExtended | Case::FourExtended
        )
    }
}

impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Case::One => "1",
            Case::TwoShort => "2S",
            Case::ThreeShort => "3S",
            Case::FourShort => "4S",
            Case::TwoExtended => "2E",
            Case::ThreeExtended => "3E",
            Case::FourExtended => "4E",
        })
    }
}

/// Which length-field form to use when encoding a [`Command`].
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, serde::Serialize)]
pub enum Encoding {
    /// One-byte Lc and Le (Nc ≤ 255, Ne ≤ 256).
    Short,
    /// Two-byte Lc and Le introduced by a zero byte (Nc ≤ 65 535, Ne ≤ 65 536).
    Extended,
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Encoding::Short => "short",
            Encoding::Extended => "extended",
        })
    }
}

/// Why bytes are not a valid APDU, or why a command cannot be built or encoded.
///
/// Offsets count from the first byte of the APDU (CLA is offset 0).
#[non_exhaustive]
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum ApduError {
    /// No bytes at all.
    #[error("empty command APDU: expected at least the 4-byte header CLA INS P1 P2")]
    Empty,
    /// Fewer than the four header bytes.
    #[error(
        "command APDU of {len} bytes is too short: expected at least the 4-byte header CLA INS P1 P2"
    )]
    TooShort {
        /// Number of bytes received.
        len: usize,
    },
    /// The Lc field announces more data bytes than follow it.
    #[error("Lc at offset {offset} announces {lc} data bytes but only {available} bytes follow")]
    LcMismatch {
        /// Offset of the Lc field (of its first byte, `00`, when extended).
        offset: usize,
        /// Number of data bytes announced by Lc.
        lc: usize,
        /// Number of bytes that actually follow the Lc field.
        available: usize,
    },
    /// An extended Lc is followed by a single (short) Le byte; ISO 7816-3 §12.1.3
    /// requires both length fields of case 4 to be of the same form.
    #[error(
        "extended Lc followed by a one-byte short Le at offset {offset}: expected a two-byte extended Le"
    )]
    ExtendedLcWithShortLe {
        /// Offset of the lone Le byte.
        offset: usize,
    },
    /// An extended length field `00 xx xx` is cut short.
    #[error(
        "extended length field at offset {offset} is truncated: expected 3 bytes (00 then 2 length bytes), found {available}"
    )]
    TruncatedExtendedLength {
        /// Offset of the leading `00` byte.
        offset: usize,
        /// Number of bytes present from that offset.
        available: usize,
    },
    /// An extended Lc of `0000` followed by more bytes: Lc is never zero
    /// (an absent data field is encoded by omitting Lc).
    #[error(
        "extended Lc at offset {offset} is 0000 but {available} more bytes follow: expected Lc between 0001 and FFFF"
    )]
    ZeroExtendedLc {
        /// Offset of the leading `00` byte of the extended Lc.
        offset: usize,
        /// Number of bytes after the three-byte extended Lc.
        available: usize,
    },
    /// Bytes remain after the last field of the longest case the Lc allows.
    #[error("{count} trailing bytes at offset {offset} after the end of the command APDU")]
    TrailingBytes {
        /// Offset of the first unexpected byte.
        offset: usize,
        /// Number of unexpected bytes.
        count: usize,
    },
    /// The data field is longer than an extended Lc can announce.
    #[error("data field of {len} bytes is too long: at most 65535 bytes fit in an extended Lc")]
    DataTooLong {
        /// Length of the data supplied.
        len: usize,
    },
    /// Ne is outside 1..=65 536.
    #[error("Ne of {ne} is out of range: expected 1 to 65536")]
    NeOutOfRange {
        /// The requested Ne.
        ne: usize,
    },
    /// The command needs extended length fields but a short encoding was asked for.
    #[error(
        "command with Nc={nc} and Ne={ne:?} does not fit short length fields (Nc ≤ 255, Ne ≤ 256)"
    )]
    NotShortEncodable {
        /// Length of the data field.
        nc: usize,
        /// Expected response length.
        ne: Option<usize>,
    },
    /// A response APDU must hold at least SW1 SW2.
    #[error(
        "response APDU of {len} bytes is too short: expected at least the 2 status bytes SW1 SW2"
    )]
    ResponseTooShort {
        /// Number of bytes received.
        len: usize,
    },
}

/// Serialises a byte string as upper-case hex, the way APDUs are written in specs and
/// traces.
pub(crate) fn serialize_hex<S: serde::Serializer>(
    bytes: &[u8],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&hex::encode_upper(bytes))
}

/// A command's bytes in hex for a log line: the header and lengths as they are, the
/// data of a command that carries a PIN ([`Command::carries_secret`]) replaced by
/// `<secret: N bytes>` — logs never hold a PIN.
pub fn loggable_hex(command: &[u8]) -> String {
    match command {
        [cla, ins, _, _, _, data @ ..]
            if !data.is_empty() && command::carries_secret(*cla, *ins) =>
        {
            format!(
                "{} <secret: {} bytes>",
                hex::encode_upper(command.get(..5).unwrap_or_default()),
                data.len()
            )
        }
        _ => hex::encode_upper(command),
    }
}
