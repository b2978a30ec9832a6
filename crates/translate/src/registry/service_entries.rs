//! ServiceEntries into registry services: one per host, endpoints by resolution; outside the
//! mesh unless `location: MESH_INTERNAL` (Istio's default is `MESH_EXTERNAL`).

use std::collections::BTreeSet;

use trellis_api::Resource;
use trellis_api::networking::{
    ServiceEntry, ServiceEntryLocation, ServiceEntryResolution as Resolution,
};

use super::{
    Owner, PortTarget, Registry, Resolve, Service, ServiceEndpoint, ServicePort, Workloads,
    endpoint_addresses, endpoints_at,
};
use crate::hosts::to_fqdn;
use crate::resources::{Named, of_kind};
use crate::warnings::Warnings;

pub(super) fn add(
    registry: &mut Registry,
    resources: &[Resource],
    workloads: &Workloads<'_>,
    resolve: Resolve<'_>,
    warnings: &mut Warnings,
) {
    for entry in of_kind::<ServiceEntry>(resources) {
        let source = format!("ServiceEntry {}", entry.full_name());
        let spec = entry.spec;
        let ports: Vec<ServicePort> = spec
            .ports
            .iter()
            .map(|p| ServicePort {
                number: p.number.get(),
                name: p.name.clone(),
                protocol: p.protocol,
            })
            .collect();
        let visible_to = visibility(&spec.export_to, entry.namespace());
        for host in &spec.hosts {
            let host = to_fqdn(host, entry.namespace());
            let endpoints = endpoints(entry, &host, workloads, resolve, warnings);
            let service = Service {
                name: host.clone(),
                host,
                namespace: entry.namespace().to_owned(),
                ports: ports.clone(),
                endpoints,
                visible_to: visible_to.clone(),
                mesh_external: spec.location() == ServiceEntryLocation::MeshExternal,
                subject_alt_names: spec.subject_alt_names.clone(),
                addresses: spec
                    .addresses
                    .iter()
                    .filter_map(|a| a.parse().ok())
                    .collect(),
            };
            registry.add(service, source.clone(), warnings);
        }
    }
}

/// The namespaces a ServiceEntry is exported to; `~` exports it to none.
fn visibility(export_to: &[String], namespace: &str) -> BTreeSet<String> {
    if export_to.is_empty() {
        return BTreeSet::from(["*".to_owned()]);
    }
    export_to
        .iter()
        .filter(|e| *e != "~")
        .map(|e| {
            if e == "." {
                namespace.to_owned()
            } else {
                e.clone()
            }
        })
        .collect()
}

fn endpoints(
    entry: Named<'_, ServiceEntry>,
    host: &str,
    workloads: &Workloads<'_>,
    resolve: Resolve<'_>,
    warnings: &mut Warnings,
) -> Vec<ServiceEndpoint> {
    let spec = entry.spec;
    let resolution = spec.resolution();
    let dns = matches!(resolution, Resolution::Dns | Resolution::DnsRoundRobin);
    match resolution {
        Resolution::Static | Resolution::Dns | Resolution::DnsRoundRobin => {}
        Resolution::None => return Vec::new(),
        Resolution::DynamicDns => {
            warnings.field(
                "ServiceEntry",
                entry.meta,
                "spec.resolution",
                "DYNAMIC_DNS is not supported yet; the service has no endpoints",
            );
            return Vec::new();
        }
    }
    let targets: Vec<PortTarget<'_>> = spec
        .ports
        .iter()
        .map(|p| PortTarget {
            number: p.number.get(),
            name: &p.name,
            target_name: None,
            default: Some(p.target_port.unwrap_or(p.number).get()),
        })
        .collect();
    let first_only = |mut addresses: Vec<_>| {
        if resolution == Resolution::DnsRoundRobin {
            addresses.truncate(1);
        }
        addresses
    };
    let mut out = Vec::new();
    if let Some(selector) = &spec.workload_selector {
        for workload in workloads.entries(entry.namespace(), &selector.labels) {
            let address = workload.spec.address.as_deref().unwrap_or_default();
            match endpoint_addresses(address, dns, resolve) {
                Ok(addresses) => {
                    let ports = PortTarget::resolve_all(&targets, &workload.spec.ports);
                    out.extend(endpoints_at(
                        first_only(addresses),
                        &ports,
                        &workload.spec.labels,
                        workload.spec.weight,
                        Owner::workload(
                            workload.namespace(),
                            workload.spec.service_account.as_deref(),
                        ),
                    ));
                }
                Err(why) => warnings.push(format!(
                    "WorkloadEntry {} (selected by ServiceEntry {}): {why}; skipped",
                    workload.full_name(),
                    entry.full_name()
                )),
            }
        }
        return out;
    }
    if spec.endpoints.is_empty() {
        if !dns {
            return out;
        }
        if host.starts_with('*') {
            warnings.field(
                "ServiceEntry",
                entry.meta,
                "spec.hosts",
                format!("wildcard host {host} cannot be resolved; it has no endpoints"),
            );
            return out;
        }
        let addresses = resolve(host);
        if addresses.is_empty() {
            warnings.field(
                "ServiceEntry",
                entry.meta,
                "spec.hosts",
                format!("host {host} resolved to no address; it has no endpoints"),
            );
        }
        let ports = targets
            .iter()
            .filter_map(|t| Some((t.number, t.default?)))
            .collect();
        return endpoints_at(
            first_only(addresses),
            &ports,
            &Default::default(),
            None,
            Owner::none(entry.namespace()),
        );
    }
    for (i, endpoint) in spec.endpoints.iter().enumerate() {
        let address = endpoint.address.as_deref().unwrap_or_default();
        match endpoint_addresses(address, dns, resolve) {
            Ok(addresses) => {
                let ports = PortTarget::resolve_all(&targets, &endpoint.ports);
                out.extend(endpoints_at(
                    first_only(addresses),
                    &ports,
                    &endpoint.labels,
                    endpoint.weight,
                    Owner::workload(entry.namespace(), endpoint.service_account.as_deref()),
                ));
            }
            Err(why) => warnings.field(
                "ServiceEntry",
                entry.meta,
                &format!("spec.endpoints[{i}]"),
                format!("{why}; skipped"),
            ),
        }
    }
    out
}
