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
            // Between any two blocks, even mid-exchange: a terminal that gave up on a
            // chain or a waiting time extension must still be able to reset the card.
            Phase::Running(Engine::T1 { engine, .. }) => engine.is_between_blocks(),
        }
    }

    /// Looks for the reset request in the held characters; passes on what is not one.
    /// `gave_up`: the rest of a possible request did not come in time.
    fn process_held(&mut self, now: Instant, gave_up: bool) {
        self.held_until = None;
        if matches!(self.phase, Phase::Mute) {
            self.process_held_while_mute(now, gave_up);
            return;
        }
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
            let mut values = std::mem::take(&mut self.held);
            convention::decode(self.convention, &mut values);
            self.feed(&values, now);
            return;
        }
    }

    /// A mute card listens for the reset request only, wherever it falls in what the
    /// UART delivered: everything before it is dropped, and a tail that may be its
    /// beginning is held for the rest.
    fn process_held_while_mute(&mut self, now: Instant, gave_up: bool) {
        let found = self
            .held
            .windows(INBAND_RESET.len())
            .position(|window| window == INBAND_RESET);
        let kept_from = match found {
            Some(start) => start,
            None if gave_up => self.held.len(),
            None => (1..=self.held.len().min(INBAND_RESET.len() - 1))
                .rev()
                .find(|&len| {
                    let tail = self.held.get(self.held.len() - len..);
                    tail == INBAND_RESET.get(..len)
                })
                .map_or(self.held.len(), |len| self.held.len() - len),
        };
        if kept_from > 0 {
            self.held.drain(..kept_from);
            self.events.push_back(CardLineEvent::Discarded {
                // Unframed bytes: a PIN could be anywhere in them.
                bytes: format!("{kept_from} byte{}", if kept_from == 1 { "" } else { "s" }),
                why: "the card is mute until a reset",
            });
        }
        if found.is_some() {
            self.held.drain(..INBAND_RESET.len());
            self.reset(now);
            if !self.held.is_empty() {
                self.process_held(now, gave_up);
            }
        } else if !self.held.is_empty() {
            self.held_until = Some(now + RESET_HOLD);
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

#[cfg(test)]
mod tests {
    //! The card side as a terminal sees it through its UART: hex written, hex read
    //! back, and the events the card side logs. Time is a value — one `Instant` taken
    //! as the base and offsets from it — so no test sleeps.
    //!
    //! The card behind is a `sim:` card; every answer on the line is checked against a
    //! second, identical `sim:` card reached straight through its reader.

    use proptest::prelude::*;

    use super::*;
    use crate::iso7816_3::t0::DEFAULT_CARD_IDLE_TIMEOUT;
    use crate::reader::sim::SimReader;
    use crate::reader::uri::ReaderUri;
    use card_applet_sim::card::{SimCard, SimOptions};
    use card_applet_sim::profile::Profile;

    /// The in-band reset request as the terminal writes it.
    const RESET: &str = "FF F0 52 53 54";
    /// SELECT of the Payment System Environment `1PAY.SYS.DDF01` (EMV Book 1 §12.2.2),
    /// a case 4 command (Le = 00).
    const SELECT_PSE: &str = "00 A4 04 00 0E 31 50 41 59 2E 53 59 53 2E 44 44 46 30 31 00";
    /// The same SELECT as T=0 carries it (§12.2.5): case 3, Le does not cross.
    const SELECT_PSE_T0: &str = "00 A4 04 00 0E 31 50 41 59 2E 53 59 53 2E 44 44 46 30 31";
    /// Its T=0 header.
    const SELECT_PSE_HEADER: &str = "00 A4 04 00 0E";
    /// Its data: the PSE's name.
    const PSE_NAME: &str = "31 50 41 59 2E 53 59 53 2E 44 44 46 30 31";
    /// GET CHALLENGE for 8 bytes (ISO 7816-4 §7.5.3), case 2.
    const GET_CHALLENGE: &str = "00 84 00 00 08";
    /// Why the mute card drops characters, as the event says it.
    const MUTE: &str = "the card is mute until a reset";
    /// Why a T=0 command cut short is dropped, as the event says it.
    const CUT_SHORT: &str = "a command cut short by silence";

    /// Hex with spaces (or `|` between what goes in separate reads) to bytes.
    fn bytes(hex: &str) -> Vec<u8> {
        hex::decode(hex.replace([' ', '|'], "")).expect("test hex")
    }

    /// Expected line contents: hex, upper case, no spaces.
    fn line(hex: &str) -> String {
        hex.replace(' ', "").to_uppercase()
    }

    fn upper(bytes: &[u8]) -> String {
        hex::encode_upper(bytes)
    }

    /// The `sim:` reader a URI names.
    fn sim(uri: &str) -> SimReader {
        match ReaderUri::parse(uri) {
            Ok(ReaderUri::Sim(sim)) => SimReader::open(&sim).expect("the sim card opens"),
            other => panic!("{uri} is no sim: URI: {other:?}"),
        }
    }

    /// What the card behind answers: its ATR, and its response to each command in turn,
    /// straight through a second, identical reader.
    fn reference(uri: &str, commands: &[&str]) -> (Vec<u8>, Vec<Vec<u8>>) {
        let mut reader = sim(uri);
        let atr = reader.reset(ResetKind::Cold).expect("reset");
        let responses = commands
            .iter()
            .map(|command| reader.transmit_raw(&bytes(command)).expect("transmit"))
            .collect();
        (atr, responses)
    }

    /// A T=1 block in hex (§11.3): NAD, PCB, LEN, INF, then the LRC, the exclusive-or
    /// of every byte before it (§11.4.4) — computed here, independently of the engine.
    fn block(nad: u8, pcb: u8, inf: &[u8]) -> String {
        let len = u8::try_from(inf.len()).expect("an INF of at most 254 bytes");
        let mut bytes = vec![nad, pcb, len];
        bytes.extend_from_slice(inf);
        let lrc = bytes.iter().fold(0, |acc, byte| acc ^ byte);
        bytes.push(lrc);
        upper(&bytes)
    }

    /// One event as a line of text, so that tests read as the log would.
    fn describe(event: &CardLineEvent) -> String {
        match event {
            CardLineEvent::Reset { atr } => format!("reset, ATR {}", upper(atr)),
            CardLineEvent::ProtocolSelected { protocol, by_pps } => format!(
                "T={} {}",
                protocol.t(),
                if *by_pps { "by PPS" } else { "by default" }
            ),
            CardLineEvent::PpsRefused { request } => format!("PPS {request} refused"),
            CardLineEvent::Exchange {
                command, response, ..
            } => format!("{} -> {}", upper(command), upper(response)),
            CardLineEvent::Discarded { bytes, why } => format!("discarded {bytes}: {why}"),
            CardLineEvent::Mute { why } => format!("mute: {why}"),
        }
    }

    /// A terminal on the other end of the line, with its own clock.
    struct Bench {
        card: CardLine<SimReader>,
        now: Instant,
    }

    impl Bench {
        /// The card a `sim:` URI names, behaving on the line as its profile says, at
        /// 9,600 baud; not reset yet.
        fn new(uri: &str) -> Bench {
            let reader = sim(uri);
            let behaviour = reader.line_behaviour();
            Bench::with(reader, behaviour)
        }

        fn with(reader: SimReader, behaviour: LineBehaviour) -> Bench {
            let options = CardLineOptions {
                behaviour,
                timing: LineTiming::from_baud(9_600, 1),
            };
            Bench {
                card: CardLine::new(reader, options),
                // The one clock reading: the base every time of the test is offset from.
                now: Instant::now(),
            }
        }

        /// [`Bench::new`], reset, its ATR and events taken.
        fn after_reset(uri: &str) -> Bench {
            let mut bench = Bench::new(uri);
            assert!(!bench.send(RESET).is_empty(), "{uri} answers the reset");
            bench.events();
            bench
        }

        /// The terminal writes `hex` in one go; what the card writes back (hex).
        fn send(&mut self, hex: &str) -> String {
            self.card.handle_input(&bytes(hex), self.now);
            self.written()
        }

        /// `elapsed` passes without input; what the card writes meanwhile (hex).
        fn wait(&mut self, elapsed: Duration) -> String {
            self.now += elapsed;
            self.card.handle_timeout(self.now);
            self.written()
        }

        fn written(&mut self) -> String {
            let mut raw = Vec::new();
            while let Some(chunk) = self.card.poll_transmit() {
                raw.extend(chunk);
            }
            upper(&raw)
        }

        /// How long from now until the card wants [`CardLine::handle_timeout`].
        fn deadline(&self) -> Option<Duration> {
            self.card
                .poll_timeout()
                .map(|at| at.saturating_duration_since(self.now))
        }

        fn events(&mut self) -> Vec<String> {
            std::iter::from_fn(|| self.card.poll_event())
                .map(|event| describe(&event))
                .collect()
        }
    }

    // ---- Before any reset: mute ----

    /// §6.2, §8.1: a card speaks only after a reset. What reaches it before is
    /// dropped, logged by count only: unframed, a PIN could be anywhere in it.
    #[test]
    fn before_any_reset_the_card_is_mute_and_logs_only_a_count() {
        // A trailing `FF` may begin a reset request: it is held RESET_HOLD for the
        // rest, then dropped on its own.
        let rows: &[(&str, &str, &[&str])] = &[
            ("a T=0 header", "00 A4 04 00 0E", &["5 bytes"]),
            (
                "a VERIFY with its plaintext PIN block",
                "00 20 00 80 08 24 12 34 FF FF FF FF FF",
                &["12 bytes", "1 byte"],
            ),
            ("a T=1 I-block", "00 00 05 00 84 00 00 08 89", &["9 bytes"]),
            ("a PPS request", "FF 01 FE", &["3 bytes"]),
        ];
        for &(what, sent, counts) in rows {
            let mut bench = Bench::new("sim:cb?seed=1");
            assert_eq!(bench.send(sent), "", "{what}: nothing on the line");
            assert_eq!(bench.wait(RESET_HOLD), "", "{what}");
            let events = bench.events();
            let expected: Vec<String> = counts
                .iter()
                .map(|count| format!("discarded {count}: {MUTE}"))
                .collect();
            assert_eq!(events, expected, "{what}");
            assert!(
                !events[0].contains(&line(sent)),
                "{what}: the bytes are not logged"
            );
        }
    }

    /// A PIN never reaches the log, whatever the pace: byte by byte, each read is
    /// dropped and counted on its own.
    #[test]
    fn before_any_reset_a_pin_sent_byte_by_byte_is_counted_not_shown() {
        let mut bench = Bench::new("sim:cb?seed=1");
        for byte in bytes("24 12 34 FF") {
            assert_eq!(bench.send(&upper(&[byte])), "");
        }
        assert_eq!(bench.wait(RESET_HOLD), "");
        assert_eq!(bench.events(), vec![format!("discarded 1 byte: {MUTE}"); 4]);
    }

    // ---- The in-band reset and the ATR (§8) ----

    /// §8.1: every built-in card answers the reset request with its profile's ATR,
    /// byte for byte, in direct convention as all of them announce (TS = 3B).
    #[test]
    fn a_reset_request_gets_the_cards_atr() {
        assert_eq!(bytes(RESET), INBAND_RESET);
        for name in Profile::builtin_names() {
            let uri = format!("sim:{name}?seed=1");
            let (atr, _) = reference(&uri, &[]);
            assert_eq!(atr.first(), Some(&convention::TS_DIRECT), "{name}");
            let mut bench = Bench::new(&uri);
            assert_eq!(bench.send(RESET), upper(&atr), "{name}");
            assert_eq!(
                bench.events(),
                [format!("reset, ATR {}", upper(&atr))],
                "{name}"
            );
            assert_eq!(
                bench.deadline(),
                None,
                "{name}: the card waits, without deadline"
            );
        }
    }

    /// A reset request that arrives in several reads is one reset: its first part is
    /// held (for up to `RESET_HOLD`) until the rest comes.
    #[test]
    fn a_reset_request_split_across_reads_is_one_reset() {
        let (atr, _) = reference("sim:cb?seed=1", &[]);
        let rows: &[&str] = &[
            "FF | F0 52 53 54",
            "FF F0 | 52 53 54",
            "FF F0 52 | 53 54",
            "FF F0 52 53 | 54",
            "FF | F0 | 52 | 53 | 54",
        ];
        for &reads in rows {
            let mut bench = Bench::new("sim:cb?seed=1");
            let mut parts: Vec<&str> = reads.split('|').collect();
            let last = parts.pop().expect("two reads at least");
            for part in parts {
                assert_eq!(bench.send(part), "", "{reads}");
                assert_eq!(bench.deadline(), Some(RESET_HOLD), "{reads}");
                bench.wait(RESET_HOLD / 2);
            }
            assert_eq!(bench.send(last), upper(&atr), "{reads}");
            assert_eq!(
                bench.events(),
                [format!("reset, ATR {}", upper(&atr))],
                "{reads}"
            );
        }
    }

    /// The start of a reset request whose rest does not come within `RESET_HOLD` is
    /// ordinary data: to a mute card, characters it drops; the rest, when it comes
    /// late, is dropped too.
    #[test]
    fn a_reset_request_left_unfinished_is_dropped_after_the_hold() {
        let mut bench = Bench::new("sim:cb?seed=1");
        assert_eq!(bench.send("FF F0"), "");
        assert_eq!(bench.wait(RESET_HOLD - Duration::from_millis(1)), "");
        assert_eq!(bench.events(), Vec::<String>::new());
        assert_eq!(bench.wait(Duration::from_millis(1)), "");
        assert_eq!(bench.events(), [format!("discarded 2 bytes: {MUTE}")]);
        assert_eq!(bench.send("52 53 54"), "");
        assert_eq!(bench.events(), [format!("discarded 3 bytes: {MUTE}")]);
    }

    /// What follows the reset request in the same read is the first message after
    /// the ATR: a PPS (§9.1) or the default protocol's first command.
    #[test]
    fn characters_after_the_reset_request_in_the_same_read_are_the_next_message() {
        let (atr, _) = reference("sim:cb?seed=1", &[]);
        let atr = upper(&atr);
        let rows: &[(&str, String, &[&str])] = &[
            ("FF 01 FE", format!("{atr}FF01FE"), &["T=1 by PPS"]),
            (SELECT_PSE_HEADER, format!("{atr}A4"), &["T=0 by default"]),
        ];
        for (after, expected, events) in rows {
            let mut bench = Bench::new("sim:cb?seed=1");
            assert_eq!(
                bench.send(&format!("{RESET} {after}")),
                *expected,
                "{after}"
            );
            let mut expected_events = vec![format!("reset, ATR {atr}")];
            expected_events.extend(events.iter().map(|e| e.to_string()));
            assert_eq!(bench.events(), expected_events, "{after}");
        }
    }

    /// §10.3.3: in the middle of a T=0 command the card counts P3 data bytes, so a
    /// reset request there is data. Once the line has been quiet for the card's idle
    /// timeout the command is dropped and the next request is heard — which is why
    /// the `serial:` host sends it a second time after a pause.
    #[test]
    fn a_reset_request_inside_t0_command_data_is_data_until_the_line_is_quiet() {
        let mut bench = Bench::after_reset("sim:cb?seed=1");
        assert_eq!(bench.send(SELECT_PSE_HEADER), "A4");
        assert_eq!(bench.send(RESET), "", "5 of the 14 data bytes");
        assert_eq!(bench.events(), ["T=0 by default"]);
        assert_eq!(bench.wait(DEFAULT_CARD_IDLE_TIMEOUT), "");
        assert_eq!(
            bench.events(),
            [format!("discarded 00A404000EFFF0525354: {CUT_SHORT}")]
        );
        let (atr, _) = reference("sim:cb?seed=1", &[]);
        assert_eq!(bench.send(RESET), upper(&atr));
    }

    /// §6.2.3: a reset in the middle of a session starts it again — a new ATR, a PPS
    /// possible again, and nothing of the previous session kept: here the response
    /// the card side held for GET RESPONSE is gone (the card behind answers `6985`
    /// itself). The card behind gets `ResetKind::Cold` for every request, the one
    /// kind the request can carry; a `sim:` card makes no difference between them.
    #[test]
    fn a_second_reset_starts_the_session_again() {
        let (atr, responses) = reference("sim:cb?seed=1", &["00 C0 00 00 1E"]);
        let mut bench = Bench::after_reset("sim:cb?seed=1");
        assert_eq!(bench.send(SELECT_PSE_HEADER), "A4");
        assert_eq!(
            bench.send(PSE_NAME),
            "611E",
            "30 bytes held for GET RESPONSE"
        );
        bench.events();

        assert_eq!(bench.send(RESET), upper(&atr));
        assert_eq!(bench.events(), [format!("reset, ATR {}", upper(&atr))]);
        assert_eq!(bench.send("00 C0 00 00 1E"), "6985");
        assert_eq!(upper(&responses[0]), "6985", "what the card behind says");
        assert_eq!(
            bench.events(),
            ["T=0 by default", "00C000001E -> 6985"],
            "the GET RESPONSE went to the card behind"
        );

        assert_eq!(bench.send(RESET), upper(&atr));
        assert_eq!(
            bench.send("FF 01 FE"),
            "FF01FE",
            "§9.1: a PPS right after the ATR"
        );
    }

    /// What the card had to say in its previous life and was not yet written is
    /// dropped: after the reset the line carries the ATR alone.
    #[test]
    fn a_reset_drops_what_was_not_yet_written() {
        let (atr, _) = reference("sim:cb?seed=1", &[]);
        let mut bench = Bench::after_reset("sim:cb?seed=1");
        assert_eq!(bench.send(SELECT_PSE_HEADER), "A4");
        // The card answers `61 1E`, but the terminal resets it before that is written.
        bench.card.handle_input(&bytes(PSE_NAME), bench.now);
        assert_eq!(bench.send(RESET), upper(&atr));
    }

    /// A mute card hears a reset request whether or not the characters dropped
    /// before it came in the same read: how the OS splits the line into reads must
    /// not matter to a card.
    #[test]
    fn a_mute_card_hears_a_reset_request_after_other_characters_in_the_same_read() {
        let (atr, _) = reference("sim:cb?seed=1", &[]);
        let rows: &[&str] = &["00", "FF", "FF F0", "00 A4 04 00 0E"];
        let mut unheard = Vec::new();
        for &before in rows {
            let mut split = Bench::new("sim:cb?seed=1");
            assert_eq!(split.send(before), "", "{before}");
            split.wait(RESET_HOLD);
            assert_eq!(split.send(RESET), upper(&atr), "{before} | reset: heard");

            let mut joined = Bench::new("sim:cb?seed=1");
            if joined.send(&format!("{before} {RESET}")) != upper(&atr) {
                unheard.push((before, joined.events()));
            }
        }
        assert_eq!(unheard, [], "reset requests unheard in one read with these");
    }

    // ---- Inverse convention (§8.1) ----

    /// The `cb` card with TS = 3F: inverse convention. No built-in profile has one;
    /// TS is outside TCK (§8.2.5), so the rest of the ATR stays valid.
    fn inverse_cb() -> SimReader {
        let text = include_str!("../../card-applet-sim/profiles/cb.toml");
        let direct = "atr = \"3BE800008031FE458073C6010052434285\"";
        assert!(text.contains(direct), "the cb profile's ATR");
        let text = text.replace(direct, "atr = \"3FE800008031FE458073C6010052434285\"");
        let profile = Profile::from_toml_str(&text, "test:cb-inverse").expect("profile");
        let card = SimCard::new(profile, SimOptions::seeded(1)).expect("card");
        SimReader::with_card("sim:cb-inverse", Box::new(card))
    }

    /// §8.1: in inverse convention each character goes MSB first with low level for
    /// 1; a direct UART reads it bit-reversed and complemented, TS `3F` as `03`. The
    /// card writes every character so (ATR, PPS, procedure bytes, status) and reads
    /// the terminal's the same way; the events hold values. The reset request itself
    /// is not a character of the card's protocol: it is matched as written.
    #[test]
    fn an_inverse_convention_card_writes_and_reads_inverted_characters() {
        let reader = inverse_cb();
        let behaviour = reader.line_behaviour();
        let mut bench = Bench::with(reader, behaviour);
        let values = "3FE800008031FE458073C6010052434285";
        assert_eq!(
            bench.send(RESET),
            line("03 E8 FF FF FE 73 80 5D FE 31 9C 7F FF B5 3D BD 5E")
        );
        assert_eq!(bench.events(), [format!("reset, ATR {values}")]);
        // T=0: header 00 A4 04 00 0E, INS A4, data, 61 1E.
        assert_eq!(bench.send("FF DA DF FF 8F"), "DA");
        assert_eq!(
            bench.send("73 F5 7D 65 8B 35 65 35 8B DD DD 9D F3 73"),
            line("79 87")
        );
        let (_, responses) = reference("sim:cb?seed=1", &[SELECT_PSE_T0]);
        assert_eq!(
            bench.events(),
            [
                "T=0 by default".to_owned(),
                format!("{} -> {}", line(SELECT_PSE_T0), upper(&responses[0])),
            ]
        );
    }

    /// §8.1, §9: a PPS to an inverse-convention card is inverted too: `FF 01 FE` is
    /// `00 7F 80` on the line, and so is the card's echo.
    #[test]
    fn an_inverse_convention_card_answers_an_inverted_pps() {
        let reader = inverse_cb();
        let behaviour = reader.line_behaviour();
        let mut bench = Bench::with(reader, behaviour);
        assert!(!bench.send(RESET).is_empty());
        bench.events();
        assert_eq!(bench.send("00 7F 80"), "007F80");
        assert_eq!(bench.events(), ["T=1 by PPS"]);
    }

    // ---- PPS (§9) ----

    /// §9.2, §9.3 on `cb`, which offers T=0 then T=1 and has no TA1 (Fd, Dd): one
    /// request a row, the characters the card answers and what it logs. A request
    /// for a protocol the ATR does not offer, or with a PCK that does not make the
    /// exclusive-or of PPSS to PCK null, gets silence; the card then stays mute until
    /// the next reset.
    #[test]
    fn pps_requests_and_answers() {
        let refused = |request: &str| {
            vec![
                format!("PPS {request} refused"),
                "mute: PPS refused: waiting for a reset (ISO 7816-3 §9.3)".to_owned(),
            ]
        };
        let rows: Vec<(&str, &str, &str, Vec<String>)> = vec![
            ("T=0", "FF 00 FF", "FF00FF", vec!["T=0 by PPS".into()]),
            ("T=1", "FF 01 FE", "FF01FE", vec!["T=1 by PPS".into()]),
            (
                "T=0 with PPS1 = 11 (Fd, Dd): echoed",
                "FF 10 11 FE",
                "FF1011FE",
                vec!["T=0 by PPS".into()],
            ),
            (
                "T=1 with PPS1 = 96, faster than TA1 allows: PPS1 left out",
                "FF 11 96 78",
                "FF01FE",
                vec!["T=1 by PPS".into()],
            ),
            (
                "T=1 with PPS2 = 00: PPS2 left out",
                "FF 21 00 DE",
                "FF01FE",
                vec!["T=1 by PPS".into()],
            ),
            ("T=2, not offered", "FF 02 FD", "", refused("FF02FD")),
            ("T=1 with a bad PCK", "FF 01 00", "", refused("FF0100")),
        ];
        for (what, request, answer, events) in rows {
            let mut bench = Bench::after_reset("sim:cb?seed=1");
            assert_eq!(bench.send(request), answer, "{what}");
            assert_eq!(bench.events(), events, "{what}");
        }
    }

    /// §9.3: after a refused PPS the card is mute — a T=0 header gets nothing and is
    /// logged by count — until the terminal resets it. Here `t0-slow`, offering T=0
    /// only, is asked for T=1.
    #[test]
    fn after_a_refused_pps_the_card_is_mute_until_a_reset() {
        let (atr, _) = reference("sim:t0-slow?seed=1", &[]);
        let mut bench = Bench::after_reset("sim:t0-slow?seed=1");
        assert_eq!(bench.send("FF 01 FE"), "");
        assert_eq!(bench.events()[0], "PPS FF01FE refused");
        assert_eq!(bench.send(SELECT_PSE_HEADER), "");
        assert_eq!(bench.events(), [format!("discarded 5 bytes: {MUTE}")]);
        assert_eq!(bench.send(RESET), upper(&atr));
        assert_eq!(bench.send(SELECT_PSE_HEADER), "5B", "T=0 by default");
    }

    /// A PPS request in pieces is answered once whole (its length from PPS0, §9.2).
    #[test]
    fn a_pps_request_split_across_reads_is_answered_once_whole() {
        let mut bench = Bench::after_reset("sim:cb?seed=1");
        assert_eq!(bench.send("FF"), "", "PPSS (or a reset request: held)");
        assert_eq!(bench.send("01"), "", "PPS0: T=1, no PPS1..3");
        assert_eq!(bench.send("FE"), "FF01FE");
        assert_eq!(bench.events(), ["T=1 by PPS"]);
    }

    /// §8.2.3, §9.1: without a PPS the first protocol the ATR offers runs — T=0 on
    /// `cb` (TD1 = 80), T=1 on `visa` (TD1 = 81).
    #[test]
    fn without_a_pps_the_first_protocol_offered_runs() {
        let mut bench = Bench::after_reset("sim:cb?seed=1");
        assert_eq!(bench.send(SELECT_PSE_HEADER), "A4");
        assert_eq!(bench.events(), ["T=0 by default"]);

        let (_, responses) = reference("sim:visa?seed=1", &[SELECT_PSE]);
        let mut bench = Bench::after_reset("sim:visa?seed=1");
        assert_eq!(
            bench.send(&block(0x00, 0x00, &bytes(SELECT_PSE))),
            block(0x00, 0x00, &responses[0])
        );
        assert_eq!(bench.events()[0], "T=1 by default");
    }

    // ---- T=0 (§10, §12.2) ----

    /// §10.3.3, §12.2.5 on `cb`: SELECT PSE has data both ways. The header is
    /// acknowledged with INS, the data goes to the card behind as a case 3 command,
    /// its answer is held and announced with `61xx`; GET RESPONSE then gets INS, the
    /// data and `9000` — from what is held, so the card behind sees one command.
    #[test]
    fn t0_select_pse_then_get_response() {
        let (_, responses) = reference("sim:cb?seed=1", &[SELECT_PSE_T0]);
        let response = &responses[0];
        let (data, sw) = response.split_at(response.len() - 2);
        assert_eq!((data.len(), sw), (0x1E, &[0x90, 0x00][..]));

        let mut bench = Bench::after_reset("sim:cb?seed=1");
        let rows: &[(&str, String)] = &[
            (SELECT_PSE_HEADER, line("A4")),
            (PSE_NAME, line("61 1E")),
            ("00 C0 00 00 1E", format!("C0{}9000", upper(data))),
        ];
        for (sent, answer) in rows {
            assert_eq!(bench.send(sent), *answer, "{sent}");
        }
        assert_eq!(
            bench.events(),
            [
                "T=0 by default".to_owned(),
                format!("{} -> {}", line(SELECT_PSE_T0), upper(response)),
            ]
        );
    }

    /// §10.3.3 on `t0-slow`, whose profile asks 3 NULL bytes before each answer it
    /// computes and data acknowledged byte by byte: INS ⊕ FF (`5B` for A4, `3F` for
    /// C0) before each byte, both ways. The card behind answers `61 1C` itself, so
    /// GET RESPONSE is computed too and gets its NULL bytes.
    #[test]
    fn t0_slow_card_sends_null_bytes_and_acknowledges_byte_by_byte() {
        let get_response = "00 C0 00 00 1C";
        let (_, responses) = reference("sim:t0-slow?seed=1", &[SELECT_PSE_T0, get_response]);
        let mut bench = Bench::after_reset("sim:t0-slow?seed=1");
        let behaviour = bench.card.reader().line_behaviour();
        assert!(behaviour.t0_ack_each_byte);
        assert_eq!(behaviour.t0_null_bytes, 3);
        let nulls = "60".repeat(usize::from(behaviour.t0_null_bytes));

        assert_eq!(
            bench.send(SELECT_PSE_HEADER),
            "5B",
            "the first byte, please"
        );
        let data = bytes(PSE_NAME);
        let (last, first) = data.split_last().expect("data");
        for byte in first {
            assert_eq!(bench.send(&upper(&[*byte])), "5B", "the next byte, please");
        }
        assert_eq!(upper(&responses[0]), "611C");
        assert_eq!(bench.send(&upper(&[*last])), format!("{nulls}611C"));

        let response = &responses[1];
        let (data, sw) = response.split_at(response.len() - 2);
        let acknowledged: String = data.iter().map(|byte| format!("3F{byte:02X}")).collect();
        assert_eq!(
            bench.send(get_response),
            format!("{nulls}{acknowledged}{}", upper(sw))
        );
        assert_eq!(
            bench.events(),
            [
                "T=0 by default".to_owned(),
                format!("{} -> 611C", line(SELECT_PSE_T0)),
                format!("{} -> {}", line(get_response), upper(response)),
            ]
        );
    }

    /// §10.3.3: NULL bytes stand for work; GET RESPONSE served from the data the card
    /// side holds is no work, so it gets none (here `cb` told to send 2 NULLs).
    #[test]
    fn t0_null_bytes_only_before_an_answer_the_card_computes() {
        let reader = sim("sim:cb?seed=1");
        let behaviour = LineBehaviour {
            t0_null_bytes: 2,
            ..reader.line_behaviour()
        };
        let mut bench = Bench::with(reader, behaviour);
        bench.send(RESET);
        assert_eq!(bench.send(SELECT_PSE_HEADER), "A4");
        assert_eq!(bench.send(PSE_NAME), "6060611E");
        let (_, responses) = reference("sim:cb?seed=1", &[SELECT_PSE_T0]);
        let response = upper(&responses[0]);
        assert_eq!(bench.send("00 C0 00 00 1E"), format!("C0{response}"));
    }

    /// §10.3.3: the terminal must wait for the procedure byte before sending data. A
    /// terminal that sends header and data at once breaks T=0: the card goes mute.
    #[test]
    fn t0_data_before_the_procedure_byte_mutes_the_card() {
        let mut bench = Bench::after_reset("sim:cb?seed=1");
        assert_eq!(bench.send(&format!("{SELECT_PSE_HEADER} {PSE_NAME}")), "");
        assert_eq!(
            bench.events(),
            [
                "T=0 by default".to_owned(),
                "mute: protocol error from the terminal: 14 bytes received while \
                 working on a command header"
                    .to_owned(),
            ]
        );
        assert_eq!(bench.send(SELECT_PSE_HEADER), "");
    }

    /// The same mistake with a VERIFY puts its PIN block in the log line of the card
    /// going mute: every log line must mask it (`crate::apdu::loggable_hex`).
    #[test]
    fn t0_a_pin_sent_before_the_procedure_byte_is_not_logged() {
        let mut bench = Bench::after_reset("sim:cb?seed=1");
        assert_eq!(bench.send("00 20 00 80 08 24 12 34 FF FF FF FF FF"), "");
        let events = bench.events();
        assert!(events.iter().any(|e| e.starts_with("mute: ")), "{events:?}");
        assert!(
            events.iter().all(|e| !e.contains("241234FF")),
            "PIN block in {events:?}"
        );
    }

    /// What the terminal writes, read by read, each with what the card answers.
    type Reads<'a> = &'a [(&'a str, &'a str)];

    /// A T=0 command cut short — the terminal falls silent in a header or in the
    /// data — is dropped once the line has been quiet for the card's idle timeout
    /// (`DEFAULT_CARD_IDLE_TIMEOUT`, the 9,600 etu default work waiting time of §10.2
    /// at 9,600 baud) after its last character. The log shows the header, but a
    /// VERIFY's PIN bytes only by count. The card then takes a new header.
    #[test]
    fn t0_a_command_cut_short_is_dropped_after_the_idle_timeout() {
        let rows: &[(&str, Reads, &str)] = &[
            ("part of a header", &[("00 A4", "")], "00A4"),
            (
                "a header, no data",
                &[(SELECT_PSE_HEADER, "A4")],
                "00A404000E",
            ),
            (
                "a header, part of its data",
                &[(SELECT_PSE_HEADER, "A4"), ("31 50", "")],
                "00A404000E3150",
            ),
            (
                "VERIFY, 4 bytes of its PIN block",
                &[("00 20 00 80 08", "20"), ("24 12 34 FF", "")],
                "0020008008 <secret: 4 bytes>",
            ),
            (
                "VERIFY, 7 bytes of its PIN block",
                &[("00 20 00 80 08", "20"), ("24 12 34 FF FF FF FF", "")],
                "0020008008 <secret: 7 bytes>",
            ),
        ];
        for &(what, reads, discarded) in rows {
            let mut bench = Bench::after_reset("sim:cb?seed=1");
            for &(sent, answer) in reads {
                assert_eq!(bench.send(sent), line(answer), "{what}: {sent}");
            }
            assert_eq!(bench.events(), ["T=0 by default"], "{what}");
            assert_eq!(bench.deadline(), Some(DEFAULT_CARD_IDLE_TIMEOUT), "{what}");
            assert_eq!(
                bench.wait(DEFAULT_CARD_IDLE_TIMEOUT - Duration::from_nanos(1)),
                ""
            );
            assert_eq!(bench.events(), Vec::<String>::new(), "{what}: not yet");
            assert_eq!(bench.wait(Duration::from_nanos(1)), "", "{what}: silently");
            let events = bench.events();
            assert_eq!(
                events,
                [format!("discarded {discarded}: {CUT_SHORT}")],
                "{what}"
            );
            assert!(!events[0].contains("241234"), "{what}: no PIN digit");
            assert_eq!(bench.deadline(), None, "{what}");
            assert_eq!(bench.send(SELECT_PSE_HEADER), "A4", "{what}: ready again");
        }
    }

    // ---- T=1 (§11) ----

    /// `cb` after a PPS for T=1; its ATR gives IFSC 254, LRC; the card starts with
    /// IFSD 32 (§11.4.2).
    fn t1_cb() -> Bench {
        let mut bench = Bench::after_reset("sim:cb?seed=1");
        assert_eq!(bench.send("FF 01 FE"), "FF01FE");
        assert_eq!(bench.events(), ["T=1 by PPS"]);
        bench
    }

    /// §11.6.2 rule 2: the terminal's I-blocks and the card's each count N(S) from 0,
    /// alternating; each block ends with its LRC (§11.4.4). Both commands go whole to
    /// the card behind, Le included.
    #[test]
    fn t1_i_blocks_are_answered_with_i_blocks_numbered_in_turn() {
        let (_, responses) = reference("sim:cb?seed=1", &[SELECT_PSE, GET_CHALLENGE]);
        assert!(
            responses.iter().all(|r| r.len() <= 32),
            "one block each at IFSD 32"
        );
        let mut bench = t1_cb();
        let rows: &[(u8, &str)] = &[(0x00, SELECT_PSE), (0x40, GET_CHALLENGE)];
        for (&(pcb, command), response) in rows.iter().zip(&responses) {
            assert_eq!(
                bench.send(&block(0x00, pcb, &bytes(command))),
                block(0x00, pcb, response),
                "N(S) = {}",
                pcb >> 6
            );
            assert_eq!(
                bench.events(),
                [format!("{} -> {}", line(command), upper(response))]
            );
        }
    }

    /// §11.6.3 rule 7.1, §11.3.2.2: an invalid block gets an R-block asking for the
    /// block expected (N(R) = 0) with the error — `1` for an EDC error, `2` for any
    /// other — once the line has been quiet for CWT (here the card side's floor of
    /// 200 ms, above CWT = 43 etu from CWI = 5). The block sent again is answered.
    #[test]
    fn t1_an_invalid_block_gets_an_r_block_once_the_line_is_quiet() {
        let select = block(0x00, 0x00, &bytes(SELECT_PSE));
        let mut bad_lrc = bytes(&select);
        if let Some(lrc) = bad_lrc.last_mut() {
            *lrc ^= 0xFF;
        }
        let rows: &[(&str, String, &str)] = &[
            ("the LRC does not match", upper(&bad_lrc), "00 81 00 81"),
            (
                "a PCB with reserved bits set",
                line("00 01 00 01"),
                "00 82 00 82",
            ),
            (
                "another NAD than 00",
                block(0x12, 0x00, &bytes(SELECT_PSE)),
                "00 82 00 82",
            ),
            ("LEN = FF, reserved", line("00 00 FF"), "00 82 00 82"),
            (
                "cut short: LEN 14, 3 bytes of INF",
                line("00 00 14 00 A4 04"),
                "00 82 00 82",
            ),
        ];
        let (_, responses) = reference("sim:cb?seed=1", &[SELECT_PSE]);
        for (what, sent, r_block) in rows {
            let mut bench = t1_cb();
            assert_eq!(
                bench.send(sent),
                "",
                "{what}: not while the terminal may send"
            );
            assert_eq!(bench.deadline(), Some(WAITING_TIME_FLOOR), "{what}");
            assert_eq!(
                bench.wait(WAITING_TIME_FLOOR - Duration::from_millis(1)),
                ""
            );
            assert_eq!(
                bench.wait(Duration::from_millis(1)),
                line(r_block),
                "{what}"
            );
            assert_eq!(bench.events(), Vec::<String>::new(), "{what}: no command");
            assert_eq!(
                bench.send(&select),
                block(0x00, 0x00, &responses[0]),
                "{what}"
            );
        }
    }

    /// §11.4.2, §11.6.2 rule 4: S(IFS request) announces the terminal's IFSD; the
    /// card confirms it with S(IFS response) carrying the same byte, then sends no
    /// more than that per block — here 16, so the 32-byte answer to SELECT PSE comes
    /// in a chain of two I-blocks, the second after the terminal's R-block (rule 5).
    #[test]
    fn t1_an_ifs_request_is_confirmed_and_sizes_the_cards_blocks() {
        let (_, responses) = reference("sim:cb?seed=1", &[SELECT_PSE]);
        let response = &responses[0];
        assert_eq!(response.len(), 32);
        let (first, second) = response.split_at(16);
        let mut bench = t1_cb();
        assert_eq!(bench.send("00 C1 01 10 D0"), "00E10110F0");
        assert_eq!(
            bench.send(&block(0x00, 0x00, &bytes(SELECT_PSE))),
            block(0x00, 0x20, first)
        );
        assert_eq!(bench.send("00 90 00 90"), block(0x00, 0x40, second));
        assert_eq!(
            bench.events(),
            [format!("{} -> {}", line(SELECT_PSE), upper(response))],
            "one command"
        );
    }

    /// §11.6.2 rule 3 on `mastercard`, whose profile asks a waiting time extension of
    /// 2 before each answer: the card sends S(WTX request) with 2, and holds its
    /// answer until S(WTX response) grants it. The card never times the terminal
    /// out; an R-block meanwhile gets the S(WTX request) again (§11.6.3 rule 7).
    #[test]
    fn t1_a_waiting_time_extension_is_asked_before_the_answer() {
        let (_, responses) = reference("sim:mastercard?seed=1", &[SELECT_PSE]);
        let mut bench = Bench::after_reset("sim:mastercard?seed=1");
        assert_eq!(
            bench
                .card
                .reader()
                .line_behaviour()
                .t1_waiting_time_extension,
            2
        );
        assert_eq!(bench.send("FF 01 FE"), "FF01FE");
        bench.events();

        assert_eq!(
            bench.send(&block(0x00, 0x00, &bytes(SELECT_PSE))),
            "00C30102C0"
        );
        assert_eq!(
            bench.events(),
            [format!("{} -> {}", line(SELECT_PSE), upper(&responses[0]))],
            "the card behind has answered; the card side holds it"
        );
        assert_eq!(bench.deadline(), None);
        assert_eq!(bench.wait(Duration::from_secs(10)), "");
        assert_eq!(bench.send("00 80 00 80"), "00C30102C0", "R(0): again");
        assert_eq!(
            bench.send("00 E3 01 02 E0"),
            block(0x00, 0x00, &responses[0])
        );
        assert_eq!(bench.events(), Vec::<String>::new());
    }

    /// A terminal that gives up in the middle of a T=1 exchange — while the card
    /// waits for its S(WTX response), or in a chained command — and resets the card
    /// gets an ATR: after its request, then (as the `serial:` host does) a pause and
    /// the request again.
    #[test]
    fn t1_a_reset_request_is_heard_in_the_middle_of_an_exchange() {
        let rows: &[(&str, &str, &str, &str)] = &[
            (
                "waiting for S(WTX response)",
                "sim:mastercard?seed=1",
                "00 00 14 00 A4 04 00 0E 31 50 41 59 2E 53 59 53 2E 44 44 46 30 31 00 DD",
                "00C30102C0",
            ),
            (
                "in a chained command",
                "sim:cb?seed=1",
                "00 20 03 00 A4 04 83",
                "00900090",
            ),
        ];
        let mut unheard = Vec::new();
        for &(what, uri, sent, answer) in rows {
            let (atr, _) = reference(uri, &[]);
            let mut bench = Bench::after_reset(uri);
            assert_eq!(bench.send("FF 01 FE"), "FF01FE", "{what}");
            assert_eq!(bench.send(sent), line(answer), "{what}");
            bench.events();
            let mut written = bench.send(RESET);
            written += &bench.wait(Duration::from_secs(1));
            written += &bench.send(RESET);
            if !written.ends_with(&upper(&atr)) {
                unheard.push((what, written, bench.events()));
            }
        }
        assert_eq!(unheard, [], "the card wrote this instead of an ATR");
    }

    // ---- Properties ----

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Before a reset, any characters at any pace: nothing is written, and every
        /// character is accounted for in the log — by count only.
        #[test]
        fn before_a_reset_nothing_is_written_and_every_byte_is_counted(
            reads in prop::collection::vec(
                (prop::collection::vec(any::<u8>(), 0..24), 0u64..300),
                0..8,
            ),
        ) {
            let all: Vec<u8> = reads.iter().flat_map(|(read, _)| read.clone()).collect();
            prop_assume!(!all.windows(2).any(|w| w == [0xFF, 0xF0]));
            let mut bench = Bench::new("sim:cb?seed=1");
            for (read, pause) in &reads {
                prop_assert_eq!(bench.send(&upper(read)), "");
                prop_assert_eq!(bench.wait(Duration::from_millis(*pause)), "");
            }
            prop_assert_eq!(bench.wait(RESET_HOLD), "");
            let mut counted = 0;
            for event in bench.events() {
                let count = event
                    .strip_prefix("discarded ")
                    .and_then(|rest| rest.strip_suffix(&format!(": {MUTE}")))
                    .and_then(|rest| rest.strip_suffix(" bytes").or(rest.strip_suffix(" byte")))
                    .and_then(|count| count.parse::<usize>().ok());
                prop_assert!(count.is_some(), "{}", event);
                counted += count.unwrap_or_default();
            }
            prop_assert_eq!(counted, all.len());
        }

        /// After a reset, any characters at any pace, in either protocol: no panic,
        /// and after each `handle_timeout(now)` the card asks to be woken later than
        /// now, never in the past (a serving loop would spin).
        #[test]
        fn any_terminal_input_is_survived(
            profile in prop::sample::select(vec!["cb", "mastercard", "t0-slow"]),
            pps in any::<bool>(),
            reads in prop::collection::vec(
                (prop::collection::vec(any::<u8>(), 0..40), 0u64..1_500),
                0..10,
            ),
        ) {
            let mut bench = Bench::after_reset(&format!("sim:{profile}?seed=1"));
            if pps {
                bench.send("FF 01 FE");
            }
            for (read, pause) in &reads {
                bench.send(&upper(read));
                bench.wait(Duration::from_millis(*pause));
                prop_assert!(bench.card.poll_timeout().is_none_or(|at| at > bench.now));
                bench.events();
            }
        }
    }
}
