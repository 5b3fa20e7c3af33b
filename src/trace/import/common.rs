//! What the importers share: a line reader that refuses binary input and removes colour
//! codes, hex and time parsing that report positions, and the [`Builder`] that turns
//! commands and responses into a [`Trace`] (masking secrets as the recorder does).

use std::borrow::Cow;
use std::time::Duration;

use super::{ImportError, ImportFormat, ImportOptions, ImportReport, SkippedLine};
use crate::apdu::{CommandView, ins};
use crate::reader::ReaderUri;
use crate::reader::uri::PcscUri;
use crate::trace::{Event, Exchange, FORMAT_VERSION, Header, Pattern, Secrets, Trace};

/// The longest APDU an import accepts: an extended command with 65,535 data bytes, a
/// 3-byte Lc and a 2-byte Le (ISO 7816-4 §5.1: 4 + 3 + 65,535 + 2). Longer byte strings
/// are [`ImportError::TooLong`], which also bounds the memory one exchange takes.
pub const MAX_APDU_LEN: usize = 65_544;

/// How many skipped lines an [`ImportReport`] lists; beyond that they are only counted.
pub const MAX_SKIPPED_LINES: usize = 1_000;

/// How many characters of a skipped line are kept.
pub const SKIPPED_TEXT_LEN: usize = 200;

/// How many characters of a comment or note taken from a log are kept.
const TEXT_LEN: usize = 1_000;

/// One line of the input.
#[derive(Debug)]
pub(super) struct Line<'a> {
    /// The 1-based line number.
    pub number: usize,
    /// The text, without the line break and without colour codes.
    pub text: Cow<'a, str>,
}

impl Line<'_> {
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The byte offset of `part` (a slice of this line's text) in the text; 0 when `part`
    /// is not a slice of it.
    pub fn offset_of(&self, part: &str) -> usize {
        let text = self.as_str();
        (part.as_ptr() as usize)
            .checked_sub(text.as_ptr() as usize)
            .filter(|offset| {
                offset
                    .checked_add(part.len())
                    .is_some_and(|end| end <= text.len())
            })
            .unwrap_or(0)
    }

    /// The 1-based character column of byte `offset` of the text.
    pub fn column_at(&self, offset: usize) -> usize {
        self.as_str()
            .get(..offset)
            .map_or(1, |before| before.chars().count() + 1)
    }

    /// The column where `part` (a slice of the text) starts.
    pub fn column_of(&self, part: &str) -> usize {
        self.column_at(self.offset_of(part))
    }
}

/// The lines of a text, one at a time, checked for binary content.
pub(super) struct Lines<'a> {
    rest: &'a str,
    done: bool,
    number: usize,
    origin: &'a str,
    peeked: Option<Line<'a>>,
}

impl<'a> Lines<'a> {
    /// Reads `text`, naming it `origin` in errors.
    pub fn new(text: &'a str, origin: &'a str) -> Lines<'a> {
        Lines {
            rest: text,
            done: text.is_empty(),
            number: 0,
            origin,
            peeked: None,
        }
    }

    /// The input's name.
    pub fn origin(&self) -> &'a str {
        self.origin
    }

    /// The next line, or `None` at the end.
    ///
    /// # Errors
    /// [`ImportError::ControlCharacter`] for a line with a control character other than
    /// tab or a colour code (binary input).
    pub fn next_line(&mut self) -> Result<Option<Line<'a>>, ImportError> {
        if let Some(line) = self.peeked.take() {
            return Ok(Some(line));
        }
        self.read()
    }

    /// The next line without consuming it.
    ///
    /// # Errors
    /// As [`Lines::next_line`].
    pub fn peek(&mut self) -> Result<Option<&Line<'a>>, ImportError> {
        if self.peeked.is_none() {
            self.peeked = self.read()?;
        }
        Ok(self.peeked.as_ref())
    }

    fn read(&mut self) -> Result<Option<Line<'a>>, ImportError> {
        if self.done {
            return Ok(None);
        }
        let raw = match self.rest.split_once('\n') {
            Some((line, rest)) => {
                self.rest = rest;
                self.done = rest.is_empty();
                line
            }
            None => {
                self.done = true;
                self.rest
            }
        };
        self.number = self.number.saturating_add(1);
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        let text = clean(raw).map_err(|(column, code)| ImportError::ControlCharacter {
            origin: self.origin.to_owned(),
            line: self.number,
            column,
            code,
        })?;
        Ok(Some(Line {
            number: self.number,
            text,
        }))
    }
}

/// Whether `c` is allowed in a log line (tab and printable characters).
fn allowed(c: char) -> bool {
    c == '\t' || !c.is_control()
}

/// The length in bytes of the ECMA-48 control sequence (`ESC [ params final`) at the
/// start of `s`, if one is there: colour codes pcsc-spy and OpenSC write to terminals.
fn csi_len(s: &str) -> Option<usize> {
    let body = s.strip_prefix("\x1b[")?;
    // Parameter bytes 0x30–0x3F and intermediate bytes 0x20–0x2F, then a final byte
    // 0x40–0x7E (ECMA-48 §5.4).
    let end = body.bytes().position(|b| !(0x20..=0x3F).contains(&b))?;
    let last = *body.as_bytes().get(end)?;
    (0x40..=0x7E).contains(&last).then_some(2 + end + 1)
}

/// The line without colour codes, or the (column, code point) of a control character.
fn clean(raw: &str) -> Result<Cow<'_, str>, (usize, u32)> {
    if raw.chars().all(allowed) {
        return Ok(Cow::Borrowed(raw));
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    let mut column = 1usize;
    while let Some(c) = rest.chars().next() {
        if c == '\x1b'
            && let Some(len) = csi_len(rest)
        {
            // Colour codes are dropped; columns count the characters that remain.
            rest = rest.get(len..).unwrap_or_default();
            continue;
        }
        if !allowed(c) {
            return Err((column, u32::from(c)));
        }
        out.push(c);
        column = column.saturating_add(1);
        rest = rest.get(c.len_utf8()..).unwrap_or_default();
    }
    Ok(Cow::Owned(out))
}

/// The line without colour codes, leniently (for detection: nothing is reported).
pub(super) fn strip_colours(raw: &str) -> Cow<'_, str> {
    clean(raw).unwrap_or(Cow::Borrowed(raw))
}

/// The value of a hex digit.
fn nibble(digit: u8) -> Option<u8> {
    char::from(digit)
        .to_digit(16)
        .and_then(|value| u8::try_from(value).ok())
}

/// Appends the bytes of the whitespace-separated hex groups of `part` (a slice of
/// `line`'s text) to `out`. Each group must have an even number of digits.
///
/// # Errors
/// [`ImportError::BadHexDigit`], [`ImportError::OddHex`], [`ImportError::TooLong`]
/// when `out` would exceed [`MAX_APDU_LEN`].
pub(super) fn hex_into(
    origin: &str,
    line: &Line<'_>,
    part: &str,
    out: &mut Vec<u8>,
) -> Result<(), ImportError> {
    let base = line.offset_of(part);
    let mut offset = 0usize;
    for group in part.split([' ', '\t']) {
        let start = offset;
        offset = offset.saturating_add(group.len()).saturating_add(1);
        if group.is_empty() {
            continue;
        }
        if let Some((at, found)) = group.char_indices().find(|(_, c)| !c.is_ascii_hexdigit()) {
            return Err(ImportError::BadHexDigit {
                origin: origin.to_owned(),
                line: line.number,
                column: line.column_at(base + start + at),
                found,
            });
        }
        if !group.len().is_multiple_of(2) {
            return Err(ImportError::OddHex {
                origin: origin.to_owned(),
                line: line.number,
                column: line.column_at(base + start),
                digits: group.len(),
            });
        }
        if out.len().saturating_add(group.len() / 2) > MAX_APDU_LEN {
            return Err(ImportError::TooLong {
                origin: origin.to_owned(),
                line: line.number,
                limit: MAX_APDU_LEN,
            });
        }
        for pair in group.as_bytes().chunks_exact(2) {
            if let [high, low] = pair
                && let (Some(high), Some(low)) = (nibble(*high), nibble(*low))
            {
                out.push(high << 4 | low);
            }
        }
    }
    Ok(())
}

/// The bytes of the hex groups of `part`; see [`hex_into`].
///
/// # Errors
/// As [`hex_into`].
pub(super) fn hex(origin: &str, line: &Line<'_>, part: &str) -> Result<Vec<u8>, ImportError> {
    let mut out = Vec::new();
    hex_into(origin, line, part, &mut out)?;
    Ok(out)
}

/// [`ImportError::Malformed`] for `part` of `line`.
pub(super) fn malformed(
    origin: &str,
    line: &Line<'_>,
    part: &str,
    expected: &'static str,
) -> ImportError {
    ImportError::Malformed {
        origin: origin.to_owned(),
        line: line.number,
        column: line.column_of(part),
        expected,
        found: part.chars().take(40).collect(),
    }
}

/// Whether `s` is non-empty and all hex digits.
pub(super) fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Whether `s` is a non-empty sequence of two-digit hex groups separated by single
/// spaces, with at least `min` groups (pyscard and pcsc-spy style).
pub(super) fn is_spaced_hex(s: &str, min: usize) -> bool {
    let mut count = 0usize;
    for group in s.split(' ') {
        if group.len() != 2 || !is_hex(group) {
            return false;
        }
        count += 1;
    }
    count >= min
}

/// A `0x`-prefixed hex number (`0x0000000D`).
pub(super) fn hex_number(s: &str) -> Option<u64> {
    let digits = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))?;
    if !is_hex(digits) {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}

/// A decimal number of ASCII digits.
pub(super) fn decimal(s: &str) -> Option<usize> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `INT.FRAC` in units of `unit_nanos` nanoseconds (`FRAC` optional, at most 9 digits).
fn decimal_duration(text: &str, unit_nanos: u64) -> Option<Duration> {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: u64 = int.parse().ok()?;
    let mut frac_value: u64 = if frac.is_empty() {
        0
    } else {
        frac.parse().ok()?
    };
    for _ in frac.len()..9 {
        frac_value = frac_value.checked_mul(10)?;
    }
    // frac_value is now in billionths of a unit.
    let nanos = whole
        .checked_mul(unit_nanos)?
        .checked_add(frac_value.checked_mul(unit_nanos)? / 1_000_000_000)?;
    Some(Duration::from_nanos(nanos))
}

/// Seconds with a fraction: `0.000123` (pcsc-spy).
pub(super) fn seconds(text: &str) -> Option<Duration> {
    decimal_duration(text, 1_000_000_000)
}

/// A duration as apdu4j and GlobalPlatformPro print it: `12ms`, `0.52ms`, `1s234ms`.
pub(super) fn millis_text(text: &str) -> Option<Duration> {
    let ms = text.strip_suffix("ms")?;
    match ms.split_once('s') {
        Some((secs, ms)) => {
            let secs = decimal(secs)?;
            let ms = decimal_duration(ms, 1_000_000)?;
            Duration::from_secs(u64::try_from(secs).ok()?).checked_add(ms)
        }
        None => decimal_duration(ms, 1_000_000),
    }
}

/// `HH:MM:SS.mmm` as milliseconds since midnight.
pub(super) fn clock_millis(text: &str) -> Option<u64> {
    let (hms, ms) = text.split_once('.')?;
    let mut parts = hms.split(':');
    let (h, m, s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || [h, m, s].iter().any(|p| p.len() != 2) || ms.len() != 3 {
        return None;
    }
    let (h, m, s, ms) = (decimal(h)?, decimal(m)?, decimal(s)?, decimal(ms)?);
    if h > 23 || m > 59 || s > 60 {
        return None;
    }
    u64::try_from(((h * 60 + m) * 60 + s) * 1000 + ms).ok()
}

/// The time from `start` to `end` (milliseconds since midnight), across midnight when
/// `end` is earlier.
pub(super) fn clock_elapsed(start: u64, end: u64) -> Duration {
    const DAY: u64 = 24 * 60 * 60 * 1000;
    let millis = if end >= start {
        end - start
    } else {
        (end + DAY).saturating_sub(start)
    };
    Duration::from_millis(millis)
}

/// `text` on one line: control characters replaced by `?`, at most `max` characters.
pub(super) fn one_line(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .take(max)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if text.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}

/// Upper-case hex, for comments.
pub(super) fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02X}")).collect()
}

/// Builds the trace of an import.
pub(super) struct Builder {
    trace: Trace,
    skipped: Vec<SkippedLine>,
    skipped_beyond_limit: usize,
    /// The last command's response data is plaintext (DECIPHER): so is what GET RESPONSE
    /// fetches after it.
    response_secret: bool,
    /// The log's name, for errors.
    origin: String,
}

impl Builder {
    /// A trace whose header says where it comes from.
    pub fn new(format: ImportFormat, origin: &str, options: ImportOptions) -> Builder {
        let header = Header {
            version: FORMAT_VERSION,
            secrets: options.secrets,
            extra: vec![
                ("imported-from".to_owned(), format.name().to_owned()),
                ("origin".to_owned(), one_line(origin, TEXT_LEN)),
            ],
            ..Header::default()
        };
        Builder {
            trace: Trace {
                header,
                events: Vec::new(),
            },
            skipped: Vec::new(),
            skipped_beyond_limit: 0,
            response_secret: false,
            origin: origin.to_owned(),
        }
    }

    /// Names the reader, as a `pcsc:` URI, unless it is already named.
    pub fn set_reader(&mut self, name: &str) {
        let name = name.trim();
        if self.trace.header.reader.is_none() && !name.is_empty() {
            let uri = ReaderUri::Pcsc(PcscUri {
                name: Some(one_line(name, TEXT_LEN)),
                share: None,
            });
            self.trace.header.reader = Some(uri.to_string());
        }
    }

    /// Sets the protocol (`T=0`, `T=1`, …) unless it is already set.
    pub fn set_protocol(&mut self, protocol: &str) {
        let protocol = protocol.trim();
        if self.trace.header.protocol.is_none() && !protocol.is_empty() {
            self.trace.header.protocol = Some(one_line(protocol, 40));
        }
    }

    /// Sets the recording date (RFC 3339 UTC) unless it is already set.
    pub fn set_date(&mut self, date: String) {
        if self.trace.header.date.is_none() {
            self.trace.header.date = Some(date);
        }
    }

    /// Adds a `@key value` header line.
    pub fn set_extra(&mut self, key: &str, value: &str) {
        self.trace
            .header
            .extra
            .push((key.to_owned(), one_line(value.trim(), TEXT_LEN)));
    }

    /// Reports a line not understood.
    pub fn skip(&mut self, line: &Line<'_>) {
        if self.skipped.len() < MAX_SKIPPED_LINES {
            self.skipped.push(SkippedLine {
                line: line.number,
                text: one_line(line.as_str(), SKIPPED_TEXT_LEN),
            });
        } else {
            self.skipped_beyond_limit = self.skipped_beyond_limit.saturating_add(1);
        }
    }

    /// The card was powered or reset and answered `atr`; an empty ATR is refused (an
    /// ATR has at least TS and T0, ISO 7816-3 §8.2).
    pub fn atr(&mut self, line: usize, atr: Vec<u8>) -> Result<(), ImportError> {
        if atr.is_empty() {
            return Err(ImportError::BadLength {
                origin: self.origin.clone(),
                line,
                announced: 2,
                found: 0,
            });
        }
        self.response_secret = false;
        self.trace
            .events
            .push(Event::AnswerToReset(Pattern::exact(atr)));
        Ok(())
    }

    /// A comment line.
    pub fn comment(&mut self, text: &str) {
        self.trace
            .events
            .push(Event::Comment(one_line(text.trim(), TEXT_LEN)));
    }

    /// Notes, as a comment, a command the log shows no response to (the tool logs
    /// nothing more when a transmission fails). Only the header and the length are
    /// shown, so no PIN reaches the comment.
    pub fn unanswered(&mut self, line: usize, command: &[u8], why: &str) {
        let header = to_hex(command.get(..4).unwrap_or(command));
        self.comment(&format!(
            "{why}: command on line {line} (header {header}, {} bytes) not answered",
            command.len()
        ));
    }

    /// A command and its response, secrets masked unless they are kept. A command
    /// shorter than its 4-byte header or a response without SW1 SW2 (ISO 7816-4 §5.1)
    /// is refused: no trace could hold it.
    pub fn exchange(
        &mut self,
        line: usize,
        command: Vec<u8>,
        response: Vec<u8>,
        elapsed: Option<Duration>,
        note: Option<&str>,
    ) -> Result<(), ImportError> {
        let too_short = |announced: usize, found: usize| ImportError::BadLength {
            origin: self.origin.clone(),
            line,
            announced,
            found,
        };
        if command.len() < 4 {
            return Err(too_short(4, command.len()));
        }
        if response.len() < 2 {
            return Err(too_short(2, response.len()));
        }
        let command = self.command_pattern(command);
        let response = self.response_pattern(response);
        self.trace.events.push(Event::Exchange(Exchange {
            command,
            response,
            elapsed,
            note: note
                .map(|note| one_line(note.trim(), TEXT_LEN))
                .filter(|note| !note.is_empty()),
        }));
        Ok(())
    }

    /// The command, its PIN or plaintext redacted when secrets are masked, as
    /// `telepay::trace::record` does.
    fn command_pattern(&mut self, command: Vec<u8>) -> Pattern {
        let masked = self.trace.header.secrets == Secrets::Masked;
        let mut redaction = None;
        if let Ok(view) = CommandView::parse(&command) {
            // ISO 7816-8 §11: PSO P1-P2 `86 80` ENCIPHER takes plaintext, `80 86`
            // DECIPHER returns it.
            let pso = view.ins() == ins::PERFORM_SECURITY_OPERATION;
            let enciphers = pso && (view.p1(), view.p2()) == (0x86, 0x80);
            let deciphers = pso && (view.p1(), view.p2()) == (0x80, 0x86);
            if view.ins() != ins::GET_RESPONSE {
                self.response_secret = deciphers;
            }
            if masked && !view.data().is_empty() {
                let name = if view.carries_secret() {
                    Some("pin")
                } else if enciphers {
                    Some("plaintext")
                } else {
                    None
                };
                // The data field sits after the header and Lc (1 byte short, 3 extended).
                let start = if view.case().is_extended() { 7 } else { 5 };
                redaction = name.map(|name| (start..start + view.data().len(), name));
            }
        } else {
            self.response_secret = false;
        }
        let mut pattern = Pattern::exact(command);
        if let Some((range, name)) = redaction {
            pattern.redact(range, name);
        }
        pattern
    }

    fn response_pattern(&self, response: Vec<u8>) -> Pattern {
        let len = response.len();
        let mut pattern = Pattern::exact(response);
        if self.trace.header.secrets == Secrets::Masked && self.response_secret && len > 2 {
            pattern.redact(0..len - 2, "plaintext");
        }
        pattern
    }

    /// The report.
    pub fn finish(self) -> ImportReport {
        ImportReport {
            trace: self.trace,
            skipped: self.skipped,
            skipped_beyond_limit: self.skipped_beyond_limit,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str) -> Line<'_> {
        Line {
            number: 7,
            text: Cow::Borrowed(text),
        }
    }

    #[test]
    fn hex_groups_and_their_errors() {
        let l = line("> 00A4 04 00");
        assert_eq!(
            hex("f", &l, &l.as_str()[2..]),
            Ok(vec![0x00, 0xA4, 0x04, 0x00])
        );
        let l = line("x 00 A4 0");
        assert_eq!(
            hex("f", &l, &l.as_str()[2..]),
            Err(ImportError::OddHex {
                origin: "f".into(),
                line: 7,
                column: 9,
                digits: 1
            })
        );
        let l = line("x 0G");
        assert_eq!(
            hex("f", &l, &l.as_str()[2..]),
            Err(ImportError::BadHexDigit {
                origin: "f".into(),
                line: 7,
                column: 4,
                found: 'G'
            })
        );
    }

    #[test]
    fn lines_strip_colours_and_refuse_binary() {
        let mut lines = Lines::new("\x1b[32mgreen\x1b[0m\r\nok\nbad\x00byte\n", "f");
        let first = lines.next_line().unwrap().unwrap();
        assert_eq!((first.number, first.as_str()), (1, "green"));
        assert_eq!(lines.peek().unwrap().map(|l| l.number), Some(2));
        assert_eq!(lines.next_line().unwrap().unwrap().as_str(), "ok");
        assert_eq!(
            lines.next_line().unwrap_err(),
            ImportError::ControlCharacter {
                origin: "f".into(),
                line: 3,
                column: 4,
                code: 0
            }
        );
        let mut lines = Lines::new("a\n", "f");
        assert!(lines.next_line().unwrap().is_some());
        assert!(lines.next_line().unwrap().is_none());
    }

    #[test]
    fn durations() {
        assert_eq!(seconds("0.000123"), Some(Duration::from_micros(123)));
        assert_eq!(seconds("1.5"), Some(Duration::from_millis(1500)));
        assert_eq!(seconds("??.??"), None);
        assert_eq!(millis_text("12ms"), Some(Duration::from_millis(12)));
        assert_eq!(millis_text("0.52ms"), Some(Duration::from_micros(520)));
        assert_eq!(millis_text("1s234ms"), Some(Duration::from_millis(1234)));
        assert_eq!(millis_text("ms"), None);
        assert_eq!(clock_millis("10:49:05.104"), Some(38_945_104));
        assert_eq!(clock_millis("10:49:05"), None);
        assert_eq!(clock_elapsed(10, 25), Duration::from_millis(15));
        assert_eq!(
            clock_elapsed(86_399_990, 5),
            Duration::from_millis(15),
            "across midnight"
        );
    }

    #[test]
    fn exchanges_no_trace_could_hold_are_refused_with_their_line() {
        // Found by fuzzing: a log with an empty ATR, a 0-byte command or a response
        // without SW1 SW2 must be an error, not a trace the writer cannot write.
        let mut builder = Builder::new(ImportFormat::Cardpeek, "f", ImportOptions::default());
        assert_eq!(
            builder.atr(3, Vec::new()),
            Err(ImportError::BadLength {
                origin: "f".into(),
                line: 3,
                announced: 2,
                found: 0
            })
        );
        assert_eq!(
            builder.exchange(7, vec![0x00, 0xA4], vec![0x90, 0x00], None, None),
            Err(ImportError::BadLength {
                origin: "f".into(),
                line: 7,
                announced: 4,
                found: 2
            })
        );
        assert_eq!(
            builder.exchange(9, vec![0x00, 0xA4, 0x04, 0x00], vec![0x90], None, None),
            Err(ImportError::BadLength {
                origin: "f".into(),
                line: 9,
                announced: 2,
                found: 1
            })
        );
        assert!(builder.finish().trace.events.is_empty());
    }

    #[test]
    fn masking_follows_the_recorder() {
        let mut builder = Builder::new(ImportFormat::Pyscard, "f", ImportOptions::default());
        builder
            .exchange(
                1,
                vec![
                    0x00, 0x20, 0x00, 0x80, 0x08, 0x24, 0x12, 0x34, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
                ],
                vec![0x90, 0x00],
                None,
                None,
            )
            .unwrap();
        let report = builder.finish();
        let Some(Event::Exchange(exchange)) = report.trace.events.first() else {
            panic!("no exchange");
        };
        assert!(!exchange.command.is_exact());
        assert_eq!(exchange.command.len(), 13);
    }
}
