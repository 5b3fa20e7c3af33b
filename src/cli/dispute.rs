//! `telepay dispute`: the user disputes a payment made from their wallet (claims 8, 9).
//! The payer device signs the dispute with the user's key-store key; the front-end
//! records it and forwards it to the wallet acquirer, whose outcome comes back: accepted
//! for review under a case number (not a refund), rejected with why, or unanswered.

use std::io::Write;

use clap::Args;

use super::keys::StoreArgs;
use super::purchase::{data_dir, network_without_card, unlock_key};
use super::{CliError, GlobalArgs};
use crate::messages::{DisputeDecision, Means, PaymentId};
use crate::purchase::{Faults, SystemClock};
use crate::terminal::payer::{MeansChoice, WalletSigner};

/// Arguments of `telepay dispute`.
#[derive(Debug, Args)]
pub(super) struct DisputeArgs {
    /// The payment disputed, as its payment request named it (e.g. P-1A2B3C4D-000001-PAY)
    #[arg(long, value_name = "ID")]
    payment: String,
    /// Why, for the acquirer's review: 1 to 500 characters
    #[arg(long, value_name = "TEXT")]
    reason: String,
    /// The key-store user whose wallet paid; their key signs the dispute
    #[arg(long, value_name = "ID")]
    user: String,
    /// Read the key-store PIN from the first line of standard input instead of prompting.
    #[arg(long)]
    pin_stdin: bool,
    #[command(flatten)]
    store: StoreArgs,
}

/// `telepay dispute`: exits non-zero unless the acquirer accepted the dispute.
pub(super) fn dispute(
    global: &GlobalArgs,
    args: &DisputeArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let dir = data_dir(args.store.data_dir.as_deref())?;
    let key = unlock_key(&args.store, args.pin_stdin, &args.user)?;
    let network = network_without_card(global, dir)?;
    let mut network = network.map_payer(|payer| {
        payer
            .with_wallet(WalletSigner::from_unlocked(key))
            .with_means(MeansChoice::Fixed(Means::VirtualWallet))
    });
    let (log, outcome) = network
        .dispute(
            PaymentId::from(args.payment.clone()),
            &args.reason,
            SystemClock,
            Faults::none(),
        )
        .map_err(|error| CliError::Dispute(error.to_string()))?;
    let Some(outcome) = outcome else {
        return Err(CliError::Dispute(format!(
            "no outcome came back for the dispute of payment {} ({} messages exchanged)",
            args.payment,
            log.entries.len()
        )));
    };
    if global.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&outcome)?)?;
    }
    match &outcome.outcome {
        DisputeDecision::Accepted { case } => {
            if !global.json {
                writeln!(
                    out,
                    "dispute {} of payment {}: accepted, case {case} (recorded for review; \
                     nothing is refunded until the case is decided)",
                    outcome.dispute, args.payment
                )?;
            }
            Ok(())
        }
        DisputeDecision::Rejected { reason } => Err(CliError::Dispute(format!(
            "dispute {} of payment {}: rejected: {reason}",
            outcome.dispute, args.payment
        ))),
        DisputeDecision::Unanswered => Err(CliError::Dispute(format!(
            "dispute {} of payment {}: the acquirer did not answer; try again later",
            outcome.dispute, args.payment
        ))),
    }
}
