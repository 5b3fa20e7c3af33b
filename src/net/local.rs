//! A whole deployment on 127.0.0.1 inside one process, for tests, benchmarks and
//! demonstrations: a test PKI, a service server, a bank-card acquirer, optionally a
//! wallet acquirer, and a front-end, each a [`Service`] on its own port with its own
//! certificate — the same services `telepay serve` runs, on the caller's tokio runtime —
//! and terminals calling the front-end as `telepay purchase --frontend` does.

use std::path::{Path, PathBuf};

use tokio::sync::oneshot;

use crate::emv::CardChannel;
use crate::messages::TerminalId;
use crate::terminal::card_module::{CardModule, TerminalData};
use crate::terminal::payer::{PayerDevice, PayerUser};

use super::config::ServiceConfig;
use super::link::{LinkError, LinkOptions};
use super::pki::{self, InitOptions, PeerName, ServiceRole};
use super::service::{Service, ServiceError};
use super::switchboard::Route;
use super::terminal::RemoteTerminal;

/// Why a local deployment could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LocalError {
    /// The test PKI.
    #[error(transparent)]
    Pki(#[from] pki::PkiError),
    /// A configuration file could not be written.
    #[error("{path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A service did not start.
    #[error("{name}: {source}")]
    Service {
        /// The service's name.
        name: String,
        /// Why.
        source: Box<ServiceError>,
    },
    /// A terminal could not be set up.
    #[error("terminal {name}: {reason}")]
    Terminal {
        /// The terminal.
        name: String,
        /// Why.
        reason: String,
    },
}

/// What to deploy.
#[derive(Debug, Clone, Default)]
pub struct LocalOptions {
    /// Serve the wallet acquirer too, with its accounts in `wallet.sqlite` (or
    /// [`LocalOptions::wallet_store`]).
    pub wallet: bool,
    /// The wallet acquirer's accounts in PostgreSQL (`postgres://…`), instead of the
    /// SQLite file `wallet.sqlite`.
    pub wallet_store: Option<String>,
    /// Lines added to the front-end's `[frontend]` section.
    pub front_end_extra: String,
    /// Terminals' names to certify besides the demo set (`t1`, `t2`).
    pub terminals: Vec<String>,
    /// How many card-acquirer processes serve the one journal (`acq1`, `acq2`…; 0
    /// counts as 1). The front-end takes them in turn, each standing in for the others.
    pub card_acquirers: usize,
    /// The card acquirers' journal in PostgreSQL (`postgres://…`), instead of the
    /// SQLite file `acq1.sqlite`.
    pub card_journal_store: Option<String>,
    /// How the terminals call the front-end (default: [`LinkOptions::default`]).
    pub terminal_link: Option<LinkOptions>,
    /// The URL the front-end calls for each card acquirer instead of its own, by
    /// position: a proxy in front of it, or an address nothing listens on.
    pub card_acquirer_urls: Vec<String>,
}

/// One running service.
pub struct Running {
    /// Its URL, `https://127.0.0.1:PORT`.
    pub url: String,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Stops it and waits until it has.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = self.task.await;
    }
}

/// The deployment: its directory (certificates, configurations, state files) and its
/// running services.
pub struct LocalDeployment {
    /// Where everything is.
    pub dir: PathBuf,
    /// How the terminals call the front-end.
    pub terminal_link: LinkOptions,
    /// The service server `p1`.
    pub provider: Running,
    /// The card acquirers `acq1`, `acq2`…, sharing one journal (`acq1.sqlite`, or the
    /// PostgreSQL database given).
    pub card_acquirers: Vec<Running>,
    /// The wallet acquirer `wallet1` (accounts `wallet.sqlite`), when asked for.
    pub wallet_acquirer: Option<Running>,
    /// The front-end `fe1`.
    pub front_end: Running,
}

fn tls_section(name: &str, accept: &str) -> String {
    format!(
        "listen = \"127.0.0.1:0\"\n[tls]\ncert = \"pki/{name}.pem\"\nkey = \"pki/{name}-key.pem\"\n\
         ca = \"pki/ca.pem\"\naccept = [{accept}]\n"
    )
}

fn route(party: &str, url: &str, peer: &str) -> String {
    format!("[[route]]\nparty = \"{party}\"\nurl = \"{url}\"\npeer = \"{peer}\"\n\n")
}

impl LocalDeployment {
    /// Deploys in `dir` (made if missing) as `options` say.
    ///
    /// # Errors
    /// [`LocalError`] naming what did not start.
    pub async fn start(dir: &Path, options: &LocalOptions) -> Result<LocalDeployment, LocalError> {
        let pki_dir = dir.join("pki");
        let mut peers = pki::demo_peers();
        for terminal in &options.terminals {
            let peer = PeerName::new(ServiceRole::Terminal, terminal).map_err(|error| {
                LocalError::Terminal {
                    name: terminal.clone(),
                    reason: error.to_string(),
                }
            })?;
            if !peers.contains(&peer) {
                peers.push(peer);
            }
        }
        pki::init(&pki_dir, &peers, &InitOptions::default())?;
        let provider = serve(
            dir,
            "p1",
            ServiceRole::Provider,
            &tls_section("p1.provider.telepay", "\"role:frontend\""),
        )
        .await?;
        let journal = match &options.card_journal_store {
            Some(store) => format!("store = \"{store}\""),
            None => "journal = \"acq1.sqlite\"".to_owned(),
        };
        let mut card_acquirers = Vec::new();
        for number in 1..=options.card_acquirers.max(1) {
            let name = format!("acq{number}");
            card_acquirers.push(
                serve(
                    dir,
                    &name,
                    ServiceRole::CardAcquirer,
                    &format!(
                        "{}\n[acquirer_card]\n{journal}\n",
                        tls_section(
                            &format!("{name}.acquirer-card.telepay"),
                            "\"role:frontend\""
                        )
                    ),
                )
                .await?,
            );
        }
        let wallet_acquirer = if options.wallet {
            Some(
                serve(
                    dir,
                    "wallet1",
                    ServiceRole::WalletAcquirer,
                    &format!(
                        "{}\n[acquirer_wallet]\nstore = \"{}\"\n",
                        tls_section("wallet1.acquirer-wallet.telepay", "\"role:frontend\""),
                        options.wallet_store.as_deref().unwrap_or("wallet.sqlite")
                    ),
                )
                .await?,
            )
        } else {
            None
        };
        let mut routes = route(
            "server:demo-publisher",
            &provider.url,
            "p1.provider.telepay",
        );
        for (index, acquirer) in card_acquirers.iter().enumerate() {
            let url = options
                .card_acquirer_urls
                .get(index)
                .cloned()
                .unwrap_or_else(|| acquirer.url.clone());
            routes.push_str(&route(
                "acquirer:bank-card-acquirer",
                &url,
                &format!("acq{}.acquirer-card.telepay", index + 1),
            ));
        }
        let mut section = format!(
            "[frontend]\nmerchant = \"telepay-frontend\"\npurchase_prefix = \"FE1\"\n{}",
            options.front_end_extra
        );
        if let Some(wallet) = &wallet_acquirer {
            routes.push_str(&route(
                "acquirer:wallet-acquirer",
                &wallet.url,
                "wallet1.acquirer-wallet.telepay",
            ));
            section.push_str("wallet_acquirer = \"wallet-acquirer\"\n");
        }
        let front_end = serve(
            dir,
            "fe1",
            ServiceRole::FrontEnd,
            &format!(
                "{}\n{routes}{section}",
                tls_section("fe1.frontend.telepay", "\"role:terminal\"")
            ),
        )
        .await?;
        Ok(LocalDeployment {
            dir: dir.to_owned(),
            terminal_link: options.terminal_link.unwrap_or_default(),
            provider,
            card_acquirers,
            wallet_acquirer,
            front_end,
        })
    }

    /// Terminal `name` calling the front-end, paying with the card on `card` for
    /// `user`; `change` adjusts its payer device (a wallet key, a means).
    ///
    /// # Errors
    /// [`LocalError::Terminal`] for a name without a certificate here.
    pub fn terminal<C, U, D>(
        &self,
        name: &str,
        card: C,
        user: U,
        change: impl FnOnce(PayerDevice<C, U>) -> PayerDevice<D, U>,
    ) -> Result<RemoteTerminal<D, U>, LocalError>
    where
        C: CardChannel,
        D: CardChannel + Send + 'static,
        U: PayerUser + Send + 'static,
    {
        let failed = |reason: String| LocalError::Terminal {
            name: name.to_owned(),
            reason,
        };
        let terminal = TerminalId::from(name);
        let payer = change(PayerDevice::new(
            terminal,
            CardModule::new(card, TerminalData::france()),
            user,
        ));
        let front_end = Route {
            url: self.front_end.url.clone(),
            peer: PeerName::new(ServiceRole::FrontEnd, "fe1")
                .map_err(|error| failed(error.to_string()))?,
        };
        RemoteTerminal::from_pki(
            &self.dir.join("pki"),
            name,
            vec![front_end],
            payer,
            self.terminal_link,
        )
        .map_err(|error: LinkError| failed(error.to_string()))
    }

    /// Stops every service, the front-end first.
    pub async fn stop(self) {
        self.front_end.stop().await;
        if let Some(wallet) = self.wallet_acquirer {
            wallet.stop().await;
        }
        for acquirer in self.card_acquirers {
            acquirer.stop().await;
        }
        self.provider.stop().await;
    }
}

/// Serves `role` as configured by `toml` (written to DIR/NAME.toml, relative paths
/// from DIR).
async fn serve(
    dir: &Path,
    name: &str,
    role: ServiceRole,
    toml: &str,
) -> Result<Running, LocalError> {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, toml).map_err(|source| LocalError::Write {
        path: path.clone(),
        source,
    })?;
    let failed = |source: ServiceError| LocalError::Service {
        name: name.to_owned(),
        source: Box::new(source),
    };
    let config = ServiceConfig::load(&path).map_err(|error| failed(error.into()))?;
    let service = Service::start(role, &config, &path).await.map_err(failed)?;
    let address = service.local_address().map_err(|error| {
        failed(ServiceError::Listen {
            address: config.listen,
            source: error,
        })
    })?;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(service.run(async {
        let _ = stopped.await;
    }));
    Ok(Running {
        url: format!("https://{address}"),
        stop: Some(stop),
        task,
    })
}
