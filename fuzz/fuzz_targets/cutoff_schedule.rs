//! Fuzz target `cutoff_schedule`: the two one-line texts of the purchase flow's
//! configuration and command line, on the same UTF-8 input (other inputs are skipped):
//! the bank-card acquirer's cut-off schedule
//! (`telepay::acquirer::schedule::CutoffSchedule`'s `FromStr`: `daily:HH:MM`,
//! `daily:HH:MM±HH:MM`, `every:MINUTES`) and the catalogue's prices
//! (`telepay::provider::parse_price`, in a currency the input's first byte picks).
//!
//! Schedule, checked on every input:
//!
//! - parsing never panics and gives exactly what an independent reading of the grammar
//!   gives (written here byte by byte): the same schedule, or the same error variant
//!   with the same quoted text (at most 32 characters); errors `Display`;
//! - on success, `Display` parses back to the same schedule and is a fixed point; the
//!   configuration form (serde through a TOML document, `cutoff = { daily = { … } }`)
//!   writes and reads back the same schedule;
//! - `next_cutoff_after(t)` never panics for `i64::MIN`, `i64::MIN + 1`, -1, 0, 1, a
//!   date of 2026, `i64::MAX - 1`, `i64::MAX` and times taken from the input, and is
//!   strictly after `t` as documented, or `i64::MAX` where it saturates (this target
//!   found daily schedules east of UTC answering a time before `t` within their offset
//!   of `i64::MAX`; fixed, kept as `regression-daily-east-of-utc-at-end-of-time`);
//! - for times within ±2⁶¹ ms (no saturation), it is exactly the first cut-off after
//!   `t`: a cut-off instant (local time of day `at` at the offset; a multiple of the
//!   interval since the epoch) less than one period (a day; the interval) after `t`;
//!   the one after it is one period later; and `is_due(t, next)` holds while
//!   `is_due(t, next - 1 ms)` does not.
//!
//! Price, with the currency `[EUR, USD, GBP, JPY, BHD-like three-decimal][first byte % 5]`
//! (the last is not one telepay names; it reaches the exponent 3 that ISO 4217 has):
//!
//! - `parse_price` gives exactly what an independent reading gives: `Empty`, `Negative`,
//!   `UnexpectedChar` with the 1-based character position of the first character that
//!   is neither a digit nor the first `.`, `MissingDigits`, `TooManyDecimals`,
//!   `TooLarge` (more than 999 999 999 999 minor units), or the amount in minor units;
//!   errors `Display`;
//! - on success, `format_price` of it parses back to the same `Money`, and is a fixed
//!   point with exactly the currency's number of decimals;
//! - `format_price` of an amount made from the input's first 8 bytes (below the bound)
//!   parses back equal, and of `u64::MAX` minor units fails with `TooLarge`.
#![no_main]

use std::num::NonZeroU32;

use libfuzzer_sys::fuzz_target;
use telepay::acquirer::schedule::{
    CutoffSchedule, MAX_UTC_OFFSET_MINUTES, ScheduleError, TimeOfDay,
};
use telepay::messages::{Currency, Money, Timestamp};
use telepay::provider::catalogue::MAX_PRICE_MINOR;
use telepay::provider::{PriceError, format_price, parse_price};
use toml::{Table, Value};

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 86_400_000;

/// Times every schedule is asked about: both ends, around the epoch, and 2026-11-26.
const FIXED_TIMES: [i64; 9] = [
    i64::MIN,
    i64::MIN + 1,
    -1,
    0,
    1,
    1_795_651_200_000,
    i64::MAX - 1,
    i64::MAX,
    -DAY_MS - 1,
];

/// Times within this distance of the epoch cannot saturate: the exact checks apply.
const EXACT_LIMIT: i64 = 1 << 61;

/// The currencies a price is read in, by the input's first byte.
const CURRENCIES: [Currency; 5] = [
    Currency::EUR,
    Currency::USD,
    Currency::GBP,
    Currency::JPY,
    // Bahraini dinar: three decimals (ISO 4217); telepay has no name for it.
    Currency {
        numeric: 48,
        exponent: 3,
    },
];

fuzz_target!(|input: &[u8]| {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    check_schedule(text, input);
    check_price(text, input);
});

// ---------------------------------------------------------------------------------------
// Cut-off schedule

fn check_schedule(text: &str, input: &[u8]) {
    let parsed = text.parse::<CutoffSchedule>();
    assert_eq!(parsed, schedule_model(text), "{text:?}");
    let schedule = match parsed {
        Ok(schedule) => schedule,
        Err(error) => {
            let _ = error.to_string();
            return;
        }
    };

    let printed = schedule.to_string();
    assert_eq!(
        printed.parse::<CutoffSchedule>(),
        Ok(schedule),
        "{text:?} printed as {printed:?}"
    );
    assert_eq!(
        printed
            .parse::<CutoffSchedule>()
            .map(|again| again.to_string()),
        Ok(printed.clone()),
        "{printed:?} is not a fixed point"
    );
    check_config_form(schedule);

    let hash = fnv1a(input);
    let from_input = [
        hash as i64,
        (hash >> 3) as i64,
        // Within ±2^61 and around 1970-2100, where real cut-offs fall.
        (hash % (EXACT_LIMIT as u64)) as i64 - EXACT_LIMIT / 2,
        (hash % (130 * 365 * DAY_MS as u64)) as i64,
    ];
    for now in FIXED_TIMES.into_iter().chain(from_input) {
        check_next(schedule, now);
    }
}

/// What the grammar says `text` is, read byte by byte.
fn schedule_model(text: &str) -> Result<CutoffSchedule, ScheduleError> {
    let quote = |part: &str| part.chars().take(32).collect::<String>();
    if let Some(rest) = text.strip_prefix("daily:") {
        // The offset starts at the first sign; everything before is the time of day.
        let sign = rest.bytes().position(|byte| byte == b'+' || byte == b'-');
        let (time, offset) = match sign {
            Some(at) => (&rest[..at], Some(&rest[at..])),
            None => (rest, None),
        };
        let Some((hour, minute)) = two_digit_pair(time).filter(|&(h, m)| h < 24 && m < 60) else {
            return Err(ScheduleError::TimeOfDay { found: quote(time) });
        };
        let utc_offset_minutes = match offset {
            None => 0,
            Some(offset) => {
                let sign: i16 = if offset.starts_with('-') { -1 } else { 1 };
                let magnitude = two_digit_pair(&offset[1..])
                    .filter(|&(_, m)| m < 60)
                    .map(|(h, m)| i16::from(h) * 60 + i16::from(m))
                    .filter(|&total| total <= MAX_UTC_OFFSET_MINUTES);
                let Some(magnitude) = magnitude else {
                    return Err(ScheduleError::Offset {
                        found: quote(offset),
                    });
                };
                sign * magnitude
            }
        };
        let Some(at) = TimeOfDay::new(hour, minute) else {
            panic!("TimeOfDay::new({hour}, {minute}) refused a time in 00:00-23:59");
        };
        Ok(CutoffSchedule::Daily {
            at,
            utc_offset_minutes,
        })
    } else if let Some(rest) = text.strip_prefix("every:") {
        // Decimal digits, no leading zero, 1 to u32::MAX.
        let minutes = (!rest.is_empty()
            && !rest.starts_with('0')
            && rest.bytes().all(|byte| byte.is_ascii_digit()))
        .then(|| {
            rest.bytes().try_fold(0u32, |value, digit| {
                value.checked_mul(10)?.checked_add(u32::from(digit - b'0'))
            })
        })
        .flatten()
        .and_then(NonZeroU32::new);
        match minutes {
            Some(minutes) => Ok(CutoffSchedule::EveryMinutes(minutes)),
            None => Err(ScheduleError::Interval { found: quote(rest) }),
        }
    } else {
        Err(ScheduleError::Schedule { found: quote(text) })
    }
}

/// `DD:DD` exactly (five bytes), as two numbers.
fn two_digit_pair(text: &str) -> Option<(u8, u8)> {
    match text.as_bytes() {
        &[h1, h2, b':', m1, m2] if [h1, h2, m1, m2].iter().all(u8::is_ascii_digit) => Some((
            (h1 - b'0') * 10 + (h2 - b'0'),
            (m1 - b'0') * 10 + (m2 - b'0'),
        )),
        _ => None,
    }
}

/// The configuration form: `cutoff = …` in a TOML document, written and read back.
fn check_config_form(schedule: CutoffSchedule) {
    let value = match Value::try_from(schedule) {
        Ok(value) => value,
        Err(error) => panic!("{schedule} does not serialise: {error}"),
    };
    let mut document = Table::new();
    document.insert("cutoff".to_owned(), value);
    let written = match toml::to_string(&document) {
        Ok(written) => written,
        Err(error) => panic!("{schedule} does not write as TOML: {error}"),
    };
    let read = toml::from_str::<Table>(&written)
        .map_err(|error| error.to_string())
        .and_then(|mut table| table.remove("cutoff").ok_or_else(|| "no cutoff".to_owned()))
        .and_then(|value| {
            value
                .try_into::<CutoffSchedule>()
                .map_err(|error| error.to_string())
        });
    assert_eq!(read, Ok(schedule), "{schedule} written as {written:?}");
}

/// `next_cutoff_after(now)`: after `now` (or saturated), and exact where nothing
/// saturates.
fn check_next(schedule: CutoffSchedule, now: i64) {
    let next = schedule.next_cutoff_after(Timestamp(now)).0;
    let _ = schedule.is_due(Timestamp(now), Timestamp(next));
    assert!(
        next > now || next == i64::MAX,
        "{schedule}: next cut-off after {now} is {next}"
    );
    if !(-EXACT_LIMIT..=EXACT_LIMIT).contains(&now) {
        return;
    }
    let period = match schedule {
        CutoffSchedule::Daily {
            at,
            utc_offset_minutes,
        } => {
            let local = next + i64::from(utc_offset_minutes) * MINUTE_MS;
            assert_eq!(
                local.rem_euclid(DAY_MS),
                i64::from(at.minutes_after_midnight()) * MINUTE_MS,
                "{schedule}: {next} (after {now}) is not at {at} local time"
            );
            DAY_MS
        }
        CutoffSchedule::EveryMinutes(minutes) => {
            let interval = i64::from(minutes.get()) * MINUTE_MS;
            assert_eq!(
                next.rem_euclid(interval),
                0,
                "{schedule}: {next} (after {now}) is not a multiple of the interval"
            );
            interval
        }
    };
    assert!(
        next - period <= now,
        "{schedule}: {next} is not the first cut-off after {now}"
    );
    assert_eq!(
        schedule.next_cutoff_after(Timestamp(next)).0,
        next + period,
        "{schedule}: the cut-off after {next}"
    );
    assert!(
        schedule.is_due(Timestamp(now), Timestamp(next)),
        "{schedule}: not due at {next} since {now}"
    );
    assert!(
        !schedule.is_due(Timestamp(now), Timestamp(next - 1)),
        "{schedule}: due at {} since {now}",
        next - 1
    );
}

/// FNV-1a, to spread the input over the timestamps.
fn fnv1a(input: &[u8]) -> u64 {
    input.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

// ---------------------------------------------------------------------------------------
// Price

fn check_price(text: &str, input: &[u8]) {
    let first = input.first().copied().unwrap_or_default();
    let currency = CURRENCIES[usize::from(first) % CURRENCIES.len()];
    let parsed = parse_price(text, currency);
    assert_eq!(
        parsed,
        price_model(text, currency),
        "{text:?} in {currency:?}"
    );
    match parsed {
        Ok(money) => check_printed(money, text),
        Err(error) => {
            let _ = error.to_string();
        }
    }

    let mut bytes = [0u8; 8];
    for (slot, byte) in bytes.iter_mut().zip(input) {
        *slot = *byte;
    }
    let minor = u64::from_le_bytes(bytes) % (MAX_PRICE_MINOR + 1);
    check_printed(Money::new(minor, currency), "the input's first 8 bytes");
    assert_eq!(
        parse_price(&format_price(Money::new(u64::MAX, currency)), currency),
        Err(PriceError::TooLarge),
        "u64::MAX minor units printed"
    );
}

/// `format_price(money)`: the currency's decimals exactly, reads back to `money`, and
/// is a fixed point.
fn check_printed(money: Money, from: &str) {
    let printed = format_price(money);
    let exponent = usize::from(money.currency.exponent);
    let decimals = printed.split_once('.').map(|(_, fraction)| fraction.len());
    assert_eq!(
        decimals,
        (exponent > 0).then_some(exponent),
        "{from:?}: {money:?} printed as {printed:?}"
    );
    let again = parse_price(&printed, money.currency);
    assert_eq!(
        again,
        Ok(money),
        "{from:?}: {money:?} printed as {printed:?}"
    );
    assert_eq!(
        again.map(format_price),
        Ok(printed.clone()),
        "{printed:?} is not a fixed point"
    );
}

/// What a price text is, read character by character.
fn price_model(text: &str, currency: Currency) -> Result<Money, PriceError> {
    if text.is_empty() {
        return Err(PriceError::Empty);
    }
    if text.starts_with('-') {
        return Err(PriceError::Negative);
    }
    let mut point = None;
    for (index, (offset, found)) in text.char_indices().enumerate() {
        if found.is_ascii_digit() {
            continue;
        }
        if found == '.' && point.is_none() {
            point = Some(offset);
            continue;
        }
        return Err(PriceError::UnexpectedChar {
            position: index + 1,
            found,
        });
    }
    let (whole, fraction) = match point {
        Some(offset) => (&text[..offset], &text[offset + 1..]),
        None => (text, ""),
    };
    if whole.is_empty() || (point.is_some() && fraction.is_empty()) {
        return Err(PriceError::MissingDigits);
    }
    let allowed = currency.exponent;
    if fraction.len() > usize::from(allowed) {
        return Err(PriceError::TooManyDecimals {
            decimals: fraction.len(),
            allowed,
            currency,
        });
    }
    // The digits of the amount in minor units, without leading zeros: more than twelve
    // is above 999 999 999 999.
    let mut digits = format!("{whole}{fraction}");
    digits.extend(std::iter::repeat_n(
        '0',
        usize::from(allowed) - fraction.len(),
    ));
    let significant = digits.trim_start_matches('0');
    if significant.len() > 12 {
        return Err(PriceError::TooLarge);
    }
    let minor = significant.parse::<u64>().unwrap_or(0);
    if minor > MAX_PRICE_MINOR {
        return Err(PriceError::TooLarge);
    }
    Ok(Money::new(minor, currency))
}
