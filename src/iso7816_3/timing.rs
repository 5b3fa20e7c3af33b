//! The elementary time unit and the waiting times of ISO 7816-3, as [`Duration`]s.
//!
//! A serial reader knows its line speed in baud; one etu is one bit time (§7.1:
//! 1 etu = F / (D × f) seconds, which is what the reader's UART rate is set to). Every
//! waiting time of the standard is a number of etu, derived from the ATR's interface
//! bytes.

use std::time::Duration;

/// The timing of one line: its etu and the card's waiting-time integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineTiming {
    /// One elementary time unit (one bit on the line).
    pub etu: Duration,
    /// D, the baud-rate adjustment integer in use (1 until a PPS changes it).
    pub d: u32,
}

impl LineTiming {
    /// The timing of a line running at `baud` bits per second with adjustment factor
    /// `d` (1 before any PPS).
    pub fn from_baud(baud: u32, d: u32) -> LineTiming {
        let baud = u64::from(baud.max(1));
        LineTiming {
            etu: Duration::from_nanos(1_000_000_000 / baud),
            d: d.max(1),
        }
    }

    /// `n` etu.
    pub fn etus(&self, n: u64) -> Duration {
        self.etu
            .saturating_mul(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// One character on the line: start bit, 8 data bits, parity bit and the 2 etu
    /// guard time (§7.2) — 12 etu, without extra guard time.
    pub fn character(&self) -> Duration {
        self.etus(12)
    }

    /// The most time the card may take to start its ATR after reset: 40,000 clock
    /// cycles (§8.2); at F = 372 that is about 108 etu, so the standard's rule is
    /// expressed as the ATR's first character arriving within 40,000 / 372 etu.
    pub fn atr_first_character(&self) -> Duration {
        self.etus(40_000 / 372 + 1)
    }

    /// The initial waiting time between two characters of the ATR: 9,600 etu (§8.2).
    pub fn atr_between_characters(&self) -> Duration {
        self.etus(9_600)
    }

    /// The most the whole ATR may take, from its first character's leading edge:
    /// 19,200 etu (EMV Book 1 §8.1 keeps ISO 7816-3's bound).
    pub fn atr_total(&self) -> Duration {
        self.etus(19_200)
    }

    /// T=0 work waiting time, WWT = 960 × D × WI etu (§10.2), WI from TC2 (default 10).
    pub fn t0_work_waiting_time(&self, wi: u8) -> Duration {
        self.etus(960 * u64::from(self.d) * u64::from(wi.max(1)))
    }

    /// T=1 character waiting time, CWT = (11 + 2^CWI) etu (§11.4.3).
    pub fn t1_character_waiting_time(&self, cwi: u8) -> Duration {
        self.etus(11 + (1u64 << cwi.min(15)))
    }

    /// T=1 block waiting time, BWT = 11 etu + 2^BWI × 960 × Fd / f (§11.4.3); with the
    /// default clock rate conversion Fd = 372 that second term is 2^BWI × 960 × D etu.
    pub fn t1_block_waiting_time(&self, bwi: u8) -> Duration {
        self.etus(11 + (1u64 << bwi.min(9)) * 960 * u64::from(self.d))
    }
}
