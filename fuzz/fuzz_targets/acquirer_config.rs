//! Fuzz target `acquirer_config`: the bank-card acquirer's two configuration texts,
//! `telepay::acquirer::card::IssuerTable::from_toml_str` (`[[issuer]]`: PAN prefix,
//! AID, derivation key index, CVNs, issuer master key) and
//! `AmountLimits::from_toml_str` (`[[limit]]`: currency, min, max), both on the same
//! UTF-8 input (other inputs are skipped).
//!
//! The text is also parsed into `toml`'s document tree (`toml::de::DeTable`, which
//! keeps integers as written: `toml`'s serde reading, which the readers use, gives a
//! `u64` field any integer up to `u64::MAX`, beyond TOML's own `i64` range), the
//! target's own view of what it says. Checked on every input:
//!
//! - neither reader panics; an error's `Display` and `Debug` format; a `Toml` error names
//!   the origin and a line and column inside the text (or 0, 0 when the parser gave no
//!   position), and a text `toml` cannot parse fails both readers with `Toml`; an
//!   `Empty` or `Field` error is about the reader's own array (`issuer` or `limit`),
//!   `Field`'s index is inside that array;
//! - no text is both an issuer table and a limits table (each refuses the other's key);
//! - no issuer master key leaks: no key of 16 or more hex digits written in an
//!   `[[issuer]]` entry appears (in any case) in the issuer table's `Debug`, nor in
//!   either reader's error `Display` or `Debug` — unless the same digits are also
//!   written elsewhere in the text (a name, another value), where a message may rightly
//!   quote them.
//!
//! On success, issuer table (ISO/IEC 7812-1 prefixes, ISO/IEC 7816-4 §8.2.1.2 AIDs):
//!
//! - the entries are the text's, in order: name, prefix (1 to 19 digits), AID (the hex
//!   decoded here, 5 to 16 bytes), derivation key index, and `accepts` exactly the CVNs
//!   listed (10 and 18 only); no two share prefix, AID and index; equal keys have equal
//!   key check values;
//! - `lookup(prefix, aid, index)` with an entry's own prefix as the PAN finds exactly
//!   that entry; with the prefix padded to 19 digits it finds the entry of the longest
//!   matching prefix (computed here); `lookup` with an empty PAN, and with PANs and AIDs
//!   taken from the input, never panics, and anything found matches what was asked.
//!
//! On success, limits table: every entry's currency (an alphabetic code telepay knows, or
//! three digits) has exactly its `min..=max` as `range`, and no other numeric code has a
//! range; `allows` accepts `min` and `max` and refuses one below and one above, in any
//! exponent, and refuses every amount in a currency without a range.
#![no_main]

use card_applet_sim::crypto::CryptogramVersion;
use libfuzzer_sys::fuzz_target;
use telepay::acquirer::card::{AmountLimits, AmountRange, ConfigError, IssuerTable, Section};
use telepay::messages::{Currency, Money};
use toml::de::{DeArray, DeInteger, DeTable, DeValue};

/// The origin the readers give their errors.
const ORIGIN: &str = "fuzz";

/// Shortest master-key text the leak check looks for: shorter hex runs occur in
/// messages by chance (positions, lengths).
const MIN_SECRET_LEN: usize = 16;

fuzz_target!(|input: &[u8]| check(input));

fn check(input: &[u8]) {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    let document = DeTable::parse(text).ok();
    let document = document.as_ref().map(|document| document.get_ref());
    let secrets = document.map(secrets).unwrap_or_default();

    let issuers = IssuerTable::from_toml_str(text, ORIGIN);
    let limits = AmountLimits::from_toml_str(text, ORIGIN);
    assert!(
        !(issuers.is_ok() && limits.is_ok()),
        "one text is both an issuer table and a limits table"
    );

    match &issuers {
        Ok(table) => {
            let Some(document) = document else {
                panic!("an issuer table from a text that is not TOML");
            };
            check_issuers(table, document, input);
            let debug = format!("{table:?}").to_ascii_lowercase();
            for secret in &secrets {
                assert!(
                    !debug.contains(secret.as_str()),
                    "the issuer table's Debug shows a master key"
                );
            }
        }
        Err(error) => check_error(text, document, Section::Issuer, error, &secrets),
    }
    match &limits {
        Ok(limits) => {
            let Some(document) = document else {
                panic!("a limits table from a text that is not TOML");
            };
            check_limits(limits, document);
        }
        Err(error) => check_error(text, document, Section::Limit, error, &secrets),
    }
}

// ---------------------------------------------------------------------------------------
// Errors

fn check_error(
    text: &str,
    document: Option<&DeTable<'_>>,
    section: Section,
    error: &ConfigError,
    secrets: &[String],
) {
    let display = error.to_string();
    let debug = format!("{error:?}");
    for secret in secrets {
        assert!(
            !display.to_ascii_lowercase().contains(secret.as_str())
                && !debug.to_ascii_lowercase().contains(secret.as_str()),
            "a {section} error shows a master key: {display}"
        );
    }
    let array = |document: &DeTable<'_>| {
        array(document, &section.to_string()).map_or(0, |entries| entries.len())
    };
    match error {
        ConfigError::Toml {
            origin,
            line,
            column,
            ..
        } => {
            assert_eq!(origin, ORIGIN, "{display}");
            check_toml_position(text, *line, *column, &display);
        }
        ConfigError::Empty {
            origin,
            section: empty,
        } => {
            assert_eq!(origin, ORIGIN, "{display}");
            assert_eq!(*empty, section, "{display}");
            let Some(document) = document else {
                panic!("Empty from a text that is not TOML: {display}");
            };
            assert_eq!(array(document), 0, "{display}");
        }
        ConfigError::Field {
            origin,
            section: faulty,
            index,
            ..
        } => {
            assert_eq!(origin, ORIGIN, "{display}");
            assert_eq!(*faulty, section, "{display}");
            let Some(document) = document else {
                panic!("Field from a text that is not TOML: {display}");
            };
            assert!(
                *index < array(document),
                "index outside the [[{section}]] array: {display}"
            );
        }
        _ => {}
    }
    if document.is_none() {
        assert!(
            matches!(error, ConfigError::Toml { .. }),
            "a text that is not TOML fails with another error: {display}"
        );
    }
}

/// Line and column (both from 1; the column in bytes) inside the text, or both 0.
fn check_toml_position(text: &str, line: usize, column: usize, display: &str) {
    if line == 0 {
        assert_eq!(column, 0, "column without a line: {display}");
        return;
    }
    let Some(line_text) = text.split('\n').nth(line - 1) else {
        panic!(
            "line {line} outside the text's {} lines: {display}",
            text.split('\n').count()
        );
    };
    assert!(
        (1..=line_text.len() + 1).contains(&column),
        "column {column} outside 1..={} of line {line}: {display}",
        line_text.len() + 1
    );
}

/// The master keys written in `[[issuer]]` entries that the leak check can look for:
/// 16 or more hex digits (lower-cased), not written anywhere else in the text.
fn secrets(document: &DeTable<'_>) -> Vec<String> {
    let mut keys = Vec::new();
    for entry in array(document, "issuer").into_iter().flatten() {
        if let Some(key) = entry
            .get_ref()
            .as_table()
            .and_then(|entry| string(entry, "issuer_master_key"))
            && key.len() >= MIN_SECRET_LEN
            && key.bytes().all(|byte| byte.is_ascii_hexdigit())
        {
            keys.push(key.to_ascii_lowercase());
        }
    }
    let mut others = Vec::new();
    collect_other_texts(document, true, &mut others);
    keys.retain(|key| !others.iter().any(|other| other.contains(key.as_str())));
    keys
}

/// Every key name and scalar value of the tree as text (lower-cased; integers and floats
/// also as the numbers a message would print), except the strings of
/// `issuer[*].issuer_master_key` (`top_level` is true for the document's own table,
/// whose `issuer` array holds them).
fn collect_other_texts(table: &DeTable<'_>, top_level: bool, out: &mut Vec<String>) {
    for (key, value) in table {
        let key: &str = key.get_ref();
        out.push(key.to_ascii_lowercase());
        match value.get_ref() {
            DeValue::Array(entries) if top_level && key == "issuer" => {
                for entry in entries {
                    match entry.get_ref() {
                        DeValue::Table(entry) => {
                            for (field, value) in entry {
                                let field: &str = field.get_ref();
                                out.push(field.to_ascii_lowercase());
                                if field == "issuer_master_key" && value.get_ref().is_str() {
                                    continue;
                                }
                                collect_value(value.get_ref(), out);
                            }
                        }
                        other => collect_value(other, out),
                    }
                }
            }
            other => collect_value(other, out),
        }
    }
}

fn collect_value(value: &DeValue<'_>, out: &mut Vec<String>) {
    match value {
        DeValue::String(text) => out.push(text.to_ascii_lowercase()),
        DeValue::Integer(integer) => {
            out.push(integer.as_str().to_ascii_lowercase());
            if let Some(number) = integer_value(integer) {
                out.push(number.to_string());
            }
        }
        DeValue::Float(float) => {
            out.push(float.as_str().to_ascii_lowercase());
            if let Ok(number) = float.as_str().parse::<f64>() {
                out.push(number.to_string());
                out.push(format!("{number:?}"));
            }
        }
        DeValue::Boolean(_) => {}
        DeValue::Datetime(datetime) => out.push(datetime.to_string().to_ascii_lowercase()),
        DeValue::Array(elements) => elements
            .iter()
            .for_each(|element| collect_value(element.get_ref(), out)),
        DeValue::Table(table) => collect_other_texts(table, false, out),
    }
}

// ---------------------------------------------------------------------------------------
// Issuer table

fn check_issuers(table: &IssuerTable, document: &DeTable<'_>, input: &[u8]) {
    let Some(entries) = array(document, "issuer") else {
        panic!("an issuer table from a text without an `issuer` array");
    };
    let entries: Vec<&DeTable<'_>> = entries
        .iter()
        .map(|entry| match entry.get_ref() {
            DeValue::Table(entry) => entry,
            other => panic!("an issuer read from a {}", other.type_str()),
        })
        .collect();
    let issuers = table.issuers();
    assert!(!issuers.is_empty(), "an issuer table without issuers");
    assert_eq!(
        issuers.len(),
        entries.len(),
        "issuers vs [[issuer]] entries"
    );

    for (index, (issuer, entry)) in issuers.iter().zip(&entries).enumerate() {
        let name = issuer.name();
        assert_eq!(Some(name), string(entry, "name"), "issuer[{index}] name");
        let prefix = issuer.pan_prefix();
        assert!(
            (1..=19).contains(&prefix.len()) && prefix.bytes().all(|byte| byte.is_ascii_digit()),
            "issuer[{index}] prefix {prefix:?}"
        );
        assert_eq!(
            Some(prefix),
            string(entry, "pan_prefix"),
            "issuer[{index}] prefix"
        );
        let aid = issuer.aid();
        assert!(
            (5..=16).contains(&aid.len()),
            "issuer[{index}] AID of {} bytes",
            aid.len()
        );
        assert_eq!(
            string(entry, "aid").and_then(hex),
            Some(aid.to_vec()),
            "issuer[{index}] AID"
        );
        assert_eq!(
            integer(entry, "derivation_key_index"),
            Some(i128::from(issuer.derivation_key_index())),
            "issuer[{index}] derivation key index"
        );
        let Some(cvns) = array(entry, "cvns") else {
            panic!("issuer[{index}] read without a cvns array");
        };
        let cvns: Vec<i128> = cvns
            .iter()
            .map(|cvn| match cvn.get_ref() {
                DeValue::Integer(cvn) => integer_value(cvn),
                _ => None,
            })
            .map(|cvn| cvn.unwrap_or_else(|| panic!("issuer[{index}]: a CVN that is not a number")))
            .collect();
        assert!(
            !cvns.is_empty() && cvns.iter().all(|cvn| matches!(cvn, 10 | 18)),
            "issuer[{index}] accepted CVNs {cvns:?}"
        );
        assert_eq!(
            issuer.accepts(CryptogramVersion::Visa10),
            cvns.contains(&10),
            "issuer[{index}] CVN 10"
        );
        assert_eq!(
            issuer.accepts(CryptogramVersion::Cvn18),
            cvns.contains(&18),
            "issuer[{index}] CVN 18"
        );
        let key = string(entry, "issuer_master_key").map(str::to_ascii_lowercase);
        for (earlier, earlier_entry) in issuers[..index].iter().zip(&entries) {
            assert!(
                !(earlier.pan_prefix() == prefix
                    && earlier.aid() == aid
                    && earlier.derivation_key_index() == issuer.derivation_key_index()),
                "issuer[{index}] repeats an earlier prefix, AID and index"
            );
            if key.is_some()
                && key == string(earlier_entry, "issuer_master_key").map(str::to_ascii_lowercase)
            {
                assert_eq!(
                    earlier.key_check_value(),
                    issuer.key_check_value(),
                    "issuer[{index}]: one key, two check values"
                );
            }
        }

        let dki = issuer.derivation_key_index();
        let found = table.lookup(prefix, aid, dki);
        assert!(
            found.is_some_and(|found| std::ptr::eq(found, issuer)),
            "lookup with issuer[{index}]'s own prefix finds {:?}",
            found.map(|found| found.name())
        );
        let mut pan = prefix.to_owned();
        while pan.len() < 19 {
            pan.push('0');
        }
        check_lookup(table, &pan, aid, dki);
        check_lookup(table, &pan, aid, dki.wrapping_add(1));
        check_lookup(table, prefix, &aid[..aid.len() - 1], dki);
        assert!(table.lookup("", aid, dki).is_none(), "an empty PAN matches");
    }

    // A PAN and an AID made from the input itself.
    let pan: String = input
        .iter()
        .map(|byte| char::from(b'0' + byte % 10))
        .take(19)
        .collect();
    let aid = input.get(..input.len().min(16)).unwrap_or_default();
    let dki = input.first().copied().unwrap_or_default();
    check_lookup(table, &pan, aid, dki);
    if let Some(first) = issuers.first() {
        check_lookup(table, &pan, first.aid(), first.derivation_key_index());
    }
}

/// `lookup` finds the entry with the longest prefix of `pan` among those for `aid` and
/// `dki` (computed here), or nothing when none matches.
fn check_lookup(table: &IssuerTable, pan: &str, aid: &[u8], dki: u8) {
    let expected = table
        .issuers()
        .iter()
        .filter(|issuer| {
            issuer.aid() == aid
                && issuer.derivation_key_index() == dki
                && pan.starts_with(issuer.pan_prefix())
        })
        .map(|issuer| issuer.pan_prefix().len())
        .max();
    let found = table.lookup(pan, aid, dki);
    match found {
        Some(issuer) => {
            assert!(
                issuer.aid() == aid
                    && issuer.derivation_key_index() == dki
                    && pan.starts_with(issuer.pan_prefix()),
                "lookup({pan}) finds {}, which does not match",
                issuer.name()
            );
            assert_eq!(
                Some(issuer.pan_prefix().len()),
                expected,
                "lookup({pan}) finds {}, not the longest prefix",
                issuer.name()
            );
        }
        None => assert_eq!(expected, None, "lookup({pan}) finds nothing"),
    }
}

/// Hex digits (either case) as bytes; `None` when not hex or odd.
fn hex(text: &str) -> Option<Vec<u8>> {
    let digits: Vec<u8> = text
        .chars()
        .map(|found| found.to_digit(16).map(|digit| digit as u8))
        .collect::<Option<_>>()?;
    let pairs = digits.chunks_exact(2);
    if !pairs.remainder().is_empty() {
        return None;
    }
    Some(pairs.map(|pair| pair[0] << 4 | pair[1]).collect())
}

// ---------------------------------------------------------------------------------------
// Limits table

fn check_limits(limits: &AmountLimits, document: &DeTable<'_>) {
    let Some(entries) = array(document, "limit") else {
        panic!("a limits table from a text without a `limit` array");
    };
    assert!(!entries.is_empty(), "a limits table without limits");
    let mut numerics = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        let Some(entry) = entry.get_ref().as_table() else {
            panic!("limit[{index}] read from a {}", entry.get_ref().type_str());
        };
        let Some(numeric) = string(entry, "currency").and_then(numeric_code) else {
            panic!(
                "limit[{index}] read with currency {:?}",
                entry.get("currency")
            );
        };
        assert!(
            !numerics.contains(&numeric),
            "limit[{index}]: currency {numeric} twice"
        );
        numerics.push(numeric);
        let bound = |key: &str| integer(entry, key).and_then(|value| u64::try_from(value).ok());
        let (Some(min), Some(max)) = (bound("min"), bound("max")) else {
            panic!("limit[{index}] read without min and max");
        };
        assert!(min <= max, "limit[{index}]: {min} > {max}");
        assert_eq!(
            limits.range(numeric),
            Some(AmountRange { min, max }),
            "limit[{index}] ({numeric})"
        );
        for exponent in 0..=3 {
            let currency = Currency { numeric, exponent };
            let money = |minor| Money::new(minor, currency);
            assert!(limits.allows(&money(min)), "limit[{index}]: min refused");
            assert!(limits.allows(&money(max)), "limit[{index}]: max refused");
            if let Some(below) = min.checked_sub(1) {
                assert!(
                    !limits.allows(&money(below)),
                    "limit[{index}]: min - 1 allowed"
                );
            }
            if let Some(above) = max.checked_add(1) {
                assert!(
                    !limits.allows(&money(above)),
                    "limit[{index}]: max + 1 allowed"
                );
            }
        }
    }
    // ISO 4217 numeric codes are three digits: exactly the entries' have a range.
    for numeric in (0..=999).chain([1000, u16::MAX]) {
        assert_eq!(
            limits.range(numeric).is_some(),
            numerics.contains(&numeric),
            "range({numeric})"
        );
        if !numerics.contains(&numeric) {
            let amount = Money::new(
                1,
                Currency {
                    numeric,
                    exponent: 2,
                },
            );
            assert!(
                !limits.allows(&amount),
                "{numeric}: allowed without a range"
            );
        }
    }
}

/// `EUR`, `USD`, `GBP`, `JPY` or three ASCII digits, as an ISO 4217 numeric code.
fn numeric_code(text: &str) -> Option<u16> {
    let known = [
        ("EUR", Currency::EUR),
        ("USD", Currency::USD),
        ("GBP", Currency::GBP),
        ("JPY", Currency::JPY),
    ];
    if let Some((_, currency)) = known.iter().find(|(alpha, _)| *alpha == text) {
        return Some(currency.numeric);
    }
    match text.as_bytes() {
        &[a, b, c] if [a, b, c].iter().all(u8::is_ascii_digit) => {
            Some(u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0'))
        }
        _ => None,
    }
}

/// The string value of `key`, if it is one.
fn string<'t>(table: &'t DeTable<'_>, key: &str) -> Option<&'t str> {
    table.get(key).and_then(|value| value.get_ref().as_str())
}

/// The integer value of `key`, if it is one (any TOML integer fits an `i128`).
fn integer(table: &DeTable<'_>, key: &str) -> Option<i128> {
    match table.get(key).map(|value| value.get_ref()) {
        Some(DeValue::Integer(value)) => integer_value(value),
        _ => None,
    }
}

/// An integer as written (digits in its radix, sign included).
fn integer_value(integer: &DeInteger<'_>) -> Option<i128> {
    i128::from_str_radix(integer.as_str(), integer.radix()).ok()
}

/// The elements of the array `key`, if it is one.
fn array<'t, 'i>(table: &'t DeTable<'i>, key: &str) -> Option<&'t DeArray<'i>> {
    match table.get(key).map(|value| value.get_ref()) {
        Some(DeValue::Array(elements)) => Some(elements),
        _ => None,
    }
}
