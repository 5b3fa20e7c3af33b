//! `telepay keys new|list|delete|change-pin` as a user runs it: exit statuses, the one
//! line of error, a listing that shows no secret, the file's mode, and a save that fails
//! half-way leaving the old file as it was.
//!
//! Most tests set `TELEPAY_KEYSTORE_TEST_COST=1` (the weak test KDF cost, so that the
//! debug binary runs fast); one creates a key at the production cost.

mod common;
use common::TempDir;

use std::path::Path;
use std::process::{Command, Output, Stdio};

/// `telepay keys ARGS` on the data directory `data`, `stdin` as standard input, at the
/// test KDF cost when `test_cost`.
fn keys(args: &[&str], stdin: &str, data: &Path, test_cost: bool) -> Output {
    use std::io::Write;
    let mut command = Command::new(env!("CARGO_BIN_EXE_telepay"));
    command
        .arg("keys")
        .args(args)
        .env("TELEPAY_DATA_DIR", data)
        .env_remove("TELEPAY_KEYSTORE_TEST_COST")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if test_cost {
        command.env("TELEPAY_KEYSTORE_TEST_COST", "1");
    }
    let mut child = command.spawn().expect("the telepay binary runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("stdin is written");
    child.wait_with_output().expect("telepay ends")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Exit status, stdout, stderr without the test-cost warning line.
fn outcome(output: &Output) -> (Option<i32>, String, String) {
    let stderr = text(&output.stderr)
        .lines()
        .filter(|line| !line.contains("TELEPAY_KEYSTORE_TEST_COST"))
        .map(|line| format!("{line}\n"))
        .collect();
    (output.status.code(), text(&output.stdout), stderr)
}

fn new_user(data: &Path, user: &str, pin: &str) -> Output {
    keys(
        &["new", "--user", user, "--pin-stdin"],
        &format!("{pin}\n"),
        data,
        true,
    )
}

#[test]
fn new_prints_the_public_key_and_writes_a_0600_file() {
    let dir = TempDir::new("keys-new");
    let output = new_user(dir.path(), "alice", "correct horse");
    let (status, stdout, stderr) = outcome(&output);
    assert_eq!((status, stderr.as_str()), (Some(0), ""), "{stdout}");
    let file = dir.file("keystore.json");
    assert!(stdout.starts_with(&format!("key created for alice in {}\n", file.display())));
    assert!(stdout.contains("  public key  04"), "{stdout}");
    assert!(
        stdout.contains("  KDF         PBKDF2-HMAC-SHA-256, 1000 iterations"),
        "{stdout}"
    );
    // The warning is there when the test cost is used.
    assert!(text(&output.stderr).contains("weak test KDF cost, not for real keys"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}

#[test]
fn refusals_exit_1_with_one_line_naming_the_fault() {
    let dir = TempDir::new("keys-refusals");
    assert_eq!(
        new_user(dir.path(), "alice", "correct horse").status.code(),
        Some(0)
    );
    let data = dir.path();
    // (arguments, standard input, the error line exactly)
    let table: &[(&[&str], &str, &str)] = &[
        (
            &["new", "--user", "bob", "--pin-stdin"],
            "1234567\n",
            "telepay: error: the PIN is too short: 7 characters, at least 8 needed\n",
        ),
        (
            &["new", "--user", "alice", "--pin-stdin"],
            "another pin\n",
            "telepay: error: user \"alice\" already has a key in the key store\n",
        ),
        (
            &["new", "--user", "bob smith", "--pin-stdin"],
            "another pin\n",
            "telepay: error: user identifier \"bob smith\": a character not allowed (1 to 64 of A-Z a-z 0-9 - _ . @)\n",
        ),
        (
            &["new", "--user", "bob", "--pin-stdin"],
            "",
            "telepay: error: cannot read the PIN from standard input: no PIN given\n",
        ),
        (
            &["delete", "--user", "alice", "--pin-stdin"],
            "correct horsE\n",
            "telepay: error: wrong PIN for user \"alice\"\n",
        ),
        (
            &["delete", "--user", "carol", "--pin-stdin"],
            "correct horse\n",
            "telepay: error: no key for user \"carol\" in the key store\n",
        ),
        (
            &["change-pin", "--user", "alice", "--pin-stdin"],
            "wrong pin 1\nnew pin 123\n",
            "telepay: error: wrong PIN for user \"alice\"\n",
        ),
        (
            &["change-pin", "--user", "alice", "--pin-stdin"],
            "correct horse\nshort\n",
            "telepay: error: the PIN is too short: 5 characters, at least 8 needed\n",
        ),
    ];
    let before = std::fs::read(dir.file("keystore.json")).unwrap();
    for (args, stdin, expected) in table {
        let (status, stdout, stderr) = outcome(&keys(args, stdin, data, true));
        assert_eq!(
            (status, stdout.as_str(), stderr.as_str()),
            (Some(1), "", *expected),
            "{args:?}"
        );
    }
    // No refusal changed the file.
    assert_eq!(std::fs::read(dir.file("keystore.json")).unwrap(), before);

    // A usage error (no --user) exits 2.
    assert_eq!(keys(&["new"], "", data, true).status.code(), Some(2));
}

#[test]
fn list_shows_users_keys_cost_and_time_and_no_secret() {
    let dir = TempDir::new("keys-list");
    for (user, pin) in [("alice", "correct horse"), ("bob", "battery staple")] {
        assert_eq!(new_user(dir.path(), user, pin).status.code(), Some(0));
    }
    let stored: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.file("keystore.json")).unwrap()).unwrap();
    let (status, listing, stderr) = outcome(&keys(&["list"], "", dir.path(), true));
    assert_eq!((status, stderr.as_str()), (Some(0), ""));
    let (_, json_listing, _) = outcome(&keys(&["--json", "list"], "", dir.path(), true));
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines.len(), 3, "{listing}");
    assert!(lines[0].starts_with("USER   FINGERPRINT          ITERATIONS  CREATED"));
    for (line, entry) in lines[1..].iter().zip(stored["entries"].as_array().unwrap()) {
        let user = entry["user"].as_str().unwrap();
        let public_key = entry["public_key"].as_str().unwrap().to_uppercase();
        assert!(line.starts_with(user), "{line}");
        assert!(line.ends_with(&public_key), "{line}");
        assert!(line.contains("  1000  "), "{line}");
        assert!(line.contains("T") && line.contains("Z  04"), "{line}");
        // Nothing secret, nor anything a PIN search could start from.
        for secret in ["correct horse", "battery staple"] {
            assert!(!listing.contains(secret) && !json_listing.contains(secret));
        }
        for member in ["/kdf/salt", "/cipher/nonce", "/pin_check", "/sealed_key"] {
            let value = entry.pointer(member).unwrap().as_str().unwrap();
            for shown in [&listing, &json_listing] {
                assert!(
                    !shown.to_lowercase().contains(value),
                    "{member} shown: {shown}"
                );
            }
        }
    }
    let json: serde_json::Value = serde_json::from_str(&json_listing).unwrap();
    assert_eq!(json[1]["user"], "bob");
    assert_eq!(json[1]["kdf_iterations"], 1000);

    // An empty store.
    let empty = TempDir::new("keys-list-empty");
    let (status, stdout, _) = outcome(&keys(&["list"], "", empty.path(), true));
    assert_eq!(status, Some(0));
    assert_eq!(
        stdout,
        format!("no keys in {}\n", empty.file("keystore.json").display())
    );
}

#[test]
fn change_pin_retires_the_old_pin_and_keeps_the_key() {
    let dir = TempDir::new("keys-change");
    let data = dir.path();
    assert_eq!(
        new_user(data, "alice", "correct horse").status.code(),
        Some(0)
    );
    let (_, before, _) = outcome(&keys(&["list"], "", data, true));
    let (status, stdout, stderr) = outcome(&keys(
        &["change-pin", "--user", "alice", "--pin-stdin"],
        "correct horse\nnew pin 4242\n",
        data,
        true,
    ));
    assert_eq!(
        (status, stdout.as_str(), stderr.as_str()),
        (Some(0), "PIN changed for alice\n", "")
    );
    let (_, after, _) = outcome(&keys(&["list"], "", data, true));
    assert_eq!(after, before, "the listing (key, time, cost) is unchanged");
    let (status, _, stderr) = outcome(&keys(
        &["delete", "--user", "alice", "--pin-stdin"],
        "correct horse\n",
        data,
        true,
    ));
    assert_eq!(
        (status, stderr.as_str()),
        (Some(1), "telepay: error: wrong PIN for user \"alice\"\n")
    );
    let (status, stdout, _) = outcome(&keys(
        &["delete", "--user", "alice", "--pin-stdin"],
        "new pin 4242\n",
        data,
        true,
    ));
    assert_eq!(status, Some(0));
    assert!(
        stdout.starts_with("key of alice deleted (fingerprint "),
        "{stdout}"
    );
}

#[test]
fn delete_force_needs_no_pin_and_keystore_names_another_file() {
    let dir = TempDir::new("keys-force");
    let other = dir.file("elsewhere.json");
    let other_arg = other.to_str().unwrap();
    let (status, _, _) = outcome(&keys(
        &[
            "new",
            "--user",
            "alice",
            "--pin-stdin",
            "--keystore",
            other_arg,
        ],
        "correct horse\n",
        dir.path(),
        true,
    ));
    assert_eq!(status, Some(0));
    assert!(other.exists() && !dir.file("keystore.json").exists());
    let (status, stdout, _) = outcome(&keys(
        &[
            "delete",
            "--user",
            "alice",
            "--force",
            "--keystore",
            other_arg,
        ],
        "",
        dir.path(),
        true,
    ));
    assert_eq!(status, Some(0), "{stdout}");
    let (_, listing, _) = outcome(&keys(
        &["list", "--keystore", other_arg],
        "",
        dir.path(),
        true,
    ));
    assert_eq!(listing, format!("no keys in {}\n", other.display()));
}

#[test]
fn a_test_cost_store_is_refused_without_the_test_setting_and_names_the_file() {
    let dir = TempDir::new("keys-floor");
    assert_eq!(
        new_user(dir.path(), "alice", "correct horse").status.code(),
        Some(0)
    );
    let (status, stdout, stderr) = outcome(&keys(&["list"], "", dir.path(), false));
    assert_eq!(
        (status, stdout.as_str(), stderr),
        (
            Some(1),
            "",
            format!(
                "telepay: error: {}: key store entry 1 (\"alice\"): kdf.iterations: 1000 is below the floor of 100000 (a test-cost entry: not for real keys)\n",
                dir.file("keystore.json").display()
            )
        )
    );
}

#[test]
fn a_corrupt_file_is_an_error_naming_the_file_entry_and_member() {
    let dir = TempDir::new("keys-corrupt");
    assert_eq!(
        new_user(dir.path(), "alice", "correct horse").status.code(),
        Some(0)
    );
    let path = dir.file("keystore.json");
    let original = std::fs::read_to_string(&path).unwrap();
    let document: serde_json::Value = serde_json::from_str(&original).unwrap();
    let salt = document["entries"][0]["kdf"]["salt"].as_str().unwrap();
    std::fs::write(&path, original.replace(salt, &salt[2..])).unwrap();
    let (status, _, stderr) = outcome(&keys(&["list"], "", dir.path(), true));
    assert_eq!(
        (status, stderr),
        (
            Some(1),
            format!(
                "telepay: error: {}: key store entry 1 (\"alice\"): kdf.salt: expected 16 bytes (32 hex digits), found 30 hex digits\n",
                path.display()
            )
        )
    );
}

/// A save that fails half-way (the file size limit reached while the temporary file is
/// written, SIGXFSZ ignored so that `write` fails with EFBIG) leaves the old file as it
/// was and no temporary file behind.
#[cfg(unix)]
#[test]
fn a_save_failing_half_way_leaves_the_old_file_intact() {
    let dir = TempDir::new("keys-atomic");
    for (user, pin) in [("alice", "correct horse"), ("bob", "battery staple")] {
        assert_eq!(new_user(dir.path(), user, pin).status.code(), Some(0));
    }
    let path = dir.file("keystore.json");
    let before = std::fs::read(&path).unwrap();
    assert!(
        before.len() > 1024,
        "two entries exceed the 1 KiB limit below"
    );
    let output = Command::new("bash")
        .arg("-c")
        .arg(r#"trap '' XFSZ; ulimit -f 1; echo 'third user pin' | exec "$0" keys new --user carol --pin-stdin"#)
        .arg(env!("CARGO_BIN_EXE_telepay"))
        .env("TELEPAY_DATA_DIR", dir.path())
        .env("TELEPAY_KEYSTORE_TEST_COST", "1")
        .output()
        .unwrap();
    let (status, _, stderr) = outcome(&output);
    assert_eq!(status, Some(1), "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "telepay: error: key store {}/.keystore.json.",
            dir.path().display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("File too large"), "{stderr}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(names, ["keystore.json"]);
}

#[test]
fn a_key_made_at_the_production_cost_lists_its_cost() {
    let dir = TempDir::new("keys-production");
    let (status, stdout, stderr) = outcome(&keys(
        &["new", "--user", "alice", "--pin-stdin"],
        "correct horse\n",
        dir.path(),
        false,
    ));
    assert_eq!((status, stderr.as_str()), (Some(0), ""), "{stdout}");
    assert!(stdout.contains("600000 iterations"), "{stdout}");
    let output = keys(&["--json", "list"], "", dir.path(), false);
    assert!(output.stderr.is_empty(), "{}", text(&output.stderr));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json[0]["kdf_iterations"], 600_000);
}
