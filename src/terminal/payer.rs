//! The payer device (22): answers the front-end's payment requests (D) with a
//! transaction (E) made with the bank card, and completes the card's transaction with the
//! acknowledgement (H). It also answers the front-end's service messages (claim 16): an
//! [`IdentificationRequest`] gets the card's proof of identity, a zero-amount
//! cryptogram made after the card verified the PIN, and the [`IdentificationResult`]
//! completes the card's transaction as H does.
//!
//! The device itself holds the rules (which means it accepts, what it does with a
//! repeated D or H); the card is reached through the [`CardModule`] over any reader, and
//! the user through the [`PayerUser`] trait (a terminal prompt, or a script). A PIN is
//! asked for each payment, presented to the card, and dropped (zeroized) at once.

use std::collections::BTreeMap;

use zeroize::Zeroizing;

use crate::emv::CardChannel;
use crate::messages::{
    CustomerId, Envelope, IdentificationDeclined, IdentificationId, IdentificationProof,
    IdentificationRequest, IdentificationResult, Means, Message, Party, PayerAcknowledgement,
    Payment, PaymentDeclined, PaymentId, PaymentRequest, TerminalId, Transaction,
};
use crate::terminal::card_module::{CardModule, CardModuleError, Completion};

/// What the front-end asks of the user: to pay, or to be identified.
#[derive(Debug, Clone, Copy)]
pub enum Solicitation<'a> {
    /// A payment request D.
    Payment(&'a PaymentRequest),
    /// A service message: identify yourself (claim 16).
    Identification(&'a IdentificationRequest),
}

/// The person at the payer device: confirms a payment or an identification and types
/// the PIN.
pub trait PayerUser {
    /// Whether the user agrees: to pay (amount, designation, validity shown), or to be
    /// identified (purpose shown).
    fn confirm(&mut self, solicitation: Solicitation<'_>) -> bool;

    /// The PIN for this payment or identification, or `None` when the user gives none.
    fn pin(&mut self, solicitation: Solicitation<'_>) -> Option<Zeroizing<String>>;
}

/// A user whose answers are given in advance: tests, `--pin-stdin`, benchmarks.
pub struct ScriptedUser {
    /// Whether every payment is confirmed.
    pub confirms: bool,
    /// The PIN given for every payment.
    pub pin: Option<Zeroizing<String>>,
}

impl ScriptedUser {
    /// A user who confirms and types `pin`.
    pub fn with_pin(pin: &str) -> ScriptedUser {
        ScriptedUser {
            confirms: true,
            pin: Some(Zeroizing::new(pin.to_owned())),
        }
    }
}

impl std::fmt::Debug for ScriptedUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptedUser")
            .field("confirms", &self.confirms)
            .field("pin", &self.pin.as_ref().map(|_| "<hidden>"))
            .finish()
    }
}

impl PayerUser for ScriptedUser {
    fn confirm(&mut self, _solicitation: Solicitation<'_>) -> bool {
        self.confirms
    }

    fn pin(&mut self, _solicitation: Solicitation<'_>) -> Option<Zeroizing<String>> {
        self.pin.clone()
    }
}

/// How one payment went on the payer device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentState {
    /// E sent; waiting for H.
    AwaitingAcknowledgement,
    /// The payment was declined on the device (no E): why.
    Declined(String),
    /// H arrived and the card completed the transaction.
    Completed(Completion),
    /// H arrived but the card could not complete: why.
    CompletionFailed(String),
}

struct PaymentRecord {
    answer: Envelope,
    state: PaymentState,
}

/// How one identification went on the payer device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentificationState {
    /// The proof was sent; waiting for the result.
    AwaitingResult,
    /// The identification was declined on the device (no proof): why.
    Declined(String),
    /// The result arrived and the card completed: the customer named, if positive.
    Completed {
        /// How the card ended its transaction.
        completion: Completion,
        /// The customer the acquirer named, on a positive result.
        customer: Option<CustomerId>,
    },
    /// The result arrived but the card could not complete: why.
    CompletionFailed(String),
}

struct IdentificationRecord {
    answer: Envelope,
    state: IdentificationState,
}

/// The payer device of one terminal, with its card module and its user.
pub struct PayerDevice<C: CardChannel, U: PayerUser> {
    terminal: TerminalId,
    card: CardModule<C>,
    user: U,
    // Boxed: a record holds a whole envelope, and map nodes then move pointers.
    payments: BTreeMap<PaymentId, Box<PaymentRecord>>,
    identifications: BTreeMap<IdentificationId, IdentificationRecord>,
}

impl<C: CardChannel, U: PayerUser> PayerDevice<C, U> {
    /// The payer device of `terminal`.
    pub fn new(terminal: TerminalId, card: CardModule<C>, user: U) -> PayerDevice<C, U> {
        PayerDevice {
            terminal,
            card,
            user,
            payments: BTreeMap::new(),
            identifications: BTreeMap::new(),
        }
    }

    /// The terminal this device belongs to.
    pub fn terminal(&self) -> &TerminalId {
        &self.terminal
    }

    /// The user.
    pub fn user(&self) -> &U {
        &self.user
    }

    /// The card module (its channel holds the card dialogue when recorded).
    pub fn card(&self) -> &CardModule<C> {
        &self.card
    }

    /// The card module, mutably.
    pub fn card_mut(&mut self) -> &mut CardModule<C> {
        &mut self.card
    }

    /// How a payment went, if this device saw its request.
    pub fn payment_state(&self, payment: &PaymentId) -> Option<&PaymentState> {
        self.payments.get(payment).map(|record| &record.state)
    }

    /// How an identification went, if this device saw its request.
    pub fn identification_state(
        &self,
        identification: &IdentificationId,
    ) -> Option<&IdentificationState> {
        self.identifications
            .get(identification)
            .map(|record| &record.state)
    }

    /// Takes a message from the front-end.
    pub fn handle(&mut self, from: &Party, message: Message) -> Vec<Envelope> {
        if *from != Party::FrontEnd {
            return Vec::new();
        }
        match message {
            Message::PaymentRequest(request) => self.on_payment_request(request),
            Message::PayerAcknowledgement(acknowledgement) => {
                self.on_acknowledgement(&acknowledgement);
                // H expects no answer.
                Vec::new()
            }
            Message::IdentificationRequest(request) => self.on_identification_request(request),
            Message::IdentificationResult(result) => {
                self.on_identification_result(&result);
                // Like H, the result expects no answer.
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    fn on_payment_request(&mut self, request: PaymentRequest) -> Vec<Envelope> {
        if let Some(record) = self.payments.get(&request.payment) {
            // A repeated D: the same answer, without touching the card again.
            return vec![record.answer.clone()];
        }
        let (message, state) = match self.pay(&request) {
            Ok(payment) => (
                Message::Transaction(Transaction {
                    purchase: request.purchase.clone(),
                    payment: request.payment.clone(),
                    terminal: self.terminal.clone(),
                    means: payment,
                }),
                PaymentState::AwaitingAcknowledgement,
            ),
            Err(reason) => (
                Message::PaymentDeclined(PaymentDeclined {
                    purchase: request.purchase.clone(),
                    payment: request.payment.clone(),
                    reason: reason.clone(),
                }),
                PaymentState::Declined(reason),
            ),
        };
        let answer = Envelope {
            from: Party::Payer(self.terminal.clone()),
            to: Party::FrontEnd,
            message,
        };
        self.payments.insert(
            request.payment.clone(),
            Box::new(PaymentRecord {
                answer: answer.clone(),
                state,
            }),
        );
        vec![answer]
    }

    fn on_identification_request(&mut self, request: IdentificationRequest) -> Vec<Envelope> {
        if let Some(record) = self.identifications.get(&request.identification) {
            // A repeated request: the same answer, without touching the card again.
            return vec![record.answer.clone()];
        }
        let (message, state) = match self.sign(
            Solicitation::Identification(&request),
            &request.card_request(),
        ) {
            Ok(proof) => (
                Message::IdentificationProof(IdentificationProof {
                    purchase: request.purchase.clone(),
                    identification: request.identification.clone(),
                    terminal: self.terminal.clone(),
                    proof,
                }),
                IdentificationState::AwaitingResult,
            ),
            Err(reason) => (
                Message::IdentificationDeclined(IdentificationDeclined {
                    purchase: request.purchase.clone(),
                    identification: request.identification.clone(),
                    reason: reason.clone(),
                }),
                IdentificationState::Declined(reason),
            ),
        };
        let answer = Envelope {
            from: Party::Payer(self.terminal.clone()),
            to: Party::FrontEnd,
            message,
        };
        self.identifications.insert(
            request.identification.clone(),
            IdentificationRecord {
                answer: answer.clone(),
                state,
            },
        );
        vec![answer]
    }

    fn on_identification_result(&mut self, result: &IdentificationResult) {
        let Some(record) = self.identifications.get_mut(&result.identification) else {
            return;
        };
        if record.state != IdentificationState::AwaitingResult {
            return;
        }
        record.state = match self.card.complete(&result.verdict) {
            Ok(completion) => IdentificationState::Completed {
                completion,
                customer: result.customer.clone(),
            },
            Err(error) => IdentificationState::CompletionFailed(error.to_string()),
        };
    }

    /// Confirmation, card read, PIN, first GENERATE AC.
    fn pay(&mut self, request: &PaymentRequest) -> Result<Payment, String> {
        self.sign(Solicitation::Payment(request), request)
    }

    /// What a payment and an identification share: the user's consent, the card read,
    /// the PIN verified by the card, and the card's ARQC over `card_request`.
    fn sign(
        &mut self,
        solicitation: Solicitation<'_>,
        card_request: &PaymentRequest,
    ) -> Result<Payment, String> {
        let what = match solicitation {
            Solicitation::Payment(_) => "payment",
            Solicitation::Identification(_) => "identification",
        };
        if !card_request.accepted_means.contains(&Means::BankCard) {
            return Err(format!(
                "the front-end does not accept the bank card for this {what}"
            ));
        }
        if !self.user.confirm(solicitation) {
            return Err(format!("the user declined the {what}"));
        }
        self.card.read().map_err(|error| error.to_string())?;
        let Some(pin) = self.user.pin(solicitation) else {
            return Err("no PIN was entered".into());
        };
        self.card.present_pin(&pin).map_err(|error| match error {
            CardModuleError::WrongPin { tries_left } => format!(
                "wrong PIN: {tries_left} {} left",
                if tries_left == 1 { "try" } else { "tries" }
            ),
            CardModuleError::PinBlocked => "the card is blocked (PIN try limit exceeded)".into(),
            other => other.to_string(),
        })?;
        drop(pin);
        let transaction = self
            .card
            .authorise(card_request)
            .map_err(|error| error.to_string())?;
        Ok(Payment::BankCard(transaction))
    }

    fn on_acknowledgement(&mut self, acknowledgement: &PayerAcknowledgement) {
        let Some(record) = self.payments.get_mut(&acknowledgement.payment) else {
            return;
        };
        if record.state != PaymentState::AwaitingAcknowledgement {
            // A repeated H, or an H for a declined payment: nothing to complete.
            return;
        }
        record.state = match self.card.complete(&acknowledgement.verdict) {
            Ok(completion) => PaymentState::Completed(completion),
            Err(error) => PaymentState::CompletionFailed(error.to_string()),
        };
    }
}
