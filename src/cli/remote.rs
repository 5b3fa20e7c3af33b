//! `telepay purchase --frontend URL`: the consultation terminal alone — client device,
//! payer device and its card — buying through a front-end served elsewhere
//! (`telepay serve frontend`), over mutual TLS with the terminal's certificate.

use std::io::Write;
use std::time::Duration;

use super::purchase::{
    PayerSetup, PurchaseArgs, TerminalUser, card_line, data_dir, load_catalogue, parse_address,
    payer_setup, result_lines, software_card,
};
use super::{CliError, GlobalArgs, open_powered_uri};
use crate::messages::TerminalId;
use crate::net::link::LinkOptions;
use crate::net::pki::{PeerName, ServiceRole};
use crate::net::switchboard::Route;
use crate::net::terminal::{RemoteTerminal, TerminalRoles};
use crate::net::tls::TlsIdentity;
use crate::purchase::{Fate, LogEntry, PurchaseLog, render};
use crate::terminal::card_module::{CardModule, TerminalData};
use crate::terminal::client::ClientDevice;
use crate::terminal::payer::PayerDevice;

/// How long the terminal waits for the purchase to end: the front-end's own deadlines
/// (the payer device's two minutes, the acquirer's thirty seconds) end it before.
const PATIENCE: Duration = Duration::from_secs(180);

/// `--frontend-name`: the certificate name of a front-end, `INSTANCE.frontend.telepay`.
pub(super) fn front_end_name(name: &str) -> Result<PeerName, CliError> {
    PeerName::from_dns_name(name)
        .ok()
        .filter(|peer| peer.role() == ServiceRole::FrontEnd)
        .ok_or_else(|| CliError::BadArgument {
            argument: "--frontend-name",
            input: name.to_owned(),
            expected: "a front-end's certificate name (INSTANCE.frontend.telepay)",
        })
}

/// Buys through the front-ends of `--frontend`, the first first.
pub(super) fn purchase(
    global: &GlobalArgs,
    args: &PurchaseArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let bad = |argument: &'static str, input: &str, expected: &'static str| CliError::BadArgument {
        argument,
        input: input.to_owned(),
        expected,
    };
    let names: Vec<String> = if args.frontend_name.is_empty() {
        (1..=args.frontend.len())
            .map(|index| format!("fe{index}.frontend.telepay"))
            .collect()
    } else if args.frontend_name.len() == args.frontend.len() {
        args.frontend_name.clone()
    } else {
        return Err(bad(
            "--frontend-name",
            &args.frontend_name.join(" "),
            "one certificate name for each --frontend, in the same order",
        ));
    };
    let mut front_ends = Vec::with_capacity(names.len());
    for (url, name) in args.frontend.iter().zip(&names) {
        front_ends.push(Route {
            url: url.clone(),
            peer: front_end_name(name)?,
        });
    }
    let terminal_name = PeerName::new(ServiceRole::Terminal, &args.terminal).map_err(|_| {
        bad(
            "--terminal",
            &args.terminal,
            "1 to 63 of [a-z0-9-], not starting or ending with -",
        )
    })?;
    let pki = args.pki.as_deref().ok_or(CliError::MissingArgument {
        argument: "--pki",
        when: "with --frontend: the terminal's certificate and the CA",
    })?;
    let identity = TlsIdentity::load(
        &terminal_name.cert_path(pki),
        &terminal_name.key_path(pki),
        &pki.join("ca.pem"),
    )
    .map_err(|error| CliError::Purchase(format!("the terminal's certificate: {error}")))?;

    let catalogue = load_catalogue(args.catalogue.as_deref())?;
    let (service, _) = super::purchase::what_to_buy(&catalogue, args)?;
    let provider = catalogue.provider().clone();
    let address = args.deliver_to.as_deref().map(parse_address).transpose()?;
    let dir = data_dir(args.data_dir())?;
    let PayerSetup {
        choice,
        wallet,
        reader,
        ..
    } = payer_setup(args, args.user.as_deref(), &dir)?;
    let uri = match (&global.reader, &reader) {
        (Some(uri), _) | (None, Some(uri)) => uri.clone(),
        (None, None) => software_card(&dir, "cb"),
    };
    let transport = open_powered_uri(global, &uri)?;
    let terminal = TerminalId::from(args.terminal.as_str());
    let mut payer = PayerDevice::new(
        terminal.clone(),
        CardModule::new(transport, TerminalData::france()),
        TerminalUser::new(args.pin_stdin),
    )
    .with_means(choice);
    if let Some(wallet) = wallet {
        payer = payer.with_wallet(wallet);
    }
    // The front-end outlives this run: request numbers that no earlier run used.
    let first_request = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |since| u64::try_from(since.as_millis()).unwrap_or(1));
    let roles = TerminalRoles {
        client: ClientDevice::new(terminal).numbering_from(first_request),
        payer,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let run = runtime.block_on(async {
        let terminal = RemoteTerminal::new(roles, front_ends, &identity, LinkOptions::default())
            .map_err(|error| CliError::Purchase(error.to_string()))?;
        let run = terminal
            .purchase(provider, service, address, PATIENCE)
            .await;
        Ok::<_, CliError>((run, terminal))
    });
    let (run, terminal) = run?;

    let now = crate::purchase::SystemClock;
    let log = PurchaseLog {
        entries: run
            .messages
            .iter()
            .map(|envelope| LogEntry {
                at: crate::purchase::Clock::now(&mut { now }),
                envelope: envelope.clone(),
                fate: Fate::Delivered,
                note: None,
            })
            .collect(),
    };
    write!(out, "{}", render::text(&log))?;
    for trouble in &run.troubles {
        writeln!(out, "network: {trouble}")?;
    }
    let payments: Vec<_> = log
        .entries
        .iter()
        .filter_map(|entry| match &entry.envelope.message {
            crate::messages::Message::PaymentRequest(d) => Some(d.payment.clone()),
            _ => None,
        })
        .collect();
    let pin_failure = terminal.with_roles(|roles| {
        for payment in &payments {
            if let Some(line) = roles.payer.payment_state(payment).and_then(card_line) {
                let _ = writeln!(out, "{line}");
            }
        }
        roles.payer.user().failure().map(str::to_owned)
    });
    writeln!(
        out,
        "front-end: {}{}",
        terminal.front_end().unwrap_or_default(),
        match run.failovers {
            0 => String::new(),
            moves => format!(" (after {moves} move(s) to another front-end)"),
        }
    )?;
    result_lines(&run.result, pin_failure.as_deref(), out)
}
