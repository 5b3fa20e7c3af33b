//! Differences between dialogues, explained in decoded terms.
//!
//! [`diff`] aligns the exchanges of two traces (longest common subsequence over the
//! commands) and says what changed, the way a person would: `READ RECORD record 1 of SFI
//! 2: 5F24 Application Expiration Date 281231 (2028-12-31) → 291231 (2029-12-31)`, `SW
//! 9000 (success) → 6A82 (file not found)`, or which exchanges only one side has.
//! [`explain_response`] is the same explanation for one response, used when a card is
//! checked against a recording.

use crate::apdu::{CommandView, StatusWord};
use crate::describe::describe_command;
use crate::tlv::{self, TagNumber, Tlv, Value};

use super::format::format_pattern;
use super::{Event, Exchange, Pattern, Trace};

/// Above this many cells the alignment falls back to pairing exchanges in order, so a
/// diff of two huge traces stays linear in memory.
const MAX_ALIGNMENT_CELLS: usize = 4_000_000;

/// One exchange of a trace with the line it came from (0 when unknown).
#[derive(Debug, Clone, Copy)]
pub struct Located<'a> {
    /// Line in the trace file.
    pub line: usize,
    /// The exchange.
    pub exchange: &'a Exchange,
}

/// The exchanges of a trace (lines unknown when the trace was built in memory).
pub fn exchanges_of(trace: &Trace) -> Vec<Located<'_>> {
    trace
        .events
        .iter()
        .filter_map(|event| match event {
            Event::Exchange(exchange) => Some(Located { line: 0, exchange }),
            _ => None,
        })
        .collect()
}

/// The differences between two traces, one explanation per line; empty when they hold
/// the same dialogue (comments, timings and header aside).
pub fn diff(a: &Trace, b: &Trace) -> Vec<String> {
    let mut out = Vec::new();
    let (atr_a, atr_b) = (a.first_atr(), b.first_atr());
    if atr_a != atr_b {
        out.push(format!(
            "ATR: {} → {}",
            atr_a.map_or_else(|| "(none)".to_owned(), format_pattern),
            atr_b.map_or_else(|| "(none)".to_owned(), format_pattern)
        ));
    }
    out.extend(diff_exchanges(&exchanges_of(a), &exchanges_of(b)));
    out
}

/// The differences between two lists of exchanges.
pub fn diff_exchanges(a: &[Located<'_>], b: &[Located<'_>]) -> Vec<String> {
    let pairs = align(a, b);
    let mut out = Vec::new();
    for pair in pairs {
        match pair {
            (Some(x), Some(y)) => {
                let name = command_name(&x.exchange.command);
                if x.exchange.command != y.exchange.command {
                    out.push(format!(
                        "{name}: command {} → {}",
                        format_pattern(&x.exchange.command),
                        format_pattern(&y.exchange.command)
                    ));
                }
                if x.exchange.response != y.exchange.response {
                    for line in explain_response(
                        &x.exchange.response,
                        &y.exchange.response.to_bytes_filled(0),
                    ) {
                        out.push(format!("{name}: {line}"));
                    }
                }
            }
            (Some(x), None) => out.push(format!(
                "only in the first: {} ({})",
                command_name(&x.exchange.command),
                format_pattern(&x.exchange.command)
            )),
            (None, Some(y)) => out.push(format!(
                "only in the second: {} ({})",
                command_name(&y.exchange.command),
                format_pattern(&y.exchange.command)
            )),
            (None, None) => {}
        }
    }
    out
}

/// What differs between an expected response (a pattern: wildcards match anything) and
/// a received one, in decoded terms; empty when they match.
pub fn explain_response(expected: &Pattern, received: &[u8]) -> Vec<String> {
    if expected.matches(received) {
        return Vec::new();
    }
    let mut out = Vec::new();
    let expected_bytes = expected.to_bytes_filled(0);
    let (expected_data, expected_sw) = split_sw(&expected_bytes);
    let (received_data, received_sw) = split_sw(received);
    if expected_sw != received_sw {
        out.push(format!(
            "SW {} → {}",
            describe_sw(expected_sw),
            describe_sw(received_sw)
        ));
    }
    if received_data.is_empty() && expected_sw != received_sw {
        // An error answer carries no data: the status word says it all.
        return out;
    }
    let known = known_bytes(expected);
    let data_differs = expected_data.len() != received_data.len()
        || expected_data
            .iter()
            .zip(received_data)
            .zip(&known)
            .any(|((e, r), k)| *k && e != r);
    if !data_differs {
        return out;
    }
    match (tlv::parse(expected_data), tlv::parse(received_data)) {
        (Ok(before), Ok(after)) if !before.is_empty() || !after.is_empty() => {
            let lines = tlv_differences(&before, &after, &wildcard_tags(expected_data, &known));
            if lines.is_empty() {
                out.push(format!(
                    "data {} → {}",
                    hex::encode_upper(expected_data),
                    hex::encode_upper(received_data)
                ));
            }
            out.extend(lines);
        }
        _ => {
            let offset = expected.first_mismatch(received).unwrap_or(0);
            out.push(format!(
                "data differs from byte {offset}: {} → {}",
                format_pattern(expected),
                hex::encode_upper(received)
            ));
        }
    }
    out
}

fn split_sw(bytes: &[u8]) -> (&[u8], Option<u16>) {
    match bytes.len().checked_sub(2) {
        Some(at) => {
            let (data, sw) = bytes.split_at(at);
            (data, Some(u16::from_be_bytes([sw[0], sw[1]])))
        }
        None => (bytes, None),
    }
}

fn describe_sw(sw: Option<u16>) -> String {
    match sw {
        Some(sw) => format!("{sw:04X} ({})", StatusWord::from_u16(sw).meaning()),
        None => "(none)".to_owned(),
    }
}

/// For each data byte of the pattern, whether it is known.
fn known_bytes(pattern: &Pattern) -> Vec<bool> {
    let mut out = Vec::with_capacity(pattern.len());
    for segment in &pattern.segments {
        match segment {
            super::Segment::Bytes(bytes) => out.extend(std::iter::repeat_n(true, bytes.len())),
            super::Segment::Any(len) | super::Segment::Redacted { len, .. } => {
                out.extend(std::iter::repeat_n(false, *len));
            }
        }
    }
    out
}

/// Tags whose value bytes are wildcards in the expected data (so any value matches).
fn wildcard_tags(data: &[u8], known: &[bool]) -> Vec<TagNumber> {
    tlv::ber::primitive_value_ranges(data)
        .into_iter()
        .filter(|(_, range)| {
            range
                .clone()
                .any(|index| !known.get(index).copied().unwrap_or(true))
        })
        .map(|(tag, _)| tag)
        .collect()
}

/// Primitive objects in document order with their tag paths.
fn flatten(tlvs: &[Tlv], out: &mut Vec<(TagNumber, Vec<u8>)>) {
    for object in tlvs {
        match object.value() {
            Value::Primitive(bytes) => out.push((object.tag(), bytes.clone())),
            Value::Constructed(children) => flatten(children, out),
        }
    }
}

/// Tag-by-tag differences: changed values, objects only before or only after.
fn tlv_differences(before: &[Tlv], after: &[Tlv], ignored: &[TagNumber]) -> Vec<String> {
    let (mut old, mut new) = (Vec::new(), Vec::new());
    flatten(before, &mut old);
    flatten(after, &mut new);
    let mut out = Vec::new();
    let mut used = vec![false; new.len()];
    for (tag, value) in &old {
        let found = new
            .iter()
            .enumerate()
            .find(|(index, (other, _))| other == tag && !used[*index]);
        match found {
            Some((index, (_, other_value))) => {
                used[index] = true;
                if value != other_value && !ignored.contains(tag) {
                    out.push(format!(
                        "{} {} {} → {}",
                        tlv::ber::tag_hex(*tag),
                        tag_name(*tag),
                        show_value(*tag, value),
                        show_value(*tag, other_value)
                    ));
                }
            }
            None => out.push(format!(
                "{} {} removed (was {})",
                tlv::ber::tag_hex(*tag),
                tag_name(*tag),
                show_value(*tag, value)
            )),
        }
    }
    for ((tag, value), was_used) in new.iter().zip(used) {
        if !was_used {
            out.push(format!(
                "{} {} added: {}",
                tlv::ber::tag_hex(*tag),
                tag_name(*tag),
                show_value(*tag, value)
            ));
        }
    }
    out
}

fn tag_name(tag: TagNumber) -> &'static str {
    tlv::dictionary::lookup(tag).map_or("(unknown tag)", |info| info.name)
}

fn show_value(tag: TagNumber, value: &[u8]) -> String {
    let hex = hex::encode_upper(value);
    match tlv::decode_value(tag, value) {
        Some(decoded) if decoded != hex && !tlv::decode::decoding_shows_value(tag) => {
            format!("{hex} ({decoded})")
        }
        Some(decoded) => decoded,
        None => hex,
    }
}

/// The command's name and parameters, or its hex when it is not a command APDU.
fn command_name(command: &Pattern) -> String {
    let bytes = command.to_bytes_filled(0);
    CommandView::parse(&bytes)
        .map(|view| describe_command(&view.to_owned()))
        .unwrap_or_else(|_| format_pattern(command))
}

/// Pairs exchanges: a longest common subsequence over equal commands, and within the
/// gaps between matches, exchanges with the same header (CLA INS P1 P2) paired in order.
fn align<'a>(
    a: &[Located<'a>],
    b: &[Located<'a>],
) -> Vec<(Option<Located<'a>>, Option<Located<'a>>)> {
    let (n, m) = (a.len(), b.len());
    let anchors: Vec<(usize, usize)> = if n.saturating_mul(m) <= MAX_ALIGNMENT_CELLS {
        lcs(a, b)
    } else {
        Vec::new()
    };
    let mut out = Vec::new();
    let (mut i, mut j) = (0usize, 0usize);
    for (ai, bj) in anchors.into_iter().chain(std::iter::once((n, m))) {
        pair_gap(&a[i..ai], &b[j..bj], &mut out);
        if ai < n && bj < m {
            out.push((Some(a[ai]), Some(b[bj])));
        }
        i = ai + 1;
        j = bj + 1;
    }
    out
}

/// Inside a gap: same-header exchanges pair up in order, the rest stand alone.
fn pair_gap<'a>(
    a: &[Located<'a>],
    b: &[Located<'a>],
    out: &mut Vec<(Option<Located<'a>>, Option<Located<'a>>)>,
) {
    let header = |located: &Located<'_>| {
        let bytes = located.exchange.command.to_bytes_filled(0);
        bytes.get(..4).map(<[u8]>::to_vec)
    };
    let mut j = 0usize;
    for x in a {
        match b[j..].iter().position(|y| header(y) == header(x)) {
            Some(offset) => {
                for y in &b[j..j + offset] {
                    out.push((None, Some(*y)));
                }
                out.push((Some(*x), Some(b[j + offset])));
                j += offset + 1;
            }
            None => out.push((Some(*x), None)),
        }
    }
    for y in &b[j..] {
        out.push((None, Some(*y)));
    }
}

/// Indices of a longest common subsequence of equal commands.
fn lcs(a: &[Located<'_>], b: &[Located<'_>]) -> Vec<(usize, usize)> {
    let (n, m) = (a.len(), b.len());
    let width = m + 1;
    let mut table = vec![0u32; (n + 1) * width];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            table[i * width + j] = if a[i].exchange.command == b[j].exchange.command {
                table[(i + 1) * width + j + 1] + 1
            } else {
                table[(i + 1) * width + j].max(table[i * width + j + 1])
            };
        }
    }
    let mut out = Vec::new();
    let (mut i, mut j) = (0usize, 0usize);
    while i < n && j < m {
        if a[i].exchange.command == b[j].exchange.command {
            out.push((i, j));
            i += 1;
            j += 1;
        } else if table[(i + 1) * width + j] >= table[i * width + j + 1] {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange(command: &str, response: &str) -> Event {
        Event::Exchange(Exchange {
            command: Pattern::exact(hex::decode(command).unwrap()),
            response: Pattern::exact(hex::decode(response).unwrap()),
            elapsed: None,
            note: None,
        })
    }

    fn trace(events: Vec<Event>) -> Trace {
        Trace {
            header: super::super::Header::default(),
            events,
        }
    }

    #[test]
    fn a_changed_record_is_explained_tag_by_tag() {
        let a = trace(vec![exchange("00B2011400", "70065F24032512319000")]);
        let b = trace(vec![exchange("00B2011400", "70065F24032612319000")]);
        assert_eq!(
            diff(&a, &b),
            vec![
                "READ RECORD record 1 of SFI 2: 5F24 Application Expiration Date 251231 (2025-12-31) → 261231 (2026-12-31)"
            ]
        );
    }

    #[test]
    fn status_words_and_missing_exchanges() {
        let a = trace(vec![
            exchange("00A4040007A000000042101000", "6F009000"),
            exchange("80CA9F3600", "9F360200019000"),
        ]);
        let b = trace(vec![
            exchange("00A4040007A000000042101000", "6A82"),
            exchange("80CA9F1700", "9F1701039000"),
        ]);
        let lines = diff(&a, &b);
        assert_eq!(
            lines,
            vec![
                format!(
                    "SELECT by DF name A0000000421010 (first or only occurrence, return FCI): \
                     SW 9000 (success) → 6A82 ({})",
                    StatusWord::from_u16(0x6A82).meaning()
                ),
                "only in the first: GET DATA 9F36 Application Transaction Counter (ATC) (80CA9F3600)"
                    .to_owned(),
                "only in the second: GET DATA 9F17 Personal Identification Number (PIN) Try Counter (80CA9F1700)"
                    .to_owned(),
            ]
        );
    }

    #[test]
    fn identical_dialogues_have_no_differences() {
        let a = trace(vec![exchange("00B2011400", "70009000")]);
        assert!(diff(&a, &a.clone()).is_empty());
    }

    #[test]
    fn wildcards_in_the_expected_response_match_anything() {
        let mut expected = Pattern::exact(hex::decode("9F3602").unwrap());
        expected.segments.push(super::super::Segment::Any(2));
        expected
            .segments
            .push(super::super::Segment::Bytes(vec![0x90, 0x00]));
        assert!(explain_response(&expected, &hex::decode("9F360200059000").unwrap()).is_empty());
        let lines = explain_response(&expected, &hex::decode("9F360200056A88").unwrap());
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].starts_with("SW 9000"), "{lines:?}");
    }
}
