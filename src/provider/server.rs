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
//! gets the same delivery (same order number). A repeat changes no state and advances
//! no counter.

use std::collections::BTreeMap;

use crate::messages::{
    Delivery, PostalAddress, PurchaseId, Quote, QuoteId, QuoteRequest, QuoteValidity,
    ServiceDelivery, ServiceKind, ServiceOrder, Timestamp, Unavailable, VariableInfo,
};

use super::catalogue::{Catalogue, CatalogueItem};

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

/// A service server (the patent's 11): quotes and delivers the items of its
/// [`Catalogue`].
///
/// Quote ids are `Q-000001`, `Q-000002`… and order numbers of physical goods
/// `ORD-000001`…, in the order the server issues them, so a run is reproducible.
#[derive(Debug, Clone)]
pub struct ServiceServer {
    catalogue: Catalogue,
    in_service: bool,
    purchases: BTreeMap<PurchaseId, QuotedPurchase>,
    quotes_issued: u64,
    orders_placed: u64,
}

impl ServiceServer {
    /// A server in service, selling `catalogue`, that has issued nothing yet.
    pub fn new(catalogue: Catalogue) -> ServiceServer {
        ServiceServer {
            catalogue,
            in_service: true,
            purchases: BTreeMap::new(),
            quotes_issued: 0,
            orders_placed: 0,
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

    /// B → C: quotes the requested service at `now`.
    ///
    /// The quote carries the item's designation and kind (static information), its
    /// price with `available: true` (variable information), and a validity from `now`
    /// to `now` + the item's `validity_seconds`. A Fig. 7 item
    /// ([`CatalogueItem::deliver_with_quote`]) encloses its content in
    /// [`Quote::service_enclosed`].
    ///
    /// [`Unavailable`] when the server is out of service, the service is unknown or not
    /// on sale, a physical good comes without a complete delivery address, or the
    /// purchase was already quoted for a different request.
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
        let number = self
            .quotes_issued
            .checked_add(1)
            .ok_or_else(|| refuse("the server has no quote numbers left".to_owned()))?;

        let quote = Quote {
            purchase: request.purchase.clone(),
            quote: QuoteId(format!("Q-{number:06}")),
            service: item.id().clone(),
            static_info: item.static_info(),
            variable: VariableInfo {
                price: item.price(),
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
            QuotedPurchase {
                request: request.clone(),
                quote: quote.clone(),
                delivery: None,
            },
        );
        Ok(quote)
    }

    /// I → J: delivers the service of a quote this server issued for that purchase.
    ///
    /// Content items deliver their content with its SHA-256; physical goods deliver an
    /// order (a new order number, the address from the quote request). The server
    /// delivers whenever the order comes, even after the quote's validity: validity
    /// bounds when the transaction may be made, and by step I it has been
    /// acknowledged. A Fig. 7 quote already carried the service; an order for it gets
    /// that same content again.
    ///
    /// [`Unavailable`] when the server is out of service, or the order names a quote
    /// this server did not issue for that purchase and service.
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
        let Some(quoted) = self.purchases.get_mut(&order.purchase) else {
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
            // Idempotence: the same delivery again, no new order number.
            return Ok(delivery.clone());
        }

        let mut next_order = None;
        let delivery = match (
            &quoted.quote.service_enclosed,
            self.catalogue.get(&order.service),
        ) {
            (Some(enclosed), _) => enclosed.clone(),
            (None, Some(item)) => match content_delivery(item) {
                Some(content) => content,
                None => {
                    let number = self
                        .orders_placed
                        .checked_add(1)
                        .ok_or_else(|| refuse("the server has no order numbers left".to_owned()))?;
                    // The quote was only issued with a complete address; checked again
                    // so that no path depends on that.
                    let address = quoted.request.delivery_address.clone().ok_or_else(|| {
                        refuse(format!(
                            "service `{}` is a physical good and needs a delivery address",
                            order.service
                        ))
                    })?;
                    next_order = Some(number);
                    Delivery::Order {
                        order: format!("ORD-{number:06}"),
                        address,
                    }
                }
            },
            // The catalogue does not change under a server, so a quoted service is
            // always in it; answered rather than assumed.
            (None, None) => {
                return Err(refuse(format!(
                    "no service `{}` in the catalogue of `{}`",
                    order.service,
                    self.catalogue.provider()
                )));
            }
        };
        let served = ServiceDelivery {
            purchase: order.purchase.clone(),
            service: order.service.clone(),
            delivery,
        };
        quoted.delivery = Some(served.clone());
        if let Some(number) = next_order {
            self.orders_placed = number;
        }
        Ok(served)
    }

    fn out_of_service(&self) -> String {
        format!(
            "the service server `{}` is out of service",
            self.catalogue.provider()
        )
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

/// The item's content as a delivery (with its digest); `None` for physical goods.
fn content_delivery(item: &CatalogueItem) -> Option<Delivery> {
    item.content()
        .map(|content| Delivery::content(&content.media_type, content.bytes.clone()))
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
    use crate::messages::{Currency, Money, ServiceId, StaticInfo};
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
}
