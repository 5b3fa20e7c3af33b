//! The purchase exchanges of the patent's Fig. 6, one type each, and the values they
//! carry.
//!
//! | step | type | from → to |
//! |---|---|---|
//! | A | [`ServiceRequest`] | client device → front-end |
//! | B | [`QuoteRequest`] | front-end → service server |
//! | C | [`Quote`] | service server → front-end |
//! | D | [`PaymentRequest`] | front-end → payer device |
//! | E | [`Transaction`] | payer device → front-end |
//! | F | [`AcquirerTransaction`] | front-end → acquirer |
//! | G | [`Acknowledgement`] | acquirer → front-end |
//! | H | [`PayerAcknowledgement`] | front-end → payer device (no answer expected) |
//! | I | [`ServiceOrder`] | front-end → service server |
//! | J | [`ServiceDelivery`] | service server → front-end |
//! | K | [`ClientDelivery`] | front-end → client device |
//!
//! Besides those, [`Unavailable`] is a service server's answer when it cannot quote or
//! deliver, and [`PurchaseOutcome`] closes a purchase that delivers nothing, so that the
//! client device always learns how its request ended.
//!
//! Service messages (claim 16) identify the payer device's user when a quote says the
//! service is for identified users, between C and D (or I for a free service):
//!
//! | message | from → to |
//! |---|---|
//! | [`IdentificationRequest`] | front-end → payer device |
//! | [`IdentificationProof`] or [`IdentificationDeclined`] | payer device → front-end |
//! | [`IdentityCheck`] | front-end → acquirer |
//! | [`IdentityVerdict`] | acquirer → front-end |
//! | [`IdentificationResult`] | front-end → payer device (no answer expected) |
//!
//! Payment services (claim 17) — paying a bill, reloading an account — are services like
//! any other: A names the bill or the account ([`PaymentService`]), the quote's price is
//! the bill's or the chosen amount, and J is a receipt ([`Delivery::Receipt`]).
//!
//! Every message carries the identifiers that make it idempotent: a role that receives
//! a message it has already handled (same identifiers) changes nothing and answers what
//! it answered the first time. Identifiers are chosen by the role that starts an
//! exchange: the client device names its request, the front-end its purchase and its
//! payment request, the service server its quote.
//!
//! Times are [`Timestamp`]s, milliseconds since 1970-01-01 UTC, always passed in: no
//! role reads a clock.

use serde::{Deserialize, Serialize};

use crate::acquirer::wallet::SignedWalletPayment;

/// Milliseconds since 1970-01-01 00:00 UTC. Roles receive the time as a value.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// This time plus `millis` milliseconds (saturating).
    pub fn plus_millis(self, millis: i64) -> Timestamp {
        Timestamp(self.0.saturating_add(millis))
    }

    /// The calendar date in UTC as EMV's `9A` Transaction Date wants it: YYMMDD, BCD.
    pub fn emv_date(self) -> [u8; 3] {
        let (year, month, day) = crate::calendar::civil_from_days(self.0.div_euclid(86_400_000));
        let bcd = |value: i64| {
            let value = value.rem_euclid(100) as u8;
            ((value / 10) << 4) | (value % 10)
        };
        [bcd(year), bcd(month), bcd(day)]
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let seconds = self.0.div_euclid(1000);
        let millis = self.0.rem_euclid(1000);
        let text = crate::calendar::rfc3339_utc(seconds);
        match text.strip_suffix('Z') {
            Some(stem) if millis != 0 => write!(f, "{stem}.{millis:03}Z"),
            _ => f.write_str(&text),
        }
    }
}

/// An ISO 4217 currency, by its numeric code (what EMV's `5F2A` carries) and the
/// number of minor units amounts are counted in.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
pub struct Currency {
    /// ISO 4217 numeric code, e.g. 978 for the euro.
    pub numeric: u16,
    /// Digits after the decimal point (2 for the euro, 0 for the yen).
    pub exponent: u8,
}

impl Currency {
    /// The euro: 978, two decimals.
    pub const EUR: Currency = Currency {
        numeric: 978,
        exponent: 2,
    };
    /// The US dollar: 840, two decimals.
    pub const USD: Currency = Currency {
        numeric: 840,
        exponent: 2,
    };
    /// The pound sterling: 826, two decimals.
    pub const GBP: Currency = Currency {
        numeric: 826,
        exponent: 2,
    };
    /// The yen: 392, no decimals.
    pub const JPY: Currency = Currency {
        numeric: 392,
        exponent: 0,
    };

    /// The currencies telepay knows, with their alphabetic codes: one table for every
    /// lookup below.
    const KNOWN: [(Currency, &'static str); 4] = [
        (Currency::EUR, "EUR"),
        (Currency::USD, "USD"),
        (Currency::GBP, "GBP"),
        (Currency::JPY, "JPY"),
    ];

    /// The currency with this alphabetic code (EUR, USD, GBP, JPY).
    pub fn from_alpha(code: &str) -> Option<Currency> {
        Currency::KNOWN
            .into_iter()
            .find(|(_, alpha)| *alpha == code)
            .map(|(currency, _)| currency)
    }

    /// The currency with this numeric code, if telepay knows it.
    pub fn from_numeric(numeric: u16) -> Option<Currency> {
        Currency::KNOWN
            .into_iter()
            .find(|(currency, _)| currency.numeric == numeric)
            .map(|(currency, _)| currency)
    }

    /// The alphabetic code, or the numeric one when telepay does not know it.
    pub fn alpha(&self) -> String {
        Currency::KNOWN
            .into_iter()
            .find(|(currency, _)| currency.numeric == self.numeric)
            .map_or_else(
                || format!("{:03}", self.numeric),
                |(_, alpha)| alpha.to_owned(),
            )
    }

    /// The numeric code as EMV's `5F2A` carries it: n3, BCD in two bytes.
    pub fn emv_code(&self) -> [u8; 2] {
        let digits = self.numeric % 1000;
        let hundreds = (digits / 100) as u8;
        let tens = ((digits / 10) % 10) as u8;
        let units = (digits % 10) as u8;
        [hundreds, (tens << 4) | units]
    }
}

/// An amount of money in minor units (cents for the euro).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Money {
    /// The amount in minor units.
    pub minor: u64,
    /// Its currency.
    pub currency: Currency,
}

impl Money {
    /// `minor` units of `currency`.
    pub fn new(minor: u64, currency: Currency) -> Money {
        Money { minor, currency }
    }

    /// Whether the amount is zero (a free service).
    pub fn is_zero(&self) -> bool {
        self.minor == 0
    }

    /// The amount as EMV's `9F02` carries it: n12, BCD in six bytes. `None` above
    /// 999,999,999,999 minor units, which n12 cannot hold.
    pub fn emv_amount(&self) -> Option<[u8; 6]> {
        if self.minor > 999_999_999_999 {
            return None;
        }
        let mut bytes = [0u8; 6];
        let mut rest = self.minor;
        for byte in bytes.iter_mut().rev() {
            let low = (rest % 10) as u8;
            let high = ((rest / 10) % 10) as u8;
            *byte = (high << 4) | low;
            rest /= 100;
        }
        Some(bytes)
    }
}

impl std::fmt::Display for Money {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let exponent = u32::from(self.currency.exponent);
        let scale = 10u64.saturating_pow(exponent);
        if exponent == 0 {
            write!(f, "{} {}", self.minor, self.currency.alpha())
        } else {
            write!(
                f,
                "{}.{:0width$} {}",
                self.minor / scale,
                self.minor % scale,
                self.currency.alpha(),
                width = exponent as usize
            )
        }
    }
}

/// An immutable text whose clone does not allocate: what identifiers and the texts a
/// purchase's messages pass from role to role are made of.
///
/// Roles build each message from what they keep of a purchase, so the same identifiers
/// are copied into several messages per purchase; with `String` every copy was an
/// allocation. Texts up to 23 bytes (a purchase's identifiers, such as `P-000001-PAY` or
/// `terminal-1-R1`) are held inline and cloned by a copy; longer ones share one
/// reference-counted buffer.
///
/// On the wire and in the schema it is a plain string, exactly as `String` is; it
/// compares, orders and hashes as its `str`, so maps keyed by it behave as with
/// `String` and can be looked up by `&str`.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Text(smol_str::SmolStr);

impl Text {
    /// The text as a `str`.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The text `arguments` make, as `format!` would make it, but written in place
    /// when it fits inline: the identifiers a role names per purchase cost no
    /// allocation.
    pub fn format(arguments: std::fmt::Arguments<'_>) -> Text {
        let mut builder = smol_str::SmolStrBuilder::new();
        // The builder itself never fails; only a `Display` that reports an error could,
        // and none of telepay's does (`format!` would panic there instead).
        let _ = std::fmt::Write::write_fmt(&mut builder, arguments);
        Text(builder.finish())
    }
}

impl FromIterator<char> for Text {
    fn from_iter<I: IntoIterator<Item = char>>(chars: I) -> Text {
        Text(chars.into_iter().collect())
    }
}

impl std::ops::Deref for Text {
    type Target = str;

    fn deref(&self) -> &str {
        self.0.as_str()
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        self.0.as_str()
    }
}

impl std::borrow::Borrow<str> for Text {
    fn borrow(&self) -> &str {
        self.0.as_str()
    }
}

impl From<String> for Text {
    fn from(text: String) -> Text {
        Text(smol_str::SmolStr::from(text))
    }
}

impl From<&str> for Text {
    fn from(text: &str) -> Text {
        Text(smol_str::SmolStr::new(text))
    }
}

impl From<&String> for Text {
    fn from(text: &String) -> Text {
        Text(smol_str::SmolStr::new(text))
    }
}

impl From<Text> for String {
    fn from(text: Text) -> String {
        text.0.into()
    }
}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        self.0.as_str() == other
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        self.0.as_str() == *other
    }
}

impl PartialEq<String> for Text {
    fn eq(&self, other: &String) -> bool {
        self.0.as_str() == other.as_str()
    }
}

impl PartialEq<Text> for str {
    fn eq(&self, other: &Text) -> bool {
        self == other.0.as_str()
    }
}

impl PartialEq<Text> for &str {
    fn eq(&self, other: &Text) -> bool {
        *self == other.0.as_str()
    }
}

impl PartialEq<Text> for String {
    fn eq(&self, other: &Text) -> bool {
        self.as_str() == other.0.as_str()
    }
}

impl std::fmt::Display for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `pad`, as `str`'s Display: widths and alignments apply.
        f.pad(self.0.as_str())
    }
}

impl std::fmt::Debug for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.0.as_str(), f)
    }
}

impl Serialize for Text {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0.as_str())
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Text, D::Error> {
        deserializer.deserialize_string(TextVisitor)
    }
}

/// Reads a [`Text`] from whatever a deserializer holds a string as, accepting what
/// `String` accepts (and saying so with the same words), without an intermediate
/// `String` for the short texts.
struct TextVisitor;

impl serde::de::Visitor<'_> for TextVisitor {
    type Value = Text;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Text, E> {
        Ok(Text::from(text))
    }

    fn visit_string<E: serde::de::Error>(self, text: String) -> Result<Text, E> {
        Ok(Text::from(text))
    }

    fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<Text, E> {
        std::str::from_utf8(bytes)
            .map(Text::from)
            .map_err(|_| E::invalid_value(serde::de::Unexpected::Bytes(bytes), &self))
    }

    fn visit_byte_buf<E: serde::de::Error>(self, bytes: Vec<u8>) -> Result<Text, E> {
        String::from_utf8(bytes).map(Text::from).map_err(|error| {
            E::invalid_value(serde::de::Unexpected::Bytes(&error.into_bytes()), &self)
        })
    }
}

impl schemars::JsonSchema for Text {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        // `String`'s name and schema: the wire form is the same.
        <String as schemars::JsonSchema>::schema_name()
    }

    fn schema_id() -> std::borrow::Cow<'static, str> {
        <String as schemars::JsonSchema>::schema_id()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        <String as schemars::JsonSchema>::json_schema(generator)
    }
}

/// Immutable bytes whose clone does not copy them: a delivery's content, which the
/// service server's catalogue, the delivery J, the front-end's K and the client
/// device's result would otherwise each hold a copy of. On the wire, in hex as any
/// byte field; it compares, orders and hashes as its bytes.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SharedBytes(std::sync::Arc<[u8]>);

impl SharedBytes {
    /// The bytes as a slice.
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }
}

impl std::ops::Deref for SharedBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for SharedBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl From<Vec<u8>> for SharedBytes {
    fn from(bytes: Vec<u8>) -> SharedBytes {
        SharedBytes(bytes.into())
    }
}

impl From<&[u8]> for SharedBytes {
    fn from(bytes: &[u8]) -> SharedBytes {
        SharedBytes(bytes.into())
    }
}

impl std::fmt::Debug for SharedBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // As a `Vec<u8>` shows itself.
        std::fmt::Debug::fmt(&*self.0, f)
    }
}

macro_rules! identifier {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
            schemars::JsonSchema,
        )]
        pub struct $name(pub $crate::messages::Text);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(text: &str) -> $name {
                $name(text.into())
            }
        }

        impl From<String> for $name {
            fn from(text: String) -> $name {
                $name(text.into())
            }
        }
    };
}

/// For the other layers' identifiers (the wallet's sessions and credit references).
pub(crate) use identifier;

identifier!(
    /// A client device's name for one of its service requests: a repeated request with
    /// the same identifier is the same request.
    RequestId
);
identifier!(
    /// The front-end's name for a purchase, from the service request A to the delivery K.
    PurchaseId
);
identifier!(
    /// A service in a service server's catalogue.
    ServiceId
);
identifier!(
    /// A service server's name for one of its quotes.
    QuoteId
);
identifier!(
    /// The front-end's name for a payment request D; the transaction E, F and the
    /// acknowledgements G, H answering it carry it too.
    PaymentId
);
identifier!(
    /// A consultation terminal (its client device and payer device).
    TerminalId
);
identifier!(
    /// A service server.
    ProviderId
);
identifier!(
    /// An acquirer system.
    AcquirerId
);
identifier!(
    /// The front-end's name for one identification of a payer device's user (a service
    /// message, claim 16); the proof, the check and the verdict answering it carry it too.
    IdentificationId
);
identifier!(
    /// A customer as an acquirer vouches for them after an identification: a pseudonym
    /// of the card (`C-` and 16 hex digits), stable for one card at one acquirer, that
    /// tells a service server who the user is without the card number.
    CustomerId
);
identifier!(
    /// A merchant as the acquirer knows it: the front-end selling on behalf of a
    /// service server.
    MerchantId
);

identifier!(
    /// A pseudo-session of incremental payment (claim 10): the client device names it
    /// in its service requests; the front-end names the provisions it reserves for it
    /// at the wallet acquirer (`{terminal}/{session}/{n}`, one per provision).
    SessionId
);

/// A postal address for goods delivered by another channel.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PostalAddress {
    /// Addressee.
    pub name: String,
    /// Street lines, one per element.
    pub lines: Vec<String>,
    /// Postal code.
    pub postcode: String,
    /// Town.
    pub town: String,
    /// ISO 3166-1 alpha-2 country code.
    pub country: String,
}

/// What kind of service a catalogue item is, which decides how it is delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ServiceKind {
    /// A document delivered as content.
    Document,
    /// A pay-per-view item delivered as content.
    PayPerView,
    /// Physical goods: the delivery is an order, by another channel.
    PhysicalGood,
    /// A payment service (claim 17): paying a bill the server issued; the amount is
    /// the bill's, found by its reference ([`PaymentService::Bill`]).
    BillPayment,
    /// A payment service (claim 17): reloading a remote account, prepaid or not, by an
    /// amount the user chooses ([`PaymentService::Reload`]).
    AccountReload,
    /// A service billed per unit of time (a live stream, a connection): the price is
    /// one unit's, paid before each unit by a periodic payment.
    PayPerTime,
}

impl ServiceKind {
    /// Every kind, in the order the file formats' documentation lists them.
    pub const ALL: [ServiceKind; 6] = [
        ServiceKind::Document,
        ServiceKind::PayPerView,
        ServiceKind::PhysicalGood,
        ServiceKind::BillPayment,
        ServiceKind::AccountReload,
        ServiceKind::PayPerTime,
    ];

    /// The kind as messages and files write it (its serde name): `pay-per-view`…
    pub fn name(self) -> &'static str {
        match self {
            ServiceKind::Document => "document",
            ServiceKind::PayPerView => "pay-per-view",
            ServiceKind::PhysicalGood => "physical-good",
            ServiceKind::BillPayment => "bill-payment",
            ServiceKind::AccountReload => "account-reload",
            ServiceKind::PayPerTime => "pay-per-time",
        }
    }

    /// The kind written `name`.
    pub fn from_name(name: &str) -> Option<ServiceKind> {
        ServiceKind::ALL
            .into_iter()
            .find(|kind| kind.name() == name)
    }
}

/// What a payment service (claim 17) needs beyond the service's identifier: which bill,
/// or which account and how much.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum PaymentService {
    /// Pay the bill with this reference, for the amount the server holds for it.
    Bill {
        /// The bill's reference, as printed on it.
        reference: String,
    },
    /// Credit this account by this amount.
    Reload {
        /// The account's number at the service server.
        account: String,
        /// The amount to credit.
        amount: Money,
    },
}

/// A – the client device asks the front-end for a service.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ServiceRequest {
    /// The client device's name for this request.
    pub request: RequestId,
    /// The terminal asking.
    pub terminal: TerminalId,
    /// The service server that offers the service.
    pub provider: ProviderId,
    /// The service.
    pub service: ServiceId,
    /// Where physical goods go; required for them, ignored otherwise.
    pub delivery_address: Option<PostalAddress>,
    /// For a payment service (claim 17): the bill or the account; required for them,
    /// ignored otherwise.
    #[serde(default)]
    pub payment_service: Option<PaymentService>,
    /// The pseudo-session the request belongs to, when the user opened one: its wallet
    /// payments are then verified by the front-end against a provision (incremental
    /// payment, claim 10) and settled together when the session ends.
    #[serde(default)]
    pub session: Option<SessionId>,
    /// For a service billed per unit of time: the most units the user will pay for
    /// (the front-end stops the service after them); `None` takes the server's limit.
    #[serde(default)]
    pub units: Option<u32>,
}

/// B – the front-end asks a service server for a quote.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub struct QuoteRequest {
    /// The purchase this quote is for.
    pub purchase: PurchaseId,
    /// The service.
    pub service: ServiceId,
    /// Where physical goods go.
    pub delivery_address: Option<PostalAddress>,
    /// For a payment service: the bill or the account.
    #[serde(default)]
    pub payment_service: Option<PaymentService>,
}

/// C's static information: what the service is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StaticInfo {
    /// The designation shown to the user.
    pub designation: Text,
    /// The kind of service.
    pub kind: ServiceKind,
    /// Whether the server delivers it only to an identified user (claim 16): the
    /// front-end then has the payer device identify the user before paying or ordering,
    /// and names the customer in I.
    #[serde(default)]
    pub identification_required: bool,
    /// For a service billed per unit of time: its unit and limit. The price is one
    /// unit's; the front-end asks for the next unit's payment when the paid time runs
    /// out.
    #[serde(default)]
    pub unit_billing: Option<UnitBilling>,
}

/// How a service billed per unit of time is billed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub struct UnitBilling {
    /// How long one unit lasts, in seconds.
    pub unit_seconds: u32,
    /// The most units one purchase runs.
    pub max_units: u32,
}

/// C's variable information: what it costs now and whether it can be had.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub struct VariableInfo {
    /// The price; zero for a free service.
    pub price: Money,
    /// Whether the server can deliver it now.
    pub available: bool,
}

/// C's quote information: how long the quote holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub struct QuoteValidity {
    /// When the server made the quote.
    pub issued_at: Timestamp,
    /// The last instant at which a transaction against it is accepted.
    pub valid_until: Timestamp,
}

impl QuoteValidity {
    /// Whether the quote still holds at `now`.
    pub fn holds_at(&self, now: Timestamp) -> bool {
        now <= self.valid_until
    }
}

/// C – the service server's quote.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Quote {
    /// The purchase it answers.
    pub purchase: PurchaseId,
    /// The server's name for it.
    pub quote: QuoteId,
    /// The service quoted.
    pub service: ServiceId,
    /// Static information.
    pub static_info: StaticInfo,
    /// Variable information.
    pub variable: VariableInfo,
    /// Quote information.
    pub validity: QuoteValidity,
    /// Fig. 7: the service itself, sent with the quote; the front-end keeps it until a
    /// positive acknowledgement, and I and J do not happen.
    pub service_enclosed: Option<Delivery>,
}

/// A service server's answer when it cannot quote (B) or deliver (I).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Unavailable {
    /// The purchase concerned.
    pub purchase: PurchaseId,
    /// The service concerned.
    pub service: ServiceId,
    /// Why, for people.
    pub reason: String,
}

/// A means of payment the payer device may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Means {
    /// Secure telepayment by bank card (claim 11).
    BankCard,
    /// The virtual wallet (claim 10).
    VirtualWallet,
}

impl Means {
    /// Every means, in the order totals show them.
    pub const ALL: [Means; 2] = [Means::BankCard, Means::VirtualWallet];

    /// The means as messages, files and command lines write it (its serde name):
    /// `bank-card`, `virtual-wallet`.
    pub fn name(self) -> &'static str {
        match self {
            Means::BankCard => "bank-card",
            Means::VirtualWallet => "virtual-wallet",
        }
    }

    /// The means written `name`.
    pub fn from_name(name: &str) -> Option<Means> {
        Means::ALL.into_iter().find(|means| means.name() == name)
    }
}

/// D – the payment request the front-end builds from all or part of the quote.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PaymentRequest {
    /// The purchase.
    pub purchase: PurchaseId,
    /// The front-end's name for this payment request.
    pub payment: PaymentId,
    /// The merchant the acquirer will credit.
    pub merchant: MerchantId,
    /// The service paid for (a wallet payment signs it).
    pub service: ServiceId,
    /// The service's designation, from the quote.
    pub designation: Text,
    /// SHA-256 of the designation, cut to the 20 bytes of EMV's merchant custom data
    /// (`9F7C`): what the card is given to bind the service to the payment.
    pub designation_digest: [u8; 20],
    /// What to pay.
    pub amount: Money,
    /// The transaction date (the front-end's clock, UTC).
    pub date: Timestamp,
    /// A nonce the front-end drew for this request; the card's unpredictable number
    /// (`9F37`) is derived from it and the designation digest
    /// ([`PaymentRequest::unpredictable_number`]).
    pub nonce: [u8; 16],
    /// The quote's validity, shown to the user.
    pub valid_until: Timestamp,
    /// The means the front-end accepts for this payment.
    pub accepted_means: Vec<Means>,
    /// The pseudo-session of the service request, when there is one.
    #[serde(default)]
    pub session: Option<SessionId>,
}

impl PaymentRequest {
    /// The designation digest of [`PaymentRequest::designation_digest`].
    pub fn digest_designation(designation: &str) -> [u8; 20] {
        use sha2::Digest;
        let full = sha2::Sha256::digest(designation.as_bytes());
        let mut digest = [0u8; 20];
        digest.copy_from_slice(full.get(..20).unwrap_or(&[0u8; 20]));
        digest
    }

    /// The unpredictable number (`9F37`) the card is given: the first four bytes of
    /// SHA-256(nonce ‖ designation digest). The cryptogram covers it, so the acquirer,
    /// recomputing it from the request, checks that the card signed for this service;
    /// the card cannot predict it because the nonce is fresh.
    pub fn unpredictable_number(nonce: &[u8; 16], designation_digest: &[u8; 20]) -> [u8; 4] {
        use sha2::Digest;
        let mut hash = sha2::Sha256::new();
        hash.update(nonce);
        hash.update(designation_digest);
        let full = hash.finalize();
        let mut number = [0u8; 4];
        number.copy_from_slice(full.get(..4).unwrap_or(&[0u8; 4]));
        number
    }
}

/// What the bank card produced for a payment: the cardholder data and the first
/// GENERATE AC's answer, with every value the cryptogram covers, in EMV encodings.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CardTransaction {
    /// Application PAN (5A), digits.
    pub pan: Text,
    /// PAN Sequence Number (5F34).
    pub pan_sequence: u8,
    /// Application Expiration Date (5F24), YYMMDD digits.
    pub expiry: Text,
    /// The AID the card paid with.
    #[serde(with = "hex_bytes")]
    #[schemars(with = "hex_bytes::Hex")]
    pub aid: Vec<u8>,
    /// Application Interchange Profile (82).
    pub aip: [u8; 2],
    /// Application Transaction Counter (9F36).
    pub atc: u16,
    /// Cryptogram Information Data (9F27): `80` for an ARQC.
    pub cid: u8,
    /// The application cryptogram (9F26).
    pub cryptogram: [u8; 8],
    /// Issuer Application Data (9F10).
    #[serde(with = "hex_bytes")]
    #[schemars(with = "hex_bytes::Hex")]
    pub iad: Vec<u8>,
    /// Amount, Authorised (9F02), n12.
    pub amount: [u8; 6],
    /// Amount, Other (9F03), n12.
    pub amount_other: [u8; 6],
    /// Terminal Country Code (9F1A), n3.
    pub terminal_country: [u8; 2],
    /// Terminal Verification Results (95).
    pub tvr: [u8; 5],
    /// Transaction Currency Code (5F2A), n3.
    pub currency: [u8; 2],
    /// Transaction Date (9A), YYMMDD.
    pub date: [u8; 3],
    /// Transaction Type (9C): `00` purchase.
    pub transaction_type: u8,
    /// Unpredictable Number (9F37).
    pub unpredictable_number: [u8; 4],
    /// Whether the card verified the PIN offline for this transaction.
    pub pin_verified: bool,
}

impl CardTransaction {
    /// The values the card's application cryptogram covers, named as
    /// `card_applet_sim::crypto` takes them: what an issuer (or a test) recomputes the
    /// cryptogram from. F carries the named values, not the CDOL1 block, so
    /// `cdol1_data` is empty; neither cryptogram version covers it as a block.
    pub fn ac_input(&self) -> card_applet_sim::crypto::AcInput<'_> {
        card_applet_sim::crypto::AcInput {
            cdol1_data: &[],
            amount_authorised: self.amount,
            amount_other: self.amount_other,
            terminal_country: self.terminal_country,
            tvr: self.tvr,
            currency: self.currency,
            date: self.date,
            transaction_type: self.transaction_type,
            unpredictable_number: self.unpredictable_number,
            aip: self.aip,
            atc: self.atc,
            iad: &self.iad,
        }
    }
}

/// How the payer device paid.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Payment {
    /// By bank card.
    BankCard(CardTransaction),
    /// From the virtual wallet: the payment signed with the user's key.
    // Boxed: twice a card transaction's size, and the front-end and payer keep E.
    VirtualWallet(Box<SignedWalletPayment>),
}

impl Payment {
    /// The means this payment used.
    pub fn means(&self) -> Means {
        match self {
            Payment::BankCard(_) => Means::BankCard,
            Payment::VirtualWallet(_) => Means::VirtualWallet,
        }
    }

    /// The bank card's transaction, when the card paid.
    pub fn card(&self) -> Option<&CardTransaction> {
        match self {
            Payment::BankCard(card) => Some(card),
            Payment::VirtualWallet(_) => None,
        }
    }

    /// The signed wallet payment, when the wallet paid.
    pub fn wallet(&self) -> Option<&SignedWalletPayment> {
        match self {
            Payment::BankCard(_) => None,
            Payment::VirtualWallet(signed) => Some(signed),
        }
    }
}

/// E – the transaction the payer device builds with the means the user's plan picks.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Transaction {
    /// The purchase.
    pub purchase: PurchaseId,
    /// The payment request it answers.
    pub payment: PaymentId,
    /// The terminal paying.
    pub terminal: TerminalId,
    /// The payment.
    pub means: Payment,
}

/// F – the transaction as the front-end submits it to the acquirer suited to its means.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AcquirerTransaction {
    /// The acquirer it goes to.
    pub acquirer: AcquirerId,
    /// The merchant to credit.
    pub merchant: MerchantId,
    /// The payment request as the front-end issued it: the acquirer checks the payment
    /// against it (amount, currency, date, unpredictable number).
    pub request: PaymentRequest,
    /// The transaction E.
    pub transaction: Transaction,
    /// For the first wallet payment of a pseudo-session: the provision the front-end
    /// asks the acquirer to reserve, the payment authenticating the request.
    #[serde(default)]
    pub provision: Option<ProvisionRequest>,
}

/// What the front-end asks a wallet acquirer to reserve for a pseudo-session.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ProvisionRequest {
    /// The front-end's name for the provision.
    pub segment: SessionId,
    /// How much to reserve, at least the payment's amount.
    pub amount: Money,
}

/// The provision a wallet acquirer reserved, given with a positive acknowledgement:
/// the front-end verifies the session's next payments against it by itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ProvisionGrant {
    /// The provision.
    pub segment: SessionId,
    /// How much is reserved.
    pub amount: Money,
    /// The account's last accepted sequence when it was reserved: the session's
    /// payments must carry greater ones.
    pub sequence_floor: u64,
}

/// Why an acquirer refused a transaction.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RefusalReason {
    /// The acquirer knows no issuer for this PAN's BIN.
    UnknownIssuer,
    /// The PAN fails its Luhn check digit.
    InvalidPan,
    /// The card's expiry date is before the transaction date.
    CardExpired,
    /// The amount is outside the acquirer's limits.
    AmountOutOfLimits,
    /// The cryptogram does not verify under the issuer's keys.
    CryptogramInvalid,
    /// The card did not ask for an online authorisation (no ARQC).
    NotAnAuthorisationRequest,
    /// The ATC is not above every ATC this card already used: a replayed or re-ordered
    /// cryptogram.
    ReplayedCounter,
    /// The transaction does not match the payment request (amount, currency, date,
    /// unpredictable number).
    MismatchWithRequest,
    /// The acquirer did not answer in time (decided by the front-end).
    AcquirerUnreachable,
    /// No acquirer for this means.
    NoAcquirer,
    /// The quote had expired when the transaction arrived (decided by the front-end).
    QuoteExpired,
    /// The front-end cancelled this payment before its transaction reached the
    /// acquirer (a [`Reversal`] overtook it).
    Cancelled,
    /// The payment identifier was already used for another transaction: a repeated F
    /// must be the same message to get the same answer.
    PaymentIdReused,
    /// The card's own verification results (under its cryptogram) do not show the PIN
    /// verified: not presented, wrong, or the try limit exceeded. Claim 11 wants the
    /// card to sign only after the PIN was presented.
    CardholderNotVerified,
    /// The wallet account is not known to the acquirer.
    UnknownAccount,
    /// The wallet payment's signature does not verify under its account's key.
    SignatureInvalid,
    /// The wallet payment's sequence is not above the account's last: a replay.
    ReplayedSequence,
    /// The wallet's balance (less its provisions) does not cover the amount.
    InsufficientFunds,
    /// The payment would take the session's total above its provision.
    ProvisionExceeded,
    /// The front-end could not record the payment durably, so it does not deliver.
    NotRecorded,
}

impl RefusalReason {
    /// The ISO 8583 response code an acquirer gives for this reason.
    pub fn response_code(&self) -> [u8; 2] {
        match self {
            RefusalReason::UnknownIssuer => *b"15",
            RefusalReason::InvalidPan => *b"14",
            RefusalReason::CardExpired => *b"54",
            RefusalReason::AmountOutOfLimits => *b"61",
            RefusalReason::CryptogramInvalid => *b"Z3",
            RefusalReason::NotAnAuthorisationRequest => *b"Z3",
            RefusalReason::ReplayedCounter => *b"Z3",
            RefusalReason::MismatchWithRequest => *b"Z3",
            RefusalReason::AcquirerUnreachable => *b"91",
            RefusalReason::NoAcquirer => *b"92",
            RefusalReason::QuoteExpired => *b"12",
            RefusalReason::Cancelled => *b"17",
            RefusalReason::PaymentIdReused => *b"94",
            RefusalReason::CardholderNotVerified => *b"55",
            RefusalReason::UnknownAccount => *b"14",
            RefusalReason::SignatureInvalid => *b"63",
            RefusalReason::ReplayedSequence => *b"94",
            RefusalReason::InsufficientFunds => *b"51",
            RefusalReason::ProvisionExceeded => *b"61",
            RefusalReason::NotRecorded => *b"96",
        }
    }
}

impl std::fmt::Display for RefusalReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RefusalReason::UnknownIssuer => "no issuer known for this card number",
            RefusalReason::InvalidPan => "the card number fails its check digit",
            RefusalReason::CardExpired => "the card has expired",
            RefusalReason::AmountOutOfLimits => "the amount is outside the acquirer's limits",
            RefusalReason::CryptogramInvalid => "the card's cryptogram does not verify",
            RefusalReason::NotAnAuthorisationRequest => {
                "the card did not ask for an online authorisation"
            }
            RefusalReason::ReplayedCounter => {
                "the card's transaction counter was already used (replayed or re-ordered)"
            }
            RefusalReason::MismatchWithRequest => {
                "the transaction does not match the payment request"
            }
            RefusalReason::AcquirerUnreachable => "the acquirer did not answer in time",
            RefusalReason::NoAcquirer => "no acquirer takes this means of payment",
            RefusalReason::QuoteExpired => "the quote expired before the transaction arrived",
            RefusalReason::Cancelled => "the front-end cancelled this payment",
            RefusalReason::PaymentIdReused => {
                "the payment identifier was already used for another transaction"
            }
            RefusalReason::CardholderNotVerified => {
                "the card did not verify the cardholder's PIN for this transaction"
            }
            RefusalReason::UnknownAccount => "the wallet account is unknown to the acquirer",
            RefusalReason::SignatureInvalid => "the wallet payment's signature does not verify",
            RefusalReason::ReplayedSequence => {
                "the wallet payment's sequence was already used (replayed)"
            }
            RefusalReason::InsufficientFunds => "the wallet's balance does not cover the amount",
            RefusalReason::ProvisionExceeded => "the payment exceeds the session's provision",
            RefusalReason::NotRecorded => "the front-end could not record the payment",
        })
    }
}

/// G's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Authorised.
    Positive {
        /// The acquirer's authorisation code (ISO 8583 field 38), six characters.
        authorisation_code: Text,
        /// The response code (8A) for the card, "00".
        response_code: [u8; 2],
        /// The ARPC for the card's second GENERATE AC (method 1), when the means has one.
        arpc: Option<[u8; 8]>,
    },
    /// Refused.
    Negative {
        /// Why.
        reason: RefusalReason,
        /// The response code (8A) for the card.
        response_code: [u8; 2],
        /// The ARPC over the refusal, when the cryptogram verified.
        arpc: Option<[u8; 8]>,
    },
}

impl Verdict {
    /// A refusal for `reason`, with its response code and no ARPC: what a party
    /// decides without a cryptogram to answer (the front-end, or an acquirer of
    /// another means).
    pub fn refused(reason: RefusalReason) -> Verdict {
        Verdict::Negative {
            response_code: reason.response_code(),
            reason,
            arpc: None,
        }
    }

    /// Whether the acquirer authorised the payment.
    pub fn is_positive(&self) -> bool {
        matches!(self, Verdict::Positive { .. })
    }
}

/// G – the acquirer's acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Acknowledgement {
    /// The acquirer answering.
    pub acquirer: AcquirerId,
    /// The purchase.
    pub purchase: PurchaseId,
    /// The payment request the transaction answered.
    pub payment: PaymentId,
    /// The verdict.
    pub verdict: Verdict,
    /// The provision reserved, when F asked for one and the verdict is positive.
    #[serde(default)]
    pub provision: Option<ProvisionGrant>,
}

/// H – the acknowledgement passed on to the payer device; no answer is expected. A
/// negative one ends the purchase.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PayerAcknowledgement {
    /// The purchase.
    pub purchase: PurchaseId,
    /// The payment request.
    pub payment: PaymentId,
    /// The acquirer's verdict.
    pub verdict: Verdict,
}

/// I – after a positive acknowledgement, the front-end orders the service.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ServiceOrder {
    /// The purchase.
    pub purchase: PurchaseId,
    /// The quote the service was bought on.
    pub quote: QuoteId,
    /// The service.
    pub service: ServiceId,
    /// The user, when the front-end had them identified (claim 16).
    #[serde(default)]
    pub customer: Option<CustomerId>,
}

/// An account's standing after a reload (claim 17).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AccountBalance {
    /// A prepaid account's credit.
    Credit(Money),
    /// What is still owed on an account that is not prepaid.
    Owed(Money),
}

/// A service as delivered.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Delivery {
    /// Content: a document or a pay-per-view item.
    Content {
        /// Media type, e.g. `text/plain`.
        media_type: Text,
        /// The bytes.
        #[serde(with = "hex_bytes")]
        #[schemars(with = "hex_bytes::Hex")]
        bytes: SharedBytes,
        /// SHA-256 of the bytes, so the client device can check what it received.
        sha256: [u8; 32],
    },
    /// Physical goods: an order the server has accepted to ship by another channel.
    Order {
        /// The server's order number.
        order: String,
        /// Where it goes.
        address: PostalAddress,
    },
    /// A payment service carried out (claim 17): the server's receipt.
    Receipt {
        /// The server's receipt number.
        receipt: String,
        /// The bill or account settled.
        reference: String,
        /// What was credited to it.
        amount: Money,
        /// The account after a reload; `None` for a bill.
        balance: Option<AccountBalance>,
        /// The customer who paid, when identified.
        customer: Option<CustomerId>,
    },
}

impl Delivery {
    /// Content with its digest.
    pub fn content(media_type: &str, bytes: impl Into<SharedBytes>) -> Delivery {
        use sha2::Digest;
        let bytes = bytes.into();
        let sha256 = sha2::Sha256::digest(&*bytes).into();
        Delivery::Content {
            media_type: media_type.into(),
            bytes,
            sha256,
        }
    }

    /// Whether content bytes match their digest (always true for an order or a receipt).
    pub fn is_intact(&self) -> bool {
        use sha2::Digest;
        match self {
            Delivery::Content { bytes, sha256, .. } => {
                let computed: [u8; 32] = sha2::Sha256::digest(&**bytes).into();
                &computed == sha256
            }
            Delivery::Order { .. } | Delivery::Receipt { .. } => true,
        }
    }
}

/// J – the service server delivers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ServiceDelivery {
    /// The purchase.
    pub purchase: PurchaseId,
    /// The service.
    pub service: ServiceId,
    /// What is delivered.
    pub delivery: Delivery,
}

/// K – the front-end delivers the service to the client device.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ClientDelivery {
    /// The client device's request.
    pub request: RequestId,
    /// The purchase.
    pub purchase: PurchaseId,
    /// The service.
    pub service: ServiceId,
    /// What is delivered.
    pub delivery: Delivery,
    /// What was paid (zero for a free service).
    pub paid: Money,
}

/// Why a purchase ended without a delivery.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Failure {
    /// The service server could not quote or deliver.
    ServiceUnavailable {
        /// The server's reason.
        reason: String,
    },
    /// The service server did not answer in time.
    ServerSilent,
    /// The quote expired before the transaction arrived.
    QuoteExpired,
    /// The payer device declined to pay, or could not (wrong PIN, card blocked...).
    PaymentDeclined {
        /// The payer device's reason.
        reason: String,
    },
    /// The payer device did not answer in time.
    PayerSilent,
    /// The acquirer refused, or could not be reached.
    PaymentRefused {
        /// Why.
        reason: RefusalReason,
    },
    /// The request was malformed (physical goods without an address...).
    BadRequest {
        /// What was wrong.
        reason: String,
    },
    /// The service is for identified users and the user could not be identified.
    IdentificationFailed {
        /// Why.
        reason: String,
    },
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::ServiceUnavailable { reason } => write!(f, "service unavailable: {reason}"),
            Failure::ServerSilent => f.write_str("the service server did not answer in time"),
            Failure::QuoteExpired => f.write_str("the quote expired before the payment"),
            Failure::PaymentDeclined { reason } => write!(f, "payment not made: {reason}"),
            Failure::PayerSilent => f.write_str("the payer device did not answer in time"),
            Failure::PaymentRefused { reason } => write!(f, "payment refused: {reason}"),
            Failure::BadRequest { reason } => write!(f, "bad request: {reason}"),
            Failure::IdentificationFailed { reason } => {
                write!(f, "the user could not be identified: {reason}")
            }
        }
    }
}

/// The end of a purchase that delivered nothing, sent to the client device instead of K.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PurchaseOutcome {
    /// The client device's request.
    pub request: RequestId,
    /// The purchase.
    pub purchase: PurchaseId,
    /// Why nothing was delivered.
    pub failure: Failure,
}

/// A payer device's refusal to pay a payment request (the user declined, the PIN was
/// wrong, the card is blocked...): the answer to D when there is no transaction E.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PaymentDeclined {
    /// The purchase.
    pub purchase: PurchaseId,
    /// The payment request declined.
    pub payment: PaymentId,
    /// Why, for people (never a PIN).
    pub reason: String,
}

/// The front-end's cancellation of a transaction it gave up on (the acquirer did not
/// answer in time, or the service could not be delivered after a positive
/// acknowledgement): the acquirer must not remit it, and must refuse it if it arrives
/// later. Not a step of Fig. 6: what keeps a purchase from being left half-done.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Reversal {
    /// The acquirer concerned.
    pub acquirer: AcquirerId,
    /// The purchase.
    pub purchase: PurchaseId,
    /// The payment request whose transaction is cancelled.
    pub payment: PaymentId,
    /// Why, for people.
    pub reason: String,
}

/// A service message (claim 16): the front-end asks the payer device to identify and
/// authenticate its user, because the service is for identified users.
///
/// With the bank card this is an EMV account verification: the card verifies the PIN
/// and signs a zero-amount request ([`IdentificationRequest::card_request`]) whose
/// unpredictable number the front-end's fresh nonce decides, so the proof cannot be
/// replayed; the issuer's acquirer checks it and names the customer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IdentificationRequest {
    /// The purchase that needs it.
    pub purchase: PurchaseId,
    /// The front-end's name for this identification.
    pub identification: IdentificationId,
    /// The merchant asking, as the acquirer knows it.
    pub merchant: MerchantId,
    /// What the identification is for, shown to the user.
    pub purpose: String,
    /// The currency of the zero amount the card signs (its CDOL asks for one).
    pub currency: Currency,
    /// When it was asked (the front-end's clock, UTC).
    pub date: Timestamp,
    /// A nonce the front-end drew for it.
    pub nonce: [u8; 16],
    /// The means the front-end can have checked.
    pub accepted_means: Vec<Means>,
}

impl IdentificationRequest {
    /// The zero-amount request the card signs. Its designation is the purpose after
    /// `identification: `, so that its digest (in 9F7C and in the unpredictable number)
    /// is never a payment's for the same text; its zero amount keeps it from ever
    /// passing as a payment.
    pub fn card_request(&self) -> PaymentRequest {
        let designation = Text::from(format!("identification: {}", self.purpose));
        PaymentRequest {
            purchase: self.purchase.clone(),
            payment: PaymentId(self.identification.0.clone()),
            merchant: self.merchant.clone(),
            service: ServiceId(designation.clone()),
            designation_digest: PaymentRequest::digest_designation(&designation),
            designation,
            amount: Money::new(0, self.currency),
            date: self.date,
            nonce: self.nonce,
            valid_until: self.date,
            accepted_means: self.accepted_means.clone(),
            session: None,
        }
    }
}

/// The payer device's answer to an [`IdentificationRequest`]: the card's proof, or the
/// wallet key's.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IdentificationProof {
    /// The purchase.
    pub purchase: PurchaseId,
    /// The identification it answers.
    pub identification: IdentificationId,
    /// The terminal answering.
    pub terminal: TerminalId,
    /// The card's zero-amount cryptogram and the data it covers, or the statement the
    /// wallet key signed.
    pub proof: IdentityProof,
}

/// The payer device's answer when its user is not identified (declined, wrong PIN,
/// card blocked...).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IdentificationDeclined {
    /// The purchase.
    pub purchase: PurchaseId,
    /// The identification declined.
    pub identification: IdentificationId,
    /// Why, for people (never a PIN).
    pub reason: String,
}

/// The front-end asks the acquirer of the proof's means to check it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IdentityCheck {
    /// The acquirer it goes to.
    pub acquirer: AcquirerId,
    /// The request as the front-end issued it: the acquirer checks the proof against it.
    pub request: IdentificationRequest,
    /// The payer device's proof.
    pub proof: IdentificationProof,
}

/// The acquirer's answer to an [`IdentityCheck`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IdentityVerdict {
    /// The acquirer answering.
    pub acquirer: AcquirerId,
    /// The purchase.
    pub purchase: PurchaseId,
    /// The identification.
    pub identification: IdentificationId,
    /// Positive when the card is genuine and verified its holder's PIN; with the ARPC
    /// the card completes with.
    pub verdict: Verdict,
    /// The customer, on a positive verdict.
    pub customer: Option<CustomerId>,
}

/// The verdict passed on to the payer device, so that its card completes; no answer is
/// expected.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IdentificationResult {
    /// The purchase.
    pub purchase: PurchaseId,
    /// The identification.
    pub identification: IdentificationId,
    /// The acquirer's verdict.
    pub verdict: Verdict,
    /// The customer, on a positive verdict.
    pub customer: Option<CustomerId>,
}

/// The client device stops a service billed per unit of time: no further unit is
/// asked for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StopService {
    /// The terminal.
    pub terminal: TerminalId,
    /// The purchase whose service runs.
    pub purchase: PurchaseId,
}

/// A service billed per unit of time has stopped — the units asked for were paid, the
/// user stopped it, or a unit's payment failed — to the client device and the server.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ServiceStopped {
    /// The purchase.
    pub purchase: PurchaseId,
    /// The service.
    pub service: ServiceId,
    /// How many units were paid.
    pub units: u32,
    /// What they came to.
    pub paid: Money,
    /// Why it stopped, for people.
    pub reason: String,
}

/// The client device ends its pseudo-session: the front-end settles the session's
/// wallet payments with the acquirer and answers with a [`SessionClosed`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SessionEnd {
    /// The terminal whose session it is.
    pub terminal: TerminalId,
    /// The session.
    pub session: SessionId,
}

/// The front-end sends a provision's payments, every one it admitted, to the wallet
/// acquirer, which debits exactly their sum and releases the rest of the provision.
/// Repeated until answered; the acquirer settles a provision once.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SessionSettlement {
    /// The acquirer.
    pub acquirer: AcquirerId,
    /// The provision.
    pub segment: SessionId,
    /// The payments, in the order admitted, as signed.
    pub payments: Vec<SignedWalletPayment>,
}

/// The wallet acquirer's answer to a [`SessionSettlement`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SettlementResult {
    /// The acquirer.
    pub acquirer: AcquirerId,
    /// The provision.
    pub segment: SessionId,
    /// How many payments were debited.
    pub settled: u32,
    /// Their sum, debited from the account.
    pub debited: Money,
    /// The part of the provision released.
    pub released: Money,
    /// The payments refused, with why (none when the front-end verified them well).
    pub refused: Vec<(PaymentId, String)>,
}

/// The front-end's answer to a [`SessionEnd`]: what the session's wallet payments came
/// to once settled.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SessionClosed {
    /// The terminal.
    pub terminal: TerminalId,
    /// The session.
    pub session: SessionId,
    /// How many wallet payments the acquirer debited.
    pub payments: u32,
    /// Their sum, or `None` when the session had no wallet payment.
    pub debited: Option<Money>,
    /// Whether every provision was settled; `false` when an acquirer did not answer in
    /// time (the front-end keeps the payments and settles them later).
    pub settled: bool,
}

/// A party of the purchase: where a message comes from and goes to.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Party {
    /// A consultation terminal's client device (21).
    Client(TerminalId),
    /// A consultation terminal's payer device (22).
    Payer(TerminalId),
    /// The communication front-end (12), the telematic mediator.
    FrontEnd,
    /// A service server (11).
    Server(ProviderId),
    /// An acquirer system (20).
    Acquirer(AcquirerId),
}

impl std::fmt::Display for Party {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Party::Client(terminal) => write!(f, "client device {terminal}"),
            Party::Payer(terminal) => write!(f, "payer device {terminal}"),
            Party::FrontEnd => f.write_str("front-end"),
            Party::Server(provider) => write!(f, "service server {provider}"),
            Party::Acquirer(acquirer) => write!(f, "acquirer {acquirer}"),
        }
    }
}

/// Any message of the purchase, for runners and logs that carry them all.
// F, E, the identity check and proof, the dispute, its case and the abandonment are
// boxed: a value of the enum is as large as its largest variant, every message is moved
// through the runner's queue and log, and the roles keep envelopes. An `Envelope` was
// 744 bytes for any message while F was inline, and 560 while the abandonment (496) and
// the dispute's case (432) were; 360 now, the quote being the largest inline variant
// (a test keeps it so).
// Not in the doc comment: schemars publishes it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Message {
    /// A.
    ServiceRequest(ServiceRequest),
    /// B.
    QuoteRequest(QuoteRequest),
    /// C.
    Quote(Quote),
    /// The server cannot quote or deliver (answers B or I).
    Unavailable(Unavailable),
    /// D.
    PaymentRequest(PaymentRequest),
    /// E.
    Transaction(Box<Transaction>),
    /// The payer device's answer to D when it does not pay.
    PaymentDeclined(PaymentDeclined),
    /// F.
    AcquirerTransaction(Box<AcquirerTransaction>),
    /// G.
    Acknowledgement(Acknowledgement),
    /// H.
    PayerAcknowledgement(PayerAcknowledgement),
    /// I.
    ServiceOrder(ServiceOrder),
    /// J.
    ServiceDelivery(ServiceDelivery),
    /// K.
    ClientDelivery(ClientDelivery),
    /// The end of a purchase that delivered nothing.
    PurchaseOutcome(PurchaseOutcome),
    /// The front-end cancels a transaction it gave up on.
    Reversal(Reversal),
    /// A service message: identify the user (claim 16).
    IdentificationRequest(IdentificationRequest),
    /// The payer device's proof of identity.
    IdentificationProof(Box<IdentificationProof>),
    /// The payer device did not identify its user.
    IdentificationDeclined(IdentificationDeclined),
    /// The front-end has the proof checked.
    IdentityCheck(Box<IdentityCheck>),
    /// The acquirer's verdict on the proof.
    IdentityVerdict(IdentityVerdict),
    /// The verdict, to the payer device.
    IdentificationResult(IdentificationResult),
    /// The client device ends its pseudo-session.
    SessionEnd(SessionEnd),
    /// The client device stops a service billed per unit of time.
    StopService(StopService),
    /// A service billed per unit of time has stopped.
    ServiceStopped(ServiceStopped),
    /// The front-end settles a provision's payments.
    SessionSettlement(SessionSettlement),
    /// The wallet acquirer's settlement.
    SettlementResult(SettlementResult),
    /// The session's settled total, to the client device.
    SessionClosed(SessionClosed),
    /// A service message: the payer device disputes a payment (claims 8, 9).
    Dispute(Box<Dispute>),
    /// The front-end forwards the dispute to the acquirer of the payment's means.
    DisputeCase(Box<DisputeCase>),
    /// The dispute's outcome: acquirer → front-end → payer device.
    DisputeOutcome(DisputeOutcome),
    /// The payer device gives up a card payment whose front-end went away: payer
    /// device → any front-end → the card's acquirer.
    PaymentAbandoned(Box<PaymentAbandonment>),
    /// What became of it: acquirer → front-end → payer device.
    AbandonmentResult(AbandonmentResult),
}

impl Message {
    /// The step of Fig. 6 this message is (`"A"` … `"K"`), or a name for the messages
    /// the figure does not draw.
    pub fn step(&self) -> &'static str {
        match self {
            Message::ServiceRequest(_) => "A",
            Message::QuoteRequest(_) => "B",
            Message::Quote(_) => "C",
            Message::Unavailable(_) => "unavailable",
            Message::PaymentRequest(_) => "D",
            Message::Transaction(_) => "E",
            Message::PaymentDeclined(_) => "declined",
            Message::AcquirerTransaction(_) => "F",
            Message::Acknowledgement(_) => "G",
            Message::PayerAcknowledgement(_) => "H",
            Message::ServiceOrder(_) => "I",
            Message::ServiceDelivery(_) => "J",
            Message::ClientDelivery(_) => "K",
            Message::PurchaseOutcome(_) => "outcome",
            Message::Reversal(_) => "reversal",
            Message::IdentificationRequest(_) => "identify",
            Message::IdentificationProof(_) => "proof",
            Message::IdentificationDeclined(_) => "not identified",
            Message::IdentityCheck(_) => "identity check",
            Message::IdentityVerdict(_) => "identity verdict",
            Message::IdentificationResult(_) => "identified",
            Message::SessionEnd(_) => "end session",
            Message::StopService(_) => "stop",
            Message::ServiceStopped(_) => "stopped",
            Message::SessionSettlement(_) => "settle",
            Message::SettlementResult(_) => "settled",
            Message::SessionClosed(_) => "session closed",
            Message::Dispute(_) => "dispute",
            Message::DisputeCase(_) => "dispute case",
            Message::DisputeOutcome(_) => "dispute outcome",
            Message::PaymentAbandoned(_) => "abandoned",
            Message::AbandonmentResult(_) => "abandonment result",
        }
    }

    /// The purchase the message belongs to, when it names one (A does not: the
    /// front-end names the purchase on receiving it).
    pub fn purchase(&self) -> Option<&PurchaseId> {
        match self {
            Message::ServiceRequest(_) => None,
            Message::QuoteRequest(m) => Some(&m.purchase),
            Message::Quote(m) => Some(&m.purchase),
            Message::Unavailable(m) => Some(&m.purchase),
            Message::PaymentRequest(m) => Some(&m.purchase),
            Message::Transaction(m) => Some(&m.purchase),
            Message::PaymentDeclined(m) => Some(&m.purchase),
            Message::AcquirerTransaction(m) => Some(&m.transaction.purchase),
            Message::Acknowledgement(m) => Some(&m.purchase),
            Message::PayerAcknowledgement(m) => Some(&m.purchase),
            Message::ServiceOrder(m) => Some(&m.purchase),
            Message::ServiceDelivery(m) => Some(&m.purchase),
            Message::ClientDelivery(m) => Some(&m.purchase),
            Message::PurchaseOutcome(m) => Some(&m.purchase),
            Message::Reversal(m) => Some(&m.purchase),
            Message::IdentificationRequest(m) => Some(&m.purchase),
            Message::IdentificationProof(m) => Some(&m.purchase),
            Message::IdentificationDeclined(m) => Some(&m.purchase),
            Message::IdentityCheck(m) => Some(&m.request.purchase),
            Message::IdentityVerdict(m) => Some(&m.purchase),
            Message::IdentificationResult(m) => Some(&m.purchase),
            Message::StopService(m) => Some(&m.purchase),
            Message::ServiceStopped(m) => Some(&m.purchase),
            Message::SessionEnd(_)
            | Message::SessionSettlement(_)
            | Message::SettlementResult(_)
            | Message::SessionClosed(_) => None,
            // A dispute is about a payment made before, outside any purchase in progress.
            Message::Dispute(_) | Message::DisputeCase(_) | Message::DisputeOutcome(_) => None,
            Message::PaymentAbandoned(m) => Some(&m.transaction.purchase),
            Message::AbandonmentResult(m) => Some(&m.purchase),
        }
    }
}

/// A message on its way: who sends it, to whom.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Envelope {
    /// The sender.
    pub from: Party,
    /// The addressee.
    pub to: Party,
    /// The message.
    pub message: Message,
}

/// How the payer device proves its user's identity (claims 8, 9, 12 and 16): with the
/// bank card — a zero-amount cryptogram the card issuer's acquirer checks — or with the
/// wallet key from the key store — a signed statement the front-end checks itself
/// ([`crate::acquirer::wallet::identity`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum IdentityProof {
    /// The card's zero-amount ARQC over [`IdentificationRequest::card_request`].
    Card(CardTransaction),
    /// The identity statement signed with the wallet key.
    Key(crate::acquirer::wallet::SignedIdentity),
}

impl IdentityProof {
    /// The means whose secret made the proof: the card, or the wallet's key.
    pub fn means(&self) -> Means {
        match self {
            IdentityProof::Card(_) => Means::BankCard,
            IdentityProof::Key(_) => Means::VirtualWallet,
        }
    }

    /// The card's transaction, when the card made the proof.
    pub fn card(&self) -> Option<&CardTransaction> {
        match self {
            IdentityProof::Card(card) => Some(card),
            IdentityProof::Key(_) => None,
        }
    }

    /// The signed statement, when the wallet key made the proof.
    pub fn key(&self) -> Option<&crate::acquirer::wallet::SignedIdentity> {
        match self {
            IdentityProof::Card(_) => None,
            IdentityProof::Key(signed) => Some(signed),
        }
    }
}

identifier!(
    /// A payer device's name for one of its disputes (`{terminal}-D{n}`): a repeated
    /// dispute with the same identifier is the same dispute.
    DisputeId
);

/// A service message (claims 8, 9): the payer device disputes a payment it made,
/// with a statement signed by the user's wallet key
/// ([`crate::acquirer::wallet::dispute`]). The front-end records it and forwards it to
/// the acquirer of `means` as a [`DisputeCase`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Dispute {
    /// The payer device's name for the dispute (signed too).
    pub dispute: DisputeId,
    /// The terminal disputing.
    pub terminal: TerminalId,
    /// How the payment was made: which acquirer takes the dispute.
    pub means: Means,
    /// The payment disputed (signed too).
    pub payment: PaymentId,
    /// Why, in the user's words, at most
    /// [`crate::acquirer::wallet::dispute::MAX_DISPUTE_REASON_CHARS`] characters (signed
    /// too).
    pub reason: String,
    /// The statement the user's key signed.
    pub signed: crate::acquirer::wallet::SignedDispute,
}

/// The front-end forwards a [`Dispute`] to the acquirer of its means, for the merchant
/// it sells as.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DisputeCase {
    /// The acquirer it goes to.
    pub acquirer: AcquirerId,
    /// The merchant the front-end sells as: the payment's, when it was made here.
    pub merchant: MerchantId,
    /// The payer device's dispute, as received.
    pub dispute: Dispute,
}

/// What became of a dispute.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DisputeDecision {
    /// Recorded for review under a case number. Not a refund: nothing is credited back
    /// by accepting a dispute; the case is reviewed by people.
    Accepted {
        /// The acquirer's case number.
        case: String,
    },
    /// Refused: the statement does not verify, names no payment debited from the
    /// account for the merchant, or the means' acquirer does not take disputes.
    Rejected {
        /// Why, for people.
        reason: String,
    },
    /// The acquirer did not answer within the front-end's deadline (decided by the
    /// front-end). Not final: the front-end passes on a late answer, and sends the case
    /// again when the payer device repeats the dispute.
    Unanswered,
}

/// The outcome of a [`Dispute`]: the acquirer's answer to the front-end, which records
/// it and passes it on to the payer device (no answer expected).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DisputeOutcome {
    /// The dispute.
    pub dispute: DisputeId,
    /// The acquirer that decided, or the one that did not answer; `None` when the
    /// front-end refused the dispute itself (no acquirer for the means, a message that
    /// is not its signed statement).
    pub acquirer: Option<AcquirerId>,
    /// What became of it.
    pub outcome: DisputeDecision,
}

/// The payer device gives up a bank-card payment whose acknowledgement H can no longer
/// come: the front-end that took E went away. The card has ended the transaction with
/// an AAC (second GENERATE AC, response code `Z3` "unable to go online", EMV Book 4
/// §A6), and that AAC is the proof: a card answers one second GENERATE AC per
/// transaction counter, so a card that declined this payment can never have approved
/// it with a TC. Sent to any front-end; it names no state of the lost one. The
/// front-end forwards it to the acquirer of the bank card, which checks the AAC with
/// the issuer's key and cancels the payment (or marks it, never seen, so that a late F
/// is refused), and answers an [`AbandonmentResult`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PaymentAbandonment {
    /// The payment request D as the lost front-end issued it: the AAC's unpredictable
    /// number and amount are checked against it.
    pub request: PaymentRequest,
    /// The transaction E as the payer device sent it (with the ARQC).
    pub transaction: Transaction,
    /// The card's AAC for the same transaction.
    pub decline: CardDecline,
}

/// The card's declining answer to the second GENERATE AC: what an AAC adds to the
/// first GENERATE AC's values (the same amount, date, unpredictable number and ATC).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CardDecline {
    /// Cryptogram Information Data (9F27): `00` for an AAC.
    pub cid: u8,
    /// The AAC (9F26).
    pub cryptogram: [u8; 8],
    /// Issuer Application Data (9F10) returned with the AAC: its CVR says which
    /// cryptogram each GENERATE AC returned.
    #[serde(with = "hex_bytes")]
    #[schemars(with = "hex_bytes::Hex")]
    pub iad: Vec<u8>,
}

/// The acquirer's answer to a [`PaymentAbandonment`]: acquirer → front-end → payer
/// device (no answer expected).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AbandonmentResult {
    /// The acquirer that decided.
    pub acquirer: AcquirerId,
    /// The terminal whose payer device abandoned the payment.
    pub terminal: TerminalId,
    /// The purchase.
    pub purchase: PurchaseId,
    /// The payment abandoned.
    pub payment: PaymentId,
    /// What became of it.
    pub outcome: AbandonmentOutcome,
}

/// What became of an abandoned payment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum AbandonmentOutcome {
    /// Nothing will be charged for it: it was cancelled before any batch, it had been
    /// refused, or it was never seen and a late F for it will be refused.
    NotCharged {
        /// How, for people.
        detail: String,
    },
    /// The acquirer did not cancel it: it may be charged (already remitted, or the
    /// proof did not verify).
    Refused {
        /// Why, for people.
        reason: String,
    },
}

impl AbandonmentOutcome {
    /// Whether nothing will be charged.
    pub fn not_charged(&self) -> bool {
        matches!(self, AbandonmentOutcome::NotCharged { .. })
    }
}

impl std::fmt::Display for AbandonmentOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AbandonmentOutcome::NotCharged { detail } => write!(f, "not charged ({detail})"),
            AbandonmentOutcome::Refused { reason } => write!(f, "not cancelled: {reason}"),
        }
    }
}

/// Serde for byte strings as upper-case hex.
mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    /// The wire schema of bytes in upper-case hex.
    pub struct Hex;

    impl schemars::JsonSchema for Hex {
        fn schema_name() -> std::borrow::Cow<'static, str> {
            "Hex".into()
        }

        fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
            schemars::json_schema!({
                "type": "string",
                "pattern": "^([0-9A-Fa-f]{2})*$",
                "description": "Bytes in hex (written upper-case).",
            })
        }
    }

    /// Byte strings up to this long are written through a buffer on the stack, as a
    /// card payment's AID and IAD are: the acquirer's journal writes F and G at every
    /// authorisation, and a `String` per field was an allocation per field. Longer ones
    /// (a delivered content) take the allocation.
    const ON_STACK: usize = 64;

    /// The hex digits, upper-case as the wire has them.
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        let mut buffer = [0u8; 2 * ON_STACK];
        // Longer than the buffer (the product saturates far beyond it): the allocation.
        let Some(text) = buffer.get_mut(..bytes.len().saturating_mul(2)) else {
            return serializer.serialize_str(&hex::encode_upper(bytes));
        };
        for (pair, &byte) in text.chunks_exact_mut(2).zip(bytes) {
            if let [high, low] = pair {
                *high = DIGITS[usize::from(byte >> 4)];
                *low = DIGITS[usize::from(byte & 0x0F)];
            }
        }
        // Hex digits only: ASCII, always UTF-8.
        let text = std::str::from_utf8(text).map_err(serde::ser::Error::custom)?;
        serializer.serialize_str(text)
    }

    /// Into any byte holder that takes a `Vec<u8>` (a `Vec` itself, [`super::SharedBytes`]).
    pub fn deserialize<'de, D: Deserializer<'de>, B: From<Vec<u8>>>(
        deserializer: D,
    ) -> Result<B, D::Error> {
        let text = String::deserialize(deserializer)?;
        hex::decode(&text)
            .map(B::from)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_no_larger_than_the_quote_its_largest_inline_variant() {
        // Every message is moved through the runner's queue and log and roles keep
        // envelopes: a large variant added inline makes all of them as large as itself.
        // Box it, as F, E, the disputes and the abandonment are.
        assert_eq!(
            std::mem::size_of::<Message>(),
            std::mem::size_of::<Quote>(),
            "a variant larger than the quote is inline in Message"
        );
    }

    #[test]
    fn amounts_and_currencies_in_emv_encodings() {
        // EMV Book 3 Annex A: 9F02 is n12, 5F2A n3, both BCD right-justified.
        assert_eq!(
            Money::new(1234, Currency::EUR).emv_amount(),
            Some([0, 0, 0, 0, 0x12, 0x34])
        );
        assert_eq!(
            Money::new(999_999_999_999, Currency::EUR).emv_amount(),
            Some([0x99; 6])
        );
        assert_eq!(
            Money::new(1_000_000_000_000, Currency::EUR).emv_amount(),
            None
        );
        assert_eq!(Currency::EUR.emv_code(), [0x09, 0x78]);
        assert_eq!(Currency::USD.emv_code(), [0x08, 0x40]);
        assert_eq!(Currency::JPY.emv_code(), [0x03, 0x92]);
    }

    #[test]
    fn money_prints_with_its_decimals() {
        assert_eq!(Money::new(250, Currency::EUR).to_string(), "2.50 EUR");
        assert_eq!(Money::new(5, Currency::EUR).to_string(), "0.05 EUR");
        assert_eq!(Money::new(500, Currency::JPY).to_string(), "500 JPY");
    }

    #[test]
    fn timestamps_give_the_emv_date_in_utc() {
        // 2026-11-25 23:59:59.999 UTC, then the next millisecond.
        let last = Timestamp(1_795_651_199_999);
        assert_eq!(last.emv_date(), [0x26, 0x11, 0x25]);
        assert_eq!(last.plus_millis(1).emv_date(), [0x26, 0x11, 0x26]);
        assert_eq!(last.to_string(), "2026-11-25T23:59:59.999Z");
        assert_eq!(Timestamp(0).to_string(), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn the_unpredictable_number_binds_the_designation() {
        let nonce = [7u8; 16];
        let one = PaymentRequest::digest_designation("Report 2026");
        let other = PaymentRequest::digest_designation("Report 2027");
        assert_ne!(one, other);
        assert_ne!(
            PaymentRequest::unpredictable_number(&nonce, &one),
            PaymentRequest::unpredictable_number(&nonce, &other)
        );
        assert_ne!(
            PaymentRequest::unpredictable_number(&nonce, &one),
            PaymentRequest::unpredictable_number(&[8u8; 16], &one)
        );
    }

    /// Texts either side of the 23 bytes held inline, and multi-byte characters.
    const TEXTS: [&str; 6] = [
        "",
        "P-000001-PAY",
        "exactly twenty-three by",
        "twenty-four bytes, heap!",
        "Rapport annuel 2026 — édition complète, 1 Go",
        "line\nbreak \"quoted\" \u{1F4B3}",
    ];

    #[test]
    fn text_is_a_plain_string_on_the_wire_and_in_the_schema() {
        for text in TEXTS {
            let as_text = serde_json::to_string(&Text::from(text)).unwrap();
            assert_eq!(as_text, serde_json::to_string(text).unwrap(), "{text:?}");
            let back: Text = serde_json::from_str(&as_text).unwrap();
            assert_eq!(back, text);
            // In an identifier too: a newtype is its field on the wire.
            let id = serde_json::to_string(&PaymentId::from(text)).unwrap();
            assert_eq!(id, as_text);
            assert_eq!(serde_json::from_str::<PaymentId>(&id).unwrap().0, text);
        }
        // What is not a string is refused in the words `String` uses.
        for wrong in ["5", "null", "[]", "{}", "true"] {
            assert_eq!(
                serde_json::from_str::<Text>(wrong).unwrap_err().to_string(),
                serde_json::from_str::<String>(wrong)
                    .unwrap_err()
                    .to_string(),
                "{wrong}"
            );
        }
        assert_eq!(
            serde_json::to_value(schemars::schema_for!(Text)).unwrap(),
            serde_json::to_value(schemars::schema_for!(String)).unwrap()
        );
        assert_eq!(
            serde_json::to_value(schemars::schema_for!(PaymentId)).unwrap(),
            serde_json::json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "title": "PaymentId",
                "description": "The front-end's name for a payment request D; the transaction E, F and the\nacknowledgements G, H answering it carry it too.",
                "type": "string",
            })
        );
    }

    #[test]
    fn text_compares_orders_hashes_and_prints_as_its_str() {
        use std::hash::{BuildHasher, RandomState};
        let hasher = RandomState::new();
        for text in TEXTS {
            let owned = Text::from(text.to_owned());
            assert_eq!(owned, Text::from(text));
            assert_eq!(owned, text);
            assert_eq!(owned, *text);
            assert_eq!(text, owned);
            assert_eq!(*text, owned);
            assert_eq!(text.to_owned(), owned);
            assert_eq!(owned, text.to_owned());
            assert_eq!(owned.as_str(), text);
            assert_eq!(&*owned, text);
            assert_eq!(hasher.hash_one(&owned), hasher.hash_one(text), "{text:?}");
            assert_eq!(owned.to_string(), text);
            assert_eq!(format!("{owned:?}"), format!("{text:?}"));
            assert_eq!(format!("[{owned:>50}]"), format!("[{text:>50}]"));
            assert_eq!(String::from(owned.clone()), text);
            for other in TEXTS {
                assert_eq!(owned.cmp(&Text::from(other)), text.cmp(other));
            }
        }
        // Maps keyed by texts (or identifiers of them) find their keys by `&str`.
        let map: std::collections::BTreeMap<Text, usize> = TEXTS
            .iter()
            .enumerate()
            .map(|(index, text)| (Text::from(*text), index))
            .collect();
        for (index, text) in TEXTS.iter().enumerate() {
            assert_eq!(map.get(*text), Some(&index));
        }
        assert_eq!(Text::default(), "");
    }

    #[test]
    fn text_formats_and_collects_as_string_does() {
        for number in [0u64, 7, 123_456, u64::MAX] {
            for prefix in TEXTS {
                assert_eq!(
                    Text::format(format_args!("{prefix}-{number:06}")),
                    format!("{prefix}-{number:06}")
                );
            }
        }
        for text in TEXTS {
            assert_eq!(text.chars().collect::<Text>(), text);
        }
    }

    #[test]
    fn text_clones_share_a_long_text_instead_of_copying_it() {
        let long = Text::from("a designation well beyond the twenty-three bytes held inline");
        let copy = long.clone();
        assert_eq!(copy.as_ptr(), long.as_ptr());
        assert_eq!(copy, long);
    }

    #[test]
    fn hex_bytes_writes_what_hex_encode_upper_writes_at_every_length() {
        // Both sides of the stack buffer's 64 bytes; every nibble value occurs.
        for length in 0..=200usize {
            let bytes: Vec<u8> = (0..length)
                .map(|index| (index.wrapping_mul(37).wrapping_add(11) % 256) as u8)
                .collect();
            let written = hex_bytes::serialize(&bytes, serde_json::value::Serializer).unwrap();
            assert_eq!(
                written,
                serde_json::Value::String(hex::encode_upper(&bytes)),
                "length {length}"
            );
        }
    }

    #[test]
    fn shared_bytes_are_shared_by_their_clones_and_travel_as_hex() {
        let content = SharedBytes::from(b"The market grew.".to_vec());
        let copy = content.clone();
        assert_eq!(copy.as_slice().as_ptr(), content.as_slice().as_ptr());
        assert_eq!(
            format!("{copy:?}"),
            format!("{:?}", b"The market grew.".to_vec())
        );
        let delivery = Delivery::content("text/plain", content);
        let json = serde_json::to_value(&delivery).unwrap();
        assert_eq!(json["content"]["bytes"], "546865206D61726B657420677265772E");
        assert_eq!(serde_json::from_value::<Delivery>(json).unwrap(), delivery);
    }

    #[test]
    fn content_carries_its_digest() {
        let mut delivery = Delivery::content("text/plain", b"hello".to_vec());
        assert!(delivery.is_intact());
        if let Delivery::Content { bytes, .. } = &mut delivery {
            *bytes = b"Hello".to_vec().into();
        }
        assert!(!delivery.is_intact());
    }
}
