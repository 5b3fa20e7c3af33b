//! Fuzz target `apdu_response`: response APDU decoding and status words
//! (ISO 7816-4 §5.1, §5.6; EMV Book 3 Annex A / Book 1 §11).
//!
//! - [`Response::parse`] accepts every input of two bytes or more, splits off the last
//!   two as SW1 SW2, and [`Response::to_bytes`] gives the input back; shorter inputs
//!   get exactly [`ApduError::ResponseTooShort`].
//! - The status word (the last two bytes), and the first two bytes read as one, survive
//!   `StatusWord::from_u16(x).to_u16() == x`, agree with `from_bytes`/`sw1`/`sw2`, are
//!   classified by SW1 as ISO 7816-4 §5.6 Table 5 says, and their `Display` (four hex
//!   digits then the meaning) never panics. Only these two: checking every window made
//!   each run cost as much as the input is long for no new code reached, and the unit
//!   tests already cover all 65 536 values exhaustively.
#![no_main]

use libfuzzer_sys::fuzz_target;
use telepay::apdu::{ApduError, Response, StatusWord};

fuzz_target!(|input: &[u8]| check(input));

fn check(input: &[u8]) {
    match Response::parse(input) {
        Ok(response) => {
            assert_eq!(response.to_bytes(), input, "to_bytes is not the input");
            let Some((data, sw)) = input.split_at_checked(input.len().saturating_sub(2)) else {
                panic!("accepted {} bytes", input.len());
            };
            assert_eq!(response.data, data);
            assert_eq!(response.sw.to_bytes(), sw);
            assert_eq!(response.is_success(), sw == [0x90, 0x00]);
        }
        Err(e) => {
            assert!(input.len() < 2, "{} bytes refused: {e}", input.len());
            assert_eq!(e, ApduError::ResponseTooShort { len: input.len() });
            let _ = e.to_string();
        }
    }

    for pair in [input.first_chunk::<2>(), input.last_chunk::<2>()]
        .into_iter()
        .flatten()
    {
        check_status_word(u16::from_be_bytes(*pair));
    }
}

fn check_status_word(x: u16) {
    let [sw1, sw2] = x.to_be_bytes();
    let sw = StatusWord::from_u16(x);
    assert_eq!(sw.to_u16(), x, "{sw:?} does not round-trip");
    assert_eq!(StatusWord::from_bytes(sw1, sw2), sw);
    assert_eq!(u16::from(sw), x);
    assert_eq!((sw.sw1(), sw.sw2()), (sw1, sw2));
    assert_eq!(sw.is_success(), x == 0x9000);
    assert_eq!(sw.is_warning(), matches!(sw1, 0x62 | 0x63));
    assert_eq!(sw.is_error(), matches!(sw1, 0x64..=0x6F));
    let shown = sw.to_string();
    assert!(
        shown.starts_with(&format!("{x:04X} (")) && shown.ends_with(')'),
        "Display of {x:04X} is {shown:?}"
    );
    assert!(!sw.meaning().is_empty(), "{x:04X} has no meaning");
}
