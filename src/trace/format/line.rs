//! The grammar of one line. The reader hands over each line as bytes, without its line
//! break, straight from its input buffer: [`classify`] tells the kind of line from its
//! first character, then [`comment`], [`at_line`], [`command`] or [`response`] parses
//! the rest; the version line (line 1) is parsed by [`version_line`].
//!
//! The command and response lines of the usual shape — nearly all of a trace — are first
//! offered in place, before their line break is looked for: [`command_in_place`] and
//! [`response_in_place`] parse them from the input's buffer up to the line break they
//! meet, with the same functions (a [`LineEnd`] tells them where a line ends), and give
//! up on anything else (an error, a line cut by the end of the buffer), which is then
//! read the general way. This spares a separate pass over each line to find its end.
//!
//! The grammar works on bytes, so that a line of patterns (nearly all of a trace) is
//! read in one pass with no separate UTF-8 check: everything a pattern, a duration or a
//! header key accepts is ASCII, and the free text that is kept (comments, notes, header
//! values) is checked as UTF-8 where it is taken. Every line accepted is therefore UTF-8;
//! on an error, the reader checks the whole line first, so binary data is reported as
//! [`super::TraceError::InvalidUtf8`].
//!
//! Header lines and the version line are written with nom combinators. Patterns are
//! scanned by hand with a table of byte classes; their runs of hex digits — most of a
//! trace's bytes — are decoded 32 digits at a time by element-wise code the compiler
//! vectorises, into buffers reused from event to event ([`pattern`], [`Pool`]);
//! redactions and durations are scanned byte by byte.
//!
//! Errors carry the sub-slice of the line where they occur; the reader turns that into
//! a line and column (see [`LineError`]).

use std::time::Duration;

use nom::bytes::complete::{tag, take_while1};
use nom::character::complete::{digit1, space0, space1};
use nom::error::{ErrorKind, ParseError};
use nom::sequence::preceded;
use nom::{Err as NomErr, IResult, Parser};

use super::MAX_PATTERN_LEN;
use crate::trace::{Pattern, Secrets, Segment};

/// What a line may start with.
pub(super) const E_LINE_START: &str = "`>`, `<`, `@`, `#` or a blank line";
/// A pattern token.
pub(super) const E_TOKEN: &str = "hex digits, `??` or `<name:N>`";
/// A hex run with an odd number of digits.
pub(super) const E_HEX_PAIRS: &str = "pairs of hex digits";
/// A `?` run with an odd number of `?`.
pub(super) const E_ANY_PAIRS: &str = "`??` per byte";
/// A malformed redaction.
pub(super) const E_REDACTION: &str = "`<name:N>` with a name of a-z, 0-9, `_` or `-` and N ≥ 1";
/// A pattern over the length limit ([`MAX_PATTERN_LEN`]).
pub(super) const E_PATTERN_LEN: &str = "at most 65544 bytes in a pattern";
/// An empty command or ATR pattern.
pub(super) const E_BYTES: &str = "at least one byte (hex digits, `??` or `<name:N>`)";
/// A response shorter than its status word (ISO 7816-4 §5.1: every response ends with
/// SW1 SW2).
pub(super) const E_STATUS: &str = "at least the two status bytes (a response needs SW1 SW2)";
/// A malformed `@DURATION`.
pub(super) const E_DURATION: &str =
    "a duration: a decimal number and `ns`, `us`, `ms` or `s` (e.g. `@134us`, `@1.5ms`)";
/// A duration more precise than a nanosecond or beyond [`Duration::MAX`].
pub(super) const E_DURATION_RANGE: &str =
    "a duration of at most 18446744073709551615.999999999s with nanosecond precision";
/// What may follow the duration on a response line.
pub(super) const E_NOTE_OR_END: &str = "`# note` or end of line";
/// A header key.
pub(super) const E_KEY: &str = "a header key (a-z, 0-9, `_`, `-`)";
/// The separator between a header key and its value or pattern.
pub(super) const E_SPACE: &str = "a space then the value";
/// A header value.
pub(super) const E_VALUE: &str = "a value after the key";
/// The value of `@secrets`.
pub(super) const E_SECRETS: &str = "`masked` or `recorded`";
/// Free text (comments, notes, header values).
pub(super) const E_PRINTABLE: &str = "printable text (no control character but tab)";

/// A parse error inside one line: where (`input`, a sub-slice of the line from the error
/// position: its offset in the line is found by address, or is the end of the line when
/// `input` is empty — nom may hand out empty remainders that point elsewhere), what was
/// expected, and optionally a description of what was found (otherwise an excerpt of
/// `input`).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct LineError<'a> {
    /// The bytes from the error position on.
    pub input: &'a [u8],
    /// What the grammar allows there.
    pub expected: &'static str,
    /// What was found, when an excerpt of `input` would not say it well.
    pub found: Option<String>,
}

impl<'a> LineError<'a> {
    fn at(input: &'a [u8], expected: &'static str) -> LineError<'a> {
        LineError {
            input,
            expected,
            found: None,
        }
    }

    fn found(input: &'a [u8], expected: &'static str, found: String) -> LineError<'a> {
        LineError {
            input,
            expected,
            found: Some(found),
        }
    }
}

impl<'a> ParseError<&'a [u8]> for LineError<'a> {
    fn from_error_kind(input: &'a [u8], _kind: ErrorKind) -> Self {
        // The call sites name what they expected; nom's own kinds are not shown to users.
        LineError::at(input, E_TOKEN)
    }

    fn append(_input: &'a [u8], _kind: ErrorKind, other: Self) -> Self {
        other
    }
}

type PResult<'a, O> = IResult<&'a [u8], O, LineError<'a>>;

/// A definitive error (no backtracking past it).
fn failure<'a, O>(error: LineError<'a>) -> PResult<'a, O> {
    Err(NomErr::Failure(error))
}

/// Turns any nom error from `result` into a definitive one expecting `expected` at `at`.
fn or_fail<'a, O>(result: PResult<'a, O>, at: &'a [u8], expected: &'static str) -> PResult<'a, O> {
    result.or_else(|_| failure(LineError::at(at, expected)))
}

/// Any nom error as a [`LineError`] (`Incomplete` cannot come from `complete` parsers;
/// it is reported at the end of the text, never by a panic).
fn flatten(error: NomErr<LineError<'_>>) -> LineError<'_> {
    match error {
        NomErr::Error(error) | NomErr::Failure(error) => error,
        NomErr::Incomplete(_) => LineError::at(b"", E_TOKEN),
    }
}

/// The kinds of line, by their first non-blank character (the grammar is LL(1)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// Empty or only spaces and tabs.
    Blank,
    /// `#`.
    Comment,
    /// `@`.
    At,
    /// `>`.
    Command,
    /// `<`.
    Response,
}

/// Classifies a line; returns its kind and what follows the marker character.
pub(super) fn classify(input: &[u8]) -> Result<(Kind, &[u8]), LineError<'_>> {
    let rest = input.get(skip_blanks(input, 0)..).unwrap_or_default();
    let kind = match rest.first() {
        None => return Ok((Kind::Blank, rest)),
        Some(b'#') => Kind::Comment,
        Some(b'@') => Kind::At,
        Some(b'>') => Kind::Command,
        Some(b'<') => Kind::Response,
        Some(_) => return Err(LineError::at(rest, E_LINE_START)),
    };
    // The marker is one ASCII byte.
    Ok((kind, rest.get(1..).unwrap_or_default()))
}

/// Whitespace between tokens: space and tab only.
fn is_blank(byte: u8) -> bool {
    byte == b' ' || byte == b'\t'
}

/// The text of a comment or note (after its `#`): one leading space removed, the rest
/// kept as written; it must be UTF-8 and printable.
pub(super) fn comment(body: &[u8]) -> Result<&str, LineError<'_>> {
    let bytes = body.strip_prefix(b" ").unwrap_or(body);
    // Not UTF-8: the reader reports the line as such.
    let text = std::str::from_utf8(bytes).map_err(|_| LineError::at(bytes, E_PRINTABLE))?;
    printable(text)?;
    Ok(text)
}

/// Fails on the first control character other than tab: a trace is plain text, and a
/// stray control character is a sign of binary data.
fn printable(text: &str) -> Result<(), LineError<'_>> {
    // Fast path: an ASCII text with no C0 control but tab and no DEL (one pass the
    // compiler can vectorise, no early exit).
    let suspicious = text.bytes().fold(false, |found, byte| {
        found | (byte < 0x20 && byte != b'\t') | (byte >= 0x7F)
    });
    if !suspicious {
        return Ok(());
    }
    match text
        .char_indices()
        .find(|&(_, c)| c.is_control() && c != '\t')
    {
        Some((index, _)) => Err(LineError::at(
            text.as_bytes().get(index..).unwrap_or_default(),
            E_PRINTABLE,
        )),
        None => Ok(()),
    }
}

/// What an `@` line is.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum AtLine<'a> {
    /// `@atr PATTERN`: the pattern was parsed into the target given.
    Atr,
    /// `@secrets masked|recorded`.
    Secrets(Secrets),
    /// `@key value` (any other key), the value without trailing blanks.
    Header {
        /// The key, without `@`.
        key: &'a str,
        /// The value.
        value: &'a str,
    },
}

/// After `@`: `atr PATTERN` (parsed into `atr`), `secrets masked|recorded` or
/// `key value`.
pub(super) fn at_line<'a>(
    body: &'a [u8],
    atr: &mut Pattern,
    pool: &mut Pool,
) -> Result<AtLine<'a>, LineError<'a>> {
    at_body(body, atr, pool)
        .map(|(_, line)| line)
        .map_err(flatten)
}

fn at_body<'a>(input: &'a [u8], atr: &mut Pattern, pool: &mut Pool) -> PResult<'a, AtLine<'a>> {
    let (rest, key) = or_fail(take_while1(is_key_byte).parse(input), input, E_KEY)?;
    let (rest, _) = or_fail(space1(rest), rest, E_SPACE)?;
    if key == b"atr" {
        bytes_pattern(rest, atr, pool)?;
        return Ok((b"", AtLine::Atr));
    }
    let end = rest
        .iter()
        .rposition(|&byte| !is_blank(byte))
        .map_or(0, |last| last.saturating_add(1));
    let value = rest.get(..end).unwrap_or_default();
    if value.is_empty() {
        return failure(LineError::at(rest, E_VALUE));
    }
    let text = std::str::from_utf8(value)
        .map_err(|_| NomErr::Failure(LineError::at(value, E_PRINTABLE)))?;
    printable(text).map_err(NomErr::Failure)?;
    if key == b"secrets" {
        return match text {
            "masked" => Ok((b"", AtLine::Secrets(Secrets::Masked))),
            "recorded" => Ok((b"", AtLine::Secrets(Secrets::Recorded))),
            _ => failure(LineError::at(value, E_SECRETS)),
        };
    }
    // The key's bytes are ASCII (checked by `is_key_byte`).
    let key = std::str::from_utf8(key).map_err(|_| NomErr::Failure(LineError::at(input, E_KEY)))?;
    Ok((b"", AtLine::Header { key, value: text }))
}

/// Characters of a header key or a redaction name: a-z, 0-9, `_`, `-`.
fn is_key_byte(byte: u8) -> bool {
    byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_' || byte == b'-'
}

/// After `>`: the command pattern (at least one byte), parsed into `target`.
pub(super) fn command<'a>(
    body: &'a [u8],
    target: &mut Pattern,
    pool: &mut Pool,
) -> Result<(), LineError<'a>> {
    bytes_pattern(body, target, pool)
        .map(|_| ())
        .map_err(flatten)
}

/// After `<`: `PATTERN [@DURATION] [# note]`; the pattern is parsed into `target`, the
/// duration and the note are returned.
pub(super) fn response<'a>(
    body: &'a [u8],
    target: &mut Pattern,
    pool: &mut Pool,
) -> Result<(Option<Duration>, Option<&'a str>), LineError<'a>> {
    response_body(body, target, pool)
        .map(|(_, parts)| parts)
        .map_err(flatten)
}

fn response_body<'a>(
    input: &'a [u8],
    target: &mut Pattern,
    pool: &mut Pool,
) -> PResult<'a, (Option<Duration>, Option<&'a str>)> {
    let (rest, elapsed) = response_start(input, LineEnd::Input, target, pool)?;
    let (rest, _) = space0(rest)?;
    if let Some(text) = rest.strip_prefix(b"#") {
        let note = comment(text).map_err(NomErr::Failure)?;
        return Ok((b"", (elapsed, Some(note))));
    }
    if !rest.is_empty() {
        return failure(LineError::at(rest, E_NOTE_OR_END));
    }
    Ok((rest, (elapsed, None)))
}

/// The pattern and the optional duration of a response line; the blanks, note or end
/// that follow are left to the caller.
#[inline]
fn response_start<'a>(
    input: &'a [u8],
    end: LineEnd,
    target: &mut Pattern,
    pool: &mut Pool,
) -> PResult<'a, Option<Duration>> {
    let (rest, len) = pattern(input, end, true, target, pool)?;
    // ISO 7816-4 §5.1: every response ends with the status bytes SW1 SW2.
    if len < 2 {
        let start = input.get(skip_blanks(input, 0)..).unwrap_or_default();
        let found = if len == 1 { "1 byte" } else { "no byte" };
        return failure(LineError::found(start, E_STATUS, found.to_owned()));
    }
    // Optional: anything but `@` is left for the caller (`opt` in nom's terms).
    match duration(rest, end) {
        Ok((rest, elapsed)) => Ok((rest, Some(elapsed))),
        Err(NomErr::Error(_)) => Ok((rest, None)),
        Err(error) => Err(error),
    }
}

/// The fast way for the usual command line, parsed in place in the input's buffer:
/// `window` runs from after the `>` past the end of the line. The command is parsed
/// into `target` exactly as [`command`] would parse the line; returns where its line
/// break starts in `window`. `None` for anything else — an error, a line that does not
/// end within `window` — which the reader then reads the general way (reporting the
/// error, if any, as such).
#[inline]
pub(super) fn command_in_place(
    window: &[u8],
    target: &mut Pattern,
    pool: &mut Pool,
) -> Option<usize> {
    // Without a suffix to stop at, the pattern runs to the line break or the window's
    // end.
    let (rest, len) = pattern(window, LineEnd::Break, false, target, pool).ok()?;
    let end = window.len().saturating_sub(rest.len());
    (len > 0 && line_break_len(window, end).is_some()).then_some(end)
}

/// The fast way for the usual response line, parsed in place like [`command_in_place`]:
/// the pattern into `target`, then the duration, the note and where the line break
/// starts in `window`, exactly as [`response`] would parse the line. An error or a line
/// that does not end within `window` give `None`: the general way then reads it.
#[inline]
pub(super) fn response_in_place<'a>(
    window: &'a [u8],
    target: &mut Pattern,
    pool: &mut Pool,
) -> Option<(Option<Duration>, Option<&'a str>, usize)> {
    let (rest, elapsed) = response_start(window, LineEnd::Break, target, pool).ok()?;
    let end = window
        .len()
        .saturating_sub(rest.len())
        .saturating_add(skip_blanks(rest, 0));
    let Some(text) = window.get(end..)?.strip_prefix(b"#") else {
        return line_break_len(window, end).map(|_| (elapsed, None, end));
    };
    // A note runs to the end of the line: its line break is searched for, and a `\r`
    // before the `\n` is part of the break, as the general way strips it.
    let mut note_len = find_newline(text)?;
    if note_len > 0 && text.get(note_len.saturating_sub(1)) == Some(&b'\r') {
        note_len = note_len.saturating_sub(1);
    }
    let note = comment(text.get(..note_len)?).ok()?;
    Some((
        elapsed,
        Some(note),
        end.saturating_add(1).saturating_add(note_len),
    ))
}

/// The position of the first `\n` in `bytes`. Searched 32 bytes at a time with an
/// element-wise comparison and no early exit inside a block, which the compiler
/// vectorises.
pub(super) fn find_newline(bytes: &[u8]) -> Option<usize> {
    let mut pos = 0usize;
    while let Some(block) = bytes.get(pos..).and_then(<[u8]>::first_chunk::<32>) {
        if block
            .iter()
            .fold(false, |found, &byte| found | (byte == b'\n'))
        {
            break;
        }
        pos = pos.saturating_add(32);
    }
    let rest = bytes.get(pos..)?;
    rest.iter()
        .position(|&byte| byte == b'\n')
        .map(|index| pos.saturating_add(index))
}

/// The length of the line break at `pos` (`\n` or `\r\n`), if one starts there.
pub(super) fn line_break_len(input: &[u8], pos: usize) -> Option<usize> {
    match input.get(pos) {
        Some(b'\n') => Some(1),
        Some(b'\r') if input.get(pos.saturating_add(1)) == Some(&b'\n') => Some(2),
        _ => None,
    }
}

/// A pattern of at least one byte (commands, ATRs), to the end of the line.
fn bytes_pattern<'a>(input: &'a [u8], target: &mut Pattern, pool: &mut Pool) -> PResult<'a, ()> {
    let (rest, len) = pattern(input, LineEnd::Input, false, target, pool)?;
    if len == 0 {
        let start = input.get(skip_blanks(input, 0)..).unwrap_or_default();
        return failure(LineError::at(start, E_BYTES));
    }
    Ok((rest, ()))
}

/// Whitespace-separated tokens up to the end of the line (or, when `stop_at_suffix`, up
/// to a token starting with `@` or `#`), parsed into `target`; returns the number of
/// bytes the pattern stands for (possibly 0). Each token is one or more runs: hex digit
/// pairs ([`Segment::Bytes`]), `??` pairs ([`Segment::Any`]) or `<name:N>`
/// ([`Segment::Redacted`]). `end` says whether a line break ends the line.
///
/// `target`'s segments are overwritten in place, reusing their buffers: a reader that
/// reads event after event into the same [`crate::trace::Event`] allocates nothing once
/// warm. This is the hot loop of the reader: each byte it looks at is classified by one
/// table lookup ([`CLASS`]), and the hex runs are decoded a block at a time.
fn pattern<'a>(
    input: &'a [u8],
    end: LineEnd,
    stop_at_suffix: bool,
    target: &mut Pattern,
    pool: &mut Pool,
) -> PResult<'a, usize> {
    let segments = &mut target.segments;
    let mut count = 0usize;
    let mut total = 0usize;
    let mut pos = 0usize;
    'tokens: loop {
        let mut class = class_at(input, pos);
        while class == C_BLANK {
            pos = pos.saturating_add(1);
            class = class_at(input, pos);
        }
        // Tested apart from the runs, and by order, so that the common case is one
        // comparison rather than a jump table whose target changes token by token.
        if class >= C_SUFFIX {
            let ends = match class {
                C_END => true,
                C_SUFFIX => stop_at_suffix,
                _ => is_line_break(input, pos, end),
            };
            if ends {
                break;
            }
        }
        let token_start = pos;
        // The runs of one token; `class` is that of the byte at `pos`, where a run starts.
        loop {
            let slot = count;
            let (len, next) = if class == C_HEX {
                let out = match segments.get_mut(slot) {
                    Some(Segment::Bytes(out)) => out,
                    _ => {
                        let buffer = pool.bytes.pop().unwrap_or_default();
                        put(segments, slot, Segment::Bytes(buffer), pool);
                        match segments.get_mut(slot) {
                            Some(Segment::Bytes(out)) => out,
                            // `put` just stored a Bytes segment there.
                            _ => return failure(LineError::at(input, E_TOKEN)),
                        }
                    }
                };
                let digits = decode_hex_run(input.get(pos..).unwrap_or_default(), out);
                let next = pos.saturating_add(digits);
                next_is_run(input, next, end)?;
                if !digits.is_multiple_of(2) {
                    let token = token_at(input, token_start, end);
                    let found = format!("odd number of hex digits in {}", excerpt_bytes(token));
                    return failure(LineError::found(token, E_HEX_PAIRS, found));
                }
                (digits / 2, next)
            } else if class == C_ANY {
                let marks = input
                    .get(pos..)
                    .unwrap_or_default()
                    .iter()
                    .take_while(|&&byte| byte == b'?')
                    .count();
                let next = pos.saturating_add(marks);
                next_is_run(input, next, end)?;
                if !marks.is_multiple_of(2) {
                    let token = token_at(input, token_start, end);
                    let found = format!("odd number of `?` in {}", excerpt_bytes(token));
                    return failure(LineError::found(token, E_ANY_PAIRS, found));
                }
                match segments.get_mut(slot) {
                    Some(Segment::Any(old_len)) => *old_len = marks / 2,
                    _ => put(segments, slot, Segment::Any(marks / 2), pool),
                }
                (marks / 2, next)
            } else if class == C_OPEN {
                let at = input.get(pos..).unwrap_or_default();
                let (rest, (name, len)) = redaction(at)?;
                let next = input.len().saturating_sub(rest.len());
                next_is_run(input, next, end)?;
                // The name's bytes are ASCII (checked by `is_key_byte`).
                let name_text = || {
                    std::str::from_utf8(name)
                        .map_err(|_| NomErr::Failure(LineError::at(at, E_REDACTION)))
                };
                match segments.get_mut(slot) {
                    Some(Segment::Redacted {
                        name: old_name,
                        len: old_len,
                    }) => {
                        // Usually the name the event before had there.
                        if old_name.as_bytes() != name {
                            old_name.clear();
                            old_name.push_str(name_text()?);
                        }
                        *old_len = len;
                    }
                    _ => {
                        let mut buffer = pool.names.pop().unwrap_or_default();
                        buffer.clear();
                        buffer.push_str(name_text()?);
                        let segment = Segment::Redacted { name: buffer, len };
                        put(segments, slot, segment, pool);
                    }
                }
                (len, next)
            } else {
                return failure(LineError::at(input.get(pos..).unwrap_or_default(), E_TOKEN));
            };
            total = match total.checked_add(len) {
                Some(total) if total <= MAX_PATTERN_LEN => total,
                _ => {
                    let token = token_at(input, token_start, end);
                    return failure(LineError::at(token, E_PATTERN_LEN));
                }
            };
            count = count.saturating_add(1);
            pos = next;
            // `next_is_run` let through only the start of another run or the end of the
            // token.
            class = class_at(input, pos);
            if class > C_OPEN {
                continue 'tokens;
            }
        }
    }
    if segments.len() > count {
        for old in segments.drain(count..) {
            pool.recycle(old);
        }
    }
    Ok((input.get(pos..).unwrap_or_default(), total))
}

/// The class of a byte for [`pattern`]: [`C_HEX`] (a hex digit), [`C_BLANK`] (space or
/// tab), [`C_ANY`] (`?`), [`C_OPEN`] (`<`), [`C_SUFFIX`] (`@` or `#`), [`C_BREAK`] (`\n`
/// or `\r`), [`C_OTHER`] for any other byte; [`C_END`] past the end of the input.
fn class_at(input: &[u8], pos: usize) -> u8 {
    input
        .get(pos)
        .map_or(C_END, |&byte| CLASS[usize::from(byte)])
}

// The classes are ordered: those that start a run, then the blank, then those that
// may end the pattern, so that a comparison tells the groups apart.

/// A byte that starts no run and ends no token.
const C_OTHER: u8 = 0;
/// A hex digit.
const C_HEX: u8 = 1;
/// `?`.
const C_ANY: u8 = 2;
/// `<`.
const C_OPEN: u8 = 3;
/// A space or a tab.
const C_BLANK: u8 = 4;
/// `@` or `#`: what may end a response's pattern.
const C_SUFFIX: u8 = 5;
/// `\n` or `\r`: a line break, in place.
const C_BREAK: u8 = 6;
/// Past the end of the input.
const C_END: u8 = 7;

/// The class of each byte (see [`class_at`]).
const CLASS: [u8; 256] = {
    let mut table = [C_OTHER; 256];
    let mut byte = 0;
    while byte < 256 {
        table[byte] = match byte as u8 {
            _ if NIBBLE[byte] != INVALID => C_HEX,
            b' ' | b'\t' => C_BLANK,
            b'?' => C_ANY,
            b'<' => C_OPEN,
            b'@' | b'#' => C_SUFFIX,
            b'\n' | b'\r' => C_BREAK,
            _ => C_OTHER,
        };
        byte += 1;
    }
    table
};

/// Stores `segment` at `slot` (recycling what is there) or appends it (`slot` is at
/// most the length).
fn put(segments: &mut Vec<Segment>, slot: usize, segment: Segment, pool: &mut Pool) {
    match segments.get_mut(slot) {
        Some(old) => pool.recycle(std::mem::replace(old, segment)),
        None => segments.push(segment),
    }
}

/// Buffers of segments overwritten by a segment of another kind, kept for the next
/// ones: patterns read into reused events then allocate nothing even when their shape
/// changes (a READ RECORD response with a redacted PAN after a plain one). At most
/// [`Pool::MAX`] of each, so the pool's memory stays bounded.
#[derive(Debug, Default)]
pub(super) struct Pool {
    bytes: Vec<Vec<u8>>,
    names: Vec<String>,
}

impl Pool {
    /// How many buffers of each kind are kept.
    const MAX: usize = 16;

    /// Keeps the buffer of a segment no longer used.
    fn recycle(&mut self, segment: Segment) {
        match segment {
            Segment::Bytes(bytes) if self.bytes.len() < Pool::MAX => self.bytes.push(bytes),
            Segment::Redacted { name, .. } if self.names.len() < Pool::MAX => {
                self.names.push(name);
            }
            _ => {}
        }
    }
}

/// The position of the first byte from `pos` that is not a space or a tab.
#[inline]
pub(super) fn skip_blanks(bytes: &[u8], pos: usize) -> usize {
    let blanks = bytes
        .get(pos..)
        .unwrap_or_default()
        .iter()
        .take_while(|&&byte| is_blank(byte))
        .count();
    pos.saturating_add(blanks)
}

/// The token starting at `start`: up to the next space, tab, line break or the end.
fn token_at(input: &[u8], start: usize, end: LineEnd) -> &[u8] {
    let mut stop = start;
    while !ends_token(input, stop, end) {
        stop = stop.saturating_add(1);
    }
    input.get(start..stop).unwrap_or_default()
}

/// Fails unless what follows a run (at `pos`) ends the token or starts another run: a
/// stray character (`0x90`) is reported as such rather than as an odd run before it.
fn next_is_run(input: &[u8], pos: usize, end: LineEnd) -> PResult<'_, ()> {
    match class_at(input, pos) {
        C_END | C_BLANK | C_ANY | C_OPEN | C_HEX => Ok((input, ())),
        C_BREAK if is_line_break(input, pos, end) => Ok((input, ())),
        _ => failure(LineError::at(input.get(pos..).unwrap_or_default(), E_TOKEN)),
    }
}

/// Where the text of a line ends, for the parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineEnd {
    /// At the end of the input: a line handed over by the reader without its line
    /// break, or a pattern alone ([`pattern_only`]), where a line break is an error.
    Input,
    /// At the first line break (`\n` or `\r\n`): a line parsed in place in the
    /// reader's buffer ([`command_in_place`], [`response_in_place`]), followed by more.
    Break,
}

/// Whether the text of the line ends at `pos` with a line break (only for
/// [`LineEnd::Break`]).
fn is_line_break(input: &[u8], pos: usize, end: LineEnd) -> bool {
    end == LineEnd::Break && line_break_len(input, pos).is_some()
}

/// Whether a token ends at `pos`: at a blank, the end of the input or, in place, a line
/// break.
fn ends_token(input: &[u8], pos: usize, end: LineEnd) -> bool {
    match input.get(pos) {
        None | Some(b' ' | b'\t') => true,
        Some(b'\n' | b'\r') => is_line_break(input, pos, end),
        Some(_) => false,
    }
}

/// `<name:N>`, N ≥ 1 decimal: the name and N. Any other shape is an error at the `<`;
/// an N too large for a `usize` is surely over the pattern limit.
fn redaction(input: &[u8]) -> PResult<'_, (&[u8], usize)> {
    let malformed = || failure(LineError::at(input, E_REDACTION));
    let Some(after_open) = input.strip_prefix(b"<") else {
        return malformed();
    };
    let name_len = after_open
        .iter()
        .take_while(|&&byte| is_key_byte(byte))
        .count();
    let (name, after_name) = after_open.split_at(name_len);
    let Some(number) = after_name.strip_prefix(b":") else {
        return malformed();
    };
    let digit_count = number
        .iter()
        .take_while(|byte| byte.is_ascii_digit())
        .count();
    let (digits, after_digits) = number.split_at(digit_count);
    let Some(rest) = after_digits.strip_prefix(b">") else {
        return malformed();
    };
    if name.is_empty() || digits.is_empty() {
        return malformed();
    }
    let len = digits.iter().try_fold(0usize, |len, &digit| {
        len.checked_mul(10)?
            .checked_add(usize::from(digit.wrapping_sub(b'0')))
    });
    match len {
        Some(0) => malformed(),
        Some(len) => Ok((rest, (name, len))),
        None => failure(LineError::at(input, E_PATTERN_LEN)),
    }
}

/// The mark of a byte that is not a hex digit in [`NIBBLE`].
const INVALID: u8 = 0xFF;

/// The value of each hex digit, [`INVALID`] for other bytes.
const NIBBLE: [u8; 256] = {
    let mut table = [INVALID; 256];
    let mut index = 0;
    while index < 10 {
        table[b'0' as usize + index] = index as u8;
        index += 1;
    }
    let mut index = 0;
    while index < 6 {
        table[b'a' as usize + index] = 10 + index as u8;
        table[b'A' as usize + index] = 10 + index as u8;
        index += 1;
    }
    table
};

/// Hex digits decoded per step: 32 digits into 16 bytes (two 128-bit vectors).
const BLOCK: usize = 32;

/// Decodes the run of hex digits at the start of `digits` into `out` (cleared first,
/// its capacity reused), two digits per byte; returns how many digits the run has. When
/// that count is odd the last digit is left undecoded (the caller reports the odd run).
///
/// Each step decodes a whole block of [`BLOCK`] bytes and counts the hex digits it
/// starts with, so a run costs one step per 32 digits, plus one for its end, whatever
/// its length: no digit-by-digit tail. A line parsed in place in the input's buffer is
/// followed by its line break and more lines, so the last block of a run is nearly
/// always there whole; only at the end of the buffer (or of a line read the general
/// way) is a copy padded with blanks made.
// The first block is decoded where the run starts (most runs end in it); the blocks
// after it by a loop kept out of line, which then has the registers to itself.
#[inline(always)]
fn decode_hex_run(digits: &[u8], out: &mut Vec<u8>) -> usize {
    out.clear();
    let (bytes, valid) = match digits.first_chunk::<BLOCK>() {
        Some(block) => decode_block(block),
        None => decode_block(&padded(digits)),
    };
    out.extend_from_slice(&bytes);
    if valid < BLOCK {
        out.truncate(valid / 2);
        return valid;
    }
    decode_blocks_after(digits, BLOCK, out)
}

/// The rest of a run of hex digits from `pos` (a multiple of [`BLOCK`]) on, appended to
/// `out`: see [`decode_hex_run`].
#[inline(never)]
fn decode_blocks_after(digits: &[u8], mut pos: usize, out: &mut Vec<u8>) -> usize {
    loop {
        let rest = digits.get(pos..).unwrap_or_default();
        let (bytes, valid) = match rest.first_chunk::<BLOCK>() {
            Some(block) => decode_block(block),
            None => decode_block(&padded(rest)),
        };
        // The whole block's bytes are stored (a fixed-size copy) and the end of the
        // run cut off after: cheaper than a copy of variable length.
        out.extend_from_slice(&bytes);
        if valid < BLOCK {
            let kept = out
                .len()
                .saturating_sub(bytes.len())
                .saturating_add(valid / 2);
            out.truncate(kept);
            return pos.saturating_add(valid);
        }
        pos = pos.saturating_add(BLOCK);
    }
}

/// `rest` (shorter than a block) followed by blanks, which end any run.
fn padded(rest: &[u8]) -> [u8; BLOCK] {
    let mut block = [b' '; BLOCK];
    for (slot, &byte) in block.iter_mut().zip(rest) {
        *slot = byte;
    }
    block
}

/// Decodes the 32 bytes of `block` as hex digits, two per byte, and counts how many of
/// them, from the start, are hex digits; the bytes decoded from anything after those are
/// meaningless, and the caller drops them. The decoding is element-wise arithmetic over
/// fixed-size arrays, with no table lookup and no early exit, which the compiler
/// vectorises (the crate forbids `unsafe`, hence no explicit SIMD); the count looks at
/// the flags eight at a time.
// Inlined where the blocks are decoded, so that its constants are loaded once per run,
// not once per block.
#[inline(always)]
fn decode_block(block: &[u8; BLOCK]) -> ([u8; BLOCK / 2], usize) {
    let mut values = [0u8; BLOCK];
    let mut invalid = [0u8; BLOCK];
    for ((value, bad), &digit) in values.iter_mut().zip(invalid.iter_mut()).zip(block) {
        let is_digit = digit.wrapping_sub(b'0') < 10;
        // Setting bit 5 folds `A`-`F` onto `a`-`f` and maps nothing else there.
        let is_letter = (digit | 0x20).wrapping_sub(b'a') < 6;
        *bad = u8::from(!(is_digit | is_letter));
        // The low nibble, plus 9 for letters (`A` is 0x41, `a` 0x61: bit 6 set).
        *value = (digit & 0x0F).wrapping_add(((digit >> 6) & 1).wrapping_mul(9));
    }
    let mut bytes = [0u8; BLOCK / 2];
    for (byte, pair) in bytes.iter_mut().zip(values.chunks_exact(2)) {
        if let [high, low] = pair {
            *byte = (high << 4) | low;
        }
    }
    (bytes, zeros_before_one(&invalid))
}

/// How many of the 32 flags (0 or 1) are 0 before the first 1: the first non-zero
/// group of eight, read as a little-endian word, gives it by its trailing zero bits.
fn zeros_before_one(flags: &[u8; BLOCK]) -> usize {
    // Most blocks are all hex digits: one test for all the flags first.
    if flags.iter().fold(0, |any, &flag| any | flag) == 0 {
        return BLOCK;
    }
    let mut count = 0usize;
    for group in flags.chunks_exact(8) {
        let word = group
            .first_chunk::<8>()
            .map_or(0, |group| u64::from_le_bytes(*group));
        if word != 0 {
            return count.saturating_add((word.trailing_zeros() / 8) as usize);
        }
        count = count.saturating_add(8);
    }
    BLOCK
}

/// `@` then a decimal number (optionally with a fraction) and a unit, followed by a
/// space, a tab, a line break or the end of the line (the grammar is
/// `"@" digit+ ("." digit*)? ("ns"|"us"|"ms"|"s")`). On every response line of a
/// recorded trace, so read in one pass: the digits are accumulated as they are found,
/// and [`nanoseconds`] is only called for numbers too long for that.
#[inline]
fn duration(input: &[u8], end: LineEnd) -> PResult<'_, Duration> {
    let Some(number) = input.strip_prefix(b"@") else {
        return Err(NomErr::Error(LineError::at(input, E_DURATION)));
    };
    let (whole_len, value) = digits(number, 0);
    let (fraction_len, value, number_len) = match number.get(whole_len..).unwrap_or_default() {
        [b'.', fraction @ ..] if whole_len > 0 => {
            let (fraction_len, value) = digits(fraction, value);
            let number_len = whole_len.saturating_add(1).saturating_add(fraction_len);
            (fraction_len, value, number_len)
        }
        _ => (0, value, whole_len),
    };
    let (places, unit_len): (usize, usize) = match number.get(number_len..).unwrap_or_default() {
        [b'n', b's', ..] => (0, 2),
        [b'u', b's', ..] => (3, 2),
        [b'm', b's', ..] => (6, 2),
        [b's', ..] => (9, 1),
        _ => (0, 0),
    };
    // After `@`, the number and the unit.
    let after = number_len.saturating_add(unit_len).saturating_add(1);
    if whole_len == 0 || unit_len == 0 || !ends_token(input, after, end) {
        return failure(LineError::at(input, E_DURATION));
    }
    // `value` is the number with its point left out, exact while it has at most 19
    // digits; scaled to nanoseconds it has `whole_len + places` digits, so at most 19
    // keep it under 10^19 < 2^64. Otherwise (or for digits finer than a nanosecond)
    // the exact computation decides.
    let scale = places
        .checked_sub(fraction_len)
        .filter(|_| whole_len.saturating_add(places) <= 19)
        .and_then(|exponent| POWERS_OF_TEN.get(exponent));
    let elapsed = match scale {
        Some(scale) => Some(Duration::from_nanos(value.wrapping_mul(*scale))),
        None => nanoseconds(number.get(..number_len).unwrap_or_default(), places)
            .and_then(duration_from_nanos),
    };
    match elapsed {
        Some(elapsed) => Ok((input.get(after..).unwrap_or_default(), elapsed)),
        None => failure(LineError::at(input, E_DURATION_RANGE)),
    }
}

/// 10^0 to 10^9: the scales of the duration units, in nanoseconds.
const POWERS_OF_TEN: [u64; 10] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
    1_000_000_000,
];

/// The decimal digits at the start of `bytes`: how many there are, and `value` with
/// them appended (wrapping: exact only while the whole number has at most 19 digits,
/// which the caller checks).
fn digits(bytes: &[u8], mut value: u64) -> (usize, u64) {
    let mut count = 0usize;
    for &byte in bytes {
        let digit = byte.wrapping_sub(b'0');
        if digit > 9 {
            break;
        }
        value = value.wrapping_mul(10).wrapping_add(u64::from(digit));
        count = count.saturating_add(1);
    }
    (count, value)
}

/// `number` (digits, optionally `.` and digits) in a unit of 10^`places` nanoseconds,
/// as nanoseconds, exactly: `None` when the fraction is finer than a nanosecond or the
/// number is beyond any [`Duration`].
fn nanoseconds(number: &[u8], places: usize) -> Option<u128> {
    let mut parts = number.splitn(2, |&byte| byte == b'.');
    let whole = parts.next().unwrap_or_default();
    let fraction = parts.next().unwrap_or_default();
    let leading_zeros = whole.iter().take_while(|&&digit| digit == b'0').count();
    let whole = whole.get(leading_zeros..).unwrap_or_default();
    let trailing_zeros = fraction
        .iter()
        .rev()
        .take_while(|&&digit| digit == b'0')
        .count();
    let fraction = fraction
        .get(..fraction.len().saturating_sub(trailing_zeros))
        .unwrap_or_default();
    // `Duration::MAX` is 29 digits of nanoseconds: a longer whole part is out of range.
    // With these limits the value stays under 10^38 < 2^128, so the wrapping
    // arithmetic below never wraps.
    let pad = places.checked_sub(fraction.len())?;
    if whole.len().saturating_add(places) <= 19 {
        // Under 10^19 < 2^64: the common case, in 64-bit arithmetic that cannot wrap.
        let mut value: u64 = 0;
        for digit in whole.iter().chain(fraction) {
            value = value
                .wrapping_mul(10)
                .wrapping_add(u64::from(digit.wrapping_sub(b'0')));
        }
        for _ in 0..pad {
            value = value.wrapping_mul(10);
        }
        return Some(u128::from(value));
    }
    if whole.len() > 29 {
        return None;
    }
    let mut value: u128 = 0;
    for digit in whole.iter().chain(fraction) {
        value = value
            .wrapping_mul(10)
            .wrapping_add(u128::from(digit.wrapping_sub(b'0')));
    }
    for _ in 0..pad {
        value = value.wrapping_mul(10);
    }
    Some(value)
}

/// A count of nanoseconds as a [`Duration`], when it fits.
fn duration_from_nanos(nanos: u128) -> Option<Duration> {
    // Nearly always within a u64 (584 years): no 128-bit division then.
    if let Ok(nanos) = u64::try_from(nanos) {
        return Some(Duration::from_nanos(nanos));
    }
    let seconds = u64::try_from(nanos / 1_000_000_000).ok()?;
    let subsec = u32::try_from(nanos % 1_000_000_000).ok()?;
    Some(Duration::new(seconds, subsec))
}

/// A pattern alone (for [`super::parse_pattern`]): the whole text, at least one byte.
pub(super) fn pattern_only(input: &[u8]) -> Result<Pattern, LineError<'_>> {
    let mut pattern = Pattern::default();
    bytes_pattern(input, &mut pattern, &mut Pool::default()).map_err(flatten)?;
    Ok(pattern)
}

/// What line 1 says.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Version<'a> {
    /// `telepay-trace N`, N fitting a `u32`.
    Number(u32),
    /// `telepay-trace N` with N too large for a `u32` (digits as written).
    TooLarge(&'a str),
}

/// Line 1: `telepay-trace N`, N a decimal without leading zero; trailing spaces allowed.
/// `None` when the line is not that.
pub(super) fn version_line(input: &[u8]) -> Option<Version<'_>> {
    let parsed: PResult<'_, &[u8]> = preceded(tag(&b"telepay-trace "[..]), digit1).parse(input);
    let (rest, digits) = parsed.ok()?;
    let trailing_blanks = rest.iter().all(|&byte| is_blank(byte));
    let digits = std::str::from_utf8(digits).ok()?;
    if !trailing_blanks || digits.starts_with('0') {
        return None;
    }
    Some(match digits.parse::<u32>() {
        Ok(version) => Version::Number(version),
        Err(_) => Version::TooLarge(digits),
    })
}

/// A short excerpt of `text` for an error message: up to 24 characters, escaped, in
/// backticks; `end of line` when empty.
pub(super) fn excerpt(text: &str) -> String {
    const MAX_CHARS: usize = 24;
    if text.is_empty() {
        return "end of line".to_owned();
    }
    let mut out = String::from("`");
    for (count, c) in text.chars().enumerate() {
        if count == MAX_CHARS {
            out.push('…');
            break;
        }
        out.extend(c.escape_debug());
    }
    out.push('`');
    out
}

/// [`excerpt`] of bytes (invalid UTF-8 shown as U+FFFD).
pub(super) fn excerpt_bytes(bytes: &[u8]) -> String {
    excerpt(&String::from_utf8_lossy(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_length_limit_message_names_the_limit() {
        assert!(E_PATTERN_LEN.contains(&MAX_PATTERN_LEN.to_string()));
    }

    #[test]
    fn durations_are_exact_to_the_nanosecond() {
        assert_eq!(nanoseconds(b"1.5", 6), Some(1_500_000));
        assert_eq!(nanoseconds(b"0.000001", 6), Some(1));
        assert_eq!(nanoseconds(b"0.0000001", 6), None);
        assert_eq!(nanoseconds(b"2.50000", 0), None);
        assert_eq!(nanoseconds(b"2.000", 0), Some(2));
        assert_eq!(nanoseconds(b"7.", 6), Some(7_000_000));
        assert_eq!(nanoseconds(b"007", 3), Some(7_000));
        assert_eq!(
            nanoseconds(b"18446744073709551615.999999999", 9),
            Some(u128::from(u64::MAX) * 1_000_000_000 + 999_999_999)
        );
        assert_eq!(
            nanoseconds(b"99999999999999999999999999999", 9),
            Some(99_999_999_999_999_999_999_999_999_999_000_000_000)
        );
        assert_eq!(nanoseconds(b"100000000000000000000000000000", 0), None);
    }

    /// Decoding one digit pair at a time with the table: the reference for the fast
    /// paths.
    fn reference(digits: &[u8]) -> (Vec<u8>, usize) {
        let count = digits
            .iter()
            .take_while(|&&digit| NIBBLE[usize::from(digit)] != INVALID)
            .count();
        let bytes = digits[..count - count % 2]
            .chunks_exact(2)
            .map(|pair| (NIBBLE[usize::from(pair[0])] << 4) | NIBBLE[usize::from(pair[1])])
            .collect();
        (bytes, count)
    }

    #[test]
    fn every_byte_value_is_classified_like_the_table_in_each_block_size() {
        for byte in 0..=255u8 {
            for position in 0..32 {
                let mut digits = *b"0123456789abcdefABCDEF0123456789";
                digits[position] = byte;
                let mut out = Vec::new();
                let count = decode_hex_run(&digits, &mut out);
                let (expected, expected_count) = reference(&digits);
                assert_eq!(
                    (out, count),
                    (expected, expected_count),
                    "{byte:#04x} at {position}"
                );
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn hex_runs_decode_like_the_reference(
            digits in proptest::collection::vec(
                proptest::prop_oneof![
                    8 => proptest::sample::select(b"0123456789abcdefABCDEF".to_vec()),
                    1 => proptest::prelude::any::<u8>(),
                ],
                0..120,
            )
        ) {
            let mut out = vec![0xEE; 3];
            let count = decode_hex_run(&digits, &mut out);
            proptest::prop_assert_eq!((out, count), reference(&digits));
        }
    }
}
