//! Trace parsing speed and memory, against a floor measured in the same run. Prints
//! figures and asserts nothing about time. Run with
//! `cargo bench -p telepay --bench trace_parse` (`TRACE_BENCH_MB=50` for a smaller file,
//! `TRACE_BENCH_KEEP=1` to keep the generated file for profiling).
//!
//! - Generates a ~200 MB `.trace` in the temporary directory, as the recorder writes it
//!   (each APDU one hex group, split only where a mask applies): a card read and
//!   purchase repeated (SELECT PPSE and AID with a T=0 GET RESPONSE, GPO, READ RECORDs of
//!   100 to 200 bytes with the PAN redacted, GET DATA with a wildcard ATC, VERIFY with a
//!   redacted PIN block, two GENERATE ACs with wildcards), a duration on every response,
//!   a comment per session; varying bytes from a fixed-seed generator.
//! - The floor: reading the file line by line with `BufRead::read_line` into one reused
//!   `String` (what any line-based reader must at least do: read, find line breaks,
//!   check UTF-8).
//! - The parser: [`Reader::read_event`] reading every event into one reused [`Event`]
//!   (the same discipline as the floor's reused `String`); and, for comparison, the
//!   [`Reader`] as an [`Iterator`] of owned events (one allocation per segment).
//! - Peak memory: `VmHWM` from `/proc/self/status` before and after parsing. Goal:
//!   constant, under 32 MB, whatever the file size.
//!
//! Goal: parser throughput at least half the floor's (ratio ≥ 0.5).

use std::fs::File;
use std::hint::black_box;
use std::io::{BufRead, BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use telepay::trace::format::{Reader, Writer};
use telepay::trace::{Event, Exchange, Header, Pattern, Secrets, Segment};

/// Buffer size of both readers, so that they do the same system calls.
const BUFFER: usize = 1 << 16;
/// Each measurement runs this many times; the best (least disturbed) run is reported.
const ROUNDS: usize = 5;

/// A small deterministic generator (xorshift64*): varying bytes without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

fn hex(text: &str) -> Vec<u8> {
    hex::decode(text).expect("benchmark constants are hex")
}

/// A mask the recorder applies to a byte range.
enum Mask {
    /// A varying field (`??`): unpredictable number, ATC, cryptogram.
    Any,
    /// A withheld field (`<name:N>`): a PIN block, a PAN.
    Redacted(&'static str),
}

/// What the recorder writes for `bytes` with `masks` (sorted, disjoint ranges): one
/// exact segment per unmasked run, one wildcard or redaction per mask.
fn recorded(bytes: &[u8], masks: &[(std::ops::Range<usize>, Mask)]) -> Pattern {
    let mut segments = Vec::new();
    let mut at = 0;
    for (range, mask) in masks {
        if range.start > at {
            segments.push(Segment::Bytes(bytes[at..range.start].to_vec()));
        }
        segments.push(match mask {
            Mask::Any => Segment::Any(range.len()),
            Mask::Redacted(name) => Segment::Redacted {
                name: (*name).to_owned(),
                len: range.len(),
            },
        });
        at = range.end;
    }
    if at < bytes.len() {
        segments.push(Segment::Bytes(bytes[at..].to_vec()));
    }
    Pattern { segments }
}

fn exchange(command: Pattern, response: Pattern, nanos: u64, note: Option<&str>) -> Event {
    Event::Exchange(Exchange {
        command,
        response,
        elapsed: Some(Duration::from_nanos(nanos)),
        note: note.map(str::to_owned),
    })
}

/// `bytes` then `rest`.
fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// A TLV with a one- or two-byte length (BER, EMV Book 3 Annex B).
fn tlv(tag: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = tag.to_vec();
    if value.len() > 0x7F {
        out.extend([0x81, value.len() as u8]);
    } else {
        out.push(value.len() as u8);
    }
    out.extend_from_slice(value);
    out
}

/// One card session as the recorder writes it: the exchanges of an EMV card read and
/// purchase (SELECT PPSE, SELECT AID with a T=0 GET RESPONSE, GPO, four READ RECORDs, GET
/// DATA, VERIFY, two GENERATE ACs), masks on the varying and secret fields, a duration
/// on every response and a comment per session.
fn session(rng: &mut Rng, number: u64) -> Vec<Event> {
    const SW_OK: &[u8] = &[0x90, 0x00];
    let aid = hex("A0000000421010");
    let mut events = vec![
        Event::Comment(format!("session {number}: card read and purchase")),
        Event::AnswerToReset(Pattern::exact(hex("3B6800000073C84013009000"))),
    ];
    let mut push = |command: Pattern, response: Pattern, nanos: u64| {
        events.push(exchange(command, response, nanos, None));
    };
    // SELECT PPSE (answered directly), SELECT AID under T=0 (61xx, GET RESPONSE).
    let ppse = b"2PAY.SYS.DDF01";
    let fci = tlv(
        &[0x6F],
        &cat(&[
            &tlv(&[0x84], ppse),
            &tlv(
                &[0xA5],
                &tlv(
                    &[0xBF, 0x0C],
                    &tlv(&[0x61], &cat(&[&tlv(&[0x4F], &aid), &tlv(&[0x87], &[1])])),
                ),
            ),
        ]),
    );
    push(
        Pattern::exact(cat(&[&hex("00A404000E"), ppse, &[0x00]])),
        Pattern::exact(cat(&[&fci, SW_OK])),
        180_000 + rng.next() % 1000,
    );
    push(
        Pattern::exact(cat(&[&hex("00A4040007"), &aid])),
        Pattern::exact(hex("6123")),
        134_000 + rng.next() % 1000,
    );
    let app_fci = tlv(
        &[0x6F],
        &cat(&[
            &tlv(&[0x84], &aid),
            &tlv(
                &[0xA5],
                &cat(&[
                    &tlv(&[0x50], b"CB"),
                    &tlv(&[0x87], &[1]),
                    &tlv(&[0x9F, 0x38], &hex("9F66049F02069F37045F2A02")),
                ]),
            ),
        ]),
    );
    push(
        Pattern::exact(hex("00C0000023")),
        Pattern::exact(cat(&[&app_fci, SW_OK])),
        1_500_000 + rng.next() % 100_000,
    );
    // GET PROCESSING OPTIONS with the PDOL data: the unpredictable number varies.
    let pdol = cat(&[
        &hex("36000000"),
        &hex("000000001000"),
        &rng.bytes(4),
        &hex("0978"),
    ]);
    let gpo = cat(&[&hex("80A8000012"), &tlv(&[0x83], &pdol), &[0x00]]);
    let un = 5 + 2 + 4 + 6;
    push(
        recorded(&gpo, &[(un..un + 4, Mask::Any)]),
        Pattern::exact(hex("770A820219809404080104009000")),
        2_250_000 + rng.next() % 100_000,
    );
    // READ RECORD: EMV records of 100 to 200 bytes; the PAN is withheld.
    for record in 1..=4u8 {
        let mut body = tlv(&[0x5A], &rng.bytes(8));
        body.extend(tlv(&[0x5F, 0x24], &hex("271231")));
        body.extend(tlv(&[0x8C], &rng.bytes(27)));
        body.extend(tlv(
            &[0x9F, 0x46],
            &rng.bytes(60 + 30 * usize::from(record)),
        ));
        let response = cat(&[&tlv(&[0x70], &body), SW_OK]);
        let pan = if response[1] == 0x81 { 5..13 } else { 4..12 };
        push(
            Pattern::exact(vec![0x00, 0xB2, record, 0x0C, 0x00]),
            recorded(&response, &[(pan, Mask::Redacted("pan"))]),
            880_000 + rng.next() % 200_000,
        );
    }
    // GET DATA ATC (varies) and PIN try counter.
    push(
        Pattern::exact(hex("80CA9F3600")),
        recorded(
            &cat(&[&hex("9F3602"), &rng.bytes(2), SW_OK]),
            &[(3..5, Mask::Any)],
        ),
        95_000 + rng.next() % 1000,
    );
    push(
        Pattern::exact(hex("80CA9F1700")),
        Pattern::exact(hex("9F1701039000")),
        90_000 + rng.next() % 1000,
    );
    // VERIFY with a plaintext PIN block (EMV Book 3 §6.5.12): redacted.
    let verify = cat(&[&hex("0020008008"), &rng.bytes(8)]);
    push(
        recorded(&verify, &[(5..13, Mask::Redacted("pin-block"))]),
        Pattern::exact(hex("9000")),
        3_000_000 + rng.next() % 100_000,
    );
    // GENERATE AC twice (ARQC then TC): CDOL data with the unpredictable number, the
    // response's ATC and cryptogram vary.
    for p1 in [0x80u8, 0x40] {
        let cdol = cat(&[
            &hex("000000001000"),
            &hex("000000000000"),
            &hex("0250"),
            &hex("0000000000"),
            &hex("0978"),
            &hex("261125"),
            &[0x00],
            &rng.bytes(4),
        ]);
        let command = cat(&[&[0x80, 0xAE, p1, 0x00, 0x1D], &cdol, &[0x00]]);
        let response = cat(&[
            &hex("771E9F270180"),
            &tlv(&[0x9F, 0x36], &rng.bytes(2)),
            &tlv(&[0x9F, 0x26], &rng.bytes(8)),
            &tlv(&[0x9F, 0x10], &hex("06011203A41000")),
            SW_OK,
        ]);
        push(
            recorded(&command, &[(30..34, Mask::Any)]),
            recorded(&response, &[(9..11, Mask::Any), (14..22, Mask::Any)]),
            41_000_000 + rng.next() % 1_000_000,
        );
    }
    events
}

/// Writes a trace of about `target` bytes; returns its size.
fn generate(path: &Path, target: u64) -> u64 {
    let file = File::create(path).expect("create the benchmark trace");
    let header = Header {
        version: 1,
        reader: Some("sim:cb?seed=1".into()),
        protocol: Some("T=0".into()),
        profile: Some("cb".into()),
        date: Some("2026-11-25T17:00:00Z".into()),
        secrets: Secrets::Masked,
        extra: vec![("tool".into(), "trace_parse bench".into())],
    };
    let mut writer =
        Writer::new(BufWriter::with_capacity(BUFFER, file), &header).expect("write the header");
    let mut rng = Rng(0x7E1E_9A70_2026_1125);
    let mut number = 0u64;
    let mut written = 0u64;
    // Sessions differ only in random bytes, not in length: the size of one tells when
    // to stop; the exact size is read from the file at the end.
    let per_session = {
        let mut probe = Writer::new(Vec::new(), &Header::default()).expect("probe");
        for event in session(&mut Rng(1), 0) {
            probe.write_event(&event).expect("probe event");
        }
        probe.into_inner().len() as u64
    };
    while written < target {
        for event in session(&mut rng, number) {
            writer.write_event(&event).expect("write an event");
        }
        number += 1;
        written += per_session;
    }
    writer.flush().expect("flush");
    drop(writer);
    std::fs::metadata(path).expect("size").len()
}

/// `VmHWM` (peak resident memory) from `/proc/self/status`, in kB.
fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Times `body`, in seconds, and what it returned.
fn timed<T>(body: impl FnOnce() -> T) -> (f64, T) {
    let started = Instant::now();
    let value = body();
    (started.elapsed().as_secs_f64(), value)
}

fn floor(path: &Path) -> (u64, u64) {
    let mut input = BufReader::with_capacity(BUFFER, File::open(path).expect("open"));
    let mut line = String::new();
    let (mut lines, mut bytes) = (0u64, 0u64);
    loop {
        line.clear();
        let read = input.read_line(&mut line).expect("read a line");
        if read == 0 {
            break;
        }
        lines += 1;
        bytes += black_box(&line).len() as u64;
    }
    (lines, bytes)
}

/// The parser as a stream of events read into one reused [`Event`]
/// ([`Reader::read_event`]): the same discipline as the floor's reused `String`.
fn parse(path: &Path) -> (u64, u64) {
    let input = BufReader::with_capacity(BUFFER, File::open(path).expect("open"));
    let mut reader = Reader::new(input, &path.display().to_string()).expect("header");
    let (mut events, mut exchanges) = (0u64, 0u64);
    let mut event = Event::Comment(String::new());
    while reader
        .read_event(&mut event)
        .expect("the generated trace parses")
    {
        if matches!(event, Event::Exchange(_)) {
            exchanges += 1;
        }
        black_box(&event);
        events += 1;
    }
    (events, exchanges)
}

/// The parser as an [`Iterator`] of owned events (each event allocated, then dropped).
fn parse_owned(path: &Path) -> u64 {
    let input = BufReader::with_capacity(BUFFER, File::open(path).expect("open"));
    let reader = Reader::new(input, &path.display().to_string()).expect("header");
    let mut events = 0u64;
    for event in reader {
        black_box(event.expect("the generated trace parses"));
        events += 1;
    }
    events
}

fn main() {
    let megabytes: u64 = std::env::var("TRACE_BENCH_MB")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(200);
    let path: PathBuf =
        std::env::temp_dir().join(format!("telepay-trace-bench-{}.trace", std::process::id()));
    let size = generate(&path, megabytes * 1_000_000);
    let mb = size as f64 / 1e6;
    println!("trace file: {} ({mb:.1} MB)", path.display());

    // Warm the page cache so both measurements read from memory.
    let (lines, _) = floor(&path);
    let before = peak_rss_kb();
    // The measurements alternate round by round, and the best round of each is kept, so
    // that a load from elsewhere on the machine weighs on both alike.
    let (mut floor_seconds, mut parse_seconds, mut owned_seconds) =
        (f64::INFINITY, f64::INFINITY, f64::INFINITY);
    let (mut floor_counts, mut parse_counts, mut owned_events) = ((0, 0), (0, 0), 0);
    for _ in 0..ROUNDS {
        let (seconds, counts) = timed(|| floor(&path));
        floor_seconds = floor_seconds.min(seconds);
        floor_counts = counts;
        let (seconds, counts) = timed(|| parse(&path));
        parse_seconds = parse_seconds.min(seconds);
        parse_counts = counts;
        let (seconds, events) = timed(|| parse_owned(&path));
        owned_seconds = owned_seconds.min(seconds);
        owned_events = events;
    }
    let ((floor_lines, floor_bytes), (events, exchanges)) = (floor_counts, parse_counts);
    let after = peak_rss_kb();
    assert_eq!(owned_events, events, "both ways read every event");
    assert_eq!(
        (floor_lines, floor_bytes),
        (lines, size),
        "the floor read everything"
    );
    if std::env::var_os("TRACE_BENCH_KEEP").is_some() {
        println!("kept: {}", path.display());
    } else {
        std::fs::remove_file(&path).expect("delete the benchmark trace");
    }

    let floor_rate = mb / floor_seconds;
    let parse_rate = mb / parse_seconds;
    let owned_rate = mb / owned_seconds;
    println!("lines: {lines}, events: {events}, exchanges: {exchanges}");
    println!(
        "floor  (BufRead::read_line, reused String): {floor_rate:8.1} MB/s ({floor_seconds:.3} s)"
    );
    println!(
        "parser, Reader::read_event (reused event): {parse_rate:8.1} MB/s ({parse_seconds:.3} s)"
    );
    println!(
        "parser, Reader as Iterator (owned events): {owned_rate:8.1} MB/s ({owned_seconds:.3} s)"
    );
    let ratio = parse_rate / floor_rate;
    let owned_ratio = owned_rate / floor_rate;
    let verdict = if ratio >= 0.5 { "met" } else { "NOT met" };
    println!(
        "ratio parser / floor: {ratio:.2} (goal >= 0.5: {verdict}); iterator: {owned_ratio:.2}"
    );
    match (before, after) {
        (Some(before), Some(after)) => {
            let grown = after.saturating_sub(before);
            let verdict = if after < 32 * 1024 { "met" } else { "NOT met" };
            println!(
                "peak memory (VmHWM): before parsing {:.1} MB, after {:.1} MB, grown {:.1} MB \
                 (goal: constant, under 32 MB: {verdict})",
                before as f64 / 1024.0,
                after as f64 / 1024.0,
                grown as f64 / 1024.0
            );
        }
        _ => println!("peak memory: /proc/self/status not available on this system"),
    }
    println!();
    println!("For docs/benchmarks.md:");
    println!();
    println!("| measurement | result |");
    println!("|---|---|");
    println!("| trace file generated ({lines} lines, {exchanges} exchanges) | {mb:.0} MB |");
    println!("| floor: `BufRead::read_line` into one reused `String` | {floor_rate:.0} MB/s |");
    println!("| `Reader::read_event` into one reused `Event` | {parse_rate:.0} MB/s |");
    println!("| **parser / floor** | **{ratio:.2}** (goal ≥ 0.5: {verdict}) |");
    println!(
        "| `Reader` as an `Iterator` of owned events | {owned_rate:.0} MB/s ({owned_ratio:.2} of the floor) |"
    );
    if let (Some(before), Some(after)) = (before, after) {
        println!(
            "| peak memory (VmHWM) before → after parsing | {:.1} MB → {:.1} MB (+{:.1} MB) |",
            before as f64 / 1024.0,
            after as f64 / 1024.0,
            after.saturating_sub(before) as f64 / 1024.0
        );
    }
}
