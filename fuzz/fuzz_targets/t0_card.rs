//! Fuzz target `t0_card`: the card's side of T=0, `telepay::iso7816_3::t0::T0Card`
//! driven by `CardApduAdapter` (ISO 7816-3 §10, §12.2), against an arbitrary host.
//!
//! Input layout:
//!
//! ```text
//! F  STEPS
//! F       bit 0: `ack_each_byte` (INS ⊕ FF before every data byte); bits 1–2: NULL
//!         bytes sent before each answer the application computed
//! STEPS   the host's characters in pieces, and timeouts (`common/line.rs`)
//! ```
//!
//! The application behind the adapter answers with a deterministic function of the
//! APDU ([`application`]): P1 picks the shape (no data, Ne bytes, fewer, more, 256,
//! 300, an answer too short, an SW1 T=0 cannot carry), so `61xx`, `6Cxx`, GET RESPONSE
//! and `6F00` are all reached. Checked, with the host's view of the line rebuilt here:
//! - nothing panics; the card takes a header of 5 bytes, then for an incoming command
//!   exactly P3 data bytes, and refuses (`UnexpectedBytes`) exactly the bytes after
//!   them, never one it should have taken;
//! - everything the card sends for a command reads as §10.3.3 says: NULL `60`; INS
//!   then every remaining data byte; INS ⊕ `FF` then one data byte (outgoing) or a
//!   request for one (incoming, never beyond P3); SW1 in `6X` ≠ `60` or `9X`, then
//!   SW2, last; `ack_each_byte` uses INS ⊕ `FF` only; nothing is sent unasked;
//! - the APDU the application receives is the header and data the host sent (§12.2:
//!   case 1, 2 with Le = P3, or 3 with Lc), and what the card answers is exactly
//!   §12.2's mapping of the application's answer — data of Ne bytes with its status,
//!   `61xx` and the held data served by GET RESPONSE, `6Cxx` with the exact length,
//!   `6D00` for INS `6X`/`9X`, `6F00` for an answer T=0 cannot carry — preceded by the
//!   configured NULL bytes whenever the application computed;
//! - `Discarded` comes only from a timeout, past the idle deadline, with the bytes of
//!   the header or data cut short; a timeout fired early does nothing.
#![no_main]

#[path = "common/line.rs"]
mod line;

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use line::{Input, Step, TICK, hex, just_before, origin};
use telepay::iso7816_3::t0::{
    CardApduAdapter, Direction, HEADER_LEN, NULL, T0Card, T0CardConfig, T0CardEvent, T0Error,
    instruction_direction, is_invalid_ins, is_sw1, outgoing_length,
};

/// How long the card waits for the rest of a header or of data.
const IDLE: Duration = Duration::from_millis(500);
/// GET RESPONSE (ISO 7816-4 §7.6.1).
const GET_RESPONSE: u8 = 0xC0;

fuzz_target!(|input: &[u8]| check(input));

fn check(input: &[u8]) {
    let mut input = Input::new(input);
    let Some(flags) = input.byte() else {
        return;
    };
    let ack_each_byte = flags & 1 == 1;
    let nulls = (flags >> 1) & 3;
    let mut card = T0Card::new(T0CardConfig { ack_each_byte }).with_idle_timeout(IDLE);
    let mut adapter = CardApduAdapter::new().with_null_bytes(nulls);
    let mut view = View {
        ack_each_byte,
        nulls: usize::from(nulls),
        state: ViewState::Header(Vec::new()),
        held: None,
        expected: None,
    };
    let mut now = origin();

    while let Some(step) = input.raw_step() {
        match step {
            Step::Piece(piece) => {
                now += TICK;
                let result = card.handle_input(piece, now);
                let take = view.takes(piece.len());
                match (result, piece.get(take..)) {
                    (Ok(()), Some([])) => {}
                    (Err(T0Error::UnexpectedBytes { bytes, .. }), Some(rest)) => {
                        assert_eq!(bytes, rest, "the bytes refused are those after the command");
                    }
                    (result, _) => panic!(
                        "piece {}: the card should take {take} bytes, says {result:?}",
                        hex(piece)
                    ),
                }
                let taken = piece.get(..take).unwrap_or_default();
                let complete = view.host_bytes(taken);
                view.card_bytes(&drain(&mut card));
                let mut events = Vec::new();
                while let Some(event) = card.poll_event() {
                    events.push(event);
                }
                match (complete, events.as_slice()) {
                    (None, []) => {}
                    (Some(expected), [event]) => {
                        assert_eq!(event, &expected, "the event for what the host sent");
                        answer(&mut card, &mut adapter, &mut view, event.clone(), now);
                    }
                    (expected, events) => {
                        panic!("events {events:?} where the host's bytes give {expected:?}")
                    }
                }
            }
            Step::Timeout { late } => {
                let deadline = card.poll_timeout();
                let at = deadline.map_or(now + IDLE + IDLE, |deadline| deadline + late);
                now = now.max(at);
                assert_eq!(card.handle_timeout(at), Ok(()));
                assert!(card.poll_transmit().is_none(), "sent on a timeout");
                let event = card.poll_event();
                match deadline {
                    Some(_) => {
                        let bytes = view.discard();
                        assert_eq!(event, Some(T0CardEvent::Discarded { bytes }));
                        assert!(card.poll_event().is_none());
                        assert!(card.is_idle(), "not ready for a header after discarding");
                    }
                    None => assert_eq!(event, None, "an event with no deadline"),
                }
            }
            Step::EarlyTimeout => {
                if let Some(deadline) = card.poll_timeout() {
                    assert_eq!(card.handle_timeout(just_before(deadline)), Ok(()));
                    assert_eq!(card.poll_event(), None, "an event before the deadline");
                    assert_eq!(card.poll_timeout(), Some(deadline));
                }
            }
            Step::Structured(_) | Step::Action(_) => {}
        }
        // The idle deadline runs exactly while a header or data is partly received.
        assert_eq!(card.poll_timeout().is_some(), view.partial());
    }
}

/// Answers one event as a card application does, and checks the answer on the line.
fn answer(
    card: &mut T0Card,
    adapter: &mut CardApduAdapter,
    view: &mut View,
    event: T0CardEvent,
    now: std::time::Instant,
) {
    let (header, data, collected) = match &event {
        T0CardEvent::Header(header) => (*header, Vec::new(), false),
        T0CardEvent::Command { header, data } => (*header, data.clone(), true),
        T0CardEvent::Discarded { .. } => panic!("Discarded without a timeout"),
    };
    assert_eq!(
        adapter.pending_len(),
        view.held_len(),
        "data held for GET RESPONSE"
    );
    if !collected && adapter.expects_data(&header) {
        view.expect_data();
    } else {
        view.expected = Some(view.model_command(header, &data));
    }
    let mut apdus = Vec::new();
    let mut app = |apdu: &[u8]| {
        apdus.push(apdu.to_vec());
        application(apdu)
    };
    let result = adapter.handle_event(card, event, &mut app, now);
    assert_eq!(result, Ok(()), "the card refused the adapter's answer");
    view.card_bytes(&drain(card));
    if let Some(expected) = view.expected.take() {
        assert_eq!(apdus, expected.apdu.into_iter().collect::<Vec<_>>(), "APDU");
        view.finish(&expected.answer);
        assert!(
            card.is_idle(),
            "the card waits for a header after answering"
        );
    } else {
        assert!(apdus.is_empty(), "the application ran before the data came");
    }
    assert_eq!(
        adapter.pending_len(),
        view.held_len(),
        "data held for GET RESPONSE"
    );
}

fn drain(card: &mut T0Card) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(bytes) = card.poll_transmit() {
        assert!(!bytes.is_empty(), "poll_transmit gave an empty write");
        out.extend_from_slice(&bytes);
    }
    out
}

/// The application: a deterministic function of the command APDU. P1 b3–b1 pick the
/// answer's shape, P1 b5–b4 its status word.
fn application(apdu: &[u8]) -> Vec<u8> {
    let [_, ins, p1, p2] = apdu.first_chunk::<4>().copied().unwrap_or_default();
    // Ne of a case-2 APDU; otherwise some length.
    let ne = match apdu.len() {
        5 => apdu.get(4).map_or(0, |&le| outgoing_length(le)),
        _ => usize::from(p2),
    };
    let len = match p1 & 0x07 {
        0 => 0,
        1 => ne,
        2 => ne.saturating_sub(1),
        3 => ne + 1,
        4 => 256,
        5 => 300,
        6 => return vec![0x90],
        _ => return vec![0xA5, 0x12, 0x34],
    };
    let sw = match (p1 >> 3) & 0x03 {
        0 => [0x90, 0x00],
        1 => [0x6A, 0x82],
        2 => [0x62, 0x83],
        _ => [0x9F, 0x10],
    };
    let mut response: Vec<u8> = (0..len).map(|i| (i as u8) ^ ins ^ p2).collect();
    response.extend_from_slice(&sw);
    response
}

/// What the card must do for one command: the APDU its application gets (if it runs)
/// and the answer on the line.
#[derive(Debug)]
struct Expected {
    apdu: Option<Vec<u8>>,
    answer: Answer,
}

/// The answer to a command as the host reads it (§10.3.3).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Answer {
    nulls: usize,
    data: Vec<u8>,
    sw: [u8; 2],
}

#[derive(Debug)]
enum ViewState {
    /// Collecting a header.
    Header(Vec<u8>),
    /// A header is being answered; for an incoming command, data is collected.
    Command {
        header: [u8; 5],
        incoming: bool,
        data: Vec<u8>,
        /// Everything the card sent for this command.
        out: Vec<u8>,
    },
}

/// The host's view of the line, written independently of the engine and the adapter.
struct View {
    ack_each_byte: bool,
    nulls: usize,
    state: ViewState,
    /// Data the adapter holds for GET RESPONSE, with the application's status.
    held: Option<(Vec<u8>, [u8; 2])>,
    /// What the card must do for the command being answered.
    expected: Option<Expected>,
}

impl View {
    /// How many of `len` arriving bytes the card takes: the rest of a header, or the
    /// rest of an incoming command's data.
    fn takes(&self, len: usize) -> usize {
        match &self.state {
            ViewState::Header(bytes) => len.min(HEADER_LEN - bytes.len()),
            ViewState::Command {
                header,
                incoming: true,
                data,
                ..
            } => len.min(usize::from(header[4]) - data.len()),
            ViewState::Command { .. } => 0,
        }
    }

    /// Bytes the card took; the event they complete, if any.
    fn host_bytes(&mut self, bytes: &[u8]) -> Option<T0CardEvent> {
        match &mut self.state {
            ViewState::Header(header) => {
                header.extend_from_slice(bytes);
                let header = <[u8; 5]>::try_from(header.as_slice()).ok()?;
                self.state = ViewState::Command {
                    header,
                    incoming: false,
                    data: Vec::new(),
                    out: Vec::new(),
                };
                Some(T0CardEvent::Header(header))
            }
            ViewState::Command {
                header,
                incoming: true,
                data,
                ..
            } => {
                data.extend_from_slice(bytes);
                (data.len() == usize::from(header[4]) && !bytes.is_empty()).then(|| {
                    T0CardEvent::Command {
                        header: *header,
                        data: data.clone(),
                    }
                })
            }
            ViewState::Command { .. } => None,
        }
    }

    fn card_bytes(&mut self, bytes: &[u8]) {
        match &mut self.state {
            ViewState::Command { out, .. } => out.extend_from_slice(bytes),
            ViewState::Header(_) => {
                assert!(bytes.is_empty(), "the card spoke unasked: {}", hex(bytes))
            }
        }
    }

    /// The card asks for the command's data (§10.3.2: an incoming command).
    fn expect_data(&mut self) {
        if let ViewState::Command { incoming, .. } = &mut self.state {
            *incoming = true;
        }
    }

    /// Whether the idle deadline should run.
    fn partial(&self) -> bool {
        match &self.state {
            ViewState::Header(bytes) => !bytes.is_empty(),
            ViewState::Command { incoming, .. } => *incoming,
        }
    }

    /// The card discarded what it had: the bytes it must name. What it sent for a cut
    /// short command must still read as §10.3.3 (acknowledgements only).
    fn discard(&mut self) -> Vec<u8> {
        let state = std::mem::replace(&mut self.state, ViewState::Header(Vec::new()));
        match state {
            ViewState::Header(bytes) => bytes,
            ViewState::Command {
                header,
                incoming,
                data,
                out,
            } => {
                let read = read_answer(&header, incoming, self.ack_each_byte, &out, false);
                assert_eq!(read.sw, None, "SW sent for a command still receiving data");
                assert!(read.data.is_empty() && read.nulls == 0);
                let mut bytes = header.to_vec();
                bytes.extend_from_slice(&data);
                bytes
            }
        }
    }

    /// The command is answered: its bytes on the line must be `answer`.
    fn finish(&mut self, answer: &Answer) {
        let state = std::mem::replace(&mut self.state, ViewState::Header(Vec::new()));
        let ViewState::Command {
            header,
            incoming,
            data,
            out,
        } = state
        else {
            panic!("an answer with no command");
        };
        let read = read_answer(&header, incoming, self.ack_each_byte, &out, true);
        if incoming {
            assert_eq!(read.granted, usize::from(header[4]), "data requested");
            assert_eq!(data.len(), usize::from(header[4]));
        }
        let got = Answer {
            nulls: read.nulls,
            data: read.data,
            sw: read.sw.unwrap_or_default(),
        };
        assert_eq!(
            &got,
            answer,
            "answer to {} on the line {}",
            hex(&header),
            hex(&out)
        );
    }

    fn held_len(&self) -> usize {
        self.held.as_ref().map_or(0, |(data, _)| data.len())
    }

    /// The adapter's §12.2 mapping for a command, as its documentation states it.
    fn model_command(&mut self, header: [u8; 5], data: &[u8]) -> Expected {
        let [cla, ins, p1, p2, p3] = header;
        let computed = |data: Vec<u8>, sw: [u8; 2], nulls: usize| Answer { nulls, data, sw };
        if is_invalid_ins(ins) {
            return Expected {
                apdu: None,
                answer: computed(Vec::new(), [0x6D, 0x00], 0),
            };
        }
        if data.is_empty()
            && ins == GET_RESPONSE
            && let Some((held, sw)) = self.held.take()
        {
            return Expected {
                apdu: None,
                answer: self.get_response(held, sw, [p1, p2], p3),
            };
        }
        self.held = None;
        let incoming = !data.is_empty() || instruction_direction(cla, ins) == Direction::Incoming;
        let mut apdu = vec![cla, ins, p1, p2];
        if !data.is_empty() {
            apdu.push(length_byte(data.len()));
            apdu.extend_from_slice(data);
        } else if !incoming {
            apdu.push(p3);
        }
        let mut response = application(&apdu);
        let sw = response
            .len()
            .checked_sub(2)
            .map(|at| response.split_off(at))
            .and_then(|sw| <[u8; 2]>::try_from(sw).ok())
            .filter(|sw| is_sw1(sw[0]));
        let Some(sw) = sw else {
            return Expected {
                apdu: Some(apdu),
                answer: computed(Vec::new(), [0x6F, 0x00], self.nulls),
            };
        };
        let ne = outgoing_length(p3);
        let answer = if response.is_empty() {
            computed(Vec::new(), sw, self.nulls)
        } else if incoming {
            let announce = [0x61, length_byte(response.len())];
            self.held = Some((response, sw));
            computed(Vec::new(), announce, self.nulls)
        } else if response.len() == ne {
            computed(response, sw, self.nulls)
        } else if response.len() > ne && ne == 256 {
            let rest = response.split_off(ne);
            let announce = [0x61, length_byte(rest.len())];
            self.held = Some((rest, sw));
            computed(response, announce, self.nulls)
        } else {
            computed(Vec::new(), [0x6C, length_byte(response.len())], self.nulls)
        };
        Expected {
            apdu: Some(apdu),
            answer,
        }
    }

    /// GET RESPONSE from held data (ISO 7816-4 §7.6.1, §5.3.4).
    fn get_response(&mut self, mut held: Vec<u8>, sw: [u8; 2], p1p2: [u8; 2], p3: u8) -> Answer {
        let answer = |data, sw| Answer { nulls: 0, data, sw };
        if p1p2 != [0, 0] {
            self.held = Some((held, sw));
            return answer(Vec::new(), [0x6A, 0x86]);
        }
        let ne = outgoing_length(p3);
        if ne == held.len() {
            answer(held, sw)
        } else if ne < held.len() {
            let rest = held.split_off(ne);
            let announce = [0x61, length_byte(rest.len())];
            self.held = Some((rest, sw));
            answer(held, announce)
        } else {
            let exact = [0x6C, length_byte(held.len())];
            self.held = Some((held, sw));
            answer(Vec::new(), exact)
        }
    }
}

/// A length as SW2 of `61xx` / `6Cxx` codes it: 256 and more as `00`.
fn length_byte(len: usize) -> u8 {
    (len.min(256) % 256) as u8
}

/// What the card's bytes for one command say, read by §10.3.3.
struct Read {
    nulls: usize,
    /// Data bytes the card asked for (incoming).
    granted: usize,
    /// Data bytes the card sent (outgoing).
    data: Vec<u8>,
    sw: Option<[u8; 2]>,
}

fn read_answer(
    header: &[u8; 5],
    incoming: bool,
    ack_each_byte: bool,
    out: &[u8],
    done: bool,
) -> Read {
    let [_, ins, _, _, p3] = *header;
    let mut read = Read {
        nulls: 0,
        granted: 0,
        data: Vec::new(),
        sw: None,
    };
    let context = || format!("card's bytes {} for header {}", hex(out), hex(header));
    let mut at = 0;
    while let Some(&byte) = out.get(at) {
        at += 1;
        if byte == NULL {
            read.nulls += 1;
        } else if is_sw1(byte) {
            let Some(&sw2) = out.get(at) else {
                panic!("SW1 without SW2: {}", context());
            };
            assert_eq!(at + 1, out.len(), "bytes after SW2: {}", context());
            read.sw = Some([byte, sw2]);
            break;
        } else if byte == ins || byte == !ins {
            let all = byte == ins;
            assert!(
                !(all && ack_each_byte),
                "INS with ack_each_byte: {}",
                context()
            );
            if incoming {
                let p3 = usize::from(p3);
                assert!(read.granted < p3, "data asked beyond P3: {}", context());
                read.granted = if all { p3 } else { read.granted + 1 };
            } else {
                let left = outgoing_length(p3) - read.data.len();
                assert!(left > 0, "acknowledgement after all data: {}", context());
                let count = if all { left } else { 1 };
                let Some(chunk) = out.get(at..at + count) else {
                    panic!("data cut short after {byte:02X}: {}", context());
                };
                read.data.extend_from_slice(chunk);
                at += count;
            }
        } else {
            panic!(
                "byte {byte:02X} at offset {} is no procedure byte: {}",
                at - 1,
                context()
            );
        }
    }
    assert_eq!(
        done,
        read.sw.is_some(),
        "the command answered: {}",
        context()
    );
    if incoming && !ack_each_byte && read.granted > 0 {
        assert_eq!(read.granted, usize::from(p3), "one INS asks for all data");
    }
    read
}
