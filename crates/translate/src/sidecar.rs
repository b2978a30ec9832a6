//! A sidecar's configuration: an outbound listener through which its workload reaches every
//! service it may see, and an inbound listener per port of its own, in front of its application.
//!
//! **Outbound.** One HTTP listener (with protocol detection) at the options' `outbound`
//! address, and its route table `outbound`: a virtual host per (service, port) the workload
//! may reach, HTTP ports and ports that declare no protocol alike. A service is reachable when
//! the registry shows it to the workload's namespace (`exportTo`) and the `Sidecar` in force
//! lets it through (its egress `hosts`, `namespace/host` with `.`, `*` and `~`). A virtual
//! host's domains are the names a client in the workload's namespace may use, each with
//! `:port` (and bare too when the port is 80): `reviews.default.svc.cluster.local`,
//! `reviews.default.svc`, `reviews.default`, and `reviews` from its own namespace, and the
//! service's virtual IPs (a Service's cluster IPs, a ServiceEntry's addresses). Its routes are
//! those of the VirtualServices bound to `mesh` (no `gateways`, or `mesh` among them) whose
//! hosts cover the service, in namespace/name order as on gateways; without any, a default
//! route forwards to the service's cluster with the mesh's default retries. The table is
//! marked on-demand: the control plane sends its hosts one by one, as the proxy asks for them.
//!
//! **Inbound.** The ports of the workload are those its address serves in the registry (the
//! endpoints of the services that select it). Each is an `inbound|PORT` listener on the
//! workload's address and that port: HTTP ports through a route table forwarding every request
//! to the cluster `inbound|PORT||`, other ports as TCP to it; the cluster's one endpoint is the
//! application on `app_ip` and the port. Inbound requests are not retried (the caller's sidecar
//! retries). Each listener takes the mesh's mutual TLS as the PeerAuthentications for the
//! workload's namespace and labels say for its port ([`crate::peer_authentication`]): `STRICT`
//! only mutual TLS, `PERMISSIVE` (the default) mutual TLS or plaintext, `DISABLE` plaintext.
//!
//! Outbound clusters carry TLS as [`crate::upstream_tls`] says: automatic mutual TLS towards
//! the mesh's services unless a DestinationRule sets `tls`, verifying identities in the options'
//! trust domain.
//!
//! **Captured TCP.** Each virtual IP and non-HTTP port of a reachable service is a captured
//! listener (`<ip>_<port>`, bound nowhere): a connection redirected to the outbound listener
//! whose original destination it is goes as TCP to the service's cluster. TCP routes of
//! VirtualServices (`tcp:`) do not apply to them yet.
//!
//! Not used yet, and reported: a Sidecar's `ingress`, egress `port`, `bind` and
//! `captureMode`, `outboundTrafficPolicy` and `inboundConnectionPool`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

use trellis_api::meta::ROOT_NAMESPACE;
use trellis_api::networking::{MESH_GATEWAY, Sidecar};
use trellis_api::security::PeerAuthentication;
use trellis_api::types::{Labels, Protocol, labels_match};
use trellis_proxy_config::{
    Action, Cluster, Config, Endpoint, Forward, Listener, ListenerProtocol, LoadBalancer,
    RetryPolicy, Route, RouteTable, ServiceRef, UpstreamProtocol, VirtualHost, WeightedCluster,
};

use crate::clusters::{self, ClusterKey};
use crate::context::{Output, Scope};
use crate::hosts::{covers, exported_to, to_fqdn};
use crate::matches::At;
use crate::peer_authentication::PeerModes;
use crate::registry::Service;
use crate::resources::{Index, Named, of_kind};
use crate::warnings::Warnings;
use crate::{Translation, routes, rules};

/// The name of the outbound listener and its route table.
pub const OUTBOUND: &str = "outbound";

/// Who the sidecar's workload is, and where it listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SidecarOptions {
    /// The workload's namespace: what it sees, where its DestinationRules and Sidecar are
    /// looked up first, and whose PeerAuthentications apply to it.
    pub namespace: String,
    /// The workload's labels: for `sourceLabels` matches and Sidecar and PeerAuthentication
    /// selectors.
    pub labels: Labels,
    /// Where the outbound listener listens.
    pub outbound: SocketAddr,
    /// The workload's address in the registry, whose ports become inbound listeners on it;
    /// `None`: no inbound listeners.
    pub address: Option<IpAddr>,
    /// Where the application listens, on each of its ports.
    pub app_ip: IpAddr,
    /// The mesh's trust domain, in the identities of the workloads the sidecar sends to
    /// (Istio's default is [`DEFAULT_TRUST_DOMAIN`](crate::DEFAULT_TRUST_DOMAIN)).
    pub trust_domain: String,
}

pub(crate) fn translate(
    resources: &[trellis_api::Resource],
    registry: &crate::Registry,
    options: &SidecarOptions,
) -> Translation {
    let mut translation = outbound(resources, registry, options);
    let mut warnings = Warnings::default();
    inbound(
        resources,
        registry,
        options,
        &mut translation.config,
        &mut warnings,
    );
    translation.warnings.extend(warnings.into_vec());
    translation
}

/// The outbound side alone (the options' `address` and `app_ip` do not matter to it), which
/// every replica of a workload shares.
pub(crate) fn outbound(
    resources: &[trellis_api::Resource],
    registry: &crate::Registry,
    options: &SidecarOptions,
) -> Translation {
    let cx = Scope {
        index: Index::new(resources),
        registry,
        namespace: &options.namespace,
        labels: Some(&options.labels),
        trust_domain: &options.trust_domain,
    };
    let mut out = Output::default();
    let egress = Egress::in_force(resources, options, &mut out.warnings);
    let mut config = Config::default();
    let table = outbound_table(&cx, &egress, &mut out);
    config.routes.insert(table.name.clone(), table);
    config.listeners.push(Listener {
        name: OUTBOUND.to_owned(),
        address: options.outbound,
        protocol: ListenerProtocol::Detect {
            route_table: OUTBOUND.to_owned(),
            tcp_cluster: None,
            detection_timeout: None,
        },
        mtls: None,
        inbound: false,
        captured: false,
    });
    config
        .listeners
        .extend(captured_tcp(&cx, &egress, &mut out));
    config.clusters = clusters::build(&cx, &mut out);
    Translation {
        config,
        warnings: out.warnings.into_vec(),
    }
}

/// Which hosts the Sidecar in force lets the workload reach.
#[derive(Debug)]
struct Egress {
    /// `(namespace, host)` patterns; `None` when no Sidecar applies (everything visible).
    hosts: Option<Vec<(String, String)>>,
}

impl Egress {
    /// The Sidecar of the workload's namespace that selects it, else the one there without a
    /// selector, else the root namespace's without a selector (Istio's order).
    fn in_force(
        resources: &[trellis_api::Resource],
        options: &SidecarOptions,
        warnings: &mut Warnings,
    ) -> Self {
        let sidecars: Vec<Named<'_, Sidecar>> = of_kind(resources);
        let selects = |s: &&Named<'_, Sidecar>| {
            s.spec
                .workload_selector
                .as_ref()
                .is_some_and(|w| labels_match(&w.labels, &options.labels))
        };
        let unselective = |s: &&Named<'_, Sidecar>| s.spec.workload_selector.is_none();
        let own = |s: &&Named<'_, Sidecar>| s.namespace() == options.namespace;
        let found = sidecars
            .iter()
            .filter(own)
            .find(selects)
            .or_else(|| sidecars.iter().filter(own).find(unselective))
            .or_else(|| {
                sidecars
                    .iter()
                    .filter(|s| s.namespace() == ROOT_NAMESPACE)
                    .find(unselective)
            });
        let Some(sidecar) = found else {
            return Self { hosts: None };
        };
        let mut ignored = Vec::new();
        if !sidecar.spec.ingress.is_empty() {
            ignored.push("ingress");
        }
        if sidecar.spec.outbound_traffic_policy.is_some() {
            ignored.push("outboundTrafficPolicy");
        }
        if sidecar.spec.inbound_connection_pool.is_some() {
            ignored.push("inboundConnectionPool");
        }
        let mut hosts = Vec::new();
        for listener in &sidecar.spec.egress {
            if listener.port.is_some() || listener.bind.is_some() || listener.capture_mode.is_some()
            {
                ignored.push("egress port, bind and captureMode");
            }
            for entry in &listener.hosts {
                let (namespace, host) = entry.split_once('/').unwrap_or(("*", entry));
                let namespace = match namespace {
                    "." => sidecar.namespace().to_owned(),
                    other => other.to_owned(),
                };
                hosts.push((namespace, host.to_owned()));
            }
        }
        ignored.dedup();
        for field in ignored {
            warnings.field(
                "Sidecar",
                sidecar.meta,
                "spec",
                format!("{field} is not supported yet and is left out"),
            );
        }
        Self { hosts: Some(hosts) }
    }

    fn allows(&self, service: &Service) -> bool {
        let Some(hosts) = &self.hosts else {
            return true;
        };
        hosts.iter().any(|(namespace, host)| {
            namespace != "~"
                && (namespace == "*" || *namespace == service.namespace)
                && covers(host, &service.host)
        })
    }
}

fn outbound_table(cx: &Scope<'_>, egress: &Egress, out: &mut Output) -> RouteTable {
    let bound: Vec<_> = cx
        .index
        .virtual_services
        .iter()
        .filter(|vs| {
            exported_to(&vs.spec.export_to, vs.namespace(), cx.namespace)
                && (vs.spec.gateways.is_empty()
                    || vs.spec.gateways.iter().any(|g| g == MESH_GATEWAY))
        })
        .copied()
        .collect();
    let mut virtual_hosts = Vec::new();
    for service in reachable(cx, egress) {
        for port in &service.ports {
            if port.protocol.is_some_and(|p| !p.is_http()) {
                continue;
            }
            let at = At {
                cx,
                gateway: MESH_GATEWAY,
                port: port.number,
            };
            let mut routes = Vec::new();
            for vs in &bound {
                let covered = vs
                    .spec
                    .hosts
                    .iter()
                    .any(|h| covers(&to_fqdn(h, vs.namespace()), &service.host));
                if covered {
                    let rules = rules::http_rules(cx, *vs, &mut out.warnings);
                    routes.extend(routes::translate_rules(at, &rules, out));
                }
            }
            let routes = if routes.is_empty() {
                vec![default_route(service, port.number, out)]
            } else {
                routes::catch_all_last(routes)
            };
            virtual_hosts.push(VirtualHost {
                name: format!("{}:{}", service.host, port.number),
                domains: domains(service, port.number, cx.namespace),
                routes,
            });
        }
    }
    RouteTable {
        name: OUTBOUND.to_owned(),
        virtual_hosts,
        on_demand: true,
    }
}

/// The services the workload may reach: visible to its namespace, let through by its Sidecar,
/// and of a host a client can name (not a wildcard).
fn reachable<'a>(cx: &'a Scope<'_>, egress: &'a Egress) -> impl Iterator<Item = &'a Service> {
    cx.registry
        .services()
        .filter(|s| s.visible_from(cx.namespace) && egress.allows(s) && !s.host.contains('*'))
}

/// A captured listener per virtual IP and non-HTTP port of each service the workload may
/// reach: a connection the pod's capture redirected to the outbound listener, whose original
/// destination is that address, goes to the service's cluster as TCP (Istio's outbound
/// listener per port, reached through `virtualOutbound`).
fn captured_tcp(cx: &Scope<'_>, egress: &Egress, out: &mut Output) -> Vec<Listener> {
    let mut listeners = Vec::new();
    for service in reachable(cx, egress) {
        for port in &service.ports {
            if port.protocol.is_none_or(|p| p.is_http()) {
                continue;
            }
            let key = ClusterKey {
                host: service.host.clone(),
                port: port.number,
                subset: None,
            };
            let cluster = key.name();
            out.clusters.insert(key);
            for address in &service.addresses {
                let address = SocketAddr::new(*address, port.number);
                listeners.push(Listener {
                    name: match address {
                        SocketAddr::V4(a) => format!("{}_{}", a.ip(), a.port()),
                        SocketAddr::V6(a) => format!("[{}]_{}", a.ip(), a.port()),
                    },
                    address,
                    protocol: ListenerProtocol::Tcp {
                        cluster: cluster.clone(),
                    },
                    mtls: None,
                    inbound: false,
                    captured: true,
                });
            }
        }
    }
    listeners
}

/// The names a client in `namespace` may give the service's port, and its virtual IPs (what
/// the authority is when a client calls a service by address).
fn domains(service: &Service, port: u16, namespace: &str) -> Vec<String> {
    let mut names = vec![service.host.clone()];
    if let Some(short) = service
        .host
        .strip_suffix(".svc.cluster.local")
        .and_then(|h| h.strip_suffix(&format!(".{}", service.namespace)))
    {
        names.push(format!("{short}.{}.svc", service.namespace));
        names.push(format!("{short}.{}", service.namespace));
        if service.namespace == namespace {
            names.push(short.to_owned());
        }
    }
    names.extend(service.addresses.iter().map(|ip| match ip {
        std::net::IpAddr::V4(ip) => ip.to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
    }));
    let mut domains: Vec<String> = names.iter().map(|n| format!("{n}:{port}")).collect();
    if port == 80 {
        domains.extend(names);
    }
    domains
}

/// Everything to the service's port, with the mesh's default retries.
fn default_route(service: &Service, port: u16, out: &mut Output) -> Route {
    let key = ClusterKey {
        host: service.host.clone(),
        port,
        subset: None,
    };
    let cluster = key.name();
    out.clusters.insert(key);
    everything_to(cluster, Some(RetryPolicy::mesh_default()))
}

/// A route sending every request to `cluster`.
fn everything_to(cluster: String, retry: Option<RetryPolicy>) -> Route {
    Route {
        name: "default".to_owned(),
        matches: Vec::new(),
        action: Action::Forward(Forward {
            destinations: vec![WeightedCluster {
                cluster,
                weight: 100,
                headers: Default::default(),
            }],
            rewrite: None,
            timeout: None,
            retry,
            mirrors: Vec::new(),
        }),
        headers: Default::default(),
        fault: None,
        cors: None,
        rate_limit: None,
        source: None,
    }
}

/// The workload's own ports (at the options' `address`, if any): a listener each, in front of
/// the application.
pub(crate) fn inbound(
    resources: &[trellis_api::Resource],
    registry: &crate::Registry,
    options: &SidecarOptions,
    config: &mut Config,
    warnings: &mut Warnings,
) {
    let Some(address) = options.address else {
        return;
    };
    let policies: Vec<Named<'_, PeerAuthentication>> = of_kind(resources);
    let peers = PeerModes::for_workload(&policies, &options.namespace, &options.labels, warnings);
    // Target port -> (is HTTP, the first service serving it).
    let mut ports: BTreeMap<u16, (bool, &Service)> = BTreeMap::new();
    for service in registry.services() {
        let served: BTreeSet<(u16, u16)> = service
            .endpoints
            .iter()
            .filter(|e| e.address == address)
            .flat_map(|e| e.ports.iter().map(|(&port, &target)| (port, target)))
            .collect();
        for (port, target) in served {
            let http = service
                .port(port)
                .and_then(|p| p.protocol)
                .is_none_or(Protocol::is_http);
            ports.entry(target).or_insert((http, service));
        }
    }
    for (target, (http, service)) in ports {
        let name = format!("inbound|{target}");
        let cluster = format!("inbound|{target}||");
        let protocol = if http {
            config.routes.insert(
                name.clone(),
                RouteTable {
                    name: name.clone(),
                    virtual_hosts: vec![VirtualHost {
                        name: "inbound".to_owned(),
                        domains: vec!["*".to_owned()],
                        routes: vec![everything_to(cluster.clone(), None)],
                    }],
                    on_demand: false,
                },
            );
            ListenerProtocol::Http {
                route_table: name.clone(),
            }
        } else {
            ListenerProtocol::Tcp {
                cluster: cluster.clone(),
            }
        };
        config.listeners.push(Listener {
            name,
            address: SocketAddr::new(address, target),
            protocol,
            mtls: peers.listener(target),
            inbound: true,
            captured: false,
        });
        config.clusters.insert(
            cluster.clone(),
            Cluster {
                name: cluster,
                load_balancer: LoadBalancer::RoundRobin,
                endpoints: vec![Endpoint::new(SocketAddr::new(options.app_ip, target))],
                protocol: if http {
                    UpstreamProtocol::SameAsDownstream
                } else {
                    UpstreamProtocol::Http1
                },
                connect_timeout: None,
                idle_timeout: None,
                service: Some(ServiceRef {
                    host: service.host.clone(),
                    name: service.name.clone(),
                    namespace: service.namespace.clone(),
                    subset: None,
                }),
                outlier_detection: None,
                limits: None,
                tcp_keepalive: None,
                health_check: None,
                source: None,
                tls: None,
            },
        );
    }
}

#[cfg(test)]
mod tests;
