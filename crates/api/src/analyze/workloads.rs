//! Workload findings: service ports that declare no protocol, services that disagree about the
//! ports of the pods they share, applications that run as the proxy's user, and namespaces that
//! ask for the proxy in more than one way.

use std::collections::{BTreeMap, BTreeSet};

use super::context::{find_namespace, is_system_namespace};
use super::{Analyzer, Context, Entry, Report, messages};
use crate::FieldPath;
use crate::kube::{
    DeploymentSpec, NamespaceSpec, PodSpec, ServicePort, ServiceSpec, ServiceType, TargetPort,
    TransportProtocol,
};
use crate::meta::{ObjectMeta, ROOT_NAMESPACE};
use crate::resource::Kind;
use crate::types::{Labels, Protocol, labels_match};

pub(super) const ANALYZERS: &[Analyzer] = &[
    port_names,
    deployment_service_ports,
    application_uid,
    injection_labels,
];

/// The UID the proxy runs as; its own traffic is exempt from redirection.
const PROXY_UID: i64 = 1337;

/// The proxy's container in a pod.
const PROXY_CONTAINER: &str = "istio-proxy";
/// Containers that are the mesh's own, not the application's.
const MESH_CONTAINERS: [&str; 2] = [PROXY_CONTAINER, "istio-operator"];

/// The namespace label that turns injection on (`enabled`) or off (`disabled`).
const INJECTION_LABEL: &str = "istio-injection";
/// The namespace label that picks the control-plane revision that injects.
const REVISION_LABEL: &str = "istio.io/rev";
/// The namespace label that enrols workloads in ambient mode.
const DATAPLANE_MODE_LABEL: &str = "istio.io/dataplane-mode";
/// The pod label (and deprecated annotation) that turns injection on or off for one workload.
const SIDECAR_INJECT: &str = "sidecar.istio.io/inject";

/// The label gateway controllers put on what they generate, and the values that mean "ours".
const GATEWAY_MANAGED_LABEL: &str = "gateway.istio.io/managed";
const GATEWAY_CONTROLLERS: [&str; 3] = [
    "istio.io-gateway-controller",
    "istio.io-mesh-controller",
    "istio.io-eastwest-controller",
];
const WAYPOINT_CONTROLLER: &str = "istio.io-mesh-controller";

/// Ports whose protocol is taken to be TCP when the name declares none, because sniffing would
/// break the servers that speak first on them (SMTP, DNS, MySQL, MongoDB).
const SERVER_FIRST_PORTS: [u16; 4] = [25, 53, 3306, 27017];

/// The mesh's own components, which these checks leave alone.
fn is_control_plane(labels: &Labels) -> bool {
    labels.contains_key("istio") || labels.get("release").is_some_and(|r| r == "istio")
}

/// The protocol a Service port declares ([`ServicePort::declared_protocol`]), or TCP for the
/// well-known ports of server-first protocols. `None` when neither applies (the mesh then
/// detects the protocol from the traffic).
pub(super) fn service_port_protocol(port: &ServicePort) -> Option<Protocol> {
    port.declared_protocol().or_else(|| {
        SERVER_FIRST_PORTS
            .contains(&port.port.get())
            .then_some(Protocol::Tcp)
    })
}

/// IST0118, IST0150: Service ports whose name (or `appProtocol`) declares no protocol, and
/// ports of ExternalName services that plain TCP traffic cannot reach reliably.
fn port_names(ctx: &Context<'_>, report: &mut Report) {
    for (entry, service) in ctx.each::<ServiceSpec>() {
        let labels = &service.metadata.labels;
        let generated = labels
            .get(GATEWAY_MANAGED_LABEL)
            .is_some_and(|v| GATEWAY_CONTROLLERS.contains(&v.as_str()));
        if is_system_namespace(entry.namespace()) || is_control_plane(labels) || generated {
            continue;
        }
        let external = service.spec.service_type() == ServiceType::ExternalName;
        for (index, port) in service.spec.ports.iter().enumerate() {
            let path = FieldPath::root().key("spec").key("ports").index(index);
            let protocol = service_port_protocol(port);
            let name = port.name.as_deref().unwrap_or_default();
            if external && (protocol.is_none() || name == "tcp") {
                let what = match protocol {
                    Some(_) => "is named tcp".to_owned(),
                    None => format!("declares no protocol ({})", describe(port)),
                };
                report.add(
                    messages::EXTERNAL_NAME_SERVICE_TYPE_INVALID_PORT_NAME,
                    entry,
                    path,
                    format!(
                        "port {} {what}: an ExternalName service has no address of its own, so plain TCP traffic to it cannot be told apart from other traffic on the port and may not be forwarded; name the port for the protocol it carries (http, https, tls, grpc, ...), or use a ServiceEntry with addresses for plain TCP",
                        port.port
                    ),
                );
            } else if protocol.is_none() {
                report.add(
                    messages::PORT_NAME_IS_NOT_UNDER_NAMING_CONVENTION,
                    entry,
                    path,
                    format!(
                        "port {} (targetPort {}): {}, so the protocol is detected from the traffic; declare it with the port name, as <protocol>[-<suffix>], or with appProtocol (http, http2, https, grpc, grpc-web, tcp, tls, mongo, mysql, redis)",
                        port.port,
                        port.target(),
                        describe(port)
                    ),
                );
            }
        }
    }
}

/// Why a port declares no protocol, for messages.
fn describe(port: &ServicePort) -> String {
    match (port.app_protocol.as_deref(), port.name.as_deref()) {
        (Some(app_protocol), _) => {
            format!("appProtocol {app_protocol:?} is not a protocol the mesh knows")
        }
        (None, None | Some("")) => "the port has no name".to_owned(),
        (None, Some(name)) => format!("the name {name:?} does not start with a protocol"),
    }
}

/// IST0116, IST0137: services that select a deployment's pods and disagree about a port: the
/// same port number with different transport protocols, or one target port behind different
/// port numbers. The pods' proxy configures each of its inbound ports once, so one of the
/// services would be served wrongly.
fn deployment_service_ports(ctx: &Context<'_>, report: &mut Report) {
    for (entry, deployment) in ctx.each::<DeploymentSpec>() {
        let namespace = entry.namespace();
        let template = &deployment.spec.template;
        let waypoint = deployment
            .metadata
            .labels
            .get(GATEWAY_MANAGED_LABEL)
            .is_some_and(|v| v == WAYPOINT_CONTROLLER);
        if waypoint
            || is_system_namespace(namespace)
            || !in_mesh(ctx, namespace, &template.metadata, &template.spec)
        {
            continue;
        }
        let services: Vec<(String, &ServiceSpec)> = ctx
            .each::<ServiceSpec>()
            .filter(|(e, s)| {
                e.namespace() == namespace
                    && !s.spec.selector.is_empty()
                    && labels_match(&s.spec.selector, &template.metadata.labels)
            })
            .map(|(e, s)| (e.full_name(), &s.spec))
            .collect();
        let at = FieldPath::root()
            .key("spec")
            .key("template")
            .key("metadata")
            .key("labels");
        conflicting_protocols(entry, &services, &at, report);
        conflicting_target_ports(entry, &template.spec, &services, &at, report);
    }
}

/// IST0116: one port number, several transport protocols, across several services.
fn conflicting_protocols(
    entry: &Entry,
    services: &[(String, &ServiceSpec)],
    at: &FieldPath,
    report: &mut Report,
) {
    // port -> protocol -> services
    let mut ports: BTreeMap<u16, BTreeMap<TransportProtocol, BTreeSet<&str>>> = BTreeMap::new();
    for (name, service) in services {
        for port in &service.ports {
            ports
                .entry(port.port.get())
                .or_default()
                .entry(port.protocol())
                .or_default()
                .insert(name);
        }
    }
    for (port, protocols) in ports {
        let names: BTreeSet<&str> = protocols.values().flatten().copied().collect();
        if protocols.len() < 2 || names.len() < 2 {
            continue;
        }
        let uses: Vec<String> = protocols
            .iter()
            .map(|(protocol, names)| {
                let names: Vec<&str> = names.iter().copied().collect();
                format!("{protocol} by {}", names.join(", "))
            })
            .collect();
        report.add(
            messages::DEPLOYMENT_ASSOCIATED_TO_MULTIPLE_SERVICES,
            entry,
            at.clone(),
            format!(
                "the services that select these pods use port {port} with different protocols ({}); the pods' proxy serves one protocol per port: give one of the services another port number",
                uses.join("; ")
            ),
        );
    }
}

/// IST0137: one target port behind different port numbers, across several services.
fn conflicting_target_ports(
    entry: &Entry,
    pod: &PodSpec,
    services: &[(String, &ServiceSpec)],
    at: &FieldPath,
    report: &mut Report,
) {
    // target port -> port -> services
    let mut targets: BTreeMap<String, BTreeMap<u16, BTreeSet<&str>>> = BTreeMap::new();
    for (name, service) in services {
        for port in &service.ports {
            targets
                .entry(resolve_target(pod, &port.target()))
                .or_default()
                .entry(port.port.get())
                .or_default()
                .insert(name);
        }
    }
    for (target, ports) in targets {
        let names: BTreeSet<&str> = ports.values().flatten().copied().collect();
        if ports.len() < 2 || names.len() < 2 {
            continue;
        }
        let numbers: Vec<String> = ports.keys().map(u16::to_string).collect();
        let names: Vec<&str> = names.into_iter().collect();
        report.add(
            messages::DEPLOYMENT_CONFLICTING_PORTS,
            entry,
            at.clone(),
            format!(
                "the services {} select these pods and send ports {} to the same target port {target}; services that share a target port must use the same port number, or only one of them is served: use one port number, or different target ports",
                names.join(", "),
                numbers.join(", ")
            ),
        );
    }
}

/// A target port as a number when the pod names it, so `targetPort: http` and `targetPort:
/// 8080` are the same port when the container calls 8080 `http`.
fn resolve_target(pod: &PodSpec, target: &TargetPort) -> String {
    match target {
        TargetPort::Number(port) => port.to_string(),
        TargetPort::Name(name) => pod
            .containers
            .iter()
            .flat_map(|c| &c.ports)
            .find(|p| p.name.as_deref() == Some(name))
            .map_or_else(|| name.clone(), |p| p.container_port.to_string()),
    }
}

/// Whether the pods of a template run with the mesh's proxy: they already have it, or their
/// labels (or the deprecated annotation) say so, or else their namespace does. Offline, a
/// namespace the set does not declare is taken to be in the mesh; one it declares is in the
/// mesh when labelled for injection (or ambient mode).
fn in_mesh(ctx: &Context<'_>, namespace: &str, meta: &ObjectMeta, pod: &PodSpec) -> bool {
    if pod.containers.iter().any(|c| c.name == PROXY_CONTAINER) {
        return true;
    }
    if let Some(inject) = meta
        .labels
        .get(SIDECAR_INJECT)
        .or_else(|| meta.annotations.get(SIDECAR_INJECT))
    {
        return inject == "true";
    }
    let Some(ns) = find_namespace(ctx, namespace) else {
        return true;
    };
    let labels = &ns.metadata.labels;
    match labels.get(INJECTION_LABEL) {
        Some(value) => value == "enabled",
        None => {
            labels.contains_key(REVISION_LABEL)
                || labels
                    .get(DATAPLANE_MODE_LABEL)
                    .is_some_and(|m| m == "ambient")
        }
    }
}

/// IST0144: an application container runs as UID 1337 (its own `runAsUser`, or the pod's).
/// The proxy's traffic rules exempt that user, so the application's traffic bypasses the proxy.
fn application_uid(ctx: &Context<'_>, report: &mut Report) {
    for workload in ctx.workloads() {
        let Some(pod) = workload.pod else { continue };
        let entry = workload.entry;
        if is_system_namespace(workload.namespace)
            || is_control_plane(&entry.resource.meta().labels)
        {
            continue;
        }
        let spec_path = match entry.resource.kind() {
            Kind::Deployment => FieldPath::root().key("spec").key("template").key("spec"),
            _ => FieldPath::root().key("spec"),
        };
        let mut inheriting = Vec::new();
        for (index, container) in pod.containers.iter().enumerate() {
            if MESH_CONTAINERS.contains(&container.name.as_str())
                || pod.run_as_user(container) != Some(PROXY_UID)
            {
                continue;
            }
            let own = container
                .security_context
                .as_ref()
                .and_then(|c| c.run_as_user);
            if own.is_none() {
                inheriting.push(container.name.as_str());
                continue;
            }
            report.add(
                messages::INVALID_APPLICATION_UID,
                entry,
                spec_path
                    .key("containers")
                    .index(index)
                    .key("securityContext")
                    .key("runAsUser"),
                format!(
                    "container {} runs as UID {PROXY_UID}, which is reserved for the proxy: its traffic bypasses the proxy; run it as another user",
                    container.name
                ),
            );
        }
        if !inheriting.is_empty() {
            report.add(
                messages::INVALID_APPLICATION_UID,
                entry,
                spec_path.key("securityContext").key("runAsUser"),
                format!(
                    "the pod runs its containers ({}) as UID {PROXY_UID}, which is reserved for the proxy: their traffic bypasses the proxy; run them as another user",
                    inheriting.join(", ")
                ),
            );
        }
    }
}

/// IST0123: a namespace asks for the proxy in more than one way (the injection label, a
/// revision, ambient mode); which one takes effect is not defined.
fn injection_labels(ctx: &Context<'_>, report: &mut Report) {
    for (entry, namespace) in ctx.each::<NamespaceSpec>() {
        if entry.name() == ROOT_NAMESPACE || is_system_namespace(entry.name()) {
            continue;
        }
        let labels = &namespace.metadata.labels;
        let injection = labels.get(INJECTION_LABEL);
        let mut found: Vec<String> = injection
            .map(|v| format!("{INJECTION_LABEL}={v}"))
            .into_iter()
            .collect();
        if injection.is_none_or(|v| v == "enabled") {
            for key in [REVISION_LABEL, DATAPLANE_MODE_LABEL] {
                if let Some(value) = labels.get(key) {
                    found.push(format!("{key}={value}"));
                }
            }
        }
        if found.len() > 1 {
            report.add(
                messages::NAMESPACE_MULTIPLE_INJECTION_LABELS,
                entry,
                FieldPath::root().key("metadata").key("labels"),
                format!(
                    "the namespace asks for the proxy in more than one way ({}), and which one takes effect is not defined; keep only one of these labels",
                    found.join(", ")
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Port;

    fn port(number: u16, name: Option<&str>, app_protocol: Option<&str>) -> ServicePort {
        ServicePort {
            name: name.map(str::to_owned),
            protocol: None,
            app_protocol: app_protocol.map(str::to_owned),
            port: Port::new(u64::from(number)).unwrap(),
            target_port: None,
            node_port: None,
        }
    }

    #[test]
    fn reads_the_protocol_of_a_service_port() {
        assert_eq!(
            service_port_protocol(&port(80, Some("http-web"), None)),
            Some(Protocol::Http)
        );
        assert_eq!(
            service_port_protocol(&port(80, Some("grpc-web-x"), None)),
            Some(Protocol::GrpcWeb)
        );
        assert_eq!(service_port_protocol(&port(80, Some("web"), None)), None);
        assert_eq!(service_port_protocol(&port(80, None, None)), None);
        // appProtocol wins over the name.
        assert_eq!(
            service_port_protocol(&port(80, Some("web"), Some("http"))),
            Some(Protocol::Http)
        );
        assert_eq!(
            service_port_protocol(&port(80, Some("http"), Some("h2c"))),
            None
        );
        assert_eq!(
            service_port_protocol(&port(80, None, Some("kubernetes.io/h2c"))),
            Some(Protocol::Http2)
        );
        // Server-first ports default to TCP.
        assert_eq!(
            service_port_protocol(&port(3306, Some("db"), None)),
            Some(Protocol::Tcp)
        );
        let mut udp = port(5353, Some("dns"), None);
        udp.protocol = Some(TransportProtocol::Udp);
        assert_eq!(service_port_protocol(&udp), Some(Protocol::Udp));
    }
}
