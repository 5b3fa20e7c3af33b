//! In-card signing: PERFORM SECURITY OPERATION: COMPUTE DIGITAL SIGNATURE (ISO 7816-8,
//! `00 2A 9E 9A`) with the card's ECDSA P-256 key, checked with the `p256` crate against
//! the public key an acquirer reads from the card (GET DATA DF51).

mod common;

use card_applet_sim::SmartCard;
use card_applet_sim::profile::Profile;
use common::*;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};

fn pso_cds(message: &[u8]) -> String {
    format!("002A9E9A{:02X}{}00", message.len(), hx(message))
}

/// Reads the public key with GET DATA on the profile's tag (DF51): `DF51 41 04 X Y`.
fn public_key(card: &mut card_applet_sim::card::SimCard) -> VerifyingKey {
    let data = h(&expect_sw(card, "80CADF5100", "9000"));
    assert_eq!(&data[..3], &[0xDF, 0x51, 0x41], "DF51, 65 bytes");
    assert_eq!(data[3], 0x04, "uncompressed SEC1 point");
    VerifyingKey::from_sec1_bytes(&data[3..]).expect("a point on P-256")
}

#[test]
fn signatures_verify_with_the_key_read_from_the_card() {
    for profile in ["cb", "visa", "mastercard"] {
        let mut card = new_card(profile);
        let aid = hx(Profile::builtin(profile).unwrap().applications()[0].aid());
        expect_sw(&mut card, &select(&aid), "9000");
        let key = public_key(&mut card);
        assert_eq!(
            key.to_sec1_point(false).as_bytes(),
            card.profile().public_key_sec1().as_slice()
        );
        let pdol_len: usize = match profile {
            "visa" => 6,
            "mastercard" => 1,
            _ => 0,
        };
        let gpo = format!(
            "80A80000{:02X}83{:02X}{}00",
            pdol_len + 2,
            pdol_len,
            "00".repeat(pdol_len)
        );
        expect_sw(&mut card, &gpo, "9000");
        expect_sw(&mut card, &verify("1234"), "9000");
        for message in [
            &b"x"[..],
            b"MERCHANT-0000000001 order 42, EUR 10.00",
            &[0u8; 200],
        ] {
            let sig = h(&expect_sw(&mut card, &pso_cds(message), "9000"));
            assert_eq!(sig.len(), 64, "r || s");
            let sig = Signature::from_slice(&sig).expect("r, s in range");
            key.verify(message, &sig)
                .expect("the card's signature verifies");
            let mut tampered = message.to_vec();
            tampered[0] ^= 1;
            assert!(
                key.verify(&tampered, &sig).is_err(),
                "{profile}: tampered message verifies"
            );
        }
    }
}

#[test]
fn signatures_are_deterministic_rfc6979() {
    let mut a = new_card("cb");
    let mut b = new_card("cb");
    for card in [&mut a, &mut b] {
        start_cb(card);
        expect_sw(card, &verify("1234"), "9000");
    }
    assert_eq!(
        expect_sw(&mut a, &pso_cds(b"hello"), "9000"),
        expect_sw(&mut b, &pso_cds(b"hello"), "9000")
    );
}

#[test]
fn refused_before_verify() {
    let mut card = new_card("cb");
    start_cb(&mut card);
    assert_eq!(send(&mut card, &pso_cds(b"hello")), "6982");
}

#[test]
fn refused_after_a_failed_verify_and_after_reselection_or_reset() {
    let mut card = new_card("cb");
    start_cb(&mut card);
    expect_sw(&mut card, &verify("1234"), "9000");
    expect_sw(&mut card, &pso_cds(b"ok"), "9000");
    // A new selection is a new session.
    start_cb(&mut card);
    assert_eq!(send(&mut card, &pso_cds(b"hello")), "6982");
    // So is a reset.
    expect_sw(&mut card, &verify("1234"), "9000");
    card.reset(card_applet_sim::ResetKind::Warm);
    start_cb(&mut card);
    assert_eq!(send(&mut card, &pso_cds(b"hello")), "6982");
}

#[test]
fn allowed_through_the_rest_of_the_transaction() {
    let mut card = new_card("cb");
    start_cb(&mut card);
    expect_sw(&mut card, &verify("1234"), "9000");
    expect_sw(
        &mut card,
        &generate_ac("40", &cb_cdol1("000000001000", "01020304")),
        "9000",
    );
    expect_sw(&mut card, &pso_cds(b"receipt"), "9000");
}

#[test]
fn error_table() {
    let cases: [(&str, &str, &str); 4] = [
        ("P1-P2 not 9E9A (hash)", "002A90A00341424300", "6A86"),
        ("decipher (80 86) unsupported", "002A80860341424300", "6A86"),
        ("no data to sign", "002A9E9A00", "6700"),
        ("class 80", "802A9E9A0341424300", "6E00"),
    ];
    for (name, command, expected) in cases {
        let mut card = new_card("cb");
        start_cb(&mut card);
        expect_sw(&mut card, &verify("1234"), "9000");
        assert_eq!(send(&mut card, command), expected, "{name}");
    }
}
