//! Fuzz target `import_apdu4j`: `telepay::trace::import` of an apdu4j `.dump` file
//! (both generations) (`docs/trace-import.md`, "apdu4j"), on arbitrary bytes.
//!
//! The importer reads hex line pairs, `# Received in TIME` / `# TIME` timings, `#
//! ATR:`, `# PROTOCOL:`, `# Using`, `# Generated on … by …` dates (converted to UTC),
//! `# UID:`.
//!
//! Checked (the shared properties of `common/import.rs`): `text_from_bytes` accepts
//! exactly UTF-8 and locates the first bad byte; `detect` never panics and `auto`
//! imports as the format it names; the masked and recorded imports never panic, agree
//! on success or on the error, and the error names the origin and a line within the
//! input; an imported trace has non-empty commands, responses with SW1 SW2 (ISO 7816-4
//! §5.1), writes and reads back equal, lists at most `MAX_SKIPPED_LINES` skipped lines
//! in order; masking only hides bytes. For this format: it logs ATRs and millisecond
//! timings with decimals.
#![no_main]

#[path = "common/import.rs"]
mod import;

use libfuzzer_sys::fuzz_target;
use telepay::trace::import::ImportFormat;

/// What the `apdu4j` log holds: it logs ATRs and millisecond timings with decimals.
const CAPABILITIES: import::Capabilities = import::Capabilities {
    atr: true,
    timings: true,
    resolution_nanos: 1,
};

fuzz_target!(|input: &[u8]| import::check(ImportFormat::Apdu4j, CAPABILITIES, input));
