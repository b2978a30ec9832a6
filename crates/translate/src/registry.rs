//! The registry: every service a proxy can send to, by fully qualified host, with its ports and
//! endpoints.
//!
//! Translation looks destinations up here; it never reads Services or ServiceEntries itself, so
//! the control plane can later fill a registry from Kubernetes or a local runner instead.
//! [`Registry::from_resources`] builds one from configuration files, which is what standalone
//! mode has:
//!
//! - **ServiceEntries**, one service per host (short hosts are completed with the entry's
//!   namespace, as `trellis analyze` does). Resolution `STATIC` uses the listed `endpoints`
//!   (IP address; `ports`, a map from the entry's port names to the endpoint's ports; `labels`;
//!   `weight`). `DNS` resolves each endpoint address, or each host when no endpoints are listed,
//!   through the caller's `resolve` function, once, when the registry is built;
//!   `DNS_ROUND_ROBIN` does the same and keeps the first address of each answer. A
//!   `workloadSelector` selects WorkloadEntries of the entry's namespace instead of listed
//!   endpoints. `NONE` (traffic to the address the client dialled) has no endpoints a gateway
//!   could use, and `DYNAMIC_DNS` is not supported: both give services without endpoints.
//! - **Kubernetes Services** (`name.namespace.svc.cluster.local`), whose endpoints are the
//!   **WorkloadEntries** of the Service's namespace that its selector matches. Pods and
//!   Deployments have no addresses outside a cluster and are not used (a warning says so when
//!   they are all a Service selects). An `ExternalName` Service resolves its external name.
//!   A Service without a selector has hand-made EndpointSlices, which are not read.
//!
//! Who is behind an endpoint, for the mesh's mutual TLS: the namespace and service account of
//! its workload (a WorkloadEntry's `serviceAccount`, or a ServiceEntry endpoint's; `default`
//! when it names none, as Kubernetes gives every pod one), from which translation makes the
//! SPIFFE identities a client verifies. Addresses that are no workload (a resolved host name, an
//! `ExternalName`) have no service account. Whether a service is in the mesh: Kubernetes
//! Services are, except `ExternalName` ones (as in Istio); ServiceEntries by their `location`,
//! `MESH_EXTERNAL` unless they say otherwise. A ServiceEntry's `subjectAltNames` are kept as
//! further identities of its service.
//!
//! Not used: ServiceEntry `addresses`; WorkloadEntry `network` and `locality`; endpoints on unix
//! domain sockets (reported); WorkloadGroups.
//! One service per host: Kubernetes Services first, then ServiceEntries, each in namespace/name
//! order; a later definition of a host already defined is reported and ignored.

mod kube_services;
mod service_entries;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use trellis_api::Resource;
use trellis_api::kube::{DeploymentSpec, PodSpec};
use trellis_api::networking::WorkloadEntry;
use trellis_api::types::{Labels, Port, Protocol, labels_match};

use crate::resources::{Named, of_kind};
use crate::warnings::Warnings;

/// A DNS lookup: the addresses a host name resolves to (none when it does not resolve).
pub type Resolve<'a> = &'a dyn Fn(&str) -> Vec<IpAddr>;

/// The services a proxy can send to.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    services: BTreeMap<String, Service>,
    /// Who defined each host, for the message about a second definition.
    defined_by: BTreeMap<String, String>,
    warnings: Vec<String>,
}

/// One service: a host, its ports, and the endpoints behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// Fully qualified (`reviews.default.svc.cluster.local`), or a wildcard (`*.example.com`).
    pub host: String,
    /// As metrics name it: the Kubernetes Service's name, or the host for a ServiceEntry.
    pub name: String,
    pub namespace: String,
    pub ports: Vec<ServicePort>,
    pub endpoints: Vec<ServiceEndpoint>,
    /// The namespaces that see the service; `*` is every namespace, an empty set none.
    pub visible_to: BTreeSet<String>,
    /// Outside the mesh (a ServiceEntry's `location: MESH_EXTERNAL`, an `ExternalName`
    /// Service): its endpoints have no sidecar, so no automatic mutual TLS.
    pub mesh_external: bool,
    /// Identities the service's endpoints may present besides their workloads' (a
    /// ServiceEntry's `subjectAltNames`).
    pub subject_alt_names: Vec<String>,
    /// Its virtual IPs: a Kubernetes Service's cluster IPs, a ServiceEntry's `addresses`
    /// (single addresses; ranges are not a client's destination).
    pub addresses: Vec<std::net::IpAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    pub number: u16,
    pub name: String,
    /// `None` when the port declares none (the protocol is then detected).
    pub protocol: Option<Protocol>,
}

/// One address of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceEndpoint {
    pub address: IpAddr,
    /// Service port number to the port the endpoint listens on; a service port missing here is
    /// not served by this endpoint.
    pub ports: BTreeMap<u16, u16>,
    pub labels: Labels,
    /// Relative share of traffic, at least 1.
    pub weight: u32,
    /// The namespace of the workload behind the address (the ServiceEntry's for its own
    /// endpoints).
    pub namespace: String,
    /// The workload's service account, its identity in the mesh
    /// (`spiffe://<trust domain>/ns/<namespace>/sa/<service account>`); `None` when the address
    /// is no workload (a resolved host name).
    pub service_account: Option<String>,
}

/// The service account of a workload that names none, as Kubernetes gives every pod.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";

impl Service {
    pub fn port(&self, number: u16) -> Option<&ServicePort> {
        self.ports.iter().find(|p| p.number == number)
    }

    pub fn visible_from(&self, namespace: &str) -> bool {
        self.visible_to.contains("*") || self.visible_to.contains(namespace)
    }
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// The registry that configuration files describe (see the module documentation for what
    /// is read). `resolve` is called for DNS names, once each time it is needed.
    pub fn from_resources(resources: &[Resource], resolve: Resolve<'_>) -> Self {
        let mut registry = Self::new();
        let mut warnings = Warnings::default();
        let workloads = Workloads::new(resources);
        kube_services::add(&mut registry, resources, &workloads, resolve, &mut warnings);
        service_entries::add(&mut registry, resources, &workloads, resolve, &mut warnings);
        registry.warnings = warnings.into_vec();
        registry
    }

    /// Adds a service, unless its host is already defined; returns whether it was added.
    pub fn insert(&mut self, service: Service) -> bool {
        let source = format!("service {}/{}", service.namespace, service.name);
        self.add(service, source, &mut Warnings::default())
    }

    pub(crate) fn add(
        &mut self,
        service: Service,
        source: String,
        warnings: &mut Warnings,
    ) -> bool {
        if let Some(first) = self.defined_by.get(&service.host) {
            warnings.push(format!(
                "{source}: host {} is already defined by {first}; this definition is ignored",
                service.host
            ));
            return false;
        }
        self.defined_by.insert(service.host.clone(), source);
        self.services.insert(service.host.clone(), service);
        true
    }

    /// The service of a fully qualified host.
    pub fn get(&self, host: &str) -> Option<&Service> {
        self.services.get(host)
    }

    /// Every service, by host.
    pub fn services(&self) -> impl Iterator<Item = &Service> {
        self.services.values()
    }

    /// What building the registry left out, and why.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

/// The workloads the files describe: WorkloadEntries (which have addresses), and pods and
/// deployments (which do not, outside a cluster, but are named in hints).
#[derive(Debug)]
pub(crate) struct Workloads<'a> {
    entries: Vec<Named<'a, WorkloadEntry>>,
    /// `Kind namespace/name`, namespace and labels of each pod and deployment.
    pods: Vec<(String, &'a str, &'a Labels)>,
}

impl<'a> Workloads<'a> {
    fn new(resources: &'a [Resource]) -> Self {
        let mut pods = Vec::new();
        for pod in of_kind::<PodSpec>(resources) {
            pods.push((
                format!("Pod {}", pod.full_name()),
                pod.meta.namespace.as_str(),
                &pod.meta.labels,
            ));
        }
        for deployment in of_kind::<DeploymentSpec>(resources) {
            let labels = &deployment.spec.template.metadata.labels;
            pods.push((
                format!("Deployment {}", deployment.full_name()),
                deployment.meta.namespace.as_str(),
                labels,
            ));
        }
        Self {
            entries: of_kind(resources),
            pods,
        }
    }

    /// The WorkloadEntries of `namespace` whose labels `selector` matches.
    fn entries(
        &self,
        namespace: &'a str,
        selector: &'a Labels,
    ) -> impl Iterator<Item = Named<'a, WorkloadEntry>> + '_ {
        self.entries
            .iter()
            .filter(move |e| e.namespace() == namespace && labels_match(selector, &e.spec.labels))
            .copied()
    }

    /// The pods and deployments of `namespace` whose labels `selector` matches.
    fn pods(&self, namespace: &str, selector: &Labels) -> Vec<&str> {
        self.pods
            .iter()
            .filter(|(_, ns, labels)| *ns == namespace && labels_match(selector, labels))
            .map(|(name, _, _)| name.as_str())
            .collect()
    }
}

/// How a service port finds the port of an endpoint.
#[derive(Debug)]
pub(crate) struct PortTarget<'a> {
    number: u16,
    /// The service port's name: an endpoint's `ports` entry of this name wins.
    name: &'a str,
    /// A Kubernetes `targetPort` given by name, looked up in the endpoint's `ports` next.
    target_name: Option<&'a str>,
    /// The port used when the endpoint names none: `targetPort`, or the port itself.
    default: Option<u16>,
}

impl PortTarget<'_> {
    /// The endpoint ports of a workload whose `ports` map is `named`.
    fn resolve_all(
        targets: &[PortTarget<'_>],
        named: &BTreeMap<String, Port>,
    ) -> BTreeMap<u16, u16> {
        targets
            .iter()
            .filter_map(|t| {
                let port = named
                    .get(t.name)
                    .or_else(|| t.target_name.and_then(|n| named.get(n)))
                    .map(|p| p.get())
                    .or(t.default)?;
                Some((t.number, port))
            })
            .collect()
    }
}

/// The addresses of an endpoint written as `address`: an IP address as it is; a host name
/// through `resolve` when `dns` allows it. `Err` says why the endpoint cannot be used.
fn endpoint_addresses(
    address: &str,
    dns: bool,
    resolve: Resolve<'_>,
) -> Result<Vec<IpAddr>, String> {
    if let Ok(ip) = address.parse::<IpAddr>() {
        return Ok(vec![ip]);
    }
    if address.starts_with(trellis_api::networking::UNIX_ADDRESS_PREFIX) {
        return Err(format!(
            "endpoint {address} is a unix domain socket, which is not supported"
        ));
    }
    if !dns {
        return Err(format!("endpoint address {address:?} is not an IP address"));
    }
    let found = resolve(address);
    if found.is_empty() {
        Err(format!("endpoint address {address} resolved to no address"))
    } else {
        Ok(found)
    }
}

/// Who is behind an endpoint: its workload's namespace and service account.
#[derive(Debug, Clone, Copy)]
struct Owner<'a> {
    namespace: &'a str,
    service_account: Option<&'a str>,
}

impl<'a> Owner<'a> {
    /// A workload of `namespace` with the service account it names, else the default one.
    fn workload(namespace: &'a str, service_account: Option<&'a str>) -> Self {
        Self {
            namespace,
            service_account: Some(service_account.unwrap_or(DEFAULT_SERVICE_ACCOUNT)),
        }
    }

    /// An address that is no workload (a resolved host name), named in `namespace`.
    fn none(namespace: &'a str) -> Self {
        Self {
            namespace,
            service_account: None,
        }
    }
}

/// One endpoint per address, with the same ports, labels, weight and owner.
fn endpoints_at(
    addresses: Vec<IpAddr>,
    ports: &BTreeMap<u16, u16>,
    labels: &Labels,
    weight: Option<u32>,
    owner: Owner<'_>,
) -> Vec<ServiceEndpoint> {
    addresses
        .into_iter()
        .map(|address| ServiceEndpoint {
            address,
            ports: ports.clone(),
            labels: labels.clone(),
            weight: weight.unwrap_or(1).max(1),
            namespace: owner.namespace.to_owned(),
            service_account: owner.service_account.map(str::to_owned),
        })
        .collect()
}
