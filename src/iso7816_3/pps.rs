//! Protocol and parameters selection, PPS (ISO 7816-3 §9): the request the interface
//! device sends right after the ATR, the card's response, and the rules of §9.3 that
//! tell a successful exchange from a failed one — host side ([`check_response`],
//! [`PpsExchange`]) and card side ([`answer_request`]).
//!
//! A PPS message (§9.2) is PPSS = `FF`, the format byte PPS0 (b1–b4: the protocol T;
//! b5, b6, b7: PPS1, PPS2, PPS3 present; b8 reserved, 0), the parameter bytes present,
//! and PCK, chosen so that the exclusive-or of every byte from PPSS to PCK is `00`.

use std::time::{Duration, Instant};

use crate::atr::{Atr, Protocol, di_table, fi_table};

/// The initial character of every PPS message (§9.2).
pub const PPSS: u8 = 0xFF;
/// PPS1 in force when a response leaves it out: Fd = 372, Dd = 1 (§9.3).
pub const DEFAULT_FI_DI: u8 = 0x11;
/// PPS0 b5: PPS1 present.
const PPS1_PRESENT: u8 = 0x10;
/// PPS0 b6: PPS2 present.
const PPS2_PRESENT: u8 = 0x20;
/// PPS0 b7: PPS3 present.
const PPS3_PRESENT: u8 = 0x40;
/// PPS0 b8: reserved, 0 (§9.2).
const PPS0_RESERVED: u8 = 0x80;
/// The longest PPS message: PPSS, PPS0, PPS1–3, PCK.
pub const MAX_PPS_LEN: usize = 6;

/// A PPS request (§9.2), or the content of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PpsRequest {
    /// The protocol T proposed (PPS0 b4–b1; only the low nibble is encoded).
    pub protocol: u8,
    /// PPS1: FI in the high nibble and DI in the low one, coded like TA1 (§8.3).
    pub fi_di: Option<u8>,
    /// PPS2: SPU, standard or proprietary use.
    pub pps2: Option<u8>,
    /// PPS3: reserved for future use.
    pub pps3: Option<u8>,
}

/// One byte of a PPS message, for errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PpsField {
    /// PPS0 b4–b1, the protocol.
    Protocol,
    /// PPS1.
    Pps1,
    /// PPS2.
    Pps2,
    /// PPS3.
    Pps3,
}

impl std::fmt::Display for PpsField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PpsField::Protocol => "PPS0 (protocol T)",
            PpsField::Pps1 => "PPS1",
            PpsField::Pps2 => "PPS2",
            PpsField::Pps3 => "PPS3",
        })
    }
}

/// Why bytes are not a well-formed PPS message (§9.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PpsDefect {
    /// Fewer bytes than PPS0 announces (or none at all).
    #[error("{len} bytes where PPS0 announces {expected}")]
    Truncated {
        /// Bytes received.
        len: usize,
        /// Bytes PPS0 announces (2 while PPS0 itself is missing).
        expected: usize,
    },
    /// More bytes than PPS0 announces.
    #[error("{len} bytes where PPS0 announces {expected}: {} trailing bytes at offset {expected}", len.saturating_sub(*expected))]
    TrailingBytes {
        /// Bytes received.
        len: usize,
        /// Bytes PPS0 announces.
        expected: usize,
    },
    /// PPSS (offset 0) is not `FF`.
    #[error("PPSS = {found:02X} at offset 0: expected FF")]
    BadPpss {
        /// The byte received.
        found: u8,
    },
    /// PPS0 (offset 1) has its reserved bit b8 set.
    #[error("PPS0 = {pps0:02X} at offset 1: b8 is reserved and must be 0")]
    ReservedBit {
        /// The PPS0 received.
        pps0: u8,
    },
    /// The exclusive-or of PPSS..PCK is not zero.
    #[error("PCK = {found:02X} at offset {offset}: expected {expected:02X}")]
    BadPck {
        /// Offset of PCK.
        offset: usize,
        /// The PCK that makes the exclusive-or zero.
        expected: u8,
        /// The PCK received.
        found: u8,
    },
}

/// Why a PPS exchange failed.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PpsError {
    /// The bytes are no PPS message (§9.2).
    #[error("malformed PPS message {}: {defect}", hex::encode_upper(bytes))]
    Malformed {
        /// The bytes received.
        bytes: Vec<u8>,
        /// What is wrong with them.
        defect: PpsDefect,
    },
    /// A well-formed response that §9.3 does not count as success: a field neither
    /// echoed nor (for PPS1–3) left out, or one present that was not asked.
    #[error(
        "PPS rejected: {field} requested {}, answered {} (ISO 7816-3 §9.3: echoed, or PPS1–PPS3 left out)",
        show(*requested),
        show(*answered)
    )]
    Rejected {
        /// The field that does not match.
        field: PpsField,
        /// Its value in the request (`None`: absent).
        requested: Option<u8>,
        /// Its value in the response (`None`: absent).
        answered: Option<u8>,
    },
    /// Nothing within the initial waiting time: the card does not accept the request
    /// (§9.3: it stays silent; the interface device deactivates it).
    #[error(
        "no PPS response within {waited:?} (ISO 7816-3 §9.3: the card stays silent on a request it does not accept)"
    )]
    NoResponse {
        /// How long the host waited since the request or the last character.
        waited: Duration,
    },
    /// The response stopped before the length its PPS0 announces.
    #[error(
        "PPS response cut short after {}: no character within {waited:?}",
        hex::encode_upper(received)
    )]
    Incomplete {
        /// The bytes received.
        received: Vec<u8>,
        /// How long the host waited since the last one.
        waited: Duration,
    },
    /// Bytes arrived after the response was complete.
    #[error("{} bytes after the PPS response: {}", bytes.len(), hex::encode_upper(bytes))]
    TrailingBytes {
        /// The extra bytes.
        bytes: Vec<u8>,
    },
}

fn show(byte: Option<u8>) -> String {
    byte.map_or_else(|| "absent".to_owned(), |b| format!("{b:02X}"))
}

impl PpsRequest {
    /// A request for `protocol` at default parameters (no PPS1–3).
    pub fn for_protocol(protocol: u8) -> PpsRequest {
        PpsRequest {
            protocol,
            fi_di: None,
            pps2: None,
            pps3: None,
        }
    }

    /// PPS0: the protocol's low nibble and the presence bits (§9.2).
    pub fn pps0(&self) -> u8 {
        let mut pps0 = self.protocol & 0x0F;
        for (present, bit) in [
            (self.fi_di.is_some(), PPS1_PRESENT),
            (self.pps2.is_some(), PPS2_PRESENT),
            (self.pps3.is_some(), PPS3_PRESENT),
        ] {
            if present {
                pps0 |= bit;
            }
        }
        pps0
    }

    /// The message: PPSS `FF`, PPS0, the PPS1–3 present, PCK (§9.2).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(MAX_PPS_LEN);
        out.push(PPSS);
        out.push(self.pps0());
        out.extend([self.fi_di, self.pps2, self.pps3].into_iter().flatten());
        out.push(xor(&out));
        out
    }

    /// Reads one PPS message, exactly (request or response: both have this form).
    ///
    /// # Errors
    /// [`PpsError::Malformed`] naming the [`PpsDefect`].
    pub fn decode(bytes: &[u8]) -> Result<PpsRequest, PpsError> {
        let malformed = |defect| PpsError::Malformed {
            bytes: bytes.to_vec(),
            defect,
        };
        let (&ppss, rest) = bytes.split_first().ok_or(malformed(PpsDefect::Truncated {
            len: 0,
            expected: 2,
        }))?;
        if ppss != PPSS {
            return Err(malformed(PpsDefect::BadPpss { found: ppss }));
        }
        let &pps0 = rest.first().ok_or(malformed(PpsDefect::Truncated {
            len: bytes.len(),
            expected: 2,
        }))?;
        if pps0 & PPS0_RESERVED != 0 {
            return Err(malformed(PpsDefect::ReservedBit { pps0 }));
        }
        let expected = pps_length(bytes).unwrap_or(MAX_PPS_LEN);
        if bytes.len() < expected {
            return Err(malformed(PpsDefect::Truncated {
                len: bytes.len(),
                expected,
            }));
        }
        if bytes.len() > expected {
            return Err(malformed(PpsDefect::TrailingBytes {
                len: bytes.len(),
                expected,
            }));
        }
        if xor(bytes) != 0 {
            let offset = expected - 1;
            let body = bytes.get(..offset).unwrap_or_default();
            return Err(malformed(PpsDefect::BadPck {
                offset,
                expected: xor(body),
                found: bytes.get(offset).copied().unwrap_or_default(),
            }));
        }
        // PPS1, PPS2, PPS3 follow PPS0 in this order, each when its bit is set.
        let mut parameters = bytes.get(2..expected - 1).unwrap_or_default().iter();
        let mut next = |bit: u8| {
            if pps0 & bit != 0 {
                parameters.next().copied()
            } else {
                None
            }
        };
        Ok(PpsRequest {
            protocol: pps0 & 0x0F,
            fi_di: next(PPS1_PRESENT),
            pps2: next(PPS2_PRESENT),
            pps3: next(PPS3_PRESENT),
        })
    }
}

fn xor(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0, |acc, b| acc ^ b)
}

/// The length of the PPS message that starts with `prefix`, once PPS0 (its second
/// byte) is known: PPSS, PPS0, one byte per presence bit b5–b7, PCK. `None` before
/// PPS0. PPSS itself is not checked here ([`PpsRequest::decode`] does).
pub fn pps_length(prefix: &[u8]) -> Option<usize> {
    let &pps0 = prefix.get(1)?;
    let parameters = (pps0 & (PPS1_PRESENT | PPS2_PRESENT | PPS3_PRESENT)).count_ones();
    Some(3 + parameters as usize)
}

/// A successful PPS exchange (§9.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PpsOutcome {
    /// The card accepted: from now on `protocol` runs with `fi_di`.
    Accepted {
        /// The protocol selected.
        protocol: u8,
        /// The FI/DI byte now in force: PPS1 when the card echoed it, `11` (Fd, Dd)
        /// when it left PPS1 out.
        fi_di: u8,
    },
}

/// Checks the card's response against the request by the rules of §9.3: PPSS and the
/// protocol echoed; each of PPS1, PPS2, PPS3 either echoed or left out (PPS1 left out
/// means Fd = 372, Dd = 1); none present that was not asked; PCK correct.
///
/// # Errors
/// [`PpsError::Malformed`] when the response is no PPS message,
/// [`PpsError::Rejected`] naming the first field that breaks §9.3.
pub fn check_response(request: &PpsRequest, response: &[u8]) -> Result<PpsOutcome, PpsError> {
    let answer = PpsRequest::decode(response)?;
    let protocol = request.protocol & 0x0F;
    if answer.protocol != protocol {
        return Err(PpsError::Rejected {
            field: PpsField::Protocol,
            requested: Some(protocol),
            answered: Some(answer.protocol),
        });
    }
    for (field, requested, answered) in [
        (PpsField::Pps1, request.fi_di, answer.fi_di),
        (PpsField::Pps2, request.pps2, answer.pps2),
        (PpsField::Pps3, request.pps3, answer.pps3),
    ] {
        // Echoed, or left out; never a value of the card's own or an unasked byte.
        if answered.is_some() && answered != requested {
            return Err(PpsError::Rejected {
                field,
                requested,
                answered,
            });
        }
    }
    Ok(PpsOutcome::Accepted {
        protocol,
        fi_di: answer.fi_di.unwrap_or(DEFAULT_FI_DI),
    })
}

/// The card's answer to a (well-formed) request, given its ATR.
///
/// - A card in specific mode (TA2 present, §8.3) takes no PPS: `None`.
/// - A protocol the ATR does not offer: `None` — the card stays silent (§9.3) and the
///   interface device deactivates it. (A request that does not decode gets the same
///   silence: the caller does not call this.)
/// - Otherwise the card confirms the protocol. PPS1 is echoed when the rate asked is
///   within what TA1 announces — FI and DI defined in Tables 7 and 8, f(max) not above
///   TA1's, and Di/Fi (the bit rate at a given clock) not above TA1's — or is the
///   default `11`; otherwise it is left out, so Fd, Dd stay in force. PPS2 and PPS3
///   are left out: this card uses neither.
pub fn answer_request(request: &PpsRequest, offered: &Atr) -> Option<Vec<u8>> {
    if offered.specific_mode().is_some() {
        return None;
    }
    let protocol = Protocol::from_t(request.protocol & 0x0F);
    if !offered.protocols().contains(&protocol) {
        return None;
    }
    let fi_di = request
        .fi_di
        .filter(|&asked| asked == DEFAULT_FI_DI || within_ta1(asked, offered.ta1()));
    Some(
        PpsRequest {
            protocol: request.protocol & 0x0F,
            fi_di,
            pps2: None,
            pps3: None,
        }
        .encode(),
    )
}

/// Whether FI/DI `asked` is a rate the card announcing `ta1` supports (see
/// [`answer_request`]).
fn within_ta1(asked: u8, ta1: u8) -> bool {
    let (Some((fi_asked, f_asked)), Some(di_asked), Some((fi_card, f_card)), Some(di_card)) = (
        fi_table(asked >> 4),
        di_table(asked & 0x0F),
        fi_table(ta1 >> 4),
        di_table(ta1 & 0x0F),
    ) else {
        return false;
    };
    // Di/Fi ≤ Di(TA1)/Fi(TA1), cross-multiplied: all values are small integers.
    let rate_ok =
        u32::from(di_asked) * u32::from(fi_card) <= u32::from(di_card) * u32::from(fi_asked);
    rate_ok && f_asked <= f_card
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ExchangeState {
    /// Waiting for (more of) the response.
    Waiting,
    /// The card accepted; the outcome not yet taken.
    Done(PpsOutcome),
    /// The outcome was taken.
    Taken,
    /// Failed; every later call repeats the error.
    Failed(PpsError),
}

/// The host side of one PPS exchange: sends the request, collects the response within
/// the initial waiting time, checks it (§9.3).
///
/// Same shape as every engine of [`super`]: bytes in with the instant they arrived,
/// bytes out through [`PpsExchange::poll_transmit`], the deadline through
/// [`PpsExchange::poll_timeout`]. Echo must be removed before
/// [`PpsExchange::handle_input`].
#[derive(Debug, Clone)]
pub struct PpsExchange {
    request: PpsRequest,
    waiting_time: Duration,
    transmit: Option<Vec<u8>>,
    received: Vec<u8>,
    last_at: Instant,
    state: ExchangeState,
}

impl PpsExchange {
    /// Starts an exchange: the request is ready to transmit; the card's first
    /// character is due within `waiting_time` of `now` (the initial waiting time,
    /// 9,600 etu, §7.2 and §9.1), and so is each next one.
    pub fn start(request: PpsRequest, waiting_time: Duration, now: Instant) -> PpsExchange {
        PpsExchange {
            transmit: Some(request.encode()),
            request,
            waiting_time,
            received: Vec::with_capacity(MAX_PPS_LEN),
            last_at: now,
            state: ExchangeState::Waiting,
        }
    }

    /// The request this exchange sends.
    pub fn request(&self) -> &PpsRequest {
        &self.request
    }

    /// Takes the card's characters (echo removed), all arrived at `now`.
    ///
    /// # Errors
    /// As [`check_response`] once the response's length is reached;
    /// [`PpsError::TrailingBytes`] for bytes beyond it; the error that already failed
    /// this exchange.
    pub fn handle_input(&mut self, bytes: &[u8], now: Instant) -> Result<(), PpsError> {
        match &self.state {
            ExchangeState::Failed(error) => return Err(error.clone()),
            ExchangeState::Done(_) | ExchangeState::Taken if !bytes.is_empty() => {
                return Err(self.fail(PpsError::TrailingBytes {
                    bytes: bytes.to_vec(),
                }));
            }
            ExchangeState::Done(_) | ExchangeState::Taken => return Ok(()),
            ExchangeState::Waiting => {}
        }
        if bytes.is_empty() {
            return Ok(());
        }
        self.last_at = now;
        let mut rest = bytes;
        while let Some((&byte, tail)) = rest.split_first() {
            rest = tail;
            self.received.push(byte);
            if self.received.first() != Some(&PPSS) {
                // Not a PPS response at all: report it without waiting for more.
                let bytes = self.received.clone();
                let defect = PpsDefect::BadPpss { found: byte };
                return Err(self.fail(PpsError::Malformed { bytes, defect }));
            }
            if pps_length(&self.received) == Some(self.received.len()) {
                return match check_response(&self.request, &self.received) {
                    Ok(outcome) if rest.is_empty() => {
                        self.state = ExchangeState::Done(outcome);
                        Ok(())
                    }
                    Ok(outcome) => {
                        self.state = ExchangeState::Done(outcome);
                        Err(self.fail(PpsError::TrailingBytes {
                            bytes: rest.to_vec(),
                        }))
                    }
                    Err(error) => Err(self.fail(error)),
                };
            }
        }
        Ok(())
    }

    /// Fires the deadline of [`PpsExchange::poll_timeout`] if `now` has reached it.
    ///
    /// # Errors
    /// [`PpsError::NoResponse`] when nothing came, [`PpsError::Incomplete`] when the
    /// response stopped short; the error that already failed this exchange.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), PpsError> {
        if let ExchangeState::Failed(error) = &self.state {
            return Err(error.clone());
        }
        match self.poll_timeout() {
            Some(deadline) if now >= deadline => {}
            _ => return Ok(()),
        }
        let waited = now.saturating_duration_since(self.last_at);
        let error = if self.received.is_empty() {
            PpsError::NoResponse { waited }
        } else {
            PpsError::Incomplete {
                received: self.received.clone(),
                waited,
            }
        };
        Err(self.fail(error))
    }

    /// The request, once.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmit.take()
    }

    /// While the response is awaited: the waiting time after the request or the last
    /// character.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            ExchangeState::Waiting => Some(
                self.last_at
                    .checked_add(self.waiting_time)
                    .unwrap_or(self.last_at),
            ),
            _ => None,
        }
    }

    /// The outcome, once the card accepted; `Some` only once.
    pub fn outcome(&mut self) -> Option<PpsOutcome> {
        match self.state {
            ExchangeState::Done(outcome) => {
                self.state = ExchangeState::Taken;
                Some(outcome)
            }
            _ => None,
        }
    }

    fn fail(&mut self, error: PpsError) -> PpsError {
        self.state = ExchangeState::Failed(error.clone());
        error
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bytes(hex: &str) -> Vec<u8> {
        hex::decode(hex.replace(' ', "")).unwrap()
    }

    fn request(protocol: u8, fi_di: Option<u8>, pps2: Option<u8>, pps3: Option<u8>) -> PpsRequest {
        PpsRequest {
            protocol,
            fi_di,
            pps2,
            pps3,
        }
    }

    /// §9.2: PPSS FF, PPS0 with presence bits, parameters in order, PCK making the
    /// exclusive-or zero. One row per layout; each decodes back.
    #[test]
    fn encode_and_decode() {
        let rows = [
            (request(0, None, None, None), "FF 00 FF"),
            (request(1, None, None, None), "FF 01 FE"),
            (request(1, Some(0x94), None, None), "FF 11 94 7A"),
            (request(0, Some(0x13), None, None), "FF 10 13 FC"),
            (request(1, None, Some(0x01), None), "FF 21 01 DF"),
            (request(1, None, None, Some(0x00)), "FF 41 00 BE"),
            (
                request(1, Some(0x18), Some(0x02), Some(0x03)),
                "FF 71 18 02 03 97",
            ),
        ];
        for (request, hex) in rows {
            assert_eq!(request.encode(), bytes(hex), "{request:?}");
            assert_eq!(PpsRequest::decode(&bytes(hex)), Ok(request), "{hex}");
            assert_eq!(pps_length(&bytes(hex)), Some(bytes(hex).len()), "{hex}");
        }
        assert_eq!(pps_length(&[0xFF]), None);
    }

    /// §9.2: one row per defect, the error expected exactly.
    #[test]
    fn malformed_messages() {
        let rows = [
            (
                "",
                PpsDefect::Truncated {
                    len: 0,
                    expected: 2,
                },
            ),
            (
                "FF",
                PpsDefect::Truncated {
                    len: 1,
                    expected: 2,
                },
            ),
            (
                "FF 11 94",
                PpsDefect::Truncated {
                    len: 3,
                    expected: 4,
                },
            ),
            (
                "FF 00 FF 00",
                PpsDefect::TrailingBytes {
                    len: 4,
                    expected: 3,
                },
            ),
            ("FE 00 FE", PpsDefect::BadPpss { found: 0xFE }),
            ("FF 80 7F", PpsDefect::ReservedBit { pps0: 0x80 }),
            (
                "FF 11 94 7B",
                PpsDefect::BadPck {
                    offset: 3,
                    expected: 0x7A,
                    found: 0x7B,
                },
            ),
        ];
        for (hex, defect) in rows {
            assert_eq!(
                PpsRequest::decode(&bytes(hex)),
                Err(PpsError::Malformed {
                    bytes: bytes(hex),
                    defect
                }),
                "{hex}"
            );
        }
    }

    /// §9.3: one row per response rule for a given request.
    #[test]
    fn response_rules() {
        let t1_fast = request(1, Some(0x96), None, None);
        let with_pps2 = request(1, Some(0x96), Some(0x01), None);
        let rows: Vec<(&str, PpsRequest, &str, Result<PpsOutcome, PpsError>)> = vec![
            (
                "echo: accepted with PPS1",
                t1_fast,
                "FF 11 96 78",
                Ok(PpsOutcome::Accepted {
                    protocol: 1,
                    fi_di: 0x96,
                }),
            ),
            (
                "PPS1 left out: accepted at Fd, Dd",
                t1_fast,
                "FF 01 FE",
                Ok(PpsOutcome::Accepted {
                    protocol: 1,
                    fi_di: 0x11,
                }),
            ),
            (
                "PPS2 left out, PPS1 echoed",
                with_pps2,
                "FF 11 96 78",
                Ok(PpsOutcome::Accepted {
                    protocol: 1,
                    fi_di: 0x96,
                }),
            ),
            (
                "no PPS1 asked: default rate",
                request(0, None, None, None),
                "FF 00 FF",
                Ok(PpsOutcome::Accepted {
                    protocol: 0,
                    fi_di: 0x11,
                }),
            ),
            (
                "other protocol: rejected",
                t1_fast,
                "FF 10 96 79",
                Err(PpsError::Rejected {
                    field: PpsField::Protocol,
                    requested: Some(1),
                    answered: Some(0),
                }),
            ),
            (
                "other PPS1: rejected",
                t1_fast,
                "FF 11 95 7B",
                Err(PpsError::Rejected {
                    field: PpsField::Pps1,
                    requested: Some(0x96),
                    answered: Some(0x95),
                }),
            ),
            (
                "PPS1 not asked but answered: rejected",
                request(1, None, None, None),
                "FF 11 11 FF",
                Err(PpsError::Rejected {
                    field: PpsField::Pps1,
                    requested: None,
                    answered: Some(0x11),
                }),
            ),
            (
                "other PPS2: rejected",
                with_pps2,
                "FF 31 96 02 5A",
                Err(PpsError::Rejected {
                    field: PpsField::Pps2,
                    requested: Some(0x01),
                    answered: Some(0x02),
                }),
            ),
            (
                "bad PCK: malformed",
                t1_fast,
                "FF 11 96 79",
                Err(PpsError::Malformed {
                    bytes: bytes("FF 11 96 79"),
                    defect: PpsDefect::BadPck {
                        offset: 3,
                        expected: 0x78,
                        found: 0x79,
                    },
                }),
            ),
            (
                "truncated: malformed",
                t1_fast,
                "FF 11 96",
                Err(PpsError::Malformed {
                    bytes: bytes("FF 11 96"),
                    defect: PpsDefect::Truncated {
                        len: 3,
                        expected: 4,
                    },
                }),
            ),
        ];
        for (name, request, response, expected) in rows {
            assert_eq!(
                check_response(&request, &bytes(response)),
                expected,
                "{name}"
            );
        }
    }

    /// Card side (§9.3): one row per answer rule, for a given ATR.
    #[test]
    fn card_answers() {
        // TA1 = 96 (Fi 512, Di 32, f max 5 MHz); T=0 and T=1 offered.
        let fast = Atr::parse(&bytes(
            "3B F8 96 00 00 80 31 FE 45 80 73 C6 01 00 52 42 4B 0B",
        ))
        .unwrap();
        // No TA1 (Fd, Dd only); T=0 only.
        let plain = Atr::parse(&bytes("3B 68 00 00 80 73 C6 01 00 52 54 30")).unwrap();
        // TA2 = 80: specific mode, T=0.
        let specific = Atr::parse(&bytes("3B 80 10 80")).unwrap();
        let rows: &[(&str, PpsRequest, &Atr, Option<&str>)] = &[
            (
                "T=1 at TA1's rate: echoed",
                request(1, Some(0x96), None, None),
                &fast,
                Some("FF 11 96 78"),
            ),
            (
                "T=0 default: echoed",
                request(0, None, None, None),
                &fast,
                Some("FF 00 FF"),
            ),
            (
                "T=1, PPS1 11: echoed",
                request(1, Some(0x11), None, None),
                &fast,
                Some("FF 11 11 FF"),
            ),
            // Fi 512 Di 16: slower than TA1 at the same clock.
            (
                "slower rate: echoed",
                request(1, Some(0x95), None, None),
                &fast,
                Some("FF 11 95 7B"),
            ),
            // Di 64 > 32: beyond TA1, PPS1 left out.
            (
                "faster than TA1: PPS1 left out",
                request(1, Some(0x97), None, None),
                &fast,
                Some("FF 01 FE"),
            ),
            // Fi 2048 at 20 MHz: f max above TA1's 5 MHz.
            (
                "higher f max: PPS1 left out",
                request(1, Some(0xD1), None, None),
                &fast,
                Some("FF 01 FE"),
            ),
            (
                "RFU DI: PPS1 left out",
                request(1, Some(0x9F), None, None),
                &fast,
                Some("FF 01 FE"),
            ),
            (
                "PPS2 and PPS3 left out",
                request(0, None, Some(1), Some(2)),
                &fast,
                Some("FF 00 FF"),
            ),
            (
                "no TA1: only 11 echoed",
                request(0, Some(0x13), None, None),
                &plain,
                Some("FF 00 FF"),
            ),
            (
                "protocol not offered: silent",
                request(1, None, None, None),
                &plain,
                None,
            ),
            ("T=15: silent", request(15, None, None, None), &fast, None),
            (
                "specific mode: silent",
                request(0, None, None, None),
                &specific,
                None,
            ),
        ];
        for &(name, request, atr, expected) in rows {
            assert_eq!(answer_request(&request, atr), expected.map(bytes), "{name}");
            if let Some(answer) = answer_request(&request, atr) {
                assert!(check_response(&request, &answer).is_ok(), "{name}");
            }
        }
    }

    #[test]
    fn exchange_accepted_split() {
        let start = Instant::now();
        let wt = Duration::from_millis(1000);
        let mut exchange = PpsExchange::start(request(1, Some(0x96), None, None), wt, start);
        assert_eq!(exchange.poll_transmit(), Some(bytes("FF 11 96 78")));
        assert_eq!(exchange.poll_transmit(), None);
        assert_eq!(exchange.poll_timeout(), Some(start + wt));
        let later = start + Duration::from_millis(400);
        exchange.handle_input(&bytes("FF 11"), later).unwrap();
        assert_eq!(exchange.poll_timeout(), Some(later + wt));
        assert_eq!(exchange.outcome(), None);
        exchange.handle_input(&bytes("96 78"), later).unwrap();
        assert_eq!(exchange.poll_timeout(), None);
        assert_eq!(
            exchange.outcome(),
            Some(PpsOutcome::Accepted {
                protocol: 1,
                fi_di: 0x96
            })
        );
        assert_eq!(exchange.outcome(), None);
    }

    /// One row per way the host-side exchange fails.
    #[test]
    fn exchange_failures() {
        let start = Instant::now();
        let wt = Duration::from_millis(1000);
        let late = start + Duration::from_millis(1000);
        let request = request(1, Some(0x96), None, None);
        type Step = (Option<&'static str>, Instant);
        let rows: Vec<(&str, Vec<Step>, PpsError)> = vec![
            (
                "§9.3 silence",
                vec![(None, late)],
                PpsError::NoResponse { waited: wt },
            ),
            (
                "cut short",
                vec![(Some("FF 11"), start), (None, late)],
                PpsError::Incomplete {
                    received: bytes("FF 11"),
                    waited: wt,
                },
            ),
            (
                "not PPSS",
                vec![(Some("3B"), start)],
                PpsError::Malformed {
                    bytes: bytes("3B"),
                    defect: PpsDefect::BadPpss { found: 0x3B },
                },
            ),
            (
                "trailing bytes",
                vec![(Some("FF 11 96 78 60"), start)],
                PpsError::TrailingBytes { bytes: bytes("60") },
            ),
            (
                "rejected",
                vec![(Some("FF 10 96 79"), start)],
                PpsError::Rejected {
                    field: PpsField::Protocol,
                    requested: Some(1),
                    answered: Some(0),
                },
            ),
        ];
        for (name, steps, expected) in rows {
            let mut exchange = PpsExchange::start(request, wt, start);
            let mut result = Ok(());
            for (input, at) in steps {
                result = match input {
                    Some(hex) => exchange.handle_input(&bytes(hex), at),
                    None => exchange.handle_timeout(at),
                };
            }
            assert_eq!(result, Err(expected.clone()), "{name}");
            assert_eq!(exchange.outcome(), None, "{name}");
            // A failed exchange stays failed.
            assert_eq!(exchange.handle_timeout(late), Err(expected), "{name}");
        }
    }

    #[test]
    fn error_messages_name_the_field() {
        let error = PpsError::Rejected {
            field: PpsField::Pps1,
            requested: Some(0x96),
            answered: None,
        };
        assert_eq!(
            error.to_string(),
            "PPS rejected: PPS1 requested 96, answered absent (ISO 7816-3 §9.3: echoed, or PPS1–PPS3 left out)"
        );
    }

    proptest! {
        #[test]
        fn decode_never_panics(input in proptest::collection::vec(any::<u8>(), 0..10)) {
            let _ = PpsRequest::decode(&input);
            let _ = pps_length(&input);
            let _ = check_response(&PpsRequest::for_protocol(1), &input);
        }

        #[test]
        fn encode_decode_round_trip(
            protocol in 0u8..16,
            fi_di in any::<Option<u8>>(),
            pps2 in any::<Option<u8>>(),
            pps3 in any::<Option<u8>>(),
        ) {
            let request = request(protocol, fi_di, pps2, pps3);
            let encoded = request.encode();
            prop_assert_eq!(xor(&encoded), 0);
            prop_assert_eq!(pps_length(&encoded), Some(encoded.len()));
            prop_assert_eq!(PpsRequest::decode(&encoded), Ok(request));
            // An echo is always a success (§9.3).
            prop_assert!(check_response(&request, &encoded).is_ok());
        }

        #[test]
        fn exchange_never_panics(
            chunks in proptest::collection::vec(
                (proptest::collection::vec(any::<u8>(), 0..8), 0u64..2000),
                0..6,
            )
        ) {
            let start = Instant::now();
            let mut exchange =
                PpsExchange::start(PpsRequest::for_protocol(0), Duration::from_millis(1000), start);
            let mut at = start;
            for (chunk, delay) in chunks {
                at += Duration::from_millis(delay);
                let _ = exchange.handle_timeout(at);
                let _ = exchange.handle_input(&chunk, at);
                let _ = exchange.poll_timeout();
                let _ = exchange.outcome();
            }
        }
    }
}
