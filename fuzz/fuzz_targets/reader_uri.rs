//! Fuzz target `reader_uri`: reader URI parsing (`sim:`, `pcsc:`, `serial:`, `replay:`).
//!
//! On any UTF-8 string [`ReaderUri::parse`] never panics; on success its `Display`
//! (the canonical form) parses back to an equal value, and printing that value again
//! gives the same text (the canonical form is a fixed point). Error messages, which
//! quote the input, format without panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use telepay::reader::ReaderUri;

fuzz_target!(|input: &[u8]| check(input));

fn check(input: &[u8]) {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    let uri = match ReaderUri::parse(text) {
        Ok(uri) => uri,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let canonical = uri.to_string();
    match ReaderUri::parse(&canonical) {
        Ok(again) => {
            assert_eq!(again, uri, "{text:?} printed as {canonical:?}");
            assert_eq!(again.to_string(), canonical);
        }
        Err(e) => panic!("{text:?} printed as {canonical:?}, which does not parse: {e}"),
    }
    assert!(canonical.starts_with(uri.scheme()));
}
