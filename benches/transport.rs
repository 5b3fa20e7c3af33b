//! Foundation benchmark: codec speed, and what the transport layer costs over calling
//! the card directly. Prints rates and ratios measured in one run; it asserts nothing
//! about time. Run with `cargo bench --bench transport`.
//!
//! - APDU decode + encode per second (a mix of the cases a card read sends);
//! - TLV decode per second of a 250-byte EMV record;
//! - `sim:` round trips (SELECT + READ RECORD) through [`Transport`] against the floor:
//!   the same two commands handed to the card's `transmit` directly. Goal: the
//!   transport costs under 2× the direct call.

use std::hint::black_box;
use std::time::{Duration, Instant};

use card_applet_sim::SmartCard;
use card_applet_sim::card::{SimCard, SimOptions};
use card_applet_sim::profile::Profile;
use card_applet_sim::rng::SeededRandom;
use telepay::apdu::Command;
use telepay::reader::Transport;
use telepay::reader::sim::SimReader;

/// How long each measurement runs; the median of `ROUNDS` is reported.
const WINDOW: Duration = Duration::from_millis(400);
const ROUNDS: usize = 5;

/// Runs `body` repeatedly for `WINDOW`, `ROUNDS` times; median operations per second.
fn rate(mut body: impl FnMut() -> usize) -> f64 {
    let mut rates = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let started = Instant::now();
        let mut operations = 0usize;
        while started.elapsed() < WINDOW {
            operations += body();
        }
        rates.push(operations as f64 / started.elapsed().as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    rates[ROUNDS / 2]
}

fn hex(text: &str) -> Vec<u8> {
    hex::decode(text).expect("benchmark inputs are hex")
}

fn new_card() -> SimCard {
    let options = SimOptions {
        state_file: None,
        random: Box::new(SeededRandom::new(1)),
    };
    SimCard::new(Profile::builtin("cb").expect("cb profile"), options).expect("cb card")
}

fn main() {
    let apdus: Vec<Vec<u8>> = [
        "00A404000E325041592E5359532E444446303100",
        "00B2010C00",
        "80A8000002830000",
        "80CA9F3600",
        "0084000008",
        "80AE80001D00000000100000000000000002500000000000097826112500CAFEBABE00",
        "00C0000000",
        "002A9E9A00000A0102030405060708090A0000",
    ]
    .iter()
    .map(|text| hex(text))
    .collect();
    let apdu_rate = rate(|| {
        for bytes in &apdus {
            let command = Command::parse(black_box(bytes)).expect("valid APDU");
            black_box(command.to_bytes());
        }
        apdus.len()
    });
    println!("APDU decode+encode        {:>12.0} /s", apdu_rate);

    // A 250-byte contact-card record (template 70: track 2, PAN, name, dates, country,
    // PSN, AUC, IACs, CDOL1/2, CVM list, versions, currency, track 1 discretionary data).
    let record = hex(concat!(
        "7081F757134970100000000014D28122010000000000000F5A0849701000000000145F201B445550",
        "4F4E542F4A45414E4E4520202020202020202020202020205F24032812315F25032411015F280202",
        "505F3401019F0702FF009F0D05B860AC88009F0E0500100000009F0F05B868BC98008C219F02069F",
        "03069F1A0295055F2A029A039C019F37049F35019F45029F4C089F34038D178A029F02069F03069F",
        "1A0295055F2A029A039C019F37048E0E000000000000000042031E031F039F080200029F42020978",
        "9F4401025F300202019F1F2630303030303030303030303030303030303030303030303030303030",
        "30303030303030303030",
    ));
    assert_eq!(record.len(), 250, "the record is 250 bytes");
    telepay::tlv::parse(&record).expect("the record is valid TLV");
    let tlv_rate = rate(|| {
        black_box(telepay::tlv::parse(black_box(&record)).expect("valid TLV"));
        1
    });
    println!(
        "TLV decode (250 B record) {:>12.0} /s  ({:.1} MB/s)",
        tlv_rate,
        tlv_rate * 250.0 / 1e6
    );

    let select = Command::parse(&hex("00A4040007A000000042101000")).unwrap();
    let read = Command::parse(&hex("00B2010C00")).unwrap();
    let select_bytes = select.to_bytes();
    let read_bytes = read.to_bytes();

    let mut card = new_card();
    card.power_on();
    let direct_rate = rate(|| {
        black_box(card.transmit(black_box(&select_bytes)));
        black_box(card.transmit(black_box(&read_bytes)));
        1
    });

    let mut transport = Transport::new(SimReader::with_card("sim:cb", Box::new(new_card())));
    transport.power_on().expect("the card powers on");
    let transport_rate = rate(|| {
        black_box(transport.transmit(black_box(&select)).expect("SELECT"));
        black_box(transport.transmit(black_box(&read)).expect("READ RECORD"));
        1
    });
    let cost = direct_rate / transport_rate;
    println!(
        "card.transmit direct      {:>12.0} round trips/s (SELECT + READ RECORD)",
        direct_rate
    );
    println!(
        "Transport over sim:       {:>12.0} round trips/s",
        transport_rate
    );
    println!(
        "transport cost            {:>12.2}x the direct call (goal < 2.00x): {}",
        cost,
        if cost < 2.0 { "met" } else { "NOT met" }
    );
}
