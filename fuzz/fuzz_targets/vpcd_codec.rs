//! Fuzz target `vpcd_codec`: arbitrary bytes from "vpcd" to telepay's virtual card.
//!
//! Input layout:
//!
//! ```text
//! C  STREAM
//! C       the stream arrives in pieces of C % 64 + 1 bytes (vpcd's 2-byte length and
//!         its body come as separate segments; a network splits anywhere)
//! STREAM  the bytes vpcd "sends": frames of a 2-byte big-endian length and a payload
//! ```
//!
//! The card served is `sim:cb` with `SeededRandom::new(0)`, so a crash reproduces byte
//! for byte. Checked:
//! - nothing panics, in the decoder, the virtual card or the software card behind it;
//! - decoding in pieces gives the same messages, and the same error at the same
//!   offset, as decoding the stream at once;
//! - what goes back to vpcd is well-formed frames only, none empty (vpcd would drop the
//!   card), exactly one per get-ATR (`04`) and per APDU decoded before any error, and
//!   every ATR reply is the profile's ATR;
//! - after an error the session refuses more bytes until a new connection.
#![no_main]

use std::sync::OnceLock;

use card_applet_sim::card::{SimCard, SimOptions};
use card_applet_sim::profile::Profile;
use card_applet_sim::rng::SeededRandom;
use libfuzzer_sys::fuzz_target;
use telepay::reader::sim::SimReader;
use telepay::vpcd::{Control, Decoder, Message, Session, VirtualCard, VpcdError};

fuzz_target!(|input: &[u8]| check(input));

fn check(input: &[u8]) {
    let Some((&selector, stream)) = input.split_first() else {
        return;
    };
    let piece = usize::from(selector % 64) + 1;

    // Reference: the whole stream decoded at once.
    let (messages, error) = decode(stream, stream.len().max(1));
    let (chunked, chunked_error) = decode(stream, piece);
    assert_eq!(messages, chunked, "pieces of {piece} decode differently");
    assert_eq!(error, chunked_error, "pieces of {piece} fail differently");

    let profile = cb_profile().clone();
    let atr = profile.atr().to_vec();
    let options = SimOptions {
        state_file: None,
        random: Box::new(SeededRandom::new(0)),
    };
    let card = match SimCard::new(profile, options) {
        Ok(card) => card,
        Err(e) => panic!("sim:cb does not build: {e}"),
    };
    let reader = SimReader::with_card("sim:cb?seed=0", Box::new(card));
    let mut session = Session::new(VirtualCard::new(reader));
    let mut out = Vec::new();
    let mut failed = false;
    for chunk in stream.chunks(piece) {
        if session.receive(chunk).is_err() {
            failed = true;
            out.extend(session.take_outgoing());
            break;
        }
        out.extend(session.take_outgoing());
        while session.next_event().is_some() {}
    }
    assert_eq!(
        failed,
        error.is_some(),
        "the session and the decoder disagree"
    );
    if failed {
        assert!(
            matches!(
                session.receive(&[0x00, 0x01, 0x04]),
                Err(VpcdError::ConnectionFailed { .. })
            ),
            "a failed connection must stay failed"
        );
        assert!(session.take_outgoing().is_empty());
        session.disconnected();
    }

    // The replies: well-formed frames, none empty, one per ATR request and APDU.
    let mut replies = Vec::new();
    let mut rest = out.as_slice();
    while let Some((&length, tail)) = rest.split_first_chunk::<2>() {
        let len = usize::from(u16::from_be_bytes(length));
        assert!(len > 0, "an empty reply would make vpcd drop the card");
        let Some(payload) = tail.get(..len) else {
            panic!(
                "a reply frame is cut short: {len} bytes announced, {} sent",
                tail.len()
            );
        };
        replies.push(payload);
        rest = tail.get(len..).unwrap_or_default();
    }
    assert!(
        rest.is_empty(),
        "stray bytes after the replies: {rest:02X?}"
    );
    let expected: Vec<&Message> = messages
        .iter()
        .filter(|message| !matches!(message, Message::Control(c) if !c.expects_reply()))
        .collect();
    assert_eq!(
        replies.len(),
        expected.len(),
        "one reply per ATR request and APDU"
    );
    for (reply, message) in replies.iter().zip(expected) {
        match message {
            Message::Control(Control::GetAtr) => assert_eq!(*reply, atr.as_slice()),
            _ => assert!(
                reply.len() >= 2,
                "a response APDU holds SW1 SW2: {reply:02X?}"
            ),
        }
    }
}

/// Decodes a stream pushed in pieces: the messages, and the error (in words) if any.
fn decode(stream: &[u8], piece: usize) -> (Vec<Message>, Option<String>) {
    let mut decoder = Decoder::new();
    let mut messages = Vec::new();
    for chunk in stream.chunks(piece) {
        decoder.push(chunk);
        loop {
            match decoder.next_message() {
                Ok(Some(message)) => messages.push(message),
                Ok(None) => break,
                Err(error) => return (messages, Some(error.to_string())),
            }
        }
    }
    (messages, None)
}

/// `sim:cb`, parsed once: TOML parsing would otherwise dominate each run.
fn cb_profile() -> &'static Profile {
    static PROFILE: OnceLock<Profile> = OnceLock::new();
    PROFILE.get_or_init(|| match Profile::builtin("cb") {
        Ok(profile) => profile,
        Err(e) => panic!("builtin profile cb does not load: {e}"),
    })
}
