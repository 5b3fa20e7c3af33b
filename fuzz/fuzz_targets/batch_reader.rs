//! Fuzz target `batch_reader`: the remittance batch reader
//! (`telepay::acquirer::batch::read_batch`, format in `docs/telecollection.md`), the
//! parser of untrusted input a telecollection centre runs on every batch it receives.
//!
//! On arbitrary bytes:
//!
//! - `read_batch` never panics and gives `Ok` or a reading error: never `Read` (a slice
//!   cannot fail), `Write` or `Unwritable` (writer errors); the error's line is between
//!   1 and the number of lines + 1;
//! - the outcome does not depend on how the input arrives: read through a `BufReader`
//!   whose capacity depends on the input (1 to 7 bytes, so lines straddle fills), the
//!   same records come out and the same error (by its message) or the same batch;
//! - records are handed out only for lines that parsed, one per line, and never more
//!   than the header announces;
//! - on success: the records seen are exactly `header.records`, their per-currency
//!   counts and sums (added here independently, overflow-checked) are the header's
//!   totals, the trailer repeats the header's count and totals and its `bytes` is the
//!   input's length; and writing the header and the records again with `BatchWriter`
//!   gives the input byte for byte (every value has exactly one spelling) and the same
//!   trailer (checksum included).
//!
//! A mutated batch almost always fails its SHA-256 first, which would hide everything
//! the checksum guards. So when the input fails with `ChecksumMismatch` (everything else
//! held), the target replaces the trailer's declared checksum with the computed one the
//! error names and checks that input too: it must then read `Ok`, or fail only with
//! `TrailingData` on the line after the trailer. This lets the fuzzer reach the success
//! path and the round trip with records it changed.
#![no_main]

use std::collections::BTreeMap;
use std::io::BufReader;

use libfuzzer_sys::fuzz_target;
use telepay::acquirer::batch::{BatchError, BatchRecord, BatchWriter, VerifiedBatch, read_batch};

fuzz_target!(|input: &[u8]| {
    if let Some((fixed, trailer_line)) = check(input) {
        match read(&fixed[..]).outcome {
            Ok(_) => {}
            Err(BatchError::TrailingData { line }) if line == trailer_line + 1 => {}
            Err(error) => panic!("with the computed checksum in line {trailer_line}: {error}"),
        }
        assert!(
            check(&fixed).is_none(),
            "a corrected checksum mismatched again"
        );
    }
});

/// What one reading gave: the records handed out, and the outcome.
struct Reading {
    records: Vec<BatchRecord>,
    outcome: Result<VerifiedBatch, BatchError>,
}

fn read(input: impl std::io::BufRead) -> Reading {
    let mut records = Vec::new();
    let outcome = read_batch(input, |record| records.push(record.clone()));
    Reading { records, outcome }
}

/// Lines as the reader numbers them: each `\n` ends one; bytes after the last `\n` are
/// one more.
fn line_count(input: &[u8]) -> u64 {
    let newlines = input.iter().filter(|&&byte| byte == b'\n').count() as u64;
    let unterminated = u64::from(!input.is_empty() && input.last() != Some(&b'\n'));
    newlines + unterminated
}

/// Checks `input`; when the only thing wrong was the checksum, returns the input with
/// the trailer's checksum corrected, and the trailer's line.
fn check(input: &[u8]) -> Option<(Vec<u8>, u64)> {
    let whole = read(input);
    let capacity = input.len() % 7 + 1;
    let pieces = read(BufReader::with_capacity(capacity, input));
    assert!(
        pieces.records == whole.records,
        "a {capacity}-byte buffer hands out other records"
    );
    match (&whole.outcome, &pieces.outcome) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "a {capacity}-byte buffer reads another batch"),
        (Err(a), Err(b)) => assert_eq!(
            a.to_string(),
            b.to_string(),
            "a {capacity}-byte buffer fails differently"
        ),
        (a, b) => panic!("the whole input gives {a:?}, a {capacity}-byte buffer {b:?}"),
    }

    let lines = line_count(input);
    match whole.outcome {
        Ok(batch) => {
            check_batch(input, &batch, &whole.records);
            None
        }
        Err(error) => {
            let line = error.line();
            assert!(
                (1..=lines + 1).contains(&line),
                "error line {line} outside 1..={}: {error}",
                lines + 1
            );
            // Records come from the lines between the header and the failing line, at
            // most one per line; the failing line's own record is never handed out.
            assert!(
                whole.records.len() as u64 <= line.saturating_sub(2),
                "{} records handed out before line {line}",
                whole.records.len()
            );
            match error {
                BatchError::Read { .. }
                | BatchError::Write { .. }
                | BatchError::Unwritable { .. } => {
                    panic!("a writer's or an I/O error from a slice: {error}")
                }
                BatchError::ChecksumMismatch {
                    line,
                    declared,
                    computed,
                } => Some((with_checksum(input, line, &declared, &computed), line)),
                _ => None,
            }
        }
    }
}

/// The input with `declared` replaced by `computed` in line `line` (1-based).
fn with_checksum(input: &[u8], line: u64, declared: &str, computed: &str) -> Vec<u8> {
    let mut start = 0usize;
    for _ in 1..line {
        let next = input[start..]
            .iter()
            .position(|&byte| byte == b'\n')
            .expect("the mismatch's line exists");
        start += next + 1;
    }
    let end = input[start..]
        .iter()
        .position(|&byte| byte == b'\n')
        .map_or(input.len(), |at| start + at);
    let text = &input[start..end];
    let at = text
        .windows(declared.len())
        .rposition(|window| window == declared.as_bytes())
        .expect("the trailer holds the checksum it declares");
    let mut fixed = Vec::with_capacity(input.len());
    fixed.extend_from_slice(&input[..start + at]);
    fixed.extend_from_slice(computed.as_bytes());
    fixed.extend_from_slice(&input[start + at + declared.len()..]);
    fixed
}

fn check_batch(input: &[u8], batch: &VerifiedBatch, records: &[BatchRecord]) {
    let header = &batch.header;
    let trailer = &batch.trailer;
    assert_eq!(
        records.len() as u64,
        header.records,
        "records seen vs header"
    );
    assert_eq!(trailer.records, header.records, "trailer vs header count");
    assert_eq!(trailer.totals, header.totals, "trailer vs header totals");
    assert_eq!(
        trailer.bytes,
        input.len() as u64,
        "trailer bytes vs input length"
    );

    // The records' own sums, per currency, added here.
    let mut sums: BTreeMap<u16, (u64, u64)> = BTreeMap::new();
    for record in records {
        let entry = sums.entry(record.currency).or_default();
        entry.0 = entry.0.checked_add(1).expect("a count beyond 64 bits");
        entry.1 = entry
            .1
            .checked_add(record.amount_minor)
            .expect("the reader accepted a total beyond 64 bits");
    }
    let declared: Vec<(u16, u64, u64)> = header
        .totals
        .iter()
        .map(|total| (total.currency, total.records, total.total_minor))
        .collect();
    let seen: Vec<(u16, u64, u64)> = sums
        .into_iter()
        .map(|(currency, (count, total))| (currency, count, total))
        .collect();
    assert_eq!(declared, seen, "header totals vs the records' sums");

    // One spelling per value: written again, the batch is the same bytes.
    let mut writer = BatchWriter::new(Vec::new(), header).expect("a header read is writable");
    for record in records {
        writer
            .write_record(record)
            .expect("a record read is writable");
    }
    let (bytes, written) = writer.finish().expect("a batch read is complete");
    assert!(
        bytes == input,
        "written again, the batch differs:\n{}\n---\n{}",
        String::from_utf8_lossy(input),
        String::from_utf8_lossy(&bytes)
    );
    assert_eq!(&written, trailer, "written again, another trailer");
}
