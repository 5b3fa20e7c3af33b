//! Fuzz target `message_json`: any purchase message read from JSON
//! (`serde_json::from_slice::<telepay::messages::Message>`): the 30 kinds, tagged by
//! `"type"`, with what they carry — card transactions in hex, signed wallet payments,
//! identity and dispute statements in their wire forms.
//!
//! Checked on every input:
//!
//! - `from_slice` never panics; when the input is UTF-8, `from_str` agrees with it (the
//!   same message, or both fail); an error's `Display` and `Debug` format.
//!
//! On success:
//!
//! - the message writes (`to_vec`), and what it writes reads back equal and writes the
//!   same bytes again (a fixed point); the text is an object whose first member is
//!   `"type"`, a string;
//! - the pretty form (`to_vec_pretty`) reads back equal too;
//! - `step()` names the message (non-empty).
#![no_main]

use libfuzzer_sys::fuzz_target;
use telepay::messages::Message;

fuzz_target!(|input: &[u8]| check(input));

fn check(input: &[u8]) {
    let read = serde_json::from_slice::<Message>(input);
    if let Ok(text) = std::str::from_utf8(input) {
        match (&read, serde_json::from_str::<Message>(text)) {
            (Ok(from_slice), Ok(from_str)) => assert_eq!(from_slice, &from_str),
            (Err(_), Err(_)) => {}
            (from_slice, from_str) => {
                panic!("from_slice gives {from_slice:?}, from_str {from_str:?}")
            }
        }
    }
    match read {
        Ok(message) => check_message(&message),
        Err(error) => {
            let _ = error.to_string();
            let _ = format!("{error:?}");
        }
    }
}

fn check_message(message: &Message) {
    assert!(!message.step().is_empty(), "{message:?} has no step");
    let written = match serde_json::to_vec(message) {
        Ok(written) => written,
        Err(error) => panic!("a message read is not written back: {error}\n{message:?}"),
    };
    let again = match serde_json::from_slice::<Message>(&written) {
        Ok(again) => again,
        Err(error) => panic!(
            "the JSON written does not read back: {error}\n{}",
            String::from_utf8_lossy(&written)
        ),
    };
    assert_eq!(
        &again,
        message,
        "read back differs from\n{}",
        String::from_utf8_lossy(&written)
    );
    match serde_json::to_vec(&again) {
        Ok(twice) => assert!(
            twice == written,
            "written twice differs:\n{}\n{}",
            String::from_utf8_lossy(&written),
            String::from_utf8_lossy(&twice)
        ),
        Err(error) => panic!("written once but not twice: {error}\n{again:?}"),
    }
    // Internally tagged (`#[serde(tag = "type")]`): the tag is written first.
    assert!(
        written.starts_with(b"{\"type\":\""),
        "the tag is not the first member: {}",
        String::from_utf8_lossy(&written)
    );

    match serde_json::to_vec_pretty(message) {
        Ok(pretty) => match serde_json::from_slice::<Message>(&pretty) {
            Ok(read) => assert_eq!(&read, message, "the pretty form reads back different"),
            Err(error) => panic!(
                "the pretty form does not read back: {error}\n{}",
                String::from_utf8_lossy(&pretty)
            ),
        },
        Err(error) => panic!("a message read is not written pretty: {error}"),
    }
}
