//! Receiving an Answer To Reset from the I/O line, character by character (ISO 7816-3
//! §8.1, §8.2), with the waiting times of §8.2 as deadlines the caller supplies.
//!
//! The receiver reads TS first and learns the convention from it (§8.1): `3B` is the
//! direct convention; `03` is an inverse-convention card read by a direct-convention
//! UART (every later character is then decoded with [`convention::invert`]); `3F` is
//! an inverse-convention card whose reader already decodes in hardware. It then follows
//! the ATR's structure as it arrives — T0's Y1 and K, each TDi's Yi+1, and TCK, present
//! as soon as some TDi names a protocol other than T=0 (§8.2.5) — so it knows when the
//! ATR ends without waiting for a silence, and hands the complete bytes to
//! [`Atr::parse`].
//!
//! [`convention::invert`]: super::convention::invert

use std::fmt;
use std::time::{Duration, Instant};

use super::convention::{self, Convention, TS_DIRECT, TS_INVERSE_AS_READ};
use super::timing::LineTiming;
use crate::atr::{Atr, AtrError, MAX_ATR_LEN};

/// TS of an inverse-convention card, as its value (and as a reader that decodes the
/// inverse convention in hardware delivers it).
const TS_INVERSE: u8 = 0x3F;

/// The waiting times that bound an ATR (ISO 7816-3 §8.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AtrTiming {
    /// From the release of reset to TS: the card answers within 40,000 clock cycles.
    pub first_character: Duration,
    /// Between two consecutive characters: the initial waiting time, 9,600 etu.
    pub between_characters: Duration,
    /// From TS to the end of the ATR: 19,200 etu.
    pub total: Duration,
}

impl AtrTiming {
    /// The standard's bounds on this line ([`LineTiming::atr_first_character`],
    /// [`LineTiming::atr_between_characters`], [`LineTiming::atr_total`]). A driver
    /// whose operating system delivers bytes late may widen them.
    pub fn from_line(timing: &LineTiming) -> AtrTiming {
        AtrTiming {
            first_character: timing.atr_first_character(),
            between_characters: timing.atr_between_characters(),
            total: timing.atr_total(),
        }
    }
}

/// A complete ATR, parsed, and what came with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedAtr {
    /// The ATR as decoded characters starting with TS (`3B` or `3F`).
    pub atr: Atr,
    /// The card's convention, announced by TS.
    pub convention: Convention,
    /// Whether the host must decode every later character it reads (and encode every
    /// character it writes) with [`convention::decode`] / [`convention::encode`]: true
    /// when TS was read as `03`, false for `3B` and for a `3F` decoded by the reader.
    pub invert_on_host: bool,
    /// Decoded bytes that arrived after the ATR's last character, in the same input as
    /// that character or before the ATR was taken; they belong to what follows (a PPS
    /// response, T=0 or T=1).
    pub trailing: Vec<u8>,
}

/// Why no ATR was received.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AtrReceiveError {
    /// Nothing arrived within [`AtrTiming::first_character`] of the reset's release
    /// (ISO 7816-3 §8.2).
    #[error(
        "no answer to reset: no TS within {waited:?} of releasing reset (ISO 7816-3 §8.2: the card starts its answer within 40,000 clock cycles)"
    )]
    NoAnswer {
        /// How long the receiver waited.
        waited: Duration,
    },
    /// The first character is no TS (ISO 7816-3 §8.1).
    #[error(
        "TS read as {ts:02X} at offset 0: expected 3B (direct convention), 03 (inverse convention read by a direct UART) or 3F (inverse convention decoded by the reader)"
    )]
    BadTs {
        /// The character as the UART read it.
        ts: u8,
    },
    /// The card stopped sending before the ATR's structure was complete: more than
    /// [`AtrTiming::between_characters`] between two characters, or past
    /// [`AtrTiming::total`] since TS (ISO 7816-3 §8.2).
    #[error(
        "ATR incomplete: {} bytes received ({}), at least {expected_at_least} expected (ISO 7816-3 §8.2: at most 9,600 etu between characters, 19,200 etu in all)",
        received.len(),
        Hex(received)
    )]
    Incomplete {
        /// The decoded characters received, TS first.
        received: Vec<u8>,
        /// The length the structure received so far announces (TS, T0, the interface
        /// bytes announced so far, the historical bytes and TCK when known to be
        /// present).
        expected_at_least: usize,
    },
    /// The characters do not form a valid ATR: too long (§8.2.1), a T=15 in TD1, a
    /// wrong TCK (§8.2.5).
    #[error("malformed ATR: {source}")]
    Malformed {
        /// What [`Atr::parse`] (or the length check while receiving) found.
        #[source]
        source: AtrError,
    },
    /// Bytes handed to the receiver after its ATR was taken with
    /// [`AtrReceiver::poll_atr`]: they belong to the protocol that follows.
    #[error(
        "{} bytes ({}) received after the ATR was taken: hand them to the protocol that follows",
        bytes.len(),
        Hex(bytes)
    )]
    AfterEnd {
        /// The bytes, as the UART read them.
        bytes: Vec<u8>,
    },
}

/// Bytes as spaced upper-case hex, for error messages.
struct Hex<'a>(&'a [u8]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, byte) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{byte:02X}")?;
        }
        Ok(())
    }
}

/// How the characters after TS are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Line {
    /// Direct convention: as read.
    Direct,
    /// Inverse convention read by a direct UART: each character inverted.
    InverseOnHost,
    /// Inverse convention decoded by the reader: as read.
    InverseByReader,
}

impl Line {
    fn decode(self, byte: u8) -> u8 {
        match self {
            Line::InverseOnHost => convention::invert(byte),
            Line::Direct | Line::InverseByReader => byte,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Reset released; TS not yet received.
    WaitingTs,
    /// TS received at `first_at`; the last character at `last_at`.
    Receiving {
        line: Line,
        first_at: Instant,
        last_at: Instant,
    },
    /// Complete and parsed; waiting for [`AtrReceiver::poll_atr`].
    Complete(ReceivedAtr),
    /// The ATR was taken.
    Taken,
    /// Failed; every later call repeats the error.
    Failed(AtrReceiveError),
}

/// Receives one ATR after a reset; see the module documentation.
///
/// Like every engine of [`super`], it reads no clock: the caller passes the instant at
/// which bytes arrived and calls [`AtrReceiver::handle_timeout`] when
/// [`AtrReceiver::poll_timeout`] has passed with nothing received. A failed receiver
/// stays failed (reset the card and start a new one).
#[derive(Debug, Clone)]
pub struct AtrReceiver {
    timing: AtrTiming,
    reset_released: Instant,
    /// Decoded characters received so far, TS first (at most [`MAX_ATR_LEN`]).
    received: Vec<u8>,
    state: State,
}

impl AtrReceiver {
    /// A receiver waiting for TS; `now` is the instant reset was released.
    pub fn new(timing: AtrTiming, now: Instant) -> AtrReceiver {
        AtrReceiver {
            timing,
            reset_released: now,
            received: Vec::with_capacity(MAX_ATR_LEN),
            state: State::WaitingTs,
        }
    }

    /// Takes characters as the UART read them, all arrived at `now`.
    ///
    /// Once the ATR's structure is complete it is parsed; bytes after its end are kept
    /// as [`ReceivedAtr::trailing`]. Input is accepted whatever `now` is: deadlines
    /// fire only through [`AtrReceiver::handle_timeout`].
    ///
    /// # Errors
    /// [`AtrReceiveError::BadTs`], [`AtrReceiveError::Malformed`] (too long, or
    /// rejected by [`Atr::parse`]), [`AtrReceiveError::AfterEnd`] once the ATR was
    /// taken, or the error that already failed this receiver.
    pub fn handle_input(&mut self, raw: &[u8], now: Instant) -> Result<(), AtrReceiveError> {
        let mut rest = raw;
        loop {
            match &mut self.state {
                State::Failed(error) => return Err(error.clone()),
                State::Taken => {
                    return if rest.is_empty() {
                        Ok(())
                    } else {
                        Err(AtrReceiveError::AfterEnd {
                            bytes: rest.to_vec(),
                        })
                    };
                }
                State::Complete(received) => {
                    // After TS only the host-side inversion changes a character.
                    let line = if received.invert_on_host {
                        Line::InverseOnHost
                    } else {
                        Line::Direct
                    };
                    received
                        .trailing
                        .extend(rest.iter().map(|&byte| line.decode(byte)));
                    return Ok(());
                }
                State::WaitingTs => {
                    let Some((&ts, tail)) = rest.split_first() else {
                        return Ok(());
                    };
                    // §8.1: TS fixes the convention for every later character.
                    let (line, value) = match ts {
                        TS_DIRECT => (Line::Direct, TS_DIRECT),
                        TS_INVERSE_AS_READ => (Line::InverseOnHost, TS_INVERSE),
                        TS_INVERSE => (Line::InverseByReader, TS_INVERSE),
                        _ => return Err(self.fail(AtrReceiveError::BadTs { ts })),
                    };
                    self.received.push(value);
                    self.state = State::Receiving {
                        line,
                        first_at: now,
                        last_at: now,
                    };
                    rest = tail;
                }
                State::Receiving { line, last_at, .. } => {
                    let line = *line;
                    *last_at = now;
                    while let Some((&byte, tail)) = rest.split_first() {
                        rest = tail;
                        self.received.push(line.decode(byte));
                        let length = announced_length(&self.received);
                        if length.at_least > MAX_ATR_LEN {
                            // §8.2.1: TS and at most 32 characters.
                            let source = AtrError::TooLong {
                                len: length.at_least,
                            };
                            return Err(self.fail(AtrReceiveError::Malformed { source }));
                        }
                        if length.complete && self.received.len() == length.at_least {
                            return self.finish(line, rest);
                        }
                    }
                    return Ok(());
                }
            }
        }
    }

    /// Fires the deadline of [`AtrReceiver::poll_timeout`] if `now` has reached it;
    /// before it, does nothing.
    ///
    /// # Errors
    /// [`AtrReceiveError::NoAnswer`] when TS has not arrived,
    /// [`AtrReceiveError::Incomplete`] when the ATR is cut short, or the error that
    /// already failed this receiver.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), AtrReceiveError> {
        if let State::Failed(error) = &self.state {
            return Err(error.clone());
        }
        match self.poll_timeout() {
            Some(deadline) if now >= deadline => {}
            _ => return Ok(()),
        }
        let error = match self.state {
            State::WaitingTs => AtrReceiveError::NoAnswer {
                waited: now.saturating_duration_since(self.reset_released),
            },
            _ => AtrReceiveError::Incomplete {
                received: self.received.clone(),
                expected_at_least: announced_length(&self.received).at_least,
            },
        };
        Err(self.fail(error))
    }

    /// The instant by which the next character must have arrived, while one is
    /// awaited: TS within [`AtrTiming::first_character`] of reset; then the earlier
    /// of [`AtrTiming::between_characters`] after the last character and
    /// [`AtrTiming::total`] after TS.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.state {
            State::WaitingTs => Some(deadline(self.reset_released, self.timing.first_character)),
            State::Receiving {
                first_at, last_at, ..
            } => Some(
                deadline(*last_at, self.timing.between_characters)
                    .min(deadline(*first_at, self.timing.total)),
            ),
            State::Complete(_) | State::Taken | State::Failed(_) => None,
        }
    }

    /// The ATR, once complete and parsed; `Some` only once.
    pub fn poll_atr(&mut self) -> Option<ReceivedAtr> {
        match std::mem::replace(&mut self.state, State::Taken) {
            State::Complete(received) => Some(received),
            other => {
                self.state = other;
                None
            }
        }
    }

    /// Whether the receiver failed (every later call repeats its error).
    pub fn is_failed(&self) -> bool {
        matches!(self.state, State::Failed(_))
    }

    /// The decoded characters received so far, TS first.
    pub fn received(&self) -> &[u8] {
        &self.received
    }

    fn fail(&mut self, error: AtrReceiveError) -> AtrReceiveError {
        self.state = State::Failed(error.clone());
        error
    }

    /// The structure is complete: parse, keep what follows.
    fn finish(&mut self, line: Line, rest: &[u8]) -> Result<(), AtrReceiveError> {
        match Atr::parse(&self.received) {
            Ok(atr) => {
                self.state = State::Complete(ReceivedAtr {
                    convention: atr.convention(),
                    atr,
                    invert_on_host: line == Line::InverseOnHost,
                    trailing: rest.iter().map(|&byte| line.decode(byte)).collect(),
                });
                Ok(())
            }
            Err(source) => Err(self.fail(AtrReceiveError::Malformed { source })),
        }
    }
}

/// `start + wait`, or the farthest instant the platform can represent.
fn deadline(start: Instant, wait: Duration) -> Instant {
    start.checked_add(wait).unwrap_or(start)
}

/// What the characters received so far say about the ATR's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct AnnouncedLength {
    /// The length announced so far: TS, T0, every interface byte whose presence is
    /// known, the K historical bytes and TCK once a TDi requires it.
    at_least: usize,
    /// Whether that is the whole structure (the last TDi received announces no
    /// further level).
    complete: bool,
}

/// Follows the structure of §8.2.2 over the decoded characters received so far
/// (TS first): T0 gives Y1 and K, each TDi gives Yi+1 and a T; TCK is present as soon
/// as some T ≠ 0 (§8.2.5). Stops as soon as the length passes [`MAX_ATR_LEN`], so a
/// chain of TDi costs no more than 33 steps.
fn announced_length(received: &[u8]) -> AnnouncedLength {
    let Some(&t0) = received.get(1) else {
        return AnnouncedLength {
            at_least: 2,
            complete: false,
        };
    };
    let historical = usize::from(t0 & 0x0F);
    let mut y = t0 >> 4;
    let mut position: usize = 2;
    let mut tck = false;
    let complete = loop {
        // TAi, TBi, TCi as announced by bits b5..b7 of the presence nibble (§8.2.2).
        position += (y & 0x07).count_ones() as usize;
        if y & 0x08 == 0 {
            break true;
        }
        let td_position = position;
        position += 1;
        match received.get(td_position) {
            Some(&td) => {
                tck |= td & 0x0F != 0;
                y = td >> 4;
            }
            None => break false,
        }
        if position > MAX_ATR_LEN {
            break false;
        }
    };
    AnnouncedLength {
        at_least: position + historical + usize::from(tck),
        complete,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bytes(hex: &str) -> Vec<u8> {
        hex::decode(hex.replace(' ', "")).unwrap()
    }

    fn timing() -> AtrTiming {
        AtrTiming {
            first_character: Duration::from_millis(20),
            between_characters: Duration::from_millis(1000),
            total: Duration::from_millis(2000),
        }
    }

    fn ms(start: Instant, ms: u64) -> Instant {
        start + Duration::from_millis(ms)
    }

    /// What the receiver produced from `chunks`, each arriving 1 ms after the last.
    fn receive(chunks: &[Vec<u8>]) -> Result<Option<ReceivedAtr>, AtrReceiveError> {
        let start = Instant::now();
        let mut receiver = AtrReceiver::new(timing(), start);
        for (i, chunk) in chunks.iter().enumerate() {
            receiver.handle_input(chunk, ms(start, i as u64 + 1))?;
        }
        Ok(receiver.poll_atr())
    }

    /// One row per rule of §8.1 and §8.2: the line's bytes in one input, the decoded
    /// ATR expected, whether the host inverts, the trailing bytes.
    #[test]
    fn complete_atrs() {
        let rows: &[(&str, &str, &str, bool, &str)] = &[
            // §8.1 direct convention, T=0 only: TCK absent (§8.2.5).
            (
                "direct, T=0 only, no TCK",
                "3B 68 00 00 80 73 C6 01 00 52 54 30",
                "3B 68 00 00 80 73 C6 01 00 52 54 30",
                false,
                "",
            ),
            // §8.2.5: TD2 names T=1, so TCK follows the historical bytes.
            (
                "direct, T=0 and T=1, TCK",
                "3B E8 00 00 80 31 FE 45 80 73 C6 01 00 52 42 4B 8D",
                "3B E8 00 00 80 31 FE 45 80 73 C6 01 00 52 42 4B 8D",
                false,
                "",
            ),
            // §8.1 inverse convention read by a direct UART: TS 3F arrives as 03.
            (
                "inverse, read as 03",
                "03 19 5B FF AB FB FF 0F E9 F6 FF",
                "3F 67 25 00 2A 20 00 0F 68 90 00",
                true,
                "",
            ),
            // §8.1 inverse convention decoded by the reader's hardware.
            (
                "inverse, decoded by the reader",
                "3F 67 25 00 2A 20 00 0F 68 90 00",
                "3F 67 25 00 2A 20 00 0F 68 90 00",
                false,
                "",
            ),
            // §8.2.2: the structure ends the ATR; what follows is kept, decoded.
            (
                "trailing bytes after a T=0 ATR",
                "3B 68 00 00 80 73 C6 01 00 52 54 30 FF 10",
                "3B 68 00 00 80 73 C6 01 00 52 54 30",
                false,
                "FF 10",
            ),
            (
                "trailing bytes after TCK, inverse",
                "03 19 5B FF AB FB FF 0F E9 F6 FF 00 FF",
                "3F 67 25 00 2A 20 00 0F 68 90 00",
                true,
                "FF 00",
            ),
            // §8.2.2: T0 = 00, no interface byte, no historical byte.
            ("shortest ATR", "3B 00", "3B 00", false, ""),
        ];
        for &(name, line, atr, invert_on_host, trailing) in rows {
            let received = receive(&[bytes(line)]).unwrap().unwrap();
            assert_eq!(received.atr.as_bytes(), bytes(atr), "{name}");
            let convention = if atr.starts_with("3F") {
                Convention::Inverse
            } else {
                Convention::Direct
            };
            assert_eq!(received.convention, convention, "{name}");
            assert_eq!(received.invert_on_host, invert_on_host, "{name}");
            assert_eq!(received.trailing, bytes(trailing), "{name}");
        }
    }

    /// §8.2: characters arrive one at a time; the ATR is complete on its last one and
    /// not before.
    #[test]
    fn byte_by_byte() {
        for line in [
            "3B E8 00 00 80 31 FE 45 80 73 C6 01 00 52 42 4B 8D",
            "03 19 5B FF AB FB FF 0F E9 F6 FF",
            "3B 68 00 00 80 73 C6 01 00 52 54 30",
        ] {
            let line = bytes(line);
            let start = Instant::now();
            let mut receiver = AtrReceiver::new(timing(), start);
            for (i, &byte) in line.iter().enumerate() {
                assert!(receiver.poll_atr().is_none(), "complete before byte {i}");
                receiver.handle_input(&[byte], ms(start, i as u64)).unwrap();
            }
            let received = receiver.poll_atr().unwrap();
            assert_eq!(received.atr.as_bytes().len(), line.len());
            assert!(received.trailing.is_empty());
            assert!(receiver.poll_atr().is_none(), "the ATR is taken once");
            assert_eq!(receiver.poll_timeout(), None);
        }
    }

    /// One row per failure rule: the line's bytes, the error expected exactly.
    #[test]
    fn malformed_atrs() {
        let rows: Vec<(&str, &str, AtrReceiveError)> = vec![
            // §8.1: TS is 3B or 3F (03 as read).
            ("bad TS", "3A 00", AtrReceiveError::BadTs { ts: 0x3A }),
            (
                "TS of a decoded inverse card re-inverted",
                "C0 00",
                AtrReceiveError::BadTs { ts: 0xC0 },
            ),
            // §8.2.5: the XOR of T0..TCK is 00.
            (
                "TCK mismatch",
                "3B E8 00 00 80 31 FE 45 80 73 C6 01 00 52 42 4B 8C",
                AtrReceiveError::Malformed {
                    source: AtrError::TckMismatch {
                        expected: 0x8D,
                        found: 0x8C,
                    },
                },
            ),
            // §8.2.3: T=15 is not allowed in TD1.
            (
                "T=15 in TD1",
                "3B 80 0F 0F",
                AtrReceiveError::Malformed {
                    source: AtrError::T15InTd1 {
                        offset: 2,
                        td1: 0x0F,
                    },
                },
            ),
            // §8.2.1: at most 33 characters; a chain of TDi passes that before ending.
            (
                "too long: TDi chain",
                "3B 80 80 80 80 80 80 80 80 80 80 80 80 80 80 80 80 80 80 80 80 80 80 80 80 80 80 80 80 80 80 80 80",
                AtrReceiveError::Malformed {
                    source: AtrError::TooLong { len: 34 },
                },
            ),
            // §8.2.1: 2 + 4 interface bytes + 15 historical + 15 more ... announced at TD3.
            (
                "too long: announced by the interface bytes and K",
                "3B FF 11 22 33 F1 11 22 33 F1 11 22 33 F1",
                AtrReceiveError::Malformed {
                    source: AtrError::TooLong { len: 34 },
                },
            ),
        ];
        for (name, line, expected) in rows {
            assert_eq!(receive(&[bytes(line)]), Err(expected), "{name}");
        }
    }

    /// §8.2: nothing within the first-character deadline is no answer; the deadline
    /// does not fire early.
    #[test]
    fn no_answer() {
        let start = Instant::now();
        let mut receiver = AtrReceiver::new(timing(), start);
        assert_eq!(receiver.poll_timeout(), Some(ms(start, 20)));
        assert_eq!(receiver.handle_timeout(ms(start, 19)), Ok(()));
        let error = AtrReceiveError::NoAnswer {
            waited: Duration::from_millis(21),
        };
        assert_eq!(receiver.handle_timeout(ms(start, 21)), Err(error.clone()));
        // A failed receiver stays failed.
        assert_eq!(receiver.handle_input(&[0x3B], ms(start, 22)), Err(error));
        assert!(receiver.is_failed());
        assert_eq!(receiver.poll_timeout(), None);
    }

    /// §8.2: more than the initial waiting time between two characters ends the ATR
    /// incomplete, naming what arrived and what the structure announced.
    #[test]
    fn gap_between_characters() {
        let start = Instant::now();
        let mut receiver = AtrReceiver::new(timing(), start);
        receiver
            .handle_input(&bytes("3B E8 00 00 80 31"), ms(start, 5))
            .unwrap();
        assert_eq!(receiver.poll_timeout(), Some(ms(start, 1005)));
        receiver.handle_input(&[0xFE], ms(start, 500)).unwrap();
        assert_eq!(receiver.poll_timeout(), Some(ms(start, 1500)));
        assert_eq!(receiver.handle_timeout(ms(start, 1499)), Ok(()));
        assert_eq!(
            receiver.handle_timeout(ms(start, 1500)),
            Err(AtrReceiveError::Incomplete {
                received: bytes("3B E8 00 00 80 31 FE"),
                // TS T0 TB1 TC1 TD1 TD2 TA3 TB3, 8 historical bytes, TCK.
                expected_at_least: 17,
            })
        );
    }

    /// §8.2: the whole ATR within 19,200 etu of TS, even when no gap is too long.
    #[test]
    fn past_total_time() {
        let start = Instant::now();
        let mut receiver = AtrReceiver::new(timing(), start);
        let line = bytes("3B 68 00 00 80 73 C6 01 00 52 54 30");
        for (i, &byte) in line.iter().take(4).enumerate() {
            receiver
                .handle_input(&[byte], ms(start, 10 + 600 * i as u64))
                .unwrap();
        }
        // TS at 10 ms: the total bound (2000 ms) comes before the gap bound (3410 ms).
        assert_eq!(receiver.poll_timeout(), Some(ms(start, 2010)));
        assert_eq!(
            receiver.handle_timeout(ms(start, 2010)),
            Err(AtrReceiveError::Incomplete {
                received: bytes("3B 68 00 00"),
                expected_at_least: 12,
            })
        );
    }

    /// Only TS and part of T0's promise: the length announced grows as TDi arrive.
    #[test]
    fn announced_length_follows_the_structure() {
        let rows: &[(&str, usize, bool)] = &[
            ("3B", 2, false),
            ("3B 00", 2, true),
            ("3B 0F", 17, true),
            ("3B 80", 3, false),
            ("3B 80 01", 4, true),
            ("3B 80 80", 4, false),
            ("3B 80 80 01", 5, true),
            ("3B 80 80 00", 4, true),
            ("3B 80 8F", 5, false),
            ("3B E8 00 00 80", 14, false),
            ("3B E8 00 00 80 31", 17, true),
        ];
        for &(prefix, at_least, complete) in rows {
            assert_eq!(
                announced_length(&bytes(prefix)),
                AnnouncedLength { at_least, complete },
                "{prefix}"
            );
        }
    }

    #[test]
    fn bytes_after_the_atr_was_taken() {
        let start = Instant::now();
        let mut receiver = AtrReceiver::new(timing(), start);
        receiver.handle_input(&bytes("3B 00"), start).unwrap();
        receiver.handle_input(&bytes("60"), start).unwrap();
        assert_eq!(receiver.poll_atr().unwrap().trailing, bytes("60"));
        assert_eq!(
            receiver.handle_input(&bytes("90 00"), start),
            Err(AtrReceiveError::AfterEnd {
                bytes: bytes("90 00")
            })
        );
    }

    #[test]
    fn error_messages_name_what_and_where() {
        assert_eq!(
            AtrReceiveError::Incomplete {
                received: bytes("3B 68"),
                expected_at_least: 12
            }
            .to_string(),
            "ATR incomplete: 2 bytes received (3B 68), at least 12 expected (ISO 7816-3 §8.2: at most 9,600 etu between characters, 19,200 etu in all)"
        );
        assert!(
            AtrReceiveError::BadTs { ts: 0x12 }
                .to_string()
                .starts_with("TS read as 12 at offset 0")
        );
    }

    #[test]
    fn timing_from_the_line() {
        let line = LineTiming::from_baud(9600, 1);
        let timing = AtrTiming::from_line(&line);
        assert_eq!(timing.between_characters, line.etus(9_600));
        assert_eq!(timing.total, line.etus(19_200));
        assert_eq!(timing.first_character, line.atr_first_character());
    }

    proptest! {
        /// No input, split anyhow and interleaved with timeouts, makes the receiver
        /// panic, and a completed ATR always parses.
        #[test]
        fn arbitrary_input_never_panics(
            chunks in proptest::collection::vec(
                (proptest::collection::vec(any::<u8>(), 0..12), 0u64..3000, any::<bool>()),
                0..8,
            )
        ) {
            let start = Instant::now();
            let mut receiver = AtrReceiver::new(timing(), start);
            let mut at = start;
            for (chunk, delay, timeout) in chunks {
                at = ms(at, delay);
                if timeout {
                    let _ = receiver.handle_timeout(at);
                }
                let _ = receiver.handle_input(&chunk, at);
                let _ = receiver.poll_timeout();
                if let Some(received) = receiver.poll_atr() {
                    prop_assert!(Atr::parse(received.atr.as_bytes()).is_ok());
                }
            }
        }

        /// A valid ATR, split at arbitrary points, with any trailing bytes, is
        /// received whole and the trailing bytes kept.
        #[test]
        fn any_split_gives_the_same_atr(
            cuts in proptest::collection::vec(0usize..20, 0..6),
            trailing in proptest::collection::vec(any::<u8>(), 0..4),
        ) {
            let atr = bytes("3B E8 00 00 80 31 FE 45 80 73 C6 01 00 52 42 4B 8D");
            let mut line = atr.clone();
            line.extend_from_slice(&trailing);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(line.len())).collect();
            cuts.sort_unstable();
            let mut chunks = Vec::new();
            let mut from = 0;
            for cut in cuts.into_iter().chain([line.len()]) {
                chunks.push(line[from..cut].to_vec());
                from = cut;
            }
            let received = receive(&chunks).unwrap().unwrap();
            prop_assert_eq!(received.atr.as_bytes(), &atr[..]);
            prop_assert_eq!(received.trailing, trailing);
        }
    }
}
