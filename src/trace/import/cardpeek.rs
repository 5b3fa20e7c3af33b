//! Cardpeek card logs: the file `card.log_save(NAME)` writes (and that Cardpeek replays
//! as a `replay://` reader), from `cardemul_save_to_file` in Cardpeek's `emulator.c`:
//!
//! ```text
//! # cardpeek emulator
//! # version 0
//! R:3BE800008031FE458073C6010052434285
//! C:00A4040007A000000042101000:9000:6F1A8407A0000000421010A50F5002434287010
//! # end
//! ```
//!
//! `R:ATR` is a power-up or reset; `C:COMMAND:SW:DATA` an exchange, the status word
//! apart from the response data (four hex digits). No timings.

use super::ImportError;
use super::common::{Builder, Lines, hex, is_hex, malformed};

/// Whether `line` is one a Cardpeek card log has.
pub(super) fn sniff(line: &str) -> bool {
    if line.starts_with("# cardpeek") {
        return true;
    }
    if let Some(rest) = line.strip_prefix("C:") {
        let mut fields = rest.split(':');
        return match (fields.next(), fields.next(), fields.next(), fields.next()) {
            (Some(command), Some(sw), Some(data), None) => {
                is_hex(command) && sw.len() == 4 && is_hex(sw) && (data.is_empty() || is_hex(data))
            }
            _ => false,
        };
    }
    false
}

/// Imports the lines; see the module documentation.
pub(super) fn parse(lines: &mut Lines<'_>, b: &mut Builder) -> Result<(), ImportError> {
    let origin = lines.origin();
    while let Some(line) = lines.next_line()? {
        let text = line.as_str().trim_end();
        if text.is_empty() {
            continue;
        }
        if let Some(body) = text.strip_prefix('#') {
            let body = body.trim();
            // Cardpeek writes `# cardpeek emulator`, `# version N` and `# end`; other
            // comments are someone's notes, kept.
            if !(body.starts_with("cardpeek") || body.starts_with("version ") || body == "end") {
                b.comment(body);
            }
        } else if let Some(atr) = text.strip_prefix("R:") {
            b.atr(line.number, hex(origin, &line, atr)?)?;
        } else if let Some(rest) = text.strip_prefix("C:") {
            let mut fields = rest.splitn(3, ':');
            let (Some(command), Some(sw), Some(data)) =
                (fields.next(), fields.next(), fields.next())
            else {
                return Err(malformed(
                    origin,
                    &line,
                    rest,
                    "`COMMAND:SW:DATA` after `C:`",
                ));
            };
            let command = hex(origin, &line, command)?;
            let mut response = hex(origin, &line, data)?;
            if sw.len() != 4 {
                return Err(malformed(
                    origin,
                    &line,
                    sw,
                    "the status word as four hex digits",
                ));
            }
            let sw = hex(origin, &line, sw)?;
            response.extend_from_slice(&sw);
            b.exchange(line.number, command, response, None, None)?;
        } else {
            b.skip(&line);
        }
    }
    Ok(())
}
