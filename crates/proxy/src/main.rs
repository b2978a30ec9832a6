//! `trellis-proxy`: runs the data plane, configured by the control plane over xDS (`--xds`)
//! or from Istio YAML files as an edge gateway (`--standalone`).

// Startup errors are printed for the operator before logging is set up.
#![allow(clippy::print_stderr)]

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use clap::Parser;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use trellis_api::types::{Duration, Labels};
use trellis_proxy::identity::IdentityOptions;
use trellis_proxy::telemetry::{AccessLog, AccessLogFormat, Metrics, ProxyIdentity};
use trellis_proxy::worker::Workers;
use trellis_proxy::xds::XdsOptions;
use trellis_proxy::{Proxy, admin, standalone};
use trellis_proxy_config::Config;

/// Exit status for configuration errors (EX_CONFIG).
const EXIT_CONFIG: u8 = 78;

#[derive(Debug, Parser)]
#[command(
    name = "trellis-proxy",
    version,
    about = "The Trellis data plane proxy",
    group(clap::ArgGroup::new("source").required(true).args(["standalone", "xds"]))
)]
struct Args {
    /// Istio configuration files or directories to serve as an edge gateway.
    #[arg(long, value_name = "PATH", num_args = 1..)]
    standalone: Vec<PathBuf>,

    /// The control plane to take configuration from (`host:port` of `trellis control`'s
    /// --xds-listen).
    #[arg(long, value_name = "ADDR", env = "TRELLIS_XDS")]
    xds: Option<String>,

    /// With --xds: whether this proxy is a workload's sidecar or a gateway.
    #[arg(long, value_enum, default_value_t = Role::Sidecar, env = "TRELLIS_ROLE")]
    role: Role,

    /// With --xds, for a sidecar: where its outbound listener listens.
    #[arg(
        long,
        default_value = "127.0.0.1:15001",
        env = "TRELLIS_OUTBOUND_ADDRESS"
    )]
    outbound_address: SocketAddr,

    /// With --xds, for a sidecar: where its application listens, on each of its ports.
    #[arg(long, default_value = "127.0.0.1", env = "TRELLIS_APP_IP")]
    app_ip: IpAddr,

    /// With --xds, for a sidecar whose inbound traffic is captured (iptables `REDIRECT`, as a
    /// pod's capture rules do): where it arrives. Each connection is then served by the
    /// inbound listener of its original destination, and inbound listeners bind nothing of
    /// their own (the application holds their ports).
    #[arg(long, value_name = "ADDR", env = "TRELLIS_INBOUND_CAPTURE")]
    inbound_capture: Option<SocketAddr>,

    /// With --xds: a file holding the bootstrap token the control plane issued for this
    /// workload's identity (`POST /tokens`); the proxy shows it to the control plane's CA to
    /// get its certificate. `TRELLIS_TOKEN` may hold the token itself instead.
    #[arg(long, value_name = "PATH", env = "TRELLIS_TOKEN_FILE")]
    token_file: Option<std::path::PathBuf>,

    /// Worker threads.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..))]
    concurrency: u16,

    /// Where the admin endpoints listen.
    #[arg(long, default_value = "127.0.0.1:15000")]
    admin_address: SocketAddr,

    /// The address gateway listeners bind (a server's `bind` overrides it).
    #[arg(long, default_value = "0.0.0.0")]
    listen_address: IpAddr,

    /// The namespace the proxy's workload runs in (default: `default` with --xds,
    /// `istio-system` for a standalone gateway).
    #[arg(long, env = "TRELLIS_NAMESPACE")]
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

    /// The workload this proxy is: its identity towards the control plane, and
    /// `source_workload` in metrics.
    #[arg(
        long = "workload",
        visible_alias = "workload-name",
        env = "TRELLIS_WORKLOAD",
        default_value = "istio-ingressgateway"
    )]
    workload_name: String,

    /// How long in-flight requests may take to finish after SIGTERM or /quitquitquit.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    drain_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Role {
    Sidecar,
    Gateway,
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
    let (config, access_logging, source) = match &args.xds {
        Some(address) => {
            let namespace = args
                .namespace
                .clone()
                .unwrap_or_else(|| "default".to_owned());
            let role = match args.role {
                Role::Sidecar => "sidecar",
                Role::Gateway => "gateway",
            };
            let node = trellis_proto::node::node(
                &args.workload_name,
                &namespace,
                &[
                    (trellis_proto::node::ROLE, role.to_owned()),
                    (
                        trellis_proto::node::OUTBOUND_ADDRESS,
                        args.outbound_address.to_string(),
                    ),
                    (trellis_proto::node::APP_IP, args.app_ip.to_string()),
                    (
                        trellis_proto::node::LISTEN_IP,
                        args.listen_address.to_string(),
                    ),
                ],
            );
            let address = if address.contains("://") {
                address.clone()
            } else {
                format!("http://{address}")
            };
            (
                Config::default(),
                None,
                Source::Xds(XdsOptions { address, node }),
            )
        }
        None => match standalone::load(&options) {
            Ok(loaded) => {
                for warning in &loaded.warnings {
                    tracing::warn!("{warning}");
                }
                (
                    loaded.config,
                    loaded.access_logging,
                    Source::Standalone(options.clone()),
                )
            }
            Err(invalid) => {
                eprintln!("trellis-proxy: {invalid}");
                return ExitCode::from(EXIT_CONFIG);
            }
        },
    };
    // The main thread runs the admin endpoints, signals, reloads and the xDS client; traffic
    // runs on the workers (see `trellis_proxy::worker`).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("the tokio runtime starts");
    let format = args.access_log.unwrap_or(match access_logging {
        Some(true) => AccessLogFormat::Text,
        _ => AccessLogFormat::Off,
    });
    let namespace = options.namespace.clone().unwrap_or_else(|| match source {
        Source::Xds(_) => "default".to_owned(),
        Source::Standalone(_) => trellis_api::meta::ROOT_NAMESPACE.to_owned(),
    });
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
    let proxy = Proxy::with_telemetry(config, metrics, access_log);
    match runtime.block_on(run(args, source, proxy, set_log_level)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            ExitCode::from(1)
        }
    }
}

/// The bootstrap token: `--token-file`'s contents, else `TRELLIS_TOKEN`.
fn token(args: &Args) -> anyhow::Result<Option<String>> {
    if let Some(path) = &args.token_file {
        let token = std::fs::read_to_string(path)
            .with_context(|| format!("--token-file {}", path.display()))?;
        return Ok(Some(token.trim().to_owned()));
    }
    Ok(std::env::var("TRELLIS_TOKEN")
        .ok()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty()))
}

/// Where the configuration comes from.
#[derive(Debug)]
enum Source {
    Standalone(standalone::Options),
    Xds(XdsOptions),
}

async fn run(
    args: Args,
    source: Source,
    proxy: Arc<Proxy>,
    set_log_level: admin::SetLogLevel,
) -> anyhow::Result<()> {
    let (drain, draining) = watch::channel(false);
    let workers = trellis_proxy::worker::run(
        &proxy,
        usize::from(args.concurrency),
        &draining,
        args.inbound_capture,
    )?;
    let workers = Arc::new(Mutex::new(workers));
    let admin_listener = TcpListener::bind(args.admin_address)
        .await
        .with_context(|| format!("admin address {}", args.admin_address))?;
    let (configured, configured_rx) = watch::channel(false);
    let controls = admin::Controls {
        drain: drain.clone(),
        set_log_level: Some(set_log_level),
        metrics: {
            let proxy = proxy.clone();
            Arc::new(move || proxy.metrics_text())
        },
        configured: matches!(source, Source::Xds(_)).then_some(configured_rx),
    };
    tokio::spawn(admin::serve(proxy.clone(), admin_listener, controls));
    tokio::spawn(trellis_proxy::upstream::health::run(
        proxy.clone(),
        draining.clone(),
    ));
    let standalone = match source {
        Source::Xds(options) => {
            tracing::info!(control = %options.address, node = %options.node.id, "taking configuration from the control plane");
            let apply = {
                let (proxy, workers) = (proxy.clone(), workers.clone());
                Box::new(move |config: Config| apply(&proxy, &workers, config))
            };
            match token(&args) {
                Ok(Some(token)) => {
                    tokio::spawn(trellis_proxy::identity::run(
                        IdentityOptions {
                            address: options.address.clone(),
                            token,
                            lifetime: std::time::Duration::ZERO,
                        },
                        proxy.certificates.clone(),
                        draining.clone(),
                    ));
                }
                Ok(None) => {
                    tracing::info!(
                        "no bootstrap token (--token-file, TRELLIS_TOKEN): no certificate"
                    );
                }
                Err(error) => return Err(error),
            }
            tokio::spawn(trellis_proxy::xds::run(
                options,
                apply,
                configured,
                proxy.on_demand.clone(),
                draining.clone(),
            ));
            None
        }
        Source::Standalone(options) => Some(options),
    };
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
            _ = hangup.recv() => match &standalone {
                Some(options) => reload(&proxy, &workers, options).await,
                None => tracing::info!("SIGHUP ignored: the configuration comes from the control plane"),
            },
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

/// Puts a configuration in force: swapped in for new requests, then its listeners bound (and
/// those it no longer has drained).
fn apply(proxy: &Arc<Proxy>, workers: &Mutex<Workers>, config: Config) -> Result<(), String> {
    let listeners = config.listeners.clone();
    let version = proxy.config.update(config);
    let errors = workers.lock().expect("workers lock").apply(&listeners);
    tracing::info!(version, "configuration applied");
    if errors.is_empty() {
        Ok(())
    } else {
        let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
        Err(errors.join("; "))
    }
}

/// Re-reads the files (on SIGHUP). A configuration with errors is refused and the one in
/// force stays.
async fn reload(proxy: &Arc<Proxy>, workers: &Mutex<Workers>, options: &standalone::Options) {
    let options = options.clone();
    let loaded = tokio::task::spawn_blocking(move || standalone::load(&options)).await;
    match loaded {
        Ok(Ok(loaded)) => {
            for warning in &loaded.warnings {
                tracing::warn!("{warning}");
            }
            if let Err(errors) = apply(proxy, workers, loaded.config) {
                tracing::error!("listeners not bound: {errors}");
            }
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
