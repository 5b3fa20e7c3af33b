//! The checks the seven `import_*` fuzz targets share: each target runs them for its
//! format of `telepay::trace::import` (`docs/trace-import.md`), with what that
//! format's log can hold.
//!
//! For an input of arbitrary bytes:
//!
//! - [`text_from_bytes`] accepts exactly the UTF-8 inputs; otherwise its
//!   `InvalidUtf8` names the line, the column (characters before the bad byte, plus
//!   one) and the byte, recomputed here. A non-UTF-8 input is then imported after a
//!   lossy conversion, so every input reaches the importer.
//! - [`detect`] never panics; it declines a telepay trace; [`import_choice`] with
//!   `auto` is [`import`] with the format [`detect`] names, or `NotDetected`.
//! - [`import`] (secrets masked) and [`import_with`] `Secrets::Recorded` never panic and
//!   either both succeed or both fail with the same [`ImportError`]. An error names the
//!   origin and, except `NotDetected` (never returned by them), a line `1 ≤ line ≤
//!   lines + 1`, with a column ≥ 1 where it has one.
//! - On success, for both reports: the header says `@imported-from FORMAT`, `@origin`
//!   and the secrets mode asked for; every command is non-empty, every response has
//!   SW1 SW2 (ISO 7816-4 §5.1: at least 2 bytes), no APDU exceeds [`MAX_APDU_LEN`],
//!   no ATR is empty; the trace writes with `format::write` and
//!   `format::to_string` and parses back equal; `skipped` holds at most
//!   [`MAX_SKIPPED_LINES`] lines (and is full when more were counted), in increasing
//!   line order, each within the input, printable and at most [`SKIPPED_TEXT_LEN`]
//!   characters (plus the `…` that marks a cut).
//! - Masking only hides: the masked and recorded imports have the same events, skipped
//!   lines and header (but `@secrets`); every recorded pattern is exact, and every
//!   masked pattern has its length and matches its bytes.
//! - What the format cannot log is not invented: no `@atr` for formats that log no ATR
//!   (OpenSC, vicc, pyscard), no timing for formats that log none (vicc, Cardpeek,
//!   pyscard), OpenSC timings in whole milliseconds (its clock's resolution).

use telepay::trace::format::{parse_str, to_string, write};
use telepay::trace::import::{
    FormatChoice, ImportError, ImportFormat, ImportOptions, ImportReport, MAX_APDU_LEN,
    MAX_SKIPPED_LINES, SKIPPED_TEXT_LEN, detect, import, import_choice, import_with,
    text_from_bytes,
};
use telepay::trace::{Event, Exchange, Pattern, Secrets, Trace};

/// The origin every error and header must name.
const ORIGIN: &str = "fuzz";

/// What a format's log can hold (`docs/trace-import.md`, per format).
#[derive(Debug, Clone, Copy)]
pub struct Capabilities {
    /// The log shows the ATR.
    pub atr: bool,
    /// The log has timings.
    pub timings: bool,
    /// The finest unit of its timings, in nanoseconds.
    pub resolution_nanos: u32,
}

/// Runs every check for `format` on `input`.
pub fn check(format: ImportFormat, capabilities: Capabilities, input: &[u8]) {
    let lossy;
    let text = match text_from_bytes(input, ORIGIN) {
        Ok(text) => text,
        Err(error) => {
            check_invalid_utf8(input, &error);
            lossy = String::from_utf8_lossy(input);
            &*lossy
        }
    };
    let lines = line_count(text);

    let detected = detect(text);
    if text.trim_start().starts_with("telepay-trace") {
        assert_eq!(detected, None, "a telepay trace detected as a log");
    }

    let masked = import(format, text, ORIGIN);
    let recorded = import_with(
        format,
        text,
        ORIGIN,
        ImportOptions {
            secrets: Secrets::Recorded,
        },
    );
    if detected == Some(format) {
        let auto = import_choice(FormatChoice::Auto, text, ORIGIN, ImportOptions::default());
        assert_eq!(auto, masked, "auto-detection imports differently");
    }
    match (masked, recorded) {
        (Ok(masked), Ok(recorded)) => {
            check_report(format, capabilities, &masked, Secrets::Masked, lines);
            check_report(format, capabilities, &recorded, Secrets::Recorded, lines);
            check_masking(&masked, &recorded);
        }
        (Err(masked), Err(recorded)) => {
            assert_eq!(masked, recorded, "the secrets option changes the error");
            check_error(&masked, lines);
        }
        (masked, recorded) => panic!(
            "the secrets option changes success: masked {:?}, recorded {:?}",
            masked.err(),
            recorded.err()
        ),
    }
}

/// The `InvalidUtf8` of a non-UTF-8 input, recomputed from the bytes.
fn check_invalid_utf8(input: &[u8], error: &ImportError) {
    let Err(utf8) = std::str::from_utf8(input) else {
        panic!("UTF-8 input refused: {error}");
    };
    let valid = input.get(..utf8.valid_up_to()).unwrap_or_default();
    let before = String::from_utf8_lossy(valid);
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .unwrap_or_default()
        .chars()
        .count()
        + 1;
    let byte = input.get(utf8.valid_up_to()).copied().unwrap_or_default();
    assert_eq!(
        *error,
        ImportError::InvalidUtf8 {
            origin: ORIGIN.to_owned(),
            line,
            column,
            byte,
        }
    );
}

/// The lines the importers number: one per `\n`, plus a last line without one.
fn line_count(text: &str) -> usize {
    let breaks = text.matches('\n').count();
    breaks + usize::from(!text.is_empty() && !text.ends_with('\n'))
}

/// An error names the origin and a line within the input (or just past its end).
fn check_error(error: &ImportError, lines: usize) {
    let message = error.to_string();
    assert!(
        message.starts_with(ORIGIN),
        "the error does not name the origin: {message}"
    );
    let Some(line) = error.line() else {
        panic!("an import error without a line: {message}");
    };
    assert!(
        (1..=lines.saturating_add(1)).contains(&line),
        "error on line {line} of a {lines}-line input: {message}"
    );
    let column = match error {
        ImportError::OddHex { column, .. }
        | ImportError::BadHexDigit { column, .. }
        | ImportError::ControlCharacter { column, .. }
        | ImportError::InvalidUtf8 { column, .. }
        | ImportError::Malformed { column, .. } => Some(*column),
        _ => None,
    };
    if let Some(column) = column {
        assert!(column >= 1, "column 0 in {message}");
    }
}

/// A successful import's report, imported with `secrets`.
fn check_report(
    format: ImportFormat,
    capabilities: Capabilities,
    report: &ImportReport,
    secrets: Secrets,
    lines: usize,
) {
    let trace = &report.trace;
    let header = &trace.header;
    assert_eq!(header.secrets, secrets);
    let extra = |key: &str| {
        header
            .extra
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(extra("imported-from"), Some(format.name()));
    assert_eq!(extra("origin"), Some(ORIGIN));

    for event in &trace.events {
        match event {
            Event::Exchange(exchange) => check_exchange(exchange, capabilities),
            Event::AnswerToReset(atr) => {
                assert!(
                    capabilities.atr,
                    "{format} logs no ATR, yet one was imported"
                );
                assert!(!atr.is_empty(), "an empty ATR");
                assert!(atr.len() <= MAX_APDU_LEN);
            }
            Event::Comment(_) => {}
        }
    }

    check_writes(trace);
    check_skipped(report, lines);
}

fn check_exchange(exchange: &Exchange, capabilities: Capabilities) {
    let (command, response) = (exchange.command.len(), exchange.response.len());
    assert!(command >= 1, "an empty command");
    // ISO 7816-4 §5.1: a response ends with SW1 SW2.
    assert!(
        response >= 2,
        "a response of {response} bytes has no SW1 SW2"
    );
    assert!(command <= MAX_APDU_LEN && response <= MAX_APDU_LEN);
    if let Some(elapsed) = exchange.elapsed {
        assert!(capabilities.timings, "a timing from a log that has none");
        assert_eq!(
            elapsed.subsec_nanos() % capabilities.resolution_nanos,
            0,
            "{elapsed:?} is finer than the log's clock"
        );
    }
}

/// The trace writes, and reads back equal.
fn check_writes(trace: &Trace) {
    let text = to_string(trace);
    let mut streamed = Vec::new();
    if let Err(e) = write(trace, &mut streamed) {
        panic!("an imported trace is not writable: {e}\n{trace:?}");
    }
    assert_eq!(streamed, text.as_bytes());
    match parse_str(&text, "imported.trace") {
        Ok(reparsed) => assert_eq!(
            &reparsed, trace,
            "the written trace reads back different:\n{text}"
        ),
        Err(e) => panic!("the written trace does not read back: {e}\n{text}"),
    }
}

fn check_skipped(report: &ImportReport, lines: usize) {
    let skipped = &report.skipped;
    assert!(skipped.len() <= MAX_SKIPPED_LINES);
    if report.skipped_beyond_limit > 0 {
        assert_eq!(
            skipped.len(),
            MAX_SKIPPED_LINES,
            "lines counted before the list is full"
        );
    }
    let mut previous = 0;
    for line in skipped {
        assert!(
            line.line > previous && line.line <= lines,
            "skipped line {} after line {previous} in a {lines}-line input",
            line.line
        );
        previous = line.line;
        let chars = line.text.chars().count();
        let cut = line.text.ends_with('…');
        assert!(
            chars <= SKIPPED_TEXT_LEN + usize::from(cut),
            "a skipped text of {chars} characters"
        );
        assert!(
            !line.text.chars().any(char::is_control),
            "a control character in skipped text {:?}",
            line.text
        );
    }
}

/// The masked import is the recorded one with some bytes hidden, nothing else.
fn check_masking(masked: &ImportReport, recorded: &ImportReport) {
    assert_eq!(masked.skipped, recorded.skipped);
    assert_eq!(masked.skipped_beyond_limit, recorded.skipped_beyond_limit);
    let mut header = recorded.trace.header.clone();
    header.secrets = Secrets::Masked;
    assert_eq!(masked.trace.header, header);
    assert_eq!(masked.trace.events.len(), recorded.trace.events.len());
    for (masked, recorded) in masked.trace.events.iter().zip(&recorded.trace.events) {
        match (masked, recorded) {
            (Event::Exchange(m), Event::Exchange(r)) => {
                hides_only(&m.command, &r.command);
                hides_only(&m.response, &r.response);
                assert_eq!((m.elapsed, &m.note), (r.elapsed, &r.note));
            }
            (m, r) => assert_eq!(m, r, "masking changed an event other than an exchange"),
        }
    }
}

/// `masked` stands for the bytes of `recorded`, some of them hidden.
fn hides_only(masked: &Pattern, recorded: &Pattern) {
    let Some(bytes) = recorded.to_bytes() else {
        panic!("a recorded import holds a wildcard or redaction: {recorded:?}");
    };
    assert_eq!(masked.len(), bytes.len());
    assert!(
        masked.matches(&bytes),
        "{masked:?} does not match {bytes:02X?}"
    );
}
