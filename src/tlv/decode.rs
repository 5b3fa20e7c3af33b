//! Human decoding of primitive values: by the dictionary's format (`n`, `cn`, `a`, `an`,
//! `ans`) and, for the data elements people look for in a dump, by their meaning: dates,
//! amounts, ISO 3166 / ISO 4217 codes, the bit fields of EMV Book 3 Annex C and Book 4
//! Annex A, CVM lists and results, AFLs and DOLs.
//!
//! Every decoder checks the value against the dictionary's length and format first and
//! gives `None` when it does not fit, so a caller falls back to hex instead of showing a
//! wrong reading.

use super::TagNumber;
use super::ber::{Tlv, tag_hex};
use super::codes;
use super::dictionary::{self, DOL_TAGS, Format, TAG_LIST_TAGS};
use super::dol::parse_dol;

/// What decoding amounts needs beyond the value itself: the currency and its exponent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecodeContext {
    /// ISO 4217 numeric code of the currency amounts are in (e.g. 978).
    pub currency: Option<u16>,
    /// Digits after the decimal point; when `None`, the currency's ISO 4217 minor unit,
    /// or 2 when the currency is unknown too.
    pub exponent: Option<u8>,
}

impl DecodeContext {
    /// The context a TLV tree gives: the Transaction Currency Code `5F2A` and Exponent
    /// `5F36`, else the Application Currency Code `9F42` and Exponent `9F44`.
    pub fn from_tlvs(tlvs: &[Tlv]) -> DecodeContext {
        let code = |tag| {
            super::ber::find(tlvs, tag)
                .and_then(Tlv::bytes)
                .and_then(bcd_number)
                .and_then(|n| u16::try_from(n).ok())
        };
        let exponent = |tag| {
            super::ber::find(tlvs, tag)
                .and_then(Tlv::bytes)
                .and_then(bcd_number)
                .and_then(|n| u8::try_from(n).ok())
        };
        if let Some(currency) = code(0x5F2A) {
            DecodeContext {
                currency: Some(currency),
                exponent: exponent(0x5F36),
            }
        } else if let Some(currency) = code(0x9F42) {
            DecodeContext {
                currency: Some(currency),
                exponent: exponent(0x9F44),
            }
        } else {
            DecodeContext::default()
        }
    }

    fn exponent(&self) -> u8 {
        self.exponent
            .or_else(|| {
                self.currency
                    .and_then(codes::currency)
                    .and_then(|c| c.minor_unit)
            })
            .unwrap_or(2)
    }

    fn currency_suffix(&self) -> String {
        self.currency
            .and_then(codes::currency)
            .map(|c| format!(" {}", c.alpha))
            .unwrap_or_default()
    }
}

/// Human decoding of a primitive value by the dictionary ("2025-12-31", "EUR (978)",
/// "12.50 EUR" when possible, named bits for AIP/AUC/TVR/CVM results/terminal
/// capabilities/CVM list, text for an/ans); None when the tag is unknown or the value
/// does not fit its format (then show hex).
///
/// Amounts are read with no currency and an exponent of 2 (the most common one); use
/// [`decode_value_with`] and a [`DecodeContext`] to name the currency.
pub fn decode_value(tag: TagNumber, value: &[u8]) -> Option<String> {
    decode_value_with(tag, value, &DecodeContext::default())
}

/// [`decode_value`] with the currency context amounts need.
pub fn decode_value_with(tag: TagNumber, value: &[u8], ctx: &DecodeContext) -> Option<String> {
    let info = dictionary::lookup(tag)?;
    if !info.length_fits(value.len()) {
        return None;
    }
    if DOL_TAGS.contains(&tag) {
        return dol_list(value);
    }
    if TAG_LIST_TAGS.contains(&tag) {
        return tag_list(value);
    }
    match tag {
        0x5F24 | 0x5F25 | 0x9A => date(value),
        0x9F21 => time(value),
        0x9F02 | 0x9F03 | 0x9F50 | 0xDF8104 | 0xDF8105 | 0xDF8123 | 0xDF8124 | 0xDF8125
        | 0xDF8126 => bcd_number(value).map(|n| amount(u128::from(n), ctx)),
        0x81 | 0x9F04 | 0x9F1B | 0x9F3A => binary_number(value).map(|n| amount(n, ctx)),
        0x5F28 | 0x9F1A => country(value),
        0x5F2A | 0x9F42 | 0x9F3C => currency(value),
        0x9F3B => list_of(value, 2, currency),
        0x9F43 => list_of(value, 1, digits),
        0x5F55 | 0x5F56 => alpha_country(value),
        0x5F2D => languages(value),
        0x57 | 0x9F6B => track2(value),
        0x82 => bit_names(value, AIP),
        0x9F07 => bit_names(value, AUC),
        0x95 | 0x9F0D | 0x9F0E | 0x9F0F | 0xDF8120 | 0xDF8121 | 0xDF8122 => bit_names(value, TVR),
        0x9B => bit_names(value, TSI),
        0x9F33 => bit_names(value, TERMINAL_CAPABILITIES),
        0x9F40 => bit_names(value, ADDITIONAL_TERMINAL_CAPABILITIES),
        // In a C-2 card record 9F66 is the 2-byte PUNATC(Track2): only 4 bytes are a TTQ.
        0x9F66 if value.len() == 4 => bit_names(value, TTQ),
        // C-2 reuses 9F6C for a version number: read it as a CTQ only when no RFU bit is
        // set, and say which reading this is.
        0x9F6C if only_named_bits(value, CTQ) => {
            bit_names(value, CTQ).map(|b| format!("as C-3 CTQ: {b}"))
        }
        0x8E => cvm_list(value, ctx),
        0x9F34 => cvm_results(value),
        0x9F27 => cryptogram_information(value),
        0x87 => priority_indicator(value),
        0x88 => single_byte(value).map(|sfi| format!("SFI {sfi}")),
        0x94 => afl(value),
        0x9F4D => log_entry(value),
        0x9C => transaction_type(value),
        0x9F35 => terminal_type(value),
        0x9F39 => pos_entry_mode(value),
        0x9F11 => code_table(value),
        0x5F57 => account_type(value),
        0x8A => response_code(value),
        // Counters and limits held as binary numbers.
        0x9F36 | 0x9F13 | 0x9F14 | 0x9F23 => binary_number(value).map(|n| n.to_string()),
        // BIC and IBAN are "var." in Annex A but written as letters and digits.
        0x5F53 | 0x5F54 => text(value, |c| c.is_ascii_alphanumeric()),
        0x9F17 => single_byte(value).map(|n| format!("{n} tries left")),
        _ => by_format(info.format, value),
    }
}

/// Whether the decoding of `tag` already shows its value, so a reader needs no hex beside
/// it: text (`a`, `an`, `ans`), DOLs and tag lists, and codes decoded as `EUR (978)`.
pub fn decoding_shows_value(tag: TagNumber) -> bool {
    DOL_TAGS.contains(&tag)
        || TAG_LIST_TAGS.contains(&tag)
        || matches!(
            tag,
            0x5F28 | 0x9F1A | 0x5F2A | 0x9F42 | 0x9F3C | 0x9F3B | 0x5F53 | 0x5F54
        )
        || dictionary::lookup(tag).is_some_and(|i| {
            matches!(
                i.format,
                Format::Alpha | Format::AlphaNumeric | Format::AlphaNumericSpecial
            )
        })
}

/// Decoding by format alone, for elements without a meaning of their own here.
fn by_format(format: Format, value: &[u8]) -> Option<String> {
    match format {
        Format::Numeric => digits(value),
        Format::CompressedNumeric => compressed_digits(value),
        Format::Alpha => text(value, |c| c.is_ascii_alphabetic()),
        Format::AlphaNumeric => text(value, |c| c.is_ascii_alphanumeric()),
        Format::AlphaNumericSpecial => text(value, |c| (0x20..=0x7E).contains(&c)),
        Format::Binary | Format::Variable => None,
    }
}

// ---- numbers -----------------------------------------------------------------------

/// The digits of `n` BCD (EMV Book 3 §4.3: two digits per byte, right-justified, leading
/// zeros kept); `None` if a nibble is above 9.
pub fn digits(value: &[u8]) -> Option<String> {
    let mut out = String::with_capacity(value.len().saturating_mul(2));
    for nibble in nibbles(value) {
        out.push(char::from_digit(u32::from(nibble), 10)?);
    }
    Some(out)
}

/// The digits of `cn` BCD (EMV Book 3 §4.3: left-justified, padded with trailing `F`);
/// `None` if a digit follows the padding or a nibble is `A`–`E`.
pub fn compressed_digits(value: &[u8]) -> Option<String> {
    let mut out = String::with_capacity(value.len().saturating_mul(2));
    let mut padding = false;
    for nibble in nibbles(value) {
        if nibble == 0xF {
            padding = true;
        } else if padding {
            return None;
        } else {
            out.push(char::from_digit(u32::from(nibble), 10)?);
        }
    }
    Some(out)
}

/// An `n` value as a number; `None` if not BCD or wider than 19 digits.
pub fn bcd_number(value: &[u8]) -> Option<u64> {
    let d = digits(value)?;
    if d.is_empty() || d.len() > 19 {
        return None;
    }
    d.parse().ok()
}

/// A big-endian binary value as a number; `None` if wider than 16 bytes.
fn binary_number(value: &[u8]) -> Option<u128> {
    if value.len() > 16 {
        return None;
    }
    Some(
        value
            .iter()
            .fold(0u128, |acc, &b| (acc << 8) | u128::from(b)),
    )
}

fn nibbles(value: &[u8]) -> impl Iterator<Item = u8> + '_ {
    value.iter().flat_map(|b| [b >> 4, b & 0x0F])
}

fn single_byte(value: &[u8]) -> Option<u8> {
    match value {
        [b] => Some(*b),
        _ => None,
    }
}

/// An amount in minor units shown with the context's exponent and currency ("12.50 EUR").
fn amount(minor: u128, ctx: &DecodeContext) -> String {
    let exponent = usize::from(ctx.exponent());
    let mut s = minor.to_string();
    if exponent > 0 {
        // Pad to at least one digit before the point: 5 with exponent 2 is "0.05".
        let width = exponent.saturating_add(1);
        if s.len() < width {
            s = format!("{}{s}", "0".repeat(width.saturating_sub(s.len())));
        }
        s.insert(s.len().saturating_sub(exponent), '.');
    }
    format!("{s}{}", ctx.currency_suffix())
}

// ---- dates, codes, text --------------------------------------------------------------

/// `YYMMDD` (n 6) as `YYYY-MM-DD`, the century by EMV Book 4's date management rule
/// (YY 00–49 is 20YY, 50–99 is 19YY); `None` for an impossible date.
pub fn date(value: &[u8]) -> Option<String> {
    let [yy, mm, dd] = bcd_pairs::<3>(value)?;
    let year = if yy < 50 { 2000 + yy } else { 1900 + yy };
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match mm {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    (1..=days)
        .contains(&dd)
        .then(|| format!("{year:04}-{mm:02}-{dd:02}"))
}

/// `HHMMSS` (n 6) as `HH:MM:SS`.
fn time(value: &[u8]) -> Option<String> {
    let [h, m, s] = bcd_pairs::<3>(value)?;
    (h < 24 && m < 60 && s < 60).then(|| format!("{h:02}:{m:02}:{s:02}"))
}

/// `N` bytes of two BCD digits each, as numbers 0–99.
fn bcd_pairs<const N: usize>(value: &[u8]) -> Option<[u16; N]> {
    let bytes: &[u8; N] = value.try_into().ok()?;
    let mut out = [0u16; N];
    for (o, &b) in out.iter_mut().zip(bytes) {
        let (hi, lo) = (b >> 4, b & 0x0F);
        if hi > 9 || lo > 9 {
            return None;
        }
        *o = u16::from(hi) * 10 + u16::from(lo);
    }
    Some(out)
}

fn numeric_code(value: &[u8]) -> Option<u16> {
    bcd_number(value).and_then(|n| u16::try_from(n).ok())
}

/// An ISO 3166-1 numeric country code (n 3) by name: `France (250)`.
fn country(value: &[u8]) -> Option<String> {
    let code = numeric_code(value)?;
    codes::country(code).map(|c| named_code(c.name, code))
}

/// An ISO 4217 numeric currency code (n 3) by name: `EUR (978)`.
fn currency(value: &[u8]) -> Option<String> {
    let code = numeric_code(value)?;
    codes::currency(code).map(|c| named_code(c.alpha, code))
}

/// `name (code)`, the code in at least three digits: what `format!("{name}
/// ({code:03})")` writes, without the formatting machinery (every card read decodes
/// the issuer's country and currency).
fn named_code(name: &str, code: u16) -> String {
    let mut out = String::with_capacity(name.len().saturating_add(7));
    out.push_str(name);
    out.push_str(" (");
    let digit = |divisor: u16| char::from_digit(u32::from(code / divisor % 10), 10).unwrap_or('0');
    if code >= 1000 {
        out.push(digit(1000));
    }
    for divisor in [100, 10, 1] {
        out.push(digit(divisor));
    }
    out.push(')');
    out
}

/// An ISO 3166-1 alpha-2 or alpha-3 code (a 2 / a 3), with the country's name when known.
fn alpha_country(value: &[u8]) -> Option<String> {
    let quoted = text(value, |c| c.is_ascii_alphabetic())?;
    let code = String::from_utf8_lossy(value).to_ascii_uppercase();
    Some(match codes::country_by_alpha(&code) {
        Some(c) => format!("{quoted} ({})", c.name),
        None => quoted,
    })
}

/// Language Preference (an 2–8): up to four ISO 639-1 codes, most preferred first.
fn languages(value: &[u8]) -> Option<String> {
    if !value.len().is_multiple_of(2) {
        return None;
    }
    let codes = value
        .chunks_exact(2)
        .map(|c| {
            c.iter()
                .all(u8::is_ascii_alphabetic)
                .then(|| String::from_utf8_lossy(c).to_ascii_lowercase())
        })
        .collect::<Option<Vec<_>>>()?;
    Some(codes.join(", "))
}

/// Text of a single-byte character format, quoted; `None` if a byte is not allowed.
fn text(value: &[u8], allowed: impl Fn(u8) -> bool) -> Option<String> {
    value
        .iter()
        .all(|&c| allowed(c))
        .then(|| format!("{:?}", String::from_utf8_lossy(value)))
}

/// A list of fixed-width elements each decoded by `each`, comma-separated.
fn list_of(value: &[u8], width: usize, each: fn(&[u8]) -> Option<String>) -> Option<String> {
    if value.is_empty() || !value.len().is_multiple_of(width) {
        return None;
    }
    let items = value
        .chunks_exact(width)
        .map(each)
        .collect::<Option<Vec<_>>>()?;
    Some(items.join(", "))
}

/// Track 2 Equivalent Data (EMV Book 3 Annex A, ISO/IEC 7813): PAN, separator `D`,
/// expiry YYMM, service code, discretionary data, padded with `F`; shown with `=` as
/// the separator, the way track 2 is written.
fn track2(value: &[u8]) -> Option<String> {
    let mut out = String::with_capacity(value.len().saturating_mul(2));
    let mut padding = false;
    for nibble in nibbles(value) {
        match nibble {
            0..=9 if !padding => out.push(char::from(b'0' + nibble)),
            0xD if !padding => out.push('='),
            0xF => padding = true,
            _ => return None,
        }
    }
    out.contains('=').then_some(out)
}

// ---- bit fields ----------------------------------------------------------------------

/// One named bit: byte (1-based, as the books count), bit (8 = most significant), name.
type Bit = (usize, u8, &'static str);

/// The names of the set bits of `value` per `table`, `; `-separated; a set bit the table
/// does not name is shown as `byte B bit b (RFU)`; `no bit set` when all are clear.
fn bit_names(value: &[u8], table: &[Bit]) -> Option<String> {
    let mut names = Vec::new();
    for (i, byte) in value.iter().enumerate() {
        for bit in (1..=8u8).rev() {
            if byte & (1 << (bit - 1)) == 0 {
                continue;
            }
            let known = table
                .iter()
                .find(|(b, n, _)| *b == i + 1 && *n == bit)
                .map(|(_, _, name)| (*name).to_string());
            names.push(known.unwrap_or_else(|| format!("byte {} bit {bit} (RFU)", i + 1)));
        }
    }
    if names.is_empty() {
        Some("no bit set".to_string())
    } else {
        Some(names.join("; "))
    }
}

/// Whether every set bit of `value` is named in `table`.
fn only_named_bits(value: &[u8], table: &[Bit]) -> bool {
    value.iter().enumerate().all(|(i, byte)| {
        (1..=8u8).all(|bit| {
            byte & (1 << (bit - 1)) == 0 || table.iter().any(|(b, n, _)| *b == i + 1 && *n == bit)
        })
    })
}

/// Application Interchange Profile, EMV Book 3 Annex C1 (Table 37); byte 1 bit 2 and
/// byte 2 bits 8 and 1 as EMV Book C-2 assigns them.
const AIP: &[Bit] = &[
    (1, 7, "SDA supported"),
    (1, 6, "DDA supported"),
    (1, 5, "cardholder verification supported"),
    (1, 4, "terminal risk management to be performed"),
    (1, 3, "issuer authentication supported"),
    (1, 2, "on-device cardholder verification supported (C-2)"),
    (1, 1, "CDA supported"),
    (2, 8, "EMV mode supported (C-2)"),
    (2, 1, "relay resistance protocol supported (C-2)"),
];

/// Application Usage Control, EMV Book 3 Annex C2 (Table 38).
const AUC: &[Bit] = &[
    (1, 8, "valid for domestic cash transactions"),
    (1, 7, "valid for international cash transactions"),
    (1, 6, "valid for domestic goods"),
    (1, 5, "valid for international goods"),
    (1, 4, "valid for domestic services"),
    (1, 3, "valid for international services"),
    (1, 2, "valid at ATMs"),
    (1, 1, "valid at terminals other than ATMs"),
    (2, 8, "domestic cashback allowed"),
    (2, 7, "international cashback allowed"),
];

/// Terminal Verification Results, EMV Book 3 Annex C5 (Table 42); byte 5 bits 4–1 as
/// EMV Book C-2 assigns them. Issuer and Terminal Action Codes share the layout.
const TVR: &[Bit] = &[
    (1, 8, "offline data authentication was not performed"),
    (1, 7, "SDA failed"),
    (1, 6, "ICC data missing"),
    (1, 5, "card appears on terminal exception file"),
    (1, 4, "DDA failed"),
    (1, 3, "CDA failed"),
    (1, 2, "SDA selected"),
    (2, 8, "ICC and terminal have different application versions"),
    (2, 7, "expired application"),
    (2, 6, "application not yet effective"),
    (2, 5, "requested service not allowed for card product"),
    (2, 4, "new card"),
    (3, 8, "cardholder verification was not successful"),
    (3, 7, "unrecognised CVM"),
    (3, 6, "PIN try limit exceeded"),
    (
        3,
        5,
        "PIN entry required and PIN pad not present or not working",
    ),
    (
        3,
        4,
        "PIN entry required, PIN pad present, but PIN was not entered",
    ),
    (3, 3, "online PIN entered"),
    (4, 8, "transaction exceeds floor limit"),
    (4, 7, "lower consecutive offline limit exceeded"),
    (4, 6, "upper consecutive offline limit exceeded"),
    (4, 5, "transaction selected randomly for online processing"),
    (4, 4, "merchant forced transaction online"),
    (5, 8, "default TDOL used"),
    (5, 7, "issuer authentication failed"),
    (5, 6, "script processing failed before final GENERATE AC"),
    (5, 5, "script processing failed after final GENERATE AC"),
    (5, 4, "relay resistance threshold exceeded (C-2)"),
    (5, 3, "relay resistance time limits exceeded (C-2)"),
    (5, 2, "relay resistance performed (C-2)"),
    (5, 1, "relay resistance not performed / not supported (C-2)"),
];

/// Transaction Status Information, EMV Book 3 Annex C6 (Table 43).
const TSI: &[Bit] = &[
    (1, 8, "offline data authentication was performed"),
    (1, 7, "cardholder verification was performed"),
    (1, 6, "card risk management was performed"),
    (1, 5, "issuer authentication was performed"),
    (1, 4, "terminal risk management was performed"),
    (1, 3, "script processing was performed"),
];

/// Terminal Capabilities, EMV Book 4 Annex A2 (Tables 25–27).
const TERMINAL_CAPABILITIES: &[Bit] = &[
    (1, 8, "manual key entry"),
    (1, 7, "magnetic stripe"),
    (1, 6, "IC with contacts"),
    (2, 8, "plaintext PIN for ICC verification"),
    (2, 7, "enciphered PIN for online verification"),
    (2, 6, "signature (paper)"),
    (2, 5, "enciphered PIN for offline verification"),
    (2, 4, "no CVM required"),
    (3, 8, "SDA"),
    (3, 7, "DDA"),
    (3, 6, "card capture"),
    (3, 4, "CDA"),
];

/// Additional Terminal Capabilities, EMV Book 4 Annex A3 (Tables 28–32).
const ADDITIONAL_TERMINAL_CAPABILITIES: &[Bit] = &[
    (1, 8, "cash"),
    (1, 7, "goods"),
    (1, 6, "services"),
    (1, 5, "cashback"),
    (1, 4, "inquiry"),
    (1, 3, "transfer"),
    (1, 2, "payment"),
    (1, 1, "administrative"),
    (2, 8, "cash deposit"),
    (3, 8, "numeric keys"),
    (3, 7, "alphabetic and special characters keys"),
    (3, 6, "command keys"),
    (3, 5, "function keys"),
    (4, 8, "print, attendant"),
    (4, 7, "print, cardholder"),
    (4, 6, "display, attendant"),
    (4, 5, "display, cardholder"),
    (4, 2, "code table 10"),
    (4, 1, "code table 9"),
    (5, 8, "code table 8"),
    (5, 7, "code table 7"),
    (5, 6, "code table 6"),
    (5, 5, "code table 5"),
    (5, 4, "code table 4"),
    (5, 3, "code table 3"),
    (5, 2, "code table 2"),
    (5, 1, "code table 1"),
];

/// Terminal Transaction Qualifiers, EMV Book C-3 Annex A.
const TTQ: &[Bit] = &[
    (1, 8, "mag-stripe mode supported"),
    (1, 6, "EMV mode supported"),
    (1, 5, "EMV contact chip supported"),
    (1, 4, "offline-only reader"),
    (1, 3, "online PIN supported"),
    (1, 2, "signature supported"),
    (
        1,
        1,
        "offline data authentication for online authorizations supported",
    ),
    (2, 8, "online cryptogram required"),
    (2, 7, "CVM required"),
    (2, 6, "(contact chip) offline PIN supported"),
    (3, 8, "issuer update processing supported"),
    (3, 7, "consumer device CVM supported"),
];

/// Card Transaction Qualifiers, EMV Book C-3 Annex A.
const CTQ: &[Bit] = &[
    (1, 8, "online PIN required"),
    (1, 7, "signature required"),
    (
        1,
        6,
        "go online if offline data authentication fails and reader is online capable",
    ),
    (
        1,
        5,
        "switch interface if offline data authentication fails and reader supports contact chip",
    ),
    (1, 4, "go online if application expired"),
    (1, 3, "switch interface for cash transactions"),
    (1, 2, "switch interface for cashback transactions"),
    (2, 8, "consumer device CVM performed"),
    (2, 7, "card supports issuer update processing at the POS"),
];

// ---- CVM ----------------------------------------------------------------------------

/// The method of a CVM code (byte 1 of a CV Rule), EMV Book 3 Annex C3 (Table 39).
fn cvm_method(code: u8) -> String {
    match code & 0x3F {
        0x00 => "fail CVM processing".to_string(),
        0x01 => "plaintext PIN verification performed by ICC".to_string(),
        0x02 => "enciphered PIN verified online".to_string(),
        0x03 => "plaintext PIN verification performed by ICC and signature (paper)".to_string(),
        0x04 => "enciphered PIN verification performed by ICC".to_string(),
        0x05 => "enciphered PIN verification performed by ICC and signature (paper)".to_string(),
        0x1E => "signature (paper)".to_string(),
        0x1F => "no CVM required".to_string(),
        0x3F => "no CVM performed".to_string(),
        m @ 0x20..=0x2F => format!("method {m:02X} (payment system)"),
        m @ 0x30..=0x3E => format!("method {m:02X} (issuer)"),
        m => format!("method {m:02X} (RFU)"),
    }
}

/// The condition of a CV Rule (byte 2), EMV Book 3 Annex C3 (Table 40).
fn cvm_condition(code: u8, x: &str, y: &str) -> String {
    match code {
        0x00 => "always".to_string(),
        0x01 => "if unattended cash".to_string(),
        0x02 => {
            "if not unattended cash and not manual cash and not purchase with cashback".to_string()
        }
        0x03 => "if terminal supports the CVM".to_string(),
        0x04 => "if manual cash".to_string(),
        0x05 => "if purchase with cashback".to_string(),
        0x06 => format!("if transaction in application currency and under X ({x})"),
        0x07 => format!("if transaction in application currency and over X ({x})"),
        0x08 => format!("if transaction in application currency and under Y ({y})"),
        0x09 => format!("if transaction in application currency and over Y ({y})"),
        c @ 0x80..=0xFF => format!("condition {c:02X} (payment system)"),
        c => format!("condition {c:02X} (RFU)"),
    }
}

/// CVM List (`8E`), EMV Book 3 §10.5 and Annex C3: amount X, amount Y (binary, in the
/// application currency), then two-byte CV Rules; bit 7 of a rule's first byte says
/// whether to try the next rule when this one fails.
fn cvm_list(value: &[u8], ctx: &DecodeContext) -> Option<String> {
    let (x, rest) = value.split_at_checked(4)?;
    let (y, rules) = rest.split_at_checked(4)?;
    if rules.is_empty() || !rules.len().is_multiple_of(2) {
        return None;
    }
    let x = amount(binary_number(x)?, ctx);
    let y = amount(binary_number(y)?, ctx);
    let mut parts = vec![format!("X={x}, Y={y}")];
    for rule in rules.chunks_exact(2) {
        if let [method, condition] = rule {
            let on_fail = if method & 0x40 != 0 {
                "else next rule"
            } else {
                "else fail"
            };
            parts.push(format!(
                "{}, {}, {on_fail}",
                cvm_method(*method),
                cvm_condition(*condition, &x, &y)
            ));
        }
    }
    Some(parts.join("; "))
}

/// CVM Results (`9F34`), EMV Book 4 Annex A4: method, condition, result.
fn cvm_results(value: &[u8]) -> Option<String> {
    let [method, condition, result] = <[u8; 3]>::try_from(value).ok()?;
    let result = match result {
        0x00 => "unknown".to_string(),
        0x01 => "failed".to_string(),
        0x02 => "successful".to_string(),
        r => format!("result {r:02X} (RFU)"),
    };
    Some(format!(
        "{}; {}; {result}",
        cvm_method(method),
        cvm_condition(condition, "X", "Y")
    ))
}

// ---- others -------------------------------------------------------------------------

/// Cryptogram Information Data (`9F27`), EMV Book 3 §6.5.5.4 (Table 15).
fn cryptogram_information(value: &[u8]) -> Option<String> {
    let b = single_byte(value)?;
    let mut parts = vec![
        match b >> 6 {
            0 => "AAC",
            1 => "TC",
            2 => "ARQC",
            _ => "RFU cryptogram type",
        }
        .to_string(),
    ];
    if b & 0x30 != 0 {
        parts.push(format!("payment system bits {}", (b >> 4) & 0x03));
    }
    if b & 0x08 != 0 {
        parts.push("advice required".to_string());
    }
    match b & 0x07 {
        0 => {}
        1 => parts.push("service not allowed".to_string()),
        2 => parts.push("PIN try limit exceeded".to_string()),
        3 => parts.push("issuer authentication failed".to_string()),
        r => parts.push(format!("reason {r} (RFU)")),
    }
    Some(parts.join("; "))
}

/// Application Priority Indicator (`87`), EMV Book 1 §12.2.3 (Table 13): bit 8 asks for
/// cardholder confirmation, bits 4–1 are the priority (0 = none assigned).
fn priority_indicator(value: &[u8]) -> Option<String> {
    let b = single_byte(value)?;
    let priority = match b & 0x0F {
        0 => "no priority assigned".to_string(),
        p => format!("priority {p}"),
    };
    Some(if b & 0x80 != 0 {
        format!("{priority}, cardholder confirmation required")
    } else {
        priority
    })
}

/// Application File Locator (`94`), EMV Book 3 §10.2: four bytes per file: SFI in bits
/// 8–4, first record, last record, number of records used for offline data
/// authentication.
fn afl(value: &[u8]) -> Option<String> {
    if value.is_empty() || !value.len().is_multiple_of(4) {
        return None;
    }
    let entries = value
        .chunks_exact(4)
        .map(|e| match e {
            [sfi, first, last, oda] if sfi & 0x07 == 0 && first <= last && *first > 0 => {
                let records = if first == last {
                    format!("record {first}")
                } else {
                    format!("records {first}-{last}")
                };
                Some(format!(
                    "SFI {} {records} ({oda} for offline data authentication)",
                    sfi >> 3
                ))
            }
            _ => None,
        })
        .collect::<Option<Vec<_>>>()?;
    Some(entries.join("; "))
}

/// Log Entry (`9F4D`), EMV Book 3 Annex D: SFI of the log file, maximum records.
fn log_entry(value: &[u8]) -> Option<String> {
    let [sfi, records] = <[u8; 2]>::try_from(value).ok()?;
    Some(format!("SFI {sfi}, {records} records"))
}

/// Transaction Type (`9C`): the first two digits of the ISO 8583:1987 Processing Code.
fn transaction_type(value: &[u8]) -> Option<String> {
    let d = digits(value)?;
    let name = match d.as_str() {
        "00" => "goods and services",
        "01" => "cash",
        "09" => "goods and services with cashback",
        "20" => "refund",
        "30" => "balance inquiry",
        _ => return Some(d),
    };
    // The renderer puts the digits beside the decoding: the name alone.
    Some(name.to_owned())
}

/// Terminal Type (`9F35`), EMV Book 4 Annex A1 (Table 24): who operates it, then its
/// environment and online capability.
fn terminal_type(value: &[u8]) -> Option<String> {
    let d = digits(value)?;
    let mut chars = d.chars();
    let operator = match chars.next()? {
        '1' => "financial institution",
        '2' => "merchant",
        '3' => "cardholder",
        _ => return None,
    };
    let environment = match chars.next()? {
        '1' => "attended, online only",
        '2' => "attended, offline with online capability",
        '3' => "attended, offline only",
        '4' => "unattended, online only",
        '5' => "unattended, offline with online capability",
        '6' => "unattended, offline only",
        _ => return None,
    };
    Some(format!("{operator}, {environment}"))
}

/// Point-of-Service Entry Mode (`9F39`): ISO 8583 values EMV terminals send.
fn pos_entry_mode(value: &[u8]) -> Option<String> {
    let d = digits(value)?;
    let name = match d.as_str() {
        "01" => "manual key entry",
        "02" => "magnetic stripe",
        "05" => "integrated circuit card",
        "07" => "contactless chip",
        "80" => "chip fallback to magnetic stripe",
        "90" => "magnetic stripe, full track",
        "91" => "contactless magnetic stripe",
        _ => return Some(d),
    };
    // The renderer puts the digits beside the decoding: the name alone.
    Some(name.to_owned())
}

/// Issuer Code Table Index (`9F11`): the part of ISO/IEC 8859 for Application Preferred
/// Name (EMV Book 1 §12.2.3).
fn code_table(value: &[u8]) -> Option<String> {
    let n = bcd_number(value)?;
    (1..=10).contains(&n).then(|| format!("ISO/IEC 8859-{n}"))
}

/// Account Type (`5F57`), EMV Book 3 Annex A.
fn account_type(value: &[u8]) -> Option<String> {
    let d = digits(value)?;
    let name = match d.as_str() {
        "00" => "default, unspecified",
        "10" => "savings",
        "20" => "cheque/debit",
        "30" => "credit",
        _ => return Some(d),
    };
    // The renderer puts the digits beside the decoding: the name alone.
    Some(name.to_owned())
}

/// Authorisation Response Code (`8A`): text, and the codes the terminal itself sets
/// (EMV Book 4 §6.3.6: Y1/Z1 offline, Y3/Z3 unable to go online).
fn response_code(value: &[u8]) -> Option<String> {
    let t = text(value, |c| c.is_ascii_alphanumeric())?;
    let meaning = match value {
        b"Y1" => "offline approved",
        b"Z1" => "offline declined",
        b"Y2" => "approval after card-initiated referral",
        b"Z2" => "decline after card-initiated referral",
        b"Y3" => "unable to go online, offline approved",
        b"Z3" => "unable to go online, offline declined",
        b"00" => "approved",
        _ => return Some(t),
    };
    Some(format!("{t} ({meaning})"))
}

/// A DOL as its entries: `9F1A(2) Terminal Country Code, 9F37(4) Unpredictable Number`.
pub fn dol_list(value: &[u8]) -> Option<String> {
    let entries = parse_dol(value).ok()?;
    if entries.is_empty() {
        return Some("(empty list)".to_string());
    }
    let items: Vec<String> = entries
        .iter()
        .map(|e| match dictionary::name(e.tag) {
            Some(name) => format!("{}({}) {name}", tag_hex(e.tag), e.length),
            None => format!("{}({})", tag_hex(e.tag), e.length),
        })
        .collect();
    Some(items.join(", "))
}

/// A list of bare tags (Static Data Authentication Tag List, Tags To Read) with names.
pub fn tag_list(value: &[u8]) -> Option<String> {
    let mut items = Vec::new();
    let mut pos = 0;
    while pos < value.len() {
        let (tag, next) = super::ber::read_tag(value, pos).ok()?;
        items.push(match dictionary::name(tag) {
            Some(name) => format!("{} {name}", tag_hex(tag)),
            None => tag_hex(tag),
        });
        pos = next;
    }
    if items.is_empty() {
        return Some("(empty list)".to_string());
    }
    Some(items.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every code a two-byte n 3 / n 4 value can hold is written as `{code:03}` writes it.
    #[test]
    fn named_code_writes_what_format_writes() {
        for code in 0..=9999u16 {
            assert_eq!(named_code("EUR", code), format!("EUR ({code:03})"));
        }
        assert_eq!(country(&[0x02, 0x50]).as_deref(), Some("France (250)"));
        assert_eq!(currency(&[0x09, 0x78]).as_deref(), Some("EUR (978)"));
    }

    #[test]
    fn amount_places_the_decimal_point() {
        let ctx = |currency, exponent| DecodeContext { currency, exponent };
        assert_eq!(amount(1250, &ctx(None, None)), "12.50");
        assert_eq!(amount(5, &ctx(None, None)), "0.05");
        assert_eq!(amount(0, &ctx(None, None)), "0.00");
        assert_eq!(amount(1250, &ctx(Some(978), None)), "12.50 EUR");
        assert_eq!(amount(1250, &ctx(Some(392), None)), "1250 JPY");
        assert_eq!(amount(1250, &ctx(Some(414), None)), "1.250 KWD");
        assert_eq!(amount(1250, &ctx(Some(978), Some(0))), "1250 EUR");
    }

    #[test]
    fn every_named_bit_is_a_real_bit_and_named_once() {
        for table in [
            AIP,
            AUC,
            TVR,
            TSI,
            TERMINAL_CAPABILITIES,
            ADDITIONAL_TERMINAL_CAPABILITIES,
            TTQ,
            CTQ,
        ] {
            for (i, (byte, bit, _)) in table.iter().enumerate() {
                assert!((1..=5).contains(byte) && (1..=8).contains(bit));
                assert!(
                    table
                        .iter()
                        .skip(i + 1)
                        .all(|(b2, n2, _)| (b2, n2) != (byte, bit))
                );
            }
        }
    }
}
