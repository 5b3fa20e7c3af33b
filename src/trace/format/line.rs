//! The grammar of one line. The reader hands over each line as bytes, without its line
//! break, straight from its input buffer: [`classify`] tells the kind of line from its
//! first character, then [`comment`], [`at_line`], [`command`] or [`response`] parses
//! the rest; the version line (line 1) is parsed by [`version_line`].
//!
//! The grammar works on bytes, so that a line of patterns (nearly all of a trace) is
//! read in one pass with no separate UTF-8 check: everything a pattern, a duration or a
//! header key accepts is ASCII, and the free text that is kept (comments, notes, header
//! values) is checked as UTF-8 where it is taken. Every line accepted is therefore UTF-8;
//! on an error, the reader checks the whole line first, so binary data is reported as
//! [`super::TraceError::InvalidUtf8`].
//!
//! Header lines, redactions and the version line are written with nom combinators. The
//! runs of hex digits — most of a trace's bytes — are decoded 32 digits at a time by
//! element-wise code the compiler vectorises, into buffers reused from event to event
//! ([`pattern`], [`Pool`]); durations are scanned byte by byte.
//!
//! Errors carry the sub-slice of the line where they occur; the reader turns that into
//! a line and column (see [`LineError`]).

use std::time::Duration;

use nom::bytes::complete::{tag, take_while1};
use nom::character::complete::{char, digit1, space0, space1};
use nom::combinator::opt;
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
    let start = input.get(skip_blanks(input, 0)..).unwrap_or_default();
    let (rest, len) = pattern(input, true, target, pool)?;
    // ISO 7816-4 §5.1: every response ends with the status bytes SW1 SW2.
    if len < 2 {
        let found = if len == 1 { "1 byte" } else { "no byte" };
        return failure(LineError::found(start, E_STATUS, found.to_owned()));
    }
    let (rest, elapsed) = opt(duration).parse(rest)?;
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

/// A pattern of at least one byte (commands, ATRs), to the end of the line.
fn bytes_pattern<'a>(input: &'a [u8], target: &mut Pattern, pool: &mut Pool) -> PResult<'a, ()> {
    let start = input.get(skip_blanks(input, 0)..).unwrap_or_default();
    let (rest, len) = pattern(input, false, target, pool)?;
    if len == 0 {
        return failure(LineError::at(start, E_BYTES));
    }
    Ok((rest, ()))
}

/// Whitespace-separated tokens up to the end of the line (or, when `stop_at_suffix`, up
/// to a token starting with `@` or `#`), parsed into `target`; returns the number of
/// bytes the pattern stands for (possibly 0). Each token is one or more runs: hex digit
/// pairs ([`Segment::Bytes`]), `??` pairs ([`Segment::Any`]) or `<name:N>`
/// ([`Segment::Redacted`]).
///
/// `target`'s segments are overwritten in place, reusing their buffers: a reader that
/// reads event after event into the same [`crate::trace::Event`] allocates nothing once
/// warm. This is the hot loop of the reader.
fn pattern<'a>(
    input: &'a [u8],
    stop_at_suffix: bool,
    target: &mut Pattern,
    pool: &mut Pool,
) -> PResult<'a, usize> {
    let segments = &mut target.segments;
    let mut count = 0usize;
    let mut total = 0usize;
    let mut pos = 0usize;
    loop {
        pos = skip_blanks(input, pos);
        let token_start = pos;
        match input.get(pos) {
            None => break,
            Some(b'@' | b'#') if stop_at_suffix => break,
            Some(_) => {}
        }
        // The runs of one token, up to a blank or the end.
        while let Some(&first) = input.get(pos).filter(|&&byte| !is_blank(byte)) {
            let slot = count;
            let (len, next) = if NIBBLE[usize::from(first)] != INVALID {
                if !matches!(segments.get(slot), Some(Segment::Bytes(_))) {
                    let buffer = pool.bytes.pop().unwrap_or_default();
                    put(segments, slot, Segment::Bytes(buffer), pool);
                }
                let Some(Segment::Bytes(out)) = segments.get_mut(slot) else {
                    // `put` just stored a Bytes segment there.
                    return failure(LineError::at(input, E_TOKEN));
                };
                let digits = decode_hex_run(input.get(pos..).unwrap_or_default(), out);
                let next = pos.saturating_add(digits);
                next_is_run(input, next)?;
                if !digits.is_multiple_of(2) {
                    let token = token_at(input, token_start);
                    let found = format!("odd number of hex digits in {}", excerpt_bytes(token));
                    return failure(LineError::found(token, E_HEX_PAIRS, found));
                }
                (digits / 2, next)
            } else if first == b'?' {
                let marks = input
                    .get(pos..)
                    .unwrap_or_default()
                    .iter()
                    .take_while(|&&byte| byte == b'?')
                    .count();
                let next = pos.saturating_add(marks);
                next_is_run(input, next)?;
                if !marks.is_multiple_of(2) {
                    let token = token_at(input, token_start);
                    let found = format!("odd number of `?` in {}", excerpt_bytes(token));
                    return failure(LineError::found(token, E_ANY_PAIRS, found));
                }
                put(segments, slot, Segment::Any(marks / 2), pool);
                (marks / 2, next)
            } else if first == b'<' {
                let at = input.get(pos..).unwrap_or_default();
                let (rest, (name, len)) = redaction(at)?;
                let next = input.len().saturating_sub(rest.len());
                next_is_run(input, next)?;
                match segments.get_mut(slot) {
                    Some(Segment::Redacted {
                        name: old_name,
                        len: old_len,
                    }) => {
                        old_name.clear();
                        old_name.push_str(name);
                        *old_len = len;
                    }
                    _ => {
                        let mut buffer = pool.names.pop().unwrap_or_default();
                        buffer.clear();
                        buffer.push_str(name);
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
                _ => return failure(LineError::at(token_at(input, token_start), E_PATTERN_LEN)),
            };
            count = count.saturating_add(1);
            pos = next;
        }
    }
    if segments.len() > count {
        for old in segments.drain(count..) {
            pool.recycle(old);
        }
    }
    Ok((input.get(pos..).unwrap_or_default(), total))
}

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
fn skip_blanks(bytes: &[u8], pos: usize) -> usize {
    let blanks = bytes
        .get(pos..)
        .unwrap_or_default()
        .iter()
        .take_while(|&&byte| is_blank(byte))
        .count();
    pos.saturating_add(blanks)
}

/// The token starting at `start`: up to the next space, tab or the end.
fn token_at(input: &[u8], start: usize) -> &[u8] {
    let rest = input.get(start..).unwrap_or_default();
    rest.split(|&byte| is_blank(byte)).next().unwrap_or(rest)
}

/// Fails unless what follows a run (at `pos`) ends the token or starts another run: a
/// stray character (`0x90`) is reported as such rather than as an odd run before it.
fn next_is_run(input: &[u8], pos: usize) -> PResult<'_, ()> {
    match input.get(pos) {
        None | Some(b' ' | b'\t' | b'?' | b'<') => Ok((input, ())),
        Some(&byte) if NIBBLE[usize::from(byte)] != INVALID => Ok((input, ())),
        Some(_) => failure(LineError::at(input.get(pos..).unwrap_or_default(), E_TOKEN)),
    }
}

/// `<name:N>`, N ≥ 1 decimal: the name and N.
fn redaction(input: &[u8]) -> PResult<'_, (&str, usize)> {
    let parsed: PResult<'_, (&[u8], &[u8])> = (
        preceded(char('<'), take_while1(is_key_byte)),
        preceded(char(':'), digit1),
    )
        .parse(input)
        .and_then(|(rest, pair)| char('>').parse(rest).map(|(rest, _)| (rest, pair)));
    let (rest, (name, digits)) = or_fail(parsed, input, E_REDACTION)?;
    // Both are ASCII (checked by `is_key_byte` and `digit1`).
    let (Ok(name), Ok(digits)) = (std::str::from_utf8(name), std::str::from_utf8(digits)) else {
        return failure(LineError::at(input, E_REDACTION));
    };
    match digits.parse::<usize>() {
        Ok(len) if len >= 1 => Ok((rest, (name, len))),
        Ok(_) => failure(LineError::at(input, E_REDACTION)),
        // More digits than a usize holds: surely over the pattern limit.
        Err(_) => failure(LineError::at(input, E_PATTERN_LEN)),
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

/// Decodes the run of hex digits at the start of `digits` into `out` (cleared first,
/// its capacity reused), two digits per byte; returns how many digits the run has. When
/// that count is odd the last digit is left undecoded (the caller reports the odd run).
fn decode_hex_run(digits: &[u8], out: &mut Vec<u8>) -> usize {
    out.clear();
    let mut pos = 0usize;
    // Thirty-two digits at a time while they are all hex (most of a trace's bytes),
    // then eight at a time, then pair by pair.
    while let Some(block) = digits.get(pos..).and_then(<[u8]>::first_chunk::<32>) {
        let Some(decoded) = decode_32_hex_digits(block) else {
            break;
        };
        out.extend_from_slice(&decoded);
        pos = pos.saturating_add(32);
    }
    while let Some(block) = digits.get(pos..).and_then(<[u8]>::first_chunk::<8>) {
        let Some(decoded) = decode_8_hex_digits(*block) else {
            break;
        };
        out.extend_from_slice(&decoded);
        pos = pos.saturating_add(8);
    }
    while let Some([high, low]) = digits.get(pos..).and_then(<[u8]>::first_chunk::<2>) {
        let (high, low) = (NIBBLE[usize::from(*high)], NIBBLE[usize::from(*low)]);
        if (high | low) & 0xF0 != 0 {
            break;
        }
        out.push((high << 4) | low);
        pos = pos.saturating_add(2);
    }
    // A last single digit makes the run odd.
    match digits.get(pos) {
        Some(&digit) if NIBBLE[usize::from(digit)] != INVALID => pos.saturating_add(1),
        _ => pos,
    }
}

/// Decodes 32 hex digits into 16 bytes, or `None` when one of them is not a hex digit.
/// Written as element-wise arithmetic over fixed-size arrays, with no table lookup and
/// no early exit, so that the compiler vectorises it (the crate forbids `unsafe`, hence
/// no explicit SIMD).
fn decode_32_hex_digits(block: &[u8; 32]) -> Option<[u8; 16]> {
    let mut values = [0u8; 32];
    let mut invalid = 0u8;
    for (value, &digit) in values.iter_mut().zip(block) {
        let is_digit = digit.wrapping_sub(b'0') < 10;
        let is_letter = (digit | 0x20).wrapping_sub(b'a') < 6;
        invalid |= u8::from(!(is_digit | is_letter));
        // The low nibble, plus 9 for letters (`A` is 0x41, `a` 0x61: bit 6 set).
        *value = (digit & 0x0F).wrapping_add(((digit >> 6) & 1).wrapping_mul(9));
    }
    if invalid != 0 {
        return None;
    }
    let mut bytes = [0u8; 16];
    for (byte, pair) in bytes.iter_mut().zip(values.chunks_exact(2)) {
        if let [high, low] = pair {
            *byte = (high << 4) | low;
        }
    }
    Some(bytes)
}

/// Eight copies of `byte` in a word.
const fn splat(byte: u8) -> u64 {
    u64::from_le_bytes([byte; 8])
}

/// For each byte of `word` (all below 0x80): 0x80 where it is at least `floor` (at most
/// 0x80), 0 elsewhere. Adding `0x80 - floor` sets the top bit exactly when the byte
/// reaches `floor`, and never carries into the next byte.
const fn at_least(word: u64, floor: u8) -> u64 {
    word.wrapping_add(splat(0x80 - floor)) & splat(0x80)
}

/// Decodes eight hex digits into four bytes, or `None` when one of them is not a hex
/// digit: the digits are tested and converted eight at a time in a 64-bit word (SWAR),
/// with no table and no branch per digit.
fn decode_8_hex_digits(block: [u8; 8]) -> Option<[u8; 4]> {
    let word = u64::from_le_bytes(block);
    if word & splat(0x80) != 0 {
        return None;
    }
    let digit = at_least(word, b'0') & !at_least(word, b'9' + 1);
    // Setting bit 5 folds `A`-`F` onto `a`-`f` and maps nothing else there.
    let folded = word | splat(0x20);
    let letter = at_least(folded, b'a') & !at_least(folded, b'f' + 1);
    if digit | letter != splat(0x80) {
        return None;
    }
    // Value of each digit: its low nibble, plus 9 for letters (bit 6 set: `A` is 0x41).
    let is_letter = (word >> 6) & splat(0x01);
    let values = (word & splat(0x0F)) + is_letter * 9;
    // Pairs of digits (little-endian: the first digit in the low byte) into bytes, each
    // in the low half of a 16-bit lane, then the four lanes packed together.
    let lanes = u64::from_le_bytes([0xFF, 0, 0xFF, 0, 0xFF, 0, 0xFF, 0]);
    let pairs = ((values & lanes) << 4) | ((values >> 8) & lanes);
    let packed = (pairs | (pairs >> 8)) & 0x0000_FFFF_0000_FFFF;
    let packed = (packed | (packed >> 16)) & 0xFFFF_FFFF;
    let bytes = packed.to_le_bytes();
    bytes.first_chunk::<4>().copied()
}

/// `@` then a decimal number (optionally with a fraction) and a unit, followed by a
/// space, a tab or the end of the line. On every response line of a recorded trace, so
/// scanned byte by byte (the grammar is `"@" digit+ ("." digit*)? ("ns"|"us"|"ms"|"s")`).
fn duration(input: &[u8]) -> PResult<'_, Duration> {
    if input.first() != Some(&b'@') {
        return Err(NomErr::Error(LineError::at(input, E_DURATION)));
    }
    let digits_from = |from: usize| {
        let count = input
            .get(from..)
            .unwrap_or_default()
            .iter()
            .take_while(|byte| byte.is_ascii_digit())
            .count();
        from.saturating_add(count)
    };
    let whole_end = digits_from(1);
    let mut end = whole_end;
    if whole_end > 1 && input.get(end) == Some(&b'.') {
        end = digits_from(end.saturating_add(1));
    }
    let (places, unit_len) = match input.get(end..end.saturating_add(2)) {
        Some(b"ns") => (0, 2),
        Some(b"us") => (3, 2),
        Some(b"ms") => (6, 2),
        _ if input.get(end) == Some(&b's') => (9, 1),
        _ => (0, 0),
    };
    let after = end.saturating_add(unit_len);
    let ends_token = matches!(input.get(after), None | Some(b' ' | b'\t'));
    if whole_end == 1 || unit_len == 0 || !ends_token {
        return failure(LineError::at(input, E_DURATION));
    }
    let number = input.get(1..end).unwrap_or_default();
    match nanoseconds(number, places).and_then(duration_from_nanos) {
        Some(elapsed) => Ok((input.get(after..).unwrap_or_default(), elapsed)),
        None => failure(LineError::at(input, E_DURATION_RANGE)),
    }
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
