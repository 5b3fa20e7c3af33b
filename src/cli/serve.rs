//! `telepay serve ROLE --config FILE`: one role of the patent's system as a network
//! service over mutual TLS (docs/deployment.md), until SIGINT or SIGTERM.
//!
//! Logs go to standard error as JSON lines (`tracing`), at the level `TELEPAY_LOG`
//! names (`error`, `warn`, `info` — the default —, `debug`, `trace`). They name
//! messages by their step and parties, never a PIN, a key or a card number.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use super::CliError;
use crate::net::config::ServiceConfig;
use crate::net::pki::ServiceRole;
use crate::net::service::Service;

/// Arguments of `telepay serve`.
#[derive(Debug, Args)]
pub(super) struct ServeArgs {
    /// The role: frontend, provider, acquirer-card or acquirer-wallet
    #[arg(value_name = "ROLE")]
    role: ServiceRole,
    /// The service's configuration (TOML; docs/deployment.md)
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
}

/// Runs the service until a signal stops it.
pub(super) fn serve(args: &ServeArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let level = match std::env::var("TELEPAY_LOG").as_deref() {
        Ok("error") => tracing::Level::ERROR,
        Ok("warn") => tracing::Level::WARN,
        Ok("debug") => tracing::Level::DEBUG,
        Ok("trace") => tracing::Level::TRACE,
        _ => tracing::Level::INFO,
    };
    // A second subscriber (a test running two services in one process) is refused:
    // the first one goes on logging for both.
    let _ = tracing_subscriber::fmt()
        .json()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .try_init();
    let config =
        ServiceConfig::load(&args.config).map_err(crate::net::service::ServiceError::from)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let service = Service::start(args.role, &config, &args.config).await?;
        let address = service.local_address()?;
        writeln!(out, "serving {} on https://{address}", args.role)?;
        out.flush()?;
        service.run(shutdown_signal()).await?;
        writeln!(out, "stopped")?;
        Ok(())
    })
}

/// Resolves at the first SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(terminate) => terminate,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
