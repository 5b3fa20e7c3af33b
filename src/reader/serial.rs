//! The `serial:` backend: a Phoenix / Smartmouse style reader, whose UART is wired
//! straight to the card's I/O contact, so the host speaks ISO 7816-3 itself.
//!
//! Power-on resets the card (RTS or DTR pulse, or the in-band request of
//! [`crate::serial`] on a line without modem control, such as a pty), receives and
//! parses the ATR, selects the protocol (with a PPS when the URI names one,
//! ISO 7816-3 §9), then every command runs through the T=0 or T=1 engine of
//! [`crate::iso7816_3`]. `61xx` and `6Cxx` go up to the [`Transport`] unchanged, as they
//! do from any other reader.
//!
//! Defaults: 9,600 baud, even parity, 2 stop bits (the ISO 7816-3 character frame at
//! F = 372, D = 1 with a 3.58 MHz clock), no echo, RTS reset when the port has modem
//! lines and the in-band reset otherwise, the card's first protocol.
//!
//! [`Transport`]: super::Transport

use std::thread;
use std::time::{Duration, Instant};

use super::uri::{Parity, SerialProtocol, SerialReset, SerialUri};
use super::{Reader, ReaderError, ResetKind};
use crate::atr::{Atr, Protocol};
use crate::iso7816_3::atr_receiver::{AtrReceiver, AtrTiming};
use crate::iso7816_3::convention::Convention;
use crate::iso7816_3::pps::{self, PpsOutcome, PpsRequest};
use crate::iso7816_3::t0::{self, T0Host};
use crate::iso7816_3::t1::{T1Config, T1Event, T1Host};
use crate::iso7816_3::timing::LineTiming;
use crate::serial::{INBAND_RESET, Line, LineCounters, LineSettings, ModemLine, SerialError};

/// How long the reset line is held active.
const RESET_PULSE: Duration = Duration::from_millis(20);
/// The least time the reader waits for the ATR's first character. ISO 7816-3 §8.2
/// allows 40,000 clock cycles (about 11 ms at 3.58 MHz); USB serial adapters and a
/// card played by software across a pty need more, and waiting longer costs nothing
/// when the card is there.
const ATR_FIRST_CHARACTER_FLOOR: Duration = Duration::from_secs(1);
/// The least time between two characters of the ATR, and for a PPS answer, for the
/// same reason.
const CHARACTER_FLOOR: Duration = Duration::from_millis(500);
/// The least work / block waiting time: a software card behind a pty is scheduled by
/// an operating system, not clocked.
const WAITING_TIME_FLOOR: Duration = Duration::from_millis(500);
/// How long a card side of telepay takes to drop a half-received command before an
/// in-band reset is sent again (it waits for the line to go quiet).
const INBAND_RETRY_PAUSE: Duration = Duration::from_millis(300);
/// The IFSD the reader announces (ISO 7816-3 §11.4.2: up to 254).
const IFSD: u8 = 254;

/// A card on a serial line; see the [module documentation](self).
pub struct SerialReader {
    uri: SerialUri,
    name: String,
    settings: LineSettings,
    line: Option<Line>,
    session: Option<Session>,
}

impl std::fmt::Debug for SerialReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SerialReader")
            .field("name", &self.name)
            .field("settings", &self.settings)
            .field("powered", &self.session.is_some())
            .finish_non_exhaustive()
    }
}

/// The powered card: its ATR and the protocol engine running.
struct Session {
    protocol: Protocol,
    engine: Engine,
}

enum Engine {
    T0(T0Host),
    T1(Box<T1Host>),
}

impl SerialReader {
    /// A reader on the port a `serial:` URI names; the port is opened at power-on.
    pub fn open(uri: &SerialUri) -> Result<SerialReader, ReaderError> {
        let defaults = LineSettings::default();
        let settings = LineSettings {
            baud: uri.baud.unwrap_or(defaults.baud),
            parity: uri.parity.unwrap_or(Parity::Even),
            stop_bits: uri.stop_bits.unwrap_or(defaults.stop_bits),
            echo: uri.echo.unwrap_or(defaults.echo),
        };
        let name = super::ReaderUri::Serial(uri.clone()).to_string();
        Ok(SerialReader {
            uri: uri.clone(),
            name,
            settings,
            line: None,
            session: None,
        })
    }

    /// Characters written and read on the line since it was opened (zero before
    /// power-on): what the wire time of a dialogue is computed from.
    pub fn counters(&self) -> LineCounters {
        self.line.as_ref().map(Line::counters).unwrap_or_default()
    }

    /// The line settings in use.
    pub fn settings(&self) -> LineSettings {
        self.settings
    }

    fn line(&mut self) -> Result<&mut Line, ReaderError> {
        if self.line.is_none() {
            self.line = Some(Line::open(&self.uri.path, self.settings).map_err(boxed)?);
        }
        self.line.as_mut().ok_or_else(|| ReaderError::NotPowered {
            reader: self.name.clone(),
        })
    }

    /// Resets the card, receives its ATR and selects the protocol.
    fn start_session(&mut self) -> Result<Vec<u8>, ReaderError> {
        self.session = None;
        let reset = self.uri.reset;
        let protocol_asked = self.uri.protocol.unwrap_or(SerialProtocol::Auto);
        let baud = self.settings.baud;
        let line = self.line()?;
        let atr = reset_and_receive_atr(line, reset, baud).map_err(boxed)?;
        let timing = LineTiming::from_baud(baud, 1);
        let protocol = select_protocol(line, &atr, protocol_asked, &timing).map_err(boxed)?;
        let engine = match protocol {
            Protocol::T1 => {
                let mut config = T1Config::from_atr(&atr, &timing);
                config.block_waiting_time = config.block_waiting_time.max(WAITING_TIME_FLOOR);
                config.character_waiting_time =
                    config.character_waiting_time.max(WAITING_TIME_FLOOR);
                let mut host = Box::new(T1Host::new(config));
                negotiate_ifsd(line, &mut host).map_err(boxed)?;
                Engine::T1(host)
            }
            _ => {
                let wwt = timing
                    .t0_work_waiting_time(atr.waiting_time_integer())
                    .max(WAITING_TIME_FLOOR);
                Engine::T0(T0Host::new(wwt))
            }
        };
        self.session = Some(Session { protocol, engine });
        Ok(atr.as_bytes().to_vec())
    }
}

fn boxed(error: SerialError) -> ReaderError {
    ReaderError::Serial(Box::new(error))
}

/// Resets the card as `reset` says and receives its ATR; the line's convention is set
/// from TS.
fn reset_and_receive_atr(
    line: &mut Line,
    reset: Option<SerialReset>,
    baud: u32,
) -> Result<Atr, SerialError> {
    line.set_convention(Convention::Direct);
    let used = match reset {
        Some(SerialReset::Rts) => pulse(line, ModemLine::Rts).map(|()| "RTS")?,
        Some(SerialReset::Dtr) => pulse(line, ModemLine::Dtr).map(|()| "DTR")?,
        Some(SerialReset::Inband) => inband(line).map(|()| "in-band request")?,
        Some(SerialReset::None) => {
            line.forget_input()?;
            "none: waiting for the card"
        }
        // RTS where the port has modem lines, in-band where it has none (a pty).
        None => match pulse(line, ModemLine::Rts) {
            Ok(()) => "RTS",
            Err(SerialError::Configure { .. }) => inband(line).map(|()| "in-band request")?,
            Err(other) => return Err(other),
        },
    };
    match receive_atr(line, baud, used) {
        // A telepay card side that was in the middle of a command takes the request as
        // data; once the line has been quiet it drops that command and hears the next.
        Err(SerialError::NoAtr { .. }) if used == "in-band request" => {
            thread::sleep(INBAND_RETRY_PAUSE);
            inband(line)?;
            receive_atr(line, baud, used)
        }
        other => other,
    }
}

fn pulse(line: &mut Line, modem_line: ModemLine) -> Result<(), SerialError> {
    line.set_modem_line(modem_line, true)?;
    thread::sleep(RESET_PULSE);
    line.forget_input()?;
    line.set_modem_line(modem_line, false)
}

fn inband(line: &mut Line) -> Result<(), SerialError> {
    line.forget_input()?;
    line.write_raw(&INBAND_RESET, Instant::now() + CHARACTER_FLOOR)
}

fn receive_atr(line: &mut Line, baud: u32, reset: &'static str) -> Result<Atr, SerialError> {
    let started = Instant::now();
    let mut timing = AtrTiming::from_line(&LineTiming::from_baud(baud, 1));
    timing.first_character = timing.first_character.max(ATR_FIRST_CHARACTER_FLOOR);
    timing.between_characters = timing.between_characters.max(CHARACTER_FLOOR);
    timing.total = timing.total.max(ATR_FIRST_CHARACTER_FLOOR * 2);
    let mut receiver = AtrReceiver::new(timing, started);
    let port = line_path(line);
    let atr_error = |source| SerialError::Atr {
        port: port.clone(),
        source,
    };
    let mut received_any = false;
    loop {
        if let Some(received) = receiver.poll_atr() {
            // A reader that inverts in hardware hands over TS as 3F, already decoded:
            // the host inverts only when it read TS as 03.
            line.set_convention(if received.invert_on_host {
                Convention::Inverse
            } else {
                Convention::Direct
            });
            // Anything after the ATR is noise here: the card speaks only when asked.
            return Ok(received.atr);
        }
        let deadline = receiver
            .poll_timeout()
            .unwrap_or_else(|| Instant::now() + CHARACTER_FLOOR);
        let raw = line.read_raw(deadline, "receiving the ATR")?;
        let now = Instant::now();
        if raw.is_empty() {
            if let Err(error) = receiver.handle_timeout(now) {
                if !received_any {
                    return Err(SerialError::NoAtr {
                        port: line.path().to_owned(),
                        reset,
                        waited: now.saturating_duration_since(started),
                    });
                }
                return Err(atr_error(error));
            }
        } else {
            received_any = true;
            receiver.handle_input(&raw, now).map_err(atr_error)?;
        }
    }
}

fn line_path(line: &Line) -> std::path::PathBuf {
    line.path().to_owned()
}

/// The protocol to run: the specific mode's (TA2), else the first offered unless the
/// URI names one, which is then asked for with a PPS (ISO 7816-3 §9).
fn select_protocol(
    line: &mut Line,
    atr: &Atr,
    asked: SerialProtocol,
    timing: &LineTiming,
) -> Result<Protocol, SerialError> {
    let offered = atr.protocols();
    let asked = match asked {
        SerialProtocol::Auto => None,
        SerialProtocol::T0 => Some(Protocol::T0),
        SerialProtocol::T1 => Some(Protocol::T1),
    };
    let not_offered = |asked: Protocol| SerialError::ProtocolNotOffered {
        port: line_path(line),
        asked: asked.t(),
        offered: offered
            .iter()
            .map(|protocol| format!("T={}", protocol.t()))
            .collect::<Vec<_>>()
            .join(", "),
    };
    if let Some(mode) = atr.specific_mode() {
        // Specific mode: no PPS; the card runs this protocol (§8.3).
        return match asked {
            Some(asked) if asked != mode.protocol => Err(not_offered(asked)),
            _ => Ok(mode.protocol),
        };
    }
    let Some(asked) = asked else {
        return Ok(offered.first().copied().unwrap_or(Protocol::T0));
    };
    if !offered.contains(&asked) {
        return Err(not_offered(asked));
    }
    let request = PpsRequest {
        protocol: asked.t(),
        fi_di: None,
        pps2: None,
        pps3: None,
    };
    let bytes = request.encode();
    let request_hex = hex::encode_upper(&bytes);
    let started = Instant::now();
    let waited = timing
        .atr_between_characters()
        .max(ATR_FIRST_CHARACTER_FLOOR);
    line.write(&bytes, started + CHARACTER_FLOOR)?;
    let mut response = Vec::new();
    loop {
        if pps::pps_length(&response).is_some_and(|length| response.len() >= length) {
            break;
        }
        let chunk = line.read(started + waited, "receiving the PPS answer")?;
        if chunk.is_empty() {
            if response.is_empty() {
                return Err(SerialError::PpsUnanswered {
                    port: line_path(line),
                    request: request_hex,
                    waited,
                });
            }
            break;
        }
        response.extend(chunk);
    }
    match pps::check_response(&request, &response) {
        Ok(PpsOutcome::Accepted { protocol, .. }) => Ok(Protocol::from_t(protocol)),
        Err(source) => Err(SerialError::Pps {
            port: line_path(line),
            request: request_hex,
            source,
        }),
    }
}

/// Announces our IFSD with S(IFS request), as EMV terminals do (EMV Book 1 §9.2.4.2).
fn negotiate_ifsd(line: &mut Line, host: &mut T1Host) -> Result<(), SerialError> {
    let port = line_path(line);
    let t1_error = |source| SerialError::T1 {
        port: port.clone(),
        step: format!("announcing IFSD {IFSD}"),
        source,
    };
    host.request_ifsd(IFSD, Instant::now()).map_err(t1_error)?;
    run_engine(line, &mut HostT1(host), t1_error).map(|_| ())
}

/// The part of a host engine the driver loop needs.
trait HostEngine {
    type Error;
    fn handle_input(&mut self, bytes: &[u8], now: Instant) -> Result<(), Self::Error>;
    fn handle_timeout(&mut self, now: Instant) -> Result<(), Self::Error>;
    fn poll_transmit(&mut self) -> Option<Vec<u8>>;
    fn poll_timeout(&self) -> Option<Instant>;
    /// The outcome, once the exchange is over: the response for a command, an empty
    /// vector for an exchange without one (IFSD negotiation).
    fn poll_done(&mut self) -> Option<Vec<u8>>;
}

struct HostT0<'a>(&'a mut T0Host);
struct HostT1<'a>(&'a mut T1Host);

impl HostEngine for HostT0<'_> {
    type Error = t0::T0Error;
    fn handle_input(&mut self, bytes: &[u8], now: Instant) -> Result<(), Self::Error> {
        self.0.handle_input(bytes, now)
    }
    fn handle_timeout(&mut self, now: Instant) -> Result<(), Self::Error> {
        self.0.handle_timeout(now)
    }
    fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.0.poll_transmit()
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.0.poll_timeout()
    }
    fn poll_done(&mut self) -> Option<Vec<u8>> {
        self.0.poll_response()
    }
}

impl HostEngine for HostT1<'_> {
    type Error = crate::iso7816_3::t1::T1Error;
    fn handle_input(&mut self, bytes: &[u8], now: Instant) -> Result<(), Self::Error> {
        self.0.handle_input(bytes, now)
    }
    fn handle_timeout(&mut self, now: Instant) -> Result<(), Self::Error> {
        self.0.handle_timeout(now)
    }
    fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.0.poll_transmit()
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.0.poll_timeout()
    }
    fn poll_done(&mut self) -> Option<Vec<u8>> {
        while let Some(event) = self.0.poll_event() {
            if let T1Event::Response(response) = event {
                return Some(response);
            }
        }
        // IFSD negotiation and resynchronisation end with the engine idle, no response.
        self.0.is_idle().then(Vec::new)
    }
}

/// Runs an engine until its exchange is over: writes what it sends, reads until its
/// deadlines, feeds it what comes.
fn run_engine<E: HostEngine>(
    line: &mut Line,
    engine: &mut E,
    protocol_error: impl Fn(E::Error) -> SerialError,
) -> Result<Vec<u8>, SerialError> {
    loop {
        while let Some(bytes) = engine.poll_transmit() {
            line.write(&bytes, Instant::now() + CHARACTER_FLOOR)?;
        }
        if let Some(done) = engine.poll_done() {
            return Ok(done);
        }
        let deadline = engine
            .poll_timeout()
            .unwrap_or_else(|| Instant::now() + WAITING_TIME_FLOOR);
        let bytes = line.read(deadline, "waiting for the card")?;
        let now = Instant::now();
        if bytes.is_empty() {
            engine.handle_timeout(now).map_err(&protocol_error)?;
        } else {
            engine.handle_input(&bytes, now).map_err(&protocol_error)?;
        }
    }
}

impl Reader for SerialReader {
    fn name(&self) -> &str {
        &self.name
    }

    fn power_on(&mut self) -> Result<Vec<u8>, ReaderError> {
        self.start_session()
    }

    /// A serial reader cannot cut the card's power: cold and warm resets are the same
    /// reset pulse (or in-band request).
    fn reset(&mut self, _kind: ResetKind) -> Result<Vec<u8>, ReaderError> {
        self.start_session()
    }

    fn transmit_raw(&mut self, command: &[u8]) -> Result<Vec<u8>, ReaderError> {
        let (Some(line), Some(session)) = (self.line.as_mut(), self.session.as_mut()) else {
            return Err(ReaderError::NotPowered {
                reader: self.name.clone(),
            });
        };
        let header = hex::encode_upper(command.get(..4).unwrap_or(command));
        match &mut session.engine {
            Engine::T0(host) => {
                let tpdu = t0::command_tpdu(command).map_err(|source| {
                    boxed(SerialError::T0 {
                        port: line_path(line),
                        command: header.clone(),
                        source,
                    })
                })?;
                let port = line_path(line);
                let t0_error = |source| SerialError::T0 {
                    port: port.clone(),
                    command: header.clone(),
                    source,
                };
                host.start(&tpdu, Instant::now())
                    .map_err(|source| boxed(t0_error(source)))?;
                run_engine(line, &mut HostT0(host), t0_error).map_err(boxed)
            }
            Engine::T1(host) => {
                let port = line_path(line);
                let t1_error = |source| SerialError::T1 {
                    port: port.clone(),
                    step: format!("command {header}"),
                    source,
                };
                host.start(command, Instant::now())
                    .map_err(|source| boxed(t1_error(source)))?;
                run_engine(line, &mut HostT1(host), t1_error).map_err(boxed)
            }
        }
    }

    /// The line stays open; the card keeps its power (a Phoenix reader cannot remove
    /// it) but the session ends: the next command needs a power-on.
    fn power_off(&mut self) -> Result<(), ReaderError> {
        self.session = None;
        Ok(())
    }

    fn protocol(&self) -> Option<Protocol> {
        self.session.as_ref().map(|session| session.protocol)
    }
}
