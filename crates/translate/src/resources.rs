//! The resources a translation reads, by kind, in a fixed order.
//!
//! Istio orders configuration by creation time, which files do not carry; here every kind is
//! ordered by namespace, then name, so the same files always give the same configuration.

use trellis_api::ObjectMeta;
use trellis_api::Resource;
use trellis_api::networking::{DestinationRule, Gateway, VirtualService};
use trellis_api::resource::KindSpec;
use trellis_api::security::PeerAuthentication;

/// One resource of a kind: its metadata and spec.
#[derive(Debug)]
pub(crate) struct Named<'a, S> {
    pub(crate) meta: &'a ObjectMeta,
    pub(crate) spec: &'a S,
}

impl<S> Clone for Named<'_, S> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S> Copy for Named<'_, S> {}

impl<S> Named<'_, S> {
    pub(crate) fn namespace(&self) -> &str {
        &self.meta.namespace
    }

    pub(crate) fn name(&self) -> &str {
        &self.meta.name
    }

    /// `namespace/name`.
    pub(crate) fn full_name(&self) -> String {
        self.meta.full_name()
    }
}

/// The Istio kinds translation reads, each sorted by namespace and name.
#[derive(Debug)]
pub(crate) struct Index<'a> {
    pub(crate) gateways: Vec<Named<'a, Gateway>>,
    pub(crate) virtual_services: Vec<Named<'a, VirtualService>>,
    pub(crate) destination_rules: Vec<Named<'a, DestinationRule>>,
    pub(crate) peer_authentications: Vec<Named<'a, PeerAuthentication>>,
}

impl<'a> Index<'a> {
    pub(crate) fn new(resources: &'a [Resource]) -> Self {
        Self {
            gateways: of_kind(resources),
            virtual_services: of_kind(resources),
            destination_rules: of_kind(resources),
            peer_authentications: of_kind(resources),
        }
    }

    /// The VirtualService `namespace/name`, if any.
    pub(crate) fn virtual_service(
        &self,
        namespace: &str,
        name: &str,
    ) -> Option<Named<'a, VirtualService>> {
        self.virtual_services
            .iter()
            .find(|vs| vs.namespace() == namespace && vs.name() == name)
            .copied()
    }
}

/// Every resource of the kind whose spec is `S`, sorted by namespace and name.
pub(crate) fn of_kind<'a, S: KindSpec>(resources: &'a [Resource]) -> Vec<Named<'a, S>> {
    let mut found: Vec<Named<'a, S>> = resources
        .iter()
        .filter_map(S::object)
        .map(|object| Named {
            meta: &object.metadata,
            spec: &object.spec,
        })
        .collect();
    found.sort_by(|a, b| (a.namespace(), a.name()).cmp(&(b.namespace(), b.name())));
    found
}
