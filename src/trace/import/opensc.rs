//! OpenSC debug logs (`debug = 3` in `opensc.conf`, or `OPENSC_DEBUG=3`). Every record
//! starts with a prefix (`src/libopensc/log.c`, `sc_do_log_va`), and `sc_apdu_log` writes
//! each APDU as a labelled hex dump (`sc_debug_hex`, `sc_hex_dump`):
//!
//! ```text
//! P:2136; T:0x140310917269312 10:49:05.104 [opensc-tool] reader-pcsc.c:325:pcsc_transmit:
//! Outgoing APDU (5 bytes):
//! 00 CA 01 00 00 .....
//! P:2136; T:0x140310917269312 10:49:05.114 [opensc-tool] reader-pcsc.c:334:pcsc_transmit:
//! Incoming APDU (2 bytes):
//! 6A 88 j.
//! ```
//!
//! Prefixes: `P:PID; T:0xTID HH:MM:SS.mmm [APP] ` (Unix), `P:PID; T:TID YYYY-MM-DD
//! HH:MM:SS.mmm [APP] ` (Windows), `0xTID HH:MM:SS.mmm [APP] ` (OpenSC before 0.16). The
//! dump lines hold 16 bytes as `XX ` each and then their ASCII rendering; the byte count
//! in the label says how many to read. The time between the two records is the exchange's
//! timing (millisecond resolution).

use super::ImportError;
use super::common::{Builder, Line, Lines, clock_elapsed, clock_millis, decimal, hex_into};

/// Whether `line` starts an OpenSC log record or an APDU dump.
pub(super) fn sniff(line: &str) -> bool {
    (line.starts_with("P:") && line.contains("; T:") && record(line).is_some())
        || line.starts_with("Outgoing APDU (")
        || line.starts_with("Incoming APDU (")
}

/// The time of day (milliseconds) of a record line, or `None` when `line` is not one.
fn record(line: &str) -> Option<u64> {
    let rest = if let Some(rest) = line.strip_prefix("P:") {
        let (pid, rest) = rest.split_once("; T:")?;
        decimal(pid)?;
        rest.split_once(' ')?.1
    } else if line.starts_with("0x") {
        line.split_once(' ')?.1
    } else {
        return None;
    };
    let (first, rest) = rest.split_once(' ')?;
    // Windows records have the date before the time.
    let (clock, rest) = if first.len() == 10 && first.as_bytes().get(4) == Some(&b'-') {
        rest.split_once(' ')?
    } else {
        (first, rest)
    };
    if !rest.starts_with('[') || (!rest.contains("] ") && !rest.ends_with(']')) {
        return None;
    }
    clock_millis(clock)
}

/// A dump label, `Outgoing APDU (13 bytes):`: the label and the byte count.
fn label(line: &str) -> Option<(&str, usize)> {
    let body = line.trim_end().strip_suffix("):")?;
    let (name, count) = body.rsplit_once(" (")?;
    let count = count
        .strip_suffix(" bytes")
        .or_else(|| count.strip_suffix(" byte"))?;
    Some((name, decimal(count)?))
}

/// Reads the `count` bytes of the dump labelled on line `at`.
fn dump(
    lines: &mut Lines<'_>,
    at: usize,
    name: &str,
    count: usize,
) -> Result<Vec<u8>, ImportError> {
    let origin = lines.origin();
    if count > super::MAX_APDU_LEN {
        return Err(ImportError::TooLong {
            origin: origin.to_owned(),
            line: at,
            limit: super::MAX_APDU_LEN,
        });
    }
    let mut bytes = Vec::with_capacity(count);
    while bytes.len() < count {
        let remaining = count - bytes.len();
        let cut = match lines.peek()? {
            None => true,
            Some(next) => record(next.as_str()).is_some(),
        };
        let line = match lines.next_line()? {
            Some(line) if !cut => line,
            _ => {
                return Err(ImportError::Truncated {
                    origin: origin.to_owned(),
                    line: at,
                    expected: format!("{remaining} more bytes of the {name} hex dump"),
                });
            }
        };
        let on_line = remaining.min(16);
        let text: &str = line.as_str();
        // The first `on_line` blank-separated tokens are the bytes; the ASCII rendering
        // follows and is ignored.
        let mut taken = 0usize;
        for token in text
            .split(' ')
            .filter(|token| !token.is_empty())
            .take(on_line)
        {
            if token.len() != 2 {
                let before = bytes.len();
                hex_into(origin, &line, token, &mut bytes)?;
                // An even group of another width: not the dump layout.
                if bytes.len() != before + 1 {
                    return Err(super::common::malformed(
                        origin,
                        &line,
                        token,
                        "a byte as two hex digits",
                    ));
                }
            } else {
                hex_into(origin, &line, token, &mut bytes)?;
            }
            taken += 1;
        }
        if taken < on_line {
            return Err(ImportError::Truncated {
                origin: origin.to_owned(),
                line: line.number,
                expected: format!("{on_line} bytes on this line of the {name} hex dump"),
            });
        }
    }
    Ok(bytes)
}

/// Imports the lines; see the module documentation.
pub(super) fn parse(lines: &mut Lines<'_>, b: &mut Builder) -> Result<(), ImportError> {
    let origin = lines.origin();
    // The time of the last record line: dumps belong to the record just before them.
    let mut clock: Option<u64> = None;
    let mut pending: Option<(usize, Vec<u8>, Option<u64>)> = None;
    while let Some(line) = lines.next_line()? {
        let text = line.as_str();
        if let Some(time) = record(text) {
            clock = Some(time);
            continue;
        }
        if text.trim().is_empty() {
            continue;
        }
        let Some((name, count)) = label(text) else {
            b.skip(&line);
            continue;
        };
        let bytes = dump(lines, line.number, name, count)?;
        outcome(origin, &line, name, bytes, clock, &mut pending, b)?;
    }
    match pending {
        Some((line, _, _)) => Err(ImportError::CommandWithoutResponse {
            origin: origin.to_owned(),
            line,
        }),
        None => Ok(()),
    }
}

/// What a dump labelled `name` means: a command, a response, or (other labels) nothing.
fn outcome(
    origin: &str,
    line: &Line<'_>,
    name: &str,
    bytes: Vec<u8>,
    clock: Option<u64>,
    pending: &mut Option<(usize, Vec<u8>, Option<u64>)>,
    b: &mut Builder,
) -> Result<(), ImportError> {
    match name {
        "Outgoing APDU" => {
            if let Some((at, earlier, _)) = pending.replace((line.number, bytes, clock)) {
                b.unanswered(at, &earlier, "no incoming APDU logged");
            }
        }
        "Incoming APDU" => {
            let Some((_, command, sent)) = pending.take() else {
                return Err(ImportError::ResponseWithoutCommand {
                    origin: origin.to_owned(),
                    line: line.number,
                });
            };
            let elapsed = match (sent, clock) {
                (Some(sent), Some(received)) => Some(clock_elapsed(sent, received)),
                _ => None,
            };
            b.exchange(line.number, command, bytes, elapsed, None)?;
        }
        // Other labelled dumps (keys, file contents) are read past: they are OpenSC's,
        // not the card dialogue.
        _ => {}
    }
    Ok(())
}
