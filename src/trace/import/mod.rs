//! Import of other tools' APDU logs into [`Trace`]s (`telepay trace import --from FORMAT
//! FILE`).
//!
//! Seven formats are read, each in its own module, from the text the tool writes (the
//! per-format grammar, what is imported and what is consumed silently are in
//! `docs/trace-import.md`):
//!
//! | [`ImportFormat`] | name | tool output |
//! |---|---|---|
//! | [`PcscSpy`](ImportFormat::PcscSpy) | `pcsc-spy` | pcsc-lite's `pcsc-spy -n` (`SCardTransmit` blocks, ` i `/` o ` hex dumps) |
//! | [`OpenSc`](ImportFormat::OpenSc) | `opensc` | OpenSC debug log (`Outgoing APDU (N bytes):` / `Incoming APDU (N bytes):`) |
//! | [`Vicc`](ImportFormat::Vicc) | `vicc` | vsmartcard `vicc -v` (`Parsed APDU:` / `Response APDU (N Bytes):`) |
//! | [`Cardpeek`](ImportFormat::Cardpeek) | `cardpeek` | Cardpeek card log (`R:ATR`, `C:command:SW:data`) |
//! | [`Apdu4j`](ImportFormat::Apdu4j) | `apdu4j` | apdu4j `.dump` files (`# ATR:`, hex line pairs) |
//! | [`GlobalPlatformPro`](ImportFormat::GlobalPlatformPro) | `gp` | GlobalPlatformPro `gp -d` (`A>> …` / `A<< …`) |
//! | [`Pyscard`](ImportFormat::Pyscard) | `pyscard` | pyscard `ConsoleCardConnectionObserver` (`> …` / `< …`) |
//!
//! Every importer works line by line in one pass over the text it is given: memory is the
//! trace being built (no copy of the input), and lines it does not understand are listed
//! in [`ImportReport::skipped`] with their number, never dropped silently (at most
//! [`MAX_SKIPPED_LINES`] are kept; the rest are counted). Bad input — binary data, odd
//! hex digits, a response with no command, a file cut in the middle of an exchange — is an
//! [`ImportError`] naming the origin, the line and, where it helps, the column.
//!
//! Imported commands are masked like recorded ones by default (see
//! [`ImportOptions::secrets`]): a PIN in a VERIFY command becomes `<pin:N>`.

mod apdu4j;
mod cardpeek;
mod common;
mod gp;
mod opensc;
mod pcsc_spy;
mod pyscard;
mod vicc;

use std::fmt;
use std::str::FromStr;

use super::{Secrets, Trace};

pub use common::{MAX_APDU_LEN, MAX_SKIPPED_LINES, SKIPPED_TEXT_LEN};

/// The log formats telepay imports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImportFormat {
    /// pcsc-lite's `pcsc-spy` output (`pcsc-spy -n`, colours removed or not).
    PcscSpy,
    /// An OpenSC debug log (`debug = 3` or more in `opensc.conf`, or `opensc-tool -v`).
    OpenSc,
    /// vsmartcard's virtual card, `vicc -v`.
    Vicc,
    /// A Cardpeek card log (`card.log_save`, the replay file).
    Cardpeek,
    /// An apdu4j `.dump` file.
    Apdu4j,
    /// GlobalPlatformPro's debug output, `gp -d`.
    GlobalPlatformPro,
    /// pyscard's `ConsoleCardConnectionObserver` output.
    Pyscard,
}

impl ImportFormat {
    /// Every format, in the order `--from` lists them.
    pub const ALL: &'static [ImportFormat] = &[
        ImportFormat::PcscSpy,
        ImportFormat::OpenSc,
        ImportFormat::Vicc,
        ImportFormat::Cardpeek,
        ImportFormat::Apdu4j,
        ImportFormat::GlobalPlatformPro,
        ImportFormat::Pyscard,
    ];

    /// The name used on the command line and in `@imported-from`.
    pub fn name(self) -> &'static str {
        match self {
            ImportFormat::PcscSpy => "pcsc-spy",
            ImportFormat::OpenSc => "opensc",
            ImportFormat::Vicc => "vicc",
            ImportFormat::Cardpeek => "cardpeek",
            ImportFormat::Apdu4j => "apdu4j",
            ImportFormat::GlobalPlatformPro => "gp",
            ImportFormat::Pyscard => "pyscard",
        }
    }

    /// The format called `name` (exact, lower case), if any.
    pub fn from_name(name: &str) -> Option<ImportFormat> {
        ImportFormat::ALL
            .iter()
            .copied()
            .find(|format| format.name() == name)
    }
}

impl fmt::Display for ImportFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A `--from` value that names no format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown import format {given:?}: expected one of pcsc-spy, opensc, vicc, cardpeek, apdu4j, gp, pyscard, or auto"
)]
pub struct UnknownFormat {
    /// What was given.
    pub given: String,
}

impl FromStr for ImportFormat {
    type Err = UnknownFormat;

    /// Parses a format name. `auto` is not a format: see [`FormatChoice`].
    fn from_str(s: &str) -> Result<ImportFormat, UnknownFormat> {
        ImportFormat::from_name(s).ok_or_else(|| UnknownFormat {
            given: s.to_owned(),
        })
    }
}

/// What `--from` asks for: a format, or detection with [`detect`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormatChoice {
    /// `--from auto`: look at the first lines.
    Auto,
    /// `--from NAME`.
    Format(ImportFormat),
}

impl FromStr for FormatChoice {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<FormatChoice, UnknownFormat> {
        if s == "auto" {
            return Ok(FormatChoice::Auto);
        }
        s.parse().map(FormatChoice::Format)
    }
}

/// A line the importer did not understand, reported instead of dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedLine {
    /// The line number, from 1.
    pub line: usize,
    /// The line, truncated to [`SKIPPED_TEXT_LEN`] characters (control characters
    /// replaced by `?`).
    pub text: String,
}

/// What an import produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportReport {
    /// The dialogue. The header has `@imported-from FORMAT` and `@origin` in
    /// [`Header::extra`](super::Header::extra).
    pub trace: Trace,
    /// The first [`MAX_SKIPPED_LINES`] lines not understood, in order.
    pub skipped: Vec<SkippedLine>,
    /// How many more lines were not understood beyond those in `skipped`.
    pub skipped_beyond_limit: usize,
}

/// How to import.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImportOptions {
    /// [`Secrets::Masked`] (the default) redacts what the recorder redacts: the data of
    /// PIN-carrying commands (`<pin:N>`) and the plaintext of PERFORM SECURITY OPERATION
    /// ENCIPHER / DECIPHER (`<plaintext:N>`). [`Secrets::Recorded`] keeps every byte, and
    /// the header says so.
    pub secrets: Secrets,
}

/// Why a log could not be imported. Every variant names the input (`origin`) and the
/// 1-based line; columns count characters from 1 (after colour codes are removed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// A hex group with an odd number of digits.
    #[error(
        "{origin}:{line}:{column}: odd number of hex digits ({digits}) in a byte string; expected pairs"
    )]
    OddHex {
        /// The input.
        origin: String,
        /// The line.
        line: usize,
        /// Where the group starts.
        column: usize,
        /// How many digits the group has.
        digits: usize,
    },
    /// A character that is not a hex digit where bytes were expected.
    #[error("{origin}:{line}:{column}: expected a hex digit, found {found:?}")]
    BadHexDigit {
        /// The input.
        origin: String,
        /// The line.
        line: usize,
        /// Where the character is.
        column: usize,
        /// The character.
        found: char,
    },
    /// A response with no command before it.
    #[error("{origin}:{line}: a response with no command before it")]
    ResponseWithoutCommand {
        /// The input.
        origin: String,
        /// The line of the response.
        line: usize,
    },
    /// A command with no response at the end of the input.
    #[error("{origin}:{line}: the log ends before the response to the command on this line")]
    CommandWithoutResponse {
        /// The input.
        origin: String,
        /// The line of the command.
        line: usize,
    },
    /// The input ends (or the next record starts) before something announced is complete.
    #[error("{origin}:{line}: the log is cut short: expected {expected}")]
    Truncated {
        /// The input.
        origin: String,
        /// The line where the incomplete element starts.
        line: usize,
        /// What was still expected.
        expected: String,
    },
    /// No format recognised in the first lines (`--from auto`).
    #[error(
        "{origin}: not a log format telepay imports (looked at the first {lines} lines); name it with --from"
    )]
    NotDetected {
        /// The input.
        origin: String,
        /// How many lines were looked at.
        lines: usize,
    },
    /// A length announced by the log differs from the bytes that follow.
    #[error("{origin}:{line}: the log announces {announced} bytes but holds {found}")]
    BadLength {
        /// The input.
        origin: String,
        /// The line of the bytes (or of the announcement).
        line: usize,
        /// The length announced.
        announced: usize,
        /// The bytes found.
        found: usize,
    },
    /// A control character: the input is binary, not a log.
    #[error(
        "{origin}:{line}:{column}: control character U+{code:04X}: this is binary data, not a text log"
    )]
    ControlCharacter {
        /// The input.
        origin: String,
        /// The line.
        line: usize,
        /// Where the character is.
        column: usize,
        /// Its code point.
        code: u32,
    },
    /// Bytes that are not UTF-8 (see [`text_from_bytes`]).
    #[error(
        "{origin}:{line}:{column}: byte 0x{byte:02X} is not UTF-8: this is binary data, not a text log"
    )]
    InvalidUtf8 {
        /// The input.
        origin: String,
        /// The line.
        line: usize,
        /// The column of the first bad byte (characters before it, plus one).
        column: usize,
        /// The first bad byte.
        byte: u8,
    },
    /// An APDU longer than [`MAX_APDU_LEN`].
    #[error("{origin}:{line}: an APDU of more than {limit} bytes (ISO 7816-4 extended maximum)")]
    TooLong {
        /// The input.
        origin: String,
        /// The line.
        line: usize,
        /// The limit.
        limit: usize,
    },
    /// A field of a line recognised as part of the format does not have the form the
    /// tool writes.
    #[error("{origin}:{line}:{column}: expected {expected}, found {found:?}")]
    Malformed {
        /// The input.
        origin: String,
        /// The line.
        line: usize,
        /// Where the field starts.
        column: usize,
        /// What the tool writes there.
        expected: &'static str,
        /// What is there (truncated to 40 characters).
        found: String,
    },
    /// An element the log must have is missing from a block.
    #[error("{origin}:{line}: the {block} starting on this line has no {missing}")]
    Incomplete {
        /// The input.
        origin: String,
        /// The line where the block starts.
        line: usize,
        /// The block, e.g. `SCardTransmit call`.
        block: &'static str,
        /// What it lacks, e.g. `bRecvBuffer`.
        missing: &'static str,
    },
}

impl ImportError {
    /// The line the error is on, when it has one.
    pub fn line(&self) -> Option<usize> {
        match self {
            ImportError::OddHex { line, .. }
            | ImportError::BadHexDigit { line, .. }
            | ImportError::ResponseWithoutCommand { line, .. }
            | ImportError::CommandWithoutResponse { line, .. }
            | ImportError::Truncated { line, .. }
            | ImportError::BadLength { line, .. }
            | ImportError::ControlCharacter { line, .. }
            | ImportError::InvalidUtf8 { line, .. }
            | ImportError::TooLong { line, .. }
            | ImportError::Malformed { line, .. }
            | ImportError::Incomplete { line, .. } => Some(*line),
            ImportError::NotDetected { .. } => None,
        }
    }
}

/// Whether a line is one a format's tool writes (and no other tool would).
type Sniffer = fn(&str) -> bool;

/// The formats' signature lines. They are disjoint; the order only settles a line
/// several could claim (none known).
const SNIFFERS: [(ImportFormat, Sniffer); 7] = [
    (ImportFormat::Apdu4j, apdu4j::sniff),
    (ImportFormat::Cardpeek, cardpeek::sniff),
    (ImportFormat::GlobalPlatformPro, gp::sniff),
    (ImportFormat::PcscSpy, pcsc_spy::sniff),
    (ImportFormat::OpenSc, opensc::sniff),
    (ImportFormat::Vicc, vicc::sniff),
    (ImportFormat::Pyscard, pyscard::sniff),
];

/// How many lines [`detect`] looks at, at most.
pub const DETECT_LINES: usize = 200;

/// How many bytes [`detect`] looks at, at most.
pub const DETECT_BYTES: usize = 64 * 1024;

/// Looks at the first lines only (bounded: [`DETECT_LINES`] lines, [`DETECT_BYTES`]
/// bytes) and names the format, or `None` (also for a telepay trace).
pub fn detect(text: &str) -> Option<ImportFormat> {
    if text.trim_start().starts_with("telepay-trace") {
        return None;
    }
    // Only the first DETECT_BYTES bytes are looked at, cut at a character boundary; a
    // line cut there is left out.
    let mut end = text.len().min(DETECT_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let head = text.get(..end).unwrap_or_default();
    let complete = if end < text.len() {
        head.rfind('\n')
            .map_or("", |at| head.get(..at).unwrap_or_default())
    } else {
        head
    };
    for raw in complete.split('\n').take(DETECT_LINES) {
        let line = common::strip_colours(raw.strip_suffix('\r').unwrap_or(raw));
        if let Some((format, _)) = SNIFFERS.iter().find(|(_, sniff)| sniff(&line)) {
            return Some(*format);
        }
    }
    None
}

/// Converts a log to a trace, secrets masked. The header gets `@imported-from FORMAT`
/// and the origin in `extra`, the ATR as an `AnswerToReset` event when the log shows
/// one, timings when the log has them.
///
/// # Errors
/// See [`ImportError`]; `origin` names the input in them.
pub fn import(format: ImportFormat, text: &str, origin: &str) -> Result<ImportReport, ImportError> {
    import_with(format, text, origin, ImportOptions::default())
}

/// [`import`] with options.
///
/// # Errors
/// See [`ImportError`].
pub fn import_with(
    format: ImportFormat,
    text: &str,
    origin: &str,
    options: ImportOptions,
) -> Result<ImportReport, ImportError> {
    let mut lines = common::Lines::new(text, origin);
    let mut builder = common::Builder::new(format, origin, options);
    let parsed = match format {
        ImportFormat::PcscSpy => pcsc_spy::parse(&mut lines, &mut builder),
        ImportFormat::OpenSc => opensc::parse(&mut lines, &mut builder),
        ImportFormat::Vicc => vicc::parse(&mut lines, &mut builder),
        ImportFormat::Cardpeek => cardpeek::parse(&mut lines, &mut builder),
        ImportFormat::Apdu4j => apdu4j::parse(&mut lines, &mut builder),
        ImportFormat::GlobalPlatformPro => gp::parse(&mut lines, &mut builder),
        ImportFormat::Pyscard => pyscard::parse(&mut lines, &mut builder),
    };
    match parsed {
        Ok(()) => Ok(builder.finish()),
        Err(error) => Err(cut_short(error, text, origin)),
    }
}

/// A malformed last line that has no line break is a file cut in the middle of the
/// line: say so rather than blame the digits.
fn cut_short(error: ImportError, text: &str, origin: &str) -> ImportError {
    let cut = matches!(
        error,
        ImportError::OddHex { .. }
            | ImportError::BadHexDigit { .. }
            | ImportError::Malformed { .. }
            | ImportError::BadLength { .. }
    );
    if !cut || text.is_empty() || text.ends_with('\n') {
        return error;
    }
    let last = text.split('\n').count();
    match error.line() {
        Some(line) if line == last => ImportError::Truncated {
            origin: origin.to_owned(),
            line,
            expected: "the rest of the last line (the file ends inside it, without a line break)"
                .to_owned(),
        },
        _ => error,
    }
}

/// Imports with the format `choice` names, detecting it for [`FormatChoice::Auto`].
///
/// # Errors
/// [`ImportError::NotDetected`] when detection finds nothing; otherwise as [`import`].
pub fn import_choice(
    choice: FormatChoice,
    text: &str,
    origin: &str,
    options: ImportOptions,
) -> Result<ImportReport, ImportError> {
    let format = match choice {
        FormatChoice::Format(format) => format,
        FormatChoice::Auto => detect(text).ok_or_else(|| ImportError::NotDetected {
            origin: origin.to_owned(),
            lines: text.lines().take(DETECT_LINES).count(),
        })?,
    };
    import_with(format, text, origin, options)
}

/// The text of a log file read as bytes, or [`ImportError::InvalidUtf8`] at the first
/// byte that is not UTF-8 (binary input), with its line and column.
///
/// # Errors
/// [`ImportError::InvalidUtf8`].
pub fn text_from_bytes<'a>(bytes: &'a [u8], origin: &str) -> Result<&'a str, ImportError> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Ok(text),
        Err(error) => {
            let valid = error.valid_up_to();
            let before = bytes.get(..valid).unwrap_or_default();
            // Everything before `valid` is UTF-8 by construction.
            let before = std::str::from_utf8(before).unwrap_or_default();
            let line_start = before.rfind('\n').map_or(0, |at| at + 1);
            let line = before.matches('\n').count() + 1;
            let column = before
                .get(line_start..)
                .map_or(1, |s| s.chars().count() + 1);
            Err(ImportError::InvalidUtf8 {
                origin: origin.to_owned(),
                line,
                column,
                byte: bytes.get(valid).copied().unwrap_or_default(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for format in ImportFormat::ALL {
            assert_eq!(ImportFormat::from_name(format.name()), Some(*format));
            assert_eq!(format.name().parse::<ImportFormat>(), Ok(*format));
            assert_eq!(format.to_string(), format.name());
        }
        assert_eq!(ImportFormat::from_name("PCSC-SPY"), None);
        let error = "auto".parse::<ImportFormat>().unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown import format \"auto\": expected one of pcsc-spy, opensc, vicc, cardpeek, apdu4j, gp, pyscard, or auto"
        );
        assert_eq!("auto".parse::<FormatChoice>(), Ok(FormatChoice::Auto));
        assert_eq!(
            "gp".parse::<FormatChoice>(),
            Ok(FormatChoice::Format(ImportFormat::GlobalPlatformPro))
        );
    }

    #[test]
    fn invalid_utf8_is_located() {
        let error = text_from_bytes(b"ok\nab\xFFcd\n", "f.log").unwrap_err();
        assert_eq!(
            error,
            ImportError::InvalidUtf8 {
                origin: "f.log".into(),
                line: 2,
                column: 3,
                byte: 0xFF
            }
        );
        assert_eq!(text_from_bytes(b"fine\n", "f.log"), Ok("fine\n"));
    }

    #[test]
    fn detect_declines_traces_and_prose() {
        assert_eq!(detect("telepay-trace 1\n> 00A40400 00\n< 9000\n"), None);
        assert_eq!(detect("Dear diary,\nnothing happened today.\n"), None);
        assert_eq!(detect(""), None);
    }
}
