//! GlobalPlatformPro's debug output, `gp -d`: apdu4j's `LoggingCardTerminal` logs every
//! PC/SC call it makes and each APDU split at its ISO 7816-4 fields:
//!
//! ```text
//! SCardConnect("Gemalto PC Twin Reader 00 00", T=*) -> T=1, 3BE800008031FE458073C6010052434285
//! SCardBeginTransaction("Gemalto PC Twin Reader 00 00")
//! A>> T=1 (4+0000) 00A40400 00
//! A<< (0018+2) (12ms) 6F108408A000000151000000A5049F6501FF 9000
//! SCardEndTransaction("Gemalto PC Twin Reader 00 00")
//! SCardDisconnect("Gemalto PC Twin Reader 00 00", true) tx:13/rx:22
//! ```
//!
//! `A>> PROTOCOL (4+Nc) HEADER [LC DATA [LE]]` (or `HEADER LE`); `A<< (Nr+2) (TIME) [DATA]
//! SW` where `TIME` is `12ms` or `1s234ms`. A failed transmission is `<< (TIME) message`
//! or `<< Exception (TIME)`. Raw `ByteBuffer` transmissions are `B>> PROTOCOL (N) HEX` and
//! `B<< (N) HEX`. GlobalPlatformPro's own debug messages (slf4j-simple:
//! `[main] DEBUG logger - text` or `[DEBUG] logger - text`) are consumed.

use std::time::Duration;

use super::ImportError;
use super::common::{Builder, Line, Lines, decimal, hex, hex_into, is_hex, malformed, millis_text};

/// Whether `line` is one `gp -d` writes about the card.
pub(super) fn sniff(line: &str) -> bool {
    line.starts_with("A>> ")
        || line.starts_with("A<< ")
        || line.starts_with("B>> ")
        || line.starts_with("SCardConnect(\"")
}

/// The slf4j-simple levels.
const LEVELS: [&str; 5] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"];

/// Whether `line` is an slf4j-simple log line: `[thread] LEVEL logger - text` or
/// `[LEVEL] logger - text`.
fn is_debug_message(line: &str) -> bool {
    let Some((bracketed, rest)) = line.strip_prefix('[').and_then(|l| l.split_once("] ")) else {
        return false;
    };
    LEVELS.contains(&bracketed)
        || rest
            .split_once(' ')
            .is_some_and(|(level, _)| LEVELS.contains(&level))
}

/// `(NNNN+2)` / `(4+NNNN)` / `(N)`: the number in parentheses after `prefix` inside.
fn count(inner: &str, prefix: &str, suffix: &str) -> Option<usize> {
    decimal(inner.strip_prefix(prefix)?.strip_suffix(suffix)?)
}

/// A parenthesised token at the start of `text`: (`inside`, rest after one space).
fn parenthesised(text: &str) -> Option<(&str, &str)> {
    let body = text.strip_prefix('(')?;
    let (inside, rest) = body.split_once(')')?;
    Some((inside, rest.strip_prefix(' ').unwrap_or(rest)))
}

/// A command line, `A>> T=1 (4+0007) 00A40400 07 A0000000421010 00`: the protocol and
/// the bytes.
fn command_a(origin: &str, line: &Line<'_>, rest: &str) -> Result<(String, Vec<u8>), ImportError> {
    let (protocol, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    let (inside, groups) = parenthesised(rest)
        .ok_or_else(|| malformed(origin, line, rest, "`(4+Nc)` after the protocol"))?;
    let announced = count(inside, "4+", "")
        .ok_or_else(|| malformed(origin, line, inside, "`4+Nc`, the data length"))?;
    let bytes = hex(origin, line, groups)?;
    let fields: Vec<&str> = groups.split_whitespace().collect();
    match fields.first() {
        Some(header) if header.len() == 8 && is_hex(header) => {}
        _ => {
            return Err(malformed(
                origin,
                line,
                groups,
                "the 4-byte header CLA INS P1 P2",
            ));
        }
    }
    // The data field is the third group when present: `HEADER LC DATA [LE]`.
    let found = fields.get(2).map_or(0, |data| data.len() / 2);
    if found != announced {
        return Err(ImportError::BadLength {
            origin: origin.to_owned(),
            line: line.number,
            announced,
            found,
        });
    }
    Ok((protocol.to_owned(), bytes))
}

/// A response line, `A<< (0018+2) (12ms) DATA 9000`: the bytes and the time.
fn response_a(
    origin: &str,
    line: &Line<'_>,
    rest: &str,
) -> Result<(Vec<u8>, Option<Duration>), ImportError> {
    let (inside, rest) = parenthesised(rest)
        .ok_or_else(|| malformed(origin, line, rest, "`(Nr+2)`, the response length"))?;
    let announced = count(inside, "", "+2")
        .ok_or_else(|| malformed(origin, line, inside, "`Nr+2`, the response length"))?;
    let (time, groups) = parenthesised(rest)
        .ok_or_else(|| malformed(origin, line, rest, "`(TIME)` after the length"))?;
    let bytes = hex(origin, line, groups)?;
    let announced = announced.saturating_add(2);
    if bytes.len() != announced {
        return Err(ImportError::BadLength {
            origin: origin.to_owned(),
            line: line.number,
            announced,
            found: bytes.len(),
        });
    }
    Ok((bytes, millis_text(time)))
}

/// A raw line, `B>> T=1 (5) 00A4040000` / `B<< (2) 9000`: the bytes.
fn raw(origin: &str, line: &Line<'_>, rest: &str) -> Result<Vec<u8>, ImportError> {
    let (inside, groups) =
        parenthesised(rest).ok_or_else(|| malformed(origin, line, rest, "`(N)`, the length"))?;
    let announced =
        count(inside, "", "").ok_or_else(|| malformed(origin, line, inside, "`N`, the length"))?;
    let mut bytes = Vec::new();
    hex_into(origin, line, groups, &mut bytes)?;
    if bytes.len() != announced {
        return Err(ImportError::BadLength {
            origin: origin.to_owned(),
            line: line.number,
            announced,
            found: bytes.len(),
        });
    }
    Ok(bytes)
}

/// `SCardConnect("NAME", T=*) -> T=1, 3B…` (or `-> error message`).
fn connect(origin: &str, line: &Line<'_>, rest: &str, b: &mut Builder) -> Result<(), ImportError> {
    let (call, outcome) = rest.rsplit_once(") -> ").unwrap_or((rest, ""));
    if let Some((name, _)) = call.rsplit_once("\", ") {
        b.set_reader(name);
    }
    let (protocol, atr) = outcome.split_once(", ").unwrap_or((outcome, ""));
    if protocol.starts_with("T=") && !protocol.contains(' ') {
        b.set_protocol(protocol);
        if !atr.is_empty() {
            b.atr(line.number, hex(origin, line, atr)?)?;
        }
    } else {
        b.comment(&format!("SCardConnect failed: {outcome}"));
    }
    Ok(())
}

/// Imports the lines; see the module documentation.
pub(super) fn parse(lines: &mut Lines<'_>, b: &mut Builder) -> Result<(), ImportError> {
    let origin = lines.origin();
    let mut pending: Option<(usize, Vec<u8>)> = None;
    while let Some(line) = lines.next_line()? {
        let text = line.as_str().trim_end();
        let received = if let Some(rest) = text.strip_prefix("A>> ") {
            let (protocol, command) = command_a(origin, &line, rest)?;
            b.set_protocol(&protocol);
            if let Some((at, earlier)) = pending.replace((line.number, command)) {
                b.unanswered(at, &earlier, "no response logged");
            }
            None
        } else if let Some(rest) = text.strip_prefix("B>> ") {
            let (protocol, rest) = rest.split_once(' ').unwrap_or((rest, ""));
            b.set_protocol(protocol);
            let command = raw(origin, &line, rest)?;
            if let Some((at, earlier)) = pending.replace((line.number, command)) {
                b.unanswered(at, &earlier, "no response logged");
            }
            None
        } else if let Some(rest) = text.strip_prefix("A<< ") {
            Some(response_a(origin, &line, rest)?)
        } else if let Some(rest) = text.strip_prefix("B<< ") {
            Some((raw(origin, &line, rest)?, None))
        } else if let Some(rest) = text.strip_prefix("<< ") {
            // A transmission that failed: `<< (12ms) message` or `<< Exception (12ms)`.
            match pending.take() {
                Some((at, command)) => {
                    b.unanswered(at, &command, &format!("transmission failed ({rest})"))
                }
                None => b.skip(&line),
            }
            None
        } else if let Some(rest) = text.strip_prefix("SCardConnect(\"") {
            connect(origin, &line, rest, b)?;
            None
        } else if text.is_empty()
            || text.starts_with("SCardBeginTransaction(\"")
            || text.starts_with("SCardEndTransaction(\"")
            || text.starts_with("SCardDisconnect(\"")
            || text.starts_with("SCardControl(\"")
            || is_debug_message(text)
        {
            None
        } else {
            b.skip(&line);
            None
        };
        if let Some((response, elapsed)) = received {
            let Some((_, command)) = pending.take() else {
                return Err(ImportError::ResponseWithoutCommand {
                    origin: origin.to_owned(),
                    line: line.number,
                });
            };
            b.exchange(line.number, command, response, elapsed, None)?;
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
