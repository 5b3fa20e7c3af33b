//! Behaviour of the APDU codec (ISO 7816-3 §12.1, ISO 7816-4 §5.1), status words
//! (ISO 7816-4 §5.6, EMV Book 3 §6.3.5) and instruction names, as hex tables and
//! properties.

use proptest::prelude::*;
use telepay::apdu::{
    ApduError, Case, Command, CommandView, Encoding, Response, StatusWord, ins, instruction_name,
};

fn bytes(hex_text: &str) -> Vec<u8> {
    let compact: String = hex_text.split_whitespace().collect();
    hex::decode(compact).expect("test hex is valid")
}

fn hex_of(data: &[u8]) -> String {
    hex::encode_upper(data)
}

/// One well-formed command per row: encoding, case as encoded, then the decoded fields.
const WELL_FORMED: &[(&str, Case, &str, &str, Option<usize>)] = &[
    // hex                                        case                 header      data             Ne
    ("00 A4 04 00", Case::One, "00A40400", "", None),
    ("00 84 00 00 08", Case::TwoShort, "00840000", "", Some(8)),
    ("00 B2 01 0C 00", Case::TwoShort, "00B2010C", "", Some(256)),
    ("00 B2 01 0C FF", Case::TwoShort, "00B2010C", "", Some(255)),
    (
        "00 20 00 80 08 24 12 34 FF FF FF FF FF",
        Case::ThreeShort,
        "00200080",
        "241234FFFFFFFFFF",
        None,
    ),
    (
        "00 A4 04 00 07 A0 00 00 00 04 10 10 00",
        Case::FourShort,
        "00A40400",
        "A0000000041010",
        Some(256),
    ),
    (
        "80 A8 00 00 02 83 00 1C",
        Case::FourShort,
        "80A80000",
        "8300",
        Some(28),
    ),
    (
        "00 B0 00 00 00 00 01",
        Case::TwoExtended,
        "00B00000",
        "",
        Some(1),
    ),
    (
        "00 B0 00 00 00 01 00",
        Case::TwoExtended,
        "00B00000",
        "",
        Some(256),
    ),
    (
        "00 B0 00 00 00 01 01",
        Case::TwoExtended,
        "00B00000",
        "",
        Some(257),
    ),
    (
        "00 B0 00 00 00 FF FF",
        Case::TwoExtended,
        "00B00000",
        "",
        Some(65535),
    ),
    (
        "00 B0 00 00 00 00 00",
        Case::TwoExtended,
        "00B00000",
        "",
        Some(65536),
    ),
    (
        "00 D6 00 00 00 00 03 AA BB CC",
        Case::ThreeExtended,
        "00D60000",
        "AABBCC",
        None,
    ),
    (
        "00 2A 9E 9A 00 00 03 AA BB CC 01 02",
        Case::FourExtended,
        "002A9E9A",
        "AABBCC",
        Some(258),
    ),
    (
        "00 2A 9E 9A 00 00 03 AA BB CC 00 00",
        Case::FourExtended,
        "002A9E9A",
        "AABBCC",
        Some(65536),
    ),
    (
        "00 2A 9E 9A 00 00 01 AA 00 01",
        Case::FourExtended,
        "002A9E9A",
        "AA",
        Some(1),
    ),
];

#[test]
fn well_formed_commands_decode_to_their_fields_and_case() {
    for &(hex_text, case, header, data, ne) in WELL_FORMED {
        let encoded = bytes(hex_text);
        let view = CommandView::parse(&encoded).unwrap_or_else(|e| panic!("{hex_text}: {e}"));
        assert_eq!(view.case(), case, "{hex_text}");
        assert_eq!(hex_of(&view.header()), header, "{hex_text}");
        assert_eq!(hex_of(view.data()), data, "{hex_text}");
        assert_eq!(view.ne(), ne, "{hex_text}");
        let owned = Command::parse(&encoded).unwrap_or_else(|e| panic!("{hex_text}: {e}"));
        assert_eq!(owned, view.to_owned(), "{hex_text}");
        assert_eq!(
            (owned.cla(), owned.ins(), owned.p1(), owned.p2()),
            (view.cla(), view.ins(), view.p1(), view.p2()),
            "{hex_text}"
        );
        // Re-encoding in the form it was received reproduces the bytes exactly.
        let form = if case.is_extended() {
            Encoding::Extended
        } else {
            Encoding::Short
        };
        assert_eq!(owned.to_bytes_with(form), Ok(encoded), "{hex_text}");
    }
}

/// Built commands and their encodings: shortest, forced short, forced extended.
#[test]
fn built_commands_encode_in_each_form() {
    struct Row {
        data: usize,
        ne: Option<usize>,
        case: Case,
        short: Result<&'static str, ApduError>,
        extended: &'static str,
    }
    // Data bytes are 0x11 repeated; header 00 D6 00 00.
    let rows = [
        Row {
            data: 0,
            ne: None,
            case: Case::One,
            short: Ok("00D60000"),
            extended: "00D60000",
        },
        Row {
            data: 0,
            ne: Some(1),
            case: Case::TwoShort,
            short: Ok("00D6000001"),
            extended: "00D60000000001",
        },
        Row {
            data: 0,
            ne: Some(256),
            case: Case::TwoShort,
            short: Ok("00D6000000"),
            extended: "00D60000000100",
        },
        Row {
            data: 0,
            ne: Some(257),
            case: Case::TwoExtended,
            short: Err(ApduError::NotShortEncodable {
                nc: 0,
                ne: Some(257),
            }),
            extended: "00D60000000101",
        },
        Row {
            data: 0,
            ne: Some(65536),
            case: Case::TwoExtended,
            short: Err(ApduError::NotShortEncodable {
                nc: 0,
                ne: Some(65536),
            }),
            extended: "00D60000000000",
        },
        Row {
            data: 2,
            ne: None,
            case: Case::ThreeShort,
            short: Ok("00D60000021111"),
            extended: "00D6000000000211 11",
        },
        Row {
            data: 2,
            ne: Some(256),
            case: Case::FourShort,
            short: Ok("00D6000002111100"),
            extended: "00D60000000002 1111 0100",
        },
        Row {
            data: 2,
            ne: Some(65536),
            case: Case::FourExtended,
            short: Err(ApduError::NotShortEncodable {
                nc: 2,
                ne: Some(65536),
            }),
            extended: "00D60000000002 1111 0000",
        },
    ];
    for row in rows {
        let mut command = Command::new(0x00, 0xD6, 0x00, 0x00)
            .with_data(vec![0x11; row.data])
            .expect("data fits");
        if let Some(ne) = row.ne {
            command = command.with_le(ne).expect("ne in range");
        }
        let label = format!("Nc={} Ne={:?}", row.data, row.ne);
        assert_eq!(command.case(), row.case, "{label}");
        assert_eq!(command.view().case(), row.case, "{label}");
        let short = command.to_bytes_with(Encoding::Short).map(|b| hex_of(&b));
        assert_eq!(short, row.short.map(|h| hex_of(&bytes(h))), "{label}");
        let extended = command
            .to_bytes_with(Encoding::Extended)
            .expect("always encodable");
        assert_eq!(hex_of(&extended), hex_of(&bytes(row.extended)), "{label}");
        let shortest = if row.case.is_extended() {
            extended
        } else {
            bytes(&short.clone().expect("short"))
        };
        assert_eq!(command.to_bytes(), shortest, "{label}");
        assert_eq!(command.needs_extended(), row.case.is_extended(), "{label}");
    }
}

#[test]
fn length_boundaries_between_short_and_extended() {
    let at = |nc: usize, ne: Option<usize>| {
        let c = Command::new(0x00, 0xDA, 0x01, 0x02)
            .with_data(vec![0xA5; nc])
            .expect("fits");
        match ne {
            Some(ne) => c.with_le(ne).expect("in range"),
            None => c,
        }
    };
    // Nc = 255 is the last short Lc (ISO 7816-4 §5.1), 256 needs extended.
    let c255 = at(255, None);
    assert_eq!(c255.case(), Case::ThreeShort);
    assert_eq!(c255.to_bytes().len(), 4 + 1 + 255);
    assert_eq!(c255.to_bytes().get(4), Some(&0xFF));
    let c256 = at(256, None);
    assert_eq!(c256.case(), Case::ThreeExtended);
    assert_eq!(c256.to_bytes().get(4..7), Some(&[0x00, 0x01, 0x00][..]));
    // Nc = 65535 is the most an extended Lc can announce.
    let max = at(65_535, Some(65_536));
    assert_eq!(max.case(), Case::FourExtended);
    let encoded = max.to_bytes();
    assert_eq!(encoded.len(), 4 + 3 + 65_535 + 2);
    assert_eq!(Command::parse(&encoded), Ok(max));
    // Short data with a long Ne: both fields go extended (no mixing, ISO 7816-3 §12.1.3).
    let mixed = at(3, Some(300));
    assert_eq!(hex_of(&mixed.to_bytes()), "00DA0102000003A5A5A5012C");
}

/// Every malformed shape, with the error and its offset checked exactly.
#[test]
fn malformed_commands_are_rejected_with_position() {
    let table: &[(&str, ApduError)] = &[
        ("", ApduError::Empty),
        ("00", ApduError::TooShort { len: 1 }),
        ("00 A4 04", ApduError::TooShort { len: 3 }),
        // Short Lc = 5 but two bytes follow.
        (
            "00 A4 04 00 05 A0 00",
            ApduError::LcMismatch {
                offset: 4,
                lc: 5,
                available: 2,
            },
        ),
        // Short Lc = 2, data, Le, then one byte too many (offset 8).
        (
            "00 A4 04 00 02 A0 00 00 FF",
            ApduError::TrailingBytes {
                offset: 8,
                count: 1,
            },
        ),
        (
            "00 A4 04 00 01 A0 00 FF FF FF",
            ApduError::TrailingBytes {
                offset: 7,
                count: 3,
            },
        ),
        // '00' then one byte: neither short nor extended.
        (
            "00 A4 04 00 00 01",
            ApduError::TruncatedExtendedLength {
                offset: 4,
                available: 2,
            },
        ),
        // Extended Lc = 3 then a lone short Le at offset 10.
        (
            "00 D6 00 00 00 00 03 AA BB CC 00",
            ApduError::ExtendedLcWithShortLe { offset: 10 },
        ),
        // Extended Lc = 3, data, extended Le, one byte too many (offset 12).
        (
            "00 D6 00 00 00 00 03 AA BB CC 00 00 77",
            ApduError::TrailingBytes {
                offset: 12,
                count: 1,
            },
        ),
        // Extended Lc = 5 but three bytes follow.
        (
            "00 D6 00 00 00 00 05 AA BB CC",
            ApduError::LcMismatch {
                offset: 4,
                lc: 5,
                available: 3,
            },
        ),
        (
            "00 D6 00 00 00 01 00 AA",
            ApduError::LcMismatch {
                offset: 4,
                lc: 256,
                available: 1,
            },
        ),
        // Extended Lc = 0000 followed by data.
        (
            "00 D6 00 00 00 00 00 AA",
            ApduError::ZeroExtendedLc {
                offset: 4,
                available: 1,
            },
        ),
    ];
    for (hex_text, expected) in table {
        let encoded = bytes(hex_text);
        assert_eq!(
            CommandView::parse(&encoded).err().as_ref(),
            Some(expected),
            "{hex_text}"
        );
        assert_eq!(
            Command::parse(&encoded).err().as_ref(),
            Some(expected),
            "{hex_text}"
        );
    }
}

#[test]
fn build_errors_name_the_value() {
    let base = || Command::new(0x00, 0xD6, 0x00, 0x00);
    assert_eq!(
        base().with_data(vec![0; 65_536]),
        Err(ApduError::DataTooLong { len: 65_536 })
    );
    assert_eq!(base().with_le(0), Err(ApduError::NeOutOfRange { ne: 0 }));
    assert_eq!(
        base().with_le(65_537),
        Err(ApduError::NeOutOfRange { ne: 65_537 })
    );
    // An empty data field means "no data": case 1, no Lc.
    let empty = base().with_data(Vec::new()).expect("empty is accepted");
    assert_eq!(empty.case(), Case::One);
    assert_eq!(empty.to_bytes(), bytes("00 D6 00 00"));
    assert_eq!(
        base().with_le(10).expect("ok").without_le().case(),
        Case::One
    );
}

#[test]
fn error_messages_name_offsets_and_expectations() {
    let table: &[(ApduError, &str)] = &[
        (
            ApduError::LcMismatch {
                offset: 4,
                lc: 5,
                available: 2,
            },
            "Lc at offset 4 announces 5 data bytes but only 2 bytes follow",
        ),
        (
            ApduError::ExtendedLcWithShortLe { offset: 10 },
            "extended Lc followed by a one-byte short Le at offset 10: expected a two-byte extended Le",
        ),
        (
            ApduError::TrailingBytes {
                offset: 8,
                count: 1,
            },
            "1 trailing bytes at offset 8 after the end of the command APDU",
        ),
        (
            ApduError::ResponseTooShort { len: 1 },
            "response APDU of 1 bytes is too short: expected at least the 2 status bytes SW1 SW2",
        ),
    ];
    for (error, message) in table {
        assert_eq!(error.to_string(), *message);
    }
}

#[test]
fn case_display_names() {
    let names: Vec<String> = [
        Case::One,
        Case::TwoShort,
        Case::ThreeShort,
        Case::FourShort,
        Case::TwoExtended,
        Case::ThreeExtended,
        Case::FourExtended,
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    assert_eq!(names, ["1", "2S", "3S", "4S", "2E", "3E", "4E"]);
}

/// The data (hex) and status word a response should parse to, or the error.
type ParsedResponse = Result<(&'static str, StatusWord), ApduError>;

#[test]
fn responses_split_data_and_status() {
    let table: &[(&str, ParsedResponse)] = &[
        ("", Err(ApduError::ResponseTooShort { len: 0 })),
        ("90", Err(ApduError::ResponseTooShort { len: 1 })),
        ("90 00", Ok(("", StatusWord::Success))),
        (
            "6F 07 84 05 A0 00 00 00 03 90 00",
            Ok(("6F0784 05A000000003", StatusWord::Success)),
        ),
        ("61 1C", Ok(("", StatusWord::MoreAvailable(0x1C)))),
        (
            "01 02 63 C2",
            Ok(("0102", StatusWord::VerificationFailed { tries_left: 2 })),
        ),
    ];
    for (hex_text, expected) in table {
        let encoded = bytes(hex_text);
        let parsed = Response::parse(&encoded);
        let expected = expected
            .clone()
            .map(|(data, sw)| Response::new(bytes(data), sw));
        assert_eq!(parsed, expected, "{hex_text}");
        if let Ok(response) = parsed {
            assert_eq!(response.to_bytes(), encoded, "{hex_text}");
        }
    }
}

/// A row per status word: value, variant, Display.
const STATUS_WORDS: &[(u16, StatusWord, &str)] = &[
    (0x9000, StatusWord::Success, "9000 (success)"),
    (
        0x611C,
        StatusWord::MoreAvailable(0x1C),
        "611C (28 bytes still available)",
    ),
    (
        0x6100,
        StatusWord::MoreAvailable(0x00),
        "6100 (256 bytes still available)",
    ),
    (
        0x6200,
        StatusWord::WarningNoInformation,
        "6200 (warning, no information given, non-volatile memory unchanged)",
    ),
    (
        0x6202,
        StatusWord::WarningTriggeringByCard(0x02),
        "6202 (warning, triggering by the card (2 query bytes))",
    ),
    (
        0x6280,
        StatusWord::WarningTriggeringByCard(0x80),
        "6280 (warning, triggering by the card (128 query bytes))",
    ),
    (
        0x6281,
        StatusWord::DataMayBeCorrupted,
        "6281 (part of returned data may be corrupted)",
    ),
    (
        0x6282,
        StatusWord::EndOfFileReached,
        "6282 (end of file or record reached before reading Ne bytes)",
    ),
    (
        0x6283,
        StatusWord::SelectedFileInvalidated,
        "6283 (selected file invalidated)",
    ),
    (
        0x6284,
        StatusWord::FciNotFormatted,
        "6284 (file control information not formatted according to ISO 7816-4)",
    ),
    (
        0x6285,
        StatusWord::SelectedFileTerminated,
        "6285 (selected file in termination state)",
    ),
    (
        0x6286,
        StatusWord::NoSensorData,
        "6286 (no input data available from a sensor on the card)",
    ),
    (
        0x6300,
        StatusWord::WarningMemoryChanged,
        "6300 (warning, no information given, non-volatile memory changed)",
    ),
    (
        0x6381,
        StatusWord::FileFilledUp,
        "6381 (file filled up by the last write)",
    ),
    (
        0x63C0,
        StatusWord::VerificationFailed { tries_left: 0 },
        "63C0 (verification failed, 0 tries left)",
    ),
    (
        0x63C1,
        StatusWord::VerificationFailed { tries_left: 1 },
        "63C1 (verification failed, 1 try left)",
    ),
    (
        0x63C2,
        StatusWord::VerificationFailed { tries_left: 2 },
        "63C2 (verification failed, 2 tries left)",
    ),
    (
        0x63CF,
        StatusWord::VerificationFailed { tries_left: 15 },
        "63CF (verification failed, 15 tries left)",
    ),
    (
        0x6400,
        StatusWord::ExecutionError,
        "6400 (execution error, non-volatile memory unchanged)",
    ),
    (
        0x6401,
        StatusWord::ImmediateResponseRequired,
        "6401 (immediate response required by the card)",
    ),
    (
        0x6402,
        StatusWord::ErrorTriggeringByCard(0x02),
        "6402 (execution error, triggering by the card (2 query bytes))",
    ),
    (
        0x6500,
        StatusWord::ExecutionErrorMemoryChanged,
        "6500 (execution error, non-volatile memory changed)",
    ),
    (0x6581, StatusWord::MemoryFailure, "6581 (memory failure)"),
    (
        0x6600,
        StatusWord::SecurityIssue(0x00),
        "6600 (security-related issue 00)",
    ),
    (0x6700, StatusWord::WrongLength, "6700 (wrong length)"),
    (
        0x6800,
        StatusWord::ClaFunctionNotSupported,
        "6800 (functions in CLA not supported)",
    ),
    (
        0x6881,
        StatusWord::LogicalChannelNotSupported,
        "6881 (logical channel not supported)",
    ),
    (
        0x6882,
        StatusWord::SecureMessagingNotSupported,
        "6882 (secure messaging not supported)",
    ),
    (
        0x6883,
        StatusWord::LastCommandOfChainExpected,
        "6883 (last command of the chain expected)",
    ),
    (
        0x6884,
        StatusWord::CommandChainingNotSupported,
        "6884 (command chaining not supported)",
    ),
    (
        0x6900,
        StatusWord::CommandNotAllowed,
        "6900 (command not allowed)",
    ),
    (
        0x6981,
        StatusWord::IncompatibleFileStructure,
        "6981 (command incompatible with file structure)",
    ),
    (
        0x6982,
        StatusWord::SecurityStatusNotSatisfied,
        "6982 (security status not satisfied)",
    ),
    (
        0x6983,
        StatusWord::AuthenticationMethodBlocked,
        "6983 (authentication method blocked)",
    ),
    (
        0x6984,
        StatusWord::ReferenceDataNotUsable,
        "6984 (referenced data invalidated)",
    ),
    (
        0x6985,
        StatusWord::ConditionsNotSatisfied,
        "6985 (conditions of use not satisfied)",
    ),
    (
        0x6986,
        StatusWord::NoCurrentEf,
        "6986 (command not allowed, no current EF)",
    ),
    (
        0x6987,
        StatusWord::SecureMessagingObjectsMissing,
        "6987 (expected secure messaging data objects missing)",
    ),
    (
        0x6988,
        StatusWord::SecureMessagingObjectsIncorrect,
        "6988 (incorrect secure messaging data objects)",
    ),
    (
        0x6A00,
        StatusWord::WrongParametersNoInformation,
        "6A00 (wrong parameters P1-P2, no information given)",
    ),
    (
        0x6A80,
        StatusWord::WrongData,
        "6A80 (incorrect parameters in the command data field)",
    ),
    (
        0x6A81,
        StatusWord::FunctionNotSupported,
        "6A81 (function not supported)",
    ),
    (
        0x6A82,
        StatusWord::FileNotFound,
        "6A82 (file or application not found)",
    ),
    (
        0x6A83,
        StatusWord::RecordNotFound,
        "6A83 (record not found)",
    ),
    (
        0x6A84,
        StatusWord::NotEnoughMemory,
        "6A84 (not enough memory space in the file)",
    ),
    (
        0x6A85,
        StatusWord::NcInconsistentWithTlv,
        "6A85 (Nc inconsistent with TLV structure)",
    ),
    (
        0x6A86,
        StatusWord::IncorrectP1P2,
        "6A86 (incorrect parameters P1-P2)",
    ),
    (
        0x6A87,
        StatusWord::NcInconsistentWithP1P2,
        "6A87 (Nc inconsistent with parameters P1-P2)",
    ),
    (
        0x6A88,
        StatusWord::ReferencedDataNotFound,
        "6A88 (referenced data not found)",
    ),
    (
        0x6A89,
        StatusWord::FileAlreadyExists,
        "6A89 (file already exists)",
    ),
    (
        0x6A8A,
        StatusWord::DfNameAlreadyExists,
        "6A8A (DF name already exists)",
    ),
    (
        0x6B00,
        StatusWord::WrongP1P2,
        "6B00 (wrong parameters P1-P2)",
    ),
    (
        0x6C10,
        StatusWord::WrongLe(0x10),
        "6C10 (wrong Le, exact length is 16)",
    ),
    (
        0x6C00,
        StatusWord::WrongLe(0x00),
        "6C00 (wrong Le, exact length is 256)",
    ),
    (
        0x6D00,
        StatusWord::InsNotSupported,
        "6D00 (instruction code not supported or invalid)",
    ),
    (
        0x6E00,
        StatusWord::ClaNotSupported,
        "6E00 (class not supported)",
    ),
    (
        0x6F00,
        StatusWord::NoPreciseDiagnosis,
        "6F00 (no precise diagnosis)",
    ),
    // Values without a meaning of their own keep their bytes and say what SW1 implies.
    (
        0x6201,
        StatusWord::Unknown(0x6201),
        "6201 (unknown warning, non-volatile memory unchanged)",
    ),
    (
        0x63B2,
        StatusWord::Unknown(0x63B2),
        "63B2 (unknown warning, non-volatile memory changed)",
    ),
    (
        0x6481,
        StatusWord::Unknown(0x6481),
        "6481 (unknown execution error, non-volatile memory unchanged)",
    ),
    (
        0x6582,
        StatusWord::Unknown(0x6582),
        "6582 (unknown execution error, non-volatile memory changed)",
    ),
    (
        0x6A90,
        StatusWord::Unknown(0x6A90),
        "6A90 (unknown checking error)",
    ),
    (
        0x9100,
        StatusWord::Unknown(0x9100),
        "9100 (proprietary status)",
    ),
    (
        0x0000,
        StatusWord::Unknown(0x0000),
        "0000 (not an ISO 7816-4 status word)",
    ),
];

#[test]
fn every_status_word_decodes_to_its_meaning() {
    for &(value, word, display) in STATUS_WORDS {
        assert_eq!(StatusWord::from_u16(value), word, "{value:04X}");
        let [sw1, sw2] = value.to_be_bytes();
        assert_eq!(StatusWord::from_bytes(sw1, sw2), word, "{value:04X}");
        assert_eq!((word.sw1(), word.sw2()), (sw1, sw2), "{value:04X}");
        assert_eq!(word.to_u16(), value, "{value:04X}");
        assert_eq!(word.to_string(), display, "{value:04X}");
        let json = serde_json::to_string(&word).expect("serialises");
        assert_eq!(json, format!("\"{value:04X}\""));
    }
}

#[test]
fn status_word_round_trips_for_every_u16() {
    for value in 0..=u16::MAX {
        let word = StatusWord::from_u16(value);
        assert_eq!(word.to_u16(), value, "{value:04X}");
        // Display always starts with the four hex digits.
        assert!(
            word.to_string().starts_with(&format!("{value:04X} (")),
            "{value:04X}"
        );
    }
}

#[test]
fn status_word_classes() {
    // (value, success, warning, error)
    let table = [
        (0x9000, true, false, false),
        (0x611C, false, false, false),
        (0x6283, false, true, false),
        (0x63C1, false, true, false),
        (0x6400, false, false, true),
        (0x6983, false, false, true),
        (0x6F00, false, false, true),
        (0x9100, false, false, false),
    ];
    for (value, success, warning, error) in table {
        let word = StatusWord::from_u16(value);
        assert_eq!(
            (word.is_success(), word.is_warning(), word.is_error()),
            (success, warning, error),
            "{value:04X}"
        );
    }
}

#[test]
fn instruction_names_respect_the_class() {
    let table: &[(u8, u8, Option<&str>)] = &[
        (0x00, ins::SELECT, Some("SELECT")),
        (0x00, ins::READ_RECORD, Some("READ RECORD")),
        (0x00, ins::VERIFY, Some("VERIFY")),
        (0x00, ins::GET_CHALLENGE, Some("GET CHALLENGE")),
        (
            0x00,
            ins::INTERNAL_AUTHENTICATE,
            Some("INTERNAL AUTHENTICATE"),
        ),
        (
            0x00,
            ins::EXTERNAL_AUTHENTICATE,
            Some("EXTERNAL AUTHENTICATE"),
        ),
        (0x00, ins::GET_RESPONSE, Some("GET RESPONSE")),
        (0x00, ins::GET_DATA, Some("GET DATA")),
        (
            0x00,
            ins::PERFORM_SECURITY_OPERATION,
            Some("PERFORM SECURITY OPERATION"),
        ),
        (
            0x00,
            ins::CHANGE_REFERENCE_DATA,
            Some("CHANGE REFERENCE DATA"),
        ),
        (0x00, ins::MANAGE_CHANNEL, Some("MANAGE CHANNEL")),
        (0x00, 0xB3, Some("READ RECORD")),
        // Secure messaging and chaining bits keep the interindustry class.
        (0x0C, ins::SELECT, Some("SELECT")),
        (
            0x10,
            ins::PERFORM_SECURITY_OPERATION,
            Some("PERFORM SECURITY OPERATION"),
        ),
        (0x40, ins::READ_BINARY, Some("READ BINARY")),
        // EMV commands only exist in a proprietary class (CLA b8 = 1).
        (
            0x80,
            ins::GET_PROCESSING_OPTIONS,
            Some("GET PROCESSING OPTIONS"),
        ),
        (0x00, ins::GET_PROCESSING_OPTIONS, None),
        (0x80, ins::GENERATE_AC, Some("GENERATE AC")),
        (0x00, ins::GENERATE_AC, None),
        (0x80, ins::GET_DATA, Some("GET DATA")),
        (0x84, ins::APPLICATION_BLOCK, Some("APPLICATION BLOCK")),
        (0x84, ins::APPLICATION_UNBLOCK, Some("APPLICATION UNBLOCK")),
        (0x84, ins::CARD_BLOCK, Some("CARD BLOCK")),
        (0x8C, ins::PIN_CHANGE_UNBLOCK, Some("PIN CHANGE/UNBLOCK")),
        // Interindustry names do not apply to a proprietary class.
        (0x80, ins::SELECT, None),
        (0x00, ins::CARD_BLOCK, None),
        // RFU and invalid classes have no names.
        (0x20, ins::SELECT, None),
        (0xFF, ins::GET_DATA, None),
        (0x00, 0x01, None),
    ];
    for &(cla, ins_byte, expected) in table {
        assert_eq!(
            instruction_name(cla, ins_byte),
            expected,
            "{cla:02X} {ins_byte:02X}"
        );
    }
}

#[test]
fn commands_serialise_with_hex_data() {
    let command = Command::new(0x00, 0xA4, 0x04, 0x00)
        .with_data(bytes("A0 00 00 00 04 10 10"))
        .and_then(|c| c.with_le(256))
        .expect("valid");
    let json = serde_json::to_string(&command).expect("serialises");
    assert_eq!(
        json,
        r#"{"cla":0,"ins":164,"p1":4,"p2":0,"data":"A0000000041010","ne":256}"#
    );
    let response = Response::new(bytes("6F 00"), StatusWord::WrongLe(0x1C));
    let json = serde_json::to_string(&response).expect("serialises");
    assert_eq!(json, r#"{"data":"6F00","sw":"6C1C"}"#);
}

fn command_strategy() -> impl Strategy<Value = Command> {
    let data = prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 0..=300),
        1 => proptest::collection::vec(any::<u8>(), 0..=70_000),
    ];
    let ne = prop_oneof![
        Just(None),
        (1usize..=300).prop_map(Some),
        (1usize..=65_536).prop_map(Some),
    ];
    (any::<[u8; 4]>(), data, ne).prop_map(|([cla, ins_byte, p1, p2], mut data, ne)| {
        data.truncate(65_535);
        let command = Command::new(cla, ins_byte, p1, p2)
            .with_data(data)
            .expect("truncated to fit");
        match ne {
            Some(ne) => command.with_le(ne).expect("in range"),
            None => command,
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// build → encode → parse → encode gives back the command and the same bytes.
    #[test]
    fn build_encode_parse_round_trip(command in command_strategy()) {
        let encoded = command.to_bytes();
        let parsed = Command::parse(&encoded).expect("own encoding parses");
        prop_assert_eq!(&parsed, &command);
        prop_assert_eq!(parsed.to_bytes(), encoded.clone());
        let view = CommandView::parse(&encoded).expect("own encoding parses");
        prop_assert_eq!(view.case(), command.case());
        prop_assert_eq!(view.data(), command.data());
        // The extended form parses back to the same command too.
        let extended = command.to_bytes_with(Encoding::Extended).expect("always encodable");
        prop_assert_eq!(Command::parse(&extended).expect("parses"), command.clone());
        // The short form exists exactly when the command does not need extended fields.
        prop_assert_eq!(command.to_bytes_with(Encoding::Short).is_ok(), !command.needs_extended());
    }

    /// Arbitrary bytes never panic; whatever parses re-encodes to the same bytes in its form.
    #[test]
    fn command_parse_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..600)) {
        let view = CommandView::parse(&raw);
        let owned = Command::parse(&raw);
        prop_assert_eq!(view.map(|v| v.to_owned()), owned.clone());
        if let Ok(command) = owned {
            let view = CommandView::parse(&raw).expect("parsed above");
            let form = if view.case().is_extended() { Encoding::Extended } else { Encoding::Short };
            prop_assert_eq!(command.to_bytes_with(form).expect("encodable"), raw);
        }
    }

    /// Near-valid shapes (a header, 00, a length, some bytes) never panic either.
    #[test]
    fn extended_shapes_never_panic(
        header in any::<[u8; 4]>(),
        len in any::<[u8; 2]>(),
        rest in proptest::collection::vec(any::<u8>(), 0..40),
    ) {
        let mut raw = header.to_vec();
        raw.push(0);
        raw.extend_from_slice(&len);
        raw.extend_from_slice(&rest);
        let _ = Command::parse(&raw);
        let _ = CommandView::parse(&raw);
    }

    #[test]
    fn response_parse_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..300)) {
        match Response::parse(&raw) {
            Ok(response) => prop_assert_eq!(response.to_bytes(), raw),
            Err(error) => prop_assert_eq!(error, ApduError::ResponseTooShort { len: raw.len() }),
        }
    }
}

#[test]
fn debug_hides_pin_blocks_but_not_other_data() {
    // (CLA, INS, hidden?)
    let table = [
        (0x00, ins::VERIFY, true),
        (0x00, ins::CHANGE_REFERENCE_DATA, true),
        (0x00, ins::RESET_RETRY_COUNTER, true),
        (0x8C, ins::PIN_CHANGE_UNBLOCK, true),
        (0x00, ins::SELECT, false),
        (0x80, ins::GENERATE_AC, false),
    ];
    let secret = bytes("24 12 34 FF FF FF FF FF");
    for (cla, ins_byte, hidden) in table {
        let command = Command::new(cla, ins_byte, 0x00, 0x80)
            .with_data(secret.clone())
            .expect("fits");
        assert_eq!(command.carries_secret(), hidden, "{cla:02X} {ins_byte:02X}");
        let encoded = command.to_bytes();
        let view = CommandView::parse(&encoded).expect("parses");
        for shown in [format!("{command:?}"), format!("{view:?}")] {
            assert_eq!(shown.contains("241234FFFFFFFFFF"), !hidden, "{shown}");
            assert_eq!(shown.contains("<8 bytes hidden>"), hidden, "{shown}");
        }
    }
}
