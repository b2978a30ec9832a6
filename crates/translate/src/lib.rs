//! Istio resources and a service registry, translated into one proxy's configuration
//! ([`trellis_proxy_config::Config`]).
//!
//! Everything here is a pure function of its inputs: no I/O, no clock, no randomness, so the
//! same files always give the same configuration and every rule can be tested without sockets.
//! Two roles: [`gateway`] (an edge gateway, what the proxy's standalone mode runs) and
//! [`sidecar`] (a workload's proxy: outbound to the mesh, inbound to its application).
//!
//! Translation never fails. What the model cannot express yet is left out and reported in
//! [`Translation::warnings`], naming the resource and field, so nothing is dropped silently.
//!
//! # How it works, and the decisions taken
//!
//! - [`registry`]: the services a proxy can send to, built from ServiceEntries and from
//!   Kubernetes Services with WorkloadEntries (pods have no address offline); DNS names are
//!   resolved by a function the caller passes, once, when the registry is built.
//! - `gateway`: which Gateways and servers apply (by the gateway workload's
//!   labels; all when they are not given), and the listeners they become. Servers that terminate
//!   TLS are not implemented yet: they are reported and skipped.
//! - `virtual_hosts`: one virtual host per host a listener's servers serve, with the routes of
//!   the VirtualServices bound to them. VirtualServices are taken in namespace/name order where
//!   Istio uses creation time, which files lack; that order decides which routes come first when
//!   several VirtualServices share a host.
//! - `rules`, `delegate`, `matches`, `routes`, `actions`, `retries`: HTTP rules as
//!   routes, with Istio's semantics (catch-all routes last, rules after a catch-all dropped,
//!   conditions on the proxy settled at translation, delegate rules merged into the delegating
//!   rule, the mesh's default retry policy when a rule sets none).
//! - `tcp`: TCP and TLS-passthrough servers, which need exactly one route with one
//!   destination, since a TCP listener forwards to one cluster.
//! - `destinations`, `clusters`, `destination_rules`, `load_balancer`: a cluster per
//!   (host, port, subset) routes refer to, named `outbound|PORT|SUBSET|HOST`, shaped by the
//!   DestinationRule Istio would pick. Load balancing defaults to least request, as in Istio.
//! - `upstream_tls`: the TLS of each cluster, from the DestinationRule's `tls`, else Istio's
//!   automatic mutual TLS towards services in the mesh, verifying the SPIFFE identities
//!   (`spiffe://TRUST_DOMAIN/ns/NAMESPACE/sa/ACCOUNT`) of their workloads.
//! - `sidecar`: the outbound route table (a virtual host per service port the workload may
//!   reach, honouring `exportTo` and the `Sidecar` in force, with the VirtualServices bound to
//!   `mesh`) and the inbound listeners in front of the application, which take mutual TLS as
//!   the PeerAuthentications in force say (`peer_authentication`; several at one level: the
//!   first in namespace/name order stands in for Istio's oldest). Gateways' listeners take
//!   plaintext.
//! - The proxy's namespace (`istio-system` unless [`GatewayOptions::namespace`] says otherwise)
//!   decides what it sees through `exportTo` and where DestinationRules are looked up first.

mod access_logging;
mod actions;
mod clusters;
mod context;
mod cors;
mod delegate;
mod destination_rules;
mod destinations;
mod faults;
mod gateway;
mod health_checks;
mod hosts;
mod load_balancer;
mod matches;
mod outlier;
mod peer_authentication;
mod rate_limits;
pub mod registry;
mod resources;
mod retries;
mod routes;
mod rules;
mod sidecar;
mod tcp;
mod upstream_tls;
mod virtual_hosts;
mod warnings;

#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;

use std::net::IpAddr;

use trellis_api::Resource;
use trellis_api::types::Labels;
use trellis_proxy_config::Config;

pub use access_logging::{ENVOY_PROVIDER, access_logging};
pub use registry::{Registry, Resolve, Service, ServiceEndpoint, ServicePort};
pub use sidecar::{OUTBOUND, SidecarOptions};

/// A proxy's configuration and what could not be put in it.
#[derive(Debug, Clone, PartialEq)]
pub struct Translation {
    pub config: Config,
    /// One line per problem: `Kind namespace/name: field.path: what happened`.
    pub warnings: Vec<String>,
}

/// Who the gateway proxy is, and where it listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayOptions {
    /// The address listeners bind (a server's `bind` overrides it).
    pub listen_ip: IpAddr,
    /// The namespace the gateway runs in: it sees the VirtualServices, DestinationRules and
    /// services exported to it, and its DestinationRules are looked up there first. `None`:
    /// `istio-system`, where Istio installs its ingress gateway.
    pub namespace: Option<String>,
    /// The gateway workload's labels: the Gateways whose `selector` they satisfy apply (and
    /// `sourceLabels` matches are evaluated against them). `None`: every Gateway applies.
    pub labels: Option<Labels>,
    /// The mesh's trust domain, in the identities of the workloads the gateway sends to.
    pub trust_domain: String,
}

/// The trust domain of a mesh that names none, as in Istio.
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";

impl GatewayOptions {
    /// Every Gateway, listening on `listen_ip`, in `istio-system`, in the default trust domain.
    pub fn new(listen_ip: IpAddr) -> Self {
        Self {
            listen_ip,
            namespace: None,
            labels: None,
            trust_domain: DEFAULT_TRUST_DOMAIN.to_owned(),
        }
    }
}

/// The configuration of a gateway proxy: listeners for the servers of the Gateways that apply,
/// route tables from the VirtualServices bound to them, clusters for their destinations with
/// endpoints from `registry`.
pub fn gateway(
    resources: &[Resource],
    registry: &Registry,
    options: &GatewayOptions,
) -> Translation {
    gateway::translate(resources, registry, options)
}

/// The configuration of a sidecar proxy: an outbound listener and route table for every
/// service its workload may reach, with the VirtualServices bound to `mesh`, and inbound
/// listeners in front of its application ([`sidecar`](crate::SidecarOptions) documents the
/// rules).
pub fn sidecar(
    resources: &[Resource],
    registry: &Registry,
    options: &SidecarOptions,
) -> Translation {
    sidecar::translate(resources, registry, options)
}

/// A sidecar's outbound side alone: the same for every replica of a workload (same namespace,
/// labels and outbound address), so a control plane can translate it once for all of them.
pub fn sidecar_outbound(
    resources: &[Resource],
    registry: &Registry,
    options: &SidecarOptions,
) -> Translation {
    sidecar::outbound(resources, registry, options)
}

/// A sidecar's inbound side alone: listeners on the options' `address` for the ports the
/// registry says it serves, each in front of the application at `app_ip`, taking mutual TLS as
/// the PeerAuthentications for the workload's namespace and labels say. Nothing without an
/// `address`.
pub fn sidecar_inbound(
    resources: &[Resource],
    registry: &Registry,
    options: &SidecarOptions,
) -> Translation {
    let mut config = Config::default();
    let mut warnings = warnings::Warnings::default();
    sidecar::inbound(resources, registry, options, &mut config, &mut warnings);
    Translation {
        config,
        warnings: warnings.into_vec(),
    }
}
