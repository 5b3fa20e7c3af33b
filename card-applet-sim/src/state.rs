//! The card's persistent counters — what a real card keeps in EEPROM — and their state
//! file.
//!
//! [`CardState`] holds the PIN try counter and, per application, the ATC, the last online
//! ATC, the issuer-authentication indicators and the transaction log. Without a state
//! file it lives in memory; with one, every change is written before the card answers
//! (so an ATC or a failed PIN try is never lost by a crash), atomically: a temporary file
//! in the same directory, fsync, rename over the old file, fsync of the directory.
//!
//! The file is TOML followed by a last line `# sha256:<hex>` holding the SHA-256 of all
//! the bytes before it. A file that lacks that line (truncated), whose hash disagrees
//! (corrupt), that does not parse, that has another format version, or that belongs to
//! another card is an error naming the file: it is never silently replaced by a fresh
//! card, which would reset a blocked PIN.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::profile::Profile;

/// The state file format version this code reads and writes.
pub const STATE_FORMAT_VERSION: u32 = 1;

/// The marker that opens the checksum line at the end of a state file.
const CHECKSUM_PREFIX: &str = "# sha256:";

/// Why a state file could not be read or written. Every variant names the file.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StateError {
    /// A file system operation failed.
    #[error("state file {path}: cannot {operation}: {source}")]
    Io {
        /// The file (or its directory, for the directory fsync).
        path: PathBuf,
        /// What was being done: `read`, `create temporary file`, `rename`...
        operation: &'static str,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The file does not end with its checksum line: it was cut short.
    #[error("state file {path} is truncated: {len} bytes and no final \"# sha256:\" checksum line")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Its length in bytes.
        len: usize,
    },
    /// The checksum line does not match the content.
    #[error(
        "state file {path} is corrupt: content hashes to {computed}, checksum line says {recorded}"
    )]
    ChecksumMismatch {
        /// The file.
        path: PathBuf,
        /// The SHA-256 of the content, hex.
        computed: String,
        /// What the checksum line holds.
        recorded: String,
    },
    /// The file is not UTF-8 text.
    #[error("state file {path} is corrupt: not UTF-8 at byte {offset}")]
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// Offset of the first invalid byte.
        offset: usize,
    },
    /// The content is not the state's TOML shape.
    #[error("state file {path} is corrupt: {source}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's error, with line and column.
        source: Box<toml::de::Error>,
    },
    /// The file was written by another version of this format.
    #[error(
        "state file {path} has format version {found}; this simulator reads version {supported}"
    )]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version in the file.
        found: u32,
        /// The version this code reads.
        supported: u32,
    },
    /// The file belongs to another card (another profile, PAN or sequence number).
    #[error(
        "state file {path} belongs to another card: it was written for profile {found_profile:?} (card id {found_id}), this card is {expected_profile:?} (card id {expected_id})"
    )]
    WrongCard {
        /// The file.
        path: PathBuf,
        /// The profile of this card.
        expected_profile: String,
        /// Fingerprint of this card.
        expected_id: String,
        /// The profile named in the file.
        found_profile: String,
        /// Fingerprint in the file.
        found_id: String,
    },
    /// A value is out of range for the card (a try counter above the limit, an unknown
    /// AID, a log entry of the wrong length...).
    #[error("state file {path}: field {field}: expected {expected}, found {found}")]
    InvalidValue {
        /// The file.
        path: PathBuf,
        /// The field, e.g. `applications[0].log[3]`.
        field: String,
        /// What the field must hold.
        expected: &'static str,
        /// What it holds.
        found: String,
    },
    /// The state could not be serialised (not expected to happen).
    #[error("state file {path}: cannot serialise the state: {source}")]
    Serialize {
        /// The file.
        path: PathBuf,
        /// The serialiser's error.
        source: toml::ser::Error,
    },
}

/// The persistent counters of one application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplicationState {
    /// The application's AID.
    pub aid: Vec<u8>,
    /// Application Transaction Counter (9F36): incremented by each first GENERATE AC,
    /// never decreasing.
    pub atc: u16,
    /// Last Online ATC Register (9F13): the ATC of the last transaction whose issuer
    /// authentication succeeded.
    pub last_online_atc: u16,
    /// The last online transaction's issuer authentication failed (Visa CVR byte 3 b4).
    pub issuer_auth_failed: bool,
    /// An ARQC went out and no second GENERATE AC completed the transaction (CVR byte 3
    /// b8, "last online transaction not completed").
    pub online_incomplete: bool,
    /// The transaction log (EMV Book 3 Annex D), most recent entry first; each entry is
    /// laid out by the application's Log Format.
    pub log: Vec<Vec<u8>>,
}

/// Everything a card remembers across resets and, with a state file, across processes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardState {
    /// The profile the state belongs to.
    pub profile: String,
    /// A fingerprint of the card (profile name, PAN, sequence number), so a state file is
    /// never applied to another card. The PAN itself is not stored.
    pub card_id: String,
    /// The PIN try counter (9F17); 0 = PIN blocked.
    pub pin_tries_left: u8,
    /// One entry per application of the profile, in profile order.
    pub applications: Vec<ApplicationState>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawState {
    version: u32,
    profile: String,
    card_id: String,
    pin_tries_left: u8,
    applications: Vec<RawApplicationState>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApplicationState {
    aid: String,
    atc: u16,
    last_online_atc: u16,
    issuer_auth_failed: bool,
    online_incomplete: bool,
    log: Vec<String>,
}

#[derive(Deserialize)]
struct VersionOnly {
    version: u32,
}

/// The fingerprint stored as `card_id`: the first 8 bytes of SHA-256 over the profile
/// name, the PAN and the sequence number, in hex.
fn card_id(profile: &Profile) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"card-applet-sim/state/card-id\0");
    hasher.update(profile.name().as_bytes());
    hasher.update([0]);
    hasher.update(profile.pan().as_bytes());
    hasher.update([profile.pan_sequence()]);
    let digest = hasher.finalize();
    hex::encode_upper(digest.get(..8).unwrap_or_default())
}

impl CardState {
    /// The state of a card fresh from the issuer: counters at zero, the profile's initial
    /// PIN try counter, empty logs.
    pub fn new(profile: &Profile) -> CardState {
        CardState {
            profile: profile.name().to_owned(),
            card_id: card_id(profile),
            pin_tries_left: profile.initial_pin_tries(),
            applications: profile
                .applications()
                .iter()
                .map(|app| ApplicationState {
                    aid: app.aid().to_vec(),
                    atc: 0,
                    last_online_atc: 0,
                    issuer_auth_failed: false,
                    online_incomplete: false,
                    log: Vec::new(),
                })
                .collect(),
        }
    }

    /// Loads the state of `profile`'s card from `path`, or, when the file does not exist,
    /// creates it with a fresh card's state. Any other problem is an error: the file is
    /// never silently replaced.
    pub fn load_or_create(path: &Path, profile: &Profile) -> Result<CardState, StateError> {
        match fs::read(path) {
            Ok(bytes) => {
                let state = CardState::parse(&bytes, path)?;
                state.check_belongs_to(profile, path)?;
                Ok(state)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let state = CardState::new(profile);
                state.save(path)?;
                Ok(state)
            }
            Err(source) => Err(StateError::Io {
                path: path.to_owned(),
                operation: "read",
                source,
            }),
        }
    }

    /// Reads a state file (without checking which card it belongs to).
    pub fn load(path: &Path) -> Result<CardState, StateError> {
        let bytes = fs::read(path).map_err(|source| StateError::Io {
            path: path.to_owned(),
            operation: "read",
            source,
        })?;
        CardState::parse(&bytes, path)
    }

    /// Parses the bytes of a state file; `path` only names it in errors.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<CardState, StateError> {
        let text = std::str::from_utf8(bytes).map_err(|e| StateError::NotUtf8 {
            path: path.to_owned(),
            offset: e.valid_up_to(),
        })?;
        let truncated = || StateError::Truncated {
            path: path.to_owned(),
            len: bytes.len(),
        };
        // The checksum line is the last line, and the file ends with a newline.
        let without_newline = text.strip_suffix('\n').ok_or_else(truncated)?;
        let split = without_newline.rfind('\n').map_or(0, |i| i + 1);
        let (body, last_line) = without_newline.split_at(split);
        let recorded = last_line
            .strip_prefix(CHECKSUM_PREFIX)
            .ok_or_else(truncated)?;
        let computed = hex::encode(Sha256::digest(body.as_bytes()));
        if recorded != computed {
            return Err(StateError::ChecksumMismatch {
                path: path.to_owned(),
                computed,
                recorded: recorded.to_owned(),
            });
        }
        let syntax = |source| StateError::Syntax {
            path: path.to_owned(),
            source: Box::new(source),
        };
        let version: VersionOnly = toml::from_str(body).map_err(syntax)?;
        if version.version != STATE_FORMAT_VERSION {
            return Err(StateError::UnsupportedVersion {
                path: path.to_owned(),
                found: version.version,
                supported: STATE_FORMAT_VERSION,
            });
        }
        let raw: RawState = toml::from_str(body).map_err(syntax)?;
        let mut applications = Vec::with_capacity(raw.applications.len());
        for (i, app) in raw.applications.into_iter().enumerate() {
            let decode = |field: String, text: &str| {
                hex::decode(text).map_err(|_| StateError::InvalidValue {
                    path: path.to_owned(),
                    field,
                    expected: "hex digits",
                    found: format!("{text:?}"),
                })
            };
            let aid = decode(format!("applications[{i}].aid"), &app.aid)?;
            let log = app
                .log
                .iter()
                .enumerate()
                .map(|(j, entry)| decode(format!("applications[{i}].log[{j}]"), entry))
                .collect::<Result<Vec<_>, _>>()?;
            applications.push(ApplicationState {
                aid,
                atc: app.atc,
                last_online_atc: app.last_online_atc,
                issuer_auth_failed: app.issuer_auth_failed,
                online_incomplete: app.online_incomplete,
                log,
            });
        }
        Ok(CardState {
            profile: raw.profile,
            card_id: raw.card_id,
            pin_tries_left: raw.pin_tries_left,
            applications,
        })
    }

    /// Checks that this state is `profile`'s card's, and that every value fits it.
    pub fn check_belongs_to(&self, profile: &Profile, path: &Path) -> Result<(), StateError> {
        let expected_id = card_id(profile);
        if self.profile != profile.name() || self.card_id != expected_id {
            return Err(StateError::WrongCard {
                path: path.to_owned(),
                expected_profile: profile.name().to_owned(),
                expected_id,
                found_profile: self.profile.clone(),
                found_id: self.card_id.clone(),
            });
        }
        let invalid =
            |field: String, expected: &'static str, found: String| StateError::InvalidValue {
                path: path.to_owned(),
                field,
                expected,
                found,
            };
        if self.pin_tries_left > profile.pin_try_limit() {
            return Err(invalid(
                "pin_tries_left".into(),
                "at most the profile's PIN try limit",
                self.pin_tries_left.to_string(),
            ));
        }
        if self.applications.len() != profile.applications().len() {
            return Err(invalid(
                "applications".into(),
                "one entry per application of the profile",
                format!("{} entries", self.applications.len()),
            ));
        }
        for (i, (state, app)) in self
            .applications
            .iter()
            .zip(profile.applications())
            .enumerate()
        {
            if state.aid != app.aid() {
                return Err(invalid(
                    format!("applications[{i}].aid"),
                    "the AIDs of the profile, in order",
                    hex::encode_upper(&state.aid),
                ));
            }
            if state.last_online_atc > state.atc {
                return Err(invalid(
                    format!("applications[{i}].last_online_atc"),
                    "at most the ATC",
                    state.last_online_atc.to_string(),
                ));
            }
            if state.log.len() > usize::from(app.log().max_records) {
                return Err(invalid(
                    format!("applications[{i}].log"),
                    "at most the profile's log.max_records entries",
                    state.log.len().to_string(),
                ));
            }
            let entry_len = crate::card::tlv::dol_data_len(&app.log().format_entries);
            for (j, entry) in state.log.iter().enumerate() {
                if entry.len() != entry_len {
                    return Err(invalid(
                        format!("applications[{i}].log[{j}]"),
                        "an entry as long as the log format says",
                        format!("{} bytes", entry.len()),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The bytes of the state file: TOML, then the checksum line.
    pub fn to_file_bytes(&self, path: &Path) -> Result<Vec<u8>, StateError> {
        let raw = RawState {
            version: STATE_FORMAT_VERSION,
            profile: self.profile.clone(),
            card_id: self.card_id.clone(),
            pin_tries_left: self.pin_tries_left,
            applications: self
                .applications
                .iter()
                .map(|app| RawApplicationState {
                    aid: hex::encode_upper(&app.aid),
                    atc: app.atc,
                    last_online_atc: app.last_online_atc,
                    issuer_auth_failed: app.issuer_auth_failed,
                    online_incomplete: app.online_incomplete,
                    log: app.log.iter().map(hex::encode_upper).collect(),
                })
                .collect(),
        };
        let toml = toml::to_string(&raw).map_err(|source| StateError::Serialize {
            path: path.to_owned(),
            source,
        })?;
        let mut body = String::from(
            "# card-applet-sim card state. Written by the simulator; the checksum line guards it.\n",
        );
        body.push_str(&toml);
        if !body.ends_with('\n') {
            body.push('\n');
        }
        let checksum = hex::encode(Sha256::digest(body.as_bytes()));
        body.push_str(CHECKSUM_PREFIX);
        body.push_str(&checksum);
        body.push('\n');
        Ok(body.into_bytes())
    }

    /// Writes the state file atomically: a temporary file beside it, fsync, rename over
    /// the old one, fsync of the directory so the rename itself is durable.
    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        let bytes = self.to_file_bytes(path)?;
        let io = |operation: &'static str, at: &Path| {
            let at = at.to_owned();
            move |source| StateError::Io {
                path: at,
                operation,
                source,
            }
        };
        let dir = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
            _ => PathBuf::from("."),
        };
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "state".to_owned());
        let temp = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
        {
            let mut file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&temp)
                .map_err(io("create temporary file", &temp))?;
            file.write_all(&bytes)
                .map_err(io("write temporary file", &temp))?;
            file.sync_all().map_err(io("fsync temporary file", &temp))?;
        }
        if let Err(e) = fs::rename(&temp, path) {
            // Leave no stray temporary file behind; the old state file is untouched.
            let _ = fs::remove_file(&temp);
            return Err(io("rename temporary file over", path)(e));
        }
        match File::open(&dir).and_then(|d| d.sync_all()) {
            Ok(()) => Ok(()),
            // Some file systems cannot fsync a directory; the rename is still atomic.
            Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => Ok(()),
            Err(e) => Err(io("fsync directory", &dir)(e)),
        }
    }
}
