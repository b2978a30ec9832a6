//! What analyzers see: the resources in force, each with where it was written, plus the two
//! views most analyzers need: the workloads that run and the service hosts that exist.

use std::collections::BTreeSet;

use crate::kube::{DeploymentSpec, PodSpec, ServiceSpec};
use crate::load::Origin;
use crate::networking::{ServiceEntry, WorkloadEntry};
use crate::resource::{KindSpec, Object, Resource};
use crate::types::{Labels, Protocol};

/// The cluster's DNS suffix for services: `reviews.default.svc.cluster.local`.
pub const CLUSTER_DOMAIN: &str = "svc.cluster.local";

/// The annotation that limits which namespaces see a Kubernetes Service.
pub(crate) const EXPORT_TO_ANNOTATION: &str = "networking.istio.io/exportTo";

/// A resource in the analysed set. `origin` is `None` for what the mesh itself provides.
#[derive(Debug, Clone)]
pub struct Entry {
    pub resource: Resource,
    pub origin: Option<Origin>,
    /// How many times the files defined this resource; the last definition is the one here.
    pub definitions: usize,
}

impl Entry {
    pub fn namespace(&self) -> &str {
        self.resource.namespace()
    }

    pub fn name(&self) -> &str {
        self.resource.name()
    }

    /// `namespace/name`.
    pub fn full_name(&self) -> String {
        self.resource.meta().full_name()
    }
}

/// Something that runs and receives traffic: a Pod, the pods of a Deployment, or a
/// WorkloadEntry.
#[derive(Debug, Clone, Copy)]
pub struct Workload<'a> {
    pub entry: &'a Entry,
    pub namespace: &'a str,
    pub labels: &'a Labels,
    /// The pod spec, for Pods and Deployments.
    pub pod: Option<&'a PodSpec>,
}

/// A port of a service host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    pub number: u16,
    pub name: Option<String>,
    pub protocol: Option<Protocol>,
}

/// A host that names a service: a Kubernetes Service (`name.namespace.svc.cluster.local`) or
/// a host of a ServiceEntry.
#[derive(Debug, Clone)]
pub struct ServiceHost<'a> {
    pub entry: &'a Entry,
    /// Fully qualified, or a wildcard (`*.example.com`) from a ServiceEntry.
    pub host: String,
    pub ports: Vec<HostPort>,
    /// The namespaces that see the host; `*` is every namespace.
    pub visible_to: Vec<String>,
}

impl ServiceHost<'_> {
    fn visible_from(&self, namespace: &str) -> bool {
        self.visible_to.iter().any(|n| n == "*" || n == namespace)
    }
}

/// The analysed set.
#[derive(Debug)]
pub struct Context<'a> {
    entries: &'a [Entry],
    workloads: Vec<Workload<'a>>,
    hosts: Vec<ServiceHost<'a>>,
}

impl<'a> Context<'a> {
    pub fn new(entries: &'a [Entry]) -> Self {
        let mut context = Self {
            entries,
            workloads: Vec::new(),
            hosts: Vec::new(),
        };
        context.workloads = context.find_workloads();
        context.hosts = context.find_hosts();
        context
    }

    pub fn entries(&self) -> &'a [Entry] {
        self.entries
    }

    /// Every resource of the kind whose spec is `S`, with its entry.
    pub fn each<S: KindSpec + 'a>(&self) -> impl Iterator<Item = (&'a Entry, &'a Object<S>)> + 'a {
        self.entries
            .iter()
            .filter_map(|e| S::object(&e.resource).map(|o| (e, o)))
    }

    pub fn workloads(&self) -> &[Workload<'a>] {
        &self.workloads
    }

    /// The workloads of `namespace` (every namespace when `None`) whose labels satisfy `matches`.
    pub fn workloads_where(
        &self,
        namespace: Option<&str>,
        matches: impl Fn(&Labels) -> bool,
    ) -> impl Iterator<Item = &Workload<'a>> {
        self.workloads
            .iter()
            .filter(move |w| namespace.is_none_or(|ns| w.namespace == ns) && matches(w.labels))
    }

    pub fn hosts(&self) -> &[ServiceHost<'a>] {
        &self.hosts
    }

    /// Whether the analysed files (not the mesh's defaults) define any Service or ServiceEntry in
    /// `namespace`. When they define none, a missing service there may well exist in the running
    /// mesh, and findings about it are warnings rather than errors.
    pub fn files_describe_services_in(&self, namespace: &str) -> bool {
        self.entries.iter().any(|e| {
            e.origin.is_some()
                && e.namespace() == namespace
                && matches!(
                    e.resource.kind(),
                    crate::Kind::Service | crate::Kind::ServiceEntry
                )
        })
    }

    /// Whether the analysed files define any resource of `kind` in `namespace`.
    pub fn files_describe(&self, kind: crate::Kind, namespace: &str) -> bool {
        self.entries
            .iter()
            .any(|e| e.origin.is_some() && e.namespace() == namespace && e.resource.kind() == kind)
    }

    /// The service a destination host refers to, seen from a resource in `namespace` that is
    /// exported to `export_to`, as the mesh resolves it: short names are completed with the
    /// namespace, and wildcard ServiceEntry hosts cover their subdomains.
    pub fn find_host(
        &self,
        namespace: &str,
        export_to: &[String],
        host: &str,
    ) -> Option<&ServiceHost<'a>> {
        let fqdn = to_fqdn(host, namespace);
        let mut scopes: Vec<&str> = export_to
            .iter()
            .map(|e| if e == "." { namespace } else { e.as_str() })
            .collect();
        if scopes.is_empty() {
            scopes.push(namespace);
        }
        let visible = |h: &&ServiceHost<'a>| {
            h.visible_to
                .iter()
                .any(|v| v == "*" || scopes.contains(&v.as_str()))
        };
        if let Some(exact) = self.hosts.iter().filter(visible).find(|h| h.host == fqdn) {
            return Some(exact);
        }
        let bare = fqdn.trim_start_matches('*');
        self.hosts
            .iter()
            .filter(|h| h.visible_from(namespace))
            .find(|h| {
                h.host
                    .strip_prefix('*')
                    .is_some_and(|suffix| bare.ends_with(suffix))
            })
    }

    fn find_workloads(&self) -> Vec<Workload<'a>> {
        let mut workloads = Vec::new();
        for (entry, pod) in self.each::<PodSpec>() {
            workloads.push(Workload {
                entry,
                namespace: entry.namespace(),
                labels: &pod.metadata.labels,
                pod: Some(&pod.spec),
            });
        }
        for (entry, deployment) in self.each::<DeploymentSpec>() {
            let template = &deployment.spec.template;
            workloads.push(Workload {
                entry,
                namespace: entry.namespace(),
                labels: &template.metadata.labels,
                pod: Some(&template.spec),
            });
        }
        for (entry, workload) in self.each::<WorkloadEntry>() {
            workloads.push(Workload {
                entry,
                namespace: entry.namespace(),
                labels: &workload.spec.labels,
                pod: None,
            });
        }
        workloads
    }

    fn find_hosts(&self) -> Vec<ServiceHost<'a>> {
        let mut hosts = Vec::new();
        for (entry, service) in self.each::<ServiceSpec>() {
            let namespace = entry.namespace();
            let visible_to = match service.metadata.annotations.get(EXPORT_TO_ANNOTATION) {
                None => vec!["*".to_owned()],
                Some(list) => list
                    .split(',')
                    .map(|n| match n.trim() {
                        "." => namespace.to_owned(),
                        other => other.to_owned(),
                    })
                    .collect(),
            };
            let ports = service
                .spec
                .ports
                .iter()
                .map(|p| HostPort {
                    number: p.port.get(),
                    name: p.name.clone(),
                    protocol: p.name.as_deref().and_then(protocol_from_port_name),
                })
                .collect();
            hosts.push(ServiceHost {
                entry,
                host: format!("{}.{namespace}.{CLUSTER_DOMAIN}", entry.name()),
                ports,
                visible_to,
            });
        }
        for (entry, service_entry) in self.each::<ServiceEntry>() {
            let namespace = entry.namespace();
            let spec = &service_entry.spec;
            let visible_to: Vec<String> = export_scopes(&spec.export_to, namespace)
                .into_iter()
                .collect();
            let ports: Vec<HostPort> = spec
                .ports
                .iter()
                .map(|p| HostPort {
                    number: p.number.get(),
                    name: Some(p.name.clone()),
                    protocol: p.protocol,
                })
                .collect();
            for host in &spec.hosts {
                hosts.push(ServiceHost {
                    entry,
                    host: to_fqdn(host, namespace),
                    ports: ports.clone(),
                    visible_to: visible_to.clone(),
                });
            }
        }
        hosts
    }
}

/// The namespaces a resource in `namespace` is visible to, from its `exportTo` list: `*` (all
/// of them) when the list is empty or names `*`; `.` stands for the resource's own namespace.
pub fn export_scopes(export_to: &[String], namespace: &str) -> BTreeSet<String> {
    if export_to.is_empty() || export_to.iter().any(|e| e == "*") {
        return BTreeSet::from(["*".to_owned()]);
    }
    export_to
        .iter()
        .map(|e| {
            if e == "." {
                namespace.to_owned()
            } else {
                e.clone()
            }
        })
        .collect()
}

/// Completes a short host name (`reviews`) with the namespace and cluster domain; names with a
/// dot, and wildcards, are taken as written.
pub fn to_fqdn(host: &str, namespace: &str) -> String {
    if host.starts_with('*') || host.contains('.') {
        host.to_owned()
    } else {
        format!("{host}.{namespace}.{CLUSTER_DOMAIN}")
    }
}

/// The protocol a Kubernetes port name declares by its prefix (`http-web`, `grpc`), if any.
pub fn protocol_from_port_name(name: &str) -> Option<Protocol> {
    let prefix = name.split('-').next().unwrap_or(name);
    Protocol::parse(prefix)
}

/// The cluster's own namespaces. Analysis leaves what runs there alone, as Istio does: users
/// do not configure those workloads and cannot fix findings about them.
pub(super) const SYSTEM_NAMESPACES: [&str; 4] = [
    "kube-system",
    "kube-public",
    "kube-node-lease",
    "local-path-storage",
];

/// Whether `namespace` is one of the cluster's own ([`SYSTEM_NAMESPACES`]).
pub(super) fn is_system_namespace(namespace: &str) -> bool {
    SYSTEM_NAMESPACES.contains(&namespace)
}

/// The `Namespace` object named `name`, when the analysed set declares one.
pub(super) fn find_namespace<'a>(
    ctx: &Context<'a>,
    name: &str,
) -> Option<&'a crate::resource::Object<crate::kube::NamespaceSpec>> {
    ctx.each::<crate::kube::NamespaceSpec>()
        .find(|(e, _)| e.name() == name)
        .map(|(_, ns)| ns)
}
