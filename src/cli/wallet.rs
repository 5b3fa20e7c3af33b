//! `telepay wallet open|reload|balance`: the virtual-wallet acquirer's side of a user's
//! account (claim 10), for tests and demonstrations: open it, credit it (a reload), and
//! read it.
//!
//! The account is the user's key-store public key, which `KeyStore::entry` gives
//! without a PIN: these commands spend nothing, so they ask none. The accounts are in
//! `wallet.sqlite` in the data directory, the store the wallet acquirer of
//! `telepay purchase` and `telepay session` uses, or with `--store postgres://…` in
//! the PostgreSQL database `telepay serve acquirer-wallet` processes share.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use crate::acquirer::wallet::{
    AccountKey, AccountState, Credit, CreditReference, Outcome, PgWalletStore, Refusal,
    WalletAccounts, WalletStore,
};
use crate::messages::{Currency, Money};
use crate::provider::parse_price;
use crate::purchase::{Clock, SystemClock};
use crate::terminal::keystore::KeyStoreError;

use super::keys::StoreArgs;
use super::purchase::{WALLET_FILE, data_dir, data_dir_path};
use super::{CliError, GlobalArgs};

/// What `--currency` accepts.
const CURRENCIES: &str = "an ISO 4217 code telepay knows: EUR, USD, GBP or JPY";

#[derive(Debug, Subcommand)]
pub(super) enum WalletCommand {
    /// Open the user's account, empty, in --currency. Opening it again in the same
    /// currency changes nothing.
    Open(OpenArgs),
    /// Credit the user's account (a reload), opening it first if need be. A reference
    /// given again is the same credit, made once.
    Reload(ReloadArgs),
    /// The account's balance, the part reserved by sessions' provisions, the part
    /// available, the last sequence accepted and the payments debited.
    Balance(WhoArgs),
}

/// Whose account, and where the key store and the accounts are.
#[derive(Debug, Args)]
pub(super) struct WhoArgs {
    /// The key-store user whose public key is the account.
    #[arg(long, value_name = "ID")]
    user: String,
    #[command(flatten)]
    store: StoreArgs,
    /// The accounts in PostgreSQL, shared by `telepay serve acquirer-wallet`
    /// processes: postgres://USER@/DB?host=/socket/dir or postgres://USER@HOST:PORT/DB
    /// [default: wallet.sqlite in the data directory]
    #[arg(long = "store", value_name = "POSTGRES_URL")]
    accounts: Option<String>,
}

/// Arguments of `telepay wallet open`.
#[derive(Debug, Args)]
pub(super) struct OpenArgs {
    #[command(flatten)]
    who: WhoArgs,
    /// The account's currency.
    #[arg(long, value_name = "CODE", default_value = "EUR")]
    currency: String,
}

/// Arguments of `telepay wallet reload`.
#[derive(Debug, Args)]
pub(super) struct ReloadArgs {
    #[command(flatten)]
    who: WhoArgs,
    /// The amount credited, e.g. 20.00, in the account's currency.
    #[arg(long, value_name = "AMOUNT")]
    amount: String,
    /// The credit's reference (a transfer's, a voucher's): a reference already
    /// credited is not credited again [default: reload- and 8 random hex digits]
    #[arg(long, value_name = "REF")]
    reference: Option<String>,
    /// The currency the account is opened in when it is not open yet [default: EUR]
    #[arg(long, value_name = "CODE")]
    currency: Option<String>,
}

/// Runs `telepay wallet ...`.
pub(super) fn wallet(
    global: &GlobalArgs,
    command: &WalletCommand,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    match command {
        WalletCommand::Open(args) => open(global, args, out),
        WalletCommand::Reload(args) => reload(global, args, out),
        WalletCommand::Balance(args) => balance(global, args, out),
    }
}

/// The user's account key, read from their key-store entry (no PIN).
fn account_of(who: &WhoArgs) -> Result<AccountKey, CliError> {
    let file = who.store.file(false)?;
    let store = who.store.load(&file)?;
    let entry = store
        .entry(&who.user)
        .ok_or_else(|| CliError::KeyStoreFile {
            path: file.path().to_owned(),
            source: Box::new(KeyStoreError::UnknownUser {
                user: who.user.clone(),
            }),
        })?;
    Ok(AccountKey::new(entry.public_key()))
}

fn parse_currency(text: &str) -> Result<Currency, CliError> {
    Currency::from_alpha(text).ok_or_else(|| CliError::BadArgument {
        argument: "--currency",
        input: text.to_owned(),
        expected: CURRENCIES,
    })
}

/// The PostgreSQL accounts `--store` names (the path returned is its address without
/// the password), else the wallet store of the data directory, created if absent.
fn open_store(who: &WhoArgs) -> Result<(Box<dyn WalletAccounts>, PathBuf), CliError> {
    if let Some(address) = &who.accounts {
        return open_postgres(address);
    }
    let path = data_dir(who.store.data_dir.as_deref())?.join(WALLET_FILE);
    let store = WalletStore::open(&path)?;
    Ok((Box::new(store), path))
}

/// The PostgreSQL accounts at `address`, and its name without the password (which
/// messages show where they show a file).
fn open_postgres(address: &str) -> Result<(Box<dyn WalletAccounts>, PathBuf), CliError> {
    let store = PgWalletStore::open(address)?;
    let name = PathBuf::from(store.name());
    Ok((Box::new(store), name))
}

/// A refusal of the store, naming the user and the file.
fn refused(who: &WhoArgs, path: &Path, refusal: Refusal) -> CliError {
    CliError::WalletRefused {
        user: who.user.clone(),
        path: path.to_owned(),
        refusal: Box::new(refusal),
    }
}

fn open(global: &GlobalArgs, args: &OpenArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let currency = parse_currency(&args.currency)?;
    let key = account_of(&args.who)?;
    let (mut store, path) = open_store(&args.who)?;
    let (state, opened) = match store.open_account(&key, currency, SystemClock.now())? {
        Outcome::Done(state) => (state, true),
        Outcome::Repeated(state) => (state, false),
        Outcome::Refused(refusal) => return Err(refused(&args.who, &path, refusal)),
    };
    if global.json {
        let mut json = state_json(&args.who.user, &state, &path);
        if let Some(object) = json.as_object_mut() {
            object.insert("opened".to_owned(), serde_json::Value::Bool(opened));
        }
        writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
    } else if opened {
        writeln!(
            out,
            "wallet: account {} of {} opened in {} ({})",
            key.fingerprint(),
            args.who.user,
            currency.alpha(),
            path.display()
        )?;
    } else {
        writeln!(
            out,
            "wallet: account {} of {} was already open in {}: balance {} ({})",
            key.fingerprint(),
            args.who.user,
            currency.alpha(),
            Money::new(state.balance, state.currency),
            path.display()
        )?;
    }
    Ok(())
}

fn reload(global: &GlobalArgs, args: &ReloadArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let who = &args.who;
    let asked = args.currency.as_deref().map(parse_currency).transpose()?;
    let key = account_of(who)?;
    let (mut store, path) = open_store(who)?;
    let now = SystemClock.now();
    // Open when absent; when open, another --currency than the account's is refused
    // (by the store, which says both).
    let mut opened = false;
    let state = match (store.account(&key)?, asked) {
        (Some(state), None) => state,
        (existing, asked) => {
            match store.open_account(&key, asked.unwrap_or(Currency::EUR), now)? {
                Outcome::Done(state) => {
                    opened = existing.is_none();
                    state
                }
                Outcome::Repeated(state) => state,
                Outcome::Refused(refusal) => return Err(refused(who, &path, refusal)),
            }
        }
    };
    let amount = parse_price(&args.amount, state.currency).map_err(|_| CliError::BadArgument {
        argument: "--amount",
        input: args.amount.clone(),
        expected: "an amount such as 20.00, in the account's currency",
    })?;
    let reference = match &args.reference {
        Some(reference) => reference.clone(),
        None => format!("reload-{}", hex::encode(super::random_bytes::<4>()?)),
    };
    let credit = Credit {
        reference: CreditReference::from(reference.as_str()),
        account: key.clone(),
        amount,
    };
    let (state, credited) = match store.credit(&credit, now)? {
        Outcome::Done(state) => (state, true),
        Outcome::Repeated(state) => (state, false),
        Outcome::Refused(refusal) => return Err(refused(who, &path, refusal)),
    };
    if global.json {
        let mut json = state_json(&who.user, &state, &path);
        if let Some(object) = json.as_object_mut() {
            object.insert("opened".to_owned(), serde_json::Value::Bool(opened));
            object.insert("reference".to_owned(), serde_json::Value::String(reference));
            object.insert(
                "credited".to_owned(),
                if credited {
                    serde_json::Value::String(amount.to_string())
                } else {
                    serde_json::Value::Null
                },
            );
        }
        writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
        return Ok(());
    }
    if opened {
        writeln!(
            out,
            "wallet: account {} of {} opened in {} ({})",
            key.fingerprint(),
            who.user,
            state.currency.alpha(),
            path.display()
        )?;
    }
    let balance = Money::new(state.balance, state.currency);
    if credited {
        writeln!(
            out,
            "wallet: credited {amount} to {} (account {}), reference {reference}: balance now {balance}",
            who.user,
            key.fingerprint()
        )?;
    } else {
        writeln!(
            out,
            "wallet: reference {reference} was already credited to {} (account {}): nothing changed, balance {balance}",
            who.user,
            key.fingerprint()
        )?;
    }
    Ok(())
}

fn balance(global: &GlobalArgs, args: &WhoArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let key = account_of(args)?;
    let (store, path): (Box<dyn WalletAccounts>, PathBuf) = match &args.accounts {
        Some(address) => open_postgres(address)?,
        None => {
            let path = data_dir_path(args.store.data_dir.as_deref())?.join(WALLET_FILE);
            // Reading creates nothing: without the file there is no account.
            if !path.exists() {
                return Err(CliError::NoWalletAccount {
                    user: args.user.clone(),
                    account: key.fingerprint(),
                    path,
                });
            }
            let store = WalletStore::open(&path)?;
            (Box::new(store), path)
        }
    };
    let no_account = || CliError::NoWalletAccount {
        user: args.user.clone(),
        account: key.fingerprint(),
        path: path.clone(),
    };
    let state = store.account(&key)?.ok_or_else(no_account)?;
    let payments = store.payments(&key)?.len();
    let credits = store.credits(&key)?.len();
    if global.json {
        let mut json = state_json(&args.user, &state, &path);
        if let Some(object) = json.as_object_mut() {
            object.insert("payments".to_owned(), payments.into());
            object.insert("credits".to_owned(), credits.into());
        }
        writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
        return Ok(());
    }
    let money = |minor| Money::new(minor, state.currency);
    writeln!(
        out,
        "wallet account {} of {} ({})",
        key.fingerprint(),
        args.user,
        path.display()
    )?;
    writeln!(out, "  balance: {}", money(state.balance))?;
    writeln!(out, "  reserved: {}", money(state.reserved))?;
    writeln!(out, "  available: {}", money(state.available()))?;
    writeln!(out, "  last sequence: {}", state.last_sequence)?;
    writeln!(out, "  payments debited: {payments}")?;
    writeln!(out, "  credits: {credits}")?;
    Ok(())
}

/// An account's state as JSON, amounts as text with their currency.
fn state_json(user: &str, state: &AccountState, path: &Path) -> serde_json::Value {
    let money = |minor| Money::new(minor, state.currency).to_string();
    serde_json::json!({
        "user": user,
        "account": state.key.fingerprint(),
        "public_key": hex::encode_upper(state.key.to_sec1()),
        "currency": state.currency.alpha(),
        "balance": money(state.balance),
        "reserved": money(state.reserved),
        "available": money(state.available()),
        "last_sequence": state.last_sequence,
        "store": path.display().to_string(),
    })
}
