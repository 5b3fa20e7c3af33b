//! Command by command, hex in and hex out: the happy path and every error status word
//! of each command the `cb` card knows, plus the class, instruction and length checks
//! that come before any command (ISO 7816-4 §5.1, §5.4.1, §5.6).
//!
//! Each row starts from a freshly powered `cb` card, sends the setup commands (each must
//! answer 9000), then the command, and compares the whole response.

mod common;

use card_applet_sim::SmartCard;
use common::*;

const SELECT_PSE: &str = "00A404000E315041592E5359532E444446303100";
const SELECT_PPSE: &str = "00A404000E325041592E5359532E444446303100";
const SELECT_CB: &str = "00A4040007A000000042101000";
const SELECT_VISA: &str = "00A4040007A000000003101000";
const GPO_EMPTY_PDOL: &str = "80A8000002830000";

/// FCI of the PSE: 6F { 84 "1PAY.SYS.DDF01", A5 { 88 SFI 01, 5F2D "fren" } }.
const FCI_PSE: &str = "6F1C840E315041592E5359532E4444463031A50A8801015F2D046672656E";
/// FCI of the CB application: 84 AID, A5 { 50 "CB", 87 01, 5F2D "fren", 9F11 01,
/// 9F12 "CARTE BANCAIRE", BF0C { 9F4D log SFI 11, 10 records } }; no 9F38 (empty PDOL).
const FCI_CB: &str = "6F368407A0000000421010A52B50024342870101\
                      5F2D046672656E9F1101019F120E43415254452042414E4341495245\
                      BF0C059F4D020B0A";
/// FCI of the co-badged Visa application, priority 2.
const FCI_VISA: &str = "6F2E8407A0000000031010A523500456495341870102\
                        5F2D046672656E9F1101019F120456495341BF0C059F4D020B0A";

struct Case<'a> {
    name: &'a str,
    setup: &'a [&'a str],
    command: &'a str,
    expected: &'a str,
}

fn run(cases: &[Case<'_>]) {
    for case in cases {
        let mut card = new_card("cb");
        for step in case.setup {
            expect_sw(&mut card, step, "9000");
        }
        let got = send(&mut card, case.command);
        assert_eq!(
            got,
            case.expected.replace(' ', ""),
            "{}: command {}",
            case.name,
            case.command
        );
    }
}

#[test]
fn select() {
    run(&[
        Case {
            name: "PSE by full name",
            setup: &[],
            command: SELECT_PSE,
            expected: &with_9000(FCI_PSE),
        },
        Case {
            name: "PPSE lists both applications in BF0C",
            setup: &[],
            command: SELECT_PPSE,
            expected: "6F53840E325041592E5359532E4444463031A541BF0C3E\
                       61214F07A0000000421010500243429F120E43415254452042414E4341495245870101\
                       61194F07A00000000310105004564953419F1204564953418701029000",
        },
        Case {
            name: "CB by full AID",
            setup: &[],
            command: SELECT_CB,
            expected: &with_9000(FCI_CB),
        },
        Case {
            name: "Visa by full AID",
            setup: &[],
            command: SELECT_VISA,
            expected: &with_9000(FCI_VISA),
        },
        Case {
            name: "partial AID, first occurrence",
            setup: &[],
            command: "00A4040005A00000004200",
            expected: &with_9000(FCI_CB),
        },
        Case {
            name: "common RID prefix, first occurrence is CB",
            setup: &[],
            command: "00A4040004A000000000",
            expected: &with_9000(FCI_CB),
        },
        Case {
            name: "next occurrence after CB is Visa",
            setup: &["00A4040004A000000000"],
            command: "00A4040204A000000000",
            expected: &with_9000(FCI_VISA),
        },
        Case {
            name: "no occurrence after Visa",
            setup: &["00A4040004A000000000", "00A4040204A000000000"],
            command: "00A4040204A000000000",
            expected: "6A82",
        },
        Case {
            name: "next with nothing selected is the first",
            setup: &[],
            command: "00A4040204A000000000",
            expected: &with_9000(FCI_CB),
        },
        Case {
            name: "no FCI wanted (P2 0C)",
            setup: &[],
            command: "00A4040C07A0000000421010",
            expected: "9000",
        },
        Case {
            name: "unknown AID",
            setup: &[],
            command: "00A4040007A000000099999900",
            expected: "6A82",
        },
        Case {
            name: "AID longer than the card's does not match",
            setup: &[],
            command: "00A4040008A00000004210100100",
            expected: "6A82",
        },
        Case {
            name: "last occurrence (P2 01) refused",
            setup: &[],
            command: "00A4040107A000000042101000",
            expected: "6A86",
        },
        Case {
            name: "FCP (P2 04) refused",
            setup: &[],
            command: "00A4040407A000000042101000",
            expected: "6A86",
        },
        Case {
            name: "select by path (P1 08) refused",
            setup: &[],
            command: "00A4080002 3F00 00",
            expected: "6A86",
        },
        Case {
            name: "DF name of 17 bytes",
            setup: &[],
            command: "00A4040011A000000042101000000000000000000000",
            expected: "6700",
        },
        Case {
            name: "DF name missing (case 2)",
            setup: &[],
            command: "00A4040000",
            expected: "6700",
        },
        Case {
            name: "MF by identifier 3F00",
            setup: &[],
            command: "00A40000023F00",
            expected: "9000",
        },
        Case {
            name: "other file identifier",
            setup: &[],
            command: "00A40000023F01",
            expected: "6A82",
        },
    ]);
}

/// A constant FCI followed by 9000 (keeps the table readable).
fn with_9000(fci: &str) -> String {
    format!("{}9000", fci.replace(' ', ""))
}

#[test]
fn read_record() {
    run(&[
        Case {
            name: "PSE directory record 1: CB",
            setup: &[SELECT_PSE],
            command: "00B2010C00",
            expected: "702361214F07A0000000421010500243429F120E43415254452042414E43414952458701019000",
        },
        Case {
            name: "PSE directory record 2: Visa",
            setup: &[SELECT_PSE],
            command: "00B2020C00",
            expected: "701B61194F07A00000000310105004564953419F1204564953418701029000",
        },
        Case {
            name: "PSE record 3 does not exist",
            setup: &[SELECT_PSE],
            command: "00B2030C00",
            expected: "6A83",
        },
        Case {
            name: "record 0",
            setup: &[SELECT_PSE],
            command: "00B2000C00",
            expected: "6A83",
        },
        Case {
            name: "PSE has no SFI 2",
            setup: &[SELECT_PSE],
            command: "00B2011400",
            expected: "6A82",
        },
        Case {
            name: "CB SFI 1 record 1: track 2, name",
            setup: &[SELECT_CB, GPO_EMPTY_PDOL],
            command: "00B2010C00",
            expected: "703057114970100000000014D281220100000000005F200D544553542F4341525445204342\
                       9F1F0A303030303030303030309000",
        },
        Case {
            name: "CB SFI 2 record 1: PAN, dates, CDOL1 with 9F7C, CDOL2",
            setup: &[SELECT_CB, GPO_EMPTY_PDOL],
            command: "00B2011400",
            expected: "704E5A0849701000000000145F24032812315F25032312015F280202505F3401019F0702FF00\
                       9F080200028C189F02069F03069F1A0295055F2A029A039C019F37049F7C14\
                       8D098A02910A95059F37049000",
        },
        Case {
            name: "CB SFI 2 record 2: CVM list, plaintext PIN first",
            setup: &[SELECT_CB],
            command: "00B2021400",
            expected: "70388E100000000000000000410342031E031F039F0D05F868FCA8009F0E0500000000009F0F05F868FCF800\
                       9F420209789F4401025F300202019000",
        },
        Case {
            name: "record beyond the file",
            setup: &[SELECT_CB],
            command: "00B2031400",
            expected: "6A83",
        },
        Case {
            name: "SFI 3 does not exist",
            setup: &[SELECT_CB],
            command: "00B2011C00",
            expected: "6A82",
        },
        Case {
            name: "empty transaction log (SFI 11)",
            setup: &[SELECT_CB],
            command: "00B2015C00",
            expected: "6A83",
        },
        Case {
            name: "SFI 0 (current EF)",
            setup: &[SELECT_CB],
            command: "00B2010400",
            expected: "6A86",
        },
        Case {
            name: "P2 not 'record number' (b3-b1 = 101)",
            setup: &[SELECT_CB],
            command: "00B2010D00",
            expected: "6A86",
        },
        Case {
            name: "nothing selected",
            setup: &[],
            command: "00B2010C00",
            expected: "6A82",
        },
        Case {
            name: "data field present",
            setup: &[SELECT_CB],
            command: "00B2010C0100",
            expected: "6700",
        },
        Case {
            name: "Le shorter than the record: 6Cxx with the exact length",
            setup: &[SELECT_CB],
            command: "00B2010C10",
            expected: "6C32",
        },
    ]);
}

#[test]
fn get_processing_options() {
    run(&[
        Case {
            name: "CB: format 2, AIP 1C00, AFL SFI 1 rec 1, SFI 2 rec 1-2",
            setup: &[SELECT_CB],
            command: GPO_EMPTY_PDOL,
            expected: "770E82021C00940808010100100102009000",
        },
        Case {
            name: "Visa: format 1",
            setup: &[SELECT_VISA],
            command: GPO_EMPTY_PDOL,
            expected: "800A1C0008010100100102009000",
        },
        Case {
            name: "PDOL data too long",
            setup: &[SELECT_CB],
            command: "80A80000038301AA00",
            expected: "6700",
        },
        Case {
            name: "Lc disagrees with the 83 length",
            setup: &[SELECT_CB],
            command: "80A80000038300AA00",
            expected: "6700",
        },
        Case {
            name: "no data field",
            setup: &[SELECT_CB],
            command: "80A8000000",
            expected: "6700",
        },
        Case {
            name: "not a command template 83",
            setup: &[SELECT_CB],
            command: "80A8000002810000",
            expected: "6A80",
        },
        Case {
            name: "P1 not 00",
            setup: &[SELECT_CB],
            command: "80A8010002830000",
            expected: "6A86",
        },
        Case {
            name: "no application selected",
            setup: &[],
            command: GPO_EMPTY_PDOL,
            expected: "6985",
        },
        Case {
            name: "PSE selected",
            setup: &[SELECT_PSE],
            command: GPO_EMPTY_PDOL,
            expected: "6985",
        },
        Case {
            name: "twice in one transaction",
            setup: &[SELECT_CB, GPO_EMPTY_PDOL],
            command: GPO_EMPTY_PDOL,
            expected: "6985",
        },
        Case {
            name: "reselecting starts a new transaction",
            setup: &[SELECT_CB, GPO_EMPTY_PDOL, SELECT_CB],
            command: GPO_EMPTY_PDOL,
            expected: "770E82021C00940808010100100102009000",
        },
    ]);
}

#[test]
fn get_data() {
    run(&[
        Case {
            name: "ATC of a new card",
            setup: &[SELECT_CB],
            command: "80CA9F3600",
            expected: "9F360200009000",
        },
        Case {
            name: "PIN try counter",
            setup: &[SELECT_CB],
            command: "80CA9F1700",
            expected: "9F1701039000",
        },
        Case {
            name: "last online ATC register",
            setup: &[SELECT_CB],
            command: "80CA9F1300",
            expected: "9F130200009000",
        },
        Case {
            name: "log format",
            setup: &[SELECT_CB],
            command: "80CA9F4F00",
            expected: "9F4F139A039F02065F2A029C019F1A029F36029F27019000",
        },
        Case {
            name: "unknown tag",
            setup: &[SELECT_CB],
            command: "80CA9F3800",
            expected: "6A88",
        },
        Case {
            name: "no application selected",
            setup: &[],
            command: "80CA9F3600",
            expected: "6985",
        },
        Case {
            name: "data field present",
            setup: &[SELECT_CB],
            command: "80CA9F36020000",
            expected: "6700",
        },
        Case {
            name: "Le too short",
            setup: &[SELECT_CB],
            command: "80CA9F3602",
            expected: "6C05",
        },
        Case {
            name: "ISO class 00 is not EMV's GET DATA",
            setup: &[SELECT_CB],
            command: "00CA9F3600",
            expected: "6E00",
        },
    ]);
}

#[test]
fn get_challenge_errors() {
    run(&[
        Case {
            name: "P1-P2 not 0000",
            setup: &[],
            command: "0084000108",
            expected: "6A86",
        },
        Case {
            name: "no Le",
            setup: &[],
            command: "00840000",
            expected: "6700",
        },
        Case {
            name: "Le shorter than 8",
            setup: &[],
            command: "0084000004",
            expected: "6C08",
        },
        Case {
            name: "data field present",
            setup: &[],
            command: "00840000020000",
            expected: "6700",
        },
    ]);
}

#[test]
fn get_challenge_answers_eight_bytes_from_the_seeded_source() {
    let mut a = new_card("cb");
    let mut b = new_card("cb");
    let first = expect_sw(&mut a, "0084000000", "9000");
    assert_eq!(first.len(), 16, "8 bytes");
    assert_eq!(
        first,
        expect_sw(&mut b, "0084000008", "9000"),
        "same seed, same challenge"
    );
    assert_ne!(
        first,
        expect_sw(&mut a, "0084000008", "9000"),
        "the stream moves on"
    );
}

#[test]
fn generate_ac_errors() {
    let cdol1 = cb_cdol1("000000001000", "11223344");
    let ok_arqc = generate_ac("80", &cdol1);
    run(&[
        Case {
            name: "before GET PROCESSING OPTIONS",
            setup: &[SELECT_CB],
            command: &ok_arqc.clone(),
            expected: "6985",
        },
        Case {
            name: "no application",
            setup: &[],
            command: &ok_arqc.clone(),
            expected: "6985",
        },
        Case {
            name: "CDOL1 data one byte short",
            setup: &[SELECT_CB, GPO_EMPTY_PDOL],
            command: &generate_ac("80", &cdol1[2..]),
            expected: "6700",
        },
        Case {
            name: "P1 b8-b7 = 11 (RFU)",
            setup: &[SELECT_CB, GPO_EMPTY_PDOL],
            command: &generate_ac("C0", &cdol1),
            expected: "6A86",
        },
        Case {
            name: "CDA requested (P1 b5)",
            setup: &[SELECT_CB, GPO_EMPTY_PDOL],
            command: &generate_ac("90", &cdol1),
            expected: "6A86",
        },
        Case {
            name: "P2 not 00",
            setup: &[SELECT_CB, GPO_EMPTY_PDOL],
            command: &ok_arqc.replacen("80AE8000", "80AE8001", 1),
            expected: "6A86",
        },
        Case {
            name: "after an offline TC the transaction is over",
            setup: &[SELECT_CB, GPO_EMPTY_PDOL, &generate_ac("40", &cdol1)],
            command: &generate_ac("40", &cdol1),
            expected: "6985",
        },
        Case {
            name: "second GENERATE AC asking for an ARQC",
            setup: &[SELECT_CB, GPO_EMPTY_PDOL, &ok_arqc.clone()],
            command: &generate_ac("80", "3030 00000000000000000000 0000000000 11223344"),
            expected: "6A86",
        },
        Case {
            name: "second GENERATE AC with CDOL1-sized data",
            setup: &[SELECT_CB, GPO_EMPTY_PDOL, &ok_arqc.clone()],
            command: &generate_ac("40", &cdol1),
            expected: "6700",
        },
    ]);
}

#[test]
fn class_instruction_and_length_checks() {
    run(&[
        Case {
            name: "invalid class FF",
            setup: &[],
            command: "FFA4040000",
            expected: "6E00",
        },
        Case {
            name: "unknown proprietary class A0",
            setup: &[],
            command: "A0A4040000",
            expected: "6E00",
        },
        Case {
            name: "RFU class 20",
            setup: &[],
            command: "20A4040000",
            expected: "6E00",
        },
        Case {
            name: "logical channel 1",
            setup: &[],
            command: "01A4040000",
            expected: "6881",
        },
        Case {
            name: "further logical channel (4x)",
            setup: &[],
            command: "40A4040000",
            expected: "6881",
        },
        Case {
            name: "secure messaging",
            setup: &[],
            command: "0CA4040000",
            expected: "6882",
        },
        Case {
            name: "EMV secure messaging class 84",
            setup: &[],
            command: "84CA9F3600",
            expected: "6882",
        },
        Case {
            name: "command chaining",
            setup: &[],
            command: "10A4040000",
            expected: "6884",
        },
        Case {
            name: "SELECT in class 80",
            setup: &[],
            command: "80A4040007A000000042101000",
            expected: "6E00",
        },
        Case {
            name: "GET PROCESSING OPTIONS in class 00",
            setup: &[SELECT_CB],
            command: "00A8000002830000",
            expected: "6E00",
        },
        Case {
            name: "unknown instruction",
            setup: &[],
            command: "00FE000000",
            expected: "6D00",
        },
        Case {
            name: "GlobalPlatform INITIALIZE UPDATE",
            setup: &[],
            command: "8050000008000000000000000000",
            expected: "6D00",
        },
        Case {
            name: "one byte",
            setup: &[],
            command: "00",
            expected: "6700",
        },
        Case {
            name: "three bytes",
            setup: &[],
            command: "00A404",
            expected: "6700",
        },
        Case {
            name: "Lc larger than the data",
            setup: &[],
            command: "00A4040005A000",
            expected: "6700",
        },
        Case {
            name: "two bytes after the data",
            setup: &[],
            command: "00A4040002A0000000",
            expected: "6700",
        },
        Case {
            name: "extended length (not announced by the ATR)",
            setup: &[],
            command: "00A4040000 0007 A0000000421010 0000",
            expected: "6700",
        },
    ]);
}

#[test]
fn get_response_without_pending_data() {
    run(&[
        Case {
            name: "nothing to fetch",
            setup: &[SELECT_CB],
            command: "00C0000010",
            expected: "6985",
        },
        Case {
            name: "P1-P2 not 0000",
            setup: &[],
            command: "00C0010010",
            expected: "6A86",
        },
        Case {
            name: "no Le",
            setup: &[],
            command: "00C00000",
            expected: "6700",
        },
    ]);
}

#[test]
fn unpowered_card_answers_6f00_and_power_on_returns_the_atr() {
    let mut card = new_card("cb");
    card.power_off();
    assert_eq!(send(&mut card, SELECT_CB), "6F00");
    assert_eq!(hx(&card.power_on()), "3BE800008031FE458073C6010052434285");
    assert_eq!(send(&mut card, "00A4040C07A0000000421010"), "9000");
}

#[test]
fn reset_ends_the_session() {
    for kind in [
        card_applet_sim::ResetKind::Warm,
        card_applet_sim::ResetKind::Cold,
    ] {
        let mut card = new_card("cb");
        expect_sw(&mut card, SELECT_CB, "9000");
        expect_sw(&mut card, GPO_EMPTY_PDOL, "9000");
        assert_eq!(hx(&card.reset(kind)), "3BE800008031FE458073C6010052434285");
        assert_eq!(
            send(&mut card, "80CA9F3600"),
            "6985",
            "{kind:?}: no application after reset"
        );
        expect_sw(&mut card, SELECT_CB, "9000");
        assert_eq!(
            send(&mut card, GPO_EMPTY_PDOL),
            "770E82021C00940808010100100102009000"
        );
    }
}
