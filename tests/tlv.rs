//! Behaviour of `telepay::tlv`, written as tables: the BER-TLV parser on well-formed and
//! malformed inputs (ISO 7816-4 §5.2, EMV Book 3 Annex B), DER-minimal encoding, DOL
//! building and splitting (EMV Book 3 §5.4), decoding of values by format and bit field,
//! and the pretty-printer on real card responses kept under `tests/fixtures/tlv/`.
//! Properties: encode → parse → encode round trips, agreement with the `iso7816-tlv`
//! crate, and no panic on arbitrary bytes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use telepay::tlv::dictionary::{self, Format};
use telepay::tlv::dol::{DolEntry, build_dol_data, encode_dol, parse_dol, split_dol_data};
use telepay::tlv::{
    DecodeContext, TagNumber, Tlv, TlvError, Value, decode_value, decode_value_with, find, parse,
    render, render_bytes,
};

/// Bytes from hex written with spaces for reading.
fn h(s: &str) -> Vec<u8> {
    let compact: String = s.split_whitespace().collect();
    hex::decode(compact).unwrap_or_else(|e| panic!("bad hex in test {s:?}: {e}"))
}

fn p(tag: TagNumber, value: &str) -> Tlv {
    Tlv::primitive(tag, h(value))
}

fn c(tag: TagNumber, children: Vec<Tlv>) -> Tlv {
    Tlv::constructed(tag, children)
}

fn hexbytes(s: &str) -> telepay::tlv::ber::HexBytes {
    telepay::tlv::ber::HexBytes(h(s))
}

// ---- parser: well-formed input -----------------------------------------------------

#[test]
fn parses_well_formed_input() {
    let long_128 = "AB".repeat(128);
    let long_256 = "CD".repeat(256);
    let rows: Vec<(&str, String, Vec<Tlv>)> = vec![
        ("empty input", String::new(), vec![]),
        (
            "one-byte tag, short length",
            "8A 02 3030".into(),
            vec![p(0x8A, "3030")],
        ),
        ("zero length", "9F45 00".into(), vec![p(0x9F45, "")]),
        ("two-byte tag", "9F27 01 80".into(), vec![p(0x9F27, "80")]),
        (
            "three-byte tag",
            "DF8101 02 0102".into(),
            vec![p(0xDF8101, "0102")],
        ),
        (
            "long form 81 (128 bytes)",
            format!("5F50 81 80 {long_128}"),
            vec![p(0x5F50, &long_128)],
        ),
        (
            "long form 82 (256 bytes)",
            format!("9F46 82 0100 {long_256}"),
            vec![p(0x9F46, &long_256)],
        ),
        (
            "long form 84, four length bytes",
            "8A 84 00000002 3030".into(),
            vec![p(0x8A, "3030")],
        ),
        (
            "non-minimal 81 05 accepted",
            "5A 81 05 1234567890".into(),
            vec![p(0x5A, "1234567890")],
        ),
        (
            "two objects in a row",
            "5F24 03 261231 9F02 06 000000001250".into(),
            vec![p(0x5F24, "261231"), p(0x9F02, "000000001250")],
        ),
        (
            "constructed nesting",
            "6F 0F 84 07 A0000000421010 A5 04 50 02 4342".into(),
            vec![c(
                0x6F,
                vec![p(0x84, "A0000000421010"), c(0xA5, vec![p(0x50, "4342")])],
            )],
        ),
        ("empty template", "70 00".into(), vec![c(0x70, vec![])]),
        ("only padding", "00 00 FF 00".into(), vec![]),
        (
            "00 / FF padding before, between, after (Annex B1)",
            "00 FF 8A 01 30 00 00 FF 9F27 01 80 FF FF".into(),
            vec![p(0x8A, "30"), p(0x9F27, "80")],
        ),
        (
            "padding inside a template",
            "70 09 00 8F 01 09 FF 9F32 01 03".into(),
            vec![c(0x70, vec![p(0x8F, "09"), p(0x9F32, "03")])],
        ),
        (
            "private constructed tag with unknown contents",
            "BF63 04 DF20 01 80".into(),
            vec![c(0xBF63, vec![p(0xDF20, "80")])],
        ),
    ];
    for (what, input, expected) in rows {
        assert_eq!(parse(&h(&input)), Ok(expected), "{what}");
    }
}

// ---- parser: malformed input, each with its exact error -----------------------------

#[test]
fn rejects_malformed_input_with_the_exact_error() {
    let rows: Vec<(&str, &str, TlvError)> = vec![
        (
            "truncated two-byte tag",
            "9F",
            TlvError::TruncatedTag {
                offset: 0,
                read: hexbytes("9F"),
            },
        ),
        (
            "truncated three-byte tag",
            "DF 81",
            TlvError::TruncatedTag {
                offset: 0,
                read: hexbytes("DF81"),
            },
        ),
        (
            "truncated tag after a good object",
            "8A 02 3030 9F",
            TlvError::TruncatedTag {
                offset: 4,
                read: hexbytes("9F"),
            },
        ),
        (
            "truncated tag inside a template",
            "70 01 9F",
            TlvError::TruncatedTag {
                offset: 2,
                read: hexbytes("9F"),
            },
        ),
        (
            "four-byte tag",
            "9F 81 81 01 00",
            TlvError::TagTooLong {
                offset: 0,
                read: hexbytes("9F818101"),
                max: 3,
            },
        ),
        (
            "no length byte",
            "8A",
            TlvError::TruncatedLength {
                tag: 0x8A,
                offset: 1,
                expected: 1,
                available: 0,
            },
        ),
        (
            "81 without its byte",
            "8A 81",
            TlvError::TruncatedLength {
                tag: 0x8A,
                offset: 1,
                expected: 2,
                available: 1,
            },
        ),
        (
            "82 with one byte of two",
            "9F46 82 01",
            TlvError::TruncatedLength {
                tag: 0x9F46,
                offset: 2,
                expected: 3,
                available: 2,
            },
        ),
        (
            "length beyond the data",
            "8A 03 30",
            TlvError::ValueBeyondInput {
                tag: 0x8A,
                offset: 2,
                length: 3,
                available: 1,
            },
        ),
        (
            "long-form length beyond the data",
            "8A 84 FFFFFFFF",
            TlvError::ValueBeyondInput {
                tag: 0x8A,
                offset: 6,
                length: 0xFFFF_FFFF,
                available: 0,
            },
        ),
        (
            "child overruns its template",
            "70 03 8A 05 30",
            TlvError::ValueBeyondInput {
                tag: 0x8A,
                offset: 4,
                length: 5,
                available: 1,
            },
        ),
        (
            "indefinite length 80",
            "8A 80 3030 0000",
            TlvError::IndefiniteLength {
                tag: 0x8A,
                offset: 1,
            },
        ),
        (
            "indefinite length on a template",
            "6F 80 84 01 00 00 00",
            TlvError::IndefiniteLength {
                tag: 0x6F,
                offset: 1,
            },
        ),
        (
            "over-long length 85",
            "8A 85 0000000001 30",
            TlvError::LengthTooLong {
                tag: 0x8A,
                offset: 1,
                first: 0x85,
                announced: 5,
                max: 4,
            },
        ),
        (
            "over-long length FF",
            "9F26 FF",
            TlvError::LengthTooLong {
                tag: 0x9F26,
                offset: 2,
                first: 0xFF,
                announced: 127,
                max: 4,
            },
        ),
    ];
    for (what, input, expected) in rows {
        assert_eq!(parse(&h(input)), Err(expected), "{what}");
    }
}

#[test]
fn nesting_is_bounded() {
    let max = telepay::tlv::ber::MAX_DEPTH;
    // `max` nested templates parse; one more is refused at the offset of the extra one.
    let nested = |levels: usize| {
        let mut bytes = Vec::new();
        for _ in 0..levels {
            bytes = [vec![0xE1, u8::try_from(bytes.len()).unwrap_or(0)], bytes].concat();
        }
        bytes
    };
    assert!(parse(&nested(max)).is_ok());
    assert_eq!(
        parse(&nested(max + 1)),
        Err(TlvError::TooDeep {
            tag: 0xE1,
            offset: 2 * max,
            max
        })
    );
    // 100 000 well-framed levels (six bytes each, long-form lengths) stop at the bound
    // instead of exhausting the stack.
    let levels: u32 = 100_000;
    let mut deep = Vec::new();
    for i in 0..levels {
        deep.extend_from_slice(&[0xE1, 0x84]);
        deep.extend_from_slice(&(6 * (levels - 1 - i)).to_be_bytes());
    }
    assert_eq!(
        parse(&deep),
        Err(TlvError::TooDeep {
            tag: 0xE1,
            offset: 6 * max,
            max
        })
    );
}

#[test]
fn errors_read_as_sentences_with_offsets() {
    let rows = [
        (
            "9F",
            "truncated tag at offset 0: the tag bytes 9F announce a further byte, the input ends",
        ),
        (
            "8A 03 30",
            "value of tag 8A at offset 2 is 3 byte(s) long, only 1 available",
        ),
        (
            "8A 80",
            "indefinite length (80) of tag 8A at offset 1 is not allowed",
        ),
        (
            "9F26 85",
            "over-long length field of tag 9F26 at offset 2: first byte 85 announces 5 bytes, \
             at most 4 allowed",
        ),
    ];
    for (input, message) in rows {
        let err = parse(&h(input)).err().map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some(message), "{input}");
    }
}

// ---- encoding and navigation -------------------------------------------------------

#[test]
fn encodes_der_minimal_lengths() {
    let rows: [(usize, &str); 8] = [
        (0, "00"),
        (1, "01"),
        (127, "7F"),
        (128, "8180"),
        (255, "81FF"),
        (256, "820100"),
        (65_535, "82FFFF"),
        (65_536, "83010000"),
    ];
    for (len, header) in rows {
        let bytes = Tlv::primitive(0x9F46, vec![0x5A; len]).to_bytes();
        let expected = [h("9F46"), h(header)].concat();
        assert_eq!(
            bytes.get(..expected.len()),
            Some(&expected[..]),
            "length {len}"
        );
        assert_eq!(bytes.len(), expected.len() + len, "length {len}");
    }
}

#[test]
fn non_minimal_input_is_written_back_minimal() {
    let parsed = parse(&h("70 81 05 8A 81 02 3030")).unwrap_or_default();
    let bytes: Vec<u8> = parsed.iter().flat_map(Tlv::to_bytes).collect();
    assert_eq!(bytes, h("70 04 8A 02 3030"));
}

#[test]
fn find_is_depth_first_and_includes_self() {
    let tree = parse(&h("6F 0D 84 02 A000 A5 07 88 01 02 9F11 01 01 88 01 07")).unwrap_or_default();
    let first = tree
        .first()
        .cloned()
        .unwrap_or_else(|| Tlv::primitive(0x01, vec![]));
    assert_eq!(first.find(0x6F).map(Tlv::tag), Some(0x6F));
    assert_eq!(find(&tree, 0x88).and_then(Tlv::bytes), Some(&[0x02][..]));
    assert_eq!(find(&tree, 0x9F11).and_then(Tlv::bytes), Some(&[0x01][..]));
    assert_eq!(find(&tree, 0x9F38), None);
    let all: Vec<_> = tree.iter().flat_map(|t| t.find_all(0x88)).collect();
    assert_eq!(all.len(), 2);
    assert_eq!(first.bytes(), None);
    assert!(matches!(first.value(), Value::Constructed(children) if children.len() == 2));
}

#[test]
fn serialises_tags_and_bytes_as_hex() {
    let tree = c(0x70, vec![p(0x9F27, "80")]);
    let json = serde_json::to_string(&tree).unwrap_or_default();
    assert_eq!(
        json,
        r#"{"tag":"70","value":{"Constructed":[{"tag":"9F27","value":{"Primitive":"80"}}]}}"#
    );
}

// ---- DOLs (EMV Book 3 §5.4) --------------------------------------------------------

/// The PDOL of the Visa Debit card in `tests/fixtures/tlv/visa-debit-select-aid.hex`.
const VISA_PDOL: &str = "9F6604 9F0206 9F0306 9F1A02 9505 5F2A02 9A03 9C01 9F3704";
/// The PDOL-related data its terminal sent in GET PROCESSING OPTIONS (same public log,
/// step 05: `80A8000023 8321 <this> 00`).
const VISA_PDOL_DATA: &str =
    "27000000 000000001000 000000000000 0978 0000000000 0978 230301 00 38393031";

#[test]
fn parses_dols() {
    let entries = parse_dol(&h(VISA_PDOL)).unwrap_or_default();
    let got: Vec<(TagNumber, usize)> = entries.iter().map(|e| (e.tag, e.length)).collect();
    assert_eq!(
        got,
        [
            (0x9F66, 4),
            (0x9F02, 6),
            (0x9F03, 6),
            (0x9F1A, 2),
            (0x95, 5),
            (0x5F2A, 2),
            (0x9A, 3),
            (0x9C, 1),
            (0x9F37, 4)
        ]
    );
    assert_eq!(encode_dol(&entries), Some(h(VISA_PDOL)));
    assert_eq!(parse_dol(&[]), Ok(vec![]));

    let errors: [(&str, TlvError); 3] = [
        (
            "9F",
            TlvError::TruncatedTag {
                offset: 0,
                read: hexbytes("9F"),
            },
        ),
        (
            "9F37",
            TlvError::DolMissingLength {
                tag: 0x9F37,
                offset: 2,
            },
        ),
        (
            "9F3704 95",
            TlvError::DolMissingLength {
                tag: 0x95,
                offset: 4,
            },
        ),
    ];
    for (input, expected) in errors {
        assert_eq!(parse_dol(&h(input)), Err(expected), "{input}");
    }
}

#[test]
fn builds_the_pdol_data_a_real_terminal_sent() {
    let entries = parse_dol(&h(VISA_PDOL)).unwrap_or_default();
    let terminal: BTreeMap<TagNumber, Vec<u8>> = [
        (0x9F66, h("27000000")),
        (0x9F02, h("000000001000")),
        (0x9F03, h("000000000000")),
        (0x9F1A, h("0978")),
        (0x95, h("0000000000")),
        (0x5F2A, h("0978")),
        (0x9A, h("230301")),
        (0x9C, h("00")),
        (0x9F37, h("38393031")),
    ]
    .into_iter()
    .collect();
    assert_eq!(build_dol_data(&entries, &terminal), h(VISA_PDOL_DATA));
}

#[test]
fn fits_each_value_by_the_rules_of_book_3_section_5_4() {
    // (rule, tag, requested length, terminal value or None, expected DOL data)
    let rows: [(&str, TagNumber, usize, Option<&str>, &str); 14] = [
        ("n exact", 0x9F02, 6, Some("000000001250"), "000000001250"),
        (
            "c: n too long loses leftmost bytes",
            0x9F02,
            4,
            Some("000000001250"),
            "00001250",
        ),
        (
            "d: n too short gets leading 00",
            0x9F02,
            6,
            Some("001250"),
            "000000001250",
        ),
        (
            "d: cn too short gets trailing FF",
            0x5A,
            10,
            Some("4761739001010010"),
            "4761739001010010FFFF",
        ),
        (
            "c: cn too long loses rightmost bytes",
            0x5A,
            4,
            Some("4761739001010010"),
            "47617390",
        ),
        // The case of the Stack Overflow question quoted in the DOL docs: 9F33 asked as 2.
        (
            "c: b too long loses rightmost bytes",
            0x9F33,
            2,
            Some("E0F0C8"),
            "E0F0",
        ),
        (
            "d: b too short gets trailing 00",
            0x9F33,
            4,
            Some("E0F0C8"),
            "E0F0C800",
        ),
        (
            "d: an too short gets trailing 00",
            0x9F1C,
            10,
            Some("5445524D30303031"),
            "5445524D303030310000",
        ),
        (
            "d: ans too short gets trailing 00",
            0x9F4E,
            4,
            Some("4142"),
            "41420000",
        ),
        ("b, e: absent gives zeros", 0x9F37, 4, None, "00000000"),
        (
            "a: constructed gives zeros even when known",
            0x70,
            3,
            Some("8A0130"),
            "000000",
        ),
        (
            "a: unknown to the terminal gives zeros",
            0xDF01,
            2,
            None,
            "0000",
        ),
        (
            "known to the caller, not the dictionary: as b",
            0xDF01,
            3,
            Some("0102"),
            "010200",
        ),
        (
            "zero length asks for nothing",
            0x9F37,
            0,
            Some("38393031"),
            "",
        ),
    ];
    for (rule, tag, length, value, expected) in rows {
        let mut terminal = BTreeMap::new();
        if let Some(v) = value {
            terminal.insert(tag, h(v));
        }
        let got = build_dol_data(&[DolEntry { tag, length }], &terminal);
        assert_eq!(hex::encode_upper(got), expected, "{rule}");
    }
}

#[test]
fn splits_dol_data_back_and_checks_its_length() {
    let entries = parse_dol(&h(VISA_PDOL)).unwrap_or_default();
    let data = h(VISA_PDOL_DATA);
    let split = split_dol_data(&entries, &data).unwrap_or_default();
    let got: Vec<(TagNumber, String)> = split
        .iter()
        .map(|(t, v)| (*t, hex::encode_upper(v)))
        .collect();
    let expected: Vec<(TagNumber, String)> = [
        (0x9F66, "27000000"),
        (0x9F02, "000000001000"),
        (0x9F03, "000000000000"),
        (0x9F1A, "0978"),
        (0x95, "0000000000"),
        (0x5F2A, "0978"),
        (0x9A, "230301"),
        (0x9C, "00"),
        (0x9F37, "38393031"),
    ]
    .into_iter()
    .map(|(t, v)| (t, v.to_string()))
    .collect();
    assert_eq!(got, expected);

    let short = data.get(..data.len() - 1).unwrap_or_default();
    assert_eq!(
        split_dol_data(&entries, short),
        Err(TlvError::DolDataLength {
            expected: 33,
            received: 32
        })
    );
    let long = [data.clone(), vec![0x00]].concat();
    assert_eq!(
        split_dol_data(&entries, &long),
        Err(TlvError::DolDataLength {
            expected: 33,
            received: 34
        })
    );
    assert_eq!(split_dol_data(&[], &[]), Ok(vec![]));
}

// ---- value decoding ----------------------------------------------------------------

#[test]
fn decodes_values_by_format_and_meaning() {
    // (what, tag, value, expected decoding; None = not decodable, shown as hex)
    let rows: Vec<(&str, TagNumber, &str, Option<&str>)> = vec![
        // n
        ("n digits", 0x9F15, "5411", Some("5411")),
        ("n with a nibble above 9", 0x9F15, "5A11", None),
        ("n of the wrong length", 0x9F15, "54", None),
        ("n PAN sequence number", 0x5F34, "01", Some("01")),
        // cn
        ("cn PAN", 0x5A, "4871780000000574", Some("4871780000000574")),
        (
            "cn with F padding",
            0x5A,
            "476173900101001F",
            Some("476173900101001"),
        ),
        ("cn with a digit after the padding", 0x5A, "47F1", None),
        ("cn with a nibble A-E", 0x5A, "47A1", None),
        // dates and times (n 6)
        ("expiry date", 0x5F24, "261231", Some("2026-12-31")),
        ("effective date", 0x5F25, "220301", Some("2022-03-01")),
        ("transaction date, 19YY", 0x9A, "991231", Some("1999-12-31")),
        (
            "29 February of a leap year",
            0x9A,
            "240229",
            Some("2024-02-29"),
        ),
        ("29 February of another year", 0x9A, "230229", None),
        ("month 13", 0x5F24, "251301", None),
        ("day 0", 0x5F24, "250700", None),
        ("time", 0x9F21, "235959", Some("23:59:59")),
        ("hour 24", 0x9F21, "240000", None),
        // amounts
        (
            "n amount, no currency: exponent 2",
            0x9F02,
            "000000001250",
            Some("12.50"),
        ),
        ("n amount zero", 0x9F03, "000000000000", Some("0.00")),
        ("b amount", 0x81, "000004E2", Some("12.50")),
        ("floor limit", 0x9F1B, "00002710", Some("100.00")),
        // ISO 3166 / ISO 4217
        ("country", 0x5F28, "0250", Some("France (250)")),
        ("terminal country", 0x9F1A, "0276", Some("Germany (276)")),
        ("withdrawn country code", 0x5F28, "0280", None),
        ("currency", 0x5F2A, "0978", Some("EUR (978)")),
        ("application currency", 0x9F42, "0840", Some("USD (840)")),
        (
            "reference currencies",
            0x9F3B,
            "0978 0840",
            Some("EUR (978), USD (840)"),
        ),
        ("alpha-2 country", 0x5F55, "4652", Some("\"FR\" (France)")),
        ("exponent", 0x5F36, "02", Some("02")),
        // text
        ("ans label", 0x50, "4342", Some("\"CB\"")),
        ("ans with a control byte", 0x50, "4307", None),
        (
            "ans with a quote, escaped",
            0x50,
            "412242",
            Some("\"A\\\"B\""),
        ),
        (
            "an terminal id",
            0x9F1C,
            "5445524D30303031",
            Some("\"TERM0001\""),
        ),
        ("an with a space", 0x9F1C, "5445524D20303031", None),
        ("BIC", 0x5F54, "4445555444454646", Some("\"DEUTDEFF\"")),
        ("language preference", 0x5F2D, "6672656E", Some("fr, en")),
        (
            "response code",
            0x8A,
            "5931",
            Some("\"Y1\" (offline approved)"),
        ),
        ("response code 00", 0x8A, "3030", Some("\"00\" (approved)")),
        (
            "track 2",
            0x57,
            "4871780000000574D25072211328662101000F",
            Some("4871780000000574=25072211328662101000"),
        ),
        ("track 2 without separator", 0x57, "4871780000000574", None),
        // bit fields
        (
            "AIP",
            0x82,
            "1980",
            Some(
                "cardholder verification supported; terminal risk management to be performed; CDA supported; EMV mode supported (C-2)",
            ),
        ),
        (
            "AIP with an RFU bit",
            0x82,
            "2020",
            Some("DDA supported; byte 2 bit 6 (RFU)"),
        ),
        (
            "AUC",
            0x9F07,
            "AB40",
            Some(
                "valid for domestic cash transactions; valid for domestic goods; valid for domestic services; valid at ATMs; valid at terminals other than ATMs; international cashback allowed",
            ),
        ),
        (
            "TVR",
            0x95,
            "8000048000",
            Some(
                "offline data authentication was not performed; online PIN entered; transaction exceeds floor limit",
            ),
        ),
        ("TVR clear", 0x95, "0000000000", Some("no bit set")),
        (
            "TVR RFU bit",
            0x95,
            "0100000000",
            Some("byte 1 bit 1 (RFU)"),
        ),
        (
            "IAC uses the TVR layout",
            0x9F0E,
            "1000000000",
            Some("card appears on terminal exception file"),
        ),
        (
            "TSI",
            0x9B,
            "E800",
            Some(
                "offline data authentication was performed; cardholder verification was performed; card risk management was performed; terminal risk management was performed",
            ),
        ),
        (
            "terminal capabilities",
            0x9F33,
            "E0F0C8",
            Some(
                "manual key entry; magnetic stripe; IC with contacts; plaintext PIN for ICC verification; enciphered PIN for online verification; signature (paper); enciphered PIN for offline verification; SDA; DDA; CDA",
            ),
        ),
        (
            "additional terminal capabilities",
            0x9F40,
            "6000F0A001",
            Some(
                "goods; services; numeric keys; alphabetic and special characters keys; command keys; function keys; print, attendant; display, attendant; code table 1",
            ),
        ),
        (
            "TTQ",
            0x9F66,
            "27000000",
            Some(
                "EMV mode supported; online PIN supported; signature supported; offline data authentication for online authorizations supported",
            ),
        ),
        ("C-2 PUNATC(Track2) is not a TTQ", 0x9F66, "00FE", None),
        (
            "CTQ",
            0x9F6C,
            "0400",
            Some("as C-3 CTQ: switch interface for cash transactions"),
        ),
        ("C-2 version number is not a CTQ", 0x9F6C, "0001", None),
        // CVM
        (
            "CVM results",
            0x9F34,
            "420302",
            Some("enciphered PIN verified online; if terminal supports the CVM; successful"),
        ),
        (
            "CVM results, none",
            0x9F34,
            "3F0000",
            Some("no CVM performed; always; unknown"),
        ),
        (
            "CVM list",
            0x8E,
            "000000000000000042031E031F03",
            Some(
                "X=0.00, Y=0.00; enciphered PIN verified online, if terminal supports the CVM, else next rule; signature (paper), if terminal supports the CVM, else fail; no CVM required, if terminal supports the CVM, else fail",
            ),
        ),
        (
            "CVM list with amounts",
            0x8E,
            "000003E8 00002710 4106 0109",
            Some(
                "X=10.00, Y=100.00; plaintext PIN verification performed by ICC, if transaction in application currency and under X (10.00), else next rule; plaintext PIN verification performed by ICC, if transaction in application currency and over Y (100.00), else fail",
            ),
        ),
        (
            "CVM list with an odd rule",
            0x8E,
            "0000000000000000420300",
            None,
        ),
        // others
        ("CID ARQC", 0x9F27, "80", Some("ARQC")),
        ("CID TC", 0x9F27, "40", Some("TC")),
        (
            "CID AAC with advice",
            0x9F27,
            "0A",
            Some("AAC; advice required; PIN try limit exceeded"),
        ),
        ("priority", 0x87, "01", Some("priority 1")),
        (
            "priority with confirmation",
            0x87,
            "81",
            Some("priority 1, cardholder confirmation required"),
        ),
        ("no priority", 0x87, "00", Some("no priority assigned")),
        ("SFI", 0x88, "02", Some("SFI 2")),
        (
            "AFL",
            0x94,
            "080101001001010120010200",
            Some(
                "SFI 1 record 1 (0 for offline data authentication); SFI 2 record 1 (1 for offline data authentication); SFI 4 records 1-2 (0 for offline data authentication)",
            ),
        ),
        ("AFL with first > last", 0x94, "08020100", None),
        ("AFL of 3 bytes", 0x94, "080101", None),
        ("log entry", 0x9F4D, "0B0A", Some("SFI 11, 10 records")),
        (
            "transaction type",
            0x9C,
            "09",
            Some("goods and services with cashback"),
        ),
        (
            "terminal type",
            0x9F35,
            "22",
            Some("merchant, attended, offline with online capability"),
        ),
        ("terminal type out of table", 0x9F35, "47", None),
        ("POS entry mode", 0x9F39, "07", Some("contactless chip")),
        ("code table", 0x9F11, "01", Some("ISO/IEC 8859-1")),
        ("ATC", 0x9F36, "00C3", Some("195")),
        ("PIN try counter", 0x9F17, "03", Some("3 tries left")),
        ("account type", 0x5F57, "30", Some("credit")),
        // DOLs and tag lists
        (
            "PDOL",
            0x9F38,
            "9F1A02 9F3704",
            Some("9F1A(2) Terminal Country Code, 9F37(4) Unpredictable Number"),
        ),
        ("DOL with an unknown tag", 0x8C, "DF0102", Some("DF01(2)")),
        ("malformed DOL", 0x8C, "9F1A", None),
        (
            "SDA tag list",
            0x9F4A,
            "82",
            Some("82 Application Interchange Profile"),
        ),
        // unknown or binary
        ("unknown tag", 0xDF01, "0102", None),
        ("binary without meaning", 0x84, "A0000000031010", None),
        ("certificate", 0x90, "0102", None),
    ];
    for (what, tag, value, expected) in rows {
        assert_eq!(
            decode_value(tag, &h(value)).as_deref(),
            expected,
            "{what}: {tag:X} {value}"
        );
    }
}

#[test]
fn amounts_use_the_currency_context() {
    let rows: [(Option<u16>, Option<u8>, &str); 5] = [
        (Some(978), None, "12.50 EUR"),
        (Some(392), None, "1250 JPY"),
        (Some(414), None, "1.250 KWD"),
        (Some(978), Some(0), "1250 EUR"),
        (None, Some(3), "1.250"),
    ];
    for (currency, exponent, expected) in rows {
        let ctx = DecodeContext { currency, exponent };
        assert_eq!(
            decode_value_with(0x9F02, &h("000000001250"), &ctx).as_deref(),
            Some(expected)
        );
    }
    let tree = parse(&h("9F42 02 0978 5F2A 02 0392 5F36 01 00")).unwrap_or_default();
    assert_eq!(
        DecodeContext::from_tlvs(&tree),
        DecodeContext {
            currency: Some(392),
            exponent: Some(0)
        }
    );
    let tree = parse(&h("70 09 9F42 02 0978 9F44 01 02")).unwrap_or_default();
    assert_eq!(
        DecodeContext::from_tlvs(&tree),
        DecodeContext {
            currency: Some(978),
            exponent: Some(2)
        }
    );
}

// ---- dictionary ----------------------------------------------------------------------

#[test]
fn dictionary_knows_the_books() {
    let rows: [(TagNumber, &str, Format); 10] = [
        (
            0x5A,
            "Application Primary Account Number (PAN)",
            Format::CompressedNumeric,
        ),
        (0x5F24, "Application Expiration Date", Format::Numeric),
        (0x50, "Application Label", Format::AlphaNumericSpecial),
        (0x82, "Application Interchange Profile", Format::Binary),
        (0x9F1C, "Terminal Identification", Format::AlphaNumeric),
        (0x5F55, "Issuer Country Code (alpha2 format)", Format::Alpha),
        (
            0xBF0C,
            "File Control Information (FCI) Issuer Discretionary Data",
            Format::Variable,
        ),
        (
            0x9F66,
            "Terminal Transaction Qualifiers (TTQ) / PUNATC(Track2) (C-2)",
            Format::Binary,
        ),
        (0xDF8101, "DS Summary 2", Format::Binary),
        (
            0xDF8124,
            "Reader Contactless Transaction Limit (No On-device CVM)",
            Format::Numeric,
        ),
    ];
    for (tag, name, format) in rows {
        let info = dictionary::lookup(tag);
        assert_eq!(
            info.map(|i| (i.name, i.format)),
            Some((name, format)),
            "{tag:X}"
        );
    }
    assert_eq!(
        dictionary::lookup(0x9F26).map(|i| i.templates),
        Some(&[0x77, 0x80][..])
    );
    assert_eq!(dictionary::lookup(0xDF01), None);
    assert!(dictionary::all().len() > 190);
}

// ---- rendering ---------------------------------------------------------------------

#[test]
fn renders_the_way_a_person_reads_a_dump() {
    let bytes = h(
        "6F 1B 84 07 A0000000421010 A5 10 50 02 4342 87 01 01 9F38 06 9F1A02 9F3704 \
                   5F24 03 261231 \
                   9F02 06 000000001250",
    );
    let expected = "\
6F File Control Information (FCI) Template
  84 Dedicated File (DF) Name: A0000000421010
  A5 File Control Information (FCI) Proprietary Template
    50 Application Label: \"CB\"
    87 Application Priority Indicator: 01 (priority 1)
    9F38 Processing Options Data Object List (PDOL): 9F1A(2) Terminal Country Code, 9F37(4) Unpredictable Number
5F24 Application Expiration Date: 261231 (2026-12-31)
9F02 Amount, Authorised (Numeric): 000000001250 (12.50)
";
    assert_eq!(render_bytes(&bytes), expected);
}

#[test]
fn renders_unknown_empty_and_undecodable_values_as_hex() {
    let tlvs = vec![
        p(0xDF01, "0102"),
        p(0x9F45, ""),
        p(0x5F24, "991399"),
        c(0xBF63, vec![p(0xDF20, "80")]),
        p(0x9F42, "0978"),
        p(0x9F02, "000000001250"),
    ];
    let expected = "\
DF01: 0102
9F45 Data Authentication Code: (empty)
5F24 Application Expiration Date: 991399
BF63
  DF20: 80
9F42 Application Currency Code: EUR (978)
9F02 Amount, Authorised (Numeric): 000000001250 (12.50 EUR)
";
    assert_eq!(render(&tlvs), expected);
    assert_eq!(render(&[]), "");
}

#[test]
fn render_bytes_falls_back_to_hex_with_the_error() {
    let rows = [
        (
            "8A 03 30",
            "8A0330 (not BER-TLV: value of tag 8A at offset 2 is 3 byte(s) long, only 1 available)\n",
        ),
        (
            "6F 80",
            "6F80 (not BER-TLV: indefinite length (80) of tag 6F at offset 1 is not allowed)\n",
        ),
        ("", ""),
    ];
    for (input, expected) in rows {
        assert_eq!(render_bytes(&h(input)), expected, "{input}");
    }
}

/// Real card responses under `tests/fixtures/tlv/`: each `NAME.hex` (whose `#` lines say
/// where it comes from) renders exactly as `NAME.render`. `TLV_BLESS=1` rewrites the
/// `.render` files (then review the diff).
#[test]
fn renders_real_card_records() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tlv");
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    inputs.retain(|p| p.extension().is_some_and(|e| e == "hex"));
    inputs.sort();
    assert!(inputs.len() >= 10, "fixtures missing in {}", dir.display());
    let bless = std::env::var_os("TLV_BLESS").is_some();
    for input in inputs {
        let text = std::fs::read_to_string(&input).unwrap_or_default();
        let first = text.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("# "),
            "{} must say where it comes from",
            input.display()
        );
        let hex: String = text.lines().filter(|l| !l.starts_with('#')).collect();
        let bytes = h(&hex);
        let tree = parse(&bytes);
        assert!(tree.is_ok(), "{}: {tree:?}", input.display());
        let rendered = render_bytes(&bytes);
        assert!(
            rendered.lines().all(|l| l == l.trim_end()),
            "trailing space"
        );
        let expected_path = input.with_extension("render");
        if bless {
            let _ = std::fs::write(&expected_path, &rendered);
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        assert_eq!(rendered, expected, "{}", input.display());
        // These cards encode DER-minimal lengths, so parse → encode gives their bytes back
        // (found within the input, which may carry padding around them).
        let reencoded: Vec<u8> = tree
            .unwrap_or_default()
            .iter()
            .flat_map(Tlv::to_bytes)
            .collect();
        assert!(
            bytes
                .windows(reencoded.len().max(1))
                .any(|w| w == reencoded),
            "{} does not re-encode to its own bytes",
            input.display()
        );
    }
}

// ---- properties --------------------------------------------------------------------

/// A valid BER tag (ISO 7816-4 §5.2.2.1) of one to three bytes, constructed or not, never
/// starting with the padding bytes 00 / FF.
fn arb_tag(constructed: bool) -> impl Strategy<Value = TagNumber> {
    let cons = if constructed { 0x20u32 } else { 0x00 };
    let class = prop_oneof![Just(0x00u32), Just(0x40), Just(0x80), Just(0xC0)];
    (
        class,
        0u32..0x1F,
        0u32..0x80,
        0x80u32..0x100,
        0u32..0x80,
        0u8..3,
    )
        .prop_filter_map(
            "not a padding byte",
            move |(class, low, second, mid, last, len)| {
                let first_short = class | cons | low;
                let first_long = class | cons | 0x1F;
                let tag = match len {
                    0 => first_short,
                    1 => (first_long << 8) | second,
                    _ => (first_long << 16) | (mid << 8) | last,
                };
                let first_byte = if len == 0 { first_short } else { first_long };
                (first_byte != 0x00 && first_byte != 0xFF).then_some(tag)
            },
        )
}

fn arb_tlv() -> impl Strategy<Value = Tlv> {
    let leaf = (arb_tag(false), prop::collection::vec(any::<u8>(), 0..300))
        .prop_map(|(tag, bytes)| Tlv::primitive(tag, bytes));
    leaf.prop_recursive(4, 48, 6, |inner| {
        (arb_tag(true), prop::collection::vec(inner, 0..6))
            .prop_map(|(tag, children)| Tlv::constructed(tag, children))
    })
}

proptest! {
    #[test]
    fn encode_parse_encode_round_trips(tlvs in prop::collection::vec(arb_tlv(), 0..4)) {
        let bytes: Vec<u8> = tlvs.iter().flat_map(Tlv::to_bytes).collect();
        let parsed = parse(&bytes);
        prop_assert_eq!(parsed.as_ref(), Ok(&tlvs));
        let again: Vec<u8> = parsed.unwrap_or_default().iter().flat_map(Tlv::to_bytes).collect();
        prop_assert_eq!(again, bytes);
    }

    /// The `iso7816-tlv` crate, an independent reader, sees the same tree in our encoding.
    #[test]
    fn iso7816_tlv_reads_our_encoding_the_same(tlv in arb_tlv()) {
        let bytes = tlv.to_bytes();
        let theirs = iso7816_tlv::ber::Tlv::from_bytes(&bytes);
        prop_assert!(theirs.is_ok(), "iso7816-tlv refused {}", hex::encode_upper(&bytes));
        if let Ok(theirs) = theirs {
            prop_assert_eq!(Tlv::from_iso7816(&theirs), tlv.clone());
            prop_assert_eq!(tlv.to_iso7816().map(|t| Tlv::from_iso7816(&t)), Some(tlv));
        }
    }

    #[test]
    fn parse_and_render_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let parsed = parse(&bytes);
        let rendered = render_bytes(&bytes);
        prop_assert!(rendered.lines().all(|l| l == l.trim_end()));
        // Whatever parses re-encodes to something that parses to the same tree.
        if let Ok(tree) = parsed {
            let again: Vec<u8> = tree.iter().flat_map(Tlv::to_bytes).collect();
            prop_assert_eq!(parse(&again), Ok(tree));
        }
    }

    #[test]
    fn templates_of_arbitrary_bytes_never_panic(
        tag in prop::sample::select(vec![0x6Fu32, 0x70, 0x77, 0xA5, 0xBF0C, 0x61]),
        body in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        // Arbitrary bytes inside a well-framed template reach the nested parser.
        let bytes = Tlv::primitive(tag, body).to_bytes();
        let _ = parse(&bytes);
        let _ = render_bytes(&bytes);
    }

    #[test]
    fn decoding_never_panics(
        index in any::<prop::sample::Index>(),
        value in prop::collection::vec(any::<u8>(), 0..40),
    ) {
        let info = index.get(dictionary::all());
        let _ = decode_value(info.tag, &value);
        let _ = decode_value_with(info.tag, &value, &DecodeContext { currency: Some(978), exponent: Some(255) });
    }

    #[test]
    fn dol_round_trips(
        entries in prop::collection::vec((arb_tag(false), 0usize..40), 0..12),
        seed in any::<u8>(),
    ) {
        // One entry per tag, so each entry's value in the map has its requested length.
        let mut seen = std::collections::BTreeSet::new();
        let entries: Vec<DolEntry> = entries
            .into_iter()
            .filter(|(tag, _)| seen.insert(*tag))
            .map(|(tag, length)| DolEntry { tag, length })
            .collect();
        prop_assert_eq!(parse_dol(&encode_dol(&entries).unwrap_or_default()), Ok(entries.clone()));
        // Values of exactly the requested length come back unchanged.
        let terminal: BTreeMap<TagNumber, Vec<u8>> = entries
            .iter()
            .map(|e| (e.tag, vec![seed; e.length]))
            .collect();
        let data = build_dol_data(&entries, &terminal);
        let split = split_dol_data(&entries, &data);
        prop_assert!(split.is_ok());
        for (entry, (tag, value)) in entries.iter().zip(split.unwrap_or_default()) {
            prop_assert_eq!(entry.tag, tag);
            prop_assert_eq!(value.len(), entry.length);
            prop_assert!(value.iter().all(|&b| b == seed));
        }
    }

    #[test]
    fn dol_data_always_has_the_requested_length(
        entries in prop::collection::vec((arb_tag(false), 0usize..40, prop::collection::vec(any::<u8>(), 0..50)), 0..12),
    ) {
        let terminal: BTreeMap<TagNumber, Vec<u8>> =
            entries.iter().map(|(t, _, v)| (*t, v.clone())).collect();
        let dol: Vec<DolEntry> =
            entries.iter().map(|(tag, length, _)| DolEntry { tag: *tag, length: *length }).collect();
        let data = build_dol_data(&dol, &terminal);
        prop_assert_eq!(data.len(), dol.iter().map(|e| e.length).sum::<usize>());
    }
}
