//! The TCP edge of `telepay vpcd serve`: connects to vpcd as its virtual card, moves
//! bytes between the socket and a [`Session`], and reconnects when the connection
//! drops (pcscd restarted, or the connection was closed on an error).
//!
//! Latency: vpcd (vsmartcard 3.3) writes a frame's 2-byte length and its body in two
//! `send`s without `TCP_NODELAY`. Unless the card acknowledges the first segment at
//! once, Nagle's algorithm holds the body back until Linux's delayed ACK fires, about
//! 40 ms per APDU (20 APDU/s measured). So `TCP_QUICKACK` is set again after every
//! read (Linux clears it as it sees fit; `tcp(7)`), and `TCP_NODELAY` once per
//! connection for our own replies, which go out in one write per batch.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use super::{Control, Event, Session, VpcdError};
use crate::reader::Reader;

/// How `serve` connects and when it stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeOptions {
    /// vpcd's host (pcscd's machine).
    pub host: String,
    /// vpcd's port: 35963 for "Virtual PCD 00 00", 35964 for "… 00 01".
    pub port: u16,
    /// Stop after this many connections have ended; `None` serves forever.
    pub max_connections: Option<u32>,
    /// Give up when no connection could be made for this long; `None` keeps trying.
    pub give_up_after: Option<Duration>,
    /// The first wait between failed connection attempts; it doubles up to
    /// `max_backoff`, and starts over after a successful connection.
    pub initial_backoff: Duration,
    /// The longest wait between attempts.
    pub max_backoff: Duration,
    /// Log every message and exchange, not only connections, warnings and errors.
    pub verbose: bool,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            host: "127.0.0.1".to_owned(),
            port: super::DEFAULT_PORT,
            max_connections: None,
            give_up_after: None,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            verbose: false,
        }
    }
}

/// What a serving run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ServeReport {
    /// Connections made (and ended).
    pub connections: u32,
    /// Connections closed on an error (malformed frame, card lost, socket error).
    pub failed_connections: u32,
    /// Command APDUs answered.
    pub commands: u64,
}

/// Why serving stopped before its `max_connections`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The host name does not resolve.
    #[error("vpcd address {host}:{port} does not resolve: {source}")]
    Resolve {
        /// The host as given.
        host: String,
        /// The port.
        port: u16,
        /// The resolver's error.
        #[source]
        source: std::io::Error,
    },
    /// The host name resolves to no address.
    #[error("vpcd address {host}:{port} resolves to no address")]
    NoAddress {
        /// The host as given.
        host: String,
        /// The port.
        port: u16,
    },
    /// No connection could be made for the whole `give_up_after`.
    #[error(
        "cannot reach vpcd at {address} for {}s: {source}; is pcscd running with \
         vsmartcard-vpcd? (scripts/pcscd-up starts it)",
        waited.as_secs()
    )]
    GaveUp {
        /// Where vpcd was expected.
        address: String,
        /// How long attempts went on.
        waited: Duration,
        /// The last attempt's error.
        #[source]
        source: std::io::Error,
    },
}

/// Serves `session`'s card to vpcd until `options.max_connections` connections have
/// ended, writing the log to `log` (one line per event; a failing log is ignored).
pub fn serve<R: Reader>(
    session: &mut Session<R>,
    options: &ServeOptions,
    log: &mut dyn Write,
) -> Result<ServeReport, ServeError> {
    let addresses = resolve(&options.host, options.port)?;
    let address_text = format!("{}:{}", options.host, options.port);
    let mut report = ServeReport::default();
    let mut backoff = options.initial_backoff;
    let mut unreachable_since: Option<Instant> = None;
    let mut waiting_logged = false;
    loop {
        if options
            .max_connections
            .is_some_and(|max| report.connections >= max)
        {
            return Ok(report);
        }
        let stream = match connect(&addresses) {
            Ok(stream) => stream,
            Err(error) => {
                let since = *unreachable_since.get_or_insert_with(Instant::now);
                if let Some(limit) = options.give_up_after
                    && since.elapsed() >= limit
                {
                    return Err(ServeError::GaveUp {
                        address: address_text,
                        waited: since.elapsed(),
                        source: error,
                    });
                }
                if !waiting_logged {
                    line(
                        log,
                        format_args!("waiting for vpcd at {address_text} ({error}); retrying"),
                    );
                    waiting_logged = true;
                }
                std::thread::sleep(backoff);
                backoff = backoff.saturating_mul(2).min(options.max_backoff);
                continue;
            }
        };
        unreachable_since = None;
        waiting_logged = false;
        backoff = options.initial_backoff;
        report.connections = report.connections.saturating_add(1);
        line(
            log,
            format_args!(
                "connected to vpcd at {address_text}: serving {}",
                session.card().reader().name()
            ),
        );
        let outcome = run_connection(stream, session, options.verbose, log, &mut report);
        match outcome {
            Ok(()) => line(log, format_args!("vpcd closed the connection")),
            Err(error) => {
                report.failed_connections = report.failed_connections.saturating_add(1);
                line(log, format_args!("error: {error}; closing the connection"));
            }
        }
        session.disconnected();
        drain_events(session, options.verbose, log, &mut report);
    }
}

/// Why one connection ended early.
#[derive(Debug, thiserror::Error)]
enum ConnectionError {
    #[error(transparent)]
    Protocol(#[from] VpcdError),
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("the connection closed in the middle of a frame ({0} bytes of it received)")]
    Truncated(usize),
}

fn run_connection<R: Reader>(
    mut stream: TcpStream,
    session: &mut Session<R>,
    verbose: bool,
    log: &mut dyn Write,
    report: &mut ServeReport,
) -> Result<(), ConnectionError> {
    stream.set_nodelay(true)?;
    quick_ack(&stream)?;
    // The largest frame (2 + 65,535 bytes) fits in one read.
    let mut buffer = vec![0u8; 2 + super::MAX_PAYLOAD];
    loop {
        let count = match stream.read(&mut buffer) {
            Ok(0) => {
                return match session.partial_frame() {
                    0 => Ok(()),
                    partial => Err(ConnectionError::Truncated(partial)),
                };
            }
            Ok(count) => count,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error.into()),
        };
        quick_ack(&stream)?;
        let received = buffer.get(..count).unwrap_or_default();
        let result = session.receive(received);
        // Replies queued before an error still go out: vpcd may be waiting for one.
        let outgoing = session.take_outgoing();
        let written = if outgoing.is_empty() {
            Ok(())
        } else {
            stream.write_all(&outgoing)
        };
        drain_events(session, verbose, log, report);
        result?;
        written?;
    }
}

fn drain_events<R: Reader>(
    session: &mut Session<R>,
    verbose: bool,
    log: &mut dyn Write,
    report: &mut ServeReport,
) {
    while let Some(event) = session.next_event() {
        let warning = matches!(event, Event::Substituted { .. } | Event::PowerOffFailed(_));
        if matches!(event, Event::Exchange { .. } | Event::Substituted { .. }) {
            report.commands = report.commands.saturating_add(1);
        }
        // vpcd's presence poll (an ATR request every 0.4 s) would drown everything else.
        let poll = matches!(event, Event::Control(Control::GetAtr));
        if warning {
            line(log, format_args!("warning: {event}"));
        } else if verbose && !poll {
            line(log, format_args!("{event}"));
        }
    }
}

fn line(log: &mut dyn Write, text: std::fmt::Arguments<'_>) {
    // The log is best effort: a closed stderr must not stop the card.
    let _ = writeln!(log, "telepay vpcd: {text}");
}

fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, ServeError> {
    let addresses: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|source| ServeError::Resolve {
            host: host.to_owned(),
            port,
            source,
        })?
        .collect();
    if addresses.is_empty() {
        return Err(ServeError::NoAddress {
            host: host.to_owned(),
            port,
        });
    }
    Ok(addresses)
}

/// The longest a single connection attempt may take (a remote vpcd that drops SYNs).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

fn connect(addresses: &[SocketAddr]) -> std::io::Result<TcpStream> {
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address to connect to");
    for address in addresses {
        match TcpStream::connect_timeout(address, CONNECT_TIMEOUT) {
            Ok(stream) => return Ok(stream),
            Err(error) => last = error,
        }
    }
    Err(last)
}

/// Asks the kernel to acknowledge received segments at once (see the module
/// documentation); Linux only, elsewhere there is no such option and nothing to do.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn quick_ack(stream: &TcpStream) -> std::io::Result<()> {
    socket2::SockRef::from(stream).set_tcp_quickack(true)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn quick_ack(_stream: &TcpStream) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reader::sim::SimReader;
    use crate::reader::{ReaderUri, open};
    use crate::vpcd::VirtualCard;
    use std::net::TcpListener;

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut bytes = u16::try_from(payload.len()).unwrap().to_be_bytes().to_vec();
        bytes.extend_from_slice(payload);
        bytes
    }

    fn read_frame(stream: &mut TcpStream) -> Vec<u8> {
        let mut length = [0u8; 2];
        stream.read_exact(&mut length).unwrap();
        let mut payload = vec![0u8; usize::from(u16::from_be_bytes(length))];
        stream.read_exact(&mut payload).unwrap();
        payload
    }

    fn sim_session() -> Session<Box<dyn Reader + Send>> {
        let reader = open(&ReaderUri::parse("sim:cb?seed=1").unwrap()).unwrap();
        Session::new(VirtualCard::new(reader))
    }

    /// A fake vpcd: the listening side, writing length and body in two writes as
    /// vsmartcard 3.3 does. The card reconnects after vpcd closes, and closes itself
    /// on a malformed frame; three connections are served, then `serve` returns.
    #[test]
    fn serves_reconnects_and_closes_on_a_malformed_frame() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let vpcd = std::thread::spawn(move || {
            let mut answers = Vec::new();
            // 1: power on, ATR, SELECT PSE; vpcd closes (pcscd restarted).
            let (mut stream, _) = listener.accept().unwrap();
            stream.write_all(&frame(&[0x01])).unwrap();
            stream.write_all(&[0x00, 0x01]).unwrap();
            stream.write_all(&[0x04]).unwrap();
            answers.push(read_frame(&mut stream));
            let select = hex::decode("00A404000E315041592E5359532E444446303100").unwrap();
            let framed = frame(&select);
            stream.write_all(&framed[..2]).unwrap();
            stream.write_all(&framed[2..]).unwrap();
            answers.push(read_frame(&mut stream));
            drop(stream);
            // 2: the card comes back; ATR asked while unpowered, then a bad control.
            let (mut stream, _) = listener.accept().unwrap();
            stream.write_all(&frame(&[0x04])).unwrap();
            answers.push(read_frame(&mut stream));
            stream.write_all(&frame(&[0x03])).unwrap();
            let mut rest = Vec::new();
            stream.read_to_end(&mut rest).unwrap();
            assert!(
                rest.is_empty(),
                "nothing after a malformed frame: {rest:02X?}"
            );
            // 3: an empty frame.
            let (mut stream, _) = listener.accept().unwrap();
            stream.write_all(&[0x00, 0x00]).unwrap();
            let mut rest = Vec::new();
            stream.read_to_end(&mut rest).unwrap();
            assert!(rest.is_empty());
            answers
        });
        let options = ServeOptions {
            port,
            max_connections: Some(3),
            give_up_after: Some(Duration::from_secs(10)),
            verbose: true,
            ..ServeOptions::default()
        };
        let mut session = sim_session();
        let mut log = Vec::new();
        let report = serve(&mut session, &options, &mut log).unwrap();
        let answers = vpcd.join().unwrap();
        let log = String::from_utf8(log).unwrap();

        let mut card = SimReader::open(match &ReaderUri::parse("sim:cb?seed=1").unwrap() {
            ReaderUri::Sim(sim) => sim,
            _ => unreachable!(),
        })
        .unwrap();
        let atr = card.power_on().unwrap();
        let select = card
            .transmit_raw(&hex::decode("00A404000E315041592E5359532E444446303100").unwrap())
            .unwrap();
        assert_eq!(answers, vec![atr.clone(), select, atr], "{log}");
        assert_eq!(
            report,
            ServeReport {
                connections: 3,
                failed_connections: 2,
                commands: 1
            },
            "{log}"
        );
        assert!(
            log.contains("unknown control byte 03") && log.contains("length 0"),
            "{log}"
        );
    }

    #[test]
    fn gives_up_when_nothing_listens() {
        // A port just freed: nothing listens there.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let options = ServeOptions {
            port,
            give_up_after: Some(Duration::from_millis(300)),
            initial_backoff: Duration::from_millis(20),
            ..ServeOptions::default()
        };
        let mut log = Vec::new();
        let error = serve(&mut sim_session(), &options, &mut log).unwrap_err();
        assert!(
            matches!(&error, ServeError::GaveUp { address, .. } if address == &format!("127.0.0.1:{port}")),
            "{error}"
        );
        let log = String::from_utf8(log).unwrap();
        assert_eq!(log.matches("waiting for vpcd").count(), 1, "{log}");
    }
}
