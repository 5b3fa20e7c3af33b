//! The payer device's own features (patent FR2750275 claims 4–7 and 18), as pure rules
//! over values: no I/O, no clock.
//!
//! - **Payment plan** (claims 4, 18): each user's ordered [`PlanRule`]s say which means
//!   pays what — by amount band in one currency and, optionally, by kind of service
//!   ("virtual wallet under 100.00 EUR, bank card from 100.00 EUR"). The first rule that
//!   covers a payment gives the means in order of preference; the first of them that the
//!   payment request accepts, that the user has, and whose acquirer takes the amount
//!   ([`AcquirerLimits`]) pays. The user may name the means instead (an override),
//!   which is refused when the request or the acquirer does not allow it. The answer is
//!   a [`Choice`] or a [`Refusal`] that names the rule or the limit.
//! - **Confirmation thresholds** (claim 5): per means and currency, an amount at or
//!   below the threshold is confirmed implicitly, above it explicitly ([`Thresholds`]).
//!   Whether a script answers "yes" for the user is the caller's business.
//! - **Session totals** (claim 6): what the pseudo-session has paid, overall and per
//!   means, per currency, counted once per payment identifier and only for completed
//!   payments ([`SessionTotals`]); `Display` gives the line shown after each payment.
//! - **Several users** (claim 7): [`Users`] holds each user with plan, thresholds and
//!   means at their disposal, one active at a time, each with their own totals.
//!
//! The configuration file that describes the users is read by [`config`]; its format is
//! in `docs/payer.md`.
//!
//! # Amount bands
//!
//! A band is half-open: `from` is included, `below` is excluded, so "wallet below
//! 100.00, card from 100.00" leaves no gap and no overlap; a band without `below` has
//! no upper bound. Amounts are compared in minor units of one currency: a rule in EUR
//! never covers a USD payment.
//!
//! # Why rules may not overlap
//!
//! The first covering rule wins, so an overlap silently hides part of a later rule. The
//! plan refuses two rules of one currency whose bands overlap and whose kinds of service
//! intersect, with one exception: an earlier rule restricted to fewer kinds than a later
//! one (an exception written before the general rule). Rules of one currency for the
//! same kinds must also come in ascending order of amount, so that a plan reads as a
//! scale. Rules are numbered from 1, as the configuration file counts them.

use std::collections::BTreeMap;
use std::fmt;

use crate::acquirer::card::AmountLimits;
use crate::messages::{Currency, Means, Money, PaymentId, PaymentRequest, ServiceKind};
use crate::reader::uri::{ReaderUri, UriError};

pub mod config;

pub use config::{ConfigPlace, PayerConfigError};

/// Most rules in one user's plan: a plan is read by a person; this also bounds the
/// quadratic overlap check.
pub const MAX_RULES: usize = 64;

/// Most users on one terminal.
pub const MAX_USERS: usize = 64;

/// Most characters in a user identifier; the same rule as the key store's
/// (`crate::terminal::keystore::MAX_USER_CHARS`), so that one identifier can name
/// both.
pub const MAX_USER_ID_CHARS: usize = crate::terminal::keystore::MAX_USER_CHARS;

/// The means for people: `bank card`, `virtual wallet`.
pub fn means_name(means: Means) -> &'static str {
    match means {
        Means::BankCard => "bank card",
        Means::VirtualWallet => "virtual wallet",
    }
}

// ---------------------------------------------------------------------------------------
// Errors

/// What is wrong with a plan, a user, the registry of users, or a session's totals.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// A plan without any rule could never pay without an override.
    #[error("the plan has no rule: at least one is needed")]
    NoRules,
    /// More than [`MAX_RULES`] rules.
    #[error("the plan has {count} rules: at most {MAX_RULES}")]
    TooManyRules {
        /// How many were given.
        count: usize,
    },
    /// A rule that names no means.
    #[error("rule {rule} names no means: expected bank-card and/or virtual-wallet")]
    EmptyMeans {
        /// The rule, from 1.
        rule: usize,
    },
    /// A rule that names one means twice.
    #[error("rule {rule} names {} twice", means.name())]
    DuplicateMeans {
        /// The rule, from 1.
        rule: usize,
        /// The means repeated.
        means: Means,
    },
    /// A rule that names one kind of service twice.
    #[error("rule {rule} names the kind {} twice", kind.name())]
    DuplicateKind {
        /// The rule, from 1.
        rule: usize,
        /// The kind repeated.
        kind: ServiceKind,
    },
    /// A band whose `below` is not above its `from`: it covers no amount.
    #[error("rule {rule}: the band {band} covers no amount: expected `below` above `from`")]
    EmptyBand {
        /// The rule, from 1.
        rule: usize,
        /// The band.
        band: AmountBand,
    },
    /// Two rules of one currency, for intersecting kinds of service, whose bands
    /// overlap, the earlier one not being an exception for fewer kinds: the earlier one
    /// would hide part of the later one.
    #[error(
        "rule {rule} ({band}) overlaps rule {earlier} ({earlier_band}) for the same kinds of service: the first rule that matches wins, so part of rule {rule} would never apply"
    )]
    OverlappingRules {
        /// The later rule, from 1.
        rule: usize,
        /// Its band.
        band: AmountBand,
        /// The earlier rule, from 1.
        earlier: usize,
        /// Its band.
        earlier_band: AmountBand,
    },
    /// A rule below an earlier rule of the same currency and kinds: a plan reads as a
    /// scale of ascending amounts.
    #[error(
        "rule {rule} ({band}) comes after rule {earlier} ({earlier_band}) but is below it: write the rules of one currency and kinds in ascending order"
    )]
    UnorderedRules {
        /// The later rule, from 1.
        rule: usize,
        /// Its band.
        band: AmountBand,
        /// The earlier rule, from 1.
        earlier: usize,
        /// Its band.
        earlier_band: AmountBand,
    },
    /// A user identifier that is empty, too long or holds a character not allowed.
    #[error(
        "bad user identifier {found:?}: expected 1 to {MAX_USER_ID_CHARS} of A-Z a-z 0-9 - _ . @"
    )]
    BadUserId {
        /// What was given.
        found: String,
    },
    /// A user with neither a card reader nor a key store identifier cannot pay.
    #[error(
        "user `{user}` has no means: expected a card reader (bank card) and/or a key store identifier (virtual wallet)"
    )]
    NoMeansAtDisposal {
        /// The user.
        user: String,
    },
    /// A card reader that is not a reader URI.
    #[error("user `{user}`: card reader {found:?}: {reason}")]
    BadReaderUri {
        /// The user.
        user: String,
        /// What was given.
        found: String,
        /// Why it is not a reader URI.
        #[source]
        reason: Box<UriError>,
    },
    /// A key store identifier that the key store would refuse.
    #[error(
        "user `{user}`: bad key store identifier {found:?}: expected 1 to {MAX_USER_ID_CHARS} of A-Z a-z 0-9 - _ . @"
    )]
    BadKeyStoreUser {
        /// The user.
        user: String,
        /// What was given.
        found: String,
    },
    /// A plan rule names a means the user does not have.
    #[error(
        "user `{user}`, rule {rule}: the user has no {}: give them {} or remove it from the rule",
        means_name(*means),
        disposal_hint(*means)
    )]
    RuleMeansNotAtDisposal {
        /// The user.
        user: String,
        /// The rule, from 1.
        rule: usize,
        /// The means.
        means: Means,
    },
    /// A threshold for a means the user does not have.
    #[error("user `{user}`, threshold {threshold}: the user has no {}", means_name(*means))]
    ThresholdMeansNotAtDisposal {
        /// The user.
        user: String,
        /// The threshold, from 1.
        threshold: usize,
        /// The means.
        means: Means,
    },
    /// A threshold in a currency no rule of the plan pays in: a typo, most often.
    #[error(
        "user `{user}`, threshold {threshold}: no rule of the plan is in {}: expected one of {expected}",
        currency.alpha()
    )]
    ThresholdCurrencyUnused {
        /// The user.
        user: String,
        /// The threshold, from 1.
        threshold: usize,
        /// Its currency.
        currency: Currency,
        /// The plan's currencies, comma-separated.
        expected: String,
    },
    /// Two thresholds for the same means and currency.
    #[error(
        "user `{user}`, threshold {threshold}: {} in {} already has threshold {first}",
        means.name(),
        currency.alpha()
    )]
    DuplicateThreshold {
        /// The user.
        user: String,
        /// The later threshold, from 1.
        threshold: usize,
        /// The earlier one, from 1.
        first: usize,
        /// The means.
        means: Means,
        /// The currency.
        currency: Currency,
    },
    /// A user already in the registry.
    #[error("user `{user}` is already registered")]
    DuplicateUser {
        /// The user.
        user: String,
    },
    /// More than [`MAX_USERS`] users.
    #[error("more than {MAX_USERS} users on one terminal")]
    TooManyUsers,
    /// A user the registry does not hold.
    #[error("no user `{user}`: expected one of {expected}")]
    UnknownUser {
        /// The identifier asked for.
        user: String,
        /// The users registered, comma-separated.
        expected: String,
    },
    /// One payment identifier reported completed twice with different means or amounts:
    /// the totals keep the first and refuse the second.
    #[error(
        "payment {payment} was counted as {counted} by {}, now reported as {reported} by {}",
        means_name(*counted_means),
        means_name(*reported_means)
    )]
    ConflictingPayment {
        /// The payment.
        payment: PaymentId,
        /// What was counted.
        counted: Money,
        /// By which means.
        counted_means: Means,
        /// What is reported now.
        reported: Money,
        /// By which means.
        reported_means: Means,
    },
    /// A total would exceed what 64 bits of minor units hold; nothing was counted.
    #[error("the session total in {} would overflow", currency.alpha())]
    TotalOverflow {
        /// The currency.
        currency: Currency,
    },
}

/// How a user comes to have a means, for messages.
fn disposal_hint(means: Means) -> &'static str {
    match means {
        Means::BankCard => "a card reader",
        Means::VirtualWallet => "a key store identifier",
    }
}

// ---------------------------------------------------------------------------------------
// The payment plan

/// The amounts of one currency a rule covers: from `from` included to `below` excluded
/// (no upper bound when `below` is `None`), in minor units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AmountBand {
    /// The currency.
    pub currency: Currency,
    /// Smallest amount covered, included.
    pub from: u64,
    /// First amount no longer covered; `None` for no upper bound.
    pub below: Option<u64>,
}

impl AmountBand {
    /// Every amount in `currency` from `from` (included) to `below` (excluded).
    pub fn new(currency: Currency, from: u64, below: Option<u64>) -> AmountBand {
        AmountBand {
            currency,
            from,
            below,
        }
    }

    /// Whether `amount` is in this band: same currency, `from <= minor < below`.
    pub fn contains(&self, amount: &Money) -> bool {
        amount.currency == self.currency
            && amount.minor >= self.from
            && self.below.is_none_or(|below| amount.minor < below)
    }

    /// Whether the band covers no amount at all.
    pub fn is_empty(&self) -> bool {
        self.below.is_some_and(|below| below <= self.from)
    }

    /// Whether the two bands share an amount.
    pub fn overlaps(&self, other: &AmountBand) -> bool {
        self.currency == other.currency
            && !self.is_empty()
            && !other.is_empty()
            && self.below.is_none_or(|below| other.from < below)
            && other.below.is_none_or(|below| self.from < below)
    }

    /// Whether every amount of this band is below every amount of `other`.
    fn is_below(&self, other: &AmountBand) -> bool {
        self.below.is_some_and(|below| below <= other.from)
    }
}

impl fmt::Display for AmountBand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let from = Money::new(self.from, self.currency);
        match self.below {
            Some(below) => write!(
                f,
                "from {from} to below {}",
                Money::new(below, self.currency)
            ),
            None => write!(f, "from {from}"),
        }
    }
}

/// One line of a payment plan: the means, in order of preference, that pay an amount in
/// `band` for a service of one of `kinds`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanRule {
    /// The means to try, first preferred.
    pub means: Vec<Means>,
    /// The amounts covered.
    pub band: AmountBand,
    /// The kinds of service covered; empty for every kind, including a payment whose
    /// kind is not known.
    pub kinds: Vec<ServiceKind>,
}

impl PlanRule {
    /// A rule for every kind of service.
    pub fn new(means: Vec<Means>, band: AmountBand) -> PlanRule {
        PlanRule {
            means,
            band,
            kinds: Vec::new(),
        }
    }

    /// The same rule, for these kinds of service only.
    pub fn for_kinds(mut self, kinds: Vec<ServiceKind>) -> PlanRule {
        self.kinds = kinds;
        self
    }

    /// Whether the rule covers this amount for this kind of service (`None`: unknown).
    pub fn covers(&self, amount: &Money, kind: Option<ServiceKind>) -> bool {
        self.band.contains(amount) && kind_bits(kind) & self.kind_set() != 0
    }

    /// The kinds as a bit set: one bit per kind and one for "unknown kind", which only
    /// a rule for every kind covers.
    fn kind_set(&self) -> u8 {
        if self.kinds.is_empty() {
            return ANY_KIND;
        }
        self.kinds
            .iter()
            .fold(0, |bits, &kind| bits | kind_bits(Some(kind)))
    }
}

/// The bit set of [`PlanRule::kind_set`] that every kind and "unknown" are in.
const ANY_KIND: u8 = (1 << (ServiceKind::ALL.len() + 1)) - 1;

/// The bit of a payment whose kind of service is unknown: the one after every kind's.
const UNKNOWN_KIND: u8 = 1 << ServiceKind::ALL.len();

fn kind_bits(kind: Option<ServiceKind>) -> u8 {
    match kind {
        None => UNKNOWN_KIND,
        Some(kind) => {
            let position = ServiceKind::ALL
                .iter()
                .position(|&known| known == kind)
                .unwrap_or(0);
            1u8.checked_shl(u32::try_from(position).unwrap_or(0))
                .unwrap_or(0)
        }
    }
}

/// A user's payment plan: ordered rules, checked on construction (see the module
/// documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentPlan {
    rules: Vec<PlanRule>,
}

impl PaymentPlan {
    /// Checks and keeps the rules: at least one and at most [`MAX_RULES`]; each with at
    /// least one means, no repeated means or kind, a non-empty band; no overlap hiding
    /// part of a later rule; ascending bands for one currency and kinds.
    pub fn new(rules: Vec<PlanRule>) -> Result<PaymentPlan, PlanError> {
        if rules.is_empty() {
            return Err(PlanError::NoRules);
        }
        if rules.len() > MAX_RULES {
            return Err(PlanError::TooManyRules { count: rules.len() });
        }
        for (position, rule) in rules.iter().enumerate() {
            let number = position.saturating_add(1);
            check_rule(number, rule)?;
            for (earlier_position, earlier) in rules.iter().enumerate().take(position) {
                check_pair(earlier_position.saturating_add(1), earlier, number, rule)?;
            }
        }
        Ok(PaymentPlan { rules })
    }

    /// The rules, in order.
    pub fn rules(&self) -> &[PlanRule] {
        &self.rules
    }

    /// The first rule covering this amount and kind, with its number (from 1).
    pub fn rule_for(
        &self,
        amount: &Money,
        kind: Option<ServiceKind>,
    ) -> Option<(usize, &PlanRule)> {
        self.rules
            .iter()
            .enumerate()
            .find(|(_, rule)| rule.covers(amount, kind))
            .map(|(position, rule)| (position.saturating_add(1), rule))
    }

    /// The currencies the plan's rules pay in, in ascending numeric order.
    pub fn currencies(&self) -> Vec<Currency> {
        let mut currencies: Vec<Currency> =
            self.rules.iter().map(|rule| rule.band.currency).collect();
        currencies.sort();
        currencies.dedup();
        currencies
    }
}

fn check_rule(number: usize, rule: &PlanRule) -> Result<(), PlanError> {
    if rule.means.is_empty() {
        return Err(PlanError::EmptyMeans { rule: number });
    }
    for (position, &means) in rule.means.iter().enumerate() {
        if rule.means.iter().take(position).any(|&seen| seen == means) {
            return Err(PlanError::DuplicateMeans {
                rule: number,
                means,
            });
        }
    }
    for (position, &kind) in rule.kinds.iter().enumerate() {
        if rule.kinds.iter().take(position).any(|&seen| seen == kind) {
            return Err(PlanError::DuplicateKind { rule: number, kind });
        }
    }
    if rule.band.is_empty() {
        return Err(PlanError::EmptyBand {
            rule: number,
            band: rule.band,
        });
    }
    Ok(())
}

fn check_pair(
    earlier_number: usize,
    earlier: &PlanRule,
    number: usize,
    rule: &PlanRule,
) -> Result<(), PlanError> {
    if earlier.band.currency != rule.band.currency {
        return Ok(());
    }
    let earlier_kinds = earlier.kind_set();
    let kinds = rule.kind_set();
    if earlier_kinds & kinds == 0 {
        return Ok(());
    }
    // An exception: the earlier rule covers strictly fewer kinds than the later one.
    let exception = earlier_kinds & !kinds == 0 && earlier_kinds != kinds;
    if rule.band.overlaps(&earlier.band) && !exception {
        return Err(PlanError::OverlappingRules {
            rule: number,
            band: rule.band,
            earlier: earlier_number,
            earlier_band: earlier.band,
        });
    }
    if earlier_kinds == kinds && rule.band.is_below(&earlier.band) {
        return Err(PlanError::UnorderedRules {
            rule: number,
            band: rule.band,
            earlier: earlier_number,
            earlier_band: earlier.band,
        });
    }
    Ok(())
}

/// Each acquirer's amount limits, by the means it takes (the bank-card acquirer's
/// [`AmountLimits`], the virtual wallet's). A means without limits here has no
/// acquirer: it pays nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AcquirerLimits {
    entries: Vec<(Means, AmountLimits)>,
}

impl AcquirerLimits {
    /// No acquirer at all.
    pub fn new() -> AcquirerLimits {
        AcquirerLimits::default()
    }

    /// The same, with `limits` for `means` (replacing any earlier ones).
    pub fn with(mut self, means: Means, limits: AmountLimits) -> AcquirerLimits {
        self.insert(means, limits);
        self
    }

    /// Sets the limits for `means`, replacing any earlier ones.
    pub fn insert(&mut self, means: Means, limits: AmountLimits) {
        match self.entries.iter_mut().find(|(known, _)| *known == means) {
            Some(entry) => entry.1 = limits,
            None => self.entries.push((means, limits)),
        }
    }

    /// The limits of the acquirer for `means`.
    pub fn get(&self, means: Means) -> Option<&AmountLimits> {
        self.entries
            .iter()
            .find(|(known, _)| *known == means)
            .map(|(_, limits)| limits)
    }
}

/// Why one means cannot pay one payment.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Unsuitable {
    /// The payment request does not accept it.
    NotAccepted,
    /// The user has no such means (no card reader, no key store identifier).
    NotAtDisposal,
    /// No acquirer takes it.
    NoAcquirer,
    /// Its acquirer does not take the payment's currency.
    CurrencyNotTaken,
    /// Its acquirer takes the currency, but not this amount.
    OutsideLimits {
        /// Smallest amount accepted.
        min: Money,
        /// Largest amount accepted.
        max: Money,
    },
}

impl fmt::Display for Unsuitable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unsuitable::NotAccepted => f.write_str("the payment request does not accept it"),
            Unsuitable::NotAtDisposal => f.write_str("the user does not have it"),
            Unsuitable::NoAcquirer => f.write_str("no acquirer takes it"),
            Unsuitable::CurrencyNotTaken => f.write_str("its acquirer does not take this currency"),
            Unsuitable::OutsideLimits { min, max } => {
                write!(f, "its acquirer takes {min} to {max}")
            }
        }
    }
}

/// Each passed-over means with why, for messages.
fn list_unsuitable(entries: &[(Means, Unsuitable)]) -> String {
    entries
        .iter()
        .map(|(means, why)| format!("{}: {why}", means_name(*means)))
        .collect::<Vec<_>>()
        .join("; ")
}

/// What the payer device knows of a payment when it chooses a means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaymentContext<'a> {
    /// What to pay.
    pub amount: Money,
    /// The kind of service, from the quote's static information, when known.
    pub kind: Option<ServiceKind>,
    /// The means the payment request accepts.
    pub accepted: &'a [Means],
    /// The means the user named for this payment (an override), if any.
    pub chosen: Option<Means>,
}

impl<'a> PaymentContext<'a> {
    /// The context of a payment request D, with the service's kind when known and no
    /// override.
    pub fn of_request(
        request: &'a PaymentRequest,
        kind: Option<ServiceKind>,
    ) -> PaymentContext<'a> {
        PaymentContext {
            amount: request.amount,
            kind,
            accepted: &request.accepted_means,
            chosen: None,
        }
    }

    /// The same, with the user's explicit choice of means.
    pub fn with_means(self, means: Means) -> PaymentContext<'a> {
        PaymentContext {
            chosen: Some(means),
            ..self
        }
    }
}

/// How a payment is to be confirmed (claim 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Confirmation {
    /// At or below the threshold: the payment goes without a question.
    Implicit,
    /// Above the threshold, or no threshold set: the user is asked.
    Explicit,
}

/// Why the means was chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChoiceReason {
    /// A plan rule covered the payment; the means before the chosen one in the rule's
    /// order could not pay, for the reasons given.
    Rule {
        /// The rule, from 1.
        rule: usize,
        /// The rule's band.
        band: AmountBand,
        /// The means of the rule passed over, in order, with why.
        passed_over: Vec<(Means, Unsuitable)>,
    },
    /// The user named the means.
    UserChoice,
}

impl fmt::Display for ChoiceReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChoiceReason::Rule {
                rule,
                band,
                passed_over,
            } => {
                write!(f, "plan rule {rule} ({band})")?;
                if !passed_over.is_empty() {
                    write!(f, ", passing over {}", list_unsuitable(passed_over))?;
                }
                Ok(())
            }
            ChoiceReason::UserChoice => f.write_str("the user's choice"),
        }
    }
}

/// The means that pays, how the payment is confirmed, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// The means.
    pub means: Means,
    /// Implicit or explicit confirmation, from the user's thresholds.
    pub confirmation: Confirmation,
    /// The rule, or the user's choice.
    pub reason: ChoiceReason,
}

/// Why the payer device does not pay with any means.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// No rule of the plan covers this amount and kind.
    #[error("no rule of the plan covers {amount}{}", kind.map_or_else(String::new, |kind| format!(" for {}", kind.name())))]
    NoRule {
        /// The amount.
        amount: Money,
        /// The kind of service, when known.
        kind: Option<ServiceKind>,
    },
    /// The covering rule's means all fail.
    #[error(
        "plan rule {rule} ({band}) covers {amount}, but none of its means can pay: {}",
        list_unsuitable(rejected)
    )]
    NoSuitableMeans {
        /// The rule, from 1.
        rule: usize,
        /// Its band.
        band: AmountBand,
        /// The amount.
        amount: Money,
        /// Each of the rule's means, in order, with why it cannot pay.
        rejected: Vec<(Means, Unsuitable)>,
    },
    /// The user named a means that cannot pay.
    #[error("{} cannot pay {amount}: {why}", means_name(*means))]
    ChoiceRefused {
        /// The means named.
        means: Means,
        /// The amount.
        amount: Money,
        /// Why.
        why: Unsuitable,
    },
}

/// Whether `means` can pay in `context`, for a user who has the means `disposal` lists
/// and of which the payer device has `present` at hand.
fn suitability(
    means: Means,
    context: &PaymentContext<'_>,
    disposal: &MeansAtDisposal,
    present: &[Means],
    limits: &AcquirerLimits,
) -> Result<(), Unsuitable> {
    if !context.accepted.contains(&means) {
        return Err(Unsuitable::NotAccepted);
    }
    if !disposal.has(means) || !present.contains(&means) {
        return Err(Unsuitable::NotAtDisposal);
    }
    let limits = limits.get(means).ok_or(Unsuitable::NoAcquirer)?;
    let range = limits
        .range(context.amount.currency.numeric)
        .ok_or(Unsuitable::CurrencyNotTaken)?;
    if range.contains(context.amount.minor) {
        Ok(())
    } else {
        Err(Unsuitable::OutsideLimits {
            min: Money::new(range.min, context.amount.currency),
            max: Money::new(range.max, context.amount.currency),
        })
    }
}

// ---------------------------------------------------------------------------------------
// Confirmation thresholds

/// A user's confirmation thresholds (claim 5): per means and currency, the largest
/// amount confirmed implicitly. Without a threshold for a means and currency, every
/// payment is confirmed explicitly: asking is the safe side.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Thresholds {
    entries: Vec<(Means, Money)>,
}

impl Thresholds {
    /// No threshold: every payment is confirmed explicitly.
    pub fn new() -> Thresholds {
        Thresholds::default()
    }

    /// The same, with `implicit_up_to` for `means` in its currency.
    pub fn with(mut self, means: Means, implicit_up_to: Money) -> Thresholds {
        self.set(means, implicit_up_to);
        self
    }

    /// Sets the threshold of `means` in `implicit_up_to`'s currency; returns the one it
    /// replaces.
    pub fn set(&mut self, means: Means, implicit_up_to: Money) -> Option<Money> {
        let existing = self
            .entries
            .iter_mut()
            .find(|(known, amount)| *known == means && amount.currency == implicit_up_to.currency);
        match existing {
            Some(entry) => Some(std::mem::replace(&mut entry.1, implicit_up_to)),
            None => {
                self.entries.push((means, implicit_up_to));
                None
            }
        }
    }

    /// The largest amount `means` pays in `currency` without asking.
    pub fn implicit_up_to(&self, means: Means, currency: Currency) -> Option<Money> {
        self.entries
            .iter()
            .find(|(known, amount)| *known == means && amount.currency == currency)
            .map(|(_, amount)| *amount)
    }

    /// The thresholds, in the order they were set.
    pub fn entries(&self) -> &[(Means, Money)] {
        &self.entries
    }

    /// Implicit at or below the threshold, explicit above it or without one.
    pub fn confirmation(&self, means: Means, amount: &Money) -> Confirmation {
        match self.implicit_up_to(means, amount.currency) {
            Some(limit) if amount.minor <= limit.minor => Confirmation::Implicit,
            _ => Confirmation::Explicit,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Users

/// A user identifier: 1 to [`MAX_USER_ID_CHARS`] of `A-Z a-z 0-9 - _ . @`, the key
/// store's rule, case-sensitive.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UserId(String);

impl UserId {
    /// Checks `text`.
    pub fn new(text: &str) -> Result<UserId, PlanError> {
        if is_identifier(text) {
            Ok(UserId(text.to_owned()))
        } else {
            Err(PlanError::BadUserId {
                found: text.to_owned(),
            })
        }
    }

    /// The identifier.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// The key store's identifier rule.
fn is_identifier(text: &str) -> bool {
    !text.is_empty()
        && text.chars().count() <= MAX_USER_ID_CHARS
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
}

/// The means at a user's disposal, named as the terminal finds them: the card reader
/// holding their bank card, and the key store entry holding their wallet key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MeansAtDisposal {
    /// The reader URI of the user's bank card (`sim:cb`, `pcsc:`...).
    pub card_reader: Option<String>,
    /// The key store identifier of the user's virtual wallet key.
    pub key_store_user: Option<String>,
}

impl MeansAtDisposal {
    /// Whether the user has `means`.
    pub fn has(&self, means: Means) -> bool {
        match means {
            Means::BankCard => self.card_reader.is_some(),
            Means::VirtualWallet => self.key_store_user.is_some(),
        }
    }

    /// The means the user has, in [`Means::ALL`] order.
    pub fn means(&self) -> Vec<Means> {
        Means::ALL
            .into_iter()
            .filter(|&means| self.has(means))
            .collect()
    }
}

/// One user of the payer device (claim 7): plan, thresholds and means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    id: UserId,
    plan: PaymentPlan,
    thresholds: Thresholds,
    means: MeansAtDisposal,
}

impl User {
    /// Checks that the user has at least one means, that the card reader is a reader
    /// URI and the key store identifier one the key store takes, that every means the
    /// plan and the thresholds name is at the user's disposal, and that every threshold
    /// is in a currency the plan pays in.
    pub fn new(
        id: UserId,
        plan: PaymentPlan,
        thresholds: Thresholds,
        means: MeansAtDisposal,
    ) -> Result<User, PlanError> {
        let user = || id.0.clone();
        if means.means().is_empty() {
            return Err(PlanError::NoMeansAtDisposal { user: user() });
        }
        if let Some(reader) = &means.card_reader {
            ReaderUri::parse(reader).map_err(|reason| PlanError::BadReaderUri {
                user: user(),
                found: reader.clone(),
                reason: Box::new(reason),
            })?;
        }
        if let Some(entry) = &means.key_store_user
            && !is_identifier(entry)
        {
            return Err(PlanError::BadKeyStoreUser {
                user: user(),
                found: entry.clone(),
            });
        }
        for (position, rule) in plan.rules.iter().enumerate() {
            if let Some(&missing) = rule.means.iter().find(|&&m| !means.has(m)) {
                return Err(PlanError::RuleMeansNotAtDisposal {
                    user: user(),
                    rule: position.saturating_add(1),
                    means: missing,
                });
            }
        }
        let currencies = plan.currencies();
        for (position, &(threshold_means, amount)) in thresholds.entries.iter().enumerate() {
            let number = position.saturating_add(1);
            if !means.has(threshold_means) {
                return Err(PlanError::ThresholdMeansNotAtDisposal {
                    user: user(),
                    threshold: number,
                    means: threshold_means,
                });
            }
            if !currencies.contains(&amount.currency) {
                return Err(PlanError::ThresholdCurrencyUnused {
                    user: user(),
                    threshold: number,
                    currency: amount.currency,
                    expected: currencies
                        .iter()
                        .map(Currency::alpha)
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
        }
        Ok(User {
            id,
            plan,
            thresholds,
            means,
        })
    }

    /// The identifier.
    pub fn id(&self) -> &UserId {
        &self.id
    }

    /// The payment plan.
    pub fn plan(&self) -> &PaymentPlan {
        &self.plan
    }

    /// The confirmation thresholds.
    pub fn thresholds(&self) -> &Thresholds {
        &self.thresholds
    }

    /// The means at the user's disposal.
    pub fn means(&self) -> &MeansAtDisposal {
        &self.means
    }

    /// Chooses the means for a payment (claims 4, 18) and how it is confirmed (claim 5).
    ///
    /// With an override ([`PaymentContext::chosen`]) the plan is not consulted: the
    /// named means pays if the request accepts it, the user has it and its acquirer
    /// takes the amount, or the answer is [`Refusal::ChoiceRefused`]. Otherwise the
    /// first rule covering the amount and kind gives its means in order, and the first
    /// one that can pay is chosen.
    pub fn choose(
        &self,
        context: &PaymentContext<'_>,
        limits: &AcquirerLimits,
    ) -> Result<Choice, Refusal> {
        self.choose_among(context, limits, &Means::ALL)
    }

    /// As [`User::choose`], on a payer device that has only the means in `present` at
    /// hand (no wallet key unlocked, say): a means of the user's that is not present
    /// is passed over as [`Unsuitable::NotAtDisposal`], so that the plan's next means
    /// pays instead.
    pub fn choose_among(
        &self,
        context: &PaymentContext<'_>,
        limits: &AcquirerLimits,
        present: &[Means],
    ) -> Result<Choice, Refusal> {
        let amount = context.amount;
        let decided = |means: Means, reason: ChoiceReason| Choice {
            means,
            confirmation: self.thresholds.confirmation(means, &amount),
            reason,
        };
        if let Some(means) = context.chosen {
            return match suitability(means, context, &self.means, present, limits) {
                Ok(()) => Ok(decided(means, ChoiceReason::UserChoice)),
                Err(why) => Err(Refusal::ChoiceRefused { means, amount, why }),
            };
        }
        let (rule, covering) =
            self.plan
                .rule_for(&amount, context.kind)
                .ok_or(Refusal::NoRule {
                    amount,
                    kind: context.kind,
                })?;
        let mut passed_over = Vec::new();
        for &means in &covering.means {
            match suitability(means, context, &self.means, present, limits) {
                Ok(()) => {
                    return Ok(decided(
                        means,
                        ChoiceReason::Rule {
                            rule,
                            band: covering.band,
                            passed_over,
                        },
                    ));
                }
                Err(why) => passed_over.push((means, why)),
            }
        }
        Err(Refusal::NoSuitableMeans {
            rule,
            band: covering.band,
            amount,
            rejected: passed_over,
        })
    }
}

// ---------------------------------------------------------------------------------------
// Session totals

/// How a payment ended, as the payer device learns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PaymentOutcome {
    /// A positive acknowledgement (H) arrived: the payment is made.
    Completed,
    /// The payer device declined it (no transaction E).
    Declined,
    /// The acquirer refused it (negative H).
    Refused,
}

/// One payment reported to the session's totals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionPayment {
    /// The front-end's identifier of the payment request.
    pub payment: PaymentId,
    /// The means that paid.
    pub means: Means,
    /// The amount.
    pub amount: Money,
    /// How it ended.
    pub outcome: PaymentOutcome,
}

/// What [`SessionTotals::record`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Counted {
    /// The payment was added to the totals.
    Added,
    /// The payment was already counted: nothing changed.
    AlreadyCounted,
    /// The payment was not completed: nothing changed.
    NotCounted,
}

/// The running totals of one pseudo-session (claim 6): overall and per means, each per
/// currency — amounts in different currencies are never added.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionTotals {
    counted: BTreeMap<PaymentId, (Means, Money)>,
    overall: BTreeMap<Currency, u64>,
    by_means: PerMeans,
}

/// Totals per currency for each means; a field per means (an exhaustive match picks
/// it), so that a new means cannot be forgotten.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct PerMeans {
    bank_card: BTreeMap<Currency, u64>,
    virtual_wallet: BTreeMap<Currency, u64>,
}

impl PerMeans {
    fn get(&self, means: Means) -> &BTreeMap<Currency, u64> {
        match means {
            Means::BankCard => &self.bank_card,
            Means::VirtualWallet => &self.virtual_wallet,
        }
    }

    fn get_mut(&mut self, means: Means) -> &mut BTreeMap<Currency, u64> {
        match means {
            Means::BankCard => &mut self.bank_card,
            Means::VirtualWallet => &mut self.virtual_wallet,
        }
    }
}

impl SessionTotals {
    /// An empty session.
    pub fn new() -> SessionTotals {
        SessionTotals::default()
    }

    /// Counts a completed payment once, by its identifier. A declined or refused
    /// payment is not counted; a payment already counted is not counted again; the same
    /// identifier reported completed with another amount or means is an error and
    /// changes nothing, as is a total that would overflow.
    pub fn record(&mut self, payment: &SessionPayment) -> Result<Counted, PlanError> {
        if payment.outcome != PaymentOutcome::Completed {
            return Ok(Counted::NotCounted);
        }
        if let Some(&(counted_means, counted)) = self.counted.get(&payment.payment) {
            if counted_means == payment.means && counted == payment.amount {
                return Ok(Counted::AlreadyCounted);
            }
            return Err(PlanError::ConflictingPayment {
                payment: payment.payment.clone(),
                counted,
                counted_means,
                reported: payment.amount,
                reported_means: payment.means,
            });
        }
        let currency = payment.amount.currency;
        let overflow = PlanError::TotalOverflow { currency };
        let overall = self
            .overall
            .get(&currency)
            .copied()
            .unwrap_or(0)
            .checked_add(payment.amount.minor)
            .ok_or_else(|| overflow.clone())?;
        let slot = self.by_means.get_mut(payment.means);
        // The per-means total is at most the overall one, so it cannot overflow when
        // the overall one does not; checked all the same.
        let by_means = slot
            .get(&currency)
            .copied()
            .unwrap_or(0)
            .checked_add(payment.amount.minor)
            .ok_or(overflow)?;
        slot.insert(currency, by_means);
        self.overall.insert(currency, overall);
        self.counted
            .insert(payment.payment.clone(), (payment.means, payment.amount));
        Ok(Counted::Added)
    }

    /// How many payments were counted.
    pub fn payments(&self) -> usize {
        self.counted.len()
    }

    /// Whether a payment was counted.
    pub fn is_counted(&self, payment: &PaymentId) -> bool {
        self.counted.contains_key(payment)
    }

    /// The currencies paid in, ascending by numeric code.
    pub fn currencies(&self) -> Vec<Currency> {
        self.overall.keys().copied().collect()
    }

    /// Everything paid in `currency`.
    pub fn total(&self, currency: Currency) -> Money {
        Money::new(self.overall.get(&currency).copied().unwrap_or(0), currency)
    }

    /// What `means` paid in `currency`.
    pub fn total_by(&self, means: Means, currency: Currency) -> Money {
        let minor = self
            .by_means
            .get(means)
            .get(&currency)
            .copied()
            .unwrap_or(0);
        Money::new(minor, currency)
    }

    /// The overall line alone: `session: 5.40 EUR` (claim 6, "globally").
    pub fn overall_line(&self) -> String {
        if self.overall.is_empty() {
            return "session: nothing paid".to_owned();
        }
        format!("session: {}", join_amounts(&self.overall))
    }

    /// The overall line with the detail per means, as `Display` writes it:
    /// `session: 5.40 EUR (bank card 2.50 EUR, virtual wallet 2.90 EUR)` (claim 6,
    /// "in detail for each means"). Means that paid nothing are left out.
    pub fn detailed_line(&self) -> String {
        if self.overall.is_empty() {
            return self.overall_line();
        }
        let detail: Vec<String> = Means::ALL
            .into_iter()
            .map(|means| (means, self.by_means.get(means)))
            .filter(|(_, totals)| !totals.is_empty())
            .map(|(means, totals)| format!("{} {}", means_name(means), join_amounts(totals)))
            .collect();
        format!("{} ({})", self.overall_line(), detail.join(", "))
    }
}

/// `3.00 USD + 5.40 EUR`: ascending ISO 4217 numeric code.
fn join_amounts(totals: &BTreeMap<Currency, u64>) -> String {
    totals
        .iter()
        .map(|(&currency, &minor)| Money::new(minor, currency).to_string())
        .collect::<Vec<_>>()
        .join(" + ")
}

impl fmt::Display for SessionTotals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detailed_line())
    }
}

/// One registered user and their totals; `order` is the registration rank.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    order: usize,
    user: User,
    totals: SessionTotals,
}

/// The users of one payer device (claim 7), one of them active, each with their own
/// session totals. The active user is held apart from the others, so that there is
/// always one (the registry is never empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Users {
    active: Entry,
    others: Vec<Entry>,
}

impl Users {
    /// A registry with one user, active.
    pub fn new(first: User) -> Users {
        Users {
            active: Entry {
                order: 0,
                user: first,
                totals: SessionTotals::new(),
            },
            others: Vec::new(),
        }
    }

    /// Adds a user (not made active).
    pub fn add(&mut self, user: User) -> Result<(), PlanError> {
        if self.get(user.id.as_str()).is_some() {
            return Err(PlanError::DuplicateUser { user: user.id.0 });
        }
        let count = self.count();
        if count >= MAX_USERS {
            return Err(PlanError::TooManyUsers);
        }
        self.others.push(Entry {
            order: count,
            user,
            totals: SessionTotals::new(),
        });
        Ok(())
    }

    /// Makes `id` the active user; every user's totals are kept as they are.
    pub fn switch_to(&mut self, id: &str) -> Result<&User, PlanError> {
        if self.active.user.id.as_str() != id {
            let position = self
                .others
                .iter()
                .position(|entry| entry.user.id.as_str() == id)
                .ok_or_else(|| PlanError::UnknownUser {
                    user: id.to_owned(),
                    expected: self
                        .iter()
                        .map(|user| user.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                })?;
            let incoming = self.others.swap_remove(position);
            let outgoing = std::mem::replace(&mut self.active, incoming);
            self.others.push(outgoing);
        }
        Ok(&self.active.user)
    }

    /// The active user.
    pub fn active(&self) -> &User {
        &self.active.user
    }

    /// The active user's session totals.
    pub fn active_totals(&self) -> &SessionTotals {
        &self.active.totals
    }

    /// The active user's session totals, to record a payment.
    pub fn active_totals_mut(&mut self) -> &mut SessionTotals {
        &mut self.active.totals
    }

    fn entry(&self, id: &str) -> Option<&Entry> {
        std::iter::once(&self.active)
            .chain(&self.others)
            .find(|entry| entry.user.id.as_str() == id)
    }

    /// A user, by identifier.
    pub fn get(&self, id: &str) -> Option<&User> {
        self.entry(id).map(|entry| &entry.user)
    }

    /// A user's session totals.
    pub fn totals(&self, id: &str) -> Option<&SessionTotals> {
        self.entry(id).map(|entry| &entry.totals)
    }

    /// A user's session totals, to record a payment started while they were active.
    pub fn totals_mut(&mut self, id: &str) -> Option<&mut SessionTotals> {
        std::iter::once(&mut self.active)
            .chain(&mut self.others)
            .find(|entry| entry.user.id.as_str() == id)
            .map(|entry| &mut entry.totals)
    }

    /// Records a payment in the active user's totals ([`SessionTotals::record`]).
    pub fn record(&mut self, payment: &SessionPayment) -> Result<Counted, PlanError> {
        self.active.totals.record(payment)
    }

    /// Starts a new pseudo-session for the active user: their totals go back to zero.
    pub fn reset_active_totals(&mut self) {
        self.active.totals = SessionTotals::new();
    }

    /// Chooses the means for the active user ([`User::choose`]).
    pub fn choose(
        &self,
        context: &PaymentContext<'_>,
        limits: &AcquirerLimits,
    ) -> Result<Choice, Refusal> {
        self.active.user.choose(context, limits)
    }

    /// Chooses the means for the active user among those the payer device has at
    /// hand ([`User::choose_among`]).
    pub fn choose_among(
        &self,
        context: &PaymentContext<'_>,
        limits: &AcquirerLimits,
        present: &[Means],
    ) -> Result<Choice, Refusal> {
        self.active.user.choose_among(context, limits, present)
    }

    /// The users, in registration order.
    pub fn iter(&self) -> impl Iterator<Item = &User> {
        let mut entries: Vec<&Entry> = std::iter::once(&self.active).chain(&self.others).collect();
        entries.sort_by_key(|entry| entry.order);
        entries.into_iter().map(|entry| &entry.user)
    }

    /// How many users (always at least one).
    pub fn count(&self) -> usize {
        self.others.len().saturating_add(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EUR: Currency = Currency::EUR;

    #[test]
    fn bands_include_from_and_exclude_below() {
        let band = AmountBand::new(EUR, 100, Some(200));
        #[rustfmt::skip]
        let table = [
            (Money::new(99, EUR), false),
            (Money::new(100, EUR), true),
            (Money::new(199, EUR), true),
            (Money::new(200, EUR), false),
            (Money::new(150, Currency::USD), false),
        ];
        for (amount, expected) in table {
            assert_eq!(band.contains(&amount), expected, "{amount}");
        }
        let open = AmountBand::new(EUR, 0, None);
        assert!(open.contains(&Money::new(u64::MAX, EUR)));
        assert_eq!(band.to_string(), "from 1.00 EUR to below 2.00 EUR");
        assert_eq!(open.to_string(), "from 0.00 EUR");
    }

    #[test]
    fn overlap_is_symmetric_and_ignores_touching_and_empty_bands() {
        let band = |from, below| AmountBand::new(EUR, from, below);
        #[rustfmt::skip]
        let table = [
            (band(0, Some(100)), band(100, None), false), // touching
            (band(0, Some(101)), band(100, None), true),
            (band(0, None), band(u64::MAX, None), true),
            (band(5, Some(5)), band(0, None), false), // empty
            (band(0, Some(10)), AmountBand::new(Currency::USD, 0, Some(10)), false),
        ];
        for (one, other, expected) in table {
            assert_eq!(one.overlaps(&other), expected, "{one} / {other}");
            assert_eq!(other.overlaps(&one), expected, "{other} / {one}");
        }
    }

    #[test]
    fn kinds_are_distinct_bits_and_unknown_only_matches_every_kind() {
        let bits: Vec<u8> = ServiceKind::ALL
            .iter()
            .map(|&kind| kind_bits(Some(kind)))
            .collect();
        assert_eq!(bits, [1, 2, 4, 8, 16, 32]);
        assert_eq!(kind_bits(None), 64);
        let rule = PlanRule::new(vec![Means::BankCard], AmountBand::new(EUR, 0, None));
        assert_eq!(rule.kind_set(), ANY_KIND);
        let only = rule.clone().for_kinds(vec![ServiceKind::Document]);
        assert!(only.covers(&Money::new(1, EUR), Some(ServiceKind::Document)));
        assert!(!only.covers(&Money::new(1, EUR), None));
        assert!(rule.covers(&Money::new(1, EUR), None));
    }

    #[test]
    fn names_round_trip() {
        for means in Means::ALL {
            assert_eq!(Means::from_name(means.name()), Some(means));
        }
        for kind in ServiceKind::ALL {
            assert_eq!(ServiceKind::from_name(kind.name()), Some(kind));
        }
        assert_eq!(Means::from_name("cash"), None);
    }
}
