//! Whole EMV transactions, byte for byte: card risk management, the ARQC / TC / AAC
//! decision, the CVR and IAD, issuer authentication with ARPC method 1, the ATC and last
//! online ATC, the transaction log, and the T=0 behaviour of the `t0-slow` card.
//!
//! The cryptograms and ARPCs below were computed independently with pyemv 1.5 from the
//! same inputs (`cvn.VisaCVN18(...).generate_ac`, `cvn.VisaCVN10(...).generate_ac` and
//! `.generate_arpc`, `ac.generate_arpc_1` with the CVN 18 common session key), keys from
//! the `cb` profile: CB IMK 0123456789ABCDEFFEDCBA9876543210, Visa IMK
//! 89ABCDEF0123456776543210FEDCBA98, PAN 4970100000000014, PSN 01.

mod common;

use card_applet_sim::card::SimCard;
use card_applet_sim::crypto::arpc_method1;
use common::*;

/// Visa CDOL1 data (33 bytes): amount, other, country 0250, TVR, currency 0978, date
/// 2026-11-25, type 00, UN.
fn visa_cdol1(amount: &str, un: &str) -> String {
    format!("{amount}000000000000025000000000000978261125 00{un}").replace(' ', "")
}

/// CDOL2 data: 8A ARC, 91 ARPC || ARC, 95 TVR, 9F37 UN.
fn cdol2(arc: &str, issuer_auth: &str, un: &str) -> String {
    format!("{arc}{issuer_auth}0000000000{un}")
}

#[test]
fn cb_online_transaction_approved_by_the_issuer() {
    let mut card = new_card("cb");
    start_cb(&mut card);
    expect_sw(&mut card, &verify("1234"), "9000");

    // 50.00 EUR is above the 30.00 floor: the card wants to go online anyway.
    let arqc = send(
        &mut card,
        &generate_ac("80", &cb_cdol1("000000005000", "11223344")),
    );
    // 77 { 9F27 80 (ARQC), 9F36 0001, 9F26 ARQC, 9F10 06 DKI 01 CVN 12 CVR 03 A4 10 00 }:
    // CVR A4 = 2nd AC not requested, 1st AC ARQC, offline PIN performed; 10 = new card.
    assert_eq!(
        arqc,
        "771E9F2701809F360200019F260833AD523954BA0E749F100706011203A410009000"
    );

    // The issuer answers ARC "00" with ARPC method 1 under the CVN 18 session key.
    let second = send(
        &mut card,
        &generate_ac("40", &cdol2("3030", "C194D7D6185AA9083030", "55667788")),
    );
    // TC; CVR 64 = 2nd AC TC, 1st ARQC, PIN performed.
    assert_eq!(
        second,
        "771E9F2701409F360200019F260890576EBB050A8D799F100706011203641000 9000".replace(' ', "")
    );

    assert_eq!(send(&mut card, "80CA9F3600"), "9F360200019000");
    assert_eq!(
        send(&mut card, "80CA9F1300"),
        "9F130200019000",
        "last online ATC"
    );
    // The log, most recent first: 9A, 9F02, 5F2A, 9C, 9F1A, 9F36, 9F27.
    assert_eq!(
        send(&mut card, "00B2015C00"),
        "2611250000000050000978000250000140 9000".replace(' ', "")
    );
    assert_eq!(
        send(&mut card, "00B2025C00"),
        "2611250000000050000978000250000180 9000".replace(' ', "")
    );
    assert_eq!(send(&mut card, "00B2035C00"), "6A83");
    // The transaction is over.
    assert_eq!(
        send(
            &mut card,
            &generate_ac("40", &cdol2("3030", "C194D7D6185AA9083030", "55667788"))
        ),
        "6985"
    );
}

#[test]
fn cb_offline_approval_under_the_floor() {
    let mut card = new_card("cb");
    start_cb(&mut card);
    expect_sw(&mut card, &verify("1234"), "9000");
    let tc = send(
        &mut card,
        &generate_ac("40", &cb_cdol1("000000001000", "01020304")),
    );
    // CVR 94 = 2nd AC not requested, 1st AC TC, offline PIN performed.
    assert_eq!(
        tc,
        "771E9F2701409F360200019F2608A278617F6C4779919F100706011203941000 9000".replace(' ', "")
    );
    assert_eq!(
        send(&mut card, "80CA9F1300"),
        "9F130200009000",
        "no online transaction yet"
    );
}

#[test]
fn visa_cvn10_online_then_issuer_authentication_failure() {
    let mut card = new_card("cb");
    expect_sw(&mut card, &select(VISA_AID), "9000");
    expect_sw(&mut card, "80A8000002830000", "9000");
    let arqc = send(
        &mut card,
        &generate_ac("80", &visa_cdol1("000000001000", "DEADBEEF")),
    );
    // Format 1: 80 12 CID ATC AC IAD(06 01 0A 03 A0 10 00).
    assert_eq!(
        arqc,
        "801280 0001 345AFAE0EA9CC60D 06010A03A01000 9000".replace(' ', "")
    );

    // A good ARPC (method 1, CVN 10: the ICC master key itself) approves.
    let mut good = card_clone_at_second_ac("DEADBEEF");
    assert_eq!(
        send(
            &mut good,
            &generate_ac("40", &cdol2("3030", "CCCB4787D61AF4543030", "CAFEBABE"))
        ),
        "801240 0001 04B2AB0A90BF6039 06010A03601000 9000".replace(' ', "")
    );

    // A forged ARPC declines: AAC, CVR 28 = 2nd AAC, 1st ARQC, issuer authentication
    // failed.
    let aac = send(
        &mut card,
        &generate_ac("40", &cdol2("3030", "CCCB4787D61AF4553030", "CAFEBABE")),
    );
    assert_eq!(
        aac,
        "801200 0001 A74AC45F3BF85A34 06010A03281000 9000".replace(' ', "")
    );
    assert_eq!(
        send(&mut card, "80CA9F1300"),
        "9F130200009000",
        "no successful online ATC"
    );
    assert!(card.state().applications[1].issuer_auth_failed);

    // The next transaction goes online even under the floor, and reports the failure
    // (CVR byte 3 b4, 0x08) with the new-card bit.
    expect_sw(&mut card, &select(VISA_AID), "9000");
    expect_sw(&mut card, "80A8000002830000", "9000");
    let next = h(&expect_sw(
        &mut card,
        &generate_ac("40", &visa_cdol1("000000000100", "00000001")),
        "9000",
    ));
    assert_eq!(
        next[2], 0x80,
        "ARQC although TC was asked and the amount is under the floor"
    );
    assert_eq!(&next[3..5], &[0x00, 0x02], "ATC 2");
    assert_eq!(hx(&next[13..20]), "06010A03A01800");
}

/// A Visa card that has answered an ARQC with UN `un` (the same as in the main test).
fn card_clone_at_second_ac(un: &str) -> SimCard {
    let mut card = new_card("cb");
    expect_sw(&mut card, &select(VISA_AID), "9000");
    expect_sw(&mut card, "80A8000002830000", "9000");
    expect_sw(
        &mut card,
        &generate_ac("80", &visa_cdol1("000000001000", un)),
        "9000",
    );
    card
}

#[test]
fn unable_to_go_online_approves_only_what_the_card_would_approve_offline() {
    // Under the floor: the card's own decision was TC, the terminal asked for an ARQC,
    // then could not reach the issuer (ARC Y3): TC, CVR "unable to go online".
    let mut card = new_card("cb");
    start_cb(&mut card);
    expect_sw(
        &mut card,
        &generate_ac("80", &cb_cdol1("000000001000", "01020304")),
        "9000",
    );
    let second = h(&expect_sw(
        &mut card,
        &generate_ac("40", &cdol2("5933", &"00".repeat(10), "05060708")),
        "9000",
    ));
    assert_eq!(hx(&second[..5]), "771E9F2701");
    assert_eq!(second[5], 0x40, "TC");
    // CVR 61 10: 2nd TC, 1st ARQC, unable to go online; new card.
    assert_eq!(hx(&second[25..32]), "06011203611000");

    // Over the floor: the card wanted to go online, so it declines.
    let mut card = new_card("cb");
    start_cb(&mut card);
    expect_sw(
        &mut card,
        &generate_ac("80", &cb_cdol1("000000005000", "01020304")),
        "9000",
    );
    let second = h(&expect_sw(
        &mut card,
        &generate_ac("40", &cdol2("5A33", &"00".repeat(10), "05060708")),
        "9000",
    ));
    assert_eq!(second[5], 0x00, "AAC");
}

#[test]
fn online_without_issuer_authentication_data_declines() {
    let mut card = new_card("cb");
    start_cb(&mut card);
    expect_sw(
        &mut card,
        &generate_ac("80", &cb_cdol1("000000005000", "01020304")),
        "9000",
    );
    let second = h(&expect_sw(
        &mut card,
        &generate_ac("40", &cdol2("3030", &"00".repeat(10), "05060708")),
        "9000",
    ));
    assert_eq!(second[5], 0x00, "AAC");
    // CVR 20 14: 2nd AAC, 1st ARQC; new card, issuer authentication not performed
    // after online authorisation.
    assert_eq!(hx(&second[25..32]), "06011203201400");
}

#[test]
fn an_issuer_declining_gets_an_aac_even_with_a_good_arpc() {
    let mut card = new_card("cb");
    start_cb(&mut card);
    let arqc = h(&expect_sw(
        &mut card,
        &generate_ac("80", &cb_cdol1("000000005000", "11223344")),
        "9000",
    ));
    let arqc: [u8; 8] = arqc[14..22].try_into().unwrap();
    // The acquirer's view: the same crypto, from the profile's issuer master key.
    let profile = card.profile().clone();
    let app = &profile.applications()[0];
    let version = app.cryptogram_version().unwrap();
    let icc = version
        .derive_icc_master_key(
            app.issuer_master_key(),
            profile.pan(),
            profile.pan_sequence(),
        )
        .unwrap();
    let arpc = arpc_method1(version, &icc, 1, &arqc, b"51");
    let second = h(&expect_sw(
        &mut card,
        &generate_ac(
            "40",
            &cdol2("3531", &format!("{}3531", hx(&arpc)), "01010101"),
        ),
        "9000",
    ));
    assert_eq!(second[5], 0x00, "AAC: ARC 51 (insufficient funds)");
    assert_eq!(
        send(&mut card, "80CA9F1300"),
        "9F130200019000",
        "the issuer was authenticated"
    );
    assert!(!card.state().applications[0].issuer_auth_failed);
}

#[test]
fn terminal_request_caps_the_answer() {
    // EMV Book 3 §9.3: AAC asked → AAC, whatever the card thinks.
    let mut card = new_card("cb");
    start_cb(&mut card);
    let aac = h(&expect_sw(
        &mut card,
        &generate_ac("00", &cb_cdol1("000000001000", "01020304")),
        "9000",
    ));
    assert_eq!(aac[5], 0x00);
    // The card can answer less than asked: TC asked, over the floor → ARQC.
    let mut card = new_card("cb");
    start_cb(&mut card);
    let arqc = h(&expect_sw(
        &mut card,
        &generate_ac("40", &cb_cdol1("000000003001", "01020304")),
        "9000",
    ));
    assert_eq!(arqc[5], 0x80);
}

#[test]
fn card_risk_management_checks() {
    // Foreign currency (USD) under the floor: online.
    let mut card = new_card("cb");
    start_cb(&mut card);
    let cdol1 = cb_cdol1("000000001000", "01020304").replacen("0978", "0840", 1);
    let r = h(&expect_sw(&mut card, &generate_ac("40", &cdol1), "9000"));
    assert_eq!(r[5], 0x80, "foreign currency goes online");

    // Non-BCD amount: treated as over the floor.
    let mut card = new_card("cb");
    start_cb(&mut card);
    let r = h(&expect_sw(
        &mut card,
        &generate_ac("40", &cb_cdol1("00000000100A", "01020304")),
        "9000",
    ));
    assert_eq!(r[5], 0x80);

    // A failed PIN in this transaction: online.
    let mut card = new_card("cb");
    start_cb(&mut card);
    expect_sw(&mut card, &verify("9999"), "63C2");
    let r = h(&expect_sw(
        &mut card,
        &generate_ac("40", &cb_cdol1("000000001000", "01020304")),
        "9000",
    ));
    assert_eq!(r[5], 0x80);
    assert_eq!(hx(&r[29..32]), "A61000", "CVR A6: PIN performed and failed");

    // Velocity (mastercard: at most 3 consecutive offline transactions).
    let mut card = new_card("mastercard");
    let mut kinds = Vec::new();
    for _ in 0..5 {
        expect_sw(&mut card, &select("A0000000041010"), "9000");
        expect_sw(&mut card, "80A800000383010000", "9000");
        let r = h(&expect_sw(
            &mut card,
            &generate_ac("40", &visa_cdol1("000000001000", "01020304")),
            "9000",
        ));
        kinds.push(r[5]);
        if r[5] == 0x80 {
            // Leave the transaction incomplete; the next one reports it and goes online.
            break;
        }
    }
    assert_eq!(
        kinds,
        vec![0x40, 0x40, 0x40, 0x80],
        "the fourth offline in a row goes online"
    );
}

#[test]
fn always_online_card_and_format_1_gpo() {
    let mut card = new_card("visa");
    let fci = expect_sw(&mut card, &select("A0000000031010"), "9000");
    assert!(
        fci.contains("9F38069F1A029F3704"),
        "the PDOL is in the FCI: {fci}"
    );
    // PDOL data: country 0840, UN.
    assert_eq!(
        send(&mut card, "80A800000883060840AABBCCDD00"),
        "800A1C0008010100100102009000"
    );
    let r = h(&expect_sw(
        &mut card,
        &generate_ac("40", &visa_cdol1("000000000001", "01020304")),
        "9000",
    ));
    assert_eq!(r[2], 0x80, "always online");
}

#[test]
fn atc_counts_every_first_generate_ac_and_the_log_is_capped() {
    let mut card = new_card("cb");
    for n in 1..=12u16 {
        start_cb(&mut card);
        expect_sw(
            &mut card,
            &generate_ac("00", &cb_cdol1("000000001000", "01020304")),
            "9000",
        );
        assert_eq!(card.atc(), n);
    }
    expect_sw(&mut card, &select(CB_AID), "9000");
    // 10 records kept, record 1 the newest (ATC 12), record 10 ATC 3.
    assert!(send(&mut card, "00B2015C00").ends_with("000C009000"));
    assert!(send(&mut card, "00B20A5C00").ends_with("0003009000"));
    assert_eq!(send(&mut card, "00B20B5C00"), "6A83");
    // The other application's counter is its own.
    expect_sw(&mut card, &select(VISA_AID), "9000");
    assert_eq!(send(&mut card, "80CA9F3600"), "9F360200009000");
}

#[test]
fn t0_card_announces_data_with_61xx_and_corrects_le_with_6cxx() {
    let mut card = new_card("t0-slow");
    // SELECT carries data: the FCI waits for GET RESPONSE.
    let sw = send(&mut card, "00A4040007A000000042101000");
    assert!(sw.starts_with("61") && sw.len() == 4, "{sw}");
    let available = usize::from_str_radix(&sw[2..], 16).unwrap();
    // GET RESPONSE with a longer Le: 6Cxx with the exact length; the data stays.
    assert_eq!(send(&mut card, "00C0000000"), format!("6C{available:02X}"));
    // Partial reads: 16 bytes then 61xx for the rest.
    let first = send(&mut card, "00C0000010");
    assert_eq!(&first[32..], format!("61{:02X}", available - 16));
    let rest = expect_sw(
        &mut card,
        &format!("00C00000{:02X}", available - 16),
        "9000",
    );
    let fci = format!("{}{}", &first[..32], rest);
    assert!(fci.starts_with("6F"), "{fci}");
    assert_eq!(fci.len() / 2, available);
    // Nothing more.
    assert_eq!(send(&mut card, "00C0000010"), "6985");

    // A case-2 command with Le 00 (256 under T=0): 6Cxx, re-issued with the exact Le.
    let sw = send(&mut card, "00B2010C00");
    assert!(sw.starts_with("6C"), "{sw}");
    let record = expect_sw(&mut card, &format!("00B2010C{}", &sw[2..]), "9000");
    assert!(record.starts_with("70"));

    // GET PROCESSING OPTIONS (PDOL 9F1A02) and GENERATE AC: 61xx too.
    assert_eq!(send(&mut card, "80A80000048302025000"), "6110");
    assert_eq!(
        send(&mut card, "00C0000010"),
        "770E82021C00940808010100100102009000"
    );
    let gen_ac = send(
        &mut card,
        &generate_ac("80", &cb_cdol1("000000001000", "01020304")),
    );
    assert_eq!(gen_ac, "6114", "format 1: 80 12 + 18 bytes");
    // Another command discards the pending data.
    assert_eq!(send(&mut card, "80CA9F3605"), "9F360200019000");
    assert_eq!(send(&mut card, "00C0000014"), "6985");
}

#[test]
fn t0_card_status_words_without_data_are_unchanged() {
    let mut card = new_card("t0-slow");
    assert_eq!(send(&mut card, "00A4040C07A0000000421010"), "9000");
    assert_eq!(send(&mut card, "00A4040007A000000099999900"), "6A82");
    assert_eq!(send(&mut card, "80A80000048302025000"), "6110");
    assert_eq!(send(&mut card, "0020008008241234FFFFFFFFFF"), "9000");
}
