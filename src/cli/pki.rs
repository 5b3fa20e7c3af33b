//! `telepay pki init|issue`: the test PKI of a local deployment (docs/deployment.md,
//! "Certificates and mutual TLS"). This module reads the arguments and prints what was
//! written; the names, the CA and the certificates are [`crate::net::pki`]'s.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{CliError, GlobalArgs};
use crate::net::pki::{self, DEFAULT_LEAF_DAYS, InitOptions, PeerName, PkiReport};

#[derive(Debug, Subcommand)]
pub(super) enum PkiCommand {
    /// Make a test CA (ca.pem, ca-key.pem) and, signed by it, a certificate and key per
    /// peer ({instance}.{role}.telepay.pem and -key.pem) in DIR. Without --peer: the demo
    /// cluster's peers (provider p1, front-ends fe1 fe2, card acquirers acq1 acq2, wallet
    /// acquirer wallet1, telecollection centre, terminals t1 t2). Refuses to replace any
    /// file unless --force. Prints one line per file written.
    Init(InitArgs),
    /// Sign certificates for more peers with the CA of DIR (made by `pki init`), e.g. a
    /// new terminal. Prints one line per file written.
    Issue(IssueArgs),
}

#[derive(Debug, Args)]
pub(super) struct InitArgs {
    /// The directory of the PKI (created, mode 0700, if missing).
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// A peer as ROLE:INSTANCE, repeatable. Roles: frontend, provider, acquirer-card,
    /// acquirer-wallet, telecollection, terminal; instance: 1 to 63 of a-z 0-9 -.
    #[arg(long = "peer", value_name = "ROLE:INSTANCE")]
    peers: Vec<PeerName>,
    /// Replace files that exist.
    #[arg(long)]
    force: bool,
    /// Validity of the peers' certificates, in days.
    #[arg(long, value_name = "DAYS", default_value_t = DEFAULT_LEAF_DAYS)]
    days: u32,
}

#[derive(Debug, Args)]
pub(super) struct IssueArgs {
    /// The directory of the PKI, holding ca.pem and ca-key.pem.
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// A peer as ROLE:INSTANCE, repeatable (at least one).
    #[arg(long = "peer", value_name = "ROLE:INSTANCE", required = true)]
    peers: Vec<PeerName>,
    /// Replace files that exist.
    #[arg(long)]
    force: bool,
    /// Validity of the certificates, in days.
    #[arg(long, value_name = "DAYS", default_value_t = DEFAULT_LEAF_DAYS)]
    days: u32,
}

/// Runs `telepay pki ...`.
pub(super) fn pki(
    global: &GlobalArgs,
    command: &PkiCommand,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let report = match command {
        PkiCommand::Init(args) => {
            let peers = if args.peers.is_empty() {
                pki::demo_peers()
            } else {
                args.peers.clone()
            };
            let options = InitOptions {
                force: args.force,
                leaf_days: args.days,
                ..InitOptions::default()
            };
            pki::init(&args.dir, &peers, &options)?
        }
        PkiCommand::Issue(args) => {
            let options = InitOptions {
                force: args.force,
                leaf_days: args.days,
                ..InitOptions::default()
            };
            pki::issue(&args.dir, &args.peers, &options)?
        }
    };
    print_report(global, &report, out)
}

fn print_report(
    global: &GlobalArgs,
    report: &PkiReport,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    if global.json {
        let files: Vec<_> = report
            .written
            .iter()
            .map(|file| {
                serde_json::json!({
                    "path": file.path.display().to_string(),
                    "content": file.content.to_string(),
                })
            })
            .collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&files)?)?;
        return Ok(());
    }
    for file in &report.written {
        writeln!(out, "wrote {}: {}", file.path.display(), file.content)?;
    }
    Ok(())
}
