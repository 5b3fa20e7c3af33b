//! When the bank-card acquirer cuts its remittance batch off: "at the deadline the
//! banking systems set" (claim 11). Pure arithmetic on [`Timestamp`]s: no clock is read,
//! the caller passes `now`.
//!
//! Two schedules:
//!
//! - [`CutoffSchedule::Daily`]: once a day at a wall-clock time in a fixed UTC offset,
//!   the usual telecollection deadline (e.g. 22:00 in Paris winter time, `+01:00`);
//! - [`CutoffSchedule::EveryMinutes`]: every `n` minutes, aligned on multiples of `n`
//!   minutes since 1970-01-01 UTC (for tests and demonstrations).
//!
//! The offset is fixed: a zone with daylight saving time needs its configuration
//! changed at each change of offset (a zone database is not worth a dependency here).
//!
//! In configuration (TOML through serde) a schedule reads
//! `cutoff = { daily = { at = "22:00", utc-offset-minutes = 60 } }` or
//! `cutoff = { every-minutes = 15 }`; on a command line, `daily:22:00+01:00` or
//! `every:15` ([`CutoffSchedule`]'s `FromStr` and `Display`).

use std::num::NonZeroU32;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::messages::Timestamp;

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 86_400_000;

/// The largest UTC offset accepted, in minutes: ±18:00, as RFC 3339 offsets in practice.
pub const MAX_UTC_OFFSET_MINUTES: i16 = 18 * 60;

/// A wall-clock time of day, `HH:MM`, 00:00 to 23:59.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimeOfDay {
    minutes: u16,
}

impl TimeOfDay {
    /// `hour:minute`, or `None` outside 00:00–23:59.
    pub fn new(hour: u8, minute: u8) -> Option<TimeOfDay> {
        (hour < 24 && minute < 60).then(|| TimeOfDay {
            minutes: u16::from(hour) * 60 + u16::from(minute),
        })
    }

    /// Minutes after midnight.
    pub fn minutes_after_midnight(self) -> u16 {
        self.minutes
    }
}

impl std::fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:02}:{:02}", self.minutes / 60, self.minutes % 60)
    }
}

/// A schedule, a time of day or an offset that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScheduleError {
    /// Not `HH:MM` within 00:00–23:59.
    #[error("time of day {found:?}: expected HH:MM between 00:00 and 23:59")]
    TimeOfDay {
        /// The text found.
        found: String,
    },
    /// Not `+HH:MM` / `-HH:MM` within ±18:00, or minutes beyond that.
    #[error("UTC offset {found:?}: expected +HH:MM or -HH:MM within ±18:00")]
    Offset {
        /// The text found.
        found: String,
    },
    /// `every:N` with N not a whole number of minutes from 1.
    #[error("interval {found:?}: expected a whole number of minutes from 1")]
    Interval {
        /// The text found.
        found: String,
    },
    /// Neither `daily:…` nor `every:…`.
    #[error("cut-off schedule {found:?}: expected daily:HH:MM[+HH:MM] or every:MINUTES")]
    Schedule {
        /// The text found.
        found: String,
    },
}

impl FromStr for TimeOfDay {
    type Err = ScheduleError;

    fn from_str(text: &str) -> Result<TimeOfDay, ScheduleError> {
        let invalid = || ScheduleError::TimeOfDay {
            found: text.chars().take(32).collect(),
        };
        let (hour, minute) = text.split_once(':').ok_or_else(invalid)?;
        let two_digits = |part: &str| -> Option<u8> {
            (part.len() == 2 && part.bytes().all(|b| b.is_ascii_digit()))
                .then(|| part.parse().ok())
                .flatten()
        };
        TimeOfDay::new(
            two_digits(hour).ok_or_else(invalid)?,
            two_digits(minute).ok_or_else(invalid)?,
        )
        .ok_or_else(invalid)
    }
}

impl Serialize for TimeOfDay {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TimeOfDay {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<TimeOfDay, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// When batches are cut off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum CutoffSchedule {
    /// Once a day at `at`, wall-clock time at `utc_offset_minutes` east of UTC.
    #[serde(rename_all = "kebab-case")]
    Daily {
        /// The local time of the cut-off.
        at: TimeOfDay,
        /// The zone's offset from UTC in minutes (60 for UTC+01:00, -300 for UTC-05:00),
        /// within ±[`MAX_UTC_OFFSET_MINUTES`].
        #[serde(default, deserialize_with = "deserialize_offset")]
        utc_offset_minutes: i16,
    },
    /// Every so many minutes, at multiples of that interval since 1970-01-01 UTC.
    EveryMinutes(NonZeroU32),
}

fn deserialize_offset<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<i16, D::Error> {
    let minutes = i16::deserialize(deserializer)?;
    if minutes.abs() > MAX_UTC_OFFSET_MINUTES {
        return Err(serde::de::Error::custom(format!(
            "utc-offset-minutes {minutes} is beyond ±{MAX_UTC_OFFSET_MINUTES}"
        )));
    }
    Ok(minutes)
}

impl CutoffSchedule {
    /// The first cut-off strictly after `now`. Saturates at the ends of time.
    pub fn next_cutoff_after(&self, now: Timestamp) -> Timestamp {
        match *self {
            CutoffSchedule::Daily {
                at,
                utc_offset_minutes,
            } => {
                let offset = i64::from(utc_offset_minutes) * MINUTE_MS;
                let at = i64::from(at.minutes) * MINUTE_MS;
                // The local day `now` falls in, then that day's cut-off back in UTC. A
                // local time past the end of time has no cut-off after it: saturate.
                let Some(local) = now.0.checked_add(offset) else {
                    return Timestamp(i64::MAX);
                };
                let local_day = local.div_euclid(DAY_MS);
                let candidate = local_day
                    .saturating_mul(DAY_MS)
                    .saturating_add(at)
                    .saturating_sub(offset);
                if candidate > now.0 {
                    Timestamp(candidate)
                } else {
                    Timestamp(candidate.saturating_add(DAY_MS))
                }
            }
            CutoffSchedule::EveryMinutes(minutes) => {
                let interval = i64::from(minutes.get()) * MINUTE_MS;
                let slot = now.0.div_euclid(interval);
                Timestamp(slot.saturating_add(1).saturating_mul(interval))
            }
        }
    }

    /// Whether a cut-off falls after `last_cutoff` and at or before `now`: the batch is
    /// due. `last_cutoff` is the previous cut-off, or, when there has been none, the
    /// time of the oldest transaction waiting to be remitted. A cut-off missed while
    /// the acquirer was down is due at once when it comes back; several missed make
    /// one batch.
    pub fn is_due(&self, last_cutoff: Timestamp, now: Timestamp) -> bool {
        self.next_cutoff_after(last_cutoff) <= now
    }
}

impl std::fmt::Display for CutoffSchedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            CutoffSchedule::Daily {
                at,
                utc_offset_minutes,
            } => {
                write!(f, "daily:{at}")?;
                if utc_offset_minutes != 0 {
                    let sign = if utc_offset_minutes < 0 { '-' } else { '+' };
                    let magnitude = utc_offset_minutes.unsigned_abs();
                    write!(f, "{sign}{:02}:{:02}", magnitude / 60, magnitude % 60)?;
                }
                Ok(())
            }
            CutoffSchedule::EveryMinutes(minutes) => write!(f, "every:{minutes}"),
        }
    }
}

impl FromStr for CutoffSchedule {
    type Err = ScheduleError;

    /// `daily:HH:MM` (UTC), `daily:HH:MM+HH:MM` / `daily:HH:MM-HH:MM`, or
    /// `every:MINUTES`.
    fn from_str(text: &str) -> Result<CutoffSchedule, ScheduleError> {
        if let Some(rest) = text.strip_prefix("daily:") {
            let split = rest.find(['+', '-']);
            let (time, offset) = match split {
                Some(index) => (rest.get(..index).unwrap_or(""), rest.get(index..)),
                None => (rest, None),
            };
            let at: TimeOfDay = time.parse()?;
            let utc_offset_minutes = match offset {
                None => 0,
                Some(offset) => parse_offset(offset)?,
            };
            Ok(CutoffSchedule::Daily {
                at,
                utc_offset_minutes,
            })
        } else if let Some(rest) = text.strip_prefix("every:") {
            let minutes = (rest.bytes().all(|b| b.is_ascii_digit()) && !rest.starts_with('0'))
                .then(|| rest.parse::<NonZeroU32>().ok())
                .flatten()
                .ok_or_else(|| ScheduleError::Interval {
                    found: rest.chars().take(32).collect(),
                })?;
            Ok(CutoffSchedule::EveryMinutes(minutes))
        } else {
            Err(ScheduleError::Schedule {
                found: text.chars().take(32).collect(),
            })
        }
    }
}

/// `+HH:MM` or `-HH:MM` within ±18:00.
fn parse_offset(text: &str) -> Result<i16, ScheduleError> {
    let invalid = || ScheduleError::Offset {
        found: text.chars().take(32).collect(),
    };
    let (sign, rest) = match text.as_bytes().first() {
        Some(b'+') => (1, text.get(1..).unwrap_or("")),
        Some(b'-') => (-1, text.get(1..).unwrap_or("")),
        _ => return Err(invalid()),
    };
    let (hours, minutes) = rest.split_once(':').ok_or_else(invalid)?;
    let two_digits = |part: &str| -> Option<i16> {
        (part.len() == 2 && part.bytes().all(|b| b.is_ascii_digit()))
            .then(|| part.parse().ok())
            .flatten()
    };
    let (hours, minutes) = (
        two_digits(hours).ok_or_else(invalid)?,
        two_digits(minutes).ok_or_else(invalid)?,
    );
    let total = hours * 60 + minutes;
    if minutes >= 60 || total > MAX_UTC_OFFSET_MINUTES {
        return Err(invalid());
    }
    Ok(sign * total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acquirer::batch::parse_rfc3339_utc;

    fn at(text: &str) -> Timestamp {
        parse_rfc3339_utc(text).unwrap()
    }

    fn daily(time: &str, utc_offset_minutes: i16) -> CutoffSchedule {
        CutoffSchedule::Daily {
            at: time.parse().unwrap(),
            utc_offset_minutes,
        }
    }

    #[test]
    fn next_daily_cutoff_around_midnight_and_offsets() {
        // (schedule, now, next cut-off), all times UTC.
        let cases = [
            // 22:00 UTC: before, at (strictly after, so the next day), after.
            (
                daily("22:00", 0),
                "2026-11-25T21:59:59.999Z",
                "2026-11-25T22:00:00Z",
            ),
            (
                daily("22:00", 0),
                "2026-11-25T22:00:00Z",
                "2026-11-26T22:00:00Z",
            ),
            (
                daily("22:00", 0),
                "2026-11-25T23:30:00Z",
                "2026-11-26T22:00:00Z",
            ),
            // 22:00 at UTC+01:00 is 21:00 UTC.
            (
                daily("22:00", 60),
                "2026-11-25T20:59:00Z",
                "2026-11-25T21:00:00Z",
            ),
            (
                daily("22:00", 60),
                "2026-11-25T21:00:00Z",
                "2026-11-26T21:00:00Z",
            ),
            // 00:30 at UTC+02:00 is 22:30 UTC the day before: the local day has
            // already turned at 22:00 UTC.
            (
                daily("00:30", 120),
                "2026-11-25T22:10:00Z",
                "2026-11-25T22:30:00Z",
            ),
            (
                daily("00:30", 120),
                "2026-11-25T22:40:00Z",
                "2026-11-26T22:30:00Z",
            ),
            (
                daily("00:30", 120),
                "2026-11-25T21:59:00Z",
                "2026-11-25T22:30:00Z",
            ),
            // 23:00 at UTC-05:00 is 04:00 UTC the next day.
            (
                daily("23:00", -300),
                "2026-11-25T03:59:00Z",
                "2026-11-25T04:00:00Z",
            ),
            (
                daily("23:00", -300),
                "2026-11-25T04:00:00Z",
                "2026-11-26T04:00:00Z",
            ),
            (
                daily("23:00", -300),
                "2026-11-25T23:00:00Z",
                "2026-11-26T04:00:00Z",
            ),
            // Midnight itself, across a month and a year end, and a leap day.
            (
                daily("00:00", 0),
                "2026-11-30T23:59:59Z",
                "2026-12-01T00:00:00Z",
            ),
            (
                daily("00:00", 0),
                "2026-12-31T00:00:00Z",
                "2027-01-01T00:00:00Z",
            ),
            (
                daily("23:59", 0),
                "2028-02-28T23:59:00Z",
                "2028-02-29T23:59:00Z",
            ),
            // Extreme offsets.
            (
                daily("00:00", 18 * 60),
                "2026-11-25T05:59:00Z",
                "2026-11-25T06:00:00Z",
            ),
            (
                daily("00:00", -18 * 60),
                "2026-11-25T18:00:00Z",
                "2026-11-26T18:00:00Z",
            ),
            // Before 1970.
            (
                daily("12:00", 0),
                "1969-12-31T13:00:00Z",
                "1970-01-01T12:00:00Z",
            ),
        ];
        for (schedule, now, next) in cases {
            assert_eq!(
                schedule.next_cutoff_after(at(now)).to_string(),
                next,
                "{schedule} after {now}"
            );
        }
    }

    #[test]
    fn next_cutoff_every_n_minutes() {
        let every = |n: u32| CutoffSchedule::EveryMinutes(NonZeroU32::new(n).unwrap());
        let cases = [
            (every(15), "2026-11-25T21:59:59Z", "2026-11-25T22:00:00Z"),
            (every(15), "2026-11-25T22:00:00Z", "2026-11-25T22:15:00Z"),
            (every(15), "2026-11-25T23:50:00Z", "2026-11-26T00:00:00Z"),
            (every(1), "2026-11-25T22:00:00.001Z", "2026-11-25T22:01:00Z"),
            (every(1440), "2026-11-25T22:00:00Z", "2026-11-26T00:00:00Z"),
            (every(7), "1970-01-01T00:00:00Z", "1970-01-01T00:07:00Z"),
        ];
        for (schedule, now, next) in cases {
            assert_eq!(
                schedule.next_cutoff_after(at(now)).to_string(),
                next,
                "{schedule} after {now}"
            );
        }
    }

    #[test]
    fn a_batch_is_due_once_a_cutoff_has_passed_since_the_last() {
        let schedule = daily("22:00", 60); // 21:00 UTC
        let cases = [
            // (last cut-off or oldest pending, now, due)
            ("2026-11-25T10:00:00Z", "2026-11-25T20:59:59Z", false),
            ("2026-11-25T10:00:00Z", "2026-11-25T21:00:00Z", true),
            ("2026-11-25T21:00:00Z", "2026-11-25T23:00:00Z", false),
            ("2026-11-25T21:00:00Z", "2026-11-26T21:00:00Z", true),
            // Down for three days: due at once, one batch.
            ("2026-11-22T21:00:00Z", "2026-11-25T09:00:00Z", true),
            // A clock that went backwards is never due.
            ("2026-11-26T21:00:00Z", "2026-11-25T21:00:00Z", false),
        ];
        for (last, now, due) in cases {
            assert_eq!(schedule.is_due(at(last), at(now)), due, "{last} → {now}");
        }
    }

    #[test]
    fn no_panic_at_the_ends_of_time() {
        for schedule in [
            daily("23:59", MAX_UTC_OFFSET_MINUTES),
            // Found by the cutoff_schedule fuzz target: east of UTC, a local time past
            // the end of time once gave a cut-off before `now`.
            daily("00:00", MAX_UTC_OFFSET_MINUTES),
            daily("00:00", -MAX_UTC_OFFSET_MINUTES),
            CutoffSchedule::EveryMinutes(NonZeroU32::MAX),
        ] {
            for now in [i64::MIN, i64::MIN + 1, -1, 0, i64::MAX - 1, i64::MAX] {
                let next = schedule.next_cutoff_after(Timestamp(now));
                // Strictly after, or saturated at the last instant there is.
                assert!(next.0 > now || next.0 == i64::MAX, "{schedule} {now}");
                let _ = schedule.is_due(Timestamp(now), Timestamp(now));
            }
        }
    }

    #[test]
    fn schedules_parse_and_print() {
        let good = [
            ("daily:22:00", daily("22:00", 0)),
            ("daily:22:00+01:00", daily("22:00", 60)),
            ("daily:00:30-05:30", daily("00:30", -330)),
            ("daily:23:59+18:00", daily("23:59", 1080)),
            (
                "every:15",
                CutoffSchedule::EveryMinutes(NonZeroU32::new(15).unwrap()),
            ),
        ];
        for (text, schedule) in good {
            assert_eq!(text.parse::<CutoffSchedule>(), Ok(schedule), "{text}");
            assert_eq!(schedule.to_string(), text);
        }
        let bad = [
            (
                "daily:24:00",
                "time of day \"24:00\": expected HH:MM between 00:00 and 23:59",
            ),
            (
                "daily:9:00",
                "time of day \"9:00\": expected HH:MM between 00:00 and 23:59",
            ),
            (
                "daily:22:60",
                "time of day \"22:60\": expected HH:MM between 00:00 and 23:59",
            ),
            (
                "daily:22:00+18:01",
                "UTC offset \"+18:01\": expected +HH:MM or -HH:MM within ±18:00",
            ),
            (
                "daily:22:00+0100",
                "UTC offset \"+0100\": expected +HH:MM or -HH:MM within ±18:00",
            ),
            (
                "daily:22:00+01:60",
                "UTC offset \"+01:60\": expected +HH:MM or -HH:MM within ±18:00",
            ),
            (
                "every:0",
                "interval \"0\": expected a whole number of minutes from 1",
            ),
            (
                "every:015",
                "interval \"015\": expected a whole number of minutes from 1",
            ),
            (
                "every:-5",
                "interval \"-5\": expected a whole number of minutes from 1",
            ),
            (
                "hourly",
                "cut-off schedule \"hourly\": expected daily:HH:MM[+HH:MM] or every:MINUTES",
            ),
        ];
        for (text, error) in bad {
            assert_eq!(
                text.parse::<CutoffSchedule>().unwrap_err().to_string(),
                error,
                "{text}"
            );
        }
    }

    #[test]
    fn schedules_read_from_configuration() {
        // The shape serde gives any configuration format; JSON here.
        let read = |text: &str| serde_json::from_str::<CutoffSchedule>(text);
        assert_eq!(
            read(r#"{"daily": {"at": "22:00", "utc-offset-minutes": 60}}"#).unwrap(),
            daily("22:00", 60)
        );
        assert_eq!(
            read(r#"{"daily": {"at": "06:15"}}"#).unwrap(),
            daily("06:15", 0)
        );
        assert_eq!(
            read(r#"{"every-minutes": 5}"#).unwrap(),
            CutoffSchedule::EveryMinutes(NonZeroU32::new(5).unwrap())
        );
        let bad = [
            (
                r#"{"daily": {"at": "25:00"}}"#,
                "time of day \"25:00\": expected HH:MM between 00:00 and 23:59",
            ),
            (
                r#"{"daily": {"at": "22:00", "utc-offset-minutes": 1200}}"#,
                "utc-offset-minutes 1200 is beyond ±1080",
            ),
            (r#"{"every-minutes": 0}"#, "expected a nonzero u32"),
            (r#"{"weekly": 1}"#, "unknown variant `weekly`"),
        ];
        for (text, error) in bad {
            let message = read(text).unwrap_err().to_string();
            assert!(message.contains(error), "{text}: {message}");
        }
    }
}
