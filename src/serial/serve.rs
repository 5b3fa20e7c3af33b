//! The port loop of `telepay serial serve`: moves raw characters between a serial port
//! and a [`CardLine`], echoes them when asked, logs what the card side does, and shows
//! every exchange to an [`ExchangeObserver`] (the trace recorder).

use std::io::Write;
use std::time::{Duration, Instant};

use super::card::{CardLine, CardLineEvent};
use super::{Line, SerialError};
use crate::reader::{ExchangeObserver, Reader};

/// How `serve` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ServeOptions {
    /// Write every received character back, as the shared I/O line of a Phoenix reader
    /// does, so that a host configured with `echo=on` can be tested on a pty.
    pub echo: bool,
    /// Stop after this many resets (sessions) have ended; `None` serves until the port
    /// goes away.
    pub max_resets: Option<u32>,
    /// Log every exchange, not only resets, protocol choices and failures.
    pub verbose: bool,
}

/// What a serving run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ServeReport {
    /// Resets answered with an ATR.
    pub resets: u32,
    /// Commands answered.
    pub commands: u64,
    /// Times the card went mute after a failure.
    pub failures: u32,
}

/// How long one wait for input lasts when the card has no deadline of its own.
const IDLE_POLL: Duration = Duration::from_millis(500);

/// Serves `card` on `line` until the port goes away (an error) or
/// `options.max_resets` sessions have ended; the log goes to `log`, one line per
/// event (a failing log is ignored).
///
/// # Errors
/// [`SerialError`] from the port, e.g. [`SerialError::Unplugged`] when the device
/// (or the pty's other end) is gone.
pub fn serve<R: Reader>(
    card: &mut CardLine<R>,
    line: &mut Line,
    options: ServeOptions,
    mut observer: Option<&mut (dyn ExchangeObserver + '_)>,
    log: &mut dyn Write,
) -> Result<ServeReport, SerialError> {
    let mut report = ServeReport::default();
    loop {
        while let Some(raw) = card.poll_transmit() {
            line.write_raw(&raw, Instant::now() + IDLE_POLL)?;
        }
        while let Some(event) = card.poll_event() {
            if let CardLineEvent::Reset { .. } = event
                && options.max_resets.is_some_and(|max| report.resets >= max)
            {
                // The terminal reset the card again: the last session asked for ended.
                return Ok(report);
            }
            record(&event, &mut report, observer.as_deref_mut());
            log_event(&event, options.verbose, log);
        }
        let deadline = card
            .poll_timeout()
            .unwrap_or_else(|| Instant::now() + IDLE_POLL);
        let raw = line.read_raw(deadline, "waiting for the terminal")?;
        let now = Instant::now();
        if raw.is_empty() {
            card.handle_timeout(now);
        } else {
            if options.echo {
                // The echo is the line itself: it comes back at once, before any answer.
                line.write_raw(&raw, now + IDLE_POLL)?;
            }
            card.handle_input(&raw, now);
        }
    }
}

fn record(
    event: &CardLineEvent,
    report: &mut ServeReport,
    observer: Option<&mut (dyn ExchangeObserver + '_)>,
) {
    match event {
        CardLineEvent::Reset { atr } => {
            report.resets = report.resets.saturating_add(1);
            if let Some(observer) = observer {
                observer.answer_to_reset(atr);
            }
        }
        CardLineEvent::Exchange {
            command,
            response,
            elapsed,
        } => {
            report.commands = report.commands.saturating_add(1);
            if let Some(observer) = observer {
                observer.exchange(command, response, *elapsed);
            }
        }
        CardLineEvent::Mute { .. } => report.failures = report.failures.saturating_add(1),
        _ => {}
    }
}

fn log_event(event: &CardLineEvent, verbose: bool, log: &mut dyn Write) {
    let _ = match event {
        CardLineEvent::Reset { atr } => {
            writeln!(log, "reset: ATR {}", hex::encode_upper(atr))
        }
        CardLineEvent::ProtocolSelected { protocol, by_pps } => writeln!(
            log,
            "protocol T={}{}",
            protocol.t(),
            if *by_pps {
                " (asked with a PPS)"
            } else {
                " (the first offered)"
            }
        ),
        CardLineEvent::PpsRefused { request } => {
            writeln!(log, "PPS {request} refused: the card stays silent")
        }
        CardLineEvent::Exchange {
            command, response, ..
        } if verbose => writeln!(
            log,
            "{} -> {}",
            crate::apdu::loggable_hex(command),
            hex::encode_upper(response)
        ),
        CardLineEvent::Exchange { .. } => Ok(()),
        CardLineEvent::Discarded { bytes, why } => {
            writeln!(log, "discarded {bytes}: {why}")
        }
        CardLineEvent::Mute { why } => writeln!(log, "card mute until the next reset: {why}"),
    };
}
