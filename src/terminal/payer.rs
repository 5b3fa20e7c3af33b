//! The payer device (22): answers the front-end's payment requests (D) with a
//! transaction (E) made with the bank card, and completes the card's transaction with the
//! acknowledgement (H).
//!
//! The device itself holds the rules (which means it accepts, what it does with a
//! repeated D or H); the card is reached through the [`CardModule`] over any reader, and
//! the user through the [`PayerUser`] trait (a terminal prompt, or a script). A PIN is
//! asked for each payment, presented to the card, and dropped (zeroized) at once.

use std::collections::BTreeMap;

use zeroize::Zeroizing;

use crate::emv::CardChannel;
use crate::messages::{
    Envelope, Means, Message, Party, PayerAcknowledgement, Payment, PaymentDeclined, PaymentId,
    PaymentRequest, TerminalId, Transaction,
};
use crate::terminal::card_module::{CardModule, CardModuleError, Completion};

/// The person at the payer device: confirms a payment and types the PIN.
pub trait PayerUser {
    /// Whether the user agrees to pay `request` (amount, designation, validity shown).
    fn confirm(&mut self, request: &PaymentRequest) -> bool;

    /// The PIN for this payment, or `None` when the user gives none.
    fn pin(&mut self, request: &PaymentRequest) -> Option<Zeroizing<String>>;
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
    fn confirm(&mut self, _request: &PaymentRequest) -> bool {
        self.confirms
    }

    fn pin(&mut self, _request: &PaymentRequest) -> Option<Zeroizing<String>> {
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

/// The payer device of one terminal, with its card module and its user.
pub struct PayerDevice<C: CardChannel, U: PayerUser> {
    terminal: TerminalId,
    card: CardModule<C>,
    user: U,
    payments: BTreeMap<PaymentId, PaymentRecord>,
}

impl<C: CardChannel, U: PayerUser> PayerDevice<C, U> {
    /// The payer device of `terminal`.
    pub fn new(terminal: TerminalId, card: CardModule<C>, user: U) -> PayerDevice<C, U> {
        PayerDevice {
            terminal,
            card,
            user,
            payments: BTreeMap::new(),
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
            PaymentRecord {
                answer: answer.clone(),
                state,
            },
        );
        vec![answer]
    }

    /// Confirmation, card read, PIN, first GENERATE AC.
    fn pay(&mut self, request: &PaymentRequest) -> Result<Payment, String> {
        if !request.accepted_means.contains(&Means::BankCard) {
            return Err("the front-end does not accept the bank card for this payment".into());
        }
        if !self.user.confirm(request) {
            return Err("the user declined the payment".into());
        }
        self.card.read().map_err(|error| error.to_string())?;
        let Some(pin) = self.user.pin(request) else {
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
            .authorise(request)
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
