//! [`SimCard`], the software bank card: power and reset with the profile's ATR, command
//! dispatch with ISO 7816-4 status words, the payment file system (PSE `1PAY.SYS.DDF01`,
//! PPSE `2PAY.SYS.DDF01`, payment applications selected by AID), the EMV payment applet,
//! the PIN held and checked by the card, and in-card ECDSA signing.
//!
//! Submodules:
//! - `apdu`: the command parser and the status words;
//! - `tlv`: the small BER-TLV codec the card needs;
//! - `fs`: SELECT, READ RECORD and the FCIs;
//! - `emv`: GET PROCESSING OPTIONS, GET DATA, GENERATE AC, the transaction log;
//! - `security`: VERIFY, GET CHALLENGE, PERFORM SECURITY OPERATION.
//!
//! The card never panics: whatever the bytes, [`SmartCard::transmit`] answers at least a
//! status word. It checks, in this order (ISO 7816-4 §5.1, §5.4.1): the class (`6E00`,
//! `6881` logical channels, `6882` secure messaging, `6884` chaining), the instruction
//! (`6D00`, or `6E00` when it exists in the other class), the length structure (`6700`),
//! then per command P1-P2 (`6A86`), Lc (`6700`), the transaction state (`6985`) and the
//! security state (`6982`).

mod apdu;
mod emv;
mod fs;
mod security;
pub(crate) mod tlv;

use std::path::PathBuf;
use std::sync::Arc;

use thiserror::Error;

use crate::crypto::{CryptoError, DoubleKey};
use crate::profile::{LengthBehaviour, Profile, ProfileError};
use crate::rng::{OsRandom, RandomSource, SeededRandom};
use crate::state::{CardState, StateError};
use crate::{ResetKind, SmartCard};
use apdu::{Apdu, Sw};

pub use tlv::TlvError;

/// How a [`SimCard`] keeps its counters and draws its randomness.
pub struct SimOptions {
    /// Where the persistent counters live; `None` keeps them in memory only.
    pub state_file: Option<PathBuf>,
    /// The source of GET CHALLENGE's random bytes.
    pub random: Box<dyn RandomSource>,
}

impl Default for SimOptions {
    /// No state file, randomness from the operating system.
    fn default() -> Self {
        SimOptions {
            state_file: None,
            random: Box::new(OsRandom),
        }
    }
}

impl SimOptions {
    /// No state file and a [`SeededRandom`]: a card whose every answer is reproducible.
    pub fn seeded(seed: u64) -> Self {
        SimOptions {
            state_file: None,
            random: Box::new(SeededRandom::new(seed)),
        }
    }

    /// The same options with a state file.
    pub fn with_state_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.state_file = Some(path.into());
        self
    }
}

impl std::fmt::Debug for SimOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimOptions")
            .field("state_file", &self.state_file)
            .field("random", &"<dyn RandomSource>")
            .finish()
    }
}

/// Why a [`SimCard`] could not be built.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CardError {
    /// The profile is invalid.
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// The state file could not be read, is corrupt, or belongs to another card.
    #[error(transparent)]
    State(#[from] StateError),
    /// An application names a cryptogram version the crypto module does not implement
    /// (a loaded profile never does: loading checks it).
    #[error("application {application}: unsupported cryptogram version {cvn}")]
    UnsupportedCryptogramVersion {
        /// Index of the application in the profile.
        application: usize,
        /// The CVN of the profile.
        cvn: u8,
    },
    /// An application's ICC master key could not be derived (EMV Book 2 A1.4).
    #[error("application {application}: cannot derive the ICC master key: {source}")]
    Crypto {
        /// Index of the application in the profile.
        application: usize,
        /// The derivation's error.
        source: CryptoError,
    },
}

/// What is currently selected (ISO 7816-4 §7.1.1: the current DF).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Selected {
    /// Nothing since the reset.
    #[default]
    Nothing,
    /// The master file (SELECT by file identifier 3F00).
    MasterFile,
    /// The Payment System Environment, `1PAY.SYS.DDF01` (EMV Book 1 §12.2.2).
    Pse,
    /// The Proximity PSE, `2PAY.SYS.DDF01`.
    Ppse,
    /// A payment application, by index in the profile.
    Application(usize),
}

/// The kind of application cryptogram (EMV Book 3 §6.5.5.2, table 12), ordered from the
/// most to the least conservative answer, so that the card's answer is the minimum of
/// what the terminal asked and what the card decides (EMV Book 3 §9.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum CryptogramType {
    /// Application Authentication Cryptogram: declined.
    Aac,
    /// Authorisation Request Cryptogram: go online.
    Arqc,
    /// Transaction Certificate: approved.
    Tc,
}

impl CryptogramType {
    /// The Cryptogram Information Data (9F27) bits b8-b7.
    fn cid(self) -> u8 {
        match self {
            CryptogramType::Aac => 0x00,
            CryptogramType::Tc => 0x40,
            CryptogramType::Arqc => 0x80,
        }
    }
}

/// What the cardholder verification did in this transaction (feeds the CVR).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct PinOutcome {
    tried: bool,
    failed: bool,
}

/// The first GENERATE AC's outcome, kept for the second (EMV Book 3 §6.5.5).
#[derive(Debug, Clone, PartialEq, Eq)]
struct FirstAc {
    cdol1_data: Vec<u8>,
    arqc: [u8; 8],
    /// What the card's own risk management wanted, before the terminal's cap.
    card_decision: CryptogramType,
    /// CVR bytes 2-4 as sent with the ARQC.
    cvr: [u8; 3],
}

/// Where the selected application's transaction stands (EMV Book 3 §9-§10: selected →
/// initiated by GET PROCESSING OPTIONS → PIN verified → first AC → second AC).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
enum Phase {
    /// Selected, no GET PROCESSING OPTIONS yet.
    #[default]
    Selected,
    /// GET PROCESSING OPTIONS done; VERIFY and the first GENERATE AC may come.
    Initiated,
    /// The first GENERATE AC answered an ARQC; the second must follow.
    AwaitingSecondAc(Box<FirstAc>),
    /// The transaction is over (TC or AAC): a new SELECT starts the next one.
    Completed,
}

/// Everything a reset forgets.
#[derive(Debug, Default)]
struct Session {
    selected: Selected,
    phase: Phase,
    pin: PinOutcome,
    /// A successful VERIFY in this selection of the application (security status for
    /// PSO: COMPUTE DIGITAL SIGNATURE).
    pin_verified: bool,
    /// Response bytes waiting for GET RESPONSE (T=0 behaviour).
    pending: Option<Vec<u8>>,
}

/// A software bank card built from a [`Profile`].
///
/// Power it with [`SmartCard::power_on`], then send APDUs with [`SmartCard::transmit`].
/// A card without power answers every command with `6F00` (no precise diagnosis), as a
/// card whose contacts are not energised gives no meaningful answer.
pub struct SimCard {
    /// Shared so that a command can read the profile while it updates the card's state
    /// (a clone is a reference count, not a copy of every record and key).
    profile: Arc<Profile>,
    /// The ICC master key of each application (EMV Book 2 A1.4.1 Option A).
    icc_keys: Vec<DoubleKey>,
    state: CardState,
    state_file: Option<PathBuf>,
    random: Box<dyn RandomSource>,
    powered: bool,
    session: Session,
    persist_error: Option<StateError>,
}

impl std::fmt::Debug for SimCard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimCard")
            .field("profile", &self.profile.name())
            .field("state_file", &self.state_file)
            .field("powered", &self.powered)
            .field("pin_tries_left", &self.state.pin_tries_left)
            .field("selected", &self.session.selected)
            .finish_non_exhaustive()
    }
}

impl SimCard {
    /// Builds the card. With a state file, loads it (or creates it for a new card); a
    /// corrupt, truncated or foreign state file is an error.
    pub fn new(profile: Profile, options: SimOptions) -> Result<SimCard, CardError> {
        let mut icc_keys = Vec::with_capacity(profile.applications().len());
        for (application, app) in profile.applications().iter().enumerate() {
            // The ICC master key as the application's cryptogram version derives it
            // (Option A for CVN 10, Option B for CVN 18: the same up to 16 digits).
            let version =
                app.cryptogram_version()
                    .ok_or(CardError::UnsupportedCryptogramVersion {
                        application,
                        cvn: app.cvn(),
                    })?;
            let key = version
                .derive_icc_master_key(
                    app.issuer_master_key(),
                    profile.pan(),
                    profile.pan_sequence(),
                )
                .map_err(|source| CardError::Crypto {
                    application,
                    source,
                })?;
            icc_keys.push(key);
        }
        let state = match &options.state_file {
            Some(path) => CardState::load_or_create(path, &profile)?,
            None => CardState::new(&profile),
        };
        Ok(SimCard {
            profile: Arc::new(profile),
            icc_keys,
            state,
            state_file: options.state_file,
            random: options.random,
            powered: false,
            session: Session::default(),
            persist_error: None,
        })
    }

    /// The profile the card was built from.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// The ATC (9F36) of the selected application, or of the first application when
    /// none is selected.
    pub fn atc(&self) -> u16 {
        let index = match self.session.selected {
            Selected::Application(i) => i,
            _ => 0,
        };
        self.state.applications.get(index).map_or(0, |a| a.atc)
    }

    /// The PIN try counter (9F17); 0 means the PIN is blocked.
    pub fn pin_tries_left(&self) -> u8 {
        self.state.pin_tries_left
    }

    /// The persistent state as it stands (counters, logs).
    pub fn state(&self) -> &CardState {
        &self.state
    }

    /// Whether the card is powered.
    pub fn is_powered(&self) -> bool {
        self.powered
    }

    /// The last failure to write the state file, if any. The card answered `6581`
    /// (memory failure) to the command that met it.
    pub fn last_persist_error(&self) -> Option<&StateError> {
        self.persist_error.as_ref()
    }

    /// Writes the state file, if there is one. On failure the command must answer
    /// `6581` and release nothing that depends on the write (a cryptogram, a PIN result).
    fn persist(&mut self) -> Result<(), Sw> {
        let Some(path) = &self.state_file else {
            return Ok(());
        };
        match self.state.save(path) {
            Ok(()) => {
                self.persist_error = None;
                Ok(())
            }
            Err(e) => {
                self.persist_error = Some(e);
                Err(Sw::MEMORY_FAILURE)
            }
        }
    }

    fn end_session(&mut self) {
        self.session = Session::default();
    }

    /// The selected application's index, or `6985` when none is selected.
    fn selected_application(&self) -> Result<usize, Sw> {
        match self.session.selected {
            Selected::Application(i) => Ok(i),
            _ => Err(Sw::CONDITIONS),
        }
    }

    /// Processes one command; returns the response bytes.
    fn process(&mut self, bytes: &[u8]) -> Vec<u8> {
        // Data held for GET RESPONSE survives only until the next command (ISO 7816-4
        // §5.3.4): take it now, GET RESPONSE puts back what it does not deliver.
        let pending = self.session.pending.take();
        let [cla, ins, ..] = bytes else {
            return with_sw(Vec::new(), Sw::WRONG_LENGTH);
        };
        let base_class = match check_class(*cla) {
            Ok(base) => base,
            Err(sw) => return with_sw(Vec::new(), sw),
        };
        let Some(class) = instruction_class(*ins) else {
            return with_sw(Vec::new(), Sw::INS_NOT_SUPPORTED);
        };
        if class != base_class {
            return with_sw(Vec::new(), Sw::CLA_NOT_SUPPORTED);
        }
        let apdu = match apdu::parse(bytes) {
            Ok(apdu) => apdu,
            Err(sw) => return with_sw(Vec::new(), sw),
        };
        if apdu.ins == INS_GET_RESPONSE {
            return self.get_response(&apdu, pending);
        }
        let result = match apdu.ins {
            INS_SELECT => self.select(&apdu),
            INS_READ_RECORD => self.read_record(&apdu),
            INS_GET_PROCESSING_OPTIONS => self.get_processing_options(&apdu),
            INS_GET_DATA => self.get_data(&apdu),
            INS_VERIFY => self.verify(&apdu),
            INS_GET_CHALLENGE => self.get_challenge(&apdu),
            INS_GENERATE_AC => self.generate_ac(&apdu),
            INS_PERFORM_SECURITY_OPERATION => self.perform_security_operation(&apdu),
            _ => Err(Sw::INS_NOT_SUPPORTED),
        };
        match result {
            Ok(data) if data.is_empty() => with_sw(data, Sw::OK),
            Ok(data) => self.deliver(&apdu, data),
            Err(sw) => with_sw(Vec::new(), sw),
        }
    }

    /// Returns response data according to Le and the profile's length behaviour.
    fn deliver(&mut self, apdu: &Apdu<'_>, data: Vec<u8>) -> Vec<u8> {
        match self.profile.length_behaviour() {
            LengthBehaviour::Direct => match apdu.ne {
                // ISO 7816-4 §5.1.3: Ne smaller than the data → 6Cxx with the exact
                // length; no Le (a transport that dropped it) → the data anyway.
                Some(ne) if ne < data.len() => with_sw(Vec::new(), Sw::exact_length(data.len())),
                _ => with_sw(data, Sw::OK),
            },
            LengthBehaviour::T0GetResponse => {
                if !apdu.data.is_empty() {
                    // ISO 7816-3 §10.3.5 / 7816-4 §5.3.4: under T=0 a command carrying data
                    // cannot also carry Le; the card announces its data with 61xx.
                    let available = data.len();
                    self.session.pending = Some(data);
                    with_sw(Vec::new(), Sw::bytes_available(available))
                } else if apdu.ne == Some(data.len()) {
                    with_sw(data, Sw::OK)
                } else {
                    // P3 must be exactly the length: 6Cxx tells the terminal to re-issue.
                    with_sw(Vec::new(), Sw::exact_length(data.len()))
                }
            }
        }
    }

    /// GET RESPONSE (ISO 7816-4 §11.6.2): `00 C0 00 00 Le`.
    fn get_response(&mut self, apdu: &Apdu<'_>, pending: Option<Vec<u8>>) -> Vec<u8> {
        if apdu.p1p2() != 0 {
            self.session.pending = pending;
            return with_sw(Vec::new(), Sw::WRONG_P1P2);
        }
        let (Some(ne), true) = (apdu.ne, apdu.data.is_empty()) else {
            self.session.pending = pending;
            return with_sw(Vec::new(), Sw::WRONG_LENGTH);
        };
        let Some(mut held) = pending else {
            return with_sw(Vec::new(), Sw::CONDITIONS);
        };
        let available = held.len();
        if ne == available {
            with_sw(held, Sw::OK)
        } else if ne < available {
            let rest = held.split_off(ne);
            let remaining = rest.len();
            self.session.pending = Some(rest);
            with_sw(held, Sw::bytes_available(remaining))
        } else if self.profile.length_behaviour() == LengthBehaviour::T0GetResponse {
            self.session.pending = Some(held);
            with_sw(Vec::new(), Sw::exact_length(available))
        } else {
            with_sw(held, Sw::OK)
        }
    }
}

impl SmartCard for SimCard {
    fn power_on(&mut self) -> Vec<u8> {
        self.powered = true;
        self.end_session();
        self.profile.atr().to_vec()
    }

    fn reset(&mut self, kind: ResetKind) -> Vec<u8> {
        // Both resets end the session; persistent counters are untouched (they were
        // written when they changed). A warm reset of an unpowered card is a cold one.
        let _ = kind;
        self.power_on()
    }

    fn transmit(&mut self, command: &[u8]) -> Vec<u8> {
        if !self.powered {
            return with_sw(Vec::new(), Sw::NO_DIAGNOSIS);
        }
        self.process(command)
    }

    fn power_off(&mut self) {
        self.powered = false;
        self.end_session();
    }
}

const INS_SELECT: u8 = 0xA4;
const INS_READ_RECORD: u8 = 0xB2;
const INS_GET_RESPONSE: u8 = 0xC0;
const INS_VERIFY: u8 = 0x20;
const INS_GET_CHALLENGE: u8 = 0x84;
const INS_PERFORM_SECURITY_OPERATION: u8 = 0x2A;
const INS_GET_PROCESSING_OPTIONS: u8 = 0xA8;
const INS_GENERATE_AC: u8 = 0xAE;
const INS_GET_DATA: u8 = 0xCA;

/// The class each supported instruction belongs to: `00` for ISO 7816-4 inter-industry
/// commands, `80` for the EMV proprietary ones (EMV Book 3 §6.3.2, table 3).
fn instruction_class(ins: u8) -> Option<u8> {
    match ins {
        INS_SELECT
        | INS_READ_RECORD
        | INS_GET_RESPONSE
        | INS_VERIFY
        | INS_GET_CHALLENGE
        | INS_PERFORM_SECURITY_OPERATION => Some(0x00),
        INS_GET_PROCESSING_OPTIONS | INS_GENERATE_AC | INS_GET_DATA => Some(0x80),
        _ => None,
    }
}

/// Checks CLA (ISO 7816-4 §5.4.1) and returns its base (`00` or `80`).
///
/// `FF` is invalid; `0x`/`8x` with b5 (chaining), b4-b3 (secure messaging) or b2-b1
/// (logical channel) set are valid classes this card does not support; `4x`-`7x`
/// address logical channels 4 to 19; other values are classes it does not know.
fn check_class(cla: u8) -> Result<u8, Sw> {
    let base = match cla {
        0x00..=0x1F => 0x00,
        0x80..=0x9F => 0x80,
        0x40..=0x7F => return Err(Sw::LOGICAL_CHANNEL_NOT_SUPPORTED),
        _ => return Err(Sw::CLA_NOT_SUPPORTED),
    };
    let flags = cla & 0x1F;
    if flags & 0x10 != 0 {
        Err(Sw::CHAINING_NOT_SUPPORTED)
    } else if flags & 0x0C != 0 {
        Err(Sw::SECURE_MESSAGING_NOT_SUPPORTED)
    } else if flags & 0x03 != 0 {
        Err(Sw::LOGICAL_CHANNEL_NOT_SUPPORTED)
    } else {
        Ok(base)
    }
}

/// Response bytes: data then SW1 SW2.
fn with_sw(mut data: Vec<u8>, sw: Sw) -> Vec<u8> {
    data.extend_from_slice(&sw.to_bytes());
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_table() {
        let cases: [(u8, Result<u8, Sw>); 10] = [
            (0x00, Ok(0x00)),
            (0x80, Ok(0x80)),
            (0x01, Err(Sw::LOGICAL_CHANNEL_NOT_SUPPORTED)),
            (0x0C, Err(Sw::SECURE_MESSAGING_NOT_SUPPORTED)),
            (0x84, Err(Sw::SECURE_MESSAGING_NOT_SUPPORTED)),
            (0x10, Err(Sw::CHAINING_NOT_SUPPORTED)),
            (0x40, Err(Sw::LOGICAL_CHANNEL_NOT_SUPPORTED)),
            (0x20, Err(Sw::CLA_NOT_SUPPORTED)),
            (0xA0, Err(Sw::CLA_NOT_SUPPORTED)),
            (0xFF, Err(Sw::CLA_NOT_SUPPORTED)),
        ];
        for (cla, expected) in cases {
            assert_eq!(check_class(cla), expected, "CLA {cla:02X}");
        }
    }

    #[test]
    fn cryptogram_order_is_emv_table_12() {
        // The card may answer less than the terminal asks, never more.
        assert!(CryptogramType::Aac < CryptogramType::Arqc);
        assert!(CryptogramType::Arqc < CryptogramType::Tc);
    }

    #[test]
    fn sim_card_is_send() {
        fn assert_send<T: Send>() {}
        assert_send::<SimCard>();
    }
}
