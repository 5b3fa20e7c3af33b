//! The embedded runner: every role of a purchase in one process, connected by a message
//! queue, with every message recorded in a [`PurchaseLog`].
//!
//! Roles never call one another: each is a [`Role`] that takes a message and the time
//! and returns the messages it sends. The [`Runner`] delivers them in order, asks the
//! roles for their deadlines when the queue is empty, moves its [`Clock`] there and fires
//! them, until nothing is left to deliver or wait for. A [`Faults`] plan drops or delays
//! messages on their way, to play unreachable and silent parties.

pub mod embedded;
pub mod render;

use std::collections::{BTreeMap, VecDeque};

use crate::acquirer::system::BankCardAcquirer;
use crate::acquirer::wallet::WalletAcquirer;
use crate::emv::CardChannel;
use crate::frontend::{Entropy, FrontEnd};
use crate::messages::{AbandonmentResult, Envelope, Message, Party, Timestamp};
use crate::provider::ServiceServer;
use crate::terminal::client::ClientDevice;
use crate::terminal::payer::{PayerDevice, PayerUser};

/// A party of the purchase as the runner drives it.
pub trait Role {
    /// Who this role is.
    fn party(&self) -> Party;

    /// Takes `message` from `from` at `now`; returns what it sends, and why it ignored the
    /// message when it did.
    fn handle(&mut self, now: Timestamp, from: &Party, message: Message) -> Handled;

    /// [`Role::handle`] for a message the caller keeps: what the [`Runner`] calls, since
    /// its log holds every message. By default a copy goes to [`Role::handle`]; a role
    /// that only reads the message answers from the reference and saves the copy (a
    /// purchase's eleven messages are a few kilobytes of strings).
    fn handle_ref(&mut self, now: Timestamp, from: &Party, message: &Message) -> Handled {
        self.handle(now, from, message.clone())
    }

    /// When [`Role::handle_timeout`] is due, if the role waits for anything.
    fn poll_timeout(&self) -> Option<Timestamp> {
        None
    }

    /// Fires the deadlines reached at `now`.
    fn handle_timeout(&mut self, _now: Timestamp) -> Handled {
        Handled::default()
    }
}

/// What a role did with one input.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Handled {
    /// The messages it sends.
    pub sent: Vec<Envelope>,
    /// Why it ignored the input, when it did.
    pub note: Option<String>,
}

impl Handled {
    /// Sends `sent`, no note.
    pub fn send(sent: Vec<Envelope>) -> Handled {
        Handled { sent, note: None }
    }
}

impl From<crate::frontend::Reaction> for Handled {
    fn from(reaction: crate::frontend::Reaction) -> Handled {
        Handled {
            sent: reaction.sent,
            note: reaction.ignored,
        }
    }
}

impl<E: Entropy> Role for FrontEnd<E> {
    fn party(&self) -> Party {
        Party::FrontEnd
    }

    fn handle(&mut self, now: Timestamp, from: &Party, message: Message) -> Handled {
        FrontEnd::handle(self, now, from, message).into()
    }

    fn poll_timeout(&self) -> Option<Timestamp> {
        FrontEnd::poll_timeout(self)
    }

    fn handle_timeout(&mut self, now: Timestamp) -> Handled {
        FrontEnd::handle_timeout(self, now).into()
    }
}

impl Role for ServiceServer {
    fn party(&self) -> Party {
        Party::Server(self.catalogue().provider().clone())
    }

    fn handle(&mut self, now: Timestamp, from: &Party, message: Message) -> Handled {
        self.handle_ref(now, from, &message)
    }

    fn handle_ref(&mut self, now: Timestamp, from: &Party, message: &Message) -> Handled {
        let answer = match message {
            Message::QuoteRequest(request) => match self.handle_quote_request(request, now) {
                Ok(quote) => Message::Quote(quote),
                Err(unavailable) => Message::Unavailable(unavailable),
            },
            Message::ServiceOrder(order) => match self.handle_service_order(order) {
                Ok(delivery) => Message::ServiceDelivery(delivery),
                Err(unavailable) => Message::Unavailable(unavailable),
            },
            // The stream or connection it delivered closes; nothing to answer.
            Message::ServiceStopped(stopped) => {
                return Handled {
                    sent: Vec::new(),
                    note: Some(format!(
                        "{} closed after {} unit(s)",
                        stopped.service, stopped.units
                    )),
                };
            }
            other => {
                return Handled {
                    sent: Vec::new(),
                    note: Some(format!(
                        "a service server takes no {} message",
                        other.step()
                    )),
                };
            }
        };
        Handled::send(vec![Envelope {
            from: self.party(),
            to: from.clone(),
            message: answer,
        }])
    }
}

impl<C: CardChannel, U: PayerUser> Role for PayerDevice<C, U> {
    fn party(&self) -> Party {
        Party::Payer(self.terminal().clone())
    }

    fn handle(&mut self, now: Timestamp, from: &Party, message: Message) -> Handled {
        Handled::send(PayerDevice::handle(self, now, from, message))
    }

    fn handle_ref(&mut self, now: Timestamp, from: &Party, message: &Message) -> Handled {
        Handled::send(PayerDevice::handle_ref(self, now, from, message))
    }
}

impl Handled {
    /// `answer` sent back to `to` from `from`, or, when the role could not answer (no
    /// durable record, so no answer: the sender's deadline decides), its error as a
    /// note.
    fn answer<E: std::fmt::Display>(
        from: Party,
        to: &Party,
        answer: Result<Message, E>,
    ) -> Handled {
        match answer {
            Ok(message) => Handled::send(vec![Envelope {
                from,
                to: to.clone(),
                message,
            }]),
            Err(error) => Handled::note(error.to_string()),
        }
    }

    /// Nothing sent; why.
    fn note(note: String) -> Handled {
        Handled {
            sent: Vec::new(),
            note: Some(note),
        }
    }
}

/// A reversal expects no answer: its outcome, or the error, as a note.
fn reversal_note<O: std::fmt::Display, E: std::fmt::Display>(
    reversal: &crate::messages::Reversal,
    outcome: Result<O, E>,
) -> Handled {
    Handled::note(match outcome {
        Ok(outcome) => format!("reversal of {}: {outcome}", reversal.payment),
        Err(error) => error.to_string(),
    })
}

impl<J: crate::acquirer::store::CardJournal> Role for BankCardAcquirer<J> {
    fn party(&self) -> Party {
        Party::Acquirer(self.id().clone())
    }

    fn handle(&mut self, now: Timestamp, from: &Party, message: Message) -> Handled {
        self.handle_ref(now, from, &message)
    }

    fn handle_ref(&mut self, now: Timestamp, from: &Party, message: &Message) -> Handled {
        let party = self.party();
        match message {
            // No durable record, no acknowledgement: the front-end's deadline reverses
            // the payment.
            Message::AcquirerTransaction(transaction) => Handled::answer(
                party,
                from,
                self.authorise(transaction, now)
                    .map(Message::Acknowledgement),
            ),
            // No durable counter, no verdict: the front-end's deadline ends the
            // identification.
            Message::IdentityCheck(check) => Handled::answer(
                party,
                from,
                self.identify(check, now).map(Message::IdentityVerdict),
            ),
            Message::Reversal(reversal) => {
                let outcome = self
                    .reverse(reversal, now)
                    .map(|outcome| format!("{outcome:?}"));
                reversal_note(reversal, outcome)
            }
            // No durable reversal, no result: the payer device asks again.
            Message::PaymentAbandoned(abandonment) => Handled::answer(
                party,
                from,
                self.abandon(abandonment, now).map(|outcome| {
                    Message::AbandonmentResult(AbandonmentResult {
                        acquirer: self.id().clone(),
                        terminal: abandonment.transaction.terminal.clone(),
                        purchase: abandonment.transaction.purchase.clone(),
                        payment: abandonment.transaction.payment.clone(),
                        outcome,
                    })
                }),
            ),
            // Claims 8, 9: a card payment is disputed with the card's issuer, under the
            // card schemes' chargeback rules, not with the acquirer of a telepayment.
            Message::DisputeCase(case) => Handled::answer(
                party,
                from,
                Ok::<_, std::convert::Infallible>(Message::DisputeOutcome(
                    crate::messages::DisputeOutcome {
                        dispute: case.dispute.dispute.clone(),
                        acquirer: Some(self.id().clone()),
                        outcome: crate::messages::DisputeDecision::Rejected {
                            reason: "disputes on bank-card payments go to the card issuer".into(),
                        },
                    },
                )),
            ),
            other => Handled::note(format!("an acquirer takes no {} message", other.step())),
        }
    }
}

impl Role for WalletAcquirer {
    fn party(&self) -> Party {
        Party::Acquirer(self.id().clone())
    }

    fn handle(&mut self, now: Timestamp, from: &Party, message: Message) -> Handled {
        let party = self.party();
        match message {
            // No durable record, no acknowledgement: the front-end's deadline reverses
            // the payment.
            Message::AcquirerTransaction(transaction) => Handled::answer(
                party,
                from,
                self.authorise(&transaction, now)
                    .map(Message::Acknowledgement),
            ),
            // Nothing settled: the front-end sends the settlement again.
            Message::SessionSettlement(settlement) => Handled::answer(
                party,
                from,
                self.settle(&settlement, now).map(Message::SettlementResult),
            ),
            Message::Reversal(reversal) => {
                let outcome = self.reverse(&reversal, now);
                reversal_note(&reversal, outcome)
            }
            // Nothing recorded, no outcome: the front-end's deadline tells the payer
            // device the dispute is unanswered.
            Message::DisputeCase(case) => Handled::answer(
                party,
                from,
                self.dispute(&case, now).map(Message::DisputeOutcome),
            ),
            other => Handled::note(format!("an acquirer takes no {} message", other.step())),
        }
    }
}

impl Role for ClientDevice {
    fn party(&self) -> Party {
        Party::Client(self.terminal().clone())
    }

    fn handle(&mut self, _now: Timestamp, from: &Party, message: Message) -> Handled {
        ClientDevice::handle(self, from, message);
        Handled::default()
    }
}

/// Where the runner reads the time and how it waits for a deadline.
pub trait Clock {
    /// The time now.
    fn now(&mut self) -> Timestamp;

    /// Returns once `deadline` has come.
    fn wait_until(&mut self, deadline: Timestamp);
}

/// The system's wall clock; waiting sleeps.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&mut self) -> Timestamp {
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX))
    }

    fn wait_until(&mut self, deadline: Timestamp) {
        let now = self.now();
        if deadline > now {
            let millis = u64::try_from(deadline.0.saturating_sub(now.0)).unwrap_or(0);
            std::thread::sleep(std::time::Duration::from_millis(millis));
        }
    }
}

/// A clock that moves only when told: each reading advances it by `step` milliseconds
/// (so that a log shows messages in order), and waiting jumps to the deadline. Runs are
/// deterministic and a deadline of minutes passes at once.
#[derive(Debug, Clone, Copy)]
pub struct VirtualClock {
    now: Timestamp,
    step: i64,
}

impl VirtualClock {
    /// A clock at `start` that advances `step` milliseconds per reading.
    pub fn new(start: Timestamp, step: i64) -> VirtualClock {
        VirtualClock { now: start, step }
    }
}

impl Clock for VirtualClock {
    fn now(&mut self) -> Timestamp {
        let now = self.now;
        self.now = self.now.plus_millis(self.step);
        now
    }

    fn wait_until(&mut self, deadline: Timestamp) {
        self.now = self.now.max(deadline);
    }
}

/// What happens to one message on its way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Delivered.
    Delivered,
    /// Lost on the way (an unreachable or silent party).
    Dropped,
}

/// A plan of network faults: which messages are lost, by step and addressee.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    drop_to: Vec<(Option<&'static str>, PartyKind)>,
}

/// A kind of party, for fault plans that do not care which terminal or server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartyKind {
    /// Any client device.
    Client,
    /// Any payer device.
    Payer,
    /// The front-end.
    FrontEnd,
    /// Any service server.
    Server,
    /// Any acquirer.
    Acquirer,
}

impl PartyKind {
    fn of(party: &Party) -> PartyKind {
        match party {
            Party::Client(_) => PartyKind::Client,
            Party::Payer(_) => PartyKind::Payer,
            Party::FrontEnd => PartyKind::FrontEnd,
            Party::Server(_) => PartyKind::Server,
            Party::Acquirer(_) => PartyKind::Acquirer,
        }
    }
}

impl Faults {
    /// No fault.
    pub fn none() -> Faults {
        Faults::default()
    }

    /// Every message to parties of `kind` is lost (an unreachable party).
    pub fn unreachable(mut self, kind: PartyKind) -> Faults {
        self.drop_to.push((None, kind));
        self
    }

    /// Every message of `step` ("A" … "K", or a [`Message::step`] name) to parties of
    /// `kind` is lost.
    pub fn drop_step(mut self, step: &'static str, kind: PartyKind) -> Faults {
        self.drop_to.push((Some(step), kind));
        self
    }

    fn fate(&self, envelope: &Envelope) -> Fate {
        let kind = PartyKind::of(&envelope.to);
        let dropped = self.drop_to.iter().any(|(step, target)| {
            *target == kind && step.is_none_or(|step| step == envelope.message.step())
        });
        if dropped {
            Fate::Dropped
        } else {
            Fate::Delivered
        }
    }
}

/// One line of the purchase log: a message, when it left, and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// When the runner delivered (or lost) it.
    pub at: Timestamp,
    /// The message.
    pub envelope: Envelope,
    /// Delivered or lost.
    pub fate: Fate,
    /// What the addressee said when it ignored it, or why it could not be delivered.
    pub note: Option<String>,
}

/// Every message of a run, in the order delivered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PurchaseLog {
    /// The entries.
    pub entries: Vec<LogEntry>,
}

impl PurchaseLog {
    /// The steps delivered, in order (`"A"`, `"B"`, …).
    pub fn steps(&self) -> Vec<&'static str> {
        self.entries
            .iter()
            .filter(|entry| entry.fate == Fate::Delivered)
            .map(|entry| entry.envelope.message.step())
            .collect()
    }
}

/// Why a run stopped before the queue emptied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    /// More messages than any purchase can need: a loop between roles.
    #[error("the run went past {limit} messages: the roles are looping")]
    TooManyMessages {
        /// The limit.
        limit: usize,
    },
}

/// The log entries a runner makes room for at once: those of a purchase A to K (11)
/// and of its usual variants (a reversal, a repeated message).
const LOG_CAPACITY: usize = 16;

/// Connects roles and delivers their messages.
pub struct Runner<'a, K: Clock> {
    roles: BTreeMap<Party, &'a mut dyn Role>,
    clock: K,
    faults: Faults,
    log: PurchaseLog,
    message_limit: usize,
}

impl<'a, K: Clock> Runner<'a, K> {
    /// A runner over `roles`, reading `clock`, with no fault.
    pub fn new(roles: Vec<&'a mut dyn Role>, clock: K) -> Runner<'a, K> {
        Runner {
            roles: roles.into_iter().map(|role| (role.party(), role)).collect(),
            clock,
            faults: Faults::none(),
            // A purchase A to K is 11 messages: one allocation instead of three growths
            // (and copies) of a log whose entries are about half a kilobyte each.
            log: PurchaseLog {
                entries: Vec::with_capacity(LOG_CAPACITY),
            },
            message_limit: 10_000,
        }
    }

    /// Plays `faults` on every message.
    pub fn with_faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }

    /// The log so far.
    pub fn log(&self) -> &PurchaseLog {
        &self.log
    }

    /// Gives the log back.
    pub fn into_log(self) -> PurchaseLog {
        self.log
    }

    /// The clock.
    pub fn clock_mut(&mut self) -> &mut K {
        &mut self.clock
    }

    /// Sends `first` and delivers every message that follows, firing deadlines when the
    /// queue is empty, until nothing is left to deliver or wait for.
    ///
    /// # Errors
    /// [`RunError::TooManyMessages`] when the roles keep answering one another.
    pub fn run(&mut self, first: Envelope) -> Result<(), RunError> {
        // Rarely more than a message or two wait at once.
        let mut queue = VecDeque::with_capacity(4);
        queue.push_back(first);
        let mut delivered = 0usize;
        loop {
            while let Some(envelope) = queue.pop_front() {
                delivered += 1;
                if delivered > self.message_limit {
                    return Err(RunError::TooManyMessages {
                        limit: self.message_limit,
                    });
                }
                let at = self.clock.now();
                let fate = self.faults.fate(&envelope);
                let mut note = None;
                if fate == Fate::Delivered {
                    match self.roles.get_mut(&envelope.to) {
                        Some(role) => {
                            // The log keeps the message: the role reads it in place.
                            let handled = role.handle_ref(at, &envelope.from, &envelope.message);
                            note = handled.note;
                            queue.extend(handled.sent);
                        }
                        None => note = Some(format!("nobody is {}", envelope.to)),
                    }
                }
                self.log.entries.push(LogEntry {
                    at,
                    envelope,
                    fate,
                    note,
                });
            }
            let Some(deadline) = self
                .roles
                .values()
                .filter_map(|role| role.poll_timeout())
                .min()
            else {
                return Ok(());
            };
            self.clock.wait_until(deadline);
            let now = self.clock.now().max(deadline);
            for role in self.roles.values_mut() {
                if role.poll_timeout().is_some_and(|due| due <= now) {
                    queue.extend(role.handle_timeout(now).sent);
                }
            }
        }
    }
}
