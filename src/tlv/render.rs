//! The pretty-printer: a TLV tree rendered the way a person reads a card dump, one line
//! per object, indented by depth, with the dictionary's names and decoded values.
//!
//! ```text
//! 6F File Control Information (FCI) Template
//!   84 Dedicated File (DF) Name: A0000000421010
//!   A5 File Control Information (FCI) Proprietary Template
//!     50 Application Label: "CB"
//!     87 Application Priority Indicator: 01 (priority 1)
//! 5F24 Application Expiration Date: 261231 (2026-12-31)
//! ```
//!
//! A primitive value is shown as its decoding alone when the hex adds nothing to it (text,
//! DOLs, tag lists, digits, `EUR (978)`), as `HEX (decoding)` otherwise, and as hex when there is no
//! decoding. Amounts use the currency found in the same tree ([`DecodeContext::from_tlvs`]).

use std::fmt::Write as _;

use super::ber::{Tlv, Value, parse, tag_hex};
use super::decode::{DecodeContext, decode_value_with, decoding_shows_value};
use super::dictionary;

/// Pretty-prints a TLV tree: one line per object, indented by depth, "TAG Name: decoded"
/// (hex beside the decoding when it adds), DOLs shown as their tag lists with names;
/// unknown tags shown as hex. Deterministic; no trailing spaces.
///
/// Every line, the last included, ends with `\n`; no objects give an empty string.
pub fn render(tlvs: &[Tlv]) -> String {
    let ctx = DecodeContext::from_tlvs(tlvs);
    let mut out = String::new();
    for tlv in tlvs {
        render_one(&mut out, tlv, 0, &ctx);
    }
    out
}

/// render() for raw bytes that may not be TLV: falls back to a hex dump line with the
/// parse error.
///
/// The fallback line is `HEX (not BER-TLV: ERROR)`, the error naming the offset.
pub fn render_bytes(bytes: &[u8]) -> String {
    match parse(bytes) {
        Ok(tlvs) => render(&tlvs),
        Err(e) => format!("{} (not BER-TLV: {e})\n", hex::encode_upper(bytes)),
    }
}

fn render_one(out: &mut String, tlv: &Tlv, depth: usize, ctx: &DecodeContext) {
    let info = dictionary::lookup(tlv.tag());
    for _ in 0..depth {
        out.push_str("  ");
    }
    out.push_str(&tag_hex(tlv.tag()));
    if let Some(info) = info {
        out.push(' ');
        out.push_str(info.name);
    }
    match tlv.value() {
        Value::Constructed(children) => {
            out.push('\n');
            for child in children {
                render_one(out, child, depth.saturating_add(1), ctx);
            }
        }
        Value::Primitive(bytes) => {
            // `write!` to a String cannot fail.
            let _ = writeln!(out, ": {}", primitive(tlv.tag(), bytes, ctx));
        }
    }
}

/// The text after `TAG Name: ` for a primitive value.
fn primitive(tag: super::TagNumber, bytes: &[u8], ctx: &DecodeContext) -> String {
    if bytes.is_empty() {
        return "(empty)".to_string();
    }
    let hex = hex::encode_upper(bytes);
    let Some(decoded) = decode_value_with(tag, bytes, ctx) else {
        return hex;
    };
    if decoding_shows_value(tag) || decoded == hex {
        decoded
    } else {
        format!("{hex} ({decoded})")
    }
}
