//! Profiles: the builtin cards, loading from files, and every way a profile can be
//! refused (each [`ProfileError`] variant, with the field it names).

use card_applet_sim::profile::{LengthBehaviour, Profile, ProfileError, ResponseFormat};

const CB: &str = include_str!("../profiles/cb.toml");

#[test]
fn builtin_cards() {
    assert_eq!(
        Profile::builtin_names(),
        &["cb", "visa", "mastercard", "t0-slow", "blocked"]
    );
    let cb = Profile::builtin("cb").unwrap();
    assert_eq!(
        hex::encode_upper(cb.applications()[0].aid()),
        "A0000000421010"
    );
    assert_eq!(cb.applications()[0].cvn(), 18);
    assert!(
        cb.applications()[0]
            .cdol1()
            .windows(3)
            .any(|w| w == [0x9F, 0x7C, 0x14]),
        "9F7C 20 bytes in CDOL1"
    );
    assert_eq!(cb.pin_try_limit(), 3);
    assert_eq!(cb.initial_pin_tries(), 3);
    assert_eq!(cb.length_behaviour(), LengthBehaviour::Direct);

    let visa = Profile::builtin("visa").unwrap();
    assert_eq!(visa.applications()[0].cvn(), 10);
    assert_eq!(
        visa.applications()[0].gen_ac_format(),
        ResponseFormat::Format1
    );
    assert!(!visa.applications()[0].pdol().is_empty());

    let mastercard = Profile::builtin("mastercard").unwrap();
    assert_eq!(mastercard.applications()[0].cvn(), 18);
    assert_eq!(
        mastercard.applications()[0].gen_ac_format(),
        ResponseFormat::Format2
    );

    let t0 = Profile::builtin("t0-slow").unwrap();
    assert_eq!(t0.length_behaviour(), LengthBehaviour::T0GetResponse);
    // T0 = 68: TB1, TC1, 8 historical bytes, no TD1: T=0 only, no TCK.
    assert_eq!(
        hex::encode_upper(t0.atr()),
        "3B68000080 73C60100525430".replace(' ', "")
    );

    assert_eq!(Profile::builtin("blocked").unwrap().initial_pin_tries(), 0);
    for name in Profile::builtin_names() {
        let p = Profile::builtin(name).unwrap();
        assert_eq!(p.public_key_sec1().len(), 65);
        assert_eq!(p.public_key_tag(), 0xDF51);
        assert_eq!(p.origin(), format!("builtin:{name}"));
    }
}

#[test]
fn unknown_builtin_lists_the_names() {
    match Profile::builtin("amex") {
        Err(ProfileError::UnknownBuiltin { name, known }) => {
            assert_eq!(name, "amex");
            assert_eq!(known, "cb, visa, mastercard, t0-slow, blocked");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn debug_hides_secrets() {
    let cb = Profile::builtin("cb").unwrap();
    let text = format!("{cb:?}");
    for secret in [
        "4970100000000014",
        "1234",
        "0123456789ABCDEFFEDCBA9876543210",
        "3438082AC5660EFB",
    ] {
        assert!(
            !text.to_uppercase().contains(secret),
            "Debug shows {secret}: {text}"
        );
    }
}

#[test]
fn toml_errors_give_the_position_not_the_line() {
    // A PIN given as a number: the parser's own message would quote `value = 1234`.
    let text = CB.replacen("value = \"1234\"", "value = 1234", 1);
    let error = Profile::from_toml_str(&text, "x.toml").unwrap_err();
    let expected_line = CB.lines().position(|l| l == "value = \"1234\"").unwrap() + 1;
    match &error {
        ProfileError::Toml { line, column, .. } => {
            assert_eq!(*line, expected_line);
            assert_eq!(*column, 9, "the value starts at column 9");
        }
        other => panic!("{other:?}"),
    }
    assert!(!error.to_string().contains("1234"), "{error}");
}

#[test]
fn load_from_a_file_and_a_missing_file() {
    let dir = std::env::temp_dir().join(format!(
        "card-applet-sim-test-{}-profiles",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("mine.toml");
    std::fs::write(&path, CB.replacen("name = \"cb\"", "name = \"mine\"", 1)).unwrap();
    let p = Profile::load(&path).unwrap();
    assert_eq!(p.name(), "mine");
    assert_eq!(p.origin(), path.display().to_string());
    match Profile::load(&dir.join("absent.toml")) {
        Err(ProfileError::Io { path: p, .. }) => assert!(p.ends_with("absent.toml")),
        other => panic!("{other:?}"),
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// What a refused profile must say.
#[derive(Debug)]
enum Expect {
    Toml,
    Invalid(&'static str),
    Hex(&'static str),
    Tlv(&'static str),
    Crypto(&'static str),
    MissingTag(&'static str, u32),
    MissingRecord(u8, u8),
    Disagrees(u32, &'static str),
    Duplicate(&'static str),
}

#[test]
fn refused_profiles() {
    let cases: &[(&str, &str, &str, Expect)] = &[
        ("TOML syntax", "name = \"cb\"", "name = cb", Expect::Toml),
        (
            "unknown key",
            "test_keys = true",
            "test_keys = true\ncolour = \"blue\"",
            Expect::Toml,
        ),
        ("missing key", "cvn = 18\n", "", Expect::Toml),
        (
            "not marked as test keys",
            "test_keys = true",
            "test_keys = false",
            Expect::Invalid("test_keys"),
        ),
        (
            "ATR with a wrong TCK",
            "6010052434285\"",
            "6010052434286\"",
            Expect::Invalid("atr"),
        ),
        (
            "T=0 behaviour with a T=1 ATR",
            "\"direct\"",
            "\"t0-get-response\"",
            Expect::Invalid("atr"),
        ),
        (
            "unknown length behaviour",
            "\"direct\"",
            "\"fast\"",
            Expect::Invalid("protocol.length_behaviour"),
        ),
        (
            "PAN failing Luhn",
            "pan = \"4970100000000014\"",
            "pan = \"4970100000000015\"",
            Expect::Invalid("card.pan"),
        ),
        (
            "expiry month 13",
            "expiry = \"281231\"",
            "expiry = \"281331\"",
            Expect::Invalid("card.expiry"),
        ),
        (
            "language upper case",
            "language = \"fren\"",
            "language = \"FR\"",
            Expect::Invalid("card.language"),
        ),
        (
            "unknown payment directory",
            "language = \"fren\"",
            "language = \"fren\"\ndirectories = [\"pse\", \"dir\"]",
            Expect::Invalid("card.directories"),
        ),
        (
            "payment directory twice",
            "language = \"fren\"",
            "language = \"fren\"\ndirectories = [\"ppse\", \"ppse\"]",
            Expect::Invalid("card.directories"),
        ),
        (
            "PIN with a letter",
            "value = \"1234\"",
            "value = \"12a4\"",
            Expect::Invalid("pin.value"),
        ),
        (
            "tries above the limit",
            "tries_left = 3",
            "tries_left = 4",
            Expect::Invalid("pin.tries_left"),
        ),
        (
            "ECDSA key zero",
            "3438082AC5660EFB99773551C2683F664031C6C084474BA7E5640F105BAA5100",
            &"0".repeat(64),
            Expect::Invalid("signing.ecdsa_private_key"),
        ),
        (
            "public key under an EMV tag",
            "public_key_tag = \"DF51\"",
            "public_key_tag = \"9F36\"",
            Expect::Invalid("signing.public_key_tag"),
        ),
        (
            "AID of odd hex length",
            "aid = \"A0000000421010\"",
            "aid = \"A000000042101\"",
            Expect::Hex("application[0].aid"),
        ),
        (
            "AID of 4 bytes",
            "aid = \"A0000000421010\"",
            "aid = \"A0000000\"",
            Expect::Invalid("application[0].aid"),
        ),
        (
            "CDOL1 without 9F37",
            "95 05 5F2A 02 9A 03 9C 01 9F37 04 9F7C 14",
            "95 05 5F2A 02 9A 03 9C 01 9F7C 14",
            Expect::MissingTag("cdol1", 0x9F37),
        ),
        (
            "CDOL2 without 91",
            "cdol2 = \"8A 02 91 0A 95 05 9F37 04\"",
            "cdol2 = \"8A 02 95 05 9F37 04\"",
            Expect::MissingTag("cdol2", 0x91),
        ),
        (
            "CDOL1 with a 5-byte amount",
            "cdol1 = \"9F02 06",
            "cdol1 = \"9F02 05",
            Expect::Invalid("application[0].cdol1"),
        ),
        (
            "unsupported CVN",
            "cvn = 18",
            "cvn = 17",
            Expect::Invalid("application[0].cvn"),
        ),
        (
            "issuer master key not hex",
            "0123456789ABCDEFFEDCBA9876543210",
            "0123456789ABCDEFFEDCBA987654321G",
            Expect::Crypto("application[0].issuer_master_key"),
        ),
        (
            "AFL naming a missing record",
            "10 01 02 00",
            "10 01 03 00",
            Expect::MissingRecord(2, 3),
        ),
        (
            "AFL of 3 bytes",
            "afl = \"08 01 01 00  10 01 02 00\"",
            "afl = \"08 01 01\"",
            Expect::Invalid("application[0].afl"),
        ),
        (
            "record PAN differs",
            "5A 08 4970100000000014",
            "5A 08 4970100000000022",
            Expect::Disagrees(0x5A, "card.pan"),
        ),
        (
            "record CDOL1 differs",
            "8C 18 9F0206",
            "8C 18 9F0306",
            Expect::Disagrees(0x8C, "cdol1"),
        ),
        (
            "record not a 70 template",
            "70 30\n",
            "77 30\n",
            Expect::Invalid("application[0].record[0].data"),
        ),
        (
            "record length overruns",
            "70 30\n",
            "70 31\n",
            Expect::Tlv("application[0].record[0].data"),
        ),
        (
            "two records SFI 2 record 1",
            "sfi = 2\nrecord = 2",
            "sfi = 2\nrecord = 1",
            Expect::Duplicate("application[0].record[2]"),
        ),
        (
            "log SFI below 11",
            "sfi = 11",
            "sfi = 3",
            Expect::Invalid("application[0].log.sfi"),
        ),
        (
            "GPO format 3",
            "gpo_format = 2",
            "gpo_format = 3",
            Expect::Invalid("application[0].gpo_format"),
        ),
        (
            "two applications with one AID",
            "aid = \"A0000000031010\"",
            "aid = \"A0000000421010\"",
            Expect::Duplicate("application[1].aid"),
        ),
    ];
    for (name, from, to, expected) in cases {
        assert!(CB.contains(from), "{name}: the cb profile has no {from:?}");
        let text = CB.replacen(from, to, 1);
        let error = match Profile::from_toml_str(&text, "test.toml") {
            Ok(_) => panic!("{name}: accepted"),
            Err(e) => e,
        };
        let ok = match (&error, expected) {
            (ProfileError::Toml { origin, line, .. }, Expect::Toml) => {
                origin == "test.toml" && *line > 0
            }
            (ProfileError::InvalidField { field, .. }, Expect::Invalid(f)) => field == f,
            (ProfileError::Hex { field, .. }, Expect::Hex(f)) => field == f,
            (ProfileError::Tlv { field, .. }, Expect::Tlv(f)) => field == f,
            (ProfileError::Crypto { field, .. }, Expect::Crypto(f)) => field == f,
            (ProfileError::MissingTag { place, tag, .. }, Expect::MissingTag(p, t)) => {
                place == p && tag == t
            }
            (
                ProfileError::MissingRecord {
                    sfi,
                    record,
                    application: 0,
                    ..
                },
                Expect::MissingRecord(s, r),
            ) => sfi == s && record == r,
            (ProfileError::RecordDisagrees { tag, field, .. }, Expect::Disagrees(t, f)) => {
                tag == t && field == f
            }
            (ProfileError::Duplicate { field, .. }, Expect::Duplicate(f)) => field == f,
            _ => false,
        };
        assert!(ok, "{name}: expected {expected:?}, got {error:?}");
        let message = error.to_string();
        assert!(
            message.contains("test.toml"),
            "{name}: the message names the origin: {message}"
        );
        for secret in ["1234", "12a4", "4970100000000015", "0123456789ABCDEF"] {
            assert!(
                !message.contains(secret),
                "{name}: message shows a secret: {message}"
            );
        }
    }
}
