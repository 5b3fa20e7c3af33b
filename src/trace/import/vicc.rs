//! vsmartcard's virtual card, `vicc -v` (`virtualsmartcard/VirtualSmartcard.py`). Python
//! logging records, `%(asctime)s  [%(levelname)s] %(message)s` with the date as
//! `%d.%m.%Y %H:%M:%S`; each command is logged parsed (default) or raw (`logunparsed`),
//! each response as a hex dump (`virtualsmartcard.utils.hexdump`):
//!
//! ```text
//! 25.11.2026 17:00:01  [INFO] Parsed APDU:
//! C_APDU(CLA=0x00, INS=0xA4, P1=0x04, P2=0x00, Lc=0x07, Le=0x00):
//!   0000:  A0 00 00 00 42 10 10                              ....B..
//! 25.11.2026 17:00:01  [INFO] Response APDU (2 Bytes):
//! 0000:  6A 82                                            j.
//!
//! ```
//!
//! A dump line is `%04x:  ` then the bytes padded to 48 characters, two spaces and their
//! ASCII rendering. The parsed form keeps CLA, INS, P1, P2, Lc, Le and the data; the
//! command is encoded back per ISO 7816-4 §5.1, in extended form only when Lc or Le needs
//! it (the log does not say how a short-valued command was encoded). Timestamps have
//! one-second resolution: no timings are imported. vicc logs no ATR.

use super::ImportError;
use super::common::{
    Builder, Line, Lines, decimal, hex_into, hex_number, is_hex, malformed, to_hex,
};

/// Messages vicc logs that say nothing about the dialogue.
const QUIET: [&str; 8] = [
    "Connected to virtual PCD at ",
    "Waiting for vpcd on port ",
    "Virtual PCD shut down",
    "Reading Data Groups from file ",
    "Open SC APDU",
    "VICC hostname:",
    "VICC port:",
    "On your NFC phone with the Android Smart Card Emulator app scan this code:",
];

/// Whether `line` is one `vicc -v` writes about the card.
pub(super) fn sniff(line: &str) -> bool {
    if line.starts_with("C_APDU(") {
        return true;
    }
    record(line).is_some_and(|(_, message)| {
        matches!(
            message,
            "Parsed APDU:" | "Unparsed APDU:" | "Power Up" | "Power Down"
        ) || message.starts_with("Response APDU (")
            || message.starts_with("Connected to virtual PCD at ")
    })
}

/// Whether `text` is `len` ASCII digits.
fn digits(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| b.is_ascii_digit())
}

/// A record line, `25.11.2026 17:00:01  [INFO] message`: its level and message.
fn record(line: &str) -> Option<(&str, &str)> {
    let (date, rest) = line.split_at_checked(10)?;
    let mut date_parts = date.split('.');
    let date_ok = [2, 2, 4]
        .iter()
        .all(|len| date_parts.next().is_some_and(|part| digits(part, *len)));
    let rest = rest.strip_prefix(' ')?;
    let (clock, rest) = rest.split_at_checked(8)?;
    let mut clock_parts = clock.split(':');
    let clock_ok = (0..3).all(|_| clock_parts.next().is_some_and(|part| digits(part, 2)));
    if !date_ok || !clock_ok {
        return None;
    }
    let rest = rest.strip_prefix("  [")?;
    let (level, message) = match rest.split_once("] ") {
        Some(split) => split,
        None => (rest.strip_suffix(']')?, ""),
    };
    let level_ok = !level.is_empty() && level.bytes().all(|b| b.is_ascii_uppercase());
    level_ok.then_some((level, message))
}

/// A hex dump line, `0000:  A0 00 …  ascii` (maybe indented): its offset and byte field.
fn dump_line(text: &str) -> Option<(usize, &str)> {
    let text = text.trim_start();
    // `%04x`: four digits, more past 0xFFFF.
    let (offset, rest) = text.split_once(':')?;
    if offset.len() < 4 || !is_hex(offset) {
        return None;
    }
    let rest = rest.strip_prefix("  ")?;
    // `%-48s`: the bytes, padded to 48 characters; the ASCII rendering follows.
    let end = rest.char_indices().nth(48).map_or(rest.len(), |(at, _)| at);
    Some((usize::from_str_radix(offset, 16).ok()?, rest.get(..end)?))
}

/// Reads the dump lines that follow (all of them, or until `expected` bytes), for the
/// element that starts on line `at`.
fn read_dump(
    lines: &mut Lines<'_>,
    at: usize,
    expected: Option<usize>,
    what: &'static str,
) -> Result<Vec<u8>, ImportError> {
    let origin = lines.origin();
    let mut bytes = Vec::new();
    loop {
        if expected.is_some_and(|expected| bytes.len() >= expected) {
            break;
        }
        let is_dump = lines
            .peek()?
            .is_some_and(|next| dump_line(next.as_str()).is_some());
        if !is_dump {
            break;
        }
        let Some(line) = lines.next_line()? else {
            break;
        };
        let Some((offset, field)) = dump_line(line.as_str()) else {
            break;
        };
        if offset != bytes.len() {
            let text = line.as_str().trim_start();
            return Err(malformed(
                origin,
                &line,
                text.split(':').next().unwrap_or(text),
                "the offset of the next byte of the hex dump",
            ));
        }
        hex_into(origin, &line, field, &mut bytes)?;
    }
    match expected {
        Some(expected) if bytes.len() < expected && lines.peek()?.is_none() => {
            Err(ImportError::Truncated {
                origin: origin.to_owned(),
                line: at,
                expected: format!("{} more bytes of the {what}", expected - bytes.len()),
            })
        }
        Some(expected) if bytes.len() != expected => Err(ImportError::BadLength {
            origin: origin.to_owned(),
            line: at,
            announced: expected,
            found: bytes.len(),
        }),
        None if bytes.is_empty() => Err(ImportError::Truncated {
            origin: origin.to_owned(),
            line: at,
            expected: format!("the hex dump of the {what}"),
        }),
        _ => Ok(bytes),
    }
}

/// The fields of a `C_APDU(…)` line.
#[derive(Default)]
struct Fields {
    header: [Option<u8>; 4],
    lc: usize,
    le: Option<usize>,
}

/// Parses `C_APDU(CLA=0x00, INS=0xA4, P1=0x04, P2=0x00, Lc=0x07, Le=0x00)` and whether a
/// data dump follows (a final `:`).
fn c_apdu(origin: &str, line: &Line<'_>) -> Result<(Fields, bool), ImportError> {
    let text = line.as_str().trim_end();
    let expected = "`C_APDU(CLA=0x.., INS=0x.., P1=0x.., P2=0x..[, Lc=0x..][, Le=0x..])`";
    let body = text
        .strip_prefix("C_APDU(")
        .ok_or_else(|| malformed(origin, line, text, expected))?;
    let (list, tail) = body
        .rsplit_once(')')
        .ok_or_else(|| malformed(origin, line, body, expected))?;
    if !tail.is_empty() && tail != ":" {
        return Err(malformed(origin, line, tail, "`:` or the end of the line"));
    }
    let mut fields = Fields::default();
    for field in list.split(", ") {
        let (name, value) = field
            .split_once('=')
            .ok_or_else(|| malformed(origin, line, field, "`NAME=0xVALUE`"))?;
        let number =
            hex_number(value).ok_or_else(|| malformed(origin, line, value, "a `0x` hex number"))?;
        let byte = u8::try_from(number);
        let length = usize::try_from(number).ok().filter(|n| *n <= 0xFFFF);
        let slot = match name {
            "CLA" => 0,
            "INS" => 1,
            "P1" => 2,
            "P2" => 3,
            "Lc" | "Le" => {
                let length = length
                    .ok_or_else(|| malformed(origin, line, value, "a length up to 0xFFFF"))?;
                if name == "Lc" {
                    fields.lc = length;
                } else {
                    fields.le = Some(length);
                }
                continue;
            }
            _ => return Err(malformed(origin, line, name, "CLA, INS, P1, P2, Lc or Le")),
        };
        let byte = byte.map_err(|_| malformed(origin, line, value, "a byte value up to 0xFF"))?;
        if let Some(place) = fields.header.get_mut(slot) {
            *place = Some(byte);
        }
    }
    Ok((fields, tail == ":"))
}

/// The command bytes: header, then Lc and data, then Le (ISO 7816-4 §5.1); the extended
/// form (Lc `00 XX XX`, Le `XX XX` or `00 XX XX`) only when a value needs it.
fn encode(header: [u8; 4], data: &[u8], le: Option<usize>) -> Vec<u8> {
    let extended = data.len() > 0xFF || le.is_some_and(|le| le > 0xFF);
    let mut bytes = header.to_vec();
    let [_, _, lc_high, lc_low] = u32::try_from(data.len()).unwrap_or(0).to_be_bytes();
    if !data.is_empty() {
        if extended {
            bytes.extend_from_slice(&[0, lc_high, lc_low]);
        } else {
            bytes.push(lc_low);
        }
        bytes.extend_from_slice(data);
    }
    if let Some(le) = le {
        let [_, _, le_high, le_low] = u32::try_from(le).unwrap_or(0).to_be_bytes();
        if extended {
            if data.is_empty() {
                bytes.push(0);
            }
            bytes.extend_from_slice(&[le_high, le_low]);
        } else {
            bytes.push(le_low);
        }
    }
    bytes
}

/// Reads the `C_APDU(…)` line after a `Parsed APDU:` record on line `at`, and its data.
fn parsed_command(lines: &mut Lines<'_>, at: usize) -> Result<Vec<u8>, ImportError> {
    let origin = lines.origin();
    let Some(line) = lines.next_line()? else {
        return Err(ImportError::Truncated {
            origin: origin.to_owned(),
            line: at,
            expected: "the `C_APDU(…)` line of the parsed command".to_owned(),
        });
    };
    let (fields, has_data) = c_apdu(origin, &line)?;
    let [Some(cla), Some(ins), Some(p1), Some(p2)] = fields.header else {
        return Err(malformed(
            origin,
            &line,
            line.as_str(),
            "all of CLA, INS, P1 and P2 in `C_APDU(…)`",
        ));
    };
    let data = if has_data {
        read_dump(lines, line.number, Some(fields.lc), "command data")?
    } else if fields.lc > 0 {
        return Err(ImportError::BadLength {
            origin: origin.to_owned(),
            line: line.number,
            announced: fields.lc,
            found: 0,
        });
    } else {
        Vec::new()
    };
    Ok(encode([cla, ins, p1, p2], &data, fields.le))
}

/// Reads a Python traceback (after its first line): indented frames, then the exception.
fn traceback(lines: &mut Lines<'_>) -> Result<(), ImportError> {
    while lines
        .peek()?
        .is_some_and(|next| next.as_str().starts_with([' ', '\t']))
    {
        lines.next_line()?;
    }
    let exception = lines.peek()?.is_some_and(|next| {
        let text = next.as_str();
        !text.trim().is_empty() && record(text).is_none()
    });
    if exception {
        lines.next_line()?;
    }
    Ok(())
}

/// A command waiting for its response, with what vicc logged meanwhile.
struct Pending {
    line: usize,
    command: Vec<u8>,
    notes: Vec<String>,
}

/// Imports the lines; see the module documentation.
pub(super) fn parse(lines: &mut Lines<'_>, b: &mut Builder) -> Result<(), ImportError> {
    let origin = lines.origin();
    let mut pending: Option<Pending> = None;
    // A warning outside a command: vicc warns when it cannot parse a command and then
    // answers it without logging it.
    let mut warning: Option<Line<'_>> = None;
    while let Some(line) = lines.next_line()? {
        let text = line.as_str();
        let Some((level, message)) = record(text) else {
            if text == "Traceback (most recent call last):" {
                // vicc prints the card's SwError traceback after logging its message.
                traceback(lines)?;
            } else if !text.trim().is_empty() && !QUIET.iter().any(|quiet| text.starts_with(quiet))
            {
                b.skip(&line);
            }
            continue;
        };
        let earlier_warning = warning.take();
        let command = if message == "Parsed APDU:" {
            Some(parsed_command(lines, line.number)?)
        } else if message == "Unparsed APDU:" {
            Some(read_dump(lines, line.number, None, "command")?)
        } else if message == "Decrypted APDU:" {
            // The secure-messaging payload of the command already logged.
            parsed_command(lines, line.number)?;
            None
        } else if let Some(count) = message
            .strip_prefix("Response APDU (")
            .and_then(|rest| rest.strip_suffix(" Bytes):"))
        {
            let count = decimal(count)
                .ok_or_else(|| malformed(origin, &line, count, "the response length in bytes"))?;
            let response = read_dump(lines, line.number, Some(count), "response")?;
            if lines.peek()?.is_some_and(|next| next.as_str().is_empty()) {
                lines.next_line()?;
            }
            match (pending.take(), earlier_warning.as_ref()) {
                (Some(done), _) => {
                    let note = done.notes.join("; ");
                    b.exchange(line.number, done.command, response, None, Some(&note))?;
                }
                (None, Some(warned)) => {
                    let warned = record(warned.as_str()).map_or("", |(_, m)| m).to_owned();
                    b.comment(&format!(
                        "vicc could not parse a command ({warned}) and answered {}",
                        to_hex(&response)
                    ));
                    continue;
                }
                (None, None) => {
                    return Err(ImportError::ResponseWithoutCommand {
                        origin: origin.to_owned(),
                        line: line.number,
                    });
                }
            }
            None
        } else if matches!(message, "Power Up" | "Power Down" | "Reset") {
            b.comment(&format!("vicc: {message}"));
            None
        } else if QUIET.iter().any(|quiet| message.starts_with(quiet)) {
            None
        } else if let Some(waiting) = pending.as_mut() {
            // What the card logs while it handles the command (an SwError's text); the
            // note is cut at 1,000 characters anyway, so stop collecting well before.
            if waiting.notes.iter().map(String::len).sum::<usize>() < 4_096 {
                waiting.notes.push(message.to_owned());
            }
            None
        } else if level == "WARNING" {
            if let Some(earlier) = earlier_warning.as_ref() {
                b.skip(earlier);
            }
            warning = Some(line);
            continue;
        } else {
            b.skip(&line);
            None
        };
        if let Some(earlier) = earlier_warning.as_ref()
            && warning.is_none()
        {
            b.skip(earlier);
        }
        if let Some(command) = command
            && let Some(earlier) = pending.replace(Pending {
                line: line.number,
                command,
                notes: Vec::new(),
            })
        {
            b.unanswered(earlier.line, &earlier.command, "no response logged");
        }
    }
    if let Some(earlier) = warning.as_ref() {
        b.skip(earlier);
    }
    match pending {
        Some(pending) => Err(ImportError::CommandWithoutResponse {
            origin: origin.to_owned(),
            line: pending.line,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_encoded_per_iso_7816_4() {
        let header = [0x00, 0xA4, 0x04, 0x00];
        assert_eq!(encode(header, &[], None), vec![0x00, 0xA4, 0x04, 0x00]);
        assert_eq!(
            encode(header, &[], Some(0)),
            vec![0x00, 0xA4, 0x04, 0x00, 0x00]
        );
        assert_eq!(
            encode(header, &[0xA0, 0x01], Some(0)),
            vec![0x00, 0xA4, 0x04, 0x00, 0x02, 0xA0, 0x01, 0x00]
        );
        assert_eq!(
            encode(header, &[], Some(0x1000)),
            vec![0x00, 0xA4, 0x04, 0x00, 0x00, 0x10, 0x00]
        );
        let data = vec![0x5A; 0x100];
        let extended = encode(header, &data, Some(0));
        assert_eq!(
            extended.get(..7),
            Some(&[0x00, 0xA4, 0x04, 0x00, 0x00, 0x01, 0x00][..])
        );
        assert_eq!(extended.len(), 4 + 3 + 0x100 + 2);
        assert_eq!(extended.get(7 + 0x100..), Some(&[0x00, 0x00][..]));
    }

    #[test]
    fn records_and_dump_lines() {
        assert_eq!(
            record("25.11.2026 17:00:01  [INFO] Parsed APDU:"),
            Some(("INFO", "Parsed APDU:"))
        );
        assert_eq!(record("25.11.2026 17:00:01  [INFO]"), Some(("INFO", "")));
        assert_eq!(record("2026-11-25 17:00:01  [INFO] x"), None);
        assert_eq!(
            dump_line("  0010:  6A 82                                              j.")
                .map(|(offset, field)| (offset, field.trim_end())),
            Some((0x10, "6A 82"))
        );
        assert_eq!(dump_line("C_APDU(CLA=0x00)"), None);
    }
}
