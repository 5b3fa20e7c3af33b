//! Fuzz target `t1_roundtrip`: a `T1Host` and a `T1Card` (ISO 7816-3 §11) wired back
//! to back through a line that damages blocks where the input says.
//!
//! Input layout:
//!
//! ```text
//! F IFSC IFSD OP V LEN R  FAULTS
//! F IFSC IFSD  the link (`common/t1.rs`), the same on both sides
//! OP      bit 0: the host first announces IFSD = V with S(IFS request); bits 1–2: the
//!         card's application answers at once, after S(WTX request) (multiplier V), or
//!         after S(IFS request) (IFSC V)
//! LEN R   the command APDU is 4 + 3 × LEN bytes, its response 2 + 3 × R bytes
//! FAULTS  one byte per block sent, either way, until the input runs out (then the line
//!         is clean): 00–9F intact; A0–AF one byte XORed (position and nonzero mask
//!         from the next two bytes); B0–B7 lost; B8–BF doubled in one piece; C0–C7
//!         a noise byte after it; C8–CF cut short; D0–DF split in two pieces; E0–EF a
//!         nonzero noise byte before it; F0–FF a parity error reported before it
//! ```
//!
//! One fault per block at most, each detectable by ISO 7816-3 alone (a single damaged
//! byte changes the LRC and the CRC; a block cut short times out on CWT; characters
//! after a block in the same read make it invalid). A line does not repeat a block as
//! a second transmission: the receiver would answer twice, and two answers cut short
//! back to back can join into a frame the LRC accepts (`00 00 02` + `00 00 02` reads as
//! an I-block carrying `00 00`) — a limit of the LRC, not of the engines. When nothing
//! is in flight, the earlier deadline of the two sides fires. Checked:
//! - nothing panics; one block at most is on the line at any time (half-duplex,
//!   §11.6.2), whatever the faults;
//! - the dialogue ends: the host reports an outcome, never waits with no deadline, and
//!   never runs past a bound of iterations (no livelock);
//! - every APDU the card delivers is exactly the one sent (never a wrong one, though
//!   it may come twice after a resynchronisation); a response the host reports is
//!   exactly the card's; the host's only possible error is
//!   `ResynchronisationFailed` (no valid block asks for an abort);
//! - with no fault on the line, the exchange succeeds.
#![no_main]

#[path = "common/line.rs"]
mod line;
#[path = "common/t1.rs"]
mod t1;

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use line::{Input, TICK, hex, origin};
use telepay::iso7816_3::t1::{T1Card, T1CardEvent, T1Error, T1Event, T1Host};

fuzz_target!(|input: &[u8]| check(input));

/// Which side a block goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum To {
    Card,
    Host,
}

/// A clearly impossible number of blocks for one exchange: livelock beyond it.
const ITERATIONS: usize = 60_000;

fn check(input: &[u8]) {
    let mut input = Input::new(input);
    let Some([flags, ifsc, ifsd, op, value, len, r]) = input.array::<7>() else {
        return;
    };
    let config = t1::config(flags, ifsc, ifsd);
    let apdu: Vec<u8> = (0..4 + 3 * usize::from(len))
        .map(|i| (i as u8).wrapping_mul(29) ^ 0x6B)
        .collect();
    let response: Vec<u8> = (0..2 + 3 * usize::from(r))
        .map(|i| (i as u8).wrapping_mul(17) ^ 0x90)
        .collect();
    let mut host = T1Host::new(config);
    let mut card = T1Card::new(config);
    let mut now = origin();
    let mut faults = 0usize;
    let mut delivered = 0usize;

    let mut command_started = false;
    if op & 1 == 1 {
        assert_eq!(host.request_ifsd(t1::ifs(value), now), Ok(()));
    } else {
        assert_eq!(host.start(&apdu, now), Ok(()));
        command_started = true;
    }

    let mut outcome: Option<Result<Vec<u8>, T1Error>> = None;
    for _ in 0..ITERATIONS {
        // The host's events.
        while let Some(event) = host.poll_event() {
            match event {
                T1Event::Response(got) => {
                    assert!(command_started, "a response before the command");
                    assert_eq!(hex(&got), hex(&response), "the response the host reports");
                    outcome = Some(Ok(got));
                }
                T1Event::IfsdAccepted(_) if !command_started => {
                    assert_eq!(host.start(&apdu, now), Ok(()));
                    command_started = true;
                }
                _ => {}
            }
        }
        if outcome.is_some() {
            break;
        }
        // The card's events: the application answers.
        while let Some(event) = card.poll_event() {
            if let T1CardEvent::Command(got) = event {
                assert_eq!(hex(&got), hex(&apdu), "the APDU the card delivers");
                delivered += 1;
                match (op >> 1) & 3 {
                    1 => assert_eq!(
                        card.request_waiting_time_extension(value.max(1), now),
                        Ok(())
                    ),
                    2 => assert_eq!(card.request_ifsc(t1::ifs(value), now), Ok(())),
                    _ => {}
                }
                assert_eq!(card.respond(&response, now), Ok(()));
            }
        }
        // One block on the line, or the earlier deadline.
        // Half-duplex (§11.6.2): one block on the line at a time, whoever sends it.
        let (to_card, to_host) = (host.poll_transmit(), card.poll_transmit());
        assert!(
            host.poll_transmit().is_none()
                && card.poll_transmit().is_none()
                && (to_card.is_none() || to_host.is_none()),
            "two blocks on the line at once"
        );
        let block = match (to_card, to_host) {
            (Some(block), _) => Some((block, To::Card)),
            (None, to_host) => to_host.map(|block| (block, To::Host)),
        };
        if let Some((block, to)) = block {
            let (damaged, result) = deliver(&block, to, &mut input, &mut host, &mut card, &mut now);
            faults += usize::from(damaged);
            if let Err(error) = result {
                outcome = Some(Err(error));
                break;
            }
            continue;
        }
        let (host_deadline, card_deadline) = (host.poll_timeout(), card.poll_timeout());
        match (host_deadline, card_deadline) {
            (_, Some(card_at)) if host_deadline.is_none_or(|h| card_at <= h) => {
                now = now.max(card_at);
                assert_eq!(card.handle_timeout(now), Ok(()));
            }
            (Some(host_at), _) => {
                now = now.max(host_at);
                if let Err(error) = host.handle_timeout(now) {
                    outcome = Some(Err(error));
                    break;
                }
            }
            (None, _) => panic!(
                "deadlock: the host waits with no deadline (idle: {}), nothing in flight",
                host.is_idle()
            ),
        }
    }
    let Some(outcome) = outcome else {
        panic!("no outcome after {ITERATIONS} iterations: livelock ({faults} faults)");
    };
    match outcome {
        Ok(_) => assert!(delivered >= 1, "a response with no command delivered"),
        Err(T1Error::ResynchronisationFailed { .. }) => {
            assert!(faults > 0, "the exchange failed on a clean line");
        }
        Err(other) => panic!("host error {other} ({faults} faults)"),
    }
}

/// Puts one block on the line towards `to`, damaged as the input says; returns whether
/// it was damaged, and the host's error if it reported one.
fn deliver(
    block: &[u8],
    to: To,
    input: &mut Input<'_>,
    host: &mut T1Host,
    card: &mut T1Card,
    now: &mut Instant,
) -> (bool, Result<(), T1Error>) {
    *now += TICK;
    let at = *now;
    let mut pieces: Vec<Vec<u8>> = Vec::new();
    let mut parity = false;
    let fault = input.byte().unwrap_or(0);
    let len = block.len();
    match fault {
        0x00..=0x9F => pieces.push(block.to_vec()),
        0xA0..=0xAF => {
            let position = usize::from(input.byte_or(0)) % len;
            let mask = input.byte_or(1) | 1;
            let mut damaged = block.to_vec();
            if let Some(byte) = damaged.get_mut(position) {
                *byte ^= mask;
            }
            pieces.push(damaged);
        }
        0xB0..=0xB7 => {}
        0xB8..=0xBF => pieces.push([block, block].concat()),
        0xC0..=0xC7 => pieces.push([block, &[input.byte_or(0x55)]].concat()),
        0xC8..=0xCF => {
            let keep = usize::from(input.byte_or(0)) % len;
            pieces.push(block.get(..keep).unwrap_or_default().to_vec());
        }
        0xD0..=0xDF => {
            let (first, second) = block.split_at(usize::from(input.byte_or(0)) % len);
            pieces.extend([first.to_vec(), second.to_vec()]);
        }
        // A noise byte 00 would be invisible to the LRC (the XOR of a frame that starts
        // one byte early is unchanged): it is not a fault T=1 can detect, so never 00.
        0xE0..=0xEF => pieces.push([&[input.byte_or(0x55).max(1)], block].concat()),
        0xF0..=0xFF => {
            parity = true;
            pieces.push(block.to_vec());
        }
    }
    // A split block arrives whole, only later: the line is not at fault.
    let damaged = !matches!(fault, 0x00..=0x9F | 0xD0..=0xDF);
    match to {
        To::Card => {
            if parity {
                card.handle_parity_error(at);
            }
            for piece in pieces.iter().filter(|p| !p.is_empty()) {
                assert_eq!(card.handle_input(piece, at), Ok(()));
            }
        }
        To::Host => {
            if parity {
                host.handle_parity_error(at);
            }
            for piece in pieces.iter().filter(|p| !p.is_empty()) {
                if let Err(error) = host.handle_input(piece, at) {
                    return (damaged, Err(error));
                }
            }
        }
    }
    (damaged, Ok(()))
}
