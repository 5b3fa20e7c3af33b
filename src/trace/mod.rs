//! Recorded card dialogues: the `.trace` format, recording, replay, diff and import.
//!
//! A trace is plain UTF-8 text a person can read, edit, diff in git and write by hand
//! (specification: `docs/trace-format.md`):
//!
//! ```text
//! telepay-trace 1
//! @reader sim:cb?seed=1
//! @protocol T=1
//! @secrets masked
//! @atr 3BE800008031FE458073C6010052434285
//!
//! # SELECT the CB application
//! > 00A40400 07 A0000000421010 00
//! < 6F36 8407A0000000421010 A52B500243428701015F2D046672656E9F1101019F120E43415254452042414E4341495245BF0C059F4D020B0A 9000  @134us
//! > 0020008008 <pin:8>
//! < 9000
//! > 80CA9F3600
//! < 9F3602 ???? 9000
//! ```
//!
//! This module holds the data model every part shares:
//!
//! - [`Trace`]: a [`Header`] and the [`Event`]s in order (power-ups with their ATR,
//!   exchanges, comments);
//! - [`Exchange`]: a command [`Pattern`] and a response [`Pattern`], with the time the
//!   card took when recorded;
//! - [`Pattern`]: bytes where some runs may be wildcards (`??`: any byte, for varying
//!   fields — unpredictable number, ATC, cryptograms) or named redactions (`<pin:8>`: 8
//!   bytes withheld, e.g. a PIN block).
//!
//! Submodules: [`format`](mod@format) parses (streaming, constant memory) and writes the text;
//! [`record`] records a live dialogue; [`check`] replays a recording against a card (as
//! the terminal); [`show`] renders a trace decoded; [`diff`] explains the differences
//! between two. The `replay:` reader (the recording as the card) is
//! [`crate::reader::replay`].

pub mod check;
pub mod diff;
pub mod format;
pub mod import;
pub mod record;
pub mod show;

use std::time::Duration;

/// The format version this build reads and writes (`telepay-trace 1`).
pub const FORMAT_VERSION: u32 = 1;

/// Whether secret command data (PIN blocks, data flagged secret) was kept when recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Secrets {
    /// Secret data replaced by named redactions (the default).
    #[default]
    Masked,
    /// Secret data recorded as it was (`--record-secrets`): treat the file as a secret.
    Recorded,
}

/// The header: what the dialogue was recorded with. Every field is optional except the
/// version; unknown `@key value` lines are kept in [`Header::extra`] in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Header {
    /// The format version of the file (`telepay-trace N`).
    pub version: u32,
    /// The reader URI the dialogue was recorded on (`@reader`).
    pub reader: Option<String>,
    /// The transmission protocol (`@protocol T=0` / `T=1`).
    pub protocol: Option<String>,
    /// The card profile, for simulated cards (`@profile`).
    pub profile: Option<String>,
    /// When it was recorded, RFC 3339 UTC (`@date 2026-11-25T17:00:00Z`).
    pub date: Option<String>,
    /// Whether secrets were kept (`@secrets masked|recorded`).
    pub secrets: Secrets,
    /// Other `@key value` lines, in order (e.g. `@tool`, `@imported-from`).
    pub extra: Vec<(String, String)>,
}

/// One element of a trace body, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The card was powered or reset and answered this ATR (`@atr HEX`).
    AnswerToReset(Pattern),
    /// A command and the card's response.
    Exchange(Exchange),
    /// A whole-line comment (`# …`), without the `#` and one following space.
    Comment(String),
}

/// A command and its response as they crossed the interface (before T=0 handling:
/// `61xx` and GET RESPONSE appear as their own exchanges).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    /// The command bytes.
    pub command: Pattern,
    /// The response bytes (data and status word).
    pub response: Pattern,
    /// How long the card took, when recorded (`@134us`).
    pub elapsed: Option<Duration>,
    /// A comment at the end of the response line (`# …`), if any.
    pub note: Option<String>,
}

/// A run of a [`Pattern`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Bytes that must match exactly (one whitespace-separated hex group in the text).
    Bytes(Vec<u8>),
    /// This many bytes of any value (`??` per byte in the text).
    Any(usize),
    /// This many bytes withheld under a name (`<pin:8>`): they match anything on replay,
    /// and the name says why they are missing.
    Redacted {
        /// Why the bytes are withheld, e.g. `pin`.
        name: String,
        /// How many bytes.
        len: usize,
    },
}

/// Bytes with optional wildcard and redacted runs. The segmentation is kept as written so
/// a trace re-written keeps its grouping.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pattern {
    /// The runs, in order.
    pub segments: Vec<Segment>,
}

impl Pattern {
    /// A pattern of exact bytes, one segment.
    pub fn exact(bytes: impl Into<Vec<u8>>) -> Pattern {
        let bytes = bytes.into();
        if bytes.is_empty() {
            return Pattern::default();
        }
        Pattern {
            segments: vec![Segment::Bytes(bytes)],
        }
    }

    /// The number of bytes the pattern stands for.
    pub fn len(&self) -> usize {
        self.segments
            .iter()
            .map(|segment| match segment {
                Segment::Bytes(bytes) => bytes.len(),
                Segment::Any(len) | Segment::Redacted { len, .. } => *len,
            })
            .sum()
    }

    /// Whether the pattern stands for no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether every byte is known (no wildcard, no redaction).
    pub fn is_exact(&self) -> bool {
        self.segments
            .iter()
            .all(|segment| matches!(segment, Segment::Bytes(_)))
    }

    /// The bytes, when every byte is known.
    pub fn to_bytes(&self) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(self.len());
        for segment in &self.segments {
            match segment {
                Segment::Bytes(bytes) => out.extend_from_slice(bytes),
                Segment::Any(_) | Segment::Redacted { .. } => return None,
            }
        }
        Some(out)
    }

    /// The bytes with unknown ones as `fill`: what a replayed card answers for a
    /// wildcard it was not given.
    pub fn to_bytes_filled(&self, fill: u8) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len());
        for segment in &self.segments {
            match segment {
                Segment::Bytes(bytes) => out.extend_from_slice(bytes),
                Segment::Any(len) | Segment::Redacted { len, .. } => {
                    out.resize(out.len() + len, fill);
                }
            }
        }
        out
    }

    /// Whether `bytes` matches: same length, exact runs equal, wildcard and redacted
    /// runs anything.
    pub fn matches(&self, bytes: &[u8]) -> bool {
        self.first_mismatch(bytes).is_none()
    }

    /// The offset of the first byte that does not match (the shorter length when the
    /// lengths differ), or `None` when `bytes` matches.
    pub fn first_mismatch(&self, bytes: &[u8]) -> Option<usize> {
        let mut offset = 0usize;
        for segment in &self.segments {
            match segment {
                Segment::Bytes(expected) => {
                    for (index, byte) in expected.iter().enumerate() {
                        if bytes.get(offset + index) != Some(byte) {
                            return Some(offset + index);
                        }
                    }
                    offset += expected.len();
                }
                Segment::Any(len) | Segment::Redacted { len, .. } => {
                    if bytes.len() < offset + len {
                        return Some(bytes.len());
                    }
                    offset += len;
                }
            }
        }
        (bytes.len() != offset).then_some(offset.min(bytes.len()))
    }

    /// Replaces bytes `range` (offsets into the pattern) with a named redaction,
    /// splitting segments as needed. Out-of-range parts are ignored.
    pub fn redact(&mut self, range: std::ops::Range<usize>, name: &str) {
        let total = self.len();
        let (start, end) = (range.start.min(total), range.end.min(total));
        if start >= end {
            return;
        }
        let mut before = Vec::new();
        let mut after = Vec::new();
        let mut offset = 0usize;
        for segment in std::mem::take(&mut self.segments) {
            let len = match &segment {
                Segment::Bytes(bytes) => bytes.len(),
                Segment::Any(len) | Segment::Redacted { len, .. } => *len,
            };
            let (seg_start, seg_end) = (offset, offset + len);
            offset = seg_end;
            if seg_end <= start {
                before.push(segment);
            } else if seg_start >= end {
                after.push(segment);
            } else {
                // The segment overlaps the redacted range: keep what lies outside it.
                let head = start.saturating_sub(seg_start);
                let tail = seg_end.saturating_sub(end);
                if head > 0 {
                    before.push(slice_segment(&segment, 0..head));
                }
                if tail > 0 {
                    after.push(slice_segment(&segment, len - tail..len));
                }
            }
        }
        self.segments = before;
        self.segments.push(Segment::Redacted {
            name: name.to_owned(),
            len: end - start,
        });
        self.segments.extend(after);
    }
}

/// Part of a segment, same kind.
fn slice_segment(segment: &Segment, range: std::ops::Range<usize>) -> Segment {
    match segment {
        Segment::Bytes(bytes) => Segment::Bytes(bytes.get(range).unwrap_or_default().to_vec()),
        Segment::Any(_) => Segment::Any(range.len()),
        Segment::Redacted { name, .. } => Segment::Redacted {
            name: name.clone(),
            len: range.len(),
        },
    }
}

/// A whole trace in memory. Large files are better read as a stream of events with
/// [`format::Reader`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Trace {
    /// What the dialogue was recorded with.
    pub header: Header,
    /// Power-ups, exchanges and comments, in order.
    pub events: Vec<Event>,
}

impl Trace {
    /// The exchanges, in order.
    pub fn exchanges(&self) -> impl Iterator<Item = &Exchange> {
        self.events.iter().filter_map(|event| match event {
            Event::Exchange(exchange) => Some(exchange),
            _ => None,
        })
    }

    /// The first ATR of the trace.
    pub fn first_atr(&self) -> Option<&Pattern> {
        self.events.iter().find_map(|event| match event {
            Event::AnswerToReset(atr) => Some(atr),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(segments: Vec<Segment>) -> Pattern {
        Pattern { segments }
    }

    #[test]
    fn matching_with_wildcards_and_redactions() {
        let p = pattern(vec![
            Segment::Bytes(vec![0x77, 0x04]),
            Segment::Any(2),
            Segment::Redacted {
                name: "pin".into(),
                len: 1,
            },
            Segment::Bytes(vec![0x90, 0x00]),
        ]);
        assert_eq!(p.len(), 7);
        assert!(p.matches(&[0x77, 0x04, 1, 2, 3, 0x90, 0x00]));
        assert_eq!(
            p.first_mismatch(&[0x77, 0x05, 1, 2, 3, 0x90, 0x00]),
            Some(1)
        );
        assert_eq!(
            p.first_mismatch(&[0x77, 0x04, 1, 2, 3, 0x6A, 0x82]),
            Some(5)
        );
        assert_eq!(p.first_mismatch(&[0x77, 0x04, 1]), Some(3));
        assert_eq!(
            p.first_mismatch(&[0x77, 0x04, 1, 2, 3, 0x90, 0x00, 0]),
            Some(7)
        );
        assert_eq!(p.to_bytes(), None);
        assert_eq!(p.to_bytes_filled(0), vec![0x77, 0x04, 0, 0, 0, 0x90, 0x00]);
    }

    #[test]
    fn redacting_splits_segments() {
        let mut p = Pattern::exact(vec![0x00, 0x20, 0x00, 0x80, 0x08, 0x24, 0x12, 0x34]);
        p.redact(5..8, "pin");
        assert_eq!(
            p.segments,
            vec![
                Segment::Bytes(vec![0x00, 0x20, 0x00, 0x80, 0x08]),
                Segment::Redacted {
                    name: "pin".into(),
                    len: 3
                },
            ]
        );
        assert_eq!(p.len(), 8);
        let mut q = Pattern::exact(vec![1, 2, 3, 4]);
        q.redact(1..2, "x");
        assert_eq!(
            q.segments,
            vec![
                Segment::Bytes(vec![1]),
                Segment::Redacted {
                    name: "x".into(),
                    len: 1
                },
                Segment::Bytes(vec![3, 4]),
            ]
        );
        q.redact(10..12, "ignored");
        assert_eq!(q.len(), 4);
    }
}
