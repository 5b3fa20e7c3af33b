//! Incremental payment (claim 10) on the whole embedded system, through crashes of the
//! front-end: the wallet acquirer keeps its accounts in an SQLite file, the front-end
//! keeps the payments it admitted in an SQLite session log, and a crash replaces the
//! front-end by a new one opened on the same log (a new purchase prefix, as a restarted
//! front-end must take), which settles what the old one left open (`Recovery::Settle`).
//!
//! The property: for any sequence of payments, session starts and ends, reloads and
//! crashes, the account's balance is its credits less the payments the acquirer kept,
//! never negative, with the provisions within it; each purchase is delivered or refused
//! as a model of the rules says; and once every session is ended or recovered, the
//! acquirer has debited exactly the wallet payments whose service the client received,
//! each once. Three plain tests show the same on fixed runs: a provision exceeded
//! mid-session, a session end, a crash mid-session.
//!
//! The acquirer's own property (its rules and store alone) is in `wallet_acquirer.rs`.

mod common;

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;

use common::TempDir;
use p256::ecdsa::SigningKey;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use telepay::acquirer::wallet::{
    AccountKey, AccountState, Credit, CreditReference, WalletAcquirer, WalletStore,
};
use telepay::frontend::sessions::{Recovery, SqliteSessionLog};
use telepay::frontend::{FrontEnd, SeededEntropy};
use telepay::messages::{
    AcquirerId, Currency, Envelope, Failure, Means, Message, Money, PaymentId, RefusalReason,
    ServiceId, SessionClosed, SessionId, SettlementResult, Timestamp,
};
use telepay::purchase::embedded::{PurchaseRun, TERMINAL, WALLET_ACQUIRER};
use telepay::purchase::{Faults, Role, VirtualClock};
use telepay::terminal::client::RequestResult;
use telepay::terminal::payer::{MeansChoice, WalletSigner};
use telepay::testing::{DemoNetwork, demo_network};

/// 2026-11-25 10:30:00 UTC.
const START: Timestamp = Timestamp(1_795_602_600_000);

/// The cheap items of the demo catalogue, with their prices in euro cents.
const SERVICES: [(&str, u64); 3] = [
    ("marine-weather-live", 50),
    ("market-report-2026", 250),
    ("cup-final-replay", 390),
];

/// How many messages a flush may deliver before the roles are taken to loop.
const FLUSH_LIMIT: usize = 1_000;

fn eur(minor: u64) -> Money {
    Money::new(minor, Currency::EUR)
}

fn price(service: &str) -> u64 {
    SERVICES
        .iter()
        .find(|(name, _)| *name == service)
        .map(|(_, minor)| *minor)
        .unwrap_or_else(|| panic!("{service} is not one of the test's items"))
}

/// A wallet payment the client device got its service for.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Delivered {
    payment: PaymentId,
    minor: u64,
    sequence: u64,
}

/// What one purchase came to.
#[derive(Debug)]
struct Paid {
    run: PurchaseRun,
    /// The wallet payment, when the client received the service paid by it.
    delivered: Option<Delivered>,
}

impl Paid {
    fn failure(&self) -> Option<&Failure> {
        match &self.run.result {
            Some(RequestResult::Failed(failure)) => Some(failure),
            _ => None,
        }
    }
}

/// The acquirer's books for the account, read from its store.
#[derive(Debug)]
struct Books {
    state: AccountState,
    /// The payments the acquirer kept (debited), by identifier.
    kept: BTreeMap<PaymentId, u64>,
}

/// The real system: the demo network paying from the wallet, its front-end's session
/// log and the wallet's store in files of a temporary directory.
struct System {
    network: DemoNetwork,
    session_log: PathBuf,
    account: AccountKey,
    now: Timestamp,
    restarts: u32,
    reloads: u32,
    /// Every wallet payment whose service the client received, in order.
    delivered: Vec<Delivered>,
    /// Every message the runs delivered, in order.
    seen: Vec<Envelope>,
}

impl System {
    /// The account of the payer device's key holds `funds` cents; the front-end asks
    /// `provision` cents of provision per session.
    fn new(dir: &TempDir, funds: u64, provision: u64) -> System {
        let key = SigningKey::from_slice(&[0x5A; 32]).unwrap();
        let account = AccountKey::new(key.verifying_key());
        let mut store = WalletStore::open(dir.file("wallet.sqlite")).unwrap();
        store.open_account(&account, Currency::EUR, START).unwrap();
        let wallet = WalletAcquirer::new(AcquirerId::from(WALLET_ACQUIRER), store);
        let network = demo_network("sim:cb?seed=1", "1234", 1)
            .unwrap()
            .with_wallet(wallet)
            .map_payer(|payer| {
                payer
                    .with_wallet(WalletSigner::from_signing_key(key))
                    .with_means(MeansChoice::Fixed(Means::VirtualWallet))
            });
        let mut system = System {
            network,
            session_log: dir.file("sessions.sqlite"),
            account,
            now: START,
            restarts: 0,
            reloads: 0,
            delivered: Vec::new(),
            seen: Vec::new(),
        };
        system.restart(provision);
        if funds > 0 {
            system.reload(funds);
        }
        system
    }

    /// Replaces the front-end by one on the session log, with the next purchase prefix
    /// (`P0`, `P1`…) and the same configuration but for the provision.
    fn restart(&mut self, provision: u64) {
        let mut config = self.network.front_end.config().clone();
        config.purchase_prefix = format!("P{}", self.restarts);
        config.session_provision = provision;
        let log = SqliteSessionLog::open(&self.session_log).unwrap();
        self.network.front_end =
            FrontEnd::new(config, SeededEntropy::new(u64::from(self.restarts)))
                .with_session_log(Box::new(log), Recovery::Settle)
                .unwrap();
        self.restarts += 1;
    }

    /// The front-end dies (its state in memory is lost, its log stays) and a new one
    /// starts on the log; the settlements it recovers are sent and answered. Returns the
    /// messages that flush delivered.
    fn crash(&mut self) -> Vec<Envelope> {
        let provision = self.network.front_end.config().session_provision;
        self.restart(provision);
        self.flush()
    }

    fn wallet(&self) -> &WalletAcquirer {
        self.network.wallet.as_ref().unwrap()
    }

    /// A clock for the next run; the next run starts a minute later.
    fn clock(&mut self) -> VirtualClock {
        let clock = VirtualClock::new(self.now, 10);
        self.now = self.now.plus_millis(60_000);
        clock
    }

    fn start_session(&mut self, name: &str) {
        self.network.open_session(SessionId::from(name));
    }

    /// Buys `service` from the terminal.
    fn pay(&mut self, service: &str) -> Paid {
        let clock = self.clock();
        let run = self
            .network
            .purchase(&ServiceId::from(service), None, clock, Faults::none())
            .unwrap();
        self.seen
            .extend(run.log.entries.iter().map(|entry| entry.envelope.clone()));
        let signed = run
            .log
            .entries
            .iter()
            .find_map(|entry| match &entry.envelope.message {
                Message::Transaction(e) => e.means.wallet().cloned(),
                _ => None,
            });
        let delivered = match (&run.result, signed) {
            (Some(RequestResult::Delivered(k)), Some(signed)) => {
                assert_eq!(k.paid, signed.payment.amount, "K says what E paid");
                Some(Delivered {
                    payment: signed.payment.payment.clone(),
                    minor: signed.payment.amount.minor,
                    sequence: signed.payment.sequence,
                })
            }
            _ => None,
        };
        self.delivered.extend(delivered.clone());
        Paid { run, delivered }
    }

    /// Ends the client's session; the front-end's answer, if it gave one.
    fn end_session(&mut self) -> (Vec<Envelope>, Option<SessionClosed>) {
        let clock = self.clock();
        let run = self.network.end_session(clock, Faults::none()).unwrap();
        let sent: Vec<Envelope> = run
            .log
            .entries
            .iter()
            .map(|entry| entry.envelope.clone())
            .collect();
        self.seen.extend(sent.iter().cloned());
        // Read from this run, not from the client device, which keeps the first answer
        // per session name and names may be reused after a crash.
        let closed = sent.iter().find_map(|envelope| match &envelope.message {
            Message::SessionClosed(closed) => Some(closed.clone()),
            _ => None,
        });
        (sent, closed)
    }

    /// Credits the account with `minor` cents, under a new reference.
    fn reload(&mut self, minor: u64) {
        self.reloads += 1;
        let credit = Credit {
            reference: CreditReference::from(format!("reload-{}", self.reloads)),
            account: self.account.clone(),
            amount: eur(minor),
        };
        let now = self.now;
        self.network
            .wallet
            .as_mut()
            .unwrap()
            .credit(&credit, now)
            .unwrap();
    }

    /// Delivers nothing new: fires the roles' deadlines and delivers what follows, until
    /// no role waits for anything. What a restarted front-end needs to send the
    /// settlements it recovered (the embedded runner starts only from a first message).
    fn flush(&mut self) -> Vec<Envelope> {
        let network = &mut self.network;
        let mut roles: Vec<&mut dyn Role> = vec![
            &mut network.client,
            &mut network.payer,
            &mut network.front_end,
            &mut network.server,
            &mut network.acquirer,
        ];
        if let Some(wallet) = network.wallet.as_mut() {
            roles.push(wallet);
        }
        let mut now = self.now;
        let mut queue: VecDeque<Envelope> = VecDeque::new();
        let mut delivered = Vec::new();
        for _ in 0..FLUSH_LIMIT {
            if let Some(envelope) = queue.pop_front() {
                let role = roles
                    .iter_mut()
                    .find(|role| role.party() == envelope.to)
                    .unwrap_or_else(|| panic!("nobody is {}", envelope.to));
                queue.extend(
                    role.handle(now, &envelope.from, envelope.message.clone())
                        .sent,
                );
                now = now.plus_millis(10);
                delivered.push(envelope);
                continue;
            }
            let Some(due) = roles.iter().filter_map(|role| role.poll_timeout()).min() else {
                self.now = now.plus_millis(60_000);
                self.seen.extend(delivered.iter().cloned());
                return delivered;
            };
            // A recovered settlement is due at the dawn of time: it goes now.
            now = now.max(due).plus_millis(1);
            for role in roles.iter_mut() {
                if role.poll_timeout().is_some_and(|due| due <= now) {
                    queue.extend(role.handle_timeout(now).sent);
                }
            }
        }
        panic!("the flush went past {FLUSH_LIMIT} steps: the roles are looping");
    }

    /// The acquirer's books, and what must hold of them at any time: the balance is the
    /// credits less the payments kept, never negative, the provisions within it; no
    /// payment is kept twice, and every one kept is one the client received its
    /// service for, at the amount it was delivered for, as signed.
    fn books(&self) -> Result<Books, TestCaseError> {
        let wallet = self.wallet();
        let state = wallet.balance(&self.account).unwrap().unwrap();
        let credits: u64 = wallet
            .store()
            .credits(&self.account)
            .unwrap()
            .iter()
            .map(|credit| credit.amount.minor)
            .sum();
        let stored = wallet.store().payments(&self.account).unwrap();
        let debits: u64 = stored
            .iter()
            .map(|kept| kept.signed.payment.amount.minor)
            .sum();
        prop_assert!(
            debits <= credits,
            "{} debited, only {} credited",
            debits,
            credits
        );
        prop_assert_eq!(state.balance, credits - debits);
        prop_assert!(
            state.reserved <= state.balance,
            "{} reserved of {}",
            state.reserved,
            state.balance
        );
        let mut kept = BTreeMap::new();
        for payment in &stored {
            prop_assert!(payment.signed.verify().is_ok());
            let id = payment.signed.payment.payment.clone();
            let minor = payment.signed.payment.amount.minor;
            prop_assert!(
                kept.insert(id.clone(), minor).is_none(),
                "payment {} kept twice",
                id
            );
            let delivered = self.delivered.iter().find(|known| known.payment == id);
            prop_assert_eq!(
                delivered.map(|known| (known.minor, known.sequence)),
                Some((minor, payment.signed.payment.sequence)),
                "payment {} debited: it must be one delivered",
                id
            );
        }
        Ok(Books { state, kept })
    }

    /// Once every session is ended or recovered: nothing reserved, and the payments kept
    /// are exactly the wallet payments delivered, each once.
    fn check_settled(&self) -> Result<Books, TestCaseError> {
        let books = self.books()?;
        prop_assert_eq!(books.state.reserved, 0);
        let delivered: BTreeMap<PaymentId, u64> = self
            .delivered
            .iter()
            .map(|known| (known.payment.clone(), known.minor))
            .collect();
        prop_assert_eq!(delivered.len(), self.delivered.len(), "a payment id reused");
        prop_assert_eq!(&books.kept, &delivered);
        let refused: Vec<&SettlementResult> = self
            .settlement_results()
            .into_iter()
            .filter(|result| !result.refused.is_empty())
            .collect();
        prop_assert!(
            refused.is_empty(),
            "settlements refused payments: {:?}",
            refused
        );
        Ok(books)
    }

    /// Every settlement result the acquirer sent.
    fn settlement_results(&self) -> Vec<&SettlementResult> {
        self.seen
            .iter()
            .filter_map(|envelope| match &envelope.message {
                Message::SettlementResult(result) => Some(result),
                _ => None,
            })
            .collect()
    }
}

/// The segments settled among `messages`, with how many payments each carried.
fn settlements(messages: &[Envelope]) -> Vec<(String, usize)> {
    messages
        .iter()
        .filter_map(|envelope| match &envelope.message {
            Message::SessionSettlement(settlement) => {
                Some((settlement.segment.0.to_string(), settlement.payments.len()))
            }
            _ => None,
        })
        .collect()
}

fn run_messages(paid: &Paid) -> Vec<Envelope> {
    paid.run
        .log
        .entries
        .iter()
        .map(|entry| entry.envelope.clone())
        .collect()
}

fn segment(prefix: &str, session: &str, number: u32) -> String {
    format!("{prefix}/{TERMINAL}/{session}/{number}")
}

/// The provision (3.00 EUR) runs out on the third payment: the front-end settles it and
/// the third payment opens a second one; the end settles the second. Two settlements,
/// exactly the sum debited, nothing left reserved.
#[test]
fn a_provision_exceeded_mid_session_rolls_over_and_the_end_settles_the_sum() {
    let dir = TempDir::new("wallet-sessions-rollover");
    let mut system = System::new(&dir, 2_000, 300);
    system.start_session("evening");
    let first = system.pay("market-report-2026");
    assert!(first.delivered.is_some());
    assert_eq!(
        settlements(&run_messages(&first)),
        [],
        "the first payment opens, nothing to settle"
    );
    let state = system.books().unwrap().state;
    assert_eq!((state.balance, state.reserved), (2_000, 300));

    // 2.50 + 0.50 = 3.00: within the provision, verified by the front-end alone.
    let second = system.pay("marine-weather-live");
    assert!(second.delivered.is_some());
    assert!(
        !run_messages(&second)
            .iter()
            .any(|envelope| matches!(envelope.message, Message::AcquirerTransaction(_))),
        "no F for a payment within the provision"
    );

    // 3.00 + 2.50 > 3.00: the first provision is settled, a second one opened.
    let third = system.pay("market-report-2026");
    assert!(third.delivered.is_some());
    assert_eq!(
        settlements(&run_messages(&third)),
        [(segment("P0", "evening", 1), 2)]
    );
    let books = system.books().unwrap();
    assert_eq!(
        (books.state.balance, books.state.reserved),
        (2_000 - 300, 300)
    );
    assert_eq!(books.kept.len(), 2);

    let (ended, closed) = system.end_session();
    assert_eq!(settlements(&ended), [(segment("P0", "evening", 2), 1)]);
    let closed = closed.expect("the session closed");
    assert_eq!(
        (closed.payments, closed.debited, closed.settled),
        (3, Some(eur(250 + 50 + 250)), true)
    );
    let books = system.check_settled().unwrap();
    assert_eq!(
        (books.state.balance, books.state.reserved),
        (2_000 - 550, 0)
    );
    // Two settlements in all, each payment kept under its provision.
    assert_eq!(system.settlement_results().len(), 2);
    let sessions: Vec<Option<String>> = system
        .wallet()
        .store()
        .payments(&system.account)
        .unwrap()
        .into_iter()
        .map(|kept| kept.session.map(|session| session.0.into()))
        .collect();
    assert_eq!(
        sessions,
        [
            Some(segment("P0", "evening", 1)),
            Some(segment("P0", "evening", 1)),
            Some(segment("P0", "evening", 2)),
        ]
    );
}

/// While the session runs the acquirer only reserves; the end debits exactly the sum of
/// the session's payments, releases the rest, and the log records the provision as
/// settled.
#[test]
fn the_end_of_a_session_settles_exactly_the_sum_of_its_payments() {
    let dir = TempDir::new("wallet-sessions-end");
    let mut system = System::new(&dir, 1_500, 1_000);
    system.start_session("evening");
    let mut sum = 0;
    for (service, _) in SERVICES {
        let paid = system.pay(service);
        assert!(paid.delivered.is_some(), "{service}");
        sum += price(service);
        let books = system.books().unwrap();
        assert_eq!(
            (books.state.balance, books.state.reserved),
            (1_500, 1_000),
            "nothing debited before the end"
        );
        assert!(books.kept.is_empty());
    }
    let (ended, closed) = system.end_session();
    assert_eq!(settlements(&ended), [(segment("P0", "evening", 1), 3)]);
    assert_eq!(
        closed,
        Some(SessionClosed {
            terminal: TERMINAL.into(),
            session: "evening".into(),
            payments: 3,
            debited: Some(eur(sum)),
            settled: true,
        })
    );
    let [result] = system.settlement_results()[..] else {
        panic!("one settlement expected");
    };
    assert_eq!(
        (result.settled, result.debited, result.released),
        (3, eur(sum), eur(1_000 - sum))
    );
    let books = system.check_settled().unwrap();
    assert_eq!(
        (books.state.balance, books.state.reserved),
        (1_500 - sum, 0)
    );
    let log = SqliteSessionLog::open(&system.session_log).unwrap();
    assert_eq!(
        log.is_settled(&SessionId::from(segment("P0", "evening", 1)))
            .unwrap(),
        Some(true)
    );
    // No session open any more: ending again sends nothing.
    let (again, closed) = system.end_session();
    assert!(again.is_empty() && closed.is_none());
}

/// The front-end dies after delivering three payments it verified itself: the acquirer
/// holds only the provision. The front-end restarted on its log settles all three at
/// its first deadline; the session, ended by the crash, takes no more payments; a new
/// session opens a provision under the new prefix.
#[test]
fn a_front_end_crash_mid_session_then_recovery_settles_every_delivered_payment() {
    let dir = TempDir::new("wallet-sessions-crash");
    let mut system = System::new(&dir, 2_000, 1_000);
    system.start_session("evening");
    for (service, _) in SERVICES {
        assert!(system.pay(service).delivered.is_some(), "{service}");
    }
    let sum: u64 = SERVICES.iter().map(|(_, minor)| minor).sum();
    let flushed = system.crash();
    assert_eq!(settlements(&flushed), [(segment("P0", "evening", 1), 3)]);
    let settled: Vec<&SettlementResult> = flushed
        .iter()
        .filter_map(|envelope| match &envelope.message {
            Message::SettlementResult(result) => Some(result),
            _ => None,
        })
        .collect();
    assert_eq!(settled.len(), 1);
    assert_eq!((settled[0].settled, settled[0].debited), (3, eur(sum)));
    assert!(settled[0].refused.is_empty());
    let books = system.check_settled().unwrap();
    assert_eq!(
        (books.state.balance, books.state.reserved),
        (2_000 - sum, 0)
    );
    let log = SqliteSessionLog::open(&system.session_log).unwrap();
    assert_eq!(
        log.is_settled(&SessionId::from(segment("P0", "evening", 1)))
            .unwrap(),
        Some(true)
    );

    // The client still names the session: the restarted front-end settled it, so
    // refuses it; nothing is charged.
    let late = system.pay("marine-weather-live");
    assert!(
        matches!(late.failure(), Some(Failure::BadRequest { reason }) if reason == "session evening has ended"),
        "{:?}",
        late.run.result
    );
    // A new session: a provision under the new front-end's prefix.
    system.start_session("night");
    let paid = system.pay("cup-final-replay");
    assert!(paid.delivered.is_some());
    let asked = run_messages(&paid)
        .into_iter()
        .find_map(|envelope| match envelope.message {
            Message::AcquirerTransaction(f) => f.provision,
            _ => None,
        })
        .expect("F asks for a provision");
    assert_eq!(asked.segment.0, segment("P1", "night", 1));
    let (_, closed) = system.end_session();
    assert_eq!(closed.and_then(|closed| closed.debited), Some(eur(390)));
    let books = system.check_settled().unwrap();
    assert_eq!(books.state.balance, 2_000 - sum - 390);
    // A second restart has nothing left to settle.
    assert_eq!(settlements(&system.crash()), []);
}

/// What the model expects of a purchase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Delivered,
    /// Refused by the front-end: the session has ended (at the client's end, or by a
    /// crash).
    SessionEnded,
    /// Refused by the acquirer: what is available does not cover the payment.
    InsufficientFunds,
}

/// A session as the model's front-end follows it.
#[derive(Debug, Default, Clone)]
struct ModelSession {
    ending: bool,
    /// The open provision: granted, spent.
    open: Option<(u64, u64)>,
    /// Payments and cents settled or to settle, over all its provisions.
    payments: u32,
    debited: u64,
}

/// The rules as the documentation states them, on numbers: what each step must do to
/// the account and to the purchase.
#[derive(Debug, Default)]
struct Model {
    /// The provision the front-end asks per session.
    provision: u64,
    credited: u64,
    debited: u64,
    reserved: u64,
    client: Option<String>,
    front_end: BTreeMap<String, ModelSession>,
}

impl Model {
    fn available(&self) -> u64 {
        self.credited - self.debited - self.reserved
    }

    /// The acquirer settles the provision `(granted, spent)` of `session`.
    fn settle(&mut self, name: &str, (granted, spent): (u64, u64)) {
        self.debited += spent;
        self.reserved -= granted;
        if let Some(session) = self.front_end.get_mut(name) {
            session.debited += spent;
        }
    }

    fn pay(&mut self, minor: u64) -> Expect {
        let Some(name) = self.client.clone() else {
            // Outside a session: debited at once, when available.
            if minor > self.available() {
                return Expect::InsufficientFunds;
            }
            self.debited += minor;
            return Expect::Delivered;
        };
        let session = self.front_end.entry(name.clone()).or_default();
        if session.ending {
            return Expect::SessionEnded;
        }
        if let Some((granted, spent)) = session.open {
            if spent + minor <= granted {
                session.open = Some((granted, spent + minor));
                session.payments += 1;
                return Expect::Delivered;
            }
            // Spent: settled, and this payment opens the next provision.
            session.open = None;
            self.settle(&name, (granted, spent));
        }
        let available = self.available();
        if minor > available {
            return Expect::InsufficientFunds;
        }
        // The provision asked covers the payment; the acquirer grants what is
        // available when that is less.
        let granted = self.provision.max(minor).min(available);
        self.reserved += granted;
        let session = self.front_end.entry(name).or_default();
        session.open = Some((granted, minor));
        session.payments += 1;
        Expect::Delivered
    }

    /// The client ends its session: the [`SessionClosed`] expected, `None` when no end
    /// is sent or the end repeats one the front-end already answered.
    fn end(&mut self) -> Option<(u32, Option<u64>)> {
        let name = self.client.take()?;
        let session = self.front_end.entry(name.clone()).or_default();
        if session.ending {
            return None;
        }
        session.ending = true;
        if let Some(open) = session.open.take() {
            self.settle(&name, open);
        }
        let session = self.front_end.get(&name)?;
        Some((
            session.payments,
            (session.payments > 0).then_some(session.debited),
        ))
    }

    /// The new front-end knows only the sessions with an unsettled provision: it settles
    /// them and takes them as ended.
    fn crash(&mut self) {
        let before = std::mem::take(&mut self.front_end);
        for (name, session) in before {
            if let Some(open) = session.open {
                self.debited += open.1;
                self.reserved -= open.0;
                self.front_end.insert(
                    name,
                    ModelSession {
                        ending: true,
                        ..ModelSession::default()
                    },
                );
            }
        }
    }
}

/// One step of the property.
#[derive(Debug, Clone)]
enum Step {
    /// Buy one of [`SERVICES`].
    Pay(usize),
    /// The front-end crashes and restarts on its log.
    Crash,
    /// The client ends its session.
    EndSession,
    /// The client opens session `s{n}`.
    StartSession(u8),
    /// The account is credited so many cents.
    Reload(u64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => (0..SERVICES.len()).prop_map(Step::Pay),
        1 => Just(Step::Crash),
        2 => Just(Step::EndSession),
        2 => (0u8..3).prop_map(Step::StartSession),
        1 => (1u64..=800).prop_map(Step::Reload),
    ]
}

fn expect_of(paid: &Paid) -> Option<Expect> {
    match (&paid.delivered, paid.failure()) {
        (Some(_), None) => Some(Expect::Delivered),
        (None, Some(Failure::BadRequest { reason })) if reason.ends_with("has ended") => {
            Some(Expect::SessionEnded)
        }
        (
            None,
            Some(Failure::PaymentRefused {
                reason: RefusalReason::InsufficientFunds,
            }),
        ) => Some(Expect::InsufficientFunds),
        _ => None,
    }
}

/// Runs `steps` on the system and the model side by side, checking the books after each
/// step and once everything is settled. With `interleave`, the client may open a session
/// while another is open (leaving that one open at the front-end); without it, it ends
/// the open one first.
fn check_steps(
    funds: u64,
    provision: u64,
    steps: &[Step],
    interleave: bool,
) -> Result<(), TestCaseError> {
    let dir = TempDir::new("wallet-sessions-property");
    let mut system = System::new(&dir, funds, provision);
    let mut model = Model {
        provision,
        credited: funds,
        ..Model::default()
    };
    let end = |system: &mut System, model: &mut Model, index: usize| {
        let expected = model.end();
        let (_, closed) = system.end_session();
        if let Some((payments, debited)) = expected {
            let closed = closed.expect("the session closed");
            prop_assert_eq!(
                (closed.payments, closed.debited, closed.settled),
                (payments, debited.map(eur), true),
                "step {}",
                index
            );
        }
        Ok(())
    };
    for (index, step) in steps.iter().enumerate() {
        match step {
            Step::Pay(item) => {
                let (service, minor) = SERVICES[*item];
                let expected = model.pay(minor);
                let paid = system.pay(service);
                prop_assert_eq!(
                    expect_of(&paid),
                    Some(expected),
                    "step {}: {} gave {:?}",
                    index,
                    service,
                    paid.run.result
                );
            }
            Step::Crash => {
                model.crash();
                system.crash();
            }
            Step::EndSession => end(&mut system, &mut model, index)?,
            Step::StartSession(n) => {
                if !interleave && model.client.is_some() {
                    end(&mut system, &mut model, index)?;
                }
                let name = format!("s{n}");
                model.client = Some(name.clone());
                system.start_session(&name);
            }
            Step::Reload(minor) => {
                model.credited += minor;
                system.reload(*minor);
            }
        }
        let books = system.books()?;
        prop_assert_eq!(
            (books.state.balance, books.state.reserved),
            (model.credited - model.debited, model.reserved),
            "step {}: {:?}",
            index,
            step
        );
    }
    // The end: the client ends its session, the front-end restarts and settles what any
    // session left open.
    end(&mut system, &mut model, steps.len())?;
    model.crash();
    system.crash();
    let books = system.check_settled()?;
    prop_assert_eq!(books.state.balance, model.credited - model.debited);
    let delivered: u64 = system.delivered.iter().map(|known| known.minor).sum();
    prop_assert_eq!(model.debited, delivered);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A client that keeps one session open at a time.
    #[test]
    fn any_payments_and_crashes_keep_the_wallets_books(
        funds in 0u64..=1_200,
        provision in 100u64..=1_200,
        steps in proptest::collection::vec(step(), 1..=25),
    ) {
        check_steps(funds, provision, &steps, false)?;
    }

    /// A client that leaves a session open and starts another on the same account.
    #[test]
    fn interleaved_sessions_and_crashes_keep_the_wallets_books(
        funds in 0u64..=1_200,
        provision in 100u64..=1_200,
        steps in proptest::collection::vec(step(), 1..=25),
    ) {
        check_steps(funds, provision, &steps, true)?;
    }
}

/// The smallest run the interleaving property finds: sessions s0 and s1 of the same
/// account are both open at the front-end; s1 is settled first, which moves the
/// account's last sequence past s0's payment; s0's settlement then refuses that payment
/// although the front-end verified it and the client received its service.
#[test]
fn sessions_interleaved_on_one_account_lose_no_payment() {
    let dir = TempDir::new("wallet-sessions-interleaved");
    let mut system = System::new(&dir, 640, 100);
    system.start_session("s0");
    assert!(system.pay("marine-weather-live").delivered.is_some());
    system.start_session("s1");
    assert!(system.pay("marine-weather-live").delivered.is_some());
    let (_, closed) = system.end_session();
    assert_eq!(closed.and_then(|closed| closed.debited), Some(eur(50)));
    // The client goes back to s0 and ends it: its one payment must be debited.
    system.start_session("s0");
    let (_, closed) = system.end_session();
    let refused: Vec<&SettlementResult> = system
        .settlement_results()
        .into_iter()
        .filter(|result| !result.refused.is_empty())
        .collect();
    assert!(
        refused.is_empty(),
        "settlements refused payments: {refused:#?}"
    );
    assert_eq!(closed.and_then(|closed| closed.debited), Some(eur(50)));
    system.check_settled().unwrap();
}
