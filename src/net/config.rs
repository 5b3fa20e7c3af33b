//! The configuration file of `telepay serve ROLE --config FILE`: where the process
//! listens, its certificate and the peers it accepts, where its peers are, and its
//! role's own settings. `docs/deployment.md` shows one per role.
//!
//! ```toml
//! listen = "127.0.0.1:7401"
//!
//! [tls]
//! cert = "pki/fe1.frontend.telepay.pem"
//! key = "pki/fe1.frontend.telepay-key.pem"
//! ca = "pki/ca.pem"
//! accept = ["role:terminal"]
//!
//! [[route]]
//! party = "server:demo-provider"
//! url = "https://127.0.0.1:7402"
//! peer = "p1.provider.telepay"
//!
//! [frontend]
//! merchant = "telepay-frontend"
//! purchase_prefix = "FE1"
//! ```
//!
//! Relative paths are read from the configuration file's directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::pki::PeerName;
use super::switchboard::{PartyAddress, Route, Switchboard};

/// Why a configuration file cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not this format.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the TOML reader said, with the line.
        message: String,
    },
    /// A value is out of place.
    #[error("{path}: {key}: {problem}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
        /// What is wrong.
        problem: String,
    },
}

/// The certificate files and the peers a process accepts.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// Its certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PKCS#8 PEM).
    pub key: PathBuf,
    /// The CA certificates its peers' certificates must chain to (PEM).
    pub ca: PathBuf,
    /// The peers it accepts calls from: certificate names (`t1.terminal.telepay`) or
    /// whole roles (`role:terminal`).
    #[serde(default)]
    pub accept: Vec<String>,
}

/// A peer this process sends to.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteEntry {
    /// The party it hosts.
    pub party: PartyAddress,
    /// Its base URL.
    pub url: String,
    /// Its certificate name.
    pub peer: PeerName,
}

/// A peer that speaks for a party without being routed to (a card acquirer calling
/// the telecollection centre as its acquirer name).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpeakerEntry {
    /// Its certificate name.
    pub peer: PeerName,
    /// The party it speaks for.
    pub party: PartyAddress,
}

/// The front-end's own settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrontEndSection {
    /// Its merchant name at the acquirers.
    pub merchant: String,
    /// The prefix of its purchases' names: give each front-end its own.
    pub purchase_prefix: String,
    /// The bank-card acquirer.
    #[serde(default = "default_card_acquirer")]
    pub card_acquirer: String,
    /// The virtual-wallet acquirer, when it takes the wallet.
    #[serde(default)]
    pub wallet_acquirer: Option<String>,
    /// Its session log (wallet sessions), default in memory.
    #[serde(default)]
    pub session_log: Option<PathBuf>,
    /// How long it waits for an acquirer, in milliseconds.
    #[serde(default)]
    pub acquirer_timeout_ms: Option<i64>,
    /// How long it waits for the payer device, in milliseconds.
    #[serde(default)]
    pub payer_timeout_ms: Option<i64>,
}

fn default_card_acquirer() -> String {
    crate::purchase::embedded::ACQUIRER.to_owned()
}

/// The service server's own settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ProviderSection {
    /// Its catalogue (TOML), default the demo catalogue.
    #[serde(default)]
    pub catalogue: Option<PathBuf>,
}

/// The bank-card acquirer's own settings: its journal, exactly one of `journal` (a
/// SQLite file, this process's alone) or `store` (a PostgreSQL database that several
/// acquirer processes may share).
///
/// ```toml
/// [acquirer_card]
/// store = "postgres://telepay@/journal?host=/run/postgresql"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardAcquirerSection {
    /// Its journal as a SQLite file.
    #[serde(default)]
    pub journal: Option<PathBuf>,
    /// Its journal in PostgreSQL: `postgres://USER@/DB?host=/socket/dir`, or
    /// `postgres://USER@127.0.0.1:PORT/DB` (see `docs/deployment.md`, "PostgreSQL").
    #[serde(default)]
    pub store: Option<String>,
}

/// Where the bank-card acquirer keeps its journal, as [`CardAcquirerSection::journal_store`]
/// reads the section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CardJournalStore<'a> {
    /// A SQLite file (relative to the configuration file's directory).
    Sqlite(&'a Path),
    /// A PostgreSQL database's address.
    Postgres(&'a str),
}

impl CardAcquirerSection {
    /// The journal the section names.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming `[acquirer_card]` when it gives both `journal`
    /// and `store`, neither, or a `store` that is not a PostgreSQL address.
    pub fn journal_store(&self, path: &Path) -> Result<CardJournalStore<'_>, ConfigError> {
        let invalid = |problem: &str| ConfigError::Invalid {
            path: path.to_owned(),
            key: "[acquirer_card]".into(),
            problem: problem.to_owned(),
        };
        match (&self.journal, &self.store) {
            (Some(journal), None) => Ok(CardJournalStore::Sqlite(journal)),
            (None, Some(store)) => {
                if store.starts_with("postgres://") || store.starts_with("postgresql://") {
                    Ok(CardJournalStore::Postgres(store))
                } else {
                    Err(invalid(
                        "store: expected a PostgreSQL address, postgres://USER@/DB?host=/socket/dir \
                         or postgres://USER@HOST:PORT/DB",
                    ))
                }
            }
            (Some(_), Some(_)) => Err(invalid(
                "give one of journal (a SQLite file) and store (a PostgreSQL database), not both",
            )),
            (None, None) => Err(invalid(
                "missing its journal: journal = \"FILE\" (SQLite) or store = \"postgres://...\"",
            )),
        }
    }
}

/// The wallet acquirer's own settings: its accounts, a SQLite file (this process's
/// alone) or a PostgreSQL database that several wallet-acquirer processes may share,
/// told apart by the address's scheme.
///
/// ```toml
/// [acquirer_wallet]
/// store = "postgres://telepay@/wallet?host=/run/postgresql"   # or store = "wallet.sqlite"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WalletAcquirerSection {
    /// Its accounts: a SQLite file (relative to the configuration file's directory),
    /// or a PostgreSQL address, `postgres://…` or `postgresql://…` (see
    /// `docs/deployment.md`, "PostgreSQL").
    pub store: PathBuf,
}

/// Where the wallet acquirer keeps its accounts, as [`WalletAcquirerSection::accounts_store`]
/// reads the section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalletAccountsStore<'a> {
    /// A SQLite file (relative to the configuration file's directory).
    Sqlite(&'a Path),
    /// A PostgreSQL database's address.
    Postgres(&'a str),
}

impl WalletAcquirerSection {
    /// The store the section names: PostgreSQL when `store` starts with `postgres://`
    /// or `postgresql://` (a file of that name would be `./postgres:/…`), else a SQLite
    /// file.
    pub fn accounts_store(&self) -> WalletAccountsStore<'_> {
        match self.store.to_str() {
            Some(address)
                if address.starts_with("postgres://") || address.starts_with("postgresql://") =>
            {
                WalletAccountsStore::Postgres(address)
            }
            _ => WalletAccountsStore::Sqlite(&self.store),
        }
    }
}

/// The telecollection centre's own settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelecollectionSection {
    /// Its store (SQLite file) of accepted batches.
    pub store: PathBuf,
    /// Where batches wait while they arrive and are verified [default: beside the store,
    /// `STORE.spool`].
    #[serde(default)]
    pub spool: Option<PathBuf>,
    /// The largest batch taken, in bytes [default: 4 GiB].
    #[serde(default)]
    pub max_batch_bytes: Option<u64>,
}

/// A process's configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// The address it listens on.
    pub listen: SocketAddr,
    /// Its certificate and accepted peers.
    pub tls: TlsFiles,
    /// Its peers.
    #[serde(default, rename = "route")]
    pub routes: Vec<RouteEntry>,
    /// Peers speaking for parties it does not route to.
    #[serde(default, rename = "speaker")]
    pub speakers: Vec<SpeakerEntry>,
    /// The front-end's settings, for `serve frontend`.
    #[serde(default)]
    pub frontend: Option<FrontEndSection>,
    /// The service server's, for `serve provider`.
    #[serde(default)]
    pub provider: Option<ProviderSection>,
    /// The bank-card acquirer's, for `serve acquirer-card`.
    #[serde(default)]
    pub acquirer_card: Option<CardAcquirerSection>,
    /// The wallet acquirer's, for `serve acquirer-wallet`.
    #[serde(default)]
    pub acquirer_wallet: Option<WalletAcquirerSection>,
    /// The telecollection centre's, for `serve telecollection`.
    #[serde(default)]
    pub telecollection: Option<TelecollectionSection>,
    /// The directory relative paths are read from (the file's own).
    #[serde(skip)]
    pub base: PathBuf,
}

impl ServiceConfig {
    /// Reads the configuration at `path`.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file and, for a bad value, the key.
    pub fn load(path: &Path) -> Result<ServiceConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config = ServiceConfig::from_toml_str(&text, path)?;
        config.base = path
            .parent()
            .map(Path::to_owned)
            .unwrap_or_else(|| PathBuf::from("."));
        Ok(config)
    }

    /// Reads a configuration from `text`; `path` names it in errors.
    ///
    /// # Errors
    /// [`ConfigError::Parse`].
    pub fn from_toml_str(text: &str, path: &Path) -> Result<ServiceConfig, ConfigError> {
        toml::from_str(text).map_err(|error: toml::de::Error| ConfigError::Parse {
            path: path.to_owned(),
            message: error.to_string(),
        })
    }

    /// `path` read from the configuration file's directory when relative.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_owned()
        } else {
            self.base.join(path)
        }
    }

    /// The routes, in the order of the file.
    pub fn route_list(&self) -> Vec<Route> {
        self.routes
            .iter()
            .map(|entry| Route {
                url: entry.url.clone(),
                peer: entry.peer.clone(),
            })
            .collect()
    }

    /// The switchboard of a process hosting `local`: the file's routes (in order, so
    /// that route numbers match [`ServiceConfig::route_list`]) and speakers.
    pub fn switchboard(
        &self,
        local: impl IntoIterator<Item = crate::messages::Party>,
    ) -> Switchboard {
        let mut board = Switchboard::new(local);
        for entry in &self.routes {
            board = board.route(
                entry.party.0.clone(),
                Route {
                    url: entry.url.clone(),
                    peer: entry.peer.clone(),
                },
            );
        }
        for speaker in &self.speakers {
            board = board.allow(&speaker.peer, speaker.party.0.clone());
        }
        board
    }

    /// The section `key` for a process of that role, or an error naming it.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] when the section is missing.
    pub fn section<'a, T>(
        &self,
        key: &str,
        section: &'a Option<T>,
        path: &Path,
    ) -> Result<&'a T, ConfigError> {
        section.as_ref().ok_or_else(|| ConfigError::Invalid {
            path: path.to_owned(),
            key: format!("[{key}]"),
            problem: "missing: this role needs it".to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRONT_END: &str = r#"
listen = "127.0.0.1:7401"

[tls]
cert = "pki/fe1.frontend.telepay.pem"
key = "pki/fe1.frontend.telepay-key.pem"
ca = "pki/ca.pem"
accept = ["role:terminal"]

[[route]]
party = "server:demo-provider"
url = "https://127.0.0.1:7402"
peer = "p1.provider.telepay"

[[route]]
party = "acquirer:bank-card-acquirer"
url = "https://127.0.0.1:7403"
peer = "acq1.acquirer-card.telepay"

[frontend]
merchant = "telepay-frontend"
purchase_prefix = "FE1"
"#;

    #[test]
    fn a_front_end_file_gives_its_routes_in_order_and_its_section() {
        let config = ServiceConfig::from_toml_str(FRONT_END, Path::new("fe1.toml")).unwrap();
        assert_eq!(config.listen.port(), 7401);
        let routes = config.route_list();
        assert_eq!(routes.len(), 2);
        assert_eq!(routes[1].peer.dns_name(), "acq1.acquirer-card.telepay");
        let board = config.switchboard([crate::messages::Party::FrontEnd]);
        assert_eq!(
            board.destination(
                &"acquirer:bank-card-acquirer"
                    .parse::<PartyAddress>()
                    .unwrap()
                    .0,
                None
            ),
            super::super::switchboard::Destination::Peers(vec![1])
        );
        let section = config
            .section("frontend", &config.frontend, Path::new("fe1.toml"))
            .unwrap();
        assert_eq!(section.card_acquirer, "bank-card-acquirer");
        assert_eq!(section.wallet_acquirer, None);
    }

    #[test]
    fn a_misspelt_key_or_a_bad_party_names_the_file_and_the_line() {
        let error = ServiceConfig::from_toml_str(
            &FRONT_END.replace("purchase_prefix", "prefix"),
            Path::new("fe1.toml"),
        )
        .unwrap_err();
        let text = error.to_string();
        assert!(text.starts_with("fe1.toml: "), "{text}");
        assert!(text.contains("prefix"), "{text}");
        let error = ServiceConfig::from_toml_str(
            &FRONT_END.replace("server:demo-provider", "provider:demo"),
            Path::new("fe1.toml"),
        )
        .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("party address \"provider:demo\""),
            "{error}"
        );
    }

    #[test]
    fn the_card_acquirer_keeps_exactly_one_journal() {
        let file = Path::new("acq.toml");
        let read = |section: &str| {
            let text = format!(
                "listen = \"127.0.0.1:7403\"\n[tls]\ncert = \"c\"\nkey = \"k\"\nca = \"a\"\n\
                 [acquirer_card]\n{section}\n"
            );
            let config = ServiceConfig::from_toml_str(&text, file).unwrap();
            let section = config.acquirer_card.unwrap();
            section
                .journal_store(file)
                .map(|store| format!("{store:?}"))
                .map_err(|e| e.to_string())
        };
        let both = "acq.toml: [acquirer_card]: give one of journal (a SQLite file) and store \
                    (a PostgreSQL database), not both";
        let neither = "acq.toml: [acquirer_card]: missing its journal: journal = \"FILE\" \
                       (SQLite) or store = \"postgres://...\"";
        let not_postgres = "acq.toml: [acquirer_card]: store: expected a PostgreSQL address, \
                            postgres://USER@/DB?host=/socket/dir or postgres://USER@HOST:PORT/DB";
        let table: [(&str, Result<&str, &str>); 5] = [
            ("journal = \"acq1.sqlite\"", Ok("Sqlite(\"acq1.sqlite\")")),
            (
                "store = \"postgres://telepay@/j?host=/tmp\"",
                Ok("Postgres(\"postgres://telepay@/j?host=/tmp\")"),
            ),
            (
                "journal = \"a.sqlite\"\nstore = \"postgres://u@h/d\"",
                Err(both),
            ),
            ("", Err(neither)),
            ("store = \"acq1.sqlite\"", Err(not_postgres)),
        ];
        for (section, expected) in table {
            assert_eq!(
                read(section),
                expected.map(str::to_owned).map_err(str::to_owned),
                "{section}"
            );
        }
    }

    #[test]
    fn the_wallet_acquirer_keeps_its_accounts_in_a_file_or_in_postgresql() {
        let file = Path::new("wallet.toml");
        let read = |store: &str| {
            let text = format!(
                "listen = \"127.0.0.1:7404\"\n[tls]\ncert = \"c\"\nkey = \"k\"\nca = \"a\"\n\
                 [acquirer_wallet]\nstore = \"{store}\"\n"
            );
            let config = ServiceConfig::from_toml_str(&text, file).unwrap();
            format!("{:?}", config.acquirer_wallet.unwrap().accounts_store())
        };
        let table = [
            ("wallet.sqlite", "Sqlite(\"wallet.sqlite\")"),
            (
                "/var/lib/telepay/w.sqlite",
                "Sqlite(\"/var/lib/telepay/w.sqlite\")",
            ),
            (
                "postgres://telepay@/w?host=/tmp",
                "Postgres(\"postgres://telepay@/w?host=/tmp\")",
            ),
            (
                "postgresql://u@h:5433/w",
                "Postgres(\"postgresql://u@h:5433/w\")",
            ),
            // Only the scheme's exact spelling is an address.
            ("postgres:/w", "Sqlite(\"postgres:/w\")"),
            ("mysql://u@h/w", "Sqlite(\"mysql://u@h/w\")"),
        ];
        for (store, expected) in table {
            assert_eq!(read(store), expected, "{store}");
        }
    }

    #[test]
    fn a_role_without_its_section_is_refused_by_name() {
        let config = ServiceConfig::from_toml_str(FRONT_END, Path::new("fe1.toml")).unwrap();
        let error = config
            .section(
                "acquirer_card",
                &config.acquirer_card,
                Path::new("fe1.toml"),
            )
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "fe1.toml: [acquirer_card]: missing: this role needs it"
        );
    }
}
