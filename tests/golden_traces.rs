//! The golden traces in `traces/` (one `card read` per built-in card, recorded from the
//! software card by `scripts/regenerate-golden-traces`) are played both ways, so that a
//! regression on either side shows:
//!
//! - as terminal: the recorded commands go to the software card and every answer must
//!   match (a change in the card is caught);
//! - as card: the terminal's read flow runs against the recording in strict mode and
//!   must send exactly the recorded commands and read the same card (a change in the
//!   terminal is caught).

use std::path::PathBuf;

use telepay::emv::{self, ReadOptions};
use telepay::reader::{ReaderUri, Transport, open};
use telepay::trace::check::{CheckOptions, check_card};
use telepay::trace::format;

const PROFILES: &[&str] = &["cb", "visa", "mastercard", "t0-slow", "blocked"];

fn golden(profile: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("traces")
        .join(format!("{profile}-card-read.trace"))
}

/// The terminal data the golden traces were recorded with.
fn options() -> ReadOptions {
    ReadOptions {
        aid: None,
        terminal_data: emv::default_terminal_data([0x26, 0x11, 0x25], [0xCA, 0xFE, 0xBA, 0xBE]),
    }
}

#[test]
fn every_golden_trace_replays_green_against_the_software_card() {
    for profile in PROFILES {
        let path = golden(profile);
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let trace = format::Reader::new(std::io::BufReader::new(file), &path.display().to_string())
            .unwrap();
        let uri = ReaderUri::parse(&format!("sim:{profile}?seed=1")).unwrap();
        let mut card = open(&uri).unwrap();
        let report = check_card(trace, &mut card, &CheckOptions::default()).unwrap();
        assert!(report.exchanges >= 7, "{profile}: {report:?}");
        assert!(report.all_match(), "{profile}: {:#?}", report.mismatches);
    }
}

#[test]
fn the_terminal_reads_each_golden_trace_as_it_reads_the_card() {
    for profile in PROFILES {
        let replay = ReaderUri::parse(&format!("replay:{}", golden(profile).display())).unwrap();
        let mut recorded = Transport::new(open(&replay).unwrap());
        recorded.power_on().unwrap();
        let from_trace =
            emv::read_card(&mut recorded, &options()).unwrap_or_else(|e| panic!("{profile}: {e}"));

        let live = ReaderUri::parse(&format!("sim:{profile}?seed=1")).unwrap();
        let mut card = Transport::new(open(&live).unwrap());
        card.power_on().unwrap();
        let from_card = emv::read_card(&mut card, &options()).unwrap();

        assert_eq!(from_trace.exchanges(), from_card.exchanges(), "{profile}");
        assert_eq!(from_trace.cardholder, from_card.cardholder, "{profile}");
        assert_eq!(from_trace.records(), from_card.records(), "{profile}");
        assert_eq!(
            from_trace.records_tlvs().unwrap(),
            from_card.records_tlvs().unwrap(),
            "{profile}"
        );
        assert_eq!(from_trace.fci(), from_card.fci(), "{profile}");
    }
}

#[test]
fn a_terminal_that_sends_something_else_is_stopped_with_both_commands_decoded() {
    let replay = ReaderUri::parse(&format!("replay:{}", golden("visa").display())).unwrap();
    let mut recorded = Transport::new(open(&replay).unwrap());
    recorded.power_on().unwrap();
    // The visa card's PDOL asks for the unpredictable number: another one differs.
    let options = ReadOptions {
        aid: None,
        terminal_data: emv::default_terminal_data([0x26, 0x11, 0x25], [0x01, 0x02, 0x03, 0x04]),
    };
    let error = emv::read_card(&mut recorded, &options)
        .unwrap_err()
        .to_string();
    assert!(error.contains("does not match line"), "{error}");
    assert!(
        error.contains("expected 80A800000883060250CAFEBABE00"),
        "{error}"
    );
    assert!(
        error.contains("received 80A8000008830602500102030400"),
        "{error}"
    );
    assert!(error.contains("GET PROCESSING OPTIONS"), "{error}");
    assert!(error.contains("^^^^^^^^"), "{error}");
}
