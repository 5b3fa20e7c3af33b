//! Serial lines: where the ISO 7816-3 engines of [`crate::iso7816_3`] meet a UART.
//!
//! - [`Line`]: a serial port as the engines need it — characters written and read with
//!   a deadline, the line's convention applied, and the reader's echo removed.
//! - [`card`]: the card side as a sans-IO state machine over any [`Reader`]'s card:
//!   ATR on reset, PPS, T=0 or T=1, what `telepay serial serve` runs.
//! - [`serve`]: the port loop of `telepay serial serve`.
//!
//! The host side (a terminal with a Phoenix-style reader) is the `serial:` reader
//! backend, [`crate::reader::serial`].
//!
//! # Resetting a card without modem lines
//!
//! A Phoenix reader resets the card with RTS (or DTR). A pty has no modem lines (and
//! socat does not carry BREAK), so telepay also has an in-band reset: the host writes
//! [`INBAND_RESET`] and the card side answers with its ATR. The sequence starts with
//! `FF`, which no T=0 command (CLA `FF` is reserved for PPS, ISO 7816-3 §9.2) and no
//! T=1 block (NAD `FF` is invalid, §11.3.2.1) may start with, followed by `F0`, which
//! no PPS may have as PPS0 (b8 is reserved and 0, §9.2), so it cannot be mistaken for
//! anything a card may receive.
//!
//! [`Reader`]: crate::reader::Reader

pub mod card;
pub mod serve;

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serialport::SerialPort;

use crate::iso7816_3::convention::{self, Convention};

/// The in-band reset request (see the [module documentation](self)).
pub const INBAND_RESET: [u8; 5] = [0xFF, 0xF0, b'R', b'S', b'T'];

/// The line speed of a Phoenix reader with a 3.58 MHz card clock and F = 372, D = 1:
/// the ISO 7816-3 default, 9,600 baud give or take the crystal.
pub const DEFAULT_BAUD: u32 = 9_600;

/// How a serial port is set up: speed and character frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineSettings {
    /// Bits per second.
    pub baud: u32,
    /// Parity bit (ISO 7816-3 §7.2: even).
    pub parity: crate::reader::uri::Parity,
    /// Stop bits: 2 gives the card's guard time (§7.2).
    pub stop_bits: u8,
    /// Whether every character written comes back on the receive line, as on a Phoenix
    /// reader whose TX and RX are both wired to the card's single I/O contact.
    pub echo: bool,
}

impl Default for LineSettings {
    /// 9,600 baud, 8 data bits, even parity, 2 stop bits, no echo.
    fn default() -> Self {
        LineSettings {
            baud: DEFAULT_BAUD,
            parity: crate::reader::uri::Parity::Even,
            stop_bits: 2,
            echo: false,
        }
    }
}

/// What went wrong on a serial line, naming the port and the step.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SerialError {
    /// Nothing came from the card after the reset.
    #[error(
        "serial port {port}: no ATR within {waited:?} of the reset ({reset}); is a card in \
         the reader, and is the reset line right (reset=rts|dtr|inband)?"
    )]
    NoAtr {
        /// The port's path.
        port: PathBuf,
        /// How the card was reset.
        reset: &'static str,
        /// How long the reader waited.
        waited: Duration,
    },
    /// The card's answer to reset is incomplete or malformed.
    #[error("serial port {port}: receiving the ATR: {source}")]
    Atr {
        /// The port's path.
        port: PathBuf,
        /// What was wrong.
        #[source]
        source: crate::iso7816_3::atr_receiver::AtrReceiveError,
    },
    /// The protocol asked for is not one the card offers.
    #[error(
        "serial port {port}: protocol T={asked} was asked but the card offers {offered} \
         (use protocol=auto)"
    )]
    ProtocolNotOffered {
        /// The port's path.
        port: PathBuf,
        /// The protocol asked (0 or 1).
        asked: u8,
        /// What the ATR offers, e.g. `T=0, T=1`.
        offered: String,
    },
    /// The protocol and parameters selection failed.
    #[error("serial port {port}: PPS {request}: {source}")]
    Pps {
        /// The port's path.
        port: PathBuf,
        /// The request sent, in hex.
        request: String,
        /// Why it failed.
        #[source]
        source: crate::iso7816_3::pps::PpsError,
    },
    /// The card did not answer the PPS request (a card that refuses a PPS may stay
    /// silent, ISO 7816-3 §9.3).
    #[error(
        "serial port {port}: the card did not answer PPS {request} within {waited:?} \
         (it refuses it); use protocol=auto"
    )]
    PpsUnanswered {
        /// The port's path.
        port: PathBuf,
        /// The request sent, in hex.
        request: String,
        /// How long the reader waited.
        waited: Duration,
    },
    /// T=0 failed during a command.
    #[error("serial port {port}: T=0, command {command}: {source}")]
    T0 {
        /// The port's path.
        port: PathBuf,
        /// The command TPDU's header, in hex.
        command: String,
        /// The protocol error.
        #[source]
        source: crate::iso7816_3::t0::T0Error,
    },
    /// T=1 failed during a command.
    #[error("serial port {port}: T=1, {step}: {source}")]
    T1 {
        /// The port's path.
        port: PathBuf,
        /// What was being done (the command's header, or IFSD negotiation).
        step: String,
        /// The protocol error.
        #[source]
        source: crate::iso7816_3::t1::T1Error,
    },
    /// The port could not be opened.
    #[error("serial port {port}: cannot open it: {source}")]
    Open {
        /// The port's path.
        port: PathBuf,
        /// The operating system's reason.
        #[source]
        source: serialport::Error,
    },
    /// The port refused a setting.
    #[error("serial port {port}: cannot set {setting}: {source}")]
    Configure {
        /// The port's path.
        port: PathBuf,
        /// Which setting.
        setting: &'static str,
        /// The operating system's reason.
        #[source]
        source: serialport::Error,
    },
    /// Reading or writing failed.
    #[error("serial port {port}: {step}: {source}")]
    Io {
        /// The port's path.
        port: PathBuf,
        /// What was being done.
        step: &'static str,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// The device went away (unplugged USB adapter, closed pty).
    #[error("serial port {port}: the device is gone ({step}): {source}")]
    Unplugged {
        /// The port's path.
        port: PathBuf,
        /// What was being done.
        step: &'static str,
        /// The operating system's report.
        #[source]
        source: std::io::Error,
    },
    /// The reader did not echo what was written, or echoed something else: a reader
    /// without echo used with `echo=on`, or a collision on the I/O line.
    #[error(
        "serial port {port}: wrote {written} but the echo was {echoed} (is the reader really \
         echoing? try echo=off)"
    )]
    Echo {
        /// The port's path.
        port: PathBuf,
        /// What was written, in hex.
        written: String,
        /// What came back, in hex.
        echoed: String,
    },
}

/// A serial port as the ISO 7816-3 engines use it; see the [module documentation](self).
pub struct Line {
    port: Box<dyn SerialPort>,
    path: PathBuf,
    settings: LineSettings,
    convention: Convention,
    /// Characters read while looking for an echo that belong to the other side.
    pending: VecDeque<u8>,
    /// Characters written and read since the line was opened, for wire-time figures.
    counters: LineCounters,
}

impl std::fmt::Debug for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Line")
            .field("path", &self.path)
            .field("settings", &self.settings)
            .field("convention", &self.convention)
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

/// Characters that crossed a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LineCounters {
    /// Characters written (without their echo).
    pub written: u64,
    /// Characters received from the other side (echo excluded).
    pub read: u64,
}

/// The longest a single blocking read waits before the deadline is checked again.
const READ_SLICE: Duration = Duration::from_millis(200);

impl Line {
    /// Opens `path` with `settings`: 8 data bits, no flow control, direct convention.
    ///
    /// # Errors
    /// [`SerialError::Open`] or [`SerialError::Configure`], naming the port.
    pub fn open(path: &Path, settings: LineSettings) -> Result<Line, SerialError> {
        use crate::reader::uri::Parity;
        let parity = match settings.parity {
            Parity::None => serialport::Parity::None,
            Parity::Even => serialport::Parity::Even,
            Parity::Odd => serialport::Parity::Odd,
        };
        let stop_bits = if settings.stop_bits == 1 {
            serialport::StopBits::One
        } else {
            serialport::StopBits::Two
        };
        let port = serialport::new(path.to_string_lossy(), settings.baud)
            .data_bits(serialport::DataBits::Eight)
            .parity(parity)
            .stop_bits(stop_bits)
            .flow_control(serialport::FlowControl::None)
            .timeout(READ_SLICE)
            .open()
            .map_err(|source| SerialError::Open {
                port: path.to_owned(),
                source,
            })?;
        let line = Line {
            port,
            path: path.to_owned(),
            settings,
            convention: Convention::Direct,
            pending: VecDeque::new(),
            counters: LineCounters::default(),
        };
        line.discard_input()?;
        Ok(line)
    }

    /// The port's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The settings the port was opened with.
    pub fn settings(&self) -> LineSettings {
        self.settings
    }

    /// Characters written and read so far.
    pub fn counters(&self) -> LineCounters {
        self.counters
    }

    /// From now on, characters are encoded and decoded in `convention` (the ATR's TS
    /// told which, ISO 7816-3 §8.1).
    pub fn set_convention(&mut self, convention: Convention) {
        self.convention = convention;
    }

    /// The convention characters are encoded in.
    pub fn convention(&self) -> Convention {
        self.convention
    }

    /// Drops whatever is waiting in the receive buffer (before a reset: old noise).
    ///
    /// # Errors
    /// [`SerialError::Io`] when the port refuses.
    pub fn discard_input(&self) -> Result<(), SerialError> {
        self.port
            .clear(serialport::ClearBuffer::Input)
            .map_err(|source| SerialError::Io {
                port: self.path.clone(),
                step: "discarding old input",
                source: source.into(),
            })
    }

    /// Drops the characters held back while looking for an echo, and the port's
    /// receive buffer.
    ///
    /// # Errors
    /// As [`Line::discard_input`].
    pub fn forget_input(&mut self) -> Result<(), SerialError> {
        self.pending.clear();
        self.discard_input()
    }

    /// Sets a modem control line (RTS or DTR), for a reset.
    ///
    /// # Errors
    /// [`SerialError::Configure`] when the port has no such line (a pty).
    pub fn set_modem_line(&mut self, line: ModemLine, level: bool) -> Result<(), SerialError> {
        let (setting, result) = match line {
            ModemLine::Rts => ("RTS", self.port.write_request_to_send(level)),
            ModemLine::Dtr => ("DTR", self.port.write_data_terminal_ready(level)),
        };
        result.map_err(|source| SerialError::Configure {
            port: self.path.clone(),
            setting,
            source,
        })
    }

    /// Writes characters (values; the convention is applied here) and, when the reader
    /// echoes, reads their echo back and checks it within `echo_deadline`.
    ///
    /// # Errors
    /// [`SerialError::Io`]/[`SerialError::Unplugged`] from the port, or
    /// [`SerialError::Echo`] when the echo is missing or different.
    pub fn write(&mut self, values: &[u8], echo_deadline: Instant) -> Result<(), SerialError> {
        let mut raw = values.to_vec();
        convention::encode(self.convention, &mut raw);
        self.write_raw(&raw, echo_deadline)?;
        self.counters.written = self.counters.written.saturating_add(values.len() as u64);
        Ok(())
    }

    /// Writes bytes as they are, without the convention (the in-band reset request).
    ///
    /// # Errors
    /// As [`Line::write`].
    pub fn write_raw(&mut self, raw: &[u8], echo_deadline: Instant) -> Result<(), SerialError> {
        let path = &self.path;
        self.port
            .write_all(raw)
            .and_then(|()| self.port.flush())
            .map_err(|source| io_error(path, "writing", source))?;
        if self.settings.echo {
            self.consume_echo(raw, echo_deadline)?;
        }
        Ok(())
    }

    /// Reads the echo of `raw`; characters after it are kept for the next read.
    fn consume_echo(&mut self, raw: &[u8], deadline: Instant) -> Result<(), SerialError> {
        let mut echoed = Vec::with_capacity(raw.len());
        while echoed.len() < raw.len() {
            if let Some(byte) = self.pending.pop_front() {
                echoed.push(byte);
                continue;
            }
            let chunk = self.read_port(deadline, "reading the echo")?;
            if chunk.is_empty() {
                break;
            }
            self.pending.extend(chunk);
        }
        if echoed != raw {
            return Err(SerialError::Echo {
                port: self.path.clone(),
                written: hex::encode_upper(raw),
                echoed: hex::encode_upper(&echoed),
            });
        }
        Ok(())
    }

    /// Reads what the other side sent, decoded from the line's convention: at least
    /// one character, or none when `deadline` passes first.
    ///
    /// # Errors
    /// [`SerialError::Io`] or [`SerialError::Unplugged`].
    pub fn read(&mut self, deadline: Instant, step: &'static str) -> Result<Vec<u8>, SerialError> {
        let mut values: Vec<u8> = if self.pending.is_empty() {
            self.read_port(deadline, step)?
        } else {
            self.pending.drain(..).collect()
        };
        convention::decode(self.convention, &mut values);
        self.counters.read = self.counters.read.saturating_add(values.len() as u64);
        Ok(values)
    }

    /// Reads raw bytes without decoding (the ATR's TS decides the convention).
    ///
    /// # Errors
    /// As [`Line::read`].
    pub fn read_raw(
        &mut self,
        deadline: Instant,
        step: &'static str,
    ) -> Result<Vec<u8>, SerialError> {
        let values: Vec<u8> = if self.pending.is_empty() {
            self.read_port(deadline, step)?
        } else {
            self.pending.drain(..).collect()
        };
        self.counters.read = self.counters.read.saturating_add(values.len() as u64);
        Ok(values)
    }

    /// One blocking read from the port, in slices of at most [`READ_SLICE`] so that the
    /// deadline is honoured; empty when the deadline passed.
    fn read_port(&mut self, deadline: Instant, step: &'static str) -> Result<Vec<u8>, SerialError> {
        let mut buffer = [0u8; 512];
        loop {
            let now = Instant::now();
            let Some(left) = deadline
                .checked_duration_since(now)
                .filter(|d| !d.is_zero())
            else {
                return Ok(Vec::new());
            };
            let slice = left.min(READ_SLICE).max(Duration::from_millis(1));
            self.port
                .set_timeout(slice)
                .map_err(|source| io_error(&self.path, step, source.into()))?;
            match self.port.read(&mut buffer) {
                Ok(0) => {
                    return Err(SerialError::Unplugged {
                        port: self.path.clone(),
                        step,
                        source: std::io::Error::new(
                            ErrorKind::UnexpectedEof,
                            "end of file on the port",
                        ),
                    });
                }
                Ok(count) => return Ok(buffer[..count].to_vec()),
                Err(error)
                    if matches!(error.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) =>
                {
                    continue;
                }
                Err(error) if error.kind() == ErrorKind::Interrupted => continue,
                Err(error) => return Err(io_error(&self.path, step, error)),
            }
        }
    }
}

/// A modem control line a reader may reset the card with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModemLine {
    /// Request To Send (Phoenix readers).
    Rts,
    /// Data Terminal Ready.
    Dtr,
}

/// An I/O error, as [`SerialError::Unplugged`] when it means the device is gone.
fn io_error(port: &Path, step: &'static str, source: std::io::Error) -> SerialError {
    // EIO is what a pty whose other end closed, or a USB adapter pulled out, gives;
    // ENXIO/ENODEV when the device node lost its device.
    let gone = matches!(
        source.kind(),
        ErrorKind::BrokenPipe | ErrorKind::NotConnected | ErrorKind::UnexpectedEof
    ) || matches!(source.raw_os_error(), Some(5 | 6 | 19));
    if gone {
        SerialError::Unplugged {
            port: port.to_owned(),
            step,
            source,
        }
    } else {
        SerialError::Io {
            port: port.to_owned(),
            step,
            source,
        }
    }
}
