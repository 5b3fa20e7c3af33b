//! The `.trace` text format (`docs/trace-format.md`): what each line means, the exact
//! error for each malformed shape, the canonical form the writer produces, and
//! properties (round trips; no panic and bounded reading on any input).

use std::io::{self, BufRead, BufReader, Read};
use std::time::Duration;

use proptest::prelude::*;
use telepay::trace::format::{
    self, MAX_LINE_LEN, MAX_PATTERN_LEN, Reader, TraceError, Writer, format_pattern, parse_pattern,
    parse_str, to_string,
};
use telepay::trace::{Event, Exchange, FORMAT_VERSION, Header, Pattern, Secrets, Segment, Trace};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/trace");

fn hex(text: &str) -> Vec<u8> {
    hex::decode(text).unwrap_or_else(|error| panic!("test hex {text:?}: {error}"))
}

fn bytes(text: &str) -> Segment {
    Segment::Bytes(hex(text))
}

fn redacted(name: &str, len: usize) -> Segment {
    Segment::Redacted {
        name: name.to_owned(),
        len,
    }
}

fn pattern(segments: Vec<Segment>) -> Pattern {
    Pattern { segments }
}

/// A body after a minimal header.
fn with_header(body: &str) -> String {
    format!("telepay-trace 1\n\n{body}")
}

fn parse_ok(text: &str) -> Trace {
    parse_str(text, "t.trace").unwrap_or_else(|error| panic!("{text:?}: {error}"))
}

fn parse_err(text: &str) -> TraceError {
    match parse_str(text, "t.trace") {
        Ok(trace) => panic!("{text:?} parsed: {trace:?}"),
        Err(error) => error,
    }
}

fn variant(error: &TraceError) -> &'static str {
    match error {
        TraceError::Io { .. } => "Io",
        TraceError::NotATrace { .. } => "NotATrace",
        TraceError::UnsupportedVersion { .. } => "UnsupportedVersion",
        TraceError::Syntax { .. } => "Syntax",
        TraceError::LineTooLong { .. } => "LineTooLong",
        TraceError::InvalidUtf8 { .. } => "InvalidUtf8",
        TraceError::ResponseWithoutCommand { .. } => "ResponseWithoutCommand",
        TraceError::CommandWithoutResponse { .. } => "CommandWithoutResponse",
        TraceError::Truncated { .. } => "Truncated",
        TraceError::HeaderAfterExchange { .. } => "HeaderAfterExchange",
        TraceError::HeaderTooLong { .. } => "HeaderTooLong",
        TraceError::DuplicateHeader { .. } => "DuplicateHeader",
        TraceError::Unwritable { .. } => "Unwritable",
        _ => "(new variant)",
    }
}

// ---------------------------------------------------------------------------------
// Patterns
// ---------------------------------------------------------------------------------

#[test]
fn patterns_table() {
    let cases: Vec<(&str, Vec<Segment>)> = vec![
        ("9000", vec![bytes("9000")]),
        ("90 00", vec![bytes("90"), bytes("00")]),
        (
            "6f12 8407a0000000421010",
            vec![bytes("6F12"), bytes("8407A0000000421010")],
        ),
        ("  00A4\t0400  ", vec![bytes("00A4"), bytes("0400")]),
        ("??", vec![Segment::Any(1)]),
        ("????????", vec![Segment::Any(4)]),
        ("?? ??", vec![Segment::Any(1), Segment::Any(1)]),
        ("9F36????", vec![bytes("9F36"), Segment::Any(2)]),
        (
            "??9F36??",
            vec![Segment::Any(1), bytes("9F36"), Segment::Any(1)],
        ),
        ("<pin:8>", vec![redacted("pin", 8)]),
        ("<pin-block_2:08>", vec![redacted("pin-block_2", 8)]),
        (
            "0020008008<pin:8>",
            vec![bytes("0020008008"), redacted("pin", 8)],
        ),
        (
            "5A08<pan:8>5F24",
            vec![bytes("5A08"), redacted("pan", 8), bytes("5F24")],
        ),
        (
            "<a:1><b:2>??",
            vec![redacted("a", 1), redacted("b", 2), Segment::Any(1)],
        ),
        ("<x:65544>", vec![redacted("x", MAX_PATTERN_LEN)]),
    ];
    for (text, segments) in cases {
        let parsed = parse_pattern(text).unwrap_or_else(|error| panic!("{text:?}: {error}"));
        assert_eq!(parsed.segments, segments, "{text:?}");
    }
}

#[test]
fn patterns_are_written_segment_by_segment_in_upper_case() {
    let cases: Vec<(Vec<Segment>, &str)> = vec![
        (vec![bytes("6f12"), bytes("8407")], "6F12 8407"),
        (vec![bytes("9F36"), Segment::Any(2)], "9F36 ????"),
        (
            vec![bytes("0020008008"), redacted("pin", 8)],
            "0020008008 <pin:8>",
        ),
        (
            vec![bytes("771E"), bytes("9F2701"), bytes("80"), Segment::Any(2)],
            "771E 9F2701 80 ????",
        ),
    ];
    for (segments, text) in cases {
        let written = format_pattern(&pattern(segments.clone()));
        assert_eq!(written, text);
        assert_eq!(
            parse_pattern(&written).map(|p| p.segments).ok(),
            Some(segments)
        );
    }
}

#[test]
fn a_pattern_beyond_any_apdu_is_shown_not_allocated() {
    let huge = pattern(vec![bytes("00"), Segment::Any(usize::MAX)]);
    assert_eq!(format_pattern(&huge), format!("00 ??…×{}", usize::MAX));
    let trace = Trace {
        header: Header::default(),
        events: vec![Event::AnswerToReset(huge)],
    };
    assert_eq!(
        to_string(&trace),
        format!(
            "telepay-trace 1\n@secrets masked\n\n# not written: cannot write event 1 (@atr): \
             expected at most 65544 bytes, found {} bytes\n",
            usize::MAX
        )
    );
}

#[test]
fn malformed_patterns_table() {
    // (pattern, column, expected, found)
    let cases = [
        (
            "",
            1,
            "at least one byte (hex digits, `??` or `<name:N>`)",
            "end of line",
        ),
        (
            "   ",
            4,
            "at least one byte (hex digits, `??` or `<name:N>`)",
            "end of line",
        ),
        (
            "9F3",
            1,
            "pairs of hex digits",
            "odd number of hex digits in `9F3`",
        ),
        (
            "00A4 04000",
            6,
            "pairs of hex digits",
            "odd number of hex digits in `04000`",
        ),
        (
            "??9F3",
            1,
            "pairs of hex digits",
            "odd number of hex digits in `??9F3`",
        ),
        ("???", 1, "`??` per byte", "odd number of `?` in `???`"),
        (
            "9F36???",
            1,
            "`??` per byte",
            "odd number of `?` in `9F36???`",
        ),
        ("00G1", 3, "hex digits, `??` or `<name:N>`", "`G1`"),
        ("0x90", 2, "hex digits, `??` or `<name:N>`", "`x90`"),
        ("90 00 # no", 7, "hex digits, `??` or `<name:N>`", "`# no`"),
        (
            "<PIN:8>",
            1,
            "`<name:N>` with a name of a-z, 0-9, `_` or `-` and N ≥ 1",
            "`<PIN:8>`",
        ),
        (
            "<pin:0>",
            1,
            "`<name:N>` with a name of a-z, 0-9, `_` or `-` and N ≥ 1",
            "`<pin:0>`",
        ),
        (
            "<pin:8",
            1,
            "`<name:N>` with a name of a-z, 0-9, `_` or `-` and N ≥ 1",
            "`<pin:8`",
        ),
        (
            "<pin>",
            1,
            "`<name:N>` with a name of a-z, 0-9, `_` or `-` and N ≥ 1",
            "`<pin>`",
        ),
        (
            "00 <x:65544>",
            4,
            "at most 65544 bytes in a pattern",
            "`<x:65544>`",
        ),
        (
            "<x:99999999999999999999999>",
            1,
            "at most 65544 bytes in a pattern",
            "`<x:999999999999999999999…`",
        ),
        ("é", 1, "hex digits, `??` or `<name:N>`", "`é`"),
        ("00\n01", 3, "hex digits, `??` or `<name:N>`", "`\\n01`"),
    ];
    for (text, column, expected, found) in cases {
        match parse_pattern(text) {
            Err(TraceError::Syntax {
                origin,
                line,
                column: got_column,
                expected: got_expected,
                found: got_found,
            }) => {
                assert_eq!(
                    (
                        origin.as_str(),
                        line,
                        got_column,
                        got_expected.as_str(),
                        got_found.as_str()
                    ),
                    ("<pattern>", 1, column, expected, found),
                    "{text:?}"
                );
            }
            other => panic!("{text:?}: {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------
// Lines and events
// ---------------------------------------------------------------------------------

#[test]
fn body_lines_table() {
    let exchange =
        |command: &str, response: &str, elapsed: Option<Duration>, note: Option<&str>| {
            Event::Exchange(Exchange {
                command: parse_pattern(command).unwrap_or_default(),
                response: parse_pattern(response).unwrap_or_default(),
                elapsed,
                note: note.map(str::to_owned),
            })
        };
    let comment = |text: &str| Event::Comment(text.to_owned());
    let cases: Vec<(&str, Vec<Event>)> = vec![
        ("", vec![]),
        ("\n\n  \t\n", vec![]),
        ("# hello\n", vec![comment("hello")]),
        ("#hello\n", vec![comment("hello")]),
        ("#\n", vec![comment("")]),
        ("#  two spaces \n", vec![comment(" two spaces ")]),
        ("\t  # indented\n", vec![comment("indented")]),
        ("# naïve € ✓\n", vec![comment("naïve € ✓")]),
        ("# tab\tinside\n", vec![comment("tab\tinside")]),
        (
            "@atr 3B00\n",
            vec![Event::AnswerToReset(
                parse_pattern("3B00").unwrap_or_default(),
            )],
        ),
        (
            "> 00B2010C00\n< 6A83\n",
            vec![exchange("00B2010C00", "6A83", None, None)],
        ),
        (
            ">00B2010C00\n<6A83",
            vec![exchange("00B2010C00", "6A83", None, None)],
        ),
        (
            "> 00B2010C00\r\n< 6A83\r\n",
            vec![exchange("00B2010C00", "6A83", None, None)],
        ),
        (
            "> 00\n< 9000  @134us\n",
            vec![exchange(
                "00",
                "9000",
                Some(Duration::from_micros(134)),
                None,
            )],
        ),
        (
            "> 00\n< 9000 @1.5ms\n",
            vec![exchange(
                "00",
                "9000",
                Some(Duration::from_micros(1500)),
                None,
            )],
        ),
        (
            "> 00\n< 9000 @880ns\n",
            vec![exchange(
                "00",
                "9000",
                Some(Duration::from_nanos(880)),
                None,
            )],
        ),
        (
            "> 00\n< 9000 @2s\n",
            vec![exchange("00", "9000", Some(Duration::from_secs(2)), None)],
        ),
        (
            "> 00\n< 9000 @0.000000001s\n",
            vec![exchange("00", "9000", Some(Duration::from_nanos(1)), None)],
        ),
        (
            "> 00\n< 9000 @1.500000000000s\n",
            vec![exchange(
                "00",
                "9000",
                Some(Duration::from_millis(1500)),
                None,
            )],
        ),
        (
            "> 00\n< 9000 @7.ms\n",
            vec![exchange("00", "9000", Some(Duration::from_millis(7)), None)],
        ),
        (
            "> 00\n< 9000 # ok\n",
            vec![exchange("00", "9000", None, Some("ok"))],
        ),
        (
            "> 00\n< 9000  #\n",
            vec![exchange("00", "9000", None, Some(""))],
        ),
        (
            "> 00\n< 9000 #x # y @1s\n",
            vec![exchange("00", "9000", None, Some("x # y @1s"))],
        ),
        (
            "> 00\n< 9000 @3ms # wrong PIN\n",
            vec![exchange(
                "00",
                "9000",
                Some(Duration::from_millis(3)),
                Some("wrong PIN"),
            )],
        ),
        (
            // A comment between a command and its response comes first: the exchange
            // is complete only at its response.
            "> 00\n# waiting\n\n< 9000\n",
            vec![comment("waiting"), exchange("00", "9000", None, None)],
        ),
        (
            "> 0020008008 <pin:8>\n< 63C2\n",
            vec![exchange("0020008008 <pin:8>", "63C2", None, None)],
        ),
        (
            "@atr 3B00\n> 00\n< 9000\n@atr 3B01\n",
            vec![
                Event::AnswerToReset(parse_pattern("3B00").unwrap_or_default()),
                exchange("00", "9000", None, None),
                Event::AnswerToReset(parse_pattern("3B01").unwrap_or_default()),
            ],
        ),
    ];
    for (body, events) in cases {
        let trace = parse_ok(&with_header(body));
        assert_eq!(trace.events, events, "{body:?}");
    }
}

#[test]
fn header_table() {
    let header = |edit: fn(&mut Header)| {
        let mut header = Header {
            version: 1,
            ..Header::default()
        };
        edit(&mut header);
        header
    };
    let cases: Vec<(&str, Header)> = vec![
        ("telepay-trace 1\n", header(|_| {})),
        ("telepay-trace 1", header(|_| {})),
        ("telepay-trace 1  \r\n", header(|_| {})),
        (
            "telepay-trace 1\n@reader pcsc:Gemalto PC Twin Reader 00 00\n",
            header(|h| {
                h.reader = Some("pcsc:Gemalto PC Twin Reader 00 00".into());
            }),
        ),
        (
            "telepay-trace 1\n@reader \t sim:  \n",
            header(|h| h.reader = Some("sim:".into())),
        ),
        (
            "telepay-trace 1\n@protocol T=1\n@profile cb\n@date 2026-11-25T17:00:00Z\n",
            header(|h| {
                h.protocol = Some("T=1".into());
                h.profile = Some("cb".into());
                h.date = Some("2026-11-25T17:00:00Z".into());
            }),
        ),
        (
            "telepay-trace 1\n@secrets masked\n",
            header(|h| h.secrets = Secrets::Masked),
        ),
        (
            "telepay-trace 1\n@secrets recorded\n",
            header(|h| h.secrets = Secrets::Recorded),
        ),
        (
            "telepay-trace 1\n@tool telepay 0.1\n@imported-from apdu.log\n@tool again\n",
            header(|h| {
                h.extra = vec![
                    ("tool".into(), "telepay 0.1".into()),
                    ("imported-from".into(), "apdu.log".into()),
                    ("tool".into(), "again".into()),
                ];
            }),
        ),
        (
            // Header lines may follow comments and ATRs, up to the first exchange.
            "telepay-trace 1\n# c\n@atr 3B00\n\n@reader sim:\n> 00\n< 9000\n",
            header(|h| h.reader = Some("sim:".into())),
        ),
    ];
    for (text, expected) in cases {
        let reader = Reader::new(text.as_bytes(), "t.trace")
            .unwrap_or_else(|error| panic!("{text:?}: {error}"));
        assert_eq!(reader.header(), &expected, "{text:?}");
    }
}

#[test]
fn events_read_ahead_with_the_header_come_first_with_their_lines() {
    let text = "telepay-trace 1\n# c\n@atr 3B00\n@reader sim:\n\n> 00\n< 9000\n# end\n";
    let mut reader = Reader::new(text.as_bytes(), "t.trace").unwrap_or_else(|e| panic!("{e}"));
    let mut seen = Vec::new();
    while let Some(event) = reader.next() {
        let kind = match event.unwrap_or_else(|e| panic!("{e}")) {
            Event::Comment(_) => "comment",
            Event::AnswerToReset(_) => "atr",
            Event::Exchange(_) => "exchange",
        };
        seen.push((kind, reader.line()));
    }
    assert_eq!(
        seen,
        [("comment", 2), ("atr", 3), ("exchange", 6), ("comment", 8)]
    );
    assert!(reader.next().is_none(), "the iterator stays ended");
}

// ---------------------------------------------------------------------------------
// Malformed input: each shape and its exact error
// ---------------------------------------------------------------------------------

#[test]
fn malformed_traces_table() {
    // (what, input, variant, the whole message: origin, line, column, expected, found)
    let cases: Vec<(&str, &[u8], &str, &str)> = vec![
        (
            "empty file",
            b"",
            "NotATrace",
            "t.trace:1:1: not a telepay trace: expected `telepay-trace 1` on line 1, found end of file",
        ),
        (
            "other text",
            b"hello\n",
            "NotATrace",
            "t.trace:1:1: not a telepay trace: expected `telepay-trace 1` on line 1, found `hello`",
        ),
        (
            "version 0",
            b"telepay-trace 0\n",
            "NotATrace",
            "t.trace:1:1: not a telepay trace: expected `telepay-trace 1` on line 1, found `telepay-trace 0`",
        ),
        (
            "leading zero",
            b"telepay-trace 01\n",
            "NotATrace",
            "t.trace:1:1: not a telepay trace: expected `telepay-trace 1` on line 1, found `telepay-trace 01`",
        ),
        (
            "byte order mark",
            "\u{FEFF}telepay-trace 1\n".as_bytes(),
            "NotATrace",
            "t.trace:1:1: not a telepay trace: expected `telepay-trace 1` on line 1, found `\\u{feff}telepay-trace 1`",
        ),
        (
            "binary file",
            b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR",
            "NotATrace",
            "t.trace:1:1: not a telepay trace: expected `telepay-trace 1` on line 1, found `\u{FFFD}PNG`",
        ),
        (
            "a later version",
            b"telepay-trace 2\n",
            "UnsupportedVersion",
            "t.trace:1:15: unsupported trace version 2: this build reads version 1",
        ),
        (
            "a version beyond u32",
            b"telepay-trace 99999999999\n",
            "UnsupportedVersion",
            "t.trace:1:15: unsupported trace version 99999999999: this build reads version 1",
        ),
        (
            "truncated after a command",
            b"telepay-trace 1\n\n> 00A4040000\n",
            "Truncated",
            "t.trace:3: truncated: the file ends where the `<` response of the `>` command was expected",
        ),
        (
            "truncated after a command and a comment",
            b"telepay-trace 1\n> 00\n< 9000\n> 00A4040000\n# wait\n",
            "Truncated",
            "t.trace:4: truncated: the file ends where the `<` response of the `>` command was expected",
        ),
        (
            "odd hex digits",
            b"telepay-trace 1\n\n> 00A40400 07 A000000042101\n",
            "Syntax",
            "t.trace:3:15: expected pairs of hex digits, found odd number of hex digits in `A000000042101`",
        ),
        (
            "response without command",
            b"telepay-trace 1\n\n< 9000\n",
            "ResponseWithoutCommand",
            "t.trace:3: response without command: a `<` line must follow a `>` line",
        ),
        (
            "two responses",
            b"telepay-trace 1\n> 00\n< 9000\n< 9000\n",
            "ResponseWithoutCommand",
            "t.trace:4: response without command: a `<` line must follow a `>` line",
        ),
        (
            "command followed by a command",
            b"telepay-trace 1\n> 00\n< 9000\n> 01\n> 02\n< 9000\n",
            "CommandWithoutResponse",
            "t.trace:4: command without response: expected a `<` line after this `>`",
        ),
        (
            "command followed by an ATR",
            b"telepay-trace 1\n> 01\n@atr 3B00\n< 9000\n",
            "CommandWithoutResponse",
            "t.trace:2: command without response: expected a `<` line after this `>`",
        ),
        (
            "header after exchange",
            b"telepay-trace 1\n> 00\n< 9000\n@reader sim:\n",
            "HeaderAfterExchange",
            "t.trace:4: header line `@reader` after the first exchange",
        ),
        (
            "extra header after exchange",
            b"telepay-trace 1\n> 00\n< 9000\n@tool x\n",
            "HeaderAfterExchange",
            "t.trace:4: header line `@tool` after the first exchange",
        ),
        (
            "header between command and response",
            b"telepay-trace 1\n> 00\n@secrets masked\n< 9000\n",
            "HeaderAfterExchange",
            "t.trace:3: header line `@secrets` after the first exchange",
        ),
        (
            "duplicate header",
            b"telepay-trace 1\n@reader a\n# c\n@reader b\n",
            "DuplicateHeader",
            "t.trace:4: header line `@reader` given twice (first on line 2)",
        ),
        (
            "invalid UTF-8",
            b"telepay-trace 1\n# caf\xC3\n",
            "InvalidUtf8",
            "t.trace:2:6: invalid UTF-8 (binary data?) at byte column 6",
        ),
        (
            "binary garbage after the version line",
            b"telepay-trace 1\n> 00\n\xFF\xFE\x00\x01garbage",
            "InvalidUtf8",
            "t.trace:3:1: invalid UTF-8 (binary data?) at byte column 1",
        ),
        (
            "control character in a comment",
            b"telepay-trace 1\n# a\x01b\n",
            "Syntax",
            "t.trace:2:4: expected printable text (no control character but tab), found `\\u{1}b`",
        ),
        (
            "columns count characters",
            "telepay-trace 1\n# éé\u{7}\n".as_bytes(),
            "Syntax",
            "t.trace:2:5: expected printable text (no control character but tab), found `\\u{7}`",
        ),
        (
            "a line of something else",
            b"telepay-trace 1\nhello\n",
            "Syntax",
            "t.trace:2:1: expected `>`, `<`, `@`, `#` or a blank line, found `hello`",
        ),
        (
            "NUL bytes",
            b"telepay-trace 1\n\0\0\0\0",
            "Syntax",
            "t.trace:2:1: expected `>`, `<`, `@`, `#` or a blank line, found `\\0\\0\\0\\0`",
        ),
        (
            "empty command",
            b"telepay-trace 1\n>  \n",
            "Syntax",
            "t.trace:2:4: expected at least one byte (hex digits, `??` or `<name:N>`), found end of line",
        ),
        (
            "response of one byte",
            b"telepay-trace 1\n> 00\n< 90  @1ms\n",
            "Syntax",
            "t.trace:3:3: expected at least the two status bytes (a response needs SW1 SW2), found 1 byte",
        ),
        (
            "response of no byte",
            b"telepay-trace 1\n> 00\n<  # nothing\n",
            "Syntax",
            "t.trace:3:4: expected at least the two status bytes (a response needs SW1 SW2), found no byte",
        ),
        (
            "empty ATR",
            b"telepay-trace 1\n@atr \n",
            "Syntax",
            "t.trace:2:6: expected at least one byte (hex digits, `??` or `<name:N>`), found end of line",
        ),
        (
            "duration without unit",
            b"telepay-trace 1\n> 00\n< 9000 @134\n",
            "Syntax",
            "t.trace:3:8: expected a duration: a decimal number and `ns`, `us`, `ms` or `s` (e.g. `@134us`, `@1.5ms`), found `@134`",
        ),
        (
            "duration with an unknown unit",
            b"telepay-trace 1\n> 00\n< 9000 @5min\n",
            "Syntax",
            "t.trace:3:8: expected a duration: a decimal number and `ns`, `us`, `ms` or `s` (e.g. `@134us`, `@1.5ms`), found `@5min`",
        ),
        (
            "duration finer than a nanosecond",
            b"telepay-trace 1\n> 00\n< 9000 @1.0000000001s\n",
            "Syntax",
            "t.trace:3:8: expected a duration of at most 18446744073709551615.999999999s with nanosecond precision, found `@1.0000000001s`",
        ),
        (
            "duration beyond Duration::MAX",
            b"telepay-trace 1\n> 00\n< 9000 @18446744073709551616s\n",
            "Syntax",
            "t.trace:3:8: expected a duration of at most 18446744073709551615.999999999s with nanosecond precision, found `@18446744073709551616s`",
        ),
        (
            "something after the duration",
            b"telepay-trace 1\n> 00\n< 9000 @5us junk\n",
            "Syntax",
            "t.trace:3:13: expected `# note` or end of line, found `junk`",
        ),
        (
            "duration glued to the pattern",
            b"telepay-trace 1\n> 00\n< 9000@5us\n",
            "Syntax",
            "t.trace:3:7: expected hex digits, `??` or `<name:N>`, found `@5us`",
        ),
        (
            "note on a command",
            b"telepay-trace 1\n> 00 # select\n",
            "Syntax",
            "t.trace:2:6: expected hex digits, `??` or `<name:N>`, found `# select`",
        ),
        (
            "bad header key",
            b"telepay-trace 1\n@Reader x\n",
            "Syntax",
            "t.trace:2:2: expected a header key (a-z, 0-9, `_`, `-`), found `Reader x`",
        ),
        (
            "header key without value",
            b"telepay-trace 1\n@reader\n",
            "Syntax",
            "t.trace:2:8: expected a space then the value, found end of line",
        ),
        (
            "header key with only spaces",
            b"telepay-trace 1\n@reader   \n",
            "Syntax",
            "t.trace:2:11: expected a value after the key, found end of line",
        ),
        (
            "bad @secrets",
            b"telepay-trace 1\n@secrets maybe\n",
            "Syntax",
            "t.trace:2:10: expected `masked` or `recorded`, found `maybe`",
        ),
        (
            "a carriage return alone",
            b"telepay-trace 1\n> 00\r01\n",
            "Syntax",
            "t.trace:2:5: expected hex digits, `??` or `<name:N>`, found `\\r01`",
        ),
    ];
    for (what, input, expected_variant, message) in cases {
        let error = match Reader::new(input, "t.trace") {
            Err(error) => error,
            Ok(reader) => match reader.collect::<Result<Vec<_>, _>>() {
                Err(error) => error,
                Ok(events) => panic!("{what}: parsed as {events:?}"),
            },
        };
        assert_eq!(
            (variant(&error), error.to_string().as_str()),
            (expected_variant, message),
            "{what}"
        );
    }
}

#[test]
fn the_error_fields_hold_the_position_and_what_was_expected() {
    match parse_err(&with_header("> 00A40400 07 A000000042101\n")) {
        TraceError::Syntax {
            origin,
            line,
            column,
            expected,
            found,
        } => {
            assert_eq!(origin, "t.trace");
            assert_eq!((line, column), (3, 15));
            assert_eq!(expected, "pairs of hex digits");
            assert_eq!(found, "odd number of hex digits in `A000000042101`");
        }
        other => panic!("{other:?}"),
    }
    match parse_err("telepay-trace 7\n") {
        TraceError::UnsupportedVersion {
            found, supported, ..
        } => assert_eq!((found.as_str(), supported), ("7", FORMAT_VERSION)),
        other => panic!("{other:?}"),
    }
    match parse_err(&with_header("> 00\n")) {
        TraceError::Truncated { line, expected, .. } => {
            assert_eq!(line, 3);
            assert_eq!(expected, "the `<` response of the `>` command");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn header_lines_must_come_within_the_read_ahead_limit() {
    // 5 MB of comments, then a header line: past MAX_HEADER_LEN the reader has stopped
    // looking for header lines (its memory stays bounded), and says so.
    let comment = format!("# {}\n", "c".repeat(998));
    let count = (format::MAX_HEADER_LEN / comment.len()) + 1_000;
    let mut text = String::from("telepay-trace 1\n");
    for _ in 0..count {
        text.push_str(&comment);
    }
    text.push_str("@tool late\n> 00\n< 9000\n");
    let reader = Reader::new(text.as_bytes(), "t.trace").unwrap_or_else(|e| panic!("{e}"));
    let error = reader.filter_map(Result::err).next();
    let expected_line = count + 2;
    match error {
        Some(TraceError::HeaderTooLong {
            line, key, limit, ..
        }) => assert_eq!(
            (line, key.as_str(), limit),
            (expected_line, "tool", format::MAX_HEADER_LEN)
        ),
        other => panic!("{other:?}"),
    }
    // The same comments without the late header line read to the end.
    let without = text.replace("@tool late\n", "");
    let trace = parse_ok(&without);
    assert_eq!(trace.events.len(), count + 1);
}

#[test]
fn the_iterator_stops_after_the_first_error() {
    let text = with_header("> 00\n< 9000\n# one\n< 9000\n# never reached\n");
    let mut reader = Reader::new(text.as_bytes(), "t.trace").unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(reader.next(), Some(Ok(Event::Exchange(_)))));
    assert!(matches!(reader.next(), Some(Ok(Event::Comment(_)))));
    assert!(matches!(
        reader.next(),
        Some(Err(TraceError::ResponseWithoutCommand { line: 6, .. }))
    ));
    assert!(reader.next().is_none());
}

/// Counts the bytes handed out, to check how far the reader went.
struct Counting<R> {
    inner: R,
    count: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buf)?;
        self.count += read as u64;
        Ok(read)
    }
}

#[test]
fn a_line_over_the_limit_is_refused_without_reading_it_whole() {
    // 50 MB of 'A' without a line break, produced on the fly: never allocated.
    let head = "telepay-trace 1\n\n> 00B2010C00\n< 9000\n";
    let input = head.as_bytes().chain(io::repeat(b'A').take(50 << 20));
    let mut counting = Counting {
        inner: input,
        count: 0,
    };
    {
        let reader = Reader::new(BufReader::new(&mut counting), "long.trace")
            .unwrap_or_else(|e| panic!("{e}"));
        let result = reader.collect::<Result<Vec<_>, _>>();
        match result {
            Err(TraceError::LineTooLong {
                origin,
                line,
                limit,
            }) => assert_eq!(
                (origin.as_str(), line, limit),
                ("long.trace", 5, MAX_LINE_LEN)
            ),
            other => panic!("{other:?}"),
        }
    }
    // The reader stopped within one buffer of the limit: memory bounded by the limit.
    let bound = (head.len() + MAX_LINE_LEN + 2 + 8192) as u64;
    assert!(counting.count <= bound, "read {} bytes", counting.count);
}

#[test]
fn a_2_gb_line_in_the_header_is_refused_early() {
    let input = "telepay-trace 1\n@reader "
        .as_bytes()
        .chain(io::repeat(b'x').take(2 << 30));
    let mut counting = Counting {
        inner: input,
        count: 0,
    };
    match Reader::new(BufReader::new(&mut counting), "huge.trace") {
        Err(TraceError::LineTooLong { line, limit, .. }) => {
            assert_eq!((line, limit), (2, MAX_LINE_LEN))
        }
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("a 2 GB line was accepted"),
    }
    assert!(
        counting.count < 2 * MAX_LINE_LEN as u64,
        "read {} bytes",
        counting.count
    );
}

#[test]
fn a_long_binary_first_line_is_not_a_trace() {
    let input = io::repeat(0xFF).take(1 << 30);
    match Reader::new(BufReader::new(input), "blob.bin") {
        Err(TraceError::NotATrace { found, .. }) => {
            assert!(found.starts_with("`\u{FFFD}"), "{found}")
        }
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("accepted"),
    }
}

#[test]
fn the_longest_legal_line_fits() {
    // An extended command APDU of 65,544 bytes, one byte per token: 196,632 characters.
    let command = vec!["A5"; MAX_PATTERN_LEN].join(" ");
    let text = format!("telepay-trace 1\n@secrets masked\n\n> {command}\n< 9000\n");
    let trace = parse_ok(&text);
    let Some(Event::Exchange(exchange)) = trace.events.first() else {
        panic!("an exchange")
    };
    assert_eq!(exchange.command.len(), MAX_PATTERN_LEN);
    assert!(
        to_string(&trace) == text,
        "the longest line is written back as read"
    );
}

/// A reader that fails after some bytes.
struct Failing<'a>(&'a [u8]);

impl Read for Failing<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.0.is_empty() {
            return Err(io::Error::new(io::ErrorKind::ConnectionReset, "link lost"));
        }
        let read = self.0.read(buf)?;
        Ok(read)
    }
}

#[test]
fn read_errors_name_the_origin() {
    let reader = Reader::new(
        BufReader::new(Failing(b"telepay-trace 1\n\n> 00\n")),
        "serial.trace",
    );
    let error = match reader {
        Ok(reader) => reader.filter_map(Result::err).next(),
        Err(error) => Some(error),
    };
    match error {
        Some(TraceError::Io { origin, source }) => {
            assert_eq!(origin, "serial.trace");
            assert_eq!(source.kind(), io::ErrorKind::ConnectionReset);
        }
        other => panic!("{other:?}"),
    }
    match format::read_file(std::path::Path::new("/nonexistent/x.trace")) {
        Err(TraceError::Io { origin, source }) => {
            assert_eq!(origin, "/nonexistent/x.trace");
            assert_eq!(source.kind(), io::ErrorKind::NotFound);
        }
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------------------------
// Fixtures and the canonical form
// ---------------------------------------------------------------------------------

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{FIXTURES}/{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn the_fixture_using_every_feature_round_trips_exactly() {
    let path = std::path::PathBuf::from(format!("{FIXTURES}/every-feature.trace"));
    let trace = format::read_file(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(to_string(&trace), fixture("every-feature.trace"));

    let header = &trace.header;
    assert_eq!(header.version, 1);
    assert_eq!(header.reader.as_deref(), Some("sim:cb?seed=1"));
    assert_eq!(header.protocol.as_deref(), Some("T=0"));
    assert_eq!(header.secrets, Secrets::Masked);
    assert_eq!(header.extra.len(), 2);
    let exchanges: Vec<&Exchange> = trace.exchanges().collect();
    assert_eq!(exchanges.len(), 10);
    assert_eq!(
        trace
            .events
            .iter()
            .filter(|e| matches!(e, Event::AnswerToReset(_)))
            .count(),
        2
    );
    assert_eq!(
        trace.first_atr().and_then(Pattern::to_bytes),
        Some(hex("3B6800000073C84013009000"))
    );
    // SELECT answered 6112 (T=0: 0x12 bytes waiting), fetched by GET RESPONSE.
    assert_eq!(exchanges[0].response.to_bytes(), Some(hex("6112")));
    assert_eq!(exchanges[1].command.to_bytes(), Some(hex("00C0000012")));
    assert_eq!(exchanges[1].elapsed, Some(Duration::from_micros(1500)));
    // The redacted PIN block and the wildcard ATC.
    assert_eq!(
        exchanges[6].command.segments.last(),
        Some(&redacted("pin-block", 8))
    );
    assert_eq!(
        exchanges[6].note.as_deref(),
        Some("wrong PIN, 2 tries left")
    );
    assert!(exchanges[5].response.matches(&hex("9F3602002A9000")));
    // The last GENERATE AC line: a duration exact to the nanosecond, an empty note.
    assert_eq!(exchanges[8].elapsed, Some(Duration::from_nanos(41_000_001)));
    assert_eq!(exchanges[8].note.as_deref(), Some(""));
    assert_eq!(exchanges[8].command.len(), 5 + 0x1D + 1);
    assert_eq!(exchanges[8].response.len(), 2 + 0x1E + 2);
}

#[test]
fn a_loosely_written_trace_reads_as_its_canonical_form() {
    let trace = parse_ok(&fixture("hand-written.trace"));
    assert_eq!(to_string(&trace), fixture("hand-written.canonical.trace"));
    // The canonical text is itself canonical, and means the same.
    let again = parse_ok(&fixture("hand-written.canonical.trace"));
    assert_eq!(again, trace);
}

#[test]
fn the_writer_streams_what_to_string_writes() {
    let trace = parse_ok(&fixture("every-feature.trace"));
    let mut writer = Writer::new(Vec::new(), &trace.header).unwrap_or_else(|e| panic!("{e}"));
    for event in &trace.events {
        writer.write_event(event).unwrap_or_else(|e| panic!("{e}"));
    }
    writer.flush().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        String::from_utf8(writer.into_inner()).ok(),
        Some(to_string(&trace))
    );
    let mut out = Vec::new();
    format::write(&trace, &mut out).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(String::from_utf8(out).ok(), Some(to_string(&trace)));
}

#[test]
fn canonical_form_of_a_minimal_trace() {
    assert_eq!(
        to_string(&Trace::default()),
        "telepay-trace 1\n@secrets masked\n\n"
    );
}

#[test]
fn values_the_format_cannot_hold_are_refused_by_the_writer() {
    let exchange = |command: Pattern, response: Pattern, note: Option<&str>| {
        Event::Exchange(Exchange {
            command,
            response,
            elapsed: None,
            note: note.map(str::to_owned),
        })
    };
    let ok = Pattern::exact(hex("9000"));
    // (event, field, expected, found)
    let cases: Vec<(Event, &str, &str, &str)> = vec![
        (
            Event::Comment("two\nlines".into()),
            "event 1 (comment)",
            "printable text (no control character but tab)",
            "`\\nlines`",
        ),
        (
            exchange(Pattern::default(), ok.clone(), None),
            "event 1 (exchange): command",
            "at least one byte",
            "0 bytes",
        ),
        (
            exchange(ok.clone(), Pattern::exact(vec![0x90]), None),
            "event 1 (exchange): response",
            "at least the two status bytes",
            "1 byte",
        ),
        (
            exchange(
                pattern(vec![Segment::Any(0), bytes("00")]),
                ok.clone(),
                None,
            ),
            "event 1 (exchange): command",
            "segments of at least one byte",
            "an empty segment",
        ),
        (
            exchange(pattern(vec![redacted("PIN", 8)]), ok.clone(), None),
            "event 1 (exchange): command",
            "a redaction name of a-z, 0-9, `_`, `-`",
            "`PIN`",
        ),
        (
            exchange(
                pattern(vec![Segment::Any(MAX_PATTERN_LEN + 1)]),
                ok.clone(),
                None,
            ),
            "event 1 (exchange): command",
            "at most 65544 bytes",
            "65545 bytes",
        ),
        (
            exchange(ok.clone(), ok.clone(), Some("a\rb")),
            "event 1 (exchange): note",
            "printable text (no control character but tab)",
            "`\\rb`",
        ),
        (
            Event::AnswerToReset(Pattern::default()),
            "event 1 (@atr)",
            "at least one byte",
            "0 bytes",
        ),
    ];
    for (event, field, expected, found) in cases {
        let mut writer =
            Writer::new(Vec::new(), &Header::default()).unwrap_or_else(|e| panic!("{e}"));
        let error = match writer.write_event(&event) {
            Err(error) => error,
            Ok(()) => panic!("{event:?} written"),
        };
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        match error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<TraceError>())
        {
            Some(TraceError::Unwritable {
                field: got_field,
                expected: got_expected,
                found: got_found,
            }) => assert_eq!(
                (
                    got_field.as_str(),
                    got_expected.as_str(),
                    got_found.as_str()
                ),
                (field, expected, found),
                "{event:?}"
            ),
            other => panic!("{event:?}: {other:?}"),
        }
        // Nothing of the refused event was written.
        assert_eq!(writer.into_inner(), b"telepay-trace 1\n@secrets masked\n\n");
    }
}

#[test]
fn header_values_the_format_cannot_hold_are_refused() {
    let cases: Vec<(Header, &str)> = vec![
        (
            Header {
                reader: Some(" sim:".into()),
                ..Header::default()
            },
            "cannot write header line @reader: expected a value, without leading or trailing spaces, found ` sim:`",
        ),
        (
            Header {
                date: Some(String::new()),
                ..Header::default()
            },
            "cannot write header line @date: expected a value, without leading or trailing spaces, found end of line",
        ),
        (
            Header {
                extra: vec![("reader".into(), "x".into())],
                ..Header::default()
            },
            "cannot write header line @reader: expected a key of a-z, 0-9, `_`, `-` other than reader, protocol, profile, date, secrets, atr, found `reader`",
        ),
        (
            Header {
                extra: vec![("my key".into(), "x".into())],
                ..Header::default()
            },
            "cannot write header line @my key: expected a key of a-z, 0-9, `_`, `-` other than reader, protocol, profile, date, secrets, atr, found `my key`",
        ),
        (
            Header {
                profile: Some("cb\n> 00".into()),
                ..Header::default()
            },
            "cannot write header line @profile: expected printable text (no control character but tab), found `\\n> 00`",
        ),
    ];
    for (header, message) in cases {
        let error = match Writer::new(Vec::new(), &header) {
            Err(error) => error,
            Ok(_) => panic!("{header:?} written"),
        };
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(error.to_string(), message);
        // to_string keeps the text readable: the refused line becomes a comment.
        let trace = Trace {
            header,
            events: vec![],
        };
        let text = to_string(&trace);
        assert!(
            text.contains(&format!("# not written: {message}\n")),
            "{text}"
        );
        assert!(parse_str(&text, "t").is_ok(), "{text}");
    }
}

// ---------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------

fn segment() -> impl Strategy<Value = Segment> {
    prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 1..12).prop_map(Segment::Bytes),
        1 => (1usize..9).prop_map(Segment::Any),
        1 => ("[a-z0-9_-]{1,10}", 1usize..300).prop_map(|(name, len)| Segment::Redacted { name, len }),
    ]
}

fn any_pattern(min_len: usize) -> impl Strategy<Value = Pattern> {
    proptest::collection::vec(segment(), 1..6).prop_map(move |mut segments| {
        if min_len >= 2 {
            // Every response ends with its status word.
            segments.push(Segment::Bytes(vec![0x90, 0x00]));
        }
        Pattern { segments }
    })
}

/// Printable text without leading or trailing blanks (header values).
fn value() -> impl Strategy<Value = String> {
    "[!-~é€✓]([ -~\té€✓]{0,20}[!-~é€✓])?"
}

/// Free text: comments and notes, any printable characters and tabs.
fn text() -> impl Strategy<Value = String> {
    "[ -~\té€✓]{0,30}"
}

fn any_duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        (0u64..5, 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
        (0u64..2_000_000).prop_map(Duration::from_micros),
        (any::<u64>(), 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
    ]
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        text().prop_map(Event::Comment),
        any_pattern(1).prop_map(Event::AnswerToReset),
        (
            any_pattern(1),
            any_pattern(2),
            proptest::option::of(any_duration()),
            proptest::option::of(text())
        )
            .prop_map(
                |(command, response, elapsed, note)| Event::Exchange(Exchange {
                    command,
                    response,
                    elapsed,
                    note,
                })
            ),
    ]
}

fn valid_trace() -> impl Strategy<Value = Trace> {
    let key = "[a-z0-9_-]{1,12}".prop_filter("not a reserved key", |key| {
        !["reader", "protocol", "profile", "date", "secrets", "atr"].contains(&key.as_str())
    });
    (
        proptest::option::of(value()),
        proptest::option::of(value()),
        proptest::option::of(value()),
        proptest::option::of(value()),
        prop_oneof![Just(Secrets::Masked), Just(Secrets::Recorded)],
        proptest::collection::vec((key, value()), 0..4),
        proptest::collection::vec(event(), 0..20),
    )
        .prop_map(
            |(reader, protocol, profile, date, secrets, extra, events)| Trace {
                header: Header {
                    version: FORMAT_VERSION,
                    reader,
                    protocol,
                    profile,
                    date,
                    secrets,
                    extra,
                },
                events,
            },
        )
}

/// Lines built from the format's own pieces, valid or not, to reach deep paths.
fn trace_like_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("> ".to_owned()),
        Just("< ".to_owned()),
        Just("@atr ".to_owned()),
        Just("@reader ".to_owned()),
        Just("# ".to_owned()),
        Just("\n".to_owned()),
        Just("\r\n".to_owned()),
        Just("9000".to_owned()),
        Just("??".to_owned()),
        Just("?".to_owned()),
        Just("<pin:8>".to_owned()),
        Just("<".to_owned()),
        Just(" @1.5ms".to_owned()),
        Just(" @".to_owned()),
        "[0-9A-Fa-f]{1,5}",
        "[ -~]{0,4}",
        "\\PC{0,3}",
    ];
    proptest::collection::vec(piece, 0..40)
        .prop_map(|pieces| format!("telepay-trace 1\n{}", pieces.concat()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn writing_then_parsing_gives_the_same_trace(trace in valid_trace()) {
        let text = to_string(&trace);
        let parsed = parse_str(&text, "prop.trace");
        prop_assert!(parsed.is_ok(), "{text}\n{parsed:?}");
        let parsed = parsed.unwrap_or_default();
        prop_assert_eq!(&parsed, &trace);
        // What the writer produces is canonical: written again, the same text.
        prop_assert_eq!(to_string(&parsed), text);
    }

    #[test]
    fn reading_into_one_reused_event_gives_the_same_events(trace in valid_trace()) {
        // Buffers move between event kinds and segment kinds; the values must not.
        let text = to_string(&trace);
        let mut reader = Reader::new(text.as_bytes(), "prop.trace")
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut event = Event::Comment("stale".repeat(20));
        let mut events = Vec::new();
        while reader.read_event(&mut event).map_err(|e| TestCaseError::fail(e.to_string()))? {
            events.push(event.clone());
        }
        prop_assert_eq!(events, trace.events);
    }

    #[test]
    fn reading_into_a_reused_event_agrees_with_the_iterator(text in trace_like_text()) {
        let outcome = |text: &str, reuse: bool| -> Vec<Result<Event, String>> {
            let mut reader = match Reader::new(text.as_bytes(), "prop.trace") {
                Ok(reader) => reader,
                Err(error) => return vec![Err(error.to_string())],
            };
            if !reuse {
                return reader.map(|result| result.map_err(|e| e.to_string())).collect();
            }
            let mut out = Vec::new();
            let mut event = Event::AnswerToReset(Pattern::exact(vec![0x3B; 40]));
            loop {
                match reader.read_event(&mut event) {
                    Ok(true) => out.push(Ok(event.clone())),
                    Ok(false) => return out,
                    Err(error) => {
                        out.push(Err(error.to_string()));
                        return out;
                    }
                }
            }
        };
        prop_assert_eq!(outcome(&text, true), outcome(&text, false));
    }

    #[test]
    fn patterns_round_trip(pattern in any_pattern(1)) {
        let text = format_pattern(&pattern);
        prop_assert_eq!(parse_pattern(&text).ok(), Some(pattern));
    }

    #[test]
    fn any_trace_written_with_to_string_reads_back(
        events in proptest::collection::vec(
            prop_oneof![
                "\\PC*".prop_map(Event::Comment),
                ".*".prop_map(Event::Comment),
                proptest::collection::vec(
                    prop_oneof![
                        proptest::collection::vec(any::<u8>(), 0..4).prop_map(Segment::Bytes),
                        (0usize..3).prop_map(Segment::Any),
                        (".{0,4}", 0usize..3).prop_map(|(name, len)| Segment::Redacted { name, len }),
                    ],
                    0..3,
                )
                .prop_map(|segments| Event::AnswerToReset(Pattern { segments })),
            ],
            0..8,
        ),
        reader in proptest::option::of(".*"),
    ) {
        // Even for values the format cannot hold, to_string's text reads back (the
        // refused parts become comments).
        let trace = Trace { header: Header { reader, ..Header::default() }, events };
        let text = to_string(&trace);
        let parsed = parse_str(&text, "prop.trace");
        prop_assert!(parsed.is_ok(), "{text}\n{parsed:?}");
    }

    #[test]
    fn parsing_arbitrary_text_never_panics(text in "\\PC*") {
        let _ = parse_str(&text, "prop.trace");
        let _ = parse_pattern(&text);
    }

    #[test]
    fn parsing_trace_like_text_never_panics(text in trace_like_text()) {
        if let Ok(trace) = parse_str(&text, "prop.trace") {
            // Whatever it accepts, it writes and reads back the same.
            prop_assert_eq!(parse_str(&to_string(&trace), "again").ok(), Some(trace));
        }
    }

    #[test]
    fn the_reader_never_panics_on_arbitrary_bytes(
        bytes in proptest::collection::vec(any::<u8>(), 0..400),
        with_version_line in any::<bool>(),
    ) {
        let mut input = if with_version_line { b"telepay-trace 1\n".to_vec() } else { Vec::new() };
        input.extend_from_slice(&bytes);
        if let Ok(reader) = Reader::new(&input[..], "prop.bin") {
            for event in reader {
                if event.is_err() {
                    break;
                }
            }
        }
    }

    #[test]
    fn the_reader_stops_after_its_first_error(text in trace_like_text()) {
        if let Ok(reader) = Reader::new(text.as_bytes(), "prop.trace") {
            let results: Vec<_> = reader.collect();
            let errors = results.iter().filter(|result| result.is_err()).count();
            prop_assert!(errors <= 1);
            if errors == 1 {
                prop_assert!(results.last().is_some_and(Result::is_err));
            }
        }
    }

    #[test]
    fn errors_point_inside_the_text(text in trace_like_text()) {
        if let Err(TraceError::Syntax { line, column, .. }) = parse_str(&text, "prop.trace") {
            let line_text = text.split('\n').nth(line - 1).unwrap_or_default();
            prop_assert!(
                column >= 1 && column <= line_text.chars().count() + 1,
                "{line}:{column} in {line_text:?}"
            );
        }
    }
}

#[test]
fn reading_stream_and_string_agree() {
    // The reader over a tiny buffer (lines cross buffer boundaries) reads the same.
    let text = fixture("every-feature.trace");
    let reader = Reader::new(BufReader::with_capacity(7, text.as_bytes()), "small")
        .unwrap_or_else(|e| panic!("{e}"));
    let header = reader.header().clone();
    let events: Vec<Event> = reader
        .map(|e| e.unwrap_or_else(|e| panic!("{e}")))
        .collect();
    assert_eq!(Trace { header, events }, parse_ok(&text));
}

#[allow(dead_code)]
fn assert_reader_is_generic_over_bufread<R: BufRead>(reader: Reader<R>) -> usize {
    reader.line()
}
