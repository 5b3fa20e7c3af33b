//! Fuzz target `apdu_command`: command APDU decoding (ISO 7816-3 §12.1.3, ISO 7816-4 §5.1).
//!
//! On arbitrary bytes, [`Command::parse`] (owned) and [`CommandView::parse`] (borrowed)
//! must agree: both accept with the same fields, or both reject with the same error.
//! On success:
//! - the shortest encoding ([`Command::to_bytes`]) parses back to an equal command, and
//!   its view reports the case of the shortest encoding ([`Command::case`]);
//! - the input differs from that canonical encoding exactly when it used extended
//!   length fields that short ones could have carried (the only non-shortest form:
//!   short Le `00` = 256 and extended Le `0000` = 65 536 are canonical), and the view's
//!   case is then the extended twin of the canonical case;
//! - the explicit extended encoding parses back to an equal command, and the explicit
//!   short encoding exists exactly when the command does not need extended fields.
#![no_main]

use libfuzzer_sys::fuzz_target;
use telepay::apdu::{ApduError, Case, Command, CommandView, Encoding};

fuzz_target!(|input: &[u8]| check(input));

fn check(input: &[u8]) {
    let owned = Command::parse(input);
    let view = CommandView::parse(input);
    let (command, view) = match (owned, view) {
        (Ok(command), Ok(view)) => (command, view),
        (Err(a), Err(b)) => {
            assert_eq!(a, b, "owned and borrowed parsers disagree on the error");
            // Error messages are shown to users: formatting must not panic.
            let _ = a.to_string();
            return;
        }
        (a, b) => panic!("owned and borrowed parsers disagree: {a:?} vs {b:?}"),
    };

    // Same fields, whichever parser.
    assert_eq!(view.cla(), command.cla());
    assert_eq!(view.ins(), command.ins());
    assert_eq!(view.p1(), command.p1());
    assert_eq!(view.p2(), command.p2());
    assert_eq!(view.data(), command.data());
    assert_eq!(view.ne(), command.ne());
    assert_eq!(view.to_owned(), command);
    assert_eq!(Some(&view.header()[..]), input.get(..4));
    assert!(command.data().len() <= telepay::apdu::MAX_DATA_LEN);
    assert!(
        command
            .ne()
            .is_none_or(|ne| (1..=telepay::apdu::MAX_NE).contains(&ne))
    );
    // The case as encoded agrees with which fields are present.
    assert_eq!(view.case().has_data(), !command.data().is_empty());
    assert_eq!(view.case().has_le(), command.ne().is_some());

    // Round trip through the shortest encoding.
    let canonical = command.to_bytes();
    let reparsed = Command::parse(&canonical);
    assert_eq!(
        reparsed.as_ref(),
        Ok(&command),
        "to_bytes does not parse back"
    );
    let canonical_view = match CommandView::parse(&canonical) {
        Ok(v) => v,
        Err(e) => panic!("canonical bytes {canonical:02X?} rejected: {e}"),
    };
    assert_eq!(canonical_view.case(), command.case());
    assert_eq!(command.view(), canonical_view);

    // The input is canonical unless it spent extended length fields on a command that
    // fits short ones.
    let non_shortest = view.case().is_extended() && !command.needs_extended();
    assert_eq!(
        canonical != input,
        non_shortest,
        "canonical {canonical:02X?}"
    );
    if non_shortest {
        assert_eq!(extended_twin(command.case()), view.case());
    } else {
        assert_eq!(view.case(), command.case());
    }

    // Both explicit encodings.
    match command.to_bytes_with(Encoding::Extended) {
        Ok(bytes) => assert_eq!(Command::parse(&bytes).as_ref(), Ok(&command)),
        Err(e) => panic!("extended encoding refused: {e}"),
    }
    match command.to_bytes_with(Encoding::Short) {
        Ok(bytes) => {
            assert!(!command.needs_extended());
            assert_eq!(bytes, canonical);
        }
        Err(e) => {
            assert!(command.needs_extended());
            assert_eq!(
                e,
                ApduError::NotShortEncodable {
                    nc: command.data().len(),
                    ne: command.ne(),
                }
            );
        }
    }
}

/// The extended-length case with the same fields as a short case.
fn extended_twin(case: Case) -> Case {
    match case {
        Case::TwoShort => Case::TwoExtended,
        Case::ThreeShort => Case::ThreeExtended,
        Case::FourShort => Case::FourExtended,
        other => other,
    }
}
