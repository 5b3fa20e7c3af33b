//! A trace rendered for people: every exchange decoded (command names, TLV trees with
//! EMV names, status-word meanings), read as a stream so any size of file can be shown.
//!
//! Bytes the recording holds as wildcards or redactions are shown as such in the hex
//! lines (`????`, `<pin:8>`) and decoded as zeros.

use std::io::{BufRead, Write};

use super::format::{self, TraceError, format_pattern};
use super::{Event, Header, Secrets};
use crate::apdu::{Command, Response};
use crate::atr::Atr;
use crate::describe::{DescribeOptions, Describer};

/// Why a trace could not be shown.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShowError {
    /// The trace is unreadable or malformed.
    #[error(transparent)]
    Trace(#[from] TraceError),
    /// Writing the output failed.
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
}

/// Writes the header and every event of `trace`, decoded, to `out`.
pub fn show<B: BufRead>(
    mut trace: format::Reader<B>,
    out: &mut dyn Write,
    options: DescribeOptions,
) -> Result<(), ShowError> {
    write_header(trace.header(), out)?;
    let mut describer = Describer::new(options);
    while let Some(event) = trace.next() {
        let event = event?;
        let line = trace.line();
        match event {
            Event::Comment(text) => writeln!(out, "# {text}")?,
            Event::AnswerToReset(atr) => {
                let bytes = atr.to_bytes_filled(0);
                let protocols = Atr::parse(&bytes)
                    .map(|parsed| {
                        parsed
                            .protocols()
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_else(|error| format!("malformed: {error}"));
                writeln!(
                    out,
                    "[line {line}] ATR {} ({protocols})",
                    format_pattern(&atr)
                )?;
            }
            Event::Exchange(exchange) => {
                let command_bytes = exchange.command.to_bytes_filled(0);
                let response_bytes = exchange.response.to_bytes_filled(0);
                let timing = exchange
                    .elapsed
                    .map(|elapsed| format!(" ({elapsed:?})"))
                    .unwrap_or_default();
                let (Ok(command), Ok(response)) = (
                    Command::parse(&command_bytes),
                    Response::parse(&response_bytes),
                ) else {
                    writeln!(
                        out,
                        "[line {line}] > {} (not a command APDU)\n  < {}{timing}",
                        format_pattern(&exchange.command),
                        format_pattern(&exchange.response)
                    )?;
                    continue;
                };
                let mut described = describer.describe(&command, &response);
                if !exchange.command.is_exact() || !described.command_hex.contains('*') {
                    described.command_hex = format_pattern(&exchange.command);
                }
                described.response_hex = format_pattern(&exchange.response);
                write!(out, "[line {line}]{timing} {described}")?;
                if let Some(note) = &exchange.note {
                    writeln!(out, "  # {note}")?;
                }
            }
        }
    }
    Ok(())
}

fn write_header(header: &Header, out: &mut dyn Write) -> std::io::Result<()> {
    let field = |name: &str, value: &Option<String>| {
        value
            .as_ref()
            .map(|value| format!("{name:<10}{value}\n"))
            .unwrap_or_default()
    };
    write!(out, "{}", field("Reader:", &header.reader))?;
    write!(out, "{}", field("Protocol:", &header.protocol))?;
    write!(out, "{}", field("Profile:", &header.profile))?;
    write!(out, "{}", field("Date:", &header.date))?;
    writeln!(
        out,
        "{:<10}{}",
        "Secrets:",
        match header.secrets {
            Secrets::Masked => "masked",
            Secrets::Recorded => "RECORDED (this file holds PINs or other secrets)",
        }
    )?;
    for (key, value) in &header.extra {
        writeln!(out, "{:<10}{value}", format!("{key}:"))?;
    }
    writeln!(out)
}
