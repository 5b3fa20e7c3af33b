//! The payer device pays from the virtual wallet or by bank card, by its user's plan
//! (patent FR2750275 claims 4–7, 10, 18): the device answers payment requests D built
//! here with transactions E, made with the software card (`sim:cb`, PIN 1234) or signed
//! with a wallet key, and takes the acknowledgements H the acquirers would send.
//!
//! The reference user, `alice`, has a bank card and a virtual wallet; her plan:
//!
//! | rule | band | means |
//! |---|---|---|
//! | 1 | EUR from 0.00 to below 10.00 | virtual wallet |
//! | 2 | EUR from 10.00 | bank card |
//!
//! The acquirers: the bank card takes 0.01–1,500.00 EUR, the wallet 0.01–20.00 EUR.

use p256::ecdsa::SigningKey;
use telepay::acquirer::card::AmountLimits;
use telepay::acquirer::journal::Journal;
use telepay::acquirer::system::BankCardAcquirer;
use telepay::acquirer::wallet::{AccountKey, SignedWalletPayment};
use telepay::messages::{
    AcquirerTransaction, Currency, Envelope, Means, MerchantId, Message, Money, Party,
    PayerAcknowledgement, Payment, PaymentId, PaymentRequest, PurchaseId, RefusalReason, ServiceId,
    TerminalId, Timestamp, Transaction, Verdict,
};
use telepay::purchase::Role;
use telepay::purchase::embedded::test_rules;
use telepay::reader::{Reader, Transport};
use telepay::terminal::card_module::{CardModule, CryptogramKind, TerminalData};
use telepay::terminal::keystore::{CostPolicy, KdfCost, KeyStore, Pin, SystemRandom};
use telepay::terminal::payer::{
    MeansChoice, PayerDevice, PaymentState, ScriptedUser, WalletSignError, WalletSigner,
};
use telepay::terminal::plan::{
    AcquirerLimits, AmountBand, Counted, MeansAtDisposal, PaymentPlan, PlanRule, Thresholds, User,
    UserId, Users,
};
use telepay::testing::powered;
use zeroize::Zeroizing;

const CARD: Means = Means::BankCard;
const WALLET: Means = Means::VirtualWallet;
const EUR: Currency = Currency::EUR;

/// 2026-11-26 10:00:00 UTC, the device's clock.
const NOW: Timestamp = Timestamp(1_795_687_200_000);

type Device = PayerDevice<Transport<Box<dyn Reader + Send>>, ScriptedUser>;

fn eur(minor: u64) -> Money {
    Money::new(minor, EUR)
}

/// A user who confirms (or not) and types the software card's PIN.
fn user(confirms: bool) -> ScriptedUser {
    ScriptedUser {
        confirms,
        pin: Some(Zeroizing::new("1234".to_owned())),
    }
}

/// The payer device with the software card, paying by card only (the default).
fn device(user: ScriptedUser) -> Device {
    PayerDevice::new(
        TerminalId::from("terminal-1"),
        CardModule::new(powered("sim:cb?seed=1").unwrap(), TerminalData::france()),
        user,
    )
}

fn wallet_key(seed: u8) -> SigningKey {
    SigningKey::from_slice(&[seed; 32]).unwrap()
}

fn wallet(seed: u8) -> WalletSigner {
    WalletSigner::from_signing_key(wallet_key(seed))
}

fn request(payment: &str, amount: Money, accepted: &[Means]) -> PaymentRequest {
    let designation = format!("service paid by {payment}");
    PaymentRequest {
        purchase: PurchaseId::from("P-000001"),
        payment: PaymentId::from(payment),
        merchant: MerchantId::from("telepay-frontend"),
        service: ServiceId::from("market-report-2026"),
        designation_digest: PaymentRequest::digest_designation(&designation),
        designation: designation.into(),
        amount,
        date: NOW,
        nonce: [7; 16],
        valid_until: NOW.plus_millis(600_000),
        accepted_means: accepted.to_vec(),
        session: None,
    }
}

/// D from the front-end at `now`: the device's answer.
fn send_d(device: &mut Device, now: Timestamp, request: &PaymentRequest) -> Envelope {
    let mut answers = device.handle(
        now,
        &Party::FrontEnd,
        Message::PaymentRequest(request.clone()),
    );
    assert_eq!(answers.len(), 1, "one answer to D: {answers:?}");
    answers.remove(0)
}

/// H from the front-end; it expects no answer.
fn send_h(device: &mut Device, payment: &str, verdict: Verdict) {
    let answers = device.handle(
        NOW,
        &Party::FrontEnd,
        Message::PayerAcknowledgement(PayerAcknowledgement {
            purchase: PurchaseId::from("P-000001"),
            payment: PaymentId::from(payment),
            verdict,
        }),
    );
    assert_eq!(answers, []);
}

fn positive() -> Verdict {
    Verdict::Positive {
        authorisation_code: "A1B2C3".into(),
        response_code: *b"00",
        arpc: None,
    }
}

/// The test bank-card acquirer's verdict on the card payment `answer` made for
/// `request`.
fn card_verdict(request: &PaymentRequest, answer: &Envelope) -> Verdict {
    let rules = test_rules().unwrap();
    let f = AcquirerTransaction {
        acquirer: rules.acquirer().clone(),
        merchant: request.merchant.clone(),
        request: request.clone(),
        transaction: transaction(answer).clone(),
        provision: None,
    };
    let mut acquirer = BankCardAcquirer::new(rules, Journal::open_in_memory().unwrap());
    let verdict = acquirer.authorise(&f, NOW).unwrap().verdict;
    assert!(verdict.is_positive(), "{verdict:?}");
    verdict
}

fn transaction(answer: &Envelope) -> &Transaction {
    match &answer.message {
        Message::Transaction(e) => e,
        other => panic!("expected E, got {other:?}"),
    }
}

fn signed(answer: &Envelope) -> &SignedWalletPayment {
    match &transaction(answer).means {
        Payment::VirtualWallet(signed) => signed,
        Payment::BankCard(card) => panic!("expected a wallet payment, got the card's {card:?}"),
    }
}

fn means_paid(answer: &Envelope) -> Means {
    transaction(answer).means.means()
}

fn declined(answer: &Envelope) -> &str {
    match &answer.message {
        Message::PaymentDeclined(declined) => &declined.reason,
        other => panic!("expected a declined payment, got {other:?}"),
    }
}

fn limits() -> AcquirerLimits {
    AcquirerLimits::new()
        .with(CARD, AmountLimits::default())
        .with(
            WALLET,
            AmountLimits::from_toml_str(
                "[[limit]]\ncurrency = \"EUR\"\nmin = 1\nmax = 2000\n",
                "w",
            )
            .unwrap(),
        )
}

fn both_means(key_store_user: &str) -> MeansAtDisposal {
    MeansAtDisposal {
        card_reader: Some("sim:cb".to_owned()),
        key_store_user: Some(key_store_user.to_owned()),
    }
}

/// Alice: wallet below 10.00 EUR, card from 10.00 EUR, with `thresholds`.
fn alice(thresholds: Thresholds) -> User {
    let plan = PaymentPlan::new(vec![
        PlanRule::new(vec![WALLET], AmountBand::new(EUR, 0, Some(1_000))),
        PlanRule::new(vec![CARD], AmountBand::new(EUR, 1_000, None)),
    ])
    .unwrap();
    User::new(
        UserId::new("alice").unwrap(),
        plan,
        thresholds,
        both_means("alice"),
    )
    .unwrap()
}

/// Bob: the wallet first, the card when the wallet cannot pay, for any EUR amount.
fn bob() -> User {
    let plan = PaymentPlan::new(vec![PlanRule::new(
        vec![WALLET, CARD],
        AmountBand::new(EUR, 0, None),
    )])
    .unwrap();
    User::new(
        UserId::new("bob").unwrap(),
        plan,
        Thresholds::new(),
        both_means("bob"),
    )
    .unwrap()
}

fn plan(users: Users) -> MeansChoice {
    MeansChoice::Plan {
        users: Box::new(users),
        limits: limits(),
    }
}

// ---------------------------------------------------------------------------------------
// A fixed means

#[test]
fn fixed_wallet_signs_the_fields_of_d_with_a_growing_sequence() {
    let mut device = device(user(true))
        .with_wallet(wallet(1))
        .with_means(MeansChoice::Fixed(WALLET));
    let account = AccountKey::new(wallet_key(1).verifying_key());
    assert_eq!(
        device.wallet().map(WalletSigner::account),
        Some(account.clone())
    );

    let d1 = request("PAY-1", eur(250), &[CARD, WALLET]);
    let e1 = send_d(&mut device, NOW, &d1);
    let first = signed(&e1);
    assert_eq!(first.verify(), Ok(()));
    assert_eq!(first.payment.account, account);
    assert_eq!(first.payment.merchant, d1.merchant);
    assert_eq!(first.payment.service, d1.service);
    assert_eq!(first.payment.payment, d1.payment);
    assert_eq!(first.payment.amount, d1.amount);
    assert_eq!(first.payment.time, NOW);
    // The first payment takes the clock in milliseconds.
    assert_eq!(first.payment.sequence, 1_795_687_200_000);
    assert_eq!(transaction(&e1).payment, d1.payment);
    assert_eq!(transaction(&e1).terminal, TerminalId::from("terminal-1"));
    assert_eq!(
        device.payment_state(&d1.payment),
        Some(&PaymentState::AwaitingAcknowledgement)
    );

    // A second payment in the same millisecond goes past the clock: last + 1.
    let d2 = request("PAY-2", eur(100), &[WALLET]);
    let e2 = send_d(&mut device, NOW, &d2);
    assert_eq!(signed(&e2).verify(), Ok(()));
    assert_eq!(signed(&e2).payment.sequence, 1_795_687_200_001);
    // A clock that went back does not make the sequence go back.
    let d3 = request("PAY-3", eur(100), &[WALLET]);
    let e3 = send_d(&mut device, NOW.plus_millis(-60_000), &d3);
    assert_eq!(signed(&e3).payment.sequence, 1_795_687_200_002);

    // A repeated D gets the same E, and spends no sequence.
    assert_eq!(send_d(&mut device, NOW.plus_millis(5), &d1), e1);
    assert_eq!(
        device.wallet().map(WalletSigner::last_sequence),
        Some(1_795_687_200_002)
    );
}

#[test]
fn fixed_means_missing_or_not_accepted_is_declined_by_name() {
    struct Row {
        case: &'static str,
        fixed: Means,
        with_wallet: bool,
        confirms: bool,
        accepted: &'static [Means],
        reason: &'static str,
    }
    #[rustfmt::skip]
    let table = [
        Row { case: "wallet without a wallet", fixed: WALLET, with_wallet: false, confirms: true, accepted: &[CARD, WALLET],
              reason: "this payer device has no virtual wallet: no wallet key was unlocked" },
        Row { case: "wallet not accepted", fixed: WALLET, with_wallet: true, confirms: true, accepted: &[CARD],
              reason: "the front-end does not accept the virtual wallet for this payment" },
        Row { case: "card not accepted", fixed: CARD, with_wallet: true, confirms: true, accepted: &[WALLET],
              reason: "the front-end does not accept the bank card for this payment" },
        // A fixed means is always confirmed explicitly, even 0.01 EUR.
        Row { case: "user declines the wallet", fixed: WALLET, with_wallet: true, confirms: false, accepted: &[WALLET],
              reason: "the user declined the payment" },
    ];
    for row in table {
        let mut device = device(user(row.confirms)).with_means(MeansChoice::Fixed(row.fixed));
        if row.with_wallet {
            device = device.with_wallet(wallet(1));
        }
        let d = request("PAY-1", eur(1), row.accepted);
        let answer = send_d(&mut device, NOW, &d);
        assert_eq!(declined(&answer), row.reason, "{}", row.case);
        assert_eq!(
            device.payment_state(&d.payment),
            Some(&PaymentState::Declined(row.reason.to_owned())),
            "{}",
            row.case
        );
        // Declined before anything was signed.
        if let Some(wallet) = device.wallet() {
            assert_eq!(wallet.last_sequence(), 0, "{}", row.case);
        }
    }
}

#[test]
fn the_default_device_pays_by_card_and_keeps_no_totals() {
    let mut device = device(user(true)).with_wallet(wallet(1));
    assert_eq!(device.means_choice(), &MeansChoice::Fixed(CARD));
    let answer = send_d(
        &mut device,
        NOW,
        &request("PAY-1", eur(200), &[CARD, WALLET]),
    );
    assert_eq!(means_paid(&answer), CARD);
    send_h(&mut device, "PAY-1", positive());
    assert!(device.users().is_none());
    assert_eq!(device.totals_line(), None);
    assert_eq!(device.counted(&PaymentId::from("PAY-1")), None);
}

// ---------------------------------------------------------------------------------------
// The wallet's sequence and key

#[test]
fn next_sequence_is_the_greater_of_last_plus_one_and_the_clock() {
    #[rustfmt::skip]
    let table: [(u64, i64, Option<u64>); 6] = [
        (0,        1_000, Some(1_000)),   // first payment: the clock
        (999,      1_000, Some(1_000)),   // the clock is ahead
        (1_000,    1_000, Some(1_001)),   // same millisecond
        (5_000,    1_000, Some(5_001)),   // the clock went back
        (0,           -5, Some(1)),       // a clock before 1970 counts as 0
        (u64::MAX, 1_000, None),          // no greater sequence left
    ];
    for (last, now, expected) in table {
        let signer = wallet(2).with_last_sequence(last);
        assert_eq!(
            signer.next_sequence(Timestamp(now)),
            expected,
            "last {last}, now {now}"
        );
    }
}

#[test]
fn an_exhausted_sequence_is_an_error_and_changes_nothing() {
    let mut signer = wallet(2).with_last_sequence(u64::MAX);
    let d = request("PAY-9", eur(100), &[WALLET]);
    assert_eq!(
        signer.sign_payment(&d, NOW),
        Err(WalletSignError::SequenceExhausted {
            payment: PaymentId::from("PAY-9"),
            last: u64::MAX,
        })
    );
    assert_eq!(signer.last_sequence(), u64::MAX);

    // On the device, the payment is declined with that reason.
    let mut device = device(user(true))
        .with_wallet(wallet(2).with_last_sequence(u64::MAX))
        .with_means(MeansChoice::Fixed(WALLET));
    assert_eq!(
        declined(&send_d(&mut device, NOW, &d)),
        format!(
            "payment PAY-9: the wallet's sequence is exhausted (last signed {})",
            u64::MAX
        )
    );
}

#[test]
fn the_signer_debug_shows_the_account_never_the_key() {
    let key = wallet_key(3);
    let secret = hex::encode(key.to_bytes());
    let signer = WalletSigner::from_signing_key(key);
    let shown = format!("{signer:?}");
    assert!(shown.contains(&signer.account().fingerprint()), "{shown}");
    assert!(!shown.to_lowercase().contains(&secret), "{shown}");
}

// ---------------------------------------------------------------------------------------
// The plan and the thresholds

#[test]
fn the_plan_pays_small_amounts_from_the_wallet_and_large_ones_by_card() {
    let mut device = device(user(true))
        .with_wallet(wallet(1))
        .with_means(plan(Users::new(alice(Thresholds::new()))));
    #[rustfmt::skip]
    let table = [
        ("PAY-1",   200, WALLET), // 2.00 EUR: rule 1
        ("PAY-2",   999, WALLET), // 9.99 EUR: rule 1, its last amount
        ("PAY-3", 1_000, CARD),   // 10.00 EUR: rule 2, its first amount
        ("PAY-4", 2_500, CARD),   // 25.00 EUR: rule 2
    ];
    for (payment, minor, expected) in table {
        let answer = send_d(
            &mut device,
            NOW,
            &request(payment, eur(minor), &[CARD, WALLET]),
        );
        assert_eq!(means_paid(&answer), expected, "{payment}");
        // The card module ends each card transaction before the next one starts.
        send_h(&mut device, payment, positive());
    }
}

#[test]
fn the_plan_refusal_is_the_decline_reason() {
    #[rustfmt::skip]
    let table: [(u64, &[Means], &str); 3] = [
        (2_500, &[WALLET],
         "plan rule 2 (from 10.00 EUR) covers 25.00 EUR, but none of its means can pay: bank card: the payment request does not accept it"),
        (200, &[CARD],
         "plan rule 1 (from 0.00 EUR to below 10.00 EUR) covers 2.00 EUR, but none of its means can pay: virtual wallet: the payment request does not accept it"),
        (200, &[],
         "plan rule 1 (from 0.00 EUR to below 10.00 EUR) covers 2.00 EUR, but none of its means can pay: virtual wallet: the payment request does not accept it"),
    ];
    for (minor, accepted, reason) in table {
        let mut device = device(user(true))
            .with_wallet(wallet(1))
            .with_means(plan(Users::new(alice(Thresholds::new()))));
        let d = request("PAY-1", eur(minor), accepted);
        assert_eq!(
            declined(&send_d(&mut device, NOW, &d)),
            reason,
            "{minor} {accepted:?}"
        );
    }
    // A currency no rule covers.
    let mut device = device(user(true))
        .with_wallet(wallet(1))
        .with_means(plan(Users::new(alice(Thresholds::new()))));
    let d = request("PAY-1", Money::new(200, Currency::USD), &[CARD, WALLET]);
    assert_eq!(
        declined(&send_d(&mut device, NOW, &d)),
        "no rule of the plan covers 2.00 USD"
    );
}

#[test]
fn at_or_below_the_threshold_the_user_is_not_asked_above_it_they_are() {
    // The user refuses every confirmation: only an implicit one lets a payment go.
    let thresholds = Thresholds::new()
        .with(WALLET, eur(500))
        .with(CARD, eur(3_000));
    let mut device = device(user(false))
        .with_wallet(wallet(1))
        .with_means(plan(Users::new(alice(thresholds))));
    #[rustfmt::skip]
    let table: [(&str, u64, Result<Means, &str>); 5] = [
        ("PAY-1",   100, Ok(WALLET)),  // 1.00 EUR, below the wallet's 5.00
        ("PAY-2",   500, Ok(WALLET)),  // 5.00 EUR, at the threshold: still implicit
        ("PAY-3",   800, Err("the user declined the payment")), // 8.00 EUR, above 5.00
        ("PAY-4", 2_500, Ok(CARD)),    // 25.00 EUR, below the card's 30.00: the PIN is still asked
        ("PAY-5", 3_001, Err("the user declined the payment")), // 30.01 EUR, above 30.00
    ];
    for (payment, minor, expected) in table {
        let answer = send_d(
            &mut device,
            NOW,
            &request(payment, eur(minor), &[CARD, WALLET]),
        );
        match expected {
            Ok(means) => {
                assert_eq!(means_paid(&answer), means, "{payment}");
                send_h(&mut device, payment, positive());
            }
            Err(reason) => assert_eq!(declined(&answer), reason, "{payment}"),
        }
    }
}

#[test]
fn an_implicit_card_payment_still_needs_the_pin() {
    let thresholds = Thresholds::new().with(CARD, eur(3_000));
    let no_pin = ScriptedUser {
        confirms: false,
        pin: None,
    };
    let mut device = device(no_pin)
        .with_wallet(wallet(1))
        .with_means(plan(Users::new(alice(thresholds))));
    let answer = send_d(
        &mut device,
        NOW,
        &request("PAY-1", eur(2_500), &[CARD, WALLET]),
    );
    assert_eq!(declined(&answer), "no PIN was entered");
}

#[test]
fn the_override_names_the_means_of_the_next_payment_only() {
    let mut device = device(user(true))
        .with_wallet(wallet(1))
        .with_means(plan(Users::new(alice(Thresholds::new()))));
    device.override_next_means(Some(CARD));
    let first = send_d(
        &mut device,
        NOW,
        &request("PAY-1", eur(200), &[CARD, WALLET]),
    );
    assert_eq!(means_paid(&first), CARD);
    send_h(&mut device, "PAY-1", positive());
    // Used up: the plan chooses again.
    let second = send_d(
        &mut device,
        NOW,
        &request("PAY-2", eur(200), &[CARD, WALLET]),
    );
    assert_eq!(means_paid(&second), WALLET);
    // A named means the wallet's acquirer does not take is refused, not replaced.
    device.override_next_means(Some(WALLET));
    let third = send_d(
        &mut device,
        NOW,
        &request("PAY-3", eur(2_500), &[CARD, WALLET]),
    );
    assert_eq!(
        declined(&third),
        "virtual wallet cannot pay 25.00 EUR: its acquirer takes 0.01 EUR to 20.00 EUR"
    );
}

#[test]
fn a_means_the_device_lacks_is_passed_over_and_a_key_pays_only_for_its_user() {
    // Alice's wallet key, from the key store.
    let mut keys = KeyStore::new(CostPolicy::AllowTestCost);
    let pin = Pin::new("correct horse").unwrap();
    keys.add(
        "alice",
        &pin,
        KdfCost::for_tests(),
        telepay::terminal::keystore::Timestamp(1_795_687_200),
        &mut SystemRandom,
    )
    .unwrap();
    let signer = WalletSigner::from_unlocked(keys.unlock("alice", &pin).unwrap());
    assert_eq!(signer.user(), Some("alice"));

    let mut users = Users::new(alice(Thresholds::new()));
    users.add(bob()).unwrap();
    let mut device = device(user(true))
        .with_wallet(signer)
        .with_means(plan(users));
    let paid = send_d(
        &mut device,
        NOW,
        &request("PAY-1", eur(200), &[CARD, WALLET]),
    );
    assert_eq!(signed(&paid).verify(), Ok(()));

    // Bob's plan prefers the wallet, but the device holds Alice's key: his card pays.
    device.users_mut().unwrap().switch_to("bob").unwrap();
    let paid = send_d(
        &mut device,
        NOW,
        &request("PAY-2", eur(200), &[CARD, WALLET]),
    );
    assert_eq!(means_paid(&paid), CARD);

    // A device without any wallet: Alice's rule 1 has no other means.
    let mut device = device_without_wallet();
    let answer = send_d(
        &mut device,
        NOW,
        &request("PAY-3", eur(200), &[CARD, WALLET]),
    );
    assert_eq!(
        declined(&answer),
        "plan rule 1 (from 0.00 EUR to below 10.00 EUR) covers 2.00 EUR, but none of its means can pay: virtual wallet: the user does not have it"
    );
}

fn device_without_wallet() -> Device {
    device(user(true)).with_means(plan(Users::new(alice(Thresholds::new()))))
}

// ---------------------------------------------------------------------------------------
// Acknowledgements and session totals

#[test]
fn positive_acknowledgements_count_once_per_means_and_negative_ones_not_at_all() {
    let mut device = device(user(true))
        .with_wallet(wallet(1))
        .with_means(plan(Users::new(alice(Thresholds::new()))));
    assert_eq!(
        device.totals_line().as_deref(),
        Some("alice: session: nothing paid")
    );
    // 2.00 EUR from the wallet (its acquirer's positive H is built here), 25.00 EUR by
    // card, authorised by the test bank-card acquirer, whose ARPC the card checks.
    send_d(
        &mut device,
        NOW,
        &request("PAY-1", eur(200), &[CARD, WALLET]),
    );
    send_h(&mut device, "PAY-1", positive());
    let d2 = request("PAY-2", eur(2_500), &[CARD, WALLET]);
    let e2 = send_d(&mut device, NOW, &d2);
    send_h(&mut device, "PAY-2", card_verdict(&d2, &e2));
    // A repeated H counts nothing more.
    send_h(&mut device, "PAY-1", positive());
    // A refused wallet payment counts nothing.
    send_d(
        &mut device,
        NOW,
        &request("PAY-3", eur(300), &[CARD, WALLET]),
    );
    send_h(
        &mut device,
        "PAY-3",
        Verdict::refused(RefusalReason::InsufficientFunds),
    );
    // An H for a payment this device never made is ignored.
    send_h(&mut device, "PAY-404", positive());

    let totals = device.users().unwrap().active_totals();
    assert_eq!(totals.payments(), 2);
    assert_eq!(totals.total(EUR), eur(2_700));
    assert_eq!(totals.total_by(WALLET, EUR), eur(200));
    assert_eq!(totals.total_by(CARD, EUR), eur(2_500));
    assert_eq!(
        device.totals_line().as_deref(),
        Some("alice: session: 27.00 EUR (bank card 25.00 EUR, virtual wallet 2.00 EUR)")
    );

    let id = PaymentId::from;
    assert_eq!(device.counted(&id("PAY-1")), Some(&Ok(Counted::Added)));
    assert_eq!(device.counted(&id("PAY-2")), Some(&Ok(Counted::Added)));
    assert_eq!(device.counted(&id("PAY-3")), Some(&Ok(Counted::NotCounted)));
    assert_eq!(device.counted(&id("PAY-404")), None);

    assert_eq!(
        device.payment_state(&id("PAY-1")),
        Some(&PaymentState::WalletSettled { authorised: true })
    );
    assert_eq!(
        device.payment_state(&id("PAY-3")),
        Some(&PaymentState::WalletSettled { authorised: false })
    );
    // The card payment completed on the card: a TC after the positive H.
    let Some(PaymentState::Completed(completion)) = device.payment_state(&id("PAY-2")) else {
        panic!("{:?}", device.payment_state(&id("PAY-2")))
    };
    assert_eq!(completion.kind, CryptogramKind::Tc);
}

#[test]
fn a_payment_counts_for_the_user_who_made_it() {
    let mut users = Users::new(alice(Thresholds::new()));
    users.add(bob()).unwrap();
    let mut device = device(user(true))
        .with_wallet(wallet(1))
        .with_means(plan(users));
    send_d(
        &mut device,
        NOW,
        &request("PAY-1", eur(200), &[CARD, WALLET]),
    );
    // Bob takes the terminal before H comes back.
    device.users_mut().unwrap().switch_to("bob").unwrap();
    send_h(&mut device, "PAY-1", positive());
    let users = device.users().unwrap();
    assert_eq!(users.totals("alice").unwrap().total(EUR), eur(200));
    assert_eq!(users.totals("bob").unwrap().payments(), 0);
    assert_eq!(
        device.totals_line().as_deref(),
        Some("bob: session: nothing paid")
    );
}

#[test]
fn the_role_passes_its_clock_to_the_wallet() {
    let mut device = device(user(true))
        .with_wallet(wallet(1))
        .with_means(MeansChoice::Fixed(WALLET));
    let later = NOW.plus_millis(42_000);
    let handled = Role::handle(
        &mut device,
        later,
        &Party::FrontEnd,
        Message::PaymentRequest(request("PAY-1", eur(100), &[WALLET])),
    );
    assert_eq!(handled.note, None);
    let [answer] = handled.sent.as_slice() else {
        panic!("{handled:?}")
    };
    assert_eq!(signed(answer).payment.time, later);
    // Only the front-end is answered.
    let ignored = device.handle(
        NOW,
        &Party::Payer(TerminalId::from("terminal-2")),
        Message::PaymentRequest(request("PAY-2", eur(100), &[WALLET])),
    );
    assert_eq!(ignored, []);
    assert_eq!(device.payment_state(&PaymentId::from("PAY-2")), None);
}
