//! The part of T=1 both sides share below the protocol rules: framing received
//! characters into blocks under the character waiting time, holding invalid input until
//! the line is quiet, and queuing blocks to send with the time they leave the line.

use std::collections::VecDeque;
use std::time::Instant;

use super::{Block, BlockError, BlockReceiver, Fault, T1Config, Waiting, deadline};

/// An invalid block seen, awaiting CWT of silence before it is answered.
#[derive(Debug, Clone)]
struct Quiet {
    fault: Fault,
    since: Instant,
}

/// One side's end of the line.
#[derive(Debug, Clone)]
pub(super) struct Link {
    pub(super) config: T1Config,
    /// The NAD blocks from the other side must carry (§11.3.2.1).
    expected_nad: u8,
    receiver: BlockReceiver,
    last_character_at: Option<Instant>,
    quiet: Option<Quiet>,
    transmit: VecDeque<Vec<u8>>,
    /// When the last block queued has left the line (queued at + its length ×
    /// character time); `None` before any, or beyond the clock's range.
    sent_end: Option<Instant>,
}

impl Link {
    pub(super) fn new(config: T1Config, expected_nad: u8) -> Link {
        Link {
            config,
            expected_nad,
            receiver: BlockReceiver::new(config.edc),
            last_character_at: None,
            quiet: None,
            transmit: VecDeque::new(),
            sent_end: None,
        }
    }

    /// Takes the characters of one `handle_input` call; returns the valid block they
    /// end with, if any. T=1 is half-duplex — the sender of a block waits for the
    /// answer (§11.6.2) — so characters after the end of a block, before we could
    /// answer, mean the block was misframed (a corrupted LEN can frame a shorter block
    /// whose last byte happens to match the EDC): it is held as invalid.
    pub(super) fn receive(&mut self, bytes: &[u8], now: Instant) -> Option<Block> {
        let mut last = None;
        for (index, &byte) in bytes.iter().enumerate() {
            let Some(block) = self.push(byte, now) else {
                continue;
            };
            let trailing = bytes.len().saturating_sub(index.saturating_add(1));
            if trailing == 0 {
                last = Some(block);
            } else {
                let fault = Fault::BadBlock {
                    block: hex::encode_upper(block.encode(self.config.edc)),
                    reason: BlockError::TrailingCharacters { count: trailing },
                };
                self.hold(fault, now);
            }
        }
        last
    }

    /// Takes one received character; returns the block it completes, if valid.
    /// Invalid blocks are held (see [`Link::take_expired`]), as is everything that
    /// follows them until the line has been quiet for CWT.
    fn push(&mut self, byte: u8, now: Instant) -> Option<Block> {
        self.last_character_at = Some(now);
        if self.quiet.is_some() {
            return None;
        }
        match self.receiver.push_checked(byte)? {
            Ok(block) if block.nad == self.expected_nad => Some(block),
            Ok(block) => {
                let fault = Fault::BadBlock {
                    block: hex::encode_upper(block.encode(self.config.edc)),
                    reason: BlockError::WrongNad {
                        nad: block.nad,
                        expected: self.expected_nad,
                    },
                };
                self.hold(fault, now);
                None
            }
            Err(fault) => {
                self.hold(fault, now);
                None
            }
        }
    }

    /// Marks what is being received as invalid: the driver saw a parity error (§7.3).
    pub(super) fn parity_error(&mut self, now: Instant) {
        self.last_character_at = Some(now);
        if self.quiet.is_none() {
            self.hold(Fault::Parity, now);
        }
    }

    /// Holds `fault` until the line is quiet: the other side may still be sending (a
    /// block whose LEN was corrupted, garbage), and answering now would talk over it.
    pub(super) fn hold(&mut self, fault: Fault, now: Instant) {
        self.receiver.clear();
        self.last_character_at = Some(now);
        self.quiet = Some(Quiet { fault, since: now });
    }

    /// When the reception in progress times out: CWT after the last character of a
    /// block begun (§11.4.3), or of an invalid block's aftermath — the latter bounded
    /// by BWT from the invalid block, so a babbling line cannot keep us silent.
    pub(super) fn receive_deadline(&self) -> Option<Instant> {
        let last = self.last_character_at?;
        let cwt = deadline(last, self.config.character_waiting_time);
        if let Some(quiet) = &self.quiet {
            let bound = deadline(quiet.since, self.config.block_waiting_time);
            return match (cwt, bound) {
                (Some(cwt), Some(bound)) => Some(cwt.min(bound)),
                (cwt, bound) => cwt.or(bound),
            };
        }
        if self.receiver.is_receiving() {
            return cwt;
        }
        None
    }

    /// Whether a block is being received or an invalid one awaits silence.
    pub(super) fn is_receiving(&self) -> bool {
        self.quiet.is_some() || self.receiver.is_receiving()
    }

    /// The fault to answer once the reception deadline has passed: the invalid block
    /// held, or a block cut short (§11.6.3: a block not completed within CWT is invalid).
    pub(super) fn take_expired(&mut self, now: Instant) -> Option<Fault> {
        let due = self.receive_deadline()?;
        if now < due {
            return None;
        }
        if let Some(quiet) = self.quiet.take() {
            self.receiver.clear();
            return Some(quiet.fault);
        }
        let received = hex::encode_upper(self.receiver.pending());
        self.receiver.clear();
        Some(Fault::Timeout {
            waiting_for: Waiting::Character { received },
        })
    }

    /// Queues `block`; the line turns around, so whatever was being received is dropped.
    pub(super) fn send(&mut self, block: &Block, now: Instant) {
        let bytes = block.encode(self.config.edc);
        let count = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
        self.sent_end = deadline(now, self.config.character_time.saturating_mul(count));
        self.transmit.push_back(bytes);
        self.receiver.clear();
        self.quiet = None;
        self.last_character_at = None;
    }

    /// When our last block has left the line.
    pub(super) fn sent_end(&self) -> Option<Instant> {
        self.sent_end
    }

    pub(super) fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmit.pop_front()
    }

    pub(super) fn has_transmit(&self) -> bool {
        !self.transmit.is_empty()
    }

    /// Forgets everything received (after a resynchronisation or when idle).
    pub(super) fn reset_receive(&mut self) {
        self.receiver.clear();
        self.quiet = None;
        self.last_character_at = None;
    }
}
