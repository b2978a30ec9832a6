//! Kubernetes Services into registry services: endpoints from the WorkloadEntries their selector
//! matches, or from the external name of an `ExternalName` Service (which Istio counts as
//! outside the mesh).

use std::collections::BTreeSet;

use trellis_api::Resource;
use trellis_api::analyze::CLUSTER_DOMAIN;
use trellis_api::kube::{ServiceSpec, ServiceType, TargetPort};

use super::{
    Owner, PortTarget, Registry, Resolve, Service, ServiceEndpoint, ServicePort, Workloads,
    endpoint_addresses, endpoints_at,
};
use crate::resources::{Named, of_kind};
use crate::warnings::Warnings;

/// The annotation that limits which namespaces see a Service (comma-separated, `.` for its own).
const EXPORT_TO_ANNOTATION: &str = "networking.istio.io/exportTo";

pub(super) fn add(
    registry: &mut Registry,
    resources: &[Resource],
    workloads: &Workloads<'_>,
    resolve: Resolve<'_>,
    warnings: &mut Warnings,
) {
    for service in of_kind::<ServiceSpec>(resources) {
        let namespace = service.namespace();
        let host = format!("{}.{namespace}.{CLUSTER_DOMAIN}", service.name());
        let ports = service
            .spec
            .ports
            .iter()
            .map(|p| ServicePort {
                number: p.port.get(),
                name: p.name.clone().unwrap_or_default(),
                protocol: p.declared_protocol(),
            })
            .collect();
        let endpoints = endpoints(service, workloads, resolve, warnings);
        let entry = Service {
            host,
            name: service.name().to_owned(),
            namespace: namespace.to_owned(),
            ports,
            endpoints,
            visible_to: visibility(
                service.meta.annotations.get(EXPORT_TO_ANNOTATION),
                namespace,
            ),
            mesh_external: service.spec.service_type() == ServiceType::ExternalName,
            subject_alt_names: Vec::new(),
            addresses: service
                .spec
                .cluster_ip
                .iter()
                .chain(&service.spec.cluster_ips)
                .filter_map(|ip| ip.parse().ok())
                .fold(Vec::new(), |mut all, ip| {
                    if !all.contains(&ip) {
                        all.push(ip);
                    }
                    all
                }),
        };
        registry.add(entry, format!("Service {}", service.full_name()), warnings);
    }
}

fn visibility(annotation: Option<&String>, namespace: &str) -> BTreeSet<String> {
    match annotation {
        None => BTreeSet::from(["*".to_owned()]),
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty() && *n != "~")
            .map(|n| {
                if n == "." {
                    namespace.to_owned()
                } else {
                    n.to_owned()
                }
            })
            .collect(),
    }
}

fn endpoints(
    service: Named<'_, ServiceSpec>,
    workloads: &Workloads<'_>,
    resolve: Resolve<'_>,
    warnings: &mut Warnings,
) -> Vec<ServiceEndpoint> {
    let spec = service.spec;
    let namespace = service.namespace();
    if spec.service_type() == ServiceType::ExternalName {
        let name = spec.external_name.as_deref().unwrap_or_default();
        let addresses = resolve(name.trim_end_matches('.'));
        if addresses.is_empty() {
            warnings.field(
                "Service",
                service.meta,
                "spec.externalName",
                format!("{name} resolved to no address; the service has no endpoints"),
            );
        }
        let ports = spec
            .ports
            .iter()
            .map(|p| (p.port.get(), p.port.get()))
            .collect();
        return endpoints_at(
            addresses,
            &ports,
            &Default::default(),
            None,
            Owner::none(namespace),
        );
    }
    if spec.selector.is_empty() {
        return Vec::new();
    }
    let targets: Vec<PortTarget<'_>> = spec
        .ports
        .iter()
        .map(|p| {
            let (target_name, default) = match p.target() {
                TargetPort::Number(n) => (None, Some(n.get())),
                TargetPort::Name(_) => (p.target_port.as_ref().and_then(target_name), None),
            };
            PortTarget {
                number: p.port.get(),
                name: p.name.as_deref().unwrap_or_default(),
                target_name,
                default,
            }
        })
        .collect();
    let mut out = Vec::new();
    for workload in workloads.entries(namespace, &spec.selector) {
        let address = workload.spec.address.as_deref().unwrap_or_default();
        match endpoint_addresses(address, false, resolve) {
            Ok(addresses) => {
                let ports = PortTarget::resolve_all(&targets, &workload.spec.ports);
                out.extend(endpoints_at(
                    addresses,
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
                "WorkloadEntry {} (selected by Service {}): {why}; skipped",
                workload.full_name(),
                service.full_name()
            )),
        }
    }
    if out.is_empty() {
        let pods = workloads.pods(namespace, &spec.selector);
        if !pods.is_empty() {
            warnings.push(format!(
                "Service {}: selects {}, which {} no address outside a cluster; describe the endpoints with WorkloadEntries (or a ServiceEntry) to send traffic to them",
                service.full_name(),
                pods.join(", "),
                if pods.len() == 1 { "has" } else { "have" },
            ));
        }
    }
    out
}

fn target_name(target: &TargetPort) -> Option<&str> {
    match target {
        TargetPort::Name(name) => Some(name),
        TargetPort::Number(_) => None,
    }
}
