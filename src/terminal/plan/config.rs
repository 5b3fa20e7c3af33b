//! The payer device's configuration file: its users, with their means, payment plans and
//! confirmation thresholds, in TOML. `docs/payer.md` specifies the format.
//!
//! As for the service catalogue (`crate::provider::catalogue`), the file is decoded from
//! `toml`'s spanned document tree rather than through a serde derive, so that every
//! error names the file, line and column, the user, the rule or threshold (from 1) and
//! the key, with what was expected and what was found ([`PayerConfigError`]). The rules
//! themselves are checked once, by the constructors of [`PaymentPlan`] and [`User`];
//! this module only places their [`PlanError`]s in the file.
//!
//! [`parse`] is pure; [`load`] reads a file of at most [`MAX_CONFIG_BYTES`] bytes.

use std::fmt;
use std::io::{self, Read};
use std::path::Path;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::messages::{Currency, Means, Money, ServiceKind};
use crate::provider::catalogue::{Location, PriceError, Source, first_unknown_key, parse_price};

use super::{
    AmountBand, MAX_RULES, MAX_USERS, MeansAtDisposal, PaymentPlan, PlanError, PlanRule,
    Thresholds, User, UserId, Users,
};

/// The largest configuration file [`load`] reads, in bytes: a terminal's few users fit
/// in a few kilobytes.
pub const MAX_CONFIG_BYTES: u64 = 256 * 1024;

/// Most thresholds per user: one per means and currency is all that can mean something.
pub const MAX_THRESHOLDS: usize = 16;

const TOP_KEYS: &[&str] = &["active", "user"];
const USER_KEYS: &[&str] = &["id", "card_reader", "key_store_user", "rule", "threshold"];
const RULE_KEYS: &[&str] = &["means", "currency", "from", "below", "kinds"];
const THRESHOLD_KEYS: &[&str] = &["means", "currency", "implicit_up_to"];
const MEANS_EXPECTED: &str = "bank-card or virtual-wallet";
const CURRENCY_EXPECTED: &str = "EUR, USD, GBP or JPY";
const KINDS_EXPECTED: &str =
    "document, pay-per-view, physical-good, bill-payment or account-reload";

/// Where in the file's structure a key was expected or found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigPlace {
    /// The top-level table (`active`, `user`).
    TopLevel,
    /// A `[[user]]` table.
    User {
        /// Its position in the file, from 1.
        index: usize,
        /// Its `id`, when it has a string one.
        id: Option<String>,
    },
    /// A `[[user.rule]]` table.
    Rule {
        /// The user's `id`.
        user: String,
        /// The rule's position in its user, from 1.
        index: usize,
    },
    /// A `[[user.threshold]]` table.
    Threshold {
        /// The user's `id`.
        user: String,
        /// The threshold's position in its user, from 1.
        index: usize,
    },
}

impl fmt::Display for ConfigPlace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigPlace::TopLevel => f.write_str("top level"),
            ConfigPlace::User { id: Some(id), .. } => write!(f, "user `{id}`"),
            ConfigPlace::User { index, id: None } => write!(f, "user #{index}"),
            ConfigPlace::Rule { user, index } => write!(f, "user `{user}`, rule {index}"),
            ConfigPlace::Threshold { user, index } => {
                write!(f, "user `{user}`, threshold {index}")
            }
        }
    }
}

/// Why a payer configuration could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PayerConfigError {
    /// The file could not be read (or is not UTF-8).
    #[error("{origin}: cannot read the payer configuration: {source}")]
    Io {
        /// The file name.
        origin: String,
        /// What the system said.
        #[source]
        source: io::Error,
    },
    /// The file is larger than [`MAX_CONFIG_BYTES`].
    #[error("{origin}: {len} bytes or more: a payer configuration has at most {MAX_CONFIG_BYTES}")]
    TooLarge {
        /// The file name.
        origin: String,
        /// Its length, or a lower bound.
        len: u64,
    },
    /// The text is not TOML.
    #[error("{at}: not valid TOML: {message}")]
    Syntax {
        /// Where the parser stopped.
        at: Location,
        /// The parser's message.
        message: String,
    },
    /// A key the format does not have (a typo, often).
    #[error("{at}: {place}: unknown key `{key}`: expected one of {expected}")]
    UnknownKey {
        /// Where the key is.
        at: Location,
        /// The table it is in.
        place: Box<ConfigPlace>,
        /// The key.
        key: String,
        /// The keys allowed there, comma-separated.
        expected: String,
    },
    /// A required key is absent.
    #[error("{at}: {place}: missing key `{key}`")]
    MissingKey {
        /// The table.
        at: Location,
        /// The table.
        place: Box<ConfigPlace>,
        /// The key.
        key: &'static str,
    },
    /// A value of the wrong TOML type.
    #[error("{at}: {place}: key `{key}`: expected {expected}, found {found}")]
    WrongType {
        /// Where the value is.
        at: Location,
        /// The table.
        place: Box<ConfigPlace>,
        /// The key.
        key: &'static str,
        /// What the format wants.
        expected: &'static str,
        /// The TOML type found.
        found: &'static str,
    },
    /// No `[[user]]`.
    #[error("{origin}: no `[[user]]`: a payer device has at least one user")]
    NoUsers {
        /// The file name.
        origin: String,
    },
    /// More users, rules or thresholds than allowed.
    #[error("{at}: {place}: {count} entries in `{key}`: at most {max}")]
    TooMany {
        /// Where the array is.
        at: Location,
        /// The table it is in.
        place: Box<ConfigPlace>,
        /// `user`, `rule` or `threshold`.
        key: &'static str,
        /// How many were given.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A means, currency or kind of service that is not one of those the format names.
    #[error(
        "{at}: {place}: key `{key}`: unknown {} {found:?}: expected {}",
        name_kind(key).0,
        name_kind(key).1
    )]
    UnknownName {
        /// Where the value is.
        at: Location,
        /// The table.
        place: Box<ConfigPlace>,
        /// `means`, `currency` or `kinds`.
        key: &'static str,
        /// What was given.
        found: String,
    },
    /// An empty list where leaving the key out says what is meant.
    #[error("{at}: {place}: key `{key}` is an empty list: {hint}")]
    EmptyList {
        /// Where the value is.
        at: Location,
        /// The table.
        place: Box<ConfigPlace>,
        /// The key.
        key: &'static str,
        /// What to write instead.
        hint: &'static str,
    },
    /// An amount that is not a decimal in the currency.
    #[error("{at}: {place}: key `{key}`: bad amount {found:?}: {reason}")]
    BadAmount {
        /// Where the value is.
        at: Location,
        /// The table.
        place: Box<ConfigPlace>,
        /// The key.
        key: &'static str,
        /// What was given.
        found: String,
        /// What is wrong with it.
        #[source]
        reason: PriceError,
    },
    /// Two users with the same `id`.
    #[error("{at}: user `{user}`: duplicate id: line {first_line} already has it")]
    DuplicateUser {
        /// Where the second one is.
        at: Location,
        /// The identifier.
        user: String,
        /// The line of the first one.
        first_line: usize,
    },
    /// `active` names no user of the file.
    #[error("{at}: top level: key `active`: no user {found:?}: expected one of {expected}")]
    UnknownActive {
        /// Where the value is.
        at: Location,
        /// What was given.
        found: String,
        /// The users' ids, comma-separated.
        expected: String,
    },
    /// The values have the right shapes but break a rule of plans or users (overlapping
    /// or unordered bands, a means the user does not have, a threshold in a currency the
    /// plan does not use...).
    #[error("{at}: {place}: key `{key}`: {problem}")]
    Invalid {
        /// Where the key (or the table, when the key is absent) is.
        at: Location,
        /// The table.
        place: Box<ConfigPlace>,
        /// The key concerned.
        key: &'static str,
        /// The rule broken.
        #[source]
        problem: Box<PlanError>,
    },
}

/// What a key of [`PayerConfigError::UnknownName`] names, and the names allowed.
fn name_kind(key: &str) -> (&'static str, &'static str) {
    match key {
        "currency" => ("currency", CURRENCY_EXPECTED),
        "kinds" => ("kind", KINDS_EXPECTED),
        _ => ("means", MEANS_EXPECTED),
    }
}

/// Reads a payer configuration file (at most [`MAX_CONFIG_BYTES`]).
pub fn load(path: impl AsRef<Path>) -> Result<Users, PayerConfigError> {
    let path = path.as_ref();
    let origin = path.display().to_string();
    let io_error = |source| PayerConfigError::Io {
        origin: origin.clone(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io_error)?;
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io_error)?;
    let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    if len > MAX_CONFIG_BYTES {
        return Err(PayerConfigError::TooLarge {
            origin: origin.clone(),
            len,
        });
    }
    let text = String::from_utf8(bytes)
        .map_err(|error| io_error(io::Error::new(io::ErrorKind::InvalidData, error)))?;
    parse(&text, &origin)
}

/// Reads a payer configuration text; `origin` names it in errors. The active user is
/// the one `active` names, or else the first.
pub fn parse(text: &str, origin: &str) -> Result<Users, PayerConfigError> {
    let source = Source { text, origin };
    let root = DeTable::parse(text).map_err(|error| PayerConfigError::Syntax {
        at: source.at(error.span().map_or(0, |span| span.start)),
        message: error.message().to_owned(),
    })?;
    let root = root.get_ref();
    let top = ConfigPlace::TopLevel;
    check_keys(&source, root, &top, TOP_KEYS)?;
    let no_users = || PayerConfigError::NoUsers {
        origin: origin.to_owned(),
    };
    let users_value = root.get("user").ok_or_else(no_users)?;
    let elements = tables(&source, &top, "user", users_value, MAX_USERS)?;
    let mut registry: Option<Users> = None;
    let mut first_offsets: Vec<(String, usize)> = Vec::new();
    for (position, (element, table)) in elements.into_iter().enumerate() {
        let user = parse_user(&source, position.saturating_add(1), element, table)?;
        let id = user.id().as_str().to_owned();
        let id_at = table
            .get("id")
            .map_or_else(|| element.span().start, |value| value.span().start);
        if let Some((_, first)) = first_offsets.iter().find(|(known, _)| *known == id) {
            return Err(PayerConfigError::DuplicateUser {
                at: source.at(id_at),
                user: id,
                first_line: source.at(*first).line,
            });
        }
        first_offsets.push((id.clone(), id_at));
        match registry.as_mut() {
            None => registry = Some(Users::new(user)),
            Some(users) => users
                .add(user)
                .map_err(|problem| PayerConfigError::Invalid {
                    at: source.at(id_at),
                    place: Box::new(ConfigPlace::User {
                        index: position.saturating_add(1),
                        id: Some(id.clone()),
                    }),
                    key: "id",
                    problem: Box::new(problem),
                })?,
        }
    }
    let mut users = registry.ok_or_else(no_users)?;
    if let Some(value) = root.get("active") {
        let found = string(&source, &top, "active", value)?;
        if users.switch_to(found).is_err() {
            return Err(PayerConfigError::UnknownActive {
                at: source.at_span(value),
                found: found.to_owned(),
                expected: first_offsets
                    .iter()
                    .map(|(id, _)| id.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    }
    Ok(users)
}

type Value<'i> = Spanned<DeValue<'i>>;

/// Refuses the first key (in file order) that `allowed` does not list.
fn check_keys(
    source: &Source<'_>,
    table: &DeTable<'_>,
    place: &ConfigPlace,
    allowed: &[&str],
) -> Result<(), PayerConfigError> {
    match first_unknown_key(table, allowed) {
        None => Ok(()),
        Some((key, offset)) => Err(PayerConfigError::UnknownKey {
            at: source.at(offset),
            place: Box::new(place.clone()),
            key,
            expected: allowed.join(", "),
        }),
    }
}

fn wrong_type(
    source: &Source<'_>,
    place: &ConfigPlace,
    key: &'static str,
    value: &Value<'_>,
    expected: &'static str,
) -> PayerConfigError {
    PayerConfigError::WrongType {
        at: source.at_span(value),
        place: Box::new(place.clone()),
        key,
        expected,
        found: value.get_ref().type_str(),
    }
}

fn string<'v>(
    source: &Source<'_>,
    place: &ConfigPlace,
    key: &'static str,
    value: &'v Value<'_>,
) -> Result<&'v str, PayerConfigError> {
    value
        .get_ref()
        .as_str()
        .ok_or_else(|| wrong_type(source, place, key, value, "a string"))
}

/// An array of tables (`[[key]]`) of at most `max` elements, each with its table.
fn tables<'v, 'i>(
    source: &Source<'_>,
    place: &ConfigPlace,
    key: &'static str,
    value: &'v Value<'i>,
    max: usize,
) -> Result<Vec<(&'v Value<'i>, &'v DeTable<'i>)>, PayerConfigError> {
    const EXPECTED: &str = "an array of tables";
    let DeValue::Array(elements) = value.get_ref() else {
        return Err(wrong_type(source, place, key, value, EXPECTED));
    };
    if elements.len() > max {
        return Err(PayerConfigError::TooMany {
            at: source.at_span(value),
            place: Box::new(place.clone()),
            key,
            count: elements.len(),
            max,
        });
    }
    elements
        .iter()
        .map(|element| match element.get_ref() {
            DeValue::Table(table) => Ok((element, table)),
            _ => Err(wrong_type(source, place, key, element, EXPECTED)),
        })
        .collect()
}

/// A string, or an array of strings, as a list with each string's value.
fn string_list<'v>(
    source: &Source<'_>,
    place: &ConfigPlace,
    key: &'static str,
    value: &'v Value<'_>,
) -> Result<Vec<(&'v str, &'v Value<'v>)>, PayerConfigError> {
    const EXPECTED: &str = "a string or an array of strings";
    match value.get_ref() {
        DeValue::String(text) => Ok(vec![(text.as_ref(), value)]),
        DeValue::Array(elements) => elements
            .iter()
            .map(|element| match element.get_ref() {
                DeValue::String(text) => Ok((text.as_ref(), element)),
                _ => Err(wrong_type(source, place, key, element, EXPECTED)),
            })
            .collect(),
        _ => Err(wrong_type(source, place, key, value, EXPECTED)),
    }
}

fn required<'v, 'i>(
    source: &Source<'_>,
    place: &ConfigPlace,
    table: &'v DeTable<'i>,
    element: &Value<'_>,
    key: &'static str,
) -> Result<&'v Value<'i>, PayerConfigError> {
    table.get(key).ok_or_else(|| PayerConfigError::MissingKey {
        at: source.at_span(element),
        place: Box::new(place.clone()),
        key,
    })
}

fn means_value(
    source: &Source<'_>,
    place: &ConfigPlace,
    text: &str,
    value: &Value<'_>,
) -> Result<Means, PayerConfigError> {
    Means::from_name(text).ok_or_else(|| PayerConfigError::UnknownName {
        at: source.at_span(value),
        place: Box::new(place.clone()),
        key: "means",
        found: text.to_owned(),
    })
}

fn currency_value(
    source: &Source<'_>,
    place: &ConfigPlace,
    value: &Value<'_>,
) -> Result<Currency, PayerConfigError> {
    let text = string(source, place, "currency", value)?;
    Currency::from_alpha(text).ok_or_else(|| PayerConfigError::UnknownName {
        at: source.at_span(value),
        place: Box::new(place.clone()),
        key: "currency",
        found: text.to_owned(),
    })
}

fn amount_value(
    source: &Source<'_>,
    place: &ConfigPlace,
    key: &'static str,
    value: &Value<'_>,
    currency: Currency,
) -> Result<Money, PayerConfigError> {
    let text = string(source, place, key, value)?;
    parse_price(text, currency).map_err(|reason| PayerConfigError::BadAmount {
        at: source.at_span(value),
        place: Box::new(place.clone()),
        key,
        found: text.to_owned(),
        reason,
    })
}

/// Byte offsets of a rule's or threshold's keys, to place a [`PlanError`].
struct Offsets {
    element: usize,
    keys: Vec<(&'static str, usize)>,
}

impl Offsets {
    fn of(element: &Value<'_>, table: &DeTable<'_>, keys: &[&'static str]) -> Offsets {
        Offsets {
            element: element.span().start,
            keys: keys
                .iter()
                .filter_map(|&key| table.get(key).map(|value| (key, value.span().start)))
                .collect(),
        }
    }

    /// The offset of `key`, or of the table when the key is absent.
    fn key(&self, key: &str) -> usize {
        self.keys
            .iter()
            .find(|(known, _)| *known == key)
            .map_or(self.element, |(_, offset)| *offset)
    }
}

fn parse_rule(
    source: &Source<'_>,
    place: &ConfigPlace,
    element: &Value<'_>,
    table: &DeTable<'_>,
) -> Result<PlanRule, PayerConfigError> {
    check_keys(source, table, place, RULE_KEYS)?;
    let means_raw = required(source, place, table, element, "means")?;
    let means = string_list(source, place, "means", means_raw)?
        .into_iter()
        .map(|(text, value)| means_value(source, place, text, value))
        .collect::<Result<Vec<_>, _>>()?;
    let currency = currency_value(
        source,
        place,
        required(source, place, table, element, "currency")?,
    )?;
    let from = match table.get("from") {
        Some(value) => amount_value(source, place, "from", value, currency)?.minor,
        None => 0,
    };
    let below = match table.get("below") {
        Some(value) => Some(amount_value(source, place, "below", value, currency)?.minor),
        None => None,
    };
    let mut kinds = Vec::new();
    if let Some(value) = table.get("kinds") {
        let DeValue::Array(elements) = value.get_ref() else {
            return Err(wrong_type(
                source,
                place,
                "kinds",
                value,
                "an array of strings",
            ));
        };
        if elements.is_empty() {
            return Err(PayerConfigError::EmptyList {
                at: source.at_span(value),
                place: Box::new(place.clone()),
                key: "kinds",
                hint: "leave `kinds` out for every kind of service",
            });
        }
        for element in elements.iter() {
            let text = string(source, place, "kinds", element)?;
            let kind: ServiceKind =
                ServiceKind::from_name(text).ok_or_else(|| PayerConfigError::UnknownName {
                    at: source.at_span(element),
                    place: Box::new(place.clone()),
                    key: "kinds",
                    found: text.to_owned(),
                })?;
            kinds.push(kind);
        }
    }
    Ok(PlanRule::new(means, AmountBand::new(currency, from, below)).for_kinds(kinds))
}

/// Reads one `[[user]]` table; `index` counts users from 1.
fn parse_user(
    source: &Source<'_>,
    index: usize,
    element: &Value<'_>,
    table: &DeTable<'_>,
) -> Result<User, PayerConfigError> {
    let id_text = table.get("id").and_then(|value| value.get_ref().as_str());
    let user_place = ConfigPlace::User {
        index,
        id: id_text.map(str::to_owned),
    };
    check_keys(source, table, &user_place, USER_KEYS)?;
    let id_value = required(source, &user_place, table, element, "id")?;
    let id_text = string(source, &user_place, "id", id_value)?;
    let invalid = |at: usize, place: ConfigPlace, key: &'static str, problem: PlanError| {
        PayerConfigError::Invalid {
            at: source.at(at),
            place: Box::new(place),
            key,
            problem: Box::new(problem),
        }
    };
    let id = UserId::new(id_text)
        .map_err(|problem| invalid(id_value.span().start, user_place.clone(), "id", problem))?;
    let user = id_text.to_owned();

    let optional_string = |key: &'static str| -> Result<Option<String>, PayerConfigError> {
        table
            .get(key)
            .map(|value| string(source, &user_place, key, value).map(str::to_owned))
            .transpose()
    };
    let means = MeansAtDisposal {
        card_reader: optional_string("card_reader")?,
        key_store_user: optional_string("key_store_user")?,
    };

    let rules_value = required(source, &user_place, table, element, "rule")?;
    let rule_tables = tables(source, &user_place, "rule", rules_value, MAX_RULES)?;
    let rule_place = |index: usize| ConfigPlace::Rule {
        user: user.clone(),
        index,
    };
    let mut rules = Vec::with_capacity(rule_tables.len());
    let mut rule_offsets = Vec::with_capacity(rule_tables.len());
    for (position, (rule_element, rule_table)) in rule_tables.into_iter().enumerate() {
        let place = rule_place(position.saturating_add(1));
        rules.push(parse_rule(source, &place, rule_element, rule_table)?);
        rule_offsets.push(Offsets::of(rule_element, rule_table, RULE_KEYS));
    }
    let rule_at = |rule: usize, key: &'static str| {
        rule_offsets
            .get(rule.saturating_sub(1))
            .map_or(rules_value.span().start, |offsets| offsets.key(key))
    };
    let plan = PaymentPlan::new(rules).map_err(|problem| {
        let (rule, key) = match &problem {
            PlanError::EmptyMeans { rule } | PlanError::DuplicateMeans { rule, .. } => {
                (*rule, "means")
            }
            PlanError::DuplicateKind { rule, .. } => (*rule, "kinds"),
            PlanError::EmptyBand { rule, .. } => (*rule, "below"),
            PlanError::OverlappingRules { rule, .. } | PlanError::UnorderedRules { rule, .. } => {
                (*rule, "from")
            }
            _ => (0, "rule"),
        };
        if rule == 0 {
            invalid(rules_value.span().start, user_place.clone(), key, problem)
        } else {
            invalid(rule_at(rule, key), rule_place(rule), key, problem)
        }
    })?;

    let mut thresholds = Thresholds::new();
    let mut threshold_offsets = Vec::new();
    let threshold_place = |index: usize| ConfigPlace::Threshold {
        user: user.clone(),
        index,
    };
    if let Some(value) = table.get("threshold") {
        let elements = tables(source, &user_place, "threshold", value, MAX_THRESHOLDS)?;
        let mut seen: Vec<(Means, Currency)> = Vec::new();
        for (position, (threshold_element, threshold_table)) in elements.into_iter().enumerate() {
            let number = position.saturating_add(1);
            let place = threshold_place(number);
            check_keys(source, threshold_table, &place, THRESHOLD_KEYS)?;
            let means_raw = required(source, &place, threshold_table, threshold_element, "means")?;
            let means = means_value(
                source,
                &place,
                string(source, &place, "means", means_raw)?,
                means_raw,
            )?;
            let currency = currency_value(
                source,
                &place,
                required(
                    source,
                    &place,
                    threshold_table,
                    threshold_element,
                    "currency",
                )?,
            )?;
            let amount = amount_value(
                source,
                &place,
                "implicit_up_to",
                required(
                    source,
                    &place,
                    threshold_table,
                    threshold_element,
                    "implicit_up_to",
                )?,
                currency,
            )?;
            if let Some(first) = seen.iter().position(|&known| known == (means, currency)) {
                return Err(invalid(
                    means_raw.span().start,
                    place,
                    "means",
                    PlanError::DuplicateThreshold {
                        user: user.clone(),
                        threshold: number,
                        first: first.saturating_add(1),
                        means,
                        currency,
                    },
                ));
            }
            seen.push((means, currency));
            thresholds.set(means, amount);
            threshold_offsets.push(Offsets::of(
                threshold_element,
                threshold_table,
                THRESHOLD_KEYS,
            ));
        }
    }
    let threshold_at = |threshold: usize, key: &'static str| {
        threshold_offsets
            .get(threshold.saturating_sub(1))
            .map_or(element.span().start, |offsets| offsets.key(key))
    };

    User::new(id, plan, thresholds, means).map_err(|problem| {
        let key_at = |key: &'static str| {
            table
                .get(key)
                .map_or(element.span().start, |value| value.span().start)
        };
        match &problem {
            PlanError::RuleMeansNotAtDisposal { rule, .. } => {
                let rule = *rule;
                invalid(rule_at(rule, "means"), rule_place(rule), "means", problem)
            }
            PlanError::ThresholdMeansNotAtDisposal { threshold, .. } => {
                let threshold = *threshold;
                invalid(
                    threshold_at(threshold, "means"),
                    threshold_place(threshold),
                    "means",
                    problem,
                )
            }
            PlanError::ThresholdCurrencyUnused { threshold, .. } => {
                let threshold = *threshold;
                invalid(
                    threshold_at(threshold, "currency"),
                    threshold_place(threshold),
                    "currency",
                    problem,
                )
            }
            PlanError::BadReaderUri { .. } => invalid(
                key_at("card_reader"),
                user_place.clone(),
                "card_reader",
                problem,
            ),
            PlanError::BadKeyStoreUser { .. } => invalid(
                key_at("key_store_user"),
                user_place.clone(),
                "key_store_user",
                problem,
            ),
            _ => invalid(
                element.span().start,
                user_place.clone(),
                "card_reader",
                problem,
            ),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[[user]]
id = "alice"
card_reader = "sim:cb"

[[user.rule]]
means = "bank-card"
currency = "EUR"
"#;

    #[test]
    fn a_minimal_file_gives_one_active_user() {
        let users = parse(MINIMAL, "payer.toml").unwrap();
        assert_eq!(users.count(), 1);
        assert_eq!(users.active().id().as_str(), "alice");
        assert_eq!(users.active().plan().rules().len(), 1);
    }

    #[test]
    fn locations_count_lines_and_characters_from_one() {
        let source = Source {
            text: "a\néé = 1\n",
            origin: "t",
        };
        let at = source.at(6);
        assert_eq!((at.line, at.column), (2, 3));
        let end = source.at(1000);
        assert_eq!((end.line, end.column), (3, 1));
    }
}
