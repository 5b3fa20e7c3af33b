//! pcsc-lite's `pcsc-spy` output (`src/spy/pcsc-spy`; colours may be left in or removed
//! with `-n`). Each PC/SC call is a block: the function name, its input (` i `) and output
//! (` o `) parameters, then the result line with the time the call took:
//!
//! ```text
//! SCardTransmit
//!  i hCard: 0x0001E5C9
//!  i bSendLength 0x0000000D (13)
//!  i bSendBuffer
//!  i  0000 00 A4 04 00 07 A0 00 00 00 42 10 10 00 ........B...
//!  o bRecvLength 0x00000002 (2)
//!  o bRecvBuffer
//!  o  0000 6A 82 j.
//!  => Command successful. (SCARD_S_SUCCESS [0x00000000])  [0.000181]
//! ```
//!
//! A buffer line is `%04X` (the offset), a space, the bytes as `XX` joined by spaces and
//! padded to 47 characters, a space and the ASCII rendering. Blocks of other threads are
//! indented by four spaces a thread (or tagged `(tN)` with `-t`). What is imported:
//! `SCardTransmit` exchanges (time from the result line), the ATRs `SCardStatus` and
//! `SCardGetStatusChange` report (an `AnswerToReset` when first seen or changed, again
//! after `SCardReconnect` with a reset), the reader `SCardConnect` names and the protocol
//! it negotiates.

use std::collections::HashMap;
use std::time::Duration;

use super::ImportError;
use super::common::{Builder, Line, Lines, decimal, hex, hex_into, hex_number, malformed, seconds};

/// Whether `line` is one pcsc-spy writes.
pub(super) fn sniff(line: &str) -> bool {
    let (_, content) = split_thread(line);
    content.starts_with("i hCard: ")
        || content.starts_with("i hContext: ")
        || (content.starts_with("=> ") && content.contains("(SCARD_"))
}

/// Parameter direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    In,
    Out,
}

/// A buffer parameter being read.
struct Buffer {
    line: usize,
    bytes: Vec<u8>,
}

/// A call whose result line has not come yet.
struct Call {
    function: String,
    line: usize,
    send_len: Option<usize>,
    recv_len: Option<usize>,
    send: Option<Buffer>,
    recv: Option<Buffer>,
    /// The buffer that dump lines go to.
    open: Option<Dir>,
    /// `SCardReconnect` with `SCARD_RESET_CARD` or `SCARD_UNPOWER_CARD`.
    resets: bool,
}

impl Call {
    fn new(function: &str, line: usize) -> Call {
        Call {
            function: function.to_owned(),
            line,
            send_len: None,
            recv_len: None,
            send: None,
            recv: None,
            open: None,
            resets: false,
        }
    }

    fn is_transmit(&self) -> bool {
        self.function == "SCardTransmit"
    }

    fn buffer(&mut self, dir: Dir) -> Option<&mut Buffer> {
        match (self.open?, dir) {
            (Dir::In, Dir::In) => self.send.as_mut(),
            (Dir::Out, Dir::Out) => self.recv.as_mut(),
            _ => None,
        }
    }
}

/// The thread a line belongs to and its content without indentation. pcsc-spy indents
/// each thread's blocks by four more spaces, or tags them `(tN)` with `-t`.
fn split_thread(text: &str) -> (u64, &str) {
    let content = text.trim_start_matches(' ');
    if let Some((number, rest)) = content
        .strip_prefix("(t")
        .and_then(|tagged| tagged.split_once(')'))
        && let Some(number) = decimal(number).and_then(|n| u64::try_from(n).ok())
    {
        return ((1 << 32) | number, rest.trim_start_matches(' '));
    }
    let indent = text.len() - content.len();
    (u64::try_from(indent / 4).unwrap_or(u64::MAX), content)
}

/// Whether `content` is a function name line (`SCardTransmit`; pcsc-spy misspells
/// `SCarControl`).
fn is_function(content: &str) -> bool {
    content.starts_with("SCar")
        && content.len() <= 40
        && content
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A buffer line without its leading space: `0010 90 00 ..`: offset and byte field.
fn dump(sub: &str) -> Option<(usize, &str)> {
    // `%04X`: four digits, more past 0xFFFF.
    let (offset, rest) = sub.split_once(' ')?;
    if offset.len() < 4 || !offset.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    // The bytes are padded to 16 × 3 − 1 = 47 characters; the ASCII rendering follows.
    let end = rest.char_indices().nth(47).map_or(rest.len(), |(at, _)| at);
    Some((usize::from_str_radix(offset, 16).ok()?, rest.get(..end)?))
}

/// Lines of pcsc-spy's statistics and messages that say nothing about the dialogue.
fn is_quiet(content: &str) -> bool {
    content.is_empty()
        || content == "Results sorted by total execution time"
        || content == "Ctrl-C, exiting."
        || content.starts_with("total time: ")
        || (content.starts_with("Thread ") && content.contains('/'))
        || (content.contains(" sec (") && content.contains(" calls) "))
        || (content.starts_with("fifo ") && content.ends_with(" already present. Reusing it."))
}

/// The return value in a result line (`… [0x80100016]) …`).
fn return_value(result: &str) -> Option<u64> {
    let (_, after) = result.split_once("[0x")?;
    let (digits, _) = after.split_once(']')?;
    hex_number(&format!("0x{digits}"))
}

/// The time at the end of a result line (`[0.000181]`; `[??.??]` with `-d`).
fn call_time(result: &str) -> Option<Duration> {
    let (_, inside) = result.trim_end().strip_suffix(']')?.rsplit_once('[')?;
    seconds(inside)
}

/// The importer's state across lines.
struct Spy {
    /// The open call of each thread.
    calls: HashMap<u64, Call>,
    last_atr: Option<Vec<u8>>,
    /// After a successful `SCardControl`, pcsc-spy may print its decoding of the
    /// reader's answer on lines indented by two spaces.
    control_tail: bool,
}

impl Spy {
    fn call(&mut self, thread: u64) -> Option<&mut Call> {
        self.calls.get_mut(&thread)
    }

    fn take_call(&mut self, thread: u64) -> Option<Call> {
        self.calls.remove(&thread)
    }

    /// An ATR reported by the reader: an event when first seen or changed.
    fn observe_atr(&mut self, line: usize, atr: Vec<u8>, b: &mut Builder) {
        if !atr.is_empty() && self.last_atr.as_ref() != Some(&atr) {
            // Not empty, so the builder takes it.
            let _ = b.atr(line, atr.clone());
            self.last_atr = Some(atr);
        }
    }
}

/// The hex bytes of a parameter value, or `None` when it is not hex (`NULL`, empty).
fn hex_value(origin: &str, line: &Line<'_>, value: &str) -> Result<Option<Vec<u8>>, ImportError> {
    let value = value.trim();
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_hexdigit() || b == b' ') {
        return Ok(None);
    }
    hex(origin, line, value).map(Some)
}

/// A length parameter value, `0x0000000D (13)`.
fn length(origin: &str, line: &Line<'_>, value: &str) -> Result<usize, ImportError> {
    let token = value.split(' ').next().unwrap_or(value);
    hex_number(token)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| malformed(origin, line, token, "a length as `0x` and eight hex digits"))
}

/// One ` i ` / ` o ` line of `call`.
fn parameter(
    origin: &str,
    line: &Line<'_>,
    dir: Dir,
    rest: &str,
    call: &mut Call,
    atr: &mut Option<Vec<u8>>,
    b: &mut Builder,
) -> Result<(), ImportError> {
    if let Some(sub) = rest.strip_prefix(' ') {
        // A buffer line, `NULL`, or a field of a reader state (SCardGetStatusChange).
        if let Some((offset, field)) = dump(sub) {
            let Some(buffer) = call.buffer(dir) else {
                b.skip(line);
                return Ok(());
            };
            if offset != buffer.bytes.len() {
                return Err(malformed(
                    origin,
                    line,
                    sub.split(' ').next().unwrap_or(sub),
                    "the offset of the next byte of the buffer",
                ));
            }
            return hex_into(origin, line, field, &mut buffer.bytes);
        }
        if dir == Dir::Out
            && let Some(value) = sub.strip_prefix("Atr: ")
        {
            *atr = hex_value(origin, line, value)?;
        }
        return Ok(());
    }
    call.open = None;
    let (name, value) = rest.split_once(' ').unwrap_or((rest, ""));
    let name = name.trim_end_matches(':');
    let transmit = call.is_transmit();
    match (dir, name) {
        (Dir::In, "bSendLength") if transmit => call.send_len = Some(length(origin, line, value)?),
        (Dir::Out, "bRecvLength") if transmit => call.recv_len = Some(length(origin, line, value)?),
        (Dir::In, "bSendBuffer") | (Dir::Out, "bRecvBuffer") if transmit => {
            // The 2011 pcsc-spy printed the bytes on the same line.
            let bytes = hex_value(origin, line, value)?.unwrap_or_default();
            let buffer = Some(Buffer {
                line: line.number,
                bytes,
            });
            if dir == Dir::In {
                call.send = buffer;
            } else {
                call.recv = buffer;
            }
            call.open = Some(dir);
        }
        (Dir::In, "szReader") if call.function == "SCardConnect" => b.set_reader(value),
        (Dir::Out, "dwActiveProtocol") => {
            if let Some(protocol) = value.split(' ').next().filter(|p| p.starts_with("T=")) {
                b.set_protocol(protocol);
            }
        }
        (Dir::Out, "bAtr") if call.function == "SCardStatus" => {
            *atr = hex_value(origin, line, value)?;
        }
        (Dir::In, "dwInitialization") if call.function == "SCardReconnect" => {
            // SCARD_RESET_CARD (1) and SCARD_UNPOWER_CARD (2) reset the card.
            let token = value.split(' ').next().unwrap_or(value);
            call.resets = matches!(hex_number(token), Some(1 | 2));
        }
        _ => {}
    }
    Ok(())
}

/// The result line of `call`.
fn finish(
    origin: &str,
    result: &str,
    call: Call,
    spy: &mut Spy,
    b: &mut Builder,
) -> Result<(), ImportError> {
    let success = return_value(result) == Some(0);
    match call.function.as_str() {
        "SCardTransmit" if !success => {
            let command = call.send.map(|send| send.bytes).unwrap_or_default();
            // The outcome without the call's duration: `Transaction failed.
            // (SCARD_E_NOT_TRANSACTED [0x80100016])`.
            let result = result.trim();
            let outcome = match result.strip_suffix(']').and_then(|r| r.rsplit_once(" [")) {
                Some((outcome, time)) if !time.starts_with("0x") => outcome.trim_end(),
                _ => result,
            };
            b.unanswered(
                call.line,
                &command,
                &format!("SCardTransmit failed ({outcome})"),
            );
        }
        "SCardTransmit" => {
            let incomplete = |missing| ImportError::Incomplete {
                origin: origin.to_owned(),
                line: call.line,
                block: "SCardTransmit call",
                missing,
            };
            let send = call.send.ok_or_else(|| incomplete("bSendBuffer"))?;
            let recv = call.recv.ok_or_else(|| incomplete("bRecvBuffer"))?;
            for (announced, buffer) in [(call.send_len, &send), (call.recv_len, &recv)] {
                if let Some(announced) = announced
                    && announced != buffer.bytes.len()
                {
                    return Err(ImportError::BadLength {
                        origin: origin.to_owned(),
                        line: buffer.line,
                        announced,
                        found: buffer.bytes.len(),
                    });
                }
            }
            b.exchange(recv.line, send.bytes, recv.bytes, call_time(result), None)?;
        }
        "SCardReconnect" if success && call.resets => {
            if let Some(atr) = spy.last_atr.clone() {
                b.atr(call.line, atr)?;
            }
        }
        "SCardControl" | "SCarControl" if success => spy.control_tail = true,
        _ => {}
    }
    Ok(())
}

/// Imports the lines; see the module documentation.
pub(super) fn parse(lines: &mut Lines<'_>, b: &mut Builder) -> Result<(), ImportError> {
    let origin = lines.origin();
    let mut spy = Spy {
        calls: HashMap::new(),
        last_atr: None,
        control_tail: false,
    };
    while let Some(line) = lines.next_line()? {
        let text = line.as_str();
        let control_tail = std::mem::take(&mut spy.control_tail);
        let (thread, content) = split_thread(text);
        let param = content
            .strip_prefix("i ")
            .map(|rest| (Dir::In, rest))
            .or_else(|| content.strip_prefix("o ").map(|rest| (Dir::Out, rest)));
        if let Some((dir, rest)) = param {
            let mut atr = None;
            match spy.call(thread) {
                Some(call) => parameter(origin, &line, dir, rest, call, &mut atr, b)?,
                None => b.skip(&line),
            }
            if let Some(atr) = atr {
                spy.observe_atr(line.number, atr, b);
            }
        } else if let Some(result) = content.strip_prefix("=> ") {
            match spy.take_call(thread) {
                Some(call) => finish(origin, result, call, &mut spy, b)?,
                None => b.skip(&line),
            }
        } else if is_function(content) {
            if let Some(open) = spy.take_call(thread)
                && open.is_transmit()
            {
                return Err(ImportError::Incomplete {
                    origin: origin.to_owned(),
                    line: open.line,
                    block: "SCardTransmit call",
                    missing: "result line (` => …`)",
                });
            }
            spy.calls.insert(thread, Call::new(content, line.number));
        } else if control_tail && text.starts_with("  ") {
            spy.control_tail = true;
        } else if !is_quiet(content.trim_end()) {
            b.skip(&line);
        }
    }
    // A call left open at the end: the application was stopped while it waited (often
    // in SCardGetStatusChange). Only an unanswered SCardTransmit matters.
    let unanswered = spy
        .calls
        .values()
        .filter(|call| call.is_transmit())
        .map(|call| call.line)
        .min();
    match unanswered {
        Some(line) => Err(ImportError::CommandWithoutResponse {
            origin: origin.to_owned(),
            line,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_and_dumps() {
        assert_eq!(split_thread("SCardTransmit"), (0, "SCardTransmit"));
        assert_eq!(split_thread("     i hCard: 0x1"), (1, "i hCard: 0x1"));
        assert_eq!(
            split_thread(" (t2)  i hCard: 0x1"),
            ((1 << 32) | 2, "i hCard: 0x1")
        );
        assert_eq!(
            dump("0010 90 00                                            ..")
                .map(|(offset, field)| (offset, field.trim_end())),
            Some((0x10, "90 00"))
        );
        assert_eq!(dump("dwProtocol: 0x2"), None);
        assert_eq!(
            return_value("Transaction failed. (SCARD_E_NOT_TRANSACTED [0x80100016])  [0.1]"),
            Some(0x8010_0016)
        );
        assert_eq!(
            call_time("Command successful. (SCARD_S_SUCCESS [0x00000000])  [0.000181]"),
            Some(Duration::from_micros(181))
        );
        assert_eq!(call_time("x (SCARD_S_SUCCESS [0x00000000])  [??.??]"), None);
    }
}
