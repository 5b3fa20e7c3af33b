//! One role as a network service: its sans-IO state machine built from the
//! configuration file, hosted by a [`Node`], served over mutual TLS until shutdown —
//! what `telepay serve ROLE --config FILE` runs.

use std::path::Path;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::acquirer::journal::Journal;
use crate::acquirer::postgres::PgJournal;
use crate::acquirer::store::CardJournal;
use crate::acquirer::system::BankCardAcquirer;
use crate::acquirer::wallet::{PgWalletStore, WalletAccounts, WalletAcquirer, WalletStore};
use crate::frontend::sessions::{Recovery, SqliteSessionLog};
use crate::frontend::{FrontEnd, FrontEndConfig, SystemEntropy};
use crate::messages::{AcquirerId, Means, MerchantId, Party};
use crate::provider::ServiceServer;
use crate::provider::catalogue::Catalogue;
use crate::purchase::embedded::{WALLET_ACQUIRER, test_rules};
use crate::telecollection::centre::Centre;

use super::config::{CardJournalStore, ConfigError, ServiceConfig, WalletAccountsStore};
use super::link::{Link, LinkOptions};
use super::node::{HostedRole, Node};
use super::pki::ServiceRole;
use super::serve::serve_tls;
use super::tls::{AllowedPeers, TlsIdentity, server_config};

/// Why a service could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The configuration file.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The role cannot be served by this command.
    #[error(
        "{0}: not a role `telepay serve` runs (frontend, provider, acquirer-card, acquirer-wallet)"
    )]
    NotServed(ServiceRole),
    /// The certificate, key or CA files, or the accepted peers.
    #[error("TLS: {0}")]
    Tls(String),
    /// The role's own state (a journal, a store, a catalogue) could not be opened.
    #[error("{role}: {reason}")]
    Role {
        /// The role.
        role: ServiceRole,
        /// Why.
        reason: String,
    },
    /// The listening socket.
    #[error("listening on {address}: {source}")]
    Listen {
        /// The address.
        address: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// A service ready to run: its node (the roles of the flow; none for the
/// telecollection centre, which takes batches rather than messages), its routes, its
/// TLS configuration and its socket.
pub struct Service {
    node: Option<Arc<Node<Vec<HostedRole>>>>,
    router: axum::Router,
    tls: Arc<rustls::ServerConfig>,
    listener: TcpListener,
}

impl Service {
    /// Builds `role` from `config` (read from `path`, named in errors) and binds its
    /// socket.
    ///
    /// # Errors
    /// [`ServiceError`] naming what could not be used.
    pub async fn start(
        role: ServiceRole,
        config: &ServiceConfig,
        path: &Path,
    ) -> Result<Service, ServiceError> {
        let tls = &config.tls;
        let identity = TlsIdentity::load(
            &config.resolve(&tls.cert),
            &config.resolve(&tls.key),
            &config.resolve(&tls.ca),
        )
        .map_err(|error| ServiceError::Tls(error.to_string()))?;
        if identity.name().role() != role {
            return Err(ServiceError::Tls(format!(
                "the certificate names {}, not a {role}",
                identity.name()
            )));
        }
        let allowed = if tls.accept.is_empty() {
            AllowedPeers::default_for(role)
        } else {
            AllowedPeers::parse_entries(&tls.accept).map_err(|error| {
                ServiceError::Config(ConfigError::Invalid {
                    path: path.to_owned(),
                    key: "tls.accept".into(),
                    problem: error.to_string(),
                })
            })?
        };
        let server = server_config(&identity, allowed)
            .map_err(|error| ServiceError::Tls(error.to_string()))?;
        let (node, router) = if role == ServiceRole::Telecollection {
            (None, centre_router(config, path)?)
        } else {
            let (roles, local) = build_roles(role, config, path)?;
            let link = Link::new(&identity, &config.route_list(), LinkOptions::default())
                .map_err(|error| ServiceError::Tls(error.to_string()))?;
            let node = Node::new(roles, config.switchboard(local), link);
            let router = node.router();
            (Some(node), router)
        };
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| ServiceError::Listen {
                    address: config.listen,
                    source,
                })?;
        Ok(Service {
            node,
            router,
            tls: server,
            listener,
        })
    }

    /// The address it listens on (the port the system chose for port 0).
    pub fn local_address(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown`, firing the roles' deadlines meanwhile.
    ///
    /// # Errors
    /// When the listener's address cannot be read.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let deadlines = self.node.map(|node| {
            tokio::spawn(node.run_deadlines({
                let mut stopped = stopped.clone();
                async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                }
            }))
        });
        let served = serve_tls(self.listener, self.tls, self.router, shutdown).await;
        let _ = stop.send(true);
        if let Some(deadlines) = deadlines {
            let _ = deadlines.await;
        }
        served
    }
}

/// A role's state file, resolved from the configuration's directory, its directory made
/// when missing.
fn state_file(config: &ServiceConfig, file: &Path) -> Result<std::path::PathBuf, String> {
    let path = config.resolve(file);
    if let Some(parent) = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent)
            .map_err(|error| format!("cannot make {}: {error}", parent.display()))?;
    }
    Ok(path)
}

/// The telecollection centre's routes: its store, its spool, and which acquirers each
/// card-acquirer peer speaks for (its `[[speaker]]` entries).
fn centre_router(config: &ServiceConfig, path: &Path) -> Result<axum::Router, ServiceError> {
    let failed = |reason: String| ServiceError::Role {
        role: ServiceRole::Telecollection,
        reason,
    };
    let section = config.section("telecollection", &config.telecollection, path)?;
    let store = state_file(config, &section.store).map_err(failed)?;
    let centre = Centre::open(&store).map_err(|error| failed(error.to_string()))?;
    let spool = match &section.spool {
        Some(spool) => config.resolve(spool),
        None => store.with_extension("spool"),
    };
    super::centre::clear_spool(&spool);
    Ok(super::centre::router(
        centre,
        config.switchboard([]),
        spool,
        section
            .max_batch_bytes
            .unwrap_or(super::centre::DEFAULT_MAX_BATCH_BYTES),
    ))
}

/// The roles of `role` and the parties they are.
fn build_roles(
    role: ServiceRole,
    config: &ServiceConfig,
    path: &Path,
) -> Result<(Vec<HostedRole>, Vec<Party>), ServiceError> {
    let failed = |reason: String| ServiceError::Role { role, reason };
    let hosted: HostedRole = match role {
        ServiceRole::FrontEnd => {
            let section = config.section("frontend", &config.frontend, path)?;
            let providers = config
                .routes
                .iter()
                .filter_map(|route| match &route.party.0 {
                    Party::Server(provider) => Some(provider.clone()),
                    _ => None,
                })
                .collect();
            let mut front_end_config = FrontEndConfig::new(
                MerchantId::from(section.merchant.as_str()),
                providers,
                AcquirerId::from(section.card_acquirer.as_str()),
            );
            front_end_config.purchase_prefix = section.purchase_prefix.clone();
            if let Some(timeout) = section.acquirer_timeout_ms {
                front_end_config.acquirer_timeout_ms = timeout;
            }
            if let Some(timeout) = section.payer_timeout_ms {
                front_end_config.payer_timeout_ms = timeout;
            }
            let mut front_end = FrontEnd::new(front_end_config, SystemEntropy);
            if let Some(log) = &section.session_log {
                let log = SqliteSessionLog::open(state_file(config, log).map_err(failed)?)
                    .map_err(|error| failed(error.to_string()))?;
                // A served front-end that stopped left its clients: it settles their
                // sessions rather than waiting for them.
                front_end = front_end
                    .with_session_log(Box::new(log), Recovery::Settle)
                    .map_err(|error| failed(error.to_string()))?;
            }
            if let Some(wallet) = &section.wallet_acquirer {
                front_end.accept_means(Means::VirtualWallet, AcquirerId::from(wallet.as_str()));
            }
            Box::new(front_end)
        }
        ServiceRole::Provider => {
            let section = config.provider.clone().unwrap_or_default();
            let catalogue = match &section.catalogue {
                Some(file) => Catalogue::load(config.resolve(file)),
                None => Catalogue::demo(),
            }
            .map_err(|error| failed(error.to_string()))?;
            Box::new(ServiceServer::new(catalogue))
        }
        ServiceRole::CardAcquirer => {
            let section = config.section("acquirer_card", &config.acquirer_card, path)?;
            // A SQLite file of its own, or a PostgreSQL database it may share with other
            // acquirer processes.
            let journal: Box<dyn CardJournal> = match section.journal_store(path)? {
                CardJournalStore::Sqlite(file) => Box::new(
                    Journal::open(state_file(config, file).map_err(failed)?)
                        .map_err(|error| failed(error.to_string()))?,
                ),
                // The client blocks on a runtime of its own, which tokio refuses
                // inside this async task: it connects on a thread of its own.
                CardJournalStore::Postgres(address) => Box::new(
                    std::thread::scope(|scope| scope.spawn(|| PgJournal::open(address)).join())
                        .map_err(|_| failed("opening the PostgreSQL journal panicked".into()))?
                        .map_err(|error| failed(error.to_string()))?,
                ),
            };
            let rules = test_rules().map_err(|error| failed(error.to_string()))?;
            Box::new(BankCardAcquirer::with_store(rules, journal))
        }
        ServiceRole::WalletAcquirer => {
            let section = config.section("acquirer_wallet", &config.acquirer_wallet, path)?;
            // A SQLite file of its own, or a PostgreSQL database it may share with other
            // wallet-acquirer processes.
            let store: Box<dyn WalletAccounts> = match section.accounts_store() {
                WalletAccountsStore::Sqlite(file) => Box::new(
                    WalletStore::open(state_file(config, file).map_err(failed)?)
                        .map_err(|error| failed(error.to_string()))?,
                ),
                // As the card journal: connected on a thread of its own, outside this
                // async task.
                WalletAccountsStore::Postgres(address) => Box::new(
                    std::thread::scope(|scope| scope.spawn(|| PgWalletStore::open(address)).join())
                        .map_err(|_| {
                            failed("opening the PostgreSQL wallet accounts panicked".into())
                        })?
                        .map_err(|error| failed(error.to_string()))?,
                ),
            };
            Box::new(WalletAcquirer::with_store(
                AcquirerId::from(WALLET_ACQUIRER),
                store,
            ))
        }
        ServiceRole::Telecollection | ServiceRole::Terminal => {
            return Err(ServiceError::NotServed(role));
        }
    };
    let party = hosted.party();
    Ok((vec![hosted], vec![party]))
}
