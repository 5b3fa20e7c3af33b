//! Replay as terminal: the recorded commands are sent to a card (simulated, PC/SC,
//! serial…) and every answer is checked against the recording, wildcards honoured.
//!
//! The trace is read as a stream, so a recording of any size is checked in constant
//! memory. Commands are sent raw, exactly as recorded (a T=0 recording's GET RESPONSE
//! commands included). A PIN the recording withholds (`<pin:8>`) is rebuilt from the
//! PIN the caller gives, as an ISO 9564 format 2 block.

use std::io::BufRead;

use zeroize::Zeroizing;

use super::diff::explain_response;
use super::format::{self, TraceError, format_pattern};
use super::{Event, Pattern, Segment};
use crate::apdu::CommandView;
use crate::describe::describe_command;
use crate::reader::{Reader, ReaderError, ResetKind};

/// What the check may fill in.
#[derive(Default)]
pub struct CheckOptions {
    /// The PIN to put where the recording withholds a PIN block (`<pin:8>`).
    pub pin: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for CheckOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckOptions")
            .field("pin", &self.pin.as_ref().map(|_| "<hidden>"))
            .finish()
    }
}

/// One answer that differs from the recording.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Mismatch {
    /// The line of the recorded exchange or ATR.
    pub line: usize,
    /// What was checked: the command in words, or `ATR`.
    pub what: String,
    /// The recorded answer (pattern text).
    pub expected: String,
    /// The card's answer in hex.
    pub received: String,
    /// The differences, decoded.
    pub explanation: Vec<String>,
}

/// The outcome of a check.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CheckReport {
    /// Exchanges sent.
    pub exchanges: usize,
    /// Power-ups and resets performed.
    pub resets: usize,
    /// Every answer that differed.
    pub mismatches: Vec<Mismatch>,
}

impl CheckReport {
    /// Whether every answer matched the recording.
    pub fn all_match(&self) -> bool {
        self.mismatches.is_empty()
    }
}

/// Why a check could not run to the end.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckError {
    /// The trace is unreadable or malformed.
    #[error(transparent)]
    Trace(#[from] TraceError),
    /// The reader failed.
    #[error("line {line}: {source}")]
    Reader {
        /// The line being played.
        line: usize,
        /// The reader's error.
        #[source]
        source: Box<ReaderError>,
    },
    /// A recorded command cannot be sent as it is.
    #[error("line {line}: cannot send the recorded command {command}: {reason}")]
    CannotSend {
        /// The line of the command.
        line: usize,
        /// The command as recorded.
        command: String,
        /// Why.
        reason: String,
    },
}

/// Sends every recorded command of `trace` to `reader` and compares the answers.
pub fn check_card<B: BufRead, R: Reader>(
    mut trace: format::Reader<B>,
    reader: &mut R,
    options: &CheckOptions,
) -> Result<CheckReport, CheckError> {
    let mut report = CheckReport::default();
    while let Some(event) = trace.next() {
        let event = event?;
        let line = trace.line();
        let reader_error = |source| CheckError::Reader {
            line,
            source: Box::new(source),
        };
        match event {
            Event::Comment(_) => {}
            Event::AnswerToReset(expected) => {
                let atr = if report.resets == 0 {
                    reader.power_on()
                } else {
                    reader.reset(ResetKind::Warm)
                }
                .map_err(reader_error)?;
                report.resets += 1;
                if !expected.matches(&atr) {
                    report.mismatches.push(Mismatch {
                        line,
                        what: "ATR".to_owned(),
                        expected: format_pattern(&expected),
                        received: hex::encode_upper(&atr),
                        explanation: vec![format!(
                            "ATR {} → {}",
                            format_pattern(&expected),
                            hex::encode_upper(&atr)
                        )],
                    });
                }
            }
            Event::Exchange(exchange) => {
                if report.resets == 0 {
                    reader.power_on().map_err(reader_error)?;
                    report.resets += 1;
                }
                let command = sendable(&exchange.command, options).map_err(|reason| {
                    CheckError::CannotSend {
                        line,
                        command: format_pattern(&exchange.command),
                        reason,
                    }
                })?;
                let response = reader.transmit_raw(&command).map_err(reader_error)?;
                report.exchanges += 1;
                if !exchange.response.matches(&response) {
                    let what = CommandView::parse(&command)
                        .map(|view| describe_command(&view.to_owned()))
                        .unwrap_or_else(|_| hex::encode_upper(&command));
                    report.mismatches.push(Mismatch {
                        line,
                        what,
                        expected: format_pattern(&exchange.response),
                        received: hex::encode_upper(&response),
                        explanation: explain_response(&exchange.response, &response),
                    });
                }
            }
        }
    }
    Ok(report)
}

/// The command's bytes, with a withheld PIN block rebuilt from the given PIN.
fn sendable(command: &Pattern, options: &CheckOptions) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(command.len());
    for segment in &command.segments {
        match segment {
            Segment::Bytes(bytes) => out.extend_from_slice(bytes),
            Segment::Redacted { name, len } if name == "pin" => {
                let Some(pin) = &options.pin else {
                    return Err("the recording withholds the PIN block (<pin:8>); give the PIN with --pin-stdin".to_owned());
                };
                let block = pin_block(pin)?;
                if block.len() != *len {
                    return Err(format!(
                        "the withheld PIN block is {len} bytes; an ISO 9564 format 2 block is 8"
                    ));
                }
                out.extend_from_slice(block.as_slice());
            }
            Segment::Redacted { name, len } => {
                return Err(format!(
                    "the recording withholds {len} bytes as <{name}:{len}>; record with --record-secrets to replay them"
                ));
            }
            Segment::Any(len) => {
                return Err(format!(
                    "the recorded command has {len} wildcard bytes (??); a command must be exact to be sent"
                ));
            }
        }
    }
    Ok(out)
}

/// An ISO 9564-1 format 2 PIN block: `2N` then the digits in BCD, padded with `F`.
pub fn pin_block(pin: &str) -> Result<Zeroizing<Vec<u8>>, String> {
    if !(4..=12).contains(&pin.len()) || !pin.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err("a PIN is 4 to 12 digits".to_owned());
    }
    let mut nibbles = Zeroizing::new(vec![0x2u8, pin.len() as u8]);
    nibbles.extend(pin.bytes().map(|digit| digit - b'0'));
    nibbles.resize(16, 0xF);
    let mut block = Zeroizing::new(Vec::with_capacity(8));
    for pair in nibbles.chunks_exact(2) {
        block.push((pair[0] << 4) | pair[1]);
    }
    Ok(block)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_blocks_follow_iso_9564_format_2() {
        assert_eq!(
            hex::encode_upper(pin_block("1234").unwrap().as_slice()),
            "241234FFFFFFFFFF"
        );
        assert_eq!(
            hex::encode_upper(pin_block("123456789012").unwrap().as_slice()),
            "2C123456789012FF"
        );
        assert!(pin_block("12a4").is_err());
        assert!(pin_block("123").is_err());
    }

    #[test]
    fn withheld_bytes_are_refused_unless_they_are_a_pin_we_know() {
        let mut verify = Pattern::exact(hex::decode("0020008008241234FFFFFFFFFF").unwrap());
        verify.redact(5..13, "pin");
        let no_pin = sendable(&verify, &CheckOptions::default()).unwrap_err();
        assert!(no_pin.contains("--pin-stdin"), "{no_pin}");
        let options = CheckOptions {
            pin: Some(Zeroizing::new("1234".to_owned())),
        };
        assert_eq!(
            hex::encode_upper(sendable(&verify, &options).unwrap()),
            "0020008008241234FFFFFFFFFF"
        );
        let mut pso = Pattern::exact(hex::decode("002A868004AABBCCDD00").unwrap());
        pso.redact(5..9, "plaintext");
        assert!(
            sendable(&pso, &options)
                .unwrap_err()
                .contains("--record-secrets")
        );
    }
}
