//! `trellis-proxy`: runs the data plane. Today it is configured from Istio YAML files
//! (`--standalone`); the control plane's xDS comes later.

// Startup errors are printed for the operator before logging is set up.
#![allow(clippy::print_stderr)]

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use trellis_api::types::{Duration, Labels};
use trellis_proxy::telemetry::{AccessLog, AccessLogFormat, Metrics, ProxyIdentity};
use trellis_proxy::{Proxy, admin, standalone};

/// Exit status for configuration errors (EX_CONFIG).
const EXIT_CONFIG: u8 = 78;

#[derive(Debug, Parser)]
#[command(
    name = "trellis-proxy",
    version,
    about = "The Trellis data plane proxy"
)]
struct Args {
    /// Istio configuration files or directories to serve as an edge gateway.
    #[arg(long, value_name = "PATH", num_args = 1.., required = true)]
    standalone: Vec<PathBuf>,

    /// Worker threads.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..))]
    concurrency: u16,

    /// Where the admin endpoints listen.
    #[arg(long, default_value = "127.0.0.1:15000")]
    admin_address: SocketAddr,

    /// The address gateway listeners bind (a server's `bind` overrides it).
    #[arg(long, default_value = "0.0.0.0")]
    listen_address: IpAddr,

    /// The namespace the gateway runs in (default istio-system).
    #[arg(long)]
    namespace: Option<String>,

    /// The gateway's labels (`istio=ingressgateway,app=web`): only Gateways selecting them
    /// apply. Without it, every Gateway in the files applies.
    #[arg(long, value_name = "KEY=VALUE,...")]
    labels: Option<String>,

    /// Log filter (`info`, `debug`, `trellis_proxy=trace`); changeable live at /logging.
    #[arg(long, default_value = "info", env = "TRELLIS_LOG")]
    log_level: String,

    /// Access log format: `text` (Envoy's default format), `json` or `off`. Without it, the
    /// Istio Telemetry resources in the files decide (the `envoy` provider means text).
    #[arg(long, value_name = "FORMAT")]
    access_log: Option<AccessLogFormat>,

    /// The workload this proxy is, for metrics (`source_workload`).
    #[arg(long, default_value = "istio-ingressgateway")]
    workload_name: String,

    /// How long in-flight requests may take to finish after SIGTERM or /quitquitquit.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    drain_timeout: Duration,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    Duration::parse(text).map_err(|e| e.to_string())
}

fn parse_labels(text: &str) -> Result<Labels, String> {
    text.split(',')
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
            _ => Err(format!("--labels: {pair:?} is not KEY=VALUE")),
        })
        .collect()
}

fn main() -> ExitCode {
    let args = Args::parse();
    let labels = match args.labels.as_deref().map(parse_labels).transpose() {
        Ok(labels) => labels,
        Err(error) => {
            eprintln!("trellis-proxy: {error}");
            return ExitCode::from(2);
        }
    };
    let set_log_level = match init_logging(&args.log_level) {
        Ok(set) => set,
        Err(error) => {
            eprintln!("trellis-proxy: --log-level {:?}: {error}", args.log_level);
            return ExitCode::from(2);
        }
    };
    let options = standalone::Options {
        paths: args.standalone.clone(),
        listen_ip: args.listen_address,
        namespace: args.namespace.clone(),
        labels,
    };
    let loaded = match standalone::load(&options) {
        Ok(loaded) => loaded,
        Err(invalid) => {
            eprintln!("trellis-proxy: {invalid}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    // The main thread runs the admin endpoints, signals and reloads; traffic runs on the
    // workers (see `trellis_proxy::worker`).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("the tokio runtime starts");
    let format = args.access_log.unwrap_or(match loaded.access_logging {
        Some(true) => AccessLogFormat::Text,
        _ => AccessLogFormat::Off,
    });
    let namespace = options
        .namespace
        .clone()
        .unwrap_or_else(|| trellis_api::meta::ROOT_NAMESPACE.to_owned());
    let identity = ProxyIdentity::from_labels(
        &args.workload_name,
        &namespace,
        &options.labels.clone().unwrap_or_default(),
    );
    let metrics = Arc::new(Metrics::new(&identity));
    let access_log = match AccessLog::stdout(format, metrics.access_log_dropped()) {
        Ok(log) => log,
        Err(error) => {
            eprintln!("trellis-proxy: cannot start the access log: {error}");
            return ExitCode::from(1);
        }
    };
    trellis_proxy::worker::set_count(usize::from(args.concurrency));
    let proxy = Proxy::with_telemetry(loaded.config, metrics, access_log);
    match runtime.block_on(run(args, options, proxy, set_log_level)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            ExitCode::from(1)
        }
    }
}

async fn run(
    args: Args,
    options: standalone::Options,
    proxy: Arc<Proxy>,
    set_log_level: admin::SetLogLevel,
) -> anyhow::Result<()> {
    let (drain, draining) = watch::channel(false);
    let workers = trellis_proxy::worker::run(&proxy, usize::from(args.concurrency), &draining)?;
    for listener in &workers.bound {
        tracing::info!(listener = %listener.name, address = %listener.address, "listening");
    }
    let admin_listener = TcpListener::bind(args.admin_address)
        .await
        .with_context(|| format!("admin address {}", args.admin_address))?;
    let controls = admin::Controls {
        drain: drain.clone(),
        set_log_level: Some(set_log_level),
        metrics: {
            let proxy = proxy.clone();
            Arc::new(move || proxy.metrics_text())
        },
    };
    tokio::spawn(admin::serve(proxy.clone(), admin_listener, controls));
    tokio::spawn(trellis_proxy::upstream::health::run(
        proxy.clone(),
        draining.clone(),
    ));
    tracing::info!(admin = %args.admin_address, "ready");

    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut hangup = signal(SignalKind::hangup())?;
    let mut quit = draining.clone();
    loop {
        tokio::select! {
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
            () = trellis_proxy::listener::draining(&mut quit) => break,
            _ = hangup.recv() => reload(&proxy, &options).await,
        }
    }
    tracing::info!(open = proxy.connections.open(), "draining");
    let _ = drain.send(true);
    if tokio::time::timeout(args.drain_timeout.as_std(), proxy.connections.idle())
        .await
        .is_err()
    {
        tracing::warn!(
            open = proxy.connections.open(),
            "drain deadline passed; closing the rest"
        );
    }
    Ok(())
}

/// Re-reads the files (on SIGHUP). A configuration with errors is refused and the one in
/// force stays.
async fn reload(proxy: &Arc<Proxy>, options: &standalone::Options) {
    let options = options.clone();
    let loaded = tokio::task::spawn_blocking(move || standalone::load(&options)).await;
    match loaded {
        Ok(Ok(loaded)) => {
            for warning in &loaded.warnings {
                tracing::warn!("{warning}");
            }
            let version = proxy.config.update(loaded.config);
            tracing::info!(version, "configuration reloaded");
        }
        Ok(Err(invalid)) => {
            tracing::error!("configuration not reloaded, the one in force stays: {invalid}")
        }
        Err(error) => tracing::error!(%error, "configuration reload failed"),
    }
}

/// Sets up logging to stderr; returns the function that changes the filter live.
fn init_logging(filter: &str) -> Result<admin::SetLogLevel, String> {
    let filter = EnvFilter::try_new(filter).map_err(|e| e.to_string())?;
    let (layer, handle) = tracing_subscriber::reload::Layer::new(filter);
    tracing_subscriber::registry()
        .with(layer)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
        )
        .init();
    Ok(Arc::new(move |level: &str| {
        if !level.is_empty() {
            let filter =
                EnvFilter::try_new(level).map_err(|e| format!("bad log filter {level:?}: {e}"))?;
            handle.reload(filter).map_err(|e| e.to_string())?;
        }
        handle
            .with_current(|f| f.to_string())
            .map_err(|e| e.to_string())
    }))
}
