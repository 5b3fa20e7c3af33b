//! BER-TLV (ISO 7816-4 §5.2, EMV 4.4 Book 3 Annex B), the EMV tag dictionary, decoding of
//! values by format, Data Object Lists (EMV Book 3 §5.4) and a pretty-printer for card dumps.
//!
//! - [`ber`]: the TLV tree ([`Tlv`], [`Value`]), [`parse`] and encoding.
//! - [`codes`]: ISO 3166-1 countries and ISO 4217 currencies by numeric code.
//! - [`dictionary`]: every EMV tag with its name, format, source and templates.
//! - [`decode`]: human decoding of a primitive value ([`decode_value`]).
//! - [`dol`]: PDOL / CDOL / DDOL parsing, building and splitting.
//! - [`render`](mod@render): the pretty-printer ([`render()`], [`render_bytes`]).

pub mod ber;
pub mod codes;
pub mod decode;
pub mod dictionary;
pub mod dol;
pub mod render;

pub use ber::{Tlv, TlvError, Value, find, parse};
pub use decode::{DecodeContext, decode_value, decode_value_with};
pub use render::{render, render_bytes};

/// A tag as the big-endian number of its bytes: `0x9F26`, `0x6F`, `0xDF8101`.
pub type TagNumber = u32;
