//! Fuzz target `trace_format`: the `.trace` reader and writer
//! (`telepay::trace::format`, specified in `docs/trace-format.md`).
//!
//! The input is read as a trace four ways — [`Reader`] over the slice itself (the whole
//! input in one buffer fill), over a `BufReader` of capacity 1 (every line straddles
//! fills), over a `BufReader` whose capacity depends on the input length (windows that
//! end inside lines, so the in-place fast path gives up and the general path takes
//! over), and [`parse_str`] — and checked:
//!
//! - nothing panics, and the four agree: the same header, the same events on the same
//!   lines ([`Reader::line`]), the same error;
//! - [`Reader::read_event`] into one reused [`Event`] yields exactly what the
//!   [`Iterator`] yields, error included, and nothing after an error or the end;
//! - every error names the origin and has a line, `1 ≤ line ≤ lines + 1` (§9); a
//!   `Syntax` column is at most the line's characters + 1, an `InvalidUtf8` column at
//!   most its bytes (§1: columns in characters, in bytes for binary data);
//! - every event's line is between 1 and the number of lines;
//! - on success the trace is writable (§8): [`write`] succeeds and gives the text of
//!   [`to_string`]; that text parses back to an equal [`Trace`], and writing that again
//!   gives the same text (the canonical form is a fixed point).
//!
//! An input that is not UTF-8 is also run through [`parse_str`] after a lossy
//! conversion (U+FFFD for each bad sequence), with the same properties, so the
//! text-level parser sees every input shape.
#![no_main]

use std::io::{BufRead, BufReader};

use libfuzzer_sys::fuzz_target;
use telepay::trace::format::{Reader, TraceError, parse_str, to_string, write};
use telepay::trace::{Event, Header, Trace};

/// The origin every error must name.
const ORIGIN: &str = "fuzz.trace";

fuzz_target!(|input: &[u8]| check(input));

fn check(input: &[u8]) {
    let lines = line_count(input);
    let whole = read_iterating(input, lines);
    check_error(input, whole.error.as_ref(), lines);

    let byte_by_byte = read_iterating(BufReader::with_capacity(1, input), lines);
    assert_eq!(byte_by_byte, whole, "a 1-byte buffer reads differently");
    // Capacities 2..=33, so buffer ends fall at varied places inside lines.
    let capacity = input.len() % 32 + 2;
    let windows = read_iterating(BufReader::with_capacity(capacity, input), lines);
    assert_eq!(windows, whole, "a {capacity}-byte buffer reads differently");
    let reused = read_reusing(input, lines);
    assert_eq!(reused, whole, "read_event and the iterator differ");

    match std::str::from_utf8(input) {
        Ok(text) => {
            let parsed = parse_str(text, ORIGIN);
            assert_eq!(
                summary(&parsed),
                whole.summary(),
                "parse_str and the reader differ"
            );
            if let Ok(trace) = parsed {
                check_round_trip(&trace);
            }
        }
        Err(_) => {
            let lossy = String::from_utf8_lossy(input);
            let parsed = parse_str(&lossy, ORIGIN);
            match parsed {
                Ok(trace) => check_round_trip(&trace),
                Err(error) => check_error(
                    lossy.as_bytes(),
                    Some(&Failure::new(&error)),
                    line_count(lossy.as_bytes()),
                ),
            }
        }
    }
}

/// What one way of reading produced: comparable across the ways.
#[derive(Debug, PartialEq)]
struct Outcome {
    /// The header, when [`Reader::new`] succeeded.
    header: Option<Header>,
    /// The events read before the end or the error, each with [`Reader::line`].
    events: Vec<(usize, Event)>,
    /// The error that ended reading, as displayed, with its line.
    error: Option<Failure>,
}

/// An error, comparable ([`TraceError`] holds an `io::Error`, which is not).
#[derive(Debug, PartialEq)]
struct Failure {
    message: String,
    line: Option<usize>,
    /// Where it points, for [`check_error`].
    position: Position,
}

/// The position fields of an error, for [`check_error`].
#[derive(Debug, PartialEq, Clone, Copy)]
enum Position {
    /// A grammar error at a character column.
    Syntax { line: usize, column: usize },
    /// Binary data at a byte column.
    InvalidUtf8 { line: usize, column: usize },
    /// Any other error.
    Other,
}

impl Failure {
    fn new(error: &TraceError) -> Failure {
        let position = match error {
            TraceError::Syntax { line, column, .. } => Position::Syntax {
                line: *line,
                column: *column,
            },
            TraceError::InvalidUtf8 { line, column, .. } => Position::InvalidUtf8 {
                line: *line,
                column: *column,
            },
            _ => Position::Other,
        };
        Failure {
            message: error.to_string(),
            line: error.line(),
            position,
        }
    }
}

impl Outcome {
    /// What [`parse_str`] returns for this outcome: the whole trace, or the error.
    fn summary(&self) -> Result<Trace, String> {
        match (&self.header, &self.error) {
            (Some(header), None) => Ok(Trace {
                header: header.clone(),
                events: self.events.iter().map(|(_, event)| event.clone()).collect(),
            }),
            (_, Some(error)) => Err(error.message.clone()),
            (None, None) => panic!("a reader neither built nor failed"),
        }
    }
}

/// [`parse_str`]'s result in the form of [`Outcome::summary`].
fn summary(parsed: &Result<Trace, TraceError>) -> Result<Trace, String> {
    parsed
        .as_ref()
        .map(Clone::clone)
        .map_err(ToString::to_string)
}

/// Reads `input` with the reader's [`Iterator`].
fn read_iterating(input: impl BufRead, lines: usize) -> Outcome {
    let mut reader = match Reader::new(input, ORIGIN) {
        Ok(reader) => reader,
        Err(error) => return failed_early(&error),
    };
    let header = Some(reader.header().clone());
    let mut events = Vec::new();
    let mut error = None;
    loop {
        match reader.next() {
            Some(Ok(event)) => {
                check_event_line(reader.line(), lines);
                events.push((reader.line(), event));
            }
            Some(Err(e)) => {
                error = Some(Failure::new(&e));
                break;
            }
            None => break,
        }
    }
    assert!(reader.next().is_none(), "the iterator is not fused");
    Outcome {
        header,
        events,
        error,
    }
}

/// Reads `input` with [`Reader::read_event`] into one reused event.
fn read_reusing(input: &[u8], lines: usize) -> Outcome {
    let mut reader = match Reader::new(input, ORIGIN) {
        Ok(reader) => reader,
        Err(error) => return failed_early(&error),
    };
    let header = Some(reader.header().clone());
    let mut events = Vec::new();
    let mut error = None;
    let mut event = Event::Comment(String::new());
    loop {
        match reader.read_event(&mut event) {
            Ok(true) => {
                check_event_line(reader.line(), lines);
                events.push((reader.line(), event.clone()));
            }
            Ok(false) => break,
            Err(e) => {
                error = Some(Failure::new(&e));
                break;
            }
        }
    }
    assert!(
        matches!(reader.read_event(&mut event), Ok(false)),
        "read_event goes on after the end or an error"
    );
    Outcome {
        header,
        events,
        error,
    }
}

fn failed_early(error: &TraceError) -> Outcome {
    Outcome {
        header: None,
        events: Vec::new(),
        error: Some(Failure::new(error)),
    }
}

fn check_event_line(line: usize, lines: usize) {
    assert!(
        (1..=lines).contains(&line),
        "event on line {line} of a {lines}-line input"
    );
}

/// The lines of `input` as the reader counts them: one per `\n`, plus a last line
/// without a line break when there is one.
fn line_count(input: &[u8]) -> usize {
    let breaks = input.iter().filter(|&&byte| byte == b'\n').count();
    let unterminated = !input.is_empty() && input.last() != Some(&b'\n');
    breaks + usize::from(unterminated)
}

/// Line `number` (from 1) of `input`, without its line break.
fn nth_line(input: &[u8], number: usize) -> &[u8] {
    let line = input
        .split(|&byte| byte == b'\n')
        .nth(number.saturating_sub(1))
        .unwrap_or_default();
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// §9: every error names the origin and a line within the input (or just past its
/// end); columns lie within their line.
fn check_error(input: &[u8], error: Option<&Failure>, lines: usize) {
    let Some(error) = error else { return };
    let message = &error.message;
    assert!(
        message.starts_with(ORIGIN),
        "the error does not name the origin: {message}"
    );
    let Some(line) = error.line else {
        panic!("a reader error without a line: {message}");
    };
    assert!(
        (1..=lines.saturating_add(1)).contains(&line),
        "error on line {line} of a {lines}-line input: {message}"
    );
    match error.position {
        Position::Syntax { line, column } => {
            let text = String::from_utf8_lossy(nth_line(input, line));
            let limit = text.chars().count().saturating_add(1);
            assert!(
                (1..=limit).contains(&column),
                "syntax error at column {column} of a line of {limit} columns: {message}"
            );
        }
        Position::InvalidUtf8 { line, column } => {
            let bytes = nth_line(input, line);
            assert!(
                (1..=bytes.len()).contains(&column),
                "invalid UTF-8 at byte column {column} of a {}-byte line",
                bytes.len()
            );
            let before = bytes.get(..column - 1).unwrap_or_default();
            let from = bytes.get(column - 1..).unwrap_or_default();
            assert!(
                std::str::from_utf8(before).is_ok() && std::str::from_utf8(from).is_err(),
                "the first invalid UTF-8 is not at byte column {column}"
            );
        }
        Position::Other => {}
    }
}

/// §8: a parsed trace is writable, its canonical text reads back equal, and the
/// canonical text is a fixed point.
fn check_round_trip(trace: &Trace) {
    let text = to_string(trace);
    let mut streamed = Vec::new();
    if let Err(e) = write(trace, &mut streamed) {
        panic!("a parsed trace is not writable: {e}\n{trace:?}");
    }
    assert_eq!(
        streamed,
        text.as_bytes(),
        "write and to_string give different text"
    );
    let reparsed = match parse_str(&text, ORIGIN) {
        Ok(reparsed) => reparsed,
        Err(e) => panic!("canonical text does not read back: {e}\n{text}"),
    };
    assert_eq!(
        &reparsed, trace,
        "canonical text reads back different:\n{text}"
    );
    assert_eq!(
        to_string(&reparsed),
        text,
        "the canonical form is not stable"
    );
}
