//! The Answer To Reset (ISO 7816-3 §8): TS, T0, the interface bytes TAi TBi TCi TDi
//! of every level, the historical bytes and TCK, parsed into an [`Atr`] that reports
//! the protocols offered, the transmission parameters (Fi, Di, guard time, T=0 and
//! T=1 parameters) and the card capabilities of the historical bytes
//! (ISO 7816-4 §8.1.1).

use std::fmt;

/// Maximum ATR length: TS plus at most 32 characters (ISO 7816-3 §8.2.1).
pub const MAX_ATR_LEN: usize = 33;

/// Default TA1 (FI = 1, DI = 1) when TA1 is absent (ISO 7816-3 §8.3).
const DEFAULT_TA1: u8 = 0x11;

/// The protocol value T = 15, which qualifies global interface bytes rather than a
/// transmission protocol (ISO 7816-3 §8.2.3).
const T15: u8 = 15;

/// An Answer To Reset, parsed and checked.
#[derive(Clone, PartialEq, Eq, Debug, serde::Serialize)]
pub struct Atr {
    #[serde(serialize_with = "crate::apdu::serialize_hex")]
    raw: Vec<u8>,
    convention: Convention,
    t0: u8,
    groups: Vec<InterfaceGroup>,
    #[serde(serialize_with = "crate::apdu::serialize_hex")]
    historical: Vec<u8>,
    tck: Option<u8>,
}

/// The bit convention announced by TS (ISO 7816-3 §8.1).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, serde::Serialize)]
pub enum Convention {
    /// TS = `3B`: high level is 1, least significant bit first.
    Direct,
    /// TS = `3F` (as decoded; `03` as read in direct convention): low level is 1,
    /// most significant bit first.
    Inverse,
}

impl fmt::Display for Convention {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Convention::Direct => "direct convention",
            Convention::Inverse => "inverse convention",
        })
    }
}

/// A transmission protocol offered in a TDi byte (ISO 7816-3 §8.2.3).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum Protocol {
    /// T=0, half-duplex character transmission (ISO 7816-3 §10).
    T0,
    /// T=1, half-duplex block transmission (ISO 7816-3 §11).
    T1,
    /// Any other value 2–14 (RFU or defined elsewhere); 15 is not a protocol and
    /// never appears here.
    Other(u8),
}

impl Protocol {
    /// The protocol with this T value (the low nibble of TDi).
    pub fn from_t(t: u8) -> Protocol {
        match t {
            0 => Protocol::T0,
            1 => Protocol::T1,
            other => Protocol::Other(other),
        }
    }

    /// The T value.
    pub fn t(self) -> u8 {
        match self {
            Protocol::T0 => 0,
            Protocol::T1 => 1,
            Protocol::Other(t) => t,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "T={}", self.t())
    }
}

/// Serialised as its display form, `"T=1"`.
impl serde::Serialize for Protocol {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// One level of interface bytes: TAi, TBi, TCi and TDi (ISO 7816-3 §8.2.2).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, serde::Serialize)]
pub struct InterfaceGroup {
    /// The level i, from 1.
    pub index: u8,
    /// The T value of TD(i−1), which qualifies TAi TBi TCi for i ≥ 3; `None` for
    /// level 1, whose bytes are global.
    pub qualifier: Option<u8>,
    /// TAi, if present.
    pub ta: Option<u8>,
    /// TBi, if present.
    pub tb: Option<u8>,
    /// TCi, if present.
    pub tc: Option<u8>,
    /// TDi, if present: the high nibble announces level i+1, the low nibble is T.
    pub td: Option<u8>,
}

/// Which ATR byte a parser expected (for [`AtrError::Truncated`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum AtrByte {
    /// The format byte T0.
    T0,
    /// TAi for level i.
    Ta(u8),
    /// TBi for level i.
    Tb(u8),
    /// TCi for level i.
    Tc(u8),
    /// TDi for level i.
    Td(u8),
    /// Historical byte `index` (from 1) of the `count` that T0 announces.
    Historical {
        /// Position among the historical bytes, from 1.
        index: u8,
        /// Number of historical bytes announced by T0.
        count: u8,
    },
}

impl fmt::Display for AtrByte {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AtrByte::T0 => f.write_str("T0"),
            AtrByte::Ta(i) => write!(f, "TA{i}"),
            AtrByte::Tb(i) => write!(f, "TB{i}"),
            AtrByte::Tc(i) => write!(f, "TC{i}"),
            AtrByte::Td(i) => write!(f, "TD{i}"),
            AtrByte::Historical { index, count } => {
                write!(f, "historical byte {index} of {count}")
            }
        }
    }
}

/// Why bytes are not a valid ATR. Offsets count from TS (offset 0).
#[non_exhaustive]
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum AtrError {
    /// No bytes at all.
    #[error("empty ATR: expected at least TS and T0")]
    Empty,
    /// TS is neither `3B` nor `3F` (ISO 7816-3 §8.1).
    #[error("TS = {ts:02X} at offset 0: expected 3B (direct convention) or 3F (inverse convention){}", ts_hint(*ts))]
    BadTs {
        /// The byte received.
        ts: u8,
    },
    /// The ATR ends before a byte that T0 or a TDi announced.
    #[error("ATR truncated at offset {offset}: expected {expected}")]
    Truncated {
        /// Offset where the missing byte should be.
        offset: usize,
        /// The byte expected there.
        expected: AtrByte,
    },
    /// TD1 announces T=15, which ISO 7816-3 §8.2.3 forbids in TD1.
    #[error("TD1 = {td1:02X} at offset {offset} announces T=15, which is invalid in TD1")]
    T15InTd1 {
        /// Offset of TD1.
        offset: usize,
        /// The TD1 byte.
        td1: u8,
    },
    /// A protocol other than T=0 is offered, so TCK must be present
    /// (ISO 7816-3 §8.2.5), but the ATR ends.
    #[error("TCK missing at offset {offset}: required because T={protocol} is indicated")]
    TckMissing {
        /// Offset where TCK should be.
        offset: usize,
        /// The first T ≠ 0 indicated in a TDi byte.
        protocol: u8,
    },
    /// The exclusive-or of T0 to TCK is not zero (ISO 7816-3 §8.2.5).
    #[error("TCK mismatch: expected {expected:02X}, found {found:02X}")]
    TckMismatch {
        /// The TCK that makes the checksum zero.
        expected: u8,
        /// The TCK received.
        found: u8,
    },
    /// The characters announced add up to more than 33 bytes (ISO 7816-3 §8.2.1).
    #[error("ATR of {len} bytes is too long: at most 33 (TS and 32 characters)")]
    TooLong {
        /// Length of the ATR as announced by its structure (up to the last TDi read,
        /// when the interface bytes alone pass the limit).
        len: usize,
    },
    /// Bytes after the last character of the ATR (after TCK, or after the historical
    /// bytes when only T=0 is indicated and TCK must be absent).
    #[error("{count} trailing bytes at offset {offset} after the end of the ATR")]
    TrailingBytes {
        /// Offset of the first unexpected byte.
        offset: usize,
        /// Number of unexpected bytes.
        count: usize,
    },
}

/// A hint for the common mistake of a TS read without convention handling.
fn ts_hint(ts: u8) -> &'static str {
    if ts == 0x03 {
        " (03 is 3F read in direct convention: decode inverse-convention bytes first)"
    } else {
        ""
    }
}

/// Reads the ATR byte by byte, tracking the offset for error messages.
struct Reader<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl Reader<'_> {
    fn next(&mut self, expected: AtrByte) -> Result<u8, AtrError> {
        let byte = self
            .bytes
            .get(self.offset)
            .copied()
            .ok_or(AtrError::Truncated {
                offset: self.offset,
                expected,
            })?;
        self.offset += 1;
        Ok(byte)
    }

    /// Reads the byte if bit `mask` of the presence indicator Y is set.
    fn optional(&mut self, y: u8, mask: u8, expected: AtrByte) -> Result<Option<u8>, AtrError> {
        if y & mask != 0 {
            self.next(expected).map(Some)
        } else {
            Ok(None)
        }
    }
}

/// Parameters of T=1 (ISO 7816-3 §11.4), from the first TAi, TBi and TCi (i ≥ 3)
/// qualified by T=1, or their defaults.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, serde::Serialize)]
pub struct T1Parameters {
    /// Information field size of the card, IFSC (default 32).
    pub ifsc: u8,
    /// Block waiting time integer, BWI (default 4).
    pub bwi: u8,
    /// Character waiting time integer, CWI (default 13).
    pub cwi: u8,
    /// Whether the error detection code is a CRC (TCi b1 = 1) rather than an LRC.
    pub crc: bool,
}

/// TA2, the specific mode byte (ISO 7816-3 §8.3).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, serde::Serialize)]
pub struct SpecificMode {
    /// The protocol the card runs in specific mode (b4–b1).
    pub protocol: Protocol,
    /// Whether the card can change to negotiable mode (b8 = 0).
    pub can_change: bool,
    /// Whether the transmission parameters are implicitly defined rather than given
    /// by the interface bytes (b5 = 1).
    pub implicit_parameters: bool,
}

impl Atr {
    /// Parses and checks an ATR, as decoded characters starting with TS.
    ///
    /// # Errors
    /// [`AtrError::Empty`], [`AtrError::BadTs`], [`AtrError::Truncated`] (naming the
    /// missing byte), [`AtrError::T15InTd1`], [`AtrError::TckMissing`],
    /// [`AtrError::TooLong`], [`AtrError::TckMismatch`] and
    /// [`AtrError::TrailingBytes`].
    pub fn parse(bytes: &[u8]) -> Result<Atr, AtrError> {
        let &ts = bytes.first().ok_or(AtrError::Empty)?;
        let convention = match ts {
            0x3B => Convention::Direct,
            0x3F => Convention::Inverse,
            _ => return Err(AtrError::BadTs { ts }),
        };
        let mut reader = Reader { bytes, offset: 1 };
        let t0 = reader.next(AtrByte::T0)?;

        // §8.2.2: Y1 (high nibble of T0) announces TA1..TD1; each TDi's high nibble
        // announces the next level, its low nibble qualifies it.
        let mut groups = Vec::new();
        let mut y = t0 >> 4;
        let mut qualifier = None;
        let mut index: u8 = 1;
        let mut tck_protocol = None;
        loop {
            let ta = reader.optional(y, 0x1, AtrByte::Ta(index))?;
            let tb = reader.optional(y, 0x2, AtrByte::Tb(index))?;
            let tc = reader.optional(y, 0x4, AtrByte::Tc(index))?;
            let td_offset = reader.offset;
            let td = reader.optional(y, 0x8, AtrByte::Td(index))?;
            groups.push(InterfaceGroup {
                index,
                qualifier,
                ta,
                tb,
                tc,
                td,
            });
            let Some(td) = td else { break };
            let t = td & 0x0F;
            if index == 1 && t == T15 {
                return Err(AtrError::T15InTd1 {
                    offset: td_offset,
                    td1: td,
                });
            }
            if t != 0 && tck_protocol.is_none() {
                tck_protocol = Some(t);
            }
            // §8.2.1: stop as soon as the interface bytes alone pass the limit, so a
            // long chain of TDi bytes costs no more than 33 bytes of work.
            if reader.offset > MAX_ATR_LEN {
                return Err(AtrError::TooLong { len: reader.offset });
            }
            y = td >> 4;
            qualifier = Some(t);
            // Each level takes at least its TD byte and the length is capped above,
            // so the index stays far below 255; saturating only guards the type.
            index = index.saturating_add(1);
        }

        let count = t0 & 0x0F;
        let start = reader.offset;
        let historical = bytes
            .get(start..start.saturating_add(usize::from(count)))
            .ok_or_else(|| {
                let present = bytes.len().saturating_sub(start);
                AtrError::Truncated {
                    offset: bytes.len(),
                    expected: AtrByte::Historical {
                        // present < count ≤ 15, so this fits a u8.
                        index: u8::try_from(present).unwrap_or(u8::MAX).saturating_add(1),
                        count,
                    },
                }
            })?
            .to_vec();
        reader.offset += historical.len();

        // §8.2.5: TCK is absent if only T=0 is indicated, present otherwise.
        let tck = match tck_protocol {
            None => None,
            Some(protocol) => {
                let offset = reader.offset;
                let tck = bytes
                    .get(offset)
                    .copied()
                    .ok_or(AtrError::TckMissing { offset, protocol })?;
                reader.offset += 1;
                Some(tck)
            }
        };
        let end = reader.offset;
        if end > MAX_ATR_LEN {
            return Err(AtrError::TooLong { len: end });
        }
        if let Some(found) = tck {
            // XOR of T0 .. the byte before TCK; with TCK the total must be zero.
            let expected = bytes
                .get(1..end.saturating_sub(1))
                .unwrap_or_default()
                .iter()
                .fold(0, |acc, b| acc ^ b);
            if expected != found {
                return Err(AtrError::TckMismatch { expected, found });
            }
        }
        if bytes.len() > end {
            return Err(AtrError::TrailingBytes {
                offset: end,
                count: bytes.len() - end,
            });
        }
        Ok(Atr {
            raw: bytes.to_vec(),
            convention,
            t0,
            groups,
            historical,
            tck,
        })
    }

    /// The ATR bytes as given to [`Atr::parse`].
    pub fn as_bytes(&self) -> &[u8] {
        &self.raw
    }

    /// The convention announced by TS.
    pub fn convention(&self) -> Convention {
        self.convention
    }

    /// The format byte T0.
    pub fn t0(&self) -> u8 {
        self.t0
    }

    /// The levels of interface bytes, level 1 first (always at least one, possibly
    /// empty).
    pub fn interface_groups(&self) -> &[InterfaceGroup] {
        &self.groups
    }

    /// TCK, when present.
    pub fn tck(&self) -> Option<u8> {
        self.tck
    }

    /// The protocols offered, in the order of the TDi bytes, without repetition and
    /// without T=15; T=0 alone when TD1 is absent (ISO 7816-3 §8.2.3).
    pub fn protocols(&self) -> Vec<Protocol> {
        let mut protocols = Vec::new();
        for t in self.groups.iter().filter_map(|g| g.td).map(|td| td & 0x0F) {
            let protocol = Protocol::from_t(t);
            if t != T15 && !protocols.contains(&protocol) {
                protocols.push(protocol);
            }
        }
        if protocols.is_empty() {
            protocols.push(Protocol::T0);
        }
        protocols
    }

    /// TA1 if present, else its default `11` (FI = 1, DI = 1).
    pub fn ta1(&self) -> u8 {
        self.group(1).and_then(|g| g.ta).unwrap_or(DEFAULT_TA1)
    }

    /// The clock rate conversion integer Fi from TA1 (ISO 7816-3 §8.3 Table 7);
    /// 372 when TA1 is absent, 0 when FI is an RFU value (7, 8, E, F).
    pub fn fi(&self) -> u16 {
        fi_table(self.ta1() >> 4).map_or(0, |(fi, _)| fi)
    }

    /// The maximum clock frequency f(max) in MHz from TA1 (Table 7); 5 when TA1 is
    /// absent, 0.0 when FI is an RFU value.
    pub fn f_max_mhz(&self) -> f32 {
        fi_table(self.ta1() >> 4).map_or(0.0, |(_, f)| f)
    }

    /// The baud rate adjustment integer Di from TA1 (ISO 7816-3 §8.3 Table 8); 1 when
    /// TA1 is absent, 0 when DI is an RFU value (0, A–F).
    pub fn di(&self) -> u8 {
        di_table(self.ta1() & 0x0F).unwrap_or(0)
    }

    /// The extra guard time integer N from TC1, 0 when absent (ISO 7816-3 §8.3).
    /// N = 255 means the minimum guard time (12 etu for T=0, 11 etu for T=1).
    pub fn extra_guard_time(&self) -> u8 {
        self.group(1).and_then(|g| g.tc).unwrap_or(0)
    }

    /// The specific mode byte TA2, if present (ISO 7816-3 §8.3).
    pub fn specific_mode(&self) -> Option<SpecificMode> {
        self.group(2).and_then(|g| g.ta).map(specific_mode)
    }

    /// The waiting time integer WI of T=0 from TC2, 10 when absent (ISO 7816-3 §10.2).
    pub fn waiting_time_integer(&self) -> u8 {
        self.group(2).and_then(|g| g.tc).unwrap_or(10)
    }

    /// The T=1 parameters when T=1 is offered, from the first TAi/TBi/TCi (i ≥ 3)
    /// qualified by T=1 or their defaults (ISO 7816-3 §11.4).
    pub fn t1_parameters(&self) -> Option<T1Parameters> {
        if !self.protocols().contains(&Protocol::T1) {
            return None;
        }
        let ifsc = self.specific_byte(1, |g| g.ta).unwrap_or(32);
        let tb = self.specific_byte(1, |g| g.tb).unwrap_or(0x4D);
        let tc = self.specific_byte(1, |g| g.tc).unwrap_or(0);
        Some(T1Parameters {
            ifsc,
            bwi: tb >> 4,
            cwi: tb & 0x0F,
            crc: tc & 0x01 != 0,
        })
    }

    /// The first TAi after T=15 (i ≥ 3), holding the clock stop indicator XI (b8–b7)
    /// and the class indicator UI (b6–b1) (ISO 7816-3 §8.3).
    pub fn clock_stop_and_class(&self) -> Option<u8> {
        self.specific_byte(T15, |g| g.ta)
    }

    /// The historical bytes (at most 15).
    pub fn historical_bytes(&self) -> &[u8] {
        &self.historical
    }

    /// The compact-TLV data objects of the historical bytes (ISO 7816-4 §8.1.1), as
    /// (tag, value) pairs, when the category indicator is `80` (all objects) or `00`
    /// (objects then a 3-byte status indicator); `None` for other categories or a
    /// malformed object.
    pub fn compact_tlv(&self) -> Option<Vec<(u8, &[u8])>> {
        let (&category, rest) = self.historical.split_first()?;
        let objects = match category {
            0x80 => rest,
            0x00 => rest.get(..rest.len().checked_sub(3)?)?,
            _ => return None,
        };
        let mut out = Vec::new();
        let mut remaining = objects;
        while let Some((&tl, tail)) = remaining.split_first() {
            let (value, next) = tail.split_at_checked(usize::from(tl & 0x0F))?;
            out.push((tl >> 4, value));
            remaining = next;
        }
        Some(out)
    }

    /// The card capabilities object (compact-TLV tag 7, ISO 7816-4 §8.1.1.2.7), if
    /// the historical bytes hold one.
    pub fn card_capabilities(&self) -> Option<&[u8]> {
        self.compact_tlv()?
            .into_iter()
            .find(|(tag, _)| *tag == 7)
            .map(|(_, value)| value)
    }

    /// Card capabilities, third software function table, b7: "extended Lc and Le
    /// fields" (ISO 7816-4 §8.1.1.2.7 Table 88).
    pub fn supports_extended_length(&self) -> bool {
        self.third_function_table()
            .is_some_and(|byte| byte & 0x40 != 0)
    }

    /// Card capabilities, third software function table, b8: "command chaining"
    /// (ISO 7816-4 §8.1.1.2.7 Table 88).
    pub fn supports_command_chaining(&self) -> bool {
        self.third_function_table()
            .is_some_and(|byte| byte & 0x80 != 0)
    }

    /// What the category indicator (first historical byte) says about the format of
    /// the others (ISO 7816-4 §8.1.1.1).
    fn historical_category(&self) -> String {
        match self.historical.as_slice() {
            [] => "no category indicator".to_owned(),
            [0x80, ..] => "category 80: compact-TLV data objects".to_owned(),
            [0x00, .., lcs, sw1, sw2] => format!(
                "category 00: compact-TLV data objects, then status LCS={lcs:02X} SW={sw1:02X}{sw2:02X}"
            ),
            [0x10, reference, ..] => format!("category 10: DIR data reference {reference:02X}"),
            [category, ..] => format!("category {category:02X}: proprietary format"),
        }
    }

    fn third_function_table(&self) -> Option<u8> {
        self.card_capabilities()?.get(2).copied()
    }

    fn group(&self, index: u8) -> Option<&InterfaceGroup> {
        self.groups.iter().find(|g| g.index == index)
    }

    /// The first byte chosen by `pick` among levels i ≥ 3 qualified by T = `t`
    /// (ISO 7816-3 §8.2.3: "the first TA for T=1", ...).
    fn specific_byte(&self, t: u8, pick: impl Fn(&InterfaceGroup) -> Option<u8>) -> Option<u8> {
        self.groups
            .iter()
            .filter(|g| g.index >= 3 && g.qualifier == Some(t))
            .find_map(pick)
    }
}

/// Fi and f(max) in MHz for FI (ISO 7816-3 §8.3 Table 7); `None` for RFU values.
pub fn fi_table(fi: u8) -> Option<(u16, f32)> {
    Some(match fi {
        0x0 => (372, 4.0),
        0x1 => (372, 5.0),
        0x2 => (558, 6.0),
        0x3 => (744, 8.0),
        0x4 => (1116, 12.0),
        0x5 => (1488, 16.0),
        0x6 => (1860, 20.0),
        0x9 => (512, 5.0),
        0xA => (768, 7.5),
        0xB => (1024, 10.0),
        0xC => (1536, 15.0),
        0xD => (2048, 20.0),
        _ => return None,
    })
}

/// Di for DI (ISO 7816-3 §8.3 Table 8); `None` for RFU values.
pub fn di_table(di: u8) -> Option<u8> {
    Some(match di {
        0x1 => 1,
        0x2 => 2,
        0x3 => 4,
        0x4 => 8,
        0x5 => 16,
        0x6 => 32,
        0x7 => 64,
        0x8 => 12,
        0x9 => 20,
        _ => return None,
    })
}

fn specific_mode(ta2: u8) -> SpecificMode {
    SpecificMode {
        protocol: Protocol::from_t(ta2 & 0x0F),
        can_change: ta2 & 0x80 == 0,
        implicit_parameters: ta2 & 0x10 != 0,
    }
}

/// Upper-case hex bytes separated by spaces.
fn spaced_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The presence nibble Y spelled as the bytes it announces.
fn announced(y: u8, level: u8) -> String {
    let names: Vec<String> = [(0x1, "TA"), (0x2, "TB"), (0x4, "TC"), (0x8, "TD")]
        .iter()
        .filter(|(mask, _)| y & mask != 0)
        .map(|(_, name)| format!("{name}{level}"))
        .collect();
    if names.is_empty() && level == 1 {
        "no interface bytes".to_owned()
    } else if names.is_empty() {
        "no further interface bytes".to_owned()
    } else {
        format!("{} present", names.join(" "))
    }
}

/// Describes one interface byte given its kind (`A`, `B` or `C`) and its level.
fn describe_interface(kind: char, group: &InterfaceGroup, value: u8) -> String {
    match (kind, group.index, group.qualifier) {
        ('A', 1, _) => {
            let (fi, fmax) = match fi_table(value >> 4) {
                Some((fi, f)) => (format!("Fi={fi}"), format!(" (f max {f} MHz)")),
                None => (format!("Fi=RFU (FI={:X})", value >> 4), String::new()),
            };
            let di = di_table(value & 0x0F)
                .map_or(format!("Di=RFU (DI={:X})", value & 0x0F), |di| {
                    format!("Di={di}")
                });
            format!("{fi} {di}{fmax}")
        }
        ('B', 1, _) => format!(
            "VPP programming (deprecated): PI1={}, II={}",
            value & 0x1F,
            (value >> 5) & 0x03
        ),
        ('C', 1, _) if value == 0xFF => {
            "extra guard time N=255: minimum guard time (12 etu for T=0, 11 etu for T=1)".to_owned()
        }
        ('C', 1, _) => format!("extra guard time N={value} etu"),
        ('A', 2, _) => {
            let mode = specific_mode(value);
            format!(
                "specific mode {}, {}, {}",
                mode.protocol,
                if mode.can_change {
                    "able to change to negotiable mode"
                } else {
                    "unable to change to negotiable mode"
                },
                if mode.implicit_parameters {
                    "parameters implicitly defined"
                } else {
                    "parameters from the interface bytes"
                }
            )
        }
        ('B', 2, _) => format!("VPP programming (deprecated): PI2={value}"),
        ('C', 2, Some(0)) => format!("T=0 waiting time integer WI={value}"),
        ('A', _, Some(1)) => format!("IFSC={value}"),
        ('B', _, Some(1)) => format!("BWI={}, CWI={}", value >> 4, value & 0x0F),
        ('C', _, Some(1)) => format!(
            "error detection code {}",
            if value & 0x01 != 0 { "CRC" } else { "LRC" }
        ),
        ('A', _, Some(T15)) => {
            let clock = match value >> 6 {
                0 => "clock stop not supported",
                1 => "clock stop in state L",
                2 => "clock stop in state H",
                _ => "clock stop, no preference",
            };
            let classes: Vec<&str> = [(0x01, "A (5 V)"), (0x02, "B (3 V)"), (0x04, "C (1.8 V)")]
                .iter()
                .filter(|(mask, _)| value & mask != 0)
                .map(|(_, class)| *class)
                .collect();
            format!("{clock}, classes {}", classes.join(", "))
        }
        ('B', _, Some(T15)) => format!("SPU (standard or proprietary use) = {value:02X}"),
        (_, _, Some(t)) => format!("specific to T={t}"),
        _ => "global, RFU".to_owned(),
    }
}

/// Name of a compact-TLV tag in the historical bytes (ISO 7816-4 §8.1.1.2).
fn compact_tag_name(tag: u8) -> &'static str {
    match tag {
        0x1 => "country code and national data",
        0x2 => "issuer identification number",
        0x3 => "card service data",
        0x4 => "initial access data",
        0x5 => "card issuer's data",
        0x6 => "pre-issuing data",
        0x7 => "card capabilities",
        0x8 => "status indicator",
        0xF => "application identifier",
        _ => "RFU",
    }
}

/// Multi-line, one ATR byte per line, decoded the way a person reads it.
impl fmt::Display for Atr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "ATR: {}", spaced_hex(&self.raw))?;
        let ts = match self.convention {
            Convention::Direct => 0x3B,
            Convention::Inverse => 0x3F,
        };
        writeln!(f, "TS = {ts:02X}: {}", self.convention)?;
        writeln!(
            f,
            "T0 = {:02X}: {}, {} historical bytes",
            self.t0,
            announced(self.t0 >> 4, 1),
            self.t0 & 0x0F
        )?;
        for group in &self.groups {
            let label = |kind: char| match group.qualifier {
                Some(t) if group.index >= 3 => format!("T{kind}{} (T={t})", group.index),
                _ => format!("T{kind}{}", group.index),
            };
            for (kind, byte) in [('A', group.ta), ('B', group.tb), ('C', group.tc)] {
                if let Some(value) = byte {
                    let meaning = describe_interface(kind, group, value);
                    writeln!(f, "{} = {value:02X}: {meaning}", label(kind))?;
                }
            }
            if let Some(td) = group.td {
                let next = group.index.saturating_add(1);
                writeln!(
                    f,
                    "TD{} = {td:02X}: T={} follows; {}",
                    group.index,
                    td & 0x0F,
                    announced(td >> 4, next)
                )?;
            }
        }
        if self.historical.is_empty() {
            writeln!(f, "Historical bytes: none")?;
        } else {
            let ascii: String = self
                .historical
                .iter()
                .map(|&b| {
                    if b.is_ascii_graphic() || b == b' ' {
                        char::from(b)
                    } else {
                        '.'
                    }
                })
                .collect();
            writeln!(
                f,
                "Historical bytes ({}): {} \"{ascii}\"",
                self.historical.len(),
                spaced_hex(&self.historical)
            )?;
            writeln!(f, "  {}", self.historical_category())?;
            if let Some(objects) = self.compact_tlv() {
                for (tag, value) in objects {
                    let value = if value.is_empty() {
                        "(empty)".to_owned()
                    } else {
                        spaced_hex(value)
                    };
                    writeln!(f, "  tag {tag:X} ({}) = {value}", compact_tag_name(tag))?;
                }
                if self.supports_command_chaining() {
                    writeln!(f, "  card supports command chaining")?;
                }
                if self.supports_extended_length() {
                    writeln!(f, "  card supports extended Lc and Le fields")?;
                }
            }
        }
        if let Some(tck) = self.tck {
            // Parsing rejected a wrong TCK, so a stored one is correct.
            writeln!(f, "TCK = {tck:02X} (correct)")?;
        }
        let protocols: Vec<String> = self.protocols().iter().map(ToString::to_string).collect();
        write!(f, "Protocols: {}", protocols.join(", "))
    }
}
