//! The `.trace` text format: a streaming reader (constant memory) and a writer that
//! round-trips exactly. The specification, with its grammar and the canonical form the
//! writer produces, is `docs/trace-format.md`.
//!
//! Submodules: `line` holds the grammar of one line (nom combinators for the header
//! lines, a scanner by hand for the patterns, with a vectorised decoder for the hex runs
//! that make most of a trace), `write` the writer and `error` the [`TraceError`] of this
//! layer.
//!
//! The reader offers each line first to a fast way that parses the usual command and
//! response lines in place in the input's buffer, up to the line break it meets; any
//! other line, or one it cannot take, is then found and parsed the general way, which
//! also reports the errors. Both give the same result for every line (a property test
//! below checks it).
//!
//! - [`Reader`] reads a [`BufRead`] line by line with a bounded line buffer and yields
//!   the [`Event`]s one at a time, as an [`Iterator`] or, without allocating once warm,
//!   into a reused [`Event`] ([`Reader::read_event`]); [`parse_str`] and [`read_file`]
//!   collect a [`Trace`].
//! - [`Writer`] writes a header and then events as they come (the recorder's path);
//!   [`write()`] and [`to_string`] write a whole [`Trace`].
//! - [`parse_pattern`] and [`format_pattern`] convert one [`Pattern`].

mod error;
mod line;
mod write;

use std::collections::VecDeque;
use std::io::{self, BufRead};

pub use error::TraceError;
pub use write::{Writer, format_pattern, to_string, write};

use super::{Event, Exchange, FORMAT_VERSION, Header, Pattern, Trace};
use line::{AtLine, Kind, LineError, Version};

/// The longest line the reader accepts, in bytes (line break excluded). The longest
/// legal line is an extended command APDU of 65,544 bytes written one byte per token
/// (`XX `: 196,632 characters) with a duration and a note: 1 MiB leaves room for long
/// notes while keeping the reader's memory bounded.
pub const MAX_LINE_LEN: usize = 1 << 20;

/// The most bytes one pattern may stand for: an extended command APDU with 65,535 data
/// bytes, a 3-byte Lc and a 2-byte Le (ISO 7816-4 §5.1: 4 + 3 + 65,535 + 2). A response
/// (65,536 data bytes + SW1 SW2) fits too.
pub const MAX_PATTERN_LEN: usize = 65_544;

/// How many bytes of lines [`Reader::new`] reads ahead, after line 1, while looking for
/// header lines among comments and ATRs before the first exchange. A header line after
/// that is [`TraceError::HeaderTooLong`]; this keeps the reader's memory bounded.
pub const MAX_HEADER_LEN: usize = 4 << 20;

/// Line 1 longer than this is not a version line: reported as
/// [`TraceError::NotATrace`] without reading further.
const VERSION_LINE_LIMIT: usize = 256;

/// A streaming reader of `.trace` text: reads the version line and the header when
/// created, then yields the body's events one by one. Memory is bounded by
/// [`MAX_LINE_LEN`] and [`MAX_HEADER_LEN`] (plus the input's own buffer) whatever the
/// input size.
///
/// Two ways to take the events: as an [`Iterator`] of owned [`Event`]s, or with
/// [`Reader::read_event`] into one [`Event`] whose buffers are reused (no allocation per
/// event once warm: the way to stream a multi-gigabyte trace). Both stop after the first
/// error.
///
/// Lines are parsed in place in the input's buffer; a line is copied only when it
/// straddles two fills of that buffer.
///
/// ```
/// use telepay::trace::Event;
/// use telepay::trace::format::Reader;
///
/// let text = "telepay-trace 1\n@reader sim:\n\n> 00B2010C00\n< 6A83  @80us\n";
/// let mut reader = Reader::new(text.as_bytes(), "example.trace")?;
/// assert_eq!(reader.header().reader.as_deref(), Some("sim:"));
/// let Some(Ok(Event::Exchange(exchange))) = reader.next() else { panic!("an exchange") };
/// assert_eq!(exchange.response.to_bytes(), Some(vec![0x6A, 0x83]));
/// assert_eq!(reader.line(), 4);
/// assert!(reader.next().is_none());
/// # Ok::<(), telepay::trace::format::TraceError>(())
/// ```
pub struct Reader<R: BufRead> {
    lines: Lines<R>,
    state: State,
    /// The event the [`Iterator`] reads into, buffers reused, before it hands out a copy:
    /// a copy allocates each buffer once, at its exact size, where building each owned
    /// event afresh would grow its buffers step by step.
    scratch: Event,
}

/// Everything the reader knows besides its input.
struct State {
    header: Header,
    /// Events read ahead by [`Reader::new`] while looking for header lines, with their
    /// line numbers.
    queue: VecDeque<(usize, Event)>,
    /// The line of a `>` command waiting for its `<` response.
    pending_line: Option<usize>,
    /// That command (its buffers are reused from command to command).
    pending: Pattern,
    /// Buffers of event kinds not in use, kept for reuse by [`Reader::read_event`].
    spare: Spare,
    /// Buffers of segments not in use, kept for reuse by the line parser.
    pool: line::Pool,
    /// Whether a `>` has been read: header lines are then refused.
    seen_exchange: bool,
    /// Whether [`Reader::new`] stopped reading ahead at [`MAX_HEADER_LEN`].
    header_frozen: bool,
    /// The line of the last event returned.
    event_line: usize,
    /// Set after an error or the end: nothing more is read.
    done: bool,
}

/// The line source: hands out each line in place in the input's buffer, or from a
/// bounded buffer of its own when a line straddles two fills.
struct Lines<R: BufRead> {
    input: R,
    origin: String,
    /// A line being assembled across fills of the input's buffer.
    buf: Vec<u8>,
    /// The number of the last line handed out, from 1 (0 before the first).
    number: usize,
}

/// `line` without a final `\r` (a `\r\n` line break).
#[inline]
fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

impl<R: BufRead> Lines<R> {
    /// Calls `handle` with the next line (without its `\n` or `\r\n`), its number and the
    /// origin; `None` at the end of the input. A line of more than `limit` bytes is
    /// [`TraceError::LineTooLong`], and no more than `limit + 2` bytes of it are held:
    /// a 2 GB line costs `limit` bytes of memory, not 2 GB (the start of the line is
    /// then in `buf`).
    fn next_line<T>(
        &mut self,
        limit: usize,
        handle: impl FnOnce(&[u8], usize, &str) -> T,
    ) -> Result<Option<T>, Box<TraceError>> {
        self.buf.clear();
        // Room for the line and its `\r\n`.
        let cap = limit.saturating_add(2);
        loop {
            let available = match self.input.fill_buf() {
                Ok(available) => available,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(Box::new(TraceError::Io {
                        origin: self.origin.clone(),
                        source,
                    }));
                }
            };
            if available.is_empty() {
                // The end: a last line without a line break, or nothing.
                if self.buf.is_empty() {
                    return Ok(None);
                }
                self.number = self.number.saturating_add(1);
                if self.buf.len() > limit {
                    return Err(self.too_long(limit));
                }
                return Ok(Some(handle(&self.buf, self.number, &self.origin)));
            }
            match line::find_newline(available) {
                Some(end) if self.buf.is_empty() => {
                    // The whole line is in the input's buffer: parsed in place.
                    self.number = self.number.saturating_add(1);
                    let line = strip_cr(available.get(..end).unwrap_or_default());
                    if line.len() > limit {
                        let start = line.get(..cap).unwrap_or(line);
                        self.buf.extend_from_slice(start);
                        return Err(self.too_long(limit));
                    }
                    let result = handle(line, self.number, &self.origin);
                    self.input.consume(end.saturating_add(1));
                    return Ok(Some(result));
                }
                Some(end) => {
                    let room = cap.saturating_sub(self.buf.len());
                    let part = available.get(..end.min(room)).unwrap_or_default();
                    self.buf.extend_from_slice(part);
                    self.number = self.number.saturating_add(1);
                    if end > room {
                        return Err(self.too_long(limit));
                    }
                    self.input.consume(end.saturating_add(1));
                    if self.buf.last() == Some(&b'\r') {
                        self.buf.pop();
                    }
                    if self.buf.len() > limit {
                        return Err(self.too_long(limit));
                    }
                    return Ok(Some(handle(&self.buf, self.number, &self.origin)));
                }
                None => {
                    let room = cap.saturating_sub(self.buf.len());
                    let taken = available.len().min(room);
                    self.buf
                        .extend_from_slice(available.get(..taken).unwrap_or_default());
                    self.input.consume(taken);
                    if self.buf.len() >= cap {
                        // Longer than the limit even with a `\r\n` still to come.
                        self.number = self.number.saturating_add(1);
                        return Err(self.too_long(limit));
                    }
                }
            }
        }
    }

    /// Offers the next line to `parse` in place in the input's buffer, before its line
    /// break is looked for: `parse` gets a window on the buffer from the start of the line
    /// (at most `limit` bytes and a `\r\n`) and the line's number, and returns how many
    /// bytes the line and its line break take, with its result; or `None` (a line of
    /// another shape, an error, a line that does not end in the window), and then
    /// nothing is consumed and [`Lines::next_line`] reads the line the general way.
    ///
    /// This is the fast way for the lines that make most of a trace: it spares the
    /// separate search for the line break, since the parser stops at it anyway.
    fn next_in_place<T>(
        &mut self,
        limit: usize,
        parse: impl FnOnce(&[u8], usize) -> Option<(usize, T)>,
    ) -> Result<Option<T>, Box<TraceError>> {
        let available = match self.input.fill_buf() {
            Ok(available) => available,
            // Retried by `next_line`.
            Err(error) if error.kind() == io::ErrorKind::Interrupted => return Ok(None),
            Err(source) => {
                return Err(Box::new(TraceError::Io {
                    origin: self.origin.clone(),
                    source,
                }));
            }
        };
        let window = available
            .get(..limit.saturating_add(2))
            .unwrap_or(available);
        let number = self.number.saturating_add(1);
        let Some((taken, result)) = parse(window, number) else {
            return Ok(None);
        };
        self.number = number;
        self.input.consume(taken);
        Ok(Some(result))
    }

    /// The error for the line being read (boxed: errors are rare, and a small `Result`
    /// keeps the per-line path cheap).
    fn too_long(&self, limit: usize) -> Box<TraceError> {
        Box::new(TraceError::LineTooLong {
            origin: self.origin.clone(),
            line: self.number,
            limit,
        })
    }

    /// Line 1: the format version.
    fn version(&mut self) -> Result<u32, TraceError> {
        let origin = self.origin.clone();
        let not_a_trace = |found: String| TraceError::NotATrace {
            origin: origin.clone(),
            found,
        };
        let version =
            match self.next_line(VERSION_LINE_LIMIT, |line, _, _| {
                match line::version_line(line) {
                    Some(Version::Number(version)) => Ok(Ok(version)),
                    Some(Version::TooLarge(digits)) => Ok(Err(shorten(digits))),
                    None => Err(line::excerpt_bytes(line)),
                }
            }) {
                Ok(Some(version)) => version,
                Ok(None) => return Err(not_a_trace("end of file".to_owned())),
                Err(error) if matches!(*error, TraceError::LineTooLong { .. }) => {
                    return Err(not_a_trace(line::excerpt_bytes(&self.buf)));
                }
                Err(error) => return Err(*error),
            };
        match version {
            Ok(Ok(version)) if version <= FORMAT_VERSION => Ok(version),
            Ok(Ok(version)) => Err(TraceError::UnsupportedVersion {
                origin,
                found: version.to_string(),
                supported: FORMAT_VERSION,
            }),
            Ok(Err(digits)) => Err(TraceError::UnsupportedVersion {
                origin,
                found: digits,
                supported: FORMAT_VERSION,
            }),
            Err(found) => Err(not_a_trace(found)),
        }
    }
}

/// A very long run of digits, shortened for a message.
fn shorten(digits: &str) -> String {
    match digits.get(..20) {
        Some(head) if digits.len() > 20 => format!("{head}… ({} digits)", digits.len()),
        _ => digits.to_owned(),
    }
}

/// A [`LineError`] in `line` (line `number` of `origin`) as a [`TraceError`]: the line
/// is checked as UTF-8 first, so that binary data is reported as such
/// ([`TraceError::InvalidUtf8`]); otherwise a [`TraceError::Syntax`] with the column in
/// characters.
fn syntax_error(origin: &str, number: usize, line: &[u8], error: LineError<'_>) -> Box<TraceError> {
    let text = match std::str::from_utf8(line) {
        Ok(text) => text,
        Err(invalid) => {
            return Box::new(TraceError::InvalidUtf8 {
                origin: origin.to_owned(),
                line: number,
                column: invalid.valid_up_to().saturating_add(1),
            });
        }
    };
    // The error's input is a sub-slice of `line`; its offset is found by address. An
    // empty one is the end of the line (nom's empty remainders may point anywhere).
    let offset = (error.input.as_ptr() as usize)
        .checked_sub(line.as_ptr() as usize)
        .filter(|offset| {
            !error.input.is_empty() && *offset <= text.len() && text.is_char_boundary(*offset)
        })
        .unwrap_or(text.len());
    let (before, after) = text.split_at(offset);
    Box::new(TraceError::Syntax {
        origin: origin.to_owned(),
        line: number,
        column: before.chars().count().saturating_add(1),
        expected: error.expected.to_owned(),
        found: error.found.unwrap_or_else(|| line::excerpt(after)),
    })
}

/// The line of the first occurrence of each single-valued header key.
#[derive(Default)]
struct SeenKeys {
    reader: Option<usize>,
    protocol: Option<usize>,
    profile: Option<usize>,
    date: Option<usize>,
    secrets: Option<usize>,
}

/// What a line of the header part did.
enum HeaderStep {
    /// Read; go on.
    Next,
    /// A `>` line: the body has begun.
    Body,
}

/// Buffers of the event kinds [`Reader::read_event`] is not producing at the moment,
/// kept so that switching between comments, ATRs and exchanges does not allocate.
#[derive(Default)]
struct Spare {
    exchange: Option<Exchange>,
    comment: String,
    atr: Pattern,
    note: Option<String>,
}

impl Spare {
    /// Keeps the buffers of an event being replaced.
    fn stash(&mut self, event: Event) {
        match event {
            Event::Exchange(mut exchange) => {
                if let Some(note) = exchange.note.take() {
                    self.note = Some(note);
                }
                self.exchange = Some(exchange);
            }
            Event::Comment(text) => self.comment = text,
            Event::AnswerToReset(atr) => self.atr = atr,
        }
    }

    /// The exchange in `event`, or a spare one (`event` is left an empty comment).
    fn take_exchange(&mut self, event: &mut Event) -> Exchange {
        match std::mem::replace(event, Event::Comment(String::new())) {
            Event::Exchange(exchange) => exchange,
            other => {
                self.stash(other);
                self.exchange.take().unwrap_or_else(|| Exchange {
                    command: Pattern::default(),
                    response: Pattern::default(),
                    elapsed: None,
                    note: None,
                })
            }
        }
    }

    /// The comment string in `event`, or the spare one.
    fn take_comment(&mut self, event: &mut Event) -> String {
        match std::mem::replace(event, Event::Comment(String::new())) {
            Event::Comment(text) => text,
            other => {
                self.stash(other);
                std::mem::take(&mut self.comment)
            }
        }
    }

    /// The ATR pattern in `event`, or the spare one.
    fn take_atr(&mut self, event: &mut Event) -> Pattern {
        match std::mem::replace(event, Event::Comment(String::new())) {
            Event::AnswerToReset(atr) => atr,
            other => {
                self.stash(other);
                std::mem::take(&mut self.atr)
            }
        }
    }

    /// Sets `slot` to `note`, reusing the string there or the spare one.
    fn set_note(&mut self, slot: &mut Option<String>, note: Option<&str>) {
        match note {
            Some(text) => {
                let mut buffer = slot.take().or_else(|| self.note.take()).unwrap_or_default();
                buffer.clear();
                buffer.push_str(text);
                *slot = Some(buffer);
            }
            None => {
                if let Some(buffer) = slot.take() {
                    self.note = Some(buffer);
                }
            }
        }
    }
}

/// How many bytes a line parsed in place takes, its line break included: its text is
/// the first `text_len` bytes of `window`, followed by the line break. `None` for a text
/// over [`MAX_LINE_LEN`], which the general way reports. Checked before the reader's
/// state changes, so that `None` leaves the state as it was.
// Once per line: a plain `#[inline]` left it out of line.
#[inline(always)]
fn taken_in_place(window: &[u8], text_len: usize) -> Option<usize> {
    if text_len > MAX_LINE_LEN {
        return None;
    }
    text_len.checked_add(line::line_break_len(window, text_len)?)
}

impl State {
    /// Reads a `>` or `<` line of the usual shape in place ([`Lines::next_in_place`]):
    /// the same effect as [`State::body_line`] on that line, for the lines it can take
    /// without an error. Returns the bytes the line and its line break take, and whether
    /// it completed an event (in `event`); `None` leaves the line to
    /// [`State::body_line`], which also reports the errors.
    #[inline]
    fn in_place_line(
        &mut self,
        window: &[u8],
        number: usize,
        event: &mut Event,
    ) -> Option<(usize, bool)> {
        let marker = line::skip_blanks(window, 0);
        let body_start = marker.saturating_add(1);
        let body = window.get(body_start..)?;
        match window.get(marker)? {
            b'>' => {
                // A command while one waits for its response is an error.
                if self.pending_line.is_some() {
                    return None;
                }
                let end = line::command_in_place(body, &mut self.pending, &mut self.pool)?;
                let taken = taken_in_place(window, body_start.saturating_add(end))?;
                self.pending_line = Some(number);
                self.seen_exchange = true;
                Some((taken, false))
            }
            b'<' => {
                let command_line = self.pending_line?;
                if !matches!(event, Event::Exchange(_)) {
                    *event = Event::Exchange(self.spare.take_exchange(event));
                }
                let Event::Exchange(exchange) = event else {
                    return None;
                };
                let (elapsed, note, end) =
                    line::response_in_place(body, &mut exchange.response, &mut self.pool)?;
                let taken = taken_in_place(window, body_start.saturating_add(end))?;
                std::mem::swap(&mut exchange.command, &mut self.pending);
                exchange.elapsed = elapsed;
                self.spare.set_note(&mut exchange.note, note);
                self.pending_line = None;
                self.event_line = command_line;
                Some((taken, true))
            }
            _ => None,
        }
    }

    /// Handles one line of the header part (before the first exchange).
    fn header_line(
        &mut self,
        line: &[u8],
        number: usize,
        origin: &str,
        seen: &mut SeenKeys,
    ) -> Result<HeaderStep, Box<TraceError>> {
        let syntax = |error| syntax_error(origin, number, line, error);
        let (kind, body) = line::classify(line).map_err(syntax)?;
        let mut atr = Pattern::default();
        let (key, value) = match kind {
            Kind::Blank => return Ok(HeaderStep::Next),
            Kind::Comment => {
                let comment = line::comment(body).map_err(syntax)?;
                self.queue
                    .push_back((number, Event::Comment(comment.to_owned())));
                return Ok(HeaderStep::Next);
            }
            Kind::Command => {
                line::command(body, &mut self.pending, &mut self.pool).map_err(syntax)?;
                self.pending_line = Some(number);
                self.seen_exchange = true;
                return Ok(HeaderStep::Body);
            }
            Kind::Response => {
                return Err(Box::new(TraceError::ResponseWithoutCommand {
                    origin: origin.to_owned(),
                    line: number,
                }));
            }
            Kind::At => match line::at_line(body, &mut atr, &mut self.pool).map_err(syntax)? {
                AtLine::Atr => {
                    self.queue.push_back((number, Event::AnswerToReset(atr)));
                    return Ok(HeaderStep::Next);
                }
                AtLine::Secrets(secrets) => {
                    self.header.secrets = secrets;
                    ("secrets", None)
                }
                AtLine::Header { key, value } => (key, Some(value)),
            },
        };
        let (slot, field) = match key {
            "secrets" => (&mut seen.secrets, None),
            "reader" => (&mut seen.reader, Some(&mut self.header.reader)),
            "protocol" => (&mut seen.protocol, Some(&mut self.header.protocol)),
            "profile" => (&mut seen.profile, Some(&mut self.header.profile)),
            "date" => (&mut seen.date, Some(&mut self.header.date)),
            _ => {
                let value = value.unwrap_or_default().to_owned();
                self.header.extra.push((key.to_owned(), value));
                return Ok(HeaderStep::Next);
            }
        };
        // A single-valued key given twice would silently lose the first value.
        if let Some(first_line) = *slot {
            return Err(Box::new(TraceError::DuplicateHeader {
                origin: origin.to_owned(),
                line: number,
                key: key.to_owned(),
                first_line,
            }));
        }
        *slot = Some(number);
        if let (Some(field), Some(value)) = (field, value) {
            *field = Some(value.to_owned());
        }
        Ok(HeaderStep::Next)
    }

    /// Handles one line of the body: `true` when it completed an event, now in `event`.
    fn body_line(
        &mut self,
        line: &[u8],
        number: usize,
        origin: &str,
        event: &mut Event,
    ) -> Result<bool, Box<TraceError>> {
        let syntax = |error| syntax_error(origin, number, line, error);
        let (kind, body) = line::classify(line).map_err(syntax)?;
        match kind {
            Kind::Blank => Ok(false),
            Kind::Comment => {
                let comment = line::comment(body).map_err(syntax)?;
                let mut buffer = self.spare.take_comment(event);
                buffer.clear();
                buffer.push_str(comment);
                *event = Event::Comment(buffer);
                self.event_line = number;
                Ok(true)
            }
            Kind::At => {
                let mut atr = self.spare.take_atr(event);
                let parsed = line::at_line(body, &mut atr, &mut self.pool).map_err(syntax);
                let key = match parsed? {
                    AtLine::Atr => {
                        if let Some(line) = self.pending_line {
                            return Err(Box::new(TraceError::CommandWithoutResponse {
                                origin: origin.to_owned(),
                                line,
                            }));
                        }
                        *event = Event::AnswerToReset(atr);
                        self.event_line = number;
                        return Ok(true);
                    }
                    AtLine::Secrets(_) => "secrets",
                    AtLine::Header { key, .. } => key,
                };
                Err(Box::new(if self.header_frozen && !self.seen_exchange {
                    TraceError::HeaderTooLong {
                        origin: origin.to_owned(),
                        line: number,
                        key: key.to_owned(),
                        limit: MAX_HEADER_LEN,
                    }
                } else {
                    TraceError::HeaderAfterExchange {
                        origin: origin.to_owned(),
                        line: number,
                        key: key.to_owned(),
                    }
                }))
            }
            Kind::Command => {
                // Checked before parsing: the pending command's buffers are reused.
                if let Some(line) = self.pending_line {
                    return Err(Box::new(TraceError::CommandWithoutResponse {
                        origin: origin.to_owned(),
                        line,
                    }));
                }
                line::command(body, &mut self.pending, &mut self.pool).map_err(syntax)?;
                self.pending_line = Some(number);
                self.seen_exchange = true;
                Ok(false)
            }
            Kind::Response => {
                let Some(command_line) = self.pending_line.take() else {
                    return Err(Box::new(TraceError::ResponseWithoutCommand {
                        origin: origin.to_owned(),
                        line: number,
                    }));
                };
                if !matches!(event, Event::Exchange(_)) {
                    *event = Event::Exchange(self.spare.take_exchange(event));
                }
                if let Event::Exchange(exchange) = event {
                    let (elapsed, note) =
                        line::response(body, &mut exchange.response, &mut self.pool)
                            .map_err(syntax)?;
                    std::mem::swap(&mut exchange.command, &mut self.pending);
                    exchange.elapsed = elapsed;
                    self.spare.set_note(&mut exchange.note, note);
                }
                self.event_line = command_line;
                Ok(true)
            }
        }
    }
}

impl<R: BufRead> Reader<R> {
    /// Reads the version line and the header from `input`; `origin` names the input in
    /// errors (a file name).
    ///
    /// Header lines may be mixed with comments, `@atr` lines and blank lines up to the
    /// first exchange; the comments and ATRs met are kept and returned first. Reading
    /// ahead stops at the first `>` line or after [`MAX_HEADER_LEN`] bytes, so an error
    /// in that part of the file (a `<` without `>`, a malformed line) is returned here.
    pub fn new(input: R, origin: &str) -> Result<Reader<R>, TraceError> {
        let mut lines = Lines {
            input,
            origin: origin.to_owned(),
            buf: Vec::new(),
            number: 0,
        };
        let version = lines.version()?;
        let mut reader = Reader {
            lines,
            scratch: Event::Comment(String::new()),
            state: State {
                header: Header {
                    version,
                    ..Header::default()
                },
                queue: VecDeque::new(),
                pending_line: None,
                pending: Pattern::default(),
                spare: Spare::default(),
                pool: line::Pool::default(),
                seen_exchange: false,
                header_frozen: false,
                event_line: 0,
                done: false,
            },
        };
        reader.read_header().map_err(|error| *error)?;
        Ok(reader)
    }

    /// Reads header lines up to the first exchange, keeping the events met on the way.
    fn read_header(&mut self) -> Result<(), Box<TraceError>> {
        let Reader { lines, state, .. } = self;
        let mut seen = SeenKeys::default();
        let mut read = 0usize;
        loop {
            if read > MAX_HEADER_LEN {
                state.header_frozen = true;
                return Ok(());
            }
            let step = lines.next_line(MAX_LINE_LEN, |line, number, origin| {
                read = read.saturating_add(line.len().saturating_add(1));
                state.header_line(line, number, origin, &mut seen)
            })?;
            match step {
                None | Some(Ok(HeaderStep::Body)) => return Ok(()),
                Some(Ok(HeaderStep::Next)) => {}
                Some(Err(error)) => return Err(error),
            }
        }
    }

    /// The header.
    pub fn header(&self) -> &Header {
        &self.state.header
    }

    /// The line of the last event returned (for an exchange, the line of its `>`).
    pub fn line(&self) -> usize {
        self.state.event_line
    }

    /// The origin given to [`Reader::new`].
    pub fn origin(&self) -> &str {
        &self.lines.origin
    }

    /// Reads the next event into `event`, reusing its buffers (and those of earlier
    /// events of other kinds): once warm, reading an event allocates nothing, like
    /// [`BufRead::read_line`] into a reused `String`. Returns `false` at the end.
    ///
    /// After an error, `event` holds an unspecified value and every later call returns
    /// `Ok(false)`.
    ///
    /// ```
    /// use telepay::trace::Event;
    /// use telepay::trace::format::Reader;
    ///
    /// let text = "telepay-trace 1\n\n> 00B2010C00\n< 6A83\n> 00B2020C00\n< 9000\n";
    /// let mut reader = Reader::new(text.as_bytes(), "example.trace")?;
    /// let mut event = Event::Comment(String::new());
    /// let mut status_words = Vec::new();
    /// while reader.read_event(&mut event)? {
    ///     if let Event::Exchange(exchange) = &event {
    ///         status_words.push(exchange.response.to_bytes());
    ///     }
    /// }
    /// assert_eq!(status_words, [Some(vec![0x6A, 0x83]), Some(vec![0x90, 0x00])]);
    /// # Ok::<(), telepay::trace::format::TraceError>(())
    /// ```
    pub fn read_event(&mut self, event: &mut Event) -> Result<bool, TraceError> {
        let Reader { lines, state, .. } = self;
        if state.done {
            return Ok(false);
        }
        if let Some((line, queued)) = state.queue.pop_front() {
            state.spare.stash(std::mem::replace(event, queued));
            state.event_line = line;
            return Ok(true);
        }
        let result = loop {
            match lines.next_in_place(MAX_LINE_LEN, |window, number| {
                state.in_place_line(window, number, event)
            }) {
                Ok(Some(true)) => break Ok(true),
                Ok(Some(false)) => continue,
                Ok(None) => {}
                Err(error) => break Err(error),
            }
            match lines.next_line(MAX_LINE_LEN, |line, number, origin| {
                state.body_line(line, number, origin, event)
            }) {
                Ok(Some(Ok(false))) => {}
                Ok(Some(result)) => break result,
                Ok(None) => {
                    break match state.pending_line.take() {
                        Some(line) => Err(Box::new(TraceError::Truncated {
                            origin: lines.origin.clone(),
                            line,
                            expected: "the `<` response of the `>` command".to_owned(),
                        })),
                        None => Ok(false),
                    };
                }
                Err(error) => break Err(error),
            }
        };
        if !matches!(result, Ok(true)) {
            state.done = true;
        }
        result.map_err(|error| *error)
    }
}

impl<R: BufRead> Iterator for Reader<R> {
    type Item = Result<Event, TraceError>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut scratch = std::mem::replace(&mut self.scratch, Event::Comment(String::new()));
        let item = match self.read_event(&mut scratch) {
            Ok(true) => Some(Ok(scratch.clone())),
            Ok(false) => None,
            Err(error) => Some(Err(error)),
        };
        self.scratch = scratch;
        item
    }
}

impl<R: BufRead> std::iter::FusedIterator for Reader<R> {}

/// Parses a whole trace held in memory; `origin` names it in errors.
pub fn parse_str(text: &str, origin: &str) -> Result<Trace, TraceError> {
    collect(Reader::new(text.as_bytes(), origin)?)
}

/// Reads a whole trace file; the path names it in errors. For large files, prefer
/// iterating a [`Reader`].
pub fn read_file(path: &std::path::Path) -> Result<Trace, TraceError> {
    let origin = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|source| TraceError::Io {
        origin: origin.clone(),
        source,
    })?;
    collect(Reader::new(
        std::io::BufReader::with_capacity(1 << 16, file),
        &origin,
    )?)
}

/// All the events of a reader, with its header.
fn collect<R: BufRead>(reader: Reader<R>) -> Result<Trace, TraceError> {
    let header = reader.header().clone();
    let events = reader.collect::<Result<Vec<_>, _>>()?;
    Ok(Trace { header, events })
}

/// Parses one pattern (`77 1E 9F27 01 ????`, `<pin:8>`): at least one byte; errors name
/// the origin `<pattern>`, line 1.
pub fn parse_pattern(text: &str) -> Result<Pattern, TraceError> {
    line::pattern_only(text.as_bytes())
        .map_err(|error| *syntax_error("<pattern>", 1, text.as_bytes(), error))
}

#[cfg(test)]
mod tests {
    use std::io::BufReader;

    use proptest::prelude::*;

    use super::*;

    /// Every event (with its line) or the error, as the reader gives them: the events
    /// read into one reused event, the error displayed.
    fn outcome<R: BufRead>(input: R) -> Vec<Result<(usize, Event), String>> {
        let mut reader = match Reader::new(input, "t.trace") {
            Ok(reader) => reader,
            Err(error) => return vec![Err(error.to_string())],
        };
        let mut event = Event::Comment(String::new());
        let mut out = Vec::new();
        loop {
            match reader.read_event(&mut event) {
                Ok(true) => out.push(Ok((reader.line(), event.clone()))),
                Ok(false) => return out,
                Err(error) => {
                    out.push(Err(error.to_string()));
                    return out;
                }
            }
        }
    }

    /// `text` read from a buffer of one byte: every line is then cut by the end of the
    /// buffer and read the general way, never in place.
    fn outcome_the_general_way(text: &str) -> Vec<Result<(usize, Event), String>> {
        outcome(BufReader::with_capacity(1, text.as_bytes()))
    }

    #[test]
    fn lines_in_place_and_the_general_way_agree_on_examples() {
        // Texts after the version line; each must read the same both ways.
        let cases = [
            "\n> 00A4040007A0000000421010\n< 6F10 ????  @1.5ms\n",
            // `\r\n` line breaks, blanks before the line break.
            "\r\n> 00B2010C00 \t\r\n< 70 <pan:8> 9000  @80us \r\n",
            // Notes: empty, not ASCII, with a control character, with a `\r` left.
            "\n> 80CA9F3600\n< 9F3602 ???? 9000  @95us  # ATC\n",
            "\n> 00\n< 9000 #\n> 00\n< 9000 # été\r\n",
            "\n> 00\n< 9000 # \u{7f}\n",
            "\n> 00\n< 9000 # a\r\r\n",
            // Errors: a stray `\r`, an odd run at the line break, a duration glued to it.
            "\n> 00\r11\n< 9000\n",
            "\n> 00A\n< 9000\n",
            "\n> 00\n< 9000  @5\n",
            "\n> 00\n< 9000@5us\n",
            "\n> 00\n< 9000  @5us\r\r\n",
            // The last line without a line break.
            "\n> 00\n< 9000  @5us",
            // A command without its response, a response without command.
            "\n> 00\n> 01\n< 9000\n",
            "\n< 9000\n",
        ];
        for body in cases {
            let text = format!("telepay-trace 1\n{body}");
            assert_eq!(
                outcome(text.as_bytes()),
                outcome_the_general_way(&text),
                "{text:?}"
            );
        }
        // A note that is not UTF-8.
        let text = b"telepay-trace 1\n\n> 00\n< 9000\n> 00\n< 9000 # \xFF\n";
        let in_place = outcome(&text[..]);
        assert_eq!(in_place, outcome(BufReader::with_capacity(1, &text[..])));
        assert_eq!(
            in_place.last(),
            Some(&Err(
                "t.trace:6:10: invalid UTF-8 (binary data?) at byte column 10".to_owned()
            ))
        );
    }

    #[test]
    fn crlf_lines_read_in_place_like_lf_lines() {
        let lf = "telepay-trace 1\n\n> 00B2010C00\n< 70 <pan:8> 9000  @880.5us\n";
        let crlf = lf.replace('\n', "\r\n");
        assert_eq!(outcome(crlf.as_bytes()), outcome(lf.as_bytes()));
        assert_eq!(outcome(lf.as_bytes()).len(), 1);
    }

    #[test]
    fn a_line_over_the_limit_in_a_large_buffer_is_still_too_long() {
        // Lines that fit whole in the buffer, padded with blanks to the limit and one
        // byte over it: the in-place way must leave the longer one to the general way,
        // which refuses it, with either line break.
        let line = |len: usize| format!("> 00{}", " ".repeat(len - 4));
        for line_break in ["\n", "\r\n"] {
            let read = |len: usize| {
                // After a first exchange: the first `>` line is read with the header.
                let text = format!(
                    "telepay-trace 1\n\n> 00\n< 9000\n{}{line_break}< 9000{line_break}",
                    line(len)
                );
                outcome(BufReader::with_capacity(4 * MAX_LINE_LEN, text.as_bytes()))
            };
            let over = read(MAX_LINE_LEN + 1);
            let too_long = format!("t.trace:5: line longer than {MAX_LINE_LEN} bytes");
            assert!(
                matches!(over.as_slice(), [Ok((3, _)), Err(error)] if *error == too_long),
                "{line_break:?}: {over:?}"
            );
            let at_limit = read(MAX_LINE_LEN);
            assert!(
                matches!(
                    at_limit.as_slice(),
                    [Ok((3, _)), Ok((5, Event::Exchange(_)))]
                ),
                "{line_break:?}: {at_limit:?}"
            );
        }
    }

    #[test]
    fn the_iterator_hands_out_events_equal_to_those_read_in_place() {
        let text = "telepay-trace 1\n# c\n@atr 3B00\n\n> 00B2010C00\n< 70 <pan:8> 9000  @1ms\n\
                    > 00B2020C00\n< 6A83\n# end\n";
        let owned = Reader::new(text.as_bytes(), "t.trace")
            .and_then(|reader| reader.collect::<Result<Vec<_>, _>>())
            .unwrap_or_else(|error| panic!("{error}"));
        let reused: Vec<_> = outcome(text.as_bytes())
            .into_iter()
            .filter_map(|item| item.ok().map(|(_, event)| event))
            .collect();
        assert_eq!(owned.len(), 5);
        assert_eq!(owned, reused);
    }

    /// Lines made of the pieces where reading in place and the general way could part:
    /// line breaks (`\n`, `\r\n`, a lone `\r`), blanks, runs cut anywhere, durations,
    /// notes, text that is not ASCII or not printable.
    fn body_text() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("\n> ".to_owned()),
            Just("\n< ".to_owned()),
            Just("\r\n> ".to_owned()),
            Just("\r\n< ".to_owned()),
            Just("\n".to_owned()),
            Just("\r".to_owned()),
            Just(" ".to_owned()),
            Just("\t".to_owned()),
            Just("9000".to_owned()),
            Just("??".to_owned()),
            Just("?".to_owned()),
            Just("<pan:8>".to_owned()),
            Just("<a:0>".to_owned()),
            Just("  @1.5ms".to_owned()),
            Just(" @80us".to_owned()),
            Just("@".to_owned()),
            Just("s".to_owned()),
            Just("  # note".to_owned()),
            Just("#".to_owned()),
            Just("é".to_owned()),
            Just("\u{1}".to_owned()),
            Just("\n# comment".to_owned()),
            Just("\n@atr 3B".to_owned()),
            "[0-9A-Fa-f]{1,70}",
            "[ -~]{0,3}",
        ];
        proptest::collection::vec(piece, 0..30)
            .prop_map(|pieces| format!("telepay-trace 1\n{}", pieces.concat()))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn lines_in_place_and_the_general_way_agree(
            text in body_text(),
            capacity in 1usize..200,
        ) {
            let general = outcome_the_general_way(&text);
            // All in one buffer: every line that can be is read in place.
            prop_assert_eq!(&outcome(text.as_bytes()), &general, "{:?}", text);
            // Buffers of other sizes: lines cut anywhere.
            let input = BufReader::with_capacity(capacity, text.as_bytes());
            prop_assert_eq!(&outcome(input), &general, "{:?} ({})", text, capacity);
        }
    }
}
