//! The client device (21): asks the front-end for services (A) — payment services such as
//! a bill payment or an account reload among them (claim 17) — and receives them (K), or
//! learns why a purchase delivered nothing. Its requests may belong to a pseudo-session
//! (claim 10): opened by the device, named in each request, ended by a [`SessionEnd`]
//! that the front-end answers with the session's settled total.

use std::collections::{BTreeMap, HashMap};

use crate::messages::{
    ClientDelivery, Envelope, Failure, Message, Party, PaymentService, PostalAddress, ProviderId,
    PurchaseId, RequestId, ServiceId, ServiceRequest, ServiceStopped, SessionClosed, SessionEnd,
    SessionId, StopService, TerminalId, Text,
};

/// How a request ended, as the client device saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestResult {
    /// The service arrived, its content matching its digest.
    Delivered(ClientDelivery),
    /// A delivery arrived whose content does not match its digest.
    Damaged(ClientDelivery),
    /// The purchase ended without a delivery.
    Failed(Failure),
}

/// The client device of one terminal.
#[derive(Debug, Clone)]
pub struct ClientDevice {
    terminal: TerminalId,
    next_request: u64,
    /// Looked up by key only: hashed, not searched down a tree.
    requests: HashMap<RequestId, Option<RequestResult>>,
    session: Option<SessionId>,
    closed: BTreeMap<SessionId, SessionClosed>,
    stopped: BTreeMap<PurchaseId, ServiceStopped>,
}

impl ClientDevice {
    /// The client device of `terminal`.
    pub fn new(terminal: TerminalId) -> ClientDevice {
        ClientDevice {
            terminal,
            next_request: 1,
            requests: HashMap::new(),
            session: None,
            closed: BTreeMap::new(),
            stopped: BTreeMap::new(),
        }
    }

    /// Opens a pseudo-session named `session`: the requests that follow belong to it
    /// until [`ClientDevice::end_session`].
    pub fn open_session(&mut self, session: SessionId) {
        self.session = Some(session);
    }

    /// The session open, if any.
    pub fn session(&self) -> Option<&SessionId> {
        self.session.as_ref()
    }

    /// Ends the open session: the message that asks the front-end to settle it, or
    /// `None` when no session is open.
    pub fn end_session(&mut self) -> Option<Envelope> {
        let session = self.session.take()?;
        Some(Envelope {
            from: Party::Client(self.terminal.clone()),
            to: Party::FrontEnd,
            message: Message::SessionEnd(SessionEnd {
                terminal: self.terminal.clone(),
                session,
            }),
        })
    }

    /// How a session ended, once the front-end said so.
    pub fn session_closed(&self, session: &SessionId) -> Option<&SessionClosed> {
        self.closed.get(session)
    }

    /// The terminal.
    pub fn terminal(&self) -> &TerminalId {
        &self.terminal
    }

    /// Numbers the next requests from `first` on. A terminal whose front-end outlives
    /// it (a remote one) starts each run where no earlier run's numbers are — from the
    /// clock, say — since the front-end takes a repeated request identifier for the
    /// same request.
    pub fn numbering_from(mut self, first: u64) -> ClientDevice {
        self.next_request = first;
        self
    }

    /// A new service request A for `service` of `provider`.
    pub fn request(
        &mut self,
        provider: ProviderId,
        service: ServiceId,
        delivery_address: Option<PostalAddress>,
    ) -> Envelope {
        self.new_request(provider, service, delivery_address, None, None)
    }

    /// A new service request A for a payment service of `provider` (claim 17): the bill
    /// to pay, or the account to reload and by how much.
    pub fn request_payment_service(
        &mut self,
        provider: ProviderId,
        service: ServiceId,
        payment_service: PaymentService,
    ) -> Envelope {
        self.new_request(provider, service, None, Some(payment_service), None)
    }

    /// A new service request A for a service billed per unit of time, paying for
    /// `units` units at most (`None`: as many as the server allows).
    pub fn request_metered(
        &mut self,
        provider: ProviderId,
        service: ServiceId,
        units: Option<u32>,
    ) -> Envelope {
        self.new_request(provider, service, None, None, units)
    }

    /// Stops a service billed per unit of time that `purchase` runs.
    pub fn stop(&self, purchase: PurchaseId) -> Envelope {
        Envelope {
            from: Party::Client(self.terminal.clone()),
            to: Party::FrontEnd,
            message: Message::StopService(StopService {
                terminal: self.terminal.clone(),
                purchase,
            }),
        }
    }

    /// How a service billed per unit of time stopped, once it did.
    pub fn stopped(&self, purchase: &PurchaseId) -> Option<&ServiceStopped> {
        self.stopped.get(purchase)
    }

    fn new_request(
        &mut self,
        provider: ProviderId,
        service: ServiceId,
        delivery_address: Option<PostalAddress>,
        payment_service: Option<PaymentService>,
        units: Option<u32>,
    ) -> Envelope {
        let request = RequestId(Text::format(format_args!(
            "{}-R{}",
            self.terminal, self.next_request
        )));
        self.next_request = self.next_request.saturating_add(1);
        self.requests.insert(request.clone(), None);
        Envelope {
            from: Party::Client(self.terminal.clone()),
            to: Party::FrontEnd,
            message: Message::ServiceRequest(ServiceRequest {
                payment_service,
                request,
                terminal: self.terminal.clone(),
                provider,
                service,
                delivery_address,
                session: self.session.clone(),
                units,
            }),
        }
    }

    /// How a request ended, once it has.
    pub fn result(&self, request: &RequestId) -> Option<&RequestResult> {
        self.requests.get(request).and_then(Option::as_ref)
    }

    /// Takes K or the purchase's outcome from the front-end. The first answer to a
    /// request stands; a repeated one changes nothing.
    pub fn handle(&mut self, from: &Party, message: Message) {
        if *from != Party::FrontEnd {
            return;
        }
        let (request, result) = match message {
            Message::ClientDelivery(delivery) => {
                let request = delivery.request.clone();
                let result = if delivery.delivery.is_intact() {
                    RequestResult::Delivered(delivery)
                } else {
                    RequestResult::Damaged(delivery)
                };
                (request, result)
            }
            Message::PurchaseOutcome(outcome) => {
                (outcome.request, RequestResult::Failed(outcome.failure))
            }
            Message::ServiceStopped(stopped) => {
                self.stopped
                    .entry(stopped.purchase.clone())
                    .or_insert(stopped);
                return;
            }
            Message::SessionClosed(closed) => {
                if closed.terminal == self.terminal {
                    self.closed.entry(closed.session.clone()).or_insert(closed);
                }
                return;
            }
            _ => return,
        };
        if let Some(slot @ None) = self.requests.get_mut(&request) {
            *slot = Some(result);
        }
    }
}
