//! Fuzz target `card_transmit`: the software card answering arbitrary dialogues.
//!
//! Input layout (so seeds can hold a realistic EMV dialogue the fuzzer mutates):
//!
//! ```text
//! P  { FRAME }*
//! P      profile: Profile::builtin_names()[P % count]
//! FRAME  = FF                  warm reset (ISO 7816-3 §6.2.3)
//!        | FE                  cold reset (§6.2.2)
//!        | FD HI LO APDU       an APDU of HI*256+LO bytes (extended commands)
//!        | L APDU              an APDU of L bytes, L ≤ FC
//! ```
//! A frame cut short by the end of the input sends the bytes that remain.
//!
//! The card is built as the CLI's `sim:PROFILE?seed=0` would be: no state file,
//! [`SeededRandom::new(0)`](SeededRandom::new), so a crash reproduces byte for byte.
//! Checked after power-on and every frame:
//! - the ATR is non-empty and equals the profile's ATR, and telepay's ATR parser
//!   accepts it (ISO 7816-3 §8);
//! - every answer holds at least SW1 SW2, and SW1 is `6X` (not `60`) or `9X`, the only
//!   values ISO 7816-3 §10.3.3 allows;
//! - no application's ATC ever decreases, whatever the command or reset (EMV Book 3
//!   Annex A, 9F36: the ATC only counts up); `card.atc()` reports the selected
//!   application's, so it is checked per application (a profile may carry several);
//! - the Last Online ATC Register (9F13) never exceeds its application's ATC.
#![no_main]

use card_applet_sim::card::{SimCard, SimOptions};
use card_applet_sim::profile::Profile;
use card_applet_sim::rng::SeededRandom;
use card_applet_sim::{ResetKind, SmartCard};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

/// Frame marker: warm reset.
const WARM_RESET: u8 = 0xFF;
/// Frame marker: cold reset.
const COLD_RESET: u8 = 0xFE;
/// Frame marker: a two-byte length follows.
const LONG_FRAME: u8 = 0xFD;

fuzz_target!(|input: &[u8]| check(input));

fn check(input: &[u8]) {
    let Some((&selector, mut rest)) = input.split_first() else {
        return;
    };
    let profiles = builtin_profiles();
    let Some(profile) = profiles.get(usize::from(selector) % profiles.len().max(1)) else {
        return;
    };
    let profile = profile.clone();
    let name = profile.name().to_owned();
    let name = name.as_str();
    let expected_atr = profile.atr().to_vec();
    let options = SimOptions {
        state_file: None,
        random: Box::new(SeededRandom::new(0)),
    };
    let mut card = match SimCard::new(profile, options) {
        Ok(card) => card,
        Err(e) => panic!("card for builtin profile {name} does not build: {e}"),
    };

    let atr = card.power_on();
    check_atr(name, &atr, &expected_atr);
    let mut atcs = check_counters(name, &card, &[]);

    while let Some((&marker, tail)) = rest.split_first() {
        rest = tail;
        match marker {
            WARM_RESET => check_atr(name, &card.reset(ResetKind::Warm), &expected_atr),
            COLD_RESET => check_atr(name, &card.reset(ResetKind::Cold), &expected_atr),
            _ => {
                let len = if marker == LONG_FRAME {
                    let (len, tail) = match rest.split_first_chunk::<2>() {
                        Some((&[hi, lo], tail)) => {
                            (usize::from(u16::from_be_bytes([hi, lo])), tail)
                        }
                        None => (rest.len(), rest),
                    };
                    rest = tail;
                    len
                } else {
                    usize::from(marker)
                };
                let (apdu, tail) = rest.split_at(len.min(rest.len()));
                rest = tail;
                let answer = card.transmit(apdu);
                check_answer(name, apdu, &answer);
            }
        }
        atcs = check_counters(name, &card, &atcs);
    }
    card.power_off();
}

/// Checks the persistent counters against their values before the last frame and
/// returns them. Each application of a profile has its own ATC (`cb` carries CB and
/// Visa), and `card.atc()` is the selected one's, so monotonicity is checked per
/// application: no ATC ever decreases, the Last Online ATC Register never exceeds its
/// ATC (EMV Book 3 Annex A, 9F13), and `card.atc()` is one of them.
fn check_counters(name: &str, card: &SimCard, before: &[u16]) -> Vec<u16> {
    let applications = &card.state().applications;
    let atcs: Vec<u16> = applications.iter().map(|a| a.atc).collect();
    for (i, (now, was)) in atcs.iter().zip(before).enumerate() {
        assert!(
            now >= was,
            "{name}: ATC of application {i} went from {was} to {now}"
        );
    }
    for (i, app) in applications.iter().enumerate() {
        assert!(
            app.last_online_atc <= app.atc,
            "{name}: application {i} last online ATC {} above its ATC {}",
            app.last_online_atc,
            app.atc
        );
    }
    assert!(
        atcs.contains(&card.atc()),
        "{name}: card.atc() {} is no application's ATC {atcs:?}",
        card.atc()
    );
    atcs
}

/// The builtin profiles, parsed once: TOML parsing would otherwise dominate each run.
fn builtin_profiles() -> &'static [Profile] {
    static PROFILES: OnceLock<Vec<Profile>> = OnceLock::new();
    PROFILES.get_or_init(|| {
        Profile::builtin_names()
            .iter()
            .map(|name| match Profile::builtin(name) {
                Ok(p) => p,
                Err(e) => panic!("builtin profile {name} does not load: {e}"),
            })
            .collect()
    })
}

fn check_atr(name: &str, atr: &[u8], expected: &[u8]) {
    assert!(!atr.is_empty(), "{name}: empty ATR");
    assert_eq!(atr, expected, "{name}: ATR differs from the profile's");
    if let Err(e) = telepay::atr::Atr::parse(atr) {
        panic!("{name}: ATR {atr:02X?} rejected by telepay: {e}");
    }
}

fn check_answer(name: &str, apdu: &[u8], answer: &[u8]) {
    let Some(&[sw1, _sw2]) = answer.last_chunk::<2>() else {
        panic!("{name}: answer {answer:02X?} to {apdu:02X?} has no status word");
    };
    assert!(
        matches!(sw1, 0x61..=0x6F | 0x90..=0x9F),
        "{name}: SW1 {sw1:02X} in {answer:02X?} answering {apdu:02X?} is not 6X/9X"
    );
}
