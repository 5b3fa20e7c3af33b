//! The roles as network services: the front-end, the service server and the bank-card
//! acquirer each served over mutual TLS on 127.0.0.1 (real sockets, real certificates
//! from `pki::init`), and a terminal with the software card calling the front-end.

use std::path::{Path, PathBuf};
use std::time::Duration;

use telepay::acquirer::journal::{Journal, TransactionFilter, TransactionState};
use telepay::messages::{Message, ProviderId, ServiceId, TerminalId};
use telepay::net::config::ServiceConfig;
use telepay::net::link::LinkOptions;
use telepay::net::pki::{self, InitOptions, PeerName, ServiceRole};
use telepay::net::service::Service;
use telepay::net::switchboard::Route;
use telepay::net::terminal::{RemoteTerminal, TerminalRoles};
use telepay::net::tls::TlsIdentity;
use telepay::terminal::card_module::{CardModule, TerminalData};
use telepay::terminal::client::{ClientDevice, RequestResult};
use telepay::terminal::payer::{PayerDevice, ScriptedUser};
use tokio::sync::oneshot;

/// A scratch directory of its own for each test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("telepay-network-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn peer(text: &str) -> PeerName {
    PeerName::from_dns_name(text).unwrap()
}

/// A running service and the way to stop it.
struct Running {
    url: String,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = self.task.await;
    }
}

/// Serves `role` as configured by `toml` (written to DIR/NAME.toml, relative paths from
/// DIR), on a port of the system's choosing.
async fn serve(dir: &Path, name: &str, role: ServiceRole, toml: &str) -> Running {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, toml).unwrap();
    let config = ServiceConfig::load(&path).unwrap();
    let service = Service::start(role, &config, &path).await.unwrap();
    let url = format!("https://{}", service.local_address().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(service.run(async {
        let _ = stopped.await;
    }));
    Running {
        url,
        stop: Some(stop),
        task,
    }
}

fn tls(name: &str, accept: &str) -> String {
    format!(
        "[tls]\ncert = \"pki/{name}.pem\"\nkey = \"pki/{name}-key.pem\"\nca = \"pki/ca.pem\"\naccept = [{accept}]\n"
    )
}

/// The provider, the card acquirer and the front-end `fe1`, served.
async fn deployment(dir: &Path) -> (Running, Running, Running) {
    pki::init(
        &dir.join("pki"),
        &pki::demo_peers(),
        &InitOptions::default(),
    )
    .unwrap();
    let provider = serve_provider(dir).await;
    let acquirer = serve(
        dir,
        "acq1",
        ServiceRole::CardAcquirer,
        &format!(
            "listen = \"127.0.0.1:0\"\n{}\n[acquirer_card]\njournal = \"acq1.sqlite\"\n",
            tls("acq1.acquirer-card.telepay", "\"role:frontend\"")
        ),
    )
    .await;
    let front_end = serve_front_end(dir, &provider.url, &acquirer.url, "", "").await;
    (provider, acquirer, front_end)
}

async fn serve_provider(dir: &Path) -> Running {
    serve(
        dir,
        "p1",
        ServiceRole::Provider,
        &format!(
            "listen = \"127.0.0.1:0\"\n{}",
            tls("p1.provider.telepay", "\"role:frontend\"")
        ),
    )
    .await
}

/// The front-end `fe1` routing to `provider` and to the card acquirer at `acquirer`;
/// `extra` goes at the end of its `[frontend]` section, `routes` before it.
async fn serve_front_end(
    dir: &Path,
    provider: &str,
    acquirer: &str,
    routes: &str,
    extra: &str,
) -> Running {
    serve(
        dir,
        "fe1",
        ServiceRole::FrontEnd,
        &format!(
            "listen = \"127.0.0.1:0\"\n{}\n\
             [[route]]\nparty = \"server:demo-publisher\"\nurl = \"{provider}\"\npeer = \"p1.provider.telepay\"\n\n\
             [[route]]\nparty = \"acquirer:bank-card-acquirer\"\nurl = \"{acquirer}\"\npeer = \"acq1.acquirer-card.telepay\"\n\n{routes}\n\
             [frontend]\nmerchant = \"telepay-frontend\"\npurchase_prefix = \"FE1\"\n{extra}",
            tls("fe1.frontend.telepay", "\"role:terminal\""),
        ),
    )
    .await
}

/// Terminal `t1` with the software card `cb` (PIN 1234), calling `front_end`.
fn terminal(
    dir: &Path,
    front_end: &str,
) -> RemoteTerminal<impl telepay::emv::CardChannel + Send + 'static, ScriptedUser> {
    terminal_with(dir, front_end, |payer| payer)
}

/// As [`terminal`], its payer device changed by `change` (a wallet key, a means).
fn terminal_with<C: telepay::emv::CardChannel + Send + 'static>(
    dir: &Path,
    front_end: &str,
    change: impl FnOnce(
        PayerDevice<
            telepay::reader::Transport<Box<dyn telepay::reader::Reader + Send>>,
            ScriptedUser,
        >,
    ) -> PayerDevice<C, ScriptedUser>,
) -> RemoteTerminal<C, ScriptedUser> {
    let pki = dir.join("pki");
    let t1 = peer("t1.terminal.telepay");
    let identity =
        TlsIdentity::load(&t1.cert_path(&pki), &t1.key_path(&pki), &pki.join("ca.pem")).unwrap();
    let card = CardModule::new(
        telepay::testing::powered("sim:cb").unwrap(),
        TerminalData::france(),
    );
    let terminal = TerminalId::from("t1");
    RemoteTerminal::new(
        TerminalRoles {
            client: ClientDevice::new(terminal.clone()),
            payer: change(PayerDevice::new(
                terminal,
                card,
                ScriptedUser::with_pin("1234"),
            )),
        },
        Route {
            url: front_end.to_owned(),
            peer: peer("fe1.frontend.telepay"),
        },
        &identity,
        LinkOptions::default(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_buys_through_a_front_end_provider_and_acquirer_each_its_own_service() {
    let dir = scratch("purchase");
    let (provider, acquirer, front_end) = deployment(&dir).await;
    let terminal = terminal(&dir, &front_end.url);

    let run = terminal
        .purchase(
            ProviderId::from("demo-publisher"),
            ServiceId::from("market-report-2026"),
            None,
            Duration::from_secs(20),
        )
        .await;

    assert!(
        matches!(run.result, Some(RequestResult::Delivered(_))),
        "{:?}\n{:?}",
        run.result,
        run.troubles
    );
    assert!(run.troubles.is_empty(), "{:?}", run.troubles);
    // The terminal saw A, D, E, H and K go by; B, C, F, G, I and J stayed between the
    // front-end and the others.
    let steps: Vec<&str> = run
        .messages
        .iter()
        .map(|envelope| envelope.message.step())
        .collect();
    assert_eq!(steps, ["A", "D", "E", "H", "K"], "{steps:?}");
    assert!(
        run.messages
            .iter()
            .all(|envelope| !matches!(envelope.message, Message::AcquirerTransaction(_))),
    );

    // The acquirer journal, in its own file, holds the one authorised transaction.
    let journal = Journal::open(dir.join("acq1.sqlite")).unwrap();
    let mut recorded = Vec::new();
    journal
        .transactions::<telepay::acquirer::journal::JournalError>(
            &TransactionFilter::default(),
            |entry| {
                recorded.push((entry.purchase.clone(), entry.state));
                Ok(())
            },
        )
        .unwrap();
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert!(recorded[0].0.starts_with("FE1-"), "{recorded:?}");
    assert_eq!(recorded[0].1, TransactionState::Authorised);

    for service in [front_end, acquirer, provider] {
        service.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_acquirer_ends_the_purchase_by_the_front_ends_deadline_through_the_mailbox()
{
    let dir = scratch("no-acquirer");
    pki::init(
        &dir.join("pki"),
        &pki::demo_peers(),
        &InitOptions::default(),
    )
    .unwrap();
    let provider = serve_provider(&dir).await;
    // A port nothing listens on any more.
    let vacant = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let acquirer = format!("https://{}", vacant.local_addr().unwrap());
    drop(vacant);
    let front_end = serve_front_end(
        &dir,
        &provider.url,
        &acquirer,
        "",
        "acquirer_timeout_ms = 1500\n",
    )
    .await;
    let terminal = terminal(&dir, &front_end.url);

    let run = terminal
        .purchase(
            ProviderId::from("demo-publisher"),
            ServiceId::from("market-report-2026"),
            None,
            Duration::from_secs(20),
        )
        .await;

    // The front-end could not reach the acquirer; when its wait for G ran out, it told
    // the terminal — whose call had long been answered — through the mailbox.
    let Some(RequestResult::Failed(failure)) = &run.result else {
        panic!("{:?}\n{:?}", run.result, run.troubles);
    };
    assert!(
        failure.to_string().contains("acquirer"),
        "{failure}\n{:?}",
        run.messages
    );
    let steps: Vec<&str> = run
        .messages
        .iter()
        .map(|envelope| envelope.message.step())
        .collect();
    assert_eq!(steps.first(), Some(&"A"), "{steps:?}");
    assert!(steps.contains(&"E"), "{steps:?}");
    assert!(!steps.contains(&"K"), "{steps:?}");
    for service in [front_end, provider] {
        service.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wallet_payment_goes_to_the_wallet_acquirer_served_apart() {
    use telepay::acquirer::wallet::{AccountKey, Credit, WalletStore};
    use telepay::messages::{Currency, Means, Money, Timestamp};
    use telepay::terminal::payer::{MeansChoice, WalletSigner};

    let dir = scratch("wallet");
    pki::init(
        &dir.join("pki"),
        &pki::demo_peers(),
        &InitOptions::default(),
    )
    .unwrap();
    let key = p256::ecdsa::SigningKey::from_slice(&[0x5A; 32]).unwrap();
    let account = AccountKey::new(key.verifying_key());
    {
        let mut store = WalletStore::open(dir.join("wallet.sqlite")).unwrap();
        store
            .open_account(&account, Currency::EUR, Timestamp(0))
            .unwrap();
        store
            .credit(
                &Credit {
                    reference: "initial-reload".into(),
                    account: account.clone(),
                    amount: Money::new(10_000, Currency::EUR),
                },
                Timestamp(0),
            )
            .unwrap();
    }
    let provider = serve_provider(&dir).await;
    let card_acquirer = serve(
        &dir,
        "acq1",
        ServiceRole::CardAcquirer,
        &format!(
            "listen = \"127.0.0.1:0\"\n{}\n[acquirer_card]\njournal = \"acq1.sqlite\"\n",
            tls("acq1.acquirer-card.telepay", "\"role:frontend\"")
        ),
    )
    .await;
    let wallet = serve(
        &dir,
        "wallet1",
        ServiceRole::WalletAcquirer,
        &format!(
            "listen = \"127.0.0.1:0\"\n{}\n[acquirer_wallet]\nstore = \"wallet.sqlite\"\n",
            tls("wallet1.acquirer-wallet.telepay", "\"role:frontend\"")
        ),
    )
    .await;
    let front_end = serve_front_end(
        &dir,
        &provider.url,
        &card_acquirer.url,
        &format!(
            "[[route]]\nparty = \"acquirer:wallet-acquirer\"\nurl = \"{}\"\npeer = \"wallet1.acquirer-wallet.telepay\"\n",
            wallet.url
        ),
        "wallet_acquirer = \"wallet-acquirer\"\n",
    )
    .await;
    let terminal = terminal_with(&dir, &front_end.url, |payer| {
        payer
            .with_wallet(WalletSigner::from_signing_key(key))
            .with_means(MeansChoice::Fixed(Means::VirtualWallet))
    });

    let run = terminal
        .purchase(
            ProviderId::from("demo-publisher"),
            ServiceId::from("market-report-2026"),
            None,
            Duration::from_secs(20),
        )
        .await;

    assert!(
        matches!(run.result, Some(RequestResult::Delivered(_))),
        "{:?}\n{:?}",
        run.result,
        run.troubles
    );
    for service in [front_end, wallet, card_acquirer, provider] {
        service.stop().await;
    }
    // 2.50 EUR debited from the account, in the wallet acquirer's own file.
    let store = WalletStore::open(dir.join("wallet.sqlite")).unwrap();
    let state = store.account(&account).unwrap().unwrap();
    assert_eq!(state.balance, 10_000 - 250);
    // Nothing went to the card acquirer.
    let journal = Journal::open(dir.join("acq1.sqlite")).unwrap();
    let mut card_transactions = 0;
    journal
        .transactions::<telepay::acquirer::journal::JournalError>(
            &TransactionFilter::default(),
            |_| {
                card_transactions += 1;
                Ok(())
            },
        )
        .unwrap();
    assert_eq!(card_transactions, 0);
}
