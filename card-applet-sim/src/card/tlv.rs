//! The small part of BER-TLV (ISO 7816-4 §5.2, EMV Book 3 Annex B) that the card itself
//! needs: encoding its responses, checking the record templates of a profile, and reading
//! data object lists (EMV Book 3 §5.4).
//!
//! The card crate must not depend on telepay, so it carries this minimal codec of its own;
//! telepay's `tlv` module is the complete one (dictionary, pretty-printing).

use thiserror::Error;

/// A tag as its bytes read big-endian (`0x9F36`, `0x70`, `0xBF0C`); at most 3 bytes.
pub(crate) type Tag = u32;

/// What is wrong in a BER-TLV encoding, and where.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TlvError {
    /// The data ended inside a tag field.
    #[error("truncated tag at offset {offset}")]
    TruncatedTag {
        /// Offset of the tag's first byte.
        offset: usize,
    },
    /// A tag longer than the 3 bytes EMV uses (Book 3 Annex B1).
    #[error("tag at offset {offset} is longer than 3 bytes")]
    TagTooLong {
        /// Offset of the tag's first byte.
        offset: usize,
    },
    /// The data ended inside a length field.
    #[error("truncated length at offset {offset}")]
    TruncatedLength {
        /// Offset of the length's first byte.
        offset: usize,
    },
    /// A length form the card does not accept: indefinite (`80`), or more than two
    /// subsequent bytes (ISO 7816-4 §5.2.2.2 allows `81`/`82` for what a card holds).
    #[error("unsupported length byte {first:02X} at offset {offset}")]
    BadLength {
        /// Offset of the length's first byte.
        offset: usize,
        /// The first length byte.
        first: u8,
    },
    /// The value runs past the end of the data.
    #[error("value of tag {tag:X} at offset {offset} needs {needed} bytes, {available} left")]
    ValueOverrun {
        /// The tag whose value overruns.
        tag: Tag,
        /// Offset of the value's first byte.
        offset: usize,
        /// The length the TLV declares.
        needed: usize,
        /// The bytes actually left.
        available: usize,
    },
}

/// One decoded data object, borrowing its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tlv<'a> {
    pub tag: Tag,
    pub value: &'a [u8],
    /// Offset of the value inside the parsed buffer.
    pub value_offset: usize,
}

impl Tlv<'_> {
    /// Constructed data objects have b6 of the first tag byte set (ISO 7816-4 §5.2.2.1).
    pub fn is_constructed(&self) -> bool {
        first_tag_byte(self.tag) & 0x20 != 0
    }
}

fn first_tag_byte(tag: Tag) -> u8 {
    let bytes = tag.to_be_bytes();
    bytes.iter().copied().find(|b| *b != 0).unwrap_or(0)
}

/// Reads a tag field at `offset`: returns the tag and the offset after it.
pub(crate) fn read_tag(data: &[u8], offset: usize) -> Result<(Tag, usize), TlvError> {
    let first = *data.get(offset).ok_or(TlvError::TruncatedTag { offset })?;
    let mut tag = Tag::from(first);
    let mut pos = offset + 1;
    // Low five bits all set: subsequent bytes follow, each with b8 set while more follow.
    if first & 0x1F == 0x1F {
        loop {
            let next = *data.get(pos).ok_or(TlvError::TruncatedTag { offset })?;
            if pos - offset >= 3 {
                return Err(TlvError::TagTooLong { offset });
            }
            tag = (tag << 8) | Tag::from(next);
            pos += 1;
            if next & 0x80 == 0 {
                break;
            }
        }
    }
    Ok((tag, pos))
}

/// Reads a length field at `offset`: returns the length and the offset after it.
pub(crate) fn read_length(data: &[u8], offset: usize) -> Result<(usize, usize), TlvError> {
    let first = *data
        .get(offset)
        .ok_or(TlvError::TruncatedLength { offset })?;
    match first {
        0x00..=0x7F => Ok((usize::from(first), offset + 1)),
        0x81 => {
            let b = *data
                .get(offset + 1)
                .ok_or(TlvError::TruncatedLength { offset })?;
            Ok((usize::from(b), offset + 2))
        }
        0x82 => {
            let hi = *data
                .get(offset + 1)
                .ok_or(TlvError::TruncatedLength { offset })?;
            let lo = *data
                .get(offset + 2)
                .ok_or(TlvError::TruncatedLength { offset })?;
            Ok((usize::from(u16::from_be_bytes([hi, lo])), offset + 3))
        }
        _ => Err(TlvError::BadLength { offset, first }),
    }
}

/// Parses the data objects at one level of `data`, starting at `base` (used only to report
/// offsets relative to an enclosing buffer).
///
/// `00` and `FF` bytes between objects are skipped, as EMV Book 3 Annex B allows padding
/// there.
pub(crate) fn parse_level(data: &[u8], base: usize) -> Result<Vec<Tlv<'_>>, TlvError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        if matches!(data.get(pos), Some(0x00 | 0xFF)) {
            pos += 1;
            continue;
        }
        let (tag, after_tag) = read_tag(data, pos).map_err(|e| shift(e, base))?;
        let (len, value_start) = read_length(data, after_tag).map_err(|e| shift(e, base))?;
        let available = data.len() - value_start;
        let value = data
            .get(value_start..value_start.saturating_add(len))
            .ok_or(TlvError::ValueOverrun {
                tag,
                offset: base + value_start,
                needed: len,
                available,
            })?;
        out.push(Tlv {
            tag,
            value,
            value_offset: base + value_start,
        });
        pos = value_start + len;
    }
    Ok(out)
}

fn shift(error: TlvError, base: usize) -> TlvError {
    match error {
        TlvError::TruncatedTag { offset } => TlvError::TruncatedTag {
            offset: offset + base,
        },
        TlvError::TagTooLong { offset } => TlvError::TagTooLong {
            offset: offset + base,
        },
        TlvError::TruncatedLength { offset } => TlvError::TruncatedLength {
            offset: offset + base,
        },
        TlvError::BadLength { offset, first } => TlvError::BadLength {
            offset: offset + base,
            first,
        },
        other => other,
    }
}

/// Checks a whole tree and returns every primitive object in document order.
pub(crate) fn flatten(data: &[u8]) -> Result<Vec<Tlv<'_>>, TlvError> {
    let mut out = Vec::new();
    flatten_into(data, 0, &mut out, 0)?;
    Ok(out)
}

fn flatten_into<'a>(
    data: &'a [u8],
    base: usize,
    out: &mut Vec<Tlv<'a>>,
    depth: usize,
) -> Result<(), TlvError> {
    for tlv in parse_level(data, base)? {
        // Profiles are data we load, not attacker input, but keep recursion bounded anyway.
        if tlv.is_constructed() && depth < 8 {
            flatten_into(tlv.value, tlv.value_offset, out, depth + 1)?;
        } else {
            out.push(tlv);
        }
    }
    Ok(())
}

/// Appends the tag field of `tag` (1 to 3 bytes, leading zero bytes dropped).
pub(crate) fn push_tag(out: &mut Vec<u8>, tag: Tag) {
    let bytes = tag.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count().min(3);
    out.extend_from_slice(bytes.get(skip..).unwrap_or(&[]));
}

/// Appends a definite length (ISO 7816-4 §5.2.2.2): one byte below 128, else `81 xx` or
/// `82 xx xx`. Card responses never exceed 65 535 bytes; longer values are clamped, which
/// callers avoid by construction.
pub(crate) fn push_length(out: &mut Vec<u8>, len: usize) {
    let (field, used) = length_field(len);
    out.extend_from_slice(field.get(..used).unwrap_or(&[]));
}

/// The length field of [`push_length`] and how many of its bytes are used.
fn length_field(len: usize) -> ([u8; 3], usize) {
    if len < 0x80 {
        ([len as u8, 0, 0], 1)
    } else if len <= 0xFF {
        ([0x81, len as u8, 0], 2)
    } else {
        let [hi, lo] = u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes();
        ([0x82, hi, lo], 3)
    }
}

/// Encodes one data object.
pub(crate) fn encode(tag: Tag, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 5);
    push(&mut out, tag, value);
    out
}

/// Appends one primitive data object (tag, length, value) to `out`: a response is built
/// in one buffer instead of one allocation per object.
pub(crate) fn push(out: &mut Vec<u8>, tag: Tag, value: &[u8]) {
    push_tag(out, tag);
    push_length(out, value.len());
    out.extend_from_slice(value);
}

/// Appends the tag of a constructed data object whose value the caller appends next,
/// and one byte for its length; returns where its value starts, for [`close`].
pub(crate) fn open(out: &mut Vec<u8>, tag: Tag) -> usize {
    push_tag(out, tag);
    // Most templates are shorter than 128 bytes: their length is this one byte, written
    // in place at `close`, and the value never moves.
    out.push(0);
    out.len()
}

/// Ends the constructed data object [`open`] began, whose value starts at `at`: writes
/// its length (what was appended since) before its value, the one byte `open` kept
/// growing to the two or three a long value needs.
pub(crate) fn close(out: &mut Vec<u8>, at: usize) {
    let at = at.min(out.len());
    let (field, used) = length_field(out.len().saturating_sub(at));
    let [first, rest @ ..] = field;
    if let Some(slot) = at.checked_sub(1).and_then(|kept| out.get_mut(kept)) {
        *slot = first;
    }
    if let Some(more) = rest.get(..used.saturating_sub(1))
        && !more.is_empty()
    {
        out.splice(at..at, more.iter().copied());
    }
}

/// One entry of a data object list: a tag and the length the card wants for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DolEntry {
    pub tag: Tag,
    pub len: usize,
}

/// Parses a DOL (EMV Book 3 §5.4): a list of tags, each followed by a length, no values.
pub(crate) fn parse_dol(dol: &[u8]) -> Result<Vec<DolEntry>, TlvError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < dol.len() {
        let (tag, after_tag) = read_tag(dol, pos)?;
        let (len, next) = read_length(dol, after_tag)?;
        out.push(DolEntry { tag, len });
        pos = next;
    }
    Ok(out)
}

/// The total length of the data a DOL asks for.
pub(crate) fn dol_data_len(entries: &[DolEntry]) -> usize {
    entries.iter().map(|e| e.len).fold(0, usize::saturating_add)
}

/// Finds the value that the terminal sent for `tag` in DOL-built `data` (EMV Book 3 §5.4:
/// values are concatenated in DOL order, each exactly the length the DOL gives).
/// `None` when the tag is not in the DOL or the data is too short.
pub(crate) fn dol_value<'a>(entries: &[DolEntry], data: &'a [u8], tag: Tag) -> Option<&'a [u8]> {
    let mut pos = 0usize;
    for entry in entries {
        let end = pos.checked_add(entry.len)?;
        if entry.tag == tag {
            return data.get(pos..end);
        }
        pos = end;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    /// A template built in one buffer (`open`, `push`, `close`) is the template built
    /// from separately encoded children, whatever the length form its value needs.
    #[test]
    fn open_close_encode_as_nested_encode() {
        // (value length of the inner primitive, expected length field of the template)
        let cases: [(usize, &str); 4] = [(0, "03"), (3, "06"), (125, "81 80"), (300, "82 01 31")];
        for (inner, length_field) in cases {
            let value = vec![0xA5; inner];
            let mut built = vec![0xEE];
            let template = open(&mut built, 0x77);
            push(&mut built, 0x9F10, &value);
            close(&mut built, template);
            let mut expected = vec![0xEE];
            expected.extend(encode(0x77, &encode(0x9F10, &value)));
            assert_eq!(built, expected, "inner length {inner}");
            let field = h(length_field);
            assert_eq!(
                built.get(2..2 + field.len()),
                Some(&field[..]),
                "inner length {inner}"
            );
        }
    }

    #[test]
    fn tags_and_lengths() {
        assert_eq!(read_tag(&h("9F36"), 0), Ok((0x9F36, 2)));
        assert_eq!(read_tag(&h("5F2A"), 0), Ok((0x5F2A, 2)));
        assert_eq!(read_tag(&h("DF8101"), 0), Ok((0xDF8101, 3)));
        assert_eq!(read_tag(&h("70"), 0), Ok((0x70, 1)));
        assert_eq!(
            read_tag(&h("9F"), 0),
            Err(TlvError::TruncatedTag { offset: 0 })
        );
        assert_eq!(
            read_tag(&h("DF818101"), 0),
            Err(TlvError::TagTooLong { offset: 0 })
        );
        assert_eq!(read_length(&h("81 80"), 0), Ok((128, 2)));
        assert_eq!(read_length(&h("82 01 00"), 0), Ok((256, 3)));
        assert_eq!(
            read_length(&h("80"), 0),
            Err(TlvError::BadLength {
                offset: 0,
                first: 0x80
            })
        );
        assert_eq!(
            read_length(&h("82 01"), 0),
            Err(TlvError::TruncatedLength { offset: 0 })
        );
    }

    #[test]
    fn encode_round_trips() {
        for len in [0usize, 1, 127, 128, 255, 256, 300] {
            let value = vec![0xAB; len];
            let encoded = encode(0x9F10, &value);
            let parsed = parse_level(&encoded, 0).unwrap();
            assert_eq!(parsed.len(), 1);
            assert_eq!(parsed[0].tag, 0x9F10);
            assert_eq!(parsed[0].value, value.as_slice());
        }
    }

    #[test]
    fn overrun_is_reported_with_offsets() {
        assert_eq!(
            flatten(&h("70 05 5A 08 12 34")),
            Err(TlvError::ValueOverrun {
                tag: 0x70,
                offset: 2,
                needed: 5,
                available: 4
            })
        );
        assert_eq!(
            flatten(&h("70 04 5A 08 12 34")),
            Err(TlvError::ValueOverrun {
                tag: 0x5A,
                offset: 4,
                needed: 8,
                available: 2
            })
        );
    }

    #[test]
    fn dol_lookup() {
        let dol = parse_dol(&h("9F02 06 9F37 04 9A 03")).unwrap();
        assert_eq!(dol_data_len(&dol), 13);
        let data = h("000000001000 11223344 260101");
        assert_eq!(dol_value(&dol, &data, 0x9F37), Some(&h("11223344")[..]));
        assert_eq!(dol_value(&dol, &data, 0x9A), Some(&h("260101")[..]));
        assert_eq!(dol_value(&dol, &data, 0x95), None);
        assert_eq!(dol_value(&dol, &data[..5], 0x9F02), None);
    }
}
