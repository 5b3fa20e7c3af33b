//! What the T=1 targets (`t1_host`, `t1_card`, `t1_roundtrip`) share: the link
//! configuration picked from the input, blocks framed with a correct (or deliberately
//! wrong) epilogue, and the checks every emitted block must pass (ISO 7816-3 §11.3,
//! §11.4.2, §11.6.2).
// Each target uses part of this module.
#![allow(dead_code)]

use std::time::Duration;

use telepay::iso7816_3::t1::{Block, Edc, MAX_INF_LEN, Pcb, T1Config};

use super::line::{Input, hex};

/// BWT of the fuzzed links: the longest wait for the first character of a block.
pub const BWT: Duration = Duration::from_millis(1000);
/// CWT of the fuzzed links: the longest wait between two characters of a block.
pub const CWT: Duration = Duration::from_millis(20);

/// The link picked by the input: `flags` bit 0 CRC (else LRC), bit 1 NAD `12` (card
/// answers `21`, §11.3.2.1; else `00`), bits 2–3 `max_retransmissions` 0..=3, bit 4 a
/// character time of 1 ms (else 0); IFSC and IFSD mapped into 1..=254 (§11.4.2).
pub fn config(flags: u8, ifsc: u8, ifsd: u8) -> T1Config {
    T1Config {
        ifsc: ifs(ifsc),
        ifsd: ifs(ifsd),
        edc: if flags & 1 == 1 { Edc::Crc } else { Edc::Lrc },
        nad: if flags & 2 == 2 { 0x12 } else { 0x00 },
        block_waiting_time: BWT,
        character_waiting_time: CWT,
        max_retransmissions: (flags >> 2) & 3,
        character_time: if flags & 0x10 == 0x10 {
            Duration::from_millis(1)
        } else {
            Duration::ZERO
        },
    }
}

/// A byte as an information field size, 1..=254 (`00` and `FF` are reserved, §11.4.2).
pub fn ifs(byte: u8) -> u8 {
    byte % 254 + 1
}

/// A block as characters: NAD, PCB, LEN, INF and the epilogue computed for them. PCB
/// is written as given, so reserved values reach the engines too.
pub fn frame(nad: u8, pcb: u8, inf: &[u8], edc: Edc) -> Vec<u8> {
    let len = u8::try_from(inf.len()).unwrap_or(0xFF);
    let mut out = vec![nad, pcb, len];
    out.extend_from_slice(inf);
    let code = edc.compute(&out);
    match edc {
        Edc::Lrc => out.push(code.to_be_bytes()[1]),
        Edc::Crc => out.extend_from_slice(&code.to_be_bytes()),
    }
    out
}

/// A block from a structured step (`common/line.rs`, control `80..=BF`), its 6 low bits
/// `c`: PCB is the next input byte; INF length the next (at most 254); bit 4 of `c`
/// makes INF a pattern of that length (so long chains cost no input), else INF is
/// taken from the input; bit 0 breaks the epilogue; bit 1 puts the wrong NAD. Returned
/// with where to split it into two pieces (bit 2 of `c`; the split point is the next
/// input byte).
pub fn structured_block(c: u8, input: &mut Input<'_>, nad: u8, edc: Edc) -> (Vec<u8>, usize) {
    let pcb = input.byte_or(0);
    let len = usize::from(input.byte_or(0)).min(MAX_INF_LEN);
    let inf: Vec<u8> = if c & 0x10 == 0x10 {
        (0..len).map(|i| (i as u8).wrapping_mul(13) ^ pcb).collect()
    } else {
        input.take(len).to_vec()
    };
    let nad = if c & 0x02 == 0x02 { nad ^ 0x44 } else { nad };
    let mut block = frame(nad, pcb, &inf, edc);
    if let Some(last) = block.last_mut().filter(|_| c & 0x01 == 0x01) {
        *last ^= 0x5A;
    }
    let split = if c & 0x04 == 0x04 {
        usize::from(input.byte_or(0)) % block.len()
    } else {
        block.len()
    };
    (block, split)
}

/// Decodes one emitted block with the crate's own decoder and checks its epilogue
/// independently: the exclusive-or of an LRC-protected block is zero (§11.3.5.1).
pub fn decode_emitted(bytes: &[u8], edc: Edc, nad: u8, who: &str) -> Block {
    let block = match Block::decode(bytes, edc) {
        Ok(block) => block,
        Err(error) => panic!("{who} sent {} which does not decode: {error}", hex(bytes)),
    };
    if edc == Edc::Lrc {
        let xor = bytes.iter().fold(0u8, |acc, b| acc ^ b);
        assert_eq!(xor, 0, "{who}: LRC of {}", hex(bytes));
    }
    assert_eq!(block.nad, nad, "{who}: NAD of {} (§11.3.2.1)", hex(bytes));
    assert!(block.inf.len() <= MAX_INF_LEN);
    block
}

/// A message (APDU) sent as a chain of I-blocks, and where the last I-block sent sat in
/// it: every new I-block must be the first part, the same part again or the next one
/// (§11.6.2), with M set exactly when more follows, and at most IFS bytes (§11.4.2).
#[derive(Debug, Clone)]
pub struct Chain {
    message: Vec<u8>,
    /// Where the last part sent may sit (offset, length): more than one place when
    /// the message repeats itself.
    last: Vec<(usize, usize)>,
    /// The characters of the last I-block sent.
    last_raw: Vec<u8>,
}

impl Chain {
    /// A chain carrying `message`, nothing sent yet.
    pub fn new(message: Vec<u8>) -> Chain {
        Chain {
            message,
            last: Vec::new(),
            last_raw: Vec::new(),
        }
    }

    /// The message.
    pub fn message(&self) -> &[u8] {
        &self.message
    }

    /// Checks an emitted I-block (`raw` its characters) against the chain, `ifs` being
    /// the information field size in force.
    pub fn check(&mut self, block: &Block, raw: &[u8], ifs: u8, who: &str) {
        let Pcb::Information { more, .. } = block.pcb else {
            return;
        };
        if !self.last.is_empty() && self.last_raw.as_slice() == raw {
            // The same block again (§11.6.3, rule 7): sized by the IFS of its time.
            return;
        }
        let len = block.inf.len();
        assert!(
            len <= usize::from(ifs),
            "{who}: I-block {} carries {len} bytes, IFS is {ifs} (§11.4.2)",
            hex(raw)
        );
        let mut offsets = vec![0];
        for &(offset, previous) in &self.last {
            offsets.extend([offset, offset + previous]);
        }
        offsets.sort_unstable();
        offsets.dedup();
        let fits: Vec<(usize, usize)> = offsets
            .into_iter()
            .filter(|&offset| {
                self.message.get(offset..offset + len) == Some(block.inf.as_slice())
                    && more == (offset + len < self.message.len())
            })
            .map(|offset| (offset, len))
            .collect();
        assert!(
            !fits.is_empty(),
            "{who}: I-block {} is not the first, same or next part of {} (last at {:?})",
            hex(raw),
            hex(&self.message),
            self.last
        );
        self.last = fits;
        self.last_raw = raw.to_vec();
    }
}
