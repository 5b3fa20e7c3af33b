//! A whole contact-card purchase with the `cb` card, as a terminal runs it and a person
//! reviews it: the EMV read, the PIN verified by the card, the first GENERATE AC (the
//! card asks to go online: ARQC), the issuer's answer checked by the card (ARPC method 1
//! in the second GENERATE AC: TC), and an in-card signature (PSO: COMPUTE DIGITAL
//! SIGNATURE). Every exchange is decoded; the snapshot pins the whole dialogue.
//!
//! The issuer side is computed here with `card_applet_sim::crypto`, the one copy of the
//! EMV algorithms, from the profile's test issuer master key.

use std::collections::BTreeMap;

use card_applet_sim::crypto::arpc_method1;
use card_applet_sim::profile::Profile;
use telepay::apdu::{Command, Response};
use telepay::describe::{DescribeOptions, Describer};
use telepay::emv::{self, ReadOptions};
use telepay::reader::{ReaderUri, Transport, open};
use telepay::tlv::{self, Tlv, dol};

fn command(cla: u8, ins: u8, p1: u8, p2: u8, data: &[u8]) -> Command {
    Command::new(cla, ins, p1, p2)
        .with_data(data.to_vec())
        .unwrap()
        .with_le(256)
        .unwrap()
}

fn primitive(response: &Response, tag: u32) -> Vec<u8> {
    let tlvs = tlv::parse(&response.data).unwrap();
    tlv::find(&tlvs, tag)
        .and_then(Tlv::bytes)
        .unwrap_or_else(|| panic!("tag {tag:X} in {}", hex::encode_upper(&response.data)))
        .to_vec()
}

#[test]
fn cb_contact_purchase_dialogue() {
    let uri = ReaderUri::parse("sim:cb?seed=1").unwrap();
    let mut transport = Transport::new(open(&uri).unwrap());
    transport.power_on().unwrap();

    // 12.50 EUR on 2026-11-25; the merchant data (9F7C) carries the first 20 bytes of
    // the service designation's digest, as the purchase flow will.
    let mut terminal_data =
        emv::default_terminal_data([0x26, 0x11, 0x25], [0xCA, 0xFE, 0xBA, 0xBE]);
    terminal_data.insert(0x9F02, hex::decode("000000001250").unwrap());
    terminal_data.insert(0x9F7C, (1..=20).collect());
    let options = ReadOptions {
        aid: None,
        terminal_data: terminal_data.clone(),
    };
    let report = emv::read_card(&mut transport, &options).unwrap();
    let mut exchanges: Vec<(Command, Response)> = report
        .exchanges()
        .iter()
        .map(|exchange| (exchange.command.clone(), exchange.response.clone()))
        .collect();
    let mut send = |transport: &mut Transport<_>, command: Command| {
        let response = transport.transmit(&command).unwrap();
        exchanges.push((command, response.clone()));
        response
    };

    // Offline plaintext PIN 1234 as an ISO 9564 format 2 block: the card compares it.
    let verify = Command::new(0x00, 0x20, 0x00, 0x80)
        .with_data(hex::decode("241234FFFFFFFFFF").unwrap())
        .unwrap();
    assert!(send(&mut transport, verify).sw.is_success());

    // First GENERATE AC: the terminal asks for an ARQC with the CDOL1 data.
    let records: Vec<Tlv> = report.records_tlvs().unwrap();
    let cdol1 = dol::parse_dol(tlv::find(&records, 0x8C).and_then(Tlv::bytes).unwrap()).unwrap();
    let cdol1_data = dol::build_dol_data(&cdol1, &terminal_data);
    let first = send(&mut transport, command(0x80, 0xAE, 0x80, 0x00, &cdol1_data));
    assert_eq!(
        primitive(&first, 0x9F27),
        [0x80],
        "the card asks to go online"
    );
    let atc = u16::from_be_bytes(primitive(&first, 0x9F36).try_into().unwrap());
    let arqc: [u8; 8] = primitive(&first, 0x9F26).try_into().unwrap();

    // The issuer approves (ARC "00") and authenticates itself with ARPC method 1.
    let profile = Profile::builtin("cb").unwrap();
    let application = &profile.applications()[0];
    let version = application.cryptogram_version().unwrap();
    let icc_master_key = version
        .derive_icc_master_key(
            application.issuer_master_key(),
            profile.pan(),
            profile.pan_sequence(),
        )
        .unwrap();
    let arc = *b"00";
    let arpc = arpc_method1(version, &icc_master_key, atc, &arqc, &arc);
    let mut issuer_data: BTreeMap<u32, Vec<u8>> = terminal_data.clone();
    issuer_data.insert(0x8A, arc.to_vec());
    issuer_data.insert(0x91, [arpc.as_slice(), arc.as_slice()].concat());
    let cdol2 = dol::parse_dol(tlv::find(&records, 0x8D).and_then(Tlv::bytes).unwrap()).unwrap();
    let cdol2_data = dol::build_dol_data(&cdol2, &issuer_data);
    let second = send(&mut transport, command(0x80, 0xAE, 0x40, 0x00, &cdol2_data));
    assert_eq!(
        primitive(&second, 0x9F27),
        [0x40],
        "issuer authenticated: TC"
    );

    // In-card signature over the payment request, with the card's P-256 key.
    let signature = send(
        &mut transport,
        command(0x00, 0x2A, 0x9E, 0x9A, b"pay 12.50 EUR to service 1"),
    );
    assert_eq!(signature.data.len(), 64, "r || s");

    let mut describer = Describer::new(DescribeOptions::default());
    let dialogue: String = exchanges
        .iter()
        .map(|(command, response)| describer.describe(command, response).to_string())
        .collect();
    assert!(!dialogue.contains("241234"), "the PIN block is masked");
    insta::assert_snapshot!("cb_contact_purchase", dialogue);
}
