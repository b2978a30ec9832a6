//! `trellis token`: a bootstrap token from the control plane for a workload identity, to hand
//! to that workload's proxy (`trellis-proxy --token-file`), with which it gets its certificate.

use std::net::SocketAddr;
use std::process::ExitCode;

use serde_json::json;

use crate::control::DEBUG_ADDRESS;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The identity, as `<namespace>/<service-account>`.
    #[arg(value_name = "NAMESPACE/SERVICE_ACCOUNT")]
    identity: String,
    /// How long the token is good for (the proxy shows it at each renewal).
    #[arg(long, value_name = "DURATION", default_value = "720h", value_parser = crate::control::parse_duration)]
    ttl: trellis_api::types::Duration,
    /// The control plane's debug address.
    #[arg(long, value_name = "ADDR", default_value = DEBUG_ADDRESS, env = "TRELLIS_CONTROL_DEBUG")]
    control: SocketAddr,
}

/// Prints the token on standard output, and the identity it proves on standard error.
#[allow(clippy::print_stdout, clippy::print_stderr)]
pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Some((namespace, service_account)) = args.identity.split_once('/') else {
        anyhow::bail!("{:?} is not <namespace>/<service-account>", args.identity);
    };
    let answer = crate::inspect::post(
        args.control,
        "/tokens",
        &json!({
            "namespace": namespace,
            "service_account": service_account,
            "ttl_seconds": args.ttl.as_std().as_secs(),
        }),
    )?;
    let token = answer["token"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("the control plane sent no token: {answer}"))?;
    eprintln!("token for {}", answer["identity"].as_str().unwrap_or("?"));
    println!("{token}");
    Ok(ExitCode::SUCCESS)
}
