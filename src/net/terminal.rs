//! The consultation terminal — client device and payer device with its card reader —
//! against a remote front-end: what `telepay purchase --frontend URL` runs.
//!
//! The terminal is a [`Node`] with no listener: it calls the front-end, handles the
//! messages that come back on each call's answer (the quote, the payment request, the
//! acknowledgement H, the delivery K), and polls its mailbox at the front-end for what
//! comes later (a failure the front-end's deadline decided). Nobody calls a terminal.
//!
//! **Several front-ends.** A purchase lives in the memory of the front-end that took
//! its request, so all its messages go to that one (a sticky route). When that
//! front-end stops answering ([`LOST_AFTER`] calls in a row fail to reach it) and
//! another is configured, the terminal moves to the next one and decides, from what
//! its payer device did, whether the purchase may start again there without charging
//! the user twice:
//!
//! - no payment made yet: the request A is sent again to the new front-end;
//! - a bank-card payment waiting for its H: the card ends it with an AAC, and the
//!   [`crate::messages::PaymentAbandonment`] goes through the new front-end to the
//!   card's acquirer, which checks the AAC and cancels the payment (or marks it, so
//!   that a late F from the lost front-end is refused). Only once the acquirer says
//!   nothing will be charged does the request start again;
//! - anything else — a payment completed (the card's TC, a wallet debit), a wallet
//!   payment in flight (nothing proves it was not made), a cancellation refused or
//!   unanswered: the purchase is not retried, and the troubles say why.
//!
//! A front-end found unreachable while it carries the cancellation (it died too, or
//! was never up) is left as the lost one was, for the next one standing by; each
//! front-end is visited at most once per purchase, and once none is left the purchase
//! is not retried.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use crate::emv::CardChannel;
use crate::messages::{
    Envelope, Message, Party, PaymentId, PostalAddress, ProviderId, RequestId, ServiceId,
    TerminalId,
};
use crate::purchase::Role;
use crate::terminal::card_module::CryptogramKind;
use crate::terminal::client::{ClientDevice, RequestResult};
use crate::terminal::payer::{PayerDevice, PayerUser, PaymentState};

use super::link::{Link, LinkError, LinkOptions};
use super::node::{Hosted, Node, Trouble};
use super::pki::{CA_CERT_FILE, PeerName, ServiceRole};
use super::switchboard::{Route, Switchboard};
use super::tls::TlsIdentity;

/// A terminal's two devices, as its node hosts them.
pub struct TerminalRoles<C: CardChannel, U: PayerUser> {
    /// The client device.
    pub client: ClientDevice,
    /// The payer device.
    pub payer: PayerDevice<C, U>,
}

impl<C, U> Hosted for TerminalRoles<C, U>
where
    C: CardChannel + Send + 'static,
    U: PayerUser + Send + 'static,
{
    fn roles(&mut self) -> Vec<&mut dyn Role> {
        vec![&mut self.client, &mut self.payer]
    }
}

/// How one remote purchase ended for the terminal.
#[derive(Debug, Clone)]
pub struct RemotePurchase {
    /// The client device's request.
    pub request: RequestId,
    /// Every message the terminal sent or received, in order.
    pub messages: Vec<Envelope>,
    /// How the request ended (`None`: no answer within the patience given).
    pub result: Option<RequestResult>,
    /// What went wrong on the way (calls that failed, front-ends lost), for the user.
    pub troubles: Vec<String>,
    /// How many times the terminal moved to another front-end during the purchase.
    pub failovers: u32,
}

/// A terminal calling a remote front-end, with others standing by.
pub struct RemoteTerminal<C: CardChannel, U: PayerUser> {
    node: Arc<Node<TerminalRoles<C, U>>>,
}

/// Adds what went wrong in one delivery to the purchase's `troubles`; how many of the
/// failed calls could not reach their peer.
fn log_troubles(trouble: Vec<Trouble>, troubles: &mut Vec<String>) -> u32 {
    let mut unreachable = 0u32;
    for trouble in trouble {
        if matches!(trouble.call, Some(LinkError::Unreachable { .. })) {
            unreachable = unreachable.saturating_add(1);
        }
        troubles.push(trouble.what);
    }
    unreachable
}

/// The moves from one front-end to another during one purchase.
struct FailOvers {
    /// Made so far.
    done: u32,
    /// The most allowed: one visit to each front-end standing by, and back to the first.
    most: usize,
}

/// How many calls in a row must fail to reach the front-end (each after the link's own
/// attempts) before the terminal takes it for lost and moves to the next one.
pub const LOST_AFTER: u32 = 2;

/// How long one mailbox poll waits at the front-end.
const POLL_WAIT: Duration = Duration::from_secs(5);

/// How one attempt at a purchase on one front-end ended.
enum Attempt {
    /// The request has its result, the patience ran out, or the front-end refused.
    Over,
    /// The front-end stopped answering, and another one stands by.
    FrontEndLost,
}

/// Whether a purchase may start again on another front-end.
enum Restart {
    /// Nothing of it can be charged: send A again.
    Allowed,
    /// Not without risking a second charge, or not wanted: why.
    Refused(String),
    /// A cancellation is on its way: send these and wait for the acquirer's word.
    Waiting(Vec<Envelope>),
}

impl<C, U> RemoteTerminal<C, U>
where
    C: CardChannel + Send + 'static,
    U: PayerUser + Send + 'static,
{
    /// The terminal of `roles`, calling the first of `front_ends` with `identity` (a
    /// terminal certificate whose instance is the terminal's name); the others stand by,
    /// in order, for when it is lost.
    ///
    /// # Errors
    /// [`LinkError::NoRoute`] without a front-end; [`LinkError`] for a route or
    /// identity that cannot be used.
    pub fn new(
        roles: TerminalRoles<C, U>,
        front_ends: Vec<Route>,
        identity: &TlsIdentity,
        options: LinkOptions,
    ) -> Result<RemoteTerminal<C, U>, LinkError> {
        if front_ends.is_empty() {
            return Err(LinkError::NoRoute { route: 0 });
        }
        let terminal = roles.client.terminal().clone();
        let link = Link::new(identity, &front_ends, options)?;
        let board = front_ends.into_iter().fold(
            Switchboard::new([Party::Client(terminal.clone()), Party::Payer(terminal)])
                .sticky(Party::FrontEnd),
            |board, route| board.route(Party::FrontEnd, route),
        );
        Ok(RemoteTerminal {
            node: Node::recording(roles, board, link),
        })
    }

    /// Terminal `name` of the PKI in `pki` (its certificate `NAME.terminal.telepay.pem`
    /// and the CA there), paying with `payer`, calling the first of `front_ends`. Its
    /// client device numbers requests from the clock: a front-end outlives a terminal's
    /// runs.
    ///
    /// # Errors
    /// [`LinkError::Tls`] for a name or certificate that cannot be used; as
    /// [`RemoteTerminal::new`].
    pub fn from_pki(
        pki: &std::path::Path,
        name: &str,
        front_ends: Vec<Route>,
        payer: PayerDevice<C, U>,
        options: LinkOptions,
    ) -> Result<RemoteTerminal<C, U>, LinkError> {
        let tls = |error: String| LinkError::Tls(format!("terminal {name}: {error}"));
        let peer = PeerName::new(ServiceRole::Terminal, name).map_err(|e| tls(e.to_string()))?;
        let identity = TlsIdentity::load(
            &peer.cert_path(pki),
            &peer.key_path(pki),
            &pki.join(CA_CERT_FILE),
        )
        .map_err(|error| tls(error.to_string()))?;
        let first = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |since| u64::try_from(since.as_micros()).unwrap_or(1));
        RemoteTerminal::new(
            TerminalRoles {
                client: ClientDevice::new(TerminalId::from(name)).numbering_from(first),
                payer,
            },
            front_ends,
            &identity,
            options,
        )
    }

    /// Reads or changes the terminal's devices.
    pub fn with_roles<T>(&self, work: impl FnOnce(&mut TerminalRoles<C, U>) -> T) -> T {
        self.node.with_roles(work)
    }

    /// The URL of the front-end the terminal calls now.
    pub fn front_end(&self) -> Option<&str> {
        let board = self.node.switchboard();
        let route = board.current(&Party::FrontEnd)?;
        board.routes().get(route).map(|route| route.url.as_str())
    }

    /// Buys `service` of `provider` (with `address` for physical goods), waiting up to
    /// `patience` for the purchase to end.
    pub async fn purchase(
        &self,
        provider: ProviderId,
        service: ServiceId,
        address: Option<PostalAddress>,
        patience: Duration,
    ) -> RemotePurchase {
        let first = self.with_roles(|roles| roles.client.request(provider, service, address));
        self.run(first, patience).await
    }

    /// Delivers `first` (a service request A) and everything it sets off, moving to
    /// another front-end when the one called is lost (module documentation).
    pub async fn run(&self, first: Envelope, patience: Duration) -> RemotePurchase {
        let request = match &first.message {
            Message::ServiceRequest(request) => request.request.clone(),
            _ => RequestId::from(""),
        };
        let deadline = tokio::time::Instant::now() + patience;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let deadlines = tokio::spawn(Arc::clone(&self.node).run_deadlines(async {
            let _ = stopped.await;
        }));
        let mut troubles = Vec::new();
        let mut moves = FailOvers {
            done: 0,
            // At most one visit to each front-end standing by, and back to the first.
            most: self.node.switchboard().route_count(&Party::FrontEnd),
        };
        loop {
            match self
                .attempt(first.clone(), &request, deadline, &mut troubles)
                .await
            {
                Attempt::Over => break,
                Attempt::FrontEndLost => {
                    if !self.move_on("lost", &mut moves, &mut troubles) {
                        break;
                    }
                    match self
                        .settle_for_restart(deadline, &mut moves, &mut troubles)
                        .await
                    {
                        Ok(()) => {}
                        Err(why) => {
                            troubles.push(format!("the purchase is not retried: {why}"));
                            break;
                        }
                    }
                }
            }
        }
        let _ = stop.send(());
        let _ = deadlines.await;
        RemotePurchase {
            messages: self.node.take_journal(),
            result: self.with_roles(|roles| roles.client.result(&request).cloned()),
            request,
            troubles,
            failovers: moves.done,
        }
    }

    /// Moves from the current front-end, `what` happened to it, to the next one, unless
    /// every one was visited already (`false`, the troubles saying so).
    fn move_on(&self, what: &str, moves: &mut FailOvers, troubles: &mut Vec<String>) -> bool {
        let left = self.front_end().unwrap_or_default().to_owned();
        if usize::try_from(moves.done).unwrap_or(usize::MAX) >= moves.most {
            troubles.push(format!(
                "front-end {left} {what}, and every other one was tried already"
            ));
            return false;
        }
        self.node.switchboard().fail_over(&Party::FrontEnd);
        moves.done = moves.done.saturating_add(1);
        troubles.push(format!(
            "front-end {left} {what}; moving to {}",
            self.front_end().unwrap_or_default()
        ));
        true
    }

    /// One try at the purchase on the current front-end: `first`, then the mailbox,
    /// until the request has its result, the patience runs out, or the front-end is
    /// lost (and another stands by).
    async fn attempt(
        &self,
        first: Envelope,
        request: &RequestId,
        deadline: tokio::time::Instant,
        troubles: &mut Vec<String>,
    ) -> Attempt {
        let standby = self.node.switchboard().route_count(&Party::FrontEnd) > 1;
        let Some(route) = self.node.switchboard().current(&Party::FrontEnd) else {
            return Attempt::Over;
        };
        let before = self.node.journal_len();
        let (_, trouble) = self.node.process(vec![first], None).await;
        // Only A itself in the journal: the front-end never took the request.
        let never_taken = !trouble.is_empty() && self.node.journal_len() <= before + 1;
        let mut unreachable = log_troubles(trouble, troubles);
        if never_taken && !(standby && unreachable > 0) {
            // Refused, or unreachable with no other front-end: nothing will come to
            // wait for.
            return Attempt::Over;
        }
        loop {
            if self.finished(request) {
                return Attempt::Over;
            }
            if standby && unreachable >= LOST_AFTER {
                return Attempt::FrontEndLost;
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Attempt::Over;
            }
            match self
                .node
                .link()
                .poll_mailbox(route, left.min(POLL_WAIT))
                .await
            {
                Ok(mail) => {
                    let (_, trouble) = self.node.process(mail, None).await;
                    unreachable = log_troubles(trouble, troubles);
                }
                Err(error @ LinkError::Refused { .. }) => {
                    troubles.push(error.to_string());
                    return Attempt::Over;
                }
                Err(error) => {
                    if matches!(error, LinkError::Unreachable { .. }) {
                        unreachable = unreachable.saturating_add(1);
                    }
                    troubles.push(error.to_string());
                    // Unreachable for now: try again shortly, within the patience given.
                    tokio::time::sleep(left.min(Duration::from_millis(200))).await;
                }
            }
        }
    }

    /// After moving to another front-end: cancels what the purchase's payments left
    /// open, through the new front-end, and says whether the purchase may start again
    /// (`Err`: why not).
    /// A front-end that cannot be reached while it carries the cancellation
    /// ([`LOST_AFTER`] calls in a row) is left for the next one, within `moves`.
    async fn settle_for_restart(
        &self,
        deadline: tokio::time::Instant,
        moves: &mut FailOvers,
        troubles: &mut Vec<String>,
    ) -> Result<(), String> {
        // This purchase's payments: the payment requests among the messages recorded
        // since it began (the journal is taken at the end of each purchase).
        let own: BTreeSet<PaymentId> = self.node.read_journal(|envelopes| {
            envelopes
                .iter()
                .filter_map(|envelope| match &envelope.message {
                    Message::PaymentRequest(d) => Some(d.payment.clone()),
                    _ => None,
                })
                .collect()
        });
        let mut resent = false;
        let mut unreachable = 0u32;
        loop {
            let restart = self.with_roles(|roles| {
                let abandoned = roles.payer.abandon_unacknowledged();
                let mut waiting = false;
                for payment in &own {
                    let Some(state) = roles.payer.payment_state(payment) else {
                        continue;
                    };
                    if let Some(why) = blocks_restart(payment, state, &mut waiting) {
                        return Restart::Refused(why);
                    }
                }
                if waiting {
                    Restart::Waiting(abandoned)
                } else {
                    Restart::Allowed
                }
            });
            let abandoned = match restart {
                Restart::Allowed => return Ok(()),
                Restart::Refused(why) => return Err(why),
                Restart::Waiting(abandoned) => abandoned,
            };
            if tokio::time::Instant::now() >= deadline {
                return Err(
                    "the acquirer's word on the abandoned payment did not come in time; \
                     it may still be charged"
                        .into(),
                );
            }
            if resent {
                // No result the last time (the call failed, or the front-end got no
                // answer from the acquirer): a pause before asking again.
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                tokio::time::sleep(left.min(Duration::from_millis(200))).await;
            }
            // The acquirer's result comes back on the call's answer.
            let (_, trouble) = self.node.process(abandoned, None).await;
            unreachable = match log_troubles(trouble, troubles) {
                0 => 0,
                _ => unreachable.saturating_add(1),
            };
            if unreachable >= LOST_AFTER {
                if !self.move_on("unreachable", moves, troubles) {
                    return Err(
                        "no front-end could carry the cancellation of the abandoned payment; \
                         it may still be charged"
                            .into(),
                    );
                }
                unreachable = 0;
                // The next front-end at once: the pause is for one that answered.
                resent = false;
                continue;
            }
            resent = true;
        }
    }

    fn finished(&self, request: &RequestId) -> bool {
        self.with_roles(|roles| roles.client.result(request).is_some())
    }
}

/// Why `payment`, left as `state` when its front-end was lost, forbids starting the
/// purchase again elsewhere; `None` when it does not (`waiting` set when its
/// cancellation is still on its way).
fn blocks_restart(payment: &PaymentId, state: &PaymentState, waiting: &mut bool) -> Option<String> {
    match state {
        PaymentState::Abandoned { outcome: None, .. } => {
            *waiting = true;
            None
        }
        PaymentState::Abandoned {
            outcome: Some(outcome),
            ..
        } if outcome.not_charged() => None,
        PaymentState::Abandoned {
            outcome: Some(outcome),
            ..
        } => Some(format!("payment {payment}: {outcome}")),
        PaymentState::AwaitingAcknowledgement => Some(format!(
            "wallet payment {payment} was sent and nothing proves it was not debited"
        )),
        PaymentState::Completed(completion) if completion.kind == CryptogramKind::Tc => Some(
            format!("payment {payment} was made (the card's TC) before the front-end was lost"),
        ),
        PaymentState::Completed(_) => Some(format!("payment {payment} was refused")),
        PaymentState::WalletSettled { authorised: true } => Some(format!(
            "wallet payment {payment} was debited before the front-end was lost"
        )),
        PaymentState::WalletSettled { authorised: false } => {
            Some(format!("wallet payment {payment} was refused"))
        }
        PaymentState::CompletionFailed(why) => Some(format!(
            "payment {payment}: the card could not complete ({why})"
        )),
        PaymentState::Declined(why) => Some(format!("payment {payment} was declined: {why}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::AbandonmentOutcome;
    use crate::terminal::card_module::{Completion, IssuerAuthentication};

    fn completion(kind: CryptogramKind) -> Completion {
        Completion {
            kind,
            cid: if kind == CryptogramKind::Tc {
                0x40
            } else {
                0x00
            },
            atc: 7,
            cryptogram: [1; 8],
            iad: vec![0x06, 0x01, 0x12, 0x03, 0x60, 0x00, 0x00],
            issuer_authentication: IssuerAuthentication::Accepted,
        }
    }

    /// Which payments leave a purchase free to start again on another front-end: only
    /// those nothing can be charged for. (Expected: `Ok(waiting)` when it may, once
    /// nothing waits; `Err(words the reason has)` when it may not.)
    #[test]
    fn only_a_payment_that_cannot_be_charged_lets_the_purchase_start_again() {
        let abandoned = |outcome| PaymentState::Abandoned {
            completion: completion(CryptogramKind::Aac),
            outcome,
        };
        let table: [(PaymentState, Result<bool, &str>); 9] = [
            (abandoned(None), Ok(true)),
            (
                abandoned(Some(AbandonmentOutcome::NotCharged {
                    detail: "authorised, now reversed".into(),
                })),
                Ok(false),
            ),
            (
                abandoned(Some(AbandonmentOutcome::Refused {
                    reason: "already in batch 3".into(),
                })),
                Err("already in batch 3"),
            ),
            (
                PaymentState::AwaitingAcknowledgement,
                Err("nothing proves it was not debited"),
            ),
            (
                PaymentState::Completed(completion(CryptogramKind::Tc)),
                Err("was made (the card's TC)"),
            ),
            (
                PaymentState::Completed(completion(CryptogramKind::Aac)),
                Err("was refused"),
            ),
            (
                PaymentState::WalletSettled { authorised: true },
                Err("was debited"),
            ),
            (
                PaymentState::CompletionFailed("card removed".into()),
                Err("card removed"),
            ),
            (
                PaymentState::Declined("the user declined the payment".into()),
                Err("the user declined"),
            ),
        ];
        let payment = PaymentId::from("fe1-P1-D1");
        for (state, expected) in table {
            let mut waiting = false;
            let blocked = blocks_restart(&payment, &state, &mut waiting);
            match (expected, blocked) {
                (Ok(wait), None) => assert_eq!(waiting, wait, "{state:?}"),
                (Err(words), Some(why)) => {
                    assert!(why.contains(words), "{state:?}: {why}");
                    assert!(why.contains("fe1-P1-D1"), "{why}");
                }
                (expected, got) => panic!("{state:?}: expected {expected:?}, got {got:?}"),
            }
        }
    }
}
