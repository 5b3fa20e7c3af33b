//! The writer: a trace as canonical text (`docs/trace-format.md`, "Canonical form"),
//! one event at a time. What the parser reads back from it is the same [`Trace`].
//!
//! Values the text cannot hold (an empty pattern, a comment with a line break, a
//! header key with a space…) are refused with [`TraceError::Unwritable`] rather than
//! written into a file that would not read back.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::time::Duration;

use super::line::excerpt;
use super::{MAX_LINE_LEN, MAX_PATTERN_LEN, TraceError};
use crate::trace::{Event, FORMAT_VERSION, Header, Pattern, Secrets, Segment, Trace};

/// A streaming writer, for the recorder: [`Writer::new`] writes the version line and
/// the header, then each [`Writer::write_event`] writes one event and flushes, so that
/// a dialogue cut short leaves a file that reads back up to the last event.
///
/// ```
/// use telepay::trace::{Event, Exchange, Header, Pattern};
/// use telepay::trace::format::Writer;
///
/// let mut writer = Writer::new(Vec::new(), &Header::default())?;
/// writer.write_event(&Event::Exchange(Exchange {
///     command: Pattern::exact([0x00, 0xB2, 0x01, 0x0C, 0x00]),
///     response: Pattern::exact([0x6A, 0x83]),
///     elapsed: Some(std::time::Duration::from_micros(80)),
///     note: None,
/// }))?;
/// let text = String::from_utf8(writer.into_inner()).unwrap_or_default();
/// assert_eq!(text, "telepay-trace 1\n@secrets masked\n\n> 00B2010C00\n< 6A83  @80us\n");
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Writer<W: Write> {
    out: W,
    /// The text of the event being written, reused.
    text: String,
    /// How many events were given, for error messages.
    events: usize,
}

impl<W: Write> Writer<W> {
    /// Writes the version line (always [`FORMAT_VERSION`], whatever `header.version`
    /// says: it is the format being written), the header and the blank line that ends
    /// it, and flushes.
    ///
    /// # Errors
    /// The output's errors; [`io::ErrorKind::InvalidInput`] carrying a
    /// [`TraceError::Unwritable`] when a header value cannot be written.
    pub fn new(mut out: W, header: &Header) -> io::Result<Writer<W>> {
        let mut text = format!("telepay-trace {FORMAT_VERSION}\n");
        for entry in header_entries(header) {
            push_header_line(&entry, &mut text).map_err(invalid_input)?;
        }
        text.push('\n');
        out.write_all(text.as_bytes())?;
        out.flush()?;
        text.clear();
        Ok(Writer {
            out,
            text,
            events: 0,
        })
    }

    /// Writes one event and flushes.
    ///
    /// # Errors
    /// The output's errors; [`io::ErrorKind::InvalidInput`] carrying a
    /// [`TraceError::Unwritable`] when the event cannot be written (nothing of it is
    /// written then).
    pub fn write_event(&mut self, event: &Event) -> io::Result<()> {
        self.write_unflushed(event)?;
        self.out.flush()
    }

    /// Writes one event without flushing.
    fn write_unflushed(&mut self, event: &Event) -> io::Result<()> {
        self.events = self.events.saturating_add(1);
        self.text.clear();
        push_event(event, self.events, &mut self.text).map_err(invalid_input)?;
        self.out.write_all(self.text.as_bytes())
    }

    /// Flushes the output.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// The output, after the events written.
    pub fn into_inner(self) -> W {
        self.out
    }
}

/// Writes a whole trace in canonical form (buffered; flushed at the end).
///
/// # Errors
/// The output's errors; [`io::ErrorKind::InvalidInput`] carrying a
/// [`TraceError::Unwritable`] for the first header value or event that cannot be
/// written (what came before it is written).
pub fn write(trace: &Trace, out: &mut impl Write) -> io::Result<()> {
    let mut writer = Writer::new(io::BufWriter::with_capacity(1 << 16, out), &trace.header)?;
    for event in &trace.events {
        writer.write_unflushed(event)?;
    }
    writer.flush()
}

/// A whole trace as canonical text.
///
/// Every trace the parser returns can be written. For a trace built with values the
/// format cannot hold (see [`TraceError::Unwritable`]), each such header line or event
/// is replaced by a comment line saying why (`# not written: cannot write …`), so that
/// the text still reads back; use [`write()`] to get the error instead.
pub fn to_string(trace: &Trace) -> String {
    let mut out = format!("telepay-trace {FORMAT_VERSION}\n");
    for entry in header_entries(&trace.header) {
        let mark = out.len();
        if let Err(error) = push_header_line(&entry, &mut out) {
            out.truncate(mark);
            push_refusal(&error, &mut out);
        }
    }
    out.push('\n');
    for (index, event) in trace.events.iter().enumerate() {
        let mark = out.len();
        if let Err(error) = push_event(event, index.saturating_add(1), &mut out) {
            out.truncate(mark);
            push_refusal(&error, &mut out);
        }
    }
    out
}

/// One pattern as text: its segments joined by one space, bytes in upper-case hex,
/// `??` per wildcard byte, `<name:N>` per redaction (`77 1E 9F27 01 ????`).
/// [`parse_pattern`](super::parse_pattern) reads it back as the same pattern when the
/// format can hold it (see [`write()`]); a wildcard run longer than
/// [`MAX_PATTERN_LEN`] is shown as `??…×N`.
pub fn format_pattern(pattern: &Pattern) -> String {
    // Two digits per byte and a space per segment; capped, the pattern may be invalid.
    let digits = pattern
        .segments
        .iter()
        .map(|segment| match segment {
            Segment::Bytes(bytes) => bytes.len(),
            Segment::Any(len) | Segment::Redacted { len, .. } => *len,
        })
        .fold(0usize, usize::saturating_add)
        .min(MAX_PATTERN_LEN);
    let mut out = String::with_capacity(digits.saturating_mul(3));
    push_pattern(pattern, &mut out);
    out
}

/// A refused item, as a comment line.
fn push_refusal(error: &TraceError, out: &mut String) {
    // The message's parts are escaped excerpts: no line break can get in.
    let _ = writeln!(out, "# not written: {error}");
}

/// A refused value as the error the writer returns.
fn invalid_input(error: TraceError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, error)
}

/// One line of the header: the key (without `@`), the value, and the field name for
/// errors.
struct HeaderEntry<'a> {
    key: &'a str,
    value: &'a str,
    /// Whether `key` is one of the extra keys (checked against the reserved ones).
    extra: bool,
}

/// The version line and the header lines, in canonical order: reader, protocol,
/// profile, date, secrets, then the extra keys in order.
fn header_entries(header: &Header) -> Vec<HeaderEntry<'_>> {
    let mut entries = Vec::with_capacity(6 + header.extra.len());
    let known = [
        ("reader", &header.reader),
        ("protocol", &header.protocol),
        ("profile", &header.profile),
        ("date", &header.date),
    ];
    for (key, value) in known {
        if let Some(value) = value {
            entries.push(HeaderEntry {
                key,
                value,
                extra: false,
            });
        }
    }
    entries.push(HeaderEntry {
        key: "secrets",
        value: match header.secrets {
            Secrets::Masked => "masked",
            Secrets::Recorded => "recorded",
        },
        extra: false,
    });
    for (key, value) in &header.extra {
        entries.push(HeaderEntry {
            key,
            value,
            extra: true,
        });
    }
    entries
}

/// The keys with a meaning of their own, which [`Header::extra`] cannot use.
const RESERVED_KEYS: [&str; 6] = ["reader", "protocol", "profile", "date", "secrets", "atr"];

/// Appends `@key value`.
fn push_header_line(entry: &HeaderEntry<'_>, out: &mut String) -> Result<(), TraceError> {
    let field = || format!("header line @{}", entry.key);
    if entry.extra {
        let valid = !entry.key.is_empty()
            && entry.key.chars().all(is_key_char)
            && !RESERVED_KEYS.contains(&entry.key);
        if !valid {
            return Err(unwritable(
                field(),
                "a key of a-z, 0-9, `_`, `-` other than reader, protocol, profile, date, secrets, atr",
                entry.key,
            ));
        }
    }
    let trimmed = entry.value.trim_matches(|c| c == ' ' || c == '\t');
    if trimmed.is_empty() || trimmed.len() != entry.value.len() {
        return Err(unwritable(
            field(),
            "a value, without leading or trailing spaces",
            entry.value,
        ));
    }
    check_printable(entry.value, field)?;
    let start = out.len();
    let _ = writeln!(out, "@{} {}", entry.key, entry.value);
    check_line_len(out, start, field)
}

/// Characters of a header key or a redaction name.
fn is_key_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-'
}

/// Appends the lines of event number `number` (from 1).
fn push_event(event: &Event, number: usize, out: &mut String) -> Result<(), TraceError> {
    match event {
        Event::Comment(text) => {
            let field = || format!("event {number} (comment)");
            check_printable(text, field)?;
            let start = out.len();
            out.push('#');
            if !text.is_empty() {
                out.push(' ');
                out.push_str(text);
            }
            out.push('\n');
            check_line_len(out, start, field)
        }
        Event::AnswerToReset(atr) => {
            let field = || format!("event {number} (@atr)");
            check_pattern(atr, 1, field)?;
            let start = out.len();
            out.push_str("@atr ");
            push_pattern(atr, out);
            out.push('\n');
            check_line_len(out, start, field)
        }
        Event::Exchange(exchange) => {
            let command_field = || format!("event {number} (exchange): command");
            let response_field = || format!("event {number} (exchange): response");
            check_pattern(&exchange.command, 1, command_field)?;
            // ISO 7816-4 §5.1: a response ends with the status bytes SW1 SW2.
            check_pattern(&exchange.response, 2, response_field)?;
            if let Some(note) = &exchange.note {
                check_printable(note, || format!("event {number} (exchange): note"))?;
            }
            let start = out.len();
            out.push_str("> ");
            push_pattern(&exchange.command, out);
            out.push('\n');
            check_line_len(out, start, command_field)?;
            let start = out.len();
            out.push_str("< ");
            push_pattern(&exchange.response, out);
            if let Some(elapsed) = exchange.elapsed {
                out.push_str("  @");
                push_duration(elapsed, out);
            }
            if let Some(note) = &exchange.note {
                out.push_str("  #");
                if !note.is_empty() {
                    out.push(' ');
                    out.push_str(note);
                }
            }
            out.push('\n');
            check_line_len(out, start, response_field)
        }
    }
}

/// Refuses a pattern the parser would not read back as the same value.
fn check_pattern(
    pattern: &Pattern,
    min_len: usize,
    field: impl Fn() -> String,
) -> Result<(), TraceError> {
    let mut total = 0usize;
    for segment in &pattern.segments {
        let len = match segment {
            Segment::Bytes(bytes) => bytes.len(),
            Segment::Any(len) => *len,
            Segment::Redacted { name, len } => {
                if name.is_empty() || !name.chars().all(is_key_char) {
                    return Err(unwritable(
                        field(),
                        "a redaction name of a-z, 0-9, `_`, `-`",
                        name,
                    ));
                }
                *len
            }
        };
        if len == 0 {
            return Err(TraceError::Unwritable {
                field: field(),
                expected: "segments of at least one byte".to_owned(),
                found: "an empty segment".to_owned(),
            });
        }
        total = total.saturating_add(len);
    }
    if total > MAX_PATTERN_LEN {
        return Err(TraceError::Unwritable {
            field: field(),
            expected: format!("at most {MAX_PATTERN_LEN} bytes"),
            found: byte_count(total),
        });
    }
    if total < min_len {
        return Err(TraceError::Unwritable {
            field: field(),
            expected: if min_len >= 2 {
                "at least the two status bytes".to_owned()
            } else {
                "at least one byte".to_owned()
            },
            found: byte_count(total),
        });
    }
    Ok(())
}

/// `1 byte`, `N bytes`.
fn byte_count(count: usize) -> String {
    if count == 1 {
        "1 byte".to_owned()
    } else {
        format!("{count} bytes")
    }
}

/// Refuses control characters other than tab (a line break would end the line).
fn check_printable(text: &str, field: impl Fn() -> String) -> Result<(), TraceError> {
    match text
        .char_indices()
        .find(|&(_, c)| c.is_control() && c != '\t')
    {
        Some((index, _)) => Err(unwritable(
            field(),
            "printable text (no control character but tab)",
            text.get(index..).unwrap_or_default(),
        )),
        None => Ok(()),
    }
}

/// Refuses a line the reader would refuse as too long (`out[start..]` is the line).
fn check_line_len(out: &str, start: usize, field: impl Fn() -> String) -> Result<(), TraceError> {
    let len = out.len().saturating_sub(start).saturating_sub(1);
    if len > MAX_LINE_LEN {
        return Err(TraceError::Unwritable {
            field: field(),
            expected: format!("a line of at most {MAX_LINE_LEN} bytes"),
            found: format!("{len} bytes"),
        });
    }
    Ok(())
}

/// A [`TraceError::Unwritable`] showing an excerpt of `found`.
fn unwritable(field: String, expected: &str, found: &str) -> TraceError {
    TraceError::Unwritable {
        field,
        expected: expected.to_owned(),
        found: excerpt(found),
    }
}

/// Appends the segments joined by one space.
fn push_pattern(pattern: &Pattern, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for (index, segment) in pattern.segments.iter().enumerate() {
        if index > 0 {
            out.push(' ');
        }
        match segment {
            Segment::Bytes(bytes) => {
                out.reserve(bytes.len().saturating_mul(2));
                for byte in bytes {
                    out.push(char::from(HEX[usize::from(byte >> 4)]));
                    out.push(char::from(HEX[usize::from(byte & 0x0F)]));
                }
            }
            Segment::Any(len) if *len > MAX_PATTERN_LEN => {
                // Beyond any valid pattern (the writer refuses it before this): shown
                // with its count rather than allocating `2 × len` bytes.
                let _ = write!(out, "??…×{len}");
            }
            Segment::Any(len) => {
                for _ in 0..*len {
                    out.push_str("??");
                }
            }
            Segment::Redacted { name, len } => {
                let _ = write!(out, "<{name}:{len}>");
            }
        }
    }
}

/// Appends a duration in the largest unit in which it is at least 1 (`s`, `ms`, `us`,
/// `ns`), with the decimals needed to be exact to the nanosecond and no trailing zero:
/// `134us`, `1.5ms`, `2s`, `0s`.
fn push_duration(elapsed: Duration, out: &mut String) {
    let nanos = elapsed.as_nanos();
    if nanos == 0 {
        out.push_str("0s");
        return;
    }
    let (unit, scale, digits) = match nanos {
        1_000_000_000.. => ("s", 1_000_000_000u128, 9usize),
        1_000_000.. => ("ms", 1_000_000, 6),
        1_000.. => ("us", 1_000, 3),
        _ => ("ns", 1, 0),
    };
    let _ = write!(out, "{}", nanos / scale);
    let fraction = nanos % scale;
    if fraction != 0 {
        let padded = format!("{fraction:0digits$}");
        out.push('.');
        out.push_str(padded.trim_end_matches('0'));
    }
    out.push_str(unit);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_the_most_natural_unit() {
        let cases: [(Duration, &str); 9] = [
            (Duration::ZERO, "0s"),
            (Duration::from_nanos(7), "7ns"),
            (Duration::from_nanos(999), "999ns"),
            (Duration::from_micros(134), "134us"),
            (Duration::from_nanos(134_500), "134.5us"),
            (Duration::from_micros(1_500), "1.5ms"),
            (Duration::from_nanos(1_000_001), "1.000001ms"),
            (Duration::from_secs(61), "61s"),
            (Duration::MAX, "18446744073709551615.999999999s"),
        ];
        for (elapsed, text) in cases {
            let mut out = String::new();
            push_duration(elapsed, &mut out);
            assert_eq!(out, text, "{elapsed:?}");
        }
    }
}
