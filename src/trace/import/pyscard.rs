//! pyscard's `ConsoleCardConnectionObserver` output (`smartcard/CardConnectionObserver.py`):
//!
//! ```text
//! connecting to Gemalto PC Twin Reader 00 00
//! > 00 A4 04 00 07 A0 00 00 00 42 10 10 00
//! < 6F 1A 84 07 A0 00 00 00 42 10 10 A5 0F 50 02 43 42 87 01 01 90 00
//! > 00 B2 01 0C 00
//! <  [] 6A 83
//! disconnecting from Gemalto PC Twin Reader 00 00
//! ```
//!
//! `toHexString` writes each byte as two upper-case digits separated by spaces; a
//! response with no data is `<  [] SW1 SW2`. The observer shows neither the ATR nor
//! timings.

use super::ImportError;
use super::common::{Builder, Lines, hex, is_spaced_hex, malformed};

/// Whether `line` is one pyscard's observer writes.
pub(super) fn sniff(line: &str) -> bool {
    line.starts_with("connecting to ")
        || line
            .strip_prefix("<  [] ")
            .is_some_and(|sw| is_spaced_hex(sw, 2))
        || line.strip_prefix("> ").is_some_and(|c| is_spaced_hex(c, 4))
        || line.strip_prefix("< ").is_some_and(|r| is_spaced_hex(r, 2))
}

/// Imports the lines; see the module documentation.
pub(super) fn parse(lines: &mut Lines<'_>, b: &mut Builder) -> Result<(), ImportError> {
    let origin = lines.origin();
    let mut pending: Option<(usize, Vec<u8>)> = None;
    while let Some(line) = lines.next_line()? {
        let text = line.as_str();
        if text.trim().is_empty() || text.starts_with("disconnecting from ") {
            continue;
        }
        if let Some(reader) = text.strip_prefix("connecting to ") {
            b.set_reader(reader);
        } else if let Some(command) = text.strip_prefix("> ") {
            let command = hex(origin, &line, command)?;
            if let Some((at, earlier)) = pending.replace((line.number, command)) {
                b.unanswered(at, &earlier, "no response logged");
            }
        } else if let Some(response) = text.strip_prefix("< ") {
            // `<  [] SW1 SW2`: the response has no data.
            let bytes_part = response.strip_prefix(" [] ").unwrap_or(response);
            let response = hex(origin, &line, bytes_part)?;
            if response.len() < 2 {
                return Err(malformed(
                    origin,
                    &line,
                    bytes_part,
                    "a response ending with the status word SW1 SW2",
                ));
            }
            let Some((_, command)) = pending.take() else {
                return Err(ImportError::ResponseWithoutCommand {
                    origin: origin.to_owned(),
                    line: line.number,
                });
            };
            b.exchange(line.number, command, response, None, None)?;
        } else {
            b.skip(&line);
        }
    }
    match pending {
        Some((line, _)) => Err(ImportError::CommandWithoutResponse {
            origin: origin.to_owned(),
            line,
        }),
        None => Ok(()),
    }
}
