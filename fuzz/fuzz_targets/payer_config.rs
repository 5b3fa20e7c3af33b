//! Fuzz target `payer_config`: the payer device's configuration reader
//! (`telepay::terminal::plan::config::parse`, format in `docs/payer.md`), and the plan
//! choices of whatever users it accepts.
//!
//! The input is taken as UTF-8 text (other inputs are skipped). Checked on every input:
//!
//! - `parse` never panics, and fails with `Syntax` exactly when the TOML does not parse;
//!   it never reports `Io` or `TooLarge` (it reads no file);
//! - an error's `Display`, `Debug` and `source()` chain format; its message starts with
//!   `fuzz.toml: ` or `fuzz.toml:LINE:COLUMN: ` with LINE and COLUMN inside the text.
//!
//! On success, against the document tree:
//!
//! - the users are the document's `[[user]]` tables, in order, by `id`; the active one
//!   is `active`'s, or the first; each plan has as many rules as its `[[user.rule]]`;
//! - every user rebuilt from its parts by `PaymentPlan::new` and `User::new` is equal
//!   (the constructors accept what the reader accepted);
//! - for each rule, at its band's first and last amounts, for every kind and none, the
//!   covering rule is this one or an earlier one (first match wins), and the choice
//!   under acquirers that take everything is one of the covering rule's means, one the
//!   user has.
#![no_main]

use libfuzzer_sys::fuzz_target;
use telepay::acquirer::card::AmountLimits;
use telepay::messages::{Means, Money, ServiceKind};
use telepay::terminal::plan::config::{self, PayerConfigError};
use telepay::terminal::plan::{AcquirerLimits, PaymentContext, PaymentPlan, User, Users};
use toml::de::{DeTable, DeValue};

const ORIGIN: &str = "fuzz.toml";

fuzz_target!(|input: &[u8]| check(input));

fn check(input: &[u8]) {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    let document = DeTable::parse(text).ok();
    match config::parse(text, ORIGIN) {
        Ok(users) => {
            let Some(document) = document else {
                panic!("users from a text that is not TOML: {users:?}");
            };
            check_users(&users, document.get_ref());
        }
        Err(error) => check_error(text, document.is_some(), &error),
    }
}

fn check_error(text: &str, is_toml: bool, error: &PayerConfigError) {
    let message = error.to_string();
    let _ = format!("{error:?}");
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let _ = cause.to_string();
        source = cause.source();
    }
    assert_eq!(
        matches!(error, PayerConfigError::Syntax { .. }),
        !is_toml,
        "Syntax error iff the text is not TOML, got: {message}"
    );
    assert!(
        !matches!(
            error,
            PayerConfigError::Io { .. } | PayerConfigError::TooLarge { .. }
        ),
        "parse reported a file problem: {message}"
    );
    let Some(rest) = message.strip_prefix(ORIGIN) else {
        panic!("error without the origin: {message}");
    };
    if rest.starts_with(": ") {
        return;
    }
    let position = rest
        .strip_prefix(':')
        .and_then(|rest| rest.split_once(": "))
        .and_then(|(position, _)| position.split_once(':'))
        .and_then(|(line, column)| {
            Some((line.parse::<usize>().ok()?, column.parse::<usize>().ok()?))
        });
    let Some((line, column)) = position else {
        panic!("error without `:LINE:COLUMN: ` after the origin: {message}");
    };
    let Some(line_text) = line
        .checked_sub(1)
        .and_then(|index| text.split('\n').nth(index))
    else {
        panic!("line {line} outside the text: {message}");
    };
    let width = line_text.chars().count();
    assert!(
        (1..=width + 1).contains(&column),
        "column {column} outside 1..={} of line {line}: {message}",
        width + 1
    );
}

fn tables<'t, 'i>(table: &'t DeTable<'i>, key: &str) -> Vec<&'t DeTable<'i>> {
    match table.get(key).map(|value| value.get_ref()) {
        Some(DeValue::Array(elements)) => elements
            .iter()
            .filter_map(|element| element.get_ref().as_table())
            .collect(),
        _ => Vec::new(),
    }
}

fn string<'t>(table: &'t DeTable<'_>, key: &str) -> Option<&'t str> {
    table.get(key).and_then(|value| value.get_ref().as_str())
}

fn check_users(users: &Users, document: &DeTable<'_>) {
    let user_tables = tables(document, "user");
    let ids: Vec<&str> = users.iter().map(|user| user.id().as_str()).collect();
    let document_ids: Vec<Option<&str>> = user_tables
        .iter()
        .map(|table| string(table, "id"))
        .collect();
    assert_eq!(
        ids.iter().map(|id| Some(*id)).collect::<Vec<_>>(),
        document_ids,
        "users vs [[user]]"
    );
    let expected_active = string(document, "active").or(ids.first().copied());
    assert_eq!(Some(users.active().id().as_str()), expected_active);
    let everything = "[[limit]]\ncurrency = \"EUR\"\nmin = 0\nmax = 999999999999\n\
        [[limit]]\ncurrency = \"USD\"\nmin = 0\nmax = 999999999999\n\
        [[limit]]\ncurrency = \"GBP\"\nmin = 0\nmax = 999999999999\n\
        [[limit]]\ncurrency = \"JPY\"\nmin = 0\nmax = 999999999999\n";
    let mut limits = AcquirerLimits::new();
    for means in Means::ALL {
        limits.insert(
            means,
            AmountLimits::from_toml_str(everything, "fuzz limits").expect("limits parse"),
        );
    }
    for (user, table) in users.iter().zip(&user_tables) {
        check_user(user, table, &limits);
    }
}

fn check_user(user: &User, table: &DeTable<'_>, limits: &AcquirerLimits) {
    let rules = user.plan().rules();
    assert_eq!(
        rules.len(),
        tables(table, "rule").len(),
        "rules vs [[user.rule]]"
    );
    let rebuilt = PaymentPlan::new(rules.to_vec())
        .and_then(|plan| {
            User::new(
                user.id().clone(),
                plan,
                user.thresholds().clone(),
                user.means().clone(),
            )
        })
        .expect("the constructors accept what the reader accepted");
    assert_eq!(&rebuilt, user);

    let all: Vec<_> = user.means().means();
    for (position, rule) in rules.iter().enumerate() {
        assert!(!rule.band.is_empty(), "an empty band was accepted");
        assert!(rule.means.iter().all(|&means| user.means().has(means)));
        let last = rule
            .band
            .below
            .map_or(u64::MAX, |below| below.saturating_sub(1));
        for minor in [rule.band.from, last] {
            let amount = Money::new(minor, rule.band.currency);
            let kinds = std::iter::once(None).chain(ServiceKind::ALL.into_iter().map(Some));
            for kind in kinds {
                let kind: Option<ServiceKind> = kind;
                let context = PaymentContext {
                    amount,
                    kind,
                    accepted: &all,
                    chosen: None,
                };
                let Some((number, covering)) = user.plan().rule_for(&amount, kind) else {
                    continue;
                };
                if rule.covers(&amount, kind) {
                    assert!(
                        number <= position + 1,
                        "rule {number} answers for an amount rule {} covers first",
                        position + 1
                    );
                }
                if let Ok(choice) = user.choose(&context, limits) {
                    assert!(covering.means.contains(&choice.means));
                    assert!(user.means().has(choice.means));
                }
            }
        }
    }
}
