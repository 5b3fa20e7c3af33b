//! Status words SW1 SW2 (ISO 7816-4 §5.6 Tables 5 and 6; EMV Book 1 §9.4, Book 3
//! §6.3.5) decoded to a variant per meaning, with [`StatusWord::Unknown`] for every
//! other value so that any `u16` round-trips.

use std::fmt;

/// A status word, SW1 SW2, decoded to its meaning.
///
/// [`StatusWord::from_u16`] followed by [`StatusWord::to_u16`] returns the original
/// value for every `u16`: values without a meaning of their own, including proprietary
/// `9XXX` codes, become [`StatusWord::Unknown`]. Variants holding SW2 (or its low
/// nibble) encode only the bits that belong to them.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum StatusWord {
    /// `9000`: normal processing, no further qualification.
    Success,
    /// `61XX`: normal processing; SW2 bytes are still available (`00`: 256 or more),
    /// to be fetched with GET RESPONSE (ISO 7816-3 §10.3.5, EMV Book 1 §9.3.1.3).
    MoreAvailable(u8),
    /// `6200`: warning, no information given, non-volatile memory unchanged.
    WarningNoInformation,
    /// `6202`–`6280`: warning, triggering by the card (ISO 7816-4 §5.6); SW2 is the
    /// number of query bytes the card sends. Only SW2 in `02..=80` belongs here.
    WarningTriggeringByCard(u8),
    /// `6281`: part of returned data may be corrupted.
    DataMayBeCorrupted,
    /// `6282`: end of file or record reached before reading Ne bytes.
    EndOfFileReached,
    /// `6283`: selected file invalidated (deactivated); EMV: application blocked.
    SelectedFileInvalidated,
    /// `6284`: file control information not formatted according to ISO 7816-4 §7.4.
    FciNotFormatted,
    /// `6285`: selected file in termination state.
    SelectedFileTerminated,
    /// `6286`: no input data available from a sensor on the card.
    NoSensorData,
    /// `6300`: warning, no information given, non-volatile memory changed.
    WarningMemoryChanged,
    /// `6381`: file filled up by the last write.
    FileFilledUp,
    /// `63CX`: verification failed, X (0–15) further tries allowed (the counter of
    /// ISO 7816-4 §5.6; EMV Book 3 §6.5.12.4 for VERIFY). Only the low nibble is encoded.
    VerificationFailed {
        /// Number of tries left, 0 to 15.
        tries_left: u8,
    },
    /// `6400`: execution error, non-volatile memory unchanged, no information given.
    ExecutionError,
    /// `6401`: immediate response required by the card.
    ImmediateResponseRequired,
    /// `6402`–`6480`: execution error, triggering by the card; SW2 is the number of
    /// query bytes. Only SW2 in `02..=80` belongs here.
    ErrorTriggeringByCard(u8),
    /// `6500`: execution error, non-volatile memory changed, no information given.
    ExecutionErrorMemoryChanged,
    /// `6581`: memory failure.
    MemoryFailure,
    /// `66XX`: security-related issue (its qualification is outside ISO 7816-4).
    SecurityIssue(u8),
    /// `6700`: wrong length, no further indication.
    WrongLength,
    /// `6800`: functions in CLA not supported, no information given.
    ClaFunctionNotSupported,
    /// `6881`: logical channel not supported.
    LogicalChannelNotSupported,
    /// `6882`: secure messaging not supported.
    SecureMessagingNotSupported,
    /// `6883`: last command of the chain expected.
    LastCommandOfChainExpected,
    /// `6884`: command chaining not supported.
    CommandChainingNotSupported,
    /// `6900`: command not allowed, no information given.
    CommandNotAllowed,
    /// `6981`: command incompatible with file structure.
    IncompatibleFileStructure,
    /// `6982`: security status not satisfied.
    SecurityStatusNotSatisfied,
    /// `6983`: authentication method blocked (EMV: PIN try limit exceeded).
    AuthenticationMethodBlocked,
    /// `6984`: reference data not usable (EMV: referenced data invalidated).
    ReferenceDataNotUsable,
    /// `6985`: conditions of use not satisfied.
    ConditionsNotSatisfied,
    /// `6986`: command not allowed (no current EF).
    NoCurrentEf,
    /// `6987`: expected secure messaging data objects missing.
    SecureMessagingObjectsMissing,
    /// `6988`: incorrect secure messaging data objects.
    SecureMessagingObjectsIncorrect,
    /// `6A00`: wrong parameters P1-P2, no information given.
    WrongParametersNoInformation,
    /// `6A80`: incorrect parameters in the command data field.
    WrongData,
    /// `6A81`: function not supported (EMV: card or application blocked, on SELECT).
    FunctionNotSupported,
    /// `6A82`: file or application not found.
    FileNotFound,
    /// `6A83`: record not found.
    RecordNotFound,
    /// `6A84`: not enough memory space in the file.
    NotEnoughMemory,
    /// `6A85`: Nc inconsistent with TLV structure.
    NcInconsistentWithTlv,
    /// `6A86`: incorrect parameters P1-P2.
    IncorrectP1P2,
    /// `6A87`: Nc inconsistent with parameters P1-P2.
    NcInconsistentWithP1P2,
    /// `6A88`: referenced data or reference data not found.
    ReferencedDataNotFound,
    /// `6A89`: file already exists.
    FileAlreadyExists,
    /// `6A8A`: DF name already exists.
    DfNameAlreadyExists,
    /// `6B00`: wrong parameters P1-P2.
    WrongP1P2,
    /// `6CXX`: wrong Le field; SW2 is the exact number of available data bytes
    /// (`00`: 256). The command should be re-issued with Le = SW2
    /// (ISO 7816-3 §10.3.5, EMV Book 1 §9.3.1.3).
    WrongLe(u8),
    /// `6D00`: instruction code not supported or invalid.
    InsNotSupported,
    /// `6E00`: class not supported.
    ClaNotSupported,
    /// `6F00`: no precise diagnosis.
    NoPreciseDiagnosis,
    /// Any other value, kept as received.
    Unknown(u16),
}

/// Every variant whose value alone determines it, for [`StatusWord::from_u16`]; the
/// parameterised ones (61XX, 6202–6280, 63CX, 6402–6480, 66XX, 6CXX) are decoded there.
const FIXED: [StatusWord; 45] = [
    StatusWord::Success,
    StatusWord::WarningNoInformation,
    StatusWord::DataMayBeCorrupted,
    StatusWord::EndOfFileReached,
    StatusWord::SelectedFileInvalidated,
    StatusWord::FciNotFormatted,
    StatusWord::SelectedFileTerminated,
    StatusWord::NoSensorData,
    StatusWord::WarningMemoryChanged,
    StatusWord::FileFilledUp,
    StatusWord::ExecutionError,
    StatusWord::ImmediateResponseRequired,
    StatusWord::ExecutionErrorMemoryChanged,
    StatusWord::MemoryFailure,
    StatusWord::WrongLength,
    StatusWord::ClaFunctionNotSupported,
    StatusWord::LogicalChannelNotSupported,
    StatusWord::SecureMessagingNotSupported,
    StatusWord::LastCommandOfChainExpected,
    StatusWord::CommandChainingNotSupported,
    StatusWord::CommandNotAllowed,
    StatusWord::IncompatibleFileStructure,
    StatusWord::SecurityStatusNotSatisfied,
    StatusWord::AuthenticationMethodBlocked,
    StatusWord::ReferenceDataNotUsable,
    StatusWord::ConditionsNotSatisfied,
    StatusWord::NoCurrentEf,
    StatusWord::SecureMessagingObjectsMissing,
    StatusWord::SecureMessagingObjectsIncorrect,
    StatusWord::WrongParametersNoInformation,
    StatusWord::WrongData,
    StatusWord::FunctionNotSupported,
    StatusWord::FileNotFound,
    StatusWord::RecordNotFound,
    StatusWord::NotEnoughMemory,
    StatusWord::NcInconsistentWithTlv,
    StatusWord::IncorrectP1P2,
    StatusWord::NcInconsistentWithP1P2,
    StatusWord::ReferencedDataNotFound,
    StatusWord::FileAlreadyExists,
    StatusWord::DfNameAlreadyExists,
    StatusWord::WrongP1P2,
    StatusWord::InsNotSupported,
    StatusWord::ClaNotSupported,
    StatusWord::NoPreciseDiagnosis,
];

/// SW2 range of the "triggering by the card" codes, ISO 7816-4 §5.6 Table 6.
const TRIGGERING: std::ops::RangeInclusive<u8> = 0x02..=0x80;

impl StatusWord {
    /// Decodes a status word; never fails (unassigned values give `Unknown`).
    pub fn from_u16(sw: u16) -> StatusWord {
        let [sw1, sw2] = sw.to_be_bytes();
        match (sw1, sw2) {
            (0x61, n) => StatusWord::MoreAvailable(n),
            (0x6C, n) => StatusWord::WrongLe(n),
            (0x66, n) => StatusWord::SecurityIssue(n),
            (0x62, n) if TRIGGERING.contains(&n) => StatusWord::WarningTriggeringByCard(n),
            (0x64, n) if TRIGGERING.contains(&n) => StatusWord::ErrorTriggeringByCard(n),
            (0x63, n) if n & 0xF0 == 0xC0 => StatusWord::VerificationFailed {
                tries_left: n & 0x0F,
            },
            _ => FIXED
                .into_iter()
                .find(|word| word.to_u16() == sw)
                .unwrap_or(StatusWord::Unknown(sw)),
        }
    }

    /// Decodes SW1 SW2.
    pub fn from_bytes(sw1: u8, sw2: u8) -> StatusWord {
        StatusWord::from_u16(u16::from_be_bytes([sw1, sw2]))
    }

    /// The encoded value SW1 SW2.
    pub fn to_u16(self) -> u16 {
        let with_sw2 = |sw1: u8, sw2: u8| u16::from_be_bytes([sw1, sw2]);
        match self {
            StatusWord::MoreAvailable(n) => with_sw2(0x61, n),
            StatusWord::WrongLe(n) => with_sw2(0x6C, n),
            StatusWord::SecurityIssue(n) => with_sw2(0x66, n),
            StatusWord::WarningTriggeringByCard(n) => with_sw2(0x62, n),
            StatusWord::ErrorTriggeringByCard(n) => with_sw2(0x64, n),
            StatusWord::VerificationFailed { tries_left } => {
                with_sw2(0x63, 0xC0 | (tries_left & 0x0F))
            }
            StatusWord::Unknown(sw) => sw,
            StatusWord::Success => 0x9000,
            StatusWord::WarningNoInformation => 0x6200,
            StatusWord::DataMayBeCorrupted => 0x6281,
            StatusWord::EndOfFileReached => 0x6282,
            StatusWord::SelectedFileInvalidated => 0x6283,
            StatusWord::FciNotFormatted => 0x6284,
            StatusWord::SelectedFileTerminated => 0x6285,
            StatusWord::NoSensorData => 0x6286,
            StatusWord::WarningMemoryChanged => 0x6300,
            StatusWord::FileFilledUp => 0x6381,
            StatusWord::ExecutionError => 0x6400,
            StatusWord::ImmediateResponseRequired => 0x6401,
            StatusWord::ExecutionErrorMemoryChanged => 0x6500,
            StatusWord::MemoryFailure => 0x6581,
            StatusWord::WrongLength => 0x6700,
            StatusWord::ClaFunctionNotSupported => 0x6800,
            StatusWord::LogicalChannelNotSupported => 0x6881,
            StatusWord::SecureMessagingNotSupported => 0x6882,
            StatusWord::LastCommandOfChainExpected => 0x6883,
            StatusWord::CommandChainingNotSupported => 0x6884,
            StatusWord::CommandNotAllowed => 0x6900,
            StatusWord::IncompatibleFileStructure => 0x6981,
            StatusWord::SecurityStatusNotSatisfied => 0x6982,
            StatusWord::AuthenticationMethodBlocked => 0x6983,
            StatusWord::ReferenceDataNotUsable => 0x6984,
            StatusWord::ConditionsNotSatisfied => 0x6985,
            StatusWord::NoCurrentEf => 0x6986,
            StatusWord::SecureMessagingObjectsMissing => 0x6987,
            StatusWord::SecureMessagingObjectsIncorrect => 0x6988,
            StatusWord::WrongParametersNoInformation => 0x6A00,
            StatusWord::WrongData => 0x6A80,
            StatusWord::FunctionNotSupported => 0x6A81,
            StatusWord::FileNotFound => 0x6A82,
            StatusWord::RecordNotFound => 0x6A83,
            StatusWord::NotEnoughMemory => 0x6A84,
            StatusWord::NcInconsistentWithTlv => 0x6A85,
            StatusWord::IncorrectP1P2 => 0x6A86,
            StatusWord::NcInconsistentWithP1P2 => 0x6A87,
            StatusWord::ReferencedDataNotFound => 0x6A88,
            StatusWord::FileAlreadyExists => 0x6A89,
            StatusWord::DfNameAlreadyExists => 0x6A8A,
            StatusWord::WrongP1P2 => 0x6B00,
            StatusWord::InsNotSupported => 0x6D00,
            StatusWord::ClaNotSupported => 0x6E00,
            StatusWord::NoPreciseDiagnosis => 0x6F00,
        }
    }

    /// SW1, the first status byte.
    pub fn sw1(self) -> u8 {
        self.to_u16().to_be_bytes()[0]
    }

    /// SW2, the second status byte.
    pub fn sw2(self) -> u8 {
        self.to_u16().to_be_bytes()[1]
    }

    /// The two status bytes SW1 SW2.
    pub fn to_bytes(self) -> [u8; 2] {
        self.to_u16().to_be_bytes()
    }

    /// Whether this is `9000` (and only `9000`).
    pub fn is_success(self) -> bool {
        self == StatusWord::Success
    }

    /// Whether this is a warning, SW1 `62` or `63` (ISO 7816-4 §5.6 Table 5).
    pub fn is_warning(self) -> bool {
        matches!(self.sw1(), 0x62 | 0x63)
    }

    /// Whether this is an execution or checking error, SW1 `64` to `6F`
    /// (ISO 7816-4 §5.6 Table 5).
    pub fn is_error(self) -> bool {
        matches!(self.sw1(), 0x64..=0x6F)
    }

    /// The meaning in words, e.g. "authentication method blocked" or
    /// "verification failed, 2 tries left".
    pub fn meaning(self) -> String {
        let fixed = match self {
            StatusWord::MoreAvailable(n) => {
                return format!("{} bytes still available", count(n));
            }
            StatusWord::WrongLe(n) => return format!("wrong Le, exact length is {}", count(n)),
            StatusWord::VerificationFailed { tries_left } => {
                let tries_left = tries_left & 0x0F;
                let plural = if tries_left == 1 { "try" } else { "tries" };
                return format!("verification failed, {tries_left} {plural} left");
            }
            StatusWord::WarningTriggeringByCard(n) => {
                return format!("warning, triggering by the card ({n} query bytes)");
            }
            StatusWord::ErrorTriggeringByCard(n) => {
                return format!("execution error, triggering by the card ({n} query bytes)");
            }
            StatusWord::SecurityIssue(n) => return format!("security-related issue {n:02X}"),
            StatusWord::Unknown(sw) => unknown_meaning(sw),
            // ISO 7816-4 §5.6 Table 6 wording, shortened; EMV wording for 6984.
            StatusWord::Success => "success",
            StatusWord::WarningNoInformation => {
                "warning, no information given, non-volatile memory unchanged"
            }
            StatusWord::DataMayBeCorrupted => "part of returned data may be corrupted",
            StatusWord::EndOfFileReached => "end of file or record reached before reading Ne bytes",
            StatusWord::SelectedFileInvalidated => "selected file invalidated",
            StatusWord::FciNotFormatted => {
                "file control information not formatted according to ISO 7816-4"
            }
            StatusWord::SelectedFileTerminated => "selected file in termination state",
            StatusWord::NoSensorData => "no input data available from a sensor on the card",
            StatusWord::WarningMemoryChanged => {
                "warning, no information given, non-volatile memory changed"
            }
            StatusWord::FileFilledUp => "file filled up by the last write",
            StatusWord::ExecutionError => "execution error, non-volatile memory unchanged",
            StatusWord::ImmediateResponseRequired => "immediate response required by the card",
            StatusWord::ExecutionErrorMemoryChanged => {
                "execution error, non-volatile memory changed"
            }
            StatusWord::MemoryFailure => "memory failure",
            StatusWord::WrongLength => "wrong length",
            StatusWord::ClaFunctionNotSupported => "functions in CLA not supported",
            StatusWord::LogicalChannelNotSupported => "logical channel not supported",
            StatusWord::SecureMessagingNotSupported => "secure messaging not supported",
            StatusWord::LastCommandOfChainExpected => "last command of the chain expected",
            StatusWord::CommandChainingNotSupported => "command chaining not supported",
            StatusWord::CommandNotAllowed => "command not allowed",
            StatusWord::IncompatibleFileStructure => "command incompatible with file structure",
            StatusWord::SecurityStatusNotSatisfied => "security status not satisfied",
            StatusWord::AuthenticationMethodBlocked => "authentication method blocked",
            StatusWord::ReferenceDataNotUsable => "referenced data invalidated",
            StatusWord::ConditionsNotSatisfied => "conditions of use not satisfied",
            StatusWord::NoCurrentEf => "command not allowed, no current EF",
            StatusWord::SecureMessagingObjectsMissing => {
                "expected secure messaging data objects missing"
            }
            StatusWord::SecureMessagingObjectsIncorrect => {
                "incorrect secure messaging data objects"
            }
            StatusWord::WrongParametersNoInformation => {
                "wrong parameters P1-P2, no information given"
            }
            StatusWord::WrongData => "incorrect parameters in the command data field",
            StatusWord::FunctionNotSupported => "function not supported",
            StatusWord::FileNotFound => "file or application not found",
            StatusWord::RecordNotFound => "record not found",
            StatusWord::NotEnoughMemory => "not enough memory space in the file",
            StatusWord::NcInconsistentWithTlv => "Nc inconsistent with TLV structure",
            StatusWord::IncorrectP1P2 => "incorrect parameters P1-P2",
            StatusWord::NcInconsistentWithP1P2 => "Nc inconsistent with parameters P1-P2",
            StatusWord::ReferencedDataNotFound => "referenced data not found",
            StatusWord::FileAlreadyExists => "file already exists",
            StatusWord::DfNameAlreadyExists => "DF name already exists",
            StatusWord::WrongP1P2 => "wrong parameters P1-P2",
            StatusWord::InsNotSupported => "instruction code not supported or invalid",
            StatusWord::ClaNotSupported => "class not supported",
            StatusWord::NoPreciseDiagnosis => "no precise diagnosis",
        };
        fixed.to_owned()
    }
}

/// A count in SW2 where `00` stands for 256 (61XX, 6CXX).
fn count(n: u8) -> u16 {
    if n == 0 { 256 } else { u16::from(n) }
}

/// What ISO 7816-4 §5.6 Table 5 says about an unassigned value, from SW1 alone.
fn unknown_meaning(sw: u16) -> &'static str {
    match sw.to_be_bytes()[0] {
        0x62 => "unknown warning, non-volatile memory unchanged",
        0x63 => "unknown warning, non-volatile memory changed",
        0x64 => "unknown execution error, non-volatile memory unchanged",
        0x65 => "unknown execution error, non-volatile memory changed",
        0x67..=0x6F => "unknown checking error",
        0x90..=0x9F => "proprietary status",
        _ => "not an ISO 7816-4 status word",
    }
}

impl From<u16> for StatusWord {
    fn from(sw: u16) -> StatusWord {
        StatusWord::from_u16(sw)
    }
}

impl From<StatusWord> for u16 {
    fn from(sw: StatusWord) -> u16 {
        sw.to_u16()
    }
}

/// `6983 (authentication method blocked)`: the four hex digits, then the meaning.
impl fmt::Display for StatusWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04X} ({})", self.to_u16(), self.meaning())
    }
}

/// Serialised as the four upper-case hex digits, e.g. `"6983"`.
impl serde::Serialize for StatusWord {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format!("{:04X}", self.to_u16()))
    }
}
