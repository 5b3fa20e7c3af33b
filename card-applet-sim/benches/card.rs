//! What the applet adds to its cryptography. Prints rates and ratios measured in one run;
//! asserts nothing about time. Run with `cargo bench -p card-applet-sim --bench card`.
//!
//! - GENERATE AC (CVN 18, `cb` card) per second, timed around the command alone, against
//!   the same cryptography called directly: session-key derivation plus the retail MAC
//!   over the same 40-byte input;
//! - PSO: COMPUTE DIGITAL SIGNATURE per second against a raw `p256` ECDSA signature of
//!   the same message (SHA-256, RFC 6979).
//!
//! Goal for both ratios (card / raw): at least 0.8.

use std::hint::black_box;
use std::time::{Duration, Instant};

use card_applet_sim::SmartCard;
use card_applet_sim::card::{SimCard, SimOptions};
use card_applet_sim::crypto::{
    AcInput, CryptogramVersion, DoubleKey, ac_input_data, application_cryptogram,
};
use card_applet_sim::profile::Profile;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};

const WINDOW: Duration = Duration::from_millis(400);
const ROUNDS: usize = 5;
/// The ATC is 16 bits: a fresh card every so many transactions keeps it far from 65,535.
const TRANSACTIONS_PER_CARD: u32 = 20_000;

/// Median over `ROUNDS` of operations per second, where `body` returns (operations,
/// time spent in them).
fn rate(mut body: impl FnMut() -> (u64, Duration)) -> f64 {
    let mut rates = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let started = Instant::now();
        let (mut operations, mut busy) = (0u64, Duration::ZERO);
        while started.elapsed() < WINDOW {
            let (count, spent) = body();
            operations += count;
            busy += spent;
        }
        rates.push(operations as f64 / busy.as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    rates[ROUNDS / 2]
}

/// Times a closure called `count` times in a row.
fn timed(count: u64, mut body: impl FnMut()) -> (u64, Duration) {
    let started = Instant::now();
    for _ in 0..count {
        body();
    }
    (count, started.elapsed())
}

fn hex(text: &str) -> Vec<u8> {
    hex::decode(text.replace(' ', "")).expect("benchmark inputs are hex")
}

fn powered_cb() -> SimCard {
    let mut card = SimCard::new(
        Profile::builtin("cb").expect("cb profile"),
        SimOptions::seeded(1),
    )
    .expect("cb card");
    card.power_on();
    assert!(
        card.transmit(&hex("00A4040007A000000042101000"))
            .ends_with(&[0x90, 0x00])
    );
    card
}

fn main() {
    let select = hex("00A4040007A000000042101000");
    let gpo = hex("80A8000002830000");
    // CDOL1 of the cb card: amount 12.50 EUR, France, 2026-11-25, UN, merchant data.
    let generate_ac = hex(
        "80AE8000 31 000000001250 000000000000 0250 0000000000 0978 261125 00 CAFEBABE \
         0102030405060708090A0B0C0D0E0F1011121314 00",
    );

    let mut card = powered_cb();
    let mut transactions = 0u32;
    let card_rate = rate(|| {
        if transactions >= TRANSACTIONS_PER_CARD {
            card = powered_cb();
            transactions = 0;
        }
        transactions += 1;
        // A new transaction each time: SELECT ends the previous one (which stopped at
        // the ARQC, awaiting a second GENERATE AC), GPO starts the next.
        assert!(card.transmit(&select).ends_with(&[0x90, 0x00]));
        assert!(card.transmit(&gpo).ends_with(&[0x90, 0x00]));
        let started = Instant::now();
        let answer = card.transmit(black_box(&generate_ac));
        let spent = started.elapsed();
        assert!(
            answer.ends_with(&[0x90, 0x00]),
            "GENERATE AC: {}",
            hex::encode_upper(&answer)
        );
        (1, spent)
    });

    let profile = Profile::builtin("cb").expect("cb profile");
    let application = &profile.applications()[0];
    let version = application.cryptogram_version().expect("a supported CVN");
    assert!(matches!(version, CryptogramVersion::Cvn18));
    let icc_master_key: DoubleKey = version
        .derive_icc_master_key(
            application.issuer_master_key(),
            profile.pan(),
            profile.pan_sequence(),
        )
        .expect("derivable");
    let iad = hex("06011203A41000");
    let mut atc = 0u16;
    let raw_rate = rate(|| {
        timed(256, || {
            atc = atc.wrapping_add(1);
            let input = AcInput {
                cdol1_data: &[],
                amount_authorised: [0, 0, 0, 0, 0x12, 0x50],
                amount_other: [0; 6],
                terminal_country: [0x02, 0x50],
                tvr: [0; 5],
                currency: [0x09, 0x78],
                date: [0x26, 0x11, 0x25],
                transaction_type: 0,
                unpredictable_number: [0xCA, 0xFE, 0xBA, 0xBE],
                aip: application.aip(),
                atc,
                iad: &iad,
            };
            let data = ac_input_data(version, &input);
            black_box(application_cryptogram(
                version,
                &icc_master_key,
                atc,
                black_box(&data),
            ));
        })
    });
    let ac_ratio = card_rate / raw_rate;
    println!("GENERATE AC (cb, CVN 18)   {card_rate:>10.0} /s");
    println!("raw session key + MAC      {raw_rate:>10.0} /s");
    println!(
        "ratio card / raw           {ac_ratio:>10.2}   (goal >= 0.80): {}",
        if ac_ratio >= 0.8 { "met" } else { "NOT met" }
    );

    let message = b"pay 12.50 EUR to service 1";
    let mut pso = vec![0x00, 0x2A, 0x9E, 0x9A, message.len() as u8];
    pso.extend_from_slice(message);
    pso.push(0x00);
    let mut card = powered_cb();
    assert!(card.transmit(&gpo).ends_with(&[0x90, 0x00]));
    assert!(
        card.transmit(&hex("0020008008241234FFFFFFFFFF"))
            .ends_with(&[0x90, 0x00])
    );
    let sign_card = rate(|| {
        timed(32, || {
            let answer = card.transmit(black_box(&pso));
            assert_eq!(answer.len(), 66, "signature + 9000");
        })
    });
    let key = SigningKey::from_slice(&[0x11; 32]).expect("a valid scalar");
    let sign_raw = rate(|| {
        timed(32, || {
            let signature: Signature = key.sign(black_box(message));
            black_box(signature);
        })
    });
    let sign_ratio = sign_card / sign_raw;
    println!("PSO:CDS (cb)               {sign_card:>10.0} /s");
    println!("raw p256 sign              {sign_raw:>10.0} /s");
    println!(
        "ratio card / raw           {sign_ratio:>10.2}   (goal >= 0.80): {}",
        if sign_ratio >= 0.8 { "met" } else { "NOT met" }
    );
}
