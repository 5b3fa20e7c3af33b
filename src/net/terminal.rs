//! The consultation terminal — client device and payer device with its card reader —
//! against a remote front-end: what `telepay purchase --frontend URL` runs.
//!
//! The terminal is a [`Node`] with no listener: it calls the front-end, handles the
//! messages that come back on each call's answer (the quote, the payment request, the
//! acknowledgement H, the delivery K), and polls its mailbox at the front-end for what
//! comes later (a failure the front-end's deadline decided). Nobody calls a terminal.

use std::sync::Arc;
use std::time::Duration;

use crate::emv::CardChannel;
use crate::messages::{
    Envelope, Message, Party, PostalAddress, ProviderId, RequestId, ServiceId, TerminalId,
};
use crate::purchase::Role;
use crate::terminal::client::{ClientDevice, RequestResult};
use crate::terminal::payer::{PayerDevice, PayerUser};

use super::link::{Link, LinkError, LinkOptions};
use super::node::{Hosted, Node};
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
    /// What went wrong on the way (calls that failed), for the user.
    pub troubles: Vec<String>,
}

/// A terminal calling a remote front-end.
pub struct RemoteTerminal<C: CardChannel, U: PayerUser> {
    node: Arc<Node<TerminalRoles<C, U>>>,
}

/// The front-end's route number in the terminal's switchboard.
const FRONT_END: usize = 0;

/// How long one mailbox poll waits at the front-end.
const POLL_WAIT: Duration = Duration::from_secs(5);

impl<C, U> RemoteTerminal<C, U>
where
    C: CardChannel + Send + 'static,
    U: PayerUser + Send + 'static,
{
    /// The terminal of `roles`, calling the front-end at `front_end` with `identity`
    /// (a terminal certificate whose instance is the terminal's name).
    ///
    /// # Errors
    /// [`LinkError`] for a route or identity that cannot be used.
    pub fn new(
        roles: TerminalRoles<C, U>,
        front_end: Route,
        identity: &TlsIdentity,
        options: LinkOptions,
    ) -> Result<RemoteTerminal<C, U>, LinkError> {
        let terminal = roles.client.terminal().clone();
        let link = Link::new(identity, std::slice::from_ref(&front_end), options)?;
        let board = Switchboard::new([Party::Client(terminal.clone()), Party::Payer(terminal)])
            .route(Party::FrontEnd, front_end);
        Ok(RemoteTerminal {
            node: Node::recording(roles, board, link),
        })
    }

    /// Terminal `name` of the PKI in `pki` (its certificate `NAME.terminal.telepay.pem`
    /// and the CA there), paying with `payer`, calling the front-end at `front_end`. Its
    /// client device numbers requests from the clock: a front-end outlives a terminal's
    /// runs.
    ///
    /// # Errors
    /// [`LinkError::Tls`] for a name or certificate that cannot be used; as
    /// [`RemoteTerminal::new`].
    pub fn from_pki(
        pki: &std::path::Path,
        name: &str,
        front_end: Route,
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
            front_end,
            &identity,
            options,
        )
    }

    /// Reads or changes the terminal's devices.
    pub fn with_roles<T>(&self, work: impl FnOnce(&mut TerminalRoles<C, U>) -> T) -> T {
        self.node.with_roles(work)
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

    /// Delivers `first` (a service request A) and everything it sets off.
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
        let (_, trouble) = self.node.process(vec![first], None).await;
        // The front-end never took the request: nothing will come to wait for.
        let mut given_up = !trouble.is_empty() && self.node.journal_len() <= 1;
        troubles.extend(trouble.into_iter().map(|trouble| trouble.what));
        loop {
            if given_up || self.finished(&request) {
                break;
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                break;
            }
            match self
                .node
                .link()
                .poll_mailbox(FRONT_END, left.min(POLL_WAIT))
                .await
            {
                Ok(mail) => {
                    let (_, trouble) = self.node.process(mail, None).await;
                    troubles.extend(trouble.into_iter().map(|trouble| trouble.what));
                }
                Err(error @ LinkError::Refused { .. }) => {
                    troubles.push(error.to_string());
                    given_up = true;
                }
                Err(error) => {
                    troubles.push(error.to_string());
                    // The front-end is unreachable for now: try again shortly, within
                    // the patience given.
                    tokio::time::sleep(left.min(Duration::from_millis(200))).await;
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
        }
    }

    fn finished(&self, request: &RequestId) -> bool {
        self.with_roles(|roles| roles.client.result(request).is_some())
    }
}
