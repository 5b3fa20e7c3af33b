//! Data Object Lists: PDOL, CDOL1/2, DDOL, TDOL and the Log Format (EMV 4.4 Book 3 §5.4).
//!
//! A DOL is a list of entries, each a BER-TLV tag followed by a one-byte length: the card
//! names the data it wants and how long each value must be; the terminal answers with the
//! values alone, concatenated in the DOL's order ("DOL-related data").

use std::collections::BTreeMap;

use serde::Serialize;

use super::TagNumber;
use super::ber::{TlvError, is_constructed, read_tag};
use super::dictionary::{self, Format};

/// One entry of a DOL: a tag and the length the card asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DolEntry {
    /// The tag requested.
    pub tag: TagNumber,
    /// The length requested, in bytes.
    pub length: usize,
}

/// Parses a DOL: a concatenation of tags each followed by a one-byte length (EMV Book 3
/// §5.4). Offsets in errors are positions in `bytes`.
pub fn parse_dol(bytes: &[u8]) -> Result<Vec<DolEntry>, TlvError> {
    // Every entry takes at least two bytes: sized once rather than grown entry by entry.
    let mut out = Vec::with_capacity(bytes.len() / 2);
    let mut pos = 0;
    while pos < bytes.len() {
        let (tag, after_tag) = read_tag(bytes, pos)?;
        let length = bytes
            .get(after_tag)
            .copied()
            .ok_or(TlvError::DolMissingLength {
                tag,
                offset: after_tag,
            })?;
        out.push(DolEntry {
            tag,
            length: usize::from(length),
        });
        pos = after_tag.saturating_add(1);
    }
    Ok(out)
}

/// The encoding of `entries` as a DOL (tag bytes, one length byte each). `None` when an
/// entry's length does not fit the one-byte length field.
pub fn encode_dol(entries: &[DolEntry]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for e in entries {
        out.extend_from_slice(&super::ber::tag_bytes(e.tag));
        out.push(u8::try_from(e.length).ok()?);
    }
    Some(out)
}

/// The total length of the data `entries` ask for.
pub fn dol_data_length(entries: &[DolEntry]) -> usize {
    entries
        .iter()
        .fold(0usize, |acc, e| acc.saturating_add(e.length))
}

/// EMV Book 3 §5.4: the concatenation of each entry's value from `terminal_data`, fitted
/// to the entry's length: `n` values padded with leading zeros or truncated on the left,
/// `cn` and other values padded on the right (`FF` for `cn`, `00` otherwise) or truncated
/// on the right; absent values are zeros.
///
/// The rules of §5.4, one by one:
/// - (a) a constructed tag gives the requested length of zeros, whatever the map holds;
/// - (b, e) a tag absent from `terminal_data` gives zeros;
/// - (c) a value longer than asked loses its leftmost bytes if its format is `n`, its
///   rightmost bytes otherwise;
/// - (d) a value shorter than asked gets leading `00` if `n`, trailing `FF` if `cn`,
///   trailing `00` otherwise.
///
/// The format comes from the [`dictionary`]; a tag present in `terminal_data` but not in
/// the dictionary is known to the caller, so it is sent as binary (`b`) rather than as the
/// zeros rule (a) gives a tag "unknown to the terminal".
///
/// The values may be any bytes the caller holds (`Vec<u8>`, arrays, inline buffers).
pub fn build_dol_data<V: AsRef<[u8]>>(
    entries: &[DolEntry],
    terminal_data: &BTreeMap<TagNumber, V>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(dol_data_length(entries));
    for e in entries {
        let value = if is_constructed(e.tag) {
            None
        } else {
            terminal_data.get(&e.tag)
        };
        match value {
            Some(v) => {
                let format = dictionary::lookup(e.tag).map_or(Format::Binary, |i| i.format);
                fit_value(&mut out, v.as_ref(), e.length, format);
            }
            None => out.resize(out.len().saturating_add(e.length), 0x00),
        }
    }
    out
}

/// Appends `value` fitted to `length` by the §5.4 rules (c) and (d).
fn fit_value(out: &mut Vec<u8>, value: &[u8], length: usize, format: Format) {
    let numeric = format == Format::Numeric;
    if value.len() >= length {
        // (c): n keeps its rightmost (least significant) bytes, others their leftmost.
        let kept = if numeric {
            value.get(value.len().saturating_sub(length)..)
        } else {
            value.get(..length)
        };
        out.extend_from_slice(kept.unwrap_or_default());
        return;
    }
    let pad = length.saturating_sub(value.len());
    match format {
        Format::Numeric => {
            out.resize(out.len().saturating_add(pad), 0x00);
            out.extend_from_slice(value);
        }
        Format::CompressedNumeric => {
            out.extend_from_slice(value);
            out.resize(out.len().saturating_add(pad), 0xFF);
        }
        _ => {
            out.extend_from_slice(value);
            out.resize(out.len().saturating_add(pad), 0x00);
        }
    }
}

/// The inverse, used by the card side and by people reading a dump: split DOL-built data
/// back into (tag, bytes) pairs; error if the lengths disagree.
pub fn split_dol_data<'a>(
    entries: &[DolEntry],
    data: &'a [u8],
) -> Result<Vec<(TagNumber, &'a [u8])>, TlvError> {
    let expected = dol_data_length(entries);
    if expected != data.len() {
        return Err(TlvError::DolDataLength {
            expected,
            received: data.len(),
        });
    }
    let mut out = Vec::with_capacity(entries.len());
    let mut rest = data;
    for e in entries {
        // The total was checked above, so each split fits; stay total anyway.
        let (value, tail) = rest
            .split_at_checked(e.length)
            .ok_or(TlvError::DolDataLength {
                expected,
                received: data.len(),
            })?;
        out.push((e.tag, value));
        rest = tail;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    #[test]
    fn parse_dol_reads_tags_and_one_byte_lengths() {
        let dol = parse_dol(&h("9F66 04 9F02 06 DF8101 08 95 05 9F37 81")).unwrap();
        let got: Vec<_> = dol.iter().map(|e| (e.tag, e.length)).collect();
        assert_eq!(
            got,
            [
                (0x9F66, 4),
                (0x9F02, 6),
                (0xDF8101, 8),
                (0x95, 5),
                (0x9F37, 0x81)
            ]
        );
        assert_eq!(encode_dol(&dol), Some(h("9F66049F0206DF8101089505 9F3781")));
    }
}
