//! Behaviour of the ATR parser (ISO 7816-3 §8): real ATRs from a public list, exact
//! errors for malformed ones, the decoded display, and properties over generated ATRs.

use proptest::prelude::*;
use telepay::atr::{Atr, AtrByte, AtrError, Convention, Protocol, SpecificMode, T1Parameters};

fn bytes(hex_text: &str) -> Vec<u8> {
    let compact: String = hex_text.split_whitespace().collect();
    hex::decode(compact).expect("test hex is valid")
}

/// One line of `fixtures/atr/real_atrs.txt`.
struct RealAtr {
    line: usize,
    atr: Vec<u8>,
    protocols: String,
    fi: u16,
    di: u8,
    extended: bool,
    chaining: bool,
    description: String,
}

fn yes_no(field: &str, line: usize) -> bool {
    match field {
        "yes" => true,
        "no" => false,
        other => panic!("line {line}: expected yes or no, found {other:?}"),
    }
}

fn real_atrs() -> Vec<RealAtr> {
    include_str!("fixtures/atr/real_atrs.txt")
        .lines()
        .enumerate()
        .filter(|(_, text)| !text.trim().is_empty() && !text.starts_with('#'))
        .map(|(index, text)| {
            let line = index + 1;
            let fields: Vec<&str> = text.split('|').map(str::trim).collect();
            let [atr, protocols, fi, di, extended, chaining, description] = fields[..] else {
                panic!("line {line}: expected 7 fields, found {}", fields.len());
            };
            RealAtr {
                line,
                atr: bytes(atr),
                protocols: protocols.to_owned(),
                fi: fi.parse().expect("Fi is a number"),
                di: di.parse().expect("Di is a number"),
                extended: yes_no(extended, line),
                chaining: yes_no(chaining, line),
                description: description.to_owned(),
            }
        })
        .collect()
}

#[test]
fn real_atrs_parse_with_their_protocols_and_rates() {
    let cards = real_atrs();
    assert!(cards.len() >= 20, "fixture has {} ATRs", cards.len());
    assert!(
        cards
            .iter()
            .filter(|c| c.description.contains("(Bank)"))
            .count()
            >= 8
    );
    for card in &cards {
        let label = format!("line {}: {}", card.line, card.description);
        let atr = Atr::parse(&card.atr).unwrap_or_else(|e| panic!("{label}: {e}"));
        assert_eq!(atr.as_bytes(), card.atr.as_slice(), "{label}");
        let protocols: Vec<String> = atr.protocols().iter().map(ToString::to_string).collect();
        assert_eq!(protocols.join(" "), card.protocols, "{label}");
        assert_eq!((atr.fi(), atr.di()), (card.fi, card.di), "{label}");
        assert_eq!(atr.supports_extended_length(), card.extended, "{label}");
        assert_eq!(atr.supports_command_chaining(), card.chaining, "{label}");
        // ISO 7816-3 §8.2.5: TCK present exactly when a TDi indicates some T ≠ 0.
        let indicates_non_t0 = atr
            .interface_groups()
            .iter()
            .filter_map(|g| g.td)
            .any(|td| td & 0x0F != 0);
        assert_eq!(atr.tck().is_some(), indicates_non_t0, "{label}");
        assert_eq!(
            atr.tck(),
            indicates_non_t0.then(|| *card.atr.last().expect("non-empty")),
            "{label}"
        );
        let expected_convention = if card.atr.first() == Some(&0x3F) {
            Convention::Inverse
        } else {
            Convention::Direct
        };
        assert_eq!(atr.convention(), expected_convention, "{label}");
        // The display names every byte: TS, T0, the protocols, TCK when present.
        let shown = atr.to_string();
        assert!(
            shown.contains(&format!("TS = {:02X}", card.atr[0])),
            "{label}\n{shown}"
        );
        assert!(
            shown.ends_with(&format!("Protocols: {}", protocols.join(", "))),
            "{label}\n{shown}"
        );
        if let Some(tck) = atr.tck() {
            assert!(
                shown.contains(&format!("TCK = {tck:02X} (correct)")),
                "{label}\n{shown}"
            );
        }
    }
}

#[test]
fn every_required_kind_of_card_is_in_the_fixture() {
    let cards = real_atrs();
    let parsed: Vec<Atr> = cards
        .iter()
        .map(|c| Atr::parse(&c.atr).expect("parses"))
        .collect();
    assert!(
        parsed
            .iter()
            .any(|a| a.protocols() == [Protocol::T0] && a.tck().is_none())
    );
    assert!(
        parsed
            .iter()
            .any(|a| a.protocols() == [Protocol::T1] && a.tck().is_some())
    );
    assert!(parsed.iter().any(|a| a.convention() == Convention::Inverse));
    assert!(
        parsed
            .iter()
            .any(|a| a.protocols() == [Protocol::T0, Protocol::T1])
    );
    assert!(parsed.iter().any(Atr::supports_extended_length));
    assert!(parsed.iter().any(Atr::supports_command_chaining));
}

#[test]
fn interface_bytes_decode_to_transmission_parameters() {
    // UK Metro Bank Mastercard: TA1 91, TC1 FF, TA2 81 (specific mode T=1), T=1 TA3 TB3 TC3.
    let metro = Atr::parse(&bytes(
        "3B F7 91 00 FF 91 81 71 FE 40 00 0A 02 60 CF 51 04 CB 7F",
    ))
    .expect("parses");
    assert_eq!((metro.fi(), metro.di(), metro.f_max_mhz()), (512, 1, 5.0));
    assert_eq!(metro.extra_guard_time(), 255);
    assert_eq!(
        metro.specific_mode(),
        Some(SpecificMode {
            protocol: Protocol::T1,
            can_change: false,
            implicit_parameters: false
        })
    );
    assert_eq!(
        metro.t1_parameters(),
        Some(T1Parameters {
            ifsc: 254,
            bwi: 4,
            cwi: 0,
            crc: false
        })
    );
    assert_eq!(metro.historical_bytes(), bytes("0A 02 60 CF 51 04 CB"));

    // eNCOS MChip: TD1 = 40 announces TC2, the T=0 waiting time integer.
    let encos = Atr::parse(&bytes(
        "3B DF 11 00 40 0A 00 31 80 71 86 66 65 4E 43 4F 53 31 83 90 00",
    ))
    .expect("parses");
    assert_eq!(encos.waiting_time_integer(), 10);
    assert_eq!(encos.t1_parameters(), None);
    assert_eq!(encos.extra_guard_time(), 0);

    // SIM-style ATR: T=15 global byte TA3 = C6 (no clock-stop preference, classes B and C).
    let sim = Atr::parse(&bytes(
        "3B 9F 96 80 1F C6 80 31 E0 73 FE 21 1B 64 41 02 41 00 82 90 00 C2",
    ))
    .expect("parses");
    assert_eq!(sim.clock_stop_and_class(), Some(0xC6));
    assert_eq!(sim.protocols(), [Protocol::T0]);
    assert_eq!(sim.card_capabilities(), Some(&[0xFE, 0x21, 0x1B][..]));

    // Absent TA1 means the defaults Fi = 372, Di = 1, f(max) = 5 MHz; absent TB3 means
    // BWI 4 and CWI 13.
    let minimal = Atr::parse(&bytes("3B 80 01 81")).expect("parses");
    assert_eq!(
        (minimal.fi(), minimal.di(), minimal.f_max_mhz()),
        (372, 1, 5.0)
    );
    assert_eq!(
        minimal.t1_parameters(),
        Some(T1Parameters {
            ifsc: 32,
            bwi: 4,
            cwi: 13,
            crc: false
        })
    );

    // RFU values in TA1 (FI = 7, DI = 0) are reported as 0 and shown as RFU.
    let rfu = Atr::parse(&bytes("3B 10 70")).expect("parses");
    assert_eq!((rfu.fi(), rfu.di(), rfu.f_max_mhz()), (0, 0, 0.0));
    assert!(
        rfu.to_string()
            .contains("TA1 = 70: Fi=RFU (FI=7) Di=RFU (DI=0)")
    );
}

#[test]
fn display_reads_like_a_person_decoding_the_atr() {
    let atr = Atr::parse(&bytes(
        "3B DA 18 FF 81 B1 FE 75 1F 03 00 31 C5 73 C0 01 40 00 90 00 0C",
    ))
    .expect("parses");
    let expected = "\
ATR: 3B DA 18 FF 81 B1 FE 75 1F 03 00 31 C5 73 C0 01 40 00 90 00 0C
TS = 3B: direct convention
T0 = DA: TA1 TC1 TD1 present, 10 historical bytes
TA1 = 18: Fi=372 Di=12 (f max 5 MHz)
TC1 = FF: extra guard time N=255: minimum guard time (12 etu for T=0, 11 etu for T=1)
TD1 = 81: T=1 follows; TD2 present
TD2 = B1: T=1 follows; TA3 TB3 TD3 present
TA3 (T=1) = FE: IFSC=254
TB3 (T=1) = 75: BWI=7, CWI=5
TD3 = 1F: T=15 follows; TA4 present
TA4 (T=15) = 03: clock stop not supported, classes A (5 V), B (3 V)
Historical bytes (10): 00 31 C5 73 C0 01 40 00 90 00 \".1.s..@...\"
  category 00: compact-TLV data objects, then status LCS=00 SW=9000
  tag 3 (card service data) = C5
  tag 7 (card capabilities) = C0 01 40
  card supports extended Lc and Le fields
TCK = 0C (correct)
Protocols: T=1";
    assert_eq!(atr.to_string(), expected);

    let inverse =
        Atr::parse(&bytes("3F 6C 00 00 3D A0 30 BE 41 00 37 01 00 04 90 00")).expect("parses");
    let expected = "\
ATR: 3F 6C 00 00 3D A0 30 BE 41 00 37 01 00 04 90 00
TS = 3F: inverse convention
T0 = 6C: TB1 TC1 present, 12 historical bytes
TB1 = 00: VPP programming (deprecated): PI1=0, II=0
TC1 = 00: extra guard time N=0 etu
Historical bytes (12): 3D A0 30 BE 41 00 37 01 00 04 90 00 \"=.0.A.7.....\"
  category 3D: proprietary format
Protocols: T=0";
    assert_eq!(inverse.to_string(), expected);
}

/// Each malformed shape gets its own error, with the offset and what was expected.
#[test]
fn malformed_atrs_are_rejected_precisely() {
    let too_long = {
        // TD1..TD18 each announce only the next TD (T=0), then 15 historical bytes.
        let mut raw = vec![0x3B, 0x8F];
        raw.extend(std::iter::repeat_n(0x80, 18));
        raw.push(0x00);
        raw.extend(std::iter::repeat_n(0x41, 15));
        raw
    };
    let table: Vec<(Vec<u8>, AtrError)> = vec![
        (bytes(""), AtrError::Empty),
        (bytes("3A 00"), AtrError::BadTs { ts: 0x3A }),
        (bytes("03 00"), AtrError::BadTs { ts: 0x03 }),
        (
            bytes("3B"),
            AtrError::Truncated {
                offset: 1,
                expected: AtrByte::T0,
            },
        ),
        (
            bytes("3B 10"),
            AtrError::Truncated {
                offset: 2,
                expected: AtrByte::Ta(1),
            },
        ),
        (
            bytes("3B 80"),
            AtrError::Truncated {
                offset: 2,
                expected: AtrByte::Td(1),
            },
        ),
        (
            bytes("3B E0 11 00"),
            AtrError::Truncated {
                offset: 4,
                expected: AtrByte::Td(1),
            },
        ),
        (
            bytes("3B 80 81"),
            AtrError::Truncated {
                offset: 3,
                expected: AtrByte::Td(2),
            },
        ),
        (
            bytes("3B 80 21"),
            AtrError::Truncated {
                offset: 3,
                expected: AtrByte::Tb(2),
            },
        ),
        (
            bytes("3B 80 80 41"),
            AtrError::Truncated {
                offset: 4,
                expected: AtrByte::Tc(3),
            },
        ),
        (
            bytes("3B 02 14"),
            AtrError::Truncated {
                offset: 3,
                expected: AtrByte::Historical { index: 2, count: 2 },
            },
        ),
        (
            bytes("3B 80 4F"),
            AtrError::T15InTd1 {
                offset: 2,
                td1: 0x4F,
            },
        ),
        (
            bytes("3B 81 01 AA"),
            AtrError::TckMissing {
                offset: 4,
                protocol: 1,
            },
        ),
        (
            bytes("3B 80 80 1F 00"),
            AtrError::TckMissing {
                offset: 5,
                protocol: 15,
            },
        ),
        // 81 ^ 01 ^ AA = 2A.
        (
            bytes("3B 81 01 AA 00"),
            AtrError::TckMismatch {
                expected: 0x2A,
                found: 0x00,
            },
        ),
        // A real ATR (Yubikey 5 NFC) with its TCK altered.
        (
            bytes("3B FD 13 00 00 81 31 FE 15 80 73 C0 21 C0 57 59 75 62 69 4B 65 79 41"),
            AtrError::TckMismatch {
                expected: 0x40,
                found: 0x41,
            },
        ),
        // T=0 only: TCK must be absent, so an extra byte is trailing.
        (
            bytes("3B 02 14 50 00"),
            AtrError::TrailingBytes {
                offset: 4,
                count: 1,
            },
        ),
        (
            bytes("3B 81 01 AA 2A FF FF"),
            AtrError::TrailingBytes {
                offset: 5,
                count: 2,
            },
        ),
        (too_long, AtrError::TooLong { len: 36 }),
        // 40 TD bytes: rejected once the interface bytes pass 33 bytes (after TD32, offset 33).
        (
            [vec![0x3B, 0x80], vec![0x80; 40]].concat(),
            AtrError::TooLong { len: 34 },
        ),
    ];
    for (raw, expected) in table {
        assert_eq!(
            Atr::parse(&raw),
            Err(expected),
            "{}",
            hex::encode_upper(&raw)
        );
    }
}

#[test]
fn error_messages_name_the_byte() {
    let table = [
        (
            AtrError::Truncated {
                offset: 3,
                expected: AtrByte::Historical { index: 2, count: 2 },
            },
            "ATR truncated at offset 3: expected historical byte 2 of 2",
        ),
        (
            AtrError::TckMissing {
                offset: 4,
                protocol: 1,
            },
            "TCK missing at offset 4: required because T=1 is indicated",
        ),
        (
            AtrError::TckMismatch {
                expected: 0x2A,
                found: 0x00,
            },
            "TCK mismatch: expected 2A, found 00",
        ),
        (
            AtrError::BadTs { ts: 0x03 },
            "TS = 03 at offset 0: expected 3B (direct convention) or 3F (inverse convention) \
             (03 is 3F read in direct convention: decode inverse-convention bytes first)",
        ),
    ];
    for (error, message) in table {
        assert_eq!(error.to_string(), message);
    }
}

#[test]
fn atr_serialises_with_hex_bytes() {
    let atr = Atr::parse(&bytes("3B 81 01 AA 2A")).expect("parses");
    let json = serde_json::to_value(&atr).expect("serialises");
    assert_eq!(json["raw"], "3B8101AA2A");
    assert_eq!(json["historical"], "AA");
    assert_eq!(json["convention"], "Direct");
    assert_eq!(json["tck"], 0x2A);
}

/// One interface level of a generated ATR: TA, TB, TC and the T of the TD that ends it.
type Level = (Option<u8>, Option<u8>, Option<u8>, u8);
/// TA, TB, TC and TD of one level as bytes to write.
type LevelBytes = (Option<u8>, Option<u8>, Option<u8>, Option<u8>);

/// Encodes levels (the last has no TD) and historical bytes, with TCK when required.
fn encode(
    levels: &[Level],
    last: (Option<u8>, Option<u8>, Option<u8>),
    historical: &[u8],
) -> Vec<u8> {
    let presence = |ta: Option<u8>, tb: Option<u8>, tc: Option<u8>, td: bool| {
        u8::from(ta.is_some())
            | u8::from(tb.is_some()) << 1
            | u8::from(tc.is_some()) << 2
            | u8::from(td) << 3
    };
    let mut all: Vec<LevelBytes> = levels
        .iter()
        .map(|&(a, b, c, t)| (a, b, c, Some(t)))
        .collect();
    all.push((last.0, last.1, last.2, None));
    let count = u8::try_from(historical.len()).expect("at most 15");
    let mut raw = vec![0x3B];
    let (a, b, c, t) = all[0];
    raw.push(presence(a, b, c, t.is_some()) << 4 | count);
    for (i, &(ta, tb, tc, t)) in all.iter().enumerate() {
        raw.extend(ta);
        raw.extend(tb);
        raw.extend(tc);
        if let Some(t) = t {
            let (na, nb, nc, nt) = all[i + 1];
            raw.push(presence(na, nb, nc, nt.is_some()) << 4 | t);
        }
    }
    raw.extend_from_slice(historical);
    if levels.iter().any(|&(_, _, _, t)| t != 0) {
        let tck = raw[1..].iter().fold(0, |acc, b| acc ^ b);
        raw.push(tck);
    }
    raw
}

fn level() -> impl Strategy<Value = Level> {
    (
        any::<Option<u8>>(),
        any::<Option<u8>>(),
        any::<Option<u8>>(),
        0u8..=15,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn parse_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..48)) {
        if let Ok(atr) = Atr::parse(&raw) {
            prop_assert_eq!(atr.as_bytes(), raw.as_slice());
            let _ = atr.to_string();
        }
    }

    #[test]
    fn parse_never_panics_on_plausible_starts(
        ts in prop_oneof![Just(0x3Bu8), Just(0x3F)],
        rest in proptest::collection::vec(any::<u8>(), 0..40),
    ) {
        let mut raw = vec![ts];
        raw.extend(rest);
        if let Ok(atr) = Atr::parse(&raw) {
            let _ = atr.to_string();
            let _ = (atr.protocols(), atr.fi(), atr.di(), atr.t1_parameters(), atr.compact_tlv());
        }
    }

    /// Generated well-formed ATRs parse back to their parts, and a wrong TCK is caught.
    #[test]
    fn generated_atrs_parse_to_their_parts(
        levels in proptest::collection::vec(level(), 0..3),
        last in (any::<Option<u8>>(), any::<Option<u8>>(), any::<Option<u8>>()),
        historical in proptest::collection::vec(any::<u8>(), 0..=15),
    ) {
        // T=15 is invalid in TD1 (ISO 7816-3 §8.2.3).
        prop_assume!(levels.first().is_none_or(|&(_, _, _, t)| t != 15));
        let raw = encode(&levels, last, &historical);
        let atr = Atr::parse(&raw).expect("well-formed");
        prop_assert_eq!(atr.historical_bytes(), historical.as_slice());
        prop_assert_eq!(atr.interface_groups().len(), levels.len() + 1);
        let mut expected = Vec::new();
        for &(_, _, _, t) in &levels {
            if t != 15 && !expected.contains(&Protocol::from_t(t)) {
                expected.push(Protocol::from_t(t));
            }
        }
        if expected.is_empty() {
            expected.push(Protocol::T0);
        }
        prop_assert_eq!(atr.protocols(), expected);
        let needs_tck = levels.iter().any(|&(_, _, _, t)| t != 0);
        prop_assert_eq!(atr.tck().is_some(), needs_tck);
        if needs_tck {
            let mut corrupted = raw.clone();
            let last_byte = corrupted.last_mut().expect("non-empty");
            let good = *last_byte;
            *last_byte ^= 0x5A;
            prop_assert_eq!(
                Atr::parse(&corrupted),
                Err(AtrError::TckMismatch { expected: good, found: good ^ 0x5A })
            );
        }
    }
}
