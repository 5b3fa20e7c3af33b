//! Fuzz target `t0_host`: the interface device's side of T=0,
//! `telepay::iso7816_3::t0::T0Host` (ISO 7816-3 §10), against an arbitrary card.
//!
//! Input layout:
//!
//! ```text
//! CLA INS P1 P2 P3  F  STEPS
//! F       bit 0: an incoming command (P3 data bytes, made up here, follow the header);
//!         otherwise an outgoing one (the card may send up to P3 bytes, 00 = 256)
//! STEPS   the card's characters in pieces, and timeouts (`common/line.rs`)
//! ```
//!
//! Every piece is also run through an independent model of §10.3.3 written here (NULL
//! `60` waits; INS moves all remaining data; INS ⊕ `FF` one byte; `6X` ≠ `60` and `9X`
//! are SW1, SW2 follows; anything else, or an acknowledgement with nothing left to
//! move, is a protocol violation). Checked:
//! - nothing panics; `start` refuses INS `6X`/`9X` with `InvalidIns` (§10.3.2);
//! - the host sends the header first and alone, then only data bytes of the command,
//!   in order, never more than Lc, each only after the card acknowledged it;
//! - at most one outcome: the response (data and SW1 SW2) or one error; the response
//!   is exactly the model's: data only where acknowledgements allowed it, at most P3
//!   bytes (256 for P3 = `00`) for an outgoing command, none for an incoming one;
//! - a protocol violation is reported on the byte the model rejects;
//! - nothing is sent after an error; after an outcome, bytes are refused with
//!   `TrailingBytes` naming exactly them, and no deadline is left;
//! - the work waiting time restarts from each character (§10.2); a timeout fired
//!   early does nothing, on time it ends the exchange naming every byte received;
//! - the NULL count is the model's; a second exchange started afterwards sends its
//!   header alone (nothing left over from the first).
#![no_main]

#[path = "common/line.rs"]
mod line;

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use line::{Input, Step, TICK, hex, just_before, origin};
use telepay::iso7816_3::t0::{NULL, T0Error, T0Host, is_invalid_ins, is_sw1, outgoing_length};

/// The work waiting time: 960 × D × WI etu at 9 600 baud with the defaults (§10.2).
const WWT: Duration = Duration::from_millis(1000);

fuzz_target!(|input: &[u8]| check(input));

fn check(input: &[u8]) {
    let mut input = Input::new(input);
    let (Some(header), Some(flags)) = (input.array::<5>(), input.byte()) else {
        return;
    };
    let [_, ins, _, _, p3] = header;
    let data: Vec<u8> = if flags & 1 == 1 {
        (0..p3).map(|i| i.wrapping_mul(37) ^ 0xA5).collect()
    } else {
        Vec::new()
    };
    let mut tpdu = header.to_vec();
    tpdu.extend_from_slice(&data);

    let mut now = origin();
    let mut host = T0Host::new(WWT);
    if let Err(error) = host.start(&tpdu, now) {
        assert!(is_invalid_ins(ins), "start refused {tpdu:02X?}: {error}");
        assert_eq!(error, T0Error::InvalidIns { ins });
        assert!(host.is_idle() && host.poll_transmit().is_none());
        return;
    }
    assert!(
        !is_invalid_ins(ins),
        "INS {ins:02X} accepted under T=0 (§10.3.2)"
    );
    assert_eq!(
        host.poll_transmit(),
        Some(header.to_vec()),
        "the header goes first, alone"
    );
    assert_eq!(host.poll_timeout(), Some(now + WWT), "WWT after the header");

    let mut model = Model::new(ins, data.clone(), p3);
    let mut sent: Vec<u8> = Vec::new();
    let mut outcome: Option<Outcome> = None;

    while let Some(step) = input.raw_step() {
        match step {
            Step::Piece(piece) => {
                now += TICK;
                let result = host.handle_input(piece, now);
                let transmit = drain(&mut host);
                if outcome.is_some() {
                    let refused = if piece.is_empty() {
                        Ok(())
                    } else {
                        Err(T0Error::TrailingBytes {
                            bytes: piece.to_vec(),
                        })
                    };
                    assert_eq!(result, refused, "bytes after the outcome are refused, all");
                    assert!(
                        transmit.is_empty(),
                        "sent after the outcome: {}",
                        hex(&transmit)
                    );
                    assert_eq!(host.poll_response(), None);
                    continue;
                }
                let (expected_sent, verdict) = model.feed(piece);
                match verdict {
                    Verdict::Going => {
                        assert_eq!(result, Ok(()), "piece {}", hex(piece));
                        assert_eq!(host.poll_response(), None);
                        assert_eq!(
                            transmit,
                            expected_sent,
                            "data sent for piece {}",
                            hex(piece)
                        );
                        sent.extend_from_slice(&transmit);
                        if !piece.is_empty() {
                            let wwt = Some(now + WWT);
                            assert_eq!(host.poll_timeout(), wwt, "WWT restarts (§10.2)");
                        }
                    }
                    Verdict::Response { response, trailing } => {
                        match trailing {
                            [] => assert_eq!(result, Ok(())),
                            rest => assert_eq!(
                                result,
                                Err(T0Error::TrailingBytes {
                                    bytes: rest.to_vec()
                                }),
                                "bytes after SW2 in the same piece"
                            ),
                        }
                        let got = host.poll_response();
                        assert_eq!(got.as_deref(), Some(response.as_slice()), "the response");
                        check_response(&response, &data, p3);
                        // Data acknowledged in the same piece as the answer was never
                        // on the line before the card answered: it must not go after.
                        let _ = expected_sent;
                        assert!(transmit.is_empty(), "data sent after the card answered");
                        outcome = Some(Outcome::Response);
                    }
                    Verdict::Violation { byte } => {
                        match result {
                            Err(T0Error::ProtocolViolation {
                                byte: got, ins: i, ..
                            }) => {
                                assert_eq!((got, i), (byte, ins), "the byte rejected");
                            }
                            other => panic!(
                                "byte {byte:02X} breaks §10.3.3 (model), engine says {other:?}"
                            ),
                        }
                        assert!(
                            transmit.is_empty(),
                            "sent after a protocol violation: {} (piece {})",
                            hex(&transmit),
                            hex(piece)
                        );
                        outcome = Some(Outcome::Error);
                    }
                }
                assert_eq!(host.null_bytes(), model.nulls, "NULL count");
            }
            Step::Timeout { late } => {
                let at = host
                    .poll_timeout()
                    .map_or(now + WWT, |deadline| deadline + late);
                now = now.max(at);
                let result = host.handle_timeout(at);
                let transmit = drain(&mut host);
                assert!(transmit.is_empty(), "sent on a timeout: {}", hex(&transmit));
                if outcome.is_some() {
                    assert_eq!(result, Ok(()), "no deadline after the outcome");
                    continue;
                }
                match result {
                    Err(T0Error::Timeout {
                        waiting_for,
                        received,
                    }) => {
                        assert_eq!(received, model.received, "bytes named by the timeout");
                        assert_eq!(waiting_for, model.waiting_for());
                    }
                    other => panic!("deadline passed, engine says {other:?}"),
                }
                outcome = Some(Outcome::Error);
            }
            Step::EarlyTimeout => {
                let before = host.poll_timeout();
                if let Some(deadline) = before {
                    assert_eq!(host.handle_timeout(just_before(deadline)), Ok(()));
                    assert_eq!(
                        host.poll_timeout(),
                        before,
                        "an early call moved the deadline"
                    );
                    assert!(host.poll_transmit().is_none());
                }
            }
            Step::Structured(_) | Step::Action(_) => {}
        }
        if outcome.is_some() {
            assert!(host.is_idle(), "the exchange is over after its outcome");
            assert_eq!(host.poll_timeout(), None, "a deadline after the outcome");
        }
    }

    // §10.3.2: the host sent the header, then data bytes of the command in order.
    assert!(sent.len() <= data.len(), "more than Lc data bytes sent");
    assert_eq!(sent.as_slice(), data.get(..sent.len()).unwrap_or_default());

    // A second exchange starts clean: its header, alone.
    now += TICK;
    match host.start(&tpdu, now) {
        Ok(()) => {
            assert!(outcome.is_some(), "start accepted during an exchange");
            assert_eq!(
                host.poll_transmit().as_deref().map(hex),
                Some(hex(&header)),
                "the next exchange's first bytes (left over from the first?)"
            );
        }
        Err(error) => {
            assert!(
                outcome.is_none(),
                "start refused after the outcome: {error}"
            );
            assert!(matches!(error, T0Error::WrongStep { call: "start", .. }));
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Response,
    Error,
}

fn drain(host: &mut T0Host) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(bytes) = host.poll_transmit() {
        assert!(!bytes.is_empty(), "poll_transmit gave an empty write");
        out.extend_from_slice(&bytes);
    }
    out
}

/// The response's shape (§10.3.3): SW1 a status byte, data within what P3 allows.
fn check_response(response: &[u8], data: &[u8], p3: u8) {
    let Some((body, &[sw1, _])) = response.split_last_chunk::<2>() else {
        panic!("a response without SW1 SW2: {}", hex(response));
    };
    assert!(is_sw1(sw1), "SW1 {sw1:02X}");
    if data.is_empty() {
        assert!(
            body.len() <= outgoing_length(p3),
            "{} data bytes for P3 {p3:02X}",
            body.len()
        );
    } else {
        assert!(
            body.is_empty(),
            "data from the card for an incoming command"
        );
    }
}

/// What the model concluded from a piece.
enum Verdict<'a> {
    /// The exchange goes on.
    Going,
    /// SW2 arrived; `trailing` is what followed it in the piece.
    Response {
        response: Vec<u8>,
        trailing: &'a [u8],
    },
    /// A byte that is no procedure byte where one was due.
    Violation { byte: u8 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ModelState {
    Procedure,
    Data(usize),
    Sw2(u8),
}

/// The host's side of §10.3.3, as the standard states it, written independently of
/// the engine.
struct Model {
    ins: u8,
    /// The incoming command's data (empty: outgoing).
    command: Vec<u8>,
    sent: usize,
    /// The data bytes an outgoing command may receive.
    capacity: usize,
    state: ModelState,
    data: Vec<u8>,
    received: Vec<u8>,
    nulls: usize,
}

impl Model {
    fn new(ins: u8, command: Vec<u8>, p3: u8) -> Model {
        let capacity = if command.is_empty() {
            outgoing_length(p3)
        } else {
            0
        };
        Model {
            ins,
            command,
            sent: 0,
            capacity,
            state: ModelState::Procedure,
            data: Vec::new(),
            received: Vec::new(),
            nulls: 0,
        }
    }

    fn waiting_for(&self) -> &'static str {
        match self.state {
            ModelState::Procedure => "a procedure byte",
            ModelState::Data(_) => "a data byte",
            ModelState::Sw2(_) => "SW2",
        }
    }

    /// Takes a piece: the command data to send, and what became of the exchange.
    fn feed<'a>(&mut self, piece: &'a [u8]) -> (Vec<u8>, Verdict<'a>) {
        let mut send = Vec::new();
        for (i, &byte) in piece.iter().enumerate() {
            self.received.push(byte);
            match self.state {
                ModelState::Data(left) => {
                    self.data.push(byte);
                    self.state = if left > 1 {
                        ModelState::Data(left - 1)
                    } else {
                        ModelState::Procedure
                    };
                }
                ModelState::Sw2(sw1) => {
                    let mut response = std::mem::take(&mut self.data);
                    response.extend_from_slice(&[sw1, byte]);
                    let trailing = piece.get(i + 1..).unwrap_or_default();
                    return (send, Verdict::Response { response, trailing });
                }
                ModelState::Procedure if byte == NULL => self.nulls += 1,
                ModelState::Procedure if matches!(byte & 0xF0, 0x60 | 0x90) => {
                    self.state = ModelState::Sw2(byte);
                }
                ModelState::Procedure if byte == self.ins || byte == !self.ins => {
                    let all = byte == self.ins;
                    if self.command.is_empty() {
                        let left = self.capacity - self.data.len();
                        if left == 0 {
                            return (send, Verdict::Violation { byte });
                        }
                        self.state = ModelState::Data(if all { left } else { 1 });
                    } else {
                        let left = self.command.len() - self.sent;
                        if left == 0 {
                            return (send, Verdict::Violation { byte });
                        }
                        let count = if all { left } else { 1 };
                        let part = self.command.get(self.sent..self.sent + count);
                        send.extend_from_slice(part.unwrap_or_default());
                        self.sent += count;
                    }
                }
                ModelState::Procedure => return (send, Verdict::Violation { byte }),
            }
        }
        (send, Verdict::Going)
    }
}
