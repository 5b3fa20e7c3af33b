//! The PIN held by the card (EMV Book 3 §6.5.12, ISO 9564 format 2 blocks): the card
//! compares, counts tries, blocks at zero, and keeps the counter across resets and, with
//! a state file, across restarts.

mod common;

use card_applet_sim::{ResetKind, SmartCard};
use common::*;

#[test]
fn three_wrong_pins_block_the_card() {
    let mut card = new_card("cb");
    start_cb(&mut card);
    assert_eq!(send(&mut card, &verify("0000")), "63C2");
    assert_eq!(send(&mut card, &verify("1111")), "63C1");
    assert_eq!(send(&mut card, &verify("9999")), "6983");
    assert_eq!(card.pin_tries_left(), 0);
    // Blocked: even the right PIN is refused, without a try being spent.
    assert_eq!(send(&mut card, &verify("1234")), "6983");
    assert_eq!(send(&mut card, "80CA9F1700"), "9F1701009000");
}

#[test]
fn a_right_pin_before_blocking_restores_the_limit() {
    let mut card = new_card("cb");
    start_cb(&mut card);
    assert_eq!(send(&mut card, &verify("0000")), "63C2");
    assert_eq!(send(&mut card, &verify("0001")), "63C1");
    assert_eq!(send(&mut card, &verify("1234")), "9000");
    assert_eq!(card.pin_tries_left(), 3);
    assert_eq!(send(&mut card, "80CA9F1700"), "9F1701039000");
    assert_eq!(
        send(&mut card, &verify("0000")),
        "63C2",
        "the count starts again from the limit"
    );
}

#[test]
fn blocked_pin_survives_warm_and_cold_resets() {
    let mut card = new_card("cb");
    start_cb(&mut card);
    for wrong in ["0000", "0000", "0000"] {
        send(&mut card, &verify(wrong));
    }
    for kind in [ResetKind::Warm, ResetKind::Cold] {
        card.reset(kind);
        start_cb(&mut card);
        assert_eq!(send(&mut card, &verify("1234")), "6983", "{kind:?}");
    }
    card.power_off();
    card.power_on();
    start_cb(&mut card);
    assert_eq!(send(&mut card, &verify("1234")), "6983", "power cycle");
}

#[test]
fn blocked_pin_survives_a_restart_with_a_state_file() {
    let dir = temp_dir("pin-restart");
    let path = dir.join("cb.state");
    {
        let mut card = card_with_state("cb", &path);
        start_cb(&mut card);
        assert_eq!(send(&mut card, &verify("0000")), "63C2");
        assert_eq!(send(&mut card, &verify("0000")), "63C1");
    }
    {
        // A new process: the counter was written before each answer.
        let mut card = card_with_state("cb", &path);
        assert_eq!(card.pin_tries_left(), 1);
        start_cb(&mut card);
        assert_eq!(send(&mut card, &verify("0000")), "6983");
    }
    let mut card = card_with_state("cb", &path);
    start_cb(&mut card);
    assert_eq!(send(&mut card, &verify("1234")), "6983");
    assert_eq!(send(&mut card, "80CA9F1700"), "9F1701009000");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn blocked_profile_is_issued_blocked() {
    let mut card = new_card("blocked");
    assert_eq!(card.pin_tries_left(), 0);
    start_cb(&mut card);
    assert_eq!(send(&mut card, &verify("1234")), "6983");
    assert_eq!(send(&mut card, "00200080"), "6983", "counter query");
}

struct Case {
    name: &'static str,
    command: &'static str,
    expected: &'static str,
}

/// VERIFY's error status words, each from a card in the initiated state (SELECT + GPO)
/// with 3 tries left.
#[test]
fn verify_error_table() {
    let cases = [
        Case {
            name: "right PIN",
            command: "0020008008241234FFFFFFFFFF",
            expected: "9000",
        },
        Case {
            name: "wrong PIN",
            command: "0020008008241235FFFFFFFFFF",
            expected: "63C2",
        },
        Case {
            name: "counter query (no data)",
            command: "00200080",
            expected: "63C3",
        },
        Case {
            name: "enciphered PIN (P2 88) unsupported",
            command: "0020008808241234FFFFFFFFFF",
            expected: "6A86",
        },
        Case {
            name: "P1 not 00",
            command: "0020018008241234FFFFFFFFFF",
            expected: "6A86",
        },
        Case {
            name: "block of 7 bytes",
            command: "0020008007241234FFFFFFFF",
            expected: "6700",
        },
        Case {
            name: "with Le",
            command: "0020008008241234FFFFFFFFFF00",
            expected: "6700",
        },
        Case {
            name: "format 1 control nibble",
            command: "0020008008141234FFFFFFFFFF",
            expected: "6A80",
        },
        Case {
            name: "PIN length 3",
            command: "0020008008231234FFFFFFFFFF",
            expected: "6A80",
        },
        Case {
            name: "PIN length 13",
            command: "00200080082D1234567890123F",
            expected: "6A80",
        },
        Case {
            name: "non-decimal digit",
            command: "002000800824123AFFFFFFFFFF",
            expected: "6A80",
        },
        Case {
            name: "filler not F",
            command: "0020008008241234FFFFFFFF0F",
            expected: "6A80",
        },
        Case {
            name: "right digits, 5-digit length",
            command: "00200080082512341FFFFFFFFF",
            expected: "63C2",
        },
    ];
    for case in cases {
        let mut card = new_card("cb");
        start_cb(&mut card);
        assert_eq!(
            send(&mut card, case.command),
            case.expected,
            "{}",
            case.name
        );
    }
}

#[test]
fn malformed_blocks_spend_no_try() {
    let mut card = new_card("cb");
    start_cb(&mut card);
    assert_eq!(send(&mut card, "0020008008141234FFFFFFFFFF"), "6A80");
    assert_eq!(card.pin_tries_left(), 3);
}

#[test]
fn verify_out_of_order() {
    // Before GET PROCESSING OPTIONS.
    let mut selected_only = new_card("cb");
    expect_sw(&mut selected_only, &select(CB_AID), "9000");
    assert_eq!(send(&mut selected_only, &verify("1234")), "6985");
    // Without an application.
    let mut nothing_selected = new_card("cb");
    assert_eq!(send(&mut nothing_selected, &verify("1234")), "6985");
    // After the first GENERATE AC.
    let mut after_ac = new_card("cb");
    start_cb(&mut after_ac);
    expect_sw(
        &mut after_ac,
        &generate_ac("40", &cb_cdol1("000000001000", "01020304")),
        "9000",
    );
    assert_eq!(send(&mut after_ac, &verify("1234")), "6985");
    assert_eq!(after_ac.pin_tries_left(), 3);
}

#[test]
fn counter_query_after_success_answers_9000() {
    let mut card = new_card("cb");
    start_cb(&mut card);
    expect_sw(&mut card, &verify("1234"), "9000");
    assert_eq!(send(&mut card, "00200080"), "9000");
}

#[test]
fn a_wrong_pin_withdraws_an_earlier_verification() {
    let mut card = new_card("cb");
    start_cb(&mut card);
    expect_sw(&mut card, &verify("1234"), "9000");
    assert_eq!(send(&mut card, &verify("4321")), "63C2");
    // PSO: CDS now needs a new successful VERIFY.
    assert_eq!(send(&mut card, "002A9E9A0341424300"), "6982");
}
