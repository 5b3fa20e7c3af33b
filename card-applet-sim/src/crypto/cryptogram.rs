//! Application cryptograms (ARQC, TC, AAC) and issuer authentication (ARPC) for the
//! cryptogram versions the card supports: EMV Book 2 §8.1 and §8.2 as Visa CVN 10 and
//! CVN 18 instantiate them.

use super::mac::xor_into;
use super::{
    CryptoError, DoubleKey, Padding, derive_common_session_key, derive_icc_master_key,
    derive_icc_master_key_option_b, retail_mac,
};

/// Length of the Issuer Application Data that holds a Visa CVR: length byte, derivation
/// key index, CVN, then the four CVR bytes (VIS IAD formats 0, 1 and 3).
const VISA_IAD_CVR_END: usize = 7;
/// Offset of the CVR in a Visa IAD.
const VISA_IAD_CVR_START: usize = 3;
/// Longest proprietary authentication data of ARPC method 2 (EMV Book 2 §8.2.2).
const ARPC2_PROPRIETARY_MAX: usize = 8;

/// The cryptogram versions the card supports (the CVN byte of the Issuer Application
/// Data, tag 9F10).
///
/// | | ICC master key | AC and ARPC key | AC padding | AC data |
/// |---|---|---|---|---|
/// | `Visa10` (CVN `0A`) | Option A | the ICC master key itself | method 1 (zeros) | minimum set + CVR |
/// | `Cvn18` (CVN `12`) | Option B | common session key (ATC) | method 2 (`80`) | minimum set + whole IAD |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CryptogramVersion {
    /// Visa Cryptogram Version Number 10: the original VIS contact cryptogram.
    Visa10,
    /// Visa Cryptogram Version Number 18 (`12` hex): the VIS cryptogram with EMV
    /// session keys and padding.
    Cvn18,
}

impl CryptogramVersion {
    /// The version with this CVN byte (`0x0A` or `0x12`), if the card supports it.
    pub fn from_cvn(byte: u8) -> Option<Self> {
        match byte {
            0x0A => Some(CryptogramVersion::Visa10),
            0x12 => Some(CryptogramVersion::Cvn18),
            _ => None,
        }
    }

    /// The CVN byte as it appears in the Issuer Application Data.
    pub fn cvn(&self) -> u8 {
        match self {
            CryptogramVersion::Visa10 => 0x0A,
            CryptogramVersion::Cvn18 => 0x12,
        }
    }

    /// The padding of the application cryptogram's input.
    pub fn padding(&self) -> Padding {
        match self {
            // VIS CVN 10: zero padding, ISO/IEC 9797-1 method 1.
            CryptogramVersion::Visa10 => Padding::Method1,
            // EMV Book 2 A1.2.1: padding method 2.
            CryptogramVersion::Cvn18 => Padding::Method2,
        }
    }

    /// The key this version computes the AC and the ARPC with: the ICC master key itself
    /// for CVN 10 (no session key), the A1.3.1 common session key for the ATC for CVN 18.
    pub fn ac_key(&self, icc_master_key: &DoubleKey, atc: u16) -> DoubleKey {
        match self {
            CryptogramVersion::Visa10 => icc_master_key.clone(),
            CryptogramVersion::Cvn18 => derive_common_session_key(icc_master_key, atc),
        }
    }

    /// The ICC master key this version derives from the issuer master key: Option A for
    /// CVN 10, Option B for CVN 18 (identical to A for PANs of up to 16 digits).
    pub fn derive_icc_master_key(
        &self,
        issuer_master_key: &DoubleKey,
        pan: &str,
        pan_sequence: u8,
    ) -> Result<DoubleKey, CryptoError> {
        match self {
            CryptogramVersion::Visa10 => {
                derive_icc_master_key(issuer_master_key, pan, pan_sequence)
            }
            CryptogramVersion::Cvn18 => {
                derive_icc_master_key_option_b(issuer_master_key, pan, pan_sequence)
            }
        }
    }
}

/// The values an application cryptogram covers, by name, so that the card and the
/// acquirer assemble the same bytes. Amounts, dates and codes are in their EMV encodings
/// (n12 BCD amounts, n3 BCD country and currency codes, YYMMDD date, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcInput<'a> {
    /// The CDOL1 data exactly as the terminal sent it in GENERATE AC. Neither CVN 10 nor
    /// CVN 18 covers it as a block (both take the named fields below), but it travels
    /// with them so a caller can check that the named fields were read from it.
    pub cdol1_data: &'a [u8],
    /// Amount, Authorised (9F02), n12.
    pub amount_authorised: [u8; 6],
    /// Amount, Other (9F03), n12.
    pub amount_other: [u8; 6],
    /// Terminal Country Code (9F1A), n3.
    pub terminal_country: [u8; 2],
    /// Terminal Verification Results (95).
    pub tvr: [u8; 5],
    /// Transaction Currency Code (5F2A), n3.
    pub currency: [u8; 2],
    /// Transaction Date (9A), YYMMDD.
    pub date: [u8; 3],
    /// Transaction Type (9C).
    pub transaction_type: u8,
    /// Unpredictable Number (9F37).
    pub unpredictable_number: [u8; 4],
    /// Application Interchange Profile (82).
    pub aip: [u8; 2],
    /// Application Transaction Counter (9F36).
    pub atc: u16,
    /// Issuer Application Data (9F10) as the card returns it with this cryptogram.
    pub iad: &'a [u8],
}

impl AcInput<'_> {
    /// The EMV Book 2 §8.1.1 recommended minimum set, in its order: 9F02, 9F03, 9F1A,
    /// 95, 5F2A, 9A, 9C, 9F37, 82, 9F36 (33 bytes).
    fn minimum_set(&self) -> Vec<u8> {
        let mut data = Vec::with_capacity(33_usize.saturating_add(self.iad.len()));
        data.extend_from_slice(&self.amount_authorised);
        data.extend_from_slice(&self.amount_other);
        data.extend_from_slice(&self.terminal_country);
        data.extend_from_slice(&self.tvr);
        data.extend_from_slice(&self.currency);
        data.extend_from_slice(&self.date);
        data.push(self.transaction_type);
        data.extend_from_slice(&self.unpredictable_number);
        data.extend_from_slice(&self.aip);
        data.extend_from_slice(&self.atc.to_be_bytes());
        data
    }
}

/// The bytes over which this version computes the AC.
///
/// - Visa CVN 10: the §8.1.1 minimum set (9F02 9F03 9F1A 95 5F2A 9A 9C 9F37 82 9F36),
///   then the 4-byte CVR, bytes 4 to 7 of the IAD (`IAD[3..7]`): 37 bytes.
/// - CVN 18: the same minimum set, then the whole IAD, as Visa defines CVN 18 and as
///   pyemv (`cvn.VisaCVN18.generate_ac`) and jPOS compute it. With the usual Visa
///   CDOL1 (9F02 9F03 9F1A 95 5F2A 9A 9C 9F37) this equals "CDOL1 data ‖ AIP ‖ ATC ‖
///   IAD"; with a longer CDOL1 the extra terminal data is not covered.
///
/// Total over every input: an IAD too short to hold a CVR contributes the CVR bytes it
/// has (the cryptogram then cannot verify). Use [`try_ac_input_data`] to reject it.
pub fn ac_input_data(version: CryptogramVersion, input: &AcInput<'_>) -> Vec<u8> {
    let mut data = input.minimum_set();
    match version {
        CryptogramVersion::Visa10 => {
            let cvr = input
                .iad
                .get(VISA_IAD_CVR_START..VISA_IAD_CVR_END)
                .or_else(|| input.iad.get(VISA_IAD_CVR_START..))
                .unwrap_or(&[]);
            data.extend_from_slice(cvr);
        }
        CryptogramVersion::Cvn18 => data.extend_from_slice(input.iad),
    }
    data
}

/// [`ac_input_data`], refusing an IAD too short for the version (fewer than 7 bytes for
/// CVN 10, which reads the CVR from it).
pub fn try_ac_input_data(
    version: CryptogramVersion,
    input: &AcInput<'_>,
) -> Result<Vec<u8>, CryptoError> {
    if version == CryptogramVersion::Visa10 && input.iad.len() < VISA_IAD_CVR_END {
        return Err(CryptoError::IssuerApplicationDataTooShort {
            expected: VISA_IAD_CVR_END,
            found: input.iad.len(),
        });
    }
    Ok(ac_input_data(version, input))
}

/// The application cryptogram (ARQC, TC or AAC: one computation, EMV Book 2 §8.1.2):
/// the ISO/IEC 9797-1 algorithm 3 MAC of `data` under this version's key
/// ([`CryptogramVersion::ac_key`]) with this version's padding. `data` is what
/// [`ac_input_data`] builds; `atc` selects the session key and is unused by CVN 10.
pub fn application_cryptogram(
    version: CryptogramVersion,
    icc_master_key: &DoubleKey,
    atc: u16,
    data: &[u8],
) -> [u8; 8] {
    let key = version.ac_key(icc_master_key, atc);
    retail_mac(&key, data, version.padding())
}

/// ARPC method 1 (EMV Book 2 §8.2.1) under this version's AC key:
/// `ARPC = 3DES(key)[ARQC ⊕ (ARC ‖ 00 00 00 00 00 00)]`.
///
/// Visa CVN 10 specifies this method; Visa CVN 18 specifies method 2
/// ([`arpc_method2`]), but method 1 with the CVN 18 session key is what an issuer
/// configured for method 1 sends, so both are offered.
pub fn arpc_method1(
    version: CryptogramVersion,
    icc_master_key: &DoubleKey,
    atc: u16,
    arqc: &[u8; 8],
    authorisation_response_code: &[u8; 2],
) -> [u8; 8] {
    let key = version.ac_key(icc_master_key, atc);
    arpc_method1_with_key(&key, arqc, authorisation_response_code)
}

/// ARPC method 1 (EMV Book 2 §8.2.1) under an explicit key.
pub fn arpc_method1_with_key(
    key: &DoubleKey,
    arqc: &[u8; 8],
    authorisation_response_code: &[u8; 2],
) -> [u8; 8] {
    let [arc1, arc2] = *authorisation_response_code;
    let mut block = *arqc;
    xor_into(&mut block, &[arc1, arc2, 0, 0, 0, 0, 0, 0]);
    key.tdes_encrypt(block)
}

/// ARPC method 2 (EMV Book 2 §8.2.2) under this version's AC key: the first four bytes
/// of the ISO/IEC 9797-1 algorithm 3 MAC (padding method 2) of
/// `ARQC ‖ CSU ‖ proprietary authentication data` (0 to 8 bytes). Visa CVN 18 uses it.
pub fn arpc_method2(
    version: CryptogramVersion,
    icc_master_key: &DoubleKey,
    atc: u16,
    arqc: &[u8; 8],
    card_status_update: &[u8; 4],
    proprietary_authentication_data: &[u8],
) -> Result<[u8; 4], CryptoError> {
    let key = version.ac_key(icc_master_key, atc);
    arpc_method2_with_key(
        &key,
        arqc,
        card_status_update,
        proprietary_authentication_data,
    )
}

/// ARPC method 2 (EMV Book 2 §8.2.2) under an explicit key.
pub fn arpc_method2_with_key(
    key: &DoubleKey,
    arqc: &[u8; 8],
    card_status_update: &[u8; 4],
    proprietary_authentication_data: &[u8],
) -> Result<[u8; 4], CryptoError> {
    if proprietary_authentication_data.len() > ARPC2_PROPRIETARY_MAX {
        return Err(CryptoError::ProprietaryAuthenticationDataLength {
            found: proprietary_authentication_data.len(),
        });
    }
    let mut data = Vec::with_capacity(20);
    data.extend_from_slice(arqc);
    data.extend_from_slice(card_status_update);
    data.extend_from_slice(proprietary_authentication_data);
    let [a, b, c, d, ..] = retail_mac(key, &data, Padding::Method2);
    Ok([a, b, c, d])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(iad: &[u8]) -> AcInput<'_> {
        AcInput {
            cdol1_data: &[],
            amount_authorised: [0x00, 0x00, 0x00, 0x00, 0x40, 0x00],
            amount_other: [0; 6],
            terminal_country: [0x01, 0x24],
            tvr: [0x80, 0x00, 0x04, 0x80, 0x00],
            currency: [0x01, 0x24],
            date: [0x19, 0x11, 0x05],
            transaction_type: 0x01,
            unpredictable_number: [0x52, 0xBF, 0x45, 0x85],
            aip: [0x18, 0x00],
            atc: 0x001C,
            iad,
        }
    }

    const MINIMUM_SET: &str = "000000004000000000000000012480000480000124191105015\
                               2BF45851800001C";

    /// One row per (version, IAD): the exact bytes, or the exact error.
    #[test]
    fn ac_input_layout_table() {
        let rows: &[(CryptogramVersion, &str, Result<&str, CryptoError>)] = &[
            (CryptogramVersion::Visa10, "06010A03A06010", Ok("03A06010")),
            (
                CryptogramVersion::Visa10,
                "06010A03A0601000",
                Ok("03A06010"),
            ),
            (
                CryptogramVersion::Visa10,
                "06010A03A060",
                Err(CryptoError::IssuerApplicationDataTooShort {
                    expected: 7,
                    found: 6,
                }),
            ),
            (
                CryptogramVersion::Visa10,
                "",
                Err(CryptoError::IssuerApplicationDataTooShort {
                    expected: 7,
                    found: 0,
                }),
            ),
            (
                CryptogramVersion::Cvn18,
                "06011203A0B800",
                Ok("06011203A0B800"),
            ),
            (CryptogramVersion::Cvn18, "", Ok("")),
        ];
        for (version, iad, expected) in rows {
            let iad = hex::decode(iad).unwrap();
            let got = try_ac_input_data(*version, &sample(&iad)).map(hex::encode_upper);
            let expected = expected.clone().map(|tail| format!("{MINIMUM_SET}{tail}"));
            assert_eq!(got, expected, "{version:?} IAD {}", hex::encode_upper(&iad));
        }
    }

    #[test]
    fn total_layout_keeps_the_cvr_bytes_present() {
        let iad = hex::decode("06010A03A0").unwrap();
        let data = ac_input_data(CryptogramVersion::Visa10, &sample(&iad));
        assert_eq!(hex::encode_upper(data), format!("{MINIMUM_SET}03A0"));
        let data = ac_input_data(CryptogramVersion::Visa10, &sample(&[0x06, 0x01]));
        assert_eq!(hex::encode_upper(data), MINIMUM_SET);
    }

    #[test]
    fn cvn_bytes_round_trip() {
        for byte in 0..=u8::MAX {
            match CryptogramVersion::from_cvn(byte) {
                Some(version) => assert_eq!(version.cvn(), byte),
                None => assert!(byte != 0x0A && byte != 0x12, "CVN {byte:02X}"),
            }
        }
        assert_eq!(
            CryptogramVersion::from_cvn(0x0A),
            Some(CryptogramVersion::Visa10)
        );
        assert_eq!(
            CryptogramVersion::from_cvn(0x12),
            Some(CryptogramVersion::Cvn18)
        );
    }

    #[test]
    fn arpc2_rejects_long_proprietary_data() {
        let key = DoubleKey::new([0x11; 16]);
        assert_eq!(
            arpc_method2_with_key(&key, &[0; 8], &[0; 4], &[0; 9]),
            Err(CryptoError::ProprietaryAuthenticationDataLength { found: 9 })
        );
        assert!(arpc_method2_with_key(&key, &[0; 8], &[0; 4], &[0; 8]).is_ok());
    }

    #[test]
    fn visa10_ac_key_is_the_master_key_and_cvn18_depends_on_the_atc() {
        let mk = DoubleKey::new([0x23; 16]);
        let data = [0xAB; 37];
        assert_eq!(
            application_cryptogram(CryptogramVersion::Visa10, &mk, 1, &data),
            application_cryptogram(CryptogramVersion::Visa10, &mk, 2, &data)
        );
        assert_ne!(
            application_cryptogram(CryptogramVersion::Cvn18, &mk, 1, &data),
            application_cryptogram(CryptogramVersion::Cvn18, &mk, 2, &data)
        );
    }
}
