//! Standalone mode: the proxy configured from Istio YAML files instead of the control plane,
//! as an edge gateway. The files are read and validated as `trellis analyze` reads them, then
//! translated by `trellis-translate` (Gateways become listeners, VirtualServices routes,
//! ServiceEntries and DestinationRules clusters).

use std::collections::HashMap;
use std::net::{IpAddr, ToSocketAddrs};
use std::path::PathBuf;

use trellis_api::fs::load_paths;
use trellis_api::types::Labels;
use trellis_api::{LoadOptions, Resource};
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
    let (files, unreadable) = load_paths(&options.paths, &LoadOptions::default());
    let mut problems: Vec<String> = unreadable
        .iter()
        .map(|u| format!("{}: cannot read: {}", u.path.display(), u.error))
        .collect();
    let mut resources: Vec<Resource> = Vec::new();
    let mut index: HashMap<(trellis_api::Kind, String, String), usize> = HashMap::new();
    for file in files {
        if let Some(syntax) = &file.syntax {
            problems.push(format!("{}: {}", syntax.location, syntax.message));
        }
        for rejected in &file.rejected {
            let what = match (&rejected.kind, &rejected.name) {
                (Some(kind), Some(name)) => format!("{kind} {name}"),
                (Some(kind), None) => kind.clone(),
                _ => "document".to_owned(),
            };
            for issue in rejected
                .issues
                .iter()
                .filter(|i| i.severity == trellis_api::Severity::Error)
            {
                problems.push(format!(
                    "{}: {what}: {issue}",
                    rejected.origin.locate(&issue.path)
                ));
            }
        }
        for loaded in file.loaded {
            let resource = loaded.resource;
            let key = (
                resource.kind(),
                resource.namespace().to_owned(),
                resource.name().to_owned(),
            );
            match index.get(&key) {
                Some(&at) => resources[at] = resource,
                None => {
                    index.insert(key, resources.len());
                    resources.push(resource);
                }
            }
        }
    }
    if !problems.is_empty() {
        return Err(Invalid(problems));
    }
    let registry = Registry::from_resources(&resources, &resolve);
    let gateway = GatewayOptions {
        listen_ip: options.listen_ip,
        namespace: options.namespace.clone(),
        labels: options.labels.clone(),
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

/// Resolves a DNS name with the system resolver.
fn resolve(host: &str) -> Vec<IpAddr> {
    match (host, 0).to_socket_addrs() {
        Ok(addresses) => addresses.map(|a| a.ip()).collect(),
        Err(error) => {
            tracing::warn!(%host, %error, "cannot resolve");
            Vec::new()
        }
    }
}
