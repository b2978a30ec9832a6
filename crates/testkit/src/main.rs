//! `trellis-upstream`: the test upstream as a process, for benchmarks and manual tests.
//!
//! Prints `listening on <addr>` on standard output once it accepts connections (so a script
//! can pass port 0 and read the port), and drains and exits on SIGINT or SIGTERM.

use std::io::Write;
use std::net::SocketAddr;

use anyhow::Context;
use clap::Parser;
use http::HeaderValue;
use tokio::net::TcpListener;
use trellis_testkit::upstream::{self, UpstreamConfig};

/// A fast HTTP/1.1 and h2c upstream: a fixed body for every path, plus `/echo`,
/// `/status/<code>`, `/delay/<ms>` and `/stream/<bytes>`.
#[derive(Debug, Parser)]
#[command(name = "trellis-upstream", version)]
struct Args {
    /// Address to listen on; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Worker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Size in bytes of the body of plain answers.
    #[arg(long, default_value_t = upstream::DEFAULT_BODY_SIZE)]
    body_size: usize,
    /// Sent back in the `x-trellis-upstream` header and in echoes.
    #[arg(long)]
    name: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let name = args
        .name
        .as_deref()
        .map(HeaderValue::from_str)
        .transpose()
        .context("--name must be a valid header value")?;
    let config = UpstreamConfig {
        body_size: args.body_size,
        name,
        ..Default::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async {
        let listener = TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("binding {}", args.listen))?;
        let addr = listener.local_addr().context("reading the bound address")?;
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on {addr}")
            .and_then(|()| stdout.flush())
            .context("stdout")?;
        drop(stdout);
        upstream::serve(listener, config, stop_signal()).await;
        Ok(())
    })
}

/// Completes on SIGINT or SIGTERM.
async fn stop_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(error) => {
            tracing::warn!(%error, "cannot watch SIGTERM; stopping on SIGINT only");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
