//! Fuzz target `tlv`: BER-TLV (ISO 7816-4 §5.2, EMV Book 3 Annex B), value decoding,
//! the pretty-printer and DOLs (EMV Book 3 §5.4), all on the same input.
//!
//! - [`tlv::parse`]: on success every object's [`Tlv::to_bytes`] parses back to exactly
//!   that object, the whole re-encoded list parses back to the list, re-encoding is a
//!   fixed point, and [`tlv::find`] finds every tag of the tree.
//! - [`tlv::render_bytes`] never panics, equals [`tlv::render`] of the tree when the
//!   input parses, writes no trailing spaces, and ends every line with `\n`.
//! - [`tlv::decode_value`] / [`tlv::decode_value_with`] never panic, neither for the
//!   tags and values of the tree nor for a dictionary tag picked by the first two input
//!   bytes applied to the rest (so every decoder is reachable without valid TLV).
//! - [`tlv::ber::visit`] and [`tlv::ber::find_value`] read what `parse` reads: the
//!   same acceptance and error, the same objects depth-first, the same values found.
//! - [`parse_dol`]: on success [`encode_dol`] gives the input back; the data
//!   [`build_dol_data`] builds from the tree's values has [`dol_data_length`] bytes,
//!   [`split_dol_data`] splits it back along the entries, a value of exactly the
//!   requested length is sent unchanged, and a missing or constructed tag is zeros.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use telepay::tlv::dol::{build_dol_data, dol_data_length, encode_dol, parse_dol, split_dol_data};
use telepay::tlv::{self, DecodeContext, TagNumber, Tlv, dictionary};

fuzz_target!(|input: &[u8]| check(input));

fn check(input: &[u8]) {
    let rendered = tlv::render_bytes(input);
    check_render_shape(&rendered);

    check_visit(input);

    let tree = match tlv::parse(input) {
        Ok(tree) => {
            check_tree(&tree, &rendered);
            tree
        }
        Err(e) => {
            let fallback = format!("{} (not BER-TLV: {e})\n", hex_upper(input));
            assert_eq!(rendered, fallback);
            Vec::new()
        }
    };

    let mut primitives = Vec::new();
    collect_primitives(&tree, &mut primitives);
    let ctx = DecodeContext::from_tlvs(&tree);
    for (tag, value) in &primitives {
        let _ = tlv::decode_value(*tag, value);
        let _ = tlv::decode_value_with(*tag, value, &ctx);
    }

    check_dictionary_decoders(input, &ctx);

    let terminal_data: BTreeMap<TagNumber, Vec<u8>> = primitives
        .iter()
        .rev() // the first occurrence wins, as a terminal would keep it
        .map(|(tag, value)| (*tag, value.to_vec()))
        .collect();
    check_dol(input, &terminal_data);
}

/// [`tlv::ber::visit`] and [`tlv::ber::find_value`], the readers that build no tree,
/// against the tree [`tlv::parse`] builds: the same input accepted or refused with the
/// same error, the same objects in depth-first order, and for every tag of the tree the
/// value a search of it finds.
fn check_visit(input: &[u8]) {
    let mut seen = Vec::new();
    let visited = tlv::ber::visit(input, |object| {
        seen.push((object.tag, object.depth, object.bytes().map(<[u8]>::to_vec)));
    });
    match tlv::parse(input) {
        Ok(tree) => {
            assert_eq!(visited, Ok(()));
            let mut expected = Vec::new();
            pre_order(&tree, 0, &mut expected);
            assert_eq!(seen, expected);
            for (tag, _, _) in &expected {
                assert_eq!(
                    tlv::ber::find_value(input, *tag),
                    Ok(tlv::find(&tree, *tag).and_then(Tlv::bytes))
                );
            }
        }
        Err(error) => {
            assert_eq!(visited, Err(error.clone()));
            assert_eq!(tlv::ber::find_value(input, 0x9F26), Err(error));
        }
    }
}

/// Every object of `tlvs` as `visit` shows it: tag, depth, and a primitive's value.
fn pre_order(tlvs: &[Tlv], depth: usize, out: &mut Vec<(TagNumber, usize, Option<Vec<u8>>)>) {
    for tlv in tlvs {
        out.push((tlv.tag(), depth, tlv.bytes().map(<[u8]>::to_vec)));
        pre_order(tlv.children(), depth + 1, out);
    }
}

/// Round trips of a successfully parsed tree.
fn check_tree(tree: &[Tlv], rendered: &str) {
    let mut all = Vec::new();
    for object in tree {
        let bytes = object.to_bytes();
        assert_eq!(
            tlv::parse(&bytes).as_ref(),
            Ok(&vec![object.clone()]),
            "{object:?} does not re-parse from {bytes:02X?}"
        );
        all.extend_from_slice(&bytes);
        let mut tags = Vec::new();
        collect_tags(std::slice::from_ref(object), &mut tags);
        for tag in tags {
            assert!(tlv::find(tree, tag).is_some_and(|t| t.tag() == tag));
        }
    }
    let reparsed = match tlv::parse(&all) {
        Ok(r) => r,
        Err(e) => panic!("re-encoded tree {all:02X?} rejected: {e}"),
    };
    assert_eq!(reparsed, tree);
    let again: Vec<u8> = reparsed.iter().flat_map(Tlv::to_bytes).collect();
    assert_eq!(again, all, "to_bytes is not a fixed point");
    assert_eq!(tlv::render(tree), rendered);
}

/// The pretty-printer's layout promises: lines end with `\n`, none with a space.
fn check_render_shape(rendered: &str) {
    assert!(rendered.is_empty() || rendered.ends_with('\n'));
    for line in rendered.lines() {
        assert!(!line.ends_with(' '), "trailing space in {line:?}");
    }
}

/// A dictionary tag chosen by the first two bytes, decoded over the rest cut to the
/// tag's longest length, so the fuzzer reaches each decoder without building TLV.
fn check_dictionary_decoders(input: &[u8], ctx: &DecodeContext) {
    let all = dictionary::all();
    let Some((&[hi, lo], rest)) = input.split_first_chunk::<2>() else {
        return;
    };
    let index = usize::from(u16::from_be_bytes([hi, lo])) % all.len().max(1);
    let Some(info) = all.get(index) else { return };
    let value = rest.get(..info.max_len.min(rest.len())).unwrap_or(rest);
    let _ = tlv::decode_value(info.tag, value);
    let _ = tlv::decode_value_with(info.tag, value, ctx);
    assert!(dictionary::lookup(info.tag).is_some_and(|i| i.tag == info.tag));
}

/// DOL parsing, re-encoding, data building and splitting.
fn check_dol(input: &[u8], terminal_data: &BTreeMap<TagNumber, Vec<u8>>) {
    let entries = match parse_dol(input) {
        Ok(entries) => entries,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    assert_eq!(
        encode_dol(&entries).as_deref(),
        Some(input),
        "DOL re-encoding"
    );
    let data = build_dol_data(&entries, terminal_data);
    assert_eq!(data.len(), dol_data_length(&entries));
    let pieces = match split_dol_data(&entries, &data) {
        Ok(p) => p,
        Err(e) => panic!("built DOL data does not split back: {e}"),
    };
    assert_eq!(pieces.len(), entries.len());
    for (entry, (tag, piece)) in entries.iter().zip(&pieces) {
        assert_eq!(entry.tag, *tag);
        assert_eq!(piece.len(), entry.length);
        let value = terminal_data
            .get(&entry.tag)
            .filter(|_| !tlv::ber::is_constructed(entry.tag));
        match value {
            Some(v) => assert_eq!(*piece, fitted(entry.tag, v, entry.length)),
            // §5.4 (a), (b): constructed or unknown to the terminal → zeros.
            None => assert!(piece.iter().all(|&b| b == 0)),
        }
    }
    // One byte too many must be refused.
    let mut longer = data;
    longer.push(0);
    assert!(split_dol_data(&entries, &longer).is_err());
}

/// A value fitted to `length` as EMV Book 3 §5.4 (c) and (d) say, written here
/// independently from the library: `n` is cut on the left and padded with leading
/// zeros, `cn` padded with trailing `FF`, any other format cut on the right and padded
/// with trailing zeros. A tag outside the dictionary is taken as binary.
fn fitted(tag: TagNumber, value: &[u8], length: usize) -> Vec<u8> {
    use dictionary::Format;
    let format = dictionary::lookup(tag).map(|i| i.format);
    let pad = length.saturating_sub(value.len());
    match format {
        Some(Format::Numeric) => {
            let cut = value.len().saturating_sub(length);
            let mut out = vec![0x00; pad];
            out.extend_from_slice(value.get(cut..).unwrap_or_default());
            out
        }
        other => {
            let mut out = value
                .get(..length.min(value.len()))
                .unwrap_or_default()
                .to_vec();
            let filler = if other == Some(Format::CompressedNumeric) {
                0xFF
            } else {
                0x00
            };
            out.resize(length, filler);
            out
        }
    }
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

fn collect_primitives<'a>(tree: &'a [Tlv], out: &mut Vec<(TagNumber, &'a [u8])>) {
    for object in tree {
        match object.bytes() {
            Some(bytes) => out.push((object.tag(), bytes)),
            None => collect_primitives(object.children(), out),
        }
    }
}

fn collect_tags(tree: &[Tlv], out: &mut Vec<TagNumber>) {
    for object in tree {
        out.push(object.tag());
        collect_tags(object.children(), out);
    }
}
