//! Service servers (the patent's 11, "serveurs de prestations"): they quote the services
//! of their catalogue and deliver them, always through the communication front-end.
//!
//! In the purchase exchanges of Fig. 6 a service server takes part in four steps:
//!
//! | step | message | what the server does |
//! |---|---|---|
//! | B | [`QuoteRequest`](crate::messages::QuoteRequest) in | looks the service up in its [`Catalogue`] |
//! | C | [`Quote`](crate::messages::Quote) out | static info (designation, kind, identification required), variable info (price, availability), quote info (validity) |
//! | I | [`ServiceOrder`](crate::messages::ServiceOrder) in | after a positive acknowledgement: checks it issued that quote |
//! | J | [`ServiceDelivery`](crate::messages::ServiceDelivery) out | the content, an order for goods, or a receipt for a payment service |
//!
//! Variants the catalogue selects per item:
//!
//! - **Fig. 7**: `deliver_with_quote = true` puts the service in the quote C itself
//!   ([`Quote::service_enclosed`](crate::messages::Quote::service_enclosed)); the
//!   front-end keeps it until the payment is acknowledged and I/J do not happen.
//! - **Free services**: price `"0"`; the quote says so and the front-end skips the
//!   payment steps D–H, then orders (I) and delivers on the server's behalf.
//! - **Delivery by another channel**: a physical good's delivery is an
//!   [`Order`](crate::messages::Delivery::Order) (order number and postal address), not
//!   content; its quote needs a delivery address.
//! - **Payment services** (claim 17): `bill-payment` items hold [`Bill`]s and
//!   `account-reload` items [`Account`]s, prepaid or not. The quote request names the
//!   bill or the account and amount
//!   ([`PaymentService`](crate::messages::PaymentService)); the quote's price is the
//!   bill's amount or the chosen amount, the payment is the usual one, and the order I
//!   settles the bill or credits the account and delivers a
//!   [`Receipt`](crate::messages::Delivery::Receipt). A bill is paid once.
//! - **Identified users only** (claim 16): `identification = "required"` marks the
//!   quote ([`StaticInfo::identification_required`](crate::messages::StaticInfo)); the
//!   front-end has the user identified, and an order that names no customer is refused.
//!
//! [`ServiceServer`] is sans-IO and reads no clock: the time comes in with each quote
//! request, and both steps are idempotent (a repeated request gets the same quote, a
//! repeated order the same delivery, order number or receipt). The catalogue format is
//! specified in `docs/catalogue.md`; [`Catalogue::demo`] is the built-in demo publisher.

pub mod catalogue;
pub mod server;

pub use catalogue::{
    Account, Bill, Catalogue, CatalogueError, CatalogueItem, Content, EntryPlace, Location, Place,
    PriceError, format_price, parse_price,
};
pub use server::{MAX_BALANCE_MINOR, ServiceServer};
