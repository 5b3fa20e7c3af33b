//! The roles as network services: the front-end, the service server and the acquirers
//! each served over mutual TLS on 127.0.0.1 (real sockets, real certificates from
//! `pki::init`; `telepay::net::local`), and terminals with the software card calling
//! the front-end.

mod common;
use common::TempDir;

use std::time::Duration;

use telepay::acquirer::journal::{Journal, JournalError, TransactionFilter, TransactionState};
use telepay::acquirer::wallet::{AccountKey, Credit, WalletStore};
use telepay::messages::{Currency, Means, Message, Money, ProviderId, ServiceId, Timestamp};
use telepay::net::local::{LocalDeployment, LocalOptions};
use telepay::terminal::client::RequestResult;
use telepay::terminal::payer::{MeansChoice, ScriptedUser, WalletSigner};

/// Every transaction of a journal file: purchase and state.
fn journal_entries(path: &std::path::Path) -> Vec<(String, TransactionState)> {
    let journal = Journal::open(path).unwrap();
    let mut entries = Vec::new();
    journal
        .transactions::<JournalError>(&TransactionFilter::default(), |entry| {
            entries.push((entry.purchase.clone(), entry.state));
            Ok(())
        })
        .unwrap();
    entries
}

fn card() -> telepay::reader::Transport<Box<dyn telepay::reader::Reader + Send>> {
    telepay::testing::powered("sim:cb").unwrap()
}

const PATIENCE: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_buys_through_a_front_end_provider_and_acquirer_each_its_own_service() {
    let dir = TempDir::new("network-purchase");
    let deployment = LocalDeployment::start(dir.path(), &LocalOptions::default())
        .await
        .unwrap();
    let terminal = deployment
        .terminal("t1", card(), ScriptedUser::with_pin("1234"), |payer| payer)
        .unwrap();

    let run = terminal
        .purchase(
            ProviderId::from("demo-publisher"),
            ServiceId::from("market-report-2026"),
            None,
            PATIENCE,
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
    deployment.stop().await;

    // The acquirer's journal, in its own file, holds the one authorised transaction.
    let recorded = journal_entries(&dir.file("acq1.sqlite"));
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert!(recorded[0].0.starts_with("FE1-"), "{recorded:?}");
    assert_eq!(recorded[0].1, TransactionState::Authorised);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_acquirer_ends_the_purchase_by_the_front_ends_deadline_through_the_mailbox()
{
    let dir = TempDir::new("network-no-acquirer");
    // A port nothing listens on any more.
    let vacant = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let acquirer = format!("https://{}", vacant.local_addr().unwrap());
    drop(vacant);
    let deployment = LocalDeployment::start(
        dir.path(),
        &LocalOptions {
            card_acquirer_urls: vec![acquirer],
            front_end_extra: "acquirer_timeout_ms = 1500\n".into(),
            ..LocalOptions::default()
        },
    )
    .await
    .unwrap();
    let terminal = deployment
        .terminal("t1", card(), ScriptedUser::with_pin("1234"), |payer| payer)
        .unwrap();

    let run = terminal
        .purchase(
            ProviderId::from("demo-publisher"),
            ServiceId::from("market-report-2026"),
            None,
            PATIENCE,
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
    deployment.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wallet_payment_goes_to_the_wallet_acquirer_served_apart() {
    let dir = TempDir::new("network-wallet");
    let key = p256::ecdsa::SigningKey::from_slice(&[0x5A; 32]).unwrap();
    let account = AccountKey::new(key.verifying_key());
    {
        let mut store = WalletStore::open(dir.file("wallet.sqlite")).unwrap();
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
    let deployment = LocalDeployment::start(
        dir.path(),
        &LocalOptions {
            wallet: true,
            ..LocalOptions::default()
        },
    )
    .await
    .unwrap();
    let terminal = deployment
        .terminal("t1", card(), ScriptedUser::with_pin("1234"), |payer| {
            payer
                .with_wallet(WalletSigner::from_signing_key(key))
                .with_means(MeansChoice::Fixed(Means::VirtualWallet))
        })
        .unwrap();

    let run = terminal
        .purchase(
            ProviderId::from("demo-publisher"),
            ServiceId::from("market-report-2026"),
            None,
            PATIENCE,
        )
        .await;

    assert!(
        matches!(run.result, Some(RequestResult::Delivered(_))),
        "{:?}\n{:?}",
        run.result,
        run.troubles
    );
    deployment.stop().await;
    // 2.50 EUR debited from the account, in the wallet acquirer's own file; nothing went
    // to the card acquirer.
    let store = WalletStore::open(dir.file("wallet.sqlite")).unwrap();
    assert_eq!(
        store.account(&account).unwrap().unwrap().balance,
        10_000 - 250
    );
    assert_eq!(journal_entries(&dir.file("acq1.sqlite")), []);
}

async fn buy(
    terminal: &telepay::net::terminal::RemoteTerminal<
        impl telepay::emv::CardChannel + Send + 'static,
        ScriptedUser,
    >,
) -> telepay::net::terminal::RemotePurchase {
    terminal
        .purchase(
            ProviderId::from("demo-publisher"),
            ServiceId::from("market-report-2026"),
            None,
            PATIENCE,
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_one_card_acquirer_process_stops_its_twin_on_the_same_journal_authorises() {
    let dir = TempDir::new("network-two-acquirers");
    let mut deployment = LocalDeployment::start(
        dir.path(),
        &LocalOptions {
            card_acquirers: 2,
            ..LocalOptions::default()
        },
    )
    .await
    .unwrap();
    let terminal = deployment
        .terminal("t1", card(), ScriptedUser::with_pin("1234"), |payer| payer)
        .unwrap();
    // Taken in turn: one purchase through each.
    for _ in 0..2 {
        let run = buy(&terminal).await;
        assert!(
            matches!(run.result, Some(RequestResult::Delivered(_))),
            "{:?}",
            run.troubles
        );
    }
    // acq1 stops; the front-end's calls to it fail and go to acq2.
    deployment.card_acquirers.remove(0).stop().await;
    for _ in 0..3 {
        let run = buy(&terminal).await;
        assert!(
            matches!(run.result, Some(RequestResult::Delivered(_))),
            "{:?}",
            run.troubles
        );
        assert!(run.troubles.is_empty(), "{:?}", run.troubles);
    }
    deployment.stop().await;
    let payments = common::authorised_payments(&dir.file("acq1.sqlite"));
    assert_eq!(payments.len(), 5, "{payments:?}");
}

/// A TCP relay that holds each chunk from the server for `delay` before passing it on:
/// a slow acquirer. It listens at once; where it relays to is given later, through the
/// cell it returns (known only once the acquirer is served).
async fn slow_relay(delay: Duration) -> (String, std::sync::Arc<tokio::sync::OnceCell<String>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let target = std::sync::Arc::new(tokio::sync::OnceCell::<String>::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let relay_to = std::sync::Arc::clone(&target);
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Some(url) = relay_to.get() else { continue };
            let Ok(server) =
                tokio::net::TcpStream::connect(url.trim_start_matches("https://")).await
            else {
                continue;
            };
            let (mut client_read, mut client_write) = client.into_split();
            let (mut server_read, mut server_write) = server.into_split();
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
            });
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 16 * 1024];
                while let Ok(read) = server_read.read(&mut buffer).await {
                    if read == 0 {
                        break;
                    }
                    tokio::time::sleep(delay).await;
                    if client_write.write_all(&buffer[..read]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (format!("https://{address}"), target)
}

/// The terminal's call with E gives up (its deadline, 1 s, passes while the front-end
/// waits for a slow acquirer); the front-end's handling goes on regardless, and H and
/// K, for a caller who hung up, wait in the terminal's mailbox: the purchase completes,
/// paid once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_for_a_terminal_that_hung_up_wait_in_its_mailbox() {
    let dir = TempDir::new("network-hung-up");
    let (relay, target) = slow_relay(Duration::from_millis(700)).await;
    let deployment = LocalDeployment::start(
        dir.path(),
        &LocalOptions {
            card_acquirer_urls: vec![relay],
            terminal_link: Some(telepay::net::link::LinkOptions {
                call_timeout: Duration::from_secs(1),
                attempts: 1,
                backoff: Duration::from_millis(50),
            }),
            ..LocalOptions::default()
        },
    )
    .await
    .unwrap();
    target
        .set(deployment.card_acquirers[0].url.clone())
        .unwrap();
    let terminal = deployment
        .terminal("t1", card(), ScriptedUser::with_pin("1234"), |payer| payer)
        .unwrap();

    let run = buy(&terminal).await;

    assert!(
        matches!(run.result, Some(RequestResult::Delivered(_))),
        "{:?}\n{:?}",
        run.result,
        run.troubles
    );
    // The call with E did time out: the terminal says so, and got H and K by mail.
    assert!(
        run.troubles
            .iter()
            .any(|trouble| trouble.contains("E to frontend")),
        "{:?}",
        run.troubles
    );
    deployment.stop().await;
    assert_eq!(
        common::authorised_payments(&dir.file("acq1.sqlite")).len(),
        1
    );
}
