//! `trellis-demo`: one of the demo application's services (see the library's documentation).

use clap::Parser;
use tokio::net::TcpListener;
use tokio::sync::watch;
use trellis_demo::{Options, Role, StarColor, Upstreams};

/// One service of the demo application (a Bookinfo-like book page).
#[derive(Debug, Parser)]
#[command(name = "trellis-demo", disable_version_flag = true)]
struct Args {
    /// productpage, details, reviews or ratings.
    #[arg(long, env = "TRELLIS_DEMO_ROLE")]
    role: String,
    /// The reviews version: v1 (no ratings), v2 (black stars) or v3 (red stars).
    #[arg(long, env = "TRELLIS_DEMO_VERSION", default_value = "v1")]
    version: String,
    /// Where to listen (default: port 9080 on TRELLIS_LISTEN_IP, the address the local mesh
    /// gives an application on loopback, else on every address).
    #[arg(long, env = "TRELLIS_DEMO_LISTEN")]
    listen: Option<std::net::SocketAddr>,
    /// The details service (productpage calls it).
    #[arg(long, env = "DETAILS_URL", default_value = "http://details:9080")]
    details: String,
    /// The reviews service (productpage calls it).
    #[arg(long, env = "REVIEWS_URL", default_value = "http://reviews:9080")]
    reviews: String,
    /// The ratings service (reviews v2 and v3 call it).
    #[arg(long, env = "RATINGS_URL", default_value = "http://ratings:9080")]
    ratings: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TRELLIS_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let role = match args.role.as_str() {
        "productpage" => Role::Productpage,
        "details" => Role::Details,
        "ratings" => Role::Ratings,
        "reviews" => Role::Reviews(StarColor::from_version(&args.version).ok_or_else(|| {
            anyhow::anyhow!(
                "--version {:?}: reviews comes as v1, v2 or v3",
                args.version
            )
        })?),
        other => anyhow::bail!(
            "--role {other:?}: the roles are productpage, details, reviews and ratings"
        ),
    };
    let listen = match args.listen {
        Some(listen) => listen,
        None => {
            let ip = match std::env::var("TRELLIS_LISTEN_IP") {
                Ok(ip) => ip
                    .parse()
                    .map_err(|e| anyhow::anyhow!("TRELLIS_LISTEN_IP {ip:?}: {e}"))?,
                Err(_) => std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            };
            std::net::SocketAddr::new(ip, 9080)
        }
    };
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    tracing::info!(role = %args.role, address = %listener.local_addr()?, "listening");
    let options = Options {
        role,
        upstreams: Upstreams {
            details: args.details,
            reviews: args.reviews,
            ratings: args.ratings,
            via: ["HTTP_PROXY", "http_proxy"]
                .into_iter()
                .find_map(|name| std::env::var(name).ok())
                .filter(|via| !via.is_empty()),
        },
        pod: std::env::var("HOSTNAME")
            .unwrap_or_else(|_| format!("{}-{}", args.role, args.version)),
    };
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        let _ = stop.send(true);
    });
    trellis_demo::serve(listener, options, stopped).await;
    Ok(())
}
