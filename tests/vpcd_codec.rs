//! The vpcd protocol without a socket: the frame codec, the virtual card's answers to
//! each control and APDU, what vpcd receives when the card's answer cannot be sent,
//! which power-ups and resets reach the backend card, and that no byte stream panics.
//!
//! Wire notation in the tables: frames are written as vpcd sends them, length first
//! (`0001 04` = get ATR). Dialogue notation: `04` is a control byte, `A:HEX` an APDU.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;
use telepay::reader::{ExchangeObserver, Reader, ReaderError, ReaderUri, ResetKind, open};
use telepay::vpcd::{
    Backend, Control, Decoder, Event, MAX_PAYLOAD, Message, SUBSTITUTE_RESPONSE, Session,
    Substitution, VirtualCard, VpcdError, encode_frame,
};

/// The ATR of `sim:cb`.
const CB_ATR: &str = "3BE800008031FE458073C6010052434285";
/// SELECT of the contactless payment directory (2PAY.SYS.DDF01).
const SELECT_PPSE: &str = "00A404000E325041592E5359532E444446303100";

fn unhex(text: &str) -> Vec<u8> {
    hex::decode(text.replace([' ', '\n'], "")).expect("test hex")
}

/// A message or a decoder error, in words the tables use.
fn describe(result: &Result<Option<Message>, VpcdError>) -> String {
    match result {
        Ok(Some(Message::Control(control))) => format!("{control:?}"),
        Ok(Some(Message::Apdu(apdu))) => format!("Apdu {}", hex::encode_upper(apdu)),
        Ok(None) => "need more".to_owned(),
        Err(VpcdError::EmptyFrame { offset }) => format!("error: empty frame at {offset}"),
        Err(VpcdError::UnknownControl { offset, byte }) => {
            format!("error: unknown control {byte:02X} at {offset}")
        }
        Err(other) => format!("unexpected error: {other}"),
    }
}

/// Decodes everything `input` holds, pushed in pieces of `piece` bytes: the messages,
/// then "need more" or the error that stopped decoding.
fn decode_all(input: &[u8], piece: usize) -> Vec<String> {
    let mut decoder = Decoder::new();
    let mut out = Vec::new();
    for chunk in input.chunks(piece.max(1)) {
        decoder.push(chunk);
        loop {
            let result = decoder.next_message();
            match result {
                Ok(Some(_)) => out.push(describe(&result)),
                Ok(None) => break,
                Err(_) => {
                    out.push(describe(&result));
                    return out;
                }
            }
        }
    }
    out.push("need more".to_owned());
    out
}

#[test]
fn frames_decode_to_controls_and_apdus() {
    let table: &[(&str, &[&str])] = &[
        ("0001 00", &["PowerOff", "need more"]),
        ("0001 01", &["PowerOn", "need more"]),
        ("0001 02", &["Reset", "need more"]),
        ("0001 04", &["GetAtr", "need more"]),
        // 2 bytes or more is an APDU, whatever it holds: the card judges it.
        ("0002 9000", &["Apdu 9000", "need more"]),
        ("0004 00A40400", &["Apdu 00A40400", "need more"]),
        (
            "0001 01 0001 04 0005 00CA9F3600",
            &["PowerOn", "GetAtr", "Apdu 00CA9F3600", "need more"],
        ),
        // Incomplete: one length byte; a length without its body.
        ("00", &["need more"]),
        ("0005 00CA9F", &["need more"]),
        ("0001 04 0005 00", &["GetAtr", "need more"]),
        // Malformed: vpcd never sends an empty frame or another control byte. The
        // offset is where the bad frame's length starts.
        ("0000", &["error: empty frame at 0"]),
        (
            "0001 04 0000 0001 04",
            &["GetAtr", "error: empty frame at 3"],
        ),
        ("0001 03", &["error: unknown control 03 at 0"]),
        ("0001 05", &["error: unknown control 05 at 0"]),
        (
            "0001 02 0001 FF",
            &["Reset", "error: unknown control FF at 3"],
        ),
    ];
    for (input, expected) in table {
        let bytes = unhex(input);
        assert_eq!(
            &decode_all(&bytes, bytes.len()),
            expected,
            "at once: {input}"
        );
        assert_eq!(&decode_all(&bytes, 1), expected, "byte by byte: {input}");
        assert_eq!(&decode_all(&bytes, 2), expected, "two by two: {input}");
    }
}

#[test]
fn the_longest_frame_is_65535_bytes_and_arrives_in_pieces() {
    let apdu: Vec<u8> = (0..MAX_PAYLOAD).map(|i| (i % 251) as u8).collect();
    let wire = encode_frame(&apdu).unwrap();
    assert_eq!(wire.get(..2), Some(&[0xFF, 0xFF][..]));
    let mut decoder = Decoder::new();
    for chunk in wire.chunks(1000) {
        assert!(decoder.next_message().unwrap().is_none());
        decoder.push(chunk);
    }
    assert_eq!(decoder.next_message().unwrap(), Some(Message::Apdu(apdu)));
    assert_eq!(decoder.position(), 65_537);
    assert_eq!(decoder.buffered(), 0);
}

#[test]
fn a_failed_decoder_stays_failed() {
    let mut decoder = Decoder::new();
    decoder.push(&unhex("0001 04 0001 07"));
    assert_eq!(
        decoder.next_message().unwrap(),
        Some(Message::Control(Control::GetAtr))
    );
    for _ in 0..2 {
        assert!(matches!(
            decoder.next_message(),
            Err(VpcdError::UnknownControl {
                offset: 3,
                byte: 0x07
            })
        ));
    }
    decoder.push(&unhex("0001 04"));
    assert!(decoder.has_failed());
    assert!(matches!(
        decoder.next_message(),
        Err(VpcdError::UnknownControl {
            offset: 3,
            byte: 0x07
        })
    ));
}

#[test]
fn replies_are_framed_and_never_empty_or_over_long() {
    let table: &[(usize, Option<&str>)] = &[
        (0, None),
        (1, Some("0001")),
        (2, Some("0002")),
        (65_535, Some("FFFF")),
        (65_536, None),
        (65_538, None),
    ];
    for &(len, prefix) in table {
        let payload = vec![0x90; len];
        match (encode_frame(&payload), prefix) {
            (Ok(frame), Some(prefix)) => {
                assert_eq!(hex::encode_upper(&frame[..2]), prefix, "{len}");
                assert_eq!(&frame[2..], &payload[..], "{len}");
            }
            (Err(VpcdError::ReplyLength { len: reported }), None) => assert_eq!(reported, len),
            (other, _) => panic!("{len} bytes: unexpected {other:?}"),
        }
    }
}

#[test]
fn control_bytes_round_trip() {
    for byte in 0..=u8::MAX {
        match Control::from_byte(byte) {
            Some(control) => {
                assert!([0x00, 0x01, 0x02, 0x04].contains(&byte));
                assert_eq!(control.byte(), byte);
                assert_eq!(control.expects_reply(), byte == 0x04);
            }
            None => assert!(![0x00, 0x01, 0x02, 0x04].contains(&byte), "{byte:02X}"),
        }
    }
}

/// Frames a dialogue written as `04 01 A:00A40400…`.
fn dialogue(spec: &str) -> Vec<u8> {
    let mut wire = Vec::new();
    for token in spec.split_whitespace() {
        let payload = match token.strip_prefix("A:") {
            Some(apdu) => unhex(apdu),
            None => unhex(token),
        };
        wire.extend(encode_frame(&payload).unwrap());
    }
    wire
}

/// Splits what the card sent back into frames' payloads, in hex; checks the framing.
fn replies(out: &[u8]) -> Vec<String> {
    let mut decoder = Decoder::new();
    decoder.push(out);
    let mut replies = Vec::new();
    loop {
        match decoder.next_message() {
            Ok(Some(Message::Apdu(payload))) => replies.push(hex::encode_upper(payload)),
            Ok(Some(Message::Control(control))) => {
                replies.push(format!("{:02X}", control.byte()));
            }
            Ok(None) => break,
            Err(error) => panic!("the card sent a malformed frame: {error}"),
        }
    }
    assert_eq!(decoder.buffered(), 0, "a reply frame is cut short");
    replies
}

fn sim_session() -> Session<Box<dyn Reader + Send>> {
    let reader = open(&ReaderUri::parse("sim:cb?seed=1").unwrap()).unwrap();
    Session::new(VirtualCard::new(reader))
}

/// The software card's own answer to SELECT PPSE, in process.
fn sim_select_ppse() -> String {
    let mut reader = open(&ReaderUri::parse("sim:cb?seed=1").unwrap()).unwrap();
    reader.power_on().unwrap();
    hex::encode_upper(reader.transmit_raw(&unhex(SELECT_PPSE)).unwrap())
}

#[test]
fn the_software_card_answers_as_it_does_in_process() {
    let select = sim_select_ppse();
    let table: &[(&str, Vec<&str>)] = &[
        // The presence check before any power-up: the ATR.
        ("04", vec![CB_ATR]),
        // Power off/on/reset get no reply; only get-ATR does.
        ("01", vec![]),
        ("01 00", vec![]),
        ("01 02 00", vec![]),
        ("01 04 02 04", vec![CB_ATR, CB_ATR]),
        // pcscd's dialogue: presence checks, power-up, ATR, a command, power-off.
        (
            "04 04 01 04 A:00A404000E325041592E5359532E444446303100 04 00 04",
            vec![CB_ATR, CB_ATR, CB_ATR, select.as_str(), CB_ATR, CB_ATR],
        ),
        // An APDU shorter than a header reaches the card, which answers wrong length.
        ("01 A:00A4", vec!["6700"]),
        // A command before any power-up gets 6F00, not silence.
        ("A:00A404000E325041592E5359532E444446303100", vec!["6F00"]),
        // A command after power-off too.
        ("01 00 A:00CA9F3600", vec!["6F00"]),
    ];
    for (spec, expected) in table {
        let mut session = sim_session();
        session.receive(&dialogue(spec)).unwrap();
        assert_eq!(&replies(&session.take_outgoing()), expected, "{spec}");
    }
}

#[test]
fn split_frames_get_the_same_answers() {
    let wire = dialogue("04 01 04 A:00A404000E325041592E5359532E444446303100 04");
    let mut at_once = sim_session();
    at_once.receive(&wire).unwrap();
    let expected = at_once.take_outgoing();
    let mut byte_by_byte = sim_session();
    let mut out = Vec::new();
    for (index, byte) in wire.iter().enumerate() {
        byte_by_byte.receive(std::slice::from_ref(byte)).unwrap();
        out.extend(byte_by_byte.take_outgoing());
        // Nothing is half-decoded once a whole frame is in.
        if index + 1 == wire.len() {
            assert_eq!(byte_by_byte.partial_frame(), 0);
        }
    }
    assert_eq!(hex::encode_upper(out), hex::encode_upper(expected));
}

#[test]
fn a_malformed_frame_fails_the_connection_until_it_is_replaced() {
    let mut session = sim_session();
    let mut wire = dialogue("04");
    wire.extend(unhex("0001 03"));
    wire.extend(dialogue("04"));
    let error = session.receive(&wire).unwrap_err();
    assert!(
        matches!(error, VpcdError::UnknownControl { offset: 3, byte: 3 }),
        "{error}"
    );
    assert_eq!(
        error.to_string(),
        "vpcd frame at byte 3: unknown control byte 03; expected 00 (power off), 01 (power on), \
         02 (reset) or 04 (get ATR)"
    );
    // The ATR answered before the bad frame is still there to send; nothing after it.
    assert_eq!(replies(&session.take_outgoing()), vec![CB_ATR]);
    assert!(matches!(
        session.receive(&dialogue("04")),
        Err(VpcdError::ConnectionFailed { offset: 3 })
    ));
    assert!(session.take_outgoing().is_empty());
    // A new connection starts a new stream.
    session.disconnected();
    session.receive(&dialogue("04")).unwrap();
    assert_eq!(replies(&session.take_outgoing()), vec![CB_ATR]);
    // An empty frame the same way.
    let error = session.receive(&unhex("0000")).unwrap_err();
    assert!(
        matches!(error, VpcdError::EmptyFrame { offset: 3 }),
        "{error}"
    );
}

/// A backend that does what the test says and logs what it was asked.
struct Scripted {
    atr: Result<Vec<u8>, ()>,
    answers: VecDeque<Result<Vec<u8>, ReaderError>>,
    calls: Arc<Mutex<Vec<String>>>,
}

impl Scripted {
    fn new(atr: &str) -> (Scripted, Arc<Mutex<Vec<String>>>) {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let reader = Scripted {
            atr: Ok(unhex(atr)),
            answers: VecDeque::new(),
            calls: calls.clone(),
        };
        (reader, calls)
    }

    fn answering(mut self, answers: Vec<Result<Vec<u8>, ReaderError>>) -> Scripted {
        self.answers = answers.into();
        self
    }

    fn log(&self, call: String) {
        self.calls.lock().unwrap().push(call);
    }

    fn atr(&self) -> Result<Vec<u8>, ReaderError> {
        self.atr.clone().map_err(|()| card_gone())
    }
}

/// A backend error that is not a refused command: the card is gone.
fn card_gone() -> ReaderError {
    ReaderError::BackendUnavailable {
        uri: "pcsc:Test".to_owned(),
        scheme: "pcsc",
        reason: "the card was removed",
        available: "sim:",
    }
}

impl Reader for Scripted {
    fn name(&self) -> &str {
        "scripted"
    }
    fn power_on(&mut self) -> Result<Vec<u8>, ReaderError> {
        self.log("power on".to_owned());
        self.atr()
    }
    fn reset(&mut self, kind: ResetKind) -> Result<Vec<u8>, ReaderError> {
        self.log(format!("reset {kind:?}"));
        self.atr()
    }
    fn transmit_raw(&mut self, command: &[u8]) -> Result<Vec<u8>, ReaderError> {
        self.log(format!("transmit {}", hex::encode_upper(command)));
        self.answers.pop_front().unwrap_or(Ok(vec![0x90, 0x00]))
    }
    fn power_off(&mut self) -> Result<(), ReaderError> {
        self.log("power off".to_owned());
        Ok(())
    }
}

#[test]
fn power_ups_and_resets_reach_the_backend_only_when_they_change_something() {
    let table: &[(&str, &[&str])] = &[
        // The first ATR request powers the card; pcscd's power-up right after is absorbed.
        ("04 04 01 04", &["power on"]),
        // pcscd's idle power-off of an unused card, and the next power-up: absorbed.
        ("04 01 04 00 04 01 04", &["power on"]),
        // A dialogue: the card in use is powered off, the next power-up reaches it.
        (
            "04 01 A:00B2010C00 04 00 04 01 04",
            &["power on", "transmit 00B2010C00", "power off", "power on"],
        ),
        // A reset after commands is a warm reset; one right after it is absorbed.
        (
            "01 04 A:00B2010C00 02 04 02 04",
            &["power on", "transmit 00B2010C00", "reset Warm"],
        ),
        // A warm-reset card is not a fresh cold one: power-up goes through.
        (
            "01 A:00B2010C00 02 01",
            &["power on", "transmit 00B2010C00", "reset Warm", "power on"],
        ),
        // A reset of a powered-off card powers it.
        (
            "01 A:00B2010C00 00 02",
            &["power on", "transmit 00B2010C00", "power off", "power on"],
        ),
    ];
    for (spec, expected) in table {
        let (reader, calls) = Scripted::new(CB_ATR);
        let mut session = Session::new(VirtualCard::new(reader));
        session.receive(&dialogue(spec)).unwrap();
        assert_eq!(&*calls.lock().unwrap(), expected, "{spec}");
    }
}

#[test]
fn a_lost_connection_removes_the_card() {
    let (reader, calls) = Scripted::new(CB_ATR);
    let mut session = Session::new(VirtualCard::new(reader));
    // Unused card: stays as it is across the reconnection; no new power-up needed.
    session.receive(&dialogue("04 01 04")).unwrap();
    session.disconnected();
    assert_eq!(session.card().backend(), Backend::Fresh(ResetKind::Cold));
    assert!(!session.card().is_powered());
    session.receive(&dialogue("04 01 04")).unwrap();
    // Used card: powered off with the connection.
    session.receive(&dialogue("A:00B2010C00")).unwrap();
    session.disconnected();
    assert_eq!(session.card().backend(), Backend::Unpowered);
    assert_eq!(
        &*calls.lock().unwrap(),
        &["power on", "transmit 00B2010C00", "power off"]
    );
    assert!(matches!(
        session.next_event(),
        Some(Event::Control(Control::GetAtr))
    ));
}

fn substituted(session: &mut Session<Scripted>) -> Vec<String> {
    std::iter::from_fn(|| session.next_event())
        .filter_map(|event| match event {
            Event::Substituted { command, reason } => Some(format!(
                "{}: {}",
                hex::encode_upper(command),
                match reason {
                    Substitution::EmptyResponse => "empty".to_owned(),
                    Substitution::ResponseTooLong { len } => format!("too long {len}"),
                    Substitution::Unpowered => "unpowered".to_owned(),
                    Substitution::Refused(error) => format!("refused: {error}"),
                    _ => "other".to_owned(),
                }
            )),
            _ => None,
        })
        .collect()
}

#[test]
fn answers_vpcd_cannot_take_become_6f00() {
    let too_long = vec![0x61; MAX_PAYLOAD + 1];
    let refusal = ReaderError::ReplayEnded {
        reader: "replay:x.trace".to_owned(),
        waiting_for: "a recorded exchange matching the command",
    };
    let (reader, _) = Scripted::new(CB_ATR);
    let reader = reader.answering(vec![
        Ok(Vec::new()),
        Ok(too_long),
        Err(refusal),
        Ok(unhex("9000")),
    ]);
    let mut session = Session::new(VirtualCard::new(reader));
    session
        .receive(&dialogue(
            "01 A:00B2010C00 A:00B2020C00 A:00B2030C00 A:00B2040C00",
        ))
        .unwrap();
    assert_eq!(
        replies(&session.take_outgoing()),
        vec!["6F00", "6F00", "6F00", "9000"]
    );
    assert_eq!(
        substituted(&mut session),
        vec![
            "00B2010C00: empty".to_owned(),
            format!("00B2020C00: too long {}", MAX_PAYLOAD + 1),
            "00B2030C00: refused: reader replay:x.trace: the recording ended while waiting for \
             a recorded exchange matching the command"
                .to_owned(),
        ]
    );
    assert_eq!(SUBSTITUTE_RESPONSE, [0x6F, 0x00]);
}

#[test]
fn a_card_lost_on_a_command_closes_the_connection() {
    let (reader, calls) = Scripted::new(CB_ATR);
    let reader = reader.answering(vec![Err(card_gone())]);
    let mut session = Session::new(VirtualCard::new(reader));
    let error = session
        .receive(&dialogue("01 04 A:00B2010C00 04"))
        .unwrap_err();
    assert!(
        matches!(&error, VpcdError::CardLost { reader, command, .. }
            if reader == "scripted" && command == "00B2010C00"),
        "{error}"
    );
    // The ATR asked before the command went out; nothing after.
    assert_eq!(replies(&session.take_outgoing()), vec![CB_ATR]);
    assert_eq!(session.card().backend(), Backend::Lost);
    // The next connection powers the card afresh before giving an ATR.
    session.disconnected();
    assert_eq!(session.card().atr(), None);
    session.receive(&dialogue("04")).unwrap();
    assert_eq!(replies(&session.take_outgoing()), vec![CB_ATR]);
    assert_eq!(
        &*calls.lock().unwrap(),
        &["power on", "transmit 00B2010C00", "power off", "power on"]
    );
}

#[test]
fn a_card_that_cannot_give_a_usable_atr_is_not_presented() {
    let table: &[(&str, Result<&str, ()>, &str)] = &[
        (
            "power fails",
            Err(()),
            "cannot power the card: reader pcsc:Test: the pcsc: backend is not \
             available in this build of telepay (the card was removed); available backends: sim:",
        ),
        (
            "empty ATR",
            Ok(""),
            "reader scripted: the card's ATR (none) is 0 bytes; vpcd passes 1 to 33 (TS and at most \
             32 more, ISO 7816-3 §8.2.1)",
        ),
        (
            "34-byte ATR",
            Ok("3B8F8001804F0CA000000306030001000000006A0102030405060708090A0B0C0D0E"),
            "reader scripted: the card's ATR \
             3B8F8001804F0CA000000306030001000000006A0102030405060708090A0B0C0D0E is 34 bytes; \
             vpcd passes 1 to 33 (TS and at most 32 more, ISO 7816-3 §8.2.1)",
        ),
    ];
    for (name, atr, message) in table {
        let (mut reader, _) = Scripted::new("");
        reader.atr = atr.map(unhex);
        let mut session = Session::new(VirtualCard::new(reader));
        let error = session.receive(&dialogue("04")).unwrap_err();
        assert_eq!(&crate_message(&error), message, "{name}");
        assert!(
            session.take_outgoing().is_empty(),
            "{name}: never an empty ATR"
        );
        let (mut reader, _) = Scripted::new("");
        reader.atr = atr.map(unhex);
        assert!(VirtualCard::new(reader).power_up().is_err(), "{name}");
    }
}

/// The error and its causes, as the CLI prints them.
fn crate_message(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

/// Keeps what a recorder would see.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<String>>>);

impl ExchangeObserver for Seen {
    fn answer_to_reset(&mut self, atr: &[u8]) {
        self.0
            .lock()
            .unwrap()
            .push(format!("@atr {}", hex::encode_upper(atr)));
    }
    fn exchange(&mut self, command: &[u8], response: &[u8], _elapsed: Duration) {
        let mut seen = self.0.lock().unwrap();
        seen.push(format!("> {}", hex::encode_upper(command)));
        seen.push(format!("< {}", hex::encode_upper(response)));
    }
}

#[test]
fn the_recorder_sees_one_atr_per_dialogue_and_what_vpcd_received() {
    let (reader, _) = Scripted::new(CB_ATR);
    let reader = reader.answering(vec![Ok(Vec::new())]);
    let mut card = VirtualCard::new(reader);
    let seen = Seen::default();
    card.set_observer(Box::new(seen.clone()));
    let mut session = Session::new(card);
    session
        .receive(&dialogue(
            "04 04 01 04 00 04 01 04 A:00B2010C00 A:00B2020C00 04 00 04 01 04",
        ))
        .unwrap();
    assert_eq!(
        &*seen.0.lock().unwrap(),
        &[
            format!("@atr {CB_ATR}"),
            "> 00B2010C00".to_owned(),
            "< 6F00".to_owned(),
            "> 00B2020C00".to_owned(),
            "< 9000".to_owned(),
            format!("@atr {CB_ATR}"),
        ]
    );
}

/// A recorded card read plays once through pcscd's power cycling, every answer as
/// recorded: what lets a `replay:` trace stand behind the virtual reader.
#[test]
fn a_recorded_card_read_replays_through_pcscd_power_cycling() {
    let trace =
        telepay::trace::format::read_file(std::path::Path::new("traces/cb-card-read.trace"))
            .unwrap();
    let exchanges: Vec<(Vec<u8>, Vec<u8>)> = trace
        .events
        .iter()
        .filter_map(|event| match event {
            telepay::trace::Event::Exchange(exchange) => Some((
                exchange.command.to_bytes_filled(0),
                exchange.response.to_bytes_filled(0),
            )),
            _ => None,
        })
        .collect();
    assert!(exchanges.len() > 3);
    let reader = open(&ReaderUri::parse("replay:traces/cb-card-read.trace").unwrap()).unwrap();
    let mut session = Session::new(VirtualCard::new(reader));
    // Insertion: presence checks, power-up, idle power-off; then the application.
    let mut spec = "04 04 01 04 04 00 04 04 01 04".to_owned();
    for (command, _) in &exchanges {
        spec.push_str(&format!(" A:{}", hex::encode_upper(command)));
    }
    spec.push_str(" 04 00 04");
    session.receive(&dialogue(&spec)).unwrap();
    let mut expected = vec![CB_ATR.to_owned(); 7];
    expected.extend(exchanges.iter().map(|(_, r)| hex::encode_upper(r)));
    expected.extend([CB_ATR.to_owned(), CB_ATR.to_owned()]);
    assert_eq!(replies(&session.take_outgoing()), expected);
    let warnings: Vec<Event> = std::iter::from_fn(|| session.next_event())
        .filter(|event| matches!(event, Event::Substituted { .. }))
        .collect();
    assert!(warnings.is_empty(), "{warnings:?}");
}

proptest! {
    /// Any byte stream, in any pieces: the decoder never panics, and decodes the same
    /// whatever the pieces.
    #[test]
    fn any_stream_decodes_without_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..600),
        piece in 1usize..40,
    ) {
        prop_assert_eq!(decode_all(&bytes, piece), decode_all(&bytes, bytes.len().max(1)));
    }

    /// Any payload of 2 bytes or more framed and decoded is the same APDU.
    #[test]
    fn apdus_round_trip(apdu in proptest::collection::vec(any::<u8>(), 2..1000)) {
        let mut decoder = Decoder::new();
        decoder.push(&encode_frame(&apdu).unwrap());
        prop_assert_eq!(decoder.next_message().unwrap(), Some(Message::Apdu(apdu)));
        prop_assert_eq!(decoder.next_message().unwrap(), None);
    }

    /// Any byte stream fed to a session serving the software card: no panic, and every
    /// reply is a well-formed, non-empty frame.
    #[test]
    fn any_stream_to_the_software_card_never_panics(
        bytes in proptest::collection::vec(any::<u8>(), 0..400),
        piece in 1usize..64,
    ) {
        let mut session = sim_session();
        let mut out = Vec::new();
        for chunk in bytes.chunks(piece) {
            let failed = session.receive(chunk).is_err();
            out.extend(session.take_outgoing());
            if failed {
                break;
            }
        }
        let replies = replies(&out);
        prop_assert!(replies.iter().all(|reply| !reply.is_empty()));
    }

    /// Well-formed dialogues of controls and APDUs: exactly one reply per get-ATR and
    /// per APDU, none for the other controls.
    #[test]
    fn one_reply_per_atr_request_and_apdu(
        messages in proptest::collection::vec(
            prop_oneof![
                Just(vec![0x00u8]), Just(vec![0x01]), Just(vec![0x02]), Just(vec![0x04]),
                proptest::collection::vec(any::<u8>(), 2..300),
            ],
            0..40,
        ),
    ) {
        let mut wire = Vec::new();
        for message in &messages {
            wire.extend(encode_frame(message).unwrap());
        }
        let expected = messages
            .iter()
            .filter(|message| message.len() > 1 || message.first() == Some(&0x04))
            .count();
        let mut session = sim_session();
        session.receive(&wire).unwrap();
        prop_assert_eq!(replies(&session.take_outgoing()).len(), expected);
    }
}
