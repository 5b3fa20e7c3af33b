//! The virtual wallet on the command line, as a user runs it (claims 4–6, 10, 12):
//! `telepay wallet open|reload|balance`, `telepay purchase --means wallet|auto`,
//! `telepay session start|pay|totals|end` and `telepay users`.
//!
//! Each test has its own data directory (`TELEPAY_DATA_DIR`) and keys sealed at the
//! weak test KDF cost (`TELEPAY_KEYSTORE_TEST_COST=1`), so that the debug binary runs
//! fast. Every process is a new front-end and new acquirers over the same files: what
//! one run leaves (an account, a provision, a session's payments) the next one reads.

mod common;
use common::TempDir;

use std::path::Path;
use std::process::{Command, Output};

/// alice's key-store PIN in every test.
const PIN: &str = "correct horse";

/// `telepay ARGS` on the data directory `data`, `stdin` as standard input.
fn telepay(args: &[&str], stdin: &str, data: &Path) -> Output {
    common::telepay_output(data, args, stdin)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Exit status, stdout, and stderr without the test-cost warning.
fn outcome(output: &Output) -> (Option<i32>, String, String) {
    let stderr = text(&output.stderr)
        .lines()
        .filter(|line| !line.contains("TELEPAY_KEYSTORE_TEST_COST"))
        .map(|line| format!("{line}\n"))
        .collect();
    (output.status.code(), text(&output.stdout), stderr)
}

/// The command succeeded: its stdout.
fn ok(output: &Output) -> String {
    let (status, stdout, stderr) = outcome(output);
    assert_eq!(status, Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    stdout
}

/// The command failed with status 1: its stderr's last line.
fn error_line(output: &Output) -> String {
    let (status, stdout, stderr) = outcome(output);
    assert_eq!(status, Some(1), "stdout:\n{stdout}\nstderr:\n{stderr}");
    stderr.lines().last().unwrap_or_default().to_owned()
}

/// alice's key in the key store; her account's fingerprint.
fn new_alice(data: &Path) -> String {
    let created = ok(&telepay(
        &["keys", "new", "--user", "alice", "--pin-stdin"],
        &format!("{PIN}\n"),
        data,
    ));
    created
        .lines()
        .find_map(|line| line.strip_prefix("  fingerprint "))
        .expect("keys new prints the fingerprint")
        .to_owned()
}

/// A wallet purchase by alice, her key-store PIN on standard input.
fn buy_from_wallet(data: &Path, command: &[&str], service: &str) -> Output {
    let mut args = command.to_vec();
    args.extend([
        "--means",
        "wallet",
        "--user",
        "alice",
        "--pin-stdin",
        "--service",
        service,
    ]);
    telepay(&args, &format!("{PIN}\n"), data)
}

/// `telepay wallet balance --user alice` as (name, value) pairs.
fn balance(data: &Path) -> Vec<(String, String)> {
    ok(&telepay(
        &["wallet", "balance", "--user", "alice"],
        "",
        data,
    ))
    .lines()
    .skip(1)
    .filter_map(|line| line.trim().split_once(": "))
    .map(|(name, value)| (name.to_owned(), value.to_owned()))
    .collect()
}

fn value<'a>(pairs: &'a [(String, String)], name: &str) -> &'a str {
    pairs
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
        .unwrap_or_else(|| panic!("no {name} in {pairs:?}"))
}

/// Claim 10, one payment: the account is reloaded through the acquirer's side, the
/// key-store PIN unlocks the key that signs, the acquirer debits the price.
#[test]
fn a_reloaded_wallet_pays_and_its_balance_drops_by_the_price() {
    let dir = TempDir::new("wallet-pays");
    let data = dir.path();
    let fingerprint = new_alice(data);
    let reloaded = ok(&telepay(
        &["wallet", "reload", "--user", "alice", "--amount", "20.00"],
        "",
        data,
    ));
    let wallet_file = dir.file("wallet.sqlite");
    assert!(
        reloaded.starts_with(&format!(
            "wallet: account {fingerprint} of alice opened in EUR ({})\n\
             wallet: credited 20.00 EUR to alice (account {fingerprint}), reference reload-",
            wallet_file.display()
        )),
        "{reloaded}"
    );

    let bought = ok(&buy_from_wallet(data, &["purchase"], "market-report-2026"));
    assert!(
        bought.contains(&format!(
            "\nwallet: debited 2.50 EUR, balance now 17.50 EUR (account {fingerprint})\n"
        )),
        "{bought}"
    );
    assert!(
        bought.contains("\ndelivered: market-report-2026 (text/plain; charset=utf-8, 444 bytes, digest checked), paid 2.50 EUR\n"),
        "{bought}"
    );
    // The transaction F went to the wallet acquirer, not the bank-card one.
    assert!(
        bought.contains("F        front-end → acquirer wallet-acquirer:"),
        "{bought}"
    );

    let account = balance(data);
    assert_eq!(value(&account, "balance"), "17.50 EUR");
    assert_eq!(value(&account, "reserved"), "0.00 EUR");
    assert_eq!(value(&account, "available"), "17.50 EUR");
    assert_eq!(value(&account, "payments debited"), "1");
    assert_eq!(value(&account, "credits"), "1");
}

/// Claims 6 and 10, a pseudo-session: the first wallet payment opens a provision at
/// the acquirer, the front-end verifies the next two itself, nothing is debited until
/// the end, which settles exactly their sum in one settlement.
#[test]
fn a_session_reserves_once_verifies_at_the_front_end_and_settles_the_sum() {
    let dir = TempDir::new("wallet-session");
    let data = dir.path();
    new_alice(data);
    ok(&telepay(
        &["wallet", "reload", "--user", "alice", "--amount", "20.00"],
        "",
        data,
    ));
    let started = ok(&telepay(
        &["session", "start", "evening", "--user", "alice"],
        "",
        data,
    ));
    assert!(
        started.starts_with("session evening started ")
            && started.contains(" for alice, provision 10 ("),
        "{started}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.file("session.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // The session's user pays: `session pay` needs no --user.
    let pay = |service: &str| {
        ok(&telepay(
            &[
                "session",
                "pay",
                "--means",
                "wallet",
                "--pin-stdin",
                "--service",
                service,
            ],
            &format!("{PIN}\n"),
            data,
        ))
    };
    let runs = [
        pay("market-report-2026"),
        pay("marine-weather-live"),
        pay("cup-final-replay"),
    ];
    // One transaction F reached the acquirer, with the first payment.
    let to_acquirer: Vec<usize> = runs
        .iter()
        .map(|run| run.lines().filter(|line| line.starts_with("F ")).count())
        .collect();
    assert_eq!(to_acquirer, [1, 0, 0]);
    assert!(
        runs[0].contains("\nwallet: 2.50 EUR authorised by the acquirer, which reserved a provision of 10.00 EUR for P-"),
        "{}",
        runs[0]
    );
    for (run, amount) in runs[1..].iter().zip(["0.50 EUR", "3.90 EUR"]) {
        assert!(
            run.contains(&format!(
                "\nwallet: {amount} verified by the front-end against the session's provision, without the acquirer; debited when the session ends (balance 20.00 EUR, 10.00 EUR reserved, account "
            )),
            "{run}"
        );
    }
    // After each payment, the session's totals so far.
    assert!(
        runs[2].contains(": 3 payments, 6.90 EUR\n  bank card: nothing\n  virtual wallet: 6.90 EUR (3 payments)\n"),
        "{}",
        runs[2]
    );

    let totals = ok(&telepay(&["session", "totals"], "", data));
    let mut lines = totals.lines();
    let first = lines.next().unwrap_or_default();
    assert!(
        first.starts_with("session evening (alice), started ")
            && first.ends_with(": 3 payments, 6.90 EUR"),
        "{totals}"
    );
    assert_eq!(lines.next(), Some("  bank card: nothing"));
    assert_eq!(
        lines.next(),
        Some("  virtual wallet: 6.90 EUR (3 payments)")
    );
    let listed: Vec<&str> = lines.collect();
    assert_eq!(listed.len(), 3, "{totals}");
    assert!(
        listed
            .iter()
            .all(|line| line.ends_with("authorised (alice)")),
        "{totals}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ok(&telepay(&["--json", "session", "totals"], "", data))).unwrap();
    assert_eq!(json["session"], "evening");
    assert_eq!(json["totals"]["payments"], 3);
    assert_eq!(json["totals"]["overall"], serde_json::json!(["6.90 EUR"]));
    assert_eq!(
        json["totals"]["by_means"]["virtual-wallet"],
        serde_json::json!({"payments": 3, "paid": ["6.90 EUR"]})
    );
    let amounts: Vec<&str> = json["payments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|payment| payment["amount"].as_str().unwrap())
        .collect();
    assert_eq!(amounts, ["2.50 EUR", "0.50 EUR", "3.90 EUR"]);

    // The provision only reserves: nothing debited yet.
    let before = balance(data);
    assert_eq!(value(&before, "balance"), "20.00 EUR");
    assert_eq!(value(&before, "reserved"), "10.00 EUR");
    assert_eq!(value(&before, "available"), "10.00 EUR");
    assert_eq!(value(&before, "payments debited"), "0");

    let ended = ok(&telepay(&["session", "end"], "", data));
    assert!(
        ended.contains("\nsession evening closed: 3 wallet payments, 6.90 EUR debited\n"),
        "{ended}"
    );
    assert_eq!(
        ended
            .lines()
            .filter(|line| line.starts_with("settle "))
            .count(),
        1,
        "one settlement: {ended}"
    );
    assert!(ended.contains(": 3 payments, 6.90 EUR\n"), "{ended}");
    assert!(!dir.file("session.json").exists());

    let after = balance(data);
    assert_eq!(value(&after, "balance"), "13.10 EUR");
    assert_eq!(value(&after, "reserved"), "0.00 EUR");
    assert_eq!(value(&after, "payments debited"), "3");

    // Ended: the session commands have nothing to work on.
    assert!(error_line(&telepay(&["session", "totals"], "", data)).contains("no session is open"));
}

/// Claim 12: the key opens only with its PIN; a wrong one stops the purchase before
/// the front-end is asked anything.
#[test]
fn a_wrong_key_store_pin_pays_nothing() {
    let dir = TempDir::new("wallet-wrong-pin");
    let data = dir.path();
    new_alice(data);
    ok(&telepay(
        &["wallet", "reload", "--user", "alice", "--amount", "20.00"],
        "",
        data,
    ));
    let output = telepay(
        &[
            "purchase",
            "--means",
            "wallet",
            "--user",
            "alice",
            "--pin-stdin",
        ],
        "correct horsE\n",
        data,
    );
    let (status, stdout, stderr) = outcome(&output);
    assert_eq!(
        (status, stdout.as_str(), stderr.as_str()),
        (
            Some(1),
            "",
            "telepay: error: wrong PIN for user \"alice\"\n"
        )
    );
    let account = balance(data);
    assert_eq!(value(&account, "balance"), "20.00 EUR");
    assert_eq!(value(&account, "payments debited"), "0");
    // A user without a key is refused before any PIN is asked, naming the key store.
    assert_eq!(
        error_line(&telepay(
            &[
                "purchase",
                "--means",
                "wallet",
                "--user",
                "bob",
                "--pin-stdin"
            ],
            &format!("{PIN}\n"),
            data,
        )),
        format!(
            "telepay: error: {}: no key for user \"bob\" in the key store",
            dir.file("keystore.json").display()
        )
    );
}

/// An account never opened at the acquirer: the acquirer refuses the payment, and the
/// acquirer's side says there is no account.
#[test]
fn a_wallet_never_reloaded_is_unknown_to_the_acquirer() {
    let dir = TempDir::new("wallet-unknown");
    let data = dir.path();
    let fingerprint = new_alice(data);
    let output = buy_from_wallet(data, &["purchase"], "market-report-2026");
    let (_, stdout, _) = outcome(&output);
    assert_eq!(
        error_line(&output),
        "telepay: error: purchase refused: payment refused: the wallet account is unknown to the acquirer"
    );
    assert!(
        stdout.contains("\nwallet: refused: the wallet account is unknown to the acquirer\n"),
        "{stdout}"
    );
    assert!(!stdout.contains("delivered:"), "{stdout}");
    assert_eq!(
        error_line(&telepay(
            &["wallet", "balance", "--user", "alice"],
            "",
            data
        )),
        format!(
            "telepay: error: wallet {}: user alice has no account (account {fingerprint}): open it with `telepay wallet open --user alice` or `telepay wallet reload --user alice --amount AMOUNT`",
            dir.file("wallet.sqlite").display()
        )
    );
}

/// The session commands need a session, and say how to start one.
#[test]
fn session_commands_without_a_session_name_telepay_session_start() {
    let dir = TempDir::new("wallet-no-session");
    let data = dir.path();
    new_alice(data);
    let expected = format!(
        "telepay: error: no session is open ({} does not exist): start one with `telepay session start NAME`",
        dir.file("session.json").display()
    );
    let pay = telepay(
        &[
            "session",
            "pay",
            "--means",
            "wallet",
            "--user",
            "alice",
            "--pin-stdin",
        ],
        &format!("{PIN}\n"),
        data,
    );
    assert_eq!(error_line(&pay), expected);
    // Refused before any purchase: nothing was run.
    assert_eq!(outcome(&pay).1, "");
    assert_eq!(
        error_line(&telepay(&["session", "end"], "", data)),
        expected
    );
    assert_eq!(
        error_line(&telepay(&["session", "totals"], "", data)),
        expected
    );
}

/// One session at a time, named by the identifier rule; the provision is an amount.
#[test]
fn session_start_refuses_a_second_session_and_bad_names() {
    let dir = TempDir::new("wallet-session-start");
    let data = dir.path();
    ok(&telepay(&["session", "start", "evening"], "", data));
    let session_file = dir.file("session.json");
    let table: &[(&[&str], String)] = &[
        (
            &["session", "start", "morning"],
            "session evening is already open (started ".to_owned(),
        ),
        (
            &["session", "start", "late night"],
            "NAME \"late night\": a session name: 1 to 64 of A-Z a-z 0-9 - _ . @".to_owned(),
        ),
        (
            &["session", "start", "night", "--provision", "ten"],
            "--provision \"ten\": an amount such as 10.00".to_owned(),
        ),
    ];
    let before = std::fs::read(&session_file).unwrap();
    for (args, expected) in table {
        let line = error_line(&telepay(args, "", data));
        assert!(line.contains(expected.as_str()), "{args:?}: {line}");
    }
    assert_eq!(std::fs::read(&session_file).unwrap(), before);
    assert!(
        error_line(&telepay(&["session", "start", "morning"], "", data)).ends_with(&format!(
            ", {}): end it with `telepay session end` first",
            session_file.display()
        ))
    );
}

/// A reload is credited once per reference; the acquirer's refusals name the user and
/// the store.
#[test]
fn a_reload_is_credited_once_per_reference() {
    let dir = TempDir::new("wallet-reload");
    let data = dir.path();
    let fingerprint = new_alice(data);
    let wallet_file = dir.file("wallet.sqlite");
    assert_eq!(
        ok(&telepay(&["wallet", "open", "--user", "alice"], "", data)),
        format!(
            "wallet: account {fingerprint} of alice opened in EUR ({})\n",
            wallet_file.display()
        )
    );
    let reload = |amount: &str| {
        telepay(
            &[
                "wallet",
                "reload",
                "--user",
                "alice",
                "--amount",
                amount,
                "--reference",
                "voucher-7",
            ],
            "",
            data,
        )
    };
    assert_eq!(
        ok(&reload("20.00")),
        format!(
            "wallet: credited 20.00 EUR to alice (account {fingerprint}), reference voucher-7: balance now 20.00 EUR\n"
        )
    );
    assert_eq!(
        ok(&reload("20.00")),
        format!(
            "wallet: reference voucher-7 was already credited to alice (account {fingerprint}): nothing changed, balance 20.00 EUR\n"
        )
    );
    let wallet = wallet_file.display();
    let table: &[(&[&str], String)] = &[
        (
            &[
                "wallet",
                "reload",
                "--user",
                "alice",
                "--amount",
                "5.00",
                "--reference",
                "voucher-7",
            ],
            format!(
                "wallet {wallet}: user alice: credit voucher-7: the reference was used for another credit"
            ),
        ),
        (
            &[
                "wallet",
                "reload",
                "--user",
                "alice",
                "--amount",
                "5.00",
                "--currency",
                "USD",
            ],
            format!(
                "wallet {wallet}: user alice: account {fingerprint}: amount in currency USD, the account is in EUR"
            ),
        ),
        (
            &["wallet", "reload", "--user", "alice", "--amount", "0"],
            "user alice: credit reload-".to_owned(),
        ),
        (
            &["wallet", "reload", "--user", "alice", "--amount", "2.505"],
            "--amount \"2.505\": an amount such as 20.00, in the account's currency".to_owned(),
        ),
        (
            &["wallet", "open", "--user", "alice", "--currency", "XYZ"],
            "--currency \"XYZ\": an ISO 4217 code telepay knows: EUR, USD, GBP or JPY".to_owned(),
        ),
    ];
    for (args, expected) in table {
        let line = error_line(&telepay(args, "", data));
        assert!(line.contains(expected.as_str()), "{args:?}: {line}");
    }
    assert_eq!(value(&balance(data), "balance"), "20.00 EUR");
    let json: serde_json::Value = serde_json::from_str(&ok(&telepay(
        &["--json", "wallet", "balance", "--user", "alice"],
        "",
        data,
    )))
    .unwrap();
    assert_eq!(json["account"], fingerprint.as_str());
    assert_eq!(json["balance"], "20.00 EUR");
    assert_eq!(json["credits"], 1);
    assert_eq!(json["payments"], 0);
}

/// A small payer configuration: alice pays small amounts from her wallet without a
/// question, larger ones by card; bob has only his card.
const PAYER_CONFIG: &str = r#"
active = "alice"

[[user]]
id = "alice"
card_reader = "sim:cb"
key_store_user = "alice"

[[user.rule]]
means = ["virtual-wallet", "bank-card"]
currency = "EUR"
below = "10.00"

[[user.rule]]
means = "bank-card"
currency = "EUR"
from = "10.00"

[[user.threshold]]
means = "virtual-wallet"
currency = "EUR"
implicit_up_to = "5.00"

[[user]]
id = "bob"
card_reader = "sim:cb"

[[user.rule]]
means = "bank-card"
currency = "EUR"
kinds = ["pay-per-view"]
below = "5.00"

[[user.rule]]
means = "bank-card"
currency = "EUR"
"#;

/// Claims 4, 5, 7: `telepay users` shows what the plans say.
#[test]
fn users_lists_each_users_means_plan_and_thresholds() {
    let dir = TempDir::new("wallet-users");
    let config = dir.file("payer.toml");
    std::fs::write(&config, PAYER_CONFIG).unwrap();
    let path = config.to_str().unwrap();
    assert_eq!(
        ok(&telepay(&["users", "--payer-config", path], "", dir.path())),
        format!(
            "{path}:\n\
             alice (active)\n\
             \x20 means: bank card in sim:cb, virtual wallet of key-store user alice\n\
             \x20 plan:\n\
             \x20   1. from 0.00 EUR to below 10.00 EUR, every kind: virtual wallet, else bank card\n\
             \x20   2. from 10.00 EUR, every kind: bank card\n\
             \x20 thresholds (confirmed without a question up to):\n\
             \x20   virtual wallet: 5.00 EUR\n\
             bob\n\
             \x20 means: bank card in sim:cb\n\
             \x20 plan:\n\
             \x20   1. from 0.00 EUR to below 5.00 EUR, pay-per-view: bank card\n\
             \x20   2. from 0.00 EUR, every kind: bank card\n\
             \x20 thresholds: none, every payment is confirmed\n"
        )
    );
    let json: serde_json::Value = serde_json::from_str(&ok(&telepay(
        &["--json", "users", "--payer-config", path],
        "",
        dir.path(),
    )))
    .unwrap();
    assert_eq!(json[0]["id"], "alice");
    assert_eq!(json[0]["active"], true);
    assert_eq!(
        json[0]["rules"][0],
        serde_json::json!({
            "rule": 1, "currency": "EUR", "from": "0.00", "below": "10.00", "kinds": [],
            "means": ["virtual-wallet", "bank-card"],
        })
    );
    assert_eq!(
        json[0]["thresholds"],
        serde_json::json!([{"means": "virtual-wallet", "currency": "EUR", "implicit_up_to": "5.00"}])
    );
    assert_eq!(json[1]["active"], false);
    assert_eq!(json[1]["key_store_user"], serde_json::Value::Null);
    // A broken file is refused with its place.
    std::fs::write(&config, "active = \"carol\"\n").unwrap();
    assert!(
        error_line(&telepay(&["users", "--payer-config", path], "", dir.path()))
            .starts_with(&format!("telepay: error: {path}:")),
    );
}

/// `base` followed by `more`.
fn with<'a>(base: &[&'a str], more: &[&'a str]) -> Vec<&'a str> {
    [base, more].concat()
}

/// Claims 4, 5, 18 with `--means auto`: the plan picks the wallet for 2.50 EUR, paid
/// without a question (under the threshold), and the card for 19.90 EUR, whose PIN is
/// the second line of standard input after the key-store PIN.
#[test]
fn the_plan_picks_the_means_and_the_pins_come_in_order() {
    let dir = TempDir::new("wallet-auto");
    let data = dir.path();
    new_alice(data);
    ok(&telepay(
        &["wallet", "reload", "--user", "alice", "--amount", "20.00"],
        "",
        data,
    ));
    let config = dir.file("payer.toml");
    std::fs::write(&config, PAYER_CONFIG).unwrap();
    let auto = [
        "purchase",
        "--means",
        "auto",
        "--payer-config",
        config.to_str().unwrap(),
        "--pin-stdin",
    ];

    let small = telepay(
        &with(&auto, &["--service", "market-report-2026"]),
        &format!("{PIN}\n"),
        data,
    );
    let (_, small_stdout, small_stderr) = outcome(&small);
    assert!(
        ok(&small).contains("\nwallet: debited 2.50 EUR, balance now 17.50 EUR"),
        "{small_stdout}"
    );
    assert!(
        small_stdout.contains("\ntotals: alice: session: 2.50 EUR (virtual wallet 2.50 EUR)\n"),
        "{small_stdout}"
    );
    // Implicit confirmation (claim 5): the user was not shown the payment request.
    assert!(!small_stderr.contains("payment request"), "{small_stderr}");

    let large = telepay(
        &with(
            &auto,
            &[
                "--service",
                "printed-travel-guide",
                "--deliver-to",
                "A. Martin;1 rue de la Paix;75002;Paris;FR",
            ],
        ),
        &format!("{PIN}\n1234\n"),
        data,
    );
    let large_stdout = ok(&large);
    assert!(large_stdout.contains("\ncard: Tc "), "{large_stdout}");
    assert!(
        large_stdout.contains("\ntotals: alice: session: 19.90 EUR (bank card 19.90 EUR)\n"),
        "{large_stdout}"
    );
    assert!(
        large_stdout.contains("\ndelivered: order "),
        "{large_stdout}"
    );
    // Explicit confirmation above the threshold and for a means without one.
    assert!(outcome(&large).2.contains("payment request: 19.90 EUR"));
    assert_eq!(value(&balance(data), "balance"), "17.50 EUR");

    // bob has no wallet: no key-store PIN is read, the first line is his card PIN.
    let bob = telepay(
        &with(
            &auto,
            &["--user", "bob", "--service", "card-payments-guide"],
        ),
        "1234\n",
        data,
    );
    assert!(ok(&bob).contains("\ntotals: bob: session: 1.20 EUR (bank card 1.20 EUR)\n"));
    // A user the configuration does not have.
    assert!(
        error_line(&telepay(&with(&auto, &["--user", "carol"]), "", data))
            .starts_with(&format!("telepay: error: {}: ", config.display())),
    );
    // --means wallet says whose key pays.
    assert_eq!(
        error_line(&telepay(
            &["purchase", "--means", "wallet", "--pin-stdin"],
            "",
            data
        )),
        "telepay: error: --user is needed with --means wallet: the key-store user whose wallet key pays"
    );
}

/// docs/payer.md shows what `telepay users` prints for its example: the same text.
#[test]
fn users_prints_what_docs_payer_md_shows_for_its_example() {
    const DOC: &str = include_str!("../docs/payer.md");
    let block = |after: &str, fence: &str| -> String {
        let from = DOC.find(after).expect("the section") + after.len();
        let start = DOC[from..].find(fence).expect("the block") + from + fence.len();
        let length = DOC[start..].find("```").expect("the block is closed");
        DOC[start..start + length].to_owned()
    };
    let example = block("## Example", "```toml\n");
    let shown = block("## `telepay users`", "```text\n");
    let dir = TempDir::new("wallet-users-doc");
    std::fs::write(dir.file("payer.toml"), example).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_telepay"))
        .args(["users", "--payer-config", "payer.toml"])
        .current_dir(dir.path())
        .output()
        .expect("the telepay binary runs");
    assert_eq!(ok(&output), shown);
}

/// A session payment the acquirer refuses is listed in the session and not counted;
/// the next one, once the account is open, opens the session's provision.
#[test]
fn a_refused_session_payment_is_listed_and_not_counted() {
    let dir = TempDir::new("wallet-session-refused");
    let data = dir.path();
    new_alice(data);
    ok(&telepay(
        &[
            "session",
            "start",
            "morning",
            "--user",
            "alice",
            "--provision",
            "4.00",
        ],
        "",
        data,
    ));
    let pay = |service: &str| {
        telepay(
            &[
                "session",
                "pay",
                "--means",
                "wallet",
                "--pin-stdin",
                "--service",
                service,
            ],
            &format!("{PIN}\n"),
            data,
        )
    };
    let unknown = pay("market-report-2026");
    assert_eq!(
        error_line(&unknown),
        "telepay: error: purchase refused: payment refused: the wallet account is unknown to the acquirer"
    );
    let stdout = outcome(&unknown).1;
    assert!(
        stdout.contains(": 0 payments, nothing\n  bank card: nothing\n  virtual wallet: nothing\n  refused, not counted: 1 payment\n"),
        "{stdout}"
    );
    assert!(stdout.contains("  refused (alice)\n"), "{stdout}");

    ok(&telepay(
        &["wallet", "reload", "--user", "alice", "--amount", "20.00"],
        "",
        data,
    ));
    let paid = ok(&pay("marine-weather-live"));
    assert!(
        paid.contains("\nwallet: 0.50 EUR authorised by the acquirer, which reserved a provision of 4.00 EUR for P-"),
        "{paid}"
    );
    assert!(
        paid.contains(": 1 payment, 0.50 EUR\n  bank card: nothing\n  virtual wallet: 0.50 EUR (1 payment)\n  refused, not counted: 1 payment\n"),
        "{paid}"
    );
    let ended = ok(&telepay(&["session", "end"], "", data));
    assert!(
        ended.contains("\nsession morning closed: 1 wallet payment, 0.50 EUR debited\n"),
        "{ended}"
    );
    let account = balance(data);
    assert_eq!(value(&account, "balance"), "19.50 EUR");
    assert_eq!(value(&account, "reserved"), "0.00 EUR");
    assert_eq!(value(&account, "payments debited"), "1");

    // A session with no wallet payment closes with nothing to settle.
    ok(&telepay(&["session", "start", "noon"], "", data));
    assert!(
        ok(&telepay(&["session", "end"], "", data)).starts_with(
            "end session    client device terminal-1 → front-end: end of session noon\n"
        ),
    );
}

/// Claims 8 and 9 on the command line: a dispute of a wallet payment is signed with the
/// user's key and accepted for review under a case number, the balance unchanged; a
/// dispute of a payment the account never made is rejected, exit status 1.
#[test]
fn a_dispute_of_a_wallet_payment_is_recorded_under_a_case_and_refunds_nothing() {
    let dir = TempDir::new("wallet-dispute");
    let data = dir.path();
    new_alice(data);
    ok(&telepay(
        &["wallet", "reload", "--user", "alice", "--amount", "20.00"],
        "",
        data,
    ));
    let bought = ok(&buy_from_wallet(data, &["purchase"], "market-report-2026"));
    let payment = bought
        .lines()
        .find_map(|line| {
            line.split("payment request ")
                .nth(1)
                .and_then(|rest| rest.split(':').next())
        })
        .expect("the log names the payment request")
        .to_owned();
    let disputed = ok(&telepay(
        &[
            "dispute",
            "--payment",
            &payment,
            "--reason",
            "the report was empty",
            "--user",
            "alice",
            "--pin-stdin",
        ],
        &format!("{PIN}\n"),
        data,
    ));
    assert!(
        disputed.contains(&format!("of payment {payment}: accepted, case WD-000001")),
        "{disputed}"
    );
    assert_eq!(value(&balance(data), "balance"), "17.50 EUR");

    let rejected = telepay(
        &[
            "dispute",
            "--payment",
            "P-NEVER-PAID",
            "--reason",
            "never bought",
            "--user",
            "alice",
            "--pin-stdin",
        ],
        &format!("{PIN}\n"),
        data,
    );
    let line = error_line(&rejected);
    assert!(
        line.starts_with("telepay: error: dispute ")
            && line.contains("of payment P-NEVER-PAID: rejected: "),
        "{line}"
    );
}

/// A pay-per-time service on the command line: `--units 2` pays two one-second units
/// from the wallet, then the service stops; the balance drops by two units.
#[test]
fn pay_per_time_pays_the_units_asked_for_then_stops() {
    let dir = TempDir::new("wallet-per-time");
    let data = dir.path();
    new_alice(data);
    ok(&telepay(
        &["wallet", "reload", "--user", "alice", "--amount", "20.00"],
        "",
        data,
    ));
    let catalogue = dir.file("radio.toml");
    std::fs::write(
        &catalogue,
        "provider = \"radio\"\n[[item]]\nid = \"live\"\ndesignation = \"Live radio\"\n\
         kind = \"pay-per-time\"\nprice = \"0.10\"\ncurrency = \"EUR\"\nvalidity_seconds = 60\n\
         unit_seconds = 1\nmax_units = 10\ncontent = \"stream ticket\"\n",
    )
    .unwrap();
    let catalogue = catalogue.display().to_string();
    let bought = ok(&telepay(
        &[
            "purchase",
            "--catalogue",
            &catalogue,
            "--means",
            "wallet",
            "--user",
            "alice",
            "--pin-stdin",
            "--units",
            "2",
        ],
        &format!("{PIN}\n"),
        data,
    ));
    assert!(
        bought.contains(
            "live stopped after 2 unit(s), 0.20 EUR paid: the 2 unit(s) asked for were paid"
        ),
        "{bought}"
    );
    assert_eq!(value(&balance(data), "balance"), "19.80 EUR");
    // --units is for pay-per-time services only.
    let refused = telepay(
        &[
            "purchase",
            "--means",
            "wallet",
            "--user",
            "alice",
            "--pin-stdin",
            "--service",
            "market-report-2026",
            "--units",
            "2",
        ],
        &format!("{PIN}\n"),
        data,
    );
    assert!(error_line(&refused).contains("--units"), "{refused:?}");
}
