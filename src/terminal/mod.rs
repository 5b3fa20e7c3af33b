//! The consultation terminal (10) of the patent: a **client device** (21) that asks the
//! front-end for services and receives them, and a **payer device** (22) that answers the
//! front-end's solicitations — payment requests (D), acknowledgements (H), service
//! messages.
//!
//! - [`card_module`]: the payer device's bank-card module (claim 11): it reads the
//!   cardholder data from the card, presents the PIN to the card, and has the card itself
//!   compute the application cryptogram over the payment request's elements (first
//!   GENERATE AC), then completes the transaction with the acquirer's verdict (second
//!   GENERATE AC).
//! - [`payer`]: the payer device: D → E by bank card or from the virtual wallet (the
//!   user's key-store key signs), the means picked by the user's plan; H → the card's
//!   completion and the session's totals; service messages (identification by card or
//!   key, disputes).
//! - [`plan`]: the users' payment plans, confirmation thresholds and session totals
//!   (claims 4–7, 18), as pure rules.
//! - [`client`]: the client device: A out, K (or the purchase's outcome) in.
//! - [`keystore`]: the payer device's key store (claim 12, Fig. 9): users' signing keys
//!   sealed under their PINs.

pub mod card_module;
pub mod client;
pub mod keystore;
pub mod payer;
pub mod plan;
