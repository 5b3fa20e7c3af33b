//! The Virtual Wallet acquirer (claim 10) as a party of the purchase: transactions F
//! answered with acknowledgements G, provisions opened by a session's signed first
//! payment, settlements and reversals, on a real SQLite file with real P-256 keys.

mod common;

use common::TempDir;
use common::wallet::Payer;
use proptest::prelude::*;
use telepay::acquirer::wallet::system::{NO_CURRENCY, authorisation_code};
use telepay::acquirer::wallet::{
    AccountState, Credit, CreditReference, Outcome, Provision, ProvisionState, ProvisionTally,
    Reservation, SessionId, SignedWalletPayment, WalletAcquirer, WalletAcquirerError,
    WalletReversal, WalletStore,
};
use telepay::messages::{
    Acknowledgement, AcquirerId, AcquirerTransaction, CardTransaction, Currency, Envelope, Means,
    MerchantId, Message, Money, Party, Payment, PaymentId, PaymentRequest, ProvisionGrant,
    ProvisionRequest, PurchaseId, RefusalReason, Reversal, ServiceId, SessionEnd,
    SessionSettlement, SettlementResult, TerminalId, Timestamp, Transaction, Verdict,
};
use telepay::purchase::Role;

use RefusalReason as R;

const NOW: Timestamp = Timestamp(1_795_651_200_000); // 2026-11-26T00:00:00Z

fn eur(minor: u64) -> Money {
    Money::new(minor, Currency::EUR)
}

fn acquirer_id() -> AcquirerId {
    AcquirerId::from("wallet-1")
}

impl Payer {
    /// The payment `payment` of `amount`, the account's `sequence`-th, to FE-1 for
    /// "news", signed, made at NOW.
    fn pay(&self, payment: &str, amount: Money, sequence: u64) -> SignedWalletPayment {
        self.pay_at(payment, amount, sequence, NOW)
    }
}

/// F for `signed`, with the payment request it answers (the same identifier,
/// merchant, service and amount).
fn f(signed: &SignedWalletPayment) -> AcquirerTransaction {
    let payment = &signed.payment;
    let purchase = PurchaseId::from(format!("purchase-{}", payment.payment));
    let designation = format!("{} news", payment.amount);
    AcquirerTransaction {
        acquirer: acquirer_id(),
        merchant: payment.merchant.clone(),
        request: PaymentRequest {
            purchase: purchase.clone(),
            payment: payment.payment.clone(),
            merchant: payment.merchant.clone(),
            service: payment.service.clone(),
            designation_digest: PaymentRequest::digest_designation(&designation),
            designation: designation.into(),
            amount: payment.amount,
            date: NOW,
            nonce: [7; 16],
            valid_until: NOW.plus_millis(60_000),
            accepted_means: vec![Means::BankCard, Means::VirtualWallet],
            session: None,
        },
        transaction: Transaction {
            purchase,
            payment: payment.payment.clone(),
            terminal: TerminalId::from("T-1"),
            means: Payment::VirtualWallet(Box::new(signed.clone())),
        },
        provision: None,
    }
}

/// F for `signed`, the first payment of a session, asking for a provision.
fn f_opening(signed: &SignedWalletPayment, segment: &str, amount: Money) -> AcquirerTransaction {
    let mut f = f(signed);
    f.provision = Some(ProvisionRequest {
        segment: SessionId::from(segment),
        amount,
    });
    f
}

fn positive(signed: &SignedWalletPayment) -> Verdict {
    Verdict::Positive {
        authorisation_code: authorisation_code(
            &acquirer_id(),
            &signed.payment.account,
            signed.payment.sequence,
        )
        .into(),
        response_code: *b"00",
        arpc: None,
    }
}

/// G as the acquirer must answer `f`.
fn g(
    f: &AcquirerTransaction,
    verdict: Verdict,
    provision: Option<ProvisionGrant>,
) -> Acknowledgement {
    Acknowledgement {
        acquirer: acquirer_id(),
        purchase: f.transaction.purchase.clone(),
        payment: f.transaction.payment.clone(),
        verdict,
        provision,
    }
}

fn grant(segment: &str, amount: Money, sequence_floor: u64) -> Option<ProvisionGrant> {
    Some(ProvisionGrant {
        segment: SessionId::from(segment),
        amount,
        sequence_floor,
    })
}

fn settlement(segment: &str, payments: &[SignedWalletPayment]) -> SessionSettlement {
    SessionSettlement {
        acquirer: acquirer_id(),
        segment: SessionId::from(segment),
        payments: payments.to_vec(),
    }
}

fn reversal(payment: &str) -> Reversal {
    Reversal {
        acquirer: acquirer_id(),
        purchase: PurchaseId::from(format!("purchase-{payment}")),
        payment: PaymentId::from(payment),
        reason: "the service could not be delivered".into(),
    }
}

fn state(payer: &Payer, balance: u64, reserved: u64, last_sequence: u64) -> AccountState {
    AccountState {
        key: payer.account(),
        currency: Currency::EUR,
        balance,
        reserved,
        last_sequence,
    }
}

/// An acquirer on a new file in `dir`, with `payer`'s account open in euros and
/// credited with `balance`.
fn acquirer(dir: &TempDir, payer: &Payer, balance: u64) -> WalletAcquirer {
    let store = WalletStore::open(dir.file("wallet.sqlite")).unwrap();
    let mut acquirer = WalletAcquirer::new(acquirer_id(), store);
    acquirer
        .store_mut()
        .open_account(&payer.account(), Currency::EUR, NOW)
        .unwrap();
    let credit = Credit {
        reference: CreditReference::from("R-0"),
        account: payer.account(),
        amount: eur(balance),
    };
    assert!(matches!(
        acquirer.credit(&credit, NOW).unwrap(),
        Outcome::Done(_)
    ));
    acquirer
}

#[test]
fn a_wallet_payment_is_debited_and_acknowledged_once() {
    let dir = TempDir::new("wallet-acquirer-pay");
    let payer = Payer::new(1);
    let mut acquirer = acquirer(&dir, &payer, 500);
    let payment = payer.pay("PAY-1", eur(120), 1);
    let f = f(&payment);
    let answer = acquirer.authorise(&f, NOW).unwrap();
    assert_eq!(answer, g(&f, positive(&payment), None));
    assert_eq!(
        acquirer.balance(&payer.account()).unwrap(),
        Some(state(&payer, 380, 0, 1))
    );
    // The same F again, here and after a restart: the same G, debited once.
    assert_eq!(acquirer.authorise(&f, NOW.plus_millis(9)).unwrap(), answer);
    drop(acquirer);
    let store = WalletStore::open(dir.file("wallet.sqlite")).unwrap();
    let mut acquirer = WalletAcquirer::new(acquirer_id(), store);
    assert_eq!(acquirer.authorise(&f, NOW.plus_millis(10)).unwrap(), answer);
    assert_eq!(
        acquirer.balance(&payer.account()).unwrap(),
        Some(state(&payer, 380, 0, 1))
    );
    // Non-repudiation: the signed payment is kept as it came.
    let kept = acquirer.store().payments(&payer.account()).unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].signed, payment);
    assert_eq!(kept[0].session, None);
}

/// A card payment, for an acquirer of another means.
fn card_payment() -> CardTransaction {
    CardTransaction {
        pan: "4970100000000014".into(),
        pan_sequence: 1,
        expiry: "281231".into(),
        aid: vec![0xA0, 0, 0, 0, 0x42, 0x10, 0x10],
        aip: [0x18, 0x00],
        atc: 1,
        cid: 0x80,
        cryptogram: [0; 8],
        iad: Vec::new(),
        amount: [0, 0, 0, 0, 0x01, 0x00],
        amount_other: [0; 6],
        terminal_country: [0x02, 0x50],
        tvr: [0; 5],
        currency: [0x09, 0x78],
        date: [0x26, 0x11, 0x26],
        transaction_type: 0,
        unpredictable_number: [0; 4],
        pin_verified: true,
    }
}

#[test]
fn refused_transactions_change_nothing() {
    let payer = Payer::new(1);
    let stranger = Payer::new(2);
    let ok = || payer.pay("PAY-2", eur(100), 2);
    let mut flipped = ok();
    flipped.signature[40] ^= 0x01;
    let mut tampered = ok();
    tampered.payment.amount = eur(1);
    let usd = payer.pay("PAY-2", Money::new(100, Currency::USD), 2);
    type Change = fn(&mut AcquirerTransaction);
    let same: Change = |_| {};
    // (case, the payment signed, a change to F, the refusal)
    #[rustfmt::skip]
    let cases: Vec<(&str, SignedWalletPayment, Change, R)> = vec![
        ("a byte of the signature flipped",                    flipped,                          same, R::SignatureInvalid),
        ("the amount changed after signing, the request too",  tampered,                         same, R::SignatureInvalid),
        ("the sequence of a payment already debited",          payer.pay("PAY-2", eur(10), 1),   same, R::ReplayedSequence),
        ("an older sequence",                                  payer.pay("PAY-2", eur(10), 0),   same, R::ReplayedSequence),
        ("more than the balance",                              payer.pay("PAY-2", eur(401), 2),  same, R::InsufficientFunds),
        ("an account the acquirer does not know",              stranger.pay("PAY-2", eur(1), 1), same, R::UnknownAccount),
        ("another currency than the account's",                usd,                              same, R::MismatchWithRequest),
        ("nothing to pay",                                     payer.pay("PAY-2", eur(0), 2),    same, R::MismatchWithRequest),
        ("the identifier of a payment already debited",        payer.pay("PAY-1", eur(10), 2),   same, R::PaymentIdReused),
        ("the request's amount differs",            ok(), |f| f.request.amount = eur(99),                           R::MismatchWithRequest),
        ("the request's currency differs",          ok(), |f| f.request.amount = Money::new(100, Currency::GBP),    R::MismatchWithRequest),
        ("F credits another merchant",              ok(), |f| f.merchant = MerchantId::from("FE-2"),                R::MismatchWithRequest),
        ("the request is another merchant's",       ok(), |f| f.request.merchant = MerchantId::from("FE-2"),        R::MismatchWithRequest),
        ("the request sells another service",       ok(), |f| f.request.service = ServiceId::from("weather"),       R::MismatchWithRequest),
        ("the request is another payment",          ok(), |f| f.request.payment = PaymentId::from("PAY-3"),         R::MismatchWithRequest),
        ("E answers another payment",               ok(), |f| f.transaction.payment = PaymentId::from("PAY-3"),     R::MismatchWithRequest),
        ("E belongs to another purchase",           ok(), |f| f.transaction.purchase = PurchaseId::from("other"),   R::MismatchWithRequest),
        ("the request does not accept the wallet",  ok(), |f| f.request.accepted_means = vec![Means::BankCard],     R::MismatchWithRequest),
        ("paid by card",                            ok(), |f| f.transaction.means = Payment::BankCard(card_payment()), R::NoAcquirer),
    ];
    let dir = TempDir::new("wallet-acquirer-refusals");
    let mut acquirer = acquirer(&dir, &payer, 500);
    let first = payer.pay("PAY-1", eur(100), 1);
    assert!(
        acquirer
            .authorise(&f(&first), NOW)
            .unwrap()
            .verdict
            .is_positive()
    );
    let before = Some(state(&payer, 400, 0, 1));
    for (case, payment, change, reason) in cases {
        let mut transaction = f(&payment);
        change(&mut transaction);
        assert_eq!(
            acquirer.authorise(&transaction, NOW).unwrap(),
            g(&transaction, Verdict::refused(reason), None),
            "{case}"
        );
        assert_eq!(
            acquirer.balance(&payer.account()).unwrap(),
            before,
            "{case}"
        );
        assert_eq!(
            acquirer.store().payments(&payer.account()).unwrap().len(),
            1,
            "{case}"
        );
    }
    // And the payment that was fine all along still goes through.
    let ok = ok();
    assert_eq!(
        acquirer.authorise(&f(&ok), NOW).unwrap(),
        g(&f(&ok), positive(&ok), None)
    );
}

#[test]
fn a_refused_transaction_stays_refused_after_a_reload() {
    let dir = TempDir::new("wallet-acquirer-refused-again");
    let payer = Payer::new(1);
    let mut acquirer = acquirer(&dir, &payer, 100);
    let payment = payer.pay("PAY-1", eur(150), 1);
    let refused = g(
        &f(&payment),
        Verdict::refused(RefusalReason::InsufficientFunds),
        None,
    );
    assert_eq!(acquirer.authorise(&f(&payment), NOW).unwrap(), refused);
    let reload = Credit {
        reference: CreditReference::from("R-1"),
        account: payer.account(),
        amount: eur(100),
    };
    assert!(matches!(
        acquirer.credit(&reload, NOW).unwrap(),
        Outcome::Done(_)
    ));
    // The front-end ended the purchase on the refusal: a duplicate of that F, late,
    // gets the refusal again (after a restart too) and debits nothing.
    assert_eq!(acquirer.authorise(&f(&payment), NOW).unwrap(), refused);
    drop(acquirer);
    let store = WalletStore::open(dir.file("wallet.sqlite")).unwrap();
    let mut acquirer = WalletAcquirer::new(acquirer_id(), store);
    assert_eq!(acquirer.authorise(&f(&payment), NOW).unwrap(), refused);
    assert_eq!(
        acquirer.balance(&payer.account()).unwrap(),
        Some(state(&payer, 200, 0, 0))
    );
    // Another F under that payment request is decided afresh.
    let mut other = f(&payment);
    other.request.nonce = [8; 16];
    assert_eq!(
        acquirer.authorise(&other, NOW).unwrap(),
        g(&other, positive(&payment), None)
    );
    assert_eq!(acquirer.authorise(&f(&payment), NOW).unwrap(), refused);
    assert_eq!(
        acquirer.balance(&payer.account()).unwrap(),
        Some(state(&payer, 50, 0, 1))
    );
}

#[test]
fn a_transaction_for_another_acquirer_is_not_answered() {
    let dir = TempDir::new("wallet-acquirer-other");
    let payer = Payer::new(1);
    let mut acquirer = acquirer(&dir, &payer, 500);
    let mut transaction = f(&payer.pay("PAY-1", eur(100), 1));
    transaction.acquirer = AcquirerId::from("bank-1");
    let error = acquirer.authorise(&transaction, NOW).unwrap_err();
    assert!(
        matches!(
            &error,
            WalletAcquirerError::NotForThisAcquirer { payment, addressed, this }
                if payment == "PAY-1" && addressed.0 == "bank-1" && this.0 == "wallet-1"
        ),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "transaction for payment PAY-1 is addressed to acquirer bank-1, this is wallet-1"
    );
    let mut settle = settlement("S-1", &[]);
    settle.acquirer = AcquirerId::from("bank-1");
    assert_eq!(
        acquirer.settle(&settle, NOW).unwrap_err().to_string(),
        "settlement of session S-1 is addressed to acquirer bank-1, this is wallet-1"
    );
    let mut reverse = reversal("PAY-1");
    reverse.acquirer = AcquirerId::from("bank-1");
    assert_eq!(
        acquirer.reverse(&reverse, NOW).unwrap_err().to_string(),
        "transaction for payment PAY-1 is addressed to acquirer bank-1, this is wallet-1"
    );
    assert_eq!(
        acquirer.balance(&payer.account()).unwrap(),
        Some(state(&payer, 500, 0, 0))
    );
    assert!(
        !acquirer
            .store()
            .is_reversed(&PaymentId::from("PAY-1"))
            .unwrap()
    );
}

#[test]
fn a_session_opened_by_its_signed_first_payment_settles_exactly_the_sum() {
    let dir = TempDir::new("wallet-acquirer-session");
    let payer = Payer::new(1);
    let mut acquirer = acquirer(&dir, &payer, 1_000);
    let first = payer.pay("PAY-1", eur(40), 1);
    let opening = f_opening(&first, "S-1", eur(300));
    let answer = acquirer.authorise(&opening, NOW).unwrap();
    assert_eq!(
        answer,
        g(&opening, positive(&first), grant("S-1", eur(300), 0))
    );
    // Reserved, not debited; the first payment is kept beside the provision.
    assert_eq!(
        acquirer.balance(&payer.account()).unwrap(),
        Some(state(&payer, 1_000, 300, 0))
    );
    assert!(
        acquirer
            .store()
            .payments(&payer.account())
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        acquirer
            .store()
            .opening(&SessionId::from("S-1"))
            .unwrap()
            .map(|opening| opening.signed),
        Some(first.clone())
    );
    // The same F again: the same G, reserved once.
    assert_eq!(
        acquirer.authorise(&opening, NOW.plus_millis(5)).unwrap(),
        answer
    );
    assert_eq!(
        acquirer.balance(&payer.account()).unwrap(),
        Some(state(&payer, 1_000, 300, 0))
    );
    // The signed opening cannot open another provision, nor be paid on its own.
    let replayed = f_opening(&first, "S-2", eur(100));
    assert_eq!(
        acquirer.authorise(&replayed, NOW).unwrap(),
        g(
            &replayed,
            Verdict::refused(RefusalReason::ReplayedSequence),
            None
        )
    );
    assert_eq!(
        acquirer.authorise(&f(&first), NOW).unwrap(),
        g(
            &f(&first),
            Verdict::refused(RefusalReason::ReplayedSequence),
            None
        )
    );

    // The front-end checks the session's next payments itself, from the grant.
    let Some(ProvisionGrant {
        amount,
        sequence_floor,
        ..
    }) = answer.provision
    else {
        panic!("no grant");
    };
    let provision = Provision {
        reservation: Reservation {
            session: SessionId::from("S-1"),
            account: payer.account(),
            merchant: MerchantId::from("FE-1"),
            amount,
        },
        sequence_floor,
        state: ProvisionState::Open,
    };
    let payments = [
        first.clone(),
        payer.pay("PAY-2", eur(25), 2),
        payer.pay("PAY-3", eur(35), 4),
    ];
    let mut tally = ProvisionTally::new(provision, sequence_floor);
    for payment in &payments {
        tally.admit(payment).unwrap();
    }
    let expected = SettlementResult {
        acquirer: acquirer_id(),
        segment: SessionId::from("S-1"),
        settled: 3,
        debited: eur(100),
        released: eur(200),
        refused: Vec::new(),
    };
    assert_eq!(
        acquirer.settle(&settlement("S-1", &payments), NOW).unwrap(),
        expected
    );
    assert_eq!(
        acquirer.balance(&payer.account()).unwrap(),
        Some(state(&payer, 900, 0, 4))
    );
    // Settled again, whatever comes with it: the same result, debited once.
    assert_eq!(
        acquirer.settle(&settlement("S-1", &payments), NOW).unwrap(),
        expected
    );
    assert_eq!(
        acquirer
            .settle(&settlement("S-1", &[payer.pay("PAY-4", eur(1), 5)]), NOW)
            .unwrap(),
        expected
    );
    assert_eq!(
        acquirer.balance(&payer.account()).unwrap(),
        Some(state(&payer, 900, 0, 4))
    );
    let kept: Vec<SignedWalletPayment> = acquirer
        .store()
        .payments(&payer.account())
        .unwrap()
        .into_iter()
        .map(|kept| kept.signed)
        .collect();
    assert_eq!(kept, payments);
    // The opening F once more, after the settlement: still the same G.
    assert_eq!(acquirer.authorise(&opening, NOW).unwrap(), answer);
}

#[test]
fn provisions_refused_change_nothing() {
    let payer = Payer::new(1);
    let stranger = Payer::new(2);
    // Sequence 1 is debited and 2 opened S-1: a new payment comes with 3.
    let next = |amount| payer.pay("PAY-2", amount, 3);
    let mut flipped = next(eur(10));
    flipped.signature[3] ^= 0x80;
    let mut other_merchant = f_opening(&next(eur(10)), "S-2", eur(100));
    other_merchant.merchant = MerchantId::from("FE-2");
    other_merchant.request.merchant = MerchantId::from("FE-2");
    // (case, F, the refusal)
    #[rustfmt::skip]
    let cases: Vec<(&str, AcquirerTransaction, R)> = vec![
        ("a first payment above what is available",  f_opening(&next(eur(351)), "S-2", eur(400)),                     R::InsufficientFunds),
        ("a first payment above the provision",     f_opening(&next(eur(51)), "S-2", eur(50)),                       R::ProvisionExceeded),
        ("a byte of the signature flipped",         f_opening(&flipped, "S-2", eur(100)),                            R::SignatureInvalid),
        ("an account the acquirer does not know",   f_opening(&stranger.pay("PAY-2", eur(10), 1), "S-2", eur(100)),  R::UnknownAccount),
        ("the sequence of a payment already debited", f_opening(&payer.pay("PAY-2", eur(10), 1), "S-2", eur(100)),   R::ReplayedSequence),
        ("a provision in another currency",         f_opening(&next(eur(10)), "S-2", Money::new(100, Currency::USD)), R::MismatchWithRequest),
        ("a first payment in another currency",     f_opening(&next(Money::new(10, Currency::USD)), "S-2", eur(100)), R::MismatchWithRequest),
        ("F credits another merchant than the payment's", other_merchant,                                            R::MismatchWithRequest),
        ("the name of a provision already opened",  f_opening(&next(eur(10)), "S-1", eur(100)),                      R::PaymentIdReused),
        ("the first payment of another session",    f_opening(&payer.pay("PAY-S1", eur(10), 2), "S-2", eur(100)),    R::ReplayedSequence),
        ("another payment with that session's first sequence", f_opening(&payer.pay("PAY-2", eur(10), 2), "S-2", eur(100)), R::ReplayedSequence),
        ("the identifier of the payment debited",   f_opening(&payer.pay("PAY-1", eur(10), 3), "S-2", eur(100)),     R::PaymentIdReused),
    ];
    let dir = TempDir::new("wallet-acquirer-provision-refusals");
    let mut acquirer = acquirer(&dir, &payer, 500);
    let paid = payer.pay("PAY-1", eur(100), 1);
    assert!(
        acquirer
            .authorise(&f(&paid), NOW)
            .unwrap()
            .verdict
            .is_positive()
    );
    let opened = payer.pay("PAY-S1", eur(10), 2);
    assert!(
        acquirer
            .authorise(&f_opening(&opened, "S-1", eur(50)), NOW)
            .unwrap()
            .verdict
            .is_positive()
    );
    let before = Some(state(&payer, 400, 50, 1));
    for (case, transaction, reason) in cases {
        assert_eq!(
            acquirer.authorise(&transaction, NOW).unwrap(),
            g(&transaction, Verdict::refused(reason), None),
            "{case}"
        );
        assert_eq!(
            acquirer.balance(&payer.account()).unwrap(),
            before,
            "{case}"
        );
        assert_eq!(
            acquirer.store().provision(&SessionId::from("S-2")).unwrap(),
            None,
            "{case}"
        );
    }
}

#[test]
fn a_settlement_refuses_the_payment_over_the_provision_and_says_so_again() {
    let dir = TempDir::new("wallet-acquirer-over");
    let payer = Payer::new(1);
    let mut acquirer = acquirer(&dir, &payer, 1_000);
    let first = payer.pay("PAY-1", eur(60), 1);
    let opened = acquirer
        .authorise(&f_opening(&first, "S-1", eur(100)), NOW)
        .unwrap();
    assert!(opened.verdict.is_positive());
    let payments = [
        first,
        payer.pay("PAY-2", eur(30), 2),
        payer.pay("PAY-3", eur(20), 3),
        payer.pay("PAY-4", eur(10), 4),
    ];
    let expected = SettlementResult {
        acquirer: acquirer_id(),
        segment: SessionId::from("S-1"),
        settled: 3,
        debited: eur(100),
        released: eur(0),
        refused: vec![(
            PaymentId::from("PAY-3"),
            "session S-1: payment PAY-3 takes the total to 1.10 EUR, above the provision of 1.00 EUR"
                .to_owned(),
        )],
    };
    assert_eq!(
        acquirer.settle(&settlement("S-1", &payments), NOW).unwrap(),
        expected
    );
    drop(acquirer);
    let store = WalletStore::open(dir.file("wallet.sqlite")).unwrap();
    let mut acquirer = WalletAcquirer::new(acquirer_id(), store);
    assert_eq!(
        acquirer.settle(&settlement("S-1", &payments), NOW).unwrap(),
        expected
    );
    assert_eq!(
        acquirer.balance(&payer.account()).unwrap(),
        Some(state(&payer, 900, 0, 4))
    );
}

#[test]
fn an_empty_settlement_releases_the_whole_provision() {
    let dir = TempDir::new("wallet-acquirer-empty");
    let payer = Payer::new(1);
    let mut acquirer = acquirer(&dir, &payer, 1_000);
    let first = payer.pay("PAY-1", eur(40), 1);
    assert!(
        acquirer
            .authorise(&f_opening(&first, "S-1", eur(300)), NOW)
            .unwrap()
            .verdict
            .is_positive()
    );
    assert_eq!(
        acquirer.settle(&settlement("S-1", &[]), NOW).unwrap(),
        SettlementResult {
            acquirer: acquirer_id(),
            segment: SessionId::from("S-1"),
            settled: 0,
            debited: eur(0),
            released: eur(300),
            refused: Vec::new(),
        }
    );
    assert_eq!(
        acquirer.balance(&payer.account()).unwrap(),
        Some(state(&payer, 1_000, 0, 0))
    );
    // The cancelled session's first payment stays its own: never paid alone.
    assert_eq!(
        acquirer.authorise(&f(&first), NOW).unwrap(),
        g(
            &f(&first),
            Verdict::refused(RefusalReason::ReplayedSequence),
            None
        )
    );
}

#[test]
fn a_session_never_opened_settles_nothing() {
    let dir = TempDir::new("wallet-acquirer-unknown");
    let payer = Payer::new(1);
    let mut acquirer = acquirer(&dir, &payer, 1_000);
    // The front-end cancelling a provision whose F never arrived.
    assert_eq!(
        acquirer.settle(&settlement("S-9", &[]), NOW).unwrap(),
        SettlementResult {
            acquirer: acquirer_id(),
            segment: SessionId::from("S-9"),
            settled: 0,
            debited: Money::new(0, NO_CURRENCY),
            released: Money::new(0, NO_CURRENCY),
            refused: Vec::new(),
        }
    );
    let payments = [
        payer.pay("PAY-1", eur(10), 1),
        payer.pay("PAY-2", eur(10), 2),
    ];
    let reason = "session S-9: no provision was reserved for it".to_owned();
    assert_eq!(
        acquirer.settle(&settlement("S-9", &payments), NOW).unwrap(),
        SettlementResult {
            acquirer: acquirer_id(),
            segment: SessionId::from("S-9"),
            settled: 0,
            debited: eur(0),
            released: eur(0),
            refused: vec![
                (PaymentId::from("PAY-1"), reason.clone()),
                (PaymentId::from("PAY-2"), reason),
            ],
        }
    );
    assert_eq!(
        acquirer.balance(&payer.account()).unwrap(),
        Some(state(&payer, 1_000, 0, 0))
    );
}

#[test]
fn a_reversal_refunds_a_debited_payment_once() {
    let dir = TempDir::new("wallet-acquirer-refund");
    let payer = Payer::new(1);
    let mut acquirer = acquirer(&dir, &payer, 500);
    let payment = payer.pay("PAY-1", eur(120), 1);
    assert!(
        acquirer
            .authorise(&f(&payment), NOW)
            .unwrap()
            .verdict
            .is_positive()
    );
    let refund = Credit {
        reference: CreditReference::from("reversal/PAY-1"),
        account: payer.account(),
        amount: eur(120),
    };
    assert_eq!(
        acquirer.reverse(&reversal("PAY-1"), NOW).unwrap(),
        WalletReversal::Refunded {
            refund: refund.clone(),
            state: state(&payer, 500, 0, 1),
        }
    );
    assert_eq!(
        acquirer.reverse(&reversal("PAY-1"), NOW).unwrap(),
        WalletReversal::AlreadyRefunded {
            refund: refund.clone()
        }
    );
    assert_eq!(
        acquirer
            .reverse(&reversal("PAY-1"), NOW)
            .unwrap()
            .to_string(),
        format!(
            "already credited back: 1.20 EUR to account {} (credit reversal/PAY-1)",
            payer.account()
        )
    );
    // F repeated after its reversal is refused, and debits nothing again.
    assert_eq!(
        acquirer.authorise(&f(&payment), NOW).unwrap(),
        g(
            &f(&payment),
            Verdict::refused(RefusalReason::Cancelled),
            None
        )
    );
    assert_eq!(
        acquirer.balance(&payer.account()).unwrap(),
        Some(state(&payer, 500, 0, 1))
    );
    let credits = acquirer.store().credits(&payer.account()).unwrap();
    assert_eq!(credits.len(), 2);
    assert!(credits.contains(&refund));
    // The signed payment is still kept: it was paid, then given back.
    assert_eq!(
        acquirer.store().payments(&payer.account()).unwrap().len(),
        1
    );
}

#[test]
fn a_reversal_that_overtakes_its_transaction_makes_it_refused() {
    let dir = TempDir::new("wallet-acquirer-overtaken");
    let payer = Payer::new(1);
    let mut acquirer = acquirer(&dir, &payer, 500);
    assert_eq!(
        acquirer.reverse(&reversal("PAY-1"), NOW).unwrap(),
        WalletReversal::NothingDebited
    );
    assert_eq!(
        acquirer.reverse(&reversal("PAY-2"), NOW).unwrap(),
        WalletReversal::NothingDebited
    );
    drop(acquirer);
    // Kept durably: a restart does not forget it.
    let store = WalletStore::open(dir.file("wallet.sqlite")).unwrap();
    let mut acquirer = WalletAcquirer::new(acquirer_id(), store);
    let late = f(&payer.pay("PAY-1", eur(100), 1));
    assert_eq!(
        acquirer.authorise(&late, NOW).unwrap(),
        g(&late, Verdict::refused(RefusalReason::Cancelled), None)
    );
    let late_opening = f_opening(&payer.pay("PAY-2", eur(100), 2), "S-1", eur(200));
    assert_eq!(
        acquirer.authorise(&late_opening, NOW).unwrap(),
        g(
            &late_opening,
            Verdict::refused(RefusalReason::Cancelled),
            None
        )
    );
    assert_eq!(
        acquirer.balance(&payer.account()).unwrap(),
        Some(state(&payer, 500, 0, 0))
    );
}

#[test]
fn a_reversed_first_payment_is_left_out_of_its_settlement() {
    let dir = TempDir::new("wallet-acquirer-withheld");
    let payer = Payer::new(1);
    let mut acquirer = acquirer(&dir, &payer, 500);
    let first = payer.pay("PAY-1", eur(40), 1);
    assert!(
        acquirer
            .authorise(&f_opening(&first, "S-1", eur(100)), NOW)
            .unwrap()
            .verdict
            .is_positive()
    );
    assert_eq!(
        acquirer.reverse(&reversal("PAY-1"), NOW).unwrap(),
        WalletReversal::Withheld {
            session: SessionId::from("S-1")
        }
    );
    let second = payer.pay("PAY-2", eur(25), 2);
    assert_eq!(
        acquirer
            .settle(&settlement("S-1", &[first, second.clone()]), NOW)
            .unwrap(),
        SettlementResult {
            acquirer: acquirer_id(),
            segment: SessionId::from("S-1"),
            settled: 1,
            debited: eur(25),
            released: eur(75),
            refused: vec![(
                PaymentId::from("PAY-1"),
                "payment PAY-1: the front-end reversed it".to_owned()
            )],
        }
    );
    assert_eq!(
        acquirer.balance(&payer.account()).unwrap(),
        Some(state(&payer, 475, 0, 2))
    );
    let kept: Vec<SignedWalletPayment> = acquirer
        .store()
        .payments(&payer.account())
        .unwrap()
        .into_iter()
        .map(|kept| kept.signed)
        .collect();
    assert_eq!(kept, [second]);
}

#[test]
fn as_a_role_the_acquirer_answers_f_and_settlements_and_notes_the_rest() {
    let dir = TempDir::new("wallet-acquirer-role");
    let payer = Payer::new(1);
    let mut acquirer = acquirer(&dir, &payer, 500);
    assert_eq!(acquirer.party(), Party::Acquirer(acquirer_id()));
    let first = payer.pay("PAY-1", eur(40), 1);
    let opening = f_opening(&first, "S-1", eur(100));
    let handled = acquirer.handle(
        NOW,
        &Party::FrontEnd,
        Message::AcquirerTransaction(Box::new(opening.clone())),
    );
    assert_eq!(
        handled.sent,
        [Envelope {
            from: Party::Acquirer(acquirer_id()),
            to: Party::FrontEnd,
            message: Message::Acknowledgement(g(
                &opening,
                positive(&first),
                grant("S-1", eur(100), 0)
            )),
        }]
    );
    assert_eq!(handled.note, None);
    let handled = acquirer.handle(
        NOW,
        &Party::FrontEnd,
        Message::SessionSettlement(settlement("S-1", &[first])),
    );
    assert_eq!(
        handled.sent,
        [Envelope {
            from: Party::Acquirer(acquirer_id()),
            to: Party::FrontEnd,
            message: Message::SettlementResult(SettlementResult {
                acquirer: acquirer_id(),
                segment: SessionId::from("S-1"),
                settled: 1,
                debited: eur(40),
                released: eur(60),
                refused: Vec::new(),
            }),
        }]
    );
    let handled = acquirer.handle(NOW, &Party::FrontEnd, Message::Reversal(reversal("PAY-9")));
    assert!(handled.sent.is_empty());
    assert_eq!(
        handled.note.as_deref(),
        Some("reversal of PAY-9: nothing debited, nothing to reverse")
    );
    let mut foreign = f(&payer.pay("PAY-2", eur(1), 2));
    foreign.acquirer = AcquirerId::from("bank-1");
    let handled = acquirer.handle(
        NOW,
        &Party::FrontEnd,
        Message::AcquirerTransaction(Box::new(foreign)),
    );
    assert!(handled.sent.is_empty());
    assert_eq!(
        handled.note.as_deref(),
        Some("transaction for payment PAY-2 is addressed to acquirer bank-1, this is wallet-1")
    );
    let end = SessionEnd {
        terminal: TerminalId::from("T-1"),
        session: SessionId::from("session-1"),
    };
    let handled = acquirer.handle(NOW, &Party::FrontEnd, Message::SessionEnd(end));
    assert!(handled.sent.is_empty());
    assert_eq!(
        handled.note.as_deref(),
        Some("an acquirer takes no end session message")
    );
    assert_eq!(
        acquirer.balance(&payer.account()).unwrap(),
        Some(state(&payer, 460, 0, 1))
    );
}

/// One step of the property test.
#[derive(Debug, Clone)]
enum Step {
    /// Credit with one of a few references (so some repeat).
    Credit { reference: u8, minor: u64 },
    /// A direct payment; the sequence moves from the payer's counter by `delta`
    /// (≤ 0 replays or re-orders).
    Pay { minor: u64, delta: i8 },
    /// F with a provision: a new session's first payment.
    Open { provision: u64, first: u64 },
    /// The payer signs the next payment of the open session.
    SessionPay { minor: u64 },
    /// Settle the last session with its payments, or with none (cancelled, one time in
    /// four); again if already settled.
    Settle { empty: bool },
    /// Reverse one of the payments named so far.
    Reverse { pick: usize },
    /// The last F again.
    Repeat,
    /// The process dies and the store is opened again.
    Reopen,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        2 => (0u8..4, 1u64..500).prop_map(|(reference, minor)| Step::Credit { reference, minor }),
        3 => (0u64..300, -1i8..3).prop_map(|(minor, delta)| Step::Pay { minor, delta }),
        2 => (1u64..400, 0u64..120).prop_map(|(provision, first)| Step::Open { provision, first }),
        3 => (1u64..120).prop_map(|minor| Step::SessionPay { minor }),
        2 => (0u8..4).prop_map(|empty| Step::Settle { empty: empty == 0 }),
        2 => any::<usize>().prop_map(|pick| Step::Reverse { pick }),
        1 => Just(Step::Repeat),
        1 => Just(Step::Reopen),
    ]
}

/// A session as the front-end holds it in the property test.
struct Open {
    segment: SessionId,
    provision: u64,
    payments: Vec<SignedWalletPayment>,
    settled: Option<SettlementResult>,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn the_balance_is_credits_and_refunds_less_debits_and_never_negative(
        funds in 0u64..1_500,
        steps in proptest::collection::vec(step(), 1..40)
    ) {
        let dir = TempDir::new("wallet-acquirer-property");
        let path = dir.file("wallet.sqlite");
        let payer = Payer::new(7);
        let account = payer.account();
        let mut acquirer = WalletAcquirer::new(acquirer_id(), WalletStore::open(&path).unwrap());
        acquirer.store_mut().open_account(&account, Currency::EUR, NOW).unwrap();
        // The model: what the acquirer answered, summed independently.
        let mut credited = 0u64;
        if funds > 0 {
            let credit = Credit {
                reference: CreditReference::from("R-funds"),
                account: account.clone(),
                amount: eur(funds),
            };
            acquirer.credit(&credit, NOW).unwrap();
            credited = funds;
        }
        let mut refunded = 0u64;
        let mut debited = 0u64;
        let mut reserved = 0u64;
        let mut counter = 0u64;
        let mut named: Vec<(PaymentId, u64)> = Vec::new();
        let mut sessions: Vec<Open> = Vec::new();
        let mut last: Option<(AcquirerTransaction, Acknowledgement)> = None;
        for (index, step) in steps.into_iter().enumerate() {
            match step {
                Step::Credit { reference, minor } => {
                    let credit = Credit {
                        reference: CreditReference::from(format!("R-{reference}")),
                        account: account.clone(),
                        amount: eur(minor),
                    };
                    if let Outcome::Done(_) = acquirer.credit(&credit, NOW).unwrap() {
                        credited += minor;
                    }
                }
                Step::Pay { minor, delta } => {
                    let sequence = counter.saturating_add_signed(i64::from(delta));
                    counter = counter.max(sequence);
                    let payment = payer.pay(&format!("PAY-{index}"), eur(minor), sequence);
                    named.push((payment.payment.payment.clone(), minor));
                    let transaction = f(&payment);
                    let answer = acquirer.authorise(&transaction, NOW).unwrap();
                    if answer.verdict.is_positive() {
                        prop_assert_eq!(&answer.verdict, &positive(&payment));
                        debited += minor;
                    }
                    last = Some((transaction, answer));
                }
                Step::Open { provision, first } => {
                    counter += 1;
                    let segment = SessionId::from(format!("S-{index}"));
                    let payment = payer.pay(&format!("PAY-{index}"), eur(first), counter);
                    named.push((payment.payment.payment.clone(), first));
                    let transaction = f_opening(&payment, &segment.0, eur(provision));
                    // What is free: the provision granted is the amount asked, or this
                    // when it is less.
                    let available = (credited + refunded - debited).saturating_sub(reserved);
                    let answer = acquirer.authorise(&transaction, NOW).unwrap();
                    if answer.verdict.is_positive() {
                        let grant = answer.provision.clone().unwrap();
                        let granted = provision.min(available);
                        prop_assert_eq!(grant.amount, eur(granted));
                        prop_assert!(granted >= first);
                        prop_assert!(grant.sequence_floor < counter);
                        reserved += granted;
                        sessions.push(Open {
                            segment,
                            provision: granted,
                            payments: vec![payment],
                            settled: None,
                        });
                    } else {
                        prop_assert_eq!(answer.provision.clone(), None);
                    }
                    last = Some((transaction, answer));
                }
                Step::SessionPay { minor } => {
                    if let Some(open) = sessions.last_mut().filter(|open| open.settled.is_none()) {
                        counter += 1;
                        let payment = payer.pay(&format!("PAY-{index}"), eur(minor), counter);
                        named.push((payment.payment.payment.clone(), minor));
                        open.payments.push(payment);
                    }
                }
                Step::Settle { empty } => {
                    if let Some(open) = sessions.last_mut() {
                        let payments = if empty { Vec::new() } else { open.payments.clone() };
                        let result = acquirer
                            .settle(&settlement(&open.segment.0, &payments), NOW)
                            .unwrap();
                        match &open.settled {
                            Some(first) => prop_assert_eq!(&result, first),
                            None => {
                                let refused: u64 = payments
                                    .iter()
                                    .filter(|p| result.refused.iter().any(|(id, _)| *id == p.payment.payment))
                                    .map(|p| p.payment.amount.minor)
                                    .sum();
                                let sent: u64 = payments.iter().map(|p| p.payment.amount.minor).sum();
                                prop_assert_eq!(result.debited, eur(sent - refused));
                                prop_assert_eq!(result.debited.minor + result.released.minor, open.provision);
                                debited += result.debited.minor;
                                reserved -= open.provision;
                                open.settled = Some(result);
                            }
                        }
                    }
                }
                Step::Reverse { pick } => {
                    if !named.is_empty() {
                        let (payment, minor) = named[pick % named.len()].clone();
                        if let WalletReversal::Refunded { refund, .. } =
                            acquirer.reverse(&reversal(&payment.0), NOW).unwrap()
                        {
                            prop_assert_eq!(refund.amount, eur(minor));
                            refunded += minor;
                        }
                    }
                }
                Step::Repeat => {
                    if let Some((transaction, answer)) = &last {
                        let again = acquirer.authorise(transaction, NOW).unwrap();
                        // The same G; only a positive one reversed in between becomes
                        // a refusal.
                        if again != *answer {
                            prop_assert!(answer.verdict.is_positive());
                            prop_assert_eq!(again.verdict, Verdict::refused(RefusalReason::Cancelled));
                            prop_assert!(acquirer.store().is_reversed(&transaction.transaction.payment).unwrap());
                        }
                    }
                }
                Step::Reopen => {
                    drop(acquirer);
                    acquirer = WalletAcquirer::new(acquirer_id(), WalletStore::open(&path).unwrap());
                }
            }
            let state = acquirer.balance(&account).unwrap().unwrap();
            let stored_credits: u64 = acquirer
                .store()
                .credits(&account)
                .unwrap()
                .iter()
                .map(|c| c.amount.minor)
                .sum();
            let stored_payments: u64 = acquirer
                .store()
                .payments(&account)
                .unwrap()
                .iter()
                .map(|p| p.signed.payment.amount.minor)
                .sum();
            prop_assert_eq!(stored_credits, credited + refunded);
            prop_assert_eq!(stored_payments, debited);
            prop_assert_eq!(state.balance, credited + refunded - debited);
            prop_assert_eq!(state.reserved, reserved);
            prop_assert!(state.reserved <= state.balance);
        }
    }
}
