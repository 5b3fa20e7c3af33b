//! The errors of the `.trace` layer: every one names the origin (file name) and, where
//! there is one, the line and column, what was expected and what was found.

use std::io;

/// An error reading or writing a `.trace` text.
///
/// Positions are 1-based. `column` counts characters, except in
/// [`TraceError::InvalidUtf8`] where the line is not text and the column counts bytes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TraceError {
    /// The input could not be read.
    #[error("{origin}: cannot read: {source}")]
    Io {
        /// The file name (or `<string>`, `<pattern>`).
        origin: String,
        /// The error the reader returned.
        #[source]
        source: io::Error,
    },
    /// Line 1 is not `telepay-trace N`.
    #[error(
        "{origin}:1:1: not a telepay trace: expected `telepay-trace 1` on line 1, found {found}"
    )]
    NotATrace {
        /// The file name.
        origin: String,
        /// A short escaped excerpt of line 1 (or `end of file`).
        found: String,
    },
    /// Line 1 is `telepay-trace N` with an N this build does not read.
    #[error(
        "{origin}:1:15: unsupported trace version {found}: this build reads version {supported}"
    )]
    UnsupportedVersion {
        /// The file name.
        origin: String,
        /// The version written in the file (digits as written, shortened if very long).
        found: String,
        /// The version this build reads ([`crate::trace::FORMAT_VERSION`]).
        supported: u32,
    },
    /// A line does not follow the grammar.
    #[error("{origin}:{line}:{column}: expected {expected}, found {found}")]
    Syntax {
        /// The file name.
        origin: String,
        /// The line, from 1.
        line: usize,
        /// The column in characters, from 1.
        column: usize,
        /// What the grammar allows at that point.
        expected: String,
        /// What is there: a short escaped excerpt in backticks, or `end of line`.
        found: String,
    },
    /// A line is longer than [`super::MAX_LINE_LEN`] bytes; reading stopped there
    /// without holding the rest of the line.
    #[error("{origin}:{line}: line longer than {limit} bytes")]
    LineTooLong {
        /// The file name.
        origin: String,
        /// The line, from 1.
        line: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// A line is not UTF-8 (binary data).
    #[error("{origin}:{line}:{column}: invalid UTF-8 (binary data?) at byte column {column}")]
    InvalidUtf8 {
        /// The file name.
        origin: String,
        /// The line, from 1.
        line: usize,
        /// The column of the first invalid byte, in bytes, from 1.
        column: usize,
    },
    /// A `<` response line with no `>` command before it.
    #[error("{origin}:{line}: response without command: a `<` line must follow a `>` line")]
    ResponseWithoutCommand {
        /// The file name.
        origin: String,
        /// The line of the `<`.
        line: usize,
    },
    /// A `>` command line followed by another `>` or an `@atr` before its response.
    #[error("{origin}:{line}: command without response: expected a `<` line after this `>`")]
    CommandWithoutResponse {
        /// The file name.
        origin: String,
        /// The line of the `>` left without response.
        line: usize,
    },
    /// The input ended where more was required (after a `>` command line).
    #[error("{origin}:{line}: truncated: the file ends where {expected} was expected")]
    Truncated {
        /// The file name.
        origin: String,
        /// The line of the unfinished element (the `>` left without response).
        line: usize,
        /// What was expected before the end.
        expected: String,
    },
    /// A header line (`@key value`, other than `@atr`) after the first exchange.
    #[error("{origin}:{line}: header line `@{key}` after the first exchange")]
    HeaderAfterExchange {
        /// The file name.
        origin: String,
        /// The line of the header line.
        line: usize,
        /// The key, without `@`.
        key: String,
    },
    /// A header line that came after [`super::MAX_HEADER_LEN`] bytes of header,
    /// comments and ATRs: the reader no longer holds the header open.
    #[error(
        "{origin}:{line}: header line `@{key}` after {limit} bytes of preamble: header lines must come earlier"
    )]
    HeaderTooLong {
        /// The file name.
        origin: String,
        /// The line of the header line.
        line: usize,
        /// The key, without `@`.
        key: String,
        /// The limit in bytes.
        limit: usize,
    },
    /// A header key that holds one value (`@reader`, `@protocol`, `@profile`, `@date`,
    /// `@secrets`) given twice.
    #[error("{origin}:{line}: header line `@{key}` given twice (first on line {first_line})")]
    DuplicateHeader {
        /// The file name.
        origin: String,
        /// The line of the second occurrence.
        line: usize,
        /// The key, without `@`.
        key: String,
        /// The line of the first occurrence.
        first_line: usize,
    },
    /// The writer was given a value the text format cannot hold (an empty pattern, a
    /// comment with a line break, a header key with a space…). Carried inside an
    /// [`io::Error`] of kind [`io::ErrorKind::InvalidInput`] by the writer.
    #[error("cannot write {field}: expected {expected}, found {found}")]
    Unwritable {
        /// Which part of the trace, e.g. `event 3 (exchange): response`.
        field: String,
        /// What the format requires.
        expected: String,
        /// What was given, shortened and escaped.
        found: String,
    },
}

impl TraceError {
    /// The line the error is on, when it has one.
    pub fn line(&self) -> Option<usize> {
        match self {
            TraceError::NotATrace { .. } | TraceError::UnsupportedVersion { .. } => Some(1),
            TraceError::Syntax { line, .. }
            | TraceError::LineTooLong { line, .. }
            | TraceError::InvalidUtf8 { line, .. }
            | TraceError::ResponseWithoutCommand { line, .. }
            | TraceError::CommandWithoutResponse { line, .. }
            | TraceError::Truncated { line, .. }
            | TraceError::HeaderAfterExchange { line, .. }
            | TraceError::HeaderTooLong { line, .. }
            | TraceError::DuplicateHeader { line, .. } => Some(*line),
            TraceError::Io { .. } | TraceError::Unwritable { .. } => None,
        }
    }
}
