//! ISO/IEC 7816-3 as sans-IO engines: what a serial reader and a card say to each other
//! on the I/O line, bytes in and bytes (or events) out, with no I/O and no clock inside.
//!
//! - [`convention`]: direct and inverse convention (§8.1), applied to every character.
//! - [`atr_receiver`]: receiving an Answer To Reset character by character, with the
//!   waiting-time rules of §8.2 as deadlines the caller supplies.
//! - [`pps`]: protocol and parameters selection (§9): request, confirmation, rejection.
//! - [`t0`]: the half-duplex character protocol T=0 (§10), host side and card side:
//!   command header, procedure bytes (INS, complement of INS, NULL `60`), SW1 SW2.
//! - [`t1`]: the half-duplex block protocol T=1 (§11), host side and card side: I-, R-
//!   and S-blocks, LRC or CRC, IFSC/IFSD, chaining, waiting time extension, error
//!   recovery and resynchronisation.
//! - [`timing`]: the elementary time unit and the waiting times derived from the ATR.
//!
//! Every engine has the same shape, so one driver loop serves them all:
//!
//! - `handle_input(bytes, now)`: characters received from the line (already decoded
//!   from the line's convention, echo already removed);
//! - `poll_transmit()`: characters to write on the line now, if any;
//! - `poll_timeout()`: the instant at which the caller must call
//!   `handle_timeout(now)` if no character has arrived by then;
//! - an engine-specific way to start an exchange (host side) or answer one (card side)
//!   and to collect its outcome.
//!
//! Time is an [`std::time::Instant`] the caller passes in: the engines compare instants
//! and add durations, never read a clock, so tests drive time by hand.

pub mod atr_receiver;
pub mod convention;
pub mod pps;
pub mod t0;
pub mod t1;
pub mod timing;
