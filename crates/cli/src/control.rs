//! `trellis control`: the control plane, serving delta xDS to proxies and the debug API.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use trellis_control::{ControlPlane, Options};

/// Where proxies connect by default (istiod's plaintext xDS port).
pub(crate) const XDS_ADDRESS: &str = "127.0.0.1:15010";
/// Where the debug API listens by default (istiod's monitoring port).
pub(crate) const DEBUG_ADDRESS: &str = "127.0.0.1:15014";

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The directory of configuration files (Istio resources, Services, WorkloadEntries,
    /// ServiceEntries), watched for changes.
    #[arg(long, value_name = "DIR")]
    config_dir: PathBuf,

    /// Where proxies connect (delta ADS over gRPC).
    #[arg(long, value_name = "ADDR", default_value = XDS_ADDRESS)]
    xds_listen: SocketAddr,

    /// Where the debug API listens (what `trellis proxy-status` and `proxy-config` read).
    #[arg(long, value_name = "ADDR", default_value = DEBUG_ADDRESS)]
    debug_listen: SocketAddr,

    /// Where the CA (`ca/`, laid out as Istio's `cacerts`: put an intermediate there to sign
    /// under your own root) and the token key are kept; made on first start.
    #[arg(long, value_name = "DIR", default_value = ".trellis")]
    state_dir: PathBuf,

    /// The mesh's trust domain (workload identities are spiffe://<it>/ns/<ns>/sa/<sa>).
    #[arg(long, default_value = trellis_identity::DEFAULT_TRUST_DOMAIN)]
    trust_domain: String,

    /// The longest lifetime of a workload certificate.
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = parse_duration)]
    max_cert_ttl: trellis_api::types::Duration,

    /// Log filter (tracing's EnvFilter syntax).
    #[arg(long, default_value = "info", env = "TRELLIS_LOG")]
    log_level: String,
}

/// A duration flag in Istio's (Go's) syntax: `24h`, `90s`.
pub(crate) fn parse_duration(text: &str) -> Result<trellis_api::types::Duration, String> {
    trellis_api::types::Duration::parse(text).map_err(|e| e.to_string())
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&args.log_level)
                .with_context(|| format!("--log-level {:?}", args.log_level))?,
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(serve(args))?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let (stop, stopped) = watch::channel(false);
    let options = Options {
        state_dir: Some(args.state_dir.clone()),
        trust_domain: args.trust_domain.clone(),
        max_cert_ttl: args.max_cert_ttl.as_std(),
        ..Options::new(args.config_dir.clone())
    };
    let plane = ControlPlane::start(&options, stopped.clone())
        .with_context(|| format!("--config-dir {}", args.config_dir.display()))?;
    let xds = TcpListener::bind(args.xds_listen)
        .await
        .with_context(|| format!("--xds-listen {}", args.xds_listen))?;
    let debug_listener = TcpListener::bind(args.debug_listen)
        .await
        .with_context(|| format!("--debug-listen {}", args.debug_listen))?;
    let config = plane.mesh().config.clone();
    tracing::info!(
        xds = %xds.local_addr()?,
        debug = %debug_listener.local_addr()?,
        config = %args.config_dir.display(),
        version = config.version,
        resources = config.resources.len(),
        refused_files = config.errors.len(),
        "control plane ready"
    );
    let server = tokio::spawn(plane.serve(xds, debug_listener, stopped));
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    tracing::info!("stopping");
    let _ = stop.send(true);
    server.await??;
    Ok(())
}
