//! The service server as a sans-IO state machine: it answers a quote request (B) with
//! a quote (C) and a service order (I) with the service (J), or with [`Unavailable`].
//!
//! It reads no clock (the time of a quote request comes in as a [`Timestamp`]) and does
//! no I/O: messages come in as values and answers go out as values, so the front-end's
//! tests wire it in memory.
//!
//! Both steps are idempotent, as `crate::messages` requires of every role: a quote
//! request for a purchase already quoted gets the quote it got the first time (same
//! quote id, same validity: nothing is re-issued), and a service order already served
//! gets the same delivery (same order or receipt number). A repeat changes no state
//! and advances no counter.
//!
//! Payment services (claim 17) are settled on the order I, not on the quote: a quote
//! reserves nothing, so a bill quoted to two purchases is paid by the first order only
//! and the second gets [`Unavailable`] (the front-end then reverses its payment), and
//! reloads quoted side by side are credited in the order they are ordered. Each order
//! is decided first and applied after, so a refusal leaves no trace.

use std::collections::{BTreeMap, HashMap};

use crate::messages::{
    AccountBalance, CustomerId, Delivery, Money, PaymentService, PostalAddress, PurchaseId, Quote,
    QuoteId, QuoteRequest, QuoteValidity, ServiceDelivery, ServiceId, ServiceKind, ServiceOrder,
    Text, Timestamp, Unavailable, VariableInfo,
};

use super::catalogue::{Bill, Catalogue, CatalogueItem, MAX_PRICE_MINOR};

/// The largest balance an account may reach, in minor units: what a catalogue can
/// state ([`MAX_PRICE_MINOR`], EMV's n12), so that a server's accounts can always be
/// written back as a catalogue. A reload that would pass it is refused.
pub const MAX_BALANCE_MINOR: u64 = MAX_PRICE_MINOR;

/// What the server remembers of a purchase it quoted.
#[derive(Debug, Clone)]
struct QuotedPurchase {
    /// The quote request B as first received: a repeat must be identical.
    request: QuoteRequest,
    /// The quote C it was given.
    quote: Quote,
    /// The delivery J, once the service was ordered.
    delivery: Option<ServiceDelivery>,
}

/// What serving an order changes besides remembering its delivery: decided before
/// anything changes, applied once the whole order is known to go through.
#[derive(Debug)]
enum Settlement {
    /// Content: nothing but the delivery to remember.
    Content,
    /// A physical good: the order number taken.
    Order {
        /// The number.
        number: u64,
    },
    /// A bill paid (claim 17).
    Bill {
        /// The bill's reference.
        reference: String,
        /// The receipt number taken.
        receipt: u64,
    },
    /// An account credited (claim 17).
    Reload {
        /// The account's number.
        account: String,
        /// Its standing after the reload.
        balance: AccountBalance,
        /// The receipt number taken.
        receipt: u64,
    },
}

/// A service server (the patent's 11): quotes and delivers the items of its
/// [`Catalogue`], and keeps the state of its payment services — which bills are paid,
/// and what each account stands at.
///
/// Quote ids are `Q-000001`, `Q-000002`…, order numbers of physical goods
/// `ORD-000001`…, and receipts of payment services `RCP-000001`…, in the order the
/// server issues them, so a run is reproducible.
#[derive(Debug, Clone)]
pub struct ServiceServer {
    catalogue: Catalogue,
    in_service: bool,
    // As the front-end's purchases: looked up by key only, so hashed; boxed, so that
    // growing the table moves pointers, not quotes.
    purchases: HashMap<PurchaseId, Box<QuotedPurchase>>,
    quotes_issued: u64,
    orders_placed: u64,
    receipts_issued: u64,
    /// By service, then bill reference: the purchase that paid the bill.
    bills_paid: BTreeMap<ServiceId, BTreeMap<String, PurchaseId>>,
    /// By service, then account number: the account's standing, opened from the
    /// catalogue.
    balances: BTreeMap<ServiceId, BTreeMap<String, AccountBalance>>,
}

impl ServiceServer {
    /// A server in service, selling `catalogue`, that has issued nothing yet: no bill
    /// is paid, and every account stands at its catalogue balance.
    pub fn new(catalogue: Catalogue) -> ServiceServer {
        let balances = catalogue
            .items()
            .iter()
            .filter(|item| !item.accounts().is_empty())
            .map(|item| {
                let accounts = item
                    .accounts()
                    .iter()
                    .map(|account| (account.number().to_owned(), account.opening_balance()))
                    .collect();
                (item.id().clone(), accounts)
            })
            .collect();
        ServiceServer {
            catalogue,
            in_service: true,
            purchases: HashMap::new(),
            quotes_issued: 0,
            orders_placed: 0,
            receipts_issued: 0,
            bills_paid: BTreeMap::new(),
            balances,
        }
    }

    /// The catalogue it sells.
    pub fn catalogue(&self) -> &Catalogue {
        &self.catalogue
    }

    /// Puts the server in or out of service. Out of service it answers every quote
    /// request and service order with [`Unavailable`] and changes nothing; back in
    /// service it answers repeats with what it issued before.
    pub fn set_available(&mut self, in_service: bool) {
        self.in_service = in_service;
    }

    /// Whether the server is in service.
    pub fn is_available(&self) -> bool {
        self.in_service
    }

    /// How many quotes it has issued (repeats not counted).
    pub fn quotes_issued(&self) -> u64 {
        self.quotes_issued
    }

    /// How many orders for physical goods it has placed (repeats not counted).
    pub fn orders_placed(&self) -> u64 {
        self.orders_placed
    }

    /// How many receipts for payment services it has issued (repeats not counted).
    pub fn receipts_issued(&self) -> u64 {
        self.receipts_issued
    }

    /// The purchase that paid the bill `reference` of `service`; `None` while it is
    /// unpaid (or if there is no such bill).
    pub fn bill_paid_by(&self, service: &ServiceId, reference: &str) -> Option<&PurchaseId> {
        self.bills_paid
            .get(service)
            .and_then(|bills| bills.get(reference))
    }

    /// The standing of the account `number` of `service` now; `None` if there is no
    /// such account.
    pub fn account_balance(&self, service: &ServiceId, number: &str) -> Option<AccountBalance> {
        self.balances
            .get(service)
            .and_then(|accounts| accounts.get(number))
            .copied()
    }

    /// B → C: quotes the requested service at `now`.
    ///
    /// The quote carries the item's designation, kind and whether it is for identified
    /// users (static information), its price with `available: true` (variable
    /// information), and a validity from `now` to `now` + the item's
    /// `validity_seconds`. A Fig. 7 item ([`CatalogueItem::deliver_with_quote`])
    /// encloses its content in [`Quote::service_enclosed`].
    ///
    /// A payment service (claim 17) is quoted for what the request's
    /// [`PaymentService`] names: a bill at the bill's amount, designated
    /// `"<designation>, bill <reference>"`; a reload at the chosen amount, designated
    /// `"<designation>, account <number>: reload of <amount>"`. Its price is never zero.
    ///
    /// [`Unavailable`] when the server is out of service, the service is unknown or not
    /// on sale, a physical good comes without a complete delivery address, the purchase
    /// was already quoted for a different request, or a payment service's request
    /// names no bill or account of the item, a bill already paid, a reload in another
    /// currency or outside the item's limits, or one that would take the account past
    /// [`MAX_BALANCE_MINOR`].
    pub fn handle_quote_request(
        &mut self,
        request: &QuoteRequest,
        now: Timestamp,
    ) -> Result<Quote, Unavailable> {
        let refuse = |reason: String| Unavailable {
            purchase: request.purchase.clone(),
            service: request.service.clone(),
            reason,
        };
        if !self.in_service {
            return Err(refuse(self.out_of_service()));
        }
        if let Some(quoted) = self.purchases.get(&request.purchase) {
            // Idempotence: the same request gets the same quote, issued once.
            return if quoted.request == *request {
                Ok(quoted.quote.clone())
            } else {
                Err(refuse(format!(
                    "purchase `{}` was already quoted ({} for service `{}`); a purchase is quoted once",
                    request.purchase, quoted.quote.quote, quoted.quote.service
                )))
            };
        }
        let item = self.catalogue.get(&request.service).ok_or_else(|| {
            refuse(format!(
                "no service `{}` in the catalogue of `{}`",
                request.service,
                self.catalogue.provider()
            ))
        })?;
        if !item.available() {
            return Err(refuse(format!(
                "service `{}` ({}) is not available at the moment",
                item.id(),
                item.designation()
            )));
        }
        if item.kind() == ServiceKind::PhysicalGood {
            // Goods are delivered by another channel: without an address the server
            // could not honour the order it would have to take after payment.
            let Some(address) = &request.delivery_address else {
                return Err(refuse(format!(
                    "service `{}` is a physical good and needs a delivery address",
                    item.id()
                )));
            };
            if let Some(problem) = address_problem(address) {
                return Err(refuse(format!(
                    "the delivery address for `{}` is incomplete: {problem}",
                    item.id()
                )));
            }
        }
        // A payment service's quote names the bill or the account in its designation;
        // the others keep the item's (`static_info` below).
        let (designation, price) = match item.kind() {
            ServiceKind::BillPayment => {
                let reference =
                    bill_reference(item, request.payment_service.as_ref()).map_err(&refuse)?;
                let bill = self.payable_bill(item, reference).map_err(&refuse)?;
                (
                    Some(format!("{}, bill {}", item.designation(), bill.reference())),
                    bill.amount(),
                )
            }
            ServiceKind::AccountReload => {
                let (account, amount) =
                    reload_terms(item, request.payment_service.as_ref()).map_err(&refuse)?;
                // Checked now so that a reload the order would refuse is not paid for;
                // checked again on the order, as other reloads may come first.
                self.reloaded_balance(item, account, amount)
                    .map_err(&refuse)?;
                (
                    Some(format!(
                        "{}, account {account}: reload of {amount}",
                        item.designation()
                    )),
                    amount,
                )
            }
            ServiceKind::Document
            | ServiceKind::PayPerView
            | ServiceKind::PhysicalGood
            | ServiceKind::PayPerTime => (None, item.price()),
        };
        if item.is_payment_service() && price.is_zero() {
            // The catalogue and the limits rule it out; a zero quote would tell the
            // front-end the service is free and settle it unpaid, so never assumed.
            return Err(refuse(format!(
                "service `{}` cannot be quoted at zero",
                item.id()
            )));
        }
        let number = self
            .quotes_issued
            .checked_add(1)
            .ok_or_else(|| refuse("the server has no quote numbers left".to_owned()))?;

        let mut static_info = item.static_info();
        if let Some(designation) = designation {
            static_info.designation = designation.into();
        }
        let quote = Quote {
            purchase: request.purchase.clone(),
            quote: QuoteId(Text::format(format_args!("Q-{number:06}"))),
            service: item.id().clone(),
            static_info,
            variable: VariableInfo {
                price,
                available: true,
            },
            validity: validity(item, now),
            service_enclosed: if item.deliver_with_quote() {
                content_delivery(item)
            } else {
                None
            },
        };
        self.quotes_issued = number;
        self.purchases.insert(
            request.purchase.clone(),
            Box::new(QuotedPurchase {
                request: request.clone(),
                quote: quote.clone(),
                delivery: None,
            }),
        );
        Ok(quote)
    }

    /// I → J: delivers the service of a quote this server issued for that purchase.
    ///
    /// Content items deliver their content with its SHA-256; physical goods deliver an
    /// order (a new order number, the address from the quote request); payment services
    /// (claim 17) are settled now — the bill marked paid by this purchase, or the
    /// account credited — and deliver a [`Delivery::Receipt`] (a new receipt number, the
    /// bill or account, the quoted amount, the account's new standing, the order's
    /// customer). The server delivers whenever the order comes, even after the quote's
    /// validity: validity bounds when the transaction may be made, and by step I it
    /// has been acknowledged. A Fig. 7 quote already carried the service; an order for
    /// it gets that same content again.
    ///
    /// [`Unavailable`] when the server is out of service, the order names a quote this
    /// server did not issue for that purchase and service, the item is for identified
    /// users (claim 16) and the order names no customer, the bill was paid meanwhile by
    /// another purchase, or the reload would take the account past
    /// [`MAX_BALANCE_MINOR`]. The front-end then reverses the payment.
    pub fn handle_service_order(
        &mut self,
        order: &ServiceOrder,
    ) -> Result<ServiceDelivery, Unavailable> {
        let refuse = |reason: String| Unavailable {
            purchase: order.purchase.clone(),
            service: order.service.clone(),
            reason,
        };
        if !self.in_service {
            return Err(refuse(self.out_of_service()));
        }
        let Some(quoted) = self.purchases.get(&order.purchase) else {
            return Err(refuse(format!(
                "no quote `{}` was issued for purchase `{}`",
                order.quote, order.purchase
            )));
        };
        if quoted.quote.quote != order.quote {
            return Err(refuse(format!(
                "quote `{}` was not issued for purchase `{}` (its quote is {})",
                order.quote, order.purchase, quoted.quote.quote
            )));
        }
        if quoted.quote.service != order.service {
            return Err(refuse(format!(
                "quote `{}` is for service `{}`, not `{}`",
                order.quote, quoted.quote.service, order.service
            )));
        }
        if let Some(delivery) = &quoted.delivery {
            // Idempotence: the same delivery again, no new order or receipt number.
            return Ok(delivery.clone());
        }
        // The catalogue does not change under a server, so a quoted service is always
        // in it; answered rather than assumed.
        let item = self.catalogue.get(&order.service).ok_or_else(|| {
            refuse(format!(
                "no service `{}` in the catalogue of `{}`",
                order.service,
                self.catalogue.provider()
            ))
        })?;
        if item.identification_required() && order.customer.is_none() {
            // Claim 16: the front-end identifies the user before paying and names the
            // customer here; an order without one was never identified.
            return Err(refuse(format!(
                "service `{}` ({}) is delivered to identified customers only, and the order names no customer",
                item.id(),
                item.designation()
            )));
        }
        let (delivery, settlement) = self
            .settle(item, quoted, order.customer.as_ref())
            .map_err(&refuse)?;

        let served = ServiceDelivery {
            purchase: order.purchase.clone(),
            service: order.service.clone(),
            delivery,
        };
        self.apply(&order.purchase, &order.service, settlement);
        if let Some(quoted) = self.purchases.get_mut(&order.purchase) {
            quoted.delivery = Some(served.clone());
        }
        Ok(served)
    }

    /// Decides what an order for `item`, quoted as `quoted`, delivers and changes,
    /// without changing anything; `Err` is the reason it cannot be served.
    fn settle(
        &self,
        item: &CatalogueItem,
        quoted: &QuotedPurchase,
        customer: Option<&CustomerId>,
    ) -> Result<(Delivery, Settlement), String> {
        if let Some(enclosed) = &quoted.quote.service_enclosed {
            return Ok((enclosed.clone(), Settlement::Content));
        }
        let amount = quoted.quote.variable.price;
        let payment_service = quoted.request.payment_service.as_ref();
        let receipt_number = || {
            self.receipts_issued
                .checked_add(1)
                .ok_or_else(|| "the server has no receipt numbers left".to_owned())
        };
        let receipt =
            |number: u64, reference: &str, balance: Option<AccountBalance>| Delivery::Receipt {
                receipt: format!("RCP-{number:06}"),
                reference: reference.to_owned(),
                amount,
                balance,
                customer: customer.cloned(),
            };
        match item.kind() {
            // A pay-per-time service is delivered once, when its first unit is paid: the
            // content is its access (the stream's address, the connection's ticket);
            // the front-end meters the time.
            ServiceKind::Document | ServiceKind::PayPerView | ServiceKind::PayPerTime => {
                content_delivery(item)
                    .map(|content| (content, Settlement::Content))
                    .ok_or_else(|| format!("service `{}` has no content to deliver", item.id()))
            }
            ServiceKind::PhysicalGood => {
                let number = self
                    .orders_placed
                    .checked_add(1)
                    .ok_or_else(|| "the server has no order numbers left".to_owned())?;
                // The quote was only issued with a complete address; checked again so
                // that no path depends on that.
                let address = quoted.request.delivery_address.clone().ok_or_else(|| {
                    format!(
                        "service `{}` is a physical good and needs a delivery address",
                        item.id()
                    )
                })?;
                let delivery = Delivery::Order {
                    order: format!("ORD-{number:06}"),
                    address,
                };
                Ok((delivery, Settlement::Order { number }))
            }
            ServiceKind::BillPayment => {
                // A bill quoted to two purchases is paid by the first order only.
                let reference = bill_reference(item, payment_service)?;
                let bill = self.payable_bill(item, reference)?;
                let number = receipt_number()?;
                Ok((
                    receipt(number, bill.reference(), None),
                    Settlement::Bill {
                        reference: bill.reference().to_owned(),
                        receipt: number,
                    },
                ))
            }
            ServiceKind::AccountReload => {
                let (account, chosen) = reload_terms(item, payment_service)?;
                // From the balance now: other reloads may have been credited since the
                // quote.
                let balance = self.reloaded_balance(item, account, chosen)?;
                let number = receipt_number()?;
                Ok((
                    receipt(number, account, Some(balance)),
                    Settlement::Reload {
                        account: account.to_owned(),
                        balance,
                        receipt: number,
                    },
                ))
            }
        }
    }

    /// Applies what [`ServiceServer::settle`] decided for `purchase`.
    fn apply(&mut self, purchase: &PurchaseId, service: &ServiceId, settlement: Settlement) {
        match settlement {
            Settlement::Content => {}
            Settlement::Order { number } => self.orders_placed = number,
            Settlement::Bill { reference, receipt } => {
                self.bills_paid
                    .entry(service.clone())
                    .or_default()
                    .insert(reference, purchase.clone());
                self.receipts_issued = receipt;
            }
            Settlement::Reload {
                account,
                balance,
                receipt,
            } => {
                self.balances
                    .entry(service.clone())
                    .or_default()
                    .insert(account, balance);
                self.receipts_issued = receipt;
            }
        }
    }

    /// The bill `reference` of `item`, if it is there and unpaid.
    fn payable_bill<'c>(
        &self,
        item: &'c CatalogueItem,
        reference: &str,
    ) -> Result<&'c Bill, String> {
        let bill = item
            .bill(reference)
            .ok_or_else(|| format!("no bill `{reference}` for service `{}`", item.id()))?;
        match self.bill_paid_by(item.id(), reference) {
            Some(payer) => Err(format!(
                "bill `{reference}` of service `{}` was already paid by purchase `{payer}`",
                item.id()
            )),
            None => Ok(bill),
        }
    }

    /// The standing of `item`'s account `number` after a reload of `amount`, from its
    /// standing now; `Err` if there is no such account or the balance would pass
    /// [`MAX_BALANCE_MINOR`].
    fn reloaded_balance(
        &self,
        item: &CatalogueItem,
        number: &str,
        amount: Money,
    ) -> Result<AccountBalance, String> {
        let now = self
            .account_balance(item.id(), number)
            .ok_or_else(|| format!("no account `{number}` for service `{}`", item.id()))?;
        reloaded(now, amount).ok_or_else(|| {
            format!(
                "a reload of {amount} would take account `{number}` of service `{}` past the largest balance, {}",
                item.id(),
                Money::new(MAX_BALANCE_MINOR, amount.currency)
            )
        })
    }

    fn out_of_service(&self) -> String {
        format!(
            "the service server `{}` is out of service",
            self.catalogue.provider()
        )
    }
}

/// The bill reference a bill-payment request names; `Err` is the reason it names none.
fn bill_reference<'r>(
    item: &CatalogueItem,
    payment_service: Option<&'r PaymentService>,
) -> Result<&'r str, String> {
    match payment_service {
        Some(PaymentService::Bill { reference }) => Ok(reference),
        Some(PaymentService::Reload { account, .. }) => Err(format!(
            "service `{}` pays a bill: the request names account `{account}` to reload instead of a bill reference",
            item.id()
        )),
        None => Err(format!(
            "service `{}` pays a bill: the request names no bill reference",
            item.id()
        )),
    }
}

/// The account and amount a reload request names, checked against the item: an
/// account it has, the item's currency, and its limits (both included).
fn reload_terms<'r>(
    item: &CatalogueItem,
    payment_service: Option<&'r PaymentService>,
) -> Result<(&'r str, Money), String> {
    let (account, amount) = match payment_service {
        Some(PaymentService::Reload { account, amount }) => (account.as_str(), *amount),
        Some(PaymentService::Bill { reference }) => {
            return Err(format!(
                "service `{}` reloads an account: the request names bill `{reference}` instead of an account and an amount",
                item.id()
            ));
        }
        None => {
            return Err(format!(
                "service `{}` reloads an account: the request names no account and amount",
                item.id()
            ));
        }
    };
    if item.account(account).is_none() {
        return Err(format!(
            "no account `{account}` for service `{}`",
            item.id()
        ));
    }
    // The whole currency, exponent included: minor units of another exponent are
    // another amount.
    if amount.currency != item.currency() {
        return Err(format!(
            "the reload of {amount} for account `{account}` is not in {}, the currency of service `{}`",
            item.currency().alpha(),
            item.id()
        ));
    }
    let Some((min, max)) = item.reload_range() else {
        return Err(format!("service `{}` has no reload limits", item.id()));
    };
    if amount.minor < min.minor || amount.minor > max.minor {
        return Err(format!(
            "a reload of {amount} for account `{account}` is outside the limits of service `{}`: {min} to {max}",
            item.id()
        ));
    }
    Ok((account, amount))
}

/// An account's standing after `amount` is credited to it: a credit grows; what is
/// owed shrinks, and what is paid beyond it becomes a credit. `None` when the amount is
/// in another currency than the balance, or a credit would pass [`MAX_BALANCE_MINOR`].
fn reloaded(balance: AccountBalance, amount: Money) -> Option<AccountBalance> {
    match balance {
        AccountBalance::Credit(credit) => {
            if credit.currency != amount.currency {
                return None;
            }
            credit
                .minor
                .checked_add(amount.minor)
                .filter(|&minor| minor <= MAX_BALANCE_MINOR)
                .map(|minor| AccountBalance::Credit(Money::new(minor, credit.currency)))
        }
        AccountBalance::Owed(owed) => {
            if owed.currency != amount.currency {
                return None;
            }
            match owed.minor.checked_sub(amount.minor) {
                Some(left) => Some(AccountBalance::Owed(Money::new(left, owed.currency))),
                None => amount
                    .minor
                    .checked_sub(owed.minor)
                    .filter(|&excess| excess <= MAX_BALANCE_MINOR)
                    .map(|excess| AccountBalance::Credit(Money::new(excess, owed.currency))),
            }
        }
    }
}

/// The quote's validity: from `now` for the item's `validity_seconds`.
fn validity(item: &CatalogueItem, now: Timestamp) -> QuoteValidity {
    // At most 365 days in milliseconds: far inside i64; saturate rather than assume.
    let millis = i64::try_from(item.validity_seconds())
        .ok()
        .and_then(|seconds| seconds.checked_mul(1000))
        .unwrap_or(i64::MAX);
    QuoteValidity {
        issued_at: now,
        valid_until: now.plus_millis(millis),
    }
}

/// The item's content as a delivery (with its digest); `None` for items without
/// content (physical goods, payment services).
fn content_delivery(item: &CatalogueItem) -> Option<Delivery> {
    // The digest was computed when the catalogue was read: hashing the same bytes at
    // every delivery gave the same 32 bytes each time.
    let (content, sha256) = item.content().zip(item.content_sha256())?;
    Some(Delivery::Content {
        media_type: content.media_type.clone(),
        bytes: content.bytes.clone(),
        sha256: *sha256,
    })
}

/// What makes an address unusable for shipping, if anything.
fn address_problem(address: &PostalAddress) -> Option<String> {
    let blank = |text: &str| text.trim().is_empty();
    if blank(&address.name) {
        return Some("no addressee name".to_owned());
    }
    if address.lines.iter().all(|line| blank(line)) {
        return Some("no street line".to_owned());
    }
    if blank(&address.postcode) {
        return Some("no postcode".to_owned());
    }
    if blank(&address.town) {
        return Some("no town".to_owned());
    }
    let country = address.country.as_bytes();
    if country.len() != 2 || !country.iter().all(u8::is_ascii_uppercase) {
        return Some(format!(
            "country {:?} is not an ISO 3166-1 alpha-2 code",
            address.country
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::{Currency, StaticInfo};
    use crate::provider::format_price;
    use proptest::prelude::*;
    use sha2::Digest;

    /// 2026-11-25 12:00:00 UTC.
    const NOW: Timestamp = Timestamp(1_795_608_000_000);

    fn server() -> ServiceServer {
        ServiceServer::new(Catalogue::demo().unwrap())
    }

    fn address() -> PostalAddress {
        PostalAddress {
            name: "Anne Martin".into(),
            lines: vec!["12 rue des Lices".into()],
            postcode: "35000".into(),
            town: "Rennes".into(),
            country: "FR".into(),
        }
    }

    fn request(purchase: &str, service: &str) -> QuoteRequest {
        QuoteRequest {
            purchase: PurchaseId::from(purchase),
            service: ServiceId::from(service),
            delivery_address: None,
            payment_service: None,
        }
    }

    fn goods_request(purchase: &str) -> QuoteRequest {
        QuoteRequest {
            delivery_address: Some(address()),
            ..request(purchase, "printed-travel-guide")
        }
    }

    fn order_for(quote: &Quote) -> ServiceOrder {
        ServiceOrder {
            purchase: quote.purchase.clone(),
            quote: quote.quote.clone(),
            service: quote.service.clone(),
            customer: None,
        }
    }

    /// The reason of an expected refusal, after checking it names the request.
    fn refusal<T: std::fmt::Debug>(
        answer: Result<T, Unavailable>,
        purchase: &str,
        service: &str,
    ) -> String {
        let refusal = answer.expect_err("expected Unavailable");
        assert_eq!(refusal.purchase, PurchaseId::from(purchase));
        assert_eq!(refusal.service, ServiceId::from(service));
        refusal.reason
    }

    #[test]
    fn a_document_is_quoted_then_delivered_after_the_order() {
        let mut server = server();
        let quote = server
            .handle_quote_request(&request("P1", "market-report-2026"), NOW)
            .unwrap();
        assert_eq!(
            quote,
            Quote {
                purchase: PurchaseId::from("P1"),
                quote: QuoteId::from("Q-000001"),
                service: ServiceId::from("market-report-2026"),
                static_info: StaticInfo {
                    designation: "Annual market report 2026".into(),
                    kind: ServiceKind::Document,
                    identification_required: false,
                    unit_billing: None,
                },
                variable: VariableInfo {
                    price: Money::new(250, Currency::EUR),
                    available: true,
                },
                validity: QuoteValidity {
                    issued_at: NOW,
                    valid_until: Timestamp(NOW.0 + 300_000),
                },
                service_enclosed: None,
            }
        );

        let served = server.handle_service_order(&order_for(&quote)).unwrap();
        assert_eq!(served.purchase, PurchaseId::from("P1"));
        assert_eq!(served.service, ServiceId::from("market-report-2026"));
        assert_eq!(
            served.delivery,
            Delivery::content(
                "text/plain; charset=utf-8",
                include_bytes!("demo/market-report-2026.txt").to_vec()
            )
        );
        assert!(served.delivery.is_intact());
        assert_eq!((server.quotes_issued(), server.orders_placed()), (1, 0));
    }

    #[test]
    fn pay_per_view_and_free_items_deliver_content_after_the_order() {
        let mut server = server();
        for (purchase, service, price, seconds) in [
            ("P1", "cup-final-replay", 390, 120),
            ("P2", "library-opening-hours", 0, 300),
            ("P3", "card-payments-guide", 120, 300),
        ] {
            let quote = server
                .handle_quote_request(&request(purchase, service), NOW)
                .unwrap();
            assert_eq!(quote.variable.price, Money::new(price, Currency::EUR));
            assert_eq!(quote.validity.valid_until, NOW.plus_millis(seconds * 1000));
            assert_eq!(quote.service_enclosed, None, "{service}");
            let served = server.handle_service_order(&order_for(&quote)).unwrap();
            let content = server
                .catalogue()
                .get(&ServiceId::from(service))
                .and_then(|item| item.content())
                .unwrap();
            assert_eq!(
                served.delivery,
                Delivery::content(&content.media_type, content.bytes.clone())
            );
        }
        assert_eq!(server.quotes_issued(), 3);
    }

    #[test]
    fn fig7_the_quote_carries_the_service_with_its_digest() {
        let mut server = server();
        let quote = server
            .handle_quote_request(&request("P7", "marine-weather-live"), NOW)
            .unwrap();
        let Some(Delivery::Content {
            media_type,
            bytes,
            sha256,
        }) = &quote.service_enclosed
        else {
            panic!(
                "expected enclosed content, got {:?}",
                quote.service_enclosed
            );
        };
        assert_eq!(media_type, "text/plain; charset=utf-8");
        assert!(
            std::str::from_utf8(bytes)
                .unwrap()
                .starts_with("Marine weather bulletin")
        );
        let expected: [u8; 32] = sha2::Sha256::digest(bytes).into();
        assert_eq!(sha256, &expected);
        assert_eq!(quote.variable.price, Money::new(50, Currency::EUR));

        // I and J are not needed; an order anyway gets the very content enclosed.
        let served = server.handle_service_order(&order_for(&quote)).unwrap();
        assert_eq!(Some(served.delivery), quote.service_enclosed);
    }

    #[test]
    fn a_physical_good_is_delivered_as_an_order_to_the_quoted_address() {
        let mut server = server();
        let quote = server
            .handle_quote_request(&goods_request("P1"), NOW)
            .unwrap();
        assert_eq!(quote.static_info.kind, ServiceKind::PhysicalGood);
        assert_eq!(quote.variable.price, Money::new(1990, Currency::EUR));
        assert_eq!(quote.service_enclosed, None);
        let served = server.handle_service_order(&order_for(&quote)).unwrap();
        assert_eq!(
            served.delivery,
            Delivery::Order {
                order: "ORD-000001".into(),
                address: address(),
            }
        );
        assert_eq!(server.orders_placed(), 1);
    }

    #[test]
    fn a_repeated_quote_request_gets_the_same_quote_issued_once() {
        let mut server = server();
        let first = server
            .handle_quote_request(&request("P1", "market-report-2026"), NOW)
            .unwrap();
        // Later, even after the validity: the same quote, not a new one.
        let later = NOW.plus_millis(3_600_000);
        let again = server
            .handle_quote_request(&request("P1", "market-report-2026"), later)
            .unwrap();
        assert_eq!(again, first);
        assert_eq!(server.quotes_issued(), 1);

        // A different purchase id gets the next quote number.
        let next = server
            .handle_quote_request(&request("P2", "market-report-2026"), later)
            .unwrap();
        assert_eq!(next.quote, QuoteId::from("Q-000002"));
        assert_eq!(next.validity.issued_at, later);
    }

    #[test]
    fn a_repeated_order_gets_the_same_delivery_and_order_number() {
        let mut server = server();
        let quote = server
            .handle_quote_request(&goods_request("P1"), NOW)
            .unwrap();
        let first = server.handle_service_order(&order_for(&quote)).unwrap();
        let again = server.handle_service_order(&order_for(&quote)).unwrap();
        assert_eq!(again, first);
        assert_eq!(server.orders_placed(), 1);

        let other = server
            .handle_quote_request(&goods_request("P2"), NOW)
            .unwrap();
        let second = server.handle_service_order(&order_for(&other)).unwrap();
        assert!(
            matches!(&second.delivery, Delivery::Order { order, .. } if order == "ORD-000002"),
            "{second:?}"
        );
    }

    #[test]
    fn a_purchase_is_quoted_once_a_different_request_is_refused() {
        let mut server = server();
        server
            .handle_quote_request(&request("P1", "market-report-2026"), NOW)
            .unwrap();
        let reason = refusal(
            server.handle_quote_request(&request("P1", "cup-final-replay"), NOW),
            "P1",
            "cup-final-replay",
        );
        assert_eq!(
            reason,
            "purchase `P1` was already quoted (Q-000001 for service `market-report-2026`); a purchase is quoted once"
        );
        assert_eq!(server.quotes_issued(), 1);
    }

    #[test]
    fn quote_requests_the_server_cannot_honour_are_unavailable() {
        let mut server = server();
        let incomplete = |change: fn(&mut PostalAddress)| {
            let mut address = address();
            change(&mut address);
            QuoteRequest {
                delivery_address: Some(address),
                ..request("P1", "printed-travel-guide")
            }
        };
        let cases: Vec<(QuoteRequest, &str)> = vec![
            (
                request("P1", "no-such-thing"),
                "no service `no-such-thing` in the catalogue of `demo-publisher`",
            ),
            (
                request("P1", "press-archive-1996"),
                "service `press-archive-1996` (Press archive 1996, full year) is not available at the moment",
            ),
            (
                request("P1", "printed-travel-guide"),
                "service `printed-travel-guide` is a physical good and needs a delivery address",
            ),
            (
                incomplete(|address| address.name = " ".into()),
                "the delivery address for `printed-travel-guide` is incomplete: no addressee name",
            ),
            (
                incomplete(|address| address.lines.clear()),
                "the delivery address for `printed-travel-guide` is incomplete: no street line",
            ),
            (
                incomplete(|address| address.postcode.clear()),
                "the delivery address for `printed-travel-guide` is incomplete: no postcode",
            ),
            (
                incomplete(|address| address.town.clear()),
                "the delivery address for `printed-travel-guide` is incomplete: no town",
            ),
            (
                incomplete(|address| address.country = "France".into()),
                "the delivery address for `printed-travel-guide` is incomplete: country \"France\" is not an ISO 3166-1 alpha-2 code",
            ),
        ];
        for (request, expected) in &cases {
            let reason = refusal(
                server.handle_quote_request(request, NOW),
                &request.purchase.0,
                &request.service.0,
            );
            assert_eq!(reason, *expected);
        }
        // Nothing was issued, so the purchase can still be quoted.
        assert_eq!(server.quotes_issued(), 0);
        let quote = server
            .handle_quote_request(&goods_request("P1"), NOW)
            .unwrap();
        assert_eq!(quote.quote, QuoteId::from("Q-000001"));
    }

    #[test]
    fn orders_for_quotes_the_server_did_not_issue_are_unavailable() {
        let mut server = server();
        let quote = server
            .handle_quote_request(&request("P1", "market-report-2026"), NOW)
            .unwrap();
        let cases = [
            (
                ServiceOrder {
                    purchase: PurchaseId::from("P9"),
                    ..order_for(&quote)
                },
                "P9",
                "market-report-2026",
                "no quote `Q-000001` was issued for purchase `P9`",
            ),
            (
                ServiceOrder {
                    quote: QuoteId::from("Q-000042"),
                    ..order_for(&quote)
                },
                "P1",
                "market-report-2026",
                "quote `Q-000042` was not issued for purchase `P1` (its quote is Q-000001)",
            ),
            (
                ServiceOrder {
                    service: ServiceId::from("cup-final-replay"),
                    ..order_for(&quote)
                },
                "P1",
                "cup-final-replay",
                "quote `Q-000001` is for service `market-report-2026`, not `cup-final-replay`",
            ),
        ];
        for (order, purchase, service, expected) in &cases {
            let reason = refusal(server.handle_service_order(order), purchase, service);
            assert_eq!(reason, *expected);
        }
        // The genuine order still goes through.
        assert!(server.handle_service_order(&order_for(&quote)).is_ok());
    }

    #[test]
    fn a_server_out_of_service_answers_unavailable_and_changes_nothing() {
        let mut server = server();
        let quote = server
            .handle_quote_request(&goods_request("P1"), NOW)
            .unwrap();
        server.set_available(false);
        assert!(!server.is_available());
        let down = "the service server `demo-publisher` is out of service";
        assert_eq!(
            refusal(
                server.handle_quote_request(&request("P2", "market-report-2026"), NOW),
                "P2",
                "market-report-2026"
            ),
            down
        );
        assert_eq!(
            refusal(
                server.handle_quote_request(&goods_request("P1"), NOW),
                "P1",
                "printed-travel-guide"
            ),
            down
        );
        assert_eq!(
            refusal(
                server.handle_service_order(&order_for(&quote)),
                "P1",
                "printed-travel-guide"
            ),
            down
        );
        assert_eq!((server.quotes_issued(), server.orders_placed()), (1, 0));

        // Back in service: the repeat gets the quote issued before, then the order.
        server.set_available(true);
        assert_eq!(
            server.handle_quote_request(&goods_request("P1"), NOW),
            Ok(quote.clone())
        );
        let served = server.handle_service_order(&order_for(&quote)).unwrap();
        assert!(
            matches!(served.delivery, Delivery::Order { ref order, .. } if order == "ORD-000001")
        );
    }

    #[test]
    fn validity_is_measured_from_the_time_given() {
        let mut server = server();
        let quote = server
            .handle_quote_request(&request("P1", "marine-weather-live"), Timestamp(0))
            .unwrap();
        assert_eq!(
            quote.validity,
            QuoteValidity {
                issued_at: Timestamp(0),
                valid_until: Timestamp(60_000),
            }
        );
        assert!(quote.validity.holds_at(Timestamp(60_000)));
        assert!(!quote.validity.holds_at(Timestamp(60_001)));
        // Near the end of time the validity saturates instead of overflowing.
        let quote = server
            .handle_quote_request(
                &request("P2", "marine-weather-live"),
                Timestamp(i64::MAX - 5),
            )
            .unwrap();
        assert_eq!(quote.validity.valid_until, Timestamp(i64::MAX));
    }

    // Payment services (claim 17) and identified-only items (claim 16).

    const WATER: &str = "city-water-bill";
    const PHONE: &str = "prepaid-phone-credit";
    const TRANSIT: &str = "transit-pass-account";

    fn eur(minor: u64) -> Money {
        Money::new(minor, Currency::EUR)
    }

    fn customer() -> CustomerId {
        CustomerId::from("C-0123456789ABCDEF")
    }

    fn bill_request(purchase: &str, reference: &str) -> QuoteRequest {
        QuoteRequest {
            payment_service: Some(PaymentService::Bill {
                reference: reference.into(),
            }),
            ..request(purchase, WATER)
        }
    }

    fn reload_request(purchase: &str, service: &str, account: &str, amount: Money) -> QuoteRequest {
        QuoteRequest {
            payment_service: Some(PaymentService::Reload {
                account: account.into(),
                amount,
            }),
            ..request(purchase, service)
        }
    }

    /// The order for `quote`, by an identified customer.
    fn identified_order(quote: &Quote) -> ServiceOrder {
        ServiceOrder {
            customer: Some(customer()),
            ..order_for(quote)
        }
    }

    /// Quotes and orders a reload; the receipt's balance.
    fn reload(
        server: &mut ServiceServer,
        purchase: &str,
        service: &str,
        account: &str,
        amount: Money,
    ) -> Result<Delivery, Unavailable> {
        let quote = server
            .handle_quote_request(&reload_request(purchase, service, account, amount), NOW)?;
        server
            .handle_service_order(&identified_order(&quote))
            .map(|served| served.delivery)
    }

    #[test]
    fn a_bill_is_quoted_at_its_amount_and_paid_by_the_order() {
        let mut server = server();
        let quote = server
            .handle_quote_request(&bill_request("P1", "W-2026-1107"), NOW)
            .unwrap();
        assert_eq!(
            quote,
            Quote {
                purchase: PurchaseId::from("P1"),
                quote: QuoteId::from("Q-000001"),
                service: ServiceId::from(WATER),
                static_info: StaticInfo {
                    designation: "City water board bill, bill W-2026-1107".into(),
                    kind: ServiceKind::BillPayment,
                    identification_required: false,
                    unit_billing: None,
                },
                variable: VariableInfo {
                    price: eur(4280),
                    available: true,
                },
                validity: QuoteValidity {
                    issued_at: NOW,
                    valid_until: NOW.plus_millis(600_000),
                },
                service_enclosed: None,
            }
        );
        // A quote reserves nothing: the bill is paid on the order.
        let water = ServiceId::from(WATER);
        assert_eq!(server.bill_paid_by(&water, "W-2026-1107"), None);

        let served = server.handle_service_order(&order_for(&quote)).unwrap();
        assert_eq!(
            served,
            ServiceDelivery {
                purchase: PurchaseId::from("P1"),
                service: water.clone(),
                delivery: Delivery::Receipt {
                    receipt: "RCP-000001".into(),
                    reference: "W-2026-1107".into(),
                    amount: eur(4280),
                    balance: None,
                    customer: None,
                },
            }
        );
        assert_eq!(
            server.bill_paid_by(&water, "W-2026-1107"),
            Some(&PurchaseId::from("P1"))
        );
        assert_eq!(server.bill_paid_by(&water, "W-2026-1108"), None);
        assert_eq!((server.receipts_issued(), server.orders_placed()), (1, 0));

        // Paid: a new purchase of it is refused at the quote, before any payment.
        assert_eq!(
            refusal(
                server.handle_quote_request(&bill_request("P2", "W-2026-1107"), NOW),
                "P2",
                WATER
            ),
            "bill `W-2026-1107` of service `city-water-bill` was already paid by purchase `P1`"
        );
        // The other bill is its own, with the next receipt.
        let other = server
            .handle_quote_request(&bill_request("P3", "W-2026-1108"), NOW)
            .unwrap();
        assert_eq!(other.variable.price, eur(1735));
        let served = server.handle_service_order(&order_for(&other)).unwrap();
        assert!(
            matches!(&served.delivery, Delivery::Receipt { receipt, amount, .. } if receipt == "RCP-000002" && *amount == eur(1735)),
            "{served:?}"
        );
    }

    #[test]
    fn a_bill_quoted_to_two_purchases_is_paid_by_the_first_order_only() {
        let mut server = server();
        let first = server
            .handle_quote_request(&bill_request("P1", "W-2026-1108"), NOW)
            .unwrap();
        let second = server
            .handle_quote_request(&bill_request("P2", "W-2026-1108"), NOW)
            .unwrap();
        // P2's payment is acknowledged first: its order pays the bill.
        let paid = server.handle_service_order(&order_for(&second)).unwrap();
        let reason = refusal(server.handle_service_order(&order_for(&first)), "P1", WATER);
        assert_eq!(
            reason,
            "bill `W-2026-1108` of service `city-water-bill` was already paid by purchase `P2`"
        );
        // The refusal changed nothing, and stays a refusal.
        let water = ServiceId::from(WATER);
        assert_eq!(
            server.bill_paid_by(&water, "W-2026-1108"),
            Some(&PurchaseId::from("P2"))
        );
        assert_eq!(server.receipts_issued(), 1);
        assert_eq!(
            refusal(server.handle_service_order(&order_for(&first)), "P1", WATER),
            reason
        );
        // P2's order repeated: the same receipt, no new number.
        assert_eq!(server.handle_service_order(&order_for(&second)), Ok(paid));
        assert_eq!(server.receipts_issued(), 1);
    }

    #[test]
    fn bill_requests_without_a_payable_bill_are_unavailable() {
        let mut server = server();
        let cases = [
            (
                request("P1", WATER),
                "service `city-water-bill` pays a bill: the request names no bill reference",
            ),
            (
                reload_request("P1", WATER, "W-2026-1107", eur(4280)),
                "service `city-water-bill` pays a bill: the request names account `W-2026-1107` to reload instead of a bill reference",
            ),
            (
                bill_request("P1", "W-2026-9999"),
                "no bill `W-2026-9999` for service `city-water-bill`",
            ),
            // References are compared exactly.
            (
                bill_request("P1", "w-2026-1107"),
                "no bill `w-2026-1107` for service `city-water-bill`",
            ),
            (
                bill_request("P1", "W-2026-1107 "),
                "no bill `W-2026-1107 ` for service `city-water-bill`",
            ),
        ];
        for (request, expected) in &cases {
            let reason = refusal(server.handle_quote_request(request, NOW), "P1", WATER);
            assert_eq!(reason, *expected);
        }
        assert_eq!(server.quotes_issued(), 0);
    }

    #[test]
    fn a_prepaid_account_is_credited_by_the_order() {
        let mut server = server();
        let phone = ServiceId::from(PHONE);
        let quote = server
            .handle_quote_request(&reload_request("P1", PHONE, "0612345678", eur(1000)), NOW)
            .unwrap();
        assert_eq!(
            quote.static_info,
            StaticInfo {
                designation: "Prepaid phone credit, account 0612345678: reload of 10.00 EUR".into(),
                kind: ServiceKind::AccountReload,
                identification_required: false,
                unit_billing: None,
            }
        );
        assert_eq!(quote.variable.price, eur(1000));
        assert_eq!(quote.validity.valid_until, NOW.plus_millis(300_000));
        // Nothing credited before the order.
        assert_eq!(
            server.account_balance(&phone, "0612345678"),
            Some(AccountBalance::Credit(eur(320)))
        );

        let served = server.handle_service_order(&order_for(&quote)).unwrap();
        assert_eq!(
            served.delivery,
            Delivery::Receipt {
                receipt: "RCP-000001".into(),
                reference: "0612345678".into(),
                amount: eur(1000),
                balance: Some(AccountBalance::Credit(eur(1320))),
                customer: None,
            }
        );
        // The limits are included at both ends.
        assert_eq!(
            reload(&mut server, "P2", PHONE, "0612345678", eur(500)),
            Ok(Delivery::Receipt {
                receipt: "RCP-000002".into(),
                reference: "0612345678".into(),
                amount: eur(500),
                balance: Some(AccountBalance::Credit(eur(1820))),
                customer: Some(customer()),
            })
        );
        assert!(reload(&mut server, "P3", PHONE, "0612345678", eur(10_000)).is_ok());
        assert_eq!(
            server.account_balance(&phone, "0612345678"),
            Some(AccountBalance::Credit(eur(11_820)))
        );
        assert_eq!(server.account_balance(&phone, "0699999999"), None);
        assert_eq!(server.receipts_issued(), 3);
    }

    #[test]
    fn a_reload_pays_off_what_is_owed_and_an_overpayment_becomes_a_credit() {
        let mut server = server();
        let transit = ServiceId::from(TRANSIT);
        let balance_after = |server: &mut ServiceServer, purchase: &str, minor: u64| match reload(
            server,
            purchase,
            TRANSIT,
            "TP-884211",
            eur(minor),
        ) {
            Ok(Delivery::Receipt { balance, .. }) => balance,
            other => panic!("expected a receipt, got {other:?}"),
        };
        assert_eq!(
            server.account_balance(&transit, "TP-884211"),
            Some(AccountBalance::Owed(eur(2540)))
        );
        assert_eq!(
            balance_after(&mut server, "P1", 2000),
            Some(AccountBalance::Owed(eur(540)))
        );
        assert_eq!(
            balance_after(&mut server, "P2", 540),
            Some(AccountBalance::Owed(eur(0)))
        );
        assert_eq!(
            balance_after(&mut server, "P3", 1000),
            Some(AccountBalance::Credit(eur(1000)))
        );
        assert_eq!(
            balance_after(&mut server, "P4", 150),
            Some(AccountBalance::Credit(eur(1150)))
        );

        // In one go: 30.00 against 25.40 owed leaves a credit of 4.60.
        let mut fresh = self::server();
        assert_eq!(
            balance_after(&mut fresh, "P1", 3000),
            Some(AccountBalance::Credit(eur(460)))
        );
        assert_eq!(
            fresh.account_balance(&transit, "TP-884211"),
            Some(AccountBalance::Credit(eur(460)))
        );
    }

    #[test]
    fn reload_requests_outside_the_terms_are_unavailable() {
        let mut server = server();
        // The euro's code with three decimals is another currency.
        let odd_euro = Currency {
            numeric: 978,
            exponent: 3,
        };
        let cases = [
            (
                request("P1", PHONE),
                "service `prepaid-phone-credit` reloads an account: the request names no account and amount",
            ),
            (
                QuoteRequest {
                    service: ServiceId::from(PHONE),
                    ..bill_request("P1", "0612345678")
                },
                "service `prepaid-phone-credit` reloads an account: the request names bill `0612345678` instead of an account and an amount",
            ),
            (
                reload_request("P1", PHONE, "0699999999", eur(1000)),
                "no account `0699999999` for service `prepaid-phone-credit`",
            ),
            (
                reload_request("P1", PHONE, "0612345678", Money::new(1000, Currency::USD)),
                "the reload of 10.00 USD for account `0612345678` is not in EUR, the currency of service `prepaid-phone-credit`",
            ),
            (
                reload_request("P1", PHONE, "0612345678", Money::new(10_000, odd_euro)),
                "the reload of 10.000 EUR for account `0612345678` is not in EUR, the currency of service `prepaid-phone-credit`",
            ),
            (
                reload_request("P1", PHONE, "0612345678", eur(499)),
                "a reload of 4.99 EUR for account `0612345678` is outside the limits of service `prepaid-phone-credit`: 5.00 EUR to 100.00 EUR",
            ),
            (
                reload_request("P1", PHONE, "0612345678", eur(10_001)),
                "a reload of 100.01 EUR for account `0612345678` is outside the limits of service `prepaid-phone-credit`: 5.00 EUR to 100.00 EUR",
            ),
            // Never a zero quote, which the front-end would take for a free service.
            (
                reload_request("P1", PHONE, "0612345678", eur(0)),
                "a reload of 0.00 EUR for account `0612345678` is outside the limits of service `prepaid-phone-credit`: 5.00 EUR to 100.00 EUR",
            ),
            (
                reload_request("P1", PHONE, "0612345678", eur(u64::MAX)),
                "a reload of 184467440737095516.15 EUR for account `0612345678` is outside the limits of service `prepaid-phone-credit`: 5.00 EUR to 100.00 EUR",
            ),
        ];
        for (request, expected) in &cases {
            let reason = refusal(server.handle_quote_request(request, NOW), "P1", PHONE);
            assert_eq!(reason, *expected);
        }
        assert_eq!(server.quotes_issued(), 0);
        assert_eq!(
            server.account_balance(&ServiceId::from(PHONE), "0612345678"),
            Some(AccountBalance::Credit(eur(320)))
        );
    }

    /// A server with one prepaid account at `balance` (a price text), reloads from 0.01
    /// to 10.00 EUR.
    fn server_with_account(balance: &str) -> ServiceServer {
        let text = format!(
            "provider = \"p\"\n[[item]]\nid = \"top-up\"\ndesignation = \"Top-up\"\nkind = \"account-reload\"\ncurrency = \"EUR\"\nvalidity_seconds = 60\nmin_amount = \"0.01\"\nmax_amount = \"10.00\"\n[[item.account]]\nnumber = \"A-1\"\nprepaid = true\nbalance = \"{balance}\"\n"
        );
        ServiceServer::new(Catalogue::from_toml_str(&text, std::path::Path::new(".")).unwrap())
    }

    #[test]
    fn a_reload_that_would_pass_the_largest_balance_is_refused() {
        let mut server = server_with_account("9999999999.90");
        let top_up = ServiceId::from("top-up");
        let too_much = "a reload of 0.10 EUR would take account `A-1` of service `top-up` past the largest balance, 9999999999.99 EUR";
        assert_eq!(
            refusal(
                server.handle_quote_request(&reload_request("P1", "top-up", "A-1", eur(10)), NOW),
                "P1",
                "top-up"
            ),
            too_much
        );
        // Two reloads that fit one at a time, but not together: the second order is
        // refused, and the front-end reverses its payment.
        let first = server
            .handle_quote_request(&reload_request("P2", "top-up", "A-1", eur(6)), NOW)
            .unwrap();
        let second = server
            .handle_quote_request(&reload_request("P3", "top-up", "A-1", eur(6)), NOW)
            .unwrap();
        assert!(server.handle_service_order(&order_for(&first)).is_ok());
        assert_eq!(
            refusal(
                server.handle_service_order(&order_for(&second)),
                "P3",
                "top-up"
            ),
            "a reload of 0.06 EUR would take account `A-1` of service `top-up` past the largest balance, 9999999999.99 EUR"
        );
        assert_eq!(
            server.account_balance(&top_up, "A-1"),
            Some(AccountBalance::Credit(eur(999_999_999_996)))
        );
        assert_eq!(server.receipts_issued(), 1);
        // Up to the largest balance exactly is fine.
        assert!(reload(&mut server, "P4", "top-up", "A-1", eur(3)).is_ok());
        assert_eq!(
            server.account_balance(&top_up, "A-1"),
            Some(AccountBalance::Credit(eur(MAX_BALANCE_MINOR)))
        );
    }

    #[test]
    fn reload_arithmetic_is_exact_and_checked() {
        use AccountBalance::{Credit, Owed};
        let usd = |minor| Money::new(minor, Currency::USD);
        let cases = [
            (Credit(eur(320)), eur(1000), Some(Credit(eur(1320)))),
            (Credit(eur(0)), eur(1), Some(Credit(eur(1)))),
            (Owed(eur(2540)), eur(2000), Some(Owed(eur(540)))),
            (Owed(eur(2540)), eur(2540), Some(Owed(eur(0)))),
            (Owed(eur(2540)), eur(2541), Some(Credit(eur(1)))),
            (Owed(eur(0)), eur(500), Some(Credit(eur(500)))),
            (
                Credit(eur(MAX_BALANCE_MINOR - 1)),
                eur(1),
                Some(Credit(eur(MAX_BALANCE_MINOR))),
            ),
            (Credit(eur(MAX_BALANCE_MINOR)), eur(1), None),
            (Credit(eur(1)), eur(u64::MAX), None),
            (Owed(eur(1)), eur(u64::MAX), None),
            (
                Owed(eur(1)),
                eur(MAX_BALANCE_MINOR + 1),
                Some(Credit(eur(MAX_BALANCE_MINOR))),
            ),
            // Amounts in another currency are never added.
            (Credit(eur(100)), usd(100), None),
            (Owed(eur(100)), usd(100), None),
        ];
        for (before, amount, after) in cases {
            assert_eq!(reloaded(before, amount), after, "{before:?} + {amount}");
        }
    }

    #[test]
    fn identified_only_items_are_delivered_to_identified_customers_only() {
        let mut server = server();
        // A free document: quoted at zero, for identified users.
        let quote = server
            .handle_quote_request(&request("P1", "customer-area"), NOW)
            .unwrap();
        assert!(quote.static_info.identification_required);
        assert!(quote.variable.price.is_zero());
        let anonymous = order_for(&quote);
        assert_eq!(
            refusal(
                server.handle_service_order(&anonymous),
                "P1",
                "customer-area"
            ),
            "service `customer-area` (Customer area: your subscriptions and invoices) is delivered to identified customers only, and the order names no customer"
        );
        let served = server
            .handle_service_order(&identified_order(&quote))
            .unwrap();
        assert!(
            matches!(&served.delivery, Delivery::Content { media_type, .. } if media_type == "text/plain; charset=utf-8"),
            "{served:?}"
        );

        // An account reload for identified users: refused without a customer, and
        // nothing credited; the receipt names the customer.
        let transit = ServiceId::from(TRANSIT);
        let quote = server
            .handle_quote_request(&reload_request("P2", TRANSIT, "TP-884211", eur(1000)), NOW)
            .unwrap();
        assert!(quote.static_info.identification_required);
        assert_eq!(
            quote.static_info.designation,
            "Transit pass account (billed monthly), account TP-884211: reload of 10.00 EUR"
        );
        assert_eq!(
            refusal(
                server.handle_service_order(&order_for(&quote)),
                "P2",
                TRANSIT
            ),
            "service `transit-pass-account` (Transit pass account (billed monthly)) is delivered to identified customers only, and the order names no customer"
        );
        assert_eq!(
            server.account_balance(&transit, "TP-884211"),
            Some(AccountBalance::Owed(eur(2540)))
        );
        assert_eq!(server.receipts_issued(), 0);
        let served = server
            .handle_service_order(&identified_order(&quote))
            .unwrap();
        assert_eq!(
            served.delivery,
            Delivery::Receipt {
                receipt: "RCP-000001".into(),
                reference: "TP-884211".into(),
                amount: eur(1000),
                balance: Some(AccountBalance::Owed(eur(1540))),
                customer: Some(customer()),
            }
        );

        // Items for anyone do not need a customer, and pass one on when given.
        let quote = server
            .handle_quote_request(&bill_request("P3", "W-2026-1107"), NOW)
            .unwrap();
        assert!(!quote.static_info.identification_required);
        let served = server
            .handle_service_order(&identified_order(&quote))
            .unwrap();
        assert!(
            matches!(&served.delivery, Delivery::Receipt { customer: Some(who), .. } if *who == customer()),
            "{served:?}"
        );
    }

    #[test]
    fn a_repeated_payment_order_gets_the_same_receipt_and_credits_once() {
        let mut server = server();
        let quote = server
            .handle_quote_request(&reload_request("P1", PHONE, "0612345678", eur(2000)), NOW)
            .unwrap();
        // A repeated quote request is the same quote, and reserves nothing either.
        assert_eq!(
            server.handle_quote_request(&reload_request("P1", PHONE, "0612345678", eur(2000)), NOW),
            Ok(quote.clone())
        );
        // The same purchase with another amount is another request: refused.
        assert_eq!(
            refusal(
                server.handle_quote_request(
                    &reload_request("P1", PHONE, "0612345678", eur(3000)),
                    NOW
                ),
                "P1",
                PHONE
            ),
            "purchase `P1` was already quoted (Q-000001 for service `prepaid-phone-credit`); a purchase is quoted once"
        );
        let first = server.handle_service_order(&order_for(&quote)).unwrap();
        let again = server.handle_service_order(&order_for(&quote)).unwrap();
        assert_eq!(again, first);
        assert_eq!(server.receipts_issued(), 1);
        assert_eq!(
            server.account_balance(&ServiceId::from(PHONE), "0612345678"),
            Some(AccountBalance::Credit(eur(2320)))
        );
        // Out of service, then back: still the same receipt.
        server.set_available(false);
        assert!(server.handle_service_order(&order_for(&quote)).is_err());
        server.set_available(true);
        assert_eq!(server.handle_service_order(&order_for(&quote)), Ok(first));
        assert_eq!(server.receipts_issued(), 1);
    }

    /// A reload the property test tries: an amount in the item's currency or not.
    fn reload_amount(min: u64, max: u64) -> impl Strategy<Value = Money> {
        prop_oneof![
            4 => (min..=max).prop_map(eur),
            2 => (0..=max.saturating_add(100)).prop_map(eur),
            1 => any::<u64>().prop_map(eur),
            1 => (min..=max).prop_map(|minor| Money::new(minor, Currency::USD)),
        ]
    }

    proptest! {
        #[test]
        fn reloads_never_panic_and_balances_are_exact(
            (prepaid, opening, min, max, amounts) in (
                any::<bool>(),
                // Small balances, so that reloads pay off what is owed and cross into a
                // credit; any balance; balances next to the largest one.
                prop_oneof![
                    0u64..=50_000,
                    0..=MAX_BALANCE_MINOR,
                    (MAX_BALANCE_MINOR - 50_000)..=MAX_BALANCE_MINOR,
                ],
                1u64..=20_000,
                0u64..=20_000,
            )
                .prop_flat_map(|(prepaid, opening, min, spread)| {
                    let max = min + spread;
                    (
                        Just(prepaid),
                        Just(opening),
                        Just(min),
                        Just(max),
                        prop::collection::vec(reload_amount(min, max), 1..12),
                    )
                }),
        ) {
            let text = format!(
                "provider = \"p\"\n[[item]]\nid = \"acc\"\ndesignation = \"Account\"\nkind = \"account-reload\"\ncurrency = \"EUR\"\nvalidity_seconds = 60\nmin_amount = \"{}\"\nmax_amount = \"{}\"\n[[item.account]]\nnumber = \"N\"\nprepaid = {prepaid}\nbalance = \"{}\"\n",
                format_price(eur(min)),
                format_price(eur(max)),
                format_price(eur(opening)),
            );
            let mut server =
                ServiceServer::new(Catalogue::from_toml_str(&text, std::path::Path::new(".")).unwrap());
            // The model: credit minus what is owed, in i128 where nothing overflows.
            let mut value: i128 = if prepaid { i128::from(opening) } else { -i128::from(opening) };
            let mut receipts = 0u64;
            for (step, amount) in amounts.iter().enumerate() {
                let accepted = amount.currency == Currency::EUR
                    && (min..=max).contains(&amount.minor)
                    && value + i128::from(amount.minor) <= i128::from(MAX_BALANCE_MINOR);
                let answer = reload(&mut server, &format!("P{step}"), "acc", "N", *amount);
                prop_assert_eq!(answer.is_ok(), accepted, "{:?} at {}", amount, value);
                if accepted {
                    value += i128::from(amount.minor);
                    receipts += 1;
                }
                // Owed while nothing is credited beyond it; a credit once there is.
                let expected = if value > 0 || prepaid {
                    AccountBalance::Credit(eur(u64::try_from(value).unwrap()))
                } else {
                    AccountBalance::Owed(eur(u64::try_from(-value).unwrap()))
                };
                prop_assert_eq!(server.account_balance(&ServiceId::from("acc"), "N"), Some(expected));
                if let Ok(Delivery::Receipt { balance, amount: paid, .. }) = &answer {
                    prop_assert_eq!(*balance, Some(expected));
                    prop_assert_eq!(paid, amount);
                }
            }
            prop_assert_eq!(server.receipts_issued(), receipts);
        }
    }
}
