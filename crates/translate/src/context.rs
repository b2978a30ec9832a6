//! What every step of a translation reads (the resources, the registry, who the proxy is) and
//! what it produces besides its own result (warnings, and the clusters routes refer to).

use std::collections::BTreeSet;

use trellis_api::types::Labels;

use crate::clusters::ClusterKey;
use crate::registry::{Registry, Service};
use crate::resources::Index;
use crate::warnings::Warnings;

/// The read-only inputs of one translation.
#[derive(Debug)]
pub(crate) struct Scope<'a> {
    pub(crate) index: Index<'a>,
    pub(crate) registry: &'a Registry,
    /// The namespace the proxy runs in: what it sees (`exportTo`) and where its
    /// DestinationRules are looked up first.
    pub(crate) namespace: &'a str,
    /// The proxy's workload labels, when known.
    pub(crate) labels: Option<&'a Labels>,
    /// The mesh's trust domain, in the SPIFFE identities of workloads.
    pub(crate) trust_domain: &'a str,
}

impl Scope<'_> {
    /// The service of a fully qualified host, if the registry has it and shows it to the
    /// proxy's namespace.
    pub(crate) fn service(&self, host: &str) -> Option<&Service> {
        self.registry
            .get(host)
            .filter(|s| s.visible_from(self.namespace))
    }
}

/// What translation steps add to as they go.
#[derive(Debug, Default)]
pub(crate) struct Output {
    pub(crate) warnings: Warnings,
    /// Every cluster a route or listener refers to.
    pub(crate) clusters: BTreeSet<ClusterKey>,
}
