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
    let provider = serve(
        dir,
        "p1",
        ServiceRole::Provider,
        &format!(
            "listen = \"127.0.0.1:0\"\n{}",
            tls("p1.provider.telepay", "\"role:frontend\"")
        ),
    )
    .await;
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
    let front_end = serve(
        dir,
        "fe1",
        ServiceRole::FrontEnd,
        &format!(
            "listen = \"127.0.0.1:0\"\n{}\n\
             [[route]]\nparty = \"server:demo-publisher\"\nurl = \"{}\"\npeer = \"p1.provider.telepay\"\n\n\
             [[route]]\nparty = \"acquirer:bank-card-acquirer\"\nurl = \"{}\"\npeer = \"acq1.acquirer-card.telepay\"\n\n\
             [frontend]\nmerchant = \"telepay-frontend\"\npurchase_prefix = \"FE1\"\n",
            tls("fe1.frontend.telepay", "\"role:terminal\""),
            provider.url,
            acquirer.url
        ),
    )
    .await;
    (provider, acquirer, front_end)
}

/// Terminal `t1` with the software card `cb` (PIN 1234), calling `front_end`.
fn terminal(
    dir: &Path,
    front_end: &str,
) -> RemoteTerminal<impl telepay::emv::CardChannel + Send + 'static, ScriptedUser> {
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
            payer: PayerDevice::new(terminal, card, ScriptedUser::with_pin("1234")),
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
