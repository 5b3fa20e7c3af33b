//! Fuzz target `atr`: Answer To Reset parsing (ISO 7816-3 §8).
//!
//! [`Atr::parse`] on arbitrary bytes never panics and, when it accepts:
//! - [`Atr::as_bytes`] is the input, at most 33 bytes (§8.2.1) starting with TS `3B`/`3F`;
//! - the historical bytes are the K bytes T0 announces, placed just before TCK (or at
//!   the end when TCK is absent);
//! - TCK is present exactly when some TDi indicates T ≠ 0, and then the exclusive-or of
//!   T0 to TCK is zero (§8.2.5);
//! - every accessor a user or the CLI calls (`Display`, protocols, Fi/Di/f max, guard
//!   time, T=0 / T=1 parameters, compact-TLV card capabilities) answers without panic,
//!   and the protocol list is non-empty and free of T=15 (§8.2.3).
#![no_main]

use libfuzzer_sys::fuzz_target;
use telepay::atr::{Atr, Protocol};

fuzz_target!(|input: &[u8]| check(input));

fn check(input: &[u8]) {
    let atr = match Atr::parse(input) {
        Ok(atr) => atr,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };

    assert_eq!(atr.as_bytes(), input);
    assert!(input.len() <= telepay::atr::MAX_ATR_LEN);
    assert!(matches!(input.first(), Some(0x3B | 0x3F)));
    assert_eq!(input.get(1), Some(&atr.t0()));

    let tck_required = atr
        .interface_groups()
        .iter()
        .any(|g| g.td.is_some_and(|td| td & 0x0F != 0));
    assert_eq!(atr.tck().is_some(), tck_required, "TCK presence (§8.2.5)");
    if let Some(tck) = atr.tck() {
        assert_eq!(input.last(), Some(&tck));
        let xor = input.iter().skip(1).fold(0u8, |acc, b| acc ^ b);
        assert_eq!(xor, 0, "T0..TCK does not XOR to zero");
    }

    let historical = atr.historical_bytes();
    assert_eq!(historical.len(), usize::from(atr.t0() & 0x0F));
    let tail = input.len().saturating_sub(usize::from(atr.tck().is_some()));
    let start = tail.saturating_sub(historical.len());
    assert_eq!(input.get(start..tail), Some(historical));

    let protocols = atr.protocols();
    assert!(!protocols.is_empty());
    assert!(!protocols.contains(&Protocol::Other(15)));
    assert_eq!(
        atr.t1_parameters().is_some(),
        protocols.contains(&Protocol::T1)
    );
    for p in &protocols {
        let _ = p.to_string();
    }

    let _ = atr.to_string();
    let _ = (atr.fi(), atr.di(), atr.f_max_mhz(), atr.ta1());
    let _ = (atr.extra_guard_time(), atr.waiting_time_integer());
    let _ = (atr.specific_mode(), atr.clock_stop_and_class());
    let _ = (atr.compact_tlv(), atr.card_capabilities());
    let _ = (
        atr.supports_extended_length(),
        atr.supports_command_chaining(),
    );
    assert_eq!(Atr::parse(atr.as_bytes()).as_ref(), Ok(&atr));
}
