//! A service server's catalogue: the services it quotes (step C) and delivers (step J),
//! read from a TOML file whose format `docs/catalogue.md` specifies.
//!
//! The file is decoded from `toml`'s spanned document tree rather than through a serde
//! derive, so that every error names the file, the line and column, the item and the
//! key, and says what was expected and what was found ([`CatalogueError`]).
//!
//! Prices are decimal strings (`"2.50"`) read exactly into minor units with the
//! currency's ISO 4217 exponent ([`parse_price`]); floating point never touches them.
//!
//! Besides content and goods at a fixed price, a catalogue holds the payment services
//! of claim 17: bills to pay (`bill-payment`, each [`Bill`] with its own amount) and
//! accounts to reload (`account-reload`, each [`Account`], by an amount the user
//! chooses within the item's limits). Any item may be for identified users only
//! (claim 16, `identification = "required"`).

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::messages::{
    AccountBalance, Currency, Money, ProviderId, ServiceId, ServiceKind, SharedBytes, StaticInfo,
    Text, UnitBilling,
};

/// The largest amount a price may have, in minor units: EMV's Amount, Authorised
/// (`9F02`) is n12 (EMV Book 3 Annex A), so a larger price could not be paid by card.
/// Bill amounts, reload limits and account balances have the same bound.
pub const MAX_PRICE_MINOR: u64 = 999_999_999_999;

/// The longest quote validity a catalogue may give, in seconds (365 days).
pub const MAX_VALIDITY_SECONDS: u64 = 365 * 86_400;

/// The largest content file a catalogue may name, in bytes (4 MiB): content travels
/// whole in a message, so anything bigger is a mistake in the catalogue.
pub const MAX_CONTENT_LEN: u64 = 4 * 1024 * 1024;

/// The longest service or provider identifier, in characters.
pub const MAX_ID_LEN: usize = 64;

/// The longest bill reference or account number, in characters: what a user can type
/// from a printed bill or a card.
pub const MAX_REFERENCE_LEN: usize = 32;

/// The media type of inline `content`, when the item gives none: a TOML string is
/// UTF-8 text.
pub const DEFAULT_INLINE_MEDIA_TYPE: &str = "text/plain; charset=utf-8";

/// The demo catalogue, built in: the default when no catalogue file is given.
const DEMO_CATALOGUE: &str = include_str!("demo-catalogue.toml");

/// Where the demo catalogue's `origin` says it comes from.
const DEMO_ORIGIN: &str = "demo-catalogue.toml (built in)";

/// The demo catalogue's `content_file`s, built in, by the path the catalogue gives.
const DEMO_FILES: &[(&str, &[u8])] = &[
    (
        "demo/market-report-2026.txt",
        include_bytes!("demo/market-report-2026.txt"),
    ),
    (
        "demo/card-payments-guide.md",
        include_bytes!("demo/card-payments-guide.md"),
    ),
];

/// The keys an `[[item]]` table may have.
const ITEM_KEYS: &[&str] = &[
    "id",
    "designation",
    "kind",
    "price",
    "currency",
    "validity_seconds",
    "deliver_with_quote",
    "available",
    "identification",
    "content",
    "content_file",
    "media_type",
    "bill",
    "min_amount",
    "max_amount",
    "account",
    "unit_seconds",
    "max_units",
];

/// The keys a physical good may not have: its delivery is an order, not content.
const CONTENT_KEYS: &[&str] = &["content", "content_file", "media_type"];

/// The keys a payment service may not have: its amount is a bill's or the reload's,
/// and its delivery is a receipt.
const FIXED_PRICE_KEYS: &[&str] = &["price", "content", "content_file", "media_type"];

/// The keys only a bill-payment item has.
const BILL_ITEM_KEYS: &[&str] = &["bill"];

/// The keys only an account-reload item has.
const RELOAD_ITEM_KEYS: &[&str] = &["min_amount", "max_amount", "account"];

/// The keys only a pay-per-time item has.
const METERED_ITEM_KEYS: &[&str] = &["unit_seconds", "max_units"];

/// The longest unit of a pay-per-time item: a day.
pub const MAX_UNIT_SECONDS: u64 = 86_400;

/// The most units one purchase of a pay-per-time item may run, and the default.
pub const MAX_UNITS: u64 = 10_000;
/// The units a purchase runs when the item sets no `max_units`.
pub const DEFAULT_MAX_UNITS: u32 = 60;

/// The keys an `[[item.bill]]` table may have.
const BILL_KEYS: &[&str] = &["reference", "amount", "description"];

/// The keys an `[[item.account]]` table may have.
const ACCOUNT_KEYS: &[&str] = &["number", "prepaid", "balance"];

/// Content a document or pay-per-view item delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content {
    /// Media type, e.g. `text/plain; charset=utf-8`.
    pub media_type: Text,
    /// The bytes delivered, shared with every delivery of them.
    pub bytes: SharedBytes,
}

/// A bill a `bill-payment` item collects (claim 17): the user names it by its
/// reference and pays its amount. Built only by the catalogue reader: the reference is
/// 1 to [`MAX_REFERENCE_LEN`] printable ASCII characters, unique in its item, and the
/// amount is more than zero, in the item's currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bill {
    reference: String,
    amount: Money,
    description: Option<String>,
}

impl Bill {
    /// The reference, as printed on the bill.
    pub fn reference(&self) -> &str {
        &self.reference
    }

    /// What the bill asks for: the price of a quote to pay it.
    pub fn amount(&self) -> Money {
        self.amount
    }

    /// What the bill is for, when the catalogue says.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }
}

/// A remote account an `account-reload` item credits (claim 17), prepaid or not.
/// Built only by the catalogue reader: the number is 1 to [`MAX_REFERENCE_LEN`]
/// printable ASCII characters, unique in its item, and the balance is in the item's
/// currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    number: String,
    prepaid: bool,
    balance: Money,
}

impl Account {
    /// The account number, as the user knows it.
    pub fn number(&self) -> &str {
        &self.number
    }

    /// Whether the account is prepaid (it holds a credit that services draw on) rather
    /// than billed (it accumulates what is owed, which a reload pays off).
    pub fn is_prepaid(&self) -> bool {
        self.prepaid
    }

    /// The catalogue's `balance`: the credit of a prepaid account, what is owed on one
    /// that is not.
    pub fn balance(&self) -> Money {
        self.balance
    }

    /// The standing the account opens with on a server:
    /// [`AccountBalance::Credit`] for a prepaid account, [`AccountBalance::Owed`]
    /// otherwise.
    pub fn opening_balance(&self) -> AccountBalance {
        if self.prepaid {
            AccountBalance::Credit(self.balance)
        } else {
            AccountBalance::Owed(self.balance)
        }
    }
}

/// One service of a catalogue. Built only by the catalogue reader, so its invariants
/// hold: documents and pay-per-view items have content, physical goods have none and
/// are never delivered with the quote; a bill-payment item has at least one bill, an
/// account-reload item at least one account and limits `0 < min ≤ max`, and neither has
/// content, a fixed price, or is delivered with the quote; an item for identified users
/// is never delivered with the quote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogueItem {
    id: ServiceId,
    designation: Text,
    kind: ServiceKind,
    currency: Currency,
    /// The fixed price; for a payment service, the least it can be quoted at.
    price: Money,
    validity_seconds: u64,
    deliver_with_quote: bool,
    available: bool,
    identification_required: bool,
    content: Option<Content>,
    /// SHA-256 of `content`'s bytes, computed once when the item is read: the content
    /// never changes, and every delivery and quote that encloses it carries this digest.
    content_sha256: Option<[u8; 32]>,
    bills: Vec<Bill>,
    accounts: Vec<Account>,
    reload_range: Option<(Money, Money)>,
    /// A pay-per-time item's unit and the most units one purchase runs.
    metering: Option<UnitBilling>,
}

impl CatalogueItem {
    /// The service's identifier.
    pub fn id(&self) -> &ServiceId {
        &self.id
    }

    /// The designation shown to the user.
    pub fn designation(&self) -> &str {
        self.designation.as_str()
    }

    /// What kind of service it is.
    pub fn kind(&self) -> ServiceKind {
        self.kind
    }

    /// The currency of its price, bills, reload limits and account balances.
    pub fn currency(&self) -> Currency {
        self.currency
    }

    /// Whether it is a payment service of claim 17 (`bill-payment` or
    /// `account-reload`): its quote's price is the bill's amount or the amount the
    /// user chose, not a catalogue price.
    pub fn is_payment_service(&self) -> bool {
        matches!(
            self.kind,
            ServiceKind::BillPayment | ServiceKind::AccountReload
        )
    }

    /// The catalogue price of a document, pay-per-view item or physical good (zero for
    /// a free service); `None` for a payment service, which has none.
    pub fn fixed_price(&self) -> Option<Money> {
        (!self.is_payment_service()).then_some(self.price)
    }

    /// The price to show in a listing: the catalogue price, or for a payment service
    /// the least it can be quoted at (its smallest bill, or the reload minimum).
    ///
    /// A payment service's price is never zero — zero would tell the front-end the
    /// service is free and skip the payment — but neither is this its quote's price:
    /// the server quotes the bill's amount or the chosen reload amount. Use
    /// [`CatalogueItem::fixed_price`] to tell the two apart.
    pub fn price(&self) -> Money {
        self.price
    }

    /// Whether the service is free (a catalogue price of zero: no payment steps).
    /// Never true for a payment service.
    pub fn is_free(&self) -> bool {
        self.fixed_price().is_some_and(|price| price.is_zero())
    }

    /// How long a quote for it holds, in seconds (from 1 to [`MAX_VALIDITY_SECONDS`]).
    pub fn validity_seconds(&self) -> u64 {
        self.validity_seconds
    }

    /// Fig. 7: whether the quote C carries the service itself.
    pub fn deliver_with_quote(&self) -> bool {
        self.deliver_with_quote
    }

    /// Whether the item is on sale (`available`, true unless the catalogue says false).
    pub fn available(&self) -> bool {
        self.available
    }

    /// Claim 16: whether the server delivers it only to an identified customer
    /// (`identification = "required"`); the quote says so, and an order for it must
    /// name the customer.
    pub fn identification_required(&self) -> bool {
        self.identification_required
    }

    /// The content delivered; `Some` exactly for documents and pay-per-view items.
    pub fn content(&self) -> Option<&Content> {
        self.content.as_ref()
    }

    /// SHA-256 of the content's bytes (what [`Delivery::Content`] carries), computed
    /// once when the catalogue was read; `None` for items without content.
    ///
    /// [`Delivery::Content`]: crate::messages::Delivery::Content
    pub fn content_sha256(&self) -> Option<&[u8; 32]> {
        self.content_sha256.as_ref()
    }

    /// A bill-payment item's bills, in file order; empty for any other kind.
    pub fn bills(&self) -> &[Bill] {
        &self.bills
    }

    /// The bill with this reference (compared exactly), if the item has one.
    pub fn bill(&self, reference: &str) -> Option<&Bill> {
        self.bills.iter().find(|bill| bill.reference == reference)
    }

    /// An account-reload item's accounts, in file order; empty for any other kind.
    pub fn accounts(&self) -> &[Account] {
        &self.accounts
    }

    /// The account with this number (compared exactly), if the item has one.
    pub fn account(&self, number: &str) -> Option<&Account> {
        self.accounts
            .iter()
            .find(|account| account.number == number)
    }

    /// An account-reload item's limits (`min_amount`, `max_amount`), both included;
    /// `None` for any other kind.
    pub fn reload_range(&self) -> Option<(Money, Money)> {
        self.reload_range
    }

    /// A pay-per-time item's unit and limit; `None` for any other kind.
    pub fn metering(&self) -> Option<UnitBilling> {
        self.metering
    }

    /// The quote's static information (C) for this item, with the item's designation.
    /// A payment service's quote names the bill or the account in its designation
    /// instead (the server builds it).
    pub fn static_info(&self) -> StaticInfo {
        StaticInfo {
            designation: self.designation.clone(),
            kind: self.kind,
            identification_required: self.identification_required,
            unit_billing: self.metering,
        }
    }
}

/// A service server's catalogue: its provider identifier and its items in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalogue {
    provider: ProviderId,
    origin: String,
    items: Vec<CatalogueItem>,
    index: BTreeMap<ServiceId, usize>,
}

impl Catalogue {
    /// The demo catalogue built into telepay (`src/provider/demo-catalogue.toml`, items
    /// listed in `docs/catalogue.md`). Its first item is the default of
    /// `telepay purchase`. The text is built in, so this fails only if the built-in file
    /// is wrong, which the module's tests rule out.
    pub fn demo() -> Result<Catalogue, CatalogueError> {
        parse(DEMO_CATALOGUE, DEMO_ORIGIN, &Files::Embedded(DEMO_FILES))
    }

    /// Reads the catalogue file at `path`; `content_file` paths are relative to its
    /// directory.
    pub fn load(path: impl AsRef<Path>) -> Result<Catalogue, CatalogueError> {
        let path = path.as_ref();
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| CatalogueError::Io {
            origin: origin.clone(),
            source,
        })?;
        let base_dir = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        parse(&text, &origin, &Files::Directory(base_dir))
    }

    /// Reads a catalogue from its text; `content_file` paths are relative to
    /// `base_dir`. Errors name the origin `<string>`.
    pub fn from_toml_str(text: &str, base_dir: &Path) -> Result<Catalogue, CatalogueError> {
        parse(text, "<string>", &Files::Directory(base_dir))
    }

    /// The service server this catalogue belongs to (top-level `provider`).
    pub fn provider(&self) -> &ProviderId {
        &self.provider
    }

    /// Where the catalogue was read from: a file name, `<string>`, or the built-in demo.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The items, in file order.
    pub fn items(&self) -> &[CatalogueItem] {
        &self.items
    }

    /// The item with this identifier.
    pub fn get(&self, id: &ServiceId) -> Option<&CatalogueItem> {
        self.index
            .get(id)
            .and_then(|&position| self.items.get(position))
    }
}

/// A place in a catalogue text: the origin (file name), line and column, both from 1;
/// the column counts characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file name, `<string>`, or the built-in demo's name.
    pub origin: String,
    /// The line, from 1.
    pub line: usize,
    /// The column in characters, from 1.
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.origin, self.line, self.column)
    }
}

/// Where in the catalogue's structure a key was expected or found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// The top-level table (`provider`, `item`).
    TopLevel,
    /// An `[[item]]` table.
    Item {
        /// Its position in the file, from 1.
        index: usize,
        /// Its `id`, when it has a string one.
        id: Option<String>,
    },
    /// An `[[item.bill]]` table of a bill-payment item.
    Bill(Box<EntryPlace>),
    /// An `[[item.account]]` table of an account-reload item.
    Account(Box<EntryPlace>),
}

/// Which `[[item.bill]]` or `[[item.account]]` table a [`Place`] is. Boxed there, so
/// that every [`CatalogueError`] stays small.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryPlace {
    /// The item's `id`.
    pub item: String,
    /// The table's position in its item, from 1.
    pub index: usize,
    /// Its `reference` (a bill) or `number` (an account), when it has a string one.
    pub name: Option<String>,
}

impl EntryPlace {
    /// Writes `item `ID`, WHAT `NAME`` or `item `ID`, WHAT #N`.
    fn write(&self, f: &mut fmt::Formatter<'_>, what: &str) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "item `{}`, {what} `{name}`", self.item),
            None => write!(f, "item `{}`, {what} #{}", self.item, self.index),
        }
    }
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::TopLevel => f.write_str("top level"),
            Place::Item { id: Some(id), .. } => write!(f, "item `{id}`"),
            Place::Item { index, id: None } => write!(f, "item #{index}"),
            Place::Bill(entry) => entry.write(f, "bill"),
            Place::Account(entry) => entry.write(f, "account"),
        }
    }
}

/// Why a price string is not a price.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PriceError {
    /// The string is empty.
    #[error("empty: expected a decimal such as \"2.50\"")]
    Empty,
    /// The string starts with `-`.
    #[error("negative: a price is zero or more")]
    Negative,
    /// A character other than a digit or the one decimal point.
    #[error("unexpected {found:?} at character {position}: expected a digit or one `.`")]
    UnexpectedChar {
        /// Its position in characters, from 1.
        position: usize,
        /// The character.
        found: char,
    },
    /// The decimal point has no digit before or after it (`.5`, `2.`).
    #[error("expected digits on both sides of the decimal point")]
    MissingDigits,
    /// More decimals than the currency's exponent.
    #[error("{decimals} decimals, but {} has {allowed}", currency.alpha())]
    TooManyDecimals {
        /// Decimals given.
        decimals: usize,
        /// The currency's exponent.
        allowed: u8,
        /// The currency.
        currency: Currency,
    },
    /// More than [`MAX_PRICE_MINOR`] minor units.
    #[error("more than {MAX_PRICE_MINOR} minor units, the most EMV's n12 amount holds")]
    TooLarge,
}

/// Why a catalogue could not be read. Every variant names the origin, and where there
/// is one the line, column, item and key, with what was expected and what was found.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogueError {
    /// The catalogue file could not be read (or is not UTF-8).
    #[error("{origin}: cannot read the catalogue: {source}")]
    Io {
        /// The file name.
        origin: String,
        /// What the system said.
        #[source]
        source: io::Error,
    },
    /// The text is not TOML.
    #[error("{at}: not valid TOML: {message}")]
    Syntax {
        /// Where the parser stopped.
        at: Location,
        /// The parser's message.
        message: String,
    },
    /// No top-level `provider` key.
    #[error("{origin}: missing top-level key `provider`: expected provider = \"NAME\"")]
    MissingProvider {
        /// The file name.
        origin: String,
    },
    /// No `[[item]]`, or an empty `item` array.
    #[error("{origin}: no `[[item]]`: a catalogue offers at least one service")]
    NoItems {
        /// The file name.
        origin: String,
    },
    /// `item` is not an array of tables, or one of its elements is not a table.
    #[error("{at}: `item` must be an array of tables (`[[item]]`), found {found}")]
    ItemNotTable {
        /// Where the value is.
        at: Location,
        /// The TOML type found.
        found: &'static str,
    },
    /// A key the catalogue format does not have (a typo, often).
    #[error("{at}: {place}: unknown key `{key}`: expected one of {expected}")]
    UnknownKey {
        /// Where the key is.
        at: Location,
        /// The table it is in.
        place: Place,
        /// The key.
        key: String,
        /// The keys allowed there, comma-separated.
        expected: String,
    },
    /// A required key is absent.
    #[error("{at}: {place}: missing key `{key}`")]
    MissingKey {
        /// The table's header.
        at: Location,
        /// The table.
        place: Place,
        /// The key.
        key: &'static str,
    },
    /// A key's value has the wrong TOML type.
    #[error("{at}: {place}: key `{key}`: expected {expected}, found {found}")]
    WrongType {
        /// Where the value is.
        at: Location,
        /// The table.
        place: Place,
        /// The key.
        key: &'static str,
        /// What the format wants.
        expected: &'static str,
        /// The TOML type found.
        found: &'static str,
    },
    /// A provider or service identifier that is not 1 to [`MAX_ID_LEN`] ASCII letters,
    /// digits, `-`, `_` or `.`.
    #[error(
        "{at}: {place}: key `{key}`: bad identifier {found:?}: expected 1 to {MAX_ID_LEN} ASCII letters, digits, `-`, `_` or `.`"
    )]
    BadId {
        /// Where the value is.
        at: Location,
        /// The table.
        place: Place,
        /// `provider` or `id`.
        key: &'static str,
        /// The identifier given.
        found: String,
    },
    /// Two items with the same `id`.
    #[error("{at}: item `{item}`: duplicate id: line {first_line} already has it")]
    DuplicateId {
        /// Where the second one is.
        at: Location,
        /// The identifier.
        item: String,
        /// The line of the first item with it.
        first_line: usize,
    },
    /// A text key that must say something is empty (or only blanks).
    #[error("{at}: item `{item}`: key `{key}` is empty")]
    EmptyText {
        /// Where the value is.
        at: Location,
        /// The item.
        item: String,
        /// `designation`, `content` or `content_file`.
        key: &'static str,
    },
    /// `kind` names no kind of service.
    #[error(
        "{at}: item `{item}`: key `kind`: unknown kind {found:?}: expected document, pay-per-view, physical-good, bill-payment or account-reload"
    )]
    UnknownKind {
        /// Where the value is.
        at: Location,
        /// The item.
        item: String,
        /// What was given.
        found: String,
    },
    /// `currency` names no currency telepay knows.
    #[error(
        "{at}: item `{item}`: key `currency`: unknown currency {found:?}: expected EUR, USD, GBP or JPY"
    )]
    UnknownCurrency {
        /// Where the value is.
        at: Location,
        /// The item.
        item: String,
        /// What was given.
        found: String,
    },
    /// `price` is not a price in the item's currency.
    #[error("{at}: item `{item}`: key `price`: bad price {found:?}: {reason}")]
    BadPrice {
        /// Where the value is.
        at: Location,
        /// The item.
        item: String,
        /// The string given.
        found: String,
        /// What is wrong with it.
        #[source]
        reason: PriceError,
    },
    /// A pay-per-time item's `unit_seconds`, `max_units` or `price` is out of range.
    #[error("{at}: item `{item}`: key `{key}`: expected {expected}, found {found}")]
    BadMetering {
        /// Where the value is.
        at: Location,
        /// The item.
        item: String,
        /// The key.
        key: &'static str,
        /// What it may be.
        expected: &'static str,
        /// What it is.
        found: String,
    },
    /// `validity_seconds` is not a whole number from 1 to [`MAX_VALIDITY_SECONDS`].
    #[error(
        "{at}: item `{item}`: key `validity_seconds`: expected whole seconds from 1 to {MAX_VALIDITY_SECONDS}, found {found}"
    )]
    BadValidity {
        /// Where the value is.
        at: Location,
        /// The item.
        item: String,
        /// The integer as written.
        found: String,
    },
    /// A document or pay-per-view item with neither `content` nor `content_file`.
    #[error("{at}: item `{item}`: missing content: a {kind} needs `content` or `content_file`")]
    MissingContent {
        /// The item's header.
        at: Location,
        /// The item.
        item: String,
        /// Its kind, as the file writes it.
        kind: &'static str,
    },
    /// Both `content` and `content_file`.
    #[error("{at}: item `{item}`: both `content` and `content_file`: give one")]
    TwoContents {
        /// Where the second one is.
        at: Location,
        /// The item.
        item: String,
    },
    /// A content key, or `deliver_with_quote = true`, on a physical good.
    #[error(
        "{at}: item `{item}`: key `{key}` is not for a physical-good: its delivery is an order shipped by another channel"
    )]
    NotForPhysicalGood {
        /// Where the key is.
        at: Location,
        /// The item.
        item: String,
        /// The key.
        key: &'static str,
    },
    /// `content_file` without `media_type`.
    #[error(
        "{at}: item `{item}`: `content_file` needs `media_type` (e.g. \"text/plain; charset=utf-8\")"
    )]
    MissingMediaType {
        /// Where `content_file` is.
        at: Location,
        /// The item.
        item: String,
    },
    /// `media_type` is not `type/subtype` with optional parameters (RFC 6838 §4.2).
    #[error("{at}: item `{item}`: key `media_type`: expected type/subtype, found {found:?}")]
    BadMediaType {
        /// Where the value is.
        at: Location,
        /// The item.
        item: String,
        /// What was given.
        found: String,
    },
    /// `content_file` could not be read.
    #[error("{at}: item `{item}`: cannot read content file {}: {source}", path.display())]
    ContentFile {
        /// Where `content_file` is.
        at: Location,
        /// The item.
        item: String,
        /// The path, resolved against the catalogue's directory.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: io::Error,
    },
    /// `content_file` is not a relative path inside the catalogue's directory.
    #[error(
        "{at}: item `{item}`: content file {found:?} leaves the catalogue's directory: give a relative path without `..`"
    )]
    ContentFileOutside {
        /// Where `content_file` is.
        at: Location,
        /// The item.
        item: String,
        /// What was given.
        found: String,
    },
    /// `content_file` is empty, or larger than [`MAX_CONTENT_LEN`].
    #[error(
        "{at}: item `{item}`: content file {} has {len} bytes: expected 1 to {MAX_CONTENT_LEN}", path.display()
    )]
    ContentFileSize {
        /// Where `content_file` is.
        at: Location,
        /// The item.
        item: String,
        /// The path, resolved against the catalogue's directory.
        path: PathBuf,
        /// Its length (or a lower bound, when too large).
        len: u64,
    },
    /// `identification` is neither `"required"` nor `"none"`.
    #[error(
        "{at}: item `{item}`: key `identification`: expected \"required\" or \"none\", found {found:?}"
    )]
    BadIdentification {
        /// Where the value is.
        at: Location,
        /// The item.
        item: String,
        /// What was given.
        found: String,
    },
    /// `deliver_with_quote = true` on an item for identified users: the server checks
    /// the customer on the order (I), which Fig. 7 does without.
    #[error(
        "{at}: item `{item}`: key `deliver_with_quote` cannot go with identification = \"required\": the customer is checked on the order, which Fig. 7 does without"
    )]
    IdentificationWithQuote {
        /// Where `deliver_with_quote` is.
        at: Location,
        /// The item.
        item: String,
    },
    /// A fixed-price or content key, or `deliver_with_quote = true`, on a payment
    /// service.
    #[error(
        "{at}: item `{item}`: key `{key}` is not for a payment service ({kind}): its amount is a bill's or the reload's, and it delivers a receipt once paid"
    )]
    NotForPaymentService {
        /// Where the key is.
        at: Location,
        /// The item.
        item: String,
        /// The key.
        key: &'static str,
        /// The item's kind, as the file writes it.
        kind: &'static str,
    },
    /// A key of another kind of item (`bill` on an account-reload item, `min_amount`
    /// on a document...).
    #[error("{at}: item `{item}`: key `{key}` is only for {wanted} items, not {kind}")]
    OnlyForKind {
        /// Where the key is.
        at: Location,
        /// The item.
        item: String,
        /// The key.
        key: &'static str,
        /// The kind that has this key, as the file writes it.
        wanted: &'static str,
        /// The item's kind, as the file writes it.
        kind: &'static str,
    },
    /// A bill-payment item without `[[item.bill]]`, or an account-reload item without
    /// `[[item.account]]`: it could never be sold.
    #[error("{at}: item `{item}`: {kind} items need at least one `[[item.{key}]]`")]
    NoEntries {
        /// The item's header, or the empty array.
        at: Location,
        /// The item.
        item: String,
        /// The item's kind, as the file writes it.
        kind: &'static str,
        /// `bill` or `account`.
        key: &'static str,
    },
    /// A bill reference or account number that is not 1 to [`MAX_REFERENCE_LEN`]
    /// printable ASCII characters without a leading or trailing space.
    #[error(
        "{at}: item `{item}`: key `{key}`: bad {key} {found:?}: expected 1 to {MAX_REFERENCE_LEN} printable ASCII characters, without a leading or trailing space"
    )]
    BadReference {
        /// Where the value is.
        at: Location,
        /// The item.
        item: String,
        /// `reference` or `number`.
        key: &'static str,
        /// What was given.
        found: String,
    },
    /// Two bills with the same reference, or two accounts with the same number, in one
    /// item.
    #[error("{at}: item `{item}`: duplicate {key} {found:?}: line {first_line} already has it")]
    DuplicateReference {
        /// Where the second one is.
        at: Location,
        /// The item.
        item: String,
        /// `reference` or `number`.
        key: &'static str,
        /// The reference or number.
        found: String,
        /// The line of the first one.
        first_line: usize,
    },
    /// A bill's `amount`, an account's `balance`, or `min_amount`/`max_amount`, that is
    /// not an amount in the item's currency.
    #[error("{at}: item `{item}`: key `{key}`: bad amount {found:?}: {reason}")]
    BadAmount {
        /// Where the value is (which locates the bill or account).
        at: Location,
        /// The item.
        item: String,
        /// The key.
        key: &'static str,
        /// The string given.
        found: String,
        /// What is wrong with it.
        #[source]
        reason: PriceError,
    },
    /// A zero bill `amount` or `min_amount`: the front-end would take a zero quote for
    /// a free service and skip the payment.
    #[error("{at}: item `{item}`: key `{key}`: expected more than zero, found {found:?}")]
    ZeroAmount {
        /// Where the value is (which locates the bill).
        at: Location,
        /// The item.
        item: String,
        /// The key.
        key: &'static str,
        /// The string given.
        found: String,
    },
    /// `min_amount` above `max_amount`.
    #[error(
        "{at}: item `{item}`: key `max_amount`: {max} is below min_amount {min}: expected min_amount <= max_amount"
    )]
    ReloadRange {
        /// Where `max_amount` is.
        at: Location,
        /// The item.
        item: String,
        /// `min_amount`.
        min: Money,
        /// `max_amount`.
        max: Money,
    },
    /// A bill's `description` that is empty or only blanks.
    #[error("{at}: {place}: key `description` is empty")]
    EmptyDescription {
        /// Where the value is.
        at: Location,
        /// The bill.
        place: Place,
    },
}

/// Reads a decimal price such as `"2.50"` exactly into minor units of `currency`.
///
/// Accepts digits with at most one `.` and at most `currency.exponent` decimals (fewer
/// are padded: `"2.5"` is 250 cents). Refuses signs, blanks, exponents, more decimals
/// than the currency has, and amounts above [`MAX_PRICE_MINOR`].
pub fn parse_price(text: &str, currency: Currency) -> Result<Money, PriceError> {
    if text.is_empty() {
        return Err(PriceError::Empty);
    }
    if text.starts_with('-') {
        return Err(PriceError::Negative);
    }
    let (whole, fraction) = match text.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (text, None),
    };
    let fraction_start = whole.chars().count().saturating_add(2);
    // Every character is checked before the lengths, so that a stray character is
    // named where it is rather than reported as a shape problem.
    for (offset, found) in whole.chars().enumerate() {
        if !found.is_ascii_digit() {
            return Err(PriceError::UnexpectedChar {
                position: offset.saturating_add(1),
                found,
            });
        }
    }
    for (offset, found) in fraction.unwrap_or("").chars().enumerate() {
        if !found.is_ascii_digit() {
            return Err(PriceError::UnexpectedChar {
                position: fraction_start.saturating_add(offset),
                found,
            });
        }
    }
    if whole.is_empty() || fraction.is_some_and(str::is_empty) {
        return Err(PriceError::MissingDigits);
    }
    let fraction = fraction.unwrap_or("");
    let allowed = currency.exponent;
    if fraction.len() > usize::from(allowed) {
        return Err(PriceError::TooManyDecimals {
            decimals: fraction.len(),
            allowed,
            currency,
        });
    }
    // Whole units, then each decimal, then zeros up to the exponent: minor units exactly.
    let padding = usize::from(allowed).saturating_sub(fraction.len());
    let digits = whole
        .bytes()
        .chain(fraction.bytes())
        .chain(std::iter::repeat_n(b'0', padding));
    let mut minor: u64 = 0;
    for digit in digits {
        minor = minor
            .checked_mul(10)
            .and_then(|value| value.checked_add(u64::from(digit.wrapping_sub(b'0'))))
            .filter(|&value| value <= MAX_PRICE_MINOR)
            .ok_or(PriceError::TooLarge)?;
    }
    Ok(Money::new(minor, currency))
}

/// Writes a price as the catalogue does: the decimal with exactly the currency's
/// number of decimals, without the currency (`2.50`, `500`). [`parse_price`] reads it
/// back to the same amount.
pub fn format_price(price: Money) -> String {
    let exponent = usize::from(price.currency.exponent);
    let digits = format!(
        "{:0width$}",
        price.minor,
        width = exponent.saturating_add(1)
    );
    let split = digits.len().saturating_sub(exponent);
    match (digits.get(..split), digits.get(split..)) {
        (Some(whole), Some(fraction)) if exponent > 0 => format!("{whole}.{fraction}"),
        _ => digits,
    }
}

/// Where `content_file`s are read from.
enum Files<'a> {
    /// The catalogue file's directory.
    Directory(&'a Path),
    /// Files built into the binary, by the path the catalogue gives.
    Embedded(&'static [(&'static str, &'static [u8])]),
}

impl Files<'_> {
    /// The path as resolved (for messages) and the file's bytes.
    fn read(&self, relative: &str) -> (PathBuf, Result<Vec<u8>, FileProblem>) {
        match self {
            Files::Directory(base) => {
                let path = base.join(relative);
                let bytes = read_bounded(&path);
                (path, bytes)
            }
            Files::Embedded(files) => {
                let bytes = files
                    .iter()
                    .find(|(name, _)| *name == relative)
                    .map(|(_, bytes)| bytes.to_vec())
                    .ok_or_else(|| {
                        FileProblem::Io(io::Error::new(
                            io::ErrorKind::NotFound,
                            "no such file built into the demo catalogue",
                        ))
                    });
                (PathBuf::from(relative), bytes)
            }
        }
    }
}

/// Why a content file gave no content.
enum FileProblem {
    Io(io::Error),
    /// Empty or too large; the length read (a lower bound when too large).
    Size(u64),
}

/// Reads a file of at most [`MAX_CONTENT_LEN`] bytes, without reading more than one
/// byte past the limit.
fn read_bounded(path: &Path) -> Result<Vec<u8>, FileProblem> {
    let file = std::fs::File::open(path).map_err(FileProblem::Io)?;
    let mut bytes = Vec::new();
    file.take(MAX_CONTENT_LEN.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(FileProblem::Io)?;
    let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    if len == 0 || len > MAX_CONTENT_LEN {
        return Err(FileProblem::Size(len));
    }
    Ok(bytes)
}

/// A TOML text and its name, to turn byte offsets into [`Location`]s; shared with the
/// payer device's configuration reader (`terminal::plan::config`).
pub(crate) struct Source<'a> {
    /// The text.
    pub(crate) text: &'a str,
    /// Its name in messages (a path, or `demo-catalogue.toml (built in)`).
    pub(crate) origin: &'a str,
}

impl Source<'_> {
    /// The line and column (characters) of a byte offset; offsets past the end are
    /// taken as the end.
    pub(crate) fn at(&self, offset: usize) -> Location {
        let bytes = self.text.as_bytes();
        let before = bytes.get(..offset).unwrap_or(bytes);
        let line = before
            .iter()
            .filter(|&&byte| byte == b'\n')
            .count()
            .saturating_add(1);
        let line_start = before
            .iter()
            .rposition(|&byte| byte == b'\n')
            .map_or(0, |newline| newline.saturating_add(1));
        // Characters are counted by their first bytes (not UTF-8 continuation bytes).
        let column = before
            .get(line_start..)
            .unwrap_or_default()
            .iter()
            .filter(|&&byte| byte & 0xC0 != 0x80)
            .count()
            .saturating_add(1);
        Location {
            origin: self.origin.to_owned(),
            line,
            column,
        }
    }

    /// Where a parsed value starts.
    pub(crate) fn at_span<T>(&self, spanned: &Spanned<T>) -> Location {
        self.at(spanned.span().start)
    }
}

/// Reads a catalogue text.
fn parse(text: &str, origin: &str, files: &Files<'_>) -> Result<Catalogue, CatalogueError> {
    let source = Source { text, origin };
    let root = DeTable::parse(text).map_err(|error| CatalogueError::Syntax {
        at: source.at(error.span().map_or(0, |span| span.start)),
        message: error.message().to_owned(),
    })?;
    let root = root.get_ref();
    check_keys(&source, root, &Place::TopLevel, &["provider", "item"])?;

    let provider = root
        .get("provider")
        .ok_or_else(|| CatalogueError::MissingProvider {
            origin: origin.to_owned(),
        })?;
    let provider = ProviderId::from(identifier(&source, &Place::TopLevel, "provider", provider)?);

    let no_items = || CatalogueError::NoItems {
        origin: origin.to_owned(),
    };
    let items_value = root.get("item").ok_or_else(no_items)?;
    let DeValue::Array(elements) = items_value.get_ref() else {
        return Err(CatalogueError::ItemNotTable {
            at: source.at_span(items_value),
            found: items_value.get_ref().type_str(),
        });
    };
    if elements.is_empty() {
        return Err(no_items());
    }

    let mut items = Vec::with_capacity(elements.len());
    let mut index = BTreeMap::new();
    let mut first_offsets = BTreeMap::new();
    for (position, element) in elements.iter().enumerate() {
        let DeValue::Table(table) = element.get_ref() else {
            return Err(CatalogueError::ItemNotTable {
                at: source.at_span(element),
                found: element.get_ref().type_str(),
            });
        };
        let item = parse_item(&source, files, position.saturating_add(1), element, table)?;
        // Offsets, not lines: a line costs a scan of the text, paid only on error.
        if let Some(&first_offset) = first_offsets.get(&item.id) {
            let at = table
                .get("id")
                .map_or_else(|| source.at_span(element), |id| source.at_span(id));
            return Err(CatalogueError::DuplicateId {
                at,
                item: item.id.0.into(),
                first_line: source.at(first_offset).line,
            });
        }
        first_offsets.insert(item.id.clone(), element.span().start);
        index.insert(item.id.clone(), position);
        items.push(item);
    }
    Ok(Catalogue {
        provider,
        origin: origin.to_owned(),
        items,
        index,
    })
}

/// The first key of `table` (in file order) that `allowed` does not list, with its
/// byte offset; shared with the payer device's configuration reader.
pub(crate) fn first_unknown_key(table: &DeTable<'_>, allowed: &[&str]) -> Option<(String, usize)> {
    table
        .iter()
        .map(|(key, _)| key)
        .filter(|key| {
            let name: &str = key.get_ref();
            !allowed.contains(&name)
        })
        .min_by_key(|key| key.span().start)
        .map(|key| (key.get_ref().to_string(), key.span().start))
}

/// Refuses the first key (in file order) that `allowed` does not list.
fn check_keys(
    source: &Source<'_>,
    table: &DeTable<'_>,
    place: &Place,
    allowed: &[&str],
) -> Result<(), CatalogueError> {
    match first_unknown_key(table, allowed) {
        None => Ok(()),
        Some((key, offset)) => Err(CatalogueError::UnknownKey {
            at: source.at(offset),
            place: place.clone(),
            key,
            expected: allowed.join(", "),
        }),
    }
}

/// A string value, or [`CatalogueError::WrongType`].
fn string<'v>(
    source: &Source<'_>,
    place: &Place,
    key: &'static str,
    value: &'v Spanned<DeValue<'_>>,
) -> Result<&'v str, CatalogueError> {
    value
        .get_ref()
        .as_str()
        .ok_or_else(|| CatalogueError::WrongType {
            at: source.at_span(value),
            place: place.clone(),
            key,
            expected: "a string",
            found: value.get_ref().type_str(),
        })
}

/// A boolean value, or [`CatalogueError::WrongType`].
fn boolean(
    source: &Source<'_>,
    place: &Place,
    key: &'static str,
    value: &Spanned<DeValue<'_>>,
) -> Result<bool, CatalogueError> {
    value
        .get_ref()
        .as_bool()
        .ok_or_else(|| CatalogueError::WrongType {
            at: source.at_span(value),
            place: place.clone(),
            key,
            expected: "true or false",
            found: value.get_ref().type_str(),
        })
}

/// An identifier: 1 to [`MAX_ID_LEN`] ASCII letters, digits, `-`, `_`, `.` — safe in
/// messages, file names and command lines.
fn identifier(
    source: &Source<'_>,
    place: &Place,
    key: &'static str,
    value: &Spanned<DeValue<'_>>,
) -> Result<String, CatalogueError> {
    let text = string(source, place, key, value)?;
    let valid = !text.is_empty()
        && text.len() <= MAX_ID_LEN
        && text
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.'));
    if valid {
        Ok(text.to_owned())
    } else {
        Err(CatalogueError::BadId {
            at: source.at_span(value),
            place: place.clone(),
            key,
            found: text.to_owned(),
        })
    }
}

/// Whether a media type is `type/subtype` with optional `; parameter`s (RFC 6838 §4.2:
/// restricted-name characters on both sides of the slash).
fn is_media_type(text: &str) -> bool {
    let essence = text.split(';').next().unwrap_or("").trim();
    let restricted = |part: &str| {
        !part.is_empty()
            && part.len() <= 127
            && part.bytes().all(|byte| {
                byte.is_ascii_alphanumeric()
                    || matches!(
                        byte,
                        b'!' | b'#' | b'$' | b'&' | b'-' | b'^' | b'_' | b'.' | b'+'
                    )
            })
    };
    match essence.split_once('/') {
        Some((kind, subtype)) => {
            restricted(kind) && restricted(subtype) && !text.chars().any(char::is_control)
        }
        None => false,
    }
}

/// Reads one `[[item]]` table; `position` counts items from 1.
fn parse_item(
    source: &Source<'_>,
    files: &Files<'_>,
    position: usize,
    element: &Spanned<DeValue<'_>>,
    table: &DeTable<'_>,
) -> Result<CatalogueItem, CatalogueError> {
    // The item's name for messages: its id if it has a string one, else its position.
    let place = Place::Item {
        index: position,
        id: table
            .get("id")
            .and_then(|id| id.get_ref().as_str())
            .map(str::to_owned),
    };
    check_keys(source, table, &place, ITEM_KEYS)?;
    let required = |key: &'static str| {
        table.get(key).ok_or_else(|| CatalogueError::MissingKey {
            at: source.at_span(element),
            place: place.clone(),
            key,
        })
    };

    let id_value = required("id")?;
    let id = identifier(source, &place, "id", id_value)?;
    let item = || id.clone();

    let designation_value = required("designation")?;
    let designation = string(source, &place, "designation", designation_value)?;
    if designation.trim().is_empty() {
        return Err(CatalogueError::EmptyText {
            at: source.at_span(designation_value),
            item: item(),
            key: "designation",
        });
    }

    let kind_value = required("kind")?;
    let kind_text = string(source, &place, "kind", kind_value)?;
    let kind = ServiceKind::from_name(kind_text).ok_or_else(|| CatalogueError::UnknownKind {
        at: source.at_span(kind_value),
        item: item(),
        found: kind_text.to_owned(),
    })?;

    let currency_value = required("currency")?;
    let currency_text = string(source, &place, "currency", currency_value)?;
    let currency =
        Currency::from_alpha(currency_text).ok_or_else(|| CatalogueError::UnknownCurrency {
            at: source.at_span(currency_value),
            item: item(),
            found: currency_text.to_owned(),
        })?;

    let validity_value = required("validity_seconds")?;
    let DeValue::Integer(validity_integer) = validity_value.get_ref() else {
        return Err(CatalogueError::WrongType {
            at: source.at_span(validity_value),
            place: place.clone(),
            key: "validity_seconds",
            expected: "an integer",
            found: validity_value.get_ref().type_str(),
        });
    };
    let validity_seconds = u64::from_str_radix(validity_integer.as_str(), validity_integer.radix())
        .ok()
        .filter(|seconds| (1..=MAX_VALIDITY_SECONDS).contains(seconds))
        .ok_or_else(|| CatalogueError::BadValidity {
            at: source.at_span(validity_value),
            item: item(),
            found: validity_integer.to_string(),
        })?;

    let deliver_with_quote = match table.get("deliver_with_quote") {
        Some(value) => boolean(source, &place, "deliver_with_quote", value)?,
        None => false,
    };
    let available = match table.get("available") {
        Some(value) => boolean(source, &place, "available", value)?,
        None => true,
    };
    // Claim 16. A string rather than a boolean, so that the format can grow other
    // levels (an identification that is only offered) without a second key.
    let identification_required = match table.get("identification") {
        Some(value) => match string(source, &place, "identification", value)? {
            "required" => true,
            "none" => false,
            other => {
                return Err(CatalogueError::BadIdentification {
                    at: source.at_span(value),
                    item: item(),
                    found: other.to_owned(),
                });
            }
        },
        None => false,
    };
    if identification_required && deliver_with_quote {
        // Fig. 7 hands the service over with the quote, before anyone is identified;
        // the server could not refuse an order without a customer.
        let at = table
            .get("deliver_with_quote")
            .map_or_else(|| source.at_span(element), |value| source.at_span(value));
        return Err(CatalogueError::IdentificationWithQuote { at, item: item() });
    }

    let entry = ItemTable {
        source,
        place: &place,
        header: element,
        table,
    };
    refuse_other_kinds_keys(&entry, &id, kind)?;
    let offer = match kind {
        ServiceKind::Document | ServiceKind::PayPerView => Offer {
            content: Some(parse_content(&entry, files, &id, kind)?),
            ..Offer::priced(fixed_price(&entry, &id, currency)?)
        },
        ServiceKind::PayPerTime => {
            if deliver_with_quote {
                // Fig. 7 hands the service over before the first unit is paid.
                let at = table
                    .get("deliver_with_quote")
                    .map_or_else(|| source.at_span(element), |value| source.at_span(value));
                return Err(CatalogueError::OnlyForKind {
                    at,
                    item: item(),
                    key: "deliver_with_quote",
                    wanted: "document or pay-per-view",
                    kind: kind.name(),
                });
            }
            let price = fixed_price(&entry, &id, currency)?;
            if price.is_zero() {
                let at = table
                    .get("price")
                    .map_or_else(|| source.at_span(element), |value| source.at_span(value));
                return Err(CatalogueError::BadMetering {
                    at,
                    item: item(),
                    key: "price",
                    expected: "a price above zero for each unit",
                    found: "0".into(),
                });
            }
            let unit = required("unit_seconds")?;
            let unit_seconds =
                whole_number(source, &item(), "unit_seconds", unit, MAX_UNIT_SECONDS)?;
            let max_units = match table.get("max_units") {
                Some(value) => whole_number(source, &item(), "max_units", value, MAX_UNITS)?,
                None => DEFAULT_MAX_UNITS,
            };
            Offer {
                content: Some(parse_content(&entry, files, &id, kind)?),
                metering: Some(UnitBilling {
                    unit_seconds,
                    max_units,
                }),
                ..Offer::priced(price)
            }
        }
        ServiceKind::PhysicalGood => {
            let price = fixed_price(&entry, &id, currency)?;
            // The first of them in file order.
            if let Some((key, value)) = first_of(table, CONTENT_KEYS) {
                return Err(CatalogueError::NotForPhysicalGood {
                    at: source.at_span(value),
                    item: item(),
                    key,
                });
            }
            if deliver_with_quote {
                // Fig. 7 hands the service over before payment; an order placed then
                // would ship unpaid goods.
                let at = table
                    .get("deliver_with_quote")
                    .map_or_else(|| source.at_span(element), |value| source.at_span(value));
                return Err(CatalogueError::NotForPhysicalGood {
                    at,
                    item: item(),
                    key: "deliver_with_quote",
                });
            }
            Offer::priced(price)
        }
        ServiceKind::BillPayment | ServiceKind::AccountReload => {
            if let Some((key, value)) = first_of(table, FIXED_PRICE_KEYS) {
                return Err(CatalogueError::NotForPaymentService {
                    at: source.at_span(value),
                    item: item(),
                    key,
                    kind: kind.name(),
                });
            }
            if deliver_with_quote {
                // Fig. 7 would hand the receipt over before the payment: the bill
                // would be settled, or the account credited, unpaid.
                let at = table
                    .get("deliver_with_quote")
                    .map_or_else(|| source.at_span(element), |value| source.at_span(value));
                return Err(CatalogueError::NotForPaymentService {
                    at,
                    item: item(),
                    key: "deliver_with_quote",
                    kind: kind.name(),
                });
            }
            if kind == ServiceKind::BillPayment {
                parse_bills(&entry, &id, currency)?
            } else {
                parse_reload(&entry, &id, currency)?
            }
        }
    };

    let content_sha256 = offer.content.as_ref().map(|content| {
        use sha2::Digest;
        sha2::Sha256::digest(&content.bytes).into()
    });
    Ok(CatalogueItem {
        id: ServiceId::from(id),
        designation: designation.into(),
        kind,
        currency,
        price: offer.price,
        validity_seconds,
        deliver_with_quote,
        available,
        identification_required,
        content: offer.content,
        content_sha256,
        bills: offer.bills,
        accounts: offer.accounts,
        reload_range: offer.reload_range,
        metering: offer.metering,
    })
}

/// An integer from 1 to `max` for `key`.
fn whole_number(
    source: &Source<'_>,
    item: &str,
    key: &'static str,
    value: &toml::Spanned<DeValue<'_>>,
    max: u64,
) -> Result<u32, CatalogueError> {
    let found = match value.get_ref() {
        DeValue::Integer(integer) => integer.to_string(),
        other => other.type_str().to_owned(),
    };
    let number = match value.get_ref() {
        DeValue::Integer(integer) => u64::from_str_radix(integer.as_str(), integer.radix()).ok(),
        _ => None,
    };
    number
        .filter(|number| (1..=max).contains(number))
        .and_then(|number| u32::try_from(number).ok())
        .ok_or_else(|| CatalogueError::BadMetering {
            at: source.at_span(value),
            item: item.to_owned(),
            key,
            expected: if key == "unit_seconds" {
                "whole seconds from 1 to 86400"
            } else {
                "a whole number of units from 1 to 10000"
            },
            found,
        })
}

/// What an item sells, by kind: its price, and its content, bills or accounts.
struct Offer {
    /// The fixed price, or the least a payment service can be quoted at.
    price: Money,
    content: Option<Content>,
    bills: Vec<Bill>,
    accounts: Vec<Account>,
    reload_range: Option<(Money, Money)>,
    metering: Option<UnitBilling>,
}

impl Offer {
    /// At this price, with nothing else yet.
    fn priced(price: Money) -> Offer {
        Offer {
            price,
            content: None,
            bills: Vec::new(),
            accounts: Vec::new(),
            reload_range: None,
            metering: None,
        }
    }
}

/// The first key of `keys`, in file order, that the table has.
fn first_of<'t, 'i>(
    table: &'t DeTable<'i>,
    keys: &[&'static str],
) -> Option<(&'static str, &'t Spanned<DeValue<'i>>)> {
    keys.iter()
        .filter_map(|&key| table.get(key).map(|value| (key, value)))
        .min_by_key(|(_, value)| value.span().start)
}

/// Refuses the first key (in file order) that belongs to another kind of item: `bill`
/// anywhere but on a bill-payment item, the reload keys anywhere but on an
/// account-reload item.
fn refuse_other_kinds_keys(
    entry: &ItemTable<'_, '_>,
    id: &str,
    kind: ServiceKind,
) -> Result<(), CatalogueError> {
    let foreign = [
        (ServiceKind::BillPayment, BILL_ITEM_KEYS),
        (ServiceKind::AccountReload, RELOAD_ITEM_KEYS),
        (ServiceKind::PayPerTime, METERED_ITEM_KEYS),
    ]
    .into_iter()
    .filter(|(owner, _)| *owner != kind)
    .filter_map(|(owner, keys)| first_of(entry.table, keys).map(|(key, value)| (owner, key, value)))
    .min_by_key(|(_, _, value)| value.span().start);
    match foreign {
        None => Ok(()),
        Some((owner, key, value)) => Err(CatalogueError::OnlyForKind {
            at: entry.source.at_span(value),
            item: id.to_owned(),
            key,
            wanted: owner.name(),
            kind: kind.name(),
        }),
    }
}

/// The `price` of a document, pay-per-view item or physical good.
fn fixed_price(
    entry: &ItemTable<'_, '_>,
    id: &str,
    currency: Currency,
) -> Result<Money, CatalogueError> {
    let ItemTable {
        source,
        place,
        header,
        table,
    } = entry;
    let price_value = table
        .get("price")
        .ok_or_else(|| CatalogueError::MissingKey {
            at: source.at_span(header),
            place: (*place).clone(),
            key: "price",
        })?;
    // A float would already have lost the exact amount: the price is a string.
    let price_text = price_value
        .get_ref()
        .as_str()
        .ok_or_else(|| CatalogueError::WrongType {
            at: source.at_span(price_value),
            place: (*place).clone(),
            key: "price",
            expected: "a decimal string such as \"2.50\"",
            found: price_value.get_ref().type_str(),
        })?;
    parse_price(price_text, currency).map_err(|reason| CatalogueError::BadPrice {
        at: source.at_span(price_value),
        item: id.to_owned(),
        found: price_text.to_owned(),
        reason,
    })
}

/// A table of an item (the item's own, or one of its bills or accounts) and what
/// messages about its values need.
struct Values<'a> {
    source: &'a Source<'a>,
    place: &'a Place,
    /// The item's `id`.
    item: &'a str,
}

impl Values<'_> {
    /// An amount key (`amount`, `balance`, `min_amount`, `max_amount`): a decimal
    /// string in `currency`, read as [`parse_price`] reads prices.
    fn amount(
        &self,
        key: &'static str,
        value: &Spanned<DeValue<'_>>,
        currency: Currency,
    ) -> Result<Money, CatalogueError> {
        let text = value
            .get_ref()
            .as_str()
            .ok_or_else(|| CatalogueError::WrongType {
                at: self.source.at_span(value),
                place: self.place.clone(),
                key,
                expected: "a decimal string such as \"2.50\"",
                found: value.get_ref().type_str(),
            })?;
        parse_price(text, currency).map_err(|reason| CatalogueError::BadAmount {
            at: self.source.at_span(value),
            item: self.item.to_owned(),
            key,
            found: text.to_owned(),
            reason,
        })
    }

    /// An amount that must be more than zero: a bill's, or the least reload. A zero
    /// quote would tell the front-end the service is free, and it would skip the
    /// payment.
    fn positive_amount(
        &self,
        key: &'static str,
        value: &Spanned<DeValue<'_>>,
        currency: Currency,
    ) -> Result<Money, CatalogueError> {
        let money = self.amount(key, value, currency)?;
        if money.is_zero() {
            return Err(CatalogueError::ZeroAmount {
                at: self.source.at_span(value),
                item: self.item.to_owned(),
                key,
                found: value.get_ref().as_str().unwrap_or_default().to_owned(),
            });
        }
        Ok(money)
    }

    /// A bill reference or account number: 1 to [`MAX_REFERENCE_LEN`] printable ASCII
    /// characters (space to `~`), without a leading or trailing space — what a user can
    /// type, and compare, from what is printed.
    fn reference(
        &self,
        key: &'static str,
        value: &Spanned<DeValue<'_>>,
    ) -> Result<String, CatalogueError> {
        let text = string(self.source, self.place, key, value)?;
        let valid = (1..=MAX_REFERENCE_LEN).contains(&text.len())
            && text
                .bytes()
                .all(|byte| byte == b' ' || byte.is_ascii_graphic())
            && !text.starts_with(' ')
            && !text.ends_with(' ');
        if valid {
            Ok(text.to_owned())
        } else {
            Err(CatalogueError::BadReference {
                at: self.source.at_span(value),
                item: self.item.to_owned(),
                key,
                found: text.to_owned(),
            })
        }
    }
}

/// One table of an item's `bill` or `account` array.
struct EntryTable<'t, 'i> {
    /// Its position in the array, from 1.
    index: usize,
    /// Its header (`[[item.bill]]`), or the whole table when inline.
    header: &'t Spanned<DeValue<'i>>,
    table: &'t DeTable<'i>,
}

/// The tables of an item's `bill` or `account` array (`[[item.bill]]`); at least one.
fn entry_tables<'t, 'i>(
    entry: &ItemTable<'t, 'i>,
    id: &str,
    key: &'static str,
    kind: ServiceKind,
) -> Result<Vec<EntryTable<'t, 'i>>, CatalogueError> {
    let ItemTable {
        source,
        place,
        header,
        table,
    } = entry;
    let expected = if key == "bill" {
        "an array of tables ([[item.bill]])"
    } else {
        "an array of tables ([[item.account]])"
    };
    let none = |at: Location| CatalogueError::NoEntries {
        at,
        item: id.to_owned(),
        kind: kind.name(),
        key,
    };
    let Some(value) = table.get(key) else {
        return Err(none(source.at_span(header)));
    };
    let wrong_type = |at: &Spanned<DeValue<'_>>| CatalogueError::WrongType {
        at: source.at_span(at),
        place: (*place).clone(),
        key,
        expected,
        found: at.get_ref().type_str(),
    };
    let DeValue::Array(elements) = value.get_ref() else {
        return Err(wrong_type(value));
    };
    if elements.is_empty() {
        return Err(none(source.at_span(value)));
    }
    elements
        .iter()
        .enumerate()
        .map(|(offset, element)| match element.get_ref() {
            DeValue::Table(table) => Ok(EntryTable {
                index: offset.saturating_add(1),
                header: element,
                table,
            }),
            _ => Err(wrong_type(element)),
        })
        .collect()
}

/// A bill or account table with its name (`reference`, `number`) read, checked and
/// unique within the item, and its keys checked.
struct NamedEntry<'t, 'i> {
    /// Where messages about it point.
    place: Place,
    /// Its header (`[[item.bill]]`), or the whole table when inline.
    header: &'t Spanned<DeValue<'i>>,
    table: &'t DeTable<'i>,
    /// The name.
    name: String,
}

impl<'t, 'i> NamedEntry<'t, 'i> {
    /// A key the entry must have.
    fn required(
        &self,
        source: &Source<'_>,
        key: &'static str,
    ) -> Result<&'t Spanned<DeValue<'i>>, CatalogueError> {
        self.table
            .get(key)
            .ok_or_else(|| CatalogueError::MissingKey {
                at: source.at_span(self.header),
                place: self.place.clone(),
                key,
            })
    }

    /// How its values are read.
    fn values<'a>(&'a self, source: &'a Source<'a>, item: &'a str) -> Values<'a> {
        Values {
            source,
            place: &self.place,
            item,
        }
    }
}

/// How one kind of named entry is laid out: bills, or accounts.
struct EntryLayout {
    /// The item's array key (`bill`, `account`).
    array: &'static str,
    /// The kind of item that may have it.
    kind: ServiceKind,
    /// The key that names an entry (`reference`, `number`).
    name: &'static str,
    /// Every key an entry may have.
    keys: &'static [&'static str],
    /// Where an entry sits, for messages.
    place: fn(Box<EntryPlace>) -> Place,
}

const BILL_LAYOUT: EntryLayout = EntryLayout {
    array: "bill",
    kind: ServiceKind::BillPayment,
    name: "reference",
    keys: BILL_KEYS,
    place: Place::Bill,
};

const ACCOUNT_LAYOUT: EntryLayout = EntryLayout {
    array: "account",
    kind: ServiceKind::AccountReload,
    name: "number",
    keys: ACCOUNT_KEYS,
    place: Place::Account,
};

/// The item's bills or accounts: at least one, each with its keys checked and its name
/// read; a name used twice is refused at its second use, naming the first's line.
fn named_entries<'t, 'i>(
    entry: &ItemTable<'t, 'i>,
    id: &str,
    layout: &EntryLayout,
) -> Result<Vec<NamedEntry<'t, 'i>>, CatalogueError> {
    let source = entry.source;
    let mut first_offsets = BTreeMap::new();
    let mut named = Vec::new();
    for EntryTable {
        index,
        header,
        table,
    } in entry_tables(entry, id, layout.array, layout.kind)?
    {
        let place = (layout.place)(Box::new(EntryPlace {
            item: id.to_owned(),
            index,
            name: table
                .get(layout.name)
                .and_then(|value| value.get_ref().as_str())
                .map(str::to_owned),
        }));
        check_keys(source, table, &place, layout.keys)?;
        let mut entry = NamedEntry {
            place,
            header,
            table,
            name: String::new(),
        };
        let name_value = entry.required(source, layout.name)?;
        let name = entry
            .values(source, id)
            .reference(layout.name, name_value)?;
        if let Some(&first_offset) = first_offsets.get(&name) {
            return Err(CatalogueError::DuplicateReference {
                at: source.at_span(name_value),
                item: id.to_owned(),
                key: layout.name,
                found: name,
                first_line: source.at(first_offset).line,
            });
        }
        first_offsets.insert(name.clone(), name_value.span().start);
        entry.name = name;
        named.push(entry);
    }
    Ok(named)
}

/// Reads a bill-payment item's `[[item.bill]]` tables.
fn parse_bills(
    entry: &ItemTable<'_, '_>,
    id: &str,
    currency: Currency,
) -> Result<Offer, CatalogueError> {
    let source = entry.source;
    let mut bills: Vec<Bill> = Vec::new();
    for named in named_entries(entry, id, &BILL_LAYOUT)? {
        let amount = named.values(source, id).positive_amount(
            "amount",
            named.required(source, "amount")?,
            currency,
        )?;
        let description = match named.table.get("description") {
            Some(value) => {
                let text = string(source, &named.place, "description", value)?;
                if text.trim().is_empty() {
                    return Err(CatalogueError::EmptyDescription {
                        at: source.at_span(value),
                        place: named.place,
                    });
                }
                Some(text.to_owned())
            }
            None => None,
        };
        bills.push(Bill {
            reference: named.name,
            amount,
            description,
        });
    }
    // Listings show a payment service from its smallest bill; never zero. There is
    // one, as `entry_tables` gave at least one table: answered rather than assumed.
    let Some(least) = bills
        .iter()
        .map(Bill::amount)
        .min_by_key(|amount| amount.minor)
    else {
        return Err(CatalogueError::NoEntries {
            at: source.at_span(entry.header),
            item: id.to_owned(),
            kind: ServiceKind::BillPayment.name(),
            key: "bill",
        });
    };
    Ok(Offer {
        bills,
        ..Offer::priced(least)
    })
}

/// Reads an account-reload item's `min_amount`, `max_amount` and `[[item.account]]`
/// tables.
fn parse_reload(
    entry: &ItemTable<'_, '_>,
    id: &str,
    currency: Currency,
) -> Result<Offer, CatalogueError> {
    let ItemTable {
        source,
        place,
        header,
        table,
    } = entry;
    let item_key = |key: &'static str| {
        table.get(key).ok_or_else(|| CatalogueError::MissingKey {
            at: source.at_span(header),
            place: (*place).clone(),
            key,
        })
    };
    let values = Values {
        source,
        place,
        item: id,
    };
    let min = values.positive_amount("min_amount", item_key("min_amount")?, currency)?;
    let max_value = item_key("max_amount")?;
    let max = values.amount("max_amount", max_value, currency)?;
    if max.minor < min.minor {
        return Err(CatalogueError::ReloadRange {
            at: source.at_span(max_value),
            item: id.to_owned(),
            min,
            max,
        });
    }

    let mut accounts: Vec<Account> = Vec::new();
    for named in named_entries(entry, id, &ACCOUNT_LAYOUT)? {
        let prepaid = boolean(
            source,
            &named.place,
            "prepaid",
            named.required(source, "prepaid")?,
        )?;
        // Zero is a balance like any other: an empty prepaid account, a settled one.
        let balance = named.values(source, id).amount(
            "balance",
            named.required(source, "balance")?,
            currency,
        )?;
        accounts.push(Account {
            number: named.name,
            prepaid,
            balance,
        });
    }
    Ok(Offer {
        accounts,
        reload_range: Some((min, max)),
        ..Offer::priced(min)
    })
}

/// An `[[item]]` table and what messages about it need.
struct ItemTable<'a, 'i> {
    source: &'a Source<'a>,
    place: &'a Place,
    /// The table's header (`[[item]]`), or the whole table when inline.
    header: &'a Spanned<DeValue<'i>>,
    table: &'a DeTable<'i>,
}

/// Reads a document's or pay-per-view item's content: inline `content` or
/// `content_file`, and `media_type`.
fn parse_content(
    entry: &ItemTable<'_, '_>,
    files: &Files<'_>,
    id: &str,
    kind: ServiceKind,
) -> Result<Content, CatalogueError> {
    let ItemTable {
        source,
        place,
        header,
        table,
    } = entry;
    let media_type = match table.get("media_type") {
        Some(value) => {
            let text = string(source, place, "media_type", value)?;
            if !is_media_type(text) {
                return Err(CatalogueError::BadMediaType {
                    at: source.at_span(value),
                    item: id.to_owned(),
                    found: text.to_owned(),
                });
            }
            Some(Text::from(text))
        }
        None => None,
    };
    match (table.get("content"), table.get("content_file")) {
        (Some(inline), Some(file)) => {
            let second = if file.span().start > inline.span().start {
                file
            } else {
                inline
            };
            Err(CatalogueError::TwoContents {
                at: source.at_span(second),
                item: id.to_owned(),
            })
        }
        (None, None) => Err(CatalogueError::MissingContent {
            at: source.at_span(header),
            item: id.to_owned(),
            kind: kind.name(),
        }),
        (Some(inline), None) => {
            let text = string(source, place, "content", inline)?;
            if text.trim().is_empty() {
                return Err(CatalogueError::EmptyText {
                    at: source.at_span(inline),
                    item: id.to_owned(),
                    key: "content",
                });
            }
            Ok(Content {
                media_type: media_type.unwrap_or_else(|| DEFAULT_INLINE_MEDIA_TYPE.into()),
                bytes: text.as_bytes().into(),
            })
        }
        (None, Some(file)) => {
            let relative = string(source, place, "content_file", file)?;
            let at = source.at_span(file);
            if relative.trim().is_empty() {
                return Err(CatalogueError::EmptyText {
                    at,
                    item: id.to_owned(),
                    key: "content_file",
                });
            }
            // Content is served to anyone who pays: a catalogue may only publish files
            // of its own directory, never /etc/... or ../../ whatever.
            let inside = Path::new(relative)
                .components()
                .all(|component| matches!(component, std::path::Component::Normal(_)));
            if !inside {
                return Err(CatalogueError::ContentFileOutside {
                    at,
                    item: id.to_owned(),
                    found: relative.to_owned(),
                });
            }
            // A file's bytes say nothing reliable about their type: it must be given.
            let Some(media_type) = media_type else {
                return Err(CatalogueError::MissingMediaType {
                    at,
                    item: id.to_owned(),
                });
            };
            let (path, bytes) = files.read(relative);
            let bytes = bytes.map_err(|problem| match problem {
                FileProblem::Io(source) => CatalogueError::ContentFile {
                    at: at.clone(),
                    item: id.to_owned(),
                    path: path.clone(),
                    source,
                },
                FileProblem::Size(len) => CatalogueError::ContentFileSize {
                    at: at.clone(),
                    item: id.to_owned(),
                    path: path.clone(),
                    len,
                },
            })?;
            Ok(Content {
                media_type,
                bytes: bytes.into(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A valid document item's keys after `id`, to build cases from.
    const DOC: &str = "designation = \"Doc\"\nkind = \"document\"\nprice = \"1.00\"\ncurrency = \"EUR\"\nvalidity_seconds = 60\ncontent = \"text\"\n";

    fn from_str(text: &str) -> Result<Catalogue, CatalogueError> {
        Catalogue::from_toml_str(text, Path::new("."))
    }

    /// A fresh directory under the system's temporary directory.
    fn scratch_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("telepay-provider-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn catalogue_errors_name_file_line_item_and_key() {
        type Check = fn(&CatalogueError) -> bool;
        let doc_a = format!("provider = \"p\"\n[[item]]\nid = \"a\"\n{DOC}");
        let cases: Vec<(String, Check, &str)> = vec![
            (
                "[[item]]\nid = \"a\"\n".into(),
                |e| matches!(e, CatalogueError::MissingProvider { .. }),
                "<string>: missing top-level key `provider`: expected provider = \"NAME\"",
            ),
            (
                "provider = 3\n".into(),
                |e| {
                    matches!(
                        e,
                        CatalogueError::WrongType {
                            place: Place::TopLevel,
                            key: "provider",
                            ..
                        }
                    )
                },
                "<string>:1:12: top level: key `provider`: expected a string, found integer",
            ),
            (
                "provider = \"demo publisher\"\n".into(),
                |e| {
                    matches!(
                        e,
                        CatalogueError::BadId {
                            key: "provider",
                            ..
                        }
                    )
                },
                "<string>:1:12: top level: key `provider`: bad identifier \"demo publisher\": expected 1 to 64 ASCII letters, digits, `-`, `_` or `.`",
            ),
            (
                "provider = \"p\"\ntitle = \"x\"\n".into(),
                |e| {
                    matches!(
                        e,
                        CatalogueError::UnknownKey {
                            place: Place::TopLevel,
                            ..
                        }
                    )
                },
                "<string>:2:1: top level: unknown key `title`: expected one of provider, item",
            ),
            (
                "provider = \"p\"\n".into(),
                |e| matches!(e, CatalogueError::NoItems { .. }),
                "<string>: no `[[item]]`: a catalogue offers at least one service",
            ),
            (
                "provider = \"p\"\nitem = []\n".into(),
                |e| matches!(e, CatalogueError::NoItems { .. }),
                "<string>: no `[[item]]`: a catalogue offers at least one service",
            ),
            (
                "provider = \"p\"\nitem = 3\n".into(),
                |e| {
                    matches!(
                        e,
                        CatalogueError::ItemNotTable {
                            found: "integer",
                            ..
                        }
                    )
                },
                "<string>:2:8: `item` must be an array of tables (`[[item]]`), found integer",
            ),
            (
                "provider = \"p\"\nitem = [\"a\"]\n".into(),
                |e| {
                    matches!(
                        e,
                        CatalogueError::ItemNotTable {
                            found: "string",
                            ..
                        }
                    )
                },
                "<string>:2:9: `item` must be an array of tables (`[[item]]`), found string",
            ),
            (
                format!("provider = \"p\"\n[[item]]\n{DOC}"),
                |e| {
                    matches!(
                        e,
                        CatalogueError::MissingKey {
                            key: "id",
                            place: Place::Item { index: 1, id: None },
                            ..
                        }
                    )
                },
                "<string>:2:1: item #1: missing key `id`",
            ),
            (
                format!("{doc_a}pricee = \"2\"\n"),
                |e| matches!(e, CatalogueError::UnknownKey { .. }),
                "<string>:10:1: item `a`: unknown key `pricee`: expected one of id, designation, kind, price, currency, validity_seconds, deliver_with_quote, available, identification, content, content_file, media_type, bill, min_amount, max_amount, account, unit_seconds, max_units",
            ),
            (
                "provider = \"p\"\n[[item]]\nid = \"a b\"\n".into(),
                |e| matches!(e, CatalogueError::BadId { key: "id", .. }),
                "<string>:3:6: item `a b`: key `id`: bad identifier \"a b\": expected 1 to 64 ASCII letters, digits, `-`, `_` or `.`",
            ),
            (
                "provider = \"p\"\n[[item]]\nid = 7\n".into(),
                |e| matches!(e, CatalogueError::WrongType { key: "id", .. }),
                "<string>:3:6: item #1: key `id`: expected a string, found integer",
            ),
            (
                "provider = \"p\"\n[[item]]\nid = \"a\"\ndesignation = 3\n".into(),
                |e| {
                    matches!(
                        e,
                        CatalogueError::WrongType {
                            key: "designation",
                            ..
                        }
                    )
                },
                "<string>:4:15: item `a`: key `designation`: expected a string, found integer",
            ),
            (
                "provider = \"p\"\n[[item]]\nid = \"a\"\ndesignation = \"  \"\n".into(),
                |e| {
                    matches!(
                        e,
                        CatalogueError::EmptyText {
                            key: "designation",
                            ..
                        }
                    )
                },
                "<string>:4:15: item `a`: key `designation` is empty",
            ),
            (
                doc_a.replace("\"document\"", "\"video\""),
                |e| matches!(e, CatalogueError::UnknownKind { .. }),
                "<string>:5:8: item `a`: key `kind`: unknown kind \"video\": expected document, pay-per-view, physical-good, bill-payment or account-reload",
            ),
            (
                doc_a.replace("\"EUR\"", "\"XEU\""),
                |e| matches!(e, CatalogueError::UnknownCurrency { .. }),
                "<string>:7:12: item `a`: key `currency`: unknown currency \"XEU\": expected EUR, USD, GBP or JPY",
            ),
            (
                doc_a.replace("\"1.00\"", "\"2.505\""),
                |e| {
                    matches!(
                        e,
                        CatalogueError::BadPrice {
                            reason: PriceError::TooManyDecimals { .. },
                            ..
                        }
                    )
                },
                "<string>:6:9: item `a`: key `price`: bad price \"2.505\": 3 decimals, but EUR has 2",
            ),
            (
                doc_a.replace("\"1.00\"", "\"-1\""),
                |e| {
                    matches!(
                        e,
                        CatalogueError::BadPrice {
                            reason: PriceError::Negative,
                            ..
                        }
                    )
                },
                "<string>:6:9: item `a`: key `price`: bad price \"-1\": negative: a price is zero or more",
            ),
            (
                doc_a.replace("\"1.00\"", "\"1000000000000\""),
                |e| {
                    matches!(
                        e,
                        CatalogueError::BadPrice {
                            reason: PriceError::TooLarge,
                            ..
                        }
                    )
                },
                "<string>:6:9: item `a`: key `price`: bad price \"1000000000000\": more than 999999999999 minor units, the most EMV's n12 amount holds",
            ),
            (
                doc_a.replace("\"1.00\"", "2.5"),
                |e| {
                    matches!(
                        e,
                        CatalogueError::WrongType {
                            key: "price",
                            found: "float",
                            ..
                        }
                    )
                },
                "<string>:6:9: item `a`: key `price`: expected a decimal string such as \"2.50\", found float",
            ),
            (
                doc_a.replace("= 60", "= 0"),
                |e| matches!(e, CatalogueError::BadValidity { .. }),
                "<string>:8:20: item `a`: key `validity_seconds`: expected whole seconds from 1 to 31536000, found 0",
            ),
            (
                doc_a.replace("= 60", "= -5"),
                |e| matches!(e, CatalogueError::BadValidity { .. }),
                "<string>:8:20: item `a`: key `validity_seconds`: expected whole seconds from 1 to 31536000, found -5",
            ),
            (
                doc_a.replace("= 60", "= 31536001"),
                |e| matches!(e, CatalogueError::BadValidity { .. }),
                "<string>:8:20: item `a`: key `validity_seconds`: expected whole seconds from 1 to 31536000, found 31536001",
            ),
            (
                doc_a.replace("= 60", "= \"60\""),
                |e| {
                    matches!(
                        e,
                        CatalogueError::WrongType {
                            key: "validity_seconds",
                            ..
                        }
                    )
                },
                "<string>:8:20: item `a`: key `validity_seconds`: expected an integer, found string",
            ),
            (
                format!("{doc_a}available = \"yes\"\n"),
                |e| {
                    matches!(
                        e,
                        CatalogueError::WrongType {
                            key: "available",
                            ..
                        }
                    )
                },
                "<string>:10:13: item `a`: key `available`: expected true or false, found string",
            ),
            (
                format!("{doc_a}[[item]]\nid = \"a\"\n{DOC}"),
                |e| matches!(e, CatalogueError::DuplicateId { first_line: 2, .. }),
                "<string>:11:6: item `a`: duplicate id: line 2 already has it",
            ),
            (
                doc_a.replace("content = \"text\"\n", ""),
                |e| {
                    matches!(
                        e,
                        CatalogueError::MissingContent {
                            kind: "document",
                            ..
                        }
                    )
                },
                "<string>:2:1: item `a`: missing content: a document needs `content` or `content_file`",
            ),
            (
                doc_a.replace("\"text\"", "\"\""),
                |e| matches!(e, CatalogueError::EmptyText { key: "content", .. }),
                "<string>:9:11: item `a`: key `content` is empty",
            ),
            (
                format!("{doc_a}content_file = \"x.txt\"\n"),
                |e| matches!(e, CatalogueError::TwoContents { .. }),
                "<string>:10:16: item `a`: both `content` and `content_file`: give one",
            ),
            (
                doc_a.replace("\"document\"", "\"physical-good\""),
                |e| matches!(e, CatalogueError::NotForPhysicalGood { key: "content", .. }),
                "<string>:9:11: item `a`: key `content` is not for a physical-good: its delivery is an order shipped by another channel",
            ),
            (
                doc_a
                    .replace("\"document\"", "\"physical-good\"")
                    .replace("content = \"text\"", "media_type = \"text/plain\""),
                |e| {
                    matches!(
                        e,
                        CatalogueError::NotForPhysicalGood {
                            key: "media_type",
                            ..
                        }
                    )
                },
                "<string>:9:14: item `a`: key `media_type` is not for a physical-good: its delivery is an order shipped by another channel",
            ),
            (
                doc_a
                    .replace("\"document\"", "\"physical-good\"")
                    .replace("content = \"text\"", "deliver_with_quote = true"),
                |e| {
                    matches!(
                        e,
                        CatalogueError::NotForPhysicalGood {
                            key: "deliver_with_quote",
                            ..
                        }
                    )
                },
                "<string>:9:22: item `a`: key `deliver_with_quote` is not for a physical-good: its delivery is an order shipped by another channel",
            ),
            (
                doc_a.replace("content = \"text\"", "content_file = \"x.bin\""),
                |e| matches!(e, CatalogueError::MissingMediaType { .. }),
                "<string>:9:16: item `a`: `content_file` needs `media_type` (e.g. \"text/plain; charset=utf-8\")",
            ),
            (
                format!("{doc_a}media_type = \"text\"\n"),
                |e| matches!(e, CatalogueError::BadMediaType { .. }),
                "<string>:10:14: item `a`: key `media_type`: expected type/subtype, found \"text\"",
            ),
            (
                format!("{doc_a}media_type = \"text/plain extra\"\n"),
                |e| matches!(e, CatalogueError::BadMediaType { .. }),
                "<string>:10:14: item `a`: key `media_type`: expected type/subtype, found \"text/plain extra\"",
            ),
            (
                doc_a.replace("content = \"text\"", "content_file = \" \""),
                |e| {
                    matches!(
                        e,
                        CatalogueError::EmptyText {
                            key: "content_file",
                            ..
                        }
                    )
                },
                "<string>:9:16: item `a`: key `content_file` is empty",
            ),
            // Columns count characters, not bytes: `é` is two bytes, one column.
            (
                "provider = \"p\"\nitem = [{ id = \"é\" }]\n".into(),
                |e| matches!(e, CatalogueError::BadId { .. }),
                "<string>:2:16: item `é`: key `id`: bad identifier \"é\": expected 1 to 64 ASCII letters, digits, `-`, `_` or `.`",
            ),
            (
                "provider = \"p\"\nitem = [{ designation = \"é\", id = 1 }]\n".into(),
                |e| matches!(e, CatalogueError::WrongType { key: "id", .. }),
                "<string>:2:35: item #1: key `id`: expected a string, found integer",
            ),
        ];
        for (text, is_variant, message) in &cases {
            let error = from_str(text).expect_err(text);
            assert!(is_variant(&error), "{text}\nunexpected variant {error:?}");
            assert_eq!(error.to_string(), *message, "{text}");
        }
    }

    #[test]
    fn syntax_errors_give_the_position_the_parser_stopped_at() {
        let error = from_str("provider = \"p\"\n[[item]\nid = \"a\"\n").unwrap_err();
        let CatalogueError::Syntax { at, message } = &error else {
            panic!("expected a syntax error, got {error:?}");
        };
        assert_eq!((at.origin.as_str(), at.line), ("<string>", 2));
        assert!(!message.is_empty());
        assert!(error.to_string().starts_with("<string>:2:"), "{error}");
        assert!(error.to_string().contains("not valid TOML"), "{error}");

        // TOML itself refuses a key given twice.
        let error = from_str("provider = \"p\"\nprovider = \"q\"\n").unwrap_err();
        assert!(
            matches!(&error, CatalogueError::Syntax { at, .. } if at.line == 2),
            "{error:?}"
        );
    }

    #[test]
    fn content_files_never_leave_the_catalogue_directory() {
        // A file next to the catalogue's directory, which a `..` would reach.
        let dir = scratch_dir("content-confined");
        std::fs::create_dir_all(dir.join("shop")).unwrap();
        std::fs::write(dir.join("secret.txt"), b"not for sale").unwrap();
        let text = |file: &str| {
            format!(
                "provider = \"p\"\n[[item]]\nid = \"a\"\ndesignation = \"A\"\nkind = \"document\"\nprice = \"1\"\ncurrency = \"EUR\"\nvalidity_seconds = 60\nmedia_type = \"text/plain\"\ncontent_file = \"{file}\"\n"
            )
        };
        let secret = dir.join("secret.txt");
        for file in [
            "../secret.txt",
            "./../secret.txt",
            "docs/../../secret.txt",
            secret.to_str().unwrap(),
            "/etc/hostname",
        ] {
            match Catalogue::from_toml_str(&text(file), &dir.join("shop")).unwrap_err() {
                CatalogueError::ContentFileOutside { at, item, found } => {
                    assert_eq!((at.line, item.as_str(), found.as_str()), (10, "a", file));
                }
                other => panic!("{file}: expected ContentFileOutside, got {other:?}"),
            }
        }
    }

    #[test]
    fn content_files_resolve_against_the_catalogue_directory() {
        let dir = scratch_dir("content-files");
        std::fs::create_dir_all(dir.join("docs")).unwrap();
        std::fs::write(dir.join("docs/a.pdf"), b"%PDF-1.7 tiny").unwrap();
        std::fs::write(dir.join("empty.txt"), b"").unwrap();
        let text = "provider = \"p\"\n[[item]]\nid = \"a\"\ndesignation = \"A\"\nkind = \"document\"\nprice = \"1\"\ncurrency = \"EUR\"\nvalidity_seconds = 60\nmedia_type = \"application/pdf\"\ncontent_file = \"docs/a.pdf\"\n";
        let path = dir.join("catalogue.toml");
        std::fs::write(&path, text).unwrap();

        let loaded = Catalogue::load(&path).unwrap();
        assert_eq!(loaded.origin(), path.display().to_string());
        let content = loaded
            .get(&ServiceId::from("a"))
            .unwrap()
            .content()
            .unwrap();
        assert_eq!(content.media_type, "application/pdf");
        assert_eq!(content.bytes.as_slice(), b"%PDF-1.7 tiny");
        assert_eq!(
            Catalogue::from_toml_str(text, &dir).unwrap().items(),
            loaded.items()
        );

        // A missing file, named as resolved.
        let missing = text.replace("docs/a.pdf", "docs/b.pdf");
        match Catalogue::from_toml_str(&missing, &dir).unwrap_err() {
            CatalogueError::ContentFile {
                at,
                item,
                path,
                source,
            } => {
                assert_eq!((at.line, at.column, item.as_str()), (10, 16, "a"));
                assert_eq!(path, dir.join("docs/b.pdf"));
                assert_eq!(source.kind(), io::ErrorKind::NotFound);
            }
            other => panic!("expected ContentFile, got {other:?}"),
        }
        // An empty file.
        let empty = text.replace("docs/a.pdf", "empty.txt");
        let error = Catalogue::from_toml_str(&empty, &dir).unwrap_err();
        assert!(
            matches!(&error, CatalogueError::ContentFileSize { len: 0, .. }),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            format!(
                "<string>:10:16: item `a`: content file {} has 0 bytes: expected 1 to 4194304",
                dir.join("empty.txt").display()
            )
        );
        // A file over the limit is refused without being read whole.
        let big = dir.join("big.bin");
        std::fs::write(&big, vec![0u8; (MAX_CONTENT_LEN + 10) as usize]).unwrap();
        let error =
            Catalogue::from_toml_str(&text.replace("docs/a.pdf", "big.bin"), &dir).unwrap_err();
        assert!(
            matches!(&error, CatalogueError::ContentFileSize { len, .. } if *len == MAX_CONTENT_LEN + 1),
            "{error:?}"
        );

        // An unreadable catalogue file.
        let error = Catalogue::load(dir.join("absent.toml")).unwrap_err();
        assert!(
            matches!(&error, CatalogueError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound),
            "{error:?}"
        );
        assert!(
            error.to_string().starts_with(&format!(
                "{}: cannot read the catalogue:",
                dir.join("absent.toml").display()
            )),
            "{error}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn optional_keys_take_their_defaults() {
        let catalogue =
            from_str(&format!("provider = \"p\"\n[[item]]\nid = \"a\"\n{DOC}")).unwrap();
        assert_eq!(catalogue.provider(), &ProviderId::from("p"));
        let item = catalogue.get(&ServiceId::from("a")).unwrap();
        assert!(item.available());
        assert!(!item.deliver_with_quote());
        assert_eq!(item.validity_seconds(), 60);
        assert_eq!(item.price(), Money::new(100, Currency::EUR));
        assert_eq!(
            item.content(),
            Some(&Content {
                media_type: DEFAULT_INLINE_MEDIA_TYPE.into(),
                bytes: b"text".to_vec().into(),
            })
        );
        assert_eq!(catalogue.get(&ServiceId::from("b")), None);
    }

    #[test]
    fn prices_are_read_exactly_in_minor_units() {
        use PriceError::*;
        let eur = Currency::EUR;
        let jpy = Currency::JPY;
        let too_many = |decimals, currency: Currency| TooManyDecimals {
            decimals,
            allowed: currency.exponent,
            currency,
        };
        let cases: &[(&str, Currency, Result<u64, PriceError>)] = &[
            ("2.50", eur, Ok(250)),
            ("2.5", eur, Ok(250)),
            ("2", eur, Ok(200)),
            ("0", eur, Ok(0)),
            ("0.00", eur, Ok(0)),
            ("0.07", eur, Ok(7)),
            ("19.90", eur, Ok(1990)),
            ("007.10", eur, Ok(710)),
            ("9999999999.99", eur, Ok(999_999_999_999)),
            ("10000000000.00", eur, Err(TooLarge)),
            ("99999999999999999999999999", eur, Err(TooLarge)),
            ("500", jpy, Ok(500)),
            ("999999999999", jpy, Ok(999_999_999_999)),
            ("1000000000000", jpy, Err(TooLarge)),
            ("5.0", jpy, Err(too_many(1, jpy))),
            ("2.505", eur, Err(too_many(3, eur))),
            ("", eur, Err(Empty)),
            ("-1", eur, Err(Negative)),
            ("-0", eur, Err(Negative)),
            (
                "+1",
                eur,
                Err(UnexpectedChar {
                    position: 1,
                    found: '+',
                }),
            ),
            (
                " 1",
                eur,
                Err(UnexpectedChar {
                    position: 1,
                    found: ' ',
                }),
            ),
            (
                "1 ",
                eur,
                Err(UnexpectedChar {
                    position: 2,
                    found: ' ',
                }),
            ),
            (
                "1,50",
                eur,
                Err(UnexpectedChar {
                    position: 2,
                    found: ',',
                }),
            ),
            (
                "1e3",
                eur,
                Err(UnexpectedChar {
                    position: 2,
                    found: 'e',
                }),
            ),
            (
                "1.2.3",
                eur,
                Err(UnexpectedChar {
                    position: 4,
                    found: '.',
                }),
            ),
            (
                "1.5€",
                eur,
                Err(UnexpectedChar {
                    position: 4,
                    found: '€',
                }),
            ),
            (
                "٣",
                eur,
                Err(UnexpectedChar {
                    position: 1,
                    found: '٣',
                }),
            ),
            (".5", eur, Err(MissingDigits)),
            ("2.", eur, Err(MissingDigits)),
            (".", eur, Err(MissingDigits)),
        ];
        for (text, currency, expected) in cases {
            let got = parse_price(text, *currency).map(|money| {
                assert_eq!(money.currency, *currency);
                money.minor
            });
            assert_eq!(&got, expected, "{text:?} in {}", currency.alpha());
        }
    }

    #[test]
    fn prices_are_written_with_the_currency_decimals() {
        assert_eq!(format_price(Money::new(250, Currency::EUR)), "2.50");
        assert_eq!(format_price(Money::new(5, Currency::EUR)), "0.05");
        assert_eq!(format_price(Money::new(0, Currency::EUR)), "0.00");
        assert_eq!(format_price(Money::new(500, Currency::JPY)), "500");
        assert_eq!(format_price(Money::new(0, Currency::JPY)), "0");
    }

    #[test]
    fn the_demo_catalogue_has_every_kind_of_item() {
        let demo = Catalogue::demo().unwrap();
        assert_eq!(demo.provider(), &ProviderId::from("demo-publisher"));
        let items = demo.items();

        // The first item is `telepay purchase`'s default: a paid document.
        let first = &items[0];
        assert_eq!(first.designation(), "Annual market report 2026");
        assert_eq!(first.kind(), ServiceKind::Document);
        assert_eq!(first.price(), Money::new(250, Currency::EUR));
        assert!(first.available() && !first.deliver_with_quote());

        let count = |wanted: &dyn Fn(&CatalogueItem) -> bool| {
            items.iter().filter(|item| wanted(item)).count()
        };
        assert!(count(&|item| item.kind() == ServiceKind::Document && !item.is_free()) >= 2);
        assert_eq!(count(&|item| item.kind() == ServiceKind::PayPerView), 2);
        assert_eq!(
            count(&|item| item.kind() == ServiceKind::PayPerView && item.deliver_with_quote()),
            1
        );
        // The library's hours, and the customer area for identified users.
        assert_eq!(count(&|item| item.is_free()), 2);
        assert_eq!(count(&|item| !item.available()), 1);
        let goods: Vec<_> = items
            .iter()
            .filter(|item| item.kind() == ServiceKind::PhysicalGood)
            .collect();
        assert_eq!(goods.len(), 1);
        assert_eq!(goods[0].price(), Money::new(1990, Currency::EUR));
        assert_eq!(goods[0].content(), None);

        // Content is small, meaningful text.
        for item in items
            .iter()
            .filter(|item| matches!(item.kind(), ServiceKind::Document | ServiceKind::PayPerView))
        {
            let content = item.content().unwrap();
            assert!((64..=1024).contains(&content.bytes.len()), "{}", item.id());
            assert!(std::str::from_utf8(&content.bytes).is_ok(), "{}", item.id());
            assert!(content.media_type.starts_with("text/"), "{}", item.id());
        }
    }

    #[test]
    fn the_demo_catalogue_sells_payment_services_and_an_identified_only_area() {
        let demo = Catalogue::demo().unwrap();
        let item = |id: &str| demo.get(&ServiceId::from(id)).unwrap();
        let eur = |minor| Money::new(minor, Currency::EUR);

        let water = item("city-water-bill");
        assert_eq!(water.kind(), ServiceKind::BillPayment);
        assert_eq!(water.designation(), "City water board bill");
        assert_eq!(water.validity_seconds(), 600);
        let bills: Vec<_> = water
            .bills()
            .iter()
            .map(|bill| (bill.reference(), bill.amount()))
            .collect();
        assert_eq!(
            bills,
            [("W-2026-1107", eur(4280)), ("W-2026-1108", eur(1735))]
        );
        assert!(
            water
                .bills()
                .iter()
                .all(|bill| bill.description().is_some())
        );
        assert_eq!(water.bill("W-2026-1108").map(Bill::amount), Some(eur(1735)));
        assert_eq!(water.bill("w-2026-1108"), None);
        // No fixed price, and never free: listed from its smallest bill.
        assert_eq!(water.fixed_price(), None);
        assert!(!water.is_free() && water.is_payment_service());
        assert_eq!(water.price(), eur(1735));
        assert_eq!((water.content(), water.reload_range()), (None, None));
        assert!(water.accounts().is_empty() && !water.identification_required());

        let phone = item("prepaid-phone-credit");
        assert_eq!(phone.kind(), ServiceKind::AccountReload);
        assert_eq!(phone.reload_range(), Some((eur(500), eur(10_000))));
        assert_eq!(phone.price(), eur(500));
        let account = phone.account("0612345678").unwrap();
        assert!(account.is_prepaid());
        assert_eq!(account.opening_balance(), AccountBalance::Credit(eur(320)));
        assert!(!phone.identification_required() && phone.bills().is_empty());

        let transit = item("transit-pass-account");
        assert_eq!(
            transit.designation(),
            "Transit pass account (billed monthly)"
        );
        assert_eq!(transit.reload_range(), Some((eur(100), eur(20_000))));
        assert!(transit.identification_required());
        let account = &transit.accounts()[0];
        assert_eq!(
            (account.number(), account.is_prepaid()),
            ("TP-884211", false)
        );
        assert_eq!(account.opening_balance(), AccountBalance::Owed(eur(2540)));
        assert!(transit.static_info().identification_required);

        let area = item("customer-area");
        assert!(area.is_free() && area.identification_required());
        assert_eq!(
            area.static_info(),
            StaticInfo {
                designation: "Customer area: your subscriptions and invoices".into(),
                kind: ServiceKind::Document,
                identification_required: true,
                unit_billing: None,
            }
        );
        // Everything else is sold to anyone.
        let identified: Vec<_> = demo
            .items()
            .iter()
            .filter(|item| item.identification_required())
            .map(|item| item.id().0.as_str())
            .collect();
        assert_eq!(identified, ["transit-pass-account", "customer-area"]);
    }

    /// A valid bill-payment catalogue: line 8 is `[[item.bill]]`, 9 its reference,
    /// 10 its amount.
    const BILLS: &str = "provider = \"p\"\n[[item]]\nid = \"w\"\ndesignation = \"Water\"\nkind = \"bill-payment\"\ncurrency = \"EUR\"\nvalidity_seconds = 60\n[[item.bill]]\nreference = \"B-1\"\namount = \"4.20\"\n";

    /// A valid account-reload catalogue: lines 8 and 9 are the limits, 10 is
    /// `[[item.account]]`, 11 to 13 its number, prepaid and balance.
    const RELOAD: &str = "provider = \"p\"\n[[item]]\nid = \"r\"\ndesignation = \"Reload\"\nkind = \"account-reload\"\ncurrency = \"EUR\"\nvalidity_seconds = 60\nmin_amount = \"5.00\"\nmax_amount = \"100.00\"\n[[item.account]]\nnumber = \"A-1\"\nprepaid = true\nbalance = \"3.20\"\n";

    /// A pay-per-time item: 0.10 EUR per 30 s.
    const METERED: &str = "provider = \"p\"\n[[item]]\nid = \"r\"\ndesignation = \"Radio\"\nkind = \"pay-per-time\"\nprice = \"0.10\"\ncurrency = \"EUR\"\nvalidity_seconds = 60\nunit_seconds = 30\ncontent = \"ticket\"\n";

    #[test]
    fn pay_per_time_items_read_their_unit_and_limit() {
        let catalogue = from_str(METERED).unwrap();
        let item = &catalogue.items()[0];
        assert_eq!(
            item.metering(),
            Some(UnitBilling {
                unit_seconds: 30,
                max_units: DEFAULT_MAX_UNITS
            })
        );
        assert_eq!(item.static_info().unit_billing, item.metering());
        let limited = from_str(&format!("{METERED}max_units = 5\n")).unwrap();
        assert_eq!(limited.items()[0].metering().map(|m| m.max_units), Some(5));
        // Another kind has no unit.
        let doc = from_str(&format!("provider = \"p\"\n[[item]]\nid = \"a\"\n{DOC}")).unwrap();
        assert_eq!(doc.items()[0].metering(), None);
    }

    #[test]
    fn pay_per_time_errors_name_the_item_and_the_key() {
        let cases: Vec<(String, &str)> = vec![
            (
                METERED.replace("unit_seconds = 30\n", ""),
                "<string>:2:1: item `r`: missing key `unit_seconds`",
            ),
            (
                METERED.replace("unit_seconds = 30", "unit_seconds = 0"),
                "<string>:9:16: item `r`: key `unit_seconds`: expected whole seconds from 1 to 86400, found 0",
            ),
            (
                METERED.replace("unit_seconds = 30", "unit_seconds = 86401"),
                "<string>:9:16: item `r`: key `unit_seconds`: expected whole seconds from 1 to 86400, found 86401",
            ),
            (
                format!("{METERED}max_units = 10001\n"),
                "<string>:11:13: item `r`: key `max_units`: expected a whole number of units from 1 to 10000, found 10001",
            ),
            (
                format!("{METERED}max_units = \"5\"\n"),
                "<string>:11:13: item `r`: key `max_units`: expected a whole number of units from 1 to 10000, found string",
            ),
            (
                METERED.replace("price = \"0.10\"", "price = \"0\""),
                "<string>:6:9: item `r`: key `price`: expected a price above zero for each unit, found 0",
            ),
            (
                format!("provider = \"p\"\n[[item]]\nid = \"a\"\n{DOC}unit_seconds = 30\n"),
                "<string>:10:16: item `a`: key `unit_seconds` is only for pay-per-time items, not document",
            ),
        ];
        for (text, expected) in cases {
            let error = from_str(&text).unwrap_err();
            assert_eq!(error.to_string(), expected, "{text}");
        }
        let with_quote = from_str(&format!("{METERED}deliver_with_quote = true\n")).unwrap_err();
        assert!(
            matches!(
                with_quote,
                CatalogueError::OnlyForKind {
                    key: "deliver_with_quote",
                    ..
                }
            ),
            "{with_quote}"
        );
    }

    #[test]
    fn payment_service_and_identification_errors_name_the_item_the_entry_and_the_key() {
        type Check = fn(&CatalogueError) -> bool;
        let doc_a = format!("provider = \"p\"\n[[item]]\nid = \"a\"\n{DOC}");
        // A key added to the item itself, before its first sub-table.
        let in_item = |base: &str, key: &str| {
            base.replacen(
                "validity_seconds = 60\n",
                &format!("validity_seconds = 60\n{key}\n"),
                1,
            )
        };
        let bill = |line: &str, with: &str| BILLS.replace(line, with);
        let reload = |line: &str, with: &str| RELOAD.replace(line, with);
        fn bill_place(e: &CatalogueError, want_index: usize, want_reference: Option<&str>) -> bool {
            matches!(e, CatalogueError::MissingKey { place: Place::Bill(entry), .. }
                if entry.item == "w" && entry.index == want_index && entry.name.as_deref() == want_reference)
        }
        let cases: Vec<(String, Check, &str)> = vec![
            // Claim 16.
            (
                format!("{doc_a}identification = \"yes\"\n"),
                |e| matches!(e, CatalogueError::BadIdentification { found, .. } if found == "yes"),
                "<string>:10:18: item `a`: key `identification`: expected \"required\" or \"none\", found \"yes\"",
            ),
            (
                format!("{doc_a}identification = true\n"),
                |e| {
                    matches!(
                        e,
                        CatalogueError::WrongType {
                            key: "identification",
                            found: "boolean",
                            ..
                        }
                    )
                },
                "<string>:10:18: item `a`: key `identification`: expected a string, found boolean",
            ),
            (
                format!("{doc_a}deliver_with_quote = true\nidentification = \"required\"\n"),
                |e| matches!(e, CatalogueError::IdentificationWithQuote { item, .. } if item == "a"),
                "<string>:10:22: item `a`: key `deliver_with_quote` cannot go with identification = \"required\": the customer is checked on the order, which Fig. 7 does without",
            ),
            // A document still needs its price.
            (
                doc_a.replace("price = \"1.00\"\n", ""),
                |e| matches!(e, CatalogueError::MissingKey { key: "price", .. }),
                "<string>:2:1: item `a`: missing key `price`",
            ),
            // Keys of other kinds.
            (
                in_item(BILLS, "price = \"1.00\""),
                |e| {
                    matches!(
                        e,
                        CatalogueError::NotForPaymentService {
                            key: "price",
                            kind: "bill-payment",
                            ..
                        }
                    )
                },
                "<string>:8:9: item `w`: key `price` is not for a payment service (bill-payment): its amount is a bill's or the reload's, and it delivers a receipt once paid",
            ),
            (
                in_item(BILLS, "content = \"x\""),
                |e| {
                    matches!(
                        e,
                        CatalogueError::NotForPaymentService { key: "content", .. }
                    )
                },
                "<string>:8:11: item `w`: key `content` is not for a payment service (bill-payment): its amount is a bill's or the reload's, and it delivers a receipt once paid",
            ),
            (
                in_item(BILLS, "deliver_with_quote = true"),
                |e| {
                    matches!(
                        e,
                        CatalogueError::NotForPaymentService {
                            key: "deliver_with_quote",
                            ..
                        }
                    )
                },
                "<string>:8:22: item `w`: key `deliver_with_quote` is not for a payment service (bill-payment): its amount is a bill's or the reload's, and it delivers a receipt once paid",
            ),
            (
                in_item(RELOAD, "media_type = \"text/plain\""),
                |e| {
                    matches!(
                        e,
                        CatalogueError::NotForPaymentService {
                            key: "media_type",
                            kind: "account-reload",
                            ..
                        }
                    )
                },
                "<string>:8:14: item `r`: key `media_type` is not for a payment service (account-reload): its amount is a bill's or the reload's, and it delivers a receipt once paid",
            ),
            (
                in_item(BILLS, "min_amount = \"1\""),
                |e| {
                    matches!(
                        e,
                        CatalogueError::OnlyForKind {
                            key: "min_amount",
                            wanted: "account-reload",
                            kind: "bill-payment",
                            ..
                        }
                    )
                },
                "<string>:8:14: item `w`: key `min_amount` is only for account-reload items, not bill-payment",
            ),
            (
                format!("{RELOAD}[[item.bill]]\nreference = \"B\"\namount = \"1\"\n"),
                |e| {
                    matches!(
                        e,
                        CatalogueError::OnlyForKind {
                            key: "bill",
                            wanted: "bill-payment",
                            kind: "account-reload",
                            ..
                        }
                    )
                },
                "<string>:14:1: item `r`: key `bill` is only for bill-payment items, not account-reload",
            ),
            (
                format!("{doc_a}max_amount = \"9\"\n"),
                |e| {
                    matches!(
                        e,
                        CatalogueError::OnlyForKind {
                            key: "max_amount",
                            kind: "document",
                            ..
                        }
                    )
                },
                "<string>:10:14: item `a`: key `max_amount` is only for account-reload items, not document",
            ),
            (
                format!("{doc_a}[[item.account]]\nnumber = \"A\"\n"),
                |e| {
                    matches!(
                        e,
                        CatalogueError::OnlyForKind {
                            key: "account",
                            kind: "document",
                            ..
                        }
                    )
                },
                "<string>:10:1: item `a`: key `account` is only for account-reload items, not document",
            ),
            // Bills.
            (
                BILLS
                    .split("[[item.bill]]")
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
                |e| {
                    matches!(
                        e,
                        CatalogueError::NoEntries {
                            kind: "bill-payment",
                            key: "bill",
                            ..
                        }
                    )
                },
                "<string>:2:1: item `w`: bill-payment items need at least one `[[item.bill]]`",
            ),
            (
                in_item(
                    BILLS.split("[[item.bill]]").next().unwrap_or_default(),
                    "bill = []",
                ),
                |e| matches!(e, CatalogueError::NoEntries { key: "bill", .. }),
                "<string>:8:8: item `w`: bill-payment items need at least one `[[item.bill]]`",
            ),
            (
                in_item(
                    BILLS.split("[[item.bill]]").next().unwrap_or_default(),
                    "bill = 3",
                ),
                |e| {
                    matches!(
                        e,
                        CatalogueError::WrongType {
                            key: "bill",
                            found: "integer",
                            ..
                        }
                    )
                },
                "<string>:8:8: item `w`: key `bill`: expected an array of tables ([[item.bill]]), found integer",
            ),
            (
                in_item(
                    BILLS.split("[[item.bill]]").next().unwrap_or_default(),
                    "bill = [\"B-1\"]",
                ),
                |e| {
                    matches!(
                        e,
                        CatalogueError::WrongType {
                            key: "bill",
                            found: "string",
                            ..
                        }
                    )
                },
                "<string>:8:9: item `w`: key `bill`: expected an array of tables ([[item.bill]]), found string",
            ),
            (
                bill("reference = \"B-1\"\n", ""),
                |e| bill_place(e, 1, None),
                "<string>:8:1: item `w`, bill #1: missing key `reference`",
            ),
            (
                bill("amount = \"4.20\"\n", ""),
                |e| bill_place(e, 1, Some("B-1")),
                "<string>:8:1: item `w`, bill `B-1`: missing key `amount`",
            ),
            (
                format!("{BILLS}amout = \"1\"\n"),
                |e| {
                    matches!(
                        e,
                        CatalogueError::UnknownKey {
                            place: Place::Bill(entry),
                            ..
                        } if entry.index == 1 && entry.name.as_deref() == Some("B-1")
                    )
                },
                "<string>:11:1: item `w`, bill `B-1`: unknown key `amout`: expected one of reference, amount, description",
            ),
            (
                bill("\"B-1\"", "\"\""),
                |e| matches!(e, CatalogueError::BadReference { key: "reference", found, .. } if found.is_empty()),
                "<string>:9:13: item `w`: key `reference`: bad reference \"\": expected 1 to 32 printable ASCII characters, without a leading or trailing space",
            ),
            (
                bill("\"B-1\"", "\" B-1\""),
                |e| {
                    matches!(
                        e,
                        CatalogueError::BadReference {
                            key: "reference",
                            ..
                        }
                    )
                },
                "<string>:9:13: item `w`: key `reference`: bad reference \" B-1\": expected 1 to 32 printable ASCII characters, without a leading or trailing space",
            ),
            (
                bill("\"B-1\"", "\"B-1\\t\""),
                |e| {
                    matches!(
                        e,
                        CatalogueError::BadReference {
                            key: "reference",
                            ..
                        }
                    )
                },
                "<string>:9:13: item `w`: key `reference`: bad reference \"B-1\\t\": expected 1 to 32 printable ASCII characters, without a leading or trailing space",
            ),
            (
                bill("\"B-1\"", "\"FACTURE-É1\""),
                |e| {
                    matches!(
                        e,
                        CatalogueError::BadReference {
                            key: "reference",
                            ..
                        }
                    )
                },
                "<string>:9:13: item `w`: key `reference`: bad reference \"FACTURE-É1\": expected 1 to 32 printable ASCII characters, without a leading or trailing space",
            ),
            (
                bill("\"B-1\"", "\"123456789012345678901234567890123\""),
                |e| {
                    matches!(
                        e,
                        CatalogueError::BadReference {
                            key: "reference",
                            ..
                        }
                    )
                },
                "<string>:9:13: item `w`: key `reference`: bad reference \"123456789012345678901234567890123\": expected 1 to 32 printable ASCII characters, without a leading or trailing space",
            ),
            (
                bill("\"B-1\"", "7"),
                |e| {
                    matches!(
                        e,
                        CatalogueError::WrongType {
                            key: "reference",
                            place: Place::Bill(entry),
                            ..
                        } if entry.index == 1 && entry.name.is_none()
                    )
                },
                "<string>:9:13: item `w`, bill #1: key `reference`: expected a string, found integer",
            ),
            (
                format!("{BILLS}[[item.bill]]\nreference = \"B-1\"\namount = \"1\"\n"),
                |e| matches!(e, CatalogueError::DuplicateReference { key: "reference", first_line: 9, found, .. } if found == "B-1"),
                "<string>:12:13: item `w`: duplicate reference \"B-1\": line 9 already has it",
            ),
            (
                bill("\"4.20\"", "\"0.00\""),
                |e| matches!(e, CatalogueError::ZeroAmount { key: "amount", .. }),
                "<string>:10:10: item `w`: key `amount`: expected more than zero, found \"0.00\"",
            ),
            (
                bill("\"4.20\"", "\"4.205\""),
                |e| {
                    matches!(
                        e,
                        CatalogueError::BadAmount {
                            key: "amount",
                            reason: PriceError::TooManyDecimals { decimals: 3, .. },
                            ..
                        }
                    )
                },
                "<string>:10:10: item `w`: key `amount`: bad amount \"4.205\": 3 decimals, but EUR has 2",
            ),
            (
                bill("\"4.20\"", "4.2"),
                |e| {
                    matches!(
                        e,
                        CatalogueError::WrongType {
                            key: "amount",
                            found: "float",
                            ..
                        }
                    )
                },
                "<string>:10:10: item `w`, bill `B-1`: key `amount`: expected a decimal string such as \"2.50\", found float",
            ),
            (
                BILLS.replace("\"EUR\"", "\"JPY\""),
                |e| {
                    matches!(
                        e,
                        CatalogueError::BadAmount {
                            reason: PriceError::TooManyDecimals { allowed: 0, .. },
                            ..
                        }
                    )
                },
                "<string>:10:10: item `w`: key `amount`: bad amount \"4.20\": 2 decimals, but JPY has 0",
            ),
            (
                format!("{BILLS}description = \" \"\n"),
                |e| {
                    matches!(
                        e,
                        CatalogueError::EmptyDescription {
                            place: Place::Bill(_),
                            ..
                        }
                    )
                },
                "<string>:11:15: item `w`, bill `B-1`: key `description` is empty",
            ),
            // Reloads and accounts.
            (
                reload("min_amount = \"5.00\"\n", ""),
                |e| {
                    matches!(
                        e,
                        CatalogueError::MissingKey {
                            key: "min_amount",
                            ..
                        }
                    )
                },
                "<string>:2:1: item `r`: missing key `min_amount`",
            ),
            (
                reload("max_amount = \"100.00\"\n", ""),
                |e| {
                    matches!(
                        e,
                        CatalogueError::MissingKey {
                            key: "max_amount",
                            ..
                        }
                    )
                },
                "<string>:2:1: item `r`: missing key `max_amount`",
            ),
            (
                reload("\"5.00\"", "\"0\""),
                |e| {
                    matches!(
                        e,
                        CatalogueError::ZeroAmount {
                            key: "min_amount",
                            item,
                            ..
                        } if item == "r"
                    )
                },
                "<string>:8:14: item `r`: key `min_amount`: expected more than zero, found \"0\"",
            ),
            (
                reload("\"100.00\"", "\"4.99\""),
                |e| matches!(e, CatalogueError::ReloadRange { min, max, .. } if min.minor == 500 && max.minor == 499),
                "<string>:9:14: item `r`: key `max_amount`: 4.99 EUR is below min_amount 5.00 EUR: expected min_amount <= max_amount",
            ),
            (
                reload("\"100.00\"", "\"1e3\""),
                |e| {
                    matches!(
                        e,
                        CatalogueError::BadAmount {
                            key: "max_amount",
                            reason: PriceError::UnexpectedChar {
                                position: 2,
                                found: 'e'
                            },
                            ..
                        }
                    )
                },
                "<string>:9:14: item `r`: key `max_amount`: bad amount \"1e3\": unexpected 'e' at character 2: expected a digit or one `.`",
            ),
            (
                RELOAD
                    .split("[[item.account]]")
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
                |e| {
                    matches!(
                        e,
                        CatalogueError::NoEntries {
                            kind: "account-reload",
                            key: "account",
                            ..
                        }
                    )
                },
                "<string>:2:1: item `r`: account-reload items need at least one `[[item.account]]`",
            ),
            (
                reload("prepaid = true\n", ""),
                |e| {
                    matches!(
                        e,
                        CatalogueError::MissingKey {
                            key: "prepaid",
                            place: Place::Account(entry),
                            ..
                        } if entry.item == "r" && entry.index == 1
                    )
                },
                "<string>:10:1: item `r`, account `A-1`: missing key `prepaid`",
            ),
            (
                reload("prepaid = true", "prepaid = \"yes\""),
                |e| {
                    matches!(
                        e,
                        CatalogueError::WrongType {
                            key: "prepaid",
                            found: "string",
                            ..
                        }
                    )
                },
                "<string>:12:11: item `r`, account `A-1`: key `prepaid`: expected true or false, found string",
            ),
            (
                reload("\"3.20\"", "\"-3.20\""),
                |e| {
                    matches!(
                        e,
                        CatalogueError::BadAmount {
                            key: "balance",
                            reason: PriceError::Negative,
                            ..
                        }
                    )
                },
                "<string>:13:11: item `r`: key `balance`: bad amount \"-3.20\": negative: a price is zero or more",
            ),
            (
                reload("number = \"A-1\"\n", ""),
                |e| {
                    matches!(
                        e,
                        CatalogueError::MissingKey {
                            key: "number",
                            place: Place::Account(entry),
                            ..
                        } if entry.index == 1 && entry.name.is_none()
                    )
                },
                "<string>:10:1: item `r`, account #1: missing key `number`",
            ),
            (
                reload("\"A-1\"", "\"A-1 \""),
                |e| matches!(e, CatalogueError::BadReference { key: "number", .. }),
                "<string>:11:10: item `r`: key `number`: bad number \"A-1 \": expected 1 to 32 printable ASCII characters, without a leading or trailing space",
            ),
            (
                format!(
                    "{RELOAD}[[item.account]]\nnumber = \"A-1\"\nprepaid = false\nbalance = \"0\"\n"
                ),
                |e| {
                    matches!(
                        e,
                        CatalogueError::DuplicateReference {
                            key: "number",
                            first_line: 11,
                            ..
                        }
                    )
                },
                "<string>:15:10: item `r`: duplicate number \"A-1\": line 11 already has it",
            ),
            (
                format!("{RELOAD}credit = \"1\"\n"),
                |e| {
                    matches!(
                        e,
                        CatalogueError::UnknownKey {
                            place: Place::Account(_),
                            ..
                        }
                    )
                },
                "<string>:14:1: item `r`, account `A-1`: unknown key `credit`: expected one of number, prepaid, balance",
            ),
        ];
        for (text, is_variant, message) in &cases {
            let error = from_str(text).expect_err(text);
            assert!(is_variant(&error), "{text}\nunexpected variant {error:?}");
            assert_eq!(error.to_string(), *message, "{text}");
        }
    }

    #[test]
    fn payment_services_read_their_bills_accounts_and_limits() {
        let bills = from_str(&format!(
            "{BILLS}description = \"Water, Q3\"\n[[item.bill]]\nreference = \"B 2/X\"\namount = \"0.01\"\n"
        ))
        .unwrap();
        let item = &bills.items()[0];
        assert_eq!(item.currency(), Currency::EUR);
        assert_eq!(item.bills().len(), 2);
        assert_eq!(item.bills()[0].description(), Some("Water, Q3"));
        assert_eq!(item.bills()[1].reference(), "B 2/X");
        assert_eq!(item.bills()[1].description(), None);
        // Listed from the smallest bill, whatever its place.
        assert_eq!(item.price(), Money::new(1, Currency::EUR));

        // min = max is a fixed reload; zero balances are accounts like any other.
        let text = RELOAD
            .replace("\"100.00\"", "\"5\"")
            .replace("\"3.20\"", "\"0\"")
            .replace("prepaid = true", "prepaid = false");
        let reload = from_str(&text).unwrap();
        let item = &reload.items()[0];
        let five = Money::new(500, Currency::EUR);
        assert_eq!(item.reload_range(), Some((five, five)));
        assert_eq!(
            item.account("A-1").map(Account::opening_balance),
            Some(AccountBalance::Owed(Money::new(0, Currency::EUR)))
        );
        assert_eq!(item.account("A-2"), None);
        assert!(!item.identification_required() && item.available());

        // `identification = "none"` is the default, said out loud.
        let none = from_str(&format!(
            "provider = \"p\"\n[[item]]\nid = \"a\"\n{DOC}identification = \"none\"\n"
        ))
        .unwrap();
        assert!(!none.items()[0].identification_required());
        assert!(!none.items()[0].static_info().identification_required);
    }

    #[test]
    fn the_built_in_demo_matches_the_files_beside_it() {
        // The embedded copies and the source tree's files must not drift apart.
        let on_disk = Catalogue::load(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("src/provider/demo-catalogue.toml"),
        )
        .unwrap();
        let demo = Catalogue::demo().unwrap();
        assert_eq!(on_disk.provider(), demo.provider());
        assert_eq!(on_disk.items(), demo.items());
        assert_eq!(demo.origin(), DEMO_ORIGIN);
    }

    proptest! {
        #[test]
        fn written_prices_read_back_to_the_same_amount(
            minor in 0..=MAX_PRICE_MINOR,
            currency in prop::sample::select(vec![Currency::EUR, Currency::USD, Currency::GBP, Currency::JPY]),
        ) {
            let price = Money::new(minor, currency);
            let text = format_price(price);
            prop_assert_eq!(parse_price(&text, currency), Ok(price));
        }

        #[test]
        fn parse_price_never_panics(text in "\\PC{0,24}|[0-9.+-]{0,30}") {
            let _ = parse_price(&text, Currency::EUR);
            let _ = parse_price(&text, Currency::JPY);
        }

        #[test]
        fn written_bills_read_back(
            bills in prop::collection::btree_map("[!-~]([ -~]{0,30}[!-~])?", 1..=MAX_PRICE_MINOR, 1..6),
        ) {
            let mut text = BILLS.split("[[item.bill]]").next().unwrap_or_default().to_owned();
            for (reference, minor) in &bills {
                // A TOML literal string cannot hold `'`; a basic one escapes `"` and `\`.
                let quoted = reference.replace('\\', "\\\\").replace('"', "\\\"");
                let amount = format_price(Money::new(*minor, Currency::EUR));
                text.push_str(&format!("[[item.bill]]\nreference = \"{quoted}\"\namount = \"{amount}\"\n"));
            }
            let catalogue = from_str(&text).unwrap();
            let read: Vec<(String, u64)> = catalogue.items()[0]
                .bills()
                .iter()
                .map(|bill| (bill.reference().to_owned(), bill.amount().minor))
                .collect();
            let written: Vec<(String, u64)> = bills.into_iter().collect();
            prop_assert_eq!(read, written);
        }

        #[test]
        fn reading_mutated_payment_services_never_panics(
            base in prop::sample::select(vec![BILLS, RELOAD]),
            position in 0usize..400,
            insert in "[\\[\\]=\"\n .a-z0-9-]{0,6}",
        ) {
            let mut cut = position.min(base.len());
            while !base.is_char_boundary(cut) {
                cut -= 1;
            }
            let text = format!("{}{insert}{}", &base[..cut], &base[cut..]);
            let _ = from_str(&text);
        }

        #[test]
        fn reading_any_text_never_panics(text in "\\PC{0,200}") {
            let _ = from_str(&text);
        }

        #[test]
        fn reading_mutated_catalogues_never_panics(
            position in 0usize..400,
            insert in "[\\[\\]=\"\n .a-z0-9-]{0,6}",
        ) {
            let base = format!("provider = \"p\"\n[[item]]\nid = \"a\"\n{DOC}");
            let mut cut = position.min(base.len());
            while !base.is_char_boundary(cut) {
                cut -= 1;
            }
            let text = format!("{}{insert}{}", &base[..cut], &base[cut..]);
            let _ = from_str(&text);
        }
    }
}
