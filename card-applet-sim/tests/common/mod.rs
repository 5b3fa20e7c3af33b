//! Helpers shared by the card's integration tests: build a card, send hex, read hex.
#![allow(dead_code)]

use card_applet_sim::SmartCard;
use card_applet_sim::card::{SimCard, SimOptions};
use card_applet_sim::profile::Profile;

/// Hex text (spaces allowed) to bytes.
pub fn h(text: &str) -> Vec<u8> {
    hex::decode(text.replace([' ', '\n'], "")).expect("test hex")
}

/// Bytes to upper-case hex without spaces.
pub fn hx(bytes: &[u8]) -> String {
    hex::encode_upper(bytes)
}

/// A powered card of a builtin profile, in memory, seeded randomness.
pub fn new_card(profile: &str) -> SimCard {
    let mut card = SimCard::new(
        Profile::builtin(profile).expect("builtin"),
        SimOptions::seeded(1),
    )
    .expect("card");
    card.power_on();
    card
}

/// Sends hex, returns the response as hex.
pub fn send(card: &mut SimCard, command: &str) -> String {
    hx(&card.transmit(&h(command)))
}

/// Sends hex and checks the status word is `sw`; returns the data as hex.
pub fn expect_sw(card: &mut SimCard, command: &str, sw: &str) -> String {
    let response = send(card, command);
    assert!(
        response.ends_with(sw),
        "command {command}: expected SW {sw}, got {response}"
    );
    response[..response.len() - 4].to_owned()
}

/// The CB application's AID.
pub const CB_AID: &str = "A0000000421010";
/// The Visa application's AID.
pub const VISA_AID: &str = "A0000000031010";

/// SELECT by full AID, FCI wanted.
pub fn select(aid: &str) -> String {
    format!("00A40400{:02X}{aid}00", aid.len() / 2)
}

/// 20 bytes of Merchant Custom Data (9F7C): "MERCHANT-0000000001" and a zero byte.
pub const MERCHANT_DATA: &str = "4D45524348414E542D3030303030303030303100";

/// The cb profile's CB CDOL1 data (49 bytes): amount, amount other, country (France),
/// TVR, currency (euro), date 2026-11-25, type (purchase), UN, merchant custom data.
pub fn cb_cdol1(amount: &str, un: &str) -> String {
    format!("{amount}000000000000025000000000000978261125 00{un}{MERCHANT_DATA}").replace(' ', "")
}

/// GENERATE AC with P1 (`40` TC, `80` ARQC, `00` AAC) and DOL data in hex.
pub fn generate_ac(p1: &str, dol_data: &str) -> String {
    let data = dol_data.replace(' ', "");
    format!("80AE{p1}00{:02X}{data}00", data.len() / 2)
}

/// Selects the CB application and runs GET PROCESSING OPTIONS (empty PDOL).
pub fn start_cb(card: &mut SimCard) {
    expect_sw(card, &select(CB_AID), "9000");
    expect_sw(card, "80A8000002830000", "9000");
}

/// A plaintext PIN block (ISO 9564 format 2) for 4 digits.
pub fn pin_block(pin: &str) -> String {
    format!("24{pin}FFFFFFFFFF")
}

/// VERIFY with a 4-digit plaintext PIN.
pub fn verify(pin: &str) -> String {
    format!("0020008008{}", pin_block(pin))
}

/// A fresh, empty directory under the system temp dir, unique to this process and name.
pub fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "card-applet-sim-test-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// A powered card of a builtin profile with a state file.
pub fn card_with_state(profile: &str, path: &std::path::Path) -> SimCard {
    let mut card = SimCard::new(
        Profile::builtin(profile).expect("builtin"),
        SimOptions::seeded(1).with_state_file(path),
    )
    .expect("card");
    card.power_on();
    card
}
