//! Standalone mode: the proxy configured from Istio YAML files instead of the control plane,
//! as an edge gateway. The files are read and validated as `trellis analyze` reads them, then
//! translated by `trellis-translate` (Gateways become listeners, VirtualServices routes,
//! ServiceEntries and DestinationRules clusters).

use std::net::IpAddr;
use std::path::PathBuf;

use trellis_api::LoadOptions;
use trellis_api::fs::{load_all, resolve_host};
use trellis_api::types::Labels;
use trellis_proxy_config::Config;
use trellis_translate::{GatewayOptions, Registry};

/// Where the configuration comes from and who this gateway is.
#[derive(Debug, Clone)]
pub struct Options {
    pub paths: Vec<PathBuf>,
    pub listen_ip: IpAddr,
    /// The namespace the gateway runs in (`istio-system` when unset).
    pub namespace: Option<String>,
    /// The gateway's labels: only Gateways selecting them apply. All Gateways apply when unset.
    pub labels: Option<Labels>,
}

/// A configuration ready to serve, and what the translation could not carry over.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<String>,
    /// Whether the Telemetry resources turn access logs on (`Some(true)`) or off; `None`
    /// when none says.
    pub access_logging: Option<bool>,
}

/// Why the files could not become a configuration; every problem is listed.
#[derive(Debug, thiserror::Error)]
#[error("the configuration files have {} problem(s):\n  {}", .0.len(), .0.join("\n  "))]
pub struct Invalid(pub Vec<String>);

/// Reads, validates and translates the files.
pub fn load(options: &Options) -> Result<Loaded, Invalid> {
    let loaded = load_all(&options.paths, &LoadOptions::default()).map_err(Invalid)?;
    let resources = trellis_api::latest_definitions(loaded.into_iter().map(|l| l.resource));
    let registry = Registry::from_resources(&resources, &resolve_host);
    let gateway = GatewayOptions {
        listen_ip: options.listen_ip,
        namespace: options.namespace.clone(),
        labels: options.labels.clone(),
        trust_domain: trellis_translate::DEFAULT_TRUST_DOMAIN.to_owned(),
    };
    let translation = trellis_translate::gateway(&resources, &registry, &gateway);
    let mut warnings = registry.warnings().to_vec();
    warnings.extend(translation.warnings);
    let namespace = options
        .namespace
        .as_deref()
        .unwrap_or(trellis_api::meta::ROOT_NAMESPACE);
    let access_logging =
        trellis_translate::access_logging(&resources, namespace, options.labels.as_ref());
    Ok(Loaded {
        config: translation.config,
        warnings,
        access_logging,
    })
}
