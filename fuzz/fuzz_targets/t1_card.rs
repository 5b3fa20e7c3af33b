//! Fuzz target `t1_card`: the card's side of T=1, `telepay::iso7816_3::t1::T1Card`
//! (ISO 7816-3 §11), against an arbitrary interface device.
//!
//! Input layout:
//!
//! ```text
//! F IFSC IFSD APP V  STEPS
//! F IFSC IFSD  the link (`common/t1.rs`); the card starts from this IFSD
//! APP     how the application answers each command: 0 at once; 1 S(WTX request) with
//!         multiplier V (1..=255) first; 2 S(IFS request) announcing IFSC V (1..=254)
//!         first; 3 only when an action step F0 (bit 0 clear) comes
//! STEPS   the interface device's characters (`common/line.rs`): raw pieces; blocks
//!         framed here with a right or broken EDC, right or wrong NAD, whole or split;
//!         timeouts; action F1 (bit 0 set) reports a parity error
//! ```
//!
//! The response to a command is a deterministic function of it, 2 + 3 × P1 bytes, so
//! chains of any length are reached. When the steps run out, the deadlines fire.
//! Checked:
//! - nothing panics; every block the card sends decodes with `Block::decode` and the
//!   configured EDC (LRC re-checked by hand), carries the card's NAD (SAD and DAD
//!   swapped, §11.3.2.1), and is never a block only the interface device sends
//!   (S(RESYNCH request), S(WTX response)); its S-requests are the ones asked for;
//! - its I-blocks carry the response given to `respond`: the first, the same or the
//!   next part, M set exactly when more follows, at most IFSD bytes (the IFSD in force:
//!   the config's, then the interface device's S(IFS request), the config's after a
//!   resynchronisation, §11.4.2, §11.6.3 rule 6.3); none before a response is given;
//! - one block at most per call — the card only answers (half-duplex) — and none on a
//!   deadline fired early or when no deadline runs; when nothing more arrives, the
//!   card sends at most one more block (its answer to what was cut short or invalid)
//!   and then has no deadline: it never times the interface device out;
//! - events are consistent: commands of at most `MAX_COMMAND_LEN` bytes, the IFSD
//!   changed to what the event says, IFSC/IFSD back to the config after
//!   `Resynchronised`; `respond` succeeds on a command being processed and says
//!   `NoCommand` exactly when a resynchronisation or an abort dropped it.
#![no_main]

#[path = "common/line.rs"]
mod line;
#[path = "common/t1.rs"]
mod t1;

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use line::{Input, Step, TICK, hex, just_before, origin};
use t1::Chain;
use telepay::iso7816_3::t1::{
    MAX_COMMAND_LEN, Pcb, Supervisory, T1Card, T1CardEvent, T1Config, T1Error,
};

fuzz_target!(|input: &[u8]| check(input));

/// How the application answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum App {
    AtOnce,
    WaitingTimeExtension(u8),
    Ifsc(u8),
    Deferred,
}

struct Harness {
    card: T1Card,
    config: T1Config,
    app: App,
    /// The response being sent (or queued behind our S-request).
    chain: Option<Chain>,
    /// A command delivered and not answered yet (deferred application).
    waiting: Option<Vec<u8>>,
    /// The S-request the application made for the current command.
    request: Option<(Supervisory, u8)>,
}

fn check(input: &[u8]) {
    let mut input = Input::new(input);
    let Some([flags, ifsc, ifsd, app, value]) = input.array::<5>() else {
        return;
    };
    let config = t1::config(flags, ifsc, ifsd);
    let app = match app % 4 {
        0 => App::AtOnce,
        1 => App::WaitingTimeExtension(value.max(1)),
        2 => App::Ifsc(t1::ifs(value)),
        _ => App::Deferred,
    };
    let mut h = Harness {
        card: T1Card::new(config),
        config,
        app,
        chain: None,
        waiting: None,
        request: None,
    };
    let mut now = origin();

    while let Some(step) = input.step() {
        now += TICK;
        match step {
            Step::Piece(piece) => {
                assert_eq!(h.card.handle_input(piece, now), Ok(()));
                h.after(now);
            }
            Step::Structured(c) => {
                let (block, split) = t1::structured_block(c, &mut input, config.nad, config.edc);
                let (first, second) = block.split_at(split);
                for piece in [first, second] {
                    if !piece.is_empty() {
                        assert_eq!(h.card.handle_input(piece, now), Ok(()));
                        h.after(now);
                    }
                }
            }
            Step::Timeout { late } => {
                let deadline = h.card.poll_timeout();
                let at = deadline.map_or(now + t1::BWT * 4, |d| d + late);
                now = now.max(at);
                assert_eq!(h.card.handle_timeout(at), Ok(()));
                let sent = h.after(at);
                assert!(
                    deadline.is_some() || sent == 0,
                    "a block sent with no deadline"
                );
            }
            Step::EarlyTimeout => {
                if let Some(deadline) = h.card.poll_timeout() {
                    assert_eq!(h.card.handle_timeout(just_before(deadline)), Ok(()));
                    assert!(h.card.poll_transmit().is_none(), "sent before the deadline");
                    assert_eq!(h.card.poll_timeout(), Some(deadline));
                }
            }
            Step::Action(action) if action & 1 == 1 => {
                h.card.handle_parity_error(now);
                assert!(h.card.poll_transmit().is_none(), "sent on a parity error");
            }
            Step::Action(_) => {
                if let Some(command) = h.waiting.take() {
                    h.respond(&command, now);
                }
            }
        }
    }

    // Nothing more arrives: at most one last answer, then silence.
    let mut tail = 0;
    while let Some(deadline) = h.card.poll_timeout() {
        assert_eq!(h.card.handle_timeout(deadline), Ok(()));
        tail += h.after(deadline);
        assert!(
            tail <= 1,
            "the card sent {tail} blocks with nothing arriving"
        );
    }
}

impl Harness {
    /// Checks what one call did; returns how many blocks it sent.
    fn after(&mut self, at: Instant) -> usize {
        let sent = self.drain();
        assert!(sent <= 1, "{sent} blocks sent in one call (half-duplex)");
        while let Some(event) = self.card.poll_event() {
            match event {
                T1CardEvent::Command(command) => {
                    assert!(command.len() <= MAX_COMMAND_LEN, "{} bytes", command.len());
                    self.command(command, at);
                }
                T1CardEvent::IfsdChanged(value) => {
                    assert!((1..=254).contains(&value), "IFSD {value} (§11.4.2)");
                    assert_eq!(self.card.ifsd(), value);
                }
                T1CardEvent::Resynchronised => {
                    assert_eq!(self.card.ifsc(), self.config.ifsc, "IFSC after resync");
                    assert_eq!(self.card.ifsd(), self.config.ifsd, "IFSD after resync");
                    self.dropped(at);
                }
                T1CardEvent::Aborted => self.dropped(at),
            }
        }
        sent
    }

    /// A resynchronisation or an abort dropped the command in progress.
    fn dropped(&mut self, at: Instant) {
        if let Some(command) = self.waiting.take() {
            let result = self.card.respond(&response_to(&command), at);
            assert_eq!(
                result,
                Err(T1Error::NoCommand {
                    operation: "respond"
                }),
                "respond to a dropped command"
            );
        }
        self.chain = None;
        self.request = None;
    }

    fn command(&mut self, command: Vec<u8>, at: Instant) {
        self.request = None;
        match self.app {
            App::AtOnce => self.respond(&command, at),
            App::WaitingTimeExtension(multiplier) => {
                let result = self.card.request_waiting_time_extension(multiplier, at);
                assert_eq!(result, Ok(()), "S(WTX request) after a command");
                self.request = Some((Supervisory::WaitingTimeExtension, multiplier));
                assert_eq!(self.drain(), 1, "S(WTX request) sent");
                self.respond(&command, at);
            }
            App::Ifsc(value) => {
                let result = self.card.request_ifsc(value, at);
                assert_eq!(result, Ok(()), "S(IFS request) after a command");
                self.request = Some((Supervisory::Ifs, value));
                assert_eq!(self.drain(), 1, "S(IFS request) sent");
                self.respond(&command, at);
            }
            App::Deferred => self.waiting = Some(command),
        }
    }

    fn respond(&mut self, command: &[u8], at: Instant) {
        let response = response_to(command);
        self.chain = Some(Chain::new(response.clone()));
        assert_eq!(
            self.card.respond(&response, at),
            Ok(()),
            "respond to a command"
        );
        let sent = self.drain();
        assert!(sent <= 1, "{sent} blocks sent by respond");
    }

    /// Takes what the card sends and checks each block; how many.
    fn drain(&mut self) -> usize {
        let mut count = 0;
        let nad = self.config.card_nad();
        while let Some(raw) = self.card.poll_transmit() {
            count += 1;
            let block = t1::decode_emitted(&raw, self.config.edc, nad, "card");
            match block.pcb {
                Pcb::Information { .. } => {
                    let ifsd = self.card.ifsd();
                    let Some(chain) = self.chain.as_mut() else {
                        panic!("card: I-block {} with no response given", hex(&raw));
                    };
                    chain.check(&block, &raw, ifsd, "card");
                }
                Pcb::Supervisory {
                    kind,
                    response: false,
                } => match kind {
                    Supervisory::Abort => {}
                    Supervisory::Resynch => panic!("card: S(RESYNCH request) {}", hex(&raw)),
                    _ => {
                        let value = block.inf.first().copied().unwrap_or_default();
                        assert_eq!(
                            self.request,
                            Some((kind, value)),
                            "card: S-request {} not asked for",
                            hex(&raw)
                        );
                    }
                },
                Pcb::Supervisory {
                    kind,
                    response: true,
                } => assert_ne!(
                    kind,
                    Supervisory::WaitingTimeExtension,
                    "card: S(WTX response) {}",
                    hex(&raw)
                ),
                Pcb::Receive { .. } => {}
            }
        }
        count
    }
}

/// The application's answer: 2 + 3 × P1 bytes, a function of the command.
fn response_to(command: &[u8]) -> Vec<u8> {
    let p1 = command.get(2).copied().unwrap_or_default();
    let len = 2 + 3 * usize::from(p1);
    let salt = command.len() as u8;
    (0..len)
        .map(|i| (i as u8).wrapping_mul(11) ^ salt)
        .collect()
}
