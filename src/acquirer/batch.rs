//! The remittance batch: the file a bank-card acquirer sends to the telecollection
//! centre at each cut-off (claim 11: the acquirer "keeps the acknowledged transaction
//! and remits it, at the deadline the banking systems set, to the telecollection
//! centre"). Specification with an example: `docs/telecollection.md`.
//!
//! The format is line-oriented ASCII text, so a batch reads and diffs well:
//!
//! ```text
//! H format=telepay-batch version=1 acquirer=ACQ-1 batch=7 cut-off=2026-11-25T22:00:00Z records=2 totals=978:2:3750
//! R payment=PAY-1 merchant=FRONT-END pan=4970100000000014 psn=01 … auth=A1B2C3
//! R payment=PAY-2 …
//! T records=2 totals=978:2:3750 sha256=<64 lower-case hex digits>
//! ```
//!
//! - one `H` header (format version, acquirer, batch number, cut-off time, record
//!   count, per-currency counts and totals);
//! - one `R` record per transaction, with everything the issuer needs to clear it and
//!   re-verify the card's cryptogram (EMV Book 2 §8.1: the data the card signed);
//! - one `T` trailer repeating the count and totals, and the SHA-256 of every byte
//!   before it.
//!
//! Every value has exactly one spelling (fixed key order, single spaces, canonical
//! numbers, upper-case hex, percent-escapes only where needed), so writing what was
//! read gives the same bytes. [`BatchWriter`] writes a batch record by record and
//! [`read_batch`] reads and verifies one record by record: neither holds the batch in
//! memory, so a batch of a million transactions streams. The reader is a parser of
//! untrusted input: every input gives `Ok` or a [`BatchError`] naming the line and the
//! field, never a panic.

use std::collections::BTreeMap;
use std::io::{BufRead, Read, Write};

use sha2::{Digest, Sha256};

use crate::emv::mask_pan;
use crate::messages::{AcquirerId, MerchantId, PaymentId, Timestamp};

/// The format version this build reads and writes (`version=1`).
pub const FORMAT_VERSION: u32 = 1;

/// The format's name, first field of the header.
pub const FORMAT_NAME: &str = "telepay-batch";

/// The longest line the reader accepts, newline included. A record is at most about
/// 2 KiB (two escaped identifiers of 255 bytes and fixed-width card data); the header
/// and trailer grow with the number of currencies (at most 1,000).
pub const MAX_LINE_BYTES: usize = 65_536;

/// The longest identifier (payment, merchant, acquirer), in bytes of UTF-8, unescaped.
pub const MAX_IDENTIFIER_BYTES: usize = 255;

/// The largest amount one record carries: EMV's Amount, Authorised (9F02) is n12.
pub const MAX_AMOUNT_MINOR: u64 = 999_999_999_999;

/// Count and total of one currency in a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct CurrencyTotal {
    /// ISO 4217 numeric code (0–999).
    pub currency: u16,
    /// How many records are in this currency (at least one).
    pub records: u64,
    /// Their amounts added, in minor units.
    pub total_minor: u64,
}

/// The header line `H`: what the batch is and what it must add up to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BatchHeader {
    /// The acquirer remitting.
    pub acquirer: AcquirerId,
    /// The batch number, from 1, one more for each cut-off of this acquirer.
    pub number: u64,
    /// When the acquirer cut the batch off.
    pub cut_off_at: Timestamp,
    /// How many records follow (at least one: an empty batch is never made).
    pub records: u64,
    /// Per currency, ascending by code, each once: how many records and their sum.
    pub totals: Vec<CurrencyTotal>,
}

/// One transaction to clear: the `R` line.
///
/// The card's fields are copied in their EMV encodings, as the card signed them, so
/// that the issuer can recompute the application cryptogram (EMV Book 2 §8.1.1: the
/// CDOL1 data — amounts, country, TVR, currency, date, type, unpredictable number —
/// with the AIP, the ATC and the IAD).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct BatchRecord {
    /// The front-end's payment request identifier.
    pub payment: PaymentId,
    /// The merchant to credit.
    pub merchant: MerchantId,
    /// Application PAN (5A): 12 to 19 digits (ISO/IEC 7812-1). The centre needs it in
    /// full; [`BatchRecord`]'s `Debug` masks it.
    pub pan: String,
    /// PAN Sequence Number (5F34), the byte the card gave.
    pub pan_sequence: u8,
    /// Application Expiration Date (5F24): YYMMDD digits.
    pub expiry: String,
    /// Application Transaction Counter (9F36).
    pub atc: u16,
    /// The amount authorised, in minor units (equal to 9F02).
    pub amount_minor: u64,
    /// Its ISO 4217 numeric currency (equal to 5F2A).
    pub currency: u16,
    /// Amount, Other (9F03), n12 BCD.
    pub amount_other: [u8; 6],
    /// Transaction Date (9A), YYMMDD BCD.
    pub date: [u8; 3],
    /// Transaction Type (9C), n2 BCD.
    pub transaction_type: u8,
    /// Terminal Country Code (9F1A), n3 BCD in two bytes.
    pub terminal_country: [u8; 2],
    /// The AID the card paid with (4F / 84), 5 to 16 bytes (ISO/IEC 7816-4 §12.2.3).
    pub aid: Vec<u8>,
    /// Application Interchange Profile (82).
    pub aip: [u8; 2],
    /// Terminal Verification Results (95).
    pub tvr: [u8; 5],
    /// Unpredictable Number (9F37).
    pub unpredictable_number: [u8; 4],
    /// Cryptogram Information Data (9F27).
    pub cid: u8,
    /// Application Cryptogram (9F26).
    pub cryptogram: [u8; 8],
    /// Issuer Application Data (9F10), 0 to 32 bytes.
    pub iad: Vec<u8>,
    /// The acquirer's authorisation code (ISO 8583 field 38): six letters or digits.
    pub authorisation_code: String,
}

impl std::fmt::Debug for BatchRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchRecord")
            .field("payment", &self.payment)
            .field("merchant", &self.merchant)
            .field("pan", &mask_pan(&self.pan))
            .field("pan_sequence", &self.pan_sequence)
            .field("atc", &self.atc)
            .field("amount_minor", &self.amount_minor)
            .field("currency", &self.currency)
            .field("cryptogram", &hex::encode_upper(self.cryptogram))
            .field("authorisation_code", &self.authorisation_code)
            .finish_non_exhaustive()
    }
}

/// What the trailer `T` says, once verified, and what a writer produced.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BatchTrailer {
    /// How many records the batch holds.
    pub records: u64,
    /// Per currency, ascending.
    pub totals: Vec<CurrencyTotal>,
    /// SHA-256 of every byte before the trailer line.
    pub checksum: [u8; 32],
    /// The size of the whole batch file in bytes, trailer included.
    pub bytes: u64,
}

/// A batch read and verified by [`read_batch`]: format, counts, totals and checksum.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VerifiedBatch {
    /// The header.
    pub header: BatchHeader,
    /// The trailer, whose counts and totals equal the header's and the records'.
    pub trailer: BatchTrailer,
}

/// What is wrong with a batch, or with writing one. Lines are numbered from 1.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError {
    /// Reading the input failed.
    #[error("line {line}: cannot read the batch: {source}")]
    Read {
        /// The line being read.
        line: u64,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Writing the output failed.
    #[error("line {line}: cannot write the batch: {source}")]
    Write {
        /// The line being written.
        line: u64,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The input ended where more was expected (a truncated batch).
    #[error("line {line}: the batch ends where {expected} was expected")]
    Truncated {
        /// The line that is missing.
        line: u64,
        /// What should have been there.
        expected: &'static str,
    },
    /// The last line has no newline: the batch was cut in the middle of a line.
    #[error("line {line}: the line has no end (the batch was cut mid-line)")]
    UnterminatedLine {
        /// The line.
        line: u64,
    },
    /// A line is longer than [`MAX_LINE_BYTES`].
    #[error("line {line}: longer than {limit} bytes")]
    LineTooLong {
        /// The line.
        line: u64,
        /// The limit.
        limit: usize,
    },
    /// A byte that is not printable ASCII or a single space (tabs, CR and non-ASCII
    /// bytes are refused).
    #[error("line {line}, column {column}: byte {byte:#04x} is not allowed in a batch")]
    InvalidByte {
        /// The line.
        line: u64,
        /// The column, from 1.
        column: usize,
        /// The byte.
        byte: u8,
    },
    /// A line of the wrong kind where another was expected.
    #[error("line {line}: expected {expected}, found a line starting {found:?}")]
    UnexpectedLine {
        /// The line.
        line: u64,
        /// What was expected there.
        expected: &'static str,
        /// The start of the line found (at most 16 characters).
        found: String,
    },
    /// A field missing, out of place, or misspelled.
    #[error("line {line}: expected field `{field}=`, found {found:?}")]
    MissingField {
        /// The line.
        line: u64,
        /// The field expected at this place.
        field: &'static str,
        /// What was there instead (at most 32 characters; empty at the end of the line).
        found: String,
    },
    /// Fields after the last one the line has.
    #[error("line {line}: unexpected text after the last field `{after}`: {found:?}")]
    ExtraField {
        /// The line.
        line: u64,
        /// The last field of the line.
        after: &'static str,
        /// The extra text (at most 32 characters).
        found: String,
    },
    /// A field whose value is not what the format allows.
    #[error("line {line}: field `{field}`: expected {expected}, found {found:?}")]
    Field {
        /// The line.
        line: u64,
        /// The field.
        field: &'static str,
        /// What the format allows.
        expected: &'static str,
        /// The value found (at most 32 characters; a PAN is masked).
        found: String,
    },
    /// A format version this build does not read.
    #[error(
        "line {line}: batch format version {found} is not supported (this build reads {FORMAT_VERSION})"
    )]
    UnsupportedVersion {
        /// The line (1).
        line: u64,
        /// The version found.
        found: String,
    },
    /// More records than the header announces, or fewer.
    #[error("line {line}: the header announces {declared} records, the batch has {actual}")]
    CountMismatch {
        /// Where it was noticed.
        line: u64,
        /// The header's count.
        declared: u64,
        /// The records counted.
        actual: u64,
    },
    /// A record in a currency the header does not list, or more records of a currency
    /// than it announces.
    #[error(
        "line {line}: currency {currency:03}: the header announces {declared} records, found at least {actual}"
    )]
    CurrencyCountMismatch {
        /// Where it was noticed.
        line: u64,
        /// The currency.
        currency: u16,
        /// The header's count for it (0 when not listed).
        declared: u64,
        /// The records of that currency counted so far.
        actual: u64,
    },
    /// The records of a currency do not add up to what the header or trailer says.
    #[error(
        "line {line}: currency {currency:03}: declared {declared_records} records totalling {declared_total}, the records give {actual_records} totalling {actual_total}"
    )]
    TotalMismatch {
        /// Where it was noticed.
        line: u64,
        /// The currency.
        currency: u16,
        /// The declared count.
        declared_records: u64,
        /// The declared total in minor units.
        declared_total: u64,
        /// The counted records.
        actual_records: u64,
        /// Their sum in minor units.
        actual_total: u64,
    },
    /// The trailer's count or totals are not the header's.
    #[error("line {line}: the trailer's `{field}` is {trailer}, the header's {header}")]
    TrailerDiffersFromHeader {
        /// The trailer's line.
        line: u64,
        /// `records` or `totals`.
        field: &'static str,
        /// The header's value.
        header: String,
        /// The trailer's value.
        trailer: String,
    },
    /// A value the format cannot carry was given to the writer.
    #[error("line {line}: field `{field}` cannot be written: expected {expected}")]
    Unwritable {
        /// The line being written.
        line: u64,
        /// The field.
        field: &'static str,
        /// What the format allows.
        expected: &'static str,
    },
    /// A sum does not fit in 64 bits.
    #[error("line {line}: currency {currency:03}: the total overflows 64 bits")]
    TotalOverflow {
        /// Where.
        line: u64,
        /// The currency.
        currency: u16,
    },
    /// The SHA-256 of the batch is not the trailer's: the file was altered.
    #[error(
        "line {line}: checksum mismatch: the trailer says {declared}, the bytes give {computed}"
    )]
    ChecksumMismatch {
        /// The trailer's line.
        line: u64,
        /// The trailer's checksum (hex).
        declared: String,
        /// The checksum of the bytes read (hex).
        computed: String,
    },
    /// Bytes after the trailer.
    #[error("line {line}: data after the trailer")]
    TrailingData {
        /// The first line after the trailer.
        line: u64,
    },
}

impl BatchError {
    /// The line the error is about (from 1).
    pub fn line(&self) -> u64 {
        match self {
            BatchError::Read { line, .. }
            | BatchError::Write { line, .. }
            | BatchError::Truncated { line, .. }
            | BatchError::UnterminatedLine { line }
            | BatchError::LineTooLong { line, .. }
            | BatchError::InvalidByte { line, .. }
            | BatchError::UnexpectedLine { line, .. }
            | BatchError::MissingField { line, .. }
            | BatchError::ExtraField { line, .. }
            | BatchError::Field { line, .. }
            | BatchError::UnsupportedVersion { line, .. }
            | BatchError::CountMismatch { line, .. }
            | BatchError::CurrencyCountMismatch { line, .. }
            | BatchError::TotalMismatch { line, .. }
            | BatchError::TrailerDiffersFromHeader { line, .. }
            | BatchError::Unwritable { line, .. }
            | BatchError::TotalOverflow { line, .. }
            | BatchError::ChecksumMismatch { line, .. }
            | BatchError::TrailingData { line } => *line,
        }
    }
}

/// At most `limit` characters of `text`, for error messages.
fn excerpt(text: &str, limit: usize) -> String {
    let mut out: String = text.chars().take(limit).collect();
    if text.chars().count() > limit {
        out.push('…');
    }
    out
}

// ---------------------------------------------------------------------------------
// Field encodings. Each has one spelling: the writer produces it, the reader accepts
// only it.
// ---------------------------------------------------------------------------------

/// Characters an identifier may carry unescaped; every other byte of its UTF-8 is
/// written `%XX` (upper-case hex).
fn is_plain(byte: u8) -> bool {
    byte.is_ascii_alphanumeric()
        || matches!(byte, b'-' | b'.' | b'_' | b'~' | b':' | b'@' | b'+' | b'/')
}

fn escape_identifier(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for &byte in text.as_bytes() {
        if is_plain(byte) {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push_str(&format!("{byte:02X}"));
        }
    }
    out
}

fn upper_hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// Decodes an escaped identifier; `None` when it is not the canonical escape of a
/// UTF-8 string of 1 to [`MAX_IDENTIFIER_BYTES`] bytes.
fn unescape_identifier(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        if byte == b'%' {
            let high = upper_hex_value(*bytes.get(index + 1)?)?;
            let low = upper_hex_value(*bytes.get(index + 2)?)?;
            let decoded = (high << 4) | low;
            // A plain character escaped is a second spelling of the same identifier.
            if is_plain(decoded) {
                return None;
            }
            out.push(decoded);
            index += 3;
        } else if is_plain(byte) {
            out.push(byte);
            index += 1;
        } else {
            return None;
        }
    }
    if out.is_empty() || out.len() > MAX_IDENTIFIER_BYTES {
        return None;
    }
    String::from_utf8(out).ok()
}

const IDENTIFIER: &str = "1 to 255 bytes of UTF-8, percent-escaped";

fn check_identifier(text: &str) -> Result<String, &'static str> {
    check_identifier_length(text)?;
    Ok(escape_identifier(text))
}

/// What [`check_identifier`] checks, without escaping: 1 to `MAX_IDENTIFIER_BYTES` bytes.
fn check_identifier_length(text: &str) -> Result<(), &'static str> {
    if text.is_empty() || text.len() > MAX_IDENTIFIER_BYTES {
        return Err(IDENTIFIER);
    }
    Ok(())
}

/// A decimal number without leading zeros ("0" for zero).
fn parse_canonical_decimal(text: &str) -> Option<u64> {
    if text.is_empty() || text.len() > 20 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if text.len() > 1 && text.starts_with('0') {
        return None;
    }
    text.parse().ok()
}

fn is_digits(text: &str, length: usize) -> bool {
    text.len() == length && text.bytes().all(|b| b.is_ascii_digit())
}

fn parse_upper_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    text.as_bytes()
        .chunks(2)
        .map(|pair| match pair {
            [high, low] => Some((upper_hex_value(*high)? << 4) | upper_hex_value(*low)?),
            _ => None,
        })
        .collect()
}

fn parse_hex_array<const N: usize>(text: &str) -> Option<[u8; N]> {
    parse_upper_hex(text)?.try_into().ok()
}

/// Whether every nibble is a decimal digit (EMV format n, BCD).
fn is_bcd(bytes: &[u8]) -> bool {
    bytes.iter().all(|byte| byte >> 4 <= 9 && byte & 0x0F <= 9)
}

fn parse_bcd_array<const N: usize>(text: &str) -> Option<[u8; N]> {
    let bytes: [u8; N] = parse_hex_array(text)?;
    is_bcd(&bytes).then_some(bytes)
}

/// An RFC 3339 UTC time exactly as [`Timestamp`]'s `Display` writes it:
/// `YYYY-MM-DDTHH:MM:SSZ`, or with `.mmm` when the milliseconds are not zero.
pub fn parse_rfc3339_utc(text: &str) -> Option<Timestamp> {
    let bytes = text.as_bytes();
    if !(bytes.len() == 20 || bytes.len() == 24) || !text.is_ascii() {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        if part.bytes().all(|b| b.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    let punctuation = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if punctuation
        .iter()
        .any(|&(at, byte)| bytes.get(at) != Some(&byte))
    {
        return None;
    }
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    let millis = if bytes.len() == 24 {
        if bytes.get(19) != Some(&b'.') || bytes.get(23) != Some(&b'Z') {
            return None;
        }
        number(20..23)?
    } else {
        if bytes.get(19) != Some(&b'Z') {
            return None;
        }
        0
    };
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let days = crate::calendar::days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second;
    let time = Timestamp(seconds * 1000 + millis);
    // One spelling only: this rejects 31 April, and `.000`.
    (time.to_string() == text).then_some(time)
}

/// `978:2:3750,840:1:500`: ascending currencies, each once, at least one record each.
fn encode_totals(totals: &[CurrencyTotal]) -> String {
    totals
        .iter()
        .map(|total| {
            format!(
                "{:03}:{}:{}",
                total.currency, total.records, total.total_minor
            )
        })
        .collect::<Vec<_>>()
        .join(",")
}

const TOTALS: &str = "currency:records:total entries, comma-separated, ascending currencies, at least one record each";

fn check_totals(totals: &[CurrencyTotal]) -> Result<u64, &'static str> {
    let mut records: u64 = 0;
    let mut previous: Option<u16> = None;
    if totals.is_empty() {
        return Err(TOTALS);
    }
    for total in totals {
        if total.currency > 999
            || total.records == 0
            || previous.is_some_and(|p| p >= total.currency)
        {
            return Err(TOTALS);
        }
        previous = Some(total.currency);
        records = records.checked_add(total.records).ok_or(TOTALS)?;
    }
    Ok(records)
}

fn parse_totals(text: &str) -> Option<Vec<CurrencyTotal>> {
    let mut totals = Vec::new();
    for entry in text.split(',') {
        let mut parts = entry.split(':');
        let (currency, records, total) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || !is_digits(currency, 3) {
            return None;
        }
        totals.push(CurrencyTotal {
            currency: currency.parse().ok()?,
            records: parse_canonical_decimal(records)?,
            total_minor: parse_canonical_decimal(total)?,
        });
    }
    check_totals(&totals).ok()?;
    Some(totals)
}

// ---------------------------------------------------------------------------------
// Lines
// ---------------------------------------------------------------------------------

/// The fields of a line, in order: a cursor over `key=value` pairs separated by single
/// spaces.
struct Fields<'a> {
    line: u64,
    rest: Option<&'a str>,
    last: &'static str,
}

impl<'a> Fields<'a> {
    fn new(line: u64, text: &'a str) -> Fields<'a> {
        Fields {
            line,
            rest: Some(text),
            last: "",
        }
    }

    /// The value of the next field, which must be `key`.
    fn take(&mut self, key: &'static str) -> Result<&'a str, BatchError> {
        let missing = |found: &str| BatchError::MissingField {
            line: self.line,
            field: key,
            found: excerpt(found, 32),
        };
        let Some(rest) = self.rest else {
            return Err(missing(""));
        };
        let (field, rest) = match rest.split_once(' ') {
            Some((field, rest)) => (field, Some(rest)),
            None => (rest, None),
        };
        let value = field
            .strip_prefix(key)
            .and_then(|after| after.strip_prefix('='))
            .ok_or_else(|| missing(field))?;
        self.rest = rest;
        self.last = key;
        Ok(value)
    }

    fn end(self) -> Result<(), BatchError> {
        match self.rest {
            None => Ok(()),
            Some(rest) => Err(BatchError::ExtraField {
                line: self.line,
                after: self.last,
                found: excerpt(rest, 32),
            }),
        }
    }

    fn invalid(&self, field: &'static str, expected: &'static str, found: &str) -> BatchError {
        let found = if field == "pan" {
            // A PAN shows its first six and last four digits at most; a value too
            // short or too long to be one shows nothing.
            if (12..=19).contains(&found.len()) && found.is_ascii() {
                mask_pan(found)
            } else {
                "*".repeat(found.chars().count().min(32))
            }
        } else {
            excerpt(found, 32)
        };
        BatchError::Field {
            line: self.line,
            field,
            expected,
            found,
        }
    }

    fn identifier(&mut self, key: &'static str) -> Result<String, BatchError> {
        let value = self.take(key)?;
        unescape_identifier(value).ok_or_else(|| self.invalid(key, IDENTIFIER, value))
    }

    fn decimal(
        &mut self,
        key: &'static str,
        expected: &'static str,
        max: u64,
    ) -> Result<u64, BatchError> {
        let value = self.take(key)?;
        parse_canonical_decimal(value)
            .filter(|number| *number <= max)
            .ok_or_else(|| self.invalid(key, expected, value))
    }

    fn parsed<T>(
        &mut self,
        key: &'static str,
        expected: &'static str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<T, BatchError> {
        let value = self.take(key)?;
        parse(value).ok_or_else(|| self.invalid(key, expected, value))
    }
}

fn encode_header(header: &BatchHeader) -> Result<String, (&'static str, &'static str)> {
    let acquirer = check_identifier(&header.acquirer.0).map_err(|e| ("acquirer", e))?;
    if header.number == 0 {
        return Err(("batch", "a batch number from 1"));
    }
    let sum = check_totals(&header.totals).map_err(|e| ("totals", e))?;
    if header.records == 0 || sum != header.records {
        return Err((
            "records",
            "at least 1, and the sum of the per-currency counts",
        ));
    }
    Ok(format!(
        "H format={FORMAT_NAME} version={FORMAT_VERSION} acquirer={acquirer} batch={} cut-off={} records={} totals={}\n",
        header.number,
        header.cut_off_at,
        header.records,
        encode_totals(&header.totals)
    ))
}

fn parse_header(line: u64, text: &str) -> Result<BatchHeader, BatchError> {
    let body = text
        .strip_prefix("H ")
        .ok_or_else(|| BatchError::UnexpectedLine {
            line,
            expected: "the header `H format=telepay-batch`",
            found: excerpt(text, 16),
        })?;
    let mut fields = Fields::new(line, body);
    fields.parsed("format", "telepay-batch", |v| {
        (v == FORMAT_NAME).then_some(())
    })?;
    let version = fields.take("version")?;
    if version != FORMAT_VERSION.to_string() {
        return Err(BatchError::UnsupportedVersion {
            line,
            found: excerpt(version, 16),
        });
    }
    let acquirer = AcquirerId::from(fields.identifier("acquirer")?);
    let number = fields.decimal("batch", "a batch number from 1", u64::MAX)?;
    if number == 0 {
        return Err(fields.invalid("batch", "a batch number from 1", "0"));
    }
    let cut_off_at = fields.parsed(
        "cut-off",
        "an RFC 3339 UTC time (2026-11-25T22:00:00Z)",
        parse_rfc3339_utc,
    )?;
    let records = fields.decimal("records", "a count from 1", u64::MAX)?;
    let totals = fields.parsed("totals", TOTALS, parse_totals)?;
    fields.end()?;
    let sum = check_totals(&totals).unwrap_or(0);
    if records == 0 || sum != records {
        return Err(BatchError::Field {
            line,
            field: "records",
            expected: "at least 1, and the sum of the per-currency counts",
            found: records.to_string(),
        });
    }
    Ok(BatchHeader {
        acquirer,
        number,
        cut_off_at,
        records,
        totals,
    })
}

/// The `R` line of a record, or the field that cannot be written and why.
fn encode_record(record: &BatchRecord) -> Result<String, (&'static str, &'static str)> {
    check_record(record)?;
    let payment = escape_identifier(&record.payment.0);
    let merchant = escape_identifier(&record.merchant.0);
    Ok(format!(
        "R payment={payment} merchant={merchant} pan={} psn={:02X} expiry={} atc={:04X} amount={} currency={:03} amount-other={} date={} type={:02X} country={} aid={} aip={} tvr={} un={} cid={:02X} cryptogram={} iad={} auth={}\n",
        record.pan,
        record.pan_sequence,
        record.expiry,
        record.atc,
        record.amount_minor,
        record.currency,
        hex::encode_upper(record.amount_other),
        hex::encode_upper(record.date),
        record.transaction_type,
        hex::encode_upper(record.terminal_country),
        hex::encode_upper(&record.aid),
        hex::encode_upper(record.aip),
        hex::encode_upper(record.tvr),
        hex::encode_upper(record.unpredictable_number),
        record.cid,
        hex::encode_upper(record.cryptogram),
        hex::encode_upper(&record.iad),
        record.authorisation_code,
    ))
}

const PAN: &str = "12 to 19 digits";
const AMOUNT: &str = "a decimal amount in minor units, at most 999999999999";
const AID: &str = "5 to 16 bytes in upper-case hex";
const IAD: &str = "0 to 32 bytes in upper-case hex";
const AUTH: &str = "6 letters or digits";

/// Checks that `record` can be written in a batch; `Err((field, expected))` names the
/// first field that cannot. The journal calls it before acknowledging a payment, so
/// that nothing it authorises is left unremittable.
pub fn check_record(record: &BatchRecord) -> Result<(), (&'static str, &'static str)> {
    check_fields(&RecordFields {
        payment: &record.payment.0,
        merchant: &record.merchant.0,
        pan: &record.pan,
        expiry: &record.expiry,
        amount_minor: record.amount_minor,
        currency: record.currency,
        amount_other: &record.amount_other,
        date: &record.date,
        transaction_type: record.transaction_type,
        terminal_country: &record.terminal_country,
        aid: &record.aid,
        iad: &record.iad,
        authorisation_code: &record.authorisation_code,
    })
}

/// The fields of a [`BatchRecord`] that [`check_record`] judges, borrowed: the journal
/// checks a transaction from its F and G without copying them into a record first.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordFields<'a> {
    /// [`BatchRecord::payment`].
    pub payment: &'a str,
    /// [`BatchRecord::merchant`].
    pub merchant: &'a str,
    /// [`BatchRecord::pan`].
    pub pan: &'a str,
    /// [`BatchRecord::expiry`].
    pub expiry: &'a str,
    /// [`BatchRecord::amount_minor`].
    pub amount_minor: u64,
    /// [`BatchRecord::currency`].
    pub currency: u16,
    /// [`BatchRecord::amount_other`].
    pub amount_other: &'a [u8; 6],
    /// [`BatchRecord::date`].
    pub date: &'a [u8; 3],
    /// [`BatchRecord::transaction_type`].
    pub transaction_type: u8,
    /// [`BatchRecord::terminal_country`].
    pub terminal_country: &'a [u8; 2],
    /// [`BatchRecord::aid`].
    pub aid: &'a [u8],
    /// [`BatchRecord::iad`].
    pub iad: &'a [u8],
    /// [`BatchRecord::authorisation_code`].
    pub authorisation_code: &'a str,
}

/// [`check_record`] on borrowed fields: the same rules, in the same order.
pub(crate) fn check_fields(record: &RecordFields<'_>) -> Result<(), (&'static str, &'static str)> {
    // The same rules as the line's writer applies, without writing it: the journal
    // calls this at every authorisation, and the line would be thrown away.
    check_identifier_length(record.payment).map_err(|e| ("payment", e))?;
    check_identifier_length(record.merchant).map_err(|e| ("merchant", e))?;
    if !(12..=19).contains(&record.pan.len()) || !record.pan.bytes().all(|b| b.is_ascii_digit()) {
        return Err(("pan", PAN));
    }
    if !is_digits(record.expiry, 6) {
        return Err(("expiry", "YYMMDD, 6 digits"));
    }
    if record.amount_minor > MAX_AMOUNT_MINOR {
        return Err(("amount", AMOUNT));
    }
    if record.currency > 999 {
        return Err(("currency", "3 digits"));
    }
    if !is_bcd(record.amount_other) {
        return Err(("amount-other", "12 digits (9F03, n12)"));
    }
    if !is_bcd(record.date) {
        return Err(("date", "6 digits YYMMDD (9A)"));
    }
    if !is_bcd(&[record.transaction_type]) {
        return Err(("type", "2 digits (9C)"));
    }
    if !is_bcd(record.terminal_country) {
        return Err(("country", "4 digits (9F1A, n3)"));
    }
    if !(5..=16).contains(&record.aid.len()) {
        return Err(("aid", AID));
    }
    if record.iad.len() > 32 {
        return Err(("iad", IAD));
    }
    if record.authorisation_code.len() != 6
        || !record
            .authorisation_code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric())
    {
        return Err(("auth", AUTH));
    }
    Ok(())
}

fn parse_record(line: u64, body: &str) -> Result<BatchRecord, BatchError> {
    let mut f = Fields::new(line, body);
    let payment = PaymentId::from(f.identifier("payment")?);
    let merchant = MerchantId::from(f.identifier("merchant")?);
    let pan = f.parsed("pan", PAN, |v| {
        ((12..=19).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_digit()))
            .then(|| v.to_owned())
    })?;
    let pan_sequence = f.parsed("psn", "1 byte in upper-case hex", |v| {
        parse_hex_array::<1>(v).map(|[b]| b)
    })?;
    let expiry = f.parsed("expiry", "YYMMDD, 6 digits", |v| {
        is_digits(v, 6).then(|| v.to_owned())
    })?;
    let atc = f.parsed("atc", "2 bytes in upper-case hex", |v| {
        parse_hex_array::<2>(v).map(u16::from_be_bytes)
    })?;
    let amount_minor = f.decimal("amount", AMOUNT, MAX_AMOUNT_MINOR)?;
    let currency = f.parsed("currency", "3 digits", |v| {
        if is_digits(v, 3) {
            v.parse().ok()
        } else {
            None
        }
    })?;
    let amount_other = f.parsed(
        "amount-other",
        "12 digits (9F03, n12)",
        parse_bcd_array::<6>,
    )?;
    let date = f.parsed("date", "6 digits YYMMDD (9A)", parse_bcd_array::<3>)?;
    let transaction_type = f.parsed("type", "2 digits (9C)", |v| {
        parse_bcd_array::<1>(v).map(|[b]| b)
    })?;
    let terminal_country = f.parsed("country", "4 digits (9F1A, n3)", parse_bcd_array::<2>)?;
    let aid = f.parsed("aid", AID, |v| {
        parse_upper_hex(v).filter(|aid| (5..=16).contains(&aid.len()))
    })?;
    let aip = f.parsed("aip", "2 bytes in upper-case hex", parse_hex_array::<2>)?;
    let tvr = f.parsed("tvr", "5 bytes in upper-case hex", parse_hex_array::<5>)?;
    let unpredictable_number = f.parsed("un", "4 bytes in upper-case hex", parse_hex_array::<4>)?;
    let cid = f.parsed("cid", "1 byte in upper-case hex", |v| {
        parse_hex_array::<1>(v).map(|[b]| b)
    })?;
    let cryptogram = f.parsed(
        "cryptogram",
        "8 bytes in upper-case hex",
        parse_hex_array::<8>,
    )?;
    let iad = f.parsed("iad", IAD, |v| {
        parse_upper_hex(v).filter(|iad| iad.len() <= 32)
    })?;
    let authorisation_code = f.parsed("auth", AUTH, |v| {
        (v.len() == 6 && v.bytes().all(|b| b.is_ascii_alphanumeric())).then(|| v.to_owned())
    })?;
    f.end()?;
    Ok(BatchRecord {
        payment,
        merchant,
        pan,
        pan_sequence,
        expiry,
        atc,
        amount_minor,
        currency,
        amount_other,
        date,
        transaction_type,
        terminal_country,
        aid,
        aip,
        tvr,
        unpredictable_number,
        cid,
        cryptogram,
        iad,
        authorisation_code,
    })
}

/// Running counts per currency, checked against the header as records come.
#[derive(Default)]
struct Tally {
    per_currency: BTreeMap<u16, (u64, u64)>,
    records: u64,
}

impl Tally {
    /// Adds a record; errors when the header does not allow it.
    fn add(
        &mut self,
        line: u64,
        header: &BatchHeader,
        currency: u16,
        amount: u64,
    ) -> Result<(), BatchError> {
        let records = self.records.saturating_add(1);
        if records > header.records {
            return Err(BatchError::CountMismatch {
                line,
                declared: header.records,
                actual: records,
            });
        }
        let declared = header
            .totals
            .iter()
            .find(|total| total.currency == currency)
            .map_or(0, |total| total.records);
        let entry = self.per_currency.entry(currency).or_insert((0, 0));
        let count = entry.0.saturating_add(1);
        if count > declared {
            return Err(BatchError::CurrencyCountMismatch {
                line,
                currency,
                declared,
                actual: count,
            });
        }
        let sum = entry
            .1
            .checked_add(amount)
            .ok_or(BatchError::TotalOverflow { line, currency })?;
        *entry = (count, sum);
        self.records = records;
        Ok(())
    }

    /// Checks the finished tally against `declared` (the header's or the trailer's).
    fn check(&self, line: u64, records: u64, declared: &[CurrencyTotal]) -> Result<(), BatchError> {
        if self.records != records {
            return Err(BatchError::CountMismatch {
                line,
                declared: records,
                actual: self.records,
            });
        }
        for total in declared {
            let (actual_records, actual_total) = self
                .per_currency
                .get(&total.currency)
                .copied()
                .unwrap_or((0, 0));
            if (actual_records, actual_total) != (total.records, total.total_minor) {
                return Err(BatchError::TotalMismatch {
                    line,
                    currency: total.currency,
                    declared_records: total.records,
                    declared_total: total.total_minor,
                    actual_records,
                    actual_total,
                });
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------
// Writer
// ---------------------------------------------------------------------------------

/// Writes a batch record by record: the header first (so its counts and totals must be
/// known, as they are once the journal has cut the batch off), then each record, then
/// [`BatchWriter::finish`] writes the trailer. Each record is checked against the
/// format and against the header as it is written; `finish` refuses a batch whose
/// records do not add up to the header.
pub struct BatchWriter<W: Write> {
    out: W,
    hash: Sha256,
    header: BatchHeader,
    tally: Tally,
    line: u64,
    bytes: u64,
}

impl<W: Write> BatchWriter<W> {
    /// Checks `header` and writes it to `out`.
    pub fn new(mut out: W, header: &BatchHeader) -> Result<BatchWriter<W>, BatchError> {
        let text = encode_header(header).map_err(|(field, expected)| BatchError::Unwritable {
            line: 1,
            field,
            expected,
        })?;
        out.write_all(text.as_bytes())
            .map_err(|source| BatchError::Write { line: 1, source })?;
        let mut hash = Sha256::new();
        hash.update(text.as_bytes());
        Ok(BatchWriter {
            out,
            hash,
            header: header.clone(),
            tally: Tally::default(),
            line: 1,
            bytes: text.len() as u64,
        })
    }

    /// Writes one record. Errors name the field the format cannot carry, or the count
    /// the header does not allow.
    pub fn write_record(&mut self, record: &BatchRecord) -> Result<(), BatchError> {
        let line = self.line.saturating_add(1);
        let text = encode_record(record).map_err(|(field, expected)| BatchError::Unwritable {
            line,
            field,
            expected,
        })?;
        self.tally
            .add(line, &self.header, record.currency, record.amount_minor)?;
        self.out
            .write_all(text.as_bytes())
            .map_err(|source| BatchError::Write { line, source })?;
        self.hash.update(text.as_bytes());
        self.line = line;
        self.bytes = self.bytes.saturating_add(text.len() as u64);
        Ok(())
    }

    /// Checks the records against the header, writes the trailer, flushes, and returns
    /// the trailer with the output.
    pub fn finish(self) -> Result<(W, BatchTrailer), BatchError> {
        self.finish_checked(None)
    }

    /// Like [`BatchWriter::finish`], but refuses to write the trailer unless the
    /// checksum is `expected`: a batch re-written after a crash must be the very bytes
    /// first cut, and without its trailer a changed one cannot be accepted anywhere.
    pub fn finish_expecting(self, expected: &[u8; 32]) -> Result<(W, BatchTrailer), BatchError> {
        self.finish_checked(Some(expected))
    }

    fn finish_checked(
        mut self,
        expected: Option<&[u8; 32]>,
    ) -> Result<(W, BatchTrailer), BatchError> {
        let line = self.line.saturating_add(1);
        self.tally
            .check(line, self.header.records, &self.header.totals)?;
        let checksum: [u8; 32] = self.hash.finalize().into();
        if let Some(expected) = expected
            && expected != &checksum
        {
            return Err(BatchError::ChecksumMismatch {
                line,
                declared: hex::encode(expected),
                computed: hex::encode(checksum),
            });
        }
        let text = format!(
            "T records={} totals={} sha256={}\n",
            self.header.records,
            encode_totals(&self.header.totals),
            hex::encode(checksum)
        );
        self.out
            .write_all(text.as_bytes())
            .and_then(|()| self.out.flush())
            .map_err(|source| BatchError::Write { line, source })?;
        let trailer = BatchTrailer {
            records: self.header.records,
            totals: self.header.totals,
            checksum,
            bytes: self.bytes.saturating_add(text.len() as u64),
        };
        Ok((self.out, trailer))
    }
}

// ---------------------------------------------------------------------------------
// Reader
// ---------------------------------------------------------------------------------

enum Line {
    /// A whole line, newline stripped.
    Text(String),
    /// End of input before any byte.
    End,
}

/// Reads one line of at most [`MAX_LINE_BYTES`], hashing its bytes into `hash` when
/// given. Checks every byte is printable ASCII or a space.
fn next_line<R: BufRead>(
    input: &mut R,
    buffer: &mut Vec<u8>,
    line: u64,
    hash: Option<&mut Sha256>,
) -> Result<Line, BatchError> {
    buffer.clear();
    let limit = MAX_LINE_BYTES as u64 + 1;
    let read = input
        .by_ref()
        .take(limit)
        .read_until(b'\n', buffer)
        .map_err(|source| BatchError::Read { line, source })?;
    if read == 0 {
        return Ok(Line::End);
    }
    if buffer.last() != Some(&b'\n') {
        return Err(if buffer.len() > MAX_LINE_BYTES {
            BatchError::LineTooLong {
                line,
                limit: MAX_LINE_BYTES,
            }
        } else {
            BatchError::UnterminatedLine { line }
        });
    }
    if let Some(hash) = hash {
        hash.update(&buffer[..]);
    }
    buffer.pop();
    if let Some((index, &byte)) = buffer
        .iter()
        .enumerate()
        .find(|(_, byte)| !(0x20..=0x7E).contains(*byte))
    {
        return Err(BatchError::InvalidByte {
            line,
            column: index + 1,
            byte,
        });
    }
    // Printable ASCII only, so this cannot fail; the error path keeps it panic-free.
    String::from_utf8(std::mem::take(buffer))
        .map(Line::Text)
        .map_err(|error| BatchError::InvalidByte {
            line,
            column: error.utf8_error().valid_up_to() + 1,
            byte: 0x80,
        })
}

/// Reads a batch from `input`, calling `on_record` for each record in order, and
/// verifies it whole: format, counts and totals against the header and the trailer,
/// and the trailer's SHA-256 over every preceding byte. Memory stays bounded by one
/// line whatever the batch's size.
///
/// `on_record` sees records before the batch is verified; a caller that acts on them
/// (the centre storing records) must do so only once this returns `Ok`.
pub fn read_batch<R: BufRead>(
    mut input: R,
    mut on_record: impl FnMut(&BatchRecord),
) -> Result<VerifiedBatch, BatchError> {
    let mut buffer = Vec::new();
    let mut hash = Sha256::new();
    let mut bytes: u64 = 0;
    let header_text = match next_line(&mut input, &mut buffer, 1, Some(&mut hash))? {
        Line::Text(text) => text,
        Line::End => {
            return Err(BatchError::Truncated {
                line: 1,
                expected: "the header `H`",
            });
        }
    };
    bytes = bytes.saturating_add(header_text.len() as u64 + 1);
    let header = parse_header(1, &header_text)?;
    let mut tally = Tally::default();
    let mut line: u64 = 1;
    loop {
        line = line.saturating_add(1);
        // The trailer is not part of its own checksum: hash a copy up to it.
        let before = hash.clone();
        let text = match next_line(&mut input, &mut buffer, line, Some(&mut hash))? {
            Line::Text(text) => text,
            Line::End => {
                return Err(BatchError::Truncated {
                    line,
                    expected: "a record `R` or the trailer `T`",
                });
            }
        };
        bytes = bytes.saturating_add(text.len() as u64 + 1);
        if let Some(body) = text.strip_prefix("R ") {
            let record = parse_record(line, body)?;
            tally.add(line, &header, record.currency, record.amount_minor)?;
            on_record(&record);
        } else if let Some(body) = text.strip_prefix("T ") {
            let trailer = parse_trailer(line, body, &header, &tally, before)?;
            let trailer = BatchTrailer { bytes, ..trailer };
            match next_line(&mut input, &mut buffer, line.saturating_add(1), None) {
                Ok(Line::End) => {}
                Err(error @ BatchError::Read { .. }) => return Err(error),
                Ok(Line::Text(_)) | Err(_) => {
                    return Err(BatchError::TrailingData {
                        line: line.saturating_add(1),
                    });
                }
            }
            return Ok(VerifiedBatch { header, trailer });
        } else {
            return Err(BatchError::UnexpectedLine {
                line,
                expected: "a record `R` or the trailer `T`",
                found: excerpt(&text, 16),
            });
        }
    }
}

fn parse_trailer(
    line: u64,
    body: &str,
    header: &BatchHeader,
    tally: &Tally,
    hash: Sha256,
) -> Result<BatchTrailer, BatchError> {
    let mut fields = Fields::new(line, body);
    let records = fields.decimal("records", "a count from 1", u64::MAX)?;
    let totals_text = fields.take("totals")?;
    let totals =
        parse_totals(totals_text).ok_or_else(|| fields.invalid("totals", TOTALS, totals_text))?;
    let declared = fields.parsed("sha256", "64 lower-case hex digits", |v| {
        if v.len() == 64 && v.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            let mut checksum = [0u8; 32];
            hex::decode_to_slice(v, &mut checksum).ok()?;
            Some(checksum)
        } else {
            None
        }
    })?;
    fields.end()?;
    // The records must add up to the header and to the trailer, which must agree.
    tally.check(line, header.records, &header.totals)?;
    if records != header.records {
        return Err(BatchError::TrailerDiffersFromHeader {
            line,
            field: "records",
            header: header.records.to_string(),
            trailer: records.to_string(),
        });
    }
    if totals != header.totals {
        return Err(BatchError::TrailerDiffersFromHeader {
            line,
            field: "totals",
            header: encode_totals(&header.totals),
            trailer: encode_totals(&totals),
        });
    }
    let computed: [u8; 32] = hash.finalize().into();
    if computed != declared {
        return Err(BatchError::ChecksumMismatch {
            line,
            declared: hex::encode(declared),
            computed: hex::encode(computed),
        });
    }
    Ok(BatchTrailer {
        records,
        totals,
        checksum: computed,
        bytes: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn record(payment: &str, amount: u64, currency: u16) -> BatchRecord {
        BatchRecord {
            payment: PaymentId::from(payment),
            merchant: MerchantId::from("FRONT-END"),
            pan: "4970100000000014".into(),
            pan_sequence: 0x01,
            expiry: "281231".into(),
            atc: 0x002A,
            amount_minor: amount,
            currency,
            amount_other: [0; 6],
            date: [0x26, 0x11, 0x25],
            transaction_type: 0x00,
            terminal_country: [0x02, 0x50],
            aid: hex::decode("A0000000421010").unwrap(),
            aip: [0x39, 0x00],
            tvr: [0; 5],
            unpredictable_number: [0x1A, 0x2B, 0x3C, 0x4D],
            cid: 0x80,
            cryptogram: [0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF],
            iad: hex::decode("06010A03A00000").unwrap(),
            authorisation_code: "A1B2C3".into(),
        }
    }

    fn header_for(records: &[BatchRecord]) -> BatchHeader {
        let mut totals: BTreeMap<u16, (u64, u64)> = BTreeMap::new();
        for record in records {
            let entry = totals.entry(record.currency).or_default();
            entry.0 += 1;
            entry.1 += record.amount_minor;
        }
        BatchHeader {
            acquirer: AcquirerId::from("ACQ-1"),
            number: 7,
            cut_off_at: Timestamp(1_795_644_000_000),
            records: records.len() as u64,
            totals: totals
                .into_iter()
                .map(|(currency, (records, total_minor))| CurrencyTotal {
                    currency,
                    records,
                    total_minor,
                })
                .collect(),
        }
    }

    fn write(header: &BatchHeader, records: &[BatchRecord]) -> Vec<u8> {
        let mut writer = BatchWriter::new(Vec::new(), header).unwrap();
        for record in records {
            writer.write_record(record).unwrap();
        }
        writer.finish().unwrap().0
    }

    fn sample() -> Vec<u8> {
        let records = [record("PAY-1", 1250, 978), record("PAY-2", 2500, 978)];
        write(&header_for(&records), &records)
    }

    fn read(bytes: &[u8]) -> Result<(VerifiedBatch, Vec<BatchRecord>), BatchError> {
        let mut records = Vec::new();
        let batch = read_batch(bytes, |record| records.push(record.clone()))?;
        Ok((batch, records))
    }

    /// The sample with line `n` (from 1) replaced, and the checksum fixed so that the
    /// replaced line's own error shows.
    fn with_line(n: usize, replacement: &str) -> Vec<u8> {
        let text = String::from_utf8(sample()).unwrap();
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        lines[n - 1] = replacement.to_owned();
        let body: String = lines[..lines.len() - 1]
            .iter()
            .map(|l| format!("{l}\n"))
            .collect();
        let trailer = lines.last().unwrap();
        let stem = trailer.rsplit_once("sha256=").unwrap().0;
        let checksum = hex::encode(Sha256::digest(body.as_bytes()));
        if n == lines.len() {
            return format!("{body}{replacement}\n").into_bytes();
        }
        format!("{body}{stem}sha256={checksum}\n").into_bytes()
    }

    #[test]
    fn a_batch_of_two_records_reads_as_written() {
        let bytes = sample();
        let text = String::from_utf8(bytes.clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "H format=telepay-batch version=1 acquirer=ACQ-1 batch=7 cut-off=2026-11-25T22:00:00Z records=2 totals=978:2:3750"
        );
        assert_eq!(
            lines[1],
            "R payment=PAY-1 merchant=FRONT-END pan=4970100000000014 psn=01 expiry=281231 atc=002A amount=1250 currency=978 amount-other=000000000000 date=261125 type=00 country=0250 aid=A0000000421010 aip=3900 tvr=0000000000 un=1A2B3C4D cid=80 cryptogram=0123456789ABCDEF iad=06010A03A00000 auth=A1B2C3"
        );
        let checksum = hex::encode(Sha256::digest(&bytes[..bytes.len() - lines[3].len() - 1]));
        assert_eq!(
            lines[3],
            format!("T records=2 totals=978:2:3750 sha256={checksum}")
        );
        let (batch, records) = read(&bytes).unwrap();
        assert_eq!(batch.header, header_for(&records));
        assert_eq!(batch.trailer.bytes, bytes.len() as u64);
        assert_eq!(hex::encode(batch.trailer.checksum), checksum);
        assert_eq!(
            records,
            [record("PAY-1", 1250, 978), record("PAY-2", 2500, 978)]
        );
    }

    #[test]
    fn identifiers_are_escaped_once_and_only_one_way() {
        assert_eq!(escape_identifier("PAY 1/é%"), "PAY%201/%C3%A9%25");
        assert_eq!(
            unescape_identifier("PAY%201/%C3%A9%25").as_deref(),
            Some("PAY 1/é%")
        );
        // Lower-case hex, an escaped plain character, a bad escape, invalid UTF-8, empty.
        for text in ["PAY%2f", "P%41Y", "PAY%2", "PAY%G0", "%FF", "", "PAY=1"] {
            assert_eq!(unescape_identifier(text), None, "{text}");
        }
        assert_eq!(
            unescape_identifier(&"a".repeat(255)).map(|s| s.len()),
            Some(255)
        );
        assert_eq!(unescape_identifier(&"a".repeat(256)), None);
    }

    #[test]
    fn rfc3339_times_have_one_spelling() {
        let cases: &[(&str, Option<i64>)] = &[
            ("2026-11-25T22:00:00Z", Some(1_795_644_000_000)),
            ("2026-11-25T22:00:00.250Z", Some(1_795_644_000_250)),
            ("1970-01-01T00:00:00Z", Some(0)),
            ("2024-02-29T00:00:00Z", Some(1_709_164_800_000)),
            ("2026-11-25T22:00:00.000Z", None), // zero milliseconds are not written
            ("2026-02-29T00:00:00Z", None),     // not a leap year
            ("2026-04-31T00:00:00Z", None),
            ("2026-11-25T24:00:00Z", None),
            ("2026-11-25T23:59:60Z", None),
            ("2026-11-25 22:00:00Z", None),
            ("2026-11-25T22:00:00+01:00", None),
            ("2026-11-25t22:00:00z", None),
            ("+026-11-25T22:00:00Z", None),
        ];
        for (text, millis) in cases {
            assert_eq!(parse_rfc3339_utc(text), millis.map(Timestamp), "{text}");
        }
    }

    #[test]
    fn each_malformed_line_gets_its_own_error() {
        let good = String::from_utf8(sample()).unwrap();
        let record_line = good.lines().nth(1).unwrap().to_owned();
        let cases: Vec<(usize, String, &str)> = vec![
            (1, "X format=telepay-batch".into(), "line 1: expected the header `H format=telepay-batch`, found a line starting \"X format=telepay…\""),
            (1, "H format=telepay-batch version=2 acquirer=A batch=1 cut-off=2026-11-25T22:00:00Z records=2 totals=978:2:3750".into(),
                "line 1: batch format version 2 is not supported (this build reads 1)"),
            (1, "H format=telepay-batch version=1 acquirer=ACQ-1 batch=0 cut-off=2026-11-25T22:00:00Z records=2 totals=978:2:3750".into(),
                "line 1: field `batch`: expected a batch number from 1, found \"0\""),
            (1, "H format=telepay-batch version=1 acquirer=ACQ-1 batch=07 cut-off=2026-11-25T22:00:00Z records=2 totals=978:2:3750".into(),
                "line 1: field `batch`: expected a batch number from 1, found \"07\""),
            (1, "H format=telepay-batch version=1 acquirer=ACQ-1 batch=7 records=2 totals=978:2:3750".into(),
                "line 1: expected field `cut-off=`, found \"records=2\""),
            (1, "H format=telepay-batch version=1 acquirer=ACQ-1 batch=7 cut-off=2026-11-25T22:00:00Z records=3 totals=978:2:3750".into(),
                "line 1: field `records`: expected at least 1, and the sum of the per-currency counts, found \"3\""),
            (1, "H format=telepay-batch version=1 acquirer=ACQ-1 batch=7 cut-off=2026-11-25T22:00:00Z records=2 totals=978:2:3750 extra=1".into(),
                "line 1: unexpected text after the last field `totals`: \"extra=1\""),
            (1, "H format=telepay-batch version=1 acquirer=ACQ-1 batch=7 cut-off=2026-11-25T22:00:00Z records=2 totals=978:1:1250,840:1:2500".into(),
                "line 1: field `totals`: expected currency:records:total entries, comma-separated, ascending currencies, at least one record each, found \"978:1:1250,840:1:2500\""),
            (2, record_line.replace("pan=4970100000000014", "pan=49701000000"),
                "line 2: field `pan`: expected 12 to 19 digits, found \"***********\""),
            (2, record_line.replace("pan=4970100000000014", "pan=49701000000000A4"),
                "line 2: field `pan`: expected 12 to 19 digits, found \"497010******00A4\""),
            (2, record_line.replace("atc=002A", "atc=002a"),
                "line 2: field `atc`: expected 2 bytes in upper-case hex, found \"002a\""),
            (2, record_line.replace("date=261125", "date=2611A5"),
                "line 2: field `date`: expected 6 digits YYMMDD (9A), found \"2611A5\""),
            (2, record_line.replace("amount=1250", "amount=1000000000000"),
                "line 2: field `amount`: expected a decimal amount in minor units, at most 999999999999, found \"1000000000000\""),
            (2, record_line.replace(" cid=80", ""),
                "line 2: expected field `cid=`, found \"cryptogram=0123456789ABCDEF\""),
            (2, record_line.replace("auth=A1B2C3", "auth=A1B2C"),
                "line 2: field `auth`: expected 6 letters or digits, found \"A1B2C\""),
            (2, record_line.replace("merchant=FRONT-END", "merchant=FRONT END"),
                "line 2: expected field `pan=`, found \"END\""),
            (2, record_line.replace("currency=978", "currency=840"),
                "line 2: currency 840: the header announces 0 records, found at least 1"),
            (2, format!("{record_line}  "), "line 2: unexpected text after the last field `auth`: \" \""),
            (2, "# a comment".into(), "line 2: expected a record `R` or the trailer `T`, found a line starting \"# a comment\""),
            (4, good.lines().nth(3).unwrap().replace("records=2", "records=3"),
                "line 4: the trailer's `records` is 3, the header's 2"),
            (4, good.lines().nth(3).unwrap().replace("978:2:3750", "978:2:3751"),
                "line 4: the trailer's `totals` is 978:2:3751, the header's 978:2:3750"),
        ];
        let (stem, sum) = good.lines().nth(3).unwrap().rsplit_once('=').unwrap();
        let upper = sum.to_uppercase();
        let upper_error = format!(
            "line 4: field `sha256`: expected 64 lower-case hex digits, found \"{}…\"",
            &upper[..32]
        );
        let tab = format!(
            "line 2, column {}: byte 0x09 is not allowed in a batch",
            record_line.len() + 1
        );
        let cases = cases
            .into_iter()
            .chain([(2, format!("{record_line}\t"), tab.as_str())])
            .chain([(4, format!("{stem}={upper}"), upper_error.as_str())]);
        for (line, replacement, expected) in cases {
            let error = read(&with_line(line, &replacement))
                .unwrap_err()
                .to_string();
            assert_eq!(error, expected, "{replacement}");
        }
    }

    #[test]
    fn amounts_that_do_not_add_up_are_refused() {
        // Header and trailer agree with each other but not with the records.
        let records = [record("PAY-1", 1250, 978), record("PAY-2", 2500, 978)];
        let mut header = header_for(&records);
        header.totals[0].total_minor = 3700;
        let mut writer = BatchWriter::new(Vec::new(), &header).unwrap();
        writer.write_record(&records[0]).unwrap();
        writer.write_record(&records[1]).unwrap();
        assert_eq!(
            writer.finish().unwrap_err().to_string(),
            "line 4: currency 978: declared 2 records totalling 3700, the records give 2 totalling 3750"
        );
        // Forge the same thing by hand, checksum right: the reader refuses it too.
        let forged = String::from_utf8(sample())
            .unwrap()
            .replace("978:2:3750", "978:2:3700");
        let body_end = forged.rfind("T ").unwrap();
        let checksum = hex::encode(Sha256::digest(&forged.as_bytes()[..body_end]));
        let forged = format!(
            "{}T records=2 totals=978:2:3700 sha256={checksum}\n",
            &forged[..body_end]
        );
        assert_eq!(
            read(forged.as_bytes()).unwrap_err().to_string(),
            "line 4: currency 978: declared 2 records totalling 3700, the records give 2 totalling 3750"
        );
    }

    #[test]
    fn the_writer_refuses_what_the_format_cannot_carry() {
        let good = record("PAY-1", 1250, 978);
        let header = header_for(std::slice::from_ref(&good));
        let cases: Vec<(BatchRecord, &str)> = vec![
            (
                BatchRecord {
                    pan: "4970".into(),
                    ..good.clone()
                },
                "line 2: field `pan` cannot be written: expected 12 to 19 digits",
            ),
            (
                BatchRecord {
                    payment: PaymentId::from(""),
                    ..good.clone()
                },
                "line 2: field `payment` cannot be written: expected 1 to 255 bytes",
            ),
            (
                BatchRecord {
                    date: [0x26, 0x1A, 0x01],
                    ..good.clone()
                },
                "line 2: field `date` cannot be written: expected 6 digits YYMMDD (9A)",
            ),
            (
                BatchRecord {
                    aid: vec![0xA0; 4],
                    ..good.clone()
                },
                "line 2: field `aid` cannot be written: expected 5 to 16 bytes",
            ),
            (
                BatchRecord {
                    iad: vec![0; 33],
                    ..good.clone()
                },
                "line 2: field `iad` cannot be written: expected 0 to 32 bytes",
            ),
            (
                BatchRecord {
                    authorisation_code: "A1 B2C".into(),
                    ..good.clone()
                },
                "line 2: field `auth` cannot be written: expected 6 letters or digits",
            ),
            (
                BatchRecord {
                    currency: 840,
                    ..good.clone()
                },
                "line 2: currency 840: the header announces 0 records, found at least 1",
            ),
        ];
        for (record, expected) in cases {
            let mut writer = BatchWriter::new(Vec::new(), &header).unwrap();
            let error = writer.write_record(&record).unwrap_err().to_string();
            assert!(
                error.starts_with(expected),
                "got: {error}\nwant: {expected}"
            );
        }
        let mut writer = BatchWriter::new(Vec::new(), &header).unwrap();
        writer.write_record(&good).unwrap();
        assert_eq!(
            writer.write_record(&good).unwrap_err().to_string(),
            "line 3: the header announces 1 records, the batch has 2"
        );
        let writer = BatchWriter::new(Vec::new(), &header).unwrap();
        assert_eq!(
            writer.finish().unwrap_err().to_string(),
            "line 2: the header announces 1 records, the batch has 0"
        );
    }

    /// `check_record` (what the journal asks at every authorisation) applies the
    /// writer's rules without writing: one row per rule, the first failing field and
    /// what it expects, exactly.
    #[test]
    fn check_record_names_the_field_the_writer_would_refuse() {
        let good = record("PAY-1", 1250, 978);
        type Change = fn(&mut BatchRecord);
        type Expected = Result<(), (&'static str, &'static str)>;
        let cases: [(&str, Change, Expected); 16] = [
            ("as is", |_| {}, Ok(())),
            (
                "identifiers the writer escapes",
                |r| {
                    r.payment = PaymentId::from("PAY 1%=é");
                    r.merchant = MerchantId::from("a\nb");
                },
                Ok(()),
            ),
            (
                "empty payment",
                |r| r.payment = PaymentId::from(""),
                Err(("payment", IDENTIFIER)),
            ),
            (
                "merchant of 256 bytes",
                |r| r.merchant = MerchantId::from("M".repeat(256)),
                Err(("merchant", IDENTIFIER)),
            ),
            (
                "PAN of 11 digits",
                |r| r.pan = "49701000000".into(),
                Err(("pan", PAN)),
            ),
            (
                "PAN with a letter",
                |r| r.pan = "497010000000001A".into(),
                Err(("pan", PAN)),
            ),
            (
                "expiry of 4 digits",
                |r| r.expiry = "2812".into(),
                Err(("expiry", "YYMMDD, 6 digits")),
            ),
            (
                "amount above 12 digits",
                |r| r.amount_minor = MAX_AMOUNT_MINOR + 1,
                Err(("amount", AMOUNT)),
            ),
            (
                "currency of 4 digits",
                |r| r.currency = 1000,
                Err(("currency", "3 digits")),
            ),
            (
                "amount other not BCD",
                |r| r.amount_other = [0, 0, 0, 0, 0, 0x0A],
                Err(("amount-other", "12 digits (9F03, n12)")),
            ),
            (
                "date not BCD",
                |r| r.date = [0x26, 0x1A, 0x01],
                Err(("date", "6 digits YYMMDD (9A)")),
            ),
            (
                "type not BCD",
                |r| r.transaction_type = 0xA0,
                Err(("type", "2 digits (9C)")),
            ),
            (
                "country not BCD",
                |r| r.terminal_country = [0x0F, 0x00],
                Err(("country", "4 digits (9F1A, n3)")),
            ),
            (
                "AID of 17 bytes",
                |r| r.aid = vec![0xA0; 17],
                Err(("aid", AID)),
            ),
            (
                "IAD of 33 bytes",
                |r| r.iad = vec![0; 33],
                Err(("iad", IAD)),
            ),
            (
                "code of 5",
                |r| r.authorisation_code = "A1B2C".into(),
                Err(("auth", AUTH)),
            ),
        ];
        for (case, change, expected) in cases {
            let mut record = good.clone();
            change(&mut record);
            assert_eq!(check_record(&record), expected, "{case}");
            // The writer refuses exactly what the check refuses.
            assert_eq!(encode_record(&record).map(|_| ()), expected, "{case}");
        }
    }

    #[test]
    fn every_truncation_is_refused() {
        let bytes = sample();
        for length in 0..bytes.len() {
            let error = read(&bytes[..length]).unwrap_err();
            assert!(
                matches!(
                    error,
                    BatchError::Truncated { .. } | BatchError::UnterminatedLine { .. }
                ),
                "{length}: {error}"
            );
        }
        let mut longer = bytes.clone();
        longer.extend_from_slice(b"R more\n");
        assert_eq!(
            read(&longer).unwrap_err().to_string(),
            "line 5: data after the trailer"
        );
    }

    #[test]
    fn every_single_byte_change_is_detected() {
        let bytes = sample();
        for position in 0..bytes.len() {
            for replacement in [b'0', b'1', b'A', b'a', b'=', b' ', b'\n', b'\r', 0x00, 0xC3] {
                if bytes[position] == replacement {
                    continue;
                }
                let mut changed = bytes.clone();
                changed[position] = replacement;
                assert!(
                    read(&changed).is_err(),
                    "byte {position} set to {replacement:#04x} went unnoticed"
                );
            }
        }
    }

    #[test]
    fn an_overlong_line_is_refused_without_reading_it_all() {
        let mut bytes = b"H ".to_vec();
        bytes.extend(std::iter::repeat_n(b'a', MAX_LINE_BYTES + 10));
        assert_eq!(
            read(&bytes).unwrap_err().to_string(),
            "line 1: longer than 65536 bytes"
        );
    }

    #[test]
    fn debug_masks_the_pan() {
        let text = format!("{:?}", record("PAY-1", 1, 978));
        assert!(text.contains("497010******0014"), "{text}");
        assert!(!text.contains("4970100000000014"), "{text}");
    }

    fn identifier() -> impl Strategy<Value = String> {
        prop_oneof![
            "[A-Za-z0-9._~:@+/-]{1,40}",
            "\\PC{1,20}",
            "[ %=é\u{1F600}a]{1,10}",
        ]
        .prop_filter("at most 255 bytes", |s| !s.is_empty() && s.len() <= 255)
    }

    fn bcd<const N: usize>() -> impl Strategy<Value = [u8; N]> {
        proptest::array::uniform::<_, N>((0u8..=9, 0u8..=9).prop_map(|(h, l)| (h << 4) | l))
    }

    prop_compose! {
        fn any_record()(
            payment in identifier(),
            merchant in identifier(),
            pan in "[0-9]{12,19}",
            pan_sequence in any::<u8>(),
            expiry in "[0-9]{6}",
            atc in any::<u16>(),
            amount_minor in 0..=MAX_AMOUNT_MINOR,
            currency in prop::sample::select(vec![978u16, 840, 392, 0, 999]),
            amount_other in bcd::<6>(),
            date in bcd::<3>(),
            transaction_type in bcd::<1>(),
            terminal_country in bcd::<2>(),
            aid in prop::collection::vec(any::<u8>(), 5..=16),
            aip in any::<[u8; 2]>(),
            tvr in any::<[u8; 5]>(),
            unpredictable_number in any::<[u8; 4]>(),
            cid in any::<u8>(),
            cryptogram in any::<[u8; 8]>(),
            iad in prop::collection::vec(any::<u8>(), 0..=32),
            authorisation_code in "[A-Za-z0-9]{6}",
        ) -> BatchRecord {
            BatchRecord {
                payment: PaymentId::from(payment), merchant: MerchantId::from(merchant), pan, pan_sequence,
                expiry, atc, amount_minor, currency, amount_other, date,
                transaction_type: transaction_type[0], terminal_country, aid, aip, tvr,
                unpredictable_number, cid, cryptogram, iad, authorisation_code,
            }
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
            let _ = read(&bytes);
        }

        #[test]
        fn arbitrary_lines_after_a_good_header_never_panic(
            lines in prop::collection::vec("[RT] [ -~]{0,200}", 0..5),
        ) {
            let good = String::from_utf8(sample()).unwrap();
            let mut text = format!("{}\n", good.lines().next().unwrap());
            for line in lines {
                text.push_str(&line);
                text.push('\n');
            }
            let _ = read(text.as_bytes());
        }

        #[test]
        fn generated_batches_round_trip(
            records in prop::collection::vec(any_record(), 1..20),
            number in 1u64..,
            acquirer in identifier(),
            cut_off in 0i64..253_402_300_799_999,
        ) {
            let mut header = header_for(&records);
            header.number = number;
            header.acquirer = AcquirerId::from(acquirer);
            header.cut_off_at = Timestamp(cut_off);
            let bytes = write(&header, &records);
            let (batch, read_records) = read(&bytes).unwrap();
            prop_assert_eq!(&batch.header, &header);
            prop_assert_eq!(&read_records, &records);
            prop_assert_eq!(batch.trailer.bytes, bytes.len() as u64);
            // One spelling: writing what was read gives the same bytes.
            prop_assert_eq!(write(&batch.header, &read_records), bytes);
        }

        #[test]
        fn any_single_byte_change_is_detected(
            records in prop::collection::vec(any_record(), 1..4),
            position in any::<prop::sample::Index>(),
            replacement in any::<u8>(),
        ) {
            let bytes = write(&header_for(&records), &records);
            let position = position.index(bytes.len());
            prop_assume!(bytes[position] != replacement);
            let mut changed = bytes.clone();
            changed[position] = replacement;
            prop_assert!(read(&changed).is_err());
        }
    }
}
