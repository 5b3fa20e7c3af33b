//! The bank-card acquirer's rules against REAL cryptograms: each transaction is made by
//! card-applet-sim's software card, driven APDU by APDU through telepay's transport
//! (SELECT, GET PROCESSING OPTIONS, READ RECORD, VERIFY, GENERATE AC), for a payment
//! request built here. Then:
//!
//! - intact, each card and application is authorised, and the card itself accepts the
//!   acquirer's ARPC on its second GENERATE AC;
//! - the tampering matrix: each field of E (and of D) changed alone is refused, for the
//!   reason the rules' order gives;
//! - a replayed or re-ordered E is refused for its counter;
//! - 10,000 random mutations of valid transactions are all refused.
//!
//! Cross-check with pyemv: the acquirer's verification of a CVN 18 and a CVN 10 ARQC
//! and its ARPCs are pinned to pyemv-computed answers in `src/acquirer/card.rs`
//! (`pyemv_known_answers`), and card-applet-sim's `tests/crypto_pyemv.rs` checks the
//! same algorithms (AC from tags and ARPC method 1, CVN 10 and 18) on 200 inputs each;
//! nothing is repeated here.

use card_applet_sim::SmartCard;
use card_applet_sim::card::{SimCard, SimOptions};
use card_applet_sim::crypto::arpc_method1;
use card_applet_sim::profile::Profile;
use std::collections::BTreeMap;
use telepay::acquirer::card::{AmountLimits, BankCardRules, CardHistory, Decision, IssuerTable};
use telepay::apdu::Command;
use telepay::messages::{
    AcquirerId, AcquirerTransaction, CardTransaction, Currency, Means, MerchantId, Money, Payment,
    PaymentId, PaymentRequest, PurchaseId, RefusalReason, ServiceId, TerminalId, Timestamp,
    Transaction, Verdict,
};
use telepay::reader::Transport;
use telepay::reader::sim::SimReader;
use telepay::tlv::{self, TagNumber, dol};

const CB_AID: &str = "A0000000421010";
const VISA_AID: &str = "A0000000031010";
const MASTERCARD_AID: &str = "A0000000041010";
/// 2026-11-25T12:00:00Z.
const NOON_2026_11_25: Timestamp = Timestamp(1_795_608_000_000);
const DAY_MILLIS: i64 = 86_400_000;

// -------------------------------------------------------------------------------------
// The terminal side, small: what a card module will do properly later.

/// A consultation terminal's card reader with one shipped test card in it.
struct Terminal {
    transport: Transport<SimReader>,
    /// The PIN block presented with VERIFY, or none (no VERIFY at all).
    pin_block: Option<&'static str>,
}

impl Terminal {
    fn with_card(profile: &str) -> Terminal {
        let card = SimCard::new(Profile::builtin(profile).unwrap(), SimOptions::seeded(1)).unwrap();
        let boxed: Box<dyn SmartCard + Send> = Box::new(card);
        let mut transport = Transport::new(SimReader::with_card(format!("sim:{profile}"), boxed));
        transport.power_on().unwrap();
        Terminal {
            transport,
            pin_block: Some("241234FFFFFFFFFF"),
        }
    }

    /// Sends a command and returns the response data; the status word must be `9000`.
    fn send(&mut self, apdu: &[u8]) -> Vec<u8> {
        let response = self
            .transport
            .transmit(&Command::parse(apdu).unwrap())
            .unwrap();
        assert!(
            response.is_success(),
            "{}: {}",
            hex::encode_upper(apdu),
            response.sw.meaning()
        );
        response.data
    }

    /// The card pays `request` with application `aid`, asked for an ARQC.
    fn pay(&mut self, aid: &str, request: &PaymentRequest) -> CardTransaction {
        self.pay_asking(aid, request, 0x80)
    }

    /// The card pays `request` with `aid`; `p1` is the cryptogram asked of the first
    /// GENERATE AC (`80` ARQC, `40` TC). EMV Book 3 §10.1–§10.5, the shortest way.
    fn pay_asking(&mut self, aid: &str, request: &PaymentRequest, p1: u8) -> CardTransaction {
        let aid = hex::decode(aid).unwrap();
        let terminal = terminal_data(request);

        // SELECT by AID (ISO 7816-4 §11.1.1), then GET PROCESSING OPTIONS with the
        // PDOL filled from the terminal data (EMV Book 3 §5.4, §6.5.8).
        let fci = tlv::parse(&self.send(&apdu(0x00, 0xA4, 0x04, 0x00, &aid))).unwrap();
        let pdol = tlv::find(&fci, 0x9F38)
            .and_then(|t| t.bytes())
            .unwrap_or_default();
        let pdol_data = dol::build_dol_data(&dol::parse_dol(pdol).unwrap(), &terminal);
        let mut template = vec![0x83, pdol_data.len() as u8];
        template.extend(pdol_data);
        let gpo = self.send(&apdu(0x80, 0xA8, 0x00, 0x00, &template));
        let (aip, afl) = match tlv::parse(&gpo).unwrap().as_slice() {
            // Format 1: 80 AIP AFL; format 2: 77 { 82 AIP, 94 AFL }.
            [format1] if format1.tag() == 0x80 => {
                let value = format1.bytes().unwrap();
                (value[..2].to_vec(), value[2..].to_vec())
            }
            [format2] => (
                format2.find(0x82).unwrap().bytes().unwrap().to_vec(),
                format2.find(0x94).unwrap().bytes().unwrap().to_vec(),
            ),
            other => panic!("GPO answer {other:?}"),
        };

        // READ RECORD over the AFL (EMV Book 3 §10.2): SFI, first and last record.
        let mut records = Vec::new();
        for entry in afl.chunks(4) {
            let sfi = entry[0] >> 3;
            for number in entry[1]..=entry[2] {
                let read = [0x00, 0xB2, number, (sfi << 3) | 0x04, 0x00];
                records.extend(tlv::parse(&self.send(&read)).unwrap());
            }
        }
        let record = |tag: TagNumber| tlv::find(&records, tag).unwrap().bytes().unwrap();
        let pan = hex::encode_upper(record(0x5A))
            .trim_end_matches('F')
            .to_owned();
        let expiry = hex::encode_upper(record(0x5F24));
        let psn = record(0x5F34)[0];
        let cdol1 = dol::parse_dol(record(0x8C)).unwrap();

        // VERIFY, plaintext offline PIN (EMV Book 3 §6.5.12, ISO 9564 format 2): 1234
        // unless the test says otherwise; a wrong one answers 63Cx, which is no failure
        // of this function.
        if let Some(block) = self.pin_block {
            let verify = Command::parse(
                &hex::decode(format!("00200080 08{block}").replace(' ', "")).unwrap(),
            )
            .unwrap();
            self.transport.transmit(&verify).unwrap();
        }

        // GENERATE AC (EMV Book 3 §6.5.5) with the CDOL1 data.
        let cdol1_data = dol::build_dol_data(&cdol1, &terminal);
        let (cid, atc, cryptogram, iad) =
            parse_generate_ac(&self.send(&apdu(0x80, 0xAE, p1, 0x00, &cdol1_data)));

        CardTransaction {
            pan: pan.into(),
            pan_sequence: (psn >> 4) * 10 + (psn & 0x0F),
            expiry: expiry.into(),
            aid,
            aip: aip.try_into().unwrap(),
            atc,
            cid,
            cryptogram,
            iad,
            amount: terminal[&0x9F02].clone().try_into().unwrap(),
            amount_other: terminal[&0x9F03].clone().try_into().unwrap(),
            terminal_country: terminal[&0x9F1A].clone().try_into().unwrap(),
            tvr: terminal[&0x95].clone().try_into().unwrap(),
            currency: terminal[&0x5F2A].clone().try_into().unwrap(),
            date: terminal[&0x9A].clone().try_into().unwrap(),
            transaction_type: terminal[&0x9C][0],
            unpredictable_number: terminal[&0x9F37].clone().try_into().unwrap(),
            pin_verified: true,
        }
    }

    /// The second GENERATE AC asking for a TC, with the acquirer's ARC and ARPC as Issuer
    /// Authentication Data (91 = ARPC ‖ ARC, method 1): the card's CID.
    fn complete(&mut self, request: &PaymentRequest, arc: [u8; 2], arpc: [u8; 8]) -> u8 {
        let mut terminal = terminal_data(request);
        terminal.insert(0x8A, arc.to_vec());
        terminal.insert(0x91, [arpc.as_slice(), arc.as_slice()].concat());
        // The shipped profiles' CDOL2: 8A 02 91 0A 95 05 9F37 04.
        let cdol2 = dol::parse_dol(&hex::decode("8A02910A95059F3704").unwrap()).unwrap();
        let data = dol::build_dol_data(&cdol2, &terminal);
        parse_generate_ac(&self.send(&apdu(0x80, 0xAE, 0x40, 0x00, &data))).0
    }
}

/// A case 4 short command: header, Lc, data, Le = 00.
fn apdu(cla: u8, ins: u8, p1: u8, p2: u8, data: &[u8]) -> Vec<u8> {
    let mut bytes = vec![cla, ins, p1, p2, data.len() as u8];
    bytes.extend_from_slice(data);
    bytes.push(0x00);
    bytes
}

/// The GENERATE AC answer (EMV Book 3 §6.5.5.4): format 1 `80` CID ATC AC IAD, or format
/// 2 `77` { 9F27 CID, 9F36 ATC, 9F26 AC, 9F10 IAD }.
fn parse_generate_ac(answer: &[u8]) -> (u8, u16, [u8; 8], Vec<u8>) {
    let tlvs = tlv::parse(answer).unwrap();
    let template = &tlvs[0];
    if template.tag() == 0x80 {
        let v = template.bytes().unwrap();
        let atc = u16::from_be_bytes([v[1], v[2]]);
        return (v[0], atc, v[3..11].try_into().unwrap(), v[11..].to_vec());
    }
    let get = |tag: TagNumber| template.find(tag).unwrap().bytes().unwrap();
    (
        get(0x9F27)[0],
        u16::from_be_bytes(get(0x9F36).try_into().unwrap()),
        get(0x9F26).try_into().unwrap(),
        get(0x9F10).to_vec(),
    )
}

/// What the terminal gives the card, by tag, all from the payment request.
fn terminal_data(request: &PaymentRequest) -> BTreeMap<TagNumber, Vec<u8>> {
    let un = PaymentRequest::unpredictable_number(&request.nonce, &request.designation_digest);
    BTreeMap::from([
        (0x9F02, request.amount.emv_amount().unwrap().to_vec()),
        (0x9F03, vec![0; 6]),
        (0x9F1A, vec![0x02, 0x50]), // France
        (0x95, vec![0; 5]),
        (0x5F2A, request.amount.currency.emv_code().to_vec()),
        (0x9A, request.date.emv_date().to_vec()),
        (0x9C, vec![0x00]), // purchase
        (0x9F37, un.to_vec()),
        (0x9F7C, request.designation_digest.to_vec()),
        (0x9F35, vec![0x34]), // unattended, cardholder-operated, online only
    ])
}

// -------------------------------------------------------------------------------------
// Requests, transactions, the acquirer.

fn acquirer() -> BankCardRules {
    BankCardRules::new(
        AcquirerId::from("acquirer-bank"),
        IssuerTable::test_issuers().unwrap(),
        AmountLimits::default(),
    )
}

/// A payment request for `minor` euro cents; everything else derived from `payment`.
fn request(payment: &str, minor: u64) -> PaymentRequest {
    let designation = format!("Report bought by {payment}");
    let mut nonce = [0u8; 16];
    for (slot, byte) in nonce.iter_mut().zip(payment.bytes().cycle()) {
        *slot = byte;
    }
    PaymentRequest {
        purchase: PurchaseId::from(format!("purchase-of-{payment}")),
        payment: PaymentId::from(payment),
        merchant: MerchantId::from("merchant-docs"),
        service: ServiceId::from("S1"),
        designation_digest: PaymentRequest::digest_designation(&designation),
        designation: designation.into(),
        amount: Money::new(minor, Currency::EUR),
        date: NOON_2026_11_25,
        nonce,
        valid_until: NOON_2026_11_25.plus_millis(600_000),
        accepted_means: vec![Means::BankCard],
        session: None,
    }
}

/// F: the front-end's submission of the card's transaction for `request`.
fn submission(request: PaymentRequest, card: CardTransaction) -> AcquirerTransaction {
    AcquirerTransaction {
        acquirer: AcquirerId::from("acquirer-bank"),
        merchant: request.merchant.clone(),
        transaction: Transaction {
            purchase: request.purchase.clone(),
            payment: request.payment.clone(),
            terminal: TerminalId::from("terminal-1"),
            means: Payment::BankCard(card),
        },
        request,
        provision: None,
    }
}

fn card_mut(f: &mut AcquirerTransaction) -> &mut CardTransaction {
    let Payment::BankCard(card) = &mut f.transaction.means else {
        panic!("a bank-card payment")
    };
    card
}

fn card_of(f: &AcquirerTransaction) -> &CardTransaction {
    let Payment::BankCard(card) = &f.transaction.means else {
        panic!("a bank-card payment")
    };
    card
}

/// The card and application of each valid transaction: every CVN, both GPO and both
/// GENERATE AC formats, the T=0 card, and the card sharing its BIN under another key.
const CARDS: &[(&str, &str)] = &[
    ("cb", CB_AID),
    ("cb", VISA_AID),
    ("visa", VISA_AID),
    ("mastercard", MASTERCARD_AID),
    ("t0-slow", CB_AID),
];

/// One genuine F per card and application, for 42.50 EUR.
fn genuine_transactions() -> Vec<AcquirerTransaction> {
    CARDS
        .iter()
        .map(|(profile, aid)| {
            let request = request(&format!("pay-{profile}-{aid}"), 4250);
            let card = Terminal::with_card(profile).pay(aid, &request);
            submission(request, card)
        })
        .collect()
}

/// The ARPC the issuer of this profile's application would compute, from the PROFILE's
/// key (not the acquirer's table): ARPC method 1 over the ARQC and `arc`.
fn issuer_arpc(profile: &str, card: &CardTransaction, arc: &[u8; 2]) -> [u8; 8] {
    let profile = Profile::builtin(profile).unwrap();
    let app = profile
        .applications()
        .iter()
        .find(|app| app.aid() == card.aid.as_slice())
        .unwrap();
    let version = app.cryptogram_version().unwrap();
    let icc = version
        .derive_icc_master_key(app.issuer_master_key(), &card.pan, card.pan_sequence)
        .unwrap();
    arpc_method1(version, &icc, card.atc, &card.cryptogram, arc)
}

fn refusal(decision: &Decision) -> Option<(RefusalReason, bool)> {
    match &decision.acknowledgement.verdict {
        Verdict::Positive { .. } => None,
        Verdict::Negative { reason, arpc, .. } => Some((reason.clone(), arpc.is_some())),
    }
}

// -------------------------------------------------------------------------------------
// Genuine transactions.

/// Claim 11: the card signs after the PIN is presented. A genuine cryptogram made
/// without VERIFY, or after a wrong PIN, says so in the card's verification results
/// (under the cryptogram): the acquirer refuses it, with an ARPC since it is authentic.
#[test]
fn a_cryptogram_made_without_a_verified_pin_is_refused() {
    let rules = acquirer();
    for (pin_block, case) in [(None, "no VERIFY"), (Some("240000FFFFFFFFFF"), "wrong PIN")] {
        let request = request("pay-unverified", 4250);
        let mut terminal = Terminal::with_card("cb");
        terminal.pin_block = pin_block;
        let card = terminal.pay("A0000000421010", &request);
        let decision = rules.decide(&submission(request, card), &CardHistory::default());
        assert_eq!(
            refusal(&decision),
            Some((RefusalReason::CardholderNotVerified, true)),
            "{case}"
        );
    }
}

#[test]
fn genuine_transactions_are_authorised_and_the_card_accepts_the_arpc() {
    let acquirer = acquirer();
    for (profile, aid) in CARDS {
        let mut terminal = Terminal::with_card(profile);
        let request = request(&format!("pay-{profile}-{aid}"), 4250);
        let card = terminal.pay(aid, &request);
        assert_eq!(card.cid, 0x80, "{profile} {aid}: an ARQC");
        let f = submission(request.clone(), card.clone());

        let decision = acquirer.decide(&f, &CardHistory::default());
        let Verdict::Positive {
            authorisation_code,
            response_code,
            arpc,
        } = &decision.acknowledgement.verdict
        else {
            panic!("{profile} {aid}: {:?}", decision.acknowledgement.verdict);
        };
        assert_eq!(authorisation_code.len(), 6);
        assert_eq!(response_code, b"00");
        assert_eq!(
            *arpc,
            Some(issuer_arpc(profile, &card, b"00")),
            "{profile} {aid}"
        );
        assert_eq!(decision.record_atc, Some(card.atc));
        assert_eq!(decision.acknowledgement.payment, request.payment);

        // The card authenticates the acquirer's answer and approves: TC.
        assert_eq!(
            terminal.complete(&request, *b"00", arpc.unwrap()),
            0x40,
            "{profile} {aid}: the card's second GENERATE AC"
        );
    }
}

#[test]
fn a_genuine_decline_carries_an_arpc_the_card_accepts() {
    // The card was valid through 2028-12-31; on 2029-01-01 it still signs, the
    // acquirer refuses (54) and authenticates its refusal.
    let acquirer = acquirer();
    let mut terminal = Terminal::with_card("cb");
    let mut late = request("pay-late", 4250);
    late.date = Timestamp(1_861_920_000_000); // 2029-01-01T00:00:00Z
    let card = terminal.pay(CB_AID, &late);
    let decision = acquirer.decide(
        &submission(late.clone(), card.clone()),
        &CardHistory::default(),
    );
    let Verdict::Negative {
        reason: RefusalReason::CardExpired,
        response_code,
        arpc: Some(arpc),
    } = decision.acknowledgement.verdict
    else {
        panic!("{:?}", decision.acknowledgement.verdict);
    };
    assert_eq!(response_code, *b"54");
    assert_eq!(arpc, issuer_arpc("cb", &card, b"54"));
    // A declining ARC: the card authenticates the issuer and declines (AAC).
    assert_eq!(terminal.complete(&late, response_code, arpc), 0x00);
}

#[test]
fn a_card_that_approved_offline_asked_for_no_authorisation() {
    // 10.00 EUR is under the cb card's 30.00 floor: asked for a TC, it gives one.
    let mut terminal = Terminal::with_card("cb");
    let small = request("pay-small", 1000);
    let card = terminal.pay_asking(CB_AID, &small, 0x40);
    assert_eq!(card.cid, 0x40);
    let decision = acquirer().decide(&submission(small, card), &CardHistory::default());
    assert_eq!(
        refusal(&decision),
        Some((RefusalReason::NotAnAuthorisationRequest, false))
    );
}

// -------------------------------------------------------------------------------------
// The tampering matrix.

/// Another digit at `index`, the Luhn check digit recomputed: a well-formed PAN.
fn sibling_pan(pan: &str, index: usize) -> String {
    let mut digits: Vec<u8> = pan.bytes().map(|b| b - b'0').collect();
    digits[index] = (digits[index] + 1) % 10;
    let body = &digits[..digits.len() - 1];
    let sum: u32 = body
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 0 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    let check = ((10 - sum % 10) % 10) as u8;
    body.iter()
        .chain(std::iter::once(&check))
        .map(|d| char::from(b'0' + d))
        .collect()
}

type Mutation = fn(&mut AcquirerTransaction);

/// One row per field of E (and of D): the change, the reason, and whether the answer
/// still carries an ARPC (the card's ARQC still verifies when only D or an uncovered
/// field changed).
#[rustfmt::skip]
fn matrix() -> Vec<(&'static str, Mutation, RefusalReason, bool)> {
    use RefusalReason as R;
    vec![
        ("amount (E)", |f| card_mut(f).amount[5] ^= 0x01, R::MismatchWithRequest, false),
        ("amount (D and E alike)", |f| { f.request.amount.minor += 1; card_mut(f).amount = f.request.amount.emv_amount().unwrap(); }, R::CryptogramInvalid, false),
        ("amount (D)", |f| f.request.amount.minor -= 1, R::MismatchWithRequest, true),
        ("currency (E)", |f| card_mut(f).currency = [0x08, 0x40], R::MismatchWithRequest, false),
        ("currency (D and E alike)", |f| { f.request.amount.currency = Currency::USD; card_mut(f).currency = Currency::USD.emv_code(); }, R::CryptogramInvalid, false),
        ("PAN: one digit", |f| { let card = card_mut(f); let mut pan = card.pan.to_string(); pan.replace_range(10..11, "7"); card.pan = pan.into(); }, R::InvalidPan, false),
        ("PAN: another card of the issuer", |f| card_mut(f).pan = sibling_pan(&card_of(f).pan, 11).into(), R::CryptogramInvalid, false),
        ("PAN: a BIN nobody issues", |f| card_mut(f).pan = "4000000000000002".into(), R::UnknownIssuer, false),
        ("PAN sequence number", |f| card_mut(f).pan_sequence ^= 0x02, R::CryptogramInvalid, false),
        ("ATC + 1", |f| card_mut(f).atc += 1, R::CryptogramInvalid, false),
        ("ATC - 1", |f| card_mut(f).atc -= 1, R::CryptogramInvalid, false),
        ("cryptogram", |f| card_mut(f).cryptogram[0] ^= 0x80, R::CryptogramInvalid, false),
        ("date (E)", |f| card_mut(f).date[2] ^= 0x01, R::MismatchWithRequest, false),
        ("date (D and E alike)", |f| { f.request.date = f.request.date.plus_millis(-DAY_MILLIS); card_mut(f).date = f.request.date.emv_date(); }, R::CryptogramInvalid, false),
        ("unpredictable number (E)", |f| card_mut(f).unpredictable_number[3] ^= 0x01, R::MismatchWithRequest, false),
        ("nonce (D)", |f| f.request.nonce[0] ^= 0x01, R::MismatchWithRequest, true),
        ("designation (D), digest recomputed", |f| { f.request.designation = format!("{}!", f.request.designation).into(); f.request.designation_digest = PaymentRequest::digest_designation(&f.request.designation); }, R::MismatchWithRequest, true),
        ("designation digest (D)", |f| f.request.designation_digest[19] ^= 0x01, R::MismatchWithRequest, true),
        ("IAD: CVR", |f| card_mut(f).iad[5] ^= 0x10, R::CryptogramInvalid, false),
        ("IAD: derivation key index", |f| card_mut(f).iad[1] = 2, R::UnknownIssuer, false),
        ("IAD: cryptogram version", |f| card_mut(f).iad[2] ^= 0x0A ^ 0x12, R::CryptogramInvalid, false),
        ("IAD: length byte", |f| card_mut(f).iad[0] = 0x07, R::CryptogramInvalid, false),
        ("IAD: a byte appended", |f| card_mut(f).iad.push(0x00), R::CryptogramInvalid, false),
        ("IAD: truncated", |f| { card_mut(f).iad.pop(); }, R::CryptogramInvalid, false),
        ("AID nobody issues", |f| card_mut(f).aid = hex::decode("A0000000999999").unwrap(), R::UnknownIssuer, false),
        ("AIP", |f| card_mut(f).aip[0] ^= 0x40, R::CryptogramInvalid, false),
        ("TVR", |f| card_mut(f).tvr[2] ^= 0x80, R::CryptogramInvalid, false),
        ("terminal country", |f| card_mut(f).terminal_country = [0x08, 0x26], R::CryptogramInvalid, false),
        ("CID: TC", |f| card_mut(f).cid = 0x40, R::NotAnAuthorisationRequest, false),
        ("transaction type: cash", |f| card_mut(f).transaction_type = 0x01, R::MismatchWithRequest, false),
        ("amount other: cashback", |f| card_mut(f).amount_other[5] = 0x01, R::MismatchWithRequest, false),
        ("expiry before the date", |f| card_mut(f).expiry = "261124".into(), R::CardExpired, true),
        ("E for another payment", |f| f.transaction.payment = PaymentId::from("another"), R::MismatchWithRequest, true),
        ("F for another merchant", |f| f.merchant = MerchantId::from("another"), R::MismatchWithRequest, true),
    ]
}

#[test]
fn every_field_tampered_alone_is_refused_for_its_reason() {
    let acquirer = acquirer();
    for genuine in genuine_transactions() {
        let card = card_of(&genuine);
        let label = format!("{} {}", card.pan, hex::encode_upper(&card.aid));
        assert!(
            acquirer
                .decide(&genuine, &CardHistory::default())
                .is_positive(),
            "{label}"
        );
        for (name, mutate, reason, arpc) in matrix() {
            let mut f = genuine.clone();
            mutate(&mut f);
            assert_ne!(f, genuine, "{label} {name}: the mutation changes something");
            let decision = acquirer.decide(&f, &CardHistory::default());
            assert_eq!(refusal(&decision), Some((reason, arpc)), "{label}: {name}");
        }
    }
}

#[test]
fn the_other_application_of_the_same_card_has_another_key() {
    let acquirer = acquirer();
    let request = request("pay-swap", 4250);
    let mut f = submission(
        request.clone(),
        Terminal::with_card("cb").pay(CB_AID, &request),
    );
    card_mut(&mut f).aid = hex::decode(VISA_AID).unwrap();
    assert_eq!(
        refusal(&acquirer.decide(&f, &CardHistory::default())),
        Some((RefusalReason::CryptogramInvalid, false))
    );
}

// -------------------------------------------------------------------------------------
// Replays.

#[test]
fn a_replayed_transaction_is_refused_for_its_counter() {
    let acquirer = acquirer();
    for genuine in genuine_transactions() {
        let first = acquirer.decide(&genuine, &CardHistory::default());
        assert!(first.is_positive());
        let history = first.history_after(CardHistory::default());
        assert_eq!(history.last_atc, Some(card_of(&genuine).atc));

        let again = acquirer.decide(&genuine, &history);
        assert_eq!(
            refusal(&again),
            Some((RefusalReason::ReplayedCounter, true))
        );
        assert_eq!(again.record_atc, None);
    }
}

#[test]
fn a_reordered_transaction_is_refused_for_its_counter() {
    let acquirer = acquirer();
    let mut terminal = Terminal::with_card("mastercard");
    let (older, newer) = (request("pay-older", 4250), request("pay-newer", 1999));
    let older = submission(older.clone(), terminal.pay(MASTERCARD_AID, &older));
    let newer = submission(newer.clone(), terminal.pay(MASTERCARD_AID, &newer));
    assert_eq!(card_of(&newer).atc, card_of(&older).atc + 1);

    // The newer arrives first and is authorised; the older, genuine but late, is not.
    let decision = acquirer.decide(&newer, &CardHistory::default());
    assert!(decision.is_positive());
    let history = decision.history_after(CardHistory::default());
    assert_eq!(
        refusal(&acquirer.decide(&older, &history)),
        Some((RefusalReason::ReplayedCounter, true))
    );
}

#[test]
fn a_transaction_replayed_against_another_request_does_not_match_it() {
    // Same card, same amount, a new payment request: the unpredictable number the card
    // signed belongs to the first request's nonce.
    let acquirer = acquirer();
    let first = request("pay-first", 4250);
    let card = Terminal::with_card("visa").pay(VISA_AID, &first);
    let second = request("pay-second", 4250);
    let decision = acquirer.decide(&submission(second, card), &CardHistory::default());
    assert_eq!(
        refusal(&decision),
        Some((RefusalReason::MismatchWithRequest, true))
    );
}

// -------------------------------------------------------------------------------------
// Random mutations.

/// SplitMix64: a small seeded generator, so every run tries the same mutations and a
/// failure reproduces exactly.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound
    }

    fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }

    /// A non-zero byte, to XOR into a value so that it changes.
    fn flip(&mut self) -> u8 {
        1 + self.below(255) as u8
    }
}

/// Flips bits of one byte of `bytes` (or grows it when empty).
fn flip_in(bytes: &mut [u8], rng: &mut Rng) {
    if !bytes.is_empty() {
        let i = rng.index(bytes.len());
        bytes[i] ^= rng.flip();
    }
}

/// One random change to F (or to the history). Every kind touches something the rules
/// check: the fields the ARQC covers or that pick its key, the CID, the request, the
/// ids and merchant on ONE side only (D's ids and merchant are the front-end's labels,
/// checked for consistency with F, not signed by the card), an expiry moved into the
/// past, and the history. Left out, because nothing here can check them: the expiry
/// moved later, `pin_verified`, the terminal id, F's acquirer, the quote validity, the
/// currency exponent, and request dates a multiple of 100 years away (YYMMDD repeats).
fn mutate(f: &mut AcquirerTransaction, history: &mut CardHistory, rng: &mut Rng) {
    let card = card_mut(f);
    match rng.below(24) {
        0 => flip_in(&mut card.amount, rng),
        1 => flip_in(&mut card.amount_other, rng),
        2 => flip_in(&mut card.terminal_country, rng),
        3 => flip_in(&mut card.tvr, rng),
        4 => flip_in(&mut card.currency, rng),
        5 => flip_in(&mut card.date, rng),
        6 => card.transaction_type ^= rng.flip(),
        7 => flip_in(&mut card.unpredictable_number, rng),
        8 => flip_in(&mut card.aip, rng),
        9 => card.cid ^= rng.flip(),
        10 => flip_in(&mut card.cryptogram, rng),
        11 => match rng.below(3) {
            0 => flip_in(&mut card.iad, rng),
            1 => card.iad.push(rng.next_u64() as u8),
            _ => {
                card.iad.pop();
            }
        },
        12 => flip_in(&mut card.aid, rng),
        13 => card.pan_sequence ^= rng.flip(),
        14 => card.atc ^= 1 + rng.below(u64::from(u16::MAX)) as u16,
        15 => {
            // A digit replaced by another, or any bit of any character flipped.
            let mut bytes = card.pan.as_bytes().to_vec();
            let i = rng.index(bytes.len());
            if rng.below(2) == 0 && bytes[i].is_ascii_digit() {
                bytes[i] = b'0' + ((bytes[i] - b'0') + 1 + rng.below(9) as u8) % 10;
            } else {
                bytes[i] ^= rng.flip() & 0x7F | 0x01;
            }
            card.pan = String::from_utf8(bytes).unwrap().into();
        }
        16 => {
            let day = 1 + rng.below(24) as u8;
            card.expiry = format!("2611{day:02}").into(); // 2026-11-01 to -24: before the request
        }
        17 => f.request.amount.minor ^= 1 + rng.below(1 << 20),
        18 => {
            let codes = [978, 840, 826, 392, 756, 1978];
            let current = f.request.amount.currency.numeric;
            let others: Vec<u16> = codes.into_iter().filter(|c| *c != current).collect();
            f.request.amount.currency.numeric = others[rng.index(others.len())];
        }
        19 => {
            let days = 1 + rng.below(3650) as i64;
            let sign = if rng.below(2) == 0 { -1 } else { 1 };
            f.request.date = f.request.date.plus_millis(sign * days * DAY_MILLIS);
        }
        20 => flip_in(&mut f.request.nonce, rng),
        21 => match rng.below(2) {
            0 => flip_in(&mut f.request.designation_digest, rng),
            _ => {
                let mut designation = f.request.designation.to_string();
                designation.push(char::from(b'a' + rng.below(26) as u8));
                f.request.designation = designation.into();
                f.request.designation_digest =
                    PaymentRequest::digest_designation(&f.request.designation);
            }
        },
        22 => {
            let tag = rng.below(1000);
            match rng.below(4) {
                0 => f.merchant = MerchantId::from(format!("{}~f{tag}", f.merchant)),
                1 => {
                    f.transaction.payment =
                        PaymentId::from(format!("{}~e{tag}", f.transaction.payment))
                }
                2 => {
                    f.transaction.purchase =
                        PurchaseId::from(format!("{}~e{tag}", f.transaction.purchase))
                }
                _ => f
                    .request
                    .accepted_means
                    .retain(|means| *means != Means::BankCard),
            }
        }
        _ => {
            // The history knows this ATC or a later one: a replay.
            let atc = card_of(f).atc;
            history.last_atc = Some(atc.saturating_add(rng.below(3) as u16));
        }
    }
}

#[test]
fn ten_thousand_random_mutations_are_all_refused() {
    let acquirer = acquirer();
    let genuine = genuine_transactions();
    let mut rng = Rng(0x7E1E_9A75_AC9A_1BE5);
    let mut reasons = std::collections::BTreeSet::new();
    for round in 0..10_000 {
        let base = &genuine[round % genuine.len()];
        // The history before: none, or an ATC below this one (both admit it).
        let base_history = CardHistory {
            last_atc: (round % 3 == 0).then(|| card_of(base).atc - 1),
        };
        assert!(acquirer.decide(base, &base_history).is_positive());

        let (mut f, mut history) = (base.clone(), base_history);
        while (&f, history) == (base, base_history) {
            for _ in 0..=rng.below(3) {
                mutate(&mut f, &mut history, &mut rng);
            }
        }
        let decision = acquirer.decide(&f, &history);
        let Some((reason, _)) = refusal(&decision) else {
            panic!("round {round}: authorised after mutation\n  F: {f:?}\n  history: {history:?}");
        };
        reasons.insert(format!("{reason:?}"));
    }
    // The mutations reach every rule, not only the first ones.
    assert_eq!(
        reasons.into_iter().collect::<Vec<_>>(),
        [
            "AmountOutOfLimits",
            "CardExpired",
            "CryptogramInvalid",
            "InvalidPan",
            "MismatchWithRequest",
            "NotAnAuthorisationRequest",
            "ReplayedCounter",
            "UnknownIssuer",
        ]
    );
}
