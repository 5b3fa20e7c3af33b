//! Known-answer tests of `card_applet_sim::crypto` against the vectors of
//! `tests/vectors/emv_crypto.txt`, one test per kind of vector; the file names the source
//! of every vector and documents the row syntax.

use std::collections::BTreeMap;

use card_applet_sim::crypto::{
    AcInput, CryptogramVersion, DoubleKey, Padding, application_cryptogram, arpc_method1,
    arpc_method1_with_key, arpc_method2, arpc_method2_with_key, derive_common_session_key,
    derive_icc_master_key, derive_icc_master_key_option_b, derive_session_key, retail_mac,
    try_ac_input_data,
};

const VECTORS: &str = include_str!("vectors/emv_crypto.txt");

/// One row of the vector file.
#[derive(Debug)]
struct Vector {
    line: usize,
    source: String,
    kind: String,
    inputs: BTreeMap<String, String>,
    expected: BTreeMap<String, String>,
}

impl Vector {
    fn input(&self, name: &str) -> Result<&str, String> {
        self.inputs
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| format!("missing input `{name}`"))
    }

    fn bytes(&self, name: &str) -> Result<Vec<u8>, String> {
        hex::decode(self.input(name)?).map_err(|e| format!("input `{name}`: {e}"))
    }

    fn array<const N: usize>(&self, name: &str) -> Result<[u8; N], String> {
        let bytes = self.bytes(name)?;
        <[u8; N]>::try_from(bytes.as_slice())
            .map_err(|_| format!("input `{name}`: expected {N} bytes, got {}", bytes.len()))
    }

    fn key(&self, name: &str) -> Result<DoubleKey, String> {
        DoubleKey::from_hex(self.input(name)?).map_err(|e| format!("input `{name}`: {e}"))
    }

    fn psn(&self) -> Result<u8, String> {
        self.input("psn")?
            .parse()
            .map_err(|e| format!("input `psn`: {e}"))
    }
}

/// Parses the whole file; a malformed row fails the test that reads it, with its line.
fn vectors() -> Vec<Vector> {
    let mut source = None::<String>;
    let mut rows = Vec::new();
    for (index, text) in VECTORS.lines().enumerate() {
        let line = index + 1;
        let text = text.trim();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        if let Some(named) = text.strip_prefix("source:") {
            source = Some(named.trim().to_owned());
            continue;
        }
        let (inputs, expected) = text
            .split_once("=>")
            .unwrap_or_else(|| panic!("line {line}: no `=>` in {text:?}"));
        let mut words = inputs.split_whitespace();
        let kind = words
            .next()
            .unwrap_or_else(|| panic!("line {line}: no kind"))
            .to_owned();
        let fields = |words: &mut dyn Iterator<Item = &str>| -> BTreeMap<String, String> {
            words
                .map(|word| {
                    let (name, value) = word
                        .split_once('=')
                        .unwrap_or_else(|| panic!("line {line}: `{word}` is not name=value"));
                    (name.to_owned(), value.to_owned())
                })
                .collect()
        };
        let inputs = fields(&mut words);
        let expected = fields(&mut expected.split_whitespace());
        assert!(!expected.is_empty(), "line {line}: nothing expected");
        rows.push(Vector {
            line,
            source: source
                .clone()
                .unwrap_or_else(|| panic!("line {line}: vector before any `source:` line")),
            kind,
            inputs,
            expected,
        });
    }
    rows
}

/// Two-byte check value, as pyemv's `key_check_digits` reports it.
fn kcv(key: &DoubleKey) -> String {
    hex::encode_upper(&key.check_value()[..2])
}

/// Computes every output the row's inputs allow (see the file header).
fn compute_chain(v: &Vector) -> Result<BTreeMap<&'static str, String>, String> {
    let mut out = BTreeMap::new();
    let base = if v.inputs.contains_key("key") {
        v.key("key")?
    } else {
        let imk = v.key("imk")?;
        let pan = v.input("pan")?;
        let psn = v.psn()?;
        let icc = match v.input("option")? {
            "A" => derive_icc_master_key(&imk, pan, psn),
            "B" => derive_icc_master_key_option_b(&imk, pan, psn),
            other => return Err(format!("option `{other}` is not A or B")),
        }
        .map_err(|e| e.to_string())?;
        out.insert("icc", hex::encode_upper(icc.expose()));
        out.insert("icc_kcv", kcv(&icc));
        icc
    };
    let working = if v.inputs.contains_key("r") {
        Some(derive_session_key(&base, &v.array::<8>("r")?))
    } else if v.inputs.contains_key("atc") {
        Some(derive_common_session_key(
            &base,
            u16::from_be_bytes(v.array::<2>("atc")?),
        ))
    } else {
        None
    };
    if let Some(sk) = &working {
        out.insert("sk", hex::encode_upper(sk.expose()));
        out.insert("sk_kcv", kcv(sk));
    }
    let working = working.unwrap_or_else(|| base.clone());

    let mut mac = None;
    if v.inputs.contains_key("data") {
        let padding = match v.input("padding")? {
            "1" => Padding::Method1,
            "2" => Padding::Method2,
            other => return Err(format!("padding `{other}` is not 1 or 2")),
        };
        let value = retail_mac(&working, &v.bytes("data")?, padding);
        out.insert("mac", hex::encode_upper(value));
        mac = Some(value);
    }
    let arqc = if v.inputs.contains_key("arqc") {
        Some(v.array::<8>("arqc")?)
    } else {
        mac
    };
    if v.inputs.contains_key("arc") {
        let arqc = arqc.ok_or("`arc` needs `arqc` or `data`")?;
        let arc = v.array::<2>("arc")?;
        out.insert(
            "arpc1",
            hex::encode_upper(arpc_method1_with_key(&working, &arqc, &arc)),
        );
        out.insert(
            "arpc1_icc",
            hex::encode_upper(arpc_method1_with_key(&base, &arqc, &arc)),
        );
    }
    if v.inputs.contains_key("csu") {
        let arqc = arqc.ok_or("`csu` needs `arqc` or `data`")?;
        let pad = if v.inputs.contains_key("pad") {
            v.bytes("pad")?
        } else {
            Vec::new()
        };
        let arpc = arpc_method2_with_key(&working, &arqc, &v.array::<4>("csu")?, &pad)
            .map_err(|e| e.to_string())?;
        out.insert("arpc2", hex::encode_upper(arpc));
    }
    Ok(out)
}

/// The whole card computation for one cryptogram version, from named tag values.
fn compute_cvn(
    v: &Vector,
    version: CryptogramVersion,
) -> Result<BTreeMap<&'static str, String>, String> {
    let mut out = BTreeMap::new();
    let imk = v.key("imk")?;
    let icc = version
        .derive_icc_master_key(&imk, v.input("pan")?, v.psn()?)
        .map_err(|e| e.to_string())?;
    let atc = u16::from_be_bytes(v.array::<2>("9F36")?);
    out.insert("icc_kcv", kcv(&icc));
    out.insert("sk_kcv", kcv(&version.ac_key(&icc, atc)));

    // The terminal's CDOL1 data, here the usual Visa CDOL1 (9F02 … 9F37).
    let mut cdol1 = Vec::new();
    for tag in ["9F02", "9F03", "9F1A", "95", "5F2A", "9A", "9C", "9F37"] {
        cdol1.extend(v.bytes(tag)?);
    }
    let iad = v.bytes("9F10")?;
    let [transaction_type] = v.array::<1>("9C")?;
    let input = AcInput {
        cdol1_data: &cdol1,
        amount_authorised: v.array("9F02")?,
        amount_other: v.array("9F03")?,
        terminal_country: v.array("9F1A")?,
        tvr: v.array("95")?,
        currency: v.array("5F2A")?,
        date: v.array("9A")?,
        transaction_type,
        unpredictable_number: v.array("9F37")?,
        aip: v.array("82")?,
        atc,
        iad: &iad,
    };
    let data = try_ac_input_data(version, &input).map_err(|e| e.to_string())?;
    let ac = application_cryptogram(version, &icc, atc, &data);
    out.insert("ac", hex::encode_upper(ac));
    if v.inputs.contains_key("arc") {
        let arpc = arpc_method1(version, &icc, atc, &ac, &v.array::<2>("arc")?);
        out.insert("arpc1", hex::encode_upper(arpc));
    }
    if v.inputs.contains_key("csu") {
        let pad = if v.inputs.contains_key("pad") {
            v.bytes("pad")?
        } else {
            Vec::new()
        };
        let arpc = arpc_method2(version, &icc, atc, &ac, &v.array::<4>("csu")?, &pad)
            .map_err(|e| e.to_string())?;
        out.insert("arpc2", hex::encode_upper(arpc));
    }
    Ok(out)
}

/// Checks rows of one kind; every disagreement is returned, with its line and source.
fn failures(rows: &[Vector], kind: &str) -> Vec<String> {
    let mut failures = Vec::new();
    for v in rows.iter().filter(|v| v.kind == kind) {
        let computed = match kind {
            "cvn10" => compute_cvn(v, CryptogramVersion::Visa10),
            "cvn18" => compute_cvn(v, CryptogramVersion::Cvn18),
            _ => compute_chain(v),
        };
        let computed = match computed {
            Ok(computed) => computed,
            Err(error) => {
                failures.push(format!("line {} ({}): {error}", v.line, v.source));
                continue;
            }
        };
        for (name, want) in &v.expected {
            match computed.get(name.as_str()) {
                Some(got) if got.eq_ignore_ascii_case(want) => {}
                Some(got) => failures.push(format!(
                    "line {} ({}): {name}: expected {want}, computed {got}",
                    v.line, v.source
                )),
                None => failures.push(format!(
                    "line {} ({}): {name} cannot be computed from the inputs given",
                    v.line, v.source
                )),
            }
        }
    }
    failures
}

/// Runs every vector of one kind from the file.
fn check_kind(kind: &str) {
    let rows = vectors();
    assert!(
        rows.iter().any(|v| v.kind == kind),
        "no vector of kind `{kind}` in the file"
    );
    let failures = failures(&rows, kind);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

macro_rules! vector_tests {
    ($($name:ident => $kind:literal,)*) => {
        $(
            #[test]
            fn $name() {
                check_kind($kind);
            }
        )*

        /// Every row belongs to one of the kinds above, so none is silently skipped.
        #[test]
        fn every_vector_has_a_tested_kind() {
            let known = [$($kind),*];
            for v in vectors() {
                assert!(
                    known.contains(&v.kind.as_str()),
                    "line {}: unknown kind `{}`",
                    v.line,
                    v.kind
                );
            }
        }
    };
}

vector_tests! {
    iso9797_mac_algorithm_3 => "mac",
    master_key_option_a => "option_a",
    master_key_option_b => "option_b",
    common_session_key => "session",
    cryptogram_under_key => "ac",
    arpc_method_1 => "arpc1",
    arpc_method_2 => "arpc2",
    visa_cvn_10 => "cvn10",
    visa_cvn_18 => "cvn18",
}

/// The runner itself reports a wrong value and an expectation it cannot compute.
#[test]
fn the_runner_reports_wrong_and_uncomputable_expectations() {
    let row = |expected: &[(&str, &str)]| Vector {
        line: 1,
        source: "self-test".into(),
        kind: "mac".into(),
        inputs: [
            ("key", "AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBB"),
            ("padding", "1"),
            ("data", "68656C6C6F20776F726C64"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
        expected: expected
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    };
    let rows = [
        row(&[("mac", "78DA3D3DEB48FD4D")]),
        row(&[("mac", "78DA3D3DEB48FD4E")]),
        row(&[("arpc2", "00000000")]),
    ];
    assert_eq!(
        failures(&rows, "mac"),
        [
            "line 1 (self-test): mac: expected 78DA3D3DEB48FD4E, computed 78DA3D3DEB48FD4D",
            "line 1 (self-test): arpc2 cannot be computed from the inputs given",
        ]
    );
}
