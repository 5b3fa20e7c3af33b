//! The input layout the ISO 7816-3 engine targets share (`t0_host`, `t0_card`,
//! `t1_host`, `t1_card`, `t1_roundtrip`, `atr_receiver`, `pps`): a cursor over the fuzz
//! input, and the steps that drive a sans-IO engine — characters arriving in pieces,
//! and deadlines fired at points the input picks.
//!
//! After each target's own header bytes, the input is a list of steps, each opened by
//! a control byte `C`:
//!
//! ```text
//! 00..=7F  a piece of C % 64 + 1 characters, taken from the input that follows
//! 80..=BF  a structured piece the target builds itself (a T=1 block with its EDC);
//!          targets without one read it as a raw piece, like 00..=7F
//! C0..=DF  the engine's deadline fires: handle_timeout at poll_timeout() + C % 16 ms
//! E0..=EF  handle_timeout one nanosecond before the deadline: it must do nothing
//! F0..=FF  a target-specific action (parity error, the application answering, ...)
//! ```
//!
//! Each piece arrives one millisecond after the previous step, so no deadline passes
//! unless a step fires it; the engines must accept characters whatever the clock says.
// Each target uses part of this module.
#![allow(dead_code)]

use std::time::{Duration, Instant};

/// The clock every target starts from. One process-wide instant, so that a crash
/// replays with the same arithmetic (only differences of instants are ever checked).
pub fn origin() -> Instant {
    use std::sync::OnceLock;
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

/// What arrives between two steps: one millisecond.
pub const TICK: Duration = Duration::from_millis(1);

/// A cursor over the fuzz input.
#[derive(Debug, Clone)]
pub struct Input<'a> {
    rest: &'a [u8],
}

impl<'a> Input<'a> {
    /// The whole input.
    pub fn new(bytes: &'a [u8]) -> Input<'a> {
        Input { rest: bytes }
    }

    /// The next byte, if any.
    pub fn byte(&mut self) -> Option<u8> {
        let (&first, rest) = self.rest.split_first()?;
        self.rest = rest;
        Some(first)
    }

    /// The next byte, or `default` once the input is used up.
    pub fn byte_or(&mut self, default: u8) -> u8 {
        self.byte().unwrap_or(default)
    }

    /// The next `N` bytes, if that many remain.
    pub fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (first, rest) = self.rest.split_first_chunk::<N>()?;
        self.rest = rest;
        Some(*first)
    }

    /// Up to `n` bytes (fewer at the end of the input).
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (first, rest) = self.rest.split_at(n.min(self.rest.len()));
        self.rest = rest;
        first
    }

    /// Whether the input is used up.
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// Bytes left.
    pub fn len(&self) -> usize {
        self.rest.len()
    }

    /// The next step, `None` at the end of the input.
    pub fn step(&mut self) -> Option<Step<'a>> {
        let control = self.byte()?;
        Some(match control {
            0x00..=0x7F => Step::Piece(self.take(usize::from(control % 64) + 1)),
            0x80..=0xBF => Step::Structured(control & 0x3F),
            0xC0..=0xDF => Step::Timeout {
                late: Duration::from_millis(u64::from(control % 16)),
            },
            0xE0..=0xEF => Step::EarlyTimeout,
            0xF0..=0xFF => Step::Action(control & 0x0F),
        })
    }

    /// [`Input::step`] for targets without a structured piece: `80..=BF` is a raw
    /// piece of `C % 64 + 1` characters.
    pub fn raw_step(&mut self) -> Option<Step<'a>> {
        match self.step()? {
            Step::Structured(control) => Some(Step::Piece(self.take(usize::from(control) + 1))),
            other => Some(other),
        }
    }
}

/// One step of the input (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step<'a> {
    /// Characters arriving together.
    Piece(&'a [u8]),
    /// A structured piece; the 6 low bits of the control byte are the target's.
    Structured(u8),
    /// The deadline fires, this late.
    Timeout {
        /// How late after the deadline.
        late: Duration,
    },
    /// A call just before the deadline.
    EarlyTimeout,
    /// A target-specific action; the 4 low bits of the control byte.
    Action(u8),
}

/// One nanosecond before `deadline` (the deadline itself when that is the origin).
pub fn just_before(deadline: Instant) -> Instant {
    deadline
        .checked_sub(Duration::from_nanos(1))
        .unwrap_or(deadline)
}

/// Bytes as spaced upper-case hex, for assertion messages.
pub fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|byte| format!("{byte:02X}"))
        .collect::<Vec<_>>()
        .join(" ")
}
