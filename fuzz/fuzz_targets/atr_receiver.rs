//! Fuzz target `atr_receiver`: receiving an Answer To Reset from the line,
//! `telepay::iso7816_3::atr_receiver::AtrReceiver` (ISO 7816-3 §8.1, §8.2).
//!
//! Input layout: only steps (`common/line.rs`): the card's characters as the UART reads
//! them, in pieces, and deadlines fired at points the input picks.
//!
//! The characters fed are decoded here independently (TS `03`: an inverse-convention
//! card read by a direct UART, every character bit-reversed and complemented, §8.1;
//! `3B` and `3F` as read). Checked:
//! - nothing panics; a TS other than `3B`, `3F`, `03` fails at once with `BadTs` naming
//!   it, and never gives an ATR;
//! - an ATR received parses with `telepay::atr::Atr` to the same value, is at most 33
//!   bytes, is the decoded characters received up to its end — which is the first
//!   prefix that is a whole ATR, no sooner, no later — and the rest of them are its
//!   `trailing` bytes; the convention and `invert_on_host` follow TS;
//! - `Malformed` only when no prefix of the decoded characters is an ATR; while
//!   incomplete, `received()` is the decoded characters;
//! - deadlines (§8.2): TS within the first-character time of reset, then the earlier of
//!   the inter-character time after the last piece and the total time after TS; fired
//!   early they do nothing, on time they fail with `NoAnswer` (how long since reset)
//!   or `Incomplete` (the decoded characters, and a length announced beyond them);
//! - a failed receiver repeats its error to every call; after the ATR is taken, more
//!   characters get `AfterEnd` naming them.
#![no_main]

#[path = "common/line.rs"]
mod line;

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use line::{Input, Step, TICK, hex, just_before, origin};
use telepay::atr::{Atr, Convention, MAX_ATR_LEN};
use telepay::iso7816_3::atr_receiver::{AtrReceiveError, AtrReceiver, AtrTiming, ReceivedAtr};

const TIMING: AtrTiming = AtrTiming {
    first_character: Duration::from_millis(50),
    between_characters: Duration::from_millis(100),
    total: Duration::from_millis(300),
};

fuzz_target!(|input: &[u8]| check(input));

fn check(input: &[u8]) {
    let mut input = Input::new(input);
    let start = origin();
    let mut receiver = AtrReceiver::new(TIMING, start);
    let mut now = start;
    // Characters as read, until the ATR was taken or the receiver failed.
    let mut raw: Vec<u8> = Vec::new();
    let mut first_at: Option<Instant> = None;
    let mut last_at: Option<Instant> = None;
    let mut failed: Option<AtrReceiveError> = None;
    let mut taken = false;

    while let Some(step) = input.raw_step() {
        match step {
            // A driver hands over what it read; an empty read is a timeout, not input.
            Step::Piece([]) => {}
            Step::Piece(piece) => {
                now += TICK;
                let result = receiver.handle_input(piece, now);
                if let Some(error) = &failed {
                    assert_eq!(
                        result.as_ref(),
                        Err(error),
                        "a failed receiver stays failed"
                    );
                    continue;
                }
                if taken {
                    let after = AtrReceiveError::AfterEnd {
                        bytes: piece.to_vec(),
                    };
                    assert_eq!(result, Err(after), "characters after the ATR was taken");
                    continue;
                }
                raw.extend_from_slice(piece);
                first_at.get_or_insert(now);
                last_at = Some(now);
                match result {
                    Err(error) => {
                        check_error(&raw, &error);
                        failed = Some(error);
                    }
                    Ok(()) => match receiver.poll_atr() {
                        Some(received) => {
                            check_atr(&raw, &received);
                            assert!(receiver.poll_atr().is_none(), "the ATR is taken once");
                            taken = true;
                        }
                        None => {
                            let decoded = decode(&raw);
                            assert_eq!(receiver.received(), decoded.as_slice());
                            no_prefix_is_an_atr(&decoded, "still waiting");
                        }
                    },
                }
            }
            Step::Timeout { late } => {
                let deadline = receiver.poll_timeout();
                let expected = match (&failed, taken, first_at, last_at) {
                    (Some(_), _, _, _) | (None, true, _, _) => None,
                    (None, false, Some(first), Some(last)) => {
                        Some((last + TIMING.between_characters).min(first + TIMING.total))
                    }
                    (None, false, _, _) => Some(start + TIMING.first_character),
                };
                assert_eq!(deadline, expected, "the deadline (§8.2)");
                let at = deadline.map_or(now + Duration::from_secs(1), |d| d + late);
                now = now.max(at);
                let result = receiver.handle_timeout(at);
                if let Some(error) = &failed {
                    assert_eq!(
                        result.as_ref(),
                        Err(error),
                        "a failed receiver stays failed"
                    );
                    continue;
                }
                if taken {
                    assert_eq!(result, Ok(()), "no deadline once the ATR was taken");
                    continue;
                }
                let error = match result {
                    Err(error) => error,
                    Ok(()) => panic!("the deadline passed and the receiver goes on"),
                };
                match &error {
                    AtrReceiveError::NoAnswer { waited } => {
                        assert!(raw.is_empty(), "NoAnswer after {}", hex(&raw));
                        assert_eq!(*waited, at.saturating_duration_since(start));
                    }
                    AtrReceiveError::Incomplete {
                        received,
                        expected_at_least,
                    } => {
                        assert_eq!(received, &decode(&raw), "the characters received");
                        assert!(
                            *expected_at_least > received.len(),
                            "incomplete at {} bytes but {expected_at_least} announced",
                            received.len()
                        );
                    }
                    other => panic!("on a deadline: {other}"),
                }
                failed = Some(error);
            }
            Step::EarlyTimeout => {
                if let (Some(deadline), None) = (receiver.poll_timeout(), &failed) {
                    assert_eq!(receiver.handle_timeout(just_before(deadline)), Ok(()));
                    assert_eq!(receiver.poll_timeout(), Some(deadline));
                }
            }
            Step::Structured(_) | Step::Action(_) => {}
        }
        assert_eq!(receiver.is_failed(), failed.is_some());
        if let Some(error) = &failed {
            let _ = error.to_string();
        }
    }
}

/// The characters' values (§8.1): after TS `03`, each character read by a direct
/// UART from an inverse-convention card is bit-reversed and complemented, and TS is
/// `3F`; after `3B` (direct) or `3F` (decoded by the reader) they are as read.
fn decode(raw: &[u8]) -> Vec<u8> {
    match raw.split_first() {
        Some((0x03, rest)) => std::iter::once(0x3F)
            .chain(rest.iter().map(|&byte| !reverse(byte)))
            .collect(),
        _ => raw.to_vec(),
    }
}

/// The bits of `byte` in the opposite order, written out (not `u8::reverse_bits`, so
/// the check does not share the library's code).
fn reverse(byte: u8) -> u8 {
    (0..8).fold(0, |acc, bit| acc | (((byte >> bit) & 1) << (7 - bit)))
}

fn check_error(raw: &[u8], error: &AtrReceiveError) {
    let ts = raw.first().copied().unwrap_or_default();
    match error {
        AtrReceiveError::BadTs { ts: named } => {
            assert_eq!(*named, ts, "BadTs names the first character");
            assert!(!matches!(ts, 0x3B | 0x3F | 0x03), "TS {ts:02X} refused");
        }
        AtrReceiveError::Malformed { .. } => {
            assert!(matches!(ts, 0x3B | 0x3F | 0x03));
            no_prefix_is_an_atr(&decode(raw), "malformed");
        }
        other => panic!("{other} from characters {}", hex(raw)),
    }
}

fn check_atr(raw: &[u8], received: &ReceivedAtr) {
    let ts = raw.first().copied().unwrap_or_default();
    let (convention, invert) = match ts {
        0x3B => (Convention::Direct, false),
        0x3F => (Convention::Inverse, false),
        0x03 => (Convention::Inverse, true),
        other => panic!("an ATR from TS {other:02X} (§8.1)"),
    };
    assert_eq!(received.convention, convention, "convention of TS {ts:02X}");
    assert_eq!(
        received.invert_on_host, invert,
        "inversion on the host for TS {ts:02X}"
    );
    let bytes = received.atr.as_bytes();
    assert!(bytes.len() <= MAX_ATR_LEN, "{} bytes (§8.2.1)", bytes.len());
    assert_eq!(
        Atr::parse(bytes).as_ref(),
        Ok(&received.atr),
        "the ATR parses back"
    );
    let decoded = decode(raw);
    let (atr, trailing) = decoded.split_at(bytes.len().min(decoded.len()));
    assert_eq!(
        hex(atr),
        hex(bytes),
        "the ATR is the decoded characters received"
    );
    assert_eq!(hex(trailing), hex(&received.trailing), "trailing bytes");
    no_prefix_is_an_atr(
        atr.get(..atr.len().saturating_sub(1)).unwrap_or_default(),
        "early",
    );
}

/// No prefix of `decoded` (up to one byte past the longest ATR) is a whole ATR.
fn no_prefix_is_an_atr(decoded: &[u8], context: &str) {
    for end in 1..=decoded.len().min(MAX_ATR_LEN + 1) {
        let prefix = decoded.get(..end).unwrap_or_default();
        if let Ok(atr) = Atr::parse(prefix) {
            panic!(
                "{context}: {} is a whole ATR ({atr}) and was missed",
                hex(prefix)
            );
        }
    }
}
