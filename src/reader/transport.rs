//! The transport layer: what every user of a reader goes through.
//!
//! It encodes commands, and does for the application what ISO 7816 leaves to the
//! terminal:
//!
//! - `61xx` (ISO 7816-4 §5.3.4 / 7816-3 §10.3.5 for T=0 case 4): more data is waiting;
//!   fetch it with GET RESPONSE, `Le = xx`, as often as the card asks, and concatenate.
//! - `6Cxx`: wrong Le; re-issue the same command with `Le = xx`.
//! - A command that needs extended length sent to a card whose ATR does not announce
//!   extended Lc/Le (ISO 7816-4 §8.1.1.2.7): its data goes in a chain of short commands
//!   (ISO 7816-4 §5.3.3, CLA bit b5), and a large Ne is asked as `Le = 00` with the rest
//!   collected through `61xx`.
//!
//! Every raw exchange (before this handling) is shown to the [`ExchangeObserver`], so a
//! recorder sees the bytes that crossed the interface.

use std::time::{Duration, Instant};

use crate::apdu::{Command, Encoding, Response, StatusWord, ins};
use crate::atr::Atr;

use super::{Reader, ReaderError, ResetKind};

/// The most rounds of GET RESPONSE or re-issue before the transport calls the card
/// broken: 65,536 bytes at 256 per round is 256 rounds, plus headroom.
const MAX_ROUNDS: usize = 300;
/// The most bytes a response may gather through GET RESPONSE (an extended Ne of
/// 65,536 plus one more round).
const MAX_RESPONSE_BYTES: usize = 65_536 + 256;
/// Largest data field of a short command (ISO 7816-4 §5.1).
const SHORT_DATA_MAX: usize = 255;
/// The CLA bit that marks "more commands of this chain follow" (ISO 7816-4 §5.4.1).
const CLA_CHAINING: u8 = 0x10;

/// Sees every raw exchange crossing the reader interface: what a trace recorder needs.
pub trait ExchangeObserver: Send {
    /// The card was powered or reset and answered this ATR.
    fn answer_to_reset(&mut self, atr: &[u8]) {
        let _ = atr;
    }
    /// One command's bytes and the response's bytes, and how long the reader took.
    fn exchange(&mut self, command: &[u8], response: &[u8], elapsed: Duration);
    /// The dialogue is over: flush what is buffered and report any failure met on the
    /// way (an observer cannot fail an exchange, so it keeps its first error for here).
    fn finish(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A reader plus the ISO 7816 transport rules; see the module documentation.
pub struct Transport<R: Reader> {
    reader: R,
    atr: Option<Atr>,
    observer: Option<Box<dyn ExchangeObserver>>,
}

impl<R: Reader> std::fmt::Debug for Transport<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("reader", &self.reader.name())
            .field("atr", &self.atr)
            .field("observer", &self.observer.is_some())
            .finish()
    }
}

impl<R: Reader> Transport<R> {
    /// Wraps a reader; the card is not powered until [`Transport::power_on`].
    pub fn new(reader: R) -> Transport<R> {
        Transport {
            reader,
            atr: None,
            observer: None,
        }
    }

    /// Lets `observer` see every raw exchange from now on (replacing any other).
    pub fn set_observer(&mut self, observer: Box<dyn ExchangeObserver>) {
        self.observer = Some(observer);
    }

    /// Removes the observer and gives it back.
    pub fn take_observer(&mut self) -> Option<Box<dyn ExchangeObserver>> {
        self.observer.take()
    }

    /// The reader underneath.
    pub fn reader(&self) -> &R {
        &self.reader
    }

    /// The reader underneath, mutably (e.g. to reach backend-specific settings).
    pub fn reader_mut(&mut self) -> &mut R {
        &mut self.reader
    }

    /// Gives the reader back.
    pub fn into_reader(self) -> R {
        self.reader
    }

    /// The card's ATR, once powered.
    pub fn atr(&self) -> Option<&Atr> {
        self.atr.as_ref()
    }

    /// Powers the card and parses its ATR.
    pub fn power_on(&mut self) -> Result<&Atr, ReaderError> {
        let bytes = self.reader.power_on()?;
        self.accept_atr(bytes)
    }

    /// Resets the card and parses its new ATR.
    pub fn reset(&mut self, kind: ResetKind) -> Result<&Atr, ReaderError> {
        let bytes = self.reader.reset(kind)?;
        self.accept_atr(bytes)
    }

    /// Removes power from the card.
    pub fn power_off(&mut self) -> Result<(), ReaderError> {
        self.atr = None;
        self.reader.power_off()
    }

    fn accept_atr(&mut self, bytes: Vec<u8>) -> Result<&Atr, ReaderError> {
        if let Some(observer) = self.observer.as_mut() {
            observer.answer_to_reset(&bytes);
        }
        let atr = Atr::parse(&bytes).map_err(|source| ReaderError::BadAtr {
            reader: self.reader.name().to_owned(),
            atr: hex::encode_upper(&bytes),
            source,
        })?;
        Ok(self.atr.insert(atr))
    }

    /// Sends a command and returns the card's complete answer, with `61xx`, `6Cxx` and
    /// chaining handled (see the module documentation).
    pub fn transmit(&mut self, command: &Command) -> Result<Response, ReaderError> {
        let Some(atr) = self.atr.as_ref() else {
            return Err(ReaderError::NotPowered {
                reader: self.reader.name().to_owned(),
            });
        };
        if !command.needs_extended() || atr.supports_extended_length() {
            // The encoded command may hold a PIN block: wiped when dropped.
            let bytes = zeroize::Zeroizing::new(command.to_bytes());
            let response = self.exchange(&bytes)?;
            return self.complete(command, bytes, response);
        }
        self.transmit_without_extended(command)
    }

    /// A command too long for short APDUs, to a card that takes only short ones.
    fn transmit_without_extended(&mut self, command: &Command) -> Result<Response, ReaderError> {
        // Ask for at most 256 bytes at once; the card announces the rest with 61xx.
        let ne = command.ne().map(|ne| ne.min(256));
        let mut chunks: Vec<&[u8]> = command.data().chunks(SHORT_DATA_MAX).collect();
        let last = chunks.pop().unwrap_or(&[]);
        for (index, chunk) in chunks.iter().enumerate() {
            let part = Command::new(
                command.cla() | CLA_CHAINING,
                command.ins(),
                command.p1(),
                command.p2(),
            )
            .with_data(chunk.to_vec())
            .map_err(|source| self.encode_error(source))?;
            let response = self.exchange(&zeroize::Zeroizing::new(part.to_bytes()))?;
            if !response.sw.is_success() {
                return Err(ReaderError::ChainingRefused {
                    reader: self.reader.name().to_owned(),
                    part: index + 1,
                    sw: response.sw,
                });
            }
        }
        let mut part = Command::new(command.cla(), command.ins(), command.p1(), command.p2())
            .with_data(last.to_vec())
            .map_err(|source| self.encode_error(source))?;
        if let Some(ne) = ne {
            part = part
                .with_le(ne)
                .map_err(|source| self.encode_error(source))?;
        }
        let bytes = zeroize::Zeroizing::new(
            part.to_bytes_with(Encoding::Short)
                .map_err(|source| self.encode_error(source))?,
        );
        let response = self.exchange(&bytes)?;
        self.complete(&part, bytes, response)
    }

    /// Follows `6Cxx` and `61xx` until the card gives a final status word.
    fn complete(
        &mut self,
        command: &Command,
        mut sent: zeroize::Zeroizing<Vec<u8>>,
        mut response: Response,
    ) -> Result<Response, ReaderError> {
        let mut gathered: Vec<u8> = Vec::new();
        let mut rounds = 0;
        loop {
            match response.sw {
                StatusWord::WrongLe(exact) => {
                    rounds += 1;
                    if rounds > MAX_ROUNDS {
                        return Err(self.runaway("6Cxx re-issue", rounds, gathered.len()));
                    }
                    sent = zeroize::Zeroizing::new(with_short_le(&sent, exact));
                    response = self.exchange(&sent)?;
                }
                StatusWord::MoreAvailable(available) => {
                    gathered.extend_from_slice(&response.data);
                    rounds += 1;
                    if rounds > MAX_ROUNDS || gathered.len() > MAX_RESPONSE_BYTES {
                        return Err(self.runaway("GET RESPONSE", rounds, gathered.len()));
                    }
                    sent = zeroize::Zeroizing::new(vec![
                        get_response_class(command.cla()),
                        ins::GET_RESPONSE,
                        0x00,
                        0x00,
                        available,
                    ]);
                    response = self.exchange(&sent)?;
                }
                _ => {
                    if gathered.is_empty() {
                        return Ok(response);
                    }
                    gathered.extend_from_slice(&response.data);
                    return Ok(Response::new(gathered, response.sw));
                }
            }
        }
    }

    /// One raw exchange: bytes to the reader, observer told, answer parsed.
    fn exchange(&mut self, command: &[u8]) -> Result<Response, ReaderError> {
        // The clock is read only for an observer: without one, nobody uses the time.
        let started = self.observer.is_some().then(Instant::now);
        let bytes = self.reader.transmit_raw(command)?;
        if let (Some(observer), Some(started)) = (self.observer.as_mut(), started) {
            observer.exchange(command, &bytes, started.elapsed());
        }
        Response::from_owned(bytes).map_err(|bytes| ReaderError::MalformedResponse {
            reader: self.reader.name().to_owned(),
            command: hex::encode_upper(command),
            response: hex::encode_upper(&bytes),
            source: crate::apdu::ApduError::ResponseTooShort { len: bytes.len() },
        })
    }

    fn encode_error(&self, source: crate::apdu::ApduError) -> ReaderError {
        ReaderError::Encode {
            reader: self.reader.name().to_owned(),
            source,
        }
    }

    fn runaway(&self, what: &'static str, rounds: usize, bytes: usize) -> ReaderError {
        ReaderError::RunawayResponse {
            reader: self.reader.name().to_owned(),
            what,
            rounds,
            bytes,
        }
    }
}

/// The class byte for GET RESPONSE: the interindustry class on the command's logical
/// channel (ISO 7816-4 §5.4.1); proprietary-class commands (EMV's `80`) get `00`.
fn get_response_class(cla: u8) -> u8 {
    if cla & 0x80 == 0 { cla & 0x03 } else { 0x00 }
}

/// The same short command with its Le byte replaced by (or, for a case 1/3 command,
/// extended with) `le` — what a `6Cxx` asks for (ISO 7816-4 §5.3.4). Commands arriving
/// here were sent in short form, so the layout is CLA INS P1 P2 [Lc data] [Le].
fn with_short_le(sent: &[u8], le: u8) -> Vec<u8> {
    let header_and_body = match sent.get(4) {
        // Case 1: no body.
        None => sent.len(),
        Some(&first) => {
            let lc = usize::from(first);
            let case3_or_4 = lc != 0 && sent.len() >= 5 + lc;
            if case3_or_4 { 5 + lc } else { 4 }
        }
    };
    let mut bytes = sent.get(..header_and_body).unwrap_or(sent).to_vec();
    bytes.push(le);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn re_issue_replaces_or_adds_le() {
        let table: [(&str, u8, &str); 4] = [
            ("00CA9F1700", 0x04, "00CA9F1704"),
            ("00CA9F17", 0x04, "00CA9F1704"),
            (
                "00A404000E315041592E5359532E444446303100",
                0x2C,
                "00A404000E315041592E5359532E44444630312C",
            ),
            (
                "0020008008241234FFFFFFFFFF",
                0x00,
                "0020008008241234FFFFFFFFFF00",
            ),
        ];
        for (sent, le, expected) in table {
            let sent = hex::decode(sent).unwrap();
            assert_eq!(hex::encode_upper(with_short_le(&sent, le)), expected);
        }
    }

    #[test]
    fn get_response_keeps_the_logical_channel_of_interindustry_commands() {
        assert_eq!(get_response_class(0x00), 0x00);
        assert_eq!(get_response_class(0x03), 0x03);
        assert_eq!(get_response_class(0x10), 0x00);
        assert_eq!(get_response_class(0x80), 0x00);
    }
}
