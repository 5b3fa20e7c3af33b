//! `telepay::testing` used as a user would: a dialogue with values that vary on every
//! run (a random unpredictable number, hence a different cryptogram) stays one stable
//! snapshot once those tags are redacted.

use telepay::emv::{self, ReadOptions};
use telepay::testing::{DialogueRecorder, VARYING_TAGS, powered};

/// A card read and an ARQC, with a fresh random unpredictable number each run.
fn dialogue_with_random_un(profile: &str) -> String {
    let mut card = DialogueRecorder::new(powered(&format!("sim:{profile}")).unwrap());
    let un: [u8; 4] = std::array::from_fn(|_| rand_byte());
    let mut terminal_data = emv::default_terminal_data([0x26, 0x11, 0x25], un);
    terminal_data.insert(0x9F02, vec![0, 0, 0, 0, 0x50, 0x00]);
    let report = emv::read_card(
        &mut card,
        &ReadOptions {
            aid: None,
            terminal_data: terminal_data.clone(),
        },
    )
    .unwrap();
    let records = report.records_tlvs().unwrap();
    let cdol1 = telepay::tlv::find(&records, 0x8C)
        .and_then(|t| t.bytes())
        .unwrap();
    let cdol1 = telepay::tlv::dol::parse_dol(cdol1).unwrap();
    let data = telepay::tlv::dol::build_dol_data(&cdol1, &terminal_data);
    card.send_hex(&format!(
        "80AE8000{:02X}{}00",
        data.len(),
        hex::encode(&data)
    ))
    .unwrap();
    card.render(VARYING_TAGS)
}

fn rand_byte() -> u8 {
    let mut byte = [0u8];
    getrandom::fill(&mut byte).unwrap();
    byte[0]
}

#[test]
fn varying_values_are_redacted_in_tlv_responses_and_dol_data() {
    let text = dialogue_with_random_un("cb");
    assert!(
        text.contains("9F37 Unpredictable Number: <redacted>"),
        "{text}"
    );
    assert!(
        text.contains("9F26 Application Cryptogram: <redacted>"),
        "{text}"
    );
    assert!(
        text.contains("9F36 Application Transaction Counter (ATC): <redacted>"),
        "{text}"
    );
    insta::assert_snapshot!("cb_read_and_arqc_redacted", text);
}

#[test]
fn format_1_generate_ac_fields_are_redacted_too() {
    // The visa profile answers GENERATE AC in format 1 (80: CID ATC AC IAD).
    let text = dialogue_with_random_un("visa");
    assert!(text.contains("  ATC <redacted>"), "{text}");
    assert!(text.contains("  AC <redacted>"), "{text}");
    insta::assert_snapshot!("visa_read_and_arqc_redacted", text);
}

#[test]
fn two_runs_with_different_random_numbers_render_the_same() {
    assert_eq!(dialogue_with_random_un("cb"), dialogue_with_random_un("cb"));
}
