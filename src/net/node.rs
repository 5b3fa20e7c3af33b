//! A process of the network deployment: the roles it hosts, behind an HTTPS edge with
//! mutual TLS, and the calls it makes to its peers.
//!
//! A node is the in-process [`crate::purchase::Runner`] cut at the process boundary:
//! messages to the parties it hosts are handed to their roles, one at a time; messages
//! for other parties go where the [`Switchboard`] says — back on the current call's
//! answer, to a routed peer (whose answer's messages are handled in turn), or to a
//! terminal's mailbox. The roles stay sans-IO: the node holds the clock, the sockets and
//! the deadlines.
//!
//! The wire (`docs/openapi.json`, made by [`super::openapi`]): `POST /v1/messages`
//! takes `{"envelopes": [...]}` — the flow's [`Envelope`]s as JSON — and answers the
//! same shape with the messages for the caller; `POST /v1/mailbox` (terminals only) answers what waits for the calling
//! terminal, waiting up to `wait_ms` for something to come; `GET /healthz` and
//! `GET /readyz` for supervisors. A refused message is `403` with
//! `{"error": "..."}`: nothing of that call was handled.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::messages::{Envelope, Party, TerminalId, Timestamp};
use crate::purchase::{Clock, Role, SystemClock};

use super::link::{Link, LinkError};
use super::pki::{PeerName, ServiceRole};
use super::switchboard::{Destination, PartyAddress, Switchboard};

/// The body of `POST /v1/messages`, both ways, and of the mailbox's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Wire {
    /// The messages, in order.
    pub envelopes: Vec<Envelope>,
}

/// The body of `POST /v1/mailbox`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MailboxPoll {
    /// How long to wait for a message when none waits, in milliseconds (at most
    /// [`MAX_MAILBOX_WAIT`]).
    pub wait_ms: u64,
}

/// The longest a mailbox poll waits.
pub const MAX_MAILBOX_WAIT: Duration = Duration::from_secs(30);

/// The most messages one call may set off here before the node stops it: a loop
/// between roles is a defect, not a load.
pub const MESSAGE_LIMIT: usize = 1_000;

/// The most messages a mailbox keeps for a terminal that does not poll; older ones
/// are dropped first (and logged).
pub const MAILBOX_LIMIT: usize = 1_000;

/// A role a node hosts: any sans-IO role that can move between threads.
pub type HostedRole = Box<dyn Role + Send>;

/// The roles a node hosts, however the process keeps them (a server's list of boxed
/// roles; a terminal's client and payer devices, read again after a purchase).
pub trait Hosted: Send + 'static {
    /// Every hosted role.
    fn roles(&mut self) -> Vec<&mut dyn Role>;
}

impl Hosted for Vec<HostedRole> {
    fn roles(&mut self) -> Vec<&mut dyn Role> {
        self.iter_mut()
            .map(|role| -> &mut dyn Role { role.as_mut() })
            .collect()
    }
}

/// A process's roles, switchboard and links.
pub struct Node<H> {
    board: Switchboard,
    roles: Arc<Mutex<H>>,
    mailboxes: Mutex<BTreeMap<TerminalId, VecDeque<Envelope>>>,
    mail: Notify,
    deadlines_changed: Notify,
    link: Link,
    /// Every message delivered, when asked for ([`Node::recording`]).
    journal: Option<Mutex<Vec<Envelope>>>,
}

/// What went wrong while a call's messages were handled; the call itself still
/// answers (the roles' deadlines deal with what was lost).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trouble {
    /// What happened, for the log.
    pub what: String,
    /// The failed call behind it, if a call failed.
    pub call: Option<LinkError>,
}

impl<H: Hosted> Node<H> {
    /// A node hosting `roles`, routing by `board`, calling peers through `link`.
    pub fn new(roles: H, board: Switchboard, link: Link) -> Arc<Node<H>> {
        Node::build(roles, board, link, None)
    }

    /// As [`Node::new`], keeping every message delivered for [`Node::take_journal`]
    /// (a terminal shows its user the dialogue; a server keeps none).
    pub fn recording(roles: H, board: Switchboard, link: Link) -> Arc<Node<H>> {
        Node::build(roles, board, link, Some(Mutex::new(Vec::new())))
    }

    fn build(
        roles: H,
        board: Switchboard,
        link: Link,
        journal: Option<Mutex<Vec<Envelope>>>,
    ) -> Arc<Node<H>> {
        Arc::new(Node {
            board,
            roles: Arc::new(Mutex::new(roles)),
            mailboxes: Mutex::new(BTreeMap::new()),
            mail: Notify::new(),
            deadlines_changed: Notify::new(),
            link,
            journal,
        })
    }

    /// The messages delivered since the last call, in order (none unless
    /// [`Node::recording`]).
    pub fn take_journal(&self) -> Vec<Envelope> {
        self.journal
            .as_ref()
            .map(|journal| std::mem::take(&mut *lock(journal)))
            .unwrap_or_default()
    }

    /// Reads the messages [`Node::take_journal`] would return, without taking them
    /// (none for a node that does not record).
    pub fn read_journal<T>(&self, read: impl FnOnce(&[Envelope]) -> T) -> T {
        match &self.journal {
            Some(journal) => read(&lock(journal)),
            None => read(&[]),
        }
    }

    /// How many messages [`Node::take_journal`] would return.
    pub fn journal_len(&self) -> usize {
        self.journal
            .as_ref()
            .map_or(0, |journal| lock(journal).len())
    }

    /// The switchboard: where messages go (a terminal moves to another front-end).
    pub fn switchboard(&self) -> &Switchboard {
        &self.board
    }

    /// The node's calls to its peers.
    pub fn link(&self) -> &Link {
        &self.link
    }

    /// Runs `work` on the hosted roles, here and now (a quick look or change, outside
    /// the flow: the terminal reading its client device's result).
    pub fn with_roles<T>(&self, work: impl FnOnce(&mut H) -> T) -> T {
        work(&mut lock(&self.roles))
    }

    /// Runs `work` on the hosted roles on a thread where blocking is allowed: the roles
    /// are sans-IO but keep journals (an fsync, a database's synchronous client, which
    /// runs its own little runtime and must not be called from a runtime's worker).
    pub async fn on_roles<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut H) -> T + Send + 'static,
    ) -> T {
        let roles = Arc::clone(&self.roles);
        match tokio::task::spawn_blocking(move || work(&mut lock(&roles))).await {
            Ok(value) => value,
            // A role panicked: the panic goes on here, as it would have in-process.
            Err(error) => std::panic::resume_unwind(error.into_panic()),
        }
    }

    /// Hands `envelope` to the hosted role it is for.
    async fn handle_local(&self, envelope: Envelope) -> Vec<Envelope> {
        let to = envelope.to.clone();
        let handled = self
            .on_roles(move |hosted| {
                let Envelope { from, to, message } = envelope;
                let role = hosted.roles().into_iter().find(|role| role.party() == to)?;
                Some(role.handle(SystemClock.now(), &from, message))
            })
            .await;
        self.deadlines_changed.notify_one();
        match handled {
            Some(handled) => {
                if let Some(note) = handled.note {
                    tracing::debug!(party = %PartyAddress(to), note, "message ignored");
                }
                handled.sent
            }
            None => Vec::new(),
        }
    }

    /// Delivers `first` and everything it sets off, `caller` being the peer whose call
    /// brought it (none for a deadline's messages or the node's own calls). Returns the
    /// messages for the caller, and what went wrong on the way.
    pub async fn process(
        &self,
        first: Vec<Envelope>,
        caller: Option<&PeerName>,
    ) -> (Vec<Envelope>, Vec<Trouble>) {
        let mut queue: VecDeque<Envelope> = first.into();
        let mut answers = Vec::new();
        let mut troubles = Vec::new();
        let mut handled = 0usize;
        while let Some(envelope) = queue.pop_front() {
            handled += 1;
            if handled > MESSAGE_LIMIT {
                troubles.push(Trouble {
                    what: format!(
                        "more than {MESSAGE_LIMIT} messages on one call: the rest dropped"
                    ),
                    call: None,
                });
                break;
            }
            if let Some(journal) = &self.journal {
                lock(journal).push(envelope.clone());
            }
            match self.board.destination(&envelope.to, caller) {
                Destination::Local => queue.extend(self.handle_local(envelope).await),
                Destination::Caller => answers.push(envelope),
                Destination::Peers(routes) => {
                    let (replies, failed) = self.call_any(&routes, &envelope).await;
                    troubles.extend(failed);
                    queue.extend(replies);
                }
                Destination::Mailbox(terminal) => self.post(terminal, envelope),
                Destination::Nowhere => troubles.push(Trouble {
                    what: format!(
                        "{} to {}: no route to that party",
                        envelope.message.step(),
                        PartyAddress(envelope.to.clone())
                    ),
                    call: None,
                }),
            }
        }
        for trouble in &troubles {
            tracing::warn!(what = %trouble.what, "delivery");
        }
        (answers, troubles)
    }

    /// Sends `envelope` to the first of `routes` that takes it (each with the link's
    /// retries); the admitted messages of its answer, and what went wrong on the way —
    /// a failed route before one that took it is worth a line in the log too.
    async fn call_any(
        &self,
        routes: &[usize],
        envelope: &Envelope,
    ) -> (Vec<Envelope>, Vec<Trouble>) {
        let mut troubles: Vec<Trouble> = Vec::new();
        for &route in routes {
            match self.link.call(route, envelope).await {
                Ok(replies) => {
                    // Another process took it: the failures before it are for the log.
                    for trouble in troubles.drain(..) {
                        tracing::warn!(what = %trouble.what, "delivery (recovered)");
                    }
                    let mut admitted = Vec::with_capacity(replies.len());
                    for reply in replies {
                        match self.board.admit_answer(route, &reply.from) {
                            Ok(()) => admitted.push(reply),
                            Err(refusal) => troubles.push(Trouble {
                                what: format!("answer refused: {refusal}"),
                                call: None,
                            }),
                        }
                    }
                    return (admitted, troubles);
                }
                Err(error) => troubles.push(Trouble {
                    what: format!(
                        "{} to {}: {error}",
                        envelope.message.step(),
                        PartyAddress(envelope.to.clone())
                    ),
                    call: Some(error),
                }),
            }
        }
        (Vec::new(), troubles)
    }

    /// The answers of a call whose caller hung up before they were ready: a terminal's
    /// go to its mailbox, where it finds them when it polls; others are dropped, logged.
    fn orphaned(&self, envelopes: Vec<Envelope>) {
        for envelope in envelopes {
            match &envelope.to {
                Party::Client(terminal) | Party::Payer(terminal) => {
                    self.post(terminal.clone(), envelope);
                }
                to => tracing::warn!(
                    step = envelope.message.step(),
                    to = %PartyAddress(to.clone()),
                    "answer dropped: the caller hung up"
                ),
            }
        }
    }

    /// Leaves `envelope` in `terminal`'s mailbox.
    fn post(&self, terminal: TerminalId, envelope: Envelope) {
        let mut mailboxes = lock(&self.mailboxes);
        let mailbox = mailboxes.entry(terminal.clone()).or_default();
        if mailbox.len() >= MAILBOX_LIMIT {
            mailbox.pop_front();
            tracing::warn!(%terminal, "mailbox full: the oldest message dropped");
        }
        mailbox.push_back(envelope);
        drop(mailboxes);
        self.mail.notify_waiters();
    }

    /// Takes what waits for `terminal`, waiting up to `wait` for something to come.
    pub async fn collect(&self, terminal: &TerminalId, wait: Duration) -> Vec<Envelope> {
        let deadline = tokio::time::Instant::now() + wait.min(MAX_MAILBOX_WAIT);
        loop {
            // Registered before looking, so a message posted in between still wakes us.
            let notified = self.mail.notified();
            let taken: Vec<Envelope> = lock(&self.mailboxes)
                .get_mut(terminal)
                .map(|mailbox| mailbox.drain(..).collect())
                .unwrap_or_default();
            if !taken.is_empty() {
                return taken;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Vec::new();
            }
        }
    }

    /// Fires the hosted roles' deadlines as they come, until `shutdown`.
    pub async fn run_deadlines(self: Arc<Self>, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let next = self
                .on_roles(|hosted| {
                    hosted
                        .roles()
                        .into_iter()
                        .filter_map(|role| role.poll_timeout())
                        .min()
                })
                .await;
            let wait = match next {
                Some(deadline) => millis_until(deadline),
                // Nothing waits: sleep until a message changes that.
                None => Duration::from_secs(3600),
            };
            tokio::select! {
                () = &mut shutdown => return,
                () = self.deadlines_changed.notified() => continue,
                () = tokio::time::sleep(wait) => {}
            }
            let now = SystemClock.now();
            let sent = self
                .on_roles(move |hosted| {
                    let mut sent = Vec::new();
                    for role in hosted.roles() {
                        if role.poll_timeout().is_some_and(|deadline| deadline <= now) {
                            sent.extend(role.handle_timeout(now).sent);
                        }
                    }
                    sent
                })
                .await;
            if !sent.is_empty() {
                self.process(sent, None).await;
            }
        }
    }

    /// The HTTP routes of this node, to serve with [`super::serve::serve_tls`] (which
    /// gives each request its caller's [`PeerName`]).
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/v1/messages", post(receive::<H>))
            .route("/v1/mailbox", post(mailbox::<H>))
            .route("/healthz", get(|| async { "ok" }))
            .route("/readyz", get(ready::<H>))
            .with_state(Arc::clone(self))
    }
}

/// The time until `deadline` on the system clock (zero once it has passed).
fn millis_until(deadline: Timestamp) -> Duration {
    let now = SystemClock.now();
    Duration::from_millis(u64::try_from(deadline.0.saturating_sub(now.0)).unwrap_or(0))
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A role that panicked mid-message left its state as it was; the node goes on
    // rather than refusing every later call.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A refused call's answer.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ErrorBody {
    /// What was wrong.
    pub error: String,
}

/// A refused call's answer: `status` and `{"error": error}`, logged.
pub(super) fn refused(status: StatusCode, error: String) -> Response {
    tracing::warn!(%status, error, "call refused");
    (status, Json(ErrorBody { error })).into_response()
}

async fn receive<H: Hosted>(
    State(node): State<Arc<Node<H>>>,
    Extension(caller): Extension<PeerName>,
    Json(wire): Json<Wire>,
) -> Response {
    if let Err(refusal) = wire
        .envelopes
        .iter()
        .try_for_each(|envelope| node.board.admit(&caller, &envelope.from, &envelope.to))
    {
        return refused(StatusCode::FORBIDDEN, refusal.to_string());
    }
    // The handling runs in a task of its own: when the caller hangs up (its deadline
    // passed), hyper drops this handler, but a chain half handled — F sent, G not yet
    // handed to the front-end — must still run to its end. What it has for a caller
    // who is gone goes to that terminal's mailbox (a front-end that hung up calls again,
    // and the role answers a repeated message as the first).
    let (answer, answered) = tokio::sync::oneshot::channel();
    let handling = Arc::clone(&node);
    tokio::spawn(async move {
        let (envelopes, _) = handling.process(wire.envelopes, Some(&caller)).await;
        if let Err(unheard) = answer.send(envelopes) {
            handling.orphaned(unheard);
        }
    });
    match answered.await {
        Ok(envelopes) => Json(Wire { envelopes }).into_response(),
        Err(_) => refused(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the handling of the call stopped before its end".into(),
        ),
    }
}

async fn mailbox<H: Hosted>(
    State(node): State<Arc<Node<H>>>,
    Extension(caller): Extension<PeerName>,
    Json(poll): Json<MailboxPoll>,
) -> Response {
    if caller.role() != ServiceRole::Terminal {
        return refused(
            StatusCode::FORBIDDEN,
            format!("{caller}: only terminals have a mailbox"),
        );
    }
    let terminal = TerminalId::from(caller.instance());
    let envelopes = node
        .collect(&terminal, Duration::from_millis(poll.wait_ms))
        .await;
    Json(Wire { envelopes }).into_response()
}

async fn ready<H: Hosted>(State(node): State<Arc<Node<H>>>) -> Response {
    let parties: Vec<String> = node
        .board
        .local()
        .iter()
        .map(|party| PartyAddress(party.clone()).to_string())
        .collect();
    Json(serde_json::json!({ "ready": true, "serves": parties })).into_response()
}
