//! Reader URIs: the one way a reader is named everywhere (CLI, config, tests).
//!
//! | form | reader |
//! |---|---|
//! | `sim:` | the software card, default profile (`cb`) |
//! | `sim:PROFILE` | a built-in profile (`cb`, `visa`, …) or a profile file (a path ending in `.toml`) |
//! | `sim:PROFILE?state=FILE&seed=N` | with persistent counters in FILE, with seeded randomness |
//! | `pcsc:` / `pcsc:NAME` | the first PC/SC reader with a card / the reader whose name contains NAME |
//! | `serial:PATH?baud=N&…` | a Phoenix-style reader on a serial line |
//! | `replay:FILE?mode=strict\|lenient` | a recorded trace playing the card |
//!
//! Parsing is pure and total: any string gives a [`ReaderUri`] or a [`UriError`] that names
//! the input and what was wrong. `Display` writes the canonical form, which parses back to
//! the same value.

use std::fmt;
use std::path::PathBuf;

/// The profile a bare `sim:` plays: the French Cartes Bancaires card of the patent.
pub const DEFAULT_SIM_PROFILE: &str = "cb";

/// Every accepted form, listed in errors so a user sees what to write.
pub const VALID_FORMS: &str = "sim:, sim:PROFILE, sim:PROFILE?state=FILE&seed=N, pcsc:, pcsc:NAME, \
serial:PATH?baud=N&parity=none|even|odd&stop=1|2&echo=on|off&reset=rts|dtr|inband|none&protocol=auto|t0|t1, \
replay:FILE?mode=strict|lenient";

/// A parsed reader URI.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReaderUri {
    /// The in-process software card (`card-applet-sim`).
    Sim(SimUri),
    /// A PC/SC reader.
    Pcsc(PcscUri),
    /// A serial-line reader.
    Serial(SerialUri),
    /// A recorded trace replayed as the card.
    Replay(ReplayUri),
}

/// `sim:PROFILE?state=FILE&seed=N`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimUri {
    /// A built-in profile name, or a path to a profile file (ends in `.toml`).
    pub profile: String,
    /// Where the card keeps its persistent counters; in memory when absent.
    pub state: Option<PathBuf>,
    /// Seed for the card's randomness (GET CHALLENGE), for byte-exact dialogues.
    pub seed: Option<u64>,
}

impl SimUri {
    /// Whether [`SimUri::profile`] names a file rather than a built-in profile.
    pub fn profile_is_file(&self) -> bool {
        self.profile.ends_with(".toml") || self.profile.contains('/')
    }
}

/// How a PC/SC card is shared with other applications.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShareMode {
    /// No other application may use the card meanwhile.
    Exclusive,
    /// Other applications may use the card between transactions.
    Shared,
}

/// `pcsc:NAME?share=exclusive|shared`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcscUri {
    /// A substring of the reader's name; `None` takes the first reader holding a card.
    pub name: Option<String>,
    /// Sharing mode; the backend's default when absent.
    pub share: Option<ShareMode>,
}

/// Parity on a serial line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parity {
    /// No parity bit.
    None,
    /// Even parity (ISO 7816-3 character frame).
    Even,
    /// Odd parity.
    Odd,
}

/// How the serial reader resets the card.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SerialReset {
    /// Pulse RTS (Phoenix readers).
    Rts,
    /// Pulse DTR.
    Dtr,
    /// An in-band reset request on the data line (`telepay serial serve` answers it):
    /// the only kind a pty carries, having no modem lines.
    Inband,
    /// No reset: wait for the ATR a card sends when it is inserted or reset by other
    /// means.
    None,
}

/// Which transmission protocol to run on a serial line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SerialProtocol {
    /// The first protocol the ATR offers.
    Auto,
    /// T=0, ISO 7816-3 §10.
    T0,
    /// T=1, ISO 7816-3 §11.
    T1,
}

/// `serial:PATH?baud=N&parity=…&stop=…&echo=…&reset=…&protocol=…`; absent parameters
/// take the backend's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerialUri {
    /// The serial device, e.g. `/dev/ttyUSB0`.
    pub path: PathBuf,
    /// Line speed in bits per second.
    pub baud: Option<u32>,
    /// Parity bit.
    pub parity: Option<Parity>,
    /// Stop bits (1 or 2).
    pub stop_bits: Option<u8>,
    /// Whether the reader echoes the host's bytes back.
    pub echo: Option<bool>,
    /// How the card is reset.
    pub reset: Option<SerialReset>,
    /// Transmission protocol.
    pub protocol: Option<SerialProtocol>,
}

/// How strictly a replayed card holds the terminal to the recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReplayMode {
    /// Commands must come in the recorded order and match (wildcards allowed).
    #[default]
    Strict,
    /// Each command is matched with the next recorded one with the same header (CLA
    /// INS P1 P2); recorded exchanges in between are skipped.
    Lenient,
}

/// `replay:FILE?mode=strict|lenient`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayUri {
    /// The trace file.
    pub file: PathBuf,
    /// How commands are matched; strict when absent.
    pub mode: Option<ReplayMode>,
}

/// Why a string is not a reader URI.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UriError {
    /// No `scheme:` prefix.
    #[error("reader URI {input:?} has no scheme; valid forms: {VALID_FORMS}")]
    MissingScheme {
        /// The URI as given.
        input: String,
    },
    /// A scheme telepay does not know.
    #[error("reader URI {input:?}: unknown scheme {scheme:?}; valid forms: {VALID_FORMS}")]
    UnknownScheme {
        /// The URI as given.
        input: String,
        /// The scheme found.
        scheme: String,
    },
    /// The scheme needs a path or file that is missing.
    #[error("reader URI {input:?}: {scheme}: needs {what}")]
    MissingPath {
        /// The URI as given.
        input: String,
        /// The scheme.
        scheme: &'static str,
        /// What is missing.
        what: &'static str,
    },
    /// A query parameter this scheme does not take.
    #[error("reader URI {input:?}: {scheme}: takes no parameter {name:?} (it takes: {accepted})")]
    UnknownParameter {
        /// The URI as given.
        input: String,
        /// The scheme.
        scheme: &'static str,
        /// The parameter found.
        name: String,
        /// The parameters the scheme accepts.
        accepted: &'static str,
    },
    /// A parameter given twice.
    #[error("reader URI {input:?}: parameter {name:?} is given twice")]
    DuplicateParameter {
        /// The URI as given.
        input: String,
        /// The parameter.
        name: String,
    },
    /// A parameter whose value is not one of those allowed.
    #[error("reader URI {input:?}: parameter {name}={value:?} is invalid: expected {expected}")]
    BadValue {
        /// The URI as given.
        input: String,
        /// The parameter.
        name: &'static str,
        /// The value found.
        value: String,
        /// What is allowed.
        expected: &'static str,
    },
    /// A `%` escape that is not two hex digits or decodes to invalid UTF-8.
    #[error("reader URI {input:?}: bad percent-escape at byte {offset}")]
    BadEscape {
        /// The URI as given.
        input: String,
        /// Offset of the `%` within the URI.
        offset: usize,
    },
}

impl std::str::FromStr for ReaderUri {
    type Err = UriError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        ReaderUri::parse(input)
    }
}

impl ReaderUri {
    /// Parses a reader URI; see the module documentation for the forms.
    pub fn parse(input: &str) -> Result<ReaderUri, UriError> {
        let Some((scheme, rest)) = input.split_once(':') else {
            return Err(UriError::MissingScheme {
                input: input.to_owned(),
            });
        };
        let (path_part, query_part) = match rest.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (rest, None),
        };
        let path_offset = scheme.len() + 1;
        let path = percent_decode(input, path_part, path_offset)?;
        let query_offset = path_offset + path_part.len() + 1;
        let params = parse_query(input, query_part, query_offset)?;
        match scheme {
            "sim" => parse_sim(input, path, params),
            "pcsc" => parse_pcsc(input, path, params),
            "serial" => parse_serial(input, path, params),
            "replay" => parse_replay(input, path, params),
            other => Err(UriError::UnknownScheme {
                input: input.to_owned(),
                scheme: other.to_owned(),
            }),
        }
    }

    /// The scheme, e.g. `"sim"`.
    pub fn scheme(&self) -> &'static str {
        match self {
            ReaderUri::Sim(_) => "sim",
            ReaderUri::Pcsc(_) => "pcsc",
            ReaderUri::Serial(_) => "serial",
            ReaderUri::Replay(_) => "replay",
        }
    }
}

impl Default for ReaderUri {
    /// `sim:`, the software bank card.
    fn default() -> Self {
        ReaderUri::Sim(SimUri {
            profile: DEFAULT_SIM_PROFILE.to_owned(),
            state: None,
            seed: None,
        })
    }
}

/// Query parameters in order of appearance, values percent-decoded.
struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Rejects any parameter outside `accepted`.
    fn only(
        &self,
        input: &str,
        scheme: &'static str,
        accepted: &'static [&'static str],
        accepted_text: &'static str,
    ) -> Result<(), UriError> {
        for (name, _) in &self.pairs {
            if !accepted.contains(&name.as_str()) {
                return Err(UriError::UnknownParameter {
                    input: input.to_owned(),
                    scheme,
                    name: name.clone(),
                    accepted: accepted_text,
                });
            }
        }
        Ok(())
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

fn parse_query(input: &str, query: Option<&str>, offset: usize) -> Result<Params, UriError> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    let Some(query) = query else {
        return Ok(Params { pairs });
    };
    let mut position = offset;
    for item in query.split('&') {
        let item_offset = position;
        position += item.len() + 1;
        if item.is_empty() {
            continue;
        }
        let (raw_name, raw_value) = item.split_once('=').unwrap_or((item, ""));
        let name = percent_decode(input, raw_name, item_offset)?;
        let value = percent_decode(input, raw_value, item_offset + raw_name.len() + 1)?;
        if pairs.iter().any(|(key, _)| *key == name) {
            return Err(UriError::DuplicateParameter {
                input: input.to_owned(),
                name,
            });
        }
        pairs.push((name, value));
    }
    Ok(Params { pairs })
}

/// Decodes `%XX` escapes so that names with spaces or `?`/`&` fit in a URI.
fn percent_decode(input: &str, part: &str, offset: usize) -> Result<String, UriError> {
    if !part.contains('%') {
        return Ok(part.to_owned());
    }
    let bytes = part.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        if byte == b'%' {
            let escape = bytes
                .get(index + 1..index + 3)
                .and_then(|hex| std::str::from_utf8(hex).ok())
                .and_then(|hex| u8::from_str_radix(hex, 16).ok());
            let Some(decoded) = escape else {
                return Err(UriError::BadEscape {
                    input: input.to_owned(),
                    offset: offset + index,
                });
            };
            out.push(decoded);
            index += 3;
        } else {
            out.push(byte);
            index += 1;
        }
    }
    String::from_utf8(out).map_err(|_| UriError::BadEscape {
        input: input.to_owned(),
        offset,
    })
}

/// Escapes what would otherwise end a path or parameter, for [`fmt::Display`].
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/:,@+".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn parse_sim(input: &str, path: String, params: Params) -> Result<ReaderUri, UriError> {
    params.only(input, "sim", &["state", "seed"], "state, seed")?;
    let seed = match params.get("seed") {
        None => None,
        Some(text) => Some(text.parse::<u64>().map_err(|_| UriError::BadValue {
            input: input.to_owned(),
            name: "seed",
            value: text.to_owned(),
            expected: "an unsigned 64-bit decimal number",
        })?),
    };
    let state = match params.get("state") {
        None => None,
        Some("") => {
            return Err(UriError::BadValue {
                input: input.to_owned(),
                name: "state",
                value: String::new(),
                expected: "a file path",
            });
        }
        Some(file) => Some(PathBuf::from(file)),
    };
    let profile = if path.is_empty() {
        DEFAULT_SIM_PROFILE.to_owned()
    } else {
        path
    };
    Ok(ReaderUri::Sim(SimUri {
        profile,
        state,
        seed,
    }))
}

fn parse_pcsc(input: &str, path: String, params: Params) -> Result<ReaderUri, UriError> {
    params.only(input, "pcsc", &["share"], "share")?;
    let share = match params.get("share") {
        None => None,
        Some("exclusive") => Some(ShareMode::Exclusive),
        Some("shared") => Some(ShareMode::Shared),
        Some(other) => {
            return Err(UriError::BadValue {
                input: input.to_owned(),
                name: "share",
                value: other.to_owned(),
                expected: "exclusive or shared",
            });
        }
    };
    let name = (!path.is_empty()).then_some(path);
    Ok(ReaderUri::Pcsc(PcscUri { name, share }))
}

fn parse_serial(input: &str, path: String, params: Params) -> Result<ReaderUri, UriError> {
    const ACCEPTED: &[&str] = &["baud", "parity", "stop", "echo", "reset", "protocol"];
    params.only(
        input,
        "serial",
        ACCEPTED,
        "baud, parity, stop, echo, reset, protocol",
    )?;
    if path.is_empty() {
        return Err(UriError::MissingPath {
            input: input.to_owned(),
            scheme: "serial",
            what: "a device path, e.g. serial:/dev/ttyUSB0",
        });
    }
    let bad = |name: &'static str, value: &str, expected: &'static str| UriError::BadValue {
        input: input.to_owned(),
        name,
        value: value.to_owned(),
        expected,
    };
    let baud = match params.get("baud") {
        None => None,
        Some(text) => match text.parse::<u32>() {
            Ok(baud) if baud > 0 => Some(baud),
            _ => return Err(bad("baud", text, "a positive number of bits per second")),
        },
    };
    let parity = match params.get("parity") {
        None => None,
        Some("none") => Some(Parity::None),
        Some("even") => Some(Parity::Even),
        Some("odd") => Some(Parity::Odd),
        Some(other) => return Err(bad("parity", other, "none, even or odd")),
    };
    let stop_bits = match params.get("stop") {
        None => None,
        Some("1") => Some(1),
        Some("2") => Some(2),
        Some(other) => return Err(bad("stop", other, "1 or 2")),
    };
    let echo = match params.get("echo") {
        None => None,
        Some("on") => Some(true),
        Some("off") => Some(false),
        Some(other) => return Err(bad("echo", other, "on or off")),
    };
    let reset = match params.get("reset") {
        None => None,
        Some("rts") => Some(SerialReset::Rts),
        Some("dtr") => Some(SerialReset::Dtr),
        Some("inband") => Some(SerialReset::Inband),
        Some("none") => Some(SerialReset::None),
        Some(other) => return Err(bad("reset", other, "rts, dtr, inband or none")),
    };
    let protocol = match params.get("protocol") {
        None => None,
        Some("auto") => Some(SerialProtocol::Auto),
        Some("t0") => Some(SerialProtocol::T0),
        Some("t1") => Some(SerialProtocol::T1),
        Some(other) => return Err(bad("protocol", other, "auto, t0 or t1")),
    };
    Ok(ReaderUri::Serial(SerialUri {
        path: PathBuf::from(path),
        baud,
        parity,
        stop_bits,
        echo,
        reset,
        protocol,
    }))
}

fn parse_replay(input: &str, path: String, params: Params) -> Result<ReaderUri, UriError> {
    params.only(input, "replay", &["mode"], "mode")?;
    let mode = match params.get("mode") {
        None => None,
        Some("strict") => Some(ReplayMode::Strict),
        Some("lenient") => Some(ReplayMode::Lenient),
        Some(other) => {
            return Err(UriError::BadValue {
                input: input.to_owned(),
                name: "mode",
                value: other.to_owned(),
                expected: "strict or lenient",
            });
        }
    };
    if path.is_empty() {
        return Err(UriError::MissingPath {
            input: input.to_owned(),
            scheme: "replay",
            what: "a trace file, e.g. replay:traces/cb-read.trace",
        });
    }
    Ok(ReaderUri::Replay(ReplayUri {
        file: PathBuf::from(path),
        mode,
    }))
}

/// Writes `?a=b&c=d` for the parameters that are set.
fn write_query(f: &mut fmt::Formatter<'_>, params: &[(&str, Option<String>)]) -> fmt::Result {
    let mut separator = '?';
    for (name, value) in params {
        if let Some(value) = value {
            write!(f, "{separator}{name}={}", percent_encode(value))?;
            separator = '&';
        }
    }
    Ok(())
}

impl fmt::Display for ReaderUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReaderUri::Sim(sim) => {
                write!(f, "sim:{}", percent_encode(&sim.profile))?;
                write_query(
                    f,
                    &[
                        ("state", sim.state.as_ref().map(|p| p.display().to_string())),
                        ("seed", sim.seed.map(|seed| seed.to_string())),
                    ],
                )
            }
            ReaderUri::Pcsc(pcsc) => {
                write!(
                    f,
                    "pcsc:{}",
                    percent_encode(pcsc.name.as_deref().unwrap_or(""))
                )?;
                let share = pcsc.share.map(|share| {
                    match share {
                        ShareMode::Exclusive => "exclusive",
                        ShareMode::Shared => "shared",
                    }
                    .to_owned()
                });
                write_query(f, &[("share", share)])
            }
            ReaderUri::Serial(serial) => {
                write!(
                    f,
                    "serial:{}",
                    percent_encode(&serial.path.display().to_string())
                )?;
                let text = |value: &str| Some(value.to_owned());
                write_query(
                    f,
                    &[
                        ("baud", serial.baud.map(|baud| baud.to_string())),
                        (
                            "parity",
                            serial.parity.and_then(|parity| match parity {
                                Parity::None => text("none"),
                                Parity::Even => text("even"),
                                Parity::Odd => text("odd"),
                            }),
                        ),
                        ("stop", serial.stop_bits.map(|bits| bits.to_string())),
                        (
                            "echo",
                            serial
                                .echo
                                .map(|on| if on { "on" } else { "off" }.to_owned()),
                        ),
                        (
                            "reset",
                            serial.reset.and_then(|reset| match reset {
                                SerialReset::Rts => text("rts"),
                                SerialReset::Dtr => text("dtr"),
                                SerialReset::Inband => text("inband"),
                                SerialReset::None => text("none"),
                            }),
                        ),
                        (
                            "protocol",
                            serial.protocol.and_then(|protocol| match protocol {
                                SerialProtocol::Auto => text("auto"),
                                SerialProtocol::T0 => text("t0"),
                                SerialProtocol::T1 => text("t1"),
                            }),
                        ),
                    ],
                )
            }
            ReaderUri::Replay(replay) => {
                write!(
                    f,
                    "replay:{}",
                    percent_encode(&replay.file.display().to_string())
                )?;
                let mode = replay.mode.map(|mode| {
                    match mode {
                        ReplayMode::Strict => "strict",
                        ReplayMode::Lenient => "lenient",
                    }
                    .to_owned()
                });
                write_query(f, &[("mode", mode)])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sim(profile: &str, state: Option<&str>, seed: Option<u64>) -> ReaderUri {
        ReaderUri::Sim(SimUri {
            profile: profile.to_owned(),
            state: state.map(PathBuf::from),
            seed,
        })
    }

    #[test]
    fn sim_forms() {
        let table = [
            ("sim:", sim("cb", None, None)),
            ("sim:visa", sim("visa", None, None)),
            (
                "sim:cb?state=/tmp/cb.state",
                sim("cb", Some("/tmp/cb.state"), None),
            ),
            ("sim:?seed=42", sim("cb", None, Some(42))),
            (
                "sim:cards/my%20card.toml?seed=7&state=s",
                sim("cards/my card.toml", Some("s"), Some(7)),
            ),
        ];
        for (text, expected) in table {
            assert_eq!(ReaderUri::parse(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn pcsc_serial_replay_forms() {
        assert_eq!(
            ReaderUri::parse("pcsc:"),
            Ok(ReaderUri::Pcsc(PcscUri {
                name: None,
                share: None
            }))
        );
        assert_eq!(
            ReaderUri::parse("pcsc:Virtual%20PCD 00 01?share=exclusive"),
            Ok(ReaderUri::Pcsc(PcscUri {
                name: Some("Virtual PCD 00 01".to_owned()),
                share: Some(ShareMode::Exclusive)
            }))
        );
        assert_eq!(
            ReaderUri::parse(
                "serial:/dev/ttyUSB0?baud=9600&parity=even&stop=2&echo=on&reset=rts&protocol=t0"
            ),
            Ok(ReaderUri::Serial(SerialUri {
                path: PathBuf::from("/dev/ttyUSB0"),
                baud: Some(9600),
                parity: Some(Parity::Even),
                stop_bits: Some(2),
                echo: Some(true),
                reset: Some(SerialReset::Rts),
                protocol: Some(SerialProtocol::T0),
            }))
        );
        assert_eq!(
            ReaderUri::parse("replay:traces/cb.trace"),
            Ok(ReaderUri::Replay(ReplayUri {
                file: PathBuf::from("traces/cb.trace"),
                mode: None,
            }))
        );
    }

    #[test]
    fn errors_name_the_input_and_the_fault() {
        let table: [(&str, UriError); 8] = [
            ("cb", UriError::MissingScheme { input: "cb".into() }),
            (
                "usb:1",
                UriError::UnknownScheme {
                    input: "usb:1".into(),
                    scheme: "usb".into(),
                },
            ),
            (
                "serial:",
                UriError::MissingPath {
                    input: "serial:".into(),
                    scheme: "serial",
                    what: "a device path, e.g. serial:/dev/ttyUSB0",
                },
            ),
            (
                "replay:",
                UriError::MissingPath {
                    input: "replay:".into(),
                    scheme: "replay",
                    what: "a trace file, e.g. replay:traces/cb-read.trace",
                },
            ),
            (
                "sim:cb?colour=red",
                UriError::UnknownParameter {
                    input: "sim:cb?colour=red".into(),
                    scheme: "sim",
                    name: "colour".into(),
                    accepted: "state, seed",
                },
            ),
            (
                "sim:cb?seed=1&seed=2",
                UriError::DuplicateParameter {
                    input: "sim:cb?seed=1&seed=2".into(),
                    name: "seed".into(),
                },
            ),
            (
                "serial:/dev/x?baud=fast",
                UriError::BadValue {
                    input: "serial:/dev/x?baud=fast".into(),
                    name: "baud",
                    value: "fast".into(),
                    expected: "a positive number of bits per second",
                },
            ),
            (
                "pcsc:a%2",
                UriError::BadEscape {
                    input: "pcsc:a%2".into(),
                    offset: 6,
                },
            ),
        ];
        for (text, expected) in table {
            assert_eq!(ReaderUri::parse(text), Err(expected), "{text}");
        }
    }

    #[test]
    fn unknown_scheme_message_lists_the_valid_forms() {
        let message = ReaderUri::parse("usb:1").unwrap_err().to_string();
        assert!(message.contains("unknown scheme \"usb\""), "{message}");
        assert!(message.contains("pcsc:NAME"), "{message}");
        assert!(message.contains("serial:PATH"), "{message}");
    }

    #[test]
    fn display_is_canonical_and_parses_back() {
        for text in [
            "sim:cb",
            "sim:visa?state=/tmp/v.state&seed=3",
            "pcsc:",
            "pcsc:Virtual%20PCD%2000%2000?share=shared",
            "serial:/dev/ttyS0?baud=115200&parity=none&stop=1&echo=off&reset=none&protocol=auto",
            "replay:traces/cb.trace",
            "replay:traces/cb.trace?mode=lenient",
        ] {
            let uri = ReaderUri::parse(text).unwrap();
            assert_eq!(uri.to_string(), text);
            assert_eq!(ReaderUri::parse(&uri.to_string()), Ok(uri));
        }
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics_and_display_round_trips(text in "\\PC{0,64}") {
            if let Ok(uri) = ReaderUri::parse(&text) {
                let canonical = uri.to_string();
                proptest::prop_assert_eq!(ReaderUri::parse(&canonical), Ok(uri));
            }
        }
    }
}
