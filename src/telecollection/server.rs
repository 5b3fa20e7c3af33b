//! The telecollection centre on a socket, and the acquirer's client for it.
//!
//! Framing (`docs/telecollection.md`): the client sends a batch as an 8-byte big-endian
//! length followed by exactly that many bytes of batch file; the centre answers one line
//! of JSON (a [`CentreAnswer`]) ending in `\n`. A connection may carry several batches
//! one after the other; the client closes it when done.
//!
//! The server verifies each batch as it streams in (memory bounded by a line, whatever
//! the batch's size), and holds the centre's store only to record the acceptance, so
//! connections proceed in parallel, one thread each. Sockets are the edge: the server
//! reads the system clock for the time of acceptance, and nothing else here does.

use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::messages::Timestamp;
use crate::telecollection::centre::{Centre, CentreAnswer, CentreError};

/// The longest answer line a client reads.
pub const MAX_ANSWER_BYTES: u64 = 64 * 1024;

/// Where a centre listens: `tcp:127.0.0.1:7070` (or just `127.0.0.1:7070`), or
/// `unix:/run/telepay/centre.sock`. TCP addresses are literal IPs: nothing is resolved.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CentreAddress {
    /// A TCP socket.
    Tcp(SocketAddr),
    /// A Unix-domain socket's path.
    Unix(PathBuf),
}

impl std::fmt::Display for CentreAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CentreAddress::Tcp(address) => write!(f, "tcp:{address}"),
            CentreAddress::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// A centre address that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("centre address {found:?}: expected tcp:IP:PORT, IP:PORT or unix:PATH")]
pub struct AddressError {
    /// The text found.
    pub found: String,
}

impl FromStr for CentreAddress {
    type Err = AddressError;

    fn from_str(text: &str) -> Result<CentreAddress, AddressError> {
        let invalid = || AddressError {
            found: text.chars().take(64).collect(),
        };
        if let Some(path) = text.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(invalid());
            }
            return Ok(CentreAddress::Unix(PathBuf::from(path)));
        }
        let address = text.strip_prefix("tcp:").unwrap_or(text);
        address
            .parse::<SocketAddr>()
            .map(CentreAddress::Tcp)
            .map_err(|_| invalid())
    }
}

/// A connected socket of either kind.
enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    fn connect(address: &CentreAddress, timeout: Duration) -> io::Result<Stream> {
        let stream = match address {
            CentreAddress::Tcp(address) => {
                let stream = TcpStream::connect_timeout(address, timeout)?;
                stream.set_nodelay(true)?;
                Stream::Tcp(stream)
            }
            CentreAddress::Unix(path) => Stream::Unix(UnixStream::connect(path)?),
        };
        stream.set_timeouts(timeout)?;
        Ok(stream)
    }

    fn set_timeouts(&self, timeout: Duration) -> io::Result<()> {
        match self {
            Stream::Tcp(stream) => {
                stream.set_read_timeout(Some(timeout))?;
                stream.set_write_timeout(Some(timeout))
            }
            Stream::Unix(stream) => {
                stream.set_read_timeout(Some(timeout))?;
                stream.set_write_timeout(Some(timeout))
            }
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(stream) => stream.read(buffer),
            Stream::Unix(stream) => stream.read(buffer),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buffer: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(stream) => stream.write(buffer),
            Stream::Unix(stream) => stream.write(buffer),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Tcp(stream) => stream.flush(),
            Stream::Unix(stream) => stream.flush(),
        }
    }
}

// ---------------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------------

/// How the server behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerOptions {
    /// The largest batch accepted, in bytes (default 4 GiB, ten million records and
    /// more). A larger frame is refused unread and the connection closed.
    pub max_batch_bytes: u64,
    /// How long a connection may stay silent mid-frame, or between frames, before the
    /// server drops it (default 60 s).
    pub io_timeout: Duration,
    /// How often the accepting loop looks at the shutdown flag (default 50 ms).
    pub poll_interval: Duration,
    /// Whether to print one line per batch on standard error.
    pub log: bool,
}

impl Default for ServerOptions {
    fn default() -> ServerOptions {
        ServerOptions {
            max_batch_bytes: 4 << 30,
            io_timeout: Duration::from_secs(60),
            poll_interval: Duration::from_millis(50),
            log: false,
        }
    }
}

/// The server failed to start or to accept connections.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The address cannot be listened on.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: String,
        /// The system's error.
        #[source]
        source: io::Error,
    },
    /// Accepting connections failed.
    #[error("cannot accept connections on {address}: {source}")]
    Accept {
        /// The address.
        address: String,
        /// The system's error.
        #[source]
        source: io::Error,
    },
    /// The centre's store cannot be opened.
    #[error(transparent)]
    Centre(#[from] CentreError),
}

enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
}

/// A telecollection centre listening on a socket.
pub struct CentreServer {
    listener: Listener,
    centre: Mutex<Centre>,
    local: CentreAddress,
    options: ServerOptions,
}

impl std::fmt::Debug for CentreServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CentreServer")
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

impl CentreServer {
    /// Listens on `address` for `centre`. A TCP port 0 picks a free port: see
    /// [`CentreServer::local_address`]. A stale Unix socket file at the path is
    /// replaced; any other file there is an error.
    pub fn bind(
        address: &CentreAddress,
        centre: Centre,
        options: ServerOptions,
    ) -> Result<CentreServer, ServeError> {
        let bind_error = |source| ServeError::Bind {
            address: address.to_string(),
            source,
        };
        let (listener, local) = match address {
            CentreAddress::Tcp(socket) => {
                let listener = TcpListener::bind(socket).map_err(bind_error)?;
                let local = listener.local_addr().map_err(bind_error)?;
                (Listener::Tcp(listener), CentreAddress::Tcp(local))
            }
            CentreAddress::Unix(path) => {
                use std::os::unix::fs::FileTypeExt;
                if let Ok(metadata) = std::fs::symlink_metadata(path)
                    && metadata.file_type().is_socket()
                {
                    std::fs::remove_file(path).map_err(bind_error)?;
                }
                let listener = UnixListener::bind(path).map_err(bind_error)?;
                (Listener::Unix(listener, path.clone()), address.clone())
            }
        };
        match &listener {
            Listener::Tcp(listener) => listener.set_nonblocking(true),
            Listener::Unix(listener, _) => listener.set_nonblocking(true),
        }
        .map_err(bind_error)?;
        Ok(CentreServer {
            listener,
            centre: Mutex::new(centre),
            local,
            options,
        })
    }

    /// The address actually listened on.
    pub fn local_address(&self) -> &CentreAddress {
        &self.local
    }

    /// Serves until `shutdown` is set, then waits for the connections in progress to
    /// end (each ends at most [`ServerOptions::io_timeout`] after its client falls
    /// silent).
    pub fn run(&self, shutdown: &AtomicBool) -> Result<(), ServeError> {
        std::thread::scope(|scope| {
            while !shutdown.load(Ordering::Relaxed) {
                let accepted = match &self.listener {
                    Listener::Tcp(listener) => listener.accept().and_then(|(stream, _)| {
                        stream.set_nonblocking(false)?;
                        stream.set_nodelay(true)?;
                        Ok(Stream::Tcp(stream))
                    }),
                    Listener::Unix(listener, _) => listener.accept().and_then(|(stream, _)| {
                        stream.set_nonblocking(false)?;
                        Ok(Stream::Unix(stream))
                    }),
                };
                match accepted {
                    Ok(stream) => {
                        scope.spawn(move || self.serve_connection(stream, shutdown));
                    }
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                        std::thread::sleep(self.options.poll_interval);
                    }
                    // A connection that failed between the kernel and us: not the server's.
                    Err(error)
                        if matches!(
                            error.kind(),
                            io::ErrorKind::ConnectionAborted
                                | io::ErrorKind::ConnectionReset
                                | io::ErrorKind::Interrupted
                        ) => {}
                    Err(source) => {
                        return Err(ServeError::Accept {
                            address: self.local.to_string(),
                            source,
                        });
                    }
                }
            }
            Ok(())
        })
    }

    fn serve_connection(&self, stream: Stream, shutdown: &AtomicBool) {
        if stream.set_timeouts(self.options.io_timeout).is_err() {
            return;
        }
        let mut reader = BufReader::new(stream);
        while !shutdown.load(Ordering::Relaxed) {
            let mut length = [0u8; 8];
            match read_frame_length(&mut reader, &mut length) {
                Ok(true) => {}
                // The client closed between frames, or fell silent: done.
                Ok(false) | Err(_) => return,
            }
            let length = u64::from_be_bytes(length);
            let (answer, keep_going) = self.answer_frame(&mut reader, length);
            if self.options.log {
                eprintln!("telecollection {}: {}", self.local, describe(&answer));
            }
            let mut line = serde_json::to_vec(&answer).unwrap_or_else(|_| b"{}".to_vec());
            line.push(b'\n');
            let stream = reader.get_mut();
            if stream
                .write_all(&line)
                .and_then(|()| stream.flush())
                .is_err()
                || !keep_going
            {
                return;
            }
        }
    }

    /// Reads one frame of `length` bytes and answers it; `false` when the connection
    /// cannot carry another frame.
    fn answer_frame(&self, reader: &mut BufReader<Stream>, length: u64) -> (CentreAnswer, bool) {
        if length == 0 || length > self.options.max_batch_bytes {
            let answer = CentreAnswer::Refused {
                line: None,
                reason: format!(
                    "the frame announces {length} bytes; this centre takes batches of 1 to {} bytes",
                    self.options.max_batch_bytes
                ),
            };
            return (answer, false);
        }
        let mut body = reader.by_ref().take(length);
        let verified = Centre::verify(&mut body);
        // Read what is left of a refused frame, so the answer reaches a client still
        // sending it (closing with unread data would reset the connection).
        let drained = io::copy(&mut body, &mut io::sink());
        let complete = body.limit() == 0 && drained.is_ok();
        let answer =
            match verified {
                Ok(batch) => match self.centre.lock() {
                    Ok(mut centre) => centre.accept(&batch, now()).unwrap_or_else(|error| {
                        CentreAnswer::Unavailable {
                            reason: error.to_string(),
                        }
                    }),
                    Err(_) => CentreAnswer::Unavailable {
                        reason: "the centre's store is unusable after an earlier failure".into(),
                    },
                },
                Err(error) => CentreAnswer::refused(&error),
            };
        (answer, complete)
    }
}

impl Drop for CentreServer {
    fn drop(&mut self) {
        if let Listener::Unix(_, path) = &self.listener {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Reads the 8-byte length; `Ok(false)` on a clean end of stream before its first byte.
fn read_frame_length(reader: &mut impl BufRead, length: &mut [u8; 8]) -> io::Result<bool> {
    if reader.fill_buf()?.is_empty() {
        return Ok(false);
    }
    reader.read_exact(length)?;
    Ok(true)
}

fn describe(answer: &CentreAnswer) -> String {
    match answer {
        CentreAnswer::Accepted(acceptance) => format!(
            "{} batch {} of {} ({} records)",
            if acceptance.duplicate {
                "duplicate"
            } else {
                "accepted"
            },
            acceptance.batch,
            acceptance.acquirer,
            acceptance.records
        ),
        CentreAnswer::Refused { reason, .. } => format!("refused: {reason}"),
        CentreAnswer::Unavailable { reason } => format!("unavailable: {reason}"),
    }
}

/// The system clock, read at the edge only.
fn now() -> Timestamp {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    Timestamp(millis)
}

/// `telepay telecollection serve`: opens the centre's store at `store`, listens on
/// `address` and serves until `shutdown` is set.
pub fn serve(
    address: &CentreAddress,
    store: &Path,
    options: ServerOptions,
    shutdown: &AtomicBool,
) -> Result<(), ServeError> {
    let centre = Centre::open(store)?;
    CentreServer::bind(address, centre, options)?.run(shutdown)
}

// ---------------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------------

/// How the client behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOptions {
    /// Connection, write and read timeout (default 60 s): the answer comes once the
    /// centre has verified the whole batch and stored its acceptance.
    pub timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> ClientOptions {
        ClientOptions {
            timeout: Duration::from_secs(60),
        }
    }
}

/// Remitting a batch failed: no answer was received (the batch may or may not have
/// arrived; send it again: the centre counts it once).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RemitError {
    /// The centre cannot be reached.
    #[error("centre {address}: cannot connect: {source}")]
    Connect {
        /// The centre.
        address: String,
        /// The system's error.
        #[source]
        source: io::Error,
    },
    /// Sending the batch failed.
    #[error("centre {address}: sending the batch failed: {source}")]
    Send {
        /// The centre.
        address: String,
        /// The system's error.
        #[source]
        source: io::Error,
    },
    /// The batch ended before the length announced.
    #[error("centre {address}: the batch has {sent} bytes, {declared} were announced")]
    ShortBatch {
        /// The centre.
        address: String,
        /// The length announced.
        declared: u64,
        /// The bytes there were.
        sent: u64,
    },
    /// Reading the answer failed, or the centre closed without answering.
    #[error("centre {address}: no answer: {source}")]
    Receive {
        /// The centre.
        address: String,
        /// The system's error.
        #[source]
        source: io::Error,
    },
    /// The answer is not a centre answer.
    #[error("centre {address}: unreadable answer {answer:?}: {source}")]
    BadAnswer {
        /// The centre.
        address: String,
        /// The start of the answer (at most 80 characters).
        answer: String,
        /// serde_json's error.
        #[source]
        source: serde_json::Error,
    },
    /// The batch file cannot be read.
    #[error("batch file {path}: {source}")]
    File {
        /// The file.
        path: String,
        /// The system's error.
        #[source]
        source: io::Error,
    },
    /// The journal failed (see [`crate::telecollection::remittance`]).
    #[error(transparent)]
    Journal(#[from] crate::acquirer::journal::JournalError),
    /// The centre accepted another batch than the one sent.
    #[error(
        "centre {address}: accepted batch {accepted} of {acquirer} (sha256 {checksum}) in answer to batch {sent}"
    )]
    AnswerMismatch {
        /// The centre.
        address: String,
        /// The batch number sent.
        sent: u64,
        /// The batch number the acceptance names.
        accepted: u64,
        /// The acquirer it names.
        acquirer: String,
        /// The checksum it names.
        checksum: String,
    },
}

/// Sends `length` bytes of batch from `batch` to the centre at `address` and returns
/// its answer.
pub fn remit<R: Read>(
    address: &CentreAddress,
    length: u64,
    batch: R,
    options: &ClientOptions,
) -> Result<CentreAnswer, RemitError> {
    remit_with(address, length, options, |out| {
        let sent = io::copy(&mut batch.take(length), out).map_err(|source| RemitError::Send {
            address: address.to_string(),
            source,
        })?;
        if sent != length {
            return Err(RemitError::ShortBatch {
                address: address.to_string(),
                declared: length,
                sent,
            });
        }
        Ok(())
    })
}

/// Sends the batch file at `path` to the centre at `address`.
pub fn remit_file(
    address: &CentreAddress,
    path: &Path,
    options: &ClientOptions,
) -> Result<CentreAnswer, RemitError> {
    let file_error = |source| RemitError::File {
        path: path.display().to_string(),
        source,
    };
    let file = std::fs::File::open(path).map_err(file_error)?;
    let length = file.metadata().map_err(file_error)?.len();
    remit(address, length, file, options)
}

/// Connects, sends the frame's length, lets `send_body` write the body, and reads the
/// answer.
pub(crate) fn remit_with(
    address: &CentreAddress,
    length: u64,
    options: &ClientOptions,
    send_body: impl FnOnce(&mut dyn Write) -> Result<(), RemitError>,
) -> Result<CentreAnswer, RemitError> {
    let send_error = |source| RemitError::Send {
        address: address.to_string(),
        source,
    };
    let mut stream =
        Stream::connect(address, options.timeout).map_err(|source| RemitError::Connect {
            address: address.to_string(),
            source,
        })?;
    {
        let mut out = BufWriter::with_capacity(64 * 1024, &mut stream);
        out.write_all(&length.to_be_bytes()).map_err(send_error)?;
        send_body(&mut out)?;
        out.flush().map_err(send_error)?;
    }
    let mut answer = Vec::new();
    let receive_error = |source| RemitError::Receive {
        address: address.to_string(),
        source,
    };
    BufReader::new(&mut stream)
        .take(MAX_ANSWER_BYTES)
        .read_until(b'\n', &mut answer)
        .map_err(receive_error)?;
    if answer.last() != Some(&b'\n') {
        return Err(receive_error(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            if answer.is_empty() {
                "the centre closed the connection without answering".to_owned()
            } else {
                format!("the answer does not end within {MAX_ANSWER_BYTES} bytes")
            },
        )));
    }
    serde_json::from_slice(&answer).map_err(|source| RemitError::BadAnswer {
        address: address.to_string(),
        answer: String::from_utf8_lossy(&answer).chars().take(80).collect(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_and_print() {
        let cases = [
            ("tcp:127.0.0.1:7070", "tcp:127.0.0.1:7070"),
            ("127.0.0.1:7070", "tcp:127.0.0.1:7070"),
            ("tcp:[::1]:7070", "tcp:[::1]:7070"),
            (
                "unix:/run/telepay/centre.sock",
                "unix:/run/telepay/centre.sock",
            ),
        ];
        for (text, printed) in cases {
            assert_eq!(text.parse::<CentreAddress>().unwrap().to_string(), printed);
        }
        for bad in [
            "localhost:7070",
            "tcp:127.0.0.1",
            "unix:",
            "udp:1.2.3.4:5",
            "",
        ] {
            assert_eq!(
                bad.parse::<CentreAddress>().unwrap_err().to_string(),
                format!("centre address {bad:?}: expected tcp:IP:PORT, IP:PORT or unix:PATH")
            );
        }
    }

    #[test]
    fn an_unreachable_centre_is_an_error_not_an_answer() {
        // Bind then drop a listener: its port is closed.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = CentreAddress::Tcp(listener.local_addr().unwrap());
        drop(listener);
        let error = remit(&address, 3, &b"abc"[..], &ClientOptions::default()).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with(&format!("centre {address}: cannot connect: ")),
            "{error}"
        );
    }
}
