//! Recording: a [`Recorder`] watches a [`Transport`](crate::reader::Transport) as its
//! [`ExchangeObserver`] and writes every raw exchange (before T=0 handling, with the
//! time the card took) to a trace as it happens, so a crash loses nothing already seen.
//!
//! Secrets are masked by default (`@secrets masked`):
//!
//! - the data of commands that carry a PIN (VERIFY, CHANGE REFERENCE DATA, RESET RETRY
//!   COUNTER, EMV PIN CHANGE/UNBLOCK) becomes `<pin:N>`;
//! - the plaintext of PERFORM SECURITY OPERATION: the data sent to ENCIPHER and the data
//!   DECIPHER returns (also when it arrives through GET RESPONSE) becomes
//!   `<plaintext:N>`.
//!
//! With [`Secrets::Recorded`] everything is kept, and the header says so.

use std::io::Write;
use std::time::Duration;

use super::format::Writer;
use super::{Event, Exchange, Header, Pattern, Secrets};
use crate::apdu::{CommandView, ins};
use crate::reader::ExchangeObserver;

/// What the data of a PSO command is, for masking (ISO 7816-8 §11: P1-P2 `86 80`
/// ENCIPHER takes plaintext, `80 86` DECIPHER returns it).
fn pso_plaintext(view: &CommandView<'_>) -> (bool, bool) {
    if view.ins() != ins::PERFORM_SECURITY_OPERATION {
        return (false, false);
    }
    match (view.p1(), view.p2()) {
        (0x86, 0x80) => (true, false),
        (0x80, 0x86) => (false, true),
        _ => (false, false),
    }
}

/// Writes the exchanges it sees to a trace; see the module documentation.
pub struct Recorder<W: Write + Send> {
    writer: Option<Writer<W>>,
    secrets: Secrets,
    /// The last command's response data is secret (DECIPHER): so is what GET RESPONSE
    /// fetches after it.
    response_secret: bool,
    error: Option<std::io::Error>,
}

impl<W: Write + Send> std::fmt::Debug for Recorder<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("secrets", &self.secrets)
            .field("failed", &self.error.is_some())
            .finish_non_exhaustive()
    }
}

impl<W: Write + Send> Recorder<W> {
    /// Starts a trace on `out` with `header` (its `secrets` field decides the masking).
    pub fn new(out: W, header: &Header) -> std::io::Result<Recorder<W>> {
        Ok(Recorder {
            writer: Some(Writer::new(out, header)?),
            secrets: header.secrets,
            response_secret: false,
            error: None,
        })
    }

    /// Writes one event, keeping the first error and writing nothing after it.
    fn write(&mut self, event: &Event) {
        if self.error.is_some() {
            return;
        }
        if let Some(writer) = self.writer.as_mut()
            && let Err(error) = writer.write_event(event).and_then(|()| writer.flush())
        {
            self.error = Some(error);
        }
    }

    /// Adds a comment line to the trace.
    pub fn comment(&mut self, text: &str) {
        self.write(&Event::Comment(text.to_owned()));
    }

    /// Ends the recording and gives the output back, or the first write error.
    pub fn into_inner(mut self) -> std::io::Result<W> {
        if let Some(error) = self.error.take() {
            return Err(error);
        }
        let mut writer = self
            .writer
            .take()
            .ok_or_else(|| std::io::Error::other("the recorder was already finished"))?;
        writer.flush()?;
        Ok(writer.into_inner())
    }

    /// The command as a pattern, its secret data redacted unless secrets are kept.
    fn command_pattern(&mut self, command: &[u8]) -> Pattern {
        let mut pattern = Pattern::exact(command.to_vec());
        let Ok(view) = CommandView::parse(command) else {
            self.response_secret = false;
            return pattern;
        };
        let (plaintext_in, plaintext_out) = pso_plaintext(&view);
        let is_get_response = view.ins() == ins::GET_RESPONSE;
        if !is_get_response {
            self.response_secret = plaintext_out;
        }
        if self.secrets == Secrets::Masked && !view.data().is_empty() {
            let name = if view.carries_secret() {
                Some("pin")
            } else if plaintext_in {
                Some("plaintext")
            } else {
                None
            };
            if let Some(name) = name {
                // The data field sits after the header and Lc (1 byte short, 3 extended).
                let lc_len = if view.case().is_extended() { 3 } else { 1 };
                let start = 4 + lc_len;
                pattern.redact(start..start + view.data().len(), name);
            }
        }
        pattern
    }

    fn response_pattern(&self, response: &[u8]) -> Pattern {
        let mut pattern = Pattern::exact(response.to_vec());
        if self.secrets == Secrets::Masked && self.response_secret && response.len() > 2 {
            pattern.redact(0..response.len() - 2, "plaintext");
        }
        pattern
    }
}

impl<W: Write + Send> ExchangeObserver for Recorder<W> {
    fn answer_to_reset(&mut self, atr: &[u8]) {
        self.response_secret = false;
        self.write(&Event::AnswerToReset(Pattern::exact(atr.to_vec())));
    }

    fn exchange(&mut self, command: &[u8], response: &[u8], elapsed: Duration) {
        let command = self.command_pattern(command);
        let response = self.response_pattern(response);
        self.write(&Event::Exchange(Exchange {
            command,
            response,
            elapsed: Some(elapsed),
            note: None,
        }));
    }

    fn finish(&mut self) -> std::io::Result<()> {
        if let Some(error) = self.error.take() {
            return Err(error);
        }
        match self.writer.as_mut() {
            Some(writer) => writer.flush(),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::Segment;

    fn recorder(secrets: Secrets) -> Recorder<Vec<u8>> {
        let header = Header {
            version: crate::trace::FORMAT_VERSION,
            secrets,
            ..Header::default()
        };
        Recorder::new(Vec::new(), &header).unwrap()
    }

    #[test]
    fn pin_blocks_are_masked_by_default() {
        let mut recorder = recorder(Secrets::Masked);
        let verify = hex::decode("0020008008241234FFFFFFFFFF").unwrap();
        let pattern = recorder.command_pattern(&verify);
        assert_eq!(
            pattern.segments,
            vec![
                Segment::Bytes(hex::decode("0020008008").unwrap()),
                Segment::Redacted {
                    name: "pin".into(),
                    len: 8
                }
            ]
        );
        let mut keeping = self::recorder(Secrets::Recorded);
        assert_eq!(keeping.command_pattern(&verify), Pattern::exact(verify));
    }

    #[test]
    fn decipher_plaintext_is_masked_through_get_response() {
        let mut recorder = recorder(Secrets::Masked);
        let decipher = hex::decode("002A80860401020304").unwrap();
        recorder.command_pattern(&decipher);
        let first = recorder.response_pattern(&hex::decode("AABB6102").unwrap());
        assert_eq!(first.to_bytes(), None, "plaintext masked");
        recorder.command_pattern(&hex::decode("00C0000002").unwrap());
        let rest = recorder.response_pattern(&hex::decode("CCDD9000").unwrap());
        assert_eq!(
            rest.segments,
            vec![
                Segment::Redacted {
                    name: "plaintext".into(),
                    len: 2
                },
                Segment::Bytes(vec![0x90, 0x00])
            ]
        );
        recorder.command_pattern(&hex::decode("00B2010C00").unwrap());
        let record = recorder.response_pattern(&hex::decode("70009000").unwrap());
        assert!(record.is_exact(), "only the DECIPHER dialogue is masked");
    }
}
