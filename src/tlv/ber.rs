//! The BER-TLV tree and its codec (ISO/IEC 7816-4 §5.2, EMV 4.4 Book 3 Annex B).
//!
//! # Why not `iso7816_tlv::ber::Tlv::parse` directly
//!
//! The `iso7816-tlv` crate is the workspace's BER-TLV reference and this module converts
//! to and from its types ([`Tlv::to_iso7816`], [`Tlv::from_iso7816`]), but its parser
//! cannot be used as is on what real cards send, so the reader here is our own:
//!
//! - it rejects the `00` / `FF` bytes that ISO 7816-4 §5.2.2.1 and EMV Book 3 Annex B1
//!   allow before, between and after objects (cards pad records and erased objects with
//!   them), at top level and inside templates;
//! - its errors carry no position, and a person reading a dump needs the offset;
//! - it reads the indefinite length `80` as a zero length, which ISO 7816-4 §5.2.2.2
//!   excludes (the object that follows is then mis-framed silently);
//! - it recurses once per nesting level with no bound, so a few kilobytes of nested
//!   template headers exhaust the stack: an abort on attacker-controlled input;
//! - its encoder writes a length of exactly 127 as `81 7F`, not the DER-minimal `7F`.
//!
//! The tests keep it as an independent oracle: every tree this module encodes is parsed
//! back by `iso7816-tlv` to the same tree.

use std::fmt;

use serde::Serialize;

use super::TagNumber;

/// Deepest template nesting [`parse`] accepts. EMV responses nest at most four or five
/// levels (`6F` / `A5` / `BF0C` / `61` …); the bound keeps recursion, hence the stack,
/// bounded on hostile input.
pub const MAX_DEPTH: usize = 32;

/// Longest tag field accepted, in bytes: ISO 7816-4 §5.2.2.1 supports tags of one to three
/// bytes and reserves longer ones (EMV uses at most three, e.g. `DF8101`).
pub const MAX_TAG_BYTES: usize = 3;

/// Most bytes after a long-form first length byte: ISO 7816-4 §5.2.2.2 allows length
/// fields of up to five bytes (`84` followed by four).
pub const MAX_LENGTH_BYTES: usize = 4;

/// One BER-TLV data object: a tag and its value.
///
/// Serialised (serde) with the tag as upper-case hex (`"9F26"`) and primitive values as
/// upper-case hex strings, the way people read them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tlv {
    #[serde(serialize_with = "serialize_tag")]
    tag: TagNumber,
    value: Value,
}

/// The value of a data object: bytes (primitive) or nested objects (constructed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Value {
    /// The value field of a primitive object.
    Primitive(#[serde(serialize_with = "serialize_hex")] Vec<u8>),
    /// The objects nested in a constructed object, in order.
    Constructed(Vec<Tlv>),
}

/// A malformed BER-TLV or DOL input. Offsets are byte positions in the slice given to
/// the function that failed ([`parse`], [`parse_dol`](super::dol::parse_dol), …).
#[non_exhaustive]
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum TlvError {
    /// The input ends inside a tag field: its last byte read announces a further byte
    /// (ISO 7816-4 §5.2.2.1: `xxx11111` first byte, then bytes with bit 8 set).
    #[error(
        "truncated tag at offset {offset}: the tag bytes {read} announce a further byte, \
         the input ends"
    )]
    TruncatedTag {
        /// Offset of the first tag byte.
        offset: usize,
        /// The tag bytes read before the input ended, as hex.
        read: HexBytes,
    },
    /// A tag field longer than [`MAX_TAG_BYTES`] (reserved by ISO 7816-4 §5.2.2.1).
    #[error("tag at offset {offset} is longer than {max} bytes (starts {read})")]
    TagTooLong {
        /// Offset of the first tag byte.
        offset: usize,
        /// The first bytes of the tag, as hex.
        read: HexBytes,
        /// The longest tag accepted.
        max: usize,
    },
    /// The input ends inside (or before) the length field of `tag`.
    #[error(
        "truncated length of tag {tag:02X} at offset {offset}: {expected} length byte(s) \
         expected, {available} available"
    )]
    TruncatedLength {
        /// The tag whose length is truncated.
        tag: TagNumber,
        /// Offset of the length field.
        offset: usize,
        /// Length-field bytes needed.
        expected: usize,
        /// Bytes left in the input.
        available: usize,
    },
    /// The indefinite form `80`, excluded by ISO 7816-4 §5.2.2.2 and EMV Book 3 Annex B.
    #[error("indefinite length (80) of tag {tag:02X} at offset {offset} is not allowed")]
    IndefiniteLength {
        /// The tag carrying the length.
        tag: TagNumber,
        /// Offset of the `80` byte.
        offset: usize,
    },
    /// A long-form length announcing more than [`MAX_LENGTH_BYTES`] bytes (first length
    /// byte `85` to `FF`; ISO 7816-4 §5.2.2.2 stops at `84`).
    #[error(
        "over-long length field of tag {tag:02X} at offset {offset}: first byte {first:02X} \
         announces {announced} bytes, at most {max} allowed"
    )]
    LengthTooLong {
        /// The tag carrying the length.
        tag: TagNumber,
        /// Offset of the first length byte.
        offset: usize,
        /// That first length byte.
        first: u8,
        /// The number of length bytes it announces.
        announced: usize,
        /// The most accepted.
        max: usize,
    },
    /// The value of `tag` would run past the end of the input or of its template.
    #[error(
        "value of tag {tag:02X} at offset {offset} is {length} byte(s) long, only {available} \
         available"
    )]
    ValueBeyondInput {
        /// The tag whose value overruns.
        tag: TagNumber,
        /// Offset of the first value byte.
        offset: usize,
        /// The length announced.
        length: usize,
        /// Bytes left in the input or the enclosing template.
        available: usize,
    },
    /// Templates nested deeper than [`MAX_DEPTH`].
    #[error("template {tag:02X} at offset {offset} nests deeper than {max} levels")]
    TooDeep {
        /// The template that exceeds the limit.
        tag: TagNumber,
        /// Offset of its tag.
        offset: usize,
        /// The deepest nesting accepted.
        max: usize,
    },
    /// A DOL entry's one-byte length is missing (EMV Book 3 §5.4).
    #[error("DOL entry {tag:02X} at offset {offset} has no length byte")]
    DolMissingLength {
        /// The tag of the entry.
        tag: TagNumber,
        /// Offset where the length byte should be.
        offset: usize,
    },
    /// DOL-related data whose length is not the sum of the DOL's entry lengths.
    #[error("DOL data is {received} byte(s) long, the DOL asks for {expected}")]
    DolDataLength {
        /// The sum of the entry lengths.
        expected: usize,
        /// The data length received.
        received: usize,
    },
}

/// Bytes shown as upper-case hex in error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HexBytes(pub Vec<u8>);

impl fmt::Display for HexBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode_upper(&self.0))
    }
}

impl Tlv {
    /// An object of `tag` holding `value`.
    ///
    /// The caller keeps `tag` and `value` consistent: a constructed tag (bit 6 of its first
    /// byte set, ISO 7816-4 §5.2.2.1) with [`Value::Constructed`], a primitive one with
    /// [`Value::Primitive`]; [`parse`] decides by that bit, so an inconsistent object does
    /// not read back as itself.
    pub fn new(tag: TagNumber, value: Value) -> Tlv {
        Tlv { tag, value }
    }

    /// A primitive object.
    pub fn primitive(tag: TagNumber, bytes: impl Into<Vec<u8>>) -> Tlv {
        Tlv::new(tag, Value::Primitive(bytes.into()))
    }

    /// A constructed object (template).
    pub fn constructed(tag: TagNumber, children: Vec<Tlv>) -> Tlv {
        Tlv::new(tag, Value::Constructed(children))
    }

    /// The tag number.
    pub fn tag(&self) -> TagNumber {
        self.tag
    }

    /// The value.
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// The value bytes of a primitive object; `None` for a constructed one.
    pub fn bytes(&self) -> Option<&[u8]> {
        match &self.value {
            Value::Primitive(b) => Some(b),
            Value::Constructed(_) => None,
        }
    }

    /// The nested objects of a constructed object; empty for a primitive one.
    pub fn children(&self) -> &[Tlv] {
        match &self.value {
            Value::Constructed(c) => c,
            Value::Primitive(_) => &[],
        }
    }

    /// The first object with `tag`, depth-first, `self` included.
    pub fn find(&self, tag: TagNumber) -> Option<&Tlv> {
        if self.tag == tag {
            return Some(self);
        }
        find(self.children(), tag)
    }

    /// Every object with `tag`, depth-first (pre-order), `self` included.
    pub fn find_all(&self, tag: TagNumber) -> Vec<&Tlv> {
        let mut out = Vec::new();
        collect(std::slice::from_ref(self), tag, &mut out);
        out
    }

    /// The encoding, with DER-minimal lengths (ISO 7816-4 §5.2.2.2: short form up to 127,
    /// then `81`–`84` and the fewest bytes).
    ///
    /// The tag is written as the bytes of its number without leading zero bytes (tag `0`
    /// as one `00` byte, which readers take for padding).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(tag_slice(&self.tag.to_be_bytes()));
        match &self.value {
            Value::Primitive(bytes) => {
                push_length(out, bytes.len());
                out.extend_from_slice(bytes);
            }
            Value::Constructed(children) => {
                let mut inner = Vec::new();
                for child in children {
                    child.encode_into(&mut inner);
                }
                push_length(out, inner.len());
                out.extend_from_slice(&inner);
            }
        }
    }

    /// This object as an `iso7816_tlv` object; `None` when that crate refuses the tag (it
    /// accepts one- to three-byte tags whose continuation bits are consistent) or the
    /// tag's constructed bit disagrees with the value.
    pub fn to_iso7816(&self) -> Option<iso7816_tlv::ber::Tlv> {
        let tag = iso7816_tlv::ber::Tag::try_from(self.tag).ok()?;
        let value = match &self.value {
            Value::Primitive(bytes) => iso7816_tlv::ber::Value::Primitive(bytes.clone()),
            Value::Constructed(children) => iso7816_tlv::ber::Value::Constructed(
                children
                    .iter()
                    .map(Tlv::to_iso7816)
                    .collect::<Option<Vec<_>>>()?,
            ),
        };
        iso7816_tlv::ber::Tlv::new(tag, value).ok()
    }

    /// The same object from an `iso7816_tlv` object.
    pub fn from_iso7816(tlv: &iso7816_tlv::ber::Tlv) -> Tlv {
        let tag = tlv
            .tag()
            .to_bytes()
            .iter()
            .fold(0, |acc: TagNumber, &b| (acc << 8) | TagNumber::from(b));
        let value = match tlv.value() {
            iso7816_tlv::ber::Value::Primitive(bytes) => Value::Primitive(bytes.clone()),
            iso7816_tlv::ber::Value::Constructed(children) => {
                Value::Constructed(children.iter().map(Tlv::from_iso7816).collect())
            }
        };
        Tlv { tag, value }
    }
}

/// Whether `tag` is constructed: bit 6 of its first byte (ISO 7816-4 §5.2.2.1).
pub fn is_constructed(tag: TagNumber) -> bool {
    tag_slice(&tag.to_be_bytes())
        .first()
        .is_some_and(|b| b & 0x20 != 0)
}

/// The bytes of a tag number, without leading zero bytes (`0x9F26` → `[9F, 26]`).
pub fn tag_bytes(tag: TagNumber) -> Vec<u8> {
    tag_slice(&tag.to_be_bytes()).to_vec()
}

/// How many bytes the tag number takes: its big-endian bytes without the leading zero
/// ones, and at least one (tag `0` is one `00` byte).
pub(super) fn tag_len(tag: TagNumber) -> usize {
    // At most 4 zero bytes, so the conversion is exact.
    let zero_bytes = usize::try_from(tag.leading_zeros() / 8).unwrap_or(0);
    4 - zero_bytes.min(3)
}

/// The tag's bytes within its big-endian form `be` (`tag.to_be_bytes()`): what
/// [`tag_bytes`] gives, without allocating — the dictionary, DOLs and the encoder ask
/// for them for every object.
fn tag_slice(be: &[u8; 4]) -> &[u8] {
    let tag = TagNumber::from_be_bytes(*be);
    be.get(4 - tag_len(tag)..).unwrap_or(be.as_slice())
}

/// Upper-case hex of a tag, as written in the EMV books (`9F26`, `DF8101`, `6F`).
pub fn tag_hex(tag: TagNumber) -> String {
    hex::encode_upper(tag_bytes(tag))
}

fn push_length(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        // Short form (ISO 7816-4 §5.2.2.2): one byte, bit 8 clear. `len < 0x80` holds.
        out.extend(u8::try_from(len).ok());
        return;
    }
    let be = (len as u64).to_be_bytes();
    let skip = be.iter().take_while(|&&b| b == 0).count();
    let significant = be.get(skip..).unwrap_or_default();
    // Long form: 0x80 | number of bytes, then the bytes; at most 8, so the cast is exact.
    out.push(0x80 | significant.len() as u8);
    out.extend_from_slice(significant);
}

fn collect<'a>(tlvs: &'a [Tlv], tag: TagNumber, out: &mut Vec<&'a Tlv>) {
    for t in tlvs {
        if t.tag == tag {
            out.push(t);
        }
        collect(t.children(), tag, out);
    }
}

/// Parses every top-level object of `bytes`; tolerates 00 / FF padding between objects
/// (EMV Book 3 Annex B).
///
/// Padding is skipped wherever an object may start: before, between and after objects,
/// at top level and inside templates (ISO 7816-4 §5.2.2.1 makes `00` and `FF` invalid
/// first tag bytes for that reason). Long-form lengths that are not minimal (`81 05`) are
/// accepted, as cards send them; [`Tlv::to_bytes`] writes them back minimal.
pub fn parse(bytes: &[u8]) -> Result<Vec<Tlv>, TlvError> {
    parse_objects(bytes, 0, 0)
}

/// Parses exactly one object: the first object of `bytes` (after any padding) and the
/// offset just past it, so a caller can go on with what follows.
pub fn parse_one(bytes: &[u8]) -> Result<Option<(Tlv, usize)>, TlvError> {
    let start = skip_padding(bytes, 0);
    if start >= bytes.len() {
        return Ok(None);
    }
    let (tlv, end) = parse_object(bytes, start, 0, 0)?;
    Ok(Some((tlv, end)))
}

/// Where the values of primitive objects lie in `bytes`: `(tag, value range)` for every
/// primitive object, depth-first, padding skipped. Stops quietly at the first malformed
/// object (what was found before it is returned): it serves to point at bytes, such as
/// the value of 9F26 in a response to be redacted, never to validate.
pub fn primitive_value_ranges(bytes: &[u8]) -> Vec<(TagNumber, std::ops::Range<usize>)> {
    let mut out = Vec::new();
    walk_ranges(bytes, 0, bytes.len(), 0, &mut out);
    out
}

fn walk_ranges(
    bytes: &[u8],
    mut pos: usize,
    end: usize,
    depth: usize,
    out: &mut Vec<(TagNumber, std::ops::Range<usize>)>,
) {
    if depth >= MAX_DEPTH {
        return;
    }
    loop {
        pos = skip_padding_until(bytes, pos, end);
        if pos >= end {
            return;
        }
        let Ok((tag, after_tag)) = read_tag(bytes, pos) else {
            return;
        };
        let Ok((length, value_start)) = read_length(bytes, after_tag, tag, 0) else {
            return;
        };
        let Some(value_end) = value_start.checked_add(length).filter(|e| *e <= end) else {
            return;
        };
        if is_constructed(tag) {
            walk_ranges(bytes, value_start, value_end, depth + 1, out);
        } else {
            out.push((tag, value_start..value_end));
        }
        pos = value_end;
    }
}

fn skip_padding_until(bytes: &[u8], mut pos: usize, end: usize) -> usize {
    while pos < end && bytes.get(pos).copied().is_some_and(is_padding) {
        pos = pos.saturating_add(1);
    }
    pos
}

/// The first object with `tag` in `tlvs`, depth-first.
pub fn find(tlvs: &[Tlv], tag: TagNumber) -> Option<&Tlv> {
    tlvs.iter().find_map(|t| t.find(tag))
}

fn is_padding(b: u8) -> bool {
    b == 0x00 || b == 0xFF
}

fn skip_padding(bytes: &[u8], mut pos: usize) -> usize {
    while bytes.get(pos).copied().is_some_and(is_padding) {
        pos = pos.saturating_add(1);
    }
    pos
}

/// Parses the objects of `bytes`, whose first byte is at `base` in the caller's input.
fn parse_objects(bytes: &[u8], base: usize, depth: usize) -> Result<Vec<Tlv>, TlvError> {
    // Sized once: growing the list object by object reallocated it two or three times
    // per level, the most frequent allocation of a card read.
    let mut out = Vec::with_capacity(count_objects(bytes));
    let mut pos = 0;
    loop {
        pos = skip_padding(bytes, pos);
        if pos >= bytes.len() {
            return Ok(out);
        }
        let (tlv, next) = parse_object(bytes, pos, base, depth)?;
        out.push(tlv);
        pos = next;
    }
}

/// How many objects `bytes` holds at its top level, counted from their tag and length
/// fields only; the count stops at the first malformed field (the parse that follows
/// reports it).
fn count_objects(bytes: &[u8]) -> usize {
    let mut count = 0usize;
    let mut pos = skip_padding(bytes, 0);
    while pos < bytes.len() {
        let Ok((tag, after_tag)) = read_tag(bytes, pos) else {
            break;
        };
        let Ok((length, value_start)) = read_length(bytes, after_tag, tag, 0) else {
            break;
        };
        let Some(next) = value_start.checked_add(length) else {
            break;
        };
        count = count.saturating_add(1);
        pos = skip_padding(bytes, next);
    }
    count
}

/// One object's framing as [`parse`] checks it: its tag, its value and where the value
/// starts and ends (offsets local to the slice it was read from).
#[derive(Debug, PartialEq, Eq)]
struct Header<'a> {
    tag: TagNumber,
    value: &'a [u8],
    value_start: usize,
    value_end: usize,
}

/// Reads the tag and length of the object at `pos` (not padding) and checks them as
/// [`parse`] does: the value within the input, a constructed object no deeper than
/// [`MAX_DEPTH`].
fn read_header(
    bytes: &[u8],
    pos: usize,
    base: usize,
    depth: usize,
) -> Result<Header<'_>, TlvError> {
    match plain_header(bytes, pos, depth) {
        Some(header) => Ok(header),
        None => general_header(bytes, pos, base, depth),
    }
}

/// [`read_header`] for any object: every tag and length form, and the errors.
fn general_header(
    bytes: &[u8],
    pos: usize,
    base: usize,
    depth: usize,
) -> Result<Header<'_>, TlvError> {
    let at = |p: usize| base.saturating_add(p);
    let (tag, after_tag) = read_tag(bytes, pos).map_err(|e| e.rebase(base))?;
    let (length, value_start) = read_length(bytes, after_tag, tag, base)?;
    // The error is built only when there is one: every object of every answer passes here.
    let beyond = || TlvError::ValueBeyondInput {
        tag,
        offset: at(value_start),
        length,
        available: bytes.len().saturating_sub(value_start),
    };
    let value_end = value_start.checked_add(length).ok_or_else(beyond)?;
    let value = bytes.get(value_start..value_end).ok_or_else(beyond)?;
    if is_constructed(tag) && depth >= MAX_DEPTH {
        return Err(TlvError::TooDeep {
            tag,
            offset: at(pos),
            max: MAX_DEPTH,
        });
    }
    Ok(Header {
        tag,
        value,
        value_start,
        value_end,
    })
}

/// [`read_header`] for the objects EMV answers are made of — a one- or two-byte tag, a
/// one-byte length (ISO 7816-4 §5.2.2.1, §5.2.2.2), the value within the input, the
/// depth allowed — read without the general path's error bookkeeping. `None` for
/// anything else: the general path then reads it, and gives the same header or the
/// error.
fn plain_header(bytes: &[u8], pos: usize, depth: usize) -> Option<Header<'_>> {
    let &first = bytes.get(pos)?;
    let mut tag = TagNumber::from(first);
    let mut length_at = pos.checked_add(1)?;
    if first & 0x1F == 0x1F {
        let &second = bytes.get(length_at)?;
        if second & 0x80 != 0 {
            // A third tag byte follows.
            return None;
        }
        tag = (tag << 8) | TagNumber::from(second);
        length_at = length_at.checked_add(1)?;
    }
    let &length = bytes.get(length_at)?;
    if length >= 0x80 || (depth >= MAX_DEPTH && is_constructed(tag)) {
        return None;
    }
    let value_start = length_at.checked_add(1)?;
    let value_end = value_start.checked_add(usize::from(length))?;
    let value = bytes.get(value_start..value_end)?;
    Some(Header {
        tag,
        value,
        value_start,
        value_end,
    })
}

/// Parses one object starting at `pos` (not padding); returns it and the position after.
fn parse_object(
    bytes: &[u8],
    pos: usize,
    base: usize,
    depth: usize,
) -> Result<(Tlv, usize), TlvError> {
    let Header {
        tag,
        value,
        value_start,
        value_end,
    } = read_header(bytes, pos, base, depth)?;
    let value = if is_constructed(tag) {
        Value::Constructed(parse_objects(
            value,
            base.saturating_add(value_start),
            depth.saturating_add(1),
        )?)
    } else {
        Value::Primitive(value.to_vec())
    };
    Ok((Tlv { tag, value }, value_end))
}

/// One data object as [`visit`] shows it, borrowed from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Object<'a> {
    /// The tag.
    pub tag: TagNumber,
    /// Nesting depth: 0 for a top-level object.
    pub depth: usize,
    /// The value field (a constructed object's: the encoding of its children).
    pub value: &'a [u8],
    /// Where the value field starts in the input given to [`visit`], so a caller can
    /// find it again in bytes it keeps.
    pub offset: usize,
}

impl<'a> Object<'a> {
    /// The value of a primitive object (`None` for a constructed one), as [`Tlv::bytes`].
    pub fn bytes(&self) -> Option<&'a [u8]> {
        (!is_constructed(self.tag)).then_some(self.value)
    }
}

/// Every object of `bytes` in the order [`parse`] reads them (depth-first, pre-order:
/// a template before its children), without building the tree: for answers read once
/// and dropped. Accepts and rejects exactly what [`parse`] does, with the same error;
/// objects before an error have been shown to `each` by then, so a caller uses what it
/// saw only when this returns `Ok`.
pub fn visit<'a>(bytes: &'a [u8], mut each: impl FnMut(Object<'a>)) -> Result<(), TlvError> {
    visit_objects(bytes, 0, 0, &mut each)
}

/// The value of the first object with `tag` in `bytes`, depth-first, or `None` when that
/// object is constructed or there is none: `find(&parse(bytes)?, tag).and_then(Tlv::bytes)`
/// without the tree.
pub fn find_value(bytes: &[u8], tag: TagNumber) -> Result<Option<&[u8]>, TlvError> {
    let mut first: Option<Object<'_>> = None;
    visit(bytes, |object| {
        if first.is_none() && object.tag == tag {
            first = Some(object);
        }
    })?;
    Ok(first.and_then(|object| object.bytes()))
}

fn visit_objects<'a>(
    bytes: &'a [u8],
    base: usize,
    depth: usize,
    each: &mut dyn FnMut(Object<'a>),
) -> Result<(), TlvError> {
    let mut pos = 0;
    loop {
        pos = skip_padding(bytes, pos);
        if pos >= bytes.len() {
            return Ok(());
        }
        let Header {
            tag,
            value,
            value_start,
            value_end,
        } = read_header(bytes, pos, base, depth)?;
        each(Object {
            tag,
            depth,
            value,
            offset: base.saturating_add(value_start),
        });
        if is_constructed(tag) {
            visit_objects(
                value,
                base.saturating_add(value_start),
                depth.saturating_add(1),
                each,
            )?;
        }
        pos = value_end;
    }
}

/// Reads a tag field at `pos` (ISO 7816-4 §5.2.2.1): one byte unless its five low bits
/// are all set, then further bytes while bit 8 is set. Offsets are local to `bytes`.
pub(crate) fn read_tag(bytes: &[u8], pos: usize) -> Result<(TagNumber, usize), TlvError> {
    let first = bytes.get(pos).copied().ok_or(TlvError::TruncatedTag {
        offset: pos,
        read: HexBytes(Vec::new()),
    })?;
    let mut tag = TagNumber::from(first);
    let mut len = 1;
    let mut more = first & 0x1F == 0x1F;
    while more {
        let read = bytes.get(pos..pos.saturating_add(len)).unwrap_or_default();
        if len >= MAX_TAG_BYTES {
            let shown = bytes.get(pos..pos.saturating_add(len + 1)).unwrap_or(read);
            return Err(TlvError::TagTooLong {
                offset: pos,
                read: HexBytes(shown.to_vec()),
                max: MAX_TAG_BYTES,
            });
        }
        // The error (and its copy of the bytes read) only when there is one: every
        // two-byte tag of every record passes here.
        let b =
            bytes
                .get(pos.saturating_add(len))
                .copied()
                .ok_or_else(|| TlvError::TruncatedTag {
                    offset: pos,
                    read: HexBytes(read.to_vec()),
                })?;
        tag = (tag << 8) | TagNumber::from(b);
        len += 1;
        more = b & 0x80 != 0;
    }
    Ok((tag, pos.saturating_add(len)))
}

/// Reads a length field at `pos` (ISO 7816-4 §5.2.2.2): `00`–`7F` short form; `81`–`84`
/// followed by that many bytes; `80` (indefinite) and `85`–`FF` rejected.
fn read_length(
    bytes: &[u8],
    pos: usize,
    tag: TagNumber,
    base: usize,
) -> Result<(usize, usize), TlvError> {
    let at = |p: usize| base.saturating_add(p);
    let first = bytes.get(pos).copied().ok_or(TlvError::TruncatedLength {
        tag,
        offset: at(pos),
        expected: 1,
        available: 0,
    })?;
    let after_first = pos.saturating_add(1);
    if first < 0x80 {
        return Ok((usize::from(first), after_first));
    }
    let count = usize::from(first & 0x7F);
    if count == 0 {
        return Err(TlvError::IndefiniteLength {
            tag,
            offset: at(pos),
        });
    }
    if count > MAX_LENGTH_BYTES {
        return Err(TlvError::LengthTooLong {
            tag,
            offset: at(pos),
            first,
            announced: count,
            max: MAX_LENGTH_BYTES,
        });
    }
    let after_field = after_first.saturating_add(count);
    let field = bytes
        .get(after_first..after_field)
        .ok_or(TlvError::TruncatedLength {
            tag,
            offset: at(pos),
            expected: 1 + count,
            available: bytes.len().saturating_sub(pos),
        })?;
    // At most four bytes: fits u64 and, on every target with a 32-bit or wider usize,
    // usize; a length that does not fit cannot fit in the input either.
    let length = field.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    let length = usize::try_from(length).unwrap_or(usize::MAX);
    Ok((length, after_field))
}

impl TlvError {
    /// Shifts the offsets of a tag error by `base` (tag errors are found on local slices).
    fn rebase(self, base: usize) -> TlvError {
        match self {
            TlvError::TruncatedTag { offset, read } => TlvError::TruncatedTag {
                offset: base.saturating_add(offset),
                read,
            },
            TlvError::TagTooLong { offset, read, max } => TlvError::TagTooLong {
                offset: base.saturating_add(offset),
                read,
                max,
            },
            other => other,
        }
    }
}

fn serialize_tag<S: serde::Serializer>(tag: &TagNumber, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&tag_hex(*tag))
}

fn serialize_hex<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode_upper(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap_or_default()
    }

    #[test]
    fn tag_helpers() {
        assert_eq!(tag_bytes(0x9F26), [0x9F, 0x26]);
        assert_eq!(tag_bytes(0xDF8101), [0xDF, 0x81, 0x01]);
        assert_eq!(tag_bytes(0x6F), [0x6F]);
        assert_eq!(tag_bytes(0), [0x00]);
        assert_eq!(tag_hex(0x5F2A), "5F2A");
        assert!(is_constructed(0x6F) && is_constructed(0xBF0C) && is_constructed(0x70));
        assert!(!is_constructed(0x9F26) && !is_constructed(0x5A) && !is_constructed(0xDF8101));
        // Four-byte numbers keep all four bytes; the constructed bit is the first byte's.
        assert_eq!(tag_bytes(0x0100_0000), [0x01, 0x00, 0x00, 0x00]);
        assert_eq!(tag_bytes(0x0001_0000), [0x01, 0x00, 0x00]);
        assert!(is_constructed(0x20) && !is_constructed(0x1F20));
    }

    proptest::proptest! {
        /// The tag's bytes are its big-endian bytes without the leading zero ones (at
        /// least one), and it is constructed when bit 6 of the first of them is set.
        #[test]
        fn tag_bytes_are_the_significant_big_endian_bytes(tag: TagNumber) {
            let be = tag.to_be_bytes();
            let skip = be.iter().take(3).take_while(|&&b| b == 0).count();
            let expected = be.get(skip..).unwrap_or_default();
            proptest::prop_assert_eq!(tag_bytes(tag), expected);
            proptest::prop_assert_eq!(tag_len(tag), expected.len());
            proptest::prop_assert_eq!(
                is_constructed(tag),
                expected.first().is_some_and(|b| b & 0x20 != 0)
            );
        }
    }

    /// Every object of a tree in the order `visit` shows it: (tag, depth, value).
    fn pre_order(tlvs: &[Tlv], depth: usize, out: &mut Vec<(TagNumber, usize, Vec<u8>)>) {
        for tlv in tlvs {
            let value = match &tlv.value {
                Value::Primitive(bytes) => bytes.clone(),
                Value::Constructed(_) => Vec::new(),
            };
            out.push((tlv.tag, depth, value));
            pre_order(tlv.children(), depth + 1, out);
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(2048))]

        /// The fast path for short tags and lengths gives, where it answers, the header
        /// the general path gives: skipping it changes nothing but the time. Tags, lengths
        /// and values drawn from bytes that make every case likely: one- and two-byte
        /// tags, primitive and constructed, short and long lengths, values that fit and
        /// values cut short, at any depth up to and at the limit.
        #[test]
        fn the_plain_header_is_the_general_one(
            bytes in proptest::collection::vec(
                proptest::sample::select(vec![
                    0x00u8, 0x01, 0x02, 0x03, 0x1F, 0x5F, 0x6F, 0x70, 0x7F, 0x80, 0x81, 0x82,
                    0x9F, 0xBF, 0xFF,
                ]),
                0..10,
            ),
            pos in 0usize..3,
            depth in proptest::sample::select(vec![0usize, 1, MAX_DEPTH - 1, MAX_DEPTH]),
        ) {
            if let Some(plain) = plain_header(&bytes, pos, depth) {
                let general = general_header(&bytes, pos, 0, depth);
                proptest::prop_assert_eq!(general.as_ref(), Ok(&plain));
            }
        }
    }

    proptest::proptest! {
        /// `visit` accepts and rejects exactly what `parse` does, with the same error, and
        /// shows the objects of the tree `parse` builds in depth-first order; `find_value`
        /// finds what a search of that tree finds; each object's offset is where its value
        /// lies in the input. Bytes drawn from a small alphabet of
        /// tag, length and padding bytes, so that most inputs are well-formed or nearly.
        #[test]
        fn visit_reads_what_parse_reads(
            bytes in proptest::collection::vec(
                proptest::sample::select(vec![
                    0x00u8, 0xFF, 0x01, 0x02, 0x03, 0x05, 0x1F, 0x5F, 0x61, 0x6F, 0x70,
                    0x77, 0x80, 0x81, 0x82, 0x9F, 0x26, 0x27, 0xA5, 0xBF, 0x0C,
                ]),
                0..48,
            ),
            tag in proptest::sample::select(vec![0x61u32, 0x77, 0x80, 0x9F26, 0x5F01, 0xBF0C]),
        ) {
            let mut seen = Vec::new();
            let mut misplaced = Vec::new();
            let visited = visit(&bytes, |object| {
                let value = object.bytes().map(<[u8]>::to_vec).unwrap_or_default();
                seen.push((object.tag, object.depth, value));
                // The offset points at the value in the input.
                let end = object.offset.saturating_add(object.value.len());
                if bytes.get(object.offset..end) != Some(object.value) {
                    misplaced.push(object.offset);
                }
            });
            proptest::prop_assert_eq!(misplaced, Vec::<usize>::new());
            let parsed = parse(&bytes);
            match &parsed {
                Ok(tlvs) => {
                    proptest::prop_assert_eq!(visited, Ok(()));
                    let mut expected = Vec::new();
                    pre_order(tlvs, 0, &mut expected);
                    proptest::prop_assert_eq!(seen, expected);
                    proptest::prop_assert_eq!(
                        find_value(&bytes, tag),
                        Ok(find(tlvs, tag).and_then(Tlv::bytes))
                    );
                }
                Err(error) => {
                    proptest::prop_assert_eq!(visited, Err(error.clone()));
                    proptest::prop_assert_eq!(find_value(&bytes, tag), Err(error.clone()));
                }
            }
        }
    }

    #[test]
    fn find_value_table() {
        // (input, tag, expected): the first object of the tag depth-first, its value only
        // when primitive; the error of `parse` for a malformed input.
        type Found = Result<Option<Vec<u8>>, TlvError>;
        let cases: [(&str, TagNumber, Found); 5] = [
            ("9F36 02 0042", 0x9F36, Ok(Some(h("0042")))),
            (
                "77 06 9F27 01 80 82 00 9F27 01 40",
                0x9F27,
                Ok(Some(h("80"))),
            ),
            ("77 03 82 01 1C", 0x77, Ok(None)),
            ("00 FF 9F17 01 03 00", 0x9F36, Ok(None)),
            (
                "77 04 82 02 1C",
                0x82,
                Err(TlvError::ValueBeyondInput {
                    tag: 0x77,
                    offset: 2,
                    length: 4,
                    available: 3,
                }),
            ),
        ];
        for (input, tag, expected) in cases {
            let found = find_value(&h(input), tag).map(|value| value.map(<[u8]>::to_vec));
            assert_eq!(found, expected, "{input} / {tag:X}");
        }
    }

    #[test]
    fn parse_one_reports_where_the_next_object_starts() {
        let bytes = h("00 8A 02 3030 9F27 01 80");
        let first = parse_one(&bytes);
        assert_eq!(first, Ok(Some((Tlv::primitive(0x8A, h("3030")), 5))));
        assert_eq!(parse_one(&h("00 FF")), Ok(None));
    }

    /// The shortcomings of `iso7816_tlv` that the module documentation gives as the reasons
    /// for a reader of our own. If an upgrade of the crate fixes one, this test says so and
    /// the documentation must follow.
    #[test]
    fn iso7816_tlv_shortcomings_are_real() {
        use iso7816_tlv::ber::Tlv as Theirs;
        // Padding (ISO 7816-4 §5.2.2.1, EMV Book 3 Annex B1) is refused.
        assert!(Theirs::from_bytes(&h("70 05 00 8A 02 3030")).is_err());
        assert!(parse(&h("70 05 00 8A 02 3030")).is_ok());
        // The indefinite length 80 is read as a zero length.
        let input = h("8A 80 3030");
        let (theirs, rest) = Theirs::parse(&input);
        assert_eq!(
            theirs.map(|t| t.value().clone()),
            Ok(iso7816_tlv::ber::Value::Primitive(Vec::new()))
        );
        assert_eq!(rest, h("3030"));
        assert_eq!(
            parse(&h("8A 80 3030")),
            Err(TlvError::IndefiniteLength {
                tag: 0x8A,
                offset: 1
            })
        );
        // A length of 127 is encoded in the long form.
        let value = vec![0x11; 127];
        let theirs = Tlv::primitive(0x5A, value.clone())
            .to_iso7816()
            .map(|t| t.to_vec())
            .unwrap_or_default();
        assert_eq!(theirs.get(..3), Some(&[0x5A, 0x81, 0x7F][..]));
        assert_eq!(
            Tlv::primitive(0x5A, value).to_bytes().get(..2),
            Some(&[0x5A, 0x7F][..])
        );
    }
}
