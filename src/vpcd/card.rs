//! The card side of vpcd: what each message does to the backend reader.
//!
//! [`VirtualCard`] keeps two views of power apart: vpcd's (`00`/`01`/`02` set it) and
//! the backend card's ([`Backend`]). They differ only where a power-up or reset would
//! change nothing (see "Redundant resets" in the [module documentation](super)).

use std::time::Instant;

use super::{
    Control, Event, MAX_ATR_LEN, MAX_PAYLOAD, SUBSTITUTE_RESPONSE, Substitution, VpcdError,
};
use crate::reader::{ExchangeObserver, Reader, ReaderError, ResetKind};

/// The backend card's state, as the server tracks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Not powered: never yet, or powered off after a dialogue.
    Unpowered,
    /// Powered, and no command since its last power-up (`Cold`) or warm reset (`Warm`).
    Fresh(ResetKind),
    /// Powered, and commands were sent since its last power-up or reset.
    InUse,
    /// A power-up or a command failed in a way that means the card is gone; the
    /// connection must end, and the next one powers the card afresh.
    Lost,
}

/// Any [`Reader`] played as vpcd's virtual card; see the [module documentation](super).
pub struct VirtualCard<R: Reader> {
    reader: R,
    /// The ATR of the last power-up or reset: vpcd asks for it even when the card is off.
    atr: Option<Vec<u8>>,
    /// Powered as vpcd sees it.
    powered: bool,
    backend: Backend,
    observer: Option<Box<dyn ExchangeObserver>>,
}

impl<R: Reader> std::fmt::Debug for VirtualCard<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VirtualCard")
            .field("reader", &self.reader.name())
            .field("atr", &self.atr.as_deref().map(hex::encode_upper))
            .field("powered", &self.powered)
            .field("backend", &self.backend)
            .field("observer", &self.observer.is_some())
            .finish()
    }
}

impl<R: Reader> VirtualCard<R> {
    /// Serves the card in `reader`; nothing is powered until vpcd asks (or
    /// [`VirtualCard::power_up`]).
    pub fn new(reader: R) -> VirtualCard<R> {
        VirtualCard {
            reader,
            atr: None,
            powered: false,
            backend: Backend::Unpowered,
            observer: None,
        }
    }

    /// Lets `observer` see every ATR and exchange from now on (replacing any other).
    pub fn set_observer(&mut self, observer: Box<dyn ExchangeObserver>) {
        self.observer = Some(observer);
    }

    /// Removes the observer and gives it back.
    pub fn take_observer(&mut self) -> Option<Box<dyn ExchangeObserver>> {
        self.observer.take()
    }

    /// The backend reader.
    pub fn reader(&self) -> &R {
        &self.reader
    }

    /// Gives the backend reader back.
    pub fn into_reader(self) -> R {
        self.reader
    }

    /// The ATR of the last power-up or reset, if any.
    pub fn atr(&self) -> Option<&[u8]> {
        self.atr.as_deref()
    }

    /// Whether vpcd has the card powered.
    pub fn is_powered(&self) -> bool {
        self.powered
    }

    /// The backend card's state.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Powers the backend card now, unless it is fresh from a power-up already, and
    /// returns its ATR. Serving starts with this, so that a card that cannot be served
    /// fails before any connection, and the ATR is known when vpcd first asks. vpcd's
    /// view stays unpowered; its first `01` is then absorbed.
    pub fn power_up(&mut self) -> Result<&[u8], VpcdError> {
        if self.backend != Backend::Fresh(ResetKind::Cold) {
            self.reset_backend(ResetKind::Cold, &mut Vec::new())?;
        }
        Ok(self.atr.as_deref().unwrap_or_default())
    }

    /// Handles a control message; returns the reply for vpcd, if it expects one.
    pub fn control(
        &mut self,
        control: Control,
        events: &mut Vec<Event>,
    ) -> Result<Option<Vec<u8>>, VpcdError> {
        match control {
            Control::PowerOff => {
                self.powered = false;
                match self.backend {
                    // A fresh card keeps its power: powered but unused is what a
                    // power-up would give, so the next `01` can be absorbed.
                    Backend::Fresh(_) => events.push(Event::Absorbed(control)),
                    Backend::InUse => self.power_off_backend(events),
                    Backend::Unpowered | Backend::Lost => {}
                }
                Ok(None)
            }
            Control::PowerOn => {
                self.powered = true;
                if self.backend == Backend::Fresh(ResetKind::Cold) {
                    events.push(Event::Absorbed(control));
                } else {
                    self.reset_backend(ResetKind::Cold, events)?;
                }
                Ok(None)
            }
            Control::Reset => {
                self.powered = true;
                match self.backend {
                    Backend::Fresh(_) => events.push(Event::Absorbed(control)),
                    Backend::InUse => self.reset_backend(ResetKind::Warm, events)?,
                    // Resetting an unpowered card powers it (ISO 7816-3 §6.2.2).
                    Backend::Unpowered | Backend::Lost => {
                        self.reset_backend(ResetKind::Cold, events)?;
                    }
                }
                Ok(None)
            }
            Control::GetAtr => {
                if self.atr.is_none() {
                    self.reset_backend(ResetKind::Cold, events)?;
                }
                Ok(Some(self.atr.clone().unwrap_or_default()))
            }
        }
    }

    /// Sends a command APDU to the backend card and returns what vpcd receives: the
    /// card's response, or [`SUBSTITUTE_RESPONSE`] when that cannot be sent as it is.
    /// An error means the card is lost and the connection must end.
    pub fn command(
        &mut self,
        command: &[u8],
        events: &mut Vec<Event>,
    ) -> Result<Vec<u8>, VpcdError> {
        if !self.powered {
            return Ok(self.substitute(command, Substitution::Unpowered, events));
        }
        let started = Instant::now();
        let result = self.reader.transmit_raw(command);
        let elapsed = started.elapsed();
        let response = match result {
            Ok(response) => response,
            Err(error) if is_refusal(&error) => {
                self.backend = Backend::InUse;
                let reason = Substitution::Refused(Box::new(error));
                return Ok(self.substitute(command, reason, events));
            }
            Err(error) => {
                self.backend = Backend::Lost;
                return Err(VpcdError::CardLost {
                    reader: self.reader.name().to_owned(),
                    command: hex::encode_upper(command),
                    source: Box::new(error),
                });
            }
        };
        self.backend = Backend::InUse;
        if response.is_empty() {
            return Ok(self.substitute(command, Substitution::EmptyResponse, events));
        }
        if response.len() > MAX_PAYLOAD {
            let reason = Substitution::ResponseTooLong {
                len: response.len(),
            };
            return Ok(self.substitute(command, reason, events));
        }
        if let Some(observer) = self.observer.as_mut() {
            observer.exchange(command, &response, elapsed);
        }
        events.push(Event::Exchange {
            command: command.to_vec(),
            response: response.clone(),
            elapsed,
        });
        Ok(response)
    }

    /// The connection ended: the card is out of the virtual reader. A card in use is
    /// powered off (as a removed card loses power); a lost card's ATR is forgotten, so
    /// that the next connection powers it afresh before presenting it.
    pub fn removed(&mut self, events: &mut Vec<Event>) {
        self.powered = false;
        match self.backend {
            Backend::InUse => self.power_off_backend(events),
            Backend::Lost => {
                self.atr = None;
                self.power_off_backend(events);
            }
            Backend::Fresh(_) | Backend::Unpowered => {}
        }
    }

    /// The answer vpcd receives when the card's cannot be sent; the observer records
    /// it, as it is what crossed the virtual reader.
    fn substitute(
        &mut self,
        command: &[u8],
        reason: Substitution,
        events: &mut Vec<Event>,
    ) -> Vec<u8> {
        if let Some(observer) = self.observer.as_mut() {
            observer.exchange(command, &SUBSTITUTE_RESPONSE, std::time::Duration::ZERO);
        }
        events.push(Event::Substituted {
            command: command.to_vec(),
            reason,
        });
        SUBSTITUTE_RESPONSE.to_vec()
    }

    /// Powers (`Cold`) or warm-resets the backend card and keeps its ATR.
    fn reset_backend(&mut self, kind: ResetKind, events: &mut Vec<Event>) -> Result<(), VpcdError> {
        let result = match kind {
            ResetKind::Cold => self.reader.power_on(),
            ResetKind::Warm => self.reader.reset(ResetKind::Warm),
        };
        let atr = match result {
            Ok(atr) => atr,
            Err(error) => {
                self.backend = Backend::Lost;
                return Err(VpcdError::PowerUp {
                    reader: self.reader.name().to_owned(),
                    action: match kind {
                        ResetKind::Cold => "power",
                        ResetKind::Warm => "reset",
                    },
                    source: Box::new(error),
                });
            }
        };
        if atr.is_empty() || atr.len() > MAX_ATR_LEN {
            self.backend = Backend::Lost;
            return Err(VpcdError::AtrLength {
                reader: self.reader.name().to_owned(),
                atr: if atr.is_empty() {
                    "(none)".to_owned()
                } else {
                    hex::encode_upper(&atr)
                },
                len: atr.len(),
            });
        }
        if let Some(observer) = self.observer.as_mut() {
            observer.answer_to_reset(&atr);
        }
        events.push(Event::CardReset {
            kind,
            atr: atr.clone(),
        });
        self.atr = Some(atr);
        self.backend = Backend::Fresh(kind);
        Ok(())
    }

    fn power_off_backend(&mut self, events: &mut Vec<Event>) {
        self.backend = Backend::Unpowered;
        match self.reader.power_off() {
            Ok(()) => events.push(Event::CardPoweredOff),
            Err(error) => events.push(Event::PowerOffFailed(Box::new(error))),
        }
    }
}

/// Whether a backend error is the card refusing this one command (the dialogue can go
/// on) rather than the card being gone. Unknown errors count as a lost card: closing
/// the connection is what a PC/SC application understands as "card removed".
fn is_refusal(error: &ReaderError) -> bool {
    matches!(
        error,
        ReaderError::NotPowered { .. }
            | ReaderError::ReplayMismatch { .. }
            | ReaderError::ReplayUnexpected { .. }
            | ReaderError::ReplayEnded { .. }
    )
}
