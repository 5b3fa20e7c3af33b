//! The card's view of a command APDU (ISO 7816-4 §5.1) and the status words it answers
//! (ISO 7816-4 §5.6, EMV Book 3 §6.3.5).
//!
//! The card accepts short APDUs only: its ATR's card capabilities (third software
//! function table, ISO 7816-4 §8.1.1.2.7) announce neither extended Lc/Le nor command
//! chaining, so an extended-length command is a wrong length (`6700`).

/// A status word (SW1 SW2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sw(pub u16);

impl Sw {
    /// Normal processing.
    pub const OK: Sw = Sw(0x9000);
    /// Memory failure (ISO 7816-4 §5.6 table 6): the state could not be written.
    pub const MEMORY_FAILURE: Sw = Sw(0x6581);
    /// Wrong length: Lc or the command's shape does not fit.
    pub const WRONG_LENGTH: Sw = Sw(0x6700);
    /// Logical channel not supported.
    pub const LOGICAL_CHANNEL_NOT_SUPPORTED: Sw = Sw(0x6881);
    /// Secure messaging not supported.
    pub const SECURE_MESSAGING_NOT_SUPPORTED: Sw = Sw(0x6882);
    /// Command chaining not supported.
    pub const CHAINING_NOT_SUPPORTED: Sw = Sw(0x6884);
    /// Security status not satisfied.
    pub const SECURITY_STATUS: Sw = Sw(0x6982);
    /// Authentication method blocked.
    pub const AUTH_BLOCKED: Sw = Sw(0x6983);
    /// Conditions of use not satisfied.
    pub const CONDITIONS: Sw = Sw(0x6985);
    /// Incorrect parameters in the command data field.
    pub const WRONG_DATA: Sw = Sw(0x6A80);
    /// File or application not found.
    pub const FILE_NOT_FOUND: Sw = Sw(0x6A82);
    /// Record not found.
    pub const RECORD_NOT_FOUND: Sw = Sw(0x6A83);
    /// Incorrect parameters P1-P2.
    pub const WRONG_P1P2: Sw = Sw(0x6A86);
    /// Referenced data not found.
    pub const DATA_NOT_FOUND: Sw = Sw(0x6A88);
    /// Instruction code not supported or invalid.
    pub const INS_NOT_SUPPORTED: Sw = Sw(0x6D00);
    /// Class not supported.
    pub const CLA_NOT_SUPPORTED: Sw = Sw(0x6E00);
    /// No precise diagnosis.
    pub const NO_DIAGNOSIS: Sw = Sw(0x6F00);

    /// `63Cx`: verification failed, `x` tries left (ISO 7816-4 §5.6 table 5).
    pub fn tries_left(n: u8) -> Sw {
        Sw(0x63C0 | u16::from(n.min(15)))
    }

    /// `61xx`: `xx` more bytes available with GET RESPONSE (`00` = 256 or more).
    pub fn bytes_available(n: usize) -> Sw {
        Sw(0x6100 | length_byte(n))
    }

    /// `6Cxx`: wrong Le; `xx` is the exact length available (`00` = 256).
    pub fn exact_length(n: usize) -> Sw {
        Sw(0x6C00 | length_byte(n))
    }

    /// The two bytes SW1 SW2.
    pub fn to_bytes(self) -> [u8; 2] {
        self.0.to_be_bytes()
    }
}

/// A length as one short-APDU byte: 1..=255 as is, 256 (and beyond, clamped) as `00`.
fn length_byte(n: usize) -> u16 {
    if n >= 256 { 0 } else { n as u16 }
}

/// A parsed short command APDU, borrowing its data field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Apdu<'a> {
    pub cla: u8,
    pub ins: u8,
    pub p1: u8,
    pub p2: u8,
    /// The command data field (empty for cases 1 and 2).
    pub data: &'a [u8],
    /// Ne, the maximum number of response bytes (Le `00` = 256); `None` for cases 1
    /// and 3.
    pub ne: Option<usize>,
}

impl Apdu<'_> {
    /// P1 and P2 as one big-endian value.
    pub fn p1p2(&self) -> u16 {
        u16::from_be_bytes([self.p1, self.p2])
    }
}

/// Splits a short command APDU into its fields (ISO 7816-4 §5.1, table 1):
///
/// - case 1: `CLA INS P1 P2`;
/// - case 2S: `CLA INS P1 P2 Le`;
/// - case 3S: `CLA INS P1 P2 Lc data` with Lc ≠ 0;
/// - case 4S: `CLA INS P1 P2 Lc data Le`.
///
/// A first length byte of `00` followed by more bytes opens an extended length field,
/// which this card refuses; any other mismatch between Lc and the bytes is `6700`.
pub(crate) fn parse(bytes: &[u8]) -> Result<Apdu<'_>, Sw> {
    let [cla, ins, p1, p2, rest @ ..] = bytes else {
        return Err(Sw::WRONG_LENGTH);
    };
    let (data, ne) = match rest {
        [] => (&[][..], None),
        [le] => (&[][..], Some(short_ne(*le))),
        [0, ..] => return Err(Sw::WRONG_LENGTH),
        [lc, body @ ..] => {
            let lc = usize::from(*lc);
            if body.len() == lc {
                (body, None)
            } else if body.len() == lc + 1 {
                let (data, le) = body.split_at(lc);
                (data, le.first().map(|le| short_ne(*le)))
            } else {
                return Err(Sw::WRONG_LENGTH);
            }
        }
    };
    Ok(Apdu {
        cla: *cla,
        ins: *ins,
        p1: *p1,
        p2: *p2,
        data,
        ne,
    })
}

/// A short Le byte as Ne: `00` means 256 (ISO 7816-4 §5.1).
fn short_ne(le: u8) -> usize {
    if le == 0 { 256 } else { usize::from(le) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    #[test]
    fn cases() {
        let c1 = h("00A40400");
        let a = parse(&c1).unwrap();
        assert_eq!((a.data, a.ne), (&[][..], None));

        let c2 = h("00B2010C 00");
        let a = parse(&c2).unwrap();
        assert_eq!((a.data, a.ne), (&[][..], Some(256)));

        let c3 = h("00200080 08 241234FFFFFFFFFF");
        let a = parse(&c3).unwrap();
        assert_eq!((a.data.len(), a.ne), (8, None));

        let c4 = h("00A40400 07 A0000000421010 00");
        let a = parse(&c4).unwrap();
        assert_eq!((a.data.len(), a.ne), (7, Some(256)));
    }

    #[test]
    fn malformed() {
        for bad in [
            "",
            "00",
            "00A404",
            "00A40400 05 A000",
            "00A40400 02 A0000000",
            "00A40400 00 0001 00",
        ] {
            assert_eq!(parse(&h(bad)), Err(Sw::WRONG_LENGTH), "{bad}");
        }
    }

    #[test]
    fn status_word_helpers() {
        assert_eq!(Sw::tries_left(2), Sw(0x63C2));
        assert_eq!(Sw::bytes_available(256), Sw(0x6100));
        assert_eq!(Sw::bytes_available(0x1C), Sw(0x611C));
        assert_eq!(Sw::exact_length(8), Sw(0x6C08));
    }
}
