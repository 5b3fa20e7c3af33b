//! The network deployment as a user runs it: `telepay serve provider|acquirer-card|
//! frontend --config FILE`, each its own process on 127.0.0.1 with its own certificate,
//! and `telepay purchase --frontend URL` as the terminal, with the software card.

mod common;
use common::TempDir;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use telepay::net::pki::{self, InitOptions};

/// A `telepay serve` process, stopped with SIGTERM when dropped.
struct Served {
    child: Child,
    url: String,
}

impl Served {
    /// Starts `telepay serve ROLE --config DIR/NAME.toml` (written from `toml`) and
    /// reads the address it listens on from its first line.
    fn start(dir: &Path, name: &str, role: &str, toml: &str) -> Served {
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(&config, toml).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_telepay"))
            .args(["serve", role, "--config"])
            .arg(&config)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("telepay serve runs");
        let mut first = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut first)
            .unwrap();
        let url = first
            .trim()
            .rsplit(' ')
            .next()
            .filter(|url| url.starts_with("https://"))
            .unwrap_or_else(|| panic!("{role}: {first:?}"))
            .to_owned();
        Served { child, url }
    }

    /// SIGKILL: the process dies wherever it was, mid-call or mid-transaction.
    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::mem::forget(self);
    }

    /// SIGTERM, then the exit status.
    fn stop(mut self) -> Option<i32> {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let status = self.child.wait().ok().and_then(|status| status.code());
        std::mem::forget(self);
        status
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The certificate name of front-end `fe1`.
const FE1: &str = "fe1.frontend.telepay";

fn tls(name: &str, accept: &str) -> String {
    format!(
        "listen = \"127.0.0.1:0\"\n[tls]\ncert = \"pki/{name}.pem\"\nkey = \"pki/{name}-key.pem\"\n\
         ca = \"pki/ca.pem\"\naccept = [{accept}]\n"
    )
}

/// The demo peers' test PKI in `dir`, then service server p1 and card acquirer acq1
/// (its journal at `journal`, from `dir`), each its own process.
fn provider_and_acquirer(dir: &TempDir, journal: &str) -> (Served, Served) {
    pki::init(
        &dir.file("pki"),
        &pki::demo_peers(),
        &InitOptions::default(),
    )
    .unwrap();
    let provider = Served::start(
        dir.path(),
        "p1",
        "provider",
        &tls("p1.provider.telepay", "\"role:frontend\""),
    );
    let acquirer = Served::start(
        dir.path(),
        "acq1",
        "acquirer-card",
        &format!(
            "{}\n[acquirer_card]\njournal = \"{journal}\"\n",
            tls("acq1.acquirer-card.telepay", "\"role:frontend\"")
        ),
    );
    (provider, acquirer)
}

/// `telepay purchase` as terminal `terminal` through `front_ends` (URL and certificate
/// name each, the first first), the card's counters in `data`.
fn purchase(dir: &Path, front_ends: &[(&str, &str)], terminal: &str, data: &Path) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_telepay"));
    command.args(["purchase", "--terminal", terminal]);
    for (url, name) in front_ends {
        command.args(["--frontend", url, "--frontend-name", name]);
    }
    command
        .arg("--pki")
        .arg(dir.join("pki"))
        .arg("--pin-stdin")
        .env_remove("TELEPAY_READER")
        .env("TELEPAY_DATA_DIR", data)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(b"1234\n")?;
            child.wait_with_output()
        })
        .expect("telepay purchase runs")
}

#[test]
fn serve_three_roles_and_buy_from_a_terminal_over_mutual_tls() {
    let dir = TempDir::new("network-cli");
    let (provider, acquirer) = provider_and_acquirer(&dir, "acq1/acquirer-journal.sqlite");
    let front_end = Served::start(
        dir.path(),
        "fe1",
        "frontend",
        &format!(
            "{}\n[[route]]\nparty = \"server:demo-publisher\"\nurl = \"{}\"\npeer = \"p1.provider.telepay\"\n\n\
             [[route]]\nparty = \"acquirer:bank-card-acquirer\"\nurl = \"{}\"\npeer = \"acq1.acquirer-card.telepay\"\n\n\
             [frontend]\nmerchant = \"telepay-frontend\"\npurchase_prefix = \"FE1\"\n",
            tls("fe1.frontend.telepay", "\"role:terminal\""),
            provider.url,
            acquirer.url
        ),
    );

    // Two purchases from terminal t1 (each run numbers its requests afresh), one from
    // t2, with the same card: its counters (in the data directory) go with it.
    let card = dir.file("card");
    for terminal in ["t1", "t1", "t2"] {
        let output = purchase(dir.path(), &[(&front_end.url, FE1)], terminal, &card);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(0),
            "stdout:\n{stdout}\nstderr:\n{stderr}"
        );
        assert!(stdout.contains("delivered: market-report-2026"), "{stdout}");
        assert!(stdout.contains("card: Tc"), "{stdout}");
    }

    // A first front-end that does not answer at all: the terminal moves to the one
    // standing by, with nothing paid to cancel, and buys there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nobody = format!("https://{}", closed.local_addr().unwrap());
    drop(closed);
    let output = purchase(
        dir.path(),
        &[(&nobody, "fe2.frontend.telepay"), (&front_end.url, FE1)],
        "t1",
        &card,
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("lost; moving to"), "{stdout}");
    assert!(stdout.contains("delivered: market-report-2026"), "{stdout}");
    assert!(
        stdout.contains("(after 1 move(s) to another front-end)"),
        "{stdout}"
    );

    // A terminal certificate the front-end was not told of is refused at the handshake:
    // the acquirer accepts front-ends only.
    let output = purchase(
        dir.path(),
        &[(&acquirer.url, FE1)],
        "t1",
        &dir.file("astray"),
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_ne!(output.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("TLS"), "{stdout}");

    for served in [front_end, acquirer, provider] {
        assert_eq!(served.stop(), Some(0));
    }
    // The acquirer's journal is the embedded one's file: `telepay acquirer` reads it.
    let listed = Command::new(env!("CARGO_BIN_EXE_telepay"))
        .args(["acquirer", "journal", "--data-dir"])
        .arg(dir.file("acq1"))
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert_eq!(listed.matches("FE1-").count(), 4, "{listed}");
}

/// An acquirer process killed (SIGKILL) while eight terminals buy: the front-end's
/// calls that were under way at acq1 — F recorded or not, G sent or not — are retried
/// on acq2, which serves the same journal; afterwards the journal's authorised
/// payments are exactly those of the delivered purchases, once each.
#[test]
fn an_acquirer_killed_mid_authorisation_loses_and_doubles_nothing() {
    use std::time::Duration;
    use telepay::messages::{ProviderId, ServiceId, TerminalId};
    use telepay::net::link::LinkOptions;
    use telepay::net::pki::PeerName;
    use telepay::net::switchboard::Route;
    use telepay::net::terminal::RemoteTerminal;
    use telepay::terminal::card_module::{CardModule, TerminalData};
    use telepay::terminal::payer::{PayerDevice, ScriptedUser};

    let dir = TempDir::new("network-kill");
    let names: Vec<String> = (1..=8).map(|n| format!("k{n}")).collect();
    let mut peers = pki::demo_peers();
    peers.extend(
        names
            .iter()
            .map(|name| PeerName::from_argument(&format!("terminal:{name}")).unwrap()),
    );
    pki::init(&dir.file("pki"), &peers, &InitOptions::default()).unwrap();
    let provider = Served::start(
        dir.path(),
        "p1",
        "provider",
        &tls("p1.provider.telepay", "\"role:frontend\""),
    );
    let acquirer = |name: &str| {
        Served::start(
            dir.path(),
            name,
            "acquirer-card",
            &format!(
                "{}\n[acquirer_card]\njournal = \"journal.sqlite\"\n",
                tls(
                    &format!("{name}.acquirer-card.telepay"),
                    "\"role:frontend\""
                )
            ),
        )
    };
    let acq1 = acquirer("acq1");
    let acq2 = acquirer("acq2");
    let front_end = Served::start(
        dir.path(),
        "fe1",
        "frontend",
        &format!(
            "{}\n[[route]]\nparty = \"server:demo-publisher\"\nurl = \"{}\"\npeer = \"p1.provider.telepay\"\n\n\
             [[route]]\nparty = \"acquirer:bank-card-acquirer\"\nurl = \"{}\"\npeer = \"acq1.acquirer-card.telepay\"\n\n\
             [[route]]\nparty = \"acquirer:bank-card-acquirer\"\nurl = \"{}\"\npeer = \"acq2.acquirer-card.telepay\"\n\n\
             [frontend]\nmerchant = \"telepay-frontend\"\npurchase_prefix = \"FE1\"\n",
            tls("fe1.frontend.telepay", "\"role:terminal\""),
            provider.url,
            acq1.url,
            acq2.url
        ),
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let pki_dir = dir.file("pki");
    let terminals: Vec<_> = names
        .iter()
        .enumerate()
        .map(|(index, name)| {
            let card = telepay::testing::cb_card(dir.path(), 500 + index as u32).unwrap();
            let terminal = TerminalId::from(name.as_str());
            RemoteTerminal::from_pki(
                &pki_dir,
                name,
                vec![Route {
                    url: front_end.url.clone(),
                    peer: PeerName::from_dns_name("fe1.frontend.telepay").unwrap(),
                }],
                PayerDevice::new(
                    terminal,
                    CardModule::new(card, TerminalData::france()),
                    ScriptedUser::with_pin("1234"),
                ),
                LinkOptions::default(),
            )
            .unwrap()
        })
        .collect();
    let load = runtime.spawn(telepay::net::load::run(
        terminals,
        ProviderId::from("demo-publisher"),
        ServiceId::from("market-report-2026"),
        Duration::from_secs(6),
        Duration::from_secs(30),
    ));
    std::thread::sleep(Duration::from_secs(2));
    acq1.kill();
    let report = runtime.block_on(load).unwrap();
    for served in [front_end, acq2, provider] {
        assert_eq!(served.stop(), Some(0));
    }

    let delivered = common::delivered_payments(&report);
    assert!(delivered.len() > 20, "{} delivered", delivered.len());
    let authorised = common::authorised_payments(&dir.file("journal.sqlite"));
    let failures: Vec<_> = report
        .samples
        .iter()
        .filter_map(|s| s.failure.clone())
        .collect();
    println!(
        "{} purchases, {} delivered, failures: {failures:?}",
        report.samples.len(),
        delivered.len()
    );
    assert_eq!(authorised, delivered, "failures: {failures:?}");
}

/// The person at the payer device who confirms and types the PIN, and whose first
/// confirmation freezes the service server (SIGSTOP): the front-end that takes that
/// payment is then caught between the acquirer's G and the service it orders, with
/// the terminal still waiting for H — the moment the test kills it.
struct FreezingUser {
    provider: u32,
    frozen: bool,
}

impl telepay::terminal::payer::PayerUser for FreezingUser {
    fn confirm(&mut self, _: telepay::terminal::payer::Solicitation<'_>) -> bool {
        if !self.frozen {
            self.frozen = true;
            signal("-STOP", self.provider);
        }
        true
    }

    fn pin(
        &mut self,
        _: telepay::terminal::payer::Solicitation<'_>,
    ) -> Option<zeroize::Zeroizing<String>> {
        Some(zeroize::Zeroizing::new("1234".into()))
    }
}

fn signal(signal: &str, pid: u32) {
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {signal} {pid}");
}

/// Every transaction of the journal at `path`: (payment, state, amount).
fn journal_entries(path: &Path) -> Vec<(String, String, Option<u64>)> {
    use telepay::acquirer::journal::{Journal, JournalError, TransactionFilter};
    let Ok(journal) = Journal::open(path) else {
        return Vec::new();
    };
    let mut entries = Vec::new();
    journal
        .transactions::<JournalError>(&TransactionFilter::default(), |entry| {
            entries.push((
                entry.payment.0.to_string(),
                format!("{:?}", entry.state),
                entry.amount_minor,
            ));
            Ok(())
        })
        .expect("the journal lists");
    entries
}

#[test]
fn a_front_end_killed_mid_purchase_the_terminal_moves_to_the_other_and_is_charged_once() {
    front_end_killed_mid_purchase(false);
}

/// The same, with a front-end that is not running between the killed one and the one
/// that serves: the cancellation cannot reach it, and the terminal moves on to the next.
#[test]
fn a_front_end_killed_mid_purchase_the_terminal_moves_past_a_dead_one_and_is_charged_once() {
    front_end_killed_mid_purchase(true);
}

/// fe1 is killed after the acquirer authorised its payment and before the terminal got
/// H; the terminal moves to the next front-end (past a dead one when `dead_between`),
/// has the card's payment cancelled there, and buys again.
fn front_end_killed_mid_purchase(dead_between: bool) {
    use std::time::{Duration, Instant};
    use telepay::messages::{ProviderId, ServiceId, TerminalId};
    use telepay::net::link::LinkOptions;
    use telepay::net::pki::PeerName;
    use telepay::net::switchboard::Route;
    use telepay::net::terminal::RemoteTerminal;
    use telepay::terminal::card_module::{CardModule, TerminalData};
    use telepay::terminal::client::RequestResult;
    use telepay::terminal::payer::{PayerDevice, PaymentState};

    let dir = TempDir::new("network-fe-kill");
    let (provider, acquirer) = provider_and_acquirer(&dir, "journal.sqlite");
    let front_end = |name: &str| {
        Served::start(
            dir.path(),
            name,
            "frontend",
            &format!(
                "{}\n[[route]]\nparty = \"server:demo-publisher\"\nurl = \"{}\"\npeer = \"p1.provider.telepay\"\n\n\
                 [[route]]\nparty = \"acquirer:bank-card-acquirer\"\nurl = \"{}\"\npeer = \"acq1.acquirer-card.telepay\"\n\n\
                 [frontend]\nmerchant = \"telepay-frontend\"\npurchase_prefix = \"{}\"\n",
                tls(&format!("{name}.frontend.telepay"), "\"role:terminal\""),
                provider.url,
                acquirer.url,
                name.to_uppercase(),
            ),
        )
    };
    let fe1 = front_end("fe1");
    let fe2 = front_end("fe2");
    let route = |served: &Served, name: &str| Route {
        url: served.url.clone(),
        peer: PeerName::from_dns_name(&format!("{name}.frontend.telepay")).unwrap(),
    };
    let mut routes = vec![route(&fe1, "fe1"), route(&fe2, "fe2")];
    let dead_url = dead_between.then(|| {
        // A port nothing listens on: a connection there is refused at once.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .unwrap()
            .port();
        let url = format!("https://127.0.0.1:{port}");
        routes.insert(
            1,
            Route {
                url: url.clone(),
                peer: PeerName::from_dns_name("fe3.frontend.telepay").unwrap(),
            },
        );
        url
    });
    let terminal = RemoteTerminal::from_pki(
        &dir.file("pki"),
        "t1",
        routes,
        PayerDevice::new(
            TerminalId::from("t1"),
            CardModule::new(
                telepay::testing::cb_card(dir.path(), 900).unwrap(),
                TerminalData::france(),
            ),
            FreezingUser {
                provider: provider.child.id(),
                frozen: false,
            },
        ),
        // Longer than the test takes to kill fe1: the call carrying E must still be
        // waiting when fe1 dies, not be sent again to it.
        LinkOptions {
            call_timeout: Duration::from_secs(20),
            ..LinkOptions::default()
        },
    )
    .unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let terminal = std::sync::Arc::new(terminal);
    let buying = {
        let terminal = std::sync::Arc::clone(&terminal);
        runtime.spawn(async move {
            terminal
                .purchase(
                    ProviderId::from("demo-publisher"),
                    ServiceId::from("market-report-2026"),
                    None,
                    Duration::from_secs(90),
                )
                .await
        })
    };

    // fe1 took E, and the acquirer authorised it; fe1 is now stuck ordering the
    // service from the frozen server, and the terminal has no H yet.
    let journal = dir.file("journal.sqlite");
    let start = Instant::now();
    let first = loop {
        let entries = journal_entries(&journal);
        if let Some(first) = entries.first() {
            break first.clone();
        }
        if start.elapsed() > Duration::from_secs(30) || buying.is_finished() {
            let run = runtime.block_on(buying).unwrap();
            panic!(
                "the acquirer never authorised the first payment: {:?}\n{}",
                run.result,
                run.troubles.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(first.1, "Authorised", "{first:?}");
    assert!(first.0.starts_with("FE1"), "{first:?}");
    let fe1_url = fe1.url.clone();
    fe1.kill();
    signal("-CONT", provider.child.id());

    let run = runtime.block_on(buying).unwrap();
    let troubles = run.troubles.join("\n");
    assert!(
        matches!(run.result, Some(RequestResult::Delivered(_))),
        "{:?}\n{troubles}",
        run.result
    );
    match &dead_url {
        None => {
            assert_eq!(run.failovers, 1, "{troubles}");
            assert!(
                troubles.contains(&format!("{fe1_url} lost; moving to {}", fe2.url)),
                "{troubles}"
            );
        }
        Some(dead) => {
            assert_eq!(run.failovers, 2, "{troubles}");
            assert!(
                troubles.contains(&format!("{fe1_url} lost; moving to {dead}")),
                "{troubles}"
            );
            assert!(
                troubles.contains(&format!("{dead} unreachable; moving to {}", fe2.url)),
                "{troubles}"
            );
        }
    }
    assert_eq!(terminal.front_end(), Some(fe2.url.as_str()));

    // The journal: fe1's payment reversed on the card's AAC, fe2's authorised — the
    // user is charged once.
    let entries = journal_entries(&journal);
    let states: Vec<(&str, &str)> = entries
        .iter()
        .map(|(payment, state, _)| (&payment[..3], state.as_str()))
        .collect();
    assert_eq!(states, [("FE1", "Reversed"), ("FE2", "Authorised")]);
    let charged: u64 = entries
        .iter()
        .filter(|(_, state, _)| state == "Authorised")
        .filter_map(|(_, _, amount)| *amount)
        .sum();
    assert_eq!(Some(charged), entries[1].2, "one payment's amount");

    // The payer device: the first payment abandoned and not charged, the second
    // completed with the card's TC.
    terminal.with_roles(|roles| {
        let states: Vec<String> = roles
            .payer
            .payments()
            .map(|(payment, state)| match state {
                PaymentState::Abandoned {
                    outcome: Some(outcome),
                    ..
                } if outcome.not_charged() => format!("{}: abandoned", &payment.0[..3]),
                PaymentState::Completed(completion) => {
                    format!("{}: {:?}", &payment.0[..3], completion.kind)
                }
                other => format!("{payment}: {other:?}"),
            })
            .collect();
        assert_eq!(states, ["FE1: abandoned", "FE2: Tc"]);
    });
    drop(fe2);
}

/// Front-end names are checked before anything is opened: an error naming the option.
#[test]
fn front_end_names_are_checked_before_anything_is_opened() {
    let dir = TempDir::new("network-cli-names");
    for (args, expected) in [
        (
            &[
                "--frontend",
                "https://127.0.0.1:1",
                "--frontend-name",
                "acq1.acquirer-card.telepay",
            ][..],
            "acq1.acquirer-card.telepay",
        ),
        (
            &[
                "--frontend",
                "https://127.0.0.1:1",
                "--frontend",
                "https://127.0.0.1:2",
                "--frontend-name",
                FE1,
            ][..],
            "one certificate name for each --frontend",
        ),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_telepay"))
            .arg("purchase")
            .args(args)
            .arg("--pki")
            .arg(dir.file("pki"))
            .env("TELEPAY_DATA_DIR", dir.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("--frontend-name"), "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
    }
}
