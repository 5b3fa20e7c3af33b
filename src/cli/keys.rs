//! `telepay keys new|list|delete|change-pin`: the payer device's key store (claim 12,
//! Fig. 9; `docs/keystore.md`).
//!
//! The store is `keystore.json` in the data directory (`--data-dir`, `TELEPAY_DATA_DIR`,
//! as `telepay purchase`), or `--keystore FILE`. This module is the edge: it reads PINs
//! (a prompt that does not echo, or standard input), the clock and the system's random
//! source, and the file; the rules are in [`crate::terminal::keystore`].

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use zeroize::Zeroizing;

use super::purchase::{data_dir, data_dir_path};
use super::{CliError, GlobalArgs, read_pin_from_stdin};
use crate::terminal::keystore::{
    CostPolicy, KdfCost, KeyStore, KeyStoreError, KeyStoreFile, Pin, SystemRandom, Timestamp,
    fingerprint,
};

/// The file name of the store in the data directory.
pub(super) const KEYSTORE_FILE_NAME: &str = "keystore.json";

#[derive(Debug, Subcommand)]
pub(super) enum KeysCommand {
    /// Generate a P-256 signing key for a user and store it sealed under their PIN (at
    /// least 8 characters, printable ASCII). Prints the public key.
    New(PinArgs),
    /// List the users, their public keys (SEC1 hex and fingerprint), KDF cost and
    /// creation time. Shows no secret and asks no PIN.
    List(StoreArgs),
    /// Delete a user's key, after their PIN opened it (--force: without the PIN, for a
    /// forgotten one).
    Delete(DeleteArgs),
    /// Change a user's PIN: the key stays the same, sealed anew. With --pin-stdin, the
    /// old PIN is the first line and the new PIN the second.
    ChangePin(PinArgs),
}

/// Where the store is.
#[derive(Debug, Args)]
pub(super) struct StoreArgs {
    /// The key store file [default: keystore.json in the data directory]
    #[arg(long, value_name = "FILE")]
    keystore: Option<PathBuf>,
    /// The data directory [default: $TELEPAY_DATA_DIR, else $XDG_DATA_HOME/telepay,
    /// else ~/.local/share/telepay]
    #[arg(long, value_name = "DIR", env = "TELEPAY_DATA_DIR")]
    pub(super) data_dir: Option<PathBuf>,
    /// TESTS ONLY: seal with the weak test KDF cost and accept entries that have it.
    #[arg(
        long,
        hide = true,
        env = "TELEPAY_KEYSTORE_TEST_COST",
        value_parser = clap::builder::FalseyValueParser::new()
    )]
    test_kdf_cost: bool,
}

/// A user and where their PIN comes from.
#[derive(Debug, Args)]
pub(super) struct PinArgs {
    /// The user identifier (1 to 64 of A-Z a-z 0-9 - _ . @).
    #[arg(long, value_name = "ID")]
    user: String,
    /// Read the PIN(s) from standard input, one per line, instead of prompting.
    #[arg(long)]
    pin_stdin: bool,
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Debug, Args)]
pub(super) struct DeleteArgs {
    #[command(flatten)]
    who: PinArgs,
    /// Delete without asking the PIN.
    #[arg(long)]
    force: bool,
}

impl StoreArgs {
    /// The store's file; `create_dir` makes the data directory when it is the default.
    pub(super) fn file(&self, create_dir: bool) -> Result<KeyStoreFile, CliError> {
        if let Some(path) = &self.keystore {
            return Ok(KeyStoreFile::new(path.clone()));
        }
        let dir = if create_dir {
            data_dir(self.data_dir.as_deref())?
        } else {
            data_dir_path(self.data_dir.as_deref())?
        };
        Ok(KeyStoreFile::new(dir.join(KEYSTORE_FILE_NAME)))
    }

    /// Reads the store; an error of its content names the file.
    pub(super) fn load(&self, file: &KeyStoreFile) -> Result<KeyStore, CliError> {
        file.load(self.policy()).map_err(|error| match error {
            KeyStoreError::Io { .. } | KeyStoreError::TooLarge { .. } => error.into(),
            content => CliError::KeyStoreFile {
                path: file.path().to_owned(),
                source: Box::new(content),
            },
        })
    }

    fn policy(&self) -> CostPolicy {
        if self.test_kdf_cost {
            eprintln!(
                "telepay: warning: TELEPAY_KEYSTORE_TEST_COST: weak test KDF cost, not for real keys"
            );
            CostPolicy::AllowTestCost
        } else {
            CostPolicy::Production
        }
    }

    fn cost(&self) -> KdfCost {
        if self.test_kdf_cost {
            KdfCost::for_tests()
        } else {
            KdfCost::production()
        }
    }
}

/// Runs `telepay keys ...`.
pub(super) fn keys(
    global: &GlobalArgs,
    command: &KeysCommand,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    match command {
        KeysCommand::New(args) => new(global, args, out),
        KeysCommand::List(args) => list(global, args, out),
        KeysCommand::Delete(args) => delete(global, args, out),
        KeysCommand::ChangePin(args) => change_pin(global, args, out),
    }
}

/// One PIN: a line of standard input, or a prompt that does not echo (asked twice when
/// `confirm`, for a new PIN).
fn read_pin(args: &PinArgs, prompt: &str, confirm: bool) -> Result<Pin, CliError> {
    let text = if args.pin_stdin {
        read_pin_from_stdin()?
    } else {
        let first = prompt_pin(prompt)?;
        if confirm {
            let again = prompt_pin("Repeat the new PIN: ")?;
            if first != again {
                return Err(CliError::PinMismatch);
            }
        }
        first
    };
    Ok(Pin::new(&text)?)
}

fn prompt_pin(prompt: &str) -> Result<Zeroizing<String>, CliError> {
    rpassword::prompt_password(prompt)
        .map(Zeroizing::new)
        .map_err(CliError::PinPrompt)
}

fn now() -> Timestamp {
    Timestamp(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs()),
    )
}

fn new(global: &GlobalArgs, args: &PinArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let file = args.store.file(true)?;
    let mut store = args.store.load(&file)?;
    // Refuse before asking a PIN the user would type for nothing.
    if store.entry(&args.user).is_some() {
        return Err(KeyStoreError::DuplicateUser {
            user: args.user.clone(),
        }
        .into());
    }
    let pin = read_pin(args, "New PIN: ", true)?;
    let public_key = store.add(
        &args.user,
        &pin,
        args.store.cost(),
        now(),
        &mut SystemRandom,
    )?;
    file.save(&store)?;
    let sec1 = hex::encode_upper(public_key.to_sec1_point(false).as_bytes());
    if global.json {
        let json = serde_json::json!({
            "user": args.user,
            "public_key": sec1,
            "fingerprint": fingerprint(&public_key),
            "kdf_iterations": args.store.cost().iterations(),
            "keystore": file.path().display().to_string(),
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
    } else {
        writeln!(
            out,
            "key created for {} in {}",
            args.user,
            file.path().display()
        )?;
        writeln!(out, "  public key  {sec1}")?;
        writeln!(out, "  fingerprint {}", fingerprint(&public_key))?;
        writeln!(
            out,
            "  KDF         PBKDF2-HMAC-SHA-256, {} iterations",
            args.store.cost().iterations()
        )?;
    }
    Ok(())
}

fn list(global: &GlobalArgs, args: &StoreArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let file = args.file(false)?;
    let store = args.load(&file)?;
    if global.json {
        let entries: Vec<_> = store
            .entries()
            .map(|entry| {
                serde_json::json!({
                    "user": entry.user(),
                    "public_key": hex::encode_upper(entry.public_key_sec1()),
                    "fingerprint": entry.fingerprint(),
                    "kdf_iterations": entry.iterations(),
                    "created": entry.created().to_string(),
                })
            })
            .collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&entries)?)?;
        return Ok(());
    }
    if store.is_empty() {
        writeln!(out, "no keys in {}", file.path().display())?;
        return Ok(());
    }
    let width = store
        .users()
        .map(|user| user.chars().count())
        .max()
        .unwrap_or(0)
        .max(4);
    writeln!(
        out,
        "{:<width$}  {:<19}  {:>10}  {:<20}  PUBLIC KEY (SEC1)",
        "USER", "FINGERPRINT", "ITERATIONS", "CREATED"
    )?;
    for entry in store.entries() {
        writeln!(
            out,
            "{:<width$}  {:<19}  {:>10}  {:<20}  {}",
            entry.user(),
            entry.fingerprint(),
            entry.iterations(),
            entry.created().to_string(),
            hex::encode_upper(entry.public_key_sec1())
        )?;
    }
    Ok(())
}

fn delete(global: &GlobalArgs, args: &DeleteArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let who = &args.who;
    let file = who.store.file(false)?;
    let mut store = who.store.load(&file)?;
    if !args.force {
        if store.entry(&who.user).is_none() {
            return Err(KeyStoreError::UnknownUser {
                user: who.user.clone(),
            }
            .into());
        }
        let pin = read_pin(who, "PIN: ", false)?;
        store.unlock(&who.user, &pin)?;
    }
    let public_key = store.remove(&who.user)?;
    file.save(&store)?;
    if global.json {
        let json = serde_json::json!({
            "deleted": who.user,
            "fingerprint": fingerprint(&public_key),
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
    } else {
        writeln!(
            out,
            "key of {} deleted (fingerprint {})",
            who.user,
            fingerprint(&public_key)
        )?;
    }
    Ok(())
}

fn change_pin(global: &GlobalArgs, args: &PinArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let file = args.store.file(false)?;
    let mut store = args.store.load(&file)?;
    if store.entry(&args.user).is_none() {
        return Err(KeyStoreError::UnknownUser {
            user: args.user.clone(),
        }
        .into());
    }
    let old_pin = read_pin(args, "Current PIN: ", false)?;
    // Open the key before asking the new PIN: a wrong current PIN stops here.
    store.unlock(&args.user, &old_pin)?;
    let new_pin = read_pin(args, "New PIN: ", true)?;
    store.change_pin(
        &args.user,
        &old_pin,
        &new_pin,
        args.store.cost(),
        &mut SystemRandom,
    )?;
    file.save(&store)?;
    if global.json {
        let json = serde_json::json!({ "user": args.user, "pin_changed": true });
        writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
    } else {
        writeln!(out, "PIN changed for {}", args.user)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_file_is_keystore_json_in_the_data_directory() {
        let args = StoreArgs {
            keystore: None,
            data_dir: Some(PathBuf::from("/nonexistent/data")),
            test_kdf_cost: false,
        };
        let file = args.file(false).unwrap();
        assert_eq!(
            file.path(),
            std::path::Path::new("/nonexistent/data/keystore.json")
        );
        assert_eq!(args.cost(), KdfCost::production());
    }
}
