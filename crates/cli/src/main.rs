//! `trellis`: the command-line tool of the Trellis service mesh.
//!
//! Thin wiring: each subcommand parses its flags here and hands the work to the library crates.

// Printing findings and errors for the operator is this binary's job.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod analyze;
mod control;
mod explain;
mod inspect;
mod mesh;
mod token;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "trellis",
    version,
    about = "The Trellis service mesh",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate configuration files and analyse them together, as `istioctl analyze` does.
    Analyze(analyze::Args),
    /// Run the control plane: watch a configuration directory and push each proxy its
    /// configuration over delta xDS.
    Control(control::Args),
    /// Show the proxies connected to the control plane and whether they have their
    /// configuration (SYNCED), are behind (STALE) or refused it (NACK).
    ProxyStatus(inspect::StatusArgs),
    /// Show the listeners, routes, clusters or endpoints the control plane gives a proxy.
    ProxyConfig(inspect::ConfigArgs),
    /// Explain what a request from a workload would meet: listener, virtual host, route, fault,
    /// destination and policies, each with the resource it came from; or why it gets a 404 or
    /// 503.
    Explain(explain::Args),
    /// Run the local mesh: the control plane, a pod per workload replica with its sidecar and
    /// traffic capture, and an ingress gateway, until Ctrl-C (needs root).
    Up(mesh::UpArgs),
    /// Stop the local mesh and remove everything it created.
    Down(mesh::DownArgs),
    /// Show the local mesh's pods and services.
    Status(mesh::StatusArgs),
    /// Put Istio resources into the running local mesh's configuration (replacing those of
    /// the same kind, namespace and name).
    Apply(mesh::ApplyArgs),
    /// Remove Istio resources from the running local mesh's configuration.
    Delete(mesh::ApplyArgs),
    /// Print a pod's logs (or the control plane's: `control`).
    Logs(mesh::LogsArgs),
    /// Run a command inside a pod's network, as its application runs.
    Exec(mesh::ExecArgs),
    /// Get a bootstrap token for a workload identity (<namespace>/<service-account>), for its
    /// proxy to show the control plane's CA (`trellis-proxy --token-file`).
    Token(token::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Analyze(args) => analyze::run(args),
        Command::Control(args) => control::run(args),
        Command::ProxyStatus(args) => inspect::status(args),
        Command::ProxyConfig(args) => inspect::config(args),
        Command::Explain(args) => explain::run(args),
        Command::Token(args) => token::run(args),
        Command::Up(args) => mesh::up(args),
        Command::Down(args) => mesh::down(args),
        Command::Status(args) => mesh::status(args),
        Command::Apply(args) => mesh::apply(args),
        Command::Delete(args) => mesh::delete(args),
        Command::Logs(args) => mesh::logs(args),
        Command::Exec(args) => mesh::exec(args),
    };
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("trellis: {error:#}");
            ExitCode::from(1)
        }
    }
}
