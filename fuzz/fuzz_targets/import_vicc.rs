//! Fuzz target `import_vicc`: `telepay::trace::import` of vsmartcard's `vicc -v` log
//! (`virtualsmartcard/VirtualSmartcard.py`) (`docs/trace-import.md`, "vicc"), on
//! arbitrary bytes.
//!
//! The importer reads `Parsed APDU:` with its `C_APDU(…)` line re-encoded per ISO
//! 7816-4 §5.1, `Unparsed APDU:` dumps, `Response APDU (N Bytes):`, notes from what
//! vicc logs in between, power events, tracebacks.
//!
//! Checked (the shared properties of `common/import.rs`): `text_from_bytes` accepts
//! exactly UTF-8 and locates the first bad byte; `detect` never panics and `auto`
//! imports as the format it names; the masked and recorded imports never panic, agree
//! on success or on the error, and the error names the origin and a line within the
//! input; an imported trace has non-empty commands, responses with SW1 SW2 (ISO 7816-4
//! §5.1), writes and reads back equal, lists at most `MAX_SKIPPED_LINES` skipped lines
//! in order; masking only hides bytes. For this format: it logs no ATR and no timing
//! (one-second resolution).
#![no_main]

#[path = "common/import.rs"]
mod import;

use libfuzzer_sys::fuzz_target;
use telepay::trace::import::ImportFormat;

/// What the `vicc` log holds: it logs no ATR and no timing (one-second resolution).
const CAPABILITIES: import::Capabilities = import::Capabilities {
    atr: false,
    timings: false,
    resolution_nanos: 1,
};

fuzz_target!(|input: &[u8]| import::check(ImportFormat::Vicc, CAPABILITIES, input));
