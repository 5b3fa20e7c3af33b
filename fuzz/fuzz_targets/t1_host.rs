//! Fuzz target `t1_host`: the interface device's side of T=1,
//! `telepay::iso7816_3::t1::T1Host` (ISO 7816-3 §11), against an arbitrary card.
//!
//! Input layout:
//!
//! ```text
//! F IFSC IFSD OP V LEN  STEPS
//! F IFSC IFSD  the link (`common/t1.rs`): LRC or CRC, NAD, retransmissions, IFSC, IFSD
//! OP      what the host does, one operation after the other: 0 a command; 1 S(IFS
//!         request) announcing IFSD = V (1..=254), then a command; 2 S(RESYNCH
//!         request), then a command; 3 two commands
//! LEN     the command APDU is 4 + 3 × LEN bytes (up to 769: chained by IFSC)
//! STEPS   the card's characters (`common/line.rs`): raw pieces; blocks framed here
//!         with a right or broken EDC, right or wrong NAD, whole or split; timeouts;
//!         action F0 (bit 0) reports a parity error
//! ```
//!
//! When the steps run out, the deadlines keep firing with nothing arriving. Checked:
//! - nothing panics; every block the host sends decodes with `Block::decode` and the
//!   configured EDC (LRC re-checked by hand), carries the configured NAD, and is never
//!   a block only a card sends (S(RESYNCH response), S(WTX request));
//! - its I-blocks carry the command: the first, the same or the next part, M set
//!   exactly when more follows, at most IFSC bytes (the IFSC in force: from the config,
//!   the card's S(IFS request), back to the config after S(RESYNCH response));
//! - one block at most per call (half-duplex: one answer per received block or
//!   deadline); BWT (× the WTX multiplier just granted) runs from the end of each block
//!   sent (§11.4.3); a deadline fired early does nothing;
//! - each operation ends with exactly one outcome — the response, the IFSD accepted, the
//!   link resynchronised, or one error (`Aborted`, `ResponseTooLong`,
//!   `ResynchronisationFailed`) — and nothing follows it until the next operation;
//!   after `ResynchronisationFailed` the host refuses work with `Dead`;
//! - retries are bounded: with nothing arriving, an operation ends within
//!   `max_retransmissions + MAX_RESYNCHRONISATIONS + 1` deadlines, in
//!   `ResynchronisationFailed` (§11.6.3, rules 7.4 and 6.4).
#![no_main]

#[path = "common/line.rs"]
mod line;
#[path = "common/t1.rs"]
mod t1;

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use line::{Input, Step, TICK, hex, just_before, origin};
use t1::{BWT, Chain};
use telepay::iso7816_3::t1::{
    MAX_RESPONSE_LEN, MAX_RESYNCHRONISATIONS, Pcb, Supervisory, T1Config, T1Error, T1Event, T1Host,
};

fuzz_target!(|input: &[u8]| check(input));

/// One operation of the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Command,
    Ifsd(u8),
    Resynch,
}

/// What one call produced.
struct Call {
    result: Result<(), T1Error>,
    at: Instant,
}

struct Harness {
    host: T1Host,
    config: T1Config,
    apdu: Vec<u8>,
    chain: Chain,
    /// Operations not started yet, in order.
    pending: Vec<Op>,
    /// The operation in progress.
    op: Option<Op>,
    /// The host gave up (`ResynchronisationFailed`).
    dead: bool,
    /// Deadlines fired with nothing arriving, for this operation (counted at the end).
    idle_timeouts: usize,
}

fn check(input: &[u8]) {
    let mut input = Input::new(input);
    let Some([flags, ifsc, ifsd, op, value, len]) = input.array::<6>() else {
        return;
    };
    let config = t1::config(flags, ifsc, ifsd);
    let apdu: Vec<u8> = (0..4 + 3 * usize::from(len))
        .map(|i| (i as u8).wrapping_mul(7) ^ 0x3C)
        .collect();
    let mut pending = match op % 4 {
        0 => vec![Op::Command],
        1 => vec![Op::Ifsd(t1::ifs(value)), Op::Command],
        2 => vec![Op::Resynch, Op::Command],
        _ => vec![Op::Command, Op::Command],
    };
    pending.reverse();
    let mut h = Harness {
        host: T1Host::new(config),
        config,
        chain: Chain::new(apdu.clone()),
        apdu,
        pending,
        op: None,
        dead: false,
        idle_timeouts: 0,
    };
    let mut now = origin();
    h.next_op(now);

    let card_nad = config.card_nad();
    while let Some(step) = input.step() {
        now += TICK;
        match step {
            Step::Piece(piece) => {
                let result = h.host.handle_input(piece, now);
                h.after(Call { result, at: now }, false);
            }
            Step::Structured(c) => {
                let (block, split) = t1::structured_block(c, &mut input, card_nad, config.edc);
                let (first, second) = block.split_at(split);
                for piece in [first, second] {
                    if !piece.is_empty() {
                        let result = h.host.handle_input(piece, now);
                        h.after(Call { result, at: now }, false);
                    }
                }
            }
            Step::Timeout { late } => {
                let at = h.host.poll_timeout().map_or(now + BWT * 4, |d| d + late);
                now = now.max(at);
                let result = h.host.handle_timeout(at);
                h.after(Call { result, at }, true);
            }
            Step::EarlyTimeout => {
                if let Some(deadline) = h.host.poll_timeout() {
                    assert_eq!(h.host.handle_timeout(just_before(deadline)), Ok(()));
                    assert!(h.host.poll_transmit().is_none(), "sent before the deadline");
                    assert!(
                        h.host.poll_event().is_none(),
                        "an event before the deadline"
                    );
                    assert_eq!(h.host.poll_timeout(), Some(deadline));
                }
            }
            Step::Action(action) => {
                if action & 1 == 1 {
                    h.host.handle_parity_error(now);
                    assert!(h.host.poll_transmit().is_none(), "sent on a parity error");
                }
            }
        }
    }

    // Nothing more arrives: every deadline fires until the host gives up.
    let limit = usize::from(config.max_retransmissions) + usize::from(MAX_RESYNCHRONISATIONS) + 1;
    h.idle_timeouts = 0;
    while let Some(deadline) = h.host.poll_timeout() {
        h.idle_timeouts += 1;
        let result = h.host.handle_timeout(deadline);
        h.after(
            Call {
                result,
                at: deadline,
            },
            true,
        );
        assert!(
            h.idle_timeouts <= limit,
            "still trying after {} deadlines with nothing arriving (limit {limit})",
            h.idle_timeouts
        );
    }
    assert!(
        h.op.is_none(),
        "an operation in progress with no deadline: {:?}",
        h.op
    );
    assert!(h.pending.is_empty(), "operations never started");
}

impl Harness {
    /// Starts the next operation, if any.
    fn next_op(&mut self, now: Instant) {
        let Some(op) = self.pending.pop() else {
            return;
        };
        self.idle_timeouts = 0;
        let result = match op {
            Op::Command => {
                self.chain = Chain::new(self.apdu.clone());
                self.host.start(&self.apdu, now)
            }
            Op::Ifsd(value) => self.host.request_ifsd(value, now),
            Op::Resynch => self.host.resynchronise(now),
        };
        if self.dead {
            assert_eq!(result, Err(T1Error::Dead), "{op:?} after the link died");
            return self.next_op(now);
        }
        assert_eq!(result, Ok(()), "{op:?} refused on an idle host");
        self.op = Some(op);
        let sent = self.drain(now);
        assert_eq!(sent, 1, "{op:?} starts with one block");
    }

    /// Checks what one call did: the blocks sent, the events, the outcome.
    fn after(&mut self, call: Call, timeout: bool) {
        let Call { result, at } = call;
        let was = self.op;
        let sent = self.drain(at);
        assert!(sent <= 1, "{sent} blocks sent in one call (half-duplex)");
        let mut outcome = None;
        while let Some(event) = self.host.poll_event() {
            match event {
                T1Event::Response(response) => {
                    assert_eq!(was, Some(Op::Command), "a response outside a command");
                    assert!(
                        response.len() <= MAX_RESPONSE_LEN,
                        "{} bytes",
                        response.len()
                    );
                    assert!(outcome.replace("response").is_none(), "two outcomes");
                }
                T1Event::IfsdAccepted(value) => {
                    assert_eq!(was, Some(Op::Ifsd(value)), "IFSD accepted unasked");
                    assert_eq!(self.host.ifsd(), value);
                    assert!(outcome.replace("IFSD").is_none(), "two outcomes");
                }
                T1Event::IfscChanged(value) => {
                    assert!((1..=254).contains(&value), "IFSC {value} (§11.4.2)");
                    assert_eq!(self.host.ifsc(), value);
                }
                T1Event::WaitingTimeExtension(multiplier) => {
                    assert!(multiplier > 0);
                }
                T1Event::Resynchronised => {
                    assert_eq!(self.host.ifsc(), self.config.ifsc, "IFSC after resync");
                    assert_eq!(self.host.ifsd(), self.config.ifsd, "IFSD after resync");
                    if was == Some(Op::Resynch) {
                        assert!(outcome.replace("resync").is_none(), "two outcomes");
                    }
                }
                T1Event::Retransmission { .. } => {}
            }
        }
        if let Err(error) = result {
            match &error {
                T1Error::ResynchronisationFailed { attempts, .. } => {
                    assert_eq!(*attempts, MAX_RESYNCHRONISATIONS);
                    self.dead = true;
                }
                // Both come from a block of the card, never from a deadline.
                T1Error::Aborted { .. } | T1Error::ResponseTooLong { .. } => {
                    assert!(!timeout, "{error} on a deadline");
                }
                other => panic!("unexpected error from the host: {other}"),
            }
            assert!(was.is_some(), "an error with no operation: {error}");
            assert!(
                outcome.replace("error").is_none(),
                "an outcome and an error"
            );
        }
        let over = was.is_some() && self.host.is_idle();
        match (outcome, over) {
            (None, false) => {}
            (Some(_), true) => {
                self.op = None;
                self.next_op(at);
            }
            (outcome, over) => panic!(
                "{was:?}: outcome {outcome:?} but operation over = {over} (error {:?})",
                self.dead
            ),
        }
    }

    /// Takes what the host sends and checks each block; how many.
    fn drain(&mut self, at: Instant) -> usize {
        let mut count = 0;
        while let Some(raw) = self.host.poll_transmit() {
            count += 1;
            let block = t1::decode_emitted(&raw, self.config.edc, self.config.nad, "host");
            match block.pcb {
                Pcb::Information { .. } => {
                    assert_eq!(self.op, Some(Op::Command), "an I-block outside a command");
                    self.chain.check(&block, &raw, self.host.ifsc(), "host");
                }
                Pcb::Supervisory { kind, response } => {
                    assert!(
                        !matches!(
                            (kind, response),
                            (Supervisory::Resynch, true)
                                | (Supervisory::WaitingTimeExtension, false)
                        ),
                        "the host sent a block only a card sends: {}",
                        hex(&raw)
                    );
                    if let (Supervisory::Ifs, false, Some(Op::Ifsd(value))) =
                        (kind, response, self.op)
                    {
                        assert_eq!(block.inf, [value], "S(IFS request) announces the IFSD");
                    }
                    if (kind, response) == (Supervisory::WaitingTimeExtension, true) {
                        let multiplier = block.inf.first().copied().unwrap_or(1);
                        self.check_deadline(at, raw.len(), u32::from(multiplier));
                        continue;
                    }
                }
                Pcb::Receive { .. } => {}
            }
            self.check_deadline(at, raw.len(), 1);
        }
        count
    }

    /// BWT (× `multiplier`) runs from the end of the block just sent (§11.4.3).
    /// (An operation that ended with the block, S(ABORT response), has no deadline.)
    fn check_deadline(&self, at: Instant, len: usize, multiplier: u32) {
        if let Some(deadline) = self.host.poll_timeout() {
            let end = at + self.config.character_time * u32::try_from(len).unwrap_or(u32::MAX);
            assert_eq!(
                deadline,
                end + BWT * multiplier,
                "BWT after a block of {len} bytes"
            );
        }
    }
}
