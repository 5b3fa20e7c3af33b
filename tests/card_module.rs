//! The payer device's card module against the real software card (`sim:` readers): read,
//! PIN, the card's cryptogram over the payment request, completion with the acquirer's
//! verdict.
//!
//! The cryptograms are checked with `card_applet_sim::crypto` from the profile's test
//! issuer master key and the fields the module reports in its `CardTransaction`: if the
//! module reported any value other than the one the card signed, the check would fail
//! (the tampered-amount control shows it can).

use card_applet_sim::crypto::{
    AcInput, CryptogramVersion, DoubleKey, ac_input_data, application_cryptogram, arpc_method1,
};
use card_applet_sim::profile::Profile;
use telepay::apdu::{Command, Response, StatusWord};
use telepay::emv::CardChannel;
use telepay::messages::{
    CardTransaction, Currency, Means, MerchantId, Money, PaymentId, PaymentRequest, PurchaseId,
    RefusalReason, ServiceId, Timestamp, Verdict,
};
use telepay::reader::{Reader, ReaderError, Transport};
use telepay::terminal::card_module::{
    CardModule, CardModuleError, Completion, CryptogramKind, IssuerAuthentication,
    PinFormatProblem, PinStatus, Step, TerminalData,
};
use telepay::testing::{DialogueRecorder, powered};
use telepay::tlv::dol;
use zeroize::Zeroizing;

type Channel = DialogueRecorder<Transport<Box<dyn Reader + Send>>>;

/// A module over a fresh seeded card, every exchange recorded.
fn module(profile: &str) -> CardModule<Channel> {
    let transport = powered(&format!("sim:{profile}?seed=1")).unwrap();
    CardModule::new(DialogueRecorder::new(transport), TerminalData::france())
}

/// 2026-11-25 10:30:00 UTC.
const DATE: Timestamp = Timestamp(1_795_602_600_000);
const DESIGNATION: &str = "Rapport annuel 2026 (PDF, 48 pages)";

/// The payment request D the front-end would send: 12.50 EUR, fixed nonce.
fn request(minor: u64) -> PaymentRequest {
    PaymentRequest {
        purchase: PurchaseId::from("purchase-1"),
        payment: PaymentId::from("payment-1"),
        merchant: MerchantId::from("frontend-1"),
        service: ServiceId::from("S1"),
        designation: DESIGNATION.into(),
        designation_digest: PaymentRequest::digest_designation(DESIGNATION),
        amount: Money::new(minor, Currency::EUR),
        date: DATE,
        nonce: *b"nonce-0123456789",
        valid_until: DATE.plus_millis(600_000),
        accepted_means: vec![Means::BankCard],
        session: None,
    }
}

fn pin(text: &str) -> Zeroizing<String> {
    Zeroizing::new(text.to_owned())
}

/// The issuer's view of a card: its cryptogram version and ICC master key, derived from
/// the profile's issuer master key with the PAN and PSN the module read.
fn issuer_keys(profile: &str, transaction: &CardTransaction) -> (CryptogramVersion, DoubleKey) {
    let profile = Profile::builtin(profile).unwrap();
    let application = profile
        .applications()
        .iter()
        .find(|application| application.aid() == transaction.aid.as_slice())
        .unwrap();
    let version = CryptogramVersion::from_cvn(transaction.iad[2]).unwrap();
    let key = version
        .derive_icc_master_key(
            application.issuer_master_key(),
            &transaction.pan,
            transaction.pan_sequence,
        )
        .unwrap();
    (version, key)
}

/// The cryptogram an issuer computes from the transaction's fields, with `iad` the IAD
/// that came with it (the first or the second GENERATE AC's).
fn issuer_cryptogram(profile: &str, transaction: &CardTransaction, iad: &[u8]) -> [u8; 8] {
    let (version, key) = issuer_keys(profile, transaction);
    let input = AcInput {
        iad,
        ..transaction.ac_input()
    };
    application_cryptogram(
        version,
        &key,
        transaction.atc,
        &ac_input_data(version, &input),
    )
}

/// The issuer's ARPC (method 1) over the ARQC and `arc`.
fn arpc(profile: &str, transaction: &CardTransaction, arc: [u8; 2]) -> [u8; 8] {
    let (version, key) = issuer_keys(profile, transaction);
    arpc_method1(
        version,
        &key,
        transaction.atc,
        &transaction.cryptogram,
        &arc,
    )
}

fn approve(arpc: Option<[u8; 8]>) -> Verdict {
    Verdict::Positive {
        authorisation_code: "A1B2C3".into(),
        response_code: *b"00",
        arpc,
    }
}

fn refuse(arpc: Option<[u8; 8]>) -> Verdict {
    let reason = RefusalReason::AmountOutOfLimits;
    Verdict::Negative {
        response_code: reason.response_code(),
        reason,
        arpc,
    }
}

/// The commands sent with this instruction byte.
fn commands(module: &CardModule<Channel>, ins: u8) -> Vec<Command> {
    module
        .channel()
        .exchanges()
        .iter()
        .filter(|(command, _)| command.ins() == ins)
        .map(|(command, _)| command.clone())
        .collect()
}

const VERIFY: u8 = 0x20;
const GENERATE_AC: u8 = 0xAE;

#[test]
fn a_whole_purchase_on_every_profile() {
    let cases: [(&str, &str, u8); 4] = [
        // profile, the AID of its priority-1 application, the GENERATE AC format
        ("cb", "A0000000421010", 0x77),
        ("visa", "A0000000031010", 0x80),
        ("mastercard", "A0000000041010", 0x77),
        ("t0-slow", "A0000000421010", 0x80),
    ];
    for (name, aid, format) in cases {
        let profile = Profile::builtin(name).unwrap();
        let mut card = module(name);

        let data = card.read().unwrap().clone();
        assert_eq!(data.pan, profile.pan(), "{name}");
        assert_eq!(data.pan_sequence, profile.pan_sequence(), "{name}");
        assert_eq!(data.expiry, "281231", "{name}");
        assert_eq!(hex::encode_upper(&data.aid), aid, "{name}");
        assert_eq!(data.aip, [0x1C, 0x00], "{name}");
        assert_eq!(data.pin_tries_left, Some(3), "{name}");
        assert_eq!(data.atc, Some(0), "{name}");

        card.present_pin(&pin("1234")).unwrap();
        assert_eq!(card.pin_status(), PinStatus::Verified, "{name}");

        let payment = request(1250);
        let transaction = card.authorise(&payment).unwrap();
        assert_eq!(transaction.cid, 0x80, "{name}: an ARQC");
        assert_eq!(transaction.atc, 1, "{name}");
        assert_eq!(transaction.pan, profile.pan(), "{name}");
        assert_eq!(transaction.amount, [0, 0, 0, 0, 0x12, 0x50], "{name}");
        assert_eq!(transaction.amount_other, [0; 6], "{name}");
        assert_eq!(transaction.terminal_country, [0x02, 0x50], "{name}");
        assert_eq!(transaction.currency, [0x09, 0x78], "{name}");
        assert_eq!(transaction.date, [0x26, 0x11, 0x25], "{name}");
        assert_eq!(transaction.transaction_type, 0x00, "{name}");
        assert_eq!(
            hex::encode_upper(transaction.tvr),
            "8000008000",
            "{name}: no ODA, PIN verified, floor limit exceeded"
        );
        assert_eq!(
            transaction.unpredictable_number,
            PaymentRequest::unpredictable_number(&payment.nonce, &payment.designation_digest),
            "{name}"
        );
        assert!(transaction.pin_verified, "{name}");
        assert_eq!(
            issuer_cryptogram(name, &transaction, &transaction.iad),
            transaction.cryptogram,
            "{name}: the ARQC verifies under the issuer's key"
        );
        let mut tampered = transaction.clone();
        tampered.amount = [0, 0, 0, 0, 0x12, 0x51];
        assert_ne!(
            issuer_cryptogram(name, &tampered, &tampered.iad),
            transaction.cryptogram,
            "{name}: a different amount does not verify"
        );

        // The response format the profile declares reached the parser.
        let answers = card.channel().exchanges().last().unwrap().1.data.clone();
        assert_eq!(answers.first(), Some(&format), "{name}");

        let arpc = arpc(name, &transaction, *b"00");
        let completion = card.complete(&approve(Some(arpc))).unwrap();
        assert_eq!(completion.kind, CryptogramKind::Tc, "{name}");
        assert_eq!(completion.cid, 0x40, "{name}");
        assert_eq!(completion.atc, 1, "{name}");
        assert_eq!(
            completion.issuer_authentication,
            IssuerAuthentication::Accepted,
            "{name}"
        );
        assert_eq!(
            issuer_cryptogram(name, &transaction, &completion.iad),
            completion.cryptogram,
            "{name}: the TC verifies too"
        );
        // P1 of the two GENERATE AC: ARQC then TC.
        let p1s: Vec<u8> = commands(&card, GENERATE_AC)
            .iter()
            .map(Command::p1)
            .collect();
        assert_eq!(p1s, [0x80, 0x40], "{name}");
    }
}

#[test]
fn the_cb_card_receives_the_designation_digest_and_the_derived_unpredictable_number() {
    let mut card = module("cb");
    card.read().unwrap();
    card.present_pin(&pin("1234")).unwrap();
    let payment = request(1250);
    card.authorise(&payment).unwrap();

    let cdol1 = card.card().unwrap().cdol1.clone();
    let sent = commands(&card, GENERATE_AC);
    let [first] = sent.as_slice() else {
        panic!("one GENERATE AC, got {sent:?}")
    };
    let fields = dol::split_dol_data(&cdol1, first.data()).unwrap();
    let value = |tag: u32| {
        fields
            .iter()
            .find(|(field, _)| *field == tag)
            .map(|(_, value)| value.to_vec())
    };
    assert_eq!(
        value(0x9F7C),
        Some(payment.designation_digest.to_vec()),
        "9F7C is the designation digest"
    );
    assert_eq!(
        value(0x9F37),
        Some(
            PaymentRequest::unpredictable_number(&payment.nonce, &payment.designation_digest)
                .to_vec()
        ),
        "9F37 is derived from the nonce and the digest"
    );
    // Another designation, same nonce: another unpredictable number reaches the card.
    let mut other = request(1250);
    other.designation_digest = PaymentRequest::digest_designation("Rapport annuel 2025");
    assert_ne!(
        PaymentRequest::unpredictable_number(&other.nonce, &other.designation_digest).to_vec(),
        value(0x9F37).unwrap()
    );
}

#[test]
fn wrong_pins_count_down_then_the_pin_is_blocked() {
    let mut card = module("cb");
    assert_eq!(card.read().unwrap().pin_tries_left, Some(3));
    let cases: [(&str, CardModuleError, PinStatus); 3] = [
        (
            "0000",
            CardModuleError::WrongPin { tries_left: 2 },
            PinStatus::Wrong { tries_left: 2 },
        ),
        (
            "1111",
            CardModuleError::WrongPin { tries_left: 1 },
            PinStatus::Wrong { tries_left: 1 },
        ),
        ("9999", CardModuleError::PinBlocked, PinStatus::Blocked),
    ];
    for (typed, expected, status) in cases {
        let error = card.present_pin(&pin(typed)).unwrap_err();
        assert_eq!(error.to_string(), expected.to_string(), "{typed}");
        assert_eq!(error.step(), Step::Pin);
        assert_eq!(card.pin_status(), status, "{typed}");
        assert!(!format!("{error} {error:?}").contains(typed), "{typed}");
    }
    // What the card answered, decoded: 63C2, 63C1, then 6983.
    let answers: Vec<StatusWord> = card
        .channel()
        .exchanges()
        .iter()
        .filter(|(command, _)| command.ins() == VERIFY)
        .map(|(_, response)| response.sw)
        .collect();
    assert_eq!(
        answers,
        [
            StatusWord::VerificationFailed { tries_left: 2 },
            StatusWord::VerificationFailed { tries_left: 1 },
            StatusWord::AuthenticationMethodBlocked,
        ]
    );

    // Even the right PIN is no longer presented: the card said it is blocked.
    let error = card.present_pin(&pin("1234")).unwrap_err();
    assert!(matches!(error, CardModuleError::PinBlocked), "{error}");
    assert_eq!(commands(&card, VERIFY).len(), 3, "no fourth VERIFY");

    // The card still signs, and says the PIN failed: TVR byte 3 "cardholder
    // verification was not successful" and "PIN try limit exceeded".
    let transaction = card.authorise(&request(1250)).unwrap();
    assert!(!transaction.pin_verified);
    assert_eq!(hex::encode_upper(transaction.tvr), "8000A08000");
    assert_eq!(
        issuer_cryptogram("cb", &transaction, &transaction.iad),
        transaction.cryptogram
    );
    card.complete(&refuse(None)).unwrap();
    assert_eq!(card.read().unwrap().pin_tries_left, Some(0), "it persists");
}

#[test]
fn a_right_pin_after_a_wrong_one_resets_the_counter() {
    let mut card = module("visa");
    card.read().unwrap();
    let error = card.present_pin(&pin("4321")).unwrap_err();
    assert!(matches!(error, CardModuleError::WrongPin { tries_left: 2 }));
    card.present_pin(&pin("1234")).unwrap();
    assert_eq!(card.pin_status(), PinStatus::Verified);
    assert!(card.authorise(&request(500)).unwrap().pin_verified);
    card.complete(&refuse(None)).unwrap();
    assert_eq!(card.read().unwrap().pin_tries_left, Some(3));
}

#[test]
fn the_blocked_card_gets_no_verify_and_declines_with_an_aac() {
    let mut card = module("blocked");
    let data = card.read().unwrap();
    assert_eq!(data.pin_tries_left, Some(0));
    assert_eq!(data.pan, "4970100000000030");

    let error = card.present_pin(&pin("1234")).unwrap_err();
    assert_eq!(
        error.to_string(),
        "the card's PIN is blocked (PIN try limit exceeded)"
    );
    assert!(commands(&card, VERIFY).is_empty(), "EMV Book 3 §10.5.1");

    let transaction = card.authorise(&request(1250)).unwrap();
    assert_eq!(transaction.cid, 0x80);
    assert!(!transaction.pin_verified);
    assert_eq!(hex::encode_upper(transaction.tvr), "8000A08000");
    // The card's own CVR says the PIN try limit is exceeded (byte 3 b7).
    assert_eq!(transaction.iad[5] & 0x40, 0x40, "{:02X?}", transaction.iad);
    assert_eq!(
        issuer_cryptogram("blocked", &transaction, &transaction.iad),
        transaction.cryptogram
    );
    let completion = card.complete(&refuse(None)).unwrap();
    assert_eq!(completion.kind, CryptogramKind::Aac);
}

#[test]
fn a_pin_that_is_not_4_to_12_digits_is_refused_before_any_verify() {
    let mut card = module("cb");
    card.read().unwrap();
    let cases = [
        ("12a4", PinFormatProblem::NotDigits),
        ("12 34", PinFormatProblem::NotDigits),
        ("123", PinFormatProblem::TooShort),
        ("1234567890123", PinFormatProblem::TooLong),
    ];
    for (typed, problem) in cases {
        let error = card.present_pin(&pin(typed)).unwrap_err();
        assert!(
            matches!(error, CardModuleError::BadPinFormat { problem: got } if got == problem),
            "{typed}: {error:?}"
        );
        let shown = format!("{error} {error:?}");
        assert!(!shown.contains(typed), "{typed} leaked in {shown}");
    }
    assert!(commands(&card, VERIFY).is_empty());
    assert_eq!(card.pin_status(), PinStatus::NotPresented);

    // Signing without a PIN: TVR byte 3 "cardholder verification was not successful"
    // and "PIN entry required, PIN pad present, but PIN was not entered".
    let transaction = card.authorise(&request(1250)).unwrap();
    assert!(!transaction.pin_verified);
    assert_eq!(hex::encode_upper(transaction.tvr), "8000888000");
    let debug = format!("{card:?}");
    assert!(!debug.contains(transaction.pan.as_str()), "{debug}");
}

#[test]
fn a_negative_verdict_ends_with_an_aac() {
    for with_arpc in [false, true] {
        let mut card = module("mastercard");
        card.read().unwrap();
        card.present_pin(&pin("1234")).unwrap();
        let transaction = card.authorise(&request(1250)).unwrap();
        let refusal = RefusalReason::AmountOutOfLimits.response_code();
        let arpc = with_arpc.then(|| arpc("mastercard", &transaction, refusal));
        let completion = card.complete(&refuse(arpc)).unwrap();
        assert_eq!(completion.kind, CryptogramKind::Aac, "ARPC {with_arpc}");
        assert_eq!(completion.cid, 0x00);
        assert_eq!(
            completion.issuer_authentication,
            if with_arpc {
                IssuerAuthentication::Accepted
            } else {
                IssuerAuthentication::NotSent
            }
        );
        assert_eq!(
            issuer_cryptogram("mastercard", &transaction, &completion.iad),
            completion.cryptogram,
            "the AAC verifies"
        );
        let second = commands(&card, GENERATE_AC).pop().unwrap();
        assert_eq!(second.p1(), 0x00, "AAC asked");
        // CDOL2 8A 02 91 0A 95 05 9F37 04: the response code, then 91.
        assert_eq!(&second.data()[..2], b"61");
        let expected_91: Vec<u8> = arpc
            .map(|arpc| [arpc.as_slice(), b"61"].concat())
            .unwrap_or_else(|| vec![0; 10]);
        assert_eq!(&second.data()[2..12], expected_91.as_slice());
    }
}

/// A positive verdict whose ARPC is wrong (one bit flipped): the card cannot
/// authenticate the issuer, so it declines with an AAC although the terminal asked for a
/// TC, reports "issuer authentication failed" in its CVR (byte 2 b4), and remembers it:
/// its next ARQC says "issuer authentication failed on the last online transaction"
/// (CVR byte 3 b4).
#[test]
fn a_positive_verdict_with_a_wrong_arpc_is_declined_by_the_card() {
    let mut card = module("cb");
    card.read().unwrap();
    card.present_pin(&pin("1234")).unwrap();
    let transaction = card.authorise(&request(1250)).unwrap();
    let mut forged = arpc("cb", &transaction, *b"00");
    forged[0] ^= 0x01;
    let completion: Completion = card.complete(&approve(Some(forged))).unwrap();
    assert_eq!(completion.kind, CryptogramKind::Aac);
    assert_eq!(
        completion.issuer_authentication,
        IssuerAuthentication::Failed
    );
    assert_eq!(completion.iad[4] & 0x08, 0x08, "{:02X?}", completion.iad);
    assert_eq!(commands(&card, GENERATE_AC).pop().unwrap().p1(), 0x40);

    card.read().unwrap();
    card.present_pin(&pin("1234")).unwrap();
    let next = card.authorise(&request(1250)).unwrap();
    assert_eq!(next.atc, 2);
    assert_eq!(next.iad[5] & 0x08, 0x08, "{:02X?}", next.iad);
}

/// A channel over the real card that answers GENERATE AC itself: no software card answers
/// anything but an ARQC to a terminal that asks for one, so the other answers are
/// injected here.
struct GenerateAcAnswers<C> {
    card: C,
    answer: Vec<u8>,
}

impl<C: CardChannel> CardChannel for GenerateAcAnswers<C> {
    fn transmit(&mut self, command: &Command) -> Result<Response, ReaderError> {
        if command.ins() == GENERATE_AC {
            return Ok(Response::parse(&self.answer).unwrap());
        }
        self.card.transmit(command)
    }
}

#[test]
fn first_generate_ac_answers_other_than_an_arqc() {
    let cases: [(&str, &str); 4] = [
        (
            "771E9F2701009F360200019F260811223344556677889F100706011203201000 9000",
            "first GENERATE AC: the card declined offline (AAC, CID 00, ATC 1)",
        ),
        (
            "800B40000111223344556677889000",
            "first GENERATE AC: asked for ARQC (online authorisation requested), the card answered TC (approved) (CID 40)",
        ),
        (
            "6985",
            "first GENERATE AC: the card answered 6985 (conditions of use not satisfied)",
        ),
        (
            "8003400001 9000",
            "first GENERATE AC: malformed response 8003400001: format 1 template 80 holds 3 bytes; CID, ATC and AC need 11",
        ),
    ];
    for (answer, expected) in cases {
        let compact: String = answer.split_whitespace().collect();
        let channel = GenerateAcAnswers {
            card: powered("sim:cb?seed=1").unwrap(),
            answer: hex::decode(compact).unwrap(),
        };
        let mut card = CardModule::new(channel, TerminalData::france());
        card.read().unwrap();
        card.present_pin(&pin("1234")).unwrap();
        let error = card.authorise(&request(1250)).unwrap_err();
        assert_eq!(error.to_string(), expected);
        assert_eq!(error.step(), Step::FirstGenerateAc);
        // Whatever the answer, the card's transaction is over.
        let error = card.complete(&approve(None)).unwrap_err();
        assert!(
            matches!(
                error,
                CardModuleError::OutOfOrder {
                    step: Step::SecondGenerateAc,
                    ..
                }
            ),
            "{error}"
        );
    }
}

/// A card that answers "file or application not found" to everything.
struct NoApplication;

impl CardChannel for NoApplication {
    fn transmit(&mut self, _command: &Command) -> Result<Response, ReaderError> {
        Ok(Response::status(StatusWord::FileNotFound))
    }
}

#[test]
fn a_card_without_a_payment_application_fails_the_read() {
    let mut card = CardModule::new(NoApplication, TerminalData::france());
    let error = card.read().unwrap_err();
    assert_eq!(error.step(), Step::Reading);
    assert_eq!(
        error.to_string(),
        "reading the card: the card offers no payment application: no PPSE, no PSE, and none of the known AIDs (CB A0000000421010, Visa A0000000031010, Mastercard A0000000041010, Maestro A0000000043060) answered"
    );
    assert!(card.card().is_none());
    assert!(matches!(
        card.present_pin(&pin("1234")),
        Err(CardModuleError::OutOfOrder {
            step: Step::Pin,
            ..
        })
    ));
}

#[test]
fn calls_out_of_order_are_refused_and_a_new_read_starts_a_new_transaction() {
    let mut card = module("cb");
    let error = card.authorise(&request(1250)).unwrap_err();
    assert_eq!(
        error.to_string(),
        "first GENERATE AC: read the card first; each GENERATE AC needs a fresh GET PROCESSING OPTIONS"
    );
    let error = card.present_pin(&pin("1234")).unwrap_err();
    assert!(matches!(
        error,
        CardModuleError::OutOfOrder {
            step: Step::Pin,
            ..
        }
    ));
    card.read().unwrap();
    let error = card.complete(&approve(None)).unwrap_err();
    assert_eq!(
        error.to_string(),
        "second GENERATE AC: the first GENERATE AC must have answered an ARQC"
    );
    assert!(
        card.channel()
            .exchanges()
            .iter()
            .all(|(c, _)| c.ins() != GENERATE_AC)
    );

    card.present_pin(&pin("1234")).unwrap();
    let first = card.authorise(&request(1250)).unwrap();
    let error = card.present_pin(&pin("1234")).unwrap_err();
    assert!(matches!(
        error,
        CardModuleError::OutOfOrder {
            step: Step::Pin,
            ..
        }
    ));
    let arpc = arpc("cb", &first, *b"00");
    card.complete(&approve(Some(arpc))).unwrap();
    let error = card.authorise(&request(1250)).unwrap_err();
    assert!(
        matches!(error, CardModuleError::OutOfOrder { .. }),
        "{error}"
    );

    // The next payment: a new read, the PIN status forgotten, the ATC one up.
    assert_eq!(card.read().unwrap().atc, Some(1));
    assert_eq!(card.pin_status(), PinStatus::NotPresented);
    card.present_pin(&pin("1234")).unwrap();
    assert_eq!(card.authorise(&request(990)).unwrap().atc, 2);
}

#[test]
fn an_amount_beyond_n12_is_refused_before_the_card_sees_it() {
    let mut card = module("cb");
    card.read().unwrap();
    card.present_pin(&pin("1234")).unwrap();
    let error = card.authorise(&request(1_000_000_000_000)).unwrap_err();
    assert_eq!(
        error.to_string(),
        "first GENERATE AC: the amount 1000000000000 (minor units) exceeds 999999999999, the largest n12 Amount, Authorised (9F02)"
    );
    assert!(commands(&card, GENERATE_AC).is_empty());
    // The transaction is still open: the same card signs a valid amount.
    let transaction = card.authorise(&request(999_999_999_999)).unwrap();
    assert_eq!(transaction.amount, [0x99; 6]);
}

#[test]
fn one_purchase_dialogue_snapshot() {
    let mut card = module("cb");
    card.read().unwrap();
    card.present_pin(&pin("1234")).unwrap();
    let transaction = card.authorise(&request(1250)).unwrap();
    let arpc = arpc("cb", &transaction, *b"00");
    let completion = card.complete(&approve(Some(arpc))).unwrap();
    assert_eq!(completion.kind, CryptogramKind::Tc);

    let text = card.into_channel().render(&[]);
    assert!(text.contains("0020008008****************"), "{text}");
    assert!(!text.contains("241234"), "the PIN block is masked");
    insta::assert_snapshot!("card_module_cb_purchase", text);
}
