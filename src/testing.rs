//! Snapshot helpers for tests of card dialogues (guide: `docs/snapshot-testing.md`).
//!
//! Wrap any card channel (a [`Transport`] over `sim:`, `pcsc:`, `replay:`…) in a
//! [`DialogueRecorder`], run the dialogue — by hand with [`DialogueRecorder::send_hex`] or
//! through a flow such as [`emv::read_card`](crate::emv::read_card) — and assert
//! [`DialogueRecorder::render`] with insta. The rendering is the decoded text people
//! read (command names, TLV trees with EMV names, status-word meanings), with the values
//! of the tags you name replaced by `<redacted>` / `??`, so that what legitimately varies
//! (cryptograms, counters, unpredictable numbers) does not break the snapshot and what
//! changes in the card or the terminal shows up as a readable diff.
//!
//! ```no_run
//! use telepay::testing::{DialogueRecorder, VARYING_TAGS, powered};
//!
//! let mut card = DialogueRecorder::new(powered("sim:cb")?);
//! card.send_hex("00A4040007A000000042101000")?;
//! card.send_hex("80A8000002830000")?;
//! let text = card.render(VARYING_TAGS);
//! assert!(text.contains("> SELECT by DF name A0000000421010"));
//! // insta::assert_snapshot!("cb_select_gpo", text);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::apdu::{Command, Response};
use crate::describe::{DescribeOptions, Describer};
use crate::emv::CardChannel;
use crate::reader::{self, Reader, ReaderError, ReaderUri, Transport};
use crate::tlv::TagNumber;

/// Tags whose values change from one run of the same dialogue to the next on a real
/// card: Application Cryptogram (9F26), ATC (9F36), Unpredictable Number (9F37), Issuer
/// Application Data (9F10, it carries counters), ICC Dynamic Number (9F4C), Transaction
/// Date (9A), Signed Dynamic Application Data (9F4B).
pub const VARYING_TAGS: &[TagNumber] = &[0x9F26, 0x9F36, 0x9F37, 0x9F10, 0x9F4C, 0x9A, 0x9F4B];

/// Opens the reader a URI names and powers the card: the usual first line of a test.
pub fn powered(uri: &str) -> Result<Transport<Box<dyn Reader + Send>>, Box<dyn std::error::Error>> {
    let uri = ReaderUri::parse(uri)?;
    let mut transport = Transport::new(reader::open(&uri)?);
    transport.power_on()?;
    Ok(transport)
}

/// Why a dialogue step failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DialogueError {
    /// The hex given is not a command APDU.
    #[error("command {input:?} is not a command APDU: {reason}")]
    BadCommand {
        /// The hex as given.
        input: String,
        /// Why.
        reason: String,
    },
    /// The reader failed.
    #[error(transparent)]
    Reader(#[from] ReaderError),
}

/// A card channel that keeps every exchange for rendering; see the module documentation.
#[derive(Debug)]
pub struct DialogueRecorder<C: CardChannel> {
    channel: C,
    exchanges: Vec<(Command, Response)>,
    options: DescribeOptions,
}

impl<C: CardChannel> DialogueRecorder<C> {
    /// Starts recording the exchanges made through `channel`.
    pub fn new(channel: C) -> DialogueRecorder<C> {
        DialogueRecorder {
            channel,
            exchanges: Vec::new(),
            options: DescribeOptions::default(),
        }
    }

    /// Shows secret command data (PIN blocks) in the rendering instead of masking it.
    pub fn showing_secrets(mut self) -> DialogueRecorder<C> {
        self.options.show_secrets = true;
        self
    }

    /// Sends a command given in hex (spaces allowed) and returns the card's answer.
    pub fn send_hex(&mut self, hex_text: &str) -> Result<Response, DialogueError> {
        let compact: String = hex_text.split_whitespace().collect();
        let bad = |reason: String| DialogueError::BadCommand {
            input: hex_text.to_owned(),
            reason,
        };
        let bytes = hex::decode(&compact).map_err(|error| bad(error.to_string()))?;
        let command = Command::parse(&bytes).map_err(|error| bad(error.to_string()))?;
        Ok(self.transmit(&command)?)
    }

    /// The exchanges so far.
    pub fn exchanges(&self) -> &[(Command, Response)] {
        &self.exchanges
    }

    /// The channel underneath.
    pub fn channel_mut(&mut self) -> &mut C {
        &mut self.channel
    }

    /// The dialogue decoded, with the values of `redacted` tags hidden.
    pub fn render(&self, redacted: &[TagNumber]) -> String {
        let mut describer = Describer::new(self.options).redacting(redacted);
        self.exchanges
            .iter()
            .map(|(command, response)| describer.describe(command, response).to_string())
            .collect()
    }

    /// Stops recording and gives the channel back.
    pub fn into_inner(self) -> C {
        self.channel
    }
}

impl<C: CardChannel> CardChannel for DialogueRecorder<C> {
    fn transmit(&mut self, command: &Command) -> Result<Response, ReaderError> {
        let response = self.channel.transmit(command)?;
        self.exchanges.push((command.clone(), response.clone()));
        Ok(response)
    }
}

/// The embedded purchase network tests use: every party of [`crate::purchase::embedded`]
/// in one process, the card behind a powered [`Transport`].
pub type DemoNetwork = crate::purchase::embedded::Embedded<
    crate::frontend::SeededEntropy,
    Transport<Box<dyn Reader + Send>>,
    crate::terminal::payer::ScriptedUser,
>;

/// A [`DemoNetwork`]: the demo catalogue, the test acquirer with its journal in
/// memory, the card at `uri` (e.g. `sim:cb?seed=1`) read with French terminal data, a
/// user who confirms and types `pin`, front-end nonces seeded with `seed`, purchases
/// named `P-000001`…
///
/// # Errors
/// The reader cannot be opened or powered, or a built-in table is malformed.
pub fn demo_network(
    uri: &str,
    pin: &str,
    seed: u64,
) -> Result<DemoNetwork, Box<dyn std::error::Error>> {
    use crate::terminal::card_module::{CardModule, TerminalData};
    Ok(crate::purchase::embedded::Embedded::new(
        crate::provider::ServiceServer::new(crate::provider::Catalogue::demo()?),
        crate::purchase::embedded::test_rules()?,
        crate::acquirer::journal::Journal::open_in_memory()?,
        CardModule::new(powered(uri)?, TerminalData::france()),
        crate::terminal::payer::ScriptedUser::with_pin(pin),
        crate::frontend::SeededEntropy::new(seed),
        "P".into(),
    ))
}

/// A [`demo_network`] that takes the virtual wallet too: the wallet acquirer
/// ([`crate::purchase::embedded::WALLET_ACQUIRER`]) with its accounts in memory, the
/// account of `key` opened in EUR and credited `funds` minor units at `now`, and the
/// payer device holding `key` and paying as `means` says.
///
/// # Errors
/// As [`demo_network`], or the wallet's store cannot be set up.
pub fn demo_wallet_network(
    uri: &str,
    pin: &str,
    seed: u64,
    key: p256::ecdsa::SigningKey,
    funds: u64,
    now: crate::messages::Timestamp,
    means: crate::terminal::payer::MeansChoice,
) -> Result<DemoNetwork, Box<dyn std::error::Error>> {
    use crate::acquirer::wallet::{AccountKey, Credit, WalletAcquirer, WalletStore};
    use crate::messages::{AcquirerId, Currency, Money};
    let account = AccountKey::new(key.verifying_key());
    let mut store = WalletStore::open_in_memory()?;
    store.open_account(&account, Currency::EUR, now)?;
    if funds > 0 {
        store.credit(
            &Credit {
                reference: "initial-reload".into(),
                account,
                amount: Money::new(funds, Currency::EUR),
            },
            now,
        )?;
    }
    let wallet = WalletAcquirer::new(
        AcquirerId::from(crate::purchase::embedded::WALLET_ACQUIRER),
        store,
    );
    Ok(demo_network(uri, pin, seed)?
        .with_wallet(wallet)
        .map_payer(|payer| {
            payer
                .with_wallet(crate::terminal::payer::WalletSigner::from_signing_key(key))
                .with_means(means)
        }))
}

/// The PAN of test card `account` of the `cb` BIN (497010): `4970100`, the account in
/// eight digits, and the Luhn check digit (ISO/IEC 7812-1 Annex B).
pub fn cb_pan(account: u32) -> String {
    let body = format!("4970100{:08}", account % 100_000_000);
    // Luhn: from the rightmost digit of the body, double every other one.
    let sum: u32 = body
        .bytes()
        .rev()
        .enumerate()
        .map(|(position, digit)| {
            let digit = u32::from(digit - b'0');
            if position % 2 == 0 {
                let doubled = digit * 2;
                doubled / 10 + doubled % 10
            } else {
                digit
            }
        })
        .sum();
    format!("{body}{}", (10 - sum % 10) % 10)
}

/// The profile of a card like the built-in `cb` but with the PAN [`cb_pan`]`(account)`:
/// a card of the same issuer, keys derived from its own PAN, the same PIN `1234`. Write
/// it to a file and open it as `sim:FILE.toml`: many terminals, each its own card.
pub fn cb_card_profile(account: u32) -> String {
    const CB: &str = include_str!("../card-applet-sim/profiles/cb.toml");
    const CB_PAN: &str = "4970100000000014";
    CB.replace(CB_PAN, &cb_pan(account))
        .replace("name = \"cb\"", &format!("name = \"cb-{account}\""))
}

/// The software card of [`cb_pan`]`(account)`, its profile written to `dir`, powered:
/// a card of its own for each of many terminals.
///
/// # Errors
/// The profile cannot be written, or the card opened.
pub fn cb_card(
    dir: &std::path::Path,
    account: u32,
) -> Result<Transport<Box<dyn Reader + Send>>, Box<dyn std::error::Error>> {
    let profile = dir.join(format!("cb-{account}.toml"));
    std::fs::write(&profile, cb_card_profile(account))?;
    powered(&format!("sim:{}", profile.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_one_of_the_cb_bin_is_the_built_in_cb_card() {
        assert_eq!(cb_pan(1), "4970100000000014");
        assert!(cb_card_profile(1).contains("pan = \"4970100000000014\""));
        let other = cb_card_profile(42);
        assert!(other.contains(&format!("pan = \"{}\"", cb_pan(42))));
        assert!(!other.contains("4970100000000014"));
        // The software card itself accepts it: its checker verifies the Luhn digit.
        card_applet_sim::profile::Profile::from_toml_str(&other, "cb-42").unwrap();
    }
}
