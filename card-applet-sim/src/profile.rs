//! Cards described by data: the TOML profile format, its validation, and the builtin
//! profiles shipped under `card-applet-sim/profiles/`.
//!
//! A profile holds everything that makes one card differ from another: ATR and T=0
//! behaviour, PAN and cardholder data, PIN and try limit, the ECDSA signing key, and one
//! or more EMV payment applications (AID, FCI, PDOL, AIP/AFL, records, CDOL1/CDOL2,
//! cryptogram version and issuer master key, card risk parameters, transaction log).
//! `docs/card-profiles.md` describes the format field by field.
//!
//! Loading checks the profile for consistency so that the card never meets a
//! contradiction at run time: the ATR is well formed (ISO 7816-3 §8), records are BER-TLV
//! `70` templates that fit a short READ RECORD, the AFL points at records that exist, the
//! records agree with the card data (PAN, sequence number, expiry, CDOLs), the CDOLs hold
//! the data objects the cryptogram needs. Every shipped profile carries **test keys
//! only**.

use std::fmt;
use std::path::Path;

use p256::ecdsa::SigningKey;
use serde::Deserialize;
use thiserror::Error;
use zeroize::{Zeroize, Zeroizing};

use crate::card::tlv::{self, DolEntry, Tag, TlvError};
use crate::crypto::{CryptoError, CryptogramVersion, DoubleKey};

/// The builtin profiles, embedded in the binary. The first is the default card.
const BUILTINS: [(&str, &str); 5] = [
    ("cb", include_str!("../profiles/cb.toml")),
    ("visa", include_str!("../profiles/visa.toml")),
    ("mastercard", include_str!("../profiles/mastercard.toml")),
    ("t0-slow", include_str!("../profiles/t0-slow.toml")),
    ("blocked", include_str!("../profiles/blocked.toml")),
];

/// The names of [`BUILTINS`], for [`Profile::builtin_names`].
const BUILTIN_NAMES: [&str; 5] = ["cb", "visa", "mastercard", "t0-slow", "blocked"];

/// Why a profile could not be loaded. Every variant names the profile's origin (a file
/// path or `builtin:NAME`); none carries key material, a PIN or a PAN.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// [`Profile::builtin`] was asked for a name that is not builtin.
    #[error("unknown builtin profile {name:?}; builtin profiles are: {known}")]
    UnknownBuiltin {
        /// The name asked for.
        name: String,
        /// The builtin names, comma-separated.
        known: String,
    },
    /// The profile file could not be read.
    #[error("cannot read profile {path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The text is not valid TOML or does not have the profile's shape (unknown key,
    /// missing key, wrong type). Only the parser's message and the position are kept:
    /// the parser's own rendering quotes the offending line, which may hold a key.
    #[error("profile {origin}, line {line}, column {column}: {message}")]
    Toml {
        /// Where the text came from.
        origin: String,
        /// 1-based line of the fault (0 when the parser gave no position).
        line: usize,
        /// 1-based column of the fault (0 when the parser gave no position).
        column: usize,
        /// What the parser expected or found.
        message: String,
    },
    /// A hex field does not decode.
    #[error("profile {origin}: field {field}: {source}")]
    Hex {
        /// Where the profile came from.
        origin: String,
        /// The field, e.g. `application[0].aip`.
        field: String,
        /// What is wrong with the hex text.
        source: hex::FromHexError,
    },
    /// A field's value is outside what it may hold.
    #[error("profile {origin}: field {field}: expected {expected}, found {found}")]
    InvalidField {
        /// Where the profile came from.
        origin: String,
        /// The field, e.g. `application[0].afl`.
        field: String,
        /// What the field must hold.
        expected: &'static str,
        /// What it holds (`<hidden>` for secrets).
        found: String,
    },
    /// A BER-TLV field (record, FCI data, DOL) is malformed.
    #[error("profile {origin}: field {field}: {source}")]
    Tlv {
        /// Where the profile came from.
        origin: String,
        /// The field.
        field: String,
        /// The position and nature of the fault.
        source: TlvError,
    },
    /// A key or PAN was refused by the EMV algorithms.
    #[error("profile {origin}: field {field}: {source}")]
    Crypto {
        /// Where the profile came from.
        origin: String,
        /// The field.
        field: String,
        /// What the crypto layer refused.
        source: CryptoError,
    },
    /// The AFL names a record the application does not have.
    #[error(
        "profile {origin}: application {application}: AFL names SFI {sfi} record {record}, which is not defined"
    )]
    MissingRecord {
        /// Where the profile came from.
        origin: String,
        /// Index of the application in the profile.
        application: usize,
        /// Short file identifier.
        sfi: u8,
        /// Record number.
        record: u8,
    },
    /// Two records with the same SFI and number, or two applications with the same AID.
    #[error("profile {origin}: field {field}: {what} defined twice")]
    Duplicate {
        /// Where the profile came from.
        origin: String,
        /// The field.
        field: String,
        /// What is duplicated.
        what: String,
    },
    /// A record's data object disagrees with the card data of the profile (the terminal
    /// reads the record, the card computes with the profile field: they must be one).
    #[error(
        "profile {origin}: application {application}: SFI {sfi} record {record}: tag {tag:X} differs from {field}"
    )]
    RecordDisagrees {
        /// Where the profile came from.
        origin: String,
        /// Index of the application.
        application: usize,
        /// Short file identifier.
        sfi: u8,
        /// Record number.
        record: u8,
        /// The tag in the record.
        tag: u32,
        /// The profile field it must equal.
        field: &'static str,
    },
    /// A data object the card needs is absent (from a DOL or from the records).
    #[error("profile {origin}: application {application}: {place} lacks tag {tag:X} ({why})")]
    MissingTag {
        /// Where the profile came from.
        origin: String,
        /// Index of the application.
        application: usize,
        /// `cdol1`, `cdol2` or `records`.
        place: &'static str,
        /// The missing tag.
        tag: u32,
        /// Why it is needed.
        why: &'static str,
    },
}

/// How a card answers the T=0 protocol's length handling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LengthBehaviour {
    /// APDU-level answers as a T=1 card gives them: data with 9000 whenever Le allows it,
    /// `6Cxx` only when a non-zero Le is too short.
    Direct,
    /// As a T=0 card (ISO 7816-3 §10.3.5, ISO 7816-4 §5.3.4): a command carrying data that
    /// has data to return answers `61xx` and holds the data for GET RESPONSE; a command
    /// without data whose Le is not exactly the available length answers `6Cxx`.
    T0GetResponse,
}

/// How the card behaves on a serial line, below the APDU level: what `telepay serial
/// serve` does when it plays this card (ISO 7816-3 §10.3.3, §11.3.2.2). The APDU
/// answers do not change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LineBehaviour {
    /// T=0: NULL procedure bytes (`60`) sent before answering each command, as a card
    /// does while it computes.
    pub t0_null_bytes: u8,
    /// T=0: acknowledge data one byte at a time (INS ⊕ FF before each byte) instead of
    /// once with INS.
    pub t0_ack_each_byte: bool,
    /// T=1: the waiting time extension multiplier asked (S(WTX request)) before
    /// answering each command; 0 asks none.
    pub t1_waiting_time_extension: u8,
}

/// The payment directories a card holds: contact terminals look for the PSE
/// `1PAY.SYS.DDF01` (EMV Book 1 §12.2), contactless ones for the PPSE `2PAY.SYS.DDF01`;
/// a card with neither is found by trying AIDs (EMV Book 1 §12.3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Directories {
    /// The contact Payment System Environment.
    pub pse: bool,
    /// The Proximity Payment System Environment.
    pub ppse: bool,
}

/// The layout of a GET PROCESSING OPTIONS or GENERATE AC response (EMV Book 3 §6.5.5.4,
/// §6.5.8.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFormat {
    /// Tag `80`: the values concatenated without their tags.
    Format1,
    /// Tag `77`: a constructed template of tagged data objects.
    Format2,
}

/// The card risk management parameters of an application (EMV Book 3 §10.8 describes
/// what the terminal sees; the card's own checks are issuer-defined).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RiskParameters {
    /// Amounts (9F02, minor units) above this go online (ARQC).
    pub floor_limit: u64,
    /// Every transaction goes online, whatever the amount.
    pub always_online: bool,
    /// The application currency (ISO 4217 numeric, BCD as in 5F2A); a transaction in
    /// another currency goes online.
    pub currency: Option<[u8; 2]>,
    /// How many offline transactions (ATC minus last online ATC) may follow each other
    /// before the card insists on going online.
    pub max_consecutive_offline: Option<u16>,
}

/// Where and how the application keeps its transaction log (EMV Book 3 Annex D).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// The SFI of the log records (11 to 30).
    pub sfi: u8,
    /// How many entries are kept; the oldest is dropped beyond it.
    pub max_records: u8,
    /// The Log Format (9F4F): a DOL naming the values of each entry.
    pub format: Vec<u8>,
    pub(crate) format_entries: Vec<DolEntry>,
}

/// One record of an application's elementary files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Short file identifier (1 to 30).
    pub sfi: u8,
    /// Record number (1 to 254).
    pub number: u8,
    /// The whole record as READ RECORD returns it: a `70` template.
    pub data: Vec<u8>,
}

/// One EMV payment application of a card.
#[derive(Clone)]
pub struct ApplicationProfile {
    aid: Vec<u8>,
    label: String,
    preferred_name: Option<String>,
    priority: u8,
    pdol: Vec<u8>,
    pub(crate) pdol_entries: Vec<DolEntry>,
    aip: [u8; 2],
    afl: Vec<u8>,
    gpo_format: ResponseFormat,
    gen_ac_format: ResponseFormat,
    cdol1: Vec<u8>,
    pub(crate) cdol1_entries: Vec<DolEntry>,
    cdol2: Vec<u8>,
    pub(crate) cdol2_entries: Vec<DolEntry>,
    cvn: u8,
    derivation_key_index: u8,
    issuer_master_key: DoubleKey,
    fci_discretionary: Vec<u8>,
    log: LogSettings,
    risk: RiskParameters,
    records: Vec<Record>,
}

impl ApplicationProfile {
    /// The application identifier (ISO 7816-5), 5 to 16 bytes.
    pub fn aid(&self) -> &[u8] {
        &self.aid
    }
    /// The Application Label (50).
    pub fn label(&self) -> &str {
        &self.label
    }
    /// The Application Preferred Name (9F12), if any.
    pub fn preferred_name(&self) -> Option<&str> {
        self.preferred_name.as_deref()
    }
    /// The Application Priority Indicator (87).
    pub fn priority(&self) -> u8 {
        self.priority
    }
    /// The PDOL (9F38); empty when the card asks for nothing (GPO data `83 00`).
    pub fn pdol(&self) -> &[u8] {
        &self.pdol
    }
    /// The Application Interchange Profile (82).
    pub fn aip(&self) -> [u8; 2] {
        self.aip
    }
    /// The Application File Locator (94), 4 bytes per entry.
    pub fn afl(&self) -> &[u8] {
        &self.afl
    }
    /// The GET PROCESSING OPTIONS response format.
    pub fn gpo_format(&self) -> ResponseFormat {
        self.gpo_format
    }
    /// The GENERATE AC response format.
    pub fn gen_ac_format(&self) -> ResponseFormat {
        self.gen_ac_format
    }
    /// CDOL1 (8C).
    pub fn cdol1(&self) -> &[u8] {
        &self.cdol1
    }
    /// CDOL2 (8D).
    pub fn cdol2(&self) -> &[u8] {
        &self.cdol2
    }
    /// The cryptogram version number (10 for Visa CVN 10, 18 for CVN 18).
    pub fn cvn(&self) -> u8 {
        self.cvn
    }
    /// The cryptogram version, as the crypto module names it. Always `Some` for a loaded
    /// profile: loading refuses versions the crypto module does not know.
    pub fn cryptogram_version(&self) -> Option<CryptogramVersion> {
        CryptogramVersion::from_cvn(self.cvn)
    }
    /// The Derivation Key Index written in the IAD.
    pub fn derivation_key_index(&self) -> u8 {
        self.derivation_key_index
    }
    /// The issuer master key for application cryptograms (a TEST key in every shipped
    /// profile). Acquirer simulations need it to verify ARQCs and compute ARPCs.
    pub fn issuer_master_key(&self) -> &DoubleKey {
        &self.issuer_master_key
    }
    /// Extra data objects placed in the FCI Issuer Discretionary Data (BF0C).
    pub fn fci_discretionary(&self) -> &[u8] {
        &self.fci_discretionary
    }
    /// The transaction log settings.
    pub fn log(&self) -> &LogSettings {
        &self.log
    }
    /// The card risk management parameters.
    pub fn risk(&self) -> &RiskParameters {
        &self.risk
    }
    /// The records, in profile order.
    pub fn records(&self) -> &[Record] {
        &self.records
    }
    /// The record with this SFI and number.
    pub fn record(&self, sfi: u8, number: u8) -> Option<&Record> {
        self.records
            .iter()
            .find(|r| r.sfi == sfi && r.number == number)
    }
}

impl fmt::Debug for ApplicationProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApplicationProfile")
            .field("aid", &hex::encode_upper(&self.aid))
            .field("label", &self.label)
            .field("cvn", &self.cvn)
            .field("issuer_master_key", &"<hidden>")
            .finish_non_exhaustive()
    }
}

/// The PIN digits held by the card; Debug hides them and they are wiped on drop.
#[derive(Clone)]
pub(crate) struct PinDigits(Zeroizing<Vec<u8>>);

impl PinDigits {
    /// The digits, one value 0..=9 per byte.
    pub(crate) fn digits(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for PinDigits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PinDigits(<hidden>)")
    }
}

/// A whole card, described by data. Cheap enough to clone; Debug hides the PAN, the PIN
/// and the keys.
#[derive(Clone)]
pub struct Profile {
    name: String,
    description: String,
    origin: String,
    atr: Vec<u8>,
    length_behaviour: LengthBehaviour,
    line_behaviour: LineBehaviour,
    pan: Zeroizing<String>,
    pan_sequence: u8,
    expiry: [u8; 3],
    cardholder_name: String,
    language: String,
    directories: Directories,
    pin: PinDigits,
    pin_try_limit: u8,
    initial_pin_tries: u8,
    signing_key: SigningKey,
    public_key_tag: u32,
    applications: Vec<ApplicationProfile>,
}

impl fmt::Debug for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Profile")
            .field("name", &self.name)
            .field("origin", &self.origin)
            .field("atr", &hex::encode_upper(&self.atr))
            .field("length_behaviour", &self.length_behaviour)
            .field("line_behaviour", &self.line_behaviour)
            .field("pan", &"<hidden>")
            .field("pin", &"<hidden>")
            .field("signing_key", &"<hidden>")
            .field("applications", &self.applications)
            .finish_non_exhaustive()
    }
}

impl Profile {
    /// A builtin profile by name (see [`Profile::builtin_names`]).
    pub fn builtin(name: &str) -> Result<Profile, ProfileError> {
        let text = BUILTINS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, text)| *text)
            .ok_or_else(|| ProfileError::UnknownBuiltin {
                name: name.to_owned(),
                known: BUILTIN_NAMES.join(", "),
            })?;
        Profile::from_toml_str(text, &format!("builtin:{name}"))
    }

    /// The names of the builtin profiles; the first, `cb`, is the default card.
    pub fn builtin_names() -> &'static [&'static str] {
        &BUILTIN_NAMES
    }

    /// Parses and checks a profile. `origin` names the text's source in errors (a path,
    /// `builtin:cb`).
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Profile, ProfileError> {
        let raw: RawProfile = toml::from_str(text).map_err(|error| {
            let (line, column) =
                error
                    .span()
                    .and_then(|span| text.get(..span.start))
                    .map_or((0, 0), |before| {
                        let line = before.matches('\n').count() + 1;
                        let column = before
                            .rfind('\n')
                            .map_or(before.len(), |nl| before.len() - nl - 1)
                            + 1;
                        (line, column)
                    });
            ProfileError::Toml {
                origin: origin.to_owned(),
                line,
                column,
                message: error.message().to_owned(),
            }
        })?;
        Checker { origin }.profile(raw)
    }

    /// Reads and checks a profile file.
    pub fn load(path: &Path) -> Result<Profile, ProfileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Io {
            path: path.to_owned(),
            source,
        })?;
        Profile::from_toml_str(&text, &path.display().to_string())
    }

    /// The profile's name (`cb`, `visa`...).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// A one-line description.
    pub fn description(&self) -> &str {
        &self.description
    }
    /// Where the profile was loaded from (a path or `builtin:NAME`).
    pub fn origin(&self) -> &str {
        &self.origin
    }
    /// The Answer To Reset (ISO 7816-3 §8).
    pub fn atr(&self) -> &[u8] {
        &self.atr
    }
    /// How the card answers length mismatches (T=1-like or T=0 `61xx`/`6Cxx`).
    pub fn length_behaviour(&self) -> LengthBehaviour {
        self.length_behaviour
    }
    /// How the card behaves on a serial line (NULL bytes, byte-by-byte ACKs, WTX).
    pub fn line_behaviour(&self) -> LineBehaviour {
        self.line_behaviour
    }
    /// The PAN (5A) as ASCII digits. Sensitive: do not log it.
    pub fn pan(&self) -> &str {
        &self.pan
    }
    /// The PAN Sequence Number (5F34), 0 to 99.
    pub fn pan_sequence(&self) -> u8 {
        self.pan_sequence
    }
    /// The Application Expiration Date (5F24), YYMMDD in BCD.
    pub fn expiry(&self) -> [u8; 3] {
        self.expiry
    }
    /// The Cardholder Name (5F20).
    pub fn cardholder_name(&self) -> &str {
        &self.cardholder_name
    }
    /// The Language Preference (5F2D), ISO 639-1 codes concatenated.
    pub fn language(&self) -> &str {
        &self.language
    }

    /// The payment directories the card holds (PSE, PPSE, both or neither).
    pub fn directories(&self) -> Directories {
        self.directories
    }
    /// The PIN Try Limit: what a successful VERIFY restores the counter to.
    pub fn pin_try_limit(&self) -> u8 {
        self.pin_try_limit
    }
    /// The PIN try counter of a new card (0 for a card issued blocked).
    pub fn initial_pin_tries(&self) -> u8 {
        self.initial_pin_tries
    }
    /// The card's ECDSA P-256 public key, SEC1 uncompressed (`04 || X || Y`, 65 bytes).
    pub fn public_key_sec1(&self) -> Vec<u8> {
        self.signing_key
            .verifying_key()
            .to_sec1_point(false)
            .as_bytes()
            .to_vec()
    }
    /// The tag under which GET DATA answers the public key (proprietary, e.g. `DF51`).
    pub fn public_key_tag(&self) -> u32 {
        self.public_key_tag
    }
    /// The payment applications, in the order the PSE lists them.
    pub fn applications(&self) -> &[ApplicationProfile] {
        &self.applications
    }

    pub(crate) fn pin(&self) -> &PinDigits {
        &self.pin
    }
    pub(crate) fn signing_key(&self) -> &SigningKey {
        &self.signing_key
    }
}

// ---------------------------------------------------------------------------------------
// The TOML shape, as serde reads it. Hex fields are strings (spaces allowed for
// readability); secrets are wiped when the raw form is dropped.

/// A string from the profile that must not outlive its use (PIN, keys).
struct SecretText(String);

impl<'de> Deserialize<'de> for SecretText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_string(SecretVisitor)
    }
}

/// Reads a string; a value of another type is refused without quoting it (serde's
/// default message would print a PIN written as a number).
struct SecretVisitor;

impl SecretVisitor {
    fn refuse<E: serde::de::Error>(kind: &str) -> Result<SecretText, E> {
        Err(E::custom(format_args!(
            "invalid type: {kind} (value hidden), expected a string"
        )))
    }
}

impl serde::de::Visitor<'_> for SecretVisitor {
    type Value = SecretText;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<SecretText, E> {
        Ok(SecretText(v.to_owned()))
    }
    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<SecretText, E> {
        Ok(SecretText(v))
    }
    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<SecretText, E> {
        Self::refuse("integer")
    }
    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<SecretText, E> {
        Self::refuse("integer")
    }
    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<SecretText, E> {
        Self::refuse("float")
    }
    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<SecretText, E> {
        Self::refuse("boolean")
    }
}

impl Drop for SecretText {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    name: String,
    description: String,
    /// Must be `true`: the simulator refuses to pretend test keys are anything else.
    test_keys: bool,
    atr: String,
    protocol: RawProtocol,
    card: RawCard,
    pin: RawPin,
    signing: RawSigning,
    application: Vec<RawApplication>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProtocol {
    /// `"direct"` or `"t0-get-response"`.
    length_behaviour: String,
    /// NULL bytes before each T=0 answer on a serial line.
    #[serde(default)]
    t0_null_bytes: u8,
    /// T=0 byte-by-byte acknowledgement on a serial line.
    #[serde(default)]
    t0_ack_each_byte: bool,
    /// WTX multiplier asked before each T=1 answer on a serial line.
    #[serde(default)]
    t1_waiting_time_extension: u8,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCard {
    pan: SecretText,
    pan_sequence: u8,
    expiry: String,
    cardholder_name: String,
    language: String,
    /// Which payment directories the card has; both when absent.
    #[serde(default = "both_directories")]
    directories: Vec<String>,
}

fn both_directories() -> Vec<String> {
    vec!["pse".to_owned(), "ppse".to_owned()]
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPin {
    value: SecretText,
    try_limit: u8,
    tries_left: u8,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSigning {
    ecdsa_private_key: SecretText,
    public_key_tag: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApplication {
    aid: String,
    label: String,
    preferred_name: Option<String>,
    priority: u8,
    pdol: String,
    aip: String,
    afl: String,
    gpo_format: u8,
    gen_ac_format: u8,
    cdol1: String,
    cdol2: String,
    cvn: u8,
    derivation_key_index: u8,
    issuer_master_key: SecretText,
    #[serde(default)]
    fci_discretionary: String,
    log: RawLog,
    risk: RawRisk,
    record: Vec<RawRecord>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    sfi: u8,
    max_records: u8,
    format: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRisk {
    floor_limit: u64,
    always_online: bool,
    currency: Option<u16>,
    max_consecutive_offline: Option<u16>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecord {
    sfi: u8,
    record: u8,
    data: String,
}

/// Data objects that GENERATE AC reads from CDOL1 (the fields of `crypto::AcInput`).
const CDOL1_REQUIRED: [(Tag, usize, &str); 8] = [
    (
        0x9F02,
        6,
        "amount authorised, for the cryptogram and risk management",
    ),
    (0x9F03, 6, "amount other, for the cryptogram"),
    (0x9F1A, 2, "terminal country code, for the cryptogram"),
    (0x95, 5, "TVR, for the cryptogram"),
    (0x5F2A, 2, "transaction currency, for the cryptogram"),
    (0x9A, 3, "transaction date, for the cryptogram"),
    (0x9C, 1, "transaction type, for the cryptogram"),
    (0x9F37, 4, "unpredictable number, for the cryptogram"),
];

/// Data objects that the second GENERATE AC reads from CDOL2.
const CDOL2_REQUIRED: [(Tag, usize, &str); 4] = [
    (0x8A, 2, "authorisation response code"),
    (
        0x91,
        10,
        "issuer authentication data: ARPC (8) || ARC (2), ARPC method 1",
    ),
    (0x95, 5, "TVR, for the cryptogram"),
    (0x9F37, 4, "unpredictable number, for the cryptogram"),
];

struct Checker<'a> {
    origin: &'a str,
}

impl Checker<'_> {
    fn invalid(
        &self,
        field: &str,
        expected: &'static str,
        found: impl fmt::Display,
    ) -> ProfileError {
        ProfileError::InvalidField {
            origin: self.origin.to_owned(),
            field: field.to_owned(),
            expected,
            found: found.to_string(),
        }
    }

    fn hex(&self, field: &str, text: &str) -> Result<Vec<u8>, ProfileError> {
        let compact: Zeroizing<String> =
            Zeroizing::new(text.chars().filter(|c| !c.is_whitespace()).collect());
        hex::decode(compact.as_str()).map_err(|source| ProfileError::Hex {
            origin: self.origin.to_owned(),
            field: field.to_owned(),
            source,
        })
    }

    fn tlv_error(&self, field: &str, source: TlvError) -> ProfileError {
        ProfileError::Tlv {
            origin: self.origin.to_owned(),
            field: field.to_owned(),
            source,
        }
    }

    fn profile(&self, raw: RawProfile) -> Result<Profile, ProfileError> {
        if !raw.test_keys {
            return Err(self.invalid(
                "test_keys",
                "true (the simulator holds test keys only)",
                "false",
            ));
        }
        if raw.name.is_empty() {
            return Err(self.invalid("name", "a non-empty name", "\"\""));
        }
        let atr = self.hex("atr", &raw.atr)?;
        let atr_offers =
            check_atr(&atr).map_err(|why| self.invalid("atr", why, hex::encode_upper(&atr)))?;
        let length_behaviour = match raw.protocol.length_behaviour.as_str() {
            "direct" => LengthBehaviour::Direct,
            "t0-get-response" => LengthBehaviour::T0GetResponse,
            other => {
                return Err(self.invalid(
                    "protocol.length_behaviour",
                    "\"direct\" or \"t0-get-response\"",
                    format!("{other:?}"),
                ));
            }
        };
        if length_behaviour == LengthBehaviour::T0GetResponse && atr_offers != AtrProtocols::T0Only
        {
            return Err(self.invalid(
                "atr",
                "an ATR offering T=0 only, since protocol.length_behaviour is t0-get-response",
                hex::encode_upper(&atr),
            ));
        }

        let pan = Zeroizing::new(raw.card.pan.0.clone());
        check_pan(&pan).map_err(|why| self.invalid("card.pan", why, "<hidden>"))?;
        if raw.card.pan_sequence > 99 {
            return Err(self.invalid("card.pan_sequence", "0 to 99", raw.card.pan_sequence));
        }
        let expiry = self.hex("card.expiry", &raw.card.expiry)?;
        let expiry: [u8; 3] = expiry
            .as_slice()
            .try_into()
            .ok()
            .filter(|e: &[u8; 3]| is_valid_date(e))
            .ok_or_else(|| self.invalid("card.expiry", "a date YYMMDD", &raw.card.expiry))?;
        if raw.card.language.is_empty()
            || raw.card.language.len() & 1 != 0
            || raw.card.language.len() > 8
            || !raw.card.language.bytes().all(|b| b.is_ascii_lowercase())
        {
            return Err(self.invalid(
                "card.language",
                "1 to 4 ISO 639-1 codes, lower case (\"fren\")",
                format!("{:?}", raw.card.language),
            ));
        }
        let mut directories = Directories {
            pse: false,
            ppse: false,
        };
        for name in &raw.card.directories {
            match name.as_str() {
                "pse" if !directories.pse => directories.pse = true,
                "ppse" if !directories.ppse => directories.ppse = true,
                _ => {
                    return Err(self.invalid(
                        "card.directories",
                        "a list of distinct \"pse\" and \"ppse\"",
                        format!("{:?}", raw.card.directories),
                    ));
                }
            }
        }
        if raw.card.cardholder_name.len() < 2
            || raw.card.cardholder_name.len() > 26
            || !raw
                .card
                .cardholder_name
                .bytes()
                .all(|b| (0x20..0x7F).contains(&b))
        {
            return Err(self.invalid(
                "card.cardholder_name",
                "2 to 26 printable ASCII characters (5F20, ans 2-26)",
                format!("{:?}", raw.card.cardholder_name),
            ));
        }

        let pin_text = &raw.pin.value.0;
        if !(4..=12).contains(&pin_text.len()) || !pin_text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(self.invalid("pin.value", "4 to 12 decimal digits (ISO 9564)", "<hidden>"));
        }
        let pin = PinDigits(Zeroizing::new(pin_text.bytes().map(|b| b - b'0').collect()));
        if !(1..=15).contains(&raw.pin.try_limit) {
            return Err(self.invalid(
                "pin.try_limit",
                "1 to 15 (a 63Cx nibble)",
                raw.pin.try_limit,
            ));
        }
        if raw.pin.tries_left > raw.pin.try_limit {
            return Err(self.invalid(
                "pin.tries_left",
                "at most pin.try_limit",
                raw.pin.tries_left,
            ));
        }

        let mut key_bytes = Zeroizing::new(self.hex(
            "signing.ecdsa_private_key",
            &raw.signing.ecdsa_private_key.0,
        )?);
        let signing_key = SigningKey::from_slice(&key_bytes).map_err(|_| {
            self.invalid(
                "signing.ecdsa_private_key",
                "a 32-byte P-256 scalar in 1..n-1",
                "<hidden>",
            )
        })?;
        key_bytes.zeroize();
        let public_key_tag =
            self.single_tag("signing.public_key_tag", &raw.signing.public_key_tag)?;
        if public_key_tag & 0xFF00 == 0 || (public_key_tag >> 8) & 0xE0 != 0xC0 {
            // A proprietary, private-class tag (b8-b7 = 11) so it cannot clash with EMV's.
            return Err(self.invalid(
                "signing.public_key_tag",
                "a two-byte private-class primitive tag (DFxx)",
                &raw.signing.public_key_tag,
            ));
        }

        if raw.application.is_empty() {
            return Err(self.invalid("application", "at least one application", "none"));
        }
        let mut applications = Vec::with_capacity(raw.application.len());
        for (index, app) in raw.application.iter().enumerate() {
            let checked = self.application(index, app, &pan, raw.card.pan_sequence, expiry)?;
            if applications
                .iter()
                .any(|a: &ApplicationProfile| a.aid == checked.aid)
            {
                return Err(ProfileError::Duplicate {
                    origin: self.origin.to_owned(),
                    field: format!("application[{index}].aid"),
                    what: format!("AID {}", hex::encode_upper(&checked.aid)),
                });
            }
            applications.push(checked);
        }

        Ok(Profile {
            name: raw.name,
            description: raw.description,
            origin: self.origin.to_owned(),
            atr,
            length_behaviour,
            line_behaviour: LineBehaviour {
                t0_null_bytes: raw.protocol.t0_null_bytes,
                t0_ack_each_byte: raw.protocol.t0_ack_each_byte,
                t1_waiting_time_extension: raw.protocol.t1_waiting_time_extension,
            },
            pan,
            pan_sequence: raw.card.pan_sequence,
            expiry,
            cardholder_name: raw.card.cardholder_name,
            language: raw.card.language,
            directories,
            pin,
            pin_try_limit: raw.pin.try_limit,
            initial_pin_tries: raw.pin.tries_left,
            signing_key,
            public_key_tag,
            applications,
        })
    }

    fn single_tag(&self, field: &str, text: &str) -> Result<Tag, ProfileError> {
        let bytes = self.hex(field, text)?;
        match tlv::read_tag(&bytes, 0) {
            Ok((tag, end)) if end == bytes.len() => Ok(tag),
            Ok(_) => Err(self.invalid(field, "exactly one BER-TLV tag", text)),
            Err(source) => Err(self.tlv_error(field, source)),
        }
    }

    fn dol(&self, field: &str, text: &str) -> Result<(Vec<u8>, Vec<DolEntry>), ProfileError> {
        let bytes = self.hex(field, text)?;
        let entries = tlv::parse_dol(&bytes).map_err(|e| self.tlv_error(field, e))?;
        if tlv::dol_data_len(&entries) > 252 {
            return Err(self.invalid(
                field,
                "a DOL whose data fits a short APDU (at most 252 bytes)",
                tlv::dol_data_len(&entries),
            ));
        }
        Ok((bytes, entries))
    }

    fn application(
        &self,
        index: usize,
        raw: &RawApplication,
        pan: &str,
        pan_sequence: u8,
        expiry: [u8; 3],
    ) -> Result<ApplicationProfile, ProfileError> {
        let field = |name: &str| format!("application[{index}].{name}");
        let aid = self.hex(&field("aid"), &raw.aid)?;
        if !(5..=16).contains(&aid.len()) {
            return Err(self.invalid(
                &field("aid"),
                "5 to 16 bytes (ISO 7816-5: RID + PIX)",
                raw.aid.clone(),
            ));
        }
        if raw.label.is_empty()
            || raw.label.len() > 16
            || !raw.label.bytes().all(|b| (0x20..0x7F).contains(&b))
        {
            return Err(self.invalid(
                &field("label"),
                "1 to 16 printable ASCII characters (50, ans 1-16)",
                format!("{:?}", raw.label),
            ));
        }
        let bad_name = raw.preferred_name.as_ref().filter(|name| {
            name.is_empty() || name.len() > 16 || !name.bytes().all(|b| (0x20..0x7F).contains(&b))
        });
        if let Some(name) = bad_name {
            return Err(self.invalid(
                &field("preferred_name"),
                "1 to 16 printable ASCII characters (9F12)",
                format!("{name:?}"),
            ));
        }
        // EMV Book 1 §12.2.3: b8 "cardholder confirmation", b4-b1 the priority (0 = none).
        if raw.priority & 0x70 != 0 {
            return Err(self.invalid(
                &field("priority"),
                "b7-b5 zero (EMV Book 1 Table 13)",
                format!("{:02X}", raw.priority),
            ));
        }
        let (pdol, pdol_entries) = self.dol(&field("pdol"), &raw.pdol)?;
        // Bounds that keep the FCI within one short response (256 bytes).
        if pdol.len() > 64 {
            return Err(self.invalid(
                &field("pdol"),
                "a PDOL of at most 64 bytes",
                format!("{} bytes", pdol.len()),
            ));
        }
        let aip: [u8; 2] = self
            .hex(&field("aip"), &raw.aip)?
            .try_into()
            .map_err(|_| self.invalid(&field("aip"), "2 bytes", raw.aip.clone()))?;
        let gpo_format = response_format(raw.gpo_format)
            .ok_or_else(|| self.invalid(&field("gpo_format"), "1 or 2", raw.gpo_format))?;
        let gen_ac_format = response_format(raw.gen_ac_format)
            .ok_or_else(|| self.invalid(&field("gen_ac_format"), "1 or 2", raw.gen_ac_format))?;
        let (cdol1, cdol1_entries) = self.dol(&field("cdol1"), &raw.cdol1)?;
        for (tag, len, why) in CDOL1_REQUIRED {
            self.require_dol_tag(index, "cdol1", &cdol1_entries, tag, len, why)?;
        }
        let (cdol2, cdol2_entries) = self.dol(&field("cdol2"), &raw.cdol2)?;
        for (tag, len, why) in CDOL2_REQUIRED {
            self.require_dol_tag(index, "cdol2", &cdol2_entries, tag, len, why)?;
        }
        let Some(version) = CryptogramVersion::from_cvn(raw.cvn) else {
            return Err(self.invalid(
                &field("cvn"),
                "a supported cryptogram version: 10 or 18",
                raw.cvn,
            ));
        };
        let issuer_master_key =
            DoubleKey::from_hex(&raw.issuer_master_key.0).map_err(|source| {
                ProfileError::Crypto {
                    origin: self.origin.to_owned(),
                    field: field("issuer_master_key"),
                    source,
                }
            })?;
        // Derive once here so a PAN the derivation refuses is a load error, not a
        // run-time surprise.
        version
            .derive_icc_master_key(&issuer_master_key, pan, pan_sequence)
            .map_err(|source| ProfileError::Crypto {
                origin: self.origin.to_owned(),
                field: "card.pan".to_owned(),
                source,
            })?;
        let fci_discretionary = self.hex(&field("fci_discretionary"), &raw.fci_discretionary)?;
        if fci_discretionary.len() > 96 {
            return Err(self.invalid(
                &field("fci_discretionary"),
                "at most 96 bytes, so the FCI fits one short response",
                format!("{} bytes", fci_discretionary.len()),
            ));
        }
        tlv::parse_level(&fci_discretionary, 0)
            .map_err(|e| self.tlv_error(&field("fci_discretionary"), e))?;

        let log = self.log(index, &raw.log)?;
        let risk = RiskParameters {
            floor_limit: raw.risk.floor_limit,
            always_online: raw.risk.always_online,
            currency: match raw.risk.currency {
                None => None,
                Some(code) if code <= 999 => Some(bcd2(code)),
                Some(code) => {
                    return Err(self.invalid(
                        &field("risk.currency"),
                        "an ISO 4217 numeric code (0 to 999)",
                        code,
                    ));
                }
            },
            max_consecutive_offline: raw.risk.max_consecutive_offline,
        };
        if raw.risk.floor_limit > 999_999_999_999 {
            return Err(self.invalid(
                &field("risk.floor_limit"),
                "at most 12 digits (n12, like 9F02)",
                raw.risk.floor_limit,
            ));
        }

        let mut records: Vec<Record> = Vec::with_capacity(raw.record.len());
        for (r, rec) in raw.record.iter().enumerate() {
            let rfield = format!("application[{index}].record[{r}]");
            if !(1..=30).contains(&rec.sfi) || rec.sfi == log.sfi {
                return Err(self.invalid(
                    &format!("{rfield}.sfi"),
                    "1 to 30, not the log SFI",
                    rec.sfi,
                ));
            }
            if rec.record == 0 || rec.record == 0xFF {
                return Err(self.invalid(&format!("{rfield}.record"), "1 to 254", rec.record));
            }
            let data = self.hex(&format!("{rfield}.data"), &rec.data)?;
            self.check_record_template(&format!("{rfield}.data"), &data)?;
            if records
                .iter()
                .any(|x| x.sfi == rec.sfi && x.number == rec.record)
            {
                return Err(ProfileError::Duplicate {
                    origin: self.origin.to_owned(),
                    field: rfield,
                    what: format!("SFI {} record {}", rec.sfi, rec.record),
                });
            }
            records.push(Record {
                sfi: rec.sfi,
                number: rec.record,
                data,
            });
        }

        let afl = self.hex(&field("afl"), &raw.afl)?;
        self.check_afl(index, &field("afl"), &afl, &records)?;

        let app = ApplicationProfile {
            aid,
            label: raw.label.clone(),
            preferred_name: raw.preferred_name.clone(),
            priority: raw.priority,
            pdol,
            pdol_entries,
            aip,
            afl,
            gpo_format,
            gen_ac_format,
            cdol1,
            cdol1_entries,
            cdol2,
            cdol2_entries,
            cvn: raw.cvn,
            derivation_key_index: raw.derivation_key_index,
            issuer_master_key,
            fci_discretionary,
            log,
            risk,
            records,
        };
        self.check_records_agree(index, &app, pan, pan_sequence, expiry)?;
        Ok(app)
    }

    fn require_dol_tag(
        &self,
        application: usize,
        place: &'static str,
        entries: &[DolEntry],
        tag: Tag,
        len: usize,
        why: &'static str,
    ) -> Result<(), ProfileError> {
        match entries.iter().find(|e| e.tag == tag) {
            None => Err(ProfileError::MissingTag {
                origin: self.origin.to_owned(),
                application,
                place,
                tag,
                why,
            }),
            Some(entry) if entry.len != len => Err(self.invalid(
                &format!("application[{application}].{place}"),
                "the EMV length for each tag the card reads (9F02 6, 9F03 6, 9F1A 2, 95 5, 5F2A 2, 9A 3, 9C 1, 9F37 4, 8A 2, 91 10)",
                format!("tag {tag:X} with length {}", entry.len),
            )),
            Some(_) => Ok(()),
        }
    }

    fn log(&self, index: usize, raw: &RawLog) -> Result<LogSettings, ProfileError> {
        let field = |name: &str| format!("application[{index}].log.{name}");
        // EMV Book 3 Annex D1: the log SFI lies in 11..=30.
        if !(11..=30).contains(&raw.sfi) {
            return Err(self.invalid(&field("sfi"), "11 to 30 (EMV Book 3 Annex D)", raw.sfi));
        }
        if raw.max_records == 0 || raw.max_records == 0xFF {
            return Err(self.invalid(&field("max_records"), "1 to 254", raw.max_records));
        }
        let (format, format_entries) = self.dol(&field("format"), &raw.format)?;
        if format_entries.is_empty() {
            return Err(self.invalid(&field("format"), "a non-empty log format (9F4F)", "empty"));
        }
        Ok(LogSettings {
            sfi: raw.sfi,
            max_records: raw.max_records,
            format,
            format_entries,
        })
    }

    fn check_record_template(&self, field: &str, data: &[u8]) -> Result<(), ProfileError> {
        // READ RECORD answers the record in one short response (≤ 256 bytes); EMV Book 3
        // §5.3.2 makes each record a single '70' template.
        if data.len() > 254 {
            return Err(self.invalid(
                field,
                "a record of at most 254 bytes",
                format!("{} bytes", data.len()),
            ));
        }
        let top = tlv::parse_level(data, 0).map_err(|e| self.tlv_error(field, e))?;
        match top.as_slice() {
            [only] if only.tag == 0x70 && data.first() == Some(&0x70) => {
                tlv::flatten(data).map_err(|e| self.tlv_error(field, e))?;
                Ok(())
            }
            _ => Err(self.invalid(
                field,
                "a single 70 template (EMV Book 3 §5.3.2)",
                hex::encode_upper(data.get(..data.len().min(8)).unwrap_or(&[])),
            )),
        }
    }

    fn check_afl(
        &self,
        index: usize,
        field: &str,
        afl: &[u8],
        records: &[Record],
    ) -> Result<(), ProfileError> {
        // EMV Book 3 §10.2: 4 bytes per entry: SFI << 3, first record, last record,
        // number of records for offline data authentication.
        if afl.is_empty() || afl.len() & 3 != 0 || afl.len() > 252 {
            return Err(self.invalid(
                field,
                "a non-empty multiple of 4 bytes (EMV Book 3 §10.2)",
                format!("{} bytes", afl.len()),
            ));
        }
        for entry in afl.chunks_exact(4) {
            let &[sfi_byte, first, last, oda] = entry else {
                continue;
            };
            let sfi = sfi_byte >> 3;
            if sfi_byte & 0x07 != 0
                || !(1..=30).contains(&sfi)
                || first == 0
                || last < first
                || oda > last - first + 1
            {
                return Err(self.invalid(
                    field,
                    "entries SFI<<3, first ≥ 1, last ≥ first, ODA count ≤ records",
                    hex::encode_upper(entry),
                ));
            }
            for record in first..=last {
                if !records.iter().any(|r| r.sfi == sfi && r.number == record) {
                    return Err(ProfileError::MissingRecord {
                        origin: self.origin.to_owned(),
                        application: index,
                        sfi,
                        record,
                    });
                }
            }
        }
        Ok(())
    }

    fn check_records_agree(
        &self,
        index: usize,
        app: &ApplicationProfile,
        pan: &str,
        pan_sequence: u8,
        expiry: [u8; 3],
    ) -> Result<(), ProfileError> {
        let pan_bcd = pan_to_bcd(pan);
        let mut seen: Vec<Tag> = Vec::new();
        for record in &app.records {
            let objects = tlv::flatten(&record.data)
                .map_err(|e| self.tlv_error(&format!("application[{index}].record"), e))?;
            for object in objects {
                let agrees = match object.tag {
                    0x5A => Some((object.value == pan_bcd.as_slice(), "card.pan")),
                    0x5F34 => Some((
                        object.value == [bcd_byte(pan_sequence)],
                        "card.pan_sequence",
                    )),
                    0x5F24 => Some((object.value == expiry, "card.expiry")),
                    0x8C => Some((object.value == app.cdol1.as_slice(), "cdol1")),
                    0x8D => Some((object.value == app.cdol2.as_slice(), "cdol2")),
                    0x57 => Some((track2_starts_with_pan(object.value, pan), "card.pan")),
                    _ => None,
                };
                if let Some((false, field)) = agrees {
                    return Err(ProfileError::RecordDisagrees {
                        origin: self.origin.to_owned(),
                        application: index,
                        sfi: record.sfi,
                        record: record.number,
                        tag: object.tag,
                        field,
                    });
                }
                seen.push(object.tag);
            }
        }
        // A terminal cannot run GENERATE AC without CDOL1 nor verify a PIN without the
        // CVM list (EMV Book 3 §10.5): these must be readable.
        for (tag, why) in [
            (0x5A, "the PAN, for the terminal and the key derivation"),
            (0x8C, "CDOL1, for the terminal's first GENERATE AC"),
            (0x8D, "CDOL2, for the terminal's second GENERATE AC"),
            (0x8E, "the CVM list, for cardholder verification"),
        ] {
            if !seen.contains(&tag) {
                return Err(ProfileError::MissingTag {
                    origin: self.origin.to_owned(),
                    application: index,
                    place: "records",
                    tag,
                    why,
                });
            }
        }
        Ok(())
    }
}

fn response_format(n: u8) -> Option<ResponseFormat> {
    match n {
        1 => Some(ResponseFormat::Format1),
        2 => Some(ResponseFormat::Format2),
        _ => None,
    }
}

/// Which protocols an ATR offers (as far as the profile checks need).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AtrProtocols {
    T0Only,
    Other,
}

/// Checks an ATR's structure (ISO 7816-3 §8.2): TS, T0, the interface bytes each TDi
/// announces, K historical bytes, and TCK, present exactly when a protocol other than
/// T=0 is indicated, making the XOR of T0..TCK zero (§8.2.5).
fn check_atr(atr: &[u8]) -> Result<AtrProtocols, &'static str> {
    const SHAPE: &str =
        "an ISO 7816-3 ATR: TS 3B/3F, T0, interface bytes, historical bytes, TCK when needed";
    if atr.len() < 2 || atr.len() > 33 {
        return Err("an ISO 7816-3 ATR of 2 to 33 bytes");
    }
    if !matches!(atr.first(), Some(0x3B | 0x3F)) {
        return Err("TS = 3B (direct) or 3F (inverse convention)");
    }
    let t0 = *atr.get(1).ok_or(SHAPE)?;
    let historical = usize::from(t0 & 0x0F);
    let mut pos = 2usize;
    let mut presence = t0 >> 4;
    let mut only_t0 = true;
    loop {
        // TAi, TBi, TCi, then TDi, each present when its bit of the indicator is set.
        for bit in 0..3 {
            if presence & (1 << bit) != 0 {
                atr.get(pos).ok_or(SHAPE)?;
                pos += 1;
            }
        }
        if presence & 0x08 == 0 {
            break;
        }
        let td = *atr.get(pos).ok_or(SHAPE)?;
        pos += 1;
        if td & 0x0F != 0 {
            only_t0 = false;
        }
        presence = td >> 4;
    }
    let end_of_historical = pos + historical;
    let expected_len = if only_t0 {
        end_of_historical
    } else {
        end_of_historical + 1
    };
    if atr.len() != expected_len {
        return Err(if only_t0 {
            "no byte after the historical bytes (T=0 only: no TCK, ISO 7816-3 §8.2.5)"
        } else {
            "exactly one TCK after the historical bytes"
        });
    }
    if !only_t0 {
        let xor = atr.iter().skip(1).fold(0u8, |acc, b| acc ^ b);
        if xor != 0 {
            return Err("a TCK making the XOR of T0..TCK zero (ISO 7816-3 §8.2.5)");
        }
        Ok(AtrProtocols::Other)
    } else {
        Ok(AtrProtocols::T0Only)
    }
}

/// A PAN is 12 to 19 digits with a valid Luhn check digit (ISO/IEC 7812-1 Annex B).
fn check_pan(pan: &str) -> Result<(), &'static str> {
    if !(12..=19).contains(&pan.len()) || !pan.bytes().all(|b| b.is_ascii_digit()) {
        return Err("12 to 19 decimal digits (ISO/IEC 7812-1)");
    }
    let sum: u32 = pan
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let d2 = d * 2;
                if d2 > 9 { d2 - 9 } else { d2 }
            } else {
                d
            }
        })
        .sum();
    if sum.rem_euclid(10) != 0 {
        return Err("a valid Luhn check digit (ISO/IEC 7812-1 Annex B)");
    }
    Ok(())
}

/// The PAN as tag 5A holds it: BCD, padded with `F` to a whole byte (EMV Book 3 Annex A).
pub(crate) fn pan_to_bcd(pan: &str) -> Vec<u8> {
    let mut nibbles: Vec<u8> = pan.bytes().map(|b| b.wrapping_sub(b'0') & 0x0F).collect();
    if nibbles.len() % 2 == 1 {
        nibbles.push(0x0F);
    }
    nibbles
        .chunks_exact(2)
        .map(|pair| match pair {
            &[hi, lo] => (hi << 4) | lo,
            _ => 0xFF,
        })
        .collect()
}

/// Track 2 Equivalent Data (57) starts with the PAN, then the separator `D`.
fn track2_starts_with_pan(track2: &[u8], pan: &str) -> bool {
    let digits: String = hex::encode_upper(track2);
    digits
        .strip_prefix(pan)
        .is_some_and(|rest| rest.starts_with('D'))
}

fn bcd_byte(n: u8) -> u8 {
    ((n / 10) << 4) | (n % 10)
}

fn bcd2(n: u16) -> [u8; 2] {
    let hi = (n / 100) as u8;
    let lo = (n % 100) as u8;
    [bcd_byte(hi), bcd_byte(lo)]
}

/// A BCD date YYMMDD with a real month and day.
fn is_valid_date(date: &[u8; 3]) -> bool {
    let digits_ok = date.iter().all(|b| b >> 4 <= 9 && b & 0x0F <= 9);
    let month = (date[1] >> 4) * 10 + (date[1] & 0x0F);
    let day = (date[2] >> 4) * 10 + (date[2] & 0x0F);
    digits_ok && (1..=12).contains(&month) && (1..=31).contains(&day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_loads() {
        for name in Profile::builtin_names() {
            let profile = Profile::builtin(name).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(profile.name(), *name);
        }
    }

    #[test]
    fn atr_checks() {
        let cases: [(&str, Result<AtrProtocols, ()>); 6] = [
            ("3B 65 00 00 80 73 C6 01 00", Ok(AtrProtocols::T0Only)),
            ("3B 02 14 50", Ok(AtrProtocols::T0Only)),
            // T=1 indicated, TCK correct.
            ("3B 81 80 01 80 80", Ok(AtrProtocols::Other)),
            // T=1 indicated, TCK wrong.
            ("3B 81 80 01 80 81", Err(())),
            // Historical bytes missing.
            ("3B 65 00 00 80 73", Err(())),
            // Bad TS.
            ("3A 00", Err(())),
        ];
        for (atr, expected) in cases {
            let bytes = hex::decode(atr.replace(' ', "")).unwrap();
            assert_eq!(check_atr(&bytes).map_err(|_| ()), expected, "{atr}");
        }
    }

    #[test]
    fn luhn() {
        assert_eq!(check_pan("4111111111111111"), Ok(()));
        assert!(check_pan("4111111111111112").is_err());
        assert!(check_pan("41111111111").is_err());
        assert!(check_pan("41111111111x1111").is_err());
    }

    #[test]
    fn pan_bcd_pads_with_f() {
        assert_eq!(
            pan_to_bcd("4111111111111111"),
            hex::decode("4111111111111111").unwrap()
        );
        assert_eq!(pan_to_bcd("123"), vec![0x12, 0x3F]);
    }
}
