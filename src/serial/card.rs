//! The card side of a serial line as a sans-IO state machine: raw characters in, raw
//! characters and events out, any [`Reader`]'s card behind it (a software card, a
//! replayed recording, even a real card in a PC/SC reader).
//!
//! What it does, as a card on an I/O line would:
//!
//! 1. waits, mute, for a reset — the in-band request [`INBAND_RESET`] (see
//!    [`crate::serial`]); it then powers the card behind it and sends its ATR, encoded
//!    in the convention its TS announces (ISO 7816-3 §8.1);
//! 2. answers a PPS when the first message after the ATR starts with `FF` (§9): it
//!    confirms a protocol its ATR offers and stays silent otherwise;
//! 3. runs T=0 (§10, with the APDU mapping of §12.2: `61xx` and GET RESPONSE for
//!    commands with data both ways) or T=1 (§11), with the [`LineBehaviour`] asked:
//!    NULL bytes while it "computes", byte-by-byte acknowledgements, waiting time
//!    extensions.
//!
//! A card that fails (a replayed recording that does not match, a protocol violation
//! by the terminal) goes mute until the next reset, as a real card would; the terminal
//! sees a timeout, and the event log says why.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use card_applet_sim::profile::LineBehaviour;

use super::INBAND_RESET;
use crate::atr::{Atr, Protocol};
use crate::iso7816_3::convention::{self, Convention};
use crate::iso7816_3::pps::{self, PpsRequest};
use crate::iso7816_3::t0::{CardApduAdapter, T0Card, T0CardConfig, T0CardEvent};
use crate::iso7816_3::t1::{T1Card, T1CardEvent, T1Config};
use crate::iso7816_3::timing::LineTiming;
use crate::reader::{Reader, ReaderError, ResetKind};

/// How long the start of what may be an in-band reset request is held back waiting
/// for the rest of it before it is taken as ordinary data.
const RESET_HOLD: Duration = Duration::from_millis(100);
/// The least character and block waiting time on the card side (see `engine_for`).
const WAITING_TIME_FLOOR: Duration = Duration::from_millis(200);

/// How the card side behaves on the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CardLineOptions {
    /// NULL bytes, byte-by-byte acknowledgements, waiting time extensions.
    pub behaviour: LineBehaviour,
    /// The line's speed, for the waiting times derived from the ATR.
    pub timing: LineTiming,
}

/// What happened on the card side, for the log and the recording.
#[derive(Debug)]
#[non_exhaustive]
pub enum CardLineEvent {
    /// A reset request came; the card answered this ATR.
    Reset {
        /// The ATR, as values.
        atr: Vec<u8>,
    },
    /// The protocol in use from now on.
    ProtocolSelected {
        /// T=0 or T=1.
        protocol: Protocol,
        /// Whether the terminal asked for it with a PPS (else: the first one offered).
        by_pps: bool,
    },
    /// A PPS the card refused by staying silent (§9.3).
    PpsRefused {
        /// The request, in hex.
        request: String,
    },
    /// The card behind answered a command.
    Exchange {
        /// The command APDU.
        command: Vec<u8>,
        /// The response APDU.
        response: Vec<u8>,
        /// How long the card behind took.
        elapsed: Duration,
    },
    /// Characters dropped: received while the card was mute, or a message cut short.
    Discarded {
        /// The characters in hex, with a PIN's bytes masked as in every log; only
        /// their count when they cannot be read as a command (they may hold one).
        bytes: String,
        /// Why.
        why: &'static str,
    },
    /// The card went mute until the next reset.
    Mute {
        /// Why.
        why: String,
    },
}

/// The protocol engine the card runs.
enum Engine {
    T0 {
        engine: T0Card,
        adapter: CardApduAdapter,
    },
    T1 {
        engine: Box<T1Card>,
        /// A response held back until the terminal grants the waiting time extension
        /// asked for it.
        held_response: Option<Vec<u8>>,
    },
}

/// Where the card is in its life on the line.
enum Phase {
    /// Waiting for a reset (never reset, or mute after a failure).
    Mute,
    /// The ATR was sent; a PPS may come, else the first message of the default
    /// protocol.
    AfterAtr {
        atr: Atr,
        /// PPS characters received so far.
        pps: Vec<u8>,
    },
    /// Running a protocol.
    Running(Engine),
}

/// The engine for `protocol`, with the parameters `atr` announced.
fn engine_for(protocol: Protocol, atr: &Atr, options: &CardLineOptions) -> Engine {
    match protocol {
        Protocol::T1 => {
            let mut config = T1Config::from_atr(atr, &options.timing).for_card();
            // A block written at once may still reach us in pieces through a pty and
            // socat on a busy machine: the waiting times get the same floor as the
            // host's.
            config.character_waiting_time = config.character_waiting_time.max(WAITING_TIME_FLOOR);
            config.block_waiting_time = config.block_waiting_time.max(WAITING_TIME_FLOOR);
            Engine::T1 {
                engine: Box::new(T1Card::new(config)),
                held_response: None,
            }
        }
        _ => Engine::T0 {
            engine: T0Card::new(T0CardConfig {
                ack_each_byte: options.behaviour.t0_ack_each_byte,
            }),
            adapter: CardApduAdapter::new(),
        },
    }
}

/// The card side of a line; see the [module documentation](self).
pub struct CardLine<R: Reader> {
    reader: R,
    options: CardLineOptions,
    phase: Phase,
    convention: Convention,
    /// Raw characters that may be the start of an in-band reset request, and when to
    /// give up waiting for the rest of it.
    held: Vec<u8>,
    held_until: Option<Instant>,
    /// Raw characters to write.
    outgoing: Vec<u8>,
    events: VecDeque<CardLineEvent>,
}

impl<R: Reader> std::fmt::Debug for CardLine<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CardLine")
            .field("reader", &self.reader.name())
            .field("options", &self.options)
            .field("convention", &self.convention)
            .finish_non_exhaustive()
    }
}

impl<R: Reader> CardLine<R> {
    /// The card in `reader`, unpowered, waiting for a reset.
    pub fn new(reader: R, options: CardLineOptions) -> CardLine<R> {
        CardLine {
            reader,
            options,
            phase: Phase::Mute,
            convention: Convention::Direct,
            held: Vec::new(),
            held_until: None,
            outgoing: Vec::new(),
            events: VecDeque::new(),
        }
    }

    /// The reader whose card is played.
    pub fn reader(&self) -> &R {
        &self.reader
    }

    /// Gives the reader back.
    pub fn into_reader(self) -> R {
        self.reader
    }

    /// Characters received from the terminal, raw as the UART read them.
    pub fn handle_input(&mut self, raw: &[u8], now: Instant) {
        if self.at_message_start() || !self.held.is_empty() {
            self.held.extend_from_slice(raw);
            self.process_held(now, false);
        } else {
            let mut values = raw.to_vec();
            convention::decode(self.convention, &mut values);
            self.feed(&values, now);
        }
    }

    /// Time passed without input up to `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.held_until.is_some_and(|until| now >= until) {
            self.process_held(now, true);
        }
        let result = match &mut self.phase {
            Phase::Running(Engine::T0 { engine, .. }) => engine
                .poll_timeout()
                .filter(|deadline| now >= *deadline)
                .map(|_| engine.handle_timeout(now).map_err(|e| e.to_string())),
            Phase::Running(Engine::T1 { engine, .. }) => engine
                .poll_timeout()
                .filter(|deadline| now >= *deadline)
                .map(|_| engine.handle_timeout(now).map_err(|e| e.to_string())),
            _ => None,
        };
        if let Some(Err(why)) = result {
            self.mute(why);
        }
        self.pump(now);
    }

    /// Raw characters to write to the terminal, if any.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.collect_engine_output();
        if self.outgoing.is_empty() {
            None
        } else {
            Some(std::mem::take(&mut self.outgoing))
        }
    }

    /// When [`CardLine::handle_timeout`] must be called if nothing comes before.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let engine = match &self.phase {
            Phase::Running(Engine::T0 { engine, .. }) => engine.poll_timeout(),
            Phase::Running(Engine::T1 { engine, .. }) => engine.poll_timeout(),
            _ => None,
        };
        match (self.held_until, engine) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The next thing that happened.
    pub fn poll_event(&mut self) -> Option<CardLineEvent> {
        self.events.pop_front()
    }

    /// Whether the next character starts a message (where a reset request or a PPS
    /// may come).
    fn at_message_start(&self) -> bool {
        match &self.phase {
            Phase::Mute => true,
            Phase::AfterAtr { pps, .. } => pps.is_empty(),
            Phase::Running(Engine::T0 { engine, .. }) => engine.is_idle(),
            Phase::Running(Engine::T1 { engine, .. }) => engine.is_idle(),
        }
    }

    /// Looks for the reset request in the held characters; passes on what is not one.
    /// `gave_up`: the rest of a possible request did not come in time.
    fn process_held(&mut self, now: Instant, gave_up: bool) {
        self.held_until = None;
        while !self.held.is_empty() {
            let len = self.held.len().min(INBAND_RESET.len());
            let is_prefix = self.held.get(..len) == INBAND_RESET.get(..len);
            if is_prefix && self.held.len() >= INBAND_RESET.len() {
                self.held.drain(..INBAND_RESET.len());
                self.reset(now);
                continue;
            }
            if is_prefix && !gave_up {
                self.held_until = Some(now + RESET_HOLD);
                return;
            }
            let raw = std::mem::take(&mut self.held);
            if matches!(self.phase, Phase::Mute) {
                self.events.push_back(CardLineEvent::Discarded {
                    // Unframed bytes: a PIN could be anywhere in them.
                    bytes: format!("{} bytes", raw.len()),
                    why: "the card is mute until a reset",
                });
                return;
            }
            let mut values = raw;
            convention::decode(self.convention, &mut values);
            self.feed(&values, now);
            return;
        }
    }

    /// A reset: power the card behind, send its ATR.
    fn reset(&mut self, now: Instant) {
        let _ = now;
        let atr_bytes = match self.reader.reset(ResetKind::Cold) {
            Ok(atr) => atr,
            Err(error) => {
                self.mute(format!("the card behind failed to reset: {error}"));
                return;
            }
        };
        let atr = match Atr::parse(&atr_bytes) {
            Ok(atr) => atr,
            Err(error) => {
                self.mute(format!(
                    "the card behind answered a malformed ATR {}: {error}",
                    hex::encode_upper(&atr_bytes)
                ));
                return;
            }
        };
        self.convention = atr.convention();
        // Whatever was queued belongs to the card's previous life.
        self.outgoing.clear();
        let mut raw = atr_bytes.clone();
        convention::encode(self.convention, &mut raw);
        self.outgoing.extend_from_slice(&raw);
        self.events
            .push_back(CardLineEvent::Reset { atr: atr_bytes });
        self.phase = Phase::AfterAtr {
            atr,
            pps: Vec::new(),
        };
    }

    /// Values for the current phase.
    fn feed(&mut self, values: &[u8], now: Instant) {
        if values.is_empty() {
            return;
        }
        if let Phase::AfterAtr { atr, pps } = &mut self.phase {
            // §9.1: a PPS request starts with PPSS = FF right after the ATR.
            if pps.is_empty() && values.first() != Some(&0xFF) {
                let protocol = atr.protocols().first().copied().unwrap_or(Protocol::T0);
                let engine = engine_for(protocol, atr, &self.options);
                self.events.push_back(CardLineEvent::ProtocolSelected {
                    protocol,
                    by_pps: false,
                });
                self.phase = Phase::Running(engine);
            } else {
                pps.extend_from_slice(values);
                self.answer_pps(now);
                return;
            }
        }
        let result = match &mut self.phase {
            Phase::Running(Engine::T0 { engine, .. }) => {
                engine.handle_input(values, now).map_err(|e| e.to_string())
            }
            Phase::Running(Engine::T1 { engine, .. }) => {
                engine.handle_input(values, now).map_err(|e| e.to_string())
            }
            _ => Ok(()),
        };
        if let Err(why) = result {
            self.mute(format!("protocol error from the terminal: {why}"));
            return;
        }
        self.pump(now);
    }

    /// Answers a complete PPS request (or waits for the rest of it).
    fn answer_pps(&mut self, now: Instant) {
        let Phase::AfterAtr { atr, pps } = &mut self.phase else {
            return;
        };
        let Some(length) = pps::pps_length(pps) else {
            return;
        };
        if pps.len() < length {
            return;
        }
        let request_bytes: Vec<u8> = pps.drain(..length).collect();
        let rest = std::mem::take(pps);
        let answer = PpsRequest::decode(&request_bytes).ok().and_then(|request| {
            pps::answer_request(&request, atr).map(|answer| (request.protocol, answer))
        });
        match answer {
            Some((protocol, mut answer)) => {
                let protocol = Protocol::from_t(protocol);
                let engine = engine_for(protocol, atr, &self.options);
                convention::encode(self.convention, &mut answer);
                self.outgoing.extend_from_slice(&answer);
                self.events.push_back(CardLineEvent::ProtocolSelected {
                    protocol,
                    by_pps: true,
                });
                self.phase = Phase::Running(engine);
                self.feed(&rest, now);
            }
            None => {
                self.events.push_back(CardLineEvent::PpsRefused {
                    request: hex::encode_upper(&request_bytes),
                });
                self.mute("PPS refused: waiting for a reset (ISO 7816-3 §9.3)".to_owned());
            }
        }
    }

    /// Handles what the engine reports: commands go to the card behind.
    fn pump(&mut self, now: Instant) {
        loop {
            let progressed = match &mut self.phase {
                Phase::Running(Engine::T0 { .. }) => self.pump_t0(now),
                Phase::Running(Engine::T1 { .. }) => self.pump_t1(now),
                _ => false,
            };
            if !progressed {
                return;
            }
        }
    }

    fn pump_t0(&mut self, now: Instant) -> bool {
        let Phase::Running(Engine::T0 { engine, adapter }) = &mut self.phase else {
            return false;
        };
        let Some(event) = engine.poll_event() else {
            return false;
        };
        let (header, data) = match event {
            T0CardEvent::Header(header) if adapter.expects_data(&header) => {
                if let Err(error) = engine.receive_data(now) {
                    let why = error.to_string();
                    self.mute(why);
                    return false;
                }
                return true;
            }
            T0CardEvent::Header(header) => (header, Vec::new()),
            T0CardEvent::Command { header, data } => (header, data),
            T0CardEvent::Discarded { bytes } => {
                self.events.push_back(CardLineEvent::Discarded {
                    bytes: crate::apdu::loggable_hex(&bytes),
                    why: "a command cut short by silence",
                });
                return true;
            }
        };
        let reader = &mut self.reader;
        let events = &mut self.events;
        let mut failure = None;
        let mut computed = false;
        let (response_data, sw) = adapter.command(&header, &data, |apdu| {
            computed = true;
            let started = Instant::now();
            match reader.transmit_raw(apdu) {
                Ok(response) => {
                    events.push_back(CardLineEvent::Exchange {
                        command: apdu.to_vec(),
                        response: response.clone(),
                        elapsed: started.elapsed(),
                    });
                    Some(response)
                }
                Err(error) => {
                    failure = Some(error);
                    None
                }
            }
        });
        if let Some(error) = failure {
            self.card_failed(&error);
            return false;
        }
        // NULLs while the card "computes": not for data it already holds (GET RESPONSE).
        let null_bytes = if computed {
            self.options.behaviour.t0_null_bytes
        } else {
            0
        };
        for _ in 0..null_bytes {
            if let Err(error) = engine.send_null(now) {
                let why = error.to_string();
                self.mute(why);
                return false;
            }
        }
        if let Err(error) = engine.respond(&response_data, sw, now) {
            let why = error.to_string();
            self.mute(why);
            return false;
        }
        true
    }

    fn pump_t1(&mut self, now: Instant) -> bool {
        let Phase::Running(Engine::T1 {
            engine,
            held_response,
        }) = &mut self.phase
        else {
            return false;
        };
        if held_response.is_some() && engine.waiting_time_extension_granted() {
            let response = held_response.take().unwrap_or_default();
            if let Err(error) = engine.respond(&response, now) {
                let why = error.to_string();
                self.mute(why);
                return false;
            }
            return true;
        }
        let Some(event) = engine.poll_event() else {
            return false;
        };
        match event {
            T1CardEvent::Command(apdu) => {
                let started = Instant::now();
                let response = match self.reader.transmit_raw(&apdu) {
                    Ok(response) => response,
                    Err(error) => {
                        self.card_failed(&error);
                        return false;
                    }
                };
                self.events.push_back(CardLineEvent::Exchange {
                    command: apdu,
                    response: response.clone(),
                    elapsed: started.elapsed(),
                });
                let multiplier = self.options.behaviour.t1_waiting_time_extension;
                let result = if multiplier > 0 {
                    *held_response = Some(response);
                    engine.request_waiting_time_extension(multiplier, now)
                } else {
                    engine.respond(&response, now)
                };
                if let Err(error) = result {
                    let why = error.to_string();
                    self.mute(why);
                    return false;
                }
                true
            }
            T1CardEvent::IfsdChanged(_) | T1CardEvent::Resynchronised | T1CardEvent::Aborted => {
                true
            }
        }
    }

    fn card_failed(&mut self, error: &ReaderError) {
        self.mute(format!("the card behind failed: {error}"));
    }

    fn mute(&mut self, why: String) {
        self.collect_engine_output();
        self.phase = Phase::Mute;
        self.events.push_back(CardLineEvent::Mute { why });
    }

    /// Moves what the engine wants to send to the outgoing raw characters.
    fn collect_engine_output(&mut self) {
        let convention = self.convention;
        let outgoing = &mut self.outgoing;
        let mut push = |mut values: Vec<u8>| {
            convention::encode(convention, &mut values);
            outgoing.extend_from_slice(&values);
        };
        match &mut self.phase {
            Phase::Running(Engine::T0 { engine, .. }) => {
                while let Some(values) = engine.poll_transmit() {
                    push(values);
                }
            }
            Phase::Running(Engine::T1 { engine, .. }) => {
                while let Some(values) = engine.poll_transmit() {
                    push(values);
                }
            }
            _ => {}
        }
    }
}
