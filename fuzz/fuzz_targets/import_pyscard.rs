//! Fuzz target `import_pyscard`: `telepay::trace::import` of pyscard's
//! `ConsoleCardConnectionObserver` output (`smartcard/CardConnectionObserver.py`)
//! (`docs/trace-import.md`, "pyscard"), on arbitrary bytes.
//!
//! The importer reads `> BYTES` commands, `< DATA SW1 SW2` and `<  [] SW1 SW2`
//! responses, `connecting to` readers.
//!
//! Checked (the shared properties of `common/import.rs`): `text_from_bytes` accepts
//! exactly UTF-8 and locates the first bad byte; `detect` never panics and `auto`
//! imports as the format it names; the masked and recorded imports never panic, agree
//! on success or on the error, and the error names the origin and a line within the
//! input; an imported trace has non-empty commands, responses with SW1 SW2 (ISO 7816-4
//! §5.1), writes and reads back equal, lists at most `MAX_SKIPPED_LINES` skipped lines
//! in order; masking only hides bytes. For this format: it logs no ATR and no timing.
#![no_main]

#[path = "common/import.rs"]
mod import;

use libfuzzer_sys::fuzz_target;
use telepay::trace::import::ImportFormat;

/// What the `pyscard` log holds: it logs no ATR and no timing.
const CAPABILITIES: import::Capabilities = import::Capabilities {
    atr: false,
    timings: false,
    resolution_nanos: 1,
};

fuzz_target!(|input: &[u8]| import::check(ImportFormat::Pyscard, CAPABILITIES, input));
