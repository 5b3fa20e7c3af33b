//! Command APDUs: the owned [`Command`] (also the builder) and the borrowed
//! [`CommandView`], with the length-case rules of ISO 7816-3 §12.1.3 and
//! ISO 7816-4 §5.1.

use std::fmt;

use zeroize::Zeroize;

use super::{
    ApduError, Case, Encoding, HEADER_LEN, MAX_DATA_LEN, MAX_NE, MAX_SHORT_DATA_LEN, MAX_SHORT_NE,
    ins,
};

/// An owned command APDU: header, data field (Nc bytes, possibly none) and the
/// expected response length Ne (absent when no response data is expected).
///
/// Built with [`Command::new`] then [`Command::with_data`] / [`Command::with_le`], or
/// parsed with [`Command::parse`]. The invariants `Nc ≤ 65 535` and `1 ≤ Ne ≤ 65 536`
/// always hold, so every `Command` has an encoding.
///
/// The data field of a command that carries a PIN (see [`Command::carries_secret`]) is
/// hidden by `Debug`, and every data field is zeroized when the command is dropped.
#[derive(Clone, PartialEq, Eq, serde::Serialize)]
pub struct Command {
    cla: u8,
    ins: u8,
    p1: u8,
    p2: u8,
    #[serde(serialize_with = "super::serialize_hex")]
    data: Vec<u8>,
    ne: Option<usize>,
}

impl Command {
    /// A case 1 command: header only, no data, no response data expected.
    pub fn new(cla: u8, ins: u8, p1: u8, p2: u8) -> Command {
        Command {
            cla,
            ins,
            p1,
            p2,
            data: Vec::new(),
            ne: None,
        }
    }

    /// Sets the data field (Nc = its length). An empty field means "no data" (the Lc
    /// field is then omitted, ISO 7816-4 §5.1).
    ///
    /// # Errors
    /// [`ApduError::DataTooLong`] beyond 65 535 bytes, the most an extended Lc encodes.
    pub fn with_data(mut self, data: impl Into<Vec<u8>>) -> Result<Command, ApduError> {
        let data = data.into();
        if data.len() > MAX_DATA_LEN {
            return Err(ApduError::DataTooLong { len: data.len() });
        }
        self.data = data;
        Ok(self)
    }

    /// Sets Ne, the maximum number of response data bytes expected.
    ///
    /// 256 is encoded as the short Le `00` and 65 536 as the extended Le `0000`
    /// (ISO 7816-4 §5.1).
    ///
    /// # Errors
    /// [`ApduError::NeOutOfRange`] unless `1 ≤ ne ≤ 65 536`.
    pub fn with_le(mut self, ne: usize) -> Result<Command, ApduError> {
        if ne == 0 || ne > MAX_NE {
            return Err(ApduError::NeOutOfRange { ne });
        }
        self.ne = Some(ne);
        Ok(self)
    }

    /// Removes Ne: no response data is expected.
    pub fn without_le(mut self) -> Command {
        self.ne = None;
        self
    }

    /// The class byte.
    pub fn cla(&self) -> u8 {
        self.cla
    }

    /// The instruction byte.
    pub fn ins(&self) -> u8 {
        self.ins
    }

    /// Parameter byte P1.
    pub fn p1(&self) -> u8 {
        self.p1
    }

    /// Parameter byte P2.
    pub fn p2(&self) -> u8 {
        self.p2
    }

    /// The four header bytes CLA INS P1 P2.
    pub fn header(&self) -> [u8; 4] {
        [self.cla, self.ins, self.p1, self.p2]
    }

    /// The data field (empty when the command sends no data).
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Ne, the expected response length, if any.
    pub fn ne(&self) -> Option<usize> {
        self.ne
    }

    /// The case of the shortest encoding ([`Command::to_bytes`]).
    pub fn case(&self) -> Case {
        case_of(self.data.len(), self.ne, self.needs_extended())
    }

    /// Whether the command only fits extended length fields (Nc > 255 or Ne > 256).
    pub fn needs_extended(&self) -> bool {
        self.data.len() > MAX_SHORT_DATA_LEN || self.ne.is_some_and(|ne| ne > MAX_SHORT_NE)
    }

    /// Whether the data field holds a PIN or other reference data: VERIFY, CHANGE
    /// REFERENCE DATA and RESET RETRY COUNTER (ISO 7816-4 §7.5) in an interindustry
    /// class, PIN CHANGE/UNBLOCK (EMV Book 3 §6.5.10) in a proprietary one.
    pub fn carries_secret(&self) -> bool {
        carries_secret(self.cla, self.ins)
    }

    /// The shortest valid encoding: short length fields when they fit, otherwise
    /// extended ones for both Lc and Le (ISO 7816-3 §12.1.3 forbids mixing them).
    pub fn to_bytes(&self) -> Vec<u8> {
        let encoding = if self.needs_extended() {
            Encoding::Extended
        } else {
            Encoding::Short
        };
        let mut out = Vec::with_capacity(self.encoded_len(encoding));
        self.write(encoding, &mut out);
        out
    }

    /// The encoding with the given length-field form. A case 1 command has no length
    /// field, so both forms give the bare header.
    ///
    /// # Errors
    /// [`ApduError::NotShortEncodable`] when `Short` is asked for a command with
    /// Nc > 255 or Ne > 256.
    pub fn to_bytes_with(&self, encoding: Encoding) -> Result<Vec<u8>, ApduError> {
        if encoding == Encoding::Short && self.needs_extended() {
            return Err(ApduError::NotShortEncodable {
                nc: self.data.len(),
                ne: self.ne,
            });
        }
        let mut out = Vec::with_capacity(self.encoded_len(encoding));
        self.write(encoding, &mut out);
        Ok(out)
    }

    /// Parses an encoded command APDU in any of the seven cases, copying the data.
    ///
    /// # Errors
    /// As [`CommandView::parse`].
    pub fn parse(bytes: &[u8]) -> Result<Command, ApduError> {
        CommandView::parse(bytes).map(|view| view.to_owned())
    }

    /// A borrowed view of this command; its [`CommandView::case`] is the case of the
    /// shortest encoding.
    pub fn view(&self) -> CommandView<'_> {
        CommandView {
            cla: self.cla,
            ins: self.ins,
            p1: self.p1,
            p2: self.p2,
            data: &self.data,
            ne: self.ne,
            case: self.case(),
        }
    }

    fn encoded_len(&self, encoding: Encoding) -> usize {
        let length_bytes = match encoding {
            Encoding::Short => 2,
            Encoding::Extended => 5,
        };
        // Nc ≤ 65 535 by construction, so this cannot overflow.
        HEADER_LEN + length_bytes + self.data.len()
    }

    /// Appends the encoding; the caller has checked that `Short` fits.
    fn write(&self, encoding: Encoding, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.header());
        let nc = self.data.len();
        match encoding {
            Encoding::Short => {
                if nc > 0 {
                    // Case 3S/4S: one Lc byte, 01..FF.
                    out.push(low_byte(nc));
                    out.extend_from_slice(&self.data);
                }
                if let Some(ne) = self.ne {
                    // Case 2S/4S: one Le byte, 00 standing for 256.
                    out.push(low_byte(ne));
                }
            }
            Encoding::Extended => {
                if nc > 0 {
                    // Case 3E/4E: 00 Lc1 Lc2.
                    out.push(0);
                    out.extend_from_slice(&two_bytes(nc));
                    out.extend_from_slice(&self.data);
                }
                if let Some(ne) = self.ne {
                    // Case 2E: 00 Le1 Le2; case 4E: Le1 Le2 (the 00 came with Lc).
                    // 0000 stands for 65 536.
                    if nc == 0 {
                        out.push(0);
                    }
                    out.extend_from_slice(&two_bytes(ne));
                }
            }
        }
    }
}

impl Drop for Command {
    fn drop(&mut self) {
        // The data may be a PIN block (VERIFY); wipe it whatever the command.
        self.data.zeroize();
    }
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Command")
            .field("cla", &self.cla)
            .field("ins", &self.ins)
            .field("p1", &self.p1)
            .field("p2", &self.p2)
            .field("data", &DataField::new(&self.data, self.carries_secret()))
            .field("ne", &self.ne)
            .finish()
    }
}

impl fmt::Debug for CommandView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CommandView")
            .field("cla", &self.cla)
            .field("ins", &self.ins)
            .field("p1", &self.p1)
            .field("p2", &self.p2)
            .field("data", &DataField::new(self.data, self.carries_secret()))
            .field("ne", &self.ne)
            .field("case", &self.case)
            .finish()
    }
}

/// A data field for `Debug`: hex, or only its length when it holds a secret.
struct DataField<'a> {
    data: &'a [u8],
    secret: bool,
}

impl<'a> DataField<'a> {
    fn new(data: &'a [u8], secret: bool) -> DataField<'a> {
        DataField { data, secret }
    }
}

impl fmt::Debug for DataField<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.secret && !self.data.is_empty() {
            write!(f, "<{} bytes hidden>", self.data.len())
        } else {
            write!(f, "{}", hex::encode_upper(self.data))
        }
    }
}

/// See [`Command::carries_secret`].
pub(crate) fn carries_secret(cla: u8, ins_byte: u8) -> bool {
    let proprietary = cla & 0x80 != 0 && cla != 0xFF;
    if proprietary {
        ins_byte == ins::PIN_CHANGE_UNBLOCK
    } else {
        matches!(
            ins_byte,
            ins::VERIFY | ins::VERIFY_ODD | ins::CHANGE_REFERENCE_DATA | ins::RESET_RETRY_COUNTER
        )
    }
}

impl From<CommandView<'_>> for Command {
    fn from(view: CommandView<'_>) -> Command {
        view.to_owned()
    }
}

/// A command APDU borrowed from its encoding, parsed without copying the data field.
///
/// Its [`CommandView::case`] is the case as encoded, which may be extended even when
/// short fields would have sufficed. Like [`Command`], its `Debug` hides a PIN.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct CommandView<'a> {
    cla: u8,
    ins: u8,
    p1: u8,
    p2: u8,
    data: &'a [u8],
    ne: Option<usize>,
    case: Case,
}

impl<'a> CommandView<'a> {
    /// Parses an encoded command APDU, deciding its case from the body length as
    /// ISO 7816-3 §12.1.3 prescribes.
    ///
    /// With `L` the number of bytes after the header and `B1` the first of them:
    /// `L = 0` is case 1; `L = 1` is case 2S; `B1 ≠ 00` is a short Lc and then
    /// `L = 1 + B1` is case 3S and `L = 2 + B1` case 4S; `B1 = 00` starts an extended
    /// field and `L = 3` is case 2E, `L = 3 + Lc` case 3E and `L = 5 + Lc` case 4E.
    ///
    /// # Errors
    /// [`ApduError::Empty`], [`ApduError::TooShort`] (no full header),
    /// [`ApduError::LcMismatch`] (fewer data bytes than Lc announces),
    /// [`ApduError::TrailingBytes`] (bytes after the Le field),
    /// [`ApduError::ExtendedLcWithShortLe`], [`ApduError::TruncatedExtendedLength`]
    /// and [`ApduError::ZeroExtendedLc`].
    pub fn parse(bytes: &'a [u8]) -> Result<CommandView<'a>, ApduError> {
        let (cla, ins, p1, p2, body) = match bytes {
            [] => return Err(ApduError::Empty),
            [cla, ins, p1, p2, body @ ..] => (*cla, *ins, *p1, *p2, body),
            _ => return Err(ApduError::TooShort { len: bytes.len() }),
        };
        let (data, ne, case) = parse_body(body)?;
        Ok(CommandView {
            cla,
            ins,
            p1,
            p2,
            data,
            ne,
            case,
        })
    }

    /// The class byte.
    pub fn cla(&self) -> u8 {
        self.cla
    }

    /// The instruction byte.
    pub fn ins(&self) -> u8 {
        self.ins
    }

    /// Parameter byte P1.
    pub fn p1(&self) -> u8 {
        self.p1
    }

    /// Parameter byte P2.
    pub fn p2(&self) -> u8 {
        self.p2
    }

    /// The four header bytes CLA INS P1 P2.
    pub fn header(&self) -> [u8; 4] {
        [self.cla, self.ins, self.p1, self.p2]
    }

    /// The data field, borrowed from the parsed bytes (empty when absent).
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// Ne, the expected response length, if an Le field is present.
    pub fn ne(&self) -> Option<usize> {
        self.ne
    }

    /// The case as encoded.
    pub fn case(&self) -> Case {
        self.case
    }

    /// Whether the data field holds a PIN; see [`Command::carries_secret`].
    pub fn carries_secret(&self) -> bool {
        carries_secret(self.cla, self.ins)
    }

    /// An owned copy of the command.
    pub fn to_owned(&self) -> Command {
        Command {
            cla: self.cla,
            ins: self.ins,
            p1: self.p1,
            p2: self.p2,
            data: self.data.to_vec(),
            ne: self.ne,
        }
    }
}

/// Offset of the first body byte (B1): just after the header.
const BODY: usize = HEADER_LEN;

/// Decodes the body (everything after CLA INS P1 P2). Offsets in errors are from the
/// start of the APDU; they index bytes that exist, so they cannot overflow.
fn parse_body(body: &[u8]) -> Result<(&[u8], Option<usize>, Case), ApduError> {
    match body {
        // Case 1: L = 0.
        [] => Ok((&[], None, Case::One)),
        // Case 2S: L = 1, Le = B1 ('00' means 256).
        [le] => Ok((&[], Some(short_ne(*le)), Case::TwoShort)),
        // B1 = '00' with L > 1: an extended length field.
        [0, rest @ ..] => parse_extended(body.len(), rest),
        // B1 ≠ '00': a short Lc.
        [lc, rest @ ..] => {
            let lc = usize::from(*lc);
            let (data, tail) = rest.split_at_checked(lc).ok_or(ApduError::LcMismatch {
                offset: BODY,
                lc,
                available: rest.len(),
            })?;
            match tail {
                // Case 3S: L = 1 + Lc.
                [] => Ok((data, None, Case::ThreeShort)),
                // Case 4S: L = 2 + Lc.
                [le] => Ok((data, Some(short_ne(*le)), Case::FourShort)),
                [_, extra @ ..] => Err(ApduError::TrailingBytes {
                    offset: BODY + 2 + lc,
                    count: extra.len(),
                }),
            }
        }
    }
}

/// Decodes a body starting with '00' followed by `rest` (`body_len = 1 + rest.len()`).
fn parse_extended(body_len: usize, rest: &[u8]) -> Result<(&[u8], Option<usize>, Case), ApduError> {
    let [hi, lo, tail @ ..] = rest else {
        return Err(ApduError::TruncatedExtendedLength {
            offset: BODY,
            available: body_len,
        });
    };
    let value = usize::from(u16::from_be_bytes([*hi, *lo]));
    if tail.is_empty() {
        // Case 2E: L = 3, Le = B2 B3 ('0000' means 65 536).
        return Ok((&[], Some(extended_ne(value)), Case::TwoExtended));
    }
    if value == 0 {
        return Err(ApduError::ZeroExtendedLc {
            offset: BODY,
            available: tail.len(),
        });
    }
    let lc = value;
    let (data, le) = tail.split_at_checked(lc).ok_or(ApduError::LcMismatch {
        offset: BODY,
        lc,
        available: tail.len(),
    })?;
    match le {
        // Case 3E: L = 3 + Lc.
        [] => Ok((data, None, Case::ThreeExtended)),
        // Case 4E: L = 5 + Lc, Le = last two bytes ('0000' means 65 536).
        [hi, lo] => Ok((
            data,
            Some(extended_ne(usize::from(u16::from_be_bytes([*hi, *lo])))),
            Case::FourExtended,
        )),
        [_] => Err(ApduError::ExtendedLcWithShortLe {
            offset: BODY + 3 + lc,
        }),
        [_, _, extra @ ..] => Err(ApduError::TrailingBytes {
            offset: BODY + 5 + lc,
            count: extra.len(),
        }),
    }
}

/// Short Le: '00' means 256 (ISO 7816-4 §5.1).
fn short_ne(le: u8) -> usize {
    if le == 0 {
        MAX_SHORT_NE
    } else {
        usize::from(le)
    }
}

/// Extended Le: '0000' means 65 536 (ISO 7816-4 §5.1).
fn extended_ne(le: usize) -> usize {
    if le == 0 { MAX_NE } else { le }
}

/// The case for a data length and Ne in the given form.
fn case_of(nc: usize, ne: Option<usize>, extended: bool) -> Case {
    match (nc > 0, ne.is_some(), extended) {
        (false, false, _) => Case::One,
        (false, true, false) => Case::TwoShort,
        (true, false, false) => Case::ThreeShort,
        (true, true, false) => Case::FourShort,
        (false, true, true) => Case::TwoExtended,
        (true, false, true) => Case::ThreeExtended,
        (true, true, true) => Case::FourExtended,
    }
}

/// The low byte of a length; 256 becomes '00' as short Le requires.
fn low_byte(n: usize) -> u8 {
    // Masked first, so the cast keeps exactly the low byte.
    (n & 0xFF) as u8
}

/// A two-byte big-endian length; 65 536 becomes '0000' as extended Le requires.
fn two_bytes(n: usize) -> [u8; 2] {
    ((n & 0xFFFF) as u16).to_be_bytes()
}
