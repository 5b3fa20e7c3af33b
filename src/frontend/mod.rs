//! The communication front-end (12), the patent's "telematic mediator": the purchase
//! state machine of Fig. 6 and its variants, sans-IO.
//!
//! The front-end sits between the consultation terminals, the service servers and the
//! acquirers, and sells services on behalf of the servers. For each service request A it
//! asks the server for a quote (B → C), asks the payer device to pay (D → E), submits the
//! transaction to the acquirer suited to its means (F → G), passes the acknowledgement
//! on (H), orders the service (I → J) and delivers it (K).
//!
//! Variants:
//! - **Fig. 7**: the quote C already carries the service; the front-end holds it until a
//!   positive G, and I/J do not happen;
//! - **free services**: a zero price skips D–H;
//! - **delivery by another channel**: the server's delivery is an order (physical
//!   goods); the front-end passes it on like content;
//! - **identified users only** (claim 16): when the quote says so, the front-end sends
//!   the payer device a service message, an [`IdentificationRequest`], between C and D
//!   (or I for a free service); the proof goes to the acquirer of its means, whose
//!   verdict goes back to the payer device (its card completes) and, when positive,
//!   names the customer in I. A failed identification ends the purchase before any
//!   payment;
//! - **payment services** (claim 17): a bill payment or an account reload is a service
//!   like any other; A's [`crate::messages::PaymentService`] travels to the server in B;
//! - **incremental payment** (claim 10): the requests of a pseudo-session name it; the
//!   session's first wallet payment goes to the wallet acquirer with a request for a
//!   provision, and the next ones are verified by the front-end itself against it
//!   ([`sessions`]), recorded durably before the service is ordered, and settled
//!   together when the client ends the session or the provision runs out;
//! - **pay-per-time** (a quote with a [`UnitBilling`]): the first unit is paid and the
//!   service delivered as usual; when each paid unit runs out the front-end sends the
//!   payer device the next unit's payment request, until the units the user asked for
//!   are paid, the user stops the service, or a unit's payment fails; then
//!   [`ServiceStopped`] tells the client device and the server. In a pseudo-session the
//!   units are wallet payments the front-end verifies itself;
//! - **failures**: an unavailable or silent server, a declined or silent payer device,
//!   a quote expired before E, a refusing, unreachable or silent acquirer. Each ends the
//!   purchase with a [`PurchaseOutcome`] to the client device; when a transaction exists
//!   the payer device gets a negative H (its card then ends with an AAC), and when the
//!   acquirer may have authorised it, a [`Reversal`] so that nothing is charged.
//!
//! [`FrontEnd`] consumes messages and the time, and returns the messages to send; it
//! never calls another role. Deadlines are exposed by [`FrontEnd::poll_timeout`] and
//! fired by [`FrontEnd::handle_timeout`]. Nonces come from an [`Entropy`] source the
//! caller provides. Every message is idempotent: a repeated one changes nothing and,
//! where it had an answer, gets the same answer again.

pub mod disputes;
pub mod sessions;

use std::collections::{BTreeSet, HashMap};

use sessions::{Recovery, Route, SessionLog, SessionLogError, Sessions};

use crate::messages::Money;
use crate::messages::{AbandonmentResult, PaymentAbandonment};
use crate::messages::{
    Acknowledgement, AcquirerId, AcquirerTransaction, ClientDelivery, Currency, Delivery, Envelope,
    Failure, Means, MerchantId, Message, PayerAcknowledgement, PaymentDeclined, PaymentId,
    PaymentRequest, ProviderId, PurchaseId, PurchaseOutcome, Quote, QuoteRequest, RefusalReason,
    Reversal, ServiceDelivery, ServiceOrder, ServiceRequest, TerminalId, Text, Timestamp,
    Transaction, Unavailable, Verdict,
};
use crate::messages::{
    CustomerId, IdentificationDeclined, IdentificationId, IdentificationProof,
    IdentificationRequest, IdentificationResult, IdentityCheck, IdentityVerdict, Party,
    ProvisionRequest, RequestId, ServiceStopped, SessionEnd, SessionId, SettlementResult,
    StopService, UnitBilling,
};

/// Where the front-end's nonces come from (the payment request's nonce, from which the
/// card's unpredictable number is derived). Production draws them from the operating
/// system; tests give a seeded sequence so that every run is the same.
pub trait Entropy {
    /// A fresh 16-byte nonce.
    fn nonce(&mut self) -> [u8; 16];
}

/// Nonces from the operating system's random source.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemEntropy;

impl Entropy for SystemEntropy {
    fn nonce(&mut self) -> [u8; 16] {
        let mut nonce = [0u8; 16];
        // Without the OS source there is no safe nonce: a fixed one would let a card
        // precompute cryptograms. Stopping is the only honest answer.
        if let Err(error) = getrandom::fill(&mut nonce) {
            panic!("the operating system's random source failed: {error}");
        }
        nonce
    }
}

/// A deterministic nonce sequence for tests and reproducible runs: SHA-256 of the seed
/// and a counter.
#[derive(Debug, Clone)]
pub struct SeededEntropy {
    seed: u64,
    counter: u64,
}

impl SeededEntropy {
    /// The sequence for `seed`.
    pub fn new(seed: u64) -> SeededEntropy {
        SeededEntropy { seed, counter: 0 }
    }
}

impl Entropy for SeededEntropy {
    fn nonce(&mut self) -> [u8; 16] {
        use sha2::Digest;
        let mut hash = sha2::Sha256::new();
        hash.update(self.seed.to_be_bytes());
        hash.update(self.counter.to_be_bytes());
        self.counter = self.counter.wrapping_add(1);
        let full = hash.finalize();
        let mut nonce = [0u8; 16];
        nonce.copy_from_slice(full.get(..16).unwrap_or(&[0u8; 16]));
        nonce
    }
}

/// How the front-end is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontEndConfig {
    /// The merchant the acquirers credit for sales made through this front-end.
    pub merchant: MerchantId,
    /// The service servers the front-end sells for.
    pub providers: Vec<ProviderId>,
    /// The acquirer for each means of payment.
    pub acquirers: Vec<(Means, AcquirerId)>,
    /// How long a service server has to answer B or I.
    pub server_timeout_ms: i64,
    /// How long the payer device has to answer D (the user confirms and types a PIN).
    pub payer_timeout_ms: i64,
    /// How long an acquirer has to answer F.
    pub acquirer_timeout_ms: i64,
    /// How many times I is sent before the delivery is given up.
    pub service_order_attempts: u32,
    /// What purchase identifiers start with: `P` gives `P-000001`, `P-000002`… A
    /// front-end that restarts must take a new prefix (the CLI draws one at random):
    /// acquirers and servers keep answers by identifier, so a reused one would get the
    /// previous purchase's answers.
    pub purchase_prefix: String,
    /// The provision asked of the wallet acquirer for a pseudo-session, in minor units
    /// of the payment's currency (at least the first payment's amount): how much the
    /// session may spend before the front-end settles and asks again. 0 sends every
    /// wallet payment to the acquirer, session or not.
    pub session_provision: u64,
}

impl FrontEndConfig {
    /// A front-end for `providers`, paying by bank card through `acquirer`, with
    /// deadlines of 10 s for servers, 2 min for the payer and 30 s for the acquirer.
    pub fn new(
        merchant: MerchantId,
        providers: Vec<ProviderId>,
        acquirer: AcquirerId,
    ) -> FrontEndConfig {
        FrontEndConfig {
            merchant,
            providers,
            acquirers: vec![(Means::BankCard, acquirer)],
            server_timeout_ms: 10_000,
            payer_timeout_ms: 120_000,
            acquirer_timeout_ms: 30_000,
            service_order_attempts: 3,
            purchase_prefix: "P".into(),
            session_provision: 5_000,
        }
    }

    fn acquirer_for(&self, means: Means) -> Option<&AcquirerId> {
        self.acquirers
            .iter()
            .find(|(candidate, _)| *candidate == means)
            .map(|(_, acquirer)| acquirer)
    }
}

/// Where a purchase stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage {
    /// B sent; waiting for C.
    AwaitingQuote,
    /// The identification request sent to the payer device; waiting for its proof.
    AwaitingIdentification,
    /// The proof sent to the acquirer; waiting for its verdict.
    AwaitingIdentityCheck,
    /// D sent; waiting for E.
    AwaitingTransaction,
    /// F sent; waiting for G.
    AwaitingAcknowledgement,
    /// I sent (`attempt` times); waiting for J.
    AwaitingService {
        /// How many times I was sent.
        attempt: u32,
    },
    /// A service billed per unit of time runs: K was sent and the paid units last until
    /// the deadline, when the next unit's payment request goes out.
    Metering,
    /// K sent: the service was delivered.
    Delivered,
    /// The purchase ended without a delivery.
    Failed(Failure),
}

/// What the front-end remembers of one purchase.
#[derive(Debug, Clone)]
pub struct Purchase {
    /// The front-end's name for it.
    pub id: PurchaseId,
    /// The request A that started it.
    pub request: ServiceRequest,
    /// Where it stands.
    pub stage: Stage,
    /// The quote C.
    pub quote: Option<Quote>,
    /// The payment request D.
    pub payment: Option<PaymentRequest>,
    /// The transaction E.
    pub transaction: Option<Transaction>,
    /// The acknowledgement G.
    pub acknowledgement: Option<Acknowledgement>,
    /// The acknowledgement H as sent to the payer device, resent on a repeated E.
    ///
    /// This and the other rarely present or large fields are boxed: the front-end keeps
    /// every purchase it handled, and a `Purchase` holding three envelopes inline took
    /// 4.3 KB of memory for each one, most of it empty.
    pub payer_acknowledgement: Option<Box<Envelope>>,
    /// The message that closed the purchase for the client (K or the outcome), resent
    /// on a repeated A.
    pub closing: Option<Box<Envelope>>,
    /// The acquirer the transaction went to, and whether a reversal was sent.
    pub acquirer: Option<AcquirerId>,
    /// Whether the front-end cancelled the transaction at the acquirer.
    pub reversed: bool,
    /// When the current wait ends.
    pub deadline: Option<Timestamp>,
    /// The identification request sent to the payer device, when the service is for
    /// identified users (claim 16).
    pub identification: Option<Box<IdentificationRequest>>,
    /// The customer the acquirer named after a positive identification.
    pub customer: Option<CustomerId>,
    /// The acquirer the proof of identity went to.
    pub identity_acquirer: Option<AcquirerId>,
    /// The proof the payer device sent, kept to recognise a repeat.
    pub identification_proof: Option<Box<IdentificationProof>>,
    /// The identification result as sent to the payer device, resent on a repeated
    /// proof.
    pub identification_result: Option<Box<Envelope>>,
    /// The provision its wallet payment went against, or asked for.
    pub segment: Option<SessionId>,
    /// The provision F asked for, when its payment opened one.
    pub provision: Option<ProvisionRequest>,
    /// For a service billed per unit of time: the units paid and the limit.
    pub metering: Option<Metering>,
}

/// Where a service billed per unit of time stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metering {
    /// The unit and the server's limit, from the quote.
    pub billing: UnitBilling,
    /// The most units this purchase runs: the user's limit within the server's.
    pub max_units: u32,
    /// The units paid.
    pub units: u32,
    /// What they came to.
    pub paid: Money,
    /// Whether the user asked to stop once the unit being paid is settled.
    pub stop_requested: bool,
}

/// What handling one input did: the messages to send and, when the input changed
/// nothing, why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reaction {
    /// Messages to send, in order.
    pub sent: Vec<Envelope>,
    /// Why the input was ignored, when it was (a repeat, or out of place).
    pub ignored: Option<String>,
}

impl Reaction {
    fn send(sent: Vec<Envelope>) -> Reaction {
        Reaction {
            sent,
            ignored: None,
        }
    }

    fn ignore(why: impl Into<String>) -> Reaction {
        Reaction {
            sent: Vec::new(),
            ignored: Some(why.into()),
        }
    }

    fn resend(sent: Vec<Envelope>, why: impl Into<String>) -> Reaction {
        Reaction {
            sent,
            ignored: Some(why.into()),
        }
    }
}

/// The front-end: every purchase in progress or done, sans-IO.
pub struct FrontEnd<E: Entropy> {
    config: FrontEndConfig,
    entropy: E,
    // Looked up by key only, never walked in order: hashed (with std's keyed hasher:
    // the keys come from the network) rather than searched down a tree, which took a
    // dozen string comparisons a lookup once thousands of purchases were kept. Boxed: a
    // purchase is large, and growing the table moves pointers, not whole purchases.
    purchases: HashMap<PurchaseId, Box<Purchase>>,
    by_request: HashMap<(TerminalId, RequestId), PurchaseId>,
    /// The purchases with a deadline, so that [`FrontEnd::poll_timeout`] does not scan
    /// every purchase ever handled.
    waiting: BTreeSet<PurchaseId>,
    next_purchase: u64,
    sessions: Sessions,
    /// The payer devices' disputes and their outcomes ([`disputes`]).
    disputes: disputes::Disputes,
}

impl<E: Entropy> FrontEnd<E> {
    /// A front-end with no purchase yet.
    pub fn new(config: FrontEndConfig, entropy: E) -> FrontEnd<E> {
        FrontEnd {
            config,
            entropy,
            purchases: HashMap::new(),
            by_request: HashMap::new(),
            waiting: BTreeSet::new(),
            next_purchase: 1,
            sessions: Sessions::default(),
            disputes: disputes::Disputes::default(),
        }
    }

    /// Keeps the payments of pseudo-sessions in `log` instead of memory. The provisions
    /// `log` holds unsettled — a front-end that stopped mid-session — are settled with
    /// the acquirer at the first deadline ([`FrontEnd::poll_timeout`] is then due), or
    /// resumed, as `recovery` says.
    ///
    /// # Errors
    /// The log cannot be read.
    pub fn with_session_log(
        mut self,
        log: Box<dyn SessionLog>,
        recovery: Recovery,
    ) -> Result<Self, SessionLogError> {
        self.sessions = Sessions::recover(log, recovery)?;
        Ok(self)
    }

    /// Takes `means` through `acquirer` (replacing the acquirer it had for it): the
    /// payment requests that follow accept it.
    pub fn accept_means(&mut self, means: Means, acquirer: AcquirerId) {
        match self
            .config
            .acquirers
            .iter_mut()
            .find(|(known, _)| *known == means)
        {
            Some((_, known)) => *known = acquirer,
            None => self.config.acquirers.push((means, acquirer)),
        }
    }

    /// The pseudo-sessions and their provisions.
    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// The configuration.
    pub fn config(&self) -> &FrontEndConfig {
        &self.config
    }

    /// A purchase, by its identifier.
    pub fn purchase(&self, id: &PurchaseId) -> Option<&Purchase> {
        self.purchases.get(id).map(|purchase| &**purchase)
    }

    /// The purchase a terminal's request started.
    pub fn purchase_for(&self, terminal: &TerminalId, request: &RequestId) -> Option<&Purchase> {
        self.by_request
            .get(&(terminal.clone(), request.clone()))
            .and_then(|id| self.purchases.get(id))
            .map(|purchase| &**purchase)
    }

    /// The earliest deadline of any purchase in progress.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.waiting
            .iter()
            .filter_map(|id| {
                self.purchases
                    .get(id)
                    .and_then(|purchase| purchase.deadline)
            })
            .chain(self.sessions.poll_timeout())
            .chain(self.disputes.poll_timeout())
            .min()
    }

    /// Keeps [`FrontEnd::waiting`] in step with the purchase's deadline.
    fn track(&mut self, id: &PurchaseId) {
        match self
            .purchases
            .get(id)
            .and_then(|purchase| purchase.deadline)
        {
            Some(_) => {
                self.waiting.insert(id.clone());
            }
            None => {
                self.waiting.remove(id);
            }
        }
    }

    /// Takes a message from `from` at `now`.
    pub fn handle(&mut self, now: Timestamp, from: &Party, message: Message) -> Reaction {
        let touched = match &message {
            Message::ServiceRequest(request) => {
                Some((request.terminal.clone(), request.request.clone()))
            }
            _ => None,
        };
        let purchase = message.purchase().cloned();
        let reaction = self.dispatch(now, from, message);
        let id = purchase.or_else(|| touched.and_then(|key| self.by_request.get(&key).cloned()));
        if let Some(id) = id {
            self.track(&id);
        }
        reaction
    }

    fn dispatch(&mut self, now: Timestamp, from: &Party, message: Message) -> Reaction {
        match message {
            Message::ServiceRequest(request) => self.on_service_request(now, from, request),
            Message::Quote(quote) => self.on_quote(now, from, quote),
            Message::Unavailable(unavailable) => self.on_unavailable(from, unavailable),
            Message::Transaction(transaction) => self.on_transaction(now, from, *transaction),
            Message::PaymentDeclined(declined) => self.on_declined(from, declined),
            Message::Acknowledgement(acknowledgement) => {
                self.on_acknowledgement(now, from, acknowledgement)
            }
            Message::ServiceDelivery(delivery) => self.on_delivery(now, from, delivery),
            Message::IdentificationProof(proof) => self.on_identification_proof(now, from, *proof),
            Message::IdentificationDeclined(declined) => {
                self.on_identification_declined(from, declined)
            }
            Message::IdentityVerdict(verdict) => self.on_identity_verdict(now, from, verdict),
            Message::SessionEnd(end) => self.on_session_end(now, from, end),
            Message::StopService(stop) => self.on_stop(from, stop),
            Message::SettlementResult(result) => self.on_settlement(from, result),
            Message::Dispute(dispute) => self.on_dispute(now, from, *dispute),
            Message::DisputeOutcome(outcome) => self.on_dispute_outcome(from, outcome),
            Message::PaymentAbandoned(abandonment) => self.on_abandoned(from, abandonment),
            Message::AbandonmentResult(result) => self.on_abandonment_result(from, result),
            other => Reaction::ignore(format!(
                "the front-end does not take a {} message",
                other.step()
            )),
        }
    }

    /// Fires every deadline reached at `now`.
    pub fn handle_timeout(&mut self, now: Timestamp) -> Reaction {
        let due: Vec<PurchaseId> = self
            .waiting
            .iter()
            .filter(|id| {
                self.purchases
                    .get(*id)
                    .and_then(|purchase| purchase.deadline)
                    .is_some_and(|deadline| deadline <= now)
            })
            .cloned()
            .collect();
        let mut sent = Vec::new();
        for id in due {
            sent.extend(self.expire(now, &id));
            self.track(&id);
        }
        sent.extend(self.sessions.handle_timeout(
            now,
            self.config.service_order_attempts,
            self.config.acquirer_timeout_ms,
        ));
        sent.extend(self.disputes.handle_timeout(now));
        Reaction::send(sent)
    }

    fn expire(&mut self, now: Timestamp, id: &PurchaseId) -> Vec<Envelope> {
        let Some(purchase) = self.purchases.get_mut(id) else {
            return Vec::new();
        };
        purchase.deadline = None;
        match purchase.stage.clone() {
            Stage::AwaitingQuote => fail(purchase, Failure::ServerSilent),
            Stage::AwaitingIdentification | Stage::AwaitingTransaction => {
                fail(purchase, Failure::PayerSilent)
            }
            Stage::AwaitingIdentityCheck => {
                // The card waits for a verdict: a negative one lets it end with an AAC.
                let reason = RefusalReason::AcquirerUnreachable;
                let mut sent = vec![identification_result(
                    purchase,
                    Verdict::refused(reason),
                    None,
                )];
                sent.extend(fail(
                    purchase,
                    Failure::IdentificationFailed {
                        reason: "the acquirer did not answer in time".into(),
                    },
                ));
                sent
            }
            Stage::AwaitingAcknowledgement => {
                // The acquirer may have authorised without its answer reaching us:
                // cancel there, and tell the payer device so its card ends with an AAC.
                let mut sent = vec![negative_h(purchase, RefusalReason::AcquirerUnreachable)];
                match purchase.provision.take() {
                    // A provision may have been reserved: release it by settling it
                    // empty (nothing was debited for it).
                    Some(asked) => sent.extend(self.sessions.abandon(
                        &asked.segment,
                        true,
                        now,
                        self.config.acquirer_timeout_ms,
                    )),
                    None => sent.extend(reverse(purchase, "the acquirer did not answer in time")),
                }
                sent.extend(fail(
                    purchase,
                    Failure::PaymentRefused {
                        reason: RefusalReason::AcquirerUnreachable,
                    },
                ));
                sent
            }
            Stage::AwaitingService { attempt } => {
                if attempt < self.config.service_order_attempts {
                    let attempt = attempt + 1;
                    purchase.stage = Stage::AwaitingService { attempt };
                    purchase.deadline = Some(now.plus_millis(self.config.server_timeout_ms));
                    vec![service_order(purchase)]
                } else {
                    let mut sent = reverse(purchase, "the service could not be delivered");
                    sent.extend(fail(purchase, Failure::ServerSilent));
                    sent
                }
            }
            Stage::Metering => next_unit(purchase, &self.config, &mut self.entropy, now),
            Stage::Delivered | Stage::Failed(_) => Vec::new(),
        }
    }

    fn on_service_request(
        &mut self,
        now: Timestamp,
        from: &Party,
        request: ServiceRequest,
    ) -> Reaction {
        if !matches!(from, Party::Client(sender) if *sender == request.terminal) {
            return Reaction::ignore(format!(
                "a service request for terminal {} came from {from}",
                request.terminal
            ));
        }
        let key = (request.terminal.clone(), request.request.clone());
        if let Some(existing) = self
            .by_request
            .get(&key)
            .and_then(|id| self.purchases.get(id))
        {
            return match &existing.closing {
                Some(closing) => Reaction::resend(
                    vec![Envelope::clone(closing)],
                    format!("request {} repeated: its answer again", request.request),
                ),
                None => Reaction::ignore(format!(
                    "request {} repeated while purchase {} is in progress",
                    request.request, existing.id
                )),
            };
        }
        let id = PurchaseId(Text::format(format_args!(
            "{}-{:06}",
            self.config.purchase_prefix, self.next_purchase
        )));
        self.next_purchase = self.next_purchase.saturating_add(1);
        self.by_request.insert(key, id.clone());
        // What decides the answer, read before the request moves into the purchase.
        let ended = request
            .session
            .as_ref()
            .filter(|session| self.sessions.has_ended(&request.terminal, session))
            .map(|session| format!("session {session} has ended"));
        let sells = self.config.providers.contains(&request.provider);
        let mut purchase = Purchase {
            id: id.clone(),
            request,
            stage: Stage::AwaitingQuote,
            quote: None,
            payment: None,
            transaction: None,
            acknowledgement: None,
            payer_acknowledgement: None,
            closing: None,
            acquirer: None,
            reversed: false,
            deadline: None,
            identification: None,
            customer: None,
            identity_acquirer: None,
            identification_proof: None,
            identification_result: None,
            segment: None,
            provision: None,
            metering: None,
        };
        let sent = if let Some(reason) = ended {
            fail(&mut purchase, Failure::BadRequest { reason })
        } else if sells {
            purchase.deadline = Some(now.plus_millis(self.config.server_timeout_ms));
            let request = &purchase.request;
            vec![Envelope {
                from: Party::FrontEnd,
                to: Party::Server(request.provider.clone()),
                message: Message::QuoteRequest(QuoteRequest {
                    purchase: id.clone(),
                    service: request.service.clone(),
                    delivery_address: request.delivery_address.clone(),
                    payment_service: request.payment_service.clone(),
                }),
            }]
        } else {
            let reason = format!(
                "the front-end sells nothing for service server {}",
                purchase.request.provider
            );
            fail(&mut purchase, Failure::BadRequest { reason })
        };
        self.purchases.insert(id, Box::new(purchase));
        Reaction::send(sent)
    }

    fn on_quote(&mut self, now: Timestamp, from: &Party, quote: Quote) -> Reaction {
        let Some(purchase) = self.purchases.get_mut(&quote.purchase) else {
            return Reaction::ignore(format!("a quote for unknown purchase {}", quote.purchase));
        };
        if !matches!(from, Party::Server(sender) if *sender == purchase.request.provider) {
            return Reaction::ignore(format!(
                "a quote for purchase {} came from {from}",
                purchase.id
            ));
        }
        if purchase.stage != Stage::AwaitingQuote {
            return Reaction::ignore(format!(
                "quote {} repeated or late for purchase {}",
                quote.quote, purchase.id
            ));
        }
        if quote.service != purchase.request.service {
            return Reaction::ignore(format!(
                "quote {} is for service {}, purchase {} asked for {}",
                quote.quote, quote.service, purchase.id, purchase.request.service
            ));
        }
        purchase.deadline = None;
        if !quote.variable.available {
            let reason = format!("{} is not available", quote.static_info.designation);
            purchase.quote = Some(quote);
            return Reaction::send(fail(purchase, Failure::ServiceUnavailable { reason }));
        }
        if !quote.validity.holds_at(now) {
            purchase.quote = Some(quote);
            return Reaction::send(fail(purchase, Failure::QuoteExpired));
        }
        if let Some(billing) = quote.static_info.unit_billing {
            let max_units = match purchase.request.units {
                Some(0) => {
                    purchase.quote = Some(quote);
                    return Reaction::send(fail(
                        purchase,
                        Failure::BadRequest {
                            reason: "zero units asked of a service billed per unit of time".into(),
                        },
                    ));
                }
                Some(units) => units.min(billing.max_units),
                None => billing.max_units,
            };
            purchase.metering = Some(Metering {
                billing,
                max_units: max_units.max(1),
                units: 0,
                paid: Money::new(0, quote.variable.price.currency),
                stop_requested: false,
            });
        }
        purchase.quote = Some(quote);
        let identification_required = purchase
            .quote
            .as_ref()
            .is_some_and(|quote| quote.static_info.identification_required);
        if identification_required && purchase.customer.is_none() {
            return Reaction::send(vec![ask_identification(
                purchase,
                &self.config,
                &mut self.entropy,
                now,
            )]);
        }
        Reaction::send(after_quote(purchase, &self.config, &mut self.entropy, now))
    }

    fn on_identification_proof(
        &mut self,
        now: Timestamp,
        from: &Party,
        proof: IdentificationProof,
    ) -> Reaction {
        let Some(purchase) = self.purchases.get_mut(&proof.purchase) else {
            return Reaction::ignore(format!(
                "a proof of identity for unknown purchase {}",
                proof.purchase
            ));
        };
        if !matches!(from, Party::Payer(sender) if *sender == purchase.request.terminal)
            || proof.terminal != purchase.request.terminal
        {
            return Reaction::ignore(format!(
                "a proof of identity for purchase {} came from {from}",
                purchase.id
            ));
        }
        let Some(request) = purchase.identification.as_deref().cloned() else {
            return Reaction::ignore(format!(
                "a proof of identity for purchase {}, which asked for no identification",
                purchase.id
            ));
        };
        if proof.identification != request.identification {
            return Reaction::ignore(format!(
                "a proof for identification {}, purchase {} asked for {}",
                proof.identification, purchase.id, request.identification
            ));
        }
        if purchase.stage != Stage::AwaitingIdentification {
            return match (
                &purchase.identification_proof,
                &purchase.identification_result,
            ) {
                (Some(first), Some(result)) if **first == proof => Reaction::resend(
                    vec![Envelope::clone(result)],
                    format!(
                        "proof for identification {} repeated: its result again",
                        request.identification
                    ),
                ),
                _ => Reaction::ignore(format!(
                    "proof for identification {} repeated or late",
                    request.identification
                )),
            };
        }
        purchase.deadline = None;
        purchase.identification_proof = Some(Box::new(proof.clone()));
        if let crate::messages::IdentityProof::Key(signed) = &proof.proof {
            use crate::acquirer::wallet::identity::{KEY_VERIFIED_CODE, check_identity};
            // The wallet key's proof: the front-end checks it itself (signature,
            // merchant, identification, nonce, purpose, time), no acquirer involved; a
            // positive check goes on as a positive identity verdict does.
            let checked = if request.accepted_means.contains(&Means::VirtualWallet) {
                check_identity(signed, &request, &self.config.merchant, now)
                    .map_err(|refusal| (refusal.reason(), refusal.to_string()))
            } else {
                let reason = RefusalReason::NoAcquirer;
                let why = reason.to_string();
                Err((reason, why))
            };
            let sent = match checked {
                Ok(customer) => {
                    let verdict = Verdict::Positive {
                        authorisation_code: KEY_VERIFIED_CODE.into(),
                        response_code: *b"00",
                        arpc: None,
                    };
                    let mut sent = vec![identification_result(
                        purchase,
                        verdict,
                        Some(customer.clone()),
                    )];
                    purchase.customer = Some(customer);
                    sent.extend(after_quote(purchase, &self.config, &mut self.entropy, now));
                    sent
                }
                Err((reason, why)) => {
                    let mut sent = vec![identification_result(
                        purchase,
                        Verdict::refused(reason),
                        None,
                    )];
                    sent.extend(fail(
                        purchase,
                        Failure::IdentificationFailed { reason: why },
                    ));
                    sent
                }
            };
            return Reaction::send(sent);
        }
        let means = proof.proof.means();
        let acquirer = match self.config.acquirer_for(means) {
            Some(acquirer) if request.accepted_means.contains(&means) => acquirer.clone(),
            _ => {
                let reason = RefusalReason::NoAcquirer;
                let mut sent = vec![identification_result(
                    purchase,
                    Verdict::refused(reason.clone()),
                    None,
                )];
                sent.extend(fail(
                    purchase,
                    Failure::IdentificationFailed {
                        reason: reason.to_string(),
                    },
                ));
                return Reaction::send(sent);
            }
        };
        purchase.identity_acquirer = Some(acquirer.clone());
        purchase.stage = Stage::AwaitingIdentityCheck;
        purchase.deadline = Some(now.plus_millis(self.config.acquirer_timeout_ms));
        Reaction::send(vec![Envelope {
            from: Party::FrontEnd,
            to: Party::Acquirer(acquirer.clone()),
            message: Message::IdentityCheck(Box::new(IdentityCheck {
                acquirer,
                request,
                proof,
            })),
        }])
    }

    fn on_identification_declined(
        &mut self,
        from: &Party,
        declined: IdentificationDeclined,
    ) -> Reaction {
        let Some(purchase) = self.purchases.get_mut(&declined.purchase) else {
            return Reaction::ignore(format!(
                "a declined identification for unknown purchase {}",
                declined.purchase
            ));
        };
        if !matches!(from, Party::Payer(sender) if *sender == purchase.request.terminal) {
            return Reaction::ignore(format!(
                "a declined identification for purchase {} came from {from}",
                purchase.id
            ));
        }
        let expected = purchase
            .identification
            .as_ref()
            .map(|request| &request.identification);
        if purchase.stage != Stage::AwaitingIdentification
            || expected != Some(&declined.identification)
        {
            return Reaction::ignore(format!(
                "identification {} declined repeated or late",
                declined.identification
            ));
        }
        purchase.deadline = None;
        Reaction::send(fail(
            purchase,
            Failure::IdentificationFailed {
                reason: declined.reason,
            },
        ))
    }

    fn on_identity_verdict(
        &mut self,
        now: Timestamp,
        from: &Party,
        verdict: IdentityVerdict,
    ) -> Reaction {
        let Some(purchase) = self.purchases.get_mut(&verdict.purchase) else {
            return Reaction::ignore(format!(
                "an identity verdict for unknown purchase {}",
                verdict.purchase
            ));
        };
        let expected_acquirer = purchase.identity_acquirer.clone();
        let from_expected = matches!(
            (from, expected_acquirer.as_ref()),
            (Party::Acquirer(sender), Some(expected)) if sender == expected
        );
        if !from_expected || expected_acquirer.as_ref() != Some(&verdict.acquirer) {
            return Reaction::ignore(format!(
                "an identity verdict for purchase {} came from {from}",
                purchase.id
            ));
        }
        let expected = purchase
            .identification
            .as_ref()
            .map(|request| &request.identification);
        if expected != Some(&verdict.identification) {
            return Reaction::ignore(format!(
                "an identity verdict for identification {}, not purchase {}'s",
                verdict.identification, purchase.id
            ));
        }
        if purchase.stage != Stage::AwaitingIdentityCheck {
            return Reaction::ignore(format!(
                "identity verdict for {} repeated or late",
                verdict.identification
            ));
        }
        purchase.deadline = None;
        let result =
            identification_result(purchase, verdict.verdict.clone(), verdict.customer.clone());
        let mut sent = vec![result];
        match (&verdict.verdict, verdict.customer) {
            (Verdict::Positive { .. }, Some(customer)) => {
                purchase.customer = Some(customer);
                sent.extend(after_quote(purchase, &self.config, &mut self.entropy, now));
            }
            (Verdict::Negative { reason, .. }, _) => sent.extend(fail(
                purchase,
                Failure::IdentificationFailed {
                    reason: reason.to_string(),
                },
            )),
            // A positive verdict that names nobody identifies nobody.
            (Verdict::Positive { .. }, None) => sent.extend(fail(
                purchase,
                Failure::IdentificationFailed {
                    reason: "the acquirer named no customer".into(),
                },
            )),
        }
        Reaction::send(sent)
    }

    fn on_unavailable(&mut self, from: &Party, unavailable: Unavailable) -> Reaction {
        let Some(purchase) = self.purchases.get_mut(&unavailable.purchase) else {
            return Reaction::ignore(format!(
                "an unavailability notice for unknown purchase {}",
                unavailable.purchase
            ));
        };
        if !matches!(from, Party::Server(sender) if *sender == purchase.request.provider) {
            return Reaction::ignore(format!(
                "an unavailability notice for purchase {} came from {from}",
                purchase.id
            ));
        }
        let failure = Failure::ServiceUnavailable {
            reason: unavailable.reason,
        };
        match purchase.stage {
            Stage::AwaitingQuote => Reaction::send(fail(purchase, failure)),
            Stage::AwaitingService { .. } => {
                // Paid, but the server cannot deliver: cancel the payment.
                let mut sent = reverse(purchase, "the service could not be delivered");
                sent.extend(fail(purchase, failure));
                Reaction::send(sent)
            }
            _ => Reaction::ignore(format!(
                "an unavailability notice for purchase {} that waits for no server",
                purchase.id
            )),
        }
    }

    fn on_transaction(
        &mut self,
        now: Timestamp,
        from: &Party,
        transaction: Transaction,
    ) -> Reaction {
        let Some(purchase) = self.purchases.get_mut(&transaction.purchase) else {
            return Reaction::ignore(format!(
                "a transaction for unknown purchase {}",
                transaction.purchase
            ));
        };
        if !matches!(from, Party::Payer(sender) if *sender == purchase.request.terminal)
            || transaction.terminal != purchase.request.terminal
        {
            return Reaction::ignore(format!(
                "a transaction for purchase {} came from {from}",
                purchase.id
            ));
        }
        let Some(payment) = purchase.payment.clone() else {
            return Reaction::ignore(format!(
                "a transaction for purchase {}, which asked for no payment",
                purchase.id
            ));
        };
        if transaction.payment != payment.payment {
            return Reaction::ignore(format!(
                "transaction for payment {}, purchase {} asked for payment {}",
                transaction.payment, purchase.id, payment.payment
            ));
        }
        if purchase.stage != Stage::AwaitingTransaction {
            return match (&purchase.transaction, &purchase.payer_acknowledgement) {
                (Some(first), Some(h)) if *first == transaction => Reaction::resend(
                    vec![Envelope::clone(h)],
                    format!(
                        "transaction {} repeated: its acknowledgement again",
                        payment.payment
                    ),
                ),
                _ => Reaction::ignore(format!(
                    "transaction for payment {} repeated or late",
                    payment.payment
                )),
            };
        }
        purchase.deadline = None;
        purchase.transaction = Some(transaction.clone());
        // A unit after the first is paid at the price agreed when the service started.
        let running = purchase
            .metering
            .as_ref()
            .is_some_and(|metering| metering.units > 0);
        let quote_holds = running
            || purchase
                .quote
                .as_ref()
                .is_some_and(|quote| quote.validity.holds_at(now));
        if !quote_holds {
            // Refused before any acquirer sees it: nothing can be charged.
            let mut sent = vec![negative_h(purchase, RefusalReason::QuoteExpired)];
            sent.extend(fail(purchase, Failure::QuoteExpired));
            return Reaction::send(sent);
        }
        let means = transaction.means.means();
        let acquirer = match self.config.acquirer_for(means) {
            Some(acquirer) if payment.accepted_means.contains(&means) => acquirer.clone(),
            _ => {
                let mut sent = vec![negative_h(purchase, RefusalReason::NoAcquirer)];
                sent.extend(fail(
                    purchase,
                    Failure::PaymentRefused {
                        reason: RefusalReason::NoAcquirer,
                    },
                ));
                return Reaction::send(sent);
            }
        };
        let mut sent = Vec::new();
        let session = purchase.request.session.clone();
        if let (Some(signed), Some(session)) = (transaction.means.wallet(), session)
            && self.config.session_provision > 0
        {
            match self.sessions.route(
                &purchase.request.terminal,
                &session,
                signed,
                &acquirer,
                &self.config.purchase_prefix,
                self.config.session_provision,
                now,
                self.config.acquirer_timeout_ms,
            ) {
                Route::Plain => {}
                Route::Open { request, settle } => {
                    sent.extend(settle.map(|settlement| *settlement));
                    purchase.segment = Some(request.segment.clone());
                    purchase.provision = Some(request);
                }
                Route::Admitted { segment, code } => {
                    // Verified against the provision and recorded: no round trip.
                    purchase.segment = Some(segment);
                    purchase.acquirer = Some(acquirer.clone());
                    let acknowledgement = Acknowledgement {
                        acquirer,
                        purchase: purchase.id.clone(),
                        payment: payment.payment.clone(),
                        verdict: Verdict::Positive {
                            authorisation_code: code.into(),
                            response_code: *b"00",
                            arpc: None,
                        },
                        provision: None,
                    };
                    sent.extend(authorised(
                        purchase,
                        acknowledgement,
                        now,
                        self.config.server_timeout_ms,
                    ));
                    return Reaction::send(sent);
                }
                Route::Refused(reason, why) => {
                    let mut sent = vec![negative_h(purchase, reason.clone())];
                    sent.extend(fail(purchase, Failure::PaymentRefused { reason }));
                    return Reaction {
                        sent,
                        ignored: Some(why),
                    };
                }
            }
        }
        purchase.acquirer = Some(acquirer.clone());
        purchase.stage = Stage::AwaitingAcknowledgement;
        purchase.deadline = Some(now.plus_millis(self.config.acquirer_timeout_ms));
        sent.push(Envelope {
            from: Party::FrontEnd,
            to: Party::Acquirer(acquirer.clone()),
            message: Message::AcquirerTransaction(Box::new(AcquirerTransaction {
                acquirer,
                merchant: self.config.merchant.clone(),
                request: payment,
                transaction,
                provision: purchase.provision.clone(),
            })),
        });
        Reaction::send(sent)
    }

    fn on_session_end(&mut self, now: Timestamp, from: &Party, end: SessionEnd) -> Reaction {
        if !matches!(from, Party::Client(sender) if *sender == end.terminal) {
            return Reaction::ignore(format!(
                "an end of session for terminal {} came from {from}",
                end.terminal
            ));
        }
        let (sent, note) = self
            .sessions
            .end(&end, now, self.config.acquirer_timeout_ms);
        Reaction {
            sent,
            ignored: note,
        }
    }

    fn on_stop(&mut self, from: &Party, request: StopService) -> Reaction {
        let Some(purchase) = self.purchases.get_mut(&request.purchase) else {
            return Reaction::ignore(format!("a stop for unknown purchase {}", request.purchase));
        };
        if !matches!(from, Party::Client(sender) if *sender == purchase.request.terminal)
            || request.terminal != purchase.request.terminal
        {
            return Reaction::ignore(format!(
                "a stop for purchase {} came from {from}",
                purchase.id
            ));
        }
        let Some(metering) = purchase.metering.as_mut() else {
            return Reaction::ignore(format!(
                "purchase {} is not billed per unit of time",
                purchase.id
            ));
        };
        match purchase.stage {
            // Between units, or the next unit asked but not paid: stop now (a payment
            // that comes after is ignored and never reaches an acquirer).
            Stage::Metering | Stage::AwaitingTransaction if metering.units > 0 => {
                Reaction::send(stop(purchase, "stopped by the user".into()))
            }
            Stage::Delivered | Stage::Failed(_) => {
                Reaction::ignore(format!("purchase {} has already stopped", purchase.id))
            }
            // A unit being paid or the service being delivered: stop once it is.
            _ => {
                metering.stop_requested = true;
                Reaction::ignore(format!(
                    "purchase {} stops once the unit being paid is settled",
                    purchase.id
                ))
            }
        }
    }

    fn on_settlement(&mut self, from: &Party, result: SettlementResult) -> Reaction {
        let (sent, note) = self.sessions.settled(from, result);
        Reaction {
            sent,
            ignored: note,
        }
    }

    fn on_declined(&mut self, from: &Party, declined: PaymentDeclined) -> Reaction {
        let Some(purchase) = self.purchases.get_mut(&declined.purchase) else {
            return Reaction::ignore(format!(
                "a declined payment for unknown purchase {}",
                declined.purchase
            ));
        };
        if !matches!(from, Party::Payer(sender) if *sender == purchase.request.terminal) {
            return Reaction::ignore(format!(
                "a declined payment for purchase {} came from {from}",
                purchase.id
            ));
        }
        let expected = purchase.payment.as_ref().map(|payment| &payment.payment);
        if purchase.stage != Stage::AwaitingTransaction || expected != Some(&declined.payment) {
            return Reaction::ignore(format!(
                "payment {} declined repeated or late",
                declined.payment
            ));
        }
        purchase.deadline = None;
        Reaction::send(fail(
            purchase,
            Failure::PaymentDeclined {
                reason: declined.reason,
            },
        ))
    }

    /// A payer device gives up a card payment that another front-end took (that one
    /// went away before H): passed to the bank card's acquirer, which checks the card's
    /// AAC and cancels the payment. Nothing is kept here: the acquirer's result names
    /// the terminal it goes back to, and a repeat is answered by the acquirer again.
    fn on_abandoned(&mut self, from: &Party, abandonment: Box<PaymentAbandonment>) -> Reaction {
        let terminal = &abandonment.transaction.terminal;
        if *from != Party::Payer(terminal.clone()) {
            return Reaction::ignore(format!(
                "an abandonment of terminal {terminal}'s payment came from {from}"
            ));
        }
        if abandonment.transaction.means.means() != Means::BankCard {
            return Reaction::ignore(format!(
                "payment {} is not a bank-card payment: only a card's AAC proves it declined",
                abandonment.transaction.payment
            ));
        }
        let Some(acquirer) = self.config.acquirer_for(Means::BankCard).cloned() else {
            return Reaction::ignore("this front-end has no bank-card acquirer");
        };
        Reaction::send(vec![Envelope {
            from: Party::FrontEnd,
            to: Party::Acquirer(acquirer),
            message: Message::PaymentAbandoned(abandonment),
        }])
    }

    /// The acquirer's result for an abandoned payment, passed on to the payer device.
    fn on_abandonment_result(&mut self, from: &Party, result: AbandonmentResult) -> Reaction {
        if *from != Party::Acquirer(result.acquirer.clone()) {
            return Reaction::ignore(format!(
                "an abandonment result of acquirer {} came from {from}",
                result.acquirer
            ));
        }
        Reaction::send(vec![Envelope {
            from: Party::FrontEnd,
            to: Party::Payer(result.terminal.clone()),
            message: Message::AbandonmentResult(result),
        }])
    }

    fn on_acknowledgement(
        &mut self,
        now: Timestamp,
        from: &Party,
        acknowledgement: Acknowledgement,
    ) -> Reaction {
        let Some(purchase) = self.purchases.get_mut(&acknowledgement.purchase) else {
            return Reaction::ignore(format!(
                "an acknowledgement for unknown purchase {}",
                acknowledgement.purchase
            ));
        };
        let expected_acquirer = purchase.acquirer.as_ref();
        let from_expected = matches!(
            (from, expected_acquirer),
            (Party::Acquirer(sender), Some(expected)) if sender == expected
        );
        if !from_expected || expected_acquirer != Some(&acknowledgement.acquirer) {
            return Reaction::ignore(format!(
                "an acknowledgement for purchase {} came from {from}",
                purchase.id
            ));
        }
        let expected_payment = purchase.payment.as_ref().map(|payment| &payment.payment);
        if expected_payment != Some(&acknowledgement.payment) {
            return Reaction::ignore(format!(
                "an acknowledgement for payment {}, not purchase {}'s",
                acknowledgement.payment, purchase.id
            ));
        }
        if purchase.stage != Stage::AwaitingAcknowledgement {
            // A late positive acknowledgement after the front-end gave up: the
            // acquirer authorised something nobody will get; cancel it again.
            if purchase.reversed && acknowledgement.verdict.is_positive() {
                return Reaction::resend(
                    reverse(
                        purchase,
                        "a positive acknowledgement arrived after the front-end gave up",
                    ),
                    format!(
                        "late positive acknowledgement for payment {}: reversed again",
                        acknowledgement.payment
                    ),
                );
            }
            return Reaction::ignore(format!(
                "acknowledgement for payment {} repeated or late",
                acknowledgement.payment
            ));
        }
        purchase.deadline = None;
        let mut sent = Vec::new();
        if let Some(asked) = purchase.provision.clone() {
            let timeout = self.config.acquirer_timeout_ms;
            let first = purchase
                .transaction
                .as_ref()
                .and_then(|transaction| transaction.means.wallet());
            let opened = match (&acknowledgement.verdict, &acknowledgement.provision, first) {
                (Verdict::Positive { .. }, Some(grant), Some(first)) => {
                    self.sessions
                        .granted(&asked.segment, grant, first, &self.config.merchant)
                }
                (Verdict::Positive { .. }, _, _) => Err((
                    RefusalReason::MismatchWithRequest,
                    format!("the acquirer granted no provision {}", asked.segment),
                )),
                (Verdict::Negative { .. }, _, _) => {
                    // Nothing reserved: forget the provision.
                    self.sessions.abandon(&asked.segment, false, now, timeout);
                    Ok(())
                }
            };
            if let Err((reason, why)) = opened {
                // Whatever was reserved is released; the payment is refused here.
                sent.extend(self.sessions.abandon(&asked.segment, true, now, timeout));
                purchase.acknowledgement = Some(acknowledgement);
                sent.push(negative_h(purchase, reason.clone()));
                sent.extend(fail(purchase, Failure::PaymentRefused { reason }));
                return Reaction {
                    sent,
                    ignored: Some(why),
                };
            }
            sent.extend(self.sessions.after_opening(&asked.segment, now, timeout));
        }
        sent.extend(authorised(
            purchase,
            acknowledgement,
            now,
            self.config.server_timeout_ms,
        ));
        Reaction::send(sent)
    }

    fn on_delivery(&mut self, now: Timestamp, from: &Party, delivery: ServiceDelivery) -> Reaction {
        let Some(purchase) = self.purchases.get_mut(&delivery.purchase) else {
            return Reaction::ignore(format!(
                "a delivery for unknown purchase {}",
                delivery.purchase
            ));
        };
        if !matches!(from, Party::Server(sender) if *sender == purchase.request.provider) {
            return Reaction::ignore(format!(
                "a delivery for purchase {} came from {from}",
                purchase.id
            ));
        }
        if !matches!(purchase.stage, Stage::AwaitingService { .. }) {
            return Reaction::ignore(format!(
                "delivery for purchase {} repeated or late",
                purchase.id
            ));
        }
        if delivery.service != purchase.request.service || !delivery.delivery.is_intact() {
            // Wait for the next attempt of I: the deadline stays.
            return Reaction::ignore(format!(
                "delivery for purchase {} is not the service ordered, or its content does not match its digest",
                purchase.id
            ));
        }
        purchase.deadline = None;
        Reaction::send(deliver(purchase, delivery.delivery, now))
    }
}

/// Passes the acquirer's (or the front-end's own) acknowledgement on to the payer device
/// as H, then, when positive, orders the service (or delivers it, Fig. 7); when
/// negative, ends the purchase.
fn authorised(
    purchase: &mut Purchase,
    acknowledgement: Acknowledgement,
    now: Timestamp,
    server_timeout_ms: i64,
) -> Vec<Envelope> {
    let h = Envelope {
        from: Party::FrontEnd,
        to: Party::Payer(purchase.request.terminal.clone()),
        message: Message::PayerAcknowledgement(PayerAcknowledgement {
            purchase: purchase.id.clone(),
            payment: acknowledgement.payment.clone(),
            verdict: acknowledgement.verdict.clone(),
        }),
    };
    purchase.payer_acknowledgement = Some(Box::new(h.clone()));
    // Only a refusal's reason is needed past here: the verdict itself is not copied.
    let refused = match &acknowledgement.verdict {
        Verdict::Negative { reason, .. } => Some(reason.clone()),
        Verdict::Positive { .. } => None,
    };
    purchase.acknowledgement = Some(acknowledgement);
    let mut sent = vec![h];
    match refused {
        Some(reason) => {
            sent.extend(fail(purchase, Failure::PaymentRefused { reason }));
        }
        None => {
            let amount = purchase.payment.as_ref().map(|payment| payment.amount);
            if let (Some(metering), Some(amount)) = (purchase.metering.as_mut(), amount) {
                metering.units = metering.units.saturating_add(1);
                metering.paid = Money::new(
                    metering.paid.minor.saturating_add(amount.minor),
                    metering.paid.currency,
                );
                if metering.units > 1 {
                    // The service runs already: the unit paid extends it.
                    sent.extend(keep_metering(purchase, now));
                    return sent;
                }
            }
            let enclosed = purchase
                .quote
                .as_ref()
                .and_then(|quote| quote.service_enclosed.clone());
            match enclosed {
                // Fig. 7: the service came with the quote; no I/J.
                Some(delivery) => sent.extend(deliver(purchase, delivery, now)),
                None => sent.extend(order_service(purchase, now, server_timeout_ms)),
            }
        }
    }
    sent
}

/// The designation of a unit's payment request: the service's, with the unit.
fn unit_designation(designation: &str, unit: u32, metering: &Metering) -> String {
    format!(
        "{designation}, unit {unit} of {} s (at most {})",
        metering.billing.unit_seconds, metering.max_units
    )
}

/// After a unit is paid (or K sent for the first): the paid time runs until the next
/// deadline, unless the units asked for are all paid or the user asked to stop.
fn keep_metering(purchase: &mut Purchase, now: Timestamp) -> Vec<Envelope> {
    let Some(metering) = purchase.metering.clone() else {
        return Vec::new();
    };
    if metering.stop_requested {
        return stop(purchase, "stopped by the user".into());
    }
    if metering.units >= metering.max_units {
        return stop(
            purchase,
            format!("the {} unit(s) asked for were paid", metering.units),
        );
    }
    purchase.stage = Stage::Metering;
    purchase.deadline =
        Some(now.plus_millis(i64::from(metering.billing.unit_seconds).saturating_mul(1_000)));
    Vec::new()
}

/// The paid time ran out: the next unit's payment request.
fn next_unit<E: Entropy>(
    purchase: &mut Purchase,
    config: &FrontEndConfig,
    entropy: &mut E,
    now: Timestamp,
) -> Vec<Envelope> {
    let (Some(metering), Some(quote)) = (purchase.metering.as_ref(), purchase.quote.as_ref())
    else {
        return Vec::new();
    };
    let unit = metering.units.saturating_add(1);
    let designation = unit_designation(&quote.static_info.designation, unit, metering).into();
    let price = quote.variable.price;
    // A fresh payment: nothing of the previous unit's carries over.
    purchase.transaction = None;
    purchase.acknowledgement = None;
    purchase.payer_acknowledgement = None;
    purchase.acquirer = None;
    purchase.reversed = false;
    purchase.provision = None;
    purchase.segment = None;
    ask_payment(
        purchase,
        config,
        entropy,
        now,
        PaymentId(Text::format(format_args!("{}-PAY-{unit}", purchase.id))),
        designation,
        price,
        now.plus_millis(config.payer_timeout_ms),
    )
}

/// Sends the payer device the payment request D for `amount` under `payment`, and
/// waits for its transaction.
#[allow(clippy::too_many_arguments)]
fn ask_payment<E: Entropy>(
    purchase: &mut Purchase,
    config: &FrontEndConfig,
    entropy: &mut E,
    now: Timestamp,
    payment: PaymentId,
    designation: Text,
    amount: Money,
    valid_until: Timestamp,
) -> Vec<Envelope> {
    let payment = PaymentRequest {
        purchase: purchase.id.clone(),
        payment,
        merchant: config.merchant.clone(),
        service: purchase.request.service.clone(),
        designation_digest: PaymentRequest::digest_designation(&designation),
        designation,
        amount,
        date: now,
        nonce: entropy.nonce(),
        valid_until,
        accepted_means: accepted_means(config),
        session: purchase.request.session.clone(),
    };
    purchase.payment = Some(payment.clone());
    purchase.stage = Stage::AwaitingTransaction;
    purchase.deadline = Some(now.plus_millis(config.payer_timeout_ms));
    vec![Envelope {
        from: Party::FrontEnd,
        to: Party::Payer(purchase.request.terminal.clone()),
        message: Message::PaymentRequest(payment),
    }]
}

/// Ends a service billed per unit of time: the client device and the server are told
/// how many units were paid. K stays the purchase's closing message.
fn stop(purchase: &mut Purchase, reason: String) -> Vec<Envelope> {
    let (units, paid) = purchase.metering.as_ref().map_or_else(
        || (0, Money::new(0, crate::messages::Currency::EUR)),
        |metering| (metering.units, metering.paid),
    );
    let stopped = ServiceStopped {
        purchase: purchase.id.clone(),
        service: purchase.request.service.clone(),
        units,
        paid,
        reason,
    };
    purchase.stage = Stage::Delivered;
    purchase.deadline = None;
    vec![
        Envelope {
            from: Party::FrontEnd,
            to: Party::Client(purchase.request.terminal.clone()),
            message: Message::ServiceStopped(stopped.clone()),
        },
        Envelope {
            from: Party::FrontEnd,
            to: Party::Server(purchase.request.provider.clone()),
            message: Message::ServiceStopped(stopped),
        },
    ]
}

/// What follows an accepted quote once the user is identified, if that was needed: a
/// free service is ordered (or delivered, Fig. 7), a paid one asked of the payer device.
fn after_quote<E: Entropy>(
    purchase: &mut Purchase,
    config: &FrontEndConfig,
    entropy: &mut E,
    now: Timestamp,
) -> Vec<Envelope> {
    // What D takes of the quote, not the quote: the purchase keeps it.
    let Some(quote) = purchase.quote.as_ref() else {
        return fail(
            purchase,
            Failure::BadRequest {
                reason: "no quote to act on".into(),
            },
        );
    };
    if quote.variable.price.is_zero() {
        // Free services: no payment steps (D–H).
        return match quote.service_enclosed.clone() {
            Some(delivery) => deliver(purchase, delivery, now),
            None => order_service(purchase, now, config.server_timeout_ms),
        };
    }
    let (price, valid_until) = (quote.variable.price, quote.validity.valid_until);
    let (payment, designation) = match &purchase.metering {
        Some(metering) => (
            PaymentId(Text::format(format_args!("{}-PAY-1", purchase.id))),
            unit_designation(&quote.static_info.designation, 1, metering).into(),
        ),
        None => (
            PaymentId(Text::format(format_args!("{}-PAY", purchase.id))),
            quote.static_info.designation.clone(),
        ),
    };
    ask_payment(
        purchase,
        config,
        entropy,
        now,
        payment,
        designation,
        price,
        valid_until,
    )
}

fn accepted_means(config: &FrontEndConfig) -> Vec<Means> {
    config.acquirers.iter().map(|(means, _)| *means).collect()
}

/// The service message that asks the payer device to identify its user (claim 16).
fn ask_identification<E: Entropy>(
    purchase: &mut Purchase,
    config: &FrontEndConfig,
    entropy: &mut E,
    now: Timestamp,
) -> Envelope {
    let (purpose, currency) = purchase
        .quote
        .as_ref()
        .map(|quote| {
            (
                quote.static_info.designation.to_string(),
                quote.variable.price.currency,
            )
        })
        .unwrap_or_else(|| (purchase.request.service.to_string(), Currency::EUR));
    let request = IdentificationRequest {
        purchase: purchase.id.clone(),
        identification: IdentificationId(Text::format(format_args!("{}-ID", purchase.id))),
        merchant: config.merchant.clone(),
        purpose,
        currency,
        date: now,
        nonce: entropy.nonce(),
        accepted_means: accepted_means(config),
    };
    purchase.identification = Some(Box::new(request.clone()));
    purchase.stage = Stage::AwaitingIdentification;
    purchase.deadline = Some(now.plus_millis(config.payer_timeout_ms));
    Envelope {
        from: Party::FrontEnd,
        to: Party::Payer(purchase.request.terminal.clone()),
        message: Message::IdentificationRequest(request),
    }
}

/// The identification's verdict for the payer device, kept to be resent on a repeated
/// proof.
fn identification_result(
    purchase: &mut Purchase,
    verdict: Verdict,
    customer: Option<CustomerId>,
) -> Envelope {
    let identification = purchase
        .identification
        .as_ref()
        .map(|request| request.identification.clone())
        .unwrap_or_else(|| "none".into());
    let result = Envelope {
        from: Party::FrontEnd,
        to: Party::Payer(purchase.request.terminal.clone()),
        message: Message::IdentificationResult(IdentificationResult {
            purchase: purchase.id.clone(),
            identification,
            verdict,
            customer,
        }),
    };
    purchase.identification_result = Some(Box::new(result.clone()));
    result
}

fn service_order(purchase: &Purchase) -> Envelope {
    Envelope {
        from: Party::FrontEnd,
        to: Party::Server(purchase.request.provider.clone()),
        message: Message::ServiceOrder(ServiceOrder {
            purchase: purchase.id.clone(),
            quote: purchase
                .quote
                .as_ref()
                .map(|quote| quote.quote.clone())
                .unwrap_or_else(|| "none".into()),
            service: purchase.request.service.clone(),
            customer: purchase.customer.clone(),
        }),
    }
}

fn order_service(purchase: &mut Purchase, now: Timestamp, timeout_ms: i64) -> Vec<Envelope> {
    purchase.stage = Stage::AwaitingService { attempt: 1 };
    purchase.deadline = Some(now.plus_millis(timeout_ms));
    vec![service_order(purchase)]
}

fn deliver(purchase: &mut Purchase, delivery: Delivery, now: Timestamp) -> Vec<Envelope> {
    let paid = purchase
        .payment
        .as_ref()
        .map(|payment| payment.amount)
        .or_else(|| purchase.quote.as_ref().map(|quote| quote.variable.price))
        .unwrap_or(crate::messages::Money::new(
            0,
            crate::messages::Currency::EUR,
        ));
    let k = Envelope {
        from: Party::FrontEnd,
        to: Party::Client(purchase.request.terminal.clone()),
        message: Message::ClientDelivery(ClientDelivery {
            request: purchase.request.request.clone(),
            purchase: purchase.id.clone(),
            service: purchase.request.service.clone(),
            delivery,
            paid,
        }),
    };
    purchase.stage = Stage::Delivered;
    purchase.deadline = None;
    purchase.closing = Some(Box::new(k.clone()));
    let mut sent = vec![k];
    sent.extend(keep_metering(purchase, now));
    sent
}

fn fail(purchase: &mut Purchase, failure: Failure) -> Vec<Envelope> {
    if purchase
        .metering
        .as_ref()
        .is_some_and(|metering| metering.units > 0)
    {
        // The service runs already (the client has K): a unit that cannot be paid
        // stops it.
        return stop(purchase, format!("the next unit was not paid: {failure}"));
    }
    let outcome = Envelope {
        from: Party::FrontEnd,
        to: Party::Client(purchase.request.terminal.clone()),
        message: Message::PurchaseOutcome(PurchaseOutcome {
            request: purchase.request.request.clone(),
            purchase: purchase.id.clone(),
            failure: failure.clone(),
        }),
    };
    purchase.stage = Stage::Failed(failure);
    purchase.deadline = None;
    purchase.closing = Some(Box::new(outcome.clone()));
    vec![outcome]
}

/// A negative H decided by the front-end itself (no acquirer verdict to pass on).
fn negative_h(purchase: &mut Purchase, reason: RefusalReason) -> Envelope {
    let payment = purchase
        .payment
        .as_ref()
        .map(|payment| payment.payment.clone())
        .unwrap_or_else(|| "none".into());
    let h = Envelope {
        from: Party::FrontEnd,
        to: Party::Payer(purchase.request.terminal.clone()),
        message: Message::PayerAcknowledgement(PayerAcknowledgement {
            purchase: purchase.id.clone(),
            payment,
            verdict: Verdict::refused(reason),
        }),
    };
    purchase.payer_acknowledgement = Some(Box::new(h.clone()));
    h
}

fn reverse(purchase: &mut Purchase, reason: &str) -> Vec<Envelope> {
    let (Some(acquirer), Some(payment)) = (purchase.acquirer.clone(), purchase.payment.as_ref())
    else {
        return Vec::new();
    };
    purchase.reversed = true;
    vec![Envelope {
        from: Party::FrontEnd,
        to: Party::Acquirer(acquirer.clone()),
        message: Message::Reversal(Reversal {
            acquirer,
            purchase: purchase.id.clone(),
            payment: payment.payment.clone(),
            reason: reason.to_owned(),
        }),
    }]
}

#[cfg(test)]
mod session_tests;
#[cfg(test)]
mod tests;
