//! What a directory of Kubernetes-shaped YAML asks the local mesh to run: a pod per replica of
//! each `Deployment`, a virtual IP per `Service`, and the configuration the control plane is
//! given (every resource but the Deployments, Services with their virtual IPs).
//!
//! A pod runs its containers' `command` and `args` as local processes (the image is not
//! used), with their `env` and `workingDir`. Istio's pod annotations decide the capture:
//! `sidecar.istio.io/inject: "false"` gives a pod no sidecar and no capture;
//! `traffic.sidecar.istio.io/excludeInboundPorts`, `excludeOutboundPorts` and
//! `excludeOutboundIPRanges` leave ports and ranges uncaptured.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};
use trellis_api::Resource;
use trellis_api::types::Labels;

use crate::net::Cidr;

/// Istio's label of workloads whose sidecar accepts the mesh's mutual TLS.
pub const TLS_MODE_LABEL: &str = "security.istio.io/tlsMode";
/// Istio's annotation that keeps a pod out of the mesh when `"false"`.
pub const INJECT_ANNOTATION: &str = "sidecar.istio.io/inject";
pub const EXCLUDE_INBOUND_PORTS: &str = "traffic.sidecar.istio.io/excludeInboundPorts";
pub const EXCLUDE_OUTBOUND_PORTS: &str = "traffic.sidecar.istio.io/excludeOutboundPorts";
pub const EXCLUDE_OUTBOUND_RANGES: &str = "traffic.sidecar.istio.io/excludeOutboundIPRanges";

/// The ingress gateway every local mesh runs, as Istio installs it.
pub const GATEWAY_NAME: &str = "istio-ingressgateway";
pub const GATEWAY_SERVICE_ACCOUNT: &str = "istio-ingressgateway-service-account";

/// A Service and the virtual IP its names resolve to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceVip {
    pub name: String,
    pub namespace: String,
    pub vip: Ipv4Addr,
    pub ports: Vec<u16>,
}

impl ServiceVip {
    /// The names a pod of `namespace` resolves to the virtual IP, as Kubernetes' DNS answers
    /// them (the short name only inside the service's own namespace).
    pub fn names(&self, namespace: &str) -> Vec<String> {
        let (name, ns) = (&self.name, &self.namespace);
        let mut names = Vec::new();
        if ns == namespace {
            names.push(name.clone());
        }
        names.push(format!("{name}.{ns}"));
        names.push(format!("{name}.{ns}.svc"));
        names.push(format!("{name}.{ns}.svc.cluster.local"));
        names
    }
}

/// What a pod is in the mesh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PodRole {
    /// An application with a sidecar and traffic capture.
    Sidecar,
    /// An application alone: no sidecar, no capture.
    Plain,
    /// The ingress gateway: a proxy alone.
    Gateway,
}

/// One process of a pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Container {
    pub name: String,
    /// The command and its arguments.
    pub command: Vec<String>,
    pub env: Vec<(String, String)>,
    pub working_dir: Option<String>,
}

/// One pod to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pod {
    /// `<deployment>-<replica>`.
    pub name: String,
    pub namespace: String,
    /// The Deployment it is a replica of.
    pub workload: String,
    pub labels: Labels,
    pub service_account: String,
    pub role: PodRole,
    pub containers: Vec<Container>,
    /// The ports its containers declare.
    pub ports: Vec<u16>,
    pub exclude_inbound_ports: Vec<u16>,
    pub exclude_outbound_ports: Vec<u16>,
    pub exclude_outbound_ranges: Vec<Cidr>,
}

/// Everything a directory asks for.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// What the control plane is given.
    pub config: Vec<Resource>,
    pub services: Vec<ServiceVip>,
    pub pods: Vec<Pod>,
}

/// Builds the plan; errors name the resource and field.
pub fn plan(resources: Vec<Resource>, service_cidr: Cidr) -> Result<Plan, Vec<String>> {
    let mut plan = Plan::default();
    let mut errors = Vec::new();
    let mut addresses = service_cidr.hosts();
    let mut services: BTreeMap<(String, String), Resource> = BTreeMap::new();
    for resource in resources {
        match resource {
            Resource::Deployment(deployment) => {
                let name = &deployment.metadata.name;
                let at = format!("Deployment {}/{name}", deployment.metadata.namespace);
                let spec = &deployment.spec;
                let template = &spec.template;
                let replicas = spec.replicas.unwrap_or(1).max(0);
                let annotations = &template.metadata.annotations;
                let mut containers = Vec::new();
                let mut ports = Vec::new();
                for (i, container) in template.spec.containers.iter().enumerate() {
                    let command: Vec<String> = container
                        .command
                        .iter()
                        .chain(&container.args)
                        .cloned()
                        .collect();
                    if container.command.is_empty() {
                        errors.push(format!(
                            "{at}: spec.template.spec.containers[{i}].command: the local mesh runs a container's command as a process (the image is not used); write the command to run"
                        ));
                    }
                    let mut env = Vec::new();
                    for (j, var) in container.env.iter().enumerate() {
                        match &var.value {
                            Some(value) => env.push((var.name.clone(), value.clone())),
                            None if var.value_from.is_some() => errors.push(format!(
                                "{at}: spec.template.spec.containers[{i}].env[{j}].valueFrom: not available in the local mesh; write the value"
                            )),
                            None => env.push((var.name.clone(), String::new())),
                        }
                    }
                    ports.extend(container.ports.iter().map(|p| p.container_port.get()));
                    containers.push(Container {
                        name: container.name.clone(),
                        command,
                        env,
                        working_dir: container.working_dir.clone(),
                    });
                }
                let role = match annotations.get(INJECT_ANNOTATION).map(String::as_str) {
                    Some("false") => PodRole::Plain,
                    _ => PodRole::Sidecar,
                };
                let mut field = |key: &str, parse: &mut dyn FnMut(&str) -> Result<(), String>| {
                    if let Some(value) = annotations.get(key) {
                        for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
                            if let Err(error) = parse(item) {
                                errors.push(format!(
                                    "{at}: spec.template.metadata.annotations[{key}]: {error}"
                                ));
                            }
                        }
                    }
                };
                let (mut inbound, mut outbound, mut ranges) = (Vec::new(), Vec::new(), Vec::new());
                field(EXCLUDE_INBOUND_PORTS, &mut |item| {
                    inbound.push(port(item)?);
                    Ok(())
                });
                field(EXCLUDE_OUTBOUND_PORTS, &mut |item| {
                    outbound.push(port(item)?);
                    Ok(())
                });
                field(EXCLUDE_OUTBOUND_RANGES, &mut |item| {
                    ranges.push(item.parse()?);
                    Ok(())
                });
                let service_account = template
                    .spec
                    .service_account_name
                    .clone()
                    .or_else(|| template.spec.service_account.clone())
                    .unwrap_or_else(|| "default".to_owned());
                let mut labels = template.metadata.labels.clone();
                if role == PodRole::Sidecar {
                    labels.insert(TLS_MODE_LABEL.to_owned(), "istio".to_owned());
                }
                for replica in 0..replicas {
                    plan.pods.push(Pod {
                        name: format!("{name}-{replica}"),
                        namespace: deployment.metadata.namespace.clone(),
                        workload: name.clone(),
                        labels: labels.clone(),
                        service_account: service_account.clone(),
                        role,
                        containers: containers.clone(),
                        ports: ports.clone(),
                        exclude_inbound_ports: inbound.clone(),
                        exclude_outbound_ports: outbound.clone(),
                        exclude_outbound_ranges: ranges.clone(),
                    });
                }
            }
            Resource::Service(service) => {
                let key = (
                    service.metadata.namespace.clone(),
                    service.metadata.name.clone(),
                );
                services.insert(key, Resource::Service(service));
            }
            other => plan.config.push(other),
        }
    }
    for ((namespace, name), mut resource) in services {
        let Resource::Service(service) = &mut resource else {
            unreachable!("only services are kept here")
        };
        let headless_or_external = service.spec.cluster_ip.as_deref() == Some("None")
            || service.spec.external_name.is_some();
        if !headless_or_external {
            let Some(vip) = addresses.next() else {
                errors.push(format!(
                    "Service {namespace}/{name}: the service range {service_cidr} has no address left; give a larger --service-cidr"
                ));
                continue;
            };
            service.spec.cluster_ip = Some(vip.to_string());
            service.spec.cluster_ips = vec![vip.to_string()];
            plan.services.push(ServiceVip {
                name: name.clone(),
                namespace: namespace.clone(),
                vip,
                ports: service.spec.ports.iter().map(|p| p.port.get()).collect(),
            });
        }
        plan.config.push(resource);
    }
    let mut seen = BTreeMap::new();
    for pod in &plan.pods {
        if let Some(workload) = seen.insert((&pod.namespace, &pod.name), &pod.workload) {
            errors.push(format!(
                "Deployment {}/{}: its pod {} has the name of a pod of Deployment {workload}; rename one",
                pod.namespace, pod.workload, pod.name
            ));
        }
    }
    if errors.is_empty() {
        Ok(plan)
    } else {
        Err(errors)
    }
}

fn port(text: &str) -> Result<u16, String> {
    match text.parse::<u16>() {
        Ok(port) if port > 0 => Ok(port),
        _ => Err(format!("{text:?} is not a port number")),
    }
}

/// The ingress gateway's pod: a proxy alone in `istio-system`, labelled as Istio's.
pub fn gateway_pod() -> Pod {
    let labels = [("istio", "ingressgateway"), ("app", GATEWAY_NAME)]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    Pod {
        name: GATEWAY_NAME.to_owned(),
        namespace: trellis_api::meta::ROOT_NAMESPACE.to_owned(),
        workload: GATEWAY_NAME.to_owned(),
        labels,
        service_account: GATEWAY_SERVICE_ACCOUNT.to_owned(),
        role: PodRole::Gateway,
        containers: Vec::new(),
        ports: Vec::new(),
        exclude_inbound_ports: Vec::new(),
        exclude_outbound_ports: Vec::new(),
        exclude_outbound_ranges: Vec::new(),
    }
}

#[cfg(test)]
#[path = "plan/tests.rs"]
mod tests;
