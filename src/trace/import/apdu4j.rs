//! apdu4j `.dump` files. Two generations exist; both are read:
//!
//! ```text
//! # Generated on Wed, 25 Nov 2026 17:00:00 +0100 by apdu4j/19.05.08
//! # Using Gemalto PC Twin Reader 00 00
//! # ATR: 3BE800008031FE458073C6010052434285
//! # PROTOCOL: T=1
//! #
//! # Sent
//! 00A4040007A000000042101000
//! # Received in 12ms
//! 6F1A8407A0000000421010A50F500243428701019000
//! ```
//!
//! (`LoggingCardTerminal`, 2014–2020), and the newer `DumpingBIBO` / `DumpFormat`:
//! header comments `# ATR:`, `# PROTOCOL:`, `# UID:`, a lone `#`, then for each exchange
//! the command line, `# 12ms` and the response line; `# 12ms message` instead of the
//! response when the transmission failed. Other `#` lines are kept as trace comments.

use super::ImportError;
use super::common::{Builder, Line, Lines, decimal, hex, millis_text};
use crate::calendar::{self, civil_from_days, days_from_civil};

/// Whether `line` is one an apdu4j dump has.
pub(super) fn sniff(line: &str) -> bool {
    (line.starts_with("# Generated on ") && line.contains(" by apdu4j"))
        || line.starts_with("# ATR: ")
        || line.starts_with("# PROTOCOL: ")
        || line == "# Sent"
        || line.starts_with("# Received in ")
}

/// Whether `text` is only hex digits and blanks: a command or response line.
fn hex_line(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_hexdigit() || b == b' ' || b == b'\t')
}

/// Java's `EEE, d MMM yyyy HH:mm:ss Z` in English (`Wed, 25 Nov 2026 17:00:00 +0100`)
/// as RFC 3339 UTC (`2026-11-25T16:00:00Z`).
fn rfc3339_utc(text: &str) -> Option<String> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let mut fields = text.split_whitespace();
    let _weekday = fields.next()?.strip_suffix(',')?;
    let day = decimal(fields.next()?)?;
    let month_name = fields.next()?;
    let month = MONTHS.iter().position(|m| *m == month_name)?;
    // Four-digit years only: RFC 3339 has no others, and it bounds the arithmetic.
    let year = decimal(fields.next()?).filter(|year| *year <= 9999)?;
    let mut clock = fields.next()?.split(':');
    let (hour, minute, second) = (
        decimal(clock.next()?)?,
        decimal(clock.next()?)?,
        decimal(clock.next()?)?,
    );
    let zone = fields.next()?;
    if fields.next().is_some() || clock.next().is_some() {
        return None;
    }
    let (sign, zone) = match zone.split_at_checked(1)? {
        ("+", rest) => (1i64, rest),
        ("-", rest) => (-1i64, rest),
        _ => return None,
    };
    let (zone_h, zone_m) = zone.split_at_checked(2)?;
    let (zone_h, zone_m) = (decimal(zone_h)?, decimal(zone_m)?);
    if !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 || zone_m > 59 {
        return None;
    }
    let (year, month, day) = (
        i64::try_from(year).ok()?,
        i64::try_from(month).ok()? + 1,
        i64::try_from(day).ok()?,
    );
    let local = days_from_civil(year, month, day) * 86_400
        + i64::try_from(hour * 3600 + minute * 60 + second).ok()?;
    let offset = sign * i64::try_from(zone_h * 3600 + zone_m * 60).ok()?;
    let utc = local - offset;
    let (year, _, _) = civil_from_days(utc.div_euclid(86_400));
    if !(0..=9999).contains(&year) {
        return None;
    }
    Some(calendar::rfc3339_utc(utc))
}

/// A command read, waiting for its response.
struct Pending {
    line: usize,
    command: Vec<u8>,
    elapsed: Option<std::time::Duration>,
}

/// Handles a `#` line (`body` is the text after `#`, trimmed).
fn comment(
    origin: &str,
    line: &Line<'_>,
    body: &str,
    pending: &mut Option<Pending>,
    b: &mut Builder,
) -> Result<(), ImportError> {
    if body.is_empty() || body == "Sent" || body == "Received" {
        // Layout lines of the dump; `# Sent` precedes each command, `# Received` each
        // response of a raw transmission.
    } else if let Some(rest) = body.strip_prefix("Generated on ") {
        let (date, tool) = rest.rsplit_once(" by ").unwrap_or((rest, ""));
        if let Some(date) = rfc3339_utc(date) {
            b.set_date(date);
        }
        if !tool.is_empty() {
            b.set_extra("tool", tool);
        }
    } else if let Some(reader) = body.strip_prefix("Using ") {
        b.set_reader(reader);
    } else if let Some(atr) = body.strip_prefix("ATR: ") {
        b.atr(line.number, hex(origin, line, atr.trim())?)?;
    } else if let Some(protocol) = body.strip_prefix("PROTOCOL: ") {
        b.set_protocol(protocol);
    } else if let Some(uid) = body.strip_prefix("UID: ") {
        b.set_extra("uid", uid);
    } else if let Some(time) = body.strip_prefix("Received in ") {
        match pending.as_mut() {
            Some(pending) => pending.elapsed = millis_text(time.trim()),
            None => b.skip(line),
        }
    } else {
        // `# 12ms` (newer dumps) gives the time; `# 12ms message` says the transmission
        // failed. Anything else is a note kept as a comment.
        let (first, message) = body.split_once(' ').unwrap_or((body, ""));
        match (millis_text(first), pending.as_mut()) {
            (Some(elapsed), Some(waiting)) if message.is_empty() => waiting.elapsed = Some(elapsed),
            (Some(_), Some(_)) => {
                if let Some(failed) = pending.take() {
                    b.unanswered(
                        failed.line,
                        &failed.command,
                        &format!("transmission failed ({body})"),
                    );
                }
            }
            _ => b.comment(body),
        }
    }
    Ok(())
}

/// Imports the lines; see the module documentation.
pub(super) fn parse(lines: &mut Lines<'_>, b: &mut Builder) -> Result<(), ImportError> {
    let origin = lines.origin();
    let mut pending: Option<Pending> = None;
    while let Some(line) = lines.next_line()? {
        let text = line.as_str().trim();
        if text.is_empty() {
            continue;
        }
        if let Some(body) = text.strip_prefix('#') {
            comment(origin, &line, body.trim(), &mut pending, b)?;
        } else if hex_line(text) {
            let bytes = hex(origin, &line, text)?;
            match pending.take() {
                None => {
                    pending = Some(Pending {
                        line: line.number,
                        command: bytes,
                        elapsed: None,
                    });
                }
                Some(done) => b.exchange(line.number, done.command, bytes, done.elapsed, None)?,
            }
        } else {
            b.skip(&line);
        }
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
    fn java_dates_become_rfc3339_utc() {
        assert_eq!(
            rfc3339_utc("Wed, 25 Nov 2026 17:00:00 +0100").as_deref(),
            Some("2026-11-25T16:00:00Z")
        );
        assert_eq!(
            rfc3339_utc("Thu, 1 Jan 2026 00:30:00 +0200").as_deref(),
            Some("2025-12-31T22:30:00Z")
        );
        assert_eq!(
            rfc3339_utc("Sat, 29 Feb 2020 23:00:00 -0130").as_deref(),
            Some("2020-03-01T00:30:00Z")
        );
        assert_eq!(rfc3339_utc("Mi, 25 Nov. 2026 17:00:00 +0100"), None);
        assert_eq!(rfc3339_utc("Wed, 25 Nov 2026 17:00:00"), None);
        assert_eq!(
            rfc3339_utc("Wed, 25 Nov 9223372036854775807 17:00:00 +0100"),
            None
        );
        assert_eq!(rfc3339_utc("Wed, 25 Nov 2026 17:00:00 +99999"), None);
    }

    #[test]
    fn day_counts_round_trip() {
        for days in [-1_000_000, -1, 0, 1, 10_957, 20_000, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }
}
