//! Exchanges rendered for people: what a command asks, what the card answered.
//!
//! A [`DescribedExchange`] names the command and its parameters (`SELECT by DF name
//! "2PAY.SYS.DDF01"`, `READ RECORD 1 of SFI 2`, `GENERATE AC asking for an ARQC`), decodes
//! the response's data (TLV tree with EMV names, or the fixed layouts of GPO and GENERATE
//! AC format 1) and the status word's meaning. It is what `telepay apdu` and `telepay
//! card read` print, and what snapshot tests pin; it serialises to JSON as well.
//!
//! PIN blocks are masked: the data of a VERIFY command is never shown unless the caller
//! asks for secrets.

use std::fmt;

use crate::apdu::{Command, Response, StatusWord, ins, instruction_name};
use crate::tlv::{
    self, TagNumber,
    dol::{self, DolEntry},
};

/// Choices for rendering.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DescribeOptions {
    /// Show PIN blocks and other secret command data instead of masking them.
    pub show_secrets: bool,
}

/// One command and its response, decoded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DescribedExchange {
    /// The command bytes in hex, secret data masked as `**`.
    pub command_hex: String,
    /// What the command asks, in words.
    pub command: String,
    /// Decoded command data (one line each), e.g. a GPO's PDOL data as TLV.
    pub command_details: Vec<String>,
    /// The response bytes in hex (data then status word).
    pub response_hex: String,
    /// The status word in hex.
    pub status_word: String,
    /// The status word's meaning.
    pub status: String,
    /// The response data decoded, one line each (a TLV tree, fixed fields).
    pub response_details: Vec<String>,
}

/// Decodes one exchange on its own. Within a dialogue, prefer a [`Describer`], which
/// also decodes DOL-built command data (GPO, GENERATE AC) with the card's own DOLs.
pub fn describe_exchange(
    command: &Command,
    response: &Response,
    options: DescribeOptions,
) -> DescribedExchange {
    Describer::new(options).describe(command, response)
}

/// Decodes the exchanges of one dialogue in order, remembering what the card said
/// earlier: its PDOL (9F38), CDOL1 (8C) and CDOL2 (8D), so that the data of GET
/// PROCESSING OPTIONS and of the first and second GENERATE AC is shown field by field
/// (EMV Book 3 §5.4), and which GENERATE AC of the transaction a command is.
#[derive(Debug, Clone, Default)]
pub struct Describer {
    options: DescribeOptions,
    pdol: Option<Vec<DolEntry>>,
    cdol1: Option<Vec<DolEntry>>,
    cdol2: Option<Vec<DolEntry>>,
    /// GENERATE AC commands answered since the last GET PROCESSING OPTIONS.
    generate_ac_count: usize,
    /// Tags whose values are replaced by `<redacted>` / `??` (values that vary from run
    /// to run: cryptograms, counters, unpredictable numbers).
    redacted: Vec<TagNumber>,
}

impl Describer {
    /// A describer for a new dialogue.
    pub fn new(options: DescribeOptions) -> Describer {
        Describer {
            options,
            ..Describer::default()
        }
    }

    /// The same describer, hiding the values of `tags` wherever they appear: in TLV
    /// responses, in DOL-built command data, and in the fixed fields of GENERATE AC
    /// format 1 (CID 9F27, ATC 9F36, AC 9F26, IAD 9F10). For snapshot tests whose cards
    /// or terminals put varying values there.
    pub fn redacting(mut self, tags: &[TagNumber]) -> Describer {
        self.redacted = tags.to_vec();
        self
    }

    /// Decodes one exchange and learns from it.
    pub fn describe(&mut self, command: &Command, response: &Response) -> DescribedExchange {
        let mut described = self.describe_plain(command, response);
        if !self.redacted.is_empty() {
            self.redact(command, response, &mut described);
        }
        self.learn(command, response);
        described
    }

    fn describe_plain(&self, command: &Command, response: &Response) -> DescribedExchange {
        let secret = command.carries_secret() && !self.options.show_secrets;
        let command_hex = if secret {
            masked_hex(command)
        } else {
            hex::encode_upper(command.to_bytes())
        };
        let command_details = if secret {
            vec![format!(
                "data: {} bytes masked (PIN block; show with --show-secrets)",
                command.data().len()
            )]
        } else {
            self.command_details(command)
        };
        let mut name = describe_command(command);
        if command.ins() == ins::GENERATE_AC && command.cla() & 0x80 != 0 {
            let ordinal = if self.generate_ac_count == 0 {
                "first"
            } else {
                "second"
            };
            name = format!("{ordinal} {name}");
        }
        DescribedExchange {
            command_hex,
            command: name,
            command_details,
            response_hex: hex::encode_upper(response.to_bytes()),
            status_word: format!("{:04X}", response.sw.to_u16()),
            status: response.sw.meaning(),
            response_details: response_details(command, response),
        }
    }

    /// Hides the redacted tags' values in the hex and the decoded lines.
    fn redact(&self, command: &Command, response: &Response, described: &mut DescribedExchange) {
        let wanted = |tag: &TagNumber| self.redacted.contains(tag);
        // Response data: TLV values, or the fixed fields of a format 1 GENERATE AC.
        let mut response_ranges: Vec<std::ops::Range<usize>> = Vec::new();
        let mut labels: Vec<&'static str> = Vec::new();
        let located = tlv::ber::primitive_value_ranges(&response.data);
        let format1_ac =
            command.ins() == ins::GENERATE_AC && matches!(located.as_slice(), [(0x80, _)]);
        if let (true, Some((_, value))) = (format1_ac, located.first()) {
            let start = value.start;
            for (tag, label, range) in [
                (0x9F27, "CID", start..start + 1),
                (0x9F36, "ATC", start + 1..start + 3),
                (0x9F26, "AC", start + 3..start + 11),
                (0x9F10, "IAD", start + 11..value.end),
            ] {
                if wanted(&tag) && range.start < range.end && range.end <= value.end {
                    response_ranges.push(range);
                    labels.push(label);
                }
            }
        } else {
            response_ranges.extend(
                located
                    .into_iter()
                    .filter(|(tag, _)| wanted(tag))
                    .map(|(_, range)| range),
            );
        }
        // Command data built from a DOL: the offsets of each field.
        let mut command_ranges = Vec::new();
        let data_start = data_offset(command);
        let dol_and_offset = match command.ins() {
            ins::GET_PROCESSING_OPTIONS => {
                // 83 L then the PDOL data (short form length in practice).
                let header = tlv::ber::primitive_value_ranges(command.data())
                    .first()
                    .map_or(0, |(_, range)| range.start);
                self.pdol.as_ref().map(|dol| (dol, data_start + header))
            }
            ins::GENERATE_AC if self.generate_ac_count == 0 => {
                self.cdol1.as_ref().map(|dol| (dol, data_start))
            }
            ins::GENERATE_AC => self.cdol2.as_ref().map(|dol| (dol, data_start)),
            _ => None,
        };
        if let Some((entries, start)) = dol_and_offset {
            let mut offset = start;
            for entry in entries {
                if wanted(&entry.tag) {
                    command_ranges.push(offset..offset + entry.length);
                }
                offset += entry.length;
            }
            // The GPO's 83 template line shows the same PDOL data in hex.
            if command.ins() == ins::GET_PROCESSING_OPTIONS && !command_ranges.is_empty() {
                let value = command.data().get(start - data_start..).unwrap_or_default();
                let relative: Vec<_> = command_ranges
                    .iter()
                    .map(|range| range.start - start..range.end - start)
                    .collect();
                let masked = mask_hex(&hex::encode_upper(value), &relative);
                for line in &mut described.command_details {
                    if let Some(rest) = line.strip_prefix("83 ")
                        && let Some(colon) = rest.find(": ")
                    {
                        *line = format!("83 {}: {masked}", &rest[..colon]);
                    }
                }
            }
        }
        described.command_hex = mask_hex(&described.command_hex, &command_ranges);
        described.response_hex = mask_hex(&described.response_hex, &response_ranges);
        let prefixes: Vec<String> = self
            .redacted
            .iter()
            .map(|tag| format!("{} ", tlv::ber::tag_hex(*tag)))
            .chain(labels.iter().map(|label| format!("{label} ")))
            .collect();
        for line in described
            .command_details
            .iter_mut()
            .chain(described.response_details.iter_mut())
        {
            let trimmed = line.trim_start();
            if prefixes
                .iter()
                .any(|prefix| trimmed.starts_with(prefix.as_str()))
            {
                let indent = line.len() - trimmed.len();
                let cut = trimmed.find(": ").map_or_else(
                    || trimmed.find(' ').unwrap_or(trimmed.len()),
                    |colon| colon + 1,
                );
                *line = format!("{}{} <redacted>", &line[..indent], &trimmed[..cut]);
            }
        }
    }

    fn learn(&mut self, command: &Command, response: &Response) {
        match command.ins() {
            ins::GET_PROCESSING_OPTIONS => self.generate_ac_count = 0,
            ins::GENERATE_AC if response.sw.is_success() => self.generate_ac_count += 1,
            ins::SELECT if response.sw.is_success() => {
                // A new application: its DOLs are yet to be read.
                self.pdol = None;
                self.cdol1 = None;
                self.cdol2 = None;
                self.generate_ac_count = 0;
            }
            _ => {}
        }
        if !response.sw.is_success() {
            return;
        }
        let Ok(tlvs) = tlv::parse(&response.data) else {
            return;
        };
        let dol_of = |tag| {
            tlv::find(&tlvs, tag)
                .and_then(tlv::Tlv::bytes)
                .and_then(|bytes| dol::parse_dol(bytes).ok())
        };
        if let Some(pdol) = dol_of(0x9F38) {
            self.pdol = Some(pdol);
        }
        if let Some(cdol1) = dol_of(0x8C) {
            self.cdol1 = Some(cdol1);
        }
        if let Some(cdol2) = dol_of(0x8D) {
            self.cdol2 = Some(cdol2);
        }
    }

    /// Command data decoded where its structure is known.
    fn command_details(&self, command: &Command) -> Vec<String> {
        let data = command.data();
        if data.is_empty() {
            return Vec::new();
        }
        match command.ins() {
            ins::GET_PROCESSING_OPTIONS => {
                let mut lines = tlv_lines(data);
                let pdol_data = tlv::parse(data)
                    .ok()
                    .and_then(|tlvs| tlvs.first().and_then(|t| t.bytes().map(<[u8]>::to_vec)));
                if let (Some(pdol), Some(pdol_data)) = (&self.pdol, pdol_data) {
                    lines.extend(dol_lines("PDOL", pdol, &pdol_data));
                }
                lines
            }
            ins::GENERATE_AC => {
                let dol = if self.generate_ac_count == 0 {
                    ("CDOL1", &self.cdol1)
                } else {
                    ("CDOL2", &self.cdol2)
                };
                match dol {
                    (name, Some(entries)) => dol_lines(name, entries, data),
                    (name, None) => vec![format!("{name} data: {}", hex::encode_upper(data))],
                }
            }
            ins::SELECT => Vec::new(),
            _ => vec![format!("data: {}", hex::encode_upper(data))],
        }
    }
}

/// Where the data field starts in the command's encoding: after the header and Lc (one
/// byte short, three extended; ISO 7816-4 §5.1).
fn data_offset(command: &Command) -> usize {
    match (command.data().is_empty(), command.needs_extended()) {
        (true, _) => 4,
        (false, false) => 5,
        (false, true) => 7,
    }
}

/// Hex text with the bytes in `ranges` (byte offsets) shown as `??`.
fn mask_hex(hex_text: &str, ranges: &[std::ops::Range<usize>]) -> String {
    if ranges.is_empty() {
        return hex_text.to_owned();
    }
    let mut out = String::with_capacity(hex_text.len());
    for (index, pair) in hex_text.as_bytes().chunks(2).enumerate() {
        if ranges.iter().any(|range| range.contains(&index)) {
            out.push_str("??");
        } else {
            out.push_str(std::str::from_utf8(pair).unwrap_or("??"));
        }
    }
    out
}

/// DOL-built data split by its DOL, one field per line, decoded by the dictionary; the
/// raw hex when the lengths disagree with the DOL.
fn dol_lines(name: &str, entries: &[DolEntry], data: &[u8]) -> Vec<String> {
    match dol::split_dol_data(entries, data) {
        Ok(fields) => {
            // Rendered as one tree so that amounts find their currency (5F2A) beside them.
            let tlvs: Vec<tlv::Tlv> = fields
                .into_iter()
                .map(|(tag, value)| tlv::Tlv::primitive(tag, value.to_vec()))
                .collect();
            std::iter::once(format!("{name} data:"))
                .chain(tlv::render(&tlvs).lines().map(|line| format!("  {line}")))
                .collect()
        }
        Err(error) => vec![format!(
            "{name} data (does not match the {name}: {error}): {}",
            hex::encode_upper(data)
        )],
    }
}

impl DescribedExchange {
    /// Replaces every occurrence of `secret` (e.g. the PAN's digits, which appear both
    /// in hex and in decoded lines) by `masked`.
    pub fn mask_text(&mut self, secret: &str, masked: &str) {
        if secret.is_empty() {
            return;
        }
        let fields = [&mut self.command_hex, &mut self.response_hex];
        for field in fields {
            *field = field.replace(secret, masked);
        }
        for line in self
            .command_details
            .iter_mut()
            .chain(&mut self.response_details)
        {
            *line = line.replace(secret, masked);
        }
    }
}

impl fmt::Display for DescribedExchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "> {}", self.command)?;
        writeln!(f, "  {}", self.command_hex)?;
        for line in &self.command_details {
            writeln!(f, "    {line}")?;
        }
        writeln!(f, "< {} {}", self.status_word, self.status)?;
        if self.response_hex.len() > 4 {
            writeln!(f, "  {}", self.response_hex)?;
        }
        for line in &self.response_details {
            writeln!(f, "    {line}")?;
        }
        Ok(())
    }
}

/// The command in hex with its data field replaced by `**` per byte.
fn masked_hex(command: &Command) -> String {
    let bytes = command.to_bytes();
    let start = data_offset(command);
    let data = start..start + command.data().len();
    bytes
        .iter()
        .enumerate()
        .map(|(index, byte)| {
            if data.contains(&index) {
                "**".to_owned()
            } else {
                format!("{byte:02X}")
            }
        })
        .collect()
}

/// The command in words: its name and what P1/P2 select.
pub fn describe_command(command: &Command) -> String {
    let (cla, ins_byte, p1, p2) = (command.cla(), command.ins(), command.p1(), command.p2());
    let name = instruction_name(cla, ins_byte)
        .map(str::to_owned)
        .unwrap_or_else(|| format!("INS {ins_byte:02X} (unknown instruction)"));
    let detail = match ins_byte {
        ins::SELECT => Some(describe_select(command)),
        ins::READ_RECORD => Some(describe_read_record(p1, p2)),
        ins::GET_DATA if cla & 0x80 != 0 || cla == 0x00 => {
            let tag = u32::from(u16::from_be_bytes([p1, p2]));
            Some(match tlv::dictionary::lookup(tag) {
                Some(info) => format!("{tag:04X} {}", info.name),
                None => format!("{tag:04X}"),
            })
        }
        ins::GENERATE_AC if cla & 0x80 != 0 => Some(describe_generate_ac(p1)),
        ins::VERIFY => Some(match p2 {
            0x80 => "plaintext offline PIN".to_owned(),
            0x88 => "enciphered offline PIN".to_owned(),
            other => format!("reference data {other:02X}"),
        }),
        ins::PERFORM_SECURITY_OPERATION => Some(match (p1, p2) {
            (0x9E, 0x9A) => "COMPUTE DIGITAL SIGNATURE".to_owned(),
            (0x9E, 0xAC) => "COMPUTE DIGITAL SIGNATURE over input template".to_owned(),
            (0x80, 0x86) => "DECIPHER".to_owned(),
            (0x86, 0x80) => "ENCIPHER".to_owned(),
            (0x90, 0x80) => "HASH".to_owned(),
            (0x00, 0xA2) => "VERIFY CRYPTOGRAPHIC CHECKSUM".to_owned(),
            (0x00, 0xA8) => "VERIFY DIGITAL SIGNATURE".to_owned(),
            _ => format!("P1P2 {p1:02X}{p2:02X}"),
        }),
        _ => None,
    };
    let le = match command.ne() {
        Some(ne) if ins_byte == ins::GET_CHALLENGE || ins_byte == ins::GET_RESPONSE => {
            format!(" ({ne} bytes)")
        }
        _ => String::new(),
    };
    match detail {
        Some(detail) => format!("{name} {detail}{le}"),
        None => format!("{name}{le}"),
    }
}

fn describe_select(command: &Command) -> String {
    let (p1, p2) = (command.p1(), command.p2());
    let by = match p1 {
        0x00 => "by file identifier",
        0x01 => "child DF",
        0x02 => "EF under the current DF",
        0x03 => "parent DF",
        0x04 => "by DF name",
        0x08 => "by path from the MF",
        0x09 => "by path from the current DF",
        _ => "by RFU selection",
    };
    let occurrence = match p2 & 0x03 {
        0x00 => "first or only occurrence",
        0x01 => "last occurrence",
        0x02 => "next occurrence",
        _ => "previous occurrence",
    };
    let answer = match p2 & 0x0C {
        0x00 => "return FCI",
        0x04 => "return FCP",
        0x08 => "return FMD",
        _ => "no response data",
    };
    let data = command.data();
    let target = if data.is_empty() {
        String::new()
    } else if p1 == 0x04 && data.iter().all(|byte| (0x20..0x7F).contains(byte)) {
        format!(" {:?}", String::from_utf8_lossy(data))
    } else {
        format!(" {}", hex::encode_upper(data))
    };
    format!("{by}{target} ({occurrence}, {answer})")
}

fn describe_read_record(p1: u8, p2: u8) -> String {
    let sfi = p2 >> 3;
    match p2 & 0x07 {
        0x04 if sfi == 0 => format!("record {p1} of the current EF"),
        0x04 => format!("record {p1} of SFI {sfi}"),
        0x05 => format!("records {p1} to the last of SFI {sfi}"),
        other => format!("record {p1}, P2 {p2:02X} (mode {other})"),
    }
}

fn describe_generate_ac(p1: u8) -> String {
    let kind = match p1 & 0xC0 {
        0x00 => "asking for an AAC (decline)",
        0x40 => "asking for a TC (approve offline)",
        0x80 => "asking for an ARQC (go online)",
        _ => "asking for an RFU cryptogram type",
    };
    if p1 & 0x10 != 0 {
        format!("{kind}, CDA signature requested")
    } else {
        kind.to_owned()
    }
}

/// Response data decoded: fixed layouts first, then TLV, then hex.
fn response_details(command: &Command, response: &Response) -> Vec<String> {
    let data = &response.data;
    if data.is_empty() {
        return Vec::new();
    }
    let format1 = data.first() == Some(&0x80);
    match command.ins() {
        ins::GET_PROCESSING_OPTIONS if format1 => {
            if let Some(lines) = gpo_format1(data) {
                return lines;
            }
        }
        ins::GENERATE_AC if format1 => {
            if let Some(lines) = generate_ac_format1(data) {
                return lines;
            }
        }
        ins::GET_CHALLENGE => return vec![format!("challenge: {}", hex::encode_upper(data))],
        ins::PERFORM_SECURITY_OPERATION => {
            return vec![format!("result: {}", hex::encode_upper(data))];
        }
        _ => {}
    }
    tlv_lines(data)
}

/// A TLV tree, one line per object; hex when the bytes are not TLV.
fn tlv_lines(data: &[u8]) -> Vec<String> {
    tlv::render_bytes(data).lines().map(str::to_owned).collect()
}

/// The value of a primitive `80` template (EMV Book 3 §6.5.8.4 / §6.5.5.4, format 1).
fn format1_value(data: &[u8]) -> Option<Vec<u8>> {
    let parsed = tlv::parse(data).ok()?;
    match parsed.as_slice() {
        [only] if only.tag() == 0x80 => only.bytes().map(<[u8]>::to_vec),
        _ => None,
    }
}

/// GPO format 1: AIP (2 bytes) then the AFL (EMV Book 3 §6.5.8.4).
fn gpo_format1(data: &[u8]) -> Option<Vec<String>> {
    let value = format1_value(data)?;
    let (aip, afl) = (value.get(..2)?, value.get(2..)?);
    if afl.len() % 4 != 0 {
        return None;
    }
    let mut lines = vec!["80 Response Message Template Format 1".to_owned()];
    let aip_text = tlv::decode_value(0x82, aip).unwrap_or_default();
    lines.push(format!(
        "  AIP {}{}",
        hex::encode_upper(aip),
        if aip_text.is_empty() {
            String::new()
        } else {
            format!(" ({aip_text})")
        }
    ));
    for entry in afl.chunks(4) {
        lines.push(format!("  AFL {}", describe_afl_entry(entry)));
    }
    Some(lines)
}

/// One 4-byte AFL entry (EMV Book 3 §10.2): SFI, first and last record, how many
/// records take part in offline data authentication.
pub fn describe_afl_entry(entry: &[u8]) -> String {
    match entry {
        [sfi, first, last, oda] => format!(
            "SFI {} records {}-{} ({} for offline data authentication)",
            sfi >> 3,
            first,
            last,
            oda
        ),
        _ => hex::encode_upper(entry),
    }
}

/// GENERATE AC format 1: CID, ATC, AC, optional IAD (EMV Book 3 §6.5.5.4).
fn generate_ac_format1(data: &[u8]) -> Option<Vec<String>> {
    let value = format1_value(data)?;
    let cid = *value.first()?;
    let atc = value.get(1..3)?;
    let cryptogram = value.get(3..11)?;
    let iad = value.get(11..)?;
    let mut lines = vec![
        "80 Response Message Template Format 1".to_owned(),
        format!("  CID {cid:02X} ({})", describe_cid(cid)),
        format!("  ATC {}", hex::encode_upper(atc)),
        format!("  AC {}", hex::encode_upper(cryptogram)),
    ];
    if !iad.is_empty() {
        lines.push(format!("  IAD {}", hex::encode_upper(iad)));
    }
    Some(lines)
}

/// The Cryptogram Information Data's type bits (EMV Book 3 Table 15).
pub fn describe_cid(cid: u8) -> &'static str {
    match cid & 0xC0 {
        0x00 => "AAC: declined",
        0x40 => "TC: approved",
        0x80 => "ARQC: online authorisation requested",
        _ => "RFU",
    }
}

/// A status word followed by its meaning, e.g. `6983 authentication method blocked`.
pub fn describe_status(sw: StatusWord) -> String {
    format!("{:04X} {}", sw.to_u16(), sw.meaning())
}
