//! The payer device's own features (claims 4–7, 18): payment plan, confirmation
//! thresholds, session totals, several users, and their configuration file.
//!
//! The reference user, `alice`, has a bank card (`sim:cb`) and a virtual wallet (key
//! store entry `alice`); her plan:
//!
//! | rule | kinds | band | means, preferred first |
//! |---|---|---|---|
//! | 1 | pay-per-view | EUR from 0.00 | virtual wallet |
//! | 2 | any | EUR from 0.00 to below 100.00 | virtual wallet, bank card |
//! | 3 | any | EUR from 100.00 | bank card |
//! | 4 | any | USD from 0.00 | bank card |
//!
//! Her thresholds: bank card implicit up to 20.00 EUR, virtual wallet up to 5.00 EUR.
//! The acquirers: the bank card takes 0.01–1,500.00 in EUR and USD, the wallet
//! 0.01–50.00 EUR.

use proptest::prelude::*;
use telepay::acquirer::card::AmountLimits;
use telepay::messages::{
    Currency, Means, MerchantId, Money, PaymentId, PaymentRequest, PurchaseId, ServiceId,
    ServiceKind, Timestamp,
};
use telepay::provider::catalogue::Location;
use telepay::terminal::plan::config::{self, PayerConfigError};
use telepay::terminal::plan::{
    AcquirerLimits, AmountBand, Choice, ChoiceReason, ConfigPlace, Confirmation, Counted,
    MeansAtDisposal, PaymentContext, PaymentOutcome, PaymentPlan, PlanError, PlanRule, Refusal,
    SessionPayment, SessionTotals, Thresholds, Unsuitable, User, UserId, Users,
};

const CARD: Means = Means::BankCard;
const WALLET: Means = Means::VirtualWallet;
const BOTH: &[Means] = &[CARD, WALLET];
const EUR: Currency = Currency::EUR;
const USD: Currency = Currency::USD;

fn eur(minor: u64) -> Money {
    Money::new(minor, EUR)
}

fn band(currency: Currency, from: u64, below: Option<u64>) -> AmountBand {
    AmountBand::new(currency, from, below)
}

fn limits(text: &str) -> AmountLimits {
    AmountLimits::from_toml_str(text, "test").unwrap()
}

fn acquirers() -> AcquirerLimits {
    AcquirerLimits::new()
        .with(
            CARD,
            limits(
                "[[limit]]\ncurrency = \"EUR\"\nmin = 1\nmax = 150000\n\
                 [[limit]]\ncurrency = \"USD\"\nmin = 1\nmax = 150000\n",
            ),
        )
        .with(
            WALLET,
            limits("[[limit]]\ncurrency = \"EUR\"\nmin = 1\nmax = 5000\n"),
        )
}

fn alice_plan() -> PaymentPlan {
    PaymentPlan::new(vec![
        PlanRule::new(vec![WALLET], band(EUR, 0, None)).for_kinds(vec![ServiceKind::PayPerView]),
        PlanRule::new(vec![WALLET, CARD], band(EUR, 0, Some(10_000))),
        PlanRule::new(vec![CARD], band(EUR, 10_000, None)),
        PlanRule::new(vec![CARD], band(USD, 0, None)),
    ])
    .unwrap()
}

fn both_means(wallet_entry: &str) -> MeansAtDisposal {
    MeansAtDisposal {
        card_reader: Some("sim:cb".to_owned()),
        key_store_user: Some(wallet_entry.to_owned()),
    }
}

fn alice() -> User {
    User::new(
        UserId::new("alice").unwrap(),
        alice_plan(),
        Thresholds::new()
            .with(CARD, eur(2_000))
            .with(WALLET, eur(500)),
        both_means("alice"),
    )
    .unwrap()
}

/// Bob pays everything in EUR by card, and confirms everything.
fn bob() -> User {
    User::new(
        UserId::new("bob").unwrap(),
        PaymentPlan::new(vec![PlanRule::new(vec![CARD], band(EUR, 0, None))]).unwrap(),
        Thresholds::new(),
        MeansAtDisposal {
            card_reader: Some("pcsc:".to_owned()),
            key_store_user: None,
        },
    )
    .unwrap()
}

fn by_rule(
    means: Means,
    confirmation: Confirmation,
    rule: usize,
    rule_band: AmountBand,
    passed_over: Vec<(Means, Unsuitable)>,
) -> Result<Choice, Refusal> {
    Ok(Choice {
        means,
        confirmation,
        reason: ChoiceReason::Rule {
            rule,
            band: rule_band,
            passed_over,
        },
    })
}

fn by_user(means: Means, confirmation: Confirmation) -> Result<Choice, Refusal> {
    Ok(Choice {
        means,
        confirmation,
        reason: ChoiceReason::UserChoice,
    })
}

// ---------------------------------------------------------------------------------------
// Payment plan (claims 4, 18) and thresholds (claim 5)

/// One row of the choice table: case, amount, kind, accepted means, override, answer.
type ChoiceCase = (
    &'static str,
    Money,
    Option<ServiceKind>,
    &'static [Means],
    Option<Means>,
    Result<Choice, Refusal>,
);

#[test]
fn the_plan_chooses_the_means_for_each_payment() {
    use Confirmation::{Explicit, Implicit};
    let rule1 = band(EUR, 0, None);
    let rule2 = band(EUR, 0, Some(10_000));
    let rule3 = band(EUR, 10_000, None);
    let rule4 = band(USD, 0, None);
    let wallet_limits = Unsuitable::OutsideLimits {
        min: eur(1),
        max: eur(5_000),
    };
    let card_limits = Unsuitable::OutsideLimits {
        min: eur(1),
        max: eur(150_000),
    };
    let doc = Some(ServiceKind::Document);
    let ppv = Some(ServiceKind::PayPerView);
    #[rustfmt::skip]
    let table: Vec<ChoiceCase> = vec![
        ("small document: wallet, under its threshold",
            eur(250), doc, BOTH, None, by_rule(WALLET, Implicit, 2, rule2, vec![])),
        ("wallet threshold is inclusive",
            eur(500), doc, BOTH, None, by_rule(WALLET, Implicit, 2, rule2, vec![])),
        ("one cent above the wallet threshold: explicit",
            eur(501), doc, BOTH, None, by_rule(WALLET, Explicit, 2, rule2, vec![])),
        ("wallet outside its acquirer's limits: the rule's next means",
            eur(6_000), doc, BOTH, None, by_rule(CARD, Explicit, 2, rule2, vec![(WALLET, wallet_limits.clone())])),
        ("99.99 is still below 100.00: rule 2",
            eur(9_999), doc, BOTH, None, by_rule(CARD, Explicit, 2, rule2, vec![(WALLET, wallet_limits.clone())])),
        ("100.00 is rule 3's: `below` is exclusive, `from` inclusive",
            eur(10_000), doc, BOTH, None, by_rule(CARD, Explicit, 3, rule3, vec![])),
        ("pay-per-view: its own rule, before the general ones",
            eur(300), ppv, BOTH, None, by_rule(WALLET, Implicit, 1, rule1, vec![])),
        ("unknown kind: only rules for every kind cover it",
            eur(300), None, BOTH, None, by_rule(WALLET, Implicit, 2, rule2, vec![])),
        ("request refuses the wallet: the card, under its threshold",
            eur(250), doc, &[CARD], None, by_rule(CARD, Implicit, 2, rule2, vec![(WALLET, Unsuitable::NotAccepted)])),
        ("card threshold is inclusive",
            eur(2_000), doc, &[CARD], None, by_rule(CARD, Implicit, 2, rule2, vec![(WALLET, Unsuitable::NotAccepted)])),
        ("no threshold in USD: explicit",
            Money::new(200, USD), doc, BOTH, None, by_rule(CARD, Explicit, 4, rule4, vec![])),
        ("pay-per-view with the wallet refused: rule 1 has no other means",
            eur(250), ppv, &[CARD], None, Err(Refusal::NoSuitableMeans {
                rule: 1, band: rule1, amount: eur(250), rejected: vec![(WALLET, Unsuitable::NotAccepted)] })),
        ("zero: covered by rule 2, but no acquirer takes it",
            eur(0), doc, BOTH, None, Err(Refusal::NoSuitableMeans {
                rule: 2, band: rule2, amount: eur(0),
                rejected: vec![
                    (WALLET, Unsuitable::OutsideLimits { min: eur(1), max: eur(5_000) }),
                    (CARD, Unsuitable::OutsideLimits { min: eur(1), max: eur(150_000) }),
                ] })),
        ("above the card's limits: rule 3 cannot pay",
            eur(150_001), doc, BOTH, None, Err(Refusal::NoSuitableMeans {
                rule: 3, band: rule3, amount: eur(150_001), rejected: vec![(CARD, card_limits)] })),
        ("a currency the plan does not pay in",
            Money::new(1_000, Currency::JPY), doc, BOTH, None,
            Err(Refusal::NoRule { amount: Money::new(1_000, Currency::JPY), kind: doc })),
        ("override: the card although the plan says wallet",
            eur(250), doc, BOTH, Some(CARD), by_user(CARD, Implicit)),
        ("override outside the acquirer's limits: refused",
            eur(6_000), doc, BOTH, Some(WALLET), Err(Refusal::ChoiceRefused {
                means: WALLET, amount: eur(6_000), why: wallet_limits.clone() })),
        ("override the request does not accept: refused",
            eur(250), doc, &[WALLET], Some(CARD), Err(Refusal::ChoiceRefused {
                means: CARD, amount: eur(250), why: Unsuitable::NotAccepted })),
        ("override in a currency the plan has no rule for: the acquirer decides",
            Money::new(200, USD), doc, BOTH, Some(WALLET), Err(Refusal::ChoiceRefused {
                means: WALLET, amount: Money::new(200, USD), why: Unsuitable::CurrencyNotTaken })),
    ];
    let user = alice();
    let limits = acquirers();
    for (case, amount, kind, accepted, chosen, expected) in table {
        let context = PaymentContext {
            amount,
            kind,
            accepted,
            chosen,
        };
        assert_eq!(user.choose(&context, &limits), expected, "{case}");
    }
}

#[test]
fn a_means_without_an_acquirer_or_a_device_is_passed_over() {
    let card_only = AcquirerLimits::new().with(
        CARD,
        limits("[[limit]]\ncurrency = \"EUR\"\nmin = 1\nmax = 150000\n"),
    );
    let context = PaymentContext {
        amount: eur(250),
        kind: None,
        accepted: BOTH,
        chosen: None,
    };
    assert_eq!(
        alice().choose(&context, &card_only),
        by_rule(
            CARD,
            Confirmation::Implicit,
            2,
            band(EUR, 0, Some(10_000)),
            vec![(WALLET, Unsuitable::NoAcquirer)]
        )
    );
    // Bob has no wallet: naming it is refused whatever the acquirers say.
    assert_eq!(
        bob().choose(&context.with_means(WALLET), &acquirers()),
        Err(Refusal::ChoiceRefused {
            means: WALLET,
            amount: eur(250),
            why: Unsuitable::NotAtDisposal
        })
    );
}

#[test]
fn a_payment_request_gives_the_amount_and_the_accepted_means() {
    let request = PaymentRequest {
        purchase: PurchaseId::from("purchase-1"),
        payment: PaymentId::from("payment-1"),
        merchant: MerchantId::from("merchant"),
        service: ServiceId::from("S1"),
        designation: "Report".into(),
        designation_digest: PaymentRequest::digest_designation("Report"),
        amount: eur(6_000),
        date: Timestamp(0),
        nonce: [0; 16],
        valid_until: Timestamp(60_000),
        accepted_means: vec![CARD],
        session: None,
    };
    let context = PaymentContext::of_request(&request, Some(ServiceKind::Document));
    assert_eq!(
        context,
        PaymentContext {
            amount: eur(6_000),
            kind: Some(ServiceKind::Document),
            accepted: &[CARD],
            chosen: None,
        }
    );
    assert_eq!(context.with_means(WALLET).chosen, Some(WALLET));
    assert_eq!(
        alice().choose(&context, &acquirers()),
        by_rule(
            CARD,
            Confirmation::Explicit,
            2,
            band(EUR, 0, Some(10_000)),
            vec![(WALLET, Unsuitable::NotAccepted)]
        )
    );
}

#[test]
fn refusals_and_reasons_read_as_sentences() {
    let limits = acquirers();
    let context = PaymentContext {
        amount: eur(6_000),
        kind: Some(ServiceKind::Document),
        accepted: BOTH,
        chosen: None,
    };
    let choice = alice().choose(&context, &limits).unwrap();
    assert_eq!(
        choice.reason.to_string(),
        "plan rule 2 (from 0.00 EUR to below 100.00 EUR), passing over virtual wallet: its acquirer takes 0.01 EUR to 50.00 EUR"
    );
    let refused = alice()
        .choose(&context.with_means(WALLET), &limits)
        .unwrap_err();
    assert_eq!(
        refused.to_string(),
        "virtual wallet cannot pay 60.00 EUR: its acquirer takes 0.01 EUR to 50.00 EUR"
    );
    let no_rule = alice()
        .choose(
            &PaymentContext {
                amount: Money::new(5, Currency::JPY),
                kind: Some(ServiceKind::PayPerView),
                accepted: BOTH,
                chosen: None,
            },
            &limits,
        )
        .unwrap_err();
    assert_eq!(
        no_rule.to_string(),
        "no rule of the plan covers 5 JPY for pay-per-view"
    );
}

#[test]
fn thresholds_are_implicit_at_or_below_and_explicit_above() {
    use Confirmation::{Explicit, Implicit};
    let thresholds = Thresholds::new()
        .with(CARD, eur(2_000))
        .with(CARD, Money::new(1_000, USD))
        .with(WALLET, eur(0));
    #[rustfmt::skip]
    let table = [
        (CARD, eur(1), Implicit),
        (CARD, eur(2_000), Implicit),
        (CARD, eur(2_001), Explicit),
        (CARD, Money::new(1_000, USD), Implicit),
        (CARD, Money::new(1_001, USD), Explicit),
        (CARD, Money::new(1, Currency::GBP), Explicit), // no threshold in GBP
        (WALLET, eur(0), Implicit),
        (WALLET, eur(1), Explicit),
        (WALLET, Money::new(1, USD), Explicit),
    ];
    for (means, amount, expected) in table {
        assert_eq!(
            thresholds.confirmation(means, &amount),
            expected,
            "{means:?} {amount}"
        );
    }
    let mut replaced = thresholds.clone();
    assert_eq!(replaced.set(CARD, eur(5_000)), Some(eur(2_000)));
    assert_eq!(replaced.confirmation(CARD, &eur(2_001)), Implicit);
    assert_eq!(
        replaced.implicit_up_to(CARD, USD),
        Some(Money::new(1_000, USD))
    );
}

#[test]
fn plans_refuse_rules_that_hide_or_disorder_others() {
    let any = |means: Vec<Means>, from, below| PlanRule::new(means, band(EUR, from, below));
    let ppv = |from, below| {
        PlanRule::new(vec![WALLET], band(EUR, from, below)).for_kinds(vec![ServiceKind::PayPerView])
    };
    #[rustfmt::skip]
    let table: Vec<(&str, Vec<PlanRule>, Result<(), PlanError>)> = vec![
        ("wallet below 100, card from 100",
            vec![any(vec![WALLET], 0, Some(10_000)), any(vec![CARD], 10_000, None)], Ok(())),
        ("currencies are independent",
            vec![any(vec![CARD], 0, None), PlanRule::new(vec![CARD], band(USD, 0, None))], Ok(())),
        ("an exception for fewer kinds may come first",
            vec![ppv(0, None), any(vec![CARD], 0, None)], Ok(())),
        ("disjoint kinds may overlap",
            vec![ppv(0, None), PlanRule::new(vec![CARD], band(EUR, 0, None)).for_kinds(vec![ServiceKind::Document])], Ok(())),
        ("a gap is allowed: the amounts in it have no rule",
            vec![any(vec![WALLET], 0, Some(100)), any(vec![CARD], 200, None)], Ok(())),
        ("no rule", vec![], Err(PlanError::NoRules)),
        ("no means", vec![any(vec![], 0, None)], Err(PlanError::EmptyMeans { rule: 1 })),
        ("a means twice",
            vec![any(vec![CARD], 0, Some(1)), any(vec![WALLET, CARD, WALLET], 1, None)],
            Err(PlanError::DuplicateMeans { rule: 2, means: WALLET })),
        ("a kind twice",
            vec![PlanRule::new(vec![CARD], band(EUR, 0, None)).for_kinds(vec![ServiceKind::Document, ServiceKind::Document])],
            Err(PlanError::DuplicateKind { rule: 1, kind: ServiceKind::Document })),
        ("below equal to from: empty",
            vec![any(vec![CARD], 500, Some(500))],
            Err(PlanError::EmptyBand { rule: 1, band: band(EUR, 500, Some(500)) })),
        ("overlap by one cent",
            vec![any(vec![WALLET], 0, Some(10_001)), any(vec![CARD], 10_000, None)],
            Err(PlanError::OverlappingRules { rule: 2, band: band(EUR, 10_000, None), earlier: 1, earlier_band: band(EUR, 0, Some(10_001)) })),
        ("descending bands",
            vec![any(vec![CARD], 10_000, None), any(vec![WALLET], 0, Some(10_000))],
            Err(PlanError::UnorderedRules { rule: 2, band: band(EUR, 0, Some(10_000)), earlier: 1, earlier_band: band(EUR, 10_000, None) })),
        ("a general rule hiding a later exception",
            vec![any(vec![CARD], 0, None), ppv(0, Some(100))],
            Err(PlanError::OverlappingRules { rule: 2, band: band(EUR, 0, Some(100)), earlier: 1, earlier_band: band(EUR, 0, None) })),
        ("the same exception twice",
            vec![ppv(0, None), ppv(100, None)],
            Err(PlanError::OverlappingRules { rule: 2, band: band(EUR, 100, None), earlier: 1, earlier_band: band(EUR, 0, None) })),
    ];
    for (case, rules, expected) in table {
        assert_eq!(PaymentPlan::new(rules).map(|_| ()), expected, "{case}");
    }
    let too_many = (0..65)
        .map(|n| any(vec![CARD], n, Some(n + 1)))
        .collect::<Vec<_>>();
    assert_eq!(
        PaymentPlan::new(too_many).map(|_| ()),
        Err(PlanError::TooManyRules { count: 65 })
    );
}

#[test]
fn users_are_checked_against_their_means_and_currencies() {
    let card_only = MeansAtDisposal {
        card_reader: Some("sim:cb".to_owned()),
        key_store_user: None,
    };
    let id = || UserId::new("carol").unwrap();
    let eur_card =
        || PaymentPlan::new(vec![PlanRule::new(vec![CARD], band(EUR, 0, None))]).unwrap();
    #[rustfmt::skip]
    let table: Vec<(&str, Result<User, PlanError>, PlanError)> = vec![
        ("no means",
            User::new(id(), eur_card(), Thresholds::new(), MeansAtDisposal::default()),
            PlanError::NoMeansAtDisposal { user: "carol".into() }),
        ("a plan naming the wallet she does not have",
            User::new(id(), alice_plan(), Thresholds::new(), card_only.clone()),
            PlanError::RuleMeansNotAtDisposal { user: "carol".into(), rule: 1, means: WALLET }),
        ("a threshold for the wallet she does not have",
            User::new(id(), eur_card(), Thresholds::new().with(WALLET, eur(1)), card_only.clone()),
            PlanError::ThresholdMeansNotAtDisposal { user: "carol".into(), threshold: 1, means: WALLET }),
        ("a threshold in a currency the plan does not use",
            User::new(id(), eur_card(), Thresholds::new().with(CARD, eur(1)).with(CARD, Money::new(1, USD)), card_only.clone()),
            PlanError::ThresholdCurrencyUnused { user: "carol".into(), threshold: 2, currency: USD, expected: "EUR".into() }),
        ("a key store identifier the key store refuses",
            User::new(id(), eur_card(), Thresholds::new(), MeansAtDisposal { card_reader: Some("sim:".into()), key_store_user: Some("carol smith".into()) }),
            PlanError::BadKeyStoreUser { user: "carol".into(), found: "carol smith".into() }),
    ];
    for (case, result, expected) in table {
        assert_eq!(result, Err(expected), "{case}");
    }
    let bad_reader = User::new(
        id(),
        eur_card(),
        Thresholds::new(),
        MeansAtDisposal {
            card_reader: Some("usb:0".into()),
            key_store_user: None,
        },
    );
    assert!(
        matches!(&bad_reader, Err(PlanError::BadReaderUri { user, found, .. }) if user == "carol" && found == "usb:0"),
        "{bad_reader:?}"
    );
    for bad in ["", "a b", "é", &"x".repeat(65)] {
        assert_eq!(
            UserId::new(bad),
            Err(PlanError::BadUserId {
                found: bad.to_owned()
            }),
            "{bad:?}"
        );
    }
    assert_eq!(UserId::new("a-Z_0.9@x").unwrap().as_str(), "a-Z_0.9@x");
}

// ---------------------------------------------------------------------------------------
// Session totals (claim 6)

fn paid(id: &str, means: Means, amount: Money) -> SessionPayment {
    SessionPayment {
        payment: PaymentId::from(id),
        means,
        amount,
        outcome: PaymentOutcome::Completed,
    }
}

#[test]
fn totals_count_completed_payments_once_per_currency() {
    let mut totals = SessionTotals::new();
    assert_eq!(totals.to_string(), "session: nothing paid");
    #[rustfmt::skip]
    let steps: Vec<(SessionPayment, Result<Counted, PlanError>, &str)> = vec![
        (paid("p1", CARD, eur(250)), Ok(Counted::Added),
            "session: 2.50 EUR (bank card 2.50 EUR)"),
        (paid("p2", WALLET, eur(290)), Ok(Counted::Added),
            "session: 5.40 EUR (bank card 2.50 EUR, virtual wallet 2.90 EUR)"),
        (paid("p1", CARD, eur(250)), Ok(Counted::AlreadyCounted),
            "session: 5.40 EUR (bank card 2.50 EUR, virtual wallet 2.90 EUR)"),
        (SessionPayment { outcome: PaymentOutcome::Declined, ..paid("p3", CARD, eur(1_000)) }, Ok(Counted::NotCounted),
            "session: 5.40 EUR (bank card 2.50 EUR, virtual wallet 2.90 EUR)"),
        (SessionPayment { outcome: PaymentOutcome::Refused, ..paid("p4", WALLET, eur(1_000)) }, Ok(Counted::NotCounted),
            "session: 5.40 EUR (bank card 2.50 EUR, virtual wallet 2.90 EUR)"),
        (paid("p1", WALLET, eur(250)),
            Err(PlanError::ConflictingPayment { payment: PaymentId::from("p1"), counted: eur(250), counted_means: CARD, reported: eur(250), reported_means: WALLET }),
            "session: 5.40 EUR (bank card 2.50 EUR, virtual wallet 2.90 EUR)"),
        (paid("p5", CARD, Money::new(300, USD)), Ok(Counted::Added),
            "session: 3.00 USD + 5.40 EUR (bank card 3.00 USD + 2.50 EUR, virtual wallet 2.90 EUR)"),
        (paid("p6", CARD, Money::new(u64::MAX, USD)), Err(PlanError::TotalOverflow { currency: USD }),
            "session: 3.00 USD + 5.40 EUR (bank card 3.00 USD + 2.50 EUR, virtual wallet 2.90 EUR)"),
        // A payment refused before may complete under the same identifier later: only
        // completion counts.
        (paid("p4", WALLET, eur(1_000)), Ok(Counted::Added),
            "session: 3.00 USD + 15.40 EUR (bank card 3.00 USD + 2.50 EUR, virtual wallet 12.90 EUR)"),
    ];
    for (step, (payment, expected, line)) in steps.into_iter().enumerate() {
        assert_eq!(totals.record(&payment), expected, "step {step}");
        assert_eq!(totals.to_string(), line, "step {step}");
    }
    assert_eq!(totals.overall_line(), "session: 3.00 USD + 15.40 EUR");
    assert_eq!(totals.payments(), 4);
    assert_eq!(totals.total(EUR), eur(1_540));
    assert_eq!(totals.total_by(WALLET, EUR), eur(1_290));
    assert_eq!(totals.total_by(WALLET, USD), Money::new(0, USD));
    assert_eq!(totals.currencies(), vec![USD, EUR]); // by numeric code: 840, 978
    assert!(totals.is_counted(&PaymentId::from("p4")));
    assert!(!totals.is_counted(&PaymentId::from("p3")));
}

// ---------------------------------------------------------------------------------------
// Several users (claim 7)

#[test]
fn each_user_keeps_their_own_plan_and_totals() {
    let mut users = Users::new(alice());
    users.add(bob()).unwrap();
    assert_eq!(
        users.add(bob()),
        Err(PlanError::DuplicateUser { user: "bob".into() })
    );
    let limits = acquirers();
    let context = PaymentContext {
        amount: eur(250),
        kind: Some(ServiceKind::Document),
        accepted: BOTH,
        chosen: None,
    };

    assert_eq!(users.active().id().as_str(), "alice");
    assert_eq!(users.choose(&context, &limits).unwrap().means, WALLET);
    assert_eq!(
        users.record(&paid("a1", WALLET, eur(250))),
        Ok(Counted::Added)
    );

    assert_eq!(users.switch_to("bob").unwrap().id().as_str(), "bob");
    let bob_choice = users.choose(&context, &limits).unwrap();
    assert_eq!(
        (bob_choice.means, bob_choice.confirmation),
        (CARD, Confirmation::Explicit)
    );
    assert_eq!(users.active_totals().to_string(), "session: nothing paid");
    assert_eq!(
        users.record(&paid("b1", CARD, eur(700))),
        Ok(Counted::Added)
    );
    // A payment alice started, acknowledged while bob is active, goes to alice.
    let alice_totals = users.totals_mut("alice").unwrap();
    assert_eq!(
        alice_totals.record(&paid("a2", CARD, eur(100))),
        Ok(Counted::Added)
    );

    assert_eq!(
        users.switch_to("carol"),
        Err(PlanError::UnknownUser {
            user: "carol".into(),
            expected: "alice, bob".into()
        })
    );
    assert_eq!(
        users.active().id().as_str(),
        "bob",
        "a failed switch changes nothing"
    );
    users.switch_to("alice").unwrap();
    assert_eq!(
        users.active_totals().to_string(),
        "session: 3.50 EUR (bank card 1.00 EUR, virtual wallet 2.50 EUR)"
    );
    assert_eq!(
        users.totals("bob").unwrap().to_string(),
        "session: 7.00 EUR (bank card 7.00 EUR)"
    );
    users.reset_active_totals();
    assert_eq!(users.active_totals().payments(), 0);
    assert_eq!(users.totals("bob").unwrap().payments(), 1);
    let order: Vec<&str> = users.iter().map(|user| user.id().as_str()).collect();
    assert_eq!(order, ["alice", "bob"]);
    assert_eq!(users.count(), 2);
}

// ---------------------------------------------------------------------------------------
// Configuration file

/// docs/payer.md, whose example this test keeps honest.
const DOC: &str = include_str!("../docs/payer.md");

/// The first ```toml block of docs/payer.md.
fn example() -> &'static str {
    let start = DOC
        .find("```toml\n")
        .expect("docs/payer.md has a toml block")
        + "```toml\n".len();
    let length = DOC[start..].find("```").expect("the block is closed");
    &DOC[start..start + length]
}

#[test]
fn the_documented_example_reads_as_alice_and_bob() {
    let mut users = config::parse(example(), "payer.toml").unwrap();
    assert_eq!(users.count(), 2);
    assert_eq!(users.active().id().as_str(), "alice");
    assert_eq!(users.active(), &alice());
    users.switch_to("bob").unwrap();
    assert_eq!(users.active(), &bob());
}

fn at(line: usize, column: usize) -> Location {
    Location {
        origin: "payer.toml".to_owned(),
        line,
        column,
    }
}

const HEAD: &str =
    "[[user]]\nid = \"alice\"\ncard_reader = \"sim:cb\"\nkey_store_user = \"alice\"\n";

#[test]
fn configuration_errors_name_the_place_the_key_and_the_problem() {
    // Each text is HEAD (lines 1-4) plus what follows, unless it starts with '!'.
    #[rustfmt::skip]
    let table: Vec<(&str, &str)> = vec![
        ("!", "payer.toml: no `[[user]]`: a payer device has at least one user"),
        ("![[user]\n", "payer.toml:1:8: not valid TOML: unclosed array table, expected `]`"),
        ("!colour = 1\n", "payer.toml:1:1: top level: unknown key `colour`: expected one of active, user"),
        ("!user = 3\n", "payer.toml:1:8: top level: key `user`: expected an array of tables, found integer"),
        ("[[user.rule]]\nmeans = \"bank-card\"\ncurrency = \"EUR\"\ncolor = \"red\"\n",
            "payer.toml:8:1: user `alice`, rule 1: unknown key `color`: expected one of means, currency, from, below, kinds"),
        ("", "payer.toml:1:1: user `alice`: missing key `rule`"),
        ("[[user.rule]]\ncurrency = \"EUR\"\n",
            "payer.toml:5:1: user `alice`, rule 1: missing key `means`"),
        ("[[user.rule]]\nmeans = \"cash\"\ncurrency = \"EUR\"\n",
            "payer.toml:6:9: user `alice`, rule 1: key `means`: unknown means \"cash\": expected bank-card or virtual-wallet"),
        ("[[user.rule]]\nmeans = [\"bank-card\", 7]\ncurrency = \"EUR\"\n",
            "payer.toml:6:23: user `alice`, rule 1: key `means`: expected a string or an array of strings, found integer"),
        ("[[user.rule]]\nmeans = []\ncurrency = \"EUR\"\n",
            "payer.toml:6:9: user `alice`, rule 1: key `means`: rule 1 names no means: expected bank-card and/or virtual-wallet"),
        ("[[user.rule]]\nmeans = \"bank-card\"\ncurrency = \"EURO\"\n",
            "payer.toml:7:12: user `alice`, rule 1: key `currency`: unknown currency \"EURO\": expected EUR, USD, GBP or JPY"),
        ("[[user.rule]]\nmeans = \"bank-card\"\ncurrency = \"EUR\"\nbelow = \"1.005\"\n",
            "payer.toml:8:9: user `alice`, rule 1: key `below`: bad amount \"1.005\": 3 decimals, but EUR has 2"),
        ("[[user.rule]]\nmeans = \"bank-card\"\ncurrency = \"EUR\"\nfrom = 5\n",
            "payer.toml:8:8: user `alice`, rule 1: key `from`: expected a string, found integer"),
        ("[[user.rule]]\nmeans = \"bank-card\"\ncurrency = \"EUR\"\nfrom = \"5.00\"\nbelow = \"5.00\"\n",
            "payer.toml:9:9: user `alice`, rule 1: key `below`: rule 1: the band from 5.00 EUR to below 5.00 EUR covers no amount: expected `below` above `from`"),
        ("[[user.rule]]\nmeans = \"bank-card\"\ncurrency = \"EUR\"\nkinds = []\n",
            "payer.toml:8:9: user `alice`, rule 1: key `kinds` is an empty list: leave `kinds` out for every kind of service"),
        ("[[user.rule]]\nmeans = \"bank-card\"\ncurrency = \"EUR\"\nkinds = [\"video\"]\n",
            "payer.toml:8:10: user `alice`, rule 1: key `kinds`: unknown kind \"video\": expected document, pay-per-view, physical-good, bill-payment or account-reload"),
        ("[[user.rule]]\nmeans = \"virtual-wallet\"\ncurrency = \"EUR\"\nbelow = \"100.00\"\n\
          [[user.rule]]\nmeans = \"bank-card\"\ncurrency = \"EUR\"\nfrom = \"99.99\"\n",
            "payer.toml:12:8: user `alice`, rule 2: key `from`: rule 2 (from 99.99 EUR) overlaps rule 1 (from 0.00 EUR to below 100.00 EUR) for the same kinds of service: the first rule that matches wins, so part of rule 2 would never apply"),
        ("[[user.rule]]\nmeans = \"bank-card\"\ncurrency = \"EUR\"\nfrom = \"100.00\"\n\
          [[user.rule]]\nmeans = \"virtual-wallet\"\ncurrency = \"EUR\"\nbelow = \"100.00\"\n",
            "payer.toml:9:1: user `alice`, rule 2: key `from`: rule 2 (from 0.00 EUR to below 100.00 EUR) comes after rule 1 (from 100.00 EUR) but is below it: write the rules of one currency and kinds in ascending order"),
        ("[[user.rule]]\nmeans = \"bank-card\"\ncurrency = \"EUR\"\n\
          [[user.threshold]]\nmeans = \"bank-card\"\ncurrency = \"USD\"\nimplicit_up_to = \"10.00\"\n",
            "payer.toml:10:12: user `alice`, threshold 1: key `currency`: user `alice`, threshold 1: no rule of the plan is in USD: expected one of EUR"),
        ("[[user.rule]]\nmeans = \"bank-card\"\ncurrency = \"EUR\"\n\
          [[user.threshold]]\nmeans = \"bank-card\"\ncurrency = \"EUR\"\nimplicit_up_to = \"10.00\"\n\
          [[user.threshold]]\nmeans = \"bank-card\"\ncurrency = \"EUR\"\nimplicit_up_to = \"20.00\"\n",
            "payer.toml:13:9: user `alice`, threshold 2: key `means`: user `alice`, threshold 2: bank-card in EUR already has threshold 1"),
        ("[[user.rule]]\nmeans = \"bank-card\"\ncurrency = \"EUR\"\n\
          [[user.threshold]]\nmeans = \"bank-card\"\ncurrency = \"EUR\"\n",
            "payer.toml:8:1: user `alice`, threshold 1: missing key `implicit_up_to`"),
        ("[[user.rule]]\nmeans = \"bank-card\"\ncurrency = \"EUR\"\n\
          [[user.threshold]]\nmeans = \"bank-card\"\ncurrency = \"EUR\"\nimplicit_up_to = \"-1\"\n",
            "payer.toml:11:18: user `alice`, threshold 1: key `implicit_up_to`: bad amount \"-1\": negative: a price is zero or more"),
        ("![[user]]\nid = \"bob\"\ncard_reader = \"sim:cb\"\n[[user.rule]]\nmeans = \"virtual-wallet\"\ncurrency = \"EUR\"\n",
            "payer.toml:5:9: user `bob`, rule 1: key `means`: user `bob`, rule 1: the user has no virtual wallet: give them a key store identifier or remove it from the rule"),
        ("![[user]]\nid = \"bob\"\n[[user.rule]]\nmeans = \"bank-card\"\ncurrency = \"EUR\"\n",
            "payer.toml:1:1: user `bob`: key `card_reader`: user `bob` has no means: expected a card reader (bank card) and/or a key store identifier (virtual wallet)"),
        ("![[user]]\nid = \"bob smith\"\ncard_reader = \"sim:\"\n[[user.rule]]\nmeans = \"bank-card\"\ncurrency = \"EUR\"\n",
            "payer.toml:2:6: user `bob smith`: key `id`: bad user identifier \"bob smith\": expected 1 to 64 of A-Z a-z 0-9 - _ . @"),
        ("![[user]]\nid = \"bob\"\nkey_store_user = \"bob/1\"\n[[user.rule]]\nmeans = \"virtual-wallet\"\ncurrency = \"EUR\"\n",
            "payer.toml:3:18: user `bob`: key `key_store_user`: user `bob`: bad key store identifier \"bob/1\": expected 1 to 64 of A-Z a-z 0-9 - _ . @"),
        ("[[user.rule]]\nmeans = \"bank-card\"\ncurrency = \"EUR\"\n\
          [[user]]\nid = \"alice\"\ncard_reader = \"sim:\"\n[[user.rule]]\nmeans = \"bank-card\"\ncurrency = \"EUR\"\n",
            "payer.toml:9:6: user `alice`: duplicate id: line 2 already has it"),
        ("!active = \"zoe\"\n[[user]]\nid = \"bob\"\ncard_reader = \"sim:\"\n[[user.rule]]\nmeans = \"bank-card\"\ncurrency = \"EUR\"\n",
            "payer.toml:1:10: top level: key `active`: no user \"zoe\": expected one of bob"),
    ];
    let mut mismatches = Vec::new();
    for (tail, expected) in table {
        let text = match tail.strip_prefix('!') {
            Some(whole) => whole.to_owned(),
            None => format!("{HEAD}{tail}"),
        };
        let found = match config::parse(&text, "payer.toml") {
            Ok(_) => "accepted".to_owned(),
            Err(error) => error.to_string(),
        };
        if found != expected {
            mismatches.push(format!(
                "for:\n{text}\nexpected: {expected}\n   found: {found}\n"
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn configuration_errors_carry_structured_fields() {
    let text = format!(
        "{HEAD}[[user.rule]]\nmeans = \"virtual-wallet\"\ncurrency = \"EUR\"\nbelow = \"100.00\"\n\
         [[user.rule]]\nmeans = \"bank-card\"\ncurrency = \"EUR\"\nfrom = \"99.99\"\n"
    );
    let error = config::parse(&text, "payer.toml").unwrap_err();
    let PayerConfigError::Invalid {
        at: location,
        place,
        key,
        problem,
    } = error
    else {
        panic!("{error:?}");
    };
    assert_eq!(location, at(12, 8));
    assert_eq!(
        *place,
        ConfigPlace::Rule {
            user: "alice".into(),
            index: 2
        }
    );
    assert_eq!(key, "from");
    assert_eq!(
        *problem,
        PlanError::OverlappingRules {
            rule: 2,
            band: band(EUR, 9_999, None),
            earlier: 1,
            earlier_band: band(EUR, 0, Some(10_000)),
        }
    );
}

#[test]
fn a_configuration_file_is_loaded_with_a_size_bound() {
    let dir = std::env::temp_dir().join(format!("telepay-payer-plan-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("payer.toml");
    std::fs::write(&good, example()).unwrap();
    assert_eq!(config::load(&good).unwrap().count(), 2);
    let big = dir.join("big.toml");
    std::fs::write(&big, "#".repeat(300 * 1024)).unwrap();
    assert!(matches!(
        config::load(&big),
        Err(PayerConfigError::TooLarge { len, .. }) if len == 256 * 1024 + 1
    ));
    assert!(matches!(
        config::load(dir.join("missing.toml")),
        Err(PayerConfigError::Io { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---------------------------------------------------------------------------------------
// Properties

fn means_strategy() -> impl Strategy<Value = Means> {
    prop_oneof![Just(CARD), Just(WALLET)]
}

fn kind_strategy() -> impl Strategy<Value = Option<ServiceKind>> {
    prop_oneof![
        Just(None),
        Just(Some(ServiceKind::Document)),
        Just(Some(ServiceKind::PayPerView)),
        Just(Some(ServiceKind::PhysicalGood)),
    ]
}

fn currency_strategy() -> impl Strategy<Value = Currency> {
    prop_oneof![Just(EUR), Just(USD), Just(Currency::JPY)]
}

proptest! {
    /// Whatever the payment, the plan's answer is a means the request accepts, the user
    /// has and whose acquirer takes the amount — the one named when overridden, one of
    /// the covering rule's otherwise — or a refusal whose reasons are true.
    #[test]
    fn a_choice_is_always_payable_or_a_true_refusal(
        minor in 0u64..200_000,
        currency in currency_strategy(),
        kind in kind_strategy(),
        accepted in proptest::sample::subsequence(vec![CARD, WALLET], 0..=2),
        chosen in proptest::option::of(means_strategy()),
        wallet_max in 1u64..20_000,
    ) {
        let user = alice();
        let limits = acquirers().with(
            WALLET,
            limits(&format!("[[limit]]\ncurrency = \"EUR\"\nmin = 1\nmax = {wallet_max}\n")),
        );
        let amount = Money::new(minor, currency);
        let context = PaymentContext { amount, kind, accepted: &accepted, chosen };
        let payable = |means: Means| {
            accepted.contains(&means)
                && user.means().has(means)
                && limits.get(means).is_some_and(|l| l.allows(&amount))
        };
        match user.choose(&context, &limits) {
            Ok(choice) => {
                prop_assert!(payable(choice.means));
                prop_assert_eq!(choice.confirmation, user.thresholds().confirmation(choice.means, &amount));
                match chosen {
                    Some(means) => prop_assert_eq!(choice.means, means),
                    None => {
                        let (number, rule) = user.plan().rule_for(&amount, kind).unwrap();
                        prop_assert!(rule.means.contains(&choice.means));
                        let ChoiceReason::Rule { rule: reason_rule, passed_over, .. } = &choice.reason else {
                            panic!("{:?}", choice.reason);
                        };
                        prop_assert_eq!(*reason_rule, number);
                        prop_assert!(passed_over.iter().all(|(means, _)| !payable(*means)));
                    }
                }
            }
            Err(Refusal::ChoiceRefused { means, .. }) => {
                prop_assert_eq!(Some(means), chosen);
                prop_assert!(!payable(means));
            }
            Err(Refusal::NoRule { .. }) => {
                prop_assert!(chosen.is_none());
                prop_assert!(user.plan().rule_for(&amount, kind).is_none());
            }
            Err(Refusal::NoSuitableMeans { rule, rejected, .. }) => {
                prop_assert!(chosen.is_none());
                let (number, covering) = user.plan().rule_for(&amount, kind).unwrap();
                prop_assert_eq!(rule, number);
                prop_assert_eq!(rejected.len(), covering.means.len());
                prop_assert!(covering.means.iter().all(|&means| !payable(means)));
            }
            Err(other) => prop_assert!(false, "unexpected refusal {other:?}"),
        }
    }

    /// The totals equal the sum of the completed payments, each identifier counted once
    /// (the first time it completes), per currency and per means.
    #[test]
    fn totals_are_the_sum_of_what_was_recorded(
        payments in proptest::collection::vec(
            (0u8..12, means_strategy(), currency_strategy(), 0u64..1_000_000, 0u8..3),
            0..60,
        ),
    ) {
        let mut totals = SessionTotals::new();
        let mut model: Vec<(String, Means, Money)> = Vec::new();
        for (id, means, currency, minor, outcome) in payments {
            let outcome = [PaymentOutcome::Completed, PaymentOutcome::Declined, PaymentOutcome::Refused][usize::from(outcome)];
            let payment = SessionPayment {
                payment: PaymentId::from(format!("p{id}")),
                means,
                amount: Money::new(minor, currency),
                outcome,
            };
            let result = totals.record(&payment);
            let known = model.iter().find(|(known, _, _)| *known == payment.payment.0.as_str()).cloned();
            match (outcome, known) {
                (PaymentOutcome::Completed, None) => {
                    prop_assert_eq!(result, Ok(Counted::Added));
                    model.push((payment.payment.0.to_string(), means, payment.amount));
                }
                (PaymentOutcome::Completed, Some((_, m, a))) if m == means && a == payment.amount => {
                    prop_assert_eq!(result, Ok(Counted::AlreadyCounted));
                }
                (PaymentOutcome::Completed, Some(_)) => {
                    let conflict = matches!(result, Err(PlanError::ConflictingPayment { .. }));
                    prop_assert!(conflict);
                }
                _ => prop_assert_eq!(result, Ok(Counted::NotCounted)),
            }
        }
        prop_assert_eq!(totals.payments(), model.len());
        for currency in [EUR, USD, Currency::JPY] {
            let sum = |filter: &dyn Fn(Means) -> bool| -> u64 {
                model.iter().filter(|(_, m, a)| a.currency == currency && filter(*m)).map(|(_, _, a)| a.minor).sum()
            };
            prop_assert_eq!(totals.total(currency).minor, sum(&|_| true));
            for means in [CARD, WALLET] {
                prop_assert_eq!(totals.total_by(means, currency).minor, sum(&|m| m == means));
            }
        }
    }

    /// No text, however broken, makes the configuration reader panic.
    #[test]
    fn configuration_text_never_panics(text in "\\PC{0,300}") {
        let _ = config::parse(&text, "fuzz.toml");
    }

    /// The documented example with one byte changed still gets an answer, not a panic.
    #[test]
    fn a_damaged_example_never_panics(position in 0usize..2_000, byte in any::<u8>()) {
        let mut bytes = example().as_bytes().to_vec();
        if let Some(slot) = bytes.get_mut(position % example().len().max(1)) {
            *slot = byte;
        }
        if let Ok(text) = String::from_utf8(bytes) {
            let _ = config::parse(&text, "fuzz.toml");
        }
    }
}
