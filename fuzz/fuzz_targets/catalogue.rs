//! Fuzz target `catalogue`: the service server's catalogue reader
//! (`telepay::provider::Catalogue::from_toml_str`, format in `docs/catalogue.md`).
//!
//! The input is taken as UTF-8 text (other inputs are skipped) and read with a base
//! directory that does not exist (`/nonexistent-telepay-fuzz`), so that no
//! `content_file` can be read: a relative one fails with `ContentFile`, whose path lies
//! under that directory, and one that would leave it (absolute, or with `..`) with
//! `ContentFileOutside` before anything is opened. (This target found that such paths
//! were once joined and read: `/etc/hostname`, `../../etc/hostname`.)
//!
//! Checked on every input:
//!
//! - `from_toml_str` never panics, and fails with `Syntax` exactly when the TOML does
//!   not parse;
//! - an error's `Display`, `Debug` and `source()` chain format; its message starts with
//!   `<string>: ` (no provider, no item) or `<string>:LINE:COLUMN: ` with LINE and
//!   COLUMN inside the text (column ≤ the line's characters + 1);
//! - nothing is read: never `Io` (no catalogue file) nor `ContentFileSize` (no content
//!   file opened), a `ContentFile` error names a path under the base directory, and a
//!   catalogue read has no item with a `content_file` key.
//!
//! On success, against the document tree and the format:
//!
//! - the provider and every item's id, designation, kind, currency, validity,
//!   `available`, `deliver_with_quote` and identification are the document's (with the
//!   documented defaults), ids are valid identifiers, unique, and `Catalogue::get` finds
//!   each item by its id (and nothing for ids no item has);
//! - free ⇔ the fixed price is zero; a payment service (`bill-payment`,
//!   `account-reload`) has no fixed price, is never free, never delivered with the quote
//!   and has no content, and its listing `price()` is its smallest bill or its reload
//!   minimum, never zero; a document, pay-per-view or pay-per-time item has non-empty
//!   content (inline content is the document's string with its media type or the
//!   default); a pay-per-time item, and only it, is billed per unit (`unit_seconds` as
//!   written, `max_units` as written or the default, each within its bound, a unit
//!   price above zero); a physical
//!   good has none and is not delivered with the quote; an item for identified users is
//!   never delivered with the quote;
//! - bills and accounts are the document's, in order, with valid unique references and
//!   numbers that `bill()` / `account()` find; bill amounts and the reload minimum are
//!   above zero, `min ≤ max`, every amount is in the item's currency and at most
//!   `MAX_PRICE_MINOR`; an account's `opening_balance()` follows `prepaid`;
//! - `static_info()` is the designation, kind, identification flag and unit billing; every price and
//!   amount printed with `format_price` reads back equal with `parse_price`.
#![no_main]

use std::path::Path;
use std::sync::Once;

use libfuzzer_sys::fuzz_target;
use telepay::messages::{AccountBalance, Currency, Money, ServiceId, ServiceKind, StaticInfo};
use telepay::provider::catalogue::{
    DEFAULT_INLINE_MEDIA_TYPE, DEFAULT_MAX_UNITS, MAX_ID_LEN, MAX_PRICE_MINOR, MAX_REFERENCE_LEN,
    MAX_UNIT_SECONDS, MAX_UNITS, MAX_VALIDITY_SECONDS,
};
use telepay::provider::{Catalogue, CatalogueError, CatalogueItem, format_price, parse_price};
use toml::de::{DeTable, DeValue};

/// A directory that does not exist: no `content_file` below it can be opened.
const BASE_DIR: &str = "/nonexistent-telepay-fuzz";

/// The origin `from_toml_str` gives its errors.
const ORIGIN: &str = "<string>";

static BASE_DIR_ABSENT: Once = Once::new();

fuzz_target!(|input: &[u8]| check(input));

fn check(input: &[u8]) {
    BASE_DIR_ABSENT.call_once(|| {
        assert!(
            !Path::new(BASE_DIR).exists(),
            "{BASE_DIR} exists: the target would read files from it"
        );
    });
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    let document = DeTable::parse(text).ok();
    match Catalogue::from_toml_str(text, Path::new(BASE_DIR)) {
        Ok(catalogue) => {
            let Some(document) = document else {
                panic!("a catalogue from a text that is not TOML: {catalogue:?}");
            };
            check_catalogue(&catalogue, document.get_ref());
        }
        Err(error) => check_error(text, document.is_some(), &error),
    }
}

// ---------------------------------------------------------------------------------------
// Errors

fn check_error(text: &str, is_toml: bool, error: &CatalogueError) {
    let message = error.to_string();
    let _ = format!("{error:?}");
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let _ = cause.to_string();
        source = cause.source();
    }

    let is_syntax = matches!(error, CatalogueError::Syntax { .. });
    assert_eq!(
        is_syntax, !is_toml,
        "Syntax error iff the text is not TOML, got: {message}"
    );
    match error {
        CatalogueError::Io { .. } => panic!("from_toml_str read a catalogue file: {message}"),
        CatalogueError::ContentFileSize { .. } => {
            panic!("a content file under a directory that does not exist was opened: {message}")
        }
        CatalogueError::ContentFile { path, .. } => assert!(
            path.starts_with(BASE_DIR)
                && path
                    .components()
                    .all(|part| !matches!(part, std::path::Component::ParentDir)),
            "content file {} outside {BASE_DIR}: {message}",
            path.display()
        ),
        CatalogueError::ContentFileOutside { found, .. } => assert!(
            Path::new(found).components().any(|part| !matches!(
                part,
                std::path::Component::Normal(_)
            )),
            "content file {found:?} refused as outside, but it is a plain relative path"
        ),
        _ => {}
    }
    check_position(text, &message);
}

/// The message starts with `<string>: ` or `<string>:LINE:COLUMN: `, inside the text.
fn check_position(text: &str, message: &str) {
    let Some(rest) = message.strip_prefix(ORIGIN) else {
        panic!("error without the origin {ORIGIN}: {message}");
    };
    if rest.starts_with(": ") {
        return;
    }
    let position = rest
        .strip_prefix(':')
        .and_then(|rest| rest.split_once(": "))
        .map(|(position, _)| position)
        .and_then(|position| position.split_once(':'))
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
        panic!(
            "line {line} outside the text's {} lines: {message}",
            text.split('\n').count()
        );
    };
    let width = line_text.chars().count();
    assert!(
        (1..=width + 1).contains(&column),
        "column {column} outside 1..={} of line {line}: {message}",
        width + 1
    );
}

// ---------------------------------------------------------------------------------------
// A catalogue read

fn check_catalogue(catalogue: &Catalogue, document: &DeTable<'_>) {
    assert_eq!(catalogue.origin(), ORIGIN);
    let provider = &catalogue.provider().0;
    assert!(is_identifier(provider), "provider {provider:?}");
    assert_eq!(Some(provider.as_str()), string(document, "provider"));

    let Some(DeValue::Array(elements)) = document.get("item").map(|value| value.get_ref()) else {
        panic!("a catalogue from a document without an `item` array");
    };
    let items = catalogue.items();
    assert_eq!(items.len(), elements.len(), "items vs [[item]] tables");
    assert!(!items.is_empty(), "a catalogue without items");

    for (position, (item, element)) in items.iter().zip(elements).enumerate() {
        let Some(table) = element.get_ref().as_table() else {
            panic!(
                "item {} read from a {}",
                position + 1,
                element.get_ref().type_str()
            );
        };
        check_item(item, table);
        let id = item.id();
        let found = catalogue.get(id);
        assert!(
            found.is_some_and(|found| std::ptr::eq(found, item)),
            "get({id}) does not find item {}: {found:?}",
            position + 1
        );
        assert!(
            items[..position].iter().all(|earlier| earlier.id() != id),
            "duplicate id {id}"
        );
        // `~` is never in an identifier: no item has this id.
        let absent = ServiceId::from(format!("{}~", id.0));
        assert!(
            catalogue.get(&absent).is_none(),
            "get({absent}) finds an item"
        );
    }
    assert!(catalogue.get(&ServiceId::from(String::new())).is_none());
}

fn check_item(item: &CatalogueItem, table: &DeTable<'_>) {
    let id = &item.id().0;
    assert!(is_identifier(id), "id {id:?}");
    assert_eq!(Some(id.as_str()), string(table, "id"));
    assert!(
        !table.contains_key("content_file"),
        "item {id}: read with a content_file under a directory that does not exist"
    );

    let designation = item.designation();
    assert!(
        !designation.trim().is_empty(),
        "item {id}: blank designation"
    );
    assert_eq!(Some(designation), string(table, "designation"), "item {id}");

    let kind = item.kind();
    let kind_text = match kind {
        ServiceKind::Document => "document",
        ServiceKind::PayPerView => "pay-per-view",
        ServiceKind::PhysicalGood => "physical-good",
        ServiceKind::BillPayment => "bill-payment",
        ServiceKind::AccountReload => "account-reload",
        ServiceKind::PayPerTime => "pay-per-time",
    };
    assert_eq!(Some(kind_text), string(table, "kind"), "item {id}: kind");

    let currency = item.currency();
    assert_eq!(
        string(table, "currency").and_then(Currency::from_alpha),
        Some(currency),
        "item {id}: currency"
    );
    assert!(
        (1..=MAX_VALIDITY_SECONDS).contains(&item.validity_seconds()),
        "item {id}: validity {}",
        item.validity_seconds()
    );
    match table.get("validity_seconds").map(|value| value.get_ref()) {
        Some(DeValue::Integer(integer)) => assert_eq!(
            u64::from_str_radix(integer.as_str(), integer.radix()).ok(),
            Some(item.validity_seconds()),
            "item {id}: validity_seconds"
        ),
        other => panic!("item {id}: validity_seconds read from {other:?}"),
    }
    assert_eq!(
        item.available(),
        boolean(table, "available").unwrap_or(true),
        "item {id}: available"
    );
    assert_eq!(
        item.deliver_with_quote(),
        boolean(table, "deliver_with_quote").unwrap_or(false),
        "item {id}: deliver_with_quote"
    );
    assert_eq!(
        item.identification_required(),
        string(table, "identification") == Some("required"),
        "item {id}: identification"
    );
    if item.identification_required() {
        assert!(
            !item.deliver_with_quote(),
            "item {id}: for identified users, yet delivered with the quote"
        );
    }
    // Billed per unit of time exactly when pay-per-time, with the unit and the limit
    // the file gives (the limit defaulting), each within its bound.
    let metering = item.metering();
    assert_eq!(
        metering.is_some(),
        kind == ServiceKind::PayPerTime,
        "item {id}: metering {metering:?}"
    );
    if let Some(billing) = metering {
        assert!(!item.price().is_zero(), "item {id}: a free unit");
        let unit_seconds = u64::from(billing.unit_seconds);
        assert!((1..=MAX_UNIT_SECONDS).contains(&unit_seconds), "item {id}");
        assert_eq!(
            integer(table, "unit_seconds"),
            Some(unit_seconds),
            "item {id}: unit_seconds"
        );
        let max_units = u64::from(billing.max_units);
        assert!((1..=MAX_UNITS).contains(&max_units), "item {id}");
        match integer(table, "max_units") {
            Some(given) => assert_eq!(given, max_units, "item {id}: max_units"),
            None => assert_eq!(billing.max_units, DEFAULT_MAX_UNITS, "item {id}"),
        }
    }
    assert_eq!(
        item.static_info(),
        StaticInfo {
            designation: designation.into(),
            kind,
            identification_required: item.identification_required(),
            unit_billing: metering,
        },
        "item {id}: static_info"
    );

    let price = item.price();
    check_amount(id, "price()", price, currency);
    assert_eq!(
        item.is_payment_service(),
        matches!(kind, ServiceKind::BillPayment | ServiceKind::AccountReload),
        "item {id}: is_payment_service"
    );
    assert_eq!(
        item.is_free(),
        item.fixed_price().is_some_and(|fixed| fixed.is_zero()),
        "item {id}: free iff the fixed price is zero"
    );

    if item.is_payment_service() {
        assert_eq!(
            item.fixed_price(),
            None,
            "item {id}: payment service with a fixed price"
        );
        assert!(!item.is_free(), "item {id}: free payment service");
        assert!(
            !price.is_zero(),
            "item {id}: payment service listed at zero"
        );
        assert!(
            !item.deliver_with_quote(),
            "item {id}: payment service delivered with the quote"
        );
        assert!(
            item.content().is_none(),
            "item {id}: payment service with content"
        );
    } else {
        assert_eq!(
            item.fixed_price(),
            Some(price),
            "item {id}: fixed price vs price()"
        );
        let written = string(table, "price").map(|text| parse_price(text, currency));
        assert_eq!(
            written,
            Some(Ok(price)),
            "item {id}: price vs the document's"
        );
        assert!(item.bills().is_empty(), "item {id}: bills on a {kind_text}");
        assert!(
            item.accounts().is_empty(),
            "item {id}: accounts on a {kind_text}"
        );
        assert_eq!(
            item.reload_range(),
            None,
            "item {id}: reload range on a {kind_text}"
        );
    }

    match kind {
        // A pay-per-time item delivers content too: each unit's ticket.
        ServiceKind::Document | ServiceKind::PayPerView | ServiceKind::PayPerTime => {
            let Some(content) = item.content() else {
                panic!("item {id}: a {kind_text} without content");
            };
            assert!(!content.bytes.is_empty(), "item {id}: empty content");
            assert!(
                !content.media_type.is_empty(),
                "item {id}: empty media type"
            );
            let inline = string(table, "content");
            assert!(
                inline.is_some(),
                "item {id}: content from neither content nor content_file"
            );
            assert_eq!(
                inline.map(str::as_bytes),
                Some(content.bytes.as_slice()),
                "item {id}: inline content"
            );
            assert_eq!(
                string(table, "media_type").unwrap_or(DEFAULT_INLINE_MEDIA_TYPE),
                content.media_type,
                "item {id}: media type"
            );
        }
        ServiceKind::PhysicalGood => {
            assert!(
                item.content().is_none(),
                "item {id}: a physical good with content"
            );
            assert!(
                !item.deliver_with_quote(),
                "item {id}: goods delivered with the quote"
            );
        }
        ServiceKind::BillPayment => check_bills(item, table),
        ServiceKind::AccountReload => check_reload(item, table),
    }
}

fn check_bills(item: &CatalogueItem, table: &DeTable<'_>) {
    let id = &item.id().0;
    let bills = item.bills();
    let tables = entry_tables(table, "bill");
    assert!(!bills.is_empty(), "item {id}: bill-payment without bills");
    assert_eq!(
        bills.len(),
        tables.len(),
        "item {id}: bills vs [[item.bill]]"
    );
    assert!(
        item.accounts().is_empty(),
        "item {id}: accounts on a bill-payment"
    );
    assert_eq!(
        item.reload_range(),
        None,
        "item {id}: reload range on a bill-payment"
    );
    let currency = item.currency();
    for (position, (bill, entry)) in bills.iter().zip(&tables).enumerate() {
        let reference = bill.reference();
        check_reference(id, reference);
        assert_eq!(
            Some(reference),
            string(entry, "reference"),
            "item {id}: bill {position}"
        );
        assert!(
            bills[..position]
                .iter()
                .all(|earlier| earlier.reference() != reference),
            "item {id}: duplicate bill {reference:?}"
        );
        assert!(
            item.bill(reference)
                .is_some_and(|found| std::ptr::eq(found, bill)),
            "item {id}: bill({reference:?}) does not find it"
        );
        check_amount(id, "bill amount", bill.amount(), currency);
        assert!(
            !bill.amount().is_zero(),
            "item {id}: bill {reference:?} of zero"
        );
        assert_eq!(
            string(entry, "amount").map(|text| parse_price(text, currency)),
            Some(Ok(bill.amount())),
            "item {id}: bill {reference:?} amount"
        );
        if let Some(description) = bill.description() {
            assert!(
                !description.trim().is_empty(),
                "item {id}: blank bill description"
            );
        }
        assert_eq!(
            bill.description(),
            string(entry, "description"),
            "item {id}: description"
        );
    }
    let least = bills.iter().map(|bill| bill.amount().minor).min();
    assert_eq!(
        least,
        Some(item.price().minor),
        "item {id}: listed at other than its smallest bill"
    );
    assert!(
        item.bill("").is_none(),
        "item {id}: a bill with an empty reference"
    );
}

fn check_reload(item: &CatalogueItem, table: &DeTable<'_>) {
    let id = &item.id().0;
    let accounts = item.accounts();
    let tables = entry_tables(table, "account");
    assert!(
        !accounts.is_empty(),
        "item {id}: account-reload without accounts"
    );
    assert_eq!(
        accounts.len(),
        tables.len(),
        "item {id}: accounts vs [[item.account]]"
    );
    assert!(
        item.bills().is_empty(),
        "item {id}: bills on an account-reload"
    );
    let currency = item.currency();
    let Some((min, max)) = item.reload_range() else {
        panic!("item {id}: account-reload without limits");
    };
    check_amount(id, "min_amount", min, currency);
    check_amount(id, "max_amount", max, currency);
    assert!(!min.is_zero(), "item {id}: reload minimum of zero");
    assert!(
        min.minor <= max.minor,
        "item {id}: reload range {min} > {max}"
    );
    assert_eq!(
        item.price(),
        min,
        "item {id}: listed at other than the reload minimum"
    );
    for (key, amount) in [("min_amount", min), ("max_amount", max)] {
        assert_eq!(
            string(table, key).map(|text| parse_price(text, currency)),
            Some(Ok(amount)),
            "item {id}: {key}"
        );
    }
    for (position, (account, entry)) in accounts.iter().zip(&tables).enumerate() {
        let number = account.number();
        check_reference(id, number);
        assert_eq!(
            Some(number),
            string(entry, "number"),
            "item {id}: account {position}"
        );
        assert!(
            accounts[..position]
                .iter()
                .all(|earlier| earlier.number() != number),
            "item {id}: duplicate account {number:?}"
        );
        assert!(
            item.account(number)
                .is_some_and(|found| std::ptr::eq(found, account)),
            "item {id}: account({number:?}) does not find it"
        );
        assert_eq!(
            Some(account.is_prepaid()),
            boolean(entry, "prepaid"),
            "item {id}: prepaid"
        );
        let balance = account.balance();
        check_amount(id, "balance", balance, currency);
        assert_eq!(
            string(entry, "balance").map(|text| parse_price(text, currency)),
            Some(Ok(balance)),
            "item {id}: account {number:?} balance"
        );
        let expected = if account.is_prepaid() {
            AccountBalance::Credit(balance)
        } else {
            AccountBalance::Owed(balance)
        };
        assert_eq!(
            account.opening_balance(),
            expected,
            "item {id}: opening balance"
        );
    }
    assert!(
        item.account("").is_none(),
        "item {id}: an account with an empty number"
    );
}

/// An amount of the item's: its currency, at most `MAX_PRICE_MINOR`, and printed by
/// `format_price` it reads back equal.
fn check_amount(id: &str, what: &str, amount: Money, currency: Currency) {
    assert_eq!(
        amount.currency, currency,
        "item {id}: {what} in another currency"
    );
    assert!(
        amount.minor <= MAX_PRICE_MINOR,
        "item {id}: {what} {amount} too large"
    );
    let printed = format_price(amount);
    assert_eq!(
        parse_price(&printed, currency),
        Ok(amount),
        "item {id}: {what} printed as {printed:?}"
    );
}

/// A bill reference or account number: 1 to `MAX_REFERENCE_LEN` printable ASCII
/// characters, no leading or trailing space.
fn check_reference(id: &str, reference: &str) {
    assert!(
        (1..=MAX_REFERENCE_LEN).contains(&reference.len())
            && reference
                .bytes()
                .all(|byte| byte == b' ' || byte.is_ascii_graphic())
            && !reference.starts_with(' ')
            && !reference.ends_with(' '),
        "item {id}: reference {reference:?}"
    );
}

/// 1 to `MAX_ID_LEN` ASCII letters, digits, `-`, `_`, `.`.
fn is_identifier(text: &str) -> bool {
    (1..=MAX_ID_LEN).contains(&text.len())
        && text
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.'))
}

/// The string value of `key`, if it is one.
fn string<'t>(table: &'t DeTable<'_>, key: &str) -> Option<&'t str> {
    table.get(key).and_then(|value| value.get_ref().as_str())
}

/// The value of `key`, if it is a non-negative integer that fits 64 bits.
fn integer(table: &DeTable<'_>, key: &str) -> Option<u64> {
    match table.get(key).map(|value| value.get_ref()) {
        Some(DeValue::Integer(integer)) => {
            u64::from_str_radix(integer.as_str(), integer.radix()).ok()
        }
        _ => None,
    }
}

/// The boolean value of `key`, if it is one.
fn boolean(table: &DeTable<'_>, key: &str) -> Option<bool> {
    table.get(key).and_then(|value| value.get_ref().as_bool())
}

/// The tables of the array `key` (`[[item.bill]]`); the reader accepted only tables.
fn entry_tables<'t, 'i>(table: &'t DeTable<'i>, key: &str) -> Vec<&'t DeTable<'i>> {
    match table.get(key).map(|value| value.get_ref()) {
        Some(DeValue::Array(elements)) => elements
            .iter()
            .map(|element| match element.get_ref() {
                DeValue::Table(entry) => entry,
                other => panic!("[[item.{key}]] read from a {}", other.type_str()),
            })
            .collect(),
        _ => Vec::new(),
    }
}
