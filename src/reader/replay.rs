//! The `replay:` backend: a recorded trace plays the card for a terminal under test.
//!
//! - **strict** (default): every command must come in the recorded order and match the
//!   recorded one (wildcards and redactions match anything);
//! - **lenient**: each command is matched with the next recorded exchange whose command
//!   has the same header (CLA INS P1 P2), skipping the exchanges in between — as
//!   apdu4j's skipping mock does.
//!
//! A mismatch is an error that shows the expected and the received command, decoded,
//! with the differing bytes marked. The card answers the recorded response; bytes the
//! recording holds as wildcards or redactions are answered as `00`.

use std::path::Path;

use super::uri::{ReplayMode, ReplayUri};
use super::{Reader, ReaderError, ResetKind};
use crate::apdu::CommandView;
use crate::describe::describe_command;
use crate::trace::format::{self, format_pattern};
use crate::trace::{Event, Pattern};

/// A card played from a trace.
#[derive(Debug)]
pub struct ReplayReader {
    name: String,
    mode: ReplayMode,
    /// Events with the line they were read from.
    events: Vec<(usize, Event)>,
    /// The next event to play.
    position: usize,
    powered: bool,
}

impl ReplayReader {
    /// Loads the trace a `replay:` URI names.
    pub fn open(uri: &ReplayUri) -> Result<ReplayReader, ReaderError> {
        let file = std::fs::File::open(&uri.file).map_err(|source| ReaderError::Trace {
            file: uri.file.clone(),
            source: Box::new(format::TraceError::Io {
                origin: uri.file.display().to_string(),
                source,
            }),
        })?;
        let origin = uri.file.display().to_string();
        let trace_error = |source| ReaderError::Trace {
            file: uri.file.clone(),
            source: Box::new(source),
        };
        let mut reader =
            format::Reader::new(std::io::BufReader::new(file), &origin).map_err(trace_error)?;
        let mut events = Vec::new();
        while let Some(event) = reader.next() {
            let event = event.map_err(trace_error)?;
            events.push((reader.line(), event));
        }
        Ok(ReplayReader::from_events(
            &uri.file,
            uri.mode.unwrap_or_default(),
            events,
        ))
    }

    /// A replayed card from events already in memory (with their line numbers).
    pub fn from_events(file: &Path, mode: ReplayMode, events: Vec<(usize, Event)>) -> Self {
        let name = super::ReaderUri::Replay(ReplayUri {
            file: file.to_owned(),
            mode: Some(mode),
        })
        .to_string();
        ReplayReader {
            name,
            mode,
            events,
            position: 0,
            powered: false,
        }
    }

    /// How many recorded exchanges have not been played yet.
    pub fn remaining_exchanges(&self) -> usize {
        self.events
            .get(self.position..)
            .unwrap_or_default()
            .iter()
            .filter(|(_, event)| matches!(event, Event::Exchange(_)))
            .count()
    }

    /// The next recorded ATR: in strict mode it must be the next event (comments aside).
    fn next_atr(&mut self) -> Result<Vec<u8>, ReaderError> {
        while let Some((line, event)) = self.events.get(self.position) {
            self.position += 1;
            match event {
                Event::AnswerToReset(atr) => return Ok(atr.to_bytes_filled(0)),
                Event::Comment(_) => {}
                Event::Exchange(exchange) if self.mode == ReplayMode::Strict => {
                    return Err(ReaderError::ReplayUnexpected {
                        reader: self.name.clone(),
                        line: *line,
                        expected: format!(
                            "the command {} to be sent",
                            format_pattern(&exchange.command)
                        ),
                        received: "a power-up or reset".to_owned(),
                    });
                }
                Event::Exchange(_) => {}
            }
        }
        Err(ReaderError::ReplayEnded {
            reader: self.name.clone(),
            waiting_for: "a power-up or reset",
        })
    }
}

impl Reader for ReplayReader {
    fn name(&self) -> &str {
        &self.name
    }

    fn power_on(&mut self) -> Result<Vec<u8>, ReaderError> {
        let atr = self.next_atr()?;
        self.powered = true;
        Ok(atr)
    }

    fn reset(&mut self, _kind: ResetKind) -> Result<Vec<u8>, ReaderError> {
        self.power_on()
    }

    fn transmit_raw(&mut self, command: &[u8]) -> Result<Vec<u8>, ReaderError> {
        if !self.powered {
            return Err(ReaderError::NotPowered {
                reader: self.name.clone(),
            });
        }
        let mut skipped_header_match: Option<(usize, Pattern)> = None;
        while let Some((line, event)) = self.events.get(self.position) {
            let line = *line;
            match event {
                Event::Comment(_) => self.position += 1,
                Event::AnswerToReset(_) => {
                    if self.mode == ReplayMode::Lenient {
                        self.position += 1;
                        continue;
                    }
                    return Err(ReaderError::ReplayUnexpected {
                        reader: self.name.clone(),
                        line,
                        expected: "a power-up or reset".to_owned(),
                        received: format!("the command {}", hex::encode_upper(command)),
                    });
                }
                Event::Exchange(exchange) => {
                    if exchange.command.matches(command) {
                        self.position += 1;
                        return Ok(exchange.response.to_bytes_filled(0));
                    }
                    if self.mode == ReplayMode::Strict {
                        return Err(mismatch(&self.name, line, &exchange.command, command));
                    }
                    // Lenient: the same header with other data is a mismatch worth
                    // reporting if nothing later matches.
                    let header = exchange.command.to_bytes_filled(0);
                    if skipped_header_match.is_none() && header.get(..4) == command.get(..4) {
                        skipped_header_match = Some((line, exchange.command.clone()));
                    }
                    self.position += 1;
                }
            }
        }
        match skipped_header_match {
            Some((line, expected)) => Err(mismatch(&self.name, line, &expected, command)),
            None => Err(ReaderError::ReplayEnded {
                reader: self.name.clone(),
                waiting_for: "a recorded exchange matching the command",
            }),
        }
    }

    fn power_off(&mut self) -> Result<(), ReaderError> {
        self.powered = false;
        Ok(())
    }
}

/// The mismatch error: both commands decoded, the differing bytes marked with `^`.
fn mismatch(reader: &str, line: usize, expected: &Pattern, received: &[u8]) -> ReaderError {
    ReaderError::ReplayMismatch {
        reader: reader.to_owned(),
        line,
        detail: mismatch_detail(expected, received),
    }
}

/// Two aligned hex lines and a marker line under the bytes that differ, each line
/// followed by the command's name.
pub fn mismatch_detail(expected: &Pattern, received: &[u8]) -> String {
    let expected_bytes = expected.to_bytes_filled(0);
    let known = known_mask(expected);
    let width = expected_bytes.len().max(received.len());
    let mut expected_hex = String::new();
    let mut received_hex = String::new();
    let mut marks = String::new();
    for index in 0..width {
        let e = expected_bytes.get(index);
        let r = received.get(index);
        let wildcard = !known.get(index).copied().unwrap_or(true);
        expected_hex.push_str(&match (e, wildcard) {
            (Some(_), true) => "??".to_owned(),
            (Some(byte), false) => format!("{byte:02X}"),
            (None, _) => "  ".to_owned(),
        });
        received_hex.push_str(&r.map_or_else(|| "  ".to_owned(), |byte| format!("{byte:02X}")));
        let differs = match (e, r) {
            (Some(_), Some(_)) if wildcard => false,
            (Some(a), Some(b)) => a != b,
            _ => true,
        };
        marks.push_str(if differs { "^^" } else { "  " });
    }
    let name = |bytes: &[u8]| {
        CommandView::parse(bytes)
            .map(|view| describe_command(&view.to_owned()))
            .unwrap_or_else(|error| format!("not a command APDU: {error}"))
    };
    format!(
        "expected {expected_hex}  {}\n  received {received_hex}  {}\n           {}",
        name(&expected_bytes),
        name(received),
        marks.trim_end()
    )
}

/// For each byte of the pattern, whether it is known (not a wildcard or redaction).
fn known_mask(pattern: &Pattern) -> Vec<bool> {
    let mut out = Vec::with_capacity(pattern.len());
    for segment in &pattern.segments {
        match segment {
            crate::trace::Segment::Bytes(bytes) => {
                out.extend(std::iter::repeat_n(true, bytes.len()))
            }
            crate::trace::Segment::Any(len) | crate::trace::Segment::Redacted { len, .. } => {
                out.extend(std::iter::repeat_n(false, *len));
            }
        }
    }
    out
}
