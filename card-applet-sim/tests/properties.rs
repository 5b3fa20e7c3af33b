//! Properties over arbitrary input: whatever bytes arrive, the card answers a
//! well-formed response (at least SW1 SW2, a status word ISO 7816-4 §5.6 defines, data
//! only with 9000 or, from a partial GET RESPONSE, 61xx) and never panics; the ATC
//! never decreases; the PIN try counter never exceeds its limit; equal seeds give equal
//! dialogues.

mod common;

use card_applet_sim::SmartCard;
use card_applet_sim::card::SimCard;
use common::*;
use proptest::prelude::*;

/// Checks the shape of a response and returns its status word.
fn well_formed(response: &[u8]) -> u16 {
    assert!(
        response.len() >= 2,
        "response {response:02X?} shorter than a status word"
    );
    let sw = u16::from_be_bytes([response[response.len() - 2], response[response.len() - 1]]);
    let sw1 = (sw >> 8) as u8;
    assert!(
        matches!(
            sw1,
            0x61 | 0x63 | 0x65 | 0x67 | 0x68 | 0x69 | 0x6A | 0x6C | 0x6D | 0x6E | 0x6F | 0x90
        ),
        "SW {sw:04X} is not an ISO 7816-4 status word"
    );
    if response.len() > 2 {
        // Data comes with 9000, or with 61xx when GET RESPONSE delivers part of it.
        assert!(
            sw == 0x9000 || sw1 == 0x61,
            "data with status word {sw:04X}"
        );
    }
    if sw1 == 0x90 {
        assert_eq!(sw, 0x9000);
    }
    sw
}

/// Commands that drive the card through its states, to be mixed with noise.
fn vocabulary() -> Vec<Vec<u8>> {
    [
        select(CB_AID),
        select(VISA_AID),
        "00A404000E315041592E5359532E444446303100".into(),
        "80A8000002830000".into(),
        "80A80000048302025000".into(),
        "00B2010C00".into(),
        "00B2011400".into(),
        "00B2015C00".into(),
        verify("1234"),
        verify("0000"),
        generate_ac("80", &cb_cdol1("000000005000", "11223344")),
        generate_ac("40", &cb_cdol1("000000001000", "11223344")),
        generate_ac("40", &"00".repeat(49)),
        generate_ac("40", &format!("3030{}0000000000AABBCCDD", "00".repeat(10))),
        "80CA9F3600".into(),
        "00C0000010".into(),
        "0084000008".into(),
        "002A9E9A0341424300".into(),
    ]
    .iter()
    .map(|c| h(c))
    .collect()
}

fn step() -> impl Strategy<Value = Vec<u8>> {
    let words = vocabulary();
    prop_oneof![
        3 => (0..words.len()).prop_map(move |i| words[i].clone()),
        1 => proptest::collection::vec(any::<u8>(), 0..300),
        // Valid header, random parameters and body: reaches deeper than pure noise.
        1 => (prop::sample::select(vec![0x00u8, 0x80]), prop::sample::select(vec![0xA4u8, 0xB2, 0xC0, 0x20, 0x84, 0x2A, 0xA8, 0xAE, 0xCA]), any::<[u8; 2]>(), proptest::collection::vec(any::<u8>(), 0..60))
            .prop_map(|(cla, ins, p, body)| {
                let mut c = vec![cla, ins, p[0], p[1]];
                c.extend(body);
                c
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_get_a_well_formed_answer(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        for profile in ["cb", "t0-slow"] {
            let mut card = new_card(profile);
            well_formed(&card.transmit(&bytes));
            // And once an application is selected and a transaction started.
            start_any(&mut card);
            well_formed(&card.transmit(&bytes));
        }
    }

    #[test]
    fn sequences_keep_the_invariants(steps in proptest::collection::vec(step(), 1..40), t0 in any::<bool>()) {
        let mut card = new_card(if t0 { "t0-slow" } else { "cb" });
        let mut atcs = atcs(&card);
        for command in &steps {
            let response = card.transmit(command);
            well_formed(&response);
            let now = atcs_of(&card);
            for (before, after) in atcs.iter().zip(&now) {
                prop_assert!(after >= before, "ATC decreased: {before} -> {after}");
                prop_assert!(*after <= before + 1, "ATC jumped: {before} -> {after}");
            }
            atcs = now;
            prop_assert!(card.pin_tries_left() <= card.profile().pin_try_limit());
        }
    }

    #[test]
    fn equal_seeds_give_equal_dialogues(steps in proptest::collection::vec(step(), 1..30)) {
        let mut a = new_card("cb");
        let mut b = new_card("cb");
        for command in &steps {
            prop_assert_eq!(a.transmit(command), b.transmit(command));
        }
    }
}

/// SELECT the first application and start a transaction, whatever the profile's PDOL.
fn start_any(card: &mut SimCard) {
    let aid = hx(card.profile().applications()[0].aid());
    let pdol_len: usize = card.profile().applications()[0]
        .pdol()
        .chunks(3)
        .map(|entry| usize::from(*entry.last().unwrap_or(&0)))
        .sum();
    card.transmit(&h(&select(&aid)));
    card.transmit(&h(&format!(
        "80A80000{:02X}83{:02X}{}00",
        pdol_len + 2,
        pdol_len,
        "00".repeat(pdol_len)
    )));
}

fn atcs(card: &SimCard) -> Vec<u16> {
    atcs_of(card)
}

fn atcs_of(card: &SimCard) -> Vec<u16> {
    card.state().applications.iter().map(|a| a.atc).collect()
}

fn application_state() -> impl Strategy<Value = card_applet_sim::state::ApplicationState> {
    (
        proptest::collection::vec(any::<u8>(), 5..=16),
        any::<u16>(),
        any::<u16>(),
        any::<bool>(),
        any::<bool>(),
        proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..12),
    )
        .prop_map(|(aid, atc, last, failed, incomplete, log)| {
            card_applet_sim::state::ApplicationState {
                aid,
                atc,
                last_online_atc: last,
                issuer_auth_failed: failed,
                online_incomplete: incomplete,
                log,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn state_files_round_trip(
        profile in "[a-z0-9-]{1,12}",
        id in "[0-9A-F]{16}",
        tries in any::<u8>(),
        applications in proptest::collection::vec(application_state(), 0..4),
    ) {
        use card_applet_sim::state::CardState;
        let state = CardState { profile, card_id: id, pin_tries_left: tries, applications };
        let path = std::path::Path::new("round-trip.state");
        let bytes = state.to_file_bytes(path).unwrap();
        prop_assert_eq!(CardState::parse(&bytes, path).unwrap(), state);
    }

    #[test]
    fn state_parsing_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = card_applet_sim::state::CardState::parse(&bytes, std::path::Path::new("x"));
    }

    #[test]
    fn profile_parsing_never_panics_on_damaged_text(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6)) {
        let mut text = include_str!("../profiles/cb.toml").as_bytes().to_vec();
        for (index, byte) in flips {
            let i = index.index(text.len());
            text[i] = byte;
        }
        let text = String::from_utf8_lossy(&text);
        let _ = card_applet_sim::profile::Profile::from_toml_str(&text, "damaged");
    }
}
