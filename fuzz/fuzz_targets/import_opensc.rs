//! Fuzz target `import_opensc`: `telepay::trace::import` of an OpenSC debug log
//! (`src/libopensc/log.c`, `sc_apdu_log`) (`docs/trace-import.md`, "opensc"), on
//! arbitrary bytes.
//!
//! The importer reads `Outgoing APDU (N bytes):` / `Incoming APDU (N bytes):` dumps
//! under the three record prefixes (Unix, Windows, before 0.16), the announced length,
//! times across midnight.
//!
//! Checked (the shared properties of `common/import.rs`): `text_from_bytes` accepts
//! exactly UTF-8 and locates the first bad byte; `detect` never panics and `auto`
//! imports as the format it names; the masked and recorded imports never panic, agree
//! on success or on the error, and the error names the origin and a line within the
//! input; an imported trace has non-empty commands, responses with SW1 SW2 (ISO 7816-4
//! §5.1), writes and reads back equal, lists at most `MAX_SKIPPED_LINES` skipped lines
//! in order; masking only hides bytes. For this format: it logs no ATR; timings are
//! differences of record times in milliseconds.
#![no_main]

#[path = "common/import.rs"]
mod import;

use libfuzzer_sys::fuzz_target;
use telepay::trace::import::ImportFormat;

/// What the `opensc` log holds: it logs no ATR; timings are differences of record times
/// in milliseconds.
const CAPABILITIES: import::Capabilities = import::Capabilities {
    atr: false,
    timings: true,
    resolution_nanos: 1_000_000,
};

fuzz_target!(|input: &[u8]| import::check(ImportFormat::OpenSc, CAPABILITIES, input));
