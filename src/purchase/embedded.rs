//! The embedded default: one terminal, one front-end, one service server and the
//! bank-card acquirer in one process — and, when given one, the virtual-wallet acquirer
//! ([`Embedded::with_wallet`]) — wired by the [`Runner`]. What
//! `telepay purchase` runs, and what tests and benchmarks build on.

use crate::acquirer::card::{AmountLimits, BankCardRules, ConfigError, IssuerTable};
use crate::acquirer::journal::Journal;
use crate::acquirer::system::BankCardAcquirer;
use crate::acquirer::wallet::WalletAcquirer;
use crate::emv::CardChannel;
use crate::frontend::{Entropy, FrontEnd, FrontEndConfig};
use crate::messages::{
    AcquirerId, Envelope, Means, MerchantId, Message, PaymentId, PaymentService, PostalAddress,
    RequestId, ServiceId, SessionClosed, SessionId, TerminalId,
};
use crate::provider::ServiceServer;
use crate::terminal::card_module::CardModule;
use crate::terminal::client::{ClientDevice, RequestResult};
use crate::terminal::payer::{PayerDevice, PayerUser, PaymentState};

use super::{Clock, Faults, PurchaseLog, Role, RunError, Runner};

/// The names the embedded parties go by.
pub const TERMINAL: &str = "terminal-1";
/// The front-end's merchant name at the acquirer.
pub const MERCHANT: &str = "telepay-frontend";
/// The bank-card acquirer's name.
pub const ACQUIRER: &str = "bank-card-acquirer";
/// The virtual-wallet acquirer's name.
pub const WALLET_ACQUIRER: &str = "wallet-acquirer";

/// Every party of the embedded default.
pub struct Embedded<E: Entropy, C: CardChannel, U: PayerUser> {
    /// The front-end.
    pub front_end: FrontEnd<E>,
    /// The service server.
    pub server: ServiceServer,
    /// The bank-card acquirer.
    pub acquirer: BankCardAcquirer,
    /// The virtual-wallet acquirer, when the front-end takes the wallet.
    pub wallet: Option<WalletAcquirer>,
    /// The terminal's payer device.
    pub payer: PayerDevice<C, U>,
    /// The terminal's client device.
    pub client: ClientDevice,
}

/// What one purchase did.
#[derive(Debug, Clone)]
pub struct PurchaseRun {
    /// The client device's request.
    pub request: RequestId,
    /// Every message, in order.
    pub log: PurchaseLog,
    /// How the request ended for the client device (`None` if it never heard back).
    pub result: Option<RequestResult>,
    /// The payment request D, when there was one, and how it went on the payer device.
    pub payment: Option<(PaymentId, Option<PaymentState>)>,
}

/// What ending a pseudo-session did.
#[derive(Debug, Clone)]
pub struct SessionRun {
    /// Every message, in order.
    pub log: PurchaseLog,
    /// What the front-end said the session came to (`None` if it never answered).
    pub closed: Option<SessionClosed>,
}

impl PurchaseRun {
    /// Whether the service reached the client device intact.
    pub fn delivered(&self) -> bool {
        matches!(self.result, Some(RequestResult::Delivered(_)))
    }
}

/// The test acquirer: every shipped test card's issuer, the default limits.
///
/// # Errors
/// A malformed embedded issuer table (a build defect).
pub fn test_rules() -> Result<BankCardRules, ConfigError> {
    Ok(BankCardRules::new(
        AcquirerId::from(ACQUIRER),
        IssuerTable::test_issuers()?,
        AmountLimits::default(),
    ))
}

impl<E: Entropy, C: CardChannel, U: PayerUser> Embedded<E, C, U> {
    /// The embedded parties: `server` sells through the front-end, paid by the card on
    /// `card` with `user` at the terminal, authorised by `rules` keeping `journal`.
    /// Purchase identifiers start with `purchase_prefix`: with a journal that outlives
    /// the process, give each run its own ([`crate::frontend::FrontEndConfig`]).
    pub fn new(
        server: ServiceServer,
        rules: BankCardRules,
        journal: Journal,
        card: CardModule<C>,
        user: U,
        entropy: E,
        purchase_prefix: String,
    ) -> Embedded<E, C, U> {
        let mut config = FrontEndConfig::new(
            MerchantId::from(MERCHANT),
            vec![server.catalogue().provider().clone()],
            rules.acquirer().clone(),
        );
        config.purchase_prefix = purchase_prefix;
        Embedded {
            front_end: FrontEnd::new(config, entropy),
            server,
            acquirer: BankCardAcquirer::new(rules, journal),
            wallet: None,
            payer: PayerDevice::new(TerminalId::from(TERMINAL), card, user),
            client: ClientDevice::new(TerminalId::from(TERMINAL)),
        }
    }

    /// Adds the virtual-wallet acquirer: the front-end then takes the wallet too.
    pub fn with_wallet(mut self, wallet: WalletAcquirer) -> Self {
        self.front_end
            .accept_means(Means::VirtualWallet, wallet.id().clone());
        self.wallet = Some(wallet);
        self
    }

    /// Changes the payer device (gives it a wallet key, a plan…).
    pub fn map_payer(
        mut self,
        change: impl FnOnce(PayerDevice<C, U>) -> PayerDevice<C, U>,
    ) -> Self {
        self.payer = change(self.payer);
        self
    }

    /// Opens a pseudo-session on the client device: the purchases that follow belong to
    /// it until [`Embedded::end_session`].
    pub fn open_session(&mut self, session: SessionId) {
        self.client.open_session(session);
    }

    /// Ends the open pseudo-session: the front-end settles its wallet payments.
    ///
    /// # Errors
    /// [`RunError`] when the roles loop; `Ok` with no `closed` when no session is open.
    pub fn end_session<K: Clock>(
        &mut self,
        clock: K,
        faults: Faults,
    ) -> Result<SessionRun, RunError> {
        let Some(first) = self.client.end_session() else {
            return Ok(SessionRun {
                log: PurchaseLog::default(),
                closed: None,
            });
        };
        let Message::SessionEnd(end) = &first.message else {
            return Ok(SessionRun {
                log: PurchaseLog::default(),
                closed: None,
            });
        };
        let session = end.session.clone();
        let log = self.deliver(first, clock, faults)?;
        Ok(SessionRun {
            log,
            closed: self.client.session_closed(&session).cloned(),
        })
    }

    /// Delivers `first` and everything it sets off.
    fn deliver<K: Clock>(
        &mut self,
        first: Envelope,
        clock: K,
        faults: Faults,
    ) -> Result<PurchaseLog, RunError> {
        let mut roles: Vec<&mut dyn Role> = vec![
            &mut self.client,
            &mut self.payer,
            &mut self.front_end,
            &mut self.server,
            &mut self.acquirer,
        ];
        if let Some(wallet) = self.wallet.as_mut() {
            roles.push(wallet);
        }
        let mut runner = Runner::new(roles, clock).with_faults(faults);
        runner.run(first)?;
        Ok(runner.into_log())
    }

    /// Buys `service` (with `address` for physical goods), delivering every message
    /// through a runner on `clock` with `faults`.
    ///
    /// # Errors
    /// [`RunError`] when the roles loop.
    pub fn purchase<K: Clock>(
        &mut self,
        service: &ServiceId,
        address: Option<PostalAddress>,
        clock: K,
        faults: Faults,
    ) -> Result<PurchaseRun, RunError> {
        let provider = self.server.catalogue().provider().clone();
        let first = self.client.request(provider, service.clone(), address);
        self.run(first, clock, faults)
    }

    /// Buys a service billed per unit of time, `units` units at most (`None`: the
    /// server's limit): the run goes on, unit after unit, until the service stops.
    ///
    /// # Errors
    /// [`RunError`] when the roles loop.
    pub fn purchase_metered<K: Clock>(
        &mut self,
        service: &ServiceId,
        units: Option<u32>,
        clock: K,
        faults: Faults,
    ) -> Result<PurchaseRun, RunError> {
        let provider = self.server.catalogue().provider().clone();
        let first = self
            .client
            .request_metered(provider, service.clone(), units);
        self.run(first, clock, faults)
    }

    /// Pays for a payment service (claim 17): `payment_service` names the bill or the
    /// account of `service`; otherwise as [`Embedded::purchase`].
    ///
    /// # Errors
    /// [`RunError`] when the roles loop.
    pub fn pay_service<K: Clock>(
        &mut self,
        service: &ServiceId,
        payment_service: PaymentService,
        clock: K,
        faults: Faults,
    ) -> Result<PurchaseRun, RunError> {
        let provider = self.server.catalogue().provider().clone();
        let first = self
            .client
            .request_payment_service(provider, service.clone(), payment_service);
        self.run(first, clock, faults)
    }

    /// Disputes `payment` for `reason` (claims 8, 9): the payer device signs the dispute
    /// with its wallet key ([`PayerDevice::dispute`], at the clock's first reading, to
    /// the front-end's merchant), and every message it sets off is delivered — to the
    /// acquirer of the payment's means and back. The log, and the outcome the payer
    /// device received (`None` when none reached it: a message lost with `faults`).
    ///
    /// # Errors
    /// [`DisputeRunError::Device`] when the payer device cannot make the dispute (no
    /// wallet key, a reason breaking the rules); [`DisputeRunError::Run`] when the roles
    /// loop.
    pub fn dispute<K: Clock>(
        &mut self,
        payment: PaymentId,
        reason: &str,
        mut clock: K,
        faults: Faults,
    ) -> Result<(PurchaseLog, Option<crate::messages::DisputeOutcome>), DisputeRunError> {
        let now = clock.now();
        let merchant = self.front_end.config().merchant.clone();
        let first = self.payer.dispute(now, payment, merchant, reason)?;
        let id = match &first.message {
            Message::Dispute(dispute) => Some(dispute.dispute.clone()),
            _ => None,
        };
        let log = self.deliver(first, clock, faults)?;
        let outcome = id.and_then(|id| self.payer.dispute_outcome(&id).cloned());
        Ok((log, outcome))
    }

    fn run<K: Clock>(
        &mut self,
        first: Envelope,
        clock: K,
        faults: Faults,
    ) -> Result<PurchaseRun, RunError> {
        let Message::ServiceRequest(request) = &first.message else {
            unreachable!("ClientDevice::request makes a service request")
        };
        let request = request.request.clone();
        let log = self.deliver(first, clock, faults)?;
        let payment = log
            .entries
            .iter()
            .find_map(|entry| match &entry.envelope.message {
                Message::PaymentRequest(d) => Some(d.payment.clone()),
                _ => None,
            });
        Ok(PurchaseRun {
            result: self.client.result(&request).cloned(),
            payment: payment.map(|payment| {
                let state = self.payer.payment_state(&payment).cloned();
                (payment, state)
            }),
            request,
            log,
        })
    }
}

/// Why [`Embedded::dispute`] could not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DisputeRunError {
    /// The payer device could not make the dispute; nothing was sent.
    #[error(transparent)]
    Device(#[from] crate::terminal::payer::DisputeError),
    /// The roles kept answering one another.
    #[error(transparent)]
    Run(#[from] RunError),
}
